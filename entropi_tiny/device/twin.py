"""The QEMU twin of the streaming image with its UART on a pseudo-terminal, like a plugged-in board.

Usage:
    with Twin(Path("export/default/firmware/mps2-an500/stream/firmware.elf")) as twin:
        port = twin.start()            # "/dev/pts/N", once the firmware serves frames
        ...                            # entropi-tiny device --port /dev/pts/N info
    # leaving the block (or twin.stop()) ends QEMU

QEMU runs with `-serial pty` (and, as every twin run, without semihosting,
so the guest has no access to host files) and prints the pty it made. The
twin then opens that pty in raw mode, sends one PING with sequence number
255 and waits for its ACK: the firmware answers only once it has booted,
run its embedded training and started serving, and QEMU passes the host's
bytes only once someone has the pty open, so a reply means the port is
ready whatever the timing. Then it lets go of the pty for the user's
`device` commands. A device command uses sequence numbers from 0 up, so a
stale ACK of that PING cannot be taken for one of its replies.
"""
from __future__ import annotations

import os
import re
import select
import subprocess
import termios
import time
import tty
from pathlib import Path

from ..errors import UserError
from ..toolchain import frames
from ..toolchain.qemu import qemu_command

PTY_LINE = re.compile(rb"char device redirected to (/dev/pts/\d+)")
READY_SEQ = 255


class Twin:
    def __init__(self, elf: Path, machine: str = "mps2-an500"):
        self.elf, self.machine = Path(elf), machine
        self.proc: subprocess.Popen | None = None
        self.port: str | None = None

    def __enter__(self) -> "Twin":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, ready_timeout: float = 300.0) -> str:
        if not self.elf.is_file():
            raise UserError(f"{self.elf} is missing: run `entropi-tiny build` first")
        self.proc = subprocess.Popen(qemu_command(self.elf, self.machine, serial="pty"),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        self.port = self._read_pty_path(deadline)
        self._wait_ready(deadline)
        return self.port

    def _read_pty_path(self, deadline: float) -> str:
        seen = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
                m = PTY_LINE.search(seen)
                if m:
                    return m.group(1).decode()
            elif self.proc.poll() is not None:
                break
        self.stop()
        said = seen.decode(errors="replace").strip().splitlines()
        raise UserError(f"QEMU did not open a pseudo-terminal: {said[-1] if said else 'no output'}")

    def _wait_ready(self, deadline: float) -> None:
        fd = os.open(self.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(fd, termios.TCSANOW)
            os.write(fd, frames.encode(frames.PING, READY_SEQ, b"twin"))
            dec, text = frames.Decoder(), b""
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise UserError(f"the twin exited during boot (status {self.proc.returncode})"
                                    f": {_last_line(text)}")
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                text = (text + chunk)[-4096:]
                if b"ET_ERROR" in text:
                    raise UserError(f"the twin firmware failed during boot: {_last_line(text)}")
                if any(isinstance(e, frames.Frame) and e.type == frames.ACK and
                       e.seq == READY_SEQ for e in dec.feed(chunk)):
                    return
            raise UserError("the twin did not start serving frames within the timeout: "
                            f"{_last_line(text)}")
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(fd)

    def wait(self) -> int:
        """Until QEMU ends (an END frame, or a signal to it)."""
        return self.proc.wait() if self.proc else 0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _last_line(text: bytes) -> str:
    lines = [ln for ln in text.decode("utf-8", errors="replace").splitlines()
             if ln.strip().startswith("ET_")]
    return lines[-1][:160] if lines else "no console output"

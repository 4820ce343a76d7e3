"""Stand-ins for what is outside this machine in the device tests: a physical board on a
serial port, probe tools on PATH, the ST-LINK's USB drive.

Usage:
    with FakeBoard(image_bin, reset_after=2) as board:     # speaks the frames on a real pty
        run_cli("device", "--port", board.port, ...)
    bindir = fake_tools(tmp_path, {"st-flash": 0, "openocd": 1})   # scripts that log argv

The fake board answers INFO (as a nucleo-f746 whose image is `image_bin`,
counting cycles), SAMPLE and EVAL with well-formed replies; with
`reset_after=N` it prints the firmware's boot banner after N samples and
goes silent, as a board that resets mid-stream does.
"""
from __future__ import annotations

import os
import select
import struct
import threading
import time
import tty
import zlib
from pathlib import Path

from entropi_tiny.device import protocol as P
from entropi_tiny.toolchain import frames as F


class FakeBoard:
    def __init__(self, image_bin: Path, reset_after: int | None = None, classes: int = 5,
                 sample_bytes: int = 3072):
        data = Path(image_bin).read_bytes()
        self.crc, self.size = zlib.crc32(data), len(data)
        self.reset_after, self.classes, self.sample_bytes = reset_after, classes, sample_bytes
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        os.close(slave)
        self.streamed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "FakeBoard":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)
        os.close(self.master)

    def _info(self) -> bytes:
        return struct.pack(P.INFO_FORMAT, 2, b"nucleo-f746", b"cycles", self.crc, self.size,
                           self.sample_bytes, 64, self.classes, 30, 20, 20480, 3040, 8192, 900,
                           1 << 20, 320 << 10, self.streamed, 1, 50, 50 * 1_000_000, 120_000, 120)

    def _reply(self, f: F.Frame) -> bytes | None:
        if f.type == F.INFO:
            return b"\0" + self._info()
        if f.type == F.SAMPLE:
            if self.reset_after is not None and self.streamed == self.reset_after:
                os.write(self.master, b"\r\nET_BOOT board=nucleo-f746 unit=cycles train=30\n")
                self.silent = True
                return None
            self.streamed += 1
            return b"\0" + struct.pack(P.SAMPLE_FORMAT, 1.5, self.streamed, 1_000_000, 1_000)
        if f.type == F.EVAL:
            return b"\0" + struct.pack(P.EVAL_FORMAT, 9, 20, 40_000)
        return b"\0"

    def _serve(self) -> None:
        dec, self.silent = F.Decoder(), False
        while not self.stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:          # EIO while nobody has the port open
                time.sleep(0.05)
                continue
            for e in dec.feed(chunk):
                if isinstance(e, F.Frame) and not self.silent:
                    reply = self._reply(e)
                    if reply is not None:
                        os.write(self.master, F.encode(F.ACK, e.seq, reply))


def fake_tools(folder: Path, tools: dict[str, int]) -> Path:
    """A bin folder of shell scripts named like the probe tools; each appends its argv (one
    argument per line, then '--') to <folder>/<name>.log and exits with the given status."""
    bindir = folder / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name, status in tools.items():
        log = folder / f"{name}.log"
        script = bindir / name
        script.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a" >> "{log}"; done\n'
                          f'echo -- >> "{log}"\necho "{name} fake: exit {status}"\n'
                          f'exit {status}\n')
        script.chmod(0o755)
    return bindir


def logged_calls(folder: Path, name: str) -> list[list[str]]:
    log = folder / f"{name}.log"
    if not log.is_file():
        return []
    calls, cur = [], []
    for line in log.read_text().splitlines():
        if line == "--":
            calls.append(cur)
            cur = []
        else:
            cur.append(line)
    return calls

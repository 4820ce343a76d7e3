"""Run a firmware image on the QEMU twin (mps2-an500) and collect its console.

Usage:
    result = run_qemu(Path("build/twin/firmware.elf"), timeout=10)
    result.exit_code, result.text
    run_qemu(elf, stdin=b"hello\\n")                    # bytes fed to the UART
    run_qemu(elf, stdin=lambda chunk: reply_or_none)    # interactive: called with new output

The firmware ends by printing "ET_EXIT <code>" and requesting a system
reset, which ends QEMU (-no-reboot); the exit code is read from that line.
QEMU runs without semihosting, so the guest cannot open, read or write host
files (a semihosting call faults in the guest). Under -icount shift=0 every
instruction takes 1 ns of virtual time, so the counter the firmware reads is
an exact instruction count. A run past `timeout` seconds of wall time is
killed and reported.
"""
from __future__ import annotations

import fcntl
import os
import re
import selectors
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from ..errors import UserError
from .tools import find_tool

Feeder = Callable[[bytes], Union[bytes, None]]


class QemuTimeout(UserError):
    """QEMU ran past its wall-clock limit and was killed."""


@dataclass
class RunResult:
    exit_code: int
    uart_output: bytes   # everything the firmware wrote to its console
    wall_s: float
    stderr: str = ""

    @property
    def text(self) -> str:
        return self.uart_output.decode("utf-8", errors="replace")


# The last "ET_EXIT <code>" line the firmware printed (frames may precede it).
EXIT_LINE = re.compile(rb"ET_EXIT (-?\d+)\r?\n")
NO_EXIT_LINE = -1   # exit_code when QEMU ended without the firmware's ET_EXIT line


def qemu_command(elf: Path, machine: str = "mps2-an500", serial: str = "stdio") -> list[str]:
    """QEMU for the twin: no semihosting (no host file access), exit on the guest's
    reset request, exact instruction counts. `serial`: a -serial backend (stdio, pty)."""
    return [str(find_tool("qemu-system-arm")), "-M", machine, "-cpu", "cortex-m7",
            "-nographic", "-monitor", "none", "-serial", serial, "-no-reboot",
            "-icount", "shift=0", "-kernel", str(elf)]


def guest_exit_code(qemu_status: int, uart_output: bytes) -> int:
    """The firmware's exit code: its last ET_EXIT line when QEMU ended normally."""
    if qemu_status != 0:
        return qemu_status
    found = EXIT_LINE.findall(uart_output)
    return int(found[-1]) if found else NO_EXIT_LINE


def run_qemu(elf: Path, timeout: float = 30.0, stdin: bytes | Feeder | None = None,
             machine: str = "mps2-an500") -> RunResult:
    """Run `elf` until it exits; `stdin` is bytes for the UART or a feeder called with
    each chunk of output (first with b"") that returns bytes to send, or None."""
    elf = Path(elf)
    if not elf.is_file():
        raise UserError(f"firmware image not found: {elf}")
    cmd = qemu_command(elf, machine)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    feeder = stdin if callable(stdin) else None
    pending = bytearray(stdin if isinstance(stdin, (bytes, bytearray)) else b"")
    if feeder is not None:
        pending += feeder(b"") or b""
    out, err = bytearray(), bytearray()
    sel = selectors.DefaultSelector()
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        fcntl.fcntl(stream.fileno(), fcntl.F_SETFL,
                    fcntl.fcntl(stream.fileno(), fcntl.F_GETFL) | os.O_NONBLOCK)
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    writing = False
    try:
        open_streams = 2
        while open_streams:
            if pending and not writing and proc.stdin:
                sel.register(proc.stdin, selectors.EVENT_WRITE)
                writing = True
            left = start + timeout - time.monotonic()
            if left <= 0:
                raise QemuTimeout(_timeout_message(timeout, out))
            for key, _ in sel.select(min(left, 0.5)):
                if key.fileobj is proc.stdin:
                    try:
                        sent = os.write(proc.stdin.fileno(), pending)
                    except BrokenPipeError:
                        pending.clear()
                        sent = 0
                    del pending[:sent]
                    if not pending:
                        sel.unregister(proc.stdin)
                        writing = False
                    continue
                chunk = os.read(key.fileobj.fileno(), 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                key.data.extend(chunk)
                if feeder is not None and key.data is out:
                    pending += feeder(chunk) or b""
        exit_code = proc.wait(timeout=max(0.1, start + timeout - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise QemuTimeout(_timeout_message(timeout, out)) from None
    finally:
        sel.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
    exit_code = guest_exit_code(exit_code, bytes(out))
    result = RunResult(exit_code, bytes(out), time.monotonic() - start, err.decode(errors="replace"))
    if exit_code != 0 and not out and result.stderr.strip():
        raise UserError(f"qemu-system-arm failed: {result.stderr.strip().splitlines()[0]}")
    return result


def _timeout_message(timeout: float, out: bytes) -> str:
    lines = out.decode("utf-8", errors="replace").strip().splitlines()
    last = repr(lines[-1][-120:]) if lines else "nothing"
    return (f"QEMU did not finish within {timeout:g} s (the firmware hung or waits for input); "
            f"its last console line was {last}")

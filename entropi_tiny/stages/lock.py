"""One writer per run folder: an exclusive flock on RUN/.lock.

Usage:
    hold_run_lock(paths)      # before the first write; held until the process exits
    release_run_lock(paths)   # or until released (library callers)

A second process that wants to write into the same folder does not wait: it
stops at once with one line naming the pid that holds the lock, so two runs
with different settings can never mix their files. The lock is advisory and
belongs to the open file, so a killed holder releases it with its last file
descriptor; the pid in the file is only for the message. Processes started
by torchrun take it on rank 0 only (the other ranks never write). Readers
(`status`) take no lock: they trust only files a manifest vouches for.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import UserError
from ..paths import RunPaths

_held: dict[Path, int] = {}      # run folder -> open lock fd, for this process's lifetime


def hold_run_lock(paths: RunPaths) -> None:
    root = Path(paths.root).resolve()
    if root in _held or os.environ.get("RANK", "0") != "0":
        return
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UserError(f"run folder {paths.root} is in use by pid {holder}; wait for it to "
                        "finish or use another --run-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[root] = fd


def release_run_lock(paths: RunPaths) -> None:
    """For a library caller that goes on running (a CLI command just exits)."""
    fd = _held.pop(Path(paths.root).resolve(), None)
    if fd is not None:
        os.close(fd)

"""Atomic file writes, content hashes and safe checkpoint loading.

Usage:
    write_json(path, {"a": 1})
    save_torch(path, state)
    state = load_torch(path, expect_format="entropi-tiny/level-v1")
    digest = sha256_file(path)

Every artifact is written to a temporary file in the same folder and renamed
over its final name, so a run killed at any moment leaves either the old file
or the new one, never half of one. A stage that writes several files vouches
for them together in its manifest (stages/contract.py), which is written last.

Files get the permissions the user's umask gives a new file (mkstemp alone
would make them 0600). A full disk is a one-line UserError naming the folder
and the bytes the write needed; the temporary file is removed.

For the kill-injection test only: with ENTROPI_TEST_KILL_AFTER_RENAME=N in
the environment, the process dies (os._exit(137), like kill -9) right after
its N-th rename; with a value that is not a number, right after the first
rename onto a path ending with it (e.g. `mps2-an500/firmware.elf`).
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import UserError

_KILL_ENV = "ENTROPI_TEST_KILL_AFTER_RENAME"
_renames = 0


def _umask_mode() -> int:
    """0666 minus the process umask (read without changing it for long)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _after_rename(path: Path) -> None:
    global _renames
    _renames += 1
    limit = os.environ.get(_KILL_ENV)
    if not limit:
        return
    if limit.isdigit() and _renames >= int(limit) or \
            not limit.isdigit() and path.as_posix().endswith(limit):
        os._exit(137)


def disk_full(folder: Path, needed: int) -> UserError:
    return UserError(f"disk full: writing {needed:,} bytes into {folder} failed (no space left "
                     "on the device); free some space and rerun the same command")


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise disk_full(path.parent, len(data)) from None
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _umask_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise disk_full(path.parent, len(data)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _after_rename(path)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read JSON file {path}: {e}") from None


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object (a run-folder file of ours)."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise UserError(f"{path} is damaged: expected a JSON object, got {type(obj).__name__}; "
                        "delete it and rerun")
    return obj


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_torch(path: Path, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def load_torch(path: Path, expect_format: str) -> dict:
    """Load a checkpoint with weights_only=True and check its format tag."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"corrupt or foreign checkpoint {path}: {msg[:160]}") from None
    if not isinstance(obj, dict) or obj.get("format") != expect_format:
        raise UserError(f"foreign checkpoint {path}: expected format '{expect_format}'")
    return obj


def remove_stale_temps(folder: Path) -> None:
    """Delete temporary files left behind by a killed writer."""
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob(".*.tmp"):
            p.unlink(missing_ok=True)

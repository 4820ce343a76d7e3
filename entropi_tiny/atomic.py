"""Atomic file writes and safe checkpoint loading.

Usage:
    write_json(path, {"a": 1})
    save_torch(path, state)
    state = load_torch(path, expect_format="entropi-tiny/level-v1")

Every artifact is written to a temporary file in the same folder and renamed
over its final name, so a run killed at any moment leaves either the old file
or the new one, never half of one.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import UserError


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read JSON file {path}: {e}") from None


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

"""Finding the cross toolchain and the emulator on PATH.

Usage:
    gcc = find_tool("arm-none-eabi-gcc")       # Path, or UserError with the install command

All of them come from three Debian packages; a missing one is a user error
that names the tool and the command that installs it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import UserError

INSTALL_COMMAND = "sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"

TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-objcopy", "arm-none-eabi-size",
         "arm-none-eabi-objdump", "qemu-system-arm")


def find_tool(name: str, path: str | None = None) -> Path:
    """The executable `name` on `path` (default: $PATH at call time)."""
    found = shutil.which(name, path=path if path is not None else os.environ.get("PATH"))
    if found is None:
        raise UserError(f"{name} not found on PATH; install it with: {INSTALL_COMMAND}")
    return Path(found)

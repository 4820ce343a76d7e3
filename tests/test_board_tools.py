"""Finding the toolchain: a missing tool is one line naming it and the install command.

Usage: .venv/bin/python -m pytest tests/test_board_tools.py
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from board_support import build_selftest

from entropi_tiny.errors import UserError
from entropi_tiny.toolchain import find_tool, run_qemu
from entropi_tiny.toolchain.tools import INSTALL_COMMAND, TOOLS


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_is_installed(tool):
    assert find_tool(tool).is_file()


def test_missing_compiler_names_it_and_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: nothing on PATH
    with pytest.raises(UserError) as info:
        build_selftest(tmp_path / "out")
    msg = str(info.value)
    assert msg == f"arm-none-eabi-gcc not found on PATH; install it with: {INSTALL_COMMAND}"
    assert "sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm" in msg


def test_missing_qemu_only(tmp_path, monkeypatch):
    # A PATH holding the cross tools but not the emulator.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in TOOLS:
        if tool != "qemu-system-arm":
            (bindir / tool).symlink_to(find_tool(tool))
    monkeypatch.setenv("PATH", str(bindir))
    build = build_selftest(tmp_path / "out")
    with pytest.raises(UserError, match="^qemu-system-arm not found on PATH; install it with: sudo apt-get"):
        run_qemu(build.elf)


def test_missing_tool_message_is_one_line_in_a_fresh_process(tmp_path):
    # The CLI prints a UserError as its message; check the message is a single line
    # when raised in a fresh interpreter with an empty PATH.
    code = ("from entropi_tiny.toolchain import find_tool\n"
            "from entropi_tiny.errors import UserError\n"
            "try:\n    find_tool('arm-none-eabi-objdump')\n"
            "except UserError as e:\n    print(e)\n")
    env = dict(os.environ, PATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.getcwd())
    assert out.stdout.splitlines() == [f"arm-none-eabi-objdump not found on PATH; install it with: "
                                       f"{INSTALL_COMMAND}"]

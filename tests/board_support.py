"""Helpers for the board tests: build the self-test firmware for a board.

Usage:
    from board_support import build_selftest, SELFTEST
    build = build_selftest(tmp_path, "mps2-an500", ET_SELFTEST_EXIT_CODE=3)
"""
from __future__ import annotations

from pathlib import Path

from entropi_tiny.boards import FIRMWARE_DIR, get_board
from entropi_tiny.toolchain import BuildResult, compile_firmware

SELFTEST = FIRMWARE_DIR / "apps" / "selftest" / "main.c"


def build_selftest(out_dir: Path, board: str = "mps2-an500", extra_sources=(), keep=(),
                   **defines) -> BuildResult:
    return compile_firmware(get_board(board), [SELFTEST, *extra_sources], include_dirs=[],
                            out_dir=out_dir, defines=defines, keep_symbols=tuple(keep))

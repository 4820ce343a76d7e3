"""The boards firmware can be built for, and where their support files live.

Usage:
    from entropi_tiny.boards import get_board
    board = get_board("nucleo-f746")
    twin = get_board(board.twin)          # the QEMU stand-in with the same budgets

A board is a folder under firmware/boards/ (startup.c, board.c, linker.ld)
plus the facts the toolchain needs: CPU flags, memory budgets, the unit of
its counter, and, for an emulated board, the QEMU machine that runs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

# The repository's firmware folder (the package is used from a checkout).
FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "firmware"

CORTEX_M7_SP = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard")

# Shared by every board: reset and fault handling, stack scan, console, printf, frames, CRC-32.
PLATFORM_SOURCES = ("src/et_startup.c", "src/et_stack.c", "src/et_console.c", "src/et_printf.c",
                    "src/et_frames.c", "src/et_crc32.c")


@dataclass(frozen=True)
class Board:
    name: str
    folder: str                 # under firmware/boards/
    cpu_flags: tuple[str, ...]
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    stack_bytes: int            # default stack region, inside ram_bytes
    counter_unit: str           # what et_counter_read() counts: "cycles" or "instructions"
    twin: str | None = None     # the emulated board with the same budgets
    qemu_machine: str | None = None  # set for boards that run under qemu-system-arm
    description: str = ""

    @property
    def board_dir(self) -> Path:
        return FIRMWARE_DIR / "boards" / self.folder

    @property
    def linker_script(self) -> Path:
        return self.board_dir / "linker.ld"

    def sources(self) -> list[Path]:
        """The board's own C files followed by the shared platform files."""
        return [self.board_dir / "startup.c", self.board_dir / "board.c",
                *(FIRMWARE_DIR / s for s in PLATFORM_SOURCES)]


BOARDS: dict[str, Board] = {
    b.name: b for b in (
        Board(
            name="nucleo-f746", folder="nucleo-f746", cpu_flags=CORTEX_M7_SP,
            flash_origin=0x0800_0000, flash_bytes=1024 * 1024,
            ram_origin=0x2000_0000, ram_bytes=320 * 1024, stack_bytes=16 * 1024,
            counter_unit="cycles", twin="mps2-an500",
            description="STM32F746ZG at 216 MHz, USART3 (ST-LINK VCP) at 115200 8N1",
        ),
        Board(
            name="mps2-an500", folder="mps2-an500", cpu_flags=CORTEX_M7_SP,
            flash_origin=0x0000_0000, flash_bytes=1024 * 1024,
            ram_origin=0x2000_0000, ram_bytes=320 * 1024, stack_bytes=16 * 1024,
            counter_unit="instructions", qemu_machine="mps2-an500",
            description="QEMU twin of nucleo-f746: Cortex-M7, the F746's budgets, "
                        "instruction counts under -icount shift=0",
        ),
    )
}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise UserError(f"unknown board '{name}'; known boards: {', '.join(BOARDS)}") from None

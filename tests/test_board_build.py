"""Firmware builds: budgets, artifacts, the double-precision check, overflow errors.

Usage: .venv/bin/python -m pytest tests/test_board_build.py
"""
from __future__ import annotations

import json

import pytest
from board_support import build_selftest

from entropi_tiny.boards import BOARDS, get_board
from entropi_tiny.errors import UserError
from entropi_tiny.toolchain import check_no_double_precision, find_double_precision


@pytest.fixture(scope="module")
def f746(tmp_path_factory):
    return build_selftest(tmp_path_factory.mktemp("f746"), "nucleo-f746")


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return build_selftest(tmp_path_factory.mktemp("twin"), "mps2-an500")


def test_registry_pairs_board_with_twin_of_equal_budgets():
    board = get_board("nucleo-f746")
    twin = get_board(board.twin)
    assert twin.qemu_machine == "mps2-an500" and board.qemu_machine is None
    assert (board.flash_bytes, board.ram_bytes) == (1024 * 1024, 320 * 1024)
    assert (twin.flash_bytes, twin.ram_bytes, twin.stack_bytes) == \
        (board.flash_bytes, board.ram_bytes, board.stack_bytes)
    assert (board.counter_unit, twin.counter_unit) == ("cycles", "instructions")
    for b in BOARDS.values():
        text = b.linker_script.read_text()
        assert f"ORIGIN = 0x{b.flash_origin:08X}, LENGTH = {b.flash_bytes // 1024}K" in text
        assert f"ORIGIN = 0x{b.ram_origin:08X}, LENGTH = {b.ram_bytes // 1024}K" in text
    with pytest.raises(UserError, match="unknown board 'stm32'"):
        get_board("stm32")


def test_f746_image_links_within_budget_with_all_artifacts(f746):
    for path in (f746.elf, f746.bin, f746.hex, f746.map, f746.size_report):
        assert path.is_file() and path.stat().st_size > 0
    assert f746.hex.read_text().startswith(":020000040800")  # loads at 0x08000000
    assert 1000 < f746.flash_used < f746.flash_budget
    assert f746.ram_static + f746.stack_bytes <= f746.ram_budget
    assert f746.stack_bytes == 16 * 1024
    s = f746.sections
    # Flash holds vectors, code, constants and .data's initial values (plus alignment).
    parts = s[".isr_vector"] + s[".text"] + s[".rodata"] + s[".ARM.exidx"] + s[".data"]
    assert parts <= f746.flash_used < parts + 256
    assert s[".data"] + s[".bss"] <= f746.ram_static < s[".data"] + s[".bss"] + 64
    # The .bin is the flash image from 0x08000000 to its last byte.
    assert f746.bin.stat().st_size == f746.flash_used
    report = json.loads(f746.size_report.read_text())
    assert report["flash_used"] == f746.flash_used and report["ram_used"] == f746.ram_used
    assert "et_reset_handler" in f746.map.read_text()


def test_no_double_precision_in_either_image(f746, twin):
    assert find_double_precision(f746.elf) == []
    assert find_double_precision(twin.elf) == []
    check_no_double_precision(twin.elf)


DOUBLE_SOURCE = """
#include <stdint.h>
volatile double et_d = 1.5;
float et_use_double(float x) { return (float)(et_d * (double)x + 0.25); }
"""


def test_double_use_is_caught(tmp_path):
    src = tmp_path / "et_double.c"
    src.write_text(DOUBLE_SOURCE)
    build = build_selftest(tmp_path / "out", extra_sources=[src], keep=["et_use_double"])
    found = find_double_precision(build.elf)
    # Without a double FPU the compiler calls libgcc's soft-double helpers.
    assert any("__aeabi_dmul called from et_use_double" in f for f in found), found
    assert any("__aeabi_f2d" in f for f in found), found
    with pytest.raises(UserError, match="uses double precision.*__aeabi_"):
        check_no_double_precision(build.elf)


def test_double_instruction_is_caught(tmp_path):
    # An inline .f64 instruction (what a double-precision FPU build would emit).
    src = tmp_path / "et_f64.c"
    src.write_text('void et_f64(void) { __asm volatile(".fpu fpv5-d16\\n vadd.f64 d0, d0, d1"); }\n')
    build = build_selftest(tmp_path / "out", extra_sources=[src], keep=["et_f64"])
    found = find_double_precision(build.elf)
    assert [f for f in found if f.startswith("vadd.f64 in et_f64")], found


@pytest.mark.parametrize("board", ["nucleo-f746", "mps2-an500"])
def test_oversized_ram_array_fails_in_one_line(tmp_path, board):
    src = tmp_path / "et_big.c"
    src.write_text("#include <stdint.h>\nvolatile uint8_t et_big[310 * 1024];\n"
                   "uint8_t et_touch(void) { return et_big[7]; }\n")
    with pytest.raises(UserError) as info:
        build_selftest(tmp_path / "out", board, extra_sources=[src], keep=["et_touch"])
    msg = str(info.value)
    assert "\n" not in msg
    assert f"does not fit the {board}: RAM overflowed by" in msg
    assert "smaller alpha" in msg and "smaller model" in msg
    # Overflow = bss (310 KiB + the self-test's own ~6 KiB) + 16 KiB stack - 320 KiB.
    n = int(msg.split("overflowed by ")[1].split()[0])
    assert 6 * 1024 < n < 16 * 1024


def test_oversized_flash_table_fails_naming_flash(tmp_path):
    src = tmp_path / "et_table.c"
    src.write_text("#include <stdint.h>\nconst uint8_t et_table[1100 * 1024] = {1};\n"
                   "const uint8_t *et_table_ptr(void) { return et_table; }\n")
    with pytest.raises(UserError, match=r"FLASH overflowed by \d+ bytes .*smaller alpha") as info:
        build_selftest(tmp_path / "out", "nucleo-f746", extra_sources=[src], keep=["et_table_ptr"])
    assert "\n" not in str(info.value)


def test_compile_error_is_one_line_with_log(tmp_path):
    build_selftest(tmp_path / "out")  # an earlier good build must not survive a failed one
    src = tmp_path / "et_bad.c"
    src.write_text("int et_bad(void) { return et_missing; }\n")
    with pytest.raises(UserError, match="firmware build for mps2-an500 failed: .*et_missing") as info:
        build_selftest(tmp_path / "out", extra_sources=[src])
    assert "\n" not in str(info.value)
    assert (tmp_path / "out" / "build.log").is_file()
    assert not (tmp_path / "out" / "firmware.elf").exists()

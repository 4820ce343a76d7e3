"""The self-test firmware on the QEMU twin: output, exit codes, determinism, console input.

Usage: .venv/bin/python -m pytest tests/test_board_qemu.py
"""
from __future__ import annotations

import re

import pytest
from board_support import build_selftest

from entropi_tiny.errors import UserError
from entropi_tiny.toolchain import QemuTimeout, run_qemu


@pytest.fixture(scope="module")
def selftest(tmp_path_factory):
    return build_selftest(tmp_path_factory.mktemp("selftest"), ET_SELFTEST_EXIT_CODE=0)


def counters(text: str) -> tuple[int, int]:
    m = re.search(r"^counter: dot (\d+) sgd (\d+) instructions$", text, re.M)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def test_selftest_runs_to_completion(selftest):
    result = run_qemu(selftest.elf, timeout=20)
    lines = result.text.splitlines()
    assert result.exit_code == 0, result.text
    assert lines[0] == "entropi-tiny selftest on mps2-an500"
    # Integer, string, padding and float formatting without doubles.
    assert lines[1] == "fmt: -42 42 -100000 str beef 00001234     7|-05 3.250000 -0.063 3 1.500000e+10"
    # A loop of 200,000 instructions, counted to within the reads and one 40-instruction tick.
    loop = int(re.search(r"^calibration: 100000 x \(subs, bne\) took (\d+) instructions$",
                         result.text, re.M).group(1))
    assert 200_000 <= loop <= 200_000 + 200
    assert lines[3] == "dot: 4048.000"  # sum of i/2 * (0.75 or -0.25) over i < 256
    loss0, loss1 = map(float, re.search(r"sgd: loss (\S+) -> (\S+) after 30 epochs", result.text).groups())
    assert loss0 > 1.0 and loss1 < loss0 / 100
    dot, sgd = counters(result.text)
    assert dot % 40 == 0 and sgd % 40 == 0  # one SysTick tick = 40 instructions
    assert 256 * 3 <= dot <= 256 * 12 and 100_000 < sgd < 2_000_000
    high, size = map(int, re.search(r"stack: high water (\d+) of (\d+) bytes", result.text).groups())
    assert size == 16384 and 64 < high < 4096
    assert lines[-1] == "ET_EXIT 0"


def test_instruction_counts_identical_across_runs(selftest):
    first = run_qemu(selftest.elf, timeout=20)
    second = run_qemu(selftest.elf, timeout=20)
    assert counters(first.text) == counters(second.text)
    assert first.uart_output == second.uart_output


@pytest.mark.parametrize("code", [3, 201])
def test_exit_code_comes_out_of_qemu(tmp_path, code):
    build = build_selftest(tmp_path, ET_SELFTEST_EXIT_CODE=code)
    result = run_qemu(build.elf, timeout=20)
    assert result.exit_code == code
    assert result.text.endswith(f"ET_EXIT {code}\n")


def test_echo_reads_a_line_from_the_console(tmp_path):
    build = build_selftest(tmp_path, ET_SELFTEST_ECHO=1)
    result = run_qemu(build.elf, timeout=20, stdin=b"hello, twin\r\n")
    assert "echo: hello, twin\n" in result.text and result.exit_code == 0


def test_echo_times_out_without_input(tmp_path):
    # 2 M instructions of polling: well under a second of wall time.
    build = build_selftest(tmp_path, ET_SELFTEST_ECHO=1, ET_SELFTEST_TIMEOUT=2_000_000)
    result = run_qemu(build.elf, timeout=20, stdin=b"abc")
    assert "echo: timeout after 3 bytes" in result.text and result.exit_code == 0


def test_fault_exits_with_fault_code(tmp_path):
    build = build_selftest(tmp_path, ET_SELFTEST_FAULT=1)
    result = run_qemu(build.elf, timeout=20)
    assert result.exit_code == 99, result.text
    assert "ET_FAULT cfsr=" in result.text


def test_hung_firmware_is_killed_with_a_clear_error(tmp_path):
    build = build_selftest(tmp_path, ET_SELFTEST_ECHO=1, ET_SELFTEST_TIMEOUT=0xFFFFFFFF)
    with pytest.raises(QemuTimeout, match=r"QEMU did not finish within 1\.5 s .*'counter: dot") as info:
        run_qemu(build.elf, timeout=1.5)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)

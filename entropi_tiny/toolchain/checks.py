"""Check a firmware image for double-precision arithmetic.

Usage:
    check_no_double_precision(Path("build/f746/firmware.elf"))   # UserError if any
    find_double_precision(elf)   # ["vmul.f64 in et_foo at 0x8000124", "__aeabi_dmul called from main", ...]

The STM32F746's FPU is single precision only (QEMU's M7 model has double
precision, so the twin would run such code without complaint). Double math
shows up either as an instruction with a .f64 type (vadd.f64, vcvt.f64.f32)
or, when the compiler knows the FPU lacks it, as a call to a soft-double
helper of libgcc (__aeabi_dmul, __aeabi_f2d, __adddf3, ...).
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ..errors import UserError
from .tools import find_tool

# __aeabi_d* (arithmetic, compare, convert from double), __aeabi_*2d (convert
# to double), __aeabi_cd* (flag-setting compares), GCC's __*df* helpers.
_SOFT_DOUBLE = re.compile(r"^(__aeabi_(d\w+|\w+2d|cd\w+)|__\w*df\w*)$")
_LABEL = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")
_CALL = re.compile(r"<([^>+]+)(\+0x[0-9a-f]+)?>")


def find_double_precision(elf: Path) -> list[str]:
    """Every double-precision instruction and soft-double call in `elf`, as text."""
    objdump = find_tool("arm-none-eabi-objdump")
    # Absolute, so a file named like an option ("-oINJ/firmware.elf") stays a file.
    elf = Path(os.path.abspath(elf))
    proc = subprocess.run([str(objdump), "-d", "--no-show-raw-insn", str(elf)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"cannot disassemble {elf}: {proc.stderr.strip()[:200]}")
    found, function = [], "?"
    for line in proc.stdout.splitlines():
        label = _LABEL.match(line)
        if label:
            function = label.group(1)
            continue
        address, sep, insn = line.partition(":\t")
        if not sep:
            continue
        fields = insn.split(None, 1)
        if not fields:
            continue
        mnemonic = fields[0]
        if ".f64" in mnemonic:
            found.append(f"{mnemonic} in {function} at 0x{address.strip()}")
        elif mnemonic.startswith("b") and len(fields) > 1 and not _SOFT_DOUBLE.match(function):
            call = _CALL.search(fields[1])
            if call and _SOFT_DOUBLE.match(call.group(1)):
                found.append(f"{call.group(1)} called from {function} at 0x{address.strip()}")
    return found


def check_no_double_precision(elf: Path) -> None:
    """UserError naming the first offenders when `elf` uses double precision."""
    found = find_double_precision(elf)
    if found:
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        raise UserError(f"{elf} uses double precision, which the F746's FPU lacks: "
                        f"{'; '.join(found[:3])}{more}; use float and 'f'-suffixed constants")

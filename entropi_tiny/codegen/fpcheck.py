"""Find double-precision arithmetic in Cortex-M7 object code (the F746's FPU is single only).

Usage:
    text = subprocess.run(["arm-none-eabi-objdump", "-dr", "firmware.elf"], ...).stdout
    bad = double_precision_uses(text)      # [] when the code is float32 only
    # e.g. ['vmul.f64\td16, d16, d17', 'R_ARM_THM_CALL\t__aeabi_dmul']

Two signs give double arithmetic away in a disassembly (with relocations,
`objdump -dr`, so calls from an unlinked object are named): a VFP
instruction on 64-bit floats (`.f64`, which QEMU's M7 would run but the
F746 cannot), or a call into the soft-float double routines of the ARM
run-time ABI (`__aeabi_dadd`, `__aeabi_f2d`, ...; libgcc's `__adddf3`,
`__extendsfdf2`, ... under their own names).
"""
from __future__ import annotations

import re

_F64 = re.compile(r"\.f64\b")
_SOFT_DOUBLE = re.compile(r"\b(__aeabi_(?!div0\b)(?:d\w+|\w+2d)|__\w*df\d?\w*)\b")


def double_precision_uses(disassembly: str) -> list[str]:
    """The lines of an `objdump -dr` listing that do double-precision work."""
    hits = []
    for line in disassembly.splitlines():
        if _F64.search(line) or _SOFT_DOUBLE.search(line):
            # a function's own label, e.g. "<__aeabi_dmul>:", counts only when linked in;
            # an instruction or relocation line calling it counts too.
            hits.append(line.strip())
    return hits

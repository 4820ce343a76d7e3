"""Per-op profile: the firmware's ET_OP lines joined with the generated schedule's description.

Usage:
    ops = parse_op_profile(uart_text, paths.generated_dir)   # list of dicts, one per op
    print(format_heaviest(ops, 5))

The firmware (firmware/apps/entropi/main.c, the "op profile" block) runs one
extra inference with the runtime's op hook set and prints `ET_OP <index>
<count>` per op: instructions on the QEMU twin (-icount shift=0, SysTick
resolution), DWT cycles on the board. Codegen wrote `et_model_ops.json`
beside the generated C with each op's kind, shapes, non-zero MACs and the
kernel it runs; this module puts both together. A profile line for an op
the schedule does not have, or a count that is not a number, is an error:
the two sides must come from the same build.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import UserError

OPS_FILE = "et_model_ops.json"
_LINE = re.compile(r"ET_OP (\d+) (\d+)\s*$")


def parse_op_profile(text: str, generated_dir: Path) -> list[dict]:
    """[{index, kind, shapes, nonzero_macs, kernel, instructions, instructions_per_nonzero_mac}]."""
    path = Path(generated_dir) / OPS_FILE
    if not path.is_file():
        return []
    try:
        table = json.loads(path.read_text())["ops"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{path} is unreadable: {e}") from None
    counts: dict[int, int] = {}
    for raw in text.splitlines():
        m = _LINE.search(raw.strip())
        if m:
            counts[int(m.group(1))] = int(m.group(2))
    if not counts:
        return []
    if set(counts) != set(range(len(table))):
        raise UserError(f"the firmware profiled ops {sorted(counts)[:3]}... but {path} lists {len(table)} ops")
    ops = []
    for row in table:
        n = counts[row["index"]]
        macs = row.get("nonzero_macs", 0)
        ops.append({**row, "instructions": n,
                    "instructions_per_nonzero_mac": round(n / macs, 3) if macs else None})
    return ops


def format_heaviest(ops: list[dict], n: int = 5) -> str:
    """The n ops with the most instructions, one line each, with their share of the total."""
    total = sum(o["instructions"] for o in ops) or 1
    lines = [f"{'op':>4} {'kind':<18} {'kernel':<14} {'out shape':<16} {'nz MACs':>10} {'instr':>11} {'share':>6}"]
    for o in sorted(ops, key=lambda o: -o["instructions"])[:n]:
        lines.append(f"{o['index']:>4} {o['kind']:<18} {o['kernel']:<14} {str(o['shapes']['out']):<16} "
                     f"{o['nonzero_macs']:>10} {o['instructions']:>11} {o['instructions'] / total:>6.1%}")
    return "\n".join(lines)

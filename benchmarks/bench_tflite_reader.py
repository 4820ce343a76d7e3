"""Work benchmark: the .tflite reader on hostile models vs good models of the same size.

Usage:
    .venv/bin/python benchmarks/bench_tflite_reader.py [--out benchmarks/results/tflite_reader.json]

Issue 17's two memory-exhaustion models (60,000 tensors sharing one shape
vector; thousands of weight tensors, or buffer tables, on one large buffer)
are built by tests/hostile_tflite.py, and next to each a good model of about
the same file size (one FULLY_CONNECTED on its own weights). Each is read and
encoded (read_tflite + every constant's array() + encode_model, as
`export --tflite` does) in one run, reporting CPU seconds, the peak of traced
Python allocations, and the refusal. The figure that matters is the ratio
hostile / good: bounded work means a hostile file costs about what a good
file of its size costs, instead of N x M.
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from entropi_tiny.atomic import write_json  # noqa: E402
from entropi_tiny.errors import UserError  # noqa: E402
from entropi_tiny.export.sparse_image import encode_model  # noqa: E402
from entropi_tiny.export.tflite_model import read_tflite  # noqa: E402
from hostile_tflite import shared_buffer_model, shared_shape_model  # noqa: E402


def measure(data: bytes) -> dict:
    tracemalloc.start()
    t0 = time.process_time()
    outcome = "read and encoded"
    try:
        model = read_tflite(data)
        for t in model.tensors:
            t.array()
        encode_model(data)
    except UserError as e:
        outcome = f"refused: {str(e)[:120]}"
    cpu = time.process_time() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"bytes": len(data), "cpu_s": round(cpu, 3), "peak_alloc_bytes": peak, "outcome": outcome}


def good_model(size: int) -> bytes:
    """One FULLY_CONNECTED whose own weights fill about `size` bytes."""
    return shared_buffer_model(max(100, size - 4096), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tflite_reader.json")
    a = ap.parse_args()
    cases = {"shared_shape_60000": shared_shape_model(60_000),
             "shared_buffer_3000_ops": shared_buffer_model(400_000, 3_000),
             "shared_data_3000_buffers": shared_buffer_model(400_000, 3_000, share_data=True)}
    rows = []
    for name, data in cases.items():
        hostile, good = measure(data), measure(good_model(len(data)))
        rows.append({"case": name, "hostile": hostile, "good_same_size": good,
                     "cpu_ratio": round(hostile["cpu_s"] / max(good["cpu_s"], 1e-3), 2),
                     "alloc_ratio": round(hostile["peak_alloc_bytes"] / max(good["peak_alloc_bytes"], 1), 2)})
        print(f"{name}: {hostile['bytes']:,} B, {hostile['cpu_s']} s, peak {hostile['peak_alloc_bytes']:,} B "
              f"({rows[-1]['cpu_ratio']}x / {rows[-1]['alloc_ratio']}x a good model): {hostile['outcome'][:60]}")
    write_json(a.out, {"benchmark": "tflite_reader", "rows": rows})


if __name__ == "__main__":
    main()

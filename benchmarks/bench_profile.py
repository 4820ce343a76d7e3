"""Paper Table 2 on the host: FLOPs and memory of one backprop step, frozen head vs full.

Usage:
    python benchmarks/bench_profile.py [--out benchmarks/results/profile.json] [--batch 16]

Runs the same counting as `entropi-tiny profile` (torch.utils.flop_counter;
weights + gradients + SGD momentum of the trained parameters, MB = 1e6 B)
for ResNet18, MobileNetV3-small and MobileNetV3-large at width 1 with a
5-class head (the paper's VLCS), and stores every row beside the paper's
figure for it, so the README's Table 2 comes from this file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from entropi_tiny import atomic  # noqa: E402
from entropi_tiny.profiling import METHODOLOGY, profile_rows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parent / "results" / "profile.json")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--classes", type=int, default=5)
    args = ap.parse_args()
    rows = profile_rows(args.batch, args.classes)
    atomic.write_json(args.out, {"benchmark": "profile", "batch": args.batch,
                                 "classes": args.classes,
                                 "methodology": METHODOLOGY.format(batch=args.batch),
                                 "rows": rows})
    for r in rows:
        print(f"{r['model']:>20} {r['mode']:>6}: {r['mflops']:>12.2f} MFLOPs "
              f"{r['memory_mb']:>9.2f} MB (paper: {r['paper_mflops']}, {r['paper_memory_mb']})")


if __name__ == "__main__":
    main()

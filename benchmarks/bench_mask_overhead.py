"""Training throughput with pruning masks enforced vs plain training, side by side.

Usage:
    python benchmarks/bench_mask_overhead.py [--out benchmarks/results/mask_overhead.json]

Both variants train the same model on the same real batches (the built-in
CIFAR-10 source task); "masked" adds the two mask operations of every step
(zeroing pruned gradients, re-zeroing pruned weights). Rounds alternate
between the variants so that machine noise hits both alike; the overhead is
the ratio of the medians.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from entropi_tiny import atomic  # noqa: E402
from entropi_tiny.config import DataConfig  # noqa: E402
from entropi_tiny.data import load_task, normalize  # noqa: E402
from entropi_tiny.models import build_model  # noqa: E402
from entropi_tiny.pruning.masks import (apply_masks, full_masks, global_magnitude_masks,  # noqa: E402
                                        mask_gradients, prunable_parameters)


def steps_per_second(model, params, masks, batches, opt) -> float:
    start = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if masks is not None:
            mask_gradients(params, masks)
        opt.step()
        if masks is not None:
            apply_masks(params, masks)
    return len(batches) / (time.perf_counter() - start)


def measure(arch: str, width: float, batch: int, steps: int, rounds: int, task) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, task.num_classes, width)
    params = prunable_parameters(model, ("conv", "linear"))
    masks = global_magnitude_masks(params, full_masks(params), 0.1)
    apply_masks(params, masks)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = normalize(task.train.images[:batch * steps])
    y = task.train.labels[:batch * steps]
    batches = [(x[i:i + batch], y[i:i + batch]) for i in range(0, batch * steps, batch)]
    model.train()
    steps_per_second(model, params, None, batches[:2], opt)          # warm-up
    plain, masked = [], []
    for r in range(rounds):
        # Alternate which variant goes first, so a slow spell hits both alike.
        order = [(plain, None), (masked, masks)]
        for sink, m in (order if r % 2 == 0 else order[::-1]):
            sink.append(steps_per_second(model, params, m, batches, opt))
    p, m = statistics.median(plain), statistics.median(masked)
    # Per-step cost of the mask operations alone, timed in isolation: the
    # noise-free part of the overhead.
    for prm in params.values():
        prm.grad = torch.ones_like(prm)
    start = time.perf_counter()
    for _ in range(20):
        mask_gradients(params, masks)
        apply_masks(params, masks)
    mask_s = (time.perf_counter() - start) / 20
    return {"arch": arch, "width": width, "batch": batch, "steps": steps, "rounds": rounds,
            "images_per_s_plain": p * batch, "images_per_s_masked": m * batch,
            "mask_overhead_pct": 100.0 * (p / m - 1.0),
            "mask_ops_ms_per_step": 1e3 * mask_s,
            "mask_ops_pct_of_step": 100.0 * mask_s * p}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/mask_overhead.json")
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    task = load_task("builtin", "source", DataConfig())
    rows = [measure("resnet18", 0.25, 128, 6, args.rounds, task),
            measure("mobilenet_v3_small", 0.5, 128, 6, args.rounds, task),
            measure("resnet18", 1.0, 32, 3, max(2, args.rounds // 2), task)]
    result = {"benchmark": "mask_overhead", "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "rows": rows,
              "max_overhead_pct": max(r["mask_overhead_pct"] for r in rows),
              "max_mask_ops_pct_of_step": max(r["mask_ops_pct_of_step"] for r in rows),
              "target_pct": 5.0}
    atomic.write_json(Path(args.out), result)
    for r in rows:
        print(f"{r['arch']:>20} w={r['width']:<4} plain {r['images_per_s_plain']:8.1f} img/s  "
              f"masked {r['images_per_s_masked']:8.1f} img/s  overhead {r['mask_overhead_pct']:+.2f}% "
              f"(mask ops alone {r['mask_ops_pct_of_step']:.2f}% of a step)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The exact entropy estimator on real CIFAR-10 features: throughput and relative cost.

Usage:
    python benchmarks/bench_entropy.py [--out benchmarks/results/entropy.json]
                                       [--data ../shared/data/cifar10/test] [--images 2000]

(a) Throughput: the streaming estimator (both passes, batches of 256) against a
    straightforward per-sample Python loop (tuple keys in a dict), on the same
    features of a resnet18 width-0.25 encoder over real test images. Both must
    give the same entropies and state count. Times are medians of alternating runs.
(b) Cost: the time of pass-2 counting over the time of the encoder's forward
    pass on the same batches, for resnet18 at width 1.0 and 0.25 (target < 10%).
The encoders are freshly initialised (seed 0): the counting cost depends on
the output shape, not on the weights. One torch thread: the machine is shared.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from entropi_tiny import atomic  # noqa: E402
from entropi_tiny.models import build_model, split_model  # noqa: E402
from entropi_tiny.selection.entropy import EntropyCounter, entropy_of_batches  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10 train set
LEVELS = 4


def load_images(folder: Path, n: int) -> torch.Tensor:
    """n uint8 (3, 32, 32) images, the same number from each class, in a fixed mixed order."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if not classes:
        sys.exit(f"no class folders under {folder}")
    per_class = math.ceil(n / len(classes))
    files = [f for c in classes for f in sorted(c.glob("*.png"))[:per_class]]
    files = [files[i] for i in np.random.default_rng(0).permutation(len(files))[:n]]
    arrays = [np.asarray(Image.open(f).convert("RGB"), np.uint8) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def normalize(images: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def naive_entropy(features: np.ndarray, levels: int) -> tuple[float, float, int]:
    """Eqs. 2-9 sample by sample in plain Python: (exact bits, bound bits, states)."""
    rows = features.tolist()
    lo, hi = min(min(r) for r in rows), max(max(r) for r in rows)
    delta = (hi - lo) / levels
    states: dict[tuple, int] = {}
    per_neuron: list[dict[int, int]] = [{} for _ in rows[0]]
    for r in rows:
        q = tuple(math.floor(v / delta + 0.5) if delta else 0 for v in r)
        states[q] = states.get(q, 0) + 1
        for counts, v in zip(per_neuron, q):
            counts[v] = counts.get(v, 0) + 1

    def h(counts) -> float:
        return -sum(c / len(rows) * math.log2(c / len(rows)) for c in counts)
    return h(states.values()), sum(h(c.values()) for c in per_neuron), len(states)


def encoder(width: float) -> torch.nn.Module:
    torch.manual_seed(0)
    enc, _ = split_model(build_model("resnet18", 10, width))
    return enc.eval()


def forward_batches(enc: torch.nn.Module, images: torch.Tensor, batch: int) -> tuple[list, float]:
    """The encoder's outputs per batch (numpy) and the seconds the forward passes took."""
    outs, seconds = [], 0.0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = normalize(images[i:i + batch])
            start = time.perf_counter()
            y = enc(x)
            seconds += time.perf_counter() - start
            outs.append(y.numpy())
    return outs, seconds


def throughput(images: torch.Tensor, repeats: int) -> dict:
    """(a): streaming estimator vs the per-sample loop on the same features."""
    batches, _ = forward_batches(encoder(0.25), images, 256)
    features = np.concatenate(batches)
    stream_times, naive_times = [], []
    for _ in range(repeats):  # alternate, so machine noise hits both alike
        start = time.perf_counter()
        r = entropy_of_batches(lambda: batches, LEVELS)
        stream_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        exact, bound, states = naive_entropy(features, LEVELS)
        naive_times.append(time.perf_counter() - start)
    agree = (states == r.n_states and abs(exact - r.exact_bits) < 1e-9
             and abs(bound - r.bound_bits) < 1e-9)
    stream_s, naive_s = statistics.median(stream_times), statistics.median(naive_times)
    return {"encoder": "resnet18", "width": 0.25, "n_images": len(features),
            "batch": 256, "repeats": repeats, "streaming_s": stream_s,
            "streaming_samples_per_s": len(features) / stream_s, "naive_s": naive_s,
            "naive_samples_per_s": len(features) / naive_s, "speedup": naive_s / stream_s,
            "naive_exact_bits": exact, "naive_bound_bits": bound, "agree": agree,
            "result": r.to_dict()}


def relative_cost(width: float, images: torch.Tensor, batch: int) -> dict:
    """(b): pass-2 counting time over forward time, on the same batches."""
    outs, forward_s = forward_batches(encoder(width), images, batch)
    counter = EntropyCounter(LEVELS)
    start = time.perf_counter()
    for y in outs:
        counter.observe_range(y)
    counter.freeze()
    range_s = time.perf_counter() - start
    start = time.perf_counter()
    for y in outs:
        counter.count(y)
    r = counter.result()
    count_s = time.perf_counter() - start
    return {"encoder": "resnet18", "width": width, "n_images": len(images), "batch": batch,
            "forward_s": forward_s, "range_s": range_s, "count_s": count_s,
            "count_over_forward": count_s / forward_s,
            # encoder_entropy runs two forward passes plus both counting passes
            "estimator_over_two_forwards": (range_s + count_s) / (2 * forward_s),
            "result": r.to_dict()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/entropy.json")
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/cifar10/test"))
    ap.add_argument("--images", type=int, default=2000, help="images for (a) and width 0.25")
    ap.add_argument("--images-full", type=int, default=256, help="images for width 1.0")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    images = load_images(Path(args.data), args.images)
    result = {"benchmark": "entropy", "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "levels": LEVELS,
              "data": os.path.relpath(args.data, REPO),
              "throughput": throughput(images, args.repeats),
              "cost": [relative_cost(1.0, images[:args.images_full], 64),
                       relative_cost(0.25, images, 256)],
              "target_count_over_forward": 0.10}
    atomic.write_json(Path(args.out), result)
    t = result["throughput"]
    print(f"(a) {t['n_images']} samples x {t['result']['n_neurons']} neurons: streaming "
          f"{t['streaming_samples_per_s']:,.0f} samples/s, per-sample loop "
          f"{t['naive_samples_per_s']:,.0f} samples/s ({t['speedup']:.0f}x); "
          f"H = {t['result']['exact_bits']:.4f} bits, same result: {t['agree']}")
    for c in result["cost"]:
        print(f"(b) resnet18 w={c['width']:<4} {c['n_images']} images: forward {c['forward_s']:.2f} s, "
              f"count {c['count_s'] * 1e3:.1f} ms = {100 * c['count_over_forward']:.2f}% "
              f"(target < 10%); H = {c['result']['exact_bits']:.3f} of {c['result']['max_bits']:.3f} "
              f"bits, saturated: {c['result']['saturated']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""What the head's narrow storage costs in accuracy: float32 vs bfloat16 weights / momentum.

Usage:
    python benchmarks/bench_head_storage.py [--out benchmarks/results/head_storage.json]
        [--data ../shared/data/cifar10] [--train-per-class 200] [--test-per-class 100]
        [--encoder runs/size/resnet18-0.0077]

Real data: the CIFAR-10 images of the shared subset (10 classes; PNG
ImageFolder), through a frozen encoder (a pruned sizing run's level 1, or a
ResNet18 at width 0.125 when none is given; by default first warmed up for a
few epochs on the training images so that its features carry signal), its features
quantized to int8 with one scale (zero point -128), as the device gets
them. Every head configuration is trained by entropi_tiny/head_reference.py,
which the tests prove bit-identical to the device's state, so these
accuracies are the device's. Bytes are head_memory() for 100 classes x 512
features (ResNet18 at the paper's scale) and the configuration's batch.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
sys.path.insert(0, str(ROOT))
from entropi_tiny import atomic, data  # noqa: E402
from entropi_tiny.codegen.head import HeadSpec, head_memory  # noqa: E402
from entropi_tiny.head_reference import HeadReference  # noqa: E402

CONFIGS = {   # name: (momentum, batch, weight_bits, momentum_bits, rounding)
    "sgd_b1_f32": (0.0, 1, 32, 32, "nearest"),
    "sgd_b1_bf16_nearest": (0.0, 1, 16, 32, "nearest"),
    "sgd_b1_bf16_stochastic": (0.0, 1, 16, 32, "stochastic"),
    "momentum_b16_f32": (0.9, 16, 32, 32, "nearest"),
    "momentum_b16_f32w_bf16m_stochastic": (0.9, 16, 32, 16, "stochastic"),
    "momentum_b16_bf16_nearest": (0.9, 16, 16, 16, "nearest"),
    "momentum_b16_bf16_stochastic": (0.9, 16, 16, 16, "stochastic"),
}


def load_images(root: Path, split: str, per_class: int):
    from PIL import Image

    classes = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
    imgs, labels = [], []
    for k, c in enumerate(classes):
        for f in sorted((root / split / c).glob("*.png"))[:per_class]:
            imgs.append(np.asarray(Image.open(f).convert("RGB"), np.uint8))
            labels.append(k)
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()   # uint8, as encode() wants
    return x, np.array(labels, np.uint8)


def encoder_of(run: str | None):
    from entropi_tiny.models import build_model, split_model

    if run:
        from entropi_tiny.paths import RunPaths
        from entropi_tiny.pruning.checkpoint import load_level

        model, _, meta = load_level(RunPaths(Path(run)).level_checkpoint(1))
        return split_model(model)[0], f"{meta['arch']} w{meta['width']:g} alpha {meta['alpha_actual']:.4f}"
    torch.manual_seed(0)
    return split_model(build_model("resnet18", 10, 0.125))[0], "resnet18 w0.125 random init"


def pretrain(enc, x: torch.Tensor, y: np.ndarray, epochs: int, feature_dim: int) -> None:
    """A short supervised warm-up of the encoder (Adam, batch 64) so its features carry signal;
    the head is then trained from scratch on the frozen, int8 features."""
    head = torch.nn.Linear(feature_dim, int(y.max()) + 1)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=2e-3)
    yt = torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(0)
    enc.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(head(enc(data.normalize(x[idx]))), yt[idx]).backward()
            opt.step()
    enc.eval()


def _repo_relative(path: Path) -> str:
    """The data folder as the results file records it: relative to the repository, so the
    file names no path of the machine that measured it."""
    return os.path.relpath(path.resolve(), ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/head_storage.json")
    ap.add_argument("--data", default=str(SHARED_CIFAR), help="default: ../shared/data/cifar10")
    ap.add_argument("--train-per-class", type=int, default=200)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--encoder", default=None)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--pretrain-epochs", type=int, default=4,
                    help="supervised warm-up of the encoder on the training images first")
    args = ap.parse_args()
    from entropi_tiny.transfer import encode

    torch.set_num_threads(1)
    enc, enc_name = encoder_of(args.encoder)
    (xtr, ytr), (xte, yte) = (load_images(Path(args.data), s, n) for s, n in
                              (("train", args.train_per_class), ("test", args.test_per_class)))
    if args.pretrain_epochs:
        pretrain(enc, xtr, ytr, args.pretrain_epochs, encode(enc, xtr[:2]).shape[1])
        enc_name += f", warmed up {args.pretrain_epochs} epochs on the training images"
    ftr, fte = encode(enc, xtr).numpy(), encode(enc, xte).numpy()
    scale = float(np.float32(ftr.max() / 255.0))
    q = {k: np.clip(np.round(f / scale) - 128, -128, 127).astype(np.int8)
         for k, f in (("train", ftr), ("test", fte))}
    x = (q["train"].astype(np.float32) + 128) * scale
    lr0 = float(np.float32(2.0 / np.mean(np.sum(x * x, axis=1))))   # stable for this scale
    rows = []
    for name, (mom, batch, wb, mb, rnd) in CONFIGS.items():
        lr = lr0 * (1 - mom) * (batch if batch > 1 else 1) ** 0.5
        spec = HeadSpec(feature_dim=q["train"].shape[1], num_classes=10,
                        num_samples=len(q["train"]), feature_scale=scale, feature_zero_point=-128,
                        lr=lr, momentum=mom, batch_size=batch, epochs=args.epochs, lr_decay=0.8,
                        weight_bits=wb, momentum_bits=mb, rounding=rnd, seed=1)
        t0 = time.monotonic()
        ref = HeadReference(spec)
        losses = ref.fit(q["train"], ytr)
        acc = 100.0 * ref.evaluate(q["test"], yte) / len(yte)
        big = HeadSpec(feature_dim=512, num_classes=100, num_samples=100, feature_scale=1.0,
                       momentum=mom, batch_size=batch, weight_bits=wb, momentum_bits=mb,
                       rounding=rnd)
        mem = head_memory(big)
        rows.append({"config": name, "momentum": mom, "batch": batch, "weight_bits": wb,
                     "momentum_bits": mb if mom else None, "rounding": rnd, "lr": lr,
                     "test_accuracy": acc, "losses": losses,
                     "bytes_100x512": {k: mem[k] for k in ("weight_bytes", "optimizer_bytes",
                                                           "gradient_bytes", "state_bytes")},
                     "host_s": round(time.monotonic() - t0, 1)})
        print(rows[-1], flush=True)
    atomic.write_json(Path(args.out), {"benchmark": "head_storage", "data": _repo_relative(Path(args.data)),
                                       "encoder": enc_name, "train": len(ytr), "test": len(yte),
                                       "epochs": args.epochs, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

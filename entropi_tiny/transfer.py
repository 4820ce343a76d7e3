"""Linear head on a frozen encoder: cached features, then cheap head training (Table 1, Fig. 3).

Usage:
    feats = level_features(paths, level, target, batch_size=256)   # cached on disk
    result = train_head(feats, TransferConfig(), seed=0)            # {"test_acc": ..}

The encoder is frozen, so its outputs on the target images never change:
they are computed once per level and stored in the run folder, and every
head (every seed, every level of the ablation) trains on them. The head is
trained with Adam and an exponential learning-rate decay per epoch, the
paper's recipe (lr 1e-5, decay 0.99, batch 128).
"""
from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from torch import nn

from . import atomic
from .config import TransferConfig
from .data import Task, normalize
from .errors import UserError
from .models import Encoder, split_model
from .paths import RunPaths
from .pruning.checkpoint import load_level

FEATURES_FORMAT = "entropi-tiny/features-v1"


@torch.no_grad()
def encode(encoder: Encoder, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Float features of uint8 images; a clear error if the images do not fit."""
    encoder.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start:start + batch_size])
        try:
            out.append(encoder(x))
        except RuntimeError as e:
            raise UserError(f"target images of shape {tuple(images.shape[1:])} do not fit the "
                            f"encoder: {str(e).splitlines()[0][:120]}") from None
    return torch.cat(out)


def level_features(paths: RunPaths, level: int, target: Task, batch_size: int = 256,
                   key: str = "") -> dict:
    """Train/test features of one level's encoder on the target task, cached.

    `key` names what the features were made from (the transfer stage hashes the
    level's checkpoint, the target images and the batch size); a cache with
    another key is recomputed."""
    path = paths.features(level)
    if path.is_file():
        cached = atomic.load_torch(path, FEATURES_FORMAT)
        if key and cached.get("key") == key:
            return cached
    model, _, _ = load_level(paths.level_checkpoint(level))
    encoder, _ = split_model(model)
    feats = {"format": FEATURES_FORMAT, "key": key, "target": target.name,
             "n_train": len(target.train),
             "train": encode(encoder, target.train.images, batch_size),
             "train_labels": target.train.labels,
             "test": encode(encoder, target.test.images, batch_size),
             "test_labels": target.test.labels, "num_classes": target.num_classes}
    atomic.save_torch(path, feats)
    return feats


def train_head(feats: dict, cfg: TransferConfig, seed: int) -> dict:
    """Adam on a fresh Linear head; returns train/test top-1 (%) and the loss curve."""
    torch.manual_seed(seed)
    x, y = feats["train"], feats["train_labels"]
    head = nn.Linear(x.shape[1], int(feats["num_classes"]))
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    gen = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(cfg.epochs):
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(head(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        curve.append(total / len(x))
    return {"seed": seed, "train_acc": accuracy(head, x, y),
            "test_acc": accuracy(head, feats["test"], feats["test_labels"]), "loss_curve": curve}


@torch.no_grad()
def accuracy(head: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float((head(x).argmax(1) == y).float().mean())


def summarize(runs: list[dict]) -> dict:
    accs = [r["test_acc"] for r in runs]
    return {"test_acc_mean": statistics.fmean(accs),
            "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "seeds": [{k: r[k] for k in ("seed", "train_acc", "test_acc")} for r in runs]}

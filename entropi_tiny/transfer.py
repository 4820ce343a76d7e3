"""Linear head on a frozen encoder: cached features, then cheap head training (Table 1, Fig. 3).

Usage:
    feats = level_features(paths, level, target, batch_size=256)   # cached on disk
    result = train_head(feats, TransferConfig(), seed=0)            # {"test_acc": ..}

The encoder is frozen, so its outputs on the target images never change:
they are computed once per level and stored in the run folder, and every
head (every seed, every level of the ablation) trains on them. The head is
trained with Adam and an exponential learning-rate decay per epoch, the
paper's recipe (lr 1e-5, decay 0.99, batch 128) by default; the tuned recipe
of the quick and medium presets z-scores the features and starts from the
closed-form ridge fit (fit_head), so encoders are compared, not under-trained
heads. stages/control.py adds the matched dense control and the validation
baseline beside these rows (controls.json).
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
    """A fresh linear head on the train features; returns train/test top-1 (%)
    and the loss curve."""
    x, y = feats["train"], feats["train_labels"]
    head, curve = fit_head(x, y, int(feats["num_classes"]), cfg, seed)
    return {"seed": seed, "train_acc": accuracy(head, x, y),
            "test_acc": accuracy(head, feats["test"], feats["test_labels"]), "loss_curve": curve}


def holdout_head(feats: dict, cfg: TransferConfig, seed: int) -> dict:
    """The validation baseline: a head fitted on the target train features minus
    a held-out share (transfer.holdout_fraction, stratified, fixed split), scored
    on that share. The test set is never looked at."""
    fit, held = holdout_split(feats["train_labels"], cfg.holdout_fraction)
    x, y = feats["train"], feats["train_labels"]
    head, _ = fit_head(x[fit], y[fit], int(feats["num_classes"]), cfg, seed)
    return {"seed": seed, "holdout_acc": accuracy(head, x[held], y[held]), "n_holdout": len(held)}


def holdout_split(labels: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit, held) indices: `fraction` of every class held out, by a fixed permutation."""
    gen = torch.Generator().manual_seed(12345)
    fit, held = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_held = max(1, round(fraction * len(idx))) if len(idx) > 1 else 0
        held.append(idx[:n_held])
        fit.append(idx[n_held:])
    return torch.cat(fit).sort().values, torch.cat(held).sort().values


def fit_head(x: torch.Tensor, y: torch.Tensor, num_classes: int, cfg: TransferConfig,
             seed: int) -> tuple[nn.Module, list[float]]:
    """The head recipe. Paper (`init = random`, no standardisation): nn.Linear's
    random start, then Adam with exponential lr decay per epoch on cross-entropy.
    Tuned (`standardize`, `init = ridge`): features z-scored with the fit set's
    mean and std, the head started at the closed-form ridge least-squares fit to
    the centred one-hot labels (scaled to the best cross-entropy), then the same Adam."""
    torch.manual_seed(seed)
    x = x.float()
    scale = Standardize(x) if cfg.standardize else nn.Identity()
    linear = nn.Linear(x.shape[1], num_classes)
    if cfg.init == "ridge":
        ridge_start(linear, scale(x), y, num_classes, cfg.ridge)
    head = nn.Sequential(scale, linear)
    opt = torch.optim.Adam(linear.parameters(), lr=cfg.lr)
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
    return head, curve


class Standardize(nn.Module):
    """z = (x - mean) / std with the fit set's statistics; a constant feature
    (a dead ReLU, common in pruned encoders) keeps std 1 and so becomes 0."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        std = x.std(0)
        self.register_buffer("mean", x.mean(0))
        self.register_buffer("std", torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@torch.no_grad()
def ridge_start(linear: nn.Linear, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                penalty: float) -> None:
    """Set `linear` to the ridge regression of the centred one-hot labels on x
    (closed form, float64, penalty * n on the weights, none on the bias), times
    the scale in 2^0..2^8 with the lowest training cross-entropy: least squares
    fixes the direction, the scale makes it a reasonable softmax start."""
    xd = x.double()
    n, d = xd.shape
    target = F.one_hot(y, num_classes).double() - 1.0 / num_classes
    mean_x, mean_t = xd.mean(0), target.mean(0)
    xc, tc = xd - mean_x, target - mean_t
    gram = xc.T @ xc + penalty * n * torch.eye(d, dtype=torch.float64)
    w = torch.linalg.solve(gram, xc.T @ tc)                    # (d, C)
    b = mean_t - mean_x @ w
    logits = xd @ w + b
    best = min((float(F.cross_entropy(s * logits, y)), s) for s in (2.0 ** k for k in range(9)))[1]
    linear.weight.copy_((best * w).T.float())
    linear.bias.copy_((best * b).float())


@torch.no_grad()
def accuracy(head: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float((head(x).argmax(1) == y).float().mean())


def summarize(runs: list[dict]) -> dict:
    accs = [r["test_acc"] for r in runs]
    return {"test_acc_mean": statistics.fmean(accs),
            "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "train_acc_mean": statistics.fmean(r["train_acc"] for r in runs),
            "seeds": [{k: r[k] for k in ("seed", "train_acc", "test_acc")} for r in runs]}

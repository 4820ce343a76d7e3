"""One epoch of masked source training, and evaluation.

Usage:
    opt = make_optimizer(model, cfg.prune)
    loss = train_epoch(model, params, masks, opt, task.train, cfg, level, epoch, ctx)
    acc = evaluate(model, task.test)

Every random choice of an epoch (shuffle order, crops, flips, dropout) is
drawn from a generator seeded by (seed, level, epoch). An epoch is then a
pure function of the state at its start, which is what makes a resumed run
identical to an uninterrupted one. The learning rate follows a cosine from
`lr` to 0 over the level's steps, computed from the step index, so there is
no scheduler state to save either.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, PruneConfig
from ..data import Split, normalize
from ..dist import DistContext
from .masks import apply_masks, mask_gradients


def epoch_seed(seed: int, level: int, epoch: int) -> int:
    return (seed * 1_000_003 + level * 10_007 + epoch) % (2**63 - 1)


def make_optimizer(model: nn.Module, cfg: PruneConfig) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def cosine_lr(base: float, step: int, total: int) -> float:
    return 0.5 * base * (1.0 + math.cos(math.pi * step / total))


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crop of the 4-pixel zero-padded image, and a random flip."""
    n, _, h, w = images.shape
    padded = F.pad(images, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=gen)
    dx = torch.randint(0, 9, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(images)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def rank_batches(n: int, batch_size: int, gen: torch.Generator, ctx: DistContext):
    """This rank's index batches for one epoch: one global permutation, each
    global batch of `batch_size` split evenly across ranks; a last partial
    batch is kept when running alone and dropped under DDP (equal step counts)."""
    perm = torch.randperm(n, generator=gen)
    per_rank = batch_size // ctx.world_size if ctx.distributed else batch_size
    step = per_rank * ctx.world_size
    stop = (n // step) * step if ctx.distributed else n
    for start in range(0, stop, step):
        chunk = perm[start:start + step]
        yield chunk[ctx.rank::ctx.world_size]


def steps_per_epoch(n: int, batch_size: int, ctx: DistContext) -> int:
    if ctx.distributed:
        return n // ((batch_size // ctx.world_size) * ctx.world_size)
    return math.ceil(n / batch_size)


def train_epoch(model: nn.Module, params: dict, masks: dict, opt: torch.optim.Optimizer,
                split: Split, cfg: Config, level: int, epoch: int, ctx: DistContext,
                on_step=None) -> float:
    """Train one epoch with the masks enforced; returns the mean training loss."""
    pc = cfg.prune
    seed = epoch_seed(pc.seed, level, epoch)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)   # dropout inside the model draws from the global RNG
    model.train()
    total_steps = pc.epochs * steps_per_epoch(len(split), pc.batch_size, ctx)
    step0 = epoch * steps_per_epoch(len(split), pc.batch_size, ctx)
    loss_sum, count = 0.0, 0
    for i, idx in enumerate(rank_batches(len(split), pc.batch_size, gen, ctx)):
        images = split.images[idx]
        if cfg.data.augment:
            images = augment(images, gen)
        x = normalize(images).to(ctx.device)
        y = split.labels[idx].to(ctx.device)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(pc.lr, step0 + i, total_steps)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        mask_gradients(params, masks)
        opt.step()
        apply_masks(params, masks)
        loss_sum += loss.item() * len(idx)
        count += len(idx)
        if on_step is not None:
            on_step()
    return loss_sum / max(count, 1)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, device: torch.device = torch.device("cpu"),
             batch_size: int = 500) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    correct = 0
    for start in range(0, len(split), batch_size):
        x = normalize(split.images[start:start + batch_size]).to(device)
        pred = model(x).argmax(1).cpu()
        correct += int((pred == split.labels[start:start + batch_size]).sum())
    return 100.0 * correct / len(split)

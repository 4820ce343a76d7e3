"""Iterative magnitude pruning on the source task, one checkpoint per level.

Usage:
    summary = run_imp(cfg, RunPaths(Path("export/default")), quiet=False)

Level 0 trains the dense network. Level k > 0 starts from level k-1's
weights, prunes globally to alpha_k = (1 - rate)^k (eq. 7), optionally
rewinds the survivors to early weights, and trains `epochs` epochs with the
mask enforced. After every epoch the model and optimizer go to an atomic
partial checkpoint; a finished level writes its final checkpoint and drops
the partial. A rerun therefore skips finished levels, resumes an unfinished
one at its last epoch, and (every epoch being seeded by seed, level and
epoch) ends bit-identical to a run that was never interrupted.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from tqdm import tqdm

from .. import atomic, data, models
from ..config import Config
from ..dist import DistContext
from ..paths import RunPaths
from . import checkpoint as ckpt
from .masks import (alpha_schedule, apply_masks, density, full_masks,
                    global_magnitude_masks, prunable_parameters)
from .train import evaluate, make_optimizer, steps_per_epoch, train_epoch

def run_imp(cfg: Config, paths: RunPaths, quiet: bool = False,
            task: data.Task | None = None) -> list[dict]:
    """Train every missing level; the prune stage (stages/prune.py) checks the
    folder's settings and writes prune.json, the manifest, afterwards."""
    ctx = DistContext.from_env()
    try:
        return _run(cfg, paths, ctx, quiet or not ctx.is_main, task)
    finally:
        ctx.close()


def _run(cfg: Config, paths: RunPaths, ctx: DistContext, quiet: bool,
         task: data.Task | None) -> list[dict]:
    task = task or data.load_task(cfg.data.source, "source", cfg.data)
    if ctx.is_main:
        atomic.remove_stale_temps(paths.root)
    ctx.barrier()
    torch.manual_seed(cfg.prune.seed)
    model = models.build_model(cfg.model.arch, task.num_classes, cfg.model.width)
    init_state = copy.deepcopy(model.state_dict())
    alphas = alpha_schedule(cfg.prune.rate, cfg.prune.levels, cfg.prune.min_alpha)
    rows = []
    bar = tqdm(total=len(alphas), desc="levels", unit="level", disable=quiet, position=0)
    for level, alpha in enumerate(alphas):
        final = paths.level_checkpoint(level)
        if final.is_file():
            model, _, meta = ckpt.load_level(final)
        else:
            meta = _train_level(cfg, paths, ctx, task, level, alpha, model, init_state, quiet)
            ctx.barrier()
            model, _, meta = ckpt.load_level(final)
        rows.append(meta)
        bar.update(1)
        bar.set_postfix(alpha=f"{meta['alpha_actual']:.4f}", test=f"{meta['test_acc']:.1f}%")
    bar.close()
    return rows


def summary_row(meta: dict) -> dict:
    """The prune.json row of one level."""
    keys = ("level", "alpha_target", "alpha_actual", "alpha_encoder", "nonzero", "prunable",
            "train_acc", "test_acc", "train_loss")
    return {k: meta[k] for k in keys}


def _start_weights(cfg, paths, level, alpha, model, init_state):
    """Weights and masks a level starts from (the previous level's, pruned), and
    how many epochs of training those weights have already seen."""
    params = prunable_parameters(model, cfg.prune.include)
    if level == 0:
        model.load_state_dict(init_state)
        return full_masks(params), 0
    prev_model, prev_masks, prev_meta = ckpt.load_level(paths.level_checkpoint(level - 1))
    model.load_state_dict(prev_model.state_dict())
    masks = global_magnitude_masks(params, prev_masks, alpha)
    before = epochs_seen(prev_meta)
    if cfg.prune.rewind:
        rewind = atomic.load_torch(paths.rewind_checkpoint, "entropi-tiny/rewind-v1")
        ckpt.load_state(model, rewind.get("state_dict"), paths.rewind_checkpoint)
        before = cfg.prune.rewind_epoch
    apply_masks(params, masks)
    return masks, before


def epochs_seen(meta: dict) -> int | None:
    """Epochs a checkpoint's weights were trained in all (None: an older file)."""
    value = meta.get("epochs_total")
    return int(value) if value is not None else None


def _train_level(cfg: Config, paths: RunPaths, ctx: DistContext, task: data.Task, level: int,
                 alpha: float, model: nn.Module, init_state: dict, quiet: bool,
                 start_fn=None, label: str = "level") -> dict:
    """Train one level into paths.level_checkpoint(level). `start_fn(model)` loads
    the starting weights and returns the masks (default: IMP's, _start_weights);
    the matched dense control passes its own (pruning/control.py)."""
    if start_fn is None:
        masks, before = _start_weights(cfg, paths, level, alpha, model, init_state)
    else:
        masks, before = start_fn(model)
    model.to(ctx.device)
    params = prunable_parameters(model, cfg.prune.include)
    masks = {n: m.to(ctx.device) for n, m in masks.items()}
    opt = make_optimizer(model, cfg.prune)
    start, losses = 0, []
    partial = paths.level_partial(level)
    if partial.is_file():
        saved_masks, start, losses = ckpt.load_partial(partial, model, opt, names=list(params),
                                                       epochs=cfg.prune.epochs)
        masks = {n: m.to(ctx.device) for n, m in saved_masks.items()}
    if level == 0 and start == 0 and cfg.prune.rewind and cfg.prune.rewind_epoch == 0 \
            and ctx.is_main:
        _save_rewind(paths, model)
    net = nn.parallel.DistributedDataParallel(model) if ctx.distributed else model
    n_steps = steps_per_epoch(len(task.train), cfg.prune.batch_size, ctx)
    bar = tqdm(total=cfg.prune.epochs * n_steps, initial=start * n_steps, leave=False,
               desc=f"{label} {level} (alpha {alpha:.4f})", unit="step", disable=quiet, position=1)
    for epoch in range(start, cfg.prune.epochs):
        loss = train_epoch(net, params, masks, opt, task.train, cfg, level, epoch, ctx,
                           on_step=lambda: bar.update(1))
        losses.append(loss)
        if ctx.is_main:
            # The rewind point first: a kill between the two writes then
            # replays this epoch, which rewrites the same rewind weights.
            if level == 0 and cfg.prune.rewind and cfg.prune.rewind_epoch == epoch + 1:
                _save_rewind(paths, model)
            ckpt.save_partial(partial, model, opt, masks, epoch + 1, losses)
            if not quiet:
                tqdm.write(f"{label} {level:2d} alpha {alpha:.4f} epoch {epoch + 1}/"
                           f"{cfg.prune.epochs} loss {loss:.4f}")
        ctx.barrier()
    bar.close()
    meta = {}
    if ctx.is_main:
        meta = _finish_level(cfg, paths, task, level, alpha, model, params, masks, losses, before)
    return meta


def _finish_level(cfg, paths, task, level, alpha, model, params, masks, losses, before) -> dict:
    model_cpu = model.to("cpu")
    masks = {n: m.cpu() for n, m in masks.items()}
    # losses holds one entry per epoch trained at this level (resumed ones included).
    total = None if before is None else before + len(losses)
    meta = {"level": level, "alpha_target": alpha, **density(model_cpu, params),
            "train_acc": evaluate(model_cpu, task.train), "test_acc": evaluate(model_cpu, task.test),
            "train_loss": losses[-1] if losses else None,
            "epochs_level": len(losses), "epochs_total": total,
            "arch": cfg.model.arch, "width": cfg.model.width, "num_classes": task.num_classes,
            "classes": list(task.classes), "config": cfg.to_dict()}
    ckpt.save_level(paths.level_checkpoint(level), model_cpu, masks, meta)
    paths.level_partial(level).unlink(missing_ok=True)
    return meta


def _save_rewind(paths: RunPaths, model: nn.Module) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic.save_torch(paths.rewind_checkpoint, {"format": "entropi-tiny/rewind-v1",
                                                "state_dict": state})

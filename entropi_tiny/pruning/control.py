"""The budget-matched dense control: IMP's chain of levels with nothing pruned.

Usage:
    cumulative_epochs(cfg.prune, 5)                # epochs level 5's weights have seen
    train_controls(cfg, paths, ctx, task, up_to=5)  # controls/levels/level_01..05
    (stages/control.py runs it as a stage and commits controls/prune.json)
    control_paths(paths).level_checkpoint(5)        # the dense control of level 5

IMP level k trains `prune.epochs` epochs on top of level k-1, so a pruned level
has seen more training than the dense level 0 (issue 12: that, not pruning, was
the quick preset's whole gain). Control level k is trained exactly like IMP level
k, by the same function (imp._train_level): same seed, data order, augmentation,
learning-rate schedule and epoch count, starting from control level k-1 (or from
the rewind weights when `prune.rewind`, as the level does); only its masks are
full. It has therefore seen cumulative_epochs(k) epochs, as level k has, and
differs from it only in that nothing was pruned. Control level 0 is IMP level 0
(nothing is pruned there yet), so the chain starts from that checkpoint.

When it is trained (`prune.matched_control`):
  "selected"  by `transfer` (through the control stage), up to the selected level. The chain
              passes through every smaller budget, so the controls of all levels
              up to the selected one come with it; levels beyond it get none.
  "all"       by `prune` (through the control stage), one per level, before
              anything is selected.
  "none"      never.
Every epoch is checkpointed atomically like a level's, so a killed control
resumes where it stopped and ends bit-identical.
"""
from __future__ import annotations

from .. import atomic, data, models
from ..config import Config, PruneConfig
from ..dist import DistContext
from ..paths import RunPaths
from . import checkpoint as ckpt
from .imp import _train_level, epochs_seen  # IMP's epoch loop, checkpoints and resume
from .masks import full_masks, prunable_parameters

CONTROL_DIR = "controls"


def control_paths(paths: RunPaths) -> RunPaths:
    """The control chain's own run folder (levels/, features/, prune.json)."""
    return RunPaths(paths.root / CONTROL_DIR)


def cumulative_epochs(p: PruneConfig, level: int) -> int:
    """Epochs of training the weights of IMP level `level` have seen in total.

    Without rewinding: (level + 1) * epochs, each level training on top of the
    last. With rewinding, level k > 0 restarts from the weights after
    `rewind_epoch` dense epochs, so its weights have seen rewind_epoch + epochs
    (the masks still come from the whole chain: `compute_epochs` counts that)."""
    if level == 0:
        return p.epochs
    if p.rewind:
        return p.rewind_epoch + p.epochs
    return (level + 1) * p.epochs


def compute_epochs(p: PruneConfig, level: int) -> int:
    """Epochs spent to produce level `level`, rewinding or not."""
    return (level + 1) * p.epochs


def control_up_to(cfg: Config, selected: int, last_level: int) -> int:
    """The last control level `transfer` needs under prune.matched_control."""
    mode = cfg.prune.matched_control
    if mode == "none":
        return 0
    return last_level if mode == "all" else selected


def train_controls(cfg: Config, paths: RunPaths, ctx: DistContext, task: data.Task,
                   up_to: int, quiet: bool = True) -> list[dict]:
    """Train the missing control levels 1..up_to; returns their summary rows."""
    cpaths = control_paths(paths)
    rows = []
    for level in range(1, up_to + 1):
        final = cpaths.level_checkpoint(level)
        if not final.is_file():
            model = models.build_model(cfg.model.arch, task.num_classes, cfg.model.width)
            start = _start(cfg, paths, level)
            _train_level(cfg, cpaths, ctx, task, level, 1.0, model, None, quiet, start_fn=start,
                         label="dense control of level")
            ctx.barrier()
        rows.append(control_row(cfg, cpaths, level))
    return rows      # the control stage (stages/control.py) commits them


def control_row(cfg: Config, cpaths: RunPaths, level: int) -> dict:
    meta = ckpt.load_level(cpaths.level_checkpoint(level))[2]
    return {"level": level, "alpha_actual": meta["alpha_actual"], "train_acc": meta["train_acc"],
            "test_acc": meta["test_acc"], "cumulative_epochs": cumulative_epochs(cfg.prune, level),
            "epochs_total": meta.get("epochs_total")}


def _start(cfg: Config, paths: RunPaths, level: int):
    """start_fn for control `level`: the previous control's weights (IMP level 0
    for level 1), or the rewind weights, and full masks."""
    def start(model) -> dict:
        if cfg.prune.rewind:
            rewind = atomic.load_torch(paths.rewind_checkpoint, "entropi-tiny/rewind-v1")
            ckpt.load_state(model, rewind.get("state_dict"), paths.rewind_checkpoint)
            before = cfg.prune.rewind_epoch
        else:
            prev = (paths if level == 1 else control_paths(paths)).level_checkpoint(level - 1)
            prev_model, _, prev_meta = ckpt.load_level(prev)
            model.load_state_dict(prev_model.state_dict())
            before = epochs_seen(prev_meta)
        return full_masks(prunable_parameters(model, cfg.prune.include)), before
    return start


def run_controls(cfg: Config, paths: RunPaths, up_to: int, quiet: bool = True,
                 task: data.Task | None = None) -> list[dict]:
    """train_controls in its own (possibly distributed) context: for the control stage."""
    if up_to < 1:
        return []
    ctx = DistContext.from_env()
    try:
        task = task or data.load_task(cfg.data.source, "source", cfg.data)
        return train_controls(cfg, paths, ctx, task, up_to, quiet or not ctx.is_main)
    finally:
        ctx.close()

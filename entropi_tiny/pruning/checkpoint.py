"""Level checkpoints: what one pruning level leaves behind, and how to load it safely.

Usage:
    save_level(paths.level_checkpoint(3), model, masks, meta)
    model, masks, meta = load_level(paths.level_checkpoint(3))

A level checkpoint holds the weights (pruned weights exactly zero), the
masks, the target and actual alpha, train/test accuracy and the config that
made it. It is loaded with `weights_only=True` and checked against the model
it claims to be, so a corrupt or foreign file is a one-line UserError.

Before any model is built from a file, its metadata is checked field by field
(check_level_meta: types and ranges, the model size through config's declared
ranges), then its weights' shapes against a model built on torch's meta
device (check_state_shapes), so a crafted width or class count cannot make us
allocate more than the file holds; then its masks against the model (check_masks). A resume file's epoch, losses
and masks are checked the same way (check_partial). The checks are plain
functions, so every stage that reads these files can call them.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import atomic, models
from ..config import ARCHS, check_number
from ..errors import UserError

LEVEL_FORMAT = "entropi-tiny/level-v1"
PARTIAL_FORMAT = "entropi-tiny/partial-v1"


def save_level(path: Path, model: nn.Module, masks: dict, meta: dict[str, Any]) -> None:
    atomic.save_torch(path, {"format": LEVEL_FORMAT, "state_dict": model.state_dict(),
                             "masks": masks, "meta": meta})


# Metadata a level checkpoint must carry: key -> (types, low, high); None: no range.
_NUM = (int, float)
LEVEL_META = {
    "level": ((int,), 0, 1000),
    "alpha_target": (_NUM, 0.0, 1.0),
    "alpha_actual": (_NUM, 0.0, 1.0),
    "alpha_encoder": (_NUM, 0.0, 1.0),
    "nonzero": ((int,), 0, 2**40),
    "prunable": ((int,), 1, 2**40),
    "train_acc": (_NUM, 0.0, 100.0),
    "test_acc": (_NUM, 0.0, 100.0),
    "num_classes": ((int,), 2, 100_000),
}


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"checkpoint {path}: {what}")


def _number(meta: dict, key: str, path: Path, types, low, high):
    if key not in meta:
        raise _bad(path, f"metadata lacks '{key}'")
    v = meta[key]
    if isinstance(v, bool) or not isinstance(v, types):
        raise _bad(path, f"metadata '{key}' must be {'an integer' if types == (int,) else 'a number'}, "
                         f"got {_short(v)}")
    if isinstance(v, float) and not math.isfinite(v) or not low <= v <= high:
        raise _bad(path, f"metadata '{key}' = {_short(v)} is outside [{low}, {high}]")
    return v


def _short(v: Any) -> str:
    text = repr(v) if not isinstance(v, (dict, list, tuple)) else f"a {type(v).__name__}"
    return text if len(text) <= 40 else text[:40] + "..."


def check_level_meta(meta: Any, path: Path) -> dict:
    """The metadata of a level checkpoint, checked before a model is built from it."""
    if not isinstance(meta, dict):
        raise _bad(path, "lacks its metadata")
    for key, (types, low, high) in LEVEL_META.items():
        _number(meta, key, path, types, low, high)
    if meta["nonzero"] > meta["prunable"]:
        raise _bad(path, f"metadata says {meta['nonzero']} of {meta['prunable']} weights are non-zero")
    if meta.get("arch") not in ARCHS:
        raise _bad(path, f"metadata 'arch' must be one of {', '.join(ARCHS)}, got {_short(meta.get('arch'))}")
    if "width" not in meta:
        raise _bad(path, "metadata lacks 'width'")
    try:
        check_number("model.width", meta["width"])
    except UserError as e:
        raise _bad(path, f"metadata 'width': {e}") from None
    loss = meta.get("train_loss", None)
    if loss is not None and (isinstance(loss, bool) or not isinstance(loss, _NUM)
                             or not math.isfinite(loss)):
        raise _bad(path, f"metadata 'train_loss' must be a finite number or null, got {_short(loss)}")
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) != meta["num_classes"] \
            or not all(isinstance(c, str) for c in classes):
        raise _bad(path, f"metadata 'classes' must list {meta['num_classes']} class names")
    config = meta.get("config", {})
    if not isinstance(config, dict) or not isinstance(config.get("prune", {}), dict):
        raise _bad(path, "metadata 'config' must be a table of tables")
    include = config.get("prune", {}).get("include", ["conv"])
    if not isinstance(include, list) or not include or not all(
            isinstance(k, str) and k in ("conv", "linear", "head") for k in include):
        raise _bad(path, "metadata config prune.include is not a list of conv, linear, head")
    return meta


def check_masks(masks: Any, model: nn.Module, path: Path, names: Any = None) -> dict:
    """Masks: a bool tensor per weight, shaped like it; with `names`, exactly those
    weights (the prunable set the training uses)."""
    if not isinstance(masks, dict) or not masks:
        raise _bad(path, "has no masks")
    params = dict(model.named_parameters())
    for name, m in masks.items():
        label = _short(name)
        if not isinstance(name, str) or name not in params:
            raise _bad(path, f"mask {label} names no weight of the model")
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
            raise _bad(path, f"mask {label} is not a bool tensor")
        if tuple(m.shape) != tuple(params[name].shape):
            raise _bad(path, f"mask {label} has shape {list(m.shape)}, "
                             f"the weight {list(params[name].shape)}")
    if names is not None and set(masks) != set(names):
        missing = sorted(set(names) - set(masks)) or sorted(set(masks) - set(names))
        raise _bad(path, f"masks do not cover the prunable weights (first difference: {missing[0]})")
    return masks


def _mask_names(model: nn.Module, meta: dict):
    """The prunable weights named by the config recorded in the metadata, if any."""
    include = meta.get("config", {}).get("prune", {}).get("include")
    if include is None:
        return None
    from .masks import prunable_parameters

    return list(prunable_parameters(model, tuple(include)))


def check_state_shapes(meta: dict, state: Any, path: Path) -> None:
    """The weights in the file have exactly the names and shapes of the model the
    metadata describes, checked on a model built on torch's meta device (no
    memory), so building the real one allocates no more than the file holds."""
    if not isinstance(state, dict):
        raise _bad(path, "has no weights")
    with torch.device("meta"):
        probe = models.build_model(meta["arch"], meta["num_classes"], float(meta["width"]))
    want = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    for key, shape in want.items():
        got = state.get(key)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape:
            found = list(got.shape) if isinstance(got, torch.Tensor) else "none"
            raise _bad(path, f"weights do not fit a {meta['arch']} of width {meta['width']} with "
                             f"{meta['num_classes']} classes: {_short(key)} is {found}, not {list(shape)}")
    extra = sorted(str(k) for k in set(state) - set(want))
    if extra:
        raise _bad(path, f"holds weights the model lacks, e.g. {_short(extra[0])}")


def load_level(path: Path) -> tuple[nn.Module, dict, dict]:
    obj = atomic.load_torch(path, LEVEL_FORMAT)
    meta = check_level_meta(obj.get("meta"), path)
    check_state_shapes(meta, obj.get("state_dict"), path)
    model = models.build_model(meta["arch"], meta["num_classes"], float(meta["width"]))
    load_state(model, obj.get("state_dict"), path)
    masks = check_masks(obj.get("masks"), model, path, _mask_names(model, meta))
    params = dict(model.named_parameters())
    for name, m in masks.items():
        if bool((params[name].detach()[~m] != 0).any()):
            raise _bad(path, f"weight {name} is non-zero where its mask prunes it")
    return model, masks, meta



def load_state(model: nn.Module, state: Any, path: Path) -> None:
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} has no weights")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"checkpoint {path} does not fit the model: {first[:160]}") from None


def save_partial(path: Path, model: nn.Module, opt: torch.optim.Optimizer, masks: dict,
                 epoch: int, losses: list[float]) -> None:
    """State after `epoch` finished epochs of an unfinished level."""
    atomic.save_torch(path, {"format": PARTIAL_FORMAT, "state_dict": model.state_dict(),
                             "optimizer": opt.state_dict(), "masks": masks,
                             "epoch": epoch, "losses": losses})


def check_partial(obj: dict, model: nn.Module, path: Path, names: Any = None,
                  epochs: int | None = None) -> tuple[dict, int, list]:
    """A resume file's masks, epoch (1..epochs: a partial is written after each
    finished epoch) and losses (one finite number per finished epoch)."""
    masks = check_masks(obj.get("masks"), model, path, names)
    epoch = obj.get("epoch")
    high = epochs if epochs is not None else 1_000_000
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= high:
        raise _bad(path, f"resume epoch must be an integer in [1, {high}], got {_short(epoch)}")
    losses = obj.get("losses", [])
    if not isinstance(losses, list) or len(losses) != epoch or not all(
            isinstance(x, _NUM) and not isinstance(x, bool) and math.isfinite(x) for x in losses):
        raise _bad(path, f"resume losses must be {epoch} finite numbers")
    return masks, epoch, list(losses)


def load_partial(path: Path, model: nn.Module, opt: torch.optim.Optimizer,
                 names: Any = None, epochs: int | None = None) -> tuple[dict, int, list]:
    """Resume state into `model` and `opt`; `names`: the prunable weights the
    masks must cover, `epochs`: the level's epoch count (both checked when given)."""
    obj = atomic.load_torch(path, PARTIAL_FORMAT)
    masks, epoch, losses = check_partial(obj, model, path, names, epochs)
    load_state(model, obj.get("state_dict"), path)
    _load_optimizer(opt, obj.get("optimizer"), path)
    return masks, epoch, losses


def _load_optimizer(opt: torch.optim.Optimizer, state: Any, path: Path) -> None:
    """The optimizer's buffers from a resume file. Its hyperparameters must be the
    ones the config gives (the learning rate is set anew every step), and every
    buffer must have its parameter's shape, or the next step would fail or drift."""
    before = [{k: v for k, v in g.items() if k not in ("params", "lr")} for g in opt.param_groups]
    try:
        opt.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError, AttributeError, IndexError):
        raise UserError(f"checkpoint {path} has an unusable optimizer state") from None
    after = [{k: v for k, v in g.items() if k not in ("params", "lr")} for g in opt.param_groups]
    if after != before:
        raise _bad(path, "optimizer settings differ from the config's (momentum, weight decay)")
    for p, st in opt.state.items():
        for key, v in st.items():
            if isinstance(v, torch.Tensor) and v.dim() and v.shape != p.shape:
                raise _bad(path, f"optimizer buffer '{_short(key)}' has shape {list(v.shape)}, "
                                 f"its parameter {list(p.shape)}")

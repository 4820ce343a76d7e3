"""Level checkpoints: what one pruning level leaves behind, and how to load it safely.

Usage:
    save_level(paths.level_checkpoint(3), model, masks, meta)
    model, masks, meta = load_level(paths.level_checkpoint(3))

A level checkpoint holds the weights (pruned weights exactly zero), the
masks, the target and actual alpha, train/test accuracy and the config that
made it. It is loaded with `weights_only=True` and checked against the model
it claims to be, so a corrupt or foreign file is a one-line UserError.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import atomic, models
from ..errors import UserError

LEVEL_FORMAT = "entropi-tiny/level-v1"
PARTIAL_FORMAT = "entropi-tiny/partial-v1"


def save_level(path: Path, model: nn.Module, masks: dict, meta: dict[str, Any]) -> None:
    atomic.save_torch(path, {"format": LEVEL_FORMAT, "state_dict": model.state_dict(),
                             "masks": masks, "meta": meta})


def load_level(path: Path) -> tuple[nn.Module, dict, dict]:
    obj = atomic.load_torch(path, LEVEL_FORMAT)
    meta = obj.get("meta")
    if not isinstance(meta, dict) or not {"arch", "width", "num_classes"} <= meta.keys():
        raise UserError(f"checkpoint {path} lacks its model description")
    model = models.build_model(meta["arch"], int(meta["num_classes"]), float(meta["width"]))
    load_state(model, obj.get("state_dict"), path)
    masks = obj.get("masks")
    if not isinstance(masks, dict):
        raise UserError(f"checkpoint {path} has no masks")
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


def load_partial(path: Path, model: nn.Module, opt: torch.optim.Optimizer,
                 params: dict | None = None, epochs: int | None = None) -> tuple[dict, int, list]:
    """A resume file, with its epoch (0..epochs), masks (one per prunable
    parameter, same shape) and losses checked before anything uses them."""
    obj = atomic.load_torch(path, PARTIAL_FORMAT)
    _check_partial(path, obj, params, epochs)
    load_state(model, obj.get("state_dict"), path)
    try:
        opt.load_state_dict(obj["optimizer"])
    except (KeyError, ValueError, RuntimeError):
        raise UserError(f"checkpoint {path} has an unusable optimizer state") from None
    return obj["masks"], int(obj["epoch"]), list(obj.get("losses", []))


def _check_partial(path: Path, obj: dict, params: dict | None, epochs: int | None) -> None:
    def bad(what: str) -> UserError:
        return UserError(f"resume file {path} is damaged ({what}); delete it to restart this level")
    epoch, masks, losses = obj.get("epoch"), obj.get("masks"), obj.get("losses", [])
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise bad(f"epoch is {type(epoch).__name__}, not an integer")
    if epoch < 0 or (epochs is not None and epoch > epochs):
        raise bad(f"epoch {epoch} is outside 0..{epochs if epochs is not None else 'inf'}")
    if not isinstance(losses, list) or len(losses) != epoch \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in losses):
        raise bad("its losses do not match its epoch")
    if not isinstance(masks, dict) or not all(isinstance(m, torch.Tensor) for m in masks.values()):
        raise bad("no masks")
    if params is not None:
        if set(masks) != set(params):
            raise bad("its masks name other parameters")
        for name, p in params.items():
            if tuple(masks[name].shape) != tuple(p.shape):
                raise bad(f"mask {name} has shape {tuple(masks[name].shape)}, not {tuple(p.shape)}")

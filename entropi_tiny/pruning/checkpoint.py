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


def load_partial(path: Path, model: nn.Module, opt: torch.optim.Optimizer) -> tuple[dict, int, list]:
    obj = atomic.load_torch(path, PARTIAL_FORMAT)
    load_state(model, obj.get("state_dict"), path)
    try:
        opt.load_state_dict(obj["optimizer"])
    except (KeyError, ValueError, RuntimeError):
        raise UserError(f"checkpoint {path} has an unusable optimizer state") from None
    return obj["masks"], int(obj["epoch"]), list(obj.get("losses", []))

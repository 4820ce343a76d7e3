"""One-shot pruned runs for sizing: an untrained model pruned to a given alpha.

Usage:
    rows = make_sizing_levels(RunPaths(Path("runs/r18-0.0077")), cfg, alpha=0.0077)

Does a model at this width and alpha fit the board, and how many
instructions does it take? That depends on shapes and sparsity, not on
training, so a full-width run need not be trained for hours to answer it.
This writes the level checkpoints a pruning run would (level 0 dense, level 1
pruned by global magnitude, eq. 7); stages/sizing.py commits them with an
entropy table selecting level 1, so every later stage runs unchanged. BatchNorm statistics are re-estimated
on real source images so the activations have realistic ranges for int8
calibration. The checkpoints say `sizing_only` in their metadata.

One deviation from eq. 7, for untrained weights only: their scale per layer
is the initializer's (torchvision draws MobileNetV3's Linear layers from
N(0, 0.01) and its convs with Kaiming's fan-out rule), so one global
threshold on raw magnitudes would delete whole layers and leave a constant
encoder. A sizing run therefore ranks each weight by its magnitude relative
to its layer's standard deviation, still with one global threshold: the
layers keep comparable densities, as they do after training.
"""
from __future__ import annotations

import torch

from .. import data, models
from ..config import Config
from ..paths import RunPaths
from .checkpoint import save_level
from .masks import apply_masks, density, full_masks, global_magnitude_masks, prunable_parameters

@torch.no_grad()
def _recalibrate_bn(model: torch.nn.Module, images: torch.Tensor, batch: int = 100) -> None:
    """Cumulative BatchNorm statistics of the pruned model on real images."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    for start in range(0, len(images), batch):
        model(data.normalize(images[start:start + batch]))
    model.eval()


def make_sizing_levels(paths: RunPaths, cfg: Config, alpha: float,
                       bn_images: int = 500) -> list[dict]:
    """Levels 0 and 1 as checkpoints; returns their prune.json rows."""
    source = data.load_task(cfg.data.source, "source", cfg.data)
    torch.manual_seed(cfg.prune.seed)
    model = models.build_model(cfg.model.arch, source.num_classes, cfg.model.width)
    params = prunable_parameters(model, cfg.prune.include)
    ones = full_masks(params)
    scaled = {n: p.detach() / p.detach().std().clamp_min(1e-12) for n, p in params.items()}
    for level, masks in ((0, ones), (1, global_magnitude_masks(scaled, ones, alpha))):
        apply_masks(params, masks)
        _recalibrate_bn(model, source.train.images[:bn_images])
        meta = {"level": level, "alpha_target": 1.0 if level == 0 else alpha,
                **density(model, params), "train_acc": 0.0, "test_acc": 0.0, "train_loss": None,
                "arch": cfg.model.arch, "width": cfg.model.width,
                "num_classes": source.num_classes, "classes": list(source.classes),
                "config": cfg.to_dict(), "sizing_only": True}
        save_level(paths.level_checkpoint(level), model, masks, meta)
    rows = [{k: m[k] for k in ("level", "alpha_target", "alpha_actual", "alpha_encoder", "nonzero",
                               "prunable", "train_acc", "test_acc", "train_loss")}
            for m in (_meta(paths, 0), _meta(paths, 1))]
    return rows


def _meta(paths: RunPaths, level: int) -> dict:
    from .checkpoint import load_level

    return load_level(paths.level_checkpoint(level))[2]

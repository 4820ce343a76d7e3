"""Global magnitude pruning (paper eq. 7) and the masks that keep pruned weights at zero.

Usage:
    params = prunable_parameters(model, include=("conv", "linear"))
    alphas = alpha_schedule(rate=0.25, levels=20, min_alpha=0.0)
    masks = global_magnitude_masks(params, previous_masks, alpha=alphas[3])
    apply_masks(params, masks)

Eq. 7 keeps a weight when its magnitude exceeds the (1 - alpha) quantile of
all prunable magnitudes, one threshold for the whole network. We implement
it as "keep the round(alpha * total) largest magnitudes": the same set, but
exact in count even with ties. Already-pruned weights are never revived, so
every level's survivors are a subset of the previous level's.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import models


def alpha_schedule(rate: float, levels: int, min_alpha: float) -> list[float]:
    """alpha_0 = 1, alpha_{k+1} = (1 - rate) * alpha_k, for `levels` levels,
    stopping early before alpha would drop below `min_alpha`."""
    alphas = [1.0]
    while len(alphas) < levels:
        nxt = alphas[-1] * (1.0 - rate)
        if nxt < min_alpha:
            break
        alphas.append(nxt)
    return alphas


def prunable_parameters(model: nn.Module, include: tuple[str, ...]) -> dict[str, nn.Parameter]:
    """Weights (not biases) of the encoder's conv and/or linear layers, and the
    head's weight if `head` is included; ordered by name for determinism."""
    head = models.head_of(model)
    chosen = {}
    for mod_name, mod in model.named_modules():
        if mod is head:
            kind = "head"
        elif isinstance(mod, nn.Conv2d):
            kind = "conv"
        elif isinstance(mod, nn.Linear):
            kind = "linear"
        else:
            continue
        if kind in include:
            chosen[f"{mod_name}.weight"] = mod.weight
    return dict(sorted(chosen.items()))


def full_masks(params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
    return {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}


def global_magnitude_masks(params: dict[str, nn.Parameter], previous: dict[str, torch.Tensor],
                           alpha: float) -> dict[str, torch.Tensor]:
    """Keep the round(alpha * total) largest |w| among the previous survivors."""
    total = sum(p.numel() for p in params.values())
    keep = max(1, int(round(alpha * total)))
    # Pruned weights score -1 so they are never chosen over a survivor.
    scores = torch.cat([torch.where(previous[n], p.detach().abs(), torch.tensor(-1.0)).flatten()
                        for n, p in params.items()])
    flat = torch.zeros(total, dtype=torch.bool)
    flat[torch.topk(scores, keep, sorted=False).indices] = True
    masks, start = {}, 0
    for n, p in params.items():
        masks[n] = flat[start:start + p.numel()].view_as(p) & previous[n]
        start += p.numel()
    return masks


@torch.no_grad()
def apply_masks(params: dict[str, nn.Parameter], masks: dict[str, torch.Tensor]) -> None:
    for n, p in params.items():
        p.mul_(masks[n])


def mask_gradients(params: dict[str, nn.Parameter], masks: dict[str, torch.Tensor]) -> None:
    """Zero the gradient of pruned weights, so neither the momentum buffer nor
    weight decay (which adds wd * w = 0) can move them."""
    for n, p in params.items():
        if p.grad is not None:
            p.grad.mul_(masks[n])


def density(model: nn.Module, params: dict[str, nn.Parameter]) -> dict[str, float | int]:
    """Actual fractions of non-zero parameters: over the prunable set and over
    every parameter of the encoder (biases and BatchNorm included)."""
    nnz = sum(int(torch.count_nonzero(p)) for p in params.values())
    total = sum(p.numel() for p in params.values())
    enc = [p for n, p in model.named_parameters() if n in set(models.encoder_param_names(model))]
    enc_nnz = sum(int(torch.count_nonzero(p)) for p in enc)
    enc_total = sum(p.numel() for p in enc)
    return {"alpha_actual": nnz / total, "nonzero": nnz, "prunable": total,
            "alpha_encoder": enc_nnz / enc_total, "encoder_nonzero": enc_nnz,
            "encoder_params": enc_total}

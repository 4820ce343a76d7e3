"""Fold BatchNorm layers into the convolutions that feed them.

Usage:
    folded = fold_batchnorm(encoder)      # eval-mode copy, same outputs, no BatchNorm2d

An eval-mode BatchNorm is an affine map per channel, y = s * (x - mean) + beta
with s = gamma / sqrt(var + eps). When x is the output of a convolution,
x = W * in + b, the pair collapses into one convolution with
W' = s * W (per output channel) and b' = s * (b - mean) + beta.

Pruned weights stay exact zeros: 0 * s is 0 for every finite s, and the
product is computed in float64 and rounded once to float32, which cannot turn
a zero into a non-zero.

The graph is found with torch.fx, so any module whose forward is traceable
works, not only the torchvision models we build. A BatchNorm that does not
directly follow a convolution whose output it alone consumes is left alone
(the ONNX exporter would then emit BatchNormalization, which the ONNX-to-TF
translation rejects with a clear error).
"""
from __future__ import annotations

import copy

import torch
import torch.fx
from torch import nn

from ..errors import UserError


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode copy of `module` with every Conv2d -> BatchNorm2d pair fused."""
    module = copy.deepcopy(module).eval()
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as e:  # noqa: BLE001 - tracing failures are user-model problems
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot trace the encoder for BatchNorm folding: {msg[:160]}") from None
    mods = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(mods.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if (not isinstance(src, torch.fx.Node) or src.op != "call_module"
                or not isinstance(mods.get(src.target), nn.Conv2d) or len(src.users) != 1):
            continue
        conv, bn = mods[src.target], mods[node.target]
        _set_module(gm, src.target, _fused_conv(conv, bn))
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm.eval()


def _fused_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    if bn.running_mean is None or bn.running_var is None:
        raise UserError("BatchNorm without running statistics cannot be folded")
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    gamma = bn.weight.detach().double() if bn.affine else torch.ones_like(b)
    beta = bn.bias.detach().double() if bn.affine else torch.zeros_like(b)
    scale = gamma / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, conv.dilation, conv.groups, bias=True,
                      padding_mode=conv.padding_mode)
    with torch.no_grad():
        fused.weight.copy_((w * scale.view(-1, 1, 1, 1)).float())
        fused.bias.copy_(((b - bn.running_mean.detach().double()) * scale + beta).float())
    return fused.eval()


def _set_module(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, leaf = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, new)

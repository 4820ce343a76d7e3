"""Compare the int8 weights of a .tflite with the folded float weights.

Usage:
    stats = int8_weight_zeros(folded_encoder, model)
    # {'float_zeros': ..., 'kept_zero': ..., 'lost_zero': 0, 'new_zeros': ..., 'tensors': ...}

Each CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weight of the TFLite model
is matched to the float Conv2d / Linear weight it came from: same shape once
moved to TFLite's layout (conv OHWI, depthwise 1HW(C*M), Linear as a 1x1 conv), and
int8 == round(w / scale) for its per-channel scales. Then every float zero
(a pruned weight) must be an int8 zero: 'lost_zero' counts the ones that are
not. 'new_zeros' counts small non-zero weights that rounded to zero.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from .tflite_ops import op_name, tensor_array, tensor_quant

_LAYOUT = {"CONV_2D": (0, 2, 3, 1), "DEPTHWISE_CONV_2D": (1, 2, 3, 0), "FULLY_CONNECTED": (0, 1)}
_CHANNEL_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


def int8_weight_zeros(folded: nn.Module, model) -> dict:
    # Linear weights as (out, in, 1, 1): the export runs dense layers as 1x1 convs.
    floats = [m.weight.detach().numpy().astype(np.float64).reshape(m.weight.shape[0], -1, 1, 1)
              if isinstance(m, nn.Linear) else m.weight.detach().numpy().astype(np.float64)
              for m in folded.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    used = [False] * len(floats)
    stats = {"tensors": 0, "unmatched": 0, "float_zeros": 0, "kept_zero": 0,
             "lost_zero": 0, "new_zeros": 0, "int8_weights": 0}
    for op in model.subgraphs[0].operators:
        name = op_name(model, op)
        if name not in _LAYOUT:
            continue
        q = tensor_array(model, op.inputs[1])
        scales = tensor_quant(model, op.inputs[1])[0].astype(np.float64)
        shape = [1] * q.ndim
        shape[_CHANNEL_AXIS[name]] = -1
        s = scales.reshape(shape) if scales.size > 1 else scales.reshape(())
        best, best_err = None, None
        for i, w in enumerate(floats):
            if used[i]:
                continue
            if name == "FULLY_CONNECTED":
                w = w.reshape(w.shape[0], -1)
            wt = w.transpose(_LAYOUT[name]) if w.ndim == len(_LAYOUT[name]) else None
            if wt is None or wt.shape != q.shape:
                continue
            err = np.max(np.abs(np.round(wt / np.where(s == 0, 1, s)) - q))
            if best_err is None or err < best_err:
                best, best_err = i, err
        stats["tensors"] += 1
        stats["int8_weights"] += int(q.size)
        if best is None or best_err > 1:
            stats["unmatched"] += 1
            continue
        used[best] = True
        wt = floats[best].reshape(q.shape[0], -1) if name == "FULLY_CONNECTED" else floats[best]
        wt = wt.transpose(_LAYOUT[name])
        fz = wt == 0
        stats["float_zeros"] += int(fz.sum())
        stats["kept_zero"] += int((q[fz] == 0).sum())
        stats["lost_zero"] += int((q[fz] != 0).sum())
        stats["new_zeros"] += int(((q == 0) & ~fz).sum())
    return stats

"""Validate and describe a .tflite model without running it: helpers over the one reader.

Usage:
    model = parse_tflite(path_or_bytes)     # UserError if truncated/corrupt (a TfliteModel)
    check_allowed_ops(model)                # UserError if an op our runtime cannot run
    for op in describe_ops(model): print(op)

Every function here works on the TfliteModel of tflite_model.py, the single
bounds-checked and budgeted reader; the names and signatures are those of the
schema-based reader this module used to be, so callers did not change.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import UserError
from .flatbuf import printable
from .tflite_model import SUPPORTED_OPS, TfliteModel, load_tflite, read_tflite

ALLOWED_OPS = SUPPORTED_OPS          # the old name of the one list of supported ops


def parse_tflite(src) -> TfliteModel:
    """The model of a .tflite path or bytes; UserError (one line) if it is not one."""
    if isinstance(src, (str, Path)):
        return load_tflite(Path(src))
    data = bytes(src)
    if len(data) < 16:
        raise UserError(f"corrupt TFLite model: only {len(data)} bytes")
    return read_tflite(data, label="TFLite model")


def op_name(model: TfliteModel, op) -> str:
    return op.opcode


def op_counts(model: TfliteModel) -> dict:
    return dict(Counter(op.opcode for op in model.operators))


def check_allowed_ops(model: TfliteModel) -> None:
    bad = sorted(set(op_counts(model)) - set(SUPPORTED_OPS))
    if bad:
        raise UserError(f"the int8 model uses ops our TFLM target cannot run: "
                        f"{', '.join(printable(b) for b in bad)}")
    for t in model.tensors:
        if t.type not in ("INT8", "INT32"):
            raise UserError(f"the int8 model has a {t.type} tensor '{t.name}' (float island)")


def tensor_array(model: TfliteModel, index: int) -> np.ndarray | None:
    """Constant data of a tensor, typed and shaped, or None for an activation."""
    return model.tensors[index].array()


def tensor_quant(model: TfliteModel, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(scales, zero points) of a tensor; per-channel tensors have several."""
    if not 0 <= index < len(model.tensors):
        raise UserError(f"tensor index {index} is not a tensor of the model")
    q = model.tensors[index].quantization
    if q is None:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    return q.scale, q.zero_point


def _input(op, k: int, what: str) -> int:
    """The tensor index of input k of `op`, which must be present."""
    if len(op.inputs) <= k or op.inputs[k] < 0:
        raise UserError(f"{op.opcode} op {op.index} has no {what} (input {k})")
    return op.inputs[k]


def _const(model: TfliteModel, op, k: int, what: str) -> np.ndarray:
    arr = tensor_array(model, _input(op, k, what))
    if arr is None:
        raise UserError(f"{op.opcode} op {op.index}: its {what} must be a constant tensor")
    return arr


def describe_ops(model: TfliteModel) -> list[dict]:
    """One dict per operator: name, input/output shapes and the options that matter."""
    out = []
    for op in model.operators:
        name, o = op.opcode, op.options
        shapes = lambda ids: [list(model.tensors[i].shape) for i in ids if i >= 0]  # noqa: E731
        d = {"op": name, "inputs": shapes(op.inputs), "outputs": shapes(op.outputs)}
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            d.update(stride=(int(o.get("stride_h", 0)), int(o.get("stride_w", 0))),
                     padding=o.get("padding", "SAME"),
                     activation=o.get("fused_activation", "NONE"),
                     dilation=(int(o.get("dilation_h", 1)), int(o.get("dilation_w", 1))),
                     per_channel=len(tensor_quant(model, _input(op, 1, "weights"))[0]))
            if name == "DEPTHWISE_CONV_2D":
                d["depth_multiplier"] = int(o.get("depth_multiplier", 0))
        elif name in ("ADD", "MUL", "FULLY_CONNECTED"):
            d["activation"] = o.get("fused_activation", "NONE")
            if name == "FULLY_CONNECTED":
                d["keep_num_dims"] = bool(o.get("keep_num_dims", False))
                d["per_channel"] = len(tensor_quant(model, _input(op, 1, "weights"))[0])
            else:
                d["const_operand"] = [model.tensors[i].data is not None for i in op.inputs if i >= 0]
        elif name == "MEAN":
            d.update(axes=_const(model, op, 1, "axes").tolist(), keep_dims=bool(o.get("keep_dims")))
        elif name == "PAD":
            d["paddings"] = _const(model, op, 1, "paddings").tolist()
        elif name == "RESHAPE":
            shape = tensor_array(model, op.inputs[1]) if len(op.inputs) > 1 and op.inputs[1] >= 0 \
                else None
            d["new_shape"] = shape.tolist() if shape is not None else list(o.get("new_shape") or [])
        out.append(d)
    return out


def io_quant(model: TfliteModel) -> dict:
    """Quantization of the model input and output: scale, zero point, shape, dtype."""
    res = {}
    if not model.inputs or not model.outputs:
        raise UserError("the TFLite model declares no input or no output tensor")
    for key, idx in (("input", model.inputs[0]), ("output", model.outputs[0])):
        s, z = tensor_quant(model, idx)
        t = model.tensors[idx]
        if not len(s):
            raise UserError(f"the TFLite model's {key} tensor '{t.name}' is not quantized")
        res[key] = {"shape": list(t.shape), "dtype": t.type.lower(),
                    "scale": float(s[0]), "zero_point": int(z[0])}
    return res

"""Read, validate and describe a .tflite flatbuffer without running it.

Usage:
    model = parse_tflite(path_or_bytes)     # UserError if truncated/corrupt
    check_allowed_ops(model)                # UserError if an op TFLM cannot run
    for op in describe_ops(model): print(op)

Validation unpacks the whole flatbuffer with the schema shipped in tflite_micro
(every table, vector and buffer is read, so a truncated file fails here with a
Python exception instead of crashing an interpreter in C++), and checks the
size and the 'TFL3' identifier first.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from ..errors import UserError

# What our C runtime implements (TFLM has all of them). See DESIGN.md section 3.
ALLOWED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "MEAN", "PAD", "HARD_SWISH",
               "FULLY_CONNECTED", "RESHAPE")

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
ACT_NAMES = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
PAD_NAMES = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


def parse_tflite(src) -> schema.ModelT:
    """The unpacked model of a .tflite path or bytes; UserError if it is not one."""
    name = "model"
    if isinstance(src, (str, Path)):
        name = str(src)
        try:
            data = Path(src).read_bytes()
        except OSError as e:
            raise UserError(f"cannot read TFLite model {name}: {e.strerror}") from None
    else:
        data = bytes(src)
    if len(data) < 16:
        raise UserError(f"corrupt TFLite model {name}: only {len(data)} bytes")
    if data[4:8] != b"TFL3":
        raise UserError(f"corrupt TFLite model {name}: no 'TFL3' identifier")
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        _check_structure(model, len(data))
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure means a bad file
        raise UserError(f"corrupt or truncated TFLite model {name}: "
                        f"{type(e).__name__}: {str(e)[:120]}") from None
    return model


def _check_structure(model: schema.ModelT, size: int) -> None:
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise ValueError("expected exactly one subgraph")
    nbuf = len(model.buffers or [])
    nops = len(model.operatorCodes or [])
    g = model.subgraphs[0]
    ntensors = len(g.tensors or [])
    for t in g.tensors or []:
        if not 0 <= t.buffer < nbuf:
            raise ValueError("tensor refers to a missing buffer")
    for b in model.buffers or []:
        if b.offset and b.offset + b.size > size:     # weights stored after the flatbuffer
            raise ValueError("buffer lies beyond the end of the file")
    for op in g.operators or []:
        if not 0 <= op.opcodeIndex < nops:
            raise ValueError("operator refers to a missing opcode")
        for i in list(op.inputs) + list(op.outputs):
            if not -1 <= i < ntensors:
                raise ValueError("operator refers to a missing tensor")


def op_name(model: schema.ModelT, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    return OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN")


def op_counts(model: schema.ModelT) -> dict:
    return dict(Counter(op_name(model, op) for op in model.subgraphs[0].operators))


def check_allowed_ops(model: schema.ModelT) -> None:
    bad = sorted(set(op_counts(model)) - set(ALLOWED_OPS))
    if bad:
        raise UserError(f"the int8 model uses ops our TFLM target cannot run: {', '.join(bad)}")
    g = model.subgraphs[0]
    for t in g.tensors:
        if t.type not in (schema.TensorType.INT8, schema.TensorType.INT32):
            raise UserError(f"the int8 model has a {TYPE_NAMES.get(t.type, t.type)} tensor "
                            f"'{t.name.decode(errors='replace')}' (float island)")


def tensor_array(model: schema.ModelT, index: int) -> np.ndarray | None:
    """Constant data of a tensor, typed and shaped, or None for an activation."""
    t = model.subgraphs[0].tensors[index]
    buf = model.buffers[t.buffer]
    if buf.data is None or len(buf.data) == 0:
        return None
    dtype = {schema.TensorType.INT8: np.int8, schema.TensorType.INT32: np.int32,
             schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT64: np.int64}[t.type]
    return np.frombuffer(np.asarray(buf.data, np.uint8).tobytes(), dtype).reshape(list(t.shape))


def tensor_quant(model: schema.ModelT, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(scales, zero points) of a tensor; per-channel tensors have several."""
    q = model.subgraphs[0].tensors[index].quantization
    if q is None or q.scale is None:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    return np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64)


def describe_ops(model: schema.ModelT) -> list[dict]:
    """One dict per operator: name, input/output shapes and the options that matter."""
    g = model.subgraphs[0]
    out = []
    for op in g.operators:
        name = op_name(model, op)
        shapes = lambda ids: [[int(v) for v in g.tensors[i].shape] for i in ids if i >= 0]  # noqa: E731
        d = {"op": name, "inputs": shapes(op.inputs), "outputs": shapes(op.outputs)}
        o = op.builtinOptions
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            d.update(stride=(int(o.strideH), int(o.strideW)), padding=PAD_NAMES[o.padding],
                     activation=ACT_NAMES[o.fusedActivationFunction],
                     dilation=(int(o.dilationHFactor), int(o.dilationWFactor)),
                     per_channel=len(tensor_quant(model, op.inputs[1])[0]))
            if name == "DEPTHWISE_CONV_2D":
                d["depth_multiplier"] = int(o.depthMultiplier)
        elif name in ("ADD", "MUL", "FULLY_CONNECTED"):
            d["activation"] = ACT_NAMES[o.fusedActivationFunction] if o is not None else "NONE"
            if name == "FULLY_CONNECTED":
                d["keep_num_dims"] = bool(o.keepNumDims)
                d["per_channel"] = len(tensor_quant(model, op.inputs[1])[0])
            else:
                d["const_operand"] = [tensor_array(model, i) is not None for i in op.inputs]
        elif name == "MEAN":
            d.update(axes=tensor_array(model, op.inputs[1]).tolist(), keep_dims=bool(o.keepDims))
        elif name == "PAD":
            d["paddings"] = tensor_array(model, op.inputs[1]).tolist()
        elif name == "RESHAPE":
            shape = tensor_array(model, op.inputs[1]) if len(op.inputs) > 1 else None
            d["new_shape"] = shape.tolist() if shape is not None else list(o.newShape)
        out.append(d)
    return out


def io_quant(model: schema.ModelT) -> dict:
    """Quantization of the model input and output: scale, zero point, shape, dtype."""
    g = model.subgraphs[0]
    res = {}
    for key, idx in (("input", g.inputs[0]), ("output", g.outputs[0])):
        s, z = tensor_quant(model, idx)
        t = g.tensors[idx]
        res[key] = {"shape": [int(v) for v in t.shape], "dtype": TYPE_NAMES[t.type].lower(),
                    "scale": float(s[0]), "zero_point": int(z[0])}
    return res

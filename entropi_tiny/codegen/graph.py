"""From a .tflite model to the runtime's op list, with every parameter computed on the host.

Usage:
    graph = build_graph(model, image_entries)    # image_entries: {weight tensor index: directory entry}
    for node in graph.nodes: node.kind, node.in0, node.out, node.params

One Node per TFLite op (fusion passes in fuse.py merge some later). A node
names activation tensors by their .tflite index and carries the 4-D NHWC
view each operand has in this op (`dims`), the image directory entry of its
weights, and the integer parameters of its C struct. Anything the runtime
cannot run is refused with one UserError line: an unsupported op or option,
a tensor that is not int8 with per-tensor quantization, a dynamic shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from ..export.tflite_model import SUPPORTED_OPS, TfliteModel  # the one list of supported ops
from . import quant_params as qp


@dataclass
class Node:
    kind: str                          # CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, MUL, MEAN,
                                       # PAD, HARD_SWISH, RESHAPE
    ops: list[int]                     # the .tflite op indices this node runs
    in0: int
    out: int
    in1: int | None = None
    dims: dict = field(default_factory=dict)   # operand name -> (n, h, w, c)
    weights: int | None = None         # image directory entry
    params: dict = field(default_factory=dict)
    in1_const: bool = False
    fused_add: bool = False
    scratch: int = 0                   # bytes of int32 scratch (NHWC conv kernels only)
    kernel: str = ""                   # conv kernel chosen by layout.choose_kernels
    pack: int = 0                      # bytes of the dense SMLAD kernel's pack buffer (PLANAR convs)
    kernel_reason: str = ""

    @property
    def inputs(self) -> list[int]:
        return [self.in0] + ([self.in1] if self.in1 is not None and not self.in1_const else [])


@dataclass
class Graph:
    nodes: list[Node]
    model: TfliteModel
    input: int
    output: int
    like: dict = field(default_factory=dict)   # tensor made by a rewrite -> the .tflite tensor it copies

    def _real(self, t: int) -> int:
        return self.like.get(t, t)

    def new_tensor(self, like: int) -> int:
        """A new activation id with the shape and quantization of tensor `like` (TO_PLANAR's output)."""
        t = len(self.model.tensors) + len(self.like)
        self.like[t] = self._real(like)
        return t

    def size(self, t: int) -> int:
        return int(np.prod(self.model.tensors[self._real(t)].shape))

    def quant(self, t: int) -> tuple[float, int]:
        q = self.model.tensors[self._real(t)].quantization
        return float(q.scale[0]), int(q.zero_point[0])


def dims4(shape) -> tuple[int, int, int, int]:
    """TFLite's broadcast view: right-aligned, padded with leading 1s."""
    shape = tuple(int(d) for d in shape)
    if len(shape) > 4:
        raise UserError(f"tensor of rank {len(shape)} (at most 4 supported)")
    return (1,) * (4 - len(shape)) + shape


def build_graph(model: TfliteModel, entries: dict[int, int]) -> Graph:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs, expected 1 and 1")
    nodes = []
    for op in model.operators:
        if op.opcode not in SUPPORTED_OPS:
            raise UserError(f"op {op.index} is {op.opcode}, which the runtime does not support "
                            f"(supported: {', '.join(SUPPORTED_OPS)})")
        for t in [i for i in op.inputs[:1] if i >= 0] + list(op.outputs):
            _check_activation(model, t, op)
        nodes.append(_BUILDERS[op.opcode](model, op, entries))
    return Graph(nodes, model, model.inputs[0], model.outputs[0])


def _check_activation(model: TfliteModel, t: int, op, scalar_ok: bool = False) -> None:
    ten = model.tensors[t]
    where = f"op {op.index} ({op.opcode}) tensor {t} '{ten.name}'"
    if ten.type != "INT8":
        raise UserError(f"{where} is {ten.type}: the runtime needs a full-int8 model")
    if (not ten.shape and not scalar_ok) or (ten.shape and min(ten.shape) < 1):
        raise UserError(f"{where} has the dynamic or empty shape {list(ten.shape)}")
    q = ten.quantization
    if q is None or q.scale.size != 1 or not (np.isfinite(q.scale[0]) and q.scale[0] > 0):
        raise UserError(f"{where} is not quantized per tensor")


def _act(op) -> str:
    act = op.options.get("fused_activation", "NONE")
    if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise UserError(f"op {op.index} ({op.opcode}): fused activation {act} is not supported")
    return act


def _const(model: TfliteModel, t: int, op, what: str) -> np.ndarray:
    arr = model.tensors[t].array() if t >= 0 else None
    if arr is None:
        raise UserError(f"op {op.index} ({op.opcode}): {what} must be a constant tensor")
    return arr


def _conv(model, op, entries) -> Node:
    kind = op.opcode
    w = model.tensors[op.inputs[1]]
    if w.index not in entries:
        raise UserError(f"op {op.index} ({kind}): weights {w.index} are not in the sparse image")
    i, o = dims4(model.tensors[op.inputs[0]].shape), dims4(model.tensors[op.outputs[0]].shape)
    where = f"op {op.index} ({kind})"
    _act(op)
    kh, kw = w.shape[1], w.shape[2]
    if kind == "DEPTHWISE_CONV_2D" and not (i[3] == o[3] == w.shape[3]):
        raise UserError(f"{where}: depth multiplier != 1 is not supported")
    params = {
        "stride_h": op.options["stride_h"], "stride_w": op.options["stride_w"], "kernel_h": kh, "kernel_w": kw,
        "pad_top": qp.conv_padding(i[1], kh, op.options["stride_h"], op.options.get("dilation_h", 1), o[1],
                                   op.options["padding"], where),
        "pad_left": qp.conv_padding(i[2], kw, op.options["stride_w"], op.options.get("dilation_w", 1), o[2],
                                    op.options["padding"], where),
    }
    return Node(kind, [op.index], op.inputs[0], op.outputs[0], dims={"in0": i, "out": o},
                weights=entries[w.index], params=params, scratch=4 * o[1] * o[2])


def _fully_connected(model, op, entries) -> Node:
    w = model.tensors[op.inputs[1]]
    if w.index not in entries or len(w.shape) != 2:
        raise UserError(f"op {op.index} (FULLY_CONNECTED): weights {w.index} are not a 2-D tensor in the image")
    _act(op)
    k, o = w.shape[1], w.shape[0]
    n_in, n_out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    batches = int(np.prod(n_in.shape)) // k
    if batches * k != int(np.prod(n_in.shape)) or int(np.prod(n_out.shape)) != batches * o:
        raise UserError(f"op {op.index} (FULLY_CONNECTED): shapes {list(n_in.shape)} -> {list(n_out.shape)} "
                        f"do not fit weights {list(w.shape)}")
    return Node("FULLY_CONNECTED", [op.index], op.inputs[0], op.outputs[0],
                dims={"in0": (batches, 1, 1, k), "out": (batches, 1, 1, o)}, weights=entries[w.index])


def _binary(model, op, entries) -> Node:
    a, b = op.inputs[0], op.inputs[1]
    ta, tb = model.tensors[a], model.tensors[b]
    if ta.data is not None and tb.data is not None:
        raise UserError(f"op {op.index} ({op.opcode}) has two constant inputs")
    if ta.data is not None:                    # ADD and MUL are symmetric: keep the constant second
        a, b, ta, tb = b, a, tb, ta
    _check_activation(model, b, op, scalar_ok=tb.data is not None)   # constants too: int8 per tensor
    out = op.outputs[0]
    dims = {"in0": dims4(ta.shape), "in1": dims4(tb.shape), "out": dims4(model.tensors[out].shape)}
    for name in ("in0", "in1"):
        if any(x not in (1, y) for x, y in zip(dims[name], dims["out"])):
            raise UserError(f"op {op.index} ({op.opcode}): {dims[name]} does not broadcast to {dims['out']}")
    q = [(float(t.quantization.scale[0]), int(t.quantization.zero_point[0]))
         for t in (ta, tb, model.tensors[out])]
    fn = qp.add_params if op.opcode == "ADD" else qp.mul_params
    return Node(op.opcode, [op.index], a, out, in1=b, dims=dims, params=fn(*q, _act(op)),
                in1_const=tb.data is not None)


def _mean(model, op, entries) -> Node:
    i = model.tensors[op.inputs[0]]
    axes = sorted(int(x) % max(len(i.shape), 1) for x in _const(model, op.inputs[1], op, "the axis").reshape(-1))
    if len(i.shape) != 4 or axes != [1, 2]:
        raise UserError(f"op {op.index} (MEAN): only the mean over H and W of a 4-D tensor is supported, "
                        f"got axes {axes} of shape {list(i.shape)}")
    n, h, w, c = i.shape
    qi, qo = (float(i.quantization.scale[0]), int(i.quantization.zero_point[0])), \
        (float(model.tensors[op.outputs[0]].quantization.scale[0]),
         int(model.tensors[op.outputs[0]].quantization.zero_point[0]))
    return Node("MEAN", [op.index], op.inputs[0], op.outputs[0], dims={"in0": (n, h, w, c), "out": (n, 1, 1, c)},
                params=qp.mean_params(qi, qo, h * w))


def _pad(model, op, entries) -> Node:
    i, o = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    pads = _const(model, op.inputs[1], op, "the paddings").reshape(-1, 2).astype(np.int64)
    if pads.shape[0] != len(i.shape) or np.any(pads < 0):
        raise UserError(f"op {op.index} (PAD): paddings {pads.tolist()} do not fit shape {list(i.shape)}")
    if (i.quantization.scale[0], i.quantization.zero_point[0]) != (o.quantization.scale[0], o.quantization.zero_point[0]):
        raise UserError(f"op {op.index} (PAD): input and output quantization differ")
    before = (0,) * (4 - len(i.shape)) + tuple(int(p) for p in pads[:, 0])
    return Node("PAD", [op.index], op.inputs[0], op.outputs[0],
                dims={"in0": dims4(i.shape), "out": dims4(o.shape)},
                params={"before": before, "value": int(o.quantization.zero_point[0])})


def _unary(model, op, entries) -> Node:
    i, o = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if int(np.prod(i.shape)) != int(np.prod(o.shape)):
        raise UserError(f"op {op.index} ({op.opcode}): {list(i.shape)} -> {list(o.shape)} changes the size")
    params = {}
    if op.opcode == "HARD_SWISH":
        params = qp.hard_swish_params((float(i.quantization.scale[0]), int(i.quantization.zero_point[0])),
                                      (float(o.quantization.scale[0]), int(o.quantization.zero_point[0])))
    elif (i.quantization.scale[0], i.quantization.zero_point[0]) != (o.quantization.scale[0], o.quantization.zero_point[0]):
        raise UserError(f"op {op.index} (RESHAPE): input and output quantization differ")
    flat = (1, 1, 1, int(np.prod(o.shape)))
    return Node(op.opcode, [op.index], op.inputs[0], op.outputs[0], dims={"in0": flat, "out": flat}, params=params)


_BUILDERS = {"CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected,
             "ADD": _binary, "MUL": _binary, "MEAN": _mean, "PAD": _pad, "HARD_SWISH": _unary,
             "RESHAPE": _unary}

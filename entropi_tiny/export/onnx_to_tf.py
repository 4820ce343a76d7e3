"""Translate an ONNX encoder graph into a TensorFlow function (NHWC) for TFLite.

Usage:
    fn = onnx_to_tf(onnx_bytes)        # tf.function: (1, 32, 32, 3) float -> (1, D) float
    features = fn(images_nhwc)

Each ONNX node becomes the plain tf op that the TFLite converter turns into
one TFLM builtin: Conv -> tf.nn.conv2d / depthwise_conv2d + bias_add (CONV_2D,
DEPTHWISE_CONV_2D, with Relu/Relu6 fused), Add/Mul -> ADD/MUL, ReduceMean over
H and W -> MEAN, Gemm/MatMul -> 1x1 CONV_2D on the pooled (1, 1, 1, C) vector,
HardSwish -> HARD_SWISH, HardSigmoid(1/6, 1/2) -> relu6(x + 3) * 1/6 (ADD with
a fused RELU6, then MUL). Weights become tf constants. The output is reshaped to (1, D) (RESHAPE).

Layout: ONNX is NCHW, TFLite is NHWC. Every 4-D activation is kept in NHWC,
so conv kernels are transposed (OIHW -> HWIO, depthwise -> HW C M), axes of
ReduceMean are remapped, and a Flatten is only accepted where the spatial map
is 1x1 (otherwise NCHW flatten order would need a TRANSPOSE).

Padding: PyTorch pads symmetrically; TF's SAME pads the extra row at the
bottom for stride 2, so only a stride-1 conv with symmetric (k-1)/2 padding
uses SAME; every other padded conv gets an explicit tf.pad (PAD) and VALID.

Supported ONNX ops: Conv (dense and depthwise, dilation 1), Relu, Clip (0..6
or 0..inf), Add, Mul, HardSwish, HardSigmoid (alpha 1/6, beta 1/2),
GlobalAveragePool, ReduceMean (spatial axes), Flatten, Reshape (to (N, C)),
Gemm, MatMul (constant weights), Pad (constant zero, spatial), Identity,
Dropout, Constant. Anything else raises UserError naming the op and node.
"""
from __future__ import annotations

import sys

import numpy as np

sys.modules.setdefault("triton", None)  # import-order crash, see DESIGN.md section 3
import onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

from ..errors import UserError  # noqa: E402
from .quiet import import_quietly  # noqa: E402

SUPPORTED_OPS = ("Conv", "Relu", "Clip", "Add", "Mul", "HardSwish", "HardSigmoid",
                 "GlobalAveragePool", "ReduceMean", "Flatten", "Reshape", "Gemm", "MatMul",
                 "Pad", "Identity", "Dropout", "Constant")


class _Act:
    """An activation tensor and its layout.

    'nhwc': a 4-D feature map. 'vec': a flattened feature vector, kept 4-D as
    (1, 1, 1, C) so dense layers can run as 1x1 convolutions.
    """

    def __init__(self, t, layout: str):
        self.t, self.layout = t, layout


def onnx_to_tf(onnx_bytes: bytes, image_size: int = 32):
    """A tf.function computing the ONNX graph on (1, H, W, 3) float NHWC input."""
    tf = import_quietly("tensorflow")

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    bad: dict[str, str] = {}                     # reject before building anything
    for node in graph.node:
        if node.op_type not in SUPPORTED_OPS or node.domain not in ("", "ai.onnx"):
            bad.setdefault(node.op_type, node.name)
    if bad:
        listed = ", ".join(f"{op} (node '{name}')" for op, name in bad.items())
        raise UserError(f"unsupported ONNX op{'s' if len(bad) > 1 else ''} {listed}; "
                        f"supported: {', '.join(SUPPORTED_OPS)}")
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise UserError("the encoder must have exactly one input and one output")
    in_name, out_name = graph.input[0].name, graph.output[0].name

    @tf.function(input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32)])
    def fn(x):
        env = {in_name: _Act(x, "nhwc")}
        for node in graph.node:
            _translate(tf, node, env, consts)
        out = env[out_name]
        if out.layout == "nhwc" and out.t.shape[1] * out.t.shape[2] != 1:
            raise UserError("the encoder output is a spatial map; it must end in a pooled vector")
        return tf.reshape(out.t, [1, -1])        # (1, 1, 1, D) -> (1, D): one RESHAPE

    return fn


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _fail(node, why: str):
    raise UserError(f"unsupported ONNX {node.op_type} (node '{node.name}'): {why}")


def _translate(tf, node, env: dict, consts: dict) -> None:
    op, a = node.op_type, _attrs(node)
    ins = [n for n in node.input]

    def act(i):
        name = ins[i]
        if name not in env:
            _fail(node, f"input '{name}' is a constant where an activation is expected")
        return env[name]

    def const(i):
        if i >= len(ins) or ins[i] == "":
            return None
        if ins[i] not in consts:
            _fail(node, f"input '{ins[i]}' must be a constant")
        return consts[ins[i]]

    def put(value, layout=None):
        if isinstance(value, np.ndarray):
            consts[node.output[0]] = value
        else:
            env[node.output[0]] = _Act(value, layout)

    if op == "Constant":
        put(numpy_helper.to_array(a["value"]) if "value" in a else _fail(node, "only 'value' constants"))
    elif op in ("Identity", "Dropout"):
        if ins[0] in consts:
            put(consts[ins[0]])
        else:
            put(act(0).t, act(0).layout)
    elif op == "Conv":
        put(_conv(tf, node, a, act(0), const(1), const(2)), "nhwc")
    elif op == "Relu":
        put(tf.nn.relu(act(0).t), act(0).layout)
    elif op == "Clip":
        lo, hi = const(1), const(2)
        lo = -np.inf if lo is None else float(lo)
        hi = np.inf if hi is None else float(hi)
        if lo == 0 and hi == 6:
            put(tf.nn.relu6(act(0).t), act(0).layout)
        elif lo == 0 and hi == np.inf:
            put(tf.nn.relu(act(0).t), act(0).layout)
        else:
            _fail(node, f"only Clip(0, 6) and Clip(0, inf) map to TFLM ops, got ({lo}, {hi})")
    elif op == "HardSwish":
        x = act(0).t
        put(x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0), act(0).layout)
    elif op == "HardSigmoid":
        alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
        if abs(alpha - 1 / 6) > 1e-6 or abs(beta - 0.5) > 1e-6:
            _fail(node, f"only alpha=1/6, beta=1/2 (PyTorch's Hardsigmoid), got {alpha}, {beta}")
        put(tf.nn.relu6(act(0).t + 3.0) * (1.0 / 6.0), act(0).layout)
    elif op in ("Add", "Mul"):
        fn = tf.add if op == "Add" else tf.multiply
        if ins[0] in env and ins[1] in env:
            x, y = act(0), act(1)
            if x.layout != y.layout:
                _fail(node, "operands have different ranks")
            put(fn(x.t, y.t), x.layout)
        else:
            i_act = 0 if ins[0] in env else 1
            x, c = act(i_act), const(1 - i_act)
            put(fn(x.t, _const_like(node, c, x.layout)), x.layout)
    elif op in ("GlobalAveragePool", "ReduceMean"):
        x = act(0)
        if x.layout != "nhwc":
            _fail(node, "mean over a flattened vector")
        keep = bool(a.get("keepdims", 1)) if op == "ReduceMean" else True
        if op == "ReduceMean":
            axes = a.get("axes") if "axes" in a else const(1)
            axes = sorted(int(v) % 4 for v in np.asarray(axes).ravel()) if axes is not None else None
            if axes != [2, 3]:
                _fail(node, f"only the mean over H and W is supported, got axes {axes}")
        put(tf.reduce_mean(x.t, axis=[1, 2], keepdims=True), "nhwc" if keep else "vec")
    elif op in ("Flatten", "Reshape"):
        x = act(0)
        if op == "Flatten" and a.get("axis", 1) != 1:
            _fail(node, "only axis=1")
        if op == "Reshape":
            shape = [int(v) for v in const(1)]
            if len(shape) != 2:
                _fail(node, f"only reshapes to (N, features), got {shape}")
        if x.layout == "nhwc":
            h, w = x.t.shape[1:3]
            if h != 1 or w != 1:
                _fail(node, f"flattening a {h}x{w} map needs a TRANSPOSE (NCHW order); pool first")
        put(x.t, "vec")
    elif op in ("Gemm", "MatMul"):
        # A dense layer on a (1, 1, 1, K) vector runs as a 1x1 CONV_2D, not as
        # FULLY_CONNECTED: TFLM's int8 FC rounds its requantisation twice (gemmlowp)
        # where LiteRT's reference FC rounds once, so they differ by 1 LSB on
        # near-ties; CONV_2D agrees bit for bit, and gets per-channel weights.
        x, w = act(0), const(1)
        if x.layout != "vec" or w is None or w.ndim != 2:
            _fail(node, "needs a pooled 1x1 feature vector and a constant 2-D weight")
        if a.get("transA", 0):
            _fail(node, "transA=1")
        w = (w.T if a.get("transB", 0) else w) * a.get("alpha", 1.0)      # (K, N)
        y = tf.nn.conv2d(x.t, tf.constant(w.astype(np.float32)[None, None]), 1, "VALID")
        b = const(2) if op == "Gemm" else None
        if b is not None:
            b = np.broadcast_to(b * a.get("beta", 1.0), (w.shape[1],))
            y = tf.nn.bias_add(y, tf.constant(b.astype(np.float32)))
        put(y, "vec")
    elif op == "Pad":
        x, pads = act(0), const(1)
        mode = a.get("mode", b"constant")
        value = const(2)
        if mode not in (b"constant", "constant") or (value is not None and float(value) != 0.0):
            _fail(node, "only zero padding")
        if len(ins) > 3 and ins[3]:
            _fail(node, "the axes input")
        p = [int(v) for v in pads]
        if x.layout != "nhwc" or len(p) != 8 or any(p[i] or p[i + 4] for i in (0, 1)):
            _fail(node, f"only spatial padding of a 4-D tensor, got pads {p}")
        put(tf.pad(x.t, [[0, 0], [p[2], p[6]], [p[3], p[7]], [0, 0]]), "nhwc")
    else:  # pragma: no cover - filtered by the SUPPORTED_OPS check
        _fail(node, "not implemented")


def _const_like(node, c: np.ndarray, layout: str):
    """An Add/Mul constant moved to the activation's layout (scalar or per channel)."""
    tf = import_quietly("tensorflow")

    c = np.asarray(c, dtype=np.float32)
    if c.size == 1:
        return tf.constant(c.reshape(()))
    if layout == "nhwc" and c.ndim in (3, 4) and c.shape[-1] == 1 and c.shape[-2] == 1:
        return tf.constant(c.reshape(1, 1, 1, -1))   # (1, C, 1, 1) -> (1, 1, 1, C)
    if layout == "vec" and c.ndim <= 2:
        return tf.constant(c.reshape(1, 1, 1, -1))
    _fail(node, f"constant of shape {c.shape} cannot be broadcast in NHWC")


def _conv(tf, node, a: dict, x: _Act, w: np.ndarray, b: np.ndarray | None):
    if x.layout != "nhwc" or w is None or w.ndim != 4:
        _fail(node, "needs a 4-D activation and a constant 4-D weight")
    cout, cin_g, kh, kw = w.shape
    group = a.get("group", 1)
    strides = list(a.get("strides", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if list(a.get("dilations", [1, 1])) != [1, 1]:
        _fail(node, "dilation other than 1")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        _fail(node, "auto_pad")
    if strides[0] != strides[1]:
        _fail(node, f"unequal strides {strides}")
    cin = x.t.shape[-1]
    t = x.t
    # Padding: SAME only where it is exactly PyTorch's symmetric padding.
    symmetric_same = strides == [1, 1] and pads == [(kh - 1) // 2, (kw - 1) // 2] * 2 \
        and kh % 2 == 1 and kw % 2 == 1
    if symmetric_same and any(pads):
        padding = "SAME"
    else:
        padding = "VALID"
        if any(pads):
            t = tf.pad(t, [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]])
    s = [1, strides[0], strides[1], 1]
    if group == 1:
        y = tf.nn.conv2d(t, tf.constant(w.transpose(2, 3, 1, 0).astype(np.float32)), s, padding)
    elif group == cin and cin_g == 1 and cout % cin == 0:
        k = w.reshape(cin, cout // cin, kh, kw).transpose(2, 3, 0, 1)
        y = tf.nn.depthwise_conv2d(t, tf.constant(k.astype(np.float32)), s, padding)
    else:
        _fail(node, f"grouped convolution with {group} groups (only dense or depthwise)")
    if b is not None:
        y = tf.nn.bias_add(y, tf.constant(b.astype(np.float32)))
    return y

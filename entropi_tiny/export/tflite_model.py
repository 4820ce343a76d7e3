"""A small, safe reader of .tflite files: operators, tensors, buffers, quantization.

Usage:
    model = read_tflite(path.read_bytes(), label=str(path))   # or load_tflite(path)
    for op in model.operators:
        print(op.opcode, op.options, [model.tensors[i].name for i in op.inputs if i >= 0])
    w = model.tensors[op.inputs[1]]
    w.array()            # int8 numpy array of shape w.shape (None if not constant)
    w.quantization       # Quantization(scale, zero_point, quantized_dimension) or None

This is the one reader of .tflite files (export/tflite_ops.py is a thin
layer of helpers over it). Only the first subgraph is read (our encoders have
exactly one); a model with several subgraphs is refused. Every length and
offset is checked (see flatbuf.py): a truncated or corrupt file raises
UserError with one line. The work is bounded by the file size twice over:
parsing charges every element it materialises to flatbuf's structure
budget, and Tensor.array() charges the elements it copies to a data budget
of DATA_FACTOR per byte (a file whose operators point many times at one large
buffer cannot make its readers copy it without end). Tensor names are kept
printable (control characters escaped), so every message naming one stays a
plain line. Quantization is checked where TFLM checks it: a conv or fully
connected op's per-channel weights need one scale per entry of their
quantized dimension; per-tensor weights pass whatever quantized_dimension
says, and other tensors' per-channel parameters are kept as they are. Field slot numbers follow
tensorflow/lite/schema/schema.fbs; names of ops and types come from the
schema module shipped with tflite-micro.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from .flatbuf import Budget, FlatBuf, printable

# The ops our C runtime implements (TFLM has all of them), in one place: the
# export check, codegen and the tests read this list. See DESIGN.md section 3.
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "MEAN", "PAD", "HARD_SWISH",
                 "FULLY_CONNECTED", "RESHAPE")
DATA_FACTOR = 64              # elements Tensor.array() may copy per byte of the file

# Numpy dtypes of the TensorType codes we can turn into arrays.
_DTYPES = {0: "<f4", 1: "<f2", 2: "<i4", 3: "u1", 4: "<i8", 6: "u1", 7: "<i2",
           9: "i1", 10: "<f8", 12: "<u8", 15: "<u4", 16: "<u2"}

# BuiltinOptions union members we decode: union type -> [(name, slot, fmt, default)].
# Fields: padding/activation are enum bytes, turned into names below.
_OPTIONS = {
    1: [("padding", 0, "<b", 0), ("stride_w", 1, "<i", 0), ("stride_h", 2, "<i", 0),
        ("fused_activation", 3, "<b", 0), ("dilation_w", 4, "<i", 1), ("dilation_h", 5, "<i", 1)],
    2: [("padding", 0, "<b", 0), ("stride_w", 1, "<i", 0), ("stride_h", 2, "<i", 0),
        ("depth_multiplier", 3, "<i", 0), ("fused_activation", 4, "<b", 0),
        ("dilation_w", 5, "<i", 1), ("dilation_h", 6, "<i", 1)],
    5: [("padding", 0, "<b", 0), ("stride_w", 1, "<i", 0), ("stride_h", 2, "<i", 0),
        ("filter_w", 3, "<i", 0), ("filter_h", 4, "<i", 0), ("fused_activation", 5, "<b", 0)],
    8: [("fused_activation", 0, "<b", 0), ("weights_format", 1, "<b", 0), ("keep_num_dims", 2, "<?", False)],
    9: [("beta", 0, "<f", 0.0)],
    11: [("fused_activation", 0, "<b", 0)],
    17: [("new_shape", 0, "[i4", None)],
    21: [("fused_activation", 0, "<b", 0)],
    27: [("keep_dims", 0, "<?", False)],
}


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    return s


_S = _schema()
OP_NAMES = _enum_names(_S.BuiltinOperator)
TYPE_NAMES = _enum_names(_S.TensorType)
_PADDING = _enum_names(_S.Padding)
_ACTIVATION = _enum_names(_S.ActivationFunctionType)


@dataclass(frozen=True)
class Quantization:
    scale: np.ndarray          # float32, one per channel (or one per tensor)
    zero_point: np.ndarray     # int64, same length as scale
    quantized_dimension: int


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str                  # printable: control characters escaped
    shape: tuple[int, ...]
    type: str                  # "INT8", "INT32", "FLOAT32", ...
    buffer: int
    data: bytes | None         # constant contents, None for activations
    quantization: Quantization | None
    is_variable: bool = False
    sparse: bool = False       # TFLite's own sparsity encoding (we refuse to decode it)
    budget: Budget | None = field(default=None, repr=False, compare=False)

    def array(self) -> np.ndarray | None:
        """Constant contents as a numpy array of `shape`, or None if not constant."""
        if self.data is None:
            return None
        dtype = _DTYPES.get(_type_code(self.type))
        count = math.prod(self.shape) if all(d >= 0 for d in self.shape) else -1
        if dtype is None or self.sparse or len(self.data) != count * np.dtype(dtype).itemsize:
            raise UserError(f"tensor {self.index} '{self.name}': {len(self.data)} bytes of data "
                            f"do not hold a {self.type} tensor of shape {list(self.shape)}")
        if self.budget is not None:
            self.budget.charge(count, f"tensor {self.index} '{self.name}'")
        return np.frombuffer(self.data, dtype=dtype).reshape(self.shape).copy()


@dataclass(frozen=True)
class Operator:
    index: int
    opcode: str                # builtin op name, e.g. "CONV_2D"; "CUSTOM:<name>" for custom ops
    inputs: tuple[int, ...]    # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TfliteModel:
    version: int
    description: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def subgraphs(self) -> list["TfliteModel"]:
        """The one subgraph, for code written against the schema's ModelT
        (`model.subgraphs[0].operators`): the model itself holds its fields."""
        return [self]


def _type_code(name: str) -> int:
    return next((k for k, v in TYPE_NAMES.items() if v == name), -1)


def load_tflite(path: Path) -> TfliteModel:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {printable(path)}: {e.strerror}") from None
    return read_tflite(data, label=str(path))


def read_tflite(data: bytes, label: str = ".tflite model") -> TfliteModel:
    """Parse a .tflite flatbuffer; UserError (one line) on any inconsistency."""
    fb = FlatBuf(data, label)
    label = fb.label
    if len(fb.data) < 8 or fb.data[4:8] != b"TFL3":
        raise UserError(f"{label} is not a .tflite file (no 'TFL3' identifier)")
    root = fb.root()
    subgraphs = fb.tables(root, 2)
    if len(subgraphs) != 1:
        raise UserError(f"{label}: {len(subgraphs)} subgraphs, only models with exactly one are supported")
    buffers = [_buffer(fb, b) for b in fb.tables(root, 4)]
    opcodes = [_opcode(fb, c) for c in fb.tables(root, 1)]
    sg = subgraphs[0]
    data_budget = Budget(DATA_FACTOR * len(fb.data) + (1 << 20), label, "tensor elements")
    tensors = [_tensor(fb, t, i, buffers, data_budget) for i, t in enumerate(fb.tables(sg, 0))]
    n = len(tensors)
    operators = [_operator(fb, o, i, opcodes, n) for i, o in enumerate(fb.tables(sg, 3))]
    for op in operators:
        _check_weight_quantization(fb, op, tensors)
    return TfliteModel(
        version=fb.scalar(root, 0, "<I", 0),
        description=fb.string(root, 3) or "",
        tensors=tensors, operators=operators,
        inputs=_indices(fb, sg, 1, n, "subgraph input", optional=False),
        outputs=_indices(fb, sg, 2, n, "subgraph output", optional=False),
    )


def _indices(fb: FlatBuf, table: int, slot: int, n_tensors: int, what: str,
             optional: bool = True) -> tuple[int, ...]:
    """Tensor indices; -1 marks an omitted optional input of an operator only."""
    arr = fb.array(table, slot, "<i4")
    idx = tuple(arr.tolist()) if arr is not None else ()
    low = -1 if optional else 0
    bad = [i for i in idx if i < low or i >= n_tensors]
    if bad:
        raise fb.fail(f"{what} refers to tensor {bad[0]}, model has {n_tensors}")
    return idx


def _buffer(fb: FlatBuf, table: int) -> bytes | None:
    """A buffer's bytes: inline data, or (offset, size) into the file for >2 GB models."""
    raw = fb.array(table, 0, "u1")
    if raw is not None and raw.size:
        return raw.tobytes()
    offset, size = fb.scalar(table, 1, "<Q", 0), fb.scalar(table, 2, "<Q", 0)
    if offset > 1 and size:
        fb.need(offset, size, "external buffer")
        fb.budget.charge(size, f"an external buffer of {size} bytes")
        return fb.data[offset:offset + size]
    return None


def _opcode(fb: FlatBuf, table: int) -> str:
    code = max(fb.scalar(table, 0, "<b", 0), fb.scalar(table, 3, "<i", 0))
    if code == 32:  # CUSTOM
        return f"CUSTOM:{printable(fb.string(table, 1) or '')}"
    return OP_NAMES.get(code, f"UNKNOWN_{code}")


def _quantization(fb: FlatBuf, table: int | None) -> Quantization | None:
    if table is None:
        return None
    scale = fb.array(table, 2, "<f4")
    zero = fb.array(table, 3, "<i8")
    if scale is None or scale.size == 0:
        return None
    if zero is None or zero.size == 0:
        zero = np.zeros(scale.size, np.int64)
    if zero.size != scale.size:
        raise fb.fail(f"{scale.size} scales but {zero.size} zero points", table)
    return Quantization(scale.astype(np.float32), zero.astype(np.int64), fb.scalar(table, 6, "<i", 0))


def _tensor(fb: FlatBuf, table: int, index: int, buffers: list, budget: Budget) -> Tensor:
    shape = fb.array(table, 0, "<i4")
    shape = tuple(shape.tolist()) if shape is not None else ()
    buf = fb.scalar(table, 2, "<I", 0)
    if buf >= max(len(buffers), 1):
        raise fb.fail(f"tensor {index} refers to buffer {buf}, model has {len(buffers)}", table)
    type_code = fb.scalar(table, 1, "<b", 0)
    name = printable(fb.string(table, 3) or "")
    quant = _quantization(fb, fb.table(table, 4))
    return Tensor(
        index=index, name=name, shape=shape,
        type=TYPE_NAMES.get(type_code, f"TYPE_{type_code}"), buffer=buf,
        data=buffers[buf] if buffers else None, quantization=quant,
        is_variable=bool(fb.scalar(table, 5, "<?", False)),
        sparse=fb.field(table, 6, 4) is not None, budget=budget,
    )


WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _check_weight_quantization(fb: FlatBuf, op: Operator, tensors: list[Tensor]) -> None:
    """TFLM's check, and only where TFLM makes it: the weights (input 1) of a conv or
    fully connected op, when quantized per channel, have one scale per entry of their
    quantized dimension. Per-tensor weights pass whatever quantized_dimension says;
    other tensors' per-channel parameters (a bias's) are not read by TFLM either."""
    if op.opcode not in WEIGHT_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
        return
    w = tensors[op.inputs[1]]
    q = w.quantization
    if q is None or q.scale.size <= 1:
        return
    qd = q.quantized_dimension
    if not 0 <= qd < len(w.shape) or w.shape[qd] != q.scale.size:
        raise fb.fail(f"{op.opcode} op {op.index} weights tensor {w.index} '{w.name}': "
                      f"{q.scale.size} scales along dimension {qd} of shape {list(w.shape)}")


def _operator(fb: FlatBuf, table: int, index: int, opcodes: list[str], n_tensors: int) -> Operator:
    code_index = fb.scalar(table, 0, "<I", 0)
    if code_index >= len(opcodes):
        raise fb.fail(f"operator {index} uses opcode {code_index}, model has {len(opcodes)}", table)
    return Operator(
        index=index, opcode=opcodes[code_index],
        inputs=_indices(fb, table, 1, n_tensors, f"operator {index} input"),
        outputs=_indices(fb, table, 2, n_tensors, f"operator {index} output"),
        options=_options(fb, table),
    )


def _options(fb: FlatBuf, table: int) -> dict:
    kind = fb.scalar(table, 3, "<B", 0)
    spec = _OPTIONS.get(kind)
    opt_table = fb.table(table, 4)
    if spec is None or opt_table is None:
        return {}
    out = {name: (_vector_option(fb, opt_table, slot, fmt[1:]) if fmt.startswith("[")
                  else fb.scalar(opt_table, slot, fmt, default))
           for name, slot, fmt, default in spec}
    if "padding" in out:
        out["padding"] = _PADDING.get(out["padding"], str(out["padding"]))
    if "fused_activation" in out:
        out["fused_activation"] = _ACTIVATION.get(out["fused_activation"], str(out["fused_activation"]))
    return out


def _vector_option(fb: FlatBuf, table: int, slot: int, dtype: str) -> list | None:
    arr = fb.array(table, slot, "<" + dtype)
    return None if arr is None else arr.tolist()

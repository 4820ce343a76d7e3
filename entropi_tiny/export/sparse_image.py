"""Sparse weight image writer: every int8 weight tensor of a .tflite model, compressed.

Usage:
    image, report = encode_model(Path("encoder_int8.tflite").read_bytes())
    write_bytes(Path("weights.etsw"), image)         # entropi_tiny.atomic
    print(format_report(report))
    weights = decode_image(image)                    # {tflite tensor index: int8 array}
    tensors = read_image(image)                      # + folded biases, multipliers (sparse_reader)

The image holds the constant weights of every CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED op and exactly what an int8 kernel needs beside them, all
computed here on the host: per live output channel the bias with the input
zero point folded in (bias - input_zero_point * sum(w), the TinyEngine
trick) and TFLM's requantization multiplier and shift; per dead output
channel (all weights zero) only its int8 output, a constant. Each tensor's
live rows get the smallest of five encodings (sparse_codecs.py); the layout
is specified in docs/sparse_image.md so C kernels can read it in place.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from . import sparse_codecs as codecs
from .sparse_format import (
    DEPTHWISE_AXIS, ENCODING_NAMES, ENTRY_SIZE, HAS_DEAD, HEADER_SIZE, NO_TENSOR, OP_CODES, OP_NAMES,
    PER_TENSOR_SCALE, SECTION_FIELDS, ZERO, crc32, layout, layout_end, pack_entry, pack_header,
)
from .sparse_limits import channel_axis_error, range_error
from .sparse_reader import decode_image, read_image  # noqa: F401  (re-exported)
from .tflite_model import TfliteModel, read_tflite
from .tflm_math import INT32_MAX, INT32_MIN, activation_range, mbqm, quantize_multiplier

ALL_ENCODINGS = tuple(ENCODING_NAMES)


@dataclass(frozen=True)
class Requant:
    """The activation quantization of the op using the weights, and its fused activation range."""
    input_scale: float
    output_scale: float
    input_zero_point: int
    output_zero_point: int
    act_min: int = -128
    act_max: int = 127


@dataclass
class WeightSpec:
    """One weight tensor to store, with what the C runtime needs beside it."""
    tensor_index: int
    weights: np.ndarray                # int8, TFLite shape
    channel_axis: int                  # output-channel axis (quantized dimension)
    scales: np.ndarray                 # float32, [C] or [1]
    zero_points: np.ndarray            # integer, [C] or [1]; must be 0 (symmetric int8 weights)
    requant: Requant
    op: int = 3                        # TFLite builtin code of the consuming op
    bias: np.ndarray | None = None     # int32 [C]
    bias_index: int | None = None
    name: str = ""


# -- from .tflite to specs ------------------------------------------------------

def specs_from_tflite(model: TfliteModel) -> list[WeightSpec]:
    """A WeightSpec for the constant int8 weights of every CONV/DW/FC op, in op order."""
    if any(op.opcode == "DENSIFY" for op in model.operators) or any(t.sparse for t in model.tensors):
        raise UserError("the model uses TFLite's own sparse encoding (DENSIFY ops, which TFLM cannot run): "
                        "give the dense full-int8 model, the image does the compression")
    uses: dict[int, list] = {}
    for op in model.operators:
        if op.opcode in OP_CODES and len(op.inputs) >= 2 and op.inputs[1] >= 0:
            w = model.tensors[op.inputs[1]]
            if w.data is not None:
                uses.setdefault(w.index, []).append(op)
    return [_spec(model, model.tensors[i], ops) for i, ops in uses.items()]


def _spec(model: TfliteModel, w, ops) -> WeightSpec:
    op = ops[0]
    where = f"tensor {w.index} '{w.name}' ({op.opcode} op {op.index})"
    if w.type != "INT8" or w.sparse or w.quantization is None:
        raise UserError(f"{where} is not a dense int8 quantized tensor ({w.type}): "
                        "convert the model with full int8 quantization")
    if not 1 <= len(w.shape) <= 4:
        raise UserError(f"{where} has rank {len(w.shape)}, expected 1 to 4")
    q = w.quantization
    axis = q.quantized_dimension if q.scale.size > 1 else DEPTHWISE_AXIS.get(OP_CODES[op.opcode], 0)
    if axis >= len(w.shape):
        raise UserError(f"{where}: channel axis {axis} outside shape {list(w.shape)}")
    bias_index = op.inputs[2] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    bias = None
    if bias_index is not None:
        b = model.tensors[bias_index]
        if b.type != "INT32" or b.data is None:
            raise UserError(f"bias of {where} is {b.type}, expected a constant int32 tensor")
        bias = b.array().reshape(-1)
    return WeightSpec(
        tensor_index=w.index, weights=w.array(), channel_axis=axis, scales=q.scale,
        zero_points=q.zero_point, op=OP_CODES[op.opcode], bias=bias, bias_index=bias_index,
        requant=op_requant(model, ops), name=w.name,
    )


def op_requant(model: TfliteModel, ops) -> Requant:
    """The activation quantization shared by every op using the weights (UserError if none)."""
    found = set()
    for op in ops:
        where = f"op {op.index} ({op.opcode})"
        if op.inputs[0] < 0 or not op.outputs or op.outputs[0] < 0:
            raise UserError(f"{where} has no input or output activation")
        qi, qo = model.tensors[op.inputs[0]].quantization, model.tensors[op.outputs[0]].quantization
        if qi is None or qo is None or qi.scale.size != 1 or qo.scale.size != 1:
            raise UserError(f"{where}: activations are not quantized per tensor")
        in_scale, out_scale = float(qi.scale[0]), float(qo.scale[0])
        in_zp, out_zp = int(qi.zero_point[0]), int(qo.zero_point[0])
        if not (np.isfinite([in_scale, out_scale]).all() and in_scale > 0 and out_scale > 0
                and -128 <= in_zp <= 127 and -128 <= out_zp <= 127):
            raise UserError(f"{where}: activation scale or zero point is not that of an int8 tensor")
        try:
            lo, hi = activation_range(op.options.get("fused_activation", "NONE"), out_scale, out_zp)
        except ValueError as e:
            raise UserError(f"{where}: {e}") from None
        found.add(Requant(in_scale, out_scale, in_zp, out_zp, lo, hi))
    if len(found) != 1:
        raise UserError(f"ops {[op.index for op in ops]} share weights but not activation quantization")
    return found.pop()


# -- writer ----------------------------------------------------------------------

def encode_model(tflite_bytes: bytes, allowed=ALL_ENCODINGS, label: str = ".tflite model"):
    """(image bytes, report) for every weight tensor of the model."""
    model = read_tflite(tflite_bytes, label)
    specs = specs_from_tflite(model)
    if not specs:
        raise UserError(f"{label} has no constant CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED weights")
    return encode_tensors(specs, allowed)


def encode_tensors(specs: list[WeightSpec], allowed=ALL_ENCODINGS):
    """(image bytes, report); `allowed` restricts the encodings the chooser may pick."""
    if len({s.tensor_index for s in specs}) != len(specs):
        raise UserError("two weight specs name the same tensor index")
    start = HEADER_SIZE + ENTRY_SIZE * len(specs)
    entries, body, rows = [], [], []
    for spec in specs:
        entry, blobs, enc = _entry(spec, allowed, start)
        for name, _, size in layout(entry, start):
            assert len(blobs[name]) == size, name
            body.append(blobs[name] + bytes(-size % 4))
        start = entry["end_off"]
        entries.append(pack_entry(entry))
        rows.append(_report_row(spec, entry, enc))
    payload = b"".join(entries) + b"".join(body)
    image = pack_header(len(specs), HEADER_SIZE + len(payload), crc32(payload)) + payload
    assert len(image) == start
    return image, _report(rows, len(image))


def channel_params(spec: WeightSpec, cm: np.ndarray, where: str) -> dict:
    """Per-channel sections: live bitmap, folded biases, multipliers, shifts, dead constants.

    Multipliers follow TFLM's conv/FC Prepare: QuantizeMultiplier of
    input_scale * weight_scale / output_scale in double from the float32
    scales. A dead channel's accumulator is its bias alone, so its output is
    the same int8 value at every pixel; we store that value.
    """
    channels = cm.shape[0]

    def per_channel(a, dtype, what):
        a = np.asarray(a).reshape(-1)
        if a.size not in (1, channels):
            raise UserError(f"{where}: {a.size} {what} for {channels} channels")
        return np.broadcast_to(a, (channels,)).astype(dtype)

    scales = per_channel(spec.scales, np.float32, "scales")
    if not np.all(np.isfinite(scales) & (scales > 0)):
        raise UserError(f"{where}: scales must be finite and positive")
    if np.any(per_channel(spec.zero_points, np.int64, "zero points")):
        raise UserError(f"{where}: weight zero points must be 0 (symmetric int8 weights)")
    bias = np.zeros(channels, np.int64) if spec.bias is None else per_channel(spec.bias, np.int64, "biases")
    if spec.bias is not None and np.asarray(spec.bias).size != channels:
        raise UserError(f"{where}: bias must be {channels} int32 values")
    rq = spec.requant
    if not (-128 <= rq.input_zero_point <= 127 and -128 <= rq.output_zero_point <= 127
            and -128 <= rq.act_min <= rq.act_max <= 127 and rq.input_scale > 0 and rq.output_scale > 0):
        raise UserError(f"{where}: activation quantization is not that of int8 tensors")
    folded = bias - rq.input_zero_point * cm.astype(np.int64).sum(axis=1)
    if np.any((folded < INT32_MIN) | (folded > INT32_MAX)) or np.any(np.abs(bias) > INT32_MAX):
        raise UserError(f"{where}: bias with the input zero point folded in overflows int32")
    in_scale, out_scale = float(np.float32(rq.input_scale)), float(np.float32(rq.output_scale))
    pairs = [quantize_multiplier(in_scale * float(s) / out_scale) for s in scales]
    live = cm.any(axis=1)
    mult = np.array([m for m, _ in pairs], np.int64)
    shift = np.array([s for _, s in pairs], np.int64)
    problem = range_error(cm[live], folded[live], mult[live], shift[live])
    if problem:
        raise UserError(f"{where}: {problem}: the kernel could overflow, the image is refused")
    consts = [min(max(mbqm(int(folded[o]), int(mult[o]), int(shift[o])) + rq.output_zero_point, rq.act_min),
                  rq.act_max) for o in np.flatnonzero(~live)]
    return {
        "live": live,
        "live_off": np.packbits(live, bitorder="little").tobytes(),
        "bias_off": folded[live].astype("<i4").tobytes(),
        "multiplier_off": mult[live].astype("<i4").tobytes(),
        "shift_off": shift[live].astype("i1").tobytes(),
        "const_off": np.array(consts, np.int8).tobytes(),
        "per_tensor": np.asarray(spec.scales).size == 1,
    }


def _entry(spec: WeightSpec, allowed, start: int):
    """Directory entry fields, section bytes by offset-field name, and the encoding."""
    w = np.asarray(spec.weights)
    where = f"tensor {spec.tensor_index} '{spec.name}'"
    if w.dtype != np.int8 or not 1 <= w.ndim <= 4 or not 0 <= spec.channel_axis < w.ndim or w.size == 0:
        raise UserError(f"{where}: expected a non-empty int8 array of rank 1-4 with a valid channel axis")
    if spec.op not in OP_NAMES:
        raise UserError(f"{where}: op code {spec.op} is not CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED")
    problem = channel_axis_error(spec.op, w.ndim, spec.channel_axis)
    if problem:
        raise UserError(f"{where}: {problem}; is its quantized_dimension right?")
    cm = codecs.channel_major(w, spec.channel_axis)
    blobs = channel_params(spec, cm, where)
    live = blobs.pop("live")
    rows = cm[live]
    enc = codecs.choose(rows, allowed) if rows.shape[0] else codecs.Encoded(ZERO)
    c, k = cm.shape
    flags = (HAS_DEAD if not live.all() else 0) | (PER_TENSOR_SCALE if blobs.pop("per_tensor") else 0)
    rq = spec.requant
    shape = list(w.shape) + [0] * (4 - w.ndim)
    e = dict(
        tensor_index=spec.tensor_index,
        bias_index=NO_TENSOR if spec.bias is None else spec.bias_index,
        encoding=enc.encoding, op=spec.op, rank=w.ndim, channel_axis=spec.channel_axis,
        delta_t=enc.delta_t, index_width=enc.index_width, flags=flags,
        shape0=shape[0], shape1=shape[1], shape2=shape[2], shape3=shape[3],
        channels=c, live_channels=int(live.sum()), channel_len=k, nnz=int(np.count_nonzero(cm)),
        positions_size=len(enc.positions),
        input_scale=rq.input_scale, output_scale=rq.output_scale,
        input_zero_point=rq.input_zero_point, output_zero_point=rq.output_zero_point,
        act_min=rq.act_min, act_max=rq.act_max,
    )
    e.update({name: 0 for name in SECTION_FIELDS})
    sections = layout(e, start)
    e.update({name: off for name, off, _ in sections})
    e["end_off"] = layout_end(sections, start)
    dtype = "<u2" if enc.index_width == 2 else "<u4"
    for name, table in zip(("index_off", "index2_off"), enc.tables):
        blobs[name] = table.astype(dtype).tobytes()
    blobs["positions_off"], blobs["values_off"] = enc.positions, enc.values
    return e, blobs, enc


# -- report ----------------------------------------------------------------------

def _report_row(spec: WeightSpec, e: dict, enc) -> dict:
    size = int(np.asarray(spec.weights).size)
    param_bytes = sum(4 * ((s + 3) // 4) for name, _, s in layout(e, 0)
                      if name in ("live_off", "bias_off", "multiplier_off", "shift_off", "const_off"))
    return {
        "tensor_index": spec.tensor_index, "name": spec.name, "op": OP_NAMES[spec.op],
        "shape": list(np.asarray(spec.weights).shape), "nnz": e["nnz"], "size": size,
        "density": e["nnz"] / size, "encoding": ENCODING_NAMES[enc.encoding],
        "channels": e["channels"], "live_channels": e["live_channels"],
        "weight_bytes": enc.size, "param_bytes": param_bytes,
        "bytes": ENTRY_SIZE + enc.size + param_bytes,
    }


def _report(rows: list[dict], total: int) -> dict:
    nnz = sum(r["nnz"] for r in rows)
    weight_bytes = sum(r["weight_bytes"] for r in rows)
    param_bytes = sum(r["param_bytes"] for r in rows)
    counts = {name: sum(r["encoding"] == name for r in rows) for name in ENCODING_NAMES.values()}
    return {
        "tensors": rows,
        "totals": {
            "bytes": total, "nnz": nnz, "size": sum(r["size"] for r in rows),
            "bytes_per_nnz": total / nnz if nnz else None,
            "weight_bytes": weight_bytes,
            "weight_bytes_per_nnz": weight_bytes / nnz if nnz else None,
            "param_bytes": param_bytes,
            "channels": sum(r["channels"] for r in rows),
            "live_channels": sum(r["live_channels"] for r in rows),
            "header_bytes": total - weight_bytes - param_bytes,
            "encodings": counts,
        },
    }


def format_report(report: dict) -> str:
    """A plain-text table of the report, one line per tensor and a total."""
    lines = [f"{'tensor':>6} {'op':<18} {'shape':<18} {'nnz':>9} {'density':>8} {'encoding':<8} {'bytes':>9}"]
    for r in report["tensors"]:
        lines.append(f"{r['tensor_index']:>6} {r['op']:<18} {str(r['shape']):<18} {r['nnz']:>9} "
                     f"{r['density']:>8.2%} {r['encoding']:<8} {r['bytes']:>9}")
    t = report["totals"]
    per = f"{t['bytes_per_nnz']:.3f}" if t["bytes_per_nnz"] is not None else "-"
    lines.append(f"total {t['bytes']} bytes, {t['nnz']} non-zeros, {per} bytes per non-zero "
                 f"(weights {t['weight_bytes']}, biases/quantization {t['param_bytes']}, "
                 f"header+directory {t['header_bytes']})")
    return "\n".join(lines)

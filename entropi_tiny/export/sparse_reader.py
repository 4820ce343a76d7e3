"""Sparse weight image reader: validates everything, returns the tensors.

Usage:
    weights = decode_image(image)         # {tflite tensor index: int8 array, TFLite shape}
    tensors = read_image(image)           # {tflite tensor index: ImageTensor}
    tensors[i].live, tensors[i].bias, tensors[i].multipliers, tensors[i].constants

The reader trusts nothing: it checks the magic, version, byte order, sizes,
the CRC-32, then for each directory entry its fields, that its sections sit
exactly where the canonical layout puts them (docs/sparse_image.md) with
zero padding, and while decoding that every position lies inside its
channel. Any inconsistency raises UserError with one line.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from . import sparse_codecs as codecs
from .sparse_format import (
    BYTE_ORDER_MARK, DELTA8, DENSE, ENCODING_NAMES, ENTRY_SIZE, HAS_DEAD, HEADER_SIZE, KNOWN_FLAGS, MAGIC,
    N_TABLES, NO_TENSOR, OP_NAMES, PER_TENSOR_SCALE, SECTION_FIELDS, VERSION, ZERO, crc32, layout,
    layout_end, unpack_entry, unpack_header,
)
from .sparse_limits import channel_axis_error, range_error

MAX_ELEMENTS = 1 << 28  # a bigger tensor cannot be meant for a microcontroller


@dataclass
class ImageTensor:
    tensor_index: int
    op: str
    encoding: str
    weights: np.ndarray                # int8, TFLite shape (dead channels are zeros)
    channel_axis: int
    nnz: int
    live: np.ndarray                   # bool [C]: the channel has a non-zero weight
    bias: np.ndarray                   # int32 [L]: bias - input_zero_point * sum(w), live channels
    multipliers: np.ndarray            # int32 [L]
    shifts: np.ndarray                 # int8 [L]
    constants: np.ndarray              # int8 [C - L]: the output of each dead channel
    per_tensor_scale: bool
    bias_index: int | None
    requant: tuple[float, float, int, int, int, int]  # in/out scale, in/out zero point, act min/max


def _fail(msg: str):
    raise UserError(f"corrupt sparse weight image: {msg}")


def decode_image(data: bytes) -> dict[int, np.ndarray]:
    """{tflite tensor index: int8 weights in the TFLite shape}."""
    return {i: t.weights for i, t in read_image(data).items()}


def read_image(data: bytes) -> dict[int, ImageTensor]:
    """Every tensor of the image with its parameters; UserError on any inconsistency."""
    data = bytes(data)
    count = _check_header(data)
    out, start = {}, HEADER_SIZE + ENTRY_SIZE * count
    for i in range(count):
        e = unpack_entry(data, HEADER_SIZE + ENTRY_SIZE * i)
        _check_entry(e, i, data, start)
        if e["tensor_index"] in out:
            _fail(f"tensor {e['tensor_index']} appears twice")
        out[e["tensor_index"]] = _tensor(e, data)
        start = e["end_off"]
    if start != len(data):
        _fail(f"{len(data) - start} bytes after the last tensor")
    return out


def _check_header(data: bytes) -> int:
    if len(data) < HEADER_SIZE:
        _fail(f"{len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    h = unpack_header(data)
    if h["magic"] != MAGIC:
        _fail(f"magic is {h['magic']!r}, expected {MAGIC!r}")
    if h["version"] != VERSION:
        raise UserError(f"sparse weight image version {h['version']} is not supported (this reader: {VERSION})")
    if h["byte_order"] != BYTE_ORDER_MARK:
        _fail(f"byte order mark 0x{h['byte_order']:04x}, expected 0x{BYTE_ORDER_MARK:04x} (little-endian)")
    if h["header_size"] != HEADER_SIZE or h["entry_size"] != ENTRY_SIZE:
        _fail(f"header/entry sizes {h['header_size']}/{h['entry_size']}, expected {HEADER_SIZE}/{ENTRY_SIZE}")
    if h["flags"] or h["reserved"]:
        _fail("reserved header fields are not zero")
    if h["total_size"] != len(data):
        _fail(f"{len(data)} bytes but the header says {h['total_size']} (truncated?)")
    if crc32(data[HEADER_SIZE:]) != h["crc32"]:
        _fail(f"CRC-32 mismatch (stored 0x{h['crc32']:08x}, computed 0x{crc32(data[HEADER_SIZE:]):08x})")
    if HEADER_SIZE + ENTRY_SIZE * h["tensor_count"] > len(data):
        _fail(f"directory of {h['tensor_count']} entries runs past the end")
    return h["tensor_count"]


def _check_entry(e: dict, i: int, data: bytes, start: int) -> None:
    def bad(msg):
        _fail(f"entry {i} (tensor {e['tensor_index']}): {msg}")

    rank, enc, c, live = e["rank"], e["encoding"], e["channels"], e["live_channels"]
    shape = [e[f"shape{d}"] for d in range(4)]
    if enc not in ENCODING_NAMES or e["op"] not in OP_NAMES or e["flags"] & ~KNOWN_FLAGS:
        bad(f"unknown encoding {enc}, op {e['op']} or flags 0x{e['flags']:x}")
    if not 1 <= rank <= 4 or e["channel_axis"] >= rank or min(shape[:rank]) < 1 or any(shape[rank:]):
        bad(f"shape {shape} of rank {rank} with channel axis {e['channel_axis']} is invalid")
    if problem := channel_axis_error(e["op"], rank, e["channel_axis"]):
        bad(problem)
    size = int(np.prod(shape[:rank], dtype=np.int64))
    if size > MAX_ELEMENTS or c != shape[e["channel_axis"]] or c * e["channel_len"] != size:
        bad(f"channels {c} x length {e['channel_len']} do not match shape {shape[:rank]}")
    if live > c or bool(e["flags"] & HAS_DEAD) != (live < c) or (enc == ZERO) != (live == 0):
        bad(f"{live} live channels of {c} disagree with the flags or the encoding")
    if not live <= e["nnz"] <= live * e["channel_len"]:
        bad(f"nnz {e['nnz']} is impossible for {live} live channels")
    tables = N_TABLES[enc]
    if e["index_width"] not in ((2, 4) if tables else (0,)):
        bad(f"index width {e['index_width']} is invalid")
    if (e["delta_t"] != 0) != (enc == DELTA8) or (enc in (ZERO, DENSE) and e["positions_size"]):
        bad(f"DELTA8 threshold {e['delta_t']} or positions size {e['positions_size']} is invalid")
    if not e["act_min"] <= e["act_max"] or not (e["input_scale"] > 0 and e["output_scale"] > 0):
        bad("activation range or scales are invalid")
    sections = layout(e, start)
    expect = dict.fromkeys(SECTION_FIELDS, 0) | {name: off for name, off, _ in sections}
    expect["end_off"] = layout_end(sections, start)
    if expect["end_off"] > len(data):
        bad(f"sections end at {expect['end_off']}, past the end of the image ({len(data)} bytes)")
    for name, want in expect.items():
        if e[name] != want:
            bad(f"{name} is {e[name]}, the layout puts it at {want}")
    for name, off, n in sections:
        if any(data[off + n:off + n + (-n % 4)]):
            bad(f"padding after section {name} is not zero")


def _section(data: bytes, e: dict, field: str, size: int) -> bytes:
    return data[e[field]:e[field] + size] if e[field] else b""


def _tensor(e: dict, data: bytes) -> ImageTensor:
    c, live_n, k, w = e["channels"], e["live_channels"], e["channel_len"], e["index_width"]
    sizes = {name: n for name, _, n in layout(e, 0)}
    tables = [np.frombuffer(_section(data, e, f, (live_n + 1) * w), "<u2" if w == 2 else "<u4").astype(np.int64)
              for f in ("index_off", "index2_off")[:N_TABLES[e["encoding"]]]]
    positions = _section(data, e, "positions_off", e["positions_size"])
    values = _section(data, e, "values_off", sizes.get("values_off", 0))

    def fail(msg):
        _fail(f"tensor {e['tensor_index']}: {msg}")

    if e["flags"] & HAS_DEAD:
        bits = np.unpackbits(np.frombuffer(_section(data, e, "live_off", (c + 7) // 8), np.uint8),
                             bitorder="little")
        if bits[c:].any() or int(bits[:c].sum()) != live_n:
            fail("live bitmap disagrees with the live channel count or has padding bits set")
        live = bits[:c].astype(bool)
    else:
        live = np.ones(c, bool)
    rows = codecs.decode(e["encoding"], live_n, k, e["nnz"], tables, positions, values, e["delta_t"], fail)
    if live_n and not rows.any(axis=1).all():
        fail("a live channel has no non-zero weight")
    cm = np.zeros((c, k), np.int8)
    cm[live] = rows
    shape = tuple(e[f"shape{d}"] for d in range(e["rank"]))

    def arr(field, dtype, n):
        return np.frombuffer(_section(data, e, field, n * np.dtype(dtype).itemsize), dtype).copy()

    params = {f: arr(f, dt, live_n) for f, dt in (("bias_off", "<i4"), ("multiplier_off", "<i4"), ("shift_off", "i1"))}
    if problem := range_error(rows, params["bias_off"], params["multiplier_off"], params["shift_off"]):
        fail(problem)
    return ImageTensor(
        tensor_index=e["tensor_index"], op=OP_NAMES[e["op"]], encoding=ENCODING_NAMES[e["encoding"]],
        weights=codecs.from_channel_major(cm, shape, e["channel_axis"]), channel_axis=e["channel_axis"],
        nnz=e["nnz"], live=live,
        bias=params["bias_off"], multipliers=params["multiplier_off"],
        shifts=params["shift_off"], constants=arr("const_off", "i1", c - live_n),
        per_tensor_scale=bool(e["flags"] & PER_TENSOR_SCALE),
        bias_index=None if e["bias_index"] == NO_TENSOR else e["bias_index"],
        requant=(e["input_scale"], e["output_scale"], e["input_zero_point"], e["output_zero_point"],
                 e["act_min"], e["act_max"]),
    )

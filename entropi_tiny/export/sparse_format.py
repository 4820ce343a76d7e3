"""Binary layout of the sparse weight image: constants, header, directory entry.

Usage:
    hdr = pack_header(tensor_count=3, total_size=n, crc=c)
    fields = unpack_header(data)                # dict, no validation
    entry = pack_entry(fields); fields = unpack_entry(data, offset)

docs/sparse_image.md is the specification; this module is its transcription
into struct formats. Everything is little-endian; every section starts on a
4-byte boundary so C code can read uint32/int32/float arrays in place.
"""
from __future__ import annotations

import struct
import zlib

MAGIC = b"ETSW"
VERSION = 2
BYTE_ORDER_MARK = 0x0102          # stored as 02 01; read as 0x0201 on a big-endian host
NO_TENSOR = 0xFFFFFFFF            # bias_index when the op has no bias

# Encodings, in order of preference when two give the same size.
ZERO, DENSE, BITMASK, DELTA8, DELTA4 = range(5)
ENCODING_NAMES = {ZERO: "ZERO", DENSE: "DENSE", BITMASK: "BITMASK", DELTA8: "DELTA8", DELTA4: "DELTA4"}

# Entry flags.
HAS_DEAD = 1 << 0                 # some output channel has no non-zero: live bitmap + constants
PER_TENSOR_SCALE = 1 << 1         # informational: the weights had one scale for all channels
KNOWN_FLAGS = HAS_DEAD | PER_TENSOR_SCALE

# TFLite builtin codes of the ops whose weights we store.
OP_CONV_2D, OP_DEPTHWISE_CONV_2D, OP_FULLY_CONNECTED = 3, 4, 9
OP_NAMES = {OP_CONV_2D: "CONV_2D", OP_DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D", OP_FULLY_CONNECTED: "FULLY_CONNECTED"}
OP_CODES = {name: code for code, name in OP_NAMES.items()}
DEPTHWISE_AXIS = {OP_DEPTHWISE_CONV_2D: 3}  # output-channel axis when the scale is per tensor

# Header: magic, version, header_size, byte_order, entry_size, flags,
# tensor_count, total_size, crc32, reserved.
_HEADER = struct.Struct("<4sHHHHIIIII")
HEADER_SIZE = _HEADER.size  # 32
_HEADER_FIELDS = ("magic", "version", "header_size", "byte_order", "entry_size", "flags",
                  "tensor_count", "total_size", "crc32", "reserved")

# Directory entry, one per tensor (104 bytes); see docs/sparse_image.md for each field.
_ENTRY = struct.Struct("<II6BH4iIIII" "IIIIIIIIII" "ff4b" "I")
ENTRY_SIZE = _ENTRY.size  # 104
_ENTRY_FIELDS = (
    "tensor_index", "bias_index",
    "encoding", "op", "rank", "channel_axis", "delta_t", "index_width", "flags",
    "shape0", "shape1", "shape2", "shape3",
    "channels", "live_channels", "channel_len", "nnz",
    "index_off", "index2_off", "positions_off", "positions_size", "values_off",
    "live_off", "bias_off", "multiplier_off", "shift_off", "const_off",
    "input_scale", "output_scale", "input_zero_point", "output_zero_point", "act_min", "act_max",
    "end_off",
)
assert HEADER_SIZE == 32 and ENTRY_SIZE == 104 and len(_ENTRY_FIELDS) == 34


def pad4(n: int) -> int:
    """n rounded up to a multiple of 4."""
    return (n + 3) & ~3


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (zlib, PNG, Ethernet): reflected poly 0xEDB88320, init and xorout 0xFFFFFFFF."""
    return zlib.crc32(data) & 0xFFFFFFFF


def pack_header(tensor_count: int, total_size: int, crc: int) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, HEADER_SIZE, BYTE_ORDER_MARK, ENTRY_SIZE, 0,
                        tensor_count, total_size, crc, 0)


def unpack_header(data: bytes) -> dict:
    return dict(zip(_HEADER_FIELDS, _HEADER.unpack_from(data, 0)))


def pack_entry(fields: dict) -> bytes:
    return _ENTRY.pack(*(fields[name] for name in _ENTRY_FIELDS))


def unpack_entry(data: bytes, offset: int) -> dict:
    return dict(zip(_ENTRY_FIELDS, _ENTRY.unpack_from(data, offset)))


SECTION_FIELDS = ("live_off", "index_off", "index2_off", "positions_off", "values_off", "bias_off",
                  "multiplier_off", "shift_off", "const_off")
N_TABLES = {ZERO: 0, DENSE: 0, BITMASK: 1, DELTA8: 1, DELTA4: 2}


def layout(e: dict, start: int) -> list[tuple[str, int, int]]:
    """Canonical sections of one tensor as (field, offset, size), starting at `start`.

    Sections follow each other in this order, each padded with zero bytes to
    a multiple of 4: live bitmap, offset table(s), positions, values, folded
    biases, multipliers, shifts, dead-channel constants. Absent sections are
    left out (offset 0). Tables, values and per-channel parameters cover the
    L live channels only; the constants cover the C - L dead ones.
    """
    enc, c, live, w = e["encoding"], e["channels"], e["live_channels"], e["index_width"]
    sizes = []
    if e["flags"] & HAS_DEAD:
        sizes.append(("live_off", (c + 7) // 8))
    if N_TABLES.get(enc, 0) >= 1:
        sizes.append(("index_off", (live + 1) * w))
    if N_TABLES.get(enc, 0) == 2:
        sizes.append(("index2_off", (live + 1) * w))
    if enc in (BITMASK, DELTA8, DELTA4):
        sizes.append(("positions_off", e["positions_size"]))
    if enc in (DENSE, BITMASK, DELTA4):
        sizes.append(("values_off", live * e["channel_len"] if enc == DENSE else e["nnz"]))
    if live:
        sizes += [("bias_off", 4 * live), ("multiplier_off", 4 * live), ("shift_off", live)]
    if e["flags"] & HAS_DEAD:
        sizes.append(("const_off", c - live))
    out, pos = [], start
    for name, size in sizes:
        out.append((name, pos, size))
        pos += pad4(size)
    return out


def layout_end(sections: list[tuple[str, int, int]], start: int) -> int:
    return sections[-1][1] + pad4(sections[-1][2]) if sections else start

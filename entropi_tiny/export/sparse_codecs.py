"""The five weight encodings of the sparse image: encoders, decoders, chooser.

Usage:
    cm = channel_major(w, axis)               # int8 [C, K]: one row per output channel
    enc = choose(cm)                          # smallest Encoded among all encodings
    enc = encode(cm, DELTA8)                  # or a given one
    cm2 = decode(enc.encoding, C, K, nnz, tables, positions, values, delta_t, fail)

Every encoding works on the channel-major matrix: row o holds output
channel o's weights in TFLite order (for CONV_2D [O,KH,KW,I] that is the
(kh, kw, i) order, for DEPTHWISE_CONV_2D [1,KH,KW,C] it is (kh, kw)), so a
kernel walks the non-zeros of one output channel front to back.

    ZERO     nothing stored (nnz == 0)
    DENSE    C*K int8 values
    BITMASK  value offsets [C+1], a K-bit row per channel, the non-zero values
    DELTA8   token offsets [C+1]; per non-zero a byte-aligned gap code, then its value
    DELTA4   value offsets [C+1], nibble offsets [C+1], 4-bit gap codes, values

A gap is the number of zeros skipped since the previous non-zero of the same
channel (or since the channel start). DELTA8 writes gaps below a per-tensor
threshold T in one byte, gaps up to T + (255-T)*256 - 1 in two, anything up
to 65535 in three (255, lo, hi); the encoder tries every T and keeps the
cheapest, which adapts the code to the tensor's density (at 1% density it
costs ~1.1 bytes per position, close to the 1.01-byte entropy of the gaps).
DELTA4 writes a gap g as g // 15 nibbles of 15 followed by the nibble
g % 15; it wins between ~5% and ~20% density, where BITMASK wastes bits on
zeros and DELTA8 spends a whole byte per gap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sparse_format import BITMASK, DELTA4, DELTA8, DENSE, ZERO, pad4


@dataclass
class Encoded:
    encoding: int
    tables: list[np.ndarray] = field(default_factory=list)  # each int64 [C+1]
    positions: bytes = b""
    values: bytes = b""
    delta_t: int = 0

    @property
    def index_width(self) -> int:
        if not self.tables:
            return 0
        return 2 if max(int(t[-1]) for t in self.tables) <= 0xFFFF else 4

    @property
    def size(self) -> int:
        """Bytes of the weight sections in the image, padding included."""
        w = self.index_width
        return (sum(pad4(len(t) * w) for t in self.tables)
                + pad4(len(self.positions)) + pad4(len(self.values)))


def channel_major(w: np.ndarray, axis: int) -> np.ndarray:
    """[C, K] view with the channel axis first, the rest flattened in order."""
    return np.ascontiguousarray(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1)


def from_channel_major(cm: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    moved = (shape[axis],) + tuple(d for i, d in enumerate(shape) if i != axis)
    return np.ascontiguousarray(np.moveaxis(cm.reshape(moved), 0, axis))


def _offsets(rows: np.ndarray, weights: np.ndarray, channels: int) -> np.ndarray:
    """[C+1] prefix sums of `weights` grouped by channel `rows`."""
    per = np.bincount(rows, weights=weights, minlength=channels).astype(np.int64)
    return np.concatenate([[0], np.cumsum(per)])


def _gaps(cm: np.ndarray):
    """Row, column and gap of every non-zero, in channel-major order."""
    rows, cols = np.nonzero(cm)
    prev = np.empty_like(cols)
    prev[:1] = -1
    prev[1:] = np.where(rows[1:] == rows[:-1], cols[:-1], -1)
    return rows, cols, (cols - prev - 1).astype(np.int64)


# -- encoders ----------------------------------------------------------------

def _bitmask(cm: np.ndarray) -> Encoded:
    mask = cm != 0
    bits = np.packbits(mask, axis=1, bitorder="little")
    val_off = np.concatenate([[0], np.cumsum(mask.sum(axis=1, dtype=np.int64))])
    return Encoded(BITMASK, [val_off], bits.tobytes(), cm[mask].tobytes())


def delta8_cost(gaps: np.ndarray, t: int) -> np.ndarray:
    """Bytes of each gap code (value byte excluded) for threshold t."""
    return np.where(gaps < t, 1, np.where(gaps < t + (255 - t) * 256, 2, 3))


def best_delta8_t(gaps: np.ndarray) -> int:
    """The threshold T in 1..255 that makes the gap codes shortest (largest T on ties)."""
    g = np.sort(gaps)
    best_t, best = 255, None
    for t in range(255, 0, -1):
        n1 = np.searchsorted(g, t)
        n2 = np.searchsorted(g, t + (255 - t) * 256) - n1
        cost = g.size + n2 + 2 * (g.size - n1 - n2)
        if best is None or cost < best:
            best_t, best = t, cost
    return best_t


def _delta8(cm: np.ndarray) -> Encoded | None:
    rows, cols, gaps = _gaps(cm)
    if gaps.size and gaps.max() > 0xFFFF:
        return None
    t = best_delta8_t(gaps)
    code = delta8_cost(gaps, t)
    start = np.concatenate([[0], np.cumsum(code + 1)])[:-1]
    out = np.zeros(int(np.sum(code + 1)), np.uint8)
    one, two, three = code == 1, code == 2, code == 3
    out[start[one]] = gaps[one]
    rest = gaps[two] - t
    out[start[two]] = t + (rest >> 8)
    out[start[two] + 1] = rest & 0xFF
    out[start[three]] = 255
    out[start[three] + 1] = gaps[three] & 0xFF
    out[start[three] + 2] = gaps[three] >> 8
    out[start + code] = cm[rows, cols].view(np.uint8)
    return Encoded(DELTA8, [_offsets(rows, code + 1, cm.shape[0])], out.tobytes(), b"", t)


def _delta4(cm: np.ndarray) -> Encoded:
    rows, cols, gaps = _gaps(cm)
    channels = cm.shape[0]
    nib_per = gaps // 15 + 1                                  # nibbles per non-zero
    nib_chan = np.bincount(rows, weights=nib_per, minlength=channels).astype(np.int64)
    byte_off = np.concatenate([[0], np.cumsum((nib_chan + 1) // 2)])
    # Nibble index where each non-zero's code starts: channel start + earlier codes.
    within = np.cumsum(nib_per) - nib_per
    chan_first = _offsets(rows, nib_per, channels)[:-1]
    start = 2 * byte_off[rows] + within - chan_first[rows]
    nib = np.zeros(2 * int(byte_off[-1]), np.uint8)
    run_starts = np.repeat(start, nib_per - 1)               # the runs of 15s
    run_pos = np.arange(run_starts.size) - np.repeat(np.cumsum(nib_per - 1) - (nib_per - 1), nib_per - 1)
    nib[run_starts + run_pos] = 15
    nib[start + nib_per - 1] = gaps % 15
    packed = (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)
    val_off = _offsets(rows, np.ones_like(gaps), channels)
    return Encoded(DELTA4, [val_off, byte_off], packed.tobytes(), cm[rows, cols].tobytes())


def encode(cm: np.ndarray, encoding: int) -> Encoded | None:
    """Encode the [C, K] int8 matrix; None if this encoding cannot hold it."""
    if encoding == ZERO:
        return Encoded(ZERO) if not cm.any() else None
    if encoding == DENSE:
        return Encoded(DENSE, values=cm.tobytes())
    if encoding == BITMASK:
        return _bitmask(cm)
    if encoding == DELTA8:
        return _delta8(cm)
    if encoding == DELTA4:
        return _delta4(cm)
    raise ValueError(f"unknown encoding {encoding}")


def choose(cm: np.ndarray, allowed=(ZERO, DENSE, BITMASK, DELTA8, DELTA4)) -> Encoded:
    """The smallest encoding of cm among `allowed` (earlier one wins a tie)."""
    candidates = [e for e in (encode(cm, a) for a in allowed) if e is not None]
    if not candidates:
        raise ValueError("no allowed encoding can hold this tensor")
    return min(candidates, key=lambda e: e.size)


# -- decoders ----------------------------------------------------------------
# Each takes the sections of one tensor and returns the [C, K] int8 matrix,
# checking everything a C reader would trust blindly; `fail(msg)` raises.

def _check_table(t: np.ndarray, end: int, what: str, fail) -> None:
    if t[0] != 0 or t[-1] != end or np.any(np.diff(t) < 0):
        fail(f"{what} table is not monotone from 0 to {end}")


def _values(raw: bytes, fail) -> np.ndarray:
    vals = np.frombuffer(raw, np.int8)
    if np.any(vals == 0):
        fail("a stored non-zero value is zero")
    return vals


def _decode_bitmask(c, k, tables, positions, values, fail):
    val_off = tables[0]
    _check_table(val_off, len(values), "value offset", fail)
    row_bytes = (k + 7) // 8
    if len(positions) != c * row_bytes:
        fail(f"bitmap has {len(positions)} bytes, expected {c * row_bytes}")
    bits = np.unpackbits(np.frombuffer(positions, np.uint8).reshape(c, row_bytes), axis=1, bitorder="little")
    if bits[:, k:].any():
        fail("bitmap padding bits are not zero")
    mask = bits[:, :k].astype(bool)
    if np.any(mask.sum(axis=1) != np.diff(val_off)):
        fail("bitmap row counts disagree with the value offsets")
    cm = np.zeros((c, k), np.int8)
    cm[mask] = _values(values, fail)
    return cm


def _decode_delta8(c, k, tables, positions, t, fail):
    off = tables[0]
    _check_table(off, len(positions), "token offset", fail)
    s, cm = positions, np.zeros((c, k), np.int8)
    for o in range(c):
        r, end, p = int(off[o]), int(off[o + 1]), 0
        while r < end:
            b = s[r]
            n = 1 if b < t else 2 if b < 255 else 3      # code bytes; the value follows
            if r + n >= end:
                fail(f"channel {o}: token stream overruns the channel")
            gap = b if n == 1 else t + ((b - t) << 8 | s[r + 1]) if n == 2 else s[r + 1] | s[r + 2] << 8
            p, r = p + gap, r + n
            if p >= k:
                fail(f"channel {o}: position {p} is past the channel length {k}")
            if s[r] == 0:
                fail("a stored non-zero value is zero")
            cm[o, p] = s[r] - 256 if s[r] > 127 else s[r]
            r, p = r + 1, p + 1
    return cm


def _decode_delta4(c, k, tables, positions, values, fail):
    val_off, nib_off = tables
    _check_table(val_off, len(values), "value offset", fail)
    _check_table(nib_off, len(positions), "nibble offset", fail)
    vals = _values(values, fail)
    cm = np.zeros((c, k), np.int8)
    for o in range(c):
        stream = positions[nib_off[o]:nib_off[o + 1]]
        nibbles = [n for b in stream for n in (b & 15, b >> 4)]
        i, p = 0, 0
        for v in range(int(val_off[o]), int(val_off[o + 1])):
            while i < len(nibbles) and nibbles[i] == 15:
                p, i = p + 15, i + 1
            if i >= len(nibbles) or p + nibbles[i] >= k:
                fail(f"channel {o}: nibble stream overruns the channel")
            p += nibbles[i]
            cm[o, p] = vals[v]
            p, i = p + 1, i + 1
        if len(stream) != (i + 1) // 2 or any(nibbles[i:]):
            fail(f"channel {o}: nibble stream has unused nibbles")
    return cm


def decode(encoding, c, k, nnz, tables, positions, values, delta_t, fail) -> np.ndarray:
    """The [C, K] int8 matrix from one tensor's sections; fail(msg) on any inconsistency."""
    if encoding == ZERO:
        cm = np.zeros((c, k), np.int8)
    elif encoding == DENSE:
        if len(values) != c * k:
            fail(f"dense values have {len(values)} bytes, expected {c * k}")
        cm = np.frombuffer(values, np.int8).reshape(c, k).copy()
    elif encoding == BITMASK:
        cm = _decode_bitmask(c, k, tables, positions, values, fail)
    elif encoding == DELTA8:
        if not 1 <= delta_t <= 255:
            fail(f"DELTA8 threshold {delta_t} is outside 1..255")
        cm = _decode_delta8(c, k, tables, positions, delta_t, fail)
    elif encoding == DELTA4:
        cm = _decode_delta4(c, k, tables, positions, values, fail)
    else:
        fail(f"unknown encoding {encoding}")
    if int(np.count_nonzero(cm)) != nnz:
        fail(f"decoded {np.count_nonzero(cm)} non-zeros, the entry says {nnz}")
    return cm

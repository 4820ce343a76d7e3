"""The rules a weight tensor must obey beyond the image layout, for the kernels' sake.

Usage:
    msg = channel_axis_error(op, rank, axis)       # None, or why the axis is wrong for the op
    msg = range_error(rows, bias, multipliers, shifts)   # None, or the first channel that could overflow

The writer (sparse_image.py) refuses to encode, and the Python reader
(sparse_reader.py) refuses to load, any tensor that breaks one; the C
reader (firmware/src/et_sparse_image.c, op_axis_ok and check_rows) applies
the same rules at init, so the kernels never meet such a tensor. The rules
are listed in docs/sparse_image.md, section 4.
"""
from __future__ import annotations

import numpy as np

from .sparse_format import OP_CONV_2D, OP_DEPTHWISE_CONV_2D, OP_FULLY_CONNECTED, OP_NAMES
from .tflm_math import INT32_MAX

# |MBQM(acc)| + |output_zero_point| must stay in int32.
REQUANT_LIMIT = INT32_MAX - 128


def expected_channel_axis(op: int, rank: int) -> int | None:
    """The axis the op's kernel indexes output channels by (None for an op without weights here)."""
    if op in (OP_CONV_2D, OP_FULLY_CONNECTED):
        return 0
    return rank - 1 if op == OP_DEPTHWISE_CONV_2D else None


def channel_axis_error(op: int, rank: int, axis: int) -> str | None:
    want = expected_channel_axis(op, rank)
    if want == axis:
        return None
    return (f"channel axis {axis} is not the output-channel axis {want} that the "
            f"{OP_NAMES.get(op, f'op {op}')} kernel indexes (a wrongly ordered tensor)")


def range_error(rows: np.ndarray, bias: np.ndarray, multipliers: np.ndarray, shifts: np.ndarray) -> str | None:
    """Why some live row's int32 arithmetic could overflow, or None.

    rows: the live channels' weights, channel-major [L, K]; bias: the folded
    biases [L]. A kernel starts the accumulator at the bias and adds one
    product w * x per non-zero, x an int8 input or the input zero point, so
    |acc| <= |bias| + 128 * sum|w| at every step, which must fit in int32.
    Requantization shifts acc left by max(shift, 0) (wrapping) and
    SaturatingRoundingDoublingHighMul(x, m) is at most min(|x|, m) in size
    for m >= 0, so adding the output zero point is safe when m <= INT32_MAX
    - 128 or the shifted bound is. Shifts must lie in [-31, 30].
    """
    bias, mult, shift = (np.asarray(a, np.int64).reshape(-1) for a in (bias, multipliers, shifts))
    if bias.size == 0:
        return None
    rows = np.asarray(rows, np.int64).reshape(bias.size, -1)
    bound = np.abs(bias) + 128 * np.abs(rows).sum(axis=1)
    left = np.clip(shift, 0, 30)
    shifted = np.where(bound <= INT32_MAX, np.minimum(bound, INT32_MAX) << left, INT32_MAX + 1)
    bad = ((bound > INT32_MAX) | (mult < 0) | (shift < -31) | (shift > 30)
           | ((mult > REQUANT_LIMIT) & (shifted > REQUANT_LIMIT)))
    if not bad.any():
        return None
    r = int(np.flatnonzero(bad)[0])
    return (f"live channel {r}: |bias| + 128 x sum|w| = {int(bound[r])} with multiplier {int(mult[r])} "
            f"and shift {int(shift[r])} can overflow the int32 accumulator (limit {INT32_MAX})")

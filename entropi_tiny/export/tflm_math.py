"""TFLM's host-side quantization arithmetic, transcribed in Python integers and float32.

Usage:
    m, s = quantize_multiplier(0.0123)              # QuantizeMultiplier (double in, Q31 out)
    y = mbqm(acc, m, s)                             # MultiplyByQuantizedMultiplier, double rounding
    lo, hi = activation_range("RELU6", scale, zp)   # CalculateActivationRangeQuantized (int8)
    f32(x), round_away(x)

Everything the C runtime needs that involves floats is computed here, at
generation time, exactly as TFLM's Prepare functions compute it: the scales
are float32, products and quotients of them are taken in double where TFLM
uses double and in float32 where TFLM uses float. The device then only does
integer arithmetic. The integer helpers (srdhm, rdbpot, mbqm) mirror the C
kernels bit for bit, so the host can fold constants (e.g. the output of an
all-zero channel) that the device would otherwise compute.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def f32(x: float) -> float:
    """x rounded to the nearest float32, as a Python float."""
    return float(np.float32(x))


def round_away(x: float) -> int:
    """std::round / TfLiteRound: nearest integer, halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(multiplier, shift) with real ~= multiplier * 2**(shift - 31), TFLM's convention.

    Transcribes QuantizeMultiplier in tensorflow/lite/kernels/internal/
    quantization_util.cc: the significand from frexp in [0.5, 1) is rounded
    (half away from zero) to Q31; a significand that rounds up to 2**31 is
    halved with the exponent raised; exponents below -31 flush to (0, 0).
    Positive shift means a left shift.
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.floor(abs(q) * (1 << 31) + 0.5))
    q_fixed = q_fixed if q >= 0 else -q_fixed
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def wrap32(x: int) -> int:
    """x reduced to a two's complement int32."""
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul for int32."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = abs(ab + nudge) >> 31                 # C division truncates toward zero
    return q if ab + nudge >= 0 else -q


def rdbpot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: divide by 2**exponent, ties away from zero."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def mbqm(acc: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier(int32 acc, multiplier, shift), TFLM's default double rounding."""
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot(srdhm(wrap32(acc * (1 << left)), multiplier), right)


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output: (act_min, act_max)."""
    def quantize(f: float) -> int:
        return zero_point + round_away(f32(np.float32(f) / np.float32(scale)))

    if activation in ("NONE", None):
        return -128, 127
    if activation == "RELU":
        return max(-128, quantize(0.0)), 127
    if activation == "RELU6":
        return max(-128, quantize(0.0)), min(127, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(-128, quantize(-1.0)), min(127, quantize(1.0))
    raise ValueError(f"unsupported fused activation {activation}")

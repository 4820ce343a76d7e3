"""Per-op integer parameters for the C runtime, computed as TFLM's Prepare functions do.

Usage:
    p = add_params(in1, in2, out, "RELU")          # dict for et_add_params_t
    p = mul_params(in1, in2, out, "NONE")          # et_mul_params_t
    p = hard_swish_params(inp, out)                # et_hswish_params_t
    p = mean_params(inp, out, count)               # et_mean_params_t
    top, left = conv_padding(...)

Each argument `q` is a (scale, zero_point) pair of float32 scale and int
zero point. Float arithmetic follows the C++ types of TFLM's code: double
where TFLM casts to double (ADD, MUL, MEAN, conv multipliers), float32 where it
stays in float (HARD_SWISH); tflm_math.f32 rounds to float32 after
every operation that TFLM performs in float.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..export.tflm_math import INT32_MAX, activation_range, f32, quantize_multiplier

ADD_LEFT_SHIFT = 20          # TFLM's int8 ADD (15 for int16)


def add_params(q1, q2, qo, activation: str) -> dict:
    """et_add_params_t: TFLM's CalculateOpDataAdd for int8."""
    twice_max = 2.0 * max(q1[0], q2[0])
    m1, s1 = quantize_multiplier(q1[0] / twice_max)
    m2, s2 = quantize_multiplier(q2[0] / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * qo[0]))
    if max(s1, s2, so) > 0:
        raise UserError("ADD: a rescaling multiplier is not below one (TFLM requires it)")
    lo, hi = activation_range(activation, qo[0], qo[1])
    return {"in1_offset": -q1[1], "in2_offset": -q2[1], "in1_multiplier": m1, "in2_multiplier": m2,
            "out_multiplier": mo, "in1_shift": s1, "in2_shift": s2, "out_shift": so,
            "left_shift": ADD_LEFT_SHIFT, "out_zero_point": qo[1], "act_min": lo, "act_max": hi}


def mul_params(q1, q2, qo, activation: str) -> dict:
    """et_mul_params_t: TFLM's MUL Prepare for int8."""
    m, s = quantize_multiplier(q1[0] * q2[0] / qo[0])
    lo, hi = activation_range(activation, qo[0], qo[1])
    return {"in1_offset": -q1[1], "in2_offset": -q2[1], "out_multiplier": m, "out_shift": s,
            "out_zero_point": qo[1], "act_min": lo, "act_max": hi}


def _downscale_q15(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier: round a Q31 multiplier to Q15, saturating."""
    if m >= INT32_MAX - (1 << 15):
        return (1 << 15) - 1
    return (m + (1 << 15)) >> 16


def _fold_vanishing(m: int, e: int) -> tuple[int, int]:
    """(s13-head) A HARD_SWISH term whose exponent is below -15 is exactly 0 in TFLM.

    TFLM applies such an exponent as RoundingDivideByPOT(v, -e) to an int16 v
    with |v| < 2^15 after its Q15 multiply, and that gives 0 for every v when
    -e >= 16. A zero multiplier with exponent -15 gives the same 0 with a
    shift the kernel supports: a nearly dead input (a tiny scale, as at very
    low alpha) folds to its constant instead of being refused.
    """
    return (0, -15) if e < -15 else (m, e)


def hard_swish_params(qi, qo) -> dict:
    """et_hswish_params_t: TFLM's HardSwishPrepare (float32 arithmetic)."""
    hires = f32(f32(1.0 / 128.0) * qi[0])
    reluish_scale = f32(3.0 / 32768.0)
    m_out, e_out = quantize_multiplier(f32(hires / qo[0]))
    m_relu, e_relu = quantize_multiplier(f32(hires / reluish_scale))
    m_out, e_out = _fold_vanishing(m_out, e_out)
    m_relu, e_relu = _fold_vanishing(m_relu, e_relu)
    if e_out > 0 or abs(e_relu) > 15:
        raise UserError(f"HARD_SWISH: scales {qi[0]:g} -> {qo[0]:g} give exponents TFLM cannot use")
    return {"in_zero_point": qi[1], "out_zero_point": qo[1], "out_multiplier": _downscale_q15(m_out),
            "relu_multiplier": _downscale_q15(m_relu), "out_exponent": e_out, "relu_exponent": e_relu}


def mean_params(qi, qo, count: int) -> dict:
    """et_mean_params_t: TFLM's int8 MEAN over `count` elements (reduce_common.cc, reference/reduce.h).

    Same input and output scale and zero point: TFLM's generic Mean, the raw
    int32 sum divided by the count with C's truncation. Otherwise
    QuantizedMeanOrSum: QuantizeMultiplier(in/out) with 1/count folded in
    (multiplier * 2^s // count, shift - s, s = floor(log2 count) capped at 32
    and at 31 + shift), applied to sum - input_zero_point * count.
    """
    if count < 1 or 255 * count >= 1 << 31:
        raise UserError(f"MEAN over {count} elements is out of range")
    same = np.float32(qi[0]) == np.float32(qo[0]) and qi[1] == qo[1]
    mult, shift = quantize_multiplier(float(np.float32(qi[0])) / float(np.float32(qo[0])))
    s = min(count.bit_length() - 1, 32, 31 + shift)
    return {"multiplier": (mult << s) // count, "shift": shift - s, "in_zero_point": qi[1],
            "out_zero_point": qo[1], "count": count, "same_quant": int(same)}


def conv_padding(in_size: int, kernel: int, stride: int, dilation: int, out_size: int, padding: str,
                 where: str) -> int:
    """TFLM's ComputePaddingHeightWidth for one dimension: the leading pad; checks the output size."""
    if dilation != 1:
        raise UserError(f"{where}: dilation {dilation} is not supported")
    if stride < 1:
        raise UserError(f"{where}: stride {stride} is invalid")
    want = (in_size + stride - 1) // stride if padding == "SAME" else (in_size + stride - kernel) // stride
    if padding not in ("SAME", "VALID") or want != out_size:
        raise UserError(f"{where}: {padding} padding gives {want} outputs, the model says {out_size}")
    return max((out_size - 1) * stride + kernel - in_size, 0) // 2

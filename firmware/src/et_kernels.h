/* Internal: the int8 kernels and TFLM's fixed-point helpers.
 *
 * Usage (from et_runtime.c only):
 *     st = et_conv2d(op, &weights, in, out, scratch, residual);
 *     int32_t y = et_mbqm(acc, multiplier, shift);
 *
 * The helpers transcribe the documented arithmetic of TFLM's reference
 * kernels (gemmlowp's SaturatingRoundingDoublingHighMul and
 * RoundingDivideByPOT, composed as MultiplyByQuantizedMultiplier with
 * TFLM's default double rounding). Kernels assume et_runtime_init has
 * checked every shape and bound; they only return an error for a weight
 * stream found malformed while iterating.
 */
#ifndef ET_KERNELS_H
#define ET_KERNELS_H

#include <stdint.h>

#include "et_runtime.h"

/* (a * b * 2) >> 32 with rounding to nearest (ties away from zero), saturating a == b == INT32_MIN. */
static inline int32_t et_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t x = ab + (ab >= 0 ? (1 << 30) : 1 - (1 << 30));
    /* Division by 2^31 truncating toward zero, without a 64-bit divide. */
    return (int32_t)(x >= 0 ? x >> 31 : -((-x) >> 31));
}

/* x / 2^e rounded to nearest, ties away from zero; 0 <= e <= 31. */
static inline int32_t et_rdbpot(int32_t x, int e) {
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + ((x & mask) > threshold ? 1 : 0);
}

/* TFLM's MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31), double rounding. */
static inline int32_t et_mbqm(int32_t x, int32_t multiplier, int shift) {
    const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    return et_rdbpot(et_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* One MultiplyByQuantizedMultiplier(x, m, shift) with its constants prepared
 * once per channel (or per op), in one 64-bit multiply-add and a shift.
 * TFLM rounds twice: SaturatingRoundingDoublingHighMul, which for m >= 0
 * (never saturating) is floor((x*m + 2^30) / 2^31), then RoundingDivideByPOT
 * by e = -shift, floor((y + 2^(e-1) - [y < 0]) / 2^e). For e >= 1 both floors
 * compose into one, floor((x*m + 2^30 + 2^(30+e) - [x < 0] * 2^31) / 2^(31+e))
 * (y < 0 iff x < 0, except x = -1 with m = 2^30, where both forms give 0), and
 * a shift by 31 + e >= 32 is the high word shifted by e - 1. docs/kernels.md
 * has the derivation; the per-op goldens check it bit for bit. */
typedef struct {
    int32_t m, sh, mode, shift;                /* mode 0: e >= 1; 1: e = 0; 2: reference */
    int64_t round_pos, round_neg;
    uint32_t rlo;                              /* round_pos as two words, for et_fq_mode0 */
    int32_t rhi, borrow;
} et_fq_t;

static inline void et_fq_init(et_fq_t *f, int32_t m, int32_t shift) {
    f->m = m;
    f->shift = shift;
    f->mode = (shift > 0 || m < 0) ? 2 : shift == 0 ? 1 : 0;
    const int32_t e = shift < 0 ? -shift : 0;
    f->sh = e > 0 ? e - 1 : 0;
    f->round_pos = ((int64_t)1 << 30) + (e > 0 ? (int64_t)1 << (30 + e) : 0);
    f->round_neg = f->round_pos - (e > 0 ? (int64_t)1 << 31 : 0);
    /* round_neg = round_pos - 2^31 flips bit 31 of the low word and borrows
     * from the high word when that bit was 0. */
    f->rlo = (uint32_t)f->round_pos;
    f->rhi = (int32_t)(f->round_pos >> 32);
    f->borrow = (f->rlo & 0x80000000u) ? 0 : -1;
}

/* et_fq_apply for mode 0 (e >= 1), branch-free: the rounding constant chosen by
 * x's sign with two logic ops, then one SMLAL and one shift. */
static inline int32_t et_fq_mode0(int32_t x, int32_t m, int32_t sh, uint32_t rlo, int32_t rhi, int32_t borrow) {
    const uint64_t round = (uint64_t)(uint32_t)(rhi + ((x >> 31) & borrow)) << 32 | (rlo ^ ((uint32_t)x & 0x80000000u));
    const int64_t p = (int64_t)round + (int64_t)x * m;
    return (int32_t)(p >> 32) >> sh;
}

static inline int32_t et_fq_apply(const et_fq_t *f, int32_t x) {
    if (f->mode == 0) {
        const int64_t p = (int64_t)x * f->m + (x < 0 ? f->round_neg : f->round_pos);
        return (int32_t)(p >> 32) >> f->sh;
    }
    if (f->mode == 1) return (int32_t)(((int64_t)x * f->m + f->round_pos) >> 31);
    return et_mbqm(x, f->m, f->shift);
}

static inline int32_t et_clamp(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

/* One element of TFLM's int8 ADD. */
static inline int8_t et_add_one(const et_add_params_t *p, int32_t a, int32_t b) {
    const int32_t sa = et_mbqm((a + p->in1_offset) * (1 << p->left_shift), p->in1_multiplier, p->in1_shift);
    const int32_t sb = et_mbqm((b + p->in2_offset) * (1 << p->left_shift), p->in2_multiplier, p->in2_shift);
    const int32_t y = et_mbqm(sa + sb, p->out_multiplier, p->out_shift) + p->out_zero_point;
    return (int8_t)et_clamp(y, p->act_min, p->act_max);
}

et_status_t et_conv2d(const et_op_t *op, const et_tensor_t *w, const int8_t *in, int8_t *out,
                      int32_t *acc, const int8_t *residual);
et_status_t et_depthwise_conv2d(const et_op_t *op, const et_tensor_t *w, const int8_t *in, int8_t *out,
                                int32_t *acc, const int8_t *residual);
et_status_t et_fully_connected(const et_op_t *op, const et_tensor_t *w, const int8_t *in, int8_t *out);
/* CONV_2D (depthwise = 0) / DEPTHWISE_CONV_2D (1) on a PLANAR in0: op->taps, or dense image values. */
et_status_t et_conv_planar(const et_op_t *op, const et_tensor_t *w, const int8_t *in, int8_t *out,
                           const int8_t *residual, int depthwise, uint8_t *scratch);
/* Bytes of the pack buffer the dense SMLAD kernel needs for this op, or 0 when it does not apply. */
uint32_t et_planar_pack_bytes(const et_op_t *op);
void et_to_planar(const et_op_t *op, const int8_t *in, int8_t *out);
void et_add(const et_op_t *op, const int8_t *a, const int8_t *b, int8_t *out);
void et_mul(const et_op_t *op, const int8_t *a, const int8_t *b, int8_t *out);
void et_hard_swish(const et_op_t *op, const int8_t *in, int8_t *out);
void et_mean(const et_op_t *op, const int8_t *in, int8_t *out);
void et_pad(const et_op_t *op, const int8_t *in, int8_t *out);

#endif /* ET_KERNELS_H */

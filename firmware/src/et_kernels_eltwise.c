/* Int8 element-wise and data-movement kernels: ADD, MUL (4-D broadcast),
 * HARD_SWISH, MEAN over H and W, PAD.
 *
 * ADD and MUL follow TFLM's integer_ops reference arithmetic with the
 * multipliers and shifts its Prepare computes (here computed by the host).
 * A broadcast operand gets stride 0 along each dimension of size 1, which
 * covers TFLM's 4-D broadcast (a scalar constant, or a [1,1,1,C] vector
 * against [1,H,W,C]). Output may alias an input of the output's shape: each
 * output element is written after the only reads of its own position.
 */
#include <string.h>

#include "et_kernels.h"

/* Element strides of `in` when broadcast to `out` (0 along broadcast dimensions). */
static void broadcast_strides(const et_dims_t *in, const et_dims_t *out, int32_t s[4]) {
    const int32_t sc = 1, sw = in->c, sh = in->c * in->w, sn = sh * in->h;
    s[0] = in->n == out->n ? sn : 0;
    s[1] = in->h == out->h ? sh : 0;
    s[2] = in->w == out->w ? sw : 0;
    s[3] = in->c == out->c ? sc : 0;
}

typedef int8_t (*et_binary_fn)(const et_op_t *op, int32_t a, int32_t b);

static int8_t add_fn(const et_op_t *op, int32_t a, int32_t b) { return et_add_one(&op->p.add, a, b); }

static int8_t mul_fn(const et_op_t *op, int32_t a, int32_t b) {
    const et_mul_params_t *p = &op->p.mul;
    const int32_t y = et_mbqm((a + p->in1_offset) * (b + p->in2_offset), p->out_multiplier, (int)p->out_shift);
    return (int8_t)et_clamp(y + p->out_zero_point, p->act_min, p->act_max);
}

static void binary(const et_op_t *op, const int8_t *a, const int8_t *b, int8_t *out, et_binary_fn fn) {
    const et_dims_t *o = &op->out.dims;
    int32_t sa[4], sb[4];
    broadcast_strides(&op->in0.dims, o, sa);
    broadcast_strides(&op->in1.dims, o, sb);
    int32_t i = 0;
    for (int32_t n = 0; n < o->n; n++)
        for (int32_t h = 0; h < o->h; h++)
            for (int32_t w = 0; w < o->w; w++) {
                const int8_t *pa = a + n * sa[0] + h * sa[1] + w * sa[2];
                const int8_t *pb = b + n * sb[0] + h * sb[1] + w * sb[2];
                for (int32_t c = 0; c < o->c; c++, i++) out[i] = fn(op, pa[c * sa[3]], pb[c * sb[3]]);
            }
}

void et_add(const et_op_t *op, const int8_t *a, const int8_t *b, int8_t *out) { binary(op, a, b, out, add_fn); }

void et_mul(const et_op_t *op, const int8_t *a, const int8_t *b, int8_t *out) { binary(op, a, b, out, mul_fn); }

/* -- HARD_SWISH: TFLM's int16 fixed-point reference ------------------------- */

static int16_t sat16(int32_t x) { return (int16_t)et_clamp(x, INT16_MIN, INT16_MAX); }

/* gemmlowp SaturatingRoundingDoublingHighMul on int16. */
static int16_t srdhm16(int16_t a, int16_t b) {
    if (a == b && a == INT16_MIN) return INT16_MAX;
    const int32_t ab = (int32_t)a * b;
    return (int16_t)((ab + (ab >= 0 ? (1 << 14) : 1 - (1 << 14))) / (1 << 15));
}

/* Doubling high multiply without rounding (TFLM's SaturatingDoublingHighMul). */
static int16_t sdhm16(int16_t a, int16_t b) {
    if (a == b && a == INT16_MIN) return INT16_MAX;
    return (int16_t)(((int32_t)a * b) / (1 << 15));
}

static int16_t rdbpot16(int16_t x, int e) {
    const int32_t mask = (1 << e) - 1, threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (int16_t)((x >> e) + ((x & mask) > threshold ? 1 : 0));
}

/* hard_swish(x) = x * relu6(x + 3) / 6: the input is moved to a 2^7 finer
 * scale, a "reluish" factor in [0, 1] (Q15) is computed from it by a
 * saturating fixed-point multiply that clips at +-3, and multiplied by the
 * input rescaled to the output scale. */
void et_hard_swish(const et_op_t *op, const int8_t *in, int8_t *out) {
    const et_hswish_params_t *p = &op->p.hswish;
    const int32_t count = op->out.dims.n * op->out.dims.h * op->out.dims.w * op->out.dims.c;
    for (int32_t i = 0; i < count; i++) {
        const int16_t hires = (int16_t)((in[i] - p->in_zero_point) * (1 << 7));
        const int16_t preshift = srdhm16(hires, p->out_multiplier);
        int16_t relu = hires;
        if (p->relu_exponent > 0) relu = sat16((int32_t)relu * (1 << (p->relu_exponent - 1)));
        relu = srdhm16(relu, p->relu_multiplier);
        if (p->relu_exponent > 0) relu = sat16((int32_t)relu * 2);
        if (p->relu_exponent < 0) relu = rdbpot16(relu, -p->relu_exponent);
        relu = (int16_t)((relu + (1 << 15)) >> 1);
        const int16_t y = rdbpot16(sdhm16(relu, preshift), -p->out_exponent);
        out[i] = (int8_t)et_clamp(y + p->out_zero_point, INT8_MIN, INT8_MAX);
    }
}

/* -- MEAN over H and W ---------------------------------------------------- */

void et_mean(const et_op_t *op, const int8_t *in, int8_t *out) {
    const et_dims_t *d = &op->in0.dims;
    const et_mean_params_t *p = &op->p.mean;
    const int32_t plane = d->h * d->w;
    /* Strides of in0 in its layout (a PLANAR input has n = 1, checked at init). */
    const int32_t pad = op->in0.pad, planar = op->in0.layout == ET_PLANAR;
    const int32_t wp = d->w + 2 * pad;
    const int32_t cs = planar ? (d->h + 2 * pad) * wp : 1, rs = planar ? wp : d->w * d->c, xs = planar ? 1 : d->c;
    const int8_t *origin = in + (planar ? pad * wp + pad : 0);
    for (int32_t n = 0; n < d->n; n++)
        for (int32_t c = 0; c < d->c; c++) {
            const int8_t *x = origin + n * plane * d->c + c * cs;
            int32_t sum = 0;
            for (int32_t yy = 0; yy < d->h; yy++, x += rs)
                for (int32_t xx = 0; xx < d->w; xx++) sum += x[xx * xs];
            int32_t y;
            if (p->same_quant) y = sum / plane;          /* C division truncates, as TFLM's */
            else y = et_clamp(et_mbqm(sum - p->in_zero_point * plane, p->multiplier, (int)p->shift) +
                              p->out_zero_point, INT8_MIN, INT8_MAX);
            out[n * d->c + c] = (int8_t)y;
        }
}

/* -- PAD ------------------------------------------------------------------ */

void et_pad(const et_op_t *op, const int8_t *in, int8_t *out) {
    const et_dims_t *i = &op->in0.dims, *o = &op->out.dims, *b = &op->p.pad.before;
    memset(out, (uint8_t)(int8_t)op->p.pad.value, (size_t)o->n * o->h * o->w * o->c);
    for (int32_t n = 0; n < i->n; n++)
        for (int32_t h = 0; h < i->h; h++)
            for (int32_t w = 0; w < i->w; w++) {
                const int32_t dst = (((n + b->n) * o->h + h + b->h) * o->w + w + b->w) * o->c + b->c;
                memcpy(out + dst, in + ((n * i->h + h) * i->w + w) * i->c, (size_t)i->c);
            }
}

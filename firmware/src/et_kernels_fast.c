/* CONV_2D and DEPTHWISE_CONV_2D on a PLANAR, pre-padded input (et_runtime.h):
 * the kernels the Cortex-M7 spends its time in. See docs/kernels.md.
 *
 * Loop structure, per live output channel:
 *   for each tile of 8 output pixels (two quads of 4: side by side in a row,
 *   or, for rows of at most 4 pixels, one quad in each of two rows)
 *     8 int32 accumulators start at the folded bias, in registers;
 *     for each non-zero weight of the channel (a tap word from codegen:
 *       input offset << 8 | weight), or for every weight (dense variant):
 *         one unaligned 32-bit load per quad (two at stride 2) brings the
 *         4 input bytes the quad's pixels read for this tap; SXTB16 splits
 *         them into two pairs of signed halfwords; SMLABB / SMLATB add
 *         weight x input to each accumulator: 7 instructions for 4 MACs;
 *     requantize the 8 accumulators (one 64-bit multiply-add and a shift
 *     each, exact, see et_requant), clamp, fused ADD if any, store.
 * The input's border holds its zero point, so every tap reads a real byte
 * and there is no border case; with the zero point folded into the bias
 * (bias - zp * sum w) a border tap adds w * zp - w * zp = 0, as TFLM's
 * skipped taps do. Lanes past the end of a row are computed and dropped;
 * their loads stay inside the buffer (ET_PLANAR_SLACK, checked at init).
 *
 * The DSP instructions come from ACLE (arm_acle.h) when the target has
 * them (__ARM_FEATURE_DSP); elsewhere (the host tests, the sanitizers) the
 * portable definitions below compute the same values.
 */
#include <string.h>

#include "et_kernels.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define ET_SXTB16(x) ((uint32_t)__sxtb16(x))
/* SXTB16 with its ROR #8 operand rotation: one instruction (GCC emits a separate ROR). */
static inline uint32_t ET_SXTB16_ODD(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#define ET_SMLABB(x, w, acc) __smlabb((int32_t)(x), (w), (acc))
#define ET_SMLATB(x, w, acc) __smlatb((int32_t)(x), (w), (acc))
#define ET_SMLAD(x, w, acc) __smlad((int32_t)(x), (int32_t)(w), (acc))
#else
/* Bytes 0 and 2 (odd: 1 and 3) of x, each sign-extended into a halfword. */
static inline uint32_t ET_SXTB16(uint32_t x) {
    return ((uint32_t)(uint16_t)(int16_t)(int8_t)(x & 0xffu)) |
           ((uint32_t)(uint16_t)(int16_t)(int8_t)((x >> 16) & 0xffu) << 16);
}
#define ET_SXTB16_ODD(x) ET_SXTB16((x) >> 8)
/* acc + bottom (top) signed halfword of x times the bottom halfword of w. */
static inline int32_t ET_SMLABB(uint32_t x, int32_t w, int32_t acc) {
    return acc + (int32_t)(int16_t)(x & 0xffffu) * (int32_t)(int16_t)w;
}
static inline int32_t ET_SMLATB(uint32_t x, int32_t w, int32_t acc) {
    return acc + (int32_t)(int16_t)(x >> 16) * (int32_t)(int16_t)w;
}
/* acc + bottom x bottom + top x top (signed halfwords). */
static inline int32_t ET_SMLAD(uint32_t x, uint32_t w, int32_t acc) {
    return acc + (int32_t)(int16_t)(x & 0xffffu) * (int32_t)(int16_t)(w & 0xffffu) +
           (int32_t)(int16_t)(x >> 16) * (int32_t)(int16_t)(w >> 16);
}
#endif

/* Saturate to int8: one SSAT on the Cortex-M7. */
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#define ET_SAT8(x) __ssat((x), 8)
#else
#define ET_SAT8(x) et_clamp((x), INT8_MIN, INT8_MAX)
#endif

static inline uint32_t load32(const int8_t *p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4);                /* one unaligned LDR on the Cortex-M7 */
    return v;
}

/* Eight accumulators: quad 0 = a[0..3] (lanes 0..3), quad 1 = a[4..7]. */
typedef struct { int32_t a[8]; } et_tile_t;

/* One tap (weight w at byte offset off from the tile's origin) for both quads;
 * q1 is quad 1's distance from quad 0; stride 1 or 2 along the row. */
#define ET_TAP_S1(p, q1, w)                                                              \
    do {                                                                                 \
        uint32_t x_ = load32(p), e_ = ET_SXTB16(x_), o_ = ET_SXTB16_ODD(x_);             \
        a0 = ET_SMLABB(e_, w, a0); a1 = ET_SMLABB(o_, w, a1);                            \
        a2 = ET_SMLATB(e_, w, a2); a3 = ET_SMLATB(o_, w, a3);                            \
        x_ = load32((p) + (q1)); e_ = ET_SXTB16(x_); o_ = ET_SXTB16_ODD(x_);             \
        a4 = ET_SMLABB(e_, w, a4); a5 = ET_SMLABB(o_, w, a5);                            \
        a6 = ET_SMLATB(e_, w, a6); a7 = ET_SMLATB(o_, w, a7);                            \
    } while (0)
#define ET_TAP_S2(p, q1, w)                                                              \
    do {                                                                                 \
        uint32_t e_ = ET_SXTB16(load32(p)), f_ = ET_SXTB16(load32((p) + 4));             \
        a0 = ET_SMLABB(e_, w, a0); a1 = ET_SMLATB(e_, w, a1);                            \
        a2 = ET_SMLABB(f_, w, a2); a3 = ET_SMLATB(f_, w, a3);                            \
        e_ = ET_SXTB16(load32((p) + (q1))); f_ = ET_SXTB16(load32((p) + (q1) + 4));      \
        a4 = ET_SMLABB(e_, w, a4); a5 = ET_SMLATB(e_, w, a5);                            \
        a6 = ET_SMLABB(f_, w, a6); a7 = ET_SMLATB(f_, w, a7);                            \
    } while (0)
/* Any other stride: one byte load per lane. */
#define ET_TAP_SN(p, q1, w, s)                                                           \
    do {                                                                                 \
        a0 += (w) * (p)[0]; a1 += (w) * (p)[(s)]; a2 += (w) * (p)[2 * (s)];              \
        a3 += (w) * (p)[3 * (s)];                                                        \
        a4 += (w) * (p)[(q1)]; a5 += (w) * (p)[(q1) + (s)];                              \
        a6 += (w) * (p)[(q1) + 2 * (s)]; a7 += (w) * (p)[(q1) + 3 * (s)];                \
    } while (0)

#define ET_TILE_IN int32_t a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias
#define ET_TILE_OUT                                                                      \
    do {                                                                                 \
        t->a[0] = a0; t->a[1] = a1; t->a[2] = a2; t->a[3] = a3;                          \
        t->a[4] = a4; t->a[5] = a5; t->a[6] = a6; t->a[7] = a7;                          \
    } while (0)

/* Sparse: the channel's tap words from tp up to its ET_TAP_END sentinel (the
 * sentinel instead of an end pointer leaves the registers to the 8 accumulators). */
__attribute__((noinline)) static void tile_sparse(et_tile_t *t, const int8_t *base, int32_t q1, int32_t stride,
                                                  int32_t bias, const uint32_t *tp) {
    ET_TILE_IN;
    if (stride == 1 && q1 == 4) {              /* quads side by side: q1 is an immediate */
        for (uint32_t word; (word = *tp++) != ET_TAP_END;) {
            const int32_t w = (int8_t)(word & 0xffu);
            const int8_t *p = base + (word >> 8);
            ET_TAP_S1(p, 4, w);
        }
    } else if (stride == 1) {
        for (uint32_t word; (word = *tp++) != ET_TAP_END;) {
            const int32_t w = (int8_t)(word & 0xffu);
            const int8_t *p = base + (word >> 8);
            ET_TAP_S1(p, q1, w);
        }
    } else if (stride == 2 && q1 == 8) {
        for (uint32_t word; (word = *tp++) != ET_TAP_END;) {
            const int32_t w = (int8_t)(word & 0xffu);
            const int8_t *p = base + (word >> 8);
            ET_TAP_S2(p, 8, w);
        }
    } else if (stride == 2) {
        for (uint32_t word; (word = *tp++) != ET_TAP_END;) {
            const int32_t w = (int8_t)(word & 0xffu);
            const int8_t *p = base + (word >> 8);
            ET_TAP_S2(p, q1, w);
        }
    } else {
        for (uint32_t word; (word = *tp++) != ET_TAP_END;) {
            const int32_t w = (int8_t)(word & 0xffu);
            const int8_t *p = base + (word >> 8);
            ET_TAP_SN(p, q1, w, stride);
        }
    }
    ET_TILE_OUT;
}

/* Geometry of one dense channel's taps: weights [KH][KW][I] (I = 1 depthwise). */
typedef struct { int32_t kh, kw, ic, plane, row; } et_dense_geom_t;

/* Dense: every weight of the row in the image's order (a zero costs as much as a
 * non-zero: at the densities where this kernel is chosen a test costs more than it saves). */
#define ET_DENSE_LOOP(TAP)                                                               \
    for (int32_t y = 0; y < g->kh; y++)                                                  \
        for (int32_t x = 0; x < g->kw; x++) {                                            \
            const int8_t *p = base + y * g->row + x;                                     \
            for (int32_t c = g->ic; c > 0; c--, p += g->plane) {                         \
                const int32_t w = *wv++;                                                 \
                TAP;                                                                     \
            }                                                                            \
        }

__attribute__((noinline)) static void tile_dense(et_tile_t *t, const int8_t *base, int32_t q1, int32_t stride,
                                                 int32_t bias, const int8_t *wv, const et_dense_geom_t *g) {
    ET_TILE_IN;
    if (stride == 1 && q1 == 4) {
        ET_DENSE_LOOP(ET_TAP_S1(p, 4, w))
    } else if (stride == 1) {
        ET_DENSE_LOOP(ET_TAP_S1(p, q1, w))
    } else if (stride == 2) {
        ET_DENSE_LOOP(ET_TAP_S2(p, q1, w))
    } else {
        ET_DENSE_LOOP(ET_TAP_SN(p, q1, w, stride))
    }
    ET_TILE_OUT;
}

/* Dense CONV_2D with SMLAD (2 MACs per instruction). The input is first packed
 * into the op's scratch: for every padded pixel, its channels in groups of 4
 * (c0..c3) as two words of signed halfwords, (c0 | c2 << 16) and
 * (c1 | c3 << 16), pixel after pixel, so that (tap column, channel group) is
 * one linear walk in the weights' [KH][KW][I] order. Four weights of a row
 * are one word; SXTB16 and SXTB16 ROR 8 make (w0 | w2 << 16) and
 * (w1 | w3 << 16), the pairs that match. Per 4 channels of one tap, for 8
 * lanes: 1 weight load, 2 SXTB16, 16 loads and 16 SMLAD: 32 MACs in ~38
 * instructions. Lanes are PS bytes apart (one pixel step times the stride);
 * PS is a compile-time constant in each instance so every load has an
 * immediate offset and the 8 accumulators, the two weight pairs, the load,
 * the two pointers and the end fit in the 14 registers. */
#define ET_SMLAD_LANE(i, PS) \
    a##i = ET_SMLAD(load32((const int8_t *)q + (i) * PS), lo, a##i); \
    a##i = ET_SMLAD(load32((const int8_t *)q + (i) * PS + 4), hi, a##i)
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* The tap row as one asm loop: GCC's own schedule of the same body keeps more
 * loads in flight than the 14 registers hold and spills 3 values (44 instead
 * of 38 instructions per iteration). */
#define ET_SMLAD_ASM_LANE(i, PS)                                                          \
    "ldr %[x], [%[q], #(" #PS "*" #i ")]\n\tsmlad %[a" #i "], %[x], %[lo], %[a" #i "]\n\t"  \
    "ldr %[x], [%[q], #(" #PS "*" #i "+4)]\n\tsmlad %[a" #i "], %[x], %[hi], %[a" #i "]\n\t"
#define ET_SMLAD_ROW(PS)                                                                  \
    do {                                                                                  \
        uint32_t lo_, hi_, x_;                                                            \
        __asm__ volatile("1:\n\t"                                                         \
                         "ldr %[hi], [%[wv]], #4\n\t"                                     \
                         "sxtb16 %[lo], %[hi]\n\t"                                        \
                         "sxtb16 %[hi], %[hi], ror #8\n\t"                                \
                         ET_SMLAD_ASM_LANE(0, PS) ET_SMLAD_ASM_LANE(1, PS)                \
                         ET_SMLAD_ASM_LANE(2, PS) ET_SMLAD_ASM_LANE(3, PS)                \
                         ET_SMLAD_ASM_LANE(4, PS) ET_SMLAD_ASM_LANE(5, PS)                \
                         ET_SMLAD_ASM_LANE(6, PS) ET_SMLAD_ASM_LANE(7, PS)                \
                         "add %[q], %[q], #8\n\t"                                         \
                         "cmp %[wv], %[wend]\n\t"                                         \
                         "bne 1b\n\t"                                                     \
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),    \
                           [a4] "+r"(a4), [a5] "+r"(a5), [a6] "+r"(a6), [a7] "+r"(a7),    \
                           [q] "+r"(q), [wv] "+r"(wv), [lo] "=&r"(lo_), [hi] "=&r"(hi_),  \
                           [x] "=&r"(x_)                                                  \
                         : [wend] "r"(wend)                                               \
                         : "cc", "memory");                                               \
    } while (0)
#else
#define ET_SMLAD_ROW(PS)                                                                  \
    do {                                                                                  \
        const uint32_t w = load32(wv), lo = ET_SXTB16(w), hi = ET_SXTB16_ODD(w);          \
        wv += 4;                                                                          \
        ET_SMLAD_LANE(0, PS); ET_SMLAD_LANE(1, PS); ET_SMLAD_LANE(2, PS); ET_SMLAD_LANE(3, PS); \
        ET_SMLAD_LANE(4, PS); ET_SMLAD_LANE(5, PS); ET_SMLAD_LANE(6, PS); ET_SMLAD_LANE(7, PS); \
        q += 8;                                                                           \
    } while (wv != wend)
#endif
#define ET_SMLAD_TILE(PS)                                                                 \
    __attribute__((noinline)) static void tile_smlad_##PS(et_tile_t *t, const uint8_t *p, int32_t bias, \
                                                          const int8_t *wv, const et_pack_geom_t *g) { \
        ET_TILE_IN;                                                                       \
        for (int32_t r = g->kh; r > 0; r--, p += g->rowb) {                               \
            const uint8_t *q = p;                                                         \
            const int8_t *wend = wv + g->n;                                               \
            ET_SMLAD_ROW(PS);                                                             \
        }                                                                                 \
        ET_TILE_OUT;                                                                      \
    }

/* kh rows of taps; n = KW * I weight bytes per tap row; rowb = packed bytes per padded row. */
typedef struct { int32_t kh, n, rowb; } et_pack_geom_t;
typedef void (*et_smlad_fn)(et_tile_t *, const uint8_t *, int32_t, const int8_t *, const et_pack_geom_t *);
ET_SMLAD_TILE(8)
ET_SMLAD_TILE(16)
ET_SMLAD_TILE(32)
ET_SMLAD_TILE(64)
ET_SMLAD_TILE(128)
ET_SMLAD_TILE(256)
ET_SMLAD_TILE(512)

/* The instance for a lane step of ps bytes, or NULL (that conv keeps the byte kernel). */
static et_smlad_fn smlad_fn(int32_t ps) {
    switch (ps) {
    case 8: return tile_smlad_8;
    case 16: return tile_smlad_16;
    case 32: return tile_smlad_32;
    case 64: return tile_smlad_64;
    case 128: return tile_smlad_128;
    case 256: return tile_smlad_256;
    case 512: return tile_smlad_512;
    default: return 0;
    }
}

/* Tiles of the SMLAD kernel: at stride 1, 8 consecutive pixels of the padded
 * grid read row after row (lanes that fall in the border columns are dropped),
 * so narrow rows waste only their border; at other strides, 8 pixels of one row. */
static int32_t pack_flat(const et_op_t *op) { return op->p.conv.stride_h == 1 && op->p.conv.stride_w == 1; }

uint32_t et_planar_pack_bytes(const et_op_t *op) {
    const et_tref_t *ti = &op->in0, *to = &op->out;
    const et_conv_params_t *cp = &op->p.conv;
    /* Stride 1 only: a stride-2 1x1 conv of a real model came out wrong (not yet understood). */
    if (op->kind != ET_OP_CONV_2D || ti->layout != ET_PLANAR || ti->dims.c % 4 || ti->dims.c > 256 ||
        !pack_flat(op) || !smlad_fn(cp->stride_w * 2 * ti->dims.c))
        return 0;
    const int64_t wp = ti->dims.w + 2 * ti->pad, hp = ti->dims.h + 2 * ti->pad;
    const int64_t origin = (ti->pad - cp->pad_top) * wp + (ti->pad - cp->pad_left);
    const int64_t oh = to->dims.h, ow = to->dims.w;
    int64_t last;                              /* the last lane's pixel */
    if (pack_flat(op))
        last = ((oh - 1) * wp + ow + 7) / 8 * 8 - 1;
    else
        last = (oh - 1) * cp->stride_h * wp + ((ow + 7) / 8 * 8 - 1) * cp->stride_w;
    int64_t pixels = origin + last + (cp->kernel_h - 1) * wp + cp->kernel_w;
    if (pixels < hp * wp) pixels = hp * wp;
    const int64_t bytes = pixels * 2 * ti->dims.c;
    return bytes > 0x7fffffff ? 0 : (uint32_t)bytes;
}

/* PLANAR input -> packed (see above); the pixels past the grid are zeroed. */
static void pack_input(const et_tref_t *ti, const int8_t *in, uint8_t *scratch, uint32_t bytes) {
    const int32_t wp = ti->dims.w + 2 * ti->pad, pixels = (ti->dims.h + 2 * ti->pad) * wp;
    const int32_t groups = ti->dims.c / 4;
    for (int32_t g = 0; g < groups; g++) {
        const int8_t *c0 = in + 4 * g * pixels, *c1 = c0 + pixels, *c2 = c1 + pixels, *c3 = c2 + pixels;
        uint32_t *d = (uint32_t *)(void *)scratch + 2 * g;
        for (int32_t i = 0; i < pixels; i++, d += 2 * groups) {
            d[0] = (uint32_t)(uint16_t)(int16_t)c0[i] | (uint32_t)(uint16_t)(int16_t)c2[i] << 16;
            d[1] = (uint32_t)(uint16_t)(int16_t)c1[i] | (uint32_t)(uint16_t)(int16_t)c3[i] << 16;
        }
    }
    const uint32_t used = (uint32_t)pixels * 2u * (uint32_t)ti->dims.c;
    if (bytes > used) memset(scratch + used, 0, bytes - used);
}

/* Per-channel output stage: requantization, clamp, and the fused ADD (TFLM's int8 ADD,
 * et_add_one's arithmetic with every multiplier prepared once per op). */
typedef struct {
    et_fq_t fq;
    int32_t zp, lo, hi;
    et_fq_t a1, a2, ao;                        /* fused ADD: input 1 (this conv), input 2, output */
    int32_t off1, off2, left, azp, alo, ahi;
    const int32_t *lut;                        /* fused ADD inputs, rescaled by codegen, or NULL */
} et_rq_t;

static void rq_init_add(et_rq_t *q, const et_add_params_t *p) {
    et_fq_init(&q->a1, p->in1_multiplier, p->in1_shift);
    et_fq_init(&q->a2, p->in2_multiplier, p->in2_shift);
    et_fq_init(&q->ao, p->out_multiplier, p->out_shift);
    q->off1 = p->in1_offset;
    q->off2 = p->in2_offset;
    q->left = p->left_shift;
    q->azp = p->out_zero_point;
    q->alo = p->act_min;
    q->ahi = p->act_max;
}

static void rq_init(et_rq_t *q, const et_tensor_t *w, uint32_t row) {
    et_fq_init(&q->fq, et_read_i32(w->multiplier + 4u * row), w->shift[row]);
    q->zp = w->output_zero_point;
    q->lo = w->act_min;
    q->hi = w->act_max;
}

static inline int32_t et_requant(const et_rq_t *q, int32_t acc) {
    return et_clamp(et_fq_apply(&q->fq, acc) + q->zp, q->lo, q->hi);
}

static inline int8_t et_add_fast(const et_rq_t *q, int32_t a, int32_t b) {
    if (q->lut)
        return (int8_t)et_clamp(et_fq_apply(&q->ao, q->lut[128 + a] + q->lut[384 + b]) + q->azp, q->alo, q->ahi);
    const int32_t sa = et_fq_apply(&q->a1, (a + q->off1) * (1 << q->left));
    const int32_t sb = et_fq_apply(&q->a2, (b + q->off2) * (1 << q->left));
    return (int8_t)et_clamp(et_fq_apply(&q->ao, sa + sb) + q->azp, q->alo, q->ahi);
}

/* Strides of an operand in its layout, and the address of element (c, 0, 0). */
typedef struct { int32_t c, row, col; int8_t *base; } et_view_t;

static et_view_t view_of(const et_tref_t *t, int8_t *data) {
    et_view_t v;
    if (t->layout == ET_PLANAR) {
        const int32_t wp = t->dims.w + 2 * t->pad;
        v.c = (t->dims.h + 2 * t->pad) * wp;
        v.row = wp;
        v.col = 1;
        v.base = data + t->pad * wp + t->pad;
    } else {
        v.c = 1;
        v.row = t->dims.w * t->dims.c;
        v.col = t->dims.c;
        v.base = data;
    }
    return v;
}

/* Fill the border of a PLANAR tensor with its zero point (the interior is written by the op). */
static void fill_border(const et_tref_t *t, int8_t *data, int8_t zp) {
    const int32_t p = t->pad;
    if (t->layout != ET_PLANAR || p == 0) return;
    const int32_t wp = t->dims.w + 2 * p, hp = t->dims.h + 2 * p;
    for (int32_t c = 0; c < t->dims.c; c++) {
        int8_t *plane = data + c * hp * wp;
        memset(plane, zp, (size_t)(p * wp + p));                       /* top rows + first left */
        for (int32_t y = 0; y + 1 < t->dims.h; y++)                    /* right of y + left of y+1 */
            memset(plane + (p + y) * wp + p + t->dims.w, zp, (size_t)(2 * p));
        memset(plane + (p + t->dims.h - 1) * wp + p + t->dims.w, zp, (size_t)(p * wp + p));
    }
}

/* Store lanes [0, n) of one quad starting at output pixel (y, x); ys, rs: lane strides. */
static void store_quad(const et_rq_t *q, const int32_t *acc, int32_t n, int8_t *y, int32_t ys,
                       const int8_t *r, int32_t rs) {
    const et_fq_t *f = &q->fq;
    if (!r && f->mode == 0) {                  /* the common case, constants in registers */
        const int32_t m = f->m, sh = f->sh, zp = q->zp, lo = q->lo, hi = q->hi, rhi = f->rhi, borrow = f->borrow;
        const uint32_t rlo = f->rlo;
        if (lo == INT8_MIN && hi == INT8_MAX && n == 4) {   /* no clamp but int8's (ReLU at zp -128 too) */
            y[0] = (int8_t)ET_SAT8(et_fq_mode0(acc[0], m, sh, rlo, rhi, borrow) + zp);
            y[ys] = (int8_t)ET_SAT8(et_fq_mode0(acc[1], m, sh, rlo, rhi, borrow) + zp);
            y[2 * ys] = (int8_t)ET_SAT8(et_fq_mode0(acc[2], m, sh, rlo, rhi, borrow) + zp);
            y[3 * ys] = (int8_t)ET_SAT8(et_fq_mode0(acc[3], m, sh, rlo, rhi, borrow) + zp);
            return;
        }
        for (int32_t i = 0; i < n; i++)
            y[i * ys] = (int8_t)et_clamp(et_fq_mode0(acc[i], m, sh, rlo, rhi, borrow) + zp, lo, hi);
        return;
    }
    if (r && f->mode == 0 && q->lut && q->ao.mode == 0) {   /* fused ADD through the tables */
        const int32_t *lut = q->lut;
        for (int32_t i = 0; i < n; i++) {
            const int32_t v = et_clamp(et_fq_mode0(acc[i], f->m, f->sh, f->rlo, f->rhi, f->borrow) + q->zp, q->lo, q->hi);
            const int32_t s = lut[128 + v] + lut[384 + r[i * rs]];
            const et_fq_t *g = &q->ao;
            y[i * ys] = (int8_t)et_clamp(et_fq_mode0(s, g->m, g->sh, g->rlo, g->rhi, g->borrow) + q->azp, q->alo, q->ahi);
        }
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        int8_t v = (int8_t)et_requant(q, acc[i]);
        y[i * ys] = r ? et_add_fast(q, v, r[i * rs]) : v;
    }
}

/* Store n consecutive lanes of one row, in quads. */
static void store_run(const et_rq_t *q, const int32_t *acc, int32_t n, int8_t *y, int32_t ys,
                      const int8_t *r, int32_t rs) {
    for (int32_t i = 0; i < n; i += 4)
        store_quad(q, acc + i, n - i < 4 ? n - i : 4, y + i * ys, ys, r ? r + i * rs : 0, rs);
}

/* One live output channel through the SMLAD kernel (packed input in `packed`). */
static void channel_smlad(const et_op_t *op, const et_rq_t *q, et_smlad_fn fn, const uint8_t *packed,
                          int32_t bias, const int8_t *wv, int8_t *yc, const et_view_t *vo,
                          const int8_t *rc, const et_view_t *vr) {
    const et_tref_t *ti = &op->in0;
    const et_conv_params_t *cp = &op->p.conv;
    const int32_t oh = op->out.dims.h, ow = op->out.dims.w, px = 2 * ti->dims.c;
    const int32_t wp = ti->dims.w + 2 * ti->pad;
    const et_pack_geom_t g = {cp->kernel_h, cp->kernel_w * ti->dims.c, wp * px};
    const uint8_t *org = packed + ((ti->pad - cp->pad_top) * wp + (ti->pad - cp->pad_left)) * px;
    et_tile_t t;
    if (pack_flat(op)) {
        /* Lanes j, j+1, ... of the padded grid; (y, x) follows j without division. */
        const int32_t count = (oh - 1) * wp + ow;
        int32_t y = 0, x = 0;
        for (int32_t j = 0; j < count; j += 8) {
            fn(&t, org + j * px, bias, wv, &g);
            for (int32_t i = 0; i < 8;) {
                const int32_t seg = 8 - i < wp - x ? 8 - i : wp - x;
                const int32_t n = x >= ow ? 0 : (seg < ow - x ? seg : ow - x);
                if (n > 0 && y < oh)
                    store_run(q, t.a + i, n, yc + y * vo->row + x * vo->col, vo->col,
                              rc ? rc + y * vr->row + x * vr->col : 0, vr->col);
                i += seg;
                x += seg;
                if (x == wp) { x = 0; y++; }
            }
        }
        return;
    }
    for (int32_t y = 0; y < oh; y++)
        for (int32_t x = 0; x < ow; x += 8) {
            fn(&t, org + (y * cp->stride_h * wp + x * cp->stride_w) * px, bias, wv, &g);
            store_run(q, t.a, ow - x < 8 ? ow - x : 8, yc + y * vo->row + x * vo->col, vo->col,
                      rc ? rc + y * vr->row + x * vr->col : 0, vr->col);
        }
}

/* Every output channel of a dense CONV_2D through the SMLAD kernel (dead ones: their constant). */
static void conv_smlad(const et_op_t *op, const et_tensor_t *w, et_rq_t *q, const int8_t *in, uint8_t *scratch,
                       const et_view_t *vo, const et_view_t *vr, int residual) {
    const et_smlad_fn fn = smlad_fn(op->p.conv.stride_w * 2 * op->in0.dims.c);
    const int32_t oh = op->out.dims.h, ow = op->out.dims.w;
    uint32_t row = 0, dead = 0;
    pack_input(&op->in0, in, scratch, op->scratch_size);
    for (int32_t o = 0; o < op->out.dims.c; o++) {
        int8_t *yc = vo->base + o * vo->c;
        const int8_t *rc = residual ? vr->base + o * vr->c : 0;
        if (!et_channel_live(w, (uint32_t)o)) {
            const int8_t v = w->consts[dead++];
            for (int32_t y = 0; y < oh; y++)
                for (int32_t x = 0; x < ow; x++)
                    yc[y * vo->row + x * vo->col] = rc ? et_add_fast(q, v, rc[y * vr->row + x * vr->col]) : v;
            continue;
        }
        rq_init(q, w, row);
        channel_smlad(op, q, fn, scratch, et_read_i32(w->bias + 4u * row),
                      w->values + row * w->channel_len, yc, vo, rc, vr);
        row++;
    }
}

et_status_t et_conv_planar(const et_op_t *op, const et_tensor_t *w, const int8_t *in, int8_t *out,
                           const int8_t *residual, int depthwise, uint8_t *scratch) {
    const et_tref_t *ti = &op->in0, *to = &op->out;
    const et_conv_params_t *cp = &op->p.conv;
    const int32_t oh = to->dims.h, ow = to->dims.w, channels = to->dims.c;
    const int32_t sh = cp->stride_h, sw = cp->stride_w;
    const int32_t wp = ti->dims.w + 2 * ti->pad, plane = (ti->dims.h + 2 * ti->pad) * wp;
    /* The window origin of output (0, 0) is padded input (P - pad_top, P - pad_left):
     * dense taps add it; sparse tap offsets include it (codegen). */
    const int32_t origin = (ti->pad - cp->pad_top) * wp + (ti->pad - cp->pad_left);
    const et_view_t vo = view_of(to, out);
    et_view_t vr = {0, 0, 0, 0};
    if (residual) vr = view_of(&op->in1, (int8_t *)(uintptr_t)residual);
    /* The border holds the zero point of what this op writes: the ADD's output when fused. */
    fill_border(to, out, (int8_t)(residual ? cp->add.out_zero_point : w->output_zero_point));
    /* Tiles: two quads in one row (q1 = 4 pixels on), or one quad in each of two rows. */
    const int32_t pair_rows = ow <= 4;
    const int32_t q1 = pair_rows ? sh * wp : 4 * sw;
    const int32_t quads = (ow + 3) / 4;
    const int32_t k = (int32_t)w->channel_len;
    et_dense_geom_t g = {cp->kernel_h, cp->kernel_w, depthwise ? 1 : ti->dims.c, plane, wp};
    uint32_t row = 0, dead = 0;
    et_rq_t q;
    q.lut = op->add_lut;
    if (residual) rq_init_add(&q, &cp->add);
    /* Dense CONV_2D with a pack buffer planned by codegen: the SMLAD kernel. */
    if (!op->taps && !depthwise && op->scratch_size && et_planar_pack_bytes(op) &&
        op->scratch_size >= et_planar_pack_bytes(op)) {
        conv_smlad(op, w, &q, in, scratch, &vo, &vr, residual != 0);
        return ET_OK;
    }
    for (int32_t o = 0; o < channels; o++) {
        int8_t *yc = vo.base + o * vo.c;
        const int8_t *rc = residual ? vr.base + o * vr.c : 0;
        if (!et_channel_live(w, (uint32_t)o)) {
            const int8_t v = w->consts[dead++];
            for (int32_t y = 0; y < oh; y++)
                for (int32_t x = 0; x < ow; x++)
                    yc[y * vo.row + x * vo.col] =
                        rc ? et_add_fast(&q, v, rc[y * vr.row + x * vr.col]) : v;
            continue;
        }
        rq_init(&q, w, row);
        const int32_t bias = et_read_i32(w->bias + 4u * row);
        const int8_t *chan = in + (depthwise ? o * plane : 0);
        const uint32_t *tp = 0;
        const int8_t *wv = 0;
        if (op->taps) {
            tp = op->taps->taps + op->taps->index[row];
        } else {
            wv = w->values + (uint32_t)row * (uint32_t)k;
            chan += origin;
        }
        for (int32_t y = 0; y < oh; y += pair_rows ? 2 : 1) {
            const int32_t rows_here = pair_rows && y + 1 < oh ? 2 : 1;
            for (int32_t qx = 0; qx < quads; qx += pair_rows ? 1 : 2) {
                const int32_t x = qx * 4;
                const int8_t *base = chan + y * sh * wp + x * sw;
                et_tile_t t;
                if (tp) tile_sparse(&t, base, q1, sw, bias, tp);
                else tile_dense(&t, base, q1, sw, bias, wv, &g);
                const int32_t n0 = ow - x < 4 ? ow - x : 4;
                int8_t *yo = yc + y * vo.row + x * vo.col;
                const int8_t *ro = rc ? rc + y * vr.row + x * vr.col : 0;
                store_quad(&q, t.a, n0, yo, vo.col, ro, vr.col);
                if (pair_rows) {
                    if (rows_here == 2)
                        store_quad(&q, t.a + 4, n0, yo + vo.row, vo.col, ro ? ro + vr.row : 0, vr.col);
                } else if (qx + 1 < quads) {
                    const int32_t n1 = ow - x - 4 < 4 ? ow - x - 4 : 4;
                    store_quad(&q, t.a + 4, n1, yo + 4 * vo.col, vo.col, ro ? ro + 4 * vr.col : 0, vr.col);
                }
            }
        }
        row++;
    }
    return ET_OK;
}

/* NHWC in0 -> PLANAR out (same shape, n = 1), border set to the zero point `value`. */
void et_to_planar(const et_op_t *op, const int8_t *in, int8_t *out) {
    const et_tref_t *to = &op->out;
    const et_view_t v = view_of(to, out);
    const int32_t h = to->dims.h, w = to->dims.w, c = to->dims.c;
    fill_border(to, out, (int8_t)op->p.pad.value);
    for (int32_t y = 0; y < h; y++)
        for (int32_t x = 0; x < w; x++) {
            const int8_t *src = in + (y * w + x) * c;
            int8_t *dst = v.base + y * v.row + x;
            for (int32_t ch = 0; ch < c; ch++) dst[ch * v.c] = src[ch];
        }
}

/* Int8 inference runtime: runs a generated op schedule over a static arena,
 * reading conv/depthwise/FC weights in place from the sparse weight image.
 * C11, no allocation, bit-exact with TFLM's reference kernels.
 *
 * Usage (the et_model_t comes from generated code, entropi_tiny.codegen):
 *     static uint8_t arena[ET_MODEL_ARENA_SIZE] __attribute__((aligned(16)));
 *     et_runtime_t rt;
 *     if (et_runtime_init(&rt, &et_model, arena, sizeof arena) != ET_OK) fail();
 *     memcpy(et_runtime_input(&rt), image_int8, et_model.input_bytes);
 *     if (et_runtime_invoke(&rt) != ET_OK) fail();      // rt.failed_op names the op
 *     const int8_t *features = et_runtime_output(&rt);
 *     rt.op_hook = my_counter_hook;                     // optional: per-op profile
 *
 * et_runtime_init validates everything once: the weight image (magic,
 * version, CRC-32, every entry's bounds), and every op of the schedule
 * (known kind, shapes consistent with each other and with its weights,
 * every tensor and scratch buffer inside the arena or the constant pool,
 * no forbidden overlap between an op's input and output). After a
 * successful init no kernel can read or write outside the arena, the image
 * or the pool; a weight stream found malformed during invoke returns
 * ET_ERR_WEIGHTS.
 *
 * All float arithmetic happened on the host: every multiplier, shift,
 * and folded bias is an integer in the schedule or the image.
 */
#ifndef ET_RUNTIME_H
#define ET_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "et_sparse_image.h"

typedef enum {
    ET_OP_CONV_2D = 1,
    ET_OP_DEPTHWISE_CONV_2D = 2,   /* depth multiplier 1 */
    ET_OP_FULLY_CONNECTED = 3,
    ET_OP_ADD = 4,
    ET_OP_MUL = 5,
    ET_OP_MEAN = 6,                /* over H and W */
    ET_OP_PAD = 7,
    ET_OP_HARD_SWISH = 8,
    ET_OP_COPY = 9,                /* a RESHAPE the planner could not alias */
    ET_OP_TO_PLANAR = 10,          /* NHWC in0 -> planar, padded out (the model input) */
} et_op_kind_t;

/* Activation layouts (et_tref_t.layout). NHWC: element (n,y,x,c) at
 * ((n*H + y)*W + x)*C + c. PLANAR (n = 1 only): C planes of (H+2P) x (W+2P)
 * bytes, element (y,x,c) at c*plane + (y+P)*(W+2P) + (x+P), the border of P
 * pixels holding the tensor's zero point, then ET_PLANAR_SLACK bytes that the
 * conv kernels' word loads may read past the last plane (never used). */
enum { ET_NHWC = 0, ET_PLANAR = 1 };
#define ET_PLANAR_SLACK 16u

/* Op flags. */
enum {
    ET_IN1_CONST = 1,              /* in1 lives in the constant pool, not the arena */
    ET_FUSED_ADD = 2,              /* CONV/DW: out = ADD(conv result, in1) (params in p.conv.add) */
};

#define ET_NO_WEIGHTS 0xFFFFu

/* A 4-D NHWC shape; tensors of lower rank are padded with leading 1s. */
typedef struct { int32_t n, h, w, c; } et_dims_t;

/* Where an op operand lives: byte offset in the arena (or the pool) and shape. */
typedef struct { uint32_t offset; et_dims_t dims; uint8_t layout, pad; } et_tref_t;

/* Tap table of a conv on a PLANAR input (made by codegen from the weight
 * image): for live row r, words taps[index[r] .. index[r+1]) are
 * (offset << 8) | (uint8_t)weight, offset being the byte distance from an
 * output pixel's window origin (channel 0, padded coordinates) to the tap's
 * input byte; each row ends with one ET_TAP_END word (so index[r + 1] -
 * index[r] = the row's non-zeros + 1). index has rows + 1 entries. */
#define ET_TAP_END 0xFFFFFFFFu
typedef struct {
    const uint32_t *index;
    const uint32_t *taps;
    uint32_t rows, count;
} et_taps_t;

/* ADD, TFLM's int8 scheme: both inputs shifted left by 20 bits, rescaled to
 * twice the larger input scale, summed, rescaled to the output. Shifts <= 0. */
typedef struct {
    int32_t in1_offset, in2_offset;        /* minus the input zero points */
    int32_t in1_multiplier, in2_multiplier, out_multiplier;
    int8_t in1_shift, in2_shift, out_shift, left_shift;
    int32_t out_zero_point, act_min, act_max;
} et_add_params_t;

typedef struct {
    uint16_t stride_h, stride_w;
    int16_t pad_top, pad_left;             /* SAME padding, or a PAD op fused in */
    uint16_t kernel_h, kernel_w;
    et_add_params_t add;                   /* if ET_FUSED_ADD: conv result is ADD input 1 */
} et_conv_params_t;

typedef struct {
    int32_t in1_offset, in2_offset, out_multiplier;
    int32_t out_shift, out_zero_point, act_min, act_max;
} et_mul_params_t;

/* MEAN over H and W, TFLM's integer path: the 1/count factor is folded
 * into the multiplier by the host; same_quant selects TFLM's plain
 * truncating integer mean (input and output quantization equal). */
typedef struct {
    int32_t multiplier, shift, in_zero_point, out_zero_point, count, same_quant;
} et_mean_params_t;

typedef struct { et_dims_t before; int32_t value; } et_pad_params_t;

/* HARD_SWISH, TFLM's int16 fixed-point reference algorithm. */
typedef struct {
    int32_t in_zero_point, out_zero_point;
    int16_t out_multiplier, relu_multiplier;   /* Q15 */
    int8_t out_exponent, relu_exponent;
} et_hswish_params_t;

typedef struct {
    uint8_t kind;                          /* et_op_kind_t */
    uint8_t flags;
    uint16_t weights;                      /* image directory entry, or ET_NO_WEIGHTS */
    et_tref_t in0, in1, out;
    uint32_t scratch_offset, scratch_size; /* int32 scratch in the arena (conv accumulators) */
    const et_taps_t *taps;                 /* conv on a PLANAR input: sparse tap table, or NULL:
                                            * dense weights read from the image (DENSE encoding) */
    const int32_t *add_lut;                /* fused ADD on a PLANAR input, optional: the rescaled
                                            * inputs, [128 + a] for input 1 and [384 + b] for input 2
                                            * (MBQM((x + offset) << left_shift, multiplier, shift)) */
    union {
        et_conv_params_t conv;
        et_add_params_t add;
        et_mul_params_t mul;
        et_mean_params_t mean;
        et_pad_params_t pad;
        et_hswish_params_t hswish;
    } p;
} et_op_t;

typedef struct {
    const uint8_t *image;                  /* sparse weight image, 4-byte aligned */
    uint32_t image_size;
    const uint8_t *consts;                 /* constant pool: constant int8 operands */
    uint32_t consts_size;
    const et_op_t *ops;
    uint32_t op_count;
    uint32_t arena_size;                   /* bytes the plan needs */
    et_tref_t input, output;
    uint32_t input_bytes, output_bytes;
} et_model_t;

/* Per-op profile hook: called with end = 0 just before op `op` runs and with
 * end = 1 just after it, when set (NULL: no calls, one compare per op). */
typedef void (*et_op_hook_t)(void *ctx, uint32_t op, int end);

typedef struct {
    const et_model_t *model;
    et_image_t image;
    uint8_t *arena;
    uint32_t failed_op;                    /* index of the op that failed, if any */
    et_op_hook_t op_hook;                  /* optional, see et_op_hook_t */
    void *op_hook_ctx;
} et_runtime_t;

et_status_t et_runtime_init(et_runtime_t *rt, const et_model_t *model, uint8_t *arena, size_t arena_size);
et_status_t et_runtime_invoke(et_runtime_t *rt);
int8_t *et_runtime_input(const et_runtime_t *rt);
const int8_t *et_runtime_output(const et_runtime_t *rt);
const char *et_status_name(et_status_t status);

#endif /* ET_RUNTIME_H */

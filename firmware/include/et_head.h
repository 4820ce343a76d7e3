/* Trainable linear head on top of a frozen int8 feature extractor: float32
 * forward pass, softmax cross-entropy, SGD (momentum, weight decay, mini-batch),
 * an optional int8 feature cache and top-1 evaluation. C11, no allocation.
 *
 * Usage:
 *     #include "et_head.h"              // pulls in the generated et_head_config.h
 *     et_head_reset(&et_head_state);    // init as configured (seeded uniform, zero, table)
 *     et_head_cache_fill(&et_head_cache[0][0], ET_HEAD_TRAIN_N, extract, ctx);  // runs once
 *     et_head_samples_t s = {&et_head_cache[0][0], NULL, NULL, labels, ET_HEAD_TRAIN_N};
 *     float loss[ET_HEAD_EPOCHS];
 *     et_head_fit(&et_head_state, &s, ET_HEAD_EPOCHS, loss);
 *     uint32_t correct = et_head_evaluate(&et_head_state, test_q, test_labels, n_test);
 *
 * The dimensions (D features, C classes, batch size B, N training samples)
 * are compile-time constants from et_head_config.h, which
 * entropi_tiny/codegen/head.py generates; so is the static state
 * et_head_state and the cache. Every formula is written out beside its code
 * in et_head.c; entropi_tiny/head_reference.py does the same arithmetic in
 * float32 numpy, step by step.
 *
 * Only single-precision arithmetic: every constant carries an f suffix and
 * the file compiles cleanly with -Wdouble-promotion -Wfloat-conversion, so
 * the Cortex-M7's single-precision FPU runs all of it.
 */
#ifndef ET_HEAD_H
#define ET_HEAD_H

#include <stddef.h>
#include <stdint.h>

/* Values of ET_HEAD_INIT_MODE in the generated config. */
#define ET_HEAD_INIT_UNIFORM 0   /* U(-ET_HEAD_INIT_BOUND, +ET_HEAD_INIT_BOUND) from ET_HEAD_SEED */
#define ET_HEAD_INIT_ZERO 1
#define ET_HEAD_INIT_TABLE 2     /* et_head_init_weight / et_head_init_bias */

#include "et_head_config.h"

#if ET_HEAD_D < 1 || ET_HEAD_C < 2 || ET_HEAD_C > 256 || ET_HEAD_BATCH < 1 || \
    ET_HEAD_TRAIN_N < 1 || ET_HEAD_TRAIN_N > 65535
#error "et_head_config.h: dimensions out of range"
#endif
#if (ET_HEAD_WEIGHT_BITS != 16 && ET_HEAD_WEIGHT_BITS != 32) || \
    (ET_HEAD_MOMENTUM_BITS != 16 && ET_HEAD_MOMENTUM_BITS != 32)
#error "et_head_config.h: storage widths must be 16 or 32 bits"
#endif

/* Storage of the weights and momentum buffers (ET_HEAD_WEIGHT_BITS /
 * ET_HEAD_MOMENTUM_BITS): 32 = float32, 16 = bfloat16 bits (the upper half
 * of a float32; arithmetic stays float32, every store rounds as
 * ET_HEAD_ROUNDING says: nearest-even, or stochastic from a counter hash). */
#define ET_HEAD_ROUND_NEAREST 0
#define ET_HEAD_ROUND_STOCHASTIC 1
#if ET_HEAD_WEIGHT_BITS == 16
typedef uint16_t et_head_wstore_t;
#else
typedef float et_head_wstore_t;
#endif
#if ET_HEAD_MOMENTUM_BITS == 16
typedef uint16_t et_head_mstore_t;
#else
typedef float et_head_mstore_t;
#endif

/* The head and everything training needs, sized by the generated constants.
 * Bytes: see head_memory() in entropi_tiny/codegen/head.py. A mini-batch
 * keeps no gradient: only each sample's dL/dz (B x C floats); the update
 * recomputes dL/dW[c][d] = sum_i dz_i[c] x_i[d] from the int8 rows. */
typedef struct {
    et_head_wstore_t weight[ET_HEAD_C][ET_HEAD_D];   /* read with et_head_weight() */
    float bias[ET_HEAD_C];
#if ET_HEAD_MOMENTUM_ENABLED
    et_head_mstore_t weight_buf[ET_HEAD_C][ET_HEAD_D];   /* momentum buffers, zero after reset */
    float bias_buf[ET_HEAD_C];
#endif
#if ET_HEAD_BATCH > 1
    float batch_dz[ET_HEAD_BATCH][ET_HEAD_C];   /* dL/dz of the open mini-batch's samples */
    float batch_x[ET_HEAD_BATCH];               /* one feature of each, during the update */
#endif
    float x[ET_HEAD_D];          /* dequantized features of the current sample */
    float logits[ET_HEAD_C];
    float dlogits[ET_HEAD_C];    /* dL/dlogits of the current sample */
    float momentum;              /* run-time hyperparameters, set by et_head_reset */
    float weight_decay;
    float lr;                    /* current learning rate, decayed by et_head_fit */
    uint32_t rng;                /* xorshift32 state of the shuffle */
    uint32_t pending;            /* samples accumulated since the last update */
    uint32_t step;               /* updates since reset: keys the stochastic rounding */
    uint16_t order[ET_HEAD_TRAIN_N];   /* visiting order of the current epoch */
    int8_t row[ET_HEAD_BATCH][ET_HEAD_D];   /* extractor outputs when samples are not cached */
} et_head_t;

/* Errors of et_head_train_epoch / et_head_fit (an extractor's own codes
 * should be positive to stay distinct). */
#define ET_HEAD_ERR_SAMPLES (-1)   /* n is 0 or above ET_HEAD_TRAIN_N */
#define ET_HEAD_ERR_LABEL (-2)     /* a label >= ET_HEAD_C */

/* Computes the int8 features of training sample `index` into out[ET_HEAD_D];
 * returns 0, or a positive error code that the training loop passes on. */
typedef int (*et_head_extract_fn)(void *ctx, uint32_t index, int8_t *out);

/* Where the training samples' features come from: the cache when non-NULL,
 * otherwise the extractor, called once per sample visit. */
typedef struct {
    const int8_t *cache;         /* [n][ET_HEAD_D], or NULL */
    et_head_extract_fn extract;  /* used when cache is NULL */
    void *ctx;
    const uint8_t *labels;       /* [n], each < ET_HEAD_C */
    uint32_t n;                  /* <= ET_HEAD_TRAIN_N */
} et_head_samples_t;

/* -- initialisation -------------------------------------------------------- */
void et_head_init_uniform(et_head_t *h, uint32_t seed, float bound);
void et_head_init_zero(et_head_t *h);
void et_head_init_table(et_head_t *h, const float *weight, const float *bias);
/* Init as et_head_config.h says, set lr/momentum/weight decay, seed the shuffle. */
void et_head_reset(et_head_t *h);
uint32_t et_head_rand(uint32_t *state);
float et_head_weight(const et_head_t *h, uint32_t c, uint32_t d);   /* W[c][d] as float32 */
float et_head_expf(float x);      /* exp, float32 operations only (the host mirrors them) */

/* -- one sample (labels must be < ET_HEAD_C) --------------------------------- */
void et_head_dequantize(const int8_t *q, int32_t zero_point, float scale, float *out, uint32_t n);
void et_head_forward(const et_head_t *h, const float *x, float *logits);
float et_head_loss_grad(const float *logits, uint32_t label, float *dlogits);
uint32_t et_head_predict(const et_head_t *h, const float *x);

/* -- SGD (labels must be < ET_HEAD_C; accumulate/apply exist when ET_HEAD_BATCH > 1) */
float et_head_sgd_step(et_head_t *h, const float *x, uint32_t label, float lr);
float et_head_accumulate(et_head_t *h, const float *x, uint32_t label);
/* rows[index[i]] (index NULL: rows[i]) are the int8 features of the i-th accumulated sample. */
void et_head_apply(et_head_t *h, const int8_t *rows, const uint16_t *index, float lr);
float et_head_batch_step(et_head_t *h, const int8_t *q, const uint8_t *labels, uint32_t b, float lr);

/* -- epochs, cache, evaluation --------------------------------------------- */
int et_head_cache_fill(int8_t *cache, uint32_t n, et_head_extract_fn extract, void *ctx);
void et_head_shuffle(et_head_t *h, uint32_t n);
int et_head_train_epoch(et_head_t *h, const et_head_samples_t *s, float lr, float *mean_loss);
int et_head_fit(et_head_t *h, const et_head_samples_t *s, uint32_t epochs, float *losses);
uint32_t et_head_evaluate(et_head_t *h, const int8_t *q, const uint8_t *labels, uint32_t n);

/* -- static buffers, defined in the generated et_head_data.c --------------- */
extern et_head_t et_head_state;
#if ET_HEAD_CACHE
extern int8_t et_head_cache[ET_HEAD_TRAIN_N][ET_HEAD_D];
#endif
#if ET_HEAD_INIT_MODE == ET_HEAD_INIT_TABLE
extern const float et_head_init_weight[ET_HEAD_C][ET_HEAD_D];
extern const float et_head_init_bias[ET_HEAD_C];
#endif

#endif /* ET_HEAD_H */

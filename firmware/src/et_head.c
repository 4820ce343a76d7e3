/* Linear head with SGD on the device; see et_head.h for usage.
 *
 * Notation: x[D] features, W[C][D] weights, b[C] bias, z[C] logits,
 * y the label. Every loop runs in index order (c, then d), and
 * entropi_tiny/head_reference.py follows the same order wherever it changes
 * a result (the gradient sums over a mini-batch, the loss sum of an epoch).
 * All arithmetic is float32; ISO C mode (-std=c11) keeps GCC from fusing
 * a*b+c into one rounding.
 */
#include "et_head.h"

#include <math.h>
#include <string.h>

/* -- pseudo-random numbers ---------------------------------------------------
 * xorshift32 (Marsaglia 2003): state ^= state << 13, >> 17, << 5. The state
 * must not be 0, so a seed is first XORed with a constant (and 0 maps to 1). */
uint32_t et_head_rand(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static uint32_t seed_state(uint32_t seed) {
    uint32_t s = seed ^ 0x9E3779B9u;
    return s ? s : 1u;
}

/* -- storage: float32 or bfloat16 --------------------------------------------
 * A bfloat16 is the upper 16 bits of a float32 (8-bit exponent, 7+1-bit
 * significand): decoding is a shift; encoding rounds the dropped 16 bits,
 *     nearest-even:  u + 0x7FFF + ((u >> 16) & 1), then >> 16
 *     stochastic:    u + (r & 0xFFFF),              then >> 16
 * with r a 32-bit hash of (update counter, parameter index): rounding up
 * with probability (dropped bits) / 2^16, so small updates are kept on
 * average instead of vanishing. The hash is murmur3's finaliser; being a
 * function of the index (not a sequential stream), the host reproduces it
 * with whole-array integer operations. */
static inline uint32_t f32_bits(float v) { uint32_t u; memcpy(&u, &v, 4); return u; }
static inline float bits_f32(uint32_t u) { float v; memcpy(&v, &u, 4); return v; }

static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

/* The key of update number `step`; parameter i's draw is mix32(key ^ i). */
static inline uint32_t round_key(uint32_t step) {
    return mix32(step * 0x9E3779B9u + (uint32_t)ET_HEAD_SEED);
}

static inline uint16_t to_bf16(float v, uint32_t key, uint32_t index) {
    uint32_t u = f32_bits(v);
#if ET_HEAD_ROUNDING == ET_HEAD_ROUND_STOCHASTIC
    u += mix32(key ^ index) & 0xFFFFu;
#else
    (void)key; (void)index;
    u += 0x7FFFu + ((u >> 16) & 1u);
#endif
    return (uint16_t)(u >> 16);
}

#if ET_HEAD_WEIGHT_BITS == 16
#define LOAD_W(v) bits_f32((uint32_t)(v) << 16)
#define STORE_W(v, key, i) to_bf16((v), (key), 2u * (i))
#else
#define LOAD_W(v) (v)
#define STORE_W(v, key, i) (v)
#endif
#if ET_HEAD_MOMENTUM_BITS == 16
#define LOAD_M(v) bits_f32((uint32_t)(v) << 16)
#define STORE_M(v, key, i) to_bf16((v), (key), 2u * (i) + 1u)
#else
#define LOAD_M(v) (v)
#define STORE_M(v, key, i) (v)
#endif

/* Initial weights round to nearest-even, whatever ET_HEAD_ROUNDING says. */
static inline et_head_wstore_t init_w(float v) {
#if ET_HEAD_WEIGHT_BITS == 16
    uint32_t u = f32_bits(v);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
#else
    return v;
#endif
}
#define INIT_W(v) init_w(v)

float et_head_weight(const et_head_t *h, uint32_t c, uint32_t d) { return LOAD_W(h->weight[c][d]); }

/* exp(x) from float32 operations only, so that the host reference can repeat
 * it bit for bit (libm's expf and numpy's exp differ in the last bit):
 *     n = floor(x log2(e) + 1/2),  r = x - n ln2  (ln2 split in a 15-bit
 *     head, exact in n * head, and a tail),  |r| <= ln2 / 2,
 *     exp(x) = 2^n * p(r),  p the degree-7 Taylor polynomial (Horner),
 * relative error below 2e-7. x below -80 gives 0 (the softmax terms it
 * serves are then under 1e-34 of the largest), above 88 is clamped. */
float et_head_expf(float x) {
    if (x < -80.0f) return 0.0f;
    if (x > 88.0f) x = 88.0f;
    float n = floorf(x * 0x1.715476p+0f + 0.5f);
    float r = (x - n * 0x1.62e4p-1f) - n * 0x1.7f7d1cp-20f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p * bits_f32((uint32_t)((int32_t)n + 127) << 23);
}

/* -- initialisation ---------------------------------------------------------- */

/* Weights W[c][d] (row-major), then biases, each drawn as
 *     u = (r >> 8) * 2^-24        in [0, 1), exactly 24 bits,
 *     w = (2u - 1) * bound        in [-bound, bound),
 * from the xorshift32 stream seeded with `seed`. The generator's default
 * bound is 1/sqrt(D): the range of PyTorch's nn.Linear default init (not its
 * numbers). 2u - 1 is exact, so only the product by bound rounds. */
void et_head_init_uniform(et_head_t *h, uint32_t seed, float bound) {
    uint32_t s = seed_state(seed);
    et_head_wstore_t *w = &h->weight[0][0];
    for (uint32_t i = 0; i < (uint32_t)ET_HEAD_C * ET_HEAD_D + ET_HEAD_C; i++) {
        float u = (float)(et_head_rand(&s) >> 8) * 0x1p-24f;
        float v = (2.0f * u - 1.0f) * bound;
        if (i < (uint32_t)ET_HEAD_C * ET_HEAD_D) w[i] = INIT_W(v);
        else h->bias[i - (uint32_t)ET_HEAD_C * ET_HEAD_D] = v;
    }
}

void et_head_init_zero(et_head_t *h) {
    memset(h->weight, 0, sizeof h->weight);
    memset(h->bias, 0, sizeof h->bias);
}

/* weight: [C][D] row-major, bias: [C] (NULL: zero). */
void et_head_init_table(et_head_t *h, const float *weight, const float *bias) {
    for (uint32_t i = 0; i < (uint32_t)ET_HEAD_C * ET_HEAD_D; i++) (&h->weight[0][0])[i] = INIT_W(weight[i]);
    if (bias) memcpy(h->bias, bias, sizeof h->bias);
    else memset(h->bias, 0, sizeof h->bias);
}

/* Initial weights as configured, zero optimizer state, hyperparameters from
 * the config, and the shuffle stream seeded with ~ET_HEAD_SEED (a stream of
 * its own, so the visiting order does not depend on the init mode). */
void et_head_reset(et_head_t *h) {
    memset(h, 0, sizeof *h);
#if ET_HEAD_INIT_MODE == ET_HEAD_INIT_UNIFORM
    et_head_init_uniform(h, ET_HEAD_SEED, ET_HEAD_INIT_BOUND);
#elif ET_HEAD_INIT_MODE == ET_HEAD_INIT_TABLE
    et_head_init_table(h, &et_head_init_weight[0][0], et_head_init_bias);
#else
    et_head_init_zero(h);
#endif
    h->momentum = ET_HEAD_MOMENTUM;
    h->weight_decay = ET_HEAD_WEIGHT_DECAY;
    h->lr = ET_HEAD_LR;
    h->rng = seed_state(~(uint32_t)ET_HEAD_SEED);
    for (uint32_t i = 0; i < ET_HEAD_TRAIN_N; i++) h->order[i] = (uint16_t)i;
}

/* -- one sample ---------------------------------------------------------------- */

/* Affine dequantization of the extractor's int8 output:
 *     x[i] = (q[i] - zero_point) * scale
 * The subtraction is exact in int32, so each x[i] is rounded once. */
void et_head_dequantize(const int8_t *q, int32_t zero_point, float scale, float *out, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) out[i] = (float)((int32_t)q[i] - zero_point) * scale;
}

/* z[c] = (sum_d W[c][d] * x[d]) + b[c], the sum in increasing d. */
void et_head_forward(const et_head_t *h, const float *x, float *logits) {
    for (uint32_t c = 0; c < ET_HEAD_C; c++) {
        const et_head_wstore_t *w = h->weight[c];
        float acc = 0.0f;
        for (uint32_t d = 0; d < ET_HEAD_D; d++) acc += LOAD_W(w[d]) * x[d];
        logits[c] = acc + h->bias[c];
    }
}

/* Softmax cross-entropy of one sample and its gradient. With m = max_k z[k]
 * (subtracted so that no expf overflows and the largest term is exactly 1):
 *     e[k] = exp(z[k] - m),   s = sum_k e[k]            (1 <= s <= C)
 *     loss = log(s) - (z[y] - m)                         (= -log softmax(z)[y])
 *     dL/dz[k] = e[k] / s - [k == y]
 * Returns the loss; dlogits may alias logits. */
float et_head_loss_grad(const float *logits, uint32_t label, float *dlogits) {
    float m = logits[0];
    for (uint32_t k = 1; k < ET_HEAD_C; k++) if (logits[k] > m) m = logits[k];
    float zy = logits[label] - m;
    float s = 0.0f;
    for (uint32_t k = 0; k < ET_HEAD_C; k++) {
        dlogits[k] = et_head_expf(logits[k] - m);
        s += dlogits[k];
    }
    for (uint32_t k = 0; k < ET_HEAD_C; k++) dlogits[k] = dlogits[k] / s;
    dlogits[label] -= 1.0f;
    return logf(s) - zy;
}

/* argmax_c z[c], the lowest index on ties. */
uint32_t et_head_predict(const et_head_t *h, const float *x) {
    float z[ET_HEAD_C];
    et_head_forward(h, x, z);
    uint32_t best = 0;
    for (uint32_t c = 1; c < ET_HEAD_C; c++) if (z[c] > z[best]) best = c;
    return best;
}

/* -- SGD ------------------------------------------------------------------------ */

/* One weight W[c][d] (flat index i = c D + d), PyTorch's torch.optim.SGD
 * (dampening 0, no Nesterov), in float32 whatever the storage:
 *     g   = grad + weight_decay * p          (L2 decay, weights and biases alike)
 *     buf = momentum * buf + g               (when momentum is enabled)
 *     p   = p - lr * buf                     (or p - lr * g without momentum)
 * p and buf are decoded from their storage and the results stored back
 * (rounded to bfloat16 where configured; p uses the unrounded buf). The
 * buffers start at zero, so the first step gives buf = g exactly. */
static inline void update_weight(et_head_t *h, uint32_t c, uint32_t d, float grad, float lr,
                                 uint32_t key) {
    uint32_t i = c * (uint32_t)ET_HEAD_D + d;
    float p = LOAD_W(h->weight[c][d]);
    float g = grad + h->weight_decay * p;
#if ET_HEAD_MOMENTUM_ENABLED
    g = h->momentum * LOAD_M(h->weight_buf[c][d]) + g;
    h->weight_buf[c][d] = STORE_M(g, key, i);
#endif
    h->weight[c][d] = STORE_W(p - lr * g, key, i);
    (void)key; (void)i;
}

/* A bias: the same rule, always float32 (C values; not worth narrowing). */
static inline void update_bias(et_head_t *h, uint32_t c, float grad, float lr) {
    float g = grad + h->weight_decay * h->bias[c];
#if ET_HEAD_MOMENTUM_ENABLED
    h->bias_buf[c] = h->momentum * h->bias_buf[c] + g;
    g = h->bias_buf[c];
#endif
    h->bias[c] = h->bias[c] - lr * g;
}

/* One sample, one update: forward, loss, then for every parameter
 *     dL/dW[c][d] = dL/dz[c] * x[d],   dL/db[c] = dL/dz[c]
 * fed straight into the update, so no gradient buffer is needed. Returns
 * the loss before the update. */
float et_head_sgd_step(et_head_t *h, const float *x, uint32_t label, float lr) {
    et_head_forward(h, x, h->logits);
    float loss = et_head_loss_grad(h->logits, label, h->dlogits);
    uint32_t key = round_key(h->step++);
    for (uint32_t c = 0; c < ET_HEAD_C; c++) {
        float dz = h->dlogits[c];
        for (uint32_t d = 0; d < ET_HEAD_D; d++) update_weight(h, c, d, dz * x[d], lr, key);
        update_bias(h, c, dz, lr);
    }
    return loss;
}

#if ET_HEAD_BATCH > 1
/* Mini-batch without a gradient buffer. The gradient of the batch's mean
 * loss is (1/k) sum_i dz_i[c] x_i[d] over its k samples; instead of a C x D
 * sum kept across the batch, et_head_accumulate keeps each sample's dL/dz
 * (C floats) and et_head_apply recomputes, weight by weight,
 *     G = ((0 + dz_0[c] x_0[d]) + dz_1[c] x_1[d]) + ...   (samples in call order)
 * from the int8 rows (x_i[d] dequantized again: the same float32 value), and
 * updates with grad = G * (1/k): the same roundings as summing into a buffer
 * sample by sample, in B x C floats instead of C x D. */
float et_head_accumulate(et_head_t *h, const float *x, uint32_t label) {
    if (h->pending >= ET_HEAD_BATCH) return -1.0f;
    et_head_forward(h, x, h->logits);
    float loss = et_head_loss_grad(h->logits, label, h->batch_dz[h->pending]);
    h->pending++;
    return loss;
}

void et_head_apply(et_head_t *h, const int8_t *rows, const uint16_t *index, float lr) {
    uint32_t k = h->pending;
    if (k == 0) return;
    float inv = 1.0f / (float)k;
    uint32_t key = round_key(h->step++);
    for (uint32_t d = 0; d < ET_HEAD_D; d++) {
        for (uint32_t i = 0; i < k; i++) {
            const int8_t *q = rows + (size_t)(index ? index[i] : i) * ET_HEAD_D;
            h->batch_x[i] = (float)((int32_t)q[d] - ET_HEAD_FEAT_ZERO_POINT) * ET_HEAD_FEAT_SCALE;
        }
        for (uint32_t c = 0; c < ET_HEAD_C; c++) {
            float g = 0.0f;
            for (uint32_t i = 0; i < k; i++) g += h->batch_dz[i][c] * h->batch_x[i];
            update_weight(h, c, d, g * inv, lr, key);
        }
    }
    for (uint32_t c = 0; c < ET_HEAD_C; c++) {
        float g = 0.0f;
        for (uint32_t i = 0; i < k; i++) g += h->batch_dz[i][c];
        update_bias(h, c, g * inv, lr);
    }
    h->pending = 0;
}
#endif

static void discard_pending(et_head_t *h) { h->pending = 0; }

/* One update from b int8 feature rows q[b][D] (dequantized with the
 * configured scale and zero point); returns the batch's mean loss. A build
 * with ET_HEAD_BATCH == 1 accepts only b == 1, a mini-batch build b <=
 * ET_HEAD_BATCH (otherwise it returns -1, which no loss can be). Samples
 * left open by et_head_accumulate are dropped first. */
float et_head_batch_step(et_head_t *h, const int8_t *q, const uint8_t *labels, uint32_t b, float lr) {
    float sum = 0.0f;
#if ET_HEAD_BATCH > 1
    if (b == 0 || b > ET_HEAD_BATCH) return -1.0f;
    discard_pending(h);
    for (uint32_t i = 0; i < b; i++) {
        et_head_dequantize(q + (size_t)i * ET_HEAD_D, ET_HEAD_FEAT_ZERO_POINT, ET_HEAD_FEAT_SCALE,
                           h->x, ET_HEAD_D);
        sum += et_head_accumulate(h, h->x, labels[i]);
    }
    et_head_apply(h, q, NULL, lr);
#else
    if (b != 1) return -1.0f;
    et_head_dequantize(q, ET_HEAD_FEAT_ZERO_POINT, ET_HEAD_FEAT_SCALE, h->x, ET_HEAD_D);
    sum = et_head_sgd_step(h, h->x, labels[0], lr);
#endif
    return sum / (float)b;
}

/* -- epochs and cache -------------------------------------------------------------- */

/* Runs the extractor once per sample into cache[n][D], so that every epoch
 * reads int8 rows instead of running the extractor again. */
int et_head_cache_fill(int8_t *cache, uint32_t n, et_head_extract_fn extract, void *ctx) {
    for (uint32_t i = 0; i < n; i++) {
        int err = extract(ctx, i, cache + (size_t)i * ET_HEAD_D);
        if (err) return err;
    }
    return 0;
}

/* The visiting order of an epoch: 0..n-1, then (when ET_HEAD_SHUFFLE) a
 * Fisher-Yates shuffle, for i = n-1 down to 1: swap order[i] with
 * order[rand % (i + 1)]. The modulo bias is below n / 2^32, harmless here. */
void et_head_shuffle(et_head_t *h, uint32_t n) {
    if (n == 0 || n > ET_HEAD_TRAIN_N) return;
    for (uint32_t i = 0; i < n; i++) h->order[i] = (uint16_t)i;
#if ET_HEAD_SHUFFLE
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = et_head_rand(&h->rng) % (i + 1u);
        uint16_t t = h->order[i];
        h->order[i] = h->order[j];
        h->order[j] = t;
    }
#endif
}

/* One epoch: shuffle, then consecutive mini-batches of ET_HEAD_BATCH samples
 * in that order (the last one smaller when B does not divide n), one update
 * each. *mean_loss = (sum of the per-sample losses, in visiting order) / n,
 * each loss taken before its batch's update. Returns 0; ET_HEAD_ERR_SAMPLES
 * (nothing done) when n is 0 or above ET_HEAD_TRAIN_N; ET_HEAD_ERR_LABEL or
 * the extractor's error code when a sample fails (its mini-batch is then
 * dropped, earlier updates stay). */
int et_head_train_epoch(et_head_t *h, const et_head_samples_t *s, float lr, float *mean_loss) {
    uint32_t n = s->n;
    float sum = 0.0f;
    if (n == 0 || n > ET_HEAD_TRAIN_N) return ET_HEAD_ERR_SAMPLES;
    et_head_shuffle(h, n);
    discard_pending(h);
    for (uint32_t start = 0; start < n; start += ET_HEAD_BATCH) {
        uint32_t end = start + ET_HEAD_BATCH < n ? start + ET_HEAD_BATCH : n;
        for (uint32_t i = start; i < end; i++) {
            uint32_t idx = h->order[i];
#if ET_HEAD_C < 256   /* with 256 classes every uint8_t label is valid */
            if (s->labels[idx] >= ET_HEAD_C) { discard_pending(h); return ET_HEAD_ERR_LABEL; }
#endif
            const int8_t *row = s->cache ? s->cache + (size_t)idx * ET_HEAD_D : h->row[i - start];
            if (!s->cache) {
                int err = s->extract(s->ctx, idx, h->row[i - start]);
                if (err) { discard_pending(h); return err; }
            }
            et_head_dequantize(row, ET_HEAD_FEAT_ZERO_POINT, ET_HEAD_FEAT_SCALE, h->x, ET_HEAD_D);
#if ET_HEAD_BATCH > 1
            sum += et_head_accumulate(h, h->x, s->labels[idx]);
#else
            sum += et_head_sgd_step(h, h->x, s->labels[idx], lr);
#endif
        }
#if ET_HEAD_BATCH > 1
        /* the batch's rows: cache rows order[start..end), or row[0..k) */
        if (s->cache) et_head_apply(h, s->cache, &h->order[start], lr);
        else et_head_apply(h, &h->row[0][0], NULL, lr);
#endif
    }
    *mean_loss = sum / (float)n;
    return 0;
}

/* `epochs` epochs with an exponential schedule: epoch e uses h->lr, which is
 * then multiplied by ET_HEAD_LR_DECAY (lr_e = lr_0 * decay^e, rounded once
 * per epoch). losses[e] gets each epoch's mean loss (losses may be NULL). */
int et_head_fit(et_head_t *h, const et_head_samples_t *s, uint32_t epochs, float *losses) {
    for (uint32_t e = 0; e < epochs; e++) {
        float loss;
        int err = et_head_train_epoch(h, s, h->lr, &loss);
        if (err) return err;
        if (losses) losses[e] = loss;
        h->lr = h->lr * ET_HEAD_LR_DECAY;
    }
    return 0;
}

/* -- evaluation ----------------------------------------------------------------------- */

/* Top-1: how many of the n rows q[n][D] predict their label. */
uint32_t et_head_evaluate(et_head_t *h, const int8_t *q, const uint8_t *labels, uint32_t n) {
    uint32_t correct = 0;
    for (uint32_t i = 0; i < n; i++) {
        et_head_dequantize(q + (size_t)i * ET_HEAD_D, ET_HEAD_FEAT_ZERO_POINT, ET_HEAD_FEAT_SCALE,
                           h->x, ET_HEAD_D);
        correct += et_head_predict(h, h->x) == labels[i];
    }
    return correct;
}

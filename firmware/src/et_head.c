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

/* -- initialisation ---------------------------------------------------------- */

/* Weights W[c][d] (row-major), then biases, each drawn as
 *     u = (r >> 8) * 2^-24        in [0, 1), exactly 24 bits,
 *     w = (2u - 1) * bound        in [-bound, bound),
 * from the xorshift32 stream seeded with `seed`. The generator's default
 * bound is 1/sqrt(D): the range of PyTorch's nn.Linear default init (not its
 * numbers). 2u - 1 is exact, so only the product by bound rounds. */
void et_head_init_uniform(et_head_t *h, uint32_t seed, float bound) {
    uint32_t s = seed_state(seed);
    float *w = &h->weight[0][0];
    for (uint32_t i = 0; i < (uint32_t)ET_HEAD_C * ET_HEAD_D + ET_HEAD_C; i++) {
        float u = (float)(et_head_rand(&s) >> 8) * 0x1p-24f;
        float v = (2.0f * u - 1.0f) * bound;
        if (i < (uint32_t)ET_HEAD_C * ET_HEAD_D) w[i] = v;
        else h->bias[i - (uint32_t)ET_HEAD_C * ET_HEAD_D] = v;
    }
}

void et_head_init_zero(et_head_t *h) {
    memset(h->weight, 0, sizeof h->weight);
    memset(h->bias, 0, sizeof h->bias);
}

/* weight: [C][D] row-major, bias: [C] (NULL: zero). */
void et_head_init_table(et_head_t *h, const float *weight, const float *bias) {
    memcpy(h->weight, weight, sizeof h->weight);
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
        const float *w = h->weight[c];
        float acc = 0.0f;
        for (uint32_t d = 0; d < ET_HEAD_D; d++) acc += w[d] * x[d];
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
        dlogits[k] = expf(logits[k] - m);
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

/* One parameter, PyTorch's torch.optim.SGD (dampening 0, no Nesterov):
 *     g   = grad + weight_decay * p          (L2 decay, weights and biases alike)
 *     buf = momentum * buf + g               (when momentum is enabled)
 *     p   = p - lr * buf                     (or p - lr * g without momentum)
 * The buffers start at zero, so the first step gives buf = 0 * momentum + g
 * = g exactly, PyTorch's "first step buf = g" without a flag. */
static inline float sgd_update(float p, float grad, float *buf, const et_head_t *h, float lr) {
    float g = grad + h->weight_decay * p;
#if ET_HEAD_MOMENTUM_ENABLED
    *buf = h->momentum * *buf + g;
    g = *buf;
#else
    (void)buf;
#endif
    return p - lr * g;
}

#if ET_HEAD_MOMENTUM_ENABLED
#define ET_HEAD_WBUF(c, d) (&h->weight_buf[c][d])
#define ET_HEAD_BBUF(c) (&h->bias_buf[c])
#else
#define ET_HEAD_WBUF(c, d) ((float *)NULL)
#define ET_HEAD_BBUF(c) ((float *)NULL)
#endif

/* One sample, one update: forward, loss, then for every parameter
 *     dL/dW[c][d] = dL/dz[c] * x[d],   dL/db[c] = dL/dz[c]
 * fed straight into sgd_update, so no gradient buffer is needed. Returns
 * the loss before the update. */
float et_head_sgd_step(et_head_t *h, const float *x, uint32_t label, float lr) {
    et_head_forward(h, x, h->logits);
    float loss = et_head_loss_grad(h->logits, label, h->dlogits);
    for (uint32_t c = 0; c < ET_HEAD_C; c++) {
        float dz = h->dlogits[c];
        for (uint32_t d = 0; d < ET_HEAD_D; d++)
            h->weight[c][d] = sgd_update(h->weight[c][d], dz * x[d], ET_HEAD_WBUF(c, d), h, lr);
        h->bias[c] = sgd_update(h->bias[c], dz, ET_HEAD_BBUF(c), h, lr);
    }
    return loss;
}

#if ET_HEAD_BATCH > 1
/* Mini-batch: the gradient of the batch's mean loss is the mean of the
 * per-sample gradients. et_head_accumulate adds one sample's gradient,
 *     G[c][d] += dL/dz[c] * x[d],   Gb[c] += dL/dz[c],
 * (samples in call order) and returns its loss; et_head_apply then updates
 * every parameter with grad = G * (1 / count) and clears the sums. */
float et_head_accumulate(et_head_t *h, const float *x, uint32_t label) {
    et_head_forward(h, x, h->logits);
    float loss = et_head_loss_grad(h->logits, label, h->dlogits);
    for (uint32_t c = 0; c < ET_HEAD_C; c++) {
        float dz = h->dlogits[c];
        for (uint32_t d = 0; d < ET_HEAD_D; d++) h->grad_weight[c][d] += dz * x[d];
        h->grad_bias[c] += dz;
    }
    h->pending++;
    return loss;
}

void et_head_apply(et_head_t *h, float lr) {
    if (h->pending == 0) return;
    float inv = 1.0f / (float)h->pending;
    for (uint32_t c = 0; c < ET_HEAD_C; c++) {
        for (uint32_t d = 0; d < ET_HEAD_D; d++)
            h->weight[c][d] = sgd_update(h->weight[c][d], h->grad_weight[c][d] * inv,
                                         ET_HEAD_WBUF(c, d), h, lr);
        h->bias[c] = sgd_update(h->bias[c], h->grad_bias[c] * inv, ET_HEAD_BBUF(c), h, lr);
    }
    memset(h->grad_weight, 0, sizeof h->grad_weight);
    memset(h->grad_bias, 0, sizeof h->grad_bias);
    h->pending = 0;
}
#endif

static void discard_pending(et_head_t *h) {
#if ET_HEAD_BATCH > 1
    memset(h->grad_weight, 0, sizeof h->grad_weight);
    memset(h->grad_bias, 0, sizeof h->grad_bias);
#endif
    h->pending = 0;
}

/* One update from b int8 feature rows q[b][D] (dequantized with the
 * configured scale and zero point); returns the batch's mean loss. A build
 * with ET_HEAD_BATCH == 1 has no gradient sums and accepts only b == 1
 * (otherwise it returns -1, which no loss can be). Sums left open by
 * et_head_accumulate are dropped first. */
float et_head_batch_step(et_head_t *h, const int8_t *q, const uint8_t *labels, uint32_t b, float lr) {
    float sum = 0.0f;
#if ET_HEAD_BATCH > 1
    if (b == 0) return -1.0f;
    discard_pending(h);
    for (uint32_t i = 0; i < b; i++) {
        et_head_dequantize(q + (size_t)i * ET_HEAD_D, ET_HEAD_FEAT_ZERO_POINT, ET_HEAD_FEAT_SCALE,
                           h->x, ET_HEAD_D);
        sum += et_head_accumulate(h, h->x, labels[i]);
    }
    et_head_apply(h, lr);
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
            const int8_t *row = s->cache ? s->cache + (size_t)idx * ET_HEAD_D : h->row;
            if (!s->cache) {
                int err = s->extract(s->ctx, idx, h->row);
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
        et_head_apply(h, lr);
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

/* Unit checks of et_head.c that need no reference: numerical stability of
 * the loss, exact dequantization, ties, error codes, the shuffle. Works
 * with any generated et_head_config.h.
 *
 * Usage: et_head_unit      (prints "ok" and exits 0, or names the failed check and exits 1)
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "et_head.h"

static int failures;
#define CHECK(cond) do { if (!(cond)) { printf("FAIL line %d: %s\n", __LINE__, #cond); failures++; } } while (0)

static int fail_at;   /* the extractor fails (code 7) at this call, counting from 1 */
static int calls;
static int extract(void *ctx, uint32_t index, int8_t *out) {
    (void)ctx;
    memset(out, (int)(index % 100u), ET_HEAD_D);
    return ++calls == fail_at ? 7 : 0;
}

static void loss_is_stable(void) {
    float z[ET_HEAD_C], g[ET_HEAD_C];
    for (uint32_t k = 0; k < ET_HEAD_C; k++) z[k] = -1e4f;
    z[0] = 1e4f;
    float right = et_head_loss_grad(z, 0, g), wrong = et_head_loss_grad(z, 1, g);
    CHECK(right == 0.0f);                       /* exp(-2e4) underflows to 0: log(1) */
    CHECK(wrong == 2e4f);                       /* -log softmax = z0 - z1 */
    CHECK(g[0] == 1.0f && g[1] == -1.0f);
    for (uint32_t k = 0; k < ET_HEAD_C; k++) z[k] = 3.0f;
    float flat = et_head_loss_grad(z, ET_HEAD_C - 1, g);
    CHECK(fabsf(flat - logf((float)ET_HEAD_C)) < 1e-6f);   /* uniform softmax */
    float sum = 0.0f;
    for (uint32_t k = 0; k < ET_HEAD_C; k++) sum += g[k];
    CHECK(fabsf(sum) < 1e-6f);
}

static void dequantize_is_exact(void) {
    int8_t q[3] = {-128, 0, 127};
    float x[3];
    et_head_dequantize(q, -128, 0.5f, x, 3);
    CHECK(x[0] == 0.0f && x[1] == 64.0f && x[2] == 127.5f);
}

static void ties_and_init(et_head_t *h) {
    et_head_init_zero(h);
    float x[ET_HEAD_D] = {0};
    CHECK(et_head_predict(h, x) == 0);         /* all logits 0: the lowest index */
    et_head_init_uniform(h, 123u, 0.25f);
    int inside = 1, nonzero = 0;
    for (uint32_t c = 0; c < ET_HEAD_C; c++)
        for (uint32_t d = 0; d < ET_HEAD_D; d++) {
            float w = et_head_weight(h, c, d);
            inside &= w >= -0.25f && w <= 0.25f;   /* bf16 may round up to the bound */
            nonzero |= w != 0.0f;
        }
    CHECK(inside && nonzero);
}

static void shuffle_is_permutation(et_head_t *h) {
    uint8_t seen[ET_HEAD_TRAIN_N];
    memset(seen, 0, sizeof seen);
    et_head_shuffle(h, ET_HEAD_TRAIN_N);
    for (uint32_t i = 0; i < ET_HEAD_TRAIN_N; i++) seen[h->order[i]]++;
    int ok = 1;
    for (uint32_t i = 0; i < ET_HEAD_TRAIN_N; i++) ok &= seen[i] == 1;
    CHECK(ok);
}

static void errors(et_head_t *h) {
    static uint8_t labels[ET_HEAD_TRAIN_N];
    et_head_samples_t s = {NULL, extract, NULL, labels, 0};
    float loss = -5.0f;
    et_head_reset(h);
    CHECK(et_head_train_epoch(h, &s, 0.1f, &loss) == ET_HEAD_ERR_SAMPLES && loss == -5.0f);
    s.n = ET_HEAD_TRAIN_N + 1u;
    CHECK(et_head_train_epoch(h, &s, 0.1f, &loss) == ET_HEAD_ERR_SAMPLES);
    s.n = ET_HEAD_TRAIN_N;
    labels[ET_HEAD_TRAIN_N - 1] = (uint8_t)ET_HEAD_C;   /* out of range (C <= 255 here) */
    CHECK(ET_HEAD_C > 255 || et_head_fit(h, &s, 1, NULL) == ET_HEAD_ERR_LABEL);
    labels[ET_HEAD_TRAIN_N - 1] = 0;
    calls = 0;
    fail_at = ET_HEAD_TRAIN_N > 1 ? 2 : 1;   /* mid-epoch when there is more than one sample */
    CHECK(et_head_fit(h, &s, 1, NULL) == 7 && h->pending == 0);
    fail_at = 0;
    CHECK(et_head_fit(h, &s, 2, NULL) == 0);
    CHECK(et_head_batch_step(h, NULL, labels, 0, 0.1f) == -1.0f);
}

int main(void) {
    loss_is_stable();
    dequantize_is_exact();
    ties_and_init(&et_head_state);
    shuffle_is_permutation(&et_head_state);
    errors(&et_head_state);
    if (failures) return 1;
    printf("ok\n");
    return 0;
}

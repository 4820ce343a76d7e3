/* Host test driver for et_head.c: trains the generated head on int8
 * features from a file and writes what it got, for pytest to compare with
 * entropi_tiny/head_reference.py.
 *
 * Usage: et_head_driver IN OUT
 *   IN:  u32 n_train, u32 n_test, u32 epochs, u32 mode,
 *        i8 train[n_train][D], u8 train_labels[n_train],
 *        i8 test[n_test][D], u8 test_labels[n_test]
 *   mode 0: et_head_cache_fill, then et_head_fit from et_head_cache
 *   mode 1: et_head_fit with no cache (the extractor runs on every visit)
 *   mode 2: et_head_sgd_step on every training sample in file order
 *   mode 3: et_head_batch_step on consecutive chunks of ET_HEAD_BATCH
 *   OUT: u32 n_losses, f32 losses[n_losses] (per epoch, modes 0-1; per step,
 *        modes 2-3), f32 W[C][D], f32 b[C], u32 correct (top-1 on test),
 *        u32 extractor calls, u32 sizeof(et_head_t)
 *   exit 0 ok, 2 usage or I/O error, 3 training returned an error
 * All numbers little-endian (the host's order).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_head.h"

typedef struct {
    const int8_t *rows;
    uint32_t calls;
} extractor_t;

/* Stands in for the int8 feature extractor: copies the sample's row. */
static int fake_extract(void *ctx, uint32_t index, int8_t *out) {
    extractor_t *e = ctx;
    memcpy(out, e->rows + (size_t)index * ET_HEAD_D, ET_HEAD_D);
    e->calls++;
    return 0;
}

static int read_all(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }
static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    FILE *in = fopen(argv[1], "rb");
    if (!in) return 2;
    uint32_t hdr[4];
    if (!read_all(in, hdr, sizeof hdr)) return 2;
    uint32_t n_train = hdr[0], n_test = hdr[1], epochs = hdr[2], mode = hdr[3];
    if (n_train > ET_HEAD_TRAIN_N || epochs > 1000 || mode > 3) return 2;
    int8_t *train = malloc((size_t)n_train * ET_HEAD_D + 1);
    uint8_t *train_y = malloc(n_train + 1u);
    int8_t *test = malloc((size_t)n_test * ET_HEAD_D + 1);
    uint8_t *test_y = malloc(n_test + 1u);
    float *losses = malloc(sizeof(float) * (epochs + n_train + 1u));
    if (!train || !train_y || !test || !test_y || !losses) return 2;
    if (!read_all(in, train, (size_t)n_train * ET_HEAD_D) || !read_all(in, train_y, n_train) ||
        !read_all(in, test, (size_t)n_test * ET_HEAD_D) || !read_all(in, test_y, n_test))
        return 2;
    fclose(in);

    et_head_t *h = &et_head_state;
    extractor_t ex = {train, 0};
    et_head_reset(h);
    uint32_t n_losses = 0;
    int err = 0;
    if (mode <= 1) {
        et_head_samples_t s = {NULL, fake_extract, &ex, train_y, n_train};
#if ET_HEAD_CACHE
        if (mode == 0) {
            err = et_head_cache_fill(&et_head_cache[0][0], n_train, fake_extract, &ex);
            s.cache = &et_head_cache[0][0];
        }
#else
        if (mode == 0) return 2;
#endif
        if (!err) err = et_head_fit(h, &s, epochs, losses);
        n_losses = epochs;
    } else if (mode == 2) {
        for (uint32_t i = 0; i < n_train; i++) {
            et_head_dequantize(train + (size_t)i * ET_HEAD_D, ET_HEAD_FEAT_ZERO_POINT,
                               ET_HEAD_FEAT_SCALE, h->x, ET_HEAD_D);
            losses[n_losses++] = et_head_sgd_step(h, h->x, train_y[i], h->lr);
        }
    } else {
        for (uint32_t i = 0; i < n_train; i += ET_HEAD_BATCH) {
            uint32_t b = n_train - i < ET_HEAD_BATCH ? n_train - i : ET_HEAD_BATCH;
            losses[n_losses++] = et_head_batch_step(h, train + (size_t)i * ET_HEAD_D,
                                                    train_y + i, b, h->lr);
        }
    }
    if (err) return 3;
    uint32_t correct = et_head_evaluate(h, test, test_y, n_test);

    static float weight[ET_HEAD_C][ET_HEAD_D];   /* decoded from its storage */
    for (uint32_t c = 0; c < ET_HEAD_C; c++)
        for (uint32_t d = 0; d < ET_HEAD_D; d++) weight[c][d] = et_head_weight(h, c, d);
    FILE *out = fopen(argv[2], "wb");
    uint32_t tail[3] = {correct, ex.calls, (uint32_t)sizeof(et_head_t)};
    if (!out || !write_all(out, &n_losses, 4) || !write_all(out, losses, 4u * n_losses) ||
        !write_all(out, weight, sizeof weight) || !write_all(out, h->bias, sizeof h->bias) ||
        !write_all(out, tail, sizeof tail))
        return 2;
    fclose(out);
    free(train); free(train_y); free(test); free(test_y); free(losses);
    return 0;
}

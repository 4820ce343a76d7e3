/* Host test driver for et_sparse_image.c: decodes an image through the
 * per-channel iterators and writes what it found, for pytest to compare
 * with the Python reader.
 *
 * Usage: et_sparse_image_dump IMAGE OUT
 *   exit 0: OUT holds, per tensor: u32 tensor_index, u32 C, u32 K, u32 flags, u32 L,
 *           int8 [C*K] channel-major weights (dead channels zero), i32 folded
 *           bias [L], i32 multiplier [L], i8 shift [L], i8 dead constants [C-L]
 *   exit 10 + status: et_image_open refused the image
 *   exit 3: an iterator reported malformed data; 2: usage or I/O error
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_sparse_image.h"

static int put_u32(FILE *f, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return fwrite(b, 1, 4, f) == 4;
}

static int dump_tensor(FILE *out, const et_tensor_t *t) {
    size_t n = (size_t)t->channels * t->channel_len;
    int8_t *w = calloc(n ? n : 1, 1);
    if (!w) return 2;
    for (uint32_t o = 0, row = 0; o < t->channels; o++) {
        if (!et_channel_live(t, o)) continue;
        et_nz_iter_t it;
        uint32_t pos;
        int8_t v;
        int r;
        /* The dump trusts nothing it decodes: a row past the live count or a position
         * past the channel is malformed data, not an index. */
        if (row >= t->live_channels) { free(w); return 3; }
        et_nz_begin(&it, t, row++);
        while ((r = et_nz_next(&it, &pos, &v)) == 1 && pos < t->channel_len) w[(size_t)o * t->channel_len + pos] = v;
        if (r != 0) { free(w); return 3; }
    }
    uint32_t live = t->live_channels, dead = t->channels - live;
    if ((live && (!t->bias || !t->multiplier || !t->shift)) || (dead && !t->consts)) { free(w); return 3; }
    int ok = put_u32(out, t->tensor_index) && put_u32(out, t->channels) &&
             put_u32(out, t->channel_len) && put_u32(out, t->flags) && put_u32(out, live) &&
             fwrite(w, 1, n, out) == n;
    free(w);
    if (live) ok = ok && fwrite(t->bias, 4, live, out) == live && fwrite(t->multiplier, 4, live, out) == live &&
                   fwrite(t->shift, 1, live, out) == live;
    if (dead) ok = ok && fwrite(t->consts, 1, dead, out) == dead;
    return ok ? 0 : 2;
}

static uint8_t *read_image_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *data = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc(n > 0 ? (size_t)n : 1)) != NULL &&
        fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = n > 0 ? (size_t)n : 0;
    return data;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s IMAGE OUT\n", argv[0]); return 2; }
    size_t size = 0;
    uint8_t *data = read_image_file(argv[1], &size);   /* exactly `size` bytes: ASan sees any overread */
    if (!data) return 2;
    et_image_t img;
    et_status_t s = et_image_open(&img, data, size);
    if (s != ET_OK) { fprintf(stderr, "et_image_open: status %d\n", (int)s); free(data); return 10 + (int)s; }
    FILE *out = fopen(argv[2], "wb");
    if (!out) { free(data); return 2; }
    int rc = 0;
    for (uint32_t i = 0; i < img.tensor_count && rc == 0; i++) {
        et_tensor_t t;
        rc = et_image_tensor(&img, i, &t) == ET_OK ? dump_tensor(out, &t) : 3;
    }
    if (fclose(out) != 0 && rc == 0) rc = 2;
    free(data);
    return rc;
}

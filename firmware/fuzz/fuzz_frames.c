/* Fuzz target: the UART frame parser (firmware/src/et_frames.c).
 *
 * Usage (firmware/fuzz/run_fuzzers.py builds and runs it; `make fuzz`):
 *     clang-14 -fsanitize=fuzzer,address,undefined -DET_FUZZ_LIBFUZZER -Ifirmware/include \
 *         firmware/fuzz/fuzz_frames.c firmware/src/et_frames.c firmware/src/et_crc32.c -o fuzz_frames
 * With replay_main.c instead of libFuzzer it replays files (gcc sanitizer builds).
 *
 * The input is a script, so that mutations land behind both checksums: byte
 * 0-1 pick the parser's buffer capacity (ET_FRAME_OVERHEAD + 0..1023, so
 * oversized lengths are reachable), then records follow, each led by a tag:
 *   tag % 4 == 0  raw: n = next byte, feed the next n bytes as they are
 *   tag % 4 == 1  frame: type, seq, declared length (u16), n = next byte and
 *                 n payload bytes; the target writes sync, header, the header
 *                 CRC-8 and the CRC-32 itself, so the parser sees a frame with
 *                 good checksums whose declared length may differ from its
 *                 payload (the CRC fix-up mode for frames)
 *   tag % 4 == 2  a receive timeout
 *   tag % 4 == 3  the two sync bytes alone: a frame start that the next
 *                 records may or may not complete
 * Every delivered frame is checked against the buffer it must lie in, and its
 * payload is read in full, so AddressSanitizer sees any pointer past it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_frames.h"

typedef struct {
    const uint8_t *buf;
    size_t capacity;
    uint32_t frames, rejects;
} ctx_t;

static char last[96];

const char *et_fuzz_last(void) { return last; }

static void on_frame(void *c, const et_frame *f) {
    ctx_t *x = c;
    if (f->length > x->capacity - ET_FRAME_OVERHEAD || f->payload < x->buf ||
        f->payload + f->length > x->buf + x->capacity)
        abort();                                   /* a frame the buffer cannot hold */
    volatile uint32_t crc = et_crc32_update(0, f->payload, f->length);
    (void)crc;
    x->frames++;
}

static void on_reject(void *c, uint8_t type, uint8_t seq, et_frame_status why) {
    (void)type, (void)seq;
    if (why == ET_FRAME_OK || why > ET_FRAME_BAD_HEADER) abort();
    ((ctx_t *)c)->rejects++;
}

/* A frame with correct checksums for whatever length it declares. */
static void feed_frame(et_frames_parser *p, const uint8_t *f, const uint8_t *payload, size_t len) {
    uint8_t head[7] = {ET_FRAME_SYNC0, ET_FRAME_SYNC1, f[0], f[1], f[2], f[3], 0};
    head[6] = et_crc8(head + 2, 4);
    uint32_t crc = et_crc32_update(et_crc32_update(0, head + 2, 4), payload, len);
    for (int i = 0; i < 7; i++) et_frames_feed(p, head[i]);
    for (size_t i = 0; i < len; i++) et_frames_feed(p, payload[i]);
    for (int b = 0; b < 4; b++) et_frames_feed(p, (uint8_t)(crc >> (8 * b)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const size_t capacity = ET_FRAME_OVERHEAD + ((data[0] | (size_t)data[1] << 8) & 1023u);
    uint8_t *buf = malloc(capacity);              /* exact size: ASan guards both ends */
    if (!buf) abort();
    ctx_t ctx = {buf, capacity, 0, 0};
    et_frames_parser p;
    et_frames_init(&p, buf, capacity, on_frame, on_reject, &ctx);
    size_t i = 2;
    while (i < size) {
        const uint8_t tag = data[i++];
        if (tag % 4 == 0 && i < size) {
            size_t n = data[i++];
            for (; n && i < size; n--) et_frames_feed(&p, data[i++]);
        } else if (tag % 4 == 1 && i + 5 <= size) {
            const uint8_t *f = data + i;
            size_t n = f[4];
            i += 5;
            if (n > size - i) n = size - i;
            feed_frame(&p, f, data + i, n);
            i += n;
        } else if (tag % 4 == 2) {
            et_frames_timeout(&p);
        } else if (tag % 4 == 3) {
            et_frames_feed(&p, ET_FRAME_SYNC0);
            et_frames_feed(&p, ET_FRAME_SYNC1);
        } else {
            break;
        }
        if (p.used > p.capacity) abort();         /* the parser's own invariant */
    }
    et_frames_timeout(&p);
    const et_frames_counts *k = &p.counts;
    if (k->ok != ctx.frames) abort();
    snprintf(last, sizeof last, "frames=%lu rejects=%lu skipped=%lu", (unsigned long)ctx.frames,
             (unsigned long)ctx.rejects, (unsigned long)k->skipped_bytes);
    free(buf);
    return 0;
}

/* Host driver for the frame parser, for tests/test_board_frames.py.
 *
 * Reads commands from stdin and prints what the parser reports, one line per
 * event, so Python can compare it with its own decoder:
 *   'I' u32 capacity   start a new parser with a buffer of `capacity` bytes
 *   'B' u32 n, n bytes feed the bytes one at a time
 *   'T'                a receive timeout
 *   'C'                print the counts
 * Output lines: "F type seq length crc32" for a good frame, "R type seq status"
 * for a refused one, "C ok bad_crc bad_length unknown_type truncated
 * bad_header skipped" for the counts. Build: gcc -std=c11 -Ifirmware/include
 * firmware/src/et_frames.c firmware/src/et_crc32.c firmware/tests/et_frames_fuzz.c
 * (the test adds -fsanitize=address,undefined).
 *
 * The same file is also a coverage-guided fuzz target of the parser:
 *   -DET_FRAMES_LIBFUZZER  LLVMFuzzerTestOneInput, for clang -fsanitize=fuzzer
 *   -DET_FRAMES_REPLAY     the same function with a main() that runs it on each
 *                          file named on the command line (gcc, no libFuzzer)
 * The build command, the seed corpus (real frames from the Python codec) and
 * the run are in one place: entropi_tiny/toolchain/frames_fuzz.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_frames.h"

#if defined(ET_FRAMES_LIBFUZZER) || defined(ET_FRAMES_REPLAY)
/* ---- fuzz target ------------------------------------------------------------
 * An input is a capacity and a list of records. Frames are built here with
 * correct CRCs, then (optionally) mutated and fixed up again, so most frames
 * pass the integrity checks and the fuzzer reaches what lies behind them:
 * the length against the buffer, the type, truncation, re-scanning.
 *   bytes 0-1        capacity = ET_FRAME_OVERHEAD + (u16 % 4096)
 *   record 'F'-ish   op % 4 == 0: type, seq, u16 length, flags, then payload
 *                    bytes from the input (zero-padded); flags:
 *                      bit 0  after encoding, set the length field to the next
 *                             u16 and recompute the header CRC-8 (a lying
 *                             length that passes the header check)
 *                      bit 1  flip one byte (index from the next byte)
 *                      bit 2  after the flip, recompute the CRC-32 (a mutation
 *                             behind the CRC that the CRC does not catch)
 *                      bit 3  cut the frame short (at the next byte's index)
 *                      bit 4  a receive timeout after the frame
 *   op % 4 == 1      n, then n raw bytes (seeds carry real wire frames here)
 *   op % 4 == 2      a receive timeout
 *   op % 4 == 3      a sync pair and a random-length header, CRC-8 fixed up
 * Checked on every input (abort() on a violation, besides ASan/UBSan with a
 * buffer of exactly `capacity` bytes on the heap): each delivered frame fits
 * the buffer, has a known type and a CRC that matches; each rejection has a
 * parser status; every byte fed is in a delivered frame or counted in
 * skipped_bytes, and the buffer is empty after the final timeout. */
typedef struct {
    size_t capacity;
    uint64_t delivered_bytes;
} et_fuzz_ctx;

static void et_fuzz_check(int ok)
{
    if (!ok) {
        abort();
    }
}

static void et_fuzz_on_frame(void *ctx, const et_frame *f)
{
    et_fuzz_ctx *c = ctx;
    et_fuzz_check(f->length <= c->capacity - ET_FRAME_OVERHEAD);
    uint8_t head[4] = {f->type, f->seq, (uint8_t)(f->length & 0xFFu), (uint8_t)(f->length >> 8)};
    uint32_t crc = et_crc32_update(et_crc32_update(0, head, 4), f->payload, f->length);
    const uint8_t *t = f->payload + f->length;
    et_fuzz_check(crc == ((uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24));
    c->delivered_bytes += ET_FRAME_OVERHEAD + f->length;
}

static void et_fuzz_on_reject(void *ctx, uint8_t type, uint8_t seq, et_frame_status why)
{
    (void)ctx;
    (void)type;
    (void)seq;
    et_fuzz_check(why == ET_FRAME_BAD_CRC || why == ET_FRAME_BAD_LENGTH || why == ET_FRAME_UNKNOWN_TYPE ||
                  why == ET_FRAME_TRUNCATED);
}

typedef struct {
    const uint8_t *data;
    size_t size, at;
} et_fuzz_input;

static uint32_t et_fuzz_take(et_fuzz_input *in, size_t bytes)
{
    uint32_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        v |= (uint32_t)(in->at < in->size ? in->data[in->at++] : 0u) << (8u * i);
    }
    return v;
}

static void et_fuzz_feed(et_frames_parser *p, const uint8_t *b, size_t n, uint64_t *fed)
{
    for (size_t i = 0; i < n; i++) {
        et_frames_feed(p, b[i]);
    }
    *fed += n;
}

static void et_fuzz_fix_crc32(uint8_t *w, size_t length)
{
    uint32_t crc = et_crc32_update(et_crc32_update(0, w + 2, 4), w + ET_FRAME_HEADER_BYTES, length);
    for (int i = 0; i < 4; i++) {
        w[ET_FRAME_HEADER_BYTES + length + (size_t)i] = (uint8_t)(crc >> (8 * i));
    }
}

static void et_fuzz_frame(et_frames_parser *p, et_fuzz_input *in, uint8_t *wire, size_t wire_cap, uint64_t *fed)
{
    uint8_t type = (uint8_t)et_fuzz_take(in, 1), seq = (uint8_t)et_fuzz_take(in, 1);
    size_t length = et_fuzz_take(in, 2) % (wire_cap - ET_FRAME_OVERHEAD + 1u);
    uint32_t flags = et_fuzz_take(in, 1);
    static uint8_t scratch[4096u + 64u]; /* the payload, encoded into wire by et_frames_encode */
    for (size_t i = 0; i < length; i++) {
        scratch[i] = (uint8_t)et_fuzz_take(in, 1);
    }
    size_t n = et_frames_encode(wire, wire_cap, type, seq, scratch, length);
    et_fuzz_check(n == ET_FRAME_OVERHEAD + length);
    if (flags & 1u) { /* a lying length behind a correct header CRC */
        uint32_t lie = et_fuzz_take(in, 2);
        wire[4] = (uint8_t)(lie & 0xFFu);
        wire[5] = (uint8_t)(lie >> 8);
        wire[6] = et_crc8(wire + 2, 4);
    }
    if (flags & 2u) {
        size_t i = et_fuzz_take(in, 2) % n;
        wire[i] ^= (uint8_t)(et_fuzz_take(in, 1) | 1u);
        if ((flags & 4u) && i >= ET_FRAME_HEADER_BYTES && i < ET_FRAME_HEADER_BYTES + length) {
            et_fuzz_fix_crc32(wire, length);
        }
    }
    if (flags & 8u) {
        n = et_fuzz_take(in, 2) % n;
    }
    et_fuzz_feed(p, wire, n, fed);
    if (flags & 16u) {
        et_frames_timeout(p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t wire[ET_FRAME_OVERHEAD + 4096u + 64u];
    et_fuzz_input in = {data, size, 0};
    size_t capacity = ET_FRAME_OVERHEAD + et_fuzz_take(&in, 2) % 4096u;
    uint8_t *buf = malloc(capacity); /* exactly capacity bytes: ASan sees any overrun */
    if (buf == NULL) {
        return 0;
    }
    et_fuzz_ctx ctx = {capacity, 0};
    et_frames_parser p;
    et_frames_init(&p, buf, capacity, et_fuzz_on_frame, et_fuzz_on_reject, &ctx);
    uint64_t fed = 0;
    while (in.at < in.size) {
        uint32_t op = et_fuzz_take(&in, 1) % 4u;
        if (op == 0) {
            et_fuzz_frame(&p, &in, wire, sizeof wire, &fed);
        } else if (op == 1) {
            size_t n = et_fuzz_take(&in, 1);
            if (n > in.size - in.at) {
                n = in.size - in.at;
            }
            et_fuzz_feed(&p, in.data + in.at, n, &fed);
            in.at += n;
        } else if (op == 2) {
            et_frames_timeout(&p);
        } else {
            uint8_t h[7] = {ET_FRAME_SYNC0, ET_FRAME_SYNC1, (uint8_t)et_fuzz_take(&in, 1),
                            (uint8_t)et_fuzz_take(&in, 1), (uint8_t)et_fuzz_take(&in, 1),
                            (uint8_t)et_fuzz_take(&in, 1), 0};
            h[6] = et_crc8(h + 2, 4);
            et_fuzz_feed(&p, h, sizeof h, &fed);
        }
    }
    et_frames_timeout(&p);
    et_fuzz_check(p.used == 0);
    et_fuzz_check(fed == ctx.delivered_bytes + p.counts.skipped_bytes);
    free(buf);
    return 0;
}

#ifdef ET_FRAMES_REPLAY
int main(int argc, char **argv)
{
    static uint8_t data[1u << 20];
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (f == NULL) {
            fprintf(stderr, "cannot open %s\n", argv[i]);
            return 2;
        }
        size_t n = fread(data, 1, sizeof data, f);
        fclose(f);
        LLVMFuzzerTestOneInput(data, n);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
#endif
#else
static uint8_t et_buf[ET_FRAME_OVERHEAD + 65535u];

static void et_on_frame(void *ctx, const et_frame *f)
{
    (void)ctx;
    printf("F %u %u %u %08lx\n", f->type, f->seq, f->length,
           (unsigned long)et_crc32_update(0, f->payload, f->length));
}

static void et_on_reject(void *ctx, uint8_t type, uint8_t seq, et_frame_status why)
{
    (void)ctx;
    printf("R %u %u %d\n", type, seq, (int)why);
}

static int et_read_u32(uint32_t *v)
{
    uint8_t b[4];
    if (fread(b, 1, 4, stdin) != 4) {
        return 0;
    }
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

int main(void)
{
    et_frames_parser p;
    et_frames_init(&p, et_buf, sizeof et_buf, et_on_frame, et_on_reject, NULL);
    int cmd;
    while ((cmd = getchar()) != EOF) {
        uint32_t n;
        if (cmd == 'I') {
            if (!et_read_u32(&n) || n < ET_FRAME_OVERHEAD || n > sizeof et_buf) {
                return 2;
            }
            et_frames_init(&p, et_buf, n, et_on_frame, et_on_reject, NULL);
        } else if (cmd == 'B') {
            if (!et_read_u32(&n)) {
                return 2;
            }
            for (uint32_t i = 0; i < n; i++) {
                int c = getchar();
                if (c == EOF) {
                    return 2;
                }
                et_frames_feed(&p, (uint8_t)c);
            }
        } else if (cmd == 'T') {
            et_frames_timeout(&p);
        } else if (cmd == 'C') {
            const et_frames_counts *k = &p.counts;
            printf("C %lu %lu %lu %lu %lu %lu %lu\n", (unsigned long)k->ok, (unsigned long)k->bad_crc,
                   (unsigned long)k->bad_length, (unsigned long)k->unknown_type, (unsigned long)k->truncated,
                   (unsigned long)k->bad_header, (unsigned long)k->skipped_bytes);
        } else {
            return 2;
        }
    }
    return 0;
}
#endif

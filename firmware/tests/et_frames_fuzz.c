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
 * firmware/src/et_frames.c firmware/tests/et_frames_fuzz.c (the test adds
 * -fsanitize=address,undefined).
 */
#include <stdio.h>
#include <stdlib.h>

#include "et_frames.h"

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

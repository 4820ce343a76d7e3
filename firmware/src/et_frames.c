/* UART frame parser and encoder; the format is in et_frames.h and
 * docs/uart_frames.md.
 *
 * The parser keeps the current candidate frame at the start of the caller's
 * buffer, and keeps one invariant: a non-empty buffer starts with SYNC0.
 * After each byte it asks check() what the buffered bytes are: not yet
 * decidable, a good frame, or a refused candidate. A good frame is delivered
 * and removed; a refused candidate loses only its first byte, and the bytes
 * behind it are examined again from the next SYNC0, because a good frame may
 * start inside what looked like the refused one. Every byte is thus either
 * part of a delivered frame or counted once in skipped_bytes.
 */
#include "et_frames.h"

#include <string.h>

uint8_t et_crc8(const uint8_t *data, size_t n)
{
    uint8_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++) {
            crc = (uint8_t)((crc & 0x80u) ? ((unsigned)crc << 1) ^ 0x07u : (unsigned)crc << 1);
        }
    }
    return crc;
}

static uint32_t et_read_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int et_frame_type_known(uint8_t type)
{
    switch (type) {
    case ET_FRAME_SAMPLE:
    case ET_FRAME_END:
    case ET_FRAME_PING:
    case ET_FRAME_INFO:
    case ET_FRAME_EVAL:
    case ET_FRAME_PREDICT:
    case ET_FRAME_RESET_HEAD:
    case ET_FRAME_ACK:
        return 1;
    default:
        return 0;
    }
}

void et_frames_init(et_frames_parser *p, uint8_t *buf, size_t capacity, et_frames_on_frame on_frame,
                    et_frames_on_reject on_reject, void *ctx)
{
    memset(p, 0, sizeof *p);
    p->buf = buf;
    p->capacity = capacity;
    p->on_frame = on_frame;
    p->on_reject = on_reject;
    p->ctx = ctx;
}

int et_frames_pending(const et_frames_parser *p)
{
    return p->used > 0;
}

/* What check() found; ET_CHECK_NOISE is a SYNC0 not followed by SYNC1. */
enum { ET_CHECK_MORE = -1, ET_CHECK_NOISE = -2 };

static size_t et_frame_length(const et_frames_parser *p)
{
    return (size_t)p->buf[4] | (size_t)p->buf[5] << 8;
}

/* Returns ET_CHECK_MORE, ET_CHECK_NOISE, or an et_frame_status. */
static int et_check(const et_frames_parser *p)
{
    const uint8_t *b = p->buf;
    if (p->used < 2) {
        return ET_CHECK_MORE;
    }
    if (b[1] != ET_FRAME_SYNC1) {
        return ET_CHECK_NOISE;
    }
    if (p->used < ET_FRAME_HEADER_BYTES) {
        return ET_CHECK_MORE;
    }
    if (et_crc8(b + 2, 4) != b[6]) {
        return ET_FRAME_BAD_HEADER;
    }
    size_t length = et_frame_length(p);
    if (length > p->capacity - ET_FRAME_OVERHEAD) {
        return ET_FRAME_BAD_LENGTH;
    }
    size_t total = ET_FRAME_OVERHEAD + length;
    if (p->used < total) {
        return ET_CHECK_MORE;
    }
    uint32_t crc = et_crc32_update(0, b + 2, 4);
    crc = et_crc32_update(crc, b + ET_FRAME_HEADER_BYTES, length);
    if (crc != et_read_le32(b + ET_FRAME_HEADER_BYTES + length)) {
        return ET_FRAME_BAD_CRC;
    }
    if (!et_frame_type_known(b[2])) {
        return ET_FRAME_UNKNOWN_TYPE;
    }
    return ET_FRAME_OK;
}

/* Remove n bytes from the front, then any bytes before the next SYNC0. */
static void et_drop(et_frames_parser *p, size_t n, int skipped)
{
    while (n < p->used && p->buf[n] != ET_FRAME_SYNC0) {
        n++;
        skipped++;
    }
    if (n > p->used) {
        n = p->used;
    }
    memmove(p->buf, p->buf + n, p->used - n);
    p->used -= n;
    p->counts.skipped_bytes += (uint32_t)skipped;
}

static void et_count(et_frames_parser *p, int status)
{
    switch (status) {
    case ET_FRAME_BAD_CRC: p->counts.bad_crc++; break;
    case ET_FRAME_BAD_LENGTH: p->counts.bad_length++; break;
    case ET_FRAME_UNKNOWN_TYPE: p->counts.unknown_type++; break;
    case ET_FRAME_TRUNCATED: p->counts.truncated++; break;
    case ET_FRAME_BAD_HEADER: p->counts.bad_header++; break;
    default: break;
    }
    if (status != ET_FRAME_BAD_HEADER && p->on_reject != NULL) {
        p->on_reject(p->ctx, p->buf[2], p->buf[3], (et_frame_status)status);
    }
}

/* Decide about the buffered bytes for as long as they allow a decision. */
static void et_scan(et_frames_parser *p)
{
    for (;;) {
        int status = et_check(p);
        if (status == ET_CHECK_MORE) {
            return;
        }
        if (status == ET_FRAME_OK) {
            size_t length = et_frame_length(p);
            p->counts.ok++;
            if (p->on_frame != NULL) {
                et_frame frame = {p->buf[2], p->buf[3], (uint16_t)length, p->buf + ET_FRAME_HEADER_BYTES};
                p->on_frame(p->ctx, &frame);
            }
            et_drop(p, ET_FRAME_OVERHEAD + length, 0);
        } else {
            if (status != ET_CHECK_NOISE) {
                et_count(p, status);
            }
            et_drop(p, 1, 1);
        }
    }
}

void et_frames_feed(et_frames_parser *p, uint8_t byte)
{
    if (p->used == 0 && byte != ET_FRAME_SYNC0) {
        p->counts.skipped_bytes++;
        return;
    }
    p->buf[p->used++] = byte;
    et_scan(p);
}

void et_frames_timeout(et_frames_parser *p)
{
    while (p->used > 0) {
        if (p->used >= 2) { /* a sync pair at least: a frame was begun */
            p->counts.truncated++;
            if (p->used >= ET_FRAME_HEADER_BYTES && p->on_reject != NULL) {
                p->on_reject(p->ctx, p->buf[2], p->buf[3], ET_FRAME_TRUNCATED);
            }
        }
        et_drop(p, 1, 1);
        et_scan(p);
    }
}

size_t et_frames_encode(uint8_t *out, size_t out_size, uint8_t type, uint8_t seq, const uint8_t *payload,
                        size_t length)
{
    if (length > 0xFFFFu || out_size < ET_FRAME_OVERHEAD + length) {
        return 0;
    }
    out[0] = ET_FRAME_SYNC0;
    out[1] = ET_FRAME_SYNC1;
    out[2] = type;
    out[3] = seq;
    out[4] = (uint8_t)(length & 0xFFu);
    out[5] = (uint8_t)(length >> 8);
    out[6] = et_crc8(out + 2, 4);
    if (length > 0) {
        memcpy(out + ET_FRAME_HEADER_BYTES, payload, length);
    }
    uint32_t crc = et_crc32_update(0, out + 2, 4);
    crc = et_crc32_update(crc, payload, length);
    for (int i = 0; i < 4; i++) {
        out[ET_FRAME_HEADER_BYTES + length + (size_t)i] = (uint8_t)(crc >> (8 * i));
    }
    return ET_FRAME_OVERHEAD + length;
}

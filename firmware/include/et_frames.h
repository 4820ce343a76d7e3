/* UART frames: a framed, checksummed message format for streaming training
 * samples from the host to the device, and acknowledgements back.
 * docs/uart_frames.md is the specification; entropi_tiny/toolchain/frames.py
 * is the host side and mirrors this parser decision for decision.
 *
 *   offset  size  field
 *   0       2     sync: 0xEB 0x90
 *   2       1     type
 *   3       1     sequence number (wraps at 256)
 *   4       2     payload length n, little-endian
 *   6       1     header check: CRC-8 (poly 0x07, init 0) of bytes 2..5
 *   7       n     payload
 *   7+n     4     CRC-32 (IEEE 802.3, as zlib.crc32) of bytes 2..5 and the
 *                 payload, little-endian
 *
 * The parser takes one byte at a time into a buffer the caller owns (no
 * malloc), so the largest payload is capacity - ET_FRAME_OVERHEAD. When a
 * candidate frame fails a check it drops the candidate's first byte and
 * re-scans the bytes it had buffered, so a good frame hiding behind garbage
 * or behind a truncated frame is still found.
 *
 * Usage:
 *   static uint8_t buf[ET_FRAME_OVERHEAD + 512];
 *   et_frames_parser p;
 *   et_frames_init(&p, buf, sizeof buf, on_frame, on_reject, ctx);
 *   for each byte b received: et_frames_feed(&p, b);
 *   when no byte came for a while: et_frames_timeout(&p);
 */
#ifndef ET_FRAMES_H
#define ET_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "et_crc32.h" /* et_crc32_update: the frames' CRC-32 */

#define ET_FRAME_SYNC0 0xEBu
#define ET_FRAME_SYNC1 0x90u
#define ET_FRAME_HEADER_BYTES 7u
#define ET_FRAME_CRC_BYTES 4u
#define ET_FRAME_OVERHEAD (ET_FRAME_HEADER_BYTES + ET_FRAME_CRC_BYTES)

/* Version of the protocol (docs/uart_frames.md), reported in the INFO reply.
 * 1: SAMPLE, END, PING, ACK with one status byte.
 * 2: + INFO, EVAL, PREDICT, RESET_HEAD; an ACK may carry a reply after its
 *    status byte; statuses bad_label and bad_size; retransmitted SAMPLE and
 *    RESET_HEAD frames are not executed twice. */
#define ET_FRAMES_PROTOCOL_VERSION 2u

/* Frame types. The parser accepts only these; a frame that passes both
 * checks but has another type is counted as unknown_type and rejected. */
typedef enum {
    ET_FRAME_SAMPLE = 0x01,     /* host -> device: one training sample (app-defined payload) */
    ET_FRAME_END = 0x02,        /* host -> device: end of the session, empty payload */
    ET_FRAME_PING = 0x03,       /* host -> device: acked, nothing else */
    ET_FRAME_INFO = 0x10,       /* host -> device: empty; reply: firmware, model, budgets */
    ET_FRAME_EVAL = 0x11,       /* host -> device: empty; reply: accuracy on the test set */
    ET_FRAME_PREDICT = 0x12,    /* host -> device: one image; reply: class and scores */
    ET_FRAME_RESET_HEAD = 0x13, /* host -> device: empty; the head back to its initial state */
    ET_FRAME_ACK = 0x80,        /* device -> host: one et_frame_status byte, then the reply */
} et_frame_type;

/* Why a frame was refused; also the status byte of an ACK frame. */
typedef enum {
    ET_FRAME_OK = 0,
    ET_FRAME_BAD_CRC = 1,      /* the CRC-32 does not match */
    ET_FRAME_BAD_LENGTH = 2,   /* the length exceeds the buffer */
    ET_FRAME_UNKNOWN_TYPE = 3, /* good frame of a type not listed above */
    ET_FRAME_TRUNCATED = 4,    /* the stream stopped inside the frame */
    ET_FRAME_BAD_HEADER = 5,   /* header CRC-8 mismatch (never acked: seq unknown) */
    /* Set by the application for a good frame whose payload it refuses: */
    ET_FRAME_BAD_LABEL = 6,    /* a SAMPLE's label is not a class of the head */
    ET_FRAME_BAD_SIZE = 7,     /* the payload's size is not the one its type needs */
} et_frame_status;

typedef struct {
    uint8_t type;
    uint8_t seq;
    uint16_t length;
    const uint8_t *payload; /* valid only during the callback */
} et_frame;

typedef struct {
    uint32_t ok;
    uint32_t bad_crc;
    uint32_t bad_length;
    uint32_t unknown_type;
    uint32_t truncated;
    uint32_t bad_header;
    uint32_t skipped_bytes; /* bytes that turned out to belong to no good frame */
} et_frames_counts;

/* Called for each good frame. */
typedef void (*et_frames_on_frame)(void *ctx, const et_frame *frame);
/* Called for each refused frame whose header was intact (so type and seq are
 * trustworthy): bad CRC, bad length, unknown type, truncated. */
typedef void (*et_frames_on_reject)(void *ctx, uint8_t type, uint8_t seq, et_frame_status why);

typedef struct {
    uint8_t *buf;
    size_t capacity;
    size_t used;
    et_frames_on_frame on_frame;
    et_frames_on_reject on_reject;
    void *ctx;
    et_frames_counts counts;
} et_frames_parser;

/* capacity must be at least ET_FRAME_OVERHEAD; callbacks may be NULL. */
void et_frames_init(et_frames_parser *p, uint8_t *buf, size_t capacity, et_frames_on_frame on_frame,
                    et_frames_on_reject on_reject, void *ctx);
void et_frames_feed(et_frames_parser *p, uint8_t byte);
/* The byte stream paused: whatever is buffered can never complete. */
void et_frames_timeout(et_frames_parser *p);
/* True while a frame is partly received (worth waiting for with a timeout). */
int et_frames_pending(const et_frames_parser *p);

/* Encode a frame into out (capacity out_size); returns its length, or 0 if
 * it does not fit or the payload is longer than 65535 bytes. */
size_t et_frames_encode(uint8_t *out, size_t out_size, uint8_t type, uint8_t seq, const uint8_t *payload,
                        size_t length);

uint8_t et_crc8(const uint8_t *data, size_t n);

#endif /* ET_FRAMES_H */

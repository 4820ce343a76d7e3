/* entropi-tiny firmware: fine-tune the linear head on the device.
 *
 * Boot, then:
 *   1. run the int8 feature extractor (the frozen, pruned encoder) once over
 *      every embedded training and test sample, caching the int8 features and
 *      printing a CRC-32 of each (the host compares them with TFLM);
 *   2. evaluate the freshly initialised head on the test features;
 *   3. train the head with SGD for ET_HEAD_EPOCHS epochs over the cached
 *      training features, evaluating after every epoch;
 *   4. with ET_APP_STREAM, serve the host's requests over the console in
 *      checksummed frames (docs/uart_frames.md): train on streamed samples,
 *      predict, evaluate, describe itself, reset the head; until an END frame;
 *   5. print one machine-readable report line and exit (twin) or idle (board).
 *
 * Every line meant for the host starts with "ET_" and a keyword; the values
 * are plain numbers. Instruction (twin) or cycle (board) counts come from
 * et_counter_read() around each measured piece of work.
 */
#include <string.h>

#include "et_board.h"
#include "et_frames.h"
#include "et_head.h"
#include "et_model.h"
#include "et_runtime.h"
#include "et_samples.h"

#if ET_HEAD_TRAIN_N != ET_SAMPLES_TRAIN
#error "the head's cache must have one row per embedded training sample"
#endif

static uint8_t et_app_arena[ET_MODEL_ARENA_SIZE] __attribute__((aligned(16)));
static int8_t et_app_test_features[ET_SAMPLES_TEST][ET_HEAD_D];
static et_runtime_t et_app_rt;

/* Counter totals of the measured work, reported at the end. */
static uint64_t et_app_infer_total, et_app_infer_min = UINT64_MAX, et_app_infer_max;
static uint32_t et_app_infer_count;
static uint64_t et_app_train_total;

static void et_app_fail(const char *what, int status) {
    et_printf("ET_ERROR %s %d\n", what, status);
    et_board_exit(3);
}

/* One extractor pass: int8 image in, int8 features out, work counted. */
static int et_app_extract(const int8_t *image, int8_t *features) {
    memcpy(et_runtime_input(&et_app_rt), image, ET_SAMPLE_BYTES);
    uint64_t t0 = et_counter_read();
    int status = et_runtime_invoke(&et_app_rt);
    uint64_t dt = et_counter_read() - t0;
    if (status != ET_OK) return status;
    et_app_infer_total += dt;
    et_app_infer_count++;
    if (dt < et_app_infer_min) et_app_infer_min = dt;
    if (dt > et_app_infer_max) et_app_infer_max = dt;
    memcpy(features, et_runtime_output(&et_app_rt), ET_HEAD_D);
    return ET_OK;
}

static void et_app_extract_set(const char *name, const int8_t (*images)[ET_SAMPLE_BYTES],
                               uint32_t n, int8_t (*features)[ET_HEAD_D]) {
    for (uint32_t i = 0; i < n; i++) {
        int status = et_app_extract(images[i], features[i]);
        if (status != ET_OK) et_app_fail("extract", status);
        et_printf("ET_FEAT %s %u %x\n", name, (unsigned)i,
                  (unsigned)et_crc32_update(0, (const uint8_t *)features[i], ET_HEAD_D));
    }
}

/* Test accuracy in basis points (1/100 of a percent), integer-only output. */
static uint32_t et_app_accuracy_bp(void) {
    uint32_t correct = et_head_evaluate(&et_head_state, &et_app_test_features[0][0],
                                        et_samples_test_labels, ET_SAMPLES_TEST);
    return (correct * 10000u + ET_SAMPLES_TEST / 2u) / ET_SAMPLES_TEST;
}

#ifdef ET_APP_STREAM
/* Serving: after the embedded run, the device answers frames from the host
 * (docs/uart_frames.md, protocol version ET_FRAMES_PROTOCOL_VERSION) for as
 * long as it runs; only an END frame stops it. Every good frame is answered
 * with an ACK of its sequence number whose payload is a status byte followed,
 * for a good request, by its reply (little-endian fields):
 *   SAMPLE  label u8 + image  -> loss f32, streamed u32, extract u64, step u64
 *   PREDICT image             -> class u8, logits f32[C], extract u64, head u64
 *   EVAL    (empty)           -> correct u32, n u32, counter u64
 *   INFO    (empty)           -> see et_app_reply_info
 *   RESET_HEAD, PING, END     -> nothing
 * Counter values are in et_counter_unit() (cycles on the board, instructions
 * on the twin). A SAMPLE or RESET_HEAD frame that repeats the type and
 * sequence number of the last frame executed (its ACK was lost and the host
 * sent it again) is not executed again: the ACK it got is sent again. */
#define ET_APP_FRAME_CAP (ET_FRAME_OVERHEAD + 1u + ET_SAMPLE_BYTES)
#define ET_APP_REPLY_CAP (128u + 4u * ET_HEAD_C)
#define ET_APP_NAME_BYTES 16u
static uint8_t et_app_frame_buf[ET_APP_FRAME_CAP];
static uint8_t et_app_wire[ET_FRAME_OVERHEAD + ET_APP_REPLY_CAP];
static int8_t et_app_stream_features[ET_HEAD_D];
static float et_app_stream_x[ET_HEAD_D];
static float et_app_logits[ET_HEAD_C];

typedef struct {
    uint32_t streamed;      /* samples trained on since boot or the last RESET_HEAD */
    uint32_t bad_payload;   /* good frames whose payload was refused */
    uint8_t head_origin;    /* 1: the head includes the boot training; 0: reset since */
    int done;
    int have_last;          /* the last executed SAMPLE / RESET_HEAD and its reply */
    uint8_t last_type, last_seq;
    uint8_t last_reply[32];
    size_t last_len;
    uint32_t image_crc;     /* CRC-32 of the flashed image, computed at the first INFO */
    uint32_t image_bytes;
} et_app_stream_t;

/* A reply under construction: status byte first, then little-endian fields. */
typedef struct { uint8_t b[ET_APP_REPLY_CAP]; size_t n; } et_app_reply_t;

static void et_app_put(et_app_reply_t *r, uint64_t v, size_t bytes) {
    for (size_t i = 0; i < bytes; i++) r->b[r->n++] = (uint8_t)(v >> (8u * i));
}
static void et_app_put_f32(et_app_reply_t *r, float v) { et_app_put(r, et_float_bits(v), 4); }
static void et_app_put_name(et_app_reply_t *r, const char *name) {
    size_t len = strlen(name);
    for (size_t i = 0; i < ET_APP_NAME_BYTES; i++) r->b[r->n++] = i < len ? (uint8_t)name[i] : 0u;
}

static void et_app_send(uint8_t seq, const uint8_t *payload, size_t n) {
    size_t len = et_frames_encode(et_app_wire, sizeof et_app_wire, ET_FRAME_ACK, seq, payload, n);
    et_console_write((const char *)et_app_wire, len);
}

static void et_app_ack(uint8_t seq, uint8_t status) { et_app_send(seq, &status, 1); }

/* The image as flashed: from the vector table at the start of flash to the
 * end of .data's load image, the bytes of firmware.bin (objcopy -O binary).
 * Its CRC-32 is the firmware's build hash; the host computes it from the
 * run folder's firmware.bin. */
extern const uint8_t et_vectors[]; /* startup.c; declared as bytes here */
extern const uint8_t et_data_load[], et_data_start[], et_data_end[];

static void et_app_image_crc(et_app_stream_t *s) {
    if (s->image_bytes != 0) return;
    const uint8_t *start = et_vectors;
    __asm volatile("" : "+r"(start)); /* the twin's flash starts at address 0 */
    size_t data = (size_t)(et_data_end - et_data_start);
    s->image_bytes = (uint32_t)((size_t)(et_data_load - start) + data);
    s->image_crc = et_crc32_update(0, start, s->image_bytes);
}

static void et_app_reply_info(et_app_stream_t *s, et_app_reply_t *r) {
    et_app_image_crc(s);
    uint32_t steps = ET_HEAD_EPOCHS * ((ET_SAMPLES_TRAIN + ET_HEAD_BATCH - 1u) / ET_HEAD_BATCH);
    et_app_put(r, ET_FRAMES_PROTOCOL_VERSION, 1);
    et_app_put_name(r, et_board_name());
    et_app_put_name(r, et_counter_unit());
    et_app_put(r, s->image_crc, 4);
    et_app_put(r, s->image_bytes, 4);
    et_app_put(r, ET_SAMPLE_BYTES, 4);
    et_app_put(r, ET_HEAD_D, 2);
    et_app_put(r, ET_HEAD_C, 2);
    et_app_put(r, ET_SAMPLES_TRAIN, 2);
    et_app_put(r, ET_SAMPLES_TEST, 2);
    et_app_put(r, ET_MODEL_ARENA_SIZE, 4);
    et_app_put(r, sizeof et_head_state, 4);
    et_app_put(r, et_stack_size(), 4);
    et_app_put(r, et_stack_high_water(), 4);
    et_app_put(r, ET_FLASH_BUDGET_BYTES, 4);
    et_app_put(r, ET_RAM_BUDGET_BYTES, 4);
    et_app_put(r, s->streamed, 4);
    et_app_put(r, s->head_origin, 1);
    et_app_put(r, et_app_infer_count, 4);
    et_app_put(r, et_app_infer_total, 8);
    et_app_put(r, et_app_train_total, 8);
    et_app_put(r, steps, 4);
}

/* Extract one image into et_app_stream_x; returns the counter units spent. */
static uint64_t et_app_features_of(const uint8_t *image) {
    uint64_t t0 = et_counter_read();
    int st = et_app_extract((const int8_t *)image, et_app_stream_features);
    if (st != ET_OK) et_app_fail("extract", st);
    et_head_dequantize(et_app_stream_features, ET_HEAD_FEAT_ZERO_POINT, ET_HEAD_FEAT_SCALE,
                       et_app_stream_x, ET_HEAD_D);
    return et_counter_read() - t0;
}

static uint8_t et_app_sample(et_app_stream_t *s, const et_frame *f, et_app_reply_t *r) {
    if (f->length != 1u + ET_SAMPLE_BYTES) return ET_FRAME_BAD_SIZE;
    if (f->payload[0] >= ET_HEAD_C) return ET_FRAME_BAD_LABEL;
    uint64_t extract = et_app_features_of(f->payload + 1);
    uint64_t t0 = et_counter_read();
    float loss = et_head_sgd_step(&et_head_state, et_app_stream_x, f->payload[0], ET_HEAD_LR);
    uint64_t step = et_counter_read() - t0;
    s->streamed++;
    et_app_put_f32(r, loss);
    et_app_put(r, s->streamed, 4);
    et_app_put(r, extract, 8);
    et_app_put(r, step, 8);
    return ET_FRAME_OK;
}

static uint8_t et_app_predict(const et_frame *f, et_app_reply_t *r) {
    if (f->length != ET_SAMPLE_BYTES) return ET_FRAME_BAD_SIZE;
    uint64_t extract = et_app_features_of(f->payload);
    uint64_t t0 = et_counter_read();
    et_head_forward(&et_head_state, et_app_stream_x, et_app_logits);
    uint32_t best = 0; /* the first maximum, as et_head_predict */
    for (uint32_t c = 1; c < ET_HEAD_C; c++)
        if (et_app_logits[c] > et_app_logits[best]) best = c;
    uint64_t head = et_counter_read() - t0;
    et_app_put(r, best, 1);
    for (uint32_t c = 0; c < ET_HEAD_C; c++) et_app_put_f32(r, et_app_logits[c]);
    et_app_put(r, extract, 8);
    et_app_put(r, head, 8);
    return ET_FRAME_OK;
}

static uint8_t et_app_eval(const et_frame *f, et_app_reply_t *r) {
    if (f->length != 0) return ET_FRAME_BAD_SIZE;
    uint64_t t0 = et_counter_read();
    uint32_t correct = et_head_evaluate(&et_head_state, &et_app_test_features[0][0],
                                        et_samples_test_labels, ET_SAMPLES_TEST);
    uint64_t dt = et_counter_read() - t0;
    et_app_put(r, correct, 4);
    et_app_put(r, ET_SAMPLES_TEST, 4);
    et_app_put(r, dt, 8);
    return ET_FRAME_OK;
}

/* Execute one good frame; the reply's first byte becomes its status. */
static uint8_t et_app_execute(et_app_stream_t *s, const et_frame *f, et_app_reply_t *r) {
    switch (f->type) {
    case ET_FRAME_SAMPLE: return et_app_sample(s, f, r);
    case ET_FRAME_PREDICT: return et_app_predict(f, r);
    case ET_FRAME_EVAL: return et_app_eval(f, r);
    case ET_FRAME_INFO:
        if (f->length != 0) return ET_FRAME_BAD_SIZE;
        et_app_reply_info(s, r);
        return ET_FRAME_OK;
    case ET_FRAME_RESET_HEAD:
        if (f->length != 0) return ET_FRAME_BAD_SIZE;
        et_head_reset(&et_head_state);
        s->streamed = 0;
        s->head_origin = 0;
        return ET_FRAME_OK;
    case ET_FRAME_END: s->done = 1; return ET_FRAME_OK;
    default: return ET_FRAME_OK; /* PING, and an ACK the host echoes */
    }
}

static void et_app_on_frame(void *ctx, const et_frame *f) {
    et_app_stream_t *s = ctx;
    int remembered = f->type == ET_FRAME_SAMPLE || f->type == ET_FRAME_RESET_HEAD;
    if (remembered && s->have_last && s->last_type == f->type && s->last_seq == f->seq) {
        et_app_send(f->seq, s->last_reply, s->last_len); /* a retransmission */
        return;
    }
    static et_app_reply_t r;
    r.n = 1;
    uint8_t status = et_app_execute(s, f, &r);
    if (status != ET_FRAME_OK) {
        s->bad_payload++;
        r.n = 1;
    }
    r.b[0] = status;
    s->have_last = remembered && status == ET_FRAME_OK && r.n <= sizeof s->last_reply;
    if (s->have_last) {
        s->last_type = f->type;
        s->last_seq = f->seq;
        s->last_len = r.n;
        memcpy(s->last_reply, r.b, r.n);
    }
    et_app_send(f->seq, r.b, r.n);
}

static void et_app_on_reject(void *ctx, uint8_t type, uint8_t seq, et_frame_status why) {
    (void)ctx;
    (void)type;
    et_app_ack(seq, (uint8_t)why);
}

static void et_app_stream(void) {
    static et_app_stream_t s;
    s.head_origin = 1;
    et_frames_parser p;
    et_frames_init(&p, et_app_frame_buf, sizeof et_app_frame_buf, et_app_on_frame, et_app_on_reject, &s);
    et_printf("ET_STREAM ready %u protocol=%u\n", (unsigned)(1u + ET_SAMPLE_BYTES),
              (unsigned)ET_FRAMES_PROTOCOL_VERSION);
    while (!s.done) { /* a quiet host is waited for: only END stops serving */
        int c = et_console_getc_timeout(ET_APP_STREAM_TIMEOUT);
        if (c >= 0) {
            et_frames_feed(&p, (uint8_t)c);
        } else if (et_frames_pending(&p)) {
            et_frames_timeout(&p); /* the host stopped inside a frame */
        }
    }
    et_frames_counts k = p.counts;
    et_printf("ET_STREAM_DONE trained=%u ok=%u bad_crc=%u bad_length=%u unknown_type=%u "
              "truncated=%u bad_header=%u skipped=%u bad_payload=%u acc_bp=%u\n",
              (unsigned)s.streamed, (unsigned)k.ok, (unsigned)k.bad_crc, (unsigned)k.bad_length,
              (unsigned)k.unknown_type, (unsigned)k.truncated, (unsigned)k.bad_header,
              (unsigned)k.skipped_bytes, (unsigned)s.bad_payload, (unsigned)et_app_accuracy_bp());
}
#endif

/* BEGIN op profile */
/* One more inference (of the first training sample, not counted in the
 * totals) with the runtime's op hook set: the counter is read around every
 * op and one "ET_OP index count" line per op is printed. The host
 * (entropi_tiny/toolchain/op_profile.py) joins them with the generated
 * schedule's description (kind, shapes, non-zero MACs). */
static uint64_t et_app_op_t0, et_app_op_counts[ET_MODEL_OP_COUNT];

static void et_app_op_hook(void *ctx, uint32_t op, int end) {
    (void)ctx;
    uint64_t now = et_counter_read();
    if (!end) et_app_op_t0 = now;
    else if (op < ET_MODEL_OP_COUNT) et_app_op_counts[op] += now - et_app_op_t0;
}

static void et_app_op_profile(void) {
    memcpy(et_runtime_input(&et_app_rt), et_samples_train_images[0], ET_SAMPLE_BYTES);
    et_app_rt.op_hook = et_app_op_hook;
    int status = et_runtime_invoke(&et_app_rt);
    et_app_rt.op_hook = 0;
    if (status != ET_OK) et_app_fail("op_profile", status);
    for (uint32_t i = 0; i < ET_MODEL_OP_COUNT; i++)
        et_printf("ET_OP %u %llu\n", (unsigned)i, (unsigned long long)et_app_op_counts[i]);
}
/* END op profile */

int main(void) {
    et_board_init();
    et_printf("ET_BOOT board=%s unit=%s train=%u test=%u features=%u classes=%u\n", et_board_name(),
              et_counter_unit(), (unsigned)ET_SAMPLES_TRAIN, (unsigned)ET_SAMPLES_TEST,
              (unsigned)ET_HEAD_D, (unsigned)ET_HEAD_C);
    int status = et_runtime_init(&et_app_rt, &et_model, et_app_arena, sizeof et_app_arena);
    if (status != ET_OK) et_app_fail("runtime_init", status);

    et_app_extract_set("train", et_samples_train_images, ET_SAMPLES_TRAIN, et_head_cache);
    et_app_extract_set("test", et_samples_test_images, ET_SAMPLES_TEST, et_app_test_features);

    /* BEGIN inference only: fixed inputs, no target data (ET_SAMPLES_INFERENCE_ONLY in the
     * generated et_samples.h); report the inference counts and stop before any training. */
#if ET_SAMPLES_INFERENCE_ONLY
    et_printf("ET_REPORT acc_before_bp=0 acc_after_bp=0 infer_count=%u infer_total=%llu "
              "infer_min=%llu infer_max=%llu train_total=0 sgd_steps=0 samples_seen=0 "
              "stack_high_water=%u stack_size=%u arena=%u head_state=0\n",
              (unsigned)et_app_infer_count, (unsigned long long)et_app_infer_total,
              (unsigned long long)et_app_infer_min, (unsigned long long)et_app_infer_max,
              (unsigned)et_stack_high_water(), (unsigned)et_stack_size(),
              (unsigned)ET_MODEL_ARENA_SIZE);
    et_board_exit(0);
#endif
    /* END inference only */

    et_head_reset(&et_head_state);
    uint32_t before_bp = et_app_accuracy_bp();
    et_printf("ET_EPOCH 0 loss=- acc_bp=%u\n", (unsigned)before_bp);

    et_head_samples_t samples = {&et_head_cache[0][0], 0, 0, et_samples_train_labels, ET_SAMPLES_TRAIN};
    float lr = ET_HEAD_LR;
    for (uint32_t epoch = 1; epoch <= ET_HEAD_EPOCHS; epoch++) {
        float loss = 0.0f;
        uint64_t t0 = et_counter_read();
        status = et_head_train_epoch(&et_head_state, &samples, lr, &loss);
        et_app_train_total += et_counter_read() - t0;
        if (status != 0) et_app_fail("train_epoch", status);
        lr *= ET_HEAD_LR_DECAY;
        et_printf("ET_EPOCH %u loss=%.5f acc_bp=%u\n", (unsigned)epoch, ET_F(loss),
                  (unsigned)et_app_accuracy_bp());
    }
    uint32_t after_bp = et_app_accuracy_bp();
    /* BEGIN op profile */
    et_app_op_profile();
    /* END op profile */
#ifdef ET_APP_STREAM
    et_app_stream();
#endif
    uint32_t steps = ET_HEAD_EPOCHS * ((ET_SAMPLES_TRAIN + ET_HEAD_BATCH - 1u) / ET_HEAD_BATCH);
    et_printf("ET_REPORT acc_before_bp=%u acc_after_bp=%u infer_count=%u infer_total=%llu "
              "infer_min=%llu infer_max=%llu train_total=%llu sgd_steps=%u samples_seen=%u "
              "stack_high_water=%u stack_size=%u arena=%u head_state=%u\n",
              (unsigned)before_bp, (unsigned)after_bp, (unsigned)et_app_infer_count,
              (unsigned long long)et_app_infer_total, (unsigned long long)et_app_infer_min,
              (unsigned long long)et_app_infer_max, (unsigned long long)et_app_train_total,
              (unsigned)steps, (unsigned)(ET_HEAD_EPOCHS * ET_SAMPLES_TRAIN),
              (unsigned)et_stack_high_water(), (unsigned)et_stack_size(),
              (unsigned)ET_MODEL_ARENA_SIZE, (unsigned)sizeof et_head_state);
    et_board_exit(0);
}

/* entropi-tiny firmware: fine-tune the linear head on the device.
 *
 * Boot, then:
 *   1. run the int8 feature extractor (the frozen, pruned encoder) once over
 *      every embedded training and test sample, caching the int8 features and
 *      printing a CRC-32 of each (the host compares them with TFLM);
 *   2. evaluate the freshly initialised head on the test features;
 *   3. train the head with SGD for ET_HEAD_EPOCHS epochs over the cached
 *      training features, evaluating after every epoch;
 *   4. with ET_APP_STREAM, receive further training samples from the host over
 *      the console in checksummed frames (docs/uart_frames.md), extract and
 *      train on each good one, acknowledge every frame, and evaluate again;
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
/* Streaming: every good SAMPLE frame carries one label byte then the int8
 * image; it is extracted and trained on at once. Frames are acknowledged. */
#define ET_APP_FRAME_CAP (ET_FRAME_OVERHEAD + 1u + ET_SAMPLE_BYTES)
static uint8_t et_app_frame_buf[ET_APP_FRAME_CAP];
static int8_t et_app_stream_features[ET_HEAD_D];
static float et_app_stream_x[ET_HEAD_D];
typedef struct { uint32_t trained, bad_payload; int done; } et_app_stream_t;

static void et_app_ack(uint8_t seq, uint8_t status) {
    uint8_t out[ET_FRAME_OVERHEAD + 1];
    size_t n = et_frames_encode(out, sizeof out, ET_FRAME_ACK, seq, &status, 1);
    et_console_write((const char *)out, n);
}

static void et_app_on_frame(void *ctx, const et_frame *f) {
    et_app_stream_t *s = ctx;
    uint8_t status = ET_FRAME_OK;
    if (f->type == ET_FRAME_END) {
        s->done = 1;
    } else if (f->type == ET_FRAME_SAMPLE) {
        if (f->length != 1u + ET_SAMPLE_BYTES || f->payload[0] >= ET_HEAD_C) {
            s->bad_payload++;
            status = ET_FRAME_BAD_LENGTH;
        } else {
            int st = et_app_extract((const int8_t *)(f->payload + 1), et_app_stream_features);
            if (st != ET_OK) et_app_fail("extract", st);
            et_head_dequantize(et_app_stream_features, ET_HEAD_FEAT_ZERO_POINT, ET_HEAD_FEAT_SCALE,
                               et_app_stream_x, ET_HEAD_D);
            et_head_sgd_step(&et_head_state, et_app_stream_x, f->payload[0], ET_HEAD_LR);
            s->trained++;
        }
    }
    et_app_ack(f->seq, status);
}

static void et_app_on_reject(void *ctx, uint8_t type, uint8_t seq, et_frame_status why) {
    (void)ctx;
    (void)type;
    et_app_ack(seq, (uint8_t)why);
}

static void et_app_stream(void) {
    et_app_stream_t s = {0, 0, 0};
    et_frames_parser p;
    et_frames_init(&p, et_app_frame_buf, sizeof et_app_frame_buf, et_app_on_frame, et_app_on_reject, &s);
    et_printf("ET_STREAM ready %u\n", (unsigned)(1u + ET_SAMPLE_BYTES));
    while (!s.done) {
        int c = et_console_getc_timeout(ET_APP_STREAM_TIMEOUT);
        if (c < 0) {
            if (!et_frames_pending(&p)) break;       /* the host went quiet */
            et_frames_timeout(&p);
            continue;
        }
        et_frames_feed(&p, (uint8_t)c);
    }
    et_frames_counts k = p.counts;
    et_printf("ET_STREAM_DONE trained=%u ok=%u bad_crc=%u bad_length=%u unknown_type=%u "
              "truncated=%u bad_header=%u skipped=%u bad_payload=%u acc_bp=%u\n",
              (unsigned)s.trained, (unsigned)k.ok, (unsigned)k.bad_crc, (unsigned)k.bad_length,
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

    et_head_reset(&et_head_state);
    uint32_t before_bp = et_app_accuracy_bp();
    et_printf("ET_EPOCH 0 loss=- acc_bp=%u\n", (unsigned)before_bp);

    et_head_samples_t samples = {&et_head_cache[0][0], 0, 0, et_samples_train_labels, ET_SAMPLES_TRAIN};
    uint64_t train_total = 0;
    float lr = ET_HEAD_LR;
    for (uint32_t epoch = 1; epoch <= ET_HEAD_EPOCHS; epoch++) {
        float loss = 0.0f;
        uint64_t t0 = et_counter_read();
        status = et_head_train_epoch(&et_head_state, &samples, lr, &loss);
        train_total += et_counter_read() - t0;
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
              (unsigned long long)et_app_infer_max, (unsigned long long)train_total,
              (unsigned)steps, (unsigned)(ET_HEAD_EPOCHS * ET_SAMPLES_TRAIN),
              (unsigned)et_stack_high_water(), (unsigned)et_stack_size(),
              (unsigned)ET_MODEL_ARENA_SIZE, (unsigned)sizeof et_head_state);
    et_board_exit(0);
}

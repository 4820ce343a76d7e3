/* Self-test firmware: proves a board (or its twin) works before any model
 * code runs on it. It prints a greeting and a formatting line with known
 * values, runs a float32 dot product and a small SGD fit (a linear model on
 * synthetic data) between counter reads, reports the stack high-water mark,
 * optionally echoes one console line and serves a stream of UART frames, and
 * exits with a chosen code.
 *
 * Build-time options (-D):
 *   ET_SELFTEST_EXIT_CODE  the exit code (default 0)
 *   ET_SELFTEST_ECHO       1: read one line and print "echo: <line>"
 *   ET_SELFTEST_STREAM     1: ack frames until an END frame, then print counts
 *   ET_SELFTEST_TIMEOUT    receive timeout in counter units (default 50 M)
 *   ET_SELFTEST_FAULT      1: jump to a never-executable address, to test the
 *                          fault path (exit code ET_EXIT_FAULT)
 */
#include <stdint.h>

#include "et_board.h"
#include "et_frames.h"

#ifndef ET_SELFTEST_EXIT_CODE
#define ET_SELFTEST_EXIT_CODE 0
#endif
#ifndef ET_SELFTEST_ECHO
#define ET_SELFTEST_ECHO 0
#endif
#ifndef ET_SELFTEST_STREAM
#define ET_SELFTEST_STREAM 0
#endif
#ifndef ET_SELFTEST_FAULT
#define ET_SELFTEST_FAULT 0
#endif
#ifndef ET_SELFTEST_TIMEOUT
#define ET_SELFTEST_TIMEOUT 50000000u
#endif

#define ET_DIM 16
#define ET_SAMPLES 64
#define ET_EPOCHS 30
#define ET_DOT_LEN 256

static float et_x[ET_SAMPLES][ET_DIM];
static float et_y[ET_SAMPLES];
static float et_a[ET_DOT_LEN], et_b[ET_DOT_LEN];

/* Deterministic uniform floats in [-1, 1) from a 32-bit LCG. */
static uint32_t et_rng = 12345u;
static float et_uniform(void)
{
    et_rng = et_rng * 1664525u + 1013904223u;
    return (float)(int32_t)(et_rng >> 8) / 8388608.0f - 1.0f;
}

static float et_dot(const float *a, const float *b, int n)
{
    float acc = 0.0f;
    for (int i = 0; i < n; i++) {
        acc += a[i] * b[i];
    }
    return acc;
}

static float et_mse(const float *w)
{
    float sum = 0.0f;
    for (int s = 0; s < ET_SAMPLES; s++) {
        float e = et_dot(w, et_x[s], ET_DIM) - et_y[s];
        sum += e * e;
    }
    return sum / (float)ET_SAMPLES;
}

/* Plain SGD, one sample at a time, on the mean squared error. */
static void et_sgd(float *w, float lr)
{
    for (int epoch = 0; epoch < ET_EPOCHS; epoch++) {
        for (int s = 0; s < ET_SAMPLES; s++) {
            float g = 2.0f * (et_dot(w, et_x[s], ET_DIM) - et_y[s]);
            for (int i = 0; i < ET_DIM; i++) {
                w[i] -= lr * g * et_x[s][i];
            }
        }
    }
}

/* A loop of exactly 2 instructions per iteration (subs, bne): the twin must
 * count 2 * ET_CALIBRATION_LOOPS instructions, give or take the counter reads
 * and the 40-instruction tick; the board reports the cycles it took. */
#define ET_CALIBRATION_LOOPS 100000u
static void et_calibrate(void)
{
    uint32_t n = ET_CALIBRATION_LOOPS;
    uint64_t t0 = et_counter_read();
    __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
    uint64_t t1 = et_counter_read();
    et_printf("calibration: %lu x (subs, bne) took %llu %s\n", (unsigned long)ET_CALIBRATION_LOOPS,
              (unsigned long long)(t1 - t0), et_counter_unit());
}

static void et_compute(void)
{
    float w_true[ET_DIM], w[ET_DIM];
    for (int i = 0; i < ET_DIM; i++) {
        w_true[i] = et_uniform();
        w[i] = 0.0f;
    }
    for (int s = 0; s < ET_SAMPLES; s++) {
        for (int i = 0; i < ET_DIM; i++) {
            et_x[s][i] = et_uniform();
        }
        et_y[s] = et_dot(w_true, et_x[s], ET_DIM);
    }
    for (int i = 0; i < ET_DOT_LEN; i++) {
        et_a[i] = (float)i * 0.5f;
        et_b[i] = (i % 2) ? -0.25f : 0.75f;
    }

    uint64_t t0 = et_counter_read();
    float d = et_dot(et_a, et_b, ET_DOT_LEN);
    uint64_t t1 = et_counter_read();
    float loss0 = et_mse(w);
    et_sgd(w, 0.05f);
    float loss1 = et_mse(w);
    uint64_t t2 = et_counter_read();

    et_printf("dot: %.3f\n", ET_F(d));
    et_printf("sgd: loss %.6f -> %.6f after %d epochs\n", ET_F(loss0), ET_F(loss1), ET_EPOCHS);
    et_printf("counter: dot %llu sgd %llu %s\n", (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1),
              et_counter_unit());
}

#if ET_SELFTEST_ECHO
static void et_echo_line(void)
{
    char line[81];
    int n = 0;
    for (;;) {
        int c = et_console_getc_timeout(ET_SELFTEST_TIMEOUT);
        if (c < 0) {
            et_printf("echo: timeout after %d bytes\n", n);
            return;
        }
        if (c == '\n' || n == (int)sizeof line - 1) {
            break;
        }
        if (c != '\r') {
            line[n++] = (char)c;
        }
    }
    line[n] = '\0';
    et_printf("echo: %s\n", line);
}
#endif

#if ET_SELFTEST_STREAM
typedef struct {
    uint32_t samples;
    uint32_t payload_sum;
    int done;
} et_stream_state;

static void et_send_ack(uint8_t seq, et_frame_status status)
{
    uint8_t out[ET_FRAME_OVERHEAD + 1];
    uint8_t payload = (uint8_t)status;
    size_t n = et_frames_encode(out, sizeof out, ET_FRAME_ACK, seq, &payload, 1);
    et_console_write((const char *)out, n);
}

static void et_on_frame(void *ctx, const et_frame *f)
{
    et_stream_state *st = ctx;
    if (f->type == ET_FRAME_SAMPLE) {
        st->samples++;
        for (uint16_t i = 0; i < f->length; i++) {
            st->payload_sum += f->payload[i];
        }
    } else if (f->type == ET_FRAME_END) {
        st->done = 1;
    }
    et_send_ack(f->seq, ET_FRAME_OK);
}

static void et_on_reject(void *ctx, uint8_t type, uint8_t seq, et_frame_status why)
{
    (void)ctx;
    (void)type;
    et_send_ack(seq, why);
}

static void et_stream(void)
{
    static uint8_t buf[ET_FRAME_OVERHEAD + 256];
    et_stream_state st = {0, 0, 0};
    et_frames_parser p;
    et_frames_init(&p, buf, sizeof buf, et_on_frame, et_on_reject, &st);
    et_printf("stream: ready, max payload %u\n", (unsigned)(sizeof buf - ET_FRAME_OVERHEAD));
    while (!st.done) {
        int c = et_console_getc_timeout(ET_SELFTEST_TIMEOUT);
        if (c >= 0) {
            et_frames_feed(&p, (uint8_t)c);
        } else if (et_frames_pending(&p)) {
            et_frames_timeout(&p);
        }
    }
    const et_frames_counts *k = &p.counts;
    et_printf("\nframes: ok=%lu bad_crc=%lu bad_length=%lu unknown_type=%lu truncated=%lu bad_header=%lu "
              "skipped=%lu samples=%lu sum=%lu\n",
              (unsigned long)k->ok, (unsigned long)k->bad_crc, (unsigned long)k->bad_length,
              (unsigned long)k->unknown_type, (unsigned long)k->truncated, (unsigned long)k->bad_header,
              (unsigned long)k->skipped_bytes, (unsigned long)st.samples, (unsigned long)st.payload_sum);
}
#endif

int main(void)
{
    et_board_init();
    et_printf("entropi-tiny selftest on %s\n", et_board_name());
    et_printf("fmt: %d %u %ld %s %x %08x %5d|%03d %f %.3f %.0f %f\n", -42, 42u, -100000L, "str", 0xbeefu,
              0x1234u, 7, -5, ET_F(3.25f), ET_F(-0.0625f), ET_F(2.5f), ET_F(1.5e10f));
    et_calibrate();
    et_compute();
#if ET_SELFTEST_FAULT
    /* 0xF0000000 is in the System region, which is never executable. */
    ((void (*)(void))(uintptr_t)0xF0000001u)();
#endif
#if ET_SELFTEST_ECHO
    et_echo_line();
#endif
#if ET_SELFTEST_STREAM
    et_stream();
#endif
    et_printf("stack: high water %lu of %lu bytes\n", (unsigned long)et_stack_high_water(),
              (unsigned long)et_stack_size());
    return ET_SELFTEST_EXIT_CODE;
}

/* Fuzz target: the weight image reader, the runtime's init and one invoke.
 *
 * Usage (firmware/fuzz/run_fuzzers.py builds and runs it; `make fuzz`):
 *     clang-14 -fsanitize=fuzzer,address,undefined -DET_FUZZ_LIBFUZZER \
 *         -Ifirmware/include -Ifirmware/src firmware/fuzz/fuzz_image.c <runtime sources> -o fuzz_image
 *     ./fuzz_image -max_total_time=60 corpus/ seeds/
 * Without -DET_FUZZ_LIBFUZZER (and linked with replay_main.c) the same code
 * replays files under gcc's sanitizers and prints one status line per file.
 *
 * Each input is a whole .etsw image. The target (1) opens it and walks every
 * live channel of every tensor through the iterators, as the dump tool does,
 * (2) runs et_runtime_init on a fixed schedule whose ops use directory
 * entries 0, 1 and 2 as weights (CONV_2D [8,3,3,4] on an 8x8x4 input,
 * DEPTHWISE_CONV_2D [1,3,3,8] with stride 2, MEAN, FULLY_CONNECTED [10,8]),
 * and (3) if init accepts it, one invoke on an input drawn from the image's
 * own bytes. The image and the arena are malloc'ed at their exact sizes, so
 * AddressSanitizer sees any read or write past either.
 *
 * Mutating after the CRC: a random mutation almost always breaks the CRC-32,
 * so the checks behind it would never run. The custom mutator therefore
 * rewrites total_size and the CRC after 15 of every 16 mutations (the 16th
 * keeps the header checks exercised); a saved reproducer carries the fixed
 * CRC and replays as it was found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_runtime.h"

#define ARENA 1152u

/* CONV 8x8x4 -> 8x8x8 (SAME, 3x3), DW stride 2 -> 4x4x8, MEAN -> 1x1x8, FC -> 10. */
static const et_op_t ops[] = {
    {.kind = ET_OP_CONV_2D, .weights = 0, .in0 = {.offset = 0, .dims = {1, 8, 8, 4}}, .out = {.offset = 256, .dims = {1, 8, 8, 8}},
     .scratch_offset = 768, .scratch_size = 256,
     .p.conv = {.stride_h = 1, .stride_w = 1, .pad_top = 1, .pad_left = 1, .kernel_h = 3, .kernel_w = 3}},
    {.kind = ET_OP_DEPTHWISE_CONV_2D, .weights = 1, .in0 = {.offset = 256, .dims = {1, 8, 8, 8}}, .out = {.offset = 1024, .dims = {1, 4, 4, 8}},
     .scratch_offset = 768, .scratch_size = 64,
     .p.conv = {.stride_h = 2, .stride_w = 2, .pad_top = 0, .pad_left = 0, .kernel_h = 3, .kernel_w = 3}},
    {.kind = ET_OP_MEAN, .weights = ET_NO_WEIGHTS, .in0 = {.offset = 1024, .dims = {1, 4, 4, 8}}, .out = {.offset = 0, .dims = {1, 1, 1, 8}},
     .p.mean = {.multiplier = 1 << 30, .shift = -3, .in_zero_point = -2, .out_zero_point = 3, .count = 16}},
    {.kind = ET_OP_FULLY_CONNECTED, .weights = 2, .in0 = {.offset = 0, .dims = {1, 1, 1, 8}}, .out = {.offset = 64, .dims = {1, 1, 1, 10}}},
};

static char last[160];   /* what the last input did, for the replay driver */

const char *et_fuzz_last(void) { return last; }

/* Every channel of every tensor through the iterators; positions must stay inside the channel. */
static int walk_image(const et_image_t *img) {
    for (uint32_t i = 0; i < img->tensor_count; i++) {
        et_tensor_t t;
        if (et_image_tensor(img, i, &t) != ET_OK) return -1;
        uint32_t row = 0, dead = 0;
        for (uint32_t o = 0; o < t.channels; o++) {
            if (!et_channel_live(&t, o)) {
                if (dead >= t.channels - t.live_channels) abort();   /* more dead channels than constants */
                volatile int8_t c = t.consts[dead++];
                (void)c;
                continue;
            }
            et_nz_iter_t it;
            uint32_t pos;
            int8_t v;
            int rc;
            et_nz_begin(&it, &t, row++);
            while ((rc = et_nz_next(&it, &pos, &v)) == 1)
                if (pos >= t.channel_len) abort();
            if (rc < 0) abort();            /* et_image_open walked every row: none may be malformed */
        }
        if (row != t.live_channels) abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *image = malloc(size ? size : 1), *arena = malloc(ARENA);
    if (!image || !arena) abort();
    memcpy(image, data, size);
    et_image_t img;
    et_status_t open = et_image_open(&img, image, size), init = ET_ERR_SIZE, run = ET_ERR_SIZE;
    if (open == ET_OK) walk_image(&img);
    et_model_t model = {.image = image, .image_size = (uint32_t)size, .ops = ops,
                        .op_count = sizeof ops / sizeof ops[0], .arena_size = ARENA,
                        .input = {.offset = 0, .dims = {1, 8, 8, 4}}, .output = {.offset = 64, .dims = {1, 1, 1, 10}},
                        .input_bytes = 256, .output_bytes = 10};
    et_runtime_t rt;
    if (size <= UINT32_MAX) init = et_runtime_init(&rt, &model, arena, ARENA);
    if (init == ET_OK) {
        int8_t *x = et_runtime_input(&rt);
        for (uint32_t i = 0; i < model.input_bytes; i++) x[i] = (int8_t)data[(i * 97u) % size];
        run = et_runtime_invoke(&rt);
    }
    snprintf(last, sizeof last, "open=%s; init=%s; invoke=%s", et_status_name(open), et_status_name(init),
             init == ET_OK ? et_status_name(run) : "-");
    free(arena);
    free(image);
    return 0;
}

#ifdef ET_FUZZ_LIBFUZZER
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (size >= 32 && (seed & 15u) != 0) {      /* total_size and CRC-32 of bytes [32, size) */
        const uint32_t n = (uint32_t)size, crc = et_crc32(data + 32, size - 32);
        for (int b = 0; b < 4; b++) {
            data[20 + b] = (uint8_t)(n >> (8 * b));
            data[24 + b] = (uint8_t)(crc >> (8 * b));
        }
    }
    return size;
}
#endif

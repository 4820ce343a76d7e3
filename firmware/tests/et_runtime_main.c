/* Host test driver for the runtime: runs a generated model (et_model.h/.c)
 * over a batch of int8 inputs and writes the int8 outputs.
 *
 * Usage: et_runtime_run INPUTS OUT [IMAGE]
 *   INPUTS: N * et_model.input_bytes raw int8; OUT gets N * output_bytes.
 *   IMAGE: run with this weight image instead of the generated one (corruption tests).
 *   Environment ET_TIME=1: print "seconds_per_image <s>" after the run.
 *   exit 0: ok; 10 + status: et_runtime_init refused; 40 + status: invoke failed;
 *   2: usage or I/O error.
 * The arena is malloc'ed at exactly the planned size, so the address
 * sanitizer catches any access past the plan.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "et_runtime.h"

extern const et_model_t et_model;   /* generated (entropi_tiny.codegen), linked in */

static uint8_t *read_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(*size > 0 ? (size_t)*size : 1);
    if (data && fread(data, 1, (size_t)*size, f) != (size_t)*size) { free(data); data = NULL; }
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) { fprintf(stderr, "usage: %s INPUTS OUT [IMAGE]\n", argv[0]); return 2; }
    et_model_t model = et_model;
    long in_size = 0, image_size = 0, n = 0;
    int rc = 0;
    uint8_t *inputs = read_file(argv[1], &in_size), *image = NULL, *arena = NULL;
    int8_t *outputs = NULL;
    if (!inputs || in_size % model.input_bytes) { rc = 2; goto done; }
    if (argc == 4) {
        if (!(image = read_file(argv[3], &image_size))) { rc = 2; goto done; }
        model.image = image;
        model.image_size = (uint32_t)image_size;
    }
    arena = malloc(model.arena_size ? model.arena_size : 1);
    et_runtime_t rt;
    et_status_t s = et_runtime_init(&rt, &model, arena, model.arena_size);
    if (s != ET_OK) {
        fprintf(stderr, "init: %s (op %u)\n", et_status_name(s), (unsigned)rt.failed_op);
        rc = 10 + (int)s;
        goto done;
    }
    n = in_size / model.input_bytes;
    outputs = malloc((size_t)n * model.output_bytes + 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        memcpy(et_runtime_input(&rt), inputs + i * model.input_bytes, model.input_bytes);
        s = et_runtime_invoke(&rt);
        if (s != ET_OK) {
            fprintf(stderr, "invoke: %s (op %u)\n", et_status_name(s), (unsigned)rt.failed_op);
            rc = 40 + (int)s;
            goto done;
        }
        memcpy(outputs + i * model.output_bytes, et_runtime_output(&rt), model.output_bytes);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (getenv("ET_TIME"))
        printf("seconds_per_image %.9f\n", ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9) / (double)n);
    FILE *f = fopen(argv[2], "wb");
    if (!f) { rc = 2; goto done; }
    if (fwrite(outputs, 1, (size_t)n * model.output_bytes, f) != (size_t)n * model.output_bytes) rc = 2;
    fclose(f);
done:
    free(outputs);
    free(arena);
    free(inputs);
    free(image);
    return rc;
}

/* Per-op golden check on the Cortex-M7 twin: runs a generated model (et_model.h/.c)
 * over embedded int8 inputs and prints every output byte, so the host can compare
 * them with TFLM's (tests/test_kernels_fast.py). This is the ACLE/DSP build of the
 * kernels (SXTB16, SMLABB, SSAT), the one the board runs.
 *
 * Build: with the runtime sources, the generated et_model.c and et_golden_inputs.h
 * (ET_GOLDEN_N inputs of ET_MODEL_INPUT_BYTES each in et_golden_inputs[]).
 * Output: "ET_GOLDEN <i> <b0> <b1> ..." per input, then "ET_GOLDEN_DONE", exit 0;
 * "ET_ERROR <what> <status>" and exit 3 on a runtime error.
 */
#include <string.h>

#include "et_board.h"
#include "et_golden_inputs.h"
#include "et_model.h"
#include "et_runtime.h"

static uint8_t et_golden_arena[ET_MODEL_ARENA_SIZE] __attribute__((aligned(16)));

int main(void) {
    et_board_init();
    et_runtime_t rt;
    int status = et_runtime_init(&rt, &et_model, et_golden_arena, sizeof et_golden_arena);
    if (status != ET_OK) {
        et_printf("ET_ERROR init %d\n", status);
        et_board_exit(3);
    }
    for (unsigned i = 0; i < ET_GOLDEN_N; i++) {
        memcpy(et_runtime_input(&rt), et_golden_inputs[i], ET_MODEL_INPUT_BYTES);
        status = et_runtime_invoke(&rt);
        if (status != ET_OK) {
            et_printf("ET_ERROR invoke %d\n", status);
            et_board_exit(3);
        }
        const int8_t *y = et_runtime_output(&rt);
        et_printf("ET_GOLDEN %u", i);
        for (unsigned k = 0; k < ET_MODEL_OUTPUT_BYTES; k++) et_printf(" %d", (int)y[k]);
        et_printf("\n");
    }
    et_printf("ET_GOLDEN_DONE\n");
    et_board_exit(0);
}

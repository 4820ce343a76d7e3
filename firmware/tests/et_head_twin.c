/* On-target check of the head (QEMU twin): train on embedded int8 features
 * with et_head_batch_step, printing every step's loss and then every weight
 * as float32 bit patterns, for pytest to compare with
 * entropi_tiny/head_reference.py step for step.
 *
 * Usage: built by tests/test_head_twin.py with a generated et_head_config.h
 * and et_head_twin_data.h (ET_TWIN_EPOCHS, et_twin_q[N][D], et_twin_y[N]).
 * Output lines: "ET_STEP <i> <loss bits>", "ET_W <c> <d> <bits>" (non-zero
 * rows only print what the test reads: all of them), "ET_B <c> <bits>", "ET_DONE".
 */
#include "et_board.h"
#include "et_head.h"
#include "et_head_twin_data.h"

int main(void) {
    et_board_init();
    et_head_t *h = &et_head_state;
    et_head_reset(h);
    uint32_t step = 0;
    for (uint32_t e = 0; e < ET_TWIN_EPOCHS; e++)
        for (uint32_t i = 0; i < ET_HEAD_TRAIN_N; i += ET_HEAD_BATCH) {
            uint32_t b = ET_HEAD_TRAIN_N - i < ET_HEAD_BATCH ? ET_HEAD_TRAIN_N - i : ET_HEAD_BATCH;
            float loss = et_head_batch_step(h, et_twin_q[i], &et_twin_y[i], b, h->lr);
            et_printf("ET_STEP %u %x\n", (unsigned)step++, (unsigned)ET_F(loss));
        }
    for (uint32_t c = 0; c < ET_HEAD_C; c++) {
        for (uint32_t d = 0; d < ET_HEAD_D; d++)
            et_printf("ET_W %u %u %x\n", (unsigned)c, (unsigned)d, (unsigned)ET_F(et_head_weight(h, c, d)));
        et_printf("ET_B %u %x\n", (unsigned)c, (unsigned)ET_F(h->bias[c]));
    }
    et_printf("ET_DONE\n");
    et_board_exit(0);
}

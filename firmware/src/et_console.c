/* Console functions built on each board's et_console_putc / et_console_getc,
 * shared by every board. */
#include "et_board.h"

void et_console_write(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        et_console_putc(s[i]);
    }
}

int et_console_getc_timeout(uint32_t ticks)
{
    uint64_t start = et_counter_read();
    for (;;) {
        int c = et_console_getc();
        if (c >= 0) {
            return c;
        }
        if (et_counter_read() - start >= ticks) {
            return -1;
        }
    }
}

/* The board interface: what every entropi-tiny firmware may assume about the
 * hardware it runs on, whether that is the real Nucleo-F746ZG or its QEMU twin
 * (mps2-an500, a Cortex-M7 that QEMU can emulate).
 *
 * Each board folder (firmware/boards/<board>/) provides startup code, a linker
 * script and board.c implementing the functions below, except those of
 * firmware/src/et_console.c (et_console_write, et_console_getc_timeout),
 * et_printf.c, et_stack.c and et_startup.c, which every board shares.
 *
 * Startup has already run when main() is called: the FPU is enabled, .data is
 * copied, .bss is zeroed and the stack is painted. main() calls et_board_init()
 * first; returning from main() exits with its return value.
 */
#ifndef ET_BOARD_H
#define ET_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Memory budgets of the Nucleo-F746ZG (STM32F746ZG). The twin's linker script
 * uses the same numbers, so an image that does not fit the real chip does not
 * link for the twin either. The stack is a region of fixed size at the top of
 * RAM, counted inside ET_RAM_BUDGET_BYTES; its size is chosen at link time
 * (see et_stack_size()). There is no heap: nothing may call malloc. */
#define ET_FLASH_BUDGET_BYTES (1024u * 1024u)
#define ET_RAM_BUDGET_BYTES (320u * 1024u)
#define ET_STACK_DEFAULT_BYTES (16u * 1024u)

/* Exit codes used by the platform itself; applications use small codes. */
#define ET_EXIT_OK 0
#define ET_EXIT_FAULT 99 /* HardFault and other fault exceptions */

/* Bring up clocks, the console UART and the counter. Call first in main(). */
void et_board_init(void);

/* The board's registry name: "nucleo-f746" or "mps2-an500". */
const char *et_board_name(void);

/* ---- Console (USART3 at 115200 8N1 on the board, CMSDK UART0 on the twin) */

/* Write n bytes, blocking until each is in the transmitter. */
void et_console_write(const char *s, size_t n);
void et_console_putc(char c);

/* Non-blocking read: the next received byte (0..255), or -1 if none waits. */
int et_console_getc(void);

/* Wait at most `ticks` counter units (see et_counter_read) for a byte:
 * returns it (0..255), or -1 on timeout. */
int et_console_getc_timeout(uint32_t ticks);

/* printf for the console, without libc and without doubles. Supports
 * %d %i %u %x %X %c %s %% with the l and ll modifiers, a width with optional
 * 0 flag, and %f / %.Nf (N <= 9) for floats. A float passed through "..." is
 * promoted to double, which the F746's FPU cannot handle, so %f takes the
 * float's bit pattern instead: et_printf("%.3f", ET_F(x)). Values with a
 * magnitude of 1e9 or more print in e-notation. Returns bytes written.
 * (No format attribute: the compiler would reject ET_F() for %f.) */
int et_printf(const char *fmt, ...);
int et_snprintf(char *buf, size_t size, const char *fmt, ...);

/* The bits of a float, as an argument for %f. */
uint32_t et_float_bits(float x);
#define ET_F(x) et_float_bits(x)

/* Format v with `decimals` digits after the point (0..9) into buf (at least
 * 24 bytes); returns the length. Float arithmetic only. */
int et_format_float(char *buf, float v, int decimals);

/* ---- Counter */

/* A monotonic 64-bit counter of work done since et_board_init().
 * Board: CPU cycles at the core clock (DWT->CYCCNT, extended to 64 bits).
 * Twin:  instructions executed, exact under QEMU's -icount shift=0 (one
 *        instruction = 1 ns of virtual time), read from SysTick at 25 MHz, so
 *        the value is a multiple of 40 instructions. QEMU models no cycles. */
uint64_t et_counter_read(void);

/* "cycles" on the board, "instructions" on the twin. */
const char *et_counter_unit(void);

/* ---- Exit */

/* Twin: print "ET_EXIT <code>", then request a system reset, which ends QEMU
 * (-no-reboot); the host reads `code` from the line. Board: print the same
 * line, then sleep in WFI forever. */
void et_board_exit(int code) __attribute__((noreturn));

/* ---- Stack */

/* Size of the stack region in bytes (set at link time). */
uint32_t et_stack_size(void);

/* Bytes of stack ever used since boot: startup paints the whole region with
 * ET_STACK_PAINT and this scans up from the bottom for the first changed word. */
uint32_t et_stack_high_water(void);
#define ET_STACK_PAINT 0xC5A5C5A5u

#endif /* ET_BOARD_H */

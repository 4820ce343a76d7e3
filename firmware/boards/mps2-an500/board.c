/* Board support for the QEMU twin: mps2-an500 under qemu-system-arm.
 *
 * Console: CMSDK APB UART0 at 0x40004000, which QEMU connects to its stdio
 * with -serial stdio. Counter: SysTick on the 25 MHz core clock, counting
 * down from 2^24 - 1 and wrapping into a 64-bit software count; under
 * -icount shift=0 every instruction takes 1 ns of virtual time, so one tick
 * is exactly 40 instructions. Exit: semihosting SYS_EXIT_EXTENDED, which
 * QEMU turns into its own exit status (-semihosting-config enable=on).
 */
#include <stdint.h>

#include "et_board.h"

#define ET_REG(addr) (*(volatile uint32_t *)(addr))

/* CMSDK APB UART0 */
#define ET_UART_DATA ET_REG(0x40004000u)
#define ET_UART_STATE ET_REG(0x40004004u)
#define ET_UART_CTRL ET_REG(0x40004008u)
#define ET_UART_BAUDDIV ET_REG(0x40004010u)
#define ET_UART_STATE_TX_FULL (1u << 0)
#define ET_UART_STATE_RX_FULL (1u << 1)
#define ET_UART_CTRL_TX_EN (1u << 0)
#define ET_UART_CTRL_RX_EN (1u << 1)

/* SysTick and the interrupt control register */
#define ET_SYST_CSR ET_REG(0xE000E010u)
#define ET_SYST_RVR ET_REG(0xE000E014u)
#define ET_SYST_CVR ET_REG(0xE000E018u)
#define ET_SYST_CSR_ENABLE_TICKINT_CPUCLK 0x7u
#define ET_SYST_MAX 0x00FFFFFFu
#define ET_SCB_ICSR ET_REG(0xE000ED04u)
#define ET_ICSR_PENDSTSET (1u << 26)

#define ET_INSTRUCTIONS_PER_TICK 40u /* 25 MHz SysTick, 1 GHz virtual instruction rate */

static volatile uint32_t et_systick_wraps;

void et_systick_handler(void);

void et_board_init(void)
{
    ET_UART_BAUDDIV = 16u; /* the smallest legal divisor; QEMU ignores the rate */
    ET_UART_CTRL = ET_UART_CTRL_TX_EN | ET_UART_CTRL_RX_EN;

    et_systick_wraps = 0;
    ET_SYST_RVR = ET_SYST_MAX;
    ET_SYST_CVR = 0; /* any write clears the current value */
    ET_SYST_CSR = ET_SYST_CSR_ENABLE_TICKINT_CPUCLK;
}

const char *et_board_name(void)
{
    return "mps2-an500";
}

void et_console_putc(char c)
{
    while (ET_UART_STATE & ET_UART_STATE_TX_FULL) {
    }
    ET_UART_DATA = (uint8_t)c;
}

int et_console_getc(void)
{
    if (ET_UART_STATE & ET_UART_STATE_RX_FULL) {
        return (int)(ET_UART_DATA & 0xFFu);
    }
    return -1;
}

void et_systick_handler(void)
{
    et_systick_wraps++;
}

uint64_t et_counter_read(void)
{
    for (;;) {
        uint32_t wraps = et_systick_wraps;
        uint32_t value = ET_SYST_CVR;
        uint32_t pending = ET_SCB_ICSR & ET_ICSR_PENDSTSET;
        if (wraps != et_systick_wraps) {
            continue; /* the handler ran in between: read again */
        }
        /* A wrap whose interrupt is still pending has reloaded the counter
         * (so it reads high) without counting in et_systick_wraps yet. */
        if (pending && value > ET_SYST_MAX / 2u) {
            wraps++;
        }
        uint64_t ticks = (uint64_t)wraps * (ET_SYST_MAX + 1u) + (ET_SYST_MAX - value);
        return ticks * ET_INSTRUCTIONS_PER_TICK;
    }
}

const char *et_counter_unit(void)
{
    return "instructions";
}

/* Semihosting: r0 = operation, r1 = argument block, then BKPT 0xAB. */
#define ET_SEMIHOSTING_SYS_EXIT_EXTENDED 0x20u
#define ET_ADP_STOPPED_APPLICATION_EXIT 0x20026u

void et_board_exit(int code)
{
    et_printf("ET_EXIT %d\n", code);
    volatile uint32_t block[2] = {ET_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    register uint32_t r0 __asm("r0") = ET_SEMIHOSTING_SYS_EXIT_EXTENDED;
    register volatile uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) { /* not reached under QEMU; without semihosting, stop here */
    }
}

/* Board support for the QEMU twin: mps2-an500 under qemu-system-arm.
 *
 * Console: CMSDK APB UART0 at 0x40004000, which QEMU connects to its stdio
 * with -serial stdio. Counter: SysTick on the 25 MHz core clock, counting
 * down from 2^24 - 1 and wrapping into a 64-bit software count; under
 * -icount shift=0 every instruction takes 1 ns of virtual time, so one tick
 * is exactly 40 instructions. Exit: print "ET_EXIT <code>", wait until the
 * UART has sent it, then request a system reset (SCB AIRCR SYSRESETREQ);
 * QEMU runs with -no-reboot, so the reset ends it, and the host reads the
 * exit code from the ET_EXIT line. No semihosting: QEMU runs without it, so
 * the guest has no access to the host's files (a BKPT 0xAB faults).
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

/* SCB AIRCR: writes need the key 0x05FA in bits 31:16. */
#define ET_SCB_AIRCR ET_REG(0xE000ED0Cu)
#define ET_AIRCR_SYSRESETREQ (0x05FA0000u | (1u << 2))

void et_board_exit(int code)
{
    et_printf("ET_EXIT %d\n", code);
    while (ET_UART_STATE & ET_UART_STATE_TX_FULL) { /* the last byte is in the UART */
    }
    __asm volatile("dsb" ::: "memory");
    ET_SCB_AIRCR = ET_AIRCR_SYSRESETREQ;
    __asm volatile("dsb" ::: "memory");
    for (;;) { /* the reset takes effect; QEMU (-no-reboot) exits */
    }
}

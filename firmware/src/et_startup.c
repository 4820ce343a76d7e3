/* Reset and fault handling shared by every board.
 *
 * The vector table lives in each board's startup.c and points its reset
 * vector at et_reset_handler. That handler does, in order:
 *   1. enable the FPU (CP10/CP11 full access in CPACR), before any C code,
 *      because the compiler may use FPU registers anywhere with -mfloat-abi=hard;
 *   2. paint the whole stack region with ET_STACK_PAINT (nothing is on the
 *      stack yet: the handler is naked and the painting loop keeps to registers);
 *   3. copy .data from its load address in flash and zero .bss;
 *   4. call main(), then exit with its return value.
 */
#include <stdint.h>

#include "et_board.h"

/* Symbols from the board's linker script. */
extern uint32_t et_data_load[], et_data_start[], et_data_end[];
extern uint32_t et_bss_start[], et_bss_end[];
extern uint32_t et_stack_bottom[], _estack[];

int main(void);
void et_reset_handler(void);
void et_startup_c(void) __attribute__((noreturn, used));
void et_fault_handler(void);

#define ET_SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

__attribute__((naked, noreturn)) void et_reset_handler(void)
{
    __asm volatile(
        /* CPACR |= 0xF << 20: full access to CP10 and CP11 (the FPU). */
        "movw r0, #0xED88\n"
        "movt r0, #0xE000\n"
        "ldr  r1, [r0]\n"
        "orr  r1, r1, #(0xF << 20)\n"
        "str  r1, [r0]\n"
        "dsb\n"
        "isb\n"
        /* Paint [et_stack_bottom, _estack) word by word. */
        "movw r0, #:lower16:et_stack_bottom\n"
        "movt r0, #:upper16:et_stack_bottom\n"
        "movw r1, #:lower16:_estack\n"
        "movt r1, #:upper16:_estack\n"
        "movw r2, #0xC5A5\n" /* ET_STACK_PAINT */
        "movt r2, #0xC5A5\n"
        "1: cmp r0, r1\n"
        "bhs 2f\n"
        "str r2, [r0], #4\n"
        "b 1b\n"
        "2: b et_startup_c\n");
}

void et_startup_c(void)
{
    uint32_t *src = et_data_load;
    for (uint32_t *dst = et_data_start; dst < et_data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = et_bss_start; dst < et_bss_end;) {
        *dst++ = 0;
    }
    et_board_exit(main());
}

/* HardFault, MemManage, BusFault and UsageFault all land here. The fault
 * status registers tell which; the console may not be up if the fault came
 * before et_board_init(), in which case only the exit code tells. */
void et_fault_handler(void)
{
    uint32_t cfsr = *(volatile uint32_t *)0xE000ED28u;
    uint32_t hfsr = *(volatile uint32_t *)0xE000ED2Cu;
    et_printf("ET_FAULT cfsr=%08x hfsr=%08x\n", (unsigned)cfsr, (unsigned)hfsr);
    et_board_exit(ET_EXIT_FAULT);
}

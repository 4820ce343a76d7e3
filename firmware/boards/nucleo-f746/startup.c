/* Vector table of the Nucleo-F746ZG (STM32F746ZG, Cortex-M7).
 *
 * The chip boots from flash (BOOT_ADD0 = 0x0020 0000, the ITCM alias of the
 * flash at 0x08000000 where this table is linked) and reads the initial stack
 * pointer and reset vector from here; et_board_init() then points VTOR at it.
 * The 98 device interrupts all go to the fault handler: the firmware enables
 * none, so one arriving is a bug worth stopping on.
 */
#include <stdint.h>

extern uint32_t _estack[];
void et_reset_handler(void);
void et_fault_handler(void);
void et_systick_handler(void);

typedef void (*et_vector)(void);

#define ET_F746_VECTORS (16 + 98)

__attribute__((section(".isr_vector"), used)) const et_vector et_vectors[ET_F746_VECTORS] = {
    [0] = (et_vector)(uintptr_t)_estack, /* initial stack pointer */
    [1] = et_reset_handler,
    [2] = et_fault_handler,  /* NMI */
    [3] = et_fault_handler,  /* HardFault */
    [4] = et_fault_handler,  /* MemManage */
    [5] = et_fault_handler,  /* BusFault */
    [6] = et_fault_handler,  /* UsageFault */
    [11] = et_fault_handler, /* SVCall: unused */
    [12] = et_fault_handler, /* DebugMonitor */
    [14] = et_fault_handler, /* PendSV: unused */
    [15] = et_systick_handler,
    [16 ... ET_F746_VECTORS - 1] = et_fault_handler, /* device interrupts */
};

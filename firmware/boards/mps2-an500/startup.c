/* Vector table of the QEMU twin (mps2-an500, Cortex-M7).
 *
 * QEMU's -kernel loads the ELF and the core reads its initial stack pointer
 * and reset vector from address 0, where this table is linked. Only the 16
 * system exceptions are listed: the firmware enables no device interrupt.
 */
#include <stdint.h>

extern uint32_t _estack[];
void et_reset_handler(void);
void et_fault_handler(void);
void et_systick_handler(void);

typedef void (*et_vector)(void);

__attribute__((section(".isr_vector"), used)) const et_vector et_vectors[16] = {
    (et_vector)(uintptr_t)_estack, /* initial stack pointer */
    et_reset_handler,
    et_fault_handler, /* NMI */
    et_fault_handler, /* HardFault */
    et_fault_handler, /* MemManage */
    et_fault_handler, /* BusFault */
    et_fault_handler, /* UsageFault */
    0, 0, 0, 0,       /* reserved */
    et_fault_handler, /* SVCall: unused, so a call is a bug */
    et_fault_handler, /* DebugMonitor */
    0,                /* reserved */
    et_fault_handler, /* PendSV: unused */
    et_systick_handler,
};

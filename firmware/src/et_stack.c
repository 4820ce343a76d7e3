/* Stack size and high-water mark, shared by every board.
 *
 * The stack is the region [et_stack_bottom, _estack) at the top of RAM; it
 * grows down from _estack. Startup painted it with ET_STACK_PAINT, so the
 * lowest word that no longer holds the pattern marks the deepest use. A
 * function that wrote the exact pattern at its deepest point would make this
 * under-report by that word at most.
 */
#include <stdint.h>

#include "et_board.h"

extern uint32_t et_stack_bottom[], _estack[];

uint32_t et_stack_size(void)
{
    return (uint32_t)((uintptr_t)_estack - (uintptr_t)et_stack_bottom);
}

uint32_t et_stack_high_water(void)
{
    const volatile uint32_t *p = et_stack_bottom;
    while (p < _estack && *p == ET_STACK_PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)_estack - (uintptr_t)p);
}

/* Board support for the Nucleo-F746ZG (STM32F746ZG).
 *
 * Clock: the 16 MHz HSI through the main PLL to 216 MHz (M = 8, N = 216,
 * P = 2: 2 MHz into a 432 MHz VCO), with voltage scale 1, over-drive on and 7
 * flash wait states, as RM0385 (sections 3.3.2, 4.1.4, 5.3) requires above
 * 180 MHz. AHB 216 MHz, APB1 54 MHz (/4), APB2 108 MHz (/2).
 * Console: USART3 on PD8 (TX) / PD9 (RX), alternate function 7, wired to the
 * ST-LINK virtual COM port; 115200 8N1 from the 54 MHz APB1 clock.
 * Counter: the DWT cycle counter, extended to 64 bits in software; SysTick
 * interrupts every 2^24 cycles (78 ms) so no 32-bit wrap (every 19.9 s) is
 * missed even if nobody reads the counter.
 * Caches: the L1 instruction and data caches are on (flash at 0x08000000 is
 * read over AXIM, through them); nothing uses DMA, so no maintenance is due.
 *
 * Registers are written by address with the names of the reference manual;
 * the board was written from RM0385 and the ARMv7-M manual without a board at
 * hand: the twin cannot test this file, only compile it.
 */
#include <stdint.h>

#include "et_board.h"

#define ET_REG(addr) (*(volatile uint32_t *)(addr))

/* RCC */
#define ET_RCC_CR ET_REG(0x40023800u)
#define ET_RCC_PLLCFGR ET_REG(0x40023804u)
#define ET_RCC_CFGR ET_REG(0x40023808u)
#define ET_RCC_AHB1ENR ET_REG(0x40023830u)
#define ET_RCC_APB1ENR ET_REG(0x40023840u)
#define ET_RCC_CR_HSIRDY (1u << 1)
#define ET_RCC_CR_PLLON (1u << 24)
#define ET_RCC_CR_PLLRDY (1u << 25)
#define ET_RCC_PLLCFGR_FIELDS 0x0F437FFFu /* PLLM, PLLN, PLLP, PLLSRC, PLLQ */
#define ET_RCC_PLLCFGR_216MHZ ((8u << 0) | (216u << 6) | (0u << 16) | (0u << 22) | (9u << 24))
#define ET_RCC_CFGR_PRESCALERS ((0u << 4) | (5u << 10) | (4u << 13)) /* AHB/1, APB1/4, APB2/2 */
#define ET_RCC_CFGR_SW_PLL 2u
#define ET_RCC_CFGR_SWS_PLL (2u << 2)
#define ET_RCC_AHB1ENR_GPIOD (1u << 3)
#define ET_RCC_APB1ENR_USART3 (1u << 18)
#define ET_RCC_APB1ENR_PWR (1u << 28)

/* PWR and FLASH */
#define ET_PWR_CR1 ET_REG(0x40007000u)
#define ET_PWR_CSR1 ET_REG(0x40007004u)
#define ET_PWR_CR1_VOS_SCALE1 (3u << 14)
#define ET_PWR_CR1_ODEN (1u << 16)
#define ET_PWR_CR1_ODSWEN (1u << 17)
#define ET_PWR_CSR1_ODRDY (1u << 16)
#define ET_PWR_CSR1_ODSWRDY (1u << 17)
#define ET_FLASH_ACR ET_REG(0x40023C00u)
#define ET_FLASH_ACR_7WS_PRFT_ART (7u | (1u << 8) | (1u << 9))

/* GPIOD */
#define ET_GPIOD_MODER ET_REG(0x40020C00u)
#define ET_GPIOD_OSPEEDR ET_REG(0x40020C08u)
#define ET_GPIOD_PUPDR ET_REG(0x40020C0Cu)
#define ET_GPIOD_AFRH ET_REG(0x40020C24u)

/* USART3 */
#define ET_USART3_CR1 ET_REG(0x40004800u)
#define ET_USART3_CR3 ET_REG(0x40004808u)
#define ET_USART3_BRR ET_REG(0x4000480Cu)
#define ET_USART3_ISR ET_REG(0x4000481Cu)
#define ET_USART3_ICR ET_REG(0x40004820u)
#define ET_USART3_RDR ET_REG(0x40004824u)
#define ET_USART3_TDR ET_REG(0x40004828u)
#define ET_USART_CR1_UE (1u << 0)
#define ET_USART_CR1_RE (1u << 2)
#define ET_USART_CR1_TE (1u << 3)
#define ET_USART_CR3_OVRDIS (1u << 12) /* keep receiving after an overrun */
#define ET_USART_ISR_RXNE (1u << 5)
#define ET_USART_ISR_ERRORS 0xEu /* FE, NF, ORE (bits 1..3) */
#define ET_USART_ICR_ERRORS 0xEu /* FECF, NCF, ORECF */
#define ET_USART_ISR_TXE (1u << 7)
#define ET_APB1_HZ 54000000u
#define ET_CONSOLE_BAUD 115200u

/* Core: SCB, SysTick, DWT, cache maintenance */
#define ET_SCB_VTOR ET_REG(0xE000ED08u)
#define ET_SCB_CCR ET_REG(0xE000ED14u)
#define ET_SCB_CCSIDR ET_REG(0xE000ED80u)
#define ET_SCB_CSSELR ET_REG(0xE000ED84u)
#define ET_SCB_ICIALLU ET_REG(0xE000EF50u)
#define ET_SCB_DCISW ET_REG(0xE000EF60u)
#define ET_SCB_CCR_DC (1u << 16)
#define ET_SCB_CCR_IC (1u << 17)
#define ET_SYST_CSR ET_REG(0xE000E010u)
#define ET_SYST_RVR ET_REG(0xE000E014u)
#define ET_SYST_CVR ET_REG(0xE000E018u)
#define ET_DEMCR ET_REG(0xE000EDFCu)
#define ET_DEMCR_TRCENA (1u << 24)
#define ET_DWT_CTRL ET_REG(0xE0001000u)
#define ET_DWT_CYCCNT ET_REG(0xE0001004u)
#define ET_DWT_LAR ET_REG(0xE0001FB0u)
#define ET_DWT_LAR_KEY 0xC5ACCE55u

typedef void (*et_vector)(void);
extern const et_vector et_vectors[];
void et_systick_handler(void);

static void et_barrier(void)
{
    __asm volatile("dsb\n isb" ::: "memory");
}

static void et_clock_216mhz(void)
{
    ET_RCC_APB1ENR |= ET_RCC_APB1ENR_PWR;
    (void)ET_RCC_APB1ENR;                  /* let the enable take effect */
    ET_PWR_CR1 |= ET_PWR_CR1_VOS_SCALE1;  /* only writable while the PLL is off */
    while (!(ET_RCC_CR & ET_RCC_CR_HSIRDY)) {
    }
    ET_RCC_PLLCFGR = (ET_RCC_PLLCFGR & ~ET_RCC_PLLCFGR_FIELDS) | ET_RCC_PLLCFGR_216MHZ;
    ET_RCC_CR |= ET_RCC_CR_PLLON;

    /* Over-drive (RM0385 5.1.4): enable, then switch, each acknowledged. */
    ET_PWR_CR1 |= ET_PWR_CR1_ODEN;
    while (!(ET_PWR_CSR1 & ET_PWR_CSR1_ODRDY)) {
    }
    ET_PWR_CR1 |= ET_PWR_CR1_ODSWEN;
    while (!(ET_PWR_CSR1 & ET_PWR_CSR1_ODSWRDY)) {
    }

    /* Wait states before the faster clock, read back to be sure they hold. */
    ET_FLASH_ACR = ET_FLASH_ACR_7WS_PRFT_ART;
    while ((ET_FLASH_ACR & 0xFu) != 7u) {
    }
    ET_RCC_CFGR = (ET_RCC_CFGR & ~0xFCF0u) | ET_RCC_CFGR_PRESCALERS;
    while (!(ET_RCC_CR & ET_RCC_CR_PLLRDY)) {
    }
    ET_RCC_CFGR = (ET_RCC_CFGR & ~3u) | ET_RCC_CFGR_SW_PLL;
    while ((ET_RCC_CFGR & (3u << 2)) != ET_RCC_CFGR_SWS_PLL) {
    }
}

/* ARMv7-M B2.2.7: invalidate, then enable, the L1 caches. */
static void et_caches_enable(void)
{
    ET_SCB_ICIALLU = 0;
    et_barrier();
    ET_SCB_CCR |= ET_SCB_CCR_IC;
    et_barrier();

    ET_SCB_CSSELR = 0; /* level 1 data cache */
    et_barrier();
    uint32_t ccsidr = ET_SCB_CCSIDR;
    uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
    uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    uint32_t line_shift = (ccsidr & 7u) + 4u;
    uint32_t way_shift = ways > 1u ? (uint32_t)__builtin_clz(ways - 1u) : 0u;
    for (uint32_t set = 0; set < sets; set++) {
        for (uint32_t way = 0; way < ways; way++) {
            ET_SCB_DCISW = (way << way_shift) | (set << line_shift);
        }
    }
    et_barrier();
    ET_SCB_CCR |= ET_SCB_CCR_DC;
    et_barrier();
}

static void et_console_init(void)
{
    ET_RCC_AHB1ENR |= ET_RCC_AHB1ENR_GPIOD;
    ET_RCC_APB1ENR |= ET_RCC_APB1ENR_USART3;
    (void)ET_RCC_APB1ENR;
    /* PD8, PD9: alternate function 7, high speed, pull-up on RX. */
    ET_GPIOD_MODER = (ET_GPIOD_MODER & ~(0xFu << 16)) | (0xAu << 16);
    ET_GPIOD_OSPEEDR |= 0xFu << 16;
    ET_GPIOD_PUPDR = (ET_GPIOD_PUPDR & ~(0xFu << 16)) | (0x4u << 16);
    ET_GPIOD_AFRH = (ET_GPIOD_AFRH & ~0xFFu) | 0x77u;

    ET_USART3_CR1 = 0;
    ET_USART3_CR3 = ET_USART_CR3_OVRDIS;
    ET_USART3_BRR = (ET_APB1_HZ + ET_CONSOLE_BAUD / 2u) / ET_CONSOLE_BAUD; /* 469: 0.05% fast */
    ET_USART3_CR1 = ET_USART_CR1_UE | ET_USART_CR1_RE | ET_USART_CR1_TE;
}

static void et_counter_init(void)
{
    ET_DEMCR |= ET_DEMCR_TRCENA;
    ET_DWT_LAR = ET_DWT_LAR_KEY; /* the M7's DWT is locked at reset */
    ET_DWT_CYCCNT = 0;
    ET_DWT_CTRL |= 1u; /* CYCCNTENA */
    ET_SYST_RVR = 0x00FFFFFFu;
    ET_SYST_CVR = 0;
    ET_SYST_CSR = 0x7u; /* enable, interrupt, core clock */
}

void et_board_init(void)
{
    ET_SCB_VTOR = (uint32_t)(uintptr_t)et_vectors;
    et_clock_216mhz();
    et_caches_enable();
    et_console_init();
    et_counter_init();
}

const char *et_board_name(void)
{
    return "nucleo-f746";
}

void et_console_putc(char c)
{
    while (!(ET_USART3_ISR & ET_USART_ISR_TXE)) {
    }
    ET_USART3_TDR = (uint8_t)c;
}

/* A byte received with a framing or noise error still arrives in RDR (the
 * frame's CRC catches what it spoiled); the error flags are cleared so they
 * do not stay set for the bytes that follow. Overrun detection is off
 * (CR3 OVRDIS): a byte lost while the core was busy is caught the same way. */
int et_console_getc(void)
{
    uint32_t isr = ET_USART3_ISR;
    if (isr & ET_USART_ISR_ERRORS) {
        ET_USART3_ICR = ET_USART_ICR_ERRORS;
    }
    if (isr & ET_USART_ISR_RXNE) {
        return (int)(ET_USART3_RDR & 0xFFu);
    }
    return -1;
}

/* 64-bit cycle count: the high word counts the wraps of CYCCNT seen by
 * successive reads, with interrupts masked so the SysTick handler's read
 * and the caller's cannot interleave. */
static uint32_t et_cycles_last, et_cycles_high;

uint64_t et_counter_read(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    uint32_t now = ET_DWT_CYCCNT;
    if (now < et_cycles_last) {
        et_cycles_high++;
    }
    et_cycles_last = now;
    uint64_t value = ((uint64_t)et_cycles_high << 32) | now;
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
    return value;
}

void et_systick_handler(void)
{
    (void)et_counter_read();
}

const char *et_counter_unit(void)
{
    return "cycles";
}

void et_board_exit(int code)
{
    et_printf("ET_EXIT %d\n", code);
    while (!(ET_USART3_ISR & (1u << 6))) { /* TC: the last byte has left */
    }
    for (;;) {
        __asm volatile("wfi");
    }
}

/* Host check of the fast requantization (et_kernels.h: et_fq_apply, et_fq_mode0)
 * against the reference et_mbqm (TFLM's MultiplyByQuantizedMultiplier).
 *
 * Usage: et_requant_check [N]   (N random cases, default 2000000; edge cases always)
 *   exit 0 and "mismatches 0" when every case agrees; 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>

#include "et_kernels.h"

static unsigned long long et_rng = 0x9E3779B97F4A7C15ull;

static uint32_t next32(void) {
    et_rng = et_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(et_rng >> 32);
}

static long check(int32_t x, int32_t m, int shift) {
    et_fq_t f;
    et_fq_init(&f, m, shift);
    int32_t want = et_mbqm(x, m, shift), got = et_fq_apply(&f, x);
    if (f.mode == 0) {
        int32_t fast = et_fq_mode0(x, f.m, f.sh, f.rlo, f.rhi, f.borrow);
        if (fast != want) got = fast ^ 1 ^ want;          /* count it as a mismatch */
    }
    if (got != want) {
        printf("x=%ld m=%ld shift=%d: %ld != %ld\n", (long)x, (long)m, shift, (long)got, (long)want);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000, bad = 0;
    const int32_t edges[] = {0, 1, -1, 2, -2, 127, -128, 1 << 20, -(1 << 20), INT32_MAX, INT32_MIN, INT32_MIN + 1};
    const int32_t mults[] = {0, 1 << 30, (1 << 30) + 1, INT32_MAX};
    for (unsigned i = 0; i < sizeof edges / sizeof edges[0]; i++)
        for (unsigned j = 0; j < sizeof mults / sizeof mults[0]; j++)
            for (int s = -31; s <= 0; s++) bad += check(edges[i], mults[j], s);
    for (long i = 0; i < n && bad < 10; i++) {
        int32_t x = (int32_t)next32();
        if (i % 3 == 0) x %= 100000;
        if (i % 7 == 0) x = (int32_t)(next32() >> 8) - (1 << 23);
        int32_t m = (int32_t)(next32() >> 1) | 0x40000000;
        int shift = -(int)(next32() % 32);
        if (i % 5 == 0) shift = 0;
        bad += check(x, m, shift);
    }
    printf("mismatches %ld\n", bad);
    return bad != 0;
}

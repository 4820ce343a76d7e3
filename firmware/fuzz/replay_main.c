/* Replays fuzz inputs through a target without libFuzzer, for builds with
 * gcc's sanitizers and for the regression tests.
 *
 * Usage: gcc ... firmware/fuzz/fuzz_image.c firmware/fuzz/replay_main.c -o replay
 *        ./replay FILE...      prints "FILE: <what the target reported>" per file
 * Exit 0 when every file ran (a sanitizer report aborts the process first),
 * 2 on a usage or I/O error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *et_fuzz_last(void);

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s FILE...\n", argv[0]); return 2; }
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { fprintf(stderr, "cannot open %s\n", argv[i]); return 2; }
        size_t cap = 1 << 16, n = 0, got;
        uint8_t *buf = malloc(cap);
        while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
            n += got;
            if (n == cap) { uint8_t *b = realloc(buf, cap *= 2); if (!b) { free(buf); buf = NULL; } else buf = b; }
        }
        fclose(f);
        if (!buf) { fprintf(stderr, "out of memory reading %s\n", argv[i]); return 2; }
        /* An exact-size copy, so an overread past the input is caught as under libFuzzer. */
        uint8_t *exact = malloc(n ? n : 1);
        if (!exact) { free(buf); return 2; }
        for (size_t k = 0; k < n; k++) exact[k] = buf[k];
        free(buf);
        LLVMFuzzerTestOneInput(exact, n);
        printf("%s: %s\n", argv[i], et_fuzz_last());
        free(exact);
    }
    return 0;
}

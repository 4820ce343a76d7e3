/* A small printf for the console and for buffers, with no libc and no doubles.
 *
 * Floats cannot travel through "..." as floats (C promotes them to double,
 * and the F746 has only a single-precision FPU), so %f takes the float's bit
 * pattern, made by ET_F(x), and et_format_float() prints it with float
 * arithmetic and 32-bit integers only.
 */
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "et_board.h"

/* Where formatted characters go: the console, or a bounded buffer. */
typedef struct {
    char *buf;    /* NULL: the console */
    size_t size;  /* buffer capacity including the terminating NUL */
    size_t count; /* characters produced so far (even past the capacity) */
} et_sink;

static void et_sink_put(et_sink *s, const char *p, size_t n)
{
    if (s->buf == NULL) {
        et_console_write(p, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (s->count + i + 1 < s->size) {
                s->buf[s->count + i] = p[i];
            }
        }
    }
    s->count += n;
}

uint32_t et_float_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float et_bits_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Digits of v in base 10 or 16, most significant first; returns the count. */
static int et_utoa(char *out, uint64_t v, unsigned base, int upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v != 0);
    for (int i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    return n;
}

static const uint32_t et_pow10[10] = {1u, 10u, 100u, 1000u, 10000u, 100000u,
                                      1000000u, 10000000u, 100000000u, 1000000000u};

int et_format_float(char *buf, float v, int decimals)
{
    uint32_t bits = et_float_bits(v);
    int n = 0;
    if (decimals < 0) {
        decimals = 0;
    }
    if (decimals > 9) {
        decimals = 9;
    }
    if ((bits & 0x7F800000u) == 0x7F800000u) { /* inf or nan: exponent all ones */
        if (bits & 0x007FFFFFu) {
            memcpy(buf, "nan", 4);
            return 3;
        }
        if (bits & 0x80000000u) {
            buf[n++] = '-';
        }
        memcpy(buf + n, "inf", 4);
        return n + 3;
    }
    if (bits & 0x80000000u) {
        buf[n++] = '-';
        v = -v;
    }
    /* Large values: scale into [1, 10) and print a decimal exponent. */
    int exp10 = 0;
    if (v >= 1e9f) {
        while (v >= 10.0f) {
            v /= 10.0f;
            exp10++;
        }
    }
    uint32_t scale = et_pow10[decimals];
    uint32_t ip = (uint32_t)v;
    uint32_t fp = (uint32_t)((v - (float)ip) * (float)scale + 0.5f);
    if (fp >= scale) { /* rounding carried into the integer part */
        fp -= scale;
        ip++;
    }
    n += et_utoa(buf + n, ip, 10, 0);
    if (decimals > 0) {
        buf[n++] = '.';
        char tmp[12];
        int k = et_utoa(tmp, fp, 10, 0);
        for (int i = k; i < decimals; i++) {
            buf[n++] = '0';
        }
        memcpy(buf + n, tmp, (size_t)k);
        n += k;
    }
    if (exp10 != 0) {
        buf[n++] = 'e';
        buf[n++] = '+';
        n += et_utoa(buf + n, (uint32_t)exp10, 10, 0);
    }
    buf[n] = '\0';
    return n;
}

static void et_vformat(et_sink *s, const char *fmt, va_list ap)
{
    while (*fmt != '\0') {
        const char *start = fmt;
        while (*fmt != '\0' && *fmt != '%') {
            fmt++;
        }
        if (fmt != start) {
            et_sink_put(s, start, (size_t)(fmt - start));
        }
        if (*fmt == '\0') {
            break;
        }
        fmt++; /* the '%' */

        char pad = ' ';
        int width = 0, precision = -1, longs = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }
        if (*fmt == '.') {
            fmt++;
            precision = 0;
            while (*fmt >= '0' && *fmt <= '9') {
                precision = precision * 10 + (*fmt++ - '0');
            }
        }
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }

        char tmp[32];
        const char *out = tmp;
        int n = 0;
        char conv = *fmt;
        if (conv == '\0') {
            break;
        }
        fmt++;
        switch (conv) {
        case 'd':
        case 'i': {
            int64_t v = longs >= 2 ? va_arg(ap, long long) : longs == 1 ? va_arg(ap, long) : va_arg(ap, int);
            uint64_t mag = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
            if (v < 0) {
                tmp[n++] = '-';
            }
            n += et_utoa(tmp + n, mag, 10, 0);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = longs >= 2 ? va_arg(ap, unsigned long long)
                         : longs == 1 ? va_arg(ap, unsigned long)
                                      : va_arg(ap, unsigned int);
            n = et_utoa(tmp, v, conv == 'u' ? 10u : 16u, conv == 'X');
            break;
        }
        case 'c':
            tmp[n++] = (char)va_arg(ap, int);
            break;
        case 's':
            out = va_arg(ap, const char *);
            if (out == NULL) {
                out = "(null)";
            }
            n = (int)strlen(out);
            if (precision >= 0 && n > precision) {
                n = precision;
            }
            pad = ' ';
            break;
        case 'f':
            n = et_format_float(tmp, et_bits_float(va_arg(ap, uint32_t)), precision < 0 ? 6 : precision);
            break;
        case '%':
            tmp[n++] = '%';
            break;
        default: /* unknown conversion: print it as written */
            tmp[n++] = '%';
            tmp[n++] = conv;
            break;
        }
        /* Zero padding goes after a sign, space padding before it. */
        if (pad == '0' && n > 0 && out == tmp && tmp[0] == '-' && width > n) {
            et_sink_put(s, "-", 1);
            out++;
            n--;
            width--;
        }
        for (int i = n; i < width; i++) {
            et_sink_put(s, &pad, 1);
        }
        et_sink_put(s, out, (size_t)n);
    }
}

int et_printf(const char *fmt, ...)
{
    et_sink s = {NULL, 0, 0};
    va_list ap;
    va_start(ap, fmt);
    et_vformat(&s, fmt, ap);
    va_end(ap);
    return (int)s.count;
}

int et_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    et_sink s = {buf, size, 0};
    va_list ap;
    va_start(ap, fmt);
    et_vformat(&s, fmt, ap);
    va_end(ap);
    if (size > 0) {
        buf[s.count < size ? s.count : size - 1] = '\0';
    }
    return (int)s.count;
}

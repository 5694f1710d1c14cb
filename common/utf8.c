/* utf8.c — strict UTF-8 validation. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

/* Length of the sequence starting at lead byte b (0 when b cannot start one),
 * and the range its second byte must fall in; later bytes are 80..BF. The
 * narrowed ranges exclude overlong forms (E0, F0), surrogates (ED) and code
 * points above U+10FFFF (F4). */
static int lead(uint8_t b, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0)
            *lo = 0xA0;
        else if (b == 0xED)
            *hi = 0x9F;
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0)
            *lo = 0x90;
        else if (b == 0xF4)
            *hi = 0x8F;
        return 4;
    }
    return 0;
}

/* How many of the n bytes at p, from the start, are ASCII (below 0x80);
 * eight at a time where possible. */
static size_t ascii_run(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull)
            break;
        i += 8;
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

size_t ldm_utf8_prefix(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        i += ascii_run(p + i, len - i);
        if (i == len)
            break;
        uint8_t lo, hi;
        int n = lead(p[i], &lo, &hi);
        if (n == 0 || len - i < (size_t)n)
            return i;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return i;
        for (int k = 2; k < n; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF)
                return i;
        i += (size_t)n;
    }
    return len;
}

int ldm_utf8_valid(const char *s, size_t len)
{
    return ldm_utf8_prefix(s, len) == len;
}

/* unicode.c — code-point properties, Python's str.lower, NFD accent stripping, UTF-8. */
#include "unicode.h"
#include "unicode_tables.h"
#include "utf8.h"

#define SIGMA_UPPER 0x03A3u
#define SIGMA_LOWER 0x03C3u
#define SIGMA_FINAL 0x03C2u
#define DOTTED_I_UPPER 0x0130u
#define COMBINING_DOT_ABOVE 0x0307u

/* Hangul syllables (Unicode 3.12, conjoining jamo behaviour). */
#define HANGUL_S 0xAC00u
#define HANGUL_L 0x1100u
#define HANGUL_V 0x1161u
#define HANGUL_T 0x11A7u
#define HANGUL_VCOUNT 21u
#define HANGUL_TCOUNT 28u
#define HANGUL_NCOUNT (HANGUL_VCOUNT * HANGUL_TCOUNT)
#define HANGUL_SCOUNT 11172u

int ldm_uc_in_ranges(const struct ldm_uc_range *r, size_t count, uint32_t cp)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

int ldm_uc_category(uint32_t cp)
{
    if (cp < 256)
        return ldm_uc_cat_latin1[cp];
    if (cp > LDM_UC_MAX)
        return LDM_UC_CN;
    /* the last start <= cp */
    size_t lo = 0, hi = ldm_uc_cat_count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ldm_uc_cat_start[mid] <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return ldm_uc_cat_value[lo];
}

int ldm_uc_is_letter(uint32_t cp)
{
    return ldm_uc_category(cp) <= LDM_UC_LO;
}

int ldm_uc_is_number(uint32_t cp)
{
    int c = ldm_uc_category(cp);
    return c >= LDM_UC_ND && c <= LDM_UC_NO;
}

int ldm_uc_is_punct(uint32_t cp)
{
    int c = ldm_uc_category(cp);
    return c >= LDM_UC_PC && c <= LDM_UC_PO;
}

int ldm_uc_is_other(uint32_t cp)
{
    return ldm_uc_category(cp) >= LDM_UC_CC;
}

int ldm_uc_is_mark_nonspacing(uint32_t cp)
{
    return ldm_uc_category(cp) == LDM_UC_MN;
}

int ldm_uc_is_white_space(uint32_t cp)
{
    if (cp < 128)
        return cp == ' ' || (cp >= '\t' && cp <= '\r');
    return ldm_uc_in_ranges(ldm_uc_white_space, ldm_uc_white_space_count, cp);
}

int ldm_uc_is_py_space(uint32_t cp)
{
    if (cp < 128)
        return cp == ' ' || (cp >= '\t' && cp <= '\r') || (cp >= 0x1C && cp <= 0x1F);
    return ldm_uc_in_ranges(ldm_uc_py_space, ldm_uc_py_space_count, cp);
}

uint32_t ldm_uc_lower_cp(uint32_t cp)
{
    if (cp < 128)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    if (cp == DOTTED_I_UPPER)
        return 'i';
    size_t lo = 0, hi = ldm_uc_lower_map_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct ldm_uc_case *m = &ldm_uc_lower_map[mid];
        if (cp < m->lo)
            hi = mid;
        else if (cp > m->hi)
            lo = mid + 1;
        else
            return (cp - m->lo) % m->stride == 0 ? (uint32_t)((int64_t)cp + m->delta) : cp;
    }
    return cp;
}

static int case_ignorable(uint32_t cp)
{
    return ldm_uc_in_ranges(ldm_uc_case_ignorable, ldm_uc_case_ignorable_count, cp);
}

static int cased(uint32_t cp)
{
    return ldm_uc_in_ranges(ldm_uc_cased, ldm_uc_cased_count, cp);
}

/* CPython's rule: Σ at i is final when a cased letter precedes it and none
 * follows it, case-ignorable code points skipped on both sides. */
static int final_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && case_ignorable(s[j - 1]))
        j--;
    if (j == 0 || !cased(s[j - 1]))
        return 0;
    j = i + 1;
    while (j < n && case_ignorable(s[j]))
        j++;
    return j == n || !cased(s[j]);
}

size_t ldm_uc_lower_extra(const uint32_t *in, size_t n)
{
    size_t extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += in[i] == DOTTED_I_UPPER;
    return extra;
}

size_t ldm_uc_lower(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c == DOTTED_I_UPPER) {
            out[w++] = 'i';
            out[w++] = COMBINING_DOT_ABOVE;
        } else if (c == SIGMA_UPPER) {
            out[w++] = final_sigma(in, n, i) ? SIGMA_FINAL : SIGMA_LOWER;
        } else {
            out[w++] = ldm_uc_lower_cp(c);
        }
    }
    return w;
}

unsigned ldm_uc_ccc(uint32_t cp)
{
    if (cp < 0x300)
        return 0;
    size_t lo = 0, hi = ldm_uc_ccc_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < ldm_uc_ccc_map[mid].lo)
            hi = mid;
        else if (cp > ldm_uc_ccc_map[mid].hi)
            lo = mid + 1;
        else
            return ldm_uc_ccc_map[mid].ccc;
    }
    return 0;
}

/* Append the full canonical decomposition of cp to out; returns the count. */
static size_t decompose(uint32_t cp, uint32_t *out)
{
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SCOUNT) {
        uint32_t s = cp - HANGUL_S;
        out[0] = HANGUL_L + s / HANGUL_NCOUNT;
        out[1] = HANGUL_V + (s % HANGUL_NCOUNT) / HANGUL_TCOUNT;
        if (s % HANGUL_TCOUNT == 0)
            return 2;
        out[2] = HANGUL_T + s % HANGUL_TCOUNT;
        return 3;
    }
    if (cp >= 0xC0) {
        size_t lo = 0, hi = ldm_uc_decomp_count;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cp < ldm_uc_decomp[mid].cp)
                hi = mid;
            else if (cp > ldm_uc_decomp[mid].cp)
                lo = mid + 1;
            else {
                const struct ldm_uc_decomp *d = &ldm_uc_decomp[mid];
                for (size_t k = 0; k < d->len; k++)
                    out[k] = ldm_uc_decomp_pool[d->off + k];
                return d->len;
            }
        }
    }
    out[0] = cp;
    return 1;
}

/* Canonical ordering: a stable sort by combining class of each run of code
 * points whose class is not 0 (insertion sort; runs are short). */
static void canonical_order(uint32_t *s, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        unsigned c = ldm_uc_ccc(s[i]);
        if (c == 0)
            continue;
        size_t j = i;
        uint32_t v = s[i];
        while (j > 0) {
            unsigned p = ldm_uc_ccc(s[j - 1]);
            if (p == 0 || p <= c)
                break;
            s[j] = s[j - 1];
            j--;
        }
        s[j] = v;
    }
}

size_t ldm_uc_strip_accents(const uint32_t *in, size_t n, uint32_t *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += decompose(in[i], out + w);
    canonical_order(out, w);
    size_t k = 0;
    for (size_t i = 0; i < w; i++)
        if (!ldm_uc_is_mark_nonspacing(out[i]))
            out[k++] = out[i];
    return k;
}

size_t ldm_uc_decode(const char *s, size_t len, uint32_t *out, size_t *bad)
{
    size_t ok = ldm_utf8_prefix(s, len);
    if (ok != len) {
        if (bad)
            *bad = ok;
        return (size_t)-1;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char b = p[i];
        if (b < 0x80) {
            out[n++] = b;
            i += 1;
        } else if (b < 0xE0) {
            out[n++] = (uint32_t)(b & 0x1F) << 6 | (p[i + 1] & 0x3F);
            i += 2;
        } else if (b < 0xF0) {
            out[n++] = (uint32_t)(b & 0x0F) << 12 | (uint32_t)(p[i + 1] & 0x3F) << 6 |
                       (p[i + 2] & 0x3F);
            i += 3;
        } else {
            out[n++] = (uint32_t)(b & 0x07) << 18 | (uint32_t)(p[i + 1] & 0x3F) << 12 |
                       (uint32_t)(p[i + 2] & 0x3F) << 6 | (p[i + 3] & 0x3F);
            i += 4;
        }
    }
    return n;
}

size_t ldm_uc_encode(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

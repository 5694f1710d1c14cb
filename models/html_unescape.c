/* html_unescape.c — Python's html.unescape() on code points, in place. */
#include "html_unescape.h"
#include "unicode.h"
#include "unicode_tables.h"

#include <string.h>

#define NAME_MAX_CHARS 32
#define REPLACEMENT 0xFFFDu
#define TOO_BIG 0x110000u

/* The entity `name` (len bytes, which may hold any byte) or NULL. The table
 * is in byte order, shorter names before their extensions. */
static const struct ldm_html_entity *find_entity(const char *name, size_t len)
{
    size_t lo = 0, hi = ldm_html_entity_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *e = ldm_html_entities[mid].name;
        size_t elen = strlen(e);
        int c = memcmp(name, e, len < elen ? len : elen);
        if (c == 0)
            c = len < elen ? -1 : len > elen;
        if (c == 0)
            return &ldm_html_entities[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(uint32_t c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

static int is_name_char(uint32_t c)
{
    return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' &&
           c != ';';
}

/* What html.unescape gives for the numeric reference `num` (saturated at
 * TOO_BIG); 0 code points when the reference is dropped. */
static size_t numeric_value(uint32_t num, uint32_t *out)
{
    for (size_t i = 0; i < ldm_html_fix_count; i++)
        if (ldm_html_fixes[i].num == num) {
            *out = ldm_html_fixes[i].cp;
            return 1;
        }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > LDM_UC_MAX) {
        *out = REPLACEMENT;
        return 1;
    }
    if (ldm_uc_in_ranges(ldm_html_invalid, ldm_html_invalid_count, num))
        return 0;
    *out = num;
    return 1;
}

/* A numeric reference at s[i] == '&' (s[i+1] == '#'): its length in *used
 * and its value in out; 0 when there is none. */
static int numeric_ref(const uint32_t *s, size_t n, size_t i, size_t *used, uint32_t *out,
                       size_t *nout)
{
    size_t j = i + 2;
    int hex = j < n && (s[j] == 'x' || s[j] == 'X');
    if (hex)
        j++;
    size_t first = j;
    uint32_t num = 0;
    for (; j < n; j++) {
        int d = hex ? hex_value(s[j]) : is_digit(s[j]) ? (int)(s[j] - '0') : -1;
        if (d < 0)
            break;
        uint64_t v = (uint64_t)num * (hex ? 16u : 10u) + (unsigned)d;
        num = v >= TOO_BIG ? TOO_BIG : (uint32_t)v;
    }
    if (j == first)
        return 0;
    if (j < n && s[j] == ';')
        j++;
    *used = j - i;
    *nout = numeric_value(num, out);
    return 1;
}

/* A named reference at s[i] == '&', as numeric_ref. When only a prefix of
 * the name is an entity, *used covers '&' and that prefix: the rest of the
 * match holds no '&', so the caller copies it unchanged as plain text. */
static int named_ref(const uint32_t *s, size_t n, size_t i, size_t *used, uint32_t *out,
                     size_t *nout)
{
    char name[NAME_MAX_CHARS + 2];
    size_t len = 0, ascii = 0; /* code points matched; leading ASCII ones */
    size_t j = i + 1;
    for (; j < n && len < NAME_MAX_CHARS && is_name_char(s[j]); j++, len++)
        if (ascii == len && s[j] < 0x80)
            name[ascii++] = (char)s[j];
    if (len == 0)
        return 0;
    if (j < n && s[j] == ';') {
        if (ascii == len)
            name[ascii++] = ';';
        len++;
    }
    const struct ldm_html_entity *e = ascii == len ? find_entity(name, len) : NULL;
    size_t x = len;
    if (!e) /* the longest prefix of 2 or more that is a (legacy) entity */
        for (x = ascii < len ? ascii : len - 1; x >= 2; x--)
            if ((e = find_entity(name, x)) != NULL)
                break;
    if (!e)
        return 0;
    *nout = 0;
    out[(*nout)++] = e->cp[0];
    if (e->cp[1])
        out[(*nout)++] = e->cp[1];
    *used = 1 + x;
    return 1;
}

size_t ldm_html_unescape(uint32_t *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '&') {
            s[w++] = s[i++];
            continue;
        }
        uint32_t val[2];
        size_t used = 0, nval = 0;
        int hit = i + 1 < n && s[i + 1] == '#' ? numeric_ref(s, n, i, &used, val, &nval)
                                                : named_ref(s, n, i, &used, val, &nval);
        if (!hit) {
            s[w++] = s[i++];
            continue;
        }
        for (size_t k = 0; k < nval; k++)
            s[w++] = val[k];
        i += used;
    }
    return w;
}

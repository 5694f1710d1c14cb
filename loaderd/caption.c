/* caption.c — caption dropout, tag shuffle with kept tags, prefix; one caption from a list. */
#include "caption.h"
#include "err.h"
#include "models/unicode.h"
#include "utf8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct tag {
    const char *s;
    size_t len;
};

int ldm_caption_check_opts(const struct ldm_caption_opts *o)
{
    if (isnan(o->dropout) || o->dropout < 0 || o->dropout > 1)
        return ldm_fail(LDM_EINVAL, "caption_dropout %g: must be in [0, 1]", o->dropout);
    if (o->keep_tokens < 0)
        return ldm_fail(LDM_EINVAL, "keep_tokens %d: must be 0 or more", o->keep_tokens);
    return 0;
}

/* The code point of the (valid) UTF-8 sequence at s, and its length. */
static size_t decode_one(const char *s, uint32_t *cp)
{
    unsigned char b = (unsigned char)s[0];
    size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    uint32_t v[1];
    ldm_uc_decode(s, n, v, NULL);
    *cp = v[0];
    return n;
}

/* Strip Python str.isspace() characters from both ends of a valid UTF-8 run. */
static void trim(struct tag *t)
{
    uint32_t cp;
    while (t->len > 0) {
        size_t n = decode_one(t->s, &cp);
        if (!ldm_uc_is_py_space(cp))
            break;
        t->s += n;
        t->len -= n;
    }
    while (t->len > 0) {
        size_t start = t->len - 1;
        while (start > 0 && ((unsigned char)t->s[start] & 0xC0) == 0x80)
            start--;
        decode_one(t->s + start, &cp);
        if (!ldm_uc_is_py_space(cp))
            break;
        t->len = start;
    }
}

/* The non-empty trimmed tags between commas (pointing into c); *tags is
 * malloc'd. */
static int split_tags(const char *c, size_t len, struct tag **tags, size_t *n)
{
    size_t max = 1;
    for (size_t i = 0; i < len; i++)
        max += c[i] == ',';
    *tags = malloc(max * sizeof **tags);
    *n = 0;
    if (!*tags)
        return ldm_fail(LDM_ENOMEM, "caption: out of memory");
    for (size_t a = 0; a <= len;) {
        const char *comma = memchr(c + a, ',', len - a);
        size_t e = comma ? (size_t)(comma - c) : len;
        struct tag t = {c + a, e - a};
        trim(&t);
        if (t.len > 0)
            (*tags)[(*n)++] = t;
        a = e + 1;
    }
    return 0;
}

/* prefix, a space, then the tags joined with ", " (prefix alone when there
 * are no tags or no text). */
static int join(const char *prefix, const struct tag *tags, size_t n, char **out)
{
    size_t plen = prefix ? strlen(prefix) : 0, total = plen + 2;
    for (size_t i = 0; i < n; i++)
        total += tags[i].len + 2;
    char *s = malloc(total);
    if (!s)
        return ldm_fail(LDM_ENOMEM, "caption: out of memory");
    size_t k = 0;
    if (plen) {
        memcpy(s, prefix, plen);
        k = plen;
    }
    for (size_t i = 0; i < n; i++) {
        const char *sep = i > 0 ? ", " : k > 0 ? " " : "";
        memcpy(s + k, sep, strlen(sep));
        k += strlen(sep);
        memcpy(s + k, tags[i].s, tags[i].len);
        k += tags[i].len;
    }
    s[k] = '\0';
    *out = s;
    return 0;
}

int ldm_caption_apply(const struct ldm_caption_opts *o, const char *caption, struct ldm_rng *rng,
                      char **out)
{
    *out = NULL;
    int rc = ldm_caption_check_opts(o);
    if (rc)
        return rc;
    if (!caption)
        return ldm_fail(LDM_EINVAL, "caption: NULL");
    size_t len = strlen(caption), ok = ldm_utf8_prefix(caption, len);
    if (ok != len)
        return ldm_fail(LDM_EFORMAT, "caption: invalid UTF-8 at byte %zu", ok);
    if (o->dropout > 0 && ldm_rng_bernoulli(rng, o->dropout)) {
        *out = strdup("");
        return *out ? 0 : ldm_fail(LDM_ENOMEM, "caption: out of memory");
    }
    if (!o->shuffle) {
        struct tag whole = {caption, len};
        return join(o->prefix, &whole, len > 0, out);
    }
    struct tag *tags;
    size_t n;
    rc = split_tags(caption, len, &tags, &n);
    if (rc)
        return rc;
    size_t keep = (size_t)o->keep_tokens < n ? (size_t)o->keep_tokens : n;
    ldm_rng_shuffle(rng, tags + keep, n - keep, sizeof *tags);
    rc = join(o->prefix, tags, n, out);
    free(tags);
    return rc;
}

int ldm_caption_pick(const json_t *field, const char *what, struct ldm_rng *rng, const char **out)
{
    *out = NULL;
    if (!field || json_is_null(field))
        return ldm_fail(LDM_ENOTFOUND, "%s: no caption", what);
    if (json_is_string(field)) {
        *out = json_string_value(field);
        return 0;
    }
    if (!json_is_array(field))
        return ldm_fail(LDM_EFORMAT, "%s: must be a string or a list of strings", what);
    size_t n = json_array_size(field);
    if (n == 0)
        return ldm_fail(LDM_ENOTFOUND, "%s: empty list of captions", what);
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(field, i)))
            return ldm_fail(LDM_EFORMAT, "%s: list item %zu is not a string", what, i);
    size_t pick = n > 1 ? (size_t)ldm_rng_below(rng, n) : 0;
    *out = json_string_value(json_array_get(field, pick));
    return 0;
}

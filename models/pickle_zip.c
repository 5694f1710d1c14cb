/* pickle_zip.c — a read-only reader of stored (uncompressed) zip archives, as torch.save writes. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pickle_int.h"

#define EOCD_SIG 0x06054b50u
#define EOCD_LEN 22
#define LOC64_SIG 0x07064b50u
#define EOCD64_SIG 0x06064b50u
#define CDIR_SIG 0x02014b50u
#define CDIR_LEN 46
#define LOCAL_SIG 0x04034b50u
#define LOCAL_LEN 30

static uint64_t le(const unsigned char *p, int nb)
{
    uint64_t v = 0;
    for (int i = nb - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

struct zdir {
    uint64_t count, offset, size;
};

/* The zip64 end record, when the plain one says to look for it. */
static int read_end64(const unsigned char *b, size_t len, size_t eocd, const char *label,
                      struct zdir *d)
{
    if (eocd < 20 || le(b + eocd - 20, 4) != LOC64_SIG)
        return ldm_fail(LDM_EFORMAT, "%s: zip64 locator missing", label);
    uint64_t at = le(b + eocd - 12, 8);
    if (at > len || len - at < 56 || le(b + at, 4) != EOCD64_SIG)
        return ldm_fail(LDM_EFORMAT, "%s: zip64 end record missing at offset %llu", label,
                        (unsigned long long)at);
    d->count = le(b + at + 32, 8);
    d->size = le(b + at + 40, 8);
    d->offset = le(b + at + 48, 8);
    return 0;
}

static int read_end(const unsigned char *b, size_t len, const char *label, struct zdir *d)
{
    if (len < EOCD_LEN)
        return ldm_fail(LDM_EFORMAT, "%s: %zu bytes, too short for a zip archive", label, len);
    size_t lo = len > EOCD_LEN + 65535 ? len - EOCD_LEN - 65535 : 0, at = len - EOCD_LEN + 1;
    do {
        at--;
        if (le(b + at, 4) == EOCD_SIG)
            break;
    } while (at > lo);
    if (le(b + at, 4) != EOCD_SIG)
        return ldm_fail(LDM_EFORMAT, "%s: no end of central directory (not a zip archive, or truncated)",
                        label);
    d->count = le(b + at + 10, 2);
    d->size = le(b + at + 12, 4);
    d->offset = le(b + at + 16, 4);
    if (d->count == 0xffff || d->size == 0xffffffffu || d->offset == 0xffffffffu)
        return read_end64(b, len, at, label, d);
    return 0;
}

/* Apply the zip64 extra field (id 1): sizes and offset that were saturated. */
static int apply_zip64(const unsigned char *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                       uint64_t *loff, const char *label)
{
    while (xlen >= 4) {
        size_t id = le(x, 2), n = le(x + 2, 2);
        if (n > xlen - 4)
            break;
        if (id == 1) {
            uint64_t *f[3] = {usize, csize, loff};
            size_t k = 0;
            for (int i = 0; i < 3; i++) {
                if (*f[i] != 0xffffffffu)
                    continue;
                if (k + 8 > n)
                    return ldm_fail(LDM_EFORMAT, "%s: zip64 extra field too short", label);
                *f[i] = le(x + 4 + k, 8);
                k += 8;
            }
            return 0;
        }
        x += 4 + n;
        xlen -= 4 + n;
    }
    return 0;
}

/* The data of the member whose local header is at loff. */
static int locate(const unsigned char *b, size_t len, uint64_t loff, uint64_t size,
                  struct pk_zip_member *m, const char *label)
{
    if (loff > len || len - loff < LOCAL_LEN || le(b + loff, 4) != LOCAL_SIG)
        return ldm_fail(LDM_EFORMAT, "%s: member '%s': bad local header offset %llu", label,
                        m->name, (unsigned long long)loff);
    uint64_t start = loff + LOCAL_LEN + le(b + loff + 26, 2) + le(b + loff + 28, 2);
    if (start > len || size > len - start)
        return ldm_fail(LDM_EFORMAT, "%s: member '%s': %llu bytes past the end of the archive",
                        label, m->name, (unsigned long long)size);
    m->data = b + start;
    m->size = (size_t)size;
    return 0;
}

static int parse_entry(const unsigned char *b, size_t len, uint64_t *pos, uint64_t end,
                       struct pk_zip_member *m, const char *label)
{
    const unsigned char *e = b + *pos;
    if (end - *pos < CDIR_LEN || le(e, 4) != CDIR_SIG)
        return ldm_fail(LDM_EFORMAT, "%s: bad central directory entry at offset %llu", label,
                        (unsigned long long)*pos);
    size_t nlen = le(e + 28, 2), xlen = le(e + 30, 2), clen = le(e + 32, 2);
    if (end - *pos - CDIR_LEN < (uint64_t)nlen + xlen + clen)
        return ldm_fail(LDM_EFORMAT, "%s: central directory entry at offset %llu overruns it",
                        label, (unsigned long long)*pos);
    uint64_t usize = le(e + 24, 4), csize = le(e + 20, 4), loff = le(e + 42, 4);
    m->name = strndup((const char *)e + CDIR_LEN, nlen);
    if (!m->name)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", label);
    m->stored = le(e + 10, 2) == 0;
    *pos += CDIR_LEN + nlen + xlen + clen;
    int rc = apply_zip64(e + CDIR_LEN + nlen, xlen, &usize, &csize, &loff, label);
    if (rc == 0 && m->stored && usize != csize)
        rc = ldm_fail(LDM_EFORMAT, "%s: member '%s': stored with sizes %llu and %llu", label,
                      m->name, (unsigned long long)csize, (unsigned long long)usize);
    return rc ? rc : locate(b, len, loff, csize, m, label);
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const struct pk_zip_member *)a)->name, ((const struct pk_zip_member *)b)->name);
}

int pk_zip_read(const unsigned char *buf, size_t len, const char *label,
                struct pk_zip_member **out, size_t *n)
{
    struct zdir d = {0, 0, 0};
    *out = NULL;
    *n = 0;
    int rc = read_end(buf, len, label, &d);
    if (rc)
        return rc;
    if (d.offset > len || d.size > len - d.offset || d.count > d.size / CDIR_LEN)
        return ldm_fail(LDM_EFORMAT, "%s: central directory (%llu entries at %llu) out of bounds",
                        label, (unsigned long long)d.count, (unsigned long long)d.offset);
    struct pk_zip_member *m = calloc(d.count ? d.count : 1, sizeof *m);
    if (!m)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", label);
    uint64_t pos = d.offset;
    size_t i = 0;
    for (; i < d.count && rc == 0; i++)
        rc = parse_entry(buf, len, &pos, d.offset + d.size, &m[i], label);
    if (rc) {
        pk_zip_free(m, i);
        return rc;
    }
    qsort(m, i, sizeof *m, cmp_member);
    *out = m;
    *n = i;
    return 0;
}

void pk_zip_free(struct pk_zip_member *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++)
        free(m[i].name);
    free(m);
}

const struct pk_zip_member *pk_zip_get(const struct pk_zip_member *m, size_t n, const char *name)
{
    struct pk_zip_member key = {.name = (char *)name};
    return n ? bsearch(&key, m, n, sizeof *m, cmp_member) : NULL;
}

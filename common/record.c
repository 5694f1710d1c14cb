/* record.c — encode, parse and check the latent cache's sample records (record.h). */
#include "record.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "err.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ldmpipe assumes a little-endian host");

/* The uint32 header fields after the CRC: where each lives in the header
 * and in struct ldm_record_hdr, and its upper bound. */
struct field {
    const char *name;
    size_t off;    /* in the encoded header */
    size_t member; /* offsetof in struct ldm_record_hdr */
    uint32_t max;
};

/* clang-format off */
#define F(name, off, max) {#name, off, offsetof(struct ldm_record_hdr, name), max}
/* clang-format on */
static const struct field fields[] = {
    F(latent_c, 16, LDM_REC_MAX_CHANNELS),
    F(latent_h, 20, LDM_REC_MAX_LATENT_SIDE),
    F(latent_w, 24, LDM_REC_MAX_LATENT_SIDE),
    F(text_len, 28, LDM_REC_MAX_TOKENS),
    F(text_dim, 32, LDM_REC_MAX_WIDTH),
    F(pooled_dim, 36, LDM_REC_MAX_WIDTH),
    F(n_ids, 40, LDM_REC_MAX_IDS),
    F(bucket, 44, LDM_REC_MAX_SIDE),
    F(orig_h, 48, LDM_REC_MAX_SIDE),
    F(orig_w, 52, LDM_REC_MAX_SIDE),
    F(crop_top, 56, LDM_REC_MAX_SIDE),
    F(crop_left, 60, LDM_REC_MAX_SIDE),
    F(target_h, 64, LDM_REC_MAX_SIDE),
    F(target_w, 68, LDM_REC_MAX_SIDE),
    F(cond_c, 72, LDM_REC_MAX_CHANNELS),
    F(cond_h, 76, LDM_REC_MAX_SIDE),
    F(cond_w, 80, LDM_REC_MAX_SIDE),
};
#undef F
#define NFIELDS (sizeof fields / sizeof fields[0])
#define OFF_RESERVED 84

static uint32_t *member(struct ldm_record_hdr *h, const struct field *f)
{
    return (uint32_t *)((char *)h + f->member);
}

static uint32_t cmember(const struct ldm_record_hdr *h, const struct field *f)
{
    return *(const uint32_t *)((const char *)h + f->member);
}

/* Record "LABEL: TEXT" with `code`. */
__attribute__((format(printf, 3, 4))) static int bad(int code, const char *label, const char *fmt,
                                                     ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return ldm_fail(code, "%s: %s", label ? label : "record", text);
}

static size_t pad8(size_t n)
{
    return (n + LDM_RECORD_ALIGN - 1) & ~(size_t)(LDM_RECORD_ALIGN - 1);
}

/* 1 when a, b, c are all zero or all nonzero. */
static int all_or_none(uint32_t a, uint32_t b, uint32_t c)
{
    return (a == 0) == (b == 0) && (b == 0) == (c == 0);
}

/* The bounds of every field. */
static int check_bounds(const struct ldm_record_hdr *h, const char *label, int code)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        uint32_t v = cmember(h, &fields[i]);
        if (v > fields[i].max)
            return bad(code, label, "%s %u is above its bound %u", fields[i].name, v,
                       fields[i].max);
    }
    if (h->flip != 0 && h->flip != 1)
        return bad(code, label, "flip %d is neither 0 nor 1", h->flip);
    if (h->flags & ~LDM_REC_KNOWN_FLAGS)
        return bad(code, label, "flags 0x%x hold unknown bits 0x%x", h->flags,
                   h->flags & ~LDM_REC_KNOWN_FLAGS);
    return 0;
}

/* The rules tying flags and sizes together. */
static int check_rules(const struct ldm_record_hdr *h, const char *label, int code)
{
    unsigned cond = h->flags & (LDM_REC_COND_LATENT | LDM_REC_COND_PIXELS);
    if (!all_or_none(h->latent_c, h->latent_h, h->latent_w))
        return bad(code, label, "latent %ux%ux%u: some sizes are 0", h->latent_c, h->latent_h,
                   h->latent_w);
    if ((h->flags & LDM_REC_FLIPPED) && h->latent_c == 0)
        return bad(code, label, "flags say flipped latents but the latent is empty");
    if ((h->text_len == 0) != (h->text_dim == 0))
        return bad(code, label, "text %ux%u: one size is 0", h->text_len, h->text_dim);
    if (!(h->flags & LDM_REC_POOLED) != (h->pooled_dim == 0))
        return bad(code, label, "pooled_dim %u does not match the pooled flag (%s)", h->pooled_dim,
                   h->flags & LDM_REC_POOLED ? "set" : "clear");
    if (cond == (LDM_REC_COND_LATENT | LDM_REC_COND_PIXELS))
        return bad(code, label, "flags set both a conditioning latent and conditioning pixels");
    if (!all_or_none(h->cond_c, h->cond_h, h->cond_w) || (cond != 0) != (h->cond_c != 0))
        return bad(code, label, "conditioning %ux%ux%u does not match the flags (%s)", h->cond_c,
                   h->cond_h, h->cond_w, cond ? "conditioning set" : "no conditioning");
    if (cond == LDM_REC_COND_LATENT &&
        (h->cond_h > LDM_REC_MAX_LATENT_SIDE || h->cond_w > LDM_REC_MAX_LATENT_SIDE))
        return bad(code, label, "conditioning latent %ux%u is above its bound %u", h->cond_h,
                   h->cond_w, LDM_REC_MAX_LATENT_SIDE);
    if (cond == LDM_REC_COND_PIXELS && h->cond_c > LDM_REC_MAX_PIXEL_CHANNELS)
        return bad(code, label, "conditioning pixels have %u channels, at most %u", h->cond_c,
                   LDM_REC_MAX_PIXEL_CHANNELS);
    return 0;
}

/* Sizes of a header that passed the checks above (no overflow: every
 * product is far below 2^63). */
static int compute_sizes(const struct ldm_record_hdr *h, const char *label, int code,
                         struct ldm_record_sizes *z)
{
    uint64_t latent = (uint64_t)h->latent_c * h->latent_h * h->latent_w * 2;
    uint64_t cond = (uint64_t)h->cond_c * h->cond_h * h->cond_w;
    if (h->flags & LDM_REC_COND_LATENT)
        cond *= 2;
    uint64_t text = (uint64_t)h->text_len * h->text_dim * 2;
    uint64_t total = LDM_RECORD_HEADER + 2 * pad8(latent) + pad8(text) +
                     pad8((size_t)h->pooled_dim * 2) + pad8((size_t)h->n_ids * 4) + pad8(cond);
    if (h->flags & LDM_REC_FLIPPED)
        total += 2 * pad8(latent);
    if (total > LDM_REC_MAX_BYTES)
        return bad(code, label, "sizes add up to %llu bytes, more than the bound %u",
                   (unsigned long long)total, LDM_REC_MAX_BYTES);
    *z = (struct ldm_record_sizes){(size_t)latent,       (size_t)text, (size_t)h->pooled_dim * 2,
                                   (size_t)h->n_ids * 4, (size_t)cond, (size_t)total};
    return 0;
}

static int check_header(const struct ldm_record_hdr *h, const char *label, int code,
                        struct ldm_record_sizes *z)
{
    int rc = check_bounds(h, label, code);
    if (rc == 0)
        rc = check_rules(h, label, code);
    if (rc == 0)
        rc = compute_sizes(h, label, code, z);
    return rc;
}

int ldm_record_size(const struct ldm_record_hdr *h, struct ldm_record_sizes *out)
{
    if (!h || !out)
        return ldm_fail(LDM_EINVAL, "record: no header");
    return check_header(h, "record", LDM_EINVAL, out);
}

/* ---- sections in order ------------------------------------------------------------ */

/* The i-th section slot in layout order: its pointer in *s, and its bytes
 * (0 when the header has no such section). */
#define NSLOTS 8
static const void **slot(struct ldm_record_sections *s, int i)
{
    const void **p[NSLOTS] = {&s->mean, &s->logvar, &s->flip_mean, &s->flip_logvar,
                              &s->text, &s->pooled, &s->ids,       &s->cond};
    return p[i];
}

static size_t slot_bytes(const struct ldm_record_hdr *h, const struct ldm_record_sizes *z, int i)
{
    switch (i) {
    case 0:
    case 1:
        return z->latent;
    case 2:
    case 3:
        return (h->flags & LDM_REC_FLIPPED) ? z->latent : 0;
    case 4:
        return z->text;
    case 5:
        return z->pooled;
    case 6:
        return z->ids;
    default:
        return z->cond;
    }
}

/* ---- encode ------------------------------------------------------------------------ */

static void put_header(unsigned char *b, const struct ldm_record_hdr *h)
{
    memcpy(b, LDM_RECORD_MAGIC, 4);
    ldm_put16(b + 4, LDM_RECORD_VERSION);
    b[6] = LDM_RECORD_FP16;
    b[7] = (unsigned char)h->flip;
    ldm_put32(b + 8, h->flags);
    ldm_put32(b + 12, 0); /* CRC, filled last */
    for (size_t i = 0; i < NFIELDS; i++)
        ldm_put32(b + fields[i].off, cmember(h, &fields[i]));
    ldm_put32(b + OFF_RESERVED, 0);
}

int ldm_record_encode(const struct ldm_record_hdr *h, const struct ldm_record_sections *s,
                      void *buf, size_t cap, size_t *len)
{
    struct ldm_record_sizes z;
    int rc = ldm_record_size(h, &z);
    if (rc)
        return rc;
    struct ldm_record_sections sec = s ? *s : (struct ldm_record_sections){0};
    for (int i = 0; i < NSLOTS; i++)
        if (slot_bytes(h, &z, i) && !*slot(&sec, i))
            return ldm_fail(LDM_EINVAL, "record: section %d (of %zu bytes) is missing", i,
                            slot_bytes(h, &z, i));
    if (cap < z.total)
        return ldm_fail(LDM_ERANGE, "record: needs %zu bytes, the buffer holds %zu", z.total, cap);
    unsigned char *b = buf;
    memset(b, 0, z.total);
    put_header(b, h);
    size_t off = LDM_RECORD_HEADER;
    for (int i = 0; i < NSLOTS; i++) {
        size_t n = slot_bytes(h, &z, i);
        if (n) /* a little-endian host: uint16_t / uint32_t arrays are their LE bytes */
            memcpy(b + off, *slot(&sec, i), n);
        off += pad8(n);
    }
    ldm_put32(b + 12,
              (uint32_t)crc32(0L, b + LDM_RECORD_HEADER, (uInt)(z.total - LDM_RECORD_HEADER)));
    *len = z.total;
    return 0;
}

int ldm_record_new(const struct ldm_record_hdr *h, const struct ldm_record_sections *s, void **out,
                   size_t *len)
{
    struct ldm_record_sizes z;
    *out = NULL;
    int rc = ldm_record_size(h, &z);
    if (rc)
        return rc;
    void *buf = malloc(z.total);
    if (!buf)
        return ldm_fail(LDM_ENOMEM, "record of %zu bytes", z.total);
    rc = ldm_record_encode(h, s, buf, z.total, len);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

/* ---- parse ------------------------------------------------------------------------- */

/* Magic, version, length of the header, dtype; then the fields. */
static int get_header(const unsigned char *b, size_t len, const char *label, struct ldm_record *r)
{
    if (len < 4 || memcmp(b, LDM_RECORD_MAGIC, 4) != 0)
        return len < 4 ? bad(LDM_EFORMAT, label, "truncated: %zu bytes, no magic", len)
                       : bad(LDM_EFORMAT, label, "wrong magic (not an \"LDMR\" record)");
    if (len < 6)
        return bad(LDM_EFORMAT, label, "truncated: %zu bytes, no version", len);
    r->version = ldm_le16(b + 4);
    if (r->version == 0)
        return bad(LDM_EFORMAT, label, "format version 0");
    if (r->version > LDM_RECORD_VERSION)
        return bad(LDM_EUNSUPPORTED, label, "format version %u is newer than this build's %d",
                   r->version, LDM_RECORD_VERSION);
    if (len < LDM_RECORD_HEADER)
        return bad(LDM_EFORMAT, label, "truncated: %zu bytes, the header alone is %d", len,
                   LDM_RECORD_HEADER);
    if (b[6] != LDM_RECORD_FP16)
        return bad(LDM_EUNSUPPORTED, label, "dtype %u (only %d, fp16, is known)", b[6],
                   LDM_RECORD_FP16);
    if (ldm_le32(b + OFF_RESERVED) != 0)
        return bad(LDM_EFORMAT, label, "reserved field 0x%x is not 0", ldm_le32(b + OFF_RESERVED));
    r->hdr.flip = b[7];
    r->hdr.flags = ldm_le32(b + 8);
    r->crc = ldm_le32(b + 12);
    for (size_t i = 0; i < NFIELDS; i++)
        *member(&r->hdr, &fields[i]) = ldm_le32(b + fields[i].off);
    return 0;
}

static int zero_bytes(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Point the sections into b, checking that the padding is zero. */
static int set_sections(const unsigned char *b, const char *label, struct ldm_record *r)
{
    size_t off = LDM_RECORD_HEADER;
    for (int i = 0; i < NSLOTS; i++) {
        size_t n = slot_bytes(&r->hdr, &r->size, i);
        if (n)
            *slot(&r->sec, i) = b + off;
        if (!zero_bytes(b + off + n, pad8(n) - n))
            return bad(LDM_EFORMAT, label, "padding after section %d (at byte %zu) is not zero", i,
                       off + n);
        off += pad8(n);
    }
    return 0;
}

int ldm_record_parse(const void *val, size_t len, const char *label, struct ldm_record *out)
{
    struct ldm_record r = {0};
    memset(out, 0, sizeof *out);
    if (!val && len)
        return ldm_fail(LDM_EINVAL, "%s: no bytes", label ? label : "record");
    const unsigned char *b = val;
    int rc = get_header(b, len, label, &r);
    if (rc == 0)
        rc = check_header(&r.hdr, label, LDM_EFORMAT, &r.size);
    if (rc)
        return rc;
    if (len != r.size.total)
        return bad(LDM_EFORMAT, label, "length %zu, the header's sizes need %zu (%+lld bytes)", len,
                   r.size.total, (long long)len - (long long)r.size.total);
    rc = set_sections(b, label, &r);
    if (rc)
        return rc;
    r.data = val;
    r.len = len;
    *out = r;
    return 0;
}

int ldm_record_check_crc(const struct ldm_record *r, const char *label)
{
    if (!r || !r->data || r->len < LDM_RECORD_HEADER)
        return ldm_fail(LDM_EINVAL, "%s: not a parsed record", label ? label : "record");
    const unsigned char *b = r->data;
    uint32_t c = (uint32_t)crc32(0L, b + LDM_RECORD_HEADER, (uInt)(r->len - LDM_RECORD_HEADER));
    if (c != r->crc)
        return bad(LDM_EFORMAT, label, "payload CRC-32 is 0x%08x, the header says 0x%08x", c,
                   r->crc);
    return 0;
}

/* test_record.c — the latent cache's sample record: round trips, bounds, malformed input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"
#include "record.h"
#include "testutil.h"

Suite *suite_record(void);

/* A record's header and section buffers, filled with a pattern. */
struct sample {
    struct ldm_record_hdr h;
    struct ldm_record_sections s;
    uint16_t *f16[6]; /* mean, logvar, flip mean, flip logvar, text, pooled */
    uint32_t *ids;
    void *cond;
};

static uint16_t *f16_fill(size_t n, unsigned seed)
{
    uint16_t *p = malloc((n ? n : 1) * 2);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint16_t)(seed * 7919u + i * 2654435761u);
    return p;
}

/* Odd sizes everywhere, so that every section needs padding. */
static void sample_make(struct sample *x, unsigned flags)
{
    memset(x, 0, sizeof *x);
    struct ldm_record_hdr *h = &x->h;
    *h = (struct ldm_record_hdr){.flags = flags,
                                 .latent_c = 3,
                                 .latent_h = 5,
                                 .latent_w = 3,
                                 .text_len = 7,
                                 .text_dim = 9,
                                 .n_ids = 5,
                                 .bucket = 3,
                                 .orig_h = 480,
                                 .orig_w = 640,
                                 .crop_top = 2,
                                 .crop_left = 17,
                                 .target_h = 40,
                                 .target_w = 24,
                                 .flip = 1};
    if (flags & LDM_REC_POOLED)
        h->pooled_dim = 11;
    if (flags & (LDM_REC_COND_LATENT | LDM_REC_COND_PIXELS)) {
        h->cond_c = 3;
        h->cond_h = 5;
        h->cond_w = 3;
    }
    size_t lat = 3 * 5 * 3, n[6] = {lat, lat, lat, lat, 7 * 9, h->pooled_dim};
    for (int i = 0; i < 6; i++)
        x->f16[i] = f16_fill(n[i], (unsigned)i + 1);
    x->ids = malloc(5 * sizeof *x->ids);
    for (uint32_t i = 0; i < 5; i++)
        x->ids[i] = 49406u + i * 1000003u;
    x->cond = f16_fill(3 * 5 * 3, 99);
    x->s = (struct ldm_record_sections){x->f16[0], x->f16[1], NULL,   NULL,
                                        x->f16[4], NULL,      x->ids, NULL};
    if (flags & LDM_REC_FLIPPED) {
        x->s.flip_mean = x->f16[2];
        x->s.flip_logvar = x->f16[3];
    }
    if (flags & LDM_REC_POOLED)
        x->s.pooled = x->f16[5];
    if (flags & (LDM_REC_COND_LATENT | LDM_REC_COND_PIXELS))
        x->s.cond = x->cond;
}

static void sample_free(struct sample *x)
{
    for (int i = 0; i < 6; i++)
        free(x->f16[i]);
    free(x->ids);
    free(x->cond);
}

static void *encode(const struct sample *x, size_t *len)
{
    void *buf;
    ck_ok(ldm_record_new(&x->h, &x->s, &buf, len));
    return buf;
}

#define SAME(f) ck_assert_msg(a->f == b->f, #f ": %u != %u", (unsigned)a->f, (unsigned)b->f)
static void same_header(const struct ldm_record_hdr *a, const struct ldm_record_hdr *b)
{
    SAME(flags);
    SAME(flip);
    SAME(latent_c);
    SAME(latent_h);
    SAME(latent_w);
    SAME(text_len);
    SAME(text_dim);
    SAME(pooled_dim);
    SAME(n_ids);
    SAME(bucket);
    SAME(orig_h);
    SAME(orig_w);
    SAME(crop_top);
    SAME(crop_left);
    SAME(target_h);
    SAME(target_w);
    SAME(cond_c);
    SAME(cond_h);
    SAME(cond_w);
}
#undef SAME

static void same_section(const void *got, const void *want, size_t n, const char *name)
{
    if (!want) {
        ck_assert_msg(got == NULL, "%s present but not written", name);
        return;
    }
    ck_assert_msg(got != NULL, "%s missing", name);
    ck_assert_msg(memcmp(got, want, n) == 0, "%s differs", name);
}

/* Parse `buf` and check every field and section against x. */
static void check_parsed(const void *buf, size_t len, const struct sample *x)
{
    struct ldm_record r;
    ck_ok(ldm_record_parse(buf, len, "k", &r));
    ck_ok(ldm_record_check_crc(&r, "k"));
    same_header(&r.hdr, &x->h);
    ck_assert_uint_eq(r.version, LDM_RECORD_VERSION);
    ck_assert_uint_eq(r.len, len);
    ck_assert_uint_eq(r.size.total, len);
    same_section(r.sec.mean, x->s.mean, r.size.latent, "mean");
    same_section(r.sec.logvar, x->s.logvar, r.size.latent, "logvar");
    same_section(r.sec.flip_mean, x->s.flip_mean, r.size.latent, "flip_mean");
    same_section(r.sec.flip_logvar, x->s.flip_logvar, r.size.latent, "flip_logvar");
    same_section(r.sec.text, x->s.text, r.size.text, "text");
    same_section(r.sec.pooled, x->s.pooled, r.size.pooled, "pooled");
    same_section(r.sec.ids, x->s.ids, r.size.ids, "ids");
    same_section(r.sec.cond, x->s.cond, r.size.cond, "cond");
    const void *secs[] = {r.sec.mean, r.sec.logvar, r.sec.flip_mean, r.sec.flip_logvar,
                          r.sec.text, r.sec.pooled, r.sec.ids,       r.sec.cond};
    for (int i = 0; i < 8; i++)
        if (secs[i])
            ck_assert_msg(((const char *)secs[i] - (const char *)buf) % LDM_RECORD_ALIGN == 0,
                          "section %d not aligned within the record", i);
}

/* ---- round trips --------------------------------------------------------------------- */

START_TEST(every_combination)
{
    int done = 0;
    for (unsigned flags = 0; flags <= LDM_REC_KNOWN_FLAGS; flags++) {
        if ((flags & LDM_REC_COND_LATENT) && (flags & LDM_REC_COND_PIXELS))
            continue;
        struct sample x;
        sample_make(&x, flags);
        size_t len;
        void *buf = encode(&x, &len);
        struct ldm_record_sizes z;
        ck_ok(ldm_record_size(&x.h, &z));
        ck_assert_uint_eq(z.total, len);
        ck_assert_uint_eq(len % LDM_RECORD_ALIGN, 0);
        check_parsed(buf, len, &x);
        free(buf);
        sample_free(&x);
        done++;
    }
    ck_assert_int_eq(done, 12);
}
END_TEST

START_TEST(sizes_add_up)
{
    struct sample x;
    sample_make(&x, LDM_REC_POOLED | LDM_REC_FLIPPED | LDM_REC_COND_PIXELS);
    struct ldm_record_sizes z;
    ck_ok(ldm_record_size(&x.h, &z));
    ck_assert_uint_eq(z.latent, 3 * 5 * 3 * 2);
    ck_assert_uint_eq(z.text, 7 * 9 * 2);
    ck_assert_uint_eq(z.pooled, 22);
    ck_assert_uint_eq(z.ids, 20);
    ck_assert_uint_eq(z.cond, 45); /* uint8 pixels */
    /* 88 + 4 x 96 (90) + 128 (126) + 24 (22) + 24 (20) + 48 (45) */
    ck_assert_uint_eq(z.total, 88 + 4 * 96 + 128 + 24 + 24 + 48);
    x.h.flags = LDM_REC_POOLED | LDM_REC_COND_LATENT;
    ck_ok(ldm_record_size(&x.h, &z));
    ck_assert_uint_eq(z.cond, 90);
    sample_free(&x);
}
END_TEST

/* The empty caption's blob: text and pooled, no latent, no image sizes. */
START_TEST(no_latent)
{
    struct sample x;
    sample_make(&x, LDM_REC_POOLED);
    x.h.latent_c = x.h.latent_h = x.h.latent_w = 0;
    x.h.orig_h = x.h.orig_w = x.h.target_h = x.h.target_w = x.h.crop_top = x.h.crop_left = 0;
    x.h.flip = 0;
    x.s.mean = x.s.logvar = NULL;
    size_t len;
    void *buf = encode(&x, &len);
    check_parsed(buf, len, &x);
    free(buf);
    sample_free(&x);
}
END_TEST

/* Values read in place from a buffer at an odd address. */
START_TEST(unaligned_view)
{
    struct sample x;
    sample_make(&x, LDM_REC_POOLED);
    size_t len;
    void *buf = encode(&x, &len);
    unsigned char *odd = malloc(len + 1);
    memcpy(odd + 1, buf, len);
    struct ldm_record r;
    ck_ok(ldm_record_parse(odd + 1, len, NULL, &r));
    for (size_t i = 0; i < 5; i++)
        ck_assert_uint_eq(ldm_record_u32(r.sec.ids, i), x.ids[i]);
    for (size_t i = 0; i < 11; i++)
        ck_assert_uint_eq(ldm_record_f16(r.sec.pooled, i), x.f16[5][i]);
    free(odd);
    free(buf);
    sample_free(&x);
}
END_TEST

/* The layout is the documented one, byte for byte. */
START_TEST(layout_fixed)
{
    struct sample x;
    sample_make(&x, LDM_REC_POOLED);
    size_t len;
    unsigned char *b = encode(&x, &len);
    ck_assert_mem_eq(b, "LDMR", 4);
    ck_assert_uint_eq(ldm_le16(b + 4), 1);
    ck_assert_uint_eq(b[6], 1);
    ck_assert_uint_eq(b[7], 1);
    ck_assert_uint_eq(ldm_le32(b + 8), LDM_REC_POOLED);
    ck_assert_uint_eq(ldm_le32(b + 16), 3);
    ck_assert_uint_eq(ldm_le32(b + 36), 11);
    ck_assert_uint_eq(ldm_le32(b + 40), 5);
    ck_assert_uint_eq(ldm_le32(b + 48), 480);
    ck_assert_uint_eq(ldm_le32(b + 60), 17);
    ck_assert_uint_eq(ldm_le32(b + 68), 24);
    ck_assert_uint_eq(ldm_le16(b + 88), x.f16[0][0]);
    ck_assert_uint_eq(ldm_le16(b + 88 + 96), x.f16[1][0]); /* 96 = 90 latent bytes padded */
    ck_assert_uint_eq(ldm_le32(b + 88 + 2 * 96 + 128 + 24), x.ids[0]); /* after text, pooled */
    free(b);
    sample_free(&x);
}
END_TEST

/* ---- encode errors ------------------------------------------------------------------- */

START_TEST(encode_errors)
{
    struct sample x;
    sample_make(&x, LDM_REC_POOLED);
    char buf[64];
    size_t len;
    ck_fails_with(ldm_record_encode(&x.h, &x.s, buf, sizeof buf, &len), LDM_ERANGE, "needs");
    x.s.pooled = NULL;
    void *p;
    ck_fails_with(ldm_record_new(&x.h, &x.s, &p, &len), LDM_EINVAL, "section 5");
    ck_assert_ptr_null(p);
    x.h.flags = LDM_REC_POOLED | LDM_REC_COND_LATENT | LDM_REC_COND_PIXELS;
    ck_fails_with(ldm_record_new(&x.h, &x.s, &p, &len), LDM_EINVAL, "both");
    sample_free(&x);
    sample_make(&x, 0);
    x.h.latent_h = 0;
    ck_fails_with(ldm_record_new(&x.h, &x.s, &p, &len), LDM_EINVAL, "latent 3x0x3");
    sample_free(&x);
}
END_TEST

/* ---- malformed values ------------------------------------------------------------------ */

struct bytes {
    unsigned char *b;
    size_t len;
};

static struct bytes good(unsigned flags)
{
    struct sample x;
    sample_make(&x, flags);
    struct bytes v;
    v.b = encode(&x, &v.len);
    sample_free(&x);
    return v;
}

#define ck_rejects(buf, len, code, needle)                                                         \
    do {                                                                                           \
        struct ldm_record r_;                                                                      \
        ck_fails_with(ldm_record_parse((buf), (len), "a.tar/0001", &r_), (code), (needle));        \
        ck_assert_ptr_null(r_.data);                                                               \
        ck_assert_msg(strncmp(ldm_errmsg(), "a.tar/0001: ", 12) == 0, "detail %s", ldm_errmsg());  \
    } while (0)

START_TEST(wrong_magic)
{
    struct bytes v = good(0);
    v.b[0] = 'X';
    ck_rejects(v.b, v.len, LDM_EFORMAT, "wrong magic");
    free(v.b);
}
END_TEST

START_TEST(versions)
{
    struct bytes v = good(0);
    ldm_put16(v.b + 4, 2);
    ck_rejects(v.b, v.len, LDM_EUNSUPPORTED, "version 2 is newer");
    ck_rejects(v.b, 10, LDM_EUNSUPPORTED, "newer"); /* newer beats truncated */
    ldm_put16(v.b + 4, 0);
    ck_rejects(v.b, v.len, LDM_EFORMAT, "version 0");
    free(v.b);
}
END_TEST

START_TEST(truncated)
{
    struct bytes v = good(LDM_REC_POOLED);
    ck_rejects(v.b, 0, LDM_EFORMAT, "truncated");
    ck_rejects(v.b, 3, LDM_EFORMAT, "truncated");
    ck_rejects(v.b, 5, LDM_EFORMAT, "no version");
    ck_rejects(v.b, 87, LDM_EFORMAT, "the header alone is 88");
    ck_rejects(v.b, 88, LDM_EFORMAT, "length 88");
    ck_rejects(v.b, v.len - 8, LDM_EFORMAT, "(-8 bytes)");
    free(v.b);
}
END_TEST

START_TEST(length_off_by_one)
{
    struct bytes v = good(LDM_REC_FLIPPED);
    unsigned char *more = calloc(1, v.len + 1);
    memcpy(more, v.b, v.len);
    ck_rejects(more, v.len + 1, LDM_EFORMAT, "(+1 bytes)");
    ck_rejects(v.b, v.len - 1, LDM_EFORMAT, "(-1 bytes)");
    struct ldm_record r;
    ck_ok(ldm_record_parse(more, v.len, "ok", &r)); /* the exact length still parses */
    free(more);
    free(v.b);
}
END_TEST

/* A header field set to its bound + 1 is refused with its name. */
START_TEST(oversized_counts)
{
    static const struct {
        size_t off;
        uint32_t v;
        const char *needle;
    } cases[] = {
        {16, 65, "latent_c 65 is above its bound 64"},
        {20, 2049, "latent_h 2049"},
        {24, 0xffffffffu, "latent_w 4294967295"},
        {28, 1025, "text_len 1025"},
        {32, 16385, "text_dim 16385"},
        {36, 16385, "pooled_dim 16385"},
        {40, 4097, "n_ids 4097"},
        {44, 65537, "bucket 65537"},
        {48, 65537, "orig_h"},
        {60, 65537, "crop_left"},
        {68, 65537, "target_w"},
        {72, 65, "cond_c 65"},
        {80, 65537, "cond_w"},
    };
    struct bytes v = good(0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char *c = malloc(v.len);
        memcpy(c, v.b, v.len);
        ldm_put32(c + cases[i].off, cases[i].v);
        ck_rejects(c, v.len, LDM_EFORMAT, cases[i].needle);
        free(c);
    }
    free(v.b);
}
END_TEST

/* Sizes each within bounds that together exceed the record bound. */
START_TEST(total_too_large)
{
    struct bytes v = good(LDM_REC_FLIPPED);
    ldm_put32(v.b + 16, 64);
    ldm_put32(v.b + 20, 2048);
    ldm_put32(v.b + 24, 2048);
    ck_rejects(v.b, v.len, LDM_EFORMAT, "more than the bound");
    free(v.b);
}
END_TEST

static void patch_rejects(unsigned flags, size_t off, int width, uint32_t val, int code,
                          const char *needle)
{
    struct bytes v = good(flags);
    if (width == 1)
        v.b[off] = (unsigned char)val;
    else
        ldm_put32(v.b + off, val);
    ck_rejects(v.b, v.len, code, needle);
    free(v.b);
}

START_TEST(inconsistent_header)
{
    patch_rejects(0, 6, 1, 2, LDM_EUNSUPPORTED, "dtype 2");
    patch_rejects(0, 7, 1, 2, LDM_EFORMAT, "flip 2");
    patch_rejects(0, 8, 4, 0x30, LDM_EFORMAT, "unknown bits 0x30");
    patch_rejects(LDM_REC_COND_LATENT, 8, 4, LDM_REC_COND_LATENT | LDM_REC_COND_PIXELS, LDM_EFORMAT,
                  "both");
    patch_rejects(0, 8, 4, LDM_REC_POOLED, LDM_EFORMAT, "pooled_dim 0");
    patch_rejects(LDM_REC_POOLED, 8, 4, 0, LDM_EFORMAT, "pooled_dim 11");
    patch_rejects(0, 8, 4, LDM_REC_COND_PIXELS, LDM_EFORMAT, "conditioning 0x0x0");
    patch_rejects(LDM_REC_COND_PIXELS, 72, 4, 5, LDM_EFORMAT, "5 channels");
    patch_rejects(LDM_REC_COND_LATENT, 76, 4, 2049, LDM_EFORMAT, "conditioning latent 2049");
    patch_rejects(0, 20, 4, 0, LDM_EFORMAT, "latent 3x0x3");
    patch_rejects(0, 28, 4, 0, LDM_EFORMAT, "text 0x9");
    patch_rejects(0, 84, 4, 1, LDM_EFORMAT, "reserved");
}
END_TEST

START_TEST(flipped_needs_latent)
{
    struct sample x;
    sample_make(&x, LDM_REC_FLIPPED);
    x.h.latent_c = x.h.latent_h = x.h.latent_w = 0;
    void *p;
    size_t len;
    ck_fails_with(ldm_record_new(&x.h, &x.s, &p, &len), LDM_EINVAL, "flipped latents");
    sample_free(&x);
}
END_TEST

START_TEST(padding_must_be_zero)
{
    struct bytes v = good(0);
    v.b[88 + 96 - 1] = 1; /* the last padding byte after the mean (90 of 96) */
    ck_rejects(v.b, v.len, LDM_EFORMAT, "padding after section 0");
    free(v.b);
}
END_TEST

START_TEST(crc_catches_payload_damage)
{
    struct bytes v = good(LDM_REC_POOLED);
    struct ldm_record r;
    v.b[100] ^= 0x10;
    ck_ok(ldm_record_parse(v.b, v.len, "k", &r)); /* the structure is intact */
    ck_fails_with(ldm_record_check_crc(&r, "a.tar/0001"), LDM_EFORMAT, "CRC-32");
    v.b[100] ^= 0x10;
    ck_ok(ldm_record_check_crc(&r, "k"));
    free(v.b);
}
END_TEST

Suite *suite_record(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("round trip");
    tcase_add_test(tc, every_combination);
    tcase_add_test(tc, sizes_add_up);
    tcase_add_test(tc, no_latent);
    tcase_add_test(tc, unaligned_view);
    tcase_add_test(tc, layout_fixed);
    tcase_add_test(tc, encode_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_add_test(tc, wrong_magic);
    tcase_add_test(tc, versions);
    tcase_add_test(tc, truncated);
    tcase_add_test(tc, length_off_by_one);
    tcase_add_test(tc, oversized_counts);
    tcase_add_test(tc, total_too_large);
    tcase_add_test(tc, inconsistent_header);
    tcase_add_test(tc, flipped_needs_latent);
    tcase_add_test(tc, padding_must_be_zero);
    tcase_add_test(tc, crc_catches_payload_damage);
    suite_add_tcase(s, tc);
    return s;
}

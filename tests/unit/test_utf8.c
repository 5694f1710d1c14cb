/* test_utf8.c — strict UTF-8 validation: the classic edge cases and an
 * exhaustive comparison with a plain decoder for every string of up to
 * three bytes. */
#include <stdint.h>
#include <string.h>

#include "testutil.h"
#include "utf8.h"

struct tcase {
    const char *s;
    size_t prefix; /* expected ldm_utf8_prefix; ALL when the whole is valid */
};

#define ALL ((size_t)-1)

static void expect(const struct tcase *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(t[i].s);
        size_t want = t[i].prefix == ALL ? len : t[i].prefix;
        size_t got = ldm_utf8_prefix(t[i].s, len);
        ck_assert_msg(got == want, "case %zu: prefix %zu, expected %zu", i, got, want);
        ck_assert_int_eq(ldm_utf8_valid(t[i].s, len), t[i].prefix == ALL);
    }
}

START_TEST(valid_boundaries)
{
    static const struct tcase t[] = {
        {"", ALL},
        {"plain ASCII, long enough for the eight-byte path: 0123456789", ALL},
        {"\x7f", ALL},
        {"\xc2\x80", ALL},             /* U+0080, first 2-byte */
        {"\xdf\xbf", ALL},             /* U+07FF, last 2-byte */
        {"\xe0\xa0\x80", ALL},         /* U+0800, first 3-byte */
        {"\xed\x9f\xbf", ALL},         /* U+D7FF, below the surrogates */
        {"\xee\x80\x80", ALL},         /* U+E000, above them */
        {"\xef\xbf\xbd", ALL},         /* U+FFFD */
        {"\xef\xbf\xbe", ALL},         /* U+FFFE, a noncharacter yet valid */
        {"\xef\xbf\xbf", ALL},         /* U+FFFF */
        {"\xf0\x90\x80\x80", ALL},     /* U+10000, first 4-byte */
        {"\xf4\x8f\xbf\xbf", ALL},     /* U+10FFFF, the last code point */
        {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", ALL}, /* Greek "kosme" */
        {"caf\xc3\xa9 \xf0\x9f\x98\x80 ok", ALL},
    };
    expect(t, sizeof t / sizeof t[0]);
    ck_assert_int_eq(ldm_utf8_valid(NULL, 0), 1);
    ck_assert_int_eq(ldm_utf8_valid("a\0b", 3), 1); /* NUL is valid UTF-8 */
}
END_TEST

START_TEST(overlong_forms)
{
    static const struct tcase t[] = {
        {"\xc0\x80", 0},             /* NUL in two bytes */
        {"\xc0\xaf", 0},             /* '/' in two bytes */
        {"\xc1\xbf", 0},             /* U+007F in two bytes */
        {"\xe0\x80\xaf", 0},         /* '/' in three */
        {"\xe0\x9f\xbf", 0},         /* U+07FF in three */
        {"\xf0\x80\x80\xaf", 0},     /* '/' in four */
        {"\xf0\x8f\xbf\xbf", 0},     /* U+FFFF in four */
        {"ab\xf8\x80\x80\x80\xaf", 2}, /* five bytes */
        {"\xfc\x80\x80\x80\x80\xaf", 0}, /* six bytes */
    };
    expect(t, sizeof t / sizeof t[0]);
}
END_TEST

START_TEST(surrogates_and_beyond)
{
    static const struct tcase t[] = {
        {"\xed\xa0\x80", 0},                 /* U+D800 */
        {"\xed\xad\xbf", 0},                 /* U+DB7F */
        {"\xed\xb0\x80", 0},                 /* U+DC00 */
        {"\xed\xbf\xbf", 0},                 /* U+DFFF */
        {"x\xed\xa0\x80\xed\xb0\x80", 1},    /* a CESU-8 pair */
        {"\xf4\x90\x80\x80", 0},             /* U+110000 */
        {"\xf5\x80\x80\x80", 0},
        {"\xf7\xbf\xbf\xbf", 0},             /* U+1FFFFF */
        {"\xfe", 0},
        {"\xff", 0},
        {"ok\xfe\xfe\xff\xff", 2},
    };
    expect(t, sizeof t / sizeof t[0]);
}
END_TEST

START_TEST(truncated_and_stray)
{
    static const struct tcase t[] = {
        {"\x80", 0},                 /* lone continuation bytes */
        {"\xbf", 0},
        {"a\x80\xbf", 1},
        {"\xc3", 0},                 /* ends inside a sequence */
        {"ab\xe2\x82", 2},
        {"\xf0\x9f\x98", 0},
        {"\xc3(", 0},                /* continuation missing mid-text */
        {"\xe2(\xa1", 0},
        {"\xe2\x82(", 0},
        {"\xf0\x9f(\x80", 0},
        {"\xf0\x9f\x98(", 0},
        {"abcdefgh\xc3\xa9ijklmnop\xc3", 18}, /* after the eight-byte path */
        {"\xc0", 0},
        {"\xc1", 0},
    };
    expect(t, sizeof t / sizeof t[0]);
}
END_TEST

/* The reference: decode leniently (any lead byte with its continuations),
 * then accept only when each code point is in range, not a surrogate, and
 * written in its shortest form. */
static int ref_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        int len = b < 0x80 ? 1 : b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 && b < 0xf0 ? 3
                               : b >= 0xc0 && b < 0xe0 ? 2 : 0;
        if (len == 0 || i + (size_t)len > n)
            return 0;
        uint32_t cp = len == 1 ? b : (uint32_t)b & (0x7fu >> len);
        for (int k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3fu);
        }
        uint32_t min = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

START_TEST(exhaustive_up_to_three_bytes)
{
    uint8_t b[3];
    for (uint32_t v = 0; v < 1u << 24; v++) {
        b[0] = (uint8_t)(v >> 16);
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)v;
        for (size_t n = 1; n <= 3; n++) {
            if (n < 3 && (v & ((1u << (8 * (3 - n))) - 1)) != 0)
                continue; /* shorter strings: once each */
            if (ldm_utf8_valid((const char *)b, n) != ref_valid(b, n))
                ck_abort_msg("%zu bytes %02x %02x %02x: ours %d, reference %d", n, b[0], b[1],
                             b[2], ldm_utf8_valid((const char *)b, n), ref_valid(b, n));
        }
    }
}
END_TEST

START_TEST(every_code_point_round_trips)
{
    uint8_t b[4];
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        size_t n;
        if (cp < 0x80) {
            b[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[0] = (uint8_t)(0xc0 | cp >> 6);
            b[1] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xe0 | cp >> 12);
            b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
            b[2] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            b[0] = (uint8_t)(0xf0 | cp >> 18);
            b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
            b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
            b[3] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 4;
        }
        int want = !(cp >= 0xd800 && cp <= 0xdfff);
        if (ldm_utf8_valid((const char *)b, n) != want)
            ck_abort_msg("U+%04X: valid %d, expected %d", cp, !want, want);
        if (n > 1 && ldm_utf8_prefix((const char *)b, n - 1) != 0)
            ck_abort_msg("U+%04X cut short is not rejected", cp);
    }
}
END_TEST

Suite *suite_utf8(void);
Suite *suite_utf8(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("utf8");
    tcase_add_test(tc, valid_boundaries);
    tcase_add_test(tc, overlong_forms);
    tcase_add_test(tc, surrogates_and_beyond);
    tcase_add_test(tc, truncated_and_stray);
    tcase_add_test(tc, exhaustive_up_to_three_bytes);
    tcase_add_test(tc, every_code_point_round_trips);
    suite_add_tcase(s, tc);
    return s;
}

/* test_wordpiece.c — BERT uncased WordPiece on a small vocabulary, ids worked out by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/wordpiece.h"
#include "testutil.h"

Suite *suite_wordpiece(void);

/* id = line number */
static const char *const vocab_lines[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",                       /* 0-4 */
    "the", "cat", "sat", "un", "##aff", "##able", "play", "##ing", "##s", /* 5-13 */
    ".", ",", "!", "?", "'",                                              /* 14-18 */
    "cafe", "resume", "naive", "facade",                                  /* 19-22 */
    "\xe6\x97\xa5", "\xe6\x9c\xac", "\xe8\xaa\x9e",                       /* 23-25: 日 本 語 */
    "hello", "world", "a", "##a", "-", "don", "t",                        /* 26-32 */
    /* 33-38: σ ##ος ο ##δ ##ο ##σ */
    "\xcf\x83", "##\xce\xbf\xcf\x82", "\xce\xbf", "##\xce\xb4", "##\xce\xbf", "##\xcf\x83",
    "istanbul", "##b", "[", "]", "cls",                                   /* 39-43 */
    "\xc2\xbf", "que", "\xc2\xab", "\xc2\xbb", "\xe2\x80\xa6",            /* 44-48: ¿ que « » … */
    "\xe1\x84\x92", "##\xe1\x85\xa1", "##\xe1\x86\xab",                   /* 49-51: Hangul jamo */
    "i", "(", ")", "x", "##x", "#", "$", "5", "##0",                      /* 52-60 */
    "the",                                                                /* 61: a repeat wins */
};
#define N_LINES ((int)(sizeof vocab_lines / sizeof vocab_lines[0]))

enum { PAD = 0, UNK = 1, CLS = 2, SEP = 3, MASK = 4, THE = 61 };

/* The vocabulary joined with `eol`. */
static char *vocab_text(const char *eol)
{
    size_t n = 1;
    for (int i = 0; i < N_LINES; i++)
        n += strlen(vocab_lines[i]) + strlen(eol);
    char *s = malloc(n);
    s[0] = '\0';
    for (int i = 0; i < N_LINES; i++) {
        strcat(s, vocab_lines[i]);
        strcat(s, eol);
    }
    return s;
}

static struct ldm_wordpiece *load(void)
{
    char *text = vocab_text("\n");
    struct ldm_wordpiece *t = NULL;
    ck_ok(ldm_wordpiece_load_buffer(text, strlen(text), "vocab.txt", &t));
    free(text);
    return t;
}

/* Encode `text` (len bytes) and compare with the `n` ids in `want`. */
static void expect_n(const struct ldm_wordpiece *t, const char *text, size_t len,
                     const int32_t *want, size_t n)
{
    int32_t ids[256];
    size_t got = 0;
    ck_ok(ldm_wordpiece_encode(t, text, len, ids, 256, &got));
    int same = got == n && memcmp(ids, want, n * sizeof ids[0]) == 0;
    if (!same) {
        fprintf(stderr, "\"%s\" gave:", text);
        for (size_t i = 0; i < got; i++)
            fprintf(stderr, " %d", (int)ids[i]);
        fprintf(stderr, "\n");
    }
    ck_assert_msg(same, "\"%s\": %zu ids, expected %zu", text, got, n);
}

#define EXPECT(t, text, ...)                                                                       \
    do {                                                                                           \
        static const int32_t want_[] = {__VA_ARGS__};                                              \
        expect_n(t, text, strlen(text), want_, sizeof want_ / sizeof want_[0]);                    \
    } while (0)

START_TEST(words_and_pieces)
{
    struct ldm_wordpiece *t = load();
    EXPECT(t, "The cat sat.", THE, 6, 7, 14);
    EXPECT(t, "unaffable playing cats", 8, 9, 10, 11, 12, 6, 13); /* un ##aff ##able ... */
    EXPECT(t, "xx", 55, 56);
    EXPECT(t, "50", 59, 60);
    EXPECT(t, "zebra", UNK);               /* no piece for 'z' */
    EXPECT(t, "xy", UNK);                  /* "x" matches, "##y" does not: the whole word */
    EXPECT(t, "a b", 28, UNK);             /* "b" exists only as "##b" */
    EXPECT(t, "aa ab", 28, 29, 28, 40);    /* a ##a, a ##b */
    ldm_wordpiece_free(t);
}
END_TEST

START_TEST(accents_and_case)
{
    struct ldm_wordpiece *t = load();
    EXPECT(t, "Caf\xc3\xa9 R\xc3\x89SUM\xc3\x89 na\xc3\xafve Fa\xc3\xa7" "ade", 19, 20, 21,
           22);
    EXPECT(t, "Cafe\xcc\x81", 19);                 /* e + combining acute */
    EXPECT(t, "\xc4\xb0stanbul", 39);              /* İ lower-cases to i + U+0307 */
    /* Greek lower-cased one character at a time: no final sigma */
    EXPECT(t, "\xce\x9f\xce\x94\xce\x9f\xce\xa3", 35, 36, 37, 38); /* ΟΔΟΣ -> ο ##δ ##ο ##σ */
    EXPECT(t, "\xcf\x83\xce\xbf\xcf\x82", 33, 34);                 /* σος -> σ ##ος */
    /* a Hangul syllable decomposes to its jamo (NFD), which stay */
    EXPECT(t, "\xed\x95\x9c", 49, 50, 51);
    ldm_wordpiece_free(t);
}
END_TEST

START_TEST(punctuation)
{
    struct ldm_wordpiece *t = load();
    EXPECT(t, "hello,world!?", 26, 15, 27, 16, 17);
    EXPECT(t, "don't", 31, 18, 32);
    EXPECT(t, "\xc2\xbfque?", 44, 45, 17);                  /* ¿ is Po */
    EXPECT(t, "\xc2\xab" "a\xc2\xbb\xe2\x80\xa6", 46, 28, 47, 48); /* « » … */
    EXPECT(t, "$5 #x (a)", 58, 59, 57, 55, 53, 28, 54);     /* $ # are ASCII punctuation */
    EXPECT(t, "a-a", 28, 30, 28);
    ldm_wordpiece_free(t);
}
END_TEST

START_TEST(cjk_and_spaces)
{
    struct ldm_wordpiece *t = load();
    EXPECT(t, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 23, 24, 25); /* each ideograph alone */
    EXPECT(t, "a\xe6\x97\xa5" "aa", 28, 23, 28, 29);
    EXPECT(t, "the\tcat\nsat\r\xc2\xa0.\xe2\x80\xa8" "a", THE, 6, 7, 14, 28); /* U+00A0, U+2028 */
    static const int32_t none[1] = {0};
    expect_n(t, "  \t ", 4, none, 0);
    ldm_wordpiece_free(t);
}
END_TEST

START_TEST(dropped_characters)
{
    struct ldm_wordpiece *t = load();
    EXPECT(t, "c\x01" "at", 6);                      /* a control character goes, no split */
    EXPECT(t, "ca\xe2\x80\x8bt", 6);                 /* U+200B (Cf) */
    EXPECT(t, "th\xef\xbf\xbd" "e", THE);            /* U+FFFD */
    EXPECT(t, "the\xc2\x85" "cat", UNK);             /* U+0085 is Cc: "thecat" */
    EXPECT(t, "the\x1c" "cat", UNK);                 /* so is U+001C, though str.isspace */
    static const int32_t want[] = {THE};
    expect_n(t, "\0the\0", 5, want, 1);              /* NUL */
    EXPECT(t, "a\xcd\x81", 28);                      /* a lone combining mark is stripped */
    EXPECT(t, "\xcc\x81 a", 28);                     /* a word of marks only vanishes */
    ldm_wordpiece_free(t);
}
END_TEST

START_TEST(special_tokens)
{
    struct ldm_wordpiece *t = load();
    EXPECT(t, "[CLS] the [MASK] sat [SEP]", CLS, THE, MASK, 7, SEP);
    EXPECT(t, "a[PAD]a", 28, PAD, 28);
    EXPECT(t, "[cls]", 41, 43, 42); /* special tokens match as written only */
    EXPECT(t, "[CLS", 41, 43);
    EXPECT(t, "[UNK][UNK]", UNK, UNK);
    ldm_wordpiece_free(t);
}
END_TEST

START_TEST(long_words)
{
    struct ldm_wordpiece *t = load();
    char word[128];
    memset(word, 'x', 101);
    word[101] = '\0';
    int32_t ids[256], want[100];
    size_t n = 0;
    ck_ok(ldm_wordpiece_encode(t, word, 101, ids, 256, &n)); /* over 100 characters */
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], UNK);
    want[0] = 55;
    for (int i = 1; i < 100; i++)
        want[i] = 56;
    expect_n(t, word, 100, want, 100); /* exactly 100: x ##x ##x ... */
    /* the limit counts characters, not bytes: 100 x σ is 200 bytes */
    char sigmas[256] = "";
    for (int i = 0; i < 100; i++)
        strcat(sigmas, "\xcf\x83");
    want[0] = 33;
    for (int i = 1; i < 100; i++)
        want[i] = 38;
    expect_n(t, sigmas, 200, want, 100);
    strcat(sigmas, "\xcf\x83");
    ck_ok(ldm_wordpiece_encode(t, sigmas, 202, ids, 256, &n));
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], UNK);
    ldm_wordpiece_free(t);
}
END_TEST

START_TEST(framing_truncation_cap)
{
    struct ldm_wordpiece *t = load();
    struct ldm_wordpiece_info in;
    ldm_wordpiece_get_info(t, &in);
    ck_assert_int_eq(in.vocab_size, N_LINES);
    ck_assert_int_eq(in.unk, UNK);
    ck_assert_int_eq(in.cls, CLS);
    ck_assert_int_eq(in.sep, SEP);
    ck_assert_int_eq(in.pad, PAD);
    ck_assert_int_eq(in.mask, MASK);
    ck_assert_int_eq(in.max_length, 77);
    ck_assert_str_eq(ldm_wordpiece_token(t, 9), "##aff");
    ck_assert_str_eq(ldm_wordpiece_token(t, 5), "the");
    ck_assert_ptr_null(ldm_wordpiece_token(t, N_LINES));
    ck_ok(ldm_wordpiece_set_max_length(t, 8));
    int32_t ids[8];
    size_t used = 0;
    ck_ok(ldm_wordpiece_frame(t, "the cat", 7, ids, &used));
    static const int32_t short_want[] = {CLS, THE, 6, SEP, PAD, PAD, PAD, PAD};
    ck_assert_uint_eq(used, 4);
    ck_assert_mem_eq(ids, short_want, sizeof short_want);
    const char *lots = "the cat sat the cat sat the cat sat";
    ck_ok(ldm_wordpiece_frame(t, lots, strlen(lots), ids, &used));
    static const int32_t long_want[] = {CLS, THE, 6, 7, THE, 6, 7, SEP};
    ck_assert_uint_eq(used, 8);
    ck_assert_mem_eq(ids, long_want, sizeof long_want);
    /* a cap inside a word's pieces cuts there */
    size_t n = 0;
    ck_ok(ldm_wordpiece_encode(t, "unaffable cat", 13, ids, 2, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 8);
    ck_assert_int_eq(ids[1], 9);
    ck_ok(ldm_wordpiece_encode(t, "cat", 3, ids, 0, &n));
    ck_assert_uint_eq(n, 0);
    ck_fails_with(ldm_wordpiece_set_max_length(t, 1), LDM_EINVAL, "max_length 1");
    ldm_wordpiece_free(t);
}
END_TEST

START_TEST(line_endings)
{
    /* \r\n and a lone \r end lines as Python's universal newlines do */
    const char *eols[] = {"\r\n", "\r"};
    for (int k = 0; k < 2; k++) {
        char *text = vocab_text(eols[k]);
        struct ldm_wordpiece *t = NULL;
        ck_ok(ldm_wordpiece_load_buffer(text, strlen(text), "vocab.txt", &t));
        struct ldm_wordpiece_info in;
        ldm_wordpiece_get_info(t, &in);
        ck_assert_int_eq(in.vocab_size, N_LINES);
        EXPECT(t, "unaffable cats", 8, 9, 10, 6, 13);
        ldm_wordpiece_free(t);
        free(text);
    }
    /* no newline after the last line */
    const char *v = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nend";
    struct ldm_wordpiece *t = NULL;
    ck_ok(ldm_wordpiece_load_buffer(v, strlen(v), "vocab.txt", &t));
    EXPECT(t, "end", 4);
    struct ldm_wordpiece_info in;
    ldm_wordpiece_get_info(t, &in);
    ck_assert_int_eq(in.mask, -1);
    ldm_wordpiece_free(t);
}
END_TEST

START_TEST(load_errors_and_dir)
{
    struct ldm_wordpiece *t = NULL;
    const char *no_unk = "[PAD]\n[CLS]\n[SEP]\na\n";
    ck_fails_with(ldm_wordpiece_load_buffer(no_unk, strlen(no_unk), "v.txt", &t), LDM_EFORMAT,
                  "v.txt: no [UNK] token");
    const char *bad = "[PAD]\n[UNK]\nbad\xff\n[CLS]\n[SEP]\n";
    ck_fails_with(ldm_wordpiece_load_buffer(bad, strlen(bad), "v.txt", &t), LDM_EFORMAT,
                  "v.txt:3: invalid UTF-8");
    ck_assert_ptr_null(t);
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    ck_fails_with(ldm_wordpiece_load(path, &t), LDM_ENOTFOUND, "vocab.txt: no such file");
    ck_fails_with(ldm_wordpiece_load_dir(dir, &t), LDM_ENOTFOUND, "vocab.txt: no such file");
    char *text = vocab_text("\n");
    tu_write_file(path, text, strlen(text));
    free(text);
    ck_ok(ldm_wordpiece_load_dir(dir, &t));
    ldm_wordpiece_free(t);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    const char *cfg = "{\"do_lower_case\": true, \"model_max_length\": 128}";
    tu_write_file(path, cfg, strlen(cfg));
    ck_ok(ldm_wordpiece_load_dir(dir, &t));
    struct ldm_wordpiece_info in;
    ldm_wordpiece_get_info(t, &in);
    ck_assert_int_eq(in.max_length, 128);
    EXPECT(t, "The cat", THE, 6);
    int32_t ids[4];
    size_t n = 7;
    ck_fails_with(ldm_wordpiece_encode(t, "ok\xc3", 3, ids, 4, &n), LDM_EFORMAT,
                  "invalid UTF-8 at byte 2");
    ck_assert_uint_eq(n, 0);
    ldm_wordpiece_free(t);
    cfg = "{\"do_lower_case\": false}";
    tu_write_file(path, cfg, strlen(cfg));
    ck_fails_with(ldm_wordpiece_load_dir(dir, &t), LDM_EUNSUPPORTED, "do_lower_case false");
    cfg = "{\"model_max_length\": 1000000000000000019884624838656}";
    tu_write_file(path, cfg, strlen(cfg));
    ck_ok(ldm_wordpiece_load_dir(dir, &t));
    ldm_wordpiece_get_info(t, &in);
    ck_assert_int_eq(in.max_length, 77);
    ldm_wordpiece_free(t);
    cfg = "{\"model_max_length\": 1.5}";
    tu_write_file(path, cfg, strlen(cfg));
    ck_fails_with(ldm_wordpiece_load_dir(dir, &t), LDM_EFORMAT, "model_max_length");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_wordpiece(void)
{
    Suite *s = suite_create("wordpiece");
    TCase *tc = tcase_create("wordpiece");
    tcase_add_test(tc, words_and_pieces);
    tcase_add_test(tc, accents_and_case);
    tcase_add_test(tc, punctuation);
    tcase_add_test(tc, cjk_and_spaces);
    tcase_add_test(tc, dropped_characters);
    tcase_add_test(tc, special_tokens);
    tcase_add_test(tc, long_words);
    tcase_add_test(tc, framing_truncation_cap);
    tcase_add_test(tc, line_endings);
    tcase_add_test(tc, load_errors_and_dir);
    suite_add_tcase(s, tc);
    return s;
}

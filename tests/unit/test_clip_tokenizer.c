/* test_clip_tokenizer.c — CLIP BPE: all reference vectors, both loaders, framing, cleanup. */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <zlib.h>

#include "models/clip_tokenizer.h"
#include "rng.h"
#include "testutil.h"

Suite *suite_clip_tokenizer(void);

#define MAX_IDS 256
#define N_MERGES 48894
#define PYTHON "/usr/bin/python3"

/* ---- the reference vectors ------------------------------------------------------- */

struct vector {
    char *text; /* may hold NUL */
    size_t len;
    int32_t ids[MAX_IDS];
    size_t n;
};

static struct vector *vectors;
static size_t n_vectors;

static char *data_path(const char *name)
{
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/clip/%s", tu_data_dir(), name);
    return p;
}

/* Read tokenizer_vectors.tsv: a JSON string, a tab, the ids. */
static void load_vectors(void)
{
    char *path = data_path("tokenizer_vectors.tsv");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    vectors = calloc(1024, sizeof *vectors);
    char line[65536];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *tab = strrchr(line, '\t');
        ck_assert_msg(tab != NULL && n_vectors < 1024, "bad line in %s: %s", path, line);
        *tab = '\0';
        json_error_t e;
        json_t *s = json_loads(line, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        ck_assert_msg(s && json_is_string(s), "bad caption %s: %s", line, e.text);
        struct vector *v = &vectors[n_vectors++];
        v->len = json_string_length(s);
        v->text = malloc(v->len + 1);
        memcpy(v->text, json_string_value(s), v->len + 1);
        json_decref(s);
        for (char *p = tab + 1, *end; *p && *p != '\n'; p = end) {
            long id = strtol(p, &end, 10);
            ck_assert(end != p && v->n < MAX_IDS);
            v->ids[v->n++] = (int32_t)id;
        }
    }
    fclose(f);
    free(path);
}

static void free_vectors(void)
{
    for (size_t i = 0; i < n_vectors; i++)
        free(vectors[i].text);
    free(vectors);
    vectors = NULL;
    n_vectors = 0;
}

static struct ldm_clip_tok *load_gz(void)
{
    char *path = data_path("bpe_simple_vocab_16e6.txt.gz");
    struct ldm_clip_tok *t = NULL;
    ck_ok(ldm_clip_tok_load_bpe_gz(path, &t));
    free(path);
    return t;
}

/* How many vectors `t` reproduces exactly; prints the first mismatches. */
static size_t count_matches(const struct ldm_clip_tok *t, const char *label)
{
    size_t ok = 0;
    for (size_t i = 0; i < n_vectors; i++) {
        const struct vector *v = &vectors[i];
        int32_t ids[MAX_IDS + 1];
        size_t n = 0;
        ck_ok(ldm_clip_tok_encode(t, v->text, v->len, ids, MAX_IDS + 1, &n));
        if (n == v->n && memcmp(ids, v->ids, n * sizeof ids[0]) == 0)
            ok++;
        else if (i - ok < 3)
            fprintf(stderr, "%s: \"%s\": %zu ids, expected %zu (first %d vs %d)\n", label, v->text,
                    n, v->n, n ? (int)ids[0] : -1, v->n ? (int)v->ids[0] : -1);
    }
    return ok;
}

START_TEST(every_vector_from_gz)
{
    load_vectors();
    ck_assert_uint_ge(n_vectors, 25);
    struct ldm_clip_tok *t = load_gz();
    size_t ok = count_matches(t, "gz");
    fprintf(stderr, "clip tokenizer (.gz): %zu of %zu reference vectors match\n", ok, n_vectors);
    ck_assert_uint_eq(ok, n_vectors);
    /* both merge forms give the same ids */
    ldm_clip_tok_set_heap_threshold(t, 1);
    ck_assert_uint_eq(count_matches(t, "gz heap"), n_vectors);
    ldm_clip_tok_set_heap_threshold(t, SIZE_MAX);
    ck_assert_uint_eq(count_matches(t, "gz rounds"), n_vectors);
    ldm_clip_tok_free(t);
    free_vectors();
}
END_TEST

START_TEST(info_and_tokens)
{
    struct ldm_clip_tok *t = load_gz();
    struct ldm_clip_tok_info in;
    ldm_clip_tok_get_info(t, &in);
    ck_assert_int_eq(in.vocab_size, 49408);
    ck_assert_int_eq(in.n_merges, N_MERGES);
    ck_assert_int_eq(in.bos, 49406);
    ck_assert_int_eq(in.eos, 49407);
    ck_assert_int_eq(in.pad, 49407);
    ck_assert_int_eq(in.max_length, 77);
    ck_assert_str_eq(ldm_clip_tok_token(t, 0), "!");
    ck_assert_str_eq(ldm_clip_tok_token(t, 320), "a</w>");
    ck_assert_str_eq(ldm_clip_tok_token(t, 188), "\xc4\x80"); /* byte 0 is U+0100 */
    ck_assert_str_eq(ldm_clip_tok_token(t, 49406), "<|startoftext|>");
    ck_assert_ptr_null(ldm_clip_tok_token(t, 49408));
    ck_assert_ptr_null(ldm_clip_tok_token(t, -1));
    ck_ok(ldm_clip_tok_set_pad(t, 0));
    ck_fails_with(ldm_clip_tok_set_pad(t, 49408), LDM_EINVAL, "pad id 49408");
    ck_fails_with(ldm_clip_tok_set_max_length(t, 1), LDM_EINVAL, "max_length 1");
    ldm_clip_tok_free(t);
}
END_TEST

/* ---- behaviour beyond the vectors (ids from OpenAI's simple_tokenizer.py) ---------- */

struct pinned {
    const char *text;
    int32_t ids[24];
    int n;
};

static const struct pinned pinned[] = {
    {"Tom &amp; Jerry &lt;3", {2435, 261, 9164, 283, 274}, 5},
    {"fish &amp;amp; chips", {2759, 261, 8855}, 3}, /* unescaped twice */
    {"caf&eacute; &#233;t&#xE9; &nbsp;ok", {15304, 3459, 39694, 2481}, 4},
    {"AT&T &ampersand &#0; &#128;", {536, 261, 339, 261, 4840, 537, 39802, 6309}, 8},
    {"before <|endoftext|> after", {1348, 49407, 953}, 3},
    {"<|startoftext|>x<|ENDOFTEXT|>", {49406, 343, 49407}, 3},
    {"IT'S JOHN'S, WE'LL", {585, 568, 1742, 568, 267, 649, 1342}, 7},
    /* ΟΔΟΣ: final ς */
    {"\xce\x9f\xce\x94\xce\x9f\xce\xa3", {138, 123, 138, 112, 138, 123, 139, 480}, 8},
    {"\xc4\xb0stanbul", {328, 16384, 11231}, 3},                      /* İ -> i + U+0307 */
    {"a\xcd\x85" "b", {320, 321}, 2},                                  /* U+0345 matches nothing */
    {"\xe3\x80\x80 spaced \xe2\x80\xa8 out \x1c", {10336, 538, 620}, 3},
    {"\xc5\xbfhip '\xc5\xbf", {129, 123, 6584, 6, 129, 379}, 6}, /* 'ſ is a contraction */
    {"", {0}, 0},
    {"  \t\n ", {0}, 0},
};

START_TEST(pinned_behaviour)
{
    struct ldm_clip_tok *t = load_gz();
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
        const struct pinned *p = &pinned[i];
        int32_t ids[64];
        size_t n = 0;
        ck_ok(ldm_clip_tok_encode(t, p->text, strlen(p->text), ids, 64, &n));
        ck_assert_msg(n == (size_t)p->n && memcmp(ids, p->ids, n * sizeof ids[0]) == 0,
                      "\"%s\": %zu ids (first %d), expected %d (first %d)", p->text, n,
                      n ? (int)ids[0] : -1, p->n, p->ids[0]);
    }
    /* NUL is a character like any other */
    int32_t ids[8];
    size_t n = 0;
    ck_ok(ldm_clip_tok_encode(t, "a\0b", 3, ids, 8, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ids[0], 320);
    ck_assert_str_eq(ldm_clip_tok_token(t, ids[1]), "\xc4\x80</w>");
    ldm_clip_tok_free(t);
}
END_TEST

START_TEST(framing_and_truncation)
{
    struct ldm_clip_tok *t = load_gz();
    int32_t ids[77];
    size_t used = 0;
    const char *cap = "a red circle on a blue background";
    ck_ok(ldm_clip_tok_frame(t, cap, strlen(cap), ids, &used));
    static const int32_t head[] = {49406, 320, 736, 7117, 525, 320, 1746, 5994, 49407};
    ck_assert_uint_eq(used, 9);
    ck_assert_mem_eq(ids, head, sizeof head);
    for (int i = 9; i < 77; i++)
        ck_assert_int_eq(ids[i], 49407);
    ck_ok(ldm_clip_tok_set_pad(t, 0)); /* SD 2.x */
    ck_ok(ldm_clip_tok_frame(t, cap, strlen(cap), ids, NULL));
    ck_assert_int_eq(ids[8], 49407);
    ck_assert_int_eq(ids[9], 0);
    ck_assert_int_eq(ids[76], 0);
    /* 100 words: 75 kept, then EOS */
    char lots[256] = "";
    for (int i = 0; i < 100; i++)
        strcat(lots, "a ");
    ck_ok(ldm_clip_tok_frame(t, lots, strlen(lots), ids, &used));
    ck_assert_uint_eq(used, 77);
    ck_assert_int_eq(ids[0], 49406);
    for (int i = 1; i < 76; i++)
        ck_assert_int_eq(ids[i], 320);
    ck_assert_int_eq(ids[76], 49407);
    ck_ok(ldm_clip_tok_set_max_length(t, 2));
    ck_ok(ldm_clip_tok_frame(t, cap, strlen(cap), ids, &used));
    ck_assert_uint_eq(used, 2);
    ck_assert_int_eq(ids[0], 49406);
    ck_assert_int_eq(ids[1], 49407);
    ldm_clip_tok_free(t);
}
END_TEST

START_TEST(cap_stops_early)
{
    struct ldm_clip_tok *t = load_gz();
    const char *cap = "pikachu, pokemon, yellow, electric mouse, cute";
    int32_t all[32], some[32];
    size_t n_all = 0, n = 99;
    ck_ok(ldm_clip_tok_encode(t, cap, strlen(cap), all, 32, &n_all));
    ck_assert_uint_eq(n_all, 10);
    for (size_t cap_n = 0; cap_n <= n_all; cap_n++) {
        ck_ok(ldm_clip_tok_encode(t, cap, strlen(cap), some, cap_n, &n));
        ck_assert_uint_eq(n, cap_n);
        ck_assert(memcmp(some, all, n * sizeof all[0]) == 0);
    }
    ldm_clip_tok_free(t);
}
END_TEST

START_TEST(invalid_utf8)
{
    struct ldm_clip_tok *t = load_gz();
    int32_t ids[8];
    size_t n = 5;
    ck_fails_with(ldm_clip_tok_encode(t, "ok \xc3(", 5, ids, 8, &n), LDM_EFORMAT,
                  "invalid UTF-8 at byte 3");
    ck_assert_uint_eq(n, 0);
    ck_fails_with(ldm_clip_tok_frame(t, "\xed\xa0\x80", 3, ids, NULL), LDM_EFORMAT, "at byte 0");
    char *clean = NULL;
    ck_fails_with(ldm_clip_clean_text("\xff", 1, &clean, NULL), LDM_EFORMAT, "at byte 0");
    ck_assert_ptr_null(clean);
    ldm_clip_tok_free(t);
}
END_TEST

/* A long word: the heap and the rescanning forms agree. */
START_TEST(long_word_both_forms)
{
    struct ldm_clip_tok *t = load_gz();
    struct ldm_rng r;
    ldm_rng_init(&r, 99, 0);
    size_t len = 3000;
    char *word = malloc(len);
    for (size_t i = 0; i < len; i++)
        word[i] = (char)('a' + ldm_rng_below(&r, i % 7 ? 26 : 3));
    int32_t *a = malloc(len * sizeof *a), *b = malloc(len * sizeof *b);
    size_t na = 0, nb = 0;
    ldm_clip_tok_set_heap_threshold(t, 1);
    ck_ok(ldm_clip_tok_encode(t, word, len, a, len, &na));
    ldm_clip_tok_set_heap_threshold(t, SIZE_MAX);
    ck_ok(ldm_clip_tok_encode(t, word, len, b, len, &nb));
    ck_assert_uint_gt(na, 100);
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(a, b, na * sizeof a[0]) == 0);
    free(word);
    free(a);
    free(b);
    ldm_clip_tok_free(t);
}
END_TEST

/* ---- many threads, one tokenizer ------------------------------------------------------ */

struct thread_arg {
    const struct ldm_clip_tok *t;
    int bad;
};

static void *encode_all(void *p)
{
    struct thread_arg *a = p;
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < n_vectors; i++) {
            int32_t ids[MAX_IDS];
            size_t n = 0;
            int rc = ldm_clip_tok_encode(a->t, vectors[i].text, vectors[i].len, ids, MAX_IDS, &n);
            if (rc || n != vectors[i].n || memcmp(ids, vectors[i].ids, n * sizeof ids[0]) != 0)
                a->bad++;
        }
    return NULL;
}

START_TEST(threads_share_one_tokenizer)
{
    load_vectors();
    struct ldm_clip_tok *t = load_gz();
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){t, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, encode_all, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].bad, 0);
    }
    ldm_clip_tok_free(t);
    free_vectors();
}
END_TEST

/* ---- the Hugging Face layout built from the same merges ------------------------------ */

/* CLIP's bytes_to_unicode, written out again here. */
static uint32_t byte_char(int b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return (uint32_t)b;
    uint32_t n = 0;
    for (int x = 0; x < b; x++)
        n += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255));
    return 256 + n;
}

static size_t utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* Merge lines 1..max of the .gz (malloc'd strings; *n their count). */
static char **read_merges(size_t max, size_t *n)
{
    char *path = data_path("bpe_simple_vocab_16e6.txt.gz");
    gzFile gz = gzopen(path, "rb");
    ck_assert_msg(gz != NULL, "cannot open %s", path);
    char line[1024];
    char **m = calloc(max, sizeof *m);
    *n = 0;
    ck_assert(gzgets(gz, line, sizeof line) != NULL); /* header */
    while (*n < max && gzgets(gz, line, sizeof line)) {
        line[strcspn(line, "\r\n")] = '\0';
        m[(*n)++] = strdup(line);
    }
    gzclose(gz);
    free(path);
    return m;
}

/* Write DIR/vocab.json and DIR/merges.txt for `merges` as CLIP builds its
 * vocabulary: byte symbols (bytes_to_unicode order), the same + "</w>",
 * one per merge, then the two special tokens. */
static void write_hf(const char *dir, char **merges, size_t n)
{
    json_t *vocab = json_object();
    int order[256], k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++)
            if ((byte_char(b) < 256) == (pass == 0))
                order[k++] = b;
    for (int i = 0; i < 512; i++) {
        char s[16];
        size_t len = utf8(byte_char(order[i % 256]), s);
        strcpy(s + len, i < 256 ? "" : "</w>");
        json_object_set_new(vocab, s, json_integer(i));
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "#version: 0.2\n");
    for (size_t i = 0; i < n; i++) {
        char joined[1024];
        const char *sp = strchr(merges[i], ' ');
        snprintf(joined, sizeof joined, "%.*s%s", (int)(sp - merges[i]), merges[i], sp + 1);
        json_object_set_new(vocab, joined, json_integer(512 + (json_int_t)i));
        fprintf(f, "%s\n", merges[i]);
    }
    fclose(f);
    json_object_set_new(vocab, "<|startoftext|>", json_integer(512 + (json_int_t)n));
    json_object_set_new(vocab, "<|endoftext|>", json_integer(513 + (json_int_t)n));
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    ck_assert_int_eq(json_dump_file(vocab, path, JSON_COMPACT), 0);
    json_decref(vocab);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tu_write_file(path, text, strlen(text));
}

START_TEST(hf_layout_agrees_with_gz)
{
    load_vectors();
    size_t n;
    char **merges = read_merges(N_MERGES, &n);
    ck_assert_uint_eq(n, N_MERGES);
    char *dir = tu_tmpdir();
    write_hf(dir, merges, n);
    write_text(dir, "tokenizer_config.json",
               "{\"model_max_length\": 77, \"pad_token\": \"<|endoftext|>\", \"do_lower_case\": true,"
               " \"bos_token\": {\"content\": \"<|startoftext|>\", \"lstrip\": false}}");
    struct ldm_clip_tok *hf = NULL, *gz = load_gz();
    ck_ok(ldm_clip_tok_load_dir(dir, &hf));
    size_t ok = count_matches(hf, "hf");
    fprintf(stderr, "clip tokenizer (vocab.json, merges.txt): %zu of %zu reference vectors match\n",
            ok, n_vectors);
    ck_assert_uint_eq(ok, n_vectors);
    struct ldm_clip_tok_info a, b;
    ldm_clip_tok_get_info(hf, &a);
    ldm_clip_tok_get_info(gz, &b);
    ck_assert_int_eq(a.vocab_size, b.vocab_size);
    ck_assert_int_eq(a.n_merges, b.n_merges);
    ck_assert_int_eq(a.bos, b.bos);
    ck_assert_int_eq(a.eos, b.eos);
    ck_assert_int_eq(a.pad, 49407); /* SD 1.x pads with the end token */
    for (int32_t id = 0; id < b.vocab_size; id += 97)
        ck_assert_str_eq(ldm_clip_tok_token(hf, id), ldm_clip_tok_token(gz, id));
    /* and on text of every kind */
    struct ldm_rng r;
    ldm_rng_init(&r, 4, 0);
    static const char *const frags[] = {"a", "Zebra", " ", "&amp;", "'s", "42", "\xc3\xa9",
                                        "\xe6\x97\xa5", "\xf0\x9f\x98\x80", "!?", "\xce\xa3"};
    for (int i = 0; i < 300; i++) {
        char text[512] = "";
        for (int k = (int)ldm_rng_below(&r, 30); k > 0; k--)
            strcat(text, frags[ldm_rng_below(&r, sizeof frags / sizeof frags[0])]);
        int32_t x[256], y[256];
        size_t nx = 0, ny = 0;
        ck_ok(ldm_clip_tok_encode(hf, text, strlen(text), x, 256, &nx));
        ck_ok(ldm_clip_tok_encode(gz, text, strlen(text), y, 256, &ny));
        ck_assert_msg(nx == ny && memcmp(x, y, nx * sizeof x[0]) == 0, "\"%s\" differs", text);
    }
    /* special_tokens_map.json overrides tokenizer_config.json: pad "!" as SD 2.x
     * and SDXL's second tokenizer have it, a special token split out of the text */
    write_text(dir, "special_tokens_map.json", "{\"pad_token\": \"!\"}");
    ldm_clip_tok_free(hf);
    ck_ok(ldm_clip_tok_load_dir(dir, &hf));
    ldm_clip_tok_get_info(hf, &a);
    ck_assert_int_eq(a.pad, 0);
    static const char *const cases[][3] = {
        {"4k!", "4k", ""}, {"wow!! nice", "wow", " nice"}, {"!start", "", "start"}};
    for (size_t c = 0; c < 3; c++) {
        int32_t x[64], y[64], z[64];
        size_t nx = 0, ny = 0, nz = 0;
        const char *const *cs = cases[c];
        ck_ok(ldm_clip_tok_encode(hf, cs[0], strlen(cs[0]), x, 64, &nx));
        ck_ok(ldm_clip_tok_encode(gz, cs[1], strlen(cs[1]), y, 64, &ny));
        ck_ok(ldm_clip_tok_encode(gz, cs[2], strlen(cs[2]), z, 64, &nz));
        size_t bangs = c == 1 ? 2 : 1;
        ck_assert_uint_eq(nx, ny + bangs + nz);
        ck_assert_mem_eq(x, y, ny * sizeof x[0]);
        for (size_t q = 0; q < bangs; q++)
            ck_assert_int_eq(x[ny + q], 0);
        ck_assert_mem_eq(x + ny + bangs, z, nz * sizeof x[0]);
    }
    ldm_clip_tok_free(hf);
    ldm_clip_tok_free(gz);
    for (size_t i = 0; i < n; i++)
        free(merges[i]);
    free(merges);
    tu_rmtree(dir);
    free(dir);
    free_vectors();
}
END_TEST

/* Merges whose ranks do not grow along a chain ("ab a" ranks before "a b")
 * must still give CLIP's all-occurrences result. */
START_TEST(non_monotone_merges)
{
    char *dir = tu_tmpdir();
    char m0[] = "ab a", m1[] = "a b", m2[] = "a b</w>";
    char *merges[] = {m0, m1, m2};
    write_hf(dir, merges, 3);
    struct ldm_clip_tok *t = NULL;
    ck_ok(ldm_clip_tok_load_dir(dir, &t));
    ldm_clip_tok_set_heap_threshold(t, 1);
    int32_t ids[8];
    size_t n = 0;
    ck_ok(ldm_clip_tok_encode(t, "ababab", 6, ids, 8, &n));
    /* round 1 merges every "a b": ab ab a b</w>; round 2 "ab a": ab aba b</w> */
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(ldm_clip_tok_token(t, ids[0]), "ab");
    ck_assert_str_eq(ldm_clip_tok_token(t, ids[1]), "aba");
    ck_assert_str_eq(ldm_clip_tok_token(t, ids[2]), "b</w>");
    ldm_clip_tok_free(t);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(load_errors)
{
    char *dir = tu_tmpdir();
    struct ldm_clip_tok *t = (struct ldm_clip_tok *)dir;
    char path[4096], path2[4096];
    snprintf(path, sizeof path, "%s/none.gz", dir);
    ck_fails_with(ldm_clip_tok_load_bpe_gz(path, &t), LDM_ENOTFOUND, "none.gz: no such file");
    ck_assert_ptr_null(t);
    write_text(dir, "plain.gz", "#version\na b\n");
    snprintf(path, sizeof path, "%s/plain.gz", dir);
    ck_fails_with(ldm_clip_tok_load_bpe_gz(path, &t), LDM_EFORMAT, "not a gzip file");
    ck_fails_with(ldm_clip_tok_load_dir(dir, &t), LDM_ENOTFOUND, "vocab.json: no such file");

    char m0[] = "a b";
    char *merges[] = {m0};
    write_hf(dir, merges, 1);
    ck_ok(ldm_clip_tok_load_dir(dir, &t));
    ldm_clip_tok_free(t);
    write_text(dir, "merges.txt", "#version: 0.2\na b\nlonely\n");
    ck_fails_with(ldm_clip_tok_load_dir(dir, &t), LDM_EFORMAT, "merges.txt:3: a merge line");
    write_text(dir, "merges.txt", "#version: 0.2\na b\nx yz\n");
    ck_fails_with(ldm_clip_tok_load_dir(dir, &t), LDM_EFORMAT, "merges.txt:3: \"yz\" is not");
    write_text(dir, "merges.txt", "#version: 0.2\na b\nb c\n");
    ck_fails_with(ldm_clip_tok_load_dir(dir, &t), LDM_EFORMAT, "\"bc\" is not in the vocabulary");
    write_text(dir, "merges.txt", "#version: 0.2\na b\n");

    write_text(dir, "tokenizer_config.json", "{\"pad_token\": \"<pad>\"}");
    ck_fails_with(ldm_clip_tok_load_dir(dir, &t), LDM_EFORMAT, "pad_token \"<pad>\" is not");
    write_text(dir, "tokenizer_config.json", "{\"model_max_length\": 1}");
    ck_fails_with(ldm_clip_tok_load_dir(dir, &t), LDM_EFORMAT, "model_max_length");
    write_text(dir, "tokenizer_config.json", "{\"model_max_length\": 1e30, \"eos_token\": 5}");
    ck_fails_with(ldm_clip_tok_load_dir(dir, &t), LDM_EFORMAT, "eos_token must be a string");
    write_text(dir, "tokenizer_config.json",
               "{\"model_max_length\": 1000000000000000019884624838656}");
    ck_ok(ldm_clip_tok_load_dir(dir, &t)); /* Hugging Face's "no limit" keeps 77 */
    struct ldm_clip_tok_info in;
    ldm_clip_tok_get_info(t, &in);
    ck_assert_int_eq(in.max_length, 77);
    ldm_clip_tok_free(t);
    write_text(dir, "tokenizer_config.json", "{not json");
    ck_fails_with(ldm_clip_tok_load_dir(dir, &t), LDM_EFORMAT, "tokenizer_config.json: line 1");
    write_text(dir, "tokenizer_config.json", "{}");

    snprintf(path2, sizeof path2, "%s/merges.txt", dir);
    snprintf(path, sizeof path, "%s/v.json", dir);
    write_text(dir, "v.json", "{\"a\": 0, \"b\": 0}");
    ck_fails_with(ldm_clip_tok_load_files(path, path2, &t), LDM_EFORMAT, "both have id 0");
    write_text(dir, "v.json", "{\"a\": -3}");
    ck_fails_with(ldm_clip_tok_load_files(path, path2, &t), LDM_EFORMAT, "token \"a\" needs an id");
    write_text(dir, "v.json", "{\"a\": 0, \"b\": 1, \"ab\": 2}");
    ck_fails_with(ldm_clip_tok_load_files(path, path2, &t), LDM_EFORMAT,
                  "(byte 0x00) is not in the vocabulary");
    ck_assert_ptr_null(t);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the cleanup against Python itself ------------------------------------------------ */

static void add_cleanup_cases(json_t *list)
{
    static const char *const fixed[] = {
        "A &amp;amp; B", "&lt;b&gt;bold&lt;/b&gt;", "&#39;quoted&#x27;", "&#X41;&#x;&#;&#12a",
        "&notit; &notin; &ampfoo &AMP; &Eacute;t&eacutex", "&#0; &#13; &#128; &#150; &#157;",
        "&#xD800; &#1114112; &#99999999999999999999; &#1; &#x7f; &#65535; &#xFDD0;",
        "&&amp;;&;& &", "&abcdefghijklmnopqrstuvwxyzabcdefghij;",
        "&CounterClockwiseContourIntegral;",
        "  lead and trail  ", "\x1c\x1d edge \x1e\x1f", "mid\x1c" "dle",
        "a\xc2\x85" "b\xc2\xa0" "c", "x\xe2\x80\xa8y\xe3\x80\x80z\xe1\x9a\x80w",
        "\xce\x9f\xce\x94\xce\x9f\xce\xa3 \xce\xa3",
        "\xce\xa3\xce\x91\xcc\x81\xce\xa3 A\xce\xa3'",
        "\xc4\xb0I\xc3\x84\xc3\x96\xc3\x9c\xe1\xba\x9e",
        "\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2 \xd4\xb1\xe1\x82\xa0\xe1\x8e\xa0",
        "\xe2\x85\xab\xe2\x92\xb6\xf0\x90\x90\x80\xf0\x9e\xa4\x80", "MiXeD &AElig;&aelig;"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        json_array_append_new(list, json_string(fixed[i]));
    static const char *const frags[] = {
        "&amp;", "&lt", "&#65;", "&#x3A3;", "&nbsp;", "&ampx", "&", "#", ";", "x", "A", " ", "\t",
        "\n", "\x1c", "\xc2\x85", "\xc2\xa0", "\xe3\x80\x80", "\xce\xa3", "\xce\x91", "\xcc\x81",
        "'", "\xc4\xb0", "\xc3\x89", "\xd0\x96", "\xe2\x80\xa8", ".", "\xe2\x84\xaa"};
    struct ldm_rng r;
    ldm_rng_init(&r, 8, 0);
    for (int i = 0; i < 400; i++) {
        char text[512] = "";
        for (int k = (int)ldm_rng_below(&r, 24); k > 0; k--)
            strcat(text, frags[ldm_rng_below(&r, sizeof frags / sizeof frags[0])]);
        json_array_append_new(list, json_string(text));
    }
}

START_TEST(cleanup_matches_python)
{
    char *dir = tu_tmpdir();
    char in[4096], out[4096], cmd[16384];
    snprintf(in, sizeof in, "%s/in.json", dir);
    snprintf(out, sizeof out, "%s/out.json", dir);
    json_t *list = json_array();
    add_cleanup_cases(list);
    ck_assert_int_eq(json_dump_file(list, in, JSON_ENSURE_ASCII), 0);
    snprintf(cmd, sizeof cmd, PYTHON " tests/golden/clip_clean_text.py '%s' '%s'", in, out);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed", cmd);
    json_error_t e;
    json_t *want = json_load_file(out, 0, &e);
    ck_assert_msg(want && json_array_size(want) == json_array_size(list), "%s: %s", out, e.text);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *src = json_array_get(list, i);
        char *got = NULL;
        size_t len = 0;
        ck_ok(ldm_clip_clean_text(json_string_value(src), json_string_length(src), &got, &len));
        const char *w = json_string_value(json_array_get(want, i));
        ck_assert_msg(strcmp(got, w) == 0 && len == strlen(w), "\"%s\": got \"%s\", python \"%s\"",
                      json_string_value(src), got, w);
        free(got);
    }
    json_decref(list);
    json_decref(want);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_clip_tokenizer(void)
{
    Suite *s = suite_create("clip_tokenizer");
    TCase *tc = tcase_create("clip_tokenizer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_vector_from_gz);
    tcase_add_test(tc, info_and_tokens);
    tcase_add_test(tc, pinned_behaviour);
    tcase_add_test(tc, framing_and_truncation);
    tcase_add_test(tc, cap_stops_early);
    tcase_add_test(tc, invalid_utf8);
    tcase_add_test(tc, long_word_both_forms);
    tcase_add_test(tc, threads_share_one_tokenizer);
    tcase_add_test(tc, hf_layout_agrees_with_gz);
    tcase_add_test(tc, non_monotone_merges);
    tcase_add_test(tc, load_errors);
    tcase_add_test(tc, cleanup_matches_python);
    suite_add_tcase(s, tc);
    return s;
}

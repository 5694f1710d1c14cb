/* test_caption.c — caption dropout, tag shuffle with kept tags, prefix, picking from a list. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loaderd/caption.h"
#include "rng.h"
#include "testutil.h"

Suite *suite_caption(void);

#define SHARD "data/pairs-000001.tar"

/* The caption stream (1) of sample `key` of SHARD, global seed 42, epoch 0. */
static struct ldm_rng stream_of(const char *key)
{
    struct ldm_rng r;
    ldm_rng_init(&r, ldm_rng_sample_seed(42, SHARD, key, 0), 1);
    return r;
}

/* Apply `o` to `caption` with the stream of `key` and compare with `want`. */
static void check(const struct ldm_caption_opts *o, const char *caption, const char *key,
                  const char *want)
{
    struct ldm_rng r = stream_of(key);
    char *out = NULL;
    ck_ok(ldm_caption_apply(o, caption, &r, &out));
    ck_assert_msg(strcmp(out, want) == 0, "\"%s\" gave \"%s\", want \"%s\"", caption, out, want);
    free(out);
}

START_TEST(no_options_keep_text)
{
    struct ldm_caption_opts o = {0};
    check(&o, "  a red circle,  on blue  ", "000001", "  a red circle,  on blue  ");
    check(&o, "", "000001", "");
    struct ldm_rng r = stream_of("000001");
    char *out;
    ck_ok(ldm_caption_apply(&o, "x", &r, &out));
    free(out);
    ck_assert(r.counter == 0); /* nothing random asked for: no draw */
}
END_TEST

START_TEST(prefix_first)
{
    struct ldm_caption_opts o = {.prefix = "photo of sks"};
    check(&o, "a dog, on grass", "000001", "photo of sks a dog, on grass");
    check(&o, "", "000001", "photo of sks");
    o.shuffle = 1;
    o.keep_tokens = 0;
    /* the prefix is added after shuffling: always first, never moved */
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "%06d", i);
        struct ldm_rng r = stream_of(key);
        char *out;
        ck_ok(ldm_caption_apply(&o, "a, b, c", &r, &out));
        ck_assert_msg(strncmp(out, "photo of sks ", 13) == 0, "%s", out);
        free(out);
    }
}
END_TEST

START_TEST(shuffle_vector)
{
    /* Fisher-Yates over tags 1..5 with stream "000001" (the draws are
     * pinned by test_rng's vectors) */
    struct ldm_caption_opts o = {.shuffle = 1, .keep_tokens = 1};
    check(&o, "t0, t1, t2, t3, t4, t5", "000001", "t0, t5, t1, t4, t2, t3");
    /* a dropout that does not fire takes its draw first, then the shuffle */
    o.dropout = 0.25;
    check(&o, "t0, t1, t2, t3, t4, t5", "000001", "t0, t4, t3, t1, t5, t2");
}
END_TEST

START_TEST(shuffle_keeps_first_tags)
{
    struct ldm_caption_opts o = {.shuffle = 1, .keep_tokens = 2};
    int moved = 0;
    for (int i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof key, "%06d", i);
        struct ldm_rng r = stream_of(key);
        char *out;
        ck_ok(ldm_caption_apply(&o, "keep1, keep2, a, b, c, d", &r, &out));
        ck_assert_msg(strncmp(out, "keep1, keep2, ", 14) == 0, "%s", out);
        ck_assert_uint_eq(strlen(out), strlen("keep1, keep2, a, b, c, d"));
        for (const char *t = "abcd"; *t; t++) {
            char tag[8];
            snprintf(tag, sizeof tag, ", %c", *t);
            ck_assert_msg(strstr(out, tag) != NULL, "%s lost %c", out, *t);
        }
        moved += strcmp(out, "keep1, keep2, a, b, c, d") != 0;
        free(out);
    }
    ck_assert_int_gt(moved, 150); /* 23 of 24 orders differ from the input */
}
END_TEST

START_TEST(shuffle_trims_and_drops_empty_tags)
{
    struct ldm_caption_opts o = {.shuffle = 1, .keep_tokens = 99};
    /* keep_tokens beyond the tag count: nothing moves, and no draw */
    check(&o, "  a ,b,, c  ,", "000001", "a, b, c");
    check(&o, "a,\xe3\x80\x80" "b\xc2\xa0, \tc\n", "000001", "a, b, c"); /* U+3000, U+00A0 */
    check(&o, " , ,", "000001", "");
    check(&o, "solo", "000001", "solo");
    struct ldm_rng r = stream_of("x");
    char *out;
    ck_ok(ldm_caption_apply(&o, "a, b, c", &r, &out));
    free(out);
    ck_assert(r.counter == 0);
    o.keep_tokens = 0;
    o.prefix = "p";
    check(&o, " , ,", "000001", "p");
}
END_TEST

START_TEST(dropout)
{
    struct ldm_caption_opts o = {.prefix = "sks", .shuffle = 1, .dropout = 0.25};
    /* streams 000002 and 000000 draw below and above 0.25 (see test_rng) */
    check(&o, "a, b", "000002", "");
    char *out;
    struct ldm_rng r = stream_of("000000");
    ck_ok(ldm_caption_apply(&o, "a, b", &r, &out));
    ck_assert(strncmp(out, "sks ", 4) == 0);
    free(out);
    o.dropout = 1;
    check(&o, "anything", "000000", "");
    o.dropout = 0.3;
    int dropped = 0;
    for (int i = 0; i < 4000; i++) {
        char key[16];
        snprintf(key, sizeof key, "%06d", i);
        r = stream_of(key);
        ck_ok(ldm_caption_apply(&o, "a, b", &r, &out));
        dropped += out[0] == '\0';
        free(out);
    }
    ck_assert_msg(dropped > 1080 && dropped < 1320, "%d of 4000 dropped at p = 0.3", dropped);
}
END_TEST

START_TEST(replay_is_identical)
{
    struct ldm_caption_opts o = {
        .prefix = "art by x", .shuffle = 1, .keep_tokens = 1, .dropout = 0.1};
    const char *cap = "portrait, red hair, smiling, outdoors, sunset, bokeh, 35mm";
    for (int i = 0; i < 50; i++) {
        char key[16], *a, *b;
        snprintf(key, sizeof key, "%06d", i);
        struct ldm_rng r1 = stream_of(key), r2 = stream_of(key);
        ck_ok(ldm_caption_apply(&o, cap, &r1, &a));
        ck_ok(ldm_caption_apply(&o, cap, &r2, &b));
        ck_assert_str_eq(a, b);
        ck_assert(r1.counter == r2.counter);
        free(a);
        free(b);
    }
}
END_TEST

START_TEST(bad_input)
{
    struct ldm_caption_opts o = {.dropout = 1.5};
    struct ldm_rng r = stream_of("k");
    char *out = (char *)"untouched";
    ck_fails_with(ldm_caption_apply(&o, "a", &r, &out), LDM_EINVAL, "caption_dropout 1.5");
    ck_assert_ptr_null(out);
    o.dropout = -0.1;
    ck_fails_with(ldm_caption_check_opts(&o), LDM_EINVAL, "caption_dropout");
    o.dropout = NAN;
    ck_fails_with(ldm_caption_check_opts(&o), LDM_EINVAL, "caption_dropout");
    o.dropout = 0;
    o.keep_tokens = -1;
    ck_fails_with(ldm_caption_check_opts(&o), LDM_EINVAL, "keep_tokens -1");
    o.keep_tokens = 0;
    ck_ok(ldm_caption_check_opts(&o));
    ck_fails_with(ldm_caption_apply(&o, NULL, &r, &out), LDM_EINVAL, "NULL");
    ck_fails_with(ldm_caption_apply(&o, "ok \xff bad", &r, &out), LDM_EFORMAT,
                  "invalid UTF-8 at byte 3");
    ck_fails_with(ldm_caption_apply(&o, "cut \xe3\x80", &r, &out), LDM_EFORMAT, "at byte 4");
}
END_TEST

START_TEST(pick_string_and_list)
{
    json_t *one = json_string("a single caption");
    struct ldm_rng r = stream_of("000001");
    const char *c;
    ck_ok(ldm_caption_pick(one, "s/k: caption", &r, &c));
    ck_assert_str_eq(c, "a single caption");
    ck_assert(r.counter == 0);
    json_decref(one);

    json_t *list = json_pack("[sss]", "first", "second", "third");
    int counts[3] = {0};
    for (int i = 0; i < 3000; i++) {
        char key[16];
        snprintf(key, sizeof key, "%06d", i);
        r = stream_of(key);
        struct ldm_rng copy = r;
        ck_ok(ldm_caption_pick(list, "s/k: caption", &r, &c));
        uint64_t want = ldm_rng_below(&copy, 3);
        ck_assert_str_eq(c, json_string_value(json_array_get(list, (size_t)want)));
        counts[want]++;
    }
    for (int k = 0; k < 3; k++)
        ck_assert_msg(counts[k] > 900 && counts[k] < 1100, "item %d picked %d times", k, counts[k]);
    json_decref(list);
    json_t *single = json_pack("[s]", "only");
    r = stream_of("000001");
    ck_ok(ldm_caption_pick(single, "s/k: caption", &r, &c));
    ck_assert_str_eq(c, "only");
    ck_assert(r.counter == 0); /* nothing to choose: no draw */
    json_decref(single);
}
END_TEST

START_TEST(pick_errors)
{
    struct ldm_rng r = stream_of("k");
    const char *c;
    json_t *empty = json_array(), *mixed = json_pack("[si]", "ok", 5), *num = json_integer(3);
    ck_fails_with(ldm_caption_pick(empty, "s/k: caption", &r, &c), LDM_ENOTFOUND,
                  "s/k: caption: empty list");
    ck_fails_with(ldm_caption_pick(mixed, "s/k: caption", &r, &c), LDM_EFORMAT, "list item 1");
    ck_fails_with(ldm_caption_pick(num, "s/k: caption", &r, &c), LDM_EFORMAT,
                  "a string or a list of strings");
    ck_fails_with(ldm_caption_pick(NULL, "s/k: caption", &r, &c), LDM_ENOTFOUND, "no caption");
    json_t *null = json_null();
    ck_fails_with(ldm_caption_pick(null, "s/k: caption", &r, &c), LDM_ENOTFOUND, "no caption");
    ck_assert(r.counter == 0);
    json_decref(empty);
    json_decref(mixed);
    json_decref(num);
    json_decref(null);
}
END_TEST

Suite *suite_caption(void)
{
    Suite *s = suite_create("caption");
    TCase *tc = tcase_create("caption");
    tcase_add_test(tc, no_options_keep_text);
    tcase_add_test(tc, prefix_first);
    tcase_add_test(tc, shuffle_vector);
    tcase_add_test(tc, shuffle_keeps_first_tags);
    tcase_add_test(tc, shuffle_trims_and_drops_empty_tags);
    tcase_add_test(tc, dropout);
    tcase_add_test(tc, replay_is_identical);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, pick_string_and_list);
    tcase_add_test(tc, pick_errors);
    suite_add_tcase(s, tc);
    return s;
}

/* test_sample.c — the data-plane Sample: decoding and every validation rule. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/sample_check.h"
#include "testutil.h"

/* A valid 64x48 RGB sample and what a check needs alongside it. */
struct fx {
    Ldmpipe__Sample s;
    Ldmpipe__ImageLayout image, cond;
    uint32_t ids[77], ids2[77];
    size_t len[3];
    int n;
    struct ldm_sample_limits lim;
};

static ProtobufCBinaryData bin(const char *t, size_t n)
{
    return (ProtobufCBinaryData){n, (uint8_t *)t};
}

static ProtobufCBinaryData str(const char *t)
{
    return bin(t, strlen(t));
}

static void fx_init(struct fx *f)
{
    memset(f, 0, sizeof *f);
    f->s = (Ldmpipe__Sample)LDMPIPE__SAMPLE__INIT;
    f->image = (Ldmpipe__ImageLayout)LDMPIPE__IMAGE_LAYOUT__INIT;
    f->cond = (Ldmpipe__ImageLayout)LDMPIPE__IMAGE_LAYOUT__INIT;
    for (int i = 0; i < 77; i++) {
        f->ids[i] = i == 0 ? 49406 : i < 6 ? 320 + (uint32_t)i : 49407;
        f->ids2[i] = f->ids[i];
    }
    f->s.version = LDM_SAMPLE_VERSION;
    f->s.key = str("000042");
    f->s.shard = str("data/a-000001.tar");
    f->s.index = 42;
    f->s.epoch = 1;
    f->s.lease = 7;
    f->s.caption = str("a photo of a cat, caf\xc3\xa9, \xe2\x82\xac 5, \xf0\x9f\x98\x80");
    f->s.n_input_ids = 77;
    f->s.input_ids = f->ids;
    f->s.original_height = 480;
    f->s.original_width = 640;
    f->s.crop_top = 0;
    f->s.crop_left = 8;
    f->s.target_height = 64;
    f->s.target_width = 48;
    f->s.bucket = 3;
    f->s.flip = 1;
    f->image.height = 64;
    f->image.width = 48;
    f->image.channels = 3;
    f->image.dtype = LDMPIPE__DTYPE__DTYPE_UINT8;
    f->cond = f->image;
    f->s.image = &f->image;
    f->len[0] = 100;
    f->len[1] = 64 * 48 * 3;
    f->len[2] = 64 * 48 * 3;
    f->n = 2;
    ldm_sample_limits_init(&f->lim);
}

/* Give f a conditioning image with `ch` channels and a matching frame 2. */
static void fx_cond(struct fx *f, uint32_t ch)
{
    f->cond.channels = ch;
    f->s.cond = &f->cond;
    f->len[2] = 64 * 48 * ch;
    f->n = 3;
}

static int fx_check(struct fx *f, enum ldm_sample_reason *why)
{
    return ldm_sample_check(&f->s, f->len, f->n, &f->lim, why);
}

/* The fixture's sample is rejected with `code` and `reason`, and the detail
 * names the sample and contains `needle`. */
#define ck_rejects(f, code, reason, needle)                                                        \
    do {                                                                                           \
        enum ldm_sample_reason why_ = LDM_SR_OK;                                                   \
        ck_fails_with(fx_check(f, &why_), code, needle);                                           \
        ck_assert_str_eq(ldm_sample_reason_name((int)why_), ldm_sample_reason_name(reason));       \
        ck_assert_msg(strncmp(ldm_errmsg(), "sample '", 8) == 0, "detail: %s", ldm_errmsg());      \
    } while (0)

START_TEST(valid_sample_accepted)
{
    struct fx f;
    fx_init(&f);
    enum ldm_sample_reason why = LDM_SR_MESSAGE;
    ck_ok(fx_check(&f, &why));
    ck_assert_int_eq(why, LDM_SR_OK);
    ck_ok(ldm_sample_check(&f.s, f.len, f.n, NULL, NULL));
    f.s.caption = bin(NULL, 0); /* an empty caption is fine (caption dropout) */
    f.s.n_input_ids = 0;
    ck_ok(fx_check(&f, NULL));
    f.s.n_input_ids_2 = 77; /* SDXL's second tokenizer */
    f.s.input_ids_2 = f.ids2;
    ck_ok(fx_check(&f, NULL));
}
END_TEST

START_TEST(valid_conditioning_accepted)
{
    struct fx f;
    fx_init(&f);
    fx_cond(&f, 3);
    ck_ok(fx_check(&f, NULL));
    fx_cond(&f, 1);
    ck_ok(fx_check(&f, NULL));
}
END_TEST

START_TEST(decode_round_trip)
{
    struct fx f;
    fx_init(&f);
    fx_cond(&f, 1);
    f.s.n_input_ids_2 = 77;
    f.s.input_ids_2 = f.ids2;
    size_t n = ldmpipe__sample__get_packed_size(&f.s);
    uint8_t *buf = malloc(n);
    ck_assert_uint_eq(ldmpipe__sample__pack(&f.s, buf), n);
    ck_assert_uint_lt(n, 650); /* token ids go packed: no tag byte per id */
    f.len[0] = n;
    Ldmpipe__Sample *s = NULL;
    enum ldm_sample_reason why = LDM_SR_MESSAGE;
    ck_ok(ldm_sample_decode(buf, f.len, f.n, &f.lim, &s, &why));
    ck_assert_int_eq(why, LDM_SR_OK);
    ck_assert_mem_eq(s->key.data, "000042", 6);
    ck_assert_uint_eq(s->index, 42);
    ck_assert_uint_eq(s->lease, 7);
    ck_assert_uint_eq(s->n_input_ids_2, 77);
    ck_assert_uint_eq(s->input_ids[0], 49406);
    ck_assert_uint_eq(s->crop_left, 8);
    ck_assert_int_eq(s->flip, 1);
    ck_assert_uint_eq(s->cond->channels, 1);
    ldm_sample_free(s);
    ldm_sample_free(NULL);
    free(buf);
}
END_TEST

START_TEST(decode_rejects_bad_frame0)
{
    struct fx f;
    fx_init(&f);
    Ldmpipe__Sample *s = (Ldmpipe__Sample *)1;
    enum ldm_sample_reason why = LDM_SR_OK;
    const uint8_t junk[] = {0x12, 0x40, 'a'}; /* key: 64 bytes announced, 1 present */
    f.len[0] = sizeof junk;
    ck_fails_with(ldm_sample_decode(junk, f.len, 2, NULL, &s, &why), LDM_EFORMAT,
                  "frame 0 (3 bytes) is not a valid Sample");
    ck_assert_ptr_null(s);
    ck_assert_int_eq(why, LDM_SR_MESSAGE);
    f.len[0] = f.lim.max_message + 1;
    ck_fails_with(ldm_sample_decode(junk, f.len, 2, &f.lim, &s, &why), LDM_EFORMAT,
                  "frame 0 is 1048577 bytes, limit 1048576");
    ck_fails_with(ldm_sample_decode(junk, f.len, 0, &f.lim, &s, &why), LDM_EFORMAT, "no frames");
    ck_assert_int_eq(why, LDM_SR_MESSAGE);
    f.len[0] = 0; /* an empty frame 0 is an all-default Sample: no version */
    ck_fails_with(ldm_sample_decode(NULL, f.len, 2, &f.lim, &s, &why), LDM_EFORMAT,
                  "version is not set");
    ck_assert_int_eq(why, LDM_SR_VERSION);
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(decode_frees_rejected_sample)
{
    struct fx f;
    fx_init(&f);
    f.s.key = str("");
    size_t n = ldmpipe__sample__get_packed_size(&f.s);
    uint8_t *buf = malloc(n);
    ldmpipe__sample__pack(&f.s, buf);
    f.len[0] = n;
    Ldmpipe__Sample *s = NULL;
    enum ldm_sample_reason why = LDM_SR_OK;
    ck_fails_with(ldm_sample_decode(buf, f.len, f.n, &f.lim, &s, &why), LDM_EFORMAT, "key is empty");
    ck_assert_ptr_null(s); /* and LeakSanitizer finds nothing left */
    ck_assert_int_eq(why, LDM_SR_KEY);
    free(buf);
}
END_TEST

START_TEST(version_unset)
{
    struct fx f;
    fx_init(&f);
    f.s.version = 0;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_VERSION, "version is not set");
}
END_TEST

START_TEST(version_newer)
{
    struct fx f;
    fx_init(&f);
    f.s.version = LDM_SAMPLE_VERSION + 1;
    ck_rejects(&f, LDM_EUNSUPPORTED, LDM_SR_VERSION, "version 2 is newer");
}
END_TEST

START_TEST(key_empty)
{
    struct fx f;
    fx_init(&f);
    f.s.key = bin(NULL, 0);
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_KEY, "key is empty");
}
END_TEST

START_TEST(key_too_long)
{
    struct fx f;
    fx_init(&f);
    char k[300];
    memset(k, 'k', sizeof k);
    f.s.key = bin(k, 257);
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_KEY, "key is 257 bytes, limit 256");
    f.s.key = bin(k, 256);
    ck_ok(fx_check(&f, NULL));
}
END_TEST

START_TEST(key_nul)
{
    struct fx f;
    fx_init(&f);
    f.s.key = bin("ab\0cd", 5);
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_KEY, "key has a NUL byte at offset 2");
    ck_assert_ptr_nonnull(strstr(ldm_errmsg(), "sample 'data/a-000001.tar/ab\\x00cd'"));
}
END_TEST

START_TEST(key_bad_utf8)
{
    struct fx f;
    fx_init(&f);
    f.s.key = str("img\xc0\x80");
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_KEY, "key is not valid UTF-8 at offset 3 (bytes c0 80)");
}
END_TEST

START_TEST(key_with_folders_accepted)
{
    struct fx f;
    fx_init(&f);
    f.s.key = str("dir/000042"); /* WebDataset keys keep their folders */
    ck_ok(fx_check(&f, NULL));
}
END_TEST

START_TEST(tombstone_accepted_and_checked)
{
    struct fx f;
    fx_init(&f);
    f.s.rejected = str("decode");
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_TOMBSTONE, "carries pixels or layouts");
    f.s.image = NULL;
    f.n = 1;
    ck_ok(fx_check(&f, NULL));
    f.s.rejected = str("Bad Reason");
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_TOMBSTONE, "rejected reason");
    f.s.rejected = str("decode");
    f.s.key = str("");
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_KEY, "key is empty");
}
END_TEST

START_TEST(shard_empty)
{
    struct fx f;
    fx_init(&f);
    f.s.shard = bin(NULL, 0);
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_SHARD, "shard is empty");
}
END_TEST

START_TEST(shard_too_long)
{
    struct fx f;
    fx_init(&f);
    f.lim.max_shard = 10;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_SHARD, "shard is 17 bytes, limit 10");
}
END_TEST

START_TEST(shard_bad_utf8_or_nul)
{
    struct fx f;
    fx_init(&f);
    f.s.shard = str("data/\xed\xa0\x80.tar"); /* a surrogate, U+D800 */
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_SHARD,
               "shard is not valid UTF-8 at offset 5 (bytes ed a0 80 2e)");
    f.s.shard = bin("x.tar\0", 6);
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_SHARD, "shard has a NUL byte at offset 5");
}
END_TEST

START_TEST(caption_bad_utf8)
{
    static const char *const bad[] = {
        "overlong \xe0\x80\xaf", "surrogate \xed\xb0\x80", "above U+10FFFF \xf4\x90\x80\x80",
        "cut short \xe2\x82", "stray \x80", "5-byte \xf8\x88\x80\x80\x80",
    };
    struct fx f;
    fx_init(&f);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f.s.caption = str(bad[i]);
        ck_rejects(&f, LDM_EFORMAT, LDM_SR_CAPTION, "caption is not valid UTF-8 at offset");
    }
}
END_TEST

START_TEST(caption_too_long)
{
    struct fx f;
    fx_init(&f);
    f.lim.max_caption = 8;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_CAPTION, "caption is 36 bytes, limit 8");
}
END_TEST

START_TEST(caption_nul)
{
    struct fx f;
    fx_init(&f);
    f.s.caption = bin("a cat\0", 6);
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_CAPTION, "caption has a NUL byte at offset 5");
}
END_TEST

START_TEST(tokens_too_many)
{
    struct fx f;
    fx_init(&f);
    f.lim.max_tokens = 76;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_TOKENS, "input_ids has 77 ids, limit 76");
    f.lim.max_tokens = 77;
    f.s.n_input_ids_2 = 77;
    f.s.input_ids_2 = f.ids2;
    ck_ok(fx_check(&f, NULL));
    f.lim.max_tokens = 231;
    uint32_t many[232] = {0};
    f.s.n_input_ids_2 = 232;
    f.s.input_ids_2 = many;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_TOKENS, "input_ids_2 has 232 ids, limit 231");
}
END_TEST

START_TEST(token_outside_vocab)
{
    struct fx f;
    fx_init(&f);
    f.ids[5] = 49408;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_TOKENS,
               "input_ids[5] = 49408 is outside the vocabulary of 49408");
    f.ids[5] = 320;
    f.s.n_input_ids_2 = 77;
    f.s.input_ids_2 = f.ids2;
    f.lim.vocab_2 = 1000;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_TOKENS,
               "input_ids_2[0] = 49406 is outside the vocabulary of 1000");
}
END_TEST

START_TEST(original_size_bounds)
{
    struct fx f;
    fx_init(&f);
    f.s.original_width = 0;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_SIZE,
               "original size 480x0 (height x width) has a zero side");
    f.s.original_width = 16385;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_SIZE,
               "original size 480x16385 (height x width) has a side above 16384");
    f.s.original_width = 16384;
    ck_ok(fx_check(&f, NULL));
}
END_TEST

START_TEST(target_size_bounds)
{
    struct fx f;
    fx_init(&f);
    f.s.target_height = 0;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_SIZE, "target size 0x48 (height x width) has a zero side");
    f.s.target_height = 20000;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_SIZE,
               "target size 20000x48 (height x width) has a side above 16384");
}
END_TEST

START_TEST(target_pixels_bound)
{
    struct fx f;
    fx_init(&f);
    f.lim.max_pixels = 64 * 48 - 1;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_SIZE, "target size 64x48 is 3072 pixels, limit 3071");
}
END_TEST

START_TEST(crop_bounds)
{
    struct fx f;
    fx_init(&f);
    f.s.crop_top = 16385;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_CROP, "crop top-left (16385, 8) has an offset above 16384");
    f.s.crop_top = 0;
    f.s.crop_left = UINT32_MAX;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_CROP, "(0, 4294967295)");
}
END_TEST

START_TEST(bucket_bound)
{
    struct fx f;
    fx_init(&f);
    f.lim.max_bucket = 2;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_BUCKET, "bucket 3 is above 2");
    f.lim.max_bucket = 3;
    ck_ok(fx_check(&f, NULL));
}
END_TEST

START_TEST(image_layout_missing)
{
    struct fx f;
    fx_init(&f);
    f.s.image = NULL;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_LAYOUT, "image layout is missing");
}
END_TEST

START_TEST(layout_dtype)
{
    struct fx f;
    fx_init(&f);
    f.image.dtype = LDMPIPE__DTYPE__DTYPE_UNSPECIFIED;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_LAYOUT, "image layout has no dtype");
    f.image.dtype = (Ldmpipe__Dtype)7;
    ck_rejects(&f, LDM_EUNSUPPORTED, LDM_SR_LAYOUT,
               "image layout has dtype 7, only uint8 (1) is supported");
}
END_TEST

START_TEST(layout_channels)
{
    struct fx f;
    fx_init(&f);
    f.image.channels = 4;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_LAYOUT, "image layout has 4 channels, not 3");
    f.image.channels = 4000000000u;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_LAYOUT, "image layout has 4000000000 channels");
    f.image.channels = 3;
    fx_cond(&f, 4);
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_LAYOUT, "conditioning layout has 4 channels, not 1 or 3");
    fx_cond(&f, 0);
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_LAYOUT, "conditioning layout has 0 channels");
}
END_TEST

START_TEST(layout_not_target)
{
    struct fx f;
    fx_init(&f);
    f.image.width = 64;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_LAYOUT,
               "image layout 64x64 differs from the target size 64x48");
    f.image.width = 48;
    fx_cond(&f, 3);
    f.cond.height = 32;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_LAYOUT,
               "conditioning layout 32x48 differs from the target size 64x48");
}
END_TEST

START_TEST(frame_count)
{
    struct fx f;
    fx_init(&f);
    f.n = 3;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_FRAMES,
               "frame count 3, expected 2 (no conditioning layout)");
    f.n = 1;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_FRAMES, "frame count 1, expected 2");
    f.n = 1000; /* more frames than lengths given: only the count is read */
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_FRAMES, "frame count 1000, expected 2");
    fx_cond(&f, 3);
    f.n = 2;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_FRAMES,
               "frame count 2, expected 3 (conditioning layout given)");
}
END_TEST

START_TEST(image_pixels_length)
{
    struct fx f;
    fx_init(&f);
    f.len[1] = 64 * 48 * 3 - 1;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_PIXELS,
               "image frame is 9215 bytes, layout 64x48x3 uint8 needs 9216");
    f.len[1] = 64 * 48 * 3 + 1;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_PIXELS, "image frame is 9217 bytes");
    f.len[1] = 0;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_PIXELS, "image frame is 0 bytes");
}
END_TEST

START_TEST(cond_pixels_length)
{
    struct fx f;
    fx_init(&f);
    fx_cond(&f, 1);
    f.len[2] = 64 * 48 * 3; /* sent RGB, announced grey */
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_PIXELS,
               "conditioning frame is 9216 bytes, layout 64x48x1 uint8 needs 3072");
}
END_TEST

START_TEST(detail_names_sample_safely)
{
    struct fx f;
    fx_init(&f);
    char shard[200], key[100];
    memset(shard, 's', sizeof shard);
    memcpy(shard + sizeof shard - 4, ".tar", 4);
    memset(key, 'k', sizeof key);
    key[0] = '\'';
    key[1] = '\n';
    f.s.shard = bin(shard, sizeof shard);
    f.s.key = bin(key, sizeof key);
    f.s.version = 0;
    ck_rejects(&f, LDM_EFORMAT, LDM_SR_VERSION, "version is not set");
    char want[200];
    snprintf(want, sizeof want, "sample '...%.60s.tar/\\x27\\x0a%.62s...': ", shard, key + 2);
    ck_assert_msg(strncmp(ldm_errmsg(), want, strlen(want)) == 0, "detail: %s", ldm_errmsg());
    char name[8];
    ldm_sample_name(&f.s, name, sizeof name);
    ck_assert_uint_eq(strlen(name), sizeof name - 1); /* cut to fit, terminated */
    ck_assert_mem_eq(name, "...s/", 5);
    ldm_sample_name(NULL, name, sizeof name);
    ck_assert_str_eq(name, "?");
}
END_TEST

START_TEST(reason_names_stable)
{
    static const char *const names[LDM_SR_COUNT] = {
        "ok",   "message", "version", "key",    "shard",  "caption", "tokens",
        "size", "crop",    "bucket",  "layout", "frames", "pixels", "tombstone",
    };
    for (int i = 0; i < LDM_SR_COUNT; i++)
        ck_assert_str_eq(ldm_sample_reason_name(i), names[i]);
    ck_assert_str_eq(ldm_sample_reason_name(-1), "unknown");
    ck_assert_str_eq(ldm_sample_reason_name(LDM_SR_COUNT), "unknown");
}
END_TEST

START_TEST(bad_arguments)
{
    struct fx f;
    fx_init(&f);
    enum ldm_sample_reason why = LDM_SR_KEY;
    ck_fails_with(ldm_sample_check(NULL, f.len, 2, NULL, &why), LDM_EINVAL, "no sample");
    ck_assert_int_eq(why, LDM_SR_OK);
    ck_fails_with(ldm_sample_check(&f.s, NULL, 2, NULL, NULL), LDM_EINVAL, "no frame lengths");
}
END_TEST

Suite *suite_sample(void);
Suite *suite_sample(void)
{
    Suite *s = suite_create("sample");
    TCase *tc = tcase_create("valid");
    tcase_add_test(tc, valid_sample_accepted);
    tcase_add_test(tc, valid_conditioning_accepted);
    tcase_add_test(tc, decode_round_trip);
    tcase_add_test(tc, decode_rejects_bad_frame0);
    tcase_add_test(tc, decode_frees_rejected_sample);
    tcase_add_test(tc, detail_names_sample_safely);
    tcase_add_test(tc, reason_names_stable);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    tc = tcase_create("rules");
    tcase_add_test(tc, version_unset);
    tcase_add_test(tc, version_newer);
    tcase_add_test(tc, key_empty);
    tcase_add_test(tc, key_too_long);
    tcase_add_test(tc, key_nul);
    tcase_add_test(tc, key_bad_utf8);
    tcase_add_test(tc, key_with_folders_accepted);
    tcase_add_test(tc, tombstone_accepted_and_checked);
    tcase_add_test(tc, shard_empty);
    tcase_add_test(tc, shard_too_long);
    tcase_add_test(tc, shard_bad_utf8_or_nul);
    tcase_add_test(tc, caption_bad_utf8);
    tcase_add_test(tc, caption_too_long);
    tcase_add_test(tc, caption_nul);
    tcase_add_test(tc, tokens_too_many);
    tcase_add_test(tc, token_outside_vocab);
    tcase_add_test(tc, original_size_bounds);
    tcase_add_test(tc, target_size_bounds);
    tcase_add_test(tc, target_pixels_bound);
    tcase_add_test(tc, crop_bounds);
    tcase_add_test(tc, bucket_bound);
    tcase_add_test(tc, image_layout_missing);
    tcase_add_test(tc, layout_dtype);
    tcase_add_test(tc, layout_channels);
    tcase_add_test(tc, layout_not_target);
    tcase_add_test(tc, frame_count);
    tcase_add_test(tc, image_pixels_length);
    tcase_add_test(tc, cond_pixels_length);
    suite_add_tcase(s, tc);
    return s;
}

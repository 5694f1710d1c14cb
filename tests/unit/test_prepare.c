/* test_prepare.c — loaderd's per-sample pipeline: determinism, buckets,
 * conditioning images, caption options and every kind of rejection. */
#include <stdio.h>
#include <string.h>

#include "image.h"
#include "loaderd/prepare.h"
#include "testutil.h"

struct fixture {
    struct ldm_prep_shared sh;
    struct ldm_member m[3];
    struct ldm_raw_sample raw;
    void *jpg, *cond;
    size_t njpg, ncond;
};

/* A w x h JPEG with a gradient, so crops and flips show in the pixels. */
static void make_jpeg(int w, int h, void **out, size_t *len)
{
    struct ldm_image im;
    ck_ok(ldm_image_alloc(&im, w, h, 3));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im.px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / w);
            p[1] = (uint8_t)(y * 255 / h);
            p[2] = 128;
        }
    ck_ok(ldm_image_encode_jpeg(&im, 90, out, len));
    ldm_image_free(&im);
}

static void setup(struct fixture *f, int with_tokenizer)
{
    memset(f, 0, sizeof *f);
    f->sh.seed = 42;
    f->sh.tp.resolution = 32;
    f->sh.tp.crop = LDM_CROP_RANDOM;
    f->sh.random_flip = 1;
    if (with_tokenizer) {
        char path[512];
        snprintf(path, sizeof path, "%s/clip/bpe_simple_vocab_16e6.txt.gz", tu_data_dir());
        ck_ok(ldm_tokenizer_load(path, 77, &f->sh.tok));
    }
    make_jpeg(80, 48, &f->jpg, &f->njpg);
    f->m[0] = (struct ldm_member){"jpg", f->jpg, f->njpg};
    f->m[1] = (struct ldm_member){"txt", (const unsigned char *)"a red circle", 12};
    f->raw = (struct ldm_raw_sample){"/d/a.tar", "000001", 0, f->m, 2, 0, NULL};
}

static void teardown(struct fixture *f)
{
    ldm_tokenizer_free(&f->sh.tok);
    ldm_buckets_free(&f->sh.buckets);
    free(f->jpg);
    free(f->cond);
}

START_TEST(same_sample_same_result)
{
    struct fixture f;
    setup(&f, 1);
    struct ldm_prepared a = {0}, b = {0};
    ck_ok(ldm_prepare(&f.sh, &f.raw, 0, &a));
    ck_ok(ldm_prepare(&f.sh, &f.raw, 0, &b));
    ck_assert_int_eq(a.img.w, 32);
    ck_assert_int_eq(a.img.h, 32);
    ck_assert_int_eq(a.g.orig_w, 80);
    ck_assert_int_eq(a.g.orig_h, 48);
    ck_assert_int_eq(a.g.crop_top, b.g.crop_top);
    ck_assert_int_eq(a.g.crop_left, b.g.crop_left);
    ck_assert_int_eq(a.g.flip, b.g.flip);
    ck_assert_mem_eq(a.img.px, b.img.px, 32 * 32 * 3);
    ck_assert_uint_eq(a.nids, 77);
    ck_assert_uint_eq(a.ids[0], 49406);
    ck_assert_str_eq(a.caption, "a red circle");
    /* over several epochs the random crop and flip take different values */
    int differ = 0;
    for (uint32_t e = 1; e < 12; e++) {
        ck_ok(ldm_prepare(&f.sh, &f.raw, e, &b));
        differ += b.g.crop_left != a.g.crop_left || b.g.flip != a.g.flip;
    }
    ck_assert_int_gt(differ, 0);
    ldm_prepared_free(&a);
    ldm_prepared_free(&b);
    teardown(&f);
}
END_TEST

START_TEST(buckets_and_conditioning)
{
    struct fixture f;
    setup(&f, 0);
    ck_ok(ldm_buckets_make(64 * 64, 32, 128, 16, &f.sh.buckets));
    make_jpeg(20, 20, &f.cond, &f.ncond); /* any size: resized like the image */
    f.m[2] = (struct ldm_member){"input.jpg", f.cond, f.ncond};
    f.raw.nmembers = 3;
    f.sh.fields.cond_ext = "input.jpg";
    struct ldm_prepared p = {0};
    ck_ok(ldm_prepare(&f.sh, &f.raw, 0, &p));
    ck_assert_int_ge(p.g.bucket, 0);
    const struct ldm_bucket *b = &f.sh.buckets.b[p.g.bucket];
    ck_assert_int_eq(p.img.w, b->w);
    ck_assert_int_eq(p.img.h, b->h);
    ck_assert_int_gt(p.img.w, p.img.h); /* an 80x48 image goes to a wide bucket */
    ck_assert_int_eq(p.cond.w, p.img.w);
    ck_assert_int_eq(p.cond.h, p.img.h);
    ck_assert_uint_eq(p.nids, 0); /* no tokenizer: caption only */
    struct ldm_outsample o;
    ldm_prepared_out(&p, &f.raw, &o);
    ck_assert_ptr_nonnull(o.cond.px);
    ck_assert_uint_eq(o.bucket, (uint32_t)p.g.bucket);
    ldm_prepared_free(&p);
    teardown(&f);
}
END_TEST

START_TEST(caption_options_apply)
{
    struct fixture f;
    setup(&f, 0);
    f.m[1] = (struct ldm_member){"txt", (const unsigned char *)"cat, dog, tree, sky", 19};
    f.sh.cap = (struct ldm_caption_opts){"photo", 1, 1, 0.0};
    struct ldm_prepared p = {0};
    ck_ok(ldm_prepare(&f.sh, &f.raw, 0, &p));
    ck_assert_msg(strncmp(p.caption, "photo", 5) == 0, "caption: %s", p.caption);
    ck_assert_ptr_nonnull(strstr(p.caption, "cat"));
    f.sh.cap.dropout = 1.0;
    ck_ok(ldm_prepare(&f.sh, &f.raw, 0, &p));
    ck_assert_str_eq(p.caption, "");
    ldm_prepared_free(&p);
    teardown(&f);
}
END_TEST

START_TEST(rejections_name_their_reason)
{
    struct fixture f;
    setup(&f, 0);
    struct ldm_prepared p = {0};
    f.raw.nmembers = 1; /* no txt */
    ck_assert_int_eq(ldm_prepare(&f.sh, &f.raw, 0, &p), LDM_REASON_NO_CAPTION);
    ck_assert_str_eq(ldm_prep_reason_name(LDM_REASON_NO_CAPTION), "no_caption");
    f.raw.nmembers = 2;
    f.m[0] = (struct ldm_member){"jpg", (const unsigned char *)"not an image", 12};
    ck_assert_int_eq(ldm_prepare(&f.sh, &f.raw, 0, &p), LDM_PREP_DECODE);
    ck_assert_ptr_nonnull(strstr(ldm_errmsg(), "000001"));
    f.m[0] = (struct ldm_member){"jpg", f.jpg, f.njpg};
    f.sh.dec.max_pixels = 100;
    ck_assert_int_eq(ldm_prepare(&f.sh, &f.raw, 0, &p), LDM_PREP_TOO_BIG);
    ck_assert_str_eq(ldm_prep_reason_name(LDM_PREP_TOO_BIG), "too_big");
    f.sh.dec.max_pixels = 0;
    f.raw.reason = LDM_REASON_MEMBER_TOO_BIG;
    f.raw.detail = "/d/a.tar: 000001: member jpg is too big";
    ck_assert_int_eq(ldm_prepare(&f.sh, &f.raw, 0, &p), LDM_REASON_MEMBER_TOO_BIG);
    ck_assert_str_eq(ldm_errmsg(), f.raw.detail);
    f.raw.reason = 0;
    f.m[1] = (struct ldm_member){"txt", (const unsigned char *)"bad \xff utf8", 10};
    ck_assert_int_eq(ldm_prepare(&f.sh, &f.raw, 0, &p), LDM_REASON_BAD_UTF8);
    ldm_prepared_free(&p);
    teardown(&f);
}
END_TEST

START_TEST(tokenizer_paths)
{
    struct ldm_tokenizer t;
    ck_fails_with(ldm_tokenizer_load("/nonexistent/tokenizer", 77, &t), LDM_ENOTFOUND,
                  "/nonexistent/tokenizer");
    ck_fails_with(ldm_tokenizer_load("x.gz", 1, &t), LDM_EINVAL, "max_length");
}
END_TEST

Suite *suite_prepare(void);
Suite *suite_prepare(void)
{
    Suite *s = suite_create("prepare");
    TCase *tc = tcase_create("prepare");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, same_sample_same_result);
    tcase_add_test(tc, buckets_and_conditioning);
    tcase_add_test(tc, caption_options_apply);
    tcase_add_test(tc, rejections_name_their_reason);
    tcase_add_test(tc, tokenizer_paths);
    suite_add_tcase(s, tc);
    return s;
}

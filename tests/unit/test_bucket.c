/* test_bucket.c — kohya-style aspect-ratio buckets: lists worked by hand, selection, crops, pixels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loaderd/bucket.h"
#include "resample.h"
#include "testutil.h"

Suite *suite_bucket(void);

static void check_list(const struct ldm_buckets *bs, const int (*want)[2], int n)
{
    ck_assert_int_eq(bs->n, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(bs->b[i].w == want[i][0] && bs->b[i].h == want[i][1],
                      "bucket %d is %dx%d, expected %dx%d", i, bs->b[i].w, bs->b[i].h, want[i][0],
                      want[i][1]);
}

/* make_bucket_resolutions((512, 512), 256, 1024, 64) by hand: the square is
 * 512; width 256 -> min(1024, 262144 // 256 // 64 * 64) = 1024, 320 -> 768,
 * 384 -> 640, 448 -> 576, 512 -> 512, 576 -> 448, 640 -> 384, 704 -> 320,
 * 768 -> 320, 832..1024 -> 256; each with its transpose, sorted. */
START_TEST(test_list_512)
{
    static const int want[][2] = {
        {256, 832}, {256, 896}, {256, 960}, {256, 1024}, {320, 704}, {320, 768},
        {384, 640}, {448, 576}, {512, 512}, {576, 448}, {640, 384}, {704, 320},
        {768, 320}, {832, 256}, {896, 256}, {960, 256}, {1024, 256},
    };
    struct ldm_buckets bs;
    ck_ok(ldm_buckets_make(512 * 512, 256, 1024, 64, &bs));
    check_list(&bs, want, 17);
    ldm_buckets_free(&bs);
}
END_TEST

/* make_bucket_resolutions((1024, 1024), 256, 2048, 64) by hand: widths
 * 256..512 hit the 2048 cap; 576 -> 1820 // 64 * 64 = 1792, 640 -> 1600,
 * 704 -> 1472, 768 -> 1344, 832 -> 1216, 896 -> 1152, 960 -> 1088,
 * 1024 -> 1024, 1280 -> 768, 1408 -> 704, 1536 -> 640, 1664 and 1728 -> 576,
 * 1856..1984 -> 512 are new (the rest repeat transposes). 41 buckets. */
START_TEST(test_list_1024)
{
    static const int want[][2] = {
        {256, 2048},  {320, 2048},  {384, 2048},  {448, 2048},  {512, 1856},  {512, 1920},
        {512, 1984},  {512, 2048},  {576, 1664},  {576, 1728},  {576, 1792},  {640, 1536},
        {640, 1600},  {704, 1408},  {704, 1472},  {768, 1280},  {768, 1344},  {832, 1216},
        {896, 1152},  {960, 1088},  {1024, 1024}, {1088, 960},  {1152, 896},  {1216, 832},
        {1280, 768},  {1344, 768},  {1408, 704},  {1472, 704},  {1536, 640},  {1600, 640},
        {1664, 576},  {1728, 576},  {1792, 576},  {1856, 512},  {1920, 512},  {1984, 512},
        {2048, 256},  {2048, 320},  {2048, 384},  {2048, 448},  {2048, 512},
    };
    struct ldm_buckets bs;
    ck_ok(ldm_buckets_make(1024 * 1024, 256, 2048, 64, &bs));
    check_list(&bs, want, 41);
    /* every bucket within the area and the limits, in whole steps */
    for (int i = 0; i < bs.n; i++) {
        ck_assert_int_le((long)bs.b[i].w * bs.b[i].h, 1024 * 1024);
        ck_assert_int_eq(bs.b[i].w % 64 + bs.b[i].h % 64, 0);
    }
    ldm_buckets_free(&bs);
}
END_TEST

/* select_bucket on the 512^2 list: nearest w/h by plain difference, exact
 * sizes kept, resized to cover with int(x * scale + 0.5). */
START_TEST(test_select)
{
    static const int cases[][5] = {
        /* w, h, bucket id, resized w, resized h */
        {1024, 768, 9, 597, 448},    /* 1.333: 576x448 (1.286) beats 512x512 and 640x384 */
        {576, 448, 9, 576, 448},     /* an exact bucket size: no resize */
        {1000, 1000, 8, 512, 512},
        {300, 1000, 0, 256, 853},    /* 0.3: 256x832 (0.308) beats 256x896 (0.286) */
        {5000, 100, 16, 12800, 256}, /* far wider than any bucket: the widest one */
        {700, 1000, 7, 448, 640},    /* 0.7: 448x576 (off by 0.078) beats 384x640 (0.1);
                                        narrower than it, so scale = 448 / 700 */
    };
    struct ldm_buckets bs;
    ck_ok(ldm_buckets_make(512 * 512, 256, 1024, 64, &bs));
    int id, rw, rh;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_ok(ldm_buckets_select(&bs, cases[i][0], cases[i][1], &id, &rw, &rh));
        ck_assert_msg(id == cases[i][2] && rw == cases[i][3] && rh == cases[i][4],
                      "%dx%d: bucket %d (%dx%d) resized %dx%d", cases[i][0], cases[i][1], id,
                      bs.b[id].w, bs.b[id].h, rw, rh);
    }
    ck_fails_with(ldm_buckets_select(&bs, 0, 5, &id, &rw, &rh), LDM_EINVAL, "image 0x5");
    ldm_buckets_free(&bs);
    struct ldm_buckets empty = {0};
    ck_fails_with(ldm_buckets_select(&empty, 5, 5, &id, &rw, &rh), LDM_EINVAL, "0 buckets");
}
END_TEST

static int draw_last(void *ctx, int n)
{
    int *calls = ctx;
    calls[calls[0] + 1] = n;
    calls[0]++;
    return n - 1;
}

/* Crops: floor-centred, or drawn only along the trimmed side. */
START_TEST(test_plan)
{
    struct ldm_buckets bs;
    ck_ok(ldm_buckets_make(512 * 512, 256, 1024, 64, &bs));
    struct ldm_transform_params p = {.flip = 1};
    struct ldm_geometry g;
    ck_ok(ldm_bucket_plan(&bs, 1024, 768, &p, NULL, NULL, &g));
    ck_assert_int_eq(g.bucket, 9);
    ck_assert_int_eq(g.target_w, 576);
    ck_assert_int_eq(g.target_h, 448);
    ck_assert_int_eq(g.crop_left, 10); /* (597 - 576) // 2 */
    ck_assert_int_eq(g.crop_top, 0);
    ck_assert_int_eq(g.orig_w * 10000 + g.orig_h, 1024 * 10000 + 768);
    ck_assert_int_eq(g.flip, 1);
    ck_ok(ldm_bucket_plan(&bs, 300, 1000, &p, NULL, NULL, &g));
    ck_assert_int_eq(g.crop_top, 10); /* (853 - 832) // 2 */
    p.crop = LDM_CROP_RANDOM;
    int calls[4] = {0};
    ck_ok(ldm_bucket_plan(&bs, 1024, 768, &p, draw_last, calls, &g));
    ck_assert_int_eq(calls[0], 1); /* only the width is trimmed */
    ck_assert_int_eq(calls[1], 22);
    ck_assert_int_eq(g.crop_left, 21);
    ck_ok(ldm_bucket_plan(&bs, 576, 448, &p, NULL, NULL, &g)); /* nothing to trim, no draws */
    ck_fails_with(ldm_bucket_plan(&bs, 1024, 768, &p, NULL, NULL, &g), LDM_EINVAL,
                  "without a random source");
    ldm_buckets_free(&bs);
}
END_TEST

static void fill(struct ldm_image *im)
{
    for (size_t i = 0; i < (size_t)im->w * im->h * im->c; i++)
        im->px[i] = (uint8_t)(i * 2654435761u >> 13);
}

/* The planned transform gives the PIL resize of the whole image, cropped and mirrored. */
START_TEST(test_pixels)
{
    struct ldm_buckets bs;
    ck_ok(ldm_buckets_make(256 * 256, 128, 512, 32, &bs));
    struct ldm_image img, got, full;
    ck_ok(ldm_image_alloc(&img, 333, 211, 3));
    fill(&img);
    struct ldm_transform_params p = {.filter = LDM_RESAMPLE_LANCZOS, .flip = 1};
    struct ldm_geometry g;
    ck_ok(ldm_bucket_plan(&bs, img.w, img.h, &p, NULL, NULL, &g));
    ck_ok(ldm_transform_apply(&img, &g, p.filter, &got));
    ck_ok(ldm_resize(&img, g.resized_w, g.resized_h, p.filter, &full));
    ck_assert_int_eq(got.w, bs.b[g.bucket].w);
    ck_assert_int_eq(got.h, bs.b[g.bucket].h);
    for (int y = 0; y < got.h; y++)
        for (int x = 0; x < got.w; x++) {
            int sx = g.crop_left + got.w - 1 - x, sy = g.crop_top + y;
            ck_assert(memcmp(got.px + ((size_t)y * got.w + x) * 3,
                             full.px + ((size_t)sy * full.w + sx) * 3, 3) == 0);
        }
    ldm_image_free(&got);
    ldm_image_free(&full);
    ldm_image_free(&img);
    ldm_buckets_free(&bs);
}
END_TEST

START_TEST(test_bad_params)
{
    struct ldm_buckets bs;
    ck_fails_with(ldm_buckets_make(1 << 20, 256, 2048, 0, &bs), LDM_EINVAL, "bucket_step 0");
    ck_fails_with(ldm_buckets_make(1 << 20, 512, 256, 64, &bs), LDM_EINVAL, "bucket_min_reso 512");
    ck_fails_with(ldm_buckets_make(1000, 256, 2048, 64, &bs), LDM_EINVAL, "bucket_max_area 1000");
    ck_assert_ptr_null(bs.b);
    /* a step that does not divide min_reso: widths still walk from min_reso */
    ck_ok(ldm_buckets_make(100 * 100, 50, 200, 30, &bs));
    ck_assert_int_eq(bs.b[0].w, 50);
    ck_assert_int_eq(bs.b[0].h, 180); /* 10000 // 50 = 200 -> 6 * 30 */
    ldm_buckets_free(&bs);
}
END_TEST

Suite *suite_bucket(void)
{
    Suite *s = suite_create("bucket");
    TCase *tc = tcase_create("bucket");
    tcase_add_test(tc, test_list_512);
    tcase_add_test(tc, test_list_1024);
    tcase_add_test(tc, test_select);
    tcase_add_test(tc, test_plan);
    tcase_add_test(tc, test_pixels);
    tcase_add_test(tc, test_bad_params);
    suite_add_tcase(s, tc);
    return s;
}

/* test_resample.c — PIL-exact resize: golden images from Pillow 9.4, windows, flips, arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "goldimg.h"
#include "resample.h"
#include "testutil.h"

Suite *suite_resample(void);

/* Every case of pil_resize.py's resample mode: sources (noise, photo-like,
 * gradients, one-pixel edges, 1xN, Nx1, 7x13, grey) resized up and down by
 * non-integer factors, one side only, identity, to 1x1, with all five filters. */
START_TEST(test_pil_golden)
{
    ldm_resample_set_simd(_i == 0); /* the SIMD kernels (AVX2 or SSE2), then the portable code */
    char *dir = tu_tmpdir();
    gi_run_golden("resample", dir);
    char **lines = gi_read_lines(dir, "cases.txt");
    int cases = 0, exact = 0, worst = 0;
    long samples_bad = 0;
    for (char **l = lines; *l; l++) {
        char src_name[256], flt[32], exp_name[256], path[4096];
        int w, h, filter;
        ck_assert_msg(sscanf(*l, "%255s %31s %d %d %255s", src_name, flt, &w, &h, exp_name) == 5,
                      "bad case line: %s", *l);
        ck_ok(ldm_resample_parse(flt, &filter));
        struct ldm_image src, want, got;
        snprintf(path, sizeof path, "%s/%s", dir, src_name);
        gi_read_pnm(path, &src);
        snprintf(path, sizeof path, "%s/%s", dir, exp_name);
        gi_read_pnm(path, &want);
        ck_ok(ldm_resize(&src, w, h, filter, &got));
        int maxerr;
        long bad = gi_compare(exp_name, &got, &want, &maxerr, NULL);
        ck_assert_msg(bad >= 0, "%s: wrong size", exp_name);
        cases++;
        exact += bad == 0;
        samples_bad += bad;
        worst = maxerr > worst ? maxerr : worst;
        ldm_image_free(&src);
        ldm_image_free(&want);
        ldm_image_free(&got);
    }
    fprintf(stderr, "resample golden (%s): %d cases, %d bit-exact, %ld samples differ, largest "
            "error %d\n", _i == 0 ? "simd" : "portable", cases, exact, samples_bad, worst);
    ck_assert_int_ge(cases, 150);
    ck_assert_msg(exact == cases, "%d of %d cases differ from Pillow (largest error %d)",
                  cases - exact, cases, worst);
    gi_free_lines(lines);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static void fill_noise(struct ldm_image *im, unsigned seed)
{
    for (size_t i = 0; i < (size_t)im->w * im->h * im->c; i++) {
        seed = seed * 1103515245u + 12345u;
        im->px[i] = (uint8_t)(seed >> 16);
    }
}

/* The window of `full` (ow x oh), mirrored if asked, compared with `win`. */
static void check_window(const struct ldm_image *full, const struct ldm_window *w,
                         const struct ldm_image *got)
{
    ck_assert_int_eq(got->w, w->w);
    ck_assert_int_eq(got->h, w->h);
    int c = full->c;
    for (int y = 0; y < w->h; y++)
        for (int x = 0; x < w->w; x++) {
            int sx = w->x + (w->flip ? w->w - 1 - x : x);
            const uint8_t *a = full->px + ((size_t)(w->y + y) * full->w + sx) * c;
            const uint8_t *b = got->px + ((size_t)y * got->w + x) * c;
            ck_assert_msg(memcmp(a, b, (size_t)c) == 0,
                          "window %dx%d at (%d,%d) flip %d differs at (%d,%d)", w->w, w->h, w->x,
                          w->y, w->flip, x, y);
        }
}

/* A window of the result equals cropping (and flipping) the full result, on
 * every path: both passes, horizontal only, vertical only, plain copy. */
START_TEST(test_window_equals_crop)
{
    ldm_resample_set_simd(_i == 0);
    static const int sizes[][4] = {
        {123, 77, 61, 50}, {123, 77, 200, 131}, {123, 77, 123, 40}, {123, 77, 57, 77},
        {123, 77, 123, 77}, {9, 300, 30, 101},
    };
    for (int c = 1; c <= 3; c += 2)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int f = 0; f < LDM_RESAMPLE_COUNT; f++) {
                struct ldm_image src, full;
                ck_ok(ldm_image_alloc(&src, sizes[s][0], sizes[s][1], c));
                fill_noise(&src, (unsigned)(s * 7 + f));
                int ow = sizes[s][2], oh = sizes[s][3];
                ck_ok(ldm_resize(&src, ow, oh, f, &full));
                for (int flip = 0; flip < 2; flip++) {
                    struct ldm_window w = {ow / 5, oh / 3, ow - ow / 5 - ow / 7, oh / 2, flip};
                    struct ldm_image got;
                    ck_ok(ldm_resize_window(&src, ow, oh, f, &w, &got));
                    check_window(&full, &w, &got);
                    ldm_image_free(&got);
                }
                ldm_image_free(&full);
                ldm_image_free(&src);
            }
}
END_TEST

/* A flat image stays flat through every filter and scale (weights sum to one). */
START_TEST(test_constant_stays)
{
    struct ldm_image src, out;
    ck_ok(ldm_image_alloc(&src, 50, 31, 3));
    memset(src.px, 201, (size_t)50 * 31 * 3);
    for (int f = 0; f < LDM_RESAMPLE_COUNT; f++) {
        static const int to[][2] = {{17, 9}, {173, 64}, {1, 1}, {50, 97}};
        for (int i = 0; i < 4; i++) {
            ck_ok(ldm_resize(&src, to[i][0], to[i][1], f, &out));
            for (size_t k = 0; k < (size_t)out.w * out.h * 3; k++)
                ck_assert_msg(out.px[k] == 201, "%s to %dx%d: sample %zu = %d",
                              ldm_resample_name(f), to[i][0], to[i][1], k, out.px[k]);
            ldm_image_free(&out);
        }
    }
    ldm_image_free(&src);
}
END_TEST

START_TEST(test_parse_and_args)
{
    int f = -1;
    ck_ok(ldm_resample_parse("bilinear", &f));
    ck_assert_int_eq(f, LDM_RESAMPLE_BILINEAR);
    ck_ok(ldm_resample_parse("LANCZOS", &f));
    ck_assert_int_eq(f, LDM_RESAMPLE_LANCZOS);
    ck_ok(ldm_resample_parse("Bicubic", &f));
    ck_assert_int_eq(f, LDM_RESAMPLE_BICUBIC);
    ck_assert_str_eq(ldm_resample_name(LDM_RESAMPLE_HAMMING), "hamming");
    ck_assert_str_eq(ldm_resample_name(99), "?");
    ck_fails_with(ldm_resample_parse("nearest", &f), LDM_EINVAL, "\"nearest\"");
    ck_fails_with(ldm_resample_parse(NULL, &f), LDM_EINVAL, "expected bilinear");

    struct ldm_image src, out, rgba;
    ck_ok(ldm_image_alloc(&src, 10, 10, 3));
    fill_noise(&src, 1);
    ck_fails_with(ldm_resize(&src, 0, 5, 0, &out), LDM_EINVAL, "bad size");
    ck_assert_ptr_null(out.px);
    ck_fails_with(ldm_resize(&src, 5, 5, 17, &out), LDM_EINVAL, "unknown filter");
    struct ldm_window w = {3, 0, 5, 5, 0};
    ck_fails_with(ldm_resize_window(&src, 7, 5, 0, &w, &out), LDM_EINVAL, "not inside");
    ck_ok(ldm_image_alloc(&rgba, 4, 4, 4));
    ck_fails_with(ldm_resize(&rgba, 2, 2, 0, &out), LDM_EINVAL, "1- or 3-channel");
    ldm_image_free(&rgba);
    ldm_image_free(&src);
}
END_TEST

/* Upscaling by an integer factor with the box filter repeats pixels: a check
 * of the tap placement that needs no reference. */
START_TEST(test_box_upscale_repeats)
{
    struct ldm_image src, out;
    ck_ok(ldm_image_alloc(&src, 5, 3, 1));
    fill_noise(&src, 3);
    ck_ok(ldm_resize(&src, 15, 6, LDM_RESAMPLE_BOX, &out));
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 15; x++)
            ck_assert_int_eq(out.px[y * 15 + x], src.px[(y / 2) * 5 + x / 3]);
    ldm_image_free(&out);
    ldm_image_free(&src);
}
END_TEST

Suite *suite_resample(void)
{
    Suite *s = suite_create("resample");
    TCase *tc = tcase_create("resample");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_pil_golden, 0, 2);
    tcase_add_loop_test(tc, test_window_equals_crop, 0, 2);
    tcase_add_test(tc, test_constant_stays);
    tcase_add_test(tc, test_parse_and_args);
    tcase_add_test(tc, test_box_upscale_repeats);
    suite_add_tcase(s, tc);
    return s;
}

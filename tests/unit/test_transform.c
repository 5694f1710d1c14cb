/* test_transform.c — the training transform vs torchvision + PIL, geometry, conditioning images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "goldimg.h"
#include "resample.h"
#include "testutil.h"
#include "loaderd/transform.h"

Suite *suite_transform(void);

/* A scripted random source: hands out vals[] in turn and records each n asked for. */
struct script {
    int vals[4], asked[4], used;
};

static int scripted(void *ctx, int n)
{
    struct script *s = ctx;
    ck_assert_msg(s->used < 4, "too many draws");
    s->asked[s->used] = n;
    return s->vals[s->used++];
}

static struct ldm_image load_source(const char *dir, const char *name, size_t *len, void **bytes)
{
    char path[4096];
    struct ldm_image im = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (strstr(name, ".jpg"))
        *bytes = gi_read_file(path, len);
    else
        gi_read_pnm(path, &im);
    return im;
}

/* One line of the transform cases: plan, compare the geometry with what the
 * Python side recorded, apply (or decode and apply), compare pixels. */
static int run_case(const char *dir, const char *line)
{
    char name[64], src[128], flt[16], crop[32], order[16], exp[128];
    int res, flip, ow, oh, rw, rh, top, left;
    ck_assert_msg(sscanf(line, "%63s %127s %d %15s %31s %d %15s %d %d %d %d %d %d %127s", name, src,
                         &res, flt, crop, &flip, order, &ow, &oh, &rw, &rh, &top, &left, exp) == 14,
                  "bad case line: %s", line);
    struct ldm_transform_params p = {.resolution = res, .flip = flip};
    ck_ok(ldm_resample_parse(flt, &p.filter));
    p.flip_order = strcmp(order, "before") == 0 ? LDM_FLIP_BEFORE_CROP : LDM_FLIP_AFTER_CROP;
    struct script s = {{0}, {0}, 0};
    if (strcmp(crop, "center") != 0) {
        p.crop = LDM_CROP_RANDOM;
        ck_assert_int_eq(sscanf(crop, "%d,%d", &s.vals[0], &s.vals[1]), 2);
    }
    size_t len = 0;
    void *bytes = NULL;
    struct ldm_image img = load_source(dir, src, &len, &bytes), got, want;
    struct ldm_image_info info;
    if (bytes)
        ck_ok(ldm_image_probe(bytes, len, src, NULL, &info));
    struct ldm_geometry g;
    ck_ok(ldm_transform_plan(bytes ? info.w : img.w, bytes ? info.h : img.h, &p, scripted, &s, &g));
    ck_assert_msg(g.orig_w == ow && g.orig_h == oh && g.resized_w == rw && g.resized_h == rh &&
                      g.crop_top == top && g.crop_left == left,
                  "%s: geometry %dx%d -> %dx%d at (%d,%d), expected %dx%d -> %dx%d at (%d,%d)",
                  name, g.orig_w, g.orig_h, g.resized_w, g.resized_h, g.crop_top, g.crop_left, ow,
                  oh, rw, rh, top, left);
    if (p.crop == LDM_CROP_RANDOM) { /* RandomCrop.get_params: top, then left */
        ck_assert_int_eq(s.used, 2);
        ck_assert_int_eq(s.asked[0], rh - res + 1);
        ck_assert_int_eq(s.asked[1], rw - res + 1);
    }
    if (bytes)
        ck_ok(ldm_transform_decode(bytes, len, src, NULL, &p, &g, &got, &info));
    else
        ck_ok(ldm_transform_apply(&img, &g, p.filter, &got));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, exp);
    gi_read_pnm(path, &want);
    long bad = gi_compare(name, &got, &want, NULL, NULL);
    ldm_image_free(&img);
    ldm_image_free(&got);
    ldm_image_free(&want);
    free(bytes);
    return bad == 0;
}

/* diffusers' train_text_to_image.py and train_text_to_image_sdxl.py on
 * torchvision 0.14 + Pillow 9.4: center and random crops, flips before and
 * after the crop, an odd margin (half-to-even rounding), no resize at all,
 * bicubic and lanczos, upscaling, and a JPEG decoded end to end. */
START_TEST(test_torchvision_golden)
{
    char *dir = tu_tmpdir();
    gi_run_golden("transform", dir);
    char **lines = gi_read_lines(dir, "cases.txt");
    int cases = 0, exact = 0;
    for (char **l = lines; *l; l++, cases++)
        exact += run_case(dir, *l);
    fprintf(stderr, "transform golden: %d cases, %d bit-exact\n", cases, exact);
    ck_assert_int_ge(cases, 13);
    ck_assert_int_eq(exact, cases);
    gi_free_lines(lines);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* torchvision's integers, worked by hand: long side int(512 * long / short),
 * corner round-half-even((resized - 512) / 2). */
START_TEST(test_center_geometry)
{
    static const int cases[][5] = {
        /* w, h, resized long side, left, top */
        {1024, 768, 682, 85, 0},  /* 682.67 -> 682; 170 / 2 = 85 */
        {1026, 1024, 513, 0, 0},  /* margin 1: round(0.5) = 0 */
        {1030, 1024, 515, 2, 0},  /* margin 3: round(1.5) = 2 */
        {1034, 1024, 517, 2, 0},  /* margin 5: round(2.5) = 2 */
        {1038, 1024, 519, 4, 0},  /* margin 7: round(3.5) = 4 */
        {768, 1024, 682, 0, 85},  /* portrait */
        {300, 200, 768, 128, 0},  /* upscale: 512 * 300 / 200 = 768 */
        {512, 512, 512, 0, 0},
    };
    struct ldm_transform_params p = {.resolution = 512};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ldm_geometry g;
        ck_ok(ldm_transform_plan(cases[i][0], cases[i][1], &p, NULL, NULL, &g));
        int longer = g.resized_w > g.resized_h ? g.resized_w : g.resized_h;
        int shorter = g.resized_w > g.resized_h ? g.resized_h : g.resized_w;
        ck_assert_int_eq(shorter, 512);
        ck_assert_int_eq(longer, cases[i][2]);
        ck_assert_int_eq(g.crop_left, cases[i][3]);
        ck_assert_int_eq(g.crop_top, cases[i][4]);
        ck_assert_int_eq(g.target_w, 512);
        ck_assert_int_eq(g.bucket, -1);
    }
}
END_TEST

static int never(void *ctx, int n)
{
    (void)ctx;
    ck_abort_msg("a draw of [0, %d) where none was due", n);
    return 0;
}

static int out_of_range(void *ctx, int n)
{
    (void)ctx;
    return n;
}

START_TEST(test_random_and_errors)
{
    struct ldm_transform_params p = {.resolution = 512, .crop = LDM_CROP_RANDOM};
    struct ldm_geometry g;
    /* already the crop's size: RandomCrop draws nothing */
    ck_ok(ldm_transform_plan(512, 512, &p, never, NULL, &g));
    ck_assert_int_eq(g.crop_top + g.crop_left, 0);
    /* one side with no margin still draws [0, 1) for it */
    struct script s = {{0, 99}, {0}, 0};
    ck_ok(ldm_transform_plan(1024, 768, &p, scripted, &s, &g));
    ck_assert_int_eq(s.asked[0], 1);
    ck_assert_int_eq(s.asked[1], 171);
    ck_assert_int_eq(g.crop_left, 99);
    ck_fails_with(ldm_transform_plan(1024, 768, &p, NULL, NULL, &g), LDM_EINVAL,
                  "without a random source");
    ck_fails_with(ldm_transform_plan(1024, 768, &p, out_of_range, NULL, &g), LDM_EINVAL,
                  "not in [0, 1)");
    ck_fails_with(ldm_transform_plan(0, 768, &p, scripted, &s, &g), LDM_EINVAL, "image 0x768");
    p.resolution = 0;
    ck_fails_with(ldm_transform_plan(10, 10, &p, scripted, &s, &g), LDM_EINVAL, "resolution 0");
    p = (struct ldm_transform_params){.resolution = 8, .crop = 7};
    ck_fails_with(ldm_transform_plan(10, 10, &p, NULL, NULL, &g), LDM_EINVAL, "crop 7");
    struct ldm_image im, out;
    ck_ok(ldm_image_alloc(&im, 10, 10, 3));
    memset(im.px, 0, 300);
    g = (struct ldm_geometry){10, 10, 10, 10, 3, 0, 8, 8, 0, 0, -1};
    ck_fails_with(ldm_transform_apply(&im, &g, 0, &out), LDM_EINVAL, "crop 8x8 at (top 3");
    ldm_image_free(&im);
}
END_TEST

static void fill(struct ldm_image *im, unsigned seed)
{
    for (size_t i = 0; i < (size_t)im->w * im->h * im->c; i++) {
        seed = seed * 1664525u + 1013904223u;
        im->px[i] = (uint8_t)(seed >> 24);
    }
}

/* resize, crop and mirror one step at a time with the plain resize */
static void by_steps(const struct ldm_image *src, const struct ldm_geometry *g, int filter,
                     struct ldm_image *out)
{
    struct ldm_image full;
    ck_ok(ldm_resize(src, g->resized_w, g->resized_h, filter, &full));
    ck_ok(ldm_image_alloc(out, g->target_w, g->target_h, src->c));
    int before = g->flip && g->flip_order == LDM_FLIP_BEFORE_CROP;
    for (int y = 0; y < g->target_h; y++)
        for (int x = 0; x < g->target_w; x++) {
            int fx = g->crop_left + x; /* column in the (maybe flipped) resized image */
            int sx = before ? g->resized_w - 1 - fx : fx;
            if (g->flip && !before)
                sx = g->crop_left + g->target_w - 1 - x;
            memcpy(out->px + ((size_t)y * g->target_w + x) * src->c,
                   full.px + ((size_t)(g->crop_top + y) * full.w + sx) * src->c, (size_t)src->c);
        }
    ldm_image_free(&full);
}

/* The conditioning image takes the image's geometry: same size gives the same
 * operations; another size is resized to the same resized size first. */
START_TEST(test_conditioning_image)
{
    struct ldm_image img, cond, small, a, b;
    ck_ok(ldm_image_alloc(&img, 301, 203, 3));
    ck_ok(ldm_image_alloc(&cond, 301, 203, 3));
    ck_ok(ldm_image_alloc(&small, 150, 101, 1));
    fill(&img, 1);
    fill(&cond, 2);
    fill(&small, 3);
    for (int order = 0; order < 2; order++) {
        struct ldm_transform_params p = {.resolution = 128, .filter = LDM_RESAMPLE_BICUBIC,
                                         .crop = LDM_CROP_RANDOM, .flip = 1, .flip_order = order};
        struct script s = {{0, 41}, {0}, 0};
        struct ldm_geometry g;
        ck_ok(ldm_transform_plan(img.w, img.h, &p, scripted, &s, &g));
        const struct ldm_image *srcs[] = {&img, &cond, &small};
        for (int i = 0; i < 3; i++) {
            ck_ok(ldm_transform_apply(srcs[i], &g, p.filter, &a));
            by_steps(srcs[i], &g, p.filter, &b);
            ck_assert_int_eq(gi_compare("conditioning", &a, &b, NULL, NULL), 0);
            ldm_image_free(&a);
            ldm_image_free(&b);
        }
    }
    ldm_image_free(&img);
    ldm_image_free(&cond);
    ldm_image_free(&small);
}
END_TEST

/* A JPEG at least twice the resized size decodes DCT-scaled when allowed,
 * and lands close to the full decode. */
START_TEST(test_dct_scaling)
{
    struct ldm_image big, a, b;
    ck_ok(ldm_image_alloc(&big, 2048, 1536, 3));
    for (int y = 0; y < big.h; y++)
        for (int x = 0; x < big.w; x++)
            for (int c = 0; c < 3; c++)
                big.px[((size_t)y * big.w + x) * 3 + c] =
                    (uint8_t)(128 + 100 * ((x / 97 + y / 61 + c) % 3 - 1) * ((x + y) % 512) / 512);
    void *jpg;
    size_t len;
    ck_ok(ldm_image_encode_jpeg(&big, 92, &jpg, &len));
    struct ldm_transform_params p = {.resolution = 256, .flip = 1};
    struct ldm_geometry g;
    ck_ok(ldm_transform_plan(2048, 1536, &p, NULL, NULL, &g));
    struct ldm_image_info info;
    ck_ok(ldm_transform_decode(jpg, len, "big.jpg", NULL, &p, &g, &a, &info));
    ck_assert_int_eq(info.scale_denom, 1);
    p.dct_scaling = 1;
    ck_ok(ldm_transform_decode(jpg, len, "big.jpg", NULL, &p, &g, &b, &info));
    ck_assert_int_eq(info.scale_denom, 4); /* 512x384 covers 341x256; 256x192 would not */
    ck_assert_int_eq(b.w, 256);
    int maxerr;
    double sum;
    gi_compare("dct-scaled transform", &b, &a, &maxerr, &sum);
    ck_assert_msg(sum / (256.0 * 256 * 3) < 2.0, "mean error %.3f", sum / (256.0 * 256 * 3));
    ldm_image_free(&a);
    ldm_image_free(&b);
    free(jpg);
    ldm_image_free(&big);
}
END_TEST

Suite *suite_transform(void)
{
    Suite *s = suite_create("transform");
    TCase *tc = tcase_create("transform");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_torchvision_golden);
    tcase_add_test(tc, test_center_geometry);
    tcase_add_test(tc, test_random_and_errors);
    tcase_add_test(tc, test_conditioning_image);
    tcase_add_test(tc, test_dct_scaling);
    suite_add_tcase(s, tc);
    return s;
}

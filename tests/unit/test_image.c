/* test_image.c — decoding against PIL's decode, broken files, size limits, DCT scaling, encoders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <zlib.h>

#include "goldimg.h"
#include "image.h"
#include "resample.h"
#include "testutil.h"

Suite *suite_image(void);

/* Decode dir/file and compare with PIL's decode in dir/expected (bit-exact),
 * or expect a refusal naming the file where PIL refuses it too. */
static int check_case(const char *dir, const char *file, const char *verdict,
                      const char *expected)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t len;
    void *data = gi_read_file(path, &len);
    struct ldm_image got, want;
    struct ldm_image_info info;
    ldm_err_clear();
    int rc = ldm_image_decode(data, len, file, NULL, &got, &info);
    free(data);
    if (strcmp(verdict, "fail") == 0) {
        ck_assert_msg(rc == LDM_EFORMAT, "%s: PIL refuses it, we return %d (%s)", file, rc,
                      ldm_errmsg());
        ck_assert_msg(strncmp(ldm_errmsg(), file, strlen(file)) == 0, "%s: detail \"%s\"", file,
                      ldm_errmsg());
        ck_assert_ptr_null(got.px);
        return 1;
    }
    ck_assert_msg(rc == 0, "%s: %s", file, ldm_errmsg());
    snprintf(path, sizeof path, "%s/%s", dir, expected);
    gi_read_pnm(path, &want);
    ck_assert_int_eq(info.w, want.w);
    ck_assert_int_eq(info.h, want.h);
    ck_assert_int_eq(info.scale_denom, 1);
    long bad = gi_compare(file, &got, &want, NULL, NULL);
    ldm_image_free(&got);
    ldm_image_free(&want);
    return bad == 0;
}

/* Decode big.jpg at the DCT scale chosen for w x h, resize to w x h, and
 * compare with PIL's full decode resized bilinearly. */
static void check_scaled(const char *dir, const char *file, const char *expected, int w, int h)
{
    static const int denom[][3] = {{256, 192, 4}, {300, 225, 2}, {100, 75, 8}, {480, 360, 2}};
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t len;
    void *data = gi_read_file(path, &len);
    struct ldm_decode_opts o = {.need_w = w, .need_h = h};
    struct ldm_image dec, got, want;
    struct ldm_image_info info;
    ck_ok(ldm_image_decode(data, len, file, &o, &dec, &info));
    free(data);
    for (size_t i = 0; i < sizeof denom / sizeof denom[0]; i++)
        if (denom[i][0] == w && denom[i][1] == h)
            ck_assert_int_eq(info.scale_denom, denom[i][2]);
    ck_assert_int_eq(info.w, 1024);
    ck_assert_int_ge(dec.w, w);
    ck_assert_int_ge(dec.h, h);
    ck_ok(ldm_resize(&dec, w, h, LDM_RESAMPLE_BILINEAR, &got));
    snprintf(path, sizeof path, "%s/%s", dir, expected);
    gi_read_pnm(path, &want);
    int maxerr;
    double sum;
    long bad = gi_compare(expected, &got, &want, &maxerr, &sum);
    double mean = sum / ((double)w * h * 3);
    fprintf(stderr, "DCT 1/%d decode + resize to %dx%d vs PIL: %ld samples differ, mean |error| "
            "%.3f, largest %d\n", info.scale_denom, w, h, bad, mean, maxerr);
    ck_assert_msg(mean < 1.5 && maxerr <= 48, "%dx%d: mean %.3f, max %d", w, h, mean, maxerr);
    ldm_image_free(&dec);
    ldm_image_free(&got);
    ldm_image_free(&want);
}

/* Every file of pil_resize.py's image mode: JPEG (4:2:0, 4:4:4, 4:2:2,
 * progressive, restart markers, grey, Adobe CMYK, 1x1, corrupt), PNG (every
 * bit depth and colour type, palettes short of entries, tRNS, interlaced),
 * WebP (lossy, lossless, alpha); truncated and broken files. */
START_TEST(test_pil_golden)
{
    char *dir = tu_tmpdir();
    gi_run_golden("image", dir);
    char **lines = gi_read_lines(dir, "cases.txt");
    int cases = 0, exact = 0, scaled = 0;
    for (char **l = lines; *l; l++) {
        char file[256], verdict[16], expected[256];
        int w = 0, h = 0;
        int n = sscanf(*l, "%255s %15s %255s %d %d", file, verdict, expected, &w, &h);
        ck_assert_msg(n >= 3, "bad case line: %s", *l);
        if (strcmp(verdict, "scaled") == 0) {
            check_scaled(dir, file, expected, w, h);
            scaled++;
            continue;
        }
        cases++;
        exact += check_case(dir, file, verdict, expected);
    }
    fprintf(stderr, "image golden: %d files, %d as PIL decodes or refuses them; %d scaled\n", cases,
            exact, scaled);
    ck_assert_int_ge(cases, 40);
    ck_assert_int_eq(scaled, 4);
    ck_assert_int_eq(exact, cases);
    gi_free_lines(lines);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static void fill_pattern(struct ldm_image *im)
{
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            for (int c = 0; c < im->c; c++)
                im->px[((size_t)y * im->w + x) * im->c + c] =
                    (uint8_t)(x * 7 + y * 3 + c * 80 + ((x / 8 + y / 8) % 2) * 60);
}

static void fill_smooth(struct ldm_image *im)
{
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            for (int c = 0; c < im->c; c++)
                im->px[((size_t)y * im->w + x) * im->c + c] =
                    (uint8_t)(40 + (x * 150 / im->w + y * 60 / im->h) * (c + 1) / 3);
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tu_write_file(path, data, len);
}

/* A YCCK JPEG (TurboJPEG compresses CMYK pixels to YCCK). */
static void write_ycck(const char *dir)
{
    int w = 45, h = 31;
    unsigned char *cmyk = malloc((size_t)w * h * 4), *jpg = NULL;
    for (int i = 0; i < w * h * 4; i++)
        cmyk[i] = (unsigned char)(i * 37 + (i / 4) % 200);
    unsigned long len = 0;
    tjhandle tj = tjInitCompress();
    ck_assert_int_eq(tjCompress2(tj, cmyk, w, 0, h, TJPF_CMYK, &jpg, &len, TJSAMP_420, 90, 0), 0);
    write_file(dir, "ycck.jpg", jpg, len);
    tjFree(jpg);
    tjDestroy(tj);
    free(cmyk);
}

/* Our encoders' output (and a YCCK file) decodes in PIL exactly as here. */
START_TEST(test_encoders_vs_pil)
{
    char *dir = tu_tmpdir();
    struct ldm_image rgb, grey;
    ck_ok(ldm_image_alloc(&rgb, 77, 53, 3));
    ck_ok(ldm_image_alloc(&grey, 31, 20, 1));
    fill_pattern(&rgb);
    fill_pattern(&grey);
    void *buf;
    size_t len;
    ck_ok(ldm_image_encode_png(&rgb, &buf, &len));
    write_file(dir, "ours.png", buf, len);
    free(buf);
    ck_ok(ldm_image_encode_png(&grey, &buf, &len));
    write_file(dir, "oursgrey.png", buf, len);
    free(buf);
    ck_ok(ldm_image_encode_jpeg(&rgb, 90, &buf, &len));
    write_file(dir, "ours.jpg", buf, len);
    free(buf);
    ck_ok(ldm_image_encode_jpeg(&grey, 50, &buf, &len));
    write_file(dir, "oursgrey.jpg", buf, len);
    free(buf);
    write_ycck(dir);
    const char *list = "ours.png ours.pnm\noursgrey.png oursgrey.pnm\nours.jpg oursjpg.pnm\n"
                       "oursgrey.jpg oursgreyjpg.pnm\nycck.jpg ycck.pnm\n";
    write_file(dir, "decode.txt", list, strlen(list));
    gi_run_golden("decode", dir);
    char **lines = gi_read_lines(dir, "cases.txt");
    int n = 0;
    for (char **l = lines; *l; l++, n++) {
        char file[256], verdict[16], expected[256];
        ck_assert_int_eq(sscanf(*l, "%255s %15s %255s", file, verdict, expected), 3);
        ck_assert_str_eq(verdict, "ok");
        ck_assert_msg(check_case(dir, file, verdict, expected), "%s differs from PIL", file);
    }
    ck_assert_int_eq(n, 5);
    gi_free_lines(lines);
    ldm_image_free(&rgb);
    ldm_image_free(&grey);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* PNG round trip is lossless; JPEG round trip is close; grey decodes to R=G=B. */
START_TEST(test_round_trip)
{
    struct ldm_image rgb, grey, back;
    ck_ok(ldm_image_alloc(&rgb, 64, 40, 3));
    ck_ok(ldm_image_alloc(&grey, 9, 5, 1));
    fill_pattern(&rgb);
    fill_pattern(&grey);
    void *buf;
    size_t len;
    ck_ok(ldm_image_encode_png(&rgb, &buf, &len));
    ck_assert_int_eq(ldm_image_sniff(buf, len), LDM_IMG_PNG);
    ck_ok(ldm_image_decode(buf, len, "rt.png", NULL, &back, NULL));
    ck_assert_int_eq(gi_compare("png round trip", &back, &rgb, NULL, NULL), 0);
    ldm_image_free(&back);
    free(buf);
    ck_ok(ldm_image_encode_png(&grey, &buf, &len));
    ck_ok(ldm_image_decode(buf, len, "grey.png", NULL, &back, NULL));
    ck_assert_int_eq(back.c, 3);
    for (int i = 0; i < 45; i++)
        for (int c = 0; c < 3; c++)
            ck_assert_int_eq(back.px[i * 3 + c], grey.px[i]);
    ldm_image_free(&back);
    free(buf);
    fill_smooth(&rgb);
    ck_ok(ldm_image_encode_jpeg(&rgb, 95, &buf, &len));
    ck_assert_int_eq(ldm_image_sniff(buf, len), LDM_IMG_JPEG);
    ck_ok(ldm_image_decode(buf, len, "rt.jpg", NULL, &back, NULL));
    int maxerr;
    double sum;
    gi_compare("jpeg q95 round trip", &back, &rgb, &maxerr, &sum);
    ck_assert_msg(sum / (64 * 40 * 3) < 1.0 && maxerr <= 6, "mean error %.2f, largest %d",
                  sum / (64 * 40 * 3), maxerr);
    ldm_image_free(&back);
    free(buf);
    ck_fails_with(ldm_image_encode_jpeg(&rgb, 0, &buf, &len), LDM_EINVAL, "quality 0");
    struct ldm_image empty = {0};
    ck_fails_with(ldm_image_encode_png(&empty, &buf, &len), LDM_EINVAL, "RGB or grey");
    ldm_image_free(&rgb);
    ldm_image_free(&grey);
}
END_TEST

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Headers that claim huge images are refused before any pixel memory is
 * allocated (an allocation of that size would fail under ASan). */
START_TEST(test_pixel_limit)
{
    struct ldm_image im;
    /* PNG: a lone IHDR claiming 100000 x 100000 */
    uint8_t png[33] = "\x89PNG\r\n\x1a\n";
    put_be32(png + 8, 13);
    memcpy(png + 12, "IHDR", 4);
    put_be32(png + 16, 100000);
    put_be32(png + 20, 100000);
    png[24] = 8;
    png[25] = 2;
    put_be32(png + 29, (uint32_t)crc32(0, png + 12, 17));
    ck_fails_with(ldm_image_decode(png, sizeof png, "bomb.png", NULL, &im, NULL), LDM_ERANGE,
                  "bomb.png: PNG of 100000x100000");
    /* JPEG: a real file with its SOF patched to 60000 x 60000 */
    struct ldm_image small;
    ck_ok(ldm_image_alloc(&small, 16, 16, 3));
    fill_pattern(&small);
    void *buf;
    size_t len;
    ck_ok(ldm_image_encode_jpeg(&small, 80, &buf, &len));
    uint8_t *j = buf;
    size_t i = 2;
    while (i + 9 < len && !(j[i] == 0xFF && j[i + 1] == 0xC0))
        i++;
    ck_assert_msg(i + 9 < len, "no SOF0 in our JPEG");
    j[i + 5] = j[i + 7] = 0xEA;
    j[i + 6] = j[i + 8] = 0x60;
    ck_fails_with(ldm_image_decode(buf, len, "bomb.jpg", NULL, &im, NULL), LDM_ERANGE,
                  "over the limit");
    free(buf);
    /* WebP: a lossless header claiming 16384 x 16384 */
    uint8_t webp[30] = "RIFF\x16\0\0\0WEBPVP8L\x0a\0\0\0\x2f";
    uint32_t bits = 16383u | 16383u << 14;
    memcpy(webp + 21, &bits, 4);
    ck_fails_with(ldm_image_decode(webp, sizeof webp, "bomb.webp", NULL, &im, NULL), LDM_ERANGE,
                  "bomb.webp: WebP of 16384x16384");
    /* an ordinary image under a small limit, and the byte limit */
    ck_ok(ldm_image_encode_png(&small, &buf, &len));
    struct ldm_decode_opts o = {.max_pixels = 255};
    ck_fails_with(ldm_image_decode(buf, len, "x.png", &o, &im, NULL), LDM_ERANGE,
                  "256 pixels, over the limit of 255");
    o = (struct ldm_decode_opts){.max_bytes = len - 1};
    ck_fails_with(ldm_image_decode(buf, len, "x.png", &o, &im, NULL), LDM_ERANGE,
                  "bytes, over the limit");
    o = (struct ldm_decode_opts){.max_pixels = 256, .max_bytes = len};
    ck_ok(ldm_image_decode(buf, len, "x.png", &o, &im, NULL));
    ldm_image_free(&im);
    free(buf);
    ldm_image_free(&small);
}
END_TEST

/* The format comes from the bytes; probing reads the header only. */
START_TEST(test_sniff_and_probe)
{
    struct ldm_image small, im;
    ck_ok(ldm_image_alloc(&small, 21, 13, 3));
    fill_pattern(&small);
    void *buf;
    size_t len;
    ck_ok(ldm_image_encode_jpeg(&small, 80, &buf, &len));
    struct ldm_image_info info;
    ck_ok(ldm_image_probe(buf, len, "misnamed.png", NULL, &info));
    ck_assert_int_eq(info.format, LDM_IMG_JPEG);
    ck_assert_int_eq(info.w, 21);
    ck_assert_int_eq(info.h, 13);
    ck_ok(ldm_image_decode(buf, len, "misnamed.png", NULL, &im, &info));
    ck_assert_int_eq(im.w, 21);
    ldm_image_free(&im);
    free(buf);
    ck_ok(ldm_image_encode_png(&small, &buf, &len));
    ck_ok(ldm_image_probe(buf, len, "a.png", NULL, &info));
    ck_assert_int_eq(info.format, LDM_IMG_PNG);
    ck_assert_int_eq(info.w * 100 + info.h, 2113);
    ck_fails_with(ldm_image_probe(buf, 20, "short.png", NULL, &info), LDM_EFORMAT,
                  "short.png: truncated PNG");
    free(buf);
    ck_assert_int_eq(ldm_image_sniff("RIFF\0\0\0\0WEBPVP8 ", 16), LDM_IMG_WEBP);
    ck_assert_int_eq(ldm_image_sniff("RIFF\0\0\0\0WAVE", 12), LDM_IMG_UNKNOWN);
    ck_assert_int_eq(ldm_image_sniff("\xff\xd8", 2), LDM_IMG_UNKNOWN);
    const char *gif = "shard-000001.tar/000042.gif";
    ck_fails_with(ldm_image_decode("GIF89a....", 10, gif, NULL, &im, NULL), LDM_EFORMAT,
                  "shard-000001.tar/000042.gif: not a JPEG, PNG or WebP");
    ck_fails_with(ldm_image_decode("", 0, NULL, NULL, &im, NULL), LDM_EFORMAT, "<buffer>");
    ck_fails_with(ldm_image_decode("\xff\xd8\xff\xe0", 4, "k.jpg", NULL, &im, NULL), LDM_EFORMAT,
                  "k.jpg: bad JPEG header");
    ldm_image_free(&small);
}
END_TEST

/* A truncated JPEG names the member and says what is wrong. */
START_TEST(test_truncated_jpeg)
{
    struct ldm_image big, im;
    ck_ok(ldm_image_alloc(&big, 200, 120, 3));
    fill_pattern(&big);
    void *buf;
    size_t len;
    ck_ok(ldm_image_encode_jpeg(&big, 90, &buf, &len));
    const char *label = "shard-000001.tar/000042.jpg";
    ck_fails_with(ldm_image_decode(buf, len * 2 / 3, label, NULL, &im, NULL), LDM_EFORMAT,
                  "shard-000001.tar/000042.jpg: truncated JPEG");
    ck_assert_ptr_null(im.px);
    free(buf);
    ldm_image_free(&big);
}
END_TEST

Suite *suite_image(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("image");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pil_golden);
    tcase_add_test(tc, test_encoders_vs_pil);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_pixel_limit);
    tcase_add_test(tc, test_sniff_and_probe);
    tcase_add_test(tc, test_truncated_jpeg);
    suite_add_tcase(s, tc);
    return s;
}

/* resample.c — Pillow 9.4's two-pass antialiased resize (fixed point), with crop and flip fused in. */
#include "resample.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "resample_int.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* the weights must round exactly as Pillow's do */
#endif

#define PRECISION_BITS LDM_RS_BITS
#define HALF LDM_RS_HALF

static int use_simd = 1;
static int use_avx2; /* set once at load: the CPU has AVX2 and LDM_NO_AVX2 is not 1 */

__attribute__((constructor)) static void pick_avx2(void)
{
    const char *no = getenv("LDM_NO_AVX2");
    use_avx2 = ldm_rs_have_avx2() && !(no && strcmp(no, "1") == 0);
}

void ldm_resample_set_simd(int on)
{
    use_simd = on != 0;
}

/* ---- filters (Pillow's kernels, evaluated in the same order) ------------------ */

static double box_filter(double x)
{
    return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

static double bilinear_filter(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_filter(double x)
{
    if (x < 0.0)
        x = -x;
    if (x == 0.0)
        return 1.0;
    if (x >= 1.0)
        return 0.0;
    x = x * M_PI;
    return sin(x) / x * (0.54f + 0.46f * cos(x));
}

static double bicubic_filter(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc_filter(double x)
{
    if (x == 0.0)
        return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_filter(double x)
{
    if (-3.0 <= x && x < 3.0)
        return sinc_filter(x) * sinc_filter(x / 3);
    return 0.0;
}

struct filter {
    const char *name;
    double (*fn)(double);
    double support;
};

static const struct filter filters[LDM_RESAMPLE_COUNT] = {
    [LDM_RESAMPLE_BILINEAR] = {"bilinear", bilinear_filter, 1.0},
    [LDM_RESAMPLE_BICUBIC] = {"bicubic", bicubic_filter, 2.0},
    [LDM_RESAMPLE_LANCZOS] = {"lanczos", lanczos_filter, 3.0},
    [LDM_RESAMPLE_BOX] = {"box", box_filter, 0.5},
    [LDM_RESAMPLE_HAMMING] = {"hamming", hamming_filter, 1.0},
};

int ldm_resample_parse(const char *name, int *filter)
{
    for (int i = 0; name && i < LDM_RESAMPLE_COUNT; i++)
        if (strcasecmp(name, filters[i].name) == 0) {
            *filter = i;
            return 0;
        }
    return ldm_fail(LDM_EINVAL, "resample filter \"%s\": expected bilinear, bicubic, lanczos, "
                    "box or hamming", name ? name : "");
}

const char *ldm_resample_name(int filter)
{
    return filter >= 0 && filter < LDM_RESAMPLE_COUNT ? filters[filter].name : "?";
}

/* ---- coefficients ---------------------------------------------------------------- */

static void coeffs_free(struct ldm_rs_coeffs *c)
{
    free(c->bounds);
    free(c->k);
    memset(c, 0, sizeof *c);
}

/* Pillow's 22-bit rounding of a normalised weight (half away from zero). */
static int32_t fixed(double w)
{
    return w < 0 ? (int32_t)(-0.5 + w * (1 << PRECISION_BITS))
                 : (int32_t)(0.5 + w * (1 << PRECISION_BITS));
}

/* The weights of output i (centre (i + 0.5) * scale) into k, tap range into b. */
static void coeffs_one(const struct filter *f, int in_size, double scale, double fscale,
                       double support, int i, int ksize, double *tmp, int *b, int32_t *k)
{
    double center = (i + 0.5) * scale;
    double ww = 0.0, ss = 1.0 / fscale;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0)
        xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size)
        xmax = in_size;
    xmax -= xmin;
    if (xmax < 0)
        xmax = 0;
    for (int x = 0; x < xmax; x++) {
        double w = f->fn((x + xmin - center + 0.5) * ss);
        tmp[x] = w;
        ww += w;
    }
    for (int x = 0; x < xmax; x++)
        if (ww != 0.0)
            tmp[x] /= ww;
    for (int x = 0; x < ksize; x++)
        k[x] = x < xmax ? fixed(tmp[x]) : 0;
    b[0] = xmin;
    b[1] = xmax;
}

/* Weights of outputs first..first+n-1 of an in_size -> out_size pass. */
static int coeffs_make(const struct filter *f, int in_size, int out_size, int first, int n,
                       struct ldm_rs_coeffs *c)
{
    memset(c, 0, sizeof *c);
    double scale = (double)in_size / out_size;
    double fscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * fscale;
    int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->bounds = malloc((size_t)n * 2 * sizeof *c->bounds);
    c->k = malloc((size_t)n * ksize * sizeof *c->k);
    double *tmp = malloc((size_t)ksize * sizeof *tmp);
    if (!c->bounds || !c->k || !tmp) {
        free(tmp);
        coeffs_free(c);
        return ldm_fail(LDM_ENOMEM, "resize %d -> %d: %d weights", in_size, out_size, n * ksize);
    }
    for (int i = 0; i < n; i++)
        coeffs_one(f, in_size, scale, fscale, support, first + i, ksize, tmp, c->bounds + 2 * i,
                   c->k + (size_t)i * ksize);
    free(tmp);
    return 0;
}

/* ---- passes (portable; resample_avx2.c / resample_sse2.c do the bulk where they can) -- */

static inline uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One output pixel of the horizontal pass from the taps at p. */
static inline void h_pixel(const uint8_t *p, int c, const int32_t *k, int taps, uint8_t *out)
{
    if (c == 3) {
        int32_t s0 = HALF, s1 = HALF, s2 = HALF;
        for (int t = 0; t < taps; t++, p += 3) {
            s0 += p[0] * k[t];
            s1 += p[1] * k[t];
            s2 += p[2] * k[t];
        }
        out[0] = clip8(s0);
        out[1] = clip8(s1);
        out[2] = clip8(s2);
    } else {
        int32_t s0 = HALF;
        for (int t = 0; t < taps; t++)
            s0 += p[t] * k[t];
        out[0] = clip8(s0);
    }
}

/* Horizontal pass over `rows` rows from src (stride bytes apart, c bytes a
 * pixel): the n outputs of cx (reversed when flip) into dst (dstride a row). */
static void pass_h(const uint8_t *src, size_t stride, int c, int rows,
                   const struct ldm_rs_coeffs *cx, int n, int flip, uint8_t *dst, size_t dstride)
{
    int r = 0;
    if (use_simd && use_avx2)
        r = ldm_rs_pass_h_avx2(src, stride, c, rows, cx, n, flip, dst, dstride);
    if (use_simd && r < rows)
        r += ldm_rs_pass_h_sse2(src + (size_t)r * stride, stride, c, rows - r, cx, n, flip,
                                dst + (size_t)r * dstride, dstride);
    for (; r < rows; r++) {
        const uint8_t *in = src + (size_t)r * stride;
        uint8_t *out = dst + (size_t)r * dstride;
        for (int j = 0; j < n; j++, out += c) {
            int i = flip ? n - 1 - j : j;
            h_pixel(in + (size_t)cx->bounds[2 * i] * c, c, cx->k + (size_t)i * cx->ksize,
                    cx->bounds[2 * i + 1], out);
        }
    }
}

/* Vertical pass: output row i of cy sums rows bounds[2i] - row0 ... of src
 * (stride bytes apart) over `len` bytes a row, into dst (len bytes a row). */
static void pass_v(const uint8_t *src, size_t stride, int row0, size_t len,
                   const struct ldm_rs_coeffs *cy, int n, uint8_t *dst)
{
    size_t e0 = 0;
    if (use_simd && use_avx2)
        e0 = ldm_rs_pass_v_avx2(src, stride, row0, len, cy, n, dst, len);
    if (use_simd && e0 < len)
        e0 += ldm_rs_pass_v_sse2(src + e0, stride, row0, len - e0, cy, n, dst + e0, len);
    for (int i = 0; i < n; i++) {
        const int32_t *k = cy->k + (size_t)i * cy->ksize;
        const uint8_t *rows = src + (size_t)(cy->bounds[2 * i] - row0) * stride;
        int taps = cy->bounds[2 * i + 1];
        for (size_t e = e0; e < len; e++) {
            int32_t s = HALF;
            for (int t = 0; t < taps; t++)
                s += rows[(size_t)t * stride + e] * k[t];
            dst[(size_t)i * len + e] = clip8(s);
        }
    }
}

/* Mirror every row of im left-right in place. */
static void mirror_rows(struct ldm_image *im)
{
    const int c = im->c;
    for (int y = 0; y < im->h; y++) {
        uint8_t *row = im->px + (size_t)y * im->w * c;
        for (int a = 0, b = im->w - 1; a < b; a++, b--)
            for (int ch = 0; ch < c; ch++) {
                uint8_t t = row[a * c + ch];
                row[a * c + ch] = row[b * c + ch];
                row[b * c + ch] = t;
            }
    }
}

/* ---- resize --------------------------------------------------------------------------- */

static int check_args(const struct ldm_image *src, int out_w, int out_h, int filter,
                      const struct ldm_window *win)
{
    if (!src || !src->px || src->w < 1 || src->h < 1 || (src->c != 1 && src->c != 3))
        return ldm_fail(LDM_EINVAL, "resize: need a 1- or 3-channel image, got %dx%dx%d",
                        src ? src->w : 0, src ? src->h : 0, src ? src->c : 0);
    if (out_w < 1 || out_h < 1)
        return ldm_fail(LDM_EINVAL, "resize %dx%d to %dx%d: bad size", src->w, src->h, out_w,
                        out_h);
    if (filter < 0 || filter >= LDM_RESAMPLE_COUNT)
        return ldm_fail(LDM_EINVAL, "resize: unknown filter %d", filter);
    if (win->w < 1 || win->h < 1 || win->x < 0 || win->y < 0 || win->x > out_w - win->w ||
        win->y > out_h - win->h)
        return ldm_fail(LDM_EINVAL, "resize to %dx%d: window %dx%d at (%d,%d) is not inside",
                        out_w, out_h, win->w, win->h, win->x, win->y);
    return 0;
}

/* Both passes: horizontal over source rows [r0, r1) into a temporary, then vertical. */
static int resize_both(const struct ldm_image *src, const struct ldm_rs_coeffs *cx,
                       const struct ldm_rs_coeffs *cy, const struct ldm_window *win,
                       struct ldm_image *dst)
{
    int r0 = cy->bounds[0];
    int r1 = cy->bounds[2 * (win->h - 1)] + cy->bounds[2 * (win->h - 1) + 1];
    size_t len = (size_t)win->w * src->c, stride = (size_t)src->w * src->c;
    uint8_t *tmp = malloc((size_t)(r1 > r0 ? r1 - r0 : 1) * len);
    if (!tmp)
        return ldm_fail(LDM_ENOMEM, "resize: %d rows of %zu bytes", r1 - r0, len);
    pass_h(src->px + (size_t)r0 * stride, stride, src->c, r1 - r0, cx, win->w, win->flip, tmp,
           len);
    pass_v(tmp, len, r0, len, cy, win->h, dst->px);
    free(tmp);
    return 0;
}

/* Vertical pass only (the width does not change), or a plain copy. */
static void resize_v_only(const struct ldm_image *src, const struct ldm_rs_coeffs *cy,
                          const struct ldm_window *win, struct ldm_image *dst)
{
    size_t stride = (size_t)src->w * src->c, off = (size_t)win->x * src->c;
    size_t len = (size_t)win->w * src->c;
    if (cy)
        pass_v(src->px + off, stride, 0, len, cy, win->h, dst->px);
    else
        for (int y = 0; y < win->h; y++)
            memcpy(dst->px + (size_t)y * len, src->px + (size_t)(win->y + y) * stride + off, len);
    if (win->flip)
        mirror_rows(dst);
}

int ldm_resize_window(const struct ldm_image *src, int out_w, int out_h, int filter,
                      const struct ldm_window *win, struct ldm_image *dst)
{
    memset(dst, 0, sizeof *dst);
    int rc = check_args(src, out_w, out_h, filter, win);
    if (rc)
        return rc;
    const struct filter *f = &filters[filter];
    int need_h = out_w != src->w, need_v = out_h != src->h;
    struct ldm_rs_coeffs cx = {0}, cy = {0};
    rc = ldm_image_alloc(dst, win->w, win->h, src->c);
    if (rc == 0 && need_h)
        rc = coeffs_make(f, src->w, out_w, win->x, win->w, &cx);
    if (rc == 0 && need_v)
        rc = coeffs_make(f, src->h, out_h, win->y, win->h, &cy);
    if (rc == 0 && need_h && need_v) {
        rc = resize_both(src, &cx, &cy, win, dst);
    } else if (rc == 0 && need_h) {
        size_t stride = (size_t)src->w * src->c;
        pass_h(src->px + (size_t)win->y * stride, stride, src->c, win->h, &cx, win->w, win->flip,
               dst->px, (size_t)win->w * src->c);
    } else if (rc == 0) {
        resize_v_only(src, need_v ? &cy : NULL, win, dst);
    }
    coeffs_free(&cx);
    coeffs_free(&cy);
    if (rc)
        ldm_image_free(dst);
    return rc;
}

int ldm_resize(const struct ldm_image *src, int out_w, int out_h, int filter,
               struct ldm_image *dst)
{
    struct ldm_window win = {0, 0, out_w, out_h, 0};
    return ldm_resize_window(src, out_w, out_h, filter, &win, dst);
}

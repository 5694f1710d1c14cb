/* test_nn.c — nn/ beyond the golden values: tensor descriptors, fp16/bf16
 * conversions, arenas, contexts and workspace rules, the thread pool, the
 * ops' argument checks, and gradients against central finite differences.
 *
 * Finite differences run on the real fp32 kernels (the CPU backend has no
 * fp64 path, and a test-only fp64 copy of each kernel would check other
 * code). With L = Σ r·y accumulated in double and a step h = 1e-2 on O(1)
 * inputs, the truncation error is O(h²) and the rounding error about
 * 6e-8·|L|/h; measured, the difference stays below 1e-4 of the largest
 * gradient for every case here, so the bound is 1e-3: a backward with one
 * term off by 2% fails it. Max pooling gets inputs spaced 0.1 apart so that
 * no ±h step changes a window's winner. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/backend.h"
#include "nn/cpu/pool.h"
#include "nn/cpu/vec.h"
#include "testutil.h"

static struct ldm_ctx *C;
static void *g_allocs[256];
static int g_nallocs;

static void setup(void)
{
    ck_ok(ldm_ctx_open(&C, "cpu", 3));
    ck_ok(ldm_ctx_reserve(C, 1 << 20));
}

static void teardown(void)
{
    for (int i = 0; i < g_nallocs; i++)
        free(g_allocs[i]);
    g_nallocs = 0;
    ldm_ctx_close(&C);
}

/* A deterministic value in [-1, 1). */
static float rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

static float *buf(size_t n)
{
    ck_assert_int_lt(g_nallocs, 256);
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(p);
    g_allocs[g_nallocs++] = p;
    return p;
}

/* A new F32 tensor of this shape, random in [-scale, scale) (scale 0: zeros). */
#define T(seed, scale, ...)                                                                        \
    rand_tensor((seed), (scale), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),    \
                (const int64_t[]){__VA_ARGS__})

static struct ldm_tensor rand_tensor(uint32_t seed, float scale, int ndim, const int64_t *shape)
{
    struct ldm_tensor t = ldm_tensor_view(NULL, LDM_DT_F32, ndim, shape);
    size_t n = ldm_tensor_numel(&t);
    float *p = buf(n);
    for (size_t i = 0; i < n; i++)
        p[i] = scale * rnd(&seed);
    t.data = p;
    return t;
}

/* ---- tensors and conversions --------------------------------------------------------- */

START_TEST(test_tensor_set)
{
    struct ldm_tensor t;
    char s[64];
    ck_ok(ldm_tensor_setv(&t, "x", LDM_DT_F32, 2, 4, 8, 8));
    ck_assert_int_eq(t.ndim, 4);
    ck_assert_uint_eq(ldm_tensor_numel(&t), 512);
    ck_assert_uint_eq(ldm_tensor_nbytes(&t), 2048);
    ck_assert_str_eq(ldm_tensor_shape_str(&t, s, sizeof s), "[2,4,8,8]");
    ck_ok(ldm_tensor_set(&t, "scalar", LDM_DT_BF16, 0, NULL));
    ck_assert_uint_eq(ldm_tensor_numel(&t), 1);
    ck_fails_with(ldm_tensor_setv(&t, "bad", LDM_DT_F32, 2, -1), LDM_EINVAL, "bad");
    ck_fails_with(ldm_tensor_setv(&t, "deep", LDM_DT_F32, 1, 1, 1, 1, 1, 1), LDM_EINVAL,
                  "6 dimensions");
    ck_fails_with(ldm_tensor_setv(&t, "huge", LDM_DT_F32, INT64_MAX / 2, 4), LDM_EINVAL,
                  "overflows");
    ck_fails_with(ldm_tensor_setv(&t, "dt", 99, 1), LDM_EINVAL, "dtype");
}
END_TEST

START_TEST(test_f16_bf16)
{
    static const struct { float f; uint16_t h; } half[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff}, {65520.0f, 0x7c00},
        {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000}, {0x1.8p-25f, 0x0001}, {0x1p-14f, 0x0400},
        {-0.0f, 0x8000}, {1.0009765625f, 0x3c01}, {1.00048828125f, 0x3c00}, /* tie to even */
        {1.00146484375f, 0x3c02}, {INFINITY, 0x7c00}, {0.1f, 0x2e66},
    };
    for (size_t i = 0; i < sizeof half / sizeof half[0]; i++) {
        ck_assert_msg(ldm_f32_to_f16(half[i].f) == half[i].h, "f16(%a) = %04x, want %04x",
                      (double)half[i].f, ldm_f32_to_f16(half[i].f), half[i].h);
    }
    ck_assert(isnan(ldm_f16_to_f32(ldm_f32_to_f16(NAN))));
    for (uint32_t h = 0; h < 0x10000; h++) { /* every half survives a round trip */
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue;
        ck_assert_uint_eq(ldm_f32_to_f16(ldm_f16_to_f32((uint16_t)h)), h);
    }
    ck_assert_float_eq(ldm_f16_to_f32(0x0001), 0x1p-24f);
    ck_assert_uint_eq(ldm_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(ldm_f32_to_bf16(1.00390625f), 0x3f80); /* tie, even stays */
    ck_assert_uint_eq(ldm_f32_to_bf16(1.01171875f), 0x3f82); /* tie, odd rounds up */
    ck_assert_uint_eq(ldm_f32_to_bf16(-3.0f), 0xc040);
    ck_assert(isnan(ldm_bf16_to_f32(ldm_f32_to_bf16(NAN))));
    ck_assert_float_eq(ldm_bf16_to_f32(0x4049), 3.140625f);
    uint16_t src[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    float dst[4];
    ck_ok(ldm_convert(dst, LDM_DT_F32, src, LDM_DT_F16, 4));
    ck_assert_float_eq(dst[2], 65504.0f);
    uint16_t bf[4];
    ck_ok(ldm_convert(bf, LDM_DT_BF16, dst, LDM_DT_F32, 4));
    ck_assert_uint_eq(bf[1], 0xc000);
    ck_fails_with(ldm_convert(dst, LDM_DT_F32, src, LDM_DT_I32, 1), LDM_EUNSUPPORTED, "I32");
}
END_TEST

/* The vectorized exp of the CPU kernels (softmax, attention, SiLU). */
START_TEST(test_fast_exp)
{
    double worst = 0.0;
    for (int i = 0; i < 175000; i++) { /* [-87, 88): above 88 it saturates */
        float x = -87.0f + 0.001f * (float)i;
        double want = exp((double)x), got = cpu_expf(x);
        worst = fmax(worst, fabs(got - want) / want);
    }
    ck_assert_msg(worst < 2.5e-7, "cpu_expf: max relative error %.3g", worst);
    ck_assert_float_eq(cpu_expf(0.0f), 1.0f);
    ck_assert_float_eq(cpu_expf(-INFINITY), 0.0f);
    ck_assert_float_eq(cpu_expf(-100.0f), 0.0f);
    ck_assert(isfinite(cpu_expf(1000.0f)));
    float row[19], want_sum = 0.0f;
    for (int i = 0; i < 19; i++)
        row[i] = 0.25f * (float)i - 2.0f;
    ck_assert_float_eq(cpu_rowmax(row, 19), 2.5f);
    for (int i = 0; i < 19; i++)
        want_sum += expf(row[i] - 2.5f);
    float sum = cpu_exp_sub(row, 19, 2.5f, 1);
    ck_assert_float_eq_tol(sum, want_sum, 1e-5f);
    ck_assert_float_eq_tol(row[18], 1.0f, 1e-7f);
}
END_TEST

/* ---- arenas, contexts, workspace ------------------------------------------------------------ */

START_TEST(test_arena)
{
    struct ldm_tensor t[3];
    ck_ok(ldm_tensor_setv(&t[0], "conv.weight", LDM_DT_F32, 4, 3, 3, 3));
    ck_ok(ldm_tensor_setv(&t[1], "conv.bias", LDM_DT_F32, 4));
    ck_ok(ldm_tensor_setv(&t[2], "norm.weight", LDM_DT_F32, 100));
    size_t bytes;
    ck_ok(ldm_arena_size(t, 3, &bytes));
    ck_assert_uint_eq(bytes, 512 + 256 + 512);
    struct ldm_arena a;
    ck_ok(ldm_arena_alloc(&a, C, t, 3));
    ck_assert_uint_eq(a.bytes, bytes);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq((uintptr_t)t[i].data % LDM_ARENA_ALIGN, 0);
        const float *p = t[i].data;
        for (size_t k = 0; k < ldm_tensor_numel(&t[i]); k++)
            ck_assert_float_eq(p[k], 0.0f);
    }
    ck_assert_ptr_eq(t[1].data, (char *)a.base + 512);
    ((float *)t[2].data)[99] = 5.0f;
    struct ldm_tensor flat;
    ck_ok(ldm_arena_flat(&a, LDM_DT_F32, &flat));
    ck_assert_int_eq(flat.shape[0], (int64_t)(bytes / 4));
    ck_ok(ldm_arena_zero(&a));
    ck_assert_float_eq(((float *)t[2].data)[99], 0.0f);
    ldm_arena_free(&a);
    ck_assert_ptr_null(a.base);
    ldm_arena_free(&a);
    struct ldm_tensor big[3];
    for (int i = 0; i < 3; i++)
        ck_ok(ldm_tensor_setv(&big[i], "big", LDM_DT_F32, INT64_MAX / 4 - 1000));
    ck_fails_with(ldm_arena_size(big, 3, &bytes), LDM_EINVAL, "overflows");
}
END_TEST

START_TEST(test_ctx)
{
    struct ldm_ctx *c = NULL;
    ck_fails_with(ldm_ctx_open(&c, "tpu", 1), LDM_EINVAL, "tpu");
    ck_fails_with(ldm_ctx_open(&c, "cuda:x", 1), LDM_EINVAL, "cuda:x");
    ck_fails_with(ldm_ctx_open(&c, "cuda:0", 1), LDM_EUNSUPPORTED, "CUDA");
    ck_assert_ptr_null(c);
    ck_ok(ldm_ctx_open(&c, "cpu", 0));
    ck_assert_int_eq(c->threads, ldm_cpu_count());
    ldm_ctx_close(&c);
    ck_assert_ptr_null(c);
    ldm_ctx_close(&c);
}
END_TEST

START_TEST(test_workspace_rules)
{
    struct ldm_tensor x = T(1, 1.0f, 1, 2, 16, 16), w = T(2, 1.0f, 3, 2, 3, 3);
    struct ldm_tensor y = T(3, 0.0f, 1, 3, 16, 16);
    struct ldm_conv2d_opts o = {1, 1, 1, 1, 1, 1};
    size_t need = 0;
    ldm_ctx_plan_begin(C);
    struct ldm_tensor nodata = x;
    nodata.data = NULL; /* planning reads no data */
    ck_ok(ldm_conv2d_forward(C, &y, &nodata, &w, NULL, &o));
    ldm_ctx_plan_end(C, &need);
    ck_assert_uint_eq(need, 2 * 9 * 256 * sizeof(float));
    ldm_ctx_set_workspace(C, NULL, 0);
    ck_fails_with(ldm_conv2d_forward(C, &y, &x, &w, NULL, &o), LDM_ERANGE, "conv2d forward");
    ck_fails_with(ldm_conv2d_forward(C, &y, &nodata, &w, NULL, &o), LDM_EINVAL, "no data");
    ck_ok(ldm_ctx_reserve(C, need));
    ck_ok(ldm_conv2d_forward(C, &y, &x, &w, NULL, &o));
    /* attention's workspace grows with the tokens, not their square */
    struct ldm_tensor q;
    ck_ok(ldm_tensor_setv(&q, "q", LDM_DT_F32, 1, 4096, 64));
    struct ldm_tensor lse;
    ck_ok(ldm_tensor_setv(&lse, "lse", LDM_DT_F32, 1, 1, 4096));
    struct ldm_attn_opts ao = {1, 0.0f, 0, NULL, 0};
    ldm_ctx_plan_begin(C);
    ck_ok(ldm_attention_backward(C, &q, &q, &q, &q, &q, &q, &q, &q, &lse, &ao));
    ldm_ctx_plan_end(C, &need);
    ck_assert_uint_lt(need, (size_t)C->threads * (2 * 64 * 128 + 4096 + 16) * 4 + 1);
}
END_TEST

/* conv2d (3×3, padding 1) against direct loops in double. */
static void conv_vs_loops(int64_t N, int64_t Cc, int64_t H, int64_t W, int64_t K)
{
    struct ldm_tensor x = T(1, 1.0f, N, Cc, H, W), w = T(2, 0.1f, K, Cc, 3, 3), b = T(3, 1.0f, K);
    struct ldm_tensor y = T(4, 0.0f, N, K, H, W), dy = T(5, 1.0f, N, K, H, W);
    struct ldm_tensor dx = T(6, 0.0f, N, Cc, H, W), dw = T(7, 0.0f, K, Cc, 3, 3);
    struct ldm_conv2d_opts o = {1, 1, 1, 1, 1, 1};
    size_t need;
    ldm_ctx_plan_begin(C);
    ck_ok(ldm_conv2d_forward(C, &y, &x, &w, &b, &o));
    ldm_ctx_plan_end(C, &need);
    ck_assert_uint_lt(need, (size_t)(Cc * 9) * (size_t)(N * H * W) * sizeof(float));
    ck_ok(ldm_ctx_reserve(C, need));
    ck_ok(ldm_conv2d_forward(C, &y, &x, &w, &b, &o));
    ck_ok(ldm_conv2d_backward(C, &dx, &dw, NULL, &dy, &x, &w, &o));
    const float *xp = x.data, *wp = w.data, *bp = b.data, *yp = y.data, *gp = dy.data;
    const float *dxp = dx.data, *dwp = dw.data;
    double ey = 0.0, ex = 0.0, ew = 0.0, wmax = 0.0;
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < Cc; c++)
            for (int64_t r = 0; r < 3; r++)
                for (int64_t s = 0; s < 3; s++) {
                    double acc = 0.0;
                    for (int64_t n = 0; n < N; n++)
                        for (int64_t i = 0; i < H; i++)
                            for (int64_t j = 0; j < W; j++) {
                                int64_t ih = i + r - 1, iw = j + s - 1;
                                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                    acc += (double)gp[((n * K + k) * H + i) * W + j] *
                                           xp[((n * Cc + c) * H + ih) * W + iw];
                            }
                    ew = fmax(ew, fabs(acc - dwp[((k * Cc + c) * 3 + r) * 3 + s]));
                    wmax = fmax(wmax, fabs(acc));
                }
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) {
                for (int64_t k = 0; k < K; k++) {
                    double acc = bp[k];
                    for (int64_t c = 0; c < Cc; c++)
                        for (int64_t r = 0; r < 3; r++)
                            for (int64_t s = 0; s < 3; s++) {
                                int64_t ih = i + r - 1, iw = j + s - 1;
                                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                    acc += (double)wp[((k * Cc + c) * 3 + r) * 3 + s] *
                                           xp[((n * Cc + c) * H + ih) * W + iw];
                            }
                    ey = fmax(ey, fabs(acc - yp[((n * K + k) * H + i) * W + j]));
                }
                for (int64_t c = 0; c < Cc; c++) {
                    double acc = 0.0;
                    for (int64_t k = 0; k < K; k++)
                        for (int64_t r = 0; r < 3; r++)
                            for (int64_t s = 0; s < 3; s++) {
                                int64_t oh = i - r + 1, ow = j - s + 1;
                                if (oh >= 0 && oh < H && ow >= 0 && ow < W)
                                    acc += (double)wp[((k * Cc + c) * 3 + r) * 3 + s] *
                                           gp[((n * K + k) * H + oh) * W + ow];
                            }
                    ex = fmax(ex, fabs(acc - dxp[((n * Cc + c) * H + i) * W + j]));
                }
            }
    ck_assert_msg(ey < 1e-4 && ex < 1e-4 && ew < 1e-5 * wmax + 1e-4,
                  "conv %lldx%lldx%lldx%lld: max error y %.3g, dx %.3g, dw %.3g (max |dw| %.3g)",
                  (long long)N, (long long)Cc, (long long)H, (long long)W, ey, ex, ew, wmax);
}

/* Past the 32 MiB column-matrix cap: a 128×128 image with 64 channels goes
 * in pixel tiles; 4 images of 24×24 with 512 channels go 3 and then 1 side
 * by side. */
START_TEST(test_conv_tiled)
{
    conv_vs_loops(1, 64, 128, 128, 3);
    conv_vs_loops(4, 512, 24, 24, 2);
}
END_TEST

/* ---- the thread pool ------------------------------------------------------------------------ */

struct count_job {
    int hits[1000];
    int bad_thread;
    int threads;
};

static void count_task(void *arg, int64_t t, int thread)
{
    struct count_job *j = arg;
    __atomic_add_fetch(&j->hits[t], 1, __ATOMIC_RELAXED);
    if (thread < 0 || thread >= j->threads)
        j->bad_thread = 1;
}

START_TEST(test_pool)
{
    for (int threads = 1; threads <= 8; threads *= 2) {
        struct ldm_pool *p;
        ck_ok(ldm_pool_create(&p, threads));
        ck_assert_int_eq(ldm_pool_threads(p), threads);
        for (int round = 0; round < 50; round++) {
            static struct count_job j;
            memset(&j, 0, sizeof j);
            j.threads = threads;
            int n = 1 + (round * 37) % 1000;
            ldm_pool_run(p, n, count_task, &j);
            for (int i = 0; i < 1000; i++)
                ck_assert_int_eq(j.hits[i], i < n ? 1 : 0);
            ck_assert_int_eq(j.bad_thread, 0);
        }
        ldm_pool_destroy(&p);
        ck_assert_ptr_null(p);
    }
    struct ldm_pool *p;
    ck_fails_with(ldm_pool_create(&p, 0), LDM_EINVAL, "0 threads");
}
END_TEST

/* ---- reduced dtypes: cast and emulation --------------------------------------------------- */

/* n values as `dtype` in a fresh buffer (16-bit storage). */
static uint16_t *as16(const float *v, size_t n, int dtype)
{
    uint16_t *h = (uint16_t *)buf(n);
    ck_ok(ldm_convert(h, dtype, v, LDM_DT_F32, n));
    return h;
}

/* cast: rounding, alpha, accumulate, F16 overflow and NaN, size and dtype checks. */
START_TEST(test_cast)
{
    float v[6] = {1.0f, -2.5f, 1.00390625f, 70000.0f, NAN, 3.0f}, back[6], acc[6];
    int64_t n = 6;
    uint16_t *h = (uint16_t *)buf(6);
    struct ldm_tensor x = ldm_tensor_view(v, LDM_DT_F32, 1, &n);
    struct ldm_tensor y = ldm_tensor_view(h, LDM_DT_F16, 1, &n);
    struct ldm_tensor b = ldm_tensor_view(back, LDM_DT_F32, 1, &n);
    ck_ok(ldm_cast(C, &y, &x, 0.0f, 0));
    ck_ok(ldm_cast(C, &b, &y, 1.0f, 0));
    ck_assert(back[0] == 1.0f && back[1] == -2.5f && back[5] == 3.0f);
    ck_assert_float_eq(back[2], 1.00390625f); /* 1 + 2^-8 is an F16 value */
    ck_assert(isinf(back[3]) && back[3] > 0 && isnan(back[4]));
    y.dtype = LDM_DT_BF16;
    ck_ok(ldm_cast(C, &y, &x, 0.0f, 0));
    ck_ok(ldm_cast(C, &b, &y, 1.0f, 0));
    ck_assert_float_eq(back[2], 1.0f); /* BF16 keeps 8 bits: 1 + 2^-8 ties to even, 1 */
    ck_assert_float_eq(back[3], 70144.0f);
    for (int i = 0; i < 6; i++)
        acc[i] = 1.0f;
    struct ldm_tensor a = ldm_tensor_view(acc, LDM_DT_F32, 1, &n);
    ck_ok(ldm_cast(C, &a, &y, 0.5f, 1));
    ck_assert(acc[0] == 1.5f && acc[1] == -0.25f && acc[5] == 2.5f);
    int64_t m = 5;
    struct ldm_tensor short5 = ldm_tensor_view(back, LDM_DT_F32, 1, &m);
    ck_fails_with(ldm_cast(C, &short5, &y, 1.0f, 0), LDM_EINVAL, "5 elements");
    struct ldm_tensor same = ldm_tensor_view(v, LDM_DT_BF16, 1, &n);
    ck_fails_with(ldm_cast(C, &same, &x, 1.0f, 0), LDM_EINVAL, "same memory");
    struct ldm_tensor ids = ldm_tensor_view(v, LDM_DT_I32, 1, &n);
    ck_fails_with(ldm_cast(C, &b, &ids, 1.0f, 0), LDM_EINVAL, "cast takes F32, F16 and BF16");
}
END_TEST

/* An op on BF16 tensors (emulated) equals the F32 op on the same rounded values with
 * its outputs rounded once; a backward adds into its BF16 gradients. */
START_TEST(test_emulated_bf16)
{
    struct ldm_tensor x = T(31, 1.0f, 2, 4, 5, 5), w = T(32, 0.5f, 3, 4, 3, 3);
    struct ldm_tensor bias = T(33, 0.5f, 3), y = T(34, 0.0f, 2, 3, 5, 5);
    struct ldm_conv2d_opts pad1 = {1, 1, 1, 1, 1, 1};
    size_t nx = ldm_tensor_numel(&x), nw = ldm_tensor_numel(&w), ny = ldm_tensor_numel(&y);
    uint16_t *xh = as16(x.data, nx, LDM_DT_BF16), *wh = as16(w.data, nw, LDM_DT_BF16);
    uint16_t *bh = as16(bias.data, 3, LDM_DT_BF16), *yh = (uint16_t *)buf(ny);
    /* the reference: F32 on the rounded values */
    ck_ok(ldm_convert(x.data, LDM_DT_F32, xh, LDM_DT_BF16, nx));
    ck_ok(ldm_convert(w.data, LDM_DT_F32, wh, LDM_DT_BF16, nw));
    ck_ok(ldm_convert(bias.data, LDM_DT_F32, bh, LDM_DT_BF16, 3));
    ck_ok(ldm_conv2d_forward(C, &y, &x, &w, &bias, &pad1));
    uint16_t *want = as16(y.data, ny, LDM_DT_BF16);
    struct ldm_tensor xb = x, wb = w, bb = bias, yb = y;
    xb.data = xh, wb.data = wh, bb.data = bh, yb.data = yh;
    xb.dtype = wb.dtype = bb.dtype = yb.dtype = LDM_DT_BF16;
    ck_ok(ldm_conv2d_forward(C, &yb, &xb, &wb, &bb, &pad1));
    ck_assert_msg(memcmp(yh, want, ny * 2) == 0, "emulated BF16 conv differs");
    /* backward into dx that starts at 1 (+=), dy the rounded forward output in both */
    float *ones = buf(nx);
    for (size_t i = 0; i < nx; i++)
        ones[i] = 1.0f;
    struct ldm_tensor dx = x, dxb = xb;
    dx.data = ones;
    dxb.data = as16(ones, nx, LDM_DT_BF16);
    ck_ok(ldm_convert(y.data, LDM_DT_F32, yh, LDM_DT_BF16, ny));
    ck_ok(ldm_conv2d_backward(C, &dx, NULL, NULL, &y, &x, &w, &pad1));
    ck_ok(ldm_conv2d_backward(C, &dxb, NULL, NULL, &yb, &xb, &wb, &pad1));
    uint16_t *dxh = dxb.data;
    uint16_t *dwant = as16(dx.data, nx, LDM_DT_BF16);
    ck_assert_msg(memcmp(dxh, dwant, nx * 2) == 0, "emulated BF16 conv backward differs");
}
END_TEST

/* Op timing: calls counted per op, rows biggest first, nothing when off. */
START_TEST(test_profile)
{
    struct ldm_tensor x = T(41, 1.0f, 2, 4, 5, 5), w = T(42, 0.5f, 3, 4, 3, 3);
    struct ldm_tensor y = T(43, 0.0f, 2, 3, 5, 5);
    struct ldm_conv2d_opts pad1 = {1, 1, 1, 1, 1, 1};
    char *text = NULL;
    size_t len = 0;
    ck_ok(ldm_ctx_profile(C, 1));
    for (int i = 0; i < 3; i++)
        ck_ok(ldm_conv2d_forward(C, &y, &x, &w, NULL, &pad1));
    ck_ok(ldm_add_forward(C, &y, 1.0f, &y, 1.0f, &y));
    ldm_ctx_plan_begin(C); /* planning computes nothing and counts nothing */
    ck_ok(ldm_add_forward(C, &y, 1.0f, &y, 1.0f, &y));
    ldm_ctx_plan_end(C, NULL);
    ck_assert_int_eq(C->prof[LDM_OP_CONV2D_FWD].calls, 3);
    ck_assert_int_eq(C->prof[LDM_OP_ADD_FWD].calls, 1);
    ck_assert(C->prof[LDM_OP_CONV2D_FWD].seconds > 0);
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    ldm_ctx_profile_report(C, f);
    fclose(f);
    ck_assert_msg(strstr(text, "conv2d forward") && strstr(text, "3 calls"), "%s", text);
    ck_assert_msg(strstr(text, "add forward") && strstr(text, "1 calls"), "%s", text);
    int conv_first = C->prof[LDM_OP_CONV2D_FWD].seconds >= C->prof[LDM_OP_ADD_FWD].seconds;
    const char *first = conv_first ? "  conv2d forward" : "  add forward";
    ck_assert_msg(strncmp(text, first, strlen(first)) == 0, "not biggest first: %s", text);
    free(text);
    ck_ok(ldm_ctx_profile(C, 0));
    ck_assert_ptr_null(C->prof);
    size_t used, total;
    ck_fails_with(ldm_ctx_meminfo(C, &used, &total), LDM_EUNSUPPORTED, "does not report");
    ck_assert_uint_eq(total, 0);
}
END_TEST

/* ---- argument checks ------------------------------------------------------------------------- */

START_TEST(test_checks)
{
    struct ldm_tensor x = T(1, 1.0f, 2, 4, 5, 5), w = T(2, 1.0f, 3, 4, 3, 3);
    struct ldm_tensor y = T(3, 0.0f, 2, 3, 5, 5), b = T(4, 1.0f, 3);
    w.name = "conv_in.weight";
    struct ldm_conv2d_opts pad1 = {1, 1, 1, 1, 1, 1};
    ck_fails_with(ldm_conv2d_forward(C, &y, &x, &w, &b, NULL), LDM_EINVAL, "expected [2,3,3,3]");
    struct ldm_tensor w2 = T(5, 1.0f, 3, 2, 3, 3);
    w2.name = "down.weight";
    ck_fails_with(ldm_conv2d_forward(C, &y, &x, &w2, &b, &pad1), LDM_EINVAL, "down.weight");
    struct ldm_tensor h = x;
    h.dtype = LDM_DT_F64;
    ck_fails_with(ldm_conv2d_forward(C, &y, &h, &w, &b, &pad1), LDM_EUNSUPPORTED, "F32");
    h.dtype = LDM_DT_F16; /* emulated on the CPU, but not mixed with F32 */
    ck_fails_with(ldm_conv2d_forward(C, &y, &h, &w, &b, &pad1), LDM_EINVAL,
                  "conv_in.weight is F32, the other tensors F16");
    ck_fails_with(ldm_conv2d_forward(NULL, &y, &x, &w, &b, &pad1), LDM_EINVAL, "context");
    struct ldm_tensor mean = T(6, 0.0f, 2, 3), rstd = T(7, 0.0f, 2, 3);
    struct ldm_norm_opts no = {3, 1e-5f, 0};
    ck_fails_with(ldm_group_norm_forward(C, &x, &mean, &rstd, &x, NULL, NULL, &no), LDM_EINVAL,
                  "3 groups do not divide 4");
    struct ldm_tensor q = T(8, 1.0f, 1, 6, 10);
    struct ldm_attn_opts ao = {3, 0.0f, 0, NULL, 0};
    ck_fails_with(ldm_attention_forward(C, &q, &mean, &q, &q, &q, &ao), LDM_EINVAL, "3 heads");
    struct ldm_tensor table = T(9, 1.0f, 5, 4), e = T(10, 0.0f, 3, 4);
    int64_t idv[3] = {0, 5, 1};
    struct ldm_tensor ids = ldm_tensor_view(idv, LDM_DT_I64, 1, (const int64_t[]){3});
    ck_fails_with(ldm_embedding_forward(C, &e, &ids, &table), LDM_ERANGE, "id 5 at position 1");
    struct ldm_tensor small = T(11, 0.0f, 2, 4, 4, 4);
    struct ldm_pool_opts po = {2, 2, 2, 2, 0, 0, 0};
    ck_fails_with(ldm_avg_pool2d_forward(C, &small, &x, &po), LDM_EINVAL, "pooling gives 2x2");
    /* empty tensors are fine; a query that sees no key gives 0 and lse −inf */
    struct ldm_tensor ex = T(12, 1.0f, 0, 4), ey = T(13, 0.0f, 0, 3), ew = T(14, 1.0f, 3, 4);
    ck_ok(ldm_linear_forward(C, &ey, &ex, &ew, NULL));
    struct ldm_tensor aq = T(15, 1.0f, 1, 3, 4), ak = T(16, 1.0f, 1, 0, 4);
    struct ldm_tensor ao_ = T(17, 9.0f, 1, 3, 4), alse = T(18, 0.0f, 1, 1, 3);
    struct ldm_attn_opts one = {1, 0.0f, 0, NULL, 0};
    ck_ok(ldm_attention_forward(C, &ao_, &alse, &aq, &ak, &ak, &one));
    for (int i = 0; i < 3; i++) {
        ck_assert_float_eq(((float *)alse.data)[i], -INFINITY);
        for (int k = 0; k < 4; k++)
            ck_assert_float_eq(((float *)ao_.data)[i * 4 + k], 0.0f);
    }
    struct ldm_adamw_opts bad = {1e-3, 1.5, 0.999, 1e-8, 0.0, 1};
    ck_fails_with(ldm_adamw_step(C, &b, &b, &b, &b, &bad), LDM_EINVAL, "hyperparameters");
}
END_TEST

/* ---- finite differences ---------------------------------------------------------------------- */

/* The op under test: forward fills the output from the inputs; backward adds
 * the inputs' gradients for upstream gradient dy. */
struct fd {
    struct ldm_tensor *x[4], *dx[4];
    int n;
    struct ldm_tensor *y;
    void (*forward)(struct fd *f);
    void (*backward)(struct fd *f, const struct ldm_tensor *dy);
    struct ldm_tensor *aux[6]; /* saved statistics, weights not checked, ... */
    const void *opts;
    float h;
};

static double loss_of(struct fd *f, const float *r)
{
    f->forward(f);
    const float *y = f->y->data;
    double s = 0.0;
    for (size_t i = 0; i < ldm_tensor_numel(f->y); i++)
        s += (double)r[i] * y[i];
    return s;
}

static void fd_check(const char *what, struct fd *f)
{
    uint32_t seed = 99;
    size_t ny = ldm_tensor_numel(f->y);
    float *r = buf(ny);
    for (size_t i = 0; i < ny; i++)
        r[i] = rnd(&seed);
    struct ldm_tensor dy = ldm_tensor_view(r, LDM_DT_F32, f->y->ndim, f->y->shape);
    f->forward(f);
    for (int i = 0; i < f->n; i++)
        memset(f->dx[i]->data, 0, ldm_tensor_nbytes(f->dx[i]));
    f->backward(f, &dy);
    for (int i = 0; i < f->n; i++) {
        float *x = f->x[i]->data;
        const float *g = f->dx[i]->data;
        double emax = 0.0, gmax = 0.0;
        for (size_t k = 0; k < ldm_tensor_numel(f->x[i]); k++) {
            float v = x[k];
            x[k] = v + f->h;
            double lp = loss_of(f, r);
            x[k] = v - f->h;
            double lm = loss_of(f, r);
            x[k] = v;
            double num = (lp - lm) / (2.0 * (double)f->h);
            emax = fmax(emax, fabs(num - g[k]));
            gmax = fmax(gmax, fabs(g[k]));
        }
        ck_assert_msg(emax <= 1e-3 * fmax(gmax, 1e-2),
                      "%s: input %d: max |numeric - backward| = %.3g, max |backward| = %.3g",
                      what, i, emax, gmax);
    }
}

/* conv2d, stride 2 with the (0,1,0,1) padding of diffusers' VAE downsampling */
static const struct ldm_conv2d_opts conv_o = {2, 2, 0, 1, 0, 1};

static void conv_f(struct fd *f)
{
    ck_ok(ldm_conv2d_forward(C, f->y, f->x[0], f->x[1], f->x[2], &conv_o));
}

static void conv_b(struct fd *f, const struct ldm_tensor *dy)
{
    ck_ok(ldm_conv2d_backward(C, f->dx[0], f->dx[1], f->dx[2], dy, f->x[0], f->x[1], &conv_o));
}

START_TEST(test_fd_conv2d)
{
    struct ldm_tensor x = T(1, 1.0f, 2, 3, 5, 6), w = T(2, 0.5f, 4, 3, 3, 3), b = T(3, 1.0f, 4);
    struct ldm_tensor dx = T(4, 0.0f, 2, 3, 5, 6), dw = T(5, 0.0f, 4, 3, 3, 3), db = T(6, 0.0f, 4);
    struct ldm_tensor y = T(7, 0.0f, 2, 4, 2, 3);
    struct fd f = {{&x, &w, &b}, {&dx, &dw, &db}, 3, &y, conv_f, conv_b, {0}, NULL, 1e-2f};
    fd_check("conv2d", &f);
}
END_TEST

static const struct ldm_norm_opts gn_o = {2, 1e-5f, 1};

static void gn_f(struct fd *f)
{
    ck_ok(ldm_group_norm_forward(C, f->y, f->aux[0], f->aux[1], f->x[0], f->x[1], f->x[2], &gn_o));
}

static void gn_b(struct fd *f, const struct ldm_tensor *dy)
{
    ck_ok(ldm_group_norm_backward(C, f->dx[0], f->dx[1], f->dx[2], dy, f->x[0], f->aux[0],
                                  f->aux[1], f->x[1], f->x[2], &gn_o));
}

START_TEST(test_fd_group_norm_silu)
{
    struct ldm_tensor x = T(1, 2.0f, 2, 4, 3, 3), g = T(2, 1.0f, 4), b = T(3, 1.0f, 4);
    struct ldm_tensor dx = T(4, 0.0f, 2, 4, 3, 3), dg = T(5, 0.0f, 4), db = T(6, 0.0f, 4);
    struct ldm_tensor y = T(7, 0.0f, 2, 4, 3, 3), mean = T(8, 0.0f, 2, 2), rstd = T(9, 0.0f, 2, 2);
    struct fd f = {{&x, &g, &b}, {&dx, &dg, &db}, 3, &y, gn_f, gn_b, {&mean, &rstd}, NULL, 1e-2f};
    fd_check("group_norm+silu", &f);
}
END_TEST

static void ln_f(struct fd *f)
{
    ck_ok(ldm_layer_norm_forward(C, f->y, f->aux[0], f->aux[1], f->x[0], f->x[1], f->x[2], NULL));
}

static void ln_b(struct fd *f, const struct ldm_tensor *dy)
{
    ck_ok(ldm_layer_norm_backward(C, f->dx[0], f->dx[1], f->dx[2], dy, f->x[0], f->aux[0],
                                  f->aux[1], f->x[1]));
}

START_TEST(test_fd_layer_norm)
{
    struct ldm_tensor x = T(1, 2.0f, 3, 7), g = T(2, 1.0f, 7), b = T(3, 1.0f, 7);
    struct ldm_tensor dx = T(4, 0.0f, 3, 7), dg = T(5, 0.0f, 7), db = T(6, 0.0f, 7);
    struct ldm_tensor y = T(7, 0.0f, 3, 7), mean = T(8, 0.0f, 3), rstd = T(9, 0.0f, 3);
    struct fd f = {{&x, &g, &b}, {&dx, &dg, &db}, 3, &y, ln_f, ln_b, {&mean, &rstd}, NULL, 1e-2f};
    fd_check("layer_norm", &f);
}
END_TEST

/* attention, causal with a key mask, 2 heads, across tiles */
static void at_f(struct fd *f)
{
    ck_ok(ldm_attention_forward(C, f->y, f->aux[0], f->x[0], f->x[1], f->x[2], f->opts));
}

static void at_b(struct fd *f, const struct ldm_tensor *dy)
{
    ck_ok(ldm_attention_backward(C, f->dx[0], f->dx[1], f->dx[2], dy, f->x[0], f->x[1], f->x[2],
                                 f->y, f->aux[0], f->opts));
}

START_TEST(test_fd_attention)
{
    uint8_t mk[2 * 5] = {1, 1, 0, 1, 1, 1, 0, 1, 1, 0};
    struct ldm_tensor mask = ldm_tensor_view(mk, LDM_DT_U8, 2, (const int64_t[]){2, 5});
    struct ldm_attn_opts o = {2, 0.0f, 1, &mask, 1};
    struct ldm_tensor q = T(1, 1.0f, 2, 5, 6), k = T(2, 1.0f, 2, 5, 6), v = T(3, 1.0f, 2, 5, 4);
    struct ldm_tensor dq = T(4, 0.0f, 2, 5, 6), dk = T(5, 0.0f, 2, 5, 6), dv = T(6, 0.0f, 2, 5, 4);
    struct ldm_tensor out = T(7, 0.0f, 2, 5, 4), lse = T(8, 0.0f, 2, 2, 5);
    struct fd f = {{&q, &k, &v}, {&dq, &dk, &dv}, 3, &out, at_f, at_b, {&lse}, &o, 1e-2f};
    fd_check("attention", &f);
}
END_TEST

static void bl_f(struct fd *f)
{
    ck_ok(ldm_bilinear_forward(C, f->y, f->x[0], 1));
}

static void bl_b(struct fd *f, const struct ldm_tensor *dy)
{
    ck_ok(ldm_bilinear_backward(C, f->dx[0], dy, 1));
}

START_TEST(test_fd_bilinear_aa)
{
    struct ldm_tensor x = T(1, 1.0f, 1, 2, 9, 7), dx = T(2, 0.0f, 1, 2, 9, 7);
    struct ldm_tensor y = T(3, 0.0f, 1, 2, 4, 10);
    struct fd f = {{&x}, {&dx}, 1, &y, bl_f, bl_b, {0}, NULL, 1e-2f};
    fd_check("bilinear antialias", &f);
}
END_TEST

static const struct ldm_pool_opts mp_o = {3, 3, 2, 2, 1, 1, 0};

static void mp_f(struct fd *f)
{
    ck_ok(ldm_max_pool2d_forward(C, f->y, f->x[0], &mp_o));
}

static void mp_b(struct fd *f, const struct ldm_tensor *dy)
{
    ck_ok(ldm_max_pool2d_backward(C, f->dx[0], dy, f->x[0], &mp_o));
}

START_TEST(test_fd_max_pool)
{
    struct ldm_tensor x = T(1, 0.0f, 1, 2, 6, 5), dx = T(2, 0.0f, 1, 2, 6, 5);
    struct ldm_tensor y = T(3, 0.0f, 1, 2, 3, 3);
    float *p = x.data;
    for (int i = 0; i < 60; i++) /* distinct values 0.1 apart, shuffled */
        p[i] = 0.1f * (float)((i * 37) % 60) - 3.0f;
    struct fd f = {{&x}, {&dx}, 1, &y, mp_f, mp_b, {0}, NULL, 1e-2f};
    fd_check("max_pool2d", &f);
}
END_TEST

static void mse_f(struct fd *f)
{
    ck_ok(ldm_mse_loss_forward(C, f->y, f->x[0], f->x[1], f->aux[0]));
}

static void mse_b(struct fd *f, const struct ldm_tensor *dy)
{
    ck_ok(ldm_mse_loss_backward(C, f->dx[0], f->dx[1], ((float *)dy->data)[0], f->x[0], f->x[1],
                                f->aux[0]));
}

START_TEST(test_fd_mse)
{
    struct ldm_tensor p = T(1, 1.0f, 3, 2, 4), t = T(2, 1.0f, 3, 2, 4), w = T(3, 1.0f, 3);
    struct ldm_tensor dp = T(4, 0.0f, 3, 2, 4), dt = T(5, 0.0f, 3, 2, 4), loss = T(6, 0.0f, 1);
    struct fd f = {{&p, &t}, {&dp, &dt}, 2, &loss, mse_f, mse_b, {&w}, NULL, 1e-2f};
    fd_check("mse_loss", &f);
}
END_TEST

static void geglu_f(struct fd *f)
{
    ck_ok(ldm_geglu_forward(C, f->y, f->x[0]));
}

static void geglu_b(struct fd *f, const struct ldm_tensor *dy)
{
    ck_ok(ldm_geglu_backward(C, f->dx[0], dy, f->x[0]));
}

START_TEST(test_fd_geglu)
{
    struct ldm_tensor h = T(1, 2.0f, 3, 10), dh = T(2, 0.0f, 3, 10), y = T(3, 0.0f, 3, 5);
    struct fd f = {{&h}, {&dh}, 1, &y, geglu_f, geglu_b, {0}, NULL, 1e-2f};
    fd_check("geglu", &f);
}
END_TEST

Suite *suite_nn(void);

Suite *suite_nn(void)
{
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tensor_set);
    tcase_add_test(tc, test_f16_bf16);
    tcase_add_test(tc, test_fast_exp);
    tcase_add_test(tc, test_arena);
    tcase_add_test(tc, test_ctx);
    tcase_add_test(tc, test_workspace_rules);
    tcase_add_test(tc, test_conv_tiled);
    tcase_add_test(tc, test_pool);
    tcase_add_test(tc, test_checks);
    tcase_add_test(tc, test_cast);
    tcase_add_test(tc, test_emulated_bf16);
    tcase_add_test(tc, test_profile);
    suite_add_tcase(s, tc);
    TCase *fd = tcase_create("finite_differences");
    tcase_add_checked_fixture(fd, setup, teardown);
    tcase_set_timeout(fd, 60);
    tcase_add_test(fd, test_fd_conv2d);
    tcase_add_test(fd, test_fd_group_norm_silu);
    tcase_add_test(fd, test_fd_layer_norm);
    tcase_add_test(fd, test_fd_attention);
    tcase_add_test(fd, test_fd_bilinear_aa);
    tcase_add_test(fd, test_fd_max_pool);
    tcase_add_test(fd, test_fd_mse);
    tcase_add_test(fd, test_fd_geglu);
    suite_add_tcase(s, fd);
    return s;
}

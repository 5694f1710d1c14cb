/* fuzz_ops.c — the nn/ ops' argument checks and CPU kernels on odd shapes.
 *
 * The input picks an op, its sizes and options (small: every tensor holds
 * at most MAX_ELEMS elements), and sometimes bends one tensor's shape. The
 * buffers are exactly as large as their shapes say, so a kernel that reads
 * or writes past a tensor trips AddressSanitizer. An op must either accept
 * the tensors, compute its forward and backward and give finite results
 * for finite inputs, or refuse them with LDM_EINVAL / LDM_ERANGE and a
 * detail naming the op.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "nn/backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define MAX_ELEMS 4096
#define MAX_BUFS 16
#define MAX_WS ((size_t)64 << 20)

/* The input as a stream of small numbers; zeros once it runs out. */
struct in {
    const uint8_t *p;
    size_t n;
    float *bufs[MAX_BUFS];
    int nbufs;
};

static int next(struct in *in, int k)
{
    if (in->n == 0 || k <= 1)
        return 0;
    in->n--;
    return *in->p++ % k;
}

/* An F32 tensor of this shape with values in [-2, 2]; one in eight calls
 * bends a dimension by one (when the input says so). */
static struct ldm_tensor mk(struct in *in, int ndim, const int64_t *shape0)
{
    int64_t shape[LDM_TMAXDIM];
    memcpy(shape, shape0, (size_t)ndim * sizeof shape[0]);
    if (ndim > 0 && next(in, 8) == 0) {
        int d = next(in, ndim);
        shape[d] += shape[d] > 0 && next(in, 2) ? -1 : 1;
    }
    struct ldm_tensor t = ldm_tensor_view(NULL, LDM_DT_F32, ndim, shape);
    size_t n = ldm_tensor_numel(&t);
    CHECK(in->nbufs < MAX_BUFS);
    float *p = malloc((n ? n : 1) * sizeof(float));
    CHECK(p != NULL);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 4001u) / 1000.0f - 2.0f;
    in->bufs[in->nbufs++] = p;
    t.data = p;
    return t;
}
#define MK(in, ...)                                                                                \
    mk((in), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                          \
       (const int64_t[]){__VA_ARGS__})

static int64_t numel4(int64_t a, int64_t b, int64_t c, int64_t d)
{
    return a * b * c * d;
}

static struct ldm_ctx *ctx(void)
{
    static struct ldm_ctx *c;
    if (!c)
        CHECK(ldm_ctx_open(&c, "cpu", 2) == 0);
    return c;
}

/* Reserve what the op asks for while planning (refusing huge needs). */
static int plan_ok(struct ldm_ctx *c, size_t need)
{
    if (need > MAX_WS)
        return 0;
    CHECK(ldm_ctx_reserve(c, need) == 0);
    return 1;
}

/* A refusal must be one of the documented codes, with a detail. */
static void refused(int rc)
{
    CHECK(rc == LDM_EINVAL || rc == LDM_ERANGE);
    CHECK(ldm_errmsg()[0] != '\0');
}

/* A backward may refuse gradients whose shapes were bent. */
static void done_or_refused(int rc)
{
    if (rc)
        refused(rc);
}

static void all_finite(const struct ldm_tensor *t)
{
    const float *p = t->data;
    for (size_t i = 0; i < ldm_tensor_numel(t); i++)
        CHECK(isfinite(p[i]));
}

#define PLAN(c, call)                                                                              \
    do {                                                                                           \
        size_t need_;                                                                              \
        ldm_ctx_plan_begin(c);                                                                     \
        int rc_ = (call);                                                                          \
        ldm_ctx_plan_end(c, &need_);                                                               \
        if (rc_) {                                                                                 \
            refused(rc_);                                                                          \
            return;                                                                                \
        }                                                                                          \
        if (!plan_ok(c, need_))                                                                    \
            return;                                                                                \
    } while (0)

static void fuzz_conv(struct in *in, struct ldm_ctx *c)
{
    int64_t N = 1 + next(in, 2), C = 1 + next(in, 4), H = next(in, 12), W = next(in, 12);
    int64_t K = 1 + next(in, 4), R = 1 + next(in, 5), S = 1 + next(in, 5);
    struct ldm_conv2d_opts o = {next(in, 4), next(in, 4), next(in, 4), next(in, 4), next(in, 4),
                                next(in, 4)};
    int64_t sh = o.stride_h ? o.stride_h : 1, sw = o.stride_w ? o.stride_w : 1;
    int64_t Ho = (H + o.pad_top + o.pad_bottom - R) / sh + 1;
    int64_t Wo = (W + o.pad_left + o.pad_right - S) / sw + 1;
    if (Ho < 1 || Wo < 1 || numel4(N, C, H, W) > MAX_ELEMS || numel4(N, K, Ho, Wo) > MAX_ELEMS)
        return;
    struct ldm_tensor x = MK(in, N, C, H, W), w = MK(in, K, C, R, S), b = MK(in, K);
    struct ldm_tensor y = MK(in, N, K, Ho, Wo), dy = MK(in, N, K, Ho, Wo);
    struct ldm_tensor dx = MK(in, N, C, H, W), dw = MK(in, K, C, R, S), db = MK(in, K);
    PLAN(c, ldm_conv2d_forward(c, &y, &x, &w, &b, &o));
    CHECK(ldm_conv2d_forward(c, &y, &x, &w, &b, &o) == 0);
    all_finite(&y);
    PLAN(c, ldm_conv2d_backward(c, &dx, &dw, &db, &dy, &x, &w, &o));
    done_or_refused(ldm_conv2d_backward(c, &dx, &dw, &db, &dy, &x, &w, &o));
    all_finite(&dx);
    all_finite(&dw);
}

static void fuzz_attention(struct in *in, struct ldm_ctx *c)
{
    int64_t N = 1 + next(in, 2), H = 1 + next(in, 3), Lq = next(in, 140), Lk = next(in, 140);
    int64_t Dh = 1 + next(in, 6), Dv = 1 + next(in, 6);
    int64_t wide = H * (Dh > Dv ? Dh : Dv);
    if (N * Lq * wide > MAX_ELEMS || N * Lk * wide > MAX_ELEMS)
        return;
    uint8_t mask[2 * 140];
    for (int i = 0; i < 2 * 140; i++)
        mask[i] = (uint8_t)next(in, 2);
    struct ldm_tensor mt = ldm_tensor_view(mask, LDM_DT_U8, 2, (const int64_t[]){N, Lk});
    struct ldm_attn_opts o = {(int)H, 0.0f, next(in, 2), next(in, 2) ? &mt : NULL, 0};
    struct ldm_tensor q = MK(in, N, Lq, H * Dh), k = MK(in, N, Lk, H * Dh);
    struct ldm_tensor v = MK(in, N, Lk, H * Dv), out = MK(in, N, Lq, H * Dv);
    struct ldm_tensor lse = MK(in, N, H, Lq), dout = MK(in, N, Lq, H * Dv);
    struct ldm_tensor dq = MK(in, N, Lq, H * Dh), dk = MK(in, N, Lk, H * Dh);
    struct ldm_tensor dv = MK(in, N, Lk, H * Dv);
    PLAN(c, ldm_attention_forward(c, &out, &lse, &q, &k, &v, &o));
    CHECK(ldm_attention_forward(c, &out, &lse, &q, &k, &v, &o) == 0);
    all_finite(&out);
    PLAN(c, ldm_attention_backward(c, &dq, &dk, &dv, &dout, &q, &k, &v, &out, &lse, &o));
    done_or_refused(
        ldm_attention_backward(c, &dq, &dk, &dv, &dout, &q, &k, &v, &out, &lse, &o));
    all_finite(&dq);
    all_finite(&dk);
    all_finite(&dv);
}

/* avg/max pooling, adaptive pooling, bilinear (op 0..3) */
static void fuzz_resample(struct in *in, struct ldm_ctx *c)
{
    int which = next(in, 4);
    int64_t N = 1 + next(in, 2), C = 1 + next(in, 3), H = 1 + next(in, 20), W = 1 + next(in, 20);
    struct ldm_pool_opts o = {1 + next(in, 4), 1 + next(in, 4), next(in, 4), next(in, 4),
                              next(in, 3), next(in, 3), next(in, 2)};
    int64_t Ho = 1 + next(in, 20), Wo = 1 + next(in, 20);
    if (which < 2) {
        int64_t sh = o.stride_h ? o.stride_h : o.kernel_h;
        int64_t sw = o.stride_w ? o.stride_w : o.kernel_w;
        Ho = (H + 2 * o.pad_h - o.kernel_h) / sh + 1;
        Wo = (W + 2 * o.pad_w - o.kernel_w) / sw + 1;
        if (Ho < 1 || Wo < 1)
            return;
    }
    if (numel4(N, C, H, W) > MAX_ELEMS || numel4(N, C, Ho, Wo) > MAX_ELEMS)
        return;
    struct ldm_tensor x = MK(in, N, C, H, W), y = MK(in, N, C, Ho, Wo), dy = MK(in, N, C, Ho, Wo);
    struct ldm_tensor dx = MK(in, N, C, H, W);
    int aa = next(in, 2), rc;
    PLAN(c, which == 0 ? ldm_avg_pool2d_forward(c, &y, &x, &o)
            : which == 1 ? ldm_max_pool2d_forward(c, &y, &x, &o)
            : which == 2 ? ldm_adaptive_avg_pool2d_forward(c, &y, &x)
                         : ldm_bilinear_forward(c, &y, &x, aa));
    rc = which == 0 ? ldm_avg_pool2d_forward(c, &y, &x, &o)
         : which == 1 ? ldm_max_pool2d_forward(c, &y, &x, &o)
         : which == 2 ? ldm_adaptive_avg_pool2d_forward(c, &y, &x)
                      : ldm_bilinear_forward(c, &y, &x, aa);
    CHECK(rc == 0);
    all_finite(&y);
    PLAN(c, which == 0 ? ldm_avg_pool2d_backward(c, &dx, &dy, &o)
            : which == 1 ? ldm_max_pool2d_backward(c, &dx, &dy, &x, &o)
            : which == 2 ? ldm_adaptive_avg_pool2d_backward(c, &dx, &dy)
                         : ldm_bilinear_backward(c, &dx, &dy, aa));
    rc = which == 0 ? ldm_avg_pool2d_backward(c, &dx, &dy, &o)
         : which == 1 ? ldm_max_pool2d_backward(c, &dx, &dy, &x, &o)
         : which == 2 ? ldm_adaptive_avg_pool2d_backward(c, &dx, &dy)
                      : ldm_bilinear_backward(c, &dx, &dy, aa);
    CHECK(rc == 0);
    all_finite(&dx);
}

static void fuzz_norm(struct in *in, struct ldm_ctx *c)
{
    int64_t N = 1 + next(in, 3), C = 1 + next(in, 12), S = 1 + next(in, 30), G = 1 + next(in, 6);
    struct ldm_norm_opts o = {(int)G, 1e-5f, next(in, 2)};
    if (N * C * S > MAX_ELEMS)
        return;
    int layer = next(in, 2);
    struct ldm_tensor x = MK(in, N, C, S), y = MK(in, N, C, S), dy = MK(in, N, C, S);
    struct ldm_tensor dx = MK(in, N, C, S);
    int64_t D = layer ? S : C, R = layer ? N * C : N * G;
    struct ldm_tensor g = MK(in, D), b = MK(in, D), dg = MK(in, D), db = MK(in, D);
    struct ldm_tensor mean = MK(in, R), rstd = MK(in, R);
    if (layer) {
        PLAN(c, ldm_layer_norm_forward(c, &y, &mean, &rstd, &x, &g, &b, &o));
        CHECK(ldm_layer_norm_forward(c, &y, &mean, &rstd, &x, &g, &b, &o) == 0);
        done_or_refused(ldm_layer_norm_backward(c, &dx, &dg, &db, &dy, &x, &mean, &rstd, &g));
    } else {
        PLAN(c, ldm_group_norm_forward(c, &y, &mean, &rstd, &x, &g, &b, &o));
        CHECK(ldm_group_norm_forward(c, &y, &mean, &rstd, &x, &g, &b, &o) == 0);
        done_or_refused(
            ldm_group_norm_backward(c, &dx, &dg, &db, &dy, &x, &mean, &rstd, &g, &b, &o));
    }
    all_finite(&y);
    all_finite(&dx);
}

/* linear, bmm, concat, transpose, embedding */
static void fuzz_misc(struct in *in, struct ldm_ctx *c)
{
    int which = next(in, 5);
    int64_t A = next(in, 9), B = 1 + next(in, 9), D = 1 + next(in, 9), E = 1 + next(in, 9);
    struct ldm_tensor x = MK(in, A, B, D), y, dx = MK(in, A, B, D);
    if (which == 0) {
        struct ldm_tensor w = MK(in, E, D), b = MK(in, E), dw = MK(in, E, D), db = MK(in, E);
        y = MK(in, A, B, E);
        struct ldm_tensor dy = MK(in, A, B, E);
        PLAN(c, ldm_linear_forward(c, &y, &x, &w, &b));
        CHECK(ldm_linear_forward(c, &y, &x, &w, &b) == 0);
        done_or_refused(ldm_linear_backward(c, &dx, &dw, &db, &dy, &x, &w));
    } else if (which == 1) {
        struct ldm_bmm_opts o = {next(in, 2), next(in, 2), 0.5f};
        struct ldm_tensor bm = o.trans_b ? MK(in, A, E, o.trans_a ? B : D)
                                         : MK(in, A, o.trans_a ? B : D, E);
        struct ldm_tensor dbm = o.trans_b ? MK(in, A, E, o.trans_a ? B : D)
                                          : MK(in, A, o.trans_a ? B : D, E);
        y = MK(in, A, o.trans_a ? D : B, E);
        struct ldm_tensor dy = MK(in, A, o.trans_a ? D : B, E);
        PLAN(c, ldm_bmm_forward(c, &y, &x, &bm, &o));
        CHECK(ldm_bmm_forward(c, &y, &x, &bm, &o) == 0);
        done_or_refused(ldm_bmm_backward(c, &dx, &dbm, &dy, &x, &bm, &o));
    } else if (which == 2) {
        struct ldm_tensor x2 = MK(in, A, E, D), dx2 = MK(in, A, E, D);
        const struct ldm_tensor *parts[2] = {&x, &x2}, *dparts[2] = {&dx, &dx2};
        y = MK(in, A, B + E, D);
        PLAN(c, ldm_concat_forward(c, &y, parts, 2));
        CHECK(ldm_concat_forward(c, &y, parts, 2) == 0);
        done_or_refused(ldm_concat_backward(c, dparts, 2, &y));
    } else if (which == 3) {
        y = MK(in, A, D, B);
        PLAN(c, ldm_transpose_forward(c, &y, &x));
        CHECK(ldm_transpose_forward(c, &y, &x) == 0);
        done_or_refused(ldm_transpose_backward(c, &dx, &y));
    } else {
        int64_t ids[9];
        for (int i = 0; i < 9; i++)
            ids[i] = next(in, 12) - 1;
        struct ldm_tensor it = ldm_tensor_view(ids, LDM_DT_I64, 1, (const int64_t[]){B});
        struct ldm_tensor table = MK(in, E, D), dtable = MK(in, E, D);
        y = MK(in, B, D);
        PLAN(c, ldm_embedding_forward(c, &y, &it, &table));
        int rc = ldm_embedding_forward(c, &y, &it, &table);
        if (rc) {
            CHECK(rc == LDM_ERANGE);
            return;
        }
        done_or_refused(ldm_embedding_backward(c, &dtable, &y, &it));
    }
    all_finite(&y);
    all_finite(&dx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size, {0}, 0};
    struct ldm_ctx *c = ctx();
    switch (next(&in, 5)) {
    case 0: fuzz_conv(&in, c); break;
    case 1: fuzz_attention(&in, c); break;
    case 2: fuzz_resample(&in, c); break;
    case 3: fuzz_norm(&in, c); break;
    default: fuzz_misc(&in, c); break;
    }
    for (int i = 0; i < in.nbufs; i++)
        free(in.bufs[i]);
    return 0;
}

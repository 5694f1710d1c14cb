/* cuda_ops.c — every op of the CUDA backend but attention (tests/cuda/cuda_attn.c has
 * that) against the CPU backend, on random inputs: F32, BF16 and F16, odd sizes,
 * batch 1, optional tensors given and not.
 *
 * Each case draws F32 inputs, rounds them to the case's dtype, and runs the
 * op through its public wrapper (ldm_*) on a "cpu" context in F32 and on a
 * "cuda" context in the dtype, each with the workspace its planning pass
 * asks for. Outputs are compared by max|cuda − cpu| / max|cpu|; gradients
 * start from the same nonzero values on both sides (backward adds). The
 * CUDA outputs of a forward start as NaN, so an element left unwritten
 * fails. Every backward runs twice on the device from the same start and
 * must give the same bits (deterministic reductions).
 *
 * Bounds (relative to the reference's largest magnitude):
 *  - F32 1e-5: both sides compute in FP32 (TF32 off), in different orders;
 *    the sums here are at most a few thousand terms, whose reordering
 *    moves results by ~1e-7 of their scale.
 *  - BF16 2e-2: inputs are rounded identically on both sides and the device
 *    accumulates in FP32, so the error is the output's own rounding (2^-9
 *    of a value, at most 2^-8 of the largest) plus intermediates the device
 *    keeps in BF16 (a conv's result before its bias, a gradient read back
 *    before it is added to); 2e-2 leaves room for sums of many terms.
 *  - F16 5e-3: the same with 2^-11 rounding.
 * Optimiser steps and clipping are F32 only; the 8-bit AdamW must match the
 * CPU's codes exactly.
 *
 * Usage: cuda-ops [--bench] [--device DEV] [--only FAMILY] (FAMILY: linear,
 * bmm, conv2d, group_norm, layer_norm, act, geglu, softmax, resample, concat,
 * transpose, add, add_bcast, timestep, embedding, mse, clip, adamw, adamw8,
 * ema). Prints one "ok"/"FAIL" line a
 * case and a summary, exit 1 on a failure; "SKIP cuda-ops: no CUDA device"
 * and exit 0 where none is visible. --bench then times SD-1.5-sized BF16
 * ops with CUDA events. --device cpu compares the CPU backend with itself
 * (F32 cases only), to check this program where no GPU exists.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "nn/backend.h"
#include "nn/cuda/cuda_int.h"
#include "nn/device.h"
#include "nn/tensor.h"

static struct ldm_ctx *CPU, *DEV;
static int DT = LDM_DT_F32; /* the dtype of the cases being run */
static int dev_is_cuda = 1;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static int n_ok, n_fail;

/* ---- random numbers and rounding ----------------------------------------------------------- */

static double urand(void) /* uniform in [0, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static float round_to(int dtype, float v)
{
    if (dtype == LDM_DT_BF16)
        return ldm_bf16_to_f32(ldm_f32_to_bf16(v));
    if (dtype == LDM_DT_F16)
        return ldm_f16_to_f32(ldm_f32_to_f16(v));
    return v;
}

static const char *dt_name(int dtype)
{
    return dtype == LDM_DT_BF16 ? "bf16" : dtype == LDM_DT_F16 ? "f16" : "f32";
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "FAIL cuda-ops: %s: %s (%d)\n", what, ldm_errmsg(), rc);
    exit(1);
}

/* ---- a tensor on both backends -------------------------------------------------------------------- */

struct tp {
    struct ldm_tensor c, g; /* CPU (F32) and device (dtype) descriptors */
    float *h;               /* the values both start from */
    size_t n;
    int dtype;              /* the device side's dtype */
};

static void tp_upload(struct tp *t)
{
    size_t es = ldm_dtype_size(t->dtype);
    void *buf = malloc(t->n * es + 1);
    if (!buf)
        die("out of memory", LDM_ENOMEM);
    ldm_convert(buf, t->dtype, t->h, LDM_DT_F32, t->n);
    int rc = ldm_ctx_upload(CPU, t->c.data, t->h, t->n * sizeof(float));
    if (!rc)
        rc = ldm_ctx_upload(DEV, t->g.data, buf, t->n * es);
    free(buf);
    if (rc)
        die("upload", rc);
}

/* Allocate t on both sides with the values v(i) = scale·U(−1, 1) rounded to dtype. */
static void tp_make_dt(struct tp *t, int dtype, float scale, int ndim, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    if (ldm_tensor_set(&t->c, "cpu", LDM_DT_F32, ndim, shape) ||
        ldm_tensor_set(&t->g, "cuda", dtype, ndim, shape))
        die("tensor shape", LDM_EINVAL);
    t->n = ldm_tensor_numel(&t->c);
    t->h = malloc((t->n + 1) * sizeof(float));
    if (!t->h)
        die("out of memory", LDM_ENOMEM);
    for (size_t i = 0; i < t->n; i++)
        t->h[i] = round_to(dtype, (float)(scale * (2.0 * urand() - 1.0)));
    int rc = ldm_ctx_alloc(CPU, t->n * sizeof(float), &t->c.data);
    if (!rc)
        rc = ldm_ctx_alloc(DEV, t->n * ldm_dtype_size(dtype), &t->g.data);
    if (rc)
        die("alloc", rc);
    tp_upload(t);
}

#define NARGS(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define TPD(t, dtype, scale, ...) tp_make_dt(&(t), (dtype), (scale), NARGS(__VA_ARGS__), \
                                             (const int64_t[]){__VA_ARGS__})
#define TP(t, scale, ...) TPD(t, DT, scale, __VA_ARGS__)

/* Device values to NaN (a forward's outputs), the CPU's to 0. */
static void tp_poison(struct tp *t)
{
    float *keep = t->h;
    float *nan = malloc((t->n + 1) * sizeof(float));
    if (!nan)
        die("out of memory", LDM_ENOMEM);
    for (size_t i = 0; i < t->n; i++)
        nan[i] = NAN;
    t->h = nan;
    tp_upload(t);
    t->h = keep;
    free(nan);
    if (ldm_ctx_zero(CPU, t->c.data, t->n * sizeof(float)))
        die("zero", -1);
}

static void tp_free(struct tp *t)
{
    ldm_ctx_free(CPU, t->c.data);
    ldm_ctx_free(DEV, t->g.data);
    free(t->h);
    memset(t, 0, sizeof *t);
}

/* Both sides' values as float: *cpu, *dev (malloc'd). */
static void tp_fetch(const struct tp *t, float **cpu, float **dev)
{
    size_t es = ldm_dtype_size(t->dtype);
    *cpu = malloc((t->n + 1) * sizeof(float));
    *dev = malloc((t->n + 1) * sizeof(float));
    void *raw = malloc(t->n * es + 1);
    if (!*cpu || !*dev || !raw)
        die("out of memory", LDM_ENOMEM);
    int rc = ldm_ctx_download(CPU, *cpu, t->c.data, t->n * sizeof(float));
    if (!rc)
        rc = ldm_ctx_download(DEV, raw, t->g.data, t->n * es);
    if (rc)
        die("download", rc);
    ldm_convert(*dev, LDM_DT_F32, raw, t->dtype, t->n);
    free(raw);
}

/* max|dev − cpu| / max|cpu| (NaN anywhere: NaN). */
static double tp_err(const struct tp *t)
{
    float *a, *b;
    tp_fetch(t, &a, &b);
    double mx = 0.0, diff = 0.0;
    for (size_t i = 0; i < t->n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            diff = NAN;
            break;
        }
        mx = fmax(mx, fabs((double)a[i]));
        diff = fmax(diff, fabs((double)b[i] - (double)a[i]));
    }
    free(a);
    free(b);
    return isnan(diff) ? NAN : mx > 0.0 ? diff / mx : diff;
}

/* ---- cases ------------------------------------------------------------------------------------------ */

static char case_name[256], case_detail[512];
static double case_worst, case_bound;
static int case_failed;

static double bound_of(int dtype)
{
    return dtype == LDM_DT_BF16 ? 2e-2 : dtype == LDM_DT_F16 ? 5e-3 : 1e-5;
}

static void case_begin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void case_begin(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(case_name, sizeof case_name, fmt, ap);
    va_end(ap);
    case_detail[0] = '\0';
    case_worst = 0.0;
    case_bound = bound_of(DT);
    case_failed = 0;
}

static void case_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void case_note(const char *fmt, ...)
{
    size_t len = strlen(case_detail);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(case_detail + len, sizeof case_detail - len, fmt, ap);
    va_end(ap);
}

/* Compare one tensor of the case. */
static void check(const struct tp *t, const char *label)
{
    double e = tp_err(t);
    case_note(" %s=%.2e", label, e);
    if (!(e <= case_bound))
        case_failed = 1;
    if (!(e <= case_worst))
        case_worst = e;
}

static void case_fail(const char *why)
{
    case_note(" %s", why);
    case_failed = 1;
}

static void case_end(void)
{
    if (case_failed) {
        printf("FAIL cuda %s %s:%s err=%.3g bound=%.1g\n", case_name, dt_name(DT), case_detail,
               case_worst, case_bound);
        n_fail++;
    } else {
        printf("ok   cuda %s %s:%s\n", case_name, dt_name(DT), case_detail);
        n_ok++;
    }
    fflush(stdout);
}

/* The descriptor of t on side s (0 CPU, 1 device). */
#define X(t) (side ? &(t).g : &(t).c)
#define XO(t, on) ((on) ? X(t) : NULL)

/* Run expr on each side (side and ctx set): a planning pass, the
 * workspace it asks for, then the op. A failure ends the case. */
#define BOTH(expr) RUN_SIDES(0, 2, expr)
#define ON_DEV(expr) RUN_SIDES(1, 2, expr)
#define RUN_SIDES(from, to, expr)                                                                  \
    do {                                                                                           \
        for (int side = (from); side < (to) && !case_failed; side++) {                             \
            struct ldm_ctx *ctx = side ? DEV : CPU;                                                \
            size_t need_ = 0;                                                                      \
            ldm_ctx_plan_begin(ctx);                                                               \
            int rc_ = (expr);                                                                      \
            ldm_ctx_plan_end(ctx, &need_);                                                         \
            if (!rc_ && need_ > ctx->ws_bytes)                                                     \
                rc_ = ldm_ctx_reserve(ctx, need_);                                                 \
            if (!rc_)                                                                              \
                rc_ = (expr);                                                                      \
            if (rc_) {                                                                             \
                char why_[300];                                                                    \
                snprintf(why_, sizeof why_, "%s failed: %s", side ? "device" : "cpu",              \
                         ldm_errmsg());                                                            \
                case_fail(why_);                                                                   \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Raw device bytes of t (for the determinism check). */
static void *dev_bytes(const struct tp *t)
{
    size_t nb = t->n * ldm_dtype_size(t->dtype);
    void *b = malloc(nb + 1);
    if (!b || ldm_ctx_download(DEV, b, t->g.data, nb))
        die("download", -1);
    return b;
}

/* The device's gradients after a second backward from the same start must
 * be the first one's bits. grads[0..n-1]; run_again reruns the device side. */
struct det {
    const struct tp *t[4];
    void *first[4];
    int n;
};

static void det_save(struct det *d)
{
    for (int i = 0; i < d->n; i++)
        d->first[i] = dev_bytes(d->t[i]);
}

static void det_compare(struct det *d)
{
    for (int i = 0; i < d->n; i++) {
        void *again = dev_bytes(d->t[i]);
        size_t nb = d->t[i]->n * ldm_dtype_size(d->t[i]->dtype);
        if (memcmp(again, d->first[i], nb) != 0)
            case_fail("nondeterministic");
        free(again);
        free(d->first[i]);
    }
}

/* Reset gradients to their start values on both sides. */
static void reset(struct tp *const *g, int n)
{
    for (int i = 0; i < n; i++)
        if (g[i])
            tp_upload(g[i]);
}

/* A backward case: run expr on both sides from the start values, compare
 * the gradients, then rerun on the device from the start and compare bits. */
#define BACKWARD(grads, ngrads, labels, expr)                                                      \
    do {                                                                                           \
        reset(grads, ngrads);                                                                      \
        BOTH(expr);                                                                                \
        struct det det_ = {.n = 0};                                                                \
        for (int i_ = 0; i_ < (ngrads) && !case_failed; i_++)                                      \
            if ((grads)[i_]) {                                                                     \
                check((grads)[i_], (labels)[i_]);                                                  \
                det_.t[det_.n++] = (grads)[i_];                                                    \
            }                                                                                      \
        if (!case_failed && dev_is_cuda) {                                                         \
            det_save(&det_);                                                                       \
            reset(grads, ngrads);                                                                  \
            ON_DEV(expr);                                                                          \
            det_compare(&det_);                                                                    \
        }                                                                                          \
    } while (0)

/* ---- matrix products ------------------------------------------------------------------------------- */

static void test_linear(int64_t M, int64_t Din, int64_t Dout, int bias)
{
    struct tp x, w, b, y, dy, dx, dw, db;
    TP(x, 1.0f, M, Din);
    TP(w, 0.5f, Dout, Din);
    TP(b, 0.5f, Dout);
    TP(y, 1.0f, M, Dout);
    TP(dy, 1.0f, M, Dout);
    TP(dx, 1.0f, M, Din);
    TP(dw, 1.0f, Dout, Din);
    TP(db, 1.0f, Dout);
    case_begin("linear fwd M=%lld Din=%lld Dout=%lld bias=%d", (long long)M, (long long)Din,
               (long long)Dout, bias);
    tp_poison(&y);
    BOTH(ldm_linear_forward(ctx, X(y), X(x), X(w), XO(b, bias)));
    if (!case_failed)
        check(&y, "y");
    case_end();
    case_begin("linear bwd M=%lld Din=%lld Dout=%lld bias=%d", (long long)M, (long long)Din,
               (long long)Dout, bias);
    struct tp *g[3] = {&dx, &dw, bias ? &db : NULL};
    const char *lab[3] = {"dx", "dw", "db"};
    BACKWARD(g, 3, lab, ldm_linear_backward(ctx, X(dx), X(dw), XO(db, bias), X(dy), X(x), X(w)));
    case_end();
    struct tp *all[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tp_free(all[i]);
}

static void test_bmm(int64_t B, int64_t M, int64_t K, int64_t N, int ta, int tb, float alpha)
{
    struct tp a, bm, y, dy, da, dbm;
    struct ldm_bmm_opts o = {ta, tb, alpha};
    if (ta)
        TP(a, 1.0f, B, K, M);
    else
        TP(a, 1.0f, B, M, K);
    if (tb)
        TP(bm, 1.0f, B, N, K);
    else
        TP(bm, 1.0f, B, K, N);
    TP(y, 1.0f, B, M, N);
    TP(dy, 1.0f, B, M, N);
    if (ta)
        TP(da, 1.0f, B, K, M);
    else
        TP(da, 1.0f, B, M, K);
    if (tb)
        TP(dbm, 1.0f, B, N, K);
    else
        TP(dbm, 1.0f, B, K, N);
    case_begin("bmm fwd B=%lld M=%lld K=%lld N=%lld ta=%d tb=%d alpha=%g", (long long)B,
               (long long)M, (long long)K, (long long)N, ta, tb, (double)alpha);
    tp_poison(&y);
    BOTH(ldm_bmm_forward(ctx, X(y), X(a), X(bm), &o));
    if (!case_failed)
        check(&y, "y");
    case_end();
    case_begin("bmm bwd B=%lld M=%lld K=%lld N=%lld ta=%d tb=%d alpha=%g", (long long)B,
               (long long)M, (long long)K, (long long)N, ta, tb, (double)alpha);
    struct tp *g[2] = {&da, &dbm};
    const char *lab[2] = {"da", "db"};
    BACKWARD(g, 2, lab, ldm_bmm_backward(ctx, X(da), X(dbm), X(dy), X(a), X(bm), &o));
    case_end();
    struct tp *all[] = {&a, &bm, &y, &dy, &da, &dbm};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tp_free(all[i]);
}

/* ---- convolution ------------------------------------------------------------------------------------ */

struct convcase {
    int64_t N, C, H, W, K, R, S;
    int sh, sw, pt, pb, pl, pr, bias;
};

static void test_conv(const struct convcase *k)
{
    struct ldm_conv2d_opts o = {k->sh, k->sw, k->pt, k->pb, k->pl, k->pr};
    int64_t Ho = (k->H + k->pt + k->pb - k->R) / k->sh + 1, Wo = (k->W + k->pl + k->pr - k->S) / k->sw + 1;
    struct tp x, w, b, y, dy, dx, dw, db;
    TP(x, 1.0f, k->N, k->C, k->H, k->W);
    TP(w, 0.3f, k->K, k->C, k->R, k->S);
    TP(b, 0.5f, k->K);
    TP(y, 1.0f, k->N, k->K, Ho, Wo);
    TP(dy, 1.0f, k->N, k->K, Ho, Wo);
    TP(dx, 1.0f, k->N, k->C, k->H, k->W);
    TP(dw, 1.0f, k->K, k->C, k->R, k->S);
    TP(db, 1.0f, k->K);
    char shape[200];
    snprintf(shape, sizeof shape, "N=%lld C=%lld H=%lld W=%lld K=%lld %lldx%lld s%d,%d p%d,%d,%d,%d bias=%d",
             (long long)k->N, (long long)k->C, (long long)k->H, (long long)k->W, (long long)k->K,
             (long long)k->R, (long long)k->S, k->sh, k->sw, k->pt, k->pb, k->pl, k->pr, k->bias);
    case_begin("conv2d fwd %s", shape);
    tp_poison(&y);
    BOTH(ldm_conv2d_forward(ctx, X(y), X(x), X(w), XO(b, k->bias), &o));
    if (!case_failed)
        check(&y, "y");
    case_end();
    case_begin("conv2d bwd %s", shape);
    struct tp *g[3] = {&dx, &dw, k->bias ? &db : NULL};
    const char *lab[3] = {"dx", "dw", "db"};
    BACKWARD(g, 3, lab,
             ldm_conv2d_backward(ctx, X(dx), X(dw), XO(db, k->bias), X(dy), X(x), X(w), &o));
    case_end();
    if (k->bias) { /* dx alone: the padded path's crop without dw */
        case_begin("conv2d bwd dx-only %s", shape);
        struct tp *g1[1] = {&dx};
        const char *lab1[1] = {"dx"};
        BACKWARD(g1, 1, lab1, ldm_conv2d_backward(ctx, X(dx), NULL, NULL, X(dy), X(x), X(w), &o));
        case_end();
    }
    struct tp *all[] = {&x, &w, &b, &y, &dy, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tp_free(all[i]);
}

/* ---- normalization -------------------------------------------------------------------------------------- */

static void test_group_norm(int64_t N, int64_t C, int64_t H, int64_t W, int G, int silu, int affine)
{
    struct ldm_norm_opts o = {G, 1e-5f, silu};
    struct tp x, y, ga, be, mean, rstd, dy, dx, dga, dbe;
    TP(x, 2.0f, N, C, H, W);
    for (size_t i = 0; i < x.n; i++) /* an offset per sample, so the mean matters */
        x.h[i] = round_to(DT, x.h[i] + 0.5f * (float)(i / (size_t)(C * H * W)));
    tp_upload(&x);
    TP(y, 1.0f, N, C, H, W);
    TP(ga, 1.0f, C);
    TP(be, 1.0f, C);
    TPD(mean, LDM_DT_F32, 1.0f, N, G);
    TPD(rstd, LDM_DT_F32, 1.0f, N, G);
    TP(dy, 1.0f, N, C, H, W);
    TP(dx, 1.0f, N, C, H, W);
    TP(dga, 1.0f, C);
    TP(dbe, 1.0f, C);
    char shape[160];
    snprintf(shape, sizeof shape, "N=%lld C=%lld H=%lld W=%lld G=%d silu=%d affine=%d",
             (long long)N, (long long)C, (long long)H, (long long)W, G, silu, affine);
    case_begin("group_norm fwd %s", shape);
    tp_poison(&y);
    tp_poison(&mean);
    tp_poison(&rstd);
    BOTH(ldm_group_norm_forward(ctx, X(y), X(mean), X(rstd), X(x), XO(ga, affine), XO(be, affine),
                                &o));
    if (!case_failed) {
        check(&y, "y");
        check(&mean, "mean");
        check(&rstd, "rstd");
    }
    case_end();
    /* the backward takes the CPU's statistics on both sides */
    float *mc, *md, *rc, *rd;
    tp_fetch(&mean, &mc, &md);
    tp_fetch(&rstd, &rc, &rd);
    memcpy(mean.h, mc, mean.n * sizeof(float));
    memcpy(rstd.h, rc, rstd.n * sizeof(float));
    tp_upload(&mean);
    tp_upload(&rstd);
    free(mc), free(md), free(rc), free(rd);
    case_begin("group_norm bwd %s", shape);
    struct tp *g[3] = {&dx, affine ? &dga : NULL, affine ? &dbe : NULL};
    const char *lab[3] = {"dx", "dgamma", "dbeta"};
    BACKWARD(g, 3, lab,
             ldm_group_norm_backward(ctx, X(dx), XO(dga, affine), XO(dbe, affine), X(dy), X(x),
                                     X(mean), X(rstd), XO(ga, affine), XO(be, affine), &o));
    case_end();
    struct tp *all[] = {&x, &y, &ga, &be, &mean, &rstd, &dy, &dx, &dga, &dbe};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tp_free(all[i]);
}

static void test_layer_norm(int64_t M, int64_t D, int affine)
{
    struct ldm_norm_opts o = {0, 1e-5f, 0};
    struct tp x, y, ga, be, mean, rstd, dy, dx, dga, dbe;
    TP(x, 2.0f, M, D);
    TP(y, 1.0f, M, D);
    TP(ga, 1.0f, D);
    TP(be, 1.0f, D);
    TPD(mean, LDM_DT_F32, 1.0f, M);
    TPD(rstd, LDM_DT_F32, 1.0f, M);
    TP(dy, 1.0f, M, D);
    TP(dx, 1.0f, M, D);
    TP(dga, 1.0f, D);
    TP(dbe, 1.0f, D);
    case_begin("layer_norm fwd M=%lld D=%lld affine=%d", (long long)M, (long long)D, affine);
    tp_poison(&y);
    tp_poison(&mean);
    tp_poison(&rstd);
    BOTH(ldm_layer_norm_forward(ctx, X(y), X(mean), X(rstd), X(x), XO(ga, affine), XO(be, affine),
                                &o));
    if (!case_failed) {
        check(&y, "y");
        check(&mean, "mean");
        check(&rstd, "rstd");
    }
    case_end();
    float *mc, *md, *rc, *rd;
    tp_fetch(&mean, &mc, &md);
    tp_fetch(&rstd, &rc, &rd);
    memcpy(mean.h, mc, mean.n * sizeof(float));
    memcpy(rstd.h, rc, rstd.n * sizeof(float));
    tp_upload(&mean);
    tp_upload(&rstd);
    free(mc), free(md), free(rc), free(rd);
    case_begin("layer_norm bwd M=%lld D=%lld affine=%d", (long long)M, (long long)D, affine);
    struct tp *g[3] = {&dx, affine ? &dga : NULL, affine ? &dbe : NULL};
    const char *lab[3] = {"dx", "dgamma", "dbeta"};
    BACKWARD(g, 3, lab,
             ldm_layer_norm_backward(ctx, X(dx), XO(dga, affine), XO(dbe, affine), X(dy), X(x),
                                     X(mean), X(rstd), XO(ga, affine)));
    case_end();
    struct tp *all[] = {&x, &y, &ga, &be, &mean, &rstd, &dy, &dx, &dga, &dbe};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tp_free(all[i]);
}

/* ---- pointwise and row-wise ------------------------------------------------------------------------------ */

static const char *const act_names[] = {"silu", "gelu", "gelu_tanh", "quick_gelu"};

static void test_act(int act, int64_t n)
{
    struct tp x, y, dy, dx;
    TP(x, 4.0f, n);
    TP(y, 1.0f, n);
    TP(dy, 1.0f, n);
    TP(dx, 1.0f, n);
    case_begin("act fwd %s n=%lld", act_names[act], (long long)n);
    tp_poison(&y);
    BOTH(ldm_act_forward(ctx, act, X(y), X(x)));
    if (!case_failed)
        check(&y, "y");
    case_end();
    case_begin("act bwd %s n=%lld", act_names[act], (long long)n);
    struct tp *g[1] = {&dx};
    const char *lab[1] = {"dx"};
    BACKWARD(g, 1, lab, ldm_act_backward(ctx, act, X(dx), X(dy), X(x)));
    case_end();
    tp_free(&x), tp_free(&y), tp_free(&dy), tp_free(&dx);
}

static void test_geglu(int64_t M, int64_t F)
{
    struct tp h, y, dy, dh;
    TP(h, 3.0f, M, 2 * F);
    TP(y, 1.0f, M, F);
    TP(dy, 1.0f, M, F);
    TP(dh, 1.0f, M, 2 * F);
    case_begin("geglu fwd M=%lld F=%lld", (long long)M, (long long)F);
    tp_poison(&y);
    BOTH(ldm_geglu_forward(ctx, X(y), X(h)));
    if (!case_failed)
        check(&y, "y");
    case_end();
    case_begin("geglu bwd M=%lld F=%lld", (long long)M, (long long)F);
    struct tp *g[1] = {&dh};
    const char *lab[1] = {"dh"};
    BACKWARD(g, 1, lab, ldm_geglu_backward(ctx, X(dh), X(dy), X(h)));
    case_end();
    tp_free(&h), tp_free(&y), tp_free(&dy), tp_free(&dh);
}

static void test_softmax(int64_t M, int64_t D)
{
    struct tp x, y, dy, dx;
    TP(x, 5.0f, M, D);
    TP(y, 1.0f, M, D);
    TP(dy, 1.0f, M, D);
    TP(dx, 1.0f, M, D);
    case_begin("softmax fwd M=%lld D=%lld", (long long)M, (long long)D);
    tp_poison(&y);
    BOTH(ldm_softmax_forward(ctx, X(y), X(x)));
    if (!case_failed)
        check(&y, "y");
    case_end();
    /* the backward takes the CPU's y on both sides */
    float *yc, *yd;
    tp_fetch(&y, &yc, &yd);
    for (size_t i = 0; i < y.n; i++)
        y.h[i] = round_to(DT, yc[i]);
    tp_upload(&y);
    free(yc), free(yd);
    case_begin("softmax bwd M=%lld D=%lld", (long long)M, (long long)D);
    struct tp *g[1] = {&dx};
    const char *lab[1] = {"dx"};
    BACKWARD(g, 1, lab, ldm_softmax_backward(ctx, X(dx), X(dy), X(y)));
    case_end();
    tp_free(&x), tp_free(&y), tp_free(&dy), tp_free(&dx);
}

/* ---- resampling and pooling ---------------------------------------------------------------------------- */

enum { RS_UP, RS_AVG, RS_MAX, RS_ADAPTIVE, RS_BILINEAR };
static const char *const rs_names[] = {"upsample_nearest2x", "avg_pool2d", "max_pool2d",
                                       "adaptive_avg_pool2d", "bilinear"};

/* kind RS_*; pool options for the pools; Ho, Wo for adaptive and bilinear. */
static void test_resample(int kind, int64_t N, int64_t C, int64_t H, int64_t W, int64_t Ho,
                          int64_t Wo, const struct ldm_pool_opts *po, int aa)
{
    if (kind == RS_UP)
        Ho = 2 * H, Wo = 2 * W;
    if (kind == RS_AVG || kind == RS_MAX) {
        int sh = po->stride_h ? po->stride_h : po->kernel_h;
        int sw = po->stride_w ? po->stride_w : po->kernel_w;
        Ho = (H + 2 * po->pad_h - po->kernel_h) / sh + 1;
        Wo = (W + 2 * po->pad_w - po->kernel_w) / sw + 1;
    }
    struct tp x, y, dy, dx;
    TP(x, 2.0f, N, C, H, W);
    TP(y, 1.0f, N, C, Ho, Wo);
    TP(dy, 1.0f, N, C, Ho, Wo);
    TP(dx, 1.0f, N, C, H, W);
    char shape[200];
    snprintf(shape, sizeof shape, "N=%lld C=%lld %lldx%lld->%lldx%lld", (long long)N,
             (long long)C, (long long)H, (long long)W, (long long)Ho, (long long)Wo);
    if (po) {
        size_t l = strlen(shape);
        snprintf(shape + l, sizeof shape - l, " k%dx%d s%d,%d p%d,%d cip=%d", po->kernel_h,
                 po->kernel_w, po->stride_h, po->stride_w, po->pad_h, po->pad_w,
                 po->count_include_pad);
    }
    if (kind == RS_BILINEAR) {
        size_t l = strlen(shape);
        snprintf(shape + l, sizeof shape - l, " aa=%d", aa);
    }
    case_begin("%s fwd %s", rs_names[kind], shape);
    tp_poison(&y);
    switch (kind) {
    case RS_UP: BOTH(ldm_upsample_nearest2x_forward(ctx, X(y), X(x))); break;
    case RS_AVG: BOTH(ldm_avg_pool2d_forward(ctx, X(y), X(x), po)); break;
    case RS_MAX: BOTH(ldm_max_pool2d_forward(ctx, X(y), X(x), po)); break;
    case RS_ADAPTIVE: BOTH(ldm_adaptive_avg_pool2d_forward(ctx, X(y), X(x))); break;
    default: BOTH(ldm_bilinear_forward(ctx, X(y), X(x), aa)); break;
    }
    if (!case_failed)
        check(&y, "y");
    case_end();
    case_begin("%s bwd %s", rs_names[kind], shape);
    struct tp *g[1] = {&dx};
    const char *lab[1] = {"dx"};
    switch (kind) {
    case RS_UP: BACKWARD(g, 1, lab, ldm_upsample_nearest2x_backward(ctx, X(dx), X(dy))); break;
    case RS_AVG: BACKWARD(g, 1, lab, ldm_avg_pool2d_backward(ctx, X(dx), X(dy), po)); break;
    case RS_MAX: BACKWARD(g, 1, lab, ldm_max_pool2d_backward(ctx, X(dx), X(dy), X(x), po)); break;
    case RS_ADAPTIVE:
        BACKWARD(g, 1, lab, ldm_adaptive_avg_pool2d_backward(ctx, X(dx), X(dy)));
        break;
    default: BACKWARD(g, 1, lab, ldm_bilinear_backward(ctx, X(dx), X(dy), aa)); break;
    }
    case_end();
    tp_free(&x), tp_free(&y), tp_free(&dy), tp_free(&dx);
}

/* ---- moving tensors around ------------------------------------------------------------------------------- */

static void test_concat(int64_t N, int64_t S)
{
    int64_t ch[3] = {3, 1, 4};
    struct tp x[3], dx[3], y, dy;
    for (int i = 0; i < 3; i++) {
        TP(x[i], 1.0f, N, ch[i], S);
        TP(dx[i], 1.0f, N, ch[i], S);
    }
    TP(y, 1.0f, N, 8, S);
    TP(dy, 1.0f, N, 8, S);
    case_begin("concat fwd N=%lld C=3+1+4 S=%lld", (long long)N, (long long)S);
    tp_poison(&y);
    BOTH(ldm_concat_forward(ctx, X(y), (const struct ldm_tensor *const[]){X(x[0]), X(x[1]), X(x[2])},
                            3));
    if (!case_failed)
        check(&y, "y");
    case_end();
    /* part 1's gradient not wanted: a descriptor with NULL data */
    struct ldm_tensor skip_c = dx[1].c, skip_g = dx[1].g;
    skip_c.data = skip_g.data = NULL;
    case_begin("concat bwd N=%lld C=3+1+4 S=%lld (part 1 skipped)", (long long)N, (long long)S);
    struct tp *g[2] = {&dx[0], &dx[2]};
    const char *lab[2] = {"dx0", "dx2"};
    BACKWARD(g, 2, lab,
             ldm_concat_backward(ctx,
                                 (const struct ldm_tensor *const[]){X(dx[0]),
                                                                    side ? &skip_g : &skip_c,
                                                                    X(dx[2])},
                                 3, X(dy)));
    case_end();
    for (int i = 0; i < 3; i++)
        tp_free(&x[i]), tp_free(&dx[i]);
    tp_free(&y), tp_free(&dy);
}

static void test_transpose(int64_t N, int64_t A, int64_t B)
{
    struct tp x, y, dy, dx;
    TP(x, 1.0f, N, A, B);
    TP(y, 1.0f, N, B, A);
    TP(dy, 1.0f, N, B, A);
    TP(dx, 1.0f, N, A, B);
    case_begin("transpose fwd N=%lld A=%lld B=%lld", (long long)N, (long long)A, (long long)B);
    tp_poison(&y);
    BOTH(ldm_transpose_forward(ctx, X(y), X(x)));
    if (!case_failed)
        check(&y, "y");
    case_end();
    case_begin("transpose bwd N=%lld A=%lld B=%lld", (long long)N, (long long)A, (long long)B);
    struct tp *g[1] = {&dx};
    const char *lab[1] = {"dx"};
    BACKWARD(g, 1, lab, ldm_transpose_backward(ctx, X(dx), X(dy)));
    case_end();
    tp_free(&x), tp_free(&y), tp_free(&dy), tp_free(&dx);
}

static void test_add(int64_t n, int with_b)
{
    struct tp a, b, y, dy, da, db;
    TP(a, 1.0f, n);
    TP(b, 1.0f, n);
    TP(y, 1.0f, n);
    TP(dy, 1.0f, n);
    TP(da, 1.0f, n);
    TP(db, 1.0f, n);
    case_begin("add fwd n=%lld alpha=0.75 beta=-1.5 b=%d", (long long)n, with_b);
    tp_poison(&y);
    BOTH(ldm_add_forward(ctx, X(y), 0.75f, X(a), -1.5f, XO(b, with_b)));
    if (!case_failed)
        check(&y, "y");
    case_end();
    case_begin("add fwd in place n=%lld", (long long)n);
    tp_upload(&a);
    BOTH(ldm_add_forward(ctx, X(a), 1.0f, X(a), 1.0f, X(b)));
    if (!case_failed)
        check(&a, "a");
    case_end();
    case_begin("add bwd n=%lld b=%d", (long long)n, with_b);
    struct tp *g[2] = {&da, with_b ? &db : NULL};
    const char *lab[2] = {"da", "db"};
    BACKWARD(g, 2, lab, ldm_add_backward(ctx, X(da), 0.75f, XO(db, with_b), -1.5f, X(dy)));
    case_end();
    struct tp *all[] = {&a, &b, &y, &dy, &da, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tp_free(all[i]);
}

static void test_add_bcast(int64_t N, int64_t C, int64_t H, int64_t W)
{
    struct tp x, v, y, dy, dx, dv;
    TP(x, 1.0f, N, C, H, W);
    TP(v, 1.0f, N, C);
    TP(y, 1.0f, N, C, H, W);
    TP(dy, 1.0f, N, C, H, W);
    TP(dx, 1.0f, N, C, H, W);
    TP(dv, 1.0f, N, C);
    case_begin("add_bcast fwd N=%lld C=%lld %lldx%lld", (long long)N, (long long)C, (long long)H,
               (long long)W);
    tp_poison(&y);
    BOTH(ldm_add_bcast_forward(ctx, X(y), X(x), X(v)));
    if (!case_failed)
        check(&y, "y");
    case_end();
    case_begin("add_bcast bwd N=%lld C=%lld %lldx%lld", (long long)N, (long long)C, (long long)H,
               (long long)W);
    struct tp *g[2] = {&dx, &dv};
    const char *lab[2] = {"dx", "dv"};
    BACKWARD(g, 2, lab, ldm_add_bcast_backward(ctx, X(dx), X(dv), X(dy)));
    case_end();
    case_begin("add_bcast bwd dv-only N=%lld C=%lld %lldx%lld", (long long)N, (long long)C,
               (long long)H, (long long)W);
    struct tp *g1[1] = {&dv};
    const char *lab1[1] = {"dv"};
    BACKWARD(g1, 1, lab1, ldm_add_bcast_backward(ctx, NULL, X(dv), X(dy)));
    case_end();
    struct tp *all[] = {&x, &v, &y, &dy, &dx, &dv};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tp_free(all[i]);
}

/* ---- embeddings ---------------------------------------------------------------------------------------------- */

static void test_timestep(int64_t N, int64_t E, int flip, float shift, float scale)
{
    struct ldm_temb_opts o = {flip, shift, scale, 0.0f};
    struct tp t, y;
    TPD(t, LDM_DT_F32, 1.0f, N);
    for (size_t i = 0; i < t.n; i++)
        t.h[i] = (float)(int)(urand() * 1000.0); /* integer steps 0..999, as schedulers give */
    t.h[0] = 999.0f;
    tp_upload(&t);
    TP(y, 1.0f, N, E);
    case_begin("timestep_embedding N=%lld E=%lld flip=%d shift=%g scale=%g", (long long)N,
               (long long)E, flip, (double)shift, (double)scale);
    tp_poison(&y);
    BOTH(ldm_timestep_embedding(ctx, X(y), X(t), &o));
    if (!case_failed)
        check(&y, "y");
    case_end();
    tp_free(&t), tp_free(&y);
}

/* ids on both sides (raw integers), as a tensor pair with F32 float mirrors unused. */
struct ids {
    struct ldm_tensor c, g;
};

static void ids_make(struct ids *ids, int dtype, int64_t M, int64_t V, int bad_at)
{
    size_t es = ldm_dtype_size(dtype);
    void *h = malloc((size_t)M * es + 1);
    if (!h)
        die("out of memory", LDM_ENOMEM);
    for (int64_t i = 0; i < M; i++) {
        int64_t v = (int64_t)(urand() * (double)(V < 6 ? V : 6)); /* few distinct ids: repeats */
        if (i % 3 == 0)
            v = (int64_t)(urand() * (double)V);
        if (i == bad_at)
            v = V + 2;
        if (dtype == LDM_DT_I64)
            ((int64_t *)h)[i] = v;
        else
            ((int32_t *)h)[i] = (int32_t)v;
    }
    ldm_tensor_setv(&ids->c, "ids", dtype, M);
    ldm_tensor_setv(&ids->g, "ids", dtype, M);
    if (ldm_ctx_alloc(CPU, (size_t)M * es, &ids->c.data) ||
        ldm_ctx_alloc(DEV, (size_t)M * es, &ids->g.data) ||
        ldm_ctx_upload(CPU, ids->c.data, h, (size_t)M * es) ||
        ldm_ctx_upload(DEV, ids->g.data, h, (size_t)M * es))
        die("ids", -1);
    free(h);
}

static void ids_free(struct ids *ids)
{
    ldm_ctx_free(CPU, ids->c.data);
    ldm_ctx_free(DEV, ids->g.data);
}

static void test_embedding(int id_dtype, int64_t M, int64_t V, int64_t D)
{
    struct ids ids;
    struct tp table, y, dy, dtable;
    ids_make(&ids, id_dtype, M, V, -1);
    TP(table, 1.0f, V, D);
    TP(y, 1.0f, M, D);
    TP(dy, 1.0f, M, D);
    TP(dtable, 1.0f, V, D);
    const char *idn = id_dtype == LDM_DT_I64 ? "i64" : "i32";
    case_begin("embedding fwd %s M=%lld V=%lld D=%lld", idn, (long long)M, (long long)V,
               (long long)D);
    tp_poison(&y);
    BOTH(ldm_embedding_forward(ctx, X(y), X(ids), X(table)));
    if (!case_failed)
        check(&y, "y");
    case_end();
    case_begin("embedding bwd %s M=%lld V=%lld D=%lld", idn, (long long)M, (long long)V,
               (long long)D);
    struct tp *g[1] = {&dtable};
    const char *lab[1] = {"dtable"};
    BACKWARD(g, 1, lab, ldm_embedding_backward(ctx, X(dtable), X(dy), X(ids)));
    case_end();
    ids_free(&ids);
    /* a bad id: LDM_ERANGE on both sides, dtable untouched */
    ids_make(&ids, id_dtype, M, V, (int)(M / 2));
    case_begin("embedding bad id %s M=%lld V=%lld", idn, (long long)M, (long long)V);
    for (int side = 0; side < 2; side++) {
        struct ldm_ctx *ctx = side ? DEV : CPU;
        int r1 = ldm_embedding_forward(ctx, X(y), X(ids), X(table));
        int r2 = ldm_embedding_backward(ctx, X(dtable), X(dy), X(ids));
        if (r1 != LDM_ERANGE || r2 != LDM_ERANGE)
            case_fail(side ? "device did not refuse the id" : "cpu did not refuse the id");
        else
            case_note(" %s: %s;", side ? "device" : "cpu", ldm_errmsg());
    }
    case_end();
    ids_free(&ids);
    tp_free(&table), tp_free(&y), tp_free(&dy), tp_free(&dtable);
}

/* ---- loss and optimisers --------------------------------------------------------------------------------------- */

static void test_mse(int64_t N, int64_t C, int64_t H, int64_t W, int weighted)
{
    struct tp p, t, w, loss, dp, dt;
    TP(p, 1.0f, N, C, H, W);
    TP(t, 1.0f, N, C, H, W);
    TPD(w, LDM_DT_F32, 1.0f, N);
    for (size_t i = 0; i < w.n; i++)
        w.h[i] = 0.25f + (float)urand() * 4.0f;
    tp_upload(&w);
    TPD(loss, LDM_DT_F32, 1.0f, 1);
    TP(dp, 1.0f, N, C, H, W);
    TP(dt, 1.0f, N, C, H, W);
    case_begin("mse_loss fwd N=%lld S=%lld weighted=%d", (long long)N, (long long)(C * H * W),
               weighted);
    tp_poison(&loss);
    BOTH(ldm_mse_loss_forward(ctx, X(loss), X(p), X(t), XO(w, weighted)));
    double keep = case_bound;
    case_bound = 1e-5; /* the loss is F32, from the same rounded inputs */
    if (!case_failed)
        check(&loss, "loss");
    case_bound = keep;
    case_end();
    case_begin("mse_loss bwd N=%lld S=%lld weighted=%d dloss=128", (long long)N,
               (long long)(C * H * W), weighted);
    struct tp *g[2] = {&dp, &dt};
    const char *lab[2] = {"dpred", "dtarget"};
    BACKWARD(g, 2, lab,
             ldm_mse_loss_backward(ctx, X(dp), X(dt), 128.0f, X(p), X(t), XO(w, weighted)));
    case_end();
    struct tp *all[] = {&p, &t, &w, &loss, &dp, &dt};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tp_free(all[i]);
}

static void test_clip(float max_norm)
{
    struct tp a, b;
    TPD(a, LDM_DT_F32, 0.01f, 1000, 37);
    TPD(b, LDM_DT_F32, 0.01f, 4097);
    case_begin("clip_grad_norm 2 tensors n=37000+4097 max_norm=%g", (double)max_norm);
    float norms[2] = {0, 0};
    BOTH(ldm_clip_grad_norm(ctx, (const struct ldm_tensor[]){*X(a), *X(b)}, 2, max_norm,
                            &norms[side]));
    if (!case_failed) {
        double e = fabs((double)norms[1] - norms[0]) / fmax((double)norms[0], 1e-30);
        case_note(" norm=%.6g err=%.2e", (double)norms[0], e);
        if (!(e <= 1e-6))
            case_fail("norm differs");
        check(&a, "g0");
        check(&b, "g1");
    }
    case_end();
    tp_free(&a), tp_free(&b);
}

static void test_adamw(int64_t n, double wd)
{
    struct tp p, g, m, v;
    TPD(p, LDM_DT_F32, 1.0f, n);
    TPD(m, LDM_DT_F32, 0.0f, n);
    TPD(v, LDM_DT_F32, 0.0f, n);
    case_begin("adamw_step n=%lld wd=%g 3 steps", (long long)n, wd);
    for (int step = 1; step <= 3 && !case_failed; step++) {
        TPD(g, LDM_DT_F32, 0.1f, n);
        struct ldm_adamw_opts o = {1e-3, 0.9, 0.999, 1e-8, wd, step};
        BOTH(ldm_adamw_step(ctx, X(p), X(g), X(m), X(v), &o));
        tp_free(&g);
    }
    double keep = case_bound;
    case_bound = 1e-6;
    if (!case_failed) {
        check(&p, "param");
        check(&m, "m");
        check(&v, "v");
    }
    case_bound = keep;
    case_end();
    tp_free(&p), tp_free(&m), tp_free(&v);
}

/* U8 codes on both sides. */
static int64_t codes_differ(const struct ldm_tensor *c, const struct ldm_tensor *g, int64_t n)
{
    uint8_t *a = malloc((size_t)n + 1), *b = malloc((size_t)n + 1);
    if (!a || !b || ldm_ctx_download(CPU, a, c->data, (size_t)n) ||
        ldm_ctx_download(DEV, b, g->data, (size_t)n))
        die("download codes", -1);
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++)
        d += a[i] != b[i];
    free(a), free(b);
    return d;
}

static void test_adamw8(int64_t n, double wd)
{
    int64_t nb = (n + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK;
    struct tp p, g, ma, va;
    struct ldm_tensor mq[2], vq[2]; /* [0] CPU, [1] device */
    TPD(p, LDM_DT_F32, 1.0f, n);
    TPD(ma, LDM_DT_F32, 0.0f, nb);
    TPD(va, LDM_DT_F32, 0.0f, nb);
    for (int side = 0; side < 2; side++) {
        struct ldm_ctx *ctx = side ? DEV : CPU;
        ldm_tensor_setv(&mq[side], "m_q", LDM_DT_U8, n);
        ldm_tensor_setv(&vq[side], "v_q", LDM_DT_U8, n);
        if (ldm_ctx_alloc(ctx, (size_t)n, &mq[side].data) ||
            ldm_ctx_alloc(ctx, (size_t)n, &vq[side].data))
            die("alloc codes", -1);
    }
    case_begin("adamw8_step n=%lld blocks=%lld wd=%g 4 steps", (long long)n, (long long)nb, wd);
    for (int step = 1; step <= 4 && !case_failed; step++) {
        TPD(g, LDM_DT_F32, step == 2 ? 1e-3f : 0.1f, n);
        if (step == 3)
            g.h[5] = INFINITY, tp_upload(&g); /* a non-finite gradient keeps its param */
        struct ldm_adamw_opts o = {1e-3, 0.9, 0.999, 1e-8, wd, step};
        BOTH(ldm_adamw8_step(ctx, X(p), X(g), &mq[side], &vq[side], X(ma), X(va), &o));
        tp_free(&g);
    }
    double keep = case_bound;
    case_bound = 1e-6;
    if (!case_failed) {
        check(&p, "param");
        check(&ma, "m_absmax");
        check(&va, "v_absmax");
        int64_t dm = codes_differ(&mq[0], &mq[1], n), dv = codes_differ(&vq[0], &vq[1], n);
        case_note(" m_q differ=%lld v_q differ=%lld", (long long)dm, (long long)dv);
        if (dm || dv)
            case_fail("codes differ");
    }
    case_bound = keep;
    case_end();
    for (int side = 0; side < 2; side++) {
        struct ldm_ctx *ctx = side ? DEV : CPU;
        ldm_ctx_free(ctx, mq[side].data);
        ldm_ctx_free(ctx, vq[side].data);
    }
    tp_free(&p), tp_free(&ma), tp_free(&va);
}

static void test_ema(int64_t n)
{
    struct tp e, p;
    TPD(e, LDM_DT_F32, 1.0f, n);
    TPD(p, LDM_DT_F32, 1.0f, n);
    case_begin("ema_update n=%lld decay=0.9999 and 0.75", (long long)n);
    BOTH(ldm_ema_update(ctx, X(e), X(p), 0.9999f));
    BOTH(ldm_ema_update(ctx, X(e), X(p), 0.75f));
    double keep = case_bound;
    case_bound = 0.0; /* the same float operations in the same order: the same bits */
    if (!case_failed)
        check(&e, "ema");
    case_bound = keep;
    case_end();
    tp_free(&e), tp_free(&p);
}

/* ---- the case lists ------------------------------------------------------------------------------------------- */

static const char *only; /* --only FAMILY: run that family of cases alone */

static int want(const char *family)
{
    return !only || strcmp(only, family) == 0;
}

static void run_float_cases(void)
{
    if (want("linear"))
        test_linear(1, 1, 1, 1);
    if (want("linear"))
        test_linear(7, 13, 5, 1);
    if (want("linear"))
        test_linear(77, 33, 48, 0);
    if (want("linear"))
        test_linear(256, 320, 640, 1);
    for (int t = 0; t < 4; t++)
        if (want("bmm"))
            test_bmm(3, 17, 9, 11, t & 1, t >> 1, 0.5f);
    if (want("bmm"))
        test_bmm(1, 64, 40, 77, 0, 1, 0.125f);
    static const struct convcase convs[] = {
        {2, 5, 9, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},   /* odd sizes, same padding */
        {1, 3, 8, 8, 6, 3, 3, 2, 2, 0, 1, 0, 1, 1},   /* diffusers' downsample padding */
        {2, 4, 7, 9, 3, 3, 3, 2, 2, 0, 1, 0, 1, 0},   /* the same on odd sizes, no bias */
        {1, 4, 7, 9, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1},   /* stride 2, symmetric */
        {2, 16, 5, 5, 8, 1, 1, 1, 1, 0, 0, 0, 0, 1},  /* 1x1 */
        {2, 8, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1},
        {1, 3, 6, 6, 2, 3, 3, 1, 1, 1, 0, 2, 1, 1},   /* uneven padding both ways */
        {3, 2, 4, 5, 5, 2, 3, 1, 2, 0, 0, 1, 1, 0},   /* rectangular kernel */
    };
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++)
        if (want("conv2d"))
            test_conv(&convs[i]);
    for (int v = 0; v < 4; v++)
        if (want("group_norm"))
            test_group_norm(2, 8, 5, 7, 4, v & 1, v >> 1);
    if (want("group_norm"))
        test_group_norm(1, 64, 8, 8, 32, 1, 1);
    if (want("group_norm"))
        test_group_norm(3, 6, 1, 1, 3, 0, 1);
    if (want("group_norm"))
        test_group_norm(2, 32, 16, 16, 8, 1, 1);
    if (want("layer_norm"))
        test_layer_norm(7, 33, 1);
    if (want("layer_norm"))
        test_layer_norm(300, 320, 1);
    if (want("layer_norm"))
        test_layer_norm(5, 768, 0);
    if (want("layer_norm"))
        test_layer_norm(1, 1, 1);
    if (want("layer_norm"))
        test_layer_norm(2000, 64, 1);
    for (int a = 0; a < LDM_ACT_COUNT; a++)
        if (want("act"))
            test_act(a, 1001);
    for (int a = 0; a < LDM_ACT_COUNT; a++)
        if (want("act"))
            test_act(a, 4096);
    if (want("geglu"))
        test_geglu(5, 37);
    if (want("geglu"))
        test_geglu(64, 320);
    if (want("softmax"))
        test_softmax(9, 77);
    if (want("softmax"))
        test_softmax(3, 1000);
    if (want("softmax"))
        test_softmax(1, 1);
    if (want("resample"))
        test_resample(RS_UP, 2, 3, 5, 7, 0, 0, NULL, 0);
    if (want("resample"))
        test_resample(RS_UP, 1, 1, 1, 1, 0, 0, NULL, 0);
    static const struct ldm_pool_opts pools[] = {
        {3, 3, 2, 2, 1, 1, 0}, {3, 3, 2, 2, 1, 1, 1}, {2, 2, 0, 0, 0, 0, 0}, {3, 2, 1, 2, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof pools / sizeof *pools; i++) {
        if (want("resample"))
            test_resample(RS_AVG, 2, 3, 9, 8, 0, 0, &pools[i], 0);
        if (want("resample"))
            test_resample(RS_MAX, 2, 3, 9, 8, 0, 0, &pools[i], 0);
    }
    if (want("resample"))
        test_resample(RS_ADAPTIVE, 2, 3, 9, 7, 4, 3, NULL, 0);
    if (want("resample"))
        test_resample(RS_ADAPTIVE, 1, 2, 5, 5, 1, 1, NULL, 0);
    if (want("resample"))
        test_resample(RS_ADAPTIVE, 1, 2, 3, 4, 7, 5, NULL, 0);
    for (int aa = 0; aa < 2; aa++) {
        if (want("resample"))
            test_resample(RS_BILINEAR, 2, 3, 5, 7, 11, 13, NULL, aa);
        if (want("resample"))
            test_resample(RS_BILINEAR, 1, 2, 17, 19, 5, 6, NULL, aa);
        if (want("resample"))
            test_resample(RS_BILINEAR, 1, 1, 12, 9, 12, 20, NULL, aa);
    }
    if (want("concat"))
        test_concat(2, 6);
    if (want("concat"))
        test_concat(1, 1);
    if (want("transpose"))
        test_transpose(2, 37, 45);
    if (want("transpose"))
        test_transpose(1, 64, 320);
    if (want("add"))
        test_add(1001, 1);
    if (want("add"))
        test_add(17, 0);
    if (want("add_bcast"))
        test_add_bcast(2, 5, 7, 3);
    if (want("add_bcast"))
        test_add_bcast(1, 320, 8, 8);
    if (want("timestep"))
        test_timestep(5, 33, 1, 1.0f, 1.0f);
    if (want("timestep"))
        test_timestep(3, 320, 0, 0.0f, 1.0f);
    if (want("timestep"))
        test_timestep(4, 256, 1, 0.0f, 1000.0f);
    if (want("embedding"))
        test_embedding(LDM_DT_I32, 23, 50, 17);
    if (want("embedding"))
        test_embedding(LDM_DT_I64, 77, 1000, 64);
    if (want("mse"))
        test_mse(3, 4, 8, 8, 1);
    if (want("mse"))
        test_mse(1, 4, 3, 5, 0);
}

static void run_f32_cases(void)
{
    if (want("clip"))
        test_clip(0.5f);
    if (want("clip"))
        test_clip(100.0f);
    if (want("clip"))
        test_clip(0.0f);
    if (want("adamw"))
        test_adamw(1000, 0.01);
    if (want("adamw"))
        test_adamw(257, 0.0);
    if (want("adamw8"))
        test_adamw8(1000, 0.01);
    if (want("adamw8"))
        test_adamw8(4096, 0.0);
    if (want("ema"))
        test_ema(1001);
}

/* ---- timings ---------------------------------------------------------------------------------------------------- */

/* A device tensor of random values in dtype. */
static struct ldm_tensor bench_tensor(int dtype, float scale, int ndim, const int64_t *shape)
{
    struct ldm_tensor t;
    if (ldm_tensor_set(&t, "bench", dtype, ndim, shape))
        die("bench shape", LDM_EINVAL);
    size_t n = ldm_tensor_numel(&t), es = ldm_dtype_size(dtype);
    float *h = malloc(n * sizeof(float) + 1);
    void *raw = malloc(n * es + 1);
    if (!h || !raw)
        die("out of memory", LDM_ENOMEM);
    for (size_t i = 0; i < n; i++)
        h[i] = (float)(scale * (2.0 * urand() - 1.0));
    ldm_convert(raw, dtype, h, LDM_DT_F32, n);
    if (ldm_ctx_alloc(DEV, n * es, &t.data) || ldm_ctx_upload(DEV, t.data, raw, n * es))
        die("bench tensor", -1);
    free(h), free(raw);
    return t;
}
#define BT(dtype, scale, ...) bench_tensor((dtype), (scale), NARGS(__VA_ARGS__), \
                                           (const int64_t[]){__VA_ARGS__})

/* Time expr on the device: plan and reserve, 2 warm-up runs, then the mean of
 * 10 between CUDA events; print ms and the rate of `work` (flop or bytes). */
#define TIME(label, work, unit, expr)                                                              \
    do {                                                                                           \
        struct ldm_ctx *ctx = DEV;                                                                 \
        size_t need_ = 0;                                                                          \
        ldm_ctx_plan_begin(ctx);                                                                   \
        int rc_ = (expr);                                                                          \
        ldm_ctx_plan_end(ctx, &need_);                                                             \
        if (!rc_ && need_ > ctx->ws_bytes)                                                         \
            rc_ = ldm_ctx_reserve(ctx, need_);                                                     \
        for (int it_ = 0; it_ < 2 && !rc_; it_++)                                                  \
            rc_ = (expr);                                                                          \
        cudaEvent_t e0_, e1_;                                                                      \
        cudaEventCreate(&e0_);                                                                     \
        cudaEventCreate(&e1_);                                                                     \
        cudaEventRecord(e0_, ldm_cuda_stream(ctx));                                                \
        for (int it_ = 0; it_ < 10 && !rc_; it_++)                                                 \
            rc_ = (expr);                                                                          \
        cudaEventRecord(e1_, ldm_cuda_stream(ctx));                                                \
        cudaEventSynchronize(e1_);                                                                 \
        float ms_ = 0.0f;                                                                          \
        cudaEventElapsedTime(&ms_, e0_, e1_);                                                      \
        cudaEventDestroy(e0_);                                                                     \
        cudaEventDestroy(e1_);                                                                     \
        ms_ /= 10.0f;                                                                              \
        if (rc_)                                                                                   \
            printf("time %-44s failed: %s\n", (label), ldm_errmsg());                            \
        else                                                                                       \
            printf("time %-44s %8.3f ms %8.1f %s\n", (label), (double)ms_,                         \
                   (double)(work) / ((double)ms_ * 1e-3) / 1e12, (unit));                          \
        fflush(stdout);                                                                            \
    } while (0)

static void bench_conv(int64_t N, int64_t C, int64_t HW)
{
    int dt = LDM_DT_BF16;
    struct ldm_conv2d_opts o = {1, 1, 1, 1, 1, 1};
    struct ldm_tensor x = BT(dt, 1.0f, N, C, HW, HW), w = BT(dt, 0.05f, C, C, 3, 3),
                      b = BT(dt, 0.1f, C), y = BT(dt, 1.0f, N, C, HW, HW),
                      dx = BT(dt, 1.0f, N, C, HW, HW), dw = BT(dt, 1.0f, C, C, 3, 3),
                      db = BT(dt, 1.0f, C);
    double flop = 2.0 * (double)(N * C * HW * HW) * (double)(C * 9);
    char l[96];
    snprintf(l, sizeof l, "conv3x3 bf16 %lld->%lld %lldx%lld N=%lld fwd", (long long)C,
             (long long)C, (long long)HW, (long long)HW, (long long)N);
    TIME(l, flop, "TFLOP/s", ldm_conv2d_forward(ctx, &y, &x, &w, &b, &o));
    snprintf(l, sizeof l, "conv3x3 bf16 %lld->%lld %lldx%lld N=%lld bwd dx+dw+db", (long long)C,
             (long long)C, (long long)HW, (long long)HW, (long long)N);
    TIME(l, 2.0 * flop, "TFLOP/s", ldm_conv2d_backward(ctx, &dx, &dw, &db, &y, &x, &w, &o));
    struct ldm_tensor *all[] = {&x, &w, &b, &y, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        ldm_ctx_free(DEV, all[i]->data);
}

static void bench_linear(int64_t M, int64_t Din, int64_t Dout)
{
    int dt = LDM_DT_BF16;
    struct ldm_tensor x = BT(dt, 1.0f, M, Din), w = BT(dt, 0.05f, Dout, Din), b = BT(dt, 0.1f, Dout),
                      y = BT(dt, 1.0f, M, Dout), dx = BT(dt, 1.0f, M, Din),
                      dw = BT(dt, 1.0f, Dout, Din), db = BT(dt, 1.0f, Dout);
    double flop = 2.0 * (double)M * (double)Din * (double)Dout;
    char l[96];
    snprintf(l, sizeof l, "linear bf16 (%lld, %lld)->%lld fwd+bias", (long long)M, (long long)Din,
             (long long)Dout);
    TIME(l, flop, "TFLOP/s", ldm_linear_forward(ctx, &y, &x, &w, &b));
    snprintf(l, sizeof l, "linear bf16 (%lld, %lld)->%lld bwd dx+dw+db", (long long)M,
             (long long)Din, (long long)Dout);
    TIME(l, 2.0 * flop, "TFLOP/s", ldm_linear_backward(ctx, &dx, &dw, &db, &y, &x, &w));
    struct ldm_tensor *all[] = {&x, &w, &b, &y, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        ldm_ctx_free(DEV, all[i]->data);
}

static void bench_memory_ops(void)
{
    int dt = LDM_DT_BF16;
    int64_t N = 8, C = 320, HW = 64, M = 8 * 4096;
    struct ldm_norm_opts go = {32, 1e-5f, 1}, lo = {0, 1e-5f, 0};
    struct ldm_tensor x = BT(dt, 1.0f, N, C, HW, HW), y = BT(dt, 1.0f, N, C, HW, HW),
                      dx = BT(dt, 1.0f, N, C, HW, HW), g = BT(dt, 1.0f, C), be = BT(dt, 1.0f, C),
                      dg = BT(dt, 1.0f, C), dbe = BT(dt, 1.0f, C),
                      mean = BT(LDM_DT_F32, 0.0f, N, 32), rstd = BT(LDM_DT_F32, 1.0f, N, 32);
    double bytes = 2.0 * (double)(N * C * HW * HW);
    TIME("group_norm+silu bf16 8x320x64x64 G=32 fwd", 2.0 * bytes, "TB/s",
         ldm_group_norm_forward(ctx, &y, &mean, &rstd, &x, &g, &be, &go));
    TIME("group_norm+silu bf16 8x320x64x64 G=32 bwd", 4.0 * bytes, "TB/s",
         ldm_group_norm_backward(ctx, &dx, &dg, &dbe, &y, &x, &mean, &rstd, &g, &be, &go));
    TIME("act silu bf16 8x320x64x64 fwd", 2.0 * bytes, "TB/s",
         ldm_act_forward(ctx, LDM_ACT_SILU, &y, &x));
    struct ldm_tensor xr = {x.data, dt, 2, {M, C}, "x"}, yr = {y.data, dt, 2, {M, C}, "y"},
                      dxr = {dx.data, dt, 2, {M, C}, "dx"},
                      lm = BT(LDM_DT_F32, 0.0f, M), lr = BT(LDM_DT_F32, 1.0f, M);
    TIME("layer_norm bf16 (32768, 320) fwd", 2.0 * bytes, "TB/s",
         ldm_layer_norm_forward(ctx, &yr, &lm, &lr, &xr, &g, &be, &lo));
    TIME("layer_norm bf16 (32768, 320) bwd", 4.0 * bytes, "TB/s",
         ldm_layer_norm_backward(ctx, &dxr, &dg, &dbe, &yr, &xr, &lm, &lr, &g));
    TIME("transpose bf16 8x320x4096 fwd", 2.0 * bytes, "TB/s",
         ldm_transpose_forward(ctx, &(struct ldm_tensor){y.data, dt, 3, {N, HW * HW, C}, "y"},
                               &(struct ldm_tensor){x.data, dt, 3, {N, C, HW * HW}, "x"}));
    struct ldm_tensor h = BT(dt, 1.0f, M, 2 * 1280), gy = BT(dt, 1.0f, M, 1280),
                      dh = BT(dt, 1.0f, M, 2 * 1280);
    double gb = 2.0 * (double)M * 1280.0;
    TIME("geglu bf16 (32768, 2x1280) fwd", 3.0 * gb, "TB/s", ldm_geglu_forward(ctx, &gy, &h));
    TIME("geglu bf16 (32768, 2x1280) bwd", 7.0 * gb, "TB/s", ldm_geglu_backward(ctx, &dh, &gy, &h));
    struct ldm_tensor *all[] = {&x, &y, &dx, &g, &be, &dg, &dbe, &mean, &rstd, &lm, &lr, &h, &gy, &dh};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        ldm_ctx_free(DEV, all[i]->data);
}

static void run_bench(void)
{
    printf("timings: bf16, CUDA events, mean of 10 runs after 2 warm-ups\n");
    if (want("conv2d")) {
        bench_conv(8, 320, 64);
        bench_conv(8, 640, 32);
        bench_conv(8, 1280, 16);
    }
    if (want("linear")) {
        bench_linear(8 * 4096, 320, 1280);
        bench_linear(8 * 4096, 1280, 320);
        bench_linear(8 * 4096, 320, 320);
    }
    if (!only || strstr("group_norm act layer_norm transpose geglu", only))
        bench_memory_ops();
}

/* ---- main ---------------------------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *dev = "cuda";
    int bench = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bench") == 0)
            bench = 1;
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            dev = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: cuda-ops [--bench] [--device cuda[:N]|cpu] [--only FAMILY]\n");
            return 2;
        }
    }
    dev_is_cuda = strncmp(dev, "cuda", 4) == 0;
    if (dev_is_cuda) {
        int n = 0;
        if (!ldm_cuda_built() || ldm_cuda_device_count(&n) || n == 0) {
            printf("SKIP cuda-ops: no CUDA device\n");
            return 0;
        }
        char desc[200];
        if (ldm_cuda_describe(0, desc, sizeof desc) == 0)
            printf("     %s\n", desc);
    }
    int rc = ldm_ctx_open(&CPU, "cpu", 0);
    if (!rc)
        rc = ldm_ctx_open(&DEV, dev, 0);
    if (rc)
        die("open contexts", rc);
    static const int dtypes[] = {LDM_DT_F32, LDM_DT_BF16, LDM_DT_F16};
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++) {
        if (!(DEV->be->dtypes & (1u << dtypes[i])))
            continue;
        DT = dtypes[i];
        run_float_cases();
    }
    DT = LDM_DT_F32;
    run_f32_cases();
    printf("%s cuda-ops: %d cases passed, %d failed\n", n_fail ? "FAIL" : "ok  ", n_ok, n_fail);
    if (bench && dev_is_cuda)
        run_bench();
    ldm_ctx_close(&DEV);
    ldm_ctx_close(&CPU);
    return n_fail ? 1 : 0;
}

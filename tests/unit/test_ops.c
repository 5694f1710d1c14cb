/* test_ops.c — every nn/ op on the CPU backend against PyTorch: forward outputs,
 * saved statistics and gradients, from tests/golden/ops.py run once per suite.
 *
 * Tolerances (../shared/data/golden/README.md): max|ours − ref| / max|ref|
 * <= 1e-4 forward, <= 1e-3 for gradients. Gradient buffers start at a
 * nonzero value (a quarter of the reference's largest magnitude), which is
 * subtracted before comparing: that checks that backward adds (+=). Output
 * buffers start as 1e30, so an element a forward does not write fails.
 * Every case runs on 1 thread and on 3 (the pool's paths). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "nn/backend.h"
#include "safetensors.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"
#define SCRIPT "tests/golden/ops.py"
#define FWD_TOL 1e-4
#define GRAD_TOL 1e-3
#define UNSET 1e30f

static char *g_dir;          /* the suite's temporary folder */
static struct ldm_st *g_st;  /* the golden file */
static struct ldm_ctx *C;    /* the context of the running case */
static void *g_allocs[512];  /* buffers of the running test */
static int g_nallocs;
static double g_worst_fwd, g_worst_grad;

/* ---- fixtures ---------------------------------------------------------------------- */

static void suite_setup(void)
{
    g_dir = tu_tmpdir();
    char path[4096], cmd[8192];
    snprintf(path, sizeof path, "%s/ops.safetensors", g_dir);
    snprintf(cmd, sizeof cmd, "%s %s '%s' 2>'%s/golden.err'", PYTHON, SCRIPT, path, g_dir);
    int st = system(cmd);
    ck_assert_msg(st == 0, "%s failed (status %d); see %s/golden.err: the op tests need Debian's "
                           "python3-torch at %s", cmd, st, g_dir, PYTHON);
    ck_ok(ldm_st_open(&g_st, path));
}

static void suite_teardown(void)
{
    ldm_st_close(&g_st);
    if (g_dir)
        tu_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
}

static void test_teardown(void)
{
    for (int i = 0; i < g_nallocs; i++)
        free(g_allocs[i]);
    g_nallocs = 0;
    ldm_ctx_close(&C);
}

/* ---- golden tensors ---------------------------------------------------------------- */

static void *talloc(size_t bytes)
{
    ck_assert_int_lt(g_nallocs, (int)(sizeof g_allocs / sizeof g_allocs[0]));
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    ck_assert_ptr_nonnull(p);
    g_allocs[g_nallocs++] = p;
    return p;
}

static const struct ldm_st_tensor *ref(const char *cs, const char *role)
{
    char name[256];
    snprintf(name, sizeof name, "%s/%s", cs, role);
    const struct ldm_st_tensor *t = ldm_st_get(g_st, name);
    ck_assert_msg(t != NULL, "the golden file has no tensor %s", name);
    return t;
}

static struct ldm_tensor desc_of(const struct ldm_st_tensor *r, void *data, const char *role)
{
    struct ldm_tensor t = ldm_tensor_view(data, r->dtype, r->ndim, r->shape);
    t.name = role;
    return t;
}

/* A writable copy of input `role`. */
static struct ldm_tensor in(const char *cs, const char *role)
{
    const struct ldm_st_tensor *r = ref(cs, role);
    void *p = talloc(r->nbytes);
    memcpy(p, r->data, r->nbytes);
    return desc_of(r, p, role);
}

static float ref_absmax(const struct ldm_st_tensor *r)
{
    float m = 0.0f;
    const float *v = r->data;
    for (size_t i = 0; i < r->nbytes / 4; i++)
        m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
    return m;
}

/* A buffer shaped as reference `role`, every element `fill`. */
static struct ldm_tensor filled(const char *cs, const char *role, float fill)
{
    const struct ldm_st_tensor *r = ref(cs, role);
    ck_assert_int_eq(r->dtype, LDM_DT_F32);
    float *p = talloc(r->nbytes);
    for (size_t i = 0; i < r->nbytes / 4; i++)
        p[i] = fill;
    return desc_of(r, p, role);
}

static struct ldm_tensor out(const char *cs, const char *role)
{
    return filled(cs, role, UNSET);
}

/* A gradient buffer, prefilled: grad_pre(...) gives back the fill. */
static float grad_fill(const char *cs, const char *role)
{
    float m = ref_absmax(ref(cs, role));
    return m > 0.0f ? 0.25f * m : 0.5f;
}

static struct ldm_tensor grad(const char *cs, const char *role)
{
    return filled(cs, role, grad_fill(cs, role));
}

/* Compare ours − pre with the reference; print the first mismatches and the
 * largest error; fail above tol. */
static void expect(const char *cs, const char *role, const struct ldm_tensor *ours, float pre,
                   double tol, int is_grad)
{
    const struct ldm_st_tensor *r = ref(cs, role);
    ck_assert_msg(ldm_tensor_numel(ours) * 4 == r->nbytes, "%s/%s: size differs", cs, role);
    const float *o = ours->data, *e = r->data;
    size_t n = r->nbytes / 4;
    double rmax = 0.0, emax = 0.0;
    for (size_t i = 0; i < n; i++) {
        rmax = fmax(rmax, fabs((double)e[i]));
        double d = isfinite(o[i]) ? fabs((double)o[i] - pre - e[i]) : INFINITY;
        emax = fmax(emax, d);
    }
    double rel = rmax > 0.0 ? emax / rmax : emax;
    if (is_grad)
        g_worst_grad = fmax(g_worst_grad, rel);
    else
        g_worst_fwd = fmax(g_worst_fwd, rel);
    if (rel <= tol)
        return;
    int shown = 0;
    for (size_t i = 0; i < n && shown < 5; i++) {
        double d = fabs((double)o[i] - pre - e[i]);
        if (!(d <= tol * (rmax > 0.0 ? rmax : 1.0))) {
            fprintf(stderr, "  %s/%s[%zu]: ours %.9g, torch %.9g\n", cs, role, i,
                    (double)o[i] - pre, (double)e[i]);
            shown++;
        }
    }
    ck_abort_msg("%s/%s (threads %d): max |ours - torch| = %.3g, max |torch| = %.3g, relative "
                 "%.3g > %.0e", cs, role, C->threads, emax, rmax, rel, tol);
}

static void expect_out(const char *cs, const char *role, const struct ldm_tensor *t)
{
    expect(cs, role, t, 0.0f, FWD_TOL, 0);
}

static void expect_grad(const char *cs, const char *role, const struct ldm_tensor *t)
{
    expect(cs, role, t, grad_fill(cs, role), GRAD_TOL, 1);
}

/* Run an op call once while planning, reserve the workspace it asked for,
 * then run it. */
#define RUN(call)                                                                                  \
    do {                                                                                           \
        size_t need_;                                                                              \
        ldm_ctx_plan_begin(C);                                                                     \
        ck_ok(call);                                                                               \
        ldm_ctx_plan_end(C, &need_);                                                               \
        ck_ok(ldm_ctx_reserve(C, need_));                                                          \
        ck_ok(call);                                                                               \
    } while (0)

/* ---- metadata ----------------------------------------------------------------------- */

static int64_t mint(const json_t *m, const char *key)
{
    int64_t v;
    ck_ok(ldm_json_get_int(m, key, &v, 0));
    return v;
}

static double mreal(const json_t *m, const char *key)
{
    double v;
    ck_ok(ldm_json_get_real(m, key, &v, 0.0));
    return v;
}

static int mbool(const json_t *m, const char *key)
{
    int v;
    ck_ok(ldm_json_get_bool(m, key, &v, 0));
    return v;
}

typedef void (*case_fn)(const char *cs, const json_t *m);

/* Run fn on every case of `op`, on 1 thread and on 3; print the worst errors. */
static void for_cases(const char *op, case_fn fn)
{
    int count = 0;
    g_worst_fwd = g_worst_grad = 0.0;
    for (size_t i = 0; i < ldm_st_meta_count(g_st); i++) {
        const char *val, *cs = ldm_st_meta_at(g_st, i, &val);
        json_t *m;
        ck_ok(ldm_json_parse_object(val, strlen(val), cs, &m));
        const char *mop;
        ck_ok(ldm_json_get_str(m, "op", &mop, ""));
        if (strcmp(mop, op) == 0) {
            for (int threads = 1; threads <= 3; threads += 2) {
                ck_ok(ldm_ctx_open(&C, "cpu", threads));
                fn(cs, m);
                ldm_ctx_close(&C);
            }
            count++;
        }
        json_decref(m);
    }
    ck_assert_msg(count > 0, "no golden case for %s", op);
    printf("ops: %-14s %2d cases, max relative error: forward %.2e, gradients %.2e\n", op, count,
           g_worst_fwd, g_worst_grad);
}

/* ---- matrix products and convolution ------------------------------------------------------- */

static void case_linear(const char *cs, const json_t *m)
{
    int bias = mbool(m, "bias");
    struct ldm_tensor x = in(cs, "x"), w = in(cs, "w"), dy = in(cs, "dy"), y = out(cs, "y");
    struct ldm_tensor b = bias ? in(cs, "b") : x;
    RUN(ldm_linear_forward(C, &y, &x, &w, bias ? &b : NULL));
    expect_out(cs, "y", &y);
    struct ldm_tensor dx = grad(cs, "dx"), dw = grad(cs, "dw"), db = bias ? grad(cs, "db") : x;
    RUN(ldm_linear_backward(C, &dx, &dw, bias ? &db : NULL, &dy, &x, &w));
    expect_grad(cs, "dx", &dx);
    expect_grad(cs, "dw", &dw);
    if (bias)
        expect_grad(cs, "db", &db);
}

static void case_bmm(const char *cs, const json_t *m)
{
    struct ldm_bmm_opts o = {(int)mint(m, "trans_a"), (int)mint(m, "trans_b"),
                             (float)mreal(m, "alpha")};
    struct ldm_tensor a = in(cs, "a"), b = in(cs, "b"), dy = in(cs, "dy"), y = out(cs, "y");
    RUN(ldm_bmm_forward(C, &y, &a, &b, &o));
    expect_out(cs, "y", &y);
    struct ldm_tensor da = grad(cs, "da"), db = grad(cs, "db");
    RUN(ldm_bmm_backward(C, &da, &db, &dy, &a, &b, &o));
    expect_grad(cs, "da", &da);
    expect_grad(cs, "db", &db);
}

static void case_conv2d(const char *cs, const json_t *m)
{
    struct ldm_conv2d_opts o = {(int)mint(m, "stride_h"), (int)mint(m, "stride_w"),
                                (int)mint(m, "pad_top"), (int)mint(m, "pad_bottom"),
                                (int)mint(m, "pad_left"), (int)mint(m, "pad_right")};
    int bias = mbool(m, "bias");
    struct ldm_tensor x = in(cs, "x"), w = in(cs, "w"), dy = in(cs, "dy"), y = out(cs, "y");
    struct ldm_tensor b = bias ? in(cs, "b") : x;
    RUN(ldm_conv2d_forward(C, &y, &x, &w, bias ? &b : NULL, &o));
    expect_out(cs, "y", &y);
    struct ldm_tensor dx = grad(cs, "dx"), dw = grad(cs, "dw"), db = bias ? grad(cs, "db") : x;
    RUN(ldm_conv2d_backward(C, &dx, &dw, bias ? &db : NULL, &dy, &x, &w, &o));
    expect_grad(cs, "dx", &dx);
    expect_grad(cs, "dw", &dw);
    if (bias)
        expect_grad(cs, "db", &db);
}

/* ---- normalization --------------------------------------------------------------------------- */

static void case_group_norm(const char *cs, const json_t *m)
{
    struct ldm_norm_opts o = {(int)mint(m, "groups"), (float)mreal(m, "eps"), mbool(m, "silu")};
    int aff = mbool(m, "affine");
    struct ldm_tensor x = in(cs, "x"), dy = in(cs, "dy"), y = out(cs, "y");
    struct ldm_tensor mean = out(cs, "mean"), rstd = out(cs, "rstd");
    struct ldm_tensor g = aff ? in(cs, "gamma") : x, b = aff ? in(cs, "beta") : x;
    RUN(ldm_group_norm_forward(C, &y, &mean, &rstd, &x, aff ? &g : NULL, aff ? &b : NULL, &o));
    expect_out(cs, "y", &y);
    expect_out(cs, "mean", &mean);
    expect_out(cs, "rstd", &rstd);
    struct ldm_tensor dx = grad(cs, "dx");
    struct ldm_tensor dg = aff ? grad(cs, "dgamma") : x, db = aff ? grad(cs, "dbeta") : x;
    RUN(ldm_group_norm_backward(C, &dx, aff ? &dg : NULL, aff ? &db : NULL, &dy, &x, &mean,
                                &rstd, aff ? &g : NULL, aff ? &b : NULL, &o));
    expect_grad(cs, "dx", &dx);
    if (aff) {
        expect_grad(cs, "dgamma", &dg);
        expect_grad(cs, "dbeta", &db);
    }
}

static void case_layer_norm(const char *cs, const json_t *m)
{
    struct ldm_norm_opts o = {0, (float)mreal(m, "eps"), 0};
    int aff = mbool(m, "affine");
    struct ldm_tensor x = in(cs, "x"), dy = in(cs, "dy"), y = out(cs, "y");
    struct ldm_tensor mean = out(cs, "mean"), rstd = out(cs, "rstd");
    struct ldm_tensor g = aff ? in(cs, "gamma") : x, b = aff ? in(cs, "beta") : x;
    RUN(ldm_layer_norm_forward(C, &y, &mean, &rstd, &x, aff ? &g : NULL, aff ? &b : NULL, &o));
    expect_out(cs, "y", &y);
    expect_out(cs, "mean", &mean);
    expect_out(cs, "rstd", &rstd);
    struct ldm_tensor dx = grad(cs, "dx");
    struct ldm_tensor dg = aff ? grad(cs, "dgamma") : x, db = aff ? grad(cs, "dbeta") : x;
    RUN(ldm_layer_norm_backward(C, &dx, aff ? &dg : NULL, aff ? &db : NULL, &dy, &x, &mean, &rstd,
                                aff ? &g : NULL));
    expect_grad(cs, "dx", &dx);
    if (aff) {
        expect_grad(cs, "dgamma", &dg);
        expect_grad(cs, "dbeta", &db);
    }
}

/* ---- pointwise ------------------------------------------------------------------------------- */

static int act_of(const char *name)
{
    static const char *const names[] = {"silu", "gelu", "gelu_tanh", "quick_gelu", "relu"};
    for (int i = 0; i < LDM_ACT_COUNT; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    ck_abort_msg("unknown activation %s", name);
    return -1;
}

static void case_act(const char *cs, const json_t *m)
{
    const char *name;
    ck_ok(ldm_json_get_str(m, "act", &name, ""));
    int act = act_of(name);
    struct ldm_tensor x = in(cs, "x"), dy = in(cs, "dy"), y = out(cs, "y"), dx = grad(cs, "dx");
    RUN(ldm_act_forward(C, act, &y, &x));
    expect_out(cs, "y", &y);
    RUN(ldm_act_backward(C, act, &dx, &dy, &x));
    expect_grad(cs, "dx", &dx);
}

/* ReLU has no golden case; its values are exact, so they are checked here against
 * max(x, 0) bit for bit (a zero of either sign counts as 0), NaN staying NaN, on
 * 1 thread and on 3 (n spans several tasks), out of place and in place. The
 * backward adds dy where x > 0 and nothing elsewhere (x = 0 and NaN included). */
START_TEST(test_relu)
{
    static const float special[] = {-3.5f, -1e-30f, -0.0f, 0.0f, 1e-30f, 2.25f,
                                    NAN,   -INFINITY, INFINITY, -FLT_MAX, FLT_MAX, 1.0f};
    enum { NS = sizeof special / sizeof special[0], N = 40000 };
    float *x = talloc(N * sizeof(float)), *y = talloc(N * sizeof(float));
    float *dy = talloc(N * sizeof(float)), *dx = talloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        dy[i] = (float)(i % 13) - 6.5f;
    struct ldm_tensor tx = ldm_tensor_f32(x, 2, N / 2), ty = ldm_tensor_f32(y, 2, N / 2);
    struct ldm_tensor tdy = ldm_tensor_f32(dy, 2, N / 2), tdx = ldm_tensor_f32(dx, 2, N / 2);
    for (int threads = 1; threads <= 3; threads += 2) {
        ck_ok(ldm_ctx_open(&C, "cpu", threads));
        for (int i = 0; i < N; i++) {
            x[i] = i < NS ? special[i] : (float)((i * 7919) % 2001 - 1000) / 64.0f;
            y[i] = UNSET, dx[i] = 0.5f;
        }
        ck_ok(ldm_act_forward(C, LDM_ACT_RELU, &ty, &tx));
        ck_ok(ldm_act_backward(C, LDM_ACT_RELU, &tdx, &tdy, &tx));
        for (int i = 0; i < N; i++) {
            if (isnan(x[i]))
                ck_assert_msg(isnan(y[i]), "relu(NaN) = %g at %d", y[i], i);
            else
                ck_assert_msg(y[i] == (x[i] > 0.0f ? x[i] : 0.0f), "relu(%g) = %g at %d", x[i],
                              y[i], i);
            float want = x[i] > 0.0f ? 0.5f + dy[i] : 0.5f;
            ck_assert_msg(dx[i] == want, "relu backward at x = %g: dx %g, expected %g", x[i],
                          dx[i], want);
        }
        ck_ok(ldm_act_forward(C, LDM_ACT_RELU, &tx, &tx)); /* in place */
        for (int i = 0; i < N; i++)
            ck_assert_msg(memcmp(&x[i], &y[i], sizeof(float)) == 0 || (x[i] == 0 && y[i] == 0),
                          "in place relu differs at %d: %g, %g", i, x[i], y[i]);
        ldm_ctx_close(&C);
    }
}
END_TEST

static void case_geglu(const char *cs, const json_t *m)
{
    (void)m;
    struct ldm_tensor h = in(cs, "h"), dy = in(cs, "dy"), y = out(cs, "y"), dh = grad(cs, "dh");
    RUN(ldm_geglu_forward(C, &y, &h));
    expect_out(cs, "y", &y);
    RUN(ldm_geglu_backward(C, &dh, &dy, &h));
    expect_grad(cs, "dh", &dh);
}

static void case_softmax(const char *cs, const json_t *m)
{
    (void)m;
    struct ldm_tensor x = in(cs, "x"), dy = in(cs, "dy"), y = out(cs, "y"), dx = grad(cs, "dx");
    RUN(ldm_softmax_forward(C, &y, &x));
    expect_out(cs, "y", &y);
    RUN(ldm_softmax_backward(C, &dx, &dy, &y));
    expect_grad(cs, "dx", &dx);
}

/* ---- attention ------------------------------------------------------------------------------- */

static void case_attention(const char *cs, const json_t *m)
{
    struct ldm_tensor q = in(cs, "q"), k = in(cs, "k"), v = in(cs, "v"), dout = in(cs, "dout");
    struct ldm_tensor mask = mbool(m, "masked") ? in(cs, "key_mask") : q;
    struct ldm_attn_opts o = {(int)mint(m, "heads"), (float)mreal(m, "scale"), mbool(m, "causal"),
                              mbool(m, "masked") ? &mask : NULL, 0};
    struct ldm_tensor o_ = out(cs, "out"), lse = out(cs, "lse");
    RUN(ldm_attention_forward(C, &o_, &lse, &q, &k, &v, &o));
    expect_out(cs, "out", &o_);
    expect_out(cs, "lse", &lse);
    struct ldm_tensor dq = grad(cs, "dq"), dk = grad(cs, "dk"), dv = grad(cs, "dv");
    RUN(ldm_attention_backward(C, &dq, &dk, &dv, &dout, &q, &k, &v, &o_, &lse, &o));
    expect_grad(cs, "dq", &dq);
    expect_grad(cs, "dk", &dk);
    expect_grad(cs, "dv", &dv);
}

/* ---- resampling ------------------------------------------------------------------------------ */

static void case_upsample(const char *cs, const json_t *m)
{
    (void)m;
    struct ldm_tensor x = in(cs, "x"), dy = in(cs, "dy"), y = out(cs, "y"), dx = grad(cs, "dx");
    RUN(ldm_upsample_nearest2x_forward(C, &y, &x));
    expect_out(cs, "y", &y);
    RUN(ldm_upsample_nearest2x_backward(C, &dx, &dy));
    expect_grad(cs, "dx", &dx);
}

static struct ldm_pool_opts pool_opts(const json_t *m)
{
    struct ldm_pool_opts o = {(int)mint(m, "kernel_h"), (int)mint(m, "kernel_w"),
                              (int)mint(m, "stride_h"), (int)mint(m, "stride_w"),
                              (int)mint(m, "pad_h"), (int)mint(m, "pad_w"),
                              mbool(m, "count_include_pad")};
    return o;
}

static void case_avg_pool(const char *cs, const json_t *m)
{
    struct ldm_pool_opts o = pool_opts(m);
    struct ldm_tensor x = in(cs, "x"), dy = in(cs, "dy"), y = out(cs, "y"), dx = grad(cs, "dx");
    RUN(ldm_avg_pool2d_forward(C, &y, &x, &o));
    expect_out(cs, "y", &y);
    RUN(ldm_avg_pool2d_backward(C, &dx, &dy, &o));
    expect_grad(cs, "dx", &dx);
}

static void case_max_pool(const char *cs, const json_t *m)
{
    struct ldm_pool_opts o = pool_opts(m);
    struct ldm_tensor x = in(cs, "x"), dy = in(cs, "dy"), y = out(cs, "y"), dx = grad(cs, "dx");
    RUN(ldm_max_pool2d_forward(C, &y, &x, &o));
    expect_out(cs, "y", &y);
    RUN(ldm_max_pool2d_backward(C, &dx, &dy, &x, &o));
    expect_grad(cs, "dx", &dx);
}

static void case_adaptive_pool(const char *cs, const json_t *m)
{
    (void)m;
    struct ldm_tensor x = in(cs, "x"), dy = in(cs, "dy"), y = out(cs, "y"), dx = grad(cs, "dx");
    RUN(ldm_adaptive_avg_pool2d_forward(C, &y, &x));
    expect_out(cs, "y", &y);
    RUN(ldm_adaptive_avg_pool2d_backward(C, &dx, &dy));
    expect_grad(cs, "dx", &dx);
}

static void case_bilinear(const char *cs, const json_t *m)
{
    int aa = mbool(m, "antialias");
    struct ldm_tensor x = in(cs, "x"), dy = in(cs, "dy"), y = out(cs, "y"), dx = grad(cs, "dx");
    RUN(ldm_bilinear_forward(C, &y, &x, aa));
    expect_out(cs, "y", &y);
    RUN(ldm_bilinear_backward(C, &dx, &dy, aa));
    expect_grad(cs, "dx", &dx);
}

/* ---- layout ---------------------------------------------------------------------------------- */

static void case_concat(const char *cs, const json_t *m)
{
    int n = (int)mint(m, "parts");
    struct ldm_tensor xs[8], dxs[8];
    const struct ldm_tensor *px[8], *pdx[8];
    char names[8][16], dnames[8][16];
    ck_assert_int_le(n, 8);
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "x%d", i);
        snprintf(dnames[i], sizeof dnames[i], "dx%d", i);
        xs[i] = in(cs, names[i]);
        dxs[i] = grad(cs, dnames[i]);
        px[i] = &xs[i];
        pdx[i] = &dxs[i];
    }
    struct ldm_tensor y = out(cs, "y"), dy = in(cs, "dy");
    RUN(ldm_concat_forward(C, &y, px, n));
    expect_out(cs, "y", &y);
    RUN(ldm_concat_backward(C, pdx, n, &dy));
    for (int i = 0; i < n; i++)
        expect_grad(cs, dnames[i], &dxs[i]);
}

static void case_transpose(const char *cs, const json_t *m)
{
    (void)m;
    struct ldm_tensor x = in(cs, "x"), dy = in(cs, "dy"), y = out(cs, "y"), dx = grad(cs, "dx");
    RUN(ldm_transpose_forward(C, &y, &x));
    expect_out(cs, "y", &y);
    RUN(ldm_transpose_backward(C, &dx, &dy));
    expect_grad(cs, "dx", &dx);
}

static void case_add(const char *cs, const json_t *m)
{
    float alpha = (float)mreal(m, "alpha"), beta = (float)mreal(m, "beta");
    char name[256];
    snprintf(name, sizeof name, "%s/b", cs);
    int two = ldm_st_get(g_st, name) != NULL;
    struct ldm_tensor a = in(cs, "a"), dy = in(cs, "dy"), y = out(cs, "y");
    struct ldm_tensor b = two ? in(cs, "b") : a;
    RUN(ldm_add_forward(C, &y, alpha, &a, beta, two ? &b : NULL));
    expect_out(cs, "y", &y);
    struct ldm_tensor da = grad(cs, "da"), db = two ? grad(cs, "db") : a;
    RUN(ldm_add_backward(C, &da, alpha, two ? &db : NULL, beta, &dy));
    expect_grad(cs, "da", &da);
    if (two)
        expect_grad(cs, "db", &db);
}

static void case_add_bcast(const char *cs, const json_t *m)
{
    (void)m;
    struct ldm_tensor x = in(cs, "x"), v = in(cs, "v"), dy = in(cs, "dy"), y = out(cs, "y");
    RUN(ldm_add_bcast_forward(C, &y, &x, &v));
    expect_out(cs, "y", &y);
    struct ldm_tensor dx = grad(cs, "dx"), dv = grad(cs, "dv");
    RUN(ldm_add_bcast_backward(C, &dx, &dv, &dy));
    expect_grad(cs, "dx", &dx);
    expect_grad(cs, "dv", &dv);
}

/* ---- embeddings and training ----------------------------------------------------------------- */

static void case_timestep(const char *cs, const json_t *m)
{
    struct ldm_temb_opts o = {mbool(m, "flip_sin_to_cos"), (float)mreal(m, "downscale_freq_shift"),
                              (float)mreal(m, "scale"), (float)mreal(m, "max_period")};
    struct ldm_tensor t = in(cs, "t"), y = out(cs, "y");
    RUN(ldm_timestep_embedding(C, &y, &t, &o));
    expect_out(cs, "y", &y);
}

static void case_embedding(const char *cs, const json_t *m)
{
    (void)m;
    struct ldm_tensor ids = in(cs, "ids"), table = in(cs, "table"), dy = in(cs, "dy");
    struct ldm_tensor y = out(cs, "y"), dt = grad(cs, "dtable");
    RUN(ldm_embedding_forward(C, &y, &ids, &table));
    expect_out(cs, "y", &y);
    RUN(ldm_embedding_backward(C, &dt, &dy, &ids));
    expect_grad(cs, "dtable", &dt);
}

static void case_mse(const char *cs, const json_t *m)
{
    int weighted = mbool(m, "weighted");
    struct ldm_tensor p = in(cs, "pred"), t = in(cs, "target"), dl = in(cs, "dloss");
    struct ldm_tensor w = weighted ? in(cs, "weights") : p, loss = out(cs, "loss");
    RUN(ldm_mse_loss_forward(C, &loss, &p, &t, weighted ? &w : NULL));
    expect_out(cs, "loss", &loss);
    struct ldm_tensor dp = grad(cs, "dpred"), dt = grad(cs, "dtarget");
    RUN(ldm_mse_loss_backward(C, &dp, &dt, ((float *)dl.data)[0], &p, &t, weighted ? &w : NULL));
    expect_grad(cs, "dpred", &dp);
    expect_grad(cs, "dtarget", &dt);
}

static void case_clip(const char *cs, const json_t *m)
{
    int n = (int)mint(m, "parts");
    struct ldm_tensor g[8];
    char name[16];
    ck_assert_int_le(n, 8);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "g%d", i);
        g[i] = in(cs, name);
    }
    float norm = -1.0f;
    struct ldm_tensor nt = out(cs, "norm");
    RUN(ldm_clip_grad_norm(C, g, n, (float)mreal(m, "max_norm"), &norm));
    ((float *)nt.data)[0] = norm;
    expect_out(cs, "norm", &nt);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "out%d", i);
        expect_out(cs, name, &g[i]);
    }
}

static void case_adamw(const char *cs, const json_t *m)
{
    struct ldm_tensor p = in(cs, "param"), mm = filled(cs, "param", 0.0f),
                      v = filled(cs, "param", 0.0f);
    struct ldm_adamw_opts o = {mreal(m, "lr"), mreal(m, "beta1"), mreal(m, "beta2"),
                               mreal(m, "eps"), mreal(m, "weight_decay"), 0};
    char name[16];
    for (int s = 0; s < (int)mint(m, "steps"); s++) {
        snprintf(name, sizeof name, "grad%d", s);
        struct ldm_tensor g = in(cs, name);
        o.step = s + 1;
        RUN(ldm_adamw_step(C, &p, &g, &mm, &v, &o));
    }
    expect_out(cs, "out_param", &p);
    expect_out(cs, "out_m", &mm);
    expect_out(cs, "out_v", &v);
}

/* ---- the suite ------------------------------------------------------------------------------- */

#define OP_TEST(op)                                                                                \
    START_TEST(test_##op)                                                                          \
    {                                                                                              \
        for_cases(#op, case_##op);                                                                 \
    }                                                                                              \
    END_TEST

OP_TEST(linear)
OP_TEST(bmm)
OP_TEST(conv2d)
OP_TEST(group_norm)
OP_TEST(layer_norm)
OP_TEST(act)
OP_TEST(geglu)
OP_TEST(softmax)
OP_TEST(attention)
OP_TEST(upsample)
OP_TEST(avg_pool)
OP_TEST(max_pool)
OP_TEST(adaptive_pool)
OP_TEST(bilinear)
OP_TEST(concat)
OP_TEST(transpose)
OP_TEST(add)
OP_TEST(add_bcast)
OP_TEST(timestep)
OP_TEST(embedding)
OP_TEST(mse)
OP_TEST(clip)
OP_TEST(adamw)

Suite *suite_ops(void);

Suite *suite_ops(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("golden");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, NULL, test_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_linear);
    tcase_add_test(tc, test_bmm);
    tcase_add_test(tc, test_conv2d);
    tcase_add_test(tc, test_group_norm);
    tcase_add_test(tc, test_layer_norm);
    tcase_add_test(tc, test_act);
    tcase_add_test(tc, test_relu);
    tcase_add_test(tc, test_geglu);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_upsample);
    tcase_add_test(tc, test_avg_pool);
    tcase_add_test(tc, test_max_pool);
    tcase_add_test(tc, test_adaptive_pool);
    tcase_add_test(tc, test_bilinear);
    tcase_add_test(tc, test_concat);
    tcase_add_test(tc, test_transpose);
    tcase_add_test(tc, test_add);
    tcase_add_test(tc, test_add_bcast);
    tcase_add_test(tc, test_timestep);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_mse);
    tcase_add_test(tc, test_clip);
    tcase_add_test(tc, test_adamw);
    suite_add_tcase(s, tc);
    return s;
}

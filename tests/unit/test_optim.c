/* test_optim.c — the optimiser pieces of trainerd against their references, from
 * tests/golden/optim.py run once per suite: learning-rate schedules (diffusers'
 * lambdas on torch's LambdaLR), the EMA decay schedule and update (diffusers'
 * EMAModel on torch float32), and the 8-bit AdamW step (a numpy rewrite of
 * bitsandbytes' block-wise CUDA kernel).
 *
 * Tolerances: rates and decays 1e-12 relative (they come out bit-exact); the
 * EMA op and EMA steps bit-exact (the op takes the decay as a double and
 * rounds 1 − decay to float as torch does); adamw8 params 1e-6 relative, codes and absmax
 * equal. Op cases run on 1 thread and on 3. A second test case checks the
 * error paths and that results do not depend on the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "nn/backend.h"
#include "safetensors.h"
#include "testutil.h"
#include "trainerd/ema.h"
#include "trainerd/lr.h"

#define PYTHON "/usr/bin/python3"
#define SCRIPT "tests/golden/optim.py"
#define EXACT_TOL 1e-12
#define PARAM_TOL 1e-6

static char *g_dir;
static struct ldm_st *g_st;
static struct ldm_ctx *C;
static void *g_allocs[256];
static int g_nallocs;

/* ---- fixtures and golden tensors -------------------------------------------------------- */

static void suite_setup(void)
{
    g_dir = tu_tmpdir();
    char path[4096], cmd[8192];
    snprintf(path, sizeof path, "%s/optim.safetensors", g_dir);
    snprintf(cmd, sizeof cmd, "%s %s '%s' 2>'%s/golden.err'", PYTHON, SCRIPT, path, g_dir);
    int st = system(cmd);
    ck_assert_msg(st == 0, "%s failed (status %d); see %s/golden.err: the optimiser tests need "
                           "Debian's python3-torch and numpy at %s", cmd, st, g_dir, PYTHON);
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

static void test_teardown_allocs(void)
{
    for (int i = 0; i < g_nallocs; i++)
        free(g_allocs[i]);
    g_nallocs = 0;
}

static void test_teardown(void)
{
    test_teardown_allocs();
    ldm_ctx_close(&C);
}

static void *talloc(size_t bytes)
{
    ck_assert_int_lt(g_nallocs, (int)(sizeof g_allocs / sizeof g_allocs[0]));
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    ck_assert_ptr_nonnull(p);
    g_allocs[g_nallocs++] = p;
    return p;
}

static const struct ldm_st_tensor *ref(const char *cs, const char *fmt, int i)
{
    char role[64], name[256];
    snprintf(role, sizeof role, fmt, i);
    snprintf(name, sizeof name, "%s/%s", cs, role);
    const struct ldm_st_tensor *t = ldm_st_get(g_st, name);
    ck_assert_msg(t != NULL, "the golden file has no tensor %s", name);
    return t;
}

/* A writable copy of a golden tensor, as a descriptor named `name`. */
static struct ldm_tensor copy_of(const struct ldm_st_tensor *r, const char *name)
{
    void *p = talloc(r->nbytes);
    memcpy(p, r->data, r->nbytes);
    struct ldm_tensor t = ldm_tensor_view(p, r->dtype, r->ndim, r->shape);
    t.name = name;
    return t;
}

static struct ldm_tensor new_tensor(int dtype, int64_t n, const char *name)
{
    struct ldm_tensor t = ldm_tensor_view(talloc((size_t)n * ldm_dtype_size(dtype) + 1), dtype,
                                          1, &n);
    memset(t.data, 0, (size_t)n * ldm_dtype_size(dtype));
    t.name = name;
    return t;
}

/* ---- metadata -------------------------------------------------------------------------- */

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

/* Run fn on every case of `op`; with_ctx: once on 1 thread and once on 3. */
static int for_cases(const char *op, case_fn fn, int with_ctx)
{
    int count = 0;
    for (size_t i = 0; i < ldm_st_meta_count(g_st); i++) {
        const char *val, *cs = ldm_st_meta_at(g_st, i, &val), *mop;
        json_t *m;
        ck_ok(ldm_json_parse_object(val, strlen(val), cs, &m));
        ck_ok(ldm_json_get_str(m, "op", &mop, ""));
        if (strcmp(mop, op) == 0) {
            for (int threads = 1; threads <= (with_ctx ? 3 : 1); threads += 2) {
                if (with_ctx)
                    ck_ok(ldm_ctx_open(&C, "cpu", threads));
                fn(cs, m);
                ldm_ctx_close(&C);
            }
            count++;
        }
        json_decref(m);
    }
    ck_assert_msg(count > 0, "no golden case for %s", op);
    return count;
}

/* Distance in units in the last place (+0 and −0 are the same). */
static int64_t ulps(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    int64_t ka = ia < 0 ? -(int64_t)(ia & 0x7fffffff) : ia;
    int64_t kb = ib < 0 ? -(int64_t)(ib & 0x7fffffff) : ib;
    return ka > kb ? ka - kb : kb - ka;
}

static double rel_err(double ours, double want)
{
    if (ours == want)
        return 0.0;
    return want != 0.0 ? fabs(ours - want) / fabs(want) : INFINITY;
}

/* ---- learning rates ------------------------------------------------------------------------ */

static double g_worst;
static int64_t g_total, g_exact, g_within, g_worst_ulp;

static void case_lr(const char *cs, const json_t *m)
{
    const char *name;
    int kind;
    ck_ok(ldm_json_get_str(m, "kind", &name, ""));
    ck_ok(ldm_lr_parse(name, &kind));
    struct ldm_lr s;
    ldm_lr_init(&s, kind, mreal(m, "base_lr"), mint(m, "warmup"), mint(m, "total"));
    s.cycles = mreal(m, "cycles");
    s.power = mreal(m, "power");
    s.lr_end = mreal(m, "lr_end");
    ck_ok(ldm_lr_check(&s));
    const struct ldm_st_tensor *r = ref(cs, "values", 0);
    const double *want = r->data;
    for (int64_t k = 1; k <= mint(m, "steps"); k++) {
        double got = ldm_lr_at(&s, k), e = rel_err(got, want[k - 1]);
        ck_assert_msg(e <= EXACT_TOL, "%s (%s) step %lld: ours %.17g, torch %.17g", cs, name,
                      (long long)k, got, want[k - 1]);
        g_worst = fmax(g_worst, e);
        g_exact += got == want[k - 1];
        g_total++;
    }
}

START_TEST(test_lr)
{
    g_worst = 0.0, g_total = g_exact = 0;
    int n = for_cases("lr", case_lr, 0);
    printf("optim: lr        %2d schedules, %lld rates, max relative error %.2e, bit-exact %lld\n",
           n, (long long)g_total, g_worst, (long long)g_exact);
}
END_TEST

/* ---- EMA ------------------------------------------------------------------------------------- */

static void ema_cfg_of(const json_t *m, struct ldm_ema_cfg *cfg)
{
    cfg->decay = mreal(m, "decay");
    cfg->min_decay = mreal(m, "min_decay");
    cfg->update_after_step = mint(m, "update_after_step");
    cfg->use_warmup = mbool(m, "use_ema_warmup");
    cfg->inv_gamma = mreal(m, "inv_gamma");
    cfg->power = mreal(m, "power");
    ck_ok(ldm_ema_cfg_check(cfg));
}

/* count: add to the decay statistics (the EMA steps keep their own). */
static void check_decay(const char *cs, int64_t step, double got, double want, int count)
{
    double e = rel_err(got, want);
    ck_assert_msg(e <= EXACT_TOL, "%s step %lld: decay ours %.17g, diffusers %.17g", cs,
                  (long long)step, got, want);
    if (!count)
        return;
    g_worst = fmax(g_worst, e);
    g_exact += got == want;
    g_total++;
}

static void case_emadecay(const char *cs, const json_t *m)
{
    struct ldm_ema_cfg cfg;
    ema_cfg_of(m, &cfg);
    const struct ldm_st_tensor *st = ref(cs, "steps", 0), *vt = ref(cs, "values", 0);
    const int64_t *steps = st->data;
    for (int64_t i = 0; i < st->shape[0]; i++)
        check_decay(cs, steps[i], ldm_ema_decay_at(&cfg, steps[i]), ((const double *)vt->data)[i],
                    1);
}

START_TEST(test_ema_decay)
{
    g_worst = 0.0, g_total = g_exact = 0;
    int n = for_cases("emadecay", case_emadecay, 0);
    printf("optim: ema decay %2d configs, %lld steps, max relative error %.2e, bit-exact %lld\n",
           n, (long long)g_total, g_worst, (long long)g_exact);
}
END_TEST

static void case_emaop(const char *cs, const json_t *m)
{
    struct ldm_tensor e = copy_of(ref(cs, "ema", 0), "ema"), p = copy_of(ref(cs, "param", 0), "p");
    ck_ok(ldm_ema_update(C, &e, &p, mreal(m, "decay")));
    const float *want = ref(cs, "out", 0)->data, *got = e.data;
    for (size_t i = 0; i < ldm_tensor_numel(&e); i++)
        ck_assert_msg(memcmp(&got[i], &want[i], 4) == 0, "%s[%zu] (threads %d): ours %.9g, "
                      "torch %.9g", cs, i, C->threads, (double)got[i], (double)want[i]);
    g_total += (int64_t)ldm_tensor_numel(&e);
}

START_TEST(test_ema_op)
{
    g_total = 0;
    int n = for_cases("emaop", case_emaop, 1);
    printf("optim: ema op    %2d decays, %lld elements, bit-exact\n", n, (long long)g_total);
}
END_TEST

/* Compare the EMA after step s, computed from diffusers' EMA before it
 * (prev), with diffusers': bit-exact is required; the printed counts say so. */
static void check_ema_step(const char *cs, int s, int t, const struct ldm_tensor *e,
                           const float *prev, const float *param)
{
    char fmt[32];
    snprintf(fmt, sizeof fmt, "out_%d_%%d", s);
    const float *want = ref(cs, fmt, t)->data, *got = e->data;
    for (size_t i = 0; i < ldm_tensor_numel(e); i++) {
        int64_t u = ulps(got[i], want[i]);
        (void)prev, (void)param;
        ck_assert_msg(u == 0, "%s step %d tensor %d [%zu]: ours "
                      "%.9g, torch %.9g (%lld ulp)", cs, s + 1, t, i, (double)got[i],
                      (double)want[i], (long long)u);
        g_worst_ulp = u > g_worst_ulp ? u : g_worst_ulp;
        g_exact += u == 0;
        g_within += u <= 1;
        g_total++;
    }
}

/* Each step starts from diffusers' EMA of the step before (init for the
 * first), so that the errors of one step are seen alone. */
static void case_ema(const char *cs, const json_t *m)
{
    struct ldm_ema_cfg cfg;
    ema_cfg_of(m, &cfg);
    int nt = (int)mint(m, "tensors");
    struct ldm_tensor ema[4], par[4];
    const float *prev[4];
    ck_assert_int_le(nt, 4);
    const double *decays = ref(cs, "decay", 0)->data;
    for (int s = 0; s < (int)mint(m, "steps"); s++) {
        char pfmt[32], efmt[32];
        snprintf(pfmt, sizeof pfmt, "param_%d_%%d", s);
        snprintf(efmt, sizeof efmt, "out_%d_%%d", s - 1);
        for (int t = 0; t < nt; t++) {
            const struct ldm_st_tensor *r = s ? ref(cs, efmt, t) : ref(cs, "init_%d", t);
            ema[t] = copy_of(r, "ema");
            prev[t] = r->data;
            par[t] = copy_of(ref(cs, pfmt, t), "param");
        }
        double d = ldm_ema_decay_at(&cfg, s + 1);
        check_decay(cs, s + 1, d, decays[s], 0);
        ck_ok(ldm_ema_apply(C, ema, par, nt, d));
        for (int t = 0; t < nt; t++)
            check_ema_step(cs, s, t, &ema[t], prev[t], par[t].data);
        test_teardown_allocs();
    }
}

START_TEST(test_ema_steps)
{
    g_worst = 0.0, g_total = g_exact = g_within = g_worst_ulp = 0;
    int n = for_cases("ema", case_ema, 1);
    printf("optim: ema steps %2d configs (x2 threads), %lld values: bit-exact %lld, "
           "<= 1 ulp %lld, max %lld ulp\n", n, (long long)g_total,
           (long long)g_exact, (long long)g_within, (long long)g_worst_ulp);
}
END_TEST

/* ---- 8-bit AdamW --------------------------------------------------------------------------- */

struct adam8_state {
    struct ldm_tensor p, mq, vq, ma, va;
};

static void adam8_init(const char *cs, const json_t *m, struct adam8_state *s)
{
    int64_t n = mint(m, "n"), nb = (n + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK;
    s->p = copy_of(ref(cs, "param", 0), "param");
    if (mbool(m, "init_state")) {
        s->mq = copy_of(ref(cs, "m_q_init", 0), "m_q");
        s->vq = copy_of(ref(cs, "v_q_init", 0), "v_q");
        s->ma = copy_of(ref(cs, "m_absmax_init", 0), "m_absmax");
        s->va = copy_of(ref(cs, "v_absmax_init", 0), "v_absmax");
        return;
    }
    s->mq = new_tensor(LDM_DT_U8, n, "m_q");
    s->vq = new_tensor(LDM_DT_U8, n, "v_q");
    s->ma = new_tensor(LDM_DT_F32, nb, "m_absmax");
    s->va = new_tensor(LDM_DT_F32, nb, "v_absmax");
    if (mbool(m, "garbage_fresh")) { /* step 1 must ignore whatever the state holds */
        for (int64_t i = 0; i < n; i++) {
            ((uint8_t *)s->mq.data)[i] = (uint8_t)(i * 37 + 11);
            ((uint8_t *)s->vq.data)[i] = (uint8_t)(i * 91 + 5);
        }
        for (int64_t b = 0; b < nb; b++)
            ((float *)s->ma.data)[b] = ((float *)s->va.data)[b] = 1.5f + (float)b;
    }
}

/* Compare the state after step s with the reference's. */
static void adam8_compare(const char *cs, int s, const struct adam8_state *st)
{
    const float *wp = ref(cs, "param_%d", s)->data, *gp = st->p.data;
    for (size_t i = 0; i < ldm_tensor_numel(&st->p); i++) {
        double e = rel_err(gp[i], wp[i]);
        ck_assert_msg(e <= PARAM_TOL, "%s step %d param[%zu] (threads %d): ours %.9g, "
                      "reference %.9g", cs, s + 1, i, C->threads, (double)gp[i], (double)wp[i]);
        g_worst = fmax(g_worst, e);
        g_exact += memcmp(&gp[i], &wp[i], 4) == 0;
        g_total++;
    }
    const char *roles[4] = {"m_q_%d", "v_q_%d", "m_absmax_%d", "v_absmax_%d"};
    const struct ldm_tensor *ours[4] = {&st->mq, &st->vq, &st->ma, &st->va};
    for (int r = 0; r < 4; r++) {
        const struct ldm_st_tensor *w = ref(cs, roles[r], s);
        size_t esz = ldm_dtype_size(w->dtype);
        for (size_t i = 0; i < w->nbytes / esz; i++)
            ck_assert_msg(memcmp((const char *)ours[r]->data + i * esz,
                                 (const char *)w->data + i * esz, esz) == 0,
                          "%s step %d %s[%zu] (threads %d) differs from the reference", cs, s + 1,
                          ours[r]->name, i, C->threads);
    }
}

#define RUN(call)                                                                                  \
    do {                                                                                           \
        size_t need_;                                                                              \
        ldm_ctx_plan_begin(C);                                                                     \
        ck_ok(call);                                                                               \
        ldm_ctx_plan_end(C, &need_);                                                               \
        ck_ok(ldm_ctx_reserve(C, need_));                                                          \
        ck_ok(call);                                                                               \
    } while (0)

static void case_adamw8(const char *cs, const json_t *m)
{
    struct adam8_state st;
    adam8_init(cs, m, &st);
    struct ldm_adamw_opts o = {mreal(m, "lr"), mreal(m, "beta1"), mreal(m, "beta2"),
                               mreal(m, "eps"), mreal(m, "weight_decay"), 0};
    for (int s = 0; s < (int)mint(m, "steps"); s++) {
        struct ldm_tensor g = copy_of(ref(cs, "grad_%d", s), "grad");
        o.step = mint(m, "first_step") + s;
        RUN(ldm_adamw8_step(C, &st.p, &g, &st.mq, &st.vq, &st.ma, &st.va, &o));
        adam8_compare(cs, s, &st);
    }
}

START_TEST(test_adamw8)
{
    g_worst = 0.0, g_total = g_exact = 0;
    int n = for_cases("adamw8", case_adamw8, 1);
    printf("optim: adamw8    %2d cases (x2 threads), %lld params: max relative error %.2e, "
           "bit-exact %lld; codes and absmax equal\n", n, (long long)g_total, g_worst,
           (long long)g_exact);
}
END_TEST

/* Our formula's maps against the ones built with torch.linspace, as
 * bitsandbytes builds them (informational: they differ in the last bits). */
START_TEST(test_maps)
{
    const char *names[2] = {"signed", "unsigned"};
    for (int k = 0; k < 2; k++) {
        const float *ours = ref("maps", names[k], 0)->data;
        const float *theirs = ref("maps", k ? "torch_unsigned" : "torch_signed", 0)->data;
        int differ = 0;
        int64_t worst = 0;
        for (int i = 0; i < 256; i++) {
            int64_t u = ulps(ours[i], theirs[i]);
            differ += u != 0;
            worst = u > worst ? u : worst;
        }
        printf("optim: %-8s map: %d of 256 codes differ from torch.linspace's, by <= %lld ulp\n",
               names[k], differ, (long long)worst);
        ck_assert_msg(worst <= 4, "the %s map is %lld ulp from bitsandbytes'", names[k],
                      (long long)worst);
    }
}
END_TEST

/* ---- error paths and threads ------------------------------------------------------------------ */

struct a8 {
    struct ldm_tensor p, g, mq, vq, ma, va;
    struct ldm_adamw_opts o;
};

static void a8_make(struct a8 *a, int64_t n)
{
    int64_t nb = (n + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK;
    a->p = new_tensor(LDM_DT_F32, n, "unet.w");
    a->g = new_tensor(LDM_DT_F32, n, "unet.w.grad");
    a->mq = new_tensor(LDM_DT_U8, n, "unet.w.m");
    a->vq = new_tensor(LDM_DT_U8, n, "unet.w.v");
    a->ma = new_tensor(LDM_DT_F32, nb, "unet.w.m_absmax");
    a->va = new_tensor(LDM_DT_F32, nb, "unet.w.v_absmax");
    for (int64_t i = 0; i < n; i++) {
        ((float *)a->p.data)[i] = sinf((float)i * 0.37f);
        ((float *)a->g.data)[i] = cosf((float)i * 1.3f) * (float)(1 + i % 97) * 1e-3f;
    }
    a->o = (struct ldm_adamw_opts){1e-3, 0.9, 0.999, 1e-8, 1e-2, 1};
}

static int a8_run(struct a8 *a)
{
    return ldm_adamw8_step(C, &a->p, &a->g, &a->mq, &a->vq, &a->ma, &a->va, &a->o);
}

START_TEST(test_adamw8_errors)
{
    ck_ok(ldm_ctx_open(&C, "cpu", 1));
    struct a8 a;
    a8_make(&a, 1000);
    ck_ok(a8_run(&a));
    a.mq.dtype = LDM_DT_F32;
    ck_fails_with(a8_run(&a), LDM_EINVAL, "unet.w.m is F32; 8-bit codes must be U8");
    a.mq.dtype = LDM_DT_U8;
    a.g.dtype = LDM_DT_F16;
    ck_fails_with(a8_run(&a), LDM_EINVAL, "unet.w.grad is F16");
    a.g.dtype = LDM_DT_F32;
    a.p.dtype = LDM_DT_BF16; /* a dtype the CPU emulates, but the optimizer takes F32 only */
    ck_fails_with(a8_run(&a), LDM_EINVAL, "unet.w must be F32");
    a.p.dtype = LDM_DT_F64;
    ck_fails_with(a8_run(&a), LDM_EUNSUPPORTED, "unet.w is F64");
    a.p.dtype = LDM_DT_F32;
    a.ma.shape[0] = 3;
    ck_fails_with(a8_run(&a), LDM_EINVAL, "unet.w.m_absmax has 3 elements, expected 4");
    a.ma.shape[0] = 4;
    a.va.dtype = LDM_DT_F16;
    ck_fails_with(a8_run(&a), LDM_EINVAL, "unet.w.v_absmax must be F32");
    a.va.dtype = LDM_DT_F32;
    a.vq.shape[0] = 999;
    ck_fails_with(a8_run(&a), LDM_EINVAL, "unet.w.v has shape [999], expected [1000]");
    a.vq.shape[0] = 1000;
    ck_fails_with(ldm_adamw8_step(C, &a.p, &a.g, NULL, &a.vq, &a.ma, &a.va, &a.o), LDM_EINVAL,
                  "m_q is required");
    a.g.data = NULL;
    ck_fails_with(a8_run(&a), LDM_EINVAL, "unet.w.grad has no data");
    ldm_ctx_plan_begin(C); /* while planning, tensors need no data */
    ck_ok(a8_run(&a));
    size_t need;
    ldm_ctx_plan_end(C, &need);
    ck_assert_uint_eq(need, 0);
    a.g.data = a.p.data;
    a.o.step = 0;
    ck_fails_with(a8_run(&a), LDM_EINVAL, "step >= 1");
    a.o.step = 2, a.o.beta2 = 1.0;
    ck_fails_with(a8_run(&a), LDM_EINVAL, "bad hyperparameters");
    ck_fails_with(ldm_adamw8_step(C, &a.p, &a.g, &a.mq, &a.vq, &a.ma, &a.va, NULL), LDM_EINVAL,
                  "adamw8_step: options");
}
END_TEST

START_TEST(test_ema_errors)
{
    ck_ok(ldm_ctx_open(&C, "cpu", 1));
    struct ldm_tensor e = new_tensor(LDM_DT_F32, 10, "ema.w"), p = new_tensor(LDM_DT_F32, 10, "w");
    struct ldm_tensor q = new_tensor(LDM_DT_F32, 9, "w9");
    ck_ok(ldm_ema_update(C, &e, &p, 0.5f));
    ck_fails_with(ldm_ema_update(C, &e, &q, 0.5f), LDM_EINVAL, "w9 has shape [9], expected [10]");
    ck_fails_with(ldm_ema_update(C, &e, &p, 1.5f), LDM_EINVAL, "decay 1.5 is outside [0, 1]");
    ck_fails_with(ldm_ema_update(C, &e, &p, NAN), LDM_EINVAL, "ema_update: decay nan");
    p.dtype = LDM_DT_F16;
    ck_fails_with(ldm_ema_update(C, &e, &p, 0.5f), LDM_EINVAL, "w is F16");
    p.dtype = LDM_DT_F32;
    struct ldm_tensor es[2] = {e, e}, ps[2] = {p, q};
    ck_fails_with(ldm_ema_apply(C, es, ps, 2, 0.9), LDM_EINVAL, "w9 has shape [9]");
    ck_fails_with(ldm_ema_apply(C, es, ps, 1, -0.1), LDM_EINVAL, "decay -0.1");
    ck_ok(ldm_ema_apply(C, es, ps, 0, 0.9));
    struct ldm_ema_cfg cfg;
    ldm_ema_cfg_default(&cfg);
    ck_ok(ldm_ema_cfg_check(&cfg));
    ck_assert(ldm_ema_decay_at(&cfg, 1) == 0.0);
    ck_assert(ldm_ema_decay_at(&cfg, 2) == 2.0 / 11.0);
    cfg.decay = 1.01;
    ck_fails_with(ldm_ema_cfg_check(&cfg), LDM_ECONFIG, "ema_decay: 1.01");
    cfg.decay = 0.9999, cfg.use_warmup = 1, cfg.inv_gamma = 0.0;
    ck_fails_with(ldm_ema_cfg_check(&cfg), LDM_ECONFIG, "ema_inv_gamma");
}
END_TEST

START_TEST(test_lr_errors)
{
    int kind = -1;
    ck_fails_with(ldm_lr_parse("cosine_restarts", &kind), LDM_ECONFIG,
                  "lr_scheduler: unknown schedule \"cosine_restarts\"");
    ck_fails_with(ldm_lr_parse("piecewise_constant", &kind), LDM_ECONFIG, "not supported");
    ck_ok(ldm_lr_parse("cosine_with_restarts", &kind));
    ck_assert_int_eq(kind, LDM_LR_COSINE_WITH_RESTARTS);
    ck_assert_str_eq(ldm_lr_name(kind), "cosine_with_restarts");
    struct ldm_lr s;
    ldm_lr_init(&s, LDM_LR_POLYNOMIAL, 1e-4, 10, 10);
    ck_fails_with(ldm_lr_check(&s), LDM_ECONFIG, "max_train_steps: 10 must exceed");
    s.total_steps = 100, s.lr_end = 2e-4;
    ck_fails_with(ldm_lr_check(&s), LDM_ECONFIG, "lr_end");
    ldm_lr_init(&s, LDM_LR_LINEAR, -1.0, 0, 10);
    ck_fails_with(ldm_lr_check(&s), LDM_ECONFIG, "learning_rate");
    ldm_lr_init(&s, LDM_LR_LINEAR, 1.0, -1, 10);
    ck_fails_with(ldm_lr_check(&s), LDM_ECONFIG, "lr_warmup_steps");
    ldm_lr_init(&s, LDM_LR_COSINE, 1.0, 0, 10);
    ck_assert(s.cycles == 0.5);
    ck_assert(ldm_lr_at(&s, 0) == 1.0 && ldm_lr_at(&s, 1) == 1.0);
    ldm_lr_init(&s, LDM_LR_LINEAR, 2.0, 4, 10);
    ck_assert(ldm_lr_at(&s, 1) == 0.0 && ldm_lr_at(&s, 3) == 1.0 && ldm_lr_at(&s, 11) == 0.0);
}
END_TEST

/* The same step on 1 thread and on 3: identical bits (blocks are never split). */
START_TEST(test_threads)
{
    struct a8 a[2];
    for (int r = 0; r < 2; r++) {
        ck_ok(ldm_ctx_open(&C, "cpu", r ? 3 : 1));
        a8_make(&a[r], 300001);
        for (int s = 1; s <= 3; s++) {
            a[r].o.step = s;
            ck_ok(a8_run(&a[r]));
        }
        ck_ok(ldm_ema_update(C, &a[r].g, &a[r].p, 0.99f));
        ldm_ctx_close(&C);
    }
    ck_assert(memcmp(a[0].p.data, a[1].p.data, 300001 * 4) == 0);
    ck_assert(memcmp(a[0].g.data, a[1].g.data, 300001 * 4) == 0);
    ck_assert(memcmp(a[0].mq.data, a[1].mq.data, 300001) == 0);
    ck_assert(memcmp(a[0].vq.data, a[1].vq.data, 300001) == 0);
    ck_assert(memcmp(a[0].ma.data, a[1].ma.data, a[0].ma.shape[0] * 4) == 0);
    ck_assert(memcmp(a[0].va.data, a[1].va.data, a[0].va.shape[0] * 4) == 0);
}
END_TEST

/* ---- the suite ----------------------------------------------------------------------------- */

Suite *suite_optim(void);

Suite *suite_optim(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("golden");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, NULL, test_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_lr);
    tcase_add_test(tc, test_ema_decay);
    tcase_add_test(tc, test_ema_op);
    tcase_add_test(tc, test_ema_steps);
    tcase_add_test(tc, test_maps);
    tcase_add_test(tc, test_adamw8);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("checks");
    tcase_add_checked_fixture(tk, NULL, test_teardown);
    tcase_set_timeout(tk, 60);
    tcase_add_test(tk, test_adamw8_errors);
    tcase_add_test(tk, test_ema_errors);
    tcase_add_test(tk, test_lr_errors);
    tcase_add_test(tk, test_threads);
    suite_add_tcase(s, tk);
    return s;
}

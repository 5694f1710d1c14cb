/* test_sampler.c — the evaluation samplers and classifier-free guidance against
 * tests/golden/sampler.py (diffusers v0.26.3's schedulers written out in torch and numpy;
 * checked once against diffusers itself), then the API's checks and errors.
 *
 * Exactness: timesteps, sigmas and init_noise_sigma are compared bit for bit (numpy's
 * float64 arange / linspace / interp and the float32 casts are reproduced), except the
 * Karras timesteps: diffusers takes log σ with numpy's vectorised float32 log, which may
 * differ from the C library's logf in the last bit (the timestep then moves by an ulp or
 * two), so those are compared within TOL. The trajectories are compared within TOL of
 * the step's largest value: our steps do diffusers' float32 operations in its order, one
 * rounding each, so they match bit for bit (the count of differing elements is printed
 * when it is not zero; gcc and clang, with and without FMA, give none). CFG's combine is
 * compared bit for bit; guidance rescaling takes a standard deviation in double by
 * another summation order than torch's Welford: within TOL. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "models/sampler.h"
#include "rng.h"
#include "safetensors.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"
#define SCRIPT "tests/golden/sampler.py"
#define TOL 1e-5

static char *g_dir;
static struct ldm_st *g_st;

static void suite_setup(void)
{
    g_dir = tu_tmpdir();
    char path[4096], cmd[8192];
    snprintf(path, sizeof path, "%s/sampler.safetensors", g_dir);
    snprintf(cmd, sizeof cmd, "%s %s '%s' 2>'%s/golden.err'", PYTHON, SCRIPT, path, g_dir);
    int st = system(cmd);
    ck_assert_msg(st == 0, "%s failed (status %d); see %s/golden.err: the sampler tests need "
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

static const struct ldm_st_tensor *ref(const char *cs, const char *role)
{
    char name[256];
    snprintf(name, sizeof name, "%s/%s", cs, role);
    const struct ldm_st_tensor *t = ldm_st_get(g_st, name);
    ck_assert_msg(t != NULL, "the golden file has no tensor %s", name);
    ck_assert_int_eq(t->dtype, LDM_DT_F32);
    return t;
}

/* max|ours − ref| / max|ref|, printing the worst element when above TOL; *ndiff counts
 * the elements that are not bit-identical. */
static double rel_err(const char *what, const float *ours, const float *want, size_t n,
                      size_t *ndiff)
{
    double dmax = 0, rmax = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - (double)want[i]);
        if (!(d <= dmax)) {
            dmax = d;
            worst = i;
        }
        if (fabs(want[i]) > rmax)
            rmax = fabs(want[i]);
        *ndiff += memcmp(&ours[i], &want[i], sizeof(float)) != 0;
    }
    double rel = rmax > 0 ? dmax / rmax : dmax;
    if (!(rel <= TOL))
        fprintf(stderr, "%s: element %zu is %.9g, reference %.9g (relative error %.3g)\n", what,
                worst, ours[worst], want[worst], rel);
    return rel;
}

/* Bit-for-bit equality of n floats (NaN-free), naming the first difference. */
static void ck_same(const char *cs, const char *role, const float *ours, const float *want, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(memcmp(&ours[i], &want[i], sizeof(float)) == 0,
                      "%s/%s[%d]: %.9g, reference %.9g", cs, role, i, ours[i], want[i]);
}

static json_t *case_meta(const char *cs)
{
    const char *text = ldm_st_meta(g_st, cs);
    ck_assert_msg(text != NULL, "the golden file has no case %s", cs);
    json_t *m;
    ck_ok(ldm_json_parse_object(text, strlen(text), cs, &m));
    return m;
}

static struct ldm_sampler *open_case(const char *cs, json_t *m, double *eta)
{
    const char *kind;
    int64_t steps;
    ck_ok(ldm_json_get_str(m, "kind", &kind, NULL));
    ck_ok(ldm_json_get_int(m, "steps", &steps, 0));
    ck_ok(ldm_json_get_real(m, "eta", eta, 0));
    struct ldm_sampler *s;
    ck_ok(ldm_sampler_new(&s, json_object_get(m, "config"), kind, (int)steps, *eta, cs));
    return s;
}

/* The schedule: timesteps, sigmas and init_noise_sigma. */
static void check_schedule(const char *cs, const struct ldm_sampler *s, int exact_t)
{
    const struct ldm_st_tensor *ts = ref(cs, "timesteps");
    int K = ldm_sampler_steps(s);
    ck_assert_msg(ts->shape[0] == K, "%s: %d model calls, reference %lld", cs, K,
                  (long long)ts->shape[0]);
    float mine[2048];
    ck_assert_int_lt(K, 2047);
    for (int i = 0; i < K; i++)
        mine[i] = ldm_sampler_timestep(s, i);
    size_t nd = 0;
    if (exact_t)
        ck_same(cs, "timesteps", mine, ts->data, K);
    else
        ck_assert_msg(rel_err("timesteps", mine, ts->data, (size_t)K, &nd) <= TOL, "%s", cs);
    char name[256];
    snprintf(name, sizeof name, "%s/sigmas", cs);
    const struct ldm_st_tensor *sg = ldm_st_get(g_st, name);
    if (sg) {
        ck_assert_int_eq(sg->shape[0], K + 1);
        for (int i = 0; i <= K; i++)
            mine[i] = ldm_sampler_sigma(s, i);
        ck_same(cs, "sigmas", mine, sg->data, K + 1);
    } else {
        ck_assert(isnan(ldm_sampler_sigma(s, 0)));
    }
    float init = ldm_sampler_init_noise_sigma(s);
    ck_same(cs, "init_noise_sigma", &init, ref(cs, "init_noise_sigma")->data, 1);
}

/* The pipeline loop over the golden model outputs. */
static void check_case(const char *cs, int exact_t)
{
    json_t *m = case_meta(cs);
    double eta;
    struct ldm_sampler *s = open_case(cs, m, &eta);
    check_schedule(cs, s, exact_t);
    const struct ldm_st_tensor *xT = ref(cs, "x_T"), *mo = ref(cs, "model_out");
    const struct ldm_st_tensor *sc = ref(cs, "scaled"), *smp = ref(cs, "samples");
    const struct ldm_st_tensor *noise = eta > 0 ? ref(cs, "noise") : NULL;
    int K = ldm_sampler_steps(s);
    int64_t n = xT->shape[0] * xT->shape[1];
    ck_assert_int_eq(mo->shape[0], K);
    float *x = malloc((size_t)n * sizeof(float)), *in = malloc((size_t)n * sizeof(float));
    ck_assert(x && in);
    float init = ldm_sampler_init_noise_sigma(s);
    for (int64_t j = 0; j < n; j++)
        x[j] = ((const float *)xT->data)[j] * init;
    size_t nd_in = 0, nd_x = 0;
    double worst = 0;
    for (int i = 0; i < K; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s call %d", cs, i);
        ck_ok(ldm_sampler_scale_input(s, i, in, x, n));
        double e = rel_err(what, in, (const float *)sc->data + i * n, (size_t)n, &nd_in);
        ck_assert_msg(e <= TOL, "%s: scaled input relative error %g", what, e);
        ck_ok(ldm_sampler_step(s, i, (const float *)mo->data + i * n, x, n, NULL,
                               noise ? (const float *)noise->data + i * n : NULL));
        e = rel_err(what, x, (const float *)smp->data + i * n, (size_t)n, &nd_x);
        ck_assert_msg(e <= TOL, "%s: sample relative error %g", what, e);
        worst = e > worst ? e : worst;
    }
    if (nd_in || nd_x)
        fprintf(stderr, "%s: %zu scaled inputs and %zu samples of %lld not bit-identical "
                        "(worst relative error %.3g)\n", cs, nd_in, nd_x, (long long)(K * n), worst);
    free(x);
    free(in);
    ldm_sampler_free(&s);
    json_decref(m);
}

static const char *const exact_cases[] = {
    "sd1_pndm", "sd2_ddim", "sd2_ddim_eta1", "sdxl_euler", "ddim_trailing",
    "ddim_linspace_sample", "zsnr_ddim", "zsnr_euler", "euler_linspace", "euler_trailing_cos",
    "pndm_prk", "pndm_vpred_linspace", "pndm_trailing", "sd1_as_ddim", "sd1_as_euler",
    "flow_shift3", "flow_shift1", NULL};

START_TEST(golden_exact_timesteps)
{
    check_case(exact_cases[_i], 1);
}
END_TEST

START_TEST(golden_karras)
{
    check_case("euler_karras", 0);
}
END_TEST

/* Every case in the golden file is one of the tests above (and "cfg"). */
START_TEST(all_cases_tested)
{
    for (size_t i = 0; i < ldm_st_meta_count(g_st); i++) {
        const char *val, *cs = ldm_st_meta_at(g_st, i, &val);
        int found = !strcmp(cs, "cfg") || !strcmp(cs, "euler_karras");
        for (int k = 0; exact_cases[k]; k++)
            found |= !strcmp(cs, exact_cases[k]);
        ck_assert_msg(found, "the golden file has an untested case %s", cs);
    }
}
END_TEST

START_TEST(golden_cfg)
{
    json_t *m = case_meta("cfg");
    double scale, phi;
    ck_ok(ldm_json_get_real(m, "scale", &scale, 0));
    ck_ok(ldm_json_get_real(m, "guidance_rescale", &phi, 0));
    const struct ldm_st_tensor *u = ref("cfg", "uncond"), *c = ref("cfg", "cond");
    int64_t N = u->shape[0], S = u->shape[1], n = N * S;
    float *out = malloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(out);
    ck_ok(ldm_cfg_combine(out, u->data, c->data, n, scale));
    ck_same("cfg", "out", out, ref("cfg", "out")->data, (int)n);
    ck_ok(ldm_cfg_rescale(out, c->data, N, S, phi));
    size_t nd = 0;
    double e = rel_err("cfg rescaled", out, ref("cfg", "rescaled")->data, (size_t)n, &nd);
    ck_assert_msg(e <= TOL, "cfg rescaled: relative error %g", e);
    /* in place over either input */
    float *a = malloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(a);
    memcpy(a, c->data, (size_t)n * sizeof(float));
    ck_ok(ldm_cfg_combine(a, u->data, a, n, scale));
    ck_same("cfg", "out (in place)", a, ref("cfg", "out")->data, (int)n);
    free(a);
    free(out);
    json_decref(m);
}
END_TEST

/* ---- API checks and errors ------------------------------------------------------------------ */

static json_t *sd_config(const char *cls)
{
    return json_pack("{s:s, s:f, s:f, s:s, s:i, s:i, s:s, s:s, s:b, s:b}", "_class_name", cls,
                     "beta_start", 0.00085, "beta_end", 0.012, "beta_schedule", "scaled_linear",
                     "num_train_timesteps", 1000, "steps_offset", 1, "prediction_type", "epsilon",
                     "timestep_spacing", "leading", "set_alpha_to_one", 0, "skip_prk_steps", 1);
}

START_TEST(config_errors)
{
    struct ldm_sampler *s = NULL;
    json_t *c = sd_config("LMSDiscreteScheduler");
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 50, 0, "sched.json"), LDM_EUNSUPPORTED,
                  "LMSDiscreteScheduler");
    ck_assert_ptr_null(s);
    ck_ok(ldm_sampler_new(&s, c, "euler", 50, 0, "sched.json")); /* the kind overrides it */
    ck_assert_int_eq(ldm_sampler_kind(s), LDM_SAMPLER_EULER);
    ldm_sampler_free(&s);
    ck_fails_with(ldm_sampler_new(&s, c, "heun", 50, 0, "sched.json"), LDM_EINVAL, "heun");
    json_object_del(c, "_class_name");
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 50, 0, "sched.json"), LDM_ECONFIG, "_class_name");
    json_object_set_new(c, "_class_name", json_string("DDIMScheduler"));
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 0, 0, "sched.json"), LDM_EINVAL,
                  "num_inference_steps 0 is outside 1..1000");
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 1001, 0, "sched.json"), LDM_EINVAL,
                  "num_inference_steps 1001");
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 10, -1, "sched.json"), LDM_EINVAL, "eta");
    /* leading spacing with steps_offset 1 at T steps reaches timestep T */
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 1000, 0, "sched.json"), LDM_ECONFIG,
                  "timestep 1000");
    json_object_set_new(c, "thresholding", json_true());
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 10, 0, "sched.json"), LDM_EUNSUPPORTED,
                  "thresholding");
    json_object_del(c, "thresholding");
    json_object_set_new(c, "timestep_spacing", json_string("karras"));
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 10, 0, "sched.json"), LDM_EUNSUPPORTED, "karras");
    /* numpy's arange(1000, 0, -1000/61) has 62 elements: DDIM would step from timestep −1 */
    json_object_set_new(c, "timestep_spacing", json_string("trailing"));
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 61, 0, "sched.json"), LDM_ECONFIG, "timestep -1");
    ck_ok(ldm_sampler_new(&s, c, "euler", 61, 0, "sched.json")); /* Euler: 62 calls, as diffusers */
    ck_assert_int_eq(ldm_sampler_steps(s), 62);
    ldm_sampler_free(&s);
    json_object_set_new(c, "steps_offset", json_string("1"));
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 10, 0, "sched.json"), LDM_EFORMAT, "steps_offset");
    json_decref(c);
}
END_TEST

START_TEST(kind_errors)
{
    struct ldm_sampler *s = NULL;
    json_t *c = sd_config("PNDMScheduler");
    json_object_set_new(c, "skip_prk_steps", json_false());
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 3, 0, "sched.json"), LDM_EINVAL, "skip_prk_steps");
    json_object_set_new(c, "prediction_type", json_string("sample"));
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 10, 0, "sched.json"), LDM_EUNSUPPORTED, "sample");
    json_object_set_new(c, "interpolation_type", json_string("log_linear"));
    json_object_set_new(c, "prediction_type", json_string("epsilon"));
    ck_fails_with(ldm_sampler_new(&s, c, "euler", 10, 0, "sched.json"), LDM_EUNSUPPORTED,
                  "log_linear");
    json_decref(c);
    c = json_pack("{s:s, s:f, s:b}", "_class_name", "FlowMatchEulerDiscreteScheduler", "shift",
                  3.0, "use_dynamic_shifting", 1);
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 10, 0, "sched.json"), LDM_EUNSUPPORTED,
                  "use_dynamic_shifting");
    json_object_set_new(c, "use_dynamic_shifting", json_false());
    json_object_set_new(c, "shift", json_real(-1));
    ck_fails_with(ldm_sampler_new(&s, c, NULL, 10, 0, "sched.json"), LDM_ECONFIG, "shift");
    json_decref(c);
    ck_fails_with(ldm_sampler_new(&s, json_null(), NULL, 10, 0, NULL), LDM_EINVAL, "JSON object");
}
END_TEST

START_TEST(counts_and_accessors)
{
    struct ldm_sampler *s;
    json_t *c = sd_config("PNDMScheduler");
    ck_ok(ldm_sampler_new(&s, c, NULL, 50, 0, "sd1"));
    ck_assert_int_eq(ldm_sampler_steps(s), 51);
    /* the first two calls share a timestep; the rest go down by 20 */
    ck_assert_float_eq(ldm_sampler_timestep(s, 0), 981);
    ck_assert_float_eq(ldm_sampler_timestep(s, 1), 961);
    ck_assert_float_eq(ldm_sampler_timestep(s, 2), 961);
    ck_assert_float_eq(ldm_sampler_timestep(s, 50), 1);
    ck_assert(isnan(ldm_sampler_timestep(s, 51)));
    ck_assert(isnan(ldm_sampler_timestep(s, -1)));
    ck_assert(isnan(ldm_sampler_sigma(s, 0)));
    ck_assert_float_eq(ldm_sampler_init_noise_sigma(s), 1);
    ck_assert_str_eq(ldm_sampler_kind_name(ldm_sampler_kind(s)), "pndm");
    ldm_sampler_free(&s);
    json_object_set_new(c, "skip_prk_steps", json_false());
    ck_ok(ldm_sampler_new(&s, c, NULL, 50, 0, "sd1"));
    ck_assert_int_eq(ldm_sampler_steps(s), 59);
    ldm_sampler_free(&s);
    ck_ok(ldm_sampler_new(&s, c, "euler", 30, 0, "sdxl"));
    ck_assert_int_eq(ldm_sampler_steps(s), 30);
    ck_assert_float_eq(ldm_sampler_sigma(s, 30), 0);
    ck_assert(isnan(ldm_sampler_sigma(s, 31)));
    ck_assert(ldm_sampler_init_noise_sigma(s) > ldm_sampler_sigma(s, 0));
    ldm_sampler_free(&s);
    ldm_sampler_free(&s); /* NULL again is fine */
    ck_assert_str_eq(ldm_sampler_kind_name(99), "unknown");
    json_decref(c);
}
END_TEST

/* One whole loop on fixed inputs into x (n <= 8). */
static void run_loop(struct ldm_sampler *s, float *x, int64_t n)
{
    float mo[8];
    for (int64_t j = 0; j < n; j++)
        x[j] = (float)j - 3;
    for (int i = 0; i < ldm_sampler_steps(s); i++) {
        for (int64_t j = 0; j < n; j++)
            mo[j] = sinf((float)(i * 7 + j));
        ck_ok(ldm_sampler_step(s, i, mo, x, n, NULL, NULL));
    }
}

START_TEST(loop_errors_and_restart)
{
    struct ldm_sampler *s;
    json_t *c = sd_config("PNDMScheduler");
    ck_ok(ldm_sampler_new(&s, c, NULL, 10, 0, "sd1"));
    float a[8], b[8], mo[8] = {0};
    run_loop(s, a, 8);
    run_loop(s, b, 8); /* call 0 starts over */
    ck_assert_mem_eq(a, b, sizeof a);
    ck_fails_with(ldm_sampler_step(s, 11, mo, a, 8, NULL, NULL), LDM_ERANGE, "call 11");
    ck_ok(ldm_sampler_step(s, 0, mo, a, 8, NULL, NULL));
    ck_fails_with(ldm_sampler_step(s, 2, mo, a, 8, NULL, NULL), LDM_EINVAL, "out of order");
    ck_fails_with(ldm_sampler_step(s, 1, mo, a, 4, NULL, NULL), LDM_EINVAL, "call 0 had 8");
    ck_fails_with(ldm_sampler_step(s, 1, mo, a, 0, NULL, NULL), LDM_EINVAL, "0 elements");
    ck_fails_with(ldm_sampler_scale_input(s, -1, b, a, 8), LDM_ERANGE, "call -1");
    ck_ok(ldm_sampler_scale_input(s, 3, b, a, 8));
    ck_assert_mem_eq(a, b, sizeof a);
    ldm_sampler_free(&s);
    json_object_set_new(c, "_class_name", json_string("DDIMScheduler"));
    ck_ok(ldm_sampler_new(&s, c, NULL, 10, 1.0, "sd2"));
    ck_fails_with(ldm_sampler_step(s, 0, mo, a, 8, NULL, NULL), LDM_EINVAL, "rng");
    ldm_sampler_free(&s);
    json_decref(c);
}
END_TEST

/* DDIM η > 0 from a stream equals the same draws given as noise. */
START_TEST(eta_from_rng)
{
    struct ldm_sampler *s;
    json_t *c = sd_config("DDIMScheduler");
    ck_ok(ldm_sampler_new(&s, c, NULL, 10, 1.0, "sd2"));
    struct ldm_rng r1, r2;
    ldm_rng_init(&r1, 1234, 5);
    r2 = r1;
    float x1[7], x2[7], mo[7], noise[7];
    for (int j = 0; j < 7; j++)
        x1[j] = x2[j] = (float)j / 3 - 1, mo[j] = cosf((float)j);
    for (int i = 0; i < ldm_sampler_steps(s); i++) {
        ck_ok(ldm_sampler_step(s, i, mo, x1, 7, &r1, NULL));
    }
    for (int i = 0; i < ldm_sampler_steps(s); i++) {
        ck_ok(ldm_sampler_randn(&r2, noise, 7));
        ck_ok(ldm_sampler_step(s, i, mo, x2, 7, NULL, noise));
    }
    ck_assert_mem_eq(x1, x2, sizeof x1);
    ldm_sampler_free(&s);
    json_decref(c);
}
END_TEST

START_TEST(randn_moments)
{
    enum { NDRAW = 200001 };
    static float v[NDRAW];
    struct ldm_rng r;
    ldm_rng_init(&r, 99, 0);
    ck_ok(ldm_sampler_randn(&r, v, NDRAW));
    double m = 0, q = 0;
    for (int i = 0; i < NDRAW; i++)
        m += v[i], q += (double)v[i] * v[i];
    m /= NDRAW;
    q = q / NDRAW - m * m;
    ck_assert_msg(fabs(m) < 0.01 && fabs(q - 1) < 0.02, "mean %g variance %g", m, q);
    ck_assert_int_eq(r.counter, NDRAW + 1); /* two uniforms per pair */
    ck_fails_with(ldm_sampler_randn(&r, v, -1), LDM_EINVAL, "-1");
    ck_fails_with(ldm_cfg_combine(v, v, v, -1, 1), LDM_EINVAL, "-1");
    ck_fails_with(ldm_cfg_rescale(v, v, 1, 1, 0.7), LDM_EINVAL, "at least 2");
}
END_TEST

Suite *suite_sampler(void);

Suite *suite_sampler(void)
{
    Suite *s = suite_create("sampler");
    TCase *g = tcase_create("golden");
    tcase_add_unchecked_fixture(g, suite_setup, suite_teardown);
    tcase_set_timeout(g, 120);
    int ncases = 0;
    while (exact_cases[ncases])
        ncases++;
    tcase_add_loop_test(g, golden_exact_timesteps, 0, ncases);
    tcase_add_test(g, golden_karras);
    tcase_add_test(g, all_cases_tested);
    tcase_add_test(g, golden_cfg);
    suite_add_tcase(s, g);
    TCase *u = tcase_create("api");
    tcase_add_test(u, config_errors);
    tcase_add_test(u, kind_errors);
    tcase_add_test(u, counts_and_accessors);
    tcase_add_test(u, loop_errors_and_restart);
    tcase_add_test(u, eta_from_rng);
    tcase_add_test(u, randn_moments);
    suite_add_tcase(s, u);
    return s;
}

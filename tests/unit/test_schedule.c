/* test_schedule.c — DDPMScheduler schedules against diffusers' golden tensors, config parsing and errors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "models/schedule.h"
#include "safetensors.h"
#include "testutil.h"

#define TOL 1e-4

static struct ldm_st *g_st;
static json_t *g_configs;

static void setup(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/schedules/golden.safetensors", tu_data_dir());
    ck_ok(ldm_st_open(&g_st, path));
    snprintf(path, sizeof path, "%s/golden/schedules/configs.json", tu_data_dir());
    ck_ok(ldm_json_load_object(path, &g_configs));
}

static void teardown(void)
{
    ldm_st_close(&g_st);
    json_decref(g_configs);
    g_configs = NULL;
}

static const struct ldm_st_tensor *golden(const char *name, int dtype)
{
    const struct ldm_st_tensor *t = ldm_st_get(g_st, name);
    ck_assert_msg(t != NULL, "the golden file has no tensor %s", name);
    ck_assert_int_eq(t->dtype, dtype);
    return t;
}

/* max|ours − ref| / max|ref|, printing the first mismatching element. */
static double rel_err(const char *what, const float *ours, const float *ref, size_t n)
{
    double dmax = 0, rmax = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - (double)ref[i]);
        if (!(d <= dmax)) {
            dmax = d;
            worst = i;
        }
        if (fabs(ref[i]) > rmax)
            rmax = fabs(ref[i]);
    }
    double rel = rmax > 0 ? dmax / rmax : dmax;
    if (!(rel <= TOL))
        fprintf(stderr, "%s: element %zu is %.9g, reference %.9g (relative error %.3g)\n", what,
                worst, ours[worst], ref[worst], rel);
    return rel;
}

static void check_case(const char *name)
{
    const json_t *obj = json_object_get(g_configs, name);
    ck_assert_ptr_nonnull(obj);
    struct ldm_sched_config cfg;
    struct ldm_schedule s;
    ck_ok(ldm_sched_config_from_json(&cfg, obj, name));
    ck_ok(ldm_sched_init(&s, &cfg));
    char key[128];
    snprintf(key, sizeof key, "%s.alphas_cumprod", name);
    const struct ldm_st_tensor *ac = golden(key, LDM_DT_F32);
    ck_assert_int_eq(ac->shape[0], s.T);
    double e = rel_err(key, s.alphas_cumprod, ac->data, (size_t)s.T);
    ck_assert_msg(e <= TOL, "%s: relative error %g", key, e);

    const struct ldm_st_tensor *x0 = golden("in.x0", LDM_DT_F32);
    const struct ldm_st_tensor *noise = golden("in.noise", LDM_DT_F32);
    const struct ldm_st_tensor *ts = golden("in.timesteps", LDM_DT_I64);
    int64_t N = x0->shape[0], S = (int64_t)(x0->nbytes / 4) / N;
    float *out = malloc(x0->nbytes);
    ck_assert_ptr_nonnull(out);
    const char *roles[] = {"add_noise", "velocity"};
    for (int r = 0; r < 2; r++) {
        int rc = r == 0 ? ldm_sched_add_noise(&s, out, x0->data, noise->data, ts->data, N, S)
                        : ldm_sched_velocity(&s, out, x0->data, noise->data, ts->data, N, S);
        ck_ok(rc);
        snprintf(key, sizeof key, "%s.%s", name, roles[r]);
        const struct ldm_st_tensor *ref = golden(key, LDM_DT_F32);
        e = rel_err(key, out, ref->data, (size_t)(N * S));
        ck_assert_msg(e <= TOL, "%s: relative error %g", key, e);
    }
    free(out);
    ldm_sched_free(&s);
}

START_TEST(golden_linear) { check_case("linear"); }
END_TEST

START_TEST(golden_scaled_linear) { check_case("scaled_linear"); }
END_TEST

START_TEST(golden_squaredcos) { check_case("squaredcos_cap_v2"); }
END_TEST

START_TEST(golden_zero_snr)
{
    check_case("scaled_linear_zero_snr");
    struct ldm_sched_config cfg;
    struct ldm_schedule s;
    ck_ok(ldm_sched_config_from_json(&cfg, json_object_get(g_configs, "scaled_linear_zero_snr"),
                                     "zsnr"));
    ck_ok(ldm_sched_init(&s, &cfg));
    /* zero terminal SNR: the last ᾱ is exactly 0, so x_T is pure noise */
    ck_assert_float_eq(s.alphas_cumprod[s.T - 1], 0.0f);
    float x0[2] = {3, -2}, noise[2] = {0.5f, 7}, out[2];
    int64_t t = s.T - 1;
    ck_ok(ldm_sched_add_noise(&s, out, x0, noise, &t, 1, 2));
    ck_assert_float_eq(out[0], 0.5f);
    ck_assert_float_eq(out[1], 7.0f);
    ck_ok(ldm_sched_velocity(&s, out, x0, noise, &t, 1, 2));
    ck_assert_float_eq(out[0], -3.0f);
    ck_assert_float_eq(out[1], 2.0f);
    ldm_sched_free(&s);
}
END_TEST

/* Every golden config file entry is covered by a test above. */
START_TEST(all_configs_tested)
{
    const char *known[] = {"linear", "scaled_linear", "squaredcos_cap_v2",
                           "scaled_linear_zero_snr"};
    const char *key;
    json_t *v;
    json_object_foreach(g_configs, key, v)
    {
        (void)v;
        int found = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            found |= strcmp(key, known[i]) == 0;
        ck_assert_msg(found, "configs.json has an untested schedule %s", key);
    }
}
END_TEST

START_TEST(in_place_and_monotone)
{
    struct ldm_sched_config cfg;
    struct ldm_schedule s;
    ldm_sched_config_default(&cfg);
    ck_ok(ldm_sched_init(&s, &cfg));
    ck_assert_int_eq(s.T, 1000);
    ck_assert_float_eq_tol(s.betas[0], 0.0001f, 1e-9f);
    ck_assert_float_eq_tol(s.betas[999], 0.02f, 1e-9f);
    for (int64_t i = 1; i < s.T; i++)
        ck_assert_msg(s.alphas_cumprod[i] < s.alphas_cumprod[i - 1], "ᾱ rises at %lld",
                      (long long)i);
    float x0[4] = {1, 2, 3, 4}, noise[4] = {-1, 0.5f, 2, -3}, sep[4], inplace[4];
    int64_t t[2] = {10, 900};
    ck_ok(ldm_sched_add_noise(&s, sep, x0, noise, t, 2, 2));
    memcpy(inplace, x0, sizeof x0);
    ck_ok(ldm_sched_add_noise(&s, inplace, inplace, noise, t, 2, 2));
    ck_assert_mem_eq(sep, inplace, sizeof sep);
    float a = sqrtf(s.alphas_cumprod[900]), b = sqrtf(1 - s.alphas_cumprod[900]);
    ck_assert_float_eq_tol(sep[3], a * 4 + b * -3, 1e-6f);
    ldm_sched_free(&s);
    ldm_sched_free(&s); /* an empty schedule frees again */
}
END_TEST

START_TEST(config_errors)
{
    struct ldm_sched_config cfg;
    json_t *o = json_pack("{s:s}", "beta_schedule", "sigmoid");
    ck_fails_with(ldm_sched_config_from_json(&cfg, o, "sched.json"), LDM_EUNSUPPORTED, "sigmoid");
    json_decref(o);
    o = json_pack("{s:s}", "num_train_timesteps", "many");
    ck_fails_with(ldm_sched_config_from_json(&cfg, o, "sched.json"), LDM_EFORMAT,
                  "num_train_timesteps");
    json_decref(o);
    o = json_pack("{s:f,s:f}", "beta_start", 0.02, "beta_end", 0.001);
    ck_fails_with(ldm_sched_config_from_json(&cfg, o, "sched.json"), LDM_ECONFIG, "beta_end");
    json_decref(o);
    o = json_pack("{s:i}", "num_train_timesteps", 0);
    ck_fails_with(ldm_sched_config_from_json(&cfg, o, "sched.json"), LDM_ECONFIG, "outside");
    json_decref(o);
    o = json_pack("{s:[f,f]}", "trained_betas", 0.1, 0.2);
    ck_fails_with(ldm_sched_config_from_json(&cfg, o, "sched.json"), LDM_EUNSUPPORTED,
                  "trained_betas");
    json_decref(o);
    o = json_pack("{s:s,s:b}", "prediction_type", "v_prediction", "rescale_betas_zero_snr", 1);
    ck_ok(ldm_sched_config_from_json(&cfg, o, "sched.json"));
    ck_assert_int_eq(cfg.prediction_type, LDM_PRED_V);
    ck_assert_int_eq(cfg.rescale_betas_zero_snr, 1);
    json_decref(o);
}
END_TEST

START_TEST(timestep_out_of_range)
{
    struct ldm_sched_config cfg;
    struct ldm_schedule s;
    ldm_sched_config_default(&cfg);
    cfg.num_train_timesteps = 10;
    ck_ok(ldm_sched_init(&s, &cfg));
    float x[2] = {1, 2}, out[2];
    int64_t t[2] = {3, 10};
    ck_fails_with(ldm_sched_add_noise(&s, out, x, x, t, 2, 1), LDM_ERANGE, "sample 1");
    t[1] = -1;
    ck_fails_with(ldm_sched_velocity(&s, out, x, x, t, 2, 1), LDM_ERANGE, "timestep -1");
    ldm_sched_free(&s);
    cfg.num_train_timesteps = 1;
    cfg.rescale_betas_zero_snr = 1;
    ck_fails_with(ldm_sched_init(&s, &cfg), LDM_ECONFIG, "rescale_betas_zero_snr");
}
END_TEST

Suite *suite_schedule(void);
Suite *suite_schedule(void)
{
    Suite *s = suite_create("schedule");
    TCase *g = tcase_create("golden");
    tcase_add_checked_fixture(g, setup, teardown);
    tcase_add_test(g, golden_linear);
    tcase_add_test(g, golden_scaled_linear);
    tcase_add_test(g, golden_squaredcos);
    tcase_add_test(g, golden_zero_snr);
    tcase_add_test(g, all_configs_tested);
    suite_add_tcase(s, g);
    TCase *u = tcase_create("api");
    tcase_add_test(u, in_place_and_monotone);
    tcase_add_test(u, config_errors);
    tcase_add_test(u, timestep_out_of_range);
    suite_add_tcase(s, u);
    return s;
}

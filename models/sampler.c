/* sampler.c — evaluation samplers: reading a diffusers scheduler config as its class would,
 * the sampler's life cycle and loop checks, noise draws, and classifier-free guidance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json.h"
#include "log.h"
#include "models/sampler_int.h"
#include "rng.h"

static const char *const kind_names[] = {"ddim", "pndm", "euler", "flow", NULL};
static const char *const class_names[] = {"DDIMScheduler", "PNDMScheduler",
                                          "EulerDiscreteScheduler",
                                          "FlowMatchEulerDiscreteScheduler", NULL};

/* Prefix the current error detail with `what` (copied first: ldm_fail overwrites it). */
static int fail_in(int rc, const char *what)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s", ldm_errmsg());
    return ldm_fail(rc, "%s: %s", what, detail);
}

static int find_name(const char *v, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

static int pick_kind(const json_t *cfg, const char *kind, const char *what, int *out)
{
    if (kind) {
        if ((*out = find_name(kind, kind_names)) < 0)
            return ldm_fail(LDM_EINVAL, "%s: sampler kind \"%s\" is unknown (ddim, pndm, euler, "
                                        "flow)", what, kind);
        return 0;
    }
    const char *cls;
    int rc = ldm_json_get_str(cfg, "_class_name", &cls, NULL);
    if (rc)
        return fail_in(rc, what);
    if (!cls)
        return ldm_fail(LDM_ECONFIG, "%s: no _class_name, and no sampler kind given", what);
    if ((*out = find_name(cls, class_names)) < 0)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: scheduler class \"%s\" is not supported (DDIMScheduler, "
                        "PNDMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler)",
                        what, cls);
    return 0;
}

/* Keys whose non-default values select features not built here. */
static int refuse_true(const json_t *cfg, const char *const *keys, const char *what)
{
    for (int i = 0; keys[i]; i++) {
        int on, rc = ldm_json_get_bool(cfg, keys[i], &on, 0);
        if (rc)
            return fail_in(rc, what);
        if (on)
            return ldm_fail(LDM_EUNSUPPORTED, "%s: %s true is not supported", what, keys[i]);
    }
    return 0;
}

static int refuse_value(const json_t *cfg, const char *key, const char *allowed, const char *what)
{
    const char *v;
    int rc = ldm_json_get_str(cfg, key, &v, allowed);
    if (rc)
        return fail_in(rc, what);
    if (strcmp(v, allowed) != 0)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: %s \"%s\" is not supported (only \"%s\")", what,
                        key, v, allowed);
    return 0;
}

/* The betas and prediction type (DDIM, PNDM, Euler) and the timestep spacing. */
static int read_schedule(struct ldm_sampler *s, const json_t *cfg, const char *what)
{
    struct ldm_sched_config sc;
    int rc = ldm_sched_config_from_json(&sc, cfg, what);
    if (rc)
        return rc;
    if (s->kind == LDM_SAMPLER_PNDM && sc.rescale_betas_zero_snr) {
        LOG_WARN("PNDMScheduler has no rescale_betas_zero_snr; ignored", "config=%s", what);
        sc.rescale_betas_zero_snr = 0;
    }
    if (s->kind == LDM_SAMPLER_PNDM && sc.prediction_type == LDM_PRED_SAMPLE)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: PNDMScheduler has no prediction_type \"sample\"",
                        what);
    s->pred = sc.prediction_type;
    s->T = sc.num_train_timesteps;
    static const char *const spacings[] = {"linspace", "leading", "trailing", NULL};
    const char *sp;
    if ((rc = ldm_json_get_str(cfg, "timestep_spacing", &sp,
                               s->kind == LDM_SAMPLER_EULER ? "linspace" : "leading")) ||
        (rc = ldm_json_get_int(cfg, "steps_offset", &s->steps_offset, 0)))
        return fail_in(rc, what);
    if ((s->spacing = find_name(sp, spacings)) < 0)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: timestep_spacing \"%s\" is not supported "
                                          "(linspace, leading, trailing)", what, sp);
    if ((rc = ldm_sched_init(&s->sched, &sc)) != 0)
        return fail_in(rc, what);
    return 0;
}

static int read_ddim_pndm(struct ldm_sampler *s, const json_t *cfg, const char *what)
{
    static const char *const ddim_off[] = {"thresholding", NULL};
    int ddim = s->kind == LDM_SAMPLER_DDIM, one, rc;
    if ((rc = ldm_json_get_bool(cfg, "set_alpha_to_one", &one, ddim)))
        return fail_in(rc, what);
    s->final_ac = one ? 1.0f : s->sched.alphas_cumprod[0];
    if (!ddim) {
        if ((rc = ldm_json_get_bool(cfg, "skip_prk_steps", &s->skip_prk, 0)))
            return fail_in(rc, what);
        s->prk_calls = s->skip_prk ? 0 : SP_PRK_CALLS;
        return 0;
    }
    if ((rc = ldm_json_get_bool(cfg, "clip_sample", &s->clip_sample, 1)) ||
        (rc = ldm_json_get_real(cfg, "clip_sample_range", &s->clip_range, 1.0)))
        return fail_in(rc, what);
    if (!(s->clip_range >= 0))
        return ldm_fail(LDM_ECONFIG, "%s: clip_sample_range %g is negative", what, s->clip_range);
    return refuse_true(cfg, ddim_off, what);
}

static int read_euler(struct ldm_sampler *s, const json_t *cfg, const char *what)
{
    static const char *const off[] = {"use_exponential_sigmas", "use_beta_sigmas", NULL};
    const char *tt;
    int rc;
    if ((rc = ldm_json_get_bool(cfg, "use_karras_sigmas", &s->karras, 0)) ||
        (rc = ldm_json_get_real(cfg, "sigma_min", &s->sigma_min, NAN)) ||
        (rc = ldm_json_get_real(cfg, "sigma_max", &s->sigma_max, NAN)) ||
        (rc = ldm_json_get_str(cfg, "timestep_type", &tt, "discrete")))
        return fail_in(rc, what);
    if (strcmp(tt, "discrete") != 0 && !(strcmp(tt, "continuous") == 0 && s->pred != LDM_PRED_V))
        return ldm_fail(LDM_EUNSUPPORTED, "%s: timestep_type \"%s\" is not supported with this "
                                          "prediction_type", what, tt);
    if ((rc = refuse_value(cfg, "interpolation_type", "linear", what)) ||
        (rc = refuse_value(cfg, "final_sigmas_type", "zero", what)))
        return rc;
    return refuse_true(cfg, off, what);
}

static int read_flow(struct ldm_sampler *s, const json_t *cfg, const char *what)
{
    static const char *const off[] = {"use_dynamic_shifting", "invert_sigmas", "use_karras_sigmas",
                                      "use_exponential_sigmas", "use_beta_sigmas", NULL};
    double term;
    int rc;
    if ((rc = ldm_json_get_int(cfg, "num_train_timesteps", &s->T, 1000)) ||
        (rc = ldm_json_get_real(cfg, "shift", &s->shift, 1.0)) ||
        (rc = ldm_json_get_real(cfg, "shift_terminal", &term, NAN)))
        return fail_in(rc, what);
    if (s->T < 1 || s->T > (1 << 24))
        return ldm_fail(LDM_ECONFIG, "%s: num_train_timesteps %lld is outside 1..%d", what,
                        (long long)s->T, 1 << 24);
    if (!(s->shift > 0))
        return ldm_fail(LDM_ECONFIG, "%s: shift %g must be positive", what, s->shift);
    if (!isnan(term))
        return ldm_fail(LDM_EUNSUPPORTED, "%s: shift_terminal is not supported", what);
    return refuse_true(cfg, off, what);
}

static int read_config(struct ldm_sampler *s, const json_t *cfg, int n, const char *what)
{
    int rc = s->kind == LDM_SAMPLER_FLOW ? read_flow(s, cfg, what) : read_schedule(s, cfg, what);
    if (!rc && (s->kind == LDM_SAMPLER_DDIM || s->kind == LDM_SAMPLER_PNDM))
        rc = read_ddim_pndm(s, cfg, what);
    if (!rc && s->kind == LDM_SAMPLER_EULER)
        rc = read_euler(s, cfg, what);
    if (rc)
        return rc;
    if (n < 1 || n > s->T)
        return ldm_fail(LDM_EINVAL, "%s: num_inference_steps %d is outside 1..%lld", what, n,
                        (long long)s->T);
    if (s->prk_calls && n < 4)
        return ldm_fail(LDM_EINVAL, "%s: PNDM without skip_prk_steps needs num_inference_steps "
                                    ">= 4, not %d", what, n);
    return 0;
}

int ldm_sampler_new(struct ldm_sampler **out, const json_t *config, const char *kind,
                    int num_inference_steps, double eta, const char *what)
{
    *out = NULL;
    what = what ? what : "scheduler config";
    if (!json_is_object(config))
        return ldm_fail(LDM_EINVAL, "%s: the scheduler config is not a JSON object", what);
    if (!(eta >= 0))
        return ldm_fail(LDM_EINVAL, "%s: eta %g must be >= 0", what, eta);
    struct ldm_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return ldm_fail(LDM_ENOMEM, "%s: sampler", what);
    s->n_inference = num_inference_steps;
    s->eta = eta;
    int rc = pick_kind(config, kind, what, &s->kind);
    if (!rc)
        rc = read_config(s, config, num_inference_steps, what);
    if (!rc)
        rc = sp_build_timesteps(s, what);
    if (rc) {
        ldm_sampler_free(&s);
        return rc;
    }
    if (eta > 0 && s->kind != LDM_SAMPLER_DDIM)
        LOG_WARN("eta applies to DDIM only; ignored", "config=%s kind=%s eta=%g", what,
                 kind_names[s->kind], eta);
    LOG_DEBUG("sampler ready", "config=%s kind=%s steps=%d calls=%d eta=%g", what,
              kind_names[s->kind], num_inference_steps, s->steps, eta);
    *out = s;
    return 0;
}

void ldm_sampler_free(struct ldm_sampler **sp)
{
    struct ldm_sampler *s = sp ? *sp : NULL;
    if (!s)
        return;
    ldm_sched_free(&s->sched);
    free(s->t_int);
    free(s->timesteps);
    free(s->sigmas);
    free(s->hist);
    free(s->noise);
    free(s);
    *sp = NULL;
}

int ldm_sampler_kind(const struct ldm_sampler *s)
{
    return s->kind;
}

const char *ldm_sampler_kind_name(int kind)
{
    return kind >= LDM_SAMPLER_DDIM && kind <= LDM_SAMPLER_FLOW ? kind_names[kind] : "unknown";
}

int ldm_sampler_steps(const struct ldm_sampler *s)
{
    return s->steps;
}

float ldm_sampler_timestep(const struct ldm_sampler *s, int i)
{
    return i >= 0 && i < s->steps ? s->timesteps[i] : NAN;
}

float ldm_sampler_sigma(const struct ldm_sampler *s, int i)
{
    return s->sigmas && i >= 0 && i <= s->steps ? s->sigmas[i] : NAN;
}

float ldm_sampler_init_noise_sigma(const struct ldm_sampler *s)
{
    return s->init_sigma;
}

static int check_call(const struct ldm_sampler *s, int i, int64_t n, const char *op)
{
    if (i < 0 || i >= s->steps)
        return ldm_fail(LDM_ERANGE, "%s sampler %s: call %d is outside 0..%d", kind_names[s->kind],
                        op, i, s->steps - 1);
    if (n < 1)
        return ldm_fail(LDM_EINVAL, "%s sampler %s: %lld elements", kind_names[s->kind], op,
                        (long long)n);
    return 0;
}

int ldm_sampler_scale_input(const struct ldm_sampler *s, int i, float *out, const float *sample,
                            int64_t n)
{
    int rc = check_call(s, i, n, "scale_input");
    if (rc)
        return rc;
    if (s->kind != LDM_SAMPLER_EULER) {
        if (out != sample)
            memmove(out, sample, (size_t)n * sizeof(float));
        return 0;
    }
    float sigma = s->sigmas[i];
    float sq = sigma * sigma;
    float den = sqrtf(sq + 1.0f);
    for (int64_t j = 0; j < n; j++)
        out[j] = sample[j] / den;
    return 0;
}

/* Call 0 (re)starts the loop; PNDM then (re)sizes its history for n. */
static int start_or_continue(struct ldm_sampler *s, int i, int64_t n)
{
    const char *name = kind_names[s->kind];
    if (i != 0 && i != s->next)
        return ldm_fail(LDM_EINVAL, "%s sampler step: call %d out of order (call %d is next)", name,
                        i, s->next);
    if (s->kind != LDM_SAMPLER_PNDM)
        return 0;
    if (i != 0) {
        if (n != s->n)
            return ldm_fail(LDM_EINVAL, "pndm sampler step: call %d has %lld elements, call 0 had "
                                        "%lld", i, (long long)n, (long long)s->n);
        return 0;
    }
    s->nets = 0;
    s->ets_head = 0;
    if (n != s->n) {
        free(s->hist);
        s->n = 0;
        if (!(s->hist = malloc((size_t)n * 6 * sizeof(float))))
            return ldm_fail(LDM_ENOMEM, "pndm sampler: a history of 6 x %lld floats", (long long)n);
        s->n = n;
    }
    return 0;
}

/* DDIM's variance noise: the caller's, or n draws from its stream. */
static int ddim_noise(struct ldm_sampler *s, int i, int64_t n, struct ldm_rng *rng,
                      const float **noise)
{
    if (*noise || !(s->eta > 0))
        return 0;
    if (!rng)
        return ldm_fail(LDM_EINVAL, "ddim sampler step: call %d: eta %g needs noise or an rng", i,
                        s->eta);
    if (n > s->noise_n) {
        free(s->noise);
        s->noise_n = 0;
        if (!(s->noise = malloc((size_t)n * sizeof(float))))
            return ldm_fail(LDM_ENOMEM, "ddim sampler: %lld noise floats", (long long)n);
        s->noise_n = n;
    }
    ldm_sampler_randn(rng, s->noise, n);
    *noise = s->noise;
    return 0;
}

int ldm_sampler_step(struct ldm_sampler *s, int i, const float *model_output, float *sample,
                     int64_t n, struct ldm_rng *rng, const float *noise)
{
    int rc = check_call(s, i, n, "step");
    if (!rc)
        rc = start_or_continue(s, i, n);
    if (!rc && s->kind == LDM_SAMPLER_DDIM)
        rc = ddim_noise(s, i, n, rng, &noise);
    if (rc)
        return rc;
    switch (s->kind) {
    case LDM_SAMPLER_DDIM: sp_step_ddim(s, i, model_output, sample, n, noise); break;
    case LDM_SAMPLER_PNDM: sp_step_pndm(s, i, model_output, sample, n); break;
    case LDM_SAMPLER_EULER: sp_step_euler(s, i, model_output, sample, n); break;
    default: sp_step_flow(s, i, model_output, sample, n); break;
    }
    s->next = i + 1;
    return 0;
}

int ldm_sampler_randn(struct ldm_rng *r, float *out, int64_t n)
{
    if (n < 0)
        return ldm_fail(LDM_EINVAL, "randn: %lld elements", (long long)n);
    for (int64_t k = 0; k < n; k += 2) {
        double u1 = ldm_rng_double(r), u2 = ldm_rng_double(r);
        double rad = sqrt(-2.0 * log(1.0 - u1)); /* 1 − u1 lies in (0, 1] */
        double th = 2.0 * M_PI * u2;
        out[k] = (float)(rad * cos(th));
        if (k + 1 < n)
            out[k + 1] = (float)(rad * sin(th));
    }
    return 0;
}

int ldm_cfg_combine(float *out, const float *uncond, const float *cond, int64_t n, double scale)
{
    if (n < 0)
        return ldm_fail(LDM_EINVAL, "cfg_combine: %lld elements", (long long)n);
    float g = (float)scale;
    for (int64_t j = 0; j < n; j++) {
        float d = cond[j] - uncond[j];
        float m = g * d;
        out[j] = uncond[j] + m;
    }
    return 0;
}

/* The unbiased standard deviation of x (S >= 2), in double, then float. */
static float std_f32(const float *x, int64_t S)
{
    double mean = 0, ss = 0;
    for (int64_t j = 0; j < S; j++)
        mean += x[j];
    mean /= (double)S;
    for (int64_t j = 0; j < S; j++) {
        double d = x[j] - mean;
        ss += d * d;
    }
    return (float)sqrt(ss / (double)(S - 1));
}

int ldm_cfg_rescale(float *noise_cfg, const float *cond, int64_t N, int64_t S,
                    double guidance_rescale)
{
    if (N < 0 || S < 2)
        return ldm_fail(LDM_EINVAL, "cfg_rescale: %lld samples of %lld elements (at least 2 "
                                    "needed)", (long long)N, (long long)S);
    float phi = (float)guidance_rescale, keep = (float)(1.0 - guidance_rescale);
    for (int64_t i = 0; i < N; i++) {
        float *x = noise_cfg + i * S;
        float r = std_f32(cond + i * S, S) / std_f32(x, S);
        for (int64_t j = 0; j < S; j++) {
            float p = x[j] * r;
            float a = phi * p;
            float b = keep * x[j];
            x[j] = a + b;
        }
    }
    return 0;
}

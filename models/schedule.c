/* schedule.c — DDPMScheduler betas, alphas_cumprod, add_noise and get_velocity as diffusers computes them. */
#include "models/schedule.h"
#include "err.h"
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* torch.linspace's CPU lanes: values are produced 8 at a time from a base. */
#define LINSPACE_LANES 8
#define COS_MAX_BETA 0.999

void ldm_sched_config_default(struct ldm_sched_config *cfg)
{
    cfg->num_train_timesteps = 1000;
    cfg->beta_schedule = LDM_BETA_LINEAR;
    cfg->beta_start = 0.0001;
    cfg->beta_end = 0.02;
    cfg->rescale_betas_zero_snr = 0;
    cfg->prediction_type = LDM_PRED_EPSILON;
}

/* Prefix the current error detail with `what` (the detail is copied first:
 * ldm_fail overwrites it). */
static int fail_in(int rc, const char *what)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s", ldm_errmsg());
    return ldm_fail(rc, "%s: %s", what, detail);
}

static int parse_name(const char *what, const char *key, const char *v, const char *const *names,
                      int *out)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return 0;
        }
    return ldm_fail(LDM_EUNSUPPORTED, "%s: %s \"%s\" is not supported", what, key, v);
}

static int check_config(const struct ldm_sched_config *cfg, const char *what)
{
    if (cfg->num_train_timesteps < 1 || cfg->num_train_timesteps > (1 << 24))
        return ldm_fail(LDM_ECONFIG, "%s: num_train_timesteps %lld is outside 1..%d", what,
                        (long long)cfg->num_train_timesteps, 1 << 24);
    if (cfg->beta_schedule == LDM_BETA_SQUAREDCOS_CAP_V2)
        return 0;
    if (!(cfg->beta_start > 0 && cfg->beta_start < 1 && cfg->beta_end > 0 && cfg->beta_end < 1))
        return ldm_fail(LDM_ECONFIG, "%s: beta_start %g and beta_end %g must lie in (0, 1)", what,
                        cfg->beta_start, cfg->beta_end);
    if (cfg->beta_end < cfg->beta_start)
        return ldm_fail(LDM_ECONFIG, "%s: beta_end %g is below beta_start %g", what,
                        cfg->beta_end, cfg->beta_start);
    return 0;
}

static int read_names(struct ldm_sched_config *cfg, const json_t *obj, const char *what)
{
    static const char *const schedules[] = {"linear", "scaled_linear", "squaredcos_cap_v2", NULL};
    static const char *const preds[] = {"epsilon", "v_prediction", "sample", NULL};
    const char *sched, *pred;
    int rc;
    if ((rc = ldm_json_get_str(obj, "beta_schedule", &sched, "linear")) != 0 ||
        (rc = ldm_json_get_str(obj, "prediction_type", &pred, "epsilon")) != 0)
        return fail_in(rc, what);
    if ((rc = parse_name(what, "beta_schedule", sched, schedules, &cfg->beta_schedule)) != 0)
        return rc;
    return parse_name(what, "prediction_type", pred, preds, &cfg->prediction_type);
}

int ldm_sched_config_from_json(struct ldm_sched_config *cfg, const json_t *obj, const char *what)
{
    ldm_sched_config_default(cfg);
    int rc;
    if ((rc = ldm_json_get_int(obj, "num_train_timesteps", &cfg->num_train_timesteps, 1000)) ||
        (rc = ldm_json_get_real(obj, "beta_start", &cfg->beta_start, 0.0001)) ||
        (rc = ldm_json_get_real(obj, "beta_end", &cfg->beta_end, 0.02)) ||
        (rc = ldm_json_get_bool(obj, "rescale_betas_zero_snr", &cfg->rescale_betas_zero_snr, 0)))
        return fail_in(rc, what);
    if ((rc = read_names(cfg, obj, what)) != 0)
        return rc;
    const json_t *tb = json_object_get(obj, "trained_betas");
    if (tb && !json_is_null(tb))
        return ldm_fail(LDM_EUNSUPPORTED, "%s: trained_betas is not supported", what);
    return check_config(cfg, what);
}

/* torch.linspace(start, end, T, dtype=float32) on the CPU: a step in
 * float32; each group of 8 starts from a fused start + step·i (the first
 * half) or end − step·(T−1−i) (the second half) and adds k·step per lane. */
static void linspace_f32(float *out, double start_d, double end_d, int64_t T)
{
    float start = (float)start_d, end = (float)end_d;
    float step = T > 1 ? (end - start) / (float)(T - 1) : 0.0f;
    int64_t half = T / 2;
    for (int64_t i0 = 0; i0 < T; i0 += LINSPACE_LANES) {
        int64_t n = T - i0 < LINSPACE_LANES ? T - i0 : LINSPACE_LANES;
        if (n < LINSPACE_LANES) { /* the tail runs element by element */
            for (int64_t i = i0; i < T; i++)
                out[i] = i < half ? fmaf(step, (float)i, start)
                                  : fmaf(-step, (float)(T - 1 - i), end);
            break;
        }
        float base = i0 < half ? fmaf(step, (float)i0, start)
                               : fmaf(-step, (float)(T - 1 - i0), end);
        for (int64_t k = 0; k < n; k++) {
            float kstep = (float)k * step;
            out[i0 + k] = base + kstep;
        }
    }
}

/* diffusers betas_for_alpha_bar (cosine): float64, then float32. */
static double alpha_bar_cos(double t)
{
    double c = cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
}

static void betas_cosine(float *out, int64_t T)
{
    for (int64_t i = 0; i < T; i++) {
        double t1 = (double)i / (double)T, t2 = (double)(i + 1) / (double)T;
        double b = 1 - alpha_bar_cos(t2) / alpha_bar_cos(t1);
        out[i] = (float)(b < COS_MAX_BETA ? b : COS_MAX_BETA);
    }
}

/* cumprod(1 − betas) as torch on the CPU: float32 factors, a float64
 * running product, float32 outputs. */
static void cumprod_alphas(float *out, const float *betas, int64_t T)
{
    double acc = 1.0;
    for (int64_t i = 0; i < T; i++) {
        float a = 1.0f - betas[i];
        acc *= (double)a;
        out[i] = (float)acc;
    }
}

/* diffusers rescale_zero_terminal_snr, in float32 (cumprod as above);
 * `tmp` holds T floats. Rewrites betas in place. */
static void rescale_zero_snr(float *betas, float *tmp, int64_t T)
{
    cumprod_alphas(tmp, betas, T);
    for (int64_t i = 0; i < T; i++)
        tmp[i] = sqrtf(tmp[i]);
    float s0 = tmp[0], sT = tmp[T - 1];
    float scale = s0 / (s0 - sT);
    for (int64_t i = 0; i < T; i++) {
        float v = (tmp[i] - sT) * scale;
        tmp[i] = v * v; /* alphas_bar */
    }
    betas[0] = 1.0f - tmp[0];
    for (int64_t i = 1; i < T; i++)
        betas[i] = 1.0f - tmp[i] / tmp[i - 1];
}

static void make_betas(float *betas, const struct ldm_sched_config *cfg, int64_t T)
{
    if (cfg->beta_schedule == LDM_BETA_LINEAR) {
        linspace_f32(betas, cfg->beta_start, cfg->beta_end, T);
    } else if (cfg->beta_schedule == LDM_BETA_SCALED_LINEAR) {
        linspace_f32(betas, sqrt(cfg->beta_start), sqrt(cfg->beta_end), T);
        for (int64_t i = 0; i < T; i++)
            betas[i] = betas[i] * betas[i];
    } else {
        betas_cosine(betas, T);
    }
}

int ldm_sched_init(struct ldm_schedule *s, const struct ldm_sched_config *cfg)
{
    memset(s, 0, sizeof *s);
    int rc = check_config(cfg, "scheduler config");
    if (rc)
        return rc;
    if (cfg->beta_schedule < LDM_BETA_LINEAR || cfg->beta_schedule > LDM_BETA_SQUAREDCOS_CAP_V2)
        return ldm_fail(LDM_ECONFIG, "scheduler config: beta_schedule %d is unknown",
                        cfg->beta_schedule);
    int64_t T = cfg->num_train_timesteps;
    if (cfg->rescale_betas_zero_snr && T < 2)
        return ldm_fail(LDM_ECONFIG, "scheduler config: rescale_betas_zero_snr needs "
                                     "num_train_timesteps >= 2, not %lld", (long long)T);
    s->betas = malloc((size_t)T * sizeof(float));
    s->alphas_cumprod = malloc((size_t)T * sizeof(float));
    if (!s->betas || !s->alphas_cumprod) {
        ldm_sched_free(s);
        return ldm_fail(LDM_ENOMEM, "schedule: %lld timesteps", (long long)T);
    }
    s->T = T;
    make_betas(s->betas, cfg, T);
    if (cfg->rescale_betas_zero_snr)
        rescale_zero_snr(s->betas, s->alphas_cumprod, T);
    cumprod_alphas(s->alphas_cumprod, s->betas, T);
    return 0;
}

void ldm_sched_free(struct ldm_schedule *s)
{
    free(s->betas);
    free(s->alphas_cumprod);
    memset(s, 0, sizeof *s);
}

/* out = a·p + b·q per sample, with (a, b) from the sample's timestep:
 * velocity = 0 gives (sqrt ᾱ, sqrt(1−ᾱ)) on (x0, noise), 1 gives
 * (sqrt ᾱ, −sqrt(1−ᾱ)) on (noise, x0). */
static int mix(const struct ldm_schedule *s, float *out, const float *x0, const float *noise,
               const int64_t *timesteps, int64_t N, int64_t S, int velocity)
{
    for (int64_t n = 0; n < N; n++) {
        int64_t t = timesteps[n];
        if (t < 0 || t >= s->T)
            return ldm_fail(LDM_ERANGE, "%s: timestep %lld of sample %lld is outside 0..%lld",
                            velocity ? "get_velocity" : "add_noise", (long long)t, (long long)n,
                            (long long)(s->T - 1));
        float ac = s->alphas_cumprod[t];
        float a = sqrtf(ac), b = sqrtf(1.0f - ac);
        const float *p = (velocity ? noise : x0) + n * S, *q = (velocity ? x0 : noise) + n * S;
        float *o = out + n * S;
        for (int64_t i = 0; i < S; i++) {
            float ap = a * p[i], bq = b * q[i];
            o[i] = velocity ? ap - bq : ap + bq;
        }
    }
    return 0;
}

int ldm_sched_add_noise(const struct ldm_schedule *s, float *out, const float *x0,
                        const float *noise, const int64_t *timesteps, int64_t N, int64_t S)
{
    return mix(s, out, x0, noise, timesteps, N, S, 0);
}

int ldm_sched_velocity(const struct ldm_schedule *s, float *out, const float *x0,
                       const float *noise, const int64_t *timesteps, int64_t N, int64_t S)
{
    return mix(s, out, x0, noise, timesteps, N, S, 1);
}

/* objective.c — noise, timesteps, targets and min-SNR weights of a micro-batch. */
#include <math.h>
#include <string.h>

#include "err.h"
#include "rng.h"
#include "trainerd/objective.h"

/* Streams of one sample's seed: what each draws. */
enum { ST_TIME = 0, ST_NOISE = 1, ST_OFFSET = 2 };

uint64_t td_sample_seed(uint64_t seed, int64_t step, int64_t gpos)
{
    uint64_t h = ldm_rng_mix(seed ^ 0x7472616e65726421ull);
    h = ldm_rng_mix(h ^ (uint64_t)step);
    return ldm_rng_mix(h + (uint64_t)gpos * 0x9E3779B97F4A7C15ull);
}

float td_gauss(struct ldm_rng *r)
{
    double u1 = ldm_rng_double(r), u2 = ldm_rng_double(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

int td_pred_parse(const char *name, const char *key, int *out)
{
    if (!strcmp(name, "epsilon"))
        *out = TD_PRED_EPSILON;
    else if (!strcmp(name, "v_prediction"))
        *out = TD_PRED_V;
    else if (!strcmp(name, "flow") || !strcmp(name, "flow_matching"))
        *out = TD_PRED_FLOW;
    else
        return ldm_fail(LDM_ECONFIG, "%s: '%s' is not epsilon, v_prediction or flow", key, name);
    return 0;
}

int td_tsample_parse(const char *name, const char *key, int *out)
{
    if (!strcmp(name, "uniform"))
        *out = TD_TS_UNIFORM;
    else if (!strcmp(name, "logit_normal"))
        *out = TD_TS_LOGIT_NORMAL;
    else
        return ldm_fail(LDM_ECONFIG, "%s: '%s' is not uniform or logit_normal", key, name);
    return 0;
}

/* ε for one sample, offset noise included. */
static void draw_noise(const struct td_objective *o, uint64_t seed, int64_t C, int64_t S,
                       float *eps)
{
    struct ldm_rng r;
    ldm_rng_init(&r, seed, ST_NOISE);
    for (int64_t i = 0; i < C * S; i++)
        eps[i] = td_gauss(&r);
    if (o->noise_offset > 0) {
        ldm_rng_init(&r, seed, ST_OFFSET);
        for (int64_t c = 0; c < C; c++) {
            float off = (float)o->noise_offset * td_gauss(&r);
            for (int64_t i = 0; i < S; i++)
                eps[c * S + i] += off;
        }
    }
}

/* The flow objective for one sample. */
static void flow_one(const struct td_objective *o, uint64_t seed, const float *x0, int64_t n,
                     const float *eps, float *noisy, float *target, float *tstep)
{
    struct ldm_rng r;
    ldm_rng_init(&r, seed, ST_TIME);
    double u;
    if (o->tsample == TD_TS_LOGIT_NORMAL)
        u = 1.0 / (1.0 + exp(-(o->logit_mean + o->logit_std * (double)td_gauss(&r))));
    else
        u = ldm_rng_double(&r);
    float s = (float)u;
    for (int64_t i = 0; i < n; i++) {
        noisy[i] = (1.0f - s) * x0[i] + s * eps[i];
        target[i] = eps[i] - x0[i];
    }
    *tstep = s * (float)o->T;
}

/* The min-SNR-γ weight of timestep t. */
static float snr_weight(const struct td_objective *o, int64_t t)
{
    float ac = o->sched->alphas_cumprod[t];
    float alpha = sqrtf(ac), sigma = sqrtf(1.0f - ac);
    float snr = (alpha / sigma) * (alpha / sigma);
    float m = snr < (float)o->snr_gamma ? snr : (float)o->snr_gamma;
    return o->pred == TD_PRED_V ? m / (snr + 1.0f) : m / snr;
}

int td_objective_apply(const struct td_objective *o, const float *x0, int64_t N, int64_t C,
                       int64_t S, const uint64_t *seeds, float *noisy, float *tsteps,
                       float *target, float *weights)
{
    if (o->snr_gamma > 0 && o->pred == TD_PRED_FLOW)
        return ldm_fail(LDM_EINVAL, "snr_gamma: min-SNR weighting needs epsilon or "
                        "v_prediction, not flow");
    int64_t n = C * S;
    for (int64_t k = 0; k < N; k++) {
        const float *x = x0 + k * n;
        float *eps = target + k * n; /* the noise is drawn into the target's place */
        draw_noise(o, seeds[k], C, S, eps);
        if (o->pred == TD_PRED_FLOW) {
            flow_one(o, seeds[k], x, n, eps, noisy + k * n, eps, &tsteps[k]);
            continue;
        }
        struct ldm_rng r;
        ldm_rng_init(&r, seeds[k], ST_TIME);
        int64_t t = (int64_t)ldm_rng_below(&r, (uint64_t)o->sched->T);
        tsteps[k] = (float)t;
        int rc = ldm_sched_add_noise(o->sched, noisy + k * n, x, eps, &t, 1, n);
        if (!rc && o->pred == TD_PRED_V)
            rc = ldm_sched_velocity(o->sched, eps, x, eps, &t, 1, n);
        if (rc)
            return rc;
        if (weights && o->snr_gamma > 0)
            weights[k] = snr_weight(o, t);
    }
    return 0;
}

/* sampler_step.c — one step of each sampler kind in float32, every operation in the order
 * diffusers' torch code performs it (one rounding per torch op, no fused multiply-add), so
 * that a step equals diffusers' on a CPU bit for bit. */
#include <math.h>
#include <string.h>

#include "models/sampler_int.h"

static float alpha_at(const struct ldm_sampler *s, int64_t t)
{
    return t >= 0 ? s->sched.alphas_cumprod[t] : s->final_ac;
}

/* DDIMScheduler.step: x0 and ε from the prediction, x0 clipped when asked,
 * x_prev = √ᾱ_prev·x0 + √(1 − ᾱ_prev − std²)·ε (+ std·noise), where
 * std = η·√((1 − ᾱ_prev)/(1 − ᾱ_t)·(1 − ᾱ_t/ᾱ_prev)). */
void sp_step_ddim(const struct ldm_sampler *s, int i, const float *mo, float *x, int64_t n,
                  const float *noise)
{
    int64_t t = s->t_int[i], prev = t - s->T / s->n_inference;
    float a_t = alpha_at(s, t), a_prev = alpha_at(s, prev);
    float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    float sa = sqrtf(a_t), sb = sqrtf(b_t), sap = sqrtf(a_prev);
    float ratio = a_t / a_prev, bratio = b_prev / b_t;
    float var = bratio * (1.0f - ratio);
    float std = (float)s->eta * sqrtf(var);
    float std2 = std * std;
    float dc = sqrtf(b_prev - std2);
    float lo = (float)-s->clip_range, hi = (float)s->clip_range;
    for (int64_t j = 0; j < n; j++) {
        float x0, e, p, q;
        if (s->pred == LDM_PRED_EPSILON) {
            p = sb * mo[j];
            q = x[j] - p;
            x0 = q / sa;
            e = mo[j];
        } else if (s->pred == LDM_PRED_SAMPLE) {
            x0 = mo[j];
            p = sa * x0;
            q = x[j] - p;
            e = q / sb;
        } else {
            p = sa * x[j];
            q = sb * mo[j];
            x0 = p - q;
            p = sa * mo[j];
            q = sb * x[j];
            e = p + q;
        }
        if (s->clip_sample)
            x0 = x0 < lo ? lo : x0 > hi ? hi : x0;
        p = sap * x0;
        q = dc * e;
        float out = p + q;
        if (s->eta > 0) {
            float r = std * noise[j];
            out = out + r;
        }
        x[j] = out;
    }
}

/* The model output PNDM steps with, element by element: the call's own, or
 * a combination of it and the kept ones (ets). */
struct pndm_mix {
    const float *e[4]; /* ets[-1], ets[-2], ... */
    const float *mo;
    int mode;          /* 0 as is, 1 (mo + e1)/2, 2..4 Adams–Bashforth of order 2..4 */
};

static float combine(const struct pndm_mix *m, int64_t j)
{
    const float *const *e = m->e;
    float a, b, c, d;
    switch (m->mode) {
    case 1:
        a = m->mo[j] + e[0][j];
        return a / 2.0f;
    case 2:
        a = 3.0f * e[0][j];
        a = a - e[1][j];
        return a / 2.0f;
    case 3:
        a = 23.0f * e[0][j];
        b = 16.0f * e[1][j];
        c = 5.0f * e[2][j];
        a = a - b;
        a = a + c;
        return a / 12.0f;
    case 4:
        a = 55.0f * e[0][j];
        b = 59.0f * e[1][j];
        c = 37.0f * e[2][j];
        d = 9.0f * e[3][j];
        a = a - b;
        a = a + c;
        a = a - d;
        return (float)(1.0 / 24.0) * a;
    default:
        return m->mo[j];
    }
}

/* PNDMScheduler._get_prev_sample from xin into xout (may be the same):
 * x_prev = √(ᾱ_prev/ᾱ_t)·x − (ᾱ_prev − ᾱ_t)·m / (ᾱ_t·√(1 − ᾱ_prev) + √(ᾱ_t(1 − ᾱ_t)ᾱ_prev)),
 * m the mixed model output (turned into ε first for v-prediction). */
static void pndm_prev(const struct ldm_sampler *s, int64_t t, int64_t prev,
                      const struct pndm_mix *mix, const float *xin, float *xout, int64_t n)
{
    float a_t = alpha_at(s, t), a_prev = alpha_at(s, prev);
    float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    float sa = sqrtf(a_t), sb = sqrtf(b_t);
    float coeff = sqrtf(a_prev / a_t);
    float d1 = a_t * sqrtf(b_prev);
    float ab = a_t * b_t;
    float abc = ab * a_prev;
    float denom = d1 + sqrtf(abc);
    float diff = a_prev - a_t;
    for (int64_t j = 0; j < n; j++) {
        float m = combine(mix, j), p, q;
        if (s->pred == LDM_PRED_V) {
            p = sa * m;
            q = sb * xin[j];
            m = p + q;
        }
        p = coeff * xin[j];
        q = diff * m;
        q = q / denom;
        xout[j] = p - q;
    }
}

/* The PNDM history: ets[4] (a ring), cur_sample, cur_model_output. */
static float *ets_slot(struct ldm_sampler *s, int age) /* age 0: the newest */
{
    return s->hist + (size_t)((s->ets_head - age + 4) % 4) * (size_t)s->n;
}

static void ets_push(struct ldm_sampler *s, const float *mo, int64_t n)
{
    s->ets_head = (s->ets_head + 1) % 4;
    memcpy(ets_slot(s, 0), mo, (size_t)n * sizeof(float));
    if (s->nets < 4)
        s->nets++;
}

/* The Runge–Kutta warm-up call i (< 12): four groups of four calls around
 * the group's first timestep, the model outputs weighted 1/6, 1/3, 1/3, 1/6. */
static void pndm_prk(struct ldm_sampler *s, int i, const float *mo, float *x, int64_t n)
{
    float *cur_sample = s->hist + 4 * (size_t)n, *cur_mo = cur_sample + n;
    int64_t half = s->T / s->n_inference / 2;
    int64_t prev = s->t_int[i] - (i % 2 ? 0 : half), t = s->t_int[i / 4 * 4];
    float sixth = (float)(1.0 / 6.0), third = (float)(1.0 / 3.0);
    struct pndm_mix mix = {.mo = mo, .mode = 0};
    float *m4 = NULL;
    if (i % 4 == 0) {
        for (int64_t j = 0; j < n; j++)
            cur_mo[j] = sixth * mo[j];
        ets_push(s, mo, n);
        memcpy(cur_sample, x, (size_t)n * sizeof(float));
    } else if (i % 4 != 3) {
        for (int64_t j = 0; j < n; j++) {
            float p = third * mo[j];
            cur_mo[j] = cur_mo[j] + p;
        }
    } else {
        m4 = cur_mo; /* cur_model_output + mo/6; the next group starts it afresh */
        for (int64_t j = 0; j < n; j++) {
            float p = sixth * mo[j];
            m4[j] = m4[j] + p;
        }
        mix.mo = m4;
    }
    pndm_prev(s, t, prev, &mix, cur_sample, x, n);
}

/* The linear multistep call i (PLMS). Call 1 of skip_prk_steps repeats call
 * 0's step from the same sample with the mean of both model outputs. */
static void pndm_plms(struct ldm_sampler *s, int i, const float *mo, float *x, int64_t n)
{
    float *cur_sample = s->hist + 4 * (size_t)n;
    int64_t ratio = s->T / s->n_inference, t = s->t_int[i], prev = t - ratio;
    if (i != 1) {
        ets_push(s, mo, n);
    } else {
        prev = t;
        t = t + ratio;
    }
    struct pndm_mix mix = {.mo = mo, .mode = 0};
    for (int k = 0; k < s->nets; k++)
        mix.e[k] = ets_slot(s, k);
    const float *xin = x;
    if (s->nets == 1 && i == 0) {
        memcpy(cur_sample, x, (size_t)n * sizeof(float));
    } else if (s->nets == 1 && i == 1) {
        mix.mode = 1;
        xin = cur_sample;
    } else {
        mix.mode = s->nets;
    }
    pndm_prev(s, t, prev, &mix, xin, x, n);
}

void sp_step_pndm(struct ldm_sampler *s, int i, const float *mo, float *x, int64_t n)
{
    if (i < s->prk_calls)
        pndm_prk(s, i, mo, x, n);
    else
        pndm_plms(s, i, mo, x, n);
}

/* EulerDiscreteScheduler.step without churn (σ̂ = σ): x0 from the prediction,
 * x_prev = x + (x − x0)/σ̂ · (σ_next − σ̂). */
void sp_step_euler(const struct ldm_sampler *s, int i, const float *mo, float *x, int64_t n)
{
    float sigma = s->sigmas[i];
    float sh = sigma * 1.0f;
    float dt = s->sigmas[i + 1] - sh;
    float sq = sigma * sigma;
    float den = sq + 1.0f;
    float c_out = -sigma / sqrtf(den);
    for (int64_t j = 0; j < n; j++) {
        float x0, p, q;
        if (s->pred == LDM_PRED_EPSILON) {
            p = sh * mo[j];
            x0 = x[j] - p;
        } else if (s->pred == LDM_PRED_V) {
            p = mo[j] * c_out;
            q = x[j] / den;
            x0 = p + q;
        } else {
            x0 = mo[j];
        }
        float d = x[j] - x0;
        d = d / sh;
        d = d * dt;
        x[j] = x[j] + d;
    }
}

/* FlowMatchEulerDiscreteScheduler.step: x_prev = x + (σ_next − σ)·v. */
void sp_step_flow(const struct ldm_sampler *s, int i, const float *mo, float *x, int64_t n)
{
    float dt = s->sigmas[i + 1] - s->sigmas[i];
    for (int64_t j = 0; j < n; j++) {
        float p = dt * mo[j];
        x[j] = x[j] + p;
    }
}

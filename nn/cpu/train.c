/* train.c — CPU weighted MSE loss, global-norm gradient clipping and AdamW. */
#include <math.h>

#include "nn/cpu/cpu.h"

#define GRAIN 32768
#define PARTS 64 /* partial sums of a parallel reduction */

/* ---- MSE ------------------------------------------------------------------------------ */

struct mse_job {
    const struct ldm_train_dims *d;
    const float *p, *t, *w;
    float *dp, *dt;
    float g;         /* backward: dloss / (N·S), times 2 */
    double *partial; /* forward: per sample Σ (p − t)² */
};

static void mse_fwd_sample(void *vj, int64_t n, int thread)
{
    (void)thread;
    struct mse_job *j = vj;
    int64_t S = j->d->S;
    const float *p = j->p + n * S, *t = j->t + n * S;
    double s = 0.0;
    for (int64_t i = 0; i < S; i++) {
        double e = (double)p[i] - t[i];
        s += e * e;
    }
    j->partial[n] = s;
}

int cpu_mse_fwd(struct ldm_ctx *c, const struct ldm_train_dims *d, float *loss, const void *pred,
                const void *target, const float *weights)
{
    double acc = 0.0;
    for (int64_t n0 = 0; n0 < d->N; n0 += PARTS) { /* samples in groups of PARTS */
        double partial[PARTS];
        int64_t cnt = d->N - n0 < PARTS ? d->N - n0 : PARTS;
        struct mse_job j = {.d = d, .p = (const float *)pred + n0 * d->S,
                            .t = (const float *)target + n0 * d->S, .partial = partial};
        cpu_tasks(c, cnt, mse_fwd_sample, &j);
        for (int64_t i = 0; i < cnt; i++)
            acc += (weights ? (double)weights[n0 + i] : 1.0) * (partial[i] / (double)d->S);
    }
    *loss = (float)(acc / (double)d->N);
    return 0;
}

static void mse_bwd_range(void *vj, int64_t b, int64_t e, int thread)
{
    (void)thread;
    struct mse_job *j = vj;
    for (int64_t i = b; i < e; i++) {
        float w = j->w ? j->w[i / j->d->S] : 1.0f;
        float g = j->g * w * (j->p[i] - j->t[i]);
        if (j->dp)
            j->dp[i] += g;
        if (j->dt)
            j->dt[i] -= g;
    }
}

int cpu_mse_bwd(struct ldm_ctx *c, const struct ldm_train_dims *d, void *dpred, void *dtarget,
                float dloss, const void *pred, const void *target, const float *weights)
{
    struct mse_job j = {.d = d, .p = pred, .t = target, .w = weights, .dp = dpred,
                        .dt = dtarget,
                        .g = (float)(2.0 * (double)dloss / ((double)d->N * (double)d->S))};
    cpu_for(c, d->N * d->S, GRAIN, mse_bwd_range, &j);
    return 0;
}

/* ---- gradient clipping ------------------------------------------------------------------- */

struct sq_job {
    float *g;
    int64_t n, parts;
    double partial[PARTS];
    float coef;
};

static void sq_part(void *vj, int64_t t, int thread)
{
    (void)thread;
    struct sq_job *j = vj;
    int64_t b = j->n * t / j->parts, e = j->n * (t + 1) / j->parts;
    double s = 0.0;
    for (int64_t i = b; i < e; i++)
        s += (double)j->g[i] * j->g[i];
    j->partial[t] = s;
}

static void scale_part(void *vj, int64_t t, int thread)
{
    (void)thread;
    struct sq_job *j = vj;
    int64_t b = j->n * t / j->parts, e = j->n * (t + 1) / j->parts;
    for (int64_t i = b; i < e; i++)
        j->g[i] *= j->coef;
}

static int64_t parts_for(struct ldm_ctx *c, int64_t n)
{
    int64_t p = (n + GRAIN - 1) / GRAIN, most = 4 * (int64_t)c->threads;
    p = p < most ? p : most;
    p = p < PARTS ? p : PARTS;
    return p > 0 ? p : 1;
}

int cpu_clip_norm(struct ldm_ctx *c, const struct ldm_train_dims *d, float *const *grads,
                  float *norm)
{
    double total = 0.0;
    for (int64_t i = 0; i < d->n; i++) {
        struct sq_job j = {.g = grads[i], .n = d->counts[i], .parts = parts_for(c, d->counts[i])};
        cpu_tasks(c, j.parts, sq_part, &j);
        for (int64_t t = 0; t < j.parts; t++)
            total += j.partial[t];
    }
    float nrm = (float)sqrt(total);
    *norm = nrm;
    if (!isfinite(nrm) || !(d->max_norm > 0.0f) || isinf(d->max_norm))
        return 0;
    float coef = d->max_norm / (nrm + 1e-6f);
    if (!(coef < 1.0f))
        return 0;
    for (int64_t i = 0; i < d->n; i++) {
        struct sq_job j = {.g = grads[i], .n = d->counts[i], .parts = parts_for(c, d->counts[i]),
                           .coef = coef};
        cpu_tasks(c, j.parts, scale_part, &j);
    }
    return 0;
}

/* ---- AdamW ----------------------------------------------------------------------------------- */

/* The float constants of one step, computed as torch's _single_tensor_adamw does. */
struct adamw_job {
    float *p, *m, *v;
    const float *g;
    float decay, b1, one_b1, b2, one_b2, bc2_sqrt, eps, neg_step;
};

static void adamw_range(void *vj, int64_t b, int64_t e, int thread)
{
    (void)thread;
    struct adamw_job *j = vj;
    for (int64_t i = b; i < e; i++) {
        float g = j->g[i];
        float p = j->p[i] * j->decay;
        float m = j->m[i] * j->b1 + j->one_b1 * g;
        float v = j->v[i] * j->b2 + j->one_b2 * g * g;
        float denom = sqrtf(v) / j->bc2_sqrt + j->eps;
        j->p[i] = p + j->neg_step * (m / denom);
        j->m[i] = m;
        j->v[i] = v;
    }
}

int cpu_adamw(struct ldm_ctx *c, const struct ldm_train_dims *d, float *param, const float *grad,
              float *m, float *v)
{
    double bc1 = 1.0 - pow(d->beta1, (double)d->step), bc2 = 1.0 - pow(d->beta2, (double)d->step);
    struct adamw_job j = {
        .p = param, .m = m, .v = v, .g = grad,
        .decay = (float)(1.0 - d->lr * d->weight_decay),
        .b1 = (float)d->beta1, .one_b1 = (float)(1.0 - d->beta1),
        .b2 = (float)d->beta2, .one_b2 = (float)(1.0 - d->beta2),
        .bc2_sqrt = (float)sqrt(bc2), .eps = (float)d->eps,
        .neg_step = (float)(-(d->lr / bc1)),
    };
    cpu_for(c, d->n, GRAIN, adamw_range, &j);
    return 0;
}

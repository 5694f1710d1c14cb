/* pointwise.c — CPU activations, GEGLU, softmax, add, broadcast add, transpose and concat. */
#include <math.h>
#include <string.h>

#include "nn/cpu/cpu.h"
#include "nn/cpu/vec.h"

#define GRAIN 16384 /* elements per task, at least */

static const float INV_SQRT2 = 0.70710678118654752f;
static const float INV_SQRT_2PI = 0.39894228040143268f;
static const float SQRT_2_OVER_PI = 0.79788456080286536f;

/* ---- activations ------------------------------------------------------------------------ */

static inline float gelu(float x)
{
    return 0.5f * x * (1.0f + erff(x * INV_SQRT2));
}

static inline float gelu_grad(float x)
{
    return 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
}

static inline float act_value(int act, float x)
{
    switch (act) {
    case LDM_ACT_SILU: return x * cpu_sigmoidf(x);
    case LDM_ACT_GELU: return gelu(x);
    case LDM_ACT_RELU: return x < 0.0f ? 0.0f : x; /* NaN stays NaN */
    case LDM_ACT_GELU_TANH: {
        float u = SQRT_2_OVER_PI * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    default: return x * cpu_sigmoidf(1.702f * x);
    }
}

static inline float act_grad(int act, float x)
{
    switch (act) {
    case LDM_ACT_SILU: {
        float s = cpu_sigmoidf(x);
        return s * (1.0f + x * (1.0f - s));
    }
    case LDM_ACT_GELU: return gelu_grad(x);
    case LDM_ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case LDM_ACT_GELU_TANH: {
        float x2 = x * x, u = SQRT_2_OVER_PI * (x + 0.044715f * x2 * x), t = tanhf(u);
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * SQRT_2_OVER_PI *
                                       (1.0f + 3.0f * 0.044715f * x2);
    }
    default: {
        float s = cpu_sigmoidf(1.702f * x);
        return s + 1.702f * x * s * (1.0f - s);
    }
    }
}

struct pw_job {
    const struct ldm_pointwise_dims *d;
    float *out;
    const float *in, *dy;
};

/* SiLU and QuickGELU run 8 lanes at a time; the GELUs call libm's erf/tanh. */
CPU_HOT static void act_fwd_range(void *vj, int64_t b, int64_t e, int thread)
{
    (void)thread;
    struct pw_job *j = vj;
    int act = j->d->act;
    if (act == LDM_ACT_SILU || act == LDM_ACT_QUICK_GELU) {
        cpu_silu_scaled(j->out + b, j->in + b, e - b, act == LDM_ACT_SILU ? 1.0f : 1.702f);
        return;
    }
    for (int64_t i = b; i < e; i++)
        j->out[i] = act_value(act, j->in[i]);
}

CPU_HOT static void act_bwd_range(void *vj, int64_t b, int64_t e, int thread)
{
    (void)thread;
    struct pw_job *j = vj;
    int act = j->d->act;
    if (act == LDM_ACT_SILU || act == LDM_ACT_QUICK_GELU) {
        cpu_silu_scaled_grad(j->out + b, j->dy + b, j->in + b, e - b,
                             act == LDM_ACT_SILU ? 1.0f : 1.702f);
        return;
    }
    for (int64_t i = b; i < e; i++)
        j->out[i] += act_grad(act, j->in[i]) * j->dy[i];
}

int cpu_act_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y, const void *x)
{
    struct pw_job j = {d, y, x, NULL};
    cpu_for(c, d->n, GRAIN, act_fwd_range, &j);
    return 0;
}

int cpu_act_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dx, const void *dy,
                const void *x)
{
    struct pw_job j = {d, dx, x, dy};
    cpu_for(c, d->n, GRAIN, act_bwd_range, &j);
    return 0;
}

/* ---- GEGLU -------------------------------------------------------------------------------- */

static void geglu_fwd_rows(void *vj, int64_t r0, int64_t r1, int thread)
{
    (void)thread;
    struct pw_job *j = vj;
    int64_t F = j->d->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *a = j->in + r * 2 * F, *g = a + F;
        float *y = j->out + r * F;
        for (int64_t i = 0; i < F; i++)
            y[i] = a[i] * gelu(g[i]);
    }
}

static void geglu_bwd_rows(void *vj, int64_t r0, int64_t r1, int thread)
{
    (void)thread;
    struct pw_job *j = vj;
    int64_t F = j->d->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *a = j->in + r * 2 * F, *g = a + F, *dy = j->dy + r * F;
        float *da = j->out + r * 2 * F, *dg = da + F;
        for (int64_t i = 0; i < F; i++) {
            da[i] += dy[i] * gelu(g[i]);
            dg[i] += dy[i] * a[i] * gelu_grad(g[i]);
        }
    }
}

int cpu_geglu_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y, const void *h)
{
    struct pw_job j = {d, y, h, NULL};
    cpu_for(c, d->M, 1 + GRAIN / (d->D + 1), geglu_fwd_rows, &j);
    return 0;
}

int cpu_geglu_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dh,
                  const void *dy, const void *h)
{
    struct pw_job j = {d, dh, h, dy};
    cpu_for(c, d->M, 1 + GRAIN / (d->D + 1), geglu_bwd_rows, &j);
    return 0;
}

/* ---- softmax --------------------------------------------------------------------------------- */

CPU_HOT static void softmax_fwd_rows(void *vj, int64_t r0, int64_t r1, int thread)
{
    (void)thread;
    struct pw_job *j = vj;
    int64_t D = j->d->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->in + r * D;
        float *y = j->out + r * D, mx = cpu_rowmax(x, D);
        if (y != x)
            memcpy(y, x, (size_t)D * sizeof(float));
        float inv = 1.0f / cpu_exp_sub(y, D, mx, 1);
        for (int64_t i = 0; i < D; i++)
            y[i] *= inv;
    }
}

static void softmax_bwd_rows(void *vj, int64_t r0, int64_t r1, int thread)
{
    (void)thread;
    struct pw_job *j = vj;
    int64_t D = j->d->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *y = j->in + r * D, *dy = j->dy + r * D;
        float *dx = j->out + r * D;
        double s = 0.0;
        for (int64_t i = 0; i < D; i++)
            s += (double)y[i] * dy[i];
        float fs = (float)s;
        for (int64_t i = 0; i < D; i++)
            dx[i] += y[i] * (dy[i] - fs);
    }
}

int cpu_softmax_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y,
                    const void *x)
{
    struct pw_job j = {d, y, x, NULL};
    cpu_for(c, d->M, 1 + GRAIN / (d->D + 1), softmax_fwd_rows, &j);
    return 0;
}

int cpu_softmax_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dx,
                    const void *dy, const void *y)
{
    struct pw_job j = {d, dx, y, dy};
    cpu_for(c, d->M, 1 + GRAIN / (d->D + 1), softmax_bwd_rows, &j);
    return 0;
}

/* ---- add and broadcast add ------------------------------------------------------------------- */

struct add_job {
    const struct ldm_layout_dims *d;
    float *y, *y2;
    const float *a, *b;
    float alpha, beta;
};

static void add_fwd_range(void *vj, int64_t b0, int64_t e, int thread)
{
    (void)thread;
    struct add_job *j = vj;
    if (j->b)
        for (int64_t i = b0; i < e; i++)
            j->y[i] = j->alpha * j->a[i] + j->beta * j->b[i];
    else
        for (int64_t i = b0; i < e; i++)
            j->y[i] = j->alpha * j->a[i];
}

/* da (y) += alpha·dy (a);  db (y2) += beta·dy */
static void add_bwd_range(void *vj, int64_t b0, int64_t e, int thread)
{
    (void)thread;
    struct add_job *j = vj;
    for (int64_t i = b0; i < e; i++) {
        if (j->y)
            j->y[i] += j->alpha * j->a[i];
        if (j->y2)
            j->y2[i] += j->beta * j->a[i];
    }
}

int cpu_add_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y, float alpha,
                const void *a, float beta, const void *b)
{
    struct add_job j = {d, y, NULL, a, b, alpha, beta};
    cpu_for(c, d->n, GRAIN, add_fwd_range, &j);
    return 0;
}

int cpu_add_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *da, float alpha,
                void *db, float beta, const void *dy)
{
    struct add_job j = {d, da, db, dy, NULL, alpha, beta};
    if (da || db)
        cpu_for(c, d->n, GRAIN, add_bwd_range, &j);
    return 0;
}

/* rows r = (n, c) of S elements: y = x + v[r] (fwd); dx += dy, dv[r] += Σ dy (bwd) */
static void bcast_fwd_rows(void *vj, int64_t r0, int64_t r1, int thread)
{
    (void)thread;
    struct add_job *j = vj;
    int64_t S = j->d->S;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t i = 0; i < S; i++)
            j->y[r * S + i] = j->a[r * S + i] + j->b[r];
}

static void bcast_bwd_rows(void *vj, int64_t r0, int64_t r1, int thread)
{
    (void)thread;
    struct add_job *j = vj;
    int64_t S = j->d->S;
    for (int64_t r = r0; r < r1; r++) {
        const float *dy = j->a + r * S;
        double s = 0.0;
        for (int64_t i = 0; i < S; i++) {
            if (j->y)
                j->y[r * S + i] += dy[i];
            s += dy[i];
        }
        if (j->y2)
            j->y2[r] += (float)s;
    }
}

int cpu_add_bcast_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y, const void *x,
                      const void *v)
{
    struct add_job j = {d, y, NULL, x, v, 1.0f, 1.0f};
    cpu_for(c, d->N * d->C, 1 + GRAIN / (d->S + 1), bcast_fwd_rows, &j);
    return 0;
}

int cpu_add_bcast_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *dx, void *dv,
                      const void *dy)
{
    struct add_job j = {d, dx, dv, dy, NULL, 1.0f, 1.0f};
    if (dx || dv)
        cpu_for(c, d->N * d->C, 1 + GRAIN / (d->S + 1), bcast_bwd_rows, &j);
    return 0;
}

/* ---- transpose ------------------------------------------------------------------------------- */

#define TT 32 /* tile side */

/* out (N, Q, P) (=, or += when acc) from in (N, P, Q), by TT×TT tiles. */
struct tr_job {
    float *out;
    const float *in;
    int64_t N, P, Q, tp, tq;
    int acc;
};

static void transpose_tiles(void *vj, int64_t t0, int64_t t1, int thread)
{
    (void)thread;
    struct tr_job *j = vj;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / (j->tp * j->tq), rest = t % (j->tp * j->tq);
        int64_t p0 = rest / j->tq * TT, q0 = rest % j->tq * TT;
        int64_t p1 = p0 + TT < j->P ? p0 + TT : j->P, q1 = q0 + TT < j->Q ? q0 + TT : j->Q;
        const float *in = j->in + n * j->P * j->Q;
        float *out = j->out + n * j->P * j->Q;
        for (int64_t q = q0; q < q1; q++)
            for (int64_t p = p0; p < p1; p++) {
                float v = in[p * j->Q + q];
                out[q * j->P + p] = j->acc ? out[q * j->P + p] + v : v;
            }
    }
}

static void transpose_run(struct ldm_ctx *c, float *out, const float *in, int64_t N, int64_t P,
                          int64_t Q, int acc)
{
    struct tr_job j = {out, in, N, P, Q, (P + TT - 1) / TT, (Q + TT - 1) / TT, acc};
    cpu_for(c, N * j.tp * j.tq, 1 + GRAIN / (TT * TT), transpose_tiles, &j);
}

int cpu_transpose_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y, const void *x)
{
    transpose_run(c, y, x, d->N, d->C, d->S, 0);
    return 0;
}

int cpu_transpose_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *dx,
                      const void *dy)
{
    transpose_run(c, dx, dy, d->N, d->S, d->C, 1);
    return 0;
}

/* ---- concat ---------------------------------------------------------------------------------- */

struct cat_job {
    const struct ldm_layout_dims *d;
    float *y;
    const float *const *xs;
    float *const *dxs;
    const float *dy;
};

/* Task (n, part): copy part's block of sample n (fwd), or add it back (bwd). */
static void cat_task(void *vj, int64_t t, int thread)
{
    (void)thread;
    struct cat_job *j = vj;
    const struct ldm_layout_dims *d = j->d;
    int64_t n = t / d->nparts, i = t % d->nparts, off = 0;
    for (int64_t k = 0; k < i; k++)
        off += d->parts[k];
    int64_t len = d->parts[i] * d->S, yoff = (n * d->Ctot + off) * d->S;
    if (j->y) {
        memcpy(j->y + yoff, j->xs[i] + n * len, (size_t)len * sizeof(float));
    } else if (j->dxs[i]) {
        float *dx = j->dxs[i] + n * len;
        for (int64_t e = 0; e < len; e++)
            dx[e] += j->dy[yoff + e];
    }
}

int cpu_concat_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                   const void *const *xs)
{
    struct cat_job j = {d, y, (const float *const *)xs, NULL, NULL};
    cpu_tasks(c, d->N * d->nparts, cat_task, &j);
    return 0;
}

int cpu_concat_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *const *dxs,
                   const void *dy)
{
    struct cat_job j = {d, NULL, NULL, (float *const *)dxs, dy};
    cpu_tasks(c, d->N * d->nparts, cat_task, &j);
    return 0;
}

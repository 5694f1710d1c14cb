/* norm.c — CPU group norm (with optional fused SiLU) and layer norm, forward and backward.
 *
 * Statistics are accumulated in double. Group norm runs one task per
 * (sample, group) forward and one per group backward (a group owns its
 * channels' dgamma/dbeta across the batch). Layer norm runs over rows, and
 * its dgamma/dbeta in a second pass over column blocks. */
#include <math.h>

#include "nn/cpu/cpu.h"
#include "nn/cpu/vec.h"

/* ---- group norm ------------------------------------------------------------------------ */

struct gn_job {
    const struct ldm_norm_dims *d;
    float *y, *mean, *rstd, *dx, *dgamma, *dbeta;
    const float *x, *dy, *gamma, *beta, *cmean, *crstd;
};

CPU_HOT static void gn_fwd_task(void *vj, int64_t t, int thread)
{
    (void)thread;
    struct gn_job *j = vj;
    const struct ldm_norm_dims *d = j->d;
    int64_t n = t / d->G, g = t % d->G, cg = d->C / d->G, m = cg * d->S;
    const float *x = j->x + (n * d->C + g * cg) * d->S;
    float *y = j->y + (n * d->C + g * cg) * d->S;
    double s = 0.0, ss = 0.0;
    for (int64_t i = 0; i < m; i++)
        s += x[i];
    double mu = s / (double)m;
    for (int64_t i = 0; i < m; i++) {
        double e = x[i] - mu;
        ss += e * e;
    }
    float fmu = (float)mu, r = (float)(1.0 / sqrt(ss / (double)m + (double)d->eps));
    j->mean[t] = fmu;
    j->rstd[t] = r;
    for (int64_t ci = 0; ci < cg; ci++) {
        int64_t ch = g * cg + ci;
        float ga = d->affine ? j->gamma[ch] : 1.0f, be = d->affine ? j->beta[ch] : 0.0f;
        const float *xc = x + ci * d->S;
        float *yc = y + ci * d->S;
        for (int64_t i = 0; i < d->S; i++)
            yc[i] = (xc[i] - fmu) * r * ga + be;
        if (d->silu)
            cpu_silu_scaled(yc, yc, d->S, 1.0f);
    }
}

int cpu_group_norm_fwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *y, float *mean,
                       float *rstd, const void *x, const void *gamma, const void *beta)
{
    struct gn_job j = {.d = d, .y = y, .mean = mean, .rstd = rstd, .x = x, .gamma = gamma,
                       .beta = beta};
    cpu_tasks(c, d->N * d->G, gn_fwd_task, &j);
    return 0;
}

/* The gradient reaching the affine output of element xhat in channel ch:
 * dy itself, or through SiLU. */
static inline float gn_gy(const struct gn_job *j, float dy, float xhat, float ga, float be)
{
    if (!j->d->silu)
        return dy;
    float z = xhat * ga + be, s = cpu_sigmoidf(z);
    return dy * s * (1.0f + z * (1.0f - s));
}

/* One (sample, group): dgamma/dbeta of its channels, then dx. */
static void gn_bwd_one(struct gn_job *j, int64_t n, int64_t g)
{
    const struct ldm_norm_dims *d = j->d;
    int64_t cg = d->C / d->G, m = cg * d->S, base = (n * d->C + g * cg) * d->S;
    const float *x = j->x + base, *dy = j->dy + base;
    float mu = j->cmean[n * d->G + g], r = j->crstd[n * d->G + g];
    double a = 0.0, b = 0.0; /* Σ dxhat, Σ dxhat·xhat */
    for (int64_t ci = 0; ci < cg; ci++) {
        int64_t ch = g * cg + ci;
        float ga = d->affine ? j->gamma[ch] : 1.0f, be = d->affine ? j->beta[ch] : 0.0f;
        double dga = 0.0, dbe = 0.0;
        for (int64_t i = ci * d->S; i < (ci + 1) * d->S; i++) {
            float xh = (x[i] - mu) * r, gy = gn_gy(j, dy[i], xh, ga, be);
            dga += (double)gy * xh;
            dbe += gy;
            a += (double)gy * ga;
            b += (double)gy * ga * xh;
        }
        if (j->dgamma)
            j->dgamma[ch] += (float)dga;
        if (j->dbeta)
            j->dbeta[ch] += (float)dbe;
    }
    if (!j->dx)
        return;
    float am = (float)(a / (double)m), bm = (float)(b / (double)m);
    float *dx = j->dx + base;
    for (int64_t ci = 0; ci < cg; ci++) {
        int64_t ch = g * cg + ci;
        float ga = d->affine ? j->gamma[ch] : 1.0f, be = d->affine ? j->beta[ch] : 0.0f;
        for (int64_t i = ci * d->S; i < (ci + 1) * d->S; i++) {
            float xh = (x[i] - mu) * r, gy = gn_gy(j, dy[i], xh, ga, be);
            dx[i] += r * (gy * ga - am - xh * bm);
        }
    }
}

CPU_HOT static void gn_bwd_task(void *vj, int64_t g, int thread)
{
    (void)thread;
    struct gn_job *j = vj;
    for (int64_t n = 0; n < j->d->N; n++)
        gn_bwd_one(j, n, g);
}

int cpu_group_norm_bwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *dx, void *dgamma,
                       void *dbeta, const void *dy, const void *x, const float *mean,
                       const float *rstd, const void *gamma, const void *beta)
{
    struct gn_job j = {.d = d, .dx = dx, .dgamma = dgamma, .dbeta = dbeta, .x = x, .dy = dy,
                       .gamma = gamma, .beta = beta, .cmean = mean, .crstd = rstd};
    cpu_tasks(c, d->G, gn_bwd_task, &j);
    return 0;
}

/* ---- layer norm ------------------------------------------------------------------------- */

struct ln_job {
    const struct ldm_norm_dims *d;
    float *y, *mean, *rstd, *dx, *dgamma, *dbeta;
    const float *x, *dy, *gamma, *beta, *cmean, *crstd;
};

CPU_HOT static void ln_fwd_rows(void *vj, int64_t r0, int64_t r1, int thread)
{
    (void)thread;
    struct ln_job *j = vj;
    int64_t D = j->d->C;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * D;
        float *y = j->y + r * D;
        double s = 0.0, ss = 0.0;
        for (int64_t i = 0; i < D; i++)
            s += x[i];
        double mu = s / (double)D;
        for (int64_t i = 0; i < D; i++)
            ss += (x[i] - mu) * (x[i] - mu);
        float fmu = (float)mu, rs = (float)(1.0 / sqrt(ss / (double)D + (double)j->d->eps));
        j->mean[r] = fmu;
        j->rstd[r] = rs;
        for (int64_t i = 0; i < D; i++) {
            float xh = (x[i] - fmu) * rs;
            y[i] = j->gamma ? xh * j->gamma[i] + j->beta[i] : xh;
        }
    }
}

int cpu_layer_norm_fwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *y, float *mean,
                       float *rstd, const void *x, const void *gamma, const void *beta)
{
    struct ln_job j = {.d = d, .y = y, .mean = mean, .rstd = rstd, .x = x,
                       .gamma = d->affine ? gamma : NULL, .beta = beta};
    cpu_for(c, d->N, 1 + 16384 / (d->C + 1), ln_fwd_rows, &j);
    return 0;
}

CPU_HOT static void ln_bwd_rows(void *vj, int64_t r0, int64_t r1, int thread)
{
    (void)thread;
    struct ln_job *j = vj;
    int64_t D = j->d->C;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * D, *dy = j->dy + r * D;
        float mu = j->cmean[r], rs = j->crstd[r];
        double a = 0.0, b = 0.0;
        for (int64_t i = 0; i < D; i++) {
            float xh = (x[i] - mu) * rs, g = dy[i] * (j->gamma ? j->gamma[i] : 1.0f);
            a += g;
            b += (double)g * xh;
        }
        float am = (float)(a / (double)D), bm = (float)(b / (double)D);
        float *dx = j->dx + r * D;
        for (int64_t i = 0; i < D; i++) {
            float xh = (x[i] - mu) * rs, g = dy[i] * (j->gamma ? j->gamma[i] : 1.0f);
            dx[i] += rs * (g - am - xh * bm);
        }
    }
}

#define LN_COLS 64

static void ln_bwd_params(void *vj, int64_t blk, int thread)
{
    (void)thread;
    struct ln_job *j = vj;
    int64_t D = j->d->C, c0 = blk * LN_COLS, c1 = c0 + LN_COLS < D ? c0 + LN_COLS : D;
    double sg[LN_COLS] = {0}, sb[LN_COLS] = {0};
    for (int64_t r = 0; r < j->d->N; r++) {
        const float *x = j->x + r * D, *dy = j->dy + r * D;
        float mu = j->cmean[r], rs = j->crstd[r];
        for (int64_t i = c0; i < c1; i++) {
            sg[i - c0] += (double)dy[i] * ((x[i] - mu) * rs);
            sb[i - c0] += dy[i];
        }
    }
    for (int64_t i = c0; i < c1; i++) {
        if (j->dgamma)
            j->dgamma[i] += (float)sg[i - c0];
        if (j->dbeta)
            j->dbeta[i] += (float)sb[i - c0];
    }
}

int cpu_layer_norm_bwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *dx, void *dgamma,
                       void *dbeta, const void *dy, const void *x, const float *mean,
                       const float *rstd, const void *gamma)
{
    struct ln_job j = {.d = d, .dx = dx, .dgamma = dgamma, .dbeta = dbeta, .x = x, .dy = dy,
                       .gamma = d->affine ? gamma : NULL, .cmean = mean, .crstd = rstd};
    if (dx)
        cpu_for(c, d->N, 1 + 16384 / (d->C + 1), ln_bwd_rows, &j);
    if (dgamma || dbeta)
        cpu_tasks(c, (d->C + LN_COLS - 1) / LN_COLS, ln_bwd_params, &j);
    return 0;
}

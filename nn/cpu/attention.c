/* attention.c — CPU scaled dot-product attention, tiled (flash-attention style).
 *
 * Forward, one task per (sample, head, block of BQ queries): for each block
 * of BK keys, S = scale·Q·Kᵀ (masked entries −inf), then the online softmax:
 * the running row maximum m and sum l rescale the output rows accumulated
 * in place, O += exp(S − m)·V. At the end O /= l and lse = m + log l.
 * Memory: one BQ×BK tile per thread, never Lq×Lk.
 *
 * Backward, one task per (sample, head): D_i = Σ dO_i·O_i, then for each key
 * block and each query block, P = exp(S − lse) is recomputed and
 *   dV += Pᵀ·dO;  dP = dO·Vᵀ;  dS = P ⊙ (dP − D);  dQ += scale·dS·K;
 *   dK += scale·dSᵀ·Q.
 * A task owns its head's columns of dq, dk, dv, so tasks never collide.
 * The tile products are sgemm calls on one BLAS thread each.
 */
#include <math.h>

#include "nn/cpu/cpu.h"
#include "nn/cpu/vec.h"

#define BQ 64
#define BK 128

/* floats per thread, rounded to a 64-byte multiple */
static int64_t per_thread(const struct ldm_attn_dims *d, int backward)
{
    int64_t f = backward ? 2 * BQ * BK + d->Lq : BQ * BK + 2 * BQ;
    return (f + 15) / 16 * 16;
}

size_t cpu_attn_workspace(const struct ldm_ctx *c, const struct ldm_attn_dims *d, int backward)
{
    return (size_t)per_thread(d, backward) * (size_t)c->threads * sizeof(float);
}

struct attn_job {
    const struct ldm_attn_dims *d;
    float *ws;
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *cout, *clse;
    const uint8_t *mask;
    int64_t qblocks;
};

/* Set masked entries of the score tile S (bq×bk, row stride BK) to −inf:
 * keys past the query (causal) or hidden by the key mask. */
static void mask_tile(const struct attn_job *j, int64_t n, int64_t i0, int64_t bq, int64_t j0,
                      int64_t bk, float *S)
{
    const struct ldm_attn_dims *d = j->d;
    if (j->mask) {
        const uint8_t *m = j->mask + n * d->Lk + j0;
        for (int64_t c = 0; c < bk; c++)
            if (!m[c])
                for (int64_t r = 0; r < bq; r++)
                    S[r * BK + c] = -INFINITY;
    }
    if (d->causal)
        for (int64_t r = 0; r < bq; r++)
            for (int64_t c = i0 + r + 1 - j0 > 0 ? i0 + r + 1 - j0 : 0; c < bk; c++)
                S[r * BK + c] = -INFINITY;
}

/* Online-softmax update of rows 0..bq-1 with the score tile S: turns S
 * into P = exp(S − m_new), rescales l and the output rows O (stride ldo). */
CPU_HOT static void online_update(float *S, int64_t bq, int64_t bk, float *m, float *l, float *O,
                                  int64_t ldo, int64_t Dv)
{
    for (int64_t r = 0; r < bq; r++) {
        float *s = S + r * BK, mx = cpu_rowmax(s, bk);
        mx = m[r] > mx ? m[r] : mx;
        if (mx == -INFINITY) { /* nothing visible yet in this row */
            for (int64_t c = 0; c < bk; c++)
                s[c] = 0.0f;
            continue;
        }
        float alpha = cpu_expf(m[r] - mx); /* m = −inf gives 0 */
        l[r] = l[r] * alpha + cpu_exp_sub(s, bk, mx, 1);
        m[r] = mx;
        if (alpha != 1.0f)
            for (int64_t e = 0; e < Dv; e++)
                O[r * ldo + e] *= alpha;
    }
}

static void attn_fwd_task(void *vj, int64_t t, int thread)
{
    struct attn_job *j = vj;
    const struct ldm_attn_dims *d = j->d;
    int64_t nh = t / j->qblocks, i0 = t % j->qblocks * BQ, n = nh / d->H, h = nh % d->H;
    int64_t bq = d->Lq - i0 < BQ ? d->Lq - i0 : BQ;
    int64_t ldq = d->H * d->Dh, ldv = d->H * d->Dv;
    float *S = j->ws + (int64_t)thread * per_thread(d, 0), *m = S + BQ * BK, *l = m + BQ;
    const float *Q = j->q + (n * d->Lq + i0) * ldq + h * d->Dh;
    float *O = j->out + (n * d->Lq + i0) * ldv + h * d->Dv;
    for (int64_t r = 0; r < bq; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (int64_t e = 0; e < d->Dv; e++)
            O[r * ldv + e] = 0.0f;
    }
    int64_t kend = d->causal && i0 + bq < d->Lk ? i0 + bq : d->Lk;
    for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        int64_t bk = kend - j0 < BK ? kend - j0 : BK;
        const float *K = j->k + (n * d->Lk + j0) * ldq + h * d->Dh;
        const float *V = j->v + (n * d->Lk + j0) * ldv + h * d->Dv;
        cpu_sgemm(0, 1, bq, bk, d->Dh, d->scale, Q, ldq, K, ldq, 0.0f, S, BK);
        mask_tile(j, n, i0, bq, j0, bk, S);
        online_update(S, bq, bk, m, l, O, ldv, d->Dv);
        cpu_sgemm(0, 0, bq, d->Dv, bk, 1.0f, S, BK, V, ldv, 1.0f, O, ldv);
    }
    float *lse = j->lse + (n * d->H + h) * d->Lq + i0;
    for (int64_t r = 0; r < bq; r++) {
        if (l[r] == 0.0f) { /* no key visible: output 0 */
            lse[r] = -INFINITY;
            for (int64_t e = 0; e < d->Dv; e++)
                O[r * ldv + e] = 0.0f;
            continue;
        }
        float inv = 1.0f / l[r];
        for (int64_t e = 0; e < d->Dv; e++)
            O[r * ldv + e] *= inv;
        lse[r] = m[r] + logf(l[r]);
    }
}

int cpu_attn_fwd(struct ldm_ctx *c, const struct ldm_attn_dims *d, void *out, float *lse,
                 const void *q, const void *k, const void *v, const uint8_t *mask)
{
    struct attn_job j = {.d = d, .ws = c->ws, .out = out, .lse = lse, .q = q, .k = k, .v = v,
                         .mask = mask, .qblocks = (d->Lq + BQ - 1) / BQ};
    cpu_blas_threads(c, 1);
    cpu_tasks(c, d->N * d->H * j.qblocks, attn_fwd_task, &j);
    return 0;
}

/* ---- backward ----------------------------------------------------------------------------- */

/* P = exp(S − lse) in place (0 for a row that sees no key). */
CPU_HOT static void tile_probs(float *P, int64_t bq, int64_t bk, const float *lse)
{
    for (int64_t r = 0; r < bq; r++) {
        float *p = P + r * BK, l = lse[r];
        if (l == -INFINITY) {
            for (int64_t c = 0; c < bk; c++)
                p[c] = 0.0f;
            continue;
        }
        cpu_exp_sub(p, bk, l, 0);
    }
}

/* dS = P ⊙ (dP − D) in place of dP. */
CPU_HOT static void tile_dscores(float *dP, const float *P, int64_t bq, int64_t bk,
                                 const float *D)
{
    for (int64_t r = 0; r < bq; r++)
        for (int64_t c = 0; c < bk; c++)
            dP[r * BK + c] = P[r * BK + c] * (dP[r * BK + c] - D[r]);
}

/* One query block against one key block: P, then the four gradient products. */
static void attn_bwd_tile(struct attn_job *j, int64_t n, int64_t h, int64_t i0, int64_t bq,
                          int64_t j0, int64_t bk, float *P, float *dP, const float *Dvec)
{
    const struct ldm_attn_dims *d = j->d;
    int64_t ldq = d->H * d->Dh, ldv = d->H * d->Dv;
    const float *Q = j->q + (n * d->Lq + i0) * ldq + h * d->Dh;
    const float *K = j->k + (n * d->Lk + j0) * ldq + h * d->Dh;
    const float *V = j->v + (n * d->Lk + j0) * ldv + h * d->Dv;
    const float *dO = j->dout + (n * d->Lq + i0) * ldv + h * d->Dv;
    const float *lse = j->clse + (n * d->H + h) * d->Lq + i0;
    cpu_sgemm(0, 1, bq, bk, d->Dh, d->scale, Q, ldq, K, ldq, 0.0f, P, BK);
    mask_tile(j, n, i0, bq, j0, bk, P);
    tile_probs(P, bq, bk, lse);
    if (j->dv) /* dV (bk, Dv) += Pᵀ · dO */
        cpu_sgemm(1, 0, bk, d->Dv, bq, 1.0f, P, BK, dO, ldv, 1.0f,
                  j->dv + (n * d->Lk + j0) * ldv + h * d->Dv, ldv);
    if (!j->dq && !j->dk)
        return;
    cpu_sgemm(0, 1, bq, bk, d->Dv, 1.0f, dO, ldv, V, ldv, 0.0f, dP, BK); /* dP = dO · Vᵀ */
    tile_dscores(dP, P, bq, bk, Dvec + i0);
    if (j->dq) /* dQ (bq, Dh) += scale · dS · K */
        cpu_sgemm(0, 0, bq, d->Dh, bk, d->scale, dP, BK, K, ldq, 1.0f,
                  j->dq + (n * d->Lq + i0) * ldq + h * d->Dh, ldq);
    if (j->dk) /* dK (bk, Dh) += scale · dSᵀ · Q */
        cpu_sgemm(1, 0, bk, d->Dh, bq, d->scale, dP, BK, Q, ldq, 1.0f,
                  j->dk + (n * d->Lk + j0) * ldq + h * d->Dh, ldq);
}

static void attn_bwd_task(void *vj, int64_t t, int thread)
{
    struct attn_job *j = vj;
    const struct ldm_attn_dims *d = j->d;
    int64_t n = t / d->H, h = t % d->H, ldv = d->H * d->Dv;
    float *P = j->ws + (int64_t)thread * per_thread(d, 1), *dP = P + BQ * BK, *Dvec = dP + BQ * BK;
    for (int64_t i = 0; i < d->Lq; i++) { /* D_i = dO_i · O_i */
        const float *o = j->cout + (n * d->Lq + i) * ldv + h * d->Dv;
        const float *g = j->dout + (n * d->Lq + i) * ldv + h * d->Dv;
        double s = 0.0;
        for (int64_t e = 0; e < d->Dv; e++)
            s += (double)o[e] * g[e];
        Dvec[i] = (float)s;
    }
    for (int64_t j0 = 0; j0 < d->Lk; j0 += BK) {
        int64_t bk = d->Lk - j0 < BK ? d->Lk - j0 : BK;
        for (int64_t i0 = 0; i0 < d->Lq; i0 += BQ) {
            int64_t bq = d->Lq - i0 < BQ ? d->Lq - i0 : BQ;
            if (d->causal && j0 > i0 + bq - 1)
                continue; /* every key of the block is after every query */
            attn_bwd_tile(j, n, h, i0, bq, j0, bk, P, dP, Dvec);
        }
    }
}

int cpu_attn_bwd(struct ldm_ctx *c, const struct ldm_attn_dims *d, void *dq, void *dk, void *dv,
                 const void *dout, const void *q, const void *k, const void *v, const void *out,
                 const float *lse, const uint8_t *mask)
{
    struct attn_job j = {.d = d, .ws = c->ws, .dq = dq, .dk = dk, .dv = dv, .q = q, .k = k,
                         .v = v, .dout = dout, .cout = out, .clse = lse, .mask = mask};
    cpu_blas_threads(c, 1);
    cpu_tasks(c, d->N * d->H, attn_bwd_task, &j);
    return 0;
}

/* gemm.c — CPU linear and batched matmul, forward and backward, on OpenBLAS. */
#include <string.h>

#include "nn/cpu/cpu.h"
#include "nn/cpu/vec.h"

/* ---- linear ------------------------------------------------------------------------ */

struct bias_job {
    float *y;
    const float *b;
    int64_t D;
};

static void bias_rows(void *vj, int64_t r0, int64_t r1, int thread)
{
    (void)thread;
    struct bias_job *j = vj;
    for (int64_t r = r0; r < r1; r++)
        memcpy(j->y + r * j->D, j->b, (size_t)j->D * sizeof(float));
}

int cpu_linear_fwd(struct ldm_ctx *c, const struct ldm_linear_dims *d, void *y, const void *x,
                   const void *w, const void *b)
{
    float beta = 0.0f;
    if (b) { /* y rows start as the bias, the product is added */
        struct bias_job j = {y, b, d->Dout};
        cpu_for(c, d->M, 1 + 65536 / (d->Dout + 1), bias_rows, &j);
        beta = 1.0f;
    }
    cpu_blas_all(c);
    /* y (M, Dout) = x (M, Din) · wᵀ */
    cpu_sgemm(0, 1, d->M, d->Dout, d->Din, 1.0f, x, d->Din, w, d->Din, beta, y, d->Dout);
    return 0;
}

/* db (D) += Σ over M rows of dy (M, D), by column blocks. */
struct colsum_job {
    float *db;
    const float *dy;
    int64_t M, D;
};

#define COLBLOCK 64

/* Full blocks run a constant-length inner loop, which the compiler
 * vectorizes (float to double, then add); the last block runs what is left. */
CPU_HOT static void colsum_task(void *vj, int64_t blk, int thread)
{
    (void)thread;
    struct colsum_job *j = vj;
    int64_t c0 = blk * COLBLOCK, n = c0 + COLBLOCK <= j->D ? COLBLOCK : j->D - c0;
    double acc[COLBLOCK] = {0};
    for (int64_t r = 0; r < j->M; r++) {
        const float *row = j->dy + r * j->D + c0;
        if (n == COLBLOCK)
            for (int i = 0; i < COLBLOCK; i++)
                acc[i] += row[i];
        else
            for (int64_t i = 0; i < n; i++)
                acc[i] += row[i];
    }
    for (int64_t i = 0; i < n; i++)
        j->db[c0 + i] += (float)acc[i];
}

static void column_sums(struct ldm_ctx *c, float *db, const float *dy, int64_t M, int64_t D)
{
    struct colsum_job j = {db, dy, M, D};
    int64_t blocks = (D + COLBLOCK - 1) / COLBLOCK;
    if (M * D < 32768) {
        for (int64_t b = 0; b < blocks; b++)
            colsum_task(&j, b, 0);
        return;
    }
    cpu_tasks(c, blocks, colsum_task, &j);
}

int cpu_linear_bwd(struct ldm_ctx *c, const struct ldm_linear_dims *d, void *dx, void *dw,
                   void *db, const void *dy, const void *x, const void *w)
{
    if (db)
        column_sums(c, db, dy, d->M, d->Dout);
    cpu_blas_all(c);
    if (dx) /* dx (M, Din) += dy (M, Dout) · w (Dout, Din) */
        cpu_sgemm(0, 0, d->M, d->Din, d->Dout, 1.0f, dy, d->Dout, w, d->Din, 1.0f, dx, d->Din);
    if (dw) /* dw (Dout, Din) += dyᵀ (Dout, M) · x (M, Din) */
        cpu_sgemm(1, 0, d->Dout, d->Din, d->M, 1.0f, dy, d->Dout, x, d->Din, 1.0f, dw, d->Din);
    return 0;
}

/* ---- bmm ------------------------------------------------------------------------------ */

/* One batch entry's products; the job says which. */
struct bmm_job {
    const struct ldm_bmm_dims *d;
    float *y, *da, *db;
    const float *a, *b, *dy;
};

static void bmm_fwd_one(void *vj, int64_t i, int thread)
{
    (void)thread;
    struct bmm_job *j = vj;
    const struct ldm_bmm_dims *d = j->d;
    int64_t lda = d->trans_a ? d->M : d->K, ldb = d->trans_b ? d->K : d->N;
    cpu_sgemm(d->trans_a, d->trans_b, d->M, d->N, d->K, d->alpha, j->a + i * d->M * d->K, lda,
              j->b + i * d->K * d->N, ldb, 0.0f, j->y + i * d->M * d->N, d->N);
}

static void bmm_bwd_one(void *vj, int64_t i, int thread)
{
    (void)thread;
    struct bmm_job *j = vj;
    const struct ldm_bmm_dims *d = j->d;
    int64_t M = d->M, N = d->N, K = d->K;
    int ta = d->trans_a, tb = d->trans_b;
    int64_t lda = ta ? M : K, ldb = tb ? K : N;
    const float *a = j->a + i * M * K, *b = j->b + i * K * N, *dy = j->dy + i * M * N;
    if (j->da) {
        float *da = j->da + i * M * K;
        if (!ta) /* da (M, K) += alpha · dy (M, N) · op(b)ᵀ (N, K) */
            cpu_sgemm(0, !tb, M, K, N, d->alpha, dy, N, b, ldb, 1.0f, da, K);
        else /* da (K, M) += alpha · op(b) (K, N) · dyᵀ (N, M) */
            cpu_sgemm(tb, 1, K, M, N, d->alpha, b, ldb, dy, N, 1.0f, da, M);
    }
    if (j->db) {
        float *db = j->db + i * K * N;
        if (!tb) /* db (K, N) += alpha · op(a)ᵀ (K, M) · dy (M, N) */
            cpu_sgemm(!ta, 0, K, N, M, d->alpha, a, lda, dy, N, 1.0f, db, N);
        else /* db (N, K) += alpha · dyᵀ (N, M) · op(a) (M, K) */
            cpu_sgemm(1, ta, N, K, M, d->alpha, dy, N, a, lda, 1.0f, db, K);
    }
}

/* Batches of at least `threads` run one GEMM per task on one BLAS thread;
 * fewer run one after another on every BLAS thread. */
static void bmm_run(struct ldm_ctx *c, int64_t B, ldm_pool_fn fn, struct bmm_job *j)
{
    if (B >= c->threads && c->threads > 1) {
        cpu_blas_threads(c, 1);
        cpu_tasks(c, B, fn, j);
        return;
    }
    cpu_blas_all(c);
    for (int64_t i = 0; i < B; i++)
        fn(j, i, 0);
}

int cpu_bmm_fwd(struct ldm_ctx *c, const struct ldm_bmm_dims *d, void *y, const void *a,
                const void *b)
{
    struct bmm_job j = {.d = d, .y = y, .a = a, .b = b};
    bmm_run(c, d->B, bmm_fwd_one, &j);
    return 0;
}

int cpu_bmm_bwd(struct ldm_ctx *c, const struct ldm_bmm_dims *d, void *da, void *db,
                const void *dy, const void *a, const void *b)
{
    struct bmm_job j = {.d = d, .da = da, .db = db, .a = a, .b = b, .dy = dy};
    bmm_run(c, d->B, bmm_bwd_one, &j);
    return 0;
}

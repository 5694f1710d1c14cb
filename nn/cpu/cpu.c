/* cpu.c — the CPU backend: its op table, threads, memory and workspace sizes. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "nn/cpu/cpu.h"

static int cpu_open(struct ldm_ctx *c)
{
    struct cpu_state *s = calloc(1, sizeof *s);
    if (!s)
        return ldm_fail(LDM_ENOMEM, "cpu backend: out of memory");
    if (c->threads <= 0)
        c->threads = ldm_cpu_count();
    int rc = ldm_pool_create(&s->pool, c->threads);
    if (rc) {
        free(s);
        return rc;
    }
    c->impl = s;
    return 0;
}

static void cpu_close(struct ldm_ctx *c)
{
    struct cpu_state *s = cpu_state(c);
    if (!s)
        return;
    ldm_pool_destroy(&s->pool);
    free(s);
    c->impl = NULL;
}

static int cpu_alloc(struct ldm_ctx *c, size_t bytes, void **p)
{
    (void)c;
    size_t rounded = (bytes + LDM_ARENA_ALIGN - 1) / LDM_ARENA_ALIGN * LDM_ARENA_ALIGN;
    if (rounded < bytes)
        return ldm_fail(LDM_ENOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
    void *m = aligned_alloc(LDM_ARENA_ALIGN, rounded ? rounded : LDM_ARENA_ALIGN);
    if (!m)
        return ldm_fail(LDM_ENOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
    memset(m, 0, rounded);
    *p = m;
    return 0;
}

static void cpu_free(struct ldm_ctx *c, void *p)
{
    (void)c;
    free(p);
}

static int cpu_zero(struct ldm_ctx *c, void *p, size_t bytes)
{
    (void)c;
    memset(p, 0, bytes);
    return 0;
}

/* upload, download and copy are all memmove in host memory */
static int cpu_copy(struct ldm_ctx *c, void *dst, const void *src, size_t bytes)
{
    (void)c;
    memmove(dst, src, bytes);
    return 0;
}

static size_t cpu_workspace(const struct ldm_ctx *c, int op, const void *dims)
{
    switch (op) {
    case LDM_OP_CONV2D_FWD:
    case LDM_OP_CONV2D_BWD:
        return cpu_conv2d_workspace(c, dims);
    case LDM_OP_ATTN_FWD:
        return cpu_attn_workspace(c, dims, 0);
    case LDM_OP_ATTN_BWD:
        return cpu_attn_workspace(c, dims, 1);
    case LDM_OP_BILINEAR_FWD:
    case LDM_OP_BILINEAR_BWD:
        return cpu_bilinear_workspace(dims);
    default:
        return 0;
    }
}

/* OpenBLAS's count is process-wide: ask it rather than remember it, so
 * that contexts with different counts stay right. */
void cpu_blas_threads(struct ldm_ctx *c, int n)
{
    (void)c;
    if (openblas_get_num_threads() != n)
        openblas_set_num_threads(n);
}

void cpu_blas_all(struct ldm_ctx *c)
{
    cpu_blas_threads(c, c->threads);
}

struct range_job {
    cpu_range_fn fn;
    void *arg;
    int64_t n, chunks;
};

static void range_task(void *vj, int64_t t, int thread)
{
    struct range_job *j = vj;
    int64_t b = j->n * t / j->chunks, e = j->n * (t + 1) / j->chunks;
    if (e > b)
        j->fn(j->arg, b, e, thread);
}

void cpu_for(struct ldm_ctx *c, int64_t n, int64_t grain, cpu_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int64_t chunks = (n + grain - 1) / grain;
    int64_t most = 4 * (int64_t)c->threads;
    if (chunks > most)
        chunks = most;
    if (chunks <= 1 || c->threads == 1) {
        fn(arg, 0, n, 0);
        return;
    }
    struct range_job j = {fn, arg, n, chunks};
    ldm_pool_run(cpu_state(c)->pool, chunks, range_task, &j);
}

void cpu_tasks(struct ldm_ctx *c, int64_t n, ldm_pool_fn fn, void *arg)
{
    ldm_pool_run(cpu_state(c)->pool, n, fn, arg);
}

void cpu_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) { /* an empty product: C = beta·C */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, alpha, A,
                (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

const struct ldm_backend ldm_cpu_backend = {
    .name = "cpu",
    .dtypes = 1u << LDM_DT_F32,
    .open = cpu_open,
    .close = cpu_close,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .workspace = cpu_workspace,
    .linear_fwd = cpu_linear_fwd,
    .linear_bwd = cpu_linear_bwd,
    .bmm_fwd = cpu_bmm_fwd,
    .bmm_bwd = cpu_bmm_bwd,
    .conv2d_fwd = cpu_conv2d_fwd,
    .conv2d_bwd = cpu_conv2d_bwd,
    .group_norm_fwd = cpu_group_norm_fwd,
    .group_norm_bwd = cpu_group_norm_bwd,
    .layer_norm_fwd = cpu_layer_norm_fwd,
    .layer_norm_bwd = cpu_layer_norm_bwd,
    .act_fwd = cpu_act_fwd,
    .act_bwd = cpu_act_bwd,
    .geglu_fwd = cpu_geglu_fwd,
    .geglu_bwd = cpu_geglu_bwd,
    .softmax_fwd = cpu_softmax_fwd,
    .softmax_bwd = cpu_softmax_bwd,
    .attn_fwd = cpu_attn_fwd,
    .attn_bwd = cpu_attn_bwd,
    .upsample_fwd = cpu_upsample_fwd,
    .upsample_bwd = cpu_upsample_bwd,
    .avg_pool_fwd = cpu_avg_pool_fwd,
    .avg_pool_bwd = cpu_avg_pool_bwd,
    .max_pool_fwd = cpu_max_pool_fwd,
    .max_pool_bwd = cpu_max_pool_bwd,
    .adaptive_pool_fwd = cpu_adaptive_pool_fwd,
    .adaptive_pool_bwd = cpu_adaptive_pool_bwd,
    .bilinear_fwd = cpu_bilinear_fwd,
    .bilinear_bwd = cpu_bilinear_bwd,
    .concat_fwd = cpu_concat_fwd,
    .concat_bwd = cpu_concat_bwd,
    .transpose_fwd = cpu_transpose_fwd,
    .transpose_bwd = cpu_transpose_bwd,
    .add_fwd = cpu_add_fwd,
    .add_bwd = cpu_add_bwd,
    .add_bcast_fwd = cpu_add_bcast_fwd,
    .add_bcast_bwd = cpu_add_bcast_bwd,
    .timestep_fwd = cpu_timestep_fwd,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .mse_fwd = cpu_mse_fwd,
    .mse_bwd = cpu_mse_bwd,
    .clip_norm = cpu_clip_norm,
    .adamw = cpu_adamw,
    .adamw8 = cpu_adamw8,
    .ema = cpu_ema,
    .cast = cpu_cast,
    .emulated = (1u << LDM_DT_F16) | (1u << LDM_DT_BF16),
};

/* gemm.cu — linear and batched matmul, forward and backward, through cuBLASLt.
 *
 * Every product here is written row-major, as the CPU backend writes it
 * (C (M, N) = alpha·op(A)·op(B) + beta·C), and handed to cuBLASLt, which
 * is column-major, as the transposed product Cᵀ = op(B)ᵀ·op(A)ᵀ: the same
 * memory, the operands swapped. Compute is FP32 (CUBLAS_COMPUTE_32F;
 * tensor cores for F16/BF16, none for F32 unless TF32 is allowed). The
 * linear forward's bias rides the BIAS epilogue; backward adds (beta = 1)
 * and sums the bias gradient with the deterministic column sum
 * (reduce.cu). Each distinct shape gets its descriptors and heuristic
 * algorithm once (the plan cache); a shape cuBLASLt offers no algorithm
 * for runs a plain tiled kernel instead. */
#include <stdlib.h>
#include <string.h>

#include "nn/cuda/kern.cuh"

/* ---- the plan cache ---------------------------------------------------------------------------- */

struct gemm_key {
    int64_t m, n, k, lda, ldb, ldc, batch, sa, sb, sc;
    int dtype, transa, transb, bias, tf32, align_a, align_b, align_c;
};

struct ldm_cuda_gemm_plan {
    struct gemm_key key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    int have_algo; /* 0: cuBLASLt has none; the plain kernel runs */
};

static void plan_release(struct ldm_cuda_gemm_plan *p)
{
    if (p->la)
        cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb)
        cublasLtMatrixLayoutDestroy(p->lb);
    if (p->lc)
        cublasLtMatrixLayoutDestroy(p->lc);
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
}

void ldm_cuda_gemm_cache_free(struct ldm_cuda *s)
{
    for (int i = 0; i < s->ngemm; i++)
        plan_release(&s->gemm[i]);
    free(s->gemm);
    s->gemm = NULL;
    s->ngemm = s->capgemm = 0;
}

static cudaDataType_t lt_type(int dtype)
{
    return dtype == LDM_DT_BF16 ? CUDA_R_16BF : dtype == LDM_DT_F16 ? CUDA_R_16F : CUDA_R_32F;
}

/* The largest power of two (<= 256) dividing the address and each byte stride. */
static int align_of(const void *p, int64_t s1, int64_t s2)
{
    uint64_t v = (uint64_t)(uintptr_t)p | (uint64_t)s1 | (uint64_t)s2 | 256u;
    return (int)(v & (~v + 1));
}

static int layout(const char *op, cublasLtMatrixLayout_t *l, int dtype, int64_t rows,
                  int64_t cols, int64_t ld, int64_t batch, int64_t stride)
{
    LT_TRY(op, cublasLtMatrixLayoutCreate(l, lt_type(dtype), (uint64_t)rows, (uint64_t)cols, ld));
    if (batch > 1) {
        int32_t b = (int32_t)batch;
        LT_TRY(op, cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b,
                                                    sizeof b));
        LT_TRY(op, cublasLtMatrixLayoutSetAttribute(
                       *l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    }
    return 0;
}

/* Ask the heuristic for one algorithm; none found leaves have_algo 0. */
static int plan_algo(struct ldm_cuda *s, const char *op, struct ldm_cuda_gemm_plan *p)
{
    cublasLtMatmulPreference_t pref;
    LT_TRY(op, cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = LDM_CUDA_LT_WS_BYTES;
    uint32_t al[4] = {(uint32_t)p->key.align_a, (uint32_t)p->key.align_b,
                      (uint32_t)p->key.align_c, (uint32_t)p->key.align_c};
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                         sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0],
                                         sizeof al[0]);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1],
                                         sizeof al[1]);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2],
                                         sizeof al[2]);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[3],
                                         sizeof al[3]);
    cublasLtMatmulHeuristicResult_t res;
    int n = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(s->lt, p->desc, p->la, p->lb, p->lc, p->lc,
                                                       pref, 1, &res, &n);
    cublasLtMatmulPreferenceDestroy(pref);
    p->have_algo = st == CUBLAS_STATUS_SUCCESS && n > 0;
    if (p->have_algo)
        p->algo = res.algo;
    return 0;
}

static int plan_build(struct ldm_cuda *s, const char *op, struct ldm_cuda_gemm_plan *p)
{
    const struct gemm_key *k = &p->key;
    cublasComputeType_t ct = k->dtype == LDM_DT_F32 && k->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                               : CUBLAS_COMPUTE_32F;
    LT_TRY(op, cublasLtMatmulDescCreate(&p->desc, ct, CUDA_R_32F));
    cublasOperation_t ta = k->transa ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = k->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t ep = k->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    LT_TRY(op, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(op, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_TRY(op, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep,
                                              sizeof ep));
    int rc = layout(op, &p->la, k->dtype, k->transa ? k->k : k->m, k->transa ? k->m : k->k,
                    k->lda, k->batch, k->sa);
    if (!rc)
        rc = layout(op, &p->lb, k->dtype, k->transb ? k->n : k->k, k->transb ? k->k : k->n,
                    k->ldb, k->batch, k->sb);
    if (!rc)
        rc = layout(op, &p->lc, k->dtype, k->m, k->n, k->ldc, k->batch, k->sc);
    return rc ? rc : plan_algo(s, op, p);
}

/* The cached plan of key, built on first use. */
static int plan_get(struct ldm_cuda *s, const char *op, const struct gemm_key *key,
                    struct ldm_cuda_gemm_plan **out)
{
    for (int i = 0; i < s->ngemm; i++)
        if (memcmp(&s->gemm[i].key, key, sizeof *key) == 0) {
            *out = &s->gemm[i];
            return 0;
        }
    if (s->ngemm == s->capgemm) {
        int cap = s->capgemm ? 2 * s->capgemm : 32;
        void *m = realloc(s->gemm, (size_t)cap * sizeof *s->gemm);
        if (!m)
            return ldm_fail(LDM_ENOMEM, "%s: GEMM plan cache: out of memory", op);
        s->gemm = (struct ldm_cuda_gemm_plan *)m;
        s->capgemm = cap;
    }
    struct ldm_cuda_gemm_plan *p = &s->gemm[s->ngemm];
    memset(p, 0, sizeof *p);
    p->key = *key;
    int rc = plan_build(s, op, p);
    if (rc) {
        plan_release(p);
        return rc;
    }
    s->ngemm++;
    *out = p;
    return 0;
}

/* ---- the plain kernel (shapes cuBLASLt has no algorithm for) ----------------------------------- */

#define GT 16

/* Row-major C[z] (M, N) = alpha·op(A[z])·op(B[z]) + beta·C[z] (+ bias[j]). */
template <typename T>
__global__ void gemm_plain(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                           const T *A, int64_t lda, int64_t sa, const T *B, int64_t ldb,
                           int64_t sb, float beta, T *C, int64_t ldc, int64_t sc, const T *bias,
                           int64_t batch)
{
    __shared__ float as[GT][GT + 1], bs[GT][GT + 1];
    int64_t i = (int64_t)blockIdx.y * GT + threadIdx.y, j = (int64_t)blockIdx.x * GT + threadIdx.x;
    for (int64_t z = blockIdx.z; z < batch; z += gridDim.z) {
        const T *a = A + z * sa, *b = B + z * sb;
        float acc = 0.0f;
        for (int64_t k0 = 0; k0 < K; k0 += GT) {
            int64_t ka = k0 + threadIdx.x, kb = k0 + threadIdx.y;
            as[threadIdx.y][threadIdx.x] =
                i < M && ka < K ? to_f(ta ? a[ka * lda + i] : a[i * lda + ka]) : 0.0f;
            bs[threadIdx.y][threadIdx.x] =
                kb < K && j < N ? to_f(tb ? b[j * ldb + kb] : b[kb * ldb + j]) : 0.0f;
            __syncthreads();
            for (int t = 0; t < GT; t++)
                acc += as[threadIdx.y][t] * bs[t][threadIdx.x];
            __syncthreads();
        }
        if (i < M && j < N) {
            T *cp = C + z * sc + i * ldc + j;
            float v = alpha * acc + (beta != 0.0f ? beta * to_f(*cp) : 0.0f);
            *cp = from_f<T>(bias ? v + to_f(bias[j]) : v);
        }
    }
}

/* ---- one row-major product -------------------------------------------------------------------- */

struct rm_gemm {
    int ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    const void *A, *B;
    void *C;
    int64_t lda, ldb, ldc;
    int64_t batch, sa, sb, sc; /* strides in elements between batch entries */
    const void *bias;          /* (N), added to every row; beta must be 0 */
};

template <typename T> __global__ void rows_fill(T *C, const T *bias, int64_t rows, int64_t N)
{
    CU_GRID_LOOP(i, rows * N)
    C[i] = bias ? bias[i % N] : from_f<T>(0.0f);
}

/* K = 0: C = beta·C (+ bias); beta is 0 or 1 here. C is contiguous. */
static int gemm_empty(struct ldm_ctx *c, const char *op, int dtype, const struct rm_gemm *g)
{
    if (g->beta != 0.0f)
        return 0;
    int64_t rows = g->batch * g->M;
    CU_DTYPE_SWITCH(dtype, T,
                    rows_fill<T><<<cu_blocks(rows * g->N), CU_THREADS, 0, ldm_cuda_stream(c)>>>(
                        (T *)g->C, (const T *)g->bias, rows, g->N));
    CU_LAUNCHED(op, "rows_fill");
    return 0;
}

static int gemm_fallback(struct ldm_ctx *c, const char *op, int dtype, const struct rm_gemm *g)
{
    dim3 grid((unsigned)((g->N + GT - 1) / GT), (unsigned)((g->M + GT - 1) / GT),
              (unsigned)(g->batch < 65535 ? g->batch : 65535));
    dim3 block(GT, GT);
    CU_DTYPE_SWITCH(dtype, T,
                    gemm_plain<T><<<grid, block, 0, ldm_cuda_stream(c)>>>(
                        g->ta, g->tb, g->M, g->N, g->K, g->alpha, (const T *)g->A, g->lda, g->sa,
                        (const T *)g->B, g->ldb, g->sb, g->beta, (T *)g->C, g->ldc, g->sc,
                        (const T *)g->bias, g->batch));
    CU_LAUNCHED(op, "gemm_plain");
    return 0;
}

static int gemm_rm(struct ldm_ctx *c, const char *op, int dtype, const struct rm_gemm *g)
{
    if (g->M <= 0 || g->N <= 0 || g->batch <= 0)
        return 0;
    if (g->K <= 0)
        return gemm_empty(c, op, dtype, g);
    struct ldm_cuda *s = ldm_cuda_state(c);
    int64_t es = (int64_t)ldm_dtype_size(dtype);
    struct gemm_key key;
    memset(&key, 0, sizeof key); /* padding too: keys compare with memcmp */
    /* column-major: Cᵀ (N×M) = op(B)ᵀ (N×K) · op(A)ᵀ (K×M) */
    key.m = g->N, key.n = g->M, key.k = g->K;
    key.transa = g->tb, key.transb = g->ta;
    key.lda = g->ldb, key.ldb = g->lda, key.ldc = g->ldc;
    key.batch = g->batch, key.sa = g->sb, key.sb = g->sa, key.sc = g->sc;
    key.dtype = dtype, key.bias = g->bias != NULL, key.tf32 = s->allow_tf32;
    key.align_a = align_of(g->B, g->ldb * es, g->batch > 1 ? g->sb * es : 0);
    key.align_b = align_of(g->A, g->lda * es, g->batch > 1 ? g->sa * es : 0);
    key.align_c = align_of(g->C, g->ldc * es, g->batch > 1 ? g->sc * es : 0);
    struct ldm_cuda_gemm_plan *p = NULL;
    int rc = plan_get(s, op, &key, &p);
    if (rc)
        return rc;
    if (!p->have_algo)
        return gemm_fallback(c, op, dtype, g);
    if (g->bias)
        LT_TRY(op, cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                  &g->bias, sizeof g->bias));
    LT_TRY(op, cublasLtMatmul(s->lt, p->desc, &g->alpha, g->B, p->la, g->A, p->lb, &g->beta, g->C,
                              p->lc, g->C, p->lc, &p->algo, s->lt_ws, LDM_CUDA_LT_WS_BYTES,
                              s->stream));
    return 0;
}

/* ---- linear -------------------------------------------------------------------------------------- */

size_t ldm_cuda_linear_workspace(const struct ldm_linear_dims *d)
{
    return ldm_cuda_colsum_ws(d->M, d->Dout);
}

extern "C" int ldm_cuda_linear_fwd(struct ldm_ctx *c, const struct ldm_linear_dims *d, void *y,
                                   const void *x, const void *w, const void *b)
{
    /* y (M, Dout) = x (M, Din) · wᵀ + b */
    struct rm_gemm g = {0, 1, d->M, d->Dout, d->Din, 1.0f, 0.0f, x, w, y, d->Din, d->Din,
                        d->Dout, 1, 0, 0, 0, b};
    return gemm_rm(c, "linear forward", d->dtype, &g);
}

extern "C" int ldm_cuda_linear_bwd(struct ldm_ctx *c, const struct ldm_linear_dims *d, void *dx,
                                   void *dw, void *db, const void *dy, const void *x,
                                   const void *w)
{
    const char *op = "linear backward";
    int rc = 0;
    if (db)
        rc = ldm_cuda_colsum(c, op, d->dtype, db, dy, d->M, d->Dout, c->ws);
    if (!rc && dx) { /* dx (M, Din) += dy (M, Dout) · w (Dout, Din) */
        struct rm_gemm g = {0, 0, d->M, d->Din, d->Dout, 1.0f, 1.0f, dy, w, dx, d->Dout, d->Din,
                            d->Din, 1, 0, 0, 0, NULL};
        rc = gemm_rm(c, op, d->dtype, &g);
    }
    if (!rc && dw) { /* dw (Dout, Din) += dyᵀ (Dout, M) · x (M, Din) */
        struct rm_gemm g = {1, 0, d->Dout, d->Din, d->M, 1.0f, 1.0f, dy, x, dw, d->Dout, d->Din,
                            d->Din, 1, 0, 0, 0, NULL};
        rc = gemm_rm(c, op, d->dtype, &g);
    }
    return rc;
}

/* ---- bmm ------------------------------------------------------------------------------------------ */

extern "C" int ldm_cuda_bmm_fwd(struct ldm_ctx *c, const struct ldm_bmm_dims *d, void *y,
                                const void *a, const void *b)
{
    int64_t M = d->M, N = d->N, K = d->K;
    struct rm_gemm g = {d->trans_a, d->trans_b, M, N, K, d->alpha, 0.0f, a, b, y,
                        d->trans_a ? M : K, d->trans_b ? K : N, N, d->B, M * K, K * N, M * N,
                        NULL};
    return gemm_rm(c, "bmm forward", d->dtype, &g);
}

extern "C" int ldm_cuda_bmm_bwd(struct ldm_ctx *c, const struct ldm_bmm_dims *d, void *da,
                                void *db, const void *dy, const void *a, const void *b)
{
    const char *op = "bmm backward";
    int64_t M = d->M, N = d->N, K = d->K;
    int ta = d->trans_a, tb = d->trans_b;
    int64_t lda = ta ? M : K, ldb = tb ? K : N;
    int rc = 0;
    if (da) {
        struct rm_gemm g;
        if (!ta) /* da (M, K) += alpha · dy (M, N) · op(b)ᵀ (N, K) */
            g = {0, !tb, M, K, N, d->alpha, 1.0f, dy, b, da, N, ldb, K, d->B, M * N, K * N,
                 M * K, NULL};
        else /* da (K, M) += alpha · op(b) (K, N) · dyᵀ (N, M) */
            g = {tb, 1, K, M, N, d->alpha, 1.0f, b, dy, da, ldb, N, M, d->B, K * N, M * N,
                 M * K, NULL};
        rc = gemm_rm(c, op, d->dtype, &g);
    }
    if (!rc && db) {
        struct rm_gemm g;
        if (!tb) /* db (K, N) += alpha · op(a)ᵀ (K, M) · dy (M, N) */
            g = {!ta, 0, K, N, M, d->alpha, 1.0f, a, dy, db, lda, N, N, d->B, M * K, M * N,
                 K * N, NULL};
        else /* db (N, K) += alpha · dyᵀ (N, M) · op(a) (M, K) */
            g = {1, ta, N, K, M, d->alpha, 1.0f, dy, a, db, N, lda, K, d->B, M * N, M * K,
                 K * N, NULL};
        rc = gemm_rm(c, op, d->dtype, &g);
    }
    return rc;
}

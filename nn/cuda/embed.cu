/* embed.cu — sinusoidal timestep embedding; embedding lookup and its backward.
 *
 * The timestep embedding's frequencies are computed on the host with the
 * CPU backend's very expression (libm's expf) and copied into the
 * workspace, so the angles, which reach a thousand radians (and far more
 * with a scale), are the CPU's bit for bit; sin and cos are taken in
 * double and rounded to float, as the CPU does.
 *
 * Token ids live in device memory: an embedding entry first finds the
 * first id outside 0..V−1 on the device and reads that one position back
 * (a stream wait), returning LDM_ERANGE before touching anything. The
 * backward is deterministic without atomics: a first pass links each row
 * to the next row with the same id and marks the first of each id; a
 * second pass, per (first row, column), sums its chain in row order in
 * float and adds the sum once into dtable. */
#include <math.h>

#include "nn/cuda/kern.cuh"

/* ---- timestep embedding -------------------------------------------------------------------------- */

#define TEMB_HOST_FREQS 4096 /* at most this many frequencies go through a stack buffer */

template <typename T>
__global__ void temb(T *y, const float *t, const float *freq, int64_t M, int64_t D, float scale,
                     int flip)
{
    int64_t half = D / 2;
    CU_GRID_LOOP(k, M * half) {
        int64_t n = k / half, i = k % half;
        float a = __fmul_rn(scale, __fmul_rn(t[n], freq[i]));
        float s = __double2float_rn(sin((double)a)), co = __double2float_rn(cos((double)a));
        T *row = y + n * D;
        row[flip ? half + i : i] = from_f<T>(s);
        row[flip ? i : half + i] = from_f<T>(co);
    }
    if (D % 2) {
        CU_GRID_LOOP(n, M)
        y[n * D + D - 1] = from_f<T>(0.0f);
    }
}

extern "C" int ldm_cuda_timestep_fwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *y,
                                     const float *t)
{
    const char *op = "timestep_embedding";
    if (d->M * d->D == 0)
        return 0;
    int64_t half = d->D / 2;
    if (half > TEMB_HOST_FREQS)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: width %lld (at most %d)", op, (long long)d->D,
                        2 * TEMB_HOST_FREQS);
    /* the CPU backend's frequencies: expf(−ln(max_period)·i / (half − shift)) */
    float freq[TEMB_HOST_FREQS];
    float neglog = (float)(-log((double)d->max_period));
    float denom = (float)half - d->shift;
    for (int64_t i = 0; i < half; i++)
        freq[i] = expf(neglog * (float)i / denom);
    cudaStream_t st = ldm_cuda_stream(c);
    /* from pageable memory: returns once the values are staged, so the stack may go */
    if (half > 0)
        CU_TRY(op, cudaMemcpyAsync(c->ws, freq, (size_t)half * sizeof(float),
                                   cudaMemcpyHostToDevice, st));
    int64_t n = d->M * (half > 0 ? half : 1);
    CU_DTYPE_SWITCH(d->dtype, T,
                    temb<T><<<cu_blocks(n), CU_THREADS, 0, st>>>((T *)y, t, (const float *)c->ws,
                                                                 d->M, d->D, d->scale, d->flip));
    CU_LAUNCHED(op, "temb");
    return 0;
}

/* ---- id checks ----------------------------------------------------------------------------------------- */

__device__ __forceinline__ int64_t id_at(const void *ids, int i64, int64_t i)
{
    return i64 ? ((const int64_t *)ids)[i] : ((const int32_t *)ids)[i];
}

/* *first = the smallest position holding a bad id (it starts all ones). */
__global__ void find_bad(unsigned long long *first, const void *ids, int i64, int64_t M, int64_t V)
{
    CU_GRID_LOOP(i, M) {
        int64_t v = id_at(ids, i64, i);
        if (v < 0 || v >= V)
            atomicMin(first, (unsigned long long)i);
    }
}

__global__ void read_id(int64_t *out, const void *ids, int i64, int64_t i)
{
    *out = id_at(ids, i64, i);
}

/* 0, or LDM_ERANGE naming the first bad id (waits for the stream). */
static int check_ids(struct ldm_ctx *c, const char *op, const struct ldm_embed_dims *d,
                     const void *ids)
{
    struct ldm_cuda *s = ldm_cuda_state(c);
    int i64 = d->id_dtype == LDM_DT_I64;
    unsigned long long *first = (unsigned long long *)s->scratch_dev;
    CU_TRY(op, cudaMemsetAsync(first, 0xff, sizeof *first, s->stream));
    find_bad<<<cu_blocks(d->M), CU_THREADS, 0, s->stream>>>(first, ids, i64, d->M, d->V);
    CU_LAUNCHED(op, "find_bad");
    CU_TRY(op, cudaMemcpyAsync(s->scratch_host, first, sizeof *first, cudaMemcpyDeviceToHost,
                               s->stream));
    CU_TRY(op, cudaStreamSynchronize(s->stream));
    unsigned long long pos = (unsigned long long)s->scratch_host[0];
    if (pos == ~0ull)
        return 0;
    read_id<<<1, 1, 0, s->stream>>>(s->scratch_dev + 1, ids, i64, (int64_t)pos);
    CU_LAUNCHED(op, "read_id");
    CU_TRY(op, cudaMemcpyAsync(s->scratch_host + 1, s->scratch_dev + 1, sizeof(int64_t),
                               cudaMemcpyDeviceToHost, s->stream));
    CU_TRY(op, cudaStreamSynchronize(s->stream));
    return ldm_fail(LDM_ERANGE, "%s: id %lld at position %llu is outside 0..%lld", op,
                    (long long)s->scratch_host[1], pos, (long long)(d->V - 1));
}

/* ---- lookup and its backward ----------------------------------------------------------------------------- */

template <typename T>
__global__ void emb_fwd(T *y, const void *ids, int i64, const T *table, int64_t M, int64_t D)
{
    CU_GRID_LOOP(i, M * D)
    y[i] = table[id_at(ids, i64, i / D) * D + i % D];
}

/* first[r]: no earlier row has r's id; next[r]: the next row with it, or -1. */
__global__ void emb_links(int32_t *first, int32_t *next, const void *ids, int i64, int64_t M)
{
    CU_GRID_LOOP(r, M) {
        int64_t v = id_at(ids, i64, r);
        int f = 1;
        for (int64_t j = 0; j < r && f; j++)
            f = id_at(ids, i64, j) != v;
        int64_t nx = -1;
        for (int64_t j = r + 1; j < M && nx < 0; j++)
            if (id_at(ids, i64, j) == v)
                nx = j;
        first[r] = f;
        next[r] = (int32_t)nx;
    }
}

template <typename T>
__global__ void emb_bwd(T *dtable, const T *dy, const void *ids, int i64, const int32_t *first,
                        const int32_t *next, int64_t M, int64_t D)
{
    CU_GRID_LOOP(i, M * D) {
        int64_t r = i / D, col = i % D;
        if (!first[r])
            continue;
        float s = 0.0f;
        for (int64_t q = r; q >= 0; q = next[q])
            s += to_f(dy[q * D + col]);
        add_to(dtable, id_at(ids, i64, r) * D + col, s);
    }
}

size_t ldm_cuda_embed_workspace(int op, const struct ldm_embed_dims *d)
{
    if (op == LDM_OP_TEMB)
        return (size_t)(d->D / 2) * sizeof(float);
    return op == LDM_OP_EMBEDDING_BWD ? (size_t)(2 * d->M) * sizeof(int32_t) : 0;
}

extern "C" int ldm_cuda_embedding_fwd(struct ldm_ctx *c, const struct ldm_embed_dims *d, void *y,
                                      const void *ids, const void *table)
{
    const char *op = "embedding forward";
    if (d->M == 0)
        return 0;
    int rc = check_ids(c, op, d, ids);
    if (rc || d->D == 0)
        return rc;
    int i64 = d->id_dtype == LDM_DT_I64;
    CU_DTYPE_SWITCH(d->dtype, T,
                    emb_fwd<T><<<cu_blocks(d->M * d->D), CU_THREADS, 0, ldm_cuda_stream(c)>>>(
                        (T *)y, ids, i64, (const T *)table, d->M, d->D));
    CU_LAUNCHED(op, "emb_fwd");
    return 0;
}

extern "C" int ldm_cuda_embedding_bwd(struct ldm_ctx *c, const struct ldm_embed_dims *d,
                                      void *dtable, const void *dy, const void *ids)
{
    const char *op = "embedding backward";
    if (d->M == 0)
        return 0;
    int rc = check_ids(c, op, d, ids);
    if (rc || d->D == 0)
        return rc;
    if (d->M > INT32_MAX)
        return ldm_fail(LDM_EINVAL, "%s: %lld ids (at most %d)", op, (long long)d->M, INT32_MAX);
    cudaStream_t st = ldm_cuda_stream(c);
    int i64 = d->id_dtype == LDM_DT_I64;
    int32_t *first = (int32_t *)c->ws, *next = first + d->M;
    emb_links<<<cu_blocks(d->M), CU_THREADS, 0, st>>>(first, next, ids, i64, d->M);
    CU_DTYPE_SWITCH(d->dtype, T,
                    emb_bwd<T><<<cu_blocks(d->M * d->D), CU_THREADS, 0, st>>>(
                        (T *)dtable, (const T *)dy, ids, i64, first, next, d->M, d->D));
    CU_LAUNCHED(op, "emb_bwd");
    return 0;
}

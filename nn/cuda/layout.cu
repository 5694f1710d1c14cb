/* layout.cu — moving tensors around: concat along dim 1, transpose of the
 * last two dims (32×32 tiles through shared memory), add (y = α·a + β·b)
 * and the broadcast add of a (N, C) vector over a feature map, forward
 * and backward. The broadcast add's dv is one warp per (n, c) row: a
 * fixed-order sum. */
#include "nn/cuda/kern.cuh"

/* ---- concat ----------------------------------------------------------------------------------------- */

/* y[n][off + c][s] = x[n][c][s] (fwd) or dx[n][c][s] += dy[n][off + c][s] (bwd). */
template <typename T>
__global__ void cat_part(T *y, const T *x, int64_t N, int64_t Ci, int64_t Ctot, int64_t off,
                         int64_t S, int backward)
{
    CU_GRID_LOOP(i, N * Ci * S) {
        int64_t n = i / (Ci * S), r = i % (Ci * S);
        int64_t yi = (n * Ctot + off) * S + r;
        if (!backward)
            y[yi] = x[i];
        else
            add_to((T *)x, i, to_f(y[yi]));
    }
}

static int cat_run(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                   const void *const *parts, int backward)
{
    int64_t off = 0;
    for (int i = 0; i < d->nparts; i++) {
        int64_t ci = d->parts[i], n = d->N * ci * d->S;
        if (n > 0 && parts[i])
            CU_DTYPE_SWITCH(d->dtype, T,
                            cat_part<T><<<cu_blocks(n), CU_THREADS, 0, ldm_cuda_stream(c)>>>(
                                (T *)y, (const T *)parts[i], d->N, ci, d->Ctot, off, d->S,
                                backward));
        off += ci;
    }
    CU_LAUNCHED(backward ? "concat backward" : "concat forward", "cat_part");
    return 0;
}

extern "C" int ldm_cuda_concat_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                                   const void *const *xs)
{
    return cat_run(c, d, y, xs, 0);
}

extern "C" int ldm_cuda_concat_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d,
                                   void *const *dxs, const void *dy)
{
    return cat_run(c, d, (void *)dy, (const void *const *)dxs, 1);
}

/* ---- transpose ---------------------------------------------------------------------------------------- */

#define TT 32

/* out (N, Q, P) = in (N, P, Q)ᵀ, or += when acc. Block (32, 8), tile 32×32. */
template <typename T>
__global__ void transpose_tiles(T *out, const T *in, int64_t N, int64_t P, int64_t Q, int acc)
{
    __shared__ float tile[TT][TT + 1];
    int64_t q0 = (int64_t)blockIdx.x * TT, p0 = (int64_t)blockIdx.y * TT;
    for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
        const T *src = in + n * P * Q;
        T *dst = out + n * P * Q;
        for (int r = threadIdx.y; r < TT; r += 8) {
            int64_t p = p0 + r, q = q0 + threadIdx.x;
            if (p < P && q < Q)
                tile[r][threadIdx.x] = to_f(src[p * Q + q]);
        }
        __syncthreads();
        for (int r = threadIdx.y; r < TT; r += 8) {
            int64_t q = q0 + r, p = p0 + threadIdx.x;
            if (p < P && q < Q) {
                float v = tile[threadIdx.x][r];
                dst[q * P + p] = from_f<T>(acc ? to_f(dst[q * P + p]) + v : v);
            }
        }
        __syncthreads();
    }
}

static int transpose_run(struct ldm_ctx *c, const char *op, int dtype, void *out, const void *in,
                         int64_t N, int64_t P, int64_t Q, int acc)
{
    if (N * P * Q == 0)
        return 0;
    dim3 grid((unsigned)((Q + TT - 1) / TT), (unsigned)((P + TT - 1) / TT),
              (unsigned)(N < 65535 ? N : 65535));
    dim3 block(TT, 8);
    CU_DTYPE_SWITCH(dtype, T,
                    transpose_tiles<T><<<grid, block, 0, ldm_cuda_stream(c)>>>(
                        (T *)out, (const T *)in, N, P, Q, acc));
    CU_LAUNCHED(op, "transpose_tiles");
    return 0;
}

extern "C" int ldm_cuda_transpose_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                                      const void *x)
{
    return transpose_run(c, "transpose forward", d->dtype, y, x, d->N, d->C, d->S, 0);
}

extern "C" int ldm_cuda_transpose_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d,
                                      void *dx, const void *dy)
{
    return transpose_run(c, "transpose backward", d->dtype, dx, dy, d->N, d->S, d->C, 1);
}

/* ---- add ------------------------------------------------------------------------------------------------ */

template <typename T>
__global__ void add_fwd(T *y, float alpha, const T *a, float beta, const T *b, int64_t n)
{
    CU_GRID_LOOP(i, n) {
        float v = alpha * to_f(a[i]);
        y[i] = from_f<T>(b ? v + beta * to_f(b[i]) : v);
    }
}

template <typename T>
__global__ void add_bwd(T *da, float alpha, T *db, float beta, const T *dy, int64_t n)
{
    CU_GRID_LOOP(i, n) {
        float g = to_f(dy[i]);
        if (da)
            add_to(da, i, alpha * g);
        if (db)
            add_to(db, i, beta * g);
    }
}

extern "C" int ldm_cuda_add_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                                float alpha, const void *a, float beta, const void *b)
{
    if (d->n == 0)
        return 0;
    CU_DTYPE_SWITCH(d->dtype, T,
                    add_fwd<T><<<cu_blocks(d->n), CU_THREADS, 0, ldm_cuda_stream(c)>>>(
                        (T *)y, alpha, (const T *)a, beta, (const T *)b, d->n));
    CU_LAUNCHED("add forward", "add_fwd");
    return 0;
}

extern "C" int ldm_cuda_add_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *da,
                                float alpha, void *db, float beta, const void *dy)
{
    if (d->n == 0 || (!da && !db))
        return 0;
    CU_DTYPE_SWITCH(d->dtype, T,
                    add_bwd<T><<<cu_blocks(d->n), CU_THREADS, 0, ldm_cuda_stream(c)>>>(
                        (T *)da, alpha, (T *)db, beta, (const T *)dy, d->n));
    CU_LAUNCHED("add backward", "add_bwd");
    return 0;
}

/* ---- broadcast add ---------------------------------------------------------------------------------------- */

template <typename T> __global__ void bcast_fwd(T *y, const T *x, const T *v, int64_t rows, int64_t S)
{
    CU_GRID_LOOP(i, rows * S)
    y[i] = from_f<T>(to_f(x[i]) + to_f(v[i / S]));
}

#define BC_WARPS 4

/* One warp per (n, c) row: dx += dy; dv[row] += Σ dy (lanes, then the warp tree). */
template <typename T> __global__ void bcast_bwd(T *dx, T *dv, const T *dy, int64_t rows, int64_t S)
{
    int64_t row = (int64_t)blockIdx.x * BC_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    float s = 0.0f;
    for (int64_t i = lane; i < S; i += 32) {
        float g = to_f(dy[row * S + i]);
        if (dx)
            add_to(dx, row * S + i, g);
        s += g;
    }
    s = warp_sum(s);
    if (dv && lane == 0)
        add_to(dv, row, s);
}

extern "C" int ldm_cuda_add_bcast_fwd(struct ldm_ctx *c, const struct ldm_layout_dims *d, void *y,
                                      const void *x, const void *v)
{
    int64_t rows = d->N * d->C;
    if (rows * d->S == 0)
        return 0;
    CU_DTYPE_SWITCH(d->dtype, T,
                    bcast_fwd<T><<<cu_blocks(rows * d->S), CU_THREADS, 0, ldm_cuda_stream(c)>>>(
                        (T *)y, (const T *)x, (const T *)v, rows, d->S));
    CU_LAUNCHED("add_bcast forward", "bcast_fwd");
    return 0;
}

extern "C" int ldm_cuda_add_bcast_bwd(struct ldm_ctx *c, const struct ldm_layout_dims *d,
                                      void *dx, void *dv, const void *dy)
{
    int64_t rows = d->N * d->C;
    if (rows == 0 || (!dx && !dv))
        return 0;
    unsigned blocks = (unsigned)((rows + BC_WARPS - 1) / BC_WARPS);
    CU_DTYPE_SWITCH(d->dtype, T,
                    bcast_bwd<T><<<blocks, 32 * BC_WARPS, 0, ldm_cuda_stream(c)>>>(
                        (T *)dx, (T *)dv, (const T *)dy, rows, d->S));
    CU_LAUNCHED("add_bcast backward", "bcast_bwd");
    return 0;
}

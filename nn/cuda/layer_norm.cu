/* layer_norm.cu — layer norm over the last dim, forward and backward.
 *
 * Forward: one warp per row (mean, then squared deviations: the two-pass
 * variance of the CPU backend; the row's later reads come from cache),
 * 16 bytes a lane where the width and alignment allow. Backward: dx by one
 * warp per row (the row's two means, then dx), likewise; dgamma
 * and dbeta as column sums: blocks of 32 columns × a chunk of rows (8 row
 * lanes, then the lanes in order) write partials (2, R, D) to the
 * workspace, and sum_partials (kern.cuh) adds each column's R partials in
 * a fixed order. Every sum is float in a fixed order: no atomics. Many
 * small blocks keep enough rows in flight to cover memory latency. */
#include "nn/cuda/kern.cuh"

#define LN_WARPS 4 /* rows per block (a warp each) */

/* Row chunks of dgamma/dbeta's first pass: about 64 rows each, 1..512 of them. */
static int64_t ln_chunks(int64_t M)
{
    int64_t r = (M + 63) / 64;
    return r < 1 ? 1 : r > 512 ? 512 : r;
}

size_t ldm_cuda_ln_workspace(const struct ldm_norm_dims *d)
{
    return (size_t)(2 * ln_chunks(d->N) * d->C) * sizeof(float);
}

/* ---- forward ---------------------------------------------------------------------------------------- */

/* One warp per row; each lane moves V consecutive elements at a time (V > 1:
 * D a multiple of V and the rows 16-byte aligned). */
template <typename T, int V>
__global__ void ln_fwd(T *__restrict__ y, float *__restrict__ mean, float *__restrict__ rstd,
                       const T *__restrict__ x, const T *__restrict__ gamma,
                       const T *__restrict__ beta, int64_t M, int64_t D, float eps)
{
    int64_t row = (int64_t)blockIdx.x * LN_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= M)
        return; /* a whole warp leaves: no block-wide sync follows */
    const T *xr = x + row * D;
    float s = 0.0f, v[V];
    for (int64_t i = (int64_t)lane * V; i < D; i += 32 * V) {
        load_vec<T, V>(v, xr + i);
#pragma unroll
        for (int k = 0; k < V; k++)
            s += v[k];
    }
    float mu = warp_sum(s) / (float)D, ss = 0.0f;
    for (int64_t i = (int64_t)lane * V; i < D; i += 32 * V) {
        load_vec<T, V>(v, xr + i);
#pragma unroll
        for (int k = 0; k < V; k++)
            ss += (v[k] - mu) * (v[k] - mu);
    }
    float r = 1.0f / sqrtf(warp_sum(ss) / (float)D + eps);
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = r;
    }
    for (int64_t i = (int64_t)lane * V; i < D; i += 32 * V) {
        float ga[V], be[V];
        load_vec<T, V>(v, xr + i);
        if (gamma) {
            load_vec<T, V>(ga, gamma + i);
            load_vec<T, V>(be, beta + i);
        }
#pragma unroll
        for (int k = 0; k < V; k++) {
            float xh = (v[k] - mu) * r;
            v[k] = gamma ? xh * ga[k] + be[k] : xh;
        }
        store_vec<T, V>(y + row * D + i, v);
    }
}

extern "C" int ldm_cuda_layer_norm_fwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *y,
                                       float *mean, float *rstd, const void *x, const void *gamma,
                                       const void *beta)
{
    if (d->N == 0)
        return 0;
    unsigned blocks = (unsigned)((d->N + LN_WARPS - 1) / LN_WARPS);
    cudaStream_t st = ldm_cuda_stream(c);
    const void *ga = d->affine ? gamma : NULL;
    CU_DTYPE_SWITCH(d->dtype, T, {
        const int V = vec_len<T>();
        if (d->C % V == 0 && aligned16(y, x, ga, d->affine ? beta : NULL))
            ln_fwd<T, V><<<blocks, 32 * LN_WARPS, 0, st>>>((T *)y, mean, rstd, (const T *)x,
                                                           (const T *)ga, (const T *)beta, d->N,
                                                           d->C, d->eps);
        else
            ln_fwd<T, 1><<<blocks, 32 * LN_WARPS, 0, st>>>((T *)y, mean, rstd, (const T *)x,
                                                           (const T *)ga, (const T *)beta, d->N,
                                                           d->C, d->eps);
    });
    CU_LAUNCHED("layer_norm forward", "ln_fwd");
    return 0;
}

/* ---- backward -------------------------------------------------------------------------------------- */

/* dx += rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·gamma: one warp per row,
 * V elements a lane at a time (as ln_fwd). */
template <typename T, int V>
__global__ void ln_bwd_rows(T *__restrict__ dx, const T *__restrict__ dy, const T *__restrict__ x,
                            const float *__restrict__ mean, const float *__restrict__ rstd,
                            const T *__restrict__ gamma, int64_t M, int64_t D)
{
    int64_t row = (int64_t)blockIdx.x * LN_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= M)
        return;
    const T *xr = x + row * D, *dyr = dy + row * D;
    T *dxr = dx + row * D;
    float mu = mean[row], r = rstd[row], a = 0.0f, b = 0.0f, xv[V], dv[V], gv[V];
    for (int64_t i = (int64_t)lane * V; i < D; i += 32 * V) {
        load_vec<T, V>(xv, xr + i);
        load_vec<T, V>(dv, dyr + i);
        if (gamma)
            load_vec<T, V>(gv, gamma + i);
#pragma unroll
        for (int k = 0; k < V; k++) {
            float g = dv[k] * (gamma ? gv[k] : 1.0f);
            a += g;
            b += g * ((xv[k] - mu) * r);
        }
    }
    float am = warp_sum(a) / (float)D, bm = warp_sum(b) / (float)D;
    for (int64_t i = (int64_t)lane * V; i < D; i += 32 * V) {
        float ov[V];
        load_vec<T, V>(xv, xr + i);
        load_vec<T, V>(dv, dyr + i);
        load_vec<T, V>(ov, dxr + i);
        if (gamma)
            load_vec<T, V>(gv, gamma + i);
#pragma unroll
        for (int k = 0; k < V; k++) {
            float g = dv[k] * (gamma ? gv[k] : 1.0f), xh = (xv[k] - mu) * r;
            ov[k] += r * (g - am - xh * bm);
        }
        store_vec<T, V>(dxr + i, ov);
    }
}

/* Partials (2, R, D) by column tiles of 32 and 8 row lanes per chunk. */
template <typename T>
__global__ void ln_params1(float *part, const T *dy, const T *x, const float *mean,
                           const float *rstd, int64_t M, int64_t D, int64_t rows, int64_t R)
{
    __shared__ float sg[8][32], sb[8][32];
    int64_t col = (int64_t)blockIdx.x * 32 + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows, r1 = r0 + rows < M ? r0 + rows : M;
    float g = 0.0f, b = 0.0f;
    if (col < D)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
            float d = to_f(dy[r * D + col]);
            g += d * ((to_f(x[r * D + col]) - mean[r]) * rstd[r]);
            b += d;
        }
    sg[threadIdx.y][threadIdx.x] = g;
    sb[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && col < D) {
        float tg = 0.0f, tb = 0.0f;
        for (int l = 0; l < 8; l++) {
            tg += sg[l][threadIdx.x];
            tb += sb[l][threadIdx.x];
        }
        part[(int64_t)blockIdx.y * D + col] = tg;
        part[(R + blockIdx.y) * D + col] = tb;
    }
}

template <typename T>
static int ln_bwd_run(const char *op, const struct ldm_norm_dims *d, cudaStream_t st, float *ws,
                      T *dx, T *dgamma, T *dbeta, const T *dy, const T *x, const float *mean,
                      const float *rstd, const T *gamma)
{
    int64_t M = d->N, D = d->C, R = ln_chunks(M), rows = (M + R - 1) / R;
    unsigned blocks = (unsigned)((M + LN_WARPS - 1) / LN_WARPS);
    const int V = vec_len<T>();
    if (dx && D % V == 0 && aligned16(dx, dy, x, gamma))
        ln_bwd_rows<T, V><<<blocks, 32 * LN_WARPS, 0, st>>>(dx, dy, x, mean, rstd, gamma, M, D);
    else if (dx)
        ln_bwd_rows<T, 1><<<blocks, 32 * LN_WARPS, 0, st>>>(dx, dy, x, mean, rstd, gamma, M, D);
    if (dgamma || dbeta) { /* chunk partials, then the chunks in a fixed order (kern.cuh) */
        unsigned tiles = (unsigned)((D + 31) / 32);
        ln_params1<T><<<dim3(tiles, (unsigned)R), dim3(32, 8), 0, st>>>(ws, dy, x, mean, rstd, M,
                                                                        D, rows, R);
        if (dgamma)
            sum_partials<T><<<tiles, dim3(32, 8), 0, st>>>(dgamma, ws, R, D);
        if (dbeta)
            sum_partials<T><<<tiles, dim3(32, 8), 0, st>>>(dbeta, ws + R * D, R, D);
    }
    CU_LAUNCHED(op, "ln_bwd");
    return 0;
}

extern "C" int ldm_cuda_layer_norm_bwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *dx,
                                       void *dgamma, void *dbeta, const void *dy, const void *x,
                                       const float *mean, const float *rstd, const void *gamma)
{
    if (d->N == 0 || d->C == 0)
        return 0;
    const void *ga = d->affine ? gamma : NULL;
    int rc = 0;
    CU_DTYPE_SWITCH(d->dtype, T,
                    rc = ln_bwd_run<T>("layer_norm backward", d, ldm_cuda_stream(c),
                                       (float *)c->ws, (T *)dx, (T *)dgamma, (T *)dbeta,
                                       (const T *)dy, (const T *)x, mean, rstd, (const T *)ga));
    return rc;
}

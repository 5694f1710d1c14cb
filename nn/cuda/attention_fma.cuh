/* attention_fma.cuh — the generic attention kernels: any dtype, any
 * Dh, Dv <= FMA_MAXD, plain F32 FMA (included by nn/cuda/attention.cu only).
 *
 * The same algorithms as attention_tc.cuh on 16×16 tiles kept in shared
 * memory as F32, 128 threads a block:
 *  - forward: a block owns 16 queries; per key tile it computes the 16×16
 *    scores, a thread per row updates the online softmax, then every
 *    thread updates 1/8 of a row of O (columns t%8, t%8 + 8, ...);
 *  - backward dk/dv: a block owns 16 keys and walks the query tiles;
 *    backward dq: a block owns 16 queries and walks the key tiles; both
 *    recompute P and dS = P ⊙ (dP − D) for the tile pair (fma_tile_ds).
 * Shared rows of the tiles that are read across threads are padded by
 * one float (stride width + 1) to spread the banks.
 */
#ifndef LDM_NN_CUDA_ATTENTION_FMA_CUH
#define LDM_NN_CUDA_ATTENTION_FMA_CUH

#include <math.h>

#include "nn/cuda/attention_common.cuh"

#define FMA_THREADS 128
#define FMA_T 16     /* queries and keys per tile */
#define FMA_MAXD 256 /* widest head: 8 threads × FMA_U columns a row */
#define FMA_U (FMA_MAXD / 8)

/* Rows r0 .. r0+15 (those < rows) of a head's w columns at g (row stride
 * ld) into s [16][stride] as F32, zero past `rows`. */
template <typename T>
static __device__ __forceinline__ void fma_tile_load(float *s, int stride, const T *g, int64_t ld,
                                                     int w, int r0, int rows)
{
    for (int i = threadIdx.x; i < FMA_T * w; i += FMA_THREADS) {
        int r = i / w, c = i % w;
        s[r * stride + c] = r0 + r < rows ? attn_ld<T>(g + (int64_t)(r0 + r) * ld + c) : 0.0f;
    }
}

/* Visibility of keys j0 .. j0+15 as 0/1 floats. */
static __device__ __forceinline__ void fma_vis_load(float *vis, const attn_params &p, int n,
                                                    int j0)
{
    if (threadIdx.x < FMA_T)
        vis[threadIdx.x] = key_visible(p, n, j0 + threadIdx.x) ? 1.0f : 0.0f;
}

/* Dot product of two shared rows. */
static __device__ __forceinline__ float fma_dot(const float *a, const float *b, int w)
{
    float s = 0.0f;
    for (int e = 0; e < w; e++)
        s = fmaf(a[e], b[e], s);
    return s;
}

/* ---- forward ------------------------------------------------------------------------------ */

/* Shared floats of the forward kernel. */
static __host__ __device__ __forceinline__ int fma_fwd_floats(int Dh, int Dv)
{
    return FMA_T * (Dh + 1) * 2 + FMA_T * Dv + FMA_T * FMA_T + 4 * FMA_T;
}

/* Scores of the tile into sS (log2 domain, −inf where hidden), then the
 * online softmax per row (threads 0..15): sS becomes the weights, alpha
 * the rescale of the row's output. */
static __device__ __forceinline__ void fma_fwd_scores(const attn_params &p, const float *sQ,
                                                      const float *sK, const float *vis, float *sS,
                                                      float *m, float *l, float *alpha, int i0,
                                                      int j0)
{
    for (int e = threadIdx.x; e < FMA_T * FMA_T; e += FMA_THREADS) {
        int r = e / FMA_T, j = e % FMA_T;
        float x = fma_dot(sQ + r * (p.Dh + 1), sK + j * (p.Dh + 1), p.Dh) * p.scale_log2;
        if (vis[j] == 0.0f || (p.causal && j0 + j > i0 + r))
            x = -INFINITY;
        sS[e] = x;
    }
    __syncthreads();
    int r = threadIdx.x;
    if (r < FMA_T) {
        float mx = m[r];
        for (int j = 0; j < FMA_T; j++)
            mx = fmaxf(mx, sS[r * FMA_T + j]);
        float muse = mx == -INFINITY ? 0.0f : mx, sum = 0.0f;
        for (int j = 0; j < FMA_T; j++) {
            float v = fast_exp2(sS[r * FMA_T + j] - muse);
            sS[r * FMA_T + j] = v;
            sum += v;
        }
        alpha[r] = fast_exp2(m[r] - muse);
        l[r] = l[r] * alpha[r] + sum;
        m[r] = mx;
    }
    __syncthreads();
}

/* grid (ceil(Lq / 16), H, N), FMA_THREADS threads, fma_fwd_floats·4 bytes. */
template <typename T> __global__ void __launch_bounds__(FMA_THREADS) attn_fwd_fma(attn_params p)
{
    extern __shared__ float fsm[];
    int Dh = p.Dh, Dv = p.Dv, h = blockIdx.y, n = blockIdx.z, tid = threadIdx.x;
    float *sQ = fsm, *sK = sQ + FMA_T * (Dh + 1), *sV = sK + FMA_T * (Dh + 1);
    float *sS = sV + FMA_T * Dv, *m = sS + FMA_T * FMA_T, *l = m + FMA_T, *alpha = l + FMA_T;
    float *vis = alpha + FMA_T;
    int i0 = (gridDim.x - 1 - blockIdx.x) * FMA_T, r = tid / 8;
    int64_t ldq = (int64_t)p.H * Dh, ldv = (int64_t)p.H * Dv;
    const T *K = (const T *)p.k + (int64_t)n * p.Lk * ldq + (int64_t)h * Dh;
    const T *V = (const T *)p.v + (int64_t)n * p.Lk * ldv + (int64_t)h * Dv;
    fma_tile_load<T>(sQ, Dh + 1, (const T *)p.q + (int64_t)n * p.Lq * ldq + (int64_t)h * Dh, ldq,
                     Dh, i0, p.Lq);
    if (tid < FMA_T)
        m[tid] = -INFINITY, l[tid] = 0.0f;
    float o[FMA_U] = {};
    int kend = p.causal ? min(p.Lk, i0 + FMA_T) : p.Lk;
    for (int j0 = 0; j0 < kend; j0 += FMA_T) {
        __syncthreads();
        fma_tile_load<T>(sK, Dh + 1, K, ldq, Dh, j0, p.Lk);
        fma_tile_load<T>(sV, Dv, V, ldv, Dv, j0, p.Lk);
        fma_vis_load(vis, p, n, j0);
        __syncthreads();
        fma_fwd_scores(p, sQ, sK, vis, sS, m, l, alpha, i0, j0);
        float a = alpha[r];
#pragma unroll
        for (int u = 0; u < FMA_U; u++) {
            int c = tid % 8 + 8 * u;
            if (c < Dv) {
                float acc = o[u] * a;
                for (int j = 0; j < FMA_T; j++)
                    acc = fmaf(sS[r * FMA_T + j], sV[j * Dv + c], acc);
                o[u] = acc;
            }
        }
    }
    __syncthreads();
    if (i0 + r >= p.Lq)
        return;
    float lr = l[r], inv = lr > 0.0f ? 1.0f / lr : 0.0f;
    T *orow = (T *)p.out + ((int64_t)n * p.Lq + i0 + r) * ldv + (int64_t)h * Dv;
#pragma unroll
    for (int u = 0; u < FMA_U; u++) {
        int c = tid % 8 + 8 * u;
        if (c < Dv)
            orow[c] = attn_from<T>(o[u] * inv);
    }
    if (tid % 8 == 0)
        p.lse[((int64_t)n * p.H + h) * p.Lq + i0 + r] =
            lr > 0.0f ? (m[r] + log2f(lr)) * ATTN_LN2 : -INFINITY;
}

/* ---- backward ------------------------------------------------------------------------------ */

/* Shared floats of the backward kernels: Q, K, dO, V tiles, P, dS, then
 * lse (log2 domain), D and key visibility per row. */
static __host__ __device__ __forceinline__ int fma_bwd_floats(int Dh, int Dv)
{
    return FMA_T * (Dh + 1) * 2 + FMA_T * (Dv + 1) * 2 + 2 * FMA_T * FMA_T + 3 * FMA_T;
}

struct fma_bwd_smem {
    float *q, *k, *o, *v, *P, *dS, *lse2, *D, *vis;
};

static __device__ __forceinline__ fma_bwd_smem fma_bwd_layout(float *base, int Dh, int Dv)
{
    fma_bwd_smem s;
    s.q = base, s.k = s.q + FMA_T * (Dh + 1), s.o = s.k + FMA_T * (Dh + 1);
    s.v = s.o + FMA_T * (Dv + 1), s.P = s.v + FMA_T * (Dv + 1), s.dS = s.P + FMA_T * FMA_T;
    s.lse2 = s.dS + FMA_T * FMA_T, s.D = s.lse2 + FMA_T, s.vis = s.D + FMA_T;
    return s;
}

/* Queries i0 ..: Q, dO tiles, lse (log2 domain; +inf where P must be 0), D. */
template <typename T>
static __device__ __forceinline__ void fma_q_load(const attn_params &p, const fma_bwd_smem &s,
                                                  int n, int h, int i0)
{
    int64_t ldq = (int64_t)p.H * p.Dh, ldv = (int64_t)p.H * p.Dv;
    fma_tile_load<T>(s.q, p.Dh + 1, (const T *)p.q + (int64_t)n * p.Lq * ldq + (int64_t)h * p.Dh,
                     ldq, p.Dh, i0, p.Lq);
    fma_tile_load<T>(s.o, p.Dv + 1,
                     (const T *)p.dout + (int64_t)n * p.Lq * ldv + (int64_t)h * p.Dv, ldv, p.Dv,
                     i0, p.Lq);
    int r = threadIdx.x;
    if (r < FMA_T) {
        int64_t at = ((int64_t)n * p.H + h) * p.Lq + i0 + r;
        float lse = i0 + r < p.Lq ? p.lse_in[at] : -INFINITY;
        s.lse2[r] = lse == -INFINITY ? INFINITY : lse * ATTN_LOG2E;
        s.D[r] = i0 + r < p.Lq ? p.dsum[at] : 0.0f;
    }
}

/* Keys j0 ..: K, V tiles and visibility. */
template <typename T>
static __device__ __forceinline__ void fma_k_load(const attn_params &p, const fma_bwd_smem &s,
                                                  int n, int h, int j0)
{
    int64_t ldq = (int64_t)p.H * p.Dh, ldv = (int64_t)p.H * p.Dv;
    fma_tile_load<T>(s.k, p.Dh + 1, (const T *)p.k + (int64_t)n * p.Lk * ldq + (int64_t)h * p.Dh,
                     ldq, p.Dh, j0, p.Lk);
    fma_tile_load<T>(s.v, p.Dv + 1, (const T *)p.v + (int64_t)n * p.Lk * ldv + (int64_t)h * p.Dv,
                     ldv, p.Dv, j0, p.Lk);
    fma_vis_load(s.vis, p, n, j0);
}

/* P[r][j] and dS[r][j] = P ⊙ (dO_r·V_j − D_r) for the loaded tiles. */
static __device__ __forceinline__ void fma_tile_ds(const attn_params &p, const fma_bwd_smem &s,
                                                   int i0, int j0)
{
    for (int e = threadIdx.x; e < FMA_T * FMA_T; e += FMA_THREADS) {
        int r = e / FMA_T, j = e % FMA_T;
        float x = fma_dot(s.q + r * (p.Dh + 1), s.k + j * (p.Dh + 1), p.Dh) * p.scale_log2;
        x = fast_exp2(x - s.lse2[r]);
        if (s.vis[j] == 0.0f || (p.causal && j0 + j > i0 + r))
            x = 0.0f;
        float dp = fma_dot(s.o + r * (p.Dv + 1), s.v + j * (p.Dv + 1), p.Dv);
        s.P[e] = x;
        s.dS[e] = x * (dp - s.D[r]);
    }
}

/* grid (ceil(Lk / 16), H, N), FMA_THREADS threads, fma_bwd_floats·4 bytes. */
template <typename T>
__global__ void __launch_bounds__(FMA_THREADS) attn_bwd_dkdv_fma(attn_params p)
{
    extern __shared__ float fsm[];
    fma_bwd_smem s = fma_bwd_layout(fsm, p.Dh, p.Dv);
    int h = blockIdx.y, n = blockIdx.z, tid = threadIdx.x, jr = tid / 8;
    int j0 = blockIdx.x * FMA_T, qstart = p.causal ? j0 / FMA_T * FMA_T : 0;
    fma_k_load<T>(p, s, n, h, j0);
    float dk[FMA_U] = {}, dv[FMA_U] = {};
    for (int i0 = qstart; i0 < p.Lq; i0 += FMA_T) {
        __syncthreads();
        fma_q_load<T>(p, s, n, h, i0);
        __syncthreads();
        fma_tile_ds(p, s, i0, j0);
        __syncthreads();
#pragma unroll
        for (int u = 0; u < FMA_U; u++) {
            int c = tid % 8 + 8 * u;
            for (int r = 0; r < FMA_T; r++) {
                if (c < p.Dv)
                    dv[u] = fmaf(s.P[r * FMA_T + jr], s.o[r * (p.Dv + 1) + c], dv[u]);
                if (c < p.Dh)
                    dk[u] = fmaf(s.dS[r * FMA_T + jr], s.q[r * (p.Dh + 1) + c], dk[u]);
            }
        }
    }
    if (j0 + jr >= p.Lk)
        return;
    int64_t row = (int64_t)n * p.Lk + j0 + jr;
    T *gk = p.dk ? (T *)p.dk + row * p.H * p.Dh + (int64_t)h * p.Dh : NULL;
    T *gv = p.dv ? (T *)p.dv + row * p.H * p.Dv + (int64_t)h * p.Dv : NULL;
#pragma unroll
    for (int u = 0; u < FMA_U; u++) {
        int c = tid % 8 + 8 * u;
        if (gk && c < p.Dh)
            gk[c] = attn_from<T>(attn_ld<T>(gk + c) + dk[u] * p.scale);
        if (gv && c < p.Dv)
            gv[c] = attn_from<T>(attn_ld<T>(gv + c) + dv[u]);
    }
}

/* grid (ceil(Lq / 16), H, N), FMA_THREADS threads, fma_bwd_floats·4 bytes. */
template <typename T> __global__ void __launch_bounds__(FMA_THREADS) attn_bwd_dq_fma(attn_params p)
{
    extern __shared__ float fsm[];
    fma_bwd_smem s = fma_bwd_layout(fsm, p.Dh, p.Dv);
    int h = blockIdx.y, n = blockIdx.z, tid = threadIdx.x, r = tid / 8;
    int i0 = (gridDim.x - 1 - blockIdx.x) * FMA_T;
    int kend = p.causal ? min(p.Lk, i0 + FMA_T) : p.Lk;
    fma_q_load<T>(p, s, n, h, i0);
    float dq[FMA_U] = {};
    for (int j0 = 0; j0 < kend; j0 += FMA_T) {
        __syncthreads();
        fma_k_load<T>(p, s, n, h, j0);
        __syncthreads();
        fma_tile_ds(p, s, i0, j0);
        __syncthreads();
#pragma unroll
        for (int u = 0; u < FMA_U; u++) {
            int c = tid % 8 + 8 * u;
            if (c < p.Dh)
                for (int j = 0; j < FMA_T; j++)
                    dq[u] = fmaf(s.dS[r * FMA_T + j], s.k[j * (p.Dh + 1) + c], dq[u]);
        }
    }
    if (i0 + r >= p.Lq)
        return;
    T *g = (T *)p.dq + ((int64_t)n * p.Lq + i0 + r) * p.H * p.Dh + (int64_t)h * p.Dh;
#pragma unroll
    for (int u = 0; u < FMA_U; u++) {
        int c = tid % 8 + 8 * u;
        if (c < p.Dh)
            g[c] = attn_from<T>(attn_ld<T>(g + c) + dq[u] * p.scale);
    }
}

#endif

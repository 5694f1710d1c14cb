/* kern.cuh — device helpers shared by the CUDA backend's kernels: element
 * types (F32, F16, BF16 loaded as float, stored rounded to nearest even),
 * the dtype switch, launch sizes and deterministic block reductions
 * (a fixed shuffle tree, then a fixed order across warps: the same inputs
 * give the same bits on every run). */
#ifndef LDM_NN_CUDA_KERN_CUH
#define LDM_NN_CUDA_KERN_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "nn/cuda/cuda_int.h"

/* ---- element types ------------------------------------------------------------------------- */

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

/* p[i] += v, computed in float and rounded once. */
template <typename T> __device__ __forceinline__ void add_to(T *p, int64_t i, float v)
{
    p[i] = from_f<T>(to_f(p[i]) + v);
}

/* 16 bytes of T: the elements one vector load moves. */
template <typename T> constexpr int vec_len()
{
    return 16 / (int)sizeof(T);
}

/* V consecutive elements at p as float; one 16-byte load when V·sizeof(T)
 * is 16 (p then 16-byte aligned). */
template <typename T, int V> __device__ __forceinline__ void load_vec(float (&out)[V], const T *p)
{
    if constexpr (V * sizeof(T) == 16) {
        uint4 r = *reinterpret_cast<const uint4 *>(p);
        const T *e = reinterpret_cast<const T *>(&r);
#pragma unroll
        for (int k = 0; k < V; k++)
            out[k] = to_f(e[k]);
    } else {
#pragma unroll
        for (int k = 0; k < V; k++)
            out[k] = to_f(p[k]);
    }
}

template <typename T, int V> __device__ __forceinline__ void store_vec(T *p, const float (&in)[V])
{
    if constexpr (V * sizeof(T) == 16) {
        uint4 r;
        T *e = reinterpret_cast<T *>(&r);
#pragma unroll
        for (int k = 0; k < V; k++)
            e[k] = from_f<T>(in[k]);
        *reinterpret_cast<uint4 *>(p) = r;
    } else {
#pragma unroll
        for (int k = 0; k < V; k++)
            p[k] = from_f<T>(in[k]);
    }
}

/* 1 when every pointer given is 16-byte aligned (NULL counts as aligned). */
static inline int aligned16(const void *a, const void *b = 0, const void *c = 0, const void *d = 0)
{
    return (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d) & 15u) == 0;
}

/* Run the statement with T the C++ type of `dtype` (F32, F16, BF16). */
#define CU_DTYPE_SWITCH(dtype, T, ...)                                                             \
    switch (dtype) {                                                                               \
    case LDM_DT_F16: {                                                                             \
        typedef __half T;                                                                          \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    case LDM_DT_BF16: {                                                                            \
        typedef __nv_bfloat16 T;                                                                   \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    default: {                                                                                     \
        typedef float T;                                                                           \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    }

/* ---- launch sizes -------------------------------------------------------------------------- */

#define CU_THREADS 256

/* Blocks of CU_THREADS for a grid-stride loop over n elements. */
static inline unsigned cu_blocks(int64_t n)
{
    int64_t b = (n + CU_THREADS - 1) / CU_THREADS;
    if (b > 65536)
        b = 65536;
    return (unsigned)(b > 0 ? b : 1);
}

#define CU_GRID_LOOP(i, n)                                                                         \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                      \
         i += (int64_t)gridDim.x * blockDim.x)

/* ---- deterministic reductions ---------------------------------------------------------------- */

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The sum of v over the block (blockDim.x a multiple of 32, at most 1024),
 * returned to every thread. sh: 32 floats of shared memory; the call
 * synchronises the block, so every thread must reach it. */
__device__ __forceinline__ float block_sum(float v, float *sh)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(t);
}

__device__ __forceinline__ double block_sum_d(double v, double *sh)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    double t = lane < nw ? sh[lane] : 0.0;
    return warp_sum_d(t);
}

__device__ __forceinline__ float block_max(float v, float *sh)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(t);
}

/* out[col] (when out) += Σ over r < R of part[r·D + col]: block (32, 8) per
 * 32 columns, grid ceil(D/32); row lanes first, then the 8 lanes in order. */
template <typename T>
__global__ void sum_partials(T *out, const float *part, int64_t R, int64_t D)
{
    __shared__ float sh[8][33];
    int64_t col = (int64_t)blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (col < D)
        for (int64_t r = threadIdx.y; r < R; r += 8)
            s += part[r * D + col];
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && col < D && out) {
        float t = 0.0f;
        for (int l = 0; l < 8; l++)
            t += sh[l][threadIdx.x];
        add_to(out, col, t);
    }
}

/* ---- helpers the files share ------------------------------------------------------------------ */

/* out[k] (dtype, K) += Σ over M rows of in (dtype, (M, K) row-major), in two
 * deterministic passes through ws (ldm_cuda_colsum_ws(M, K) bytes); reduce.cu. */
int ldm_cuda_colsum(struct ldm_ctx *c, const char *op, int dtype, void *out, const void *in,
                    int64_t M, int64_t K, void *ws);
size_t ldm_cuda_colsum_ws(int64_t M, int64_t K);
/* The number of row chunks those column sums cut M rows into (1..256). */
int64_t ldm_cuda_colsum_chunks(int64_t M);

#endif

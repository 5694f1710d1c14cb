/* attention_common.cuh — what every attention kernel shares (included by
 * nn/cuda/attention.cu only): the kernel arguments, element conversions
 * and the row statistic D_i = Σ dout_i·out_i of the backward pass.
 *
 * Layouts (nn/backend.h): q, k (N, L, H·Dh), v, out, dout (N, L, H·Dv),
 * head h at columns h·Dh (h·Dv); lse and D (N, H, Lq) F32; mask U8 (N, Lk).
 * Scores are kept in the log2 domain: t = scale·log2(e)·q·k, so that
 * softmax weights are 2^(t − m) and lse = ln 2 · (m + log2 l).
 */
#ifndef LDM_NN_CUDA_ATTENTION_COMMON_CUH
#define LDM_NN_CUDA_ATTENTION_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#define ATTN_LOG2E 1.4426950408889634f
#define ATTN_LN2 0.6931471805599453f

/* 2^x, approximate (2 ulp); 2^-inf = 0. */
static __device__ __forceinline__ float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

struct attn_params {
    const void *q, *k, *v;     /* inputs, in the op's dtype */
    const void *out_in, *dout; /* backward: the forward's output and its gradient */
    void *out;                 /* forward output */
    float *lse;                /* forward: written */
    const float *lse_in;       /* backward: read */
    float *dsum;               /* backward: D (N, H, Lq) in the workspace */
    void *dq, *dk, *dv;        /* backward: added into; NULL = not wanted */
    const uint8_t *mask;       /* (N, Lk) or NULL */
    int N, H, Lq, Lk, Dh, Dv;
    float scale;      /* as given */
    float scale_log2; /* scale · log2(e) */
    int causal;
};

template <typename T> static __device__ __forceinline__ float attn_ld(const T *p);
template <> __device__ __forceinline__ float attn_ld<float>(const float *p)
{
    return *p;
}
template <> __device__ __forceinline__ float attn_ld<__nv_bfloat16>(const __nv_bfloat16 *p)
{
    return __bfloat162float(*p);
}
template <> __device__ __forceinline__ float attn_ld<__half>(const __half *p)
{
    return __half2float(*p);
}

template <typename T> static __device__ __forceinline__ T attn_from(float x);
template <> __device__ __forceinline__ float attn_from<float>(float x)
{
    return x;
}
template <> __device__ __forceinline__ __nv_bfloat16 attn_from<__nv_bfloat16>(float x)
{
    return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ __half attn_from<__half>(float x)
{
    return __float2half_rn(x);
}

/* Key j is visible at all (inside Lk and, with a mask, unmasked). */
static __device__ __forceinline__ bool key_visible(const attn_params &p, int n, int j)
{
    return j < p.Lk && (!p.mask || p.mask[(int64_t)n * p.Lk + j] != 0);
}

/* D[n][h][i] = Σ_e dout[n][i][h·Dv + e] · out[n][i][h·Dv + e]: one warp per
 * (row, head), lanes across the head's columns. 256 threads a block. */
template <typename T> __global__ void __launch_bounds__(256) attn_dsum_kernel(attn_params p)
{
    int64_t w = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (w >= (int64_t)p.N * p.Lq * p.H)
        return;
    int h = (int)(w % p.H);
    int64_t row = w / p.H;
    int64_t off = row * p.H * p.Dv + (int64_t)h * p.Dv;
    const T *o = (const T *)p.out_in + off, *g = (const T *)p.dout + off;
    float s = 0.0f;
    for (int e = lane; e < p.Dv; e += 32)
        s += attn_ld<T>(o + e) * attn_ld<T>(g + e);
#pragma unroll
    for (int x = 16; x > 0; x >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, x);
    if (lane == 0) {
        int64_t n = row / p.Lq, i = row % p.Lq;
        p.dsum[(n * p.H + h) * p.Lq + i] = s;
    }
}

#endif

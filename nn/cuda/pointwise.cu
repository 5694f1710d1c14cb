/* pointwise.cu — activations (SiLU, GELU, tanh GELU, QuickGELU), GEGLU and
 * softmax over the last dim, forward and backward. Element ops run a
 * grid-stride loop in float, 16 bytes a thread where sizes and alignment
 * allow; softmax runs one warp per row (max, Σ exp,
 * write), its backward one warp per row (Σ y·dy, then dx). The formulas
 * are the CPU backend's (nn/cpu/pointwise.c). */
#include "nn/cuda/kern.cuh"

#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f
#define SQRT_2_OVER_PI 0.79788456080286536f

/* x·σ(a·x), as the CPU writes it: x / (1 + exp(−a·x)). */
__device__ __forceinline__ float silu_a(float x, float a)
{
    return x / (1.0f + expf(-(a * x)));
}

__device__ __forceinline__ float gelu(float x)
{
    return 0.5f * x * (1.0f + erff(x * INV_SQRT2));
}

__device__ __forceinline__ float gelu_grad(float x)
{
    return 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
}

__device__ __forceinline__ float act_value(int act, float x)
{
    switch (act) {
    case LDM_ACT_SILU: return silu_a(x, 1.0f);
    case LDM_ACT_GELU: return gelu(x);
    case LDM_ACT_RELU: return x < 0.0f ? 0.0f : x; /* NaN stays NaN */
    case LDM_ACT_GELU_TANH: {
        float u = SQRT_2_OVER_PI * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    default: return silu_a(x, 1.702f);
    }
}

__device__ __forceinline__ float act_grad(int act, float x)
{
    switch (act) {
    case LDM_ACT_SILU: {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f + x * (1.0f - s));
    }
    case LDM_ACT_GELU: return gelu_grad(x);
    case LDM_ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case LDM_ACT_GELU_TANH: {
        float x2 = x * x, u = SQRT_2_OVER_PI * (x + 0.044715f * x2 * x), t = tanhf(u);
        return 0.5f * (1.0f + t) +
               0.5f * x * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x2);
    }
    default: {
        float s = 1.0f / (1.0f + expf(-1.702f * x));
        return s + 1.702f * x * s * (1.0f - s);
    }
    }
}

/* ---- activations ----------------------------------------------------------------------------------- */

/* Elements move V at a time (16 bytes) when the sizes and pointers allow. */
template <typename T, int V> __global__ void act_fwd(T *y, const T *x, int64_t n, int act)
{
    CU_GRID_LOOP(pk, n / V) {
        float v[V];
        load_vec<T, V>(v, x + pk * V);
#pragma unroll
        for (int k = 0; k < V; k++)
            v[k] = act_value(act, v[k]);
        store_vec<T, V>(y + pk * V, v);
    }
}

template <typename T, int V>
__global__ void act_bwd(T *dx, const T *dy, const T *x, int64_t n, int act)
{
    CU_GRID_LOOP(pk, n / V) {
        float xv[V], dv[V], ov[V];
        load_vec<T, V>(xv, x + pk * V);
        load_vec<T, V>(dv, dy + pk * V);
        load_vec<T, V>(ov, dx + pk * V);
#pragma unroll
        for (int k = 0; k < V; k++)
            ov[k] += act_grad(act, xv[k]) * dv[k];
        store_vec<T, V>(dx + pk * V, ov);
    }
}

extern "C" int ldm_cuda_act_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y,
                                const void *x)
{
    if (d->n == 0)
        return 0;
    cudaStream_t st = ldm_cuda_stream(c);
    CU_DTYPE_SWITCH(d->dtype, T, {
        const int V = vec_len<T>();
        if (d->n % V == 0 && aligned16(x, y))
            act_fwd<T, V><<<cu_blocks(d->n / V), CU_THREADS, 0, st>>>((T *)y, (const T *)x, d->n,
                                                                      d->act);
        else
            act_fwd<T, 1><<<cu_blocks(d->n), CU_THREADS, 0, st>>>((T *)y, (const T *)x, d->n,
                                                                  d->act);
    });
    CU_LAUNCHED("act forward", "act_fwd");
    return 0;
}

extern "C" int ldm_cuda_act_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dx,
                                const void *dy, const void *x)
{
    if (d->n == 0)
        return 0;
    cudaStream_t st = ldm_cuda_stream(c);
    CU_DTYPE_SWITCH(d->dtype, T, {
        const int V = vec_len<T>();
        if (d->n % V == 0 && aligned16(dx, dy, x))
            act_bwd<T, V><<<cu_blocks(d->n / V), CU_THREADS, 0, st>>>(
                (T *)dx, (const T *)dy, (const T *)x, d->n, d->act);
        else
            act_bwd<T, 1><<<cu_blocks(d->n), CU_THREADS, 0, st>>>((T *)dx, (const T *)dy,
                                                                  (const T *)x, d->n, d->act);
    });
    CU_LAUNCHED("act backward", "act_bwd");
    return 0;
}

/* ---- GEGLU ------------------------------------------------------------------------------------------ */

/* V elements of one row's halves a thread (F a multiple of V then). */
template <typename T, int V> __global__ void geglu_fwd(T *y, const T *h, int64_t M, int64_t F)
{
    CU_GRID_LOOP(pk, M * F / V) {
        int64_t i = pk * V, r = i / F, j = i % F;
        float a[V], g[V];
        load_vec<T, V>(a, h + r * 2 * F + j);
        load_vec<T, V>(g, h + r * 2 * F + F + j);
#pragma unroll
        for (int k = 0; k < V; k++)
            a[k] *= gelu(g[k]);
        store_vec<T, V>(y + i, a);
    }
}

template <typename T, int V>
__global__ void geglu_bwd(T *dh, const T *dy, const T *h, int64_t M, int64_t F)
{
    CU_GRID_LOOP(pk, M * F / V) {
        int64_t i = pk * V, r = i / F, j = i % F, o = r * 2 * F + j;
        float a[V], g[V], d[V], da[V], dg[V];
        load_vec<T, V>(a, h + o);
        load_vec<T, V>(g, h + o + F);
        load_vec<T, V>(d, dy + i);
        load_vec<T, V>(da, dh + o);
        load_vec<T, V>(dg, dh + o + F);
#pragma unroll
        for (int k = 0; k < V; k++) {
            da[k] += d[k] * gelu(g[k]);
            dg[k] += d[k] * a[k] * gelu_grad(g[k]);
        }
        store_vec<T, V>(dh + o, da);
        store_vec<T, V>(dh + o + F, dg);
    }
}

extern "C" int ldm_cuda_geglu_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y,
                                  const void *h)
{
    int64_t n = d->M * d->D;
    if (n == 0)
        return 0;
    cudaStream_t st = ldm_cuda_stream(c);
    CU_DTYPE_SWITCH(d->dtype, T, {
        const int V = vec_len<T>();
        if (d->D % V == 0 && aligned16(y, h))
            geglu_fwd<T, V><<<cu_blocks(n / V), CU_THREADS, 0, st>>>((T *)y, (const T *)h, d->M,
                                                                     d->D);
        else
            geglu_fwd<T, 1><<<cu_blocks(n), CU_THREADS, 0, st>>>((T *)y, (const T *)h, d->M,
                                                                 d->D);
    });
    CU_LAUNCHED("geglu forward", "geglu_fwd");
    return 0;
}

extern "C" int ldm_cuda_geglu_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *dh,
                                  const void *dy, const void *h)
{
    int64_t n = d->M * d->D;
    if (n == 0)
        return 0;
    cudaStream_t st = ldm_cuda_stream(c);
    CU_DTYPE_SWITCH(d->dtype, T, {
        const int V = vec_len<T>();
        if (d->D % V == 0 && aligned16(dh, dy, h))
            geglu_bwd<T, V><<<cu_blocks(n / V), CU_THREADS, 0, st>>>(
                (T *)dh, (const T *)dy, (const T *)h, d->M, d->D);
        else
            geglu_bwd<T, 1><<<cu_blocks(n), CU_THREADS, 0, st>>>((T *)dh, (const T *)dy,
                                                                 (const T *)h, d->M, d->D);
    });
    CU_LAUNCHED("geglu backward", "geglu_bwd");
    return 0;
}

/* ---- softmax ------------------------------------------------------------------------------------------ */

#define SM_WARPS 4

/* One warp per row; y may be x (each element is read, then written, by one lane). */
template <typename T> __global__ void softmax_fwd(T *y, const T *x, int64_t M, int64_t D)
{
    int64_t row = (int64_t)blockIdx.x * SM_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= M)
        return;
    const T *xr = x + row * D;
    float mx = -INFINITY, s = 0.0f;
    for (int64_t i = lane; i < D; i += 32)
        mx = fmaxf(mx, to_f(xr[i]));
    mx = warp_max(mx);
    for (int64_t i = lane; i < D; i += 32)
        s += expf(to_f(xr[i]) - mx);
    float inv = 1.0f / warp_sum(s);
    for (int64_t i = lane; i < D; i += 32)
        y[row * D + i] = from_f<T>(expf(to_f(xr[i]) - mx) * inv);
}

template <typename T>
__global__ void softmax_bwd(T *dx, const T *dy, const T *y, int64_t M, int64_t D)
{
    int64_t row = (int64_t)blockIdx.x * SM_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= M)
        return;
    const T *yr = y + row * D, *dyr = dy + row * D;
    float s = 0.0f;
    for (int64_t i = lane; i < D; i += 32)
        s += to_f(yr[i]) * to_f(dyr[i]);
    s = warp_sum(s);
    for (int64_t i = lane; i < D; i += 32)
        add_to(dx, row * D + i, to_f(yr[i]) * (to_f(dyr[i]) - s));
}

extern "C" int ldm_cuda_softmax_fwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d, void *y,
                                    const void *x)
{
    if (d->M * d->D == 0)
        return 0;
    unsigned blocks = (unsigned)((d->M + SM_WARPS - 1) / SM_WARPS);
    CU_DTYPE_SWITCH(d->dtype, T,
                    softmax_fwd<T><<<blocks, 32 * SM_WARPS, 0, ldm_cuda_stream(c)>>>(
                        (T *)y, (const T *)x, d->M, d->D));
    CU_LAUNCHED("softmax forward", "softmax_fwd");
    return 0;
}

extern "C" int ldm_cuda_softmax_bwd(struct ldm_ctx *c, const struct ldm_pointwise_dims *d,
                                    void *dx, const void *dy, const void *y)
{
    if (d->M * d->D == 0)
        return 0;
    unsigned blocks = (unsigned)((d->M + SM_WARPS - 1) / SM_WARPS);
    CU_DTYPE_SWITCH(d->dtype, T,
                    softmax_bwd<T><<<blocks, 32 * SM_WARPS, 0, ldm_cuda_stream(c)>>>(
                        (T *)dx, (const T *)dy, (const T *)y, d->M, d->D));
    CU_LAUNCHED("softmax backward", "softmax_bwd");
    return 0;
}

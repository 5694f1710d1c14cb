/* group_norm.cu — group norm (with optional fused SiLU), forward and backward.
 *
 * Work is cut by channel plane (one sample's one channel, S elements), so a
 * batch of 8 at 64×64 with 320 channels gives 2560 blocks rather than 256
 * groups. Forward: (1) per plane, its mean and Σ (x − mean)² (two passes
 * over the plane, the second from cache) into the workspace; (2) per
 * (sample, group), the planes combined in channel order (Chan's formula:
 * the same two-pass variance as the CPU's), giving mean and rstd; (3) the
 * elementwise normalization, 16 bytes a thread. Backward: (1) per plane,
 * Σ g·x̂ and Σ g (g the gradient reaching the affine output, through SiLU
 * when fused); (2) per (sample, group) the means of gamma·g and gamma·g·x̂
 * from those; (3) dx elementwise; (4) dgamma and dbeta, each channel's
 * planes added in sample order. Every sum is float in a fixed order: no
 * atomics, the same bits every run. */
#include "nn/cuda/kern.cuh"

#define GN_THREADS 256

__device__ __forceinline__ float sigmoidf_(float z)
{
    return 1.0f / (1.0f + expf(-z));
}

/* Forward: plane means and M2 (2·N·C floats). Backward: plane sums (2·N·C)
 * and the groups' two means (2·N·G). */
size_t ldm_cuda_gn_workspace(int op, const struct ldm_norm_dims *d)
{
    size_t planes = (size_t)(2 * d->N * d->C);
    return (op == LDM_OP_GROUP_NORM_BWD ? planes + (size_t)(2 * d->N * d->G) : planes) *
           sizeof(float);
}

/* The pack size (elements a thread moves at once) for S-element planes. */
template <typename T> static int pack_of(int64_t S, const void *a, const void *b, const void *c)
{
    return S % vec_len<T>() == 0 && aligned16(a, b, c) ? vec_len<T>() : 1;
}

/* ---- forward -------------------------------------------------------------------------------------- */

/* Block p = n·C + c: pm[p] = the plane's mean, pv[p] = Σ (x − mean)². */
template <typename T, int V>
__global__ void gn_plane_stats(float *pm, float *pv, const T *x, int64_t S)
{
    __shared__ float sh[32];
    const T *xp = x + (int64_t)blockIdx.x * S;
    float s = 0.0f, v[V];
    for (int64_t i = (int64_t)threadIdx.x * V; i < S; i += (int64_t)blockDim.x * V) {
        load_vec<T, V>(v, xp + i);
#pragma unroll
        for (int k = 0; k < V; k++)
            s += v[k];
    }
    float mu = block_sum(s, sh) / (float)S, q = 0.0f;
    for (int64_t i = (int64_t)threadIdx.x * V; i < S; i += (int64_t)blockDim.x * V) {
        load_vec<T, V>(v, xp + i);
#pragma unroll
        for (int k = 0; k < V; k++)
            q += (v[k] - mu) * (v[k] - mu);
    }
    q = block_sum(q, sh);
    if (threadIdx.x == 0) {
        pm[blockIdx.x] = mu;
        pv[blockIdx.x] = q;
    }
}

/* Thread t = n·G + g: the group's mean and rstd from its cg planes, in order. */
__global__ void gn_group_stats(float *mean, float *rstd, const float *pm, const float *pv,
                               int64_t NG, int64_t C, int64_t G, int64_t S, float eps)
{
    CU_GRID_LOOP(t, NG) {
        int64_t n = t / G, g = t % G, cg = C / G, p0 = n * C + g * cg;
        float mu = 0.0f, m2 = 0.0f;
        for (int64_t c = 0; c < cg; c++)
            mu += pm[p0 + c];
        mu /= (float)cg;
        for (int64_t c = 0; c < cg; c++) {
            float dm = pm[p0 + c] - mu;
            m2 += pv[p0 + c] + (float)S * dm * dm;
        }
        mean[t] = mu;
        rstd[t] = 1.0f / sqrtf(m2 / (float)(cg * S) + eps);
    }
}

/* y = [silu](gamma·(x − mean)·rstd + beta), V elements (one plane's) a thread. */
template <typename T, int V>
__global__ void gn_apply(T *y, const T *x, const float *mean, const float *rstd, const T *gamma,
                         const T *beta, int64_t total, int64_t C, int64_t S, int64_t G, int silu)
{
    int64_t cg = C / G;
    CU_GRID_LOOP(pk, total / V) {
        int64_t i = pk * V, ch = (i / S) % C, t = (i / (S * C)) * G + ch / cg;
        float mu = mean[t], r = rstd[t];
        float ga = gamma ? to_f(gamma[ch]) : 1.0f, be = gamma ? to_f(beta[ch]) : 0.0f, v[V];
        load_vec<T, V>(v, x + i);
#pragma unroll
        for (int k = 0; k < V; k++) {
            float z = (v[k] - mu) * r * ga + be;
            v[k] = silu ? z * sigmoidf_(z) : z;
        }
        store_vec<T, V>(y + i, v);
    }
}

template <typename T, int V>
static void gn_fwd_run(const struct ldm_norm_dims *d, cudaStream_t st, float *ws, T *y,
                       float *mean, float *rstd, const T *x, const T *gamma, const T *beta)
{
    int64_t planes = d->N * d->C, total = planes * d->S;
    float *pm = ws, *pv = ws + planes;
    gn_plane_stats<T, V><<<(unsigned)planes, GN_THREADS, 0, st>>>(pm, pv, x, d->S);
    gn_group_stats<<<cu_blocks(d->N * d->G), CU_THREADS, 0, st>>>(
        mean, rstd, pm, pv, d->N * d->G, d->C, d->G, d->S, d->eps);
    gn_apply<T, V><<<cu_blocks(total / V), CU_THREADS, 0, st>>>(y, x, mean, rstd, gamma, beta,
                                                                total, d->C, d->S, d->G, d->silu);
}

extern "C" int ldm_cuda_group_norm_fwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *y,
                                       float *mean, float *rstd, const void *x, const void *gamma,
                                       const void *beta)
{
    if (d->N * d->C == 0)
        return 0;
    cudaStream_t st = ldm_cuda_stream(c);
    const void *ga = d->affine ? gamma : NULL;
    CU_DTYPE_SWITCH(d->dtype, T, {
        if (pack_of<T>(d->S, x, y, NULL) > 1)
            gn_fwd_run<T, vec_len<T>()>(d, st, (float *)c->ws, (T *)y, mean, rstd, (const T *)x,
                                        (const T *)ga, (const T *)beta);
        else
            gn_fwd_run<T, 1>(d, st, (float *)c->ws, (T *)y, mean, rstd, (const T *)x,
                             (const T *)ga, (const T *)beta);
    });
    CU_LAUNCHED("group_norm forward", "gn_fwd");
    return 0;
}

/* ---- backward -------------------------------------------------------------------------------------- */

/* The gradient reaching the affine output z = ga·x̂ + be: dy, or through SiLU. */
__device__ __forceinline__ float gn_gy(int silu, float dy, float xh, float ga, float be)
{
    if (!silu)
        return dy;
    float z = xh * ga + be, s = sigmoidf_(z);
    return dy * s * (1.0f + z * (1.0f - s));
}

/* Block p = n·C + c: pg[p] = Σ g·x̂, pb[p] = Σ g over the plane. */
template <typename T, int V>
__global__ void gn_plane_grads(float *pg, float *pb, const T *dy, const T *x, const float *mean,
                               const float *rstd, const T *gamma, const T *beta, int64_t C,
                               int64_t S, int64_t G, int silu)
{
    __shared__ float sh[32];
    int64_t p = blockIdx.x, ch = p % C, t = (p / C) * G + ch / (C / G);
    float mu = mean[t], r = rstd[t];
    float ga = gamma ? to_f(gamma[ch]) : 1.0f, be = gamma ? to_f(beta[ch]) : 0.0f;
    float sg = 0.0f, sb = 0.0f, xv[V], dv[V];
    for (int64_t i = (int64_t)threadIdx.x * V; i < S; i += (int64_t)blockDim.x * V) {
        load_vec<T, V>(xv, x + p * S + i);
        load_vec<T, V>(dv, dy + p * S + i);
#pragma unroll
        for (int k = 0; k < V; k++) {
            float xh = (xv[k] - mu) * r, gy = gn_gy(silu, dv[k], xh, ga, be);
            sg += gy * xh;
            sb += gy;
        }
    }
    sg = block_sum(sg, sh);
    sb = block_sum(sb, sh);
    if (threadIdx.x == 0) {
        pg[p] = sg;
        pb[p] = sb;
    }
}

/* Thread t = n·G + g: ab[2t] = mean of gamma·g, ab[2t+1] = mean of gamma·g·x̂. */
template <typename T>
__global__ void gn_group_grads(float *ab, const float *pg, const float *pb, const T *gamma,
                               int64_t NG, int64_t C, int64_t G, int64_t S)
{
    CU_GRID_LOOP(t, NG) {
        int64_t n = t / G, g = t % G, cg = C / G;
        float a = 0.0f, b = 0.0f;
        for (int64_t c = 0; c < cg; c++) {
            int64_t ch = g * cg + c;
            float ga = gamma ? to_f(gamma[ch]) : 1.0f;
            a += pb[n * C + ch] * ga;
            b += pg[n * C + ch] * ga;
        }
        ab[2 * t] = a / (float)(cg * S);
        ab[2 * t + 1] = b / (float)(cg * S);
    }
}

/* dx += rstd·(gamma·g − mean(gamma·g) − x̂·mean(gamma·g·x̂)), V elements a thread. */
template <typename T, int V>
__global__ void gn_apply_grad(T *dx, const T *dy, const T *x, const float *mean, const float *rstd,
                              const float *ab, const T *gamma, const T *beta, int64_t total,
                              int64_t C, int64_t S, int64_t G, int silu)
{
    int64_t cg = C / G;
    CU_GRID_LOOP(pk, total / V) {
        int64_t i = pk * V, ch = (i / S) % C, t = (i / (S * C)) * G + ch / cg;
        float mu = mean[t], r = rstd[t], am = ab[2 * t], bm = ab[2 * t + 1];
        float ga = gamma ? to_f(gamma[ch]) : 1.0f, be = gamma ? to_f(beta[ch]) : 0.0f;
        float xv[V], dv[V], ov[V];
        load_vec<T, V>(xv, x + i);
        load_vec<T, V>(dv, dy + i);
        load_vec<T, V>(ov, dx + i);
#pragma unroll
        for (int k = 0; k < V; k++) {
            float xh = (xv[k] - mu) * r, gy = gn_gy(silu, dv[k], xh, ga, be);
            ov[k] += r * (gy * ga - am - xh * bm);
        }
        store_vec<T, V>(dx + i, ov);
    }
}

/* dgamma[c] += Σ_n pg[n][c], dbeta alike, in sample order. */
template <typename T>
__global__ void gn_params(T *dgamma, T *dbeta, const float *pg, const float *pb, int64_t N,
                          int64_t C)
{
    CU_GRID_LOOP(ch, C) {
        float sg = 0.0f, sb = 0.0f;
        for (int64_t n = 0; n < N; n++) {
            sg += pg[n * C + ch];
            sb += pb[n * C + ch];
        }
        if (dgamma)
            add_to(dgamma, ch, sg);
        if (dbeta)
            add_to(dbeta, ch, sb);
    }
}

template <typename T, int V>
static void gn_bwd_run(const struct ldm_norm_dims *d, cudaStream_t st, float *ws, T *dx,
                       T *dgamma, T *dbeta, const T *dy, const T *x, const float *mean,
                       const float *rstd, const T *gamma, const T *beta)
{
    int64_t planes = d->N * d->C, total = planes * d->S;
    float *pg = ws, *pb = ws + planes, *ab = ws + 2 * planes;
    gn_plane_grads<T, V><<<(unsigned)planes, GN_THREADS, 0, st>>>(
        pg, pb, dy, x, mean, rstd, gamma, beta, d->C, d->S, d->G, d->silu);
    if (dx) {
        gn_group_grads<T><<<cu_blocks(d->N * d->G), CU_THREADS, 0, st>>>(
            ab, pg, pb, gamma, d->N * d->G, d->C, d->G, d->S);
        gn_apply_grad<T, V><<<cu_blocks(total / V), CU_THREADS, 0, st>>>(
            dx, dy, x, mean, rstd, ab, gamma, beta, total, d->C, d->S, d->G, d->silu);
    }
    if (dgamma || dbeta)
        gn_params<T><<<cu_blocks(d->C), CU_THREADS, 0, st>>>(dgamma, dbeta, pg, pb, d->N, d->C);
}

extern "C" int ldm_cuda_group_norm_bwd(struct ldm_ctx *c, const struct ldm_norm_dims *d, void *dx,
                                       void *dgamma, void *dbeta, const void *dy, const void *x,
                                       const float *mean, const float *rstd, const void *gamma,
                                       const void *beta)
{
    if (d->N * d->C == 0 || d->S == 0)
        return 0;
    cudaStream_t st = ldm_cuda_stream(c);
    const void *ga = d->affine ? gamma : NULL;
    CU_DTYPE_SWITCH(d->dtype, T, {
        if (pack_of<T>(d->S, x, dy, dx) > 1)
            gn_bwd_run<T, vec_len<T>()>(d, st, (float *)c->ws, (T *)dx, (T *)dgamma, (T *)dbeta,
                                        (const T *)dy, (const T *)x, mean, rstd, (const T *)ga,
                                        (const T *)beta);
        else
            gn_bwd_run<T, 1>(d, st, (float *)c->ws, (T *)dx, (T *)dgamma, (T *)dbeta,
                             (const T *)dy, (const T *)x, mean, rstd, (const T *)ga,
                             (const T *)beta);
    });
    CU_LAUNCHED("group_norm backward", "gn_bwd");
    return 0;
}

/* train.cu — weighted MSE loss, global-norm gradient clipping, AdamW,
 * 8-bit block-wise AdamW (bitsandbytes' AdamW8bit, operation by operation
 * as its CUDA kernel and nn/cpu/train8.c) and the EMA update.
 *
 * Reductions are fixed-order: per-sample (MSE) or per-block (clipping)
 * partial sums in double, then one thread adds the partials in order.
 * The optimiser steps compute their float constants on the host exactly
 * as nn/cpu/train.c does and apply them with round-to-nearest intrinsics
 * (no fused multiply-adds), so F32 results are the CPU's bit for bit.
 * The clipping norm comes back to the host (a stream wait); the scale is
 * applied on the device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cuda/kern.cuh"

#define CLIP_PARTS 1024

size_t ldm_cuda_train_workspace(int op, const struct ldm_train_dims *d)
{
    if (op == LDM_OP_MSE_FWD)
        return (size_t)d->N * sizeof(double);
    return (size_t)(CLIP_PARTS + 1) * sizeof(double);
}

/* ---- MSE ---------------------------------------------------------------------------------------- */

template <typename T>
__global__ void mse_partial(double *part, const T *p, const T *t, int64_t S)
{
    __shared__ double sh[32];
    int64_t n = blockIdx.x;
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < S; i += blockDim.x) {
        double e = (double)to_f(p[n * S + i]) - (double)to_f(t[n * S + i]);
        s += e * e;
    }
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0)
        part[n] = s;
}

__global__ void mse_total(float *loss, const double *part, const float *w, int64_t N, int64_t S)
{
    double acc = 0.0;
    for (int64_t n = 0; n < N; n++)
        acc += (w ? (double)w[n] : 1.0) * (part[n] / (double)S);
    *loss = (float)(acc / (double)N);
}

extern "C" int ldm_cuda_mse_fwd(struct ldm_ctx *c, const struct ldm_train_dims *d, float *loss,
                                const void *pred, const void *target, const float *weights)
{
    cudaStream_t st = ldm_cuda_stream(c);
    double *part = (double *)c->ws;
    CU_DTYPE_SWITCH(d->dtype, T,
                    mse_partial<T><<<(unsigned)d->N, CU_THREADS, 0, st>>>(
                        part, (const T *)pred, (const T *)target, d->S));
    mse_total<<<1, 1, 0, st>>>(loss, part, weights, d->N, d->S);
    CU_LAUNCHED("mse_loss forward", "mse");
    return 0;
}

template <typename T>
__global__ void mse_grad(T *dp, T *dt, const T *p, const T *t, const float *w, float g, int64_t n,
                         int64_t S)
{
    CU_GRID_LOOP(i, n) {
        float wi = w ? w[i / S] : 1.0f;
        float v = __fmul_rn(__fmul_rn(g, wi), __fsub_rn(to_f(p[i]), to_f(t[i])));
        if (dp)
            add_to(dp, i, v);
        if (dt)
            add_to(dt, i, -v);
    }
}

extern "C" int ldm_cuda_mse_bwd(struct ldm_ctx *c, const struct ldm_train_dims *d, void *dpred,
                                void *dtarget, float dloss, const void *pred, const void *target,
                                const float *weights)
{
    int64_t n = d->N * d->S;
    float g = (float)(2.0 * (double)dloss / ((double)d->N * (double)d->S));
    CU_DTYPE_SWITCH(d->dtype, T,
                    mse_grad<T><<<cu_blocks(n), CU_THREADS, 0, ldm_cuda_stream(c)>>>(
                        (T *)dpred, (T *)dtarget, (const T *)pred, (const T *)target, weights, g,
                        n, d->S));
    CU_LAUNCHED("mse_loss backward", "mse_grad");
    return 0;
}

/* ---- gradient clipping ---------------------------------------------------------------------------- */

/* part[b] = Σ g² over block b's grid-stride share (blocks fixed by n). */
__global__ void sq_partial(double *part, const float *g, int64_t n)
{
    __shared__ double sh[32];
    double s = 0.0;
    CU_GRID_LOOP(i, n)
    s += (double)g[i] * (double)g[i];
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

__global__ void sq_accumulate(double *total, const double *part, int parts)
{
    double s = *total;
    for (int b = 0; b < parts; b++)
        s += part[b];
    *total = s;
}

__global__ void scale_f32(float *g, float coef, int64_t n)
{
    CU_GRID_LOOP(i, n)
    g[i] = __fmul_rn(g[i], coef);
}

static unsigned clip_parts(int64_t n)
{
    int64_t b = (n + CU_THREADS * 8 - 1) / (CU_THREADS * 8);
    return (unsigned)(b < 1 ? 1 : b > CLIP_PARTS ? CLIP_PARTS : b);
}

extern "C" int ldm_cuda_clip_norm(struct ldm_ctx *c, const struct ldm_train_dims *d,
                                  float *const *grads, float *norm)
{
    const char *op = "clip_grad_norm";
    struct ldm_cuda *s = ldm_cuda_state(c);
    double *part = (double *)c->ws, *total = part + CLIP_PARTS;
    CU_TRY(op, cudaMemsetAsync(total, 0, sizeof *total, s->stream));
    for (int64_t i = 0; i < d->n; i++) {
        if (d->counts[i] == 0)
            continue;
        unsigned b = clip_parts(d->counts[i]);
        sq_partial<<<b, CU_THREADS, 0, s->stream>>>(part, grads[i], d->counts[i]);
        sq_accumulate<<<1, 1, 0, s->stream>>>(total, part, (int)b);
    }
    CU_LAUNCHED(op, "sq_partial");
    CU_TRY(op, cudaMemcpyAsync(s->scratch_host, total, sizeof(double), cudaMemcpyDeviceToHost,
                               s->stream));
    CU_TRY(op, cudaStreamSynchronize(s->stream));
    double tot;
    memcpy(&tot, s->scratch_host, sizeof tot);
    float nrm = (float)sqrt(tot);
    *norm = nrm;
    if (!isfinite(nrm) || !(d->max_norm > 0.0f) || isinf(d->max_norm))
        return 0;
    float coef = d->max_norm / (nrm + 1e-6f);
    if (!(coef < 1.0f))
        return 0;
    for (int64_t i = 0; i < d->n; i++)
        if (d->counts[i] > 0)
            scale_f32<<<cu_blocks(d->counts[i]), CU_THREADS, 0, s->stream>>>(grads[i], coef,
                                                                             d->counts[i]);
    CU_LAUNCHED(op, "scale_f32");
    return 0;
}

/* ---- AdamW ------------------------------------------------------------------------------------------ */

/* The float constants of one step, as nn/cpu/train.c computes them. */
struct adam_k {
    float decay, b1, one_b1, b2, one_b2, bc2_sqrt, eps, neg_step;
};

static struct adam_k adam_consts(const struct ldm_train_dims *d)
{
    double bc1 = 1.0 - pow(d->beta1, (double)d->step), bc2 = 1.0 - pow(d->beta2, (double)d->step);
    struct adam_k k = {(float)(1.0 - d->lr * d->weight_decay), (float)d->beta1,
                       (float)(1.0 - d->beta1), (float)d->beta2, (float)(1.0 - d->beta2),
                       (float)sqrt(bc2), (float)d->eps, (float)(-(d->lr / bc1))};
    return k;
}

/* One element: the CPU's operations in its order. */
__device__ __forceinline__ void adam_elem(const struct adam_k &k, float g, float *p, float *m,
                                          float *v)
{
    float pp = __fmul_rn(*p, k.decay);
    float mm = __fadd_rn(__fmul_rn(*m, k.b1), __fmul_rn(k.one_b1, g));
    float vv = __fadd_rn(__fmul_rn(*v, k.b2), __fmul_rn(__fmul_rn(k.one_b2, g), g));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vv), k.bc2_sqrt), k.eps);
    *p = __fadd_rn(pp, __fmul_rn(k.neg_step, __fdiv_rn(mm, denom)));
    *m = mm;
    *v = vv;
}

__global__ void adamw_k(float *param, const float *grad, float *m, float *v, struct adam_k k,
                        int64_t n)
{
    CU_GRID_LOOP(i, n) {
        float p = param[i], mm = m[i], vv = v[i];
        adam_elem(k, grad[i], &p, &mm, &vv);
        param[i] = p;
        m[i] = mm;
        v[i] = vv;
    }
}

extern "C" int ldm_cuda_adamw(struct ldm_ctx *c, const struct ldm_train_dims *d, float *param,
                              const float *grad, float *m, float *v)
{
    if (d->n == 0)
        return 0;
    adamw_k<<<cu_blocks(d->n), CU_THREADS, 0, ldm_cuda_stream(c)>>>(param, grad, m, v,
                                                                    adam_consts(d), d->n);
    CU_LAUNCHED("adamw_step", "adamw");
    return 0;
}

/* ---- 8-bit AdamW ------------------------------------------------------------------------------------- */

/* torch.linspace(0.1, 1, n) in float32 (its scalar formula). */
static void linspace01(float *out, int n)
{
    float start = 0.1f, end = 1.0f, step = (end - start) / (float)(n - 1);
    int half = n / 2;
    for (int i = 0; i < n; i++)
        out[i] = i < half ? start + step * (float)i : end - step * (float)(n - i - 1);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* bitsandbytes create_dynamic_map(signed, max_exponent_bits=7, total_bits=8):
 * for exponent i = 0..6, the midpoints of linspace(0.1, 1, items) times
 * 10^(i−6) (and their negatives when signed), items = 2^i + 1 signed,
 * 2^(i+1) + 1 unsigned; then 0 and 1; sorted. 256 values either way. */
void ldm_cuda_dynamic_map(int is_signed, float *out)
{
    int n = 0;
    float b[130];
    for (int i = 0; i < 7; i++) {
        int items = is_signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
        float scale = (float)pow(10.0, (double)(i - 6));
        linspace01(b, items);
        for (int k = 0; k + 1 < items; k++)
            out[n++] = scale * ((b[k] + b[k + 1]) / 2.0f);
        if (is_signed)
            for (int k = 0; k + 1 < items; k++)
                out[n++] = -scale * ((b[k] + b[k + 1]) / 2.0f);
    }
    out[n++] = 0.0f;
    out[n++] = 1.0f;
    while (n < 256)
        out[n++] = 0.0f;
    qsort(out, 256, sizeof *out, cmp_float);
}

int ldm_cuda_qmap_init(struct ldm_cuda *s)
{
    float h[512];
    ldm_cuda_dynamic_map(1, h);
    ldm_cuda_dynamic_map(0, h + 256);
    CU_TRY("cuda open", cudaMalloc((void **)&s->qmap, sizeof h));
    CU_TRY("cuda open", cudaMemcpy(s->qmap, h, sizeof h, cudaMemcpyHostToDevice));
    return 0;
}

/* AdamW8bit's float constants, as nn/cpu/train8.c computes them (the
 * contract of adamw8_step in nn/backend.h). */
struct adam8_k {
    float b1, one_b1, b2, one_b2, step_size, c2_eps, wd_factor;
    int decay_on, fresh;
};

static struct adam8_k adam8_consts(const struct ldm_train_dims *d)
{
    struct adam8_k k;
    float lr = (float)d->lr, eps = (float)d->eps, wd = (float)d->weight_decay;
    k.b1 = (float)d->beta1;
    k.b2 = (float)d->beta2;
    k.one_b1 = 1.0f - k.b1;
    k.one_b2 = 1.0f - k.b2;
    float c1 = 1.0f - (float)pow((double)k.b1, (double)d->step);
    float c2 = sqrtf(1.0f - (float)pow((double)k.b2, (double)d->step));
    k.step_size = -lr * c2 / c1;
    k.c2_eps = c2 * eps;
    k.wd_factor = 1.0f - lr * wd;
    k.decay_on = wd > 0.0f;
    k.fresh = d->step == 1;
    return k;
}

/* bitsandbytes' quantize_2D: a 7-step binary search from code 127, then
 * the nearer of the last pivot and its neighbour on x's side (midpoints
 * in float); code 0's lower bound is lower0. A NaN x ends at code 0. */
__device__ int quantize8(const float *map, float x, float lower0)
{
    int pivot = 127, up = 255, lo = 0;
    float val = map[127];
    for (int i = 64; i > 0; i >>= 1) {
        int gt = x > val;
        if (gt)
            lo = pivot;
        else
            up = pivot;
        pivot += (2 * gt - 1) * i;
        val = map[pivot];
    }
    int gt = x > val;
    float edge = gt ? map[up] : lo ? map[lo] : lower0;
    float mid = __fmul_rn(__fadd_rn(edge, val), 0.5f);
    int take = gt ? x > mid : x < mid;
    return take ? (gt ? up : lo) : pivot;
}

/* One block of LDM_ADAM8_BLOCK elements per CUDA block, one element per
 * thread; the lanes past n in a short last block are the kernel's idle
 * lanes (g = 0, m code 128, v code 0), counted in the block's maxima. */
__global__ void adamw8_k(float *param, const float *grad, uint8_t *mq, uint8_t *vq, float *mabs,
                         float *vabs, const float *qmap, struct adam8_k k, int64_t n)
{
    __shared__ float qs[256], qu[256], sh[32];
    qs[threadIdx.x] = qmap[threadIdx.x];
    qu[threadIdx.x] = qmap[256 + threadIdx.x];
    __syncthreads();
    int64_t blk = blockIdx.x, i = blk * LDM_ADAM8_BLOCK + threadIdx.x;
    int ok = i < n;
    float a1 = k.fresh ? 0.0f : mabs[blk], a2 = k.fresh ? 0.0f : vabs[blk];
    float g = ok ? grad[i] : 0.0f, s1 = 0.0f, s2 = 0.0f;
    int cm = !ok ? 128 : k.fresh ? 0 : mq[i], cv = !ok || k.fresh ? 0 : vq[i];
    if (!ok || isfinite(g)) {
        float m = __fmul_rn(qs[cm], a1), v = __fmul_rn(qu[cv], a2);
        s2 = __fadd_rn(__fmul_rn(v, k.b2), __fmul_rn(__fmul_rn(k.one_b2, g), g));
        s1 = __fadd_rn(__fmul_rn(m, k.b1), __fmul_rn(k.one_b1, g));
    }
    float max1 = block_max(fabsf(s1), sh); /* every read of mabs/vabs is before this */
    float max2 = block_max(fabsf(s2), sh);
    if (!ok)
        return;
    if (threadIdx.x == 0) {
        mabs[blk] = max1;
        vabs[blk] = max2;
    }
    if (isfinite(g)) {
        float den = __fadd_rn(__fsqrt_rn(s2), k.c2_eps);
        float p = __fadd_rn(param[i], __fmul_rn(k.step_size, __fdiv_rn(s1, den)));
        param[i] = k.decay_on ? __fmul_rn(p, k.wd_factor) : p;
    }
    int c1 = quantize8(qs, __fdiv_rn(s1, max1), -1.0f);
    if ((signbit(qs[c1]) != 0) != (signbit(s1) != 0)) /* keep m's sign */
        c1 = s1 > 0.0f ? c1 + 1 : c1 - 1;
    mq[i] = (uint8_t)(c1 & 0xff); /* -1 wraps to 255 */
    vq[i] = (uint8_t)quantize8(qu, __fdiv_rn(s2, max2), 0.0f);
}

extern "C" int ldm_cuda_adamw8(struct ldm_ctx *c, const struct ldm_train_dims *d, float *param,
                               const float *grad, uint8_t *m_q, uint8_t *v_q, float *m_absmax,
                               float *v_absmax)
{
    if (d->n == 0)
        return 0;
    struct ldm_cuda *s = ldm_cuda_state(c);
    int64_t blocks = (d->n + LDM_ADAM8_BLOCK - 1) / LDM_ADAM8_BLOCK;
    adamw8_k<<<(unsigned)blocks, LDM_ADAM8_BLOCK, 0, s->stream>>>(
        param, grad, m_q, v_q, m_absmax, v_absmax, s->qmap, adam8_consts(d), d->n);
    CU_LAUNCHED("adamw8_step", "adamw8");
    return 0;
}

/* ---- EMA ------------------------------------------------------------------------------------------------ */

__global__ void ema_k(float *ema, const float *param, float om, int64_t n)
{
    CU_GRID_LOOP(i, n)
    ema[i] = __fsub_rn(ema[i], __fmul_rn(om, __fsub_rn(ema[i], param[i])));
}

extern "C" int ldm_cuda_ema(struct ldm_ctx *c, const struct ldm_train_dims *d, float *ema,
                            const float *param)
{
    if (d->n == 0)
        return 0;
    float om = (float)(1.0 - (double)d->decay);
    ema_k<<<cu_blocks(d->n), CU_THREADS, 0, ldm_cuda_stream(c)>>>(ema, param, om, d->n);
    CU_LAUNCHED("ema_update", "ema");
    return 0;
}

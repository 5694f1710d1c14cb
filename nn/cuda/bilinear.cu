/* bilinear.cu — bilinear resize (torch interpolate, align_corners=False,
 * with or without antialias), forward and backward.
 *
 * As on the CPU (nn/cpu/bilinear.c), each axis gets a table of taps per
 * output index (input index, weight), built on the device into the
 * workspace. The tables repeat the CPU's float and double steps one by
 * one with round-to-nearest intrinsics (no fused multiply-adds), so the
 * taps' indices are the CPU's exactly. Forward: y = Σ_a wh_a·(Σ_b ww_b·x),
 * the CPU's association. Backward gathers: each input element finds, by
 * binary search in the (monotone) tables, the outputs whose taps reach it
 * and adds their weighted gradients in output order; no atomics. */
#include <math.h>

#include "nn/cuda/kern.cuh"

/* Taps per output index along an axis (the CPU's axis_taps). */
static int64_t axis_taps(int64_t in, int64_t out, int aa)
{
    if (!aa)
        return 2;
    float scale = (float)in / (float)out;
    float support = scale >= 1.0f ? scale : 1.0f;
    return (int64_t)ceilf(support) * 2 + 1;
}

static size_t axis_bytes(int64_t out, int64_t taps)
{
    size_t b = (size_t)(out * taps) * (sizeof(int32_t) + sizeof(float)) + (size_t)out * 4;
    return (b + 255) / 256 * 256;
}

size_t ldm_cuda_bilinear_workspace(const struct ldm_resample_dims *d)
{
    return axis_bytes(d->Ho, axis_taps(d->H, d->Ho, d->antialias)) +
           axis_bytes(d->Wo, axis_taps(d->W, d->Wo, d->antialias));
}

/* One axis's table: idx, w (out × taps), count (out). */
struct axis {
    int32_t *idx, *count;
    float *w;
    int64_t in, out, taps;
};

static struct axis axis_at(char *mem, int64_t in, int64_t out, int aa)
{
    struct axis a;
    a.in = in, a.out = out, a.taps = axis_taps(in, out, aa);
    a.idx = (int32_t *)mem;
    a.w = (float *)(a.idx + out * a.taps);
    a.count = (int32_t *)(a.w + out * a.taps);
    return a;
}

__device__ __forceinline__ float tri(float x)
{
    x = x < 0.0f ? -x : x;
    return x < 1.0f ? __fsub_rn(1.0f, x) : 0.0f;
}

__global__ void axis_build(struct axis a, int aa)
{
    CU_GRID_LOOP(i, a.out) {
        float scale = __fdiv_rn((float)a.in, (float)a.out);
        int32_t *idx = a.idx + i * a.taps;
        float *w = a.w + i * a.taps;
        double pos = __dmul_rn((double)scale, __dadd_rn((double)i, 0.5));
        if (!aa) {
            float src = __double2float_rn(__dsub_rn(pos, 0.5));
            src = src < 0.0f ? 0.0f : src;
            int64_t i0 = (int64_t)floorf(src);
            i0 = i0 > a.in - 1 ? a.in - 1 : i0;
            float lam = __fsub_rn(src, (float)i0);
            lam = lam < 0.0f ? 0.0f : lam > 1.0f ? 1.0f : lam;
            idx[0] = (int32_t)i0, idx[1] = (int32_t)(i0 + (i0 < a.in - 1 ? 1 : 0));
            w[0] = __fsub_rn(1.0f, lam), w[1] = lam;
            a.count[i] = 2;
            continue;
        }
        float support = scale >= 1.0f ? scale : 1.0f;
        float inv = scale >= 1.0f ? __fdiv_rn(1.0f, scale) : 1.0f;
        float center = __double2float_rn(pos);
        int64_t lo = (int64_t)__fadd_rn(__fsub_rn(center, support), 0.5f);
        int64_t hi = (int64_t)__fadd_rn(__fadd_rn(center, support), 0.5f);
        lo = lo > 0 ? lo : 0;
        hi = hi < a.in ? hi : a.in;
        int64_t n = hi - lo > a.taps ? a.taps : hi - lo;
        float total = 0.0f;
        idx[0] = (int32_t)(lo < a.in ? lo : a.in - 1); /* kept even when n is 0 (searches read it) */
        for (int64_t t = 0; t < n; t++) {
            w[t] = tri(__fmul_rn(__fadd_rn(__fsub_rn((float)(t + lo), center), 0.5f), inv));
            total = __fadd_rn(total, w[t]);
            idx[t] = (int32_t)(lo + t);
        }
        for (int64_t t = 0; t < n; t++)
            if (total != 0.0f)
                w[t] = __fdiv_rn(w[t], total);
        a.count[i] = (int32_t)(n > 0 ? n : 0);
    }
}

template <typename T>
__global__ void bl_fwd(T *y, const T *x, struct axis ah, struct axis aw, int64_t planes)
{
    CU_GRID_LOOP(i, planes * ah.out * aw.out) {
        int64_t ow = i % aw.out, oh = (i / aw.out) % ah.out, p = i / (aw.out * ah.out);
        const T *xp = x + p * ah.in * aw.in;
        const int32_t *hi = ah.idx + oh * ah.taps, *wi = aw.idx + ow * aw.taps;
        const float *hw = ah.w + oh * ah.taps, *ww = aw.w + ow * aw.taps;
        float acc = 0.0f;
        for (int a = 0; a < ah.count[oh]; a++) {
            const T *row = xp + (int64_t)hi[a] * aw.in;
            float inner = 0.0f;
            for (int b = 0; b < aw.count[ow]; b++)
                inner += ww[b] * to_f(row[wi[b]]);
            acc += hw[a] * inner;
        }
        y[i] = from_f<T>(acc);
    }
}

/* The outputs [*o0, *o1] of axis a whose taps may reach input i (the
 * tables' first and last taps are nondecreasing in the output index). */
__device__ void axis_range(const struct axis &a, int64_t i, int64_t *o0, int64_t *o1)
{
    int64_t lo = 0, hi = a.out; /* first o with last tap >= i */
    while (lo < hi) {
        int64_t m = (lo + hi) / 2, c = a.count[m] > 0 ? a.count[m] : 1;
        if (a.idx[m * a.taps + c - 1] >= i)
            hi = m;
        else
            lo = m + 1;
    }
    *o0 = lo;
    lo = 0, hi = a.out; /* first o with first tap > i */
    while (lo < hi) {
        int64_t m = (lo + hi) / 2;
        if (a.idx[m * a.taps] > i)
            hi = m;
        else
            lo = m + 1;
    }
    *o1 = lo - 1;
}

/* The weight output o of axis a gives input i (its taps at i, summed). */
__device__ __forceinline__ float axis_weight(const struct axis &a, int64_t o, int64_t i)
{
    float s = 0.0f;
    for (int t = 0; t < a.count[o]; t++)
        if (a.idx[o * a.taps + t] == i)
            s += a.w[o * a.taps + t];
    return s;
}

template <typename T>
__global__ void bl_bwd(T *dx, const T *dy, struct axis ah, struct axis aw, int64_t planes)
{
    CU_GRID_LOOP(i, planes * ah.in * aw.in) {
        int64_t iw = i % aw.in, ih = (i / aw.in) % ah.in, p = i / (aw.in * ah.in);
        int64_t h0, h1, w0, w1;
        axis_range(ah, ih, &h0, &h1);
        axis_range(aw, iw, &w0, &w1);
        float acc = to_f(dx[i]);
        for (int64_t oh = h0; oh <= h1; oh++) {
            float wh = axis_weight(ah, oh, ih);
            if (wh == 0.0f)
                continue;
            const T *dyr = dy + (p * ah.out + oh) * aw.out;
            for (int64_t ow = w0; ow <= w1; ow++) {
                float ww = axis_weight(aw, ow, iw);
                if (ww != 0.0f)
                    acc += wh * ww * to_f(dyr[ow]);
            }
        }
        dx[i] = from_f<T>(acc);
    }
}

static int bl_run(struct ldm_ctx *c, const char *op, const struct ldm_resample_dims *d, void *out,
                  const void *in, int backward)
{
    int64_t planes = d->N * d->C;
    if (planes == 0 || d->H == 0 || d->W == 0 || d->Ho == 0 || d->Wo == 0)
        return 0;
    cudaStream_t st = ldm_cuda_stream(c);
    char *mem = (char *)c->ws;
    struct axis ah = axis_at(mem, d->H, d->Ho, d->antialias);
    struct axis aw = axis_at(mem + axis_bytes(d->Ho, ah.taps), d->W, d->Wo, d->antialias);
    axis_build<<<cu_blocks(d->Ho), CU_THREADS, 0, st>>>(ah, d->antialias);
    axis_build<<<cu_blocks(d->Wo), CU_THREADS, 0, st>>>(aw, d->antialias);
    if (!backward) {
        CU_DTYPE_SWITCH(d->dtype, T,
                        bl_fwd<T><<<cu_blocks(planes * d->Ho * d->Wo), CU_THREADS, 0, st>>>(
                            (T *)out, (const T *)in, ah, aw, planes));
    } else {
        CU_DTYPE_SWITCH(d->dtype, T,
                        bl_bwd<T><<<cu_blocks(planes * d->H * d->W), CU_THREADS, 0, st>>>(
                            (T *)out, (const T *)in, ah, aw, planes));
    }
    CU_LAUNCHED(op, backward ? "bl_bwd" : "bl_fwd");
    return 0;
}

extern "C" int ldm_cuda_bilinear_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                                     const void *x)
{
    return bl_run(c, "bilinear forward", d, y, x, 0);
}

extern "C" int ldm_cuda_bilinear_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d,
                                     void *dx, const void *dy)
{
    return bl_run(c, "bilinear backward", d, dx, dy, 1);
}

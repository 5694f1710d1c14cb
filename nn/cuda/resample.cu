/* resample.cu — nearest 2× upsample, avg/max pooling and adaptive average
 * pooling, forward and backward (bilinear resize is in bilinear.cu).
 *
 * Forwards run one thread per output element. Backwards gather: one
 * thread per input element walks the outputs whose window holds it, in
 * row-major order, adding into the element's running value in that
 * order, which is the order the CPU backend's scatter adds in; no atomics. */
#include "nn/cuda/kern.cuh"

/* ---- nearest 2× upsample -------------------------------------------------------------------------- */

template <typename T> __global__ void up_fwd(T *y, const T *x, int64_t planes, int64_t H, int64_t W)
{
    int64_t Wo = 2 * W, Ho = 2 * H;
    CU_GRID_LOOP(i, planes * Ho * Wo) {
        int64_t j = i % Wo, r = (i / Wo) % Ho, p = i / (Wo * Ho);
        y[i] = x[(p * H + r / 2) * W + j / 2];
    }
}

template <typename T> __global__ void up_bwd(T *dx, const T *dy, int64_t planes, int64_t H, int64_t W)
{
    int64_t Wo = 2 * W;
    CU_GRID_LOOP(i, planes * H * W) {
        int64_t k = i % W, r = (i / W) % H, p = i / (W * H);
        const T *r0 = dy + (p * 2 * H + 2 * r) * Wo, *r1 = r0 + Wo;
        add_to(dx, i, (to_f(r0[2 * k]) + to_f(r0[2 * k + 1])) + (to_f(r1[2 * k]) + to_f(r1[2 * k + 1])));
    }
}

extern "C" int ldm_cuda_upsample_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                                     const void *x)
{
    int64_t planes = d->N * d->C, n = planes * d->Ho * d->Wo;
    if (n == 0)
        return 0;
    CU_DTYPE_SWITCH(d->dtype, T,
                    up_fwd<T><<<cu_blocks(n), CU_THREADS, 0, ldm_cuda_stream(c)>>>(
                        (T *)y, (const T *)x, planes, d->H, d->W));
    CU_LAUNCHED("upsample_nearest2x forward", "up_fwd");
    return 0;
}

extern "C" int ldm_cuda_upsample_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d,
                                     void *dx, const void *dy)
{
    int64_t planes = d->N * d->C, n = planes * d->H * d->W;
    if (n == 0)
        return 0;
    CU_DTYPE_SWITCH(d->dtype, T,
                    up_bwd<T><<<cu_blocks(n), CU_THREADS, 0, ldm_cuda_stream(c)>>>(
                        (T *)dx, (const T *)dy, planes, d->H, d->W));
    CU_LAUNCHED("upsample_nearest2x backward", "up_bwd");
    return 0;
}

/* ---- avg and max pooling ------------------------------------------------------------------------------ */

/* Sizes by value, for kernels. */
struct rs {
    int64_t planes, H, W, Ho, Wo;
    int kh, kw, sh, sw, ph, pw, cip;
};

static struct rs rs_of(const struct ldm_resample_dims *d)
{
    struct rs r = {d->N * d->C, d->H, d->W, d->Ho, d->Wo, d->kh, d->kw, d->sh, d->sw, d->ph,
                   d->pw, d->count_include_pad};
    return r;
}

/* The window of output (oh, ow) clipped to the input, and avg's divisor (the CPU's pool_window). */
struct win {
    int64_t h0, h1, w0, w1;
    float div;
};

__device__ __forceinline__ struct win pool_win(const struct rs &d, int64_t oh, int64_t ow)
{
    struct win w;
    int64_t hs = oh * d.sh - d.ph, ws = ow * d.sw - d.pw;
    int64_t he = hs + d.kh < d.H + d.ph ? hs + d.kh : d.H + d.ph;
    int64_t we = ws + d.kw < d.W + d.pw ? ws + d.kw : d.W + d.pw;
    int64_t padded = (he - hs) * (we - ws);
    w.h0 = hs > 0 ? hs : 0, w.w0 = ws > 0 ? ws : 0;
    w.h1 = he < d.H ? he : d.H, w.w1 = we < d.W ? we : d.W;
    w.div = (float)(d.cip ? padded : (w.h1 - w.h0) * (w.w1 - w.w0));
    return w;
}

/* The outputs [lo, hi] along one axis whose window starts at o·s − p and holds i. */
__device__ __forceinline__ void pool_range(int64_t i, int k, int s, int p, int64_t out, int64_t *lo,
                                           int64_t *hi)
{
    int64_t a = i + p - k + 1;
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    int64_t b = (i + p) / s;
    *hi = b < out - 1 ? b : out - 1;
}

/* The index in the plane of the first largest element of the window (NaN wins). */
template <typename T> __device__ int64_t argmax_t(const struct rs &d, const T *x, struct win w)
{
    int64_t best = w.h0 * d.W + w.w0;
    float mx = -INFINITY;
    for (int64_t ih = w.h0; ih < w.h1; ih++)
        for (int64_t iw = w.w0; iw < w.w1; iw++) {
            float v = to_f(x[ih * d.W + iw]);
            if (v > mx || isnan(v)) {
                mx = v;
                best = ih * d.W + iw;
                if (isnan(v))
                    return best;
            }
        }
    return best;
}

template <typename T> __global__ void avg_fwd(T *y, const T *x, struct rs d)
{
    CU_GRID_LOOP(i, d.planes * d.Ho * d.Wo) {
        int64_t ow = i % d.Wo, oh = (i / d.Wo) % d.Ho, p = i / (d.Wo * d.Ho);
        const T *xp = x + p * d.H * d.W;
        struct win w = pool_win(d, oh, ow);
        float s = 0.0f;
        for (int64_t ih = w.h0; ih < w.h1; ih++)
            for (int64_t iw = w.w0; iw < w.w1; iw++)
                s += to_f(xp[ih * d.W + iw]);
        y[i] = from_f<T>(w.div > 0.0f ? s / w.div : 0.0f);
    }
}

template <typename T> __global__ void avg_bwd(T *dx, const T *dy, struct rs d)
{
    CU_GRID_LOOP(i, d.planes * d.H * d.W) {
        int64_t iw = i % d.W, ih = (i / d.W) % d.H, p = i / (d.W * d.H);
        int64_t h_lo, h_hi, w_lo, w_hi;
        pool_range(ih, d.kh, d.sh, d.ph, d.Ho, &h_lo, &h_hi);
        pool_range(iw, d.kw, d.sw, d.pw, d.Wo, &w_lo, &w_hi);
        float acc = to_f(dx[i]);
        for (int64_t oh = h_lo; oh <= h_hi; oh++)
            for (int64_t ow = w_lo; ow <= w_hi; ow++) {
                struct win w = pool_win(d, oh, ow);
                if (w.div > 0.0f)
                    acc += to_f(dy[(p * d.Ho + oh) * d.Wo + ow]) / w.div;
            }
        dx[i] = from_f<T>(acc);
    }
}

template <typename T> __global__ void max_fwd(T *y, const T *x, struct rs d)
{
    CU_GRID_LOOP(i, d.planes * d.Ho * d.Wo) {
        int64_t ow = i % d.Wo, oh = (i / d.Wo) % d.Ho, p = i / (d.Wo * d.Ho);
        const T *xp = x + p * d.H * d.W;
        y[i] = xp[argmax_t(d, xp, pool_win(d, oh, ow))];
    }
}

template <typename T> __global__ void max_bwd(T *dx, const T *dy, const T *x, struct rs d)
{
    CU_GRID_LOOP(i, d.planes * d.H * d.W) {
        int64_t iw = i % d.W, ih = (i / d.W) % d.H, p = i / (d.W * d.H);
        const T *xp = x + p * d.H * d.W;
        int64_t h_lo, h_hi, w_lo, w_hi, me = ih * d.W + iw;
        pool_range(ih, d.kh, d.sh, d.ph, d.Ho, &h_lo, &h_hi);
        pool_range(iw, d.kw, d.sw, d.pw, d.Wo, &w_lo, &w_hi);
        float acc = to_f(dx[i]);
        for (int64_t oh = h_lo; oh <= h_hi; oh++)
            for (int64_t ow = w_lo; ow <= w_hi; ow++)
                if (argmax_t(d, xp, pool_win(d, oh, ow)) == me)
                    acc += to_f(dy[(p * d.Ho + oh) * d.Wo + ow]);
        dx[i] = from_f<T>(acc);
    }
}

/* Launch kernel kname<T> over n elements with these arguments (nothing when n is 0). */
#define RS_LAUNCH(op, kname, n, dtype, ...)                                                        \
    do {                                                                                           \
        if ((n) > 0) {                                                                             \
            CU_DTYPE_SWITCH(dtype, T,                                                              \
                            kname<T><<<cu_blocks(n), CU_THREADS, 0, ldm_cuda_stream(c)>>>(         \
                                __VA_ARGS__));                                                     \
            CU_LAUNCHED(op, #kname);                                                               \
        }                                                                                          \
    } while (0)

extern "C" int ldm_cuda_avg_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                                     const void *x)
{
    struct rs r = rs_of(d);
    RS_LAUNCH("avg_pool2d forward", avg_fwd, r.planes * r.Ho * r.Wo, d->dtype, (T *)y,
              (const T *)x, r);
    return 0;
}

extern "C" int ldm_cuda_avg_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d,
                                     void *dx, const void *dy)
{
    struct rs r = rs_of(d);
    RS_LAUNCH("avg_pool2d backward", avg_bwd, r.planes * r.H * r.W, d->dtype, (T *)dx,
              (const T *)dy, r);
    return 0;
}

extern "C" int ldm_cuda_max_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                                     const void *x)
{
    struct rs r = rs_of(d);
    RS_LAUNCH("max_pool2d forward", max_fwd, r.planes * r.Ho * r.Wo, d->dtype, (T *)y,
              (const T *)x, r);
    return 0;
}

extern "C" int ldm_cuda_max_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d,
                                     void *dx, const void *dy, const void *x)
{
    struct rs r = rs_of(d);
    RS_LAUNCH("max_pool2d backward", max_bwd, r.planes * r.H * r.W, d->dtype, (T *)dx,
              (const T *)dy, (const T *)x, r);
    return 0;
}

/* ---- adaptive average pooling -------------------------------------------------------------------------- */

/* Bin i of `out` over `in`: [floor(i·in/out), ceil((i+1)·in/out)). */
__device__ __forceinline__ void bin(int64_t i, int64_t in, int64_t out, int64_t *b, int64_t *e)
{
    *b = i * in / out;
    *e = ((i + 1) * in + out - 1) / out;
}

template <typename T> __global__ void adaptive_fwd(T *y, const T *x, struct rs d)
{
    CU_GRID_LOOP(i, d.planes * d.Ho * d.Wo) {
        int64_t ow = i % d.Wo, oh = (i / d.Wo) % d.Ho, p = i / (d.Wo * d.Ho);
        int64_t h0, h1, w0, w1;
        bin(oh, d.H, d.Ho, &h0, &h1);
        bin(ow, d.W, d.Wo, &w0, &w1);
        const T *xp = x + p * d.H * d.W;
        float s = 0.0f;
        for (int64_t ih = h0; ih < h1; ih++)
            for (int64_t iw = w0; iw < w1; iw++)
                s += to_f(xp[ih * d.W + iw]);
        y[i] = from_f<T>(s / (float)((h1 - h0) * (w1 - w0)));
    }
}

template <typename T> __global__ void adaptive_bwd(T *dx, const T *dy, struct rs d)
{
    CU_GRID_LOOP(i, d.planes * d.H * d.W) {
        int64_t iw = i % d.W, ih = (i / d.W) % d.H, p = i / (d.W * d.H);
        /* bins holding ih: floor(ih·Ho/H) .. ceil((ih+1)·Ho/H) − 1 */
        int64_t oh0 = ih * d.Ho / d.H, oh1 = ((ih + 1) * d.Ho + d.H - 1) / d.H - 1;
        int64_t ow0 = iw * d.Wo / d.W, ow1 = ((iw + 1) * d.Wo + d.W - 1) / d.W - 1;
        oh1 = oh1 < d.Ho - 1 ? oh1 : d.Ho - 1;
        ow1 = ow1 < d.Wo - 1 ? ow1 : d.Wo - 1;
        float acc = to_f(dx[i]);
        for (int64_t oh = oh0; oh <= oh1; oh++) {
            int64_t h0, h1;
            bin(oh, d.H, d.Ho, &h0, &h1);
            if (ih < h0 || ih >= h1)
                continue;
            for (int64_t ow = ow0; ow <= ow1; ow++) {
                int64_t w0, w1;
                bin(ow, d.W, d.Wo, &w0, &w1);
                if (iw < w0 || iw >= w1)
                    continue;
                acc += to_f(dy[(p * d.Ho + oh) * d.Wo + ow]) / (float)((h1 - h0) * (w1 - w0));
            }
        }
        dx[i] = from_f<T>(acc);
    }
}

extern "C" int ldm_cuda_adaptive_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d,
                                          void *y, const void *x)
{
    struct rs r = rs_of(d);
    RS_LAUNCH("adaptive_avg_pool2d forward", adaptive_fwd, r.planes * r.Ho * r.Wo, d->dtype,
              (T *)y, (const T *)x, r);
    return 0;
}

extern "C" int ldm_cuda_adaptive_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d,
                                          void *dx, const void *dy)
{
    struct rs r = rs_of(d);
    RS_LAUNCH("adaptive_avg_pool2d backward", adaptive_bwd, r.planes * r.H * r.W, d->dtype,
              (T *)dx, (const T *)dy, r);
    return 0;
}

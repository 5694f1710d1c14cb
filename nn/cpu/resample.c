/* resample.c — CPU nearest 2× upsample and avg/max/adaptive pooling, forward
 * and backward (bilinear resize is in bilinear.c). One task per (sample,
 * channel) plane, so a backward's scatter into dx never crosses tasks. */
#include <math.h>
#include <string.h>

#include "nn/cpu/cpu.h"

struct rs_job {
    const struct ldm_resample_dims *d;
    float *out;
    const float *in, *x; /* x: max pooling's input, in its backward */
};

/* Run one plane function over every (n, c) plane. */
static void planes(struct ldm_ctx *c, const struct ldm_resample_dims *d, ldm_pool_fn fn,
                   struct rs_job *j)
{
    cpu_tasks(c, d->N * d->C, fn, j);
}

/* ---- nearest 2× upsample ---------------------------------------------------------- */

static void up_fwd_plane(void *vj, int64_t p, int thread)
{
    (void)thread;
    struct rs_job *j = vj;
    const struct ldm_resample_dims *d = j->d;
    const float *x = j->in + p * d->H * d->W;
    float *y = j->out + p * d->Ho * d->Wo;
    for (int64_t i = 0; i < d->H; i++) {
        float *r0 = y + 2 * i * d->Wo, *r1 = r0 + d->Wo;
        for (int64_t k = 0; k < d->W; k++)
            r0[2 * k] = r0[2 * k + 1] = x[i * d->W + k];
        memcpy(r1, r0, (size_t)d->Wo * sizeof(float));
    }
}

static void up_bwd_plane(void *vj, int64_t p, int thread)
{
    (void)thread;
    struct rs_job *j = vj;
    const struct ldm_resample_dims *d = j->d;
    const float *dy = j->in + p * d->Ho * d->Wo;
    float *dx = j->out + p * d->H * d->W;
    for (int64_t i = 0; i < d->H; i++) {
        const float *r0 = dy + 2 * i * d->Wo, *r1 = r0 + d->Wo;
        for (int64_t k = 0; k < d->W; k++)
            dx[i * d->W + k] += (r0[2 * k] + r0[2 * k + 1]) + (r1[2 * k] + r1[2 * k + 1]);
    }
}

int cpu_upsample_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y, const void *x)
{
    struct rs_job j = {d, y, x, NULL};
    planes(c, d, up_fwd_plane, &j);
    return 0;
}

int cpu_upsample_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                     const void *dy)
{
    struct rs_job j = {d, dx, dy, NULL};
    planes(c, d, up_bwd_plane, &j);
    return 0;
}

/* ---- avg and max pooling ---------------------------------------------------------------- */

/* The window of output (oh, ow) clipped to the input, and avg's divisor. */
struct window {
    int64_t h0, h1, w0, w1;
    float divisor;
};

static struct window pool_window(const struct ldm_resample_dims *d, int64_t oh, int64_t ow)
{
    struct window w;
    int64_t hs = oh * d->sh - d->ph, ws = ow * d->sw - d->pw;
    int64_t he = hs + d->kh < d->H + d->ph ? hs + d->kh : d->H + d->ph;
    int64_t we = ws + d->kw < d->W + d->pw ? ws + d->kw : d->W + d->pw;
    int64_t padded = (he - hs) * (we - ws);
    w.h0 = hs > 0 ? hs : 0, w.w0 = ws > 0 ? ws : 0;
    w.h1 = he < d->H ? he : d->H, w.w1 = we < d->W ? we : d->W;
    w.divisor = (float)(d->count_include_pad ? padded : (w.h1 - w.h0) * (w.w1 - w.w0));
    return w;
}

static void avg_fwd_plane(void *vj, int64_t p, int thread)
{
    (void)thread;
    struct rs_job *j = vj;
    const struct ldm_resample_dims *d = j->d;
    const float *x = j->in + p * d->H * d->W;
    float *y = j->out + p * d->Ho * d->Wo;
    for (int64_t oh = 0; oh < d->Ho; oh++)
        for (int64_t ow = 0; ow < d->Wo; ow++) {
            struct window w = pool_window(d, oh, ow);
            float s = 0.0f;
            for (int64_t ih = w.h0; ih < w.h1; ih++)
                for (int64_t iw = w.w0; iw < w.w1; iw++)
                    s += x[ih * d->W + iw];
            y[oh * d->Wo + ow] = w.divisor > 0.0f ? s / w.divisor : 0.0f;
        }
}

static void avg_bwd_plane(void *vj, int64_t p, int thread)
{
    (void)thread;
    struct rs_job *j = vj;
    const struct ldm_resample_dims *d = j->d;
    const float *dy = j->in + p * d->Ho * d->Wo;
    float *dx = j->out + p * d->H * d->W;
    for (int64_t oh = 0; oh < d->Ho; oh++)
        for (int64_t ow = 0; ow < d->Wo; ow++) {
            struct window w = pool_window(d, oh, ow);
            if (w.divisor <= 0.0f)
                continue;
            float g = dy[oh * d->Wo + ow] / w.divisor;
            for (int64_t ih = w.h0; ih < w.h1; ih++)
                for (int64_t iw = w.w0; iw < w.w1; iw++)
                    dx[ih * d->W + iw] += g;
        }
}

/* The index of the first largest element of the window (NaN wins, as torch). */
static int64_t window_argmax(const struct ldm_resample_dims *d, const float *x, struct window w)
{
    int64_t best = w.h0 * d->W + w.w0;
    float mx = -INFINITY;
    for (int64_t ih = w.h0; ih < w.h1; ih++)
        for (int64_t iw = w.w0; iw < w.w1; iw++) {
            float v = x[ih * d->W + iw];
            if (v > mx || isnan(v)) {
                mx = v;
                best = ih * d->W + iw;
                if (isnan(v))
                    return best;
            }
        }
    return best;
}

static void max_fwd_plane(void *vj, int64_t p, int thread)
{
    (void)thread;
    struct rs_job *j = vj;
    const struct ldm_resample_dims *d = j->d;
    const float *x = j->in + p * d->H * d->W;
    float *y = j->out + p * d->Ho * d->Wo;
    for (int64_t oh = 0; oh < d->Ho; oh++)
        for (int64_t ow = 0; ow < d->Wo; ow++)
            y[oh * d->Wo + ow] = x[window_argmax(d, x, pool_window(d, oh, ow))];
}

static void max_bwd_plane(void *vj, int64_t p, int thread)
{
    (void)thread;
    struct rs_job *j = vj;
    const struct ldm_resample_dims *d = j->d;
    const float *dy = j->in + p * d->Ho * d->Wo, *x = j->x + p * d->H * d->W;
    float *dx = j->out + p * d->H * d->W;
    for (int64_t oh = 0; oh < d->Ho; oh++)
        for (int64_t ow = 0; ow < d->Wo; ow++)
            dx[window_argmax(d, x, pool_window(d, oh, ow))] += dy[oh * d->Wo + ow];
}

int cpu_avg_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y, const void *x)
{
    struct rs_job j = {d, y, x, NULL};
    planes(c, d, avg_fwd_plane, &j);
    return 0;
}

int cpu_avg_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                     const void *dy)
{
    struct rs_job j = {d, dx, dy, NULL};
    planes(c, d, avg_bwd_plane, &j);
    return 0;
}

int cpu_max_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y, const void *x)
{
    struct rs_job j = {d, y, x, NULL};
    planes(c, d, max_fwd_plane, &j);
    return 0;
}

int cpu_max_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                     const void *dy, const void *x)
{
    struct rs_job j = {d, dx, dy, x};
    planes(c, d, max_bwd_plane, &j);
    return 0;
}

/* ---- adaptive average pooling ----------------------------------------------------------- */

static void bin(int64_t i, int64_t in, int64_t out, int64_t *b, int64_t *e)
{
    *b = i * in / out;                      /* floor */
    *e = ((i + 1) * in + out - 1) / out;    /* ceil */
}

static void adaptive_plane(void *vj, int64_t p, int thread, int backward)
{
    (void)thread;
    struct rs_job *j = vj;
    const struct ldm_resample_dims *d = j->d;
    for (int64_t oh = 0; oh < d->Ho; oh++) {
        int64_t h0, h1;
        bin(oh, d->H, d->Ho, &h0, &h1);
        for (int64_t ow = 0; ow < d->Wo; ow++) {
            int64_t w0, w1;
            bin(ow, d->W, d->Wo, &w0, &w1);
            float cnt = (float)((h1 - h0) * (w1 - w0));
            if (!backward) {
                const float *x = j->in + p * d->H * d->W;
                float s = 0.0f;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++)
                        s += x[ih * d->W + iw];
                j->out[p * d->Ho * d->Wo + oh * d->Wo + ow] = s / cnt;
            } else {
                float g = j->in[p * d->Ho * d->Wo + oh * d->Wo + ow] / cnt;
                float *dx = j->out + p * d->H * d->W;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++)
                        dx[ih * d->W + iw] += g;
            }
        }
    }
}

static void adaptive_fwd_plane(void *vj, int64_t p, int thread)
{
    adaptive_plane(vj, p, thread, 0);
}

static void adaptive_bwd_plane(void *vj, int64_t p, int thread)
{
    adaptive_plane(vj, p, thread, 1);
}

int cpu_adaptive_pool_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y,
                          const void *x)
{
    struct rs_job j = {d, y, x, NULL};
    planes(c, d, adaptive_fwd_plane, &j);
    return 0;
}

int cpu_adaptive_pool_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                          const void *dy)
{
    struct rs_job j = {d, dx, dy, NULL};
    planes(c, d, adaptive_bwd_plane, &j);
    return 0;
}

/* bilinear.c — CPU bilinear resize (torch interpolate, align_corners=False,
 * with or without antialias), forward and backward.
 *
 * Each axis gets a table, built once per call in the workspace: for every
 * output index, its input taps (index, weight). Without antialias a tap
 * pair is (i0, 1−λ), (i0 + (i0 < in−1), λ) with the source coordinate
 * max(scale·(i + ½) − ½, 0); with antialias (torch's _compute_weights_aa)
 * the triangle filter is widened by the scale when downscaling and the
 * weights are normalized. The 2-D value is Σ_a wh_a·(Σ_b ww_b·x[a][b]),
 * the association torch uses. */
#include <math.h>

#include "nn/cpu/cpu.h"

/* One axis: taps per output, then idx[out·taps], w[out·taps], count[out]. */
struct axis {
    int64_t in, out, taps;
    int64_t *idx, *count;
    float *w;
};

static int64_t axis_taps(int64_t in, int64_t out, int aa)
{
    if (!aa)
        return 2;
    float scale = (float)in / (float)out;
    float support = scale >= 1.0f ? scale : 1.0f;
    return (int64_t)ceilf(support) * 2 + 1;
}

static size_t axis_bytes(int64_t in, int64_t out, int aa)
{
    int64_t t = axis_taps(in, out, aa);
    return (size_t)(out * t) * (sizeof(int64_t) + sizeof(float)) + (size_t)out * sizeof(int64_t);
}

size_t cpu_bilinear_workspace(const struct ldm_resample_dims *d)
{
    size_t a = axis_bytes(d->H, d->Ho, d->antialias), b = axis_bytes(d->W, d->Wo, d->antialias);
    return (a + 7) / 8 * 8 + b;
}

static void axis_plain(struct axis *ax)
{
    float scale = (float)ax->in / (float)ax->out;
    for (int64_t i = 0; i < ax->out; i++) {
        float src = (float)((double)scale * ((double)i + 0.5) - 0.5);
        if (src < 0.0f)
            src = 0.0f;
        int64_t i0 = (int64_t)floorf(src);
        if (i0 > ax->in - 1)
            i0 = ax->in - 1;
        float lam = src - (float)i0;
        lam = lam < 0.0f ? 0.0f : lam > 1.0f ? 1.0f : lam;
        ax->idx[i * 2] = i0;
        ax->idx[i * 2 + 1] = i0 + (i0 < ax->in - 1 ? 1 : 0);
        ax->w[i * 2] = 1.0f - lam;
        ax->w[i * 2 + 1] = lam;
        ax->count[i] = 2;
    }
}

static float triangle(float x)
{
    x = x < 0.0f ? -x : x;
    return x < 1.0f ? 1.0f - x : 0.0f;
}

static void axis_aa(struct axis *ax)
{
    float scale = (float)ax->in / (float)ax->out;
    float support = scale >= 1.0f ? scale : 1.0f;
    float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
    for (int64_t i = 0; i < ax->out; i++) {
        float center = (float)((double)scale * ((double)i + 0.5));
        int64_t lo = (int64_t)(center - support + 0.5f);
        int64_t hi = (int64_t)(center + support + 0.5f);
        lo = lo > 0 ? lo : 0;
        hi = hi < ax->in ? hi : ax->in;
        int64_t n = hi - lo > ax->taps ? ax->taps : hi - lo;
        float total = 0.0f, *w = ax->w + i * ax->taps;
        for (int64_t t = 0; t < n; t++) {
            w[t] = triangle(((float)(t + lo) - center + 0.5f) * invscale);
            total += w[t];
            ax->idx[i * ax->taps + t] = lo + t;
        }
        for (int64_t t = 0; t < n; t++)
            if (total != 0.0f)
                w[t] /= total;
        ax->count[i] = n > 0 ? n : 0;
    }
}

/* Lay an axis table out at *mem (advancing it) and fill it. */
static void axis_build(struct axis *ax, char **mem, int64_t in, int64_t out, int aa)
{
    ax->in = in, ax->out = out, ax->taps = axis_taps(in, out, aa);
    ax->idx = (int64_t *)*mem;
    ax->count = ax->idx + out * ax->taps;
    ax->w = (float *)(ax->count + out);
    *mem += (axis_bytes(in, out, aa) + 7) / 8 * 8;
    if (aa)
        axis_aa(ax);
    else
        axis_plain(ax);
}

struct bl_job {
    const struct ldm_resample_dims *d;
    struct axis ah, aw;
    float *out;
    const float *in;
};

static void bl_fwd_plane(void *vj, int64_t p, int thread)
{
    (void)thread;
    struct bl_job *j = vj;
    const struct ldm_resample_dims *d = j->d;
    const float *x = j->in + p * d->H * d->W;
    float *y = j->out + p * d->Ho * d->Wo;
    for (int64_t oh = 0; oh < d->Ho; oh++) {
        const int64_t *hi = j->ah.idx + oh * j->ah.taps;
        const float *hw = j->ah.w + oh * j->ah.taps;
        for (int64_t ow = 0; ow < d->Wo; ow++) {
            const int64_t *wi = j->aw.idx + ow * j->aw.taps;
            const float *ww = j->aw.w + ow * j->aw.taps;
            float acc = 0.0f;
            for (int64_t a = 0; a < j->ah.count[oh]; a++) {
                const float *row = x + hi[a] * d->W;
                float inner = 0.0f;
                for (int64_t b = 0; b < j->aw.count[ow]; b++)
                    inner += ww[b] * row[wi[b]];
                acc += hw[a] * inner;
            }
            y[oh * d->Wo + ow] = acc;
        }
    }
}

static void bl_bwd_plane(void *vj, int64_t p, int thread)
{
    (void)thread;
    struct bl_job *j = vj;
    const struct ldm_resample_dims *d = j->d;
    const float *dy = j->in + p * d->Ho * d->Wo;
    float *dx = j->out + p * d->H * d->W;
    for (int64_t oh = 0; oh < d->Ho; oh++) {
        const int64_t *hi = j->ah.idx + oh * j->ah.taps;
        const float *hw = j->ah.w + oh * j->ah.taps;
        for (int64_t ow = 0; ow < d->Wo; ow++) {
            const int64_t *wi = j->aw.idx + ow * j->aw.taps;
            const float *ww = j->aw.w + ow * j->aw.taps;
            float g = dy[oh * d->Wo + ow];
            for (int64_t a = 0; a < j->ah.count[oh]; a++)
                for (int64_t b = 0; b < j->aw.count[ow]; b++)
                    dx[hi[a] * d->W + wi[b]] += hw[a] * ww[b] * g;
        }
    }
}

static void bl_run(struct ldm_ctx *c, const struct ldm_resample_dims *d, float *out,
                   const float *in, ldm_pool_fn fn)
{
    struct bl_job j = {.d = d, .out = out, .in = in};
    char *mem = c->ws;
    axis_build(&j.ah, &mem, d->H, d->Ho, d->antialias);
    axis_build(&j.aw, &mem, d->W, d->Wo, d->antialias);
    cpu_tasks(c, d->N * d->C, fn, &j);
}

int cpu_bilinear_fwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *y, const void *x)
{
    bl_run(c, d, y, x, bl_fwd_plane);
    return 0;
}

int cpu_bilinear_bwd(struct ldm_ctx *c, const struct ldm_resample_dims *d, void *dx,
                     const void *dy)
{
    bl_run(c, d, dx, dy, bl_bwd_plane);
    return 0;
}

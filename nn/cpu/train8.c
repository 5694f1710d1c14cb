/* train8.c — CPU 8-bit AdamW (bitsandbytes' AdamW8bit, block-wise) and the EMA
 * update (diffusers' EMAModel.step).
 *
 * adamw8 follows bitsandbytes' CUDA kernel kOptimizerStatic8bit2StateBlockwise
 * (256-element blocks, one thread per element) operation by operation in
 * float32: dequantise both moments, update them, take the block's new absolute
 * maxima (the padding lanes of a short last block included), update the
 * parameters (bias corrections folded into the step size and eps, weight
 * decay after the update), then quantise with the kernel's binary search
 * over the code map and its sign fix for m. Exact division and the powers
 * taken in double stand in for the GPU's approximate __fdividef and __powf.
 * The code maps are bitsandbytes' create_dynamic_map(signed=True / False),
 * rebuilt here in float32 with torch's linspace formula. Blocks are never
 * split between threads, so results do not depend on the thread count.
 */
#include <float.h>
#include <math.h>

#include "nn/cpu/cpu.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* torch and the reference round every product */
#endif

#define BLK LDM_ADAM8_BLOCK
#define GRAIN_BLOCKS 64 /* blocks per task at least */
#define EMA_GRAIN 32768

/* ---- the dynamic quantisation maps ------------------------------------------------------ */

/* torch.linspace(start, end, n)[k] in float32, by its formula: from the
 * start for the first half, from the end for the second. */
static float linspace_at(float start, float end, int n, int k)
{
    float step = (end - start) / (float)(n - 1);
    if (k < n / 2)
        return start + step * (float)k;
    return end - step * (float)(n - 1 - k);
}

/* create_dynamic_map(signed, max_exponent_bits=7, total_bits=8): for each
 * exponent e = 0..6 the midpoints of linspace(0.1, 1, 2^e + 1) (unsigned:
 * 2^(e+1) + 1) times 10^(e−6), mirrored when signed, plus 0 and 1, sorted.
 * The midpoints grow with e, so they come out in order. */
static void dynamic_map(float map[256], int is_signed)
{
    float pos[254];
    int np = 0;
    for (int e = 0; e < 7; e++) {
        int pts = (is_signed ? 1 << e : 2 << e) + 1;
        float scale = (float)pow(10.0, (double)(e - 6)); /* 10 ** (e - 6), then float32 */
        float prev = linspace_at(0.1f, 1.0f, pts, 0);
        for (int k = 1; k < pts; k++) {
            float b = linspace_at(0.1f, 1.0f, pts, k);
            pos[np++] = (prev + b) / 2.0f * scale;
            prev = b;
        }
    }
    if (is_signed) { /* 127 negatives, 0, 127 positives, 1 */
        for (int i = 0; i < 127; i++) {
            map[i] = -pos[126 - i];
            map[128 + i] = pos[i];
        }
        map[127] = 0.0f;
    } else { /* 0, 254 positives, 1 */
        map[0] = 0.0f;
        for (int i = 0; i < 254; i++)
            map[1 + i] = pos[i];
    }
    map[255] = 1.0f;
}

/* The kernel's quantize_2D: a 7-step binary search from code 127, then the
 * nearer of the last pivot and the neighbour on x's side (midpoints in
 * float32). `lower` starts at −1 for the signed map, 0 for the unsigned. A
 * NaN x ends at code 0. */
static int quantize(const float *map, float x, float lower)
{
    int pivot = 127, up = 255, lo = 0;
    float upper = 1.0f, val = map[127];
    for (int i = 64; i > 0; i >>= 1) {
        if (x > val) {
            lo = pivot;
            lower = val;
            pivot += i;
        } else {
            up = pivot;
            upper = val;
            pivot -= i;
        }
        val = map[pivot];
    }
    if (x > val)
        return x > (upper + val) * 0.5f ? up : pivot;
    return x < (lower + val) * 0.5f ? lo : pivot;
}

/* fmaxf(m, a) for a that is never NaN here (|a| of finite moments). */
static inline float max_abs(float m, float a)
{
    a = fabsf(a);
    return a > m ? a : m;
}

/* ---- AdamW8bit ---------------------------------------------------------------------------- */

struct adam8_job {
    int64_t n;
    float *p, *m_absmax, *v_absmax;
    const float *g;
    uint8_t *m_q, *v_q;
    int fresh;                            /* step 1: zero codes and zero absmax */
    float b1, one_b1, b2, one_b2;
    float step_size, c2_eps, wd_factor;   /* −lr·c2/c1, c2·eps, 1 − lr·wd */
    int decay_on;                         /* wd > 0 */
    float map_s[256], map_u[256];
};

/* Dequantise and update one block's moments into s1, s2; return the new
 * absolute maxima in *max1, *max2. */
static void adam8_moments(const struct adam8_job *j, int64_t base, int valid, float *s1,
                          float *s2, float *max1, float *max2)
{
    float a1 = j->fresh ? 0.0f : j->m_absmax[base / BLK];
    float a2 = j->fresh ? 0.0f : j->v_absmax[base / BLK];
    float mx1 = -FLT_MAX, mx2 = -FLT_MAX;
    for (int i = 0; i < valid; i++) {
        float g = j->g[base + i];
        if (isfinite(g)) {
            float m = j->map_s[j->fresh ? 0 : j->m_q[base + i]] * a1;
            float v = j->map_u[j->fresh ? 0 : j->v_q[base + i]] * a2;
            s2[i] = v * j->b2 + j->one_b2 * g * g;
            s1[i] = m * j->b1 + j->one_b1 * g;
        } else {
            s1[i] = s2[i] = 0.0f;
        }
        mx1 = max_abs(mx1, s1[i]);
        mx2 = max_abs(mx2, s2[i]);
    }
    if (valid < BLK) { /* the kernel's padding lanes: g = 0, m code 128, v code 0 */
        float m = j->map_s[128] * a1 * j->b1 + j->one_b1 * 0.0f;
        float v = j->map_u[0] * a2 * j->b2 + j->one_b2 * 0.0f * 0.0f;
        mx1 = max_abs(mx1, m);
        mx2 = max_abs(mx2, v);
    }
    *max1 = mx1;
    *max2 = mx2;
}

static void adam8_block(const struct adam8_job *j, int64_t blk)
{
    float s1[BLK], s2[BLK], max1, max2;
    int64_t base = blk * BLK;
    int valid = (int)(j->n - base < BLK ? j->n - base : BLK);
    adam8_moments(j, base, valid, s1, s2, &max1, &max2);
    j->m_absmax[blk] = max1;
    j->v_absmax[blk] = max2;
    for (int i = 0; i < valid; i++) {
        if (!isfinite(j->g[base + i]))
            continue;
        float p = j->p[base + i] + j->step_size * (s1[i] / (sqrtf(s2[i]) + j->c2_eps));
        if (j->decay_on)
            p = p * j->wd_factor;
        j->p[base + i] = p;
    }
    for (int i = 0; i < valid; i++) {
        int c1 = quantize(j->map_s, s1[i] / max1, -1.0f);
        if ((signbit(j->map_s[c1]) != 0) != (signbit(s1[i]) != 0)) /* keep m's sign */
            c1 = s1[i] > 0.0f ? c1 + 1 : c1 - 1;
        j->m_q[base + i] = (uint8_t)(c1 & 0xff); /* −1 wraps to 255, as the kernel's byte */
        j->v_q[base + i] = (uint8_t)quantize(j->map_u, s2[i] / max2, 0.0f);
    }
}

static void adam8_range(void *vj, int64_t b, int64_t e, int thread)
{
    (void)thread;
    for (int64_t blk = b; blk < e; blk++)
        adam8_block(vj, blk);
}

int cpu_adamw8(struct ldm_ctx *c, const struct ldm_train_dims *d, float *param, const float *grad,
               uint8_t *m_q, uint8_t *v_q, float *m_absmax, float *v_absmax)
{
    struct adam8_job j = {.n = d->n, .p = param, .g = grad, .m_q = m_q, .v_q = v_q,
                          .m_absmax = m_absmax, .v_absmax = v_absmax, .fresh = d->step == 1};
    float lr = (float)d->lr, eps = (float)d->eps, wd = (float)d->weight_decay;
    j.b1 = (float)d->beta1;
    j.b2 = (float)d->beta2;
    j.one_b1 = 1.0f - j.b1;
    j.one_b2 = 1.0f - j.b2;
    float c1 = 1.0f - (float)pow((double)j.b1, (double)d->step);
    float c2 = sqrtf(1.0f - (float)pow((double)j.b2, (double)d->step));
    j.step_size = -lr * c2 / c1;
    j.c2_eps = c2 * eps;
    j.wd_factor = 1.0f - lr * wd;
    j.decay_on = wd > 0.0f;
    dynamic_map(j.map_s, 1);
    dynamic_map(j.map_u, 0);
    cpu_for(c, d->nblocks, GRAIN_BLOCKS, adam8_range, &j);
    return 0;
}

/* ---- EMA ------------------------------------------------------------------------------------- */

struct ema_job {
    float *e;
    const float *p;
    float one_minus_decay;
};

static void ema_range(void *vj, int64_t b, int64_t e, int thread)
{
    (void)thread;
    struct ema_job *j = vj;
    for (int64_t i = b; i < e; i++) {
        float diff = j->e[i] - j->p[i];
        j->e[i] = j->e[i] - j->one_minus_decay * diff;
    }
}

int cpu_ema(struct ldm_ctx *c, const struct ldm_train_dims *d, float *ema, const float *param)
{
    /* torch rounds the double 1 − decay to float; with a float decay this is 1 − decay */
    struct ema_job j = {.e = ema, .p = param,
                        .one_minus_decay = (float)(1.0 - (double)d->decay)};
    cpu_for(c, d->n, EMA_GRAIN, ema_range, &j);
    return 0;
}

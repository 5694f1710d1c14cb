/* conv.c — CPU conv2d forward and backward: im2col tiles and OpenBLAS sgemm.
 *
 * The column matrix col (C·R·S, T) holds T output pixels' input patches;
 * T is capped so that col fits COL_CAP_BYTES. Two layouts of the pixels:
 *  - large images: the pixels of one image cut into tiles of T, and the
 *    GEMMs read and write y[n], dy[n] in place (row stride P = Ho·Wo):
 *      forward   y[n][:, tile] = w (K, CRS) · col + b
 *      backward  dw += dy[n][:, tile] · colᵀ;  dcol = wᵀ · dy[n][:, tile]
 *  - small images (P below the cap): g images side by side, T = g·P, so
 *    that the GEMMs are wide enough; y and dy pass through a (K, T) buffer
 *    (scattered to / gathered from NCHW).
 * dcol reuses col's memory, then col2im adds it into dx. A 1×1 kernel with
 * stride 1 and no padding skips col: x[n] viewed as (C, H·W) is col.
 * im2col, col2im and the copies run on the pool; the GEMMs on every BLAS
 * thread. Workspace: col, plus the (K, T) buffer for small images.
 */
#include <string.h>

#include "nn/cpu/cpu.h"

#define COL_CAP_BYTES ((size_t)32 << 20)

static int is_pointwise(const struct ldm_conv2d_dims *d)
{
    return d->R == 1 && d->S == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_top == 0 &&
           d->pad_left == 0 && d->Ho == d->H && d->Wo == d->W;
}

/* How the pixels are tiled: T columns per tile; g images per tile (g > 1:
 * the small-image layout). */
struct tiling {
    int64_t T, g;
};

static struct tiling tiling_of(const struct ldm_conv2d_dims *d)
{
    int64_t P = d->Ho * d->Wo, crs = d->C * d->R * d->S;
    int64_t fit = (int64_t)(COL_CAP_BYTES / sizeof(float)) / crs;
    fit = fit < 64 ? 64 : fit;
    struct tiling t = {P < fit ? P : fit, 1};
    if (P < fit) {
        t.g = fit / P < d->N ? fit / P : d->N;
        t.g = t.g < 1 ? 1 : t.g;
        t.T = t.g * P;
    }
    return t;
}

size_t cpu_conv2d_workspace(const struct ldm_ctx *c, const struct ldm_conv2d_dims *d)
{
    (void)c;
    if (is_pointwise(d))
        return 0;
    struct tiling t = tiling_of(d);
    int64_t floats = d->C * d->R * d->S * t.T + (t.g > 1 ? d->K * t.T : 0);
    return (size_t)floats * sizeof(float);
}

/* The input column range [lo, hi) of output columns ow0..ow0+n-1 that land
 * inside the row (iw = ow·sw − pl + ks in 0..W−1), as offsets into the segment. */
static void valid_span(int64_t ow0, int64_t n, int64_t sw, int64_t off, int64_t W, int64_t *lo,
                       int64_t *hi)
{
    int64_t a = 0, b = n;
    while (a < b && (ow0 + a) * sw + off < 0)
        a++;
    while (b > a && (ow0 + b - 1) * sw + off >= W)
        b--;
    *lo = a;
    *hi = b;
}

/* One tile: images n0..n0+g-1, pixels p0..p0+np-1 of each (np = P when g > 1). */
struct conv_job {
    const struct ldm_conv2d_dims *d;
    float *col;      /* (CRS, T), row stride T */
    float *tmp;      /* small images: (K, T) */
    int64_t T;
    int grouped;     /* the small-image layout (through tmp) */
    int64_t n0, g, p0, np;
    const float *x, *w, *dy, *b; /* the whole batch */
    float *y, *dx, *dw, *db;
};

/* col rows (ch, kr, ks), columns of image i (task = i·C + ch). */
static void im2col_task(void *vj, int64_t t, int thread)
{
    (void)thread;
    struct conv_job *j = vj;
    const struct ldm_conv2d_dims *d = j->d;
    int64_t i = t / d->C, ch = t % d->C;
    const float *plane = j->x + ((j->n0 + i) * d->C + ch) * d->H * d->W;
    for (int64_t kr = 0; kr < d->R; kr++)
        for (int64_t ks = 0; ks < d->S; ks++) {
            float *dst = j->col + ((ch * d->R + kr) * d->S + ks) * j->T + i * j->np;
            for (int64_t p = j->p0, end = j->p0 + j->np; p < end;) {
                int64_t oh = p / d->Wo, ow = p % d->Wo;
                int64_t seg = d->Wo - ow < end - p ? d->Wo - ow : end - p;
                int64_t ih = oh * d->stride_h - d->pad_top + kr;
                float *o = dst + (p - j->p0);
                if (ih < 0 || ih >= d->H) {
                    memset(o, 0, (size_t)seg * sizeof(float));
                } else {
                    int64_t off = ks - d->pad_left, lo, hi;
                    valid_span(ow, seg, d->stride_w, off, d->W, &lo, &hi);
                    const float *row = plane + ih * d->W;
                    memset(o, 0, (size_t)lo * sizeof(float));
                    if (d->stride_w == 1)
                        memcpy(o + lo, row + ow + lo + off, (size_t)(hi - lo) * sizeof(float));
                    else
                        for (int64_t k = lo; k < hi; k++)
                            o[k] = row[(ow + k) * d->stride_w + off];
                    memset(o + hi, 0, (size_t)(seg - hi) * sizeof(float));
                }
                p += seg;
            }
        }
}

/* dx[n0 + i][ch] += the col rows (ch, kr, ks) of image i scattered back. */
static void col2im_task(void *vj, int64_t t, int thread)
{
    (void)thread;
    struct conv_job *j = vj;
    const struct ldm_conv2d_dims *d = j->d;
    int64_t i = t / d->C, ch = t % d->C;
    float *plane = j->dx + ((j->n0 + i) * d->C + ch) * d->H * d->W;
    for (int64_t kr = 0; kr < d->R; kr++)
        for (int64_t ks = 0; ks < d->S; ks++) {
            const float *src = j->col + ((ch * d->R + kr) * d->S + ks) * j->T + i * j->np;
            for (int64_t p = j->p0, end = j->p0 + j->np; p < end;) {
                int64_t oh = p / d->Wo, ow = p % d->Wo;
                int64_t seg = d->Wo - ow < end - p ? d->Wo - ow : end - p;
                int64_t ih = oh * d->stride_h - d->pad_top + kr;
                if (ih >= 0 && ih < d->H) {
                    int64_t off = ks - d->pad_left, lo, hi;
                    valid_span(ow, seg, d->stride_w, off, d->W, &lo, &hi);
                    float *row = plane + ih * d->W;
                    const float *s = src + (p - j->p0);
                    for (int64_t k = lo; k < hi; k++)
                        row[(ow + k) * d->stride_w + off] += s[k];
                }
                p += seg;
            }
        }
}

/* Small images: row (i, k) of tmp to y[n0 + i][k] (+ bias), or dy's row to tmp. */
static void scatter_task(void *vj, int64_t t, int thread)
{
    (void)thread;
    struct conv_job *j = vj;
    int64_t K = j->d->K, P = j->np, i = t / K, k = t % K;
    float *tr = j->tmp + k * j->T + i * P;
    if (j->y) {
        float *yr = j->y + ((j->n0 + i) * K + k) * P, bias = j->b ? j->b[k] : 0.0f;
        for (int64_t p = 0; p < P; p++)
            yr[p] = tr[p] + bias;
    } else {
        memcpy(tr, j->dy + ((j->n0 + i) * K + k) * P, (size_t)P * sizeof(float));
    }
}

/* y[n][k][:] = b[k] (task = n·K + k), before a GEMM adds into it. */
static void bias_task(void *vj, int64_t t, int thread)
{
    (void)thread;
    struct conv_job *j = vj;
    int64_t P = j->d->Ho * j->d->Wo;
    float *yr = j->y + t * P, v = j->b[t % j->d->K];
    for (int64_t p = 0; p < P; p++)
        yr[p] = v;
}

/* The tiles, in order: call fn(c, job) for each. */
typedef void (*tile_fn)(struct ldm_ctx *c, struct conv_job *j);

static void for_tiles(struct ldm_ctx *c, struct conv_job *j, tile_fn fn)
{
    const struct ldm_conv2d_dims *d = j->d;
    struct tiling t = tiling_of(d);
    int64_t P = d->Ho * d->Wo;
    j->T = t.T;
    j->grouped = t.g > 1;
    j->col = c->ws;
    j->tmp = (float *)c->ws + d->C * d->R * d->S * t.T;
    for (int64_t n0 = 0; n0 < d->N; n0 += t.g) {
        j->n0 = n0;
        j->g = d->N - n0 < t.g ? d->N - n0 : t.g;
        for (int64_t p0 = 0; p0 < P; p0 += t.T) {
            j->p0 = t.g > 1 ? 0 : p0;
            j->np = t.g > 1 ? P : (P - p0 < t.T ? P - p0 : t.T);
            fn(c, j);
            if (t.g > 1)
                break;
        }
    }
}

static void fwd_tile(struct ldm_ctx *c, struct conv_job *j)
{
    const struct ldm_conv2d_dims *d = j->d;
    int64_t crs = d->C * d->R * d->S, P = d->Ho * d->Wo;
    cpu_tasks(c, j->g * d->C, im2col_task, j);
    cpu_blas_all(c);
    if (j->grouped) { /* tmp (K, T) = w · col, then to y with the bias */
        cpu_sgemm(0, 0, d->K, j->g * P, crs, 1.0f, j->w, crs, j->col, j->T, 0.0f, j->tmp, j->T);
        cpu_tasks(c, j->g * d->K, scatter_task, j);
    } else { /* y[n][:, tile] (holding the bias, if any) += w · col */
        cpu_sgemm(0, 0, d->K, j->np, crs, 1.0f, j->w, crs, j->col, j->T, j->b ? 1.0f : 0.0f,
                  j->y + j->n0 * d->K * P + j->p0, P);
    }
}

int cpu_conv2d_fwd(struct ldm_ctx *c, const struct ldm_conv2d_dims *d, void *y, const void *x,
                   const void *w, const void *b)
{
    struct conv_job j = {.d = d, .x = x, .w = w, .y = y, .b = b};
    int64_t P = d->Ho * d->Wo;
    int pointwise = is_pointwise(d);
    if (b && (pointwise || tiling_of(d).g == 1))
        cpu_tasks(c, d->N * d->K, bias_task, &j);
    if (!pointwise) {
        for_tiles(c, &j, fwd_tile);
        return 0;
    }
    cpu_blas_all(c);
    for (int64_t n = 0; n < d->N; n++) /* y[n] (K, P) (+)= w (K, C) · x[n] (C, P) */
        cpu_sgemm(0, 0, d->K, P, d->C, 1.0f, w, d->C, j.x + n * d->C * P, P, b ? 1.0f : 0.0f,
                  j.y + n * d->K * P, P);
    return 0;
}

static void bwd_tile(struct ldm_ctx *c, struct conv_job *j)
{
    const struct ldm_conv2d_dims *d = j->d;
    int64_t crs = d->C * d->R * d->S, P = d->Ho * d->Wo, cols = j->g * j->np;
    const float *g = j->dy + j->n0 * d->K * P + j->p0;
    int64_t ldg = P;
    if (j->grouped) { /* dy of the g images side by side in tmp (K, T) */
        cpu_tasks(c, j->g * d->K, scatter_task, j);
        g = j->tmp;
        ldg = j->T;
    }
    if (j->dw) { /* dw (K, CRS) += dy · colᵀ */
        cpu_tasks(c, j->g * d->C, im2col_task, j);
        cpu_blas_all(c);
        cpu_sgemm(0, 1, d->K, crs, cols, 1.0f, g, ldg, j->col, j->T, 1.0f, j->dw, crs);
    }
    if (j->dx) { /* dcol (CRS, cols) = wᵀ · dy, then scattered into dx */
        cpu_blas_all(c);
        cpu_sgemm(1, 0, crs, cols, d->K, 1.0f, j->w, crs, g, ldg, 0.0f, j->col, j->T);
        cpu_tasks(c, j->g * d->C, col2im_task, j);
    }
}

/* db[k] += Σ over images and pixels of dy[n][k]. */
static void dbias_task(void *vj, int64_t k, int thread)
{
    (void)thread;
    struct conv_job *j = vj;
    int64_t K = j->d->K, P = j->d->Ho * j->d->Wo;
    double s = 0.0;
    for (int64_t n = 0; n < j->d->N; n++) {
        const float *r = j->dy + (n * K + k) * P;
        for (int64_t p = 0; p < P; p++)
            s += r[p];
    }
    j->db[k] += (float)s;
}

int cpu_conv2d_bwd(struct ldm_ctx *c, const struct ldm_conv2d_dims *d, void *dx, void *dw,
                   void *db, const void *dy, const void *x, const void *w)
{
    int64_t P = d->H * d->W;
    if (db) {
        struct conv_job bj = {.d = d, .dy = dy, .db = db};
        cpu_tasks(c, d->K, dbias_task, &bj);
    }
    struct conv_job j = {.d = d, .x = x, .w = w, .dy = dy, .dx = dx, .dw = dw};
    if (!is_pointwise(d)) {
        if (dx || dw)
            for_tiles(c, &j, bwd_tile);
        return 0;
    }
    cpu_blas_all(c);
    for (int64_t n = 0; n < d->N; n++) {
        const float *dyn = j.dy + n * d->K * P, *xn = j.x + n * d->C * P;
        if (dw) /* dw (K, C) += dy[n] (K, P) · x[n]ᵀ (P, C) */
            cpu_sgemm(0, 1, d->K, d->C, P, 1.0f, dyn, P, xn, P, 1.0f, dw, d->C);
        if (dx) /* dx[n] (C, P) += wᵀ (C, K) · dy[n] (K, P) */
            cpu_sgemm(1, 0, d->C, P, d->K, 1.0f, w, d->C, dyn, P, 1.0f, j.dx + n * d->C * P, P);
    }
    return 0;
}

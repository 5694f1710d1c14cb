/* ops_more.c — the op wrappers (part 2): resampling and pooling, moving
 * tensors around, embeddings, loss and optimizer. */
#include <math.h>
#include <string.h>

#include "err.h"
#include "nn/ops_check.h"

#define CK(e)                                                                                      \
    do {                                                                                           \
        int rc_ = (e);                                                                             \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

#define GO(k, d, entry)                                                                            \
    do {                                                                                           \
        int rc_ = opchk_go(&(k), &(d), (k).c->be->entry != NULL);                                  \
        if (rc_)                                                                                   \
            return rc_ > 0 ? 0 : rc_;                                                              \
    } while (0)

static int same_as(struct opchk *k, const struct ldm_tensor *t, const char *what,
                   const struct ldm_tensor *ref)
{
    return opchk_shape(k, t, what, ref->ndim, ref->shape);
}

/* ---- resampling and pooling ------------------------------------------------------------ */

/* Fill N, C, H, W from x (the input side) and Ho, Wo from y (the output side). */
static int resample_dims(struct opchk *k, struct ldm_resample_dims *d,
                         const struct ldm_tensor *x, const struct ldm_tensor *y)
{
    memset(d, 0, sizeof *d);
    CK(opchk_ndim(k, x, "x", 4, 4));
    CK(opchk_ndim(k, y, "y", 4, 4));
    d->N = x->shape[0], d->C = x->shape[1], d->H = x->shape[2], d->W = x->shape[3];
    d->Ho = y->shape[2], d->Wo = y->shape[3];
    CK(OPCHK_SHAPE(k, y, "y", d->N, d->C, d->Ho, d->Wo));
    d->dtype = opchk_compute(k);
    return 0;
}

static int pool_geometry(struct opchk *k, struct ldm_resample_dims *d,
                         const struct ldm_pool_opts *o)
{
    if (!o || o->kernel_h <= 0 || o->kernel_w <= 0)
        return opchk_fail(k, "options with a kernel size are required");
    d->kh = o->kernel_h, d->kw = o->kernel_w;
    d->sh = o->stride_h > 0 ? o->stride_h : o->kernel_h;
    d->sw = o->stride_w > 0 ? o->stride_w : o->kernel_w;
    d->ph = o->pad_h, d->pw = o->pad_w;
    if (d->ph < 0 || d->pw < 0 || 2 * d->ph > d->kh || 2 * d->pw > d->kw)
        return opchk_fail(k, "padding %dx%d must be at most half the kernel %dx%d", d->ph, d->pw,
                          d->kh, d->kw);
    d->count_include_pad = o->count_include_pad != 0;
    if (d->H + 2 * d->ph < d->kh || d->W + 2 * d->pw < d->kw)
        return opchk_fail(k, "kernel %dx%d larger than the padded input", d->kh, d->kw);
    int64_t ho = (d->H + 2 * d->ph - d->kh) / d->sh + 1;
    int64_t wo = (d->W + 2 * d->pw - d->kw) / d->sw + 1;
    if (ho != d->Ho || wo != d->Wo)
        return opchk_fail(k, "output is %lldx%lld, the pooling gives %lldx%lld",
                          (long long)d->Ho, (long long)d->Wo, (long long)ho, (long long)wo);
    return 0;
}

/* Which geometry rule an op checks its output size with. */
enum { GEO_UP2, GEO_POOL, GEO_ANY };

static int resample_fwd_check(struct opchk *k, struct ldm_resample_dims *d,
                              const struct ldm_tensor *y, const struct ldm_tensor *x, int geo,
                              const struct ldm_pool_opts *o)
{
    CK(opchk_float(k, x, "x", 0));
    CK(opchk_float(k, y, "y", 0));
    CK(resample_dims(k, d, x, y));
    if (geo == GEO_UP2 && (d->Ho != 2 * d->H || d->Wo != 2 * d->W))
        return opchk_fail(k, "output %lldx%lld is not twice %lldx%lld", (long long)d->Ho,
                          (long long)d->Wo, (long long)d->H, (long long)d->W);
    if (geo == GEO_POOL)
        CK(pool_geometry(k, d, o));
    if (geo == GEO_ANY && (d->Ho < 1 || d->Wo < 1 || d->H < 1 || d->W < 1))
        return opchk_fail(k, "empty input or output size");
    return 0;
}

int ldm_upsample_nearest2x_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                                   const struct ldm_tensor *x)
{
    struct opchk k;
    struct ldm_resample_dims d;
    CK(opchk_begin(&k, c, LDM_OP_UPSAMPLE_FWD));
    CK(resample_fwd_check(&k, &d, y, x, GEO_UP2, NULL));
    GO(k, d, upsample_fwd);
    return opchk_end(&k, c->be->upsample_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x)));
}

int ldm_avg_pool2d_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                           const struct ldm_tensor *x, const struct ldm_pool_opts *o)
{
    struct opchk k;
    struct ldm_resample_dims d;
    CK(opchk_begin(&k, c, LDM_OP_AVG_POOL_FWD));
    CK(resample_fwd_check(&k, &d, y, x, GEO_POOL, o));
    GO(k, d, avg_pool_fwd);
    return opchk_end(&k, c->be->avg_pool_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x)));
}

int ldm_max_pool2d_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                           const struct ldm_tensor *x, const struct ldm_pool_opts *o)
{
    struct opchk k;
    struct ldm_resample_dims d;
    CK(opchk_begin(&k, c, LDM_OP_MAX_POOL_FWD));
    CK(resample_fwd_check(&k, &d, y, x, GEO_POOL, o));
    GO(k, d, max_pool_fwd);
    return opchk_end(&k, c->be->max_pool_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x)));
}

int ldm_adaptive_avg_pool2d_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                                    const struct ldm_tensor *x)
{
    struct opchk k;
    struct ldm_resample_dims d;
    CK(opchk_begin(&k, c, LDM_OP_ADAPTIVE_POOL_FWD));
    CK(resample_fwd_check(&k, &d, y, x, GEO_ANY, NULL));
    GO(k, d, adaptive_pool_fwd);
    return opchk_end(&k, c->be->adaptive_pool_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x)));
}

int ldm_bilinear_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x,
                         int antialias)
{
    struct opchk k;
    struct ldm_resample_dims d;
    CK(opchk_begin(&k, c, LDM_OP_BILINEAR_FWD));
    CK(resample_fwd_check(&k, &d, y, x, GEO_ANY, NULL));
    d.antialias = antialias != 0;
    GO(k, d, bilinear_fwd);
    return opchk_end(&k, c->be->bilinear_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x)));
}

/* Backward: dx is the input side, dy the output side. dx NULL: nothing to do. */
static int resample_bwd_check(struct opchk *k, struct ldm_resample_dims *d,
                              const struct ldm_tensor *dx, const struct ldm_tensor *dy, int geo,
                              const struct ldm_pool_opts *o)
{
    CK(opchk_float(k, dy, "dy", 0));
    CK(opchk_float(k, dx, "dx", 0));
    return resample_fwd_check(k, d, dy, dx, geo, o);
}

int ldm_upsample_nearest2x_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                                    const struct ldm_tensor *dy)
{
    struct opchk k;
    struct ldm_resample_dims d;
    CK(opchk_begin(&k, c, LDM_OP_UPSAMPLE_BWD));
    CK(resample_bwd_check(&k, &d, dx, dy, GEO_UP2, NULL));
    GO(k, d, upsample_bwd);
    return opchk_end(&k, c->be->upsample_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dy)));
}

int ldm_avg_pool2d_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                            const struct ldm_tensor *dy, const struct ldm_pool_opts *o)
{
    struct opchk k;
    struct ldm_resample_dims d;
    CK(opchk_begin(&k, c, LDM_OP_AVG_POOL_BWD));
    CK(resample_bwd_check(&k, &d, dx, dy, GEO_POOL, o));
    GO(k, d, avg_pool_bwd);
    return opchk_end(&k, c->be->avg_pool_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dy)));
}

int ldm_max_pool2d_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                            const struct ldm_tensor *dy, const struct ldm_tensor *x,
                            const struct ldm_pool_opts *o)
{
    struct opchk k;
    struct ldm_resample_dims d;
    CK(opchk_begin(&k, c, LDM_OP_MAX_POOL_BWD));
    CK(resample_bwd_check(&k, &d, dx, dy, GEO_POOL, o));
    CK(opchk_float(&k, x, "x", 0));
    CK(same_as(&k, x, "x", dx));
    GO(k, d, max_pool_bwd);
    return opchk_end(
        &k, c->be->max_pool_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dy), opchk_data(&k, x)));
}

int ldm_adaptive_avg_pool2d_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                                     const struct ldm_tensor *dy)
{
    struct opchk k;
    struct ldm_resample_dims d;
    CK(opchk_begin(&k, c, LDM_OP_ADAPTIVE_POOL_BWD));
    CK(resample_bwd_check(&k, &d, dx, dy, GEO_ANY, NULL));
    GO(k, d, adaptive_pool_bwd);
    return opchk_end(&k, c->be->adaptive_pool_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dy)));
}

int ldm_bilinear_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                          const struct ldm_tensor *dy, int antialias)
{
    struct opchk k;
    struct ldm_resample_dims d;
    CK(opchk_begin(&k, c, LDM_OP_BILINEAR_BWD));
    CK(resample_bwd_check(&k, &d, dx, dy, GEO_ANY, NULL));
    d.antialias = antialias != 0;
    GO(k, d, bilinear_bwd);
    return opchk_end(&k, c->be->bilinear_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dy)));
}

/* ---- concat, transpose, add ---------------------------------------------------------------- */

#define MAX_PARTS 64

/* Check parts[0..n-1] against y (N, Ctot, *): fill d and the channel counts. */
static int concat_dims(struct opchk *k, struct ldm_layout_dims *d, int64_t *chans,
                       const struct ldm_tensor *y, const struct ldm_tensor *const *parts, int n)
{
    memset(d, 0, sizeof *d);
    if (n < 1 || n > MAX_PARTS)
        return opchk_fail(k, "%d parts (1..%d allowed)", n, MAX_PARTS);
    CK(opchk_ndim(k, y, "y", 2, LDM_TMAXDIM));
    int64_t shape[LDM_TMAXDIM], total = 0;
    memcpy(shape, y->shape, sizeof shape);
    for (int i = 0; i < n; i++) {
        const struct ldm_tensor *p = parts[i];
        if (!p)
            return opchk_fail(k, "part %d is NULL (a part not wanted is a descriptor with NULL "
                                 "data)", i);
        CK(opchk_float(k, p, "part", 0));
        if (p->ndim != y->ndim)
            return opchk_fail(k, "part %d has %d dimensions, y %d", i, p->ndim, y->ndim);
        shape[1] = p->shape[1];
        CK(opchk_shape(k, p, "part", y->ndim, shape));
        chans[i] = p->shape[1];
        total += p->shape[1];
    }
    if (total != y->shape[1])
        return opchk_fail(k, "parts have %lld channels in all, y %lld", (long long)total,
                          (long long)y->shape[1]);
    d->N = y->shape[0];
    d->Ctot = total;
    d->S = 1;
    for (int i = 2; i < y->ndim; i++)
        d->S *= y->shape[i];
    d->parts = chans;
    d->nparts = n;
    d->dtype = opchk_compute(k);
    return 0;
}

int ldm_concat_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                       const struct ldm_tensor *const *xs, int n)
{
    struct opchk k;
    struct ldm_layout_dims d;
    int64_t chans[MAX_PARTS];
    const void *ptrs[MAX_PARTS];
    CK(opchk_begin(&k, c, LDM_OP_CONCAT_FWD));
    CK(opchk_float(&k, y, "y", 0));
    CK(concat_dims(&k, &d, chans, y, xs, n));
    GO(k, d, concat_fwd);
    for (int i = 0; i < n; i++)
        ptrs[i] = opchk_data(&k, xs[i]);
    return opchk_end(&k, c->be->concat_fwd(c, &d, opchk_data(&k, y), ptrs));
}

int ldm_concat_backward(struct ldm_ctx *c, const struct ldm_tensor *const *dxs, int n,
                        const struct ldm_tensor *dy)
{
    struct opchk k;
    struct ldm_layout_dims d;
    int64_t chans[MAX_PARTS];
    void *ptrs[MAX_PARTS];
    CK(opchk_begin(&k, c, LDM_OP_CONCAT_BWD));
    CK(opchk_float(&k, dy, "dy", 0));
    /* a part whose gradient is not wanted comes with NULL data: the checks
     * run as while planning, which allows that */
    int planning = c->planning;
    c->planning = 1;
    int rc = concat_dims(&k, &d, chans, dy, dxs, n);
    c->planning = planning;
    CK(rc);
    GO(k, d, concat_bwd);
    for (int i = 0; i < n; i++)
        ptrs[i] = dxs[i]->data ? opchk_data(&k, dxs[i]) : NULL;
    return opchk_end(&k, c->be->concat_bwd(c, &d, ptrs, opchk_data(&k, dy)));
}

static int transpose_dims(struct opchk *k, struct ldm_layout_dims *d, const struct ldm_tensor *y,
                          const struct ldm_tensor *x)
{
    memset(d, 0, sizeof *d);
    CK(opchk_ndim(k, x, "x", 3, 3));
    d->N = x->shape[0], d->C = x->shape[1], d->S = x->shape[2];
    d->n = d->N * d->C * d->S;
    d->dtype = opchk_compute(k);
    return OPCHK_SHAPE(k, y, "y", d->N, d->S, d->C);
}

int ldm_transpose_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x)
{
    struct opchk k;
    struct ldm_layout_dims d;
    CK(opchk_begin(&k, c, LDM_OP_TRANSPOSE_FWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, y, "y", 0));
    CK(transpose_dims(&k, &d, y, x));
    GO(k, d, transpose_fwd);
    return opchk_end(&k, c->be->transpose_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x)));
}

int ldm_transpose_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                           const struct ldm_tensor *dy)
{
    struct opchk k;
    struct ldm_layout_dims d;
    CK(opchk_begin(&k, c, LDM_OP_TRANSPOSE_BWD));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, dx, "dx", 0));
    CK(transpose_dims(&k, &d, dy, dx));
    GO(k, d, transpose_bwd);
    return opchk_end(&k, c->be->transpose_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dy)));
}

int ldm_add_forward(struct ldm_ctx *c, const struct ldm_tensor *y, float alpha,
                    const struct ldm_tensor *a, float beta, const struct ldm_tensor *b)
{
    struct opchk k;
    CK(opchk_begin(&k, c, LDM_OP_ADD_FWD));
    CK(opchk_float(&k, a, "a", 0));
    CK(opchk_float(&k, b, "b", 1));
    CK(opchk_float(&k, y, "y", 0));
    CK(same_as(&k, b, "b", a));
    CK(same_as(&k, y, "y", a));
    struct ldm_layout_dims d = {.n = (int64_t)ldm_tensor_numel(a), .dtype = opchk_compute(&k)};
    GO(k, d, add_fwd);
    return opchk_end(&k, c->be->add_fwd(c, &d, opchk_data(&k, y), alpha, opchk_data(&k, a), beta,
                                        opchk_data(&k, b)));
}

int ldm_add_backward(struct ldm_ctx *c, const struct ldm_tensor *da, float alpha,
                     const struct ldm_tensor *db, float beta, const struct ldm_tensor *dy)
{
    struct opchk k;
    CK(opchk_begin(&k, c, LDM_OP_ADD_BWD));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, da, "da", 1));
    CK(opchk_float(&k, db, "db", 1));
    CK(same_as(&k, da, "da", dy));
    CK(same_as(&k, db, "db", dy));
    struct ldm_layout_dims d = {.n = (int64_t)ldm_tensor_numel(dy), .dtype = opchk_compute(&k)};
    GO(k, d, add_bwd);
    return opchk_end(&k, c->be->add_bwd(c, &d, opchk_data(&k, da), alpha, opchk_data(&k, db), beta,
                                        opchk_data(&k, dy)));
}

static int bcast_dims(struct opchk *k, struct ldm_layout_dims *d, const struct ldm_tensor *x,
                      const struct ldm_tensor *v)
{
    memset(d, 0, sizeof *d);
    CK(opchk_ndim(k, x, "x", 2, LDM_TMAXDIM));
    d->N = x->shape[0], d->C = x->shape[1], d->S = 1;
    for (int i = 2; i < x->ndim; i++)
        d->S *= x->shape[i];
    d->n = d->N * d->C * d->S;
    d->dtype = opchk_compute(k);
    return OPCHK_SHAPE(k, v, "v", d->N, d->C);
}

int ldm_add_bcast_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x,
                          const struct ldm_tensor *v)
{
    struct opchk k;
    struct ldm_layout_dims d;
    CK(opchk_begin(&k, c, LDM_OP_ADD_BCAST_FWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, v, "v", 0));
    CK(opchk_float(&k, y, "y", 0));
    CK(bcast_dims(&k, &d, x, v));
    CK(same_as(&k, y, "y", x));
    GO(k, d, add_bcast_fwd);
    return opchk_end(
        &k, c->be->add_bcast_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x), opchk_data(&k, v)));
}

int ldm_add_bcast_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                           const struct ldm_tensor *dv, const struct ldm_tensor *dy)
{
    struct opchk k;
    struct ldm_layout_dims d;
    CK(opchk_begin(&k, c, LDM_OP_ADD_BCAST_BWD));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, dx, "dx", 1));
    CK(opchk_float(&k, dv, "dv", 1));
    struct ldm_tensor vshape = ldm_tensor_view(NULL, dy->dtype, 2, dy->shape);
    CK(bcast_dims(&k, &d, dy, dv ? dv : &vshape));
    CK(same_as(&k, dx, "dx", dy));
    GO(k, d, add_bcast_bwd);
    return opchk_end(&k, c->be->add_bcast_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dv),
                                              opchk_data(&k, dy)));
}

/* ---- embeddings ---------------------------------------------------------------------------- */

int ldm_timestep_embedding(struct ldm_ctx *c, const struct ldm_tensor *y,
                           const struct ldm_tensor *t, const struct ldm_temb_opts *o)
{
    static const struct ldm_temb_opts none;
    struct opchk k;
    CK(opchk_begin(&k, c, LDM_OP_TEMB));
    if (!o)
        o = &none;
    CK(opchk_float(&k, y, "y", 0));
    CK(opchk_ndim(&k, y, "y", 2, 2));
    struct ldm_embed_dims d = {.M = y->shape[0], .D = y->shape[1], .dtype = opchk_compute(&k)};
    CK(opchk_f32(&k, t, "t", d.M));
    d.flip = o->flip_sin_to_cos != 0;
    d.shift = o->downscale_freq_shift;
    d.scale = o->scale != 0.0f ? o->scale : 1.0f;
    d.max_period = o->max_period != 0.0f ? o->max_period : 10000.0f;
    if (d.D >= 2 && (float)(d.D / 2) - d.shift == 0.0f)
        return opchk_fail(&k, "downscale_freq_shift equals half the width: division by zero");
    if (!(d.max_period > 0.0f))
        return opchk_fail(&k, "max_period must be > 0");
    GO(k, d, timestep_fwd);
    return opchk_end(&k, c->be->timestep_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, t)));
}

static int embed_dims(struct opchk *k, struct ldm_embed_dims *d, const struct ldm_tensor *ids,
                      const struct ldm_tensor *table)
{
    memset(d, 0, sizeof *d);
    if (!ids || (ids->dtype != LDM_DT_I32 && ids->dtype != LDM_DT_I64))
        return opchk_fail(k, "ids must be an I32 or I64 tensor");
    if (!k->c->planning && !ids->data && ldm_tensor_numel(ids) > 0)
        return opchk_fail(k, "ids has no data");
    CK(opchk_ndim(k, table, "table", 2, 2));
    if (ids->ndim >= LDM_TMAXDIM)
        return opchk_fail(k, "ids has too many dimensions");
    d->M = (int64_t)ldm_tensor_numel(ids);
    d->V = table->shape[0];
    d->D = table->shape[1];
    d->id_dtype = ids->dtype;
    d->dtype = opchk_compute(k);
    return 0;
}

/* y's shape: ids' shape then D. */
static int embed_out(struct opchk *k, const struct ldm_tensor *y, const char *what,
                     const struct ldm_tensor *ids, int64_t D)
{
    int64_t shape[LDM_TMAXDIM];
    for (int i = 0; i < ids->ndim; i++)
        shape[i] = ids->shape[i];
    shape[ids->ndim] = D;
    return opchk_shape(k, y, what, ids->ndim + 1, shape);
}

int ldm_embedding_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                          const struct ldm_tensor *ids, const struct ldm_tensor *table)
{
    struct opchk k;
    struct ldm_embed_dims d;
    CK(opchk_begin(&k, c, LDM_OP_EMBEDDING_FWD));
    CK(opchk_float(&k, table, "table", 0));
    CK(opchk_float(&k, y, "y", 0));
    CK(embed_dims(&k, &d, ids, table));
    CK(embed_out(&k, y, "y", ids, d.D));
    GO(k, d, embedding_fwd);
    return opchk_end(&k, c->be->embedding_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, ids),
                                              opchk_data(&k, table)));
}

int ldm_embedding_backward(struct ldm_ctx *c, const struct ldm_tensor *dtable,
                           const struct ldm_tensor *dy, const struct ldm_tensor *ids)
{
    struct opchk k;
    struct ldm_embed_dims d;
    CK(opchk_begin(&k, c, LDM_OP_EMBEDDING_BWD));
    CK(opchk_float(&k, dtable, "dtable", 0));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(embed_dims(&k, &d, ids, dtable));
    CK(embed_out(&k, dy, "dy", ids, d.D));
    GO(k, d, embedding_bwd);
    return opchk_end(&k, c->be->embedding_bwd(c, &d, opchk_data(&k, dtable), opchk_data(&k, dy),
                                              opchk_data(&k, ids)));
}

/* ---- loss and optimizer ---------------------------------------------------------------------- */

static int mse_dims(struct opchk *k, struct ldm_train_dims *d, const struct ldm_tensor *pred,
                    const struct ldm_tensor *target, const struct ldm_tensor *weights)
{
    memset(d, 0, sizeof *d);
    CK(opchk_float(k, pred, "pred", 0));
    CK(opchk_float(k, target, "target", 0));
    CK(opchk_ndim(k, pred, "pred", 1, LDM_TMAXDIM));
    CK(same_as(k, target, "target", pred));
    d->N = pred->shape[0];
    d->S = d->N ? (int64_t)ldm_tensor_numel(pred) / d->N : 0;
    if (d->N < 1 || d->S < 1)
        return opchk_fail(k, "pred is empty");
    if (weights)
        CK(opchk_f32(k, weights, "weights", d->N));
    d->weighted = weights != NULL;
    d->dtype = opchk_compute(k);
    return 0;
}

int ldm_mse_loss_forward(struct ldm_ctx *c, const struct ldm_tensor *loss,
                         const struct ldm_tensor *pred, const struct ldm_tensor *target,
                         const struct ldm_tensor *weights)
{
    struct opchk k;
    struct ldm_train_dims d;
    CK(opchk_begin(&k, c, LDM_OP_MSE_FWD));
    CK(mse_dims(&k, &d, pred, target, weights));
    CK(opchk_f32(&k, loss, "loss", 1));
    GO(k, d, mse_fwd);
    return opchk_end(&k, c->be->mse_fwd(c, &d, opchk_data(&k, loss), opchk_data(&k, pred),
                                        opchk_data(&k, target),
                                        weights ? opchk_data(&k, weights) : NULL));
}

int ldm_mse_loss_backward(struct ldm_ctx *c, const struct ldm_tensor *dpred,
                          const struct ldm_tensor *dtarget, float dloss,
                          const struct ldm_tensor *pred, const struct ldm_tensor *target,
                          const struct ldm_tensor *weights)
{
    struct opchk k;
    struct ldm_train_dims d;
    CK(opchk_begin(&k, c, LDM_OP_MSE_BWD));
    CK(mse_dims(&k, &d, pred, target, weights));
    CK(opchk_float(&k, dpred, "dpred", 1));
    CK(opchk_float(&k, dtarget, "dtarget", 1));
    CK(same_as(&k, dpred, "dpred", pred));
    CK(same_as(&k, dtarget, "dtarget", pred));
    if (!isfinite(dloss))
        return opchk_fail(&k, "dloss is not finite");
    GO(k, d, mse_bwd);
    if (!dpred && !dtarget)
        return 0;
    return opchk_end(&k, c->be->mse_bwd(c, &d, opchk_data(&k, dpred), opchk_data(&k, dtarget),
                                        dloss, opchk_data(&k, pred), opchk_data(&k, target),
                                        weights ? opchk_data(&k, weights) : NULL));
}

#define MAX_CLIP 4096

int ldm_clip_grad_norm(struct ldm_ctx *c, const struct ldm_tensor *grads, int n, float max_norm,
                       float *norm)
{
    struct opchk k;
    int64_t counts[MAX_CLIP];
    float *ptrs[MAX_CLIP];
    CK(opchk_begin(&k, c, LDM_OP_CLIP_NORM));
    if (n < 0 || n > MAX_CLIP)
        return opchk_fail(&k, "%d tensors (0..%d allowed; pass a whole arena as one)", n,
                          MAX_CLIP);
    if (!norm)
        return opchk_fail(&k, "norm is required");
    *norm = 0.0f;
    for (int i = 0; i < n; i++) {
        CK(opchk_float(&k, &grads[i], "grad", 0));
        if (grads[i].dtype != LDM_DT_F32)
            return opchk_fail(&k, "%s must be F32", ldm_tensor_label(&grads[i], "grad"));
        counts[i] = (int64_t)ldm_tensor_numel(&grads[i]);
        ptrs[i] = grads[i].data;
    }
    if (isnan(max_norm))
        return opchk_fail(&k, "max_norm is NaN");
    struct ldm_train_dims d = {.n = n, .counts = counts, .max_norm = max_norm,
                               .dtype = LDM_DT_F32};
    GO(k, d, clip_norm);
    return opchk_end(&k, c->be->clip_norm(c, &d, ptrs, norm));
}

int ldm_adamw_step(struct ldm_ctx *c, const struct ldm_tensor *param, const struct ldm_tensor *grad,
                   const struct ldm_tensor *m, const struct ldm_tensor *v,
                   const struct ldm_adamw_opts *o)
{
    struct opchk k;
    CK(opchk_begin(&k, c, LDM_OP_ADAMW));
    CK(opchk_float(&k, param, "param", 0));
    if (param->dtype != LDM_DT_F32)
        return opchk_fail(&k, "%s must be F32 (master weights)", ldm_tensor_label(param, "param"));
    CK(opchk_float(&k, grad, "grad", 0));
    CK(opchk_float(&k, m, "m", 0));
    CK(opchk_float(&k, v, "v", 0));
    CK(same_as(&k, grad, "grad", param));
    CK(same_as(&k, m, "m", param));
    CK(same_as(&k, v, "v", param));
    if (!o || o->step < 1)
        return opchk_fail(&k, "options with step >= 1 are required");
    if (!(o->lr >= 0.0) || !(o->beta1 >= 0.0 && o->beta1 < 1.0) ||
        !(o->beta2 >= 0.0 && o->beta2 < 1.0) || !(o->eps > 0.0) || !(o->weight_decay >= 0.0))
        return opchk_fail(&k, "bad hyperparameters (lr %g, betas %g %g, eps %g, wd %g)", o->lr,
                          o->beta1, o->beta2, o->eps, o->weight_decay);
    struct ldm_train_dims d = {.n = (int64_t)ldm_tensor_numel(param), .lr = o->lr,
                               .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps,
                               .weight_decay = o->weight_decay, .step = o->step,
                               .dtype = LDM_DT_F32};
    GO(k, d, adamw);
    return opchk_end(&k, c->be->adamw(c, &d, opchk_data(&k, param), opchk_data(&k, grad),
                                      opchk_data(&k, m), opchk_data(&k, v)));
}

/* ops.c — the op wrappers (part 1): matrix products, convolution, norms,
 * pointwise ops and attention. Each checks its tensors, fills the sizes and
 * dispatches to the context's backend (backend.h). */
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

/* Check the sizes with the backend (and record them while planning); leave
 * the op (returning 0) when planning. */
#define GO(k, d, entry)                                                                            \
    do {                                                                                           \
        int rc_ = opchk_go(&(k), &(d), (k).c->be->entry != NULL);                                  \
        if (rc_)                                                                                   \
            return rc_ > 0 ? 0 : rc_;                                                              \
    } while (0)

/* t (when given) must have ref's shape with the last dim replaced by `last`. */
static int like_last(struct opchk *k, const struct ldm_tensor *t, const char *what,
                     const struct ldm_tensor *ref, int64_t last)
{
    int64_t shape[LDM_TMAXDIM];
    int nd = ref->ndim > 0 ? ref->ndim : 1;
    for (int i = 0; i < ref->ndim; i++)
        shape[i] = ref->shape[i];
    shape[nd - 1] = last;
    return opchk_shape(k, t, what, nd, shape);
}

static int same_as(struct opchk *k, const struct ldm_tensor *t, const char *what,
                   const struct ldm_tensor *ref)
{
    return opchk_shape(k, t, what, ref->ndim, ref->shape);
}

/* ---- linear ------------------------------------------------------------------------ */

static int linear_dims(struct opchk *k, struct ldm_linear_dims *d, const struct ldm_tensor *x,
                       const struct ldm_tensor *w)
{
    CK(opchk_ndim(k, x, "x", 1, LDM_TMAXDIM));
    CK(opchk_ndim(k, w, "w", 2, 2));
    opchk_rows(x, &d->M, &d->Din);
    d->Dout = w->shape[0];
    if (w->shape[1] != d->Din)
        return opchk_fail(k, "%s has %lld inputs, x is %lld wide", ldm_tensor_label(w, "w"),
                          (long long)w->shape[1], (long long)d->Din);
    d->dtype = opchk_compute(k);
    CK(opchk_int(k, d->M, "rows"));
    CK(opchk_int(k, d->Din, "input width"));
    return opchk_int(k, d->Dout, "output width");
}

int ldm_linear_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x,
                       const struct ldm_tensor *w, const struct ldm_tensor *b)
{
    struct opchk k;
    struct ldm_linear_dims d;
    CK(opchk_begin(&k, c, LDM_OP_LINEAR_FWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, w, "w", 0));
    CK(opchk_float(&k, y, "y", 0));
    CK(opchk_float(&k, b, "b", 1));
    CK(linear_dims(&k, &d, x, w));
    CK(like_last(&k, y, "y", x, d.Dout));
    CK(OPCHK_SHAPE(&k, b, "b", d.Dout));
    GO(k, d, linear_fwd);
    return opchk_end(&k, c->be->linear_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x),
                                           opchk_data(&k, w), opchk_data(&k, b)));
}

int ldm_linear_backward(struct ldm_ctx *c, const struct ldm_tensor *dx, const struct ldm_tensor *dw,
                        const struct ldm_tensor *db, const struct ldm_tensor *dy,
                        const struct ldm_tensor *x, const struct ldm_tensor *w)
{
    struct opchk k;
    struct ldm_linear_dims d;
    CK(opchk_begin(&k, c, LDM_OP_LINEAR_BWD));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, w, "w", 0));
    CK(opchk_float(&k, dx, "dx", 1));
    CK(opchk_float(&k, dw, "dw", 1));
    CK(opchk_float(&k, db, "db", 1));
    CK(linear_dims(&k, &d, x, w));
    CK(like_last(&k, dy, "dy", x, d.Dout));
    CK(same_as(&k, dx, "dx", x));
    CK(same_as(&k, dw, "dw", w));
    CK(OPCHK_SHAPE(&k, db, "db", d.Dout));
    GO(k, d, linear_bwd);
    return opchk_end(&k, c->be->linear_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dw),
                                           opchk_data(&k, db), opchk_data(&k, dy),
                                           opchk_data(&k, x), opchk_data(&k, w)));
}

/* ---- bmm ---------------------------------------------------------------------------- */

static int bmm_dims(struct opchk *k, struct ldm_bmm_dims *d, const struct ldm_tensor *a,
                    const struct ldm_tensor *bm, const struct ldm_bmm_opts *o)
{
    CK(opchk_ndim(k, a, "a", 2, LDM_TMAXDIM));
    CK(opchk_ndim(k, bm, "b", 2, LDM_TMAXDIM));
    if (a->ndim != bm->ndim)
        return opchk_fail(k, "a has %d dimensions, b %d", a->ndim, bm->ndim);
    int nd = a->ndim;
    d->B = 1;
    for (int i = 0; i < nd - 2; i++) {
        if (a->shape[i] != bm->shape[i])
            return opchk_fail(k, "batch dimension %d: a has %lld, b %lld", i,
                              (long long)a->shape[i], (long long)bm->shape[i]);
        d->B *= a->shape[i];
    }
    d->trans_a = o ? o->trans_a != 0 : 0;
    d->trans_b = o ? o->trans_b != 0 : 0;
    d->alpha = o && o->alpha != 0.0f ? o->alpha : 1.0f;
    d->M = a->shape[nd - 2 + d->trans_a];
    d->K = a->shape[nd - 1 - d->trans_a];
    int64_t kb = bm->shape[nd - 2 + d->trans_b];
    d->N = bm->shape[nd - 1 - d->trans_b];
    if (kb != d->K)
        return opchk_fail(k, "inner sizes differ: op(a) is %lldx%lld, op(b) %lldx%lld",
                          (long long)d->M, (long long)d->K, (long long)kb, (long long)d->N);
    d->dtype = opchk_compute(k);
    CK(opchk_int(k, d->M * d->K, "a's matrix size"));
    CK(opchk_int(k, d->K * d->N, "b's matrix size"));
    return opchk_int(k, d->M * d->N, "y's matrix size");
}

/* The output shape of bmm: a's batch dims, then M, N. */
static int bmm_out(struct opchk *k, const struct ldm_tensor *y, const char *what,
                   const struct ldm_tensor *a, const struct ldm_bmm_dims *d)
{
    int64_t shape[LDM_TMAXDIM];
    for (int i = 0; i < a->ndim - 2; i++)
        shape[i] = a->shape[i];
    shape[a->ndim - 2] = d->M;
    shape[a->ndim - 1] = d->N;
    return opchk_shape(k, y, what, a->ndim, shape);
}

int ldm_bmm_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *a,
                    const struct ldm_tensor *bm, const struct ldm_bmm_opts *o)
{
    struct opchk k;
    struct ldm_bmm_dims d;
    CK(opchk_begin(&k, c, LDM_OP_BMM_FWD));
    CK(opchk_float(&k, a, "a", 0));
    CK(opchk_float(&k, bm, "b", 0));
    CK(opchk_float(&k, y, "y", 0));
    CK(bmm_dims(&k, &d, a, bm, o));
    CK(bmm_out(&k, y, "y", a, &d));
    GO(k, d, bmm_fwd);
    return opchk_end(
        &k, c->be->bmm_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, a), opchk_data(&k, bm)));
}

int ldm_bmm_backward(struct ldm_ctx *c, const struct ldm_tensor *da, const struct ldm_tensor *dbm,
                     const struct ldm_tensor *dy, const struct ldm_tensor *a,
                     const struct ldm_tensor *bm, const struct ldm_bmm_opts *o)
{
    struct opchk k;
    struct ldm_bmm_dims d;
    CK(opchk_begin(&k, c, LDM_OP_BMM_BWD));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, a, "a", 0));
    CK(opchk_float(&k, bm, "b", 0));
    CK(opchk_float(&k, da, "da", 1));
    CK(opchk_float(&k, dbm, "db", 1));
    CK(bmm_dims(&k, &d, a, bm, o));
    CK(bmm_out(&k, dy, "dy", a, &d));
    CK(same_as(&k, da, "da", a));
    CK(same_as(&k, dbm, "db", bm));
    GO(k, d, bmm_bwd);
    return opchk_end(&k, c->be->bmm_bwd(c, &d, opchk_data(&k, da), opchk_data(&k, dbm),
                                        opchk_data(&k, dy), opchk_data(&k, a), opchk_data(&k, bm)));
}

/* ---- conv2d -------------------------------------------------------------------------- */

static int conv_dims(struct opchk *k, struct ldm_conv2d_dims *d, const struct ldm_tensor *x,
                     const struct ldm_tensor *w, const struct ldm_conv2d_opts *o)
{
    static const struct ldm_conv2d_opts none;
    if (!o)
        o = &none;
    CK(opchk_ndim(k, x, "x", 4, 4));
    CK(opchk_ndim(k, w, "w", 4, 4));
    d->N = x->shape[0], d->C = x->shape[1], d->H = x->shape[2], d->W = x->shape[3];
    d->K = w->shape[0], d->R = w->shape[2], d->S = w->shape[3];
    if (w->shape[1] != d->C)
        return opchk_fail(k, "%s has %lld input channels, x has %lld", ldm_tensor_label(w, "w"),
                          (long long)w->shape[1], (long long)d->C);
    if (o->stride_h < 0 || o->stride_w < 0 || o->pad_top < 0 || o->pad_bottom < 0 ||
        o->pad_left < 0 || o->pad_right < 0)
        return opchk_fail(k, "negative stride or padding");
    d->stride_h = o->stride_h ? o->stride_h : 1;
    d->stride_w = o->stride_w ? o->stride_w : 1;
    d->pad_top = o->pad_top, d->pad_left = o->pad_left;
    int64_t hp = d->H + o->pad_top + o->pad_bottom, wp = d->W + o->pad_left + o->pad_right;
    if (d->R < 1 || d->S < 1 || hp < d->R || wp < d->S)
        return opchk_fail(k, "kernel %lldx%lld does not fit the padded input %lldx%lld",
                          (long long)d->R, (long long)d->S, (long long)hp, (long long)wp);
    d->Ho = (hp - d->R) / d->stride_h + 1;
    d->Wo = (wp - d->S) / d->stride_w + 1;
    d->dtype = opchk_compute(k);
    CK(opchk_int(k, d->C * d->R * d->S, "C·R·S"));
    CK(opchk_int(k, d->K, "output channels"));
    CK(opchk_int(k, d->H * d->W, "H·W"));
    return opchk_int(k, d->N * d->Ho * d->Wo, "N·Ho·Wo");
}

int ldm_conv2d_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x,
                       const struct ldm_tensor *w, const struct ldm_tensor *b,
                       const struct ldm_conv2d_opts *o)
{
    struct opchk k;
    struct ldm_conv2d_dims d;
    CK(opchk_begin(&k, c, LDM_OP_CONV2D_FWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, w, "w", 0));
    CK(opchk_float(&k, y, "y", 0));
    CK(opchk_float(&k, b, "b", 1));
    CK(conv_dims(&k, &d, x, w, o));
    CK(OPCHK_SHAPE(&k, y, "y", d.N, d.K, d.Ho, d.Wo));
    CK(OPCHK_SHAPE(&k, b, "b", d.K));
    GO(k, d, conv2d_fwd);
    return opchk_end(&k, c->be->conv2d_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x),
                                           opchk_data(&k, w), opchk_data(&k, b)));
}

int ldm_conv2d_backward(struct ldm_ctx *c, const struct ldm_tensor *dx, const struct ldm_tensor *dw,
                        const struct ldm_tensor *db, const struct ldm_tensor *dy,
                        const struct ldm_tensor *x, const struct ldm_tensor *w,
                        const struct ldm_conv2d_opts *o)
{
    struct opchk k;
    struct ldm_conv2d_dims d;
    CK(opchk_begin(&k, c, LDM_OP_CONV2D_BWD));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, w, "w", 0));
    CK(opchk_float(&k, dx, "dx", 1));
    CK(opchk_float(&k, dw, "dw", 1));
    CK(opchk_float(&k, db, "db", 1));
    CK(conv_dims(&k, &d, x, w, o));
    CK(OPCHK_SHAPE(&k, dy, "dy", d.N, d.K, d.Ho, d.Wo));
    CK(same_as(&k, dx, "dx", x));
    CK(same_as(&k, dw, "dw", w));
    CK(OPCHK_SHAPE(&k, db, "db", d.K));
    GO(k, d, conv2d_bwd);
    return opchk_end(&k, c->be->conv2d_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dw),
                                           opchk_data(&k, db), opchk_data(&k, dy),
                                           opchk_data(&k, x), opchk_data(&k, w)));
}

/* ---- group norm and layer norm ---------------------------------------------------------- */

static int affine_pair(struct opchk *k, const struct ldm_tensor *gamma,
                       const struct ldm_tensor *beta, int64_t C)
{
    if (!gamma != !beta)
        return opchk_fail(k, "gamma and beta: give both or neither");
    CK(opchk_float(k, gamma, "gamma", 1));
    CK(opchk_float(k, beta, "beta", 1));
    CK(OPCHK_SHAPE(k, gamma, "gamma", C));
    return OPCHK_SHAPE(k, beta, "beta", C);
}

static int gn_dims(struct opchk *k, struct ldm_norm_dims *d, const struct ldm_tensor *x,
                   const struct ldm_norm_opts *o)
{
    CK(opchk_ndim(k, x, "x", 2, LDM_TMAXDIM));
    if (!o)
        return opchk_fail(k, "options are required (groups, eps)");
    d->N = x->shape[0];
    d->C = x->shape[1];
    d->S = 1;
    for (int i = 2; i < x->ndim; i++)
        d->S *= x->shape[i];
    d->G = o->groups;
    if (d->G <= 0 || d->C % d->G)
        return opchk_fail(k, "%d groups do not divide %lld channels", o->groups,
                          (long long)d->C);
    if (!(o->eps >= 0.0f))
        return opchk_fail(k, "eps must be >= 0");
    d->eps = o->eps;
    d->silu = o->silu != 0;
    d->dtype = opchk_compute(k);
    return 0;
}

int ldm_group_norm_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                           const struct ldm_tensor *mean, const struct ldm_tensor *rstd,
                           const struct ldm_tensor *x, const struct ldm_tensor *gamma,
                           const struct ldm_tensor *beta, const struct ldm_norm_opts *o)
{
    struct opchk k;
    struct ldm_norm_dims d;
    CK(opchk_begin(&k, c, LDM_OP_GROUP_NORM_FWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, y, "y", 0));
    CK(gn_dims(&k, &d, x, o));
    CK(affine_pair(&k, gamma, beta, d.C));
    CK(same_as(&k, y, "y", x));
    CK(opchk_f32(&k, mean, "mean", d.N * d.G));
    CK(opchk_f32(&k, rstd, "rstd", d.N * d.G));
    d.affine = gamma != NULL;
    GO(k, d, group_norm_fwd);
    return opchk_end(&k, c->be->group_norm_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, mean),
                                               opchk_data(&k, rstd), opchk_data(&k, x),
                                               opchk_data(&k, gamma), opchk_data(&k, beta)));
}

int ldm_group_norm_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                            const struct ldm_tensor *dgamma, const struct ldm_tensor *dbeta,
                            const struct ldm_tensor *dy, const struct ldm_tensor *x,
                            const struct ldm_tensor *mean, const struct ldm_tensor *rstd,
                            const struct ldm_tensor *gamma, const struct ldm_tensor *beta,
                            const struct ldm_norm_opts *o)
{
    struct opchk k;
    struct ldm_norm_dims d;
    CK(opchk_begin(&k, c, LDM_OP_GROUP_NORM_BWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, dx, "dx", 1));
    CK(gn_dims(&k, &d, x, o));
    CK(affine_pair(&k, gamma, beta, d.C));
    CK(opchk_float(&k, dgamma, "dgamma", 1));
    CK(opchk_float(&k, dbeta, "dbeta", 1));
    if (!gamma && (dgamma || dbeta))
        return opchk_fail(&k, "dgamma/dbeta given without gamma and beta");
    CK(OPCHK_SHAPE(&k, dgamma, "dgamma", d.C));
    CK(OPCHK_SHAPE(&k, dbeta, "dbeta", d.C));
    CK(same_as(&k, dy, "dy", x));
    CK(same_as(&k, dx, "dx", x));
    CK(opchk_f32(&k, mean, "mean", d.N * d.G));
    CK(opchk_f32(&k, rstd, "rstd", d.N * d.G));
    d.affine = gamma != NULL;
    GO(k, d, group_norm_bwd);
    return opchk_end(&k, c->be->group_norm_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dgamma),
                                               opchk_data(&k, dbeta), opchk_data(&k, dy),
                                               opchk_data(&k, x), opchk_data(&k, mean),
                                               opchk_data(&k, rstd), opchk_data(&k, gamma),
                                               opchk_data(&k, beta)));
}

static int ln_dims(struct opchk *k, struct ldm_norm_dims *d, const struct ldm_tensor *x, float eps)
{
    CK(opchk_ndim(k, x, "x", 1, LDM_TMAXDIM));
    opchk_rows(x, &d->N, &d->C);
    d->S = 1;
    d->G = 1;
    if (!(eps >= 0.0f))
        return opchk_fail(k, "eps must be >= 0");
    d->eps = eps;
    d->silu = 0;
    d->dtype = opchk_compute(k);
    return 0;
}

int ldm_layer_norm_forward(struct ldm_ctx *c, const struct ldm_tensor *y,
                           const struct ldm_tensor *mean, const struct ldm_tensor *rstd,
                           const struct ldm_tensor *x, const struct ldm_tensor *gamma,
                           const struct ldm_tensor *beta, const struct ldm_norm_opts *o)
{
    struct opchk k;
    struct ldm_norm_dims d;
    CK(opchk_begin(&k, c, LDM_OP_LAYER_NORM_FWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, y, "y", 0));
    CK(ln_dims(&k, &d, x, o ? o->eps : 1e-5f));
    CK(affine_pair(&k, gamma, beta, d.C));
    CK(same_as(&k, y, "y", x));
    CK(opchk_f32(&k, mean, "mean", d.N));
    CK(opchk_f32(&k, rstd, "rstd", d.N));
    d.affine = gamma != NULL;
    GO(k, d, layer_norm_fwd);
    return opchk_end(&k, c->be->layer_norm_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, mean),
                                               opchk_data(&k, rstd), opchk_data(&k, x),
                                               opchk_data(&k, gamma), opchk_data(&k, beta)));
}

int ldm_layer_norm_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                            const struct ldm_tensor *dgamma, const struct ldm_tensor *dbeta,
                            const struct ldm_tensor *dy, const struct ldm_tensor *x,
                            const struct ldm_tensor *mean, const struct ldm_tensor *rstd,
                            const struct ldm_tensor *gamma)
{
    struct opchk k;
    struct ldm_norm_dims d;
    CK(opchk_begin(&k, c, LDM_OP_LAYER_NORM_BWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, dx, "dx", 1));
    CK(opchk_float(&k, gamma, "gamma", 1));
    CK(opchk_float(&k, dgamma, "dgamma", 1));
    CK(opchk_float(&k, dbeta, "dbeta", 1));
    CK(ln_dims(&k, &d, x, 0.0f));
    if (!gamma && (dgamma || dbeta))
        return opchk_fail(&k, "dgamma/dbeta given without gamma");
    CK(OPCHK_SHAPE(&k, gamma, "gamma", d.C));
    CK(OPCHK_SHAPE(&k, dgamma, "dgamma", d.C));
    CK(OPCHK_SHAPE(&k, dbeta, "dbeta", d.C));
    CK(same_as(&k, dy, "dy", x));
    CK(same_as(&k, dx, "dx", x));
    CK(opchk_f32(&k, mean, "mean", d.N));
    CK(opchk_f32(&k, rstd, "rstd", d.N));
    d.affine = gamma != NULL;
    GO(k, d, layer_norm_bwd);
    return opchk_end(&k, c->be->layer_norm_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dgamma),
                                               opchk_data(&k, dbeta), opchk_data(&k, dy),
                                               opchk_data(&k, x), opchk_data(&k, mean),
                                               opchk_data(&k, rstd), opchk_data(&k, gamma)));
}

/* ---- pointwise ------------------------------------------------------------------------- */

int ldm_act_forward(struct ldm_ctx *c, int act, const struct ldm_tensor *y,
                    const struct ldm_tensor *x)
{
    struct opchk k;
    CK(opchk_begin(&k, c, LDM_OP_ACT_FWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, y, "y", 0));
    if (act < 0 || act >= LDM_ACT_COUNT)
        return opchk_fail(&k, "unknown activation %d", act);
    CK(same_as(&k, y, "y", x));
    struct ldm_pointwise_dims d = {.n = (int64_t)ldm_tensor_numel(x), .act = act,
                                   .dtype = opchk_compute(&k)};
    GO(k, d, act_fwd);
    return opchk_end(&k, c->be->act_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x)));
}

int ldm_act_backward(struct ldm_ctx *c, int act, const struct ldm_tensor *dx,
                     const struct ldm_tensor *dy, const struct ldm_tensor *x)
{
    struct opchk k;
    CK(opchk_begin(&k, c, LDM_OP_ACT_BWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, dx, "dx", 1));
    if (act < 0 || act >= LDM_ACT_COUNT)
        return opchk_fail(&k, "unknown activation %d", act);
    CK(same_as(&k, dy, "dy", x));
    CK(same_as(&k, dx, "dx", x));
    struct ldm_pointwise_dims d = {.n = (int64_t)ldm_tensor_numel(x), .act = act,
                                   .dtype = opchk_compute(&k)};
    GO(k, d, act_bwd);
    return dx ? opchk_end(&k, c->be->act_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dy),
                                             opchk_data(&k, x)))
              : 0;
}

static int geglu_dims(struct opchk *k, struct ldm_pointwise_dims *d, const struct ldm_tensor *h)
{
    CK(opchk_ndim(k, h, "h", 1, LDM_TMAXDIM));
    int64_t w;
    opchk_rows(h, &d->M, &w);
    if (w % 2)
        return opchk_fail(k, "h's last dim (%lld) is odd: it must hold two halves", (long long)w);
    d->D = w / 2;
    d->n = d->M * d->D;
    d->act = LDM_ACT_GELU;
    d->dtype = opchk_compute(k);
    return 0;
}

int ldm_geglu_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *h)
{
    struct opchk k;
    struct ldm_pointwise_dims d;
    CK(opchk_begin(&k, c, LDM_OP_GEGLU_FWD));
    CK(opchk_float(&k, h, "h", 0));
    CK(opchk_float(&k, y, "y", 0));
    CK(geglu_dims(&k, &d, h));
    CK(like_last(&k, y, "y", h, d.D));
    GO(k, d, geglu_fwd);
    return opchk_end(&k, c->be->geglu_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, h)));
}

int ldm_geglu_backward(struct ldm_ctx *c, const struct ldm_tensor *dh, const struct ldm_tensor *dy,
                       const struct ldm_tensor *h)
{
    struct opchk k;
    struct ldm_pointwise_dims d;
    CK(opchk_begin(&k, c, LDM_OP_GEGLU_BWD));
    CK(opchk_float(&k, h, "h", 0));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, dh, "dh", 1));
    CK(geglu_dims(&k, &d, h));
    CK(like_last(&k, dy, "dy", h, d.D));
    CK(same_as(&k, dh, "dh", h));
    GO(k, d, geglu_bwd);
    return dh ? opchk_end(&k, c->be->geglu_bwd(c, &d, opchk_data(&k, dh), opchk_data(&k, dy),
                                               opchk_data(&k, h)))
              : 0;
}

int ldm_softmax_forward(struct ldm_ctx *c, const struct ldm_tensor *y, const struct ldm_tensor *x)
{
    struct opchk k;
    CK(opchk_begin(&k, c, LDM_OP_SOFTMAX_FWD));
    CK(opchk_float(&k, x, "x", 0));
    CK(opchk_float(&k, y, "y", 0));
    CK(opchk_ndim(&k, x, "x", 1, LDM_TMAXDIM));
    CK(same_as(&k, y, "y", x));
    struct ldm_pointwise_dims d = {.dtype = opchk_compute(&k)};
    opchk_rows(x, &d.M, &d.D);
    d.n = d.M * d.D;
    GO(k, d, softmax_fwd);
    return opchk_end(&k, c->be->softmax_fwd(c, &d, opchk_data(&k, y), opchk_data(&k, x)));
}

int ldm_softmax_backward(struct ldm_ctx *c, const struct ldm_tensor *dx,
                         const struct ldm_tensor *dy, const struct ldm_tensor *y)
{
    struct opchk k;
    CK(opchk_begin(&k, c, LDM_OP_SOFTMAX_BWD));
    CK(opchk_float(&k, y, "y", 0));
    CK(opchk_float(&k, dy, "dy", 0));
    CK(opchk_float(&k, dx, "dx", 1));
    CK(opchk_ndim(&k, y, "y", 1, LDM_TMAXDIM));
    CK(same_as(&k, dy, "dy", y));
    CK(same_as(&k, dx, "dx", y));
    struct ldm_pointwise_dims d = {.dtype = opchk_compute(&k)};
    opchk_rows(y, &d.M, &d.D);
    d.n = d.M * d.D;
    GO(k, d, softmax_bwd);
    return dx ? opchk_end(&k, c->be->softmax_bwd(c, &d, opchk_data(&k, dx), opchk_data(&k, dy),
                                                 opchk_data(&k, y)))
              : 0;
}

/* ---- attention ---------------------------------------------------------------------------- */

static int attn_dims(struct opchk *k, struct ldm_attn_dims *d, const struct ldm_tensor *q,
                     const struct ldm_tensor *kk, const struct ldm_tensor *v,
                     const struct ldm_attn_opts *o)
{
    CK(opchk_ndim(k, q, "q", 3, 3));
    CK(opchk_ndim(k, kk, "k", 3, 3));
    CK(opchk_ndim(k, v, "v", 3, 3));
    if (!o || o->heads <= 0)
        return opchk_fail(k, "options with heads > 0 are required");
    d->N = q->shape[0], d->Lq = q->shape[1], d->Lk = kk->shape[1], d->H = o->heads;
    if (q->shape[2] % d->H || v->shape[2] % d->H || q->shape[2] == 0 || v->shape[2] == 0)
        return opchk_fail(k, "%d heads do not divide q's width %lld and v's %lld", o->heads,
                          (long long)q->shape[2], (long long)v->shape[2]);
    d->Dh = q->shape[2] / d->H;
    d->Dv = v->shape[2] / d->H;
    CK(OPCHK_SHAPE(k, kk, "k", d->N, d->Lk, d->H * d->Dh));
    CK(OPCHK_SHAPE(k, v, "v", d->N, d->Lk, d->H * d->Dv));
    if (!isfinite(o->scale))
        return opchk_fail(k, "scale is not finite");
    d->scale = o->scale != 0.0f ? o->scale : (float)(1.0 / sqrt((double)d->Dh));
    d->causal = o->causal != 0;
    d->upcast = o->upcast != 0;
    d->masked = o->key_mask != NULL;
    d->dtype = opchk_compute(k);
    CK(opchk_int(k, d->H * (d->Dh > d->Dv ? d->Dh : d->Dv), "row width"));
    if (o->key_mask) {
        const struct ldm_tensor *m = o->key_mask;
        if (m->dtype != LDM_DT_U8 && m->dtype != LDM_DT_BOOL)
            return opchk_fail(k, "key_mask must be U8");
        if (!k->c->planning && !m->data && d->N * d->Lk > 0)
            return opchk_fail(k, "key_mask has no data");
        CK(OPCHK_SHAPE(k, m, "key_mask", d->N, d->Lk));
    }
    return 0;
}

int ldm_attention_forward(struct ldm_ctx *c, const struct ldm_tensor *out,
                          const struct ldm_tensor *lse, const struct ldm_tensor *q,
                          const struct ldm_tensor *k_, const struct ldm_tensor *v,
                          const struct ldm_attn_opts *o)
{
    struct opchk k;
    struct ldm_attn_dims d;
    CK(opchk_begin(&k, c, LDM_OP_ATTN_FWD));
    CK(opchk_float(&k, q, "q", 0));
    CK(opchk_float(&k, k_, "k", 0));
    CK(opchk_float(&k, v, "v", 0));
    CK(opchk_float(&k, out, "out", 0));
    CK(attn_dims(&k, &d, q, k_, v, o));
    CK(OPCHK_SHAPE(&k, out, "out", d.N, d.Lq, d.H * d.Dv));
    CK(opchk_f32(&k, lse, "lse", d.N * d.H * d.Lq));
    GO(k, d, attn_fwd);
    return opchk_end(&k, c->be->attn_fwd(c, &d, opchk_data(&k, out), opchk_data(&k, lse),
                                         opchk_data(&k, q), opchk_data(&k, k_), opchk_data(&k, v),
                                         opchk_data(&k, o->key_mask)));
}

int ldm_attention_backward(struct ldm_ctx *c, const struct ldm_tensor *dq,
                           const struct ldm_tensor *dk, const struct ldm_tensor *dv,
                           const struct ldm_tensor *dout, const struct ldm_tensor *q,
                           const struct ldm_tensor *k_, const struct ldm_tensor *v,
                           const struct ldm_tensor *out, const struct ldm_tensor *lse,
                           const struct ldm_attn_opts *o)
{
    struct opchk k;
    struct ldm_attn_dims d;
    CK(opchk_begin(&k, c, LDM_OP_ATTN_BWD));
    CK(opchk_float(&k, q, "q", 0));
    CK(opchk_float(&k, k_, "k", 0));
    CK(opchk_float(&k, v, "v", 0));
    CK(opchk_float(&k, out, "out", 0));
    CK(opchk_float(&k, dout, "dout", 0));
    CK(opchk_float(&k, dq, "dq", 1));
    CK(opchk_float(&k, dk, "dk", 1));
    CK(opchk_float(&k, dv, "dv", 1));
    CK(attn_dims(&k, &d, q, k_, v, o));
    CK(OPCHK_SHAPE(&k, out, "out", d.N, d.Lq, d.H * d.Dv));
    CK(same_as(&k, dout, "dout", out));
    CK(same_as(&k, dq, "dq", q));
    CK(same_as(&k, dk, "dk", k_));
    CK(same_as(&k, dv, "dv", v));
    CK(opchk_f32(&k, lse, "lse", d.N * d.H * d.Lq));
    GO(k, d, attn_bwd);
    if (!dq && !dk && !dv)
        return 0;
    return opchk_end(&k,
                     c->be->attn_bwd(c, &d, opchk_data(&k, dq), opchk_data(&k, dk),
                                     opchk_data(&k, dv), opchk_data(&k, dout), opchk_data(&k, q),
                                     opchk_data(&k, k_), opchk_data(&k, v), opchk_data(&k, out),
                                     opchk_data(&k, lse), opchk_data(&k, o->key_mask)));
}

/* unet_graph.c — the UNet's parameter table, activation layout and recorded op list:
 * building them during a walk, and replaying the list forward and backward. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "models/unet_int.h"

static size_t round_up(size_t n)
{
    return (n + LDM_ARENA_ALIGN - 1) / LDM_ARENA_ALIGN * LDM_ARENA_ALIGN;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return ldm_fail(LDM_ENOMEM, "unet: out of memory growing a table to %zu entries", n);
    *p = q;
    *cap = n;
    return 0;
}

static int declare(struct ug *g, const char *name, int ndim, const int64_t *shape)
{
    struct ldm_unet *u = g->u;
    int rc = grow((void **)&u->params, &u->cap_params, u->nparams + 1, sizeof *u->params);
    if (rc)
        return rc;
    struct ldm_tensor *t = &u->params[u->nparams];
    memset(t, 0, sizeof *t);
    rc = ldm_tensor_set(t, NULL, LDM_DT_F32, ndim, shape);
    if (rc)
        return rc;
    t->name = strdup(name);
    if (!t->name)
        return ldm_fail(LDM_ENOMEM, "unet: out of memory naming %s", name);
    u->nparams++;
    return 0;
}

static int add_buf(struct ldm_unet *u, size_t off, size_t bytes)
{
    int rc = grow((void **)&u->bufs, &u->cap_bufs, u->nbufs + 1, sizeof *u->bufs);
    if (!rc)
        u->bufs[u->nbufs++] = (struct ug_buf){.off = off, .bytes = bytes};
    return rc;
}

/* The parameter `prefix.leaf` of this shape: appended to the table (DECLARE) or the
 * table's next entry, which must carry that name. */
struct ldm_tensor ug_param(struct ug *g, const char *prefix, const char *leaf, int ndim,
                           const int64_t *shape)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", leaf);
    struct ldm_tensor bad = ldm_tensor_view(NULL, LDM_DT_F32, ndim, shape);
    if (g->err)
        return bad;
    if (g->mode == UG_DECLARE) {
        g->err = declare(g, name, ndim, shape);
        return bad;
    }
    if (g->cursor >= g->u->nparams || strcmp(g->u->params[g->cursor].name, name) != 0) {
        g->err = ldm_fail(LDM_EINVAL, "unet: parameter %s not in the table at %zu", name,
                          g->cursor);
        return bad;
    }
    return g->u->params[g->cursor++];
}

/* A new activation of this shape in the activation arena. */
struct ldm_tensor ug_act(struct ug *g, int ndim, const int64_t *shape)
{
    struct ldm_tensor t = ldm_tensor_view(NULL, LDM_DT_F32, ndim, shape);
    if (g->mode == UG_DECLARE)
        return t;
    size_t off = g->abytes;
    g->abytes += round_up(ldm_tensor_nbytes(&t));
    if (g->mode == UG_RECORD && !g->err) {
        if (g->abytes > g->u->aa.bytes)
            g->err = ldm_fail(LDM_EINVAL, "unet: activations outgrew their arena (%zu > %zu)",
                              g->abytes, g->u->aa.bytes);
        else
            t.data = (char *)g->u->aa.base + off;
        if (!g->err && g->abytes > off)
            g->err = add_buf(g->u, off, g->abytes - off);
    }
    return t;
}

/* The same memory under another shape of as many elements. */
struct ldm_tensor ug_view(struct ldm_tensor x, int ndim, const int64_t *shape)
{
    return ldm_tensor_view(x.data, x.dtype, ndim, shape);
}

/* A new op in the list (RECORD), or a scratch node the caller fills in vain. */
struct ug_node *ug_node(struct ug *g, int op)
{
    struct ldm_unet *u = g->u;
    struct ug_node *n = &g->scratch;
    if (g->mode == UG_RECORD && !g->err) {
        g->err = grow((void **)&u->nodes, &u->cap_nodes, u->nnodes + 1, sizeof *u->nodes);
        if (!g->err)
            n = &u->nodes[u->nnodes++];
    }
    memset(n, 0, sizeof *n);
    n->op = op;
    return n;
}

/* ---- replay ---------------------------------------------------------------------- */

static const struct ldm_tensor *opt(const struct ldm_tensor *t)
{
    return t->ndim == 0 && t->data == NULL ? NULL : t;
}

static int fwd(struct ldm_ctx *c, struct ug_node *n)
{
    struct ldm_tensor *t = n->t;
    switch (n->op) {
    case UG_CONV: return ldm_conv2d_forward(c, &t[0], &t[1], &t[2], opt(&t[3]), &n->o.conv);
    case UG_LINEAR: return ldm_linear_forward(c, &t[0], &t[1], &t[2], opt(&t[3]));
    case UG_GN:
        return ldm_group_norm_forward(c, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &n->o.norm);
    case UG_LN:
        return ldm_layer_norm_forward(c, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &n->o.norm);
    case UG_ACT: return ldm_act_forward(c, n->o.act, &t[0], &t[1]);
    case UG_GEGLU: return ldm_geglu_forward(c, &t[0], &t[1]);
    case UG_ATTN: return ldm_attention_forward(c, &t[0], &t[1], &t[2], &t[3], &t[4], &n->o.attn);
    case UG_UP2X: return ldm_upsample_nearest2x_forward(c, &t[0], &t[1]);
    case UG_CAT: {
        const struct ldm_tensor *xs[2] = {&t[1], &t[2]};
        return ldm_concat_forward(c, &t[0], xs, 2);
    }
    case UG_TRANS: return ldm_transpose_forward(c, &t[0], &t[1]);
    case UG_ADD: return ldm_add_forward(c, &t[0], 1.0f, &t[1], 1.0f, &t[2]);
    case UG_BCAST: return ldm_add_bcast_forward(c, &t[0], &t[1], &t[2]);
    case UG_TEMB: return ldm_timestep_embedding(c, &t[0], &t[1], &n->o.temb);
    }
    return ldm_fail(LDM_EINVAL, "unet: unknown op %d", n->op);
}

static int bwd(const struct ldm_unet *u, struct ug_node *n)
{
    struct ldm_ctx *c = u->ctx;
    struct ldm_tensor *t = n->t, gs[UG_SLOTS];
    const struct ldm_tensor *d[UG_SLOTS];
    for (int i = 0; i < UG_SLOTS; i++)
        d[i] = opt(&t[i]) ? ug_grad_of(u, &t[i], &gs[i]) : NULL;
    if (!d[0])
        return 0; /* nothing flows back through this op */
    switch (n->op) {
    case UG_CONV: return ldm_conv2d_backward(c, d[1], d[2], d[3], d[0], &t[1], &t[2], &n->o.conv);
    case UG_LINEAR: return ldm_linear_backward(c, d[1], d[2], d[3], d[0], &t[1], &t[2]);
    case UG_GN:
        return ldm_group_norm_backward(c, d[3], d[4], d[5], d[0], &t[3], &t[1], &t[2], &t[4],
                                       &t[5], &n->o.norm);
    case UG_LN:
        return ldm_layer_norm_backward(c, d[3], d[4], d[5], d[0], &t[3], &t[1], &t[2], &t[4]);
    case UG_ACT: return ldm_act_backward(c, n->o.act, d[1], d[0], &t[1]);
    case UG_GEGLU: return ldm_geglu_backward(c, d[1], d[0], &t[1]);
    case UG_ATTN:
        return ldm_attention_backward(c, d[2], d[3], d[4], d[0], &t[2], &t[3], &t[4], &t[0],
                                      &t[1], &n->o.attn);
    case UG_UP2X: return ldm_upsample_nearest2x_backward(c, d[1], d[0]);
    case UG_CAT: {
        struct ldm_tensor none[2] = {t[1], t[2]}; /* a part with no gradient: NULL data */
        none[0].data = none[1].data = NULL;
        const struct ldm_tensor *parts[2] = {d[1] ? d[1] : &none[0], d[2] ? d[2] : &none[1]};
        return ldm_concat_backward(c, parts, 2, d[0]);
    }
    case UG_TRANS: return ldm_transpose_backward(c, d[1], d[0]);
    case UG_ADD: return ldm_add_backward(c, d[1], 1.0f, d[2], 1.0f, d[0]);
    case UG_BCAST: return ldm_add_bcast_backward(c, d[1], d[2], d[0]);
    case UG_TEMB: return 0;
    }
    return ldm_fail(LDM_EINVAL, "unet: unknown op %d", n->op);
}

/* Run the recorded ops in order. */
int ug_run_forward(struct ldm_unet *u)
{
    for (size_t i = 0; i < u->nnodes; i++) {
        int rc = fwd(u->ctx, &u->nodes[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* The loss's backward (scaled by dloss), then the ops' backwards in reverse order,
 * each activation gradient zeroed just before it first receives. Parameter gradients
 * are added to (the caller zeroes them). */
int ug_run_backward(struct ldm_unet *u, float dloss)
{
    size_t cursor = 0;
    struct ldm_tensor dout;
    int rc = ug_grad_zero(u, u->nnodes, &cursor);
    if (!rc)
        rc = ldm_mse_loss_backward(u->ctx, ug_grad_of(u, &u->out, &dout), NULL, dloss, &u->out,
                                   &u->target, u->weighted ? &u->weights : NULL);
    size_t told = u->ga.bytes;
    for (size_t i = u->nnodes; !rc && i-- > 0;) {
        rc = ug_grad_zero(u, i, &cursor);
        if (!rc)
            rc = bwd(u, &u->nodes[i]);
        if (!rc && u->hook && !u->ctx->planning && u->ready[i] < told)
            u->hook(u->hook_arg, told = u->ready[i]);
    }
    if (!rc && u->hook && !u->ctx->planning && told > 0)
        u->hook(u->hook_arg, 0);
    return rc;
}

/* The parameter index of a tensor that lies in the parameter arena, or -1. */
static long param_of(const struct ldm_unet *u, const struct ldm_tensor *t)
{
    const char *p = t->data, *b = u->pa.base;
    if (!p || !b || p < b || p >= b + u->pa.bytes)
        return -1;
    size_t lo = 0, hi = u->nparams;
    while (hi - lo > 1) { /* the table is in arena order */
        size_t mid = (lo + hi) / 2;
        if ((const char *)u->params[mid].data <= p)
            lo = mid;
        else
            hi = mid;
    }
    return (long)lo;
}

/* For each node i, the byte offset from which every parameter gradient is final once
 * the backward has run nodes nnodes−1 .. i: a parameter is final after the backward
 * of the first node (in forward order) that reads it. */
int ug_ready_plan(struct ldm_unet *u)
{
    size_t n = u->nparams, *first = malloc((n ? n : 1) * sizeof *first);
    u->ready = malloc((u->nnodes ? u->nnodes : 1) * sizeof *u->ready);
    if (!first || !u->ready) {
        free(first);
        return ldm_fail(LDM_ENOMEM, "unet: gradient readiness plan");
    }
    for (size_t p = 0; p < n; p++)
        first[p] = u->nnodes;
    for (size_t i = u->nnodes; i-- > 0;)
        for (int s = 0; s < UG_SLOTS; s++) {
            long p = param_of(u, &u->nodes[i].t[s]);
            if (p >= 0)
                first[p] = i;
        }
    for (size_t p = n; p-- > 1;) /* suffix minimum: final from p on once the backward passes it */
        if (first[p] < first[p - 1])
            first[p - 1] = first[p];
    size_t p = n;
    for (size_t i = u->nnodes; i-- > 0;) {
        while (p > 0 && first[p - 1] >= i)
            p--;
        u->ready[i] = p < n ? (size_t)((const char *)u->params[p].data -
                                       (const char *)u->pa.base) : u->ga.bytes;
    }
    free(first);
    return 0;
}


/* unet_graph.c — the UNet's parameter table, activation layout and recorded op list:
 * building them during a walk, and replaying the list forward and backward.
 *
 * Gradient checkpointing: ops recorded inside a segment (ug_seg_begin .. ug_seg_end)
 * carry its id. A buffer that only its segment's ops make and read is internal to it;
 * the internals of every segment share one scratch region at the end of the arena
 * (the forward overwrites one segment's with the next's), everything else keeps its
 * own place. The backward, on reaching a segment's last op, first runs again the
 * segment's ops that make its internals, then goes on backward through them. */
#include <stdint.h>
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

static int add_buf(struct ldm_unet *u, size_t bytes)
{
    int rc = grow((void **)&u->bufs, &u->cap_bufs, u->nbufs + 1, sizeof *u->bufs);
    if (!rc)
        u->bufs[u->nbufs++] = (struct ug_buf){.bytes = bytes, .seg = -1, .producer = UG_NONE,
                                              .last_use = UG_NONE, .goff = UG_NONE};
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
    struct ldm_unet *u = g->u;
    size_t i = g->cursor++;
    return u->cparams ? u->cparams[i] : u->params[i];
}

/* A new activation of this shape and dtype: counted (MEASURE), or a new buffer whose
 * data points at its tag until ug_relocate (RECORD). */
static struct ldm_tensor act_of(struct ug *g, int dtype, int ndim, const int64_t *shape)
{
    struct ldm_tensor t = ldm_tensor_view(NULL, dtype, ndim, shape);
    if (g->mode == UG_DECLARE)
        return t;
    size_t k = g->nacts++;
    if (g->mode == UG_RECORD && !g->err) {
        if (k >= g->ntags || k != g->u->nbufs)
            g->err = ldm_fail(LDM_EINVAL, "unet: the walk made more activations than the %zu "
                              "measured", g->ntags);
        else
            g->err = add_buf(g->u, round_up(ldm_tensor_nbytes(&t)));
        t.data = g->err ? NULL : g->tags + k;
    }
    return t;
}

/* An activation in the compute dtype. */
struct ldm_tensor ug_act(struct ug *g, int ndim, const int64_t *shape)
{
    return act_of(g, g->u->cdt, ndim, shape);
}

/* An F32 activation whatever the compute dtype: saved statistics, timesteps, the loss. */
struct ldm_tensor ug_act32(struct ug *g, int ndim, const int64_t *shape)
{
    return act_of(g, LDM_DT_F32, ndim, shape);
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
    n->seg = g->seg;
    return n;
}

/* Open a checkpointed segment: the backward runs again those of the ops recorded until
 * the matching ug_seg_end that make its internal buffers. A segment opened inside
 * another is part of it. Nothing when checkpointing is off. */
void ug_seg_begin(struct ug *g)
{
    if (!g->u->ckpt || g->mode == UG_DECLARE)
        return;
    if (g->depth++ == 0)
        g->seg = g->nsegs++;
}

void ug_seg_end(struct ug *g)
{
    if (g->depth > 0 && --g->depth == 0)
        g->seg = -1;
}

/* ---- layout ---------------------------------------------------------------------- */

/* Output slots of each op (the rest are read). */
static unsigned outputs(int op)
{
    return op == UG_GN || op == UG_LN ? 7u : op == UG_ATTN ? 3u : 1u;
}

/* The buffer whose tag t points at, or UG_NONE (a parameter, an absent slot). */
static size_t tag_of(const char *tags, size_t ntags, const struct ldm_tensor *t)
{
    uintptr_t k = (uintptr_t)t->data - (uintptr_t)tags;
    return t->data && k < ntags ? (size_t)k : UG_NONE;
}

/* Each node slot's buffer, and each buffer's segment: that of its producer while
 * every reader is in it too, else -1. */
static void bind(struct ldm_unet *u, const char *tags, size_t ntags)
{
    for (size_t i = 0; i < u->nnodes; i++) {
        struct ug_node *n = &u->nodes[i];
        unsigned out = outputs(n->op);
        for (int s = 0; s < UG_SLOTS; s++)
            n->buf[s] = tag_of(tags, ntags, &n->t[s]);
        for (int s = 0; s < UG_SLOTS; s++) /* producers come before their readers */
            if (n->buf[s] != UG_NONE && !(out >> s & 1u) && u->bufs[n->buf[s]].seg != n->seg)
                u->bufs[n->buf[s]].seg = -1;
        for (int s = 0; s < UG_SLOTS; s++)
            if (n->buf[s] != UG_NONE && (out >> s & 1u))
                u->bufs[n->buf[s]].seg = n->seg;
    }
    u->out_buf = tag_of(tags, ntags, &u->out);
    if (u->out_buf != UG_NONE)
        u->bufs[u->out_buf].seg = -1; /* the loss reads it */
}

/* Place the RECORD walk's buffers (tagged by tags[0 .. ntags−1]): the kept ones one
 * after another in walk order (with checkpointing off, all of them: the layout of a
 * plain walk), then the scratch region, where each segment's internals are laid out
 * in walk order from its start. *bytes the arena they need. */
int ug_layout(struct ldm_unet *u, const char *tags, size_t ntags, size_t *bytes)
{
    if (ntags != u->nbufs)
        return ldm_fail(LDM_EINVAL, "unet: %zu activations tagged, %zu recorded", ntags,
                        u->nbufs);
    size_t *at = calloc((size_t)u->nsegs + 1, sizeof *at); /* each segment's next offset */
    if (!at)
        return ldm_fail(LDM_ENOMEM, "unet: out of memory laying out %d segments", u->nsegs);
    bind(u, tags, ntags);
    size_t kept = 0, most = 0;
    for (size_t b = 0; b < u->nbufs; b++)
        if (u->bufs[b].seg < 0) {
            u->bufs[b].off = kept;
            kept += u->bufs[b].bytes;
        }
    for (size_t b = 0; b < u->nbufs; b++) {
        struct ug_buf *x = &u->bufs[b];
        if (x->seg < 0)
            continue;
        x->off = kept + at[x->seg];
        at[x->seg] += x->bytes;
        most = at[x->seg] > most ? at[x->seg] : most;
    }
    free(at);
    *bytes = kept + most;
    return 0;
}

/* Point every tagged tensor (the ops' slots, the inputs, out, target, loss, weights)
 * at its buffer's place in the arena u->aa. */
void ug_relocate(struct ldm_unet *u, const char *tags, size_t ntags)
{
    char *base = u->aa.base;
    for (size_t i = 0; i < u->nnodes; i++)
        for (int s = 0; s < UG_SLOTS; s++)
            if (u->nodes[i].buf[s] != UG_NONE)
                u->nodes[i].t[s].data = base + u->bufs[u->nodes[i].buf[s]].off;
    struct ldm_tensor *named[] = {&u->sample, &u->tsteps, &u->ehs,  &u->text,    &u->tids,
                                  &u->out,    &u->target, &u->loss, &u->weights, &u->pred,
                                  &u->dpred};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        size_t k = tag_of(tags, ntags, named[i]);
        if (k != UG_NONE)
            named[i]->data = base + u->bufs[k].off;
    }
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
        d[i] = opt(&t[i]) ? ug_grad_of(u, &t[i], n->buf[i], &gs[i]) : NULL;
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

/* Run the recorded ops in order; the scratch region then holds the last segment's
 * internals. */
int ug_run_forward(struct ldm_unet *u)
{
    int last = -1;
    u->scratch_seg = -1;
    for (size_t i = 0; i < u->nnodes; i++) {
        int rc = fwd(u->ctx, &u->nodes[i]);
        if (rc)
            return rc;
        last = u->nodes[i].seg >= 0 ? u->nodes[i].seg : last;
    }
    u->scratch_seg = u->ctx->planning ? -1 : last; /* planning computes nothing */
    return 0;
}

/* Whether node n makes a buffer internal to its segment. */
static int makes_internal(const struct ldm_unet *u, const struct ug_node *n)
{
    for (int s = 0; s < UG_SLOTS; s++)
        if ((outputs(n->op) >> s & 1u) && n->buf[s] != UG_NONE && u->bufs[n->buf[s]].seg >= 0)
            return 1;
    return 0;
}

/* The backward reaches the segment ending at node `last`: make its internals again by
 * running its ops that make them (the rest of its outputs are kept). */
static int recompute(struct ldm_unet *u, size_t last)
{
    size_t first = last;
    while (first > 0 && u->nodes[first - 1].seg == u->nodes[last].seg)
        first--;
    for (size_t j = first; j <= last; j++)
        if (makes_internal(u, &u->nodes[j])) {
            int rc = fwd(u->ctx, &u->nodes[j]);
            if (rc)
                return rc;
        }
    return 0;
}

const struct ldm_arena *ug_cparams(const struct ldm_unet *u)
{
    return u->cparams ? &u->pc : &u->pa;
}

const struct ldm_arena *ug_cgrads(const struct ldm_unet *u)
{
    return u->cparams ? &u->gc : &u->ga;
}

/* The parameter gradients at byte offsets from .. to of the F32 arena ga are final:
 * with a reduced compute dtype, add their compute copies (at half the offsets in gc)
 * into them; then tell the hook. */
static int grads_final(struct ldm_unet *u, size_t from, size_t to)
{
    int rc = 0;
    if (u->cparams && to > from) {
        int64_t n = (int64_t)((to - from) / sizeof(float));
        struct ldm_tensor g32 = ldm_tensor_view((char *)u->ga.base + from, LDM_DT_F32, 1, &n);
        struct ldm_tensor gc = ldm_tensor_view((char *)u->gc.base + from / 2, u->cdt, 1, &n);
        rc = ldm_cast(u->ctx, &g32, &gc, 1.0f, 1);
    }
    if (!rc && u->hook)
        u->hook(u->hook_arg, from);
    return rc;
}

/* The loss's backward (scaled by dloss) into the prediction's gradient: directly, or
 * through the F32 copy with a reduced compute dtype. */
static int loss_backward(struct ldm_unet *u, float dloss)
{
    struct ldm_tensor dout;
    const struct ldm_tensor *g = ug_grad_of(u, &u->out, u->out_buf, &dout);
    const struct ldm_tensor *w = u->weighted ? &u->weights : NULL;
    if (!u->cparams)
        return ldm_mse_loss_backward(u->ctx, g, NULL, dloss, &u->out, &u->target, w);
    size_t nb = ldm_tensor_nbytes(&u->dpred);
    int rc = u->ctx->planning ? 0 : ldm_ctx_zero(u->ctx, u->dpred.data, nb);
    if (!rc)
        rc = ldm_mse_loss_backward(u->ctx, &u->dpred, NULL, dloss, &u->pred, &u->target, w);
    if (!rc && g)
        rc = ldm_cast(u->ctx, g, &u->dpred, 1.0f, 0);
    return rc;
}

/* The loss's backward, then the ops' backwards in reverse order, each activation
 * gradient zeroed just before it first receives, each checkpointed segment recomputed
 * before its last op's backward (unless the scratch region still holds it). Parameter
 * gradients are added to (the caller zeroes them); with a hook they are handed over
 * stretch by stretch as they become final, else at the end. */
int ug_run_backward(struct ldm_unet *u, float dloss)
{
    size_t cursor = 0;
    int have = u->scratch_seg, live = !u->ctx->planning;
    u->scratch_seg = -1;
    int rc = ug_grad_zero(u, u->nnodes, &cursor);
    if (!rc && u->cparams && live)
        rc = ldm_arena_zero(&u->gc);
    if (!rc)
        rc = loss_backward(u, dloss);
    size_t told = u->ga.bytes;
    for (size_t i = u->nnodes; !rc && i-- > 0;) {
        int seg = u->nodes[i].seg;
        if (seg >= 0 && seg != have) {
            rc = recompute(u, i);
            have = seg;
        }
        if (!rc)
            rc = ug_grad_zero(u, i, &cursor);
        if (!rc)
            rc = bwd(u, &u->nodes[i]);
        if (!rc && u->hook && live && u->ready[i] < told) {
            rc = grads_final(u, u->ready[i], told);
            told = u->ready[i];
        }
    }
    if (!rc && live && told > 0 && (u->hook || u->cparams))
        rc = grads_final(u, 0, told);
    if (!rc && live)
        u->scratch_seg = have;
    return rc;
}

/* The parameter index of a tensor that lies in the (compute) parameter arena, or -1. */
static long param_of(const struct ldm_unet *u, const struct ldm_tensor *t)
{
    const struct ldm_arena *a = ug_cparams(u);
    const char *p = t->data, *b = a->base, *pb = u->pa.base;
    if (!p || !b || p < b || p >= b + a->bytes)
        return -1;
    size_t off = (size_t)(p - b) * (u->cparams ? 2 : 1); /* its offset in pa */
    size_t lo = 0, hi = u->nparams;
    while (hi - lo > 1) { /* the table is in arena order */
        size_t mid = (lo + hi) / 2;
        if ((size_t)((const char *)u->params[mid].data - pb) <= off)
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


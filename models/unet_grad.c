/* unet_grad.c — where activation gradients live: each recorded activation's gradient
 * gets a slot in the gradient arena only from the backward of its last reader to the
 * backward of its producer, and slots whose lifetimes do not overlap share memory. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "models/unet_int.h"

#define NONE UG_NONE

/* Slots of each op whose tensor is a differentiable input (slot 0, the output, is
 * always differentiable). */
static const unsigned diff_inputs[] = {
    [UG_CONV] = 1u << 1, [UG_LINEAR] = 1u << 1, [UG_GN] = 1u << 3, [UG_LN] = 1u << 3,
    [UG_ACT] = 1u << 1, [UG_GEGLU] = 1u << 1, [UG_ATTN] = 7u << 2, [UG_UP2X] = 1u << 1,
    [UG_CAT] = 3u << 1, [UG_TRANS] = 1u << 1, [UG_ADD] = 3u << 1, [UG_BCAST] = 3u << 1,
    [UG_TEMB] = 0};

/* Each buffer's producer and last differentiable reader (node indices). */
static void lifetimes(struct ldm_unet *u)
{
    for (size_t b = 0; b < u->nbufs; b++)
        u->bufs[b].producer = u->bufs[b].last_use = NONE;
    for (size_t i = 0; i < u->nnodes; i++) {
        const struct ug_node *n = &u->nodes[i];
        if (n->buf[0] != NONE)
            u->bufs[n->buf[0]].producer = i;
        for (int s = 1; s < UG_SLOTS; s++)
            if ((diff_inputs[n->op] >> s & 1u) && n->buf[s] != NONE)
                u->bufs[n->buf[s]].last_use = i;
    }
    if (u->out_buf != NONE)
        u->bufs[u->out_buf].last_use = u->nnodes; /* the loss reads it */
}

static int by_start(const void *a, const void *b)
{
    const struct ug_buf *x = *(struct ug_buf *const *)a, *y = *(struct ug_buf *const *)b;
    return x->goff < y->goff ? -1 : x->goff > y->goff;
}

/* First fit among the live slots (sorted by start), or past the end. */
static size_t place(struct ug_buf **live, size_t nlive, size_t bytes)
{
    size_t at = 0;
    for (size_t k = 0; k < nlive; k++) {
        if (live[k]->goff >= at + bytes)
            return at;
        size_t end = live[k]->goff + live[k]->bytes;
        at = end > at ? end : at;
    }
    return at;
}

/* Walk the backward order, placing each gradient when it first receives (+=) and
 * releasing it after its producer's backward. */
static void assign(struct ldm_unet *u, struct ug_buf **live, size_t *peak)
{
    size_t nlive = 0, nz = 0;
    for (size_t step = u->nnodes + 1; step-- > 0;) {
        for (size_t b = 0; b < u->nbufs; b++) {
            struct ug_buf *x = &u->bufs[b];
            if (x->last_use != step || x->producer == NONE)
                continue;
            x->goff = place(live, nlive, x->bytes);
            *peak = x->goff + x->bytes > *peak ? x->goff + x->bytes : *peak;
            live[nlive++] = x;
            qsort(live, nlive, sizeof *live, by_start);
            u->zero_order[nz++] = b;
        }
        for (size_t k = 0; step < u->nnodes && k < nlive;)
            if (live[k]->producer == step)
                memmove(&live[k], &live[k + 1], (--nlive - k) * sizeof *live);
            else
                k++;
    }
    u->nzero = nz;
}

/* Lay out the activation gradients of the recorded ops; *bytes the arena they need. */
int ug_grad_plan(struct ldm_unet *u, size_t *bytes)
{
    lifetimes(u);
    for (size_t b = 0; b < u->nbufs; b++)
        u->bufs[b].goff = NONE;
    struct ug_buf **live = malloc((u->nbufs + 1) * sizeof *live);
    free(u->zero_order);
    u->zero_order = malloc((u->nbufs + 1) * sizeof *u->zero_order);
    if (!live || !u->zero_order) {
        free(live);
        return ldm_fail(LDM_ENOMEM, "unet: out of memory planning gradients");
    }
    *bytes = 0;
    assign(u, live, bytes);
    free(live);
    return 0;
}

/* Zero the gradients that first receive at `step` (zero_order follows the steps). */
int ug_grad_zero(struct ldm_unet *u, size_t step, size_t *cursor)
{
    while (*cursor < u->nzero && u->bufs[u->zero_order[*cursor]].last_use == step) {
        const struct ug_buf *x = &u->bufs[u->zero_order[(*cursor)++]];
        int rc = ldm_ctx_zero(u->ctx, (char *)u->gaa.base + x->goff, x->bytes);
        if (rc)
            return rc;
    }
    return 0;
}

/* Point *gt at the gradient of t, whose buffer is bufs[buf] (UG_NONE: t is not an
 * activation): its slot for an activation, the same offset in the (compute) gradient
 * arena for a parameter; NULL when it has none. */
const struct ldm_tensor *ug_grad_of(const struct ldm_unet *u, const struct ldm_tensor *t,
                                   size_t buf, struct ldm_tensor *gt)
{
    const struct ldm_arena *pa = ug_cparams(u);
    const char *p = t->data, *pb = pa->base;
    const struct ug_buf *x = buf != NONE ? &u->bufs[buf] : NULL;
    if (x && x->goff == NONE)
        return NULL;
    *gt = *t;
    if (x)
        gt->data = (char *)u->gaa.base + x->goff;
    else if (p && pb && p >= pb && p < pb + pa->bytes)
        gt->data = (char *)ug_cgrads(u)->base + (p - pb);
    else
        return NULL;
    return gt;
}

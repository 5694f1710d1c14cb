/* run_clip.c — `ldmrun clip`: the CLIP text encoder on in.input_ids to out.last_hidden_state,
 * out.pooled, out.text_embeds (with a projection) and out.hidden_states.K for every K. */
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "ldmrun.h"
#include "models/clip_text.h"

static int run(struct ldm_clip_text *m, int proj, const int64_t *ids, int64_t N, int64_t L,
               struct lr_outs *o)
{
    const struct ldm_clip_config *c = ldm_clip_text_config(m);
    int64_t nld[3] = {N, L, c->hidden_size}, nd[2] = {N, c->hidden_size},
            np[2] = {N, c->projection_dim};
    struct ldm_clip_out out = {.hidden_index = 0};
    int rc = lr_out_add(o, "out.last_hidden_state", 3, nld, &out.last_hidden_state);
    if (!rc) rc = lr_out_add(o, "out.pooled", 2, nd, &out.pooled);
    if (!rc && proj) rc = lr_out_add(o, "out.text_embeds", 2, np, &out.text_embeds);
    if (!rc) rc = ldm_clip_text_forward(m, ids, N, L, &out);
    for (int64_t k = 0; !rc && k <= c->num_hidden_layers; k++) {
        char name[64];
        snprintf(name, sizeof name, "out.hidden_states.%lld", (long long)k);
        struct ldm_clip_out h = {.hidden_index = (int)k};
        rc = lr_out_add(o, name, 3, nld, &h.hidden);
        if (!rc)
            rc = ldm_clip_text_forward(m, ids, N, L, &h);
    }
    return rc;
}

int lr_cmd_clip(const struct lr_args *a)
{
    struct ldm_ctx *ctx = NULL;
    struct ldm_clip_text *m = NULL;
    struct ldm_st *st = NULL;
    struct lr_outs o = {.n = 0};
    const struct ldm_st_tensor *t;
    int64_t *ids = NULL;
    size_t n;
    int proj = 0;
    const char *name = a->input_name ? a->input_name : "in.input_ids";
    int rc = ldm_st_open(&st, a->in);
    if (!rc)
        rc = ldm_st_find(st, name, &t);
    if (!rc && t->ndim != 2)
        rc = ldm_fail(LDM_EFORMAT, "%s: %s must be (N, L), it has %d dimensions", a->in, name,
                      t->ndim);
    if (!rc) rc = lr_get_ints(st, name, &ids, &n);
    if (!rc) rc = ldm_ctx_open(&ctx, "cpu", a->threads);
    /* with text_projection.weight in the weights: CLIPTextModelWithProjection */
    if (!rc) rc = ldm_clip_text_load(&m, ctx, a->dir, LDM_CLIP_PROJ_AUTO);
    if (!rc) proj = ldm_clip_text_has_projection(m);
    if (!rc) rc = run(m, proj, ids, t->shape[0], t->shape[1], &o);
    if (!rc) rc = lr_out_write(&o, a->out);
    lr_out_free(&o);
    free(ids);
    ldm_clip_text_free(&m);
    ldm_st_close(&st);
    ldm_ctx_close(&ctx);
    return rc;
}

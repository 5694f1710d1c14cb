/* run_unet.c — `ldmrun unet`: UNet2DConditionModel forward on in.sample, in.timestep,
 * in.encoder_hidden_states (and SDXL's in.text_embeds, in.time_ids) to out.sample. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldmrun.h"
#include "models/unet.h"

/* The N timesteps as floats (as diffusers casts them); a scalar or a single value is
 * broadcast over the batch. */
static int timesteps(const struct ldm_st *st, int64_t N, float **out)
{
    const struct ldm_st_tensor *t;
    int rc = ldm_st_find(st, "in.timestep", &t);
    if (rc)
        return rc;
    size_t n = t->nbytes / (ldm_dtype_size(t->dtype) ? ldm_dtype_size(t->dtype) : 1);
    if (n != 1 && n != (size_t)N)
        return ldm_fail(LDM_EFORMAT, "%s: in.timestep holds %zu values for a batch of %lld",
                        ldm_st_label(st), n, (long long)N);
    *out = malloc(sizeof **out * (size_t)N);
    if (!*out)
        return ldm_fail(LDM_ENOMEM, "timesteps");
    int64_t *iv = NULL;
    if (t->dtype != LDM_DT_F32 && (rc = lr_get_ints(st, "in.timestep", &iv, &n)))
        return rc;
    for (int64_t i = 0; i < N; i++) {
        size_t k = n == 1 ? 0 : (size_t)i;
        (*out)[i] = iv ? (float)iv[k] : ((const float *)t->data)[k];
    }
    free(iv);
    return 0;
}

/* The optional SDXL inputs, checked against the config. */
static int text_time_inputs(const struct ldm_st *st, const struct ldm_unet_config *c,
                            int64_t N, struct ldm_unet_inputs *in)
{
    if (!c->text_time)
        return 0;
    const struct ldm_st_tensor *te, *ti;
    int rc = lr_get_f32(st, "in.text_embeds", 2, &te);
    if (!rc)
        rc = lr_get_f32(st, "in.time_ids", 2, &ti);
    if (rc)
        return rc;
    int64_t text = c->add_embed_in - (int64_t)c->n_time_ids * c->addition_time_embed_dim;
    if (te->shape[0] != N || te->shape[1] != text || ti->shape[0] != N ||
        ti->shape[1] != c->n_time_ids)
        return ldm_fail(LDM_EFORMAT, "%s: in.text_embeds [%lld,%lld] / in.time_ids [%lld,%lld] "
                        "must be [%lld,%lld] / [%lld,%d]", ldm_st_label(st),
                        (long long)te->shape[0], (long long)te->shape[1], (long long)ti->shape[0],
                        (long long)ti->shape[1], (long long)N, (long long)text, (long long)N,
                        c->n_time_ids);
    in->text_embeds = te->data;
    in->time_ids = ti->data;
    return 0;
}

static int forward(struct ldm_unet *u, const struct ldm_unet_config *c, const struct ldm_st *st,
                   struct lr_outs *o)
{
    const struct ldm_st_tensor *s, *e;
    int rc = lr_get_f32(st, "in.sample", 4, &s);
    if (!rc)
        rc = lr_get_f32(st, "in.encoder_hidden_states", 3, &e);
    if (rc)
        return rc;
    int64_t N = s->shape[0];
    if (e->shape[0] != N)
        return ldm_fail(LDM_EFORMAT, "%s: in.encoder_hidden_states has batch %lld, in.sample %lld",
                        ldm_st_label(st), (long long)e->shape[0], (long long)N);
    struct ldm_unet_inputs in = {.sample = s->data, .encoder_hidden_states = e->data};
    float *t = NULL, *out;
    rc = text_time_inputs(st, c, N, &in);
    if (!rc)
        rc = timesteps(st, N, &t);
    if (!rc)
        rc = ldm_unet_prepare(u, N, s->shape[2], s->shape[3], e->shape[1]);
    int64_t shape[4] = {N, c->out_channels, s->shape[2], s->shape[3]};
    if (!rc)
        rc = lr_out_add(o, "out.sample", 4, shape, &out);
    in.timesteps = t;
    if (!rc)
        rc = ldm_unet_forward(u, &in, out);
    free(t);
    return rc;
}

int lr_cmd_unet(const struct lr_args *a)
{
    char cfgp[4096];
    if (snprintf(cfgp, sizeof cfgp, "%s/config.json", a->dir) >= (int)sizeof cfgp)
        return ldm_fail(LDM_EINVAL, "%s: path too long", a->dir);
    struct ldm_unet_config c;
    struct ldm_ctx *ctx = NULL;
    struct ldm_unet *u = NULL;
    struct ldm_st *st = NULL;
    struct lr_outs o = {.n = 0};
    int rc = ldm_unet_config_load(&c, cfgp);
    if (!rc)
        rc = ldm_ctx_open(&ctx, "cpu", a->threads);
    if (!rc)
        rc = ldm_unet_create(&u, ctx, &c);
    if (!rc)
        rc = ldm_unet_load_dir(u, a->dir);
    if (!rc)
        rc = ldm_st_open(&st, a->in);
    if (!rc)
        rc = forward(u, &c, st, &o);
    if (!rc)
        rc = lr_out_write(&o, a->out);
    lr_out_free(&o);
    ldm_st_close(&st);
    ldm_unet_free(&u);
    ldm_ctx_close(&ctx);
    return rc;
}

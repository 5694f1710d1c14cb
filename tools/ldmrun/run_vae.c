/* run_vae.c — `ldmrun vae-encode` (in.image → out.mean, out.logvar) and `ldmrun vae-decode`
 * (in.latent, unscaled → out.decoded) with diffusers' AutoencoderKL. */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "ldmrun.h"
#include "models/vae.h"

/* Up to three F32 tensors in the context's memory, one allocation each. */
struct dev {
    struct ldm_ctx *ctx;
    struct ldm_tensor t[3];
    void *p[3];
};

static int dev_alloc(struct dev *d, int i, const char *name, const int64_t *shape)
{
    int rc = ldm_tensor_set(&d->t[i], name, LDM_DT_F32, 4, shape);
    if (!rc)
        rc = ldm_ctx_alloc(d->ctx, ldm_tensor_nbytes(&d->t[i]), &d->p[i]);
    d->t[i].data = d->p[i];
    return rc;
}

static void dev_free(struct dev *d)
{
    for (int i = 0; i < 3; i++)
        if (d->p[i])
            ldm_ctx_free(d->ctx, d->p[i]);
}

/* Download d->t[i] into a new output `name`. */
static int dev_out(struct dev *d, int i, struct lr_outs *o)
{
    float *h;
    int rc = lr_out_add(o, d->t[i].name, 4, d->t[i].shape, &h);
    return rc ? rc : ldm_ctx_download(d->ctx, h, d->t[i].data, ldm_tensor_nbytes(&d->t[i]));
}

static int encode(struct ldm_vae *v, struct dev *d, const struct ldm_st_tensor *x,
                  struct lr_outs *o)
{
    const struct ldm_vae_config *c = ldm_vae_config(v);
    int64_t lat[4] = {x->shape[0], c->latent_channels, ldm_vae_latent_size(v, x->shape[2]),
                      ldm_vae_latent_size(v, x->shape[3])};
    int rc = dev_alloc(d, 0, x->name, x->shape);
    if (!rc) rc = dev_alloc(d, 1, "out.mean", lat);
    if (!rc) rc = dev_alloc(d, 2, "out.logvar", lat);
    if (!rc) rc = ldm_ctx_upload(d->ctx, d->t[0].data, x->data, x->nbytes);
    if (!rc) rc = ldm_vae_encode(v, &d->t[0], &d->t[1], &d->t[2]);
    if (!rc) rc = dev_out(d, 1, o);
    if (!rc) rc = dev_out(d, 2, o);
    return rc;
}

static int decode(struct ldm_vae *v, struct dev *d, const struct ldm_st_tensor *z,
                  struct lr_outs *o)
{
    const struct ldm_vae_config *c = ldm_vae_config(v);
    int64_t img[4] = {z->shape[0], c->out_channels, ldm_vae_image_size(v, z->shape[2]),
                      ldm_vae_image_size(v, z->shape[3])};
    int rc = dev_alloc(d, 0, z->name, z->shape);
    if (!rc) rc = dev_alloc(d, 1, "out.decoded", img);
    if (!rc) rc = ldm_ctx_upload(d->ctx, d->t[0].data, z->data, z->nbytes);
    if (!rc) rc = ldm_vae_decode(v, &d->t[0], &d->t[1]);
    if (!rc) rc = dev_out(d, 1, o);
    return rc;
}

int lr_cmd_vae(const struct lr_args *a, int dec)
{
    struct dev d = {.ctx = NULL};
    struct ldm_vae *v = NULL;
    struct ldm_st *st = NULL;
    struct lr_outs o = {.n = 0};
    const struct ldm_st_tensor *x;
    const char *name = a->input_name ? a->input_name : dec ? "in.latent" : "in.image";
    int rc = ldm_st_open(&st, a->in);
    if (!rc)
        rc = lr_get_f32(st, name, 4, &x);
    if (!rc)
        rc = ldm_ctx_open(&d.ctx, "cpu", a->threads);
    if (!rc)
        rc = ldm_vae_open(&v, d.ctx, a->dir);
    if (!rc)
        rc = dec ? decode(v, &d, x, &o) : encode(v, &d, x, &o);
    if (!rc)
        rc = lr_out_write(&o, a->out);
    lr_out_free(&o);
    dev_free(&d);
    ldm_vae_close(&v);
    ldm_st_close(&st);
    ldm_ctx_close(&d.ctx);
    return rc;
}

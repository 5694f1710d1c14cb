/* batch.c — a micro-batch's UNet inputs from cache records. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "nn/tensor.h"
#include "rng.h"
#include "trainerd/batch.h"

/* Streams of a sample's seed used here (objective.c uses 0..2). */
enum { ST_LATENT = 3, ST_FLIP = 4, ST_DROP = 5 };

static int grow(struct td_batch *b, int64_t N, const struct td_class *c)
{
    size_t n = (size_t)N, lat = (size_t)c->lc * c->lh * c->lw, txt = (size_t)c->tl * c->td;
    size_t need = n * sizeof(uint64_t) + n * (4 * lat + txt + c->pooled + 6 + 2) * sizeof(float);
    if (need > b->cap_bytes) {
        free(b->mem);
        b->mem = malloc(need);
        b->cap_bytes = b->mem ? need : 0;
        if (!b->mem)
            return ldm_fail(LDM_ENOMEM, "micro-batch of %lld samples", (long long)N);
    }
    b->seeds = b->mem;
    float *p = (float *)(void *)(b->seeds + n);
    b->noisy = p, p += n * lat;
    b->target = p, p += n * lat;
    b->x0 = p, p += n * lat;
    b->ehs = p, p += n * txt;
    b->text_embeds = p, p += n * c->pooled;
    b->time_ids = p, p += n * 6;
    b->tsteps = p, p += n;
    b->weights = p;
    b->N = N, b->C = c->lc, b->H = c->lh, b->W = c->lw, b->L = c->tl, b->D = c->td;
    b->P = c->pooled;
    return 0;
}

static void f16_row(float *dst, const void *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ldm_f16_to_f32(ldm_record_f16(src, i));
}

/* The latent of record r drawn from its distribution (flipped variant or not). */
static void draw_latent(const struct ldm_record *r, int flip, uint64_t seed,
                        const struct td_batch_opts *o, float *x, size_t n)
{
    const void *mean = flip ? r->sec.flip_mean : r->sec.mean;
    const void *lv = flip ? r->sec.flip_logvar : r->sec.logvar;
    struct ldm_rng g;
    ldm_rng_init(&g, seed, ST_LATENT);
    for (size_t i = 0; i < n; i++) {
        float m = ldm_f16_to_f32(ldm_record_f16(mean, i));
        float l = ldm_f16_to_f32(ldm_record_f16(lv, i));
        l = l < -30.0f ? -30.0f : l > 20.0f ? 20.0f : l;
        float v = m + expf(0.5f * l) * td_gauss(&g);
        x[i] = (v - o->shift) * o->scale;
    }
}

/* Text states (and SDXL extras) of sample k from record r. */
static int fill_text(struct td_batch *b, int64_t k, const struct ldm_record *r, uint64_t seed,
                     const struct td_batch_opts *o, const char *key)
{
    const struct ldm_record *src = r;
    struct ldm_rng g;
    ldm_rng_init(&g, seed, ST_DROP);
    if (ldm_rng_bernoulli(&g, o->caption_dropout)) {
        if (!o->empty)
            return ldm_fail(LDM_EINVAL, "caption_dropout: the cache has no empty caption");
        src = o->empty;
    }
    size_t txt = (size_t)b->L * b->D;
    if (src->hdr.text_len != b->L || src->hdr.text_dim != b->D ||
        src->hdr.pooled_dim != b->P)
        return ldm_fail(LDM_EINVAL, "%s: text %ux%u pooled %u, the batch has %lldx%lld pooled "
                        "%lld", src == r ? key : "empty caption", src->hdr.text_len,
                        src->hdr.text_dim, src->hdr.pooled_dim, (long long)b->L,
                        (long long)b->D, (long long)b->P);
    f16_row(b->ehs + k * txt, src->sec.text, txt);
    if (o->sdxl) {
        if (!b->P)
            return ldm_fail(LDM_EINVAL, "%s: no pooled embedding for SDXL's text_embeds", key);
        f16_row(b->text_embeds + k * b->P, src->sec.pooled, (size_t)b->P);
        const struct ldm_record_hdr *h = &r->hdr;
        float ids[6] = {(float)h->orig_h, (float)h->orig_w, (float)h->crop_top,
                        (float)h->crop_left, (float)h->target_h, (float)h->target_w};
        memcpy(b->time_ids + k * 6, ids, sizeof ids);
    }
    return 0;
}

static int fill_one(struct td_batch *b, struct ldm_store_txn *t, const char *key, int64_t k,
                    const struct td_batch_opts *o)
{
    struct ldm_record r;
    int rc = ldm_store_get(t, key, &r);
    if (rc == LDM_ENOTFOUND)
        return ldm_fail(LDM_ENOTFOUND, "sample %s: no longer in the cache", key);
    if (rc)
        return rc;
    if (r.hdr.latent_c != b->C || r.hdr.latent_h != b->H || r.hdr.latent_w != b->W)
        return ldm_fail(LDM_EINVAL, "sample %s: latent %ux%ux%u, its class %lldx%lldx%lld", key,
                        r.hdr.latent_c, r.hdr.latent_h, r.hdr.latent_w, (long long)b->C,
                        (long long)b->H, (long long)b->W);
    uint64_t seed = b->seeds[k];
    struct ldm_rng g;
    ldm_rng_init(&g, seed, ST_FLIP);
    int flip = o->random_flip && (r.hdr.flags & LDM_REC_FLIPPED) && ldm_rng_bernoulli(&g, 0.5);
    size_t lat = (size_t)b->C * b->H * b->W;
    draw_latent(&r, flip, seed, o, b->x0 + k * lat, lat);
    return fill_text(b, k, &r, seed, o, key);
}

int td_batch_fill(struct td_batch *b, struct ldm_store *st, const struct td_index *ix,
                  const size_t *items, int64_t N, int64_t step, int64_t gpos0,
                  const struct td_batch_opts *o)
{
    if (N < 1)
        return ldm_fail(LDM_EINVAL, "micro-batch of %lld samples", (long long)N);
    int rc = grow(b, N, &ix->classes[ix->cls[items[0]]]);
    if (rc)
        return rc;
    for (int64_t k = 0; k < N; k++)
        b->seeds[k] = td_sample_seed(o->seed, step, gpos0 + k);
    struct ldm_store_txn *t = NULL;
    rc = ldm_store_read_begin(st, &t);
    for (int64_t k = 0; !rc && k < N; k++)
        rc = fill_one(b, t, ix->keys[items[k]], k, o);
    ldm_store_read_end(&t);
    b->weighted = o->obj->snr_gamma > 0;
    if (!rc)
        rc = td_objective_apply(o->obj, b->x0, N, b->C, b->H * b->W, b->seeds, b->noisy,
                                b->tsteps, b->target, b->weighted ? b->weights : NULL);
    b->step = step;
    return rc;
}

void td_batch_free(struct td_batch *b)
{
    free(b->mem);
    memset(b, 0, sizeof *b);
}

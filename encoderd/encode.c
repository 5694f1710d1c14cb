/* encode.c — VAE and text-encoder forward passes over a batch, fp16 conversion and record encoding.
 *
 * Every buffer of a batch is host memory. On the CPU backend the models
 * compute in it directly; on a device the VAE's images and latents go
 * through device copies made for each call (vae_host), while the text
 * encoder takes host ids and writes host outputs itself. */
#include "encode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fsutil.h"
#include "models/clip_text.h"
#include "models/clip_tokenizer.h"
#include "models/vae.h"
#include "models/weights.h"
#include "nn/backend.h"
#include "nn/tensor.h"
#include "record.h"

struct encoderd_models {
    struct ldm_ctx *ctx;
    struct ldm_vae *vae;
    struct ldm_clip_text *te, *te2;
    int penultimate, flip_variants, cond_latent;
    char dir[4096];
};

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int open_parts(struct encoderd_models *m, const char *dir)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/vae", dir);
    int rc = ldm_vae_open(&m->vae, m->ctx, p);
    snprintf(p, sizeof p, "%s/text_encoder", dir);
    if (!rc)
        rc = ldm_clip_text_load(&m->te, m->ctx, p, 0);
    snprintf(p, sizeof p, "%s/text_encoder_2", dir);
    if (!rc && exists(p))
        rc = ldm_clip_text_load(&m->te2, m->ctx, p, 1);
    return rc;
}

int encoderd_models_open(struct encoderd_models **out, const struct encoderd_model_opts *o)
{
    *out = NULL;
    struct encoderd_models *m = calloc(1, sizeof *m);
    if (!m)
        return ldm_fail(LDM_ENOMEM, "encoder models");
    m->penultimate = o->penultimate;
    m->flip_variants = o->flip_variants;
    m->cond_latent = o->cond_latent;
    snprintf(m->dir, sizeof m->dir, "%s", o->dir);
    int rc = 0;
    if (o->flip_variants && o->cond_latent)
        rc = ldm_fail(LDM_EINVAL, "encoder models: flip_variants with a conditioning latent (a "
                                  "record holds no mirrored conditioning latent)");
    if (!rc && ldm_ctx_open(&m->ctx, o->device ? o->device : "cpu", o->threads))
        rc = ldm_fail(LDM_ECONFIG, "device '%s' cannot be used: %s", o->device ? o->device : "cpu",
                      ldm_errmsg());
    if (!rc)
        rc = open_parts(m, o->dir);
    if (rc) {
        encoderd_models_free(&m);
        return rc;
    }
    *out = m;
    return 0;
}

void encoderd_models_free(struct encoderd_models **m)
{
    if (!m || !*m)
        return;
    ldm_vae_close(&(*m)->vae);
    ldm_clip_text_free(&(*m)->te);
    ldm_clip_text_free(&(*m)->te2);
    ldm_ctx_close(&(*m)->ctx);
    free(*m);
    *m = NULL;
}

void encoderd_models_vocab(const struct encoderd_models *m, uint32_t *vocab, uint32_t *vocab2)
{
    *vocab = (uint32_t)ldm_clip_text_config(m->te)->vocab_size;
    *vocab2 = m->te2 ? (uint32_t)ldm_clip_text_config(m->te2)->vocab_size : 0;
}

/* A part's config and weight hashes (the weights in whatever layout the folder holds:
 * models/weights.h). */
static int hash_part(const char *dir, const char *part, json_t *into)
{
    char p[4300], hc[17], hw[17];
    snprintf(p, sizeof p, "%s/%s/config.json", dir, part);
    int rc = ldm_file_fnv1a64(p, hc);
    snprintf(p, sizeof p, "%s/%s", dir, part);
    if (!rc)
        rc = ldm_weights_hash(p, hw);
    if (!rc)
        json_object_set_new(into, part, json_pack("{s:s,s:s}", "config", hc, "weights", hw));
    return rc;
}

int encoderd_identity(const struct encoderd_models *m, const struct encoderd_model_opts *o,
                      char **out)
{
    double scale, shift;
    ldm_vae_scaling(m->vae, &scale, &shift);
    json_t *id = json_pack("{s:s,s:f,s:f,s:s,s:b}", "hash", "fnv1a64", "scaling_factor", scale,
                           "shift_factor", shift, "text_hidden",
                           o->penultimate ? "penultimate" : "last", "flip_variants",
                           o->flip_variants);
    if (!id)
        return ldm_fail(LDM_ENOMEM, "identity");
    /* only when not the default, so caches made before the option stay valid */
    if (o->cond_latent)
        json_object_set_new(id, "cond_store", json_string("latent"));
    int rc = hash_part(o->dir, "vae", id);
    if (!rc)
        rc = hash_part(o->dir, "text_encoder", id);
    if (!rc && m->te2)
        rc = hash_part(o->dir, "text_encoder_2", id);
    *out = rc ? NULL : json_dumps(id, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(id);
    if (!rc && !*out)
        rc = ldm_fail(LDM_ENOMEM, "identity");
    return rc;
}

/* Scratch of one batch, host memory. Letters: H×W the image, h×w its
 * latent; with a conditioning latent, cH×cW its image (cC channels as
 * sent) and ch×cw its latent. */
struct batch {
    size_t n;
    int64_t H, W, C, h, w, L, D1, D2, P;
    int64_t cC, cH, cW, ch, cw; /* all 0 without a conditioning latent */
    float *img, *mean, *logvar, *fmean, *flogvar, *h1, *h2, *pooled;
    float *cimg, *cmean, *clogvar; /* conditioning image and latent */
    int64_t *ids, *ids2;
    uint16_t *f16;
};

static void batch_free(struct batch *b)
{
    void *p[] = {b->img, b->mean, b->logvar, b->fmean, b->flogvar, b->h1, b->h2, b->pooled,
                 b->cimg, b->cmean, b->clogvar, b->ids, b->ids2, b->f16};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
}

int encoderd_same_shape(const Ldmpipe__Sample *x, const Ldmpipe__Sample *y)
{
    int cond_same = (!x->cond && !y->cond) ||
                    (x->cond && y->cond && x->cond->height == y->cond->height &&
                     x->cond->width == y->cond->width && x->cond->channels == y->cond->channels);
    return x->target_height == y->target_height && x->target_width == y->target_width &&
           x->n_input_ids == y->n_input_ids && x->n_input_ids_2 == y->n_input_ids_2 && cond_same;
}

static void *fmalloc(size_t n)
{
    return malloc((n ? n : 1) * sizeof(float));
}

/* The conditioning image and latent buffers (cond_latent and a conditioning image). */
static int cond_alloc(struct encoderd_models *m, const Ldmpipe__Sample *s, struct batch *b)
{
    if (!m->cond_latent || !s->cond)
        return 0;
    b->cC = s->cond->channels;
    b->cH = s->cond->height;
    b->cW = s->cond->width;
    b->ch = ldm_vae_latent_size(m->vae, b->cH);
    b->cw = ldm_vae_latent_size(m->vae, b->cW);
    size_t ncl = b->n * (size_t)(b->C * b->ch * b->cw);
    b->cimg = fmalloc(b->n * 3 * (size_t)(b->cH * b->cW));
    b->cmean = fmalloc(ncl);
    b->clogvar = fmalloc(ncl);
    return b->cimg && b->cmean && b->clogvar
               ? 0 : ldm_fail(LDM_ENOMEM, "conditioning latents of a batch of %zu", b->n);
}

static int batch_alloc(struct encoderd_models *m, const struct encoderd_item *it, size_t n,
                       struct batch *b)
{
    const struct ldm_vae_config *vc = ldm_vae_config(m->vae);
    b->n = n;
    b->H = it[0].s->target_height;
    b->W = it[0].s->target_width;
    b->C = vc->latent_channels;
    b->h = ldm_vae_latent_size(m->vae, b->H);
    b->w = ldm_vae_latent_size(m->vae, b->W);
    b->L = (int64_t)it[0].s->n_input_ids;
    b->D1 = ldm_clip_text_config(m->te)->hidden_size;
    b->D2 = m->te2 ? ldm_clip_text_config(m->te2)->hidden_size : 0;
    b->P = m->te2 ? ldm_clip_text_config(m->te2)->projection_dim : 0;
    size_t nl = n * (size_t)(b->C * b->h * b->w), nt = n * (size_t)b->L;
    b->img = fmalloc(n * 3 * (size_t)(b->H * b->W));
    b->mean = fmalloc(nl);
    b->logvar = fmalloc(nl);
    if (m->flip_variants) {
        b->fmean = fmalloc(nl);
        b->flogvar = fmalloc(nl);
    }
    b->h1 = fmalloc(nt * (size_t)b->D1);
    b->ids = malloc(nt * sizeof(int64_t));
    if (m->te2) {
        b->h2 = fmalloc(nt * (size_t)b->D2);
        b->pooled = fmalloc(n * (size_t)b->P);
        b->ids2 = malloc(nt * sizeof(int64_t));
    }
    int rc = cond_alloc(m, it[0].s, b);
    size_t f16 = (size_t)(b->C * b->h * b->w) * 4 + (size_t)(b->L * (b->D1 + b->D2) + b->P) +
                 (size_t)(b->C * b->ch * b->cw);
    b->f16 = malloc(f16 * sizeof(uint16_t));
    int bad = !b->img || !b->mean || !b->logvar || !b->h1 || !b->ids || !b->f16 ||
              (m->flip_variants && (!b->fmean || !b->flogvar)) ||
              (m->te2 && (!b->h2 || !b->pooled || !b->ids2));
    if (!rc && bad)
        rc = ldm_fail(LDM_ENOMEM, "encode batch of %zu at %lldx%lld", n, (long long)b->H,
                      (long long)b->W);
    return rc;
}

/* uint8 HWC (C = 3, or 1: grey, spread to R = G = B) -> float (3, H, W) in
 * [-1, 1] at dst, mirrored left-right when flip. */
static void px_to_float(float *dst, const uint8_t *src, int64_t H, int64_t W, int64_t C, int flip)
{
    size_t hw = (size_t)(H * W);
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            int64_t sx = flip ? W - 1 - x : x;
            const uint8_t *px = src + (size_t)((y * W + sx) * C);
            size_t o = (size_t)(y * W + x);
            for (int c = 0; c < 3; c++)
                dst[(size_t)c * hw + o] = (float)px[C == 3 ? c : 0] / 127.5f - 1.0f;
        }
}

/* The batch's images (cond: its conditioning images) into b->img (b->cimg). */
static void to_float(const struct batch *b, const struct encoderd_item *it, int flip, int cond)
{
    int64_t H = cond ? b->cH : b->H, W = cond ? b->cW : b->W;
    for (size_t i = 0; i < b->n; i++)
        px_to_float((cond ? b->cimg : b->img) + i * 3 * (size_t)(H * W),
                    cond ? it[i].cond : it[i].pixels, H, W, cond ? b->cC : 3, flip);
}

/* Encode images (N, 3, H, W) into mean and logvar (N, C, h, w), all in
 * host memory: in place on the CPU backend; on a device through copies
 * allocated for the call, an allocation that also makes the context's
 * device current on the calling thread (the intake thread encodes on a
 * context the main thread opened). */
static int vae_host(struct encoderd_models *m, float *img, int64_t N, int64_t H, int64_t W,
                    float *mean, float *lv, int64_t h, int64_t w)
{
    int64_t C = ldm_vae_config(m->vae)->latent_channels;
    struct ldm_tensor ti = ldm_tensor_f32(img, N, 3, H, W);
    struct ldm_tensor tm = ldm_tensor_f32(mean, N, C, h, w);
    struct ldm_tensor tl = ldm_tensor_f32(lv, N, C, h, w);
    if (m->ctx->device == LDM_DEV_CPU)
        return ldm_vae_encode(m->vae, &ti, &tm, &tl);
    size_t bi = ldm_tensor_nbytes(&ti), bl = ldm_tensor_nbytes(&tm), a = LDM_ARENA_ALIGN;
    size_t om = (bi + a - 1) / a * a, ol = om + (bl + a - 1) / a * a;
    char *d = NULL;
    int rc = ldm_ctx_alloc(m->ctx, ol + bl, (void **)&d);
    if (!rc) {
        ti.data = d, tm.data = d + om, tl.data = d + ol;
        rc = ldm_ctx_upload(m->ctx, d, img, bi);
    }
    if (!rc)
        rc = ldm_vae_encode(m->vae, &ti, &tm, &tl);
    if (!rc)
        rc = ldm_ctx_download(m->ctx, mean, d + om, bl);
    if (!rc)
        rc = ldm_ctx_download(m->ctx, lv, d + ol, bl);
    if (d)
        ldm_ctx_free(m->ctx, d);
    return rc;
}

static int run_vae(struct encoderd_models *m, struct batch *b, const struct encoderd_item *it)
{
    int64_t N = (int64_t)b->n;
    to_float(b, it, 0, 0);
    int rc = vae_host(m, b->img, N, b->H, b->W, b->mean, b->logvar, b->h, b->w);
    if (!rc && m->flip_variants) {
        to_float(b, it, 1, 0);
        rc = vae_host(m, b->img, N, b->H, b->W, b->fmean, b->flogvar, b->h, b->w);
    }
    if (!rc && b->cmean) {
        to_float(b, it, 0, 1);
        rc = vae_host(m, b->cimg, N, b->cH, b->cW, b->cmean, b->clogvar, b->ch, b->cw);
    }
    return rc;
}

static int run_text(struct encoderd_models *m, struct batch *b, const struct encoderd_item *it)
{
    for (size_t i = 0; i < b->n; i++)
        for (int64_t j = 0; j < b->L; j++) {
            b->ids[i * (size_t)b->L + (size_t)j] = it[i].s->input_ids[j];
            if (b->ids2)
                b->ids2[i * (size_t)b->L + (size_t)j] = it[i].s->input_ids_2[j];
        }
    int hidx = m->penultimate ? -2 : -1;
    struct ldm_clip_out o1 = {.hidden_index = hidx};
    if (m->penultimate)
        o1.hidden = b->h1;
    else
        o1.last_hidden_state = b->h1;
    int rc = ldm_clip_text_forward(m->te, b->ids, (int64_t)b->n, b->L, &o1);
    if (rc || !m->te2)
        return rc;
    struct ldm_clip_out o2 = {.hidden_index = hidx, .text_embeds = b->pooled};
    if (m->penultimate)
        o2.hidden = b->h2;
    else
        o2.last_hidden_state = b->h2;
    return ldm_clip_text_forward(m->te2, b->ids2, (int64_t)b->n, b->L, &o2);
}

static void put_f16(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ldm_f32_to_f16(src[i]);
}

/* Sample i's text states as fp16 (L, D1 + D2) at dst. */
static void text_f16(const struct batch *b, size_t i, uint16_t *dst)
{
    size_t D = (size_t)(b->D1 + b->D2);
    for (int64_t t = 0; t < b->L; t++) {
        size_t row = i * (size_t)b->L + (size_t)t;
        put_f16(dst + (size_t)t * D, b->h1 + row * (size_t)b->D1, (size_t)b->D1);
        if (b->h2)
            put_f16(dst + (size_t)t * D + (size_t)b->D1, b->h2 + row * (size_t)b->D2,
                    (size_t)b->D2);
    }
}

static void header(const struct batch *b, const Ldmpipe__Sample *s, struct ldm_record_hdr *h)
{
    *h = (struct ldm_record_hdr){
        .latent_c = (uint32_t)b->C, .latent_h = (uint32_t)b->h, .latent_w = (uint32_t)b->w,
        .text_len = (uint32_t)b->L, .text_dim = (uint32_t)(b->D1 + b->D2),
        .pooled_dim = (uint32_t)b->P, .n_ids = (uint32_t)(s->n_input_ids + s->n_input_ids_2),
        .bucket = s->bucket, .orig_h = s->original_height, .orig_w = s->original_width,
        .crop_top = s->crop_top, .crop_left = s->crop_left, .target_h = s->target_height,
        .target_w = s->target_width, .flip = s->flip};
    if (b->P)
        h->flags |= LDM_REC_POOLED;
    if (b->fmean)
        h->flags |= LDM_REC_FLIPPED;
    if (s->cond && b->cmean) {
        h->flags |= LDM_REC_COND_LATENT;
        h->cond_c = (uint32_t)b->C;
        h->cond_h = (uint32_t)b->ch;
        h->cond_w = (uint32_t)b->cw;
    } else if (s->cond) {
        h->flags |= LDM_REC_COND_PIXELS;
        h->cond_c = s->cond->channels;
        h->cond_h = s->cond->height;
        h->cond_w = s->cond->width;
    }
}

/* HWC -> CHW copy of the conditioning pixels (malloc'd). */
static uint8_t *cond_chw(const Ldmpipe__Sample *s, const uint8_t *src)
{
    size_t C = s->cond->channels, hw = (size_t)s->cond->height * s->cond->width;
    uint8_t *out = malloc(C * hw);
    for (size_t p = 0; out && p < hw; p++)
        for (size_t c = 0; c < C; c++)
            out[c * hw + p] = src[p * C + c];
    return out;
}

/* Sample i's conditioning section, or NULL without one: its latent mean
 * as fp16 at f16, or its pixels as CHW in *own (malloc'd; the caller
 * frees it). *oom is set when that copy could not be made. */
static const void *cond_section(const struct batch *b, const struct encoderd_item *it, size_t i,
                                uint16_t *f16, uint8_t **own, int *oom)
{
    *own = NULL;
    *oom = 0;
    if (!it->s->cond)
        return NULL;
    if (b->cmean) {
        size_t ncl = (size_t)(b->C * b->ch * b->cw);
        put_f16(f16, b->cmean + i * ncl, ncl);
        return f16;
    }
    *own = cond_chw(it->s, it->cond);
    *oom = !*own;
    return *own;
}

static int make_record(const struct batch *b, const struct encoderd_item *it, size_t i, void **rec,
                       size_t *len)
{
    const Ldmpipe__Sample *s = it->s;
    size_t nl = (size_t)(b->C * b->h * b->w), off = i * nl;
    uint16_t *mean = b->f16, *lv = mean + nl, *fm = lv + nl, *flv = fm + nl, *text = flv + nl;
    uint16_t *pooled = text + (size_t)(b->L * (b->D1 + b->D2)), *cond16 = pooled + b->P;
    struct ldm_record_hdr h;
    header(b, s, &h);
    put_f16(mean, b->mean + off, nl);
    put_f16(lv, b->logvar + off, nl);
    if (b->fmean) {
        put_f16(fm, b->fmean + off, nl);
        put_f16(flv, b->flogvar + off, nl);
    }
    text_f16(b, i, text);
    if (b->P)
        put_f16(pooled, b->pooled + i * (size_t)b->P, (size_t)b->P);
    uint32_t *ids = malloc((h.n_ids ? h.n_ids : 1) * sizeof *ids);
    uint8_t *cond = NULL;
    int oom = 0;
    const void *csec = cond_section(b, it, i, cond16, &cond, &oom);
    if (!ids || oom) {
        free(ids);
        free(cond);
        return ldm_fail(LDM_ENOMEM, "record of a sample");
    }
    if (s->n_input_ids)
        memcpy(ids, s->input_ids, s->n_input_ids * sizeof *ids);
    if (s->n_input_ids_2)
        memcpy(ids + s->n_input_ids, s->input_ids_2, s->n_input_ids_2 * sizeof *ids);
    struct ldm_record_sections sec = {mean, lv, b->fmean ? fm : NULL, b->fmean ? flv : NULL,
                                      text, b->P ? pooled : NULL, ids, csec};
    int rc = ldm_record_new(&h, &sec, rec, len);
    free(ids);
    free(cond);
    return rc;
}

/* "shard/key" of s into buf, for error details. */
static const char *sample_name(const Ldmpipe__Sample *s, char *buf, size_t size)
{
    snprintf(buf, size, "%.*s/%.*s", (int)s->shard.len, (const char *)s->shard.data,
             (int)s->key.len, (const char *)s->key.data);
    return buf;
}

int encoderd_check_sample(const struct encoderd_models *m, const Ldmpipe__Sample *s)
{
    int64_t maxL = ldm_clip_text_config(m->te)->max_position_embeddings;
    uint32_t min = (uint32_t)ldm_vae_image_size(m->vae, 1);
    const Ldmpipe__ImageLayout *im = s->image, *c = s->cond;
    char name[600];
    if (!s->n_input_ids || (int64_t)s->n_input_ids > maxL ||
        (m->te2 ? s->n_input_ids_2 != s->n_input_ids : s->n_input_ids_2 != 0))
        return ldm_fail(LDM_EINVAL, "sample '%s' has %zu and %zu token ids; the model takes "
                        "1..%lld ids%s", sample_name(s, name, sizeof name), s->n_input_ids,
                        s->n_input_ids_2, (long long)maxL,
                        m->te2 ? " for both encoders" : " and no second set");
    if (!im || im->channels != 3 || im->height < min || im->width < min)
        return ldm_fail(LDM_EINVAL, "sample '%s': image %ux%u with %u channels; the VAE takes "
                        "RGB of at least %ux%u", sample_name(s, name, sizeof name),
                        im ? im->height : 0, im ? im->width : 0, im ? im->channels : 0, min, min);
    if (c && m->cond_latent &&
        ((c->channels != 1 && c->channels != 3) || c->height < min || c->width < min))
        return ldm_fail(LDM_EINVAL, "sample '%s': conditioning image %ux%u with %u channels; "
                        "the VAE takes 1 or 3 channels of at least %ux%u",
                        sample_name(s, name, sizeof name), c->height, c->width, c->channels, min,
                        min);
    return 0;
}

static int check_items(const struct encoderd_models *m, const struct encoderd_item *it, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!encoderd_same_shape(it[0].s, it[i].s))
            return ldm_fail(LDM_EINVAL, "encode: sample %zu of the batch has another shape", i);
        int rc = encoderd_check_sample(m, it[i].s);
        if (rc)
            return rc;
    }
    return 0;
}

int encoderd_encode(struct encoderd_models *m, const struct encoderd_item *items, size_t n,
                    void **recs, size_t *lens)
{
    for (size_t i = 0; i < n; i++)
        recs[i] = NULL;
    int rc = n ? check_items(m, items, n) : 0;
    if (rc || !n)
        return rc;
    struct batch b = {0};
    rc = batch_alloc(m, items, n, &b);
    if (!rc)
        rc = run_vae(m, &b, items);
    if (!rc)
        rc = run_text(m, &b, items);
    for (size_t i = 0; i < n && !rc; i++)
        rc = make_record(&b, &items[i], i, &recs[i], &lens[i]);
    batch_free(&b);
    for (size_t i = 0; rc && i < n; i++) {
        free(recs[i]);
        recs[i] = NULL;
    }
    return rc;
}

/* The ids of the empty caption for the tokenizer in dir/sub, framed to L. */
static int empty_ids(const char *dir, const char *sub, int64_t L, int64_t *ids)
{
    char p[4200];
    struct ldm_clip_tok *tok = NULL;
    int32_t buf[1024];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    if (!exists(p))
        return ldm_fail(LDM_ENOTFOUND, "%s: no tokenizer folder", p);
    int rc = L > 1024 ? ldm_fail(LDM_EINVAL, "%s: %lld tokens", p, (long long)L)
                      : ldm_clip_tok_load_dir(p, &tok);
    if (!rc)
        rc = ldm_clip_tok_set_max_length(tok, (int)L);
    if (!rc)
        rc = ldm_clip_tok_frame(tok, "", 0, buf, NULL);
    for (int64_t i = 0; !rc && i < L; i++)
        ids[i] = buf[i];
    ldm_clip_tok_free(tok);
    return rc;
}

int encoderd_empty_caption(struct encoderd_models *m, void **rec, size_t *len)
{
    struct batch b = {.n = 1, .L = ldm_clip_text_config(m->te)->max_position_embeddings,
                      .D1 = ldm_clip_text_config(m->te)->hidden_size,
                      .D2 = m->te2 ? ldm_clip_text_config(m->te2)->hidden_size : 0,
                      .P = m->te2 ? ldm_clip_text_config(m->te2)->projection_dim : 0};
    b.h1 = malloc((size_t)(b.L * b.D1) * sizeof(float));
    b.ids = malloc((size_t)b.L * sizeof(int64_t));
    b.ids2 = m->te2 ? malloc((size_t)b.L * sizeof(int64_t)) : NULL;
    b.h2 = m->te2 ? malloc((size_t)(b.L * b.D2) * sizeof(float)) : NULL;
    b.pooled = m->te2 ? malloc((size_t)b.P * sizeof(float)) : NULL;
    uint16_t *f16 = malloc((size_t)(b.L * (b.D1 + b.D2) + b.P + 1) * sizeof(uint16_t));
    uint32_t *ids = malloc((size_t)b.L * 2 * sizeof(uint32_t));
    int rc = b.h1 && b.ids && f16 && ids && (!m->te2 || (b.h2 && b.pooled && b.ids2))
                 ? 0 : ldm_fail(LDM_ENOMEM, "empty caption");
    if (!rc) rc = empty_ids(m->dir, "tokenizer", b.L, b.ids);
    if (!rc && m->te2) rc = empty_ids(m->dir, "tokenizer_2", b.L, b.ids2);
    Ldmpipe__Sample s = LDMPIPE__SAMPLE__INIT;
    struct encoderd_item it = {.s = &s};
    uint32_t *ids2 = ids + b.L;
    for (int64_t i = 0; !rc && i < b.L; i++) {
        ids[i] = (uint32_t)b.ids[i];
        ids2[i] = m->te2 ? (uint32_t)b.ids2[i] : 0;
    }
    s.input_ids = ids, s.n_input_ids = (size_t)b.L;
    if (m->te2)
        s.input_ids_2 = ids2, s.n_input_ids_2 = (size_t)b.L;
    if (!rc) rc = run_text(m, &b, &it);
    if (!rc) {
        struct ldm_record_hdr h = {.text_len = (uint32_t)b.L,
                                   .text_dim = (uint32_t)(b.D1 + b.D2),
                                   .pooled_dim = (uint32_t)b.P,
                                   .n_ids = (uint32_t)(m->te2 ? 2 * b.L : b.L),
                                   .flags = b.P ? LDM_REC_POOLED : 0};
        uint16_t *pooled = f16 + (size_t)(b.L * (b.D1 + b.D2));
        text_f16(&b, 0, f16);
        if (b.P)
            put_f16(pooled, b.pooled, (size_t)b.P);
        struct ldm_record_sections sec = {.text = f16, .pooled = b.P ? pooled : NULL, .ids = ids};
        rc = ldm_record_new(&h, &sec, rec, len);
    }
    free(f16);
    free(ids);
    batch_free(&b);
    return rc;
}

/* prepare.c — the per-sample pipeline of loaderd. */
#include "prepare.h"
#include "models/clip_tokenizer.h"
#include "err.h"
#include "models/wordpiece.h"
#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const prep_names[] = {"decode", "too_big", "caption", "tokenize",
                                         "cond_decode"};

const char *ldm_prep_reason_name(int reason)
{
    if (reason >= LDM_REASON_COUNT && reason < LDM_PREP_REASON_COUNT)
        return prep_names[reason - LDM_REASON_COUNT];
    return ldm_reason_name(reason);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

int ldm_tokenizer_load(const char *path, int max_length, struct ldm_tokenizer *t)
{
    char vocab_txt[4096];
    struct stat st;
    memset(t, 0, sizeof *t);
    if (max_length < 2 || max_length > 512)
        return ldm_fail(LDM_EINVAL, "max_length %d: must be 2..512", max_length);
    t->max_length = max_length;
    snprintf(vocab_txt, sizeof vocab_txt, "%s/vocab.txt", path);
    int rc;
    if (ends_with(path, ".gz"))
        rc = ldm_clip_tok_load_bpe_gz(path, &t->clip);
    else if (stat(vocab_txt, &st) == 0)
        rc = ldm_wordpiece_load_dir(path, &t->wp);
    else
        rc = ldm_clip_tok_load_dir(path, &t->clip);
    if (!rc && t->clip)
        rc = ldm_clip_tok_set_max_length(t->clip, max_length);
    if (!rc && t->wp)
        rc = ldm_wordpiece_set_max_length(t->wp, max_length);
    if (rc)
        ldm_tokenizer_free(t);
    return rc;
}

void ldm_tokenizer_free(struct ldm_tokenizer *t)
{
    ldm_clip_tok_free(t->clip);
    ldm_wordpiece_free(t->wp);
    memset(t, 0, sizeof *t);
}

/* Frame `text` into ids (uint32 on the wire). n = 0 without a tokenizer. */
static int tokenize(const struct ldm_tokenizer *t, const char *text, uint32_t *ids, size_t *n)
{
    int32_t buf[512];
    int rc = 0;
    *n = 0;
    if (t->clip)
        rc = ldm_clip_tok_frame(t->clip, text, strlen(text), buf, NULL);
    else if (t->wp)
        rc = ldm_wordpiece_frame(t->wp, text, strlen(text), buf, NULL);
    else
        return 0;
    if (rc)
        return rc;
    for (int i = 0; i < t->max_length; i++)
        ids[i] = (uint32_t)buf[i];
    *n = (size_t)t->max_length;
    return 0;
}

static int draw(void *ctx, int n)
{
    return (int)ldm_rng_below(ctx, (uint64_t)n);
}

/* Caption: pick one (when a json list gave several), apply the options,
 * tokenize. */
static int caption(const struct ldm_prep_shared *sh, const struct ldm_fields *f,
                   struct ldm_rng *rng, struct ldm_prepared *p)
{
    const char *c = f->captions[0];
    if (f->ncaptions > 1)
        c = f->captions[ldm_rng_below(rng, f->ncaptions)];
    free(p->caption);
    p->caption = NULL;
    int rc = ldm_caption_apply(&sh->cap, c, rng, &p->caption);
    if (rc)
        return rc == LDM_ENOMEM ? rc : LDM_PREP_CAPTION;
    rc = tokenize(&sh->tok, p->caption, p->ids, &p->nids);
    if (!rc)
        rc = tokenize(&sh->tok2, p->caption, p->ids2, &p->nids2);
    return rc == LDM_ENOMEM ? rc : rc ? LDM_PREP_TOKENIZE : 0;
}

static int geometry(const struct ldm_prep_shared *sh, const struct ldm_member *m,
                    const char *label, struct ldm_rng *rng, struct ldm_geometry *g)
{
    struct ldm_image_info info;
    int rc = ldm_image_probe(m->data, m->len, label, &sh->dec, &info);
    if (rc)
        return rc == LDM_ERANGE ? LDM_PREP_TOO_BIG : LDM_PREP_DECODE;
    struct ldm_transform_params tp = sh->tp;
    tp.flip = sh->random_flip ? ldm_rng_bernoulli(rng, 0.5) : 0;
    if (sh->buckets.n > 0)
        rc = ldm_bucket_plan(&sh->buckets, info.w, info.h, &tp, draw, rng, g);
    else
        rc = ldm_transform_plan(info.w, info.h, &tp, draw, rng, g);
    return rc ? LDM_PREP_DECODE : 0;
}

static int pixels(const struct ldm_prep_shared *sh, const struct ldm_member *m, const char *label,
                  const struct ldm_geometry *g, struct ldm_image *out, int reason)
{
    ldm_image_free(out);
    int rc = ldm_transform_decode(m->data, m->len, label, &sh->dec, &sh->tp, g, out, NULL);
    if (rc == LDM_ENOMEM)
        return rc;
    if (rc == LDM_ERANGE)
        return LDM_PREP_TOO_BIG;
    return rc ? reason : 0;
}

int ldm_prepare(const struct ldm_prep_shared *sh, const struct ldm_raw_sample *raw,
                uint32_t epoch, struct ldm_prepared *p)
{
    if (raw->reason) {
        ldm_fail(LDM_EFORMAT, "%s", raw->detail ? raw->detail : "rejected by the source");
        return raw->reason;
    }
    struct ldm_fields f;
    int rc = ldm_sample_fields(raw, &sh->fields, &f);
    if (rc) {
        int reason = f.reason;
        ldm_fields_free(&f);
        return rc == LDM_ENOMEM ? rc : reason;
    }
    uint64_t seed = ldm_rng_sample_seed(sh->seed, raw->shard, raw->key, epoch);
    struct ldm_rng geo, cap;
    ldm_rng_init(&geo, seed, 0);
    ldm_rng_init(&cap, seed, 1);
    char label[600];
    snprintf(label, sizeof label, "%s: %s.%s", raw->shard, raw->key, f.image->ext);
    rc = caption(sh, &f, &cap, p);
    if (!rc)
        rc = geometry(sh, f.image, label, &geo, &p->g);
    if (!rc)
        rc = pixels(sh, f.image, label, &p->g, &p->img, LDM_PREP_DECODE);
    ldm_image_free(&p->cond);
    if (!rc && f.cond) {
        snprintf(label, sizeof label, "%s: %s.%s", raw->shard, raw->key, f.cond->ext);
        rc = pixels(sh, f.cond, label, &p->g, &p->cond, LDM_PREP_COND);
    }
    ldm_fields_free(&f);
    return rc;
}

void ldm_prepared_out(const struct ldm_prepared *p, const struct ldm_raw_sample *raw,
                      struct ldm_outsample *o)
{
    memset(o, 0, sizeof *o);
    o->shard = raw->shard;
    o->key = raw->key;
    o->index = raw->index;
    o->caption = p->caption;
    o->ids = p->ids;
    o->nids = p->nids;
    o->ids2 = p->ids2;
    o->nids2 = p->nids2;
    o->orig_h = (uint32_t)p->g.orig_h;
    o->orig_w = (uint32_t)p->g.orig_w;
    o->crop_top = (uint32_t)p->g.crop_top;
    o->crop_left = (uint32_t)p->g.crop_left;
    o->bucket = p->g.bucket < 0 ? 0 : (uint32_t)p->g.bucket;
    o->flip = p->g.flip;
    o->image = (struct ldm_pixels){p->img.px, (uint32_t)p->img.h, (uint32_t)p->img.w,
                                   (uint32_t)p->img.c};
    if (p->cond.px)
        o->cond = (struct ldm_pixels){p->cond.px, (uint32_t)p->cond.h, (uint32_t)p->cond.w,
                                      (uint32_t)p->cond.c};
}

void ldm_prepared_free(struct ldm_prepared *p)
{
    ldm_image_free(&p->img);
    ldm_image_free(&p->cond);
    free(p->caption);
    memset(p, 0, sizeof *p);
}

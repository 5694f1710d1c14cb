/* text.c — prompts through the model's tokenizers and CLIP text encoders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "evald/text.h"
#include "models/clip_text.h"
#include "models/clip_tokenizer.h"

struct ev_text {
    struct ldm_clip_tok *tok, *tok2;
    struct ldm_clip_text *te, *te2;
    int64_t L, D1, D2, P;
};

static int load_pair(const char *model, const char *tdir, const char *edir, int proj,
                     struct ldm_ctx *ctx, struct ldm_clip_tok **tok, struct ldm_clip_text **te)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", model, tdir);
    int rc = ldm_clip_tok_load_dir(p, tok);
    snprintf(p, sizeof p, "%s/%s", model, edir);
    if (!rc)
        rc = ldm_clip_text_load(te, ctx, p, proj);
    if (!rc)
        rc = ldm_clip_tok_set_max_length(*tok, (int)ldm_clip_text_config(*te)->max_position_embeddings);
    return rc;
}

int ev_text_open(struct ev_text **out, struct ldm_ctx *ctx, const char *model)
{
    struct ev_text *t = calloc(1, sizeof *t);
    char p[4200];
    struct stat st;
    if (!t)
        return ldm_fail(LDM_ENOMEM, "text encoders");
    int rc = load_pair(model, "tokenizer", "text_encoder", 0, ctx, &t->tok, &t->te);
    snprintf(p, sizeof p, "%s/text_encoder_2", model);
    if (!rc && stat(p, &st) == 0)
        rc = load_pair(model, "tokenizer_2", "text_encoder_2", 1, ctx, &t->tok2, &t->te2);
    if (rc) {
        ev_text_close(&t);
        return rc;
    }
    t->L = ldm_clip_text_config(t->te)->max_position_embeddings;
    t->D1 = ldm_clip_text_config(t->te)->hidden_size;
    t->D2 = t->te2 ? ldm_clip_text_config(t->te2)->hidden_size : 0;
    t->P = t->te2 ? ldm_clip_text_config(t->te2)->projection_dim : 0;
    *out = t;
    return 0;
}

void ev_text_close(struct ev_text **pt)
{
    struct ev_text *t = *pt;
    if (!t)
        return;
    ldm_clip_tok_free(t->tok);
    ldm_clip_tok_free(t->tok2);
    ldm_clip_text_free(&t->te);
    ldm_clip_text_free(&t->te2);
    free(t);
    *pt = NULL;
}

void ev_text_dims(const struct ev_text *t, int64_t *L, int64_t *D, int64_t *P)
{
    *L = t->L, *D = t->D1 + t->D2, *P = t->P;
}

/* Framed ids of n prompts for one tokenizer. */
static int frame_all(const struct ldm_clip_tok *tok, const char *const *prompts, int64_t n,
                     int64_t L, int64_t *ids)
{
    int32_t buf[1024];
    for (int64_t i = 0; i < n; i++) {
        int rc = L > 1024 ? ldm_fail(LDM_EINVAL, "%lld tokens", (long long)L)
                          : ldm_clip_tok_frame(tok, prompts[i], strlen(prompts[i]), buf, NULL);
        if (rc)
            return ldm_fail(rc, "prompt %lld: %s", (long long)i + 1, ldm_errmsg());
        for (int64_t j = 0; j < L; j++)
            ids[i * L + j] = buf[j];
    }
    return 0;
}

/* One encoder's states of n prompts into h (n, L, Dk). */
static int run_one(struct ev_text *t, int second, const int64_t *ids, int64_t n, float *h,
                   float *pooled)
{
    struct ldm_clip_out o = {.hidden_index = t->te2 ? -2 : -1};
    if (t->te2)
        o.hidden = h;
    else
        o.last_hidden_state = h;
    if (second)
        o.text_embeds = pooled;
    return ldm_clip_text_forward(second ? t->te2 : t->te, ids, n, t->L, &o);
}

int ev_text_encode(struct ev_text *t, const char *const *prompts, int64_t n, float *ehs,
                   float *pooled)
{
    size_t L = (size_t)t->L;
    int64_t *ids = malloc((size_t)n * L * sizeof *ids);
    float *h1 = malloc((size_t)n * L * (size_t)t->D1 * sizeof *h1);
    float *h2 = t->te2 ? malloc((size_t)n * L * (size_t)t->D2 * sizeof *h2) : NULL;
    int rc = ids && h1 && (!t->te2 || h2) ? 0 : ldm_fail(LDM_ENOMEM, "prompt states");
    if (!rc) rc = frame_all(t->tok, prompts, n, t->L, ids);
    if (!rc) rc = run_one(t, 0, ids, n, h1, NULL);
    if (!rc && t->te2) rc = frame_all(t->tok2, prompts, n, t->L, ids);
    if (!rc && t->te2) rc = run_one(t, 1, ids, n, h2, pooled);
    size_t D = (size_t)(t->D1 + t->D2);
    for (size_t r = 0; !rc && r < (size_t)n * L; r++) {
        memcpy(ehs + r * D, h1 + r * (size_t)t->D1, (size_t)t->D1 * sizeof *ehs);
        if (h2)
            memcpy(ehs + r * D + t->D1, h2 + r * (size_t)t->D2, (size_t)t->D2 * sizeof *ehs);
    }
    free(ids);
    free(h1);
    free(h2);
    return rc;
}

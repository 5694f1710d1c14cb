/* index.c — the cache's samples by shape class, and the per-epoch batch plan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "rng.h"
#include "trainerd/index.h"

static void class_of(const struct ldm_record_hdr *h, struct td_class *c)
{
    *c = (struct td_class){
        .lc = h->latent_c, .lh = h->latent_h, .lw = h->latent_w, .tl = h->text_len,
        .td = h->text_dim, .pooled = h->pooled_dim,
        .cond_kind = h->flags & (LDM_REC_COND_LATENT | LDM_REC_COND_PIXELS),
        .cc = h->cond_c, .ch = h->cond_h, .cw = h->cond_w};
}

static int class_find(struct td_index *ix, const struct td_class *c, uint32_t *out)
{
    for (size_t i = 0; i < ix->ncls; i++)
        if (!memcmp(&ix->classes[i], c, sizeof *c)) {
            *out = (uint32_t)i;
            return 0;
        }
    struct td_class *nc = realloc(ix->classes, (ix->ncls + 1) * sizeof *nc);
    if (!nc)
        return ldm_fail(LDM_ENOMEM, "cache index: out of memory");
    ix->classes = nc;
    nc[ix->ncls] = *c;
    *out = (uint32_t)ix->ncls++;
    return 0;
}

/* Append one sample (key of klen bytes, its parsed record). */
static int add(struct td_index *ix, size_t *cap, const char *key, size_t klen,
               const struct ldm_record *r)
{
    if (ix->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        char **k = realloc(ix->keys, nc * sizeof *k);
        if (k)
            ix->keys = k;
        uint32_t *c = realloc(ix->cls, nc * sizeof *c);
        if (c)
            ix->cls = c;
        if (!k || !c)
            return ldm_fail(LDM_ENOMEM, "cache index: out of memory");
        *cap = nc;
    }
    struct td_class c;
    class_of(&r->hdr, &c);
    int rc = class_find(ix, &c, &ix->cls[ix->n]);
    if (rc)
        return rc;
    ix->keys[ix->n] = strndup(key, klen);
    if (!ix->keys[ix->n])
        return ldm_fail(LDM_ENOMEM, "cache index: out of memory");
    ix->n++;
    return 0;
}

/* A record fit for training: it has a latent and text states. */
static int usable(const struct ldm_record *r)
{
    return r->hdr.latent_c && r->hdr.text_len;
}

int td_index_scan(struct ldm_store *st, struct td_index *ix)
{
    memset(ix, 0, sizeof *ix);
    struct ldm_store_txn *t = NULL;
    struct ldm_store_cursor *cur = NULL;
    size_t cap = 0;
    int rc = ldm_store_read_begin(st, &t);
    if (!rc)
        rc = ldm_store_cursor_open(t, LDM_DB_SAMPLES, &cur);
    struct ldm_store_kv kv;
    while (!rc && (rc = ldm_store_cursor_next(cur, &kv)) == 0) {
        struct ldm_record r;
        char label[96];
        snprintf(label, sizeof label, "%.*s", (int)(kv.key_len < 80 ? kv.key_len : 80), kv.key);
        int bad = ldm_record_parse(kv.val, kv.val_len, label, &r);
        if (bad || !usable(&r)) {
            if (ix->bad++ < 10)
                LOG_WARN("cache sample left out", "key=%s error=\"%s\"", label,
                         bad ? ldm_errmsg() : "no latent or text");
            continue;
        }
        rc = add(ix, &cap, kv.key, kv.key_len, &r);
    }
    if (rc == LDM_ENOTFOUND)
        rc = 0;
    ldm_store_cursor_close(&cur);
    ldm_store_read_end(&t);
    if (rc)
        td_index_free(ix);
    return rc;
}

int td_index_from_keys(struct ldm_store *st, const char *buf, size_t len, struct td_index *ix)
{
    memset(ix, 0, sizeof *ix);
    struct ldm_store_txn *t = NULL;
    size_t cap = 0;
    int rc = ldm_store_read_begin(st, &t);
    for (size_t off = 0; !rc && off < len;) {
        const char *key = buf + off;
        size_t kl = strnlen(key, len - off);
        if (off + kl == len) {
            rc = ldm_fail(LDM_EFORMAT, "saved key list: the last key is not terminated");
            break;
        }
        struct ldm_record r;
        rc = ldm_store_get(t, key, &r);
        if (rc == LDM_ENOTFOUND)
            rc = ldm_fail(LDM_ENOTFOUND, "sample %s of the saved epoch is not in the cache %s",
                          key, ldm_store_path(st));
        if (!rc && !usable(&r))
            rc = ldm_fail(LDM_EFORMAT, "sample %s: no latent or text", key);
        if (!rc)
            rc = add(ix, &cap, key, kl, &r);
        off += kl + 1;
    }
    ldm_store_read_end(&t);
    if (rc)
        td_index_free(ix);
    return rc;
}

int td_index_keys_blob(const struct td_index *ix, char **buf, size_t *len)
{
    size_t n = 0;
    for (size_t i = 0; i < ix->n; i++)
        n += strlen(ix->keys[i]) + 1;
    char *b = malloc(n ? n : 1), *p = b;
    if (!b)
        return ldm_fail(LDM_ENOMEM, "key list of %zu samples", ix->n);
    for (size_t i = 0; i < ix->n; i++) {
        size_t k = strlen(ix->keys[i]) + 1;
        memcpy(p, ix->keys[i], k);
        p += k;
    }
    *buf = b;
    *len = n;
    return 0;
}

void td_index_free(struct td_index *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        free(ix->keys[i]);
    free(ix->keys);
    free(ix->cls);
    free(ix->classes);
    memset(ix, 0, sizeof *ix);
}

/* Deal the shuffled order into per-class pending lists; a full list is a batch. */
static int deal(const struct td_index *ix, const size_t *order, size_t G, struct td_plan *p)
{
    size_t *pend = malloc(ix->ncls * G * sizeof *pend + 1);
    size_t *fill = calloc(ix->ncls + 1, sizeof *fill);
    p->items = malloc((ix->n / (G ? G : 1) + 1) * G * sizeof *p->items + 1);
    if (!pend || !fill || !p->items) {
        free(pend);
        free(fill);
        return ldm_fail(LDM_ENOMEM, "epoch plan of %zu samples", ix->n);
    }
    for (size_t i = 0; i < ix->n; i++) {
        size_t s = order[i], c = ix->cls[s];
        pend[c * G + fill[c]++] = s;
        if (fill[c] == G) {
            memcpy(p->items + p->nbatches * G, pend + c * G, G * sizeof *pend);
            p->nbatches++;
            fill[c] = 0;
        }
    }
    free(pend);
    free(fill);
    return 0;
}

int td_plan_epoch(const struct td_index *ix, uint64_t seed, int64_t epoch, size_t G,
                  struct td_plan *p)
{
    memset(p, 0, sizeof *p);
    p->G = G;
    if (!G)
        return ldm_fail(LDM_EINVAL, "epoch plan: batch size 0");
    size_t *order = malloc(ix->n * sizeof *order + 1);
    if (!order)
        return ldm_fail(LDM_ENOMEM, "epoch plan of %zu samples", ix->n);
    for (size_t i = 0; i < ix->n; i++)
        order[i] = i;
    struct ldm_rng r;
    ldm_rng_init(&r, ldm_rng_mix(seed ^ ldm_rng_mix((uint64_t)epoch + 0x65706f6368ull)), 0);
    ldm_rng_shuffle(&r, order, ix->n, sizeof *order);
    int rc = deal(ix, order, G, p);
    free(order);
    return rc;
}

void td_plan_free(struct td_plan *p)
{
    free(p->items);
    memset(p, 0, sizeof *p);
}

/* store_batch.c — writes of the latent cache: sample batches with their shards' ledger
 * entries in one transaction, ledger state, ledger reads (store.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_int.h"

#define MAX_INDEX ((uint64_t)1 << 62) /* far above any shard's sample count */

/* A batch prepared for writing: each item's composed key and shard group. */
struct batch {
    const struct ldm_store_item *items;
    size_t n;
    char *keys;      /* the "SHARD/KEY" strings, back to back, NUL-terminated */
    size_t *key_off; /* item -> offset in keys */
    size_t *group;   /* item -> index of its shard's group */
    size_t *first;   /* group -> its first item */
    size_t ngroups;
    size_t stored, duplicates; /* of the current try */
};

static void batch_free(struct batch *b)
{
    free(b->keys);
    free(b->key_off);
    free(b->group);
    free(b->first);
}

/* Re-record the current detail as LDM_EINVAL, prefixed with the item. */
static int item_fail(size_t i, const char *what)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s", ldm_errmsg());
    return ldm_fail(LDM_EINVAL, "batch item %zu (%s): %s", i, what, detail);
}

/* Check item i and compose its key at b->keys + *used. */
static int prepare_item(struct ldm_store *s, struct batch *b, size_t i, size_t *used)
{
    const struct ldm_store_item *it = &b->items[i];
    char *key = b->keys + *used;
    size_t len = 0;
    if (!it->shard || strlen(it->shard) > (size_t)s->max_key)
        return ldm_fail(LDM_EINVAL, "batch item %zu: shard URL missing or longer than %d bytes", i,
                        s->max_key);
    if (ldm_store_sample_key(it->shard, it->key, key, LDM_STORE_MAX_KEY + 1, &len) != 0)
        return item_fail(i, it->key ? it->key : "no key");
    if (it->index >= MAX_INDEX)
        return ldm_fail(LDM_EINVAL, "batch item %zu (%s): index %llu out of range", i, key,
                        (unsigned long long)it->index);
    struct ldm_record r;
    if (it->record && ldm_record_parse(it->record, it->record_len, key, &r) != 0)
        return item_fail(i, key);
    b->key_off[i] = *used;
    *used += len + 1;
    return 0;
}

/* Group id of item i: the first earlier item with the same shard's. */
static void assign_group(struct batch *b, size_t i)
{
    for (size_t g = 0; g < b->ngroups; g++)
        if (strcmp(b->items[b->first[g]].shard, b->items[i].shard) == 0) {
            b->group[i] = g;
            return;
        }
    b->first[b->ngroups] = i;
    b->group[i] = b->ngroups++;
}

static int batch_prepare(struct ldm_store *s, struct batch *b)
{
    size_t n = b->n;
    b->keys = malloc(n * (LDM_STORE_MAX_KEY + 1));
    b->key_off = malloc(n * sizeof *b->key_off);
    b->group = malloc(n * sizeof *b->group);
    b->first = malloc(n * sizeof *b->first);
    if (!b->keys || !b->key_off || !b->group || !b->first)
        return ldm_fail(LDM_ENOMEM, "%s: batch of %zu", s->path, n);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (!b->items[i].shard || !b->items[i].key)
            return ldm_fail(LDM_EINVAL, "batch item %zu: no shard or key", i);
        int rc = prepare_item(s, b, i, &used);
        if (rc)
            return rc;
        assign_group(b, i);
    }
    return 0;
}

/* ---- ledger entries inside a write transaction ---------------------------------- */

/* Read shard `url`'s entry (a fresh pending one when absent). */
static int ledger_load(struct ldm_store *s, MDB_txn *txn, const char *url,
                       struct ldm_shard_info *info)
{
    MDB_val k = {strlen(url), (void *)url}, v;
    int mrc = mdb_get(txn, s->dbi[LDM_DB_SHARDS], &k, &v);
    if (mrc == MDB_NOTFOUND) {
        memset(info, 0, sizeof *info);
        info->state.status = LDM_SHARD_PENDING;
        info->state.reported = LDM_SHARD_UNREPORTED;
        return 0;
    }
    if (mrc)
        return store_mdb_fail(s, mrc, "read shard entry");
    return ldm_shard_parse(v.mv_data, v.mv_size, url, info);
}

static int ledger_store(struct ldm_store *s, MDB_txn *txn, const char *url,
                        struct ldm_shard_info *info)
{
    info->updated_ms = store_now_ms();
    MDB_val k = {strlen(url), (void *)url}, v = {shard_value_size(info), NULL};
    int mrc = mdb_put(txn, s->dbi[LDM_DB_SHARDS], &k, &v, MDB_RESERVE);
    if (mrc)
        return store_mdb_fail(s, mrc, "write shard entry");
    shard_value_encode(info, v.mv_data);
    return 0;
}

/* ---- batches ------------------------------------------------------------------------ */

static int batch_item(struct ldm_store *s, MDB_txn *txn, struct batch *b, size_t i,
                      struct ldm_shard_info *info)
{
    const struct ldm_store_item *it = &b->items[i];
    int added = shard_ranges_add(info, it->index);
    if (added < 0)
        return added;
    if (!it->record) {
        if (added)
            info->rejected++;
        else
            info->duplicates++;
        return 0;
    }
    const char *key = b->keys + b->key_off[i];
    MDB_val k = {strlen(key), (void *)key}, v = {it->record_len, (void *)it->record};
    int mrc = mdb_put(txn, s->dbi[LDM_DB_SAMPLES], &k, &v, MDB_NOOVERWRITE);
    if (mrc == MDB_KEYEXIST) {
        b->duplicates++;
        info->duplicates++;
        return 0;
    }
    if (mrc)
        return store_mdb_fail(s, mrc, "put sample");
    b->stored++;
    info->stored++;
    return 0;
}

static int batch_group(struct ldm_store *s, MDB_txn *txn, struct batch *b, size_t g)
{
    const char *url = b->items[b->first[g]].shard;
    struct ldm_shard_info info;
    int rc = ledger_load(s, txn, url, &info);
    for (size_t i = b->first[g]; i < b->n && rc == 0; i++)
        if (b->group[i] == g)
            rc = batch_item(s, txn, b, i, &info);
    if (rc == 0)
        rc = ledger_store(s, txn, url, &info);
    ldm_shard_info_free(&info);
    return rc;
}

static int batch_fn(struct ldm_store *s, MDB_txn *txn, void *ctx)
{
    struct batch *b = ctx;
    b->stored = b->duplicates = 0;
    int rc = 0;
    for (size_t g = 0; g < b->ngroups && rc == 0; g++)
        rc = batch_group(s, txn, b, g);
    return rc;
}

int ldm_store_put_batch(struct ldm_store *s, const struct ldm_store_item *items, size_t n,
                        size_t *stored, size_t *duplicates)
{
    struct batch b = {.items = items, .n = n};
    if (stored)
        *stored = 0;
    if (duplicates)
        *duplicates = 0;
    if (s->readonly)
        return ldm_fail(LDM_EINVAL, "%s: put batch: the store is open read-only", s->path);
    if (n == 0)
        return 0;
    if (!items)
        return ldm_fail(LDM_EINVAL, "%s: put batch: no items", s->path);
    int rc = batch_prepare(s, &b);
    if (rc == 0)
        rc = store_write(s, "put batch", batch_fn, &b);
    batch_free(&b);
    if (rc == 0 && stored)
        *stored = b.stored;
    if (rc == 0 && duplicates)
        *duplicates = b.duplicates;
    return rc;
}

/* ---- ledger state ----------------------------------------------------------------------- */

struct state_put {
    const char *url;
    const struct ldm_shard_state *st;
};

static int state_fn(struct ldm_store *s, MDB_txn *txn, void *ctx)
{
    struct state_put *p = ctx;
    struct ldm_shard_info info;
    int rc = ledger_load(s, txn, p->url, &info);
    if (rc)
        return rc;
    info.state = *p->st;
    info.state.error[LDM_SHARD_ERROR_MAX] = '\0';
    rc = ledger_store(s, txn, p->url, &info);
    ldm_shard_info_free(&info);
    return rc;
}

int ldm_store_shard_put(struct ldm_store *s, const char *url, const struct ldm_shard_state *st)
{
    if (!url || !*url || strlen(url) > (size_t)s->max_key)
        return ldm_fail(LDM_EINVAL, "%s: shard URL empty or longer than %d bytes", s->path,
                        s->max_key);
    if (!st || st->status < 0 || st->status >= LDM_SHARD_NSTATUS)
        return ldm_fail(LDM_EINVAL, "shard '%s': status %d unknown", url, st ? st->status : -1);
    if (memchr(st->error, '\0', sizeof st->error) == NULL)
        return ldm_fail(LDM_EINVAL, "shard '%s': error text not NUL-terminated", url);
    struct state_put p = {url, st};
    return store_write(s, "shard put", state_fn, &p);
}

int ldm_store_shard_get(struct ldm_store *s, const char *url, struct ldm_shard_info *out)
{
    struct ldm_store_txn *t;
    const void *v = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    int rc = ldm_store_read_begin(s, &t);
    if (rc)
        return rc;
    rc = ldm_store_get_raw(t, LDM_DB_SHARDS, url, &v, &len);
    if (rc == LDM_ENOTFOUND)
        ldm_fail(rc, "%s: no ledger entry for shard '%s'", s->path, url);
    else if (rc == 0)
        rc = ldm_shard_parse(v, len, url, out);
    ldm_store_read_end(&t);
    return rc;
}

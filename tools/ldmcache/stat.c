/* stat.c — ldmcache stat: what a latent cache holds, as text or JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldmcache.h"

#define NBUCKETS (LDM_REC_MAX_SIDE + 1)
#define TEXT_FAILED_SHOWN 10

struct tally {
    uint64_t samples, bytes, unreadable, flipped, cond, pooled;
    uint64_t *buckets; /* NBUCKETS counts */
    uint64_t shards[LDM_SHARD_NSTATUS], shards_bad;
    uint64_t stored, rejected, duplicates;
    json_t *shard_list; /* one object per shard */
    json_t *meta;       /* name -> bytes */
    json_t *identity;   /* meta identity as JSON, or its text */
};

static void tally_sample(struct tally *t, const struct ldm_store_kv *kv)
{
    struct ldm_record r;
    t->samples++;
    t->bytes += kv->val_len;
    if (ldm_record_parse(kv->val, kv->val_len, "sample", &r) != 0) {
        t->unreadable++;
        return;
    }
    t->buckets[r.hdr.bucket]++;
    t->flipped += (r.hdr.flags & LDM_REC_FLIPPED) != 0;
    t->pooled += (r.hdr.flags & LDM_REC_POOLED) != 0;
    t->cond += (r.hdr.flags & (LDM_REC_COND_LATENT | LDM_REC_COND_PIXELS)) != 0;
}

static json_t *shard_json(const char *url, const struct ldm_shard_info *in)
{
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "url", url, "status",
                  ldm_shard_status_name(in->state.status), "stored", (json_int_t)in->stored,
                  "rejected", (json_int_t)in->rejected, "duplicates", (json_int_t)in->duplicates,
                  "processed", (json_int_t)ldm_shard_processed(in), "first_unprocessed",
                  (json_int_t)ldm_shard_first_unprocessed(in), "ranges", (json_int_t)in->nranges,
                  "lease", (json_int_t)in->state.lease, "epoch", (json_int_t)in->state.epoch);
    if (o && in->state.reported != LDM_SHARD_UNREPORTED)
        json_object_set_new(o, "reported", json_integer((json_int_t)in->state.reported));
    if (o && in->state.error[0])
        json_object_set_new(o, "error", json_string(in->state.error));
    return o;
}

static void tally_shard(struct tally *t, const struct ldm_store_kv *kv)
{
    char url[LDM_STORE_MAX_KEY + 1];
    snprintf(url, sizeof url, "%.*s", (int)kv->key_len, kv->key);
    struct ldm_shard_info in;
    if (ldm_shard_parse(kv->val, kv->val_len, url, &in) != 0) {
        t->shards_bad++;
        return;
    }
    t->shards[in.state.status]++;
    t->stored += in.stored;
    t->rejected += in.rejected;
    t->duplicates += in.duplicates;
    json_array_append_new(t->shard_list, shard_json(url, &in));
    ldm_shard_info_free(&in);
}

static void tally_meta(struct tally *t, const struct ldm_store_kv *kv)
{
    char name[LDM_STORE_MAX_KEY + 1];
    snprintf(name, sizeof name, "%.*s", (int)kv->key_len, kv->key);
    json_object_set_new(t->meta, name, json_integer((json_int_t)kv->val_len));
    if (strcmp(name, LDM_META_IDENTITY) != 0)
        return;
    json_t *id = json_loadb(kv->val, kv->val_len, 0, NULL);
    t->identity = id ? id : json_stringn_nocheck(kv->val, kv->val_len);
}

/* Walk one database, handing each entry to fn. */
static int walk(struct ldm_store_txn *txn, int db, struct tally *t,
                void (*fn)(struct tally *, const struct ldm_store_kv *))
{
    struct ldm_store_cursor *c;
    struct ldm_store_kv kv;
    int rc = ldm_store_cursor_open(txn, db, &c);
    while (rc == 0 && (rc = ldm_store_cursor_next(c, &kv)) == 0)
        fn(t, &kv);
    ldm_store_cursor_close(&c);
    return rc == LDM_ENOTFOUND ? 0 : rc;
}

static int gather(struct ldm_store *s, struct tally *t)
{
    struct ldm_store_txn *txn;
    t->buckets = calloc(NBUCKETS, sizeof *t->buckets);
    t->shard_list = json_array();
    t->meta = json_object();
    if (!t->buckets || !t->shard_list || !t->meta)
        return ldm_fail(LDM_ENOMEM, "stat tables");
    int rc = ldm_store_read_begin(s, &txn);
    if (rc)
        return rc;
    rc = walk(txn, LDM_DB_SAMPLES, t, tally_sample);
    if (rc == 0)
        rc = walk(txn, LDM_DB_SHARDS, t, tally_shard);
    if (rc == 0)
        rc = walk(txn, LDM_DB_META, t, tally_meta);
    ldm_store_read_end(&txn);
    return rc;
}

static void tally_free(struct tally *t)
{
    free(t->buckets);
    json_decref(t->shard_list);
    json_decref(t->meta);
    json_decref(t->identity);
}

/* ---- output ------------------------------------------------------------------------ */

static json_t *buckets_json(const struct tally *t)
{
    json_t *o = json_object();
    for (size_t b = 0; o && b < NBUCKETS; b++)
        if (t->buckets[b]) {
            char name[16];
            snprintf(name, sizeof name, "%zu", b);
            json_object_set_new(o, name, json_integer((json_int_t)t->buckets[b]));
        }
    return o;
}

static json_t *shards_json(const struct tally *t)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "total",
                          (json_int_t)json_array_size(t->shard_list), "stored",
                          (json_int_t)t->stored, "rejected", (json_int_t)t->rejected, "duplicates",
                          (json_int_t)t->duplicates, "unreadable", (json_int_t)t->shards_bad,
                          "pending", (json_int_t)t->shards[LDM_SHARD_PENDING], "leased",
                          (json_int_t)t->shards[LDM_SHARD_LEASED]);
    if (!o)
        return NULL;
    json_object_set_new(o, "done", json_integer((json_int_t)t->shards[LDM_SHARD_DONE]));
    json_object_set_new(o, "failed", json_integer((json_int_t)t->shards[LDM_SHARD_FAILED]));
    json_object_set(o, "list", t->shard_list);
    return o;
}

static json_t *map_json(const struct ldm_store_stat *st)
{
    return json_pack("{s:I, s:I, s:I, s:i, s:i}", "size", (json_int_t)st->map_size, "used",
                     (json_int_t)st->map_used, "page_size", (json_int_t)st->page_size,
                     "max_readers", (int)st->max_readers, "readers_used", (int)st->readers_used);
}

static int print_json(const char *dir, const struct tally *t, const struct ldm_store_stat *st)
{
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "path", dir, "samples",
                  (json_int_t)t->samples, "sample_bytes", (json_int_t)t->bytes, "unreadable",
                  (json_int_t)t->unreadable, "flip_variants", (json_int_t)t->flipped, "pooled",
                  (json_int_t)t->pooled, "conditioning", (json_int_t)t->cond);
    if (!o)
        return 1;
    json_object_set_new(o, "buckets", buckets_json(t));
    json_object_set_new(o, "shards", shards_json(t));
    json_object_set(o, "identity", t->identity ? t->identity : json_null());
    json_object_set(o, "meta", t->meta);
    json_object_set_new(o, "map", map_json(st));
    return lc_print_json(o);
}

static void print_buckets(const struct tally *t)
{
    int any = 0;
    printf("buckets    ");
    for (size_t b = 0; b < NBUCKETS; b++)
        if (t->buckets[b]) {
            printf("%s%zu:%llu", any ? " " : "", b, (unsigned long long)t->buckets[b]);
            any = 1;
        }
    printf("%s\n", any ? "" : "-");
}

static void print_failed(const struct tally *t)
{
    size_t i, shown = 0;
    json_t *o;
    json_array_foreach(t->shard_list, i, o)
    {
        json_t *err = json_object_get(o, "error");
        if (!err || shown++ >= TEXT_FAILED_SHOWN)
            continue;
        printf("  failed   %s: %s\n", json_string_value(json_object_get(o, "url")),
               json_string_value(err));
    }
}

static void print_text(const char *dir, const struct tally *t, const struct ldm_store_stat *st)
{
    printf("store      %s\n", dir);
    printf("samples    %llu (%llu bytes; %llu unreadable)\n", (unsigned long long)t->samples,
           (unsigned long long)t->bytes, (unsigned long long)t->unreadable);
    printf("sections   %llu pooled, %llu with flip variants, %llu with conditioning\n",
           (unsigned long long)t->pooled, (unsigned long long)t->flipped,
           (unsigned long long)t->cond);
    print_buckets(t);
    printf("shards     %zu: %llu pending, %llu leased, %llu done, %llu failed\n",
           json_array_size(t->shard_list), (unsigned long long)t->shards[LDM_SHARD_PENDING],
           (unsigned long long)t->shards[LDM_SHARD_LEASED],
           (unsigned long long)t->shards[LDM_SHARD_DONE],
           (unsigned long long)t->shards[LDM_SHARD_FAILED]);
    print_failed(t);
    printf("ledger     %llu stored, %llu rejected, %llu duplicates\n",
           (unsigned long long)t->stored, (unsigned long long)t->rejected,
           (unsigned long long)t->duplicates);
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15);
    char *id = t->identity ? json_dumps(t->identity, flags) : NULL;
    printf("identity   %s\n", id ? id : "-");
    free(id);
    printf("map        %zu of %zu bytes used (%.1f%%), page %zu, readers %u of %u\n", st->map_used,
           st->map_size, st->map_size ? 100.0 * st->map_used / st->map_size : 0.0, st->page_size,
           st->readers_used, st->max_readers);
}

int lc_cmd_stat(int argc, char **argv)
{
    const char *dir = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (!dir && argv[i][0] != '-')
            dir = argv[i];
        else
            return 2;
    }
    if (!dir)
        return 2;
    struct ldm_store *s;
    struct ldm_store_stat st;
    struct tally t = {0};
    int rc = lc_open_readonly(dir, &s);
    if (rc)
        return lc_report("stat", rc);
    rc = gather(s, &t);
    if (rc == 0)
        rc = ldm_store_stat(s, &st);
    ldm_store_close(&s);
    if (rc == 0 && json)
        rc = print_json(dir, &t, &st) ? LDM_ENOMEM : 0;
    else if (rc == 0)
        print_text(dir, &t, &st);
    tally_free(&t);
    return rc ? lc_report("stat", rc) : 0;
}

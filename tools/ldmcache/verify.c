/* verify.c — ldmcache verify: every record, ledger entry and meta value of a cache
 * is sound, and the ledger's counts agree with the samples stored. */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "ldmcache.h"

#define SHOWN 10 /* bad entries named before the rest are only counted */

struct vstate {
    uint64_t records, shards, metas;
    uint64_t bad;    /* damaged values of any database */
    uint64_t stored; /* the ledger's stored counts summed */
};

/* Name a bad entry (the first SHOWN) with the current detail. */
static void bad(struct vstate *v, const char *what, const struct ldm_store_kv *kv)
{
    if (v->bad++ < SHOWN)
        printf("bad %s '%.*s': %s\n", what, (int)kv->key_len, kv->key, ldm_errmsg());
}

/* Parse and CRC-check a record value. */
static int check_record(const struct ldm_store_kv *kv)
{
    char key[LDM_STORE_MAX_KEY + 1];
    struct ldm_record r;
    snprintf(key, sizeof key, "%.*s", (int)kv->key_len, kv->key);
    int rc = ldm_record_parse(kv->val, kv->val_len, key, &r);
    return rc ? rc : ldm_record_check_crc(&r, key);
}

static void check_sample(struct vstate *v, const struct ldm_store_kv *kv)
{
    v->records++;
    if (check_record(kv) != 0)
        bad(v, "sample", kv);
}

static void check_shard(struct vstate *v, const struct ldm_store_kv *kv)
{
    char url[LDM_STORE_MAX_KEY + 1];
    struct ldm_shard_info in;
    snprintf(url, sizeof url, "%.*s", (int)kv->key_len, kv->key);
    v->shards++;
    if (ldm_shard_parse(kv->val, kv->val_len, url, &in) != 0) {
        bad(v, "shard", kv);
        return;
    }
    v->stored += in.stored;
    ldm_shard_info_free(&in);
}

static void check_meta(struct vstate *v, const struct ldm_store_kv *kv)
{
    v->metas++;
    if (kv->key_len == strlen(LDM_META_EMPTY_CAPTION) &&
        memcmp(kv->key, LDM_META_EMPTY_CAPTION, kv->key_len) == 0) {
        if (check_record(kv) != 0)
            bad(v, "meta", kv);
    } else if (kv->key_len == strlen(LDM_META_IDENTITY) &&
               memcmp(kv->key, LDM_META_IDENTITY, kv->key_len) == 0) {
        json_error_t e;
        json_t *id = json_loadb(kv->val, kv->val_len, 0, &e);
        if (!json_is_object(id)) {
            ldm_fail(LDM_EFORMAT, "not a JSON object: %s", id ? "another JSON value" : e.text);
            bad(v, "meta", kv);
        }
        json_decref(id);
    }
}

static int walk(struct ldm_store_txn *t, int db, struct vstate *v,
                void (*fn)(struct vstate *, const struct ldm_store_kv *))
{
    struct ldm_store_cursor *c;
    struct ldm_store_kv kv;
    int rc = ldm_store_cursor_open(t, db, &c);
    while (rc == 0 && (rc = ldm_store_cursor_next(c, &kv)) == 0)
        fn(v, &kv);
    ldm_store_cursor_close(&c);
    return rc == LDM_ENOTFOUND ? 0 : rc;
}

static int verify(struct ldm_store *s, struct vstate *v)
{
    struct ldm_store_txn *t;
    int rc = ldm_store_read_begin(s, &t);
    if (rc == 0)
        rc = walk(t, LDM_DB_SAMPLES, v, check_sample);
    if (rc == 0)
        rc = walk(t, LDM_DB_SHARDS, v, check_shard);
    if (rc == 0)
        rc = walk(t, LDM_DB_META, v, check_meta);
    ldm_store_read_end(&t);
    return rc;
}

int lc_cmd_verify(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-')
        return 2;
    struct ldm_store *s;
    struct vstate v = {0};
    int rc = lc_open_readonly(argv[1], &s);
    if (rc == 0)
        rc = verify(s, &v);
    ldm_store_close(&s);
    if (rc)
        return lc_report("verify", rc);
    int counts_differ = v.stored != v.records;
    if (counts_differ)
        printf("ledger: the shards count %llu stored samples, the samples database holds %llu\n",
               (unsigned long long)v.stored, (unsigned long long)v.records);
    if (v.bad > SHOWN)
        printf("... and %llu more bad entries\n", (unsigned long long)(v.bad - SHOWN));
    printf("%s: %llu records, %llu shards, %llu meta values, %llu bad\n",
           v.bad || counts_differ ? "FAILED" : "ok", (unsigned long long)v.records,
           (unsigned long long)v.shards, (unsigned long long)v.metas, (unsigned long long)v.bad);
    return v.bad || counts_differ ? 1 : 0;
}

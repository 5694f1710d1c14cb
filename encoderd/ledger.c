/* ledger.c — the shard lease state machine (proto/leases.md), persisted in the store's `shards` db. */
#include "ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json.h"
#include "log.h"

#define HOLDER_MAX 128

struct lshard {
    char *url;
    struct ldm_shard_state st;
    char holder[HOLDER_MAX];
    int64_t deadline; /* ms; leased only */
    uint64_t skip;    /* first index not processed */
};

struct ldm_ledger {
    struct ldm_store *store;
    struct lshard *v;
    size_t n;
    uint64_t next_lease;
    int64_t timeout_ms, retry_ms;
};

static int persist(struct ldm_ledger *l, struct lshard *sh)
{
    return ldm_store_shard_put(l->store, sh->url, &sh->st);
}

/* Read one shard's stored entry into sh (absent: a fresh pending shard). */
static int load_one(struct ldm_ledger *l, struct lshard *sh)
{
    struct ldm_shard_info info;
    int rc = ldm_store_shard_get(l->store, sh->url, &info);
    sh->st.reported = LDM_SHARD_UNREPORTED;
    if (rc == LDM_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    sh->st = info.state;
    sh->skip = ldm_shard_first_unprocessed(&info);
    ldm_shard_info_free(&info);
    if (sh->st.lease >= l->next_lease)
        l->next_lease = sh->st.lease + 1;
    if (sh->st.status != LDM_SHARD_LEASED)
        return 0;
    /* its holder belongs to a past run: free the shard */
    sh->st.status = LDM_SHARD_PENDING;
    sh->st.reported = LDM_SHARD_UNREPORTED;
    return persist(l, sh);
}

int ldm_ledger_open(struct ldm_ledger **out, struct ldm_store *s, const struct ldm_shardlist *urls,
                    int64_t timeout_ms, int64_t retry_ms)
{
    *out = NULL;
    if (!s || !urls || !urls->n || timeout_ms < 1)
        return ldm_fail(LDM_EINVAL, "ledger: no shards, no store or a lease timeout below 1 ms");
    struct ldm_ledger *l = calloc(1, sizeof *l);
    if (!l || !(l->v = calloc(urls->n, sizeof *l->v))) {
        free(l);
        return ldm_fail(LDM_ENOMEM, "ledger: %zu shards", urls->n);
    }
    *l = (struct ldm_ledger){s, l->v, 0, 1, timeout_ms, retry_ms > 0 ? retry_ms : 500};
    int rc = 0;
    for (size_t i = 0; i < urls->n && !rc; i++) {
        l->v[i].url = strdup(urls->v[i]);
        l->n++;
        rc = l->v[i].url ? load_one(l, &l->v[i]) : ldm_fail(LDM_ENOMEM, "ledger: shard url");
    }
    if (rc) {
        ldm_ledger_free(&l);
        return rc;
    }
    *out = l;
    return 0;
}

void ldm_ledger_free(struct ldm_ledger **l)
{
    if (!l || !*l)
        return;
    for (size_t i = 0; i < (*l)->n; i++)
        free((*l)->v[i].url);
    free((*l)->v);
    free(*l);
    *l = NULL;
}

static struct lshard *find_url(const struct ldm_ledger *l, const char *url)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].url, url))
            return &l->v[i];
    return NULL;
}

/* Status change with the in-memory part undone when the write fails. */
static int set_status(struct ldm_ledger *l, struct lshard *sh, int status)
{
    struct ldm_shard_state old = sh->st;
    sh->st.status = status;
    if (status == LDM_SHARD_PENDING)
        sh->st.reported = LDM_SHARD_UNREPORTED;
    int rc = persist(l, sh);
    if (rc)
        sh->st = old;
    return rc;
}

/* A leased shard whose holder reported a count now all processed. */
static int settle(struct ldm_ledger *l, struct lshard *sh)
{
    if (sh->st.status != LDM_SHARD_LEASED || sh->st.reported == LDM_SHARD_UNREPORTED ||
        sh->skip < sh->st.reported)
        return 0;
    LOG_INFO("shard done", "shard=%s count=%llu", sh->url, (unsigned long long)sh->st.reported);
    return set_status(l, sh, LDM_SHARD_DONE);
}

int ldm_ledger_expire(struct ldm_ledger *l, int64_t now_ms)
{
    int rc = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        struct lshard *sh = &l->v[i];
        if (sh->st.status != LDM_SHARD_LEASED || sh->deadline >= now_ms)
            continue;
        LOG_WARN("lease expired", "shard=%s lease=%llu loader=%s skip=%llu", sh->url,
                 (unsigned long long)sh->st.lease, sh->holder, (unsigned long long)sh->skip);
        rc = set_status(l, sh, LDM_SHARD_PENDING);
    }
    return rc;
}

int ldm_ledger_refresh(struct ldm_ledger *l, const char *url, int64_t now_ms)
{
    (void)now_ms;
    struct lshard *sh = find_url(l, url);
    if (!sh)
        return 0;
    struct ldm_shard_info info;
    int rc = ldm_store_shard_get(l->store, url, &info);
    if (rc == LDM_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    sh->skip = ldm_shard_first_unprocessed(&info);
    ldm_shard_info_free(&info);
    return settle(l, sh);
}

static json_t *err_reply(const char *text, int lost)
{
    json_t *r = json_pack("{s:b,s:s}", "ok", 0, "error", text);
    if (r && lost)
        json_object_set_new(r, "lost", json_true());
    return r;
}

static int grant(struct ldm_ledger *l, const char *loader, int64_t now_ms, json_t **reply)
{
    int open = 0, rc = ldm_ledger_expire(l, now_ms);
    for (size_t i = 0; i < l->n && !rc; i++) {
        struct lshard *sh = &l->v[i];
        open |= sh->st.status == LDM_SHARD_LEASED;
        if (sh->st.status != LDM_SHARD_PENDING)
            continue;
        struct ldm_shard_state old = sh->st;
        sh->st.status = LDM_SHARD_LEASED;
        sh->st.lease = l->next_lease;
        sh->st.reported = LDM_SHARD_UNREPORTED;
        if ((rc = persist(l, sh))) {
            sh->st = old;
            break;
        }
        l->next_lease++;
        snprintf(sh->holder, sizeof sh->holder, "%s", loader);
        sh->deadline = now_ms + l->timeout_ms;
        LOG_INFO("lease", "shard=%s lease=%llu loader=%s skip=%llu", sh->url,
                 (unsigned long long)sh->st.lease, loader, (unsigned long long)sh->skip);
        *reply = json_pack("{s:b,s:s,s:I,s:I,s:I,s:I}", "ok", 1, "shard", sh->url, "lease",
                           (json_int_t)sh->st.lease, "skip", (json_int_t)sh->skip, "epoch",
                           (json_int_t)sh->st.epoch, "timeout_ms", (json_int_t)l->timeout_ms);
        return 0;
    }
    if (rc)
        *reply = err_reply(ldm_errmsg(), 0);
    else if (open)
        *reply = json_pack("{s:b,s:n,s:I}", "ok", 1, "shard", "retry_ms", (json_int_t)l->retry_ms);
    else
        *reply = json_pack("{s:b,s:n,s:b}", "ok", 1, "shard", "finished", 1);
    return rc;
}

/* The shard leased as `lease` to `loader` and not expired, or NULL. */
static struct lshard *held(struct ldm_ledger *l, const char *loader, int64_t lease, int64_t now_ms)
{
    for (size_t i = 0; i < l->n; i++) {
        struct lshard *sh = &l->v[i];
        if (sh->st.status == LDM_SHARD_LEASED && sh->st.lease == (uint64_t)lease)
            return sh->deadline >= now_ms && !strcmp(sh->holder, loader) ? sh : NULL;
    }
    return NULL;
}

static int on_done(struct ldm_ledger *l, struct lshard *sh, const json_t *req, int64_t now_ms)
{
    int64_t count = -1;
    if (ldm_json_get_int(req, "count", &count, -1) || count < 0)
        return ldm_fail(LDM_EFORMAT, "done: 'count' missing or negative");
    struct ldm_shard_state old = sh->st;
    sh->st.reported = (uint64_t)count;
    sh->deadline = now_ms + l->timeout_ms; /* the samples in flight have this long */
    int rc = persist(l, sh);
    if (rc) {
        sh->st = old;
        return rc;
    }
    LOG_INFO("shard reported", "shard=%s lease=%llu count=%lld", sh->url,
             (unsigned long long)sh->st.lease, (long long)count);
    return ldm_ledger_refresh(l, sh->url, now_ms);
}

static int on_fail(struct ldm_ledger *l, struct lshard *sh, const json_t *req)
{
    const char *text = NULL;
    ldm_json_get_str(req, "error", &text, "");
    struct ldm_shard_state old = sh->st;
    snprintf(sh->st.error, sizeof sh->st.error, "%s", text ? text : "");
    sh->st.status = LDM_SHARD_FAILED;
    int rc = persist(l, sh);
    if (rc)
        sh->st = old;
    else
        LOG_WARN("shard failed", "shard=%s lease=%llu error=\"%s\"", sh->url,
                 (unsigned long long)sh->st.lease, sh->st.error);
    return rc;
}

/* renew, done, release or fail on a held lease. */
static int on_held(struct ldm_ledger *l, const char *op, const json_t *req, struct lshard *sh,
                   int64_t now_ms)
{
    if (!strcmp(op, "renew")) {
        sh->deadline = now_ms + l->timeout_ms;
        return 0;
    }
    if (!strcmp(op, "done"))
        return on_done(l, sh, req, now_ms);
    if (!strcmp(op, "release")) {
        LOG_INFO("lease released", "shard=%s lease=%llu", sh->url, (unsigned long long)sh->st.lease);
        return set_status(l, sh, LDM_SHARD_PENDING);
    }
    return on_fail(l, sh, req);
}

int ldm_ledger_handle(struct ldm_ledger *l, const json_t *req, int64_t now_ms, json_t **reply)
{
    const char *op = NULL, *loader = NULL;
    int64_t lease = 0;
    *reply = NULL;
    if (ldm_json_get_str(req, "op", &op, NULL) || !op || ldm_json_get_str(req, "loader", &loader, NULL) ||
        !loader || strlen(loader) >= HOLDER_MAX) {
        *reply = err_reply("lease request needs string 'op' and 'loader' (< 128 bytes)", 0);
        return 0;
    }
    if (!strcmp(op, "lease"))
        return grant(l, loader, now_ms, reply);
    if (strcmp(op, "renew") && strcmp(op, "done") && strcmp(op, "release") && strcmp(op, "fail")) {
        *reply = err_reply("unknown lease op", 0);
        return 0;
    }
    if (ldm_json_get_int(req, "lease", &lease, -1) || lease < 1) {
        *reply = err_reply("lease request needs integer 'lease'", 0);
        return 0;
    }
    struct lshard *sh = held(l, loader, lease, now_ms);
    if (!sh) {
        *reply = err_reply("lease not held (expired, released, or another loader's)", 1);
        return 0;
    }
    int rc = on_held(l, op, req, sh, now_ms);
    if (rc == LDM_EFORMAT) {
        *reply = err_reply(ldm_errmsg(), 0);
        return 0;
    }
    *reply = rc ? err_reply(ldm_errmsg(), 0)
                : json_pack("{s:b,s:I}", "ok", 1, "timeout_ms", (json_int_t)l->timeout_ms);
    return rc;
}

void ldm_ledger_counts(const struct ldm_ledger *l, uint64_t *counts, uint64_t *total)
{
    for (int i = 0; i < LDM_SHARD_NSTATUS; i++)
        counts[i] = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].st.status >= 0 && l->v[i].st.status < LDM_SHARD_NSTATUS)
            counts[l->v[i].st.status]++;
    *total = l->n;
}

static json_t *shard_json(const struct lshard *sh, int64_t now_ms)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:I}", "url", sh->url, "state",
                          ldm_shard_status_name(sh->st.status), "lease", (json_int_t)sh->st.lease,
                          "skip", (json_int_t)sh->skip);
    if (!o)
        return NULL;
    if (sh->st.reported != LDM_SHARD_UNREPORTED)
        json_object_set_new(o, "reported", json_integer((json_int_t)sh->st.reported));
    if (sh->st.status == LDM_SHARD_LEASED) {
        json_object_set_new(o, "loader", json_string(sh->holder));
        json_object_set_new(o, "expires_in_ms", json_integer((json_int_t)(sh->deadline - now_ms)));
    }
    if (sh->st.status == LDM_SHARD_FAILED)
        json_object_set_new(o, "error", json_string(sh->st.error));
    return o;
}

json_t *ldm_ledger_list(const struct ldm_ledger *l, int64_t now_ms)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++) {
        json_t *o = shard_json(&l->v[i], now_ms);
        if (!o || json_array_append_new(a, o)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

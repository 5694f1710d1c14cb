/* store.c — the LMDB environment of the latent cache: open, the write path with map
 * growth, meta, statistics (store.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "store_int.h"

#define DEFAULT_MAP_SIZE ((size_t)1 << 30)
#define DEFAULT_MAX_MAP_SIZE ((size_t)1 << 40)
#define DEFAULT_GROW_WAIT_MS 10000
#define MAX_READERS 510

static const char *const db_names[LDM_DB_COUNT] = {"samples", "shards", "meta"};

/* The LMDB code of this thread's last failure through store_mdb_fail: the
 * write path reads it to tell a full map from other failures. */
static _Thread_local int last_mdb;

int store_mdb_fail(struct ldm_store *s, int mdb_rc, const char *what)
{
    last_mdb = mdb_rc;
    struct statvfs fs;
    const char *full = ""; /* LMDB reports a failed write as EIO; say when the disk is full */
    if ((mdb_rc == EIO || mdb_rc == ENOSPC) && statvfs(s->path, &fs) == 0 &&
        (uint64_t)fs.f_bavail * fs.f_frsize < (uint64_t)1 << 20)
        full = " (the file system is full: under 1 MiB free)";
    return ldm_fail(mdb_rc == MDB_TXN_FULL ? LDM_ERANGE : LDM_EIO, "%s: %s: %s%s", s->path, what,
                    mdb_strerror(mdb_rc), full);
}

/* ---- the gate ---------------------------------------------------------------------- */

void store_gate_enter(struct ldm_store *s)
{
    struct store_gate *g = &s->gate;
    pthread_mutex_lock(&g->mu);
    while (g->resizing)
        pthread_cond_wait(&g->cv, &g->mu);
    g->active++;
    pthread_mutex_unlock(&g->mu);
}

void store_gate_leave(struct ldm_store *s)
{
    struct store_gate *g = &s->gate;
    pthread_mutex_lock(&g->mu);
    g->active--;
    if (g->active == 0)
        pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

int store_gate_resize(struct ldm_store *s, size_t size, int wait_ms)
{
    struct store_gate *g = &s->gate;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->mu);
    while (g->resizing) /* another thread adopting a size: wait for it */
        pthread_cond_wait(&g->cv, &g->mu);
    g->resizing = 1;
    int rc = 0;
    while (g->active > 0 && rc == 0)
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
    unsigned left = g->active;
    int mrc = left ? 0 : mdb_env_set_mapsize(s->env, size);
    g->resizing = 0;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (left)
        return ldm_fail(LDM_ETIMEOUT,
                        "%s: map resize waited %d ms for %u read transaction(s) of this process "
                        "to end",
                        s->path, wait_ms, left);
    return mrc ? store_mdb_fail(s, mrc, "set map size") : 0;
}

/* ---- the write path ---------------------------------------------------------------- */

static size_t round_pages(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

/* Double the map (at most max_map_size) after a write found it full. */
static int grow_map(struct ldm_store *s, const char *what)
{
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    size_t cur = info.me_mapsize;
    if (s->no_grow || cur >= s->max_map_size)
        return ldm_fail(LDM_EIO,
                        "%s: map full: %s needs more than the %zu bytes mapped (max_map_size %zu, "
                        "growth %s); nothing of it was written",
                        s->path, what, cur, s->max_map_size, s->no_grow ? "off" : "at its maximum");
    size_t want = cur > s->max_map_size / 2 ? s->max_map_size : round_pages(cur * 2);
    int rc = store_gate_resize(s, want, s->grow_wait_ms);
    if (rc)
        return rc;
    atomic_fetch_add(&s->grows, 1);
    LOG_INFO("store map grown", "path=%s from=%zu to=%zu", s->path, cur, want);
    return 0;
}

/* Begin a write transaction inside the gate, adopting the map size when
 * another process grew the map. On failure the gate is left. */
static int begin_write(struct ldm_store *s, MDB_txn **txn)
{
    for (int tries = 0;; tries++) {
        store_gate_enter(s);
        int mrc = mdb_txn_begin(s->env, NULL, 0, txn);
        if (mrc == 0)
            return 0;
        store_gate_leave(s);
        if (mrc != MDB_MAP_RESIZED || tries >= 3)
            return store_mdb_fail(s, mrc, "begin write");
        int rc = store_gate_resize(s, 0, s->grow_wait_ms);
        if (rc)
            return rc;
    }
}

/* One try: begin, fn, commit. *full is set when the map was full. */
static int write_once(struct ldm_store *s, store_write_fn fn, void *ctx, int *full)
{
    MDB_txn *txn;
    last_mdb = 0;
    *full = 0;
    int rc = begin_write(s, &txn);
    if (rc)
        return rc;
    rc = fn(s, txn, ctx);
    if (rc == 0) {
        int mrc = mdb_txn_commit(txn); /* frees txn, also on failure */
        rc = mrc ? store_mdb_fail(s, mrc, "commit") : 0;
    } else {
        mdb_txn_abort(txn);
    }
    store_gate_leave(s);
    *full = rc != 0 && last_mdb == MDB_MAP_FULL;
    return rc;
}

int store_write(struct ldm_store *s, const char *what, store_write_fn fn, void *ctx)
{
    if (s->readonly)
        return ldm_fail(LDM_EINVAL, "%s: %s: the store is open read-only", s->path, what);
    pthread_mutex_lock(&s->write_mu);
    int rc, full;
    for (;;) {
        rc = write_once(s, fn, ctx, &full);
        if (!full)
            break;
        rc = grow_map(s, what);
        if (rc)
            break;
    }
    pthread_mutex_unlock(&s->write_mu);
    return rc;
}

/* ---- open and close ---------------------------------------------------------------- */

static int check_opts(const char *path, const struct ldm_store_opts *in, struct ldm_store_opts *o)
{
    *o = in ? *in : (struct ldm_store_opts){0};
    if (!path || !*path)
        return ldm_fail(LDM_EINVAL, "store: no path");
    if (!o->map_size)
        o->map_size = DEFAULT_MAP_SIZE;
    if (!o->max_map_size)
        o->max_map_size = o->map_size > DEFAULT_MAX_MAP_SIZE ? o->map_size : DEFAULT_MAX_MAP_SIZE;
    if (!o->grow_wait_ms)
        o->grow_wait_ms = DEFAULT_GROW_WAIT_MS;
    if (o->max_map_size < o->map_size)
        return ldm_fail(LDM_EINVAL, "%s: max_map_size %zu is below map_size %zu", path,
                        o->max_map_size, o->map_size);
    if (o->grow_wait_ms < 0)
        return ldm_fail(LDM_EINVAL, "%s: grow_wait_ms %d is negative", path, o->grow_wait_ms);
    o->map_size = round_pages(o->map_size);
    o->max_map_size = round_pages(o->max_map_size);
    return 0;
}

/* The folder: created unless read-only; a read-only open needs data.mdb.
 * *fresh is set when there is no data.mdb yet. */
static int prepare_dir(const char *path, int readonly, int *fresh)
{
    struct stat st;
    char data[4096];
    int n = snprintf(data, sizeof data, "%s/data.mdb", path);
    if (n < 0 || (size_t)n >= sizeof data)
        return ldm_fail(LDM_EINVAL, "%s: path too long", path);
    if (!readonly) {
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return ldm_fail_errno(errno == ENOENT ? LDM_ENOTFOUND : LDM_EIO, "%s: mkdir", path);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            return ldm_fail(LDM_EIO, "%s: not a folder", path);
    }
    *fresh = stat(data, &st) != 0;
    if (*fresh && errno != ENOENT)
        return ldm_fail_errno(LDM_EIO, "%s", data);
    if (*fresh && readonly)
        return ldm_fail(LDM_ENOTFOUND, "%s: no store (no data.mdb)", path);
    return 0;
}

/* Create and open the LMDB environment; `fresh` when there is no data file yet. */
static int env_open(struct ldm_store *s, const struct ldm_store_opts *o, int fresh)
{
    int mrc = mdb_env_create(&s->env);
    if (mrc)
        return store_mdb_fail(s, mrc, "create environment");
    mdb_env_set_maxdbs(s->env, LDM_DB_COUNT + 1);
    mdb_env_set_maxreaders(s->env, MAX_READERS);
    if (!o->readonly && fresh) { /* a new file: its first map; an old one keeps its own */
        mrc = mdb_env_set_mapsize(s->env, o->map_size);
        if (mrc)
            return store_mdb_fail(s, mrc, "set map size");
    }
    unsigned flags = MDB_NOTLS | (o->readonly ? MDB_RDONLY : 0);
    mrc = mdb_env_open(s->env, s->path, flags, 0600);
    if (mrc)
        return store_mdb_fail(s, mrc, "open environment");
    s->max_key = mdb_env_get_maxkeysize(s->env);
    if (s->max_key < LDM_STORE_MAX_KEY)
        return ldm_fail(LDM_EUNSUPPORTED,
                        "%s: this liblmdb takes keys of at most %d bytes, the store needs %d",
                        s->path, s->max_key, LDM_STORE_MAX_KEY);
    mrc = mdb_reader_check(s->env, &s->stale_cleared);
    if (mrc)
        return store_mdb_fail(s, mrc, "reader check");
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    if (info.me_mapsize < o->map_size) { /* a reader maps ahead too: fewer remaps */
        mrc = mdb_env_set_mapsize(s->env, o->map_size);
        if (mrc)
            return store_mdb_fail(s, mrc, "set map size");
    }
    return 0;
}

/* Check (and on a new store write) meta "format". */
static int check_format(struct ldm_store *s, MDB_txn *txn)
{
    MDB_val k = {strlen(LDM_META_FORMAT), (void *)LDM_META_FORMAT}, v;
    int mrc = mdb_get(txn, s->dbi[LDM_DB_META], &k, &v);
    if (mrc == MDB_NOTFOUND && !s->readonly) {
        v = (MDB_val){strlen(LDM_STORE_FORMAT), (void *)LDM_STORE_FORMAT};
        mrc = mdb_put(txn, s->dbi[LDM_DB_META], &k, &v, 0);
        return mrc ? store_mdb_fail(s, mrc, "write meta format") : 0;
    }
    if (mrc == MDB_NOTFOUND)
        return ldm_fail(LDM_EFORMAT, "%s: not an ldmpipe store (no meta \"format\")", s->path);
    if (mrc)
        return store_mdb_fail(s, mrc, "read meta format");
    if (v.mv_size != strlen(LDM_STORE_FORMAT) || memcmp(v.mv_data, LDM_STORE_FORMAT, v.mv_size))
        return ldm_fail(LDM_EUNSUPPORTED, "%s: store format \"%.*s\", this build reads \"%s\"",
                        s->path, (int)(v.mv_size > 64 ? 64 : v.mv_size), (const char *)v.mv_data,
                        LDM_STORE_FORMAT);
    return 0;
}

/* Open (or create) the named databases and check the format, in one
 * transaction committed so that the handles stay valid for the store. */
static int open_dbs(struct ldm_store *s)
{
    MDB_txn *txn;
    int mrc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn);
    if (mrc)
        return store_mdb_fail(s, mrc, "begin");
    int rc = 0;
    for (int i = 0; i < LDM_DB_COUNT && rc == 0; i++) {
        mrc = mdb_dbi_open(txn, db_names[i], s->readonly ? 0 : MDB_CREATE, &s->dbi[i]);
        if (mrc == MDB_NOTFOUND)
            rc = ldm_fail(LDM_EFORMAT, "%s: not an ldmpipe store (no database \"%s\")", s->path,
                          db_names[i]);
        else if (mrc)
            rc = store_mdb_fail(s, mrc, db_names[i]);
    }
    if (rc == 0)
        rc = check_format(s, txn);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? store_mdb_fail(s, mrc, "commit") : 0;
}

static struct ldm_store *store_alloc(const char *path, const struct ldm_store_opts *o)
{
    struct ldm_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->path = strdup(path);
    if (!s->path) {
        free(s);
        return NULL;
    }
    s->readonly = o->readonly;
    s->no_grow = o->no_grow;
    s->grow_wait_ms = o->grow_wait_ms;
    s->max_map_size = o->max_map_size;
    pthread_mutex_init(&s->write_mu, NULL);
    pthread_mutex_init(&s->gate.mu, NULL);
    pthread_cond_init(&s->gate.cv, NULL);
    return s;
}

int ldm_store_open(const char *path, const struct ldm_store_opts *opts, struct ldm_store **out)
{
    struct ldm_store_opts o;
    int fresh = 0;
    *out = NULL;
    int rc = check_opts(path, opts, &o);
    if (rc == 0)
        rc = prepare_dir(path, o.readonly, &fresh);
    if (rc)
        return rc;
    struct ldm_store *s = store_alloc(path, &o);
    if (!s)
        return ldm_fail(LDM_ENOMEM, "%s: store handle", path);
    rc = env_open(s, &o, fresh);
    if (rc == 0)
        rc = open_dbs(s);
    if (rc) {
        ldm_store_close(&s);
        return rc;
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    ldm_log(s->readonly && !s->stale_cleared ? LDM_LOG_DEBUG : LDM_LOG_INFO, "store open",
            "path=%s map_size=%zu readonly=%d stale_readers_cleared=%d", s->path, info.me_mapsize,
            s->readonly, s->stale_cleared);
    *out = s;
    return 0;
}

void ldm_store_close(struct ldm_store **sp)
{
    struct ldm_store *s = sp ? *sp : NULL;
    if (!s)
        return;
    if (s->gate.active)
        LOG_ERROR("store closed with open transactions", "path=%s open=%u", s->path,
                  s->gate.active);
    if (s->env)
        mdb_env_close(s->env);
    pthread_mutex_destroy(&s->write_mu);
    pthread_mutex_destroy(&s->gate.mu);
    pthread_cond_destroy(&s->gate.cv);
    free(s->path);
    free(s);
    *sp = NULL;
}

const char *ldm_store_path(const struct ldm_store *s)
{
    return s->path;
}

int ldm_store_sample_key(const char *shard, const char *key, char *buf, size_t size, size_t *len)
{
    if (!shard || !*shard || !key || !*key)
        return ldm_fail(LDM_EINVAL, "sample key: empty shard or key");
    size_t ns = strlen(shard), nk = strlen(key), n = ns + 1 + nk;
    size_t max = size ? size - 1 : 0;
    if (max > LDM_STORE_MAX_KEY)
        max = LDM_STORE_MAX_KEY;
    if (n > max)
        return ldm_fail(LDM_ERANGE, "sample key '%s/%s' is %zu bytes, at most %zu fit", shard, key,
                        n, max);
    memcpy(buf, shard, ns);
    buf[ns] = '/';
    memcpy(buf + ns + 1, key, nk + 1);
    if (len)
        *len = n;
    return 0;
}

/* ---- meta ---------------------------------------------------------------------------- */

struct meta_put {
    const char *name;
    const void *val;
    size_t len;
};

static int meta_put_fn(struct ldm_store *s, MDB_txn *txn, void *ctx)
{
    struct meta_put *m = ctx;
    MDB_val k = {strlen(m->name), (void *)m->name}, v = {m->len, (void *)m->val};
    int mrc = mdb_put(txn, s->dbi[LDM_DB_META], &k, &v, 0);
    return mrc ? store_mdb_fail(s, mrc, "put meta") : 0;
}

int ldm_store_meta_put(struct ldm_store *s, const char *name, const void *val, size_t len)
{
    if (!name || !*name || (int)strlen(name) > s->max_key || (len && !val))
        return ldm_fail(LDM_EINVAL, "%s: meta name empty or longer than %d bytes, or no value",
                        s->path, s->max_key);
    struct meta_put m = {name, val, len};
    return store_write(s, "meta put", meta_put_fn, &m);
}

int ldm_store_meta_get(struct ldm_store *s, const char *name, void **out, size_t *len)
{
    struct ldm_store_txn *t;
    const void *v = NULL;
    *out = NULL;
    *len = 0;
    int rc = ldm_store_read_begin(s, &t);
    if (rc)
        return rc;
    rc = ldm_store_get_raw(t, LDM_DB_META, name, &v, len);
    if (rc == LDM_ENOTFOUND)
        ldm_fail(rc, "%s: no meta \"%s\"", s->path, name);
    if (rc == 0) {
        *out = malloc(*len + 1);
        if (*out) {
            memcpy(*out, v, *len);
            ((char *)*out)[*len] = '\0';
        } else {
            rc = ldm_fail(LDM_ENOMEM, "%s: meta \"%s\" of %zu bytes", s->path, name, *len);
        }
    }
    ldm_store_read_end(&t);
    if (rc)
        *len = 0;
    return rc;
}

/* ---- statistics ---------------------------------------------------------------------- */

int ldm_store_stat(struct ldm_store *s, struct ldm_store_stat *out)
{
    struct ldm_store_txn *t;
    memset(out, 0, sizeof *out);
    int rc = ldm_store_read_begin(s, &t);
    if (rc)
        return rc;
    MDB_txn *txn = t->txn;
    for (int i = 0; i < LDM_DB_COUNT && rc == 0; i++) {
        MDB_stat st;
        int mrc = mdb_stat(txn, s->dbi[i], &st);
        if (mrc)
            rc = ldm_fail(LDM_EIO, "%s: stat: %s", s->path, mdb_strerror(mrc));
        else
            out->entries[i] = st.ms_entries;
    }
    MDB_envinfo info;
    MDB_stat est;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &est);
    ldm_store_read_end(&t);
    out->map_size = info.me_mapsize;
    out->page_size = est.ms_psize;
    out->map_used = (info.me_last_pgno + 1) * (size_t)est.ms_psize;
    out->max_map_size = s->max_map_size;
    out->max_readers = info.me_maxreaders;
    out->readers_used = info.me_numreaders;
    out->max_key = s->max_key;
    out->stale_cleared = s->stale_cleared;
    out->grows = atomic_load(&s->grows);
    return rc;
}

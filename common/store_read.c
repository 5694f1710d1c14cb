/* store_read.c — read transactions, lookups and cursors of the latent cache (store.h). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store_int.h"

struct ldm_store_cursor {
    MDB_cursor *cur;
    struct ldm_store *s;
    int started;
};

/* Begin a read-only LMDB transaction inside the gate, adopting the map size
 * when another process grew the map past this one's. */
static int begin_read(struct ldm_store *s, MDB_txn **txn)
{
    for (int tries = 0;; tries++) {
        store_gate_enter(s);
        int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
        if (mrc == 0)
            return 0;
        store_gate_leave(s);
        if (mrc != MDB_MAP_RESIZED || tries >= 3)
            return ldm_fail(LDM_EIO, "%s: begin read: %s", s->path, mdb_strerror(mrc));
        int rc = store_gate_resize(s, 0, s->grow_wait_ms);
        if (rc)
            return rc;
    }
}

int ldm_store_read_begin(struct ldm_store *s, struct ldm_store_txn **out)
{
    *out = NULL;
    struct ldm_store_txn *t = calloc(1, sizeof *t);
    if (!t)
        return ldm_fail(LDM_ENOMEM, "%s: read transaction", s->path);
    int rc = begin_read(s, &t->txn);
    if (rc) {
        free(t);
        return rc;
    }
    t->s = s;
    *out = t;
    return 0;
}

void ldm_store_read_end(struct ldm_store_txn **tp)
{
    struct ldm_store_txn *t = tp ? *tp : NULL;
    if (!t)
        return;
    mdb_txn_abort(t->txn);
    store_gate_leave(t->s);
    free(t);
    *tp = NULL;
}

static int check_db(struct ldm_store *s, int db)
{
    if (db < 0 || db >= LDM_DB_COUNT)
        return ldm_fail(LDM_EINVAL, "%s: no database %d", s->path, db);
    return 0;
}

int ldm_store_get_raw(struct ldm_store_txn *t, int db, const char *key, const void **val,
                      size_t *len)
{
    struct ldm_store *s = t->s;
    int rc = check_db(s, db);
    if (rc)
        return rc;
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || (int)n > s->max_key)
        return ldm_fail(LDM_EINVAL, "%s: key empty or longer than %d bytes", s->path, s->max_key);
    MDB_val k = {n, (void *)key}, v;
    int mrc = mdb_get(t->txn, s->dbi[db], &k, &v);
    if (mrc == MDB_NOTFOUND)
        return LDM_ENOTFOUND;
    if (mrc)
        return ldm_fail(LDM_EIO, "%s: get '%s': %s", s->path, key, mdb_strerror(mrc));
    *val = v.mv_data;
    *len = v.mv_size;
    return 0;
}

int ldm_store_get(struct ldm_store_txn *t, const char *key, struct ldm_record *out)
{
    const void *v = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    int rc = ldm_store_get_raw(t, LDM_DB_SAMPLES, key, &v, &len);
    if (rc)
        return rc;
    return ldm_record_parse(v, len, key, out);
}

/* ---- cursors ----------------------------------------------------------------------- */

int ldm_store_cursor_open(struct ldm_store_txn *t, int db, struct ldm_store_cursor **out)
{
    *out = NULL;
    int rc = check_db(t->s, db);
    if (rc)
        return rc;
    struct ldm_store_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return ldm_fail(LDM_ENOMEM, "%s: cursor", t->s->path);
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[db], &c->cur);
    if (mrc) {
        free(c);
        return ldm_fail(LDM_EIO, "%s: cursor: %s", t->s->path, mdb_strerror(mrc));
    }
    c->s = t->s;
    *out = c;
    return 0;
}

int ldm_store_cursor_next(struct ldm_store_cursor *c, struct ldm_store_kv *kv)
{
    MDB_val k, v;
    int mrc = mdb_cursor_get(c->cur, &k, &v, c->started ? MDB_NEXT : MDB_FIRST);
    c->started = 1;
    if (mrc == MDB_NOTFOUND)
        return LDM_ENOTFOUND;
    if (mrc)
        return ldm_fail(LDM_EIO, "%s: cursor: %s", c->s->path, mdb_strerror(mrc));
    *kv = (struct ldm_store_kv){k.mv_data, k.mv_size, v.mv_data, v.mv_size};
    return 0;
}

void ldm_store_cursor_close(struct ldm_store_cursor **cp)
{
    struct ldm_store_cursor *c = cp ? *cp : NULL;
    if (!c)
        return;
    mdb_cursor_close(c->cur);
    free(c);
    *cp = NULL;
}

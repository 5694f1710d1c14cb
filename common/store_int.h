/* store_int.h — what the store's files share: the handle, the write path
 * with map growth, and the shards-ledger value codec. Not for other modules. */
#ifndef LDM_STORE_INT_H
#define LDM_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "store.h"

/* Counts this process's open transactions so that the map can be resized
 * when there are none (mdb_env_set_mapsize's rule). While `resizing` is
 * set, new transactions wait. A plain counter rather than a rwlock: a read
 * transaction may end on another thread than the one that began it. */
struct store_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned active;
    int resizing;
};

struct ldm_store {
    MDB_env *env;
    MDB_dbi dbi[LDM_DB_COUNT];
    char *path;
    int readonly, no_grow, grow_wait_ms;
    size_t max_map_size;
    int max_key;
    int stale_cleared;
    atomic_uint grows;        /* map growths by this handle */
    pthread_mutex_t write_mu; /* one writer of this process at a time */
    struct store_gate gate;
};

struct ldm_store_txn {
    MDB_txn *txn; /* read-only */
    struct ldm_store *s;
};

/* Enter / leave the gate around every transaction of this process. */
void store_gate_enter(struct ldm_store *s);
void store_gate_leave(struct ldm_store *s);

/* With no transaction of this process open (waiting up to wait_ms for the
 * last to end while new ones are held back), set the map size; 0 adopts the
 * size another process gave the file. Returns 0, LDM_ETIMEOUT or LDM_EIO. */
int store_gate_resize(struct ldm_store *s, size_t size, int wait_ms);

/* Record an LMDB failure of `what` as an LDM code ("PATH: WHAT: text"):
 * LDM_ERANGE for MDB_TXN_FULL, LDM_EIO otherwise; remembers mdb_rc for this
 * thread so that the write path can tell a full map. */
int store_mdb_fail(struct ldm_store *s, int mdb_rc, const char *what);

/* Run fn(s, txn, ctx) in a write transaction and commit; on a full map
 * abort, grow and run fn again from the start (fn must not keep state
 * between tries, beyond what it resets itself). `what` names the write in
 * details. Returns fn's code or a write code (store.h, put_batch). */
typedef int (*store_write_fn)(struct ldm_store *s, MDB_txn *txn, void *ctx);
int store_write(struct ldm_store *s, const char *what, store_write_fn fn, void *ctx);

/* ---- ledger values (shardrec.c) --------------------------------------------------- */

/* Bytes of info's encoded value, and the encoding into buf (that many bytes). */
size_t shard_value_size(const struct ldm_shard_info *info);
void shard_value_encode(const struct ldm_shard_info *info, void *buf);

/* Mark index x processed. Returns 1 when it was not before, 0 when it was,
 * or LDM_ENOMEM. x must be below UINT64_MAX. */
int shard_ranges_add(struct ldm_shard_info *info, uint64_t x);

/* Milliseconds since the epoch, wall clock. */
uint64_t store_now_ms(void);

#endif

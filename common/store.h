/* store.h — the node's latent cache: an LMDB environment written by encoderd
 * and read by trainerd, evald and ldmcache.
 *
 * One folder per node (data.mdb, lock.mdb) with three named databases:
 *
 *   samples  "SHARD/KEY" -> a record (record.h): latents, text embeddings,
 *            token ids, conditioning. Written once: a key that exists is
 *            counted as a duplicate and left as it is (MDB_NOOVERWRITE).
 *   shards   shard URL -> the shard's ledger entry (struct ldm_shard_info):
 *            its state (pending, leased, done, failed), counters, and the
 *            sorted list of index ranges processed so far (stored or
 *            rejected), from which encoderd computes a re-leased shard's
 *            `skip` after a restart.
 *   meta     name -> bytes: "format" (this layout's version, checked on
 *            open), "identity" (by convention a JSON object naming the
 *            encoders' config and weight hashes, scaling and shift factors,
 *            resolution and bucket settings), "empty_caption" (by convention
 *            a record without latent holding the empty caption's embedding).
 *
 * Exactly once: ldm_store_put_batch() writes a batch of samples and the
 * ledger ranges of their shards in ONE write transaction, so after a crash
 * either both are there or neither. Durability: every commit is synced to
 * disk before it returns (LMDB's default; MDB_NOSYNC is never set), so what
 * a put returned 0 for survives kill -9 and power loss.
 *
 * Readers never block the writer (LMDB's MVCC): a read transaction sees the
 * snapshot of its start. Read transactions are not tied to threads
 * (MDB_NOTLS): one may begin in one thread and be used and ended in another,
 * one at a time. Keep them short in a process that also writes: see map
 * growth below. A record returned by a read is a view into the map, valid
 * until its transaction ends.
 *
 * Map growth: LMDB's map size caps the data file. When a write finds the map
 * full (MDB_MAP_FULL at a put or at commit) its transaction is aborted, the
 * map is doubled (at most opts.max_map_size) and the whole write is tried
 * again. The rule: mdb_env_set_mapsize() is only safe while this process
 * has no transaction open (it remaps the file, so views into the old map
 * would dangle). So growth waits until every read transaction of this
 * process has ended (new ones wait meanwhile), at most opts.grow_wait_ms; a
 * thread that holds a read transaction of its own store while writing would
 * wait for itself: it gets LDM_ETIMEOUT instead. Another process adopts the
 * new size when one of its transactions starts past its own map
 * (MDB_MAP_RESIZED, handled here by the same wait); every process maps at
 * least opts.map_size, so small growths cost readers nothing. With growth
 * off, or at max_map_size, a full map fails the write with LDM_EIO ("map
 * full"), nothing of it written.
 *
 * Stale reader slots (left by processes killed inside a read transaction)
 * are cleared on open with mdb_reader_check(), and the count logged. (When
 * no other process has the store open, LMDB resets its reader table anyway.)
 *
 * One handle per process: open a store once and share the handle among
 * threads (LMDB's locks are per process; a second open of the same folder
 * in one process, or a handle used after fork(), breaks them).
 *
 * Keys: LMDB keys are at most LDM_STORE_MAX_KEY (511) bytes, so "SHARD/KEY"
 * and shard URLs must fit; ldm_store_sample_key() checks it, and a writer
 * should turn a sample whose key does not fit into a tombstone.
 */
#ifndef LDM_STORE_H
#define LDM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct ldm_store;     /* an open environment */
struct ldm_store_txn; /* a read transaction */
struct ldm_store_cursor;

/* The named databases. */
enum ldm_store_db { LDM_DB_SAMPLES = 0, LDM_DB_SHARDS, LDM_DB_META, LDM_DB_COUNT };

/* Meta names with a fixed meaning. */
#define LDM_META_FORMAT "format"
#define LDM_META_IDENTITY "identity"
#define LDM_META_EMPTY_CAPTION "empty_caption"
#define LDM_STORE_FORMAT "ldmpipe-store 1" /* the value of meta "format" */

/* The longest key (samples key, shard URL, meta name): LMDB's default. */
#define LDM_STORE_MAX_KEY 511

struct ldm_store_opts {
    size_t map_size;     /* bytes mapped at least (0: 1 GiB); never below the file's own */
    size_t max_map_size; /* growth stops here (0: 1 TiB) */
    int no_grow;         /* 1: a full map fails the write instead of growing */
    int readonly;        /* 1: open for reading only; the folder must exist */
    int grow_wait_ms;    /* how long growth waits for this process's readers (0: 10000) */
};

/* Open (creating, unless readonly, the folder with mode 0700 and the
 * databases) the store in folder `path`. opts NULL: the defaults. Clears
 * stale reader slots. On success *out is the store, closed with
 * ldm_store_close. Returns 0, LDM_EINVAL (bad options), LDM_ENOTFOUND
 * (readonly and no store there), LDM_EUNSUPPORTED (meta "format" of another
 * version), LDM_EIO (the folder or LMDB failed; the detail names the path
 * and LMDB's text) or LDM_ENOMEM. */
int ldm_store_open(const char *path, const struct ldm_store_opts *opts, struct ldm_store **out);

/* Close *s (NULL is fine) and set it to NULL. Every read transaction and
 * cursor of it must have ended. */
void ldm_store_close(struct ldm_store **s);

/* Compose the samples key "SHARD/KEY" into buf (size bytes, NUL-terminated);
 * *len (may be NULL) receives its length. Returns 0, LDM_EINVAL (empty shard
 * or key) or LDM_ERANGE (longer than LMDB's key limit or than buf; the
 * detail names shard and key). */
int ldm_store_sample_key(const char *shard, const char *key, char *buf, size_t size, size_t *len);

/* ---- writing ------------------------------------------------------------------- */

/* One sample of a batch: a record to store under "SHARD/KEY", or a
 * tombstone (record NULL: the loader rejected the sample) that only marks
 * its index processed. */
struct ldm_store_item {
    const char *shard;  /* shard URL */
    const char *key;    /* sample key within the shard */
    uint64_t index;     /* its position in the shard */
    const void *record; /* an encoded record (record.h), or NULL for a tombstone */
    size_t record_len;
};

/* Store a batch in one write transaction: each record under "SHARD/KEY"
 * unless that key exists (then it counts as a duplicate and is not
 * written), each item's index added to its shard's processed ranges, the
 * shard's counters (stored, rejected, duplicates) updated; a shard without
 * a ledger entry gets one (pending). Every item is checked first (keys fit,
 * records parse): a bad one fails the batch with LDM_EINVAL naming it, and
 * nothing is written. *stored and *duplicates (either may be NULL) receive
 * the counts of records written and of records whose key existed; the
 * other items are tombstones. On a full map: grow and retry (see
 * the top of this file). Returns 0, LDM_EINVAL (read-only store, bad item),
 * LDM_EIO (map full with growth off or at its maximum: "PATH: map full: put
 * batch needs more than the N bytes mapped (max_map_size M, growth off)...";
 * a disk full; another LMDB failure: the detail names the path),
 * LDM_ETIMEOUT (growth waited in vain for this process's readers), LDM_ERANGE
 * (a batch too large for one transaction: MDB_TXN_FULL) or LDM_ENOMEM. On
 * failure nothing of the batch is stored and the counts are 0. */
int ldm_store_put_batch(struct ldm_store *s, const struct ldm_store_item *items, size_t n,
                        size_t *stored, size_t *duplicates);

/* Set meta `name` to the len bytes at val (replacing any value), in its own
 * write transaction. Returns 0, LDM_EINVAL (read-only, empty or too long
 * name) or the write codes of ldm_store_put_batch. */
int ldm_store_meta_put(struct ldm_store *s, const char *name, const void *val, size_t len);

/* Copy meta `name` into *out (malloc'd, NUL-terminated beyond *len, the
 * caller frees it). Returns 0, LDM_ENOTFOUND (no such name; *out NULL),
 * LDM_ENOMEM or LDM_EIO. */
int ldm_store_meta_get(struct ldm_store *s, const char *name, void **out, size_t *len);

/* ---- the shards ledger ------------------------------------------------------------- */

enum ldm_shard_status {
    LDM_SHARD_PENDING = 0, /* not leased now */
    LDM_SHARD_LEASED,      /* a loader holds a lease on it */
    LDM_SHARD_DONE,        /* every sample processed and committed */
    LDM_SHARD_FAILED,      /* could not be read to its end (error says why) */
    LDM_SHARD_NSTATUS
};

#define LDM_SHARD_ERROR_MAX 255         /* bytes of a failure text kept */
#define LDM_SHARD_UNREPORTED UINT64_MAX /* reported: no count yet */

/* What the ledger's owner sets (ldm_store_shard_put). */
struct ldm_shard_state {
    int status;        /* enum ldm_shard_status */
    uint32_t epoch;    /* pass over the data the state belongs to */
    uint64_t lease;    /* the last lease id granted on it (0: none) */
    uint64_t reported; /* samples the loader reported with `done`, or LDM_SHARD_UNREPORTED */
    char error[LDM_SHARD_ERROR_MAX + 1]; /* why it failed; "" otherwise */
};

/* Index range [lo, hi). */
struct ldm_range {
    uint64_t lo, hi;
};

/* A ledger entry as read. */
struct ldm_shard_info {
    struct ldm_shard_state state;
    uint64_t stored;     /* records written for this shard */
    uint64_t rejected;   /* tombstones recorded */
    uint64_t duplicates; /* samples that came again (already stored or processed) */
    uint64_t updated_ms; /* wall clock (ms since the epoch) of the last change */
    size_t nranges;
    struct ldm_range *ranges; /* processed indices: sorted, disjoint, not touching; malloc'd */
};

/* Free info->ranges and zero *info. */
void ldm_shard_info_free(struct ldm_shard_info *info);

/* The first index not processed: the `skip` of a new lease on the shard
 * (0 when index 0 is not processed). */
uint64_t ldm_shard_first_unprocessed(const struct ldm_shard_info *info);

/* The number of processed indices (the ranges' lengths summed). */
uint64_t ldm_shard_processed(const struct ldm_shard_info *info);

/* "pending", "leased", "done", "failed" ("?" for others). */
const char *ldm_shard_status_name(int status);

/* Set shard `url`'s state in its own write transaction, creating its entry
 * when absent; its counters and ranges (owned by ldm_store_put_batch) are
 * kept. Returns 0, LDM_EINVAL (read-only, bad status, URL empty or too long)
 * or the write codes of ldm_store_put_batch. */
int ldm_store_shard_put(struct ldm_store *s, const char *url, const struct ldm_shard_state *st);

/* Read shard `url`'s entry into *out (free it with ldm_shard_info_free).
 * Returns 0, LDM_ENOTFOUND (no entry; *out zeroed), LDM_EFORMAT (a damaged
 * entry), LDM_ENOMEM or LDM_EIO. */
int ldm_store_shard_get(struct ldm_store *s, const char *url, struct ldm_shard_info *out);

/* Parse a ledger value (len bytes at val) into *out (ranges malloc'd).
 * `label` names it in details. Returns 0, LDM_EFORMAT (naming the field),
 * LDM_EUNSUPPORTED (a newer version) or LDM_ENOMEM. */
int ldm_shard_parse(const void *val, size_t len, const char *label, struct ldm_shard_info *out);

/* ---- reading ----------------------------------------------------------------------- */

/* Begin a read transaction (a snapshot). End it with ldm_store_read_end.
 * Returns 0, LDM_EIO (LMDB: reader table full, ...) or LDM_ENOMEM. */
int ldm_store_read_begin(struct ldm_store *s, struct ldm_store_txn **out);

/* End *t (NULL is fine) and set it to NULL; views read through it become
 * invalid, and its cursors must have been closed. */
void ldm_store_read_end(struct ldm_store_txn **t);

/* The value of `key` in database `db`: *val points into the map, valid
 * until t ends. Returns 0, LDM_ENOTFOUND (no such key; no detail recorded,
 * as it is an ordinary answer), LDM_EINVAL (bad db or key) or LDM_EIO. */
int ldm_store_get_raw(struct ldm_store_txn *t, int db, const char *key, const void **val,
                      size_t *len);

/* The record stored under samples key `key`, parsed in place (record.h);
 * valid until t ends. Returns 0, LDM_ENOTFOUND (no detail), LDM_EFORMAT
 * or LDM_EUNSUPPORTED (a damaged record; the detail names the key), LDM_EIO. */
int ldm_store_get(struct ldm_store_txn *t, const char *key, struct ldm_record *out);

/* One entry found by a cursor: views into the map, valid until t ends. The
 * key is not NUL-terminated. */
struct ldm_store_kv {
    const char *key;
    size_t key_len;
    const void *val;
    size_t val_len;
};

/* Open a cursor over database `db` in key order. Returns 0, LDM_EINVAL or
 * LDM_EIO. Close it with ldm_store_cursor_close before t ends. */
int ldm_store_cursor_open(struct ldm_store_txn *t, int db, struct ldm_store_cursor **out);

/* Step to the next entry (the first on the first call) into *kv. Returns 0,
 * LDM_ENOTFOUND past the last entry (no detail), or LDM_EIO. */
int ldm_store_cursor_next(struct ldm_store_cursor *c, struct ldm_store_kv *kv);

/* Close *c (NULL is fine) and set it to NULL. */
void ldm_store_cursor_close(struct ldm_store_cursor **c);

/* ---- statistics -------------------------------------------------------------------- */

struct ldm_store_stat {
    uint64_t entries[LDM_DB_COUNT]; /* per database */
    size_t map_size;                /* bytes mapped now (the data file's cap) */
    size_t map_used;                /* bytes of pages in use up to the last one */
    size_t max_map_size;            /* growth limit of this handle */
    size_t page_size;
    unsigned max_readers, readers_used; /* reader table slots */
    int max_key;                        /* longest key LMDB takes */
    int stale_cleared;                  /* reader slots cleared on open */
    unsigned grows;                     /* map growths by this handle */
};

/* Fill *out from a fresh read snapshot. Returns 0 or LDM_EIO. */
int ldm_store_stat(struct ldm_store *s, struct ldm_store_stat *out);

/* The folder the store was opened from. */
const char *ldm_store_path(const struct ldm_store *s);

#endif

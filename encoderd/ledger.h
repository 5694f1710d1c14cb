/* ledger.h — encoderd's shard ledger: the lease state machine of proto/leases.md over the store's `shards` db.
 *
 * The ledger holds one entry per shard of this node: its status (pending,
 * leased, done, failed), the lease id and holder, the lease deadline, the
 * count a holder reported with `done`, and the first index not yet
 * processed (the `skip` of the next lease). Every change of status, lease
 * or reported count is written to the store (ldm_store_shard_put) before
 * the answer goes out, so the ledger survives a restart; deadlines live in
 * memory only. On open, shards found leased become pending (their holders
 * belong to a past run) and lease ids continue past the largest stored.
 *
 * Processed ranges are written by ldm_store_put_batch (the sample path);
 * the ledger re-reads a shard's entry with ldm_ledger_refresh after each
 * commit that touched it, and a shard whose holder reported `done` with
 * count C becomes done once every index below C is processed.
 *
 * No sockets and no clock: each call takes the time (ms, any monotonic
 * origin), so tests drive it directly. One thread uses a ledger at a time.
 */
#ifndef LDM_ENCODERD_LEDGER_H
#define LDM_ENCODERD_LEDGER_H

#include <jansson.h>
#include <stdint.h>

#include "shardlist.h"
#include "store.h"

struct ldm_ledger;

/* Open the ledger of `urls` (copied) over store s (kept by the caller,
 * open until ldm_ledger_free). timeout_ms: a lease's life without renewal;
 * retry_ms: the wait told to a loader when no shard is free. Shards of the
 * store not in `urls` are left alone. Returns 0, LDM_EINVAL (no shards,
 * timeout < 1), LDM_EFORMAT (a damaged ledger entry, naming the shard),
 * LDM_ENOMEM or the store's write codes. */
int ldm_ledger_open(struct ldm_ledger **out, struct ldm_store *s, const struct ldm_shardlist *urls,
                    int64_t timeout_ms, int64_t retry_ms);

/* Free *l (NULL is fine) and set it NULL. */
void ldm_ledger_free(struct ldm_ledger **l);

/* Answer one request of the lease protocol (req: the parsed JSON object)
 * at time now_ms into *reply (a new object the caller releases): {"ok":
 * true, ...}, {"ok": false, "lost": true, "error": ...} for a lease not
 * held, or {"ok": false, "error": ...} for a malformed request. Returns 0
 * (a reply was made, whatever it says) or the store's write codes when a
 * state could not be persisted (then *reply is an error reply too). */
int ldm_ledger_handle(struct ldm_ledger *l, const json_t *req, int64_t now_ms, json_t **reply);

/* Expire leases whose deadline passed before now_ms (they become pending).
 * Returns 0 or the store's write codes. */
int ldm_ledger_expire(struct ldm_ledger *l, int64_t now_ms);

/* Re-read shard `url`'s processed ranges from the store after a commit
 * and settle it (done when its holder reported a count now all in). A URL
 * the ledger does not hold is ignored. Returns 0, or the codes of
 * ldm_store_shard_get / ldm_store_shard_put. */
int ldm_ledger_refresh(struct ldm_ledger *l, const char *url, int64_t now_ms);

/* Shards per status (counts[LDM_SHARD_NSTATUS]) and in total. */
void ldm_ledger_counts(const struct ldm_ledger *l, uint64_t *counts, uint64_t *total);

/* A JSON array with one object per shard: url, state, lease, loader,
 * skip, reported, expires_in_ms (leased only), error (failed only).
 * Returns NULL when out of memory. */
json_t *ldm_ledger_list(const struct ldm_ledger *l, int64_t now_ms);

#endif

/* lease.h — the loader's side of the shard-lease protocol (proto/leases.md).
 *
 * One client per loader thread: a REQ socket to encoderd's `leases`
 * endpoint. A request without an answer within the timeout closes and
 * reopens the socket (a REQ socket cannot send again before an answer) and
 * returns LDM_ETIMEOUT; the caller decides whether to ask again.
 */
#ifndef LDM_LEASE_H
#define LDM_LEASE_H

#include <stdatomic.h>
#include <stdint.h>

#include "curve.h"

enum ldm_lease_state {
    LDM_LEASE_GRANTED = 1, /* a shard to read */
    LDM_LEASE_WAIT,        /* none free now: ask again after retry_ms */
    LDM_LEASE_FINISHED,    /* every shard is done */
};

struct ldm_lease {
    char shard[4096];   /* the shard URL */
    uint64_t id;        /* lease id */
    uint64_t skip;      /* send nothing for samples with index < skip */
    uint32_t epoch;
    int64_t timeout_ms; /* renew well within this */
    int64_t retry_ms;   /* for LDM_LEASE_WAIT */
};

struct ldm_lease_client;

/* Connect to `endpoint` (CURVE when server_public is set) as loader `loader`.
 * timeout_ms bounds each request. Returns 0, LDM_EZMQ or LDM_ENOMEM. */
int ldm_lease_client_new(void *zctx, const char *endpoint, const char *server_public,
                         const struct ldm_keypair *client, const char *loader, int timeout_ms,
                         struct ldm_lease_client **out);
void ldm_lease_client_free(struct ldm_lease_client **c);

/* While *flag is non-zero, ldm_lease_get stops waiting for its answer at
 * once (LDM_ETIMEOUT): a stopping thread does not sit out a request timeout.
 * Renew, done, release and fail still wait, so the encoder hears them. */
void ldm_lease_client_set_cancel(struct ldm_lease_client *c, const atomic_int *flag);

/* Ask for a lease; *state says what came back. Returns 0, LDM_ETIMEOUT,
 * LDM_EFORMAT (a malformed answer) or LDM_EDENIED (an error answer). */
int ldm_lease_get(struct ldm_lease_client *c, struct ldm_lease *l, enum ldm_lease_state *state);

/* Renew lease l, having sent everything before index `next`. Returns 0,
 * LDM_EDENIED when the lease is lost (drop the shard), LDM_ETIMEOUT. */
int ldm_lease_renew(struct ldm_lease_client *c, struct ldm_lease *l, uint64_t next);

/* The shard is read: count samples sent (tombstones included), rejected of them. */
int ldm_lease_done(struct ldm_lease_client *c, const struct ldm_lease *l, uint64_t count,
                   uint64_t rejected);

/* Give the lease back (stopping), everything before `next` sent. */
int ldm_lease_release(struct ldm_lease_client *c, const struct ldm_lease *l, uint64_t next);

/* The shard cannot be read past `next`: `error` says why. */
int ldm_lease_fail(struct ldm_lease_client *c, const struct ldm_lease *l, uint64_t next,
                   const char *error);

#endif

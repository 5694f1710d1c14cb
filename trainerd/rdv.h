/* rdv.h — the rendezvous of trainer ranks before training starts.
 *
 * Rank 0 binds the `rendezvous` endpoint (a ZMQ ROUTER; ipc:// or tcp://,
 * bound under zsock.h's rules, CURVE when given a key pair). Every other rank
 * connects a DEALER to it and registers
 *     {"op":"register", "rank":R, "world":W, "run":RUN_ID, "endpoint":E, "key":K}
 * (E: the rank's data endpoint; K: that socket's CURVE public key or ""),
 * resending every second until it hears back, so ranks may start in any
 * order and rank 0 may come up last (ZMQ reconnects). Rank 0 registers
 * itself directly. Rank 0 answers each registration with
 *     {"ok":true, "missing":[ranks not yet registered]}
 * or refuses it with {"error":TEXT}: a rank outside 0..W-1, a world size or
 * run id unlike its own, or a rank already registered by another process.
 * A refused registration does not stop rank 0; it keeps waiting for the
 * right process. Once all W ranks are in, rank 0 sends each one
 *     {"table":[{"endpoint":E,"key":K} by rank], "world":W, "blob":HEX}
 * (the blob: rank 0's opaque bytes, the NCCL unique id on CUDA), each rank
 * confirms with {"op":"ack","rank":R}, and rank 0 returns when every rank has
 * confirmed, so after the rendezvous every rank holds the same table.
 */
#ifndef LDM_TRAINERD_RDV_H
#define LDM_TRAINERD_RDV_H

#include <stddef.h>

#include "zsock.h"

#define LDM_RDV_ENDPOINT_MAX 256 /* bytes of an endpoint, NUL included */
#define LDM_RDV_BLOB_MAX 1024
#define LDM_RDV_RUN_MAX 256      /* bytes of a run id, NUL included */

struct ldm_rdv_opts {
    const char *endpoint;                /* the rendezvous endpoint (rank 0 binds it) */
    const char *run_id;                  /* config hash or run name; NULL = "" */
    int timeout_ms;                      /* the whole rendezvous; <= 0: 60000 */
    const struct ldm_bind_security *sec; /* rank 0's bind rules (NULL: plain, loopback) */
    const char *server_public;           /* others: rank 0's CURVE public key, or NULL */
    const struct ldm_keypair *client;    /* others: their CURVE key pair (NULL: a fresh one) */
};

struct ldm_rdv_entry {
    char endpoint[LDM_RDV_ENDPOINT_MAX]; /* the rank's data endpoint */
    char key[LDM_Z85_KEY_LEN + 1];       /* its CURVE public key, "" when plain */
};

/* The result: one entry per rank, and rank 0's blob. */
struct ldm_rdv_table {
    int world;
    size_t blob_len;
    unsigned char blob[LDM_RDV_BLOB_MAX];
    struct ldm_rdv_entry ent[]; /* [world] */
};

/* Take part in the rendezvous as `rank` of `world`, announcing `data_endpoint`
 * (and `data_key`, this rank's data-socket CURVE public key, or NULL/""). Rank 0
 * gives `blob` (blob_len bytes, up to LDM_RDV_BLOB_MAX; others pass NULL, 0).
 * World 1 returns at once without a socket. On success *out is a new table
 * (free it with ldm_rdv_table_free). Sockets are made in `zctx`; they are
 * closed before returning.
 * Errors: LDM_EINVAL (bad arguments), LDM_ECONFIG (rank 0 refused this rank,
 * the detail says why and names the rank), LDM_ETIMEOUT (rank 0: "ranks 2,3
 * still missing after N ms", with the last refusal it made, if any; others:
 * the ranks rank 0 last reported missing, or that rank 0 never answered),
 * LDM_EFORMAT (a malformed table), LDM_EZMQ/LDM_EDENIED/LDM_EEXIST (binding). */
int ldm_rdv_run(void *zctx, const struct ldm_rdv_opts *o, int rank, int world,
                const char *data_endpoint, const char *data_key, const void *blob,
                size_t blob_len, struct ldm_rdv_table **out);

/* A table of `world` empty entries (for tests and for world 1). NULL when out of memory. */
struct ldm_rdv_table *ldm_rdv_table_new(int world);

/* Free *t (NULL is fine) and set it NULL. */
void ldm_rdv_table_free(struct ldm_rdv_table **t);

#endif

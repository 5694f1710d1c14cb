/* comm.h — collectives between trainer ranks, one interface for two transports:
 *
 *   LDM_COMM_RING: F32 buffers in HOST memory (CPU ranks), a ring over ZeroMQ.
 *     Each rank binds a PULL socket at its data endpoint and connects a PUSH
 *     to its successor's (rank + 1 mod world). All-reduce is the classic ring:
 *     world − 1 reduce-scatter steps, then world − 1 all-gather steps, over
 *     world chunks (ldm_comm_shard's layout), each chunk sent in messages of
 *     at most max_msg_bytes of floats (plus a 32-byte header checked on
 *     receipt: a rank calling another collective, or another size, is caught).
 *     Every element's sum is added up once, by the rank that owns its chunk,
 *     in a fixed order (starting at rank c + 1 for chunk c, around the ring),
 *     then copied to the others: results are bit-identical on every rank and
 *     from run to run (for a given world size). Averages divide that sum by
 *     world once, on the owner.
 *   LDM_COMM_NCCL: F32 buffers in DEVICE memory (GPU ranks), NCCL (nn/nccl.h)
 *     on the stream given in the options, or, once attached to a compute
 *     context (ldm_comm_attach), on a stream of their own ordered against
 *     the context's by events; the rendezvous blob is NCCL's unique id.
 *     Reduce-scatter and all-gather need n divisible by world (the _at
 *     forms take any split).
 *
 * Collectives are called by every rank in the same order with the same
 * sizes; each returns when its result is in `buf` on this rank (on NCCL:
 * the stream has been synchronised). n == 0 and world == 1 are no-ops.
 * All-reduces can also run in the background (ldm_comm_allreduce_start /
 * ldm_comm_wait): a communication thread takes queued requests in order, so
 * a trainer all-reduces gradient buckets while its backward goes on. Every
 * collective, blocking or not, goes through that queue in call order; the
 * caller must not touch a buffer between its start and its wait.
 *
 * A peer that stops answering gives LDM_ETIMEOUT after timeout_ms naming the
 * peer rank and its endpoint. After any failure the communicator is broken:
 * that collective and every later one fail with the same error (close it
 * and rendezvous again).
 *
 * A communicator is used by one thread (besides its own). Errors: LDM_EINVAL
 * (bad arguments: the detail names the call), LDM_ETIMEOUT, LDM_EFORMAT (a
 * message that is not the one expected), LDM_EZMQ, LDM_ENOMEM, LDM_EIO and
 * LDM_EUNSUPPORTED (NCCL: see nn/nccl.h).
 */
#ifndef LDM_TRAINERD_COMM_H
#define LDM_TRAINERD_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "rdv.h"
#include "zsock.h"

enum ldm_comm_kind { LDM_COMM_RING = 0, LDM_COMM_NCCL = 1 };
enum ldm_reduce { LDM_REDUCE_SUM = 0, LDM_REDUCE_AVG = 1 };

#define LDM_COMM_MSG_DEFAULT ((size_t)1 << 20) /* 1 MiB of floats per message */

struct ldm_comm_opts {
    int kind;                            /* enum ldm_comm_kind */
    int timeout_ms;                      /* a silent peer fails a collective after this; <= 0: 60000 */
    size_t max_msg_bytes;                /* ring: payload bytes per message; 0: 1 MiB (min 4);
                                            the same on every rank */
    const struct ldm_bind_security *sec; /* ring: rules (and CURVE key pair) for the data bind */
    const struct ldm_keypair *client;    /* ring: CURVE key pair for the successor, when its table
                                            entry has a key (it must be in the successor's
                                            allow-list); NULL: a fresh one */
    int device;                          /* nccl: CUDA device index */
    void *stream;                        /* nccl: cudaStream_t; NULL: the default stream */
};

struct ldm_comm;

/* Open this rank's communicator from a rendezvous table (rdv.h): ring: bind
 * table->ent[rank].endpoint, connect to the successor's (peers may come up
 * in any order; the first collective waits for them up to the timeout);
 * nccl: join NCCL with table->blob as the unique id (LDM_NCCL_ID_BYTES).
 * Sockets live in `zctx`, which must outlive the communicator. The comm
 * thread starts here (world > 1, ring). *out is the caller's: close it with
 * ldm_comm_close. */
int ldm_comm_open(struct ldm_comm **out, void *zctx, int rank, int world,
                  const struct ldm_rdv_table *table, const struct ldm_comm_opts *o);

/* Everything at start-up in one call: rank 0 of an NCCL world makes the
 * unique id; the rendezvous (rdv.h, announcing `data_endpoint` and, with a
 * CURVE key pair in co->sec, its public key) gives the table; then
 * ldm_comm_open. Errors: those of ldm_rdv_run and ldm_comm_open. */
int ldm_comm_setup(struct ldm_comm **out, void *zctx, int rank, int world,
                   const char *data_endpoint, const struct ldm_rdv_opts *ro,
                   const struct ldm_comm_opts *co);

/* Stop the comm thread (a collective in flight finishes or times out;
 * queued ones are dropped), close sockets or NCCL, free; *c = NULL. */
void ldm_comm_close(struct ldm_comm **c);

int ldm_comm_rank(const struct ldm_comm *c);
int ldm_comm_world(const struct ldm_comm *c);

/* The shard of rank `rank` in a buffer of n elements split over `world`:
 * elements *off .. *off + *count − 1. Shards are contiguous, in rank order,
 * of n / world elements, the first n % world ranks one more. */
void ldm_comm_shard(size_t n, int world, int rank, size_t *off, size_t *count);

/* buf (n) = the sum over ranks of every rank's buf (op LDM_REDUCE_AVG:
 * divided by world). */
int ldm_comm_allreduce(struct ldm_comm *c, float *buf, size_t n, int op);

/* This rank's shard of buf (ldm_comm_shard) = the (averaged) sum of that
 * shard over ranks; the rest of buf is left undefined (used as scratch). */
int ldm_comm_reduce_scatter(struct ldm_comm *c, float *buf, size_t n, int op);

/* Every rank's shard of buf (ldm_comm_shard) goes to every rank: on entry
 * buf holds this rank's shard, on return every shard. */
int ldm_comm_all_gather(struct ldm_comm *c, float *buf, size_t n);

/* The same two with the split given: rank k's part of buf is elements
 * bound[k] .. bound[k + 1] − 1, bound holding world + 1 offsets from
 * bound[0] = 0 up to bound[world] = n (a part may be empty; every rank
 * passes the same bound). The ZeRO optimiser shards the parameter arena so,
 * and reduce-scatters each gradient bucket at that split. The _start form
 * runs in the background as ldm_comm_allreduce_start does (bound is copied:
 * the caller may reuse it at once). On NCCL: grouped ncclReduce to each
 * part's rank, grouped ncclBroadcast from it. */
int ldm_comm_reduce_scatter_at_start(struct ldm_comm *c, float *buf, size_t n,
                                     const size_t *bound, int op, uint64_t *ticket);
int ldm_comm_all_gather_at(struct ldm_comm *c, float *buf, size_t n, const size_t *bound);

/* buf (n) on every rank = buf on rank `root` (initial weights: root 0). */
int ldm_comm_broadcast(struct ldm_comm *c, float *buf, size_t n, int root);

/* Return when every rank has called it. */
int ldm_comm_barrier(struct ldm_comm *c);

/* NCCL: run collectives on a CUDA stream of their own beside the compute
 * stream of context ctx (a CUDA context on the communicator's device; see
 * ldm_nccl_attach): each collective waits on the device for the work ctx
 * had queued when it was called, and each wait makes ctx's stream wait for
 * the collectives before the host waits for them. Call it once, before the
 * first collective. Ring: nothing to do, returns 0. Errors: LDM_EINVAL,
 * LDM_EIO (nn/nccl.h). */
struct ldm_ctx;
int ldm_comm_attach(struct ldm_comm *c, struct ldm_ctx *ctx);

/* Queue an all-reduce of buf (n) and return at once with its ticket in
 * *ticket (tickets count up from 1 over every collective of this
 * communicator). buf is the comm thread's until ldm_comm_wait(ticket)
 * returns. Returns 0 or LDM_EINVAL / LDM_ENOMEM / the error that broke the
 * communicator. */
int ldm_comm_allreduce_start(struct ldm_comm *c, float *buf, size_t n, int op, uint64_t *ticket);

/* Wait until the collective of `ticket` (and, since they run in order,
 * every one before it) is done. Returns 0, or its error: the error that
 * broke the communicator, for it and every later ticket. LDM_EINVAL for a
 * ticket never handed out. On NCCL it waits for the whole stream. */
int ldm_comm_wait(struct ldm_comm *c, uint64_t ticket);

/* ---- the ring's internals, for comm.c (ring.c) ------------------------------------------- */

struct ldm_ring;

/* Bind and connect (see ldm_comm_open); world >= 2. */
int ldm_ring_open(struct ldm_ring **out, void *zctx, int rank, int world,
                  const struct ldm_rdv_table *table, const struct ldm_comm_opts *o);
void ldm_ring_close(struct ldm_ring **r);

/* The collectives above on host buffers, run on the calling thread; n > 0. */
int ldm_ring_allreduce(struct ldm_ring *r, float *buf, size_t n, int op);
int ldm_ring_reduce_scatter(struct ldm_ring *r, float *buf, size_t n, const size_t *bound, int op);
int ldm_ring_all_gather(struct ldm_ring *r, float *buf, size_t n, const size_t *bound);
int ldm_ring_broadcast(struct ldm_ring *r, float *buf, size_t n, int root);
int ldm_ring_barrier(struct ldm_ring *r);

#endif

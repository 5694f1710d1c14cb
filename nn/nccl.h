/* nccl.h — NCCL collectives for GPU ranks: the unique id rank 0 hands out, a
 * communicator per rank, and all-reduce (sum or average), reduce-scatter,
 * all-gather and broadcast of F32 buffers in device memory on a CUDA stream.
 *
 * The CUDA build (nn/cuda/nccl.cu) loads libnccl.so.2 at the first call
 * (dlopen), so binaries link without -lnccl and run where NCCL is absent
 * until a GPU rank needs it; a missing library gives LDM_EUNSUPPORTED
 * naming it. A build without CUDA (nn/nccl_nocuda.c) answers every call
 * with LDM_EUNSUPPORTED "built without CUDA".
 *
 * Communicators are non-blocking (ncclConfig_t.blocking = 0): every call
 * waits for NCCL with the communicator's timeout, and a peer that never
 * answers gives LDM_ETIMEOUT after which the communicator is aborted (every
 * later call fails with the same error) instead of hanging forever.
 * Streams are cudaStream_t passed as void * (NULL: the legacy default
 * stream, or, once the communicator is attached to a compute context, its
 * own stream: see ldm_nccl_attach). Collectives are enqueued on the stream
 * and return before they finish; ldm_nccl_sync waits for them. One
 * communicator is used by one host thread at a time.
 */
#ifndef LDM_NN_NCCL_H
#define LDM_NN_NCCL_H

#include <stddef.h>

#define LDM_NCCL_ID_BYTES 128 /* sizeof(ncclUniqueId) */

struct ldm_nccl;
struct ldm_ctx;

/* A fresh unique id (rank 0 makes it and sends it to every rank). Returns 0,
 * LDM_EUNSUPPORTED (no CUDA build, no libnccl) or LDM_EIO (NCCL's message). */
int ldm_nccl_unique_id(unsigned char id[LDM_NCCL_ID_BYTES]);

/* Join the communicator of `world` ranks named by `id` as `rank`, on CUDA
 * device `device` (made current on this thread). Every rank must call it
 * with the same id and world; it returns when all have joined, or after
 * `timeout_ms` (<= 0: 60000) with LDM_ETIMEOUT. Returns 0, LDM_EINVAL,
 * LDM_EUNSUPPORTED, LDM_ETIMEOUT, LDM_ENOMEM or LDM_EIO. */
int ldm_nccl_open(struct ldm_nccl **out, int rank, int world,
                  const unsigned char id[LDM_NCCL_ID_BYTES], int device, int timeout_ms);

/* Overlap collectives with the compute of CUDA context ctx (on the
 * communicator's device): a second stream (the comm stream) and two events
 * are made on that device. From then on, a collective given stream NULL
 * records an event on ctx's stream and makes the comm stream wait for it —
 * so it reads what the ops queued on ctx before the call have written, and
 * ctx goes on computing meanwhile — then runs on the comm stream; and
 * ldm_nccl_sync(nc, NULL) makes ctx's stream wait (an event recorded on
 * the comm stream) for every collective queued so far before the host
 * waits for the comm stream. A caller must not write a buffer handed to a
 * collective, on ctx or elsewhere, before that sync. Call once; the
 * stream and events go with the communicator. Returns 0, LDM_EINVAL (not a
 * CUDA context, another device, attached already) or LDM_EIO. */
int ldm_nccl_attach(struct ldm_nccl *nc, const struct ldm_ctx *ctx);

/* Abort what is in flight, free the communicator, set *nc NULL (NULL is fine). */
void ldm_nccl_close(struct ldm_nccl **nc);

/* recv[i] = Σ over ranks of send[i] (divided by world with `average`), n
 * elements; send == recv runs in place. */
int ldm_nccl_allreduce(struct ldm_nccl *nc, const float *send, float *recv, size_t n, int average,
                       void *stream);

/* send holds world·recv_n elements; rank r receives the (averaged) sum of
 * elements r·recv_n .. (r+1)·recv_n − 1 into recv. In place when recv ==
 * send + rank·recv_n. */
int ldm_nccl_reduce_scatter(struct ldm_nccl *nc, const float *send, float *recv, size_t recv_n,
                            int average, void *stream);

/* recv (world·send_n elements) = every rank's send, in rank order. In place
 * when send == recv + rank·send_n. */
int ldm_nccl_all_gather(struct ldm_nccl *nc, const float *send, float *recv, size_t send_n,
                        void *stream);

/* Uneven splits, in place: rank k's part of buf is elements bound[k] ..
 * bound[k + 1] − 1 (bound: world + 1 offsets, 0 first, parts may be empty,
 * the same on every rank). reduce_scatter_at: each rank's part = the
 * (averaged) sum over ranks of that part (a group of ncclReduce, one per
 * non-empty part, rooted at its rank); the rest of buf is left as it was.
 * all_gather_at: every part goes from its rank to all (a group of
 * ncclBroadcast). */
int ldm_nccl_reduce_scatter_at(struct ldm_nccl *nc, float *buf, const size_t *bound,
                               int average, void *stream);
int ldm_nccl_all_gather_at(struct ldm_nccl *nc, float *buf, const size_t *bound, void *stream);

/* recv (n elements) on every rank = send on rank `root` (others' send is
 * ignored and may be NULL); in place when send == recv. */
int ldm_nccl_broadcast(struct ldm_nccl *nc, const float *send, float *recv, size_t n, int root,
                       void *stream);

/* Wait until everything enqueued on `stream` is done (stream NULL on an
 * attached communicator: its comm stream, after ordering the compute
 * stream behind it), polling NCCL for errors. LDM_ETIMEOUT (and the
 * communicator aborted) when it takes longer than the timeout; LDM_EIO for
 * an NCCL or CUDA error. */
int ldm_nccl_sync(struct ldm_nccl *nc, void *stream);

/* Every rank waits for every other: a one-element all-reduce, then sync. */
int ldm_nccl_barrier(struct ldm_nccl *nc, void *stream);

/* NCCL's version code (e.g. 22809 for 2.28.9) into *version. */
int ldm_nccl_version(int *version);

#endif

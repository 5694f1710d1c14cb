/* intake.h — encoderd's sample path: a thread that pulls samples, validates, batches, encodes and commits them.
 *
 * The thread owns the PULL socket (bound by the caller, handed over before
 * the thread starts, never touched by the caller again until it has
 * stopped). Each message is validated (ldm_sample_decode): a bad one is
 * counted per reason and logged once per reason; when its shard, key and
 * index are readable it is recorded as processed (a tombstone), so that a
 * shard reported done can settle. Tombstones from loaders are recorded
 * likewise. Good samples are grouped by shape (target size, token counts,
 * conditioning layout); a group is encoded and committed, one store
 * transaction per batch, when it holds batch_size samples or its oldest
 * sample has waited max_wait_ms. After each commit the URLs of the shards
 * it touched are queued for the owner (encoderd_intake_take_dirty) and the
 * wake descriptor becomes readable.
 */
#ifndef LDM_ENCODERD_INTAKE_H
#define LDM_ENCODERD_INTAKE_H

#include <stdatomic.h>
#include <stdint.h>

#include "encode.h"
#include "proto/sample_check.h"
#include "shardlist.h"
#include "store.h"

/* Counters the thread adds to (any may be NULL). */
struct encoderd_counters {
    _Atomic uint64_t *received, *committed, *duplicates, *tombstones, *errors, *batches;
    _Atomic uint64_t *rejected[LDM_SR_COUNT + 1]; /* per reason; [LDM_SR_COUNT]: "model" */
};

struct encoderd_intake_opts {
    void *pull;                 /* bound PULL socket, handed to the thread */
    struct ldm_store *store;    /* shared; the thread writes batches */
    struct encoderd_models *models; /* used by the thread alone */
    struct ldm_sample_limits lim;
    int batch_size;
    int64_t max_wait_ms;
    struct encoderd_counters c;
};

struct encoderd_intake;

/* Start the thread. *out is the caller's (encoderd_intake_stop). Returns
 * 0, LDM_EIO (eventfd or thread creation failed) or LDM_ENOMEM. */
int encoderd_intake_start(struct encoderd_intake **out, const struct encoderd_intake_opts *o);

/* The descriptor that becomes readable when shards were committed. */
int encoderd_intake_fd(const struct encoderd_intake *in);

/* Move the queued shard URLs into *out (zeroed; the caller frees it) and
 * clear the wake descriptor. Returns 0 or LDM_ENOMEM. */
int encoderd_intake_take_dirty(struct encoderd_intake *in, struct ldm_shardlist *out);

/* Pause (1) or resume (0) taking samples; a batch in hand is finished. */
void encoderd_intake_pause(struct encoderd_intake *in, int paused);

/* Samples waiting in batches now. */
uint64_t encoderd_intake_pending(const struct encoderd_intake *in);

/* Stop the thread: the batches in hand are encoded and committed first.
 * Frees *in (NULL is fine) and sets it NULL; the PULL socket is the
 * caller's again. */
void encoderd_intake_stop(struct encoderd_intake **in);

#endif

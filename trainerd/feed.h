/* feed.h — micro-batches prepared ahead of the trainer on a thread of their own.
 *
 * The feed walks epochs of the node's cache: at each epoch's start it scans the cache
 * (new samples written by encoderd since the last epoch join there), waits while it
 * holds fewer than min_samples or not one full batch, plans the epoch (index.h) and
 * fills micro-batches (batch.h) into a small queue. One optimiser step takes one
 * global batch of G = B·local_world·accum samples of one class: micro-batch a of
 * local rank r holds positions (a·local_world + r)·B .. +B of it, and its draws are
 * keyed by the global position (a·world + rank)·B + i.
 *
 * The cursor — the epoch and the batch in it that the next step takes, with the key
 * list of that epoch — is what a checkpoint saves; a feed started from it, with the
 * same seed, gives the same batches again.
 */
#ifndef LDM_TRAINERD_FEED_H
#define LDM_TRAINERD_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "trainerd/batch.h"

struct td_cursor {
    int64_t epoch; /* 0-based */
    int64_t batch; /* the next batch of the epoch to take */
};

struct td_feed_opts {
    struct ldm_store *store;
    int64_t B;                 /* samples per micro-batch on this rank */
    int64_t accum;             /* micro-batches per step */
    int64_t rank, world;       /* global */
    int64_t local_rank, local_world; /* ranks sharing this node's cache */
    int64_t min_samples;       /* wait for this many before an epoch starts */
    int depth;                 /* micro-batches prepared ahead (>= 1) */
    struct td_batch_opts bo;   /* bo.seed also seeds the epoch order */
    const char *keys;          /* the key list of the cursor's epoch (resume), or NULL */
    size_t keys_len;
};

struct td_feed;

/* Start the thread at `start`, the next step being `step`. */
int td_feed_start(struct td_feed **out, const struct td_feed_opts *o, struct td_cursor start,
                  int64_t step);

/* The next micro-batch in order into *b, waiting up to timeout_ms. Returns 0,
 * LDM_ETIMEOUT (none ready yet: the caller may check for stop and come back), or the
 * error that stopped the feed. Hand it back with td_feed_release once used. */
int td_feed_next(struct td_feed *f, struct td_batch **b, int timeout_ms);

/* Hand back the micro-batch td_feed_next gave; step_end 1 when it was the last of a
 * finished step: the cursor then moves past its global batch. */
void td_feed_release(struct td_feed *f, struct td_batch *b, int step_end);

/* The cursor after the last finished step and the key list of its epoch (malloc'd;
 * NULL before the first step, when the start cursor is returned). */
int td_feed_cursor(struct td_feed *f, struct td_cursor *c, char **keys, size_t *len);

struct td_feed_status {
    int waiting;          /* waiting for samples */
    int64_t epoch;        /* the producer's */
    size_t samples;       /* in its epoch */
    size_t batches;       /* of its epoch */
    uint64_t bad_samples; /* left out by scans */
    uint64_t skipped;     /* batches skipped for a bad record */
};
void td_feed_status(struct td_feed *f, struct td_feed_status *s);

/* Stop the thread and free everything (NULL is fine). */
void td_feed_stop(struct td_feed **f);

#endif

/* worker.h — loaderd's threads: each leases a shard, reads it, prepares and
 * pushes its samples, reports it done, and asks for the next.
 *
 * A thread holds at most one lease. It renews the lease every third of its
 * timeout, also while waiting on back-pressure or paused; when the lease is
 * lost it drops the shard at once. On stop it releases the lease. Samples
 * before the lease's skip are read but not sent. A rejected sample is sent
 * as a tombstone and counted under rejected_REASON; the first of each
 * reason is logged with its shard and key, later ones at debug level.
 */
#ifndef LDM_WORKER_H
#define LDM_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "curve.h"
#include "daemon.h"
#include "prepare.h"

struct loader;

struct loader_worker {
    struct loader *L;
    int index;
    pthread_t thread;
    int started;
    void *sock;            /* PUSH to the encoder, owned by the thread */
    pthread_mutex_t lock;  /* guards shard below (status reads it) */
    char shard[4096];      /* "" when idle */
    _Atomic uint64_t next; /* first index of the shard not yet sent */
};

/* Counters every thread adds to (pointers into the daemon's table). */
struct loader_counters {
    _Atomic uint64_t *sent, *tombstones, *skipped, *bytes, *shards_done, *shards_failed,
        *leases_lost, *lease_errors;
    _Atomic uint64_t *rejected[LDM_PREP_REASON_COUNT];
};

struct loader {
    struct ldm_daemon *d;
    const struct loaderd_cfg *cfg;
    struct ldm_prep_shared prep;
    struct ldm_source_opts src_opts;
    const char *want[16];
    char leases[512], samples[512];
    char server_public[LDM_Z85_KEY_LEN + 1];
    struct loader_counters c;
    atomic_int stop, paused, finished;
    atomic_int logged[LDM_PREP_REASON_COUNT]; /* first of each reason logged */
    int nworkers;
    struct loader_worker *workers;
};

/* Start cfg->threads threads. Returns 0 or LDM_EIO / LDM_ENOMEM. */
int loader_workers_start(struct loader *L, int n);

/* Ask every thread to stop (releasing its lease) and wait for them. */
void loader_workers_stop(struct loader *L);

#endif

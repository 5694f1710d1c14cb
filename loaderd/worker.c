/* worker.c — the lease → read → prepare → push loop of each loaderd thread. */
#include "worker.h"
#include "err.h"
#include "lease.h"
#include "loader.h"
#include "log.h"
#include "push.h"
#include "zsock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* One shard in progress on one thread. */
struct job {
    struct loader_worker *w;
    struct ldm_lease_client *lc;
    struct ldm_lease lease;
    double renewed;   /* monotonic seconds of the last renewal */
    int lost;         /* the lease went to someone else */
    uint64_t count, rejected;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sleep up to ms, waking early on stop. */
static void nap(struct loader *L, int64_t ms)
{
    for (int64_t t = 0; t < ms && !L->stop; t += 50)
        usleep(50000);
}

/* Renew when a third of the timeout has passed. Returns 1 once the lease is lost. */
static int keep_lease(struct job *j)
{
    if (j->lost)
        return 1;
    if (now_s() - j->renewed < (double)j->lease.timeout_ms / 3000.0)
        return 0;
    int rc = ldm_lease_renew(j->lc, &j->lease, j->w->next);
    if (rc == LDM_EDENIED) {
        j->lost = 1;
        (*j->w->L->c.leases_lost)++;
        LOG_WARN("lease lost: dropping the shard", "shard=%s lease=%llu error=%s", j->lease.shard,
                 (unsigned long long)j->lease.id, ldm_errmsg());
        return 1;
    }
    if (rc)
        (*j->w->L->c.lease_errors)++;
    else
        j->renewed = now_s();
    return 0;
}

static int push_idle(void *arg)
{
    struct job *j = arg;
    return keep_lease(j) || j->w->L->stop;
}

static void count_reject(struct loader *L, const struct ldm_raw_sample *raw, int reason)
{
    if (reason <= 0 || reason >= LDM_PREP_REASON_COUNT)
        reason = LDM_PREP_DECODE;
    (*L->c.rejected[reason])++;
    int first = atomic_exchange(&L->logged[reason], 1) == 0;
    ldm_log(first ? LDM_LOG_WARN : LDM_LOG_DEBUG, "sample rejected", "reason=%s shard=%s key=%s error=%s",
            ldm_prep_reason_name(reason), raw->shard, raw->key, ldm_errmsg());
}

/* Prepare and send one sample (or its tombstone). Returns 0 or the push error. */
static int one_sample(struct job *j, const struct ldm_raw_sample *raw, struct ldm_prepared *p)
{
    struct loader *L = j->w->L;
    struct ldm_outsample o;
    int rc = ldm_prepare(&L->prep, raw, j->lease.epoch, p);
    if (rc == LDM_ENOMEM)
        return rc;
    if (rc > 0) {
        count_reject(L, raw, rc);
        memset(&o, 0, sizeof o);
        o.shard = raw->shard;
        o.key = raw->key;
        o.index = raw->index;
        o.rejected = ldm_prep_reason_name(rc);
        j->rejected++;
    } else {
        ldm_prepared_out(p, raw, &o);
    }
    o.lease = j->lease.id;
    o.epoch = j->lease.epoch;
    rc = ldm_push_sample(j->w->sock, &o, 200, push_idle, j);
    if (!rc) {
        j->count++;
        (*(o.rejected ? L->c.tombstones : L->c.sent))++;
    }
    return rc;
}

/* Read the leased shard to its end, a stop or a lost lease. Returns the
 * source's final code (0 = clean end), or 1 when interrupted. */
static int read_shard(struct job *j, struct ldm_source *src)
{
    struct loader *L = j->w->L;
    struct ldm_prepared p = {0};
    struct ldm_raw_sample raw;
    int rc;
    uint64_t bytes0 = 0;
    while ((rc = ldm_source_next(src, &raw)) == 1) {
        while (L->paused && !L->stop && !keep_lease(j))
            nap(L, 100);
        if (L->stop || keep_lease(j)) {
            rc = 1;
            break;
        }
        if (raw.index >= j->lease.skip && one_sample(j, &raw, &p) != 0) {
            rc = 1; /* stopped or lease lost while the encoder's queue was full */
            break;
        }
        if (raw.index < j->lease.skip)
            (*L->c.skipped)++;
        j->w->next = raw.index + 1;
        uint64_t b = ldm_source_bytes(src);
        *L->c.bytes += b - bytes0;
        bytes0 = b;
    }
    ldm_prepared_free(&p);
    return rc;
}

static void set_shard(struct loader_worker *w, const char *shard)
{
    pthread_mutex_lock(&w->lock);
    snprintf(w->shard, sizeof w->shard, "%s", shard);
    pthread_mutex_unlock(&w->lock);
}

/* Settle the lease after reading: done, failed, released or dropped. */
static void settle(struct job *j, int rc, const char *error)
{
    struct loader *L = j->w->L;
    if (j->lost)
        return;
    if (rc == 0) {
        ldm_lease_done(j->lc, &j->lease, j->count, j->rejected);
        (*L->c.shards_done)++;
        LOG_INFO("shard done", "shard=%s samples=%llu rejected=%llu", j->lease.shard,
                 (unsigned long long)j->count, (unsigned long long)j->rejected);
    } else if (rc == 1) {
        ldm_lease_release(j->lc, &j->lease, j->w->next);
    } else {
        ldm_lease_fail(j->lc, &j->lease, j->w->next, error);
        (*L->c.shards_failed)++;
        LOG_WARN("shard failed", "shard=%s next=%llu error=%s", j->lease.shard,
                 (unsigned long long)j->w->next, error);
    }
}

static void run_lease(struct loader_worker *w, struct ldm_lease_client *lc,
                      const struct ldm_lease *lease)
{
    struct job j = {w, lc, *lease, now_s(), 0, 0, 0};
    struct ldm_source *src = NULL;
    char error[1024] = "";
    set_shard(w, lease->shard);
    w->next = 0;
    int rc = ldm_source_open(lease->shard, &w->L->src_opts, &src);
    if (!rc)
        rc = read_shard(&j, src);
    if (rc < 0)
        snprintf(error, sizeof error, "%s", ldm_errmsg());
    ldm_source_close(src);
    settle(&j, rc, error);
    set_shard(w, "");
}

static void lease_loop(struct loader_worker *w, struct ldm_lease_client *lc)
{
    struct loader *L = w->L;
    while (!L->stop) {
        if (L->paused) {
            nap(L, 100);
            continue;
        }
        struct ldm_lease lease;
        enum ldm_lease_state st;
        int rc = ldm_lease_get(lc, &lease, &st);
        if (rc) {
            (*L->c.lease_errors)++;
            LOG_DEBUG("no lease", "thread=%d error=%s", w->index, ldm_errmsg());
            nap(L, 1000);
        } else if (st == LDM_LEASE_GRANTED) {
            L->finished = 0;
            run_lease(w, lc, &lease);
        } else {
            if (st == LDM_LEASE_FINISHED && !atomic_exchange(&L->finished, 1))
                LOG_INFO("every shard is done", "leases=%s", L->leases);
            nap(L, st == LDM_LEASE_FINISHED ? 2000 : lease.retry_ms);
        }
    }
}

static void *worker_main(void *arg)
{
    struct loader_worker *w = arg;
    struct loader *L = w->L;
    struct ldm_lease_client *lc = NULL;
    char id[160];
    snprintf(id, sizeof id, "%s/%d", ldm_daemon_name(L->d), w->index);
    void *zctx = ldm_daemon_zctx(L->d);
    const char *skey = L->server_public[0] ? L->server_public : NULL;
    int hwm = (int)L->cfg->hwm, linger = 2000;
    w->sock = zmq_socket(zctx, ZMQ_PUSH);
    zmq_setsockopt(w->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger); /* deliver what is queued */
    int rc = ldm_lease_client_new(zctx, L->leases, skey, NULL, id, (int)L->cfg->request_ms, &lc);
    if (!rc) {
        ldm_lease_client_set_cancel(lc, &L->stop);
        rc = ldm_zconnect(w->sock, L->samples, skey, NULL);
    }
    if (rc)
        LOG_ERROR("loader thread cannot start", "thread=%d error=%s", w->index, ldm_errmsg());
    else
        lease_loop(w, lc);
    ldm_lease_client_free(&lc);
    zmq_close(w->sock);
    return NULL;
}

int loader_workers_start(struct loader *L, int n)
{
    L->workers = calloc((size_t)n, sizeof *L->workers);
    if (!L->workers)
        return ldm_fail(LDM_ENOMEM, "loader threads: out of memory");
    L->nworkers = n;
    for (int i = 0; i < n; i++) {
        struct loader_worker *w = &L->workers[i];
        w->L = L;
        w->index = i;
        pthread_mutex_init(&w->lock, NULL);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return ldm_fail(LDM_EIO, "cannot start loader thread %d", i);
        w->started = 1;
    }
    return 0;
}

void loader_workers_stop(struct loader *L)
{
    L->stop = 1;
    for (int i = 0; i < L->nworkers; i++) {
        if (L->workers[i].started)
            pthread_join(L->workers[i].thread, NULL);
        pthread_mutex_destroy(&L->workers[i].lock);
    }
    free(L->workers);
    L->workers = NULL;
    L->nworkers = 0;
}

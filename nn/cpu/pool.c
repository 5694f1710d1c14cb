/* pool.c — a small pthread pool that runs numbered tasks. */
#include "nn/cpu/pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct worker {
    struct ldm_pool *pool;
    int index;
};

struct ldm_pool {
    int threads;
    pthread_t *tids;
    struct worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a new run (gen changed) or stop */
    pthread_cond_t done; /* busy reached 0 */
    uint64_t gen;
    int stop;
    int busy; /* workers still inside the current run */
    ldm_pool_fn fn;
    void *arg;
    int64_t n;
    _Atomic int64_t next;
};

/* Take tasks until none is left. */
static void drain(struct ldm_pool *p, int thread)
{
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n)
            return;
        p->fn(p->arg, t, thread);
    }
}

static void *worker_main(void *vw)
{
    struct worker *w = vw;
    struct ldm_pool *p = w->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->stop)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        drain(p, w->index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int ldm_cpu_count(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    return 1;
}

/* Stop and join the first `started` workers. */
static void stop_workers(struct ldm_pool *p, int started)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++)
        pthread_join(p->tids[i], NULL);
}

static void free_pool(struct ldm_pool *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->tids);
    free(p->workers);
    free(p);
}

int ldm_pool_create(struct ldm_pool **out, int threads)
{
    *out = NULL;
    if (threads < 1)
        return ldm_fail(LDM_EINVAL, "thread pool: %d threads (at least 1)", threads);
    struct ldm_pool *p = calloc(1, sizeof *p);
    if (!p)
        return ldm_fail(LDM_ENOMEM, "thread pool: out of memory");
    p->threads = threads;
    p->tids = calloc((size_t)threads, sizeof *p->tids);
    p->workers = calloc((size_t)threads, sizeof *p->workers);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (!p->tids || !p->workers) {
        free_pool(p);
        return ldm_fail(LDM_ENOMEM, "thread pool: out of memory");
    }
    for (int i = 0; i + 1 < threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i + 1;
        int e = pthread_create(&p->tids[i], NULL, worker_main, &p->workers[i]);
        if (e) {
            stop_workers(p, i);
            free_pool(p);
            errno = e;
            return ldm_fail_errno(LDM_EIO, "thread pool: starting thread %d of %d", i + 2,
                                  threads);
        }
    }
    *out = p;
    return 0;
}

void ldm_pool_destroy(struct ldm_pool **pp)
{
    struct ldm_pool *p = *pp;
    if (!p)
        return;
    stop_workers(p, p->threads - 1);
    free_pool(p);
    *pp = NULL;
}

int ldm_pool_threads(const struct ldm_pool *p)
{
    return p->threads;
}

void ldm_pool_run(struct ldm_pool *p, int64_t n, ldm_pool_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (p->threads == 1 || n == 1) {
        for (int64_t t = 0; t < n; t++)
            fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    atomic_store(&p->next, 0);
    p->busy = p->threads - 1;
    p->gen++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

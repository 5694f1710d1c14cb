/* pool.h — a small pthread pool that runs numbered tasks (the CPU backend's threads).
 *
 * ldm_pool_run(p, n, fn, arg) calls fn(arg, task, thread) once for every
 * task 0..n-1, spread over the pool's threads (the calling thread is thread
 * 0 and works too), and returns when all have returned. Tasks are handed
 * out one at a time in increasing order, so a task may be any size. Idle
 * workers sleep on a condition variable. One run at a time per pool: the
 * pool is not reentrant (a task must not call ldm_pool_run on its pool).
 */
#ifndef LDM_NN_CPU_POOL_H
#define LDM_NN_CPU_POOL_H

#include <stdint.h>

struct ldm_pool;

typedef void (*ldm_pool_fn)(void *arg, int64_t task, int thread);

/* Start a pool of `threads` threads in all (threads - 1 workers; 1 means
 * the caller alone). *out owns them. Returns 0, LDM_EINVAL (threads < 1),
 * LDM_ENOMEM or LDM_EIO (pthread_create failed; no thread is left). */
int ldm_pool_create(struct ldm_pool **out, int threads);

/* Stop and join the workers, free the pool, set *p NULL (NULL is fine). */
void ldm_pool_destroy(struct ldm_pool **p);

/* The number of threads, the caller included. */
int ldm_pool_threads(const struct ldm_pool *p);

/* Run tasks 0..n-1 (see the top). n <= 0 does nothing. */
void ldm_pool_run(struct ldm_pool *p, int64_t n, ldm_pool_fn fn, void *arg);

/* The cores this process may run on (sched_getaffinity), at least 1. */
int ldm_cpu_count(void);

#endif

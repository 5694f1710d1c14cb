/* comm.c — the communicator: argument checks, the request queue and the
 * communication thread in front of the ring (ring.c), or NCCL (nn/nccl.h).
 *
 * Ring: every collective becomes a request queued for the comm thread,
 * which runs them one at a time in order and counts tickets done; a
 * blocking collective is a request plus a wait. The first failure is kept
 * (its ticket, code and text): later requests are skipped and fail with it.
 * NCCL: collectives are enqueued on the stream at once (attached to a compute
 * context: on the communicator's own stream, ordered by events, nn/nccl.h);
 * waits synchronise it.
 */
#include "comm.h"
#include "err.h"
#include "log.h"
#include "nn/nccl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum req_kind { R_ALLREDUCE, R_REDUCE_SCATTER, R_ALL_GATHER, R_BROADCAST, R_BARRIER };

struct request {
    struct request *next;
    int kind, arg; /* arg: the reduce op, or the broadcast root */
    float *buf;
    size_t n;
    size_t *bound; /* reduce-scatter, all-gather: the split (world + 1), owned; NULL: even */
    uint64_t ticket;
};

struct ldm_comm {
    int kind, rank, world;
    struct ldm_ring *ring;
    struct ldm_nccl *nccl;
    void *stream;
    pthread_t thread;
    int has_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct request *head, *tail; /* queued, not yet taken by the thread */
    uint64_t issued, done;       /* tickets handed out; the last one finished */
    uint64_t fail_ticket;        /* the first that failed; 0: none */
    int err_rc;
    char err_msg[768];
    int stop;
};

void ldm_comm_shard(size_t n, int world, int rank, size_t *off, size_t *count)
{
    size_t w = (size_t)world, r = (size_t)rank, base = n / w, rem = n % w;
    *off = r * base + (r < rem ? r : rem);
    *count = base + (r < rem ? 1 : 0);
}

int ldm_comm_rank(const struct ldm_comm *c)
{
    return c->rank;
}

int ldm_comm_world(const struct ldm_comm *c)
{
    return c->world;
}

static int run_request(struct ldm_comm *c, const struct request *q)
{
    if (q->n == 0 && q->kind != R_BARRIER)
        return 0;
    switch (q->kind) {
    case R_ALLREDUCE: return ldm_ring_allreduce(c->ring, q->buf, q->n, q->arg);
    case R_REDUCE_SCATTER:
        return ldm_ring_reduce_scatter(c->ring, q->buf, q->n, q->bound, q->arg);
    case R_ALL_GATHER: return ldm_ring_all_gather(c->ring, q->buf, q->n, q->bound);
    case R_BROADCAST: return ldm_ring_broadcast(c->ring, q->buf, q->n, q->arg);
    default: return ldm_ring_barrier(c->ring);
    }
}

static void *comm_thread(void *arg)
{
    struct ldm_comm *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->head && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop)
            break;
        struct request *q = c->head;
        c->head = q->next;
        if (!c->head)
            c->tail = NULL;
        int skip = c->fail_ticket != 0;
        pthread_mutex_unlock(&c->mu);
        int rc = skip ? 0 : run_request(c, q);
        pthread_mutex_lock(&c->mu);
        if (rc && !c->fail_ticket) {
            c->fail_ticket = q->ticket;
            c->err_rc = rc;
            snprintf(c->err_msg, sizeof c->err_msg, "%s", ldm_errmsg());
            LOG_ERROR("collective failed", "rank=%d ticket=%llu error=%s", c->rank,
                      (unsigned long long)q->ticket, c->err_msg);
        }
        c->done = q->ticket;
        pthread_cond_broadcast(&c->cv);
        free(q->bound);
        free(q);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* The stored failure as this thread's error. Called with mu held. */
static int broken(const struct ldm_comm *c)
{
    return ldm_fail(c->err_rc, "%s", c->err_msg);
}

/* A request for the comm thread, with its own copy of bound (NULL: none). */
static struct request *new_request(const struct ldm_comm *c, const size_t *bound)
{
    struct request *q = calloc(1, sizeof *q);
    size_t nb = (size_t)c->world + 1;
    if (q && bound && !(q->bound = malloc(nb * sizeof *bound))) {
        free(q);
        q = NULL;
    }
    if (q && bound)
        memcpy(q->bound, bound, nb * sizeof *bound);
    return q;
}

/* Queue a request for the comm thread (with no thread, world 1: done at
 * once); *ticket gets its number. */
static int submit(struct ldm_comm *c, int kind, float *buf, size_t n, const size_t *bound,
                  int arg, uint64_t *ticket)
{
    struct request *q = NULL;
    if (c->has_thread && !(q = new_request(c, bound)))
        return ldm_fail(LDM_ENOMEM, "comm rank %d: request", c->rank);
    pthread_mutex_lock(&c->mu);
    if (c->fail_ticket) {
        int rc = broken(c);
        pthread_mutex_unlock(&c->mu);
        if (q)
            free(q->bound);
        free(q);
        return rc;
    }
    *ticket = ++c->issued;
    if (!q) {
        c->done = *ticket;
    } else {
        q->kind = kind, q->arg = arg, q->buf = buf, q->n = n, q->ticket = *ticket;
        if (c->tail)
            c->tail->next = q;
        else
            c->head = q;
        c->tail = q;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int ldm_comm_wait(struct ldm_comm *c, uint64_t ticket)
{
    if (!c)
        return ldm_fail(LDM_EINVAL, "comm wait: no communicator");
    if (c->kind == LDM_COMM_NCCL)
        return ticket == 0 || ticket > c->issued
                   ? ldm_fail(LDM_EINVAL, "comm wait: ticket %llu was never handed out",
                              (unsigned long long)ticket)
                   : ldm_nccl_sync(c->nccl, c->stream);
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (ticket == 0 || ticket > c->issued)
        rc = ldm_fail(LDM_EINVAL, "comm wait: ticket %llu was never handed out (last %llu)",
                      (unsigned long long)ticket, (unsigned long long)c->issued);
    while (!rc && c->done < ticket)
        pthread_cond_wait(&c->cv, &c->mu);
    if (!rc && c->fail_ticket && ticket >= c->fail_ticket)
        rc = broken(c);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- NCCL: enqueue on the stream, then (blocking calls) synchronise ---------------------- */

static int nccl_run(struct ldm_comm *c, int kind, float *buf, size_t n, const size_t *bound,
                    int arg)
{
    size_t shard = n / (size_t)c->world;
    float *mine = buf + (size_t)c->rank * shard;
    if (n == 0 && kind != R_BARRIER)
        return 0;
    if (bound && kind == R_REDUCE_SCATTER)
        return ldm_nccl_reduce_scatter_at(c->nccl, buf, bound, arg, c->stream);
    if (bound && kind == R_ALL_GATHER)
        return ldm_nccl_all_gather_at(c->nccl, buf, bound, c->stream);
    switch (kind) {
    case R_ALLREDUCE: return ldm_nccl_allreduce(c->nccl, buf, buf, n, arg, c->stream);
    case R_REDUCE_SCATTER:
        return ldm_nccl_reduce_scatter(c->nccl, buf, mine, shard, arg, c->stream);
    case R_ALL_GATHER: return ldm_nccl_all_gather(c->nccl, mine, buf, shard, c->stream);
    case R_BROADCAST: return ldm_nccl_broadcast(c->nccl, buf, buf, n, arg, c->stream);
    default: return ldm_nccl_barrier(c->nccl, c->stream);
    }
}

/* ---- the collectives ----------------------------------------------------------------------- */

static const char *const req_names[] = {"allreduce", "reduce-scatter", "all-gather", "broadcast",
                                        "barrier"};

static int check_call(const struct ldm_comm *c, int kind, const float *buf, size_t n, int arg,
                      int even)
{
    const char *what = req_names[kind];
    if (!c)
        return ldm_fail(LDM_EINVAL, "comm %s: no communicator", what);
    if (n && !buf)
        return ldm_fail(LDM_EINVAL, "comm %s: rank %d: NULL buffer of %zu floats", what, c->rank,
                        n);
    if (n > SIZE_MAX / sizeof(float) / 2)
        return ldm_fail(LDM_EINVAL, "comm %s: %zu floats is too many", what, n);
    if ((kind == R_ALLREDUCE || kind == R_REDUCE_SCATTER) && arg != LDM_REDUCE_SUM &&
        arg != LDM_REDUCE_AVG)
        return ldm_fail(LDM_EINVAL, "comm %s: reduce op %d is neither sum nor average", what, arg);
    if (kind == R_BROADCAST && (arg < 0 || arg >= c->world))
        return ldm_fail(LDM_EINVAL, "comm broadcast: root %d is not a rank of world %d", arg,
                        c->world);
    if (even && c->kind == LDM_COMM_NCCL && (kind == R_REDUCE_SCATTER || kind == R_ALL_GATHER) &&
        n % (size_t)c->world)
        return ldm_fail(LDM_EINVAL, "comm %s: %zu floats is not a multiple of world %d (NCCL)",
                        what, n, c->world);
    return 0;
}

/* A split of n over the ranks: world + 1 offsets from 0 up to n, never decreasing. */
static int check_bound(const struct ldm_comm *c, int kind, size_t n, const size_t *bound)
{
    const char *what = req_names[kind];
    int bad = bound[0] != 0 || bound[c->world] != n;
    for (int k = 0; !bad && k < c->world; k++)
        bad = bound[k] > bound[k + 1];
    if (bad)
        return ldm_fail(LDM_EINVAL, "comm %s: rank %d: the split of %zu floats does not run "
                        "from 0 to n in order", what, c->rank, n);
    return 0;
}

/* Start collective `kind` (bound: its split, or NULL); *ticket names it for ldm_comm_wait. */
static int start(struct ldm_comm *c, int kind, float *buf, size_t n, const size_t *bound,
                 int arg, uint64_t *ticket)
{
    int rc = check_call(c, kind, buf, n, arg, !bound);
    if (!rc && bound)
        rc = check_bound(c, kind, n, bound);
    if (rc)
        return rc;
    if (c->kind != LDM_COMM_NCCL)
        return submit(c, kind, buf, n, bound, arg, ticket);
    rc = nccl_run(c, kind, buf, n, bound, arg);
    if (!rc)
        *ticket = ++c->issued;
    return rc;
}

static int blocking(struct ldm_comm *c, int kind, float *buf, size_t n, const size_t *bound,
                    int arg)
{
    uint64_t t = 0;
    int rc = start(c, kind, buf, n, bound, arg, &t);
    return rc ? rc : ldm_comm_wait(c, t);
}

int ldm_comm_allreduce_start(struct ldm_comm *c, float *buf, size_t n, int op, uint64_t *ticket)
{
    *ticket = 0;
    return start(c, R_ALLREDUCE, buf, n, NULL, op, ticket);
}

int ldm_comm_reduce_scatter_at_start(struct ldm_comm *c, float *buf, size_t n,
                                     const size_t *bound, int op, uint64_t *ticket)
{
    *ticket = 0;
    return start(c, R_REDUCE_SCATTER, buf, n, bound, op, ticket);
}

int ldm_comm_allreduce(struct ldm_comm *c, float *buf, size_t n, int op)
{
    return blocking(c, R_ALLREDUCE, buf, n, NULL, op);
}

int ldm_comm_reduce_scatter(struct ldm_comm *c, float *buf, size_t n, int op)
{
    return blocking(c, R_REDUCE_SCATTER, buf, n, NULL, op);
}

int ldm_comm_all_gather(struct ldm_comm *c, float *buf, size_t n)
{
    return blocking(c, R_ALL_GATHER, buf, n, NULL, 0);
}

int ldm_comm_all_gather_at(struct ldm_comm *c, float *buf, size_t n, const size_t *bound)
{
    return blocking(c, R_ALL_GATHER, buf, n, bound, 0);
}

int ldm_comm_broadcast(struct ldm_comm *c, float *buf, size_t n, int root)
{
    return blocking(c, R_BROADCAST, buf, n, NULL, root);
}

int ldm_comm_barrier(struct ldm_comm *c)
{
    return blocking(c, R_BARRIER, NULL, 0, NULL, 0);
}

int ldm_comm_attach(struct ldm_comm *c, struct ldm_ctx *ctx)
{
    if (!c || !ctx)
        return ldm_fail(LDM_EINVAL, "comm attach: no communicator or context");
    if (c->kind != LDM_COMM_NCCL)
        return 0;
    if (c->stream)
        return ldm_fail(LDM_EINVAL, "comm attach: rank %d already runs on the stream of its "
                        "options", c->rank);
    return ldm_nccl_attach(c->nccl, ctx);
}

/* ---- open, set up, close --------------------------------------------------------------------- */

static int open_transport(struct ldm_comm *c, void *zctx, const struct ldm_rdv_table *t,
                          const struct ldm_comm_opts *o)
{
    if (c->kind == LDM_COMM_NCCL) {
        if (t->blob_len != LDM_NCCL_ID_BYTES)
            return ldm_fail(LDM_EINVAL, "comm rank %d: the rendezvous blob is %zu bytes, not an "
                            "NCCL unique id (%d)", c->rank, t->blob_len, LDM_NCCL_ID_BYTES);
        c->stream = o->stream;
        return ldm_nccl_open(&c->nccl, c->rank, c->world, t->blob, o->device, o->timeout_ms);
    }
    if (c->world == 1)
        return 0;
    int rc = ldm_ring_open(&c->ring, zctx, c->rank, c->world, t, o);
    if (rc)
        return rc;
    rc = pthread_create(&c->thread, NULL, comm_thread, c);
    if (rc)
        return ldm_fail(LDM_EIO, "comm rank %d: cannot start its thread: %s", c->rank,
                        strerror(rc));
    c->has_thread = 1;
    return 0;
}

int ldm_comm_open(struct ldm_comm **out, void *zctx, int rank, int world,
                  const struct ldm_rdv_table *t, const struct ldm_comm_opts *o)
{
    static const struct ldm_comm_opts defaults;
    *out = NULL;
    o = o ? o : &defaults;
    if (world < 1 || rank < 0 || rank >= world || !t || t->world != world)
        return ldm_fail(LDM_EINVAL, "comm: rank %d of world %d with a table for %d", rank, world,
                        t ? t->world : 0);
    if (o->kind != LDM_COMM_RING && o->kind != LDM_COMM_NCCL)
        return ldm_fail(LDM_EINVAL, "comm: kind %d is neither ring nor nccl", o->kind);
    struct ldm_comm *c = calloc(1, sizeof *c);
    if (!c)
        return ldm_fail(LDM_ENOMEM, "comm rank %d", rank);
    c->kind = o->kind;
    c->rank = rank;
    c->world = world;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    int rc = open_transport(c, zctx, t, o);
    if (rc) {
        ldm_comm_close(&c);
        return rc;
    }
    LOG_INFO("comm open", "rank=%d world=%d transport=%s", rank, world,
             c->kind == LDM_COMM_NCCL ? "nccl" : "ring");
    *out = c;
    return 0;
}

int ldm_comm_setup(struct ldm_comm **out, void *zctx, int rank, int world,
                   const char *data_endpoint, const struct ldm_rdv_opts *ro,
                   const struct ldm_comm_opts *co)
{
    static const struct ldm_comm_opts defaults;
    unsigned char id[LDM_NCCL_ID_BYTES];
    size_t id_len = 0;
    *out = NULL;
    co = co ? co : &defaults;
    if (co->kind == LDM_COMM_NCCL && rank == 0) {
        int rc = ldm_nccl_unique_id(id);
        if (rc)
            return rc;
        id_len = sizeof id;
    }
    if (!data_endpoint || !*data_endpoint)
        data_endpoint = co->kind == LDM_COMM_NCCL ? "nccl" : "";
    const char *key = co->sec && co->sec->server ? co->sec->server->public_key : NULL;
    struct ldm_rdv_table *t = NULL;
    int rc = ldm_rdv_run(zctx, ro, rank, world, data_endpoint, key, id_len ? id : NULL, id_len,
                         &t);
    if (!rc)
        rc = ldm_comm_open(out, zctx, rank, world, t, co);
    ldm_rdv_table_free(&t);
    return rc;
}

void ldm_comm_close(struct ldm_comm **pc)
{
    struct ldm_comm *c = pc ? *pc : NULL;
    if (!c)
        return;
    if (c->has_thread) {
        pthread_mutex_lock(&c->mu);
        c->stop = 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    while (c->head) {
        struct request *q = c->head;
        c->head = q->next;
        free(q->bound);
        free(q);
    }
    ldm_ring_close(&c->ring);
    ldm_nccl_close(&c->nccl);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
    *pc = NULL;
}

/* test_ring.c — trainerd's collectives: ranks from the config and the
 * environment, the rendezvous, and the ring's all-reduce, reduce-scatter,
 * all-gather, broadcast, barrier and background all-reduces, with every
 * rank a thread of this process on ipc:// sockets; reduce-scatter and
 * all-gather also at uneven splits (the ZeRO shards). Worker threads record
 * what they saw; the test's own thread makes the assertions. */
#include <arpa/inet.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"
#include "nn/nccl.h"
#include "testutil.h"
#include "trainerd/comm.h"
#include "trainerd/ranks.h"
#include "trainerd/rdv.h"
#include "zap.h"

#define MAXW 4

/* ---- ranks ------------------------------------------------------------------------------ */

static void clear_env(void)
{
    static const char *const vars[] = {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                                       "RANK",         "WORLD_SIZE",   "LOCAL_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

START_TEST(ranks_config_and_defaults)
{
    struct ldm_ranks r;
    clear_env();
    ck_ok(ldm_ranks_resolve(-1, -1, -1, &r));
    ck_assert_int_eq(r.rank, 0);
    ck_assert_int_eq(r.world, 1);
    ck_assert_int_eq(r.local_rank, 0);
    ck_assert_str_eq(r.rank_from, "default");
    ck_ok(ldm_ranks_resolve(3, 8, 1, &r));
    ck_assert_int_eq(r.rank, 3);
    ck_assert_int_eq(r.world, 8);
    ck_assert_int_eq(r.local_rank, 1);
    ck_assert_str_eq(r.world_from, "world_size");
    setenv("RANK", "5", 1); /* the config wins over the environment, key by key */
    setenv("WORLD_SIZE", "6", 1);
    ck_ok(ldm_ranks_resolve(2, -1, -1, &r));
    ck_assert_int_eq(r.rank, 2);
    ck_assert_int_eq(r.world, 6);
    ck_assert_str_eq(r.world_from, "WORLD_SIZE");
    clear_env();
}
END_TEST

START_TEST(ranks_from_environment)
{
    struct ldm_ranks r;
    clear_env();
    setenv("RANK", "3", 1);
    setenv("WORLD_SIZE", "4", 1);
    setenv("LOCAL_RANK", "1", 1);
    ck_ok(ldm_ranks_resolve(-1, -1, -1, &r));
    ck_assert_int_eq(r.rank, 3);
    ck_assert_int_eq(r.world, 4);
    ck_assert_int_eq(r.local_rank, 1);
    ck_assert_str_eq(r.rank_from, "RANK");
    setenv("SLURM_PROCID", "6", 1); /* Slurm first, as a whole */
    setenv("SLURM_NTASKS", " 16", 1);
    ck_ok(ldm_ranks_resolve(-1, -1, -1, &r));
    ck_assert_int_eq(r.rank, 6);
    ck_assert_int_eq(r.world, 16);
    ck_assert_int_eq(r.local_rank, 0);
    ck_assert_str_eq(r.local_from, "default");
    setenv("SLURM_LOCALID", "2", 1);
    ck_ok(ldm_ranks_resolve(-1, -1, -1, &r));
    ck_assert_int_eq(r.local_rank, 2);
    ck_assert_str_eq(r.local_from, "SLURM_LOCALID");
    clear_env();
}
END_TEST

START_TEST(ranks_refused)
{
    struct ldm_ranks r;
    clear_env();
    setenv("RANK", "two", 1);
    setenv("WORLD_SIZE", "4", 1);
    ck_fails_with(ldm_ranks_resolve(-1, -1, -1, &r), LDM_ECONFIG, "RANK: 'two' is not a whole");
    setenv("RANK", "4", 1);
    ck_fails_with(ldm_ranks_resolve(-1, -1, -1, &r), LDM_ECONFIG,
                  "rank 4 (RANK) is not below the world size 4 (WORLD_SIZE)");
    setenv("RANK", "1", 1);
    setenv("WORLD_SIZE", "0", 1);
    ck_fails_with(ldm_ranks_resolve(-1, -1, -1, &r), LDM_ECONFIG, "WORLD_SIZE: 0 is out of range");
    setenv("WORLD_SIZE", "4x", 1);
    ck_fails_with(ldm_ranks_resolve(-1, -1, -1, &r), LDM_ECONFIG, "WORLD_SIZE: '4x'");
    setenv("WORLD_SIZE", "99999999999999999999", 1);
    ck_fails_with(ldm_ranks_resolve(-1, -1, -1, &r), LDM_ECONFIG, "WORLD_SIZE");
    setenv("WORLD_SIZE", "4", 1);
    setenv("LOCAL_RANK", "-1", 1);
    ck_fails_with(ldm_ranks_resolve(-1, -1, -1, &r), LDM_ECONFIG, "LOCAL_RANK: -1 is out of range");
    clear_env();
    setenv("SLURM_PROCID", "1", 1);
    ck_fails_with(ldm_ranks_resolve(-1, -1, -1, &r), LDM_ECONFIG,
                  "SLURM_PROCID is set but SLURM_NTASKS is not");
    clear_env();
    ck_fails_with(ldm_ranks_resolve(2, 2, -1, &r), LDM_ECONFIG,
                  "rank 2 (rank) is not below the world size 2 (world_size)");
    ck_fails_with(ldm_ranks_resolve(-1, 0, -1, &r), LDM_ECONFIG, "world_size: 0 is out of range");
    ck_fails_with(ldm_ranks_resolve(-5, 2, -1, &r), LDM_ECONFIG, "rank: -5");
    ck_fails_with(ldm_ranks_resolve(1, 2, 2, &r), LDM_ECONFIG, "local rank 2 (local_rank)");
}
END_TEST

/* ---- rendezvous ----------------------------------------------------------------------------- */

struct rdv_rank {
    pthread_t th;
    void *zctx;
    int rank, world, claim_world, timeout_ms, delay_ms;
    const char *endpoint, *run;
    char data[128];
    int rc;
    char err[512];
    struct ldm_rdv_table *t;
};

static void *rdv_main(void *arg)
{
    struct rdv_rank *a = arg;
    unsigned char blob[LDM_NCCL_ID_BYTES];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (unsigned char)(i * 7 + 3);
    if (a->delay_ms)
        usleep((useconds_t)a->delay_ms * 1000);
    struct ldm_rdv_opts o = {.endpoint = a->endpoint, .run_id = a->run, .timeout_ms = a->timeout_ms};
    int world = a->claim_world ? a->claim_world : a->world;
    a->rc = ldm_rdv_run(a->zctx, &o, a->rank, world, a->data, NULL, a->rank ? NULL : blob,
                        a->rank ? 0 : sizeof blob, &a->t);
    snprintf(a->err, sizeof a->err, "%s", ldm_errmsg());
    return NULL;
}

/* Run n rendezvous threads (rank 0 last and late: the others must wait for it). */
static void rdv_go(struct rdv_rank *a, int n, void *zctx, const char *ep)
{
    for (int i = n - 1; i >= 0; i--) {
        a[i].zctx = zctx;
        a[i].endpoint = ep;
        if (!a[i].run)
            a[i].run = "run-1";
        if (!a[i].timeout_ms)
            a[i].timeout_ms = 5000;
        snprintf(a[i].data, sizeof a[i].data, "ipc:///tmp/data-%d-%d", a[i].rank, i);
        pthread_create(&a[i].th, NULL, rdv_main, &a[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(a[i].th, NULL);
}

START_TEST(rdv_any_order)
{
    char *dir = tu_tmpdir(), ep[300];
    void *zctx = zmq_ctx_new();
    snprintf(ep, sizeof ep, "ipc://%s/rdv.sock", dir);
    for (int world = 1; world <= MAXW; world++) {
        struct rdv_rank a[MAXW] = {{0}};
        for (int r = 0; r < world; r++)
            a[r] = (struct rdv_rank){.rank = r, .world = world, .delay_ms = r ? 0 : 300};
        rdv_go(a, world, zctx, ep);
        for (int r = 0; r < world; r++) {
            ck_assert_msg(a[r].rc == 0, "world %d rank %d: %s", world, r, a[r].err);
            ck_assert_int_eq(a[r].t->world, world);
            ck_assert_uint_eq(a[r].t->blob_len, LDM_NCCL_ID_BYTES);
            ck_assert_int_eq(a[r].t->blob[5], 5 * 7 + 3);
            for (int k = 0; k < world; k++) {
                ck_assert_str_eq(a[r].t->ent[k].endpoint, a[k].data);
                ck_assert_str_eq(a[r].t->ent[k].key, "");
            }
            ldm_rdv_table_free(&a[r].t);
        }
    }
    ck_assert_int_eq(access(ep + 6, F_OK), -1); /* rank 0 removed its socket file */
    zmq_ctx_term(zctx);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(rdv_refusals)
{
    char *dir = tu_tmpdir(), ep[300];
    void *zctx = zmq_ctx_new();
    snprintf(ep, sizeof ep, "ipc://%s/rdv.sock", dir);
    /* a second process claiming rank 1: whichever comes second is refused */
    struct rdv_rank a[4] = {{.rank = 0, .world = 3}, {.rank = 1, .world = 3},
                            {.rank = 1, .world = 3}, {.rank = 2, .world = 3, .delay_ms = 400}};
    rdv_go(a, 4, zctx, ep);
    ck_assert_msg(a[0].rc == 0 && a[3].rc == 0, "%s / %s", a[0].err, a[3].err);
    int refused = a[1].rc ? 1 : 2, kept = 3 - refused;
    ck_assert_msg(a[kept].rc == 0, "%s", a[kept].err);
    ck_assert_int_eq(a[refused].rc, LDM_ECONFIG);
    ck_assert_msg(strstr(a[refused].err, "rank 1 is already registered by another process"), "%s",
                  a[refused].err);
    for (int i = 0; i < 4; i++)
        ldm_rdv_table_free(&a[i].t);

    /* a world-size mismatch and a different run id: refused, rank 0 times out naming them */
    struct rdv_rank b[2] = {{.rank = 0, .world = 2, .timeout_ms = 700},
                            {.rank = 1, .world = 2, .claim_world = 3}};
    rdv_go(b, 2, zctx, ep);
    ck_assert_int_eq(b[1].rc, LDM_ECONFIG);
    ck_assert_msg(strstr(b[1].err, "rank 1: world size 3 differs from rank 0's 2"), "%s", b[1].err);
    ck_assert_int_eq(b[0].rc, LDM_ETIMEOUT);
    ck_assert_msg(strstr(b[0].err, "ranks 1 of 2 still missing after 700 ms; last refusal: rank 1"),
                  "%s", b[0].err);
    struct rdv_rank c[2] = {{.rank = 0, .world = 2, .timeout_ms = 500},
                            {.rank = 1, .world = 2, .run = "run-2"}};
    rdv_go(c, 2, zctx, ep);
    ck_assert_int_eq(c[1].rc, LDM_ECONFIG);
    ck_assert_msg(strstr(c[1].err, "rank 1: run id 'run-2' differs from rank 0's 'run-1'"), "%s",
                  c[1].err);
    ck_assert_int_eq(c[0].rc, LDM_ETIMEOUT);
    zmq_ctx_term(zctx);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(rdv_timeouts_name_missing_ranks)
{
    char *dir = tu_tmpdir(), ep[300];
    void *zctx = zmq_ctx_new();
    snprintf(ep, sizeof ep, "ipc://%s/rdv.sock", dir);
    struct rdv_rank a[2] = {{.rank = 0, .world = 4, .timeout_ms = 600},
                            {.rank = 1, .world = 4, .timeout_ms = 600}};
    rdv_go(a, 2, zctx, ep);
    ck_assert_int_eq(a[0].rc, LDM_ETIMEOUT);
    ck_assert_msg(strstr(a[0].err, "ranks 2,3 of 4 still missing after 600 ms"), "%s", a[0].err);
    ck_assert_int_eq(a[1].rc, LDM_ETIMEOUT);
    ck_assert_msg(strstr(a[1].err, "rank 0 last reported ranks 2,3 missing"), "%s", a[1].err);
    struct rdv_rank b[1] = {{.rank = 2, .world = 3, .timeout_ms = 300}}; /* no rank 0 at all */
    rdv_go(b, 1, zctx, ep);
    ck_assert_int_eq(b[0].rc, LDM_ETIMEOUT);
    ck_assert_msg(strstr(b[0].err, "rank 2 of 3: rank 0 never answered within 300 ms"), "%s",
                  b[0].err);
    struct ldm_rdv_opts o = {.endpoint = ep};
    struct ldm_rdv_table *t = NULL;
    ck_fails_with(ldm_rdv_run(zctx, &o, 3, 3, "ipc:///x", NULL, NULL, 0, &t), LDM_EINVAL,
                  "rank 3 of world 3");
    ck_fails_with(ldm_rdv_run(zctx, &o, 1, 3, "", NULL, NULL, 0, &t), LDM_EINVAL, "data endpoint");
    zmq_ctx_term(zctx);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- collectives -------------------------------------------------------------------------- */

/* Deterministic values: uniform in [-1, 1) from (seed, rank, index). */
static float val(uint64_t seed, int rank, size_t i)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + (uint64_t)rank * 0xbf58476d1ce4e5b9ull + i;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ull << 23) - 1.0);
}

/* Small whole numbers: their sums are exact in any order. */
static float whole(int rank, size_t i)
{
    return (float)((long)((i * 7 + (size_t)rank * 13) % 1000) - 500);
}

static uint64_t fnv(const float *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

struct worker;
typedef int (*body_fn)(struct worker *w, struct ldm_comm *c);

struct worker {
    pthread_t th;
    void *zctx;
    int rank, world;
    const struct ldm_rdv_table *t;
    struct ldm_comm_opts o;
    body_fn body;
    size_t n;
    int rc;            /* the body's result */
    char err[512];     /* its error detail */
    char fail[512];    /* a wrong result the body found */
    uint64_t hash[8];  /* results to compare across ranks */
    atomic_int *counter;
    int saw_counter;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ldm_comm *c = NULL;
    w->rc = ldm_comm_open(&c, w->zctx, w->rank, w->world, w->t, &w->o);
    if (!w->rc)
        w->rc = w->body(w, c);
    snprintf(w->err, sizeof w->err, "%s", ldm_errmsg());
    ldm_comm_close(&c);
    return NULL;
}

/* Run `body` on `world` ranks, each a thread with its own communicator. */
static void run_world(struct worker *ws, int world, const char *dir, const char *tag, body_fn body,
                      size_t n, const struct ldm_comm_opts *o)
{
    struct ldm_rdv_table *t = ldm_rdv_table_new(world);
    void *zctx = zmq_ctx_new();
    for (int r = 0; r < world; r++)
        snprintf(t->ent[r].endpoint, sizeof t->ent[r].endpoint, "ipc://%s/%s-%d.sock", dir, tag, r);
    for (int r = 0; r < world; r++) {
        ws[r] = (struct worker){.zctx = zctx, .rank = r, .world = world, .t = t, .body = body,
                                .n = n};
        if (o)
            ws[r].o = *o;
        pthread_create(&ws[r].th, NULL, worker_main, &ws[r]);
    }
    for (int r = 0; r < world; r++)
        pthread_join(ws[r].th, NULL);
    zmq_ctx_term(zctx);
    ldm_rdv_table_free(&t);
}

#define FAIL_IF(w, cond, ...)                                                                      \
    do {                                                                                           \
        if ((cond) && !(w)->fail[0])                                                               \
            snprintf((w)->fail, sizeof (w)->fail, __VA_ARGS__);                                    \
    } while (0)

/* The allreduce result against a direct float64 sum over ranks. */
static void check_sum(struct worker *w, const float *buf, int avg)
{
    for (size_t i = 0; i < w->n; i++) {
        double s = 0, mag = 0;
        for (int r = 0; r < w->world; r++) {
            s += val(1, r, i);
            mag += fabs(val(1, r, i));
        }
        if (avg)
            s /= w->world, mag /= w->world;
        FAIL_IF(w, fabs(buf[i] - s) > 4 * FLT_EPSILON * mag + 1e-30,
                "%s element %zu: %.9g, direct sum %.9g", avg ? "average" : "sum", i, buf[i], s);
    }
}

static void fill(float *buf, size_t n, int rank, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = val(seed, rank, i);
}

/* allreduce sum and average, then reduce-scatter (its shard must be the sum's) */
static int reduce_checks(struct worker *w, struct ldm_comm *c, float *buf, float *sum)
{
    size_t n = w->n, off, cnt;
    fill(buf, n, w->rank, 1);
    int rc = ldm_comm_allreduce(c, buf, n, LDM_REDUCE_SUM);
    if (!rc) {
        check_sum(w, buf, 0);
        memcpy(sum, buf, n * sizeof(float));
        w->hash[0] = fnv(buf, n);
        fill(buf, n, w->rank, 1);
        rc = ldm_comm_allreduce(c, buf, n, LDM_REDUCE_AVG);
    }
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            FAIL_IF(w, buf[i] != sum[i] / (float)w->world, "average %zu is not sum / world", i);
        w->hash[1] = fnv(buf, n);
        fill(buf, n, w->rank, 1);
        rc = ldm_comm_reduce_scatter(c, buf, n, LDM_REDUCE_SUM);
    }
    ldm_comm_shard(n, w->world, w->rank, &off, &cnt);
    FAIL_IF(w, !rc && memcmp(buf + off, sum + off, cnt * sizeof(float)) != 0,
            "reduce-scatter shard differs from the allreduce");
    return rc;
}

/* all-gather, broadcast from the last rank, exact sums of whole numbers, barrier */
static int gather_checks(struct worker *w, struct ldm_comm *c, float *buf)
{
    size_t n = w->n, off, cnt;
    ldm_comm_shard(n, w->world, w->rank, &off, &cnt);
    for (size_t i = 0; i < n; i++)
        buf[i] = i >= off && i < off + cnt ? val(2, w->rank, i) : NAN;
    int rc = ldm_comm_all_gather(c, buf, n), root = w->world - 1;
    for (int r = 0; !rc && r < w->world; r++) {
        ldm_comm_shard(n, w->world, r, &off, &cnt);
        for (size_t i = off; i < off + cnt; i++)
            FAIL_IF(w, buf[i] != val(2, r, i), "all-gather element %zu (rank %d's)", i, r);
    }
    fill(buf, n, w->rank == root ? 3 : 4 + w->rank, 3);
    if (!rc && !(rc = ldm_comm_broadcast(c, buf, n, root)))
        for (size_t i = 0; i < n; i++)
            FAIL_IF(w, buf[i] != val(3, 3, i), "broadcast element %zu", i);
    for (size_t i = 0; i < n; i++)
        buf[i] = whole(w->rank, i);
    if (!rc && !(rc = ldm_comm_allreduce(c, buf, n, LDM_REDUCE_SUM))) {
        for (size_t i = 0; i < n; i++) {
            float s = 0;
            for (int r = 0; r < w->world; r++)
                s += whole(r, i);
            FAIL_IF(w, buf[i] != s, "exact sum %zu: %g, direct %g", i, buf[i], s);
        }
        w->hash[2] = fnv(buf, n);
        rc = ldm_comm_barrier(c);
    }
    return rc;
}

static int body_all(struct worker *w, struct ldm_comm *c)
{
    float *buf = malloc((w->n + 1) * sizeof(float)), *sum = malloc((w->n + 1) * sizeof(float));
    int rc = reduce_checks(w, c, buf, sum);
    if (!rc)
        rc = gather_checks(w, c, buf);
    free(buf);
    free(sum);
    return rc;
}

static void expect_ok(struct worker *ws, int world, const char *what)
{
    for (int r = 0; r < world; r++) {
        ck_assert_msg(ws[r].rc == 0, "%s: rank %d of %d: %s", what, r, world, ws[r].err);
        ck_assert_msg(!ws[r].fail[0], "%s: rank %d of %d: %s", what, r, world, ws[r].fail);
        for (int k = 0; k < 8; k++)
            ck_assert_msg(ws[r].hash[k] == ws[0].hash[k],
                          "%s: rank %d's result %d is not bit-identical to rank 0's", what, r, k);
    }
}

START_TEST(collectives_match_direct_sums)
{
    static const size_t sizes[] = {0, 1, 7, 1000003};
    char *dir = tu_tmpdir();
    struct timespec t0, t1;
    for (int world = 1; world <= MAXW; world++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            struct worker ws[MAXW];
            char tag[32], what[64];
            snprintf(tag, sizeof tag, "w%dn%zu", world, k);
            snprintf(what, sizeof what, "world %d n %zu", world, sizes[k]);
            clock_gettime(CLOCK_MONOTONIC, &t0);
            run_world(ws, world, dir, tag, body_all, sizes[k], NULL);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            expect_ok(ws, world, what);
            if (sizes[k] > 1000)
                fprintf(stderr, "ring: %s: 7 collectives in %.0f ms\n", what,
                        (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
        }
    /* small messages: many pieces per chunk, ragged tails */
    struct worker ws[3];
    struct ldm_comm_opts o = {.max_msg_bytes = 4000};
    run_world(ws, 3, dir, "small", body_all, 20011, &o);
    expect_ok(ws, 3, "4000-byte messages");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Background all-reduces of five buckets in order, a blocking one queued behind them. */
static int body_async(struct worker *w, struct ldm_comm *c)
{
    static const size_t sizes[5] = {1000, 1, 0, 50000, 7};
    float *b[5];
    uint64_t tk[5], prev = 0;
    int rc = 0;
    for (int k = 0; k < 5; k++) {
        b[k] = malloc((sizes[k] + 1) * sizeof(float));
        for (size_t i = 0; i < sizes[k]; i++)
            b[k][i] = whole(w->rank + k, i);
        if (!rc)
            rc = ldm_comm_allreduce_start(c, b[k], sizes[k], LDM_REDUCE_SUM, &tk[k]);
        FAIL_IF(w, !rc && tk[k] != prev + 1, "ticket %llu after %llu", (unsigned long long)tk[k],
                (unsigned long long)prev);
        prev = tk[k];
    }
    float one = 1;
    if (!rc)
        rc = ldm_comm_allreduce(c, &one, 1, LDM_REDUCE_SUM); /* waits for all five */
    FAIL_IF(w, !rc && one != (float)w->world, "blocking allreduce after the buckets: %g", one);
    for (int k = 4; !rc && k >= 0; k--)
        rc = ldm_comm_wait(c, tk[k]);
    for (int k = 0; k < 5; k++) {
        for (size_t i = 0; !rc && i < sizes[k]; i++) {
            float s = 0;
            for (int r = 0; r < w->world; r++)
                s += whole(r + k, i);
            FAIL_IF(w, b[k][i] != s, "bucket %d element %zu: %g, expected %g", k, i, b[k][i], s);
        }
        free(b[k]);
    }
    if (!rc) {
        ldm_err_clear();
        int bad = ldm_comm_wait(c, prev + 5);
        FAIL_IF(w, bad != LDM_EINVAL || !strstr(ldm_errmsg(), "never handed out"),
                "wait on a future ticket: %d %s", bad, ldm_errmsg());
    }
    return rc;
}

START_TEST(async_buckets_in_order)
{
    char *dir = tu_tmpdir();
    for (int world = 1; world <= 3; world += 2) {
        struct worker ws[MAXW];
        char tag[32];
        snprintf(tag, sizeof tag, "async%d", world);
        run_world(ws, world, dir, tag, body_async, 0, NULL);
        expect_ok(ws, world, "async");
    }
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* An uneven split of n over world ranks: part k grows with k, and with `lump` every
 * element is rank world − 1's (the others' parts empty). */
static void uneven(size_t *bound, size_t n, int world, int lump)
{
    size_t w2 = (size_t)world * (size_t)world;
    for (int k = 0; k <= world; k++)
        bound[k] = lump ? (k == world ? n : 0) : n * (size_t)k * (size_t)k / w2;
}

/* reduce-scatter and all-gather at uneven splits (the ZeRO shards of a gradient
 * bucket): each part's sum on its rank, equal to the all-reduce's for two ranks, then
 * every part everywhere; a split that does not cover n is refused. */
static int body_split(struct worker *w, struct ldm_comm *c)
{
    size_t n = w->n, bound[MAXW + 1];
    float *buf = malloc((n + 1) * sizeof(float)), *sum = malloc((n + 1) * sizeof(float));
    int rc = 0;
    for (int lump = 0; !rc && lump < 2; lump++) {
        uneven(bound, n, w->world, lump);
        fill(sum, n, w->rank, 1);
        rc = ldm_comm_allreduce(c, sum, n, LDM_REDUCE_AVG);
        uint64_t tk = 0;
        fill(buf, n, w->rank, 1);
        if (!rc)
            rc = ldm_comm_reduce_scatter_at_start(c, buf, n, bound, LDM_REDUCE_AVG, &tk);
        if (!rc)
            rc = ldm_comm_wait(c, tk);
        for (size_t i = bound[w->rank]; !rc && i < bound[w->rank + 1]; i++) {
            double s = 0, mag = 0;
            for (int r = 0; r < w->world; r++)
                s += val(1, r, i) / w->world, mag += fabs(val(1, r, i)) / w->world;
            FAIL_IF(w, fabs(buf[i] - s) > 4 * FLT_EPSILON * mag + 1e-30,
                    "split %d: part element %zu: %.9g, direct average %.9g", lump, i, buf[i], s);
            FAIL_IF(w, w->world <= 2 && buf[i] != sum[i],
                    "split %d: element %zu differs from the all-reduce's", lump, i);
        }
        for (size_t i = 0; i < n; i++)
            buf[i] = i >= bound[w->rank] && i < bound[w->rank + 1] ? val(2, w->rank, i) : NAN;
        if (!rc)
            rc = ldm_comm_all_gather_at(c, buf, n, bound);
        for (int r = 0; !rc && r < w->world; r++)
            for (size_t i = bound[r]; i < bound[r + 1]; i++)
                FAIL_IF(w, buf[i] != val(2, r, i), "split %d: gathered %zu (rank %d's)", lump,
                        i, r);
        w->hash[lump] = fnv(buf, n);
    }
    bound[w->world] = n + 1;
    if (!rc) {
        int bad = ldm_comm_all_gather_at(c, buf, n, bound);
        FAIL_IF(w, bad != LDM_EINVAL || !strstr(ldm_errmsg(), "does not run from 0 to n"),
                "a split past n: %d %s", bad, ldm_errmsg());
    }
    free(buf);
    free(sum);
    return rc;
}

START_TEST(uneven_splits)
{
    static const size_t sizes[] = {0, 5, 100003};
    char *dir = tu_tmpdir();
    for (int world = 1; world <= MAXW; world++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            struct worker ws[MAXW];
            char tag[32], what[64];
            snprintf(tag, sizeof tag, "s%dn%zu", world, k);
            snprintf(what, sizeof what, "split: world %d n %zu", world, sizes[k]);
            run_world(ws, world, dir, tag, body_split, sizes[k], NULL);
            expect_ok(ws, world, what);
        }
    struct worker ws[3];
    struct ldm_comm_opts o = {.max_msg_bytes = 4000};
    run_world(ws, 3, dir, "ssmall", body_split, 20011, &o);
    expect_ok(ws, 3, "split: 4000-byte messages");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Every rank counts itself in before the barrier; none may leave before all came. */
static int body_barrier(struct worker *w, struct ldm_comm *c)
{
    usleep((useconds_t)(w->rank * 30000));
    atomic_fetch_add(w->counter, 1);
    int rc = ldm_comm_barrier(c);
    w->saw_counter = atomic_load(w->counter);
    return rc ? rc : ldm_comm_barrier(c);
}

START_TEST(barrier_waits_for_all)
{
    char *dir = tu_tmpdir();
    atomic_int counter = 0;
    struct worker ws[MAXW];
    struct ldm_rdv_table *t = ldm_rdv_table_new(MAXW);
    void *zctx = zmq_ctx_new();
    for (int r = 0; r < MAXW; r++) {
        snprintf(t->ent[r].endpoint, sizeof t->ent[r].endpoint, "ipc://%s/b-%d.sock", dir, r);
        ws[r] = (struct worker){.zctx = zctx, .rank = r, .world = MAXW, .t = t,
                                .body = body_barrier, .counter = &counter};
    }
    for (int r = 0; r < MAXW; r++)
        pthread_create(&ws[r].th, NULL, worker_main, &ws[r]);
    for (int r = 0; r < MAXW; r++)
        pthread_join(ws[r].th, NULL);
    for (int r = 0; r < MAXW; r++) {
        ck_assert_msg(ws[r].rc == 0, "rank %d: %s", r, ws[r].err);
        ck_assert_int_eq(ws[r].saw_counter, MAXW);
    }
    zmq_ctx_term(zctx);
    ldm_rdv_table_free(&t);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Rank 0 all-reduces; the last rank leaves without a word. */
static int body_dead(struct worker *w, struct ldm_comm *c)
{
    if (w->rank == w->world - 1)
        return 0;
    float buf[1000] = {0};
    int rc = ldm_comm_allreduce(c, buf, 1000, LDM_REDUCE_SUM);
    if (rc && w->rank == 0) { /* broken from now on, with the same error */
        char first[512];
        uint64_t t;
        snprintf(first, sizeof first, "%s", ldm_errmsg());
        int again = ldm_comm_barrier(c);
        FAIL_IF(w, again != rc || strcmp(first, ldm_errmsg()) != 0, "second call: %d %s", again,
                ldm_errmsg());
        again = ldm_comm_allreduce_start(c, buf, 1000, LDM_REDUCE_SUM, &t);
        FAIL_IF(w, again != rc, "start after the failure: %d", again);
        ldm_fail(rc, "%s", first);
    }
    return rc;
}

START_TEST(dead_peer_times_out)
{
    char *dir = tu_tmpdir();
    struct ldm_comm_opts o = {.timeout_ms = 300};
    struct worker ws[3];
    run_world(ws, 2, dir, "dead2", body_dead, 0, &o);
    ck_assert_int_eq(ws[0].rc, LDM_ETIMEOUT);
    ck_assert_msg(strstr(ws[0].err, "ring rank 0: no data from rank 1 (ipc://") &&
                      strstr(ws[0].err, "within 300 ms in reduce-scatter"),
                  "%s", ws[0].err);
    ck_assert_msg(!ws[0].fail[0], "%s", ws[0].fail);
    run_world(ws, 3, dir, "dead3", body_dead, 0, &o);
    ck_assert_int_eq(ws[0].rc, LDM_ETIMEOUT);
    ck_assert_msg(strstr(ws[0].err, "no data from rank 2"), "%s", ws[0].err);
    ck_assert_int_eq(ws[1].rc, LDM_ETIMEOUT);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Rank 1 asks for one more element than rank 0: both see the wrong message. */
static int body_mismatch(struct worker *w, struct ldm_comm *c)
{
    float buf[11] = {0};
    return ldm_comm_allreduce(c, buf, 10 + (size_t)w->rank, LDM_REDUCE_SUM);
}

START_TEST(mismatched_calls_are_caught)
{
    char *dir = tu_tmpdir();
    struct ldm_comm_opts o = {.timeout_ms = 2000};
    struct worker ws[2];
    run_world(ws, 2, dir, "mis", body_mismatch, 0, &o);
    /* each rank gets the other's first message, unless the other gave up (and
     * dropped what it had queued) before it went out: then it times out */
    int first = ws[0].rc == LDM_EFORMAT ? 0 : 1;
    ck_assert_msg(ws[first].rc == LDM_EFORMAT, "%s / %s", ws[0].err, ws[1].err);
    ck_assert_msg(strstr(ws[first].err, first ? "got reduce-scatter #1 step 0 piece 0 of 5 "
                                                "floats (n 10"
                                              : "got reduce-scatter #1 step 0 piece 0 of 6 "
                                                "floats (n 11") &&
                      strstr(ws[first].err, "same collectives with the same sizes"),
                  "%s", ws[first].err);
    ck_assert_msg(ws[1 - first].rc == LDM_EFORMAT || ws[1 - first].rc == LDM_ETIMEOUT, "%s",
                  ws[1 - first].err);
    struct ldm_comm *c = NULL;
    struct ldm_rdv_table *t = ldm_rdv_table_new(2);
    struct ldm_comm_opts nccl = {.kind = LDM_COMM_NCCL};
    ck_fails_with(ldm_comm_open(&c, NULL, 0, 2, t, &nccl), LDM_EINVAL, "not an NCCL unique id");
    ck_fails_with(ldm_comm_open(&c, NULL, 2, 2, t, NULL), LDM_EINVAL, "rank 2 of world 2");
    ldm_rdv_table_free(&t);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* A free loopback TCP endpoint: a port the kernel hands a plain socket, which
 * is closed at once (a ZMQ socket would keep listening a while after close). */
static void free_tcp(char *ep, size_t size)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    snprintf(ep, size, "tcp://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
}

START_TEST(ring_over_curve)
{
    enum { W = 2 };
    char *dir = tu_tmpdir(), path[512];
    struct ldm_keypair client, server[W];
    struct ldm_bind_security sec[W];
    struct ldm_allowlist *al;
    struct ldm_zap *zap;
    struct worker ws[W];
    ck_ok(ldm_keypair_new(&client));
    snprintf(path, sizeof path, "%s/allow", dir);
    tu_write_file(path, client.public_key, LDM_Z85_KEY_LEN);
    ck_ok(ldm_allowlist_load(path, &al));
    void *zctx = zmq_ctx_new();
    ck_ok(ldm_zap_start(zctx, al, &zap));
    struct ldm_rdv_table *t = ldm_rdv_table_new(W);
    for (int r = 0; r < W; r++) {
        ck_ok(ldm_keypair_new(&server[r]));
        sec[r] = (struct ldm_bind_security){&server[r], 0};
        free_tcp(t->ent[r].endpoint, sizeof t->ent[r].endpoint);
        memcpy(t->ent[r].key, server[r].public_key, sizeof t->ent[r].key);
    }
    for (int r = 0; r < W; r++) {
        ws[r] = (struct worker){.zctx = zctx, .rank = r, .world = W, .t = t, .body = body_all,
                                .n = 1000, .o = {.sec = &sec[r], .client = &client,
                                                 .timeout_ms = 5000}};
        pthread_create(&ws[r].th, NULL, worker_main, &ws[r]);
    }
    for (int r = 0; r < W; r++)
        pthread_join(ws[r].th, NULL);
    expect_ok(ws, W, "CURVE");
    ck_assert_uint_eq(ldm_zap_denied(zap), 0);
    ldm_zap_stop(&zap);
    zmq_ctx_term(zctx);
    ldm_rdv_table_free(&t);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- everything together: rendezvous, then the ring ---------------------------------- */

struct setup_rank {
    pthread_t th;
    void *zctx;
    int rank, world;
    char rdv[300], data[300];
    int rc;
    char err[512];
    float got[100];
};

static void *setup_main(void *arg)
{
    struct setup_rank *s = arg;
    struct ldm_rdv_opts ro = {.endpoint = s->rdv, .run_id = "cfg-abc", .timeout_ms = 5000};
    struct ldm_comm_opts co = {.timeout_ms = 5000};
    struct ldm_comm *c = NULL;
    for (int i = 0; i < 100; i++)
        s->got[i] = whole(s->rank, (size_t)i);
    s->rc = ldm_comm_setup(&c, s->zctx, s->rank, s->world, s->data, &ro, &co);
    if (!s->rc)
        s->rc = ldm_comm_allreduce(c, s->got, 100, LDM_REDUCE_SUM);
    snprintf(s->err, sizeof s->err, "%s", ldm_errmsg());
    ldm_comm_close(&c);
    return NULL;
}

START_TEST(setup_rendezvous_then_ring)
{
    char *dir = tu_tmpdir();
    void *zctx = zmq_ctx_new();
    struct setup_rank s[3];
    for (int r = 2; r >= 0; r--) {
        s[r] = (struct setup_rank){.zctx = zctx, .rank = r, .world = 3};
        snprintf(s[r].rdv, sizeof s[r].rdv, "ipc://%s/rdv.sock", dir);
        snprintf(s[r].data, sizeof s[r].data, "ipc://%s/data-%d.sock", dir, r);
        pthread_create(&s[r].th, NULL, setup_main, &s[r]);
    }
    for (int r = 0; r < 3; r++)
        pthread_join(s[r].th, NULL);
    for (int r = 0; r < 3; r++) {
        ck_assert_msg(s[r].rc == 0, "rank %d: %s", r, s[r].err);
        for (size_t i = 0; i < 100; i++)
            ck_assert(s[r].got[i] == whole(0, i) + whole(1, i) + whole(2, i));
    }
    unsigned char id[LDM_NCCL_ID_BYTES];
    int rc = ldm_nccl_unique_id(id); /* a build without CUDA (or NCCL) says so */
    ck_assert_msg(rc == 0 || (rc == LDM_EUNSUPPORTED && strstr(ldm_errmsg(), "NCCL")), "%d %s", rc,
                  ldm_errmsg());
    zmq_ctx_term(zctx);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_ring(void);
Suite *suite_ring(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("ranks");
    tcase_add_test(tc, ranks_config_and_defaults);
    tcase_add_test(tc, ranks_from_environment);
    tcase_add_test(tc, ranks_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("rendezvous");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, rdv_any_order);
    tcase_add_test(tc, rdv_refusals);
    tcase_add_test(tc, rdv_timeouts_name_missing_ranks);
    suite_add_tcase(s, tc);
    tc = tcase_create("collectives");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, collectives_match_direct_sums);
    tcase_add_test(tc, async_buckets_in_order);
    tcase_add_test(tc, uneven_splits);
    tcase_add_test(tc, barrier_waits_for_all);
    tcase_add_test(tc, dead_peer_times_out);
    tcase_add_test(tc, mismatched_calls_are_caught);
    tcase_add_test(tc, ring_over_curve);
    tcase_add_test(tc, setup_rendezvous_then_ring);
    suite_add_tcase(s, tc);
    return s;
}

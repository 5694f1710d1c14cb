/* intake.c — the sample thread: PULL, validate, tombstones, batches by shape, encode, one store commit per batch. */
#include "intake.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "err.h"
#include "log.h"

#define MAX_GROUPS 16
#define MAX_TOMBS 256

struct pend {
    Ldmpipe__Sample *s;
    zmq_msg_t pix, cond;
    char *shard, *key;
};

struct group {
    struct pend *v;
    size_t n;
    int64_t since; /* ms of the oldest sample */
};

struct tomb {
    char *shard, *key;
    uint64_t index;
};

struct encoderd_intake {
    struct encoderd_intake_opts o;
    pthread_t th;
    atomic_int stop, paused;
    _Atomic uint64_t pending;
    int efd;
    pthread_mutex_t lock;
    struct ldm_shardlist dirty; /* under lock */
    struct group g[MAX_GROUPS];
    struct tomb t[MAX_TOMBS];
    size_t nt;
    int64_t tsince;
    unsigned logged; /* reasons already logged, one bit each */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void bump(_Atomic uint64_t *c, uint64_t n)
{
    if (c && n)
        atomic_fetch_add(c, n);
}

static char *dup_bytes(const ProtobufCBinaryData *b)
{
    char *p = malloc(b->len + 1);
    if (p) {
        if (b->len)
            memcpy(p, b->data, b->len);
        p[b->len] = '\0';
    }
    return p;
}

static void pend_free(struct pend *p)
{
    ldm_sample_free(p->s);
    zmq_msg_close(&p->pix);
    zmq_msg_close(&p->cond);
    free(p->shard);
    free(p->key);
}

static void tombs_free(struct encoderd_intake *in)
{
    for (size_t i = 0; i < in->nt; i++) {
        free(in->t[i].shard);
        free(in->t[i].key);
    }
    in->nt = 0;
}

/* Queue the touched shards for the owner and wake it. */
static void mark_dirty(struct encoderd_intake *in, const struct ldm_store_item *it, size_t n)
{
    pthread_mutex_lock(&in->lock);
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < in->dirty.n && !seen; j++)
            seen = !strcmp(in->dirty.v[j], it[i].shard);
        if (!seen && ldm_shardlist_push(&in->dirty, it[i].shard))
            LOG_ERROR("out of memory queueing a committed shard", "shard=%s", it[i].shard);
    }
    pthread_mutex_unlock(&in->lock);
    uint64_t one = 1;
    if (write(in->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        LOG_ERROR("wake write failed", "errno=%d", errno);
}

/* One transaction: the tombstones in hand and the n records of group g
 * (g NULL: tombstones alone). */
static void commit(struct encoderd_intake *in, struct group *g, void **recs, const size_t *lens)
{
    size_t n = g ? g->n : 0, k = 0;
    struct ldm_store_item *it = calloc(in->nt + n + 1, sizeof *it);
    if (!it) {
        LOG_ERROR("out of memory committing a batch", "samples=%zu", in->nt + n);
        bump(in->o.c.errors, 1);
        return;
    }
    for (size_t i = 0; i < in->nt; i++)
        it[k++] = (struct ldm_store_item){in->t[i].shard, in->t[i].key, in->t[i].index, NULL, 0};
    for (size_t i = 0; i < n; i++)
        it[k++] = (struct ldm_store_item){g->v[i].shard, g->v[i].key, g->v[i].s->index, recs[i],
                                          lens[i]};
    size_t stored = 0, dups = 0;
    int rc = ldm_store_put_batch(in->o.store, it, k, &stored, &dups);
    if (rc) {
        LOG_ERROR("batch not stored", "samples=%zu error=\"%s\"", k, ldm_errmsg());
        bump(in->o.c.errors, 1);
    } else {
        bump(in->o.c.committed, stored);
        bump(in->o.c.duplicates, dups);
        bump(in->o.c.tombstones, in->nt);
        bump(in->o.c.batches, 1);
        mark_dirty(in, it, k);
    }
    free(it);
    tombs_free(in);
}

/* Encode group g and commit it with the tombstones in hand; empty g. */
static void flush_group(struct encoderd_intake *in, struct group *g)
{
    if (!g->n)
        return;
    struct encoderd_item *items = calloc(g->n, sizeof *items);
    void **recs = calloc(g->n, sizeof *recs);
    size_t *lens = calloc(g->n, sizeof *lens);
    int rc = items && recs && lens ? 0 : ldm_fail(LDM_ENOMEM, "batch of %zu", g->n);
    for (size_t i = 0; !rc && i < g->n; i++)
        items[i] = (struct encoderd_item){g->v[i].s, zmq_msg_data(&g->v[i].pix),
                                          g->v[i].s->cond ? zmq_msg_data(&g->v[i].cond) : NULL};
    if (!rc)
        rc = encoderd_encode(in->o.models, items, g->n, recs, lens);
    if (rc) {
        LOG_ERROR("batch not encoded", "samples=%zu error=\"%s\"", g->n, ldm_errmsg());
        bump(in->o.c.errors, 1);
    } else
        commit(in, g, recs, lens);
    for (size_t i = 0; i < g->n; i++) {
        if (recs)
            free(recs[i]);
        pend_free(&g->v[i]);
    }
    atomic_fetch_sub(&in->pending, g->n);
    free(items);
    free(recs);
    free(lens);
    g->n = 0;
}

/* Flush what is due: full groups, groups and tombstones older than
 * max_wait (everything when all). Returns the ms until the next is due. */
static int64_t flush_due(struct encoderd_intake *in, int all)
{
    int64_t t = now_ms(), next = 100;
    for (int i = 0; i < MAX_GROUPS; i++) {
        struct group *g = &in->g[i];
        if (!g->n)
            continue;
        if (all || g->n >= (size_t)in->o.batch_size || t - g->since >= in->o.max_wait_ms)
            flush_group(in, g);
        else if (g->since + in->o.max_wait_ms - t < next)
            next = g->since + in->o.max_wait_ms - t;
    }
    if (in->nt && (all || in->nt >= MAX_TOMBS || t - in->tsince >= in->o.max_wait_ms))
        commit(in, NULL, NULL, NULL);
    else if (in->nt && in->tsince + in->o.max_wait_ms - t < next)
        next = in->tsince + in->o.max_wait_ms - t;
    return next < 1 ? 1 : next;
}

/* Record shard/key/index as processed without a record. */
static void add_tomb(struct encoderd_intake *in, const Ldmpipe__Sample *s)
{
    char *shard = dup_bytes(&s->shard), *key = dup_bytes(&s->key), buf[LDM_STORE_MAX_KEY + 1];
    if (!shard || !key || ldm_store_sample_key(shard, key, buf, sizeof buf, NULL) ||
        strlen(shard) > LDM_STORE_MAX_KEY) {
        LOG_WARN("sample not recorded", "error=\"%s\"", shard && key ? ldm_errmsg() : "no memory");
        bump(in->o.c.errors, 1);
        free(shard);
        free(key);
        return;
    }
    if (in->nt == MAX_TOMBS)
        commit(in, NULL, NULL, NULL);
    if (!in->nt)
        in->tsince = now_ms();
    in->t[in->nt++] = (struct tomb){shard, key, s->index};
}

/* A message that failed validation: count it, log its kind once, and
 * record it processed when its shard, key and index are readable. */
static void reject(struct encoderd_intake *in, int reason, const void *f0, size_t f0_len)
{
    bump(in->o.c.rejected[reason], 1);
    if (reason < 32 && !(in->logged & (1u << reason))) {
        in->logged |= 1u << reason;
        LOG_WARN("sample rejected (logged once per reason)", "reason=%s error=\"%s\"",
                 reason == LDM_SR_COUNT ? "model" : ldm_sample_reason_name(reason), ldm_errmsg());
    }
    if (reason <= LDM_SR_SHARD)
        return;
    Ldmpipe__Sample *s =
        ldmpipe__sample__unpack(NULL, f0_len, (const uint8_t *)f0);
    if (s)
        add_tomb(in, s);
    ldmpipe__sample__free_unpacked(s, NULL);
}

static struct group *group_for(struct encoderd_intake *in, const Ldmpipe__Sample *s)
{
    struct group *empty = NULL, *oldest = NULL;
    for (int i = 0; i < MAX_GROUPS; i++) {
        struct group *g = &in->g[i];
        if (g->n && encoderd_same_shape(g->v[0].s, s))
            return g;
        if (!g->n && !empty)
            empty = g;
        if (g->n && (!oldest || g->since < oldest->since))
            oldest = g;
    }
    if (empty)
        return empty;
    flush_group(in, oldest);
    return oldest;
}

/* A valid sample with its frames (moved from f). */
static void accept(struct encoderd_intake *in, Ldmpipe__Sample *s, zmq_msg_t *f)
{
    if (encoderd_check_sample(in->o.models, s)) {
        ldm_sample_free(s);
        reject(in, LDM_SR_COUNT, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]));
        return;
    }
    struct group *g = group_for(in, s);
    if (!g->v && !(g->v = calloc((size_t)in->o.batch_size, sizeof *g->v))) {
        LOG_ERROR("out of memory for a batch", "batch_size=%d", in->o.batch_size);
        bump(in->o.c.errors, 1);
        ldm_sample_free(s);
        return;
    }
    struct pend *p = &g->v[g->n];
    p->s = s;
    zmq_msg_init(&p->pix);
    zmq_msg_init(&p->cond);
    zmq_msg_move(&p->pix, &f[1]);
    if (s->cond)
        zmq_msg_move(&p->cond, &f[2]);
    p->shard = dup_bytes(&s->shard);
    p->key = dup_bytes(&s->key);
    char buf[LDM_STORE_MAX_KEY + 1];
    if (!p->shard || !p->key || ldm_store_sample_key(p->shard, p->key, buf, sizeof buf, NULL)) {
        add_tomb(in, s); /* a key the store cannot hold: processed, not stored */
        pend_free(p);
        return;
    }
    if (!g->n)
        g->since = now_ms();
    g->n++;
    atomic_fetch_add(&in->pending, 1);
    if (g->n >= (size_t)in->o.batch_size)
        flush_group(in, g);
}

/* Receive one multipart message (frames beyond the third are counted
 * and dropped) and route it. */
static void receive(struct encoderd_intake *in)
{
    zmq_msg_t f[3], extra;
    size_t len[3] = {0};
    int n = 0, more = 1;
    for (int i = 0; i < 3; i++)
        zmq_msg_init(&f[i]);
    while (more) {
        zmq_msg_t *m = n < 3 ? &f[n] : &extra;
        if (n >= 3)
            zmq_msg_init(&extra);
        if (zmq_msg_recv(m, in->o.pull, 0) < 0)
            break;
        more = zmq_msg_more(m);
        if (n < 3)
            len[n] = zmq_msg_size(m);
        else
            zmq_msg_close(&extra);
        n++;
    }
    if (n > 0) {
        bump(in->o.c.received, 1);
        Ldmpipe__Sample *s = NULL;
        enum ldm_sample_reason why = LDM_SR_OK;
        if (ldm_sample_decode(zmq_msg_data(&f[0]), len, n, &in->o.lim, &s, &why))
            reject(in, why == LDM_SR_OK ? LDM_SR_MESSAGE : (int)why, zmq_msg_data(&f[0]), len[0]);
        else if (s->rejected.len) {
            add_tomb(in, s);
            ldm_sample_free(s);
        } else
            accept(in, s, f);
    }
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&f[i]);
}

static void *intake_main(void *arg)
{
    struct encoderd_intake *in = arg;
    int64_t wait = 100;
    while (!atomic_load(&in->stop)) {
        if (atomic_load(&in->paused)) {
            flush_due(in, 1);
            usleep(50000);
            continue;
        }
        zmq_pollitem_t it = {in->o.pull, 0, ZMQ_POLLIN, 0};
        int r = zmq_poll(&it, 1, (long)(wait < 100 ? wait : 100));
        if (r < 0 && zmq_errno() != EINTR) {
            LOG_ERROR("sample poll failed", "error=\"%s\"", zmq_strerror(zmq_errno()));
            usleep(100000);
        }
        for (int k = 0; r > 0 && k < 64 && !atomic_load(&in->stop); k++) {
            receive(in);
            int ev = 0;
            size_t sz = sizeof ev;
            if (zmq_getsockopt(in->o.pull, ZMQ_EVENTS, &ev, &sz) || !(ev & ZMQ_POLLIN))
                break;
        }
        wait = flush_due(in, 0);
    }
    flush_due(in, 1);
    return NULL;
}

int encoderd_intake_start(struct encoderd_intake **out, const struct encoderd_intake_opts *o)
{
    *out = NULL;
    struct encoderd_intake *in = calloc(1, sizeof *in);
    if (!in)
        return ldm_fail(LDM_ENOMEM, "sample intake");
    in->o = *o;
    if (in->o.batch_size < 1)
        in->o.batch_size = 1;
    in->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (in->efd < 0) {
        free(in);
        return ldm_fail(LDM_EIO, "eventfd: %s", strerror(errno));
    }
    pthread_mutex_init(&in->lock, NULL);
    if (pthread_create(&in->th, NULL, intake_main, in)) {
        close(in->efd);
        pthread_mutex_destroy(&in->lock);
        free(in);
        return ldm_fail(LDM_EIO, "sample thread could not start");
    }
    *out = in;
    return 0;
}

int encoderd_intake_fd(const struct encoderd_intake *in)
{
    return in->efd;
}

int encoderd_intake_take_dirty(struct encoderd_intake *in, struct ldm_shardlist *out)
{
    uint64_t v;
    if (read(in->efd, &v, sizeof v) < 0 && errno != EAGAIN)
        LOG_WARN("wake read failed", "errno=%d", errno);
    pthread_mutex_lock(&in->lock);
    *out = in->dirty;
    in->dirty = (struct ldm_shardlist){0};
    pthread_mutex_unlock(&in->lock);
    return 0;
}

void encoderd_intake_pause(struct encoderd_intake *in, int paused)
{
    atomic_store(&in->paused, paused);
}

uint64_t encoderd_intake_pending(const struct encoderd_intake *in)
{
    return atomic_load(&in->pending);
}

void encoderd_intake_stop(struct encoderd_intake **in)
{
    if (!in || !*in)
        return;
    struct encoderd_intake *x = *in;
    atomic_store(&x->stop, 1);
    pthread_join(x->th, NULL);
    for (int i = 0; i < MAX_GROUPS; i++)
        free(x->g[i].v);
    ldm_shardlist_free(&x->dirty);
    close(x->efd);
    pthread_mutex_destroy(&x->lock);
    free(x);
    *in = NULL;
}

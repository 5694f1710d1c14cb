/* feed.c — the thread that fills micro-batches ahead of the trainer. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "trainerd/feed.h"

/* One epoch: its index and plan, shared by the batches drawn from it. */
struct epoch {
    int64_t n;
    struct td_index ix;
    struct td_plan plan;
    int refs;
};

struct slot {
    struct td_batch b;
    struct epoch *ep;
    int full;
};

struct td_feed {
    struct td_feed_opts o;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct slot *slots;
    int nslots, head, tail, count; /* filled slots: head .. (FIFO of count) */
    int stop, err;
    char errmsg[512];
    struct td_cursor next;         /* the consumer's cursor */
    struct epoch *last_ep;         /* the epoch of the last finished step */
    int64_t step;                  /* the producer's next step */
    struct td_cursor prod;         /* the producer's next batch */
    struct td_feed_status st;
};

static void ep_unref(struct td_feed *f, struct epoch *e)
{
    (void)f;
    if (e && --e->refs == 0) {
        td_index_free(&e->ix);
        td_plan_free(&e->plan);
        free(e);
    }
}

/* Sleep up to ms unless stopped; returns 1 when stopped. Called with mu held. */
static int nap(struct td_feed *f, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    if (!f->stop)
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    return f->stop;
}

static size_t global_batch(const struct td_feed *f)
{
    return (size_t)(f->o.B * f->o.local_world * f->o.accum);
}

/* Build epoch n: from the saved keys (resume) or a scan, waiting for enough samples. */
static int load_epoch(struct td_feed *f, int64_t n, int from_keys, struct epoch **out)
{
    struct epoch *e = calloc(1, sizeof *e);
    if (!e)
        return ldm_fail(LDM_ENOMEM, "epoch %lld", (long long)n);
    e->n = n;
    e->refs = 1;
    for (;;) {
        int rc = from_keys ? td_index_from_keys(f->o.store, f->o.keys, f->o.keys_len, &e->ix)
                           : td_index_scan(f->o.store, &e->ix);
        if (!rc)
            rc = td_plan_epoch(&e->ix, f->o.bo.seed, n, global_batch(f), &e->plan);
        if (rc) {
            free(e);
            return rc;
        }
        pthread_mutex_lock(&f->mu);
        f->st.bad_samples = e->ix.bad;
        int enough = e->plan.nbatches > 0 && (from_keys || (int64_t)e->ix.n >= f->o.min_samples);
        f->st.waiting = !enough;
        int stopped = enough ? f->stop : nap(f, 1000);
        pthread_mutex_unlock(&f->mu);
        if (enough || stopped) {
            if (stopped && !enough) {
                ep_unref(f, e);
                return LDM_ETIMEOUT;
            }
            break;
        }
        td_index_free(&e->ix);
        td_plan_free(&e->plan);
        from_keys = 0;
    }
    LOG_INFO("epoch planned", "epoch=%lld samples=%zu batches=%zu classes=%zu left_out=%llu",
             (long long)n, e->ix.n, e->plan.nbatches, e->ix.ncls,
             (unsigned long long)e->ix.bad);
    *out = e;
    return 0;
}

/* Every record of this rank's part of batch b parses (so a step is never cut short). */
static int check_batch(struct td_feed *f, const struct epoch *e, int64_t b)
{
    size_t G = global_batch(f);
    struct ldm_store_txn *t = NULL;
    int rc = ldm_store_read_begin(f->o.store, &t);
    for (int64_t a = 0; !rc && a < f->o.accum; a++) {
        const size_t *items = e->plan.items + (size_t)b * G +
                              (size_t)((a * f->o.local_world + f->o.local_rank) * f->o.B);
        for (int64_t i = 0; !rc && i < f->o.B; i++) {
            struct ldm_record r;
            rc = ldm_store_get(t, e->ix.keys[items[i]], &r);
            if (rc == LDM_ENOTFOUND)
                rc = ldm_fail(LDM_ENOTFOUND, "sample %s: no longer in the cache",
                              e->ix.keys[items[i]]);
        }
    }
    ldm_store_read_end(&t);
    return rc;
}

/* Fill the accum micro-batches of batch b into queue slots. */
static int fill_step(struct td_feed *f, struct epoch *e, int64_t b)
{
    size_t G = global_batch(f);
    for (int64_t a = 0; a < f->o.accum; a++) {
        pthread_mutex_lock(&f->mu);
        while (f->count == f->nslots && !f->stop)
            pthread_cond_wait(&f->cv, &f->mu);
        int stopped = f->stop;
        struct slot *s = &f->slots[(f->head + f->count) % f->nslots];
        pthread_mutex_unlock(&f->mu);
        if (stopped)
            return LDM_ETIMEOUT;
        const size_t *items = e->plan.items + (size_t)b * G +
                              (size_t)((a * f->o.local_world + f->o.local_rank) * f->o.B);
        int rc = td_batch_fill(&s->b, f->o.store, &e->ix, items, f->o.B, f->step,
                               (a * f->o.world + f->o.rank) * f->o.B, &f->o.bo);
        if (rc)
            return rc;
        s->b.epoch = e->n, s->b.batch = b, s->b.micro = a;
        pthread_mutex_lock(&f->mu);
        s->ep = e;
        e->refs++;
        f->count++;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
    return 0;
}

static void finish(struct td_feed *f, struct epoch *e, int rc)
{
    pthread_mutex_lock(&f->mu);
    if (rc && !f->stop) {
        f->err = rc;
        snprintf(f->errmsg, sizeof f->errmsg, "%s", ldm_errmsg());
        LOG_ERROR("batch feed stopped", "error=\"%s\"", f->errmsg);
    }
    ep_unref(f, e);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void *run(void *arg)
{
    struct td_feed *f = arg;
    struct epoch *e = NULL;
    int64_t n = f->prod.epoch, b = f->prod.batch;
    int rc = load_epoch(f, n, f->o.keys != NULL, &e);
    while (!rc) {
        if (b >= (int64_t)e->plan.nbatches) {
            pthread_mutex_lock(&f->mu);
            ep_unref(f, e);
            pthread_mutex_unlock(&f->mu);
            e = NULL;
            rc = load_epoch(f, ++n, 0, &e);
            b = 0;
            continue;
        }
        pthread_mutex_lock(&f->mu);
        f->st.epoch = n, f->st.samples = e->ix.n, f->st.batches = e->plan.nbatches;
        pthread_mutex_unlock(&f->mu);
        rc = check_batch(f, e, b);
        if (rc == LDM_EFORMAT || rc == LDM_ENOTFOUND || rc == LDM_EUNSUPPORTED) {
            LOG_WARN("batch skipped", "epoch=%lld batch=%lld error=\"%s\"", (long long)n,
                     (long long)b, ldm_errmsg());
            pthread_mutex_lock(&f->mu);
            f->st.skipped++;
            pthread_mutex_unlock(&f->mu);
            b++;
            rc = 0;
            continue;
        }
        if (!rc)
            rc = fill_step(f, e, b);
        if (!rc)
            b++, f->step++;
    }
    finish(f, e, rc == LDM_ETIMEOUT ? 0 : rc);
    return NULL;
}

int td_feed_start(struct td_feed **out, const struct td_feed_opts *o, struct td_cursor start,
                  int64_t step)
{
    *out = NULL;
    if (o->B < 1 || o->accum < 1 || o->local_world < 1 || o->local_rank >= o->local_world)
        return ldm_fail(LDM_EINVAL, "batch feed: batch %lld accum %lld local rank %lld of %lld",
                        (long long)o->B, (long long)o->accum, (long long)o->local_rank,
                        (long long)o->local_world);
    struct td_feed *f = calloc(1, sizeof *f);
    int depth = o->depth < 1 ? 1 : o->depth;
    if (f)
        f->slots = calloc((size_t)depth, sizeof *f->slots);
    if (!f || !f->slots) {
        free(f);
        return ldm_fail(LDM_ENOMEM, "batch feed");
    }
    f->o = *o, f->nslots = depth, f->next = f->prod = start, f->step = step;
    if (o->keys) {
        char *k = malloc(o->keys_len + 1);
        if (!k) {
            free(f->slots);
            free(f);
            return ldm_fail(LDM_ENOMEM, "batch feed: key list");
        }
        memcpy(k, o->keys, o->keys_len);
        f->o.keys = k;
    }
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    int e = pthread_create(&f->thread, NULL, run, f);
    if (e) {
        free((char *)f->o.keys);
        free(f->slots);
        free(f);
        errno = e;
        return ldm_fail_errno(LDM_EIO, "batch feed: pthread_create");
    }
    *out = f;
    return 0;
}

int td_feed_next(struct td_feed *f, struct td_batch **b, int timeout_ms)
{
    pthread_mutex_lock(&f->mu);
    if (!f->count && !f->err)
        nap(f, timeout_ms);
    int rc = 0;
    if (f->count)
        *b = &f->slots[f->head].b;
    else if (f->err)
        rc = ldm_fail(f->err, "%s", f->errmsg);
    else
        rc = LDM_ETIMEOUT;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void td_feed_release(struct td_feed *f, struct td_batch *b, int step_end)
{
    pthread_mutex_lock(&f->mu);
    struct slot *s = &f->slots[f->head];
    if (b == &s->b) {
        if (step_end) {
            f->next = (struct td_cursor){b->epoch, b->batch + 1};
            s->ep->refs++;
            ep_unref(f, f->last_ep);
            f->last_ep = s->ep;
        }
        ep_unref(f, s->ep);
        s->ep = NULL;
        f->head = (f->head + 1) % f->nslots;
        f->count--;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
}

int td_feed_cursor(struct td_feed *f, struct td_cursor *c, char **keys, size_t *len)
{
    int rc = 0;
    *keys = NULL;
    *len = 0;
    pthread_mutex_lock(&f->mu);
    *c = f->next;
    if (f->last_ep)
        rc = td_index_keys_blob(&f->last_ep->ix, keys, len);
    else if (f->o.keys) {
        *keys = malloc(f->o.keys_len + 1);
        if (*keys) {
            memcpy(*keys, f->o.keys, f->o.keys_len);
            *len = f->o.keys_len;
        } else
            rc = ldm_fail(LDM_ENOMEM, "key list");
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void td_feed_status(struct td_feed *f, struct td_feed_status *s)
{
    pthread_mutex_lock(&f->mu);
    *s = f->st;
    pthread_mutex_unlock(&f->mu);
}

void td_feed_stop(struct td_feed **pf)
{
    struct td_feed *f = *pf;
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    for (int i = 0; i < f->nslots; i++) {
        ep_unref(f, f->slots[i].ep);
        td_batch_free(&f->slots[i].b);
    }
    ep_unref(f, f->last_ep);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free((char *)f->o.keys);
    free(f->slots);
    free(f);
    *pf = NULL;
}

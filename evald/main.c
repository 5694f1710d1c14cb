/* main.c — evald: samples images from trainerd's checkpoints and scores them (FID
 * against reference statistics, Inception Score), one checkpoint at a time on a
 * worker thread, so the daemon's loop keeps answering control requests and events.
 *
 * Checkpoints come from trainerd's `checkpoint` events (SUB), from scans of the
 * checkpoint folder (on start and every scan_interval) and from `ldmctl eval
 * STEP|latest`; results go to OUT/eval/step-N.json (written atomically: a
 * checkpoint is done once it exists), PNGs and a grid, and out on our `eval` topic.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#include "daemon.h"
#include "err.h"
#include "evald/ecfg.h"
#include "evald/eval.h"
#include "evald/queue.h"
#include "fsutil.h"
#include "log.h"
#include "zsock.h"

struct evald_state {
    struct ldm_daemon *d;
    const struct evald_cfg *cfg;
    struct ev_models *models;
    pthread_t worker;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ev_queue q;
    volatile int stop;
    int64_t busy;          /* the step being evaluated, -1: none */
    json_t *last;          /* the last result */
    void *sub, *pub;
    int64_t next_scan_ms;
    _Atomic uint64_t *seen, *done, *failed, *images;
};

#define K(f) offsetof(struct evald_cfg, f)

static const struct ldm_cfg_key keys[] = {
    {"device", LDM_CFG_STRING, K(device), "cpu", 0, 0, 0, "compute device: cpu, cuda or cuda:N"},
    {"threads", LDM_CFG_INT, K(threads), "0", 0, 0, 1024, "compute threads (0: every core)"},
    {"model", LDM_CFG_STRING, K(model), NULL, 1, 0, 0,
     "base diffusers folder: vae/, text_encoder/, tokenizer/, scheduler/"},
    {"checkpoints", LDM_CFG_STRING, K(checkpoints), NULL, 1, 0, 0,
     "trainerd's output folder (checkpoint-STEP/)"},
    {"output", LDM_CFG_STRING, K(output), NULL, 1, 0, 0, "results folder (eval/step-N.json, PNGs)"},
    {"events_in", LDM_CFG_ENDPOINT, K(events_in), NULL, 0, 0, 0,
     "trainerd's events (default ipc://RUN_DIR/trainerd.events)"},
    {"events", LDM_CFG_ENDPOINT, K(events), NULL, 0, 0, 0,
     "our events PUB endpoint (default ipc://RUN_DIR/evald.events)"},
    {"prompts", LDM_CFG_STRING, K(prompts), "", 0, 0, 0, "prompt file, one a line (default: 8 built in)"},
    {"prompts_cache", LDM_CFG_STRING, K(prompts_cache), "", 0, 0, 0,
     "a latent cache (e.g. of held-out test shards): prompts are its samples' stored text states"},
    {"num_prompts", LDM_CFG_INT, K(num_prompts), "64", 0, 1, 1e9,
     "samples of prompts_cache used as prompts (in key order)"},
    {"num_images", LDM_CFG_INT, K(num_images), "16", 0, 1, 1e9, "images per evaluation"},
    {"batch_size", LDM_CFG_INT, K(batch_size), "4", 0, 1, 4096, "images sampled at once"},
    {"steps", LDM_CFG_INT, K(steps), "25", 0, 1, 1000, "sampler steps"},
    {"guidance_scale", LDM_CFG_FLOAT, K(guidance_scale), "7.5", 0, 0, 100,
     "classifier-free guidance (1: none)"},
    {"sampler", LDM_CFG_STRING, K(sampler), "", 0, 0, 0,
     "ddim, euler or pndm (empty: the scheduler config's)"},
    {"precision", LDM_CFG_STRING, K(precision), "fp32", 0, 0, 0,
     "the UNet's compute dtype while sampling: fp32, bf16 or fp16 (F32 weights)"},
    {"eta", LDM_CFG_FLOAT, K(eta), "0", 0, 0, 1, "DDIM eta"},
    {"seed", LDM_CFG_INT, K(seed), "0", 0, 0, 0, "seed of the initial noise (per image)"},
    {"resolution", LDM_CFG_INT, K(resolution), "0", 0, 0, 16384,
     "image side in pixels (0: the UNet's sample_size times the VAE factor)"},
    {"fid_stats", LDM_CFG_STRING, K(fid_stats), "", 0, 0, 0,
     "reference statistics .npz (mu, sigma; pytorch-fid's format); empty: no FID"},
    {"inception", LDM_CFG_STRING, K(inception), "", 0, 0, 0,
     "FID Inception weights (pt_inception-2015-12-05-6726825d.pth or .safetensors); empty: no scores"},
    {"is_splits", LDM_CFG_INT, K(is_splits), "10", 0, 1, 1000, "Inception Score splits"},
    {"eval_every", LDM_CFG_INT, K(eval_every), "1", 0, 1, 1e12,
     "evaluate checkpoints whose step is a multiple of this"},
    {"latest_only", LDM_CFG_BOOL, K(latest_only), "false", 0, 0, 0,
     "evaluate only the newest waiting checkpoint"},
    {"use_ema", LDM_CFG_BOOL, K(use_ema), "true", 0, 0, 0, "evaluate unet_ema/ when present"},
    {"save_images", LDM_CFG_INT, K(save_images), "16", 0, 0, 1e9, "PNGs kept per evaluation"},
    {"scan_interval", LDM_CFG_DURATION, K(scan_interval), "30s", 0, 100, 86400000,
     "time between scans of the checkpoint folder"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL},
};

/* Write OUT/eval/step-N.json (the done marker) and publish it. */
static void finish(struct evald_state *st, int64_t step, json_t *res)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/eval", st->cfg->output);
    mkdir(st->cfg->output, 0777);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/eval/step-%lld.json", st->cfg->output, (long long)step);
    char *text = json_dumps(res, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    const char *body = text ? text : "{}";
    if (ldm_write_atomic_buf(p, body, strlen(body)))
        LOG_ERROR("result not written", "path=%s error=\"%s\"", p, ldm_errmsg());
    if (st->pub && text) {
        zmq_send(st->pub, "eval", 4, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(st->pub, text, strlen(text), ZMQ_DONTWAIT);
    }
    free(text);
}

static void evaluate_one(struct evald_state *st, int64_t step)
{
    char dir[4300];
    json_t *res = NULL;
    snprintf(dir, sizeof dir, "%s/checkpoint-%lld", st->cfg->checkpoints, (long long)step);
    LOG_INFO("evaluating", "step=%lld checkpoint=%s", (long long)step, dir);
    int rc = ev_evaluate(st->models, dir, step, &st->stop, &res);
    if (rc && st->stop)
        return; /* stopped mid-way: not done, evaluated again after a restart */
    if (rc)
        res = json_pack("{s:I,s:s,s:s}", "step", (json_int_t)step, "checkpoint", dir, "error",
                        ldm_errmsg());
    if (!res)
        return;
    const char *err = json_string_value(json_object_get(res, "error"));
    if (err) {
        atomic_fetch_add(st->failed, 1);
        LOG_WARN("checkpoint not evaluated", "step=%lld error=\"%s\"", (long long)step, err);
    } else {
        atomic_fetch_add(st->done, 1);
        atomic_fetch_add(st->images, (uint64_t)st->cfg->num_images);
        LOG_INFO("evaluated", "step=%lld fid=%g is_mean=%g seconds=%.1f", (long long)step,
                 json_real_value(json_object_get(res, "fid")),
                 json_real_value(json_object_get(res, "is_mean")),
                 json_real_value(json_object_get(res, "seconds")));
    }
    finish(st, step, res);
    pthread_mutex_lock(&st->mu);
    json_decref(st->last);
    st->last = res;
    pthread_mutex_unlock(&st->mu);
}

static void *worker(void *arg)
{
    struct evald_state *st = arg;
    pthread_mutex_lock(&st->mu);
    while (!st->stop) {
        int64_t step;
        if (!ev_queue_pop(&st->q, &step)) {
            pthread_cond_wait(&st->cv, &st->mu);
            continue;
        }
        st->busy = step;
        pthread_mutex_unlock(&st->mu);
        evaluate_one(st, step);
        pthread_mutex_lock(&st->mu);
        st->busy = -1;
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Queue a step under the lock; wake the worker. */
static int enqueue(struct evald_state *st, int64_t step, int forced)
{
    pthread_mutex_lock(&st->mu);
    int r = step == st->busy ? 0 : ev_queue_add(&st->q, step, forced);
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    if (r > 0)
        atomic_fetch_add(st->seen, 1);
    return r;
}

static void scan(struct evald_state *st)
{
    pthread_mutex_lock(&st->mu);
    int n = ev_queue_scan(&st->q, st->cfg->checkpoints, st->busy);
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    if (n > 0) {
        atomic_fetch_add(st->seen, (uint64_t)n);
        LOG_INFO("checkpoints found", "count=%d folder=%s", n, st->cfg->checkpoints);
    }
}

/* A trainerd event: [topic, json]; `checkpoint` queues its step. */
static void on_event(struct ldm_daemon *d, void *arg)
{
    struct evald_state *st = arg;
    (void)d;
    for (;;) {
        char topic[32], body[8192];
        int n = zmq_recv(st->sub, topic, sizeof topic - 1, ZMQ_DONTWAIT);
        if (n < 0)
            return;
        int more = 0;
        size_t ml = sizeof more;
        zmq_getsockopt(st->sub, ZMQ_RCVMORE, &more, &ml);
        int b = more ? zmq_recv(st->sub, body, sizeof body - 1, ZMQ_DONTWAIT) : -1;
        if (n > (int)sizeof topic - 1 || b < 0 || b > (int)sizeof body - 1)
            continue;
        topic[n] = body[b] = 0;
        if (strcmp(topic, "checkpoint"))
            continue;
        json_t *v = json_loads(body, 0, NULL);
        json_t *s = v ? json_object_get(v, "step") : NULL;
        if (json_is_integer(s) && enqueue(st, json_integer_value(s), 0) > 0)
            LOG_INFO("checkpoint event", "step=%lld", (long long)json_integer_value(s));
        json_decref(v);
    }
}

static int open_sockets(struct evald_state *st, struct ldm_daemon *d)
{
    const struct evald_cfg *c = st->cfg;
    char ep[1100];
    void *z = ldm_daemon_zctx(d);
    st->sub = zmq_socket(z, ZMQ_SUB);
    st->pub = zmq_socket(z, ZMQ_PUB);
    if (!st->sub || !st->pub)
        return ldm_fail(LDM_EZMQ, "zmq_socket: %s", zmq_strerror(zmq_errno()));
    zmq_setsockopt(st->sub, ZMQ_SUBSCRIBE, "checkpoint", 10);
    if (c->events_in)
        snprintf(ep, sizeof ep, "%s", c->events_in);
    else
        snprintf(ep, sizeof ep, "ipc://%s/trainerd.events", ldm_daemon_run_dir(d));
    if (zmq_connect(st->sub, ep))
        return ldm_fail(LDM_ECONFIG, "events_in: %s: %s", ep, zmq_strerror(zmq_errno()));
    if (c->events)
        snprintf(ep, sizeof ep, "%s", c->events);
    else
        snprintf(ep, sizeof ep, "ipc://%s/evald.events", ldm_daemon_run_dir(d));
    int rc = ldm_daemon_bind(d, st->pub, ep);
    if (rc)
        return ldm_fail(LDM_ECONFIG, "events: %s", ldm_errmsg());
    return ldm_daemon_watch(d, st->sub, -1, on_event, st);
}

static int evald_start(struct ldm_daemon *d)
{
    struct evald_state *st = ldm_daemon_ctx(d);
    st->d = d;
    st->cfg = ldm_daemon_cfg(d);
    st->busy = -1;
    st->seen = ldm_daemon_counter(d, "checkpoints_seen");
    st->done = ldm_daemon_counter(d, "evaluations_done");
    st->failed = ldm_daemon_counter(d, "evaluations_failed");
    st->images = ldm_daemon_counter(d, "images_sampled");
    st->q = (struct ev_queue){.eval_every = st->cfg->eval_every,
                              .latest_only = st->cfg->latest_only, .output = st->cfg->output};
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    int rc = ev_models_open(&st->models, st->cfg);
    if (!rc)
        rc = open_sockets(st, d);
    if (!rc) {
        scan(st);
        rc = pthread_create(&st->worker, NULL, worker, st) ? ldm_fail(LDM_EIO, "worker thread") : 0;
        st->started = rc == 0;
    }
    if (rc) {
        if (st->sub) zmq_close(st->sub);
        if (st->pub) zmq_close(st->pub);
        st->sub = st->pub = NULL;
        ev_models_close(&st->models);
    }
    return rc;
}

static int evald_tick(struct ldm_daemon *d)
{
    struct evald_state *st = ldm_daemon_ctx(d);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (now >= st->next_scan_ms) {
        if (st->next_scan_ms)
            scan(st);
        st->next_scan_ms = now + st->cfg->scan_interval;
    }
    return (int)(st->next_scan_ms - now);
}

static void evald_status(struct ldm_daemon *d, json_t *reply)
{
    struct evald_state *st = ldm_daemon_ctx(d);
    json_t *q = json_array();
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; q && i < st->q.n; i++)
        json_array_append_new(q, json_integer(st->q.steps[i]));
    json_object_set_new(reply, "queue", q);
    json_object_set_new(reply, "evaluating", st->busy >= 0 ? json_integer(st->busy) : json_null());
    if (st->last)
        json_object_set(reply, "last", st->last);
    pthread_mutex_unlock(&st->mu);
    json_object_set_new(reply, "device", json_string(st->cfg->device));
}

/* ldmctl eval STEP|latest */
static int evald_command(struct ldm_daemon *d, const char *op, const json_t *req, json_t *reply)
{
    struct evald_state *st = ldm_daemon_ctx(d);
    if (strcmp(op, "eval"))
        return 0;
    const char *arg = json_string_value(json_object_get(req, "arg"));
    int64_t step = -1;
    if (arg && !strcmp(arg, "latest"))
        step = ev_latest(st->cfg->checkpoints);
    else if (arg && *arg) {
        char *end;
        step = strtoll(arg, &end, 10);
        if (*end || step < 0)
            step = -2;
    }
    if (step < 0) {
        json_object_set_new(reply, "ok", json_false());
        json_object_set_new(reply, "error", json_string(step == -1 && arg ? "no checkpoint yet"
                                                        : "eval STEP|latest: STEP a whole number"));
        return 1;
    }
    int r = enqueue(st, step, 1);
    json_object_set_new(reply, "ok", json_boolean(r >= 0));
    json_object_set_new(reply, "step", json_integer(step));
    json_object_set_new(reply, "queued", json_boolean(r > 0));
    if (r == 0)
        json_object_set_new(reply, "note", json_string("already evaluated, queued or running"));
    return 1;
}

static void evald_stop(struct ldm_daemon *d)
{
    struct evald_state *st = ldm_daemon_ctx(d);
    pthread_mutex_lock(&st->mu);
    st->stop = 1;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    if (st->started)
        pthread_join(st->worker, NULL);
    ldm_daemon_unwatch(d, st->sub, -1);
    zmq_close(st->sub);
    zmq_close(st->pub);
    ev_models_close(&st->models);
    ev_queue_free(&st->q);
    json_decref(st->last);
}

static const struct ldm_daemon_ops ops = {
    .name = "evald",
    .summary = "evald samples images from checkpoints and computes FID and Inception Score.",
    .keys = keys,
    .cfg_size = sizeof(struct evald_cfg),
    .start = evald_start,
    .status = evald_status,
    .command = evald_command,
    .tick = evald_tick,
    .stop = evald_stop,
};

int main(int argc, char **argv)
{
    static struct evald_state st;
    return ldm_daemon_main(&ops, &st, argc, argv);
}

/* run.c — trainerd's training thread. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "err.h"
#include "log.h"
#include "trainerd/run.h"
#include "trainerd/tfevents.h"

struct td_run {
    struct td_run_opts o;
    pthread_t thread;
    atomic_int stop, paused, ckpt;
    pthread_mutex_t mu;             /* guards the fields below */
    const char *state;              /* starting, waiting, training, paused, done, failed */
    char error[512];
    struct td_step_report last;
    double ema_ips, started;        /* samples per second (smoothed), start time */
    char last_ckpt[4300];
    FILE *metrics;
    struct td_tfevents *tfev;       /* TensorBoard events (rank 0), or NULL */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void set_state(struct td_run *r, const char *s)
{
    pthread_mutex_lock(&r->mu);
    r->state = s;
    pthread_mutex_unlock(&r->mu);
}

/* Send [topic, json] on the PUB socket (dropped when nobody listens). */
static void publish(struct td_run *r, const char *topic, json_t *v)
{
    if (!r->o.pub || !v)
        return;
    char *text = json_dumps(v, JSON_COMPACT);
    if (text) {
        zmq_send(r->o.pub, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(r->o.pub, text, strlen(text), ZMQ_DONTWAIT);
    }
    free(text);
}

/* The step's scalars into the TensorBoard event file; a failed write logs
 * once and ends the file. */
static void tensorboard_event(struct td_run *r, const struct td_step_report *s, double ips)
{
    if (!r->tfev)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double wall = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    const char *tags[] = {"loss", "lr", "grad_norm", "img_per_s"};
    double vals[] = {s->loss, s->lr, s->grad_norm, ips};
    for (int i = 0; i < 4; i++)
        if (td_tfevents_scalar(r->tfev, tags[i], s->step, wall, (float)vals[i])) {
            LOG_WARN("tensorboard events no longer written", "path=%s error=\"%s\"",
                     td_tfevents_path(r->tfev), ldm_errmsg());
            td_tfevents_close(&r->tfev);
            return;
        }
}

static void metrics_event(struct td_run *r, const struct td_step_report *s, double ips)
{
    tensorboard_event(r, s, ips);
    json_t *v = json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:b}", "step", (json_int_t)s->step, "loss",
                          s->loss, "lr", s->lr, "grad_norm", s->grad_norm, "img_per_s", ips,
                          "data_wait", s->data_wait, "skipped", s->skipped);
    if (!v)
        return;
    publish(r, "metrics", v);
    if (r->metrics) {
        char *line = json_dumps(v, JSON_COMPACT);
        if (line) {
            fprintf(r->metrics, "%s\n", line);
            fflush(r->metrics);
        }
        free(line);
    }
    json_decref(v);
    LOG_INFO("step", "step=%lld loss=%.6f lr=%.3g grad_norm=%.4g img_per_s=%.2f data_wait=%.3f",
             (long long)s->step, s->loss, s->lr, s->grad_norm, ips, s->data_wait);
}

static int save(struct td_run *r, const char *why)
{
    char path[4300];
    int rc = td_trainer_save(r->o.trainer, path, sizeof path);
    if (rc) {
        LOG_ERROR("checkpoint not written", "why=%s error=\"%s\"", why, ldm_errmsg());
        return rc;
    }
    if (r->o.rank != 0)
        return 0;
    int64_t step = td_trainer_step_count(r->o.trainer);
    struct td_trainer_info i;
    td_trainer_info(r->o.trainer, &i);
    LOG_INFO("checkpoint written", "why=%s step=%lld path=%s", why, (long long)step, path);
    pthread_mutex_lock(&r->mu);
    snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", path);
    pthread_mutex_unlock(&r->mu);
    json_t *v = json_pack("{s:I,s:s,s:b}", "step", (json_int_t)step, "path", path, "ema", i.ema);
    publish(r, "checkpoint", v);
    json_decref(v);
    return 0;
}

/* One turn of the loop: a step (or a wait), then events and saves. Returns 1 when
 * training failed, 2 when a rank asked every rank to stop (saves together). */
static int turn(struct td_run *r)
{
    struct td_step_report s;
    int rc = td_trainer_step(r->o.trainer, 500, &s);
    if (rc == LDM_ETIMEOUT) {
        set_state(r, "waiting");
        return 0;
    }
    if (rc) {
        pthread_mutex_lock(&r->mu);
        r->state = "failed";
        snprintf(r->error, sizeof r->error, "%s", ldm_errmsg());
        pthread_mutex_unlock(&r->mu);
        LOG_ERROR("training stopped", "step=%lld error=\"%s\"",
                  (long long)td_trainer_step_count(r->o.trainer), r->error);
        return 1;
    }
    double ips = s.seconds > 0 ? (double)(s.samples * r->o.world) / s.seconds : 0;
    pthread_mutex_lock(&r->mu);
    r->state = "training";
    r->last = s;
    r->ema_ips = r->ema_ips > 0 ? 0.8 * r->ema_ips + 0.2 * ips : ips;
    pthread_mutex_unlock(&r->mu);
    if (r->o.rank == 0 && (s.step % r->o.log_every == 0 || s.step == 1))
        metrics_event(r, &s, ips);
    if (!s.skipped && r->o.save_steps > 0 && s.step % r->o.save_steps == 0)
        save(r, "save_steps");
    else if (s.requests & TD_REQ_SAVE)
        save(r, "requested");
    return s.requests & TD_REQ_STOP ? 2 : 0;
}

/* Saves together (ZeRO on several ranks): a checkpoint or a stop this rank is asked
 * for rides on its next step, and every rank saves (and stops) after that step. */
static void *run(void *arg)
{
    struct td_run *r = arg;
    struct td_trainer *t = r->o.trainer;
    int failed = 0, together = td_trainer_saves_together(t), stopped = 0;
    for (;;) {
        int stop = atomic_load(&r->stop);
        if (stop && !together)
            break;
        if (stop)
            td_trainer_request(t, TD_REQ_STOP);
        if (atomic_exchange(&r->ckpt, 0)) {
            if (together)
                td_trainer_request(t, TD_REQ_SAVE);
            else
                save(r, "requested");
        }
        if (atomic_load(&r->paused) && !stop) {
            set_state(r, "paused");
            usleep(100000);
            continue;
        }
        struct td_trainer_info i;
        td_trainer_info(r->o.trainer, &i);
        if (i.step >= i.max_steps) {
            if (td_trainer_last_saved(r->o.trainer) != i.step)
                failed = save(r, "done") != 0;
            set_state(r, failed ? "failed" : "done");
            LOG_INFO("training done", "step=%lld", (long long)i.step);
            break;
        }
        int end = turn(r);
        if (end) {
            failed = end == 1;
            stopped = end == 2;
            break;
        }
    }
    if (stopped)
        set_state(r, "stopped");
    if ((atomic_load(&r->stop) || stopped) &&
        td_trainer_step_count(t) != td_trainer_last_saved(t))
        save(r, "stop");
    if (r->o.done)
        r->o.done(r->o.arg, failed);
    return NULL;
}

int td_run_start(struct td_run **out, const struct td_run_opts *o)
{
    struct td_run *r = calloc(1, sizeof *r);
    if (!r)
        return ldm_fail(LDM_ENOMEM, "training thread");
    r->o = *o;
    if (r->o.log_every < 1)
        r->o.log_every = 1;
    r->state = "starting";
    r->started = now_s();
    pthread_mutex_init(&r->mu, NULL);
    if (o->output && o->rank == 0) {
        char p[4300];
        snprintf(p, sizeof p, "%s/metrics.jsonl", o->output);
        r->metrics = fopen(p, "a");
        if (!r->metrics)
            LOG_WARN("metrics.jsonl not written", "path=%s error=\"%s\"", p, strerror(errno));
        if (td_tfevents_open(o->output, &r->tfev))
            LOG_WARN("tensorboard events not written", "folder=%s error=\"%s\"", o->output,
                     ldm_errmsg());
    }
    int e = pthread_create(&r->thread, NULL, run, r);
    if (e) {
        if (r->metrics)
            fclose(r->metrics);
        td_tfevents_close(&r->tfev);
        free(r);
        errno = e;
        return ldm_fail_errno(LDM_EIO, "training thread: pthread_create");
    }
    *out = r;
    return 0;
}

void td_run_pause(struct td_run *r, int paused)
{
    atomic_store(&r->paused, paused);
}

void td_run_request_checkpoint(struct td_run *r)
{
    atomic_store(&r->ckpt, 1);
}

void td_run_status(struct td_run *r, json_t *reply)
{
    struct td_trainer_info i;
    td_trainer_info(r->o.trainer, &i);
    pthread_mutex_lock(&r->mu);
    double ips = r->ema_ips;
    double eta = ips > 0 ? (double)(i.max_steps - i.step) * (double)r->o.global_batch / ips : -1;
    json_t *p = json_pack("{s:s,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "state", r->state,
                          "step", (json_int_t)i.step, "total", (json_int_t)i.max_steps,
                          "epoch", (json_int_t)i.epoch, "loss", r->last.loss, "lr", r->last.lr,
                          "grad_norm", r->last.grad_norm, "img_per_s", ips,
                          "ips_per_device", ips / (double)r->o.world, "eta_s", eta,
                          "data_wait", r->last.data_wait);
    json_object_set_new(reply, "training", p);
    if (r->error[0])
        json_object_set_new(reply, "error", json_string(r->error));
    if (r->last_ckpt[0])
        json_object_set_new(reply, "last_checkpoint", json_string(r->last_ckpt));
    pthread_mutex_unlock(&r->mu);
    json_object_set_new(reply, "data", json_pack("{s:b,s:I,s:I}", "waiting", i.waiting,
                                                 "samples", (json_int_t)i.samples,
                                                 "skipped_batches",
                                                 (json_int_t)i.skipped_batches));
    json_object_set_new(reply, "guards", json_pack("{s:I,s:I,s:f}", "bad_steps",
                                                   (json_int_t)i.bad_steps, "bad_in_row",
                                                   (json_int_t)i.bad_in_row, "loss_scale",
                                                   i.loss_scale));
    json_object_set_new(reply, "memory",
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "parameters", (json_int_t)i.params,
                                  "weights_grads_bytes", (json_int_t)i.mem_params,
                                  "activations_bytes", (json_int_t)i.mem_acts, "optimizer_bytes",
                                  (json_int_t)i.mem_optim, "moments_bytes",
                                  (json_int_t)i.mem_moments, "zero_stage",
                                  (json_int_t)i.zero_stage));
    if (i.dev_total) {
        json_t *mem = json_object_get(reply, "memory");
        json_object_set_new(mem, "device_used_bytes", json_integer((json_int_t)i.dev_used));
        json_object_set_new(mem, "device_total_bytes", json_integer((json_int_t)i.dev_total));
    }
}

void td_run_stop(struct td_run **pr)
{
    struct td_run *r = *pr;
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    td_trainer_close(&r->o.trainer);
    if (r->o.pub)
        zmq_close(r->o.pub);
    if (r->metrics)
        fclose(r->metrics);
    td_tfevents_close(&r->tfev);
    pthread_mutex_destroy(&r->mu);
    free(r);
    *pr = NULL;
}

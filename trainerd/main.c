/* main.c — trainerd: data-parallel UNet training from the node's latent cache.
 *
 * The daemon skeleton (common/daemon.h) runs the control socket, signals and
 * systemd notification; start() resolves the ranks, meets the other ranks at
 * rank 0's rendezvous, opens the trainer (model, cache, resume) and starts the
 * training thread (run.h). Control: status, pause, resume, checkpoint, stop.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "daemon.h"
#include "err.h"
#include "log.h"
#include "trainerd/comm.h"
#include "trainerd/ranks.h"
#include "trainerd/rdv.h"
#include "trainerd/run.h"
#include "trainerd/tcfg.h"

struct trainerd_state {
    struct ldm_ranks ranks;
    char device[32];      /* cfg device, "cuda" made "cuda:LOCAL_RANK" */
    int local_world;
    atomic_int finished;
    struct ldm_comm *comm;
    struct td_run *run;
    struct ldm_daemon *d;
    int64_t global_batch;
};

#define K(f) offsetof(struct trainerd_cfg, f)

static const struct ldm_cfg_key keys[] = {
    {"device", LDM_CFG_STRING, K(device), "cpu", 0, 0, 0, "compute device: cpu, cuda or cuda:N"},
    {"threads", LDM_CFG_INT, K(threads), "0", 0, 0, 1024, "compute threads (0: every core)"},
    {"model", LDM_CFG_STRING, K(model), NULL, 1, 0, 0,
     "diffusers model folder: unet/, scheduler/ (and vae/, text_encoder/ for the identity check)"},
    {"cache", LDM_CFG_STRING, K(cache), NULL, 1, 0, 0, "LMDB folder of this node's latent cache"},
    {"cache_wait", LDM_CFG_DURATION, K(cache_wait), "60s", 0, 0, 86400000,
     "how long start-up waits for encoderd to create the cache"},
    {"output", LDM_CFG_STRING, K(output), NULL, 1, 0, 0, "folder of checkpoints and metrics.jsonl"},
    {"resume", LDM_CFG_STRING, K(resume), "latest", 0, 0, 0,
     "latest (the output's newest checkpoint, if any), a checkpoint folder, or empty"},
    {"check_identity", LDM_CFG_BOOL, K(check_identity), "true", 0, 0, 0,
     "refuse a cache made by other encoders than the model folder's"},
    {"seed", LDM_CFG_INT, K(seed), "0", 0, 0, 0, "seed of the data order and every draw"},
    {"batch_size", LDM_CFG_INT, K(batch_size), "1", 0, 1, 65536, "samples per micro-batch per rank"},
    {"grad_accum", LDM_CFG_INT, K(grad_accum), "1", 0, 1, 65536, "micro-batches per step"},
    {"max_steps", LDM_CFG_INT, K(max_steps), "1000", 0, 1, 1e12, "optimiser steps in all"},
    {"min_samples", LDM_CFG_INT, K(min_samples), "1", 0, 0, 1e12,
     "samples the cache must hold before training starts"},
    {"caption_dropout", LDM_CFG_FLOAT, K(caption_dropout), "0", 0, 0, 1,
     "probability of training on the empty caption"},
    {"random_flip", LDM_CFG_BOOL, K(random_flip), "false", 0, 0, 0,
     "use the mirrored latent half of the time (cache made with flip_variants)"},
    {"prefetch", LDM_CFG_INT, K(prefetch), "2", 0, 1, 64, "micro-batches prepared ahead"},
    {"prediction_type", LDM_CFG_STRING, K(prediction_type), "", 0, 0, 0,
     "epsilon, v_prediction or flow (empty: the scheduler config's)"},
    {"snr_gamma", LDM_CFG_FLOAT, K(snr_gamma), "0", 0, 0, 1e6, "min-SNR-gamma weighting (0: off)"},
    {"noise_offset", LDM_CFG_FLOAT, K(noise_offset), "0", 0, 0, 10, "offset noise scale"},
    {"timestep_sampling", LDM_CFG_STRING, K(timestep_sampling), "logit_normal", 0, 0, 0,
     "flow: uniform or logit_normal"},
    {"logit_mean", LDM_CFG_FLOAT, K(logit_mean), "0", 0, -10, 10, "flow: logit-normal mean"},
    {"logit_std", LDM_CFG_FLOAT, K(logit_std), "1", 0, 0, 10, "flow: logit-normal std"},
    {"optimizer", LDM_CFG_STRING, K(optimizer), "adamw", 0, 0, 0, "adamw or adamw8bit"},
    {"lr", LDM_CFG_FLOAT, K(lr), "1e-5", 0, 0, 1e30, "learning rate"},
    {"adam_beta1", LDM_CFG_FLOAT, K(adam_beta1), "0.9", 0, 0, 1, "AdamW beta1"},
    {"adam_beta2", LDM_CFG_FLOAT, K(adam_beta2), "0.999", 0, 0, 1, "AdamW beta2"},
    {"adam_eps", LDM_CFG_FLOAT, K(adam_eps), "1e-8", 0, 0, 1, "AdamW epsilon"},
    {"weight_decay", LDM_CFG_FLOAT, K(weight_decay), "0.01", 0, 0, 10, "AdamW weight decay"},
    {"max_grad_norm", LDM_CFG_FLOAT, K(max_grad_norm), "1", 0, 0, 1e9,
     "clip gradients to this global norm (0: no clipping)"},
    {"lr_scheduler", LDM_CFG_STRING, K(lr_scheduler), "constant", 0, 0, 0,
     "constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial"},
    {"lr_warmup_steps", LDM_CFG_INT, K(lr_warmup_steps), "0", 0, 0, 1e12, "warmup steps"},
    {"lr_num_cycles", LDM_CFG_INT, K(lr_num_cycles), "1", 0, 0, 1e6, "cosine_with_restarts cycles"},
    {"lr_power", LDM_CFG_FLOAT, K(lr_power), "1", 0, 0, 100, "polynomial power"},
    {"use_ema", LDM_CFG_BOOL, K(use_ema), "false", 0, 0, 0, "keep an EMA of the weights (unet_ema/)"},
    {"ema_decay", LDM_CFG_FLOAT, K(ema_decay), "0.9999", 0, 0, 1, "EMA decay"},
    {"ema_min_decay", LDM_CFG_FLOAT, K(ema_min_decay), "0", 0, 0, 1, "EMA min decay"},
    {"ema_update_after_step", LDM_CFG_INT, K(ema_update_after_step), "0", 0, 0, 1e12,
     "EMA starts after this step"},
    {"ema_warmup", LDM_CFG_BOOL, K(ema_warmup), "false", 0, 0, 0, "EMA warmup (inv_gamma, power)"},
    {"ema_inv_gamma", LDM_CFG_FLOAT, K(ema_inv_gamma), "1", 0, 0, 1e9, "EMA warmup inv_gamma"},
    {"ema_power", LDM_CFG_FLOAT, K(ema_power), "0.6666666666666666", 0, 0, 10, "EMA warmup power"},
    {"mixed_precision", LDM_CFG_STRING, K(mixed_precision), "no", 0, 0, 0, "no, fp16 or bf16"},
    {"loss_scale", LDM_CFG_FLOAT, K(loss_scale), "65536", 0, 1, 1e30, "fp16: initial loss scale"},
    {"gradient_checkpointing", LDM_CFG_BOOL, K(gradient_checkpointing), "false", 0, 0, 0,
     "keep fewer activations: the backward recomputes each UNet block (same gradients)"},
    {"max_bad_steps", LDM_CFG_INT, K(max_bad_steps), "25", 0, 1, 1e9,
     "stop after this many non-finite steps in a row"},
    {"save_steps", LDM_CFG_INT, K(save_steps), "500", 0, 0, 1e12, "checkpoint every N steps (0: off)"},
    {"keep_last", LDM_CFG_INT, K(keep_last), "0", 0, 0, 1e9, "checkpoints kept (0: all)"},
    {"save_precision", LDM_CFG_STRING, K(save_precision), "fp32", 0, 0, 0,
     "weights in unet/ and unet_ema/: fp32, fp16 or bf16"},
    {"rank", LDM_CFG_INT, K(rank), "-1", 0, -1, 65535, "this rank (-1: SLURM_PROCID / RANK / 0)"},
    {"world_size", LDM_CFG_INT, K(world_size), "-1", 0, -1, 65536,
     "ranks in all (-1: SLURM_NTASKS / WORLD_SIZE / 1)"},
    {"local_rank", LDM_CFG_INT, K(local_rank), "-1", 0, -1, 65535,
     "rank on this node (-1: SLURM_LOCALID / LOCAL_RANK / rank)"},
    {"local_world_size", LDM_CFG_INT, K(local_world_size), "-1", 0, -1, 65536,
     "ranks on this node sharing its cache (-1: LOCAL_WORLD_SIZE / the world size)"},
    {"rendezvous", LDM_CFG_ENDPOINT, K(rendezvous), NULL, 0, 0, 0,
     "rank 0's rendezvous endpoint (default ipc://RUN_DIR/trainerd.rdv)"},
    {"data_endpoint", LDM_CFG_ENDPOINT, K(data_endpoint), NULL, 0, 0, 0,
     "this rank's all-reduce endpoint, CPU ranks (default ipc://RUN_DIR/trainerd-ring-RANK)"},
    {"bucket_mb", LDM_CFG_INT, K(bucket_mb), "25", 0, 1, 65536,
     "gradient buckets all-reduced while the backward goes on (MiB)"},
    {"zero_stage", LDM_CFG_INT, K(zero_stage), "0", 0, 0, 2,
     "0, or 2 (ZeRO-2): each rank keeps the optimizer moments of 1/world of the parameters"},
    {"rendezvous_timeout", LDM_CFG_DURATION, K(rendezvous_timeout), "120s", 0, 100, 86400000,
     "how long ranks wait for each other"},
    {"events", LDM_CFG_ENDPOINT, K(events), NULL, 0, 0, 0,
     "events PUB endpoint of rank 0 (default ipc://RUN_DIR/trainerd.events)"},
    {"log_every", LDM_CFG_INT, K(log_every), "10", 0, 1, 1e9, "steps between metrics events"},
    {"exit_when_done", LDM_CFG_BOOL, K(exit_when_done), "true", 0, 0, 0,
     "exit (status 0) once max_steps are trained"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL},
};

/* "cpu", "cuda" or "cuda:N" with N a small non-negative integer. */
static int check_device(const char *dev)
{
    if (!strcmp(dev, "cpu") || !strcmp(dev, "cuda"))
        return 0;
    if (!strncmp(dev, "cuda:", 5) && dev[5]) {
        char *end;
        long n = strtol(dev + 5, &end, 10);
        if (!*end && n >= 0 && n < 1024)
            return 0;
    }
    return ldm_fail(LDM_ECONFIG, "device: '%s' is not cpu, cuda or cuda:N", dev);
}

/* Ranks from the config or the environment; the node's share of them. */
static int resolve_ranks(struct trainerd_state *st, const struct trainerd_cfg *cfg)
{
    int rc = ldm_ranks_resolve((int)cfg->rank, (int)cfg->world_size, (int)cfg->local_rank,
                               &st->ranks);
    if (rc)
        return rc;
    st->local_world = st->ranks.world;
    const char *lw = getenv("LOCAL_WORLD_SIZE");
    if (cfg->local_world_size > 0)
        st->local_world = (int)cfg->local_world_size;
    else if (lw && *lw)
        st->local_world = atoi(lw);
    if (st->local_world >= 1 && !strcmp(st->ranks.local_from, "default"))
        st->ranks.local_rank = st->ranks.rank % st->local_world;
    if (st->local_world < 1 || st->ranks.local_rank >= st->local_world ||
        st->ranks.world % st->local_world)
        return ldm_fail(LDM_ECONFIG, "local_world_size: %d does not fit local rank %d of world %d",
                        st->local_world, st->ranks.local_rank, st->ranks.world);
    return 0;
}

/* Meet the other ranks at rank 0's rendezvous and open the ring. */
static int join_ranks(struct trainerd_state *st, struct ldm_daemon *d,
                      const struct trainerd_cfg *cfg)
{
    char rdv[1100], data[1100], run_id[64];
    const char *run = ldm_daemon_run_dir(d);
    snprintf(rdv, sizeof rdv, "%s", cfg->rendezvous ? cfg->rendezvous : "");
    if (!rdv[0])
        snprintf(rdv, sizeof rdv, "ipc://%s/trainerd.rdv", run);
    if (cfg->data_endpoint)
        snprintf(data, sizeof data, "%s", cfg->data_endpoint);
    else
        snprintf(data, sizeof data, "ipc://%s/trainerd-ring-%d", run, st->ranks.rank);
    snprintf(run_id, sizeof run_id, "seed=%lld batch=%lld accum=%lld", (long long)cfg->seed,
             (long long)cfg->batch_size, (long long)cfg->grad_accum);
    const struct ldm_daemon_common *com = ldm_daemon_common_cfg(d);
    struct ldm_bind_security sec = {NULL, com->insecure};
    struct ldm_rdv_opts ro = {.endpoint = rdv, .run_id = run_id,
                              .timeout_ms = (int)cfg->rendezvous_timeout, .sec = &sec};
    /* GPU ranks: NCCL on this rank's device (on a stream of its own once the trainer
     * attaches its compute context: ldm_comm_attach); CPU ranks: the ZeroMQ ring */
    int gpu = !strncmp(st->device, "cuda", 4);
    struct ldm_comm_opts co = {.kind = gpu ? LDM_COMM_NCCL : LDM_COMM_RING,
                               .timeout_ms = (int)cfg->rendezvous_timeout, .sec = &sec,
                               .device = gpu ? atoi(st->device + 5) : 0};
    LOG_INFO("joining ranks", "rank=%d world=%d rendezvous=%s data=%s", st->ranks.rank,
             st->ranks.world, rdv, data);
    return ldm_comm_setup(&st->comm, ldm_daemon_zctx(d), st->ranks.rank, st->ranks.world, data,
                          &ro, &co);
}

static void on_done(void *arg, int failed)
{
    struct trainerd_state *st = arg;
    atomic_store(&st->finished, failed ? 2 : 1);
}

/* The events PUB socket of rank 0. */
static int open_events(struct ldm_daemon *d, const struct trainerd_cfg *cfg, void **pub)
{
    char ep[1100];
    if (cfg->events)
        snprintf(ep, sizeof ep, "%s", cfg->events);
    else
        snprintf(ep, sizeof ep, "ipc://%s/trainerd.events", ldm_daemon_run_dir(d));
    *pub = zmq_socket(ldm_daemon_zctx(d), ZMQ_PUB);
    if (!*pub)
        return ldm_fail(LDM_EZMQ, "events: zmq_socket: %s", zmq_strerror(zmq_errno()));
    int rc = ldm_daemon_bind(d, *pub, ep);
    if (rc) {
        zmq_close(*pub);
        *pub = NULL;
        return ldm_fail(LDM_ECONFIG, "events: %s", ldm_errmsg());
    }
    return 0;
}

static int start_run(struct trainerd_state *st, struct ldm_daemon *d,
                     const struct trainerd_cfg *cfg, struct td_trainer *t)
{
    void *pub = NULL;
    int rank0 = st->ranks.rank == 0;
    int rc = rank0 ? open_events(d, cfg, &pub) : 0;
    if (rc)
        return rc;
    st->global_batch = cfg->batch_size * cfg->grad_accum * st->ranks.world;
    struct td_run_opts o = {.trainer = t, .pub = pub, .output = rank0 ? cfg->output : NULL,
                            .save_steps = cfg->save_steps, .log_every = cfg->log_every,
                            .global_batch = st->global_batch, .world = st->ranks.world,
                            .rank = st->ranks.rank, .done = on_done, .arg = st};
    rc = td_run_start(&st->run, &o);
    if (rc && pub)
        zmq_close(pub);
    return rc;
}

static int trainerd_start(struct ldm_daemon *d)
{
    struct trainerd_state *st = ldm_daemon_ctx(d);
    const struct trainerd_cfg *cfg = ldm_daemon_cfg(d);
    st->d = d;
    int rc = check_device(cfg->device);
    if (!rc)
        rc = resolve_ranks(st, cfg);
    if (!rc) {
        if (!strcmp(cfg->device, "cuda"))
            snprintf(st->device, sizeof st->device, "cuda:%d", st->ranks.local_rank);
        else
            snprintf(st->device, sizeof st->device, "%s", cfg->device);
    }
    if (!rc && st->ranks.world > 1)
        rc = join_ranks(st, d, cfg);
    struct td_trainer *t = NULL;
    struct trainerd_cfg c2 = *cfg;
    c2.device = st->device;
    if (!rc)
        rc = td_trainer_open(&t, &c2, st->comm, st->ranks.rank, st->ranks.world,
                             st->ranks.local_rank, st->local_world);
    if (!rc) {
        struct td_trainer_info i;
        td_trainer_info(t, &i);
        LOG_INFO("trainer ready", "rank=%d world=%d parameters=%zu step=%lld max_steps=%lld "
                 "global_batch=%lld zero_stage=%d moments_bytes=%zu", st->ranks.rank,
                 st->ranks.world, i.params, (long long)i.step, (long long)cfg->max_steps,
                 (long long)(cfg->batch_size * cfg->grad_accum * st->ranks.world),
                 i.zero_stage, i.mem_moments);
        rc = start_run(st, d, cfg, t);
        if (rc)
            td_trainer_close(&t);
    }
    if (rc)
        ldm_comm_close(&st->comm);
    return rc;
}

static void trainerd_status(struct ldm_daemon *d, json_t *reply)
{
    struct trainerd_state *st = ldm_daemon_ctx(d);
    const struct trainerd_cfg *cfg = ldm_daemon_cfg(d);
    json_object_set_new(reply, "device", json_string(cfg->device));
    json_object_set_new(reply, "rank", json_integer(st->ranks.rank));
    json_object_set_new(reply, "world", json_integer(st->ranks.world));
    json_object_set_new(reply, "global_batch", json_integer(st->global_batch));
    if (st->run)
        td_run_status(st->run, reply);
}

static int trainerd_command(struct ldm_daemon *d, const char *op, const json_t *req,
                            json_t *reply)
{
    struct trainerd_state *st = ldm_daemon_ctx(d);
    (void)req;
    if (strcmp(op, "checkpoint"))
        return 0;
    if (!st->run) {
        json_object_set_new(reply, "ok", json_false());
        json_object_set_new(reply, "error", json_string("not training"));
        return 1;
    }
    td_run_request_checkpoint(st->run);
    json_object_set_new(reply, "ok", json_true());
    json_object_set_new(reply, "checkpoint", json_string("requested: written after this step"));
    return 1;
}

static void trainerd_pause(struct ldm_daemon *d, int paused)
{
    struct trainerd_state *st = ldm_daemon_ctx(d);
    if (st->run)
        td_run_pause(st->run, paused);
}

/* Training over: exit when told to (status 0 either way; a failure is logged). */
static int trainerd_tick(struct ldm_daemon *d)
{
    struct trainerd_state *st = ldm_daemon_ctx(d);
    const struct trainerd_cfg *cfg = ldm_daemon_cfg(d);
    int f = atomic_load(&st->finished);
    if (f == 2)
        ldm_daemon_set_exit_status(d, 1);
    if (f && (cfg->exit_when_done || f == 2))
        ldm_daemon_request_stop(d);
    return 250;
}

static void trainerd_stop(struct ldm_daemon *d)
{
    struct trainerd_state *st = ldm_daemon_ctx(d);
    td_run_stop(&st->run);
    ldm_comm_close(&st->comm);
}

static const struct ldm_daemon_ops ops = {
    .name = "trainerd",
    .summary = "trainerd trains the UNet data-parallel from the latent cache, one process per GPU.",
    .keys = keys,
    .cfg_size = sizeof(struct trainerd_cfg),
    .start = trainerd_start,
    .status = trainerd_status,
    .command = trainerd_command,
    .pause = trainerd_pause,
    .tick = trainerd_tick,
    .stop = trainerd_stop,
};

int main(int argc, char **argv)
{
    static struct trainerd_state st;
    return ldm_daemon_main(&ops, &st, argc, argv);
}

/* main.c — encoderd: leases shards to loaders and stores VAE latents and text embeddings in LMDB, exactly once.
 *
 * The daemon skeleton (common/daemon.h) runs the control socket, signals
 * and systemd notification. The main loop answers the lease socket
 * (ledger.c); a thread pulls, encodes and commits samples (intake.c) and
 * wakes the loop after each commit so that the ledger settles shards.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "encode.h"
#include "err.h"
#include "intake.h"
#include "ledger.h"
#include "log.h"
#include "rundir.h"
#include "shardlist.h"
#include "store.h"
#include "zsock.h"

struct encoderd_cfg {
    struct ldm_strlist shards;
    char *cache, *model, *leases, *samples, *device, *text_hidden, *cond_store;
    int64_t lease_timeout, max_wait, batch_size, hwm, node_index, node_count, threads;
    int flip_variants, new_cache;
};

struct encoderd_state {
    struct ldm_daemon *d;
    const struct encoderd_cfg *cfg;
    struct encoderd_model_opts mo;
    struct encoderd_models *models;
    struct ldm_store *store;
    struct ldm_ledger *ledger;
    struct encoderd_intake *intake;
    void *rep, *pull;
    char leases[1024], samples[1024];
    struct encoderd_counters c;
    _Atomic uint64_t *lease_requests, *lease_errors;
};

#define K(field) offsetof(struct encoderd_cfg, field)

static const struct ldm_cfg_key keys[] = {
    {"shards", LDM_CFG_PATHLIST, K(shards), NULL, 1, 0, 0,
     "shard specifications (split at blanks and commas outside braces: a pipe: command with "
     "spaces goes in a list file, @FILE)"},
    {"cache", LDM_CFG_STRING, K(cache), NULL, 1, 0, 0, "LMDB folder of this node's cache"},
    {"model", LDM_CFG_STRING, K(model), NULL, 1, 0, 0,
     "diffusers model folder: vae/, text_encoder/[, text_encoder_2/]"},
    {"leases", LDM_CFG_ENDPOINT, K(leases), NULL, 0, 0, 0,
     "lease endpoint, REP (default ipc://RUN_DIR/encoderd.leases)"},
    {"samples", LDM_CFG_ENDPOINT, K(samples), NULL, 0, 0, 0,
     "sample endpoint, PULL (default ipc://RUN_DIR/encoderd.samples)"},
    {"lease_timeout", LDM_CFG_DURATION, K(lease_timeout), "30s", 0, 100, 86400000,
     "a lease not renewed this long goes to another loader"},
    {"batch_size", LDM_CFG_INT, K(batch_size), "8", 0, 1, 4096, "samples encoded at once"},
    {"max_wait", LDM_CFG_DURATION, K(max_wait), "500ms", 0, 1, 600000,
     "a batch waits at most this long for more samples"},
    {"hwm", LDM_CFG_INT, K(hwm), "64", 0, 1, 1000000, "samples queued on the PULL socket"},
    {"node_index", LDM_CFG_INT, K(node_index), "0", 0, 0, 65535, "this node: takes shard i when i % node_count == node_index"},
    {"node_count", LDM_CFG_INT, K(node_count), "1", 0, 1, 65536, "nodes sharing the shard list"},
    {"device", LDM_CFG_STRING, K(device), "cpu", 0, 0, 0, "compute device: cpu, cuda or cuda:N"},
    {"threads", LDM_CFG_INT, K(threads), "0", 0, 0, 1024,
     "compute threads of the cpu device (0: every core)"},
    {"flip_variants", LDM_CFG_BOOL, K(flip_variants), "false", 0, 0, 0,
     "also store the latent of the mirrored image"},
    {"text_hidden", LDM_CFG_STRING, K(text_hidden), "last", 0, 0, 0,
     "text states stored: last (SD 1.x) or penultimate (SD 2.x / SDXL clip skip)"},
    {"cond_store", LDM_CFG_STRING, K(cond_store), "pixels", 0, 0, 0,
     "conditioning image stored as pixels (uint8) or latent (its VAE mean, fp16)"},
    {"new_cache", LDM_CFG_BOOL, K(new_cache), "false", 0, 0, 0,
     "discard the cache folder's contents and start a new cache"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL},
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The shards of this node, from the `shards` key. */
static int node_shards(const struct encoderd_cfg *cfg, struct ldm_shardlist *out)
{
    struct ldm_shardlist all = {0};
    int rc = ldm_shardlist_expand((const char *const *)cfg->shards.v, cfg->shards.n, 0, &all);
    if (!rc)
        rc = ldm_shardlist_for_node(&all, (size_t)cfg->node_index, (size_t)cfg->node_count, out);
    ldm_shardlist_free(&all);
    if (!rc && !out->n)
        rc = ldm_fail(LDM_ECONFIG, "node %lld of %lld has no shards", (long long)cfg->node_index,
                      (long long)cfg->node_count);
    for (size_t i = 0; !rc && i < out->n; i++)
        if (strlen(out->v[i]) > LDM_STORE_MAX_KEY)
            rc = ldm_fail(LDM_ECONFIG, "shard URL longer than %d bytes: %.80s...",
                          LDM_STORE_MAX_KEY, out->v[i]);
    if (rc)
        ldm_shardlist_free(out);
    return rc ? ldm_fail(LDM_ECONFIG, "shards: %s", ldm_errmsg()) : 0;
}

/* --new_cache: remove the LMDB files of the cache folder. */
static int discard_cache(const char *dir)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    for (size_t i = 0; i < 2; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (unlink(p) && errno != ENOENT)
            return ldm_fail(LDM_EIO, "new_cache: cannot remove %s: %s", p, strerror(errno));
    }
    LOG_WARN("new cache: previous contents discarded", "cache=%s", dir);
    return 0;
}

/* Record the empty caption's embedding once per cache. */
static int store_empty_caption(struct encoderd_state *st)
{
    void *old = NULL, *rec = NULL;
    size_t len = 0;
    int rc = ldm_store_meta_get(st->store, LDM_META_EMPTY_CAPTION, &old, &len);
    free(old);
    if (rc != LDM_ENOTFOUND)
        return rc;
    rc = encoderd_empty_caption(st->models, &rec, &len);
    if (rc == LDM_ENOTFOUND) {
        LOG_WARN("empty caption not encoded: trainers cannot use caption_dropout",
                 "error=\"%s\"", ldm_errmsg());
        return 0;
    }
    if (!rc)
        rc = ldm_store_meta_put(st->store, LDM_META_EMPTY_CAPTION, rec, len);
    free(rec);
    if (!rc)
        LOG_INFO("empty caption encoded", "bytes=%zu", len);
    return rc;
}

/* Open the cache and check (or record) the encoders' identity. */
static int open_cache(struct encoderd_state *st)
{
    const struct encoderd_cfg *cfg = st->cfg;
    char *id = NULL;
    void *old = NULL;
    size_t len = 0;
    int rc = encoderd_identity(st->models, &st->mo, &id);
    if (!rc && cfg->new_cache)
        rc = discard_cache(cfg->cache);
    if (!rc)
        rc = ldm_store_open(cfg->cache, NULL, &st->store);
    if (!rc) {
        rc = ldm_store_meta_get(st->store, LDM_META_IDENTITY, &old, &len);
        if (rc == LDM_ENOTFOUND)
            rc = ldm_store_meta_put(st->store, LDM_META_IDENTITY, id, strlen(id));
        else if (!rc && (len != strlen(id) || memcmp(old, id, len)))
            rc = ldm_fail(LDM_ECONFIG,
                          "cache %s was made by other encoders: its identity %s, model %s gives "
                          "%s; use a new cache folder or --new_cache",
                          cfg->cache, (const char *)old, cfg->model, id);
    }
    free(old);
    free(id);
    if (!rc)
        rc = store_empty_caption(st);
    return rc;
}

/* "cpu", "cuda" or "cuda:N" (N decimal digits). */
static int device_ok(const char *dev)
{
    if (!strcmp(dev, "cpu") || !strcmp(dev, "cuda"))
        return 1;
    if (strncmp(dev, "cuda:", 5) || !dev[5] || strlen(dev + 5) > 4)
        return 0;
    return strspn(dev + 5, "0123456789") == strlen(dev + 5);
}

/* The model key names a diffusers folder with the parts encoderd runs. */
static int check_model_dir(const char *model)
{
    static const char *const need[] = {"vae/config.json", "text_encoder/config.json"};
    for (size_t i = 0; i < 2; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", model, need[i]);
        if (access(p, R_OK))
            return ldm_fail(LDM_ECONFIG, "model: '%s' is not a diffusers folder: no %s", model,
                            need[i]);
    }
    return 0;
}

static int parse_model_opts(struct encoderd_state *st)
{
    const struct encoderd_cfg *cfg = st->cfg;
    if (!device_ok(cfg->device))
        return ldm_fail(LDM_ECONFIG, "device: '%s' is not cpu, cuda or cuda:N", cfg->device);
    if (strcmp(cfg->text_hidden, "last") && strcmp(cfg->text_hidden, "penultimate"))
        return ldm_fail(LDM_ECONFIG, "text_hidden: '%s' is not last or penultimate",
                        cfg->text_hidden);
    if (strcmp(cfg->cond_store, "pixels") && strcmp(cfg->cond_store, "latent"))
        return ldm_fail(LDM_ECONFIG, "cond_store: '%s' is not pixels or latent", cfg->cond_store);
    int latent = !strcmp(cfg->cond_store, "latent");
    if (latent && cfg->flip_variants)
        return ldm_fail(LDM_ECONFIG, "cond_store: latent with flip_variants: a record holds no "
                                     "conditioning latent of the mirrored image");
    st->mo = (struct encoderd_model_opts){cfg->model, cfg->device, (int)cfg->threads,
                                          !strcmp(cfg->text_hidden, "penultimate"),
                                          cfg->flip_variants, latent};
    return 0;
}

static void on_lease(struct ldm_daemon *d, void *arg)
{
    struct encoderd_state *st = arg;
    (void)d;
    json_t *req = NULL, *reply = NULL;
    atomic_fetch_add(st->lease_requests, 1);
    if (ldm_zrecv_json(st->rep, 1 << 16, &req))
        reply = json_pack("{s:b,s:s}", "ok", 0, "error", ldm_errmsg());
    else if (ldm_ledger_handle(st->ledger, req, mono_ms(), &reply))
        LOG_ERROR("lease state not stored", "error=\"%s\"", ldm_errmsg());
    if (!reply || !json_is_true(json_object_get(reply, "ok")))
        atomic_fetch_add(st->lease_errors, 1);
    if (!reply)
        reply = json_pack("{s:b,s:s}", "ok", 0, "error", "out of memory");
    if (ldm_zsend_json(st->rep, reply))
        LOG_WARN("lease reply not sent", "error=\"%s\"", ldm_errmsg());
    json_decref(req);
    json_decref(reply);
}

static void on_commit(struct ldm_daemon *d, void *arg)
{
    struct encoderd_state *st = arg;
    (void)d;
    struct ldm_shardlist dirty = {0};
    encoderd_intake_take_dirty(st->intake, &dirty);
    for (size_t i = 0; i < dirty.n; i++)
        if (ldm_ledger_refresh(st->ledger, dirty.v[i], mono_ms()))
            LOG_ERROR("ledger refresh failed", "shard=%s error=\"%s\"", dirty.v[i], ldm_errmsg());
    ldm_shardlist_free(&dirty);
}

static int open_sockets(struct encoderd_state *st)
{
    const struct encoderd_cfg *cfg = st->cfg;
    const char *rd = ldm_daemon_run_dir(st->d);
    int rc = 0, hwm = (int)cfg->hwm, linger = 0;
    if (cfg->leases)
        snprintf(st->leases, sizeof st->leases, "%s", cfg->leases);
    else
        rc = ldm_rundir_endpoint(st->leases, sizeof st->leases, rd, "encoderd", ".leases");
    if (!rc && cfg->samples)
        snprintf(st->samples, sizeof st->samples, "%s", cfg->samples);
    else if (!rc)
        rc = ldm_rundir_endpoint(st->samples, sizeof st->samples, rd, "encoderd", ".samples");
    if (rc)
        return ldm_fail(LDM_ECONFIG, "%s", ldm_errmsg());
    st->rep = zmq_socket(ldm_daemon_zctx(st->d), ZMQ_REP);
    st->pull = zmq_socket(ldm_daemon_zctx(st->d), ZMQ_PULL);
    if (!st->rep || !st->pull)
        return ldm_fail(LDM_EZMQ, "sockets: %s", zmq_strerror(zmq_errno()));
    zmq_setsockopt(st->pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(st->pull, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(st->rep, ZMQ_LINGER, &linger, sizeof linger);
    rc = ldm_daemon_bind(st->d, st->rep, st->leases);
    if (!rc)
        rc = ldm_daemon_bind(st->d, st->pull, st->samples);
    if (!rc)
        rc = ldm_daemon_watch(st->d, st->rep, -1, on_lease, st);
    return rc;
}

static void setup_counters(struct encoderd_state *st)
{
    struct ldm_daemon *d = st->d;
    struct encoderd_counters *c = &st->c;
    c->received = ldm_daemon_counter(d, "samples_received");
    c->committed = ldm_daemon_counter(d, "samples_committed");
    c->duplicates = ldm_daemon_counter(d, "samples_duplicates");
    c->tombstones = ldm_daemon_counter(d, "samples_tombstones");
    c->errors = ldm_daemon_counter(d, "sample_errors");
    c->batches = ldm_daemon_counter(d, "batches");
    for (int r = 1; r <= LDM_SR_COUNT; r++) {
        char name[64];
        snprintf(name, sizeof name, "rejected_%s",
                 r == LDM_SR_COUNT ? "model" : ldm_sample_reason_name(r));
        c->rejected[r] = ldm_daemon_counter(d, name);
    }
    st->lease_requests = ldm_daemon_counter(d, "lease_requests");
    st->lease_errors = ldm_daemon_counter(d, "lease_errors");
}

static int start_intake(struct encoderd_state *st)
{
    struct encoderd_intake_opts o = {st->pull, st->store, st->models, {0},
                                     (int)st->cfg->batch_size, st->cfg->max_wait, st->c};
    ldm_sample_limits_init(&o.lim);
    encoderd_models_vocab(st->models, &o.lim.vocab, &o.lim.vocab_2);
    if (!o.lim.vocab_2)
        o.lim.vocab_2 = 1; /* no second encoder: no second ids */
    int rc = encoderd_intake_start(&st->intake, &o);
    if (!rc)
        rc = ldm_daemon_watch(st->d, NULL, encoderd_intake_fd(st->intake), on_commit, st);
    return rc;
}

static void encoderd_stop(struct ldm_daemon *d)
{
    struct encoderd_state *st = ldm_daemon_ctx(d);
    encoderd_intake_stop(&st->intake);
    ldm_ledger_free(&st->ledger);
    if (st->rep)
        zmq_close(st->rep);
    if (st->pull)
        zmq_close(st->pull);
    st->rep = st->pull = NULL;
    ldm_store_close(&st->store);
    encoderd_models_free(&st->models);
}


static int encoderd_start(struct ldm_daemon *d)
{
    struct encoderd_state *st = ldm_daemon_ctx(d);
    struct ldm_shardlist shards = {0};
    st->d = d;
    st->cfg = ldm_daemon_cfg(d);
    int rc = parse_model_opts(st);
    if (!rc)
        rc = check_model_dir(st->cfg->model);
    if (!rc)
        rc = node_shards(st->cfg, &shards);
    if (!rc)
        rc = encoderd_models_open(&st->models, &st->mo);
    if (!rc)
        rc = open_cache(st);
    if (!rc)
        rc = ldm_ledger_open(&st->ledger, st->store, &shards, st->cfg->lease_timeout, 500);
    if (!rc)
        rc = open_sockets(st);
    if (!rc) {
        setup_counters(st);
        rc = start_intake(st);
    }
    if (rc)
        encoderd_stop(d); /* the skeleton logs the detail */
    else
        LOG_INFO("encoding", "shards=%zu cache=%s model=%s device=%s cond_store=%s leases=%s "
                 "samples=%s", shards.n, st->cfg->cache, st->cfg->model, st->cfg->device,
                 st->cfg->cond_store, st->leases, st->samples);
    ldm_shardlist_free(&shards);
    return rc;
}

static void encoderd_status(struct ldm_daemon *d, json_t *reply)
{
    struct encoderd_state *st = ldm_daemon_ctx(d);
    uint64_t counts[LDM_SHARD_NSTATUS], total;
    ldm_ledger_counts(st->ledger, counts, &total);
    json_t *sh = json_object();
    for (int i = 0; i < LDM_SHARD_NSTATUS; i++)
        json_object_set_new(sh, ldm_shard_status_name(i), json_integer((json_int_t)counts[i]));
    json_object_set_new(sh, "total", json_integer((json_int_t)total));
    json_object_set_new(reply, "shards", sh);
    struct ldm_store_stat ss;
    if (!ldm_store_stat(st->store, &ss))
        json_object_set_new(reply, "lmdb",
                            json_pack("{s:s,s:I,s:I,s:I}", "path", st->cfg->cache, "map_size",
                                      (json_int_t)ss.map_size, "used_bytes",
                                      (json_int_t)ss.map_used, "samples",
                                      (json_int_t)ss.entries[LDM_DB_SAMPLES]));
    json_object_set_new(reply, "batching",
                        json_integer((json_int_t)encoderd_intake_pending(st->intake)));
    json_object_set_new(reply, "leases", json_string(st->leases));
    json_object_set_new(reply, "samples", json_string(st->samples));
    json_object_set_new(reply, "progress",
                        json_pack("{s:s,s:I,s:I}", "unit", "shards", "done",
                                  (json_int_t)(counts[LDM_SHARD_DONE] + counts[LDM_SHARD_FAILED]),
                                  "total", (json_int_t)total));
}

static int encoderd_command(struct ldm_daemon *d, const char *op, const json_t *req, json_t *reply)
{
    struct encoderd_state *st = ldm_daemon_ctx(d);
    (void)req;
    if (strcmp(op, "leases"))
        return 0;
    json_t *list = ldm_ledger_list(st->ledger, mono_ms());
    json_object_set_new(reply, "ok", json_boolean(list != NULL));
    if (list)
        json_object_set_new(reply, "shards", list);
    else
        json_object_set_new(reply, "error", json_string("out of memory"));
    return 1;
}

static int encoderd_tick(struct ldm_daemon *d)
{
    struct encoderd_state *st = ldm_daemon_ctx(d);
    if (ldm_ledger_expire(st->ledger, mono_ms()))
        LOG_ERROR("lease expiry not stored", "error=\"%s\"", ldm_errmsg());
    return 250;
}

static void encoderd_pause(struct ldm_daemon *d, int paused)
{
    struct encoderd_state *st = ldm_daemon_ctx(d);
    encoderd_intake_pause(st->intake, paused);
}

static const struct ldm_daemon_ops ops = {
    .name = "encoderd",
    .summary = "encoderd leases shards to loaders and stores VAE latents and text embeddings in "
               "LMDB, exactly once.",
    .keys = keys,
    .cfg_size = sizeof(struct encoderd_cfg),
    .start = encoderd_start,
    .status = encoderd_status,
    .command = encoderd_command,
    .tick = encoderd_tick,
    .pause = encoderd_pause,
    .stop = encoderd_stop,
};

int main(int argc, char **argv)
{
    static struct encoderd_state st;
    return ldm_daemon_main(&ops, &st, argc, argv);
}

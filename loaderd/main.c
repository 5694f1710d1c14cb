/* main.c — loaderd: reads shards, decodes, crops, buckets and tokenizes
 * samples, and pushes them to encoderd under shard leases.
 *
 * The daemon skeleton (common/daemon.h) runs the control socket, signals and
 * systemd notification; worker.c runs the reading threads.
 */
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "err.h"
#include "loader.h"
#include "log.h"
#include "resample.h"
#include "rundir.h"
#include "worker.h"

#define K(field) offsetof(struct loaderd_cfg, field)

static const struct ldm_cfg_key keys[] = {
    {"leases", LDM_CFG_ENDPOINT, K(leases), NULL, 0, 0, 0,
     "encoderd's lease endpoint (default ipc://RUN_DIR/encoderd.leases)"},
    {"samples", LDM_CFG_ENDPOINT, K(samples), NULL, 0, 0, 0,
     "encoderd's sample endpoint (default ipc://RUN_DIR/encoderd.samples)"},
    {"server_key", LDM_CFG_STRING, K(server_key), NULL, 0, 0, 0,
     "encoderd's CURVE public key (Z85, or a .pub file) for tcp endpoints"},
    {"threads", LDM_CFG_INT, K(threads), "2", 0, 1, 256, "shards read at once, a thread each"},
    {"hwm", LDM_CFG_INT, K(hwm), "16", 0, 1, 100000, "samples queued per thread before sending waits"},
    {"request_ms", LDM_CFG_DURATION, K(request_ms), "5s", 0, 100, 600000, "lease request timeout"},
    {"seed", LDM_CFG_INT, K(seed), "0", 0, 0, 0, "global seed of every random choice"},
    {"resolution", LDM_CFG_INT, K(resolution), "512", 0, 8, 16384, "square training size"},
    {"center_crop", LDM_CFG_BOOL, K(center_crop), "true", 0, 0, 0, "center (true) or random crop"},
    {"random_flip", LDM_CFG_BOOL, K(random_flip), "true", 0, 0, 0, "mirror half the samples"},
    {"interpolation", LDM_CFG_STRING, K(interpolation), "bilinear", 0, 0, 0,
     "resize filter: bilinear, bicubic or lanczos"},
    {"buckets", LDM_CFG_BOOL, K(buckets), "false", 0, 0, 0, "aspect-ratio buckets"},
    {"bucket_max_area", LDM_CFG_SIZE, K(bucket_max_area), "0", 0, 0, 0,
     "bucket area in pixels (0: resolution^2)"},
    {"bucket_min_reso", LDM_CFG_INT, K(bucket_min_reso), "256", 0, 8, 16384, "smallest bucket side"},
    {"bucket_max_reso", LDM_CFG_INT, K(bucket_max_reso), "2048", 0, 8, 16384, "largest bucket side"},
    {"bucket_step", LDM_CFG_INT, K(bucket_step), "64", 0, 8, 1024, "bucket side step"},
    {"tokenizer", LDM_CFG_STRING, K(tokenizer), NULL, 0, 0, 0,
     "tokenizer folder (vocab.json+merges.txt, or vocab.txt) or a bpe .txt.gz"},
    {"tokenizer_2", LDM_CFG_STRING, K(tokenizer_2), NULL, 0, 0, 0, "second tokenizer (SDXL)"},
    {"max_length", LDM_CFG_INT, K(max_length), "77", 0, 2, 512, "token ids per caption"},
    {"caption_key", LDM_CFG_STRING, K(caption_key), "caption", 0, 0, 0,
     "json member of the caption (a string or a list of strings)"},
    {"caption_prefix", LDM_CFG_STRING, K(caption_prefix), NULL, 0, 0, 0, "text put before captions"},
    {"shuffle_caption", LDM_CFG_BOOL, K(shuffle_caption), "false", 0, 0, 0,
     "shuffle comma-separated tags"},
    {"keep_tokens", LDM_CFG_INT, K(keep_tokens), "0", 0, 0, 1000, "tags kept first when shuffling"},
    {"caption_dropout", LDM_CFG_FLOAT, K(caption_dropout), "0", 0, 0, 1,
     "probability of an empty caption"},
    {"cond_ext", LDM_CFG_STRING, K(cond_ext), NULL, 0, 0, 0,
     "member of a conditioning image (e.g. input.jpg)"},
    {"max_pixels", LDM_CFG_SIZE, K(max_pixels), "178956970", 0, 0, 0, "largest image, in pixels"},
    {"max_member", LDM_CFG_SIZE, K(max_member), "64M", 0, 0, 0, "largest shard member, in bytes"},
    {"dct_scaling", LDM_CFG_BOOL, K(dct_scaling), "true", 0, 0, 0,
     "decode JPEGs at least twice the resized size at 1/2, 1/4 or 1/8 (faster, not bit-exact "
     "with PIL)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL},
};

static int parse_filter(const char *name, int *filter)
{
    if (!strcmp(name, "bilinear"))
        *filter = LDM_RESAMPLE_BILINEAR;
    else if (!strcmp(name, "bicubic"))
        *filter = LDM_RESAMPLE_BICUBIC;
    else if (!strcmp(name, "lanczos"))
        *filter = LDM_RESAMPLE_LANCZOS;
    else
        return ldm_fail(LDM_ECONFIG, "interpolation: '%s' is not bilinear, bicubic or lanczos",
                        name);
    return 0;
}

/* Everything the threads read and never change. */
static int setup_prep(struct loader *L, const struct loaderd_cfg *cfg)
{
    struct ldm_prep_shared *p = &L->prep;
    int rc = parse_filter(cfg->interpolation, &p->tp.filter);
    /* the VAE halves the side 3 times: pixel sides must be multiples of 8 */
    if (!rc && cfg->resolution % 8)
        rc = ldm_fail(LDM_ECONFIG, "resolution: %lld is not a multiple of 8 (the VAE's factor)",
                      (long long)cfg->resolution);
    if (!rc && cfg->buckets && (cfg->bucket_step % 8 || cfg->bucket_min_reso % 8))
        rc = ldm_fail(LDM_ECONFIG, "bucket_step %lld / bucket_min_reso %lld: each must be a "
                      "multiple of 8 (the VAE's factor)", (long long)cfg->bucket_step,
                      (long long)cfg->bucket_min_reso);
    p->seed = (uint64_t)cfg->seed;
    p->tp.resolution = (int)cfg->resolution;
    p->tp.crop = cfg->center_crop ? LDM_CROP_CENTER : LDM_CROP_RANDOM;
    p->tp.dct_scaling = cfg->dct_scaling;
    p->random_flip = cfg->random_flip;
    p->cap = (struct ldm_caption_opts){cfg->caption_prefix, cfg->shuffle_caption,
                                       (int)cfg->keep_tokens, cfg->caption_dropout};
    p->fields = (struct ldm_fields_opts){cfg->caption_key, cfg->cond_ext};
    p->dec.max_pixels = (int64_t)cfg->max_pixels;
    p->dec.max_bytes = cfg->max_member;
    if (!rc && cfg->buckets) {
        uint64_t area = cfg->bucket_max_area ? cfg->bucket_max_area
                                             : (uint64_t)(cfg->resolution * cfg->resolution);
        rc = ldm_buckets_make(area, (int)cfg->bucket_min_reso, (int)cfg->bucket_max_reso,
                              (int)cfg->bucket_step, &p->buckets);
    }
    if (!rc && cfg->tokenizer)
        rc = ldm_tokenizer_load(cfg->tokenizer, (int)cfg->max_length, &p->tok);
    if (!rc && cfg->tokenizer_2)
        rc = ldm_tokenizer_load(cfg->tokenizer_2, (int)cfg->max_length, &p->tok2);
    if (!rc && !cfg->tokenizer)
        LOG_WARN("no tokenizer set: samples carry captions without token ids", "daemon=%s",
                 ldm_daemon_name(L->d));
    return rc ? ldm_fail(LDM_ECONFIG, "%s", ldm_errmsg()) : 0;
}

static void setup_source_opts(struct loader *L, const struct loaderd_cfg *cfg)
{
    static const char *const base[] = {"jpg", "jpeg", "png", "webp", "txt", "json"};
    int n = 0;
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        L->want[n++] = base[i];
    if (cfg->cond_ext)
        L->want[n++] = cfg->cond_ext;
    L->want[n] = NULL;
    L->src_opts.want = L->want;
    L->src_opts.max_member_bytes = cfg->max_member;
}

static int setup_endpoints(struct loader *L, const struct loaderd_cfg *cfg)
{
    const char *rd = ldm_daemon_run_dir(L->d);
    int rc = 0;
    if (cfg->leases)
        snprintf(L->leases, sizeof L->leases, "%s", cfg->leases);
    else
        rc = ldm_rundir_endpoint(L->leases, sizeof L->leases, rd, "encoderd", ".leases");
    if (!rc && cfg->samples)
        snprintf(L->samples, sizeof L->samples, "%s", cfg->samples);
    else if (!rc)
        rc = ldm_rundir_endpoint(L->samples, sizeof L->samples, rd, "encoderd", ".samples");
    if (!rc && cfg->server_key)
        rc = ldm_public_key_arg(cfg->server_key, L->server_public);
    return rc ? ldm_fail(LDM_ECONFIG, "%s", ldm_errmsg()) : 0;
}

static void setup_counters(struct loader *L)
{
    struct ldm_daemon *d = L->d;
    struct loader_counters *c = &L->c;
    c->sent = ldm_daemon_counter(d, "samples_sent");
    c->tombstones = ldm_daemon_counter(d, "samples_rejected");
    c->skipped = ldm_daemon_counter(d, "samples_skipped");
    c->bytes = ldm_daemon_counter(d, "bytes_read");
    c->shards_done = ldm_daemon_counter(d, "shards_done");
    c->shards_failed = ldm_daemon_counter(d, "shards_failed");
    c->leases_lost = ldm_daemon_counter(d, "leases_lost");
    c->lease_errors = ldm_daemon_counter(d, "lease_errors");
    for (int r = 1; r < LDM_PREP_REASON_COUNT; r++) {
        char name[64];
        snprintf(name, sizeof name, "rejected_%s", ldm_prep_reason_name(r));
        c->rejected[r] = ldm_daemon_counter(d, name);
    }
}

static void loaderd_stop(struct ldm_daemon *d)
{
    struct loader *L = ldm_daemon_ctx(d);
    loader_workers_stop(L);
    ldm_tokenizer_free(&L->prep.tok);
    ldm_tokenizer_free(&L->prep.tok2);
    ldm_buckets_free(&L->prep.buckets);
}

static int loaderd_start(struct ldm_daemon *d)
{
    struct loader *L = ldm_daemon_ctx(d);
    const struct loaderd_cfg *cfg = ldm_daemon_cfg(d);
    L->d = d;
    L->cfg = cfg;
    /* Image buffers of a few MB come and go with every sample: keep them in
     * the heap instead of a fresh mmap (page faults, zeroing) each time. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    int rc = setup_endpoints(L, cfg);
    if (!rc)
        rc = setup_prep(L, cfg);
    if (!rc) {
        setup_source_opts(L, cfg);
        setup_counters(L);
        rc = loader_workers_start(L, (int)cfg->threads);
    }
    if (rc)
        loaderd_stop(d); /* start must release what it made */
    else
        LOG_INFO("loading", "leases=%s samples=%s threads=%d", L->leases, L->samples,
                 (int)cfg->threads);
    return rc;
}

static void loaderd_status(struct ldm_daemon *d, json_t *reply)
{
    struct loader *L = ldm_daemon_ctx(d);
    json_t *threads = json_array();
    for (int i = 0; i < L->nworkers; i++) {
        struct loader_worker *w = &L->workers[i];
        pthread_mutex_lock(&w->lock);
        json_array_append_new(threads, json_pack("{s:s,s:I}", "shard", w->shard, "next",
                                                 (json_int_t)w->next));
        pthread_mutex_unlock(&w->lock);
    }
    json_object_set_new(reply, "threads", threads);
    json_object_set_new(reply, "finished", json_boolean(L->finished));
    json_object_set_new(reply, "leases", json_string(L->leases));
}

static void loaderd_pause(struct ldm_daemon *d, int paused)
{
    struct loader *L = ldm_daemon_ctx(d);
    L->paused = paused;
}

static const struct ldm_daemon_ops ops = {
    .name = "loaderd",
    .summary = "loaderd reads shards, decodes, crops, buckets and tokenizes samples, and "
               "pushes them to encoderd.",
    .keys = keys,
    .cfg_size = sizeof(struct loaderd_cfg),
    .start = loaderd_start,
    .status = loaderd_status,
    .pause = loaderd_pause,
    .stop = loaderd_stop,
};

int main(int argc, char **argv)
{
    static struct loader L;
    return ldm_daemon_main(&ops, &L, argc, argv);
}

/* leasesink.c — a minimal encoder stand-in for loader tests: it hands out
 * shard leases (proto/leases.md) from an in-memory ledger and receives the
 * samples, validating each and writing one line per sample to --out:
 *   SHARD <TAB> INDEX <TAB> KEY <TAB> ok|dup|tomb:REASON <TAB> HxW <TAB> TOKENS
 * It exits 0 once every shard is done (or failed) and no sample has come for
 * --quiet-ms, printing a JSON summary on stdout.
 *
 * usage: leasesink --leases EP --samples EP --shards FILE --out FILE
 *                  [--timeout-ms 2000] [--quiet-ms 500] [--max-s 120] [--delay-us 0]
 * --delay-us makes the sink slow (a busy encoder), so senders meet back-pressure.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "err.h"
#include "json.h"
#include "proto/sample_check.h"
#include "zsock.h"

enum { PENDING, LEASED, DONE, FAILED };

struct shard {
    char *url;
    int state;
    uint64_t lease;
    char holder[128];
    double deadline;
    uint8_t *seen; /* per index: processed */
    size_t nseen;
    int64_t done_count; /* the holder said done with this many samples; -1 = not yet */
};

struct sink {
    struct shard *s;
    size_t n;
    uint64_t next_lease;
    int64_t timeout_ms;
    FILE *out;
    uint64_t samples, dups, tombs, bad, leases, lost, releases;
    long delay_us;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t first_unseen(const struct shard *sh)
{
    uint64_t i = 0;
    while (i < sh->nseen && sh->seen[i])
        i++;
    return i;
}

static struct shard *find_lease(struct sink *k, uint64_t lease)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->s[i].state == LEASED && k->s[i].lease == lease)
            return &k->s[i];
    return NULL;
}

static json_t *grant(struct sink *k, const char *loader)
{
    double t = now_s();
    int open = 0;
    for (size_t i = 0; i < k->n; i++) {
        struct shard *sh = &k->s[i];
        if (sh->state == LEASED && sh->deadline < t)
            sh->state = PENDING; /* expired */
        if (sh->state == LEASED)
            open = 1;
        if (sh->state != PENDING)
            continue;
        sh->state = LEASED;
        sh->done_count = -1;
        sh->lease = ++k->next_lease;
        sh->deadline = t + (double)k->timeout_ms / 1000;
        snprintf(sh->holder, sizeof sh->holder, "%s", loader);
        k->leases++;
        return json_pack("{s:b,s:s,s:I,s:I,s:i,s:I}", "ok", 1, "shard", sh->url, "lease",
                         (json_int_t)sh->lease, "skip", (json_int_t)first_unseen(sh), "epoch", 0,
                         "timeout_ms", (json_int_t)k->timeout_ms);
    }
    if (open)
        return json_pack("{s:b,s:n,s:i}", "ok", 1, "shard", "retry_ms", 200);
    return json_pack("{s:b,s:n,s:b}", "ok", 1, "shard", "finished", 1);
}

/* A shard whose holder said done becomes DONE when its samples are all in. */
static void settle_done(struct shard *sh)
{
    if (sh->state == LEASED && sh->done_count >= 0 && first_unseen(sh) >= (uint64_t)sh->done_count)
        sh->state = DONE;
}

static json_t *answer(struct sink *k, const json_t *req)
{
    const char *op = NULL, *loader = NULL;
    int64_t lease = 0;
    ldm_json_get_str(req, "op", &op, "");
    ldm_json_get_str(req, "loader", &loader, "?");
    ldm_json_get_int(req, "lease", &lease, 0);
    if (!strcmp(op, "lease"))
        return grant(k, loader);
    struct shard *sh = find_lease(k, (uint64_t)lease);
    if (!sh || now_s() > sh->deadline) {
        k->lost++;
        return json_pack("{s:b,s:b,s:s}", "ok", 0, "lost", 1, "error", "lease not held");
    }
    if (!strcmp(op, "renew"))
        sh->deadline = now_s() + (double)k->timeout_ms / 1000;
    else if (!strcmp(op, "done")) {
        /* done only once every sample before `count` is here: samples may
         * still be on their way (or lost with a loader killed right now) */
        int64_t count = 0;
        ldm_json_get_int(req, "count", &count, 0);
        sh->done_count = count;
        sh->deadline = now_s() + (double)k->timeout_ms / 1000;
        settle_done(sh);
    }
    else if (!strcmp(op, "release")) {
        sh->state = PENDING;
        k->releases++;
    } else if (!strcmp(op, "fail"))
        sh->state = FAILED;
    else
        return json_pack("{s:b,s:s}", "ok", 0, "error", "unknown op");
    return json_pack("{s:b,s:I}", "ok", 1, "timeout_ms", (json_int_t)k->timeout_ms);
}

static struct shard *shard_of(struct sink *k, const Ldmpipe__Sample *s)
{
    for (size_t i = 0; i < k->n; i++)
        if (strlen(k->s[i].url) == s->shard.len && !memcmp(k->s[i].url, s->shard.data, s->shard.len))
            return &k->s[i];
    return NULL;
}

/* Record that `index` of sh was processed; 1 when it was already. */
static int mark(struct shard *sh, uint64_t index)
{
    if (index >= sh->nseen) {
        size_t n = (size_t)index * 2 + 16;
        sh->seen = realloc(sh->seen, n);
        memset(sh->seen + sh->nseen, 0, n - sh->nseen);
        sh->nseen = n;
    }
    int dup = sh->seen[index];
    sh->seen[index] = 1;
    return dup;
}

static void receive(struct sink *k, void *pull)
{
    zmq_msg_t f[4];
    size_t len[4] = {0};
    int n = 0, more = 1;
    while (more) {
        zmq_msg_init(&f[n < 4 ? n : 3]);
        zmq_msg_recv(&f[n < 4 ? n : 3], pull, 0);
        more = zmq_msg_more(&f[n < 4 ? n : 3]);
        if (n < 4)
            len[n] = zmq_msg_size(&f[n]);
        n++;
    }
    Ldmpipe__Sample *s = NULL;
    if (ldm_sample_decode(zmq_msg_data(&f[0]), len, n, NULL, &s, NULL) != 0) {
        fprintf(stderr, "leasesink: bad sample: %s\n", ldm_errmsg());
        k->bad++;
    } else {
        struct shard *sh = shard_of(k, s);
        int dup = sh ? mark(sh, s->index) : 0;
        if (sh)
            settle_done(sh);
        k->samples++;
        k->dups += (uint64_t)dup;
        k->tombs += s->rejected.len > 0;
        fprintf(k->out, "%.*s\t%" PRIu64 "\t%.*s\t%s%.*s\t%ux%u\t%zu\n", (int)s->shard.len,
                s->shard.data, s->index, (int)s->key.len, s->key.data,
                dup ? "dup" : s->rejected.len ? "tomb:" : "ok", (int)s->rejected.len,
                s->rejected.data, s->image ? s->image->height : 0, s->image ? s->image->width : 0,
                s->n_input_ids);
        ldm_sample_free(s);
    }
    for (int i = 0; i < (n < 4 ? n : 4); i++)
        zmq_msg_close(&f[i]);
}

static int all_settled(const struct sink *k)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->s[i].state != DONE && k->s[i].state != FAILED)
            return 0;
    return 1;
}

static int load_shards(struct sink *k, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!*line)
            continue;
        k->s = realloc(k->s, (k->n + 1) * sizeof *k->s);
        k->s[k->n++] = (struct shard){.url = strdup(line)};
    }
    fclose(f);
    return k->n ? 0 : -1;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return def;
}

static void summary(const struct sink *k)
{
    size_t done = 0, failed = 0;
    for (size_t i = 0; i < k->n; i++) {
        done += k->s[i].state == DONE;
        failed += k->s[i].state == FAILED;
    }
    printf("{\"shards\":%zu,\"done\":%zu,\"failed\":%zu,\"samples\":%" PRIu64
           ",\"duplicates\":%" PRIu64 ",\"tombstones\":%" PRIu64 ",\"bad\":%" PRIu64
           ",\"leases\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"releases\":%" PRIu64 "}\n",
           k->n, done, failed, k->samples, k->dups, k->tombs, k->bad, k->leases, k->lost,
           k->releases);
}

static int serve(struct sink *k, void *rep, void *pull, double quiet_s, double max_s)
{
    double start = now_s(), last = start;
    while (now_s() - start < max_s) {
        zmq_pollitem_t it[2] = {{rep, 0, ZMQ_POLLIN, 0}, {pull, 0, ZMQ_POLLIN, 0}};
        zmq_poll(it, 2, 50);
        if (it[0].revents & ZMQ_POLLIN) {
            json_t *req = NULL, *rep_msg;
            rep_msg = ldm_zrecv_json(rep, 1 << 20, &req) ? json_pack("{s:b,s:s}", "ok", 0,
                                                                     "error", ldm_errmsg())
                                                         : answer(k, req);
            ldm_zsend_json(rep, rep_msg);
            json_decref(req);
            json_decref(rep_msg);
        }
        if (it[1].revents & ZMQ_POLLIN) {
            receive(k, pull);
            if (k->delay_us > 0)
                usleep((useconds_t)k->delay_us);
            last = now_s();
        }
        if (all_settled(k) && now_s() - last > quiet_s)
            return 0;
    }
    fprintf(stderr, "leasesink: gave up after %.0f s\n", max_s);
    return 1;
}

int main(int argc, char **argv)
{
    struct sink k = {0};
    const char *leases = arg(argc, argv, "--leases", NULL), *samples = arg(argc, argv, "--samples", NULL);
    const char *shards = arg(argc, argv, "--shards", NULL), *out = arg(argc, argv, "--out", NULL);
    if (!leases || !samples || !shards || !out || load_shards(&k, shards) != 0) {
        fprintf(stderr, "usage: leasesink --leases EP --samples EP --shards FILE --out FILE "
                        "[--timeout-ms MS] [--quiet-ms MS] [--max-s S]\n");
        return 2;
    }
    k.timeout_ms = atol(arg(argc, argv, "--timeout-ms", "2000"));
    k.delay_us = atol(arg(argc, argv, "--delay-us", "0"));
    k.out = fopen(out, "w");
    void *zctx = zmq_ctx_new(), *rep = zmq_socket(zctx, ZMQ_REP), *pull = zmq_socket(zctx, ZMQ_PULL);
    int linger = 0, hwm = 16;
    zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(rep, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(pull, ZMQ_LINGER, &linger, sizeof linger);
    if (!k.out || ldm_zbind(rep, leases, NULL) || ldm_zbind(pull, samples, NULL)) {
        fprintf(stderr, "leasesink: %s\n", ldm_errmsg());
        return 2;
    }
    int rc = serve(&k, rep, pull, atof(arg(argc, argv, "--quiet-ms", "500")) / 1000,
                   atof(arg(argc, argv, "--max-s", "120")));
    summary(&k);
    fclose(k.out);
    zmq_close(rep);
    zmq_close(pull);
    zmq_ctx_term(zctx);
    ldm_ipc_unlink(leases);
    ldm_ipc_unlink(samples);
    for (size_t i = 0; i < k.n; i++) {
        free(k.s[i].url);
        free(k.s[i].seen);
    }
    free(k.s);
    return rc;
}

/* rdv.c — the rendezvous of trainer ranks: rank 0 serves a ROUTER, collects
 * every rank's registration, refuses the ones that do not belong, then hands
 * out the table of data endpoints and its blob and waits for every rank to
 * confirm. The protocol is in rdv.h. */
#include "rdv.h"
#include "err.h"
#include "json.h"
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define RESEND_MS 1000           /* a rank resends its registration this often */
#define RETRY_MS 20              /* ... or this soon while not connected to rank 0 */
#define MSG_MAX ((size_t)64 << 20) /* the largest message either side accepts */
#define ID_MAX 255               /* ZMQ routing ids are 1..255 bytes */

struct server {
    void *sock;
    const struct ldm_rdv_opts *o;
    int world;
    const char *run;
    struct ldm_rdv_table *t;
    unsigned char (*ids)[ID_MAX]; /* [world] the routing id each rank registered from */
    size_t *idlen;                /* [world] 0: not registered */
    char *acked;                  /* [world] */
    int complete;                 /* all registered; the table went out */
    char *table_text;             /* the table message, once complete */
    char note[512];               /* the last refusal, for the timeout message */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct ldm_rdv_table *ldm_rdv_table_new(int world)
{
    if (world < 1)
        return NULL;
    struct ldm_rdv_table *t =
        calloc(1, sizeof(struct ldm_rdv_table) + (size_t)world * sizeof(struct ldm_rdv_entry));
    if (t)
        t->world = world;
    return t;
}

void ldm_rdv_table_free(struct ldm_rdv_table **t)
{
    if (t && *t) {
        free(*t);
        *t = NULL;
    }
}

/* Ranks in 0..world-1 whose flag is 0, as "2,3,7" (cut short with "..."). */
static void list_missing(const size_t *flags, const char *cflags, int world, char *buf,
                         size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int r = 0; r < world; r++) {
        if (flags ? flags[r] != 0 : cflags[r] != 0)
            continue;
        if (len + 16 >= size) {
            snprintf(buf + len, size - len, "...");
            return;
        }
        len += (size_t)snprintf(buf + len, size - len, "%s%d", len ? "," : "", r);
    }
}

static void hex_encode(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hex_decode(const char *s, unsigned char *out, size_t max, size_t *n)
{
    size_t len = strlen(s);
    if (len % 2 || len / 2 > max)
        return ldm_fail(LDM_EFORMAT, "rendezvous table: blob of %zu hex digits (at most %zu bytes)",
                        len, max);
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_val(s[2 * i]), lo = hex_val(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return ldm_fail(LDM_EFORMAT, "rendezvous table: blob is not hexadecimal");
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    *n = len / 2;
    return 0;
}

/* Send [id][text] on the ROUTER; a peer that has gone is logged, not fatal. */
static void srv_send(struct server *s, const unsigned char *id, size_t idlen, const char *text)
{
    if (zmq_send(s->sock, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(s->sock, text, strlen(text), ZMQ_DONTWAIT) < 0)
        LOG_WARN("rendezvous reply not sent", "endpoint=%s error=%s", s->o->endpoint,
                 zmq_strerror(zmq_errno()));
}

static void srv_send_json(struct server *s, const unsigned char *id, size_t idlen, json_t *v)
{
    char *text = v ? ldm_json_dump(v) : NULL;
    json_decref(v);
    if (text)
        srv_send(s, id, idlen, text);
    free(text);
}

static void srv_refuse(struct server *s, const unsigned char *id, size_t idlen, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
static void srv_refuse(struct server *s, const unsigned char *id, size_t idlen, const char *fmt,
                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->note, sizeof s->note, fmt, ap);
    va_end(ap);
    LOG_WARN("rendezvous refused a registration", "endpoint=%s why=%s", s->o->endpoint, s->note);
    srv_send_json(s, id, idlen, json_pack("{s:s}", "error", s->note));
}

/* The table message, built once every rank is in. */
static int srv_build_table(struct server *s)
{
    json_t *arr = json_array();
    for (int r = 0; r < s->world; r++)
        json_array_append_new(arr, json_pack("{s:s,s:s}", "endpoint", s->t->ent[r].endpoint,
                                             "key", s->t->ent[r].key));
    char *hex = malloc(2 * s->t->blob_len + 1);
    if (!hex) {
        json_decref(arr);
        return ldm_fail(LDM_ENOMEM, "rendezvous: table for %d ranks", s->world);
    }
    hex_encode(s->t->blob, s->t->blob_len, hex);
    json_t *v = json_pack("{s:o,s:i,s:s}", "table", arr, "world", s->world, "blob", hex);
    free(hex);
    s->table_text = v ? ldm_json_dump(v) : NULL;
    json_decref(v);
    if (!s->table_text)
        return ldm_fail(LDM_ENOMEM, "rendezvous: table for %d ranks", s->world);
    return 0;
}

/* Once every rank is in: build the table and send it to every other rank. */
static int srv_complete(struct server *s)
{
    int rc = srv_build_table(s);
    if (rc)
        return rc;
    s->complete = 1;
    LOG_INFO("rendezvous complete", "endpoint=%s world=%d", s->o->endpoint, s->world);
    for (int r = 1; r < s->world; r++)
        srv_send(s, s->ids[r], s->idlen[r], s->table_text);
    return 0;
}

/* Check a registration's fields; 0, or a refusal already sent. */
static int srv_check(struct server *s, const unsigned char *id, size_t idlen, json_t *req,
                     int64_t *rank, const char **ep, const char **key)
{
    int64_t world;
    const char *run;
    if (ldm_json_get_int(req, "rank", rank, -1) || ldm_json_get_int(req, "world", &world, -1) ||
        ldm_json_get_str(req, "run", &run, "") || ldm_json_get_str(req, "endpoint", ep, "") ||
        ldm_json_get_str(req, "key", key, "")) {
        srv_refuse(s, id, idlen, "malformed registration: %s", ldm_errmsg());
        return -1;
    }
    long long rk = (long long)*rank;
    if (world != s->world)
        srv_refuse(s, id, idlen, "rank %lld: world size %lld differs from rank 0's %d", rk,
                   (long long)world, s->world);
    else if (*rank == 0)
        srv_refuse(s, id, idlen, "rank 0: a second process claims rank 0");
    else if (*rank < 0 || *rank >= s->world)
        srv_refuse(s, id, idlen, "rank %lld is outside 0..%d", rk, s->world - 1);
    else if (strcmp(run, s->run) != 0)
        srv_refuse(s, id, idlen, "rank %lld: run id '%s' differs from rank 0's '%s'", rk, run,
                   s->run);
    else if (!**ep || strlen(*ep) >= LDM_RDV_ENDPOINT_MAX)
        srv_refuse(s, id, idlen, "rank %lld: data endpoint is empty or over %d bytes", rk,
                   LDM_RDV_ENDPOINT_MAX - 1);
    else if (**key && !ldm_z85_key_valid(*key))
        srv_refuse(s, id, idlen, "rank %lld: key '%s' is not a CURVE public key", rk, *key);
    else if (s->idlen[*rank] &&
             (s->idlen[*rank] != idlen || memcmp(s->ids[*rank], id, idlen) != 0))
        srv_refuse(s, id, idlen, "rank %lld is already registered by another process", rk);
    else
        return 0;
    return -1;
}

static int srv_register(struct server *s, const unsigned char *id, size_t idlen, json_t *req)
{
    int64_t rank;
    const char *ep, *key;
    if (srv_check(s, id, idlen, req, &rank, &ep, &key))
        return 0;
    if (s->complete) { /* a resend that crossed the table: send it again */
        srv_send(s, id, idlen, s->table_text);
        return 0;
    }
    if (!s->idlen[rank]) {
        memcpy(s->ids[rank], id, idlen);
        s->idlen[rank] = idlen;
        snprintf(s->t->ent[rank].endpoint, LDM_RDV_ENDPOINT_MAX, "%s", ep);
        snprintf(s->t->ent[rank].key, sizeof s->t->ent[rank].key, "%s", key);
        LOG_DEBUG("rank registered", "rank=%d endpoint=%s", (int)rank, ep);
    }
    json_t *missing = json_array();
    for (int r = 0; r < s->world; r++)
        if (!s->idlen[r])
            json_array_append_new(missing, json_integer(r));
    if (json_array_size(missing) == 0) {
        json_decref(missing);
        return srv_complete(s);
    }
    srv_send_json(s, id, idlen, json_pack("{s:b,s:o}", "ok", 1, "missing", missing));
    return 0;
}

/* Receive one [id][json] message and act on it. */
static int srv_handle(struct server *s)
{
    unsigned char id[ID_MAX];
    int idlen = zmq_recv(s->sock, id, sizeof id, 0);
    if (idlen < 0)
        return ldm_fail(LDM_EZMQ, "rendezvous at %s: receive: %s", s->o->endpoint,
                        zmq_strerror(zmq_errno()));
    json_t *req = NULL;
    int rc = ldm_zrecv_json(s->sock, MSG_MAX, &req);
    if (rc) {
        LOG_WARN("rendezvous message skipped", "endpoint=%s error=%s", s->o->endpoint,
                 ldm_errmsg());
        return 0;
    }
    const char *op = NULL;
    ldm_json_get_str(req, "op", &op, "");
    int64_t rank = -1;
    if (op && !strcmp(op, "register")) {
        rc = srv_register(s, id, (size_t)idlen, req);
    } else if (op && !strcmp(op, "ack") && !ldm_json_get_int(req, "rank", &rank, -1) &&
               rank > 0 && rank < s->world && s->idlen[rank] == (size_t)idlen &&
               !memcmp(s->ids[rank], id, (size_t)idlen)) {
        s->acked[rank] = 1;
    } else {
        LOG_WARN("rendezvous message skipped", "endpoint=%s op=%s", s->o->endpoint,
                 op ? op : "");
    }
    json_decref(req);
    return rc;
}

static int all_acked(const struct server *s)
{
    for (int r = 1; r < s->world; r++)
        if (!s->acked[r])
            return 0;
    return 1;
}

static int srv_timeout(struct server *s, int timeout_ms)
{
    char list[256];
    if (!s->complete) {
        list_missing(s->idlen, NULL, s->world, list, sizeof list);
        return ldm_fail(LDM_ETIMEOUT,
                        "rendezvous at %s: ranks %s of %d still missing after %d ms%s%s",
                        s->o->endpoint, list, s->world, timeout_ms,
                        s->note[0] ? "; last refusal: " : "", s->note);
    }
    s->acked[0] = 1;
    list_missing(NULL, s->acked, s->world, list, sizeof list);
    return ldm_fail(LDM_ETIMEOUT, "rendezvous at %s: ranks %s did not confirm the table within %d ms",
                    s->o->endpoint, list, timeout_ms);
}

static int srv_loop(struct server *s, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (!s->complete || !all_acked(s)) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return srv_timeout(s, timeout_ms);
        zmq_pollitem_t it = {s->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, (long)left);
        if (n < 0)
            return ldm_fail(LDM_EZMQ, "rendezvous at %s: poll: %s", s->o->endpoint,
                            zmq_strerror(zmq_errno()));
        if (n > 0) {
            int rc = srv_handle(s);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int srv_open(void *zctx, struct server *s)
{
    s->sock = zmq_socket(zctx, ZMQ_ROUTER);
    if (!s->sock)
        return ldm_fail(LDM_EZMQ, "rendezvous: socket: %s", zmq_strerror(zmq_errno()));
    int one = 1, linger = 1000;
    zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(s->sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger);
    s->ids = calloc((size_t)s->world, sizeof *s->ids);
    s->idlen = calloc((size_t)s->world, sizeof *s->idlen);
    s->acked = calloc((size_t)s->world, 1);
    if (!s->ids || !s->idlen || !s->acked)
        return ldm_fail(LDM_ENOMEM, "rendezvous: state for %d ranks", s->world);
    s->idlen[0] = 1; /* rank 0 is in from the start */
    s->acked[0] = 1;
    return ldm_zbind(s->sock, s->o->endpoint, s->o->sec);
}

static void srv_close(struct server *s)
{
    if (s->sock) {
        zmq_close(s->sock);
        ldm_ipc_unlink(s->o->endpoint);
    }
    free(s->ids);
    free(s->idlen);
    free(s->acked);
    free(s->table_text);
}

static int serve(void *zctx, const struct ldm_rdv_opts *o, struct ldm_rdv_table *t, int timeout_ms)
{
    struct server s = {.o = o, .world = t->world, .run = o->run_id ? o->run_id : "", .t = t};
    int rc = srv_open(zctx, &s);
    if (!rc) {
        LOG_INFO("rendezvous waiting", "endpoint=%s world=%d", o->endpoint, t->world);
        rc = srv_loop(&s, timeout_ms);
    }
    srv_close(&s);
    return rc;
}

/* ---- the other ranks ---------------------------------------------------------------- */

struct client {
    void *sock;
    const struct ldm_rdv_opts *o;
    int rank, world;
    const char *endpoint;
    char missing[256]; /* what rank 0 last said; "" before it answered */
    int heard;
};

/* Read a table message into *out (checked against this rank's view). */
static int cli_table(struct client *c, json_t *msg, struct ldm_rdv_table **out)
{
    json_t *arr = json_object_get(msg, "table");
    int64_t world;
    const char *blob;
    int rc = ldm_json_get_int(msg, "world", &world, -1);
    if (!rc)
        rc = ldm_json_get_str(msg, "blob", &blob, "");
    if (rc)
        return rc;
    if (world != c->world || !json_is_array(arr) || json_array_size(arr) != (size_t)c->world)
        return ldm_fail(LDM_EFORMAT, "rendezvous at %s: table is not for %d ranks",
                        c->o->endpoint, c->world);
    struct ldm_rdv_table *t = ldm_rdv_table_new(c->world);
    if (!t)
        return ldm_fail(LDM_ENOMEM, "rendezvous: table for %d ranks", c->world);
    rc = hex_decode(blob, t->blob, sizeof t->blob, &t->blob_len);
    for (int r = 0; !rc && r < c->world; r++) {
        const char *ep = NULL, *key = NULL;
        json_t *e = json_array_get(arr, (size_t)r);
        rc = ldm_json_get_str(e, "endpoint", &ep, NULL);
        if (!rc)
            rc = ldm_json_get_str(e, "key", &key, "");
        if (!rc && (!ep || !*ep || strlen(ep) >= LDM_RDV_ENDPOINT_MAX ||
                    strlen(key) > LDM_Z85_KEY_LEN))
            rc = ldm_fail(LDM_EFORMAT, "rendezvous table: entry of rank %d is malformed", r);
        if (!rc) {
            snprintf(t->ent[r].endpoint, sizeof t->ent[r].endpoint, "%s", ep);
            snprintf(t->ent[r].key, sizeof t->ent[r].key, "%s", key);
        }
    }
    if (!rc && strcmp(t->ent[c->rank].endpoint, c->endpoint) != 0)
        rc = ldm_fail(LDM_EFORMAT, "rendezvous table: rank %d's endpoint is %s, not %s", c->rank,
                      t->ent[c->rank].endpoint, c->endpoint);
    if (rc)
        ldm_rdv_table_free(&t);
    *out = t;
    return rc;
}

/* One answer from rank 0: 1 when the table came (in *out), 0 to keep waiting. */
static int cli_answer(struct client *c, struct ldm_rdv_table **out)
{
    json_t *msg = NULL;
    int rc = ldm_zrecv_json(c->sock, MSG_MAX, &msg);
    if (rc)
        return rc;
    const char *err = NULL;
    json_t *missing = json_object_get(msg, "missing");
    c->heard = 1;
    if (!ldm_json_get_str(msg, "error", &err, NULL) && err) {
        rc = ldm_fail(LDM_ECONFIG, "rendezvous at %s: rank 0 refused rank %d: %s",
                      c->o->endpoint, c->rank, err);
    } else if (json_object_get(msg, "table")) {
        rc = cli_table(c, msg, out);
        if (!rc) {
            char ack[64];
            snprintf(ack, sizeof ack, "{\"op\":\"ack\",\"rank\":%d}", c->rank);
            if (zmq_send(c->sock, ack, strlen(ack), 0) < 0)
                rc = ldm_fail(LDM_EZMQ, "rendezvous at %s: send: %s", c->o->endpoint,
                              zmq_strerror(zmq_errno()));
        }
        rc = rc ? rc : 1;
    } else if (json_is_array(missing)) {
        size_t len = 0;
        c->missing[0] = '\0';
        for (size_t i = 0; i < json_array_size(missing) && len + 16 < sizeof c->missing; i++)
            len += (size_t)snprintf(c->missing + len, sizeof c->missing - len, "%s%lld",
                                    i ? "," : "",
                                    (long long)json_integer_value(json_array_get(missing, i)));
    }
    json_decref(msg);
    return rc;
}

static int cli_loop(struct client *c, const char *reg, int timeout_ms, struct ldm_rdv_table **out)
{
    int64_t deadline = now_ms() + timeout_ms, next_send = 0;
    for (;;) {
        int64_t t = now_ms();
        if (t >= deadline) {
            if (!c->heard)
                return ldm_fail(LDM_ETIMEOUT, "rendezvous at %s: rank %d of %d: rank 0 never "
                                "answered within %d ms", c->o->endpoint, c->rank, c->world,
                                timeout_ms);
            return ldm_fail(LDM_ETIMEOUT, "rendezvous at %s: rank %d of %d: no table within %d "
                            "ms; rank 0 last reported ranks %s missing", c->o->endpoint, c->rank,
                            c->world, timeout_ms, c->missing);
        }
        if (t >= next_send) { /* EAGAIN: not connected yet (ZMQ_IMMEDIATE), try again soon */
            int sent = zmq_send(c->sock, reg, strlen(reg), ZMQ_DONTWAIT) >= 0;
            next_send = t + (sent ? RESEND_MS : RETRY_MS);
        }
        int64_t until = next_send < deadline ? next_send : deadline;
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, (long)(until - t));
        if (n < 0)
            return ldm_fail(LDM_EZMQ, "rendezvous at %s: poll: %s", c->o->endpoint,
                            zmq_strerror(zmq_errno()));
        if (n > 0) {
            int rc = cli_answer(c, out);
            if (rc)
                return rc > 0 ? 0 : rc;
        }
    }
}

/* A routing id no other process or thread uses: rank, pid, a counter, the time. */
static void make_id(int rank, char *id, size_t size)
{
    static atomic_uint counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(id, size, "rank%d-%ld-%u-%lld%09ld", rank, (long)getpid(),
             atomic_fetch_add(&counter, 1), (long long)ts.tv_sec, (long)ts.tv_nsec);
}

static int join(void *zctx, const struct ldm_rdv_opts *o, int rank, int world, const char *ep,
                const char *key, int timeout_ms, struct ldm_rdv_table **out)
{
    struct client c = {.o = o, .rank = rank, .world = world, .endpoint = ep};
    c.sock = zmq_socket(zctx, ZMQ_DEALER);
    if (!c.sock)
        return ldm_fail(LDM_EZMQ, "rendezvous: socket: %s", zmq_strerror(zmq_errno()));
    char id[128];
    make_id(rank, id, sizeof id);
    int one = 1, linger = 2000;
    zmq_setsockopt(c.sock, ZMQ_ROUTING_ID, id, strlen(id));
    zmq_setsockopt(c.sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(c.sock, ZMQ_LINGER, &linger, sizeof linger);
    int rc = ldm_zconnect(c.sock, o->endpoint, o->server_public, o->client);
    json_t *req = json_pack("{s:s,s:i,s:i,s:s,s:s,s:s}", "op", "register", "rank", rank, "world",
                            world, "run", o->run_id ? o->run_id : "", "endpoint", ep, "key", key);
    char *reg = req ? ldm_json_dump(req) : NULL;
    json_decref(req);
    if (!rc && !reg)
        rc = ldm_fail(LDM_ENOMEM, "rendezvous: registration");
    if (!rc)
        rc = cli_loop(&c, reg, timeout_ms, out);
    free(reg);
    zmq_close(c.sock); /* the ack still goes out: the linger keeps it */
    return rc;
}

static int check_args(const struct ldm_rdv_opts *o, int rank, int world, const char *ep,
                      const char *key, size_t blob_len)
{
    if (!o || !o->endpoint || !*o->endpoint)
        return ldm_fail(LDM_EINVAL, "rendezvous: no endpoint");
    if (world < 1 || rank < 0 || rank >= world)
        return ldm_fail(LDM_EINVAL, "rendezvous: rank %d of world %d", rank, world);
    if (!ep || !*ep || strlen(ep) >= LDM_RDV_ENDPOINT_MAX)
        return ldm_fail(LDM_EINVAL, "rendezvous: rank %d: data endpoint empty or over %d bytes",
                        rank, LDM_RDV_ENDPOINT_MAX - 1);
    if (*key && !ldm_z85_key_valid(key))
        return ldm_fail(LDM_EINVAL, "rendezvous: rank %d: data key is not a CURVE public key",
                        rank);
    if (o->run_id && strlen(o->run_id) >= LDM_RDV_RUN_MAX)
        return ldm_fail(LDM_EINVAL, "rendezvous: run id over %d bytes", LDM_RDV_RUN_MAX - 1);
    if (blob_len > LDM_RDV_BLOB_MAX || (rank != 0 && blob_len))
        return ldm_fail(LDM_EINVAL, "rendezvous: rank %d: blob of %zu bytes", rank, blob_len);
    return 0;
}

int ldm_rdv_run(void *zctx, const struct ldm_rdv_opts *o, int rank, int world,
                const char *data_endpoint, const char *data_key, const void *blob,
                size_t blob_len, struct ldm_rdv_table **out)
{
    *out = NULL;
    const char *key = data_key ? data_key : "";
    int rc = check_args(o, rank, world, data_endpoint, key, blob_len);
    if (rc)
        return rc;
    int timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 60000;
    if (rank != 0)
        return join(zctx, o, rank, world, data_endpoint, key, timeout_ms, out);
    struct ldm_rdv_table *t = ldm_rdv_table_new(world);
    if (!t)
        return ldm_fail(LDM_ENOMEM, "rendezvous: table for %d ranks", world);
    snprintf(t->ent[0].endpoint, sizeof t->ent[0].endpoint, "%s", data_endpoint);
    snprintf(t->ent[0].key, sizeof t->ent[0].key, "%s", key);
    if (blob_len)
        memcpy(t->blob, blob, blob_len);
    t->blob_len = blob_len;
    if (world > 1)
        rc = serve(zctx, o, t, timeout_ms);
    if (rc)
        ldm_rdv_table_free(&t);
    *out = t;
    return rc;
}

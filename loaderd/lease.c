/* lease.c — shard-lease requests over a REQ socket, reopened after a timeout. */
#include "lease.h"
#include "err.h"
#include "json.h"
#include "zsock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct ldm_lease_client {
    void *zctx, *sock;
    char endpoint[512], loader[128];
    char server_public[LDM_Z85_KEY_LEN + 1];
    struct ldm_keypair client;
    int has_client, timeout_ms;
    const atomic_int *cancel;
};

void ldm_lease_client_set_cancel(struct ldm_lease_client *c, const atomic_int *flag)
{
    c->cancel = flag;
}

/* Wait for the answer in slices, so a cancel is seen within 50 ms. */
static int wait_answer(struct ldm_lease_client *c, int cancellable)
{
    for (int waited = 0; waited < c->timeout_ms; waited += 50) {
        if (cancellable && c->cancel && *c->cancel)
            return 0;
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        int left = c->timeout_ms - waited;
        int n = zmq_poll(&it, 1, left < 50 ? left : 50);
        if (n != 0)
            return n;
    }
    return 0;
}

static int reopen(struct ldm_lease_client *c)
{
    if (c->sock)
        zmq_close(c->sock);
    c->sock = zmq_socket(c->zctx, ZMQ_REQ);
    if (!c->sock)
        return ldm_fail(LDM_EZMQ, "lease socket: %s", zmq_strerror(zmq_errno()));
    int linger = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    return ldm_zconnect(c->sock, c->endpoint, c->server_public[0] ? c->server_public : NULL,
                        c->has_client ? &c->client : NULL);
}

int ldm_lease_client_new(void *zctx, const char *endpoint, const char *server_public,
                         const struct ldm_keypair *client, const char *loader, int timeout_ms,
                         struct ldm_lease_client **out)
{
    struct ldm_lease_client *c = calloc(1, sizeof *c);
    if (!c)
        return ldm_fail(LDM_ENOMEM, "lease client: out of memory");
    c->zctx = zctx;
    c->timeout_ms = timeout_ms;
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    snprintf(c->loader, sizeof c->loader, "%s", loader);
    if (server_public)
        snprintf(c->server_public, sizeof c->server_public, "%s", server_public);
    if (client) {
        c->client = *client;
        c->has_client = 1;
    }
    int rc = reopen(c);
    if (rc) {
        ldm_lease_client_free(&c);
        return rc;
    }
    *out = c;
    return 0;
}

void ldm_lease_client_free(struct ldm_lease_client **c)
{
    if (!*c)
        return;
    if ((*c)->sock)
        zmq_close((*c)->sock);
    free(*c);
    *c = NULL;
}

/* Send `req` (consumed) and wait for the answer; an {"ok":false} answer
 * gives LDM_EDENIED with its error text. */
static int call(struct ldm_lease_client *c, json_t *req, json_t **reply, int cancellable)
{
    json_object_set_new(req, "loader", json_string(c->loader));
    int rc = ldm_zsend_json(c->sock, req);
    json_decref(req);
    if (rc)
        return rc;
    int n = wait_answer(c, cancellable);
    if (n <= 0) {
        int r2 = reopen(c);
        return r2 ? r2 : ldm_fail(LDM_ETIMEOUT, "no answer from %s within %d ms", c->endpoint,
                                  c->timeout_ms);
    }
    rc = ldm_zrecv_json(c->sock, 1 << 20, reply);
    if (rc)
        return rc;
    if (!json_is_true(json_object_get(*reply, "ok"))) {
        const char *e = json_string_value(json_object_get(*reply, "error"));
        rc = ldm_fail(LDM_EDENIED, "%s: %s", c->endpoint, e ? e : "refused");
        json_decref(*reply);
        *reply = NULL;
    }
    return rc;
}

static int parse_grant(const json_t *r, struct ldm_lease *l, enum ldm_lease_state *state)
{
    const char *shard = NULL;
    int64_t id, skip, epoch, timeout, retry;
    int finished;
    if (ldm_json_get_str(r, "shard", &shard, NULL) || ldm_json_get_int(r, "lease", &id, 0) ||
        ldm_json_get_int(r, "skip", &skip, 0) || ldm_json_get_int(r, "epoch", &epoch, 0) ||
        ldm_json_get_int(r, "timeout_ms", &timeout, 60000) ||
        ldm_json_get_int(r, "retry_ms", &retry, 1000) ||
        ldm_json_get_bool(r, "finished", &finished, 0))
        return ldm_fail(LDM_EFORMAT, "lease answer: %s", ldm_errmsg());
    memset(l, 0, sizeof *l);
    l->retry_ms = retry > 0 ? retry : 1000;
    if (!shard) {
        *state = finished ? LDM_LEASE_FINISHED : LDM_LEASE_WAIT;
        return 0;
    }
    if (!*shard || strlen(shard) >= sizeof l->shard || id <= 0 || skip < 0 || epoch < 0 ||
        timeout <= 0)
        return ldm_fail(LDM_EFORMAT, "lease answer: bad shard, lease, skip, epoch or timeout");
    snprintf(l->shard, sizeof l->shard, "%s", shard);
    l->id = (uint64_t)id;
    l->skip = (uint64_t)skip;
    l->epoch = (uint32_t)epoch;
    l->timeout_ms = timeout;
    *state = LDM_LEASE_GRANTED;
    return 0;
}

int ldm_lease_get(struct ldm_lease_client *c, struct ldm_lease *l, enum ldm_lease_state *state)
{
    json_t *reply = NULL;
    int rc = call(c, json_pack("{s:s}", "op", "lease"), &reply, 1);
    if (!rc)
        rc = parse_grant(reply, l, state);
    json_decref(reply);
    return rc;
}

int ldm_lease_renew(struct ldm_lease_client *c, struct ldm_lease *l, uint64_t next)
{
    json_t *reply = NULL;
    int rc = call(c, json_pack("{s:s,s:I,s:I}", "op", "renew", "lease", (json_int_t)l->id, "next",
                               (json_int_t)next),
                  &reply, 0);
    int64_t timeout;
    if (!rc && ldm_json_get_int(reply, "timeout_ms", &timeout, l->timeout_ms) == 0 && timeout > 0)
        l->timeout_ms = timeout;
    json_decref(reply);
    return rc;
}

static int simple(struct ldm_lease_client *c, json_t *req)
{
    json_t *reply = NULL;
    int rc = call(c, req, &reply, 0);
    json_decref(reply);
    return rc;
}

int ldm_lease_done(struct ldm_lease_client *c, const struct ldm_lease *l, uint64_t count,
                   uint64_t rejected)
{
    return simple(c, json_pack("{s:s,s:I,s:I,s:I}", "op", "done", "lease", (json_int_t)l->id,
                               "count", (json_int_t)count, "rejected", (json_int_t)rejected));
}

int ldm_lease_release(struct ldm_lease_client *c, const struct ldm_lease *l, uint64_t next)
{
    return simple(c, json_pack("{s:s,s:I,s:I}", "op", "release", "lease", (json_int_t)l->id,
                               "next", (json_int_t)next));
}

int ldm_lease_fail(struct ldm_lease_client *c, const struct ldm_lease *l, uint64_t next,
                   const char *error)
{
    return simple(c, json_pack("{s:s,s:I,s:I,s:s}", "op", "fail", "lease", (json_int_t)l->id,
                               "next", (json_int_t)next, "error", error));
}

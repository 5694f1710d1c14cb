/* zap.c — the ZAP handler thread: CURVE clients checked against an allow-list. */
#include "zap.h"
#include "err.h"
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES 8

struct ldm_zap {
    void *sock;
    pthread_t thread;
    pthread_mutex_t lock;
    struct ldm_allowlist *al;
    atomic_int stop;
    atomic_ulong denied;
    char seen[64][LDM_Z85_KEY_LEN + 1]; /* refused keys already logged (a ring) */
    unsigned nseen;
};

struct zap_req {
    zmq_msg_t f[ZAP_FRAMES]; /* version, id, domain, address, identity, mechanism, creds... */
    int n;
};

static int recv_request(void *sock, struct zap_req *r)
{
    int more = 1;
    r->n = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            return -1;
        }
        more = zmq_msg_more(&m);
        if (r->n < ZAP_FRAMES)
            r->f[r->n++] = m;
        else
            zmq_msg_close(&m);
    }
    return 0;
}

static void frame_str(zmq_msg_t *m, char *out, size_t size)
{
    size_t n = zmq_msg_size(m) < size - 1 ? zmq_msg_size(m) : size - 1;
    memcpy(out, zmq_msg_data(m), n);
    out[n] = '\0';
}

static void send_reply(void *sock, zmq_msg_t *id, const char *code, const char *text)
{
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, zmq_msg_data(id), zmq_msg_size(id), ZMQ_SNDMORE);
    zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, ZMQ_SNDMORE); /* user id */
    zmq_send(sock, "", 0, 0);           /* metadata */
}

/* Decide one request: 1 = allowed. Fills key (Z85 of a CURVE client). */
static int decide(struct ldm_zap *z, struct zap_req *r, char *mech, char *key)
{
    key[0] = '\0';
    frame_str(&r->f[5], mech, 32);
    if (strcmp(mech, "CURVE") != 0 || r->n < 7 || zmq_msg_size(&r->f[6]) != 32)
        return 0;
    zmq_z85_encode(key, zmq_msg_data(&r->f[6]), 32);
    pthread_mutex_lock(&z->lock);
    int ok = ldm_allowlist_has(z->al, key);
    pthread_mutex_unlock(&z->lock);
    return ok;
}

/* 1 the first time a refused key is seen (clients retry every few ms). */
static int first_refusal(struct ldm_zap *z, const char *key)
{
    unsigned n = z->nseen < 64 ? z->nseen : 64;
    for (unsigned i = 0; i < n; i++)
        if (strcmp(z->seen[i], key) == 0)
            return 0;
    snprintf(z->seen[z->nseen++ % 64], sizeof z->seen[0], "%s", key);
    return 1;
}

static void handle(struct ldm_zap *z, struct zap_req *r)
{
    char mech[32] = "", key[LDM_Z85_KEY_LEN + 1], addr[128];
    if (r->n < 6) {
        LOG_WARN("malformed authentication request", "frames=%d", r->n);
        if (r->n >= 2)
            send_reply(z->sock, &r->f[1], "500", "malformed request");
        return;
    }
    frame_str(&r->f[3], addr, sizeof addr);
    if (decide(z, r, mech, key)) {
        send_reply(z->sock, &r->f[1], "200", "OK");
        return;
    }
    z->denied++;
    if (first_refusal(z, key[0] ? key : mech))
        LOG_WARN("client refused: key not in the allow-list", "mechanism=%s address=%s key=%s", mech,
                 addr, key[0] ? key : "none");
    send_reply(z->sock, &r->f[1], "400", "not allowed");
}

static void *run(void *arg)
{
    struct ldm_zap *z = arg;
    while (!z->stop) {
        zmq_pollitem_t it = {z->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, 100);
        if (n < 0 && zmq_errno() == ETERM)
            break;
        if (n <= 0)
            continue;
        struct zap_req r;
        if (recv_request(z->sock, &r) != 0)
            continue;
        handle(z, &r);
        for (int i = 0; i < r.n; i++)
            zmq_msg_close(&r.f[i]);
    }
    return NULL;
}

int ldm_zap_start(void *zctx, struct ldm_allowlist *al, struct ldm_zap **out)
{
    struct ldm_zap *z = calloc(1, sizeof *z);
    if (!z)
        return ldm_fail(LDM_ENOMEM, "zap: out of memory");
    z->sock = zmq_socket(zctx, ZMQ_REP);
    int linger = 0;
    if (!z->sock || zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        int rc = ldm_fail(LDM_EZMQ, "zap: cannot bind %s: %s", ZAP_ENDPOINT,
                          zmq_strerror(zmq_errno()));
        if (z->sock)
            zmq_close(z->sock);
        free(z);
        return rc;
    }
    pthread_mutex_init(&z->lock, NULL);
    z->al = al;
    if (pthread_create(&z->thread, NULL, run, z) != 0) {
        zmq_close(z->sock);
        pthread_mutex_destroy(&z->lock);
        free(z);
        return ldm_fail(LDM_EIO, "zap: cannot start the thread");
    }
    *out = z;
    return 0;
}

void ldm_zap_set_allowlist(struct ldm_zap *z, struct ldm_allowlist *al)
{
    pthread_mutex_lock(&z->lock);
    struct ldm_allowlist *old = z->al;
    z->al = al;
    pthread_mutex_unlock(&z->lock);
    ldm_allowlist_free(&old);
}

unsigned long ldm_zap_denied(const struct ldm_zap *z)
{
    return z ? atomic_load(&z->denied) : 0;
}

void ldm_zap_stop(struct ldm_zap **zp)
{
    struct ldm_zap *z = *zp;
    if (!z)
        return;
    z->stop = 1;
    pthread_join(z->thread, NULL);
    zmq_close(z->sock);
    pthread_mutex_destroy(&z->lock);
    ldm_allowlist_free(&z->al);
    free(z);
    *zp = NULL;
}

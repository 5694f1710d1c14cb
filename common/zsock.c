/* zsock.c — secured bind/connect, JSON frames and request/reply over ZeroMQ. */
#include "zsock.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "rundir.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define ZAP_DOMAIN "ldmpipe"

/* Copy the host part of tcp://HOST:PORT (brackets removed) into host. */
static int tcp_host(const char *endpoint, char *host, size_t size)
{
    const char *h = endpoint + 6, *colon = strrchr(h, ':');
    if (!colon || colon == h)
        return ldm_fail(LDM_EINVAL, "endpoint %s: expected tcp://HOST:PORT", endpoint);
    size_t n = (size_t)(colon - h);
    if (h[0] == '[' && colon[-1] == ']') {
        h++;
        n -= 2;
    }
    if (n >= size)
        return ldm_fail(LDM_EINVAL, "endpoint %s: host too long", endpoint);
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
}

int ldm_endpoint_is_loopback(const char *endpoint)
{
    char host[256];
    unsigned char a[16];
    if (strncmp(endpoint, "tcp://", 6) != 0 || tcp_host(endpoint, host, sizeof host) != 0)
        return 0;
    if (!strcmp(host, "localhost"))
        return 1;
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1)
        return !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
    return 0;
}

static int set_curve_server(void *sock, const struct ldm_keypair *kp)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp->secret_key, LDM_Z85_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) != 0)
        return ldm_fail(LDM_EZMQ, "CURVE server options: %s", zmq_strerror(zmq_errno()));
    return 0;
}

static int check_bind(void *sock, const char *endpoint, const struct ldm_bind_security *sec)
{
    if (!strncmp(endpoint, "ipc://", 6)) {
        if (ldm_ipc_in_use(endpoint))
            return ldm_fail(LDM_EEXIST, "%s: another process is already listening there",
                            endpoint);
        return 0;
    }
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return 0;
    if (sec && sec->server && sec->server->secret_key[0])
        return set_curve_server(sock, sec->server);
    if (ldm_endpoint_is_loopback(endpoint))
        return 0;
    if (sec && sec->insecure) {
        LOG_WARN("binding plain tcp on a non-loopback address: traffic is neither encrypted "
                 "nor authenticated",
                 "endpoint=%s", endpoint);
        return 0;
    }
    return ldm_fail(LDM_EDENIED,
                    "%s: refusing plain tcp on a non-loopback address; set curve_key and "
                    "curve_allow, or pass --insecure",
                    endpoint);
}

int ldm_zbind(void *sock, const char *endpoint, const struct ldm_bind_security *sec)
{
    int rc = check_bind(sock, endpoint, sec);
    if (rc)
        return rc;
    if (zmq_bind(sock, endpoint) != 0)
        return ldm_fail(LDM_EZMQ, "cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

void ldm_ipc_unlink(const char *endpoint)
{
    if (!strncmp(endpoint, "ipc://", 6) && endpoint[6] != '@' && strcmp(endpoint + 6, "*") != 0)
        unlink(endpoint + 6);
}

int ldm_zconnect(void *sock, const char *endpoint, const char *server_public,
                 const struct ldm_keypair *client)
{
    if (server_public && *server_public) {
        struct ldm_keypair fresh;
        if (!client || !client->secret_key[0]) {
            int rc = ldm_keypair_new(&fresh);
            if (rc)
                return rc;
            client = &fresh;
        }
        if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_public, LDM_Z85_KEY_LEN) != 0 ||
            zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, client->public_key, LDM_Z85_KEY_LEN) != 0 ||
            zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, client->secret_key, LDM_Z85_KEY_LEN) != 0)
            return ldm_fail(LDM_EZMQ, "CURVE client options for %s: %s", endpoint,
                            zmq_strerror(zmq_errno()));
    }
    if (zmq_connect(sock, endpoint) != 0)
        return ldm_fail(LDM_EZMQ, "cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

int ldm_zsend_json(void *sock, const json_t *v)
{
    char *text = ldm_json_dump(v);
    if (!text)
        return ldm_fail(LDM_ENOMEM, "cannot encode JSON");
    int n = zmq_send(sock, text, strlen(text), 0);
    free(text);
    if (n < 0)
        return ldm_fail(LDM_EZMQ, "send: %s", zmq_strerror(zmq_errno()));
    return 0;
}

static void drain(void *sock)
{
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, sock, 0);
        zmq_msg_close(&m);
    }
}

int ldm_zrecv_one(void *sock, zmq_msg_t *m)
{
    zmq_msg_init(m);
    if (zmq_msg_recv(m, sock, 0) < 0)
        return ldm_fail(LDM_EZMQ, "receive: %s", zmq_strerror(zmq_errno()));
    if (zmq_msg_more(m)) {
        drain(sock);
        return ldm_fail(LDM_EFORMAT, "request has more than one frame");
    }
    return 0;
}

int ldm_zrecv_json(void *sock, size_t max, json_t **out)
{
    zmq_msg_t m;
    int rc = ldm_zrecv_one(sock, &m);
    size_t len = zmq_msg_size(&m);
    if (!rc && len > max)
        rc = ldm_fail(LDM_EFORMAT, "message of %zu bytes is over the %zu-byte limit", len, max);
    if (!rc)
        rc = ldm_json_parse_object(zmq_msg_data(&m), len, "message", out);
    zmq_msg_close(&m);
    return rc;
}

int ldm_zrequest(void *zctx, const char *endpoint, const char *server_public,
                 const struct ldm_keypair *client, const json_t *req, int timeout_ms,
                 json_t **reply)
{
    void *s = zmq_socket(zctx, ZMQ_REQ);
    if (!s)
        return ldm_fail(LDM_EZMQ, "socket: %s", zmq_strerror(zmq_errno()));
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    int rc = ldm_zconnect(s, endpoint, server_public, client);
    if (!rc)
        rc = ldm_zsend_json(s, req);
    if (!rc) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, timeout_ms);
        if (n == 0)
            rc = ldm_fail(LDM_ETIMEOUT, "no answer from %s within %d ms", endpoint, timeout_ms);
        else if (n < 0)
            rc = ldm_fail(LDM_EZMQ, "poll: %s", zmq_strerror(zmq_errno()));
        else
            rc = ldm_zrecv_json(s, 64u << 20, reply);
    }
    zmq_close(s);
    return rc;
}

/* zsock.h — ZeroMQ helpers: secured bind and connect, JSON messages, requests.
 *
 * Binding follows DESIGN.md's socket rules:
 *   ipc://PATH     allowed; refused (LDM_EEXIST) when a live process already
 *                  listens on PATH (libzmq would silently take it over);
 *   inproc://NAME  allowed;
 *   tcp://...      with a server key pair: CURVE server, ZAP domain "ldmpipe"
 *                  (clients checked by the ZAP handler's allow-list);
 *                  without one: plain, allowed only on a loopback address
 *                  (127.0.0.0/8, ::1, localhost) unless `insecure` is set,
 *                  else refused with LDM_EDENIED.
 */
#ifndef LDM_ZSOCK_H
#define LDM_ZSOCK_H

#include <jansson.h>
#include <stddef.h>
#include <zmq.h>

#include "curve.h"

struct ldm_bind_security {
    const struct ldm_keypair *server; /* NULL: no CURVE */
    int insecure;                     /* allow plain tcp on any address */
};

/* 1 when `endpoint` is tcp:// on a loopback host. */
int ldm_endpoint_is_loopback(const char *endpoint);

/* Bind `sock` to `endpoint` under the rules above. Returns 0, LDM_EDENIED,
 * LDM_EEXIST or LDM_EZMQ (detail names the endpoint). */
int ldm_zbind(void *sock, const char *endpoint, const struct ldm_bind_security *sec);

/* Remove the socket file of an ipc:// endpoint this process bound, after
 * the socket is closed (libzmq leaves it behind). No-op for other schemes. */
void ldm_ipc_unlink(const char *endpoint);

/* Connect `sock`; with `server_public` set, as a CURVE client using
 * `client` (a full key pair; when NULL a fresh one is made). */
int ldm_zconnect(void *sock, const char *endpoint, const char *server_public,
                 const struct ldm_keypair *client);

/* Send `v` as one compact JSON frame. Returns 0 or LDM_EZMQ. */
int ldm_zsend_json(void *sock, const json_t *v);

/* Receive one single-frame message into *msg (initialised here; the caller
 * closes it). A message of more than one frame gives LDM_EFORMAT (the rest
 * is drained, *msg holds the first frame); LDM_EZMQ when nothing came. */
int ldm_zrecv_one(void *sock, zmq_msg_t *msg);

/* Receive one message as a JSON object (new reference in *out). A message
 * of more than one frame or more than `max` bytes gives LDM_EFORMAT (the
 * remaining frames are drained); bad JSON gives LDM_EFORMAT. */
int ldm_zrecv_json(void *sock, size_t max, json_t **out);

/* One request/reply round trip over a fresh REQ socket: connect to
 * `endpoint` (CURVE when server_public is set), send `req`, wait up to
 * `timeout_ms` for the reply. LDM_ETIMEOUT: "no answer from ENDPOINT
 * within N ms". */
int ldm_zrequest(void *zctx, const char *endpoint, const char *server_public,
                 const struct ldm_keypair *client, const json_t *req, int timeout_ms,
                 json_t **reply);

#endif

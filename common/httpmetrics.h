/* httpmetrics.h — a tiny HTTP/1.0 server for Prometheus text, run inside a
 * daemon's poll loop (no threads).
 *
 * The listening socket and every client socket are non-blocking and polled
 * by the caller's loop: ldm_httpm_items() fills poll items, the loop polls
 * them with its own, and ldm_httpm_handle() does whatever is ready without
 * ever blocking. `GET /metrics` (a query string is ignored) answers 200 with
 * `text/plain; version=0.0.4` and the body the render callback makes; any
 * other path or method answers 404, a malformed request line 400. At most
 * LDM_HTTPM_CLIENTS connections are kept: a new one evicts the oldest; a
 * request over LDM_HTTPM_REQ_MAX bytes is closed unanswered; a client idle
 * over LDM_HTTPM_IDLE_MS (sending nothing, or reading nothing) is closed.
 * So a slow or silent client delays nobody.
 */
#ifndef LDM_HTTPMETRICS_H
#define LDM_HTTPMETRICS_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define LDM_HTTPM_CLIENTS 4
#define LDM_HTTPM_REQ_MAX 2048
#define LDM_HTTPM_IDLE_MS 5000
#define LDM_HTTPM_BODY_MAX (256 * 1024)
#define LDM_HTTPM_ITEMS (1 + LDM_HTTPM_CLIENTS) /* poll items the server may fill */

/* Prometheus text under construction (a fixed buffer; overflow is sticky). */
struct ldm_promtext {
    char *buf;
    size_t size, len;
    int overflow;
};

/* Append `# TYPE NAME TYPE` (when type is not NULL) and `NAME{daemon="D"} VALUE`
 * (`NAME VALUE` when daemon is NULL).
 * Characters outside [a-zA-Z0-9_:] in name become '_'; the label value is
 * escaped. Integral values print without a fraction. */
void ldm_prom_sample(struct ldm_promtext *t, const char *name, const char *type,
                     const char *daemon, double value);

/* Fill t (t->buf of t->size bytes) with the body; return 0, or an LDM_E*
 * code to answer 500. */
typedef int (*ldm_httpm_render_fn)(void *arg, struct ldm_promtext *t);

struct ldm_httpm;

/* Listen on addr (IPv4 or IPv6 literal, or "localhost") port (0: an
 * ephemeral port, see ldm_httpm_port). A non-loopback addr needs insecure.
 * Errors: LDM_ECONFIG (bad address), LDM_EDENIED (non-loopback without
 * insecure), LDM_EIO (socket, bind, listen), LDM_ENOMEM. *out is the
 * caller's (ldm_httpm_close). */
int ldm_httpm_open(const char *addr, int port, int insecure, ldm_httpm_render_fn fn, void *arg,
                   struct ldm_httpm **out);
/* The port actually bound. */
int ldm_httpm_port(const struct ldm_httpm *h);
/* Fill up to LDM_HTTPM_ITEMS poll items (fd items, socket NULL); returns
 * how many. */
int ldm_httpm_items(struct ldm_httpm *h, zmq_pollitem_t *items);
/* Act on the items after a poll (the same n items, revents filled), then
 * close idle clients. Never blocks. */
void ldm_httpm_handle(struct ldm_httpm *h, const zmq_pollitem_t *items, int n);
/* Milliseconds until the next idle client must be closed, or -1. */
long ldm_httpm_timeout_ms(const struct ldm_httpm *h);
/* Close every socket and free *h; NULL is fine. */
void ldm_httpm_close(struct ldm_httpm **h);

#endif

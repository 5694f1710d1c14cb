/* httpmetrics.c — the Prometheus text builder and a non-blocking HTTP/1.0
 * server polled by the daemon loop (see httpmetrics.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "httpmetrics.h"
#include "log.h"

struct client {
    int fd;           /* -1: free slot */
    double since;     /* last progress, monotonic seconds */
    size_t nreq, nout, sent;
    char req[LDM_HTTPM_REQ_MAX];
    char *out;        /* the response, once the request is complete */
};

struct ldm_httpm {
    int lfd, port;
    ldm_httpm_render_fn fn;
    void *arg;
    struct client c[LDM_HTTPM_CLIENTS];
    char *body;       /* LDM_HTTPM_BODY_MAX bytes for the render callback */
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void put(struct ldm_promtext *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct ldm_promtext *t, const char *fmt, ...)
{
    if (t->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= t->size - t->len)
        t->overflow = 1;
    else
        t->len += (size_t)n;
}

void ldm_prom_sample(struct ldm_promtext *t, const char *name, const char *type,
                     const char *daemon, double value)
{
    char n[160], d[300];
    size_t i = 0, j = 0;
    for (; name[i] && i < sizeof n - 1; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':' ||
                 (i > 0 && ch >= '0' && ch <= '9');
        n[i] = ok ? ch : '_';
    }
    n[i] = '\0';
    for (i = 0; daemon && daemon[i] && j < sizeof d - 3; i++) {
        char ch = daemon[i];
        if (ch == '\\' || ch == '"' || ch == '\n')
            d[j++] = '\\';
        d[j++] = ch == '\n' ? 'n' : ch;
    }
    d[j] = '\0';
    char lab[320] = "";
    if (daemon)
        snprintf(lab, sizeof lab, "{daemon=\"%s\"}", d);
    if (type)
        put(t, "# TYPE %s %s\n", n, type);
    if (isfinite(value) && value == floor(value) && fabs(value) < 9.007199254740992e15)
        put(t, "%s%s %.0f\n", n, lab, value);
    else if (isnan(value))
        put(t, "%s%s NaN\n", n, lab);
    else if (isinf(value))
        put(t, "%s%s %sInf\n", n, lab, value > 0 ? "+" : "-");
    else
        put(t, "%s%s %.17g\n", n, lab, value);
}

static int parse_addr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len,
                      int *loopback)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    if (!strcmp(addr, "localhost"))
        addr = "127.0.0.1";
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        *loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        *loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
        return 0;
    }
    return ldm_fail(LDM_ECONFIG, "metrics_addr: '%s' is not an IPv4 or IPv6 address", addr);
}

static int listen_on(struct ldm_httpm *h, const char *addr, int port, int insecure)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int loopback = 0, one = 1;
    if (port < 0 || port > 65535)
        return ldm_fail(LDM_ECONFIG, "metrics_port: %d is not a port", port);
    int rc = parse_addr(addr, port, &ss, &len, &loopback);
    if (rc)
        return rc;
    if (!loopback && !insecure)
        return ldm_fail(LDM_EDENIED, "metrics_addr: refusing plain http on non-loopback %s; "
                                     "pass --insecure", addr);
    h->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->lfd < 0)
        return ldm_fail_errno(LDM_EIO, "metrics %s:%d: socket", addr, port);
    setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(h->lfd, (struct sockaddr *)&ss, len) != 0)
        return ldm_fail_errno(LDM_EIO, "metrics %s:%d: bind", addr, port);
    if (listen(h->lfd, 16) != 0)
        return ldm_fail_errno(LDM_EIO, "metrics %s:%d: listen", addr, port);
    len = sizeof ss;
    if (getsockname(h->lfd, (struct sockaddr *)&ss, &len) != 0)
        return ldm_fail_errno(LDM_EIO, "metrics %s:%d: getsockname", addr, port);
    h->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int ldm_httpm_open(const char *addr, int port, int insecure, ldm_httpm_render_fn fn, void *arg,
                   struct ldm_httpm **out)
{
    struct ldm_httpm *h = calloc(1, sizeof *h);
    if (!h || !(h->body = malloc(LDM_HTTPM_BODY_MAX))) {
        free(h);
        return ldm_fail(LDM_ENOMEM, "metrics server");
    }
    h->lfd = -1;
    h->fn = fn;
    h->arg = arg;
    for (int i = 0; i < LDM_HTTPM_CLIENTS; i++)
        h->c[i].fd = -1;
    int rc = listen_on(h, addr ? addr : "127.0.0.1", port, insecure);
    if (rc) {
        ldm_httpm_close(&h);
        return rc;
    }
    *out = h;
    return 0;
}

int ldm_httpm_port(const struct ldm_httpm *h)
{
    return h->port;
}

static void drop(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->out);
    c->out = NULL;
    c->fd = -1;
    c->nreq = c->nout = c->sent = 0;
}

void ldm_httpm_close(struct ldm_httpm **ph)
{
    struct ldm_httpm *h = *ph;
    if (!h)
        return;
    for (int i = 0; i < LDM_HTTPM_CLIENTS; i++)
        drop(&h->c[i]);
    if (h->lfd >= 0)
        close(h->lfd);
    free(h->body);
    free(h);
    *ph = NULL;
}

/* Accept every pending connection; a full table evicts its oldest client. */
static void accept_all(struct ldm_httpm *h)
{
    for (;;) {
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error: the next poll tries again */
        struct client *slot = &h->c[0];
        for (int i = 1; i < LDM_HTTPM_CLIENTS && slot->fd >= 0; i++)
            if (h->c[i].fd < 0 || h->c[i].since < slot->since)
                slot = &h->c[i];
        if (slot->fd >= 0)
            LOG_DEBUG("metrics client evicted", "clients=%d", LDM_HTTPM_CLIENTS);
        drop(slot);
        slot->fd = fd;
        slot->since = mono_s();
    }
}

static void respond(struct ldm_httpm *h, struct client *c, int code, const char *body, size_t n)
{
    const char *why = code == 200 ? "OK" : code == 404 ? "Not Found" : code == 400
                      ? "Bad Request" : "Internal Server Error";
    const char *type = code == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain";
    char head[256];
    int hn = snprintf(head, sizeof head, "HTTP/1.0 %d %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n", code, why, type, n);
    (void)h;
    c->out = malloc((size_t)hn + n);
    if (!c->out) {
        drop(c);
        return;
    }
    memcpy(c->out, head, (size_t)hn);
    memcpy(c->out + hn, body, n);
    c->nout = (size_t)hn + n;
    c->sent = 0;
}

/* A complete request head is in c->req: make the response. */
static void answer(struct ldm_httpm *h, struct client *c)
{
    char method[16], path[1024];
    c->req[c->nreq] = '\0';
    if (sscanf(c->req, "%15s %1023s HTTP/%*d.%*d", method, path) != 2) {
        respond(h, c, 400, "bad request\n", 12);
        return;
    }
    path[strcspn(path, "?")] = '\0';
    if (strcmp(method, "GET") != 0 || strcmp(path, "/metrics") != 0) {
        respond(h, c, 404, "not found\n", 10);
        return;
    }
    struct ldm_promtext t = {h->body, LDM_HTTPM_BODY_MAX, 0, 0};
    int rc = h->fn ? h->fn(h->arg, &t) : 0;
    if (rc || t.overflow) {
        LOG_WARN("metrics not rendered", "error=\"%s\"", rc ? ldm_errmsg() : "body too large");
        respond(h, c, 500, "error\n", 6);
        return;
    }
    respond(h, c, 200, t.buf, t.len);
}

static void on_readable(struct ldm_httpm *h, struct client *c)
{
    for (;;) {
        size_t room = sizeof c->req - 1 - c->nreq;
        if (room == 0) {
            drop(c); /* request over LDM_HTTPM_REQ_MAX: closed unanswered */
            return;
        }
        ssize_t k = recv(c->fd, c->req + c->nreq, room, 0);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (k <= 0) {
            drop(c);
            return;
        }
        c->nreq += (size_t)k;
        c->since = mono_s();
        c->req[c->nreq] = '\0';
        if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
            answer(h, c);
            return;
        }
    }
}

static void on_writable(struct client *c)
{
    while (c->sent < c->nout) {
        ssize_t k = send(c->fd, c->out + c->sent, c->nout - c->sent, MSG_NOSIGNAL);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (k <= 0) {
            drop(c);
            return;
        }
        c->sent += (size_t)k;
        c->since = mono_s();
    }
    shutdown(c->fd, SHUT_WR);
    drop(c);
}

int ldm_httpm_items(struct ldm_httpm *h, zmq_pollitem_t *items)
{
    int n = 0;
    items[n++] = (zmq_pollitem_t){NULL, h->lfd, ZMQ_POLLIN, 0};
    for (int i = 0; i < LDM_HTTPM_CLIENTS; i++)
        if (h->c[i].fd >= 0)
            items[n++] = (zmq_pollitem_t){NULL, h->c[i].fd,
                                          (short)(h->c[i].out ? ZMQ_POLLOUT : ZMQ_POLLIN), 0};
    return n;
}

static struct client *find(struct ldm_httpm *h, int fd)
{
    for (int i = 0; i < LDM_HTTPM_CLIENTS; i++)
        if (h->c[i].fd == fd)
            return &h->c[i];
    return NULL;
}

void ldm_httpm_handle(struct ldm_httpm *h, const zmq_pollitem_t *items, int n)
{
    for (int i = 1; i < n; i++) {
        struct client *c = find(h, items[i].fd);
        if (!c || !items[i].revents)
            continue;
        if (items[i].revents & ZMQ_POLLERR)
            drop(c);
        else if (c->out)
            on_writable(c);
        else
            on_readable(h, c);
        if (c->fd >= 0 && c->out && c->sent == 0)
            on_writable(c); /* try at once: most answers fit the socket buffer */
    }
    if (n > 0 && (items[0].revents & ZMQ_POLLIN))
        accept_all(h);
    double now = mono_s();
    for (int i = 0; i < LDM_HTTPM_CLIENTS; i++)
        if (h->c[i].fd >= 0 && now - h->c[i].since > LDM_HTTPM_IDLE_MS / 1000.0)
            drop(&h->c[i]);
}

long ldm_httpm_timeout_ms(const struct ldm_httpm *h)
{
    double first = -1, now = mono_s();
    for (int i = 0; i < LDM_HTTPM_CLIENTS; i++)
        if (h->c[i].fd >= 0 && (first < 0 || h->c[i].since < first))
            first = h->c[i].since;
    if (first < 0)
        return -1;
    long ms = (long)((first + LDM_HTTPM_IDLE_MS / 1000.0 - now) * 1000) + 1;
    return ms < 0 ? 0 : ms;
}

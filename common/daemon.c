/* daemon.c — the daemon skeleton: start-up, the poll loop, shutdown. */
#include "daemon_int.h"
#include "err.h"
#include "log.h"
#include "notify.h"
#include "rundir.h"
#include "sig.h"
#include "zsock.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

double ldm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void *ldm_daemon_ctx(struct ldm_daemon *d) { return d->ctx; }
void *ldm_daemon_cfg(struct ldm_daemon *d) { return d->cfg; }
const struct ldm_daemon_common *ldm_daemon_common_cfg(struct ldm_daemon *d) { return &d->common; }
void *ldm_daemon_zctx(struct ldm_daemon *d) { return d->zctx; }
const char *ldm_daemon_name(struct ldm_daemon *d) { return d->name; }
const char *ldm_daemon_run_dir(struct ldm_daemon *d) { return d->run_dir; }
int ldm_daemon_paused(struct ldm_daemon *d) { return d->paused; }

void ldm_daemon_request_stop(struct ldm_daemon *d)
{
    d->stopping = 1;
}

void ldm_daemon_set_exit_status(struct ldm_daemon *d, int status)
{
    d->exit_status = status;
}

int ldm_daemon_bind(struct ldm_daemon *d, void *sock, const char *endpoint)
{
    struct ldm_bind_security sec = {d->curve ? &d->server_key : NULL, d->common.insecure};
    int rc = ldm_zbind(sock, endpoint, &sec);
    if (!rc && !strncmp(endpoint, "ipc://", 6) && d->nbound < MAX_WATCH + 1)
        d->bound[d->nbound++] = strdup(endpoint);
    return rc;
}

int ldm_daemon_watch(struct ldm_daemon *d, void *sock, int fd, ldm_watch_fn fn, void *arg)
{
    if (d->nwatch == MAX_WATCH)
        return ldm_fail(LDM_ERANGE, "%s: more than %d watched sockets", d->name, MAX_WATCH);
    d->watch[d->nwatch++] = (struct watch){sock, fd, fn, arg};
    return 0;
}

void ldm_daemon_unwatch(struct ldm_daemon *d, void *sock, int fd)
{
    for (int i = 0; i < d->nwatch; i++)
        if (d->watch[i].sock == sock && (sock || d->watch[i].fd == fd)) {
            d->watch[i] = d->watch[--d->nwatch];
            return;
        }
}

/* Security material: the server key pair and the ZAP handler. */
static int setup_curve(struct ldm_daemon *d)
{
    const struct ldm_daemon_common *c = &d->common;
    if (!c->curve_key) {
        if (c->curve_allow)
            return ldm_fail(LDM_ECONFIG, "curve_allow is set but curve_key is not");
        return 0;
    }
    if (!c->curve_allow)
        return ldm_fail(LDM_ECONFIG, "curve_key is set but curve_allow is not: no client could "
                                     "connect");
    int rc = ldm_keypair_read(c->curve_key, &d->server_key);
    if (!rc && !d->server_key.secret_key[0])
        rc = ldm_fail(LDM_ECONFIG, "curve_key %s holds no secret key (a .pub file?)", c->curve_key);
    struct ldm_allowlist *al = NULL;
    if (!rc)
        rc = ldm_allowlist_load(c->curve_allow, &al);
    if (!rc)
        rc = ldm_zap_start(d->zctx, al, &d->zap);
    if (rc)
        return rc == LDM_EZMQ ? rc : ldm_fail(LDM_ECONFIG, "%s", ldm_errmsg());
    d->curve = 1;
    LOG_INFO("CURVE on for tcp endpoints", "daemon=%s allowed_clients=%zu", d->name,
             ldm_allowlist_count(al));
    return 0;
}

static int setup_control(struct ldm_daemon *d)
{
    int rc = ldm_rundir(d->run_dir, sizeof d->run_dir, d->common.run_dir);
    if (rc)
        return rc;
    if (d->common.control)
        snprintf(d->control, sizeof d->control, "%s", d->common.control);
    else if ((rc = ldm_rundir_endpoint(d->control, sizeof d->control, d->run_dir, d->name,
                                       ".ctl")))
        return rc;
    d->ctl = zmq_socket(d->zctx, ZMQ_REP);
    int linger = 0;
    int64_t maxmsg = 64 * 1024;
    zmq_setsockopt(d->ctl, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(d->ctl, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    return ldm_daemon_bind(d, d->ctl, d->control);
}

/* Configuration, names and logging: everything before sockets. */
static int setup_config(struct ldm_daemon *d)
{
    int rc = ldm_daemon_load_cfg(d, &d->common, d->cfg);
    if (rc)
        return rc;
    int level;
    if (ldm_log_parse_level(d->common.log_level, &level) != 0)
        return ldm_fail(LDM_ECONFIG, "log_level: %s", ldm_errmsg());
    ldm_log_set_level(level);
    if (d->common.id && *d->common.id)
        snprintf(d->name, sizeof d->name, "%s-%s", d->ops->name, d->common.id);
    else
        snprintf(d->name, sizeof d->name, "%s", d->ops->name);
    if (strchr(d->name, '/'))
        return ldm_fail(LDM_ECONFIG, "id: '%s' must not contain '/'", d->common.id);
    return 0;
}

/* Gauges from the numbers of the daemon's status reply: top-level fields and
 * fields of objects one level down. */
static void put_gauges(struct ldm_daemon *d, struct ldm_promtext *t)
{
    json_t *st = json_object();
    if (!st || !d->ops->status) {
        json_decref(st);
        return;
    }
    d->ops->status(d, st);
    const char *k, *k2;
    json_t *v, *v2;
    char name[160];
    json_object_foreach(st, k, v) {
        if (json_is_number(v)) {
            snprintf(name, sizeof name, "ldmpipe_%s", k);
            ldm_prom_sample(t, name, "gauge", d->name, json_number_value(v));
        }
        if (!json_is_object(v))
            continue;
        json_object_foreach(v, k2, v2) {
            if (!json_is_number(v2))
                continue;
            snprintf(name, sizeof name, "ldmpipe_%s_%s", k, k2);
            ldm_prom_sample(t, name, "gauge", d->name, json_number_value(v2));
        }
    }
    json_decref(st);
}

/* The body of GET /metrics. */
static int render_metrics(void *arg, struct ldm_promtext *t)
{
    struct ldm_daemon *d = arg;
    char name[80];
    ldm_prom_sample(t, "ldmpipe_up", "gauge", NULL, 1);
    ldm_prom_sample(t, "ldmpipe_uptime_seconds", "gauge", d->name, ldm_now() - d->started);
    for (int i = 0; i < d->ncounters; i++) {
        snprintf(name, sizeof name, "ldmpipe_%s_total", d->counters[i].name);
        ldm_prom_sample(t, name, "counter", d->name,
                        (double)atomic_load(&d->counters[i].value));
    }
    put_gauges(d, t);
    return 0;
}

static int setup_metrics(struct ldm_daemon *d)
{
    const struct ldm_daemon_common *c = &d->common;
    if (c->metrics_port <= 0)
        return 0;
    int rc = ldm_httpm_open(c->metrics_addr, (int)c->metrics_port, c->insecure, render_metrics,
                            d, &d->httpm);
    if (rc)
        return rc;
    LOG_INFO("metrics served", "daemon=%s url=http://%s:%d/metrics", d->name,
             c->metrics_addr ? c->metrics_addr : "127.0.0.1", ldm_httpm_port(d->httpm));
    return 0;
}

static void on_signal(struct ldm_daemon *d)
{
    int sig;
    char why[1024];
    while ((sig = ldm_signals_read(&d->sig)) > 0) {
        if (sig == SIGHUP) {
            LOG_INFO("SIGHUP: reloading", "daemon=%s", d->name);
            ldm_notify("RELOADING=1");
            ldm_daemon_reload(d, why, sizeof why);
            ldm_notify("READY=1");
        } else {
            LOG_INFO("stopping on signal", "daemon=%s signal=%s", d->name, strsignal(sig));
            d->stopping = 1;
        }
    }
}

/* Timers: counter rates each second, watchdog pings, ops->tick. Returns
 * the poll timeout in ms. */
static long run_timers(struct ldm_daemon *d)
{
    double now = ldm_now();
    if (now >= d->next_rate) {
        ldm_daemon_sample_rates(d);
        d->next_rate = now + 1.0;
    }
    if (d->watchdog_s > 0 && now >= d->next_watchdog) {
        ldm_notify("WATCHDOG=1");
        d->next_watchdog = now + d->watchdog_s / 2;
    }
    double next = d->next_rate;
    if (d->watchdog_s > 0 && d->next_watchdog < next)
        next = d->next_watchdog;
    long ms = (long)((next - now) * 1000) + 1;
    if (d->ops->tick) {
        int t = d->ops->tick(d);
        if (t >= 0 && t < ms)
            ms = t;
    }
    return ms < 0 ? 0 : ms;
}

static void run_loop(struct ldm_daemon *d)
{
    zmq_pollitem_t items[3 + MAX_WATCH + LDM_HTTPM_ITEMS];
    while (!d->stopping) {
        long timeout = run_timers(d);
        if (d->stopping)
            break;
        int n = 0, nw = d->nwatch, nh = 0;
        items[n++] = (zmq_pollitem_t){NULL, d->sig.sfd, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){NULL, d->sig.pfd, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){d->ctl, 0, ZMQ_POLLIN, 0};
        for (int i = 0; i < nw; i++)
            items[n++] = (zmq_pollitem_t){d->watch[i].sock, d->watch[i].fd, ZMQ_POLLIN, 0};
        if (d->httpm) {
            nh = ldm_httpm_items(d->httpm, items + n);
            n += nh;
            long ht = ldm_httpm_timeout_ms(d->httpm);
            if (ht >= 0 && ht < timeout)
                timeout = ht;
        }
        struct watch snap[MAX_WATCH];
        memcpy(snap, d->watch, sizeof snap);
        if (zmq_poll(items, n, timeout) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            LOG_ERROR("poll failed", "daemon=%s error=%s", d->name, zmq_strerror(zmq_errno()));
            break;
        }
        if ((items[0].revents | items[1].revents) & ZMQ_POLLIN)
            on_signal(d);
        if (items[2].revents & ZMQ_POLLIN)
            ldm_daemon_handle_control(d);
        for (int i = 0; i < nw; i++)
            if (items[3 + i].revents & ZMQ_POLLIN)
                snap[i].fn(d, snap[i].arg);
        if (nh)
            ldm_httpm_handle(d->httpm, items + 3 + nw, nh);
    }
}

static int start(struct ldm_daemon *d)
{
    int rc = setup_config(d);
    if (rc)
        return rc;
    d->zctx = zmq_ctx_new();
    if (!d->zctx)
        return ldm_fail(LDM_EZMQ, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    if ((rc = setup_curve(d)) || (rc = setup_control(d)) || (rc = setup_metrics(d)))
        return rc;
    d->started = ldm_now();
    d->next_rate = d->started;
    d->watchdog_s = (double)ldm_watchdog_usec() / 1e6;
    d->next_watchdog = d->started;
    if (d->ops->start && (rc = d->ops->start(d)))
        return rc;
    return 0;
}

static void shutdown_all(struct ldm_daemon *d, int started)
{
    ldm_notify("STOPPING=1");
    if (started && d->ops->stop)
        d->ops->stop(d);
    ldm_httpm_close(&d->httpm);
    if (d->ctl)
        zmq_close(d->ctl);
    ldm_zap_stop(&d->zap);
    if (d->zctx)
        zmq_ctx_term(d->zctx);
    for (int i = 0; i < d->nbound; i++) {
        ldm_ipc_unlink(d->bound[i]);
        free(d->bound[i]);
    }
    ldm_daemon_free_cfg(d, &d->common, d->cfg);
    ldm_signals_close(&d->sig);
    free(d->over);
    free(d->cfg);
}

int ldm_daemon_main(const struct ldm_daemon_ops *ops, void *ctx, int argc, char **argv)
{
    struct ldm_daemon *d = calloc(1, sizeof *d);
    if (!d)
        return 1;
    d->ops = ops;
    d->ctx = ctx;
    /* first: threads started later inherit the mask */
    int exit_now = -1, rc = ldm_signals_open(&d->sig);
    snprintf(d->name, sizeof d->name, "%s", ops->name);
    d->cfg = ops->cfg_size ? calloc(1, ops->cfg_size) : NULL;
    if (!rc)
        rc = ldm_daemon_parse_args(d, argc, argv, &exit_now);
    if (!rc && exit_now >= 0) {
        shutdown_all(d, 0);
        free(d);
        return exit_now;
    }
    if (!rc)
        rc = start(d);
    int status = 0;
    if (rc) {
        LOG_ERROR("start-up failed", "daemon=%s error=%s", d->name, ldm_errmsg());
        status = rc == LDM_ECONFIG || rc == LDM_EDENIED ? LDM_EXIT_CONFIG : 1;
    } else {
        LOG_INFO("ready", "daemon=%s control=%s pid=%d", d->name, d->control, (int)getpid());
        ldm_notifyf("READY=1\nSTATUS=running\nMAINPID=%d", (int)getpid());
        run_loop(d);
        status = d->exit_status;
        LOG_INFO("stopped", "daemon=%s status=%d", d->name, status);
    }
    shutdown_all(d, rc == 0);
    free(d);
    return status;
}

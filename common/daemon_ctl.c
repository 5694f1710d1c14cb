/* daemon_ctl.c — the control socket's commands and configuration reload. */
#include "ctlmsg.h"
#include "daemon_int.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "notify.h"
#include "zsock.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static const char *state_name(const struct ldm_daemon *d)
{
    return d->stopping ? "stopping" : d->paused ? "paused" : "running";
}

static void status(struct ldm_daemon *d, json_t *r)
{
    json_object_set_new(r, "daemon", json_string(d->ops->name));
    json_object_set_new(r, "name", json_string(d->name));
    if (d->common.id)
        json_object_set_new(r, "id", json_string(d->common.id));
    json_object_set_new(r, "pid", json_integer(getpid()));
    json_object_set_new(r, "version", json_string(LDM_VERSION));
    json_object_set_new(r, "state", json_string(state_name(d)));
    json_object_set_new(r, "uptime_s", json_real(ldm_now() - d->started));
    json_object_set_new(r, "control", json_string(d->control));
    if (d->ops->status)
        d->ops->status(d, r);
    ldm_daemon_add_counters(d, r);
}

static void set_paused(struct ldm_daemon *d, int paused)
{
    if (d->paused == paused)
        return;
    d->paused = paused;
    if (d->ops->pause)
        d->ops->pause(d, paused);
    LOG_INFO(paused ? "paused" : "resumed", "daemon=%s", d->name);
    ldm_notifyf("STATUS=%s", paused ? "paused" : "running");
}

/* Apply the reloadable common keys of a freshly read configuration. */
static int apply_common(struct ldm_daemon *d, const struct ldm_daemon_common *c)
{
    int level;
    int rc = ldm_log_parse_level(c->log_level ? c->log_level : "info", &level);
    if (rc)
        return ldm_fail(LDM_ECONFIG, "log_level: %s", ldm_errmsg());
    if (d->zap && c->curve_allow) {
        struct ldm_allowlist *al;
        rc = ldm_allowlist_load(c->curve_allow, &al);
        if (rc)
            return rc;
        ldm_zap_set_allowlist(d->zap, al);
    }
    ldm_log_set_level(level);
    return 0;
}

int ldm_daemon_reload(struct ldm_daemon *d, char *why, size_t size)
{
    struct ldm_daemon_common c = {0};
    void *cfg = d->ops->cfg_size ? calloc(1, d->ops->cfg_size) : NULL;
    int rc = ldm_daemon_load_cfg(d, &c, cfg);
    if (!rc)
        rc = apply_common(d, &c);
    if (!rc && d->ops->reload)
        rc = d->ops->reload(d, cfg);
    _Atomic uint64_t *n = ldm_daemon_counter(d, rc ? "reload_errors" : "reloads");
    if (n)
        (*n)++;
    if (rc) {
        snprintf(why, size, "%s", ldm_errmsg());
        LOG_ERROR("reload failed; the running configuration stays", "daemon=%s error=%s",
                  d->name, why);
    } else {
        LOG_INFO("configuration reloaded", "daemon=%s file=%s", d->name,
                 d->cfg_file ? d->cfg_file : "none");
    }
    ldm_daemon_free_cfg(d, &c, cfg);
    free(cfg);
    return rc;
}

/* Fill `reply` for one parsed request. */
static void dispatch(struct ldm_daemon *d, const char *op, const json_t *req, json_t *reply)
{
    char why[1024];
    int ok = 1;
    if (!strcmp(op, "status"))
        status(d, reply);
    else if (!strcmp(op, "pause") || !strcmp(op, "resume"))
        set_paused(d, !strcmp(op, "pause"));
    else if (!strcmp(op, "stop"))
        ldm_daemon_request_stop(d);
    else if (!strcmp(op, "reload")) {
        if (ldm_daemon_reload(d, why, sizeof why) != 0) {
            ok = 0;
            json_object_set_new(reply, "error", json_string(why));
        }
    } else if (!d->ops->command || !d->ops->command(d, op, req, reply)) {
        ok = 0;
        snprintf(why, sizeof why, "unknown op '%s' for %s", op, d->ops->name);
        json_object_set_new(reply, "error", json_string(why));
    }
    if (!strcmp(op, "pause") || !strcmp(op, "resume") || !strcmp(op, "stop"))
        json_object_set_new(reply, "state", json_string(state_name(d)));
    if (!json_object_get(reply, "ok"))
        json_object_set_new(reply, "ok", json_boolean(ok));
}

static void count(struct ldm_daemon *d, const char *name)
{
    _Atomic uint64_t *c = ldm_daemon_counter(d, name);
    if (c)
        (*c)++;
}

void ldm_daemon_handle_control(struct ldm_daemon *d)
{
    zmq_msg_t m;
    json_t *req = NULL, *reply;
    const char *op = NULL;
    count(d, "control_requests");
    int rc = ldm_zrecv_one(d->ctl, &m);
    if (rc == LDM_EZMQ) { /* nothing received: REP must not answer */
        LOG_WARN("control receive failed", "daemon=%s error=%s", d->name, ldm_errmsg());
        zmq_msg_close(&m);
        return;
    }
    if (!rc)
        rc = ldm_ctl_parse_request(zmq_msg_data(&m), zmq_msg_size(&m), &req, &op);
    zmq_msg_close(&m);
    if (rc) {
        count(d, "control_errors");
        LOG_WARN("bad control request", "daemon=%s error=%s", d->name, ldm_errmsg());
        reply = ldm_ctl_error_reply(ldm_errmsg());
    } else {
        reply = json_object();
        dispatch(d, op, req, reply);
    }
    if (ldm_zsend_json(d->ctl, reply) != 0)
        LOG_WARN("cannot send control reply", "daemon=%s error=%s", d->name, ldm_errmsg());
    json_decref(req);
    json_decref(reply);
}

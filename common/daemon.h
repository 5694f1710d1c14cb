/* daemon.h — the skeleton every ldmpipe daemon runs.
 *
 * ldm_daemon_main() parses `-c FILE` and `--key=value` (the skeleton's
 * common keys plus the daemon's own table), prepares the run directory,
 * binds the control socket (ZMQ REP, secured as zsock.h says), starts the
 * ZAP handler when CURVE is on, calls ops->start, notifies systemd READY=1,
 * then runs one poll loop over: the signal descriptor, the control socket,
 * the sockets the daemon registered with ldm_daemon_watch, and timers
 * (watchdog pings, counter rates, ops->tick), and, when metrics_port is set,
 * a small HTTP server (httpmetrics.h): GET /metrics gives every counter as
 * `ldmpipe_<counter>_total{daemon="NAME"}`, `ldmpipe_up 1`, and each number
 * of the ops->status reply as a gauge `ldmpipe_<field>` (top level) or
 * `ldmpipe_<object>_<field>` (one level down, e.g. ldmpipe_training_loss).
 *
 * Control requests are JSON objects {"op": NAME, ...}; replies are
 * {"ok": true, ...} or {"ok": false, "error": TEXT} (proto/control.md).
 * The skeleton answers status, pause, resume, stop and reload, and hands
 * any other op to ops->command.
 *
 * SIGTERM/SIGINT and the stop op end the loop: STOPPING=1, ops->stop,
 * sockets closed (ipc socket files removed), exit status 0. SIGHUP and the
 * reload op re-read the configuration: log_level and curve_allow apply at
 * once, the rest is offered to ops->reload. Start-up errors exit with 78
 * (EX_CONFIG) for bad configuration or a refused endpoint, 1 otherwise, after one log line that
 * names the key, file and line, or the endpoint.
 */
#ifndef LDM_DAEMON_H
#define LDM_DAEMON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define LDM_VERSION "0.1.0"
#define LDM_EXIT_CONFIG 78

struct ldm_daemon;

/* The skeleton's own keys, valid in every daemon's section and in [common]. */
struct ldm_daemon_common {
    char *id;          /* instance name: the daemon is NAME-ID (e.g. loaderd-3) */
    char *control;     /* control endpoint; default ipc://RUN_DIR/NAME.ctl */
    char *log_level;   /* debug | info | warn | error */
    char *run_dir;     /* default: see rundir.h */
    int insecure;      /* allow plain tcp on non-loopback addresses */
    char *curve_key;   /* this daemon's key pair file (.key), turns CURVE on for tcp */
    char *curve_allow; /* allow-list of client public keys */
    int64_t metrics_port; /* Prometheus text over HTTP on this port; 0 = off */
    char *metrics_addr;   /* its address (default 127.0.0.1; non-loopback needs insecure) */
};

struct ldm_daemon_ops {
    const char *name;               /* "loaderd" */
    const char *summary;            /* one line for --help */
    const struct ldm_cfg_key *keys; /* the daemon's own keys (NULL-terminated), or NULL */
    size_t cfg_size;                /* size of the struct they describe */

    /* After the control socket is bound, before READY. Non-zero stops
     * start-up (exit 1; the detail is logged) and start must then have
     * released what it made: stop is called only after a successful start. */
    int (*start)(struct ldm_daemon *d);
    /* Add the daemon's fields to a status reply (counters are added by the
     * skeleton). */
    void (*status)(struct ldm_daemon *d, json_t *reply);
    /* A daemon-specific op: return 1 when handled (reply filled: "ok" and
     * fields), 0 when the op is unknown. */
    int (*command)(struct ldm_daemon *d, const char *op, const json_t *req, json_t *reply);
    /* A new configuration was read (same struct type as ldm_daemon_cfg):
     * copy what can change at run time. The skeleton frees `newcfg` after. */
    int (*reload)(struct ldm_daemon *d, const void *newcfg);
    /* Paused (1) or resumed (0). */
    void (*pause)(struct ldm_daemon *d, int paused);
    /* Called every loop turn; returns the ms until it wants to run again,
     * or -1 for "only when something happens". */
    int (*tick)(struct ldm_daemon *d);
    /* The loop is ending; release what start made. */
    void (*stop)(struct ldm_daemon *d);
};

/* Run the daemon; returns the process exit status. */
int ldm_daemon_main(const struct ldm_daemon_ops *ops, void *ctx, int argc, char **argv);

/* Accessors, valid from ops->start until ops->stop returns. */
void *ldm_daemon_ctx(struct ldm_daemon *d);        /* the ctx given to main */
void *ldm_daemon_cfg(struct ldm_daemon *d);        /* the daemon's own config struct */
const struct ldm_daemon_common *ldm_daemon_common_cfg(struct ldm_daemon *d);
void *ldm_daemon_zctx(struct ldm_daemon *d);       /* the ZeroMQ context */
const char *ldm_daemon_name(struct ldm_daemon *d); /* NAME or NAME-ID */
const char *ldm_daemon_run_dir(struct ldm_daemon *d);
int ldm_daemon_paused(struct ldm_daemon *d);
/* Bind a socket the daemon owns under the same security rules as control. */
int ldm_daemon_bind(struct ldm_daemon *d, void *sock, const char *endpoint);
/* Ask the loop to end after this turn (as the stop op does). */
void ldm_daemon_request_stop(struct ldm_daemon *d);
/* The process's exit status after the loop ends (0 unless set): a daemon whose work
 * failed for good sets 1 before asking to stop, so a supervisor sees the failure. */
void ldm_daemon_set_exit_status(struct ldm_daemon *d, int status);

/* Watch a ZMQ socket (fd ignored) or a descriptor (sock NULL) for input;
 * fn runs in the loop when it is readable. At most 16 watches. */
typedef void (*ldm_watch_fn)(struct ldm_daemon *d, void *arg);
int ldm_daemon_watch(struct ldm_daemon *d, void *sock, int fd, ldm_watch_fn fn, void *arg);
void ldm_daemon_unwatch(struct ldm_daemon *d, void *sock, int fd);

/* A named counter shown in status under "counters" (and its per-second
 * rate over the last ~10 s under "rates"). The pointer is stable for the
 * daemon's life; threads may add to it atomically. At most 64 counters;
 * the same name gives the same counter. NULL when the table is full. */
_Atomic uint64_t *ldm_daemon_counter(struct ldm_daemon *d, const char *name);

#endif

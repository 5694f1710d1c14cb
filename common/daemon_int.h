/* daemon_int.h — the daemon skeleton's internal state (daemon*.c only). */
#ifndef LDM_DAEMON_INT_H
#define LDM_DAEMON_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "curve.h"
#include "daemon.h"
#include "httpmetrics.h"
#include "sig.h"
#include "zap.h"

#define MAX_WATCH 16
#define MAX_COUNTERS 64
#define RATE_SLOTS 11 /* one sample a second: rates over the last 10 s */

struct watch {
    void *sock;
    int fd;
    ldm_watch_fn fn;
    void *arg;
};

struct counter {
    char name[48];
    _Atomic uint64_t value;
    uint64_t hist[RATE_SLOTS];
};

struct ldm_daemon {
    const struct ldm_daemon_ops *ops;
    void *ctx;
    void *cfg;                      /* the daemon's own config struct */
    struct ldm_daemon_common common;
    const char *cfg_file;           /* -c FILE, or NULL */
    int nover;                      /* --key=value overrides */
    char **over;
    char name[128];
    char run_dir[256];
    char control[512];              /* the endpoint actually bound */
    struct ldm_keypair server_key;
    int curve;
    void *zctx;
    void *ctl;                      /* REP control socket */
    struct ldm_zap *zap;
    struct ldm_signals sig;
    int paused, stopping;
    int exit_status; /* the status after a clean stop (ldm_daemon_set_exit_status) */
    double started;                 /* monotonic seconds */
    char *bound[MAX_WATCH + 1];    /* ipc endpoints bound, unlinked at exit */
    int nbound;
    struct watch watch[MAX_WATCH];
    int nwatch;
    struct counter counters[MAX_COUNTERS];
    int ncounters;
    int rate_samples;               /* samples taken so far */
    double next_rate, next_watchdog;
    double watchdog_s;              /* 0 = off */
    struct ldm_httpm *httpm;        /* metrics server, or NULL (metrics_port 0) */
};

double ldm_now(void); /* monotonic seconds */

/* daemon_ctl.c */
void ldm_daemon_handle_control(struct ldm_daemon *d);
int ldm_daemon_reload(struct ldm_daemon *d, char *why, size_t size);

/* daemon_cfg.c */
int ldm_daemon_parse_args(struct ldm_daemon *d, int argc, char **argv, int *exit_now);
int ldm_daemon_load_cfg(struct ldm_daemon *d, struct ldm_daemon_common *common, void *cfg);
void ldm_daemon_free_cfg(struct ldm_daemon *d, struct ldm_daemon_common *common, void *cfg);

/* daemon_stats.c */
void ldm_daemon_sample_rates(struct ldm_daemon *d);
void ldm_daemon_add_counters(struct ldm_daemon *d, json_t *reply);

#endif

/* daemon_cfg.c — the skeleton's command line and configuration keys. */
#include "daemon_int.h"
#include "err.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C(field) offsetof(struct ldm_daemon_common, field)

static const struct ldm_cfg_key common_keys[] = {
    {"id", LDM_CFG_STRING, C(id), NULL, 0, 0, 0, "instance name (the daemon is NAME-ID)"},
    {"control", LDM_CFG_ENDPOINT, C(control), NULL, 0, 0, 0,
     "control socket endpoint (default ipc://RUN_DIR/NAME.ctl)"},
    {"log_level", LDM_CFG_STRING, C(log_level), "info", 0, 0, 0, "debug, info, warn or error"},
    {"run_dir", LDM_CFG_STRING, C(run_dir), NULL, 0, 0, 0,
     "folder of ipc sockets (default $LDMPIPE_RUN_DIR, $XDG_RUNTIME_DIR/ldmpipe, /tmp/ldmpipe-UID)"},
    {"insecure", LDM_CFG_BOOL, C(insecure), "false", 0, 0, 0,
     "allow plain tcp on non-loopback addresses"},
    {"curve_key", LDM_CFG_STRING, C(curve_key), NULL, 0, 0, 0,
     "CURVE key pair file of this daemon (ldmctl keygen); turns on CURVE for tcp"},
    {"curve_allow", LDM_CFG_STRING, C(curve_allow), NULL, 0, 0, 0,
     "file of client public keys allowed to connect"},
    {"metrics_port", LDM_CFG_INT, C(metrics_port), "0", 0, 0, 65535,
     "serve Prometheus text at http://metrics_addr:PORT/metrics (0 = off)"},
    {"metrics_addr", LDM_CFG_STRING, C(metrics_addr), "127.0.0.1", 0, 0, 0,
     "address of the metrics server (non-loopback needs insecure)"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL},
};

static void usage(const struct ldm_daemon *d, FILE *out)
{
    struct ldm_cfg_part parts[2] = {{common_keys, NULL}, {d->ops->keys, NULL}};
    fprintf(out, "usage: %s [-c FILE] [--key=value ...]\n%s\n\n", d->ops->name,
            d->ops->summary ? d->ops->summary : "");
    fprintf(out, "Keys (in FILE's [common] and [%s] sections, or on the command line):\n",
            d->ops->name);
    ldm_cfg_usage(parts, d->ops->keys ? 2 : 1, out);
}

int ldm_daemon_parse_args(struct ldm_daemon *d, int argc, char **argv, int *exit_now)
{
    *exit_now = -1;
    d->over = calloc((size_t)argc + 1, sizeof *d->over);
    if (!d->over)
        return ldm_fail(LDM_ENOMEM, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(d, stdout);
            *exit_now = 0;
            return 0;
        }
        if (!strcmp(a, "--version")) {
            printf("%s %s\n", d->ops->name, LDM_VERSION);
            *exit_now = 0;
            return 0;
        }
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            if (i + 1 >= argc)
                return ldm_fail(LDM_ECONFIG, "command line: %s needs a file name", a);
            d->cfg_file = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            d->cfg_file = a + 9;
        } else {
            d->over[d->nover++] = argv[i];
        }
    }
    return 0;
}

int ldm_daemon_load_cfg(struct ldm_daemon *d, struct ldm_daemon_common *common, void *cfg)
{
    struct ldm_cfg_part parts[2] = {{common_keys, common}, {d->ops->keys, cfg}};
    return ldm_cfg_load(parts, d->ops->keys ? 2 : 1, d->ops->name, d->cfg_file, d->nover,
                        d->over);
}

void ldm_daemon_free_cfg(struct ldm_daemon *d, struct ldm_daemon_common *common, void *cfg)
{
    struct ldm_cfg_part parts[2] = {{common_keys, common}, {d->ops->keys, cfg}};
    ldm_cfg_free(parts, d->ops->keys ? 2 : 1);
}

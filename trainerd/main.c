/* main.c — trainerd: data-parallel UNet training from the LMDB cache.
 *
 * The daemon skeleton (common/daemon.h) runs the control socket, signals
 * and systemd notification; the training work plugs into its ops.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "err.h"

struct trainerd_cfg {
    char *device; /* cpu | cuda | cuda:N */
};

static const struct ldm_cfg_key keys[] = {
    {"device", LDM_CFG_STRING, offsetof(struct trainerd_cfg, device), "cpu", 0, 0, 0,
     "compute device: cpu, cuda or cuda:N"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL},
};

/* "cpu", "cuda" or "cuda:N" with N a small non-negative integer. */
static int check_device(const char *dev)
{
    if (!strcmp(dev, "cpu") || !strcmp(dev, "cuda"))
        return 0;
    if (!strncmp(dev, "cuda:", 5) && dev[5]) {
        char *end;
        long n = strtol(dev + 5, &end, 10);
        if (!*end && n >= 0 && n < 1024)
            return 0;
    }
    return ldm_fail(LDM_ECONFIG, "device: '%s' is not cpu, cuda or cuda:N", dev);
}

static int trainerd_start(struct ldm_daemon *d)
{
    const struct trainerd_cfg *cfg = ldm_daemon_cfg(d);
    int rc = check_device(cfg->device);
    if (rc)
        return rc;
    static const char *const counters[] = {"steps", "samples_seen", "checkpoints_written"};
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        ldm_daemon_counter(d, counters[i]);
    return 0;
}

static void trainerd_status(struct ldm_daemon *d, json_t *reply)
{
    const struct trainerd_cfg *cfg = ldm_daemon_cfg(d);
    json_object_set_new(reply, "device", json_string(cfg->device));
}

static const struct ldm_daemon_ops ops = {
    .name = "trainerd",
    .summary = "trainerd trains the UNet data-parallel from the latent cache, one process per GPU.",
    .keys = keys,
    .cfg_size = sizeof(struct trainerd_cfg),
    .start = trainerd_start,
    .status = trainerd_status,
};

int main(int argc, char **argv)
{
    return ldm_daemon_main(&ops, NULL, argc, argv);
}

/* main.c — encoderd: leases shards to loaders and stores VAE latents and text embeddings in LMDB, exactly once.
 *
 * The daemon skeleton (common/daemon.h) runs the control socket, signals
 * and systemd notification; the work of encoderd plugs into its ops.
 */
#include <stddef.h>

#include "daemon.h"

struct encoderd_state {
    struct ldm_daemon *d;
};

static int encoderd_start(struct ldm_daemon *d)
{
    struct encoderd_state *st = ldm_daemon_ctx(d);
    static const char *const counters[] = {"samples_received", "samples_committed", "samples_rejected", "shards_done"};
    st->d = d;
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        ldm_daemon_counter(d, counters[i]);
    return 0;
}

static const struct ldm_daemon_ops ops = {
    .name = "encoderd",
    .summary = "encoderd leases shards to loaders and stores VAE latents and text embeddings in LMDB, exactly once.",
    .start = encoderd_start,
};

int main(int argc, char **argv)
{
    struct encoderd_state st = {0};
    return ldm_daemon_main(&ops, &st, argc, argv);
}

/* main.c — loaderd: reads shards, decodes, crops, buckets and tokenizes samples, and pushes them to encoderd.
 *
 * The daemon skeleton (common/daemon.h) runs the control socket, signals
 * and systemd notification; the work of loaderd plugs into its ops.
 */
#include <stddef.h>

#include "daemon.h"

struct loaderd_state {
    struct ldm_daemon *d;
};

static int loaderd_start(struct ldm_daemon *d)
{
    struct loaderd_state *st = ldm_daemon_ctx(d);
    static const char *const counters[] = {"samples_sent", "shards_done", "samples_rejected"};
    st->d = d;
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        ldm_daemon_counter(d, counters[i]);
    return 0;
}

static const struct ldm_daemon_ops ops = {
    .name = "loaderd",
    .summary = "loaderd reads shards, decodes, crops, buckets and tokenizes samples, and pushes them to encoderd.",
    .start = loaderd_start,
};

int main(int argc, char **argv)
{
    struct loaderd_state st = {0};
    return ldm_daemon_main(&ops, &st, argc, argv);
}

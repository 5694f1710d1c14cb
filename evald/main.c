/* main.c — evald: samples images from checkpoints and computes FID and Inception Score.
 *
 * The daemon skeleton (common/daemon.h) runs the control socket, signals
 * and systemd notification; the work of evald plugs into its ops.
 */
#include <stddef.h>

#include "daemon.h"

struct evald_state {
    struct ldm_daemon *d;
};

static int evald_start(struct ldm_daemon *d)
{
    struct evald_state *st = ldm_daemon_ctx(d);
    static const char *const counters[] = {"checkpoints_seen", "evaluations_done", "images_sampled"};
    st->d = d;
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        ldm_daemon_counter(d, counters[i]);
    return 0;
}

static const struct ldm_daemon_ops ops = {
    .name = "evald",
    .summary = "evald samples images from checkpoints and computes FID and Inception Score.",
    .start = evald_start,
};

int main(int argc, char **argv)
{
    struct evald_state st = {0};
    return ldm_daemon_main(&ops, &st, argc, argv);
}

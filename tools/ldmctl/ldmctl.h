/* ldmctl.h — the parts of ldmctl shared between its files: finding the daemons
 * of a run directory, `ldmctl watch` (live progress of every daemon) and
 * `ldmctl plot` (a loss curve as a PNG).
 */
#ifndef LDMCTL_H
#define LDMCTL_H

#include "curve.h"

/* Exit statuses of ldmctl (see main.c): 0 ok, 1 a daemon answered an error
 * (or a file could not be read or written), 2 usage, 3 no answer / no daemon. */
#define LDMCTL_EXIT_ERROR 1
#define LDMCTL_EXIT_USAGE 2
#define LDMCTL_EXIT_NOANSWER 3

/* How to reach the daemons. Nothing here is owned by the struct. */
struct ldmctl_conn {
    const char *run_dir;               /* the resolved run directory (ldm_rundir) */
    const char *endpoint;              /* NULL: every NAME.ctl in run_dir; else one daemon:
                                          a name in run_dir or an endpoint with "://" */
    int timeout_ms;                    /* wait this long for each answer (> 0) */
    const char *server_public;         /* NULL, or the daemons' CURVE public key (Z85) */
    const struct ldm_keypair *client;  /* NULL, or this client's CURVE key pair */
};

/* The names of every NAME.ctl socket in `dir`, sorted by strcmp, into *names
 * (a malloc'd array of malloc'd strings; the caller frees each and the array;
 * NULL when there are none). Returns the count; 0 when the folder cannot be
 * read. */
int ldmctl_find_daemons(const char *dir, char ***names);

/* `ldmctl watch [--interval S] [--once]`; argv[0] is "watch". One screen with a
 * line per daemon (loaders: samples sent, rate, shards; encoderd: latents
 * committed, rate, queue, shards done/total; trainerd: step/total bar, loss,
 * img/s, ETA; evald: queue, step being evaluated, last FID and IS), read from
 * each daemon's `status` reply; a field a reply lacks prints as "-". Refreshed
 * every S seconds (default 2) until SIGINT or SIGTERM; when stdout is a
 * terminal the screen is redrawn in place (ANSI home / clear), otherwise each
 * refresh prints plain lines under a time header. --once prints one snapshot
 * (plain) and returns.
 * Returns the exit status: 0; LDMCTL_EXIT_USAGE (bad option);
 * LDMCTL_EXIT_NOANSWER with --once when no daemon is found (one line on
 * stderr naming the folder) or one of them gave no answer. */
int ldmctl_watch(const struct ldmctl_conn *c, int argc, char **argv);

/* `ldmctl plot METRICS.jsonl OUT.png [--width W] [--height H] [--window N]`;
 * argv[0] is "plot". Reads trainerd's metrics.jsonl (one JSON object a line with
 * integer "step" and number "loss"; lines of a resumed run that repeat a step
 * replace the earlier ones; a malformed line is reported on stderr with its
 * line number and skipped), and writes OUT.png atomically: W x H pixels
 * (default 800 x 480, each 160..8192), the loss per step in light blue, its
 * trailing moving average over N points (default: a twentieth of the points,
 * at least 1) in dark red, axes with tick marks, grid lines and numeric labels
 * drawn with a built-in 5x7 bitmap font.
 * Returns the exit status: 0; LDMCTL_EXIT_USAGE; LDMCTL_EXIT_ERROR when the
 * file cannot be read, holds no valid point, or OUT.png cannot be written
 * (a line on stderr names the file and what is wrong). */
int ldmctl_plot(int argc, char **argv);

#endif

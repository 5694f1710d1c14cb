/* sig.h — signals folded into a poll loop.
 *
 * ldm_signals_open() blocks SIGTERM, SIGINT and SIGHUP in the calling
 * thread (call it first in main, before starting threads: they inherit the
 * mask) and ignores SIGPIPE. A signal then arrives one of two ways, and the
 * loop polls both descriptors:
 *   - through a signalfd, when every thread blocks it (it stays pending for
 *     the process);
 *   - through a self-pipe, written by a handler, when it is delivered to a
 *     thread that does not block it — a library's thread started before
 *     main (OpenBLAS starts its pool when it is loaded).
 * Both descriptors are non-blocking and close-on-exec.
 */
#ifndef LDM_SIG_H
#define LDM_SIG_H

struct ldm_signals {
    int sfd; /* signalfd */
    int pfd; /* read end of the self-pipe */
};

/* Returns 0 or LDM_EIO. */
int ldm_signals_open(struct ldm_signals *s);

/* Read one pending signal from either descriptor: its number, 0 when none
 * is pending, or LDM_EIO. */
int ldm_signals_read(const struct ldm_signals *s);

void ldm_signals_close(struct ldm_signals *s);

#endif

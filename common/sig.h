/* sig.h — signals folded into a poll loop through signalfd.
 *
 * ldm_signals_open() blocks SIGTERM, SIGINT and SIGHUP in the calling
 * thread (call it first in main, before any thread is started: threads
 * inherit the mask, so the signals reach only the descriptor) and ignores
 * SIGPIPE. The returned descriptor is non-blocking and close-on-exec.
 */
#ifndef LDM_SIG_H
#define LDM_SIG_H

/* Returns a signalfd descriptor (>= 0) or LDM_EIO. */
int ldm_signals_open(void);

/* Read one pending signal: returns its number, 0 when none is pending, or
 * LDM_EIO. */
int ldm_signals_read(int fd);

#endif

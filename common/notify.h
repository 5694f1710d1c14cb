/* notify.h — the sd_notify protocol, without libsystemd.
 *
 * Datagrams to the socket named by $NOTIFY_SOCKET: a path, or an abstract
 * address when it starts with '@'. Without $NOTIFY_SOCKET every call is a
 * no-op that succeeds, so daemons call these unconditionally.
 */
#ifndef LDM_NOTIFY_H
#define LDM_NOTIFY_H

#include <stdint.h>

/* Send `state` (e.g. "READY=1\nSTATUS=serving"). Returns 0 (also when not
 * under systemd), LDM_ERANGE (address too long) or LDM_EIO (send failed). */
int ldm_notify(const char *state);

/* printf-style ldm_notify. */
int ldm_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval in microseconds when systemd expects WATCHDOG=1
 * pings from this process ($WATCHDOG_USEC set, and $WATCHDOG_PID unset or
 * equal to our pid), else 0. */
uint64_t ldm_watchdog_usec(void);

#endif

/* rundir.h — the run directory, where ipc:// sockets live.
 *
 * The folder is `override` when given, else $LDMPIPE_RUN_DIR, else
 * $XDG_RUNTIME_DIR/ldmpipe, else /tmp/ldmpipe-$UID. It is created with mode
 * 0700 when missing; an existing one must be a real folder (not a link)
 * owned by this user, and is brought to mode 0700 if it is wider.
 */
#ifndef LDM_RUNDIR_H
#define LDM_RUNDIR_H

#include <stddef.h>

/* Resolve and prepare the run directory into out (size bytes).
 * Returns 0, LDM_ERANGE (path too long), LDM_EDENIED (owned by someone else,
 * or a link) or LDM_EIO (cannot create). */
int ldm_rundir(char *out, size_t size, const char *override);

/* "ipc://RUNDIR/NAME.ctl"-style endpoint for `name` + `suffix`. Fails with
 * LDM_ERANGE when the socket path would not fit a Unix socket address. */
int ldm_rundir_endpoint(char *out, size_t size, const char *rundir, const char *name,
                        const char *suffix);

/* For an ipc:// endpoint: 1 when a process is listening on its socket file,
 * 0 when none is (no file, or a stale one), for any other scheme 0. */
int ldm_ipc_in_use(const char *endpoint);

#endif

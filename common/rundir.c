/* rundir.c — the 0700 run directory for ipc sockets. */
#include "rundir.h"
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int pick(char *out, size_t size, const char *override)
{
    const char *env = getenv("LDMPIPE_RUN_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (override && *override)
        n = snprintf(out, size, "%s", override);
    else if (env && *env)
        n = snprintf(out, size, "%s", env);
    else if (xdg && *xdg)
        n = snprintf(out, size, "%s/ldmpipe", xdg);
    else
        n = snprintf(out, size, "/tmp/ldmpipe-%u", (unsigned)getuid());
    if (n < 0 || (size_t)n >= size)
        return ldm_fail(LDM_ERANGE, "run directory path is too long");
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

int ldm_rundir(char *out, size_t size, const char *override)
{
    int rc = pick(out, size, override);
    if (rc)
        return rc;
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        return ldm_fail_errno(LDM_EIO, "run directory %s: cannot create", out);
    struct stat st;
    if (lstat(out, &st) != 0)
        return ldm_fail_errno(LDM_EIO, "run directory %s", out);
    if (!S_ISDIR(st.st_mode))
        return ldm_fail(LDM_EDENIED, "run directory %s is not a folder (a link or a file)", out);
    if (st.st_uid != getuid())
        return ldm_fail(LDM_EDENIED, "run directory %s is owned by uid %u, not by us (uid %u)", out,
                        (unsigned)st.st_uid, (unsigned)getuid());
    if ((st.st_mode & 07777) != 0700 && chmod(out, 0700) != 0)
        return ldm_fail_errno(LDM_EIO, "run directory %s: cannot set mode 0700", out);
    return 0;
}

int ldm_rundir_endpoint(char *out, size_t size, const char *rundir, const char *name,
                        const char *suffix)
{
    struct sockaddr_un sa;
    int n = snprintf(out, size, "ipc://%s/%s%s", rundir, name, suffix);
    if (n < 0 || (size_t)n >= size || (size_t)n - 6 >= sizeof sa.sun_path)
        return ldm_fail(LDM_ERANGE, "socket path %s/%s%s is longer than %zu bytes", rundir, name,
                        suffix, sizeof sa.sun_path - 1);
    return 0;
}

int ldm_ipc_in_use(const char *endpoint)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strncmp(endpoint, "ipc://", 6) != 0)
        return 0;
    const char *path = endpoint + 6;
    if (path[0] == '@' || strlen(path) >= sizeof sa.sun_path)
        return 0;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int alive = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return alive;
}

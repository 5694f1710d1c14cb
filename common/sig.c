/* sig.c — SIGTERM/SIGINT/SIGHUP through a signalfd and a self-pipe. */
#include "sig.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static int pipe_w = -1; /* the handler's end; one per process */

static void on_signal(int sig)
{
    int e = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(pipe_w, &b, 1); /* async-signal-safe; a full pipe drops it */
    (void)n;
    errno = e;
}

static int install(const sigset_t *set)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sa.sa_mask = *set;
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return ldm_fail_errno(LDM_EIO, "sigaction");
    return 0;
}

int ldm_signals_open(struct ldm_signals *s)
{
    sigset_t set;
    int p[2];
    s->sfd = s->pfd = -1;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return ldm_fail(LDM_EIO, "cannot block signals");
    signal(SIGPIPE, SIG_IGN);
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        return ldm_fail_errno(LDM_EIO, "signal pipe");
    if (pipe_w >= 0)
        close(pipe_w);
    pipe_w = p[1];
    s->pfd = p[0];
    s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->sfd < 0) {
        int rc = ldm_fail_errno(LDM_EIO, "signalfd");
        ldm_signals_close(s);
        return rc;
    }
    return install(&set);
}

int ldm_signals_read(const struct ldm_signals *s)
{
    struct signalfd_siginfo si;
    unsigned char b;
    ssize_t n = read(s->sfd, &si, sizeof si);
    if (n == (ssize_t)sizeof si)
        return (int)si.ssi_signo;
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        return ldm_fail_errno(LDM_EIO, "reading signalfd");
    n = read(s->pfd, &b, 1);
    if (n == 1)
        return b;
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        return ldm_fail_errno(LDM_EIO, "reading the signal pipe");
    return 0;
}

void ldm_signals_close(struct ldm_signals *s)
{
    if (s->sfd >= 0)
        close(s->sfd);
    if (s->pfd >= 0)
        close(s->pfd);
    s->sfd = s->pfd = -1;
}

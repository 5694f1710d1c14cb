/* err.c — error codes and the per-thread error detail. */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];

static const char *const texts[] = {
    "success",
    "bad argument",
    "input/output error",
    "out of memory",
    "malformed data",
    "bad configuration",
    "not found",
    "timed out",
    "value out of range",
    "messaging error",
    "access denied",
    "already exists",
    "not supported",
};

const char *ldm_strerror(int code)
{
    if (code > 0 || code <= LDM_ELAST)
        return "unknown error";
    return texts[-code];
}

/* Format into a scratch buffer first: callers may pass ldm_errmsg() itself as an
 * argument (wrapping the detail they got), and the buffer must not be its own source. */
static void vset(const char *fmt, va_list ap)
{
    char tmp[sizeof errbuf];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    memcpy(errbuf, tmp, sizeof tmp);
}

int ldm_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(fmt, ap);
    va_end(ap);
    return code;
}

int ldm_fail_errno(int code, const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    vset(fmt, ap);
    va_end(ap);
    size_t n = strlen(errbuf);
    snprintf(errbuf + n, sizeof errbuf - n, ": %s", strerror(e));
    return code;
}

const char *ldm_errmsg(void)
{
    return errbuf;
}

void ldm_err_clear(void)
{
    errbuf[0] = '\0';
}

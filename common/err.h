/* err.h — project error codes and the per-thread error detail.
 *
 * Every library function returns int: 0 on success or a negative LDM_E* code.
 * Where a failure has a useful detail (a file, a key, a line, a tensor name),
 * the function records it with ldm_fail() before returning, and the caller
 * reads it with ldm_errmsg(). The detail is per thread and is overwritten by
 * the next ldm_fail() on that thread.
 */
#ifndef LDM_ERR_H
#define LDM_ERR_H

#include <stddef.h>

enum {
    LDM_OK = 0,
    LDM_EINVAL = -1,      /* bad argument or value */
    LDM_EIO = -2,         /* a system call failed (errno in the detail) */
    LDM_ENOMEM = -3,      /* out of memory */
    LDM_EFORMAT = -4,     /* malformed outside data (file, message) */
    LDM_ECONFIG = -5,     /* bad configuration */
    LDM_ENOTFOUND = -6,   /* no such file, key or tensor */
    LDM_ETIMEOUT = -7,    /* no answer in time */
    LDM_ERANGE = -8,      /* value out of bounds */
    LDM_EZMQ = -9,        /* a ZeroMQ call failed */
    LDM_EDENIED = -10,    /* refused by a security rule */
    LDM_EEXIST = -11,     /* already exists or already running */
    LDM_EUNSUPPORTED = -12, /* valid but not supported (dtype, version) */
    LDM_ELAST = -13
};

/* The fixed text of a code ("bad argument", ...); never NULL. */
const char *ldm_strerror(int code);

/* Record a detail message for this thread and return `code`, so that a
 * failing path reads `return ldm_fail(LDM_EFORMAT, "%s: ...", path);` */
int ldm_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* As ldm_fail, appending ": strerror(errno)" with the errno at the call. */
int ldm_fail_errno(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last detail recorded on this thread, or ldm_strerror of nothing ("").
 * Valid until the next ldm_fail on this thread. */
const char *ldm_errmsg(void);

/* Forget the detail (ldm_errmsg() returns ""). */
void ldm_err_clear(void);

#endif

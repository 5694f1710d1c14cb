/* testutil.h — small helpers shared by the Check suites. */
#ifndef LDM_TESTUTIL_H
#define LDM_TESTUTIL_H

#include <check.h>
#include <stdlib.h>

#include "err.h"

/* Assert a call returned 0; on failure print the expression, the code's
 * text and the error detail. */
#define ck_ok(expr)                                                                                \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        ck_assert_msg(rc_ == 0, "%s returned %d (%s): %s", #expr, rc_, ldm_strerror(rc_),          \
                      ldm_errmsg());                                                               \
    } while (0)

/* Assert a call failed with `code` and that its detail contains `needle`. */
#define ck_fails_with(expr, code, needle)                                                          \
    do {                                                                                           \
        ldm_err_clear();                                                                           \
        int rc_ = (expr);                                                                          \
        ck_assert_msg(rc_ == (code), "%s returned %d (%s), expected %d; detail: %s", #expr, rc_,   \
                      ldm_strerror(rc_), (code), ldm_errmsg());                                    \
        ck_assert_msg(strstr(ldm_errmsg(), (needle)) != NULL,                                      \
                      "%s: detail \"%s\" does not mention \"%s\"", #expr, ldm_errmsg(), (needle)); \
    } while (0)

/* A fresh temporary folder for one test (mkdtemp under $TMPDIR or /tmp);
 * the caller frees the returned string and removes the folder with
 * tu_rmtree. */
char *tu_tmpdir(void);
void tu_rmtree(const char *path);

/* Write `len` bytes to `path` (creating it); aborts the test on failure. */
void tu_write_file(const char *path, const void *data, size_t len);

/* The shared test data folder ($LDM_TEST_DATA, default ../shared/data). */
const char *tu_data_dir(void);

#endif

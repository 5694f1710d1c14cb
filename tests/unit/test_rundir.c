/* test_rundir.c — the 0700 run directory and socket endpoints. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rundir.h"
#include "testutil.h"

START_TEST(created_0700_and_tightened)
{
    char *base = tu_tmpdir(), want[512], got[512];
    snprintf(want, sizeof want, "%s/run", base);
    setenv("LDMPIPE_RUN_DIR", want, 1);
    ck_ok(ldm_rundir(got, sizeof got, NULL));
    ck_assert_str_eq(got, want);
    struct stat st;
    ck_assert_int_eq(stat(got, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0700);
    chmod(got, 0755);
    ck_ok(ldm_rundir(got, sizeof got, NULL));
    ck_assert_int_eq(stat(got, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0700);
    unsetenv("LDMPIPE_RUN_DIR");
    tu_rmtree(base);
    free(base);
}
END_TEST

START_TEST(precedence_and_links_refused)
{
    char *base = tu_tmpdir(), path[400], got[512], link[512];
    snprintf(path, sizeof path, "%s/xdg", base);
    mkdir(path, 0700);
    unsetenv("LDMPIPE_RUN_DIR");
    setenv("XDG_RUNTIME_DIR", path, 1);
    ck_ok(ldm_rundir(got, sizeof got, NULL));
    snprintf(link, sizeof link, "%s/ldmpipe", path);
    ck_assert_str_eq(got, link);
    snprintf(path, sizeof path, "%s/override/", base);
    ck_ok(ldm_rundir(got, sizeof got, path));
    path[strlen(path) - 1] = '\0'; /* trailing slash dropped */
    ck_assert_str_eq(got, path);
    snprintf(link, sizeof link, "%s/alink", base);
    ck_assert_int_eq(symlink(path, link), 0);
    ck_fails_with(ldm_rundir(got, sizeof got, link), LDM_EDENIED, "alink");
    snprintf(path, sizeof path, "%s/afile", base);
    tu_write_file(path, "x", 1);
    ck_fails_with(ldm_rundir(got, sizeof got, path), LDM_EDENIED, "afile");
    unsetenv("XDG_RUNTIME_DIR");
    tu_rmtree(base);
    free(base);
}
END_TEST

START_TEST(endpoints_and_liveness)
{
    char ep[512], dir[300];
    ck_ok(ldm_rundir_endpoint(ep, sizeof ep, "/run/ldmpipe", "loaderd-1", ".ctl"));
    ck_assert_str_eq(ep, "ipc:///run/ldmpipe/loaderd-1.ctl");
    memset(dir, 'a', 200);
    dir[0] = '/';
    dir[200] = '\0';
    ck_fails_with(ldm_rundir_endpoint(ep, sizeof ep, dir, "x", ".ctl"), LDM_ERANGE, "longer");

    char *base = tu_tmpdir();
    snprintf(ep, sizeof ep, "ipc://%s/s.ctl", base);
    ck_assert_int_eq(ldm_ipc_in_use(ep), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/s.ctl", base);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(ldm_ipc_in_use(ep), 0); /* bound, not listening: stale */
    ck_assert_int_eq(listen(fd, 1), 0);
    ck_assert_int_eq(ldm_ipc_in_use(ep), 1);
    close(fd);
    ck_assert_int_eq(ldm_ipc_in_use(ep), 0);
    ck_assert_int_eq(ldm_ipc_in_use("tcp://127.0.0.1:5555"), 0);
    tu_rmtree(base);
    free(base);
}
END_TEST

Suite *suite_rundir(void);
Suite *suite_rundir(void)
{
    Suite *s = suite_create("rundir");
    TCase *tc = tcase_create("rundir");
    tcase_add_test(tc, created_0700_and_tightened);
    tcase_add_test(tc, precedence_and_links_refused);
    tcase_add_test(tc, endpoints_and_liveness);
    suite_add_tcase(s, tc);
    return s;
}

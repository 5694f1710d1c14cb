/* test_notify.c — sd_notify datagrams, path and abstract sockets; watchdog env. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"
#include "testutil.h"

/* Bind a datagram socket at `name` ('@' = abstract) and return it. */
static int listen_at(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(sa.sun_path, name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    if (name[0] == '@') {
        sa.sun_path[0] = '\0';
        len--;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, len), 0);
    return fd;
}

static void expect(int fd, const char *text)
{
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, text);
}

START_TEST(path_socket)
{
    char *dir = tu_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = listen_at(path);
    setenv("NOTIFY_SOCKET", path, 1);
    ck_ok(ldm_notify("READY=1"));
    expect(fd, "READY=1");
    ck_ok(ldm_notifyf("STATUS=%d samples", 42));
    expect(fd, "STATUS=42 samples");
    unsetenv("NOTIFY_SOCKET");
    close(fd);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(abstract_socket)
{
    char name[64];
    snprintf(name, sizeof name, "@ldmpipe-test-notify-%d", (int)getpid());
    int fd = listen_at(name);
    setenv("NOTIFY_SOCKET", name, 1);
    ck_ok(ldm_notify("WATCHDOG=1"));
    expect(fd, "WATCHDOG=1");
    unsetenv("NOTIFY_SOCKET");
    close(fd);
}
END_TEST

START_TEST(no_socket_is_a_noop_and_bad_names_fail)
{
    unsetenv("NOTIFY_SOCKET");
    ck_ok(ldm_notify("READY=1"));
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    ck_fails_with(ldm_notify("READY=1"), LDM_ERANGE, "relative/path");
    setenv("NOTIFY_SOCKET", "/nonexistent/ldmpipe/notify", 1);
    ck_fails_with(ldm_notify("READY=1"), LDM_EIO, "/nonexistent/ldmpipe/notify");
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(watchdog_env)
{
    char pid[32];
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    ck_assert_uint_eq(ldm_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "30000000", 1);
    ck_assert_uint_eq(ldm_watchdog_usec(), 30000000);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    ck_assert_uint_eq(ldm_watchdog_usec(), 30000000);
    setenv("WATCHDOG_PID", "1", 1); /* meant for another process */
    ck_assert_uint_eq(ldm_watchdog_usec(), 0);
    setenv("WATCHDOG_PID", pid, 1);
    setenv("WATCHDOG_USEC", "12abc", 1);
    ck_assert_uint_eq(ldm_watchdog_usec(), 0);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}
END_TEST

Suite *suite_notify(void);
Suite *suite_notify(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("sd_notify");
    tcase_add_test(tc, path_socket);
    tcase_add_test(tc, abstract_socket);
    tcase_add_test(tc, no_socket_is_a_noop_and_bad_names_fail);
    tcase_add_test(tc, watchdog_env);
    suite_add_tcase(s, tc);
    return s;
}

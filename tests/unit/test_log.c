/* test_log.c — the one-line structured log format. */
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "testutil.h"

START_TEST(plain_values_unquoted)
{
    char buf[256];
    ldm_log_format(buf, sizeof buf, LDM_LOG_INFO, "lease granted", "shard=%s lease=%d", "a.tar", 7);
    ck_assert_str_eq(buf, "level=info msg=\"lease granted\" shard=a.tar lease=7\n");
}
END_TEST

START_TEST(values_with_blanks_quoted_and_escaped)
{
    char buf[256];
    ldm_log_format(buf, sizeof buf, LDM_LOG_WARN, "bad \"caption\"", "key=%s empty=%s eq=%s",
                   "a b\n\"c\"", "", "x=y");
    ck_assert_str_eq(buf, "level=warn msg=\"bad \\\"caption\\\"\" key=\"a b\\n\\\"c\\\"\" "
                          "empty=\"\" eq=\"x=y\"\n");
}
END_TEST

START_TEST(numbers_and_widths)
{
    char buf[256];
    ldm_log_format(buf, sizeof buf, LDM_LOG_ERROR, "m", "a=%zu b=%lld c=%.3f d=%5.2s e=%x %%",
                   (size_t)12, -5LL, 1.5, "xyz", 255);
    ck_assert_str_eq(buf, "level=error msg=\"m\" a=12 b=-5 c=1.500 d=\"   xy\" e=ff %\n");
}
END_TEST

START_TEST(no_fields_and_truncation)
{
    char buf[24];
    int n = ldm_log_format(buf, sizeof buf, LDM_LOG_DEBUG, "a very long message indeed", NULL);
    ck_assert_int_eq(n, (int)strlen(buf));
    ck_assert_int_eq(n, 23);
    ck_assert_int_eq(buf[n - 1], '\n');
}
END_TEST

START_TEST(levels_filter_and_parse)
{
    int lvl = -1, fds[2];
    ck_ok(ldm_log_parse_level("warning", &lvl));
    ck_assert_int_eq(lvl, LDM_LOG_WARN);
    ck_fails_with(ldm_log_parse_level("loud", &lvl), LDM_EINVAL, "loud");
    ck_assert_int_eq(pipe(fds), 0);
    ldm_log_set_fd(fds[1]);
    ldm_log_set_level(LDM_LOG_WARN);
    LOG_INFO("dropped", "x=%d", 1);
    LOG_ERROR("kept", "x=%d", 2);
    ldm_log_set_fd(2);
    ldm_log_set_level(LDM_LOG_INFO);
    close(fds[1]);
    char buf[256] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(buf, "level=error msg=\"kept\" x=2\n");
}
END_TEST

Suite *suite_log(void);
Suite *suite_log(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, plain_values_unquoted);
    tcase_add_test(tc, values_with_blanks_quoted_and_escaped);
    tcase_add_test(tc, numbers_and_widths);
    tcase_add_test(tc, no_fields_and_truncation);
    tcase_add_test(tc, levels_filter_and_parse);
    suite_add_tcase(s, tc);
    return s;
}

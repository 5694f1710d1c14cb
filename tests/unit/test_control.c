/* test_control.c — the daemon skeleton's JSON control socket, run for real
 * in a child process and driven over ZeroMQ. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "json.h"
#include "log.h"
#include "testutil.h"
#include "zsock.h"

struct testd_cfg {
    int64_t threads;
};

static const struct ldm_cfg_key keys[] = {
    {"threads", LDM_CFG_INT, offsetof(struct testd_cfg, threads), "2", 0, 1, 64, "threads"},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL},
};

static int echo(struct ldm_daemon *d, const char *op, const json_t *req, json_t *reply)
{
    (void)d;
    if (strcmp(op, "echo") != 0)
        return 0;
    json_object_set(reply, "arg", json_object_get(req, "arg"));
    return 1;
}

static void testd_status(struct ldm_daemon *d, json_t *reply)
{
    const struct testd_cfg *cfg = ldm_daemon_cfg(d);
    json_object_set_new(reply, "threads", json_integer(cfg->threads));
}

static int testd_start(struct ldm_daemon *d)
{
    _Atomic uint64_t *c = ldm_daemon_counter(d, "widgets");
    *c += 5;
    return 0;
}

static const struct ldm_daemon_ops ops = {
    .name = "testd",
    .keys = keys,
    .cfg_size = sizeof(struct testd_cfg),
    .start = testd_start,
    .status = testd_status,
    .command = echo,
};

struct child {
    pid_t pid;
    char *dir;
    char conf[512], ep[600], sock[512];
    void *zctx;
};

static void spawn(struct child *c, const char *conf_text)
{
    c->dir = tu_tmpdir();
    snprintf(c->conf, sizeof c->conf, "%s/t.conf", c->dir);
    tu_write_file(c->conf, conf_text, strlen(conf_text));
    snprintf(c->sock, sizeof c->sock, "%s/testd-t.ctl", c->dir);
    snprintf(c->ep, sizeof c->ep, "ipc://%s", c->sock);
    c->pid = fork();
    ck_assert_int_ge(c->pid, 0);
    if (c->pid == 0) {
        char rd[600];
        snprintf(rd, sizeof rd, "--run_dir=%s", c->dir);
        char *argv[] = {"testd", "-c", c->conf, rd, "--id=t", NULL};
        ldm_log_set_level(LDM_LOG_ERROR);
        _exit(ldm_daemon_main(&ops, NULL, 5, argv));
    }
    for (int i = 0; i < 500 && access(c->sock, F_OK) != 0; i++)
        usleep(10000);
    ck_assert_msg(access(c->sock, F_OK) == 0, "daemon never bound %s", c->sock);
    c->zctx = zmq_ctx_new();
}

static int reap(struct child *c)
{
    int st = -1;
    for (int i = 0; i < 500; i++) {
        if (waitpid(c->pid, &st, WNOHANG) == c->pid)
            break;
        usleep(10000);
    }
    zmq_ctx_term(c->zctx);
    ck_assert_msg(access(c->sock, F_OK) != 0, "control socket file left behind");
    tu_rmtree(c->dir);
    free(c->dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *ask(struct child *c, const char *text)
{
    json_t *req = NULL, *reply = NULL;
    ck_ok(ldm_json_parse_object(text, strlen(text), "test", &req));
    ck_ok(ldm_zrequest(c->zctx, c->ep, NULL, NULL, req, 3000, &reply));
    json_decref(req);
    return reply;
}

static json_t *ask_raw(struct child *c, const char *frame1, const char *frame2)
{
    void *s = zmq_socket(c->zctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    ck_ok(ldm_zconnect(s, c->ep, NULL, NULL));
    zmq_send(s, frame1, strlen(frame1), frame2 ? ZMQ_SNDMORE : 0);
    if (frame2)
        zmq_send(s, frame2, strlen(frame2), 0);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    ck_assert_int_eq(zmq_poll(&it, 1, 3000), 1);
    json_t *reply = NULL;
    ck_ok(ldm_zrecv_json(s, 1 << 20, &reply));
    zmq_close(s);
    return reply;
}

#define ck_field_str(j, k, want) ck_assert_str_eq(json_string_value(json_object_get(j, k)), want)
#define ck_ok_field(j, want) ck_assert_int_eq(json_is_true(json_object_get(j, "ok")), want)

START_TEST(status_pause_resume_stop)
{
    struct child c;
    spawn(&c, "[testd]\nthreads = 3\n");
    json_t *r = ask(&c, "{\"op\":\"status\"}");
    ck_ok_field(r, 1);
    ck_field_str(r, "daemon", "testd");
    ck_field_str(r, "name", "testd-t");
    ck_field_str(r, "state", "running");
    ck_assert(json_number_value(json_object_get(r, "uptime_s")) >= 0);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "threads")), 3);
    json_t *counters = json_object_get(r, "counters");
    ck_assert_int_eq(json_integer_value(json_object_get(counters, "widgets")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(counters, "control_requests")), 1);
    ck_assert_ptr_nonnull(json_object_get(json_object_get(r, "rates"), "widgets"));
    json_decref(r);
    r = ask(&c, "{\"op\":\"pause\"}");
    ck_field_str(r, "state", "paused");
    json_decref(r);
    r = ask(&c, "{\"op\":\"status\"}");
    ck_field_str(r, "state", "paused");
    json_decref(r);
    json_decref(ask(&c, "{\"op\":\"resume\"}"));
    r = ask(&c, "{\"op\":\"status\"}");
    ck_field_str(r, "state", "running");
    json_decref(r);
    r = ask(&c, "{\"op\":\"stop\"}");
    ck_ok_field(r, 1);
    ck_field_str(r, "state", "stopping");
    json_decref(r);
    ck_assert_int_eq(reap(&c), 0);
}
END_TEST

START_TEST(bad_requests_get_errors)
{
    struct child c;
    spawn(&c, "[testd]\n");
    json_t *r = ask(&c, "{\"op\":\"frobnicate\"}");
    ck_ok_field(r, 0);
    ck_assert(strstr(json_string_value(json_object_get(r, "error")), "frobnicate"));
    json_decref(r);
    r = ask(&c, "{\"cmd\":\"status\"}");
    ck_ok_field(r, 0);
    ck_assert(strstr(json_string_value(json_object_get(r, "error")), "\"op\""));
    json_decref(r);
    r = ask_raw(&c, "{\"op\": stat", NULL);
    ck_ok_field(r, 0);
    ck_assert(strstr(json_string_value(json_object_get(r, "error")), "request: line 1"));
    json_decref(r);
    r = ask_raw(&c, "[1,2]", NULL);
    ck_assert(strstr(json_string_value(json_object_get(r, "error")), "not a JSON object"));
    json_decref(r);
    r = ask_raw(&c, "{\"op\":\"status\"}", "extra");
    ck_ok_field(r, 0);
    ck_assert(strstr(json_string_value(json_object_get(r, "error")), "more than one frame"));
    json_decref(r);
    r = ask(&c, "{\"op\":\"echo\",\"arg\":\"hello\"}");
    ck_ok_field(r, 1);
    ck_field_str(r, "arg", "hello");
    json_decref(r);
    r = ask(&c, "{\"op\":\"status\"}"); /* still alive, errors counted */
    json_t *counters = json_object_get(r, "counters");
    ck_assert_int_eq(json_integer_value(json_object_get(counters, "control_errors")), 4);
    json_decref(r);
    kill(c.pid, SIGTERM);
    ck_assert_int_eq(reap(&c), 0);
}
END_TEST

START_TEST(reload_and_signals)
{
    struct child c;
    spawn(&c, "[testd]\nthreads = 3\n");
    tu_write_file(c.conf, "[testd]\nthreads = many\n", 23);
    json_t *r = ask(&c, "{\"op\":\"reload\"}");
    ck_ok_field(r, 0);
    const char *err = json_string_value(json_object_get(r, "error"));
    ck_assert_msg(strstr(err, "threads") && strstr(err, ":2"), "reload error: %s", err);
    json_decref(r);
    tu_write_file(c.conf, "[testd]\nlog_level = debug\n", 26);
    r = ask(&c, "{\"op\":\"reload\"}");
    ck_ok_field(r, 1);
    json_decref(r);
    kill(c.pid, SIGHUP);
    usleep(100000);
    r = ask(&c, "{\"op\":\"status\"}");
    json_t *counters = json_object_get(r, "counters");
    ck_assert_int_eq(json_integer_value(json_object_get(counters, "reloads")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(counters, "reload_errors")), 1);
    json_decref(r);
    kill(c.pid, SIGINT);
    ck_assert_int_eq(reap(&c), 0);
}
END_TEST

START_TEST(bad_config_stops_startup)
{
    char *dir = tu_tmpdir(), conf[512], rd[600];
    snprintf(conf, sizeof conf, "%s/t.conf", dir);
    tu_write_file(conf, "[testd]\nthreads = 200\n", 22);
    snprintf(rd, sizeof rd, "--run_dir=%s", dir);
    char *argv[] = {"testd", "-c", conf, rd, NULL};
    ldm_log_set_level(LDM_LOG_OFF);
    ck_assert_int_eq(ldm_daemon_main(&ops, NULL, 4, argv), LDM_EXIT_CONFIG);
    char *argv2[] = {"testd", rd, "--nosuchkey=1", NULL};
    ck_assert_int_eq(ldm_daemon_main(&ops, NULL, 3, argv2), LDM_EXIT_CONFIG);
    ldm_log_set_level(LDM_LOG_INFO);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_control(void);
Suite *suite_control(void)
{
    Suite *s = suite_create("control");
    TCase *tc = tcase_create("control");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, status_pause_resume_stop);
    tcase_add_test(tc, bad_requests_get_errors);
    tcase_add_test(tc, reload_and_signals);
    tcase_add_test(tc, bad_config_stops_startup);
    suite_add_tcase(s, tc);
    return s;
}

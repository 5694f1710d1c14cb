/* test_metrics.c — CRC32C, TensorBoard event files (read back here and by
 * tests/golden/tfevents_check.py), the Prometheus text builder, and the
 * non-blocking HTTP metrics server, alone and inside the daemon skeleton. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon.h"
#include "httpmetrics.h"
#include "log.h"
#include "testutil.h"
#include "trainerd/tfevents.h"

#define PYTHON "/usr/bin/python3"

START_TEST(crc32c_vectors)
{
    uint8_t z[32], f[32], inc[32];
    for (int i = 0; i < 32; i++)
        z[i] = 0, f[i] = 0xFF, inc[i] = (uint8_t)i;
    ck_assert_uint_eq(td_crc32c("123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(td_crc32c("", 0), 0);
    ck_assert_uint_eq(td_crc32c(z, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    ck_assert_uint_eq(td_crc32c(f, 32), 0x62A8AB43u);
    ck_assert_uint_eq(td_crc32c(inc, 32), 0x46DD794Eu);
    ck_assert_uint_eq(td_crc32c_mask(0), 0xa282ead8u);
    ck_assert_uint_eq(td_crc32c_mask(0x12345678u), ((0x12345678u >> 15) | (0x12345678u << 17)) +
                                                       0xa282ead8u);
}
END_TEST

/* --- a small reader of our own: TFRecord framing + protobuf fields -------- */

struct scalar {
    char tag[64];
    int64_t step;
    float value;
    double wall;
};

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_varint(const uint8_t *p, size_t *i, size_t end)
{
    uint64_t v = 0;
    for (int shift = 0; *i < end && shift < 64; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80))
            break;
    }
    return v;
}

/* Walk one message: for each length-delimited field, recurse through `sub`
 * fields (Summary -> Value); fills s. Returns 1 when a file_version was seen. */
static int parse_msg(const uint8_t *p, size_t end, int depth, struct scalar *s)
{
    size_t i = 0;
    int version = 0;
    while (i < end) {
        uint64_t key = get_varint(p, &i, end);
        int num = (int)(key >> 3), wt = (int)(key & 7);
        if (wt == 0) {
            uint64_t v = get_varint(p, &i, end);
            if (depth == 0 && num == 2)
                s->step = (int64_t)v;
        } else if (wt == 1) {
            uint64_t v = get_le(p + i, 8);
            if (depth == 0 && num == 1)
                memcpy(&s->wall, &v, 8);
            i += 8;
        } else if (wt == 5) {
            uint32_t v = (uint32_t)get_le(p + i, 4);
            if (depth == 2 && num == 2)
                memcpy(&s->value, &v, 4);
            i += 4;
        } else {
            ck_assert_int_eq(wt, 2);
            size_t n = get_varint(p, &i, end);
            ck_assert_uint_le(i + n, end);
            if (depth == 0 && num == 3)
                version = n == 13 && !memcmp(p + i, "brain.Event:2", 13);
            else if (depth == 2 && num == 1)
                snprintf(s->tag, sizeof s->tag, "%.*s", (int)n, (const char *)p + i);
            else if ((depth == 0 && num == 5) || (depth == 1 && num == 1))
                parse_msg(p + i, n, depth + 1, s);
            i += n;
        }
    }
    ck_assert_uint_eq(i, end);
    return version;
}

/* Read a whole event file: checks framing and CRCs; returns scalars read. */
static int read_events(const char *path, struct scalar *out, int max)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    static uint8_t buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f), i = 0;
    fclose(f);
    int n = 0, first = 1;
    while (i < len) {
        ck_assert_uint_le(i + 12, len);
        uint64_t rl = get_le(buf + i, 8);
        ck_assert_uint_eq(get_le(buf + i + 8, 4), td_crc32c_mask(td_crc32c(buf + i, 8)));
        ck_assert_uint_le(i + 16 + rl, len);
        ck_assert_uint_eq(get_le(buf + i + 12 + rl, 4),
                          td_crc32c_mask(td_crc32c(buf + i + 12, rl)));
        struct scalar s = {0};
        int version = parse_msg(buf + i + 12, rl, 0, &s);
        ck_assert_int_eq(version, first);
        ck_assert_msg(s.wall > 1.6e9, "wall_time %f", s.wall);
        if (!first) {
            ck_assert_int_lt(n, max);
            out[n++] = s;
        }
        first = 0;
        i += 16 + rl;
    }
    return n;
}

static void find_event_file(const char *dir, char *path, size_t size)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    path[0] = '\0';
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "events.out.tfevents.", 20)) {
            const char *dot = strchr(e->d_name + 20, '.');
            ck_assert_msg(dot && !strcmp(dot + 1, host), "name %s", e->d_name);
            long long t = atoll(e->d_name + 20);
            ck_assert_msg(llabs(t - (long long)time(NULL)) < 60, "time in name %lld", t);
            snprintf(path, size, "%s/%s", dir, e->d_name);
        }
    closedir(d);
    ck_assert_msg(path[0], "no event file in %s", dir);
}

static const char *tags[] = {"loss", "lr", "grad_norm", "img_per_s"};
static const float vals[] = {0.1234567f, 1e-4f, 3.5f, 812.25f};

START_TEST(tfevents_roundtrip)
{
    char *dir = tu_tmpdir(), path[4400], cmd[9000];
    struct td_tfevents *w = NULL;
    ck_ok(td_tfevents_open(dir, &w));
    for (int64_t step = 1; step <= 3; step++)
        for (int k = 0; k < 4; k++)
            ck_ok(td_tfevents_scalar(w, tags[k], step * 1000000007LL, 1.7e9 + (double)step,
                                     vals[k] * (float)step));
    ck_fails_with(td_tfevents_scalar(w, "", 1, 1.7e9, 0), LDM_EINVAL, "tag");
    char longtag[200];
    memset(longtag, 'a', sizeof longtag - 1);
    longtag[sizeof longtag - 1] = '\0';
    ck_fails_with(td_tfevents_scalar(w, longtag, 1, 1.7e9, 0), LDM_EINVAL, "tag");
    td_tfevents_close(&w);
    ck_assert_ptr_null(w);
    find_event_file(dir, path, sizeof path);

    struct scalar s[32];
    ck_assert_int_eq(read_events(path, s, 32), 12);
    for (int i = 0; i < 12; i++) {
        int64_t step = i / 4 + 1;
        ck_assert_str_eq(s[i].tag, tags[i % 4]);
        ck_assert_int_eq(s[i].step, step * 1000000007LL);
        ck_assert_float_eq(s[i].value, vals[i % 4] * (float)step);
        ck_assert_double_eq(s[i].wall, 1.7e9 + (double)step);
    }

    int n = snprintf(cmd, sizeof cmd, PYTHON " tests/golden/tfevents_check.py '%s'", path);
    for (int i = 0; i < 12; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " %s:%lld:%.9g", tags[i % 4],
                      (long long)((i / 4 + 1) * 1000000007LL), (double)s[i].value);
    ck_assert_int_eq(system(cmd), 0);
    /* the checker is no rubber stamp: a flipped data byte fails it */
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 60, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 60, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
    strcat(cmd, " >/dev/null");
    ck_assert_int_ne(system(cmd), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(tfevents_encode_bounds)
{
    uint8_t buf[256];
    size_t len;
    ck_ok(td_tfevents_encode(NULL, 0, 1.5, 0, buf, sizeof buf, &len));
    ck_assert_uint_eq(len, 16 + 9 + 2 + 2 + 13);
    ck_fails_with(td_tfevents_encode("loss", 1, 1.5, 0, buf, 20, &len), LDM_ERANGE, "room");
    ck_ok(td_tfevents_encode("loss", -1, 1.5, 2.0f, buf, sizeof buf, &len));
    ck_assert_uint_eq(len, 16 + 9 + 11 + 2 + 2 + 2 + 4 + 5); /* step -1: ten varint bytes */
    ck_fails_with(td_tfevents_open("/nonexistent/dir", &(struct td_tfevents *){NULL}), LDM_EIO,
                  "/nonexistent/dir/events.out.tfevents.");
}
END_TEST

START_TEST(prom_text_format)
{
    char buf[512];
    struct ldm_promtext t = {buf, sizeof buf, 0, 0};
    ldm_prom_sample(&t, "ldmpipe_bad-name.x_total", "counter", "a\"b\\c", 42);
    ldm_prom_sample(&t, "ldmpipe_up", NULL, NULL, 1);
    ldm_prom_sample(&t, "ldmpipe_loss", NULL, "d", 0.25);
    ck_assert_str_eq(buf, "# TYPE ldmpipe_bad_name_x_total counter\n"
                          "ldmpipe_bad_name_x_total{daemon=\"a\\\"b\\\\c\"} 42\n"
                          "ldmpipe_up 1\n"
                          "ldmpipe_loss{daemon=\"d\"} 0.25\n");
    ck_assert_int_eq(t.overflow, 0);
    struct ldm_promtext small = {buf, 16, 0, 0};
    ldm_prom_sample(&small, "ldmpipe_up", NULL, NULL, 1);
    ldm_prom_sample(&small, "ldmpipe_up", NULL, NULL, 1);
    ck_assert_int_eq(small.overflow, 1);
}
END_TEST

/* --- the HTTP server, polled by a thread of the test -------------------- */

struct server {
    struct ldm_httpm *h;
    atomic_int stop;
    pthread_t thread;
};

static int render_fixed(void *arg, struct ldm_promtext *t)
{
    (void)arg;
    ldm_prom_sample(t, "ldmpipe_widgets_total", "counter", "testd", 7);
    ldm_prom_sample(t, "ldmpipe_up", "gauge", NULL, 1);
    return 0;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    zmq_pollitem_t items[LDM_HTTPM_ITEMS];
    while (!atomic_load(&s->stop)) {
        int n = ldm_httpm_items(s->h, items);
        if (zmq_poll(items, n, 20) >= 0)
            ldm_httpm_handle(s->h, items, n);
    }
    return NULL;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send req on a fresh connection; read until close into buf; returns bytes
 * read (-1 when the connection failed or was reset before any byte). */
static int fetch_on(int fd, const char *req, size_t reqlen, char *buf, size_t size)
{
    if (reqlen)
        send(fd, req, reqlen, MSG_NOSIGNAL);
    size_t n = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + n, size - 1 - n, 0);
        if (k <= 0) {
            if (k < 0 && n == 0 && errno != ECONNRESET)
                n = (size_t)-2; /* timeout: no answer, not closed */
            break;
        }
        n += (size_t)k;
    }
    close(fd);
    if (n == (size_t)-2)
        return -2;
    buf[n] = '\0';
    return (int)n;
}

static int fetch(int port, const char *req, char *buf, size_t size)
{
    int fd = connect_to(port);
    return fd < 0 ? -1 : fetch_on(fd, req, strlen(req), buf, size);
}

START_TEST(http_server_direct)
{
    struct server s = {0};
    ck_fails_with(ldm_httpm_open("0.0.0.0", 0, 0, render_fixed, NULL, &s.h), LDM_EDENIED,
                  "non-loopback");
    ck_fails_with(ldm_httpm_open("nohost", 0, 0, render_fixed, NULL, &s.h), LDM_ECONFIG,
                  "metrics_addr");
    ck_ok(ldm_httpm_open("127.0.0.1", 0, 0, render_fixed, NULL, &s.h));
    int port = ldm_httpm_port(s.h);
    ck_assert_int_gt(port, 0);
    ck_assert_int_eq(pthread_create(&s.thread, NULL, serve, &s), 0);

    /* silent clients first: more of them than the server keeps */
    int silent[LDM_HTTPM_CLIENTS + 2];
    for (int i = 0; i < LDM_HTTPM_CLIENTS + 2; i++)
        ck_assert_int_ge(silent[i] = connect_to(port), 0);
    char buf[8192];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = fetch(port, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n", buf, sizeof buf);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    ck_assert_msg(n > 0, "no answer beside silent clients (%d)", n);
    ck_assert_msg(ms < 1000, "answer took %.0f ms beside silent clients", ms);
    ck_assert_msg(!strncmp(buf, "HTTP/1.0 200 OK\r\n", 17), "got: %s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "Content-Type: text/plain; version=0.0.4"));
    const char *body = strstr(buf, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    ck_assert_str_eq(body + 4, "# TYPE ldmpipe_widgets_total counter\n"
                               "ldmpipe_widgets_total{daemon=\"testd\"} 7\n"
                               "# TYPE ldmpipe_up gauge\nldmpipe_up 1\n");
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(body + 4));
    ck_assert_ptr_nonnull(strstr(buf, cl));
    for (int i = 0; i < LDM_HTTPM_CLIENTS + 2; i++)
        close(silent[i]);

    ck_assert_int_gt(fetch(port, "GET /metrics?x=1 HTTP/1.1\n\n", buf, sizeof buf), 0);
    ck_assert_msg(!strncmp(buf, "HTTP/1.0 200 OK\r\n", 17), "got: %s", buf);
    ck_assert_int_gt(fetch(port, "GET /other HTTP/1.0\r\n\r\n", buf, sizeof buf), 0);
    ck_assert_msg(!strncmp(buf, "HTTP/1.0 404 ", 13), "got: %s", buf);
    ck_assert_int_gt(fetch(port, "POST /metrics HTTP/1.0\r\n\r\n", buf, sizeof buf), 0);
    ck_assert_msg(!strncmp(buf, "HTTP/1.0 404 ", 13), "got: %s", buf);
    ck_assert_int_gt(fetch(port, "garbage\r\n\r\n", buf, sizeof buf), 0);
    ck_assert_msg(!strncmp(buf, "HTTP/1.0 400 ", 13), "got: %s", buf);

    /* an oversized request head: closed, never answered */
    static char big[3 * LDM_HTTPM_REQ_MAX];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /metrics HTTP/1.0\r\nX: ", 26);
    int fd = connect_to(port);
    ck_assert_int_ge(fd, 0);
    n = fetch_on(fd, big, sizeof big, buf, sizeof buf);
    ck_assert_msg(n == 0 || n == -1, "oversized request answered (%d): %.40s", n, buf);

    /* still serving */
    ck_assert_int_gt(fetch(port, "GET /metrics HTTP/1.0\r\n\r\n", buf, sizeof buf), 0);
    ck_assert_msg(!strncmp(buf, "HTTP/1.0 200 OK\r\n", 17), "got: %s", buf);
    atomic_store(&s.stop, 1);
    pthread_join(s.thread, NULL);
    ldm_httpm_close(&s.h);
    ck_assert_ptr_null(s.h);
}
END_TEST

/* --- the server inside the daemon skeleton ------------------------------ */

static void metricsd_status(struct ldm_daemon *d, json_t *reply)
{
    (void)d;
    json_object_set_new(reply, "training", json_pack("{s:s,s:I,s:f,s:b}", "state", "training",
                                                     "step", (json_int_t)12, "loss", 0.5,
                                                     "waiting", 0));
    json_object_set_new(reply, "threads", json_integer(2));
}

static int metricsd_start(struct ldm_daemon *d)
{
    *ldm_daemon_counter(d, "widgets") += 5;
    *ldm_daemon_counter(d, "bad samples") += 1;
    return 0;
}

static const struct ldm_daemon_ops metricsd_ops = {
    .name = "metricsd",
    .start = metricsd_start,
    .status = metricsd_status,
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int run_metricsd(const char *dir, int argc, char **extra)
{
    char rd[600];
    snprintf(rd, sizeof rd, "--run_dir=%s", dir);
    char *argv[8] = {"metricsd", rd, "--id=t"};
    for (int i = 0; i < argc; i++)
        argv[3 + i] = extra[i];
    return ldm_daemon_main(&metricsd_ops, NULL, 3 + argc, argv);
}

START_TEST(http_in_daemon)
{
    char *dir = tu_tmpdir(), portarg[64], buf[16384];
    int port = free_port();
    snprintf(portarg, sizeof portarg, "--metrics_port=%d", port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ldm_log_set_level(LDM_LOG_ERROR);
        _exit(run_metricsd(dir, 1, (char *[]){portarg}));
    }
    int n = -1;
    for (int i = 0; i < 500 && n <= 0; i++) {
        n = fetch(port, "GET /metrics HTTP/1.0\r\n\r\n", buf, sizeof buf);
        if (n <= 0)
            usleep(10000);
    }
    ck_assert_msg(n > 0, "metricsd never answered on port %d", port);
    const char *want[] = {
        "\r\n\r\n# TYPE ldmpipe_up gauge\nldmpipe_up 1\n",
        "\n# TYPE ldmpipe_widgets_total counter\nldmpipe_widgets_total{daemon=\"metricsd-t\"} 5\n",
        "\nldmpipe_bad_samples_total{daemon=\"metricsd-t\"} 1\n",
        "\n# TYPE ldmpipe_training_step gauge\nldmpipe_training_step{daemon=\"metricsd-t\"} 12\n",
        "\nldmpipe_training_loss{daemon=\"metricsd-t\"} 0.5\n",
        "\nldmpipe_threads{daemon=\"metricsd-t\"} 2\n",
        "\nldmpipe_uptime_seconds{daemon=\"metricsd-t\"} ",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(buf, want[i]), "missing %s in:\n%s", want[i], buf);
    ck_assert_ptr_null(strstr(buf, "state"));   /* strings are not gauges */
    ck_assert_ptr_null(strstr(buf, "waiting")); /* nor booleans */
    ck_assert_int_gt(fetch(port, "GET / HTTP/1.0\r\n\r\n", buf, sizeof buf), 0);
    ck_assert_msg(!strncmp(buf, "HTTP/1.0 404 ", 13), "got: %s", buf);
    kill(pid, SIGTERM);
    int st = -1;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "metricsd status %d", st);
    ck_assert_int_lt(fetch(port, "GET /metrics HTTP/1.0\r\n\r\n", buf, sizeof buf), 0);

    ldm_log_set_level(LDM_LOG_OFF);
    ck_assert_int_eq(run_metricsd(dir, 2, (char *[]){portarg, "--metrics_addr=0.0.0.0"}),
                     LDM_EXIT_CONFIG);
    ck_assert_int_eq(run_metricsd(dir, 1, (char *[]){"--metrics_port=70000"}), LDM_EXIT_CONFIG);
    ck_assert_int_eq(run_metricsd(dir, 2, (char *[]){portarg, "--metrics_addr=nohost"}),
                     LDM_EXIT_CONFIG);
    ldm_log_set_level(LDM_LOG_INFO);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_metrics(void);
Suite *suite_metrics(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, crc32c_vectors);
    tcase_add_test(tc, tfevents_roundtrip);
    tcase_add_test(tc, tfevents_encode_bounds);
    tcase_add_test(tc, prom_text_format);
    tcase_add_test(tc, http_server_direct);
    tcase_add_test(tc, http_in_daemon);
    suite_add_tcase(s, tc);
    return s;
}

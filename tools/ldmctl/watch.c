/* watch.c — `ldmctl watch`: one screen, a line per daemon, refreshed.
 *
 * Each refresh asks every daemon found in the run directory (or the one given
 * with --endpoint) for its `status`, turns each reply into one line (the
 * fields of proto/control.md's status reply and each daemon's own members:
 * loaderd counters, encoderd `shards`/`batching`, trainerd `training{}`, evald
 * `queue`/`evaluating`/`last{}`), orders the lines as the pipeline runs
 * (loaders, encoder, trainer, evaluator) and prints them: redrawn in place
 * with ANSI cursor-home / clear-to-end when stdout is a terminal, as plain
 * lines under a time header otherwise. A socket nobody listens on (a daemon
 * killed without cleaning up) is shown as such without waiting for a reply.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "err.h"
#include "json.h"
#include "ldmctl.h"
#include "rundir.h"
#include "zsock.h"

#define BAR_W 20
#define LINE_MAX_LEN 1024

enum kind { K_LOADER, K_ENCODER, K_TRAINER, K_EVAL, K_OTHER };

struct row {
    int kind;
    char name[128];
    char text[LINE_MAX_LEN];
    int answered;
};

/* A growing line of text; writes past the end are cut. */
struct sb {
    char *buf;
    size_t size, len;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void sb_printf(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *s, const char *fmt, ...)
{
    if (s->len + 1 >= s->size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->buf + s->len, s->size - s->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->len = s->len + (size_t)n < s->size ? s->len + (size_t)n : s->size - 1;
}

/* ---- reading replies ------------------------------------------------------------------ */

/* The member at a dotted path ("training.step"), or NULL. */
static const json_t *jget(const json_t *o, const char *path)
{
    char key[64];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        o = json_object_get(o, key);
        path += n + (dot != NULL);
    }
    return o;
}

/* An integer field, or "-". */
static void sb_int(struct sb *s, const json_t *o, const char *path)
{
    const json_t *v = jget(o, path);
    if (json_is_number(v))
        sb_printf(s, "%lld", (long long)llround(json_number_value(v)));
    else
        sb_printf(s, "-");
}

/* A number field with `fmt` (one double conversion), or "-". */
static void sb_real(struct sb *s, const char *fmt, const json_t *o, const char *path)
{
    const json_t *v = jget(o, path);
    if (json_is_number(v) && isfinite(json_number_value(v)))
        sb_printf(s, fmt, json_number_value(v));
    else
        sb_printf(s, "-");
}

/* A string field, or "-". */
static const char *str_or_dash(const json_t *o, const char *path)
{
    const char *v = json_string_value(jget(o, path));
    return v && *v ? v : "-";
}

static void sb_str(struct sb *s, const json_t *o, const char *path)
{
    sb_printf(s, "%s", str_or_dash(o, path));
}

/* "[#####---------------] 40/200 20%" from two counts; "-" parts when missing. */
static void sb_bar(struct sb *s, const json_t *done, const json_t *total)
{
    char bar[BAR_W + 1];
    int known = json_is_number(done) && json_is_number(total) && json_number_value(total) > 0;
    double f = known ? json_number_value(done) / json_number_value(total) : 0;
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    int k = (int)(f * BAR_W + 1e-9);
    for (int i = 0; i < BAR_W; i++)
        bar[i] = !known ? ' ' : i < k ? '#' : '-';
    bar[BAR_W] = '\0';
    sb_printf(s, "[%s] ", bar);
    sb_int(s, done, "");
    sb_printf(s, "/");
    sb_int(s, total, "");
    if (known)
        sb_printf(s, " %3.0f%%", 100 * f);
}

/* Seconds as H:MM:SS or M:SS; "-" when unknown (negative). */
static void sb_eta(struct sb *s, const json_t *v)
{
    double t = json_is_number(v) ? json_number_value(v) : -1;
    if (!(t >= 0) || t > 1e9) {
        sb_printf(s, "-");
        return;
    }
    long sec = lround(t);
    if (sec >= 3600)
        sb_printf(s, "%ld:%02ld:%02ld", sec / 3600, sec / 60 % 60, sec % 60);
    else
        sb_printf(s, "%ld:%02ld", sec / 60, sec % 60);
}

/* ---- one line per kind ------------------------------------------------------------------ */

static void line_loader(struct sb *s, const json_t *r)
{
    sb_printf(s, "sent ");
    sb_int(s, r, "counters.samples_sent");
    sb_printf(s, " (");
    sb_real(s, "%.1f", r, "rates.samples_sent");
    sb_printf(s, "/s)  shards done ");
    sb_int(s, r, "counters.shards_done");
    sb_printf(s, ", failed ");
    sb_int(s, r, "counters.shards_failed");
    sb_printf(s, "  rejected ");
    sb_int(s, r, "counters.samples_rejected");
    const json_t *th = jget(r, "threads");
    size_t reading = 0;
    for (size_t i = 0; i < json_array_size(th); i++) {
        const char *sh = json_string_value(jget(json_array_get(th, i), "shard"));
        reading += sh && *sh;
    }
    if (json_is_array(th))
        sb_printf(s, "  reading %zu", reading);
    if (json_is_true(jget(r, "finished")))
        sb_printf(s, "  (no shard left)");
}

static void line_encoder(struct sb *s, const json_t *r)
{
    sb_printf(s, "latents ");
    sb_int(s, r, "counters.samples_committed");
    sb_printf(s, " (");
    sb_real(s, "%.1f", r, "rates.samples_committed");
    sb_printf(s, "/s)  queue ");
    sb_int(s, r, "batching");
    sb_printf(s, "  shards ");
    sb_bar(s, jget(r, "progress.done"), jget(r, "progress.total"));
    const json_t *failed = jget(r, "shards.failed");
    if (json_integer_value(failed) > 0)
        sb_printf(s, "  failed %lld", (long long)json_integer_value(failed));
}

static void line_trainer(struct sb *s, const json_t *r)
{
    sb_printf(s, "%-8s ", str_or_dash(r, "training.state"));
    sb_bar(s, jget(r, "training.step"), jget(r, "training.total"));
    /* no speed yet: no step of this process yet, so no loss either (0 until then) */
    const json_t *t = json_number_value(jget(r, "training.img_per_s")) > 0 ? r : NULL;
    sb_printf(s, "  loss ");
    sb_real(s, "%.4f", t, "training.loss");
    sb_printf(s, "  ");
    sb_real(s, "%.2f", t, "training.img_per_s");
    sb_printf(s, " img/s  ETA ");
    sb_eta(s, jget(r, "training.eta_s"));
    if (json_is_string(jget(r, "error"))) {
        sb_printf(s, "  error: ");
        sb_str(s, r, "error");
    }
}

static void line_eval(struct sb *s, const json_t *r)
{
    const json_t *q = jget(r, "queue"), *busy = jget(r, "evaluating"), *last = jget(r, "last");
    sb_printf(s, "queue ");
    if (json_is_array(q)) {
        sb_printf(s, "%zu", json_array_size(q));
        for (size_t i = 0; i < json_array_size(q) && i < 4; i++)
            sb_printf(s, "%s%lld", i ? "," : " [",
                      (long long)json_integer_value(json_array_get(q, i)));
        sb_printf(s, "%s", json_array_size(q) > 4 ? ",...]" : json_array_size(q) ? "]" : "");
    } else
        sb_printf(s, "-");
    sb_printf(s, "  evaluating ");
    if (json_is_integer(busy))
        sb_printf(s, "step %lld", (long long)json_integer_value(busy));
    else
        sb_printf(s, "%s", json_is_null(busy) ? "none" : "-");
    sb_printf(s, "  done ");
    sb_int(s, r, "counters.evaluations_done");
    sb_printf(s, "  last: ");
    if (!json_is_object(last)) {
        sb_printf(s, "-");
        return;
    }
    sb_printf(s, "step ");
    sb_int(s, last, "step");
    if (json_is_string(jget(last, "error"))) {
        sb_printf(s, " failed: ");
        sb_str(s, last, "error");
        return;
    }
    sb_printf(s, " FID ");
    sb_real(s, "%.2f", last, "fid");
    sb_printf(s, "  IS ");
    sb_real(s, "%.3f", last, "is_mean");
    sb_printf(s, " +- ");
    sb_real(s, "%.3f", last, "is_std");
}

static void line_other(struct sb *s, const json_t *r)
{
    sb_printf(s, "up ");
    sb_real(s, "%.0fs", r, "uptime_s");
    if (json_is_object(jget(r, "progress"))) {
        sb_printf(s, "  ");
        sb_str(s, r, "progress.unit");
        sb_printf(s, " ");
        sb_bar(s, jget(r, "progress.done"), jget(r, "progress.total"));
    }
}

static int kind_of(const char *daemon)
{
    static const char *names[] = {"loaderd", "encoderd", "trainerd", "evald"};
    for (int k = 0; k < 4; k++)
        if (daemon && !strncmp(daemon, names[k], strlen(names[k])))
            return k;
    return K_OTHER;
}

/* Fill row->text from a status reply. */
static void format_row(struct row *row, const json_t *r)
{
    struct sb s = {row->text, sizeof row->text, 0};
    const char *daemon = json_string_value(jget(r, "daemon"));
    row->kind = kind_of(daemon ? daemon : row->name);
    if (!json_is_true(jget(r, "ok"))) {
        sb_printf(&s, "error: ");
        sb_str(&s, r, "error");
        return;
    }
    sb_printf(&s, "%-9s ", str_or_dash(r, "state"));
    static void (*const fmt[])(struct sb *, const json_t *) = {line_loader, line_encoder,
                                                                 line_trainer, line_eval,
                                                                 line_other};
    fmt[row->kind](&s, r);
}

/* ---- one refresh ------------------------------------------------------------------------- */

/* Ask one daemon; fills the row. */
static void query(void *zctx, const struct ldmctl_conn *c, const char *ep, struct row *row)
{
    json_t *req = json_pack("{s:s}", "op", "status"), *reply = NULL;
    row->kind = kind_of(row->name);
    if (!strncmp(ep, "ipc://", 6) && !ldm_ipc_in_use(ep))
        snprintf(row->text, sizeof row->text, "not running (its socket is left, nobody listens)");
    else if (!req || ldm_zrequest(zctx, ep, c->server_public, c->client, req, c->timeout_ms,
                                  &reply) != 0)
        snprintf(row->text, sizeof row->text, "no answer: %s",
                 req ? ldm_errmsg() : "out of memory");
    else {
        row->answered = 1;
        format_row(row, reply);
    }
    json_decref(reply);
    json_decref(req);
}

static int cmp_row(const void *a, const void *b)
{
    const struct row *p = a, *q = b;
    return p->kind != q->kind ? p->kind - q->kind : strcmp(p->name, q->name);
}

/* The daemons to ask: every one in the run directory, or the one of --endpoint.
 * Returns the number of rows (*rows malloc'd), 0 when there is none. */
static int collect(void *zctx, const struct ldmctl_conn *c, struct row **rows)
{
    char **names = NULL, ep[512];
    int n = c->endpoint ? 1 : ldmctl_find_daemons(c->run_dir, &names);
    *rows = n > 0 ? calloc((size_t)n, sizeof **rows) : NULL;
    for (int i = 0; i < n && *rows; i++) {
        struct row *r = &(*rows)[i];
        snprintf(r->name, sizeof r->name, "%s", c->endpoint ? c->endpoint : names[i]);
        if (c->endpoint && strstr(c->endpoint, "://"))
            snprintf(ep, sizeof ep, "%s", c->endpoint);
        else if (ldm_rundir_endpoint(ep, sizeof ep, c->run_dir, r->name, ".ctl") != 0) {
            snprintf(r->text, sizeof r->text, "%s", ldm_errmsg());
            continue;
        }
        query(zctx, c, ep, r);
    }
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    if (!*rows)
        return 0;
    qsort(*rows, (size_t)n, sizeof **rows, cmp_row);
    return n;
}

/* ---- output ----------------------------------------------------------------------------- */

static int term_cols(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 0;
}

/* Append one line: control characters as '?', cut at `cols` columns (0: no cut),
 * ANSI clear-to-end-of-line before the newline when `ansi`. */
static void emit(struct sb *out, const char *line, int cols, int ansi)
{
    int col = 0;
    for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
        int lead = (*p & 0xC0) != 0x80;
        if (cols && lead && col >= cols - 1)
            break;
        col += lead;
        sb_printf(out, "%c", *p < 0x20 || *p == 0x7F ? '?' : *p);
    }
    sb_printf(out, "%s\n", ansi ? "\033[K" : "");
}

static void print_frame(const struct ldmctl_conn *c, const struct row *rows, int n, double interval,
                        int ansi, int first)
{
    static char buf[64 * LINE_MAX_LEN];
    struct sb out = {buf, sizeof buf, 0}, l;
    char line[LINE_MAX_LEN + 160], stamp[16];
    int cols = ansi ? term_cols() : 0, w = 10;
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%H:%M:%S", localtime(&now));
    if (ansi)
        sb_printf(&out, "%s", first ? "\033[H\033[2J" : "\033[H");
    l = (struct sb){line, sizeof line, 0};
    sb_printf(&l, "ldmpipe  %s  %s", c->endpoint ? c->endpoint : c->run_dir, stamp);
    if (interval > 0)
        sb_printf(&l, "  (every %gs; Ctrl-C quits)", interval);
    emit(&out, line, cols, ansi);
    if (n == 0) {
        snprintf(line, sizeof line, "  no daemon control socket in %s yet", c->run_dir);
        emit(&out, line, cols, ansi);
    }
    for (int i = 0; i < n; i++)
        w = (int)strlen(rows[i].name) > w ? (int)strlen(rows[i].name) : w;
    for (int i = 0; i < n; i++) {
        snprintf(line, sizeof line, "  %-*s  %s", w, rows[i].name, rows[i].text);
        emit(&out, line, cols, ansi);
    }
    sb_printf(&out, "%s", ansi ? "\033[J" : "\n");
    fwrite(out.buf, 1, out.len, stdout);
    fflush(stdout);
}

/* ---- the command ------------------------------------------------------------------------- */

static int parse_watch_args(int argc, char **argv, double *interval, int *once)
{
    static const struct option longs[] = {
        {"interval", required_argument, 0, 'i'}, {"once", no_argument, 0, '1'}, {0, 0, 0, 0}};
    int ch;
    char *end;
    *interval = 2;
    *once = 0;
    optind = 0;
    while ((ch = getopt_long(argc, argv, "i:1", longs, NULL)) != -1) {
        if (ch == '1')
            *once = 1;
        else if (ch != 'i' || (*interval = strtod(optarg, &end)) < 0.1 || *end != '\0' ||
                 *interval > 3600) {
            fprintf(stderr, "usage: ldmctl watch [--interval SECONDS (0.1..3600)] [--once]\n");
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "usage: ldmctl watch [--interval SECONDS (0.1..3600)] [--once]\n");
        return -1;
    }
    return 0;
}

static void sleep_s(double s)
{
    for (double left = s; left > 0 && !stop_flag; left -= 0.1) {
        struct timespec ts = {0, (long)(fmin(left, 0.1) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int ldmctl_watch(const struct ldmctl_conn *c, int argc, char **argv)
{
    double interval;
    int once;
    if (parse_watch_args(argc, argv, &interval, &once) != 0)
        return LDMCTL_EXIT_USAGE;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int ansi = !once && isatty(STDOUT_FILENO), status = 0;
    void *zctx = zmq_ctx_new();
    for (int first = 1; !stop_flag; first = 0) {
        struct row *rows;
        int n = collect(zctx, c, &rows);
        if (once && n == 0) {
            fprintf(stderr, "ldmctl watch: no daemon control socket in %s (start one, or give "
                            "--endpoint)\n", c->run_dir);
            status = LDMCTL_EXIT_NOANSWER;
        } else if (!stop_flag)
            print_frame(c, rows, n, once ? 0 : interval, ansi, first);
        for (int i = 0; once && i < n; i++)
            status = rows[i].answered ? status : LDMCTL_EXIT_NOANSWER;
        free(rows);
        if (once)
            break;
        sleep_s(interval);
    }
    zmq_ctx_term(zctx);
    return status;
}

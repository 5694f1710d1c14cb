/* main.c — ldmctl: steer the ldmpipe daemons over their control sockets.
 *
 *   ldmctl [options] status|pause|resume|stop|reload|OP [ARG] [key=value ...]
 *   ldmctl [options] watch [--interval S] [--once]     (watch.c)
 *   ldmctl plot METRICS.jsonl OUT.png [--width W --height H --window N]   (plot.c)
 *   ldmctl keygen NAME
 *
 * Without --endpoint, the command goes to every daemon whose control socket
 * is in the run directory (NAME.ctl). An endpoint without "://" is a daemon
 * name in the run directory (e.g. loaderd-0).
 * Exit status: 0 all answered ok, 1 a daemon answered with an error,
 * 2 usage, 3 no answer (or no daemon found).
 */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "curve.h"
#include "err.h"
#include "json.h"
#include "ldmctl.h"
#include "rundir.h"
#include "zsock.h"

#define EXIT_NOANSWER LDMCTL_EXIT_NOANSWER

struct opts {
    const char *endpoint, *server_key, *key, *run_dir;
    int json, timeout_ms;
    char server_public[LDM_Z85_KEY_LEN + 1];
    struct ldm_keypair client;
};

static void usage(FILE *out)
{
    fputs("usage: ldmctl [options] COMMAND [ARG] [key=value ...]\n"
          "commands: status, pause, resume, stop, reload, checkpoint (trainerd),\n"
          "          eval STEP|latest (evald), leases (encoderd), keygen NAME,\n"
          "          watch [--interval S] [--once]   live progress of every daemon,\n"
          "          plot METRICS.jsonl OUT.png [--width W --height H --window N]\n"
          "                                          trainerd's loss curve as a PNG\n"
          "options:\n"
          "  -e, --endpoint=E     a daemon's control endpoint, or its name in the run\n"
          "                       directory (default: every daemon found there)\n"
          "  -j, --json           print the raw JSON replies\n"
          "  -t, --timeout=MS     wait this long for an answer (default 3000)\n"
          "  -s, --server-key=K   the daemon's CURVE public key (Z85 or a .pub/.key file)\n"
          "  -k, --key=FILE       this client's CURVE key pair (ldmctl keygen)\n"
          "  -r, --run-dir=DIR    the run directory (default as the daemons)\n",
          out);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"endpoint", required_argument, 0, 'e'}, {"json", no_argument, 0, 'j'},
        {"timeout", required_argument, 0, 't'},  {"server-key", required_argument, 0, 's'},
        {"key", required_argument, 0, 'k'},      {"run-dir", required_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    int c;
    o->timeout_ms = 3000;
    while ((c = getopt_long(argc, argv, "+e:jt:s:k:r:h", longs, NULL)) != -1) {
        switch (c) {
        case 'e': o->endpoint = optarg; break;
        case 'j': o->json = 1; break;
        case 't': o->timeout_ms = atoi(optarg); break;
        case 's': o->server_key = optarg; break;
        case 'k': o->key = optarg; break;
        case 'r': o->run_dir = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (o->timeout_ms <= 0) {
        fprintf(stderr, "ldmctl: --timeout must be a positive number of milliseconds\n");
        return -1;
    }
    return 0;
}

static int load_keys(struct opts *o)
{
    if (o->server_key && ldm_public_key_arg(o->server_key, o->server_public) != 0)
        return -1;
    if (o->key) {
        if (ldm_keypair_read(o->key, &o->client) != 0)
            return -1;
        if (!o->client.secret_key[0])
            return ldm_fail(LDM_EINVAL, "%s holds no secret key (give the .key file)", o->key);
    }
    return 0;
}

/* {"op": OP, "arg": ARG, key: value ...}; values that parse as JSON
 * (numbers, true, false) keep their type. */
static json_t *build_request(int argc, char **argv)
{
    json_t *req = json_object();
    json_object_set_new(req, "op", json_string(argv[0]));
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            json_object_set_new(req, "arg", json_string(argv[i]));
            continue;
        }
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - argv[i]), argv[i]);
        json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
        if (!v || json_is_object(v) || json_is_array(v)) {
            json_decref(v);
            v = json_string(eq + 1);
        }
        json_object_set_new(req, key, v);
    }
    return req;
}

static void print_counters(const json_t *r)
{
    const json_t *counters = json_object_get(r, "counters"), *rates = json_object_get(r, "rates");
    const char *k;
    json_t *v;
    int zeros = 0;
    json_object_foreach((json_t *)counters, k, v) {
        double rate = json_number_value(json_object_get(rates, k));
        if (json_integer_value(v) == 0) {
            zeros++;
            continue;
        }
        printf("    %-28s %12lld", k, (long long)json_integer_value(v));
        if (rate > 0)
            printf("  %.1f/s", rate);
        printf("\n");
    }
    if (zeros)
        printf("    (%d more counters at zero; --json shows all)\n", zeros);
}

static void print_reply(const char *who, const json_t *r, const char *op, int as_json)
{
    if (as_json) {
        char *t = json_dumps(r, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
        return;
    }
    if (!json_is_true(json_object_get(r, "ok"))) {
        printf("%s: error: %s\n", who, json_string_value(json_object_get(r, "error")));
        return;
    }
    if (strcmp(op, "status") != 0) {
        printf("%s: ok\n", who);
        return;
    }
    printf("%-16s %-9s up %.1fs  pid %lld\n", json_string_value(json_object_get(r, "name")),
           json_string_value(json_object_get(r, "state")),
           json_number_value(json_object_get(r, "uptime_s")),
           (long long)json_integer_value(json_object_get(r, "pid")));
    print_counters(r);
}

/* Send to one endpoint; returns 0, 1 (error reply) or EXIT_NOANSWER. */
static int ask(void *zctx, const struct opts *o, const char *who, const char *endpoint,
               const json_t *req)
{
    json_t *reply = NULL;
    const char *skey = o->server_public[0] ? o->server_public : NULL;
    int rc = ldm_zrequest(zctx, endpoint, skey, o->key ? &o->client : NULL, req, o->timeout_ms,
                          &reply);
    if (rc) {
        fprintf(stderr, "ldmctl: %s: %s\n", who, ldm_errmsg());
        return EXIT_NOANSWER;
    }
    print_reply(who, reply, json_string_value(json_object_get(req, "op")), o->json);
    int ok = json_is_true(json_object_get(reply, "ok"));
    json_decref(reply);
    return ok ? 0 : 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ldmctl_find_daemons(const char *dir, char ***names)
{
    DIR *dp = opendir(dir);
    int n = 0;
    *names = NULL;
    if (!dp)
        return 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".ctl") != 0)
            continue;
        char **p = realloc(*names, (size_t)(n + 1) * sizeof *p);
        if (!p)
            break;
        *names = p;
        (*names)[n++] = strndup(e->d_name, len - 4);
    }
    closedir(dp);
    if (n > 1)
        qsort(*names, (size_t)n, sizeof **names, cmp_str);
    return n;
}

static int ask_all(void *zctx, const struct opts *o, const char *dir, const json_t *req)
{
    char **names, ep[512];
    int n = ldmctl_find_daemons(dir, &names), worst = 0;
    if (n == 0) {
        fprintf(stderr, "ldmctl: no daemon control socket in %s (start one, or give --endpoint)\n",
                dir);
        return EXIT_NOANSWER;
    }
    for (int i = 0; i < n; i++) {
        int rc = ldm_rundir_endpoint(ep, sizeof ep, dir, names[i], ".ctl");
        rc = rc ? EXIT_NOANSWER : ask(zctx, o, names[i], ep, req);
        worst = rc > worst ? rc : worst;
        free(names[i]);
    }
    free(names);
    return worst;
}

static int run_command(struct opts *o, int argc, char **argv)
{
    char dir[256], ep[512];
    if (ldm_rundir(dir, sizeof dir, o->run_dir) != 0) {
        fprintf(stderr, "ldmctl: %s\n", ldm_errmsg());
        return EXIT_NOANSWER;
    }
    if (!strcmp(argv[0], "watch")) {
        struct ldmctl_conn c = {dir, o->endpoint, o->timeout_ms,
                                o->server_public[0] ? o->server_public : NULL,
                                o->key ? &o->client : NULL};
        return ldmctl_watch(&c, argc, argv);
    }
    void *zctx = zmq_ctx_new();
    json_t *req = build_request(argc, argv);
    int rc;
    if (!o->endpoint)
        rc = ask_all(zctx, o, dir, req);
    else if (strstr(o->endpoint, "://"))
        rc = ask(zctx, o, o->endpoint, o->endpoint, req);
    else if (ldm_rundir_endpoint(ep, sizeof ep, dir, o->endpoint, ".ctl") != 0) {
        fprintf(stderr, "ldmctl: %s\n", ldm_errmsg());
        rc = 2;
    } else
        rc = ask(zctx, o, o->endpoint, ep, req);
    json_decref(req);
    zmq_ctx_term(zctx);
    return rc;
}

static int keygen(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ldmctl keygen NAME   (writes NAME.key and NAME.pub)\n");
        return 2;
    }
    struct ldm_keypair kp;
    if (ldm_keypair_new(&kp) != 0 || ldm_keypair_write(argv[1], &kp) != 0) {
        fprintf(stderr, "ldmctl: keygen: %s\n", ldm_errmsg());
        return 1;
    }
    printf("wrote %s.key (secret, mode 0600) and %s.pub\npublic = %s\n", argv[1], argv[1],
           kp.public_key);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    if (parse_opts(argc, argv, &o) != 0 || optind >= argc) {
        usage(stderr);
        return 2;
    }
    argc -= optind;
    argv += optind;
    if (!strcmp(argv[0], "keygen"))
        return keygen(argc, argv);
    if (!strcmp(argv[0], "plot"))
        return ldmctl_plot(argc, argv);
    if (load_keys(&o) != 0) {
        fprintf(stderr, "ldmctl: %s\n", ldm_errmsg());
        return 2;
    }
    return run_command(&o, argc, argv);
}

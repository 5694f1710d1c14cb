/* test_curve.c — key files, allow-lists, CURVE accept/refuse, bind rules. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"
#include "json.h"
#include "testutil.h"
#include "zap.h"
#include "zsock.h"

START_TEST(keypair_files_round_trip)
{
    char *dir = tu_tmpdir(), base[512], path[600];
    struct ldm_keypair kp, back;
    snprintf(base, sizeof base, "%s/node1", dir);
    ck_ok(ldm_keypair_new(&kp));
    ck_assert(ldm_z85_key_valid(kp.public_key));
    ck_ok(ldm_keypair_write(base, &kp));
    ck_fails_with(ldm_keypair_write(base, &kp), LDM_EEXIST, "node1.key");
    snprintf(path, sizeof path, "%s.key", base);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_ok(ldm_keypair_read(path, &back));
    ck_assert_str_eq(back.public_key, kp.public_key);
    ck_assert_str_eq(back.secret_key, kp.secret_key);
    snprintf(path, sizeof path, "%s.pub", base);
    ck_ok(ldm_keypair_read(path, &back));
    ck_assert_str_eq(back.public_key, kp.public_key);
    ck_assert_str_eq(back.secret_key, "");
    char pub[LDM_Z85_KEY_LEN + 1];
    ck_ok(ldm_public_key_arg(path, pub));
    ck_assert_str_eq(pub, kp.public_key);
    ck_ok(ldm_public_key_arg(kp.public_key, pub));
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(bad_key_files_and_allowlists)
{
    char *dir = tu_tmpdir(), path[512];
    struct ldm_keypair kp;
    struct ldm_allowlist *al = NULL;
    snprintf(path, sizeof path, "%s/bad.key", dir);
    tu_write_file(path, "public = tooshort\n", 18);
    ck_fails_with(ldm_keypair_read(path, &kp), LDM_EFORMAT, "bad.key:1");
    tu_write_file(path, "# c\nfoo = bar\n", 14);
    ck_fails_with(ldm_keypair_read(path, &kp), LDM_EFORMAT, "bad.key:2");
    ck_fails_with(ldm_keypair_read("/nonexistent.key", &kp), LDM_ENOTFOUND, "/nonexistent.key");

    ck_ok(ldm_keypair_new(&kp));
    char text[256];
    int n = snprintf(text, sizeof text, "# clients\n%s\n\npublic = %s\nnot-a-key\n", kp.public_key,
                     kp.public_key);
    snprintf(path, sizeof path, "%s/allow", dir);
    tu_write_file(path, text, (size_t)n);
    ck_fails_with(ldm_allowlist_load(path, &al), LDM_EFORMAT, "allow:5");
    ck_assert_ptr_null(al);
    n = snprintf(text, sizeof text, "# clients\n%s\n\npublic = %s  # again\n", kp.public_key,
                 kp.public_key);
    tu_write_file(path, text, (size_t)n);
    ck_ok(ldm_allowlist_load(path, &al));
    ck_assert_uint_eq(ldm_allowlist_count(al), 2);
    ck_assert(ldm_allowlist_has(al, kp.public_key));
    ldm_allowlist_free(&al);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* A CURVE REP server on loopback tcp with a ZAP handler allowing `allowed`. */
struct server {
    void *zctx, *rep;
    struct ldm_zap *zap;
    struct ldm_keypair key;
    char endpoint[128];
};

static void server_start(struct server *s, const struct ldm_keypair *allowed)
{
    char *dir = tu_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/allow", dir);
    tu_write_file(path, allowed->public_key, LDM_Z85_KEY_LEN);
    struct ldm_allowlist *al;
    ck_ok(ldm_allowlist_load(path, &al));
    tu_rmtree(dir);
    free(dir);
    s->zctx = zmq_ctx_new();
    ck_ok(ldm_zap_start(s->zctx, al, &s->zap));
    ck_ok(ldm_keypair_new(&s->key));
    s->rep = zmq_socket(s->zctx, ZMQ_REP);
    struct ldm_bind_security sec = {&s->key, 0};
    ck_ok(ldm_zbind(s->rep, "tcp://127.0.0.1:*", &sec));
    size_t len = sizeof s->endpoint;
    zmq_getsockopt(s->rep, ZMQ_LAST_ENDPOINT, s->endpoint, &len);
}

static void server_stop(struct server *s)
{
    zmq_close(s->rep);
    ldm_zap_stop(&s->zap);
    zmq_ctx_term(s->zctx);
}

/* Client REQ with key `client` sends "ping"; returns 1 if the server saw it. */
static int exchange(struct server *s, const struct ldm_keypair *client)
{
    void *req = zmq_socket(s->zctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    ck_ok(ldm_zconnect(req, s->endpoint, s->key.public_key, client));
    zmq_send(req, "ping", 4, ZMQ_DONTWAIT);
    zmq_pollitem_t it = {s->rep, 0, ZMQ_POLLIN, 0};
    int got = zmq_poll(&it, 1, 1500) == 1;
    if (got) {
        char buf[8];
        ck_assert_int_eq(zmq_recv(s->rep, buf, sizeof buf, 0), 4);
        zmq_send(s->rep, "pong", 4, 0);
        ck_assert_int_eq(zmq_recv(req, buf, sizeof buf, 0), 4);
    }
    zmq_close(req);
    return got;
}

START_TEST(curve_accepts_allowed_refuses_others)
{
    struct ldm_keypair good, bad;
    ck_ok(ldm_keypair_new(&good));
    ck_ok(ldm_keypair_new(&bad));
    struct server s;
    server_start(&s, &good);
    ck_assert_msg(exchange(&s, &good), "allowed client got no answer");
    ck_assert_uint_eq(ldm_zap_denied(s.zap), 0);
    ck_assert_msg(!exchange(&s, &bad), "a client outside the allow-list was answered");
    ck_assert_uint_ge(ldm_zap_denied(s.zap), 1);
    /* a plain (non-CURVE) client gets nothing either */
    void *plain = zmq_socket(s.zctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(plain, ZMQ_LINGER, &linger, sizeof linger);
    ck_ok(ldm_zconnect(plain, s.endpoint, NULL, NULL));
    zmq_send(plain, "ping", 4, ZMQ_DONTWAIT);
    zmq_pollitem_t it = {s.rep, 0, ZMQ_POLLIN, 0};
    ck_assert_int_eq(zmq_poll(&it, 1, 500), 0);
    zmq_close(plain);
    server_stop(&s);
}
END_TEST

START_TEST(bind_rules)
{
    void *zctx = zmq_ctx_new();
    void *a = zmq_socket(zctx, ZMQ_REP), *b = zmq_socket(zctx, ZMQ_REP);
    struct ldm_bind_security plain = {NULL, 0}, insecure = {NULL, 1};
    ck_assert(ldm_endpoint_is_loopback("tcp://127.0.0.1:1"));
    ck_assert(ldm_endpoint_is_loopback("tcp://[::1]:1"));
    ck_assert(ldm_endpoint_is_loopback("tcp://localhost:1"));
    ck_assert(!ldm_endpoint_is_loopback("tcp://0.0.0.0:1"));
    ck_assert(!ldm_endpoint_is_loopback("tcp://*:1"));
    ck_fails_with(ldm_zbind(a, "tcp://0.0.0.0:*", &plain), LDM_EDENIED, "--insecure");
    ck_fails_with(ldm_zbind(a, "tcp://*:*", &plain), LDM_EDENIED, "tcp://*:*");
    ck_ok(ldm_zbind(a, "tcp://0.0.0.0:*", &insecure));
    ck_ok(ldm_zbind(a, "tcp://127.0.0.1:*", &plain));

    char *dir = tu_tmpdir(), ep[512];
    snprintf(ep, sizeof ep, "ipc://%s/x.ctl", dir);
    ck_ok(ldm_zbind(b, ep, &plain));
    void *c = zmq_socket(zctx, ZMQ_REP);
    ck_fails_with(ldm_zbind(c, ep, &plain), LDM_EEXIST, "already listening");
    zmq_close(c);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(zctx);
    char path[512];
    snprintf(path, sizeof path, "%s/x.ctl", dir);
    ck_assert_int_eq(access(path, F_OK), 0);
    ldm_ipc_unlink(ep);
    ck_assert_msg(access(path, F_OK) != 0, "ipc socket file left behind after unlink");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(request_times_out_with_clear_message)
{
    void *zctx = zmq_ctx_new();
    char *dir = tu_tmpdir(), ep[512];
    snprintf(ep, sizeof ep, "ipc://%s/nobody.ctl", dir);
    json_t *req = json_pack("{s:s}", "op", "status"), *reply = NULL;
    ck_fails_with(ldm_zrequest(zctx, ep, NULL, NULL, req, 200, &reply), LDM_ETIMEOUT,
                  "no answer from ipc://");
    json_decref(req);
    zmq_ctx_term(zctx);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_curve(void);
Suite *suite_curve(void)
{
    Suite *s = suite_create("curve");
    TCase *tc = tcase_create("curve");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, keypair_files_round_trip);
    tcase_add_test(tc, bad_key_files_and_allowlists);
    tcase_add_test(tc, curve_accepts_allowed_refuses_others);
    tcase_add_test(tc, bind_rules);
    tcase_add_test(tc, request_times_out_with_clear_message);
    suite_add_tcase(s, tc);
    return s;
}

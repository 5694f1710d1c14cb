/* test_lease.c — the loader's lease client and sample push, against real
 * ZeroMQ sockets answered by a scripted server thread. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "json.h"
#include "loaderd/lease.h"
#include "loaderd/push.h"
#include "proto/sample_check.h"
#include "testutil.h"
#include "zsock.h"

#define EP "inproc://leases-test"

struct script {
    void *zctx;
    const char *const *answers; /* one JSON text per request; "" = do not answer */
    int n;
    json_t *requests[16];
};

static void *server(void *arg)
{
    struct script *sc = arg;
    void *rep = zmq_socket(sc->zctx, ZMQ_ROUTER); /* ROUTER: may leave a request unanswered */
    int linger = 0;
    zmq_setsockopt(rep, ZMQ_LINGER, &linger, sizeof linger);
    zmq_bind(rep, EP);
    for (int i = 0; i < sc->n; i++) {
        zmq_msg_t id, empty, body;
        zmq_msg_init(&id);
        zmq_msg_init(&empty);
        zmq_msg_init(&body);
        zmq_msg_recv(&id, rep, 0);
        zmq_msg_recv(&empty, rep, 0);
        zmq_msg_recv(&body, rep, 0);
        ldm_json_parse_object(zmq_msg_data(&body), zmq_msg_size(&body), "req", &sc->requests[i]);
        if (*sc->answers[i]) {
            zmq_msg_send(&id, rep, ZMQ_SNDMORE);
            zmq_send(rep, "", 0, ZMQ_SNDMORE);
            zmq_send(rep, sc->answers[i], strlen(sc->answers[i]), 0);
        }
        zmq_msg_close(&id);
        zmq_msg_close(&empty);
        zmq_msg_close(&body);
    }
    usleep(100000);
    zmq_close(rep);
    return NULL;
}

START_TEST(lease_conversation)
{
    static const char *const answers[] = {
        "{\"ok\":true,\"shard\":\"/d/a-000001.tar\",\"lease\":7,\"skip\":3,\"epoch\":1,"
        "\"timeout_ms\":1500}",
        "{\"ok\":true,\"shard\":null,\"retry_ms\":250}",
        "{\"ok\":true,\"shard\":null,\"finished\":true}",
        "{\"ok\":true,\"timeout_ms\":900}",
        "",                                         /* renew unanswered: timeout */
        "{\"ok\":false,\"lost\":true,\"error\":\"lease not held\"}",
        "{\"ok\":true}",
        "{\"ok\":true,\"shard\":\"\",\"lease\":1}", /* malformed grant */
    };
    struct script sc = {zmq_ctx_new(), answers, 8, {0}};
    pthread_t t;
    pthread_create(&t, NULL, server, &sc);
    usleep(50000);
    struct ldm_lease_client *c;
    struct ldm_lease l;
    enum ldm_lease_state st;
    ck_ok(ldm_lease_client_new(sc.zctx, EP, NULL, NULL, "loaderd-3", 300, &c));
    ck_ok(ldm_lease_get(c, &l, &st));
    ck_assert_int_eq(st, LDM_LEASE_GRANTED);
    ck_assert_str_eq(l.shard, "/d/a-000001.tar");
    ck_assert_uint_eq(l.id, 7);
    ck_assert_uint_eq(l.skip, 3);
    ck_assert_uint_eq(l.epoch, 1);
    ck_assert_int_eq(l.timeout_ms, 1500);
    struct ldm_lease w;
    ck_ok(ldm_lease_get(c, &w, &st));
    ck_assert_int_eq(st, LDM_LEASE_WAIT);
    ck_assert_int_eq(w.retry_ms, 250);
    ck_ok(ldm_lease_get(c, &w, &st));
    ck_assert_int_eq(st, LDM_LEASE_FINISHED);
    ck_ok(ldm_lease_renew(c, &l, 10));
    ck_assert_int_eq(l.timeout_ms, 900);
    ck_fails_with(ldm_lease_renew(c, &l, 11), LDM_ETIMEOUT, "no answer from " EP);
    ck_fails_with(ldm_lease_renew(c, &l, 12), LDM_EDENIED, "lease not held");
    ck_ok(ldm_lease_done(c, &l, 40, 2));
    ck_fails_with(ldm_lease_get(c, &w, &st), LDM_EFORMAT, "lease answer");
    ldm_lease_client_free(&c);
    pthread_join(t, NULL);
    const char *op, *loader;
    int64_t v;
    ck_ok(ldm_json_get_str(sc.requests[0], "op", &op, NULL));
    ck_ok(ldm_json_get_str(sc.requests[0], "loader", &loader, NULL));
    ck_assert_str_eq(op, "lease");
    ck_assert_str_eq(loader, "loaderd-3");
    ck_ok(ldm_json_get_int(sc.requests[5], "next", &v, -1));
    ck_assert_int_eq(v, 12);
    ck_ok(ldm_json_get_int(sc.requests[6], "count", &v, -1));
    ck_assert_int_eq(v, 40);
    for (int i = 0; i < 8; i++)
        json_decref(sc.requests[i]);
    zmq_ctx_term(sc.zctx);
}
END_TEST

static int recv_sample(void *pull, Ldmpipe__Sample **s, size_t *len1)
{
    zmq_msg_t f[3];
    size_t len[3] = {0};
    int n = 0, more = 1;
    while (more && n < 3) {
        zmq_msg_init(&f[n]);
        zmq_msg_recv(&f[n], pull, 0);
        more = zmq_msg_more(&f[n]);
        len[n] = zmq_msg_size(&f[n]);
        n++;
    }
    int rc = ldm_sample_decode(zmq_msg_data(&f[0]), len, n, NULL, s, NULL);
    *len1 = len[1];
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return rc;
}

static int idle_calls;
static int give_up_after_two(void *arg)
{
    (void)arg;
    return ++idle_calls >= 2;
}

START_TEST(push_sample_tombstone_and_backpressure)
{
    void *zctx = zmq_ctx_new(), *push = zmq_socket(zctx, ZMQ_PUSH), *pull = zmq_socket(zctx, ZMQ_PULL);
    int hwm = 1, linger = 0;
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_bind(pull, "inproc://samples-test");
    zmq_connect(push, "inproc://samples-test");
    uint8_t px[8 * 4 * 3];
    memset(px, 7, sizeof px);
    uint32_t ids[3] = {49406, 320, 49407};
    struct ldm_outsample o = {.shard = "/d/a.tar", .key = "dir/0001", .index = 5, .lease = 9,
                              .caption = "a red circle", .ids = ids, .nids = 3, .orig_h = 30,
                              .orig_w = 20, .crop_top = 1, .image = {px, 8, 4, 3}, .flip = 1};
    ck_ok(ldm_push_sample(push, &o, 50, NULL, NULL));
    Ldmpipe__Sample *s;
    size_t len1;
    ck_ok(recv_sample(pull, &s, &len1));
    ck_assert_uint_eq(len1, sizeof px);
    ck_assert_uint_eq(s->index, 5);
    ck_assert_uint_eq(s->n_input_ids, 3);
    ck_assert_uint_eq(s->target_height, 8);
    ck_assert(s->flip);
    ck_assert_mem_eq(s->key.data, "dir/0001", 8);
    ldm_sample_free(s);
    struct ldm_outsample t = {.shard = "/d/a.tar", .key = "0002", .index = 6, .rejected = "decode"};
    ck_ok(ldm_push_sample(push, &t, 50, NULL, NULL));
    ck_ok(recv_sample(pull, &s, &len1));
    ck_assert_uint_eq(s->rejected.len, 6);
    ck_assert_ptr_null(s->image);
    ldm_sample_free(s);
    /* nobody reads: queues fill, then the sender waits and asks idle() */
    int sent = 0, rc = 0;
    while (sent < 100 && (rc = ldm_push_sample(push, &o, 20, give_up_after_two, NULL)) == 0)
        sent++;
    ck_assert_int_lt(sent, 100);
    ck_assert_int_eq(rc, LDM_ETIMEOUT);
    ck_assert_int_eq(idle_calls, 2);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(zctx);
}
END_TEST

Suite *suite_lease(void);
Suite *suite_lease(void)
{
    Suite *s = suite_create("lease");
    TCase *tc = tcase_create("lease");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, lease_conversation);
    tcase_add_test(tc, push_sample_tombstone_and_backpressure);
    suite_add_tcase(s, tc);
    return s;
}

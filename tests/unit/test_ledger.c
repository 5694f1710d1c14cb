/* test_ledger.c — encoderd's shard ledger: leases, renewals, done only when every sample is in,
 * expiry with skip, release, fail, persistence across a reopen, bad requests. */
#include <stdlib.h>
#include <string.h>

#include "encoderd/ledger.h"
#include "log.h"
#include "testutil.h"

Suite *suite_ledger(void);

static char *dir;
static struct ldm_store *S;
static struct ldm_ledger *L;
static struct ldm_shardlist urls;

static void setup(void)
{
    dir = tu_tmpdir();
    ldm_log_set_level(LDM_LOG_ERROR);
    ck_ok(ldm_store_open(dir, NULL, &S));
    ck_ok(ldm_shardlist_push(&urls, "a.tar"));
    ck_ok(ldm_shardlist_push(&urls, "b.tar"));
    ck_ok(ldm_ledger_open(&L, S, &urls, 1000, 200));
}

static void teardown(void)
{
    ldm_ledger_free(&L);
    ldm_store_close(&S);
    ldm_shardlist_free(&urls);
    tu_rmtree(dir);
    free(dir);
}

/* Send one request (JSON text) at time t; return the reply (caller frees). */
static json_t *ask(const char *text, int64_t t)
{
    json_error_t e;
    json_t *req = json_loads(text, 0, &e), *reply = NULL;
    ck_assert_ptr_nonnull(req);
    ck_ok(ldm_ledger_handle(L, req, t, &reply));
    json_decref(req);
    ck_assert_ptr_nonnull(reply);
    return reply;
}

static int64_t get_int(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    ck_assert_msg(json_is_integer(v), "no integer '%s'", k);
    return (int64_t)json_integer_value(v);
}

static int is_ok(const json_t *o)
{
    return json_is_true(json_object_get(o, "ok"));
}

/* Commit tombstones for indices [lo, hi) of `shard`, then refresh it. */
static void commit(const char *shard, uint64_t lo, uint64_t hi, int64_t t)
{
    for (uint64_t i = lo; i < hi; i++) {
        char key[32];
        snprintf(key, sizeof key, "%06llu", (unsigned long long)i);
        struct ldm_store_item it = {.shard = shard, .key = key, .index = i};
        ck_ok(ldm_store_put_batch(S, &it, 1, NULL, NULL));
    }
    ck_ok(ldm_ledger_refresh(L, shard, t));
}

static const char *state_of(const char *url)
{
    static char buf[16];
    json_t *a = ldm_ledger_list(L, 0);
    size_t i;
    json_t *o;
    buf[0] = '\0';
    json_array_foreach(a, i, o) if (!strcmp(json_string_value(json_object_get(o, "url")), url))
        snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(o, "state")));
    json_decref(a);
    return buf;
}

START_TEST(test_lease_done_finished)
{
    json_t *r = ask("{\"op\":\"lease\",\"loader\":\"x\"}", 0);
    ck_assert(is_ok(r));
    ck_assert_str_eq(json_string_value(json_object_get(r, "shard")), "a.tar");
    ck_assert_int_eq(get_int(r, "skip"), 0);
    ck_assert_int_eq(get_int(r, "timeout_ms"), 1000);
    int64_t la = get_int(r, "lease");
    json_decref(r);
    r = ask("{\"op\":\"lease\",\"loader\":\"y\"}", 10);
    ck_assert_str_eq(json_string_value(json_object_get(r, "shard")), "b.tar");
    int64_t lb = get_int(r, "lease");
    ck_assert_int_ne(la, lb);
    json_decref(r);
    r = ask("{\"op\":\"lease\",\"loader\":\"z\"}", 20);
    ck_assert(json_is_null(json_object_get(r, "shard")));
    ck_assert_int_eq(get_int(r, "retry_ms"), 200);
    json_decref(r);
    /* done with 3 while only index 0 is in: still leased */
    commit("a.tar", 0, 1, 30);
    char req[160];
    snprintf(req, sizeof req, "{\"op\":\"done\",\"loader\":\"x\",\"lease\":%lld,\"count\":3}",
             (long long)la);
    r = ask(req, 40);
    ck_assert(is_ok(r));
    json_decref(r);
    ck_assert_str_eq(state_of("a.tar"), "leased");
    commit("a.tar", 1, 3, 50);
    ck_assert_str_eq(state_of("a.tar"), "done");
    /* b is processed first, then reported */
    commit("b.tar", 0, 2, 60);
    snprintf(req, sizeof req, "{\"op\":\"done\",\"loader\":\"y\",\"lease\":%lld,\"count\":2}",
             (long long)lb);
    json_decref(ask(req, 70));
    ck_assert_str_eq(state_of("b.tar"), "done");
    r = ask("{\"op\":\"lease\",\"loader\":\"z\"}", 80);
    ck_assert(json_is_true(json_object_get(r, "finished")));
    json_decref(r);
    uint64_t counts[LDM_SHARD_NSTATUS], total;
    ldm_ledger_counts(L, counts, &total);
    ck_assert_uint_eq(total, 2);
    ck_assert_uint_eq(counts[LDM_SHARD_DONE], 2);
}
END_TEST

START_TEST(test_expiry_and_skip)
{
    json_t *r = ask("{\"op\":\"lease\",\"loader\":\"x\"}", 0);
    int64_t la = get_int(r, "lease");
    json_decref(r);
    commit("a.tar", 0, 4, 100);
    char req[160];
    snprintf(req, sizeof req, "{\"op\":\"renew\",\"loader\":\"x\",\"lease\":%lld,\"next\":4}",
             (long long)la);
    r = ask(req, 900); /* renewed in time: lives until 1900 */
    ck_assert(is_ok(r));
    json_decref(r);
    r = ask(req, 1950); /* too late */
    ck_assert(!is_ok(r));
    ck_assert(json_is_true(json_object_get(r, "lost")));
    json_decref(r);
    /* the next loader gets a.tar again, from index 4, with a new id */
    r = ask("{\"op\":\"lease\",\"loader\":\"y\"}", 2000);
    ck_assert_str_eq(json_string_value(json_object_get(r, "shard")), "a.tar");
    ck_assert_int_eq(get_int(r, "skip"), 4);
    ck_assert_int_gt(get_int(r, "lease"), la);
    json_decref(r);
    /* done reported, but the samples never come: the lease expires again */
    r = ask("{\"op\":\"lease\",\"loader\":\"q\"}", 2001);
    json_decref(r);
    ck_assert_int_eq(ldm_ledger_expire(L, 5000), 0);
    ck_assert_str_eq(state_of("a.tar"), "pending");
    ck_assert_str_eq(state_of("b.tar"), "pending");
}
END_TEST

START_TEST(test_release_fail_foreign)
{
    json_t *r = ask("{\"op\":\"lease\",\"loader\":\"x\"}", 0);
    int64_t la = get_int(r, "lease");
    json_decref(r);
    char req[200];
    /* another loader naming x's lease is told it is lost */
    snprintf(req, sizeof req, "{\"op\":\"renew\",\"loader\":\"y\",\"lease\":%lld}", (long long)la);
    r = ask(req, 1);
    ck_assert(json_is_true(json_object_get(r, "lost")));
    json_decref(r);
    snprintf(req, sizeof req, "{\"op\":\"release\",\"loader\":\"x\",\"lease\":%lld,\"next\":0}",
             (long long)la);
    json_decref(ask(req, 2));
    ck_assert_str_eq(state_of("a.tar"), "pending");
    r = ask(req, 3); /* released: no longer held */
    ck_assert(json_is_true(json_object_get(r, "lost")));
    json_decref(r);
    r = ask("{\"op\":\"lease\",\"loader\":\"y\"}", 4);
    int64_t l2 = get_int(r, "lease");
    json_decref(r);
    snprintf(req, sizeof req,
             "{\"op\":\"fail\",\"loader\":\"y\",\"lease\":%lld,\"next\":5,\"error\":\"truncated tar\"}",
             (long long)l2);
    json_decref(ask(req, 5));
    ck_assert_str_eq(state_of("a.tar"), "failed");
    json_t *a = ldm_ledger_list(L, 6);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0), "error")),
                     "truncated tar");
    json_decref(a);
}
END_TEST

START_TEST(test_reopen)
{
    json_t *r = ask("{\"op\":\"lease\",\"loader\":\"x\"}", 0);
    int64_t la = get_int(r, "lease");
    json_decref(r);
    r = ask("{\"op\":\"lease\",\"loader\":\"x\"}", 0);
    int64_t lb = get_int(r, "lease");
    json_decref(r);
    char req[160];
    snprintf(req, sizeof req, "{\"op\":\"done\",\"loader\":\"x\",\"lease\":%lld,\"count\":2}",
             (long long)lb);
    json_decref(ask(req, 1));
    commit("b.tar", 0, 2, 2);
    commit("a.tar", 0, 3, 2);
    /* a restart: a.tar was leased, so it is pending; b.tar stays done */
    ldm_ledger_free(&L);
    ck_ok(ldm_ledger_open(&L, S, &urls, 1000, 200));
    ck_assert_str_eq(state_of("a.tar"), "pending");
    ck_assert_str_eq(state_of("b.tar"), "done");
    r = ask("{\"op\":\"lease\",\"loader\":\"y\"}", 0);
    ck_assert_str_eq(json_string_value(json_object_get(r, "shard")), "a.tar");
    ck_assert_int_eq(get_int(r, "skip"), 3);
    ck_assert_int_gt(get_int(r, "lease"), la > lb ? la : lb);
    json_decref(r);
}
END_TEST

START_TEST(test_bad_requests)
{
    const char *bad[] = {"{\"loader\":\"x\"}", "{\"op\":\"lease\"}", "{\"op\":\"grab\",\"loader\":\"x\"}",
                         "{\"op\":\"renew\",\"loader\":\"x\"}",
                         "{\"op\":\"renew\",\"loader\":\"x\",\"lease\":\"7\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *r = ask(bad[i], 0);
        ck_assert_msg(!is_ok(r), "%s accepted", bad[i]);
        ck_assert(json_is_string(json_object_get(r, "error")));
        json_decref(r);
    }
    json_t *r = ask("{\"op\":\"lease\",\"loader\":\"x\"}", 0);
    char req[160];
    snprintf(req, sizeof req, "{\"op\":\"done\",\"loader\":\"x\",\"lease\":%lld}",
             (long long)get_int(r, "lease"));
    json_decref(r);
    r = ask(req, 1); /* done without count */
    ck_assert(!is_ok(r));
    json_decref(r);
    ck_assert_str_eq(state_of("a.tar"), "leased");
    struct ldm_shardlist none = {0};
    struct ldm_ledger *l2 = NULL;
    ck_assert_int_eq(ldm_ledger_open(&l2, S, &none, 1000, 0), LDM_EINVAL);
}
END_TEST

Suite *suite_ledger(void)
{
    Suite *s = suite_create("ledger");
    TCase *tc = tcase_create("ledger");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_lease_done_finished);
    tcase_add_test(tc, test_expiry_and_skip);
    tcase_add_test(tc, test_release_fail_foreign);
    tcase_add_test(tc, test_reopen);
    tcase_add_test(tc, test_bad_requests);
    suite_add_tcase(s, tc);
    return s;
}

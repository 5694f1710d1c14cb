/* test_store.c — the LMDB latent cache: batches, duplicates, atomicity, map growth,
 * readers beside the writer, reopen, the shards ledger, stale reader slots, meta. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "testutil.h"

Suite *suite_store(void);

static char *dir;

static void setup(void)
{
    dir = tu_tmpdir();
    ldm_log_set_level(LDM_LOG_WARN);
}

static void teardown(void)
{
    tu_rmtree(dir);
    free(dir);
}

/* ---- helpers --------------------------------------------------------------------------- */

/* A record whose content follows from `seed`: a latent of 4 x side x side,
 * 77 x 8 text states, ids. */
static void *make_record(unsigned seed, uint32_t side, size_t *len)
{
    struct ldm_record_hdr h = {.latent_c = 4,
                               .latent_h = side,
                               .latent_w = side,
                               .text_len = 77,
                               .text_dim = 8,
                               .n_ids = 77,
                               .bucket = seed % 5,
                               .target_h = side * 8,
                               .target_w = side * 8};
    size_t nl = 4 * (size_t)side * side, nt = 77 * 8;
    uint16_t *mean = malloc(nl * 2), *logvar = malloc(nl * 2), *text = malloc(nt * 2);
    uint32_t ids[77];
    for (size_t i = 0; i < nl; i++) {
        mean[i] = (uint16_t)(seed * 31u + i);
        logvar[i] = (uint16_t)(seed * 17u ^ i);
    }
    for (size_t i = 0; i < nt; i++)
        text[i] = (uint16_t)(seed + 3 * i);
    for (uint32_t i = 0; i < 77; i++)
        ids[i] = seed + i;
    struct ldm_record_sections s = {.mean = mean, .logvar = logvar, .text = text, .ids = ids};
    void *buf;
    ck_ok(ldm_record_new(&h, &s, &buf, len));
    free(mean);
    free(logvar);
    free(text);
    return buf;
}

struct batch {
    struct ldm_store_item it[256];
    char keys[256][32];
    void *rec[256];
    size_t n;
};

/* Add a record (seed) or a tombstone (seed 0) for shard/key at index. */
static void add(struct batch *b, const char *shard, uint64_t index, unsigned seed, uint32_t side)
{
    size_t i = b->n++;
    snprintf(b->keys[i], sizeof b->keys[i], "%06llu", (unsigned long long)index);
    size_t len = 0;
    b->rec[i] = seed ? make_record(seed, side, &len) : NULL;
    b->it[i] = (struct ldm_store_item){shard, b->keys[i], index, b->rec[i], len};
}

static void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->rec[i]);
    b->n = 0;
}

static struct ldm_store *open_store(size_t map, size_t max, int no_grow)
{
    struct ldm_store_opts o = {.map_size = map, .max_map_size = max, .no_grow = no_grow};
    struct ldm_store *s;
    ck_ok(ldm_store_open(dir, &o, &s));
    return s;
}

/* Samples key "shard/key" holds exactly the record of `seed`. */
static void expect_record(struct ldm_store_txn *t, const char *shard, uint64_t index, unsigned seed,
                          uint32_t side)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%06llu", shard, (unsigned long long)index);
    struct ldm_record r;
    ck_ok(ldm_store_get(t, key, &r));
    size_t len;
    void *want = make_record(seed, side, &len);
    ck_assert_msg(r.len == len && memcmp(r.data, want, len) == 0, "%s: record differs", key);
    ck_ok(ldm_record_check_crc(&r, key));
    free(want);
}

static void expect_absent(struct ldm_store_txn *t, const char *shard, uint64_t index)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%06llu", shard, (unsigned long long)index);
    struct ldm_record r;
    ck_assert_int_eq(ldm_store_get(t, key, &r), LDM_ENOTFOUND);
}

static uint64_t count(struct ldm_store *s, int db)
{
    struct ldm_store_stat st;
    ck_ok(ldm_store_stat(s, &st));
    return st.entries[db];
}

/* ---- put, get, duplicates, atomicity --------------------------------------------------- */

START_TEST(put_and_get)
{
    struct ldm_store *s = open_store(0, 0, 0);
    struct batch b = {0};
    for (unsigned i = 0; i < 6; i++)
        add(&b, i < 4 ? "data/a.tar" : "data/b.tar", i, 100 + i, 4);
    size_t stored, dup;
    ck_ok(ldm_store_put_batch(s, b.it, b.n, &stored, &dup));
    ck_assert_uint_eq(stored, 6);
    ck_assert_uint_eq(dup, 0);
    struct ldm_store_txn *t;
    ck_ok(ldm_store_read_begin(s, &t));
    for (unsigned i = 0; i < 6; i++)
        expect_record(t, i < 4 ? "data/a.tar" : "data/b.tar", i, 100 + i, 4);
    expect_absent(t, "data/a.tar", 9);
    struct ldm_store_cursor *c; /* cursors walk the keys in order */
    struct ldm_store_kv kv;
    ck_ok(ldm_store_cursor_open(t, LDM_DB_SAMPLES, &c));
    int n = 0;
    while (ldm_store_cursor_next(c, &kv) == 0) {
        ck_assert_mem_eq(kv.key, n < 4 ? "data/a.tar/" : "data/b.tar/", 11);
        n++;
    }
    ck_assert_int_eq(n, 6);
    ck_assert_int_eq(ldm_store_cursor_next(c, &kv), LDM_ENOTFOUND);
    ldm_store_cursor_close(&c);
    ldm_store_read_end(&t);
    ck_assert_ptr_null(t);
    ck_assert_uint_eq(count(s, LDM_DB_SAMPLES), 6);
    ck_assert_uint_eq(count(s, LDM_DB_SHARDS), 2);
    batch_clear(&b);
    ldm_store_close(&s);
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(duplicates_counted)
{
    struct ldm_store *s = open_store(0, 0, 0);
    struct batch b = {0};
    for (unsigned i = 0; i < 5; i++)
        add(&b, "a.tar", i, 1 + i, 2);
    size_t stored, dup;
    ck_ok(ldm_store_put_batch(s, b.it, b.n, &stored, &dup));
    ck_assert_uint_eq(stored, 5);
    /* the same samples again, with other content: counted, not stored */
    batch_clear(&b);
    for (unsigned i = 0; i < 5; i++)
        add(&b, "a.tar", i, 50 + i, 2);
    add(&b, "a.tar", 5, 60, 2);
    add(&b, "a.tar", 5, 61, 2); /* twice within one batch */
    ck_ok(ldm_store_put_batch(s, b.it, b.n, &stored, &dup));
    ck_assert_uint_eq(stored, 1);
    ck_assert_uint_eq(dup, 6);
    struct ldm_store_txn *t;
    ck_ok(ldm_store_read_begin(s, &t));
    for (unsigned i = 0; i < 5; i++)
        expect_record(t, "a.tar", i, 1 + i, 2); /* the first writes stay */
    expect_record(t, "a.tar", 5, 60, 2);
    ldm_store_read_end(&t);
    ck_assert_uint_eq(count(s, LDM_DB_SAMPLES), 6);
    struct ldm_shard_info info;
    ck_ok(ldm_store_shard_get(s, "a.tar", &info));
    ck_assert_uint_eq(info.stored, 6);
    ck_assert_uint_eq(info.duplicates, 6);
    ck_assert_uint_eq(info.nranges, 1);
    ck_assert_uint_eq(ldm_shard_first_unprocessed(&info), 6);
    ldm_shard_info_free(&info);
    batch_clear(&b);
    ldm_store_close(&s);
}
END_TEST

START_TEST(batch_is_atomic)
{
    struct ldm_store *s = open_store(0, 0, 0);
    struct batch b = {0};
    for (unsigned i = 0; i < 4; i++)
        add(&b, "a.tar", i, 1 + i, 2);
    ((unsigned char *)b.rec[2])[0] = 'X'; /* item 2 is not a record */
    size_t stored = 9, dup = 9;
    ck_fails_with(ldm_store_put_batch(s, b.it, b.n, &stored, &dup), LDM_EINVAL,
                  "batch item 2 (a.tar/000002): a.tar/000002: wrong magic");
    ck_assert_uint_eq(stored, 0);
    ck_assert_uint_eq(dup, 0);
    ck_assert_uint_eq(count(s, LDM_DB_SAMPLES), 0);
    ck_assert_uint_eq(count(s, LDM_DB_SHARDS), 0);
    /* a key too long for LMDB fails the batch the same way */
    ((unsigned char *)b.rec[2])[0] = 'L';
    char long_shard[600];
    memset(long_shard, 'x', sizeof long_shard - 1);
    long_shard[sizeof long_shard - 1] = '\0';
    b.it[3].shard = long_shard;
    ck_fails_with(ldm_store_put_batch(s, b.it, b.n, &stored, &dup), LDM_EINVAL, "batch item 3");
    ck_assert_uint_eq(count(s, LDM_DB_SAMPLES), 0);
    b.it[3].shard = "a.tar";
    ck_ok(ldm_store_put_batch(s, b.it, b.n, &stored, &dup));
    ck_assert_uint_eq(stored, 4);
    batch_clear(&b);
    ldm_store_close(&s);
}
END_TEST

START_TEST(sample_keys)
{
    char buf[LDM_STORE_MAX_KEY + 1];
    size_t len;
    ck_ok(ldm_store_sample_key("s/a.tar", "dir/01", buf, sizeof buf, &len));
    ck_assert_str_eq(buf, "s/a.tar/dir/01");
    ck_assert_uint_eq(len, 14);
    ck_fails_with(ldm_store_sample_key("", "k", buf, sizeof buf, NULL), LDM_EINVAL, "empty");
    char big[LDM_STORE_MAX_KEY - 1];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_ok(ldm_store_sample_key(big, "k", buf, sizeof buf, &len)); /* 509 + 2 = 511 */
    ck_fails_with(ldm_store_sample_key(big, "kk", buf, sizeof buf, NULL), LDM_ERANGE,
                  "512 bytes, at most 511");
    ck_fails_with(ldm_store_sample_key("a", "b", buf, 3, NULL), LDM_ERANGE, "at most 2");
}
END_TEST

/* ---- map growth ------------------------------------------------------------------------- */

START_TEST(map_grows)
{
    struct ldm_store *s = open_store(64 << 10, 64 << 20, 0);
    struct ldm_store_stat st;
    ck_ok(ldm_store_stat(s, &st));
    size_t first = st.map_size;
    ck_assert_uint_le(first, 64 << 10);
    struct batch b = {0};
    unsigned seed = 1;
    for (int round = 0; round < 8; round++) { /* 8 x 16 records of ~17.5 KiB: ~2.2 MiB */
        for (int i = 0; i < 16; i++, seed++)
            add(&b, "g.tar", seed, seed, 32);
        size_t stored;
        ck_ok(ldm_store_put_batch(s, b.it, b.n, &stored, NULL));
        ck_assert_uint_eq(stored, 16);
        batch_clear(&b);
    }
    ck_ok(ldm_store_stat(s, &st));
    ck_assert_uint_ge(st.grows, 1);
    ck_assert_uint_gt(st.map_size, first);
    ck_assert_uint_eq(st.entries[LDM_DB_SAMPLES], 128);
    ldm_store_close(&s);
    s = open_store(64 << 10, 64 << 20, 0); /* a smaller map asked for: the file's kept */
    struct ldm_store_txn *t;
    ck_ok(ldm_store_read_begin(s, &t));
    for (unsigned i = 1; i < seed; i++)
        expect_record(t, "g.tar", i, i, 32);
    ldm_store_read_end(&t);
    ldm_store_close(&s);
}
END_TEST

START_TEST(map_full_without_growth)
{
    struct ldm_store *s = open_store(256 << 10, 256 << 10, 1);
    struct batch b = {0};
    unsigned seed = 1;
    int rc = 0, batches = 0;
    while (rc == 0 && batches < 100) {
        for (int i = 0; i < 8; i++, seed++)
            add(&b, "f.tar", seed, seed, 32);
        ldm_err_clear();
        rc = ldm_store_put_batch(s, b.it, b.n, NULL, NULL);
        batch_clear(&b);
        batches += rc == 0;
    }
    ck_assert_int_eq(rc, LDM_EIO);
    ck_assert_msg(strstr(ldm_errmsg(), "map full") && strstr(ldm_errmsg(), dir) &&
                      strstr(ldm_errmsg(), "growth off"),
                  "detail: %s", ldm_errmsg());
    ck_assert_int_gt(batches, 0);
    struct ldm_store_txn *t;
    ck_ok(ldm_store_read_begin(s, &t));
    for (unsigned i = 1; i <= (unsigned)batches * 8; i++)
        expect_record(t, "f.tar", i, i, 32);
    for (unsigned i = batches * 8 + 1; i < seed; i++)
        expect_absent(t, "f.tar", i);
    ldm_store_read_end(&t);
    struct ldm_shard_info info;
    ck_ok(ldm_store_shard_get(s, "f.tar", &info));
    ck_assert_uint_eq(info.stored, (uint64_t)batches * 8);
    ck_assert_uint_eq(ldm_shard_processed(&info), (uint64_t)batches * 8);
    ldm_shard_info_free(&info);
    ldm_store_close(&s);
}
END_TEST

/* Growth waits for this process's readers; one held by the writing thread
 * itself can never end, so the write times out instead of hanging. */
START_TEST(growth_waits_for_readers)
{
    struct ldm_store_opts o = {.map_size = 64 << 10, .max_map_size = 64 << 20, .grow_wait_ms = 200};
    struct ldm_store *s;
    ck_ok(ldm_store_open(dir, &o, &s));
    struct ldm_store_txn *t;
    ck_ok(ldm_store_read_begin(s, &t));
    struct batch b = {0};
    for (unsigned i = 1; i <= 16; i++)
        add(&b, "w.tar", i, i, 32);
    ck_fails_with(ldm_store_put_batch(s, b.it, b.n, NULL, NULL), LDM_ETIMEOUT,
                  "1 read transaction");
    ldm_store_read_end(&t);
    size_t stored;
    ck_ok(ldm_store_put_batch(s, b.it, b.n, &stored, NULL));
    ck_assert_uint_eq(stored, 16);
    batch_clear(&b);
    ldm_store_close(&s);
}
END_TEST

/* Another process grows the map; this one adopts the new size when its
 * next read transaction starts (MDB_MAP_RESIZED). */
START_TEST(other_process_grows)
{
    struct ldm_store *s = open_store(64 << 10, 64 << 20, 0);
    ck_assert_uint_eq(count(s, LDM_DB_SAMPLES), 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct ldm_store *w;
        struct ldm_store_opts o = {.map_size = 64 << 10, .max_map_size = 64 << 20};
        int rc = ldm_store_open(dir, &o, &w);
        struct batch b = {0};
        for (unsigned i = 1; i <= 64 && rc == 0; i++)
            add(&b, "p.tar", i, i, 32);
        if (rc == 0)
            rc = ldm_store_put_batch(w, b.it, b.n, NULL, NULL);
        batch_clear(&b);
        ldm_store_close(&w);
        _exit(rc == 0 ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer failed");
    struct ldm_store_txn *t;
    ck_ok(ldm_store_read_begin(s, &t));
    for (unsigned i = 1; i <= 64; i++)
        expect_record(t, "p.tar", i, i, 32);
    ldm_store_read_end(&t);
    struct ldm_store_stat st;
    ck_ok(ldm_store_stat(s, &st));
    ck_assert_uint_gt(st.map_size, 64 << 10); /* adopted the writer's size */
    ck_assert_uint_eq(st.grows, 0);
    ldm_store_close(&s);
}
END_TEST

/* ---- readers beside the writer ---------------------------------------------------------- */

struct reader {
    struct ldm_store *s;
    struct ldm_store_txn *t; /* begun here, ended by the main thread (MDB_NOTLS) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int phase; /* 1: snapshot taken; 2: the writer committed; 3: checked */
    uint64_t seen_before, seen_after;
};

static uint64_t txn_count(struct ldm_store_txn *t)
{
    struct ldm_store_cursor *c;
    struct ldm_store_kv kv;
    uint64_t n = 0;
    ck_ok(ldm_store_cursor_open(t, LDM_DB_SAMPLES, &c));
    while (ldm_store_cursor_next(c, &kv) == 0)
        n++;
    ldm_store_cursor_close(&c);
    return n;
}

static void set_phase(struct reader *r, int phase)
{
    pthread_mutex_lock(&r->mu);
    r->phase = phase;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void wait_phase(struct reader *r, int phase)
{
    pthread_mutex_lock(&r->mu);
    while (r->phase < phase)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    if (ldm_store_read_begin(r->s, &r->t) != 0)
        return NULL;
    r->seen_before = txn_count(r->t);
    set_phase(r, 1);
    wait_phase(r, 2);
    r->seen_after = txn_count(r->t); /* still the old snapshot */
    set_phase(r, 3);
    return NULL;
}

START_TEST(reader_beside_writer)
{
    struct ldm_store *s = open_store(0, 0, 0);
    struct batch b = {0};
    for (unsigned i = 0; i < 3; i++)
        add(&b, "r.tar", i, 1 + i, 2);
    ck_ok(ldm_store_put_batch(s, b.it, b.n, NULL, NULL));
    batch_clear(&b);
    struct reader r = {.s = s};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, reader_main, &r), 0);
    wait_phase(&r, 1);
    for (unsigned i = 3; i < 10; i++)
        add(&b, "r.tar", i, 1 + i, 2);
    ck_ok(ldm_store_put_batch(s, b.it, b.n, NULL, NULL)); /* commits with the reader open */
    batch_clear(&b);
    set_phase(&r, 2);
    wait_phase(&r, 3);
    pthread_join(th, NULL);
    ck_assert_uint_eq(r.seen_before, 3);
    ck_assert_uint_eq(r.seen_after, 3);
    expect_absent(r.t, "r.tar", 5);
    ldm_store_read_end(&r.t); /* ended on another thread than it began */
    struct ldm_store_txn *t;
    ck_ok(ldm_store_read_begin(s, &t));
    ck_assert_uint_eq(txn_count(t), 10);
    ldm_store_read_end(&t);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    ldm_store_close(&s);
}
END_TEST

/* ---- reopen, read-only ------------------------------------------------------------------ */

START_TEST(reopen_shows_everything)
{
    struct ldm_store *s = open_store(0, 0, 0);
    struct batch b = {0};
    for (unsigned i = 0; i < 20; i++)
        add(&b, i % 2 ? "o.tar" : "e.tar", i, 7 + i, 3);
    ck_ok(ldm_store_put_batch(s, b.it, b.n, NULL, NULL));
    batch_clear(&b);
    ck_ok(ldm_store_meta_put(s, LDM_META_IDENTITY, "{\"vae\":\"abc\"}", 13));
    ldm_store_close(&s);
    struct ldm_store_opts ro = {.readonly = 1};
    ck_ok(ldm_store_open(dir, &ro, &s));
    struct ldm_store_txn *t;
    ck_ok(ldm_store_read_begin(s, &t));
    for (unsigned i = 0; i < 20; i++)
        expect_record(t, i % 2 ? "o.tar" : "e.tar", i, 7 + i, 3);
    ldm_store_read_end(&t);
    void *v;
    size_t len;
    ck_ok(ldm_store_meta_get(s, LDM_META_IDENTITY, &v, &len));
    ck_assert_str_eq(v, "{\"vae\":\"abc\"}");
    free(v);
    add(&b, "e.tar", 99, 1, 2);
    ck_fails_with(ldm_store_put_batch(s, b.it, b.n, NULL, NULL), LDM_EINVAL, "read-only");
    ck_fails_with(ldm_store_meta_put(s, "x", "y", 1), LDM_EINVAL, "read-only");
    batch_clear(&b);
    ldm_store_close(&s);
}
END_TEST

START_TEST(open_errors)
{
    struct ldm_store_opts ro = {.readonly = 1};
    struct ldm_store *s;
    char path[4200];
    snprintf(path, sizeof path, "%s/none", dir);
    ck_fails_with(ldm_store_open(path, &ro, &s), LDM_ENOTFOUND, "none: no store");
    ck_fails_with(ldm_store_open(dir, &ro, &s), LDM_ENOTFOUND, "no data.mdb");
    ck_assert_ptr_null(s);
    struct ldm_store_opts bad = {.map_size = 1 << 20, .max_map_size = 1 << 19};
    ck_fails_with(ldm_store_open(dir, &bad, &s), LDM_EINVAL, "below map_size");
    snprintf(path, sizeof path, "%s/file", dir);
    tu_write_file(path, "x", 1);
    ck_fails_with(ldm_store_open(path, NULL, &s), LDM_EIO, "not a folder");
    /* a store of another format version is refused */
    s = open_store(0, 0, 0);
    ck_ok(ldm_store_meta_put(s, LDM_META_FORMAT, "ldmpipe-store 9", 15));
    ldm_store_close(&s);
    ck_fails_with(ldm_store_open(dir, NULL, &s), LDM_EUNSUPPORTED, "\"ldmpipe-store 9\"");
}
END_TEST

START_TEST(meta_values)
{
    struct ldm_store *s = open_store(0, 0, 0);
    void *v;
    size_t len;
    ck_ok(ldm_store_meta_get(s, LDM_META_FORMAT, &v, &len));
    ck_assert_str_eq(v, LDM_STORE_FORMAT);
    free(v);
    ck_fails_with(ldm_store_meta_get(s, "nothing", &v, &len), LDM_ENOTFOUND, "no meta \"nothing\"");
    ck_assert_ptr_null(v);
    ck_ok(ldm_store_meta_put(s, "scale", "0.18215", 7));
    ck_ok(ldm_store_meta_put(s, "scale", "0.13025", 7)); /* replaced */
    ck_ok(ldm_store_meta_get(s, "scale", &v, &len));
    ck_assert_uint_eq(len, 7);
    ck_assert_str_eq(v, "0.13025");
    free(v);
    ck_ok(ldm_store_meta_put(s, "empty", NULL, 0));
    ck_ok(ldm_store_meta_get(s, "empty", &v, &len));
    ck_assert_uint_eq(len, 0);
    free(v);
    ck_fails_with(ldm_store_meta_put(s, "", "x", 1), LDM_EINVAL, "meta name");
    ck_assert_uint_eq(count(s, LDM_DB_META), 3);
    ldm_store_close(&s);
}
END_TEST

/* ---- the shards ledger ------------------------------------------------------------------- */

static void expect_ranges(const struct ldm_shard_info *info, const uint64_t *lohi, size_t n)
{
    ck_assert_uint_eq(info->nranges, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(info->ranges[i].lo == lohi[2 * i] && info->ranges[i].hi == lohi[2 * i + 1],
                      "range %zu is [%llu, %llu), want [%llu, %llu)", i,
                      (unsigned long long)info->ranges[i].lo,
                      (unsigned long long)info->ranges[i].hi, (unsigned long long)lohi[2 * i],
                      (unsigned long long)lohi[2 * i + 1]);
}

START_TEST(ledger_ranges_and_skip)
{
    struct ldm_store *s = open_store(0, 0, 0);
    struct batch b = {0};
    add(&b, "l.tar", 0, 1, 2);
    add(&b, "l.tar", 2, 0, 0); /* tombstone */
    add(&b, "l.tar", 1, 2, 2);
    add(&b, "l.tar", 5, 3, 2);
    add(&b, "l.tar", 6, 0, 0);
    add(&b, "l.tar", 9, 4, 2);
    ck_ok(ldm_store_put_batch(s, b.it, b.n, NULL, NULL));
    batch_clear(&b);
    struct ldm_shard_info info;
    ck_ok(ldm_store_shard_get(s, "l.tar", &info));
    expect_ranges(&info, (const uint64_t[]){0, 3, 5, 7, 9, 10}, 3);
    ck_assert_uint_eq(ldm_shard_first_unprocessed(&info), 3);
    ck_assert_uint_eq(ldm_shard_processed(&info), 6);
    ck_assert_uint_eq(info.stored, 4);
    ck_assert_uint_eq(info.rejected, 2);
    ck_assert_int_eq(info.state.status, LDM_SHARD_PENDING);
    ck_assert_uint_eq(info.state.reported, LDM_SHARD_UNREPORTED);
    ck_assert_uint_gt(info.updated_ms, 0);
    ldm_shard_info_free(&info);
    add(&b, "l.tar", 4, 0, 0);
    add(&b, "l.tar", 3, 5, 2);
    add(&b, "l.tar", 6, 0, 0); /* a tombstone again: a duplicate */
    ck_ok(ldm_store_put_batch(s, b.it, b.n, NULL, NULL));
    batch_clear(&b);
    ck_ok(ldm_store_shard_get(s, "l.tar", &info));
    expect_ranges(&info, (const uint64_t[]){0, 7, 9, 10}, 2);
    ck_assert_uint_eq(ldm_shard_first_unprocessed(&info), 7);
    ck_assert_uint_eq(info.rejected, 3);
    ck_assert_uint_eq(info.duplicates, 1);
    ldm_shard_info_free(&info);
    /* a shard whose index 0 is missing starts at 0 */
    add(&b, "m.tar", 1, 0, 0);
    ck_ok(ldm_store_put_batch(s, b.it, b.n, NULL, NULL));
    batch_clear(&b);
    ck_ok(ldm_store_shard_get(s, "m.tar", &info));
    ck_assert_uint_eq(ldm_shard_first_unprocessed(&info), 0);
    ldm_shard_info_free(&info);
    ck_fails_with(ldm_store_shard_get(s, "n.tar", &info), LDM_ENOTFOUND, "n.tar");
    ldm_store_close(&s);
}
END_TEST

/* Indices arriving in random order, in batches: the ranges always equal the
 * runs of a bitmap of what was sent. */
START_TEST(ledger_random_order)
{
    enum { N = 300 };
    struct ldm_store *s = open_store(0, 0, 0);
    uint64_t order[N];
    unsigned char seen[N] = {0};
    for (int i = 0; i < N; i++)
        order[i] = (uint64_t)i;
    srand(7);
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        uint64_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    struct batch b = {0};
    for (int at = 0; at < N;) {
        for (int k = 0; k < 25 && at < N; k++, at++) {
            add(&b, "z.tar", order[at], 0, 0);
            seen[order[at]] = 1;
        }
        ck_ok(ldm_store_put_batch(s, b.it, b.n, NULL, NULL));
        batch_clear(&b);
        uint64_t runs[2 * N];
        size_t nr = 0;
        for (int i = 0; i < N; i++)
            if (seen[i] && (i == 0 || !seen[i - 1]))
                runs[2 * nr++] = (uint64_t)i;
            else if (!seen[i] && i > 0 && seen[i - 1])
                runs[2 * nr - 1] = (uint64_t)i;
        if (nr && seen[N - 1])
            runs[2 * nr - 1] = N;
        struct ldm_shard_info info;
        ck_ok(ldm_store_shard_get(s, "z.tar", &info));
        expect_ranges(&info, runs, nr);
        uint64_t first = 0;
        while (first < N && seen[first])
            first++;
        ck_assert_uint_eq(ldm_shard_first_unprocessed(&info), first);
        ldm_shard_info_free(&info);
    }
    ldm_store_close(&s);
}
END_TEST

START_TEST(ledger_state)
{
    struct ldm_store *s = open_store(0, 0, 0);
    struct ldm_shard_state st = {
        .status = LDM_SHARD_LEASED, .epoch = 2, .lease = 7, .reported = LDM_SHARD_UNREPORTED};
    ck_ok(ldm_store_shard_put(s, "q.tar", &st)); /* creates the entry */
    struct batch b = {0};
    add(&b, "q.tar", 0, 1, 2);
    add(&b, "q.tar", 1, 0, 0);
    ck_ok(ldm_store_put_batch(s, b.it, b.n, NULL, NULL));
    batch_clear(&b);
    struct ldm_shard_info info;
    ck_ok(ldm_store_shard_get(s, "q.tar", &info));
    ck_assert_int_eq(info.state.status, LDM_SHARD_LEASED); /* kept by the batch */
    ck_assert_uint_eq(info.state.lease, 7);
    ck_assert_uint_eq(info.state.epoch, 2);
    ldm_shard_info_free(&info);
    st = (struct ldm_shard_state){.status = LDM_SHARD_FAILED, .lease = 8, .reported = 2};
    snprintf(st.error, sizeof st.error, "truncated tar at member 3");
    ck_ok(ldm_store_shard_put(s, "q.tar", &st));
    ck_ok(ldm_store_shard_get(s, "q.tar", &info));
    ck_assert_int_eq(info.state.status, LDM_SHARD_FAILED);
    ck_assert_str_eq(info.state.error, "truncated tar at member 3");
    ck_assert_uint_eq(info.state.reported, 2);
    ck_assert_uint_eq(info.stored, 1); /* counters and ranges kept by shard_put */
    ck_assert_uint_eq(info.rejected, 1);
    ck_assert_uint_eq(ldm_shard_first_unprocessed(&info), 2);
    ck_assert_str_eq(ldm_shard_status_name(info.state.status), "failed");
    ldm_shard_info_free(&info);
    st.status = 9;
    ck_fails_with(ldm_store_shard_put(s, "q.tar", &st), LDM_EINVAL, "status 9");
    ldm_store_close(&s);
}
END_TEST

START_TEST(ledger_value_damage)
{
    struct ldm_shard_info info;
    const unsigned char junk[80] = "LDMS\x01\x00\x07";
    ck_fails_with(ldm_shard_parse(junk, sizeof junk, "u", &info), LDM_EFORMAT, "status 7");
    ck_fails_with(ldm_shard_parse(junk, 3, "u", &info), LDM_EFORMAT, "truncated");
    unsigned char v[72 + 32] = "LDMS\x01\x00\x00\x00";
    v[64] = 2; /* two ranges: [5, 9) and [9, 10) touch */
    v[72] = 5;
    v[80] = 9;
    v[88] = 9;
    v[96] = 10;
    ck_fails_with(ldm_shard_parse(v, sizeof v, "u", &info), LDM_EFORMAT, "range 1 [9, 10)");
    v[88] = 10;
    v[96] = 12;
    ck_ok(ldm_shard_parse(v, sizeof v, "u", &info));
    ck_assert_uint_eq(ldm_shard_processed(&info), 6);
    ldm_shard_info_free(&info);
    ck_fails_with(ldm_shard_parse(v, sizeof v - 1, "u", &info), LDM_EFORMAT, "2 ranges");
}
END_TEST

/* ---- stale reader slots ------------------------------------------------------------------- */

/* A process that keeps the store open until its pipe closes, so that the
 * lock file (and its reader table) outlives the other processes: the first
 * process to open an environment resets the table anyway. */
static pid_t holder(int *release)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct ldm_store *s;
        char c;
        close(fds[1]);
        int rc = ldm_store_open(dir, NULL, &s);
        if (read(fds[0], &c, 1) < 0)
            rc = -1;
        ldm_store_close(&s);
        _exit(rc == 0 ? 0 : 1);
    }
    close(fds[0]);
    *release = fds[1];
    return pid;
}

static void expect_exit0(pid_t pid)
{
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", (int)pid);
}

START_TEST(stale_reader_cleared)
{
    struct ldm_store *s = open_store(0, 0, 0);
    ldm_store_close(&s);
    int release;
    pid_t keep = holder(&release);
    pid_t pid = fork();
    if (pid == 0) {
        struct ldm_store_txn *t;
        if (ldm_store_open(dir, NULL, &s) != 0 || ldm_store_read_begin(s, &t) != 0)
            _exit(1);
        _exit(0); /* the reader slot stays taken by a dead process */
    }
    expect_exit0(pid);
    s = open_store(0, 0, 0);
    struct ldm_store_stat st;
    ck_ok(ldm_store_stat(s, &st));
    ck_assert_int_ge(st.stale_cleared, 1);
    ldm_store_close(&s);
    close(release);
    expect_exit0(keep);
}
END_TEST

Suite *suite_store(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("samples");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, put_and_get);
    tcase_add_test(tc, duplicates_counted);
    tcase_add_test(tc, batch_is_atomic);
    tcase_add_test(tc, sample_keys);
    tcase_add_test(tc, reader_beside_writer);
    tcase_add_test(tc, reopen_shows_everything);
    tcase_add_test(tc, open_errors);
    tcase_add_test(tc, meta_values);
    tcase_add_test(tc, stale_reader_cleared);
    suite_add_tcase(s, tc);
    tc = tcase_create("map");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, map_grows);
    tcase_add_test(tc, map_full_without_growth);
    tcase_add_test(tc, growth_waits_for_readers);
    tcase_add_test(tc, other_process_grows);
    suite_add_tcase(s, tc);
    tc = tcase_create("ledger");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, ledger_ranges_and_skip);
    tcase_add_test(tc, ledger_random_order);
    tcase_add_test(tc, ledger_state);
    tcase_add_test(tc, ledger_value_damage);
    suite_add_tcase(s, tc);
    return s;
}

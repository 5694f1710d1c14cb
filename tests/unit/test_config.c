/* test_config.c — typed INI + --key=value configuration: values, file syntax, overrides. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "testutil.h"

/* The daemon skeleton's keys (one part) and a daemon's own (another part). */
struct base_cfg {
    char *run_dir;
    int64_t log_every;
};

struct cfg {
    int64_t threads;
    double lr;
    int verbose;
    char *name;
    uint64_t cache;
    int64_t timeout;
    char *endpoint;
    struct ldm_strlist shards;
    int64_t plain;
    struct ldm_strlist extra;
};

struct req_cfg {
    char *data;
};

static struct base_cfg B;
static struct cfg C;
static struct req_cfg R;

#define BOFF(f) offsetof(struct base_cfg, f)
#define OFF(f) offsetof(struct cfg, f)

static const struct ldm_cfg_key base_keys[] = {
    {"run_dir", LDM_CFG_STRING, BOFF(run_dir), "/run/ldmpipe", 0, 0, 0, "run directory"},
    {"log_every", LDM_CFG_INT, BOFF(log_every), "100", 0, 0, 0, "log every N steps"},
    {NULL},
};

static const struct ldm_cfg_key keys[] = {
    {"threads", LDM_CFG_INT, OFF(threads), "4", 0, 1, 64, "worker threads"},
    {"lr", LDM_CFG_FLOAT, OFF(lr), "1e-4", 0, 0, 1, "learning rate"},
    {"verbose", LDM_CFG_BOOL, OFF(verbose), "no", 0, 0, 0, "log more"},
    {"name", LDM_CFG_STRING, OFF(name), "anon", 0, 0, 0, "instance name"},
    {"cache", LDM_CFG_SIZE, OFF(cache), "64M", 0, 4096, 1099511627776.0, "cache size"},
    {"timeout", LDM_CFG_DURATION, OFF(timeout), "30s", 0, 1000, 3600000, "lease timeout"},
    {"endpoint", LDM_CFG_ENDPOINT, OFF(endpoint), "ipc:///tmp/ldm/x", 0, 0, 0, "samples socket"},
    {"shards", LDM_CFG_PATHLIST, OFF(shards), "", 0, 0, 0, "shard paths"},
    {"plain", LDM_CFG_INT, OFF(plain), NULL, 0, 0, 0, NULL},
    {"extra", LDM_CFG_PATHLIST, OFF(extra), NULL, 0, 0, 0, "more paths"},
    {NULL},
};

static const struct ldm_cfg_key req_keys[] = {
    {"data", LDM_CFG_STRING, offsetof(struct req_cfg, data), NULL, 1, 0, 0, "data folder"},
    {NULL},
};

static const struct ldm_cfg_part parts[] = {
    {base_keys, &B},
    {keys, &C},
    {req_keys, &R},
};

static void setup(void)
{
    memset(&B, 0, sizeof B);
    memset(&C, 0, sizeof C);
    memset(&R, 0, sizeof R);
}

static void teardown(void)
{
    ldm_cfg_free(parts, 3);
}

/* Load `text` as file "t.conf" (NULL = no file) for [loaderd], without the
 * part holding a required key. */
static int load(const char *text, int argc, char **argv)
{
    return ldm_cfg_load_buffer(parts, 2, "loaderd", "t.conf", text, text ? strlen(text) : 0, argc,
                               argv);
}

static int load_file(const char *text)
{
    return load(text, 0, NULL);
}

/* Parse one value with a key of `type` without bounds. */
static int pv(enum ldm_cfg_type type, const char *text, void *out)
{
    struct ldm_cfg_key k = {.name = "k", .type = type};
    return ldm_cfg_parse_value(&k, text, out);
}

#define ck_value_fails(type, text, needle)                                                         \
    do {                                                                                           \
        union {                                                                                    \
            int64_t i;                                                                             \
            double f;                                                                              \
            char *s;                                                                               \
            struct ldm_strlist l;                                                                  \
        } v_ = {0};                                                                                \
        ck_fails_with(pv(type, text, &v_), LDM_ECONFIG, needle);                                   \
    } while (0)

/* ---- values ------------------------------------------------------------------ */

START_TEST(int_values)
{
    int64_t v = 0;
    ck_ok(pv(LDM_CFG_INT, "42", &v));
    ck_assert_int_eq(v, 42);
    ck_ok(pv(LDM_CFG_INT, "-7", &v));
    ck_assert_int_eq(v, -7);
    ck_ok(pv(LDM_CFG_INT, "+3", &v));
    ck_assert_int_eq(v, 3);
    ck_ok(pv(LDM_CFG_INT, "0x1F", &v));
    ck_assert_int_eq(v, 31);
    ck_ok(pv(LDM_CFG_INT, "-0X10", &v));
    ck_assert_int_eq(v, -16);
    ck_ok(pv(LDM_CFG_INT, "-0", &v));
    ck_assert_int_eq(v, 0);
    ck_ok(pv(LDM_CFG_INT, "010", &v));
    ck_assert_int_eq(v, 10);
    ck_ok(pv(LDM_CFG_INT, "9223372036854775807", &v));
    ck_assert(v == INT64_MAX);
    ck_ok(pv(LDM_CFG_INT, "-9223372036854775808", &v));
    ck_assert(v == INT64_MIN);
    ck_ok(pv(LDM_CFG_INT, "0x7fffffffffffffff", &v));
    ck_assert(v == INT64_MAX);
}
END_TEST

START_TEST(int_errors)
{
    int64_t v = 5;
    ck_fails_with(pv(LDM_CFG_INT, "four", &v), LDM_ECONFIG, "\"four\" is not an integer");
    ck_assert_int_eq(v, 5); /* untouched on failure */
    ck_value_fails(LDM_CFG_INT, "", "\"\" is not an integer");
    ck_value_fails(LDM_CFG_INT, "1.5", "is not an integer");
    ck_value_fails(LDM_CFG_INT, "0x", "is not an integer");
    ck_value_fails(LDM_CFG_INT, "12 ", "is not an integer");
    ck_value_fails(LDM_CFG_INT, "-", "is not an integer");
    ck_value_fails(LDM_CFG_INT, "0xg", "is not an integer");
    ck_value_fails(LDM_CFG_INT, "9223372036854775808", "out of range for a 64-bit integer");
    ck_value_fails(LDM_CFG_INT, "-9223372036854775809", "out of range for a 64-bit integer");
    ck_value_fails(LDM_CFG_INT, "99999999999999999999999", "out of range for a 64-bit integer");
    ck_value_fails(LDM_CFG_INT, "0x10000000000000000", "out of range for a 64-bit integer");
}
END_TEST

START_TEST(float_values_and_errors)
{
    double v = 0;
    ck_ok(pv(LDM_CFG_FLOAT, "1.5", &v));
    ck_assert_double_eq(v, 1.5);
    ck_ok(pv(LDM_CFG_FLOAT, "-2e3", &v));
    ck_assert_double_eq(v, -2000.0);
    ck_ok(pv(LDM_CFG_FLOAT, "7", &v));
    ck_assert_double_eq(v, 7.0);
    ck_value_fails(LDM_CFG_FLOAT, "x", "\"x\" is not a number");
    ck_value_fails(LDM_CFG_FLOAT, "", "is not a number");
    ck_value_fails(LDM_CFG_FLOAT, " 1", "is not a number");
    ck_value_fails(LDM_CFG_FLOAT, "1.0x", "is not a number");
    ck_value_fails(LDM_CFG_FLOAT, "inf", "is not a finite number");
    ck_value_fails(LDM_CFG_FLOAT, "nan", "is not a finite number");
    ck_value_fails(LDM_CFG_FLOAT, "1e999", "is not a finite number");
}
END_TEST

START_TEST(bool_values_and_errors)
{
    static const char *const yes[] = {"true", "TRUE", "Yes", "on", "1"};
    static const char *const no[] = {"false", "False", "NO", "off", "0"};
    int v;
    for (size_t i = 0; i < 5; i++) {
        v = 0;
        ck_ok(pv(LDM_CFG_BOOL, yes[i], &v));
        ck_assert_int_eq(v, 1);
        ck_ok(pv(LDM_CFG_BOOL, no[i], &v));
        ck_assert_int_eq(v, 0);
    }
    ck_value_fails(LDM_CFG_BOOL, "maybe", "\"maybe\" is not a boolean");
    ck_value_fails(LDM_CFG_BOOL, "", "is not a boolean");
    ck_value_fails(LDM_CFG_BOOL, "2", "is not a boolean");
}
END_TEST

static uint64_t size_of(const char *text)
{
    uint64_t v = 0;
    ck_ok(pv(LDM_CFG_SIZE, text, &v));
    return v;
}

START_TEST(size_values)
{
    ck_assert_uint_eq(size_of("123"), 123);
    ck_assert_uint_eq(size_of("10B"), 10);
    ck_assert_uint_eq(size_of("64K"), 65536);
    ck_assert_uint_eq(size_of("64k"), 65536);
    ck_assert_uint_eq(size_of("4KiB"), 4096);
    ck_assert_uint_eq(size_of("4kb"), 4096);
    ck_assert_uint_eq(size_of("512M"), 512ull << 20);
    ck_assert_uint_eq(size_of("2G"), 2ull << 30);
    ck_assert_uint_eq(size_of("1T"), 1ull << 40);
    ck_assert_uint_eq(size_of("1.5G"), 3ull << 29);
    ck_assert_uint_eq(size_of("0.5K"), 512);
    ck_assert_uint_eq(size_of("1.50000000000000000000000K"), 1536);
    ck_assert_uint_eq(size_of("0.0009765625K"), 1);
    ck_assert_uint_eq(size_of("16777215T"), UINT64_MAX - (1ull << 40) + 1);
    ck_assert_uint_eq(size_of("18446744073709551615"), UINT64_MAX);
}
END_TEST

START_TEST(size_errors)
{
    ck_value_fails(LDM_CFG_SIZE, "1.5", "\"1.5\" is not a whole number of bytes");
    ck_value_fails(LDM_CFG_SIZE, "0.3K", "is not a whole number of bytes");
    ck_value_fails(LDM_CFG_SIZE, "16777216T", "\"16777216T\" is too large");
    ck_value_fails(LDM_CFG_SIZE, "18446744073709551616", "is too large");
    ck_value_fails(LDM_CFG_SIZE, "-1", "is not a size");
    ck_value_fails(LDM_CFG_SIZE, "", "is not a size");
    ck_value_fails(LDM_CFG_SIZE, "1X", "is not a size");
    ck_value_fails(LDM_CFG_SIZE, "K", "is not a size");
    ck_value_fails(LDM_CFG_SIZE, "1.K", "is not a size");
    ck_value_fails(LDM_CFG_SIZE, "1 K", "is not a size");
    ck_value_fails(LDM_CFG_SIZE, "1iB", "is not a size");
    ck_value_fails(LDM_CFG_SIZE, "1Ki", "is not a size");
    ck_value_fails(LDM_CFG_SIZE, "1KBB", "is not a size");
    ck_value_fails(LDM_CFG_SIZE, "0.1234567890123456789K", "too many decimal places");
}
END_TEST

static int64_t ms_of(const char *text)
{
    int64_t v = 0;
    ck_ok(pv(LDM_CFG_DURATION, text, &v));
    return v;
}

START_TEST(duration_values_and_errors)
{
    ck_assert_int_eq(ms_of("250ms"), 250);
    ck_assert_int_eq(ms_of("30s"), 30000);
    ck_assert_int_eq(ms_of("5m"), 300000);
    ck_assert_int_eq(ms_of("2h"), 7200000);
    ck_assert_int_eq(ms_of("10"), 10000);
    ck_assert_int_eq(ms_of("1.5s"), 1500);
    ck_assert_int_eq(ms_of("0.5"), 500);
    ck_assert_int_eq(ms_of("1.5m"), 90000);
    ck_assert_int_eq(ms_of("0.001"), 1);
    ck_assert_int_eq(ms_of("0"), 0);
    ck_value_fails(LDM_CFG_DURATION, "0.5ms", "\"0.5ms\" is not a whole number of milliseconds");
    ck_value_fails(LDM_CFG_DURATION, "1.0001s", "not a whole number of milliseconds");
    ck_value_fails(LDM_CFG_DURATION, "5x", "\"5x\" is not a duration");
    ck_value_fails(LDM_CFG_DURATION, "5 s", "is not a duration");
    ck_value_fails(LDM_CFG_DURATION, "-1s", "is not a duration");
    ck_value_fails(LDM_CFG_DURATION, "2H", "is not a duration");
    ck_value_fails(LDM_CFG_DURATION, "", "is not a duration");
    ck_value_fails(LDM_CFG_DURATION, "9999999999999999h", "is too large");
}
END_TEST

START_TEST(endpoint_values)
{
    static const char *const ok[] = {"ipc:///run/ldm/samples.sock", "tcp://127.0.0.1:5555",
                                     "tcp://*:5555",          "tcp://node-3.cluster:*",
                                     "tcp://[::1]:80",        "tcp://[fe80::1]:65535",
                                     "inproc://bus"};
    char *v = NULL;
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        ck_ok(pv(LDM_CFG_ENDPOINT, ok[i], &v));
        ck_assert_str_eq(v, ok[i]);
    }
    free(v);
}
END_TEST

START_TEST(endpoint_errors)
{
    ck_value_fails(LDM_CFG_ENDPOINT, "ipc://", "has an empty ipc path");
    ck_value_fails(LDM_CFG_ENDPOINT, "inproc://", "has an empty inproc name");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://host", "needs :PORT");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://:5", "empty or bad host");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://a b:5", "empty or bad host");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://h:0", "port out of range");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://h:65536", "port out of range");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://h:99999999999999999999999", "port out of range");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://h:x", "bad port");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://h:", "bad port");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://h:-1", "bad port");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://::1:5", "without [brackets]");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://[::1:5", "bad [IPv6] host");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://[]:5", "bad [IPv6] host");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://[::g]:5", "bad [IPv6] host");
    ck_value_fails(LDM_CFG_ENDPOINT, "tcp://[::1]5", "needs :PORT");
    ck_value_fails(LDM_CFG_ENDPOINT, "udp://x:1", "\"udp://x:1\" is not an endpoint");
    ck_value_fails(LDM_CFG_ENDPOINT, "", "is not an endpoint");
}
END_TEST

START_TEST(pathlist_values)
{
    struct ldm_strlist l = {0};
    ck_ok(pv(LDM_CFG_PATHLIST, "a b,c", &l));
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.v[0], "a");
    ck_assert_str_eq(l.v[2], "c");
    ck_ok(pv(LDM_CFG_PATHLIST, " data/{000..009}.tar,\tx/{a, b}.tar ,, ", &l));
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.v[0], "data/{000..009}.tar");
    ck_assert_str_eq(l.v[1], "x/{a, b}.tar");
    ck_ok(pv(LDM_CFG_PATHLIST, "{a{b, c}d} e", &l));
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.v[0], "{a{b, c}d}");
    ck_ok(pv(LDM_CFG_PATHLIST, "", &l));
    ck_assert_uint_eq(l.n, 0);
    ck_assert_ptr_null(l.v);
    ldm_strlist_free(&l);
    ldm_strlist_free(NULL);
}
END_TEST

START_TEST(pathlist_errors)
{
    struct ldm_strlist l = {0};
    ck_ok(pv(LDM_CFG_PATHLIST, "keep", &l));
    ck_fails_with(pv(LDM_CFG_PATHLIST, "data/{000..009.tar", &l), LDM_ECONFIG,
                  "\"data/{000..009.tar\" has unbalanced braces");
    ck_assert_uint_eq(l.n, 1); /* untouched on failure */
    ck_assert_str_eq(l.v[0], "keep");
    ldm_strlist_free(&l);
    ck_value_fails(LDM_CFG_PATHLIST, "a}", "unbalanced braces");
    ck_value_fails(LDM_CFG_PATHLIST, "}{", "unbalanced braces");
    ck_value_fails(LDM_CFG_PATHLIST, "{{a}", "unbalanced braces");
    ck_value_fails(LDM_CFG_PATHLIST, ", ,", "has no items (write \"\" for an empty list)");
    ck_value_fails(LDM_CFG_PATHLIST, "   ", "has no items");
}
END_TEST

START_TEST(bounds)
{
    int64_t i = 0;
    double f = 0;
    uint64_t u = 0;
    ck_ok(ldm_cfg_parse_value(&keys[0], "1", &i));
    ck_ok(ldm_cfg_parse_value(&keys[0], "64", &i));
    ck_assert_int_eq(i, 64);
    ck_fails_with(ldm_cfg_parse_value(&keys[0], "65", &i), LDM_ECONFIG,
                  "\"65\" is out of range [1, 64]");
    ck_fails_with(ldm_cfg_parse_value(&keys[0], "0", &i), LDM_ECONFIG, "out of range [1, 64]");
    ck_assert_int_eq(i, 64);
    ck_ok(ldm_cfg_parse_value(&keys[1], "1", &f));
    ck_fails_with(ldm_cfg_parse_value(&keys[1], "1.5", &f), LDM_ECONFIG, "out of range [0, 1]");
    ck_fails_with(ldm_cfg_parse_value(&keys[1], "-0.1", &f), LDM_ECONFIG, "out of range");
    ck_ok(ldm_cfg_parse_value(&keys[4], "4K", &u));
    ck_fails_with(ldm_cfg_parse_value(&keys[4], "1K", &u), LDM_ECONFIG,
                  "\"1K\" is out of range [4096, 1099511627776] bytes");
    ck_fails_with(ldm_cfg_parse_value(&keys[4], "2T", &u), LDM_ECONFIG, "out of range");
    ck_ok(ldm_cfg_parse_value(&keys[5], "1h", &i));
    ck_fails_with(ldm_cfg_parse_value(&keys[5], "500ms", &i), LDM_ECONFIG,
                  "\"500ms\" is out of range [1000, 3600000] ms");
    ck_fails_with(ldm_cfg_parse_value(&keys[5], "61m", &i), LDM_ECONFIG, "out of range");
}
END_TEST

START_TEST(strings_replaced_without_leaks)
{
    char *s = NULL;
    struct ldm_strlist l = {0};
    ck_ok(pv(LDM_CFG_STRING, "one", &s));
    ck_ok(pv(LDM_CFG_STRING, "two", &s));
    ck_assert_str_eq(s, "two");
    ck_ok(pv(LDM_CFG_ENDPOINT, "inproc://a", &s));
    ck_ok(pv(LDM_CFG_ENDPOINT, "inproc://b", &s));
    ck_fails_with(pv(LDM_CFG_ENDPOINT, "bad", &s), LDM_ECONFIG, "not an endpoint");
    ck_assert_str_eq(s, "inproc://b");
    free(s);
    ck_ok(pv(LDM_CFG_PATHLIST, "a b", &l));
    ck_ok(pv(LDM_CFG_PATHLIST, "c d e", &l));
    ck_assert_uint_eq(l.n, 3);
    ldm_strlist_free(&l);
    ck_assert_ptr_null(l.v);
    ck_assert_uint_eq(l.n, 0);
}
END_TEST

/* ---- the file -------------------------------------------------------------------- */

START_TEST(defaults_only)
{
    ck_ok(load(NULL, 0, NULL));
    ck_assert_int_eq(C.threads, 4);
    ck_assert_double_eq(C.lr, 1e-4);
    ck_assert_int_eq(C.verbose, 0);
    ck_assert_str_eq(C.name, "anon");
    ck_assert_uint_eq(C.cache, 64u << 20);
    ck_assert_int_eq(C.timeout, 30000);
    ck_assert_str_eq(C.endpoint, "ipc:///tmp/ldm/x");
    ck_assert_uint_eq(C.shards.n, 0);
    ck_assert_str_eq(B.run_dir, "/run/ldmpipe");
    ck_assert_int_eq(C.plain, 0);
}
END_TEST

START_TEST(full_file)
{
    const char *text = "# ldmpipe node config\n"
                       "  ; another comment\n"
                       "\n"
                       "[common]\n"
                       "run_dir = /srv/run   # where sockets live\n"
                       "log_every=7\n"
                       "\n"
                       "[ loaderd ]   ; the loaders\n"
                       "threads = 8\n"
                       "lr = 0.5\n"
                       "verbose = Yes\n"
                       "name = \"a # b ; c \\\"q\\\" \\\\ \\t\\n\"  # comment after quotes\n"
                       "cache = 1.5G\n"
                       "timeout = 2m\n"
                       "endpoint = tcp://[::1]:5555\n"
                       "shards = data/a-{000..009}.tar, \\\n"
                       "         data/b.tar \\\n"
                       "\t\tdata/c.tar\n"
                       "\n"
                       "[trainerd]\n"
                       "unknown_to_us = anything at all\n"
                       "threads = not checked here\n";
    ck_ok(load_file(text));
    ck_assert_str_eq(B.run_dir, "/srv/run");
    ck_assert_int_eq(B.log_every, 7);
    ck_assert_int_eq(C.threads, 8);
    ck_assert_double_eq(C.lr, 0.5);
    ck_assert_int_eq(C.verbose, 1);
    ck_assert_str_eq(C.name, "a # b ; c \"q\" \\ \t\n");
    ck_assert_uint_eq(C.cache, 3ull << 29);
    ck_assert_int_eq(C.timeout, 120000);
    ck_assert_str_eq(C.endpoint, "tcp://[::1]:5555");
    ck_assert_uint_eq(C.shards.n, 3);
    ck_assert_str_eq(C.shards.v[0], "data/a-{000..009}.tar");
    ck_assert_str_eq(C.shards.v[1], "data/b.tar");
    ck_assert_str_eq(C.shards.v[2], "data/c.tar");
}
END_TEST

START_TEST(common_before_own_section)
{
    ck_ok(load_file("[loaderd]\nthreads = 8\n[common]\nthreads = 2\nname = c\n"));
    ck_assert_int_eq(C.threads, 8);
    ck_assert_str_eq(C.name, "c");
    ck_ok(load_file("[common]\nthreads = 2\n[loaderd]\n[common]\nlr = 0.25\n"));
    ck_assert_int_eq(C.threads, 2);
    ck_assert_double_eq(C.lr, 0.25);
}
END_TEST

START_TEST(null_section_applies_common_only)
{
    const char *text = "[common]\nthreads = 3\n[loaderd]\nthreads = 9\n";
    ck_ok(ldm_cfg_load_buffer(parts, 2, NULL, "t.conf", text, strlen(text), 0, NULL));
    ck_assert_int_eq(C.threads, 3);
}
END_TEST

START_TEST(comment_rules)
{
    ck_ok(load_file("[loaderd]\nname=#fff\n"));
    ck_assert_str_eq(C.name, "#fff");
    ck_ok(load_file("[loaderd]\nname = a;b#c\n"));
    ck_assert_str_eq(C.name, "a;b#c");
    ck_ok(load_file("[loaderd]\nname = a b\t;c\n"));
    ck_assert_str_eq(C.name, "a b");
    ck_ok(load_file("[loaderd]\nname = # nothing\n"));
    ck_assert_str_eq(C.name, "");
    ck_ok(load_file("[loaderd]\nname = \"x\"#y\n"));
    ck_assert_str_eq(C.name, "x");
    ck_ok(load_file("[loaderd]\nname =\n"));
    ck_assert_str_eq(C.name, "");
}
END_TEST

START_TEST(continuation_and_line_numbers)
{
    /* a comment line ending in '\' does not swallow the next line */
    ck_ok(load_file("[loaderd]\n# note \\\nthreads = 5\n"));
    ck_assert_int_eq(C.threads, 5);
    ck_ok(load_file("[loaderd]\r\nname = ab\\\r\n  cd  \r\nthreads=6\\"));
    ck_assert_str_eq(C.name, "abcd");
    ck_assert_int_eq(C.threads, 6);
    ck_fails_with(load_file("[loaderd]\nshards = a \\\n  b \\\n  c\nthreads = x\n"), LDM_ECONFIG,
                  "t.conf:5: [loaderd] threads: \"x\" is not an integer");
    ck_fails_with(load_file("[loaderd]\nthreads = \\\n  x\n"), LDM_ECONFIG,
                  "t.conf:2: [loaderd] threads: \"x\" is not an integer");
}
END_TEST

START_TEST(no_final_newline_and_empty)
{
    ck_ok(load_file("[loaderd]\nthreads = 12"));
    ck_assert_int_eq(C.threads, 12);
    ck_ok(load_file(""));
    ck_assert_int_eq(C.threads, 4);
}
END_TEST

/* ---- file errors ----------------------------------------------------------------- */

START_TEST(unknown_key_in_file)
{
    ck_fails_with(load_file("[loaderd]\nthreads = 2\nbogus = 1\n"), LDM_ECONFIG,
                  "t.conf:3: [loaderd] bogus: unknown key");
    ck_fails_with(load_file("[common]\nbogus = 1\n"), LDM_ECONFIG,
                  "t.conf:2: [common] bogus: unknown key");
}
END_TEST

/* A bad value of each type, through the file: the detail names file, line, section and key. */
START_TEST(bad_value_of_each_type_in_file)
{
    static const struct {
        const char *line, *needle;
    } cases[] = {
        {"threads = four", "t.conf:2: [loaderd] threads: \"four\" is not an integer"},
        {"threads = 99999999999999999999", "[loaderd] threads: \"99999999999999999999\" is out "
                                           "of range for a 64-bit integer"},
        {"threads = 65", "t.conf:2: [loaderd] threads: \"65\" is out of range [1, 64]"},
        {"lr = fast", "t.conf:2: [loaderd] lr: \"fast\" is not a number"},
        {"lr = 2", "t.conf:2: [loaderd] lr: \"2\" is out of range [0, 1]"},
        {"verbose = maybe", "t.conf:2: [loaderd] verbose: \"maybe\" is not a boolean"},
        {"cache = 12Q", "t.conf:2: [loaderd] cache: \"12Q\" is not a size"},
        {"cache = 99999999T", "t.conf:2: [loaderd] cache: \"99999999T\" is too large"},
        {"cache = 2K", "t.conf:2: [loaderd] cache: \"2K\" is out of range [4096, "},
        {"timeout = soon", "t.conf:2: [loaderd] timeout: \"soon\" is not a duration"},
        {"timeout = 0.1s", "t.conf:2: [loaderd] timeout: \"0.1s\" is out of range [1000, "},
        {"endpoint = tcp://host", "t.conf:2: [loaderd] endpoint: \"tcp://host\" needs :PORT"},
        {"endpoint = http://x", "t.conf:2: [loaderd] endpoint: \"http://x\" is not an endpoint"},
        {"shards = a/{1..3.tar", "t.conf:2: [loaderd] shards: \"a/{1..3.tar\" has unbalanced"},
        {"shards = \" , \"", "t.conf:2: [loaderd] shards: \" , \" has no items"},
    };
    char text[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(text, sizeof text, "[loaderd]\n%s\n", cases[i].line);
        ck_fails_with(load_file(text), LDM_ECONFIG, cases[i].needle);
        teardown();
    }
}
END_TEST

START_TEST(duplicate_key)
{
    ck_fails_with(load_file("[loaderd]\nthreads = 2\n\nthreads = 3\n"), LDM_ECONFIG,
                  "t.conf:4: [loaderd] threads: duplicate key in the section (first on line 2)");
    ck_fails_with(load_file("[loaderd]\nthreads = 2\n[other]\n[loaderd]\nthreads = 3\n"),
                  LDM_ECONFIG, "t.conf:5: [loaderd] threads: duplicate key");
    ck_fails_with(load_file("[common]\nname = a\nname = b\n"), LDM_ECONFIG,
                  "t.conf:3: [common] name: duplicate key");
    /* the same key in [common] and the daemon's section is an override, not a duplicate */
    ck_ok(load_file("[common]\nname = a\n[loaderd]\nname = b\n"));
    ck_assert_str_eq(C.name, "b");
    /* sections not ours are not checked for duplicates */
    ck_ok(load_file("[evald]\nx = 1\nx = 2\n"));
}
END_TEST

START_TEST(malformed_lines)
{
    ck_fails_with(load_file("[loaderd]\nthreads 4\n"), LDM_ECONFIG,
                  "t.conf:2: malformed line \"threads 4\" (expected key = value)");
    /* syntax is checked in sections that are not ours too */
    ck_fails_with(load_file("[loaderd]\n[trainerd]\n\njust words\n"), LDM_ECONFIG,
                  "t.conf:4: malformed line");
    ck_fails_with(load_file("[evald]\n  = 5\n"), LDM_ECONFIG, "t.conf:2: bad key \"\"");
    ck_fails_with(load_file("[loaderd]\nthr eads = 4\n"), LDM_ECONFIG,
                  "t.conf:2: bad key \"thr eads\" (allowed: A-Z a-z 0-9 _ . -)");
    ck_fails_with(load_file("[loaderd]\na/b = 4\n"), LDM_ECONFIG, "t.conf:2: bad key \"a/b\"");
    ck_fails_with(load_file("threads = 4\n"), LDM_ECONFIG,
                  "t.conf:1: threads: key before any [section]");
    const char nul[] = "[loaderd]\nname = a\0b\n";
    ck_fails_with(ldm_cfg_load_buffer(parts, 2, "loaderd", "t.conf", nul, sizeof nul - 1, 0, NULL),
                  LDM_ECONFIG, "t.conf:2: NUL byte in the line");
}
END_TEST

START_TEST(bad_section_headers)
{
    ck_fails_with(load_file("[loaderd\nthreads = 4\n"), LDM_ECONFIG,
                  "t.conf:1: bad section header \"[loaderd\" (expected [name])");
    ck_fails_with(load_file("\n[]\n"), LDM_ECONFIG, "t.conf:2: bad section header \"[]\"");
    ck_fails_with(load_file("[a b]\n"), LDM_ECONFIG, "t.conf:1: bad section header \"[a b]\"");
    ck_fails_with(load_file("[loaderd] junk\n"), LDM_ECONFIG,
                  "t.conf:1: bad section header \"[loaderd] junk\"");
    ck_fails_with(load_file("[a]]\n"), LDM_ECONFIG, "bad section header");
}
END_TEST

START_TEST(quote_errors)
{
    ck_fails_with(load_file("[loaderd]\n\nname = \"abc\n"), LDM_ECONFIG,
                  "t.conf:3: [loaderd] name: unterminated quote");
    ck_fails_with(load_file("[loaderd]\nname = \"abc\\\"\n"), LDM_ECONFIG,
                  "t.conf:2: [loaderd] name: unterminated quote");
    ck_fails_with(load_file("[other]\nname = \"abc\n"), LDM_ECONFIG,
                  "t.conf:2: [other] name: unterminated quote");
    ck_fails_with(load_file("[loaderd]\nname = \"a\\qb\"\n"), LDM_ECONFIG,
                  "t.conf:2: [loaderd] name: unknown escape in quotes");
    ck_fails_with(load_file("[loaderd]\nname = \"a\" b\n"), LDM_ECONFIG,
                  "t.conf:2: [loaderd] name: text after the closing quote");
}
END_TEST

/* ---- the command line ----------------------------------------------------------- */

START_TEST(command_line_forms)
{
    char *av[] = {"--threads=8", "--threads", "9", "--verbose", "--name=--x", "--lr", "-0.0",
                  "--shards="};
    ck_ok(load("[loaderd]\nshards = a b\nthreads = 2\n", 8, av));
    ck_assert_int_eq(C.threads, 9);
    ck_assert_int_eq(C.verbose, 1);
    ck_assert_str_eq(C.name, "--x");
    ck_assert_uint_eq(C.shards.n, 0);
    char *av2[] = {"--verbose=off", "--run_dir", "/x"};
    ck_ok(load("[loaderd]\nverbose = on\n", 3, av2));
    ck_assert_int_eq(C.verbose, 0);
    ck_assert_str_eq(B.run_dir, "/x");
}
END_TEST

START_TEST(command_line_errors)
{
    char *unknown[] = {"--threads=2", "--bogus=1"};
    ck_fails_with(load(NULL, 2, unknown), LDM_ECONFIG, "command line: --bogus: unknown key");
    char *bad[] = {"--threads=x"};
    ck_fails_with(load(NULL, 1, bad), LDM_ECONFIG,
                  "command line: --threads: \"x\" is not an integer");
    char *range[] = {"--timeout", "2h"};
    ck_fails_with(load(NULL, 2, range), LDM_ECONFIG,
                  "command line: --timeout: \"2h\" is out of range [1000, 3600000] ms");
    char *plain[] = {"threads=5"};
    ck_fails_with(load(NULL, 1, plain), LDM_ECONFIG,
                  "command line: \"threads=5\": expected --key=value");
    char *dash[] = {"-t"};
    ck_fails_with(load(NULL, 1, dash), LDM_ECONFIG, "command line: \"-t\": expected --key=value");
    char *bare[] = {"--"};
    ck_fails_with(load(NULL, 1, bare), LDM_ECONFIG, "command line: \"--\": expected");
    char *noname[] = {"--=5"};
    ck_fails_with(load(NULL, 1, noname), LDM_ECONFIG, "command line: \"--=5\": expected");
    char *missing[] = {"--threads"};
    ck_fails_with(load(NULL, 1, missing), LDM_ECONFIG,
                  "command line: --threads: missing value (--threads=VALUE)");
    char *missing2[] = {"--threads", "--verbose"};
    ck_fails_with(load(NULL, 2, missing2), LDM_ECONFIG, "command line: --threads: missing value");
    /* a bool alone never takes the next argument */
    char *boolval[] = {"--verbose", "false"};
    ck_fails_with(load(NULL, 2, boolval), LDM_ECONFIG, "command line: \"false\": expected");
    char *weird[] = {"--a\nb=1"};
    ck_fails_with(load(NULL, 1, weird), LDM_ECONFIG, "command line: --a?b: unknown key");
}
END_TEST

START_TEST(later_wins_and_strings_freed)
{
    /* name: default, then [common], then [loaderd], then twice on the command line */
    char *av[] = {"--name=one", "--name", "two", "--endpoint=inproc://a", "--endpoint=inproc://b",
                  "--shards=x y", "--shards=z"};
    ck_ok(load("[common]\nname = c\nshards = a\n[loaderd]\nname = d\nendpoint = inproc://f\n"
               "shards = b\n",
               7, av));
    ck_assert_str_eq(C.name, "two");
    ck_assert_str_eq(C.endpoint, "inproc://b");
    ck_assert_uint_eq(C.shards.n, 1);
    ck_assert_str_eq(C.shards.v[0], "z");
    /* a second load into the same structs (a reload) frees what the first set */
    ck_ok(load("[loaderd]\nname = again\n", 0, NULL));
    ck_assert_str_eq(C.name, "again");
    ck_assert_uint_eq(C.shards.n, 0);
}
END_TEST

/* ---- load as a whole -------------------------------------------------------------- */

START_TEST(required_keys)
{
    const char *text = "[loaderd]\nthreads = 2\n";
    ck_fails_with(ldm_cfg_load_buffer(parts, 3, "loaderd", "/etc/ldmpipe/ldmpipe.conf", text,
                                      strlen(text), 0, NULL),
                  LDM_ECONFIG,
                  "[loaderd] data: required key not set (in /etc/ldmpipe/ldmpipe.conf or "
                  "--data=...)");
    ck_fails_with(ldm_cfg_load_buffer(parts, 3, "loaderd", NULL, NULL, 0, 0, NULL), LDM_ECONFIG,
                  "[loaderd] data: required key not set (no config file; give --data=...)");
    char *av[] = {"--data=/d"};
    ck_ok(ldm_cfg_load_buffer(parts, 3, "loaderd", NULL, NULL, 0, 1, av));
    ck_assert_str_eq(R.data, "/d");
    const char *common = "[common]\ndata = /c\n";
    ck_ok(ldm_cfg_load_buffer(parts, 3, "loaderd", "t.conf", common, strlen(common), 0, NULL));
    ck_assert_str_eq(R.data, "/c");
}
END_TEST

START_TEST(table_errors)
{
    struct cfg c = {0};
    const struct ldm_cfg_key bad_def[] = {
        {"threads", LDM_CFG_INT, OFF(threads), "four", 0, 0, 0, NULL},
        {NULL},
    };
    const struct ldm_cfg_part p1[] = {{bad_def, &c}};
    ck_fails_with(ldm_cfg_load_buffer(p1, 1, "loaderd", NULL, NULL, 0, 0, NULL), LDM_ECONFIG,
                  "[loaderd] threads: bad default: \"four\" is not an integer");
    const struct ldm_cfg_part p2[] = {{keys, &c}, {keys, &c}};
    ck_fails_with(ldm_cfg_load_buffer(p2, 2, "loaderd", NULL, NULL, 0, 0, NULL), LDM_ECONFIG,
                  "key threads appears twice in the tables");
    ldm_cfg_free(p1, 1);
    const struct ldm_cfg_key odd[] = {{"x", (enum ldm_cfg_type)99, 0, NULL, 0, 0, 0, NULL}, {NULL}};
    int64_t v;
    ck_fails_with(ldm_cfg_parse_value(&odd[0], "1", &v), LDM_ECONFIG, "x: unknown key type 99");
}
END_TEST

START_TEST(load_from_file)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/ldmpipe.conf", dir);
    const char *text = "[common]\nrun_dir = /r\n[loaderd]\nthreads = 3\nverbose = on\n";
    tu_write_file(path, text, strlen(text));
    char *av[] = {"--threads=5"};
    ck_ok(ldm_cfg_load(parts, 2, "loaderd", path, 1, av));
    ck_assert_str_eq(B.run_dir, "/r");
    ck_assert_int_eq(C.threads, 5);
    ck_assert_int_eq(C.verbose, 1);
    tu_write_file(path, "[loaderd]\nthreads = x\n", 22);
    char needle[4200];
    snprintf(needle, sizeof needle, "%s:2: [loaderd] threads", path);
    ck_fails_with(ldm_cfg_load(parts, 2, "loaderd", path, 0, NULL), LDM_ECONFIG, needle);
    ck_ok(ldm_cfg_load(parts, 2, "loaderd", NULL, 0, NULL));
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(unreadable_file)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/absent.conf", dir);
    ck_fails_with(ldm_cfg_load(parts, 2, "loaderd", path, 0, NULL), LDM_ECONFIG,
                  "absent.conf: cannot open config file: No such file or directory");
    ck_fails_with(ldm_cfg_load(parts, 2, "loaderd", dir, 0, NULL), LDM_ECONFIG,
                  ": cannot read config file: Is a directory");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(large_file)
{
    /* a long line over several read buffers, ending in a value we check */
    size_t n = 100000;
    char *text = malloc(n + 64);
    ck_assert_ptr_nonnull(text);
    strcpy(text, "[loaderd]\n# ");
    memset(text + 12, 'x', n);
    strcpy(text + 12 + n, "\nthreads = 7\n");
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/big.conf", dir);
    tu_write_file(path, text, strlen(text));
    ck_ok(ldm_cfg_load(parts, 2, "loaderd", path, 0, NULL));
    ck_assert_int_eq(C.threads, 7);
    tu_rmtree(dir);
    free(dir);
    free(text);
}
END_TEST

START_TEST(usage_lines)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    ck_assert_ptr_nonnull(f);
    ldm_cfg_usage(parts, 3, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(out, "  --threads=INT "));
    ck_assert_ptr_nonnull(strstr(out, "worker threads (default: 4)\n"));
    ck_assert_ptr_nonnull(strstr(out, "--shards=PATHS"));
    ck_assert_ptr_nonnull(strstr(out, "shard paths (default: \"\")\n"));
    ck_assert_ptr_nonnull(strstr(out, "--timeout=DURATION"));
    ck_assert_ptr_nonnull(strstr(out, "data folder (required)\n"));
    ck_assert_ptr_nonnull(strstr(out, "--plain=INT"));
    free(out);
}
END_TEST

START_TEST(free_zeroes_fields)
{
    char *av[] = {"--data=/d", "--extra=p q"};
    ck_ok(ldm_cfg_load_buffer(parts, 3, "loaderd", NULL, NULL, 0, 2, av));
    ck_assert_uint_eq(C.extra.n, 2);
    ldm_cfg_free(parts, 3);
    ck_assert_ptr_null(C.name);
    ck_assert_ptr_null(C.endpoint);
    ck_assert_ptr_null(C.extra.v);
    ck_assert_uint_eq(C.extra.n, 0);
    ck_assert_ptr_null(R.data);
    ck_assert_ptr_null(B.run_dir);
}
END_TEST

Suite *suite_config(void);
Suite *suite_config(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("values");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, int_values);
    tcase_add_test(tc, int_errors);
    tcase_add_test(tc, float_values_and_errors);
    tcase_add_test(tc, bool_values_and_errors);
    tcase_add_test(tc, size_values);
    tcase_add_test(tc, size_errors);
    tcase_add_test(tc, duration_values_and_errors);
    tcase_add_test(tc, endpoint_values);
    tcase_add_test(tc, endpoint_errors);
    tcase_add_test(tc, pathlist_values);
    tcase_add_test(tc, pathlist_errors);
    tcase_add_test(tc, bounds);
    tcase_add_test(tc, strings_replaced_without_leaks);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults_only);
    tcase_add_test(tc, full_file);
    tcase_add_test(tc, common_before_own_section);
    tcase_add_test(tc, null_section_applies_common_only);
    tcase_add_test(tc, comment_rules);
    tcase_add_test(tc, continuation_and_line_numbers);
    tcase_add_test(tc, no_final_newline_and_empty);
    tcase_add_test(tc, unknown_key_in_file);
    tcase_add_test(tc, bad_value_of_each_type_in_file);
    tcase_add_test(tc, duplicate_key);
    tcase_add_test(tc, malformed_lines);
    tcase_add_test(tc, bad_section_headers);
    tcase_add_test(tc, quote_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("command line");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, command_line_forms);
    tcase_add_test(tc, command_line_errors);
    tcase_add_test(tc, later_wins_and_strings_freed);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, required_keys);
    tcase_add_test(tc, table_errors);
    tcase_add_test(tc, load_from_file);
    tcase_add_test(tc, unreadable_file);
    tcase_add_test(tc, large_file);
    tcase_add_test(tc, usage_lines);
    tcase_add_test(tc, free_zeroes_fields);
    suite_add_tcase(s, tc);
    return s;
}

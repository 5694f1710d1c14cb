/* test_source.c — shard sources (tar, pipe:, LAION lines, folders) and sample field rules. */
#include <archive.h>
#include <archive_entry.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "loaderd/sample_fields.h"
#include "loaderd/source.h"
#include "testutil.h"

Suite *suite_source(void);

/* ---- building shards ------------------------------------------------------------- */

struct bytes {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static la_ssize_t mem_write(struct archive *a, void *client, const void *buf, size_t n)
{
    (void)a;
    put(client, buf, n);
    return (la_ssize_t)n;
}

enum { T_REG, T_DIR, T_SYMLINK, T_HARDLINK };

struct tmem {
    const char *name;
    const char *data; /* NUL-terminated, or `len` bytes */
    int type;
    size_t len;
};

enum { F_NONE, F_GZIP, F_ZSTD };

/* A tar (pax) of the members, through the filter. */
static struct bytes make_tar(const struct tmem *m, size_t n, int filter)
{
    struct bytes b = {0};
    struct archive *a = archive_write_new();
    ck_assert_int_eq(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (filter == F_GZIP)
        ck_assert_int_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    if (filter == F_ZSTD)
        ck_assert_int_eq(archive_write_add_filter_zstd(a), ARCHIVE_OK);
    if (filter != F_NONE) /* no zero padding after the compressed stream */
        ck_assert_int_eq(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
    ck_assert_int_eq(archive_write_open(a, &b, NULL, mem_write, NULL), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        size_t len = m[i].type == T_REG ? (m[i].len ? m[i].len : strlen(m[i].data)) : 0;
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, 1700000000, 0);
        archive_entry_set_filetype(e, m[i].type == T_DIR       ? AE_IFDIR
                                      : m[i].type == T_SYMLINK ? AE_IFLNK
                                                               : AE_IFREG);
        if (m[i].type == T_SYMLINK)
            archive_entry_set_symlink(e, m[i].data);
        if (m[i].type == T_HARDLINK)
            archive_entry_set_hardlink(e, m[i].data);
        archive_entry_set_size(e, (la_int64_t)len);
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        if (len)
            ck_assert_int_eq(archive_write_data(a, m[i].data, len), (la_ssize_t)len);
        archive_entry_free(e);
    }
    ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    return b;
}

/* gzip of p[0..n) (one member). */
static struct bytes gz(const void *p, size_t n)
{
    struct bytes b = {0};
    z_stream zs = {0};
    ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    b.cap = deflateBound(&zs, (uLong)n) + 64;
    b.p = malloc(b.cap);
    zs.next_in = (unsigned char *)p;
    zs.avail_in = (uInt)n;
    zs.next_out = b.p;
    zs.avail_out = (uInt)b.cap;
    ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    b.n = b.cap - zs.avail_out;
    deflateEnd(&zs);
    return b;
}

static char *write_tmp(const char *dir, const char *name, const void *p, size_t n)
{
    char *path = NULL;
    ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
    tu_write_file(path, p, n);
    return path;
}

/* ---- reading them ---------------------------------------------------------------- */

#define MAXS 512

/* What came out of a source: one line per sample, "KEY|ext=data|..." (data
 * shown when printable and short, else "#LEN"), or "KEY!reason". */
struct got {
    char line[MAXS][512];
    int reason[MAXS];
    uint64_t index[MAXS];
    int n;
    int rc;            /* the final return: 0 or < 0 */
    int end_reason;    /* its reason */
    char detail[1024]; /* its detail */
};

static void summarize(const struct ldm_raw_sample *s, char *out, size_t size)
{
    size_t at = (size_t)snprintf(out, size, "%s", s->key);
    if (s->reason) {
        snprintf(out + at, size - at, "!%s", ldm_reason_name(s->reason));
        return;
    }
    for (size_t i = 0; i < s->nmembers && at < size; i++) {
        const struct ldm_member *m = &s->members[i];
        int printable = m->len < 40;
        for (size_t k = 0; k < m->len && printable; k++)
            printable = m->data[k] >= 32 && m->data[k] < 127;
        if (printable)
            at += (size_t)snprintf(out + at, size - at, "|%s=%.*s", m->ext, (int)m->len, m->data);
        else
            at += (size_t)snprintf(out + at, size - at, "|%s=#%zu", m->ext, m->len);
    }
}

static void drain(struct ldm_source *src, struct got *g)
{
    memset(g, 0, sizeof *g);
    struct ldm_raw_sample s;
    int rc;
    while ((rc = ldm_source_next(src, &s)) == 1) {
        ck_assert_int_lt(g->n, MAXS);
        summarize(&s, g->line[g->n], sizeof g->line[g->n]);
        g->reason[g->n] = s.reason;
        g->index[g->n] = s.index;
        if (s.reason)
            ck_assert_msg(strstr(s.detail, s.key) != NULL, "detail \"%s\" lacks key %s", s.detail,
                          s.key);
        g->n++;
    }
    g->rc = rc;
    if (rc < 0) {
        g->end_reason = s.reason;
        snprintf(g->detail, sizeof g->detail, "%s", s.detail);
        ck_assert_str_eq(s.detail, ldm_errmsg());
        /* sticky */
        ck_assert_int_eq(ldm_source_next(src, &s), rc);
    }
}

static void read_mem(const void *p, size_t n, const struct ldm_source_opts *o, struct got *g)
{
    struct ldm_source *src = NULL;
    ck_ok(ldm_source_open_memory(p, n, LDM_SOURCE_AUTO, "mem.tar", o, &src));
    drain(src, g);
    ldm_source_close(src);
}

static void read_url(const char *url, const struct ldm_source_opts *o, struct got *g)
{
    struct ldm_source *src = NULL;
    ck_ok(ldm_source_open(url, o, &src));
    drain(src, g);
    ldm_source_close(src);
}

static void ck_lines(const struct got *g, int n, const char *const *want)
{
    for (int i = 0; i < g->n && i < n; i++)
        ck_assert_msg(strcmp(g->line[i], want[i]) == 0, "sample %d is \"%s\", expected \"%s\"", i,
                      g->line[i], want[i]);
    ck_assert_msg(g->n == n, "%d samples, expected %d (last: %s)", g->n, n,
                  g->n ? g->line[g->n - 1] : "-");
}

static const struct tmem basic[] = {
    {"000001.jpg", "J1"},        {"000001.txt", "a red circle"}, {"000002.jpg", "J2"},
    {"000002.txt", "caption 2"}, {"000002.json", "{\"a\":1}"},
};
static const char *const basic_want[] = {
    "000001|jpg=J1|txt=a red circle",
    "000002|jpg=J2|txt=caption 2|json={\"a\":1}",
};

/* ---- tar ------------------------------------------------------------------------------ */

START_TEST(tar_groups_by_key)
{
    for (int f = F_NONE; f <= F_ZSTD; f++) {
        struct bytes b = make_tar(basic, 5, f);
        static struct got g;
        read_mem(b.p, b.n, NULL, &g);
        ck_assert_int_eq(g.rc, 0);
        ck_lines(&g, 2, basic_want);
        ck_assert_uint_eq(g.index[0], 0);
        ck_assert_uint_eq(g.index[1], 1);
        free(b.p);
    }
}
END_TEST

/* Compression is told by content: a .tar.zst named ".tar", a .tar.gz named ".dat". */
START_TEST(tar_files_by_content)
{
    char *dir = tu_tmpdir();
    const char *names[] = {"a.gz", "b.tar", "c.dat"};
    for (int f = F_NONE; f <= F_ZSTD; f++) {
        struct bytes b = make_tar(basic, 5, f);
        char *path = write_tmp(dir, names[f], b.p, b.n);
        static struct got g;
        read_url(path, NULL, &g);
        ck_assert_int_eq(g.rc, 0);
        ck_lines(&g, 2, basic_want);
        free(path);
        free(b.p);
    }
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(tar_keys_with_folders_and_dots)
{
    static const struct tmem m[] = {
        {"dir/000001.input.jpg", "IN"}, {"dir/000001.jpg", "OUT"}, {"dir/000001.TXT", "cap"},
        {"./a.b/c.d.e", "x"},           {"./a.b/c.JPG", "y"},      {"x/y/z.tar.gz", "t"},
    };
    struct bytes b = make_tar(m, 6, F_NONE);
    static struct got g;
    read_mem(b.p, b.n, NULL, &g);
    static const char *const want[] = {
        "dir/000001|input.jpg=IN|jpg=OUT|txt=cap",
        "a.b/c|d.e=x|jpg=y",
        "x/y/z|tar.gz=t",
    };
    ck_assert_int_eq(g.rc, 0);
    ck_lines(&g, 3, want);
    free(b.p);
}
END_TEST

START_TEST(tar_skips_what_is_not_a_member)
{
    static const struct tmem m[] = {
        {"dir", "", T_DIR},
        {"dir/000001.jpg", "J"},
        {"__MACOSX/dir/._000001.jpg", "apple"},
        {"dir/._000001.jpg", "apple"},
        {"dir/.hidden", "h"},
        {"dir/README", "no dot"},
        {"dir/000001.", "empty ext"},
        {"__meta__", "m"},
        {"__info__/x.json", "m"},
        {"dir/000001.lnk", "000001.jpg", T_SYMLINK},
        {"dir/000001.hard", "dir/000001.jpg", T_HARDLINK},
        {"dir/000001.txt", "T"},
    };
    struct bytes b = make_tar(m, 12, F_NONE);
    static struct got g;
    read_mem(b.p, b.n, NULL, &g);
    static const char *const want[] = {"dir/000001|jpg=J|txt=T"};
    ck_assert_int_eq(g.rc, 0);
    ck_lines(&g, 1, want);
    free(b.p);
}
END_TEST

/* As webdataset: only consecutive members group; a key seen again is a new sample. */
START_TEST(tar_same_key_apart_is_two_samples)
{
    static const struct tmem m[] = {
        {"a.jpg", "1"},
        {"b.jpg", "2"},
        {"a.txt", "3"},
    };
    struct bytes b = make_tar(m, 3, F_NONE);
    static struct got g;
    read_mem(b.p, b.n, NULL, &g);
    static const char *const want[] = {"a|jpg=1", "b|jpg=2", "a|txt=3"};
    ck_lines(&g, 3, want);
    ck_assert_uint_eq(g.index[2], 2);
    free(b.p);
}
END_TEST

START_TEST(tar_wanted_members_only)
{
    static const char *const want_exts[] = {"jpg", "txt", NULL};
    struct ldm_source_opts o = {.want = want_exts};
    struct bytes b = make_tar(basic, 5, F_GZIP);
    static struct got g;
    read_mem(b.p, b.n, &o, &g);
    static const char *const want[] = {"000001|jpg=J1|txt=a red circle",
                                       "000002|jpg=J2|txt=caption 2"};
    ck_lines(&g, 2, want);
    free(b.p);
}
END_TEST

START_TEST(tar_per_sample_problems)
{
    char big[64];
    memset(big, 'B', sizeof big - 1);
    big[63] = '\0';
    const struct tmem m[] = {
        {"a.jpg", "ok"}, {"a.txt", "fine"},                                   /* fine */
        {"b.jpg", big},  {"b.txt", "x"},                                      /* too big */
        {"c.jpg", "1"},  {"c.JPG", "2"},                                      /* duplicate */
        {"d.jpg", "1"},  {"d.txt", "2"},     {"d.json", "3"}, {"d.cls", "4"}, /* too many */
        {"e.jpg", "ok"}, {"e.txt", "again"},
    };
    struct ldm_source_opts o = {.max_member_bytes = 32, .max_members = 3};
    struct bytes b = make_tar(m, 12, F_NONE);
    struct ldm_source *src = NULL;
    ck_ok(ldm_source_open_memory(b.p, b.n, LDM_SOURCE_TAR, "s.tar", &o, &src));
    struct ldm_raw_sample s;
    int reasons[] = {0, LDM_REASON_MEMBER_TOO_BIG, LDM_REASON_DUPLICATE_EXT,
                     LDM_REASON_TOO_MANY_MEMBERS, 0};
    const char *details[] = {"", "s.tar: b: member \"jpg\" is 63 bytes (limit 32)",
                             "s.tar: c: member \"jpg\" appears twice", "s.tar: d: more than 3", ""};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(ldm_source_next(src, &s), 1);
        ck_assert_uint_eq(s.index, (uint64_t)i);
        ck_assert_msg(s.reason == reasons[i], "sample %d (%s): reason %s", i, s.key,
                      ldm_reason_name(s.reason));
        ck_assert_msg(strstr(s.detail, details[i]), "detail \"%s\"", s.detail);
    }
    ck_assert_int_eq(ldm_source_next(src, &s), 0);
    ldm_source_close(src);
    free(b.p);
}
END_TEST

START_TEST(tar_sample_total_limit)
{
    const struct tmem m[] = {
        {"a.jpg", "0123456789012345678901234"}, {"a.txt", "0123456789012345678901234"},
        {"b.jpg", "0123456789012345678901234"}, {"b.txt", "short"},
    };
    struct ldm_source_opts o = {.max_member_bytes = 32, .max_sample_bytes = 40};
    struct bytes b = make_tar(m, 4, F_NONE);
    static struct got g;
    read_mem(b.p, b.n, &o, &g);
    static const char *const want[] = {"a!sample_too_big",
                                       "b|jpg=0123456789012345678901234|txt=short"};
    ck_lines(&g, 2, want);
    free(b.p);
}
END_TEST

/* A member of several MiB arrives whole (its buffer grows as its data comes). */
START_TEST(tar_big_member)
{
    size_t n = (3u << 20) + 5;
    char *big = malloc(n + 1);
    unsigned x = 7;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (char)(x >> 16);
    }
    big[n] = '\0';
    const struct tmem m[] = {{"k.bin", big, T_REG, n}, {"k.txt", "t"}};
    struct bytes b = make_tar(m, 2, F_GZIP);
    struct ldm_source *src = NULL;
    struct ldm_raw_sample s;
    ck_ok(ldm_source_open_memory(b.p, b.n, LDM_SOURCE_AUTO, "big.tar.gz", NULL, &src));
    ck_assert_int_eq(ldm_source_next(src, &s), 1);
    ck_assert_int_eq(s.reason, 0);
    ck_assert_uint_eq(s.nmembers, 2);
    ck_assert_uint_eq(s.members[0].len, n);
    ck_assert_msg(memcmp(s.members[0].data, big, n) == 0, "member bytes differ");
    ck_assert_int_eq(ldm_source_next(src, &s), 0);
    ldm_source_close(src);
    free(b.p);
    free(big);
}
END_TEST

/* Three samples of 3000-byte members: a 5-letter marker ("aaaaa", "bbbbb",
 * "ccccc"), then letters that do not compress much. */
static struct bytes three_samples(int filter)
{
    static char d[3][3001];
    unsigned x = 12345;
    for (int i = 0; i < 3; i++) {
        memset(d[i], 'a' + i, 5);
        for (int k = 5; k < 3000; k++) {
            x = x * 1103515245u + 12345u;
            d[i][k] = (char)('d' + (x >> 16) % 20);
        }
        d[i][3000] = '\0';
    }
    const struct tmem m[] = {
        {"000001.jpg", d[0]},  {"000001.txt", "one"}, {"000002.jpg", d[1]},
        {"000002.txt", "two"}, {"000003.jpg", d[2]},  {"000003.txt", "three"},
    };
    return make_tar(m, 6, filter);
}

START_TEST(tar_truncated_in_member_data)
{
    struct bytes b = three_samples(F_NONE);
    const unsigned char *third = memmem(b.p, b.n, "ccccc", 5);
    ck_assert_ptr_nonnull(third);
    static struct got g;
    struct ldm_source *src = NULL;
    ck_ok(ldm_source_open_memory(b.p, (size_t)(third - b.p) + 1000, LDM_SOURCE_AUTO, "cut.tar",
                                 NULL, &src));
    drain(src, &g);
    ldm_source_close(src);
    static const char *const want[] = {"000001|jpg=#3000|txt=one", "000002|jpg=#3000|txt=two"};
    ck_lines(&g, 2, want);
    ck_assert_int_eq(g.rc, LDM_EFORMAT);
    ck_assert_int_eq(g.end_reason, LDM_REASON_TRUNCATED);
    ck_assert_msg(strstr(g.detail, "cut.tar: truncated archive at byte") &&
                      strstr(g.detail, "member \"000003.jpg\""),
                  "detail: %s", g.detail);
    free(b.p);
}
END_TEST

START_TEST(tar_truncated_in_header)
{
    struct bytes b = three_samples(F_NONE);
    const unsigned char *h = memmem(b.p, b.n, "000003.jpg", 10);
    ck_assert_ptr_nonnull(h);
    static struct got g;
    struct ldm_source *src = NULL;
    ck_ok(ldm_source_open_memory(b.p, (size_t)(h - b.p) + 200, LDM_SOURCE_TAR, "cut.tar", NULL,
                                 &src));
    drain(src, &g);
    ldm_source_close(src);
    ck_assert_int_eq(g.n, 2); /* the second sample is whole: it comes */
    ck_assert_int_eq(g.rc, LDM_EFORMAT);
    ck_assert_int_eq(g.end_reason, LDM_REASON_TRUNCATED);
    ck_assert_msg(strstr(g.detail, "after member \"000002.txt\""), "detail: %s", g.detail);
    free(b.p);
}
END_TEST

START_TEST(tar_corrupt_header)
{
    struct bytes b = three_samples(F_NONE);
    unsigned char *h = memmem(b.p, b.n, "000003.jpg", 10);
    ck_assert_ptr_nonnull(h);
    memset(h, 0x5a, 300); /* a header with a wrong checksum */
    static struct got g;
    read_mem(b.p, b.n, NULL, &g);
    ck_assert_int_eq(g.n, 2);
    ck_assert_int_eq(g.rc, LDM_EFORMAT);
    ck_assert_int_eq(g.end_reason, LDM_REASON_CORRUPT);
    ck_assert_msg(strstr(g.detail, "mem.tar: damaged archive at byte"), "detail: %s", g.detail);
    free(b.p);
}
END_TEST

START_TEST(tar_gz_truncated)
{
    struct bytes b = three_samples(F_GZIP);
    static struct got g;
    struct ldm_source *src = NULL;
    ck_ok(ldm_source_open_memory(b.p, b.n * 2 / 3, LDM_SOURCE_AUTO, "cut.tar.gz", NULL, &src));
    drain(src, &g);
    ldm_source_close(src);
    ck_assert_int_lt(g.n, 3);
    for (int i = 0; i < g.n; i++)
        ck_assert_int_eq(g.reason[i], 0);
    ck_assert_int_eq(g.rc, LDM_EFORMAT);
    ck_assert_int_eq(g.end_reason, LDM_REASON_TRUNCATED);
    ck_assert_msg(strstr(g.detail, "cut.tar.gz: truncated archive"), "detail: %s", g.detail);
    free(b.p);
}
END_TEST

START_TEST(tar_not_a_tar)
{
    struct bytes b = gz("\x7f"
                        "ELF garbage that is not text lines ...",
                        40);
    static struct got g;
    struct ldm_source *src = NULL;
    ck_ok(ldm_source_open_memory(b.p, b.n, LDM_SOURCE_TAR, "x.tar", NULL, &src));
    drain(src, &g);
    ldm_source_close(src);
    ck_assert_int_eq(g.n, 0);
    ck_assert_int_eq(g.rc, LDM_EFORMAT);
    ck_assert_int_eq(g.end_reason, LDM_REASON_CORRUPT);
    ck_assert_msg(strstr(g.detail, "x.tar: damaged archive"), "detail: %s", g.detail);
    free(b.p);
}
END_TEST

/* ---- pipe: ---------------------------------------------------------------------------- */

START_TEST(pipe_cat_and_failures)
{
    char *dir = tu_tmpdir();
    struct bytes b = make_tar(basic, 5, F_ZSTD);
    char *path = write_tmp(dir, "s.tar.zst", b.p, b.n);
    char url[PATH_MAX + 64];
    static struct got g;

    snprintf(url, sizeof url, "pipe:cat %s", path);
    read_url(url, NULL, &g);
    ck_assert_int_eq(g.rc, 0);
    ck_lines(&g, 2, basic_want);

    snprintf(url, sizeof url, "pipe:cat %s; exit 3", path);
    read_url(url, NULL, &g);
    ck_lines(&g, 2, basic_want); /* the samples first, then the failure */
    ck_assert_int_eq(g.rc, LDM_EIO);
    ck_assert_int_eq(g.end_reason, LDM_REASON_PIPE_FAILED);
    ck_assert_msg(strstr(g.detail, url) && strstr(g.detail, "exited with status 3 after 2"),
                  "detail: %s", g.detail);

    read_url("pipe:false", NULL, &g);
    ck_assert_int_eq(g.n, 0);
    ck_assert_int_eq(g.end_reason, LDM_REASON_PIPE_FAILED);
    ck_assert_msg(strstr(g.detail, "pipe:false: the command exited with status 1"), "detail: %s",
                  g.detail);

    read_url("pipe:echo not a tar; exit 2", NULL, &g);
    ck_assert_int_eq(g.end_reason, LDM_REASON_PIPE_FAILED);
    ck_assert_msg(strstr(g.detail, "status 2"), "detail: %s", g.detail);
    free(path);
    free(b.p);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(pipe_truncated_stream)
{
    char *dir = tu_tmpdir();
    struct bytes b = three_samples(F_NONE);
    char *path = write_tmp(dir, "s.tar", b.p, b.n);
    char url[PATH_MAX + 64];
    const unsigned char *third = memmem(b.p, b.n, "ccccc", 5);
    snprintf(url, sizeof url, "pipe:head -c %zu %s", (size_t)(third - b.p) + 10, path);
    static struct got g;
    read_url(url, NULL, &g);
    ck_assert_int_eq(g.n, 2);
    ck_assert_int_eq(g.end_reason, LDM_REASON_TRUNCATED);
    ck_assert_msg(strstr(g.detail, "000003.jpg"), "detail: %s", g.detail);
    free(path);
    free(b.p);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Closing early stops the command (and what it started) at once. */
START_TEST(pipe_closed_early)
{
    char *dir = tu_tmpdir();
    struct bytes b = make_tar(basic, 5, F_NONE);
    char *path = write_tmp(dir, "s.tar", b.p, b.n);
    char url[PATH_MAX + 64];
    snprintf(url, sizeof url, "pipe:cat %s; sleep 30", path);
    struct ldm_source *src = NULL;
    struct ldm_raw_sample s;
    time_t t0 = time(NULL);
    ck_ok(ldm_source_open(url, NULL, &src));
    ck_assert_int_eq(ldm_source_next(src, &s), 1);
    ck_assert_str_eq(s.key, "000001");
    ldm_source_close(src);
    ck_assert_int_lt(time(NULL) - t0, 5);
    free(path);
    free(b.p);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- LAION lines ------------------------------------------------------------------------ */

static void b64(const unsigned char *p, size_t n, int pad, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        size_t k = n - i >= 3 ? 4 : n - i + 1;
        for (size_t j = 0; j < 4; j++)
            if (j < k)
                out[o++] = a[(v >> (18 - 6 * j)) & 63];
            else if (pad)
                out[o++] = '=';
    }
    out[o] = '\0';
}

/* The lines of the test shard (see the expectations in laion_lines). */
static char *laion_text(void)
{
    static const unsigned char jpg[] = "\xff\xd8\xff\xe0JPEGDATA", png[] = "\x89PNG\r\n\x1a\nrest";
    char j64[64], p64[64], *long_field = malloc(5001), *text = NULL;
    b64(jpg, sizeof jpg - 1, 1, j64);
    b64(png, sizeof png - 1, 0, p64);
    memset(long_field, 'A', 5000);
    long_field[5000] = '\0';
    ck_assert_int_ge(asprintf(&text,
                              "a red circle\t\t%s\n"    /* 1 */
                              "only one field\n"        /* 2 */
                              "cap\tx\t!!notbase64\n"   /* 3 */
                              "long\t\t%s\n"            /* 4 */
                              "png pic\t_\t%s\textra\n" /* 5 */
                              "crlf\t\t%s\r\n"          /* 6 */
                              "\n"                      /* 7 */
                              "last, no newline\t\t%s", /* 8 */
                              j64, long_field, p64, j64, j64),
                     0);
    free(long_field);
    return text;
}

static const char *const laion_want[] = {
    "1|txt=a red circle|jpg=#12",
    "2!bad_line",
    "3!bad_base64",
    "4!line_too_long",
    "5|txt=png pic|png=#12",
    "6|txt=crlf|jpg=#12",
    "7!bad_line",
    "8|txt=last, no newline|jpg=#12",
};

START_TEST(laion_lines)
{
    char *text = laion_text();
    struct ldm_source_opts o = {.max_line_bytes = 1000};
    static struct got g;
    /* plain text and gzip alike */
    read_mem(text, strlen(text), &o, &g);
    ck_assert_int_eq(g.rc, 0);
    ck_lines(&g, 8, laion_want);
    struct bytes z = gz(text, strlen(text));
    read_mem(z.p, z.n, &o, &g);
    ck_assert_int_eq(g.rc, 0);
    ck_lines(&g, 8, laion_want);
    ck_assert_uint_eq(g.index[7], 7);
    free(z.p);
    free(text);
}
END_TEST

START_TEST(laion_details)
{
    char *text = laion_text();
    struct bytes z = gz(text, strlen(text));
    struct ldm_source_opts o = {.max_line_bytes = 1000};
    struct ldm_source *src = NULL;
    struct ldm_raw_sample s;
    ck_ok(ldm_source_open_memory(z.p, z.n, LDM_SOURCE_LINES, "part-00000.gz", &o, &src));
    const char *want[] = {
        NULL,
        "part-00000.gz: 2: the line has 1 field(s), needs 3",
        "part-00000.gz: 3: the image field is not base64 (byte 0x21 at column 7)",
        "part-00000.gz: 4: the line is over 1000 bytes",
    };
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(ldm_source_next(src, &s), 1);
        if (want[i])
            ck_assert_msg(strstr(s.detail, want[i]), "detail: %s", s.detail);
    }
    ldm_source_close(src);
    free(z.p);
    free(text);
}
END_TEST

/* Base64 is decoded exactly: padded or not, URL-safe or standard, blanks inside. */
START_TEST(laion_base64_forms)
{
    const char *text = "p\t\tQUJD\n"  /* ABC */
                       "q\t\tQUI=\n"  /* AB */
                       "r\t\tQUI\n"   /* AB, no padding */
                       "s\t\tQQ\n"    /* A */
                       "t\t\tQU JD\n" /* blank inside */
                       "u\t\t-_-_\n"  /* URL-safe */
                       "v\t\t+/+/\n"  /* the same, standard */
                       "w\t\tQ\n"     /* 4k+1 symbols */
                       "x\t\tQQ=A\n"  /* data after '=' */
                       "y\t\tQ===\n"  /* '=' too early */
                       "z\t\t\n";     /* empty image */
    static const char *const want[] = {
        "1|txt=p|jpg=ABC", "2|txt=q|jpg=AB", "3|txt=r|jpg=AB", "4|txt=s|jpg=A",
        "5|txt=t|jpg=ABC", "6|txt=u|jpg=#3", "7|txt=v|jpg=#3", "8!bad_base64",
        "9!bad_base64",    "10!bad_base64",  "11|txt=z|jpg=",
    };
    static struct got g;
    read_mem(text, strlen(text), NULL, &g);
    ck_lines(&g, 11, want);
    struct ldm_source *src = NULL;
    struct ldm_raw_sample s, t;
    ck_ok(ldm_source_open_memory(text, strlen(text), LDM_SOURCE_LINES, "b", NULL, &src));
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(ldm_source_next(src, &s), 1);
    unsigned char url_safe[3];
    memcpy(url_safe, s.members[1].data, 3);
    ck_assert_int_eq(ldm_source_next(src, &t), 1);
    ck_assert_mem_eq(url_safe, t.members[1].data, 3);
    ck_assert_mem_eq(url_safe, "\xfb\xff\xbf", 3);
    ldm_source_close(src);
}
END_TEST

START_TEST(laion_gz_truncated_and_damaged)
{
    char *text = NULL;
    size_t n = 0, cap = 0;
    FILE *f = open_memstream(&text, &cap);
    for (int i = 0; i < 400; i++)
        fprintf(f, "caption number %d\t\t/9j/%08dQUJD\n", i, i * 7919);
    fclose(f);
    n = strlen(text);
    struct bytes z = gz(text, n);
    static struct got g;
    struct ldm_source *src = NULL;
    ck_ok(ldm_source_open_memory(z.p, z.n / 2, LDM_SOURCE_AUTO, "part-00001.gz", NULL, &src));
    drain(src, &g);
    ldm_source_close(src);
    ck_assert_int_gt(g.n, 0);
    ck_assert_int_lt(g.n, 400);
    for (int i = 0; i < g.n; i++) {
        char want[64];
        snprintf(want, sizeof want, "%d|txt=caption number %d|jpg=#", i + 1, i);
        ck_assert_msg(strncmp(g.line[i], want, strlen(want)) == 0, "line %d: %s", i, g.line[i]);
    }
    ck_assert_int_eq(g.rc, LDM_EFORMAT);
    ck_assert_int_eq(g.end_reason, LDM_REASON_TRUNCATED);
    ck_assert_msg(strstr(g.detail, "part-00001.gz: truncated gzip stream at byte"), "detail: %s",
                  g.detail);

    z.p[z.n / 2] ^= 0xff; /* a damaged middle */
    z.p[z.n / 2 + 1] ^= 0x55;
    z.p[z.n / 2 + 2] ^= 0xaa;
    read_mem(z.p, z.n, NULL, &g);
    ck_assert_int_lt(g.n, 400);
    ck_assert_int_eq(g.end_reason, LDM_REASON_CORRUPT);
    ck_assert_msg(strstr(g.detail, "damaged gzip stream near byte"), "detail: %s", g.detail);
    free(z.p);
    free(text);
}
END_TEST

/* Several gzip members in one file read as one text; trailing junk is ignored. */
START_TEST(laion_multi_member_gzip)
{
    const char *a = "one\t\tQUJD\ntwo\t\tQUJD", *b = "\nthree\t\tQUJD\n";
    struct bytes za = gz(a, strlen(a)), zb = gz(b, strlen(b)), all = {0};
    put(&all, za.p, za.n);
    put(&all, zb.p, zb.n);
    put(&all, "\0\0\0\0", 4);
    static struct got g;
    read_mem(all.p, all.n, NULL, &g);
    static const char *const want[] = {"1|txt=one|jpg=ABC", "2|txt=two|jpg=ABC",
                                       "3|txt=three|jpg=ABC"};
    ck_assert_int_eq(g.rc, 0);
    ck_lines(&g, 3, want);
    free(za.p);
    free(zb.p);
    free(all.p);
}
END_TEST

START_TEST(laion_file_on_disk)
{
    char *dir = tu_tmpdir();
    char *text = laion_text();
    struct bytes z = gz(text, strlen(text));
    char *path = write_tmp(dir, "part-00000.gz", z.p, z.n);
    struct ldm_source_opts o = {.max_line_bytes = 1000};
    static struct got g;
    read_url(path, &o, &g);
    ck_assert_int_eq(g.rc, 0);
    ck_lines(&g, 8, laion_want);
    /* a line cap bigger than the read buffer holds long lines whole */
    char *big = malloc(700001);
    memset(big, 'Q', 700000);
    big[700000] = '\0';
    char *line = NULL;
    ck_assert_int_ge(asprintf(&line, "big\t\t%s\nafter\t\tQUJD\n", big), 0);
    struct bytes zl = gz(line, strlen(line));
    free(path);
    path = write_tmp(dir, "part-00001.gz", zl.p, zl.n);
    read_url(path, NULL, &g);
    static const char *const want2[] = {"1|txt=big|jpg=#525000", "2|txt=after|jpg=ABC"};
    ck_lines(&g, 2, want2);
    free(big);
    free(line);
    free(zl.p);
    free(path);
    free(z.p);
    free(text);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- folders ---------------------------------------------------------------------------- */

static void put_file(const char *dir, const char *rel, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    tu_write_file(path, text, strlen(text));
}

START_TEST(folder_images_with_captions)
{
    char *dir = tu_tmpdir();
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/.git", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    put_file(dir, "b.jpg", "B");
    put_file(dir, "b.txt", "bee");
    put_file(dir, "a.PNG", "A");
    put_file(dir, "a.txt", "ay");
    put_file(dir, "a.jpeg", "A2");
    put_file(dir, "sub/c.webp", "C");
    put_file(dir, "sub/c.json", "{\"caption\":\"see\"}");
    put_file(dir, "d.2023.jpg", "D");
    put_file(dir, "d.2023.txt", "dots");
    put_file(dir, "e.jpg", "E");
    put_file(dir, "e.input.jpg", "EI");
    put_file(dir, "e.txt", "pair");
    put_file(dir, ".hidden.jpg", "H");
    put_file(dir, ".git/x.jpg", "G");
    put_file(dir, "notes.md", "N");
    static const char *const exts[] = {"jpg", "jpeg", "png",       "webp",
                                       "txt", "json", "input.jpg", NULL};
    struct ldm_source_opts o = {.want = exts};
    static struct got g;
    read_url(dir, &o, &g);
    static const char *const want[] = {
        "a|jpeg=A2|png=A|txt=ay",
        "b|jpg=B|txt=bee",
        "d.2023|jpg=D|txt=dots",
        "e|jpg=E|txt=pair|input.jpg=EI",
        "sub/c|webp=C|json={\"caption\":\"see\"}",
    };
    ck_assert_int_eq(g.rc, 0);
    ck_lines(&g, 5, want);
    /* without the wanted list, e.input.jpg is an image of its own */
    read_url(dir, NULL, &g);
    ck_assert_int_eq(g.n, 6);
    ck_assert_str_eq(g.line[4], "e.input|jpg=EI");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(folder_member_too_big)
{
    char *dir = tu_tmpdir();
    put_file(dir, "a.jpg", "0123456789abcdef");
    put_file(dir, "a.txt", "caption");
    put_file(dir, "b.jpg", "small");
    struct ldm_source_opts o = {.max_member_bytes = 8};
    static struct got g;
    read_url(dir, &o, &g);
    static const char *const want[] = {"a!member_too_big", "b|jpg=small"};
    ck_lines(&g, 2, want);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- opening ------------------------------------------------------------------------------ */

START_TEST(open_errors_and_empty)
{
    struct ldm_source *src = NULL;
    ck_fails_with(ldm_source_open("/nonexistent/s-1.tar", NULL, &src), LDM_ENOTFOUND,
                  "/nonexistent/s-1.tar");
    ck_fails_with(ldm_source_open("https://host/s-1.tar", NULL, &src), LDM_EUNSUPPORTED,
                  "use pipe:");
    ck_fails_with(ldm_source_open("pipe:", NULL, &src), LDM_EINVAL, "empty command");
    ck_fails_with(ldm_source_open("", NULL, &src), LDM_EINVAL, "empty");
    ck_assert_ptr_null(src);
    char *dir = tu_tmpdir();
    char *path = write_tmp(dir, "empty.tar", "", 0);
    static struct got g;
    read_url(path, NULL, &g);
    ck_assert_int_eq(g.rc, 0);
    ck_assert_int_eq(g.n, 0);
    read_url(dir, NULL, &g); /* a folder without images */
    ck_assert_int_eq(g.n, 0);
    free(path);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(reason_names)
{
    ck_assert_str_eq(ldm_reason_name(LDM_REASON_NONE), "none");
    ck_assert_str_eq(ldm_reason_name(LDM_REASON_TRUNCATED), "truncated");
    ck_assert_str_eq(ldm_reason_name(LDM_REASON_NO_CAPTION), "no_caption");
    ck_assert_str_eq(ldm_reason_name(-1), "unknown");
    ck_assert_str_eq(ldm_reason_name(LDM_REASON_COUNT), "unknown");
    for (int r = 0; r < LDM_REASON_COUNT; r++)
        ck_assert_str_ne(ldm_reason_name(r), "unknown");
}
END_TEST

/* ---- sample fields --------------------------------------------------------------------- */

#define MEM(e, s)                                                                                  \
    {                                                                                              \
        e, (const unsigned char *)(s), sizeof(s) - 1                                               \
    }

static int fields(const struct ldm_member *m, size_t n, const struct ldm_fields_opts *o,
                  struct ldm_fields *f)
{
    struct ldm_raw_sample s = {.shard = "s.tar", .key = "k1", .members = m, .nmembers = n};
    return ldm_sample_fields(&s, o, f);
}

START_TEST(fields_image_and_cond)
{
    struct ldm_fields f;
    const struct ldm_member m[] = {MEM("webp", "W"), MEM("png", "P"), MEM("jpeg", "J"),
                                   MEM("input.jpg", "I"), MEM("txt", "  cap \n")};
    ck_ok(fields(m, 5, NULL, &f));
    ck_assert_str_eq(f.image->ext, "jpeg");
    ck_assert_ptr_null(f.cond);
    ck_assert_uint_eq(f.ncaptions, 1);
    ck_assert_str_eq(f.captions[0], "cap");
    ldm_fields_free(&f);
    struct ldm_fields_opts o = {.cond_ext = "input.jpg"};
    ck_ok(fields(m, 5, &o, &f));
    ck_assert_mem_eq(f.cond->data, "I", 1);
    ldm_fields_free(&f);
    ck_fails_with(fields(m, 2, NULL, &f), LDM_EFORMAT, "s.tar: k1: no caption: no txt or json");
    ck_assert_int_eq(f.reason, LDM_REASON_NO_CAPTION);
    ck_fails_with(fields(m + 3, 2, NULL, &f), LDM_EFORMAT,
                  "s.tar: k1: no image member (jpg, jpeg, png, webp; members: input.jpg, txt)");
    ck_assert_int_eq(f.reason, LDM_REASON_NO_IMAGE);
    o.cond_ext = "hint.png";
    ck_fails_with(fields(m, 5, &o, &f), LDM_EFORMAT, "no conditioning image member \"hint.png\"");
    ck_assert_int_eq(f.reason, LDM_REASON_NO_COND);
    ldm_fields_free(&f);
}
END_TEST

START_TEST(fields_caption_from_json)
{
    struct ldm_fields f;
    const struct ldm_member str[] = {MEM("jpg", "J"), MEM("json", "{\"caption\": \" a cat \"}")};
    ck_ok(fields(str, 2, NULL, &f));
    ck_assert_uint_eq(f.ncaptions, 1);
    ck_assert_str_eq(f.captions[0], "a cat");
    ldm_fields_free(&f);
    const struct ldm_member list[] = {
        MEM("jpg", "J"), MEM("json", "{\"texts\": [\"one\", \"dos\", \"\\u00e9t\\u00e9\"]}")};
    struct ldm_fields_opts o = {.json_key = "texts"};
    ck_ok(fields(list, 2, &o, &f));
    ck_assert_uint_eq(f.ncaptions, 3);
    ck_assert_str_eq(f.captions[1], "dos");
    ck_assert_str_eq(f.captions[2], "\xc3\xa9t\xc3\xa9");
    ldm_fields_free(&f);
    /* txt wins over json */
    const struct ldm_member both[] = {MEM("jpg", "J"), MEM("json", "{\"caption\": \"j\"}"),
                                      MEM("txt", "t")};
    ck_ok(fields(both, 3, NULL, &f));
    ck_assert_str_eq(f.captions[0], "t");
    ldm_fields_free(&f);
}
END_TEST

START_TEST(fields_caption_problems)
{
    struct ldm_fields f;
    struct {
        const char *ext, *data;
        int reason;
        const char *needle;
    } cases[] = {
        {"txt", "caf\xc3", LDM_REASON_BAD_UTF8, "not valid UTF-8 (at byte 3)"},
        {"txt", "\xff", LDM_REASON_BAD_UTF8, "not valid UTF-8"},
        {"json", "{\"caption\": 3}", LDM_REASON_BAD_JSON, "neither a string nor a list"},
        {"json", "{\"caption\": [\"a\", 2]}", LDM_REASON_BAD_JSON, "item 1 is not a string"},
        {"json", "{\"caption\": ", LDM_REASON_BAD_JSON, "json member malformed"},
        {"json", "[\"a\"]", LDM_REASON_BAD_JSON, "json member malformed"},
        {"json", "{\"caption\": \"\\u0000\"}", LDM_REASON_BAD_JSON, "json member malformed"},
        {"json", "{\"other\": \"x\"}", LDM_REASON_NO_CAPTION, "json field \"caption\" is missing"},
        {"json", "{\"caption\": []}", LDM_REASON_NO_CAPTION, "is empty"},
        {"json", "{\"caption\": null}", LDM_REASON_NO_CAPTION, "is empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct ldm_member m[] = {
            MEM("jpg", "J"),
            {cases[i].ext, (const unsigned char *)cases[i].data, strlen(cases[i].data)}};
        ck_fails_with(fields(m, 2, NULL, &f), LDM_EFORMAT, cases[i].needle);
        ck_assert_msg(f.reason == cases[i].reason, "case %zu: reason %s", i,
                      ldm_reason_name(f.reason));
        ck_assert_ptr_null(f.captions);
    }
    const struct ldm_member nul[] = {MEM("jpg", "J"), {"txt", (const unsigned char *)"a\0b", 3}};
    ck_fails_with(fields(nul, 2, NULL, &f), LDM_EFORMAT, "holds a NUL byte (at byte 1)");
    ck_assert_int_eq(f.reason, LDM_REASON_BAD_UTF8);
    /* an empty txt is an empty caption, not a missing one */
    const struct ldm_member empty[] = {MEM("jpg", "J"), MEM("txt", " \n")};
    ck_ok(fields(empty, 2, NULL, &f));
    ck_assert_str_eq(f.captions[0], "");
    ldm_fields_free(&f);
}
END_TEST

/* A tar read end to end through the field rules. */
START_TEST(fields_over_a_tar)
{
    static const struct tmem m[] = {
        {"p/0001.jpg", "J"},
        {"p/0001.input.jpg", "I"},
        {"p/0001.json", "{\"caption\":[\"x\",\"y\"]}"},
        {"p/0002.jpg", "J"},
        {"p/0002.txt", "no input"},
    };
    struct bytes b = make_tar(m, 5, F_NONE);
    struct ldm_source *src = NULL;
    struct ldm_raw_sample s;
    struct ldm_fields f;
    struct ldm_fields_opts o = {.cond_ext = "input.jpg"};
    ck_ok(ldm_source_open_memory(b.p, b.n, LDM_SOURCE_AUTO, "pairs-000000.tar", NULL, &src));
    ck_assert_int_eq(ldm_source_next(src, &s), 1);
    ck_ok(ldm_sample_fields(&s, &o, &f));
    ck_assert_uint_eq(f.ncaptions, 2);
    ck_assert_mem_eq(f.cond->data, "I", 1);
    ldm_fields_free(&f);
    ck_assert_int_eq(ldm_source_next(src, &s), 1);
    ck_fails_with(ldm_sample_fields(&s, &o, &f), LDM_EFORMAT,
                  "pairs-000000.tar: p/0002: no conditioning image");
    ldm_source_close(src);
    free(b.p);
}
END_TEST

Suite *suite_source(void)
{
    Suite *s = suite_create("source");
    TCase *t = tcase_create("tar");
    tcase_add_test(t, tar_groups_by_key);
    tcase_add_test(t, tar_files_by_content);
    tcase_add_test(t, tar_keys_with_folders_and_dots);
    tcase_add_test(t, tar_skips_what_is_not_a_member);
    tcase_add_test(t, tar_same_key_apart_is_two_samples);
    tcase_add_test(t, tar_wanted_members_only);
    tcase_add_test(t, tar_per_sample_problems);
    tcase_add_test(t, tar_sample_total_limit);
    tcase_add_test(t, tar_big_member);
    tcase_add_test(t, tar_truncated_in_member_data);
    tcase_add_test(t, tar_truncated_in_header);
    tcase_add_test(t, tar_corrupt_header);
    tcase_add_test(t, tar_gz_truncated);
    tcase_add_test(t, tar_not_a_tar);
    suite_add_tcase(s, t);
    TCase *p = tcase_create("pipe");
    tcase_add_test(p, pipe_cat_and_failures);
    tcase_add_test(p, pipe_truncated_stream);
    tcase_add_test(p, pipe_closed_early);
    suite_add_tcase(s, p);
    TCase *l = tcase_create("laion");
    tcase_add_test(l, laion_lines);
    tcase_add_test(l, laion_details);
    tcase_add_test(l, laion_base64_forms);
    tcase_add_test(l, laion_gz_truncated_and_damaged);
    tcase_add_test(l, laion_multi_member_gzip);
    tcase_add_test(l, laion_file_on_disk);
    suite_add_tcase(s, l);
    TCase *f = tcase_create("folder");
    tcase_add_test(f, folder_images_with_captions);
    tcase_add_test(f, folder_member_too_big);
    tcase_add_test(f, open_errors_and_empty);
    tcase_add_test(f, reason_names);
    suite_add_tcase(s, f);
    TCase *fl = tcase_create("fields");
    tcase_add_test(fl, fields_image_and_cond);
    tcase_add_test(fl, fields_caption_from_json);
    tcase_add_test(fl, fields_caption_problems);
    tcase_add_test(fl, fields_over_a_tar);
    suite_add_tcase(s, fl);
    return s;
}

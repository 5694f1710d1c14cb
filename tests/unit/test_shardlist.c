/* test_shardlist.c — shard specs: braces, globs, pipe:, file lists, node split. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shardlist.h"
#include "testutil.h"

Suite *suite_shardlist(void);

/* Assert that l holds exactly the n strings given. */
static void ck_list(const struct ldm_shardlist *l, size_t n, ...)
{
    va_list ap;
    va_start(ap, n);
    ck_assert_msg(l->n == n, "list has %zu entries, expected %zu (first: %s)", l->n, n,
                  l->n ? l->v[0] : "-");
    for (size_t i = 0; i < n; i++) {
        const char *want = va_arg(ap, const char *);
        ck_assert_msg(strcmp(l->v[i], want) == 0, "entry %zu is \"%s\", expected \"%s\"", i,
                      l->v[i], want);
    }
    va_end(ap);
}

/* Expand one brace pattern (cap 1000). */
static int braces(const char *p, struct ldm_shardlist *l)
{
    return ldm_brace_expand(p, 1000, l);
}

static int expand1(const char *spec, size_t max, struct ldm_shardlist *l)
{
    const char *specs[] = {spec};
    return ldm_shardlist_expand(specs, 1, max, l);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *path = NULL;
    ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
    tu_write_file(path, text, strlen(text));
    free(path);
}

static void touch(const char *dir, const char *name)
{
    write_text(dir, name, "x");
}

/* ---- braces ---------------------------------------------------------------------- */

START_TEST(range_keeps_padding)
{
    struct ldm_shardlist l = {0};
    ck_ok(braces("data/pairs-{000000..000003}.tar", &l));
    ck_list(&l, 4, "data/pairs-000000.tar", "data/pairs-000001.tar", "data/pairs-000002.tar",
            "data/pairs-000003.tar");
    ldm_shardlist_free(&l);
    ck_ok(braces("{07..10}", &l));
    ck_list(&l, 4, "07", "08", "09", "10");
    ldm_shardlist_free(&l);
    /* braceexpand: a leading zero on either bound pads to the longer one */
    ck_ok(braces("{1..003}", &l));
    ck_list(&l, 3, "001", "002", "003");
    ldm_shardlist_free(&l);
    ck_ok(braces("{0..10..5}-{9..11}", &l));
    ck_list(&l, 9, "0-9", "0-10", "0-11", "5-9", "5-10", "5-11", "10-9", "10-10", "10-11");
    ldm_shardlist_free(&l);
    ck_ok(braces("s{5..5}", &l));
    ck_list(&l, 1, "s5");
    ldm_shardlist_free(&l);
}
END_TEST

START_TEST(alternatives_and_nesting)
{
    struct ldm_shardlist l = {0};
    ck_ok(braces("{a,b,c}.tar", &l));
    ck_list(&l, 3, "a.tar", "b.tar", "c.tar");
    ldm_shardlist_free(&l);
    ck_ok(braces("index.html{,.bak}", &l));
    ck_list(&l, 2, "index.html", "index.html.bak");
    ldm_shardlist_free(&l);
    ck_ok(braces("x{a,b{1..2},c}y", &l));
    ck_list(&l, 4, "xay", "xb1y", "xb2y", "xcy");
    ldm_shardlist_free(&l);
    ck_ok(braces("{train,val}/{a,b}-{00..01}.tar", &l));
    ck_list(&l, 8, "train/a-00.tar", "train/a-01.tar", "train/b-00.tar", "train/b-01.tar",
            "val/a-00.tar", "val/a-01.tar", "val/b-00.tar", "val/b-01.tar");
    ldm_shardlist_free(&l);
}
END_TEST

START_TEST(literal_braces_and_escapes)
{
    struct ldm_shardlist l = {0};
    ck_ok(braces("a{x}b{}c", &l));
    ck_list(&l, 1, "a{x}b{}c");
    ldm_shardlist_free(&l);
    ck_ok(braces("a\\{b,c\\}", &l));
    ck_list(&l, 1, "a{b,c}");
    ldm_shardlist_free(&l);
    ck_ok(braces("{a\\,b,c}", &l));
    ck_list(&l, 2, "a,b", "c");
    ldm_shardlist_free(&l);
    ck_ok(braces("plain.tar", &l));
    ck_list(&l, 1, "plain.tar");
    ldm_shardlist_free(&l);
}
END_TEST

START_TEST(bad_braces)
{
    struct ldm_shardlist l = {0};
    ck_fails_with(braces("pairs-{000..009.tar", &l), LDM_EFORMAT, "pairs-{000..009.tar");
    ck_fails_with(braces("pairs-{000..009.tar", &l), LDM_EFORMAT, "unbalanced");
    ck_fails_with(braces("a}b", &l), LDM_EFORMAT, "unbalanced");
    ck_fails_with(braces("{a,{b}", &l), LDM_EFORMAT, "unbalanced");
    ck_fails_with(braces("s-{9..1}.tar", &l), LDM_EFORMAT, "reversed");
    ck_fails_with(braces("s-{9..1}.tar", &l), LDM_EFORMAT, "s-{9..1}.tar");
    ck_fails_with(braces("s-{a..z}.tar", &l), LDM_EFORMAT, "not numeric");
    ck_fails_with(braces("s-{1..x}.tar", &l), LDM_EFORMAT, "not numeric");
    ck_fails_with(braces("s-{-1..3}.tar", &l), LDM_EFORMAT, "not numeric");
    ck_fails_with(braces("s-{..3}.tar", &l), LDM_EFORMAT, "empty bound");
    ck_fails_with(braces("s-{0..4..0}.tar", &l), LDM_EFORMAT, "zero step");
    ck_fails_with(braces("{0..99999999999999999999}", &l), LDM_ERANGE, "19 digits");
    ck_assert_uint_eq(l.n, 0);
}
END_TEST

START_TEST(expansion_cap)
{
    struct ldm_shardlist l = {0};
    ck_fails_with(braces("s-{0..1000}.tar", &l), LDM_ERANGE, "more than 1000");
    ck_fails_with(braces("{0..99}{0..99}", &l), LDM_ERANGE, "{0..99}{0..99}");
    ck_fails_with(braces("{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}", &l), LDM_ERANGE,
                  "more than");
    ck_fails_with(braces("{0..9999999999999999999}", &l), LDM_ERANGE, "more than");
    ck_ok(braces("s-{1..1000}.tar", &l)); /* exactly at the cap */
    ck_assert_uint_eq(l.n, 1000);
    ck_assert_str_eq(l.v[999], "s-1000.tar");
    /* a failure leaves what the list held */
    ck_fails_with(braces("{9..0}", &l), LDM_EFORMAT, "reversed");
    ck_assert_uint_eq(l.n, 1000);
    ldm_shardlist_free(&l);
    ck_fails_with(expand1("s-{0..20}.tar", 20, &l), LDM_ERANGE, "more than 20");
    ck_assert_uint_eq(l.n, 0);
}
END_TEST

/* ---- specifications --------------------------------------------------------------- */

START_TEST(pipe_and_urls_verbatim)
{
    struct ldm_shardlist l = {0};
    ck_ok(expand1("pipe:curl -s http://h/s-{0..2}.tar", 0, &l));
    ck_list(&l, 3, "pipe:curl -s http://h/s-0.tar", "pipe:curl -s http://h/s-1.tar",
            "pipe:curl -s http://h/s-2.tar");
    ldm_shardlist_free(&l);
    ck_ok(expand1("pipe:cat /nonexistent/*.tar [x]::y.list", 0, &l));
    ck_list(&l, 1, "pipe:cat /nonexistent/*.tar [x]::y.list");
    ldm_shardlist_free(&l);
    ck_ok(expand1("s3://bucket/s-{0..1}.tar", 0, &l));
    ck_list(&l, 2, "s3://bucket/s-0.tar", "s3://bucket/s-1.tar");
    ldm_shardlist_free(&l);
    ck_ok(expand1("a-{0..1}.tar::b.tar", 0, &l));
    ck_list(&l, 3, "a-0.tar", "a-1.tar", "b.tar");
    ldm_shardlist_free(&l);
    ck_fails_with(expand1("", 0, &l), LDM_EINVAL, "empty");
    ck_fails_with(expand1("a.tar::", 0, &l), LDM_EINVAL, "empty part");
    ck_fails_with(expand1("pipe:x{1..0}", 0, &l), LDM_EFORMAT, "reversed");
}
END_TEST

START_TEST(plain_list_of_specs)
{
    struct ldm_shardlist l = {0};
    const char *specs[] = {"x/a.tar", "x/b-{1..2}.tar", "pipe:cat c.tar"};
    ck_ok(ldm_shardlist_expand(specs, 3, 0, &l));
    ck_list(&l, 4, "x/a.tar", "x/b-1.tar", "x/b-2.tar", "pipe:cat c.tar");
    /* more appends to what the list holds */
    ck_ok(ldm_shardlist_expand(specs, 1, 0, &l));
    ck_assert_uint_eq(l.n, 5);
    ldm_shardlist_free(&l);
    ck_fails_with(ldm_shardlist_expand(specs, 3, 3, &l), LDM_ERANGE, "more than 3");
    ck_assert_ptr_null(l.v);
}
END_TEST

START_TEST(globs_sorted)
{
    char *dir = tu_tmpdir();
    const char *names[] = {"s-10.tar", "s-2.tar", "s-1.tar", "t-1.tar", "s-1.tar.gz", "a.txt"};
    for (size_t i = 0; i < 6; i++)
        touch(dir, names[i]);
    char pat[PATH_MAX], e[4][PATH_MAX];
    struct ldm_shardlist l = {0};
    snprintf(pat, sizeof pat, "%s/s-*.tar", dir);
    ck_ok(expand1(pat, 0, &l));
    for (int i = 0; i < 3; i++)
        snprintf(e[i], sizeof e[i], "%s/%s", dir,
                 i == 0   ? "s-1.tar"
                 : i == 1 ? "s-10.tar"
                          : "s-2.tar");
    ck_list(&l, 3, e[0], e[1], e[2]);
    ldm_shardlist_free(&l);
    snprintf(pat, sizeof pat, "%s/{s,t}-?.tar", dir);
    ck_ok(expand1(pat, 0, &l));
    snprintf(e[3], sizeof e[3], "%s/t-1.tar", dir);
    ck_list(&l, 3, e[0], e[2], e[3]);
    ldm_shardlist_free(&l);
    snprintf(pat, sizeof pat, "%s/[st]-1.tar*", dir);
    ck_ok(expand1(pat, 0, &l));
    ck_assert_uint_eq(l.n, 3);
    ldm_shardlist_free(&l);
    snprintf(pat, sizeof pat, "%s/none-*.tar", dir);
    ck_fails_with(expand1(pat, 0, &l), LDM_ENOTFOUND, "matches no file");
    ck_fails_with(expand1(pat, 0, &l), LDM_ENOTFOUND, "none-*.tar");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- file lists --------------------------------------------------------------------- */

START_TEST(file_list_entries)
{
    char *dir = tu_tmpdir();
    char sub[PATH_MAX], text[4 * PATH_MAX], spec[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    touch(sub, "g-1.tar");
    touch(sub, "g-2.tar");
    snprintf(text, sizeof text,
             "# shards\n\n  a-{0..1}.tar  \r\n%s/abs.tar\nsub/g-*.tar\npipe:cat x.tar\n", dir);
    write_text(dir, "shards.txt", text);
    snprintf(spec, sizeof spec, "@%s/shards.txt", dir);
    struct ldm_shardlist l = {0};
    ck_ok(expand1(spec, 0, &l));
    char e[5][PATH_MAX];
    snprintf(e[0], sizeof e[0], "%s/a-0.tar", dir);
    snprintf(e[1], sizeof e[1], "%s/a-1.tar", dir);
    snprintf(e[2], sizeof e[2], "%s/abs.tar", dir);
    snprintf(e[3], sizeof e[3], "%s/sub/g-1.tar", dir);
    snprintf(e[4], sizeof e[4], "%s/sub/g-2.tar", dir);
    ck_list(&l, 6, e[0], e[1], e[2], e[3], e[4], "pipe:cat x.tar");
    ldm_shardlist_free(&l);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* The LAION seed's layout: train.filelist.list -> *.filelist -> part-NNNNN.gz. */
START_TEST(nested_laion_layout)
{
    char *dir = tu_tmpdir();
    char fl[PATH_MAX], text[PATH_MAX], spec[PATH_MAX];
    snprintf(fl, sizeof fl, "%s/filelist", dir);
    ck_assert_int_eq(mkdir(fl, 0700), 0);
    snprintf(text, sizeof text, "%s/laion/part-00009.gz\n", dir);
    write_text(fl, "abs.filelist", text);
    write_text(fl, "laion400m_en.filelist", "../laion/part-{00000..00002}.gz\n");
    write_text(fl, "train.filelist.list", "laion400m_en.filelist\n@abs.filelist\n");
    snprintf(spec, sizeof spec, "%s/filelist/train.filelist.list", dir);
    struct ldm_shardlist l = {0};
    ck_ok(expand1(spec, 0, &l));
    char e[4][PATH_MAX];
    for (int i = 0; i < 3; i++)
        snprintf(e[i], sizeof e[i], "%s/filelist/../laion/part-0000%d.gz", dir, i);
    snprintf(e[3], sizeof e[3], "%s/laion/part-00009.gz", dir); /* absolute: as written */
    ck_list(&l, 4, e[0], e[1], e[2], e[3]);
    ldm_shardlist_free(&l);

    /* entries written relative to the working folder (the seed's
     * ./data/filelist/x.filelist) are found there when not beside the list */
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(dir), 0);
    write_text(fl, "cwd.list", "./filelist/laion400m_en.filelist\n");
    int rc = expand1("./filelist/cwd.list", 0, &l);
    ck_assert_int_eq(chdir(cwd), 0);
    ck_ok(rc);
    ck_list(&l, 3, "./filelist/../laion/part-00000.gz", "./filelist/../laion/part-00001.gz",
            "./filelist/../laion/part-00002.gz");
    ldm_shardlist_free(&l);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(file_list_errors)
{
    char *dir = tu_tmpdir();
    char spec[PATH_MAX];
    struct ldm_shardlist l = {0};
    snprintf(spec, sizeof spec, "%s/missing.list", dir);
    ck_fails_with(expand1(spec, 0, &l), LDM_ENOTFOUND, "missing.list");
    write_text(dir, "loop.list", "loop.list\n");
    snprintf(spec, sizeof spec, "%s/loop.list", dir);
    ck_fails_with(expand1(spec, 0, &l), LDM_ERANGE, "nested more than");
    write_text(dir, "bad.list", "a.tar\n\nb-{3..1}.tar\n");
    snprintf(spec, sizeof spec, "%s/bad.list", dir);
    ck_fails_with(expand1(spec, 0, &l), LDM_EFORMAT, "bad.list:3: shard pattern");
    write_text(dir, "outer.list", "bad.list\n");
    snprintf(spec, sizeof spec, "@%s/outer.list", dir);
    ck_fails_with(expand1(spec, 0, &l), LDM_EFORMAT, "outer.list:1: ");
    ck_fails_with(expand1(spec, 0, &l), LDM_EFORMAT, "bad.list:3: ");
    write_text(dir, "gone.list", "none.filelist\n");
    snprintf(spec, sizeof spec, "%s/gone.list", dir);
    ck_fails_with(expand1(spec, 0, &l), LDM_ENOTFOUND, "none.filelist");
    ck_assert_uint_eq(l.n, 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- nodes -------------------------------------------------------------------------- */

START_TEST(split_by_node)
{
    struct ldm_shardlist all = {0}, mine = {0};
    ck_ok(braces("s-{0..9}", &all));
    ck_ok(ldm_shardlist_for_node(&all, 0, 3, &mine));
    ck_list(&mine, 4, "s-0", "s-3", "s-6", "s-9");
    ldm_shardlist_free(&mine);
    ck_ok(ldm_shardlist_for_node(&all, 2, 3, &mine));
    ck_list(&mine, 3, "s-2", "s-5", "s-8");
    ldm_shardlist_free(&mine);
    ck_ok(ldm_shardlist_for_node(&all, 0, 1, &mine));
    ck_assert_uint_eq(mine.n, 10);
    ldm_shardlist_free(&mine);
    ck_ok(ldm_shardlist_for_node(&all, 11, 12, &mine));
    ck_assert_uint_eq(mine.n, 0);
    ck_fails_with(ldm_shardlist_for_node(&all, 0, 0, &mine), LDM_EINVAL, "out of range");
    ck_fails_with(ldm_shardlist_for_node(&all, 3, 3, &mine), LDM_EINVAL, "node 3 of 3");
    ldm_shardlist_free(&all);
}
END_TEST

Suite *suite_shardlist(void)
{
    Suite *s = suite_create("shardlist");
    TCase *b = tcase_create("braces");
    tcase_add_test(b, range_keeps_padding);
    tcase_add_test(b, alternatives_and_nesting);
    tcase_add_test(b, literal_braces_and_escapes);
    tcase_add_test(b, bad_braces);
    tcase_add_test(b, expansion_cap);
    suite_add_tcase(s, b);
    TCase *sp = tcase_create("specs");
    tcase_add_test(sp, pipe_and_urls_verbatim);
    tcase_add_test(sp, plain_list_of_specs);
    tcase_add_test(sp, globs_sorted);
    tcase_add_test(sp, file_list_entries);
    tcase_add_test(sp, nested_laion_layout);
    tcase_add_test(sp, file_list_errors);
    tcase_add_test(sp, split_by_node);
    suite_add_tcase(s, sp);
    return s;
}

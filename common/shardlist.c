/* shardlist.c — shard specs (braces, globs, file lists, pipe:) into an ordered list of URLs. */
#include "shardlist.h"

#include <errno.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"

/* ---- the list ------------------------------------------------------------------ */

void ldm_shardlist_free(struct ldm_shardlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* Append `s` (malloc'd; the list takes it, or frees it on failure). */
static int push_owned(struct ldm_shardlist *l, char *s)
{
    if (!s)
        return ldm_fail(LDM_ENOMEM, "shard list: out of memory");
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return ldm_fail(LDM_ENOMEM, "shard list: out of memory");
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

int ldm_shardlist_push(struct ldm_shardlist *l, const char *url)
{
    return push_owned(l, strdup(url));
}

/* Drop the entries from `n` on (undo a partial append). */
static void truncate_to(struct ldm_shardlist *l, size_t n)
{
    while (l->n > n)
        free(l->v[--l->n]);
}

int ldm_shardlist_for_node(const struct ldm_shardlist *all, size_t node_index, size_t node_count,
                           struct ldm_shardlist *out)
{
    if (node_count == 0 || node_index >= node_count)
        return ldm_fail(LDM_EINVAL, "shard list: node %zu of %zu is out of range", node_index,
                        node_count);
    for (size_t i = node_index; i < all->n; i += node_count) {
        int rc = ldm_shardlist_push(out, all->v[i]);
        if (rc) {
            ldm_shardlist_free(out);
            return rc;
        }
    }
    return 0;
}

/* ---- brace expansion -------------------------------------------------------------- */

struct bx {
    const char *pattern; /* the whole pattern, for error details */
    size_t max;
};

/* Index of the '}' matching the '{' at p[open], or len when there is none. */
static size_t match_brace(const char *p, size_t open, size_t len)
{
    int depth = 0;
    for (size_t i = open; i < len; i++) {
        if (p[i] == '\\' && i + 1 < len)
            i++;
        else if (p[i] == '{')
            depth++;
        else if (p[i] == '}' && --depth == 0)
            return i;
    }
    return len;
}

/* Append p[0..n) to every string of l, dropping the backslash of each `\x`. */
static int append_literal(struct ldm_shardlist *l, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t k = 0; k < l->n; k++) {
        size_t have = strlen(l->v[k]);
        char *s = realloc(l->v[k], have + n + 1);
        if (!s)
            return ldm_fail(LDM_ENOMEM, "shard list: out of memory");
        l->v[k] = s;
        for (size_t i = 0; i < n; i++) {
            if (p[i] == '\\' && i + 1 < n)
                i++;
            s[have++] = p[i];
        }
        s[have] = '\0';
    }
    return 0;
}

/* Replace *cur by every string of *cur followed by every string of alt, in
 * that order (the first brace varies slowest). */
static int product(struct bx *b, struct ldm_shardlist *cur, const struct ldm_shardlist *alt)
{
    if (alt->n && cur->n > b->max / alt->n)
        return ldm_fail(LDM_ERANGE, "shard pattern \"%s\" expands to more than %zu names",
                        b->pattern, b->max);
    struct ldm_shardlist next = {0};
    for (size_t i = 0; i < cur->n; i++)
        for (size_t j = 0; j < alt->n; j++) {
            size_t a = strlen(cur->v[i]), c = strlen(alt->v[j]);
            char *s = malloc(a + c + 1);
            if (s) {
                memcpy(s, cur->v[i], a);
                memcpy(s + a, alt->v[j], c + 1);
            }
            int rc = push_owned(&next, s);
            if (rc) {
                ldm_shardlist_free(&next);
                return rc;
            }
        }
    ldm_shardlist_free(cur);
    *cur = next;
    return 0;
}

/* A decimal bound p[0..n) of the range {c[0..cn)}. */
static int parse_bound(struct bx *b, const char *c, size_t cn, const char *p, size_t n, uint64_t *v)
{
    if (n == 0)
        return ldm_fail(LDM_EFORMAT, "shard pattern \"%s\": range {%.*s} has an empty bound",
                        b->pattern, (int)cn, c);
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return ldm_fail(LDM_EFORMAT,
                            "shard pattern \"%s\": range {%.*s} is not numeric (digits only)",
                            b->pattern, (int)cn, c);
    }
    if (n > 19)
        return ldm_fail(LDM_ERANGE, "shard pattern \"%s\": range {%.*s} has a bound over 19 digits",
                        b->pattern, (int)cn, c);
    for (size_t i = 0; i < n; i++)
        *v = *v * 10 + (uint64_t)(p[i] - '0');
    return 0;
}

/* Width of the numbers of a range, as braceexpand: the longer bound's when
 * either bound has a leading zero, else none. */
static int range_width(const char *a, size_t na, const char *z, size_t nz)
{
    int padded = (na > 1 && a[0] == '0') || (nz > 1 && z[0] == '0');
    return padded ? (int)(na > nz ? na : nz) : 0;
}

/* Parse "A..Z" or "A..Z..STEP" (c[0..n), known to hold ".."); append the
 * numbers to out. */
static int expand_range(struct bx *b, const char *c, size_t n, struct ldm_shardlist *out)
{
    const char *d1 = memmem(c, n, "..", 2);
    const char *z = d1 + 2, *end = c + n;
    const char *d2 = memmem(z, (size_t)(end - z), "..", 2);
    const char *zend = d2 ? d2 : end;
    uint64_t lo, hi, step = 1;
    int rc = parse_bound(b, c, n, c, (size_t)(d1 - c), &lo);
    if (!rc)
        rc = parse_bound(b, c, n, z, (size_t)(zend - z), &hi);
    if (!rc && d2)
        rc = parse_bound(b, c, n, d2 + 2, (size_t)(end - d2 - 2), &step);
    if (rc)
        return rc;
    if (step == 0)
        return ldm_fail(LDM_EFORMAT, "shard pattern \"%s\": range {%.*s} has a zero step",
                        b->pattern, (int)n, c);
    if (lo > hi)
        return ldm_fail(LDM_EFORMAT,
                        "shard pattern \"%s\": range {%.*s} is reversed (first bound above last)",
                        b->pattern, (int)n, c);
    if ((hi - lo) / step >= b->max)
        return ldm_fail(LDM_ERANGE, "shard pattern \"%s\" expands to more than %zu names",
                        b->pattern, b->max);
    int width = range_width(c, (size_t)(d1 - c), z, (size_t)(zend - z));
    for (uint64_t v = lo;; v += step) {
        char num[48];
        snprintf(num, sizeof num, "%0*llu", width, (unsigned long long)v);
        if ((rc = ldm_shardlist_push(out, num)))
            return rc;
        if (hi - v < step)
            return 0;
    }
}

static int expand(struct bx *b, const char *p, size_t len, struct ldm_shardlist *out);

/* How many top-level commas c[0..n) holds. */
static size_t top_commas(const char *c, size_t n)
{
    size_t count = 0;
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i] == '\\' && i + 1 < n)
            i++;
        else if (c[i] == '{')
            depth++;
        else if (c[i] == '}')
            depth--;
        else if (c[i] == ',' && depth == 0)
            count++;
    }
    return count;
}

/* The alternatives of a comma group c[0..n), each expanded, in order. */
static int expand_alternatives(struct bx *b, const char *c, size_t n, struct ldm_shardlist *out)
{
    int depth = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && c[i] == '\\' && i + 1 < n) {
            i++;
            continue;
        }
        if (i < n && c[i] == '{')
            depth++;
        else if (i < n && c[i] == '}')
            depth--;
        else if (i == n || (c[i] == ',' && depth == 0)) {
            int rc = expand(b, c + start, i - start, out);
            if (rc)
                return rc;
            if (out->n > b->max)
                return ldm_fail(LDM_ERANGE, "shard pattern \"%s\" expands to more than %zu names",
                                b->pattern, b->max);
            start = i + 1;
        }
    }
    return 0;
}

/* The strings one brace group {c[0..n)} stands for: alternatives, a range, or
 * (neither) itself with its braces, its inside expanded. */
static int expand_group(struct bx *b, const char *c, size_t n, struct ldm_shardlist *out)
{
    if (top_commas(c, n) > 0)
        return expand_alternatives(b, c, n, out);
    if (memmem(c, n, "..", 2) && !memchr(c, '{', n))
        return expand_range(b, c, n, out);
    int rc = expand(b, c, n, out);
    for (size_t i = 0; !rc && i < out->n; i++) {
        size_t k = strlen(out->v[i]);
        char *s = malloc(k + 3);
        if (!s)
            return ldm_fail(LDM_ENOMEM, "shard list: out of memory");
        s[0] = '{';
        memcpy(s + 1, out->v[i], k);
        memcpy(s + 1 + k, "}", 2);
        free(out->v[i]);
        out->v[i] = s;
    }
    return rc;
}

/* Expand p[0..len) and append the results to out. */
static int expand(struct bx *b, const char *p, size_t len, struct ldm_shardlist *out)
{
    struct ldm_shardlist cur = {0};
    int rc = ldm_shardlist_push(&cur, "");
    size_t lit = 0, i = 0;
    while (!rc && i < len) {
        if (p[i] == '\\' && i + 1 < len) {
            i += 2;
        } else if (p[i] == '}') {
            rc = ldm_fail(LDM_EFORMAT, "shard pattern \"%s\": unbalanced braces ('}' at %zu)",
                          b->pattern, (size_t)(p + i - b->pattern));
        } else if (p[i] == '{') {
            size_t close = match_brace(p, i, len);
            if (close == len) {
                rc = ldm_fail(LDM_EFORMAT, "shard pattern \"%s\": unbalanced braces ('{' at %zu)",
                              b->pattern, (size_t)(p + i - b->pattern));
                break;
            }
            struct ldm_shardlist alt = {0};
            rc = append_literal(&cur, p + lit, i - lit);
            if (!rc)
                rc = expand_group(b, p + i + 1, close - i - 1, &alt);
            if (!rc)
                rc = product(b, &cur, &alt);
            ldm_shardlist_free(&alt);
            i = lit = close + 1;
        } else {
            i++;
        }
    }
    if (!rc)
        rc = append_literal(&cur, p + lit, len - lit);
    for (size_t k = 0; !rc && k < cur.n; k++) {
        rc = push_owned(out, cur.v[k]);
        cur.v[k] = NULL;
    }
    ldm_shardlist_free(&cur);
    return rc;
}

int ldm_brace_expand(const char *pattern, size_t max, struct ldm_shardlist *out)
{
    struct bx b = {pattern, max ? max : LDM_SHARDLIST_MAX};
    size_t before = out->n;
    int rc = expand(&b, pattern, strlen(pattern), out);
    if (!rc && out->n > b.max)
        rc = ldm_fail(LDM_ERANGE, "shard pattern \"%s\" expands to more than %zu names", pattern,
                      b.max);
    if (rc)
        truncate_to(out, before);
    return rc;
}

/* ---- specifications, globs and file lists ------------------------------------------ */

struct sx {
    size_t max;
    struct ldm_shardlist *out;
};

static int add_spec(struct sx *x, const char *spec, const char *dir, int depth);

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static int is_list_name(const char *s)
{
    return ends_with(s, ".list") || ends_with(s, ".filelist");
}

static int has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int push_checked(struct sx *x, const char *url)
{
    if (x->out->n >= x->max)
        return ldm_fail(LDM_ERANGE, "shard list: more than %zu shards (at \"%s\")", x->max, url);
    return ldm_shardlist_push(x->out, url);
}

/* `name` joined to the list folder `dir` ("" = none): malloc'd. When the
 * joined path does not exist but `name` does, `name` itself. */
static char *resolve(const char *dir, const char *name)
{
    if (!dir[0] || name[0] == '/' || strstr(name, "://"))
        return strdup(name);
    char *joined = NULL;
    if (asprintf(&joined, "%s%s", dir, name) < 0)
        return NULL;
    if (!has_glob(name) && !exists(joined) && exists(name)) {
        free(joined);
        return strdup(name);
    }
    return joined;
}

static int strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_list(struct sx *x, const char *path, int depth);

/* One name after brace expansion: a file list, or a shard URL. */
static int add_name(struct sx *x, const char *name, int as_list, int depth)
{
    if (as_list || is_list_name(name))
        return read_list(x, name, depth + 1);
    return push_checked(x, name);
}

/* glob(3) `pattern`, matches sorted; retried as written (`alt`) when the
 * pattern joined to a list folder matches nothing. */
static int add_glob(struct sx *x, const char *pattern, const char *alt, int as_list, int depth)
{
    glob_t g;
    int grc = glob(pattern, GLOB_NOSORT, NULL, &g);
    if (grc == GLOB_NOMATCH && alt && strcmp(alt, pattern) != 0) {
        globfree(&g);
        return add_glob(x, alt, NULL, as_list, depth);
    }
    if (grc == GLOB_NOSPACE) {
        globfree(&g);
        return ldm_fail(LDM_ENOMEM, "shard glob \"%s\": out of memory", pattern);
    }
    if (grc != 0) {
        globfree(&g);
        return ldm_fail(grc == GLOB_NOMATCH ? LDM_ENOTFOUND : LDM_EIO, "shard glob \"%s\" %s",
                        pattern, grc == GLOB_NOMATCH ? "matches no file" : "hit a read error");
    }
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, strcmp_p);
    int rc = 0;
    for (size_t i = 0; !rc && i < g.gl_pathc; i++)
        rc = add_name(x, g.gl_pathv[i], as_list, depth);
    globfree(&g);
    return rc;
}

/* One pattern (no "::"): braces, then per result a glob, a list or a URL. */
static int add_pattern(struct sx *x, const char *p, const char *dir, int depth)
{
    int as_list = p[0] == '@';
    struct ldm_shardlist names = {0};
    int rc = ldm_brace_expand(p + as_list, x->max, &names);
    for (size_t i = 0; !rc && i < names.n; i++) {
        const char *name = names.v[i];
        if (!name[0]) {
            rc = ldm_fail(LDM_EINVAL, "shard pattern \"%s\" gives an empty name", p);
            break;
        }
        if (strstr(name, "://") && !as_list) {
            rc = push_checked(x, name);
            continue;
        }
        char *path = resolve(dir, name);
        if (!path)
            rc = ldm_fail(LDM_ENOMEM, "shard list: out of memory");
        else if (has_glob(name))
            rc = add_glob(x, path, name, as_list, depth);
        else
            rc = add_name(x, path, as_list, depth);
        free(path);
    }
    ldm_shardlist_free(&names);
    return rc;
}

/* One specification: "pipe:" commands keep all but braces; others split at "::". */
static int add_spec(struct sx *x, const char *spec, const char *dir, int depth)
{
    if (!spec[0])
        return ldm_fail(LDM_EINVAL, "shard list: empty shard specification");
    if (strncmp(spec, "pipe:", 5) == 0) {
        struct ldm_shardlist cmds = {0};
        int rc = ldm_brace_expand(spec, x->max, &cmds);
        for (size_t i = 0; !rc && i < cmds.n; i++)
            rc = push_checked(x, cmds.v[i]);
        ldm_shardlist_free(&cmds);
        return rc;
    }
    const char *p = spec;
    for (;;) {
        const char *sep = strstr(p, "::");
        size_t n = sep ? (size_t)(sep - p) : strlen(p);
        char *part = strndup(p, n);
        if (!part)
            return ldm_fail(LDM_ENOMEM, "shard list: out of memory");
        int rc = part[0]
                     ? add_pattern(x, part, dir, depth)
                     : ldm_fail(LDM_EINVAL, "shard specification \"%s\" has an empty part", spec);
        free(part);
        if (rc || !sep)
            return rc;
        p = sep + 2;
    }
}

/* Trim blanks and a final CR/LF in place; returns the start. */
static char *trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Prefix the current error detail with "LIST:LINE: " (once per level). */
static int prefix_detail(int rc, const char *path, size_t line)
{
    char inner[1024];
    snprintf(inner, sizeof inner, "%s", ldm_errmsg());
    return ldm_fail(rc, "%s:%zu: %s", path, line, inner);
}

/* The folder part of `path` with its final '/', or "" (malloc'd). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return strndup(path, slash ? (size_t)(slash - path + 1) : 0);
}

static int read_list(struct sx *x, const char *path, int depth)
{
    if (depth > LDM_SHARDLIST_DEPTH)
        return ldm_fail(LDM_ERANGE, "%s: file lists nested more than %d deep (a cycle?)", path,
                        LDM_SHARDLIST_DEPTH);
    FILE *f = fopen(path, "re");
    if (!f)
        return ldm_fail_errno(errno == ENOENT ? LDM_ENOTFOUND : LDM_EIO,
                              "%s: cannot open file list", path);
    char *dir = dir_of(path), *line = NULL;
    size_t cap = 0, lineno = 0;
    int rc = dir ? 0 : ldm_fail(LDM_ENOMEM, "shard list: out of memory");
    while (!rc && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (!s[0] || s[0] == '#')
            continue;
        if ((rc = add_spec(x, s, dir, depth)))
            rc = prefix_detail(rc, path, lineno);
    }
    if (!rc && ferror(f))
        rc = ldm_fail_errno(LDM_EIO, "%s: read error in file list", path);
    free(line);
    free(dir);
    fclose(f);
    return rc;
}

int ldm_shardlist_expand(const char *const *specs, size_t nspecs, size_t max,
                         struct ldm_shardlist *out)
{
    struct sx x = {max ? max : LDM_SHARDLIST_MAX, out};
    for (size_t i = 0; i < nspecs; i++) {
        int rc = add_spec(&x, specs[i], "", 0);
        if (rc) {
            ldm_shardlist_free(out);
            return rc;
        }
    }
    return 0;
}

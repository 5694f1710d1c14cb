/* config.c — typed configuration from an INI file section plus --key=value overrides. */
#include "config.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_FILE (16u << 20) /* a config file larger than this is refused */
#define MAX_FRAC 18          /* decimal places a size or duration may have */
#define SHOW 80              /* buffer for a value quoted in a message */

static int is_blank(int c)
{
    return c == ' ' || c == '\t';
}

/* Length of the run of key characters [A-Za-z0-9_.-] at s. */
static size_t key_span(const char *s)
{
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
}

/* The first n bytes of t, cut to fit a message, control bytes as '?'. */
static const char *show(char buf[SHOW], const char *t, size_t n)
{
    size_t i = 0;
    for (; i < n && t[i] && i < SHOW - 4; i++)
        buf[i] = ((unsigned char)t[i] < 0x20 || t[i] == 0x7f) ? '?' : t[i];
    buf[i] = '\0';
    if (i < n && t[i])
        strcpy(buf + i, "...");
    return buf;
}

/* Fail with the detail `"text" what`. */
static int bad(const char *t, const char *what)
{
    char s[SHOW];
    return ldm_fail(LDM_ECONFIG, "\"%s\" %s", show(s, t, strlen(t)), what);
}

static int no_memory(void)
{
    return ldm_fail(LDM_ENOMEM, "config: out of memory");
}

/* ---- numbers ------------------------------------------------------------- */

static int digit_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return 99;
}

/* Consume the digits of `base` at *p into *v; *ovf is set if *v overflowed.
 * Returns how many digits there were. */
static size_t take_digits(const char **p, unsigned base, uint64_t *v, int *ovf)
{
    size_t n = 0;
    for (unsigned d; (d = (unsigned)digit_value(**p)) < base; (*p)++, n++) {
        if (*v > (UINT64_MAX - d) / base)
            *ovf = 1;
        *v = *v * base + d;
    }
    return n;
}

static int parse_int(const char *t, int64_t *out)
{
    const char *p = t;
    int neg = *p == '-', ovf = 0;
    unsigned base = 10;
    uint64_t v = 0;
    if (*p == '-' || *p == '+')
        p++;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    if (take_digits(&p, base, &v, &ovf) == 0 || *p)
        return bad(t, "is not an integer");
    if (ovf || v > (uint64_t)INT64_MAX + (uint64_t)neg)
        return bad(t, "is out of range for a 64-bit integer");
    *out = neg && v > 0 ? -(int64_t)(v - 1) - 1 : (int64_t)v; /* INT64_MIN has no positive */
    return 0;
}

static int parse_float(const char *t, double *out)
{
    char *end;
    if (*t == '\0' || isspace((unsigned char)*t))
        return bad(t, "is not a number");
    double v = strtod(t, &end);
    if (*end)
        return bad(t, "is not a number");
    if (!isfinite(v))
        return bad(t, "is not a finite number");
    *out = v;
    return 0;
}

static int parse_bool(const char *t, int *out)
{
    static const char *const words[] = {"false", "true", "no", "yes", "off", "on", "0", "1"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strcasecmp(t, words[i]) == 0) {
            *out = (int)(i & 1);
            return 0;
        }
    return bad(t, "is not a boolean (true/false, yes/no, on/off, 1/0)");
}

/* A decimal number ip + fp/den as written, before its unit. */
struct decimal {
    uint64_t ip, fp, den;
    int ovf;  /* ip overflowed */
    int prec; /* more than MAX_FRAC decimal places */
};

/* Parse digits[.digits] at *p. Returns 0, or -1 if it is not that. */
static int parse_decimal(const char **p, struct decimal *d)
{
    *d = (struct decimal){.den = 1};
    if (take_digits(p, 10, &d->ip, &d->ovf) == 0)
        return -1;
    if (**p != '.')
        return 0;
    const char *f = ++*p;
    while (**p >= '0' && **p <= '9')
        (*p)++;
    size_t n = (size_t)(*p - f);
    if (n == 0)
        return -1;
    while (n > 0 && f[n - 1] == '0') /* trailing zeros change nothing */
        n--;
    d->prec = n > MAX_FRAC;
    for (size_t i = 0; i < n && !d->prec; i++) {
        d->fp = d->fp * 10 + (uint64_t)(f[i] - '0');
        d->den *= 10;
    }
    return 0;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* d × mult exactly into *out. Returns 0, 1 if that is not a whole number,
 * 2 if it exceeds limit. */
static int scale(const struct decimal *d, uint64_t mult, uint64_t limit, uint64_t *out)
{
    uint64_t g = gcd(d->fp, d->den);
    uint64_t num = d->fp / g, den = d->den / g;
    if (mult % den)
        return 1;
    uint64_t frac = num * (mult / den); /* num < den, so frac < mult */
    if (d->ovf || d->ip > (limit - frac) / mult)
        return 2;
    *out = d->ip * mult + frac;
    return 0;
}

/* A number with a unit: sizes and durations. */
struct scaled_kind {
    int (*unit_of)(const char *unit, uint64_t *mult); /* 0, or -1 if no such unit */
    uint64_t limit;                                   /* the largest value */
    const char *not_one;                              /* "is not a size ..." */
    const char *not_whole;                            /* "is not a whole number of ..." */
};

/* Parse "number[unit]" as kind `k`. */
static int parse_scaled(const char *t, const struct scaled_kind *k, uint64_t *out)
{
    const char *p = t;
    struct decimal d;
    uint64_t mult;
    if (parse_decimal(&p, &d) != 0 || k->unit_of(p, &mult) != 0)
        return bad(t, k->not_one);
    if (d.prec)
        return bad(t, "has too many decimal places");
    int rc = scale(&d, mult, k->limit, out);
    if (rc == 1)
        return bad(t, k->not_whole);
    if (rc == 2)
        return bad(t, "is too large");
    return 0;
}

/* K, M, G, T (powers of 1024), then an optional B or iB; case-insensitive. */
static int size_unit(const char *s, uint64_t *mult)
{
    static const char units[] = "KMGT";
    const char *u = *s ? strchr(units, toupper((unsigned char)*s)) : NULL;
    *mult = 1;
    if (u) {
        *mult = (uint64_t)1 << (10 * (u - units + 1));
        s++;
        if (toupper((unsigned char)*s) == 'I' && toupper((unsigned char)*++s) != 'B')
            return -1;
    }
    if (toupper((unsigned char)*s) == 'B')
        s++;
    return *s ? -1 : 0;
}

static int duration_unit(const char *s, uint64_t *mult)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (strcmp(s, units[i].name) == 0) {
            *mult = units[i].ms;
            return 0;
        }
    return -1;
}

static int parse_size(const char *t, uint64_t *out)
{
    static const struct scaled_kind kind = {size_unit, UINT64_MAX,
                                            "is not a size (e.g. 4096, 64K, 1.5G)",
                                            "is not a whole number of bytes"};
    return parse_scaled(t, &kind, out);
}

static int parse_duration(const char *t, int64_t *out)
{
    static const struct scaled_kind kind = {duration_unit, INT64_MAX,
                                            "is not a duration (e.g. 250ms, 1.5s, 5m, 2h)",
                                            "is not a whole number of milliseconds"};
    uint64_t v;
    int rc = parse_scaled(t, &kind, &v);
    if (rc == 0)
        *out = (int64_t)v;
    return rc;
}

/* ---- endpoints ----------------------------------------------------------- */

static int check_port(const char *t, const char *p)
{
    uint64_t v = 0;
    int ovf = 0;
    if (strcmp(p, "*") == 0)
        return 0;
    if (take_digits(&p, 10, &v, &ovf) == 0 || *p)
        return bad(t, "has a bad port (1-65535 or *)");
    if (ovf || v < 1 || v > 65535)
        return bad(t, "has a port out of range (1-65535 or *)");
    return 0;
}

/* Host characters: no blanks, control bytes, '/', '[' or ']'. */
static int host_ok(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= ' ' || c == 0x7f || c == '/' || c == '[' || c == ']')
            return 0;
    }
    return n > 0;
}

static int check_tcp(const char *t, const char *h)
{
    const char *colon;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        size_t n = close ? (size_t)(close - h - 1) : 0;
        if (n == 0 || strspn(h + 1, "0123456789abcdefABCDEF:.") != n)
            return bad(t, "has a bad [IPv6] host");
        colon = close + 1;
        if (*colon != ':')
            return bad(t, "needs :PORT after the host");
    } else {
        colon = strrchr(h, ':');
        if (!colon)
            return bad(t, "needs :PORT after the host");
        if (memchr(h, ':', (size_t)(colon - h)))
            return bad(t, "has an IPv6 host without [brackets]");
        if (!host_ok(h, (size_t)(colon - h)))
            return bad(t, "has an empty or bad host");
    }
    return check_port(t, colon + 1);
}

static int check_endpoint(const char *t)
{
    if (strncmp(t, "ipc://", 6) == 0)
        return t[6] ? 0 : bad(t, "has an empty ipc path");
    if (strncmp(t, "inproc://", 9) == 0)
        return t[9] ? 0 : bad(t, "has an empty inproc name");
    if (strncmp(t, "tcp://", 6) == 0)
        return check_tcp(t, t + 6);
    return bad(t, "is not an endpoint (ipc://PATH, tcp://HOST:PORT or inproc://NAME)");
}

/* ---- path lists ---------------------------------------------------------- */

static int is_sep(int c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int braces_balanced(const char *t)
{
    long depth = 0;
    for (; *t && depth >= 0; t++)
        depth += (*t == '{') - (*t == '}');
    return depth == 0;
}

/* Find the next item at *p (separators outside braces end it). Returns 0 at the end. */
static int next_item(const char **p, const char **start, size_t *len)
{
    const char *s = *p;
    long depth = 0;
    while (is_sep(*s))
        s++;
    if (*s == '\0')
        return 0;
    *start = s;
    for (; *s && (depth > 0 || !is_sep(*s)); s++)
        depth += (*s == '{') - (*s == '}');
    *len = (size_t)(s - *start);
    *p = s;
    return 1;
}

static int parse_pathlist(const char *t, struct ldm_strlist *out)
{
    const char *p = t, *s;
    size_t n = 0, len;
    if (!braces_balanced(t))
        return bad(t, "has unbalanced braces");
    while (next_item(&p, &s, &len))
        n++;
    if (n == 0 && *t)
        return bad(t, "has no items (write \"\" for an empty list)");
    *out = (struct ldm_strlist){0};
    if (n == 0)
        return 0;
    if (!(out->v = calloc(n, sizeof *out->v)))
        return no_memory();
    for (p = t; next_item(&p, &s, &len); out->n++)
        if (!(out->v[out->n] = strndup(s, len))) {
            ldm_strlist_free(out);
            return no_memory();
        }
    return 0;
}

void ldm_strlist_free(struct ldm_strlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ---- one value ----------------------------------------------------------- */

static int check_range(const struct ldm_cfg_key *k, const char *t, double v)
{
    char s[SHOW];
    if ((k->min == 0 && k->max == 0) || (v >= k->min && v <= k->max))
        return 0;
    const char *unit = k->type == LDM_CFG_DURATION ? " ms" : k->type == LDM_CFG_SIZE ? " bytes" : "";
    return ldm_fail(LDM_ECONFIG, "\"%s\" is out of range [%.15g, %.15g]%s", show(s, t, strlen(t)),
                    k->min, k->max, unit);
}

/* INT, FLOAT, SIZE, DURATION: each field is 8 bytes. */
static int set_number(const struct ldm_cfg_key *k, const char *t, void *out)
{
    union {
        int64_t i;
        uint64_t u;
        double f;
    } v = {0};
    int rc;
    if (k->type == LDM_CFG_INT)
        rc = parse_int(t, &v.i);
    else if (k->type == LDM_CFG_FLOAT)
        rc = parse_float(t, &v.f);
    else if (k->type == LDM_CFG_SIZE)
        rc = parse_size(t, &v.u);
    else
        rc = parse_duration(t, &v.i);
    double d = k->type == LDM_CFG_FLOAT ? v.f : k->type == LDM_CFG_SIZE ? (double)v.u : (double)v.i;
    if (rc == 0)
        rc = check_range(k, t, d);
    if (rc == 0)
        memcpy(out, &v, sizeof v);
    return rc;
}

/* STRING, ENDPOINT: replace the string, freeing the one before. */
static int set_string(const struct ldm_cfg_key *k, const char *t, char **out)
{
    if (k->type == LDM_CFG_ENDPOINT) {
        int rc = check_endpoint(t);
        if (rc)
            return rc;
    }
    char *s = strdup(t);
    if (!s)
        return no_memory();
    free(*out);
    *out = s;
    return 0;
}

int ldm_cfg_parse_value(const struct ldm_cfg_key *key, const char *text, void *out)
{
    struct ldm_strlist l;
    int rc;
    switch (key->type) {
    case LDM_CFG_INT:
    case LDM_CFG_FLOAT:
    case LDM_CFG_SIZE:
    case LDM_CFG_DURATION:
        return set_number(key, text, out);
    case LDM_CFG_BOOL:
        return parse_bool(text, out);
    case LDM_CFG_STRING:
    case LDM_CFG_ENDPOINT:
        return set_string(key, text, out);
    case LDM_CFG_PATHLIST:
        if ((rc = parse_pathlist(text, &l)) == 0) {
            ldm_strlist_free(out);
            *(struct ldm_strlist *)out = l;
        }
        return rc;
    }
    return ldm_fail(LDM_ECONFIG, "%s: unknown key type %d", key->name, (int)key->type);
}

/* ---- loading ------------------------------------------------------------- */

/* One key of the tables, with where it writes and what set it. */
struct slot {
    const struct ldm_cfg_key *key;
    void *field;
    int set;  /* by default, file or command line */
    int line; /* its line in the section being applied; 0 = not there yet */
};

struct loader {
    struct slot *slots;
    size_t n;
    const char *section; /* the daemon's own */
    const char *file;    /* for messages; NULL = no file */
};

static struct slot *find(struct loader *ld, const char *name, size_t n)
{
    for (size_t i = 0; i < ld->n; i++)
        if (strncmp(ld->slots[i].key->name, name, n) == 0 && ld->slots[i].key->name[n] == '\0')
            return &ld->slots[i];
    return NULL;
}

static int make_slots(struct loader *ld, const struct ldm_cfg_part *parts, size_t nparts)
{
    size_t n = 0;
    for (size_t p = 0; p < nparts; p++)
        for (const struct ldm_cfg_key *k = parts[p].keys; k->name; k++)
            n++;
    if (!(ld->slots = calloc(n ? n : 1, sizeof *ld->slots)))
        return no_memory();
    for (size_t p = 0; p < nparts; p++)
        for (const struct ldm_cfg_key *k = parts[p].keys; k->name; k++) {
            if (find(ld, k->name, strlen(k->name)))
                return ldm_fail(LDM_ECONFIG, "key %s appears twice in the tables", k->name);
            ld->slots[ld->n++] = (struct slot){.key = k, .field = (char *)parts[p].base + k->offset};
        }
    return 0;
}

/* Parse text into the slot's field; a failure's detail gets the prefix `where`. */
static int apply(struct slot *s, const char *text, const char *where)
{
    char why[512];
    int rc = ldm_cfg_parse_value(s->key, text, s->field);
    if (rc == 0) {
        s->set = 1;
        return 0;
    }
    snprintf(why, sizeof why, "%s", ldm_errmsg());
    return ldm_fail(rc, "%s: %s", where, why);
}

static int apply_defaults(struct loader *ld)
{
    char where[256];
    for (size_t i = 0; i < ld->n; i++) {
        const struct ldm_cfg_key *k = ld->slots[i].key;
        if (!k->def)
            continue;
        snprintf(where, sizeof where, "[%s] %s: bad default", ld->section, k->name);
        int rc = apply(&ld->slots[i], k->def, where);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_required(const struct loader *ld)
{
    for (size_t i = 0; i < ld->n; i++) {
        const struct ldm_cfg_key *k = ld->slots[i].key;
        if (!k->required || ld->slots[i].set)
            continue;
        if (ld->file)
            return ldm_fail(LDM_ECONFIG, "[%s] %s: required key not set (in %s or --%s=...)",
                            ld->section, k->name, ld->file, k->name);
        return ldm_fail(LDM_ECONFIG, "[%s] %s: required key not set (no config file; give --%s=...)",
                        ld->section, k->name, k->name);
    }
    return 0;
}

/* ---- the command line ---------------------------------------------------- */

/* Apply argv[*i] (and the value after it, if it takes that one). */
static int apply_arg(struct loader *ld, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *name = a + 2, *val = NULL;
    char s[SHOW], where[SHOW + 32];
    if (strncmp(a, "--", 2) != 0 || *name == '\0' || *name == '=')
        return ldm_fail(LDM_ECONFIG, "command line: \"%s\": expected --key=value",
                        show(s, a, strlen(a)));
    const char *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    snprintf(where, sizeof where, "command line: --%s", show(s, name, n));
    struct slot *sl = find(ld, name, n);
    if (!sl)
        return ldm_fail(LDM_ECONFIG, "%s: unknown key", where);
    if (eq)
        val = eq + 1;
    else if (sl->key->type == LDM_CFG_BOOL)
        val = "true";
    else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0)
        val = argv[++*i];
    if (!val)
        return ldm_fail(LDM_ECONFIG, "%s: missing value (--%s=VALUE)", where, sl->key->name);
    return apply(sl, val, where);
}

static int apply_args(struct loader *ld, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        int rc = apply_arg(ld, argc, argv, &i);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- the INI file -------------------------------------------------------- */

enum sect_state { SECT_NONE, SECT_APPLY, SECT_OTHER };

/* One reading of the file, applying the keys of one section. */
struct pass {
    struct loader *ld;
    const char *want;      /* the section applied */
    enum sect_state state; /* of the section the reader is in */
    char sect[SHOW];       /* its name, for messages */
    const char *p, *end;   /* what is left to read */
    int next_line;         /* number of the next physical line */
    char *buf;             /* the current logical line */
    size_t len, cap;
};

static int buf_add(struct pass *ps, const char *s, size_t n)
{
    if (ps->len + n + 1 > ps->cap) {
        size_t cap = (ps->len + n + 1) * 2;
        char *b = realloc(ps->buf, cap);
        if (!b)
            return no_memory();
        ps->buf = b;
        ps->cap = cap;
    }
    memcpy(ps->buf + ps->len, s, n);
    ps->len += n;
    ps->buf[ps->len] = '\0';
    return 0;
}

/* Read one logical line (physical lines joined where one ends in '\') into
 * ps->buf; *line gets the number of its first line. Returns 1, 0 at the end
 * of the text, or an error. */
static int read_line(struct pass *ps, int *line)
{
    int first = 1, more = 1, comment = 0;
    if (ps->p >= ps->end)
        return 0;
    ps->len = 0;
    *line = ps->next_line;
    while (more && ps->p < ps->end) {
        const char *s = ps->p, *nl = memchr(s, '\n', (size_t)(ps->end - s));
        const char *e = nl ? nl : ps->end;
        ps->p = nl ? nl + 1 : ps->end;
        if (memchr(s, '\0', (size_t)(e - s)))
            return ldm_fail(LDM_ECONFIG, "%s:%d: NUL byte in the line", ps->ld->file, ps->next_line);
        ps->next_line++;
        while (s < e && is_blank(*s))
            s++;
        if (first)
            comment = s < e && (*s == '#' || *s == ';');
        while (e > s && (is_blank(e[-1]) || e[-1] == '\r'))
            e--;
        more = !comment && e > s && e[-1] == '\\';
        int rc = buf_add(ps, s, (size_t)(e - s) - (size_t)more);
        if (rc)
            return rc;
        first = 0;
    }
    return 1;
}

/* The prefix of a message about `key` on `line`. */
static void where_in_file(char *buf, size_t size, const struct pass *ps, int line, const char *key)
{
    char s[SHOW];
    if (ps->state != SECT_NONE)
        snprintf(buf, size, "%s:%d: [%s] %s", ps->ld->file, line, ps->sect,
                 show(s, key, strlen(key)));
    else
        snprintf(buf, size, "%s:%d: %s", ps->ld->file, line, show(s, key, strlen(key)));
}

static int do_header(struct pass *ps, char *s, int line)
{
    char *name = s + 1, *close = strchr(s, ']'), sh[SHOW];
    const char *after = close ? close + 1 : "";
    size_t n = close ? (size_t)(close - name) : 0;
    while (n > 0 && is_blank(*name))
        name++, n--;
    while (n > 0 && is_blank(name[n - 1]))
        n--;
    after += strspn(after, " \t");
    if (!close || n == 0 || key_span(name) < n || (*after && *after != '#' && *after != ';'))
        return ldm_fail(LDM_ECONFIG, "%s:%d: bad section header \"%s\" (expected [name])",
                        ps->ld->file, line, show(sh, s, strlen(s)));
    int mine = strlen(ps->want) == n && strncmp(name, ps->want, n) == 0;
    ps->state = mine ? SECT_APPLY : SECT_OTHER;
    show(ps->sect, name, n);
    return 0;
}

/* A double-quoted value at v: unescape it in place. Returns NULL or what is wrong. */
static const char *unquote(char *v, char **out)
{
    char *dst = v, *src = v + 1;
    for (; *src != '"'; src++) {
        if (*src == '\0')
            return "unterminated quote";
        if (*src != '\\') {
            *dst++ = *src;
            continue;
        }
        src++;
        if (*src == '\0')
            return "unterminated quote";
        if (*src == 'n')
            *dst++ = '\n';
        else if (*src == 't')
            *dst++ = '\t';
        else if (*src == '"' || *src == '\\')
            *dst++ = *src;
        else
            return "unknown escape in quotes (use \\\" \\\\ \\n \\t)";
    }
    *dst = '\0';
    src += 1 + strspn(src + 1, " \t");
    if (*src && *src != '#' && *src != ';')
        return "text after the closing quote";
    *out = v;
    return NULL;
}

/* The value after '=' at raw: quoted, or up to a ' #' / ' ;' comment, trimmed. */
static const char *value_text(char *raw, char **out)
{
    char *v = raw + strspn(raw, " \t");
    if (*v == '"')
        return unquote(v, out);
    for (char *p = v; *p; p++)
        if ((*p == '#' || *p == ';') && p > raw && is_blank(p[-1])) {
            *p = '\0';
            break;
        }
    size_t n = strlen(v);
    while (n > 0 && is_blank(v[n - 1]))
        v[--n] = '\0';
    *out = v;
    return NULL;
}

static int do_key(struct pass *ps, const char *key, const char *val, int line)
{
    char where[512];
    where_in_file(where, sizeof where, ps, line, key);
    struct slot *sl = find(ps->ld, key, strlen(key));
    if (!sl)
        return ldm_fail(LDM_ECONFIG, "%s: unknown key", where);
    if (sl->line)
        return ldm_fail(LDM_ECONFIG, "%s: duplicate key in the section (first on line %d)", where,
                        sl->line);
    sl->line = line;
    return apply(sl, val, where);
}

static int do_pair(struct pass *ps, char *s, int line)
{
    char *eq = strchr(s, '='), *end = eq, *val, sh[SHOW], where[512];
    if (!eq)
        return ldm_fail(LDM_ECONFIG, "%s:%d: malformed line \"%s\" (expected key = value)",
                        ps->ld->file, line, show(sh, s, strlen(s)));
    while (end > s && is_blank(end[-1]))
        end--;
    *end = '\0';
    if (*s == '\0' || s[key_span(s)] != '\0')
        return ldm_fail(LDM_ECONFIG, "%s:%d: bad key \"%s\" (allowed: A-Z a-z 0-9 _ . -)",
                        ps->ld->file, line, show(sh, s, strlen(s)));
    const char *why = value_text(eq + 1, &val);
    where_in_file(where, sizeof where, ps, line, s);
    if (why)
        return ldm_fail(LDM_ECONFIG, "%s: %s", where, why);
    if (ps->state == SECT_NONE)
        return ldm_fail(LDM_ECONFIG, "%s: key before any [section]", where);
    return ps->state == SECT_APPLY ? do_key(ps, s, val, line) : 0;
}

static int do_line(struct pass *ps, char *s, int line)
{
    s += strspn(s, " \t");
    if (*s == '\0' || *s == '#' || *s == ';')
        return 0;
    if (*s == '[')
        return do_header(ps, s, line);
    return do_pair(ps, s, line);
}

/* Read the whole text once, applying the keys of section `want`. */
static int run_pass(struct loader *ld, const char *want, const char *text, size_t len)
{
    struct pass ps = {.ld = ld, .want = want, .p = text, .end = text + len, .next_line = 1};
    int rc, line = 0;
    for (size_t i = 0; i < ld->n; i++)
        ld->slots[i].line = 0;
    while ((rc = read_line(&ps, &line)) == 1)
        if ((rc = do_line(&ps, ps.buf, line)) != 0)
            break;
    free(ps.buf);
    return rc;
}

static int apply_file(struct loader *ld, const char *text, size_t len)
{
    int rc = run_pass(ld, "common", text, len);
    if (rc == 0 && strcmp(ld->section, "common") != 0)
        rc = run_pass(ld, ld->section, text, len);
    return rc;
}

int ldm_cfg_load_buffer(const struct ldm_cfg_part *parts, size_t nparts, const char *section,
                        const char *name, const char *text, size_t len, int argc, char **argv)
{
    struct loader ld = {.section = section ? section : "common"};
    if (text)
        ld.file = name ? name : "config";
    int rc = make_slots(&ld, parts, nparts);
    if (rc == 0)
        rc = apply_defaults(&ld);
    if (rc == 0 && text)
        rc = apply_file(&ld, text, len);
    if (rc == 0)
        rc = apply_args(&ld, argc, argv);
    if (rc == 0)
        rc = check_required(&ld);
    free(ld.slots);
    return rc;
}

/* Grow *buf (capacity *cap) for reading `path`; refuses past MAX_FILE. */
static int grow(char **buf, size_t *cap, const char *path)
{
    if (*cap >= MAX_FILE)
        return ldm_fail(LDM_ECONFIG, "%s: config file larger than %u MiB", path, MAX_FILE >> 20);
    char *b = realloc(*buf, *cap * 2);
    if (!b)
        return no_memory();
    *buf = b;
    *cap *= 2;
    return 0;
}

static int read_all(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ldm_fail_errno(LDM_ECONFIG, "%s: cannot open config file", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : no_memory();
    while (rc == 0) {
        if (n == cap && (rc = grow(&buf, &cap, path)) != 0)
            break;
        ssize_t r = read(fd, buf + n, cap - n);
        if (r == 0)
            break;
        if (r > 0)
            n += (size_t)r;
        else if (errno != EINTR)
            rc = ldm_fail_errno(LDM_ECONFIG, "%s: cannot read config file", path);
    }
    close(fd);
    if (rc)
        free(buf);
    *out = rc ? NULL : buf;
    *len = n;
    return rc;
}

int ldm_cfg_load(const struct ldm_cfg_part *parts, size_t nparts, const char *section,
                 const char *file, int argc, char **argv)
{
    char *text = NULL;
    size_t len = 0;
    if (file) {
        int rc = read_all(file, &text, &len);
        if (rc)
            return rc;
    }
    int rc = ldm_cfg_load_buffer(parts, nparts, section, file, text, len, argc, argv);
    free(text);
    return rc;
}

/* ---- freeing and usage --------------------------------------------------- */

void ldm_cfg_free(const struct ldm_cfg_part *parts, size_t nparts)
{
    for (size_t p = 0; p < nparts; p++)
        for (const struct ldm_cfg_key *k = parts[p].keys; k->name; k++) {
            void *field = (char *)parts[p].base + k->offset;
            if (k->type == LDM_CFG_STRING || k->type == LDM_CFG_ENDPOINT) {
                free(*(char **)field);
                *(char **)field = NULL;
            } else if (k->type == LDM_CFG_PATHLIST) {
                ldm_strlist_free(field);
            }
        }
}

static const char *type_name(enum ldm_cfg_type t)
{
    static const char *const names[] = {"INT",  "FLOAT",    "BOOL",     "STRING",
                                        "SIZE", "DURATION", "ENDPOINT", "PATHS"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "VALUE";
}

void ldm_cfg_usage(const struct ldm_cfg_part *parts, size_t nparts, void *stream)
{
    FILE *f = stream;
    char opt[128];
    int width = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t p = 0; p < nparts; p++)
            for (const struct ldm_cfg_key *k = parts[p].keys; k->name; k++) {
                int n = snprintf(opt, sizeof opt, "--%s=%s", k->name, type_name(k->type));
                if (pass == 0) {
                    width = n > width ? (n < 40 ? n : 40) : width;
                    continue;
                }
                fprintf(f, "  %-*s  %s", width, opt, k->help ? k->help : "");
                if (k->def)
                    fprintf(f, " (default: %s)", *k->def ? k->def : "\"\"");
                else if (k->required)
                    fputs(" (required)", f);
                fputc('\n', f);
            }
}

/* log.c — structured one-line logging with value quoting. */
#include "log.h"
#include "err.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static atomic_int cur_level = LDM_LOG_INFO;
static atomic_int out_fd = 2;

static const char *const names[] = {"debug", "info", "warn", "error", "off"};

void ldm_log_set_level(int level)
{
    if (level >= LDM_LOG_DEBUG && level <= LDM_LOG_OFF)
        cur_level = level;
}

int ldm_log_get_level(void)
{
    return cur_level;
}

const char *ldm_log_level_name(int level)
{
    if (level < LDM_LOG_DEBUG || level > LDM_LOG_OFF)
        return "?";
    return names[level];
}

int ldm_log_parse_level(const char *name, int *level)
{
    for (int i = 0; i <= LDM_LOG_OFF; i++)
        if (strcasecmp(name, names[i]) == 0) {
            *level = i;
            return 0;
        }
    if (strcasecmp(name, "warning") == 0) {
        *level = LDM_LOG_WARN;
        return 0;
    }
    return ldm_fail(LDM_EINVAL, "unknown log level '%s' (debug, info, warn, error, off)", name);
}

void ldm_log_set_fd(int fd)
{
    out_fd = fd;
}

/* A growing line buffer that never overflows: what does not fit is cut. */
struct line {
    char *p;
    int n, cap;
};

static void put(struct line *l, const char *s, int len)
{
    int room = l->cap - 1 - l->n;
    if (len > room)
        len = room;
    if (len > 0) {
        memcpy(l->p + l->n, s, (size_t)len);
        l->n += len;
    }
}

static int needs_quotes(const char *s)
{
    if (!*s)
        return 1;
    for (; *s; s++)
        if (*s == ' ' || *s == '"' || *s == '=' || (unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static void put_quoted(struct line *l, const char *s)
{
    put(l, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c == '\n') {
            put(l, "\\n", 2);
        } else if (c == '\t') {
            put(l, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            put(l, esc, 4);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
    put(l, "\"", 1);
}

static void put_value(struct line *l, const char *s, int is_value)
{
    if (!s)
        s = "(null)";
    if (is_value && needs_quotes(s))
        put_quoted(l, s);
    else
        put(l, s, (int)strlen(s));
}

/* Parse one conversion at fmt (just after '%'), consume its argument and
 * append it. Returns the number of format characters used. */
static int put_conversion(struct line *l, const char *fmt, va_list *ap, int is_value)
{
    char spec[32] = "%";
    int k = 1, i = 0, width = -1, prec = -1, star_w = 0, star_p = 0;
    while (fmt[i] && strchr("-+ #0", fmt[i]) && k < 8)
        spec[k++] = fmt[i++];
    if (fmt[i] == '*') {
        star_w = 1;
        spec[k++] = fmt[i++];
    }
    while (fmt[i] >= '0' && fmt[i] <= '9' && k < 16)
        spec[k++] = fmt[i++];
    if (fmt[i] == '.') {
        spec[k++] = fmt[i++];
        if (fmt[i] == '*') {
            star_p = 1;
            spec[k++] = fmt[i++];
        }
        while (fmt[i] >= '0' && fmt[i] <= '9' && k < 24)
            spec[k++] = fmt[i++];
    }
    char len[3] = "";
    int ln = 0;
    while (fmt[i] && strchr("hlzjtL", fmt[i]) && ln < 2) {
        len[ln++] = fmt[i];
        spec[k++] = fmt[i++];
    }
    char conv = fmt[i];
    if (!conv)
        return i;
    spec[k++] = conv;
    spec[k] = '\0';
    i++;
    if (star_w)
        width = va_arg(*ap, int);
    if (star_p)
        prec = va_arg(*ap, int);
    char tmp[512];
    tmp[0] = '\0';
#define FMT1(T)                                                                                    \
    do {                                                                                           \
        T v_ = va_arg(*ap, T);                                                                     \
        if (star_w && star_p)                                                                      \
            snprintf(tmp, sizeof tmp, spec, width, prec, v_);                                      \
        else if (star_w || star_p)                                                                 \
            snprintf(tmp, sizeof tmp, spec, star_w ? width : prec, v_);                            \
        else                                                                                       \
            snprintf(tmp, sizeof tmp, spec, v_);                                                   \
    } while (0)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    switch (conv) {
    case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': case 'c':
        if (!strcmp(len, "l"))
            FMT1(long);
        else if (!strcmp(len, "ll"))
            FMT1(long long);
        else if (!strcmp(len, "z"))
            FMT1(size_t);
        else if (!strcmp(len, "j"))
            FMT1(intmax_t);
        else if (!strcmp(len, "t"))
            FMT1(ptrdiff_t);
        else
            FMT1(int);
        break;
    case 'f': case 'F': case 'g': case 'G': case 'e': case 'E': case 'a': case 'A':
        if (!strcmp(len, "L"))
            FMT1(long double);
        else
            FMT1(double);
        break;
    case 'p':
        FMT1(void *);
        break;
    case 's': {
        const char *s = va_arg(*ap, const char *);
        if (!s)
            s = "(null)";
        if (!star_w && !star_p && k == 2) { /* plain %s: may be long, no copy */
            put_value(l, s, is_value);
            return i;
        }
        if (star_w && star_p)
            snprintf(tmp, sizeof tmp, spec, width, prec, s);
        else if (star_w || star_p)
            snprintf(tmp, sizeof tmp, spec, star_w ? width : prec, s);
        else
            snprintf(tmp, sizeof tmp, spec, s);
        put_value(l, tmp, is_value);
        return i;
    }
    case '%':
        put(l, "%", 1);
        return i;
    default:
        put(l, "?", 1);
        return i;
    }
#pragma GCC diagnostic pop
#undef FMT1
    put(l, tmp, (int)strlen(tmp));
    return i;
}

static int vformat(char *buf, int size, int level, const char *msg, const char *kvfmt, va_list ap)
{
    struct line l = {buf, 0, size};
    if (size <= 0)
        return 0;
    put(&l, "level=", 6);
    put(&l, ldm_log_level_name(level), (int)strlen(ldm_log_level_name(level)));
    put(&l, " msg=", 5);
    put_quoted(&l, msg ? msg : "");
    if (kvfmt && *kvfmt) {
        va_list aq;
        va_copy(aq, ap);
        put(&l, " ", 1);
        for (const char *f = kvfmt; *f;) {
            if (*f != '%') {
                put(&l, f, 1);
                f++;
                continue;
            }
            int is_value = f > kvfmt && f[-1] == '=';
            f++;
            f += put_conversion(&l, f, &aq, is_value);
        }
        va_end(aq);
    }
    /* keep room for the newline even when cut */
    if (l.n > size - 2)
        l.n = size - 2 < 0 ? 0 : size - 2;
    if (size >= 2)
        buf[l.n++] = '\n';
    buf[l.n] = '\0';
    return l.n;
}

int ldm_log_format(char *buf, int size, int level, const char *msg, const char *kvfmt, ...)
{
    va_list ap;
    va_start(ap, kvfmt);
    int n = vformat(buf, size, level, msg, kvfmt, ap);
    va_end(ap);
    return n;
}

void ldm_log(int level, const char *msg, const char *kvfmt, ...)
{
    if (level < cur_level || level >= LDM_LOG_OFF)
        return;
    char buf[4096];
    va_list ap;
    va_start(ap, kvfmt);
    int n = vformat(buf, sizeof buf, level, msg, kvfmt, ap);
    va_end(ap);
    ssize_t w = write(out_fd, buf, (size_t)n);
    (void)w;
}

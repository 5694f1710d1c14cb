/* sample_fields.c — a raw sample's image, caption(s) and conditioning image, or why not. */
#include "sample_fields.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json.h"
#include "utf8.h"

static const struct ldm_member *find(const struct ldm_raw_sample *s, const char *ext)
{
    for (size_t i = 0; i < s->nmembers; i++)
        if (strcmp(s->members[i].ext, ext) == 0)
            return &s->members[i];
    return NULL;
}

/* "txt, json" — the sample's member exts, for details. */
static void list_exts(const struct ldm_raw_sample *s, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->nmembers && at < size; i++) {
        int n = snprintf(buf + at, size - at, "%s%s", i ? ", " : "", s->members[i].ext);
        if (n < 0)
            break;
        at += (size_t)n;
    }
    if (!s->nmembers)
        snprintf(buf, size, "none");
}

static int reject(struct ldm_fields *f, const struct ldm_raw_sample *s, int reason,
                  const char *what)
{
    ldm_fields_free(f);
    f->reason = reason;
    return ldm_fail(LDM_EFORMAT, "%s: %s: %s", s->shard, s->key, what);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Append a trimmed copy of p[0..n) to f->captions. */
static int add_caption(struct ldm_fields *f, const char *p, size_t n)
{
    while (n && is_blank(*p))
        p++, n--;
    while (n && is_blank(p[n - 1]))
        n--;
    char **v = realloc(f->captions, (f->ncaptions + 1) * sizeof *v);
    if (!v)
        return ldm_fail(LDM_ENOMEM, "caption: out of memory");
    f->captions = v;
    if (!(v[f->ncaptions] = strndup(p, n)))
        return ldm_fail(LDM_ENOMEM, "caption: out of memory");
    f->ncaptions++;
    return 0;
}

static int caption_from_txt(const struct ldm_raw_sample *s, const struct ldm_member *m,
                            struct ldm_fields *f)
{
    const char *p = (const char *)m->data;
    char what[128];
    size_t ok = ldm_utf8_prefix(p, m->len);
    if (ok < m->len) {
        snprintf(what, sizeof what, "caption (txt) is not valid UTF-8 (at byte %zu)", ok);
        return reject(f, s, LDM_REASON_BAD_UTF8, what);
    }
    const char *nul = memchr(p, '\0', m->len);
    if (nul) {
        snprintf(what, sizeof what, "caption (txt) holds a NUL byte (at byte %zu)",
                 (size_t)(nul - p));
        return reject(f, s, LDM_REASON_BAD_UTF8, what);
    }
    return add_caption(f, p, m->len);
}

/* The captions held by field `key` of the object `obj`. */
static int captions_from_field(const struct ldm_raw_sample *s, json_t *obj, const char *key,
                               struct ldm_fields *f)
{
    char what[160];
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        return add_caption(f, json_string_value(v), json_string_length(v));
    if (!v || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0)) {
        snprintf(what, sizeof what, "no caption: no txt member and json field \"%s\" is %s", key,
                 v ? "empty" : "missing");
        return reject(f, s, LDM_REASON_NO_CAPTION, what);
    }
    if (!json_is_array(v)) {
        snprintf(what, sizeof what, "json field \"%s\" is neither a string nor a list", key);
        return reject(f, s, LDM_REASON_BAD_JSON, what);
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e)) {
            snprintf(what, sizeof what, "json field \"%s\": item %zu is not a string", key, i);
            return reject(f, s, LDM_REASON_BAD_JSON, what);
        }
        int rc = add_caption(f, json_string_value(e), json_string_length(e));
        if (rc)
            return rc;
    }
    return 0;
}

static int caption_from_json(const struct ldm_raw_sample *s, const struct ldm_member *m,
                             const char *key, struct ldm_fields *f)
{
    json_t *obj = NULL;
    if (ldm_json_parse_object((const char *)m->data, m->len, "json member", &obj) != 0) {
        char what[512];
        snprintf(what, sizeof what, "json member malformed: %s", ldm_errmsg());
        return reject(f, s, LDM_REASON_BAD_JSON, what);
    }
    int rc = captions_from_field(s, obj, key, f);
    json_decref(obj);
    return rc;
}

int ldm_sample_fields(const struct ldm_raw_sample *s, const struct ldm_fields_opts *o,
                      struct ldm_fields *f)
{
    static const char *const images[] = {"jpg", "jpeg", "png", "webp"};
    const char *json_key = o && o->json_key && o->json_key[0] ? o->json_key : "caption";
    const char *cond_ext = o && o->cond_ext && o->cond_ext[0] ? o->cond_ext : NULL;
    char what[512], exts[256];
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < 4 && !f->image; i++)
        f->image = find(s, images[i]);
    if (!f->image) {
        list_exts(s, exts, sizeof exts);
        snprintf(what, sizeof what, "no image member (jpg, jpeg, png, webp; members: %s)", exts);
        return reject(f, s, LDM_REASON_NO_IMAGE, what);
    }
    if (cond_ext && !(f->cond = find(s, cond_ext))) {
        list_exts(s, exts, sizeof exts);
        snprintf(what, sizeof what, "no conditioning image member \"%s\" (members: %s)", cond_ext,
                 exts);
        return reject(f, s, LDM_REASON_NO_COND, what);
    }
    const struct ldm_member *txt = find(s, "txt"), *json = find(s, "json");
    int rc;
    if (txt)
        rc = caption_from_txt(s, txt, f);
    else if (json)
        rc = caption_from_json(s, json, json_key, f);
    else
        rc = reject(f, s, LDM_REASON_NO_CAPTION, "no caption: no txt or json member");
    if (rc == LDM_ENOMEM)
        ldm_fields_free(f);
    return rc;
}

void ldm_fields_free(struct ldm_fields *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->ncaptions; i++)
        free(f->captions[i]);
    free(f->captions);
    f->captions = NULL;
    f->ncaptions = 0;
    f->image = f->cond = NULL;
}

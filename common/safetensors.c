/* safetensors.c — element types, and reading and writing safetensors files. */
#include "safetensors.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fsutil.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ldmpipe assumes a little-endian host");

#define MAX_HEADER ((uint64_t)100 * 1000 * 1000)
#define META_KEY "__metadata__"

/* ---- element types ---------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} dtypes[LDM_DT_COUNT] = {
    [LDM_DT_F64] = {"F64", 8},         [LDM_DT_F32] = {"F32", 4},
    [LDM_DT_F16] = {"F16", 2},         [LDM_DT_BF16] = {"BF16", 2},
    [LDM_DT_I64] = {"I64", 8},         [LDM_DT_I32] = {"I32", 4},
    [LDM_DT_I16] = {"I16", 2},         [LDM_DT_I8] = {"I8", 1},
    [LDM_DT_U64] = {"U64", 8},         [LDM_DT_U32] = {"U32", 4},
    [LDM_DT_U16] = {"U16", 2},         [LDM_DT_U8] = {"U8", 1},
    [LDM_DT_BOOL] = {"BOOL", 1},       [LDM_DT_F8_E4M3] = {"F8_E4M3", 1},
    [LDM_DT_F8_E5M2] = {"F8_E5M2", 1},
};

const char *ldm_dtype_name(int dtype)
{
    return dtype >= 0 && dtype < LDM_DT_COUNT ? dtypes[dtype].name : NULL;
}

int ldm_dtype_parse(const char *name)
{
    for (int i = 0; i < LDM_DT_COUNT; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return i;
    return -1;
}

size_t ldm_dtype_size(int dtype)
{
    return dtype >= 0 && dtype < LDM_DT_COUNT ? dtypes[dtype].size : 0;
}

/* ---- the open file ------------------------------------------------------------- */

struct st_meta {
    char *key;
    char *value;
};

struct ldm_st {
    char *label;
    struct ldm_map map;          /* the file (empty for a caller's buffer) */
    size_t n;
    struct ldm_st_tensor *t;     /* sorted by name; names owned */
    size_t nmeta;
    struct st_meta *meta;        /* sorted by key */
};

/* "[4,3,3,3]" into buf (truncated with "..." when it does not fit). */
static const char *fmt_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
    else if (size > 4)
        memcpy(buf + size - 4, "...", 4);
    return buf;
}

/* Elements of a shape, or -1 on a negative dimension or an overflow. */
static int shape_count(int ndim, const int64_t *shape, uint64_t *count)
{
    uint64_t c = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(c, (uint64_t)shape[i], &c))
            return -1;
    }
    *count = c;
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const struct ldm_st_tensor *)a)->name, ((const struct ldm_st_tensor *)b)->name);
}

static int cmp_meta_key(const void *a, const void *b)
{
    return strcmp(((const struct st_meta *)a)->key, ((const struct st_meta *)b)->key);
}

void ldm_st_close(struct ldm_st **stp)
{
    struct ldm_st *st = *stp;
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        free((char *)st->t[i].name);
    for (size_t i = 0; i < st->nmeta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->t);
    free(st->meta);
    ldm_unmap(&st->map);
    free(st->label);
    free(st);
    *stp = NULL;
}

/* ---- header validation ------------------------------------------------------------ */

/* What one parse needs: where the data buffer is and how big it is. */
struct st_parse {
    const char *label;
    const unsigned char *data;
    size_t dsize;
};

/* An integer >= 0 from a JSON value, or -1. */
static int64_t json_nonneg(const json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return (int64_t)json_integer_value(v);
}

static int parse_dtype(const struct st_parse *p, const char *name, const json_t *obj, int *dtype)
{
    const json_t *v = json_object_get(obj, "dtype");
    if (!v)
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': no dtype", p->label, name);
    if (!json_is_string(v))
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': dtype is not a string", p->label, name);
    *dtype = ldm_dtype_parse(json_string_value(v));
    if (*dtype < 0)
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", p->label, name,
                        json_string_value(v));
    return 0;
}

static int parse_shape(const struct st_parse *p, const char *name, const json_t *obj,
                       struct ldm_st_tensor *t)
{
    const json_t *v = json_object_get(obj, "shape");
    if (!v)
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': no shape", p->label, name);
    if (!json_is_array(v))
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': shape is not an array", p->label, name);
    size_t nd = json_array_size(v);
    for (size_t i = 0; i < nd; i++) {
        const json_t *d = json_array_get(v, i);
        if (!json_is_integer(d))
            return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': shape[%zu] is not an integer", p->label,
                            name, i);
        if (json_integer_value(d) < 0)
            return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': shape[%zu] is negative (%lld)",
                            p->label, name, i, (long long)json_integer_value(d));
    }
    if (nd > LDM_MAXDIM)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d here)",
                        p->label, name, nd, LDM_MAXDIM);
    t->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++)
        t->shape[i] = (int64_t)json_integer_value(json_array_get(v, i));
    return 0;
}

static int parse_offsets(const struct st_parse *p, const char *name, const json_t *obj,
                         uint64_t *begin, uint64_t *end)
{
    const json_t *v = json_object_get(obj, "data_offsets");
    if (!v)
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': no data_offsets", p->label, name);
    int64_t b = -1, e = -1;
    if (json_is_array(v) && json_array_size(v) == 2) {
        b = json_nonneg(json_array_get(v, 0));
        e = json_nonneg(json_array_get(v, 1));
    }
    if (b < 0 || e < 0)
        return ldm_fail(LDM_EFORMAT,
                        "%s: tensor '%s': data_offsets is not [begin,end] of two integers >= 0",
                        p->label, name);
    if (b > e)
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': data_offsets [%lld,%lld] are reversed",
                        p->label, name, (long long)b, (long long)e);
    if ((uint64_t)e > p->dsize)
        return ldm_fail(LDM_EFORMAT,
                        "%s: tensor '%s': data_offsets [%lld,%lld] run past the end of the "
                        "%zu-byte data buffer",
                        p->label, name, (long long)b, (long long)e, p->dsize);
    *begin = (uint64_t)b;
    *end = (uint64_t)e;
    return 0;
}

/* Fill t from the header entry `name`: `obj`. */
static int parse_tensor(const struct st_parse *p, const char *name, const json_t *obj,
                        struct ldm_st_tensor *t)
{
    if (!json_is_object(obj))
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': entry is not a JSON object", p->label, name);
    uint64_t begin = 0, end = 0, count = 0, need = 0;
    int rc = parse_dtype(p, name, obj, &t->dtype);
    if (rc == 0)
        rc = parse_shape(p, name, obj, t);
    if (rc == 0)
        rc = parse_offsets(p, name, obj, &begin, &end);
    if (rc != 0)
        return rc;
    char sh[128];
    size_t esize = ldm_dtype_size(t->dtype);
    if (shape_count(t->ndim, t->shape, &count) != 0 ||
        __builtin_mul_overflow(count, (uint64_t)esize, &need))
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': shape %s overflows", p->label, name,
                        fmt_shape(sh, sizeof sh, t->ndim, t->shape));
    if (end - begin != need)
        return ldm_fail(LDM_EFORMAT,
                        "%s: tensor '%s': data_offsets [%llu,%llu] hold %llu bytes but shape %s "
                        "× %s needs %llu",
                        p->label, name, (unsigned long long)begin, (unsigned long long)end,
                        (unsigned long long)(end - begin),
                        fmt_shape(sh, sizeof sh, t->ndim, t->shape), ldm_dtype_name(t->dtype),
                        (unsigned long long)need);
    t->data = p->data + begin;
    t->nbytes = (size_t)need;
    return 0;
}

static int parse_meta(struct ldm_st *st, const struct st_parse *p, const json_t *obj)
{
    if (!json_is_object(obj))
        return ldm_fail(LDM_EFORMAT, "%s: %s is not a JSON object", p->label, META_KEY);
    st->meta = calloc(json_object_size(obj) + 1, sizeof *st->meta);
    if (!st->meta)
        return ldm_fail(LDM_ENOMEM, "%s: metadata", p->label);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        if (!json_is_string(v))
            return ldm_fail(LDM_EFORMAT, "%s: %s '%s' is not a string", p->label, META_KEY, key);
        struct st_meta *m = &st->meta[st->nmeta];
        m->key = strdup(key);
        m->value = strdup(json_string_value(v));
        if (m->key || m->value)
            st->nmeta++; /* owned from here on, freed by close */
        if (!m->key || !m->value)
            return ldm_fail(LDM_ENOMEM, "%s: metadata", p->label);
    }
    qsort(st->meta, st->nmeta, sizeof *st->meta, cmp_meta_key);
    return 0;
}

static int cmp_tensor_place(const void *a, const void *b)
{
    const struct ldm_st_tensor *x = *(const struct ldm_st_tensor *const *)a;
    const struct ldm_st_tensor *y = *(const struct ldm_st_tensor *const *)b;
    if (x->data != y->data)
        return (const unsigned char *)x->data < (const unsigned char *)y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* No two tensors may share a byte (empty tensors share none). */
static int check_overlap(const struct ldm_st *st, const struct st_parse *p)
{
    const struct ldm_st_tensor **by = malloc((st->n + 1) * sizeof *by);
    if (!by)
        return ldm_fail(LDM_ENOMEM, "%s: tensor index", p->label);
    for (size_t i = 0; i < st->n; i++)
        by[i] = &st->t[i];
    qsort(by, st->n, sizeof *by, cmp_tensor_place);
    const struct ldm_st_tensor *prev = NULL;
    int rc = 0;
    for (size_t i = 0; i < st->n && rc == 0; i++) {
        const struct ldm_st_tensor *t = by[i];
        size_t b = (size_t)((const unsigned char *)t->data - p->data);
        if (t->nbytes == 0)
            continue;
        size_t pb = prev ? (size_t)((const unsigned char *)prev->data - p->data) : 0;
        if (prev && b < pb + prev->nbytes)
            rc = ldm_fail(LDM_EFORMAT,
                          "%s: tensor '%s': data_offsets [%zu,%zu] overlap those of tensor '%s' "
                          "[%zu,%zu]",
                          p->label, t->name, b, b + t->nbytes, prev->name, pb, pb + prev->nbytes);
        prev = t;
    }
    free(by);
    return rc;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int parse_root(struct ldm_st *st, json_t *root, const struct st_parse *p)
{
    if (!json_is_object(root))
        return ldm_fail(LDM_EFORMAT, "%s: header is %s, not a JSON object", p->label,
                        json_type_name(root));
    st->t = calloc(json_object_size(root) + 1, sizeof *st->t);
    if (!st->t)
        return ldm_fail(LDM_ENOMEM, "%s: tensor table", p->label);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        int rc;
        if (strcmp(key, META_KEY) == 0) {
            rc = parse_meta(st, p, v); /* once: duplicate keys fail to parse */
        } else {
            struct ldm_st_tensor *t = &st->t[st->n];
            if (!(t->name = strdup(key)))
                return ldm_fail(LDM_ENOMEM, "%s: tensor name", p->label);
            st->n++;
            rc = parse_tensor(p, key, v, t);
        }
        if (rc != 0)
            return rc;
    }
    int rc = check_overlap(st, p);
    if (rc == 0)
        qsort(st->t, st->n, sizeof *st->t, cmp_tensor_name);
    return rc;
}

static int parse_file(struct ldm_st *st, const unsigned char *buf, size_t len)
{
    const char *label = st->label;
    if (len < 8)
        return ldm_fail(LDM_EFORMAT, "%s: %zu bytes, too short for the 8-byte header length",
                        label, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[i];
    if (n < 2)
        return ldm_fail(LDM_EFORMAT, "%s: header length %llu is below 2", label,
                        (unsigned long long)n);
    if (n > MAX_HEADER)
        return ldm_fail(LDM_EFORMAT, "%s: header length %llu exceeds the limit of %llu bytes",
                        label, (unsigned long long)n, (unsigned long long)MAX_HEADER);
    if (n > len - 8)
        return ldm_fail(LDM_EFORMAT,
                        "%s: header length %llu exceeds the %zu bytes after it (truncated file?)",
                        label, (unsigned long long)n, len - 8);
    json_error_t je;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root)
        return ldm_fail(LDM_EFORMAT, "%s: header is not valid JSON: %s (at byte %d of the header)",
                        label, je.text, je.position);
    struct st_parse p = {.label = label, .data = buf + 8 + n, .dsize = len - 8 - (size_t)n};
    int rc = parse_root(st, root, &p);
    json_decref(root);
    return rc;
}

static int st_new(struct ldm_st **out, const char *label)
{
    *out = calloc(1, sizeof **out);
    if (*out && !((*out)->label = strdup(label)))
        ldm_st_close(out);
    return *out ? 0 : ldm_fail(LDM_ENOMEM, "%s: safetensors handle", label);
}

int ldm_st_open_buffer(struct ldm_st **out, const void *buf, size_t len, const char *label)
{
    int rc = st_new(out, label ? label : "<buffer>");
    if (rc == 0 && (rc = parse_file(*out, buf, len)) != 0)
        ldm_st_close(out);
    return rc;
}

int ldm_st_open(struct ldm_st **out, const char *path)
{
    int rc = st_new(out, path);
    if (rc == 0)
        rc = ldm_map_file(path, &(*out)->map);
    if (rc == 0)
        rc = parse_file(*out, (*out)->map.data, (*out)->map.len);
    if (rc != 0)
        ldm_st_close(out);
    return rc;
}

/* ---- lookup ----------------------------------------------------------------------- */

const char *ldm_st_label(const struct ldm_st *st)
{
    return st->label;
}

size_t ldm_st_count(const struct ldm_st *st)
{
    return st->n;
}

const struct ldm_st_tensor *ldm_st_at(const struct ldm_st *st, size_t i)
{
    return i < st->n ? &st->t[i] : NULL;
}

const struct ldm_st_tensor *ldm_st_get(const struct ldm_st *st, const char *name)
{
    struct ldm_st_tensor key = {.name = name};
    return bsearch(&key, st->t, st->n, sizeof *st->t, cmp_tensor_name);
}

int ldm_st_find(const struct ldm_st *st, const char *name, const struct ldm_st_tensor **out)
{
    *out = ldm_st_get(st, name);
    return *out ? 0 : ldm_fail(LDM_ENOTFOUND, "%s: no tensor '%s'", st->label, name);
}

int ldm_st_expect(const struct ldm_st *st, const char *name, int dtype, int ndim,
                  const int64_t *shape, const struct ldm_st_tensor **out)
{
    int rc = ldm_st_find(st, name, out);
    if (rc != 0)
        return rc;
    const struct ldm_st_tensor *t = *out;
    int same = t->dtype == dtype && t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (same)
        return 0;
    *out = NULL;
    char have[128], want[128];
    const char *wname = ldm_dtype_name(dtype);
    return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': %s %s, expected %s %s", st->label, name,
                    ldm_dtype_name(t->dtype), fmt_shape(have, sizeof have, t->ndim, t->shape),
                    wname ? wname : "?",
                    fmt_shape(want, sizeof want, ndim < 0 ? 0 : ndim > LDM_MAXDIM ? LDM_MAXDIM : ndim,
                              shape));
}

const char *ldm_st_meta(const struct ldm_st *st, const char *key)
{
    if (st->nmeta == 0)
        return NULL;
    struct st_meta k = {.key = (char *)key};
    const struct st_meta *m = bsearch(&k, st->meta, st->nmeta, sizeof k, cmp_meta_key);
    return m ? m->value : NULL;
}

size_t ldm_st_meta_count(const struct ldm_st *st)
{
    return st->nmeta;
}

const char *ldm_st_meta_at(const struct ldm_st *st, size_t i, const char **value)
{
    *value = i < st->nmeta ? st->meta[i].value : NULL;
    return i < st->nmeta ? st->meta[i].key : NULL;
}

/* ---- writing ------------------------------------------------------------------------ */

struct st_out {
    const struct ldm_st_tensor **t; /* sorted by name */
    const struct ldm_st_tensor **d; /* in data order */
    const struct ldm_st_tensor *base; /* the caller's array */
    uint64_t *begin;                /* data offset of base[i] */
    size_t n;
    char *header;                   /* padded JSON */
    size_t hlen;
};

static int check_tensor(const struct ldm_st_tensor *t, size_t i)
{
    const char *nm = t->name ? t->name : "(null)";
    uint64_t count, need;
    if (!t->name || strcmp(t->name, META_KEY) == 0)
        return ldm_fail(LDM_EINVAL, "tensor %zu: name %s is not allowed", i, nm);
    if (!ldm_dtype_name(t->dtype))
        return ldm_fail(LDM_EINVAL, "tensor '%s': unknown dtype %d", nm, t->dtype);
    if (t->ndim < 0 || t->ndim > LDM_MAXDIM)
        return ldm_fail(LDM_EINVAL, "tensor '%s': ndim %d out of range", nm, t->ndim);
    if (shape_count(t->ndim, t->shape, &count) != 0 ||
        __builtin_mul_overflow(count, (uint64_t)ldm_dtype_size(t->dtype), &need))
        return ldm_fail(LDM_EINVAL, "tensor '%s': negative or overflowing shape", nm);
    if (need != t->nbytes) {
        char sh[128];
        return ldm_fail(LDM_EINVAL, "tensor '%s': nbytes %zu but shape %s × %s needs %llu", nm,
                        t->nbytes, fmt_shape(sh, sizeof sh, t->ndim, t->shape),
                        ldm_dtype_name(t->dtype), (unsigned long long)need);
    }
    if (t->nbytes > 0 && !t->data)
        return ldm_fail(LDM_EINVAL, "tensor '%s': no data", nm);
    return 0;
}

static int cmp_tensor_ptr_name(const void *a, const void *b)
{
    return strcmp((*(const struct ldm_st_tensor *const *)a)->name,
                  (*(const struct ldm_st_tensor *const *)b)->name);
}

static json_t *tensor_json(const struct ldm_st_tensor *t, uint64_t begin)
{
    json_t *shape = json_array();
    for (int i = 0; shape && i < t->ndim; i++)
        if (json_array_append_new(shape, json_integer(t->shape[i])) != 0)
            json_decref(shape), shape = NULL;
    return json_pack("{s:s, s:o, s:[I,I]}", "dtype", ldm_dtype_name(t->dtype), "shape", shape,
                     "data_offsets", (json_int_t)begin, (json_int_t)(begin + t->nbytes));
}

static int meta_json(json_t *root, const struct ldm_st_kv *meta, size_t nmeta)
{
    json_t *m = json_object();
    if (!m || json_object_set_new(root, META_KEY, m) != 0)
        return ldm_fail(LDM_ENOMEM, "safetensors metadata");
    for (size_t i = 0; i < nmeta; i++) {
        const char *k = meta[i].key, *v = meta[i].value;
        if (!k || !v)
            return ldm_fail(LDM_EINVAL, "metadata entry %zu: NULL key or value", i);
        if (json_object_get(m, k))
            return ldm_fail(LDM_EINVAL, "metadata key '%s' given twice", k);
        json_t *s = json_string(v);
        if (!s || json_object_set_new(m, k, s) != 0)
            return ldm_fail(LDM_EINVAL, "metadata '%s': key or value is not UTF-8", k);
    }
    return 0;
}

/* Data order: larger elements first, then by name, so that every tensor
 * starts at a multiple of its element size with no gaps. */
static int cmp_tensor_ptr_place(const void *a, const void *b)
{
    const struct ldm_st_tensor *x = *(const struct ldm_st_tensor *const *)a;
    const struct ldm_st_tensor *y = *(const struct ldm_st_tensor *const *)b;
    size_t sx = ldm_dtype_size(x->dtype), sy = ldm_dtype_size(y->dtype);
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The header JSON (metadata, then tensors by name), padded with spaces to a
 * multiple of 8 bytes. */
static int build_header(struct st_out *o, const struct ldm_st_kv *meta, size_t nmeta)
{
    json_t *root = json_object();
    int rc = root ? 0 : ldm_fail(LDM_ENOMEM, "safetensors header");
    if (rc == 0 && nmeta > 0)
        rc = meta_json(root, meta, nmeta);
    for (size_t i = 0; rc == 0 && i < o->n; i++) {
        json_t *tj = tensor_json(o->t[i], o->begin[o->t[i] - o->base]);
        if (!tj)
            rc = ldm_fail(LDM_ENOMEM, "safetensors header");
        else if (json_object_set_new(root, o->t[i]->name, tj) != 0)
            rc = ldm_fail(LDM_EINVAL, "tensor '%s': name is not UTF-8", o->t[i]->name);
    }
    char *s = rc == 0 ? json_dumps(root, JSON_COMPACT) : NULL;
    if (rc == 0 && !s)
        rc = ldm_fail(LDM_ENOMEM, "safetensors header");
    json_decref(root);
    if (rc != 0)
        return rc;
    size_t len = strlen(s), padded = (len + 7) / 8 * 8;
    o->header = malloc(padded);
    if (o->header) {
        memcpy(o->header, s, len);
        memset(o->header + len, ' ', padded - len);
        o->hlen = padded;
    }
    free(s);
    return o->header ? 0 : ldm_fail(LDM_ENOMEM, "safetensors header");
}

static int st_prepare(struct st_out *o, const struct ldm_st_tensor *tensors, size_t n,
                      const struct ldm_st_kv *meta, size_t nmeta)
{
    for (size_t i = 0; i < n; i++) {
        int rc = check_tensor(&tensors[i], i);
        if (rc != 0)
            return rc;
    }
    o->n = n;
    o->base = tensors;
    o->t = malloc((n + 1) * sizeof *o->t);
    o->d = malloc((n + 1) * sizeof *o->d);
    o->begin = malloc((n + 1) * sizeof *o->begin);
    if (!o->t || !o->d || !o->begin)
        return ldm_fail(LDM_ENOMEM, "safetensors tensor list");
    for (size_t i = 0; i < n; i++)
        o->t[i] = o->d[i] = &tensors[i];
    qsort(o->t, n, sizeof *o->t, cmp_tensor_ptr_name);
    qsort(o->d, n, sizeof *o->d, cmp_tensor_ptr_place);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        o->begin[o->d[i] - tensors] = off;
        off += o->d[i]->nbytes;
    }
    for (size_t i = 1; i < n; i++)
        if (strcmp(o->t[i - 1]->name, o->t[i]->name) == 0)
            return ldm_fail(LDM_EINVAL, "tensor '%s' given twice", o->t[i]->name);
    return build_header(o, meta, nmeta);
}

static int st_emit(struct ldm_writer *w, void *ctx)
{
    const struct st_out *o = ctx;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)o->hlen >> (8 * i));
    int rc = ldm_writer_put(w, len8, 8);
    if (rc == 0)
        rc = ldm_writer_put(w, o->header, o->hlen);
    for (size_t i = 0; rc == 0 && i < o->n; i++)
        rc = ldm_writer_put(w, o->d[i]->data, o->d[i]->nbytes);
    return rc;
}

int ldm_st_write(const char *path, const struct ldm_st_tensor *tensors, size_t n,
                 const struct ldm_st_kv *meta, size_t nmeta)
{
    struct st_out o = {0};
    int rc = st_prepare(&o, tensors, n, meta, nmeta);
    if (rc == 0)
        rc = ldm_write_atomic(path, st_emit, &o);
    free(o.t);
    free(o.d);
    free(o.begin);
    free(o.header);
    return rc;
}

int ldm_st_encode(void **out, size_t *len, const struct ldm_st_tensor *tensors, size_t n,
                  const struct ldm_st_kv *meta, size_t nmeta)
{
    struct st_out o = {0};
    *out = NULL;
    *len = 0;
    int rc = st_prepare(&o, tensors, n, meta, nmeta);
    if (rc == 0)
        rc = ldm_write_mem(st_emit, &o, "safetensors image", out, len);
    free(o.t);
    free(o.d);
    free(o.begin);
    free(o.header);
    return rc;
}

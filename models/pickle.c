/* pickle.c — torch state dicts (zip and legacy containers) as named tensors; see pickle.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fsutil.h"
#include "pickle.h"
#include "pickle_int.h"

struct pt_entry {
    struct ldm_st_tensor t;
    size_t dictlen;            /* bytes of the name that come from enclosing dict keys */
    void *owned;               /* a contiguous copy of a strided view, or NULL */
};

struct ldm_pt {
    char *label;
    struct ldm_map map;
    int legacy;
    struct pt_entry *e;
    size_t n, cap;
    char *prefix;
};

/* The state shared while one file is read. */
struct pt_read {
    struct ldm_pt *pt;
    const unsigned char *buf;
    size_t len;
    struct pk_storages st;
    struct pk_vm vm;           /* the machine that built the object */
};

static const unsigned char legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                               0x20, 0x6a, 0xa8, 0x50, 0x19};

/* ---- tensors ------------------------------------------------------------------------------- */

/* Number of elements of t, and its last element's index in the storage; checked. */
static int extent(const struct pt_read *r, const struct pk_tensor *t, uint64_t *count,
                  uint64_t *last, const char *name)
{
    uint64_t c = 1, hi = (uint64_t)t->offset;
    int over = 0;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t span;
        over |= __builtin_mul_overflow(c, (uint64_t)t->shape[i], &c);
        if (t->shape[i] > 0) {
            over |= __builtin_mul_overflow((uint64_t)t->shape[i] - 1, (uint64_t)t->stride[i], &span);
            over |= __builtin_add_overflow(hi, span, &hi);
        }
    }
    if (over)
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': size overflows", r->pt->label, name);
    *count = c;
    *last = hi;
    return 0;
}

static int is_contiguous(const struct pk_tensor *t)
{
    int64_t want = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != want)
            return 0;
        want *= t->shape[i];
    }
    return 1;
}

/* Copy the strided view t of `src` into dst, row-major. */
static void gather(unsigned char *dst, const unsigned char *src, const struct pk_tensor *t,
                   size_t esize, uint64_t count)
{
    int64_t idx[LDM_MAXDIM] = {0};
    for (uint64_t k = 0; k < count; k++) {
        int64_t at = t->offset;
        for (int i = 0; i < t->ndim; i++)
            at += idx[i] * t->stride[i];
        memcpy(dst + k * esize, src + (size_t)at * esize, esize);
        for (int i = t->ndim - 1; i >= 0 && ++idx[i] == t->shape[i]; i--)
            idx[i] = 0;
    }
}

/* Fill e's dtype, shape and data from tensor value t. */
static int materialize(struct pt_read *r, const struct pk_tensor *t, struct pt_entry *e)
{
    const struct pk_storage *s = &r->st.v[t->storage];
    size_t esize = ldm_dtype_size(s->dtype);
    uint64_t count = 0, last = 0;
    int rc = extent(r, t, &count, &last, e->t.name);
    if (rc)
        return rc;
    if (count && last >= s->numel)
        return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': reaches element %llu of a storage of %llu",
                        r->pt->label, e->t.name, (unsigned long long)last,
                        (unsigned long long)s->numel);
    if (count > s->numel)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: tensor '%s': a view with overlapping elements",
                        r->pt->label, e->t.name);
    e->t.dtype = s->dtype;
    e->t.ndim = t->ndim;
    memcpy(e->t.shape, t->shape, sizeof t->shape);
    e->t.nbytes = (size_t)count * esize;
    if (count == 0 || is_contiguous(t)) {
        e->t.data = count ? s->data + (size_t)t->offset * esize : s->data;
        return 0;
    }
    if (!(e->owned = malloc(e->t.nbytes)))
        return ldm_fail(LDM_ENOMEM, "%s: tensor '%s': out of memory", r->pt->label, e->t.name);
    gather(e->owned, s->data, t, esize, count);
    e->t.data = e->owned;
    return 0;
}

/* ---- the state dict -------------------------------------------------------------------------- */

static int add_tensor(struct pt_read *r, const char *prefix, size_t plen, const char *key,
                      const struct pk_tensor *t)
{
    struct ldm_pt *pt = r->pt;
    if (pt->n >= PK_MAX_TENSORS)
        return ldm_fail(LDM_ERANGE, "%s: more than %u tensors", pt->label, PK_MAX_TENSORS);
    if (pt->n == pt->cap) {
        size_t c = pt->cap ? pt->cap * 2 : 64;
        void *p = realloc(pt->e, c * sizeof *pt->e);
        if (!p)
            return ldm_fail(LDM_ENOMEM, "%s: out of memory", pt->label);
        pt->e = p;
        pt->cap = c;
    }
    struct pt_entry *e = &pt->e[pt->n];
    memset(e, 0, sizeof *e);
    char *name = malloc(plen + strlen(key) + 1);
    if (!name)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", pt->label);
    memcpy(name, prefix, plen);
    strcpy(name + plen, key);
    e->t.name = name;
    e->dictlen = plen;
    pt->n++;
    return materialize(r, t, e);
}

static int flatten(struct pt_read *r, uint32_t dict, const char *prefix, size_t plen, int depth);

/* One dict entry: a tensor is added, a dict flattened under "key.", the rest skipped. */
static int flatten_entry(struct pt_read *r, const struct pk_value *k, const struct pk_value *v,
                         const char *prefix, size_t plen, int depth, uint32_t vidx)
{
    if (k->kind != PK_STR || (v->kind != PK_TENSOR && v->kind != PK_DICT))
        return 0;
    if (strlen(k->s) != k->slen)
        return ldm_fail(LDM_EFORMAT, "%s: a key holding a NUL byte", r->pt->label);
    if (v->kind == PK_TENSOR)
        return add_tensor(r, prefix, plen, k->s, v->t);
    char *sub = malloc(plen + k->slen + 2);
    if (!sub)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", r->pt->label);
    memcpy(sub, prefix, plen);
    memcpy(sub + plen, k->s, k->slen);
    sub[plen + k->slen] = '.';
    sub[plen + k->slen + 1] = 0;
    int rc = flatten(r, vidx, sub, plen + k->slen + 1, depth + 1);
    free(sub);
    return rc;
}

static int flatten(struct pt_read *r, uint32_t dict, const char *prefix, size_t plen, int depth)
{
    if (depth > PK_MAX_DEPTH)
        return ldm_fail(LDM_ERANGE, "%s: dicts nested deeper than %d ('%.80s...')", r->pt->label,
                        PK_MAX_DEPTH, prefix);
    const struct pk_value *d = &r->vm.vals[dict];
    for (size_t i = 0; i + 1 < d->n; i += 2) {
        uint32_t vi = d->items[i + 1];
        int rc = flatten_entry(r, &r->vm.vals[d->items[i]], &r->vm.vals[vi], prefix, plen,
                               depth, vi);
        if (rc)
            return rc;
    }
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct pt_entry *)a)->t.name, ((const struct pt_entry *)b)->t.name);
}

/* The dotted dict-key prefix shared by every tensor. */
static int common_prefix(struct ldm_pt *pt)
{
    size_t n = pt->n ? pt->e[0].dictlen : 0;
    for (size_t i = 1; i < pt->n && n; i++) {
        const struct pt_entry *e = &pt->e[i];
        while (n && (e->dictlen < n || memcmp(e->t.name, pt->e[0].t.name, n) != 0)) {
            n--;
            while (n && pt->e[0].t.name[n - 1] != '.')
                n--;
        }
    }
    pt->prefix = strndup(n ? pt->e[0].t.name : "", n);
    return pt->prefix ? 0 : ldm_fail(LDM_ENOMEM, "%s: out of memory", pt->label);
}

/* Flatten the object r->vm.result into the sorted tensor list. */
static int collect(struct pt_read *r)
{
    struct ldm_pt *pt = r->pt;
    if (r->vm.vals[r->vm.result].kind != PK_DICT)
        return ldm_fail(LDM_EFORMAT, "%s: the saved object is not a dict", pt->label);
    int rc = flatten(r, r->vm.result, "", 0, 0);
    if (rc)
        return rc;
    if (pt->n)
        qsort(pt->e, pt->n, sizeof *pt->e, cmp_entry);
    for (size_t i = 1; i < pt->n; i++)
        if (strcmp(pt->e[i - 1].t.name, pt->e[i].t.name) == 0)
            return ldm_fail(LDM_EFORMAT, "%s: two tensors named '%s'", pt->label, pt->e[i].t.name);
    return common_prefix(pt);
}

/* ---- the zip container ------------------------------------------------------------------------ */

/* The one member called PREFIX/data.pkl; *plen = strlen(PREFIX) + 1. */
static int find_pickle(const struct ldm_pt *pt, const struct pk_zip_member *m, size_t n,
                       const struct pk_zip_member **out, size_t *plen)
{
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *slash = strchr(m[i].name, '/');
        if (!slash || slash == m[i].name || strcmp(slash, "/data.pkl") != 0)
            continue;
        if (*out)
            return ldm_fail(LDM_EFORMAT, "%s: two pickles ('%s' and '%s')", pt->label,
                            (*out)->name, m[i].name);
        *out = &m[i];
        *plen = (size_t)(slash - m[i].name) + 1;
    }
    if (!*out)
        return ldm_fail(LDM_EFORMAT, "%s: no ARCHIVE/data.pkl in the zip archive", pt->label);
    if (!(*out)->stored)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: member '%s' is compressed", pt->label, (*out)->name);
    return 0;
}

static int check_byteorder(const struct ldm_pt *pt, const struct pk_zip_member *m, size_t n,
                           const char *pkl, size_t plen)
{
    char name[4096];
    if (plen + 10 > sizeof name)
        return ldm_fail(LDM_EFORMAT, "%s: archive prefix too long", pt->label);
    snprintf(name, sizeof name, "%.*sbyteorder", (int)plen, pkl);
    const struct pk_zip_member *b = pk_zip_get(m, n, name);
    if (b && !(b->stored && b->size == 6 && memcmp(b->data, "little", 6) == 0))
        return ldm_fail(LDM_EUNSUPPORTED, "%s: '%s' is not \"little\"", pt->label, name);
    return 0;
}

/* Point each storage at its member PREFIX/data/KEY. */
static int zip_storages(struct pt_read *r, const struct pk_zip_member *m, size_t n,
                        const char *pkl, size_t plen)
{
    char name[4096];
    for (size_t i = 0; i < r->st.n; i++) {
        struct pk_storage *s = &r->st.v[i];
        if (plen + 5 + strlen(s->key) >= sizeof name)
            return ldm_fail(LDM_EFORMAT, "%s: storage key too long", r->pt->label);
        snprintf(name, sizeof name, "%.*sdata/%s", (int)plen, pkl, s->key);
        const struct pk_zip_member *d = pk_zip_get(m, n, name);
        if (!d)
            return ldm_fail(LDM_EFORMAT, "%s: storage member '%s' missing", r->pt->label, name);
        if (!d->stored)
            return ldm_fail(LDM_EUNSUPPORTED, "%s: member '%s' is compressed", r->pt->label, name);
        if (s->numel > d->size / ldm_dtype_size(s->dtype))
            return ldm_fail(LDM_EFORMAT, "%s: storage '%s' holds %zu bytes, %llu %s elements needed",
                            r->pt->label, name, d->size, (unsigned long long)s->numel,
                            ldm_dtype_name(s->dtype));
        s->data = d->data;
        s->nbytes = d->size;
    }
    return 0;
}

static int read_zip(struct pt_read *r)
{
    struct pk_zip_member *m = NULL;
    const struct pk_zip_member *pkl;
    size_t n = 0, plen = 0;
    int rc = pk_zip_read(r->buf, r->len, r->pt->label, &m, &n);
    if (rc == 0)
        rc = find_pickle(r->pt, m, n, &pkl, &plen);
    if (rc == 0)
        rc = check_byteorder(r->pt, m, n, pkl->name, plen);
    if (rc == 0)
        rc = pk_vm_run(&r->vm, r->buf, (size_t)(pkl->data - r->buf) + pkl->size,
                       (size_t)(pkl->data - r->buf));
    if (rc == 0)
        rc = zip_storages(r, m, n, pkl->name, plen);
    if (rc == 0)
        rc = collect(r);
    pk_zip_free(m, n);
    return rc;
}

/* ---- the legacy container ---------------------------------------------------------------------- */

/* Run one pickle at *pos with a fresh machine `vm`; *pos moves past it. */
static int run_at(struct pt_read *r, struct pk_vm *vm, size_t *pos)
{
    vm->label = r->pt->label;
    vm->st = &r->st;
    int rc = pk_vm_run(vm, r->buf, r->len, *pos);
    if (rc == 0)
        *pos = vm->pos;
    return rc;
}

/* The value of string key `key` in dict d, or NULL. */
static const struct pk_value *dict_get(const struct pk_vm *vm, const struct pk_value *d,
                                       const char *key)
{
    for (size_t i = 0; i + 1 < d->n; i += 2) {
        const struct pk_value *k = &vm->vals[d->items[i]];
        if (k->kind == PK_STR && strcmp(k->s, key) == 0)
            return &vm->vals[d->items[i + 1]];
    }
    return NULL;
}

/* Check pickle i (0-2) of the legacy header: magic, protocol 1001, little-endian system. */
static int legacy_check(const struct pt_read *r, const struct pk_vm *vm, int i)
{
    const struct pk_value *v = &vm->vals[vm->result], *le;
    if (i == 0 && (v->kind != PK_BIGINT || v->slen != sizeof legacy_magic ||
                   memcmp(v->s, legacy_magic, sizeof legacy_magic) != 0))
        return ldm_fail(LDM_EFORMAT, "%s: not a torch file (bad magic number)", r->pt->label);
    if (i == 1 && (v->kind != PK_INT || v->i != 1001))
        return ldm_fail(LDM_EUNSUPPORTED, "%s: legacy protocol is not 1001", r->pt->label);
    if (i == 2 && v->kind != PK_DICT)
        return ldm_fail(LDM_EFORMAT, "%s: system info is not a dict", r->pt->label);
    if (i == 2 && (le = dict_get(vm, v, "little_endian")) && !(le->kind == PK_BOOL && le->i))
        return ldm_fail(LDM_EUNSUPPORTED, "%s: saved on a big-endian system", r->pt->label);
    return 0;
}

/* Pickles 1-3: the magic number, protocol 1001, and a little-endian system. */
static int legacy_header(struct pt_read *r, size_t *pos)
{
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        struct pk_vm vm;
        memset(&vm, 0, sizeof vm);
        rc = run_at(r, &vm, pos);
        if (rc == 0)
            rc = legacy_check(r, &vm, i);
        else if (i == 0) {
            char why[256];
            snprintf(why, sizeof why, "%s", ldm_errmsg());
            rc = ldm_fail(LDM_EFORMAT, "%s: not a torch file (%s)", r->pt->label, why);
        }
        pk_vm_free(&vm);
    }
    return rc;
}

static struct pk_storage *storage_by_key(struct pk_storages *st, const char *key)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->v[i].key, key) == 0)
            return &st->v[i];
    return NULL;
}

/* After the key list: each storage's 8-byte element count, then its bytes. */
static int legacy_data(struct pt_read *r, const struct pk_vm *keys, size_t pos)
{
    const struct pk_value *list = &keys->vals[keys->result];
    if (list->kind != PK_LIST)
        return ldm_fail(LDM_EFORMAT, "%s: the storage key list is not a list", r->pt->label);
    for (size_t i = 0; i < list->n; i++) {
        const struct pk_value *k = &keys->vals[list->items[i]];
        struct pk_storage *s = k->kind == PK_STR ? storage_by_key(&r->st, k->s) : NULL;
        if (!s)
            return ldm_fail(LDM_EFORMAT, "%s: storage key %zu names no storage", r->pt->label, i);
        uint64_t count = 0;
        if (r->len - pos < 8)
            return ldm_fail(LDM_EFORMAT, "%s: truncated at byte %zu (storage '%s')", r->pt->label,
                            pos, s->key);
        for (int b = 7; b >= 0; b--)
            count = count << 8 | r->buf[pos + (size_t)b];
        pos += 8;
        size_t esize = ldm_dtype_size(s->dtype);
        if (count != s->numel || count > (r->len - pos) / esize)
            return ldm_fail(LDM_EFORMAT, "%s: storage '%s' at byte %zu: %llu elements, %llu expected "
                            "(or past the end)", r->pt->label, s->key, pos - 8,
                            (unsigned long long)count, (unsigned long long)s->numel);
        s->data = r->buf + pos;
        s->nbytes = (size_t)count * esize;
        pos += s->nbytes;
    }
    for (size_t i = 0; i < r->st.n; i++)
        if (!r->st.v[i].data)
            return ldm_fail(LDM_EFORMAT, "%s: storage '%s' has no data", r->pt->label,
                            r->st.v[i].key);
    return 0;
}

static int read_legacy(struct pt_read *r)
{
    size_t pos = 0;
    struct pk_vm keys;
    memset(&keys, 0, sizeof keys);
    int rc = legacy_header(r, &pos);
    if (rc == 0)
        rc = run_at(r, &r->vm, &pos);
    if (rc == 0)
        rc = run_at(r, &keys, &pos);
    if (rc == 0)
        rc = legacy_data(r, &keys, pos);
    if (rc == 0)
        rc = collect(r);
    pk_vm_free(&keys);
    return rc;
}

/* ---- the public API ---------------------------------------------------------------------------- */

static int open_common(struct ldm_pt *pt, const void *buf, size_t len)
{
    struct pt_read r;
    memset(&r, 0, sizeof r);
    r.pt = pt;
    r.buf = buf;
    r.len = len;
    r.vm.label = pt->label;
    r.vm.st = &r.st;
    pt->legacy = !(len >= 4 && memcmp(buf, "PK\x03\x04", 4) == 0);
    int rc = pt->legacy ? read_legacy(&r) : read_zip(&r);
    pk_vm_free(&r.vm);
    for (size_t i = 0; i < r.st.n; i++)
        free(r.st.v[i].key);
    free(r.st.v);
    return rc;
}

static int new_pt(struct ldm_pt **out, const char *label)
{
    *out = calloc(1, sizeof **out);
    if (*out && !((*out)->label = strdup(label)))
        free(*out), *out = NULL;
    return *out ? 0 : ldm_fail(LDM_ENOMEM, "%s: out of memory", label);
}

int ldm_pt_open_buffer(struct ldm_pt **out, const void *buf, size_t len, const char *label)
{
    struct ldm_pt *pt;
    int rc = new_pt(&pt, label ? label : "<buffer>");
    *out = NULL;
    if (rc)
        return rc;
    if ((rc = open_common(pt, buf, len))) {
        ldm_pt_close(&pt);
        return rc;
    }
    *out = pt;
    return 0;
}

int ldm_pt_open(struct ldm_pt **out, const char *path)
{
    struct ldm_pt *pt;
    int rc = new_pt(&pt, path);
    *out = NULL;
    if (rc)
        return rc;
    if ((rc = ldm_map_file(path, &pt->map)) || (rc = open_common(pt, pt->map.data, pt->map.len))) {
        ldm_pt_close(&pt);
        return rc;
    }
    *out = pt;
    return 0;
}

void ldm_pt_close(struct ldm_pt **pt)
{
    if (!pt || !*pt)
        return;
    struct ldm_pt *p = *pt;
    for (size_t i = 0; i < p->n; i++) {
        free((char *)p->e[i].t.name);
        free(p->e[i].owned);
    }
    free(p->e);
    free(p->prefix);
    ldm_unmap(&p->map);
    free(p->label);
    free(p);
    *pt = NULL;
}

const char *ldm_pt_label(const struct ldm_pt *pt) { return pt->label; }
int ldm_pt_legacy(const struct ldm_pt *pt) { return pt->legacy; }
size_t ldm_pt_count(const struct ldm_pt *pt) { return pt->n; }
const char *ldm_pt_prefix(const struct ldm_pt *pt) { return pt->prefix; }

const struct ldm_st_tensor *ldm_pt_at(const struct ldm_pt *pt, size_t i)
{
    return i < pt->n ? &pt->e[i].t : NULL;
}

const struct ldm_st_tensor *ldm_pt_get(const struct ldm_pt *pt, const char *name)
{
    struct pt_entry key;
    key.t.name = name;
    const struct pt_entry *e = pt->n ? bsearch(&key, pt->e, pt->n, sizeof *pt->e, cmp_entry) : NULL;
    return e ? &e->t : NULL;
}

int ldm_pt_find(const struct ldm_pt *pt, const char *name, const struct ldm_st_tensor **out)
{
    *out = ldm_pt_get(pt, name);
    return *out ? 0 : ldm_fail(LDM_ENOTFOUND, "%s: no tensor '%s'", pt->label, name);
}

static const char *fmt_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
    return buf;
}

int ldm_pt_expect(const struct ldm_pt *pt, const char *name, int dtype, int ndim,
                  const int64_t *shape, const struct ldm_st_tensor **out)
{
    const struct ldm_st_tensor *t;
    int rc = ldm_pt_find(pt, name, &t);
    if (out)
        *out = NULL;
    if (rc)
        return rc;
    if (t->dtype == dtype && t->ndim == ndim &&
        (ndim == 0 || memcmp(t->shape, shape, (size_t)ndim * sizeof *shape) == 0)) {
        if (out)
            *out = t;
        return 0;
    }
    char have[256], want[256];
    int wn = ndim < 0 ? 0 : ndim > LDM_MAXDIM ? LDM_MAXDIM : ndim;
    const char *wd = ldm_dtype_name(dtype);
    return ldm_fail(LDM_EFORMAT, "%s: tensor '%s': %s %s, expected %s %s", pt->label, name,
                    ldm_dtype_name(t->dtype), fmt_shape(have, sizeof have, t->ndim, t->shape),
                    wd ? wd : "?", fmt_shape(want, sizeof want, wn, shape));
}

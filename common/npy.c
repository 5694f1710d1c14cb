/* npy.c — NumPy .npy arrays and .npz archives (float32 and float64). */
#include "npy.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "err.h"
#include "fsutil.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ldmpipe assumes a little-endian host");

#define NPY_MAGIC "\x93NUMPY"
#define NPY_ALIGN 64
#define NPY_MAX_HEADER (1u << 20) /* far above any header of LDM_MAXDIM dimensions */

/* ---- arrays ------------------------------------------------------------------ */

/* Bytes of an F32/F64 array of this shape, or -1 (bad dtype, ndim or shape). */
static int array_bytes(int dtype, int ndim, const int64_t *shape, size_t *nbytes)
{
    if ((dtype != LDM_DT_F32 && dtype != LDM_DT_F64) || ndim < 0 || ndim > LDM_MAXDIM)
        return -1;
    uint64_t n = ldm_dtype_size(dtype);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, (uint64_t)shape[i], &n))
            return -1;
    if (n > SIZE_MAX)
        return -1;
    *nbytes = (size_t)n;
    return 0;
}

int ldm_array_init(struct ldm_array *a, int dtype, int ndim, const int64_t *shape)
{
    size_t nbytes;
    memset(a, 0, sizeof *a);
    if (array_bytes(dtype, ndim, shape, &nbytes) != 0)
        return ldm_fail(LDM_EINVAL, "array: dtype %d, ndim %d: not an F32/F64 array shape", dtype,
                        ndim);
    void *p = calloc(1, nbytes ? nbytes : 1);
    if (!p)
        return ldm_fail(LDM_ENOMEM, "array of %zu bytes", nbytes);
    a->dtype = dtype;
    a->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        a->shape[i] = shape[i];
    a->data = p;
    a->nbytes = nbytes;
    return 0;
}

void ldm_array_free(struct ldm_array *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}

size_t ldm_array_count(const struct ldm_array *a)
{
    size_t n = 1;
    for (int i = 0; i < a->ndim; i++)
        n *= (size_t)a->shape[i];
    return n;
}

/* "(2048, 2048)" as numpy prints a shape (Python's tuple repr). */
static const char *fmt_tuple(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < size)
        snprintf(buf + k, size - k, ndim == 1 ? ",)" : ")");
    return buf;
}

/* ---- the .npy header ------------------------------------------------------------ */

/* What a .npy header says. */
struct npy_hdr {
    int dtype;
    int ndim;
    int64_t shape[LDM_MAXDIM];
    size_t data_off; /* where the elements start */
    size_t nbytes;
};

/* A cursor over the header's dict literal. */
struct cur {
    const unsigned char *p, *start, *end;
    const char *label;
};

static int bad_dict(const struct cur *c, const char *what)
{
    return ldm_fail(LDM_EFORMAT, "%s: malformed .npy header at byte %zu: %s", c->label,
                    (size_t)(c->p - c->start), what);
}

static void skip_ws(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Skip blanks, then take `ch` if it is next. */
static int take(struct cur *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == (unsigned char)ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A '...' or "..." literal without escapes, into out (NUL-terminated). */
static int parse_str(struct cur *c, char *out, size_t size)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return bad_dict(c, "expected a string");
    unsigned char q = *c->p++;
    size_t k = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\0' || k + 1 >= size)
            return bad_dict(c, "unexpected string (escape, NUL, or too long)");
        out[k++] = (char)*c->p++;
    }
    if (c->p >= c->end)
        return bad_dict(c, "unterminated string");
    c->p++;
    out[k] = '\0';
    return 0;
}

/* A bare word (True, False) into out. */
static int parse_word(struct cur *c, char *out, size_t size)
{
    skip_ws(c);
    size_t k = 0;
    while (c->p < c->end && k + 1 < size &&
           ((*c->p >= 'a' && *c->p <= 'z') || (*c->p >= 'A' && *c->p <= 'Z')))
        out[k++] = (char)*c->p++;
    out[k] = '\0';
    return k ? 0 : bad_dict(c, "expected True or False");
}

/* A non-negative Python int literal (an 'L' suffix of Python 2 allowed). */
static int parse_dim(struct cur *c, int64_t *v)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == '-')
        return bad_dict(c, "negative dimension");
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return bad_dict(c, "expected a dimension");
    uint64_t n = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, *c->p - '0', &n) ||
            n > INT64_MAX)
            return bad_dict(c, "dimension too large");
        c->p++;
    }
    if (c->p < c->end && (*c->p == 'L' || *c->p == 'l'))
        c->p++;
    *v = (int64_t)n;
    return 0;
}

/* "()", "(N,)", "(N, M)", "(N, M,)" ... */
static int parse_shape(struct cur *c, struct npy_hdr *h)
{
    if (!take(c, '('))
        return bad_dict(c, "shape is not a tuple");
    h->ndim = 0;
    int commas = 0;
    while (!take(c, ')')) {
        if (h->ndim == LDM_MAXDIM)
            return ldm_fail(LDM_EUNSUPPORTED, "%s: more than %d dimensions", c->label, LDM_MAXDIM);
        int rc = parse_dim(c, &h->shape[h->ndim++]);
        if (rc != 0)
            return rc;
        if (take(c, ','))
            commas++;
        else if (!take(c, ')'))
            return bad_dict(c, "expected ',' or ')' in shape");
        else
            break;
    }
    if (h->ndim == 1 && commas == 0)
        return bad_dict(c, "shape (N) is not a tuple; (N,) is");
    return 0;
}

/* dtype from descr; unsupported ones named. */
static int parse_descr(const char *label, const char *descr, int *dtype)
{
    if (strcmp(descr, "<f4") == 0 || strcmp(descr, "<f8") == 0) {
        *dtype = descr[2] == '4' ? LDM_DT_F32 : LDM_DT_F64;
        return 0;
    }
    if (descr[0] == '>')
        return ldm_fail(LDM_EUNSUPPORTED,
                        "%s: big-endian dtype '%s' not supported (only '<f4' and '<f8')", label,
                        descr);
    return ldm_fail(LDM_EUNSUPPORTED, "%s: dtype '%s' not supported (only '<f4' and '<f8')", label,
                    descr);
}

/* One "key: value" of the dict. seen: bit 0 descr, 1 fortran_order, 2 shape. */
static int parse_item(struct cur *c, struct npy_hdr *h, char *descr, size_t dsize, int *fortran,
                      unsigned *seen)
{
    char key[32], word[16];
    int rc = parse_str(c, key, sizeof key);
    if (rc != 0)
        return rc;
    if (!take(c, ':'))
        return bad_dict(c, "expected ':'");
    unsigned bit = strcmp(key, "descr") == 0           ? 1u
                   : strcmp(key, "fortran_order") == 0 ? 2u
                   : strcmp(key, "shape") == 0         ? 4u
                                                       : 0u;
    if (bit == 0 || (*seen & bit))
        return ldm_fail(LDM_EFORMAT, "%s: .npy header: %s key '%s'", c->label,
                        bit ? "repeated" : "unexpected", key);
    *seen |= bit;
    if (bit == 4)
        return parse_shape(c, h);
    if (bit == 1) {
        skip_ws(c);
        if (c->p < c->end && *c->p == '[')
            return ldm_fail(LDM_EUNSUPPORTED, "%s: structured dtype not supported", c->label);
        return parse_str(c, descr, dsize);
    }
    if ((rc = parse_word(c, word, sizeof word)) != 0)
        return rc;
    if (strcmp(word, "True") != 0 && strcmp(word, "False") != 0)
        return bad_dict(c, "fortran_order is not True or False");
    *fortran = word[0] == 'T';
    return 0;
}

/* The dict literal in [p, end) into h (all but data_off and nbytes). */
static int parse_dict(const unsigned char *p, const unsigned char *end, const char *label,
                      struct npy_hdr *h)
{
    struct cur c = {p, p, end, label};
    char descr[32];
    int fortran = 0;
    unsigned seen = 0;
    if (!take(&c, '{'))
        return bad_dict(&c, "expected '{'");
    while (!take(&c, '}')) {
        int rc = parse_item(&c, h, descr, sizeof descr, &fortran, &seen);
        if (rc != 0)
            return rc;
        if (take(&c, ','))
            continue;
        if (!take(&c, '}'))
            return bad_dict(&c, "expected ',' or '}'");
        break;
    }
    skip_ws(&c);
    if (c.p != c.end)
        return bad_dict(&c, "unexpected bytes after the dict");
    if (seen != 7)
        return ldm_fail(LDM_EFORMAT, "%s: .npy header lacks '%s'", label,
                        !(seen & 1) ? "descr" : !(seen & 2) ? "fortran_order" : "shape");
    if (fortran && h->ndim > 1)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: fortran_order True not supported", label);
    return parse_descr(label, descr, &h->dtype);
}

/* The preamble: magic, version, header length; then the dict; then the
 * data size against what is left. */
static int npy_parse(const unsigned char *b, size_t len, const char *label, struct npy_hdr *h)
{
    if (len < 10 || memcmp(b, NPY_MAGIC, 6) != 0)
        return ldm_fail(LDM_EFORMAT, "%s: not a .npy file (%s)", label,
                        len < 10 ? "too short" : "no \\x93NUMPY magic");
    int major = b[6], minor = b[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: .npy format version %d.%d not supported", label,
                        major, minor);
    size_t pre = major == 1 ? 10 : 12;
    if (len < pre)
        return ldm_fail(LDM_EFORMAT, "%s: .npy file too short", label);
    size_t hlen = major == 1 ? (size_t)(b[8] | b[9] << 8)
                             : (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
                                   (size_t)b[11] << 24;
    if (hlen > NPY_MAX_HEADER || hlen > len - pre)
        return ldm_fail(LDM_EFORMAT, "%s: .npy header length %zu exceeds the %zu bytes after it",
                        label, hlen, len - pre);
    int rc = parse_dict(b + pre, b + pre + hlen, label, h);
    if (rc != 0)
        return rc;
    h->data_off = pre + hlen;
    char sh[160];
    if (array_bytes(h->dtype, h->ndim, h->shape, &h->nbytes) != 0)
        return ldm_fail(LDM_EFORMAT, "%s: shape %s overflows", label,
                        fmt_tuple(sh, sizeof sh, h->ndim, h->shape));
    if (len - h->data_off != h->nbytes)
        return ldm_fail(LDM_EFORMAT, "%s: %zu bytes of data, but shape %s of %s needs %zu", label,
                        len - h->data_off, fmt_tuple(sh, sizeof sh, h->ndim, h->shape),
                        h->dtype == LDM_DT_F32 ? "'<f4'" : "'<f8'", h->nbytes);
    return 0;
}

/* Fill *out from a parsed header over b, copying the elements. */
static int npy_take(const unsigned char *b, const struct npy_hdr *h, const char *label,
                    struct ldm_array *out)
{
    memset(out, 0, sizeof *out);
    void *p = malloc(h->nbytes ? h->nbytes : 1);
    if (!p)
        return ldm_fail(LDM_ENOMEM, "%s: %zu bytes for the array", label, h->nbytes);
    memcpy(p, b + h->data_off, h->nbytes);
    out->dtype = h->dtype;
    out->ndim = h->ndim;
    memcpy(out->shape, h->shape, sizeof out->shape);
    out->data = p;
    out->nbytes = h->nbytes;
    return 0;
}

int ldm_npy_read_buffer(const void *buf, size_t len, const char *label, struct ldm_array *out)
{
    struct npy_hdr h = {0};
    label = label ? label : "<buffer>";
    memset(out, 0, sizeof *out);
    int rc = npy_parse(buf, len, label, &h);
    return rc != 0 ? rc : npy_take(buf, &h, label, out);
}

int ldm_npy_read(const char *path, struct ldm_array *out)
{
    struct ldm_map m;
    memset(out, 0, sizeof *out);
    int rc = ldm_map_file(path, &m);
    if (rc == 0)
        rc = ldm_npy_read_buffer(m.data ? m.data : "", m.len, path, out);
    ldm_unmap(&m);
    return rc;
}

/* ---- writing .npy ------------------------------------------------------------------ */

#define NPY_HDR_MAX 512 /* preamble + dict + padding for LDM_MAXDIM dimensions */
#define GROWTH_DIGITS 21 /* numpy leaves room to grow the first axis in place */

static int check_array(const struct ldm_array *a, const char *what)
{
    size_t need;
    if (!a || array_bytes(a->dtype, a->ndim, a->shape, &need) != 0)
        return ldm_fail(LDM_EINVAL, "%s: not an F32/F64 array of 0..%d dimensions", what,
                        LDM_MAXDIM);
    if (need != a->nbytes)
        return ldm_fail(LDM_EINVAL, "%s: nbytes %zu but the shape needs %zu", what, a->nbytes, need);
    if (need > 0 && !a->data)
        return ldm_fail(LDM_EINVAL, "%s: no data", what);
    return 0;
}

/* The preamble, dict and padding of a's .npy file into buf[NPY_HDR_MAX], as
 * numpy writes them; returns their length. */
static size_t npy_header(const struct ldm_array *a, unsigned char *buf)
{
    char dict[NPY_HDR_MAX], sh[200];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     a->dtype == LDM_DT_F32 ? "<f4" : "<f8",
                     fmt_tuple(sh, sizeof sh, a->ndim, a->shape));
    if (a->ndim > 0) {
        int digits = snprintf(sh, sizeof sh, "%lld", (long long)a->shape[0]);
        for (int i = digits; i < GROWTH_DIGITS; i++)
            dict[n++] = ' ';
    }
    size_t hlen = (size_t)n + 1; /* + '\n' */
    size_t pre = 10, pad = NPY_ALIGN - (pre + hlen) % NPY_ALIGN;
    if (hlen + pad > 0xffff) { /* version 2.0: a 4-byte length */
        pre = 12;
        pad = NPY_ALIGN - (pre + hlen) % NPY_ALIGN;
    }
    size_t field = hlen + pad;
    memcpy(buf, NPY_MAGIC, 6);
    buf[6] = pre == 10 ? 1 : 2;
    buf[7] = 0;
    for (size_t i = 8; i < pre; i++)
        buf[i] = (unsigned char)(field >> (8 * (i - 8)));
    memcpy(buf + pre, dict, (size_t)n);
    memset(buf + pre + n, ' ', pad);
    buf[pre + field - 1] = '\n';
    return pre + field;
}

static int npy_emit(struct ldm_writer *w, void *ctx)
{
    const struct ldm_array *a = ctx;
    unsigned char hdr[NPY_HDR_MAX];
    size_t hlen = npy_header(a, hdr);
    int rc = ldm_writer_put(w, hdr, hlen);
    return rc != 0 ? rc : ldm_writer_put(w, a->data, a->nbytes);
}

int ldm_npy_write(const char *path, const struct ldm_array *a)
{
    int rc = check_array(a, path);
    return rc != 0 ? rc : ldm_write_atomic(path, npy_emit, (void *)a);
}

int ldm_npy_encode(const struct ldm_array *a, void **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int rc = check_array(a, "array");
    return rc != 0 ? rc : ldm_write_mem(npy_emit, (void *)a, "npy image", out, len);
}

/* ---- zip structures ------------------------------------------------------------------ */

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define LOCAL_LEN 30
#define CENTRAL_LEN 46
#define END_LEN 22
#define END64_LEN 56
#define LOC64_LEN 20
#define DEFLATE_RATIO 1032 /* deflate cannot expand more than this */

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

struct npz_member {
    char *member;      /* as stored, "mu.npy" */
    char *name;        /* the array name, "mu" */
    uint64_t lho;      /* local header offset */
    uint64_t csize, usize;
    uint32_t crc;
    uint16_t method, flags;
};

struct ldm_npz {
    char *label;
    struct ldm_map map;        /* the file (empty for a caller's buffer) */
    const unsigned char *buf;
    size_t len;
    size_t n;
    struct npz_member *m;      /* archive order */
    struct npz_member **by;    /* sorted by name */
};

/* Where the central directory is, from the end records. */
struct zip_dir {
    uint64_t off, size, count;
    uint64_t limit; /* the directory ends at or before this */
};

void ldm_npz_close(struct ldm_npz **zp)
{
    struct ldm_npz *z = *zp;
    if (!z)
        return;
    for (size_t i = 0; i < z->n; i++) {
        free(z->m[i].member);
        free(z->m[i].name);
    }
    free(z->m);
    free(z->by);
    ldm_unmap(&z->map);
    free(z->label);
    free(z);
    *zp = NULL;
}

/* The end of central directory record: the last signature whose comment
 * length reaches exactly to the end of the archive. */
static int find_end(const struct ldm_npz *z, size_t *pos)
{
    if (z->len < END_LEN)
        return ldm_fail(LDM_EFORMAT, "%s: %zu bytes, too short for a zip archive", z->label, z->len);
    size_t lo = z->len - END_LEN > 0xffff ? z->len - END_LEN - 0xffff : 0;
    for (size_t p = z->len - END_LEN + 1; p-- > lo;) {
        if (rd32(z->buf + p) == SIG_END && p + END_LEN + rd16(z->buf + p + 20) == z->len) {
            *pos = p;
            return 0;
        }
    }
    return ldm_fail(LDM_EFORMAT,
                    "%s: no end of central directory record (not a zip archive, or truncated)",
                    z->label);
}

/* The zip64 end record that the locator before `end` points to. */
static int read_end64(const struct ldm_npz *z, size_t end, struct zip_dir *d)
{
    const unsigned char *loc = z->buf + end - LOC64_LEN;
    uint64_t off = rd64(loc + 8);
    if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: multi-disk zip archives not supported", z->label);
    if (off > end - LOC64_LEN || end - LOC64_LEN - off < END64_LEN ||
        rd32(z->buf + off) != SIG_END64)
        return ldm_fail(LDM_EFORMAT, "%s: zip64 end record missing at offset %llu", z->label,
                        (unsigned long long)off);
    const unsigned char *e = z->buf + off;
    if (rd32(e + 16) != 0 || rd32(e + 20) != 0 || rd64(e + 24) != rd64(e + 32))
        return ldm_fail(LDM_EUNSUPPORTED, "%s: multi-disk zip archives not supported", z->label);
    d->count = rd64(e + 32);
    d->size = rd64(e + 40);
    d->off = rd64(e + 48);
    d->limit = off;
    return 0;
}

static int read_end(const struct ldm_npz *z, struct zip_dir *d)
{
    size_t end = 0;
    int rc = find_end(z, &end);
    if (rc != 0)
        return rc;
    const unsigned char *e = z->buf + end;
    if (end >= LOC64_LEN && rd32(e - LOC64_LEN) == SIG_LOC64) {
        rc = read_end64(z, end, d);
    } else if (rd16(e + 4) != 0 || rd16(e + 6) != 0 || rd16(e + 8) != rd16(e + 10)) {
        rc = ldm_fail(LDM_EUNSUPPORTED, "%s: multi-disk zip archives not supported", z->label);
    } else {
        d->count = rd16(e + 10);
        d->size = rd32(e + 12);
        d->off = rd32(e + 16);
        d->limit = end;
    }
    if (rc == 0 && (d->off > d->limit || d->size > d->limit - d->off))
        rc = ldm_fail(LDM_EFORMAT,
                      "%s: central directory [%llu,+%llu) runs past its end record (truncated?)",
                      z->label, (unsigned long long)d->off, (unsigned long long)d->size);
    if (rc == 0 && d->count > d->size / CENTRAL_LEN)
        rc = ldm_fail(LDM_EFORMAT, "%s: %llu members cannot fit in a %llu-byte central directory",
                      z->label, (unsigned long long)d->count, (unsigned long long)d->size);
    return rc;
}

/* The zip64 extra field (id 1) of a central entry holds, in this order, the
 * sizes and offset whose fixed fields read 0xffffffff. */
static int apply_zip64(const struct ldm_npz *z, const unsigned char *x, size_t xlen,
                       struct npz_member *m)
{
    while (xlen >= 4) {
        size_t id = rd16(x), sz = rd16(x + 2);
        if (sz > xlen - 4)
            return ldm_fail(LDM_EFORMAT, "%s: member '%s': extra field runs past its entry",
                            z->label, m->member);
        uint64_t *field[3] = {&m->usize, &m->csize, &m->lho};
        for (size_t i = 0, k = 0; id == 1 && i < 3; i++) {
            if (*field[i] != 0xffffffffu)
                continue;
            if (k + 8 > sz)
                return ldm_fail(LDM_EFORMAT, "%s: member '%s': zip64 extra field too short",
                                z->label, m->member);
            *field[i] = rd64(x + 4 + k);
            k += 8;
        }
        x += 4 + sz;
        xlen -= 4 + sz;
    }
    return 0;
}

static int set_names(const struct ldm_npz *z, const unsigned char *s, size_t n,
                     struct npz_member *m)
{
    if (memchr(s, '\0', n))
        return ldm_fail(LDM_EFORMAT, "%s: a member name holds a NUL byte", z->label);
    size_t k = n >= 4 && memcmp(s + n - 4, ".npy", 4) == 0 ? n - 4 : n;
    m->member = strndup((const char *)s, n);
    m->name = strndup((const char *)s, k);
    return m->member && m->name ? 0 : ldm_fail(LDM_ENOMEM, "%s: member names", z->label);
}

/* Central directory entry number i at *pos (before `end`) into m. */
static int parse_entry(const struct ldm_npz *z, uint64_t *pos, uint64_t end, size_t i,
                       struct npz_member *m)
{
    const unsigned char *e = z->buf + *pos;
    if (end - *pos < CENTRAL_LEN || rd32(e) != SIG_CENTRAL)
        return ldm_fail(LDM_EFORMAT, "%s: central directory entry %zu missing or truncated",
                        z->label, i);
    size_t nlen = rd16(e + 28), xlen = rd16(e + 30), clen = rd16(e + 32);
    if (end - *pos - CENTRAL_LEN < nlen + xlen + clen)
        return ldm_fail(LDM_EFORMAT, "%s: central directory entry %zu runs past the directory",
                        z->label, i);
    int rc = set_names(z, e + CENTRAL_LEN, nlen, m);
    if (rc != 0)
        return rc;
    m->flags = rd16(e + 8);
    m->method = rd16(e + 10);
    m->crc = rd32(e + 16);
    m->csize = rd32(e + 20);
    m->usize = rd32(e + 24);
    m->lho = rd32(e + 42);
    if (rd16(e + 34) != 0)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: multi-disk zip archives not supported", z->label);
    if (m->flags & 1)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: member '%s' is encrypted", z->label, m->member);
    *pos += CENTRAL_LEN + nlen + xlen + clen;
    return apply_zip64(z, e + CENTRAL_LEN + nlen, xlen, m);
}

static int cmp_member_name(const void *a, const void *b)
{
    return strcmp((*(struct npz_member *const *)a)->name, (*(struct npz_member *const *)b)->name);
}

static int npz_parse(struct ldm_npz *z)
{
    struct zip_dir d = {0};
    int rc = read_end(z, &d);
    if (rc != 0)
        return rc;
    z->m = calloc((size_t)d.count + 1, sizeof *z->m);
    z->by = calloc((size_t)d.count + 1, sizeof *z->by);
    if (!z->m || !z->by)
        return ldm_fail(LDM_ENOMEM, "%s: member table", z->label);
    uint64_t pos = d.off;
    for (size_t i = 0; i < d.count; i++) {
        z->n = i + 1;
        z->by[i] = &z->m[i];
        if ((rc = parse_entry(z, &pos, d.off + d.size, i, &z->m[i])) != 0)
            return rc;
    }
    qsort(z->by, z->n, sizeof *z->by, cmp_member_name);
    for (size_t i = 1; i < z->n; i++)
        if (strcmp(z->by[i - 1]->name, z->by[i]->name) == 0)
            return ldm_fail(LDM_EFORMAT, "%s: two members hold array '%s'", z->label,
                            z->by[i]->name);
    return 0;
}

static int npz_new(struct ldm_npz **out, const char *label)
{
    *out = calloc(1, sizeof **out);
    if (*out && !((*out)->label = strdup(label)))
        ldm_npz_close(out);
    return *out ? 0 : ldm_fail(LDM_ENOMEM, "%s: npz handle", label);
}

int ldm_npz_open_buffer(struct ldm_npz **out, const void *buf, size_t len, const char *label)
{
    int rc = npz_new(out, label ? label : "<buffer>");
    if (rc != 0)
        return rc;
    (*out)->buf = buf;
    (*out)->len = len;
    if ((rc = npz_parse(*out)) != 0)
        ldm_npz_close(out);
    return rc;
}

int ldm_npz_open(struct ldm_npz **out, const char *path)
{
    int rc = npz_new(out, path);
    if (rc == 0 && (rc = ldm_map_file(path, &(*out)->map)) == 0) {
        (*out)->buf = (*out)->map.data;
        (*out)->len = (*out)->map.len;
        rc = npz_parse(*out);
    }
    if (rc != 0)
        ldm_npz_close(out);
    return rc;
}

size_t ldm_npz_count(const struct ldm_npz *z)
{
    return z->n;
}

const char *ldm_npz_name(const struct ldm_npz *z, size_t i)
{
    return i < z->n ? z->m[i].name : NULL;
}

/* ---- reading members ------------------------------------------------------------------- */

/* The member's stored bytes (csize of them), after checking its local header. */
static int member_bytes(const struct ldm_npz *z, const struct npz_member *m, const char *lab,
                        const unsigned char **data)
{
    if (m->lho > z->len || z->len - m->lho < LOCAL_LEN || rd32(z->buf + m->lho) != SIG_LOCAL)
        return ldm_fail(LDM_EFORMAT, "%s: no local header at offset %llu", lab,
                        (unsigned long long)m->lho);
    const unsigned char *h = z->buf + m->lho;
    size_t nlen = rd16(h + 26), xlen = rd16(h + 28);
    uint64_t start = m->lho + LOCAL_LEN + nlen + xlen;
    if (start > z->len || z->len - start < m->csize)
        return ldm_fail(LDM_EFORMAT, "%s: %llu bytes of data run past the end of the archive", lab,
                        (unsigned long long)m->csize);
    if (nlen != strlen(m->member) || memcmp(h + LOCAL_LEN, m->member, nlen) != 0)
        return ldm_fail(LDM_EFORMAT, "%s: the local header names another member", lab);
    *data = z->buf + start;
    return 0;
}

static int check_crc(const unsigned char *p, uint64_t n, uint32_t want, const char *lab)
{
    uint32_t crc = (uint32_t)crc32_z(0, p, (z_size_t)n);
    if (crc != want)
        return ldm_fail(LDM_EFORMAT, "%s: CRC-32 %08x does not match the directory's %08x", lab,
                        crc, want);
    return 0;
}

/* Inflate the raw deflate stream src[0..csize) into exactly dst[0..usize). */
static int inflate_all(const unsigned char *src, uint64_t csize, unsigned char *dst,
                       uint64_t usize, const char *lab)
{
    z_stream s = {0};
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK)
        return ldm_fail(LDM_ENOMEM, "%s: inflateInit2", lab);
    uint64_t in_left = csize, out_left = usize;
    s.next_in = (unsigned char *)src;
    s.next_out = dst;
    int zr = Z_OK;
    while (zr == Z_OK) {
        uInt cin = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        uInt cout = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
        if (s.avail_in == 0)
            s.avail_in = cin, in_left -= cin;
        if (s.avail_out == 0)
            s.avail_out = cout, out_left -= cout;
        zr = inflate(&s, Z_NO_FLUSH);
    }
    int rc = 0;
    if (zr == Z_BUF_ERROR && s.avail_out == 0 && out_left == 0)
        rc = ldm_fail(LDM_EFORMAT, "%s: deflate data does not end within its size, %llu bytes", lab,
                      (unsigned long long)usize);
    else if (zr == Z_BUF_ERROR)
        rc = ldm_fail(LDM_EFORMAT, "%s: deflate data ends early (truncated)", lab);
    else if (zr != Z_STREAM_END)
        rc = ldm_fail(LDM_EFORMAT, "%s: bad deflate data: %s", lab, s.msg ? s.msg : "error");
    else if (s.total_out != usize)
        rc = ldm_fail(LDM_EFORMAT, "%s: inflates to %llu bytes, but its size says %llu", lab,
                      (unsigned long long)s.total_out, (unsigned long long)usize);
    inflateEnd(&s);
    return rc;
}

/* Parse the .npy in b[0..len) and make b (malloc'd, taken over) the array's
 * data, moving the elements to its start. */
static int adopt_npy(unsigned char *b, size_t len, const char *lab, struct ldm_array *out)
{
    struct npy_hdr h = {0};
    int rc = npy_parse(b, len, lab, &h);
    if (rc != 0) {
        free(b);
        return rc;
    }
    memmove(b, b + h.data_off, h.nbytes);
    unsigned char *shrunk = realloc(b, h.nbytes ? h.nbytes : 1);
    out->data = shrunk ? shrunk : b;
    out->dtype = h.dtype;
    out->ndim = h.ndim;
    memcpy(out->shape, h.shape, sizeof out->shape);
    out->nbytes = h.nbytes;
    return 0;
}

static int read_deflated(const struct npz_member *m, const unsigned char *data, const char *lab,
                         struct ldm_array *out)
{
    if (m->usize > m->csize * DEFLATE_RATIO + 4096)
        return ldm_fail(LDM_EFORMAT, "%s: size %llu is impossible from %llu deflated bytes", lab,
                        (unsigned long long)m->usize, (unsigned long long)m->csize);
    unsigned char *b = malloc(m->usize ? (size_t)m->usize : 1);
    if (!b)
        return ldm_fail(LDM_ENOMEM, "%s: %llu bytes to inflate into", lab,
                        (unsigned long long)m->usize);
    int rc = inflate_all(data, m->csize, b, m->usize, lab);
    if (rc == 0)
        rc = check_crc(b, m->usize, m->crc, lab);
    if (rc != 0) {
        free(b);
        return rc;
    }
    return adopt_npy(b, (size_t)m->usize, lab, out);
}

static int read_member(const struct ldm_npz *z, const struct npz_member *m, struct ldm_array *out)
{
    char lab[768];
    snprintf(lab, sizeof lab, "%s: member '%s'", z->label, m->member);
    const unsigned char *data = NULL;
    int rc = member_bytes(z, m, lab, &data);
    if (rc != 0)
        return rc;
    if (m->method == 8)
        return read_deflated(m, data, lab, out);
    if (m->method != 0)
        return ldm_fail(LDM_EUNSUPPORTED,
                        "%s: compression method %u not supported (only stored and deflated)", lab,
                        m->method);
    if (m->csize != m->usize)
        return ldm_fail(LDM_EFORMAT, "%s: stored, but its sizes differ (%llu, %llu)", lab,
                        (unsigned long long)m->csize, (unsigned long long)m->usize);
    rc = check_crc(data, m->csize, m->crc, lab);
    return rc != 0 ? rc : ldm_npy_read_buffer(data, (size_t)m->csize, lab, out);
}

static int not_found(const struct ldm_npz *z, const char *name)
{
    char list[256] = "";
    size_t k = 0;
    for (size_t i = 0; i < z->n && k < sizeof list; i++)
        k += (size_t)snprintf(list + k, sizeof list - k, "%s'%s'", i ? ", " : "", z->m[i].name);
    return ldm_fail(LDM_ENOTFOUND, "%s: no array '%s' (it holds %s)", z->label, name,
                    z->n ? list : "none");
}

int ldm_npz_read(const struct ldm_npz *z, const char *name, struct ldm_array *out)
{
    memset(out, 0, sizeof *out);
    struct npz_member key = {.name = (char *)name}, *kp = &key, **hit = NULL;
    if (z->n > 0)
        hit = bsearch(&kp, z->by, z->n, sizeof *z->by, cmp_member_name);
    return hit ? read_member(z, *hit, out) : not_found(z, name);
}

int ldm_npz_load(const char *path, const char *const *names, struct ldm_array *out, size_t n)
{
    struct ldm_npz *z = NULL;
    for (size_t i = 0; i < n; i++)
        memset(&out[i], 0, sizeof out[i]);
    int rc = ldm_npz_open(&z, path);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = ldm_npz_read(z, names[i], &out[i]);
    for (size_t i = 0; rc != 0 && i < n; i++)
        ldm_array_free(&out[i]);
    ldm_npz_close(&z);
    return rc;
}

/* ---- writing .npz ----------------------------------------------------------------------- */

#define ZIP64_LIMIT 0x7fffffffu /* beyond this, sizes and offsets go to zip64 fields */
#define DOS_DATE_1980 0x21      /* 1980-01-01, as numpy's archives carry */

/* What the central directory needs of one written member. */
struct zw_member {
    char *member; /* "NAME.npy" */
    uint64_t lho, csize, usize;
    uint32_t crc;
    uint16_t method;
};

struct zw {
    const struct ldm_npz_entry *e;
    size_t n;
    int flags;
    struct zw_member *m;
};

/* A little-endian byte builder over a fixed buffer. */
struct bb {
    unsigned char b[128];
    size_t n;
};

static void put16(struct bb *b, uint64_t v)
{
    b->b[b->n++] = (unsigned char)v;
    b->b[b->n++] = (unsigned char)(v >> 8);
}

static void put32(struct bb *b, uint64_t v)
{
    put16(b, v & 0xffff);
    put16(b, v >> 16 & 0xffff);
}

static void put64(struct bb *b, uint64_t v)
{
    put32(b, v & 0xffffffffu);
    put32(b, v >> 32);
}

static int name_flags(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0x800; /* the name is UTF-8 */
    return 0;
}

/* Deflate the .npy (header hdr, then a's data) into a malloc'd *out. */
static int deflate_npy(const unsigned char *hdr, size_t hlen, const struct ldm_array *a,
                       unsigned char **out, uint64_t *clen)
{
    z_stream s = {0};
    if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return ldm_fail(LDM_ENOMEM, "deflateInit2");
    uint64_t cap = deflateBound(&s, (uLong)(hlen + a->nbytes));
    unsigned char *buf = malloc(cap);
    int zr = buf ? Z_OK : Z_MEM_ERROR;
    s.next_out = buf;
    const unsigned char *part[2] = {hdr, a->data};
    uint64_t left[2] = {hlen, a->nbytes};
    for (int i = 0; i < 2 && zr == Z_OK; i++) {
        s.next_in = (unsigned char *)part[i];
        while (zr == Z_OK && (left[i] > 0 || s.avail_in > 0)) {
            uInt c = left[i] > UINT_MAX ? UINT_MAX : (uInt)left[i];
            if (s.avail_in == 0)
                s.avail_in = c, left[i] -= c;
            s.avail_out = cap - s.total_out > UINT_MAX ? UINT_MAX : (uInt)(cap - s.total_out);
            zr = deflate(&s, Z_NO_FLUSH);
        }
    }
    while (zr == Z_OK) {
        s.avail_out = cap - s.total_out > UINT_MAX ? UINT_MAX : (uInt)(cap - s.total_out);
        zr = deflate(&s, Z_FINISH);
    }
    *clen = s.total_out;
    deflateEnd(&s);
    if (zr != Z_STREAM_END) {
        free(buf);
        return ldm_fail(LDM_ENOMEM, "deflate failed (zlib code %d)", zr);
    }
    *out = buf;
    return 0;
}

static int put_bb(struct ldm_writer *w, const struct bb *b)
{
    return ldm_writer_put(w, b->b, b->n);
}

/* The .npy bytes of member i: stored, or deflated into a buffer first. */
static int member_payload(const struct zw *z, size_t i, unsigned char *hdr, size_t *hlen,
                          unsigned char **packed)
{
    const struct ldm_array *a = z->e[i].array;
    struct zw_member *m = &z->m[i];
    *hlen = npy_header(a, hdr);
    m->usize = *hlen + a->nbytes;
    m->crc = (uint32_t)crc32_z(0, hdr, *hlen);
    if (a->nbytes > 0) /* crc32_z of NULL would restart the CRC */
        m->crc = (uint32_t)crc32_z(m->crc, a->data, a->nbytes);
    m->method = z->flags & LDM_NPZ_DEFLATE ? 8 : 0;
    m->csize = m->usize;
    *packed = NULL;
    return m->method == 8 ? deflate_npy(hdr, *hlen, a, packed, &m->csize) : 0;
}

/* Local header (with a zip64 extra field when sizes need it or the flags
 * ask), then the member's bytes. */
static int put_member(struct ldm_writer *w, const struct zw *z, size_t i)
{
    struct zw_member *m = &z->m[i];
    unsigned char hdr[NPY_HDR_MAX], *packed;
    size_t hlen;
    int rc = member_payload(z, i, hdr, &hlen, &packed);
    if (rc != 0)
        return rc;
    m->lho = w->offset;
    int z64 = (z->flags & LDM_NPZ_ZIP64) || m->usize > ZIP64_LIMIT || m->csize > ZIP64_LIMIT;
    struct bb b = {.n = 0};
    put32(&b, SIG_LOCAL);
    put16(&b, z64 ? 45 : 20);
    put16(&b, (uint64_t)name_flags(m->member));
    put16(&b, m->method);
    put16(&b, 0);
    put16(&b, DOS_DATE_1980);
    put32(&b, m->crc);
    put32(&b, z64 ? 0xffffffffu : m->csize);
    put32(&b, z64 ? 0xffffffffu : m->usize);
    put16(&b, strlen(m->member));
    put16(&b, z64 ? 20 : 0);
    struct bb x = {.n = 0};
    if (z64) {
        put16(&x, 1);
        put16(&x, 16);
        put64(&x, m->usize);
        put64(&x, m->csize);
    }
    rc = put_bb(w, &b);
    if (rc == 0)
        rc = ldm_writer_put(w, m->member, strlen(m->member));
    if (rc == 0)
        rc = put_bb(w, &x);
    if (rc == 0 && packed)
        rc = ldm_writer_put(w, packed, (size_t)m->csize);
    if (rc == 0 && !packed && (rc = ldm_writer_put(w, hdr, hlen)) == 0)
        rc = ldm_writer_put(w, z->e[i].array->data, z->e[i].array->nbytes);
    free(packed);
    return rc;
}

static int put_central(struct ldm_writer *w, const struct zw *z, const struct zw_member *m)
{
    int force = (z->flags & LDM_NPZ_ZIP64) != 0;
    int bu = force || m->usize > ZIP64_LIMIT, bc = force || m->csize > ZIP64_LIMIT;
    int bo = force || m->lho > ZIP64_LIMIT, need = bu || bc || bo ? 45 : 20;
    size_t xlen = 8 * (size_t)(bu + bc + bo);
    struct bb b = {.n = 0}, x = {.n = 0};
    put32(&b, SIG_CENTRAL);
    put16(&b, 3 << 8 | need); /* made on Unix */
    put16(&b, need);
    put16(&b, (uint64_t)name_flags(m->member));
    put16(&b, m->method);
    put16(&b, 0);
    put16(&b, DOS_DATE_1980);
    put32(&b, m->crc);
    put32(&b, bc ? 0xffffffffu : m->csize);
    put32(&b, bu ? 0xffffffffu : m->usize);
    put16(&b, strlen(m->member));
    put16(&b, xlen ? 4 + xlen : 0);
    put16(&b, 0);           /* comment */
    put16(&b, 0);           /* disk */
    put16(&b, 0);           /* internal attributes */
    put32(&b, 0100644u << 16); /* a regular file, rw-r--r-- */
    put32(&b, bo ? 0xffffffffu : m->lho);
    if (xlen) {
        put16(&x, 1);
        put16(&x, xlen);
    }
    if (bu)
        put64(&x, m->usize);
    if (bc)
        put64(&x, m->csize);
    if (bo)
        put64(&x, m->lho);
    int rc = put_bb(w, &b);
    if (rc == 0)
        rc = ldm_writer_put(w, m->member, strlen(m->member));
    return rc != 0 ? rc : put_bb(w, &x);
}

static int put_end(struct ldm_writer *w, const struct zw *z, uint64_t cd_off, uint64_t cd_size)
{
    int z64 = (z->flags & LDM_NPZ_ZIP64) || z->n >= 0xffff || cd_off > ZIP64_LIMIT ||
              cd_size > ZIP64_LIMIT;
    struct bb b = {.n = 0};
    if (z64) {
        uint64_t at = w->offset;
        put32(&b, SIG_END64);
        put64(&b, END64_LEN - 12);
        put16(&b, 3 << 8 | 45);
        put16(&b, 45);
        put32(&b, 0);
        put32(&b, 0);
        put64(&b, z->n);
        put64(&b, z->n);
        put64(&b, cd_size);
        put64(&b, cd_off);
        put32(&b, SIG_LOC64);
        put32(&b, 0);
        put64(&b, at);
        put32(&b, 1);
    }
    put32(&b, SIG_END);
    put32(&b, 0); /* this disk, the directory's disk */
    put16(&b, z64 ? 0xffff : z->n);
    put16(&b, z64 ? 0xffff : z->n);
    put32(&b, z64 ? 0xffffffffu : cd_size);
    put32(&b, z64 ? 0xffffffffu : cd_off);
    put16(&b, 0);
    return put_bb(w, &b);
}

static int npz_emit(struct ldm_writer *w, void *ctx)
{
    const struct zw *z = ctx;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < z->n; i++)
        rc = put_member(w, z, i);
    uint64_t cd_off = w->offset;
    for (size_t i = 0; rc == 0 && i < z->n; i++)
        rc = put_central(w, z, &z->m[i]);
    return rc != 0 ? rc : put_end(w, z, cd_off, w->offset - cd_off);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Check the entries and name their members. */
static int zw_prepare(struct zw *z, const struct ldm_npz_entry *e, size_t n, int flags)
{
    *z = (struct zw){.e = e, .n = n, .flags = flags, .m = calloc(n + 1, sizeof *z->m)};
    char **names = calloc(n + 1, sizeof *names);
    int rc = z->m && names ? 0 : ldm_fail(LDM_ENOMEM, "npz member table");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *nm = e[i].name;
        char what[300];
        snprintf(what, sizeof what, "array '%.256s'", nm ? nm : "(null)");
        if (!nm || !*nm || strlen(nm) > 0xffff - 4)
            rc = ldm_fail(LDM_EINVAL, "npz entry %zu: name empty, missing or too long", i);
        else if ((rc = check_array(e[i].array, what)) == 0 &&
                 asprintf(&z->m[i].member, "%s.npy", nm) < 0)
            rc = ldm_fail(LDM_ENOMEM, "npz member name");
        names[i] = rc == 0 ? z->m[i].member : NULL;
    }
    if (rc == 0)
        qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 1; rc == 0 && i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = ldm_fail(LDM_EINVAL, "npz: array '%.*s' given twice",
                          (int)strlen(names[i]) - 4, names[i]);
    free(names);
    return rc;
}

static void zw_free(struct zw *z)
{
    for (size_t i = 0; z->m && i < z->n; i++)
        free(z->m[i].member);
    free(z->m);
}

int ldm_npz_write(const char *path, const struct ldm_npz_entry *e, size_t n, int flags)
{
    struct zw z;
    int rc = zw_prepare(&z, e, n, flags);
    if (rc == 0)
        rc = ldm_write_atomic(path, npz_emit, &z);
    zw_free(&z);
    return rc;
}

int ldm_npz_encode(const struct ldm_npz_entry *e, size_t n, int flags, void **out, size_t *len)
{
    struct zw z;
    *out = NULL;
    *len = 0;
    int rc = zw_prepare(&z, e, n, flags);
    if (rc == 0)
        rc = ldm_write_mem(npz_emit, &z, "npz image", out, len);
    zw_free(&z);
    return rc;
}

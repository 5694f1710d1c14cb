/* test_npy.c — .npy and .npz: round trips against numpy's bytes, every
 * malformed header or archive rejected with a detail naming the file, and
 * the golden FID statistics. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <zlib.h>

#include "fsutil.h"
#include "npy.h"
#include "testutil.h"

/* ---- fixtures ------------------------------------------------------------------- */

/* A .npy image: magic, version major.0, the length of dict, dict, then dlen
 * bytes of data (dlen doubles' worth of 0x00 .. patterns). */
static unsigned char *mk_npy(int major, const char *dict, size_t dlen, size_t *len)
{
    size_t n = strlen(dict), pre = major == 1 ? 10 : 12;
    *len = pre + n + dlen;
    unsigned char *b = calloc(1, *len + 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    for (size_t i = 8; i < pre; i++)
        b[i] = (unsigned char)(n >> (8 * (i - 8)));
    memcpy(b + pre, dict, n);
    for (size_t i = 0; i < dlen; i++)
        b[pre + n + i] = (unsigned char)i;
    return b;
}

static void *slurp(const char *path, size_t *len)
{
    struct ldm_map m;
    ck_ok(ldm_map_file(path, &m));
    void *p = malloc(m.len + 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p, m.data, m.len);
    *len = m.len;
    ldm_unmap(&m);
    return p;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void set16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void set32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The first central directory entry of an archive without a comment. */
static unsigned char *first_central(unsigned char *zip, size_t len)
{
    uint32_t off = get32(zip + len - 22 + 16);
    if (off == 0xffffffffu) /* in the zip64 end record the locator points to */
        off = get32(zip + get32(zip + len - 22 - 20 + 8) + 48);
    unsigned char *e = zip + off;
    ck_assert_uint_eq(get32(e), 0x02014b50u);
    return e;
}

static void assert_same(const struct ldm_array *a, const struct ldm_array *b)
{
    ck_assert_int_eq(a->dtype, b->dtype);
    ck_assert_int_eq(a->ndim, b->ndim);
    for (int i = 0; i < a->ndim; i++)
        ck_assert_int_eq(a->shape[i], b->shape[i]);
    ck_assert_uint_eq(a->nbytes, b->nbytes);
    if (a->nbytes)
        ck_assert_int_eq(memcmp(a->data, b->data, a->nbytes), 0);
}

/* A small F32 [2,3,4] and an F64 scalar. */
static float f24[24];
static double d1 = -2.75;
static struct ldm_array arr_a = {.dtype = LDM_DT_F32, .ndim = 3, .shape = {2, 3, 4}, .data = f24,
                                 .nbytes = sizeof f24};
static struct ldm_array arr_s = {.dtype = LDM_DT_F64, .ndim = 0, .data = &d1, .nbytes = 8};
static struct ldm_array arr_z = {.dtype = LDM_DT_F64, .ndim = 2, .shape = {0, 7}};

static void fill(void)
{
    for (int i = 0; i < 24; i++)
        f24[i] = (float)i * 0.5f - 3;
}

/* Archives written by numpy 1.24 and Python 3.11's zipfile. */
/* np.savez_compressed(f, x=np.arange(6, dtype='<f4').reshape(2,3), y=np.array([0.5, -1.25])) */
static const unsigned char numpy_compressed[] = {
  0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
  0x21, 0x00, 0x4f, 0xe9, 0x00, 0x2a, 0x55, 0x00, 0x00, 0x00, 0x98, 0x00,
  0x00, 0x00, 0x05, 0x00, 0x14, 0x00, 0x78, 0x2e, 0x6e, 0x70, 0x79, 0x01,
  0x00, 0x10, 0x00, 0x98, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x55,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9b, 0xec, 0x17, 0xea, 0x1b,
  0x10, 0xc9, 0xc8, 0x50, 0xc6, 0x50, 0xad, 0x9e, 0x92, 0x5a, 0x9c, 0x5c,
  0xa4, 0x6e, 0xa5, 0xa0, 0x6e, 0x93, 0x66, 0xa2, 0xae, 0xa3, 0xa0, 0x9e,
  0x96, 0x5f, 0x54, 0x52, 0x94, 0x98, 0x17, 0x9f, 0x5f, 0x94, 0x92, 0x0a,
  0x12, 0x77, 0x4b, 0xcc, 0x29, 0x4e, 0x05, 0x8a, 0x17, 0x67, 0x24, 0x16,
  0xa4, 0x02, 0xf9, 0x1a, 0x46, 0x3a, 0x0a, 0xc6, 0x9a, 0x3a, 0x0a, 0xb5,
  0x0a, 0x64, 0x03, 0x2e, 0x06, 0x30, 0x68, 0xb0, 0x07, 0x12, 0x0e, 0x40,
  0x04, 0xc4, 0x0d, 0x40, 0xbc, 0xc0, 0x01, 0x00, 0x50, 0x4b, 0x03, 0x04,
  0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00, 0xb8, 0x11,
  0xd6, 0xc5, 0x4d, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x05, 0x00,
  0x14, 0x00, 0x79, 0x2e, 0x6e, 0x70, 0x79, 0x01, 0x00, 0x10, 0x00, 0x90,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4d, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x9b, 0xec, 0x17, 0xea, 0x1b, 0x10, 0xc9, 0xc8, 0x50,
  0xc6, 0x50, 0xad, 0x9e, 0x92, 0x5a, 0x9c, 0x5c, 0xa4, 0x6e, 0xa5, 0xa0,
  0x6e, 0x93, 0x66, 0xa1, 0xae, 0xa3, 0xa0, 0x9e, 0x96, 0x5f, 0x54, 0x52,
  0x94, 0x98, 0x17, 0x9f, 0x5f, 0x94, 0x92, 0x0a, 0x12, 0x77, 0x4b, 0xcc,
  0x29, 0x4e, 0x05, 0x8a, 0x17, 0x67, 0x24, 0x16, 0xa4, 0x02, 0xf9, 0x1a,
  0x46, 0x3a, 0x9a, 0x3a, 0x0a, 0xb5, 0x0a, 0x14, 0x00, 0x2e, 0x06, 0x30,
  0x78, 0x60, 0x0f, 0xa1, 0xbf, 0xec, 0x07, 0x00, 0x50, 0x4b, 0x01, 0x02,
  0x14, 0x03, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00,
  0x4f, 0xe9, 0x00, 0x2a, 0x55, 0x00, 0x00, 0x00, 0x98, 0x00, 0x00, 0x00,
  0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x78, 0x2e, 0x6e, 0x70, 0x79, 0x50,
  0x4b, 0x01, 0x02, 0x14, 0x03, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
  0x00, 0x21, 0x00, 0xb8, 0x11, 0xd6, 0xc5, 0x4d, 0x00, 0x00, 0x00, 0x90,
  0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x80, 0x01, 0x8c, 0x00, 0x00, 0x00, 0x79, 0x2e, 0x6e,
  0x70, 0x79, 0x50, 0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
  0x02, 0x00, 0x66, 0x00, 0x00, 0x00, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00
};

/* np.save of [1.0, 2.0, 3.0] into member v.npy of a zipfile written to an unseekable stream
 * (deflated, sizes in a data descriptor after the data: flag bit 3) */
static const unsigned char python_streamed[] = {
  0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00,
  0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x76, 0x2e, 0x6e, 0x70, 0x79, 0x9b,
  0xec, 0x17, 0xea, 0x1b, 0x10, 0xc9, 0xc8, 0x50, 0xc6, 0x50, 0xad, 0x9e,
  0x92, 0x5a, 0x9c, 0x5c, 0xa4, 0x6e, 0xa5, 0xa0, 0x6e, 0x93, 0x66, 0xa1,
  0xae, 0xa3, 0xa0, 0x9e, 0x96, 0x5f, 0x54, 0x52, 0x94, 0x98, 0x17, 0x9f,
  0x5f, 0x94, 0x92, 0x0a, 0x12, 0x77, 0x4b, 0xcc, 0x29, 0x4e, 0x05, 0x8a,
  0x17, 0x67, 0x24, 0x16, 0xa4, 0x02, 0xf9, 0x1a, 0xc6, 0x3a, 0x9a, 0x3a,
  0x0a, 0xb5, 0x0a, 0x14, 0x00, 0x2e, 0x06, 0x30, 0xf8, 0x60, 0x0f, 0xa1,
  0x19, 0x1c, 0x20, 0x14, 0x87, 0x03, 0x00, 0x50, 0x4b, 0x07, 0x08, 0x2a,
  0xc1, 0x1d, 0x44, 0x50, 0x00, 0x00, 0x00, 0x98, 0x00, 0x00, 0x00, 0x50,
  0x4b, 0x01, 0x02, 0x14, 0x03, 0x14, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00,
  0x00, 0x21, 0x00, 0x2a, 0xc1, 0x1d, 0x44, 0x50, 0x00, 0x00, 0x00, 0x98,
  0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x76, 0x2e, 0x6e,
  0x70, 0x79, 0x50, 0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
  0x01, 0x00, 0x33, 0x00, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, 0x00, 0x00
};

/* ---- arrays and .npy ------------------------------------------------------------ */

START_TEST(array_init_count_free)
{
    struct ldm_array a;
    ck_ok(ldm_array_init(&a, LDM_DT_F64, 2, (int64_t[]){3, 5}));
    ck_assert_uint_eq(ldm_array_count(&a), 15);
    ck_assert_uint_eq(a.nbytes, 120);
    ck_assert_double_eq(((double *)a.data)[14], 0);
    ldm_array_free(&a);
    ck_assert_ptr_null(a.data);
    ldm_array_free(&a);
    ck_ok(ldm_array_init(&a, LDM_DT_F32, 0, NULL));
    ck_assert_uint_eq(ldm_array_count(&a), 1);
    ldm_array_free(&a);
    ck_fails_with(ldm_array_init(&a, LDM_DT_I32, 1, (int64_t[]){2}), LDM_EINVAL, "F32/F64");
    ck_fails_with(ldm_array_init(&a, LDM_DT_F32, 1, (int64_t[]){-2}), LDM_EINVAL, "F32/F64");
    ck_fails_with(ldm_array_init(&a, LDM_DT_F32, 9, (int64_t[9]){0}), LDM_EINVAL, "ndim 9");
    ck_assert_ptr_null(a.data);
}
END_TEST

START_TEST(npy_round_trip)
{
    fill();
    char *dir = tu_tmpdir(), path[4096];
    const struct ldm_array *in[] = {&arr_a, &arr_s, &arr_z};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/a%d.npy", dir, i);
        ck_ok(ldm_npy_write(path, in[i]));
        struct ldm_array out;
        ck_ok(ldm_npy_read(path, &out));
        assert_same(in[i], &out);
        ldm_array_free(&out);
        size_t flen, mlen;
        void *f = slurp(path, &flen), *m;
        ck_ok(ldm_npy_encode(in[i], &m, &mlen));
        ck_assert_uint_eq(flen, mlen);
        ck_assert_int_eq(memcmp(f, m, flen), 0);
        ck_assert_uint_eq((flen - in[i]->nbytes) % 64, 0); /* data 64-aligned */
        free(f);
        free(m);
    }
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* The exact bytes numpy 1.24 writes for these arrays (np.save). */
START_TEST(npy_header_matches_numpy)
{
    fill();
    void *m;
    size_t len;
    ck_ok(ldm_npy_encode(&arr_a, &m, &len));
    static const char want[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': "
                               "False, 'shape': (2, 3, 4), }";
    ck_assert_uint_eq(len, 128 + 96);
    ck_assert_int_eq(memcmp(m, want, sizeof want - 1), 0);
    const unsigned char *b = m;
    for (size_t i = sizeof want - 1; i < 127; i++)
        ck_assert_int_eq(b[i], ' ');
    ck_assert_int_eq(b[127], '\n');
    ck_assert_int_eq(memcmp(b + 128, f24, 96), 0);
    free(m);
    ck_ok(ldm_npy_encode(&arr_s, &m, &len));
    static const char want0[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f8', 'fortran_order': "
                                "False, 'shape': (), }";
    ck_assert_uint_eq(len, 128 + 8);
    ck_assert_int_eq(memcmp(m, want0, sizeof want0 - 1), 0);
    b = m;
    for (size_t i = sizeof want0 - 1; i < 127; i++) /* no growth room without an axis */
        ck_assert_int_eq(b[i], ' ');
    free(m);
}
END_TEST

START_TEST(npy_reads_all_versions_and_spellings)
{
    static const struct {
        int major;
        const char *dict;
        size_t dlen;
        int dtype, ndim;
        int64_t d0;
    } ok[] = {
        {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }  \n", 24, LDM_DT_F64, 1, 3},
        {2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n", 16, LDM_DT_F32, 2, 2},
        {3, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", 4, LDM_DT_F32, 1, 1},
        {1, "{\"shape\": (2L, 1L), \"fortran_order\": False, \"descr\": \"<f8\"}", 16, LDM_DT_F64, 2, 2},
        {1, "{'descr':'<f8','fortran_order':True,'shape':(4,)}", 32, LDM_DT_F64, 1, 4},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': ( 0 , 5 , ), }", 0, LDM_DT_F32, 2, 0},
        {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 8, LDM_DT_F64, 0, 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t len;
        unsigned char *b = mk_npy(ok[i].major, ok[i].dict, ok[i].dlen, &len);
        struct ldm_array a;
        ldm_err_clear();
        int rc = ldm_npy_read_buffer(b, len, "x.npy", &a);
        ck_assert_msg(rc == 0, "%s: %s", ok[i].dict, ldm_errmsg());
        ck_assert_int_eq(a.dtype, ok[i].dtype);
        ck_assert_int_eq(a.ndim, ok[i].ndim);
        if (a.ndim)
            ck_assert_int_eq(a.shape[0], ok[i].d0);
        ck_assert_uint_eq(a.nbytes, ok[i].dlen);
        if (a.nbytes)
            ck_assert_int_eq(memcmp(a.data, b + len - ok[i].dlen, a.nbytes), 0);
        ldm_array_free(&a);
        free(b);
    }
}
END_TEST

#define D(descr, shape) "{'descr': '" descr "', 'fortran_order': False, 'shape': " shape ", }"

static const struct bad_npy {
    int major;
    const char *dict;
    size_t dlen;
    int code;
    const char *needle;
} bad_npy[] = {
    {1, D(">f8", "(2,)"), 16, LDM_EUNSUPPORTED, "x.npy: big-endian dtype '>f8' not supported"},
    {1, D(">f4", "(2,)"), 8, LDM_EUNSUPPORTED, "big-endian"},
    {1, D("<i8", "(2,)"), 16, LDM_EUNSUPPORTED, "x.npy: dtype '<i8' not supported (only '<f4' and '<f8')"},
    {1, D("|b1", "(2,)"), 2, LDM_EUNSUPPORTED, "dtype '|b1'"},
    {1, D("<f2", "(2,)"), 4, LDM_EUNSUPPORTED, "dtype '<f2'"},
    {1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, LDM_EUNSUPPORTED,
     "structured dtype"},
    {1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", 32, LDM_EUNSUPPORTED,
     "x.npy: fortran_order True not supported"},
    {1, D("<f8", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 8, LDM_EUNSUPPORTED, "more than 8 dimensions"},
    {4, D("<f8", "(2,)"), 16, LDM_EUNSUPPORTED, "x.npy: .npy format version 4.0 not supported"},
    {1, "{'descr': '<f8', 'shape': (2,), }", 16, LDM_EFORMAT, "x.npy: .npy header lacks 'fortran_order'"},
    {1, "{'fortran_order': False, 'shape': (2,), }", 16, LDM_EFORMAT, "lacks 'descr'"},
    {1, "{'descr': '<f8', 'fortran_order': False}", 16, LDM_EFORMAT, "lacks 'shape'"},
    {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}", 16, LDM_EFORMAT,
     "unexpected key 'x'"},
    {1, "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", 16, LDM_EFORMAT,
     "repeated key 'descr'"},
    {1, D("<f8", "(-2,)"), 16, LDM_EFORMAT, "negative dimension"},
    {1, D("<f8", "(2)"), 16, LDM_EFORMAT, "is not a tuple"},
    {1, D("<f8", "[2]"), 16, LDM_EFORMAT, "shape is not a tuple"},
    {1, D("<f8", "(2 3)"), 48, LDM_EFORMAT, "expected ',' or ')'"},
    {1, D("<f8", "(2.5,)"), 16, LDM_EFORMAT, "expected ',' or ')'"},
    {1, D("<f8", "(99999999999999999999,)"), 16, LDM_EFORMAT, "dimension too large"},
    {1, D("<f8", "(4294967296, 4294967296)"), 16, LDM_EFORMAT, "overflows"},
    {1, D("<f8", "(3,)"), 16, LDM_EFORMAT, "x.npy: 16 bytes of data, but shape (3,) of '<f8' needs 24"},
    {1, D("<f4", "(2, 2)"), 20, LDM_EFORMAT, "20 bytes of data, but shape (2, 2) of '<f4' needs 16"},
    {1, "{'descr': '<f8', 'fortran_order': Maybe, 'shape': (2,)}", 16, LDM_EFORMAT,
     "fortran_order is not True or False"},
    {1, "{'descr': '<f8, 'fortran_order': False, 'shape': (2,)}", 16, LDM_EFORMAT, "malformed .npy header"},
    {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} x", 16, LDM_EFORMAT,
     "unexpected bytes after the dict"},
    {1, "['descr']", 0, LDM_EFORMAT, "expected '{'"},
    {1, "{'de\\x73cr': '<f8'}", 0, LDM_EFORMAT, "escape"},
    {1, "{'descr': '<f8' 'fortran_order': False}", 0, LDM_EFORMAT, "expected ',' or '}'"},
    {1, "{'descr' '<f8'}", 0, LDM_EFORMAT, "expected ':'"},
    {1, "", 0, LDM_EFORMAT, "expected '{'"},
};

START_TEST(npy_rejects)
{
    const struct bad_npy *c = &bad_npy[_i];
    size_t len;
    unsigned char *b = mk_npy(c->major, c->dict, c->dlen, &len);
    struct ldm_array a = {.ndim = 5};
    ldm_err_clear();
    int rc = ldm_npy_read_buffer(b, len, "x.npy", &a);
    ck_assert_msg(rc == c->code, "%s: returned %d, expected %d; detail: %s", c->dict, rc, c->code,
                  ldm_errmsg());
    ck_assert_msg(strstr(ldm_errmsg(), c->needle), "%s: detail \"%s\" lacks \"%s\"", c->dict,
                  ldm_errmsg(), c->needle);
    ck_assert_ptr_null(a.data);
    ck_assert_int_eq(a.ndim, 0);
    free(b);
}
END_TEST

START_TEST(npy_rejects_preamble)
{
    struct ldm_array a;
    size_t len;
    ck_fails_with(ldm_npy_read_buffer("\x93NUMP", 5, "x.npy", &a), LDM_EFORMAT,
                  "x.npy: not a .npy file (too short)");
    ck_fails_with(ldm_npy_read_buffer("PK\x03\x04xxxxxxxxxxxx", 16, NULL, &a), LDM_EFORMAT,
                  "<buffer>: not a .npy file (no \\x93NUMPY magic)");
    unsigned char *b = mk_npy(1, D("<f8", "(1,)"), 8, &len);
    b[7] = 1; /* version 1.1 */
    ck_fails_with(ldm_npy_read_buffer(b, len, "x.npy", &a), LDM_EUNSUPPORTED, "version 1.1");
    b[7] = 0;
    b[8] = 0xff; /* header length past the end */
    ck_fails_with(ldm_npy_read_buffer(b, len, "x.npy", &a), LDM_EFORMAT,
                  "x.npy: .npy header length");
    ck_fails_with(ldm_npy_read_buffer(b, 11, "x.npy", &a), LDM_EFORMAT, "exceeds the 1 bytes");
    free(b);
    b = mk_npy(2, D("<f8", "(1,)"), 8, &len);
    ck_fails_with(ldm_npy_read_buffer(b, 11, "x.npy", &a), LDM_EFORMAT, "too short");
    b[11] = 0x80; /* a 2 GiB header */
    ck_fails_with(ldm_npy_read_buffer(b, len, "x.npy", &a), LDM_EFORMAT, "header length");
    free(b);
}
END_TEST

START_TEST(npy_file_errors_name_the_file)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/none.npy", dir);
    struct ldm_array a;
    ck_fails_with(ldm_npy_read(path, &a), LDM_ENOTFOUND, "none.npy");
    snprintf(path, sizeof path, "%s/empty.npy", dir);
    tu_write_file(path, "", 0);
    ck_fails_with(ldm_npy_read(path, &a), LDM_EFORMAT, "empty.npy: not a .npy file");
    snprintf(path, sizeof path, "%s/big.npy", dir);
    size_t len;
    unsigned char *b = mk_npy(1, D(">f8", "(1,)"), 8, &len);
    tu_write_file(path, b, len);
    ck_fails_with(ldm_npy_read(path, &a), LDM_EUNSUPPORTED, "big.npy: big-endian");
    free(b);
    struct ldm_array bad = arr_a;
    bad.nbytes = 4;
    ck_fails_with(ldm_npy_write(path, &bad), LDM_EINVAL, "nbytes 4 but the shape needs 96");
    bad = arr_a;
    bad.dtype = LDM_DT_I32;
    ck_fails_with(ldm_npy_write(path, &bad), LDM_EINVAL, "not an F32/F64 array");
    bad = arr_a;
    bad.data = NULL;
    ck_fails_with(ldm_npy_write(path, &bad), LDM_EINVAL, "no data");
    snprintf(path, sizeof path, "%s/nodir/a.npy", dir);
    ck_fails_with(ldm_npy_write(path, &arr_a), LDM_ENOTFOUND, "a.npy");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- .npz ---------------------------------------------------------------------- */

START_TEST(npz_round_trip_every_flavour)
{
    fill();
    char *dir = tu_tmpdir(), path[4096];
    struct ldm_npz_entry e[3] = {{"a", &arr_a}, {"scalar", &arr_s}, {"empty", &arr_z}};
    int flavours[] = {0, LDM_NPZ_DEFLATE, LDM_NPZ_ZIP64, LDM_NPZ_DEFLATE | LDM_NPZ_ZIP64};
    for (int f = 0; f < 4; f++) {
        snprintf(path, sizeof path, "%s/s%d.npz", dir, f);
        ck_ok(ldm_npz_write(path, e, 3, flavours[f]));
        struct ldm_npz *z = NULL;
        ck_ok(ldm_npz_open(&z, path));
        ck_assert_uint_eq(ldm_npz_count(z), 3);
        for (size_t i = 0; i < 3; i++) {
            ck_assert_str_eq(ldm_npz_name(z, i), e[i].name);
            struct ldm_array out;
            ck_ok(ldm_npz_read(z, e[i].name, &out));
            assert_same(e[i].array, &out);
            ldm_array_free(&out);
        }
        ck_assert_ptr_null(ldm_npz_name(z, 3));
        ldm_npz_close(&z);
        ck_assert_ptr_null(z);
        size_t flen, mlen;
        void *fb = slurp(path, &flen), *mb;
        ck_ok(ldm_npz_encode(e, 3, flavours[f], &mb, &mlen));
        ck_assert_uint_eq(flen, mlen);
        ck_assert_int_eq(memcmp(fb, mb, flen), 0);
        free(fb);
        free(mb);
    }
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Deflate really compresses, and a large array survives it. */
START_TEST(npz_deflate_large)
{
    struct ldm_array big, back;
    ck_ok(ldm_array_init(&big, LDM_DT_F64, 2, (int64_t[]){300, 300}));
    double *d = big.data;
    for (size_t i = 0; i < 90000; i++)
        d[i] = (double)(i % 17);
    struct ldm_npz_entry e = {"sigma", &big};
    void *img;
    size_t len;
    ck_ok(ldm_npz_encode(&e, 1, LDM_NPZ_DEFLATE, &img, &len));
    ck_assert_uint_lt(len, big.nbytes / 20);
    struct ldm_npz *z = NULL;
    ck_ok(ldm_npz_open_buffer(&z, img, len, "big.npz"));
    ck_ok(ldm_npz_read(z, "sigma", &back));
    assert_same(&big, &back);
    ldm_array_free(&back);
    ldm_npz_close(&z);
    free(img);
    ldm_array_free(&big);
}
END_TEST

START_TEST(npz_reads_other_writers)
{
    struct ldm_npz *z = NULL;
    struct ldm_array a;
    ck_ok(ldm_npz_open_buffer(&z, numpy_compressed, sizeof numpy_compressed, "c.npz"));
    ck_assert_uint_eq(ldm_npz_count(z), 2);
    ck_ok(ldm_npz_read(z, "x", &a));
    ck_assert_int_eq(a.dtype, LDM_DT_F32);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(a.shape[1], 3);
    ck_assert_float_eq(((float *)a.data)[5], 5.0f);
    ldm_array_free(&a);
    ck_ok(ldm_npz_read(z, "y", &a));
    ck_assert_double_eq(((double *)a.data)[1], -1.25);
    ldm_array_free(&a);
    ldm_npz_close(&z);
    ck_ok(ldm_npz_open_buffer(&z, python_streamed, sizeof python_streamed, "s.npz"));
    ck_ok(ldm_npz_read(z, "v", &a));
    ck_assert_int_eq(a.shape[0], 3);
    ck_assert_double_eq(((double *)a.data)[2], 3.0);
    ldm_array_free(&a);
    ldm_npz_close(&z);
}
END_TEST

START_TEST(npz_missing_member)
{
    fill();
    struct ldm_npz_entry e[2] = {{"mu", &arr_s}, {"x", &arr_a}};
    void *img;
    size_t len;
    ck_ok(ldm_npz_encode(e, 2, 0, &img, &len));
    struct ldm_npz *z = NULL;
    ck_ok(ldm_npz_open_buffer(&z, img, len, "stats.npz"));
    struct ldm_array a = {.ndim = 3};
    ck_fails_with(ldm_npz_read(z, "sigma", &a), LDM_ENOTFOUND,
                  "stats.npz: no array 'sigma' (it holds 'mu', 'x')");
    ck_assert_int_eq(a.ndim, 0);
    ck_fails_with(ldm_npz_read(z, "mu.npy", &a), LDM_ENOTFOUND, "'mu.npy'");
    ldm_npz_close(&z);
    free(img);
    ck_ok(ldm_npz_encode(NULL, 0, 0, &img, &len));
    ck_assert_uint_eq(len, 22);
    ck_ok(ldm_npz_open_buffer(&z, img, len, "empty.npz"));
    ck_assert_uint_eq(ldm_npz_count(z), 0);
    ck_fails_with(ldm_npz_read(z, "mu", &a), LDM_ENOTFOUND, "(it holds none)");
    ldm_npz_close(&z);
    free(img);
}
END_TEST

/* Encode two stored or deflated members, apply `patch`, and expect open or
 * read of "a" to fail with code and needle. */
static void corrupt(int flags, void (*patch)(unsigned char *, size_t *), int at_open, int code,
                    const char *needle)
{
    fill();
    struct ldm_npz_entry e[2] = {{"a", &arr_a}, {"b", &arr_s}};
    void *img;
    size_t len;
    ck_ok(ldm_npz_encode(e, 2, flags, &img, &len));
    patch(img, &len);
    struct ldm_npz *z = NULL;
    struct ldm_array a;
    ldm_err_clear();
    int rc = ldm_npz_open_buffer(&z, img, len, "t.npz");
    if (!at_open) {
        ck_assert_msg(rc == 0, "open: %s", ldm_errmsg());
        rc = ldm_npz_read(z, "a", &a);
    }
    ck_assert_msg(rc == code, "returned %d, expected %d: %s", rc, code, ldm_errmsg());
    ck_assert_msg(strstr(ldm_errmsg(), needle), "detail \"%s\" lacks \"%s\"", ldm_errmsg(), needle);
    ck_assert(at_open ? z == NULL : a.data == NULL);
    ldm_npz_close(&z);
    free(img);
}

static void flip_data(unsigned char *b, size_t *len)
{
    (void)len;
    b[30 + 5 + 128 + 7] ^= 0x10; /* member a: header 30, name "a.npy", .npy header 128 */
}

static void flip_crc(unsigned char *b, size_t *len)
{
    first_central(b, *len)[16] ^= 1;
}

static void cut_tail(unsigned char *b, size_t *len)
{
    (void)b;
    *len -= 10;
}

static void cut_front(unsigned char *b, size_t *len)
{
    size_t cut = 200;
    memmove(b, b + cut, *len - cut);
    *len -= cut; /* the directory's offsets point past the end now */
}

static void cut_everything(unsigned char *b, size_t *len)
{
    (void)b;
    *len = 21;
}

static void bad_method(unsigned char *b, size_t *len)
{
    set16(first_central(b, *len) + 10, 14);
}

static void encrypted(unsigned char *b, size_t *len)
{
    first_central(b, *len)[8] |= 1;
}

static void bad_offset(unsigned char *b, size_t *len)
{
    set32(first_central(b, *len) + 42, 7);
}

static void grow_usize(unsigned char *b, size_t *len)
{
    unsigned char *e = first_central(b, *len);
    set32(e + 24, get32(e + 24) + 1);
}

static void shrink_usize(unsigned char *b, size_t *len)
{
    unsigned char *e = first_central(b, *len);
    set32(e + 24, get32(e + 24) - 1);
}

static void shrink_csize(unsigned char *b, size_t *len)
{
    unsigned char *e = first_central(b, *len);
    set32(e + 20, get32(e + 20) - 10);
}

static void bomb_usize(unsigned char *b, size_t *len)
{
    set32(first_central(b, *len) + 24, 0xfffffff0u);
}

static void rename_local(unsigned char *b, size_t *len)
{
    (void)len;
    b[30] = 'q';
}

static void same_names(unsigned char *b, size_t *len)
{
    unsigned char *e = first_central(b, *len);
    e[46] = 'b'; /* "a.npy" -> "b.npy" beside the real "b.npy" */
}

static void nul_name(unsigned char *b, size_t *len)
{
    first_central(b, *len)[46] = 0;
}

static void few_entries(unsigned char *b, size_t *len)
{
    set16(b + *len - 22 + 8, 3);
    set16(b + *len - 22 + 10, 3);
}

static void bad_second_entry(unsigned char *b, size_t *len)
{
    first_central(b, *len)[46 + 5] = 'Q';
}

static void many_entries(unsigned char *b, size_t *len)
{
    set16(b + *len - 22 + 8, 60000);
    set16(b + *len - 22 + 10, 60000);
}

static void long_extra(unsigned char *b, size_t *len)
{
    set16(first_central(b, *len) + 30, 60000);
}

static void bad_extra(unsigned char *b, size_t *len)
{
    unsigned char *e = first_central(b, *len);
    set16(e + 46 + 5 + 2, 40); /* the zip64 field claims more than its entry */
}

static void short_zip64(unsigned char *b, size_t *len)
{
    unsigned char *e = first_central(b, *len);
    set16(e + 46 + 5 + 2, 8); /* holds usize only; csize and offset missing */
}

static void multi_disk(unsigned char *b, size_t *len)
{
    set16(b + *len - 22 + 4, 1);
}

static void bad_end64(unsigned char *b, size_t *len)
{
    unsigned char *loc = b + *len - 22 - 20;
    ck_assert_uint_eq(get32(loc), 0x07064b50u);
    set32(loc + 8, get32(loc + 8) + 1);
}

static void comment(unsigned char *b, size_t *len)
{
    /* An archive comment is allowed; it must reach the end exactly. */
    memcpy(b + *len, "hello", 5);
    set16(b + *len - 2, 5);
    *len += 5;
}

START_TEST(npz_corruptions)
{
    corrupt(0, flip_data, 0, LDM_EFORMAT, "t.npz: member 'a.npy': CRC-32");
    corrupt(0, flip_crc, 0, LDM_EFORMAT, "does not match the directory's");
    corrupt(LDM_NPZ_DEFLATE, flip_crc, 0, LDM_EFORMAT, "t.npz: member 'a.npy': CRC-32");
    corrupt(0, cut_tail, 1, LDM_EFORMAT, "t.npz: no end of central directory record");
    corrupt(0, cut_front, 1, LDM_EFORMAT, "t.npz: central directory");
    corrupt(0, cut_everything, 1, LDM_EFORMAT, "t.npz: 21 bytes, too short for a zip archive");
    corrupt(0, bad_method, 0, LDM_EUNSUPPORTED, "compression method 14 not supported");
    corrupt(0, encrypted, 1, LDM_EUNSUPPORTED, "t.npz: member 'a.npy' is encrypted");
    corrupt(0, bad_offset, 0, LDM_EFORMAT, "t.npz: member 'a.npy': no local header at offset 7");
    corrupt(0, grow_usize, 0, LDM_EFORMAT, "stored, but its sizes differ");
    corrupt(LDM_NPZ_DEFLATE, grow_usize, 0, LDM_EFORMAT, "inflates to 224 bytes, but its size says 225");
    corrupt(LDM_NPZ_DEFLATE, shrink_csize, 0, LDM_EFORMAT, "deflate data ends early");
    corrupt(LDM_NPZ_DEFLATE, shrink_usize, 0, LDM_EFORMAT, "does not end within its size");
    corrupt(LDM_NPZ_DEFLATE, bomb_usize, 0, LDM_EFORMAT, "is impossible from");
    corrupt(0, rename_local, 0, LDM_EFORMAT, "the local header names another member");
    corrupt(0, same_names, 1, LDM_EFORMAT, "t.npz: two members hold array 'b'");
    corrupt(0, nul_name, 1, LDM_EFORMAT, "NUL byte");
    corrupt(0, few_entries, 1, LDM_EFORMAT, "t.npz: 3 members cannot fit in a 102-byte central");
    corrupt(0, bad_second_entry, 1, LDM_EFORMAT, "t.npz: central directory entry 1 missing");
    corrupt(0, many_entries, 1, LDM_EFORMAT, "60000 members cannot fit");
    corrupt(0, long_extra, 1, LDM_EFORMAT, "runs past the directory");
    corrupt(LDM_NPZ_ZIP64, bad_extra, 1, LDM_EFORMAT, "extra field runs past its entry");
    corrupt(LDM_NPZ_ZIP64, short_zip64, 1, LDM_EFORMAT, "zip64 extra field too short");
    corrupt(0, multi_disk, 1, LDM_EUNSUPPORTED, "multi-disk");
    corrupt(LDM_NPZ_ZIP64, bad_end64, 1, LDM_EFORMAT, "zip64 end record missing");
}
END_TEST

START_TEST(npz_comment_and_bad_member)
{
    fill();
    struct ldm_npz_entry e[2] = {{"a", &arr_a}, {"b", &arr_s}};
    void *img;
    size_t len;
    ck_ok(ldm_npz_encode(e, 2, 0, &img, &len));
    img = realloc(img, len + 5);
    comment(img, &len);
    struct ldm_npz *z = NULL;
    struct ldm_array a;
    ck_ok(ldm_npz_open_buffer(&z, img, len, "t.npz"));
    ck_ok(ldm_npz_read(z, "b", &a));
    ck_assert_double_eq(*(double *)a.data, d1);
    ldm_array_free(&a);
    ldm_npz_close(&z);
    /* A member that is no good .npy fails alone. */
    unsigned char *b = img;
    b[30 + 5 + 12] = 'X'; /* inside a.npy's dict: 'descr' -> 'Xescr' */
    uint32_t crc = (uint32_t)crc32(0, b + 35, 128 + 96);
    set32(b + 14, crc);
    set32(first_central(b, len - 5) + 16, crc); /* before the comment */
    ck_ok(ldm_npz_open_buffer(&z, img, len, "t.npz"));
    ck_fails_with(ldm_npz_read(z, "a", &a), LDM_EFORMAT,
                  "t.npz: member 'a.npy': .npy header: unexpected key 'Xescr'");
    ck_ok(ldm_npz_read(z, "b", &a));
    ldm_array_free(&a);
    ldm_npz_close(&z);
    free(img);
}
END_TEST

START_TEST(npz_write_rejects)
{
    fill();
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/x.npz", dir);
    struct ldm_npz_entry e[2] = {{"a", &arr_a}, {"a", &arr_s}};
    ck_fails_with(ldm_npz_write(path, e, 2, 0), LDM_EINVAL, "npz: array 'a' given twice");
    e[1].name = "";
    ck_fails_with(ldm_npz_write(path, e, 2, 0), LDM_EINVAL, "npz entry 1: name empty");
    e[1].name = NULL;
    ck_fails_with(ldm_npz_write(path, e, 2, 0), LDM_EINVAL, "npz entry 1");
    struct ldm_array bad = arr_a;
    bad.ndim = 2;
    e[1] = (struct ldm_npz_entry){"b", &bad};
    ck_fails_with(ldm_npz_write(path, e, 2, 0), LDM_EINVAL, "array 'b': nbytes 96 but the shape needs 24");
    e[1].array = NULL;
    ck_fails_with(ldm_npz_write(path, e, 2, 0), LDM_EINVAL, "array 'b'");
    struct ldm_npz *z = NULL;
    ck_fails_with(ldm_npz_open(&z, path), LDM_ENOTFOUND, "x.npz");
    struct ldm_array out[2];
    const char *names[] = {"mu", "sigma"};
    ck_fails_with(ldm_npz_load(path, names, out, 2), LDM_ENOTFOUND, "x.npz");
    e[1].array = &arr_s;
    ck_ok(ldm_npz_write(path, e, 2, LDM_NPZ_DEFLATE));
    ck_fails_with(ldm_npz_load(path, (const char *[]){"a", "mu"}, out, 2), LDM_ENOTFOUND, "'mu'");
    ck_assert_ptr_null(out[0].data);
    ck_assert_ptr_null(out[1].data);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the golden FID files ---------------------------------------------------------- */

static void check_stats(const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/fid/%s", tu_data_dir(), file);
    const char *names[] = {"mu", "sigma"};
    struct ldm_array s[2];
    ck_ok(ldm_npz_load(path, names, s, 2));
    int64_t n = s[0].shape[0];
    ck_assert_int_eq(s[0].dtype, LDM_DT_F64);
    ck_assert_int_eq(s[0].ndim, 1);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(s[1].dtype, LDM_DT_F64);
    ck_assert_int_eq(s[1].ndim, 2);
    ck_assert_int_eq(s[1].shape[0], n);
    ck_assert_int_eq(s[1].shape[1], n);
    const double *mu = s[0].data, *sg = s[1].data;
    for (int64_t i = 0; i < n; i++) {
        ck_assert(isfinite(mu[i]));
        ck_assert_double_gt(sg[i * n + i], 0); /* a variance */
        for (int64_t j = 0; j < i; j++) {
            double a = sg[i * n + j], b = sg[j * n + i];
            ck_assert_double_eq_tol(a, b, 1e-12 * (1 + fabs(a)));
            ck_assert_double_le(a * a, sg[i * n + i] * sg[j * n + j] * (1 + 1e-9)); /* Cauchy-Schwarz */
        }
    }
    ldm_array_free(&s[0]);
    ldm_array_free(&s[1]);
}

START_TEST(golden_fid_stats)
{
    check_stats("stats_a.npz");
    check_stats("stats_b.npz");
}
END_TEST

/* features_a.npy are the features behind stats_a: its column means are mu
 * and its covariance (rowvar=False, ddof 1) is sigma. */
START_TEST(golden_features_match_stats)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/fid/features_a.npy", tu_data_dir());
    struct ldm_array f, s[2];
    ck_ok(ldm_npy_read(path, &f));
    ck_assert_int_eq(f.dtype, LDM_DT_F32);
    ck_assert_int_eq(f.ndim, 2);
    snprintf(path, sizeof path, "%s/golden/fid/stats_a.npz", tu_data_dir());
    ck_ok(ldm_npz_load(path, (const char *[]){"mu", "sigma"}, s, 2));
    int64_t rows = f.shape[0], d = f.shape[1];
    ck_assert_int_eq(s[0].shape[0], d);
    const float *x = f.data;
    const double *mu = s[0].data, *sg = s[1].data;
    double *m = calloc((size_t)d, sizeof *m);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < d; j++)
            m[j] += x[r * d + j];
    for (int64_t j = 0; j < d; j++) {
        m[j] /= (double)rows;
        ck_assert_double_eq_tol(m[j], mu[j], 1e-6 * (1 + fabs(mu[j])));
    }
    for (int64_t i = 0; i < d; i += 7)
        for (int64_t j = 0; j < d; j += 5) {
            double c = 0;
            for (int64_t r = 0; r < rows; r++)
                c += (x[r * d + i] - m[i]) * (x[r * d + j] - m[j]);
            c /= (double)(rows - 1);
            ck_assert_double_eq_tol(c, sg[i * d + j], 1e-6 * (1 + fabs(c)));
        }
    free(m);
    ldm_array_free(&f);
    ldm_array_free(&s[0]);
    ldm_array_free(&s[1]);
}
END_TEST

/* Our .npy encoding of the golden mu is byte for byte the member numpy wrote,
 * and a re-written archive holds the same arrays. */
START_TEST(golden_bytes_match_numpy)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/fid/stats_a.npz", tu_data_dir());
    struct ldm_array s[2];
    ck_ok(ldm_npz_load(path, (const char *[]){"mu", "sigma"}, s, 2));
    size_t zlen, len;
    unsigned char *zip = slurp(path, &zlen);
    void *m;
    ck_ok(ldm_npy_encode(&s[0], &m, &len));
    /* member 0: local header 30 bytes, "mu.npy", a 20-byte zip64 extra field */
    ck_assert_uint_eq(get32(zip + 18), len);
    ck_assert_int_eq(memcmp(zip + 30 + 6 + 20, m, len), 0);
    free(m);
    free(zip);
    struct ldm_npz_entry e[2] = {{"mu", &s[0]}, {"sigma", &s[1]}};
    ck_ok(ldm_npz_encode(e, 2, LDM_NPZ_DEFLATE, &m, &len));
    struct ldm_npz *z = NULL;
    struct ldm_array back;
    ck_ok(ldm_npz_open_buffer(&z, m, len, "copy.npz"));
    ck_ok(ldm_npz_read(z, "sigma", &back));
    assert_same(&s[1], &back);
    ldm_array_free(&back);
    ldm_npz_close(&z);
    free(m);
    ldm_array_free(&s[0]);
    ldm_array_free(&s[1]);
}
END_TEST

Suite *suite_npy(void);
Suite *suite_npy(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_add_test(tc, array_init_count_free);
    tcase_add_test(tc, npy_round_trip);
    tcase_add_test(tc, npy_header_matches_numpy);
    tcase_add_test(tc, npy_reads_all_versions_and_spellings);
    tcase_add_loop_test(tc, npy_rejects, 0, (int)(sizeof bad_npy / sizeof bad_npy[0]));
    tcase_add_test(tc, npy_rejects_preamble);
    tcase_add_test(tc, npy_file_errors_name_the_file);
    suite_add_tcase(s, tc);
    tc = tcase_create("npz");
    tcase_add_test(tc, npz_round_trip_every_flavour);
    tcase_add_test(tc, npz_deflate_large);
    tcase_add_test(tc, npz_reads_other_writers);
    tcase_add_test(tc, npz_missing_member);
    tcase_add_test(tc, npz_corruptions);
    tcase_add_test(tc, npz_comment_and_bad_member);
    tcase_add_test(tc, npz_write_rejects);
    suite_add_tcase(s, tc);
    tc = tcase_create("golden");
    tcase_add_test(tc, golden_fid_stats);
    tcase_add_test(tc, golden_features_match_stats);
    tcase_add_test(tc, golden_bytes_match_numpy);
    suite_add_tcase(s, tc);
    return s;
}

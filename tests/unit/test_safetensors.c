/* test_safetensors.c — dtype helpers, safetensors round trips, every header
 * defect rejected with a detail naming the file and the tensor. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "safetensors.h"
#include "testutil.h"

/* A file image: the 8-byte length of `hdr`, `hdr`, then dlen data bytes. */
static unsigned char *mk(const char *hdr, size_t dlen, size_t *len)
{
    size_t n = strlen(hdr);
    *len = 8 + n + dlen;
    unsigned char *b = malloc(*len);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, hdr, n);
    for (size_t i = 0; i < dlen; i++)
        b[8 + n + i] = (unsigned char)(i * 7 + 1);
    return b;
}

static void *read_all(const char *path, size_t *len)
{
    struct ldm_map m;
    ck_ok(ldm_map_file(path, &m));
    void *p = malloc(m.len + 1);
    ck_assert_ptr_nonnull(p);
    if (m.len)
        memcpy(p, m.data, m.len);
    *len = m.len;
    ldm_unmap(&m);
    return p;
}

/* Names in `dir` other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

START_TEST(dtype_names_and_sizes)
{
    for (int d = 0; d < LDM_DT_COUNT; d++) {
        ck_assert_ptr_nonnull(ldm_dtype_name(d));
        ck_assert_int_eq(ldm_dtype_parse(ldm_dtype_name(d)), d);
    }
    ck_assert_int_eq(ldm_dtype_parse("BF16"), LDM_DT_BF16);
    ck_assert_int_eq(ldm_dtype_parse("f32"), -1);
    ck_assert_int_eq(ldm_dtype_parse(""), -1);
    ck_assert_ptr_null(ldm_dtype_name(LDM_DT_COUNT));
    ck_assert_ptr_null(ldm_dtype_name(-1));
    ck_assert_uint_eq(ldm_dtype_size(LDM_DT_F64), 8);
    ck_assert_uint_eq(ldm_dtype_size(LDM_DT_F32), 4);
    ck_assert_uint_eq(ldm_dtype_size(LDM_DT_BF16), 2);
    ck_assert_uint_eq(ldm_dtype_size(LDM_DT_BOOL), 1);
    ck_assert_uint_eq(ldm_dtype_size(LDM_DT_F8_E5M2), 1);
    ck_assert_uint_eq(ldm_dtype_size(99), 0);
}
END_TEST

START_TEST(write_read_round_trip)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t steps[3] = {-1, 0, 1LL << 40};
    uint16_t bf = 0x3f80;
    struct ldm_st_tensor t[4] = {
        {.name = "w", .dtype = LDM_DT_F32, .ndim = 2, .shape = {2, 3}, .data = w, .nbytes = 24},
        {.name = "a.steps", .dtype = LDM_DT_I64, .ndim = 1, .shape = {3}, .data = steps, .nbytes = 24},
        {.name = "scale", .dtype = LDM_DT_BF16, .ndim = 0, .data = &bf, .nbytes = 2},
        {.name = "empty", .dtype = LDM_DT_U8, .ndim = 2, .shape = {0, 5}},
    };
    struct ldm_st_kv meta[] = {{"format", "pt"}, {"step", "12"}};
    ck_ok(ldm_st_write(path, t, 4, meta, 2));
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary file left */

    struct ldm_st *st = NULL;
    ck_ok(ldm_st_open(&st, path));
    ck_assert_str_eq(ldm_st_label(st), path);
    ck_assert_uint_eq(ldm_st_count(st), 4);
    const char *order[] = {"a.steps", "empty", "scale", "w"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_str_eq(ldm_st_at(st, i)->name, order[i]);
    ck_assert_ptr_null(ldm_st_at(st, 4));
    const struct ldm_st_tensor *x = ldm_st_get(st, "w");
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(x->dtype, LDM_DT_F32);
    ck_assert_int_eq(x->ndim, 2);
    ck_assert_int_eq(x->shape[0], 2);
    ck_assert_int_eq(x->shape[1], 3);
    ck_assert_uint_eq(x->nbytes, 24);
    ck_assert_mem_eq(x->data, w, 24);
    for (size_t i = 0; i < ldm_st_count(st); i++) /* each aligned to its element size */
        ck_assert_uint_eq((uintptr_t)ldm_st_at(st, i)->data % ldm_dtype_size(ldm_st_at(st, i)->dtype), 0);
    x = ldm_st_get(st, "a.steps");
    ck_assert_mem_eq(x->data, steps, 24);
    x = ldm_st_get(st, "scale");
    ck_assert_int_eq(x->ndim, 0);
    ck_assert_uint_eq(x->nbytes, 2);
    ck_assert_mem_eq(x->data, &bf, 2);
    x = ldm_st_get(st, "empty");
    ck_assert_uint_eq(x->nbytes, 0);
    ck_assert_int_eq(x->shape[0], 0);
    ck_assert_str_eq(ldm_st_meta(st, "format"), "pt");
    ck_assert_str_eq(ldm_st_meta(st, "step"), "12");
    ck_assert_ptr_null(ldm_st_meta(st, "nope"));
    const char *v;
    ck_assert_uint_eq(ldm_st_meta_count(st), 2);
    ck_assert_str_eq(ldm_st_meta_at(st, 1, &v), "step");
    ck_assert_str_eq(v, "12");
    ck_assert_ptr_null(ldm_st_meta_at(st, 2, &v));
    ldm_st_close(&st);
    ck_assert_ptr_null(st);
    ldm_st_close(&st);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* The file layout: padded header with metadata first and tensors by name;
 * contiguous data, larger elements first, then by name; and ldm_st_encode
 * produces the same bytes as ldm_st_write. */
START_TEST(layout_matches_reference_writer)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    float b[2] = {1, 2}, a[1] = {3};
    uint16_t h = 7;
    struct ldm_st_tensor t[3] = {
        {.name = "b", .dtype = LDM_DT_F32, .ndim = 1, .shape = {2}, .data = b, .nbytes = 8},
        {.name = "a", .dtype = LDM_DT_F32, .ndim = 1, .shape = {1}, .data = a, .nbytes = 4},
        {.name = "0h", .dtype = LDM_DT_F16, .ndim = 0, .data = &h, .nbytes = 2},
    };
    struct ldm_st_kv meta = {"k", "v"};
    ck_ok(ldm_st_write(path, t, 3, &meta, 1));
    size_t flen, mlen;
    unsigned char *f = read_all(path, &flen);
    void *m;
    ck_ok(ldm_st_encode(&m, &mlen, t, 3, &meta, 1));
    ck_assert_uint_eq(flen, mlen);
    ck_assert_mem_eq(f, m, flen);
    const char *want = "{\"__metadata__\":{\"k\":\"v\"},"
                       "\"0h\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[12,14]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    size_t n = f[0] | (size_t)f[1] << 8;
    ck_assert_uint_eq(n % 8, 0);
    ck_assert_uint_eq(n, (strlen(want) + 7) / 8 * 8);
    ck_assert_mem_eq(f + 8, want, strlen(want));
    for (size_t i = strlen(want); i < n; i++)
        ck_assert_int_eq(f[8 + i], ' ');
    ck_assert_uint_eq(flen, 8 + n + 14);
    ck_assert_mem_eq(f + 8 + n, a, 4);
    ck_assert_mem_eq(f + 8 + n + 4, b, 8);
    ck_assert_mem_eq(f + 8 + n + 12, &h, 2);
    free(f);
    free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(overwrite_is_atomic_and_empty_file_ok)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    double d = 2.5;
    struct ldm_st_tensor t = {.name = "d", .dtype = LDM_DT_F64, .ndim = 0, .data = &d, .nbytes = 8};
    ck_ok(ldm_st_write(path, NULL, 0, NULL, 0));
    struct ldm_st *st = NULL;
    ck_ok(ldm_st_open(&st, path));
    ck_assert_uint_eq(ldm_st_count(st), 0);
    ck_assert_ptr_null(ldm_st_get(st, "d"));
    ck_assert_ptr_null(ldm_st_meta(st, "k"));
    ldm_st_close(&st);
    ck_ok(ldm_st_write(path, &t, 1, NULL, 0));
    ck_ok(ldm_st_open(&st, path));
    ck_assert_uint_eq(ldm_st_count(st), 1);
    ck_assert_double_eq(*(const double *)ldm_st_get(st, "d")->data, 2.5);
    ldm_st_close(&st);
    ck_assert_int_eq(count_entries(dir), 1);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(many_tensors_found_by_name)
{
    enum { N = 1500 };
    static struct ldm_st_tensor t[N];
    static char names[N][48];
    static int32_t vals[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "down_blocks.%d.resnets.%d.conv.weight", i % 97, i);
        vals[i] = i * 3;
        t[i] = (struct ldm_st_tensor){.name = names[i], .dtype = LDM_DT_I32, .ndim = 1,
                                      .shape = {1}, .data = &vals[i], .nbytes = 4};
    }
    void *img;
    size_t len;
    ck_ok(ldm_st_encode(&img, &len, t, N, NULL, 0));
    struct ldm_st *st = NULL;
    ck_ok(ldm_st_open_buffer(&st, img, len, NULL));
    ck_assert_uint_eq(ldm_st_count(st), N);
    for (int i = 0; i < N; i++) {
        const struct ldm_st_tensor *x = ldm_st_get(st, names[i]);
        ck_assert_ptr_nonnull(x);
        ck_assert_int_eq(*(const int32_t *)x->data, i * 3);
    }
    for (size_t i = 1; i < N; i++)
        ck_assert_int_lt(strcmp(ldm_st_at(st, i - 1)->name, ldm_st_at(st, i)->name), 0);
    ldm_st_close(&st);
    free(img);
}
END_TEST

START_TEST(find_and_expect_name_the_problem)
{
    size_t len;
    unsigned char *b = mk("{\"conv_in.weight\":{\"dtype\":\"F32\",\"shape\":[4,3],"
                          "\"data_offsets\":[0,48]}}",
                          48, &len);
    struct ldm_st *st = NULL;
    ck_ok(ldm_st_open_buffer(&st, b, len, "m.safetensors"));
    const struct ldm_st_tensor *t;
    ck_fails_with(ldm_st_find(st, "conv_out.weight", &t), LDM_ENOTFOUND,
                  "m.safetensors: no tensor 'conv_out.weight'");
    ck_assert_ptr_null(t);
    ck_ok(ldm_st_find(st, "conv_in.weight", &t));
    ck_ok(ldm_st_expect(st, "conv_in.weight", LDM_DT_F32, 2, (int64_t[]){4, 3}, &t));
    ck_assert_ptr_nonnull(t);
    ck_fails_with(ldm_st_expect(st, "conv_in.weight", LDM_DT_F32, 2, (int64_t[]){3, 4}, &t),
                  LDM_EFORMAT, "m.safetensors: tensor 'conv_in.weight': F32 [4,3], expected F32 [3,4]");
    ck_fails_with(ldm_st_expect(st, "conv_in.weight", LDM_DT_F16, 2, (int64_t[]){4, 3}, &t),
                  LDM_EFORMAT, "expected F16 [4,3]");
    ck_fails_with(ldm_st_expect(st, "conv_in.weight", LDM_DT_F32, 1, (int64_t[]){12}, &t),
                  LDM_EFORMAT, "expected F32 [12]");
    ck_fails_with(ldm_st_expect(st, "x", LDM_DT_F32, 1, (int64_t[]){12}, &t), LDM_ENOTFOUND, "'x'");
    ldm_st_close(&st);
    free(b);
}
END_TEST

/* Gaps, trailing bytes, empty tensors anywhere, and unknown keys are fine. */
START_TEST(lenient_where_harmless)
{
    size_t len;
    unsigned char *b = mk("  {\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6],\"x\":1},"
                          "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[5,5]},"
                          "\"z\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[0,1]},"
                          "\"__metadata__\":{}}\n ",
                          9, &len);
    struct ldm_st *st = NULL;
    ck_ok(ldm_st_open_buffer(&st, b, len, NULL));
    ck_assert_uint_eq(ldm_st_count(st), 3);
    ck_assert_uint_eq(ldm_st_meta_count(st), 0);
    ck_assert_uint_eq(ldm_st_get(st, "z")->nbytes, 1);
    ck_assert_int_eq(ldm_st_get(st, "z")->ndim, 0);
    ldm_st_close(&st);
    free(b);
}
END_TEST

START_TEST(reads_golden_file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/schedules/golden.safetensors", tu_data_dir());
    struct ldm_st *st = NULL;
    ck_ok(ldm_st_open(&st, path));
    const struct ldm_st_tensor *t;
    ck_ok(ldm_st_expect(st, "in.noise", LDM_DT_F32, 4, (int64_t[]){4, 4, 8, 8}, &t));
    ck_assert_uint_eq(t->nbytes, 4096);
    ck_ok(ldm_st_expect(st, "in.timesteps", LDM_DT_I64, 1, (int64_t[]){4}, &t));
    for (int i = 0; i < 4; i++) {
        int64_t ts;
        memcpy(&ts, (const char *)t->data + 8 * i, 8);
        ck_assert(ts >= 0 && ts < 10000);
    }
    /* Re-encoded, it reads back the same. */
    size_t n = ldm_st_count(st), len;
    struct ldm_st_tensor *all = calloc(n, sizeof *all);
    for (size_t i = 0; i < n; i++)
        all[i] = *ldm_st_at(st, i);
    void *img;
    ck_ok(ldm_st_encode(&img, &len, all, n, NULL, 0));
    struct ldm_st *st2 = NULL;
    ck_ok(ldm_st_open_buffer(&st2, img, len, "copy"));
    ck_assert_uint_eq(ldm_st_count(st2), n);
    for (size_t i = 0; i < n; i++) {
        const struct ldm_st_tensor *a = ldm_st_at(st, i), *c = ldm_st_at(st2, i);
        ck_assert_str_eq(a->name, c->name);
        ck_assert_int_eq(a->dtype, c->dtype);
        ck_assert_int_eq(a->ndim, c->ndim);
        ck_assert_mem_eq(a->shape, c->shape, sizeof a->shape);
        ck_assert_uint_eq(a->nbytes, c->nbytes);
        ck_assert_int_eq(memcmp(a->data, c->data, a->nbytes), 0);
    }
    ldm_st_close(&st2);
    ldm_st_close(&st);
    free(img);
    free(all);
}
END_TEST

START_TEST(open_errors_name_the_file)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    struct ldm_st *st = (struct ldm_st *)1;
    ck_fails_with(ldm_st_open(&st, path), LDM_ENOTFOUND, "none.safetensors");
    ck_assert_ptr_null(st);
    ck_fails_with(ldm_st_open(&st, dir), LDM_EINVAL, "not a regular file");
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    tu_write_file(path, "", 0);
    ck_fails_with(ldm_st_open(&st, path), LDM_EFORMAT, "empty.safetensors: 0 bytes, too short");
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    size_t len;
    unsigned char *b = mk("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, &len);
    tu_write_file(path, b, len);
    ck_fails_with(ldm_st_open(&st, path), LDM_EFORMAT, "bad.safetensors: tensor 't'");
    free(b);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(write_rejects_bad_tensors)
{
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    float f[4] = {0};
    struct ldm_st_tensor ok = {.name = "a", .dtype = LDM_DT_F32, .ndim = 1, .shape = {4},
                               .data = f, .nbytes = 16};
    struct ldm_st_tensor t[2] = {ok, ok};
    ck_fails_with(ldm_st_write(path, t, 2, NULL, 0), LDM_EINVAL, "'a' given twice");
    t[1].name = "__metadata__";
    ck_fails_with(ldm_st_write(path, t, 2, NULL, 0), LDM_EINVAL, "__metadata__ is not allowed");
    t[1] = ok;
    t[1].name = NULL;
    ck_fails_with(ldm_st_write(path, t, 2, NULL, 0), LDM_EINVAL, "tensor 1");
    t[1] = ok;
    t[1].name = "b";
    t[1].nbytes = 12;
    ck_fails_with(ldm_st_write(path, t, 2, NULL, 0), LDM_EINVAL, "'b': nbytes 12 but shape [4]");
    t[1].nbytes = 16;
    t[1].dtype = 42;
    ck_fails_with(ldm_st_write(path, t, 2, NULL, 0), LDM_EINVAL, "unknown dtype 42");
    t[1].dtype = LDM_DT_F32;
    t[1].shape[0] = -4;
    ck_fails_with(ldm_st_write(path, t, 2, NULL, 0), LDM_EINVAL, "negative");
    t[1].shape[0] = 4;
    t[1].ndim = 9;
    ck_fails_with(ldm_st_write(path, t, 2, NULL, 0), LDM_EINVAL, "ndim 9");
    t[1].ndim = 1;
    t[1].data = NULL;
    ck_fails_with(ldm_st_write(path, t, 2, NULL, 0), LDM_EINVAL, "'b': no data");
    t[1].data = f;
    t[1].name = "bad\xff";
    ck_fails_with(ldm_st_write(path, t, 2, NULL, 0), LDM_EINVAL, "not UTF-8");
    t[1].name = "b";
    struct ldm_st_kv meta[2] = {{"k", "v"}, {"k", "w"}};
    ck_fails_with(ldm_st_write(path, t, 2, meta, 2), LDM_EINVAL, "'k' given twice");
    meta[1] = (struct ldm_st_kv){"j", "\xc3"};
    ck_fails_with(ldm_st_write(path, t, 2, meta, 2), LDM_EINVAL, "'j'");
    ck_assert_int_eq(count_entries(dir), 0);
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", dir);
    ck_fails_with(ldm_st_write(path, t, 2, NULL, 0), LDM_ENOTFOUND, "x.safetensors");
    ck_fails_with(ldm_st_write("", t, 2, NULL, 0), LDM_EINVAL, "not a file path");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- every header defect ---------------------------------------------------- */

#define T(body) "{\"t\":{" body "}}"
#define OK_DT "\"dtype\":\"F32\","

static const struct bad_header {
    const char *hdr; /* NULL: use raw/rawlen */
    size_t dlen;
    int code;
    const char *needle;
} bad[] = {
    {"{}", 0, 0, ""}, /* the smallest valid file */
    {"[1,2]", 0, LDM_EFORMAT, "t.st: header is an array, not a JSON object"},
    {"\"x\"", 0, LDM_EFORMAT, "header is a string, not a JSON object"},
    {"{\"t\":", 0, LDM_EFORMAT, "t.st: header is not valid JSON"},
    {"{\"t\":{}} x", 0, LDM_EFORMAT, "not valid JSON"},
    {"{\"t\":1}", 0, LDM_EFORMAT, "t.st: tensor 't': entry is not a JSON object"},
    {T("\"shape\":[1],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT, "tensor 't': no dtype"},
    {T("\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT, "dtype is not a string"},
    {T("\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT,
     "tensor 't': unknown dtype 'F31'"},
    {T("\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT, "unknown dtype 'f32'"},
    {T(OK_DT "\"data_offsets\":[0,4]"), 4, LDM_EFORMAT, "tensor 't': no shape"},
    {T(OK_DT "\"shape\":4,\"data_offsets\":[0,4]"), 4, LDM_EFORMAT, "shape is not an array"},
    {T(OK_DT "\"shape\":[2,-1],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT,
     "tensor 't': shape[1] is negative (-1)"},
    {T(OK_DT "\"shape\":[2.5],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT, "shape[0] is not an integer"},
    {T(OK_DT "\"shape\":[\"1\"],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT, "shape[0] is not an integer"},
    {T(OK_DT "\"shape\":[1e0],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT, "shape[0] is not an integer"},
    {T(OK_DT "\"shape\":[null],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT, "shape[0] is not an integer"},
    {T(OK_DT "\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT,
     "tensor 't': shape [4294967296,4294967296,4] overflows"},
    {T(OK_DT "\"shape\":[4611686018427387904],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT, "overflows"},
    {T(OK_DT "\"shape\":[99999999999999999999],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT,
     "not valid JSON"},
    {T(OK_DT "\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]"), 4, LDM_EUNSUPPORTED,
     "tensor 't': 9 dimensions"},
    {T(OK_DT "\"shape\":[1]"), 4, LDM_EFORMAT, "tensor 't': no data_offsets"},
    {T(OK_DT "\"shape\":[1],\"data_offsets\":[0]"), 4, LDM_EFORMAT, "not [begin,end]"},
    {T(OK_DT "\"shape\":[1],\"data_offsets\":[0,4,8]"), 8, LDM_EFORMAT, "not [begin,end]"},
    {T(OK_DT "\"shape\":[1],\"data_offsets\":{}"), 4, LDM_EFORMAT, "not [begin,end]"},
    {T(OK_DT "\"shape\":[1],\"data_offsets\":[-4,0]"), 4, LDM_EFORMAT, "not [begin,end]"},
    {T(OK_DT "\"shape\":[1],\"data_offsets\":[0,4.0]"), 4, LDM_EFORMAT, "not [begin,end]"},
    {T(OK_DT "\"shape\":[1],\"data_offsets\":[4,0]"), 4, LDM_EFORMAT,
     "tensor 't': data_offsets [4,0] are reversed"},
    {T(OK_DT "\"shape\":[1],\"data_offsets\":[4,8]"), 6, LDM_EFORMAT,
     "tensor 't': data_offsets [4,8] run past the end of the 6-byte data buffer"},
    {T(OK_DT "\"shape\":[1],\"data_offsets\":[0,4]"), 3, LDM_EFORMAT, "run past the end"},
    {"{\"conv_in.weight\":{\"dtype\":\"F32\",\"shape\":[4,3,3,3],\"data_offsets\":[0,100]}}", 100,
     LDM_EFORMAT,
     "t.st: tensor 'conv_in.weight': data_offsets [0,100] hold 100 bytes but shape [4,3,3,3] × F32 "
     "needs 432"},
    {T("\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,4]"), 4, LDM_EFORMAT,
     "hold 4 bytes but shape [] × BF16 needs 2"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}",
     5, LDM_EFORMAT, "tensor 'b': data_offsets [3,5] overlap those of tensor 'a' [0,4]"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
     4, LDM_EFORMAT, "overlap"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]},"
     "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}",
     10, LDM_EFORMAT, "tensor 'c': data_offsets [4,6] overlap those of tensor 'a' [0,8]"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
     "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
     2, LDM_EFORMAT, "duplicate"},
    {"{\"__metadata__\":[\"a\"]}", 0, LDM_EFORMAT, "t.st: __metadata__ is not a JSON object"},
    {"{\"__metadata__\":{\"a\":\"b\",\"n\":1}}", 0, LDM_EFORMAT, "t.st: __metadata__ 'n' is not a string"},
    {"{\"__metadata__\":{\"a\":null}}", 0, LDM_EFORMAT, "__metadata__ 'a' is not a string"},
    {"{\"a\\u0000b\":{}}", 0, LDM_EFORMAT, "not valid JSON"},
    {"{\"\xff\":{}}", 0, LDM_EFORMAT, "not valid JSON"},
    {"{\"__metadata__\":{\"format\":\"pt\"},"
     "\"\":{\"dtype\":\"I8\",\"shape\":[1,1],\"data_offsets\":[0,1]}}",
     1, 0, ""},
};

START_TEST(rejects_bad_header)
{
    const struct bad_header *c = &bad[_i];
    size_t len;
    unsigned char *b = mk(c->hdr, c->dlen, &len);
    struct ldm_st *st = NULL;
    ldm_err_clear();
    int rc = ldm_st_open_buffer(&st, b, len, "t.st");
    ck_assert_msg(rc == c->code, "header %s: returned %d (%s), expected %d; detail: %s", c->hdr,
                  rc, ldm_strerror(rc), c->code, ldm_errmsg());
    ck_assert_msg(strstr(ldm_errmsg(), c->needle) != NULL,
                  "header %s: detail \"%s\" does not mention \"%s\"", c->hdr, ldm_errmsg(), c->needle);
    ck_assert(rc == 0 ? st != NULL : st == NULL);
    ldm_st_close(&st);
    free(b);
}
END_TEST

START_TEST(rejects_bad_length_field)
{
    unsigned char b[64] = "{}";
    struct ldm_st *st = NULL;
    ck_fails_with(ldm_st_open_buffer(&st, b, 5, "t.st"), LDM_EFORMAT,
                  "t.st: 5 bytes, too short for the 8-byte header length");
    memset(b, 0, sizeof b);
    b[0] = 1; /* N = 1 */
    ck_fails_with(ldm_st_open_buffer(&st, b, sizeof b, "t.st"), LDM_EFORMAT,
                  "t.st: header length 1 is below 2");
    b[0] = 0;
    ck_fails_with(ldm_st_open_buffer(&st, b, sizeof b, "t.st"), LDM_EFORMAT, "length 0 is below 2");
    uint64_t big = 100000001;
    memcpy(b, &big, 8);
    ck_fails_with(ldm_st_open_buffer(&st, b, sizeof b, "t.st"), LDM_EFORMAT,
                  "t.st: header length 100000001 exceeds the limit of 100000000 bytes");
    memset(b, 0xff, 8);
    ck_fails_with(ldm_st_open_buffer(&st, b, sizeof b, "t.st"), LDM_EFORMAT, "exceeds the limit");
    big = 57;
    memcpy(b, &big, 8);
    memcpy(b + 8, "{}", 2);
    ck_fails_with(ldm_st_open_buffer(&st, b, sizeof b, "t.st"), LDM_EFORMAT,
                  "t.st: header length 57 exceeds the 56 bytes after it");
    /* A file cut short inside the data is an offsets error. */
    size_t len;
    unsigned char *m = mk(T(OK_DT "\"shape\":[2],\"data_offsets\":[0,8]"), 8, &len);
    ck_ok(ldm_st_open_buffer(&st, m, len, "t.st"));
    ldm_st_close(&st);
    ck_fails_with(ldm_st_open_buffer(&st, m, len - 1, "t.st"), LDM_EFORMAT, "run past the end");
    ck_fails_with(ldm_st_open_buffer(&st, m, 20, "t.st"), LDM_EFORMAT, "exceeds the 12 bytes");
    ck_assert_ptr_null(st);
    free(m);
}
END_TEST

Suite *suite_safetensors(void);
Suite *suite_safetensors(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, dtype_names_and_sizes);
    tcase_add_test(tc, write_read_round_trip);
    tcase_add_test(tc, layout_matches_reference_writer);
    tcase_add_test(tc, overwrite_is_atomic_and_empty_file_ok);
    tcase_add_test(tc, many_tensors_found_by_name);
    tcase_add_test(tc, find_and_expect_name_the_problem);
    tcase_add_test(tc, lenient_where_harmless);
    tcase_add_test(tc, reads_golden_file);
    tcase_add_test(tc, open_errors_name_the_file);
    tcase_add_test(tc, write_rejects_bad_tensors);
    tcase_add_loop_test(tc, rejects_bad_header, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(tc, rejects_bad_length_field);
    suite_add_tcase(s, tc);
    return s;
}

/* test_pickle.c — torch state dicts: files torch.save writes, and hostile pickles refused. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fsutil.h"
#include "models/pickle.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"

Suite *suite_pickle(void);

/* Run tests/golden/torch_save.py into a fresh folder; the caller frees it. */
static char *make_torch_files(void)
{
    char *dir = tu_tmpdir(), cmd[4096];
    snprintf(cmd, sizeof cmd, PYTHON " tests/golden/torch_save.py '%s'", dir);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed", cmd);
    return dir;
}

static void hex_bytes(const char *hex, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        ck_assert(sscanf(hex + 2 * i, "%2x", &v) == 1);
        out[i] = (unsigned char)v;
    }
}

/* Every tensor of `want` (name -> dtype, shape, hex) is in pt, byte for byte, and no other. */
static void check_file(const struct ldm_pt *pt, const json_t *want)
{
    ck_assert_uint_eq(ldm_pt_count(pt), json_object_size(want));
    const char *name;
    json_t *w;
    json_object_foreach((json_t *)want, name, w) {
        const json_t *shape = json_object_get(w, "shape");
        int64_t sh[LDM_MAXDIM];
        int nd = (int)json_array_size(shape);
        for (int i = 0; i < nd; i++)
            sh[i] = json_integer_value(json_array_get(shape, (size_t)i));
        int dt = ldm_dtype_parse(json_string_value(json_object_get(w, "dtype")));
        const struct ldm_st_tensor *t;
        ck_ok(ldm_pt_expect(pt, name, dt, nd, sh, &t));
        const char *hex = json_string_value(json_object_get(w, "hex"));
        size_t n = strlen(hex) / 2;
        ck_assert_uint_eq(t->nbytes, n);
        unsigned char *b = malloc(n + 1);
        hex_bytes(hex, b, n);
        ck_assert_msg(n == 0 || memcmp(b, t->data, n) == 0, "%s: tensor %s differs", ldm_pt_label(pt),
                      name);
        free(b);
    }
}

START_TEST(torch_save_files)
{
    char *dir = make_torch_files(), path[4096];
    snprintf(path, sizeof path, "%s/expect.json", dir);
    json_error_t e;
    json_t *expect = json_load_file(path, 0, &e);
    ck_assert_msg(expect != NULL, "%s: %s", path, e.text);
    const char *file;
    json_t *want;
    json_object_foreach(expect, file, want) {
        struct ldm_pt *pt = NULL;
        snprintf(path, sizeof path, "%s/%s", dir, file);
        ck_ok(ldm_pt_open(&pt, path));
        ck_assert_int_eq(ldm_pt_legacy(pt), strcmp(file, "legacy.pt") == 0);
        check_file(pt, want);
        ck_assert_str_eq(ldm_pt_prefix(pt), strcmp(file, "nested.ckpt") == 0 ? "state_dict." : "");
        ldm_pt_close(&pt);
        ck_assert_ptr_null(pt);
    }
    json_decref(expect);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(lookup_errors)
{
    char *dir = make_torch_files(), path[4096];
    snprintf(path, sizeof path, "%s/zip.pt", dir);
    struct ldm_pt *pt = NULL;
    ck_ok(ldm_pt_open(&pt, path));
    const struct ldm_st_tensor *t;
    int64_t sh[2] = {4, 3};
    ck_fails_with(ldm_pt_expect(pt, "conv.weight", LDM_DT_F32, 2, sh, &t), LDM_EFORMAT,
                  "tensor 'conv.weight': F32 [3,4], expected F32 [4,3]");
    ck_assert_ptr_null(t);
    ck_fails_with(ldm_pt_expect(pt, "half", LDM_DT_F32, 1, (int64_t[]){5}, NULL), LDM_EFORMAT,
                  "F16 [5], expected F32 [5]");
    ck_fails_with(ldm_pt_find(pt, "nope", &t), LDM_ENOTFOUND, "zip.pt: no tensor 'nope'");
    ck_assert_ptr_null(ldm_pt_get(pt, "nope"));
    ck_assert_ptr_null(ldm_pt_at(pt, ldm_pt_count(pt)));
    for (size_t i = 1; i < ldm_pt_count(pt); i++)
        ck_assert(strcmp(ldm_pt_at(pt, i - 1)->name, ldm_pt_at(pt, i)->name) < 0);
    ck_ok(ldm_pt_expect(pt, "scalar", LDM_DT_F64, 0, NULL, &t));
    double d;
    memcpy(&d, t->data, sizeof d);
    ck_assert(d == 2.5);
    ldm_pt_close(&pt);
    snprintf(path, sizeof path, "%s/missing.pt", dir);
    ck_fails_with(ldm_pt_open(&pt, path), LDM_ENOTFOUND, "missing.pt");
    ck_assert_ptr_null(pt);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Every prefix of a real file fails cleanly (or, for zip archives, parses). */
START_TEST(truncated_files)
{
    char *dir = make_torch_files(), path[4096];
    const char *files[] = {"zip.pt", "legacy.pt", "nested.ckpt"};
    for (size_t f = 0; f < 3; f++) {
        struct ldm_map m;
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        ck_ok(ldm_map_file(path, &m));
        for (size_t n = 0; n < m.len; n++) {
            struct ldm_pt *pt = NULL;
            unsigned char *copy = malloc(n + 1);
            memcpy(copy, m.data, n);
            int rc = ldm_pt_open_buffer(&pt, copy, n, files[f]);
            ck_assert_msg(rc == LDM_EFORMAT || rc == LDM_EUNSUPPORTED, "%s cut at %zu: %d %s",
                          files[f], n, rc, ldm_errmsg());
            ck_assert_ptr_null(pt);
            free(copy);
        }
        ldm_unmap(&m);
    }
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* A legacy-format file around pickle `body` (the saved object), with one F32
 * storage "0" of `numel` elements when numel >= 0, else none. */
static size_t legacy_file(unsigned char *out, const char *body, size_t blen, int numel)
{
    static const char head[] = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."
                               "\x80\x02M\xe9\x03."
                               "\x80\x02}(X\x0d\x00\x00\x00little_endian\x88u.";
    size_t n = sizeof head - 1;
    memcpy(out, head, n);
    memcpy(out + n, body, blen);
    n += blen;
    if (numel < 0) {
        memcpy(out + n, "\x80\x02].", 4);
        return n + 4;
    }
    memcpy(out + n, "\x80\x02]X\x01\x00\x00\x00" "0a.", 11);
    n += 11;
    uint64_t c = (uint64_t)numel;
    memcpy(out + n, &c, 8);
    n += 8;
    for (int i = 0; i < numel; i++, n += 4)
        memcpy(out + n, &(float){(float)i}, 4);
    return n;
}

static int open_legacy(const char *body, size_t blen, int numel, struct ldm_pt **pt)
{
    static unsigned char buf[1 << 20];
    size_t n = legacy_file(buf, body, blen, numel);
    return ldm_pt_open_buffer(pt, buf, n, "evil.bin");
}

#define BODY(s) s, sizeof(s) - 1

/* {"w": tensor} over storage "0" with offset OFF, size SIZE, stride STRIDE (pickle text). */
#define TENSOR_DICT(OFF, SIZE, STRIDE)                                                             \
    "\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n"                              \
    "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00"                           \
    "0X\x03\x00\x00\x00" "cpuK\x06t"                                                            \
    "Q" OFF SIZE STRIDE "\x89N" "tRs."

START_TEST(hand_made_tensors)
{
    struct ldm_pt *pt = NULL;
    const struct ldm_st_tensor *t;
    /* a 2x3 view at offset 0, then its transpose (copied), then an offset slice */
    ck_ok(open_legacy(BODY(TENSOR_DICT("K\x00", "K\x02K\x03\x86", "K\x03K\x01\x86")), 6, &pt));
    ck_ok(ldm_pt_expect(pt, "w", LDM_DT_F32, 2, (int64_t[]){2, 3}, &t));
    float f[6];
    memcpy(f, t->data, sizeof f); /* legacy storages are not aligned */
    ck_assert(f[5] == 5.0f);
    ldm_pt_close(&pt);
    ck_ok(open_legacy(BODY(TENSOR_DICT("K\x00", "K\x03K\x02\x86", "K\x01K\x03\x86")), 6, &pt));
    ck_ok(ldm_pt_expect(pt, "w", LDM_DT_F32, 2, (int64_t[]){3, 2}, &t));
    const float want[6] = {0, 3, 1, 4, 2, 5};
    ck_assert(memcmp(t->data, want, sizeof want) == 0);
    ldm_pt_close(&pt);
    ck_ok(open_legacy(BODY(TENSOR_DICT("K\x04", "K\x02\x85", "K\x01\x85")), 6, &pt));
    ck_ok(ldm_pt_expect(pt, "w", LDM_DT_F32, 1, (int64_t[]){2}, &t));
    memcpy(f, t->data, 2 * sizeof *f);
    ck_assert(f[0] == 4.0f && f[1] == 5.0f);
    ldm_pt_close(&pt);
    /* past the storage's end, and a broadcast (stride 0) view */
    ck_fails_with(open_legacy(BODY(TENSOR_DICT("K\x05", "K\x02\x85", "K\x01\x85")), 6, &pt),
                  LDM_EFORMAT, "tensor 'w': reaches element 6 of a storage of 6");
    ck_fails_with(open_legacy(BODY(TENSOR_DICT("K\x00", "K\x08\x85", "K\x00\x85")), 6, &pt),
                  LDM_EUNSUPPORTED, "overlapping");
    /* the storage list says 6 elements, the data says 5 */
    static unsigned char buf[4096];
    size_t n = legacy_file(buf, BODY(TENSOR_DICT("K\x00", "K\x02\x85", "K\x01\x85")), 6);
    buf[n - 6 * 4 - 8] = 5;
    ck_fails_with(ldm_pt_open_buffer(&pt, buf, n, "evil.bin"), LDM_EFORMAT, "5 elements, 6 expected");
    ck_assert_ptr_null(pt);
}
END_TEST

START_TEST(refused_globals)
{
    struct ldm_pt *pt = NULL;
    ck_fails_with(open_legacy(BODY("\x80\x02}X\x01\x00\x00\x00xcos\nsystem\nX\x02\x00\x00\x00lsRs."),
                              -1, &pt),
                  LDM_EDENIED, "evil.bin: refused global 'os.system' at byte 55");
    ck_assert_ptr_null(pt);
    ck_fails_with(open_legacy(BODY("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93."), -1, &pt),
                  LDM_EDENIED, "refused global 'builtins.eval'");
    ck_fails_with(open_legacy(BODY("\x80\x02" "ctorch\nload\n."), -1, &pt), LDM_EDENIED,
                  "refused global 'torch.load'");
    ck_fails_with(open_legacy(BODY("\x80\x02" "c\x01\x02\n\x7f\n."), -1, &pt), LDM_EDENIED,
                  "refused global '??.?'");
    /* a storage type is not callable, nor is OrderedDict with arguments */
    ck_fails_with(open_legacy(BODY("\x80\x02\x63torch\nFloatStorage\n)R."), -1, &pt), LDM_EFORMAT,
                  "a storage type called");
    ck_fails_with(open_legacy(BODY("\x80\x02\x63\x63ollections\nOrderedDict\n]\x85R."), -1, &pt),
                  LDM_EFORMAT, "OrderedDict called with arguments");
    ck_fails_with(open_legacy(BODY("\x80\x02\x63\x63ollections\nOrderedDict\n)R}b."), -1, &pt), 0,
                  "");
    ldm_pt_close(&pt);
    /* opcodes that would build or call anything else */
    ck_fails_with(open_legacy(BODY("\x80\x02(cos\nsystem\ni."), -1, &pt), LDM_EDENIED, "os.system");
    ck_fails_with(open_legacy(BODY("\x80\x02(i."), -1, &pt), LDM_EUNSUPPORTED,
                  "unsupported pickle opcode 0x69 at byte 49");
    ck_fails_with(open_legacy(BODY("\x80\x02}}\x81."), -1, &pt), LDM_EUNSUPPORTED, "opcode 0x81");
}
END_TEST

START_TEST(malformed_pickles)
{
    struct ldm_pt *pt = NULL;
    ck_fails_with(open_legacy(BODY("\x80\x02]."), -1, &pt), LDM_EFORMAT, "saved object is not a dict");
    ck_fails_with(open_legacy(BODY("\x80\x02."), -1, &pt), LDM_EFORMAT, "stack underflow");
    ck_fails_with(open_legacy(BODY("\x80\x02}}."), -1, &pt), LDM_EFORMAT, "more than one value");
    ck_fails_with(open_legacy(BODY("\x80\x02(}."), -1, &pt), LDM_EFORMAT, "mark still open");
    ck_fails_with(open_legacy(BODY("\x80\x02h\x05."), -1, &pt), LDM_EFORMAT, "memo key 5 not defined");
    ck_fails_with(open_legacy(BODY("\x80\x02}r\xff\xff\xff\x7f."), -1, &pt), LDM_ERANGE, "memo key");
    ck_fails_with(open_legacy(BODY("\x80\x02X\xf0\xff\xff\xff"), -1, &pt), LDM_ERANGE,
                  "string of 4294967280 bytes");
    ck_fails_with(open_legacy(BODY("\x80\x02X\x10\x00\x00\x00" "abc"), -1, &pt), LDM_EFORMAT,
                  "truncated at byte");
    ck_fails_with(open_legacy(BODY("\x80\x02]K\x01K\x02s."), -1, &pt), LDM_EFORMAT, "not a dict");
    ck_fails_with(open_legacy(BODY("\x80\x02}K\x01u."), -1, &pt), LDM_EFORMAT, "no mark");
    ck_fails_with(open_legacy(BODY("\x80\x02}(K\x01u."), -1, &pt), LDM_EFORMAT, "odd number");
    ck_fails_with(open_legacy(BODY("\x80\x06}."), -1, &pt), LDM_EUNSUPPORTED, "protocol 6");
    ck_fails_with(open_legacy(BODY("\x80\x02}Q."), -1, &pt), LDM_EFORMAT,
                  "persistent id is not a storage tuple");
    ck_fails_with(open_legacy(BODY("\x80\x02}\x8a\x41."), -1, &pt), LDM_ERANGE, "integer of 65 bytes");
    static unsigned char cut[256];
    size_t n = legacy_file(cut, BODY("\x80\x02}"), -1) - 4;
    ck_fails_with(ldm_pt_open_buffer(&pt, cut, n, "cut.bin"), LDM_EFORMAT, "no STOP");
    static const unsigned char notorch[] = "\x80\x02K\x01.";
    ck_fails_with(ldm_pt_open_buffer(&pt, notorch, sizeof notorch - 1, NULL), LDM_EFORMAT,
                  "<buffer>: not a torch file");
    ck_fails_with(ldm_pt_open_buffer(&pt, "PK\x03\x04", 4, "a.zip"), LDM_EFORMAT, "too short");
}
END_TEST

/* Deep marks, a deep stack, deeply nested and self-containing dicts. */
START_TEST(limits)
{
    static char body[1 << 19];
    struct ldm_pt *pt = NULL;
    size_t n = 2;
    memcpy(body, "\x80\x02", 2);
    memset(body + n, '(', 70000);
    n += 70000;
    ck_fails_with(open_legacy(body, n, -1, &pt), LDM_ERANGE, "open marks");
    n = 2;
    for (int i = 0; i < 40; i++, n += 6)
        memcpy(body + n, "}X\x01\x00\x00\x00", 6), body[n + 6] = 'k', n++;
    memcpy(body + n, "}", 1), n++;
    memset(body + n, 's', 40), n += 40;
    body[n++] = '.';
    ck_fails_with(open_legacy(body, n, -1, &pt), LDM_ERANGE, "nested deeper than 32");
    ck_fails_with(open_legacy(BODY("\x80\x02}q\x00X\x01\x00\x00\x00kh\x00s."), -1, &pt), LDM_ERANGE,
                  "nested deeper");
    /* a list holding itself is fine: lists are not walked */
    ck_ok(open_legacy(BODY("\x80\x02}X\x01\x00\x00\x00k]q\x01h\x01\x61s."), -1, &pt));
    ck_assert_uint_eq(ldm_pt_count(pt), 0);
    ldm_pt_close(&pt);
}
END_TEST

/* Replace each `from` in b by `to` (same length); returns how many. */
static int replace_all(unsigned char *b, size_t len, const char *from, const char *to)
{
    int k = 0;
    size_t n = strlen(from);
    for (unsigned char *p = b; (p = memmem(p, len - (size_t)(p - b), from, n)) != NULL; p += n, k++)
        memcpy(p, to, n);
    return k;
}

/* A zip file whose pickle is edited in place (the reader does not check CRCs). */
START_TEST(zip_edits)
{
    char *dir = make_torch_files(), path[4096];
    snprintf(path, sizeof path, "%s/zip.pt", dir);
    struct ldm_map m;
    ck_ok(ldm_map_file(path, &m));
    unsigned char *b = malloc(m.len);
    memcpy(b, m.data, m.len);
    unsigned char *at = memmem(b, m.len, "OrderedDict", 11);
    ck_assert_ptr_nonnull(at);
    at[10] = 'x';
    struct ldm_pt *pt = NULL;
    char msg[128];
    snprintf(msg, sizeof msg, "refused global 'collections.OrderedDicx' at byte %zu",
             (size_t)(at - b) - 13);
    ck_fails_with(ldm_pt_open_buffer(&pt, b, m.len, "edit.pt"), LDM_EDENIED, msg);
    memcpy(b, m.data, m.len);
    ck_assert_int_eq(replace_all(b, m.len, "zip/data/3", "zip/data/9"), 2);
    ck_fails_with(ldm_pt_open_buffer(&pt, b, m.len, "edit.pt"), LDM_EFORMAT,
                  "storage member 'zip/data/3' missing");
    memcpy(b, m.data, m.len);
    ck_assert_int_eq(replace_all(b, m.len, "zip/data.pkl", "zip/Data.pkl"), 2);
    ck_fails_with(ldm_pt_open_buffer(&pt, b, m.len, "edit.pt"), LDM_EFORMAT, "no ARCHIVE/data.pkl");
    free(b);
    ldm_unmap(&m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_pickle(void)
{
    Suite *s = suite_create("pickle");
    TCase *tc = tcase_create("torch files");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, torch_save_files);
    tcase_add_test(tc, lookup_errors);
    tcase_add_test(tc, truncated_files);
    tcase_add_test(tc, zip_edits);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_add_test(tc, hand_made_tensors);
    tcase_add_test(tc, refused_globals);
    tcase_add_test(tc, malformed_pickles);
    tcase_add_test(tc, limits);
    suite_add_tcase(s, tc);
    return s;
}

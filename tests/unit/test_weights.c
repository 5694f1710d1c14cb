/* test_weights.c — a model part's weights: single, sharded, safetensors and torch .bin files. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "fsutil.h"
#include "models/weights.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"

Suite *suite_weights(void);

static const float W1[6] = {1, 2, 3, 4, 5, 6}, W2[2] = {7, 8}, W3[3] = {9, 10, 11};

static void write_st(const char *dir, const char *file, const struct ldm_st_tensor *t, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    ck_ok(ldm_st_write(path, t, n, NULL, 0));
}

static void write_text(const char *dir, const char *file, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    tu_write_file(path, text, strlen(text));
}

static const struct ldm_st_tensor T_A = {"conv.weight", LDM_DT_F32, 2, {2, 3}, W1, sizeof W1};
static const struct ldm_st_tensor T_B = {"conv.bias", LDM_DT_F32, 1, {2}, W2, sizeof W2};
static const struct ldm_st_tensor T_C = {"norm.weight", LDM_DT_F32, 1, {3}, W3, sizeof W3};

START_TEST(single_safetensors)
{
    char *dir = tu_tmpdir();
    struct ldm_st_tensor t[2] = {T_A, T_B};
    write_st(dir, "diffusion_pytorch_model.safetensors", t, 2);
    write_text(dir, "pytorch_model.bin", "not read: safetensors come first");
    struct ldm_weights *w = NULL;
    ck_ok(ldm_weights_open(&w, dir));
    ck_assert(strstr(ldm_weights_source(w), "/diffusion_pytorch_model.safetensors") != NULL);
    ck_assert_uint_eq(ldm_weights_count(w), 2);
    ck_assert_uint_eq(ldm_weights_files(w), 1);
    ck_assert_str_eq(ldm_weights_at(w, 0)->name, "conv.bias");
    ck_assert_ptr_null(ldm_weights_at(w, 2));
    const struct ldm_st_tensor *got;
    ck_ok(ldm_weights_expect(w, "conv.weight", LDM_DT_F32, 2, (int64_t[]){2, 3}, &got));
    ck_assert(memcmp(got->data, W1, sizeof W1) == 0);
    ck_fails_with(ldm_weights_expect(w, "conv.weight", LDM_DT_F32, 2, (int64_t[]){3, 2}, &got),
                  LDM_EFORMAT, "diffusion_pytorch_model.safetensors: tensor 'conv.weight': F32 [2,3], "
                  "expected F32 [3,2]");
    ck_assert_ptr_null(got);
    ck_fails_with(ldm_weights_find(w, "nope", &got), LDM_ENOTFOUND, "no tensor 'nope'");
    ck_fails_with(ldm_weights_expect(w, "nope", LDM_DT_F32, 0, NULL, NULL), LDM_ENOTFOUND, "'nope'");
    ldm_weights_close(&w);
    ck_assert_ptr_null(w);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static const char index_ab[] =
    "{\"metadata\": {\"total_size\": 44}, \"weight_map\": {\"conv.weight\": \"m-00001-of-00002.safetensors\","
    " \"conv.bias\": \"m-00001-of-00002.safetensors\", \"norm.weight\": \"m-00002-of-00002.safetensors\"}}";

START_TEST(sharded_safetensors)
{
    char *dir = tu_tmpdir();
    struct ldm_st_tensor t[2] = {T_A, T_B};
    write_st(dir, "m-00001-of-00002.safetensors", t, 2);
    write_st(dir, "m-00002-of-00002.safetensors", &T_C, 1);
    write_text(dir, "model.safetensors.index.json", index_ab);
    struct ldm_weights *w = NULL;
    ck_ok(ldm_weights_open(&w, dir));
    ck_assert_uint_eq(ldm_weights_files(w), 2);
    ck_assert_uint_eq(ldm_weights_count(w), 3);
    const struct ldm_st_tensor *got;
    ck_ok(ldm_weights_expect(w, "norm.weight", LDM_DT_F32, 1, (int64_t[]){3}, &got));
    ck_assert(memcmp(got->data, W3, sizeof W3) == 0);
    ck_fails_with(ldm_weights_expect(w, "norm.weight", LDM_DT_F16, 1, (int64_t[]){3}, NULL),
                  LDM_EFORMAT, "m-00002-of-00002.safetensors: tensor 'norm.weight': F32 [3], expected F16 [3]");
    ldm_weights_close(&w);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static void index_fails(const char *index, int code, const char *needle)
{
    char *dir = tu_tmpdir();
    struct ldm_st_tensor t[2] = {T_A, T_B};
    write_st(dir, "a.safetensors", t, 2);
    write_st(dir, "b.safetensors", &T_C, 1);
    struct ldm_st_tensor dup = T_C;
    dup.name = "conv.bias";
    write_st(dir, "dup.safetensors", &dup, 1);
    write_text(dir, "diffusion_pytorch_model.safetensors.index.json", index);
    struct ldm_weights *w = NULL;
    ck_fails_with(ldm_weights_open(&w, dir), code, needle);
    ck_assert_ptr_null(w);
    tu_rmtree(dir);
    free(dir);
}

START_TEST(bad_shards)
{
    index_fails("{\"weight_map\": {\"conv.bias\": \"c.safetensors\"}}", LDM_ENOTFOUND,
                "c.safetensors: no such file");
    index_fails("{\"weight_map\": {\"norm.weight\": \"a.safetensors\"}}", LDM_EFORMAT,
                "tensor 'norm.weight' is not in");
    index_fails("{\"weight_map\": {\"x\": \"../a.safetensors\"}}", LDM_EFORMAT,
                "weight_map['x'] is not a file name in the folder");
    index_fails("{\"weight_map\": {\"x\": 5}}", LDM_EFORMAT, "weight_map['x']");
    index_fails("{\"weight_map\": {}}", LDM_EFORMAT, "empty \"weight_map\"");
    index_fails("{\"metadata\": {}}", LDM_EFORMAT, "no \"weight_map\" object");
    index_fails("{\"weight_map\": {\"conv.weight\": \"a.safetensors\", \"norm.weight\": \"dup.safetensors\"}}",
                LDM_EFORMAT, "tensor 'norm.weight' is not in");
    index_fails("{\"weight_map\": {\"conv.weight\": \"a.safetensors\", \"conv.bias\": \"dup.safetensors\"}}",
                LDM_EFORMAT, "tensor 'conv.bias' is in both");
    index_fails("{\"weight_map\": ", LDM_EFORMAT, "index.json: line");
    char *dir = tu_tmpdir();
    struct ldm_weights *w = NULL;
    ck_fails_with(ldm_weights_open(&w, dir), LDM_ENOTFOUND, "no weights");
    write_text(dir, "model.safetensors", "junk");
    ck_fails_with(ldm_weights_open(&w, dir), LDM_EFORMAT, "model.safetensors");
    ck_assert_ptr_null(w);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* diffusers' fp16 variant is taken when the folder holds nothing else; a missing shard
 * is still an error naming the shard's path, variant or not. */
START_TEST(not_found_details)
{
    char *dir = tu_tmpdir(), want[4200];
    struct ldm_st_tensor t[2] = {T_A, T_B};
    write_st(dir, "diffusion_pytorch_model.fp16.safetensors", t, 2);
    struct ldm_weights *w = NULL;
    ck_ok(ldm_weights_open(&w, dir));
    ck_assert_uint_eq(ldm_weights_count(w), 2);
    ck_assert(strstr(ldm_weights_source(w), "fp16.safetensors") != NULL);
    ldm_weights_close(&w);
    write_text(dir, "diffusion_pytorch_model.safetensors.index.json",
               "{\"weight_map\": {\"conv.weight\": \"m-00001-of-00002.safetensors\"}}");
    snprintf(want, sizeof want, "%s/m-00001-of-00002.safetensors: no such file", dir);
    ck_fails_with(ldm_weights_open(&w, dir), LDM_ENOTFOUND, want);
    ck_assert(strncmp(ldm_errmsg(), want, strlen(want)) == 0);
    ck_assert_ptr_null(w);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* torch .bin files, single and sharded, made by tests/golden/torch_save.py. */
START_TEST(torch_bins)
{
    char *src = tu_tmpdir(), *dir = tu_tmpdir(), cmd[8192];
    snprintf(cmd, sizeof cmd,
             PYTHON " tests/golden/torch_save.py '%s' && cp '%s/module.bin' '%s/pytorch_model.bin'",
             src, src, dir);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed", cmd);
    struct ldm_weights *w = NULL;
    ck_ok(ldm_weights_open(&w, dir));
    ck_assert_uint_eq(ldm_weights_count(w), 4);
    ck_ok(ldm_weights_expect(w, "0.weight", LDM_DT_F32, 2, (int64_t[]){3, 4}, NULL));
    ck_fails_with(ldm_weights_expect(w, "1.bias", LDM_DT_F32, 1, (int64_t[]){4}, NULL), LDM_EFORMAT,
                  "pytorch_model.bin: tensor '1.bias': F32 [3], expected F32 [4]");
    ldm_weights_close(&w);
    snprintf(cmd, sizeof cmd, "rm '%s/pytorch_model.bin' && cp '%s/module.bin' '%s/zip.pt' '%s/'",
             dir, src, src, dir);
    st = system(cmd);
    ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    write_text(dir, "pytorch_model.bin.index.json",
               "{\"weight_map\": {\"0.weight\": \"module.bin\", \"half\": \"zip.pt\"}}");
    ck_ok(ldm_weights_open(&w, dir));
    ck_assert_uint_eq(ldm_weights_files(w), 2);
    ck_assert_uint_eq(ldm_weights_count(w), 15);
    ck_ok(ldm_weights_expect(w, "half", LDM_DT_F16, 1, (int64_t[]){5}, NULL));
    ck_ok(ldm_weights_expect(w, "1.weight", LDM_DT_F32, 1, (int64_t[]){3}, NULL));
    ldm_weights_close(&w);
    tu_rmtree(src);
    tu_rmtree(dir);
    free(src);
    free(dir);
}
END_TEST

Suite *suite_weights(void)
{
    Suite *s = suite_create("weights");
    TCase *tc = tcase_create("weights");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, single_safetensors);
    tcase_add_test(tc, sharded_safetensors);
    tcase_add_test(tc, bad_shards);
    tcase_add_test(tc, not_found_details);
    tcase_add_test(tc, torch_bins);
    suite_add_tcase(s, tc);
    return s;
}

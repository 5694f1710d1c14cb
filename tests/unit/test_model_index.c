/* test_model_index.c — model_index.json: parts and classes, absent parts, malformed files. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "models/model_index.h"
#include "testutil.h"

Suite *suite_model_index(void);

/* A pipeline folder with model_index.json `json` and sub-folders `parts` (space-separated). */
static char *make_pipeline(const char *json, const char *parts)
{
    char *dir = tu_tmpdir(), path[4096], names[256];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    tu_write_file(path, json, strlen(json));
    snprintf(names, sizeof names, "%s", parts);
    for (char *save, *p = strtok_r(names, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
        snprintf(path, sizeof path, "%s/%s", dir, p);
        ck_assert_int_eq(mkdir(path, 0755), 0);
    }
    return dir;
}

static const char sd15[] =
    "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.26.3\","
    " \"feature_extractor\": [\"transformers\", \"CLIPImageProcessor\"],"
    " \"requires_safety_checker\": true, \"safety_checker\": [null, null],"
    " \"scheduler\": [\"diffusers\", \"PNDMScheduler\"],"
    " \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],"
    " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],"
    " \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],"
    " \"vae\": [\"diffusers\", \"AutoencoderKL\"]}";

START_TEST(stable_diffusion_index)
{
    char *dir = make_pipeline(sd15, "feature_extractor scheduler text_encoder tokenizer unet vae");
    struct ldm_model_index mi;
    ck_ok(ldm_model_index_load(&mi, dir));
    ck_assert_str_eq(mi.class_name, "StableDiffusionPipeline");
    ck_assert_str_eq(mi.version, "0.26.3");
    ck_assert_uint_eq(mi.nparts, 6);
    const char *names[] = {"feature_extractor", "scheduler", "text_encoder", "tokenizer", "unet", "vae"};
    for (size_t i = 0; i < 6; i++)
        ck_assert_str_eq(mi.parts[i].name, names[i]);
    const struct ldm_model_part *p;
    ck_ok(ldm_model_index_expect(&mi, "unet", "UNet2DConditionModel", &p));
    ck_assert_str_eq(p->library, "diffusers");
    ck_assert_str_eq(ldm_model_index_part(&mi, "text_encoder")->library, "transformers");
    ck_assert_ptr_null(ldm_model_index_part(&mi, "safety_checker"));
    ck_fails_with(ldm_model_index_expect(&mi, "vae", "UNet2DConditionModel", &p), LDM_EFORMAT,
                  "part 'vae' is a AutoencoderKL, expected a UNet2DConditionModel");
    ck_fails_with(ldm_model_index_expect(&mi, "safety_checker", "X", NULL), LDM_ENOTFOUND,
                  "no part 'safety_checker'");
    ldm_model_index_free(&mi);
    ck_assert_ptr_null(mi.parts);
    ldm_model_index_free(&mi);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static void fails(const char *json, const char *parts, int code, const char *needle)
{
    char *dir = make_pipeline(json, parts);
    struct ldm_model_index mi;
    ck_fails_with(ldm_model_index_load(&mi, dir), code, needle);
    ldm_model_index_free(&mi);
    tu_rmtree(dir);
    free(dir);
}

START_TEST(bad_indexes)
{
    fails(sd15, "scheduler text_encoder tokenizer unet vae", LDM_ENOTFOUND,
          "part 'feature_extractor' has no folder");
    fails("{\"unet\": [\"diffusers\", \"UNet2DConditionModel\"]}", "unet", LDM_EFORMAT,
          "no \"_class_name\"");
    fails("{\"_class_name\": 3}", "", LDM_EFORMAT, "_class_name");
    fails("{\"_class_name\": \"P\", \"unet\": [\"diffusers\"]}", "unet", LDM_EFORMAT,
          "part 'unet' is not [library, class]");
    fails("{\"_class_name\": \"P\", \"unet\": [\"diffusers\", 7]}", "unet", LDM_EFORMAT,
          "part 'unet' is not [library, class]");
    fails("{\"_class_name\": \"P\", \"..\": [\"diffusers\", \"X\"]}", "", LDM_EFORMAT,
          "part name '..' is not a plain folder name");
    fails("{\"_class_name\": \"P\", \"a/b\": [\"diffusers\", \"X\"]}", "", LDM_EFORMAT,
          "part name 'a/b'");
    fails("[1, 2]", "", LDM_EFORMAT, "not a JSON object");
    fails("{\"_class_name\": ", "", LDM_EFORMAT, "model_index.json: line");
    char *dir = tu_tmpdir();
    struct ldm_model_index mi;
    ck_fails_with(ldm_model_index_load(&mi, dir), LDM_ENOTFOUND, "model_index.json");
    ldm_model_index_free(&mi);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

Suite *suite_model_index(void)
{
    Suite *s = suite_create("model_index");
    TCase *tc = tcase_create("model_index");
    tcase_add_test(tc, stable_diffusion_index);
    tcase_add_test(tc, bad_indexes);
    suite_add_tcase(s, tc);
    return s;
}

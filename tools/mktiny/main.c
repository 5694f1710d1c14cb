/* main.c — mktiny: a diffusers model folder with small random models (SD-1, SD-2 or SDXL
 * layout): model_index.json, unet/, vae/, text_encoder/ (+ text_encoder_2/), tokenizer/
 * (+ tokenizer_2/), scheduler/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "mktiny.h"

#define DEFAULT_BPE "../shared/data/clip/bpe_simple_vocab_16e6.txt.gz"

static void usage(FILE *f)
{
    fprintf(f, "usage: mktiny --variant sd1|sd2|sdxl --out DIR [--seed K] [--bpe FILE]\n"
               "  writes a diffusers model folder with small random weights; --bpe is CLIP's\n"
               "  bpe_simple_vocab_16e6.txt.gz (default " DEFAULT_BPE ",\n"
               "  or $LDM_TEST_DATA/clip/...)\n");
}

/* SD-1: PNDM (epsilon); SD-2: DDIM (v-prediction); SDXL: Euler (epsilon); all the
 * scaled-linear betas 0.00085 .. 0.012 over 1000 steps. */
int mt_scheduler(const struct mt_opts *o)
{
    static const char *cls[] = {"PNDMScheduler", "DDIMScheduler", "EulerDiscreteScheduler"};
    char dir[4096];
    int rc = mt_subdir(dir, sizeof dir, o->out, "scheduler");
    json_t *c = rc ? NULL
                   : json_pack("{s:s, s:s, s:f, s:f, s:s, s:i, s:i, s:s, s:s, s:n, s:b}",
                               "_class_name", cls[o->variant], "_diffusers_version", "0.26.3",
                               "beta_start", 0.00085, "beta_end", 0.012, "beta_schedule",
                               "scaled_linear", "num_train_timesteps", 1000, "steps_offset", 1,
                               "prediction_type",
                               o->variant == MT_SD2 ? "v_prediction" : "epsilon",
                               "timestep_spacing", "leading", "trained_betas", "clip_sample", 0);
    if (!rc && !c)
        return ldm_fail(LDM_ENOMEM, "scheduler config");
    if (!rc && o->variant != MT_SDXL) {
        json_object_set_new(c, "set_alpha_to_one", json_false());
        json_object_set_new(c, "skip_prk_steps", json_boolean(o->variant == MT_SD1));
    }
    if (!rc && o->variant == MT_SDXL) {
        json_object_set_new(c, "interpolation_type", json_string("linear"));
        json_object_set_new(c, "use_karras_sigmas", json_false());
    }
    if (!rc)
        rc = mt_write_json(dir, "scheduler_config.json", c);
    json_decref(c);
    return rc;
}

static int model_index(const struct mt_opts *o)
{
    static const char *cls[] = {"StableDiffusionPipeline", "StableDiffusionPipeline",
                                "StableDiffusionXLPipeline"};
    static const char *sch[] = {"PNDMScheduler", "DDIMScheduler", "EulerDiscreteScheduler"};
    json_t *m = json_pack("{s:s, s:s, s:[s,s], s:[s,s], s:[s,s], s:[s,s], s:[s,s]}",
                          "_class_name", cls[o->variant], "_diffusers_version", "0.26.3",
                          "scheduler", "diffusers", sch[o->variant], "text_encoder",
                          "transformers", "CLIPTextModel", "tokenizer", "transformers",
                          "CLIPTokenizer", "unet", "diffusers", "UNet2DConditionModel", "vae",
                          "diffusers", "AutoencoderKL");
    if (!m)
        return ldm_fail(LDM_ENOMEM, "model_index.json");
    if (o->variant == MT_SDXL) {
        json_object_set_new(m, "text_encoder_2",
                            json_pack("[s,s]", "transformers", "CLIPTextModelWithProjection"));
        json_object_set_new(m, "tokenizer_2", json_pack("[s,s]", "transformers", "CLIPTokenizer"));
        json_object_set_new(m, "force_zeros_for_empty_prompt", json_true());
    } else {
        json_object_set_new(m, "safety_checker", json_pack("[n,n]"));
        json_object_set_new(m, "feature_extractor", json_pack("[n,n]"));
        json_object_set_new(m, "requires_safety_checker", json_false());
    }
    int rc = mt_write_json(o->out, "model_index.json", m);
    json_decref(m);
    return rc;
}

static int parse(int argc, char **argv, struct mt_opts *o, char *bpe, size_t bpe_size)
{
    static const char *names[] = {"sd1", "sd2", "sdxl"};
    const char *data = getenv("LDM_TEST_DATA");
    snprintf(bpe, bpe_size, "%s/clip/bpe_simple_vocab_16e6.txt.gz", data ? data : "../shared/data");
    o->bpe = bpe, o->variant = -1;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return ldm_fail(LDM_EINVAL, "%s: unknown option, or no value after it", argv[i]);
        if (!strcmp(argv[i], "--variant")) {
            for (int k = 0; k < 3; k++)
                if (!strcmp(v, names[k]))
                    o->variant = k;
            if (o->variant < 0)
                return ldm_fail(LDM_EINVAL, "--variant: \"%s\" is not sd1, sd2 or sdxl", v);
        } else if (!strcmp(argv[i], "--out")) {
            o->out = v;
        } else if (!strcmp(argv[i], "--bpe")) {
            o->bpe = v;
        } else if (!strcmp(argv[i], "--seed")) {
            char *end;
            errno = 0;
            o->seed = strtoull(v, &end, 10);
            if (errno || *end || !*v || *v == '-')
                return ldm_fail(LDM_EINVAL, "--seed: \"%s\" is not a whole number >= 0", v);
        } else {
            return ldm_fail(LDM_EINVAL, "unknown option %s", argv[i]);
        }
    }
    if (o->variant < 0 || !o->out)
        return ldm_fail(LDM_EINVAL, "--variant and --out are needed");
    return 0;
}

static int make(const struct mt_opts *o)
{
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST)
        return ldm_fail_errno(LDM_EIO, "%s: mkdir", o->out);
    int xl = o->variant == MT_SDXL;
    int rc = mt_tokenizer(o, "tokenizer", 0);
    if (!rc && xl) rc = mt_tokenizer(o, "tokenizer_2", 1);
    if (!rc) rc = mt_text_encoder(o, "text_encoder", 0);
    if (!rc && xl) rc = mt_text_encoder(o, "text_encoder_2", 1);
    if (!rc) rc = mt_vae(o);
    if (!rc) rc = mt_unet(o);
    if (!rc) rc = mt_scheduler(o);
    if (!rc) rc = model_index(o);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    struct mt_opts o = {.seed = 0};
    char bpe[4096];
    int rc = parse(argc, argv, &o, bpe, sizeof bpe);
    if (rc) {
        fprintf(stderr, "mktiny: %s\n", ldm_errmsg());
        usage(stderr);
        return 2;
    }
    rc = make(&o);
    if (rc) {
        fprintf(stderr, "mktiny: %s\n", ldm_errmsg()[0] ? ldm_errmsg() : ldm_strerror(rc));
        return 1;
    }
    return 0;
}

/* unet_part.c — mktiny's unet/: a small UNet2DConditionModel config per variant, random
 * weights, saved through ldm_unet_save_from. */
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "mktiny.h"
#include "models/unet.h"
#include "models/unet_save.h"

/* Blocks of 32 and 64 channels at sample size 32, as diffusers' own tiny test UNets. */
static json_t *unet_config(int variant)
{
    int xl = variant == MT_SDXL;
    json_t *c = json_pack(
        "{s:s, s:s, s:s, s:[i,i], s:b, s:i, s:b, s:i, s:i, s:s, s:f, s:i, s:i, s:i, s:i, s:b,"
        " s:b, s:s, s:s, s:s}",
        "_class_name", "UNet2DConditionModel", "_diffusers_version", "0.26.3", "act_fn", "silu",
        "block_out_channels", 32, 64, "center_input_sample", 0, "cross_attention_dim",
        xl ? 2 * MT_CLIP_WIDTH : MT_CLIP_WIDTH, "flip_sin_to_cos", 1, "freq_shift", 0,
        "in_channels", 4, "mid_block_type", "UNetMidBlock2DCrossAttn", "norm_eps", 1e-5,
        "norm_num_groups", 32, "out_channels", 4, "layers_per_block", 2, "sample_size", 32,
        "use_linear_projection", variant != MT_SD1, "upcast_attention", 0,
        "time_embedding_type", "positional", "resnet_time_scale_shift", "default",
        "attention_type", "default");
    if (!c)
        return NULL;
    if (variant == MT_SD1) {
        json_object_set_new(c, "attention_head_dim", json_integer(2));
        json_object_set_new(c, "down_block_types",
                            json_pack("[s,s]", "CrossAttnDownBlock2D", "DownBlock2D"));
        json_object_set_new(c, "up_block_types",
                            json_pack("[s,s]", "UpBlock2D", "CrossAttnUpBlock2D"));
        return c;
    }
    json_object_set_new(c, "attention_head_dim", json_pack("[i,i]", 2, 4));
    json_object_set_new(c, "down_block_types",
                        json_pack("[s,s]", xl ? "DownBlock2D" : "CrossAttnDownBlock2D",
                                  "CrossAttnDownBlock2D"));
    json_object_set_new(c, "up_block_types",
                        json_pack("[s,s]", "CrossAttnUpBlock2D",
                                  xl ? "UpBlock2D" : "CrossAttnUpBlock2D"));
    if (xl) {
        json_object_set_new(c, "transformer_layers_per_block", json_pack("[i,i]", 1, 2));
        json_object_set_new(c, "addition_embed_type", json_string("text_time"));
        json_object_set_new(c, "addition_time_embed_dim", json_integer(8));
        json_object_set_new(c, "projection_class_embeddings_input_dim",
                            json_integer(6 * 8 + MT_CLIP_PROJ));
    }
    return c;
}

/* Random values for every parameter, uploaded into the model. */
static int randomize(struct ldm_unet *u, struct ldm_ctx *ctx, uint64_t seed)
{
    for (size_t i = 0; i < ldm_unet_nparams(u); i++) {
        struct ldm_tensor p, g;
        int rc = ldm_unet_param(u, i, &p, &g);
        size_t n = ldm_tensor_numel(&p);
        float *h = malloc((n ? n : 1) * sizeof *h);
        if (!rc && !h)
            rc = ldm_fail(LDM_ENOMEM, "%s: %zu floats", p.name, n);
        if (!rc) {
            mt_fill(h, n, p.name, p.ndim, p.shape, seed, 1000 + i);
            rc = ldm_ctx_upload(ctx, p.data, h, n * sizeof *h);
        }
        free(h);
        if (rc)
            return rc;
    }
    return 0;
}

int mt_unet(const struct mt_opts *o)
{
    char dir[4096], cfgp[4200];
    int rc = mt_subdir(dir, sizeof dir, o->out, "unet");
    json_t *cfg = rc ? NULL : unet_config(o->variant);
    if (!rc && !cfg)
        rc = ldm_fail(LDM_ENOMEM, "unet config");
    if (!rc)
        rc = mt_write_json(dir, "config.json", cfg);
    json_decref(cfg);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    struct ldm_unet_config c;
    struct ldm_ctx *ctx = NULL;
    struct ldm_unet *u = NULL;
    if (!rc) rc = ldm_unet_config_load(&c, cfgp);
    if (!rc) rc = ldm_ctx_open(&ctx, "cpu", 1);
    if (!rc) rc = ldm_unet_create(&u, ctx, &c);
    if (!rc) rc = randomize(u, ctx, o->seed);
    if (!rc) rc = ldm_unet_save_from(u, dir, cfgp);
    ldm_unet_free(&u);
    ldm_ctx_close(&ctx);
    return rc;
}

/* vae_part.c — mktiny's vae/: a small AutoencoderKL (32 and 64 channels) with random weights
 * under diffusers' state-dict names. */
#include <stdio.h>

#include "err.h"
#include "mktiny_tensors.h"

#define VAE_NB 2
static const int vae_ch[VAE_NB] = {32, 64};
#define VAE_LAYERS 1
#define VAE_LATENT 4

static int conv(struct mt_list *l, const char *pre, int64_t K, int64_t C, int64_t R)
{
    int rc = mt_list_add(l, MT_SHAPE(K, C, R, R), "%s.weight", pre);
    return rc ? rc : mt_list_add(l, MT_SHAPE(K), "%s.bias", pre);
}

static int norm(struct mt_list *l, const char *pre, int64_t C)
{
    int rc = mt_list_add(l, MT_SHAPE(C), "%s.weight", pre);
    return rc ? rc : mt_list_add(l, MT_SHAPE(C), "%s.bias", pre);
}

static int resnet(struct mt_list *l, const char *pre, int cin, int cout)
{
    char n[100];
    int rc = 0;
    snprintf(n, sizeof n, "%s.norm1", pre), rc |= norm(l, n, cin);
    snprintf(n, sizeof n, "%s.conv1", pre), rc |= conv(l, n, cout, cin, 3);
    snprintf(n, sizeof n, "%s.norm2", pre), rc |= norm(l, n, cout);
    snprintf(n, sizeof n, "%s.conv2", pre), rc |= conv(l, n, cout, cout, 3);
    if (cin != cout)
        snprintf(n, sizeof n, "%s.conv_shortcut", pre), rc |= conv(l, n, cout, cin, 1);
    return rc ? LDM_ENOMEM : 0;
}

/* UNetMidBlock2D: resnet, self-attention (to_q/k/v, to_out.0 as linears), resnet. */
static int mid(struct mt_list *l, const char *pre, int c)
{
    static const char *lin[] = {"to_q", "to_k", "to_v", "to_out.0"};
    char n[100];
    int rc = 0;
    snprintf(n, sizeof n, "%s.resnets.0", pre), rc |= resnet(l, n, c, c);
    snprintf(n, sizeof n, "%s.attentions.0.group_norm", pre), rc |= norm(l, n, c);
    for (int i = 0; i < 4; i++) {
        rc |= mt_list_add(l, MT_SHAPE(c, c), "%s.attentions.0.%s.weight", pre, lin[i]);
        rc |= mt_list_add(l, MT_SHAPE(c), "%s.attentions.0.%s.bias", pre, lin[i]);
    }
    snprintf(n, sizeof n, "%s.resnets.1", pre), rc |= resnet(l, n, c, c);
    return rc ? LDM_ENOMEM : 0;
}

static int encoder(struct mt_list *l)
{
    char n[100];
    int rc = conv(l, "encoder.conv_in", vae_ch[0], 3, 3), last = vae_ch[VAE_NB - 1];
    for (int i = 0; i < VAE_NB; i++) {
        for (int j = 0; j < VAE_LAYERS; j++) {
            snprintf(n, sizeof n, "encoder.down_blocks.%d.resnets.%d", i, j);
            rc |= resnet(l, n, j ? vae_ch[i] : vae_ch[i ? i - 1 : 0], vae_ch[i]);
        }
        snprintf(n, sizeof n, "encoder.down_blocks.%d.downsamplers.0.conv", i);
        if (i + 1 < VAE_NB)
            rc |= conv(l, n, vae_ch[i], vae_ch[i], 3);
    }
    rc |= mid(l, "encoder.mid_block", last);
    rc |= norm(l, "encoder.conv_norm_out", last);
    rc |= conv(l, "encoder.conv_out", 2 * VAE_LATENT, last, 3);
    return rc ? LDM_ENOMEM : 0;
}

static int decoder(struct mt_list *l)
{
    char n[100];
    int last = vae_ch[VAE_NB - 1];
    int rc = conv(l, "decoder.conv_in", last, VAE_LATENT, 3);
    rc |= mid(l, "decoder.mid_block", last);
    for (int i = 0; i < VAE_NB; i++) {
        int cout = vae_ch[VAE_NB - 1 - i], cin = vae_ch[VAE_NB - 1 - (i ? i - 1 : 0)];
        for (int j = 0; j <= VAE_LAYERS; j++) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d", i, j);
            rc |= resnet(l, n, j ? cout : cin, cout);
        }
        snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0.conv", i);
        if (i + 1 < VAE_NB)
            rc |= conv(l, n, cout, cout, 3);
    }
    rc |= norm(l, "decoder.conv_norm_out", vae_ch[0]);
    rc |= conv(l, "decoder.conv_out", 3, vae_ch[0], 3);
    return rc ? LDM_ENOMEM : 0;
}

static json_t *vae_config(int variant)
{
    return json_pack("{s:s, s:s, s:s, s:[i,i], s:[s,s], s:[s,s], s:i, s:i, s:i, s:i, s:i, s:i,"
                     " s:f, s:b}",
                     "_class_name", "AutoencoderKL", "_diffusers_version", "0.26.3", "act_fn",
                     "silu", "block_out_channels", vae_ch[0], vae_ch[1], "down_block_types",
                     "DownEncoderBlock2D", "DownEncoderBlock2D", "up_block_types",
                     "UpDecoderBlock2D", "UpDecoderBlock2D", "in_channels", 3, "out_channels", 3,
                     "latent_channels", VAE_LATENT, "layers_per_block", VAE_LAYERS,
                     "norm_num_groups", 32, "sample_size", 64, "scaling_factor",
                     variant == MT_SDXL ? 0.13025 : 0.18215, "force_upcast",
                     variant == MT_SDXL);
}

int mt_vae(const struct mt_opts *o)
{
    char dir[4096], path[4200];
    struct mt_list l = {0};
    int rc = mt_subdir(dir, sizeof dir, o->out, "vae");
    json_t *cfg = rc ? NULL : vae_config(o->variant);
    if (!rc && !cfg)
        rc = ldm_fail(LDM_ENOMEM, "vae config");
    if (!rc) rc = mt_write_json(dir, "config.json", cfg);
    if (!rc) rc = encoder(&l);
    if (!rc) rc = conv(&l, "quant_conv", 2 * VAE_LATENT, 2 * VAE_LATENT, 1);
    if (!rc) rc = conv(&l, "post_quant_conv", VAE_LATENT, VAE_LATENT, 1);
    if (!rc) rc = decoder(&l);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    if (!rc) rc = mt_list_write(&l, path, o->seed, 2000000);
    json_decref(cfg);
    mt_list_free(&l);
    return rc;
}

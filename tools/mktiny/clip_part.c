/* clip_part.c — mktiny's text_encoder/ and text_encoder_2/: small CLIP text transformers
 * (width 32, full 49408-token vocabulary) with random weights under transformers' names. */
#include <stdio.h>

#include "err.h"
#include "mktiny_tensors.h"

#define CLIP_VOCAB 49408
#define CLIP_POS 77
#define CLIP_LAYERS 2
#define CLIP_HEADS 4
#define CLIP_MLP 64

/* SD-1 and SDXL's first encoder use quick_gelu (OpenAI CLIP); SD-2 and SDXL's second gelu
 * (OpenCLIP). */
static json_t *clip_config(int variant, int second)
{
    int proj = second;
    const char *act = variant == MT_SD2 || second ? "gelu" : "quick_gelu";
    return json_pack("{s:[s], s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:i, s:i, s:i, s:i,"
                     " s:s, s:f, s:f, s:f, s:f, s:s}",
                     "architectures", proj ? "CLIPTextModelWithProjection" : "CLIPTextModel",
                     "model_type", "clip_text_model", "hidden_act", act, "hidden_size",
                     MT_CLIP_WIDTH, "intermediate_size", CLIP_MLP, "num_attention_heads",
                     CLIP_HEADS, "num_hidden_layers", CLIP_LAYERS, "max_position_embeddings",
                     CLIP_POS, "vocab_size", CLIP_VOCAB, "layer_norm_eps", 1e-5,
                     "projection_dim", MT_CLIP_PROJ, "bos_token_id", 49406, "eos_token_id",
                     49407, "pad_token_id", 1, "torch_dtype", "float32", "attention_dropout",
                     0.0, "dropout", 0.0, "initializer_factor", 1.0, "initializer_range", 0.02,
                     "transformers_version", "4.37.2");
}

static int layer(struct mt_list *l, int i)
{
    static const char *lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                "self_attn.out_proj"};
    const int64_t D = MT_CLIP_WIDTH, F = CLIP_MLP;
    int rc = 0;
    for (int k = 1; k <= 2; k++) {
        rc |= mt_list_add(l, MT_SHAPE(D), "text_model.encoder.layers.%d.layer_norm%d.weight", i, k);
        rc |= mt_list_add(l, MT_SHAPE(D), "text_model.encoder.layers.%d.layer_norm%d.bias", i, k);
    }
    for (int k = 0; k < 4; k++) {
        rc |= mt_list_add(l, MT_SHAPE(D, D), "text_model.encoder.layers.%d.%s.weight", i, lin[k]);
        rc |= mt_list_add(l, MT_SHAPE(D), "text_model.encoder.layers.%d.%s.bias", i, lin[k]);
    }
    rc |= mt_list_add(l, MT_SHAPE(F, D), "text_model.encoder.layers.%d.mlp.fc1.weight", i);
    rc |= mt_list_add(l, MT_SHAPE(F), "text_model.encoder.layers.%d.mlp.fc1.bias", i);
    rc |= mt_list_add(l, MT_SHAPE(D, F), "text_model.encoder.layers.%d.mlp.fc2.weight", i);
    rc |= mt_list_add(l, MT_SHAPE(D), "text_model.encoder.layers.%d.mlp.fc2.bias", i);
    return rc ? LDM_ENOMEM : 0;
}

static int clip_tensors(struct mt_list *l, int proj)
{
    const int64_t D = MT_CLIP_WIDTH;
    int rc = mt_list_add(l, MT_SHAPE(CLIP_VOCAB, D),
                         "text_model.embeddings.token_embedding.weight");
    rc |= mt_list_add(l, MT_SHAPE(CLIP_POS, D), "text_model.embeddings.position_embedding.weight");
    for (int i = 0; i < CLIP_LAYERS; i++)
        rc |= layer(l, i);
    rc |= mt_list_add(l, MT_SHAPE(D), "text_model.final_layer_norm.weight");
    rc |= mt_list_add(l, MT_SHAPE(D), "text_model.final_layer_norm.bias");
    if (proj)
        rc |= mt_list_add(l, MT_SHAPE(MT_CLIP_PROJ, D), "text_projection.weight");
    return rc ? LDM_ENOMEM : 0;
}

int mt_text_encoder(const struct mt_opts *o, const char *sub, int second)
{
    char dir[4096], path[4200];
    struct mt_list l = {0};
    int rc = mt_subdir(dir, sizeof dir, o->out, sub);
    json_t *cfg = rc ? NULL : clip_config(o->variant, second);
    if (!rc && !cfg)
        rc = ldm_fail(LDM_ENOMEM, "%s config", sub);
    if (!rc) rc = mt_write_json(dir, "config.json", cfg);
    if (!rc) rc = clip_tensors(&l, second);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = mt_list_write(&l, path, o->seed, second ? 4000000 : 3000000);
    json_decref(cfg);
    mt_list_free(&l);
    return rc;
}

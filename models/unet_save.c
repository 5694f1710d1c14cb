/* unet_save.c — a UNet as a diffusers folder: config.json from its config, F32 safetensors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fsutil.h"
#include "json.h"
#include "models/unet_int.h"
#include "models/unet_save.h"
#include "safetensors.h"

/* The shortest decimal that reads back as f (1e-5f is written 1e-05, not 9.99999975e-06). */
static json_t *float_real(float f)
{
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f)
            break;
    }
    return json_real(strtod(buf, NULL));
}

static json_t *int_list(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *type_list(const int *cross, int n, const char *yes, const char *no)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(cross[i] ? yes : no));
    return a;
}

static void set_blocks(json_t *o, const struct ldm_unet_config *c)
{
    int n = c->nblocks;
    json_object_set_new(o, "block_out_channels", int_list(c->block_out_channels, n));
    json_object_set_new(o, "down_block_types",
                        type_list(c->down_cross, n, "CrossAttnDownBlock2D", "DownBlock2D"));
    json_object_set_new(o, "up_block_types",
                        type_list(c->up_cross, n, "CrossAttnUpBlock2D", "UpBlock2D"));
    json_object_set_new(o, "mid_block_type", json_string("UNetMidBlock2DCrossAttn"));
    json_object_set_new(o, "attention_head_dim", int_list(c->heads, n));
    json_object_set_new(o, "num_attention_heads", json_null());
    json_object_set_new(o, "transformer_layers_per_block", int_list(c->tlayers, n));
}

static void set_scalars(json_t *o, const struct ldm_unet_config *c)
{
    json_object_set_new(o, "_class_name", json_string("UNet2DConditionModel"));
    json_object_set_new(o, "_diffusers_version", json_string("0.26.3"));
    json_object_set_new(o, "act_fn", json_string("silu"));
    json_object_set_new(o, "in_channels", json_integer(c->in_channels));
    json_object_set_new(o, "out_channels", json_integer(c->out_channels));
    json_object_set_new(o, "layers_per_block", json_integer(c->layers_per_block));
    json_object_set_new(o, "cross_attention_dim", json_integer(c->cross_attention_dim));
    json_object_set_new(o, "norm_num_groups", json_integer(c->norm_num_groups));
    json_object_set_new(o, "norm_eps", float_real(c->norm_eps));
    json_object_set_new(o, "flip_sin_to_cos", json_boolean(c->flip_sin_to_cos));
    json_object_set_new(o, "freq_shift", float_real(c->freq_shift));
    json_object_set_new(o, "use_linear_projection", json_boolean(c->use_linear_projection));
    json_object_set_new(o, "upcast_attention", json_boolean(c->upcast_attention));
    json_object_set_new(o, "conv_in_kernel", json_integer(c->conv_in_kernel));
    json_object_set_new(o, "conv_out_kernel", json_integer(c->conv_out_kernel));
    if (c->text_time) {
        json_object_set_new(o, "addition_embed_type", json_string("text_time"));
        json_object_set_new(o, "addition_time_embed_dim", json_integer(c->addition_time_embed_dim));
        json_object_set_new(o, "projection_class_embeddings_input_dim",
                            json_integer(c->add_embed_in));
    } else {
        json_object_set_new(o, "addition_embed_type", json_null());
    }
}

int ldm_unet_config_json(const struct ldm_unet *u, json_t **out)
{
    json_t *o = json_object();
    *out = NULL;
    if (!o)
        return ldm_fail(LDM_ENOMEM, "unet config: out of memory");
    set_scalars(o, &u->cfg);
    set_blocks(o, &u->cfg);
    /* a failed allocation inside leaves a key out: check the count of keys set */
    if (json_object_size(o) < 23 + (size_t)(u->cfg.text_time ? 2 : 0)) {
        json_decref(o);
        return ldm_fail(LDM_ENOMEM, "unet config: out of memory");
    }
    *out = o;
    return 0;
}

/* Write `cfg` as indented JSON to dir/config.json. */
static int write_config(const char *dir, const json_t *cfg)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return ldm_fail(LDM_EINVAL, "%s: path too long", dir);
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    if (!text)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    char *nl = realloc(text, n + 2);
    if (!nl) {
        free(text);
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
    }
    memcpy(nl + n, "\n", 2);
    int rc = ldm_write_atomic_buf(path, nl, strlen(nl));
    free(nl);
    return rc;
}

/* Copy every parameter (from `base`, an arena laid out as the model's parameters)
 * to host buffers of `dtype` (one block) and describe them. */
static int gather(const struct ldm_unet *u, const unsigned char *base, int dtype,
                  struct ldm_st_tensor *ts, void **block)
{
    size_t total = 0, esz = ldm_dtype_size(dtype), most = 0;
    for (size_t i = 0; i < u->nparams; i++) {
        total += ldm_tensor_numel(&u->params[i]) * esz;
        if (ldm_tensor_nbytes(&u->params[i]) > most)
            most = ldm_tensor_nbytes(&u->params[i]);
    }
    unsigned char *b = malloc(total ? total : 1);
    float *tmp = dtype == LDM_DT_F32 ? NULL : malloc(most ? most : 1);
    if (!b || (dtype != LDM_DT_F32 && !tmp)) {
        free(b);
        free(tmp);
        return ldm_fail(LDM_ENOMEM, "unet save: %zu bytes of parameters", total);
    }
    *block = b;
    int rc = 0;
    for (size_t i = 0; !rc && i < u->nparams; i++) {
        const struct ldm_tensor *p = &u->params[i];
        size_t n = ldm_tensor_numel(p), nb = ldm_tensor_nbytes(p);
        const unsigned char *src = base + ((const unsigned char *)p->data -
                                           (const unsigned char *)u->pa.base);
        rc = ldm_ctx_download(u->ctx, tmp ? (void *)tmp : (void *)b, src, nb);
        if (!rc && tmp)
            rc = ldm_convert(b, dtype, tmp, LDM_DT_F32, n);
        ts[i] = (struct ldm_st_tensor){.name = p->name, .dtype = dtype, .ndim = p->ndim,
                                       .data = b, .nbytes = n * esz};
        memcpy(ts[i].shape, p->shape, sizeof(int64_t) * (size_t)p->ndim);
        b += n * esz;
    }
    free(tmp);
    return rc;
}

static int write_weights(const struct ldm_unet *u, const char *dir,
                         const struct ldm_unet_save_opts *o)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir) >=
        (int)sizeof path)
        return ldm_fail(LDM_EINVAL, "%s: path too long", dir);
    struct ldm_st_tensor *ts = calloc(u->nparams ? u->nparams : 1, sizeof *ts);
    void *block = NULL;
    if (!ts)
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", path);
    static const struct ldm_st_kv meta[] = {{"format", "pt"}};
    const unsigned char *base = o->params ? o->params->base : u->pa.base;
    int rc = gather(u, base, o->dtype, ts, &block);
    if (!rc)
        rc = ldm_st_write(path, ts, u->nparams, meta, 1);
    free(block);
    free(ts);
    return rc;
}

static int make_dir(const char *dir)
{
    if (!dir || !*dir)
        return ldm_fail(LDM_EINVAL, "unet save: empty folder name");
    if (mkdir(dir, 0777) == 0 || errno == EEXIST)
        return 0;
    return ldm_fail_errno(errno == ENOENT ? LDM_ENOTFOUND : LDM_EIO, "%s: mkdir", dir);
}

/* Add to cfg each key of src_config that cfg lacks. */
static int merge_source(json_t *cfg, const char *src_config)
{
    json_t *src;
    struct stat st;
    if (stat(src_config, &st) != 0)
        return ldm_fail_errno(errno == ENOENT ? LDM_ENOTFOUND : LDM_EIO, "%s: stat", src_config);
    int rc = ldm_json_load_object(src_config, &src);
    if (rc)
        return rc;
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
        if (!json_object_get(cfg, k) && json_object_set(cfg, k, v) != 0)
            rc = ldm_fail(LDM_ENOMEM, "%s: out of memory", src_config);
    json_decref(src);
    return rc;
}

int ldm_unet_save_ex(const struct ldm_unet *u, const char *dir,
                     const struct ldm_unet_save_opts *o)
{
    struct ldm_unet_save_opts d = {.dtype = LDM_DT_F32};
    if (!o)
        o = &d;
    if (o->dtype != LDM_DT_F32 && o->dtype != LDM_DT_F16 && o->dtype != LDM_DT_BF16)
        return ldm_fail(LDM_EINVAL, "unet save: dtype %s: expected F32, F16 or BF16",
                        ldm_dtype_name(o->dtype));
    if (o->params && o->params->bytes != u->pa.bytes)
        return ldm_fail(LDM_EINVAL, "unet save: the arena given holds %zu bytes, the "
                        "parameters %zu", o->params->bytes, u->pa.bytes);
    json_t *cfg;
    int rc = make_dir(dir);
    if (!rc)
        rc = ldm_unet_config_json(u, &cfg);
    if (rc)
        return rc;
    if (o->src_config)
        rc = merge_source(cfg, o->src_config);
    if (!rc)
        rc = write_weights(u, dir, o);
    if (!rc)
        rc = write_config(dir, cfg);
    json_decref(cfg);
    return rc;
}

int ldm_unet_save_from(const struct ldm_unet *u, const char *dir, const char *src_config)
{
    struct ldm_unet_save_opts o = {.src_config = src_config, .dtype = LDM_DT_F32};
    return ldm_unet_save_ex(u, dir, &o);
}

int ldm_unet_save(const struct ldm_unet *u, const char *dir)
{
    return ldm_unet_save_from(u, dir, NULL);
}

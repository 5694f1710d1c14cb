/* unet.c — UNet2DConditionModel: config.json, the parameter table and arenas, weight
 * loading, and the forward / loss / backward entry points (models/unet.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "json.h"
#include "models/unet_int.h"
#include "models/weights.h"

/* ---- config ------------------------------------------------------------------------ */

/* `key` as one int for every block, or a list of nblocks ints; def when null/missing. */
static int int_or_list(const json_t *o, const char *key, int n, int *out, int def)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v) || json_is_integer(v)) {
        for (int i = 0; i < n; i++)
            out[i] = v && json_is_integer(v) ? (int)json_integer_value(v) : def;
        return 0;
    }
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return ldm_fail(LDM_ECONFIG, "unet config: '%s' must be an integer or a list of %d", key,
                        n);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_integer(e))
            return ldm_fail(LDM_ECONFIG, "unet config: '%s'[%d] must be an integer", key, i);
        out[i] = (int)json_integer_value(e);
    }
    return 0;
}

/* Block type lists: 1 for `cross`, 0 for `plain`, anything else unsupported. */
static int block_types(const json_t *o, const char *key, const char *cross, const char *plain,
                       int n, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return ldm_fail(LDM_ECONFIG, "unet config: '%s' must list %d block types", key, n);
    for (int i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(v, (size_t)i));
        if (s && strcmp(s, cross) == 0)
            out[i] = 1;
        else if (s && strcmp(s, plain) == 0)
            out[i] = 0;
        else
            return ldm_fail(LDM_EUNSUPPORTED, "unet config: %s[%d] '%s' is not built", key, i,
                            s ? s : "(not a string)");
    }
    return 0;
}

/* Keys that must hold this value (or be absent) for the network built here. */
static int check_unsupported(const json_t *o)
{
    static const char *must_null[] = {
        "class_embed_type", "num_class_embeds", "encoder_hid_dim_type", "time_cond_proj_dim",
        "time_embedding_dim", "time_embedding_act_fn", "timestep_post_act",
        "reverse_transformer_layers_per_block", "cross_attention_norm"};
    for (size_t i = 0; i < sizeof must_null / sizeof must_null[0]; i++) {
        json_t *v = json_object_get(o, must_null[i]);
        if (v && !json_is_null(v))
            return ldm_fail(LDM_EUNSUPPORTED, "unet config: '%s' must be null here", must_null[i]);
    }
    static const char *must_false[] = {"only_cross_attention", "dual_cross_attention",
                                       "center_input_sample", "resnet_skip_time_act",
                                       "class_embeddings_concat"};
    for (size_t i = 0; i < sizeof must_false / sizeof must_false[0]; i++)
        if (json_is_true(json_object_get(o, must_false[i])))
            return ldm_fail(LDM_EUNSUPPORTED, "unet config: '%s' must be false here",
                            must_false[i]);
    return 0;
}

static int check_strings(const json_t *o)
{
    static const char *kv[][2] = {{"act_fn", "silu"},
                                  {"time_embedding_type", "positional"},
                                  {"resnet_time_scale_shift", "default"},
                                  {"attention_type", "default"},
                                  {"mid_block_type", "UNetMidBlock2DCrossAttn"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        const char *s;
        int rc = ldm_json_get_str(o, kv[i][0], &s, kv[i][1]);
        if (rc)
            return rc;
        if (strcmp(s, kv[i][1]) != 0)
            return ldm_fail(LDM_EUNSUPPORTED, "unet config: '%s' = '%s' is not built (only '%s')",
                            kv[i][0], s, kv[i][1]);
    }
    double f;
    static const char *ones[] = {"mid_block_scale_factor", "resnet_out_scale_factor"};
    for (size_t i = 0; i < 2; i++) {
        int rc = ldm_json_get_real(o, ones[i], &f, 1.0);
        if (rc)
            return rc;
        if (f != 1.0)
            return ldm_fail(LDM_EUNSUPPORTED, "unet config: '%s' = %g is not built (only 1)",
                            ones[i], f);
    }
    return 0;
}

static int get_int(const json_t *o, const char *key, int *out, int def)
{
    int64_t v;
    int rc = ldm_json_get_int(o, key, &v, def);
    if (rc)
        return rc;
    if (v < 0 || v > (1 << 24))
        return ldm_fail(LDM_ECONFIG, "unet config: '%s' = %lld out of range", key, (long long)v);
    *out = (int)v;
    return 0;
}

static int read_blocks(const json_t *o, struct ldm_unet_config *c)
{
    json_t *boc = json_object_get(o, "block_out_channels");
    if (!json_is_array(boc) || json_array_size(boc) < 1 ||
        json_array_size(boc) > LDM_UNET_MAXBLOCKS)
        return ldm_fail(LDM_ECONFIG, "unet config: 'block_out_channels' must list 1 to %d "
                                     "widths", LDM_UNET_MAXBLOCKS);
    c->nblocks = (int)json_array_size(boc);
    int rc = int_or_list(o, "block_out_channels", c->nblocks, c->block_out_channels, 0);
    if (!rc)
        rc = block_types(o, "down_block_types", "CrossAttnDownBlock2D", "DownBlock2D",
                         c->nblocks, c->down_cross);
    if (!rc)
        rc = block_types(o, "up_block_types", "CrossAttnUpBlock2D", "UpBlock2D", c->nblocks,
                         c->up_cross);
    json_t *nh = json_object_get(o, "num_attention_heads");
    const char *hk = nh && !json_is_null(nh) ? "num_attention_heads" : "attention_head_dim";
    if (!rc)
        rc = int_or_list(o, hk, c->nblocks, c->heads, 8);
    if (!rc)
        rc = int_or_list(o, "transformer_layers_per_block", c->nblocks, c->tlayers, 1);
    return rc;
}

static int read_scalars(const json_t *o, struct ldm_unet_config *c)
{
    double eps = 1e-5, shift = 0.0;
    int rc = get_int(o, "in_channels", &c->in_channels, 4);
    if (!rc) rc = get_int(o, "out_channels", &c->out_channels, 4);
    if (!rc) rc = get_int(o, "layers_per_block", &c->layers_per_block, 2);
    if (!rc) rc = get_int(o, "cross_attention_dim", &c->cross_attention_dim, 1280);
    if (!rc) rc = get_int(o, "norm_num_groups", &c->norm_num_groups, 32);
    if (!rc) rc = get_int(o, "conv_in_kernel", &c->conv_in_kernel, 3);
    if (!rc) rc = get_int(o, "conv_out_kernel", &c->conv_out_kernel, 3);
    if (!rc) rc = get_int(o, "addition_time_embed_dim", &c->addition_time_embed_dim, 0);
    if (!rc) rc = get_int(o, "projection_class_embeddings_input_dim", &c->add_embed_in, 0);
    if (!rc) rc = ldm_json_get_bool(o, "flip_sin_to_cos", &c->flip_sin_to_cos, 1);
    if (!rc) rc = ldm_json_get_bool(o, "use_linear_projection", &c->use_linear_projection, 0);
    if (!rc) rc = ldm_json_get_bool(o, "upcast_attention", &c->upcast_attention, 0);
    if (!rc) rc = ldm_json_get_real(o, "norm_eps", &eps, 1e-5);
    if (!rc) rc = ldm_json_get_real(o, "freq_shift", &shift, 0.0);
    c->norm_eps = (float)eps;
    c->freq_shift = (float)shift;
    return rc;
}

static int read_addition(const json_t *o, struct ldm_unet_config *c)
{
    const char *add;
    int rc = ldm_json_get_str(o, "addition_embed_type", &add, NULL);
    if (rc || !add)
        return rc;
    if (strcmp(add, "text_time") != 0)
        return ldm_fail(LDM_EUNSUPPORTED, "unet config: addition_embed_type '%s' is not built "
                                          "(only \"text_time\")", add);
    c->text_time = 1;
    c->n_time_ids = 6; /* SDXL: original size, crop top-left, target size */
    int64_t text = (int64_t)c->add_embed_in - (int64_t)c->n_time_ids * c->addition_time_embed_dim;
    if (c->addition_time_embed_dim <= 0 || text <= 0)
        return ldm_fail(LDM_ECONFIG, "unet config: text_time needs addition_time_embed_dim > 0 "
                        "and projection_class_embeddings_input_dim (%d) > 6 x %d",
                        c->add_embed_in, c->addition_time_embed_dim);
    return 0;
}

static int check_values(const struct ldm_unet_config *c)
{
    if (c->in_channels < 1 || c->out_channels < 1 || c->layers_per_block < 1 ||
        c->norm_num_groups < 1 || c->conv_in_kernel % 2 == 0 || c->conv_out_kernel % 2 == 0)
        return ldm_fail(LDM_ECONFIG, "unet config: channels, layers_per_block, norm_num_groups "
                                     "must be positive and conv kernels odd");
    if (c->layers_per_block > 6)
        return ldm_fail(LDM_ECONFIG, "unet config: layers_per_block %d > 6", c->layers_per_block);
    for (int b = 0; b < c->nblocks; b++) {
        int C = c->block_out_channels[b];
        if (C < 1 || C % c->norm_num_groups || c->heads[b] < 1 || C % c->heads[b] ||
            c->tlayers[b] < 1)
            return ldm_fail(LDM_ECONFIG, "unet config: block %d: %d channels do not split into "
                            "%d groups and %d heads (or transformer_layers_per_block %d < 1)",
                            b, C, c->norm_num_groups, c->heads[b], c->tlayers[b]);
    }
    return 0;
}

int ldm_unet_config_load(struct ldm_unet_config *cfg, const char *path)
{
    json_t *o;
    memset(cfg, 0, sizeof *cfg);
    int rc = ldm_json_load_object(path, &o);
    if (rc)
        return rc;
    rc = check_unsupported(o);
    if (!rc) rc = check_strings(o);
    if (!rc) rc = read_blocks(o, cfg);
    if (!rc) rc = read_scalars(o, cfg);
    if (!rc) rc = read_addition(o, cfg);
    if (!rc) rc = check_values(cfg);
    json_decref(o);
    cfg->time_embed_dim = 4 * cfg->block_out_channels[0];
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", ldm_errmsg());
        return ldm_fail(rc, "%s: %s", path, msg);
    }
    return 0;
}

/* ---- the model ------------------------------------------------------------------------ */

/* Input descriptors of these sizes (data NULL). */
static void input_shapes(struct ldm_unet *u, int64_t N, int64_t H, int64_t W, int64_t L)
{
    const struct ldm_unet_config *c = &u->cfg;
    int64_t T = c->n_time_ids, Dt = c->add_embed_in - T * c->addition_time_embed_dim;
    u->sample = ldm_tensor_f32(NULL, N, c->in_channels, H, W);
    u->tsteps = ldm_tensor_f32(NULL, N);
    u->ehs = ldm_tensor_f32(NULL, N, L, c->cross_attention_dim);
    u->text = ldm_tensor_f32(NULL, N, c->text_time ? Dt : 0);
    u->tids = ldm_tensor_f32(NULL, N, T);
}

/* The inputs, the network, the loss target and the loss in one walk: declaring the
 * parameters, counting the activations into *nacts (MEASURE), or recording the ops over
 * activations tagged by tags[0 .. *nacts − 1] (RECORD; *nacts becomes the count made).
 * Timesteps, time ids, the target, the loss and its weights are F32; the other inputs
 * are in the compute dtype. With a reduced one the prediction gets an F32 copy for the
 * loss (pred) and a buffer for that copy's gradient (dpred). */
static int walk(struct ldm_unet *u, int mode, char *tags, size_t *nacts)
{
    struct ug g = {.u = u, .mode = mode, .tags = tags, .ntags = *nacts, .seg = -1};
    struct ldm_tensor *in[] = {&u->sample, &u->tsteps, &u->ehs, &u->text, &u->tids};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        int f32 = in[i] == &u->tsteps || in[i] == &u->tids;
        *in[i] = f32 ? ug_act32(&g, in[i]->ndim, in[i]->shape)
                     : ug_act(&g, in[i]->ndim, in[i]->shape);
    }
    int rc = ug_network(&g);
    if (rc)
        return rc;
    u->target = ug_act32(&g, u->out.ndim, u->out.shape);
    u->loss = ug_actv32(&g, 1);
    u->weights = ug_actv32(&g, u->out.shape[0]);
    u->pred = u->out;
    u->dpred = ldm_tensor_view(NULL, LDM_DT_F32, 0, NULL);
    if (u->cparams) {
        u->pred = ug_act32(&g, u->out.ndim, u->out.shape);
        u->dpred = ug_act32(&g, u->out.ndim, u->out.shape);
    }
    if (g.err)
        return g.err;
    if (mode != UG_DECLARE && g.cursor != u->nparams)
        return ldm_fail(LDM_EINVAL, "unet: the walk used %zu of %zu parameters", g.cursor,
                        u->nparams);
    *nacts = g.nacts;
    if (mode == UG_RECORD)
        u->nsegs = g.nsegs;
    return 0;
}

static int alloc_params(struct ldm_unet *u)
{
    u->grads = calloc(u->nparams ? u->nparams : 1, sizeof *u->grads);
    if (!u->grads)
        return ldm_fail(LDM_ENOMEM, "unet: out of memory for %zu gradients", u->nparams);
    memcpy(u->grads, u->params, u->nparams * sizeof *u->params);
    int rc = ldm_arena_alloc(&u->pa, u->ctx, u->params, u->nparams);
    if (!rc)
        rc = ldm_arena_alloc(&u->ga, u->ctx, u->grads, u->nparams);
    return rc;
}

int ldm_unet_create(struct ldm_unet **out, struct ldm_ctx *ctx, const struct ldm_unet_config *cfg)
{
    *out = NULL;
    struct ldm_unet *u = calloc(1, sizeof *u);
    if (!u)
        return ldm_fail(LDM_ENOMEM, "unet: out of memory");
    u->ctx = ctx;
    u->cfg = *cfg;
    u->cdt = LDM_DT_F32;
    u->scratch_seg = -1;
    int64_t side = (int64_t)1 << (cfg->nblocks - 1);
    input_shapes(u, 1, side, side, 1);
    size_t unused = 0;
    int rc = walk(u, UG_DECLARE, NULL, &unused);
    if (!rc)
        rc = alloc_params(u);
    if (rc) {
        ldm_unet_free(&u);
        return rc;
    }
    *out = u;
    return 0;
}

static void free_acts(struct ldm_unet *u)
{
    ldm_arena_free(&u->aa);
    ldm_arena_free(&u->gaa);
    free(u->nodes);
    free(u->bufs);
    free(u->zero_order);
    free(u->ready);
    u->ready = NULL;
    u->nodes = NULL;
    u->bufs = NULL;
    u->zero_order = NULL;
    u->nnodes = u->cap_nodes = u->nbufs = u->cap_bufs = u->nzero = 0;
    u->prepared = u->have_out = u->have_loss = 0;
    u->nsegs = 0;
    u->scratch_seg = -1;
}

/* The compute copies of a reduced compute dtype. */
static void free_compute(struct ldm_unet *u)
{
    ldm_arena_free(&u->pc);
    ldm_arena_free(&u->gc);
    free(u->cparams);
    u->cparams = NULL;
    u->cdt = LDM_DT_F32;
}

void ldm_unet_free(struct ldm_unet **pu)
{
    struct ldm_unet *u = *pu;
    if (!u)
        return;
    free_acts(u);
    free_compute(u);
    ldm_arena_free(&u->pa);
    ldm_arena_free(&u->ga);
    for (size_t i = 0; i < u->nparams; i++)
        free((char *)u->params[i].name);
    free(u->params);
    free(u->grads);
    free(u);
    *pu = NULL;
}

/* ---- the weight files ---------------------------------------------------------------------- */

/* Where the weights come from: a model folder's files (ldm_weights) or one safetensors file. */
struct unet_src {
    struct ldm_weights *w; /* one of w, st */
    struct ldm_st *st;
};

/* What ldm_weights_open finds in dir or, when the folder holds none of those files,
 * its fp16 variant. */
static int src_open_dir(struct unet_src *s, const char *dir)
{
    return ldm_weights_open(&s->w, dir);
}

static void src_close(struct unet_src *s)
{
    ldm_weights_close(&s->w);
    ldm_st_close(&s->st);
}

static const char *src_label(const struct unet_src *s)
{
    return s->w ? ldm_weights_source(s->w) : ldm_st_label(s->st);
}

static const struct ldm_st_tensor *src_get(const struct unet_src *s, const char *name)
{
    return s->w ? ldm_weights_get(s->w, name) : ldm_st_get(s->st, name);
}

/* Check dtype and shape; a mismatch names the file (the shard) holding the tensor. */
static int src_expect(const struct unet_src *s, const char *name, int dtype, int ndim,
                      const int64_t *shape)
{
    const struct ldm_st_tensor *t;
    return s->w ? ldm_weights_expect(s->w, name, dtype, ndim, shape, &t)
                : ldm_st_expect(s->st, name, dtype, ndim, shape, &t);
}

/* ---- weights ---------------------------------------------------------------------------- */

static int load_one(struct ldm_unet *u, const struct unet_src *s, size_t i, float *buf)
{
    const struct ldm_tensor *p = &u->params[i];
    const struct ldm_st_tensor *t = src_get(s, p->name);
    if (!t)
        return ldm_fail(LDM_ENOTFOUND, "%s: no tensor '%s'", src_label(s), p->name);
    if (t->dtype != LDM_DT_F32 && t->dtype != LDM_DT_F16 && t->dtype != LDM_DT_BF16)
        return ldm_fail(LDM_EFORMAT, "%s: tensor %s is %s; expected F32, F16 or BF16",
                        src_label(s), p->name, ldm_dtype_name(t->dtype));
    int rc = src_expect(s, p->name, t->dtype, p->ndim, p->shape);
    if (rc)
        return rc;
    size_t n = ldm_tensor_numel(p);
    rc = ldm_convert(buf, LDM_DT_F32, t->data, t->dtype, n);
    if (!rc)
        rc = ldm_ctx_upload(u->ctx, p->data, buf, n * sizeof(float));
    return rc;
}

/* Every parameter from s, through one host buffer as large as the largest. */
static int load_all(struct ldm_unet *u, const struct unet_src *s)
{
    size_t most = 1;
    for (size_t i = 0; i < u->nparams; i++)
        most = ldm_tensor_numel(&u->params[i]) > most ? ldm_tensor_numel(&u->params[i]) : most;
    float *buf = malloc(most * sizeof *buf);
    if (!buf)
        return ldm_fail(LDM_ENOMEM, "unet: out of memory loading %s", src_label(s));
    int rc = 0;
    for (size_t i = 0; !rc && i < u->nparams; i++)
        rc = load_one(u, s, i, buf);
    free(buf);
    return rc;
}

int ldm_unet_load(struct ldm_unet *u, const char *path)
{
    struct unet_src s = {NULL, NULL};
    int rc = ldm_st_open(&s.st, path);
    if (!rc)
        rc = load_all(u, &s);
    src_close(&s);
    return rc;
}

int ldm_unet_load_dir(struct ldm_unet *u, const char *dir)
{
    struct unet_src s = {NULL, NULL};
    int rc = src_open_dir(&s, dir);
    if (!rc)
        rc = load_all(u, &s);
    src_close(&s);
    return rc;
}

/* ---- passes ------------------------------------------------------------------------------- */

static int arena_of(struct ldm_unet *u, struct ldm_arena *a, size_t bytes, const char *what)
{
    struct ldm_tensor whole;
    int rc = ldm_tensor_setv(&whole, what, LDM_DT_U8, (int64_t)bytes);
    if (!rc)
        rc = ldm_arena_alloc(a, u->ctx, &whole, 1);
    return rc;
}

/* Run forward, loss and backward once while planning; reserve the largest workspace. */
static int plan(struct ldm_unet *u)
{
    size_t need;
    ldm_ctx_plan_begin(u->ctx);
    int rc = ug_run_forward(u);
    if (!rc)
        rc = ldm_mse_loss_forward(u->ctx, &u->loss, &u->pred, &u->target, NULL);
    if (!rc)
        rc = ug_run_backward(u, 1.0f);
    ldm_ctx_plan_end(u->ctx, &need);
    if (!rc)
        rc = ldm_ctx_reserve(u->ctx, need);
    return rc;
}

/* Record the ops over tagged activations, lay the activations out (checkpointed
 * segments sharing the scratch region) and allocate their arena. */
static int lay_out_acts(struct ldm_unet *u)
{
    size_t nacts = 0, bytes = 0;
    char *tags = NULL;
    int rc = walk(u, UG_MEASURE, NULL, &nacts);
    if (!rc && !(tags = malloc(nacts ? nacts : 1)))
        rc = ldm_fail(LDM_ENOMEM, "unet: out of memory tagging %zu activations", nacts);
    if (!rc)
        rc = walk(u, UG_RECORD, tags, &nacts);
    if (!rc)
        rc = ug_layout(u, tags, nacts, &bytes);
    if (!rc)
        rc = arena_of(u, &u->aa, bytes, "unet activations");
    if (!rc)
        ug_relocate(u, tags, nacts);
    free(tags);
    return rc;
}

int ldm_unet_prepare(struct ldm_unet *u, int64_t N, int64_t H, int64_t W, int64_t L)
{
    int64_t m = (int64_t)1 << (u->cfg.nblocks - 1);
    free_acts(u);
    if (N < 1 || L < 1 || H < m || W < m || H % m || W % m)
        return ldm_fail(LDM_EINVAL, "unet: sample %lldx%lld (batch %lld, %lld tokens): sides "
                        "must be positive multiples of %lld", (long long)H, (long long)W,
                        (long long)N, (long long)L, (long long)m);
    input_shapes(u, N, H, W, L);
    size_t gbytes = 0;
    int rc = lay_out_acts(u);
    if (!rc)
        rc = ug_grad_plan(u, &gbytes);
    if (!rc)
        rc = arena_of(u, &u->gaa, gbytes, "unet activation gradients");
    if (!rc)
        rc = ug_ready_plan(u);
    if (!rc)
        rc = plan(u);
    if (rc) {
        free_acts(u);
        return rc;
    }
    u->N = N, u->H = H, u->W = W, u->L = L;
    u->prepared = 1;
    return 0;
}

/* Copy an F32 host input into t, converting it to t's dtype on the way. */
static int upload(struct ldm_unet *u, const struct ldm_tensor *t, const float *src,
                  const char *what)
{
    size_t n = ldm_tensor_numel(t);
    if (n == 0)
        return 0;
    if (!src)
        return ldm_fail(LDM_EINVAL, "unet: input %s is missing", what);
    if (t->dtype == LDM_DT_F32)
        return ldm_ctx_upload(u->ctx, t->data, src, ldm_tensor_nbytes(t));
    void *buf = malloc(ldm_tensor_nbytes(t));
    int rc = buf ? ldm_convert(buf, t->dtype, src, LDM_DT_F32, n)
                 : ldm_fail(LDM_ENOMEM, "unet: out of memory converting input %s", what);
    if (!rc)
        rc = ldm_ctx_upload(u->ctx, t->data, buf, ldm_tensor_nbytes(t));
    free(buf);
    return rc;
}

/* With a reduced compute dtype: the F32 master parameters into their compute copies
 * (once per forward, as the optimizer may have moved them). */
static int cast_params(struct ldm_unet *u)
{
    if (!u->cparams)
        return 0;
    int64_t n = (int64_t)(u->pa.bytes / sizeof(float));
    struct ldm_tensor p32 = ldm_tensor_view(u->pa.base, LDM_DT_F32, 1, &n);
    struct ldm_tensor pc = ldm_tensor_view(u->pc.base, u->cdt, 1, &n);
    return ldm_cast(u->ctx, &pc, &p32, 1.0f, 0);
}

int ldm_unet_forward(struct ldm_unet *u, const struct ldm_unet_inputs *in, float *out_host)
{
    if (!u->prepared)
        return ldm_fail(LDM_EINVAL, "unet: forward before ldm_unet_prepare");
    u->have_out = u->have_loss = 0;
    int rc = upload(u, &u->sample, in->sample, "sample");
    if (!rc) rc = upload(u, &u->tsteps, in->timesteps, "timesteps");
    if (!rc) rc = upload(u, &u->ehs, in->encoder_hidden_states, "encoder_hidden_states");
    if (!rc) rc = upload(u, &u->text, in->text_embeds, "text_embeds");
    if (!rc) rc = upload(u, &u->tids, in->time_ids, "time_ids");
    if (!rc) rc = cast_params(u);
    if (!rc) rc = ug_run_forward(u);
    if (!rc && u->cparams)
        rc = ldm_cast(u->ctx, &u->pred, &u->out, 1.0f, 0);
    if (!rc && out_host)
        rc = ldm_ctx_download(u->ctx, out_host, u->pred.data, ldm_tensor_nbytes(&u->pred));
    u->have_out = rc == 0;
    return rc;
}

int ldm_unet_loss(struct ldm_unet *u, const float *target_host, float *loss)
{
    return ldm_unet_loss_weighted(u, target_host, NULL, loss);
}

int ldm_unet_loss_weighted(struct ldm_unet *u, const float *target_host,
                           const float *weights_host, float *loss)
{
    if (!u->have_out)
        return ldm_fail(LDM_EINVAL, "unet: loss before a forward pass");
    u->weighted = weights_host != NULL;
    int rc = upload(u, &u->target, target_host, "target");
    if (!rc && weights_host)
        rc = upload(u, &u->weights, weights_host, "weights");
    if (!rc)
        rc = ldm_mse_loss_forward(u->ctx, &u->loss, &u->pred, &u->target,
                                  u->weighted ? &u->weights : NULL);
    if (!rc)
        rc = ldm_ctx_download(u->ctx, loss, u->loss.data, sizeof *loss);
    u->have_loss = rc == 0;
    return rc;
}

int ldm_unet_backward(struct ldm_unet *u, float dloss)
{
    if (!u->have_loss)
        return ldm_fail(LDM_EINVAL, "unet: backward before a loss");
    int rc = ldm_arena_zero(&u->ga);
    if (!rc)
        rc = ug_run_backward(u, dloss);
    return rc;
}

int ldm_unet_backward_accumulate(struct ldm_unet *u, float dloss)
{
    if (!u->have_loss)
        return ldm_fail(LDM_EINVAL, "unet: backward before a loss");
    return ug_run_backward(u, dloss);
}

int ldm_unet_zero_grad(struct ldm_unet *u)
{
    return ldm_arena_zero(&u->ga);
}

/* The table in dtype over an arena of half pa's bytes: each element at half its offset. */
static int alloc_compute(struct ldm_unet *u, int dtype)
{
    u->cparams = calloc(u->nparams ? u->nparams : 1, sizeof *u->cparams);
    if (!u->cparams)
        return ldm_fail(LDM_ENOMEM, "unet: out of memory for the compute parameter table");
    int rc = arena_of(u, &u->pc, u->pa.bytes / 2, "unet compute parameters");
    if (!rc)
        rc = arena_of(u, &u->gc, u->pa.bytes / 2, "unet compute gradients");
    if (rc)
        return rc;
    for (size_t i = 0; i < u->nparams; i++) {
        u->cparams[i] = u->params[i];
        u->cparams[i].dtype = dtype;
        u->cparams[i].data = (char *)u->pc.base +
                             ((const char *)u->params[i].data - (const char *)u->pa.base) / 2;
    }
    u->cdt = dtype;
    return 0;
}

int ldm_unet_set_precision(struct ldm_unet *u, int dtype)
{
    if (dtype != LDM_DT_F32 && dtype != LDM_DT_F16 && dtype != LDM_DT_BF16)
        return ldm_fail(LDM_EINVAL, "unet: compute dtype %s is not F32, F16 or BF16",
                        ldm_dtype_name(dtype) ? ldm_dtype_name(dtype) : "?");
    if (dtype == u->cdt)
        return 0;
    free_acts(u);
    free_compute(u);
    int rc = dtype == LDM_DT_F32 ? 0 : alloc_compute(u, dtype);
    if (rc) {
        free_compute(u);
        return rc;
    }
    return u->N ? ldm_unet_prepare(u, u->N, u->H, u->W, u->L) : 0;
}

int ldm_unet_get_precision(const struct ldm_unet *u)
{
    return u->cdt;
}

int ldm_unet_set_checkpointing(struct ldm_unet *u, int on)
{
    if (u->ckpt == (on != 0))
        return 0;
    u->ckpt = on != 0;
    return u->prepared ? ldm_unet_prepare(u, u->N, u->H, u->W, u->L) : 0;
}

void ldm_unet_set_grad_hook(struct ldm_unet *u, ldm_unet_grad_hook fn, void *arg)
{
    u->hook = fn;
    u->hook_arg = arg;
}

void ldm_unet_arenas(const struct ldm_unet *u, const struct ldm_arena **params,
                     const struct ldm_arena **grads)
{
    if (params)
        *params = &u->pa;
    if (grads)
        *grads = &u->ga;
}

const struct ldm_unet_config *ldm_unet_get_config(const struct ldm_unet *u)
{
    return &u->cfg;
}

size_t ldm_unet_nparams(const struct ldm_unet *u)
{
    return u->nparams;
}

int ldm_unet_param(const struct ldm_unet *u, size_t i, struct ldm_tensor *param,
                   struct ldm_tensor *grad)
{
    if (i >= u->nparams)
        return ldm_fail(LDM_ERANGE, "unet: parameter %zu of %zu", i, u->nparams);
    *param = u->params[i];
    *grad = u->grads[i];
    return 0;
}

void ldm_unet_memory(const struct ldm_unet *u, struct ldm_unet_mem *m)
{
    m->params = u->pa.bytes;
    m->compute = u->pc.bytes + u->gc.bytes;
    m->acts = u->aa.bytes;
    m->act_grads = u->gaa.bytes;
    m->workspace = u->ctx->ws_bytes;
    m->nodes = u->nnodes;
    m->segments = (size_t)u->nsegs;
}

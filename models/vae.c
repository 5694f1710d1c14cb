/* vae.c — AutoencoderKL: config, parameter table and weights, encode and decode. */
#include "vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "json.h"
#include "models/weights.h"
#include "safetensors.h"
#include "vae_blocks.h"

#define CK(x)                                                                                      \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

#define NAME_MAX_LEN 128
#define LOGVAR_MIN (-30.0f)
#define LOGVAR_MAX 20.0f

struct vae_encoder {
    struct vb_conv conv_in;
    struct vb_resnet resnets[LDM_VAE_MAXBLOCKS][LDM_VAE_MAXLAYERS];
    struct vb_conv down[LDM_VAE_MAXBLOCKS]; /* w NULL for the last block */
    struct vb_mid mid;
    struct vb_norm conv_norm_out;
    struct vb_conv conv_out;
};

struct vae_decoder {
    struct vb_conv conv_in;
    struct vb_mid mid;
    struct vb_resnet resnets[LDM_VAE_MAXBLOCKS][LDM_VAE_MAXLAYERS + 1];
    struct vb_conv up[LDM_VAE_MAXBLOCKS]; /* w NULL for the last block */
    struct vb_norm conv_norm_out;
    struct vb_conv conv_out;
};

struct ldm_vae {
    struct ldm_vae_config cfg;
    struct ldm_ctx *ctx;
    struct ldm_tensor *params;      /* the parameter table, state-dict names */
    char (*names)[NAME_MAX_LEN];    /* params[i].name points at names[i] */
    size_t nparams;
    struct ldm_arena param_arena;
    struct vae_encoder enc;
    struct vae_decoder dec;
    struct vb_conv quant_conv, post_quant_conv; /* w NULL when the config has none */
    struct vb_run run;                          /* activation slots */
    struct ldm_tensor slot_t[VB_NSLOTS];
    struct ldm_arena act_arena;
    int64_t planned[2][3];                      /* encode, decode: N, H, W planned for */
    float *host;                                /* log-variance clamping on the host */
    size_t host_cap;
};

/* ---- config --------------------------------------------------------------------------- */

/* LDM_EFORMAT with the json helper's detail prefixed by the file. */
static int json_err(const char *path)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s", ldm_errmsg()); /* ldm_fail overwrites it */
    return ldm_fail(LDM_EFORMAT, "%s: %s", path, detail);
}

static int get_int(const json_t *o, const char *path, const char *key, int *out, int def, int lo,
                   int hi)
{
    int64_t v;
    if (ldm_json_get_int(o, key, &v, def))
        return json_err(path);
    if (v < lo || v > hi)
        return ldm_fail(LDM_ECONFIG, "%s: %s = %lld is outside %d..%d", path, key, (long long)v,
                        lo, hi);
    *out = (int)v;
    return 0;
}

static int get_bool(const json_t *o, const char *path, const char *key, int *out)
{
    if (ldm_json_get_bool(o, key, out, 1))
        return json_err(path);
    return 0;
}

/* An array key of strings, each equal to `want`, with `n` entries. */
static int check_types(const json_t *o, const char *path, const char *key, const char *want,
                       int n)
{
    json_t *a = json_object_get(o, key);
    if (!a)
        return 0;
    if (!json_is_array(a) || (int)json_array_size(a) != n)
        return ldm_fail(LDM_ECONFIG, "%s: %s must be a list of %d block types", path, key, n);
    for (int i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, (size_t)i));
        if (!s || strcmp(s, want) != 0)
            return ldm_fail(LDM_ECONFIG, "%s: %s[%d] is %s; only %s is supported", path, key, i,
                            s ? s : "not a string", want);
    }
    return 0;
}

static int get_blocks(const json_t *o, const char *path, struct ldm_vae_config *c)
{
    json_t *a = json_object_get(o, "block_out_channels");
    if (!a) {
        c->nblocks = 1;
        c->block_out_channels[0] = 64;
        return 0;
    }
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    if (n < 1 || n > LDM_VAE_MAXBLOCKS)
        return ldm_fail(LDM_ECONFIG, "%s: block_out_channels must be a list of 1..%d integers",
                        path, LDM_VAE_MAXBLOCKS);
    c->nblocks = (int)n;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (x < 1 || x > 65536)
            return ldm_fail(LDM_ECONFIG, "%s: block_out_channels[%zu] is not an integer in "
                                         "1..65536", path, i);
        c->block_out_channels[i] = (int)x;
    }
    return 0;
}

static int get_factors(const json_t *o, const char *path, struct ldm_vae_config *c)
{
    if (ldm_json_get_real(o, "scaling_factor", &c->scaling_factor, 0.18215))
        return json_err(path);
    if (!(c->scaling_factor > 0))
        return ldm_fail(LDM_ECONFIG, "%s: scaling_factor must be positive", path);
    json_t *s = json_object_get(o, "shift_factor");
    c->has_shift_factor = s && !json_is_null(s);
    if (ldm_json_get_real(o, "shift_factor", &c->shift_factor, 0.0))
        return json_err(path);
    const char *act;
    if (ldm_json_get_str(o, "act_fn", &act, "silu"))
        return json_err(path);
    if (strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0)
        return ldm_fail(LDM_ECONFIG, "%s: act_fn %s is not supported (silu only)", path, act);
    return 0;
}

static int check_groups(const char *path, const struct ldm_vae_config *c)
{
    for (int i = 0; i < c->nblocks; i++)
        if (c->block_out_channels[i] % c->norm_num_groups)
            return ldm_fail(LDM_ECONFIG, "%s: norm_num_groups %d does not divide "
                                         "block_out_channels[%d] = %d", path,
                            c->norm_num_groups, i, c->block_out_channels[i]);
    return 0;
}

static int config_parse(struct ldm_vae_config *c, const json_t *o, const char *path)
{
    memset(c, 0, sizeof *c);
    CK(get_int(o, path, "in_channels", &c->in_channels, 3, 1, 65536));
    CK(get_int(o, path, "out_channels", &c->out_channels, 3, 1, 65536));
    CK(get_int(o, path, "latent_channels", &c->latent_channels, 4, 1, 65536));
    CK(get_int(o, path, "layers_per_block", &c->layers_per_block, 1, 1, LDM_VAE_MAXLAYERS));
    CK(get_int(o, path, "norm_num_groups", &c->norm_num_groups, 32, 1, 65536));
    CK(get_bool(o, path, "use_quant_conv", &c->use_quant_conv));
    CK(get_bool(o, path, "use_post_quant_conv", &c->use_post_quant_conv));
    CK(get_bool(o, path, "mid_block_add_attention", &c->mid_block_add_attention));
    CK(get_blocks(o, path, c));
    CK(check_types(o, path, "down_block_types", "DownEncoderBlock2D", c->nblocks));
    CK(check_types(o, path, "up_block_types", "UpDecoderBlock2D", c->nblocks));
    CK(get_factors(o, path, c));
    return check_groups(path, c);
}

int ldm_vae_config_load(struct ldm_vae_config *cfg, const char *path)
{
    json_t *o;
    CK(ldm_json_load_object(path, &o));
    int rc = config_parse(cfg, o, path);
    json_decref(o);
    return rc;
}

/* ---- the parameter table ------------------------------------------------------------------- */

/* Builds the table in two passes: counting (t NULL), then filling. */
struct builder {
    struct ldm_vae *v;
    size_t n;
    int fill;
};

static struct ldm_tensor *add(struct builder *b, const char *prefix, const char *leaf, int ndim,
                              const int64_t *shape)
{
    size_t i = b->n++;
    if (!b->fill)
        return NULL;
    struct ldm_tensor *t = &b->v->params[i];
    snprintf(b->v->names[i], NAME_MAX_LEN, "%s.%s", prefix, leaf);
    *t = ldm_tensor_view(NULL, LDM_DT_F32, ndim, shape);
    t->name = b->v->names[i];
    return t;
}

static void add_conv(struct builder *b, struct vb_conv *p, const char *prefix, int64_t K,
                     int64_t C, int64_t R)
{
    p->w = add(b, prefix, "weight", 4, (const int64_t[]){K, C, R, R});
    p->b = add(b, prefix, "bias", 1, (const int64_t[]){K});
}

static void add_norm(struct builder *b, struct vb_norm *p, const char *prefix, int64_t C)
{
    p->g = add(b, prefix, "weight", 1, (const int64_t[]){C});
    p->b = add(b, prefix, "bias", 1, (const int64_t[]){C});
}

static void add_lin(struct builder *b, struct vb_lin *p, const char *prefix, int64_t C)
{
    p->w = add(b, prefix, "weight", 2, (const int64_t[]){C, C});
    p->b = add(b, prefix, "bias", 1, (const int64_t[]){C});
}

/* prefix + "." + leaf, where the total fits (names are short; checked). */
static void join(char *dst, const char *prefix, const char *leaf)
{
    snprintf(dst, NAME_MAX_LEN, "%.60s.%.60s", prefix, leaf);
}

static void add_resnet(struct builder *b, struct vb_resnet *p, const char *prefix, int cin,
                       int cout)
{
    char n[NAME_MAX_LEN];
    p->cin = cin;
    p->cout = cout;
    join(n, prefix, "norm1");
    add_norm(b, &p->norm1, n, cin);
    join(n, prefix, "conv1");
    add_conv(b, &p->conv1, n, cout, cin, 3);
    join(n, prefix, "norm2");
    add_norm(b, &p->norm2, n, cout);
    join(n, prefix, "conv2");
    add_conv(b, &p->conv2, n, cout, cout, 3);
    p->conv_shortcut.w = p->conv_shortcut.b = NULL;
    join(n, prefix, "conv_shortcut");
    if (cin != cout)
        add_conv(b, &p->conv_shortcut, n, cout, cin, 1);
}

static void add_mid(struct builder *b, struct vb_mid *p, const char *prefix, int c, int attn)
{
    char n[NAME_MAX_LEN];
    join(n, prefix, "resnets.0");
    add_resnet(b, &p->resnets[0], n, c, c);
    p->has_attn = attn;
    p->attn.c = c;
    if (attn) {
        join(n, prefix, "attentions.0.group_norm");
        add_norm(b, &p->attn.group_norm, n, c);
        join(n, prefix, "attentions.0.to_q");
        add_lin(b, &p->attn.to_q, n, c);
        join(n, prefix, "attentions.0.to_k");
        add_lin(b, &p->attn.to_k, n, c);
        join(n, prefix, "attentions.0.to_v");
        add_lin(b, &p->attn.to_v, n, c);
        join(n, prefix, "attentions.0.to_out.0");
        add_lin(b, &p->attn.to_out, n, c);
    }
    join(n, prefix, "resnets.1");
    add_resnet(b, &p->resnets[1], n, c, c);
}

static void add_encoder(struct builder *b, const struct ldm_vae_config *c, struct vae_encoder *e)
{
    char n[NAME_MAX_LEN];
    const int *ch = c->block_out_channels, last = ch[c->nblocks - 1];
    add_conv(b, &e->conv_in, "encoder.conv_in", ch[0], c->in_channels, 3);
    for (int i = 0; i < c->nblocks; i++) {
        int cin = i ? ch[i - 1] : ch[0];
        for (int j = 0; j < c->layers_per_block; j++) {
            snprintf(n, sizeof n, "encoder.down_blocks.%d.resnets.%d", i, j);
            add_resnet(b, &e->resnets[i][j], n, j ? ch[i] : cin, ch[i]);
        }
        e->down[i].w = e->down[i].b = NULL;
        snprintf(n, sizeof n, "encoder.down_blocks.%d.downsamplers.0.conv", i);
        if (i + 1 < c->nblocks)
            add_conv(b, &e->down[i], n, ch[i], ch[i], 3);
    }
    add_mid(b, &e->mid, "encoder.mid_block", last, c->mid_block_add_attention);
    add_norm(b, &e->conv_norm_out, "encoder.conv_norm_out", last);
    add_conv(b, &e->conv_out, "encoder.conv_out", 2 * c->latent_channels, last, 3);
}

static void add_decoder(struct builder *b, const struct ldm_vae_config *c, struct vae_decoder *d)
{
    char n[NAME_MAX_LEN];
    const int *ch = c->block_out_channels, nb = c->nblocks;
    add_conv(b, &d->conv_in, "decoder.conv_in", ch[nb - 1], c->latent_channels, 3);
    add_mid(b, &d->mid, "decoder.mid_block", ch[nb - 1], c->mid_block_add_attention);
    for (int i = 0; i < nb; i++) {
        int cout = ch[nb - 1 - i], cin = ch[nb - 1 - (i ? i - 1 : 0)];
        for (int j = 0; j <= c->layers_per_block; j++) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d", i, j);
            add_resnet(b, &d->resnets[i][j], n, j ? cout : cin, cout);
        }
        d->up[i].w = d->up[i].b = NULL;
        snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0.conv", i);
        if (i + 1 < nb)
            add_conv(b, &d->up[i], n, cout, cout, 3);
    }
    add_norm(b, &d->conv_norm_out, "decoder.conv_norm_out", ch[0]);
    add_conv(b, &d->conv_out, "decoder.conv_out", c->out_channels, ch[0], 3);
}

static void build(struct builder *b)
{
    struct ldm_vae *v = b->v;
    int L = v->cfg.latent_channels;
    add_encoder(b, &v->cfg, &v->enc);
    v->quant_conv.w = v->quant_conv.b = v->post_quant_conv.w = v->post_quant_conv.b = NULL;
    if (v->cfg.use_quant_conv)
        add_conv(b, &v->quant_conv, "quant_conv", 2 * L, 2 * L, 1);
    if (v->cfg.use_post_quant_conv)
        add_conv(b, &v->post_quant_conv, "post_quant_conv", L, L, 1);
    add_decoder(b, &v->cfg, &v->dec);
}

static int table_build(struct ldm_vae *v)
{
    struct builder b = {v, 0, 0};
    build(&b);
    v->nparams = b.n;
    v->params = calloc(b.n, sizeof *v->params);
    v->names = calloc(b.n, sizeof *v->names);
    if (!v->params || !v->names)
        return ldm_fail(LDM_ENOMEM, "vae: out of memory for %zu parameters", b.n);
    b = (struct builder){v, 0, 1};
    build(&b);
    return ldm_arena_alloc(&v->param_arena, v->ctx, v->params, v->nparams);
}

/* ---- names and shapes ---------------------------------------------------------------------- */

/* The name older diffusers files give a mid-block attention parameter
 * (query, key, value, proj_attn), into buf; 0 when it has no other name. */
static int legacy_name(const char *name, char *buf)
{
    static const char *const pairs[][2] = {
        {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
        {".to_out.0.", ".proj_attn."}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *at = strstr(name, pairs[i][0]);
        if (at) {
            snprintf(buf, NAME_MAX_LEN, "%.*s%s%s", (int)(at - name), name, pairs[i][1],
                     at + strlen(pairs[i][0]));
            return 1;
        }
    }
    return 0;
}

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
}

/* ---- the weight files ------------------------------------------------------------------- */

/* The weights of the model folder, as ldm_weights_open finds them. */
struct vae_src {
    struct ldm_weights *w; /* one of w, st */
    struct ldm_st *st;
};

static int src_open(struct vae_src *s, const char *dir)
{
    return ldm_weights_open(&s->w, dir);
}

static void src_close(struct vae_src *s)
{
    ldm_weights_close(&s->w);
    ldm_st_close(&s->st);
}

static const char *src_label(const struct vae_src *s)
{
    return s->w ? ldm_weights_source(s->w) : ldm_st_label(s->st);
}

static const struct ldm_st_tensor *src_get(const struct vae_src *s, const char *name)
{
    return s->w ? ldm_weights_get(s->w, name) : ldm_st_get(s->st, name);
}

static size_t src_count(const struct vae_src *s)
{
    return s->w ? ldm_weights_count(s->w) : ldm_st_count(s->st);
}

static const struct ldm_st_tensor *src_at(const struct vae_src *s, size_t i)
{
    return s->w ? ldm_weights_at(s->w, i) : ldm_st_at(s->st, i);
}

/* ---- weights ------------------------------------------------------------------------------ */

/* The file's tensor for parameter p, checked: dtype, and shape (a linear
 * weight may be stored as a 1×1 convolution's). */
static int find_param(const struct vae_src *s, const struct ldm_tensor *p,
                      const struct ldm_st_tensor **out)
{
    char alt[NAME_MAX_LEN], want[96], got[96];
    const struct ldm_st_tensor *f = src_get(s, p->name);
    if (!f && legacy_name(p->name, alt))
        f = src_get(s, alt);
    if (!f)
        return ldm_fail(LDM_EFORMAT, "%s: tensor %s is missing", src_label(s), p->name);
    if (f->dtype != LDM_DT_F32 && f->dtype != LDM_DT_F16 && f->dtype != LDM_DT_BF16)
        return ldm_fail(LDM_EFORMAT, "%s: tensor %s is %s; F32, F16 or BF16 expected",
                        src_label(s), f->name, ldm_dtype_name(f->dtype));
    int same = f->ndim == p->ndim;
    for (int i = 0; same && i < p->ndim; i++)
        same = f->shape[i] == p->shape[i];
    if (!same && p->ndim == 2 && f->ndim == 4 && f->shape[0] == p->shape[0] &&
        f->shape[1] == p->shape[1] && f->shape[2] == 1 && f->shape[3] == 1)
        same = 1;
    if (!same) {
        shape_str(f->ndim, f->shape, got, sizeof got);
        shape_str(p->ndim, p->shape, want, sizeof want);
        return ldm_fail(LDM_EFORMAT, "%s: tensor %s has shape %s; the config implies %s",
                        src_label(s), f->name, got, want);
    }
    *out = f;
    return 0;
}

/* Convert one file tensor to F32 and upload it into parameter p. */
static int load_param(struct ldm_vae *v, const struct ldm_st_tensor *f, const struct ldm_tensor *p)
{
    size_t n = ldm_tensor_numel(p);
    float *tmp = malloc(n * sizeof *tmp + 1);
    if (!tmp)
        return ldm_fail(LDM_ENOMEM, "vae: out of memory for tensor %s", p->name);
    int rc = ldm_convert(tmp, LDM_DT_F32, f->data, f->dtype, n);
    if (!rc)
        rc = ldm_ctx_upload(v->ctx, p->data, tmp, n * sizeof *tmp);
    free(tmp);
    return rc;
}

/* The first tensor of the files that no parameter uses, for the error. */
static int name_unused(const struct ldm_vae *v, const struct vae_src *s)
{
    char alt[NAME_MAX_LEN];
    for (size_t i = 0; i < src_count(s); i++) {
        const char *name = src_at(s, i)->name;
        int used = 0;
        for (size_t j = 0; j < v->nparams && !used; j++)
            used = strcmp(v->params[j].name, name) == 0 ||
                   (legacy_name(v->params[j].name, alt) && strcmp(alt, name) == 0 &&
                    !src_get(s, v->params[j].name));
        if (!used)
            return ldm_fail(LDM_EFORMAT, "%s: tensor %s is not part of the model its config "
                                         "describes", src_label(s), name);
    }
    return ldm_fail(LDM_EFORMAT, "%s: unexpected tensors", src_label(s));
}

static int load_weights(struct ldm_vae *v, const char *dir)
{
    struct vae_src s = {NULL, NULL};
    int rc = src_open(&s, dir);
    for (size_t i = 0; i < v->nparams && !rc; i++) {
        const struct ldm_st_tensor *f = NULL;
        rc = find_param(&s, &v->params[i], &f);
        if (!rc)
            rc = load_param(v, f, &v->params[i]);
    }
    if (!rc && src_count(&s) != v->nparams)
        rc = name_unused(v, &s);
    src_close(&s);
    return rc;
}

/* ---- open / close ---------------------------------------------------------------------------- */

int ldm_vae_open(struct ldm_vae **out, struct ldm_ctx *ctx, const char *dir)
{
    char path[4096];
    *out = NULL;
    struct ldm_vae *v = calloc(1, sizeof *v);
    if (!v)
        return ldm_fail(LDM_ENOMEM, "vae: out of memory");
    v->ctx = ctx;
    v->run.ctx = ctx;
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = ldm_vae_config_load(&v->cfg, path);
    v->run.groups = v->cfg.norm_num_groups;
    v->run.eps = 1e-6f;
    if (!rc)
        rc = table_build(v);
    if (!rc)
        rc = load_weights(v, dir);
    if (rc) {
        ldm_vae_close(&v);
        return rc;
    }
    *out = v;
    return 0;
}

void ldm_vae_close(struct ldm_vae **pv)
{
    struct ldm_vae *v = *pv;
    if (!v)
        return;
    ldm_arena_free(&v->param_arena);
    ldm_arena_free(&v->act_arena);
    free(v->params);
    free(v->names);
    free(v->host);
    free(v);
    *pv = NULL;
}

const struct ldm_vae_config *ldm_vae_config(const struct ldm_vae *v)
{
    return &v->cfg;
}

void ldm_vae_scaling(const struct ldm_vae *v, double *scale, double *shift)
{
    *scale = v->cfg.scaling_factor;
    *shift = v->cfg.has_shift_factor ? v->cfg.shift_factor : 0.0;
}

int64_t ldm_vae_latent_size(const struct ldm_vae *v, int64_t side)
{
    for (int i = 0; i + 1 < v->cfg.nblocks; i++)
        side /= 2;
    return side;
}

int64_t ldm_vae_image_size(const struct ldm_vae *v, int64_t side)
{
    for (int i = 0; i + 1 < v->cfg.nblocks; i++)
        side *= 2;
    return side;
}

/* ---- activations --------------------------------------------------------------------------- */

/* Three rotating feature-map slots: a holds the current map. */
struct rot {
    int a, b, c;
};

static void rotate(struct rot *s, int new_a)
{
    int others[2], k = 0;
    for (int i = 0; i < 3; i++)
        if (i != new_a)
            others[k++] = i;
    *s = (struct rot){new_a, others[0], others[1]};
}

/* Grow the activation arena to the needs recorded by a planning pass. */
static int act_grow(struct ldm_vae *v)
{
    int grow = 0;
    for (int i = 0; i < VB_NSLOTS; i++)
        grow |= v->run.need[i] > v->run.cap[i];
    if (!grow)
        return 0;
    ldm_arena_free(&v->act_arena);
    for (int i = 0; i < VB_NSLOTS; i++) {
        size_t n = v->run.need[i] > v->run.cap[i] ? v->run.need[i] : v->run.cap[i];
        v->slot_t[i] = ldm_tensor_f32(NULL, (int64_t)(n ? n : 1));
        v->run.slot[i] = NULL;
        v->run.cap[i] = 0;
    }
    CK(ldm_arena_alloc(&v->act_arena, v->ctx, v->slot_t, VB_NSLOTS));
    for (int i = 0; i < VB_NSLOTS; i++) {
        v->run.slot[i] = v->slot_t[i].data;
        v->run.cap[i] = (size_t)v->slot_t[i].shape[0];
    }
    return 0;
}

typedef int (*fwd_fn)(struct ldm_vae *v, const struct ldm_tensor *in, const struct ldm_tensor *o1,
                      const struct ldm_tensor *o2);

/* Before a forward of `kind` (0 encode, 1 decode) on `in`: when its shape
 * is new, run the forward once while planning, then size the arena and
 * the workspace for it. */
static int act_ensure(struct ldm_vae *v, int kind, fwd_fn fn, const struct ldm_tensor *in,
                      const struct ldm_tensor *o1, const struct ldm_tensor *o2)
{
    int64_t *p = v->planned[kind];
    size_t ws = 0;
    if (p[0] == in->shape[0] && p[1] == in->shape[2] && p[2] == in->shape[3])
        return 0;
    memset(v->run.need, 0, sizeof v->run.need);
    ldm_ctx_plan_begin(v->ctx);
    int rc = fn(v, in, o1, o2);
    ldm_ctx_plan_end(v->ctx, &ws);
    CK(rc);
    CK(ldm_ctx_reserve(v->ctx, ws));
    rc = act_grow(v);
    if (rc) { /* the arena is gone: every shape must be planned again */
        memset(v->planned, 0, sizeof v->planned);
        return rc;
    }
    p[0] = in->shape[0];
    p[1] = in->shape[2];
    p[2] = in->shape[3];
    return 0;
}

/* ---- encoder and decoder -------------------------------------------------------------------- */

/* Encoder + quant_conv: image (N, Cin, H, W) -> moments (N, 2L, h, w) in
 * slot *out; *h, *w the latent size. */
static int encoder_fwd(struct ldm_vae *v, const struct ldm_tensor *image, int *out, int64_t *h,
                       int64_t *w)
{
    const struct ldm_vae_config *c = &v->cfg;
    const struct vae_encoder *e = &v->enc;
    struct vb_run *r = &v->run;
    struct ldm_tensor t, u;
    struct rot s = {0, 1, 2};
    int64_t N = image->shape[0], H = image->shape[2], W = image->shape[3];
    int64_t last = c->block_out_channels[c->nblocks - 1], L2 = 2 * c->latent_channels;
    CK(vb_view(r, s.a, N, c->block_out_channels[0], H, W, &t));
    CK(vb_conv_fwd(r, &t, image, &e->conv_in, 1)); /* (N, C0, H, W) */
    for (int i = 0; i < c->nblocks; i++) {
        for (int j = 0; j < c->layers_per_block; j++)
            CK(vb_resnet_fwd(r, &e->resnets[i][j], s.a, s.b, s.c, N, H, W)); /* (N, Ci, H, W) */
        if (!e->down[i].w)
            continue;
        CK(vb_down_fwd(r, &e->down[i], s.a, s.b, N, c->block_out_channels[i], &H, &W));
        rotate(&s, s.b);                          /* (N, Ci, H/2, W/2) */
    }
    CK(vb_mid_fwd(r, &e->mid, s.a, s.b, s.c, N, H, W)); /* (N, Clast, h, w) */
    CK(vb_view(r, s.a, N, last, H, W, &t));
    CK(vb_view(r, s.b, N, last, H, W, &u));
    CK(vb_norm_fwd(r, &u, &t, &e->conv_norm_out, 1)); /* u (N, Clast, h, w) = silu(norm(t)) */
    CK(vb_view(r, s.c, N, L2, H, W, &t));
    CK(vb_conv_fwd(r, &t, &u, &e->conv_out, 1));      /* t (N, 2L, h, w) */
    *out = s.c;
    if (v->quant_conv.w) {
        CK(vb_view(r, s.b, N, L2, H, W, &u));
        CK(vb_conv_fwd(r, &u, &t, &v->quant_conv, 0)); /* u (N, 2L, h, w) = moments */
        *out = s.b;
    }
    *h = H;
    *w = W;
    return 0;
}

/* Split moments (N, 2L, h, w) into mean and logvar (N, L, h, w) and clamp
 * logvar to [−30, 20] on the host. */
static int split_moments(struct ldm_vae *v, int slot, const struct ldm_tensor *mean,
                         const struct ldm_tensor *logvar)
{
    size_t N = (size_t)mean->shape[0], per = ldm_tensor_numel(mean) / N;
    const float *m = v->run.slot[slot];
    if (v->ctx->planning)
        return 0;
    for (size_t n = 0; n < N; n++) {
        CK(ldm_ctx_copy(v->ctx, (float *)mean->data + n * per, m + 2 * n * per,
                        per * sizeof(float)));
        CK(ldm_ctx_copy(v->ctx, (float *)logvar->data + n * per, m + (2 * n + 1) * per,
                        per * sizeof(float)));
    }
    if (N * per > v->host_cap) {
        free(v->host);
        v->host_cap = 0;
        v->host = malloc(N * per * sizeof *v->host);
        if (!v->host)
            return ldm_fail(LDM_ENOMEM, "vae: out of memory for %zu latent values", N * per);
        v->host_cap = N * per;
    }
    CK(ldm_ctx_download(v->ctx, v->host, logvar->data, N * per * sizeof *v->host));
    for (size_t i = 0; i < N * per; i++)
        v->host[i] = v->host[i] < LOGVAR_MIN ? LOGVAR_MIN
                     : v->host[i] > LOGVAR_MAX ? LOGVAR_MAX : v->host[i];
    return ldm_ctx_upload(v->ctx, logvar->data, v->host, N * per * sizeof *v->host);
}

static int encode_fwd(struct ldm_vae *v, const struct ldm_tensor *image,
                      const struct ldm_tensor *mean, const struct ldm_tensor *logvar)
{
    int slot;
    int64_t h, w;
    CK(encoder_fwd(v, image, &slot, &h, &w));
    return split_moments(v, slot, mean, logvar);
}

/* The decoder's up blocks: slot s->a (N, Clast, h, w) -> (N, C0, H, W). */
static int up_blocks_fwd(struct ldm_vae *v, struct rot *s, int64_t N, int64_t *H, int64_t *W)
{
    const struct ldm_vae_config *c = &v->cfg;
    const struct vae_decoder *d = &v->dec;
    for (int i = 0; i < c->nblocks; i++) {
        for (int j = 0; j <= c->layers_per_block; j++)
            CK(vb_resnet_fwd(&v->run, &d->resnets[i][j], s->a, s->b, s->c, N, *H, *W));
        if (!d->up[i].w)
            continue;
        CK(vb_up_fwd(&v->run, &d->up[i], s->a, s->b, s->c, N, d->resnets[i][0].cout, H, W));
        rotate(s, s->c);                          /* (N, Ci, 2H, 2W) */
    }
    return 0;
}

static int decode_fwd(struct ldm_vae *v, const struct ldm_tensor *latent,
                      const struct ldm_tensor *image, const struct ldm_tensor *unused)
{
    const struct ldm_vae_config *c = &v->cfg;
    struct vb_run *r = &v->run;
    struct ldm_tensor z = *latent, t, u;
    struct rot s = {0, 1, 2};
    int64_t N = latent->shape[0], H = latent->shape[2], W = latent->shape[3];
    int64_t last = c->block_out_channels[c->nblocks - 1], c0 = c->block_out_channels[0];
    (void)unused;
    if (v->post_quant_conv.w) {
        CK(vb_view(r, s.b, N, c->latent_channels, H, W, &z));
        CK(vb_conv_fwd(r, &z, latent, &v->post_quant_conv, 0)); /* z (N, L, h, w) */
    }
    CK(vb_view(r, s.a, N, last, H, W, &t));
    CK(vb_conv_fwd(r, &t, &z, &v->dec.conv_in, 1));  /* t (N, Clast, h, w) */
    CK(vb_mid_fwd(r, &v->dec.mid, s.a, s.b, s.c, N, H, W)); /* (N, Clast, h, w) */
    CK(up_blocks_fwd(v, &s, N, &H, &W));             /* (N, C0, H, W) */
    CK(vb_view(r, s.a, N, c0, H, W, &t));
    CK(vb_view(r, s.b, N, c0, H, W, &u));
    CK(vb_norm_fwd(r, &u, &t, &v->dec.conv_norm_out, 1)); /* u (N, C0, H, W) */
    return vb_conv_fwd(r, image, &u, &v->dec.conv_out, 1); /* image (N, Cout, H, W) */
}

/* ---- the public forward calls ---------------------------------------------------------------- */

static int expect(const struct ldm_tensor *t, const char *what, const int64_t *shape)
{
    char want[96], got[96];
    int same = t->ndim == 4 && t->dtype == LDM_DT_F32;
    for (int i = 0; same && i < 4; i++)
        same = t->shape[i] == shape[i];
    if (same)
        return 0;
    shape_str(t->ndim, t->shape, got, sizeof got);
    shape_str(4, shape, want, sizeof want);
    return ldm_fail(LDM_EINVAL, "vae: %s %s has shape %s (%s); %s F32 expected", what,
                    ldm_tensor_label(t, "tensor"), got,
                    ldm_dtype_name(t->dtype) ? ldm_dtype_name(t->dtype) : "?", want);
}

/* The input checks shared by encode and decode: 4-D F32, `C` channels, N,
 * H, W >= 1 and sides of at least `min_side`. */
static int check_input(const struct ldm_tensor *t, const char *what, int64_t C, int64_t min_side)
{
    int64_t want[4] = {t->ndim == 4 ? t->shape[0] : 1, C, t->ndim == 4 ? t->shape[2] : min_side,
                       t->ndim == 4 ? t->shape[3] : min_side};
    CK(expect(t, what, want));
    if (t->shape[0] < 1 || t->shape[2] < min_side || t->shape[3] < min_side)
        return ldm_fail(LDM_EINVAL, "vae: %s %s is %lldx%lld; sides of at least %lld needed",
                        what, ldm_tensor_label(t, "tensor"), (long long)t->shape[2],
                        (long long)t->shape[3], (long long)min_side);
    return 0;
}

int ldm_vae_encode(struct ldm_vae *v, const struct ldm_tensor *image,
                   const struct ldm_tensor *mean, const struct ldm_tensor *logvar)
{
    CK(check_input(image, "image", v->cfg.in_channels, ldm_vae_image_size(v, 1)));
    int64_t lat[4] = {image->shape[0], v->cfg.latent_channels,
                      ldm_vae_latent_size(v, image->shape[2]),
                      ldm_vae_latent_size(v, image->shape[3])};
    CK(expect(mean, "mean", lat));
    CK(expect(logvar, "logvar", lat));
    CK(act_ensure(v, 0, encode_fwd, image, mean, logvar));
    return encode_fwd(v, image, mean, logvar);
}

int ldm_vae_decode(struct ldm_vae *v, const struct ldm_tensor *latent,
                   const struct ldm_tensor *image)
{
    CK(check_input(latent, "latent", v->cfg.latent_channels, 1));
    int64_t img[4] = {latent->shape[0], v->cfg.out_channels,
                      ldm_vae_image_size(v, latent->shape[2]),
                      ldm_vae_image_size(v, latent->shape[3])};
    CK(expect(image, "image", img));
    CK(act_ensure(v, 1, decode_fwd, latent, image, NULL));
    return decode_fwd(v, latent, image, NULL);
}

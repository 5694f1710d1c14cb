/* clip_text.c — CLIP text transformer (transformers CLIPTextModel[WithProjection]) on the nn/ op set. */
#include "models/clip_text.h"
#include "err.h"
#include "json.h"
#include "models/weights.h"
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAME_LEN 96
#define LEGACY_EOS 2 /* configs with this eos id use the argmax rule */

/* ---- the parameter table ------------------------------------------------------------ */

/* One layer's parameters, under text_model.encoder.layers.<i>. */
enum {
    LN1_W, LN1_B, Q_W, Q_B, K_W, K_B, V_W, V_B, O_W, O_B, LN2_W, LN2_B,
    FC1_W, FC1_B, FC2_W, FC2_B, LP_COUNT
};

/* Sizes by letter: D width, F MLP width, V vocabulary, T positions, P projection. */
static const struct {
    const char *suffix;
    char rows, cols; /* cols 0: a vector */
} layer_table[LP_COUNT] = {
    {"layer_norm1.weight", 'D', 0},      {"layer_norm1.bias", 'D', 0},
    {"self_attn.q_proj.weight", 'D', 'D'}, {"self_attn.q_proj.bias", 'D', 0},
    {"self_attn.k_proj.weight", 'D', 'D'}, {"self_attn.k_proj.bias", 'D', 0},
    {"self_attn.v_proj.weight", 'D', 'D'}, {"self_attn.v_proj.bias", 'D', 0},
    {"self_attn.out_proj.weight", 'D', 'D'}, {"self_attn.out_proj.bias", 'D', 0},
    {"layer_norm2.weight", 'D', 0},      {"layer_norm2.bias", 'D', 0},
    {"mlp.fc1.weight", 'F', 'D'},        {"mlp.fc1.bias", 'F', 0},
    {"mlp.fc2.weight", 'D', 'F'},        {"mlp.fc2.bias", 'D', 0},
};

/* Activations, one arena. */
enum {
    A_IDS,    /* (N, L) I64 token ids */
    A_POS,    /* (N, L) I64 position ids */
    A_X,      /* (N, L, D) the residual stream */
    A_H,      /* (N, L, D) a normalized or projected copy */
    A_Q, A_K, A_V, /* (N, L, D) */
    A_ATT,    /* (N, L, D) attention output */
    A_LSE,    /* (N, H, L) F32 */
    A_MEAN, A_RSTD, /* (N·L) F32 */
    A_F,      /* (N, L, F) the MLP's hidden layer */
    A_LAST,   /* (N, L, D) last_hidden_state */
    A_POOLED, /* (N, D) */
    A_EMB,    /* (N, P) text_embeds */
    A_COUNT
};

struct ldm_clip_text {
    struct ldm_clip_config cfg;
    struct ldm_ctx *ctx;      /* not owned */
    int has_proj;
    size_t np;                /* parameters */
    struct ldm_tensor *p;     /* (np) in table order: tok, pos, layers, final norm, proj */
    char (*names)[NAME_LEN];  /* (np) their state-dict names */
    struct ldm_arena params;
    struct ldm_tensor a[A_COUNT];
    struct ldm_arena acts;
    int64_t N, L;             /* the shapes acts is laid out for (0: none) */
};

#define P_TOK 0
#define P_POS 1
#define P_LAYER(m, i, j) (2 + (size_t)(i) * LP_COUNT + (j))
#define P_FLN(m) (2 + (size_t)(m)->cfg.num_hidden_layers * LP_COUNT)
#define P_PROJ(m) (P_FLN(m) + 2)

static int64_t dim_of(const struct ldm_clip_config *c, char letter)
{
    switch (letter) {
    case 'D': return c->hidden_size;
    case 'F': return c->intermediate_size;
    case 'V': return c->vocab_size;
    case 'T': return c->max_position_embeddings;
    case 'P': return c->projection_dim;
    default: return 0;
    }
}

/* Name and shape parameter `idx`. */
static int describe(struct ldm_clip_text *m, size_t idx, const char *name, char rows, char cols)
{
    snprintf(m->names[idx], NAME_LEN, "%s", name);
    int64_t shape[2] = {dim_of(&m->cfg, rows), dim_of(&m->cfg, cols)};
    return ldm_tensor_set(&m->p[idx], m->names[idx], LDM_DT_F32, cols ? 2 : 1, shape);
}

static int build_table(struct ldm_clip_text *m)
{
    int rc = 0;
    rc |= describe(m, P_TOK, "text_model.embeddings.token_embedding.weight", 'V', 'D');
    rc |= describe(m, P_POS, "text_model.embeddings.position_embedding.weight", 'T', 'D');
    for (int64_t i = 0; i < m->cfg.num_hidden_layers; i++)
        for (int j = 0; j < LP_COUNT; j++) {
            char name[NAME_LEN];
            snprintf(name, sizeof name, "text_model.encoder.layers.%lld.%s", (long long)i,
                     layer_table[j].suffix);
            rc |= describe(m, P_LAYER(m, i, j), name, layer_table[j].rows, layer_table[j].cols);
        }
    rc |= describe(m, P_FLN(m), "text_model.final_layer_norm.weight", 'D', 0);
    rc |= describe(m, P_FLN(m) + 1, "text_model.final_layer_norm.bias", 'D', 0);
    if (m->has_proj)
        rc |= describe(m, P_PROJ(m), "text_projection.weight", 'P', 'D');
    return rc ? LDM_EINVAL : 0;
}

/* ---- config ------------------------------------------------------------------------- */

static int parse_act(const char *s, int *act)
{
    if (strcmp(s, "quick_gelu") == 0)
        *act = LDM_ACT_QUICK_GELU;
    else if (strcmp(s, "gelu") == 0)
        *act = LDM_ACT_GELU;
    else if (strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0)
        *act = LDM_ACT_GELU_TANH;
    else
        return -1;
    return 0;
}

static int read_ints(struct ldm_clip_config *c, const json_t *o)
{
    int rc;
    if ((rc = ldm_json_get_int(o, "vocab_size", &c->vocab_size, 49408)) ||
        (rc = ldm_json_get_int(o, "hidden_size", &c->hidden_size, 512)) ||
        (rc = ldm_json_get_int(o, "intermediate_size", &c->intermediate_size, 2048)) ||
        (rc = ldm_json_get_int(o, "num_hidden_layers", &c->num_hidden_layers, 12)) ||
        (rc = ldm_json_get_int(o, "num_attention_heads", &c->num_attention_heads, 8)) ||
        (rc = ldm_json_get_int(o, "max_position_embeddings", &c->max_position_embeddings, 77)) ||
        (rc = ldm_json_get_int(o, "projection_dim", &c->projection_dim, 512)) ||
        (rc = ldm_json_get_int(o, "eos_token_id", &c->eos_token_id, 49407)) ||
        (rc = ldm_json_get_real(o, "layer_norm_eps", &c->layer_norm_eps, 1e-5)))
        return rc;
    return 0;
}

static int check_sizes(const struct ldm_clip_config *c, const char *what)
{
    const struct { const char *key; int64_t v; } f[] = {
        {"vocab_size", c->vocab_size}, {"hidden_size", c->hidden_size},
        {"intermediate_size", c->intermediate_size}, {"num_hidden_layers", c->num_hidden_layers},
        {"num_attention_heads", c->num_attention_heads},
        {"max_position_embeddings", c->max_position_embeddings},
        {"projection_dim", c->projection_dim},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < 1 || f[i].v > (1 << 24))
            return ldm_fail(LDM_ECONFIG, "%s: %s %lld is outside 1..%d", what, f[i].key,
                            (long long)f[i].v, 1 << 24);
    if (c->hidden_size % c->num_attention_heads)
        return ldm_fail(LDM_ECONFIG, "%s: num_attention_heads %lld does not divide hidden_size "
                        "%lld", what, (long long)c->num_attention_heads, (long long)c->hidden_size);
    if (!(c->layer_norm_eps > 0))
        return ldm_fail(LDM_ECONFIG, "%s: layer_norm_eps %g must be positive", what,
                        c->layer_norm_eps);
    if (c->eos_token_id < 0 || c->eos_token_id >= c->vocab_size)
        return ldm_fail(LDM_ECONFIG, "%s: eos_token_id %lld is outside the vocabulary 0..%lld",
                        what, (long long)c->eos_token_id, (long long)(c->vocab_size - 1));
    return 0;
}

int ldm_clip_config_from_json(struct ldm_clip_config *cfg, const json_t *obj, const char *what)
{
    const json_t *tc = json_object_get(obj, "text_config");
    if (json_is_object(tc))
        obj = tc;
    const char *act;
    int rc = read_ints(cfg, obj);
    if (rc == 0)
        rc = ldm_json_get_str(obj, "hidden_act", &act, "quick_gelu");
    if (rc) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", ldm_errmsg());
        return ldm_fail(rc, "%s: %s", what, detail);
    }
    if (parse_act(act, &cfg->hidden_act))
        return ldm_fail(LDM_EUNSUPPORTED, "%s: hidden_act \"%s\" is not supported (quick_gelu, "
                        "gelu, gelu_new, gelu_pytorch_tanh)", what, act);
    return check_sizes(cfg, what);
}

/* ---- the weight files ----------------------------------------------------------------- */

/* The weights of the model folder, as ldm_weights_open finds them. */
struct clip_src {
    struct ldm_weights *w; /* one of w, st */
    struct ldm_st *st;
};

static int src_open(struct clip_src *s, const char *dir)
{
    return ldm_weights_open(&s->w, dir);
}

static void src_close(struct clip_src *s)
{
    ldm_weights_close(&s->w);
    ldm_st_close(&s->st);
}

static const char *src_label(const struct clip_src *s)
{
    return s->w ? ldm_weights_source(s->w) : ldm_st_label(s->st);
}

static const struct ldm_st_tensor *src_get(const struct clip_src *s, const char *name)
{
    return s->w ? ldm_weights_get(s->w, name) : ldm_st_get(s->st, name);
}

/* Check dtype and shape; a mismatch names the file (the shard) holding the tensor. */
static int src_expect(const struct clip_src *s, const char *name, int dtype, int ndim,
                      const int64_t *shape)
{
    const struct ldm_st_tensor *t;
    return s->w ? ldm_weights_expect(s->w, name, dtype, ndim, shape, &t)
                : ldm_st_expect(s->st, name, dtype, ndim, shape, &t);
}

/* ---- loading ------------------------------------------------------------------------ */

/* Check one tensor of the weights against t and copy it (as F32) into t. */
static int load_param(struct ldm_ctx *ctx, const struct clip_src *src, const struct ldm_tensor *t)
{
    const struct ldm_st_tensor *s = src_get(src, t->name);
    if (!s)
        return ldm_fail(LDM_ENOTFOUND, "%s: no tensor '%s'", src_label(src), t->name);
    if (s->dtype != LDM_DT_F32 && s->dtype != LDM_DT_F16 && s->dtype != LDM_DT_BF16)
        return ldm_fail(LDM_EUNSUPPORTED, "%s: tensor %s is %s; expected F32, F16 or BF16",
                        src_label(src), t->name, ldm_dtype_name(s->dtype));
    int rc = src_expect(src, t->name, s->dtype, t->ndim, t->shape);
    if (rc != 0)
        return rc;
    size_t n = ldm_tensor_numel(t);
    if (s->dtype == LDM_DT_F32)
        return ldm_ctx_upload(ctx, t->data, s->data, n * sizeof(float));
    float *tmp = malloc(n * sizeof(float));
    if (!tmp)
        return ldm_fail(LDM_ENOMEM, "%s: converting %s", src_label(src), t->name);
    rc = ldm_convert(tmp, LDM_DT_F32, s->data, s->dtype, n);
    if (rc == 0)
        rc = ldm_ctx_upload(ctx, t->data, tmp, n * sizeof(float));
    free(tmp);
    return rc;
}

static int load_config(struct ldm_clip_config *cfg, const char *dir)
{
    char path[4096];
    json_t *o;
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = ldm_json_load_object(path, &o);
    if (rc == LDM_EFORMAT && access(path, R_OK) != 0)
        return ldm_fail(LDM_ENOTFOUND, "%s: cannot be read", path);
    if (rc)
        return rc;
    rc = ldm_clip_config_from_json(cfg, o, path);
    json_decref(o);
    return rc;
}

/* The parameter table (with the projection when m->has_proj) and its arena. */
static int make_params(struct ldm_clip_text *m, const char *dir)
{
    m->np = (size_t)P_FLN(m) + 2 + (size_t)m->has_proj;
    m->p = calloc(m->np, sizeof *m->p);
    m->names = calloc(m->np, sizeof *m->names);
    int rc = m->p && m->names ? build_table(m) : ldm_fail(LDM_ENOMEM, "%s: parameter table", dir);
    if (rc == 0)
        rc = ldm_arena_alloc(&m->params, m->ctx, m->p, m->np);
    return rc;
}

int ldm_clip_text_load(struct ldm_clip_text **out, struct ldm_ctx *ctx, const char *dir,
                       int with_projection)
{
    *out = NULL;
    struct clip_src src = {NULL, NULL};
    struct ldm_clip_text *m = calloc(1, sizeof *m);
    if (!m)
        return ldm_fail(LDM_ENOMEM, "%s: clip text model", dir);
    m->ctx = ctx;
    int rc = load_config(&m->cfg, dir);
    if (rc == 0)
        rc = src_open(&src, dir);
    if (rc == 0) {
        m->has_proj = with_projection == LDM_CLIP_PROJ_AUTO
                          ? src_get(&src, "text_projection.weight") != NULL
                          : with_projection != 0;
        rc = make_params(m, dir);
    }
    for (size_t i = 0; rc == 0 && i < m->np; i++)
        rc = load_param(m->ctx, &src, &m->p[i]);
    src_close(&src);
    if (rc) {
        ldm_clip_text_free(&m);
        return rc;
    }
    *out = m;
    return 0;
}

void ldm_clip_text_free(struct ldm_clip_text **mp)
{
    struct ldm_clip_text *m = *mp;
    if (!m)
        return;
    ldm_arena_free(&m->acts);
    ldm_arena_free(&m->params);
    free(m->p);
    free(m->names);
    free(m);
    *mp = NULL;
}

const struct ldm_clip_config *ldm_clip_text_config(const struct ldm_clip_text *m)
{
    return &m->cfg;
}

int ldm_clip_text_has_projection(const struct ldm_clip_text *m)
{
    return m->has_proj;
}

/* ---- activations ---------------------------------------------------------------------- */

#define TRY(call)                                                                                  \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

static int act_shapes(struct ldm_clip_text *m, int64_t N, int64_t L)
{
    static const int wide[] = {A_X, A_H, A_Q, A_K, A_V, A_ATT, A_LAST};
    static const char *const wide_names[] = {"hidden_states", "h", "q", "k", "v", "attn",
                                             "last_hidden_state"};
    const struct ldm_clip_config *c = &m->cfg;
    int64_t D = c->hidden_size, F = c->intermediate_size, H = c->num_attention_heads;
    struct ldm_tensor *a = m->a;
    int rc = 0;
    rc |= ldm_tensor_setv(&a[A_IDS], "input_ids", LDM_DT_I64, N, L);
    rc |= ldm_tensor_setv(&a[A_POS], "position_ids", LDM_DT_I64, N, L);
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
        rc |= ldm_tensor_setv(&a[wide[i]], wide_names[i], LDM_DT_F32, N, L, D);
    rc |= ldm_tensor_setv(&a[A_LSE], "lse", LDM_DT_F32, N, H, L);
    rc |= ldm_tensor_setv(&a[A_MEAN], "mean", LDM_DT_F32, N * L);
    rc |= ldm_tensor_setv(&a[A_RSTD], "rstd", LDM_DT_F32, N * L);
    rc |= ldm_tensor_setv(&a[A_F], "mlp", LDM_DT_F32, N, L, F);
    rc |= ldm_tensor_setv(&a[A_POOLED], "pooled", LDM_DT_F32, N, D);
    rc |= ldm_tensor_setv(&a[A_EMB], "text_embeds", LDM_DT_F32, N, c->projection_dim);
    return rc ? LDM_EINVAL : 0;
}

static int upload_positions(struct ldm_clip_text *m, int64_t N, int64_t L)
{
    int64_t *pos = malloc((size_t)(N * L) * sizeof *pos);
    if (!pos)
        return ldm_fail(LDM_ENOMEM, "clip text: position ids (%lld, %lld)", (long long)N,
                        (long long)L);
    for (int64_t i = 0; i < N * L; i++)
        pos[i] = i % L;
    int rc = ldm_ctx_upload(m->ctx, m->a[A_POS].data, pos, (size_t)(N * L) * sizeof *pos);
    free(pos);
    return rc;
}

static int forward_ops(struct ldm_clip_text *m, const int64_t *ids, const struct ldm_clip_out *o,
                       int64_t K);

/* Record the workspace every op of a full forward needs, and reserve it. */
static int plan_workspace(struct ldm_clip_text *m)
{
    size_t need = 0;
    ldm_ctx_plan_begin(m->ctx);
    int rc = forward_ops(m, NULL, NULL, -1);
    ldm_ctx_plan_end(m->ctx, &need);
    return rc ? rc : ldm_ctx_reserve(m->ctx, need);
}

/* Lay the activations out for (N, L) unless they already are. */
static int prepare(struct ldm_clip_text *m, int64_t N, int64_t L)
{
    if (m->N == N && m->L == L)
        return 0;
    ldm_arena_free(&m->acts);
    m->N = m->L = 0;
    int rc = act_shapes(m, N, L);
    if (rc == 0)
        rc = ldm_arena_alloc(&m->acts, m->ctx, m->a, A_COUNT);
    if (rc == 0)
        rc = upload_positions(m, N, L);
    if (rc == 0)
        rc = plan_workspace(m);
    if (rc) {
        ldm_arena_free(&m->acts);
        return rc;
    }
    m->N = N;
    m->L = L;
    return 0;
}

/* ---- forward ------------------------------------------------------------------------------ */

/* Copy t to the host (nothing while planning). */
static int fetch(struct ldm_clip_text *m, float *dst, const struct ldm_tensor *t)
{
    if (m->ctx->planning)
        return 0;
    return ldm_ctx_download(m->ctx, dst, t->data, ldm_tensor_nbytes(t));
}

static int embed(struct ldm_clip_text *m)
{
    struct ldm_ctx *c = m->ctx;
    struct ldm_tensor *a = m->a;
    TRY(ldm_embedding_forward(c, &a[A_X], &a[A_IDS], &m->p[P_TOK])); /* (N, L, D) */
    TRY(ldm_embedding_forward(c, &a[A_H], &a[A_POS], &m->p[P_POS])); /* (N, L, D) */
    return ldm_add_forward(c, &a[A_X], 1, &a[A_X], 1, &a[A_H]);      /* (N, L, D) */
}

/* x += out_proj(causal self-attention(layer_norm1(x))). */
static int attention_block(struct ldm_clip_text *m, int64_t i)
{
    struct ldm_ctx *c = m->ctx;
    struct ldm_tensor *a = m->a;
    const struct ldm_tensor *p = &m->p[P_LAYER(m, i, 0)];
    struct ldm_norm_opts no = {.eps = (float)m->cfg.layer_norm_eps};
    struct ldm_attn_opts ao = {.heads = (int)m->cfg.num_attention_heads, .causal = 1};
    TRY(ldm_layer_norm_forward(c, &a[A_H], &a[A_MEAN], &a[A_RSTD], &a[A_X], &p[LN1_W],
                               &p[LN1_B], &no));                             /* (N, L, D) */
    TRY(ldm_linear_forward(c, &a[A_Q], &a[A_H], &p[Q_W], &p[Q_B]));          /* (N, L, D) */
    TRY(ldm_linear_forward(c, &a[A_K], &a[A_H], &p[K_W], &p[K_B]));          /* (N, L, D) */
    TRY(ldm_linear_forward(c, &a[A_V], &a[A_H], &p[V_W], &p[V_B]));          /* (N, L, D) */
    TRY(ldm_attention_forward(c, &a[A_ATT], &a[A_LSE], &a[A_Q], &a[A_K], &a[A_V],
                              &ao));                                         /* (N, L, H·Dh) */
    TRY(ldm_linear_forward(c, &a[A_H], &a[A_ATT], &p[O_W], &p[O_B]));        /* (N, L, D) */
    return ldm_add_forward(c, &a[A_X], 1, &a[A_X], 1, &a[A_H]);              /* (N, L, D) */
}

/* x += fc2(act(fc1(layer_norm2(x)))). */
static int mlp_block(struct ldm_clip_text *m, int64_t i)
{
    struct ldm_ctx *c = m->ctx;
    struct ldm_tensor *a = m->a;
    const struct ldm_tensor *p = &m->p[P_LAYER(m, i, 0)];
    struct ldm_norm_opts no = {.eps = (float)m->cfg.layer_norm_eps};
    TRY(ldm_layer_norm_forward(c, &a[A_H], &a[A_MEAN], &a[A_RSTD], &a[A_X], &p[LN2_W],
                               &p[LN2_B], &no));                             /* (N, L, D) */
    TRY(ldm_linear_forward(c, &a[A_F], &a[A_H], &p[FC1_W], &p[FC1_B]));      /* (N, L, F) */
    TRY(ldm_act_forward(c, m->cfg.hidden_act, &a[A_F], &a[A_F]));            /* (N, L, F) */
    TRY(ldm_linear_forward(c, &a[A_H], &a[A_F], &p[FC2_W], &p[FC2_B]));      /* (N, L, D) */
    return ldm_add_forward(c, &a[A_X], 1, &a[A_X], 1, &a[A_H]);              /* (N, L, D) */
}

/* The pooled position of one row (see the header), or −1 when it has no end-of-text. */
static int64_t eos_position(const struct ldm_clip_config *c, const int64_t *row, int64_t L)
{
    if (c->eos_token_id == LEGACY_EOS) {
        int64_t best = 0;
        for (int64_t l = 1; l < L; l++)
            if (row[l] > row[best])
                best = l;
        return best;
    }
    for (int64_t l = 0; l < L; l++)
        if (row[l] == c->eos_token_id)
            return l;
    return -1;
}

/* pooled[n] = last_hidden_state[n, eos(n)] (rows checked by the caller). */
static int gather_pooled(struct ldm_clip_text *m, const int64_t *ids)
{
    if (m->ctx->planning)
        return 0;
    int64_t N = m->N, L = m->L, D = m->cfg.hidden_size;
    const float *last = m->a[A_LAST].data;
    float *pooled = m->a[A_POOLED].data;
    for (int64_t n = 0; n < N; n++) {
        int64_t e = eos_position(&m->cfg, ids + n * L, L);
        TRY(ldm_ctx_copy(m->ctx, pooled + n * D, last + (n * L + e) * D,
                         (size_t)D * sizeof(float)));
    }
    return 0;
}

/* final_layer_norm, pooled and text_embeds; o NULL: every op, nothing fetched. */
static int final_outputs(struct ldm_clip_text *m, const int64_t *ids, const struct ldm_clip_out *o)
{
    struct ldm_ctx *c = m->ctx;
    struct ldm_tensor *a = m->a;
    const struct ldm_tensor *fln = &m->p[P_FLN(m)];
    struct ldm_norm_opts no = {.eps = (float)m->cfg.layer_norm_eps};
    int want_emb = o ? o->text_embeds != NULL : m->has_proj;
    int want_pool = !o || o->pooled || want_emb;
    TRY(ldm_layer_norm_forward(c, &a[A_LAST], &a[A_MEAN], &a[A_RSTD], &a[A_X], &fln[0], &fln[1],
                               &no));                                        /* (N, L, D) */
    if (o && o->last_hidden_state)
        TRY(fetch(m, o->last_hidden_state, &a[A_LAST]));
    if (want_pool)
        TRY(gather_pooled(m, ids));                                          /* (N, D) */
    if (o && o->pooled)
        TRY(fetch(m, o->pooled, &a[A_POOLED]));
    if (!want_emb)
        return 0;
    TRY(ldm_linear_forward(c, &a[A_EMB], &a[A_POOLED], &m->p[P_PROJ(m)], NULL)); /* (N, P) */
    return o ? fetch(m, o->text_embeds, &a[A_EMB]) : 0;
}

/* Embeddings, layers, outputs; K the hidden state to fetch (o NULL: plan). */
static int forward_ops(struct ldm_clip_text *m, const int64_t *ids, const struct ldm_clip_out *o,
                       int64_t K)
{
    int64_t layers = m->cfg.num_hidden_layers;
    int need_final = !o || o->last_hidden_state || o->pooled || o->text_embeds;
    int64_t stop = need_final ? layers : K;
    TRY(embed(m));                                                           /* (N, L, D) */
    for (int64_t i = 0; i <= stop; i++) {
        if (o && o->hidden && i == K)
            TRY(fetch(m, o->hidden, &m->a[A_X]));                            /* (N, L, D) */
        if (i < stop) {
            TRY(attention_block(m, i));                                      /* (N, L, D) */
            TRY(mlp_block(m, i));                                            /* (N, L, D) */
        }
    }
    return need_final ? final_outputs(m, ids, o) : 0;
}

/* Check the ids and the outputs asked for; *K gets the hidden index resolved. */
static int check_request(const struct ldm_clip_text *m, const int64_t *ids, int64_t N, int64_t L,
                         const struct ldm_clip_out *o, int64_t *K)
{
    const struct ldm_clip_config *c = &m->cfg;
    if (N < 1 || L < 1 || L > c->max_position_embeddings)
        return ldm_fail(LDM_EINVAL, "clip text: input_ids (%lld, %lld): need N >= 1 and "
                        "1 <= L <= max_position_embeddings %lld", (long long)N, (long long)L,
                        (long long)c->max_position_embeddings);
    *K = o->hidden_index < 0 ? c->num_hidden_layers + 1 + o->hidden_index : o->hidden_index;
    if (o->hidden && (*K < 0 || *K > c->num_hidden_layers))
        return ldm_fail(LDM_EINVAL, "clip text: hidden_index %d is outside -%lld..%lld",
                        o->hidden_index, (long long)(c->num_hidden_layers + 1),
                        (long long)c->num_hidden_layers);
    if (o->text_embeds && !m->has_proj)
        return ldm_fail(LDM_EINVAL, "clip text: text_embeds asked of a model loaded without "
                                    "text_projection");
    for (int64_t i = 0; i < N * L; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return ldm_fail(LDM_ERANGE, "clip text: input_ids[%lld][%lld] = %lld is outside the "
                            "vocabulary 0..%lld", (long long)(i / L), (long long)(i % L),
                            (long long)ids[i], (long long)(c->vocab_size - 1));
    for (int64_t n = 0; (o->pooled || o->text_embeds) && n < N; n++)
        if (eos_position(c, ids + n * L, L) < 0)
            return ldm_fail(LDM_EINVAL, "clip text: row %lld of input_ids has no end-of-text "
                            "id %lld", (long long)n, (long long)c->eos_token_id);
    return 0;
}

int ldm_clip_text_forward(struct ldm_clip_text *m, const int64_t *ids, int64_t N, int64_t L,
                          const struct ldm_clip_out *out)
{
    int64_t K = 0;
    TRY(check_request(m, ids, N, L, out, &K));
    TRY(prepare(m, N, L));
    TRY(ldm_ctx_upload(m->ctx, m->a[A_IDS].data, ids, (size_t)(N * L) * sizeof *ids));
    return forward_ops(m, ids, out, K);
}

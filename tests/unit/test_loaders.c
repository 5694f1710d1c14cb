/* test_loaders.c — the VAE, CLIP text and UNet loaders read every diffusers weight layout.
 *
 * For each golden model (../shared/data/golden/vae, clip_text_quickgelu, unet_sd1) the
 * same weights are written as two shards with an index.json, as a torch .bin state dict
 * (torch.save by /usr/bin/python3) and as the fp16 variant; each folder is loaded and a
 * forward output compared with the one of the single-file load: bit-exact for shards
 * and .bin, and for the fp16 variant bit-exact against F32 weights rounded to F16 (and
 * near the unrounded output). A missing shard and a wrong shape are named in the error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fsutil.h"
#include "json.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "nn/tensor.h"
#include "safetensors.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"
#define FP16_TOL 5e-3 /* max|fp16 − f32| / max|f32| of an output */

Suite *suite_loaders(void);

static struct ldm_ctx *C;
static struct ldm_st *G; /* the case's golden.safetensors (inputs) */

/* A forward output: every output of one run, concatenated. */
struct result {
    float *v;
    size_t n;
};

/* One model part: its golden folder, weight file stem, .bin name, and the runner that
 * loads it from a folder and computes `out` (returns the loader's code). */
struct part {
    const char *golden;
    const char *stem;      /* diffusion_pytorch_model | model */
    const char *bin;       /* the .bin file name of the folder */
    const char *bad;       /* a tensor given a wrong shape */
    int (*run)(const char *dir, struct result *out);
};

static const struct ldm_st_tensor *gin(const char *name)
{
    const struct ldm_st_tensor *t = ldm_st_get(G, name);
    ck_assert_msg(t != NULL, "the golden file has no tensor %s", name);
    return t;
}

static float *alloc_out(struct result *r, size_t n)
{
    r->n = n;
    r->v = malloc(n * sizeof *r->v + 1);
    ck_assert_ptr_nonnull(r->v);
    for (size_t i = 0; i < n; i++)
        r->v[i] = NAN;
    return r->v;
}

/* ---- the three models ------------------------------------------------------------- */

/* VAE: encode in.image to (mean, logvar), decode the mean. */
static int run_vae(const char *dir, struct result *out)
{
    struct ldm_vae *v = NULL;
    int rc = ldm_vae_open(&v, C, dir);
    if (rc)
        return rc;
    const struct ldm_st_tensor *im = gin("in.image");
    int64_t N = im->shape[0], H = im->shape[2], W = im->shape[3];
    int64_t h = ldm_vae_latent_size(v, H), w = ldm_vae_latent_size(v, W);
    int64_t L = ldm_vae_config(v)->latent_channels, nl = N * L * h * w;
    float *o = alloc_out(out, (size_t)(2 * nl + N * 3 * H * W));
    struct ldm_tensor img = ldm_tensor_f32((void *)im->data, N, im->shape[1], H, W);
    struct ldm_tensor mean = ldm_tensor_f32(o, N, L, h, w),
                      logvar = ldm_tensor_f32(o + nl, N, L, h, w),
                      dec = ldm_tensor_f32(o + 2 * nl, N, 3, H, W);
    ck_ok(ldm_vae_encode(v, &img, &mean, &logvar));
    ck_ok(ldm_vae_decode(v, &mean, &dec));
    ldm_vae_close(&v);
    return 0;
}

/* CLIP text with projection: last_hidden_state, pooled, text_embeds of in.input_ids. */
static int run_clip(const char *dir, struct result *out)
{
    struct ldm_clip_text *m = NULL;
    int rc = ldm_clip_text_load(&m, C, dir, 1);
    if (rc)
        return rc;
    const struct ldm_st_tensor *ids = gin("in.input_ids");
    const struct ldm_clip_config *c = ldm_clip_text_config(m);
    int64_t N = ids->shape[0], L = ids->shape[1], D = c->hidden_size;
    float *o = alloc_out(out, (size_t)(N * L * D + N * D + N * c->projection_dim));
    struct ldm_clip_out co = {.last_hidden_state = o, .pooled = o + N * L * D,
                              .text_embeds = o + N * L * D + N * D};
    ck_ok(ldm_clip_text_forward(m, ids->data, N, L, &co));
    ldm_clip_text_free(&m);
    return 0;
}

/* The UNet of folder dir (file: the one safetensors file instead) on the golden inputs. */
static int unet_forward(const char *dir, const char *file, struct result *out)
{
    char path[4200];
    struct ldm_unet_config cfg;
    struct ldm_unet *u = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_ok(ldm_unet_config_load(&cfg, path));
    ck_ok(ldm_unet_create(&u, C, &cfg));
    int rc = file ? ldm_unet_load(u, file) : ldm_unet_load_dir(u, dir);
    if (rc) {
        ldm_unet_free(&u);
        return rc;
    }
    const struct ldm_st_tensor *s = gin("in.sample"), *e = gin("in.encoder_hidden_states"),
                               *ts = gin("in.timestep");
    ck_ok(ldm_unet_prepare(u, s->shape[0], s->shape[2], s->shape[3], e->shape[1]));
    float t[16];
    ck_assert_int_le(ts->shape[0], 16);
    for (int64_t i = 0; i < ts->shape[0]; i++)
        t[i] = (float)((const int64_t *)ts->data)[i];
    struct ldm_unet_inputs in = {s->data, t, e->data, NULL, NULL};
    ck_ok(ldm_unet_forward(u, &in, alloc_out(out, s->nbytes / sizeof(float))));
    ldm_unet_free(&u);
    return 0;
}

static int run_unet(const char *dir, struct result *out)
{
    return unet_forward(dir, NULL, out);
}

static const struct part PARTS[] = {
    {"vae", "diffusion_pytorch_model", "diffusion_pytorch_model.bin", "decoder.conv_out.bias",
     run_vae},
    {"clip_text_quickgelu", "model", "pytorch_model.bin", "text_model.final_layer_norm.bias",
     run_clip},
    {"unet_sd1", "diffusion_pytorch_model", "diffusion_pytorch_model.bin",
     "time_embedding.linear_1.bias", run_unet},
};

/* ---- writing the layouts ---------------------------------------------------------- */

static void golden_file(char *buf, size_t size, const struct part *p, const char *file)
{
    snprintf(buf, size, "%s/golden/%s/%s", tu_data_dir(), p->golden, file);
}

static void copy_file(const char *from, const char *to)
{
    struct ldm_map m = {NULL, 0};
    ck_ok(ldm_map_file(from, &m));
    tu_write_file(to, m.data, m.len);
    ldm_unmap(&m);
}

/* A fresh folder holding the part's config.json. */
static char *new_folder(const struct part *p)
{
    char from[4096], to[4200];
    char *dir = tu_tmpdir();
    golden_file(from, sizeof from, p, "config.json");
    snprintf(to, sizeof to, "%s/config.json", dir);
    copy_file(from, to);
    return dir;
}

/* The part's single-file weights (F32), opened. */
static struct ldm_st *open_weights(const struct part *p)
{
    char path[4096];
    struct ldm_st *st = NULL;
    snprintf(path, sizeof path, "%s.safetensors", p->stem);
    char file[4200];
    golden_file(file, sizeof file, p, path);
    ck_ok(ldm_st_open(&st, file));
    return st;
}

/* The tensors of st in name order; `bad` (when not NULL, a vector) one element longer. */
static struct ldm_st_tensor *tensors_of(const struct ldm_st *st, const char *bad, float **extra,
                                        int64_t *bad_len)
{
    size_t n = ldm_st_count(st);
    struct ldm_st_tensor *t = calloc(n, sizeof *t);
    ck_assert_ptr_nonnull(t);
    *extra = NULL;
    for (size_t i = 0; i < n; i++) {
        t[i] = *ldm_st_at(st, i);
        if (bad && strcmp(t[i].name, bad) == 0) {
            ck_assert_int_eq(t[i].ndim, 1);
            *extra = calloc(t[i].nbytes / sizeof(float) + 1, sizeof(float));
            ck_assert_ptr_nonnull(*extra);
            memcpy(*extra, t[i].data, t[i].nbytes);
            *bad_len = t[i].shape[0];
            t[i].data = *extra;
            t[i].shape[0]++;
            t[i].nbytes += sizeof(float);
        }
    }
    return t;
}

/* Two shards STEM-0000k-of-00002.safetensors (first and second half of the names)
 * and STEM.safetensors.index.json, as save_pretrained writes them; tensor `bad` (when
 * not NULL) one element longer, its true length into *bad_len. */
static void write_shards(const struct part *p, const char *dir, const char *bad,
                         int64_t *bad_len)
{
    struct ldm_st *st = open_weights(p);
    float *extra;
    struct ldm_st_tensor *t = tensors_of(st, bad, &extra, bad_len);
    size_t n = ldm_st_count(st), half = n / 2, total = 0;
    json_t *map = json_object();
    char path[4200], file[2][256];
    for (int k = 0; k < 2; k++) {
        snprintf(file[k], sizeof file[k], "%s-%05d-of-00002.safetensors", p->stem, k + 1);
        snprintf(path, sizeof path, "%s/%s", dir, file[k]);
        ck_ok(ldm_st_write(path, t + (k ? half : 0), k ? n - half : half, NULL, 0));
    }
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(map, t[i].name, json_string(file[i >= half]));
        total += t[i].nbytes;
    }
    json_t *root = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total,
                             "weight_map", map);
    ck_assert_ptr_nonnull(root);
    snprintf(path, sizeof path, "%s/%s.safetensors.index.json", dir, p->stem);
    ck_assert_int_eq(json_dump_file(root, path, JSON_INDENT(2) | JSON_SORT_KEYS), 0);
    json_decref(root);
    free(extra);
    free(t);
    ldm_st_close(&st);
}

/* The state dict torch.save writes from a safetensors file's tensors (an OrderedDict
 * in name order, zip format), as a model's state_dict() is saved. */
static const char TO_BIN_PY[] =
    "import collections, json, struct, sys\n"
    "import torch\n"
    "src, dst = sys.argv[1], sys.argv[2]\n"
    "raw = open(src, 'rb').read()\n"
    "n = struct.unpack('<Q', raw[:8])[0]\n"
    "head = json.loads(raw[8:8 + n])\n"
    "types = {'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,\n"
    "         'I64': torch.int64}\n"
    "sd = collections.OrderedDict()\n"
    "for name in sorted(k for k in head if k != '__metadata__'):\n"
    "    e = head[name]\n"
    "    b, end = e['data_offsets']\n"
    "    buf = bytearray(raw[8 + n + b:8 + n + end])\n"
    "    t = torch.frombuffer(buf, dtype=types[e['dtype']]) if buf else torch.zeros(0)\n"
    "    sd[name] = t.reshape(e['shape']).clone()\n"
    "torch.save(sd, dst)\n";

static void write_bin(const struct part *p, const char *dir)
{
    char script[4200], src[4096], weights[256], cmd[16384];
    snprintf(script, sizeof script, "%s/to_bin.py", dir);
    tu_write_file(script, TO_BIN_PY, strlen(TO_BIN_PY));
    snprintf(weights, sizeof weights, "%s.safetensors", p->stem);
    golden_file(src, sizeof src, p, weights);
    snprintf(cmd, sizeof cmd, PYTHON " '%s' '%s' '%s/%s' && rm '%s'", script, src, dir, p->bin,
             script);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed", cmd);
}

/* The weights rounded to F16, as the fp16 variant STEM.fp16.safetensors into dir, and
 * (rounded_dir not NULL) widened back to F32 as STEM.safetensors into rounded_dir. */
static void write_fp16(const struct part *p, const char *dir, const char *rounded_dir)
{
    struct ldm_st *st = open_weights(p);
    size_t n = ldm_st_count(st);
    struct ldm_st_tensor *h = calloc(n, sizeof *h), *r = calloc(n, sizeof *r);
    ck_assert(h && r);
    for (size_t i = 0; i < n; i++) {
        h[i] = r[i] = *ldm_st_at(st, i);
        ck_assert_int_eq(h[i].dtype, LDM_DT_F32);
        size_t k = h[i].nbytes / sizeof(float);
        uint16_t *half = malloc(k * sizeof *half + 2);
        float *wide = malloc(k * sizeof *wide + 4);
        ck_assert(half && wide);
        ck_ok(ldm_convert(half, LDM_DT_F16, h[i].data, LDM_DT_F32, k));
        ck_ok(ldm_convert(wide, LDM_DT_F32, half, LDM_DT_F16, k));
        h[i].data = half, h[i].dtype = LDM_DT_F16, h[i].nbytes = k * sizeof *half;
        r[i].data = wide;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.fp16.safetensors", dir, p->stem);
    ck_ok(ldm_st_write(path, h, n, NULL, 0));
    if (rounded_dir) {
        snprintf(path, sizeof path, "%s/%s.safetensors", rounded_dir, p->stem);
        ck_ok(ldm_st_write(path, r, n, NULL, 0));
    }
    for (size_t i = 0; i < n; i++) {
        free((void *)h[i].data);
        free((void *)r[i].data);
    }
    free(h);
    free(r);
    ldm_st_close(&st);
}

/* ---- comparing ---------------------------------------------------------------------- */

static void setup(void)
{
    ck_ok(ldm_ctx_open(&C, "cpu", 2));
}

static void teardown(void)
{
    ldm_st_close(&G);
    ldm_ctx_close(&C);
}

static void open_golden(const struct part *p)
{
    char path[4096];
    golden_file(path, sizeof path, p, "golden.safetensors");
    ck_ok(ldm_st_open(&G, path));
}

static void same_bits(const struct part *p, const char *what, const struct result *a,
                      const struct result *b)
{
    ck_assert_uint_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        ck_assert_msg(memcmp(&a->v[i], &b->v[i], sizeof(float)) == 0,
                      "%s %s: output[%zu] is %.9g, the single file gives %.9g", p->golden,
                      what, i, (double)b->v[i], (double)a->v[i]);
}

/* max|b − a| / max|a|. */
static double rel_diff(const struct result *a, const struct result *b)
{
    double dmax = 0, amax = 0;
    for (size_t i = 0; i < a->n; i++) {
        dmax = fmax(dmax, isfinite(b->v[i]) ? fabs((double)b->v[i] - a->v[i]) : INFINITY);
        amax = fmax(amax, fabs((double)a->v[i]));
    }
    return dmax / (amax > 0 ? amax : 1);
}

/* Load folder dir (holding config.json and one layout), run, compare bit for bit. */
static void check_bits(const struct part *p, const char *what, const char *dir,
                       const struct result *ref)
{
    struct result r = {NULL, 0};
    ck_ok(p->run(dir, &r));
    same_bits(p, what, ref, &r);
    free(r.v);
}

/* ---- the tests ------------------------------------------------------------------------ */

/* The single-file folder as loaded today: the reference of every other layout. */
static void reference(const struct part *p, struct result *ref)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/golden/%s", tu_data_dir(), p->golden);
    ck_ok(p->run(dir, ref));
    for (size_t i = 0; i < ref->n; i++)
        ck_assert_msg(isfinite(ref->v[i]), "%s: output[%zu] not written", p->golden, i);
}

START_TEST(shards_and_bin)
{
    const struct part *p = &PARTS[_i];
    struct result ref = {NULL, 0};
    open_golden(p);
    reference(p, &ref);
    char *dir = new_folder(p);
    write_shards(p, dir, NULL, NULL);
    check_bits(p, "2 shards", dir, &ref);
    tu_rmtree(dir);
    free(dir);
    dir = new_folder(p);
    write_bin(p, dir);
    check_bits(p, p->bin, dir, &ref);
    tu_rmtree(dir);
    free(dir);
    fprintf(stderr, "loaders: %s: 2 shards and %s equal the single file (%zu outputs)\n",
            p->golden, p->bin, ref.n);
    free(ref.v);
}
END_TEST

START_TEST(fp16_variant)
{
    const struct part *p = &PARTS[_i];
    struct result ref = {NULL, 0}, rounded = {NULL, 0}, half = {NULL, 0};
    open_golden(p);
    reference(p, &ref);
    char *dir = new_folder(p), *rdir = new_folder(p), from[4096], to[4200], name[256];
    write_fp16(p, dir, rdir);
    ck_ok(p->run(rdir, &rounded));
    ck_ok(p->run(dir, &half));
    same_bits(p, "fp16 variant vs F32-stored rounded weights", &rounded, &half);
    double rel = rel_diff(&ref, &half);
    fprintf(stderr, "loaders: %s: fp16 variant, relative difference %.3g\n", p->golden, rel);
    ck_assert_msg(rel > 0 && rel < FP16_TOL, "%s fp16: relative difference %.3g", p->golden, rel);
    /* with the plain file beside it, the plain file is read */
    snprintf(name, sizeof name, "%s.safetensors", p->stem);
    golden_file(from, sizeof from, p, name);
    snprintf(to, sizeof to, "%s/%s", dir, name);
    copy_file(from, to);
    check_bits(p, "plain file beside the fp16 variant", dir, &ref);
    free(ref.v);
    free(rounded.v);
    free(half.v);
    tu_rmtree(dir);
    tu_rmtree(rdir);
    free(dir);
    free(rdir);
}
END_TEST

START_TEST(shard_errors)
{
    const struct part *p = &PARTS[_i];
    struct result r = {NULL, 0};
    char path[4200], needle[512];
    open_golden(p);
    /* a missing shard is named, even with an fp16 variant in the folder */
    char *dir = new_folder(p);
    write_shards(p, dir, NULL, NULL);
    write_fp16(p, dir, NULL);
    snprintf(path, sizeof path, "%s/%s-00002-of-00002.safetensors", dir, p->stem);
    ck_assert_int_eq(remove(path), 0);
    snprintf(needle, sizeof needle, "%s-00002-of-00002.safetensors: no such file", p->stem);
    ck_fails_with(p->run(dir, &r), LDM_ENOTFOUND, needle);
    ck_assert_ptr_null(r.v);
    tu_rmtree(dir);
    free(dir);
    /* a wrong shape names the tensor and both shapes */
    dir = new_folder(p);
    int64_t len = -1;
    write_shards(p, dir, p->bad, &len);
    ck_fails_with(p->run(dir, &r), LDM_EFORMAT, p->bad);
    ck_assert_ptr_null(r.v);
    fprintf(stderr, "loaders: %s: %s\n", p->golden, ldm_errmsg());
    char want[64], got[64];
    snprintf(want, sizeof want, "[%lld]", (long long)len);
    snprintf(got, sizeof got, "[%lld]", (long long)len + 1);
    ck_assert_msg(strstr(ldm_errmsg(), want) && strstr(ldm_errmsg(), got),
                  "both shapes named: %s", ldm_errmsg());
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ldm_unet_load still reads a file path; load_dir on the golden folder reads the same. */
START_TEST(unet_file_and_folder)
{
    const struct part *p = &PARTS[2];
    char dir[4096], file[4200];
    struct result a = {NULL, 0}, b = {NULL, 0};
    open_golden(p);
    snprintf(dir, sizeof dir, "%s/golden/%s", tu_data_dir(), p->golden);
    snprintf(file, sizeof file, "%s/diffusion_pytorch_model.safetensors", dir);
    ck_ok(unet_forward(dir, file, &a));
    ck_ok(unet_forward(dir, NULL, &b));
    same_bits(p, "ldm_unet_load_dir", &a, &b);
    free(a.v);
    free(b.v);
    char *empty = new_folder(p);
    ck_fails_with(unet_forward(empty, NULL, &a), LDM_ENOTFOUND, "no weights");
    tu_rmtree(empty);
    free(empty);
}
END_TEST

Suite *suite_loaders(void)
{
    Suite *s = suite_create("loaders");
    TCase *tc = tcase_create("layouts");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    int n = (int)(sizeof PARTS / sizeof PARTS[0]);
    tcase_add_loop_test(tc, shards_and_bin, 0, n);
    tcase_add_loop_test(tc, fp16_variant, 0, n);
    tcase_add_loop_test(tc, shard_errors, 0, n);
    tcase_add_test(tc, unet_file_and_folder);
    suite_add_tcase(s, tc);
    return s;
}

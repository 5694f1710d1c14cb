/* weights.c — one model part's weights: single, sharded, safetensors or torch files; see weights.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fsutil.h"
#include "json.h"
#include "models/pickle.h"
#include "models/weights.h"

struct w_file {
    char *path;
    struct ldm_st *st;         /* one of st, pt */
    struct ldm_pt *pt;
};

struct w_entry {
    const struct ldm_st_tensor *t;
    size_t file;
};

struct ldm_weights {
    char *dir, *source;
    struct w_file *f;
    size_t nf;
    struct w_entry *e;
    size_t n;
};

/* The files looked for, in order of preference. */
static const struct {
    const char *name;
    int torch, index;
} candidates[] = {
    {"diffusion_pytorch_model.safetensors", 0, 0},
    {"model.safetensors", 0, 0},
    {"diffusion_pytorch_model.safetensors.index.json", 0, 1},
    {"model.safetensors.index.json", 0, 1},
    {"diffusion_pytorch_model.bin", 1, 0},
    {"pytorch_model.bin", 1, 0},
    {"diffusion_pytorch_model.bin.index.json", 1, 1},
    {"pytorch_model.bin.index.json", 1, 1},
    /* diffusers' fp16 variant, when the folder holds nothing else */
    {"diffusion_pytorch_model.fp16.safetensors", 0, 0},
    {"model.fp16.safetensors", 0, 0},
};

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *join(const char *dir, const char *name)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* Open file `name` of the folder as shard number w->nf. */
static int open_file(struct ldm_weights *w, const char *name, int torch)
{
    struct w_file *f = &w->f[w->nf];
    memset(f, 0, sizeof *f);
    if (!(f->path = join(w->dir, name)))
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", w->dir);
    w->nf++;
    if (!exists(f->path))
        return ldm_fail(LDM_ENOTFOUND, "%s: no such file", f->path);
    return torch ? ldm_pt_open(&f->pt, f->path) : ldm_st_open(&f->st, f->path);
}

static size_t file_count(const struct w_file *f)
{
    return f->st ? ldm_st_count(f->st) : ldm_pt_count(f->pt);
}

static const struct ldm_st_tensor *file_at(const struct w_file *f, size_t i)
{
    return f->st ? ldm_st_at(f->st, i) : ldm_pt_at(f->pt, i);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct w_entry *)a)->t->name, ((const struct w_entry *)b)->t->name);
}

/* List every tensor of every file, sorted; a name in two files is an error. */
static int gather(struct ldm_weights *w)
{
    size_t total = 0, k = 0;
    for (size_t i = 0; i < w->nf; i++)
        total += file_count(&w->f[i]);
    if (!(w->e = calloc(total ? total : 1, sizeof *w->e)))
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", w->dir);
    for (size_t i = 0; i < w->nf; i++)
        for (size_t j = 0; j < file_count(&w->f[i]); j++)
            w->e[k++] = (struct w_entry){file_at(&w->f[i], j), i};
    w->n = k;
    if (k)
        qsort(w->e, k, sizeof *w->e, cmp_entry);
    for (size_t i = 1; i < k; i++)
        if (strcmp(w->e[i - 1].t->name, w->e[i].t->name) == 0)
            return ldm_fail(LDM_EFORMAT, "%s: tensor '%s' is in both %s and %s", w->dir,
                            w->e[i].t->name, w->f[w->e[i - 1].file].path, w->f[w->e[i].file].path);
    return 0;
}

static int safe_name(const char *s)
{
    return s && *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static size_t file_index(const struct ldm_weights *w, const char *name)
{
    for (size_t i = 0; i < w->nf; i++)
        if (strcmp(strrchr(w->f[i].path, '/') + 1, name) == 0)
            return i;
    return w->nf;
}

static const struct ldm_st_tensor *file_get(const struct w_file *f, const char *name)
{
    return f->st ? ldm_st_get(f->st, name) : ldm_pt_get(f->pt, name);
}

/* Open each file the weight map names, once; then check each tensor is where it says. */
static int open_shards(struct ldm_weights *w, const json_t *map, int torch)
{
    const char *tensor;
    json_t *v;
    if (!(w->f = calloc(json_object_size(map) + 1, sizeof *w->f)))
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", w->source);
    json_object_foreach((json_t *)map, tensor, v) {
        const char *file = json_string_value(v);
        if (!safe_name(file))
            return ldm_fail(LDM_EFORMAT, "%s: weight_map['%s'] is not a file name in the folder",
                            w->source, tensor);
        int rc = file_index(w, file) < w->nf ? 0 : open_file(w, file, torch);
        if (rc)
            return rc;
    }
    json_object_foreach((json_t *)map, tensor, v) {
        const struct w_file *f = &w->f[file_index(w, json_string_value(v))];
        if (!file_get(f, tensor))
            return ldm_fail(LDM_EFORMAT, "%s: tensor '%s' is not in %s", w->source, tensor, f->path);
    }
    return 0;
}

static int open_index(struct ldm_weights *w, int torch)
{
    json_t *root = NULL;
    int rc = ldm_json_load_object(w->source, &root);
    if (rc)
        return rc;
    const json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map))
        rc = ldm_fail(LDM_EFORMAT, "%s: no \"weight_map\" object", w->source);
    else if (json_object_size(map) == 0)
        rc = ldm_fail(LDM_EFORMAT, "%s: empty \"weight_map\"", w->source);
    else
        rc = open_shards(w, map, torch);
    json_decref(root);
    return rc;
}

/* Find the first candidate that exists and open it. */
static int open_any(struct ldm_weights *w)
{
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (!(w->source = join(w->dir, candidates[i].name)))
            return ldm_fail(LDM_ENOMEM, "%s: out of memory", w->dir);
        if (!exists(w->source)) {
            free(w->source);
            w->source = NULL;
            continue;
        }
        if (candidates[i].index)
            return open_index(w, candidates[i].torch);
        if (!(w->f = calloc(1, sizeof *w->f)))
            return ldm_fail(LDM_ENOMEM, "%s: out of memory", w->dir);
        return open_file(w, candidates[i].name, candidates[i].torch);
    }
    return ldm_fail(LDM_ENOTFOUND, "%s: no weights (diffusion_pytorch_model / model / pytorch_model "
                    ".safetensors or .bin, or their .index.json)", w->dir);
}

int ldm_weights_open(struct ldm_weights **out, const char *dir)
{
    struct ldm_weights *w = calloc(1, sizeof *w);
    *out = NULL;
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return ldm_fail(LDM_ENOMEM, "%s: out of memory", dir);
    }
    int rc = open_any(w);
    if (rc == 0)
        rc = gather(w);
    if (rc) {
        ldm_weights_close(&w);
        return rc;
    }
    *out = w;
    return 0;
}

void ldm_weights_close(struct ldm_weights **w)
{
    if (!w || !*w)
        return;
    struct ldm_weights *p = *w;
    for (size_t i = 0; i < p->nf; i++) {
        ldm_st_close(&p->f[i].st);
        ldm_pt_close(&p->f[i].pt);
        free(p->f[i].path);
    }
    free(p->f);
    free(p->e);
    free(p->source);
    free(p->dir);
    free(p);
    *w = NULL;
}

const char *ldm_weights_source(const struct ldm_weights *w) { return w->source; }
size_t ldm_weights_files(const struct ldm_weights *w) { return w->nf; }
size_t ldm_weights_count(const struct ldm_weights *w) { return w->n; }

const struct ldm_st_tensor *ldm_weights_at(const struct ldm_weights *w, size_t i)
{
    return i < w->n ? w->e[i].t : NULL;
}

static const struct w_entry *lookup(const struct ldm_weights *w, const char *name)
{
    struct ldm_st_tensor t = {.name = name};
    struct w_entry key = {&t, 0};
    return w->n ? bsearch(&key, w->e, w->n, sizeof *w->e, cmp_entry) : NULL;
}

const struct ldm_st_tensor *ldm_weights_get(const struct ldm_weights *w, const char *name)
{
    const struct w_entry *e = lookup(w, name);
    return e ? e->t : NULL;
}

int ldm_weights_find(const struct ldm_weights *w, const char *name,
                     const struct ldm_st_tensor **out)
{
    *out = ldm_weights_get(w, name);
    return *out ? 0 : ldm_fail(LDM_ENOTFOUND, "%s: no tensor '%s'", w->dir, name);
}

int ldm_weights_expect(const struct ldm_weights *w, const char *name, int dtype, int ndim,
                       const int64_t *shape, const struct ldm_st_tensor **out)
{
    const struct w_entry *e = lookup(w, name);
    if (out)
        *out = NULL;
    if (!e)
        return ldm_fail(LDM_ENOTFOUND, "%s: no tensor '%s'", w->dir, name);
    const struct w_file *f = &w->f[e->file];
    const struct ldm_st_tensor *t = NULL;
    int rc = f->st ? ldm_st_expect(f->st, name, dtype, ndim, shape, &t)
                   : ldm_pt_expect(f->pt, name, dtype, ndim, shape, &t);
    if (out)
        *out = rc ? NULL : t;
    return rc;
}

const char *ldm_weights_file(const struct ldm_weights *w, size_t i)
{
    return i < w->nf ? w->f[i].path : NULL;
}

int ldm_weights_hash(const char *dir, char hex[17])
{
    struct ldm_weights *w = NULL;
    int rc = ldm_weights_open(&w, dir);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; !rc && i < w->nf; i++) {
        char fh[17];
        rc = ldm_file_fnv1a64(w->f[i].path, fh);
        for (size_t k = 0; !rc && k < 16; k++)
            h = (h ^ (unsigned char)fh[k]) * 0x100000001b3ull;
    }
    if (!rc && w->nf == 1) /* one file: its own hash, as the single-file identities were */
        rc = ldm_file_fnv1a64(w->f[0].path, hex);
    else if (!rc)
        snprintf(hex, 17, "%016llx", (unsigned long long)h);
    ldm_weights_close(&w);
    return rc;
}

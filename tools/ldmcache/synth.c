/* synth.c — ldmcache synth: fill a cache with random but valid records through the
 * store API, so that tests have a cache without running the encoders.
 *
 * Sample i of N goes to shard "synth-SSS.tar" (S = i mod K) at index i / K,
 * key "%06d" of that index. Its content follows from (seed, i) alone, so a
 * second run with the same arguments writes nothing new (every sample a
 * duplicate). Samples cycle through four kinds: plain; pooled; pooled with
 * flip variants; pooled with conditioning pixels. With --reject R every R-th
 * sample is a tombstone instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ldmcache.h"
#include "nn/tensor.h" /* ldm_f32_to_f16 */

#define TEXT_LEN 77
#define TEXT_DIM 32
#define VOCAB 49408

struct synth {
    const char *dir;
    uint64_t n, shards, seed, batch, side, reject;
    struct ldm_store_opts opts;
    char (*urls)[32];
};

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* n fp16 values uniform in [-2, 2). */
static void fill_f16(uint16_t *p, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++)
        p[i] = ldm_f32_to_f16((float)(splitmix(rng) >> 40) / (float)(1u << 24) * 4.0f - 2.0f);
}

/* ---- arguments ------------------------------------------------------------------------- */

static int number(const char *opt, const char *text, uint64_t lo, uint64_t hi, uint64_t *v)
{
    int rc = lc_parse_size(opt, text, v);
    if (rc == 0 && (*v < lo || *v > hi))
        rc = ldm_fail(LDM_EINVAL, "%s: %llu is outside %llu..%llu", opt, (unsigned long long)*v,
                      (unsigned long long)lo, (unsigned long long)hi);
    return rc;
}

static int parse_option(struct synth *a, const char *opt, const char *val)
{
    uint64_t v;
    struct {
        const char *name;
        uint64_t *dst, lo, hi;
    } nums[] = {{"--shards", &a->shards, 1, 1000},
                {"--seed", &a->seed, 0, UINT64_MAX},
                {"--batch", &a->batch, 1, 4096},
                {"--side", &a->side, 1, 64},
                {"--reject", &a->reject, 0, UINT64_MAX}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (strcmp(opt, nums[i].name) == 0)
            return number(opt, val, nums[i].lo, nums[i].hi, nums[i].dst);
    if (strcmp(opt, "--map-size") == 0 || strcmp(opt, "--max-map-size") == 0) {
        int rc = number(opt, val, 1, SIZE_MAX, &v);
        if (strcmp(opt, "--max-map-size") == 0)
            a->opts.max_map_size = (size_t)v;
        else
            a->opts.map_size = (size_t)v;
        return rc;
    }
    return ldm_fail(LDM_EINVAL, "unknown option %s", opt);
}

static int parse_args(int argc, char **argv, struct synth *a)
{
    int pos = 0;
    *a = (struct synth){.shards = 4, .seed = 1, .batch = 32, .side = 8};
    for (int i = 1; i < argc; i++) {
        int rc = 0;
        if (strcmp(argv[i], "--no-grow") == 0)
            a->opts.no_grow = 1;
        else if (argv[i][0] == '-' && argv[i][1] == '-' && i + 1 < argc)
            rc = parse_option(a, argv[i], argv[i + 1]), i++;
        else if (argv[i][0] == '-')
            return 2;
        else if (pos == 0)
            a->dir = argv[i], pos++;
        else if (pos == 1)
            rc = number("N", argv[i], 0, 100000000, &a->n), pos++;
        else
            return 2;
        if (rc)
            return rc;
    }
    return pos == 2 ? 0 : 2;
}

/* ---- records ----------------------------------------------------------------------------- */

/* Buffers for one record's sections. */
struct parts {
    uint16_t *f16; /* mean, logvar, flip mean, flip logvar, text, pooled: back to back */
    uint32_t ids[TEXT_LEN];
    unsigned char *pixels;
};

static const unsigned kinds[4] = {0, LDM_REC_POOLED, LDM_REC_POOLED | LDM_REC_FLIPPED,
                                  LDM_REC_POOLED | LDM_REC_COND_PIXELS};

static struct ldm_record_hdr sample_header(const struct synth *a, uint64_t i)
{
    uint32_t side = (uint32_t)a->side;
    struct ldm_record_hdr h = {.flags = kinds[i % 4],
                               .latent_c = 4,
                               .latent_h = side,
                               .latent_w = side,
                               .text_len = TEXT_LEN,
                               .text_dim = TEXT_DIM,
                               .n_ids = TEXT_LEN,
                               .bucket = (uint32_t)(i % 3),
                               .orig_h = 512 + (uint32_t)(i % 7),
                               .orig_w = 384,
                               .crop_top = (uint32_t)(i % 5),
                               .crop_left = (uint32_t)(i % 3),
                               .target_h = 8 * side,
                               .target_w = 8 * side,
                               .flip = (int)(i % 2)};
    if (h.flags & LDM_REC_POOLED)
        h.pooled_dim = TEXT_DIM;
    if (h.flags & LDM_REC_COND_PIXELS) {
        h.cond_c = 3;
        h.cond_h = h.cond_w = 8 * side;
    }
    return h;
}

/* Encode a record of header h with random content from rng. */
static int make_record(const struct ldm_record_hdr *h, uint64_t rng, void **out, size_t *len)
{
    size_t lat = (size_t)h->latent_c * h->latent_h * h->latent_w;
    size_t text = (size_t)h->text_len * h->text_dim,
           npix = (size_t)h->cond_c * h->cond_h * h->cond_w;
    struct parts p = {malloc((4 * lat + text + h->pooled_dim + 1) * 2), {0}, malloc(npix + 1)};
    if (!p.f16 || !p.pixels) {
        free(p.f16);
        free(p.pixels);
        return ldm_fail(LDM_ENOMEM, "synthetic record");
    }
    fill_f16(p.f16, 4 * lat + text + h->pooled_dim, &rng);
    for (size_t i = 0; i < h->n_ids; i++)
        p.ids[i] = (uint32_t)(splitmix(&rng) % VOCAB);
    for (size_t i = 0; i < npix; i++)
        p.pixels[i] = (unsigned char)splitmix(&rng);
    uint16_t *f = p.f16;
    struct ldm_record_sections s = {
        f, f + lat, f + 2 * lat, f + 3 * lat, f + 4 * lat, f + 4 * lat + text, p.ids, p.pixels};
    if (!(h->flags & LDM_REC_FLIPPED))
        s.flip_mean = s.flip_logvar = NULL;
    if (!(h->flags & LDM_REC_POOLED))
        s.pooled = NULL;
    if (!(h->flags & LDM_REC_COND_PIXELS))
        s.cond = NULL;
    if (!lat)
        s.mean = s.logvar = NULL;
    int rc = ldm_record_new(h, &s, out, len);
    free(p.f16);
    free(p.pixels);
    return rc;
}

/* meta "identity" and "empty_caption", as encoderd writes them. */
static int write_meta(struct ldm_store *s, const struct synth *a)
{
    char id[256];
    int n = snprintf(id, sizeof id,
                     "{\"synthetic\":true,\"seed\":%llu,\"vae\":\"synthetic\",\"text_encoder\":"
                     "\"synthetic\",\"scaling_factor\":0.18215,\"resolution\":%llu}",
                     (unsigned long long)a->seed, (unsigned long long)(8 * a->side));
    int rc = ldm_store_meta_put(s, LDM_META_IDENTITY, id, (size_t)n);
    struct ldm_record_hdr h = {.flags = LDM_REC_POOLED,
                               .text_len = TEXT_LEN,
                               .text_dim = TEXT_DIM,
                               .pooled_dim = TEXT_DIM,
                               .n_ids = TEXT_LEN};
    void *rec = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = make_record(&h, a->seed ^ 0xe3e3e3e3u, &rec, &len);
    if (rc == 0)
        rc = ldm_store_meta_put(s, LDM_META_EMPTY_CAPTION, rec, len);
    free(rec);
    return rc;
}

/* ---- batches ---------------------------------------------------------------------------- */

struct counts {
    size_t stored, duplicates, tombstones;
};

static int put_range(struct ldm_store *s, const struct synth *a, uint64_t from, uint64_t to,
                     struct ldm_store_item *it, char (*keys)[24], struct counts *c)
{
    size_t n = 0, stored = 0, dup = 0;
    int rc = 0;
    for (uint64_t i = from; i < to && rc == 0; i++, n++) {
        uint64_t index = i / a->shards;
        snprintf(keys[n], sizeof keys[n], "%06llu", (unsigned long long)index);
        it[n] = (struct ldm_store_item){a->urls[i % a->shards], keys[n], index, NULL, 0};
        if (a->reject && i % a->reject == a->reject - 1) {
            c->tombstones++;
            continue;
        }
        struct ldm_record_hdr h = sample_header(a, i);
        uint64_t rng = a->seed * 0x100000001b3ull + i;
        rc = make_record(&h, rng, (void **)&it[n].record, &it[n].record_len);
    }
    if (rc == 0)
        rc = ldm_store_put_batch(s, it, n, &stored, &dup);
    for (size_t k = 0; k < n; k++)
        free((void *)it[k].record);
    c->stored += stored;
    c->duplicates += dup;
    return rc;
}

static int synth_all(struct ldm_store *s, const struct synth *a, struct counts *c)
{
    struct ldm_store_item *it = calloc(a->batch, sizeof *it);
    char(*keys)[24] = calloc(a->batch, sizeof *keys);
    int rc = it && keys ? write_meta(s, a)
                        : ldm_fail(LDM_ENOMEM, "batch of %llu", (unsigned long long)a->batch);
    for (uint64_t from = 0; from < a->n && rc == 0; from += a->batch) {
        uint64_t to = from + a->batch < a->n ? from + a->batch : a->n;
        rc = put_range(s, a, from, to, it, keys, c);
    }
    free(it);
    free(keys);
    return rc;
}

int lc_cmd_synth(int argc, char **argv)
{
    struct synth a;
    int rc = parse_args(argc, argv, &a);
    if (rc == 2)
        return 2;
    if (rc)
        return lc_report("synth", rc);
    a.urls = calloc(a.shards, sizeof *a.urls);
    if (!a.urls)
        return lc_report("synth", ldm_fail(LDM_ENOMEM, "shard names"));
    for (uint64_t k = 0; k < a.shards; k++)
        snprintf(a.urls[k], sizeof a.urls[k], "synth-%03llu.tar", (unsigned long long)k);
    struct ldm_store *s;
    struct counts c = {0};
    rc = ldm_store_open(a.dir, &a.opts, &s);
    if (rc == 0)
        rc = synth_all(s, &a, &c);
    ldm_store_close(&s);
    free(a.urls);
    printf("synth: %zu stored, %zu duplicates, %zu tombstones\n", c.stored, c.duplicates,
           c.tombstones);
    return rc ? lc_report("synth", rc) : 0;
}

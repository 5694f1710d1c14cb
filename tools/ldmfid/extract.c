/* extract.c — images to pool3 features (and unbiased logits) with pytorch-fid's network.
 *
 * Each image is decoded as PIL's convert("RGB") (common/image.h), turned into
 * ToTensor's float32 value/255 in CHW order, and batched with the images
 * that follow it while they have the same size (pytorch-fid's DataLoader
 * stacks a batch, so its images share one size too). ldm_inception_forward
 * resizes each batch to 299×299 and gives pool3; with fc kept, the unbiased
 * logits pool3·fc.weightᵀ (torch-fidelity's "logits_unbiased") follow in
 * float32 from one matrix product. The network runs on the device --device
 * names (the CPU by default); images and results cross to it per batch.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "image.h"
#include "ldmfid.h"
#include "log.h"
#include "models/inception.h"

#define BATCH_FLOATS ((size_t)64 << 20) /* input floats per batch at most (256 MB) */
#define PROGRESS_EVERY 2000             /* images between progress lines */

struct lf_model {
    struct ldm_ctx *ctx;
    struct ldm_inception *net;
    int want_logits; /* also the unbiased logits (IS) */
};

int lf_model_open(struct lf_model **out, const char *path, const char *device, int threads,
                  int want_fc)
{
    *out = NULL;
    struct lf_model *m = calloc(1, sizeof *m);
    if (!m)
        return ldm_fail(LDM_ENOMEM, "out of memory");
    m->want_logits = want_fc;
    int rc = ldm_ctx_open(&m->ctx, device, threads);
    if (rc == 0)
        rc = ldm_inception_open_file(&m->net, m->ctx, path);
    if (rc) {
        lf_model_close(&m);
        return rc;
    }
    *out = m;
    return 0;
}

void lf_model_close(struct lf_model **m)
{
    if (!m || !*m)
        return;
    ldm_inception_close(&(*m)->net);
    ldm_ctx_close(&(*m)->ctx);
    free(*m);
    *m = NULL;
}

/* Images of one size waiting for the network. */
struct batch {
    float *x;       /* (cap, 3, h, w) in [0,1] */
    size_t x_floats;
    int n, cap, h, w;
    float *pool;    /* (batch, 2048) */
    float *logits;  /* (batch, 1008) when fc is kept */
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Run the waiting images through the network and hand them to sink. */
static int flush(struct lf_model *m, struct batch *b, lf_sink_fn sink, void *user,
                 struct lf_counts *c)
{
    if (b->n == 0)
        return 0;
    int rc = ldm_inception_forward(m->net, b->x, b->n, b->h, b->w, b->pool, NULL);
    if (rc == 0 && m->want_logits) /* (n, 1008) = pool3 (n, 2048) · fcᵀ */
        rc = ldm_inception_logits_unbiased(m->net, b->pool, b->n, b->logits);
    if (rc == 0)
        rc = sink(user, b->pool, m->want_logits ? b->logits : NULL, b->n);
    int64_t before = c->images;
    c->images += b->n;
    b->n = 0;
    if (rc == 0 && before / PROGRESS_EVERY != c->images / PROGRESS_EVERY)
        LOG_INFO("progress", "images=%lld bad=%lld", (long long)c->images, (long long)c->bad);
    return rc;
}

/* Start a batch of h×w images: room for as many as fit (at most o->batch). */
static int begin(struct batch *b, int h, int w, int batch)
{
    size_t one = (size_t)3 * (size_t)h * (size_t)w, fit = BATCH_FLOATS / one;
    b->cap = fit < 1 ? 1 : fit < (size_t)batch ? (int)fit : batch;
    b->h = h;
    b->w = w;
    if (one * (size_t)b->cap > b->x_floats) {
        free(b->x);
        b->x_floats = 0;
        if (!(b->x = malloc(one * (size_t)b->cap * sizeof(float))))
            return ldm_fail(LDM_ENOMEM, "no memory for %d images of %dx%d", b->cap, w, h);
        b->x_floats = one * (size_t)b->cap;
    }
    return 0;
}

/* Append im (RGB, HWC) to the batch as CHW value/255. */
static void put(struct batch *b, const struct ldm_image *im)
{
    size_t hw = (size_t)im->h * (size_t)im->w;
    float *x = b->x + (size_t)b->n * 3 * hw;
    for (size_t i = 0; i < hw; i++)
        for (int ch = 0; ch < 3; ch++)
            x[(size_t)ch * hw + i] = (float)im->px[i * 3 + (size_t)ch] / 255.0f;
    b->n++;
}

/* Log a bad item: its label and the reason (the detail less the label). */
static void report_bad(const struct lf_item *it, struct lf_counts *c)
{
    const char *why = ldm_errmsg();
    size_t n = strlen(it->label);
    if (strncmp(why, it->label, n) == 0 && strncmp(why + n, ": ", 2) == 0)
        why += n + 2;
    if (it->damaged) {
        LOG_WARN("damaged shard, the rest of it skipped", "at=%s reason=%s", it->label, why);
        c->damaged++;
    } else {
        LOG_WARN("bad image skipped", "file=%s reason=%s", it->label, why);
        c->bad++;
    }
}

/* Decode one item into the batch (flushing first when its size differs). */
static int take(struct lf_model *m, const struct lf_opts *o, struct batch *b,
                const struct lf_item *it, lf_sink_fn sink, void *user, struct lf_counts *c)
{
    struct ldm_image im = {0};
    int rc = it->rc ? it->rc : ldm_image_decode(it->data, it->len, it->label, NULL, &im, NULL);
    if (rc == 0 && (im.w > LF_MAX_SIDE || im.h > LF_MAX_SIDE))
        rc = ldm_fail(LDM_ERANGE, "%s: %dx%d, over the network's %d-pixel side", it->label,
                      im.w, im.h, LF_MAX_SIDE);
    if (rc == LDM_ENOMEM) {
        ldm_image_free(&im);
        return rc;
    }
    if (rc) {
        report_bad(it, c);
        ldm_image_free(&im);
        return 0;
    }
    if (b->n && (im.h != b->h || im.w != b->w || b->n == b->cap))
        rc = flush(m, b, sink, user, c);
    if (rc == 0 && b->n == 0)
        rc = begin(b, im.h, im.w, o->batch);
    if (rc == 0)
        put(b, &im);
    ldm_image_free(&im);
    return rc;
}

int lf_extract(struct lf_model *m, const struct lf_opts *o, const char *const *paths, int npaths,
               lf_sink_fn sink, void *user, struct lf_counts *c)
{
    struct lf_input *in = NULL;
    struct batch b = {0};
    struct lf_item it;
    double t0 = now_s();
    memset(c, 0, sizeof *c);
    int rc = lf_input_open(&in, paths, npaths), r = 0;
    b.pool = malloc((size_t)o->batch * LDM_INCEPTION_DIM * sizeof(float));
    b.logits = malloc((size_t)o->batch * LDM_INCEPTION_CLASSES * sizeof(float));
    if (rc == 0 && (!b.pool || !b.logits))
        rc = ldm_fail(LDM_ENOMEM, "out of memory");
    while (rc == 0 && (r = lf_input_next(in, &it)) == 1)
        rc = take(m, o, &b, &it, sink, user, c);
    if (rc == 0 && r < 0)
        rc = r;
    if (rc == 0)
        rc = flush(m, &b, sink, user, c);
    c->seconds = now_s() - t0;
    if (rc == 0 && c->images == 0)
        rc = ldm_fail(LDM_ENOTFOUND, "no usable image in %s%s (%lld bad)", paths[0],
                      npaths > 1 ? " and the other paths" : "", (long long)c->bad);
    if (rc == 0)
        LOG_INFO("features extracted",
                 "images=%lld bad=%lld damaged_shards=%lld seconds=%.3f img_per_s=%.3f "
                 "device=%s threads=%d",
                 (long long)c->images, (long long)c->bad, (long long)c->damaged, c->seconds,
                 (double)c->images / (c->seconds > 0 ? c->seconds : 1e-9), o->device,
                 m->ctx->threads);
    lf_input_close(&in);
    free(b.x);
    free(b.pool);
    free(b.logits);
    return rc;
}

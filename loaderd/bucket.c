/* bucket.c — kohya-style aspect-ratio buckets: make, select, plan the cover-resize and crop. */
#include "bucket.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static int cmp_bucket(const void *pa, const void *pb)
{
    const struct ldm_bucket *a = pa, *b = pb;
    if (a->w != b->w)
        return a->w < b->w ? -1 : 1;
    return a->h < b->h ? -1 : a->h > b->h;
}

/* Python's int(math.sqrt(area) // step): the floor division of a float done
 * as Python does it (through fmod), so the result is exact. */
static int64_t square_side(uint64_t area, int step)
{
    double s = sqrt((double)area);
    double m = fmod(s, step);
    return (int64_t)((s - m) / step + 0.5) * step;
}

static int check_params(uint64_t max_area, int min_reso, int max_reso, int step)
{
    if (step < 1)
        return ldm_fail(LDM_EINVAL, "bucket_step %d: must be at least 1", step);
    if (min_reso < 1 || max_reso < min_reso)
        return ldm_fail(LDM_EINVAL, "bucket_min_reso %d, bucket_max_reso %d: need 1 <= min <= max",
                        min_reso, max_reso);
    if (square_side(max_area, step) < step || square_side(max_area, step) > INT32_MAX)
        return ldm_fail(LDM_EINVAL, "bucket_max_area %llu: no square bucket of whole steps of %d",
                        (unsigned long long)max_area, step);
    return 0;
}

int ldm_buckets_make(uint64_t max_area, int min_reso, int max_reso, int step,
                     struct ldm_buckets *out)
{
    memset(out, 0, sizeof *out);
    int rc = check_params(max_area, min_reso, max_reso, step);
    if (rc)
        return rc;
    size_t cap = 1 + 2 * ((size_t)(max_reso - min_reso) / (size_t)step + 1);
    struct ldm_bucket *b = malloc(cap * sizeof *b);
    if (!b)
        return ldm_fail(LDM_ENOMEM, "%zu buckets", cap);
    int n = 0, side = (int)square_side(max_area, step);
    b[n++] = (struct ldm_bucket){side, side};
    for (int64_t w = min_reso; w <= max_reso; w += step) {
        uint64_t fit = max_area / (uint64_t)w / (uint64_t)step * (uint64_t)step;
        int h = fit < (uint64_t)max_reso ? (int)fit : max_reso;
        if (h >= min_reso) {
            b[n++] = (struct ldm_bucket){(int)w, h};
            b[n++] = (struct ldm_bucket){h, (int)w};
        }
    }
    qsort(b, (size_t)n, sizeof *b, cmp_bucket);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || cmp_bucket(&b[k - 1], &b[i]) != 0)
            b[k++] = b[i];
    out->b = b;
    out->n = k;
    return 0;
}

void ldm_buckets_free(struct ldm_buckets *bs)
{
    free(bs->b);
    memset(bs, 0, sizeof *bs);
}

/* The id of an exact-size bucket, else of the nearest aspect ratio (first on ties). */
static int nearest(const struct ldm_buckets *bs, int w, int h)
{
    for (int i = 0; i < bs->n; i++)
        if (bs->b[i].w == w && bs->b[i].h == h)
            return i;
    double ar = (double)w / h, best = 0;
    int id = 0;
    for (int i = 0; i < bs->n; i++) {
        double err = fabs((double)bs->b[i].w / bs->b[i].h - ar);
        if (i == 0 || err < best) {
            best = err;
            id = i;
        }
    }
    return id;
}

int ldm_buckets_select(const struct ldm_buckets *bs, int w, int h, int *id, int *resized_w,
                       int *resized_h)
{
    if (!bs || bs->n < 1 || w < 1 || h < 1)
        return ldm_fail(LDM_EINVAL, "bucket select: image %dx%d, %d buckets", w, h,
                        bs ? bs->n : 0);
    int i = nearest(bs, w, h);
    const struct ldm_bucket *b = &bs->b[i];
    double ar = (double)w / h, scale;
    if (ar > (double)b->w / b->h)
        scale = (double)b->h / h; /* wider than the bucket: match the height */
    else
        scale = (double)b->w / w;
    int rw = (int)(w * scale + 0.5), rh = (int)(h * scale + 0.5);
    *id = i;
    *resized_w = rw < b->w ? b->w : rw; /* never short of the bucket by rounding */
    *resized_h = rh < b->h ? b->h : rh;
    return 0;
}

/* trim_and_resize_if_required's crop: floor-centred, or drawn along trimmed sides (x first). */
static int crop_corner(const struct ldm_transform_params *p, ldm_draw_fn draw, void *ctx,
                       struct ldm_geometry *g)
{
    int tx = g->resized_w - g->target_w, ty = g->resized_h - g->target_h;
    if (p->crop == LDM_CROP_CENTER) {
        g->crop_left = tx / 2;
        g->crop_top = ty / 2;
        return 0;
    }
    if ((tx > 0 || ty > 0) && !draw)
        return ldm_fail(LDM_EINVAL, "bucket: random crop without a random source");
    if (tx > 0)
        g->crop_left = draw(ctx, tx + 1);
    if (ty > 0)
        g->crop_top = draw(ctx, ty + 1);
    if (g->crop_left < 0 || g->crop_left > tx || g->crop_top < 0 || g->crop_top > ty)
        return ldm_fail(LDM_EINVAL,
                        "bucket: random draw out of range (left %d of %d, top %d of %d)",
                        g->crop_left, tx, g->crop_top, ty);
    return 0;
}

int ldm_bucket_plan(const struct ldm_buckets *bs, int w, int h,
                    const struct ldm_transform_params *p, ldm_draw_fn draw, void *ctx,
                    struct ldm_geometry *g)
{
    memset(g, 0, sizeof *g);
    g->bucket = -1;
    if ((p->crop != LDM_CROP_CENTER && p->crop != LDM_CROP_RANDOM) ||
        (p->flip_order != LDM_FLIP_AFTER_CROP && p->flip_order != LDM_FLIP_BEFORE_CROP))
        return ldm_fail(LDM_EINVAL, "bucket: crop %d, flip order %d", p->crop, p->flip_order);
    int id, rc = ldm_buckets_select(bs, w, h, &id, &g->resized_w, &g->resized_h);
    if (rc)
        return rc;
    g->orig_w = w;
    g->orig_h = h;
    g->target_w = bs->b[id].w;
    g->target_h = bs->b[id].h;
    g->flip = p->flip != 0;
    g->flip_order = p->flip_order;
    g->bucket = id;
    return crop_corner(p, draw, ctx, g);
}

/* transform.c — resize shortest side, center/random crop, flip, as diffusers' scripts do. */
#include "transform.h"

#include <stdint.h>
#include <string.h>

#include "err.h"
#include "resample.h"

/* torchvision's Resize(int): the short side becomes res, the long side
 * int(res * long / short) (Python's true division, then truncation). */
static void resized_size(int w, int h, int res, int *rw, int *rh)
{
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    int new_long = (int)((double)((int64_t)res * longer) / shorter);
    *rw = w <= h ? res : new_long;
    *rh = w <= h ? new_long : res;
}

/* Python's int(round(d / 2.0)) for d >= 0: halves go to the even neighbour. */
static int half_round_even(int d)
{
    int q = d / 2;
    return (d % 2) && (q % 2) ? q + 1 : q;
}

/* A draw in [0, n), checked. */
static int draw_in(ldm_draw_fn draw, void *ctx, int n, int *v)
{
    *v = draw(ctx, n);
    if (*v < 0 || *v >= n)
        return ldm_fail(LDM_EINVAL, "transform: random draw %d not in [0, %d)", *v, n);
    return 0;
}

/* RandomCrop.get_params: nothing drawn when the sizes match, else top then left. */
static int random_corner(struct ldm_geometry *g, ldm_draw_fn draw, void *ctx)
{
    if (g->resized_w == g->target_w && g->resized_h == g->target_h)
        return 0;
    if (!draw)
        return ldm_fail(LDM_EINVAL, "transform: random crop without a random source");
    int rc = draw_in(draw, ctx, g->resized_h - g->target_h + 1, &g->crop_top);
    if (rc == 0)
        rc = draw_in(draw, ctx, g->resized_w - g->target_w + 1, &g->crop_left);
    return rc;
}

int ldm_transform_plan(int w, int h, const struct ldm_transform_params *p, ldm_draw_fn draw,
                       void *ctx, struct ldm_geometry *g)
{
    memset(g, 0, sizeof *g);
    g->bucket = -1;
    if (w < 1 || h < 1 || p->resolution < 1)
        return ldm_fail(LDM_EINVAL, "transform: image %dx%d, resolution %d", w, h, p->resolution);
    if ((p->crop != LDM_CROP_CENTER && p->crop != LDM_CROP_RANDOM) ||
        (p->flip_order != LDM_FLIP_AFTER_CROP && p->flip_order != LDM_FLIP_BEFORE_CROP))
        return ldm_fail(LDM_EINVAL, "transform: crop %d, flip order %d", p->crop, p->flip_order);
    g->orig_w = w;
    g->orig_h = h;
    resized_size(w, h, p->resolution, &g->resized_w, &g->resized_h);
    g->target_w = g->target_h = p->resolution;
    g->flip = p->flip != 0;
    g->flip_order = p->flip_order;
    if (p->crop == LDM_CROP_RANDOM)
        return random_corner(g, draw, ctx);
    g->crop_top = half_round_even(g->resized_h - g->target_h);
    g->crop_left = half_round_even(g->resized_w - g->target_w);
    return 0;
}

/* The crop as a window of the unflipped resized image. */
static int window_of(const struct ldm_geometry *g, struct ldm_window *win)
{
    if (g->resized_w < 1 || g->resized_h < 1 || g->target_w < 1 || g->target_h < 1 ||
        g->crop_top < 0 || g->crop_left < 0 || g->crop_top > g->resized_h - g->target_h ||
        g->crop_left > g->resized_w - g->target_w)
        return ldm_fail(LDM_EINVAL, "transform: crop %dx%d at (top %d, left %d) of %dx%d",
                        g->target_w, g->target_h, g->crop_top, g->crop_left, g->resized_w,
                        g->resized_h);
    win->y = g->crop_top;
    win->x = g->crop_left;
    if (g->flip && g->flip_order == LDM_FLIP_BEFORE_CROP)
        win->x = g->resized_w - g->crop_left - g->target_w; /* the same pixels, unflipped */
    win->w = g->target_w;
    win->h = g->target_h;
    win->flip = g->flip;
    return 0;
}

int ldm_transform_apply(const struct ldm_image *src, const struct ldm_geometry *g, int filter,
                        struct ldm_image *out)
{
    struct ldm_window win;
    memset(out, 0, sizeof *out);
    int rc = window_of(g, &win);
    if (rc)
        return rc;
    return ldm_resize_window(src, g->resized_w, g->resized_h, filter, &win, out);
}

int ldm_transform_decode(const void *buf, size_t len, const char *label,
                         const struct ldm_decode_opts *opts,
                         const struct ldm_transform_params *p, const struct ldm_geometry *g,
                         struct ldm_image *out, struct ldm_image_info *info)
{
    struct ldm_decode_opts o = {0};
    if (opts)
        o = *opts;
    o.need_w = p->dct_scaling ? g->resized_w : 0;
    o.need_h = p->dct_scaling ? g->resized_h : 0;
    struct ldm_image full;
    memset(out, 0, sizeof *out);
    int rc = ldm_image_decode(buf, len, label, &o, &full, info);
    if (rc)
        return rc;
    rc = ldm_transform_apply(&full, g, p->filter, out);
    ldm_image_free(&full);
    return rc;
}

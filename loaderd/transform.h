/* transform.h — the training image transform of diffusers' text-to-image scripts.
 *
 * What diffusers' train_text_to_image.py does with PIL and torchvision 0.14
 *   Resize(resolution, BILINEAR) -> CenterCrop or RandomCrop(resolution)
 *   -> RandomHorizontalFlip
 * and train_text_to_image_sdxl.py does (flip before crop), with the same
 * integers:
 *  - Resize(int) makes the short side `resolution`; the long side is
 *    int(resolution * long / short) in double arithmetic (torchvision's
 *    _compute_resized_output_size). A size that does not change is not
 *    resampled.
 *  - CenterCrop's corner: top = round((h - th) / 2.0), left likewise, with
 *    Python's round (half to even: a difference of 5 gives 2, of 3 gives 2).
 *  - RandomCrop's corner: top uniform in [0, h - th], then left uniform in
 *    [0, w - tw] (that order, as RandomCrop.get_params draws them); no draw at
 *    all when the image already has the crop's size.
 *  - Flip after the crop (train_text_to_image.py) or before it
 *    (train_text_to_image_sdxl.py); the two differ when w - tw is odd.
 *  - SDXL micro-conditioning: original size = the image's (h, w) before the
 *    resize; crop top-left = (top, left) of the crop in the resized image, in
 *    the flipped image when flipping comes first — exactly what the SDXL
 *    script records.
 * Resize, crop and flip are computed in one go (resample.h's windowed resize),
 * bit-identical to doing them one after the other with PIL.
 *
 * A conditioning image (ControlNet, image pairs) gets the same geometry: it
 * is resized to the same resized size (whatever its own size), then cropped
 * and flipped identically.
 */
#ifndef LDM_TRANSFORM_H
#define LDM_TRANSFORM_H

#include "image.h"

enum ldm_crop {
    LDM_CROP_CENTER = 0,
    LDM_CROP_RANDOM = 1,
};

enum ldm_flip_order {
    LDM_FLIP_AFTER_CROP = 0,  /* train_text_to_image.py: resize, crop, flip */
    LDM_FLIP_BEFORE_CROP = 1, /* train_text_to_image_sdxl.py: resize, flip, crop */
};

/* A uniform integer in [0, n) for n >= 1, from the caller's seeded generator
 * (so a sample's choices replay exactly). */
typedef int (*ldm_draw_fn)(void *ctx, int n);

struct ldm_transform_params {
    int resolution;  /* square output side (buckets ignore it) */
    int filter;      /* LDM_RESAMPLE_*, default bilinear (0) */
    int crop;        /* LDM_CROP_* */
    int flip;        /* mirror left-right: the caller's coin, already tossed */
    int flip_order;  /* LDM_FLIP_* */
    int dct_scaling; /* ldm_transform_decode: let JPEGs at least twice the resized
                        size decode at 1/2..1/8 (faster; no longer bit-exact with PIL) */
};

/* The geometry of one sample, as the Sample message carries it. */
struct ldm_geometry {
    int orig_w, orig_h;       /* the image before the resize */
    int resized_w, resized_h; /* after the resize */
    int crop_top, crop_left;  /* crop corner in the resized (flipped, if first) image */
    int target_w, target_h;   /* the output size */
    int flip;                 /* mirrored left-right */
    int flip_order;           /* LDM_FLIP_* */
    int bucket;               /* bucket id (bucket.h), -1 for a square crop */
};

/* Plan the transform of a w x h image: resized size, crop corner (drawing from
 * `draw` for a random crop; draw may be NULL for a center crop), flip, into *g.
 * Returns 0 or LDM_EINVAL (bad size, resolution < 1, bad crop or order, a
 * random crop without draw, or a draw out of range). */
int ldm_transform_plan(int w, int h, const struct ldm_transform_params *p, ldm_draw_fn draw,
                       void *ctx, struct ldm_geometry *g);

/* Apply g to src (c = 1 or 3, any size: it is resized to g's resized size) with
 * `filter` into *out (target_w x target_h, allocated here; the caller frees it
 * with ldm_image_free). Returns 0, LDM_EINVAL (bad geometry or image) or
 * LDM_ENOMEM. */
int ldm_transform_apply(const struct ldm_image *src, const struct ldm_geometry *g, int filter,
                        struct ldm_image *out);

/* Decode `len` bytes at `buf` (image.h; DCT-scaled toward g's resized size
 * when p->dct_scaling) and apply g with p->filter into *out; info (may be
 * NULL) gets the decoder's information. `label` names the bytes in errors.
 * Returns 0 or a code of ldm_image_decode / ldm_transform_apply. */
int ldm_transform_decode(const void *buf, size_t len, const char *label,
                         const struct ldm_decode_opts *opts,
                         const struct ldm_transform_params *p, const struct ldm_geometry *g,
                         struct ldm_image *out, struct ldm_image_info *info);

#endif

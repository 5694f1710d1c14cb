/* bucket.h — aspect-ratio buckets as kohya-ss sd-scripts makes and chooses them.
 *
 * Rules followed (sd-scripts library/model_util.py make_bucket_resolutions and
 * library/train_util.py BucketManager.select_bucket / trim_and_resize_if_required):
 *  - Buckets from max_area (resolution^2), min_reso, max_reso and step: the
 *    square (s, s) with s = floor(sqrt(max_area) / step) * step; then for
 *    width = min_reso, min_reso + step, ... <= max_reso:
 *    height = min(max_reso, floor(floor(max_area / width) / step) * step), and
 *    when height >= min_reso both (width, height) and (height, width). Duplicates
 *    removed, sorted by (width, height); a bucket's id is its index in that order,
 *    so the same parameters always give the same ids.
 *  - An image of exactly a bucket's size goes to that bucket; otherwise to the
 *    bucket whose w/h is nearest to the image's w/h, by plain absolute
 *    difference of the ratios (not logarithms), the first in sorted order on a tie.
 *  - It is resized to cover the bucket: scale = bucket_h / h when the image is
 *    wider than the bucket (w/h > bw/bh), else bucket_w / w; resized size
 *    (int(w * scale + 0.5), int(h * scale + 0.5)).
 *  - Then cropped to the bucket: centre = (resized - bucket) // 2 (floor, not
 *    torchvision's half-to-even); random = uniform in [0, resized - bucket],
 *    drawn for the width first, then the height, and only along a side that
 *    has something to trim.
 * Two deliberate differences from sd-scripts: the resize uses PIL's filters
 * (resample.h) instead of OpenCV's INTER_AREA, so buckets and square crops
 * resample alike; and the recorded crop corner is the crop's actual (top,
 * left) in the resized image, as diffusers' SDXL script records it, where
 * sd-scripts records a corner relative to the bucket.
 */
#ifndef LDM_BUCKET_H
#define LDM_BUCKET_H

#include <stdint.h>

#include "transform.h"

struct ldm_bucket {
    int w, h;
};

/* A bucket list. A zeroed struct is an empty, valid-to-free value. */
struct ldm_buckets {
    int n;
    struct ldm_bucket *b; /* n buckets, sorted by (w, h); malloc'd */
};

/* Make the buckets for max_area, min_reso, max_reso and step into *out (the
 * caller frees it with ldm_buckets_free). Returns 0, LDM_EINVAL (step, min or
 * max < 1, min > max, or an area too small for one step x step bucket; the
 * detail names the parameter) or LDM_ENOMEM. */
int ldm_buckets_make(uint64_t max_area, int min_reso, int max_reso, int step,
                     struct ldm_buckets *out);

void ldm_buckets_free(struct ldm_buckets *bs);

/* Choose the bucket of a w x h image (*id) and the size it is resized to
 * before cropping (*resized_w x *resized_h, covering the bucket). Returns 0
 * or LDM_EINVAL (an empty list, a side < 1). */
int ldm_buckets_select(const struct ldm_buckets *bs, int w, int h, int *id, int *resized_w,
                       int *resized_h);

/* Plan a w x h image's transform into its bucket: resize to cover, center or
 * random crop (p->crop; random draws from `draw`), flip as p says; into *g
 * (g->bucket = the id, target = the bucket's size). p->resolution is not used.
 * Returns 0 or LDM_EINVAL (as ldm_buckets_select, a random crop without a
 * draw function, a draw out of range, bad crop or flip order). */
int ldm_bucket_plan(const struct ldm_buckets *bs, int w, int h,
                    const struct ldm_transform_params *p, ldm_draw_fn draw, void *ctx,
                    struct ldm_geometry *g);

#endif

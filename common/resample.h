/* resample.h — resize 8-bit images exactly as Pillow 9.4's Image.resize does.
 *
 * Rules followed (Pillow's libImaging/Resample.c, Image.resize with box and
 * reducing_gap left at their defaults):
 *  - Filters and supports: box 0.5, bilinear (triangle) 1, hamming 1,
 *    bicubic (Keys, a = -0.5) 2, lanczos (3-lobe windowed sinc) 3.
 *  - Antialiasing by support scaling: for a pass of scale s = in/out, the
 *    filter is stretched by max(s, 1): support * max(s, 1), argument * 1/max(s, 1).
 *  - Output pixel i of a pass has centre (i + 0.5) * s; its taps are the inputs
 *    from (int)(centre - support + 0.5) (at least 0) to (int)(centre + support
 *    + 0.5) (at most in), weighted filter((j - centre + 0.5) / max(s, 1)), the
 *    weights normalised to sum 1 in double, then turned into 22-bit fixed point
 *    (rounded half away from zero).
 *  - Each channel sums 2^21 + sum(pixel * weight) in 32-bit integers, and the
 *    result is that >> 22 clipped to 0..255: the intermediate image between the
 *    passes is 8-bit.
 *  - Two separable passes, horizontal first (over only the rows the vertical
 *    pass reads), then vertical; a pass whose size does not change is skipped;
 *    when neither changes the result is a copy.
 * Results are bit-identical to Pillow 9.4 for 1-channel ("L") and 3-channel
 * ("RGB") images. (Pillow premultiplies alpha for "RGBA"/"LA"; 2- and 4-channel
 * images are refused here.)
 *
 * The windowed form computes only a crop of the resized image, optionally
 * mirrored left-right, with the same per-pixel arithmetic, so it equals
 * resize, then crop, then flip, at a fraction of the cost.
 *
 * On x86-64 most of the work runs in AVX2 kernels (resample_avx2.c, chosen at
 * run time when the CPU has AVX2 and LDM_NO_AVX2 is not 1) or SSE2 kernels
 * (resample_sse2.c), all keeping Pillow's integer arithmetic exactly;
 * elsewhere portable C does it all.
 */
#ifndef LDM_RESAMPLE_H
#define LDM_RESAMPLE_H

#include "image.h"

enum ldm_resample {
    LDM_RESAMPLE_BILINEAR = 0, /* PIL Image.BILINEAR, torchvision's default */
    LDM_RESAMPLE_BICUBIC,      /* PIL Image.BICUBIC */
    LDM_RESAMPLE_LANCZOS,      /* PIL Image.LANCZOS */
    LDM_RESAMPLE_BOX,          /* PIL Image.BOX */
    LDM_RESAMPLE_HAMMING,      /* PIL Image.HAMMING */
    LDM_RESAMPLE_COUNT
};

/* "bilinear", "bicubic", "lanczos", "box" or "hamming" (any case) -> *filter.
 * Returns 0 or LDM_EINVAL naming the word and the choices. */
int ldm_resample_parse(const char *name, int *filter);

/* The lower-case name of a filter, or "?" for an unknown value. */
const char *ldm_resample_name(int filter);

/* The part of a resized image to produce: columns x..x+w-1 and rows y..y+h-1
 * of the out_w x out_h result, mirrored left-right when flip is non-zero. */
struct ldm_window {
    int x, y, w, h;
    int flip;
};

/* Resize src (c = 1 or 3) to out_w x out_h with `filter` into *dst (allocated
 * here; the caller frees it with ldm_image_free). Equal to Pillow 9.4's
 * img.resize((out_w, out_h), filter). Returns 0, LDM_EINVAL (empty or 2/4-channel
 * source, size < 1, unknown filter) or LDM_ENOMEM. On failure *dst is zeroed. */
int ldm_resize(const struct ldm_image *src, int out_w, int out_h, int filter,
               struct ldm_image *dst);

/* As ldm_resize, but produce only window `win` of the result (win->w x win->h,
 * mirrored if win->flip): equal to resize, crop((x, y, x+w, y+h)), then
 * transpose(FLIP_LEFT_RIGHT) when flipping. Returns 0, LDM_EINVAL (as
 * ldm_resize, or a window not inside the out_w x out_h result) or LDM_ENOMEM. */
int ldm_resize_window(const struct ldm_image *src, int out_w, int out_h, int filter,
                      const struct ldm_window *win, struct ldm_image *dst);

/* Use the SIMD kernels (on, the default) or only the portable code (0). For
 * tests and benchmarks; call it before any resize is under way. */
void ldm_resample_set_simd(int on);

#endif

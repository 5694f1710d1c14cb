/* score.c — evald's image files: one PNG per kept image, and a grid per evaluation. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "evald/eval_int.h"
#include "fsutil.h"
#include "image.h"

int ev_write_png(const char *path, const uint8_t *px, int64_t w, int64_t h)
{
    struct ldm_image im = {.w = (int)w, .h = (int)h, .c = 3, .px = (uint8_t *)px};
    return ldm_image_write_png(path, &im);
}

/* Up to 16 images of side×side in a grid of ceil(sqrt(n)) columns, 2-pixel gaps. */
int ev_write_grid(const char *path, const uint8_t *px, int64_t n, int64_t side)
{
    if (n < 1)
        return 0;
    int64_t cols = 1;
    while (cols * cols < n)
        cols++;
    int64_t rows = (n + cols - 1) / cols, gap = 2;
    int64_t W = cols * side + (cols - 1) * gap, H = rows * side + (rows - 1) * gap;
    uint8_t *g = calloc((size_t)(W * H * 3), 1);
    if (!g)
        return ldm_fail(LDM_ENOMEM, "grid of %lld images", (long long)n);
    for (int64_t k = 0; k < n; k++) {
        int64_t x0 = (k % cols) * (side + gap), y0 = (k / cols) * (side + gap);
        for (int64_t y = 0; y < side; y++)
            memcpy(g + ((y0 + y) * W + x0) * 3, px + (size_t)((k * side + y) * side * 3),
                   (size_t)(side * 3));
    }
    int rc = ev_write_png(path, g, W, H);
    free(g);
    return rc;
}

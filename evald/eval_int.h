/* eval_int.h — evald's shared evaluation state (eval.c, sample.c, score.c). */
#ifndef LDM_EVALD_EVAL_INT_H
#define LDM_EVALD_EVAL_INT_H

#include <jansson.h>

#include "evald/ecfg.h"
#include "evald/eval.h"
#include "evald/text.h"
#include "models/fid.h"
#include "models/inception.h"
#include "models/unet.h"
#include "models/vae.h"
#include "nn/backend.h"

struct ev_models {
    const struct evald_cfg *cfg;
    struct ldm_ctx *ctx;
    struct ev_text *text;
    struct ldm_vae *vae;
    json_t *sched;                   /* scheduler_config.json */
    struct ldm_inception *inception; /* NULL: no scores */
    struct ldm_fid_stats ref;        /* dim 0: no FID */
    char **prompts;
    int64_t nprompts;
    float *cond, *uncond;            /* (nprompts, L, D), (L, D) */
    float *pcond, *puncond;          /* pooled (SDXL) */
    int64_t L, D, P, side;           /* text dims; image side in pixels */
    double vscale, vshift;           /* VAE latent scaling */
    int64_t lat_c;                   /* latent channels */
    const struct ldm_unet *pu;       /* the UNet prepared last, for pB samples */
    int64_t pB;
    int udt;                         /* the UNet's compute dtype (precision) */
};

/* sample.c: images [first, first + n) of the evaluation as uint8 HWC RGB into px
 * (n·side·side·3 bytes). */
int ev_sample(struct ev_models *m, struct ldm_unet *u, int64_t first, int64_t n, uint8_t *px);

/* score.c: PNGs, the grid, FID and IS of the evaluation's images. */
int ev_write_png(const char *path, const uint8_t *px, int64_t w, int64_t h);
int ev_write_grid(const char *path, const uint8_t *px, int64_t n, int64_t side);

#endif

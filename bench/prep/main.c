/* main.c — bench-prep: where a loader's time goes, stage by stage, on one core.
 *
 * usage: bench-prep RESOLUTION TOKENIZER SHARD...
 * For every sample: read (tar), decode (full size, and DCT-scaled when the
 * image allows), resize+crop+flip of the decoded image, tokenize, and the
 * whole production path (ldm_prepare). Prints milliseconds per sample.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "image.h"
#include "loaderd/prepare.h"
#include "models/clip_tokenizer.h"

enum { T_READ, T_DECODE, T_DECODE_DCT, T_TRANSFORM, T_TOKENIZE, T_PREPARE, T_N };
static const char *const names[T_N] = {"read (tar)", "decode, full size", "decode, DCT-scaled",
                                       "resize+crop+flip", "tokenize (CLIP)", "prepare (all)"};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void stages(const struct ldm_prep_shared *sh, const struct ldm_raw_sample *raw,
                   struct ldm_prepared *p, double *t)
{
    struct ldm_fields f;
    if (ldm_sample_fields(raw, &sh->fields, &f) != 0) {
        ldm_fields_free(&f);
        return;
    }
    struct ldm_image im = {0}, out = {0};
    struct ldm_geometry g;
    struct ldm_decode_opts dct = sh->dec;
    double t0 = now();
    ldm_image_decode(f.image->data, f.image->len, "bench", &sh->dec, &im, NULL);
    double t1 = now();
    ldm_transform_plan(im.w, im.h, &sh->tp, NULL, NULL, &g);
    ldm_transform_apply(&im, &g, sh->tp.filter, &out);
    double t2 = now();
    ldm_image_free(&im);
    dct.need_w = g.resized_w;
    dct.need_h = g.resized_h;
    ldm_image_decode(f.image->data, f.image->len, "bench", &dct, &im, NULL);
    double t3 = now();
    int32_t ids[77];
    ldm_clip_tok_frame(sh->tok.clip, f.captions[0], strlen(f.captions[0]), ids, NULL);
    double t4 = now();
    ldm_prepare(sh, raw, 0, p);
    double t5 = now();
    t[T_DECODE] += t1 - t0;
    t[T_TRANSFORM] += t2 - t1;
    t[T_DECODE_DCT] += t3 - t2;
    t[T_TOKENIZE] += t4 - t3;
    t[T_PREPARE] += t5 - t4;
    ldm_image_free(&im);
    ldm_image_free(&out);
    ldm_fields_free(&f);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench-prep RESOLUTION TOKENIZER SHARD...\n");
        return 2;
    }
    mallopt(M_MMAP_THRESHOLD, 64 << 20); /* as loaderd does */
    struct ldm_prep_shared sh = {0};
    sh.tp.resolution = atoi(argv[1]);
    sh.tp.dct_scaling = 1;
    sh.random_flip = 1;
    if (ldm_tokenizer_load(argv[2], 77, &sh.tok) != 0) {
        fprintf(stderr, "bench-prep: %s\n", ldm_errmsg());
        return 1;
    }
    double t[T_N] = {0};
    long n = 0;
    struct ldm_prepared p = {0};
    for (int i = 3; i < argc; i++) {
        struct ldm_source *src;
        struct ldm_raw_sample raw;
        if (ldm_source_open(argv[i], NULL, &src) != 0)
            continue;
        double r0 = now();
        while (ldm_source_next(src, &raw) == 1) {
            t[T_READ] += now() - r0;
            stages(&sh, &raw, &p, t);
            n++;
            r0 = now();
        }
        ldm_source_close(src);
    }
    printf("bench-prep: %ld samples to %dx%d, ms per sample on one core\n", n, sh.tp.resolution,
           sh.tp.resolution);
    for (int s = 0; s < T_N; s++)
        printf("  %-22s %8.3f ms\n", names[s], n ? 1e3 * t[s] / (double)n : 0.0);
    ldm_prepared_free(&p);
    ldm_tokenizer_free(&sh.tok);
    return 0;
}

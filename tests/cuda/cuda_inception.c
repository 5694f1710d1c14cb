/* cuda_inception.c — the FID InceptionV3 (models/inception.h) on the CUDA backend
 * against the CPU backend: the same weights, the same images, pool3, logits and
 * the unbiased logits compared.
 *
 * The weights are drawn from a seeded generator keyed by each tensor's name
 * (uniform ±√(6/fan-in) for convolutions and fc, BatchNorm statistics near 1
 * and 0), handed to ldm_inception_open through the same loader interface
 * the unit test uses, so both contexts fold the same values. Two batches
 * run on each side: 10 images 80 wide and 64 high (upscaled to 299; a full
 * chunk of 8 and a tail of 2, planned separately) and 2 of 336×320
 * (downscaled). Each
 * output is compared by max|cuda − cpu| / max|cpu|, bound 1e-4: both sides
 * compute in FP32 (TF32 is switched off here, LDM_CUDA_TF32 unset) and
 * differ only in the order of their sums (cuDNN's convolutions, cuBLASLt's
 * products), which moves a result by a few float roundings per layer
 * (the ops' own CUDA tests hold single layers to 1e-5). A second
 * device run of the first batch must give the same bits (forward algorithms
 * are deterministic, so a FID does not depend on the run).
 *
 * Usage: cuda-inception [--device DEV]. Prints one "ok"/"FAIL" line a
 * comparison and a summary, exit 1 on a failure; "SKIP cuda-inception: no
 * CUDA device" and exit 0 where none is visible. --device cpu compares the
 * CPU backend with itself, to check this program where no GPU exists.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "models/inception.h"
#include "nn/backend.h"
#include "nn/device.h"

#define BOUND 1e-4

static int n_ok, n_fail;

static void die(const char *what, int rc)
{
    fprintf(stderr, "FAIL cuda-inception: %s: %s (%d)\n", what, ldm_errmsg(), rc);
    exit(1);
}

/* ---- weights and images ------------------------------------------------------------------ */

static uint64_t rng;

static double urand(void) /* uniform in [0, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* An ldm_inception_get_fn: tensor `name` drawn from a generator seeded by the name. */
static int weights(void *user, const char *name, int ndim, const int64_t *shape, float *dst)
{
    (void)user;
    size_t n = 1;
    double fan = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    for (int i = 1; i < ndim; i++)
        fan *= (double)shape[i];
    rng = 0x9e3779b97f4a7c15ull;
    for (const char *p = name; *p; p++)
        rng = (rng ^ (unsigned char)*p) * 0x100000001b3ull;
    for (size_t i = 0; i < n; i++) {
        double u = urand();
        if (strstr(name, "running_var"))
            dst[i] = (float)(0.5 + u);
        else if (strstr(name, "running_mean"))
            dst[i] = (float)(0.1 * (2 * u - 1));
        else if (strstr(name, "bn.weight"))
            dst[i] = (float)(0.8 + 0.4 * u);
        else if (strstr(name, "bias"))
            dst[i] = (float)(0.2 * (2 * u - 1));
        else
            dst[i] = (float)((2 * u - 1) * sqrt(6.0 / fan));
    }
    return 0;
}

static float *images(int64_t N, int64_t H, int64_t W, uint64_t seed)
{
    size_t n = (size_t)(N * 3 * H * W);
    float *x = malloc(n * sizeof *x);
    if (!x)
        die("out of memory", LDM_ENOMEM);
    rng = seed;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)urand();
    return x;
}

/* ---- one network's outputs ------------------------------------------------------------ */

struct outs {
    float *pool, *logits, *unbiased; /* (N, 2048), (N, 1008), (N, 1008) */
};

static void run(struct ldm_inception *m, const float *x, int64_t N, int64_t H, int64_t W,
                struct outs *o)
{
    o->pool = malloc((size_t)N * LDM_INCEPTION_DIM * sizeof(float));
    o->logits = malloc((size_t)N * LDM_INCEPTION_CLASSES * sizeof(float));
    o->unbiased = malloc((size_t)N * LDM_INCEPTION_CLASSES * sizeof(float));
    if (!o->pool || !o->logits || !o->unbiased)
        die("out of memory", LDM_ENOMEM);
    int rc = ldm_inception_forward(m, x, N, H, W, o->pool, o->logits);
    if (rc)
        die("forward", rc);
    rc = ldm_inception_logits_unbiased(m, o->pool, N, o->unbiased);
    if (rc)
        die("unbiased logits", rc);
}

static void outs_free(struct outs *o)
{
    free(o->pool);
    free(o->logits);
    free(o->unbiased);
}

/* ---- comparisons ------------------------------------------------------------------------- */

/* max|b − a| / max|a| over n values (NaN anywhere: NaN). */
static double rel_err(const float *a, const float *b, size_t n)
{
    double mx = 0, diff = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i]))
            return NAN;
        mx = fmax(mx, fabs((double)a[i]));
        diff = fmax(diff, fabs((double)b[i] - (double)a[i]));
    }
    return mx > 0 ? diff / mx : diff;
}

static void report(const char *what, const char *batch, double err)
{
    int ok = err <= BOUND; /* NaN fails */
    printf("%s cuda-inception: %-9s %s: relative error %.3g (bound %g)\n", ok ? "ok  " : "FAIL",
           what, batch, err, BOUND);
    ok ? n_ok++ : n_fail++;
}

/* One batch through both networks; `repeat`: the device runs it twice. */
static void check_batch(struct ldm_inception *cpu, struct ldm_inception *dev, int64_t N,
                        int64_t H, int64_t W, uint64_t seed, int repeat)
{
    char batch[64];
    snprintf(batch, sizeof batch, "(%lld images %lldx%lld)", (long long)N, (long long)W,
             (long long)H);
    float *x = images(N, H, W, seed);
    struct outs a, b;
    run(cpu, x, N, H, W, &a);
    run(dev, x, N, H, W, &b);
    report("pool3", batch, rel_err(a.pool, b.pool, (size_t)N * LDM_INCEPTION_DIM));
    report("logits", batch, rel_err(a.logits, b.logits, (size_t)N * LDM_INCEPTION_CLASSES));
    report("unbiased", batch, rel_err(a.unbiased, b.unbiased, (size_t)N * LDM_INCEPTION_CLASSES));
    if (repeat) {
        struct outs c;
        run(dev, x, N, H, W, &c);
        int same = memcmp(b.pool, c.pool, (size_t)N * LDM_INCEPTION_DIM * sizeof(float)) == 0 &&
                   memcmp(b.logits, c.logits,
                          (size_t)N * LDM_INCEPTION_CLASSES * sizeof(float)) == 0;
        printf("%s cuda-inception: a second run of %s gives the same bits\n",
               same ? "ok  " : "FAIL", batch);
        same ? n_ok++ : n_fail++;
        outs_free(&c);
    }
    outs_free(&a);
    outs_free(&b);
    free(x);
}

/* ---- main ------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *dev = "cuda";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            dev = argv[++i];
        } else {
            fprintf(stderr, "usage: cuda-inception [--device cuda[:N]|cpu]\n");
            return 2;
        }
    }
    if (strncmp(dev, "cuda", 4) == 0) {
        int n = 0;
        if (!ldm_cuda_built() || ldm_cuda_device_count(&n) || n == 0) {
            printf("SKIP cuda-inception: no CUDA device\n");
            return 0;
        }
        char desc[200];
        if (ldm_cuda_describe(0, desc, sizeof desc) == 0)
            printf("     %s\n", desc);
    }
    unsetenv("LDM_CUDA_TF32"); /* FP32 convolutions and GEMMs on the device */
    struct ldm_ctx *cc = NULL, *dc = NULL;
    struct ldm_inception *cpu = NULL, *gpu = NULL;
    int rc = ldm_ctx_open(&cc, "cpu", 0);
    if (!rc)
        rc = ldm_ctx_open(&dc, dev, 0);
    if (rc)
        die("open contexts", rc);
    rc = ldm_inception_open(&cpu, cc, weights, NULL);
    if (!rc)
        rc = ldm_inception_open(&gpu, dc, weights, NULL);
    if (rc)
        die("open the networks", rc);
    check_batch(cpu, gpu, 10, 64, 80, 11, 1);
    check_batch(cpu, gpu, 2, 320, 336, 12, 0);
    printf("%s cuda-inception: %d checks passed, %d failed\n", n_fail ? "FAIL" : "ok  ", n_ok,
           n_fail);
    ldm_inception_close(&gpu);
    ldm_inception_close(&cpu);
    ldm_ctx_close(&dc);
    ldm_ctx_close(&cc);
    return n_fail ? 1 : 0;
}

/* main.c — bench-ops: GFLOP/s of conv2d, linear and attention forward+backward at
 * UNet-like shapes on the CPU backend, next to PyTorch on the same shapes and
 * threads in the same run, with OpenBLAS sgemm's rate here as the ceiling.
 *
 *   bench-ops [--threads N] [--python PATH] [--script bench/ops.py] [--quick]
 *
 * Each measurement is the best of several runs after a warm-up. FLOPs count
 * the useful products only (backward = twice the forward, for both sides),
 * so the ratio torch_time / our_time reads "how many times faster". */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "nn/backend.h"
#include "nn/cpu/pool.h"

enum { CONV, LINEAR, ATTN };

struct spec {
    int kind;
    const char *label;
    int64_t a[8]; /* conv: N C H W K R stride pad; linear: M Din Dout; attn: N H Lq Lk D causal */
};

static const struct spec specs[] = {
    {CONV, "conv 320x32x32 3x3", {2, 320, 32, 32, 320, 3, 1, 1}},
    {CONV, "conv 640x16x16 3x3", {2, 640, 16, 16, 640, 3, 1, 1}},
    {CONV, "conv 1280x8x8 3x3", {2, 1280, 8, 8, 1280, 3, 1, 1}},
    {CONV, "conv 4->320 32x32 (in)", {2, 4, 32, 32, 320, 3, 1, 1}},
    {CONV, "conv 320 s2 (down)", {2, 320, 32, 32, 320, 3, 2, 1}},
    {CONV, "conv 320 1x1", {2, 320, 32, 32, 320, 1, 1, 0}},
    {LINEAR, "linear 2048x320->2560", {2048, 320, 2560}},
    {LINEAR, "linear 2048x1280->320", {2048, 1280, 320}},
    {LINEAR, "linear 2048x320->320", {2048, 320, 320}},
    {LINEAR, "linear 154x768->320", {154, 768, 320}},
    {ATTN, "attn self L1024 h8 d40", {2, 8, 1024, 1024, 40, 0}},
    {ATTN, "attn cross 1024x77 h8 d40", {2, 8, 1024, 77, 40, 0}},
    {ATTN, "attn self L4096 h8 d40", {1, 8, 4096, 4096, 40, 0}},
    {ATTN, "attn causal L77 h12 d64", {8, 12, 77, 77, 64, 1}},
};
#define NSPECS (sizeof specs / sizeof specs[0])

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *randbuf(size_t n, unsigned seed)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "bench-ops: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return p;
}

static void check(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "bench-ops: %s: %s\n", what, ldm_errmsg());
        exit(1);
    }
}

/* One op's tensors and what to run. */
struct job {
    const struct spec *s;
    struct ldm_ctx *c;
    struct ldm_tensor t[12];
    float *bufs[12];
    int nbufs;
    struct ldm_conv2d_opts co;
    struct ldm_attn_opts ao;
};

static struct ldm_tensor *add(struct job *j, int ndim, const int64_t *shape)
{
    struct ldm_tensor *t = &j->t[j->nbufs];
    *t = ldm_tensor_view(NULL, LDM_DT_F32, ndim, shape);
    t->data = j->bufs[j->nbufs] = randbuf(ldm_tensor_numel(t), 7u + (unsigned)j->nbufs);
    j->nbufs++;
    return t;
}
#define ADD(j, ...)                                                                                \
    add((j), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                          \
        (const int64_t[]){__VA_ARGS__})

/* Tensors: conv x w b y dy dx dw db; linear x w b y dy dx dw db; attn q k v o lse do dq dk dv. */
static void job_init(struct job *j)
{
    const int64_t *a = j->s->a;
    if (j->s->kind == CONV) {
        int64_t ho = (a[2] + 2 * a[7] - a[5]) / a[6] + 1, wo = (a[3] + 2 * a[7] - a[5]) / a[6] + 1;
        ADD(j, a[0], a[1], a[2], a[3]);
        ADD(j, a[4], a[1], a[5], a[5]);
        ADD(j, a[4]);
        ADD(j, a[0], a[4], ho, wo);
        ADD(j, a[0], a[4], ho, wo);
        ADD(j, a[0], a[1], a[2], a[3]);
        ADD(j, a[4], a[1], a[5], a[5]);
        ADD(j, a[4]);
        j->co = (struct ldm_conv2d_opts){(int)a[6], (int)a[6], (int)a[7], (int)a[7], (int)a[7],
                                         (int)a[7]};
    } else if (j->s->kind == LINEAR) {
        ADD(j, a[0], a[1]);
        ADD(j, a[2], a[1]);
        ADD(j, a[2]);
        ADD(j, a[0], a[2]);
        ADD(j, a[0], a[2]);
        ADD(j, a[0], a[1]);
        ADD(j, a[2], a[1]);
        ADD(j, a[2]);
    } else {
        int64_t N = a[0], H = a[1], Lq = a[2], Lk = a[3], D = a[4];
        ADD(j, N, Lq, H * D);
        ADD(j, N, Lk, H * D);
        ADD(j, N, Lk, H * D);
        ADD(j, N, Lq, H * D);
        ADD(j, N, H, Lq);
        ADD(j, N, Lq, H * D);
        ADD(j, N, Lq, H * D);
        ADD(j, N, Lk, H * D);
        ADD(j, N, Lk, H * D);
        j->ao = (struct ldm_attn_opts){(int)H, 0.0f, (int)a[5], NULL, 0};
    }
}

static int run_fwd(struct job *j)
{
    struct ldm_tensor *t = j->t;
    if (j->s->kind == CONV)
        return ldm_conv2d_forward(j->c, &t[3], &t[0], &t[1], &t[2], &j->co);
    if (j->s->kind == LINEAR)
        return ldm_linear_forward(j->c, &t[3], &t[0], &t[1], &t[2]);
    return ldm_attention_forward(j->c, &t[3], &t[4], &t[0], &t[1], &t[2], &j->ao);
}

static int run_bwd(struct job *j)
{
    struct ldm_tensor *t = j->t;
    if (j->s->kind == CONV)
        return ldm_conv2d_backward(j->c, &t[5], &t[6], &t[7], &t[4], &t[0], &t[1], &j->co);
    if (j->s->kind == LINEAR)
        return ldm_linear_backward(j->c, &t[5], &t[6], &t[7], &t[4], &t[0], &t[1]);
    return ldm_attention_backward(j->c, &t[6], &t[7], &t[8], &t[5], &t[0], &t[1], &t[2], &t[3],
                                  &t[4], &j->ao);
}

/* Forward FLOPs of a spec. */
static double fwd_flops(const struct spec *s)
{
    const int64_t *a = s->a;
    if (s->kind == CONV) {
        double ho = (double)((a[2] + 2 * a[7] - a[5]) / a[6] + 1);
        double wo = (double)((a[3] + 2 * a[7] - a[5]) / a[6] + 1);
        return 2.0 * (double)(a[0] * a[4] * a[1] * a[5] * a[5]) * ho * wo;
    }
    if (s->kind == LINEAR)
        return 2.0 * (double)a[0] * (double)a[1] * (double)a[2];
    double pairs = a[5] ? (double)a[2] * (double)(a[2] + 1) / 2.0 : (double)a[2] * (double)a[3];
    return 4.0 * (double)(a[0] * a[1]) * pairs * (double)a[4];
}

/* Best time of `reps` runs (after one warm-up) of fwd, then of fwd+bwd. */
static void time_job(struct job *j, int reps, double *tf, double *tfb)
{
    size_t need;
    ldm_ctx_plan_begin(j->c);
    check(run_fwd(j), j->s->label);
    check(run_bwd(j), j->s->label);
    ldm_ctx_plan_end(j->c, &need);
    check(ldm_ctx_reserve(j->c, need), "workspace");
    *tf = *tfb = INFINITY;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        check(run_fwd(j), j->s->label);
        double t1 = now();
        check(run_bwd(j), j->s->label);
        double t2 = now();
        if (r > 0) {
            *tf = fmin(*tf, t1 - t0);
            *tfb = fmin(*tfb, t2 - t0);
        }
    }
}

/* OpenBLAS sgemm GFLOP/s on n×n×n: the best of 6 runs. */
static double sgemm_rate(int threads, int n)
{
    float *a = randbuf((size_t)n * n, 1), *b = randbuf((size_t)n * n, 2),
          *c = randbuf((size_t)n * n, 3);
    openblas_set_num_threads(threads);
    double best = INFINITY;
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        if (r > 0)
            best = fmin(best, now() - t0);
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * (double)n * n * n / best / 1e9;
}

/* The ceiling: the best sgemm rate over a few square sizes. */
static double sgemm_peak(int threads)
{
    double best = 0.0;
    for (int n = 1024; n <= 3072; n += 1024)
        best = fmax(best, sgemm_rate(threads, n));
    return best;
}

/* Ask PyTorch for one spec: "fwd_ms fwdbwd_ms". Run right after ours, so
 * that both see the same load on a shared machine. */
static int torch_time(const char *python, const char *script, int threads, int reps,
                      const struct spec *sp, double *tf, double *tfb)
{
    char cmd[4096];
    const int64_t *a = sp->a;
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d MKL_NUM_THREADS=%d "
             "%s %s %d %d %s:%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld",
             threads, threads, threads, python, script, threads, reps,
             sp->kind == CONV ? "conv" : sp->kind == LINEAR ? "linear" : "attn", (long long)a[0],
             (long long)a[1], (long long)a[2], (long long)a[3], (long long)a[4], (long long)a[5],
             (long long)a[6], (long long)a[7]);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    int got = fscanf(f, "%lf %lf", tf, tfb);
    int st = pclose(f);
    *tf /= 1e3;
    *tfb /= 1e3;
    return got == 2 && st == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    int threads = 0, reps = 5;
    const char *python = "/usr/bin/python3", *script = "bench/ops.py";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc)
            python = argv[++i];
        else if (strcmp(argv[i], "--script") == 0 && i + 1 < argc)
            script = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0)
            reps = 1;
        else {
            fprintf(stderr, "usage: bench-ops [--threads N] [--python PATH] [--script FILE] "
                            "[--quick]\n");
            return 2;
        }
    }
    if (threads <= 0)
        threads = ldm_cpu_count();
    double peak = sgemm_peak(threads);
    printf("bench-ops: %d threads; OpenBLAS sgemm, best of n^3 for n = 1024..3072: %.1f GFLOP/s "
           "(the ceiling; 1 thread: %.1f)\n", threads, peak, sgemm_rate(1, 2048));
    printf("%-26s %9s %9s %8s %8s %7s %8s %7s\n", "op (fwd+bwd)", "ours ms", "torch ms",
           "ours GF", "torch GF", "%peak", "fwd GF", "ratio");
    struct ldm_ctx *c;
    check(ldm_ctx_open(&c, "cpu", threads), "cpu context");
    for (size_t i = 0; i < NSPECS; i++) {
        struct job j = {.s = &specs[i], .c = c};
        double of, ofb, tf = NAN, tfb = NAN;
        job_init(&j);
        time_job(&j, reps, &of, &ofb);
        for (int k = 0; k < j.nbufs; k++)
            free(j.bufs[k]);
        if (torch_time(python, script, threads, reps, &specs[i], &tf, &tfb))
            tf = tfb = NAN;
        double fl = 3.0 * fwd_flops(&specs[i]) / 1e9;
        printf("%-26s %9.2f %9.2f %8.1f %8.1f %6.0f%% %8.1f %6.2fx\n", specs[i].label, ofb * 1e3,
               tfb * 1e3, fl / ofb, fl / tfb, 100.0 * fl / ofb / peak,
               fwd_flops(&specs[i]) / 1e9 / of, tfb / ofb);
        fflush(stdout);
    }
    ldm_ctx_close(&c);
    double again = sgemm_peak(threads);
    printf("sgemm ceiling measured again after the ops: %.1f GFLOP/s (a large change means the "
           "machine was busy)\n", again);
    printf("ratio = torch time / ours (above 1: ours faster); GF = GFLOP/s; nan: no PyTorch "
           "(%s %s)\n", python, script);
    return 0;
}

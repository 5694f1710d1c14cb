/* cuda_attn.c — the CUDA backend's attention (forward and backward) against
 * the CPU backend, on random cases: every dtype, the tensor-core widths and
 * others, odd lengths, batch 1, cross-attention, key masks, causal, rows
 * that see no key, unaligned tensors, gradients not wanted.
 *
 * Each case draws F32 inputs, rounds them to the case's dtype, and runs
 * them through ldm_attention_forward / _backward on a "cpu" context (F32)
 * and a "cuda" context (the dtype). It compares out, lse and the
 * increments of dq, dk, dv (both start from the same nonzero values: the
 * backward adds) by max|cuda − cpu| / max|cpu|, checks that lse is −inf
 * exactly where the CPU's is, that no element stayed unwritten (the
 * outputs are filled with NaN before the forward) and that two backward
 * runs give the same bits. Prints one "ok"/"FAIL" line a case and a
 * summary; exits 1 on a failure. Without a device: "SKIP cuda-attn: no
 * CUDA device", exit 0.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "nn/backend.h"
#include "nn/device.h"
#include "nn/tensor.h"

enum { MASK_NONE, MASK_RANDOM, MASK_EMPTY_SAMPLE, MASK_FIRST_HIDDEN };
enum { G_DQ = 1, G_DK = 2, G_DV = 4, G_ALL = 7 };

struct acase {
    int dtype;
    int N, Lq, Lk, H, Dh, Dv;
    int causal, mask, grads;
    int offset;  /* start every CUDA tensor this many elements into its buffer */
    float scale; /* 0: 1/sqrt(Dh) */
};

static const struct acase cases[] = {
    /* tensor-core widths */
    {LDM_DT_BF16, 2, 197, 197, 3, 40, 40, 0, MASK_RANDOM, G_ALL, 0},
    {LDM_DT_BF16, 1, 300, 300, 2, 40, 40, 1, MASK_NONE, G_ALL, 0},
    {LDM_DT_BF16, 2, 130, 77, 2, 64, 64, 0, MASK_EMPTY_SAMPLE, G_ALL, 0},
    {LDM_DT_BF16, 2, 129, 129, 2, 80, 80, 1, MASK_FIRST_HIDDEN, G_ALL, 0},
    {LDM_DT_BF16, 1, 257, 257, 2, 128, 128, 0, MASK_NONE, G_ALL, 0},
    {LDM_DT_BF16, 2, 100, 77, 1, 160, 160, 0, MASK_RANDOM, G_ALL, 0},
    {LDM_DT_BF16, 1, 193, 193, 2, 160, 160, 1, MASK_NONE, G_ALL, 0},
    {LDM_DT_BF16, 2, 1024, 1024, 2, 64, 64, 1, MASK_NONE, G_ALL, 0},
    {LDM_DT_F16, 2, 197, 197, 3, 40, 40, 1, MASK_RANDOM, G_ALL, 0},
    {LDM_DT_F16, 2, 130, 77, 2, 64, 64, 0, MASK_NONE, G_ALL, 0},
    {LDM_DT_F16, 2, 129, 129, 2, 80, 80, 0, MASK_EMPTY_SAMPLE, G_ALL, 0},
    {LDM_DT_F16, 1, 150, 150, 2, 128, 128, 1, MASK_FIRST_HIDDEN, G_ALL, 0},
    {LDM_DT_F16, 2, 65, 77, 2, 160, 160, 0, MASK_RANDOM, G_ALL, 0},
    /* long enough for 32 rows a warp in the backward (heads up to 64 wide) */
    {LDM_DT_BF16, 1, 600, 530, 2, 40, 40, 0, MASK_RANDOM, G_ALL, 0},
    {LDM_DT_F16, 2, 77, 700, 1, 64, 64, 0, MASK_EMPTY_SAMPLE, G_ALL, 0},
    {LDM_DT_F16, 1, 700, 77, 2, 40, 40, 1, MASK_NONE, G_ALL, 0},
    {LDM_DT_BF16, 1, 530, 530, 2, 64, 64, 1, MASK_FIRST_HIDDEN, G_ALL, 0},
    {LDM_DT_BF16, 1, 520, 520, 2, 40, 40, 0, MASK_NONE, G_DV, 0},
    /* edges on the tensor-core path */
    {LDM_DT_BF16, 1, 1, 1, 1, 64, 64, 0, MASK_NONE, G_ALL, 0},
    {LDM_DT_BF16, 2, 5, 300, 2, 64, 64, 1, MASK_NONE, G_ALL, 0},
    {LDM_DT_BF16, 2, 300, 5, 2, 64, 64, 1, MASK_RANDOM, G_ALL, 0},
    {LDM_DT_BF16, 2, 150, 150, 2, 64, 64, 0, MASK_NONE, G_DQ, 0},
    {LDM_DT_F16, 2, 150, 150, 2, 80, 80, 1, MASK_NONE, G_DK | G_DV, 0},
    {LDM_DT_BF16, 2, 150, 99, 2, 64, 64, 0, MASK_RANDOM, G_ALL, 0, -0.2f},
    {LDM_DT_F16, 1, 120, 120, 2, 40, 40, 1, MASK_NONE, G_ALL, 0, 0.5f},
    /* generic kernels: F32, other widths, Dh != Dv, unaligned */
    {LDM_DT_F32, 2, 197, 197, 2, 40, 40, 1, MASK_RANDOM, G_ALL, 0},
    {LDM_DT_F32, 2, 130, 77, 2, 64, 64, 0, MASK_EMPTY_SAMPLE, G_ALL, 0},
    {LDM_DT_F32, 1, 100, 100, 1, 160, 160, 1, MASK_FIRST_HIDDEN, G_ALL, 0},
    {LDM_DT_F32, 1, 70, 45, 2, 256, 256, 0, MASK_NONE, G_ALL, 0},
    {LDM_DT_F32, 2, 33, 31, 3, 24, 56, 0, MASK_RANDOM, G_ALL, 0},
    {LDM_DT_F32, 1, 7, 9, 2, 3, 5, 1, MASK_NONE, G_DK, 0},
    {LDM_DT_F32, 2, 50, 61, 2, 64, 64, 1, MASK_RANDOM, G_ALL, 0, -0.3f},
    {LDM_DT_BF16, 2, 99, 99, 2, 32, 32, 1, MASK_RANDOM, G_ALL, 0},
    {LDM_DT_BF16, 1, 77, 120, 2, 200, 200, 0, MASK_NONE, G_ALL, 0},
    {LDM_DT_BF16, 2, 60, 77, 2, 48, 80, 0, MASK_EMPTY_SAMPLE, G_ALL, 0},
    {LDM_DT_F16, 1, 111, 111, 2, 100, 100, 1, MASK_NONE, G_ALL, 0},
    {LDM_DT_BF16, 2, 150, 150, 2, 64, 64, 1, MASK_RANDOM, G_ALL, 2},
};

/* ---- random data ----------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float urand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* n values amp·U(-1, 1), rounded to dtype (kept as F32). */
static float *draw(size_t n, float amp, int dtype)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    if (!x || !h)
        abort();
    for (size_t i = 0; i < n; i++)
        x[i] = amp * urand();
    if (dtype != LDM_DT_F32 && (ldm_convert(h, dtype, x, LDM_DT_F32, n) ||
                                ldm_convert(x, LDM_DT_F32, h, dtype, n)))
        abort();
    free(h);
    return x;
}

static uint8_t *draw_mask(const struct acase *k)
{
    size_t n = (size_t)k->N * k->Lk;
    uint8_t *m = malloc(n ? n : 1);
    if (!m)
        abort();
    for (size_t i = 0; i < n; i++)
        m[i] = k->mask == MASK_RANDOM ? urand() < 0.6f : 1;
    if (k->mask == MASK_EMPTY_SAMPLE) /* the last sample hides every key */
        memset(m + (size_t)(k->N - 1) * k->Lk, 0, (size_t)k->Lk);
    if (k->mask == MASK_FIRST_HIDDEN) /* with causal: row 0 of each sample sees nothing */
        for (int n0 = 0; n0 < k->N; n0++)
            m[(size_t)n0 * k->Lk] = 0;
    return m;
}

/* ---- tensors on a context -------------------------------------------------------------------- */

struct tens {
    struct ldm_tensor t;
    void *base; /* the allocation (t.data may start `offset` elements in) */
};

static int tens_new(struct ldm_ctx *c, struct tens *x, const char *name, int dtype, int ndim,
                    const int64_t *shape, int offset)
{
    int rc = ldm_tensor_set(&x->t, name, dtype, ndim, shape);
    size_t es = ldm_dtype_size(dtype), bytes = ldm_tensor_nbytes(&x->t) + (size_t)offset * es;
    if (!rc)
        rc = ldm_ctx_alloc(c, bytes ? bytes : 16, &x->base);
    x->t.data = rc ? NULL : (char *)x->base + (size_t)offset * es;
    return rc;
}

static void tens_free(struct ldm_ctx *c, struct tens *x)
{
    ldm_ctx_free(c, x->base);
    x->base = x->t.data = NULL;
}

/* F32 host values into x, converted to its dtype. */
static int tens_put(struct ldm_ctx *c, struct tens *x, const float *v)
{
    size_t n = ldm_tensor_numel(&x->t), bytes = ldm_tensor_nbytes(&x->t);
    void *h = malloc(bytes ? bytes : 1);
    int rc = h ? ldm_convert(h, x->t.dtype, v, LDM_DT_F32, n) : LDM_ENOMEM;
    if (!rc)
        rc = ldm_ctx_upload(c, x->t.data, h, bytes);
    free(h);
    return rc;
}

/* x's values as F32 into v; its raw bytes into raw when given. */
static int tens_get(struct ldm_ctx *c, const struct tens *x, float *v, void *raw)
{
    size_t n = ldm_tensor_numel(&x->t), bytes = ldm_tensor_nbytes(&x->t);
    void *h = raw ? raw : malloc(bytes ? bytes : 1);
    int rc = h ? ldm_ctx_download(c, h, x->t.data, bytes) : LDM_ENOMEM;
    if (!rc)
        rc = ldm_convert(v, LDM_DT_F32, h, x->t.dtype, n);
    if (!raw)
        free(h);
    return rc;
}

/* Fill x with 0xff bytes (NaN in every float dtype). */
static int tens_poison(struct ldm_ctx *c, struct tens *x)
{
    size_t bytes = ldm_tensor_nbytes(&x->t);
    void *h = malloc(bytes ? bytes : 1);
    if (!h)
        return LDM_ENOMEM;
    memset(h, 0xff, bytes);
    int rc = ldm_ctx_upload(c, x->t.data, h, bytes);
    free(h);
    return rc;
}

/* ---- one backend's run ----------------------------------------------------------------------- */

/* Host inputs of a case (F32, already rounded to the dtype) and results. */
struct hostset {
    float *q, *k, *v, *dout, *g0[3];
    uint8_t *mask;
    float *out, *lse, *g[3]; /* results: out, lse, gradients after the backward */
    void *graw[3];           /* raw gradient bytes of the first backward (CUDA) */
};

enum { T_Q, T_K, T_V, T_OUT, T_LSE, T_DOUT, T_DQ, T_DK, T_DV, T_MASK, T_COUNT };

static int alloc_all(struct ldm_ctx *c, const struct acase *k, int dtype, int off, struct tens *t)
{
    int64_t N = k->N, H = k->H;
    const int64_t sq[3] = {N, k->Lq, H * k->Dh}, sk[3] = {N, k->Lk, H * k->Dh};
    const int64_t sv[3] = {N, k->Lk, H * k->Dv}, so[3] = {N, k->Lq, H * k->Dv};
    const int64_t sl[3] = {N, H, k->Lq}, sm[2] = {N, k->Lk};
    int rc = tens_new(c, &t[T_Q], "q", dtype, 3, sq, off);
    if (!rc) rc = tens_new(c, &t[T_K], "k", dtype, 3, sk, off);
    if (!rc) rc = tens_new(c, &t[T_V], "v", dtype, 3, sv, off);
    if (!rc) rc = tens_new(c, &t[T_OUT], "out", dtype, 3, so, off);
    if (!rc) rc = tens_new(c, &t[T_LSE], "lse", LDM_DT_F32, 3, sl, 0);
    if (!rc) rc = tens_new(c, &t[T_DOUT], "dout", dtype, 3, so, off);
    if (!rc) rc = tens_new(c, &t[T_DQ], "dq", dtype, 3, sq, off);
    if (!rc) rc = tens_new(c, &t[T_DK], "dk", dtype, 3, sk, off);
    if (!rc) rc = tens_new(c, &t[T_DV], "dv", dtype, 3, sv, off);
    if (!rc) rc = tens_new(c, &t[T_MASK], "key_mask", LDM_DT_U8, 2, sm, 0);
    return rc;
}

static int fwd_bwd(struct ldm_ctx *c, const struct acase *k, struct tens *t)
{
    struct ldm_attn_opts o = {.heads = k->H, .scale = k->scale, .causal = k->causal,
                              .key_mask = k->mask ? &t[T_MASK].t : NULL};
    int rc = ldm_attention_forward(c, &t[T_OUT].t, &t[T_LSE].t, &t[T_Q].t, &t[T_K].t, &t[T_V].t,
                                   &o);
    if (!rc)
        rc = ldm_attention_backward(c, k->grads & G_DQ ? &t[T_DQ].t : NULL,
                                    k->grads & G_DK ? &t[T_DK].t : NULL,
                                    k->grads & G_DV ? &t[T_DV].t : NULL, &t[T_DOUT].t, &t[T_Q].t,
                                    &t[T_K].t, &t[T_V].t, &t[T_OUT].t, &t[T_LSE].t, &o);
    return rc;
}

static int put_grads(struct ldm_ctx *c, struct tens *t, struct hostset *h)
{
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++)
        rc = tens_put(c, &t[T_DQ + i], h->g0[i]);
    return rc;
}

/* Forward and backward of case k on c in `dtype`; results into h. With
 * `twice`, the backward runs a second time from the same starting
 * gradients and *same tells whether its bytes equal the first run's. */
static int run_case(struct ldm_ctx *c, const struct acase *k, int dtype, int off,
                    struct hostset *h, int twice, int *same)
{
    struct tens t[T_COUNT];
    memset(t, 0, sizeof t);
    int rc = alloc_all(c, k, dtype, off, t);
    size_t ws = 0;
    if (!rc) {
        ldm_ctx_plan_begin(c);
        rc = fwd_bwd(c, k, t);
        ldm_ctx_plan_end(c, &ws);
    }
    if (!rc) rc = ldm_ctx_reserve(c, ws);
    if (!rc) rc = tens_put(c, &t[T_Q], h->q);
    if (!rc) rc = tens_put(c, &t[T_K], h->k);
    if (!rc) rc = tens_put(c, &t[T_V], h->v);
    if (!rc) rc = tens_put(c, &t[T_DOUT], h->dout);
    if (!rc) rc = ldm_ctx_upload(c, t[T_MASK].t.data, h->mask, (size_t)k->N * k->Lk);
    if (!rc) rc = tens_poison(c, &t[T_OUT]);
    if (!rc) rc = tens_poison(c, &t[T_LSE]);
    if (!rc) rc = put_grads(c, t, h);
    if (!rc) rc = fwd_bwd(c, k, t);
    if (!rc) rc = tens_get(c, &t[T_OUT], h->out, NULL);
    if (!rc) rc = tens_get(c, &t[T_LSE], h->lse, NULL);
    for (int i = 0; i < 3 && !rc; i++)
        rc = tens_get(c, &t[T_DQ + i], h->g[i], twice ? h->graw[i] : NULL);
    if (!rc && twice) {
        *same = 1;
        rc = put_grads(c, t, h);
        if (!rc) rc = fwd_bwd(c, k, t);
        for (int i = 0; i < 3 && !rc; i++) {
            size_t bytes = ldm_tensor_nbytes(&t[T_DQ + i].t);
            void *again = malloc(bytes ? bytes : 1);
            float *tmp = malloc((ldm_tensor_numel(&t[T_DQ + i].t) + 1) * sizeof(float));
            rc = again && tmp ? tens_get(c, &t[T_DQ + i], tmp, again) : LDM_ENOMEM;
            if (!rc && memcmp(again, h->graw[i], bytes) != 0)
                *same = 0;
            free(again);
            free(tmp);
        }
    }
    for (int i = 0; i < T_COUNT; i++)
        tens_free(c, &t[i]);
    return rc;
}

/* ---- comparison ----------------------------------------------------------------------------- */

struct cmp {
    double err;   /* max|a − ref| / max|ref| (increments over base when given) */
    long bad;     /* NaN, or −inf where the reference has none (or the reverse) */
    size_t worst; /* index of the largest difference */
};

static struct cmp compare(const float *a, const float *ref, const float *base, size_t n)
{
    struct cmp r = {0.0, 0, 0};
    double maxref = 0.0, maxd = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(ref[i]) || isinf(a[i])) {
            if (!(isinf(ref[i]) && isinf(a[i]) && (ref[i] < 0) == (a[i] < 0)))
                r.bad++;
            continue;
        }
        if (isnan(a[i]) || isnan(ref[i])) {
            r.bad++;
            continue;
        }
        double b = base ? base[i] : 0.0, x = (double)a[i] - b, y = (double)ref[i] - b;
        if (fabs(y) > maxref)
            maxref = fabs(y);
        if (fabs(x - y) > maxd)
            maxd = fabs(x - y), r.worst = i;
    }
    r.err = maxd / (maxref > 1e-30 ? maxref : 1e-30);
    if (maxref <= 1e-30 && maxd <= 1e-30)
        r.err = 0.0;
    return r;
}

static double tolerance(int dtype)
{
    return dtype == LDM_DT_F32 ? 1e-5 : dtype == LDM_DT_BF16 ? 2e-2 : 5e-3;
}

static const char *dtype_name(int dtype)
{
    return dtype == LDM_DT_F32 ? "f32" : dtype == LDM_DT_BF16 ? "bf16" : "f16";
}

/* The kernels the case should take (attention.cu's choice). */
static const char *path_name(const struct acase *k)
{
    int w = k->Dh;
    int tc = k->dtype != LDM_DT_F32 && k->Dh == k->Dv && k->offset == 0 &&
             (w == 40 || w == 64 || w == 80 || w == 128 || w == 160);
    return tc ? "tensor cores" : "fma";
}

/* ---- a case ---------------------------------------------------------------------------------- */

static void host_free(struct hostset *h)
{
    free(h->q), free(h->k), free(h->v), free(h->dout), free(h->mask);
    free(h->out), free(h->lse);
    for (int i = 0; i < 3; i++)
        free(h->g0[i]), free(h->g[i]), free(h->graw[i]);
    memset(h, 0, sizeof *h);
}

/* Outputs of size n (+1 so that empty tensors allocate). */
static void host_outputs(struct hostset *h, const size_t *sz)
{
    h->out = malloc((sz[3] + 1) * sizeof(float));
    h->lse = malloc((sz[4] + 1) * sizeof(float));
    for (int i = 0; i < 3; i++) {
        h->g[i] = malloc((sz[i] + 1) * sizeof(float));
        h->graw[i] = malloc((sz[i] + 1) * sizeof(float));
    }
}

static int one_case(struct ldm_ctx *cpu, struct ldm_ctx *gpu, const struct acase *k, int idx)
{
    size_t nq = (size_t)k->N * k->Lq * k->H * k->Dh, nk = (size_t)k->N * k->Lk * k->H * k->Dh;
    size_t nv = (size_t)k->N * k->Lk * k->H * k->Dv, no = (size_t)k->N * k->Lq * k->H * k->Dv;
    size_t nl = (size_t)k->N * k->H * k->Lq, sz[5] = {nq, nk, nv, no, nl};
    struct hostset in = {0}, ref = {0}, dev = {0};
    in.q = draw(nq, 1.5f, k->dtype), in.k = draw(nk, 1.5f, k->dtype);
    in.v = draw(nv, 1.0f, k->dtype), in.dout = draw(no, 1.0f, k->dtype);
    in.g0[0] = draw(nq, 0.01f, k->dtype), in.g0[1] = draw(nk, 0.01f, k->dtype);
    in.g0[2] = draw(nv, 0.01f, k->dtype), in.mask = draw_mask(k);
    ref = in, dev = in;
    host_outputs(&ref, sz);
    host_outputs(&dev, sz);
    int same = 1;
    int rc = run_case(cpu, k, LDM_DT_F32, 0, &ref, 0, NULL);
    if (!rc)
        rc = run_case(gpu, k, k->dtype, k->offset, &dev, 1, &same);
    char what[160];
    char sc[32] = "";
    if (k->scale != 0.0f)
        snprintf(sc, sizeof sc, " scale=%g", (double)k->scale);
    snprintf(what, sizeof what, "%s N=%d Lq=%d Lk=%d H=%d Dh=%d Dv=%d%s%s%s%s (%s)",
             dtype_name(k->dtype), k->N, k->Lq, k->Lk, k->H, k->Dh, k->Dv,
             k->causal ? " causal" : "", k->mask ? " masked" : "",
             k->offset ? " unaligned" : "", sc, path_name(k));
    int fail = 0;
    if (rc) {
        printf("FAIL cuda attention #%d %s: %s\n", idx, what, ldm_errmsg());
        fail = 1;
    } else {
        const char *names[5] = {"out", "lse", "dq", "dk", "dv"};
        struct cmp r[5];
        r[0] = compare(dev.out, ref.out, NULL, no);
        r[1] = compare(dev.lse, ref.lse, NULL, nl);
        for (int i = 0; i < 3; i++)
            r[2 + i] = compare(dev.g[i], ref.g[i], in.g0[i], sz[i]);
        double tol = tolerance(k->dtype);
        char line[400];
        int at = 0;
        for (int i = 0; i < 5; i++) {
            int bad = r[i].bad || r[i].err > tol;
            fail |= bad;
            at += snprintf(line + at, sizeof line - (size_t)at, " %s %.1e%s", names[i], r[i].err,
                           r[i].bad ? "(non-finite mismatch)" : bad ? "(!)" : "");
            if (bad && !r[i].bad) {
                size_t w = r[i].worst;
                const float *a = i == 0 ? dev.out : i == 1 ? dev.lse : dev.g[i - 2];
                const float *b = i == 0 ? ref.out : i == 1 ? ref.lse : ref.g[i - 2];
                at += snprintf(line + at, sizeof line - (size_t)at, "[@%zu %g vs %g]", w,
                               (double)a[w], (double)b[w]);
            }
        }
        fail |= !same;
        printf("%s cuda attention #%d %s:%s%s\n", fail ? "FAIL" : "ok  ", idx, what, line,
               same ? "" : " backward not deterministic");
    }
    for (int i = 0; i < 3; i++)
        free(ref.g[i]), free(ref.graw[i]);
    free(ref.out), free(ref.lse);
    host_free(&dev);
    return fail;
}

int main(void)
{
    int count = 0;
    if (ldm_cuda_device_count(&count) || count == 0) {
        printf("SKIP cuda-attn: no CUDA device\n");
        return 0;
    }
    struct ldm_ctx *cpu = NULL, *gpu = NULL;
    if (ldm_ctx_open(&cpu, "cpu", 0) || ldm_ctx_open(&gpu, "cuda", 0)) {
        printf("FAIL cuda attention: opening the contexts: %s\n", ldm_errmsg());
        ldm_ctx_close(&cpu);
        return 1;
    }
    int n = (int)(sizeof cases / sizeof cases[0]), failed = 0;
    for (int i = 0; i < n; i++)
        failed += one_case(cpu, gpu, &cases[i], i);
    printf("cuda attention: %d of %d cases passed\n", n - failed, n);
    ldm_ctx_close(&gpu);
    ldm_ctx_close(&cpu);
    return failed ? 1 : 0;
}

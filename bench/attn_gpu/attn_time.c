/* attn_time.c — times the CUDA backend's attention in BF16 on the SD-1.5
 * shapes (N = 8, H = 8; self-attention at 4096/40, 1024/80, 256/160, the
 * same queries against 77 text tokens, and 4096/64 as SD-2/SDXL heads).
 *
 * Each shape: random inputs (never zeros), 3 warm-up rounds, then 20
 * rounds of forward then backward with CUDA events on the context's
 * stream; prints one line a shape with the medians:
 *   ours N H Lq Lk D fwd_ms fwdbwd_ms
 * (read by sdpa.py, which adds PyTorch's times and the ratios). Exits 1
 * when an op fails, 0 with "SKIP" without a device.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "nn/backend.h"
#include "nn/cuda/cuda_int.h"
#include "nn/device.h"

#define ROUNDS 20
#define WARMUP 3

struct shape {
    int N, H, Lq, Lk, D;
};

static const struct shape shapes[] = {
    {8, 8, 4096, 4096, 40}, {8, 8, 1024, 1024, 80}, {8, 8, 256, 256, 160},
    {8, 8, 4096, 77, 40},   {8, 8, 1024, 77, 80},   {8, 8, 256, 77, 160},
    {8, 8, 4096, 4096, 64},
};

enum { Q, K, V, OUT, LSE, DOUT, DQ, DK, DV, NT };

static uint32_t seed = 12345u;

/* Tensor t (already shaped) on c, filled with U(-1, 1) rounded to its dtype. */
static int fill(struct ldm_ctx *c, struct ldm_tensor *t)
{
    size_t n = ldm_tensor_numel(t), bytes = ldm_tensor_nbytes(t);
    int rc = ldm_ctx_alloc(c, bytes, &t->data);
    float *f = malloc(n * sizeof *f);
    void *h = malloc(bytes);
    if (!rc && (!f || !h))
        rc = LDM_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        f[i] = (float)(seed >> 8) / 8388608.0f - 1.0f;
    }
    if (!rc)
        rc = ldm_convert(h, t->dtype, f, LDM_DT_F32, n);
    if (!rc)
        rc = ldm_ctx_upload(c, t->data, h, bytes);
    free(f);
    free(h);
    return rc;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median(float *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    return v[n / 2];
}

/* One forward and backward, with events e[0] before, e[1] between, e[2] after. */
static int round_once(struct ldm_ctx *c, struct ldm_tensor *t, const struct ldm_attn_opts *o,
                      cudaEvent_t *e)
{
    cudaStream_t st = ldm_cuda_stream(c);
    cudaEventRecord(e[0], st);
    int rc = ldm_attention_forward(c, &t[OUT], &t[LSE], &t[Q], &t[K], &t[V], o);
    cudaEventRecord(e[1], st);
    if (!rc)
        rc = ldm_attention_backward(c, &t[DQ], &t[DK], &t[DV], &t[DOUT], &t[Q], &t[K], &t[V],
                                    &t[OUT], &t[LSE], o);
    cudaEventRecord(e[2], st);
    if (!rc && cudaEventSynchronize(e[2]) != cudaSuccess)
        rc = ldm_fail(LDM_EIO, "attention timing: %s", cudaGetErrorString(cudaGetLastError()));
    return rc;
}

static int time_shape(struct ldm_ctx *c, const struct shape *s)
{
    struct ldm_tensor t[NT];
    int64_t hd = (int64_t)s->H * s->D;
    const int64_t sq[3] = {s->N, s->Lq, hd}, sk[3] = {s->N, s->Lk, hd}, sl[3] = {s->N, s->H, s->Lq};
    const int64_t *shp[NT] = {sq, sk, sk, sq, sl, sq, sq, sk, sk};
    memset(t, 0, sizeof t);
    int rc = 0;
    for (int i = 0; i < NT && !rc; i++) {
        rc = ldm_tensor_set(&t[i], "t", i == LSE ? LDM_DT_F32 : LDM_DT_BF16, 3, shp[i]);
        if (!rc)
            rc = fill(c, &t[i]);
    }
    struct ldm_attn_opts o = {.heads = s->H};
    size_t ws = 0;
    cudaEvent_t e[3];
    float fwd[ROUNDS], all[ROUNDS];
    for (int i = 0; i < 3; i++)
        cudaEventCreate(&e[i]);
    if (!rc) {
        ldm_ctx_plan_begin(c);
        rc = round_once(c, t, &o, e);
        ldm_ctx_plan_end(c, &ws);
    }
    if (!rc)
        rc = ldm_ctx_reserve(c, ws);
    for (int r = 0; r < WARMUP + ROUNDS && !rc; r++) {
        rc = round_once(c, t, &o, e);
        float a = 0.0f, b = 0.0f;
        cudaEventElapsedTime(&a, e[0], e[1]);
        cudaEventElapsedTime(&b, e[0], e[2]);
        if (r >= WARMUP)
            fwd[r - WARMUP] = a, all[r - WARMUP] = b;
    }
    if (!rc)
        printf("ours %d %d %d %d %d %.4f %.4f\n", s->N, s->H, s->Lq, s->Lk, s->D,
               (double)median(fwd, ROUNDS), (double)median(all, ROUNDS));
    for (int i = 0; i < 3; i++)
        cudaEventDestroy(e[i]);
    for (int i = 0; i < NT; i++)
        ldm_ctx_free(c, t[i].data);
    return rc;
}

int main(void)
{
    int count = 0;
    if (ldm_cuda_device_count(&count) || count == 0) {
        printf("SKIP attn-time: no CUDA device\n");
        return 0;
    }
    struct ldm_ctx *c = NULL;
    if (ldm_ctx_open(&c, "cuda", 0)) {
        fprintf(stderr, "attn-time: %s\n", ldm_errmsg());
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0] && !rc; i++)
        rc = time_shape(c, &shapes[i]);
    if (rc)
        fprintf(stderr, "attn-time: %s\n", ldm_errmsg());
    ldm_ctx_close(&c);
    return rc ? 1 : 0;
}

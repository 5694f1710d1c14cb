/* ringtest.c — one trainer rank's collectives, as a process of its own: the
 * rendezvous, then all-reduces checked against a direct sum and timed.
 *
 *   ringtest --rank R --world W --rdv ENDPOINT --data ENDPOINT [--n FLOATS]
 *            [--iters K] [--msg BYTES] [--timeout MS] [--run ID] [--nccl [--device N]]
 *
 * Prints one line per rank:
 *   rank=R world=W n=N exact=1 sum=FNV avg=FNV ms=T algbw_GBps=A busbw_GBps=B
 * exact: whole-number inputs summed to exactly their direct sum; sum and avg:
 * FNV-1a hashes of the results of random inputs (equal on every rank when
 * the results are bit-identical); ms: one all-reduce of N floats, averaged
 * over K; algbw = 4N bytes / time, busbw = algbw · 2(W−1)/W (as nccl-tests).
 * --nccl runs the same on GPU buffers through NCCL; device memory comes from
 * libcudart, opened at run time so the tool builds without CUDA.
 * Exit status: 0, 1 for a failed call or a wrong result, 2 for bad usage.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "err.h"
#include "trainerd/comm.h"

/* The rule for test tools links libldm.a alone, and trainerd's modules are
 * not in it: they are compiled into this tool from their sources. */
#include "trainerd/comm.c"
#include "trainerd/rdv.c"
#include "trainerd/ring.c"

struct args {
    int rank, world, iters, timeout_ms, nccl, device;
    const char *rdv, *data, *run;
    size_t n, msg;
};

/* The few CUDA runtime calls --nccl needs (cudaMemcpyKind: 1 = host to device, 2 = back). */
struct cudart {
    int (*malloc_)(void **p, size_t bytes);
    int (*free_)(void *p);
    int (*memcpy_)(void *dst, const void *src, size_t bytes, int kind);
    int (*set_device)(int device);
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static float val(uint64_t seed, int rank, size_t i)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + (uint64_t)rank * 0xbf58476d1ce4e5b9ull + i;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ull << 23) - 1.0);
}

static float whole(int rank, size_t i)
{
    return (float)((long)((i * 7 + (size_t)rank * 13) % 1000) - 500);
}

static uint64_t fnv(const float *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static int usage(void)
{
    fprintf(stderr, "usage: ringtest --rank R --world W --rdv ENDPOINT --data ENDPOINT [--n N] "
                    "[--iters K] [--msg BYTES] [--timeout MS] [--run ID] [--nccl [--device N]]\n");
    return 2;
}

static int parse(int argc, char **argv, struct args *a)
{
    *a = (struct args){.rank = -1, .world = -1, .iters = 10, .timeout_ms = 30000,
                       .run = "ringtest", .n = 10000000};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--nccl")) {
            a->nccl = 1;
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (!strcmp(k, "--rank")) a->rank = atoi(v);
        else if (!strcmp(k, "--world")) a->world = atoi(v);
        else if (!strcmp(k, "--rdv")) a->rdv = v;
        else if (!strcmp(k, "--data")) a->data = v;
        else if (!strcmp(k, "--run")) a->run = v;
        else if (!strcmp(k, "--n")) a->n = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--iters")) a->iters = atoi(v);
        else if (!strcmp(k, "--msg")) a->msg = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--timeout")) a->timeout_ms = atoi(v);
        else if (!strcmp(k, "--device")) a->device = atoi(v);
        else return usage();
    }
    if (a->world < 1 || a->rank < 0 || a->rank >= a->world || !a->rdv || (!a->data && !a->nccl) ||
        a->iters < 1)
        return usage();
    return 0;
}

static int load_cudart(struct cudart *c)
{
    static const char *const names[] = {"libcudart.so", "libcudart.so.13", "libcudart.so.12"};
    void *h = NULL;
    for (size_t i = 0; !h && i < sizeof names / sizeof names[0]; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return ldm_fail(LDM_EUNSUPPORTED, "--nccl: cannot load libcudart: %s", dlerror());
    *(void **)&c->malloc_ = dlsym(h, "cudaMalloc");
    *(void **)&c->free_ = dlsym(h, "cudaFree");
    *(void **)&c->memcpy_ = dlsym(h, "cudaMemcpy");
    *(void **)&c->set_device = dlsym(h, "cudaSetDevice");
    if (!c->malloc_ || !c->free_ || !c->memcpy_ || !c->set_device)
        return ldm_fail(LDM_EUNSUPPORTED, "--nccl: libcudart lacks cudaMalloc/cudaMemcpy");
    return 0;
}

/* Where the collectives run: host memory (ring) or device memory (NCCL). */
struct bufs {
    const struct args *a;
    struct cudart cu;
    float *host, *dev;
};

static float *target(struct bufs *b)
{
    return b->a->nccl ? b->dev : b->host;
}

static int to_target(struct bufs *b)
{
    if (b->a->nccl && b->cu.memcpy_(b->dev, b->host, b->a->n * sizeof(float), 1) != 0)
        return ldm_fail(LDM_EIO, "cudaMemcpy to the device failed");
    return 0;
}

static int from_target(struct bufs *b)
{
    if (b->a->nccl && b->cu.memcpy_(b->host, b->dev, b->a->n * sizeof(float), 2) != 0)
        return ldm_fail(LDM_EIO, "cudaMemcpy from the device failed");
    return 0;
}

/* Whole numbers: exact; random numbers: sum and average hashed for comparison. */
static int check_results(struct ldm_comm *c, struct bufs *b, int *exact, uint64_t *hsum,
                         uint64_t *havg)
{
    const struct args *a = b->a;
    size_t n = a->n;
    for (size_t i = 0; i < n; i++)
        b->host[i] = whole(a->rank, i);
    int rc = to_target(b);
    if (!rc)
        rc = ldm_comm_allreduce(c, target(b), n, LDM_REDUCE_SUM);
    if (!rc)
        rc = from_target(b);
    *exact = 1;
    for (size_t i = 0; !rc && i < n && *exact; i++) {
        float s = 0;
        for (int r = 0; r < a->world; r++)
            s += whole(r, i);
        if (b->host[i] != s) {
            *exact = 0;
            fprintf(stderr, "rank %d: element %zu is %g, the direct sum %g\n", a->rank, i,
                    b->host[i], s);
        }
    }
    for (int op = 0; !rc && op < 2; op++) {
        for (size_t i = 0; i < n; i++)
            b->host[i] = val(1, a->rank, i);
        rc = to_target(b);
        if (!rc)
            rc = ldm_comm_allreduce(c, target(b), n, op);
        if (!rc)
            rc = from_target(b);
        if (!rc)
            *(op ? havg : hsum) = fnv(b->host, n);
    }
    return rc;
}

static int timed(struct ldm_comm *c, struct bufs *b, double *sec)
{
    int rc = ldm_comm_allreduce(c, target(b), b->a->n, LDM_REDUCE_SUM); /* warm-up */
    if (!rc)
        rc = ldm_comm_barrier(c);
    double t0 = now_s();
    for (int k = 0; !rc && k < b->a->iters; k++)
        rc = ldm_comm_allreduce(c, target(b), b->a->n, LDM_REDUCE_SUM);
    *sec = (now_s() - t0) / b->a->iters;
    return rc;
}

static int run(const struct args *a, void *zctx)
{
    struct bufs b = {.a = a};
    b.host = malloc((a->n + 1) * sizeof(float));
    if (!b.host)
        return ldm_fail(LDM_ENOMEM, "%zu floats", a->n);
    int rc = 0;
    if (a->nccl) {
        rc = load_cudart(&b.cu);
        if (!rc && (b.cu.set_device(a->device) != 0 ||
                    b.cu.malloc_((void **)&b.dev, (a->n + 1) * sizeof(float)) != 0))
            rc = ldm_fail(LDM_EIO, "cudaMalloc of %zu floats on device %d failed", a->n,
                          a->device);
    }
    struct ldm_rdv_opts ro = {.endpoint = a->rdv, .run_id = a->run, .timeout_ms = a->timeout_ms};
    struct ldm_comm_opts co = {.kind = a->nccl ? LDM_COMM_NCCL : LDM_COMM_RING,
                               .timeout_ms = a->timeout_ms, .max_msg_bytes = a->msg,
                               .device = a->device};
    struct ldm_comm *c = NULL;
    int exact = 0;
    uint64_t hsum = 0, havg = 0;
    double sec = 0;
    if (!rc)
        rc = ldm_comm_setup(&c, zctx, a->rank, a->world, a->data, &ro, &co);
    if (!rc)
        rc = check_results(c, &b, &exact, &hsum, &havg);
    if (!rc)
        rc = timed(c, &b, &sec);
    if (!rc) {
        double algbw = (double)a->n * sizeof(float) / sec / 1e9;
        printf("rank=%d world=%d n=%zu exact=%d sum=%016llx avg=%016llx ms=%.3f algbw_GBps=%.3f "
               "busbw_GBps=%.3f\n",
               a->rank, a->world, a->n, exact, (unsigned long long)hsum,
               (unsigned long long)havg, sec * 1e3, algbw,
               algbw * 2.0 * (a->world - 1) / a->world);
        rc = exact ? 0 : ldm_fail(LDM_ERANGE, "rank %d: results differ from the direct sum", a->rank);
    }
    ldm_comm_close(&c);
    if (b.dev)
        b.cu.free_(b.dev);
    free(b.host);
    return rc;
}

int main(int argc, char **argv)
{
    struct args a;
    int rc = parse(argc, argv, &a);
    if (rc)
        return rc;
    void *zctx = zmq_ctx_new();
    rc = run(&a, zctx);
    if (rc)
        fprintf(stderr, "ringtest: rank %d: %s: %s\n", a.rank, ldm_strerror(rc), ldm_errmsg());
    zmq_ctx_term(zctx);
    return rc ? 1 : 0;
}

/* nccl.cu — NCCL collectives for GPU ranks (the contract is nn/nccl.h).
 *
 * libnccl.so.2 is opened at the first call and its entry points looked up
 * by name, so nothing links against it. Communicators are non-blocking:
 * every NCCL call that answers ncclInProgress is waited for by polling
 * ncclCommGetAsyncError against the communicator's timeout, and a timeout
 * aborts the communicator rather than hang.
 *
 * Attached to a compute context, a communicator owns a comm stream and two
 * events: `ready` (recorded on the compute stream before a collective, the
 * comm stream waits on it) and `done` (recorded on the comm stream at a
 * sync, the compute stream waits on it). Collectives given stream NULL then
 * run on the comm stream, so the backward's kernels and the gradient
 * buckets' all-reduces overlap on the device.
 */
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/cuda/cuda_int.h"

extern "C" {
#include "err.h"
#include "nn/nccl.h"
}

static_assert(sizeof(ncclUniqueId) == LDM_NCCL_ID_BYTES, "ncclUniqueId is not 128 bytes");

/* The NCCL entry points we use, found in the library at run time. */
struct nccl_api {
    decltype(&ncclGetVersion) GetVersion;
    decltype(&ncclGetUniqueId) GetUniqueId;
    decltype(&ncclCommInitRankConfig) CommInitRankConfig;
    decltype(&ncclCommGetAsyncError) CommGetAsyncError;
    decltype(&ncclCommFinalize) CommFinalize;
    decltype(&ncclCommDestroy) CommDestroy;
    decltype(&ncclCommAbort) CommAbort;
    decltype(&ncclGetErrorString) GetErrorString;
    decltype(&ncclGetLastError) GetLastError;
    decltype(&ncclAllReduce) AllReduce;
    decltype(&ncclReduceScatter) ReduceScatter;
    decltype(&ncclAllGather) AllGather;
    decltype(&ncclBroadcast) Broadcast;
    decltype(&ncclReduce) Reduce;
    decltype(&ncclGroupStart) GroupStart;
    decltype(&ncclGroupEnd) GroupEnd;
};

static struct nccl_api api;
static int api_ok;
static char api_msg[512];
static pthread_once_t api_once = PTHREAD_ONCE_INIT;

template <typename F> static bool api_sym(void *h, F *slot, const char *name)
{
    *slot = (F)dlsym(h, name);
    if (!*slot)
        snprintf(api_msg, sizeof api_msg, "libnccl has no %s (NCCL 2.14 or later is needed)", name);
    return *slot != NULL;
}

static void api_load(void)
{
    void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(api_msg, sizeof api_msg, "cannot load libnccl.so.2: %s", dlerror());
        return;
    }
    api_ok = api_sym(h, &api.GetVersion, "ncclGetVersion") &&
             api_sym(h, &api.GetUniqueId, "ncclGetUniqueId") &&
             api_sym(h, &api.CommInitRankConfig, "ncclCommInitRankConfig") &&
             api_sym(h, &api.CommGetAsyncError, "ncclCommGetAsyncError") &&
             api_sym(h, &api.CommFinalize, "ncclCommFinalize") &&
             api_sym(h, &api.CommDestroy, "ncclCommDestroy") &&
             api_sym(h, &api.CommAbort, "ncclCommAbort") &&
             api_sym(h, &api.GetErrorString, "ncclGetErrorString") &&
             api_sym(h, &api.GetLastError, "ncclGetLastError") &&
             api_sym(h, &api.AllReduce, "ncclAllReduce") &&
             api_sym(h, &api.ReduceScatter, "ncclReduceScatter") &&
             api_sym(h, &api.AllGather, "ncclAllGather") &&
             api_sym(h, &api.Broadcast, "ncclBroadcast") &&
             api_sym(h, &api.Reduce, "ncclReduce") &&
             api_sym(h, &api.GroupStart, "ncclGroupStart") &&
             api_sym(h, &api.GroupEnd, "ncclGroupEnd");
}

static int api_get(void)
{
    pthread_once(&api_once, api_load);
    if (!api_ok)
        return ldm_fail(LDM_EUNSUPPORTED, "NCCL: %s", api_msg);
    return 0;
}

struct ldm_nccl {
    ncclComm_t comm; /* NULL once aborted */
    int rank, world, device, timeout_ms;
    float *scratch;  /* one device float for the barrier */
    int err_rc;      /* the error that broke the communicator, 0 while usable */
    char err_msg[512];
    /* attached to a compute context (ldm_nccl_attach); all NULL until then */
    cudaStream_t compute;   /* the context's stream: not ours */
    cudaStream_t own;       /* the comm stream */
    cudaEvent_t ready;      /* compute -> comm: the inputs are written */
    cudaEvent_t done;       /* comm -> compute: the results are there */
};

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void pause_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* Record a failure that leaves the communicator unusable: abort it, keep the text. */
static int broken(struct ldm_nccl *nc, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int broken(struct ldm_nccl *nc, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nc->err_msg, sizeof nc->err_msg, fmt, ap);
    va_end(ap);
    nc->err_rc = code;
    if (nc->comm)
        api.CommAbort(nc->comm);
    nc->comm = NULL;
    return ldm_fail(code, "%s", nc->err_msg);
}

static int usable(struct ldm_nccl *nc)
{
    if (!nc)
        return ldm_fail(LDM_EINVAL, "NCCL: no communicator");
    if (nc->err_rc)
        return ldm_fail(nc->err_rc, "%s", nc->err_msg);
    return 0;
}

/* Wait until the communicator has no call in progress. */
static int wait_ready(struct ldm_nccl *nc, const char *what)
{
    long long deadline = now_us() + (long long)nc->timeout_ms * 1000;
    for (;;) {
        ncclResult_t st = ncclSuccess;
        ncclResult_t r = api.CommGetAsyncError(nc->comm, &st);
        if (r != ncclSuccess)
            st = r;
        if (st == ncclSuccess)
            return 0;
        if (st != ncclInProgress)
            return broken(nc, LDM_EIO, "NCCL rank %d of %d: %s: %s (%s)", nc->rank, nc->world,
                          what, api.GetErrorString(st), api.GetLastError(nc->comm));
        if (now_us() > deadline)
            return broken(nc, LDM_ETIMEOUT,
                          "NCCL rank %d of %d: %s did not finish within %d ms (a rank is gone "
                          "or never joined)",
                          nc->rank, nc->world, what, nc->timeout_ms);
        pause_us(100);
    }
}

/* The result of an NCCL call: 0, a wait for one in progress, or the error. */
static int nccl_done(struct ldm_nccl *nc, ncclResult_t r, const char *what, const char *file,
                     int line)
{
    if (r == ncclInProgress)
        return wait_ready(nc, what);
    if (r != ncclSuccess)
        return broken(nc, LDM_EIO, "NCCL rank %d of %d: %s at %s:%d: %s (%s)", nc->rank,
                      nc->world, what, file, line, api.GetErrorString(r),
                      api.GetLastError(nc->comm));
    return 0;
}
#define NCCL_CHECK(nc, call) nccl_done((nc), (call), #call, __FILE__, __LINE__)

extern "C" int ldm_nccl_version(int *version)
{
    *version = 0;
    int rc = api_get();
    if (rc)
        return rc;
    ncclResult_t r = api.GetVersion(version);
    if (r != ncclSuccess)
        return ldm_fail(LDM_EIO, "ncclGetVersion: %s", api.GetErrorString(r));
    return 0;
}

extern "C" int ldm_nccl_unique_id(unsigned char id[LDM_NCCL_ID_BYTES])
{
    int rc = api_get();
    if (rc)
        return rc;
    ncclUniqueId u;
    ncclResult_t r = api.GetUniqueId(&u);
    if (r != ncclSuccess)
        return ldm_fail(LDM_EIO, "ncclGetUniqueId: %s", api.GetErrorString(r));
    memcpy(id, u.internal, LDM_NCCL_ID_BYTES);
    return 0;
}

static int open_device(struct ldm_nccl *nc)
{
    cudaError_t e = cudaSetDevice(nc->device);
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&nc->scratch, sizeof(float));
    if (e != cudaSuccess)
        return ldm_fail(LDM_EIO, "NCCL rank %d: CUDA device %d: %s", nc->rank, nc->device,
                        cudaGetErrorString(e));
    return 0;
}

extern "C" int ldm_nccl_open(struct ldm_nccl **out, int rank, int world,
                             const unsigned char id[LDM_NCCL_ID_BYTES], int device,
                             int timeout_ms)
{
    *out = NULL;
    if (world < 1 || rank < 0 || rank >= world || device < 0)
        return ldm_fail(LDM_EINVAL, "NCCL: rank %d of world %d on device %d", rank, world,
                        device);
    int rc = api_get();
    if (rc)
        return rc;
    struct ldm_nccl *nc = (struct ldm_nccl *)calloc(1, sizeof *nc);
    if (!nc)
        return ldm_fail(LDM_ENOMEM, "NCCL: communicator");
    nc->rank = rank;
    nc->world = world;
    nc->device = device;
    nc->timeout_ms = timeout_ms > 0 ? timeout_ms : 60000;
    rc = open_device(nc);
    if (!rc) {
        ncclUniqueId u;
        memcpy(u.internal, id, LDM_NCCL_ID_BYTES);
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;
        rc = NCCL_CHECK(nc, api.CommInitRankConfig(&nc->comm, world, u, rank, &cfg));
    }
    if (rc) {
        ldm_nccl_close(&nc);
        return rc;
    }
    *out = nc;
    return 0;
}

extern "C" void ldm_nccl_close(struct ldm_nccl **pnc)
{
    struct ldm_nccl *nc = pnc ? *pnc : NULL;
    if (!nc)
        return;
    if (nc->comm) { /* finalize flushes what is queued; if that fails or hangs, abort */
        ncclResult_t r = api.CommFinalize(nc->comm);
        long long deadline = now_us() + (long long)nc->timeout_ms * 1000;
        while (r == ncclInProgress && now_us() < deadline) {
            pause_us(100);
            if (api.CommGetAsyncError(nc->comm, &r) != ncclSuccess)
                r = ncclInternalError;
        }
        if (r == ncclSuccess)
            api.CommDestroy(nc->comm);
        else
            api.CommAbort(nc->comm);
    }
    if (nc->own)
        cudaStreamDestroy(nc->own);
    if (nc->ready)
        cudaEventDestroy(nc->ready);
    if (nc->done)
        cudaEventDestroy(nc->done);
    if (nc->scratch)
        cudaFree(nc->scratch);
    free(nc);
    *pnc = NULL;
}

extern "C" int ldm_nccl_attach(struct ldm_nccl *nc, const struct ldm_ctx *ctx)
{
    int rc = usable(nc);
    if (rc)
        return rc;
    if (!ctx || ctx->device != LDM_DEV_CUDA || ctx->index != nc->device)
        return ldm_fail(LDM_EINVAL, "NCCL rank %d: attach: not a context on cuda:%d", nc->rank,
                        nc->device);
    if (nc->own)
        return ldm_fail(LDM_EINVAL, "NCCL rank %d: attached already", nc->rank);
    const char *op = "NCCL attach";
    CU_TRY(op, cudaSetDevice(nc->device));
    CU_TRY(op, cudaStreamCreateWithFlags(&nc->own, cudaStreamNonBlocking));
    CU_TRY(op, cudaEventCreateWithFlags(&nc->ready, cudaEventDisableTiming));
    CU_TRY(op, cudaEventCreateWithFlags(&nc->done, cudaEventDisableTiming));
    nc->compute = ldm_cuda_stream(ctx);
    return 0;
}

/* The stream a collective runs on: the caller's, or, for NULL on an attached
 * communicator, the comm stream once it waits for what the compute stream
 * has queued so far. */
static int stream_for(struct ldm_nccl *nc, void *stream, cudaStream_t *s)
{
    *s = (cudaStream_t)stream;
    if (stream || !nc->own)
        return 0;
    const char *op = "NCCL order";
    CU_TRY(op, cudaEventRecord(nc->ready, nc->compute));
    CU_TRY(op, cudaStreamWaitEvent(nc->own, nc->ready, 0));
    *s = nc->own;
    return 0;
}

extern "C" int ldm_nccl_allreduce(struct ldm_nccl *nc, const float *send, float *recv, size_t n,
                                  int average, void *stream)
{
    cudaStream_t s;
    int rc = usable(nc);
    if (!rc)
        rc = stream_for(nc, stream, &s);
    if (rc)
        return rc;
    return NCCL_CHECK(nc, api.AllReduce(send, recv, n, ncclFloat32, average ? ncclAvg : ncclSum,
                                        nc->comm, s));
}

extern "C" int ldm_nccl_reduce_scatter(struct ldm_nccl *nc, const float *send, float *recv,
                                       size_t recv_n, int average, void *stream)
{
    cudaStream_t s;
    int rc = usable(nc);
    if (!rc)
        rc = stream_for(nc, stream, &s);
    if (rc)
        return rc;
    return NCCL_CHECK(nc, api.ReduceScatter(send, recv, recv_n, ncclFloat32,
                                            average ? ncclAvg : ncclSum, nc->comm, s));
}

extern "C" int ldm_nccl_all_gather(struct ldm_nccl *nc, const float *send, float *recv,
                                   size_t send_n, void *stream)
{
    cudaStream_t s;
    int rc = usable(nc);
    if (!rc)
        rc = stream_for(nc, stream, &s);
    if (rc)
        return rc;
    return NCCL_CHECK(nc, api.AllGather(send, recv, send_n, ncclFloat32, nc->comm, s));
}

/* One NCCL call per non-empty part of buf, in a group: reduce it to its rank
 * (reduce != 0, with `op`) or broadcast it from its rank. */
static int grouped(struct ldm_nccl *nc, float *buf, const size_t *bound, int reduce,
                   ncclRedOp_t op, void *stream)
{
    cudaStream_t s;
    int rc = usable(nc);
    if (!rc)
        rc = stream_for(nc, stream, &s);
    if (rc)
        return rc;
    ncclResult_t r = api.GroupStart();
    for (int k = 0; r == ncclSuccess && k < nc->world; k++) {
        float *p = buf + bound[k];
        size_t n = bound[k + 1] - bound[k];
        if (n && reduce)
            r = api.Reduce(p, p, n, ncclFloat32, op, k, nc->comm, s);
        else if (n)
            r = api.Broadcast(p, p, n, ncclFloat32, k, nc->comm, s);
    }
    ncclResult_t e = api.GroupEnd(); /* closes the group even after a failed call */
    return nccl_done(nc, r != ncclSuccess ? r : e,
                     reduce ? "ncclReduce per part" : "ncclBroadcast per part", __FILE__,
                     __LINE__);
}

extern "C" int ldm_nccl_reduce_scatter_at(struct ldm_nccl *nc, float *buf, const size_t *bound,
                                          int average, void *stream)
{
    return grouped(nc, buf, bound, 1, average ? ncclAvg : ncclSum, stream);
}

extern "C" int ldm_nccl_all_gather_at(struct ldm_nccl *nc, float *buf, const size_t *bound,
                                      void *stream)
{
    return grouped(nc, buf, bound, 0, ncclSum, stream);
}

extern "C" int ldm_nccl_broadcast(struct ldm_nccl *nc, const float *send, float *recv, size_t n,
                                  int root, void *stream)
{
    cudaStream_t s;
    int rc = usable(nc);
    if (rc)
        return rc;
    if (root < 0 || root >= nc->world)
        return ldm_fail(LDM_EINVAL, "NCCL broadcast: root %d of world %d", root, nc->world);
    rc = stream_for(nc, stream, &s);
    if (rc)
        return rc;
    return NCCL_CHECK(nc, api.Broadcast(send, recv, n, ncclFloat32, root, nc->comm, s));
}

/* An attached communicator's sync: the compute stream waits for the comm stream. */
static int order_back(struct ldm_nccl *nc)
{
    const char *op = "NCCL sync";
    CU_TRY(op, cudaEventRecord(nc->done, nc->own));
    CU_TRY(op, cudaStreamWaitEvent(nc->compute, nc->done, 0));
    return 0;
}

extern "C" int ldm_nccl_sync(struct ldm_nccl *nc, void *stream)
{
    int rc = usable(nc);
    if (rc)
        return rc;
    cudaStream_t s = (cudaStream_t)stream;
    if (!stream && nc->own) {
        s = nc->own;
        rc = order_back(nc);
        if (rc)
            return broken(nc, rc, "%s", ldm_errmsg());
    }
    long long deadline = now_us() + (long long)nc->timeout_ms * 1000;
    for (;;) {
        cudaError_t e = cudaStreamQuery(s);
        if (e == cudaSuccess)
            return 0;
        if (e != cudaErrorNotReady)
            return broken(nc, LDM_EIO, "NCCL rank %d of %d: stream: %s", nc->rank, nc->world,
                          cudaGetErrorString(e));
        ncclResult_t st = ncclSuccess;
        api.CommGetAsyncError(nc->comm, &st);
        if (st != ncclSuccess && st != ncclInProgress)
            return broken(nc, LDM_EIO, "NCCL rank %d of %d: %s (%s)", nc->rank, nc->world,
                          api.GetErrorString(st), api.GetLastError(nc->comm));
        if (now_us() > deadline)
            return broken(nc, LDM_ETIMEOUT,
                          "NCCL rank %d of %d: collectives did not finish within %d ms (a rank "
                          "is gone or stopped calling them)",
                          nc->rank, nc->world, nc->timeout_ms);
        pause_us(50);
    }
}

extern "C" int ldm_nccl_barrier(struct ldm_nccl *nc, void *stream)
{
    int rc = ldm_nccl_allreduce(nc, nc ? nc->scratch : NULL, nc ? nc->scratch : NULL, 1, 0,
                                stream);
    return rc ? rc : ldm_nccl_sync(nc, stream);
}

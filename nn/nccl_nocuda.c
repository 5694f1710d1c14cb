/* nccl_nocuda.c — NCCL collectives in a build without CUDA (make CUDA=0):
 * every call says so. */
#include <stddef.h>

#include "err.h"
#include "nn/nccl.h"

static int no_cuda(void)
{
    return ldm_fail(LDM_EUNSUPPORTED, "NCCL: built without CUDA");
}

int ldm_nccl_unique_id(unsigned char id[LDM_NCCL_ID_BYTES])
{
    (void)id;
    return no_cuda();
}

int ldm_nccl_open(struct ldm_nccl **out, int rank, int world,
                  const unsigned char id[LDM_NCCL_ID_BYTES], int device, int timeout_ms)
{
    (void)rank;
    (void)world;
    (void)id;
    (void)device;
    (void)timeout_ms;
    *out = NULL;
    return no_cuda();
}

int ldm_nccl_attach(struct ldm_nccl *nc, const struct ldm_ctx *ctx)
{
    (void)nc;
    (void)ctx;
    return no_cuda();
}

void ldm_nccl_close(struct ldm_nccl **nc)
{
    if (nc)
        *nc = NULL;
}

int ldm_nccl_allreduce(struct ldm_nccl *nc, const float *send, float *recv, size_t n, int average,
                       void *stream)
{
    (void)nc;
    (void)send;
    (void)recv;
    (void)n;
    (void)average;
    (void)stream;
    return no_cuda();
}

int ldm_nccl_reduce_scatter(struct ldm_nccl *nc, const float *send, float *recv, size_t recv_n,
                            int average, void *stream)
{
    (void)nc;
    (void)send;
    (void)recv;
    (void)recv_n;
    (void)average;
    (void)stream;
    return no_cuda();
}

int ldm_nccl_all_gather(struct ldm_nccl *nc, const float *send, float *recv, size_t send_n,
                        void *stream)
{
    (void)nc;
    (void)send;
    (void)recv;
    (void)send_n;
    (void)stream;
    return no_cuda();
}

int ldm_nccl_reduce_scatter_at(struct ldm_nccl *nc, float *buf, const size_t *bound, int average,
                               void *stream)
{
    (void)nc;
    (void)buf;
    (void)bound;
    (void)average;
    (void)stream;
    return no_cuda();
}

int ldm_nccl_all_gather_at(struct ldm_nccl *nc, float *buf, const size_t *bound, void *stream)
{
    (void)nc;
    (void)buf;
    (void)bound;
    (void)stream;
    return no_cuda();
}

int ldm_nccl_broadcast(struct ldm_nccl *nc, const float *send, float *recv, size_t n, int root,
                       void *stream)
{
    (void)nc;
    (void)send;
    (void)recv;
    (void)n;
    (void)root;
    (void)stream;
    return no_cuda();
}

int ldm_nccl_sync(struct ldm_nccl *nc, void *stream)
{
    (void)nc;
    (void)stream;
    return no_cuda();
}

int ldm_nccl_barrier(struct ldm_nccl *nc, void *stream)
{
    (void)nc;
    (void)stream;
    return no_cuda();
}

int ldm_nccl_version(int *version)
{
    *version = 0;
    return no_cuda();
}

/* device.cu — CUDA device discovery for the CUDA backend. */
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" {
#include "err.h"
#include "nn/device.h"
#include "nn/backend.h"
}

extern "C" int ldm_cuda_built(void)
{
    return 1;
}

extern "C" int ldm_cuda_device_count(int *count)
{
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
        *count = 0;
        return 0;
    }
    if (e != cudaSuccess)
        return ldm_fail(LDM_EIO, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
    return 0;
}

extern "C" int ldm_cuda_describe(int index, char *out, size_t size)
{
    int n = 0;
    int rc = ldm_cuda_device_count(&n);
    if (rc)
        return rc;
    if (index < 0 || index >= n)
        return ldm_fail(LDM_EINVAL, "no CUDA device %d (%d visible)", index, n);
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, index);
    if (e != cudaSuccess)
        return ldm_fail(LDM_EIO, "cudaGetDeviceProperties(%d): %s", index, cudaGetErrorString(e));
    snprintf(out, size, "cuda:%d %s sm_%d%d %.1f GiB %d SMs", index, p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.multiProcessorCount);
    return 0;
}

/* Until the CUDA op backend is built, a CUDA build offers none. */
extern "C" const struct ldm_backend *ldm_cuda_backend_get(void)
{
    return NULL;
}

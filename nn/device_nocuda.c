/* device_nocuda.c — device discovery in a build without CUDA (make CUDA=0). */
#include <stddef.h>

#include "err.h"
#include "nn/backend.h"
#include "nn/device.h"

int ldm_cuda_built(void)
{
    return 0;
}

int ldm_cuda_device_count(int *count)
{
    *count = 0;
    return 0;
}

int ldm_cuda_describe(int index, char *out, size_t size)
{
    (void)out;
    (void)size;
    return ldm_fail(LDM_EINVAL, "no CUDA device %d: built without CUDA", index);
}

const struct ldm_backend *ldm_cuda_backend_get(void)
{
    return NULL;
}

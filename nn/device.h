/* device.h — which compute devices this build and this machine offer. */
#ifndef LDM_DEVICE_H
#define LDM_DEVICE_H

#include <stddef.h>

/* 1 when the library was built with the CUDA backend. */
int ldm_cuda_built(void);

/* Number of CUDA devices visible, into *count (0 when built without CUDA
 * or when the driver finds none). Returns 0, or LDM_EIO with the CUDA
 * runtime's message for a failure other than "no device". */
int ldm_cuda_device_count(int *count);

/* One line describing device `index` (name, compute capability, memory).
 * Returns 0, LDM_EINVAL (no such device) or LDM_EIO. */
int ldm_cuda_describe(int index, char *out, size_t size);

#endif

/* main.c — gpuinfo: list the CUDA devices ldmpipe can use.
 * Exit status: 0 when at least one device is found, 1 when none, 2 on error. */
#include <stdio.h>

#include "err.h"
#include "nn/device.h"

int main(void)
{
    int n = 0;
    if (!ldm_cuda_built()) {
        printf("built without CUDA (make CUDA=0 or no nvcc)\n");
        return 1;
    }
    if (ldm_cuda_device_count(&n) != 0) {
        fprintf(stderr, "gpuinfo: %s\n", ldm_errmsg());
        return 2;
    }
    for (int i = 0; i < n; i++) {
        char line[256];
        if (ldm_cuda_describe(i, line, sizeof line) != 0) {
            fprintf(stderr, "gpuinfo: %s\n", ldm_errmsg());
            return 2;
        }
        printf("%s\n", line);
    }
    if (n == 0)
        printf("no CUDA device\n");
    return n > 0 ? 0 : 1;
}

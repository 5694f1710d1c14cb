/* cast.cu — dtype conversion on the GPU: y (=|+=) alpha·x between F32, F16 and
 * BF16, computed in float and rounded to nearest even (kern.cuh's from_f). */
#include "nn/cuda/kern.cuh"

template <typename TY, typename TX>
__global__ void cast_kernel(TY *y, const TX *x, int64_t n, float alpha, int accumulate)
{
    CU_GRID_LOOP(i, n) {
        float v = alpha * to_f(x[i]);
        if (accumulate)
            v = to_f(y[i]) + v;
        y[i] = from_f<TY>(v);
    }
}

template <typename TY>
static void launch(const struct ldm_cast_dims *d, void *y, const void *x, cudaStream_t st)
{
    CU_DTYPE_SWITCH(d->xdtype, TX, {
        cast_kernel<TY, TX><<<cu_blocks(d->n), CU_THREADS, 0, st>>>((TY *)y, (const TX *)x, d->n,
                                                                    d->alpha, d->accumulate);
    });
}

extern "C" int ldm_cuda_cast(struct ldm_ctx *c, const struct ldm_cast_dims *d, void *y,
                             const void *x)
{
    if (d->n == 0)
        return 0;
    cudaStream_t st = ldm_cuda_stream(c);
    if (!d->accumulate && d->alpha == 1.0f && d->xdtype == d->ydtype) {
        if (y != x)
            CU_TRY("cast", cudaMemcpyAsync(y, x, (size_t)d->n * ldm_dtype_size(d->xdtype),
                                           cudaMemcpyDeviceToDevice, st));
        return 0;
    }
    CU_DTYPE_SWITCH(d->ydtype, TY, { launch<TY>(d, y, x, st); });
    CU_LAUNCHED("cast", "cast_kernel");
    return 0;
}

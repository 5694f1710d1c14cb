/* reduce.cu — deterministic column sums: out (K) += Σ over M rows of in (M, K).
 *
 * Pass 1 cuts the rows into R chunks; block (column tile, chunk) sums its
 * chunk's rows for 32 columns, 8 row lanes, then the 8 lanes in a fixed
 * order, into partial (R, K) floats in the workspace. Pass 2
 * (sum_partials, kern.cuh) adds the R partials of each column in a fixed
 * order and adds that into out. No
 * atomics: the same inputs give the same bits. Used for bias gradients
 * (linear) and the layer-norm parameter gradients' pattern. */
#include "nn/cuda/kern.cuh"

#define CS_COLS 32
#define CS_LANES 8
#define CS_MAX_CHUNKS 256

int64_t ldm_cuda_colsum_chunks(int64_t M)
{
    int64_t r = (M + 63) / 64;
    return r < 1 ? 1 : r > CS_MAX_CHUNKS ? CS_MAX_CHUNKS : r;
}

size_t ldm_cuda_colsum_ws(int64_t M, int64_t K)
{
    return (size_t)(ldm_cuda_colsum_chunks(M) * K) * sizeof(float);
}

template <typename T>
__global__ void colsum_pass1(float *partial, const T *in, int64_t M, int64_t K, int64_t rows)
{
    __shared__ float sh[CS_LANES][CS_COLS];
    int64_t col = (int64_t)blockIdx.x * CS_COLS + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows, r1 = r0 + rows < M ? r0 + rows : M;
    float s = 0.0f;
    if (col < K)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += CS_LANES)
            s += to_f(in[r * K + col]);
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && col < K) {
        float t = 0.0f;
        for (int l = 0; l < CS_LANES; l++)
            t += sh[l][threadIdx.x];
        partial[(int64_t)blockIdx.y * K + col] = t;
    }
}

int ldm_cuda_colsum(struct ldm_ctx *c, const char *op, int dtype, void *out, const void *in,
                    int64_t M, int64_t K, void *ws)
{
    if (M <= 0 || K <= 0)
        return 0;
    cudaStream_t st = ldm_cuda_stream(c);
    int64_t R = ldm_cuda_colsum_chunks(M), rows = (M + R - 1) / R;
    float *partial = (float *)ws;
    dim3 grid((unsigned)((K + CS_COLS - 1) / CS_COLS), (unsigned)R), block(CS_COLS, CS_LANES);
    CU_DTYPE_SWITCH(dtype, T, {
        colsum_pass1<T><<<grid, block, 0, st>>>(partial, (const T *)in, M, K, rows);
        sum_partials<T><<<grid.x, block, 0, st>>>((T *)out, partial, R, K);
    });
    CU_LAUNCHED(op, "column sums");
    return 0;
}

// Row softmax: y[r, :] = softmax(x[r, :]) for a rows x cols row-major f32 matrix, any cols.
// Launch: grid (rows), block (B) with B a multiple of 32 (<= 1024),
// dynamic shared memory (B / 32) * 4 bytes (one float per warp).
// Block reductions: warp shuffles, then warp partials through `extern __shared__` smem.
extern __shared__ float smem[];
#define NEG_INF (-__int_as_float(0x7f800000))

__device__ __forceinline__ float warp_max(float v) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// Reduces v over the block; every thread gets the result. Leaves smem reusable.
template <bool IS_MAX>
__device__ float block_reduce(float v) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = IS_MAX ? warp_max(v) : warp_sum(v);
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    float r = lane < nwarps ? smem[lane] : (IS_MAX ? NEG_INF : 0.0f);
    r = IS_MAX ? warp_max(r) : warp_sum(r);
    __syncthreads();  // everyone has read smem before the next reduction writes it
    return r;
}

extern "C" __global__ void softmax_rows(const float* __restrict__ x, float* __restrict__ y, int cols) {
    const float* xr = x + (size_t)blockIdx.x * cols;
    float* yr = y + (size_t)blockIdx.x * cols;
    float m = NEG_INF;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, xr[c]);
    m = block_reduce<true>(m);
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += expf(xr[c] - m);
    s = block_reduce<false>(s);
    float inv = 1.0f / s;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = expf(xr[c] - m) * inv;
}

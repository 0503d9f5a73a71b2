// Warp-level reductions and votes.
//
// block_sum:     out[blockIdx.x] = sum of x[blockIdx.x*blockDim.x .. +blockDim.x) (tail reads as 0).
//                grid (ceil(n/B)), block (B), B a multiple of 32, <= 1024. __shfl_down_sync inside
//                each warp, then the warp partials go through a static shared array.
// warp_allreduce: every lane gets its warp's sum (__shfl_xor_sync butterfly); out[i] = that sum.
//                any grid/block, n elements; missing lanes add 0.
// warp_scan:     out[i] = inclusive prefix sum of x within the warp (__shfl_up_sync).
// warp_broadcast: out[i] = x[(warp's first element) + src_lane] (__shfl_sync with a lane index).
// warp_vote:     per warp w: out[3w] = __ballot_sync(x[i] > 0), out[3w+1] = __all_sync(...),
//                out[3w+2] = __any_sync(...). Lanes past n vote 0 (and all/any skip them via mask).
#define FULL 0xffffffffu

__device__ __forceinline__ float warp_sum_down(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(FULL, v, off);
    return v;
}

extern "C" __global__ void block_sum(const float* __restrict__ x, float* __restrict__ out, int n) {
    __shared__ float partial[32];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    v = warp_sum_down(v);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int nwarps = blockDim.x >> 5;
        v = lane < nwarps ? partial[lane] : 0.0f;
        v = warp_sum_down(v);
        if (lane == 0) out[blockIdx.x] = v;
    }
}

extern "C" __global__ void warp_allreduce(const float* x, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    for (int mask = 16; mask > 0; mask >>= 1) v += __shfl_xor_sync(FULL, v, mask);
    if (i < n) out[i] = v;
}

extern "C" __global__ void warp_scan(const int* x, int* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    int v = i < n ? x[i] : 0;
    for (int off = 1; off < 32; off <<= 1) {
        int t = __shfl_up_sync(FULL, v, off);
        if (lane >= off) v += t;
    }
    if (i < n) out[i] = v;
}

extern "C" __global__ void warp_broadcast(const float* x, float* out, int n, int src_lane) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    v = __shfl_sync(FULL, v, src_lane);
    if (i < n) out[i] = v;
}

extern "C" __global__ void warp_vote(const int* x, unsigned* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    int w = i >> 5;
    bool pred = i < n && x[i] > 0;
    unsigned ballot = __ballot_sync(FULL, pred);
    unsigned active = __ballot_sync(FULL, i < n);
    if (i < n) {
        int all = __all_sync(active, pred);
        int any = __any_sync(active, pred);
        if (lane == 0) {
            out[3 * w] = ballot;
            out[3 * w + 1] = all;
            out[3 * w + 2] = any;
        }
    }
}

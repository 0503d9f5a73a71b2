// PLANTED BUG: shared-memory race. Each thread writes s[tid] and then, with no __syncthreads,
// reads s[tid + 1], which the neighbouring thread writes. out[i] = x[i] + x[i+1] (with wrap)
// only if the hardware happens to order it. Launch: grid (ceil(n/B)), block (B), B <= 256.
// A simulator must report a shared-memory race (write/read by different threads, no barrier).
extern "C" __global__ void planted_race(const float* x, float* out, int n) {
    __shared__ float s[257];
    int t = threadIdx.x;
    int i = blockIdx.x * blockDim.x + t;
    s[t] = i < n ? x[i] : 0.0f;
    if (t == 0) s[blockDim.x] = 0.0f;
    // missing __syncthreads() here
    float v = s[t] + s[t + 1];
    if (i < n) out[i] = v;
}

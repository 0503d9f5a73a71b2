// PLANTED BUG: divergent barrier. Only threads 0..15 of a block reach __syncthreads().
// Launch: grid (1), block (64). out[t] = t*2 for every thread. A simulator must report barrier
// divergence (threads 16..63 exit without arriving at the barrier the others wait on).
extern "C" __global__ void divergent_barrier(int* out) {
    __shared__ int s[64];
    int t = threadIdx.x;
    s[t] = t;
    if (t < 16) __syncthreads();
    out[t] = s[t] * 2;
}

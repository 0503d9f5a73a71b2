// Atomics.
//
// histogram: bins[v % nbins]++ for each of n u32 values (nbins <= 256). Per-block histogram
//            in shared memory with atomicAdd on shared, then atomicAdd of the nonzero bins to
//            global. Any grid/block (grid-stride loop); bins must start zeroed.
// atomics_misc: each of n threads i folds v = vals[i] into one global slot per op:
//            out[0] atomicMin, out[1] atomicMax (signed), out[2] atomicAnd, out[3] atomicOr,
//            out[4] atomicXor, out[5] atomicAdd (count), out[6] atomicCAS (claims: the first
//            thread to see 0 stores i+1), out[7] atomicExch (some i+1), out[8] unsigned atomicMin,
//            out[9] unsigned atomicMax, and fsum[0] += (float)v via float atomicAdd.
//            Also old values: old_add[i] = return of the atomicAdd (a permutation of 0..n).
extern "C" __global__ void histogram(const unsigned* __restrict__ vals, int n, unsigned* bins, int nbins) {
    __shared__ unsigned local[256];
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        atomicAdd(&local[vals[i] % nbins], 1u);
    __syncthreads();
    for (int b = threadIdx.x; b < nbins; b += blockDim.x)
        if (local[b]) atomicAdd(&bins[b], local[b]);
}

extern "C" __global__ void atomics_misc(const int* vals, int n, int* out, float* fsum, int* old_add) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int v = vals[i];
    atomicMin(&out[0], v);
    atomicMax(&out[1], v);
    atomicAnd(&out[2], v);
    atomicOr(&out[3], v);
    atomicXor(&out[4], v);
    old_add[i] = atomicAdd(&out[5], 1);
    atomicCAS(&out[6], 0, i + 1);
    atomicExch(&out[7], i + 1);
    atomicMin((unsigned*)&out[8], (unsigned)v);
    atomicMax((unsigned*)&out[9], (unsigned)v);
    atomicAdd(fsum, (float)v);
}

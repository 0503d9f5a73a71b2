// PLANTED BUG: off-by-one global store. Writes x[i] = i for i in 0..=n (note `<=`), so the
// thread with i == n stores one element past the end of an n-element buffer.
// Launch: grid (ceil((n+1)/B)), block (B). A simulator must report an out-of-bounds store.
extern "C" __global__ void out_of_bounds(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) x[i] = (float)i;
}

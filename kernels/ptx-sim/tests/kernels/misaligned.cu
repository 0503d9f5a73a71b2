// PLANTED BUG: misaligned load. Reads a float through (const float*)((const char*)p + 2),
// i.e. a 4-byte ld.global at an address that is 2 mod 4. Launch: grid (1), block (1..32).
// A simulator must report a misaligned access.
extern "C" __global__ void misaligned(const char* p, float* out) {
    const float* q = (const float*)(p + 2);
    out[threadIdx.x] = q[threadIdx.x];
}

// Tensor-core TF32 matrix multiply-accumulate (mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32)
// and the conversion to TF32 (cvt.rna.tf32.f32), written as inline asm (sm_80).
//
// Fragment layout of m16n8k8 .tf32 (PTX ISA, "Matrix Fragments for mma.m16n8k8"), with
// g = laneid >> 2 and t = laneid % 4:
//   A (16x8): a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]
//   B (8x8):  b0 = B[t][g], b1 = B[t+4][g]
//   C, D:     c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
//
// tf32_convert: out[2i] = cvt.rna.tf32.f32(x[i]), out[2i+1] = cvt.rna.satfinite.tf32.f32(x[i]),
//               i < n; any grid and block.
// mma_one:      D = A * B + C for one warp (block 32): A 16x8, B 8x8, C and D 16x8, all
//               row-major. raw != 0 passes the f32 bits of A and B to the mma unconverted (it
//               ignores their low 13 bits), else they go through cvt.rna.tf32.f32 first.
// mma_half:     mma_one's body under `if (threadIdx.x < 16)`: BUG, half a warp executes the mma
//               (Warp error).
// tf32_gemm:    C = A * B, A (M x K), B (K x N), C (M x N) row-major, M a multiple of 16, N and K
//               of 8; one warp per 16x8 tile of C, grid (N/8, M/16), block 32. split != 0: 3xTF32,
//               each operand x split into big = rna(x) and small = rna(x - big), and
//               acc += small_a*big_b + big_a*small_b + big_a*big_b (near f32 accuracy); split == 0:
//               acc += big_a*big_b alone (TF32 accuracy). The accumulator is the mma's own C = D.

__device__ __forceinline__ unsigned tf32_rna(float x) {
    unsigned r;
    asm volatile("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ unsigned tf32_rna_satfinite(float x) {
    unsigned r;
    asm volatile("cvt.rna.satfinite.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

// d = a * b + c, d and c in distinct registers.
__device__ __forceinline__ void mma_tf32(float d[4], const unsigned a[4], const unsigned b[2],
                                         const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%10, %11, %12, %13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
}

// acc += a * b: the accumulator is both C and D of the mma.
__device__ __forceinline__ void mma_acc(float acc[4], const unsigned a[4], const unsigned b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

extern "C" __global__ void tf32_convert(const float* __restrict__ x, unsigned* __restrict__ out,
                                        int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[2 * i] = tf32_rna(x[i]);
        out[2 * i + 1] = tf32_rna_satfinite(x[i]);
    }
}

__device__ __forceinline__ void mma_tile(const float* __restrict__ A, const float* __restrict__ B,
                                         const float* __restrict__ C, float* __restrict__ D,
                                         int raw) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    float af[4] = {A[g * 8 + t], A[(g + 8) * 8 + t], A[g * 8 + t + 4], A[(g + 8) * 8 + t + 4]};
    float bf[2] = {B[t * 8 + g], B[(t + 4) * 8 + g]};
    float c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t],
                  C[(g + 8) * 8 + 2 * t + 1]};
    unsigned a[4], b[2];
    for (int i = 0; i < 4; i++) a[i] = raw ? __float_as_uint(af[i]) : tf32_rna(af[i]);
    for (int i = 0; i < 2; i++) b[i] = raw ? __float_as_uint(bf[i]) : tf32_rna(bf[i]);
    float d[4];
    mma_tf32(d, a, b, c);
    D[g * 8 + 2 * t] = d[0];
    D[g * 8 + 2 * t + 1] = d[1];
    D[(g + 8) * 8 + 2 * t] = d[2];
    D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

extern "C" __global__ void mma_one(const float* __restrict__ A, const float* __restrict__ B,
                                   const float* __restrict__ C, float* __restrict__ D, int raw) {
    mma_tile(A, B, C, D, raw);
}

extern "C" __global__ void mma_half(const float* __restrict__ A, const float* __restrict__ B,
                                    const float* __restrict__ C, float* __restrict__ D) {
    if (threadIdx.x < 16) mma_tile(A, B, C, D, 0);
}

// x as big + small, both TF32: big = rna(x), small = rna(x - big) (x - big is exact in f32).
__device__ __forceinline__ void split_tf32(float x, unsigned* big, unsigned* small) {
    *big = tf32_rna(x);
    *small = tf32_rna(x - __uint_as_float(*big));
}

extern "C" __global__ void tf32_gemm(const float* __restrict__ A, const float* __restrict__ B,
                                     float* __restrict__ C, int M, int N, int K, int split) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int row = blockIdx.y * 16 + g, col = blockIdx.x * 8;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int k0 = 0; k0 < K; k0 += 8) {
        float af[4] = {A[row * K + k0 + t], A[(row + 8) * K + k0 + t], A[row * K + k0 + t + 4],
                       A[(row + 8) * K + k0 + t + 4]};
        float bf[2] = {B[(k0 + t) * N + col + g], B[(k0 + t + 4) * N + col + g]};
        unsigned a_big[4], a_small[4], b_big[2], b_small[2];
        for (int i = 0; i < 4; i++) split_tf32(af[i], &a_big[i], &a_small[i]);
        for (int i = 0; i < 2; i++) split_tf32(bf[i], &b_big[i], &b_small[i]);
        if (split) {
            mma_acc(acc, a_small, b_big);
            mma_acc(acc, a_big, b_small);
        }
        mma_acc(acc, a_big, b_big);
    }
    C[row * N + col + 2 * t] = acc[0];
    C[row * N + col + 2 * t + 1] = acc[1];
    C[(row + 8) * N + col + 2 * t] = acc[2];
    C[(row + 8) * N + col + 2 * t + 1] = acc[3];
    (void)M;
}

// Fused attention forward on tensor cores: the forward of attention.cu (same layout, mask,
// online softmax, statistics and results to within rounding), with its two tile products,
// Q K^T and P V, done by `mma.sync.m16n8k8` on TF32 operands in the 3xTF32 split that keeps
// FP32 accuracy: each operand x is big + small with big = tf32(x) and small = tf32(x - big),
// and a*b is computed as a_small*b_big + a_big*b_small + a_big*b_big (the dropped
// a_small*b_small is below 2^-22 of the product), accumulated in f32. A plain TF32 product
// (10-bit mantissas) would miss the 1e-4 accuracy the CPU kernels are held to.
//
// Kernels attention_forward_mma_dD, D = 32 or 64: grid (ceil(T/BQ), H, B), NT = 128 threads.
// Each of the 4 warps owns 16 query rows of the BQ = 64-row tile; their Q fragments, already
// split, stay in registers. Key and value tiles of BK rows are loaded once per block into
// shared memory, split into big and small halves as they are stored, rows padded by 4 words
// so that the fragment reads below hit 32 distinct banks.
//
// Fragments (PTX ISA, mma.m16n8k8 with .tf32): lane = 4 g + t. A (16 x 8, row-major): a0 = A[g][t],
// a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]. B (8 x 8): b0 = B[t][g], b1 = B[t+4][g].
// C (16 x 8): c0, c1 = C[g][2t], C[g][2t+1]; c2, c3 = C[g+8][2t], C[g+8][2t+1].
//   - S = Q K^T: A is 8 columns of Q, B[k][n] = K[key n][k], so b0, b1 = K[n0+g][k0+t], +4.
//   - O += P V: the thread holds P in the C layout (keys 2t, 2t+1 of each 8), not the A layout
//     (keys t, t+4). A sum over keys does not care about their order, so column t of the A
//     fragment stands for key 2t and column t+4 for key 2t+1: a = (c0, c2, c1, c3) with no
//     shuffle, and B's rows follow: b0 = V[k0+2t][n0+g], b1 = V[k0+2t+1][n0+g].
#include "attention_common.cuh"

enum {
    WARPS = 4,
    NT = 32 * WARPS,  // threads per block
    BQ = 16 * WARPS,  // query rows per block: one m16 tile per warp
};

// A value as the sum of two TF32 values (each in a 32-bit word, low 13 bits zero).
struct Split {
    unsigned big, small;
};

// x rounded to TF32, nearest with ties away from zero.
__device__ __forceinline__ unsigned to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ Split split(float x) {
    const unsigned big = to_tf32(x);
    return {big, to_tf32(x - __uint_as_float(big))};
}

// d += a b for one 16 x 8 x 8 TF32 tile.
__device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                                    unsigned b1) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// d += a b in 3xTF32: a (big, small) fragments, b0 and b1 as Split words.
__device__ __forceinline__ void mma3(float (&d)[4], const unsigned (&ab)[4],
                                     const unsigned (&as)[4], Split b0, Split b1) {
    mma(d, as, b0.big, b1.big);
    mma(d, ab, b0.small, b1.small);
    mma(d, ab, b0.big, b1.big);
}

// Copies rows row0 .. row0+R of one head into the shared tiles big and small ([R][D+4] words
// each), split; rows >= T become zeros. src points at head h of row 0 of the batch element;
// rows lie ld floats apart.
template <int D, int R>
__device__ __forceinline__ void load_split(unsigned* big, unsigned* small,
                                           const float* __restrict__ src, int row0, int T,
                                           int ld) {
    constexpr int C4 = D / 4;
    for (int c = threadIdx.x; c < R * C4; c += NT) {
        const int r = c / C4, c4 = c % C4, row = row0 + r;
        float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
        if (row < T) x = *reinterpret_cast<const float4*>(src + (size_t)row * ld + 4 * c4);
        const Split sx = split(x.x), sy = split(x.y), sz = split(x.z), sw = split(x.w);
        const int at = r * (D + 4) + 4 * c4;
        *reinterpret_cast<uint4*>(big + at) = make_uint4(sx.big, sy.big, sz.big, sw.big);
        *reinterpret_cast<uint4*>(small + at) =
            make_uint4(sx.small, sy.small, sz.small, sw.small);
    }
}

// The Split word at row r, column c of a pair of shared tiles with rows of D+4 words.
template <int D>
__device__ __forceinline__ Split at(const unsigned* big, const unsigned* small, int r, int c) {
    return {big[r * (D + 4) + c], small[r * (D + 4) + c]};
}

// Forward of one query tile [q0, q0 + BQ) of head blockIdx.y of batch element blockIdx.z.
template <int D, int BK>
__device__ __forceinline__ void forward_mma(const float* __restrict__ q,
                                            const float* __restrict__ k,
                                            const float* __restrict__ v,
                                            const float* __restrict__ mask, int has_mask,
                                            float scale, int T, float* __restrict__ out,
                                            float* __restrict__ stats) {
    constexpr int KS = D / 8;   // k-steps of Q K^T, n-tiles of O
    constexpr int NS = BK / 8;  // n-tiles of S, k-steps of P V
    __shared__ __align__(16) unsigned sKb[BK * (D + 4)], sKs[BK * (D + 4)];
    __shared__ __align__(16) unsigned sVb[BK * (D + 4)], sVs[BK * (D + 4)];
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int H = gridDim.y, b = blockIdx.z, h = blockIdx.y;
    const int ld = H * D;
    const size_t base = (size_t)b * T * ld + (size_t)h * D;
    // This thread's query rows: r0 (C rows g) and r0 + 8 (C rows g + 8).
    const int r0 = blockIdx.x * BQ + threadIdx.x / 32 * 16 + g;

    unsigned qb[KS][4], qs[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int row = r0 + 8 * (e % 2), col = 8 * kk + t + 4 * (e / 2);
            const Split x = split(row < T ? q[base + (size_t)row * ld + col] : 0.f);
            qb[kk][e] = x.big;
            qs[kk][e] = x.small;
        }
    // Per row pair (index 0: row r0, 1: row r0 + 8): running max, this thread's part of the
    // running sum, and the output accumulator in the C layout.
    float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.f, 0.f}, o[KS][4];
#pragma unroll
    for (int n = 0; n < KS; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[n][e] = 0.f;

    for (int k0 = 0; k0 < T; k0 += BK) {
        load_split<D, BK>(sKb, sKs, k + base, k0, T, ld);
        load_split<D, BK>(sVb, sVs, v + base, k0, T, ld);
        __syncthreads();  // tiles loaded
        float s[NS][4];
#pragma unroll
        for (int n = 0; n < NS; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[n][e] = 0.f;
        // k-steps outside: consecutive mmas update different accumulators.
#pragma unroll
        for (int kk = 0; kk < KS; ++kk)
#pragma unroll
            for (int n = 0; n < NS; ++n)
                mma3(s[n], qb[kk], qs[kk], at<D>(sKb, sKs, 8 * n + g, 8 * kk + t),
                     at<D>(sKb, sKs, 8 * n + g, 8 * kk + t + 4));
        float mx[2] = {NEG_INF, NEG_INF};
#pragma unroll
        for (int n = 0; n < NS; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const float bias = key_bias(mask, has_mask, b, k0 + 8 * n + 2 * t + e % 2, T);
                s[n][e] = logit(s[n][e], bias, scale);
                mx[e / 2] = fmaxf(mx[e / 2], s[n][e]);
            }
        float muse[2], alpha[2], rs[2] = {0.f, 0.f};
#pragma unroll
        for (int r = 0; r < 2; ++r) {
#pragma unroll
            for (int off = 1; off < 4; off <<= 1)
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], off));
            const float mnew = fmaxf(m[r], mx[r]);
            // Rows with every logit -inf so far keep p = 0 instead of exp(-inf + inf) = NaN.
            muse[r] = mnew == NEG_INF ? 0.f : mnew;
            alpha[r] = exp_(m[r] - muse[r]);
            m[r] = mnew;
        }
#pragma unroll
        for (int n = 0; n < NS; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                s[n][e] = exp_(s[n][e] - muse[e / 2]);
                rs[e / 2] += s[n][e];
            }
#pragma unroll
        for (int r = 0; r < 2; ++r) l[r] = fmaf(l[r], alpha[r], rs[r]);
#pragma unroll
        for (int n = 0; n < KS; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[n][e] *= alpha[e / 2];
#pragma unroll
        for (int kk = 0; kk < NS; ++kk) {
            // P's keys 8kk + 2t and 8kk + 2t + 1 as A columns t and t + 4 (see the top).
            const float pa[4] = {s[kk][0], s[kk][2], s[kk][1], s[kk][3]};
            unsigned pb[4], ps[4];
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const Split x = split(pa[e]);
                pb[e] = x.big;
                ps[e] = x.small;
            }
#pragma unroll
            for (int n = 0; n < KS; ++n)
                mma3(o[n], pb, ps, at<D>(sVb, sVs, 8 * kk + 2 * t, 8 * n + g),
                     at<D>(sVb, sVs, 8 * kk + 2 * t + 1, 8 * n + g));
        }
        __syncthreads();  // tiles read before the next ones overwrite them
    }
    const int plane = gridDim.z * H * T;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int off = 1; off < 4; off <<= 1)
            l[r] += __shfl_xor_sync(0xffffffffu, l[r], off);
        const int row = r0 + 8 * r;
        if (row >= T) continue;
        if (t == 0) store_stats(stats, ((size_t)b * H + h) * T + row, plane, m[r], l[r]);
        const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
#pragma unroll
        for (int n = 0; n < KS; ++n)
            *reinterpret_cast<float2*>(out + base + (size_t)row * ld + 8 * n + 2 * t) =
                make_float2(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
}

// One extern "C" kernel per head dimension D with its key tile BK (shared memory: 4 tiles of
// BK x (D+4) words, 36864 bytes at D 32, 34816 at D 64).
#define ATTENTION_MMA_KERNEL(D, BK)                                                                \
    extern "C" __global__ void __launch_bounds__(NT, 1) attention_forward_mma_d##D(                \
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,     \
        const float* __restrict__ mask, int has_mask, float scale, int T,                          \
        float* __restrict__ out, float* __restrict__ stats) {                                      \
        forward_mma<D, BK>(q, k, v, mask, has_mask, scale, T, out, stats);                         \
    }

ATTENTION_MMA_KERNEL(32, 64)
ATTENTION_MMA_KERNEL(64, 32)

// Fused attention on tensor cores: the forward and the backward of attention.cu (same layout,
// mask, online softmax, statistics, FlashAttention-2 recomputation, and results to within
// rounding), with every tile product done by `mma.sync.m16n8k8` on TF32 operands in the
// 3xTF32 split that keeps FP32 accuracy: each operand x is big + small with big = tf32(x) and
// small = tf32(x - big), and a*b is computed as a_small*b_big + a_big*b_small + a_big*b_big
// (the dropped a_small*b_small is below 2^-22 of the product), accumulated in f32. A plain
// TF32 product (10-bit mantissas) would miss the 1e-4 accuracy the CPU kernels are held to.
//
// Kernels, D = 32, 64 or 128, NT = 128 threads (4 warps) per block, each warp owning 16 rows
// of the block's 64-row tile and keeping its fragments of those rows in registers (at D 128,
// where two held row operands would not fit beside the accumulators, dO in the dQ kernel and
// K, V in the dK/dV kernel are read from L1 at each use instead; Q stays held: Rows below):
//   attention_forward_mma_dD        grid (ceil(T/64), H, B): query rows; streams K, V tiles
//   attention_backward_dq_mma_dD    grid (ceil(T/64), H, B): query rows; streams K, V tiles
//   attention_backward_dkdv_mma_dD  grid (ceil(T/64), H, B): key rows; streams Q, dO tiles
// (the backward's Dvec comes from attention.cu's attention_backward_dvec, run first), and the
// same with q, k, v, out, dout and the gradients stored as bf16 (attention_*_mma_bf16_dD, and
// attention_backward_dvec_bf16). A bf16 value is exactly a TF32 value, so its split has no
// small half: a product of two stored tensors is one mma, a product of the f32 probabilities
// (or dS) with a stored tile two. The streamed tiles are loaded once per block into shared
// memory, split into big and small planes as they are stored (bf16: the big plane alone),
// rows padded by 4 words so that the fragment reads below hit 32 distinct banks (banks 4g + t
// for a row-indexed read, 8t + g for a key-indexed one).
//
// Fragments (PTX ISA, mma.m16n8k8 with .tf32): lane = 4 g + t. A (16 x 8, row-major): a0 =
// A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]. B (8 x 8): b0 = B[t][g], b1 =
// B[t+4][g]. C (16 x 8): c0, c1 = C[g][2t], C[g][2t+1]; c2, c3 = C[g+8][2t], C[g+8][2t+1].
// Two products cover every tile product here:
//   - rows x tile^T (S = Q K^T and its kin): A is 8 columns of the warp's rows, B[k][n] =
//     tile[n][k], so b0, b1 = tile[n0+g][k0+t], tile[n0+g][k0+t+4].
//   - probabilities x tile (O += P V and its kin): the thread holds P in the C layout
//     (columns 2t, 2t+1 of each 8), not the A layout (columns t, t+4). The sum over P's
//     columns does not care about their order, so A's column t stands for 2t and t+4 for
//     2t+1: a = (c0, c2, c1, c3) with no shuffle, and B's rows follow: b0 = tile[k0+2t][n0+g],
//     b1 = tile[k0+2t+1][n0+g].
#include "attention_common.cuh"

enum {
    WARPS = 4,
    NT = 32 * WARPS,  // threads per block
    BR = 16 * WARPS,  // rows per block: one m16 tile per warp
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

// x as big + small: big = x rounded to TF32, small = what is left (exact in f32) rounded too.
__device__ __forceinline__ Split split(float x) {
    const unsigned big = to_tf32(x);
    return {big, to_tf32(x - __uint_as_float(big))};
}

// The four values of an A fragment, split.
__device__ __forceinline__ void split4(const float (&x)[4], unsigned (&big)[4],
                                       unsigned (&small)[4]) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const Split s = split(x[e]);
        big[e] = s.big;
        small[e] = s.small;
    }
}

// d += a b for one 16 x 8 x 8 TF32 tile.
__device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                                    unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Whether values stored as S are TF32 values already: a bf16 (8 significant bits) is, so its
// split has no small half, and a product of two such values is one mma instead of three.
template <typename S>
__device__ constexpr bool exact() {
    return false;
}
template <>
__device__ constexpr bool exact<bf16>() {
    return true;
}

// d += a b with a as (big, small) fragments and b0, b1 as Split words, in as many TF32
// products as the halves that are not zero: AX (BX) says that a's (b's) small halves are.
template <bool AX, bool BX>
__device__ __forceinline__ void mma_split(float (&d)[4], const unsigned (&ab)[4],
                                          const unsigned (&as)[4], Split b0, Split b1) {
    if constexpr (!AX) mma(d, as, b0.big, b1.big);
    if constexpr (!BX) mma(d, ab, b0.small, b1.small);
    mma(d, ab, b0.big, b1.big);
}

// Words of a tile's small plane: R rows of D+4, or, when the values are exact (S = bf16), a
// token 4 that is never read or written (C++ has no empty arrays; the compiler drops it).
template <typename S, int D, int R>
__device__ constexpr int small_words() {
    return exact<S>() ? 4 : R * (D + 4);
}

// Copies rows row0 .. row0+R of one head into the shared tiles big and small ([R][D+4] words
// each), split (exact values go to big alone); rows >= T become zeros. src points at head h
// of row 0 of the batch element; rows lie ld values apart.
template <int D, int R, typename S>
__device__ __forceinline__ void load_split(unsigned* big, unsigned* small,
                                           const S* __restrict__ src, int row0, int T, int ld) {
    constexpr int C4 = D / 4;
    for (int c = threadIdx.x; c < R * C4; c += NT) {
        const int r = c / C4, c4 = c % C4, row = row0 + r;
        Vec<4> x = {{0.f, 0.f, 0.f, 0.f}};
        if (row < T) x = load<4>(src + (size_t)row * ld + 4 * c4);
        const int at = r * (D + 4) + 4 * c4;
        if constexpr (exact<S>()) {
            *reinterpret_cast<uint4*>(big + at) =
                make_uint4(__float_as_uint(x.v[0]), __float_as_uint(x.v[1]),
                           __float_as_uint(x.v[2]), __float_as_uint(x.v[3]));
        } else {
            const Split sx = split(x.v[0]), sy = split(x.v[1]), sz = split(x.v[2]),
                        sw = split(x.v[3]);
            *reinterpret_cast<uint4*>(big + at) = make_uint4(sx.big, sy.big, sz.big, sw.big);
            *reinterpret_cast<uint4*>(small + at) =
                make_uint4(sx.small, sy.small, sz.small, sw.small);
        }
    }
}

// The Split word at row r, column c of a pair of shared tiles with rows of D+4 words (X: the
// values are exact, and the small plane is not read).
template <int D, bool X>
__device__ __forceinline__ Split at(const unsigned* big, const unsigned* small, int r, int c) {
    if constexpr (X) {
        return {big[r * (D + 4) + c], 0u};
    } else {
        return {big[r * (D + 4) + c], small[r * (D + 4) + c]};
    }
}

// The A fragments of rows r0 and r0 + 8 (D columns, fragment kk holding columns 8kk ..
// 8kk+8) of one head, not split; rows >= T are zeros. src as in load_split.
template <int D, typename S>
__device__ __forceinline__ void load_rows(float (&f)[D / 8][4], const S* __restrict__ src,
                                          int r0, int T, int ld, int t) {
#pragma unroll
    for (int kk = 0; kk < D / 8; ++kk)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int row = r0 + 8 * (e % 2), col = 8 * kk + t + 4 * (e / 2);
            f[kk][e] = row < T ? load<1>(src + (size_t)row * ld + col).v[0] : 0.f;
        }
}

// Stores two adjacent values (8 bytes of f32, or 4 of bf16 rounded to nearest even).
__device__ __forceinline__ void store2(float* p, float a, float b) {
    *reinterpret_cast<float2*>(p) = make_float2(a, b);
}
__device__ __forceinline__ void store2(bf16* p, float a, float b) {
    *reinterpret_cast<unsigned*>(p) = bf16x2(a, b);
}

// Writes the C-layout accumulator of rows r0 and r0 + 8 (those below T) of a [rows, D] result,
// row r + 8i multiplied by f[i], to dst (head h of row 0 of the batch element).
template <int D, typename S>
__device__ __forceinline__ void store_rows(S* __restrict__ dst, const float (&acc)[D / 8][4],
                                           const float (&f)[2], int r0, int T, int ld, int t) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int row = r0 + 8 * i;
        if (row >= T) continue;
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
            store2(dst + (size_t)row * ld + 8 * n + 2 * t, acc[n][2 * i] * f[i],
                   acc[n][2 * i + 1] * f[i]);
    }
}

// Sets the N fragments of an accumulator to zero.
template <int N>
__device__ __forceinline__ void zero(float (&acc)[N][4]) {
#pragma unroll
    for (int n = 0; n < N; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[n][e] = 0.f;
}

// Makes the compiler treat the fragments f as changed here, so that splits of them are
// recomputed in every iteration of a loop instead of hoisted out of it and kept: the split
// halves of a whole row would take as many registers again as the row.
template <int KS>
__device__ __forceinline__ void opaque(float (&f)[KS][4]) {
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(f[kk][e]));
}

// The warp's rows r0 and r0 + 8 of one head as A fragments (D columns, fragment kk holding
// columns 8kk .. 8kk+8; rows >= T are zeros). HOLD: kept in registers, loaded once. Otherwise
// each use reads its fragment from global memory (L1 after the first tile): at head dim 128
// the fragments of two row operands would not fit beside the accumulators.
template <int D, bool HOLD, typename S>
struct Rows;

template <int D, typename S>
struct Rows<D, true, S> {
    static constexpr int UNROLL = D / 8;
    float f[D / 8][4];
    __device__ __forceinline__ Rows(const S* __restrict__ src, int r0, int T, int ld, int t) {
        load_rows<D>(f, src, r0, T, ld, t);
    }
    // Called once per streamed tile: the splits of f are made anew in each (see opaque).
    __device__ __forceinline__ void touch() { opaque(f); }
    __device__ __forceinline__ void fragment(int kk, float (&a)[4]) const {
#pragma unroll
        for (int e = 0; e < 4; ++e) a[e] = f[kk][e];
    }
};

template <int D, typename S>
struct Rows<D, false, S> {
    static constexpr int UNROLL = 2;
    const S* __restrict__ src;
    int r0, T, ld, t;
    __device__ __forceinline__ Rows(const S* __restrict__ src, int r0, int T, int ld, int t)
        : src(src), r0(r0), T(T), ld(ld), t(t) {}
    __device__ __forceinline__ void touch() {}
    __device__ __forceinline__ void fragment(int kk, float (&a)[4]) const {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int row = r0 + 8 * (e % 2), col = 8 * kk + t + 4 * (e / 2);
            a[e] = row < T ? load<1>(src + (size_t)row * ld + col).v[0] : 0.f;
        }
    }
};

// acc = A tile^T for the warp's 16 rows: A given as Rows (D columns, not split), the tile as
// NN * 8 rows of the shared planes big and small; acc in the C layout, NN tiles of 8 columns.
// X: both are exact (one mma per product).
template <int D, int NN, bool X, typename A>
__device__ __forceinline__ void rows_times_tile_t(float (&acc)[NN][4], const A& a,
                                                  const unsigned* big, const unsigned* small,
                                                  int g, int t) {
    zero(acc);
    // k-steps outside: consecutive mmas update different accumulators.
#pragma unroll A::UNROLL
    for (int kk = 0; kk < D / 8; ++kk) {
        float f[4];
        a.fragment(kk, f);
        unsigned ab[4], as[4];
        if constexpr (X) {
#pragma unroll
            for (int e = 0; e < 4; ++e) ab[e] = __float_as_uint(f[e]);
        } else {
            split4(f, ab, as);
        }
#pragma unroll
        for (int n = 0; n < NN; ++n)
            mma_split<X, X>(acc[n], ab, as, at<D, X>(big, small, 8 * n + g, 8 * kk + t),
                            at<D, X>(big, small, 8 * n + g, 8 * kk + t + 4));
    }
}

// acc += P tile for the warp's 16 rows: P in the C layout (NK tiles of 8 columns), the tile as
// NK * 8 rows of D columns in the shared planes big and small (rows read in the order of the
// fragment trick described at the top; X: the tile's values are exact).
template <int D, int NK, bool X>
__device__ __forceinline__ void probs_times_tile(float (&acc)[D / 8][4], const float (&p)[NK][4],
                                                 const unsigned* big, const unsigned* small,
                                                 int g, int t) {
#pragma unroll
    for (int kk = 0; kk < NK; ++kk) {
        const float pa[4] = {p[kk][0], p[kk][2], p[kk][1], p[kk][3]};
        unsigned pb[4], ps[4];
        split4(pa, pb, ps);
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
            mma_split<false, X>(acc[n], pb, ps, at<D, X>(big, small, 8 * kk + 2 * t, 8 * n + g),
                                at<D, X>(big, small, 8 * kk + 2 * t + 1, 8 * n + g));
    }
}

// The biases (key_bias) of the keys of this thread's C-layout columns: bias[n][i] for key
// k0 + 8n + 2t + i of a tile of 8 NN keys.
template <int NN>
__device__ __forceinline__ void key_biases(float (&bias)[NN][2], const float* __restrict__ mask,
                                           int has_mask, int b, int k0, int T, int t) {
#pragma unroll
    for (int n = 0; n < NN; ++n)
#pragma unroll
        for (int i = 0; i < 2; ++i)
            bias[n][i] = key_bias(mask, has_mask, b, k0 + 8 * n + 2 * t + i, T);
}

// The position in a block of this thread: lane parts g and t, and the first of its two rows
// (r0 and r0 + 8) among the rows of the sequence.
struct Place {
    int g, t, r0;
};

__device__ __forceinline__ Place place() {
    const int lane = threadIdx.x % 32;
    return {lane / 4, lane % 4, (int)blockIdx.x * BR + (int)threadIdx.x / 32 * 16 + lane / 4};
}

// Forward of one query tile of BR rows of head blockIdx.y of batch element blockIdx.z, with q,
// k, v and out stored as S.
template <int D, int BK, typename S>
__device__ __forceinline__ void forward_mma(const S* __restrict__ q, const S* __restrict__ k,
                                            const S* __restrict__ v,
                                            const float* __restrict__ mask, int has_mask,
                                            float scale, int T, S* __restrict__ out,
                                            float* __restrict__ stats) {
    constexpr int KS = D / 8, NS = BK / 8, SMALL = small_words<S, D, BK>();
    constexpr bool X = exact<S>();
    __shared__ __align__(16) unsigned sKb[BK * (D + 4)], sKs[SMALL];
    __shared__ __align__(16) unsigned sVb[BK * (D + 4)], sVs[SMALL];
    const auto [g, t, r0] = place();
    const int H = gridDim.y, b = blockIdx.z, h = blockIdx.y, ld = H * D;
    const size_t base = (size_t)b * T * ld + (size_t)h * D;

    Rows<D, true, S> qf(q + base, r0, T, ld, t);
    // Per row (index 0: row r0, 1: row r0 + 8): running max, this thread's part of the running
    // sum, and the output accumulator in the C layout.
    float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.f, 0.f}, o[KS][4];
    zero(o);

    for (int k0 = 0; k0 < T; k0 += BK) {
        load_split<D, BK>(sKb, sKs, k + base, k0, T, ld);
        load_split<D, BK>(sVb, sVs, v + base, k0, T, ld);
        __syncthreads();  // tiles loaded
        float s[NS][4];
        qf.touch();
        rows_times_tile_t<D, NS, X>(s, qf, sKb, sKs, g, t);
        float bias[NS][2], mx[2] = {NEG_INF, NEG_INF};
        key_biases<NS>(bias, mask, has_mask, b, k0, T, t);
#pragma unroll
        for (int n = 0; n < NS; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                s[n][e] = logit(s[n][e], bias[n][e % 2], scale);
                mx[e / 2] = fmaxf(mx[e / 2], s[n][e]);
            }
        float muse[2], alpha[2], rs[2] = {0.f, 0.f};
#pragma unroll
        for (int r = 0; r < 2; ++r) {
#pragma unroll
            for (int off = 1; off < 4; off <<= 1)
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], off));
            alpha[r] = online_max(m[r], mx[r], muse[r]);
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
        probs_times_tile<D, NS, X>(o, s, sVb, sVs, g, t);
        __syncthreads();  // tiles read before the next ones overwrite them
    }
    const int plane = gridDim.z * H * T;
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int off = 1; off < 4; off <<= 1)
            l[r] += __shfl_xor_sync(0xffffffffu, l[r], off);
        const int row = r0 + 8 * r;
        if (t == 0 && row < T) store_stats(stats, ((size_t)b * H + h) * T + row, plane, m[r], l[r]);
        inv[r] = l[r] > 0.f ? 1.f / l[r] : 0.f;
    }
    store_rows<D>(out + base, o, inv, r0, T, ld, t);
}

// dQ of one query tile of BR rows of head blockIdx.y of batch element blockIdx.z:
// dQ_i = sum_j dS_ij k_j over key tiles of BK rows.
template <int D, int BK, typename S>
__device__ __forceinline__ void backward_dq_mma(
    const S* __restrict__ q, const S* __restrict__ k, const S* __restrict__ v,
    const float* __restrict__ mask, int has_mask, float scale, int T, const S* __restrict__ dout,
    const float* __restrict__ stats, S* __restrict__ dq) {
    constexpr int KS = D / 8, NS = BK / 8, SMALL = small_words<S, D, BK>();
    constexpr bool X = exact<S>();
    __shared__ __align__(16) unsigned sKb[BK * (D + 4)], sKs[SMALL];
    __shared__ __align__(16) unsigned sVb[BK * (D + 4)], sVs[SMALL];
    const auto [g, t, r0] = place();
    const int H = gridDim.y, b = blockIdx.z, h = blockIdx.y, ld = H * D;
    const int plane = gridDim.z * H * T;
    const size_t base = (size_t)b * T * ld + (size_t)h * D;
    const size_t srow = ((size_t)b * H + h) * T;

    Rows<D, true, S> qf(q + base, r0, T, ld, t);
    Rows<D, D <= 64, S> of(dout + base, r0, T, ld, t);
    float acc[KS][4];
    const RowStats st[2] = {row_stats(stats, srow, plane, r0, T),
                            row_stats(stats, srow, plane, r0 + 8, T)};
    zero(acc);

    for (int k0 = 0; k0 < T; k0 += BK) {
        load_split<D, BK>(sKb, sKs, k + base, k0, T, ld);
        load_split<D, BK>(sVb, sVs, v + base, k0, T, ld);
        __syncthreads();  // tiles loaded
        float s[NS][4], dp[NS][4];
        qf.touch();
        of.touch();
        rows_times_tile_t<D, NS, X>(s, qf, sKb, sKs, g, t);
        rows_times_tile_t<D, NS, X>(dp, of, sVb, sVs, g, t);
        float bias[NS][2];
        key_biases<NS>(bias, mask, has_mask, b, k0, T, t);
#pragma unroll
        for (int n = 0; n < NS; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const RowStats& r = st[e / 2];
                const bool valid = r0 + 8 * (e / 2) < T;
                const float p = prob(s[n][e], bias[n][e % 2], scale, r.m, r.lnl, valid);
                s[n][e] = dscore(scale, p, dp[n][e], r.dvec);
            }
        probs_times_tile<D, NS, X>(acc, s, sKb, sKs, g, t);
        __syncthreads();  // tiles read before the next ones overwrite them
    }
    const float one[2] = {1.f, 1.f};
    store_rows<D>(dq + base, acc, one, r0, T, ld, t);
}

// dK and dV of one key tile of BR rows of head blockIdx.y of batch element blockIdx.z, over
// query tiles of BQ rows: with the transposed scores S^T = K Q^T and dP^T = V dO^T,
// dV_j = sum_i p_ij dO_i and dK_j = sum_i dS_ij q_i.
template <int D, int BQ, typename S>
__device__ __forceinline__ void backward_dkdv_mma(
    const S* __restrict__ q, const S* __restrict__ k, const S* __restrict__ v,
    const float* __restrict__ mask, int has_mask, float scale, int T, const S* __restrict__ dout,
    const float* __restrict__ stats, S* __restrict__ dk, S* __restrict__ dv) {
    constexpr int KS = D / 8, NQ = BQ / 8, SMALL = small_words<S, D, BQ>();
    constexpr bool X = exact<S>();
    __shared__ __align__(16) unsigned sQb[BQ * (D + 4)], sQs[SMALL];
    __shared__ __align__(16) unsigned sOb[BQ * (D + 4)], sOs[SMALL];
    __shared__ RowStats sSt[BQ];
    const auto [g, t, r0] = place();
    const int H = gridDim.y, b = blockIdx.z, h = blockIdx.y, ld = H * D;
    const int plane = gridDim.z * H * T;
    const size_t base = (size_t)b * T * ld + (size_t)h * D;
    const size_t srow = ((size_t)b * H + h) * T;

    Rows<D, D <= 64, S> kf(k + base, r0, T, ld, t), vf(v + base, r0, T, ld, t);
    float gk[KS][4], gv[KS][4];
    float bias[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) bias[r] = key_bias(mask, has_mask, b, r0 + 8 * r, T);
    zero(gk);
    zero(gv);

    for (int q0 = 0; q0 < T; q0 += BQ) {
        load_split<D, BQ>(sQb, sQs, q + base, q0, T, ld);
        load_split<D, BQ>(sOb, sOs, dout + base, q0, T, ld);
        stage_stats<BQ>(sSt, stats, srow, plane, q0, T);
        __syncthreads();  // tiles and row statistics loaded
        float p[NQ][4], ds[NQ][4];
        kf.touch();
        vf.touch();
        rows_times_tile_t<D, NQ, X>(p, kf, sQb, sQs, g, t);
        rows_times_tile_t<D, NQ, X>(ds, vf, sOb, sOs, g, t);
#pragma unroll
        for (int n = 0; n < NQ; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int i = 8 * n + 2 * t + e % 2;
                const RowStats st = sSt[i];
                p[n][e] = prob(p[n][e], bias[e / 2], scale, st.m, st.lnl, q0 + i < T);
                ds[n][e] = dscore(scale, p[n][e], ds[n][e], st.dvec);
            }
        probs_times_tile<D, NQ, X>(gv, p, sOb, sOs, g, t);
        probs_times_tile<D, NQ, X>(gk, ds, sQb, sQs, g, t);
        __syncthreads();  // tiles read before the next ones overwrite them
    }
    const float one[2] = {1.f, 1.f};
    store_rows<D>(dk + base, gk, one, r0, T, ld, t);
    store_rows<D>(dv + base, gv, one, r0, T, ld, t);
}

// The kernels of one head dimension D and storage S, named NAME_dD (NAME: mma or mma_bf16), with
// the rows of their streamed tiles: forward (BK), dQ (BK), dK/dV (BQ). Shared memory: a big
// and (for f32) a small plane of rows x (D+4) words for each of two tiles.
#define ATTENTION_MMA_KERNELS(NAME, S, D, FK, QK, KQ)                                              \
    extern "C" __global__ void __launch_bounds__(NT, 1) attention_forward_##NAME##_d##D(           \
        const S* __restrict__ q, const S* __restrict__ k, const S* __restrict__ v,                 \
        const float* __restrict__ mask, int has_mask, float scale, int T, S* __restrict__ out,     \
        float* __restrict__ stats) {                                                               \
        forward_mma<D, FK>(q, k, v, mask, has_mask, scale, T, out, stats);                         \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(NT, 1) attention_backward_dq_##NAME##_d##D(       \
        const S* __restrict__ q, const S* __restrict__ k, const S* __restrict__ v,                 \
        const float* __restrict__ mask, int has_mask, float scale, int T,                          \
        const S* __restrict__ dout, const float* __restrict__ stats, S* __restrict__ dq) {         \
        backward_dq_mma<D, QK>(q, k, v, mask, has_mask, scale, T, dout, stats, dq);                \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(NT, 1) attention_backward_dkdv_##NAME##_d##D(     \
        const S* __restrict__ q, const S* __restrict__ k, const S* __restrict__ v,                 \
        const float* __restrict__ mask, int has_mask, float scale, int T,                          \
        const S* __restrict__ dout, const float* __restrict__ stats, S* __restrict__ dk,           \
        S* __restrict__ dv) {                                                                      \
        backward_dkdv_mma<D, KQ>(q, k, v, mask, has_mask, scale, T, dout, stats, dk, dv);          \
    }

//                    name      S      D    fwd BK  dq BK  dkdv BQ
ATTENTION_MMA_KERNELS(mma,      float, 32,  64,     64,    64)
ATTENTION_MMA_KERNELS(mma,      float, 64,  32,     32,    16)
ATTENTION_MMA_KERNELS(mma,      float, 128, 16,     16,    16)
ATTENTION_MMA_KERNELS(mma_bf16, bf16,  32,  64,     64,    64)
ATTENTION_MMA_KERNELS(mma_bf16, bf16,  64,  32,     32,    16)
ATTENTION_MMA_KERNELS(mma_bf16, bf16,  128, 16,     16,    16)

// Dvec of every row of out and dout stored as bf16 (dvec_rows in attention_common.cuh), for
// the bf16 backward; attention.cu has the f32 one.
extern "C" __global__ void __launch_bounds__(NT)
    attention_backward_dvec_bf16(const bf16* __restrict__ out, const bf16* __restrict__ dout,
                                 float* __restrict__ stats, int T, int H, int D, int rows) {
    dvec_rows(out, dout, stats, T, H, D, rows);
}

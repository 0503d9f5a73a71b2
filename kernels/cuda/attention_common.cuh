// Pieces shared by the attention kernels (attention.cu with FP32 FMAs, attention_mma.cu on
// tensor cores): infinities, the exponential, the additive bias of a key, the row statistics
// the forward saves and the probabilities the backward recomputes from them. Conventions are
// those described at the top of attention.cu.
#pragma once

#include "common.cuh"

#define NEG_INF (-__int_as_float(0x7f800000))
#define POS_INF (__int_as_float(0x7f800000))
#define LOG2E 1.4426950408889634f

// exp(x) as exp2(x * log2 e): one MUFU op; exp(-inf) = 0 and exp(0) = 1 exactly.
__device__ __forceinline__ float exp_(float x) { return exp2f(x * LOG2E); }

// The additive mask of key j (0 without a mask), or -inf past the end of the sequence.
__device__ __forceinline__ float key_bias(const float* __restrict__ mask, int has_mask, int b,
                                          int j, int T) {
    if (j >= T) return NEG_INF;
    return has_mask ? mask[(size_t)b * T + j] : 0.f;
}

// The logit of a raw dot product: fma(scale, dot, bias) as on the CPU, and -inf for a key
// past the end whatever its (zero) dot product.
__device__ __forceinline__ float logit(float dot, float bias, float scale) {
    return bias == NEG_INF ? NEG_INF : fmaf(scale, dot, bias);
}

// p_ij recomputed from the raw dot product, the key's bias and the row's (m, ln l); 0 outside
// the sequence.
__device__ __forceinline__ float prob(float dot, float bias, float scale, float m, float lnl,
                                      bool valid) {
    if (!valid || bias == NEG_INF) return 0.f;
    return exp_((fmaf(scale, dot, bias) - m) - lnl);
}

// One step of a row's online softmax: its running max m becomes max(m, mx), mx the max of the
// row's new logits. Returns the factor alpha that rescales the row's old sum and output, and
// sets muse, the max the new exponentials subtract: 0 while every logit so far is -inf, so
// that they give exp(-inf) = 0 instead of exp(-inf + inf) = NaN.
__device__ __forceinline__ float online_max(float& m, float mx, float& muse) {
    const float mnew = fmaxf(m, mx);
    muse = mnew == NEG_INF ? 0.f : mnew;
    const float alpha = exp_(m - muse);
    m = mnew;
    return alpha;
}

// The softmax backward's dS_ij = scale * p_ij * (dP_ij - Dvec_i).
__device__ __forceinline__ float dscore(float scale, float p, float dp, float dvec) {
    return scale * p * (dp - dvec);
}

// What the backward reads of a query row: the forward's max m and ln l, and Dvec.
struct RowStats {
    float m, lnl, dvec;
};

// Row `row` of the statistics of one (batch element, head), whose rows start at srow in each
// of the planes `plane` floats apart; zeros past the sequence's T rows.
__device__ __forceinline__ RowStats row_stats(const float* __restrict__ stats, size_t srow,
                                              int plane, int row, int T) {
    if (row >= T) return {0.f, 0.f, 0.f};
    return {stats[srow + row], stats[plane + srow + row], stats[2 * (size_t)plane + srow + row]};
}

// Rows q0 .. q0+R of the statistics (row_stats) into the shared array s, by the whole block.
template <int R>
__device__ __forceinline__ void stage_stats(RowStats* s, const float* __restrict__ stats,
                                            size_t srow, int plane, int q0, int T) {
    for (int i = threadIdx.x; i < R; i += blockDim.x)
        s[i] = row_stats(stats, srow, plane, q0 + i, T);
}

// Row i's statistics from its running max m and its full sum l: plane 0 (m, or +inf for a row
// whose logits are all -inf) and plane 1 (ln l, or 0 for such a row), planes `plane` floats
// apart.
__device__ __forceinline__ void store_stats(float* __restrict__ stats, size_t i, int plane,
                                            float m, float l) {
    stats[i] = l > 0.f ? m : POS_INF;
    stats[plane + i] = l > 0.f ? logf(l) : 0.f;
}

// Dvec of every (b, i, h) row: stats[2][b][h][i] = dout_row . out_row, the rows stored as S
// (float or bf16). One warp per row of `rows` = B*T*H rows of D values (memory order).
template <typename S>
__device__ __forceinline__ void dvec_rows(const S* __restrict__ out, const S* __restrict__ dout,
                                          float* __restrict__ stats, int T, int H, int D,
                                          int rows) {
    const int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (r >= rows) return;  // the whole warp leaves together: no barrier, no shuffle missed
    const size_t off = (size_t)r * D;
    float acc = 0.f;
    for (int c = lane; c < D; c += 32)
        acc = fmaf(load<1>(dout + off + c).v[0], load<1>(out + off + c).v[0], acc);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(FULL, acc, o);
    if (lane == 0) {
        const int h = r % H, i = (r / H) % T, b = r / (H * T);
        stats[2 * (size_t)rows + ((size_t)b * H + h) * T + i] = acc;
    }
}

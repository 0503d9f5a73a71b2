// Fused multi-head attention, FlashAttention-2 style, f32 storage and f32 FMAs (no tensor cores:
// TF32 would miss the 1e-4 accuracy the CPU kernels are held to).
//
// Layout as the CPU kernels (kernels/src/cpu/attention.rs): q, k, v, out, dout, dq, dk, dv are
// [B, T, H*D] row-major; head h of a row is its columns h*D .. (h+1)*D. mask (when has_mask) is
// [B, T], one additive value per key. Per (b, h) and query row i:
//
//   s_ij = fma(scale, q_i . k_j, mask_j)        (the CPU's logit, rounded the same way)
//   m_i  = max_j s_ij,  l_i = sum_j exp(s_ij - m_i),  p_ij = exp(s_ij - m_i) / l_i
//   o_i  = sum_j p_ij v_j
//
// stats is [3, B, H, T]: plane 0 holds m_i, plane 1 ln(l_i) (so logsumexp = m_i + ln l_i; kept
// apart because with a mask of f32::MIN the sum m_i + ln l_i rounds to m_i, and a fully padded
// row must still get p = 1/T as on the CPU), plane 2 the backward's Dvec_i = dout_i . o_i.
// A row whose logits are all -inf gets o = 0 (as the CPU softmax's all-zero row), stats
// m = +inf and ln l = 0, so the backward recomputes p = 0 for it.
//
// Backward (FlashAttention-2), with p_ij recomputed as exp((s_ij - m_i) - ln l_i):
//
//   dV_j  = sum_i p_ij dout_i
//   dP_ij = dout_i . v_j
//   dS_ij = scale * p_ij * (dP_ij - Dvec_i)     (softmax backward: rowsum(dP * P) = dout_i . o_i)
//   dQ_i  = sum_j dS_ij k_j,   dK_j = sum_i dS_ij q_i
//
// Kernels (all blocks of NT = 128 threads, static shared memory under 48 KiB; the tile kernels
// say __launch_bounds__(NT, 1): without the 1, ptxas for sm_90 aims at 96 or 128 registers and
// spills a few bytes):
//   attention_forward_dD        grid (ceil(T/BQ), H, B): one query tile, loops over key tiles
//   attention_backward_dvec     grid (ceil(B*T*H/4)): one warp per row, Dvec into stats plane 2
//   attention_backward_dkdv_dD  grid (ceil(T/BK), H, B): one key tile, loops over query tiles
//   attention_backward_dq_dD    grid (ceil(T/BQ), H, B): one query tile, loops over key tiles
// dQ and dK/dV come from separate kernels, so every value is written by one thread with no
// atomics: results are deterministic.
//
// Thread layout: thread t is (ty, tx) = (t / TX, t % TX). In a tile product it owns rows
// ty + a*TY (a < RI) and columns tx + b*TX (b < RJ) of a score tile, and rows ty + a*TY with the
// float4 column groups tx + c*TX (c < C4) of a [rows, D] accumulator, so its score rows and
// its accumulator rows coincide; the TX threads of one row are adjacent lanes of a warp and
// reduce the row with shuffles. Shared tiles are row-major with rows padded by 4 floats, so
// float4 reads of 8 different rows by a quarter warp fall in distinct banks.

#include "attention_common.cuh"

// (An enum and a macro rather than constexpr variables: NVRTC's -default-device would emit
// those as .global data.)
enum {
    TX = 8,        // threads along the columns of a tile
    TY = 16,       // threads along the rows of a tile
    NT = TX * TY,  // threads per block
};
// Component e (0..3, known at compile time after unrolling) of v.
__device__ __forceinline__ float comp(const float4& v, int e) {
    return e == 0 ? v.x : e == 1 ? v.y : e == 2 ? v.z : v.w;
}

// Copies rows row0 .. row0+R of one head into the shared tile [R][D+4]; rows >= T become zeros.
// src points at head h of row 0 of the batch element; rows lie ld floats apart.
template <int D, int R>
__device__ __forceinline__ void load_rows(float* tile, const float* __restrict__ src, int row0,
                                          int T, int ld) {
    constexpr int C4 = D / 4;
    for (int c = threadIdx.x; c < R * C4; c += NT) {
        const int r = c / C4, c4 = c % C4, row = row0 + r;
        float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
        if (row < T) x = *reinterpret_cast<const float4*>(src + (size_t)row * ld + 4 * c4);
        *reinterpret_cast<float4*>(tile + r * (D + 4) + 4 * c4) = x;
    }
}

// acc[a][b] = A[ty + a*TY, :] . B[tx + b*TX, :] over D columns; A and B are [*][D+4] tiles.
template <int D, int RI, int RJ>
__device__ __forceinline__ void dot_tile(float (&acc)[RI][RJ], const float* A, const float* B,
                                         int ty, int tx) {
#pragma unroll
    for (int a = 0; a < RI; ++a)
#pragma unroll
        for (int b = 0; b < RJ; ++b) acc[a][b] = 0.f;
#pragma unroll
    for (int k = 0; k < D; k += 4) {
        float4 x[RI], y[RJ];
#pragma unroll
        for (int a = 0; a < RI; ++a)
            x[a] = *reinterpret_cast<const float4*>(A + (ty + a * TY) * (D + 4) + k);
#pragma unroll
        for (int b = 0; b < RJ; ++b)
            y[b] = *reinterpret_cast<const float4*>(B + (tx + b * TX) * (D + 4) + k);
#pragma unroll
        for (int a = 0; a < RI; ++a)
#pragma unroll
            for (int b = 0; b < RJ; ++b) {
                acc[a][b] = fmaf(x[a].x, y[b].x, acc[a][b]);
                acc[a][b] = fmaf(x[a].y, y[b].y, acc[a][b]);
                acc[a][b] = fmaf(x[a].z, y[b].z, acc[a][b]);
                acc[a][b] = fmaf(x[a].w, y[b].w, acc[a][b]);
            }
    }
}

// acc[a][4c+e] += sum_j P[ty + a*TY, j] * V[j, 4*(tx + c*TX) + e] over J columns of P
// ([*][J+4] tile) and J rows of V ([J][D+4] tile).
template <int D, int J, int RI>
__device__ __forceinline__ void outer_tile(float (&acc)[RI][D / TX], const float* P,
                                           const float* V, int ty, int tx) {
    constexpr int C4 = D / (4 * TX);
#pragma unroll
    for (int j = 0; j < J; j += 4) {
        float4 p[RI];
#pragma unroll
        for (int a = 0; a < RI; ++a)
            p[a] = *reinterpret_cast<const float4*>(P + (ty + a * TY) * (J + 4) + j);
#pragma unroll
        for (int e = 0; e < 4; ++e)
#pragma unroll
            for (int c = 0; c < C4; ++c) {
                const float4 v =
                    *reinterpret_cast<const float4*>(V + (j + e) * (D + 4) + 4 * (tx + c * TX));
#pragma unroll
                for (int a = 0; a < RI; ++a) {
                    const float pa = comp(p[a], e);
                    acc[a][4 * c + 0] = fmaf(pa, v.x, acc[a][4 * c + 0]);
                    acc[a][4 * c + 1] = fmaf(pa, v.y, acc[a][4 * c + 1]);
                    acc[a][4 * c + 2] = fmaf(pa, v.z, acc[a][4 * c + 2]);
                    acc[a][4 * c + 3] = fmaf(pa, v.w, acc[a][4 * c + 3]);
                }
            }
    }
}

// Writes the accumulator rows ty + a*TY (those below T) of a [rows, D] tile starting at row0,
// each multiplied by f[a], to dst (head h of row 0 of the batch element, rows ld floats apart).
template <int D, int RI>
__device__ __forceinline__ void store_rows(float* __restrict__ dst, const float (&acc)[RI][D / TX],
                                           const float (&f)[RI], int row0, int T, int ld, int ty,
                                           int tx) {
    constexpr int C4 = D / (4 * TX);
#pragma unroll
    for (int a = 0; a < RI; ++a) {
        const int row = row0 + ty + a * TY;
        if (row >= T) continue;
#pragma unroll
        for (int c = 0; c < C4; ++c) {
            const float4 x = make_float4(acc[a][4 * c] * f[a], acc[a][4 * c + 1] * f[a],
                                         acc[a][4 * c + 2] * f[a], acc[a][4 * c + 3] * f[a]);
            *reinterpret_cast<float4*>(dst + (size_t)row * ld + 4 * (tx + c * TX)) = x;
        }
    }
}

// Forward of one query tile [q0, q0 + BQ) of head blockIdx.y of batch element blockIdx.z.
template <int D, int BQ, int BK>
__device__ __forceinline__ void forward(const float* __restrict__ q, const float* __restrict__ k,
                                        const float* __restrict__ v,
                                        const float* __restrict__ mask, int has_mask, float scale,
                                        int T, float* __restrict__ out,
                                        float* __restrict__ stats) {
    constexpr int RI = BQ / TY, RJ = BK / TX;
    __shared__ __align__(16) float sQ[BQ * (D + 4)];
    __shared__ __align__(16) float sK[BK * (D + 4)];
    __shared__ __align__(16) float sV[BK * (D + 4)];
    __shared__ __align__(16) float sP[BQ * (BK + 4)];
    const int tx = threadIdx.x % TX, ty = threadIdx.x / TX;
    const int H = gridDim.y, b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BQ;
    const int ld = H * D;
    const size_t base = (size_t)b * T * ld + (size_t)h * D;

    load_rows<D, BQ>(sQ, q + base, q0, T, ld);
    float m[RI], l[RI], o[RI][D / TX];
#pragma unroll
    for (int a = 0; a < RI; ++a) {
        m[a] = NEG_INF;
        l[a] = 0.f;
#pragma unroll
        for (int c = 0; c < D / TX; ++c) o[a][c] = 0.f;
    }
    for (int k0 = 0; k0 < T; k0 += BK) {
        load_rows<D, BK>(sK, k + base, k0, T, ld);
        load_rows<D, BK>(sV, v + base, k0, T, ld);
        __syncthreads();  // tiles loaded (and, the first time, the Q tile)
        float s[RI][RJ];
        dot_tile<D, RI, RJ>(s, sQ, sK, ty, tx);
        float bias[RJ];
#pragma unroll
        for (int j = 0; j < RJ; ++j) bias[j] = key_bias(mask, has_mask, b, k0 + tx + j * TX, T);
#pragma unroll
        for (int a = 0; a < RI; ++a) {
            float mx = NEG_INF;
#pragma unroll
            for (int j = 0; j < RJ; ++j) {
                s[a][j] = logit(s[a][j], bias[j], scale);
                mx = fmaxf(mx, s[a][j]);
            }
#pragma unroll
            for (int off = TX / 2; off > 0; off >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            float muse;
            const float alpha = online_max(m[a], mx, muse);
            float rs = 0.f;
#pragma unroll
            for (int j = 0; j < RJ; ++j) {
                const float p = exp_(s[a][j] - muse);
                sP[(ty + a * TY) * (BK + 4) + tx + j * TX] = p;
                rs += p;
            }
            l[a] = fmaf(l[a], alpha, rs);
#pragma unroll
            for (int c = 0; c < D / TX; ++c) o[a][c] *= alpha;
        }
        __syncthreads();  // P complete
        outer_tile<D, BK, RI>(o, sP, sV, ty, tx);
        __syncthreads();  // sK, sV and sP read before the next tile overwrites them
    }
    const int plane = gridDim.z * H * T;
    float inv[RI];
#pragma unroll
    for (int a = 0; a < RI; ++a) {
#pragma unroll
        for (int off = TX / 2; off > 0; off >>= 1)
            l[a] += __shfl_xor_sync(0xffffffffu, l[a], off);
        inv[a] = l[a] > 0.f ? 1.f / l[a] : 0.f;
        const int row = q0 + ty + a * TY;
        if (tx == 0 && row < T) {
            store_stats(stats, ((size_t)b * H + h) * T + row, plane, m[a], l[a]);
        }
    }
    store_rows<D, RI>(out + base, o, inv, q0, T, ld, ty, tx);
}

// dK and dV of one key tile [k0, k0 + BK) of head blockIdx.y of batch element blockIdx.z.
// Threads own key rows (ty + a*TY) and query columns (tx + b*TX) of the transposed tiles.
template <int D, int BQ, int BK>
__device__ __forceinline__ void backward_dkdv(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const float* __restrict__ mask, int has_mask, float scale, int T,
    const float* __restrict__ dout, const float* __restrict__ stats, float* __restrict__ dk,
    float* __restrict__ dv) {
    constexpr int RI = BK / TY, RJ = BQ / TX;
    __shared__ __align__(16) float sK[BK * (D + 4)];
    __shared__ __align__(16) float sV[BK * (D + 4)];
    __shared__ __align__(16) float sQ[BQ * (D + 4)];
    __shared__ __align__(16) float sdO[BQ * (D + 4)];
    __shared__ __align__(16) float sP[BK * (BQ + 4)];
    __shared__ __align__(16) float sdS[BK * (BQ + 4)];
    __shared__ RowStats sSt[BQ];
    const int tx = threadIdx.x % TX, ty = threadIdx.x / TX;
    const int H = gridDim.y, b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * BK;
    const int ld = H * D, plane = gridDim.z * H * T;
    const size_t base = (size_t)b * T * ld + (size_t)h * D;
    const size_t srow = ((size_t)b * H + h) * T;

    load_rows<D, BK>(sK, k + base, k0, T, ld);
    load_rows<D, BK>(sV, v + base, k0, T, ld);
    float bias[RI], gk[RI][D / TX], gv[RI][D / TX];
#pragma unroll
    for (int a = 0; a < RI; ++a) {
        bias[a] = key_bias(mask, has_mask, b, k0 + ty + a * TY, T);
#pragma unroll
        for (int c = 0; c < D / TX; ++c) gk[a][c] = gv[a][c] = 0.f;
    }
    for (int q0 = 0; q0 < T; q0 += BQ) {
        load_rows<D, BQ>(sQ, q + base, q0, T, ld);
        load_rows<D, BQ>(sdO, dout + base, q0, T, ld);
        stage_stats<BQ>(sSt, stats, srow, plane, q0, T);
        __syncthreads();  // Q, dO and row statistics loaded (and, the first time, K and V)
        float s[RI][RJ], dp[RI][RJ];
        dot_tile<D, RI, RJ>(s, sK, sQ, ty, tx);
        dot_tile<D, RI, RJ>(dp, sV, sdO, ty, tx);
#pragma unroll
        for (int a = 0; a < RI; ++a)
#pragma unroll
            for (int j = 0; j < RJ; ++j) {
                const int i = tx + j * TX;
                const RowStats st = sSt[i];
                const float p = prob(s[a][j], bias[a], scale, st.m, st.lnl, q0 + i < T);
                sP[(ty + a * TY) * (BQ + 4) + i] = p;
                sdS[(ty + a * TY) * (BQ + 4) + i] = dscore(scale, p, dp[a][j], st.dvec);
            }
        __syncthreads();  // P^T and dS^T complete
        outer_tile<D, BQ, RI>(gv, sP, sdO, ty, tx);
        outer_tile<D, BQ, RI>(gk, sdS, sQ, ty, tx);
        __syncthreads();  // tiles read before the next query tile overwrites them
    }
    float one[RI];
#pragma unroll
    for (int a = 0; a < RI; ++a) one[a] = 1.f;
    store_rows<D, RI>(dk + base, gk, one, k0, T, ld, ty, tx);
    store_rows<D, RI>(dv + base, gv, one, k0, T, ld, ty, tx);
}

// dQ of one query tile [q0, q0 + BQ) of head blockIdx.y of batch element blockIdx.z.
template <int D, int BQ, int BK>
__device__ __forceinline__ void backward_dq(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const float* __restrict__ mask, int has_mask, float scale, int T,
    const float* __restrict__ dout, const float* __restrict__ stats, float* __restrict__ dq) {
    constexpr int RI = BQ / TY, RJ = BK / TX;
    __shared__ __align__(16) float sQ[BQ * (D + 4)];
    __shared__ __align__(16) float sdO[BQ * (D + 4)];
    __shared__ __align__(16) float sK[BK * (D + 4)];
    __shared__ __align__(16) float sV[BK * (D + 4)];
    __shared__ __align__(16) float sdS[BQ * (BK + 4)];
    const int tx = threadIdx.x % TX, ty = threadIdx.x / TX;
    const int H = gridDim.y, b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BQ;
    const int ld = H * D, plane = gridDim.z * H * T;
    const size_t base = (size_t)b * T * ld + (size_t)h * D;
    const size_t srow = ((size_t)b * H + h) * T;

    load_rows<D, BQ>(sQ, q + base, q0, T, ld);
    load_rows<D, BQ>(sdO, dout + base, q0, T, ld);
    RowStats st[RI];
    float g[RI][D / TX];
#pragma unroll
    for (int a = 0; a < RI; ++a) {
        st[a] = row_stats(stats, srow, plane, q0 + ty + a * TY, T);
#pragma unroll
        for (int c = 0; c < D / TX; ++c) g[a][c] = 0.f;
    }
    for (int k0 = 0; k0 < T; k0 += BK) {
        load_rows<D, BK>(sK, k + base, k0, T, ld);
        load_rows<D, BK>(sV, v + base, k0, T, ld);
        __syncthreads();  // K and V loaded (and, the first time, Q and dO)
        float s[RI][RJ], dp[RI][RJ], bias[RJ];
        dot_tile<D, RI, RJ>(s, sQ, sK, ty, tx);
        dot_tile<D, RI, RJ>(dp, sdO, sV, ty, tx);
#pragma unroll
        for (int j = 0; j < RJ; ++j) bias[j] = key_bias(mask, has_mask, b, k0 + tx + j * TX, T);
#pragma unroll
        for (int a = 0; a < RI; ++a)
#pragma unroll
            for (int j = 0; j < RJ; ++j) {
                const bool valid = q0 + ty + a * TY < T;
                const float p = prob(s[a][j], bias[j], scale, st[a].m, st[a].lnl, valid);
                const float ds = dscore(scale, p, dp[a][j], st[a].dvec);
                sdS[(ty + a * TY) * (BK + 4) + tx + j * TX] = ds;
            }
        __syncthreads();  // dS complete
        outer_tile<D, BK, RI>(g, sdS, sK, ty, tx);
        __syncthreads();  // tiles read before the next key tile overwrites them
    }
    float one[RI];
#pragma unroll
    for (int a = 0; a < RI; ++a) one[a] = 1.f;
    store_rows<D, RI>(dq + base, g, one, q0, T, ld, ty, tx);
}

// Dvec of every row (dvec_rows in attention_common.cuh), blocks of NT threads.
extern "C" __global__ void __launch_bounds__(NT)
    attention_backward_dvec(const float* __restrict__ out, const float* __restrict__ dout,
                            float* __restrict__ stats, int T, int H, int D, int rows) {
    dvec_rows(out, dout, stats, T, H, D, rows);
}

// One extern "C" kernel per head dimension D with its tiles: forward (BQ, BK), dK/dV (BQ, BK),
// dQ (BQ, BK). The launcher (kernels/src/gpu/attention.rs) holds the same table.
#define ATTENTION_KERNELS(D, FQ, FK, KQ, KK, QQ, QK)                                               \
    extern "C" __global__ void __launch_bounds__(NT, 1) attention_forward_d##D(                    \
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,     \
        const float* __restrict__ mask, int has_mask, float scale, int T,                          \
        float* __restrict__ out, float* __restrict__ stats) {                                      \
        forward<D, FQ, FK>(q, k, v, mask, has_mask, scale, T, out, stats);                         \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(NT, 1) attention_backward_dkdv_d##D(              \
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,     \
        const float* __restrict__ mask, int has_mask, float scale, int T,                          \
        const float* __restrict__ dout, const float* __restrict__ stats,                           \
        float* __restrict__ dk, float* __restrict__ dv) {                                          \
        backward_dkdv<D, KQ, KK>(q, k, v, mask, has_mask, scale, T, dout, stats, dk, dv);          \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(NT, 1) attention_backward_dq_d##D(                \
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,     \
        const float* __restrict__ mask, int has_mask, float scale, int T,                          \
        const float* __restrict__ dout, const float* __restrict__ stats,                           \
        float* __restrict__ dq) {                                                                  \
        backward_dq<D, QQ, QK>(q, k, v, mask, has_mask, scale, T, dout, stats, dq);                \
    }

//                D  fwd BQ BK  dkdv BQ BK  dq BQ BK
ATTENTION_KERNELS(32, 64, 64, 32, 64, 64, 32)
ATTENTION_KERNELS(64, 64, 32, 32, 32, 32, 32)
ATTENTION_KERNELS(128, 32, 16, 8, 32, 32, 8)

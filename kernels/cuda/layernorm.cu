// Layer normalisation over rows of `cols` values (row-major), forward and backward; the
// numerics of kernels/src/cpu/layernorm.rs (biased variance by the corrected two-pass method,
// rstd = 1 / sqrt(var + eps), y = fma(xhat, gamma, beta)); unlike the CPU, rows whose f32
// sums overflow (|x| near 1e38, or |x - mean| above 1e19) are not recomputed in f64.
//
// The row matrices (x, residual, sum, y, dy, dx) are stored as T: f32, or bf16 in the kernels
// named with _bf16 (half the memory traffic). Either way all arithmetic and the statistics are
// f32, bf16 is read exactly and written rounded to nearest even; gamma, beta, mean, rstd and the
// parameter gradients are always f32. Each kernel body is a template on T, instantiated twice.
//
// W is the width of one memory access: 4 (a 16-byte float4, or 8 bytes of four bf16) when
// cols % 4 == 0, else 1. Every buffer is a whole device allocation (aligned to 256 bytes on
// ptx-sim and CUDA), so a row of a cols % 4 == 0 matrix starts aligned to an access of four. A
// thread's "chunk" i holds the W columns i*W .. i*W + W.
//
// Forward, one row per group of threads; `_res` kernels first form x + residual, write it to
// `sum` (the backward's input) and normalise that as stored (rounded, for bf16):
//   layernorm_fwd{,_res}{,_bf16}_{384,768,1024}  cols = 128 N (N = 3, 6, 8): a warp per row
//       holding its N chunks of 4 per lane in registers (one read of x). Block (128): 4 rows
//       per block, grid (ceil(rows / 4)).
//   layernorm_fwd{,_res}{,_bf16}_warp_w{1,4}     any cols < 2048: a warp per row, three
//       passes over the row (sum, centred squares, output; the re-reads hit L1). Block (128),
//       grid as above.
//   layernorm_fwd{,_res}{,_bf16}_block_w{1,4}    cols >= 2048: a block of 256 threads per
//       row, the same three passes. Grid (rows).
// Backward, deterministic: no float atomics, the same bits on every run and device.
//   layernorm_bwd{,_bf16}_w{1,4}: block b takes rows [b * rows_per_block, ...) one after
//       another with all its threads; thread t owns chunks t, t + B, ... (at most MAXN = 8 / W
//       of them, B = blockDim.x) and keeps their dgamma/dbeta partial sums in registers over
//       its rows, then writes them to partial[b, :] (dgamma) and partial[gridDim.x + b, :] (dbeta).
//       Grid (num_blocks), block (B, a multiple of 32, B * MAXN * W >= cols), B at most
//       BWD_THREADS_W4 = 1024 for _w4 and BWD_THREADS_W1 = 640 for _w1 (their
//       __launch_bounds__: a block must fit the SM's 64 Ki registers, and at 1024 threads the
//       _w1 kernels would spill), so the widest rows are 8192 and 5120 columns.
//   layernorm_bwd{,_bf16}_wide_w{1,4}: rows wider than that, any width. The same sums and the
//       same partial rows, but in two passes over each row in global memory (sums, then dx:
//       nothing of a row stays in registers), and the dgamma/dbeta partials kept in
//       partial[b, :] itself, each chunk updated by the one thread that owns it (so neither
//       races nor depends on timing). Grid (num_blocks), block (BWD_THREADS_WIDE).
//   layernorm_bwd_params: dgamma[c] = sum_b partial[b, c], dbeta likewise, in a fixed order.
//       Block (32, 8): column blockIdx.x * 32 + tx; thread (tx, ty) adds partial rows ty,
//       ty + 8, ... in turn, then thread (tx, 0) adds the 8 results in ty order.
//       Grid (ceil(cols / 32)).
//
// Backward derivation (kernels/src/cpu/layernorm.rs): with xhat = (x - mean) * rstd and
// g = dy * gamma, dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).

#include "common.cuh"

#define BWD_FLOATS 8
#define BWD_THREADS_W4 1024
#define BWD_THREADS_W1 640
#define BWD_THREADS_WIDE 1024

__device__ __forceinline__ float warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(FULL, v, off);
    return v;
}

// A warp working on one row: every lane gets the same sums (the butterfly adds the same pairs).
struct WarpGroup {
    int rank;
    static constexpr int size = 32;
    template <int K>
    __device__ __forceinline__ void sum(float (&v)[K]) {
#pragma unroll
        for (int k = 0; k < K; k++) v[k] = warp_sum(v[k]);
    }
};

// A block working on one row. Each sum is one barrier: warp totals go to one of two shared
// slots, used in turn, so a slot is rewritten only after the next sum's barrier, by which time
// every thread has read it. Every thread adds the warp totals in warp order.
template <int K>
struct BlockGroup {
    int rank;
    int size;
    float (*slots)[32][K];  // [2][32][K] shared
    int parity;
    // Sums J <= K values at once.
    template <int J>
    __device__ __forceinline__ void sum(float (&v)[J]) {
        static_assert(J <= K, "more sums than slots");
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
        for (int k = 0; k < J; k++) v[k] = warp_sum(v[k]);
        float(*slot)[K] = slots[parity];
        parity ^= 1;
        if (lane == 0) {
#pragma unroll
            for (int k = 0; k < J; k++) slot[warp][k] = v[k];
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < J; k++) v[k] = 0.0f;
        for (int w = 0; w < (size >> 5); w++) {
#pragma unroll
            for (int k = 0; k < J; k++) v[k] += slot[w][k];
        }
    }
};

// The arguments of a forward launch. `residual` and `sum` are used by the _res kernels only.
template <class T>
struct Fwd {
    const T* x;
    const T* residual;
    T* sum;
    const float* gamma;
    const float* beta;
    T* y;
    float* mean;
    float* rstd;
    int rows;
    int cols;
    float eps;
};

// The row's input chunk i: x, or x + residual as written to `sum` (rounded to T).
template <int W, bool RES, class T>
__device__ __forceinline__ Vec<W> input(const Fwd<T>& a, size_t off, int i) {
    Vec<W> v = load<W>(a.x + off + i * W);
    if constexpr (RES) {
        Vec<W> r = load<W>(a.residual + off + i * W);
#pragma unroll
        for (int k = 0; k < W; k++) v.v[k] += r.v[k];
        v = store<W>(a.sum + off + i * W, v);
    }
    return v;
}

// y chunk i of a row from its input chunk v.
template <int W, class T>
__device__ __forceinline__ void output(const Fwd<T>& a, size_t off, int i, const Vec<W>& v,
                                       float mean, float rstd) {
    Vec<W> g = load<W>(a.gamma + i * W), b = load<W>(a.beta + i * W), out;
#pragma unroll
    for (int k = 0; k < W; k++) out.v[k] = fmaf((v.v[k] - mean) * rstd, g.v[k], b.v[k]);
    store<W>(a.y + off + i * W, out);
}

// The row's statistics from the first mean `mean` and the centred sums `c` = {sum of d, sum
// of d^2} (d = x - mean): the corrected two-pass method, as on the CPU. The rounded mean is
// off by an ulp or so, which sum(d) corrects; without it a constant row had a variance of
// ulp^2, and 1 / sqrt(ulp^2 + 1e-12) scaled its rounding error up to -0.1 instead of 0.
// Saves mean and rstd = 1 / sqrt(var + eps); returns {mean, rstd}.
template <class T>
__device__ __forceinline__ float2 finish_stats(const Fwd<T>& a, int row, int rank, float mean,
                                               const float (&c)[2]) {
    const float shift = c[0] * (1.0f / a.cols);
    const float var = fmaxf(c[1] * (1.0f / a.cols) - shift * shift, 0.0f);
    const float2 stats = make_float2(mean + shift, 1.0f / sqrtf(var + a.eps));
    if (rank == 0) {
        a.mean[row] = stats.x;
        a.rstd[row] = stats.y;
    }
    return stats;
}

// One row by a group of threads, three passes over memory.
template <int W, bool RES, class T, class G>
__device__ __forceinline__ void forward_row(const Fwd<T>& a, int row, G& g) {
    const size_t off = (size_t)row * a.cols;
    const int n = a.cols / W;
    float s[1] = {0.0f};
    for (int i = g.rank; i < n; i += g.size) {
        Vec<W> v = input<W, RES>(a, off, i);
#pragma unroll
        for (int k = 0; k < W; k++) s[0] += v.v[k];
    }
    g.sum(s);
    const float mean = s[0] * (1.0f / a.cols);
    // The passes below read back what this thread wrote to `sum`.
    const T* src = RES ? a.sum : a.x;
    float c[2] = {0.0f, 0.0f};
    for (int i = g.rank; i < n; i += g.size) {
        Vec<W> v = load<W>(src + off + i * W);
#pragma unroll
        for (int k = 0; k < W; k++) {
            const float d = v.v[k] - mean;
            c[0] += d;
            c[1] = fmaf(d, d, c[1]);
        }
    }
    g.sum(c);
    const float2 stats = finish_stats(a, row, g.rank, mean, c);
    for (int i = g.rank; i < n; i += g.size) {
        output<W>(a, off, i, load<W>(src + off + i * W), stats.x, stats.y);
    }
}

// One row of 128 N columns by a warp, lane l holding chunks (of 4) l, l + 32, ... in registers.
template <int N, bool RES, class T>
__device__ __forceinline__ void forward_row_regs(const Fwd<T>& a, int row, int lane) {
    const size_t off = (size_t)row * (N * 128);
    Vec<4> v[N];
    float s[1] = {0.0f};
#pragma unroll
    for (int j = 0; j < N; j++) {
        v[j] = input<4, RES>(a, off, j * 32 + lane);
#pragma unroll
        for (int k = 0; k < 4; k++) s[0] += v[j].v[k];
    }
    WarpGroup g{lane};
    g.sum(s);
    const float mean = s[0] * (1.0f / (N * 128));
    float c[2] = {0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < N; j++) {
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float d = v[j].v[k] - mean;
            c[0] += d;
            c[1] = fmaf(d, d, c[1]);
        }
    }
    g.sum(c);
    const float2 stats = finish_stats(a, row, lane, mean, c);
#pragma unroll
    for (int j = 0; j < N; j++) output<4>(a, off, j * 32 + lane, v[j], stats.x, stats.y);
}

// Warp-per-row kernels: a warp past the last row leaves at once (they have no barrier).
template <int W, int N, bool RES, class T>
__device__ __forceinline__ void forward_warp(const Fwd<T>& a) {
    const int row = blockIdx.x * WARP_ROWS + (threadIdx.x >> 5);
    if (row >= a.rows) return;
    if constexpr (N > 0) {
        forward_row_regs<N, RES>(a, row, threadIdx.x & 31);
    } else {
        WarpGroup g{(int)(threadIdx.x & 31)};
        forward_row<W, RES>(a, row, g);
    }
}

template <int W, bool RES, class T>
__device__ __forceinline__ void forward_block(const Fwd<T>& a) {
    __shared__ float slots[2][32][2];
    BlockGroup<2> g{(int)threadIdx.x, (int)blockDim.x, slots, 0};
    forward_row<W, RES>(a, blockIdx.x, g);
}

#define FWD_PARAMS(T)                                                                          \
    const T *__restrict__ x, const float *__restrict__ gamma, const float *__restrict__ beta,  \
        T *__restrict__ y, float *__restrict__ mean, float *__restrict__ rstd, int rows,       \
        int cols, float eps
#define FWD_ARGS(T) Fwd<T>{x, nullptr, nullptr, gamma, beta, y, mean, rstd, rows, cols, eps}
#define RES_PARAMS(T)                                                                          \
    const T *__restrict__ x, const T *__restrict__ residual, T *__restrict__ sum,              \
        const float *__restrict__ gamma, const float *__restrict__ beta, T *__restrict__ y,    \
        float *__restrict__ mean, float *__restrict__ rstd, int rows, int cols, float eps
#define RES_ARGS(T) Fwd<T>{x, residual, sum, gamma, beta, y, mean, rstd, rows, cols, eps}

// layernorm_fwd_TAG SUFFIX and layernorm_fwd_res_TAG SUFFIX: BODY on rows stored as T.
#define FWD_PAIR(SUFFIX, BODY, T, TAG)                                                         \
    extern "C" __global__ void layernorm_fwd_##TAG##SUFFIX(FWD_PARAMS(T)) {                    \
        BODY<false>(FWD_ARGS(T));                                                              \
    }                                                                                          \
    extern "C" __global__ void layernorm_fwd_res_##TAG##SUFFIX(RES_PARAMS(T)) {                \
        BODY<true>(RES_ARGS(T));                                                               \
    }
#define FWD_KERNELS(SUFFIX, BODY)                                                              \
    FWD_PAIR(SUFFIX, BODY, float, ) FWD_PAIR(SUFFIX, BODY, bf16, bf16_)

template <bool RES, class T>
__device__ void fwd_384(const Fwd<T>& a) { forward_warp<4, 3, RES>(a); }
template <bool RES, class T>
__device__ void fwd_768(const Fwd<T>& a) { forward_warp<4, 6, RES>(a); }
template <bool RES, class T>
__device__ void fwd_1024(const Fwd<T>& a) { forward_warp<4, 8, RES>(a); }
template <bool RES, class T>
__device__ void fwd_warp_w1(const Fwd<T>& a) { forward_warp<1, 0, RES>(a); }
template <bool RES, class T>
__device__ void fwd_warp_w4(const Fwd<T>& a) { forward_warp<4, 0, RES>(a); }
template <bool RES, class T>
__device__ void fwd_block_w1(const Fwd<T>& a) { forward_block<1, RES>(a); }
template <bool RES, class T>
__device__ void fwd_block_w4(const Fwd<T>& a) { forward_block<4, RES>(a); }

FWD_KERNELS(384, fwd_384)
FWD_KERNELS(768, fwd_768)
FWD_KERNELS(1024, fwd_1024)
FWD_KERNELS(warp_w1, fwd_warp_w1)
FWD_KERNELS(warp_w4, fwd_warp_w4)
FWD_KERNELS(block_w1, fwd_block_w1)
FWD_KERNELS(block_w4, fwd_block_w4)

// dx for the rows of this block and its dgamma/dbeta partial sums (see the top of the file).
template <int W, class T>
__device__ __forceinline__ void backward_rows(const T* __restrict__ dy,
                                              const T* __restrict__ x,
                                              const float* __restrict__ gamma,
                                              const float* __restrict__ mean,
                                              const float* __restrict__ rstd,
                                              T* __restrict__ dx,
                                              float* __restrict__ partial, int rows, int cols,
                                              int rows_per_block) {
    constexpr int MAXN = BWD_FLOATS / W;
    __shared__ float slots[2][32][2];
    BlockGroup<2> group{(int)threadIdx.x, (int)blockDim.x, slots, 0};
    const int n = cols / W;
    const float inv_n = 1.0f / cols;
    int chunk[MAXN];
    bool mine[MAXN];
    Vec<W> dgamma[MAXN], dbeta[MAXN];
#pragma unroll
    for (int j = 0; j < MAXN; j++) {
        chunk[j] = j * blockDim.x + threadIdx.x;
        mine[j] = chunk[j] < n;
        dgamma[j] = Vec<W>{};
        dbeta[j] = Vec<W>{};
    }
    const int first = blockIdx.x * rows_per_block;
    const int last = first + min(rows_per_block, rows - first);  // no overflow near INT_MAX
    for (int r = first; r < last; r++) {
        const size_t off = (size_t)r * cols;
        const float m = mean[r], s = rstd[r];
        Vec<W> g[MAXN], xhat[MAXN];
        // sums[0] = sum(g), sums[1] = sum(g * xhat) over the row.
        float sums[2] = {0.0f, 0.0f};
#pragma unroll
        for (int j = 0; j < MAXN; j++) {
            if (!mine[j]) continue;
            Vec<W> d = load<W>(dy + off + chunk[j] * W), v = load<W>(x + off + chunk[j] * W);
            Vec<W> gam = load<W>(gamma + chunk[j] * W);
#pragma unroll
            for (int k = 0; k < W; k++) {
                xhat[j].v[k] = (v.v[k] - m) * s;
                g[j].v[k] = d.v[k] * gam.v[k];
                sums[0] += g[j].v[k];
                sums[1] = fmaf(g[j].v[k], xhat[j].v[k], sums[1]);
                dgamma[j].v[k] = fmaf(d.v[k], xhat[j].v[k], dgamma[j].v[k]);
                dbeta[j].v[k] += d.v[k];
            }
        }
        group.sum(sums);
        const float a = sums[0] * inv_n, minus_b = -sums[1] * inv_n;
#pragma unroll
        for (int j = 0; j < MAXN; j++) {
            if (!mine[j]) continue;
            Vec<W> out;
#pragma unroll
            for (int k = 0; k < W; k++) out.v[k] = s * fmaf(xhat[j].v[k], minus_b, g[j].v[k] - a);
            store<W>(dx + off + chunk[j] * W, out);
        }
    }
    float* pg = partial + (size_t)blockIdx.x * cols;
    float* pb = partial + (size_t)(gridDim.x + blockIdx.x) * cols;
#pragma unroll
    for (int j = 0; j < MAXN; j++) {
        if (!mine[j]) continue;
        store<W>(pg + chunk[j] * W, dgamma[j]);
        store<W>(pb + chunk[j] * W, dbeta[j]);
    }
}

// The wide rows' dx and partial sums (see the top of the file): chunks i = t, t + B, ... of
// thread t, as many as the row has.
template <int W, class T>
__device__ __forceinline__ void backward_rows_wide(const T* __restrict__ dy,
                                                   const T* __restrict__ x,
                                                   const float* __restrict__ gamma,
                                                   const float* __restrict__ mean,
                                                   const float* __restrict__ rstd,
                                                   T* __restrict__ dx,
                                                   float* __restrict__ partial, int rows,
                                                   int cols, int rows_per_block) {
    __shared__ float slots[2][32][2];
    BlockGroup<2> group{(int)threadIdx.x, (int)blockDim.x, slots, 0};
    const int n = cols / W;
    const float inv_n = 1.0f / cols;
    float* pg = partial + (size_t)blockIdx.x * cols;
    float* pb = partial + (size_t)(gridDim.x + blockIdx.x) * cols;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        store<W>(pg + i * W, Vec<W>{});
        store<W>(pb + i * W, Vec<W>{});
    }
    const int first = blockIdx.x * rows_per_block;
    const int last = first + min(rows_per_block, rows - first);  // no overflow near INT_MAX
    for (int r = first; r < last; r++) {
        const size_t off = (size_t)r * cols;
        const float m = mean[r], s = rstd[r];
        // sums[0] = sum(g), sums[1] = sum(g * xhat) over the row.
        float sums[2] = {0.0f, 0.0f};
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            Vec<W> d = load<W>(dy + off + i * W), v = load<W>(x + off + i * W);
            Vec<W> gam = load<W>(gamma + i * W);
            Vec<W> dg = load<W>(pg + i * W), db = load<W>(pb + i * W);
#pragma unroll
            for (int k = 0; k < W; k++) {
                const float xhat = (v.v[k] - m) * s, g = d.v[k] * gam.v[k];
                sums[0] += g;
                sums[1] = fmaf(g, xhat, sums[1]);
                dg.v[k] = fmaf(d.v[k], xhat, dg.v[k]);
                db.v[k] += d.v[k];
            }
            store<W>(pg + i * W, dg);
            store<W>(pb + i * W, db);
        }
        group.sum(sums);
        const float a = sums[0] * inv_n, minus_b = -sums[1] * inv_n;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            Vec<W> d = load<W>(dy + off + i * W), v = load<W>(x + off + i * W);
            Vec<W> gam = load<W>(gamma + i * W), out;
#pragma unroll
            for (int k = 0; k < W; k++) {
                const float xhat = (v.v[k] - m) * s, g = d.v[k] * gam.v[k];
                out.v[k] = s * fmaf(xhat, minus_b, g - a);
            }
            store<W>(dx + off + i * W, out);
        }
    }
}

#define BWD_PARAMS(T)                                                                          \
    const T *__restrict__ dy, const T *__restrict__ x, const float *__restrict__ gamma,        \
        const float *__restrict__ mean, const float *__restrict__ rstd, T *__restrict__ dx,    \
        float *__restrict__ partial, int rows, int cols, int rows_per_block
#define BWD_ARGS dy, x, gamma, mean, rstd, dx, partial, rows, cols, rows_per_block

extern "C" __global__ void __launch_bounds__(BWD_THREADS_W1)
    layernorm_bwd_w1(BWD_PARAMS(float)) { backward_rows<1>(BWD_ARGS); }
extern "C" __global__ void __launch_bounds__(BWD_THREADS_W4)
    layernorm_bwd_w4(BWD_PARAMS(float)) { backward_rows<4>(BWD_ARGS); }
extern "C" __global__ void __launch_bounds__(BWD_THREADS_W1)
    layernorm_bwd_bf16_w1(BWD_PARAMS(bf16)) { backward_rows<1>(BWD_ARGS); }
extern "C" __global__ void __launch_bounds__(BWD_THREADS_W4)
    layernorm_bwd_bf16_w4(BWD_PARAMS(bf16)) { backward_rows<4>(BWD_ARGS); }
extern "C" __global__ void __launch_bounds__(BWD_THREADS_WIDE)
    layernorm_bwd_wide_w1(BWD_PARAMS(float)) { backward_rows_wide<1>(BWD_ARGS); }
extern "C" __global__ void __launch_bounds__(BWD_THREADS_WIDE)
    layernorm_bwd_wide_w4(BWD_PARAMS(float)) { backward_rows_wide<4>(BWD_ARGS); }
extern "C" __global__ void __launch_bounds__(BWD_THREADS_WIDE)
    layernorm_bwd_bf16_wide_w1(BWD_PARAMS(bf16)) { backward_rows_wide<1>(BWD_ARGS); }
extern "C" __global__ void __launch_bounds__(BWD_THREADS_WIDE)
    layernorm_bwd_bf16_wide_w4(BWD_PARAMS(bf16)) { backward_rows_wide<4>(BWD_ARGS); }

extern "C" __global__ void layernorm_bwd_params(const float* __restrict__ partial,
                                                float* __restrict__ dgamma,
                                                float* __restrict__ dbeta, int num_blocks,
                                                int cols) {
    __shared__ float sums[2][8][32];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * 32 + tx;
    float sg = 0.0f, sb = 0.0f;
    if (c < cols) {
        for (int b = ty; b < num_blocks; b += 8) {
            sg += partial[(size_t)b * cols + c];
            sb += partial[(size_t)(num_blocks + b) * cols + c];
        }
    }
    sums[0][ty][tx] = sg;
    sums[1][ty][tx] = sb;
    __syncthreads();
    if (ty == 0 && c < cols) {
        for (int k = 1; k < 8; k++) {
            sg += sums[0][k][tx];
            sb += sums[1][k][tx];
        }
        dgamma[c] = sg;
        dbeta[c] = sb;
    }
}

// Row softmax forward/backward, exact GELU forward/backward and the bias (+ residual) add, on
// f32 row-major data; the numerics of kernels/src/cpu/softmax and kernels/src/cpu/activation.rs.
//
// W is the width of one memory access: 4 (float4) when cols % 4 == 0, else 1. Every buffer is a
// whole device allocation (aligned to 256 bytes on ptx-sim and CUDA), so a row of a
// cols % 4 == 0 matrix starts 16-byte aligned. A thread's "chunk" i holds columns i*W .. i*W + W.
//
// softmax_fwd{,_mask}_{warp,block}_w{1,4}: y[r, :] = softmax(scale * x[r, :] (+ mask row
//     r / repeat)), three passes per row: max of the logits; e = exp(logit - max) written to y
//     and summed; y *= 1 / sum. A row whose logits are all -inf becomes zeros.
// softmax_bwd_{warp,block}_w{1,4}: dx = (scale * y) * (dy - sum_j dy[j] y[j]) per row.
//     _warp: a warp per row, block (128) = 4 rows, grid (ceil(rows / 4)), for cols < 2048;
//     _block: a block of 256 threads per row, grid (rows), for cols >= 2048.
// gelu_fwd:  y = x * Phi(x), Phi(x) = 0.5 (1 + erf(x / sqrt 2)), n elements.
// gelu_bwd:  dx = dy * (Phi(x) + x * exp(-x^2 / 2) / sqrt(2 pi)).
//     Threads take float4 chunks (grid-stride), the n % 4 tail elements go to the first
//     threads. Block (256), grid (min(ceil(n / 1024), 65535)), at least 1.
// bias_add_w{1,4}:          out[r, c] = x[r, c] + bias[c]
// bias_residual_add_w{1,4}: out[r, c] = (x[r, c] + bias[c]) + residual[r, c]
//     Thread (blockIdx.x * blockDim.x + tx) owns chunk of columns, rows blockIdx.y,
//     blockIdx.y + gridDim.y, ...; block (B <= 256, a multiple of 32), grid (ceil(chunks / B),
//     min(rows, 65535)).
// The elementwise kernels (GELU, bias add) may run in place: out may be an input buffer.

#include "common.cuh"

#define NEG_INF __int_as_float(0xff800000)
#define FRAC_1_SQRT_2 0.70710677f
#define FRAC_1_SQRT_2PI 0.3989423f

struct Sum {
    static __device__ __forceinline__ float apply(float a, float b) { return a + b; }
    static __device__ __forceinline__ float identity() { return 0.0f; }
};
struct Max {
    static __device__ __forceinline__ float apply(float a, float b) { return fmaxf(a, b); }
    static __device__ __forceinline__ float identity() { return NEG_INF; }
};

template <class Op>
__device__ __forceinline__ float warp_reduce(float v) {
    for (int off = 16; off > 0; off >>= 1) v = Op::apply(v, __shfl_xor_sync(FULL, v, off));
    return v;
}

// A warp working on one row: every lane gets the same result (the butterfly combines the same
// pairs on both sides).
struct WarpGroup {
    int rank;
    static constexpr int size = 32;
    template <class Op>
    __device__ __forceinline__ float reduce(float v) {
        return warp_reduce<Op>(v);
    }
};

// A block working on one row. Each reduction is one barrier: warp results go to one of two
// shared slots, used in turn, so a slot is rewritten only after the next reduction's barrier,
// by which time every thread has read it. Every thread combines the warp results in warp order.
struct BlockGroup {
    int rank;
    int size;
    float (*slots)[32];  // [2][32] shared
    int parity;
    template <class Op>
    __device__ __forceinline__ float reduce(float v) {
        v = warp_reduce<Op>(v);
        float* slot = slots[parity];
        parity ^= 1;
        if ((threadIdx.x & 31) == 0) slot[threadIdx.x >> 5] = v;
        __syncthreads();
        v = Op::identity();
        for (int w = 0; w < (size >> 5); w++) v = Op::apply(v, slot[w]);
        return v;
    }
};

// The arguments of a softmax forward launch; `mask` is null without a mask.
struct Fwd {
    const float* x;
    const float* mask;
    float* y;
    int rows;
    int cols;
    float scale;
    int repeat;
};

template <int W, bool MASK, class G>
__device__ __forceinline__ void softmax_row(const Fwd& a, int row, G& g) {
    const size_t off = (size_t)row * a.cols;
    const int n = a.cols / W;
    const float* x = a.x + off;
    const float* mask = MASK ? a.mask + (size_t)(row / a.repeat) * a.cols : nullptr;
    float* y = a.y + off;
    // Logit k of chunk i.
    auto logits = [&](int i) {
        Vec<W> z = load<W>(x + i * W);
        if constexpr (MASK) {
            Vec<W> m = load<W>(mask + i * W);
#pragma unroll
            for (int k = 0; k < W; k++) z.v[k] = fmaf(a.scale, z.v[k], m.v[k]);
        } else {
#pragma unroll
            for (int k = 0; k < W; k++) z.v[k] = a.scale * z.v[k];
        }
        return z;
    };
    float max = NEG_INF;
    for (int i = g.rank; i < n; i += g.size) {
        Vec<W> z = logits(i);
#pragma unroll
        for (int k = 0; k < W; k++) max = fmaxf(max, z.v[k]);
    }
    max = g.template reduce<Max>(max);
    if (max == NEG_INF) {
        // Every logit is -inf (the same in every thread): no distribution, an all-zero row.
        for (int i = g.rank; i < n; i += g.size) store<W>(y + i * W, Vec<W>{});
        return;
    }
    float sum = 0.0f;
    for (int i = g.rank; i < n; i += g.size) {
        Vec<W> e;
        if constexpr (MASK) {
            e = logits(i);
#pragma unroll
            for (int k = 0; k < W; k++) e.v[k] = expf(e.v[k] - max);
        } else {
            e = load<W>(x + i * W);
#pragma unroll
            for (int k = 0; k < W; k++) e.v[k] = expf(fmaf(a.scale, e.v[k], -max));
        }
#pragma unroll
        for (int k = 0; k < W; k++) sum += e.v[k];
        store<W>(y + i * W, e);
    }
    const float inv = 1.0f / g.template reduce<Sum>(sum);
    // Reads back what this thread wrote above.
    for (int i = g.rank; i < n; i += g.size) {
        Vec<W> e = load<W>(y + i * W);
#pragma unroll
        for (int k = 0; k < W; k++) e.v[k] *= inv;
        store<W>(y + i * W, e);
    }
}

template <int W, class G>
__device__ __forceinline__ void softmax_backward_row(const float* __restrict__ y,
                                                     const float* __restrict__ dy,
                                                     float* __restrict__ dx, int cols,
                                                     float scale, int row, G& g) {
    const size_t off = (size_t)row * cols;
    const int n = cols / W;
    float dot = 0.0f;
    for (int i = g.rank; i < n; i += g.size) {
        Vec<W> a = load<W>(y + off + i * W), b = load<W>(dy + off + i * W);
#pragma unroll
        for (int k = 0; k < W; k++) dot = fmaf(a.v[k], b.v[k], dot);
    }
    dot = g.template reduce<Sum>(dot);
    for (int i = g.rank; i < n; i += g.size) {
        Vec<W> a = load<W>(y + off + i * W), b = load<W>(dy + off + i * W), out;
#pragma unroll
        for (int k = 0; k < W; k++) out.v[k] = (scale * a.v[k]) * (b.v[k] - dot);
        store<W>(dx + off + i * W, out);
    }
}

// Runs body(row, group) for this thread's row: a warp per row (a warp past the last row leaves
// at once; these kernels have no barrier) or a block per row.
template <bool BLOCK, class Body>
__device__ __forceinline__ void per_row(int rows, Body body) {
    if constexpr (BLOCK) {
        __shared__ float slots[2][32];
        BlockGroup g{(int)threadIdx.x, (int)blockDim.x, slots, 0};
        body(blockIdx.x, g);
    } else {
        const int row = blockIdx.x * WARP_ROWS + (threadIdx.x >> 5);
        if (row >= rows) return;
        WarpGroup g{(int)(threadIdx.x & 31)};
        body(row, g);
    }
}

template <int W, bool MASK, bool BLOCK>
__device__ __forceinline__ void softmax_fwd(const Fwd& a) {
    per_row<BLOCK>(a.rows, [&](int row, auto& g) { softmax_row<W, MASK>(a, row, g); });
}

template <int W, bool BLOCK>
__device__ __forceinline__ void softmax_bwd(const float* __restrict__ y,
                                            const float* __restrict__ dy,
                                            float* __restrict__ dx, int rows, int cols,
                                            float scale) {
    per_row<BLOCK>(rows, [&](int row, auto& g) {
        softmax_backward_row<W>(y, dy, dx, cols, scale, row, g);
    });
}

#define SOFTMAX_KERNELS(SUFFIX, W, BLOCK)                                                      \
    extern "C" __global__ void softmax_fwd_##SUFFIX(const float* __restrict__ x,              \
                                                    float* __restrict__ y, int rows, int cols, \
                                                    float scale) {                             \
        softmax_fwd<W, false, BLOCK>(Fwd{x, nullptr, y, rows, cols, scale, 1});                \
    }                                                                                          \
    extern "C" __global__ void softmax_fwd_mask_##SUFFIX(                                     \
        const float* __restrict__ x, const float* __restrict__ mask, float* __restrict__ y,   \
        int rows, int cols, float scale, int repeat) {                                         \
        softmax_fwd<W, true, BLOCK>(Fwd{x, mask, y, rows, cols, scale, repeat});               \
    }                                                                                          \
    extern "C" __global__ void softmax_bwd_##SUFFIX(const float* __restrict__ y,              \
                                                    const float* __restrict__ dy,             \
                                                    float* __restrict__ dx, int rows,         \
                                                    int cols, float scale) {                   \
        softmax_bwd<W, BLOCK>(y, dy, dx, rows, cols, scale);                                   \
    }

SOFTMAX_KERNELS(warp_w1, 1, false)
SOFTMAX_KERNELS(warp_w4, 4, false)
SOFTMAX_KERNELS(block_w1, 1, true)
SOFTMAX_KERNELS(block_w4, 4, true)

// Phi(x) = 0.5 (1 + erf(x / sqrt 2)).
__device__ __forceinline__ float cdf(float x) { return fmaf(0.5f, erff(x * FRAC_1_SQRT_2), 0.5f); }

// out[i] = f(a[i], b[i]) for i < n: float4 chunks over a grid-stride loop, then the n % 4 tail
// elements on the first threads. No __restrict__: out may be a or b.
template <class F>
__device__ __forceinline__ void map2(const float* a, const float* b, float* out, int n, F f) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    const int n4 = n >> 2;
    for (int i = t; i < n4; i += gridDim.x * blockDim.x) {
        Vec<4> u = load<4>(a + 4 * i), v = load<4>(b + 4 * i), o;
#pragma unroll
        for (int k = 0; k < 4; k++) o.v[k] = f(u.v[k], v.v[k]);
        store<4>(out + 4 * i, o);
    }
    // t < n - 4 n4 rather than 4 n4 + t < n, which overflows for n near INT_MAX.
    if (t < n - 4 * n4) out[4 * n4 + t] = f(a[4 * n4 + t], b[4 * n4 + t]);
}

extern "C" __global__ void gelu_fwd(const float* x, float* y, int n) {
    map2(x, x, y, n, [](float v, float) { return v * cdf(v); });
}

extern "C" __global__ void gelu_bwd(const float* x, const float* dy, float* dx, int n) {
    map2(x, dy, dx, n, [](float v, float g) {
        const float pdf = expf((v * v) * -0.5f) * FRAC_1_SQRT_2PI;
        return g * fmaf(v, pdf, cdf(v));
    });
}

// See the top of the file. No __restrict__: out may be x or residual.
template <int W, bool RES>
__device__ __forceinline__ void bias_add(const float* x, const float* bias, const float* residual,
                                         float* out, int rows, int cols) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= cols / W) return;
    const Vec<W> b = load<W>(bias + i * W);
    // Unsigned: r + gridDim.y stays below 2^32 where an int would overflow near INT_MAX rows.
    for (unsigned r = blockIdx.y; r < (unsigned)rows; r += gridDim.y) {
        const size_t off = (size_t)r * cols + i * W;
        Vec<W> v = load<W>(x + off);
#pragma unroll
        for (int k = 0; k < W; k++) v.v[k] += b.v[k];
        if constexpr (RES) {
            const Vec<W> s = load<W>(residual + off);
#pragma unroll
            for (int k = 0; k < W; k++) v.v[k] += s.v[k];
        }
        store<W>(out + off, v);
    }
}

#define BIAS_KERNELS(SUFFIX, W)                                                                \
    extern "C" __global__ void bias_add_##SUFFIX(const float* x, const float* bias,           \
                                                 float* out, int rows, int cols) {            \
        bias_add<W, false>(x, bias, nullptr, out, rows, cols);                                 \
    }                                                                                          \
    extern "C" __global__ void bias_residual_add_##SUFFIX(const float* x, const float* bias,  \
                                                          const float* residual, float* out,  \
                                                          int rows, int cols) {               \
        bias_add<W, true>(x, bias, residual, out, rows, cols);                                 \
    }

BIAS_KERNELS(w1, 1)
BIAS_KERNELS(w4, 4)

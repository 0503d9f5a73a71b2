// Coverage of CUDA features the other corpus files do not reach. One small kernel per feature;
// tests/coverage.rs checks each against plain Rust (bit-exact where PTX defines the result).
//
// NVRTC 12.9 from PyPI ships no cuda_fp16.h, cuda_bf16.h or cooperative_groups.h, so the half,
// bfloat16 and tile code below uses the exact inline-asm strings those headers (CUDA 12.9-13.x)
// emit for sm_80 (`h_*`, `bf_*`), and the shuffles cooperative_groups::tiled_partition<16>
// makes (member mask 0xffff << (laneid & 16), c operand 0x101f for width 16).
//
// warp_exchange(in, out):        64 threads; neighbour exchange in shared memory ordered by
//                                __syncwarp(), then a volatile warp tree sum. out[2t], out[2t+1].
// syncwarp_in_branches(in, out): 32 threads; each half writes its slot and calls __syncwarp()
//                                in its own branch, then reads the other half's slot.
// warp_exchange_racy(in, out):   BUG: the same exchange without __syncwarp (Race).
// tile_sync_racy(in, out):       BUG: a 16-lane tile reads the other tile's slot after only its
//                                own tile's __syncwarp(mask) (Race).
// shfl64(x, y, od, ol):          32 threads a warp; butterfly sum of doubles and mix of
//                                long longs (__shfl_xor_sync on 64-bit values), a 64-bit
//                                broadcast and a width-8 __shfl_down_sync of a double.
// half_ops(x, y, oh, oi):        per item: 24 f16 results (oh) and 8 ints (oi), see below.
// bf16_ops(x, y, ob, of):        per item: 10 bf16 results (ob), 4 float results (of).
// atomics(x, out, n):            double atomicAdd, CAS-loop float max, atomicInc/atomicDec,
//                                block-scope add, shared atomics (u32, f32, u64, f16) of all
//                                threads, __half2 atomicAdd (layout above the kernel).
// int_intrinsics(a, b, out, n):  INT_OPS results per item.
// float_intrinsics(x, y, out, n): FLOAT_OPS results per item.
// cache_hints(in4, in, out4, out, n): __ldg/__ldcs/__ldcg/__ldca/__ldlu/__ldcv, __stcs/__stwb/
//                                __stcg/__stwt.
// grid_stride_2d(in, out, w, h): 2-D grid-stride loop, out[y*w+x] = in[y*w+x] * 2 + x - y.
// unrolled_dot<8>(x, y, out, n): __launch_bounds__(128, 2), #pragma unroll; one dot of 8 per item.
// struct_return(x, out, n):      a __noinline__ function returning a 16-byte struct.
// switch_ops(op, x, out, n):     a dense switch on op[i] & 7.
// divergent_ballot(x, out):      __activemask and __ballot_sync inside `if (lane % 3 == 0)`.
// warp_match_reduce(x, out):     __match_any_sync, __match_all_sync, __reduce_*_sync.
// tile16(x, out):                tiled_partition<16> shfl_down/shfl_xor/ballot/sync.
// sync_count(x, out):            __syncthreads_count/_and/_or.
// say_hello(v):                  printf (vprintf): must be reported as unsupported.

#define FULL 0xffffffffu

// ---------------------------------------------------------------------------------------------
// Warp-synchronous shared memory
// ---------------------------------------------------------------------------------------------

extern "C" __global__ void warp_exchange(const int* __restrict__ in, int* __restrict__ out) {
    __shared__ int s[64];
    int t = threadIdx.x;
    int base = t & ~31, lane = t & 31;
    s[t] = in[t] * 3 + 1;
    __syncwarp();
    int v = s[t ^ 1] + s[base | ((lane + 5) & 31)];
    __syncwarp();
    s[t] = v;  // overwrites slots the neighbours read before the second __syncwarp
    __syncwarp();
    volatile int* vs = s;
    for (int o = 16; o > 0; o >>= 1) {
        if (lane < o) vs[t] = vs[t] + vs[t + o];
        __syncwarp();
    }
    out[2 * t] = v;
    out[2 * t + 1] = vs[base];
}

// A __syncwarp() in each branch: on sm_70 and later the two calls synchronise with each other.
extern "C" __global__ void syncwarp_in_branches(const int* __restrict__ in, int* __restrict__ out) {
    __shared__ int s[32];
    int lane = threadIdx.x & 31;
    if (lane < 16) {
        s[lane] = in[lane] + 100;
        __syncwarp();
    } else {
        s[lane] = in[lane] * 2;
        __syncwarp();
    }
    out[lane] = s[lane ^ 16];
}

extern "C" __global__ void warp_exchange_racy(const int* __restrict__ in, int* __restrict__ out) {
    __shared__ int s[64];
    int t = threadIdx.x;
    s[t] = in[t] * 3 + 1;
    out[t] = s[t ^ 1];  // BUG: no __syncwarp between the neighbour's write and this read
}

extern "C" __global__ void tile_sync_racy(const int* __restrict__ in, int* __restrict__ out) {
    __shared__ int s[32];
    unsigned lane;
    asm("mov.u32 %0, %%laneid;" : "=r"(lane));
    unsigned tile_mask = 0xffffu << (lane & 16);
    s[lane] = in[lane];
    __syncwarp(tile_mask);    // orders the lanes of one tile only
    out[lane] = s[lane ^ 16];  // BUG: reads the other tile's slot
}

// ---------------------------------------------------------------------------------------------
// 64-bit shuffles
// ---------------------------------------------------------------------------------------------

extern "C" __global__ void shfl64(const double* __restrict__ x, const long long* __restrict__ y,
                                  double* __restrict__ od, long long* __restrict__ ol) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    double v = x[i];
    long long u = y[i];
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(FULL, v, o);
        u = u * 3 + __shfl_xor_sync(FULL, u, o);
    }
    od[3 * i] = v;
    od[3 * i + 1] = __shfl_down_sync(FULL, x[i], 3, 8);
    od[3 * i + 2] = __shfl_sync(FULL, x[i], (lane * 7) & 31);
    ol[2 * i] = u;
    ol[2 * i + 1] = __shfl_up_sync(FULL, y[i], 5);
}

// ---------------------------------------------------------------------------------------------
// __half / __half2 (the inline asm of cuda_fp16.hpp)
// ---------------------------------------------------------------------------------------------

typedef unsigned short h16;
typedef unsigned int h32;

__device__ __forceinline__ h16 h_from_float(float f) {
    h16 r;
    asm("{  cvt.rn.f16.f32 %0, %1;}\n" : "=h"(r) : "f"(f));
    return r;
}
__device__ __forceinline__ h16 h_from_float_rz(float f) {
    h16 r;
    asm("{  cvt.rz.f16.f32 %0, %1;}\n" : "=h"(r) : "f"(f));
    return r;
}
__device__ __forceinline__ h16 h_from_float_ru(float f) {
    h16 r;
    asm("{  cvt.rp.f16.f32 %0, %1;}\n" : "=h"(r) : "f"(f));
    return r;
}
__device__ __forceinline__ float h_to_float(h16 h) {
    float f;
    asm("{  cvt.f32.f16 %0, %1;}\n" : "=f"(f) : "h"(h));
    return f;
}
#define H_BINARY(fn, op)                                                             \
    __device__ __forceinline__ h16 fn(h16 a, h16 b) {                                \
        h16 r;                                                                       \
        asm("{" op ".f16 %0,%1,%2;\n}" : "=h"(r) : "h"(a), "h"(b));                  \
        return r;                                                                    \
    }
H_BINARY(h_add, "add")
H_BINARY(h_sub, "sub")
H_BINARY(h_mul, "mul")
H_BINARY(h_max, "max")
H_BINARY(h_min_nan, "min.NaN")
H_BINARY(h_add_sat, "add.sat")
#define H2_BINARY(fn, op)                                                            \
    __device__ __forceinline__ h32 fn(h32 a, h32 b) {                                \
        h32 r;                                                                       \
        asm("{" op ".f16x2 %0,%1,%2;\n}" : "=r"(r) : "r"(a), "r"(b));                \
        return r;                                                                    \
    }
H2_BINARY(h2_add, "add")
H2_BINARY(h2_mul, "mul")
H2_BINARY(h2_max, "max")
__device__ __forceinline__ h16 h_fma(h16 a, h16 b, h16 c) {
    h16 r;
    asm("{fma.rn.f16 %0,%1,%2,%3;\n}" : "=h"(r) : "h"(a), "h"(b), "h"(c));
    return r;
}
__device__ __forceinline__ h16 h_fma_relu(h16 a, h16 b, h16 c) {
    h16 r;
    asm("{fma.rn.relu.f16 %0,%1,%2,%3;\n}" : "=h"(r) : "h"(a), "h"(b), "h"(c));
    return r;
}
__device__ __forceinline__ h32 h2_fma(h32 a, h32 b, h32 c) {
    h32 r;
    asm("{fma.rn.f16x2 %0,%1,%2,%3;\n}" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
__device__ __forceinline__ h16 h_neg(h16 a) {
    h16 r;
    asm("{neg.f16 %0,%1;\n}" : "=h"(r) : "h"(a));
    return r;
}
__device__ __forceinline__ h16 h_abs(h16 a) {
    h16 r;
    asm("{abs.f16 %0,%1;\n}" : "=h"(r) : "h"(a));
    return r;
}
__device__ __forceinline__ h32 h2_neg(h32 a) {
    h32 r;
    asm("{neg.f16x2 %0,%1;\n}" : "=r"(r) : "r"(a));
    return r;
}
__device__ __forceinline__ bool h_lt(h16 a, h16 b) {
    h16 v;
    asm("{ .reg .pred __$temp3;\n"
        "  setp.lt.f16  __$temp3, %1, %2;\n"
        "  selp.u16 %0, 1, 0, __$temp3;}"
        : "=h"(v) : "h"(a), "h"(b));
    return v != 0;
}
__device__ __forceinline__ bool h_geu(h16 a, h16 b) {
    h16 v;
    asm("{ .reg .pred __$temp3;\n"
        "  setp.geu.f16  __$temp3, %1, %2;\n"
        "  selp.u16 %0, 1, 0, __$temp3;}"
        : "=h"(v) : "h"(a), "h"(b));
    return v != 0;
}
__device__ __forceinline__ bool h_isnan(h16 a) {
    h16 r;
    asm("{set.nan.f16.f16 %0,%1,%1;\n}" : "=h"(r) : "h"(a));
    return r != 0;
}
__device__ __forceinline__ h16 h_eq_as_half(h16 a, h16 b) {
    h16 r;
    asm("{.reg.b16 p;\n"
        "  set.eq.f16.f16 p,%1,%2;\n"
        "  mov.b16 %0,p;}\n"
        : "=h"(r) : "h"(a), "h"(b));
    return r;
}
__device__ __forceinline__ h32 h2_lt(h32 a, h32 b) {
    h32 r;
    asm("{ set.lt.f16x2.f16x2 %0,%1,%2;\n}" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
__device__ __forceinline__ h32 h2_from_floats(float lo, float hi) {
    h32 r;
    asm("{ cvt.rn.f16x2.f32 %0, %2, %1; }\n" : "=r"(r) : "f"(lo), "f"(hi));
    return r;
}
__device__ __forceinline__ h32 h2_pack(h16 lo, h16 hi) {
    h32 r;
    asm("{  mov.b32 %0, {%1,%2};}\n" : "=r"(r) : "h"(lo), "h"(hi));
    return r;
}
__device__ __forceinline__ float h2_low_float(h32 a) {
    float f;
    asm("{.reg .f16 low,high;\n"
        "  mov.b32 {low,high},%1;\n"
        "  cvt.f32.f16 %0, low;}\n"
        : "=f"(f) : "r"(a));
    return f;
}
__device__ __forceinline__ float h2_high_float(h32 a) {
    float f;
    asm("{.reg .f16 low,high;\n"
        "  mov.b32 {low,high},%1;\n"
        "  cvt.f32.f16 %0, high;}\n"
        : "=f"(f) : "r"(a));
    return f;
}
__device__ __forceinline__ h16 h_rint(h16 a) {
    h16 r;
    asm("cvt.rni.f16.f16 %0, %1;" : "=h"(r) : "h"(a));
    return r;
}
__device__ __forceinline__ int h_to_int_rz(h16 a) {
    int i;
    asm("cvt.rzi.s32.f16 %0, %1;" : "=r"(i) : "h"(a));
    return i;
}
__device__ __forceinline__ h16 h_from_int(int i) {
    h16 r;
    asm("cvt.rn.f16.s32 %0, %1;" : "=h"(r) : "r"(i));
    return r;
}
__device__ __forceinline__ h16 h_ex2(h16 a) {
    h16 r;
    asm("{ex2.approx.f16 %0, %1;\n}" : "=h"(r) : "h"(a));
    return r;
}
__device__ __forceinline__ h16 h_tanh(h16 a) {
    h16 r = a;
    asm("tanh.approx.f16 %0, %0;" : "+h"(r));
    return r;
}

#define HALF_OPS 24
#define HALF_INTS 8

extern "C" __global__ void half_ops(const float* __restrict__ x, const float* __restrict__ y,
                                    h16* __restrict__ oh, int* __restrict__ oi, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    h16 a = h_from_float(x[i]), b = h_from_float_rz(y[i]);
    h16* o = oh + i * HALF_OPS;
    o[0] = a;
    o[1] = b;
    o[2] = h_add(a, b);
    o[3] = h_sub(a, b);
    o[4] = h_mul(a, b);
    o[5] = h_fma(a, b, a);
    o[6] = h_neg(a);
    o[7] = h_abs(b);
    o[8] = h_max(a, b);
    o[9] = h_min_nan(a, b);
    o[10] = h_add_sat(a, b);
    o[11] = h_fma_relu(a, b, b);
    o[12] = h_rint(a);
    o[13] = h_from_int(i * 1000 - 7777);
    o[14] = h_from_float_ru(x[i]);
    o[15] = h_eq_as_half(a, b);
    h32 p = h2_from_floats(x[i], y[i]);
    h32 q = h2_pack(b, a);
    h32 s = h2_add(p, q), m = h2_mul(p, q), f = h2_fma(p, q, p), mx = h2_max(p, q),
        ng = h2_neg(p), lt = h2_lt(p, q);
    o[16] = (h16)s;
    o[17] = (h16)(m >> 16);
    o[18] = (h16)f;
    o[19] = (h16)(mx >> 16);
    o[20] = (h16)ng;
    o[21] = (h16)(lt >> 16);
    o[22] = h_ex2(h_mul(a, h_from_float(0.125f)));
    o[23] = h_tanh(a);
    int* k = oi + i * HALF_INTS;
    k[0] = h_lt(a, b);
    k[1] = h_geu(a, b);
    k[2] = h_isnan(a);
    k[3] = h_to_int_rz(a);
    k[4] = __float_as_int(h2_low_float(f));
    k[5] = __float_as_int(h2_high_float(f));
    k[6] = __float_as_int(h_to_float(o[10]) + h_to_float(o[4]));
    k[7] = (int)lt;
}

// ---------------------------------------------------------------------------------------------
// __nv_bfloat16 (the inline asm of cuda_bf16.hpp for sm_80)
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ h16 bf_from_float(float f) {
    h16 r;
    asm("{  cvt.rn.bf16.f32 %0, %1;}\n" : "=h"(r) : "f"(f));
    return r;
}
__device__ __forceinline__ h16 bf_from_float_rz(float f) {
    h16 r;
    asm("{  cvt.rz.bf16.f32 %0, %1;}\n" : "=h"(r) : "f"(f));
    return r;
}
__device__ __forceinline__ float bf_to_float(h16 h) {
    float f;
    asm("{ mov.b32 %0, {0,%1};}\n" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ float bf_to_float_cvt(h16 h) {
    float f;
    asm("{ cvt.f32.bf16 %0, %1;}\n" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ h16 bf_add(h16 a, h16 b) {
    h16 r;
    asm("{.reg .b16 c;\n"
        "  mov.b16 c, 0x3f80U;\n"
        "  fma.rn.bf16 %0,%1,c,%2;}\n"
        : "=h"(r) : "h"(a), "h"(b));
    return r;
}
__device__ __forceinline__ h16 bf_mul(h16 a, h16 b) {
    h16 r;
    asm("{.reg .b16 c;\n"
        "  mov.b16 c, 0x8000U;\n"
        "  fma.rn.bf16 %0,%1,%2,c;}\n"
        : "=h"(r) : "h"(a), "h"(b));
    return r;
}
__device__ __forceinline__ h16 bf_fma(h16 a, h16 b, h16 c) {
    h16 r;
    asm("{fma.rn.bf16 %0,%1,%2,%3;\n}" : "=h"(r) : "h"(a), "h"(b), "h"(c));
    return r;
}
__device__ __forceinline__ h16 bf_max(h16 a, h16 b) {
    h16 r;
    asm("{ max.bf16 %0,%1,%2;\n}" : "=h"(r) : "h"(a), "h"(b));
    return r;
}
__device__ __forceinline__ h16 bf_min(h16 a, h16 b) {
    h16 r;
    asm("{ min.bf16 %0,%1,%2;\n}" : "=h"(r) : "h"(a), "h"(b));
    return r;
}
__device__ __forceinline__ h16 bf_neg(h16 a) {
    h16 r;
    asm("{neg.bf16 %0,%1;\n}" : "=h"(r) : "h"(a));
    return r;
}
__device__ __forceinline__ h32 bf2_from_floats(float lo, float hi) {
    h32 r;
    asm("{ cvt.rn.bf16x2.f32 %0, %2, %1; }\n" : "=r"(r) : "f"(lo), "f"(hi));
    return r;
}
__device__ __forceinline__ h32 bf2_fma_mul_add(h32 a, h32 b) {
    h32 r;
    asm("{.reg .b32 c;\n"
        "  mov.b32 c, 0x80008000U;\n"
        "  fma.rn.bf16x2 %0,%1,%1,c;}\n"
        : "=r"(r) : "r"(a));
    asm("{.reg .b32 c;\n"
        "  mov.b32 c, 0x3f803f80U;\n"
        "  fma.rn.bf16x2 %0,%1,c,%2;}\n"
        : "=r"(r) : "r"(r), "r"(b));
    return r;
}

#define BF16_OPS 10
#define BF16_FLOATS 4

extern "C" __global__ void bf16_ops(const float* __restrict__ x, const float* __restrict__ y,
                                    h16* __restrict__ ob, float* __restrict__ of, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    h16 a = bf_from_float(x[i]), b = bf_from_float_rz(y[i]);
    h16* o = ob + i * BF16_OPS;
    o[0] = a;
    o[1] = b;
    o[2] = bf_add(a, b);
    o[3] = bf_mul(a, b);
    o[4] = bf_fma(a, b, a);
    o[5] = bf_max(a, b);
    o[6] = bf_min(a, b);
    o[7] = bf_neg(a);
    h32 p = bf2_fma_mul_add(bf2_from_floats(x[i], y[i]), bf2_from_floats(y[i], x[i]));
    o[8] = (h16)p;
    o[9] = (h16)(p >> 16);
    float* f = of + i * BF16_FLOATS;
    f[0] = bf_to_float(a);
    f[1] = bf_to_float_cvt(b);
    f[2] = bf_to_float(a) < bf_to_float(b) ? 1.0f : -1.0f;  // setp.bf16 needs sm_90
    f[3] = h_to_float(h_from_float(bf_to_float(a)));  // bf16 -> f32 -> f16 -> f32
}

// ---------------------------------------------------------------------------------------------
// Atomics
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ float atomic_max_float(float* addr, float v) {
    int* p = (int*)addr;
    int old = *p, assumed;
    do {
        assumed = old;
        if (__int_as_float(assumed) >= v) break;
        old = atomicCAS(p, assumed, __float_as_int(v));
    } while (assumed != old);
    return __int_as_float(old);
}

// atomicAdd on __half2 and __half (cuda_fp16.hpp's asm; generic addresses).
__device__ __forceinline__ h32 h2_atomic_add(h32* addr, h32 v) {
    h32 old;
    asm volatile("{ atom.add.noftz.f16x2 %0,[%1],%2; }\n" : "=r"(old) : "l"(addr), "r"(v) : "memory");
    return old;
}
__device__ __forceinline__ h16 h_atomic_add(h16* addr, h16 v) {
    h16 old;
    asm volatile("{ atom.add.noftz.f16 %0,[%1],%2; }\n" : "=h"(old) : "l"(addr), "h"(v) : "memory");
    return old;
}

// out layout (u32 words): [0..2) double sum, [2] float max, [3] inc counter, [4] dec counter,
// [5] block-scope add, [6..14) shared u32 bins, [14] shared f32 sum, [15] pad,
// [16..18) shared u64 sum, [18] __half2 sum of {1, 0.5} per thread, [19] low half: __half
// sum of 1 per thread through shared memory; then per thread from word 32: 2 words (old inc,
// old dec).
extern "C" __global__ void atomics(const float* __restrict__ x, unsigned* __restrict__ out, int n) {
    __shared__ unsigned bins[8];
    __shared__ float fsum;
    __shared__ unsigned long long wide;
    __shared__ h16 hcount;
    int t = threadIdx.x;
    int i = blockIdx.x * blockDim.x + t;
    if (t < 8) bins[t] = 0;
    if (t == 0) {
        fsum = 0.0f;
        wide = 0;
        hcount = 0;
    }
    __syncthreads();
    if (i < n) {
        float v = x[i];
        atomicAdd((double*)out, (double)v);
        atomic_max_float((float*)(out + 2), v);
        unsigned a = atomicInc(out + 3, 9u);
        unsigned d = atomicDec(out + 4, 9u);
        out[32 + 2 * i] = a;
        out[32 + 2 * i + 1] = d;
        atomicAdd_block(out + 5, (unsigned)i);
        atomicAdd(&bins[(unsigned)i % 8u], 1u + (unsigned)t);
        atomicAdd(&fsum, 0.5f);
        atomicAdd(&wide, (1ull << 33) + (unsigned long long)i);
        h2_atomic_add((h32*)(out + 18), 0x38003c00u);  // {lo: 1.0, hi: 0.5}
        h_atomic_add(&hcount, (h16)0x3c00u);
    }
    __syncthreads();
    if (t < 8) atomicAdd(out + 6 + t, bins[t]);
    if (t == 0) {
        atomicAdd((float*)(out + 14), fsum);
        atomicAdd((unsigned long long*)(out + 16), wide);
        h_atomic_add((h16*)(out + 19), hcount);
    }
}

// ---------------------------------------------------------------------------------------------
// Integer intrinsics
// ---------------------------------------------------------------------------------------------

#define INT_OPS 24

extern "C" __global__ void int_intrinsics(const unsigned* __restrict__ a, const unsigned* __restrict__ b,
                                          unsigned* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned x = a[i], y = b[i];
    int sx = (int)x, sy = (int)y;
    unsigned long long wx = ((unsigned long long)x << 32) | y;
    unsigned* o = out + i * INT_OPS;
    o[0] = __funnelshift_l(x, y, y >> 3);
    o[1] = __funnelshift_r(x, y, y >> 3);
    o[2] = __funnelshift_lc(x, y, y >> 3);
    o[3] = __funnelshift_rc(x, y, y >> 3);
    o[4] = __byte_perm(x, y, y >> 7);
    o[5] = __brev(x);
    o[6] = __ffs(sx);
    o[7] = __ffsll((long long)wx);
    o[8] = __popcll(wx);
    o[9] = __clzll((long long)wx);
    o[10] = (unsigned)__mul24(sx, sy);
    o[11] = __umul24(x, y);
    o[12] = __umulhi(x, y);
    o[13] = __sad(sx, sy, 11u);
    o[14] = __usad(x, y, 0xfffffff0u);
    o[15] = __vabsdiffu4(x, y);
    o[16] = (unsigned)__dp4a(sx, sy, 1000);
    o[17] = __dp4a(x, y, 7u);
    o[18] = (unsigned)__dp2a_lo(sx, sy, -5);
    o[19] = __dp2a_hi(x, y, 3u);
    o[20] = (unsigned)__hadd(sx, sy) ^ (unsigned)__rhadd(sx, sy);
    o[21] = __urhadd(x, y);
    o[22] = (unsigned)__mulhi(sx, sy) + __clz(sx) + __popc(y);
    o[23] = __vadd2(x, y) ^ __vsub4(x, y);
}

// ---------------------------------------------------------------------------------------------
// Float intrinsics and libdevice functions
// ---------------------------------------------------------------------------------------------

#define FLOAT_OPS 28

extern "C" __global__ void float_intrinsics(const float* __restrict__ x, const float* __restrict__ y,
                                            float* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float a = x[i], b = y[i];
    float* o = out + i * FLOAT_OPS;
    o[0] = __fdividef(a, b);
    o[1] = __expf(a);
    o[2] = __logf(fabsf(b));
    o[3] = __sinf(a);
    o[4] = __cosf(a);
    o[5] = __saturatef(a);
    o[6] = __fmaf_rz(a, b, 0.1f);
    o[7] = __fmaf_rd(a, b, 0.1f);
    o[8] = __fmaf_ru(a, b, 0.1f);
    o[9] = __fadd_rz(a, b);
    o[10] = __fmul_rd(a, b);
    o[11] = __frcp_rn(b);
    o[12] = __fsqrt_rn(fabsf(a));
    o[13] = rintf(a);
    o[14] = truncf(a);
    o[15] = copysignf(a, b);
    o[16] = fminf(a, b);
    o[17] = fmaxf(a, b);
    o[18] = nextafterf(a, b);
    int e;
    o[19] = frexpf(a, &e);
    o[20] = (float)e;
    o[21] = ldexpf(b, (int)(a * 4.0f));
    o[22] = erff(a);
    o[23] = expm1f(a);
    o[24] = log1pf(fabsf(b));
    o[25] = __fsub_ru(a, b) - __fdiv_rz(a, b);
    o[26] = __fsqrt_rd(fabsf(b));
    o[27] = __frsqrt_rn(fabsf(b));
}

// ---------------------------------------------------------------------------------------------
// Cache-hinted loads and stores
// ---------------------------------------------------------------------------------------------

extern "C" __global__ void cache_hints(const float4* __restrict__ in4, const float* __restrict__ in,
                                       float4* __restrict__ out4, float* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float4 v = __ldg(in4 + i);
    float4 w = __ldcs(in4 + i);
    float s = __ldg(in + i) + __ldcg(in + i) * 2.0f + __ldca(in + i) * 4.0f + __ldlu(in + i) * 8.0f +
              __ldcv(in + i) * 16.0f;
    __stcs(out4 + i, make_float4(v.x + w.w, v.y + w.z, v.z + w.y, v.w + w.x));
    __stwb(out + 4 * i, s);
    __stcg(out + 4 * i + 1, -s);
    __stwt(out + 4 * i + 2, s * 0.5f);
    __stcs(out + 4 * i + 3, s + 1.0f);
}

// ---------------------------------------------------------------------------------------------
// Control flow, launch bounds, calls
// ---------------------------------------------------------------------------------------------

extern "C" __global__ void grid_stride_2d(const float* __restrict__ in, float* __restrict__ out, int w, int h) {
    for (int y = blockIdx.y * blockDim.y + threadIdx.y; y < h; y += blockDim.y * gridDim.y)
        for (int x = blockIdx.x * blockDim.x + threadIdx.x; x < w; x += blockDim.x * gridDim.x)
            out[y * w + x] = in[y * w + x] * 2.0f + (float)(x - y);
}

template <int N>
__global__ void __launch_bounds__(128, 2)
    unrolled_dot(const float* __restrict__ x, const float* __restrict__ y, float* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < N; ++k) acc = fmaf(x[i * N + k], y[k], acc);
    out[i] = acc;
}
template __global__ void unrolled_dot<8>(const float*, const float*, float*, int);

struct Stats {
    double sum;
    float prod;
    int count;
};

__device__ __noinline__ Stats combine(Stats s, float v) {
    Stats r;
    r.sum = s.sum + (double)v;
    r.prod = s.prod * v;
    r.count = s.count + (v > 0.0f);
    return r;
}

extern "C" __global__ void struct_return(const float* __restrict__ x, double* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    Stats s = {0.0, 1.0f, 0};
    for (int k = 0; k < 4; ++k) s = combine(s, x[4 * i + k]);
    out[3 * i] = s.sum;
    out[3 * i + 1] = (double)s.prod;
    out[3 * i + 2] = (double)s.count;
}

extern "C" __global__ void switch_ops(const int* __restrict__ op, const float* __restrict__ x,
                                      float* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i], r;
    switch (op[i] & 7) {
        case 0: r = v + 1.0f; break;
        case 1: r = v * 3.0f; break;
        case 2: r = v - 7.5f; break;
        case 3: r = -v; break;
        case 4: r = v * v; break;
        case 5: r = 0.25f; break;
        case 6: r = v + v + v + v; break;
        default: r = v * 0.5f - 1.0f; break;
    }
    out[i] = r;
}

// ---------------------------------------------------------------------------------------------
// Warp votes, matches, reductions, tiles
// ---------------------------------------------------------------------------------------------

// One warp. out[4 * lane + k]: lanes with lane % 3 == 0 write activemask, ballot(x > 0) under
// it, popc of the ballot and the sum over those lanes by shuffles within the mask (k = 0..3);
// the other lanes write ~0u.
extern "C" __global__ void divergent_ballot(const int* __restrict__ x, unsigned* __restrict__ out) {
    int lane = threadIdx.x & 31;
    int v = x[threadIdx.x];
    unsigned* o = out + 4 * threadIdx.x;
    if (lane % 3 == 0) {
        unsigned m = __activemask();
        unsigned b = __ballot_sync(m, v > 0);
        o[0] = m;
        o[1] = b;
        o[2] = __popc(b);
        // The active lanes are 0, 3, ..., 30: lane 3k reads lane 3(k+1) (or itself at the end).
        int src = lane + 3 < 32 ? lane + 3 : lane;
        o[3] = (unsigned)(v + __shfl_sync(m, v, src));
    } else {
        o[0] = o[1] = o[2] = o[3] = ~0u;
    }
}

// out[8 * t + k]: match_any(x % 5), match_all(x & ~0xff) and its predicate, reduce add / min /
// max (signed and unsigned) / and / or / xor over the warp.
extern "C" __global__ void warp_match_reduce(const int* __restrict__ x, unsigned* __restrict__ out) {
    int t = threadIdx.x;
    int v = x[t];
    unsigned* o = out + 10 * t;
    int pred;
    o[0] = __match_any_sync(FULL, v % 5);
    o[1] = __match_all_sync(FULL, v & ~0xff, &pred);
    o[2] = (unsigned)pred;
    o[3] = __reduce_add_sync(FULL, (unsigned)v);
    o[4] = (unsigned)__reduce_min_sync(FULL, v);
    o[5] = (unsigned)__reduce_max_sync(FULL, v);
    o[6] = __reduce_min_sync(FULL, (unsigned)v);
    o[7] = __reduce_and_sync(FULL, (unsigned)v | 0x10u);
    o[8] = __reduce_or_sync(FULL, (unsigned)v & 0xf0f0u);
    o[9] = __reduce_xor_sync(FULL, (unsigned)v);
}

// tiled_partition<16> as cooperative_groups compiles it. out[4 * t + k]: tile sum by shfl_down
// (valid in the tile's lane 0), tile all-reduce max by shfl_xor, tile ballot(x > 0) (the tile's
// bits), the value of the tile neighbour (t ^ 1) read through shared memory after tile.sync().
extern "C" __global__ void tile16(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float s[64];
    unsigned lane;
    asm("mov.u32 %0, %%laneid;" : "=r"(lane));
    unsigned mask = 0xffffu << (lane & 16);
    int t = threadIdx.x;
    float v = x[t];
    float sum = v, mx = v;
    for (int o = 8; o > 0; o >>= 1) {
        sum += __shfl_down_sync(mask, sum, o, 16);
        mx = fmaxf(mx, __shfl_xor_sync(mask, mx, o, 16));
    }
    unsigned b = __ballot_sync(mask, v > 0.0f);
    s[t] = v * 2.0f;
    __syncwarp(mask);
    float nb = s[t ^ 1];
    out[4 * t] = sum;
    out[4 * t + 1] = mx;
    out[4 * t + 2] = __uint_as_float(b);
    out[4 * t + 3] = nb;
}

// out[3 * t + k] for every thread: __syncthreads_count(x > 0), _and(x > -50), _or(x > 90).
extern "C" __global__ void sync_count(const int* __restrict__ x, int* __restrict__ out) {
    int t = threadIdx.x;
    int v = x[t];
    out[3 * t] = __syncthreads_count(v > 0);
    out[3 * t + 1] = __syncthreads_and(v > -50);
    out[3 * t + 2] = __syncthreads_or(v > 90);
}

extern "C" __global__ void say_hello(int v) {
    printf("hello from %d: %d\n", threadIdx.x, v);
}

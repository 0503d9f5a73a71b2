// Instruction-semantics probes. Each kernel writes results to an output array so a test can
// compare with a host-side computation. One thread per input element unless noted;
// any grid/block covering n (threads past n return), except index_3d and lane_warp.
//
// int_ops(a, b, out, n):     out[i*INT_OPS + j] = op_j(a[i], b[i]) as u32, ops listed below.
// int64_ops(a, b, out, n):   out[i*INT64_OPS + j] = op_j(a[i], b[i]) on u64/i64.
// float_conv(x, out, n):     out[i*CONV_OPS + j] = bits of conversion j of x[i].
// fast_math(x, y, out, n):   out[i*MATH_OPS + j] = approx/exact math j of (x[i], y[i]).
// double_ops(a, b, out, n):  out[i*4 + j] = a+b, a*b, a/b, sqrt(|a|) in f64.
// call_func(x, out, n):      out[i] = poly(x[i], i & 7) via a __noinline__ .func with 2 args,
//                            plus out[n + i] = bits of the int the func also returns via pointer.
// local_array(idx, out, n):  out[i] = buf[idx[i] & 15] where buf[k] = k*k + i  (.local memory).
// globals(out):              one thread: out[0..8) = c_table[k] (a __constant__ array),
//                            out[8] = g_counter, out[9..13) = g_table[k] (__device__ globals),
//                            then g_counter += 1 (so a second launch sees 43).
// index_3d(out):             grid (2,3,2), block (4,2,3); thread with linear id L
//                            (L = ((bz*gy+by)*gx+bx)*bsize + (tz*by_+ty)*bx_+tx) writes
//                            out[4L..4L+4) = tid, ctaid, ntid, nctaid packed x | y<<8 | z<<16.
// lane_warp(out):            1 block of B threads: out[4t] = %laneid, out[4t+1] = %warpid,
//                            out[4t+2] = clock64() difference, out[4t+3] = %clock difference
//                            (both small, non-negative; %warpid is only a hint in real hardware).
// vec_load(x4, y2, out4, out2, n4, n2, s): out4[i] = x4[i] * s (float4), out2[i] = y2[i] + s
//                            (float2).

#define INT_OPS 32
#define INT64_OPS 8
#define CONV_OPS 14
#define MATH_OPS 16

extern "C" __global__ void int_ops(const unsigned* __restrict__ a, const unsigned* __restrict__ b,
                                   unsigned* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned x = a[i], y = b[i];
    int sx = (int)x, sy = (int)y;
    unsigned* o = out + i * INT_OPS;
    o[0] = __umulhi(x, y);
    o[1] = (unsigned)__mulhi(sx, sy);
    unsigned long long w = (unsigned long long)x * y;  // mul.wide.u32
    o[2] = (unsigned)w;
    o[3] = (unsigned)(w >> 32);
    long long sw = (long long)sx * sy;                 // mul.wide.s32
    o[4] = (unsigned)(sw >> 32);
    o[5] = __popc(x);
    o[6] = __clz(x);
    o[7] = __brev(x);
    o[8] = __byte_perm(x, y, 0x5140);
    o[9] = __byte_perm(x, y, y & 0x7777);              // dynamic selector
    unsigned r;
    asm("bfe.u32 %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y & 31), "r"((y >> 8) & 31));
    o[10] = r;
    int sr;
    asm("bfe.s32 %0, %1, %2, %3;" : "=r"(sr) : "r"(sx), "r"(y & 31), "r"((y >> 8) & 31));
    o[11] = (unsigned)sr;
    asm("bfi.b32 %0, %1, %2, %3, %4;" : "=r"(r) : "r"(y), "r"(x), "r"((y >> 16) & 31), "r"((y >> 24) & 31));
    o[12] = r;
    o[13] = __funnelshift_l(x, y, y);                   // shf.l.wrap
    o[14] = __funnelshift_rc(x, y, y);                  // shf.r.clamp
    o[15] = y ? x / y : 0xdeadbeefu;
    o[16] = y ? x % y : 0xdeadbeefu;
    bool sdiv_ok = sy != 0 && !(sx == (int)0x80000000 && sy == -1);
    o[17] = sdiv_ok ? (unsigned)(sx / sy) : 0xdeadbeefu;
    o[18] = sdiv_ok ? (unsigned)(sx % sy) : 0xdeadbeefu;
    o[19] = x << (y & 31);
    o[20] = x >> (y & 31);
    o[21] = (unsigned)(sx >> (y & 31));
    o[22] = min(x, y);
    o[23] = max(x, y);
    o[24] = (unsigned)min(sx, sy);
    o[25] = (unsigned)max(sx, sy);
    o[26] = __ffs(sx);
    o[27] = (unsigned)abs(sx);
    o[28] = __usad(x, y, 7u);
    o[29] = __byte_perm(x, 0, 0x0123);                  // byte swap
    o[30] = (sx < sy) ? 1u : ((x < y) ? 2u : 3u);       // signed vs unsigned compare
    o[31] = __umul24(x, y) ^ __uhadd(x, y);
}

extern "C" __global__ void int64_ops(const unsigned long long* __restrict__ a,
                                     const unsigned long long* __restrict__ b,
                                     unsigned long long* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned long long x = a[i], y = b[i];
    long long sx = (long long)x, sy = (long long)y;
    unsigned long long* o = out + i * INT64_OPS;
    o[0] = __umul64hi(x, y);
    o[1] = (unsigned long long)__mul64hi(sx, sy);
    o[2] = x * y;
    o[3] = y ? x / y : 0xdeadbeefULL;
    o[4] = (sy != 0 && !(sy == -1 && sx == (long long)0x8000000000000000ULL)) ? (unsigned long long)(sx % sy) : 0xdeadbeefULL;
    o[5] = (x << (y & 63)) ^ (unsigned long long)(sx >> ((y >> 8) & 63));
    o[6] = __popcll(x) + ((unsigned long long)__clzll(y) << 32);
    o[7] = __brevll(x);
}

__device__ __forceinline__ unsigned short f2h_rn(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ float h2f(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ unsigned short f2bf_rn(float f) {
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

extern "C" __global__ void float_conv(const float* __restrict__ x, unsigned* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    unsigned* o = out + i * CONV_OPS;
    o[0] = (unsigned)__float2int_rn(v);
    o[1] = (unsigned)__float2int_rz(v);
    o[2] = __float2uint_rd(v);
    o[3] = (unsigned)__float2int_ru(v);
    o[4] = __float_as_uint(__int2float_rn(__float_as_int(v)));   // int bits reinterpreted -> f32
    o[5] = __float_as_uint(__uint2float_rz(__float_as_uint(v)));
    unsigned short h = f2h_rn(v);
    o[6] = h;
    o[7] = __float_as_uint(h2f(h));
    o[8] = f2bf_rn(v);
    o[9] = __float_as_uint(__saturatef(v));
    double d = (double)v;                                          // cvt.f64.f32
    o[10] = __float_as_uint((float)(d * 0.1));                     // cvt.rn.f32.f64
    long long ll = __float2ll_rz(v);
    o[11] = (unsigned)(ll >> 32);
    o[12] = __float_as_uint(rintf(v));                             // cvt.rni.f32.f32
    o[13] = __float_as_uint(truncf(v) + floorf(v) + ceilf(v));
}

extern "C" __global__ void fast_math(const float* __restrict__ x, const float* __restrict__ y,
                                     float* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float a = x[i], b = y[i];
    float* o = out + i * MATH_OPS;
    o[0] = __expf(a);
    o[1] = __logf(fabsf(a) + 1e-3f);
    o[2] = __sinf(a);
    o[3] = __cosf(a);
    o[4] = rsqrtf(fabsf(a) + 1e-3f);
    o[5] = __fdividef(a, b);
    o[6] = sqrtf(fabsf(a));                 // sqrt.rn.f32: exact
    o[7] = tanhf(a);
    float t;
    asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(a));
    o[8] = t;
    asm("ex2.approx.f32 %0, %1;" : "=f"(t) : "f"(a));
    o[9] = t;
    o[10] = fmaf(a, b, 0.25f);              // fma.rn.f32: exact
    o[11] = erff(a);
    o[12] = a / b;                          // div.rn.f32: exact
    o[13] = expf(a);
    o[14] = logf(fabsf(a) + 1e-3f);
    o[15] = fmaxf(a, b) - fminf(a, b) + fabsf(b) - (-a);
}

extern "C" __global__ void double_ops(const double* __restrict__ a, const double* __restrict__ b,
                                      double* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double x = a[i], y = b[i];
    out[4 * i + 0] = x + y;
    out[4 * i + 1] = x * y;
    out[4 * i + 2] = x / y;
    out[4 * i + 3] = sqrt(fabs(x));
}

// Not inlined: PTX gets a `.func` with .param arguments and a `call` with a return value.
__device__ __noinline__ float poly(float x, int k, int* kk) {
    float r = 0.0f;
    for (int j = 0; j <= k; ++j) r = r * x + (float)(j + 1);
    *kk = k * k + 1;
    return r;
}

extern "C" __global__ void call_func(const float* __restrict__ x, float* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int kk;
    out[i] = poly(x[i], i & 7, &kk);
    out[n + i] = __int_as_float(kk);
}

extern "C" __global__ void local_array(const int* __restrict__ idx, int* __restrict__ out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    volatile int buf[16];   // volatile + dynamic index: stays in .local
    for (int k = 0; k < 16; ++k) buf[k] = k * k + i;
    out[i] = buf[idx[i] & 15];
}

__constant__ float c_table[8] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -1e30f, 7.0f, 0.125f};
__device__ int g_counter = 42;
__device__ float g_table[4] = {10.0f, 20.0f, 30.0f, 40.0f};

extern "C" __global__ void globals(float* out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    for (int k = 0; k < 8; ++k) out[k] = c_table[k];
    out[8] = (float)g_counter;
    for (int k = 0; k < 4; ++k) out[9 + k] = g_table[k];
    g_counter += 1;
}

extern "C" __global__ void index_3d(unsigned* out) {
    unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    unsigned bsize = blockDim.x * blockDim.y * blockDim.z;
    unsigned t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    unsigned L = block * bsize + t;
    out[4 * L + 0] = threadIdx.x | threadIdx.y << 8 | threadIdx.z << 16;
    out[4 * L + 1] = blockIdx.x | blockIdx.y << 8 | blockIdx.z << 16;
    out[4 * L + 2] = blockDim.x | blockDim.y << 8 | blockDim.z << 16;
    out[4 * L + 3] = gridDim.x | gridDim.y << 8 | gridDim.z << 16;
}

extern "C" __global__ void lane_warp(unsigned* out) {
    unsigned lane, warp, c32a, c32b;
    asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
    asm volatile("mov.u32 %0, %%warpid;" : "=r"(warp));
    int t = threadIdx.x;
    asm volatile("mov.u32 %0, %%clock;" : "=r"(c32a));
    long long c0 = clock64();
    long long c1 = clock64();
    asm volatile("mov.u32 %0, %%clock;" : "=r"(c32b));
    out[4 * t] = lane;
    out[4 * t + 1] = warp;
    out[4 * t + 2] = (unsigned)(c1 - c0);
    out[4 * t + 3] = c32b - c32a;
}

extern "C" __global__ void vec_load(const float4* __restrict__ x4, const float2* __restrict__ y2,
                                    float4* __restrict__ out4, float2* __restrict__ out2,
                                    int n4, int n2, float s) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n4) {
        float4 v = x4[i];
        out4[i] = make_float4(v.x * s, v.y * s, v.z * s, v.w * s);
    }
    if (i < n2) {
        float2 v = y2[i];
        out2[i] = make_float2(v.x + s, v.y + s);
    }
}

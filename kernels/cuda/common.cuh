// Pieces shared by the row kernels (layernorm.cu, pointwise.cu): the full warp mask, rows per
// block of the warp-per-row kernels, and W-wide accesses to rows stored as f32 or bf16, always
// computed on in f32. W = 4: one access (a 16-byte float4, or 8 bytes of four bf16); W = 1:
// one value.
#pragma once

#define FULL 0xffffffffu
#define WARP_ROWS 4

// A bf16 in memory: the upper 16 bits of an f32. Read exactly as f32; written rounded to nearest
// even with cvt.rn (NVRTC has no <cuda_bf16.h> without extra include paths).
struct bf16 {
    unsigned short bits;
};

// W consecutive values as f32, loaded and stored with one access.
template <int W>
struct Vec {
    float v[W];
};

template <int W>
__device__ __forceinline__ Vec<W> load(const float* p) {
    Vec<W> r;
    if constexpr (W == 4) {
        float4 t = *reinterpret_cast<const float4*>(p);
        r.v[0] = t.x;
        r.v[1] = t.y;
        r.v[2] = t.z;
        r.v[3] = t.w;
    } else {
        r.v[0] = *p;
    }
    return r;
}

// Stores `a`; returns the values stored (`a` itself for f32).
template <int W>
__device__ __forceinline__ Vec<W> store(float* p, const Vec<W>& a) {
    if constexpr (W == 4) {
        *reinterpret_cast<float4*>(p) = make_float4(a.v[0], a.v[1], a.v[2], a.v[3]);
    } else {
        *p = a.v[0];
    }
    return a;
}

// The f32 values of the bf16 in the low and the high half of a 32-bit word.
__device__ __forceinline__ float bf16_lo(unsigned w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(unsigned w) { return __uint_as_float(w & 0xffff0000u); }

// The four bf16 of two words as f32, in memory order.
__device__ __forceinline__ Vec<4> bf16x4(uint2 t) {
    return Vec<4>{{bf16_lo(t.x), bf16_hi(t.x), bf16_lo(t.y), bf16_hi(t.y)}};
}

// `lo` and `hi` rounded to bf16, nearest even, packed into one word (lo in the low half).
__device__ __forceinline__ unsigned bf16x2(float lo, float hi) {
    unsigned w;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(w) : "f"(hi), "f"(lo));
    return w;
}

template <int W>
__device__ __forceinline__ Vec<W> load(const bf16* p) {
    if constexpr (W == 4) {
        return bf16x4(*reinterpret_cast<const uint2*>(p));
    } else {
        return Vec<1>{{bf16_lo(p->bits)}};
    }
}

// Stores `a` rounded to bf16; returns the rounded values as f32.
template <int W>
__device__ __forceinline__ Vec<W> store(bf16* p, const Vec<W>& a) {
    if constexpr (W == 4) {
        const uint2 t = make_uint2(bf16x2(a.v[0], a.v[1]), bf16x2(a.v[2], a.v[3]));
        *reinterpret_cast<uint2*>(p) = t;
        return bf16x4(t);
    } else {
        unsigned short h;
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(a.v[0]));
        p->bits = h;
        return Vec<1>{{bf16_lo(h)}};
    }
}

// Pieces shared by the row kernels (layernorm.cu, pointwise.cu): the full warp mask, rows per
// block of the warp-per-row kernels, and W-wide f32 accesses (W = 4: one 16-byte float4 load
// or store; W = 1: one float).
#pragma once

#define FULL 0xffffffffu
#define WARP_ROWS 4

// W consecutive floats, loaded and stored with one access.
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

template <int W>
__device__ __forceinline__ void store(float* p, const Vec<W>& a) {
    if constexpr (W == 4) {
        *reinterpret_cast<float4*>(p) = make_float4(a.v[0], a.v[1], a.v[2], a.v[3]);
    } else {
        *p = a.v[0];
    }
}

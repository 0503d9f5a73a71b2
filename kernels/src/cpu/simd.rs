//! One SIMD vector abstraction, implemented for each [`Isa`](super::isa::Isa).
//!
//! Kernels are written once, generically over [`SimdF32`], with every method
//! `#[inline(always)]`; a thin `#[target_feature]` entry point per ISA instantiates them, so
//! the compiler emits AVX-512 or AVX2 code for the whole kernel body. All methods are `unsafe`
//! because they may only run on a CPU that has the instruction set (checked by the caller via
//! `Isa::is_supported`), and `load`/`store` take raw pointers.

/// A vector of `LANES` f32 values.
pub(crate) trait SimdF32: Copy {
    /// Number of f32 lanes.
    const LANES: usize;
    /// Whether `mul_add` rounds once (a true FMA).
    const FUSED: bool;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// Loads `LANES` values from `p` (no alignment required).
    unsafe fn load(p: *const f32) -> Self;
    /// Stores all lanes to `p` (no alignment required).
    unsafe fn store(p: *mut f32, v: Self);
    /// `a * b + c`, fused (one rounding) where the ISA has FMA.
    unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self;
    /// `a + b`.
    unsafe fn add(a: Self, b: Self) -> Self;
    /// `a - b`.
    unsafe fn sub(a: Self, b: Self) -> Self;
    /// `a * b`.
    unsafe fn mul(a: Self, b: Self) -> Self;
    /// `a / b`.
    unsafe fn div(a: Self, b: Self) -> Self;
    /// Square root, correctly rounded.
    unsafe fn sqrt(a: Self) -> Self;
    /// Lane-wise maximum.
    unsafe fn max(a: Self, b: Self) -> Self;
    /// Lane-wise minimum.
    unsafe fn min(a: Self, b: Self) -> Self;
    /// Rounds to the nearest integer (ties to even), staying in f32.
    unsafe fn round(a: Self) -> Self;
    /// `2^n` for integral `n` in `[-126, 127]`, built directly in the exponent bits.
    unsafe fn pow2i(n: Self) -> Self;
    /// `2^n` from `m = n + 127 + 1.5 * 2^23`, an f32 in `[2^23, 2^24)` whose low mantissa bits
    /// hold `n + 127` (integral `n` in `[-127, 128]`): the bits of `m` shifted left by 23, so
    /// `n = -127` gives `+0` and `n = 128` gives `+inf`. The magic-number alternative to
    /// `round` + `pow2i`: one FMA `x * log2e + m0` rounds and biases at once.
    unsafe fn pow2_biased(m: Self) -> Self;
    /// `|a|`.
    unsafe fn abs(a: Self) -> Self;
    /// `mag` with the sign bit of `sign`.
    unsafe fn copysign(mag: Self, sign: Self) -> Self;
    /// Sum of all lanes.
    unsafe fn reduce_sum(a: Self) -> f32;
    /// Maximum of all lanes.
    unsafe fn reduce_max(a: Self) -> f32;
    /// Lane-wise `if a < b { x } else { y }` (false where `a` or `b` is NaN).
    unsafe fn select_lt(a: Self, b: Self, x: Self, y: Self) -> Self;

    /// Loads the first `n < LANES` values from `p`; the other lanes are `fill`.
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize, fill: f32) -> Self {
        let mut buf = [fill; 16];
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
        Self::load(buf.as_ptr())
    }
    /// Stores the first `n < LANES` lanes to `p`.
    #[inline(always)]
    unsafe fn store_partial(p: *mut f32, n: usize, v: Self) {
        let mut buf = [0.0f32; 16];
        Self::store(buf.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::SimdF32;
    use std::arch::x86_64::*;

    /// The mask of the first `n < 16` lanes.
    #[inline(always)]
    fn lanes16(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    /// All-ones in the first `n < 8` lanes, zeros in the others.
    #[inline(always)]
    unsafe fn lanes8(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    /// AVX-512F vector.
    #[derive(Clone, Copy)]
    pub(crate) struct V512(pub __m512);

    impl SimdF32 for V512 {
        const LANES: usize = 16;
        const FUSED: bool = true;
        #[inline(always)]
        unsafe fn zero() -> Self {
            V512(_mm512_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            V512(_mm512_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            V512(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self) {
            _mm512_storeu_ps(p, v.0)
        }
        #[inline(always)]
        unsafe fn load_partial(p: *const f32, n: usize, fill: f32) -> Self {
            // Masked-off lanes are neither read nor able to fault.
            V512(_mm512_mask_loadu_ps(_mm512_set1_ps(fill), lanes16(n), p))
        }
        #[inline(always)]
        unsafe fn store_partial(p: *mut f32, n: usize, v: Self) {
            _mm512_mask_storeu_ps(p, lanes16(n), v.0)
        }
        #[inline(always)]
        unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
            V512(_mm512_fmadd_ps(a.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn add(a: Self, b: Self) -> Self {
            V512(_mm512_add_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(a: Self, b: Self) -> Self {
            V512(_mm512_sub_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(a: Self, b: Self) -> Self {
            V512(_mm512_mul_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(a: Self, b: Self) -> Self {
            V512(_mm512_div_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn sqrt(a: Self) -> Self {
            V512(_mm512_sqrt_ps(a.0))
        }
        #[inline(always)]
        unsafe fn max(a: Self, b: Self) -> Self {
            V512(_mm512_max_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn min(a: Self, b: Self) -> Self {
            V512(_mm512_min_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn round(a: Self) -> Self {
            V512(_mm512_roundscale_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(a.0))
        }
        #[inline(always)]
        unsafe fn pow2i(n: Self) -> Self {
            let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(
                _mm512_cvtps_epi32(n.0),
                _mm512_set1_epi32(127),
            ));
            V512(_mm512_castsi512_ps(bits))
        }
        #[inline(always)]
        unsafe fn pow2_biased(m: Self) -> Self {
            V512(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(
                _mm512_castps_si512(m.0),
            )))
        }
        #[inline(always)]
        unsafe fn abs(a: Self) -> Self {
            let mask = _mm512_set1_epi32(0x7fff_ffff);
            V512(_mm512_castsi512_ps(_mm512_and_si512(
                _mm512_castps_si512(a.0),
                mask,
            )))
        }
        #[inline(always)]
        unsafe fn copysign(mag: Self, sign: Self) -> Self {
            let sign_bit = _mm512_set1_epi32(i32::MIN);
            let m = _mm512_andnot_si512(sign_bit, _mm512_castps_si512(mag.0));
            let s = _mm512_and_si512(sign_bit, _mm512_castps_si512(sign.0));
            V512(_mm512_castsi512_ps(_mm512_or_si512(m, s)))
        }
        #[inline(always)]
        unsafe fn reduce_sum(a: Self) -> f32 {
            _mm512_reduce_add_ps(a.0)
        }
        #[inline(always)]
        unsafe fn reduce_max(a: Self) -> f32 {
            _mm512_reduce_max_ps(a.0)
        }
        #[inline(always)]
        unsafe fn select_lt(a: Self, b: Self, x: Self, y: Self) -> Self {
            let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a.0, b.0);
            V512(_mm512_mask_blend_ps(lt, y.0, x.0))
        }
    }

    /// AVX2 + FMA vector.
    #[derive(Clone, Copy)]
    pub(crate) struct V256(pub __m256);

    impl SimdF32 for V256 {
        const LANES: usize = 8;
        const FUSED: bool = true;
        #[inline(always)]
        unsafe fn zero() -> Self {
            V256(_mm256_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            V256(_mm256_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            V256(_mm256_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self) {
            _mm256_storeu_ps(p, v.0)
        }
        #[inline(always)]
        unsafe fn load_partial(p: *const f32, n: usize, fill: f32) -> Self {
            // Masked-off lanes are neither read nor able to fault.
            let mask = lanes8(n);
            let v = _mm256_maskload_ps(p, mask);
            V256(_mm256_blendv_ps(
                _mm256_set1_ps(fill),
                v,
                _mm256_castsi256_ps(mask),
            ))
        }
        #[inline(always)]
        unsafe fn store_partial(p: *mut f32, n: usize, v: Self) {
            _mm256_maskstore_ps(p, lanes8(n), v.0)
        }
        #[inline(always)]
        unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
            V256(_mm256_fmadd_ps(a.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn add(a: Self, b: Self) -> Self {
            V256(_mm256_add_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(a: Self, b: Self) -> Self {
            V256(_mm256_sub_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(a: Self, b: Self) -> Self {
            V256(_mm256_mul_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(a: Self, b: Self) -> Self {
            V256(_mm256_div_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn sqrt(a: Self) -> Self {
            V256(_mm256_sqrt_ps(a.0))
        }
        #[inline(always)]
        unsafe fn max(a: Self, b: Self) -> Self {
            V256(_mm256_max_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn min(a: Self, b: Self) -> Self {
            V256(_mm256_min_ps(a.0, b.0))
        }
        #[inline(always)]
        unsafe fn round(a: Self) -> Self {
            V256(_mm256_round_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(a.0))
        }
        #[inline(always)]
        unsafe fn pow2i(n: Self) -> Self {
            let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
                _mm256_cvtps_epi32(n.0),
                _mm256_set1_epi32(127),
            ));
            V256(_mm256_castsi256_ps(bits))
        }
        #[inline(always)]
        unsafe fn pow2_biased(m: Self) -> Self {
            V256(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(
                _mm256_castps_si256(m.0),
            )))
        }
        #[inline(always)]
        unsafe fn abs(a: Self) -> Self {
            V256(_mm256_andnot_ps(_mm256_set1_ps(-0.0), a.0))
        }
        #[inline(always)]
        unsafe fn copysign(mag: Self, sign: Self) -> Self {
            let sign_bit = _mm256_set1_ps(-0.0);
            V256(_mm256_or_ps(
                _mm256_andnot_ps(sign_bit, mag.0),
                _mm256_and_ps(sign_bit, sign.0),
            ))
        }
        #[inline(always)]
        unsafe fn reduce_sum(a: Self) -> f32 {
            let quad = _mm_add_ps(_mm256_castps256_ps128(a.0), _mm256_extractf128_ps::<1>(a.0));
            let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
            _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
        }
        #[inline(always)]
        unsafe fn reduce_max(a: Self) -> f32 {
            let quad = _mm_max_ps(_mm256_castps256_ps128(a.0), _mm256_extractf128_ps::<1>(a.0));
            let pair = _mm_max_ps(quad, _mm_movehl_ps(quad, quad));
            _mm_cvtss_f32(_mm_max_ss(pair, _mm_movehdup_ps(pair)))
        }
        #[inline(always)]
        unsafe fn select_lt(a: Self, b: Self, x: Self, y: Self) -> Self {
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(a.0, b.0);
            V256(_mm256_blendv_ps(y.0, x.0, lt))
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{V256, V512};

/// Portable vector on `wide::f32x8`.
#[derive(Clone, Copy)]
pub(crate) struct Wide(pub wide::f32x8);

impl SimdF32 for Wide {
    const LANES: usize = 8;
    // `wide` fuses only when the build enables FMA; the portable kernels run on baseline x86_64.
    const FUSED: bool = cfg!(target_feature = "fma");
    #[inline(always)]
    unsafe fn zero() -> Self {
        Wide(wide::f32x8::ZERO)
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Wide(wide::f32x8::splat(x))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Wide(wide::f32x8::from(std::ptr::read_unaligned(
            p as *const [f32; 8],
        )))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        std::ptr::write_unaligned(p as *mut [f32; 8], v.0.to_array())
    }
    #[inline(always)]
    unsafe fn mul_add(a: Self, b: Self, c: Self) -> Self {
        Wide(a.0.mul_add(b.0, c.0))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Wide(a.0 + b.0)
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        Wide(a.0 - b.0)
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        Wide(a.0 * b.0)
    }
    #[inline(always)]
    unsafe fn div(a: Self, b: Self) -> Self {
        Wide(a.0 / b.0)
    }
    #[inline(always)]
    unsafe fn sqrt(a: Self) -> Self {
        Wide(a.0.sqrt())
    }
    #[inline(always)]
    unsafe fn max(a: Self, b: Self) -> Self {
        Wide(a.0.fast_max(b.0))
    }
    #[inline(always)]
    unsafe fn min(a: Self, b: Self) -> Self {
        Wide(a.0.fast_min(b.0))
    }
    #[inline(always)]
    unsafe fn round(a: Self) -> Self {
        Wide(a.0.round())
    }
    #[inline(always)]
    unsafe fn pow2i(n: Self) -> Self {
        let bits = (n.0.round_int() + wide::i32x8::splat(127)) << 23;
        Wide(bytemuck::cast(bits))
    }
    #[inline(always)]
    unsafe fn pow2_biased(m: Self) -> Self {
        let bits: wide::i32x8 = bytemuck::cast(m.0);
        Wide(bytemuck::cast(bits << 23))
    }
    #[inline(always)]
    unsafe fn abs(a: Self) -> Self {
        Wide(a.0.abs())
    }
    #[inline(always)]
    unsafe fn copysign(mag: Self, sign: Self) -> Self {
        Wide(mag.0.copysign(sign.0))
    }
    #[inline(always)]
    unsafe fn reduce_sum(a: Self) -> f32 {
        a.0.reduce_add()
    }
    #[inline(always)]
    unsafe fn reduce_max(a: Self) -> f32 {
        a.0.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max)
    }
    #[inline(always)]
    unsafe fn select_lt(a: Self, b: Self, x: Self, y: Self) -> Self {
        use wide::CmpLt;
        Wide(a.0.cmp_lt(b.0).blend(x.0, y.0))
    }
}

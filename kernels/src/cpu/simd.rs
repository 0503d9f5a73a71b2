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
    /// Lane-wise maximum; `b` where either is NaN (x86's `maxps` rule, which the math
    /// kernels' clamps rely on to pass a NaN input through).
    unsafe fn max(a: Self, b: Self) -> Self;
    /// Lane-wise minimum; `b` where either is NaN.
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
    /// Index bits of the table behind [`exp2_scale`](SimdF32::exp2_scale): the widest table one
    /// permute instruction selects from (32 entries with AVX-512, 8 with AVX2; 1, the constant 2^0,
    /// portable).
    const EXP2_BITS: u32;
    /// `2^(k / 2^B)`, `B = EXP2_BITS`, for the integer `k` in `[-126 * 2^B, 128 * 2^B)` held in
    /// `b = k / 2^B + 1.5 * 2^(23 - B)` (whose low mantissa bits are `k`, two's complement):
    /// `2^(j / 2^B)`, `j = k mod 2^B`, rounded, from a table, with `floor(k / 2^B)` added to its
    /// exponent bits. `k = -127 * 2^B` gives `+0`; `k` between the two gives a value below
    /// `2^-126`, not accurate.
    unsafe fn exp2_scale(b: Self) -> Self;
    /// `|a|`.
    unsafe fn abs(a: Self) -> Self;
    /// `mag` with the sign bit of `sign`.
    unsafe fn copysign(mag: Self, sign: Self) -> Self;
    /// Sum of all lanes.
    unsafe fn reduce_sum(a: Self) -> f32;
    /// Maximum of all lanes.
    unsafe fn reduce_max(a: Self) -> f32;
    /// The sum of all lanes, in every lane (the reduction stays in the vector registers).
    unsafe fn sum_all(a: Self) -> Self;
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

/// `2^(j / 32)` for `j` in `0..32`, rounded to f32, as bits (test below).
const EXP2_POWERS: [u32; 32] = [
    0x3f800000, 0x3f82cd87, 0x3f85aac3, 0x3f88980f, 0x3f8b95c2, 0x3f8ea43a, 0x3f91c3d3, 0x3f94f4f0,
    0x3f9837f0, 0x3f9b8d3a, 0x3f9ef532, 0x3fa27043, 0x3fa5fed7, 0x3fa9a15b, 0x3fad583f, 0x3fb123f6,
    0x3fb504f3, 0x3fb8fbaf, 0x3fbd08a4, 0x3fc12c4d, 0x3fc5672a, 0x3fc9b9be, 0x3fce248c, 0x3fd2a81e,
    0x3fd744fd, 0x3fdbfbb8, 0x3fe0ccdf, 0x3fe5b907, 0x3feac0c7, 0x3fefe4ba, 0x3ff5257d, 0x3ffa83b3,
];

/// The table of `exp2_scale` with `N` entries (`N` a power of two up to 32): the bits of
/// `2^(j / N)` less `j << (23 - log2 N)`, so that adding the bits of `b` shifted left by
/// `23 - log2 N`, which are `k << (23 - log2 N) = (n << 23) + (j << (23 - log2 N))` for
/// `k = N n + j`, leaves `2^(j / N)` with `n` added to its exponent.
const fn exp2_table<const N: usize>() -> [u32; N] {
    assert!(
        N.is_power_of_two() && N <= 32,
        "exp2 tables have 1 to 32 entries"
    );
    let shift = 23 - N.trailing_zeros();
    let mut table = [0; N];
    let mut j = 0;
    while j < N {
        table[j] = EXP2_POWERS[j * (32 / N)].wrapping_sub((j as u32) << shift);
        j += 1;
    }
    table
}

#[cfg(target_arch = "x86_64")]
const EXP2_TABLE_32: [u32; 32] = exp2_table();
#[cfg(target_arch = "x86_64")]
const EXP2_TABLE_8: [u32; 8] = exp2_table();
const EXP2_TABLE_1: [u32; 1] = exp2_table();

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{SimdF32, EXP2_TABLE_32, EXP2_TABLE_8};
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
        const EXP2_BITS: u32 = 5;
        #[inline(always)]
        unsafe fn exp2_scale(b: Self) -> Self {
            let table = &EXP2_TABLE_32;
            let lo = _mm512_loadu_si512(table.as_ptr().cast());
            let hi = _mm512_loadu_si512(table.as_ptr().add(16).cast());
            let bits = _mm512_castps_si512(b.0);
            let entry = _mm512_permutex2var_epi32(lo, bits, hi);
            V512(_mm512_castsi512_ps(_mm512_add_epi32(
                entry,
                _mm512_slli_epi32::<18>(bits),
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
        unsafe fn sum_all(a: Self) -> Self {
            // Swap halves, then quarters, then pairs, then neighbours, adding each time.
            let v = _mm512_add_ps(a.0, _mm512_shuffle_f32x4::<0x4E>(a.0, a.0));
            let v = _mm512_add_ps(v, _mm512_shuffle_f32x4::<0xB1>(v, v));
            let v = _mm512_add_ps(v, _mm512_permute_ps::<0x4E>(v));
            V512(_mm512_add_ps(v, _mm512_permute_ps::<0xB1>(v)))
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
        const EXP2_BITS: u32 = 3;
        #[inline(always)]
        unsafe fn exp2_scale(b: Self) -> Self {
            let table = _mm256_loadu_si256(EXP2_TABLE_8.as_ptr().cast());
            let bits = _mm256_castps_si256(b.0);
            let entry = _mm256_permutevar8x32_epi32(table, bits);
            V256(_mm256_castsi256_ps(_mm256_add_epi32(
                entry,
                _mm256_slli_epi32::<20>(bits),
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
        unsafe fn sum_all(a: Self) -> Self {
            let v = _mm256_add_ps(a.0, _mm256_permute2f128_ps::<0x01>(a.0, a.0));
            let v = _mm256_add_ps(v, _mm256_permute_ps::<0x4E>(v));
            V256(_mm256_add_ps(v, _mm256_permute_ps::<0xB1>(v)))
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
        // `fast_max` follows the target's instruction: x86 and NEON give `b` for a NaN, wasm's
        // `pmax` and the scalar fallback give `a`; choose `b` explicitly.
        let nan = a.0.is_nan() | b.0.is_nan();
        Wide(nan.blend(b.0, a.0.fast_max(b.0)))
    }
    #[inline(always)]
    unsafe fn min(a: Self, b: Self) -> Self {
        let nan = a.0.is_nan() | b.0.is_nan();
        Wide(nan.blend(b.0, a.0.fast_min(b.0)))
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
    const EXP2_BITS: u32 = 0;
    #[inline(always)]
    unsafe fn exp2_scale(b: Self) -> Self {
        let bits: wide::i32x8 = bytemuck::cast(b.0);
        let one = wide::i32x8::splat(EXP2_TABLE_1[0] as i32);
        Wide(bytemuck::cast((bits << 23) + one))
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
    unsafe fn sum_all(a: Self) -> Self {
        Self::splat(Self::reduce_sum(a))
    }
    #[inline(always)]
    unsafe fn select_lt(a: Self, b: Self, x: Self, y: Self) -> Self {
        use wide::CmpLt;
        Wide(a.0.cmp_lt(b.0).blend(x.0, y.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable vector's max and min give the second operand where either is NaN, as
    /// x86's do, on every target (`wide`'s own instruction would not, off x86 and NEON).
    #[test]
    fn max_and_min_give_the_second_operand_for_a_nan() {
        let first = |v: Wide| v.0.to_array()[0];
        // SAFETY: the portable vector runs everywhere.
        unsafe {
            let (nan, one, minus_two) =
                (Wide::splat(f32::NAN), Wide::splat(1.0), Wide::splat(-2.0));
            assert_eq!(first(Wide::max(nan, one)), 1.0);
            assert!(first(Wide::max(one, nan)).is_nan());
            assert_eq!(first(Wide::min(nan, one)), 1.0);
            assert!(first(Wide::min(one, nan)).is_nan());
            assert_eq!(first(Wide::max(minus_two, one)), 1.0);
            assert_eq!(first(Wide::min(minus_two, one)), -2.0);
        }
    }

    /// The table's constants are `2^(j / 32)` rounded to f32.
    #[test]
    fn exp2_powers_are_the_rounded_powers_of_two() {
        for (j, &bits) in EXP2_POWERS.iter().enumerate() {
            let want = (j as f64 / 32.0).exp2() as f32;
            assert_eq!(f32::from_bits(bits), want, "2^({j}/32)");
        }
    }

    /// Each table with the bit arithmetic of `exp2_scale` (in scalar code; the vector code is
    /// tested through `exp2_nonpositive` in `math.rs`) gives `2^(k / N)` for every `k` it
    /// covers, and `+0` for `k = -127 N`.
    #[test]
    fn exp2_tables_give_the_power_of_every_index() {
        fn check<const N: usize>(table: [u32; N]) {
            let bits = N.trailing_zeros();
            let magic = 1.5 * (1u32 << (23 - bits)) as f32;
            let scale = |k: i32| {
                let b = (k as f32 / N as f32 + magic).to_bits();
                f32::from_bits(table[b as usize % N].wrapping_add(b << (23 - bits)))
            };
            for k in -126 * N as i32..128 * N as i32 {
                let power = EXP2_POWERS[k.rem_euclid(N as i32) as usize * (32 / N)];
                let want = f32::from_bits(power) as f64 * (k.div_euclid(N as i32) as f64).exp2();
                assert_eq!(scale(k), want as f32, "N = {N}, k = {k}");
            }
            assert_eq!(scale(-127 * N as i32).to_bits(), 0, "N = {N}, k = -127 N");
        }
        check(exp2_table::<32>());
        check(exp2_table::<8>());
        check(exp2_table::<1>());
    }
}

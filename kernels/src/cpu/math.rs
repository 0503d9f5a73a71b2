//! SIMD `exp` and `erf` over `SimdF32`, for other kernels (softmax, GELU) and as slice ops.
//!
//! `exp`: Cody-Waite reduction `x = n ln2 + r` (ln2 split in a 9-bit `hi` and a `lo` part,
//! so `n * hi` is exact even without FMA), `|r| <= ln2 / 2`, a degree-6 minimax polynomial for
//! `e^r` (fitted for relative error, 3e-9 before rounding), and `2^n` built in the exponent
//! bits by `SimdF32::pow2i`. Max relative error against f64, measured over 2^24 evenly
//! spaced points of `[-87, 88]` (test `exp_relative_error_over_the_normal_range`, which
//! asserts 1.2e-7): 7.6e-8 with FMA (avx2), 9.9e-8 without (portable on baseline x86_64).
//! Edge behaviour, the same on every ISA:
//! - `x >= 88.72284` (the first f32 above `ln(f32::MAX)`) and `+inf` give `+inf`; every
//!   smaller `x` gives a finite result (up to `f32::MAX`).
//! - `x <= -87.68` (where `2^n` would be `2^-127`) and `-inf` give `+0`; between -87.68 and
//!   -87.34 the result is subnormal, with the reduced precision of subnormals.
//! - NaN gives NaN.
//!
//! `exp_nonpositive`: the same reduction and polynomial for `x <= 0` (softmax's `z - max`,
//! erf's tail) in a third fewer cycles (6.7 against 9.8 per 8 lanes on Zen 3, in L1): one
//! FMA with a magic constant both rounds `x log2e` and biases it for
//! `SimdF32::pow2_biased`, `s = 2^n` multiplies in as `s + (r s) q(r)`, and there is no
//! upper clamp. Max relative error over `[-87, 0]` (unit test below, asserting 1.2e-7):
//! 7.5e-8 with FMA, 9.9e-8 without. The same edges as `exp` for `x <= 0`; right up to
//! `x = 88.37`.
//!
//! `exp2_nonpositive`: `2^y` for `y <= 0`, for callers that fold `log2(e)` into an FMA they do
//! anyway (softmax). A magic-constant add rounds `y` to `k / 2^B`, `B = SimdF32::EXP2_BITS`
//! (the widest table one permute reads: 5 with AVX-512, 3 with AVX2, 0 portable), `f = y -
//! k / 2^B` is exact, `2^(k / 2^B)` comes from a table of `2^B` entries with the integer part
//! added to its exponent (`SimdF32::exp2_scale`), and `2^f` from a minimax polynomial on
//! `|f| <= 2^-(B+1)`: degree 2 for `B = 5`, 3 for `B = 3`, 6 for `B = 0`, so the wider the
//! table, the fewer FMAs (softmax's forward, bench/NOTES.md session 13). Max relative error over
//! `[-126, 0]` (unit test below): 1.6e-7 with AVX-512 (the table's rounding and the degree-2
//! polynomial's 5e-8), 1.1e-7 with AVX2, 9.9e-8 portable with FMA, 1.0e-7 without. Between
//! -127 and -126 the result is only known to be below `2^-126` (the table's entry lands in a
//! zero exponent field); `y <= -127` and -inf give `+0`, NaN gives NaN.
//!
//! `erf`: two branches on `a = |x|`, both evaluated, the right one selected per lane:
//! `a < 0.875`: `x * P(x^2)`, an odd degree-11 polynomial with constant term `2 / sqrt(pi)`
//! (minimax relative error 5e-8 after rounding the coefficients to f32); `a >= 0.875`:
//! `1 - e^(S(a) - a^2)` with `S(a) = ln(erfc(a)) + a^2` a degree-8 polynomial in `a - 2.4375`
//! (absolute error 3e-8 on `[0.875, 4]`), so the exponential's error is scaled down by
//! `erfc(a) <= 0.22`. `a` is clamped to 4, where `1 - erfc` rounds to 1. Max absolute error
//! against f64 over 2^23 evenly spaced points of `[-6, 6]` (test
//! `erf_absolute_error_over_minus_6_to_6`, which asserts 1.5e-7): 9.4e-8 with FMA (avx2),
//! 1.2e-7 without (portable). `erf(±inf) = ±1`, `erf(-0) = -0`, NaN gives NaN.
//!
//! `normal_cdf`: `Phi(x) = (1 + erf(x / sqrt 2)) / 2`, the standard normal CDF (exact GELU is
//! `x Phi(x)`), in one branch and no exponential: the lower tail `Phi(-a)`, `a = |x|`, as a
//! rational function `N(a) / D(a)` of degrees 5 and 9 (minimax absolute error 8e-9 on
//! `[0, 5.5]`, fitted by `kernels/fit_normal_cdf.py`; `N(0) / D(0)` is exactly 1/2), then
//! `Phi(x) = Phi(-a)` for `x < 0` and `1 - Phi(-a)` otherwise. Past `a = 5.5` the tail (below
//! 1.9e-8) is 0, so `Phi` is exactly 0 or 1 there. About 20 vector operations and one division
//! against erf's ~45 (two branches, one of them an exponential): GELU 2.4x faster
//! (bench/NOTES.md, session 14). Max absolute error against f64 over 2^23 evenly spaced points
//! of `[-8, 8]` (test `normal_cdf_absolute_error_over_minus_8_to_8`, which asserts 1.2e-7):
//! 8.8e-8 with FMA (avx512, avx2), 9.8e-8 portable without; absolute, not relative, in the
//! lower tail. `Phi(+inf) = 1`, `Phi(-inf) = 0`, NaN gives NaN.
//!
//! The generic functions are `#[inline(always)]`, for use inside other kernels'
//! `#[target_feature]` entry points; [`exp_slice`], [`erf_slice`] and [`normal_cdf_slice`]
//! apply them to slices (per ISA, on threads) so they can be tested and benchmarked alone.
//! [`exp_reference`], [`erf_reference`] and [`normal_cdf_reference`] are the f64 functions
//! they are measured against.

use crate::cpu::isa::Isa;
use crate::cpu::options::CpuOptions;
use crate::cpu::simd::SimdF32;
use crate::cpu::threads::{for_each_task, Shared};
use crate::{Error, Result};
use std::f32::consts::{FRAC_2_SQRT_PI, LN_2, LOG2_E};

/// Inputs are clamped to `[EXP_LO, EXP_HI]`. `EXP_HI` is the first f32 above `ln(f32::MAX)`,
/// so the clamped value still overflows to `+inf`; `EXP_LO` rounds to `n = -127`, whose `2^n`
/// built by `pow2i` or `pow2_biased` is exactly `+0`.
const EXP_HI: f32 = 88.72284;
const EXP_LO: f32 = -88.0;
/// `1.5 * 2^23 + 127`: for `|x| < 2^22`, `x + EXP_MAGIC` rounds `x` to an integer `n` (f32
/// spacing is 1 in `[2^23, 2^24)`) and leaves `n + 127` in the low mantissa bits, as
/// `SimdF32::pow2_biased` wants.
const EXP_MAGIC: f32 = 12583039.0;
/// `ln 2 = LN2_HI + LN2_LO`; `LN2_HI` has 9 significant bits, so `n * LN2_HI` is exact.
const LN2_HI: f32 = 355.0 / 512.0;
const LN2_LO: f32 = -0.00021219444;
/// `e^r ~ 1 + r + sum EXP_POLY[k] r^(k+2)` on `|r| <= ln2 / 2` (minimax relative error).
const EXP_POLY: [f32; 5] = [
    0.49999994,
    0.16666523,
    0.041668292,
    0.008368532,
    0.0013818296,
];

/// `|x|` below this uses the odd polynomial, above it `1 - erfc`.
const ERF_SPLIT: f32 = 0.875;
/// `|x|` is clamped here: `erf(4) = 1 - 1.5e-8` rounds to 1.
const ERF_CLAMP: f32 = 4.0;
/// Center of the large-argument polynomial's variable `a - ERF_MID`.
const ERF_MID: f32 = 2.4375;
/// `erf(x) ~ x * (2 / sqrt(pi) + sum ERF_SMALL[k] x^(2k+2))` on `|x| < ERF_SPLIT`, minimax
/// relative error.
const ERF_SMALL: [f32; 5] = [
    -0.37612945,
    0.112862885,
    -0.026924893,
    0.0052242866,
    -0.00071795133,
];
/// `ln(erfc(a)) + a^2 ~ sum ERF_LARGE[k] (a - ERF_MID)^k` on `[ERF_SPLIT, ERF_CLAMP]`.
const ERF_LARGE: [f32; 9] = [
    -1.5345509,
    -0.35982344,
    0.05819435,
    -0.011416322,
    0.0023007155,
    -0.0004505406,
    8.362329e-05,
    -1.4051475e-05,
    1.5697225e-06,
];

/// `sum c[k] x^k` by Horner's rule, one FMA per coefficient.
#[inline(always)]
unsafe fn horner<V: SimdF32, const N: usize>(x: V, c: &[f32; N]) -> V {
    let mut p = V::splat(c[N - 1]);
    for k in (0..N - 1).rev() {
        p = V::mul_add(p, x, V::splat(c[k]));
    }
    p
}

/// `e^x` lane-wise; see the module doc for accuracy and edge cases.
#[inline(always)]
pub(crate) unsafe fn exp<V: SimdF32>(x: V) -> V {
    // Operand order matters: x86 max/min return the second operand when either is NaN, so
    // NaN passes through both clamps.
    let x = V::min(V::splat(EXP_HI), V::max(V::splat(EXP_LO), x));
    let n = V::round(V::mul(x, V::splat(LOG2_E)));
    let r = V::mul_add(n, V::splat(-LN2_HI), x);
    let r = V::mul_add(n, V::splat(-LN2_LO), r);
    let p = horner(r, &EXP_POLY);
    let p = V::mul_add(p, r, V::splat(1.0));
    let p = V::mul_add(p, r, V::splat(1.0));
    // n = 128 (x just below ln(f32::MAX)) has no exponent field: double p, scale by 2^127.
    let n_lo = V::min(V::splat(127.0), n);
    let p = V::mul_add(p, V::sub(n, n_lo), p);
    V::mul(p, V::pow2i(n_lo))
}

/// `e^x` lane-wise for `x <= 0`, faster than `exp`; see the module doc. No upper clamp:
/// right up to `x = 88.37` (`n <= 127`). -inf and `x <= -87.68` give 0, NaN gives NaN.
#[inline(always)]
pub(crate) unsafe fn exp_nonpositive<V: SimdF32>(x: V) -> V {
    // NaN passes the clamp (second operand), then zeroes `s` but not `r`: the result is NaN.
    let x = V::max(V::splat(EXP_LO), x);
    let biased = V::mul_add(x, V::splat(LOG2_E), V::splat(EXP_MAGIC));
    let s = V::pow2_biased(biased);
    let n = V::sub(biased, V::splat(EXP_MAGIC));
    let r = V::mul_add(n, V::splat(-LN2_HI), x);
    let r = V::mul_add(n, V::splat(-LN2_LO), r);
    let q = V::mul_add(horner(r, &EXP_POLY), r, V::splat(1.0));
    V::mul_add(V::mul(r, s), q, s)
}

/// `2^f ~ 1 + sum EXP2_POLY[k] f^(k+1)` on `|f| <= 1/2` (minimax relative error 2e-9), for
/// vectors without a table (`EXP2_BITS = 0`).
const EXP2_POLY: [f32; 6] = [
    LN_2,
    0.24022648,
    0.055503324,
    0.009618437,
    0.0013398875,
    0.000_153_533_6,
];
/// The same on `|f| <= 1/16`, degree 3 (2.5e-8), beside an 8-entry table (`EXP2_BITS = 3`).
const EXP2_POLY_8: [f32; 3] = [0.69314724, 0.24025762, 0.055496216];
/// The same on `|f| <= 1/64`, degree 2 (5.3e-8), beside a 32-entry table (`EXP2_BITS = 5`).
const EXP2_POLY_32: [f32; 2] = [0.6931573, 0.24022676];
/// `exp2_nonpositive` clamps its input here: `k = -127 * 2^B`, whose `2^(k / 2^B)` built by
/// `exp2_scale` is exactly `+0`.
const EXP2_LO: f32 = -127.0;

/// `2^y` lane-wise for `y <= 0`: `y = k / 2^B + f` by the magic-constant add (`B =
/// V::EXP2_BITS`), `2^(k / 2^B)` from `exp2_scale`'s table and exponent, `2^f` by a short
/// polynomial, multiplied in as `s + (f P(f)) s` (`f s` would go subnormal near
/// `y = -126`). Fewer operations than `exp_nonpositive` (no two-part reduction), for callers
/// that can fold `log2(e)` into an FMA they already do (softmax). `y <= -127` and -inf give `+0`, NaN gives NaN; right up to `y = 127`.
#[inline(always)]
pub(crate) unsafe fn exp2_nonpositive<V: SimdF32>(y: V) -> V {
    // NaN passes the clamp (second operand) and propagates through `f`.
    let y = V::max(V::splat(EXP2_LO), y);
    let magic = V::splat(1.5 * (1u32 << (23 - V::EXP2_BITS)) as f32);
    let b = V::add(y, magic);
    let s = V::exp2_scale(b);
    let f = V::sub(y, V::sub(b, magic));
    let p = match V::EXP2_BITS {
        5 => horner(f, &EXP2_POLY_32),
        3 => horner(f, &EXP2_POLY_8),
        0 => horner(f, &EXP2_POLY),
        bits => unreachable!("no exp2 polynomial fitted for a table of 2^{bits} entries"),
    };
    V::mul_add(V::mul(f, p), s, s)
}

/// `erf(x)` lane-wise; see the module doc for the method and accuracy.
#[inline(always)]
pub(crate) unsafe fn erf<V: SimdF32>(x: V) -> V {
    let a = V::min(V::splat(ERF_CLAMP), V::abs(x));
    let a2 = V::mul(a, a);
    // Small: a * 2/sqrt(pi) + a^3 Q(a^2), so the leading term is rounded once.
    let q = horner(a2, &ERF_SMALL);
    let small = V::mul_add(a, V::splat(FRAC_2_SQRT_PI), V::mul(V::mul(a, a2), q));
    // Large: 1 - e^(S(a) - a^2), with -a^2 fused into the exponent's last step.
    let s = horner(V::sub(a, V::splat(ERF_MID)), &ERF_LARGE);
    let tail = exp_nonpositive(V::mul_add(V::sub(V::zero(), a), a, s));
    let large = V::sub(V::splat(1.0), tail);
    V::copysign(V::select_lt(a, V::splat(ERF_SPLIT), small, large), x)
}

/// Past this `|x|` the lower tail `Phi(-|x|)` (below 1.9e-8) is taken as 0.
const CDF_CLAMP: f32 = 5.5;
/// `Phi(-a) ~ sum CDF_NUM[k] a^k / sum CDF_DEN[k] a^k` on `[0, CDF_CLAMP]` (minimax absolute
/// error, 8e-9 before rounding the coefficients to f32), as `kernels/fit_normal_cdf.py` prints
/// them.
const CDF_NUM: [f32; 6] = [
    0.5,
    -0.46880636,
    0.177227,
    -0.033749036,
    0.0032355464,
    -0.00012486173,
];
const CDF_DEN: [f32; 10] = [
    1.0,
    -0.1397276,
    0.24295369,
    -0.006516165,
    0.019400079,
    0.003892219,
    -0.0002264576,
    0.00091770035,
    -0.00019049206,
    5.4280383e-05,
];

/// `Phi(x)`, the standard normal CDF, lane-wise; see the module doc for the method and
/// accuracy.
#[inline(always)]
pub(crate) unsafe fn normal_cdf<V: SimdF32>(x: V) -> V {
    let a = V::abs(x);
    // NaN passes the clamp (second operand) and the tail's comparison (false) as NaN.
    let clamped = V::min(V::splat(CDF_CLAMP), a);
    let tail = V::div(horner(clamped, &CDF_NUM), horner(clamped, &CDF_DEN));
    let tail = V::select_lt(V::splat(CDF_CLAMP), a, V::zero(), tail);
    V::select_lt(x, V::zero(), tail, V::sub(V::splat(1.0), tail))
}

/// `e^x` in f64: the reference `exp` is measured against.
pub fn exp_reference(x: f64) -> f64 {
    x.exp()
}

/// `erf(x)` in f64, to about 1e-15 absolute: `2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) /
/// (1*3*...*(2n+1))`, a series of positive terms (no cancellation) that converges for every
/// `x`; `|x| >= 6` gives `±1` (`erfc(6) < 3e-17`).
pub fn erf_reference(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= 6.0 {
        return x.signum();
    }
    let two_x2 = 2.0 * x * x;
    let (mut term, mut sum, mut n) = (x, x, 0.0f64);
    while term.abs() > 1e-18 * sum.abs() {
        n += 1.0;
        term *= two_x2 / (2.0 * n + 1.0);
        sum += term;
    }
    std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp() * sum
}

/// `Phi(x) = (1 + erf(x / sqrt 2)) / 2` in f64 (with [`erf_reference`]), to about 1e-15
/// absolute.
pub fn normal_cdf_reference(x: f64) -> f64 {
    0.5 * (1.0 + erf_reference(x * std::f64::consts::FRAC_1_SQRT_2))
}

/// A lane-wise function that slice ops can apply.
trait Lanewise {
    const NAME: &'static str;
    unsafe fn apply<V: SimdF32>(x: V) -> V;
}

struct Exp;
struct Erf;
struct NormalCdf;

impl Lanewise for Exp {
    const NAME: &'static str = "exp_slice";
    #[inline(always)]
    unsafe fn apply<V: SimdF32>(x: V) -> V {
        exp(x)
    }
}

impl Lanewise for Erf {
    const NAME: &'static str = "erf_slice";
    #[inline(always)]
    unsafe fn apply<V: SimdF32>(x: V) -> V {
        erf(x)
    }
}

impl Lanewise for NormalCdf {
    const NAME: &'static str = "normal_cdf_slice";
    #[inline(always)]
    unsafe fn apply<V: SimdF32>(x: V) -> V {
        normal_cdf(x)
    }
}

/// `y[i] = F(x[i])` for `i < n`, whole vectors then one partial vector.
#[inline(always)]
unsafe fn map<V: SimdF32, F: Lanewise>(x: *const f32, y: *mut f32, n: usize) {
    let mut i = 0;
    while i + V::LANES <= n {
        V::store(y.add(i), F::apply(V::load(x.add(i))));
        i += V::LANES;
    }
    if i < n {
        let v = F::apply(V::load_partial(x.add(i), n - i, 0.0));
        V::store_partial(y.add(i), n - i, v);
    }
}

type MapFn = unsafe fn(x: *const f32, y: *mut f32, n: usize);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{map, Lanewise};
    use crate::cpu::simd::{V256, V512};

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn map_avx512<F: Lanewise>(x: *const f32, y: *mut f32, n: usize) {
        map::<V512, F>(x, y, n)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn map_avx2<F: Lanewise>(x: *const f32, y: *mut f32, n: usize) {
        map::<V256, F>(x, y, n)
    }
}

unsafe fn map_portable<F: Lanewise>(x: *const f32, y: *mut f32, n: usize) {
    map::<crate::cpu::simd::Wide, F>(x, y, n)
}

/// The `F` slice kernel for `isa`; the caller has checked that the CPU supports it.
fn map_fn<F: Lanewise>(isa: Isa) -> MapFn {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::map_avx512::<F>,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => x86::map_avx2::<F>,
        _ => map_portable::<F>,
    }
}

/// Elements per task below which extra threads cost more than they save.
const MIN_TASK_LEN: usize = 1 << 14;

/// `y[i] = F(x[i])`, checked, on `opts.threads` threads in contiguous chunks.
fn map_slice<F: Lanewise>(x: &[f32], y: &mut [f32], opts: &CpuOptions) -> Result<()> {
    opts.validate(F::NAME)?;
    if x.len() != y.len() {
        return Err(Error::Shape {
            op: F::NAME,
            detail: format!("x has {} elements but y has {}", x.len(), y.len()),
        });
    }
    let n = x.len();
    let run = map_fn::<F>(opts.isa);
    let tasks = opts.threads.min(n / MIN_TASK_LEN).max(1);
    // Chunks of whole 64-byte lines, so tasks never share a cache line of y.
    let chunk = n.div_ceil(tasks).next_multiple_of(16);
    let ptrs = Shared((x.as_ptr(), y.as_mut_ptr()));
    for_each_task(opts.threads, tasks, |t| {
        let (x, y) = ptrs.get();
        let start = (t * chunk).min(n);
        let len = chunk.min(n - start);
        // SAFETY: the lengths were checked equal; task `t` reads and writes only
        // `start..start + len`, inside both slices and disjoint from every other task; the ISA
        // was validated.
        unsafe { run(x.add(start), y.add(start), len) }
    });
    Ok(())
}

/// `y[i] = e^x[i]` for slices of equal length, with the SIMD `exp` of `opts.isa`.
///
/// Errors when the lengths differ or the ISA is not supported by this CPU.
pub fn exp_slice(x: &[f32], y: &mut [f32], opts: &CpuOptions) -> Result<()> {
    map_slice::<Exp>(x, y, opts)
}

/// `y[i] = erf(x[i])` for slices of equal length, with the SIMD `erf` of `opts.isa`.
///
/// Errors when the lengths differ or the ISA is not supported by this CPU.
pub fn erf_slice(x: &[f32], y: &mut [f32], opts: &CpuOptions) -> Result<()> {
    map_slice::<Erf>(x, y, opts)
}

/// `y[i] = Phi(x[i])` (the standard normal CDF) for slices of equal length, with the SIMD
/// `normal_cdf` of `opts.isa`.
///
/// Errors when the lengths differ or the ISA is not supported by this CPU.
pub fn normal_cdf_slice(x: &[f32], y: &mut [f32], opts: &CpuOptions) -> Result<()> {
    map_slice::<NormalCdf>(x, y, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct ExpNonpositive;

    impl Lanewise for ExpNonpositive {
        const NAME: &'static str = "exp_nonpositive";
        #[inline(always)]
        unsafe fn apply<V: SimdF32>(x: V) -> V {
            exp_nonpositive(x)
        }
    }

    struct Exp2Nonpositive;

    impl Lanewise for Exp2Nonpositive {
        const NAME: &'static str = "exp2_nonpositive";
        #[inline(always)]
        unsafe fn apply<V: SimdF32>(x: V) -> V {
            exp2_nonpositive(x)
        }
    }

    /// `F` of every value of `x` with the `isa` kernel.
    fn apply<F: Lanewise>(x: &[f32], isa: Isa) -> Vec<f32> {
        let mut y = vec![0.0; x.len()];
        // SAFETY: `isa` comes from `Isa::supported()`; both slices hold `x.len()` values.
        unsafe { map_fn::<F>(isa)(x.as_ptr(), y.as_mut_ptr(), x.len()) };
        y
    }

    /// Checks `F` on every supported ISA: the largest relative error against `reference` over
    /// 2^22 evenly spaced points of `[lo, 0]` is at most `bound(isa)`, and the `edges` give
    /// `want` (NaN where `want` is NaN).
    fn check<F: Lanewise>(
        lo: f64,
        reference: fn(f64) -> f64,
        bound: fn(Isa) -> f64,
        edges: &[f32],
        want: &[f32],
    ) {
        let n = 1 << 22;
        let x: Vec<f32> = (0..n)
            .map(|i| (lo * i as f64 / (n - 1) as f64) as f32)
            .collect();
        for isa in Isa::supported() {
            let y = apply::<F>(&x, isa);
            let worst = x
                .iter()
                .zip(&y)
                .map(|(&xi, &yi)| (yi as f64 / reference(xi as f64) - 1.0).abs())
                .fold(0.0, f64::max);
            assert!(
                worst <= bound(isa),
                "{}, {isa}: max relative error {worst:e}",
                F::NAME
            );
            let got = apply::<F>(edges, isa);
            for (k, (g, w)) in got.iter().zip(want).enumerate() {
                let same = g == w || (g.is_nan() && w.is_nan());
                assert!(same, "{}, {isa}: f({}) = {g}, want {w}", F::NAME, edges[k]);
            }
        }
    }

    #[test]
    fn exp2_nonpositive_relative_error_and_edges() {
        let edges = [
            f32::NEG_INFINITY,
            -1e30,
            -127.0,
            -0.0,
            0.0,
            -1.0,
            1.0,
            127.0,
            f32::NAN,
        ];
        let want = [0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 2.0, 2f32.powi(127), f32::NAN];
        // The AVX-512 table's entries are rounded and its polynomial has degree 2.
        let bound = |isa| if isa == Isa::Avx512 { 1.7e-7 } else { 1.2e-7 };
        check::<Exp2Nonpositive>(-126.0, f64::exp2, bound, &edges, &want);
    }

    #[test]
    fn exp_nonpositive_relative_error_and_edges() {
        let edges = [f32::NEG_INFINITY, -1e30, -88.0, -0.0, 0.0, f32::NAN];
        let want = [0.0, 0.0, 0.0, 1.0, 1.0, f32::NAN];
        check::<ExpNonpositive>(-87.0, exp_reference, |_| 1.2e-7, &edges, &want);
    }
}

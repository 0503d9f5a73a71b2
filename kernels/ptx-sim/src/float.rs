//! Floating-point pieces the host CPU does not give directly: rounding to f32, f16 and bf16
//! in any of PTX's four rounding modes, conversions between them, flush-to-zero, and the
//! hardware's canonical NaN.
//!
//! Directed rounding of an operation works from its exact result written as `hi + lo` (two
//! f64s, `lo` the error of `hi`); only the sign of `lo` matters when `hi` sits on the target
//! grid or exactly halfway between two of its points.

use crate::inst::{IntRnd, Rnd};

/// A binary floating-point target format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Format {
    /// Significand bits including the implicit one.
    pub precision: i32,
    /// Exponent of the smallest normal number.
    pub emin: i32,
    /// Largest finite value.
    pub max: f64,
}

/// IEEE single precision.
pub const F32: Format = Format {
    precision: 24,
    emin: -126,
    max: f32::MAX as f64,
};
/// IEEE half precision.
pub const F16: Format = Format {
    precision: 11,
    emin: -14,
    max: 65504.0,
};
/// bfloat16.
pub const BF16: Format = Format {
    precision: 8,
    emin: -126,
    max: 3.389_531_389_251_535_5e38,
};

/// TensorFloat-32: f32's sign and exponent with 10 explicit significand bits.
pub const TF32: Format = Format {
    precision: 11,
    emin: -126,
    max: 3.401_162_134_214_653_5e38,
};

/// The NaN the GPU produces for f32 results.
pub const CANONICAL_NAN_F32: u32 = 0x7fff_ffff;
/// The NaN the GPU produces for f64 results.
pub const CANONICAL_NAN_F64: u64 = 0x7fff_ffff_ffff_ffff;
/// The NaN a conversion to TF32 gives here: f32's canonical NaN with the 13 bits TF32 lacks
/// cleared.
pub const CANONICAL_NAN_TF32: u32 = 0x7fff_e000;

/// Rounds `x` to a value representable in `fmt` with rounding `rnd` (round-to-integer modes
/// act like their plain counterparts). Overflow gives infinity or the largest finite value as
/// IEEE says for the mode.
pub fn round_to(x: f64, fmt: Format, rnd: Rnd) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let e = exponent(x).max(fmt.emin);
    let quantum = exp2i(e - (fmt.precision - 1));
    let q = x / quantum;
    let r = match plain(rnd) {
        Rnd::Rz => q.trunc(),
        Rnd::Rm => q.floor(),
        Rnd::Rp => q.ceil(),
        Rnd::Rna => q.round(),
        _ => q.round_ties_even(),
    } * quantum;
    if r.abs() <= fmt.max {
        return r;
    }
    overflow(x, fmt.max, rnd)
}

/// The result of rounding `x`, beyond the largest finite value `max` of its format, in mode
/// `rnd`: infinity, or `max` where the mode rounds toward zero.
fn overflow(x: f64, max: f64, rnd: Rnd) -> f64 {
    match plain(rnd) {
        Rnd::Rz => max.copysign(x),
        Rnd::Rm if x > 0.0 => max,
        Rnd::Rp if x < 0.0 => -max,
        _ => f64::INFINITY.copysign(x),
    }
}

/// Rounds the exact value `hi + lo` (|lo| at most half an f64 ulp of hi) to `fmt`.
pub fn round_exact(hi: f64, lo: f64, fmt: Format, rnd: Rnd) -> f64 {
    if lo == 0.0 || !hi.is_finite() {
        return round_to(hi, fmt, rnd);
    }
    let on_grid = round_to(hi, fmt, Rnd::Rz) == hi;
    let halfway = !on_grid && {
        let down = round_to(hi, fmt, Rnd::Rm);
        let up = round_to(hi, fmt, Rnd::Rp);
        hi - down == up - hi
    };
    if on_grid || halfway {
        let nudged = if lo > 0.0 {
            hi.next_up()
        } else {
            hi.next_down()
        };
        round_to(nudged, fmt, rnd)
    } else {
        round_to(hi, fmt, rnd)
    }
}

/// Rounds the exact value `(hi + lo) * 2^scale` to f64 in mode `rnd`: `hi` is rounded to
/// nearest and normal unless `lo` is zero, `lo` has the sign of the rest (zero when `hi` is
/// exact) and a magnitude of at most half an ulp of `hi`.
pub fn round_f64(hi: f64, lo: f64, scale: i32, rnd: Rnd) -> f64 {
    if hi == 0.0 || !hi.is_finite() {
        return hi;
    }
    let top = exponent(hi) + scale;
    if top > 1023 {
        return overflow(hi, f64::MAX, rnd);
    }
    if top >= -1022 {
        let r = ldexp(step(hi, lo, rnd), scale);
        return if r.is_finite() {
            r
        } else {
            overflow(hi, f64::MAX, rnd)
        };
    }
    // A subnormal result: round to its grid, which is coarser than hi's. Below half the
    // smallest subnormal only the sign matters, so the scale is kept within exp2i's range.
    let scale = scale.max(-1076 - exponent(hi));
    let grid = Format {
        precision: 53,
        emin: -1022 - scale,
        max: f64::MAX,
    };
    ldexp(round_exact(hi, lo, grid, rnd), scale)
}

/// `hi` moved one step on the f64 grid where the exact `hi + lo` lies beyond it in the
/// direction of mode `rnd`.
fn step(hi: f64, lo: f64, rnd: Rnd) -> f64 {
    match plain(rnd) {
        Rnd::Rz if lo != 0.0 && (lo < 0.0) != (hi < 0.0) => {
            if hi > 0.0 {
                hi.next_down()
            } else {
                hi.next_up()
            }
        }
        Rnd::Rm if lo < 0.0 => hi.next_down(),
        Rnd::Rp if lo > 0.0 => hi.next_up(),
        _ => hi,
    }
}

/// `x * 2^e` rounded once: its callers keep `x * 2^(e / 2)` a normal number.
fn ldexp(x: f64, e: i32) -> f64 {
    x * exp2i(e / 2) * exp2i(e - e / 2)
}

/// A finite non-zero `x` as `m * 2^e` with `1 <= |m| < 2`.
fn split(x: f64) -> (f64, i32) {
    let e = exponent(x);
    (ldexp(x, -e), e)
}

/// `x + y` (`y` negated for a subtraction) rounded in mode `rnd`.
pub fn add_f64(x: f64, y: f64, rnd: Rnd) -> f64 {
    let s = x + y;
    if rnd == Rnd::Rn || !x.is_finite() || !y.is_finite() {
        return s;
    }
    // Halving is exact here: a sum can only overflow when both addends are large.
    let scale = i32::from(!s.is_finite());
    let (hi, lo) = two_sum(ldexp(x, -scale), ldexp(y, -scale));
    round_f64(hi, lo, scale, rnd)
}

/// `x * y` rounded in mode `rnd`.
pub fn mul_f64(x: f64, y: f64, rnd: Rnd) -> f64 {
    let p = x * y;
    if rnd == Rnd::Rn || x == 0.0 || y == 0.0 || !x.is_finite() || !y.is_finite() {
        return p;
    }
    let ((a, ea), (b, eb)) = (split(x), split(y));
    let hi = a * b;
    round_f64(hi, a.mul_add(b, -hi), ea + eb, rnd)
}

/// `x / y` rounded in mode `rnd`.
pub fn div_f64(x: f64, y: f64, rnd: Rnd) -> f64 {
    let q = x / y;
    if rnd == Rnd::Rn || x == 0.0 || y == 0.0 || !x.is_finite() || !y.is_finite() {
        return q;
    }
    let ((a, ea), (b, eb)) = (split(x), split(y));
    let hi = a / b;
    round_f64(hi, (-hi).mul_add(b, a) / b, ea - eb, rnd)
}

/// The square root of `x` rounded in mode `rnd`.
pub fn sqrt_f64(x: f64, rnd: Rnd) -> f64 {
    let s = x.sqrt();
    if rnd == Rnd::Rn || x <= 0.0 || !s.is_finite() {
        return s;
    }
    // x = a * 2^(2k) with 1 <= a < 4, so sqrt(x) = sqrt(a) * 2^k.
    let k = exponent(x).div_euclid(2);
    let a = ldexp(x, -2 * k);
    let hi = a.sqrt();
    round_f64(hi, (-hi).mul_add(hi, a), k, rnd)
}

/// `x * y + z` with one rounding in mode `rnd`.
pub fn fma_f64(x: f64, y: f64, z: f64, rnd: Rnd) -> f64 {
    let r = x.mul_add(y, z);
    let finite = x.is_finite() && y.is_finite() && z.is_finite();
    if rnd == Rnd::Rn || !finite || x == 0.0 || y == 0.0 {
        return r;
    }
    if z == 0.0 {
        return mul_f64(x, y, rnd);
    }
    // Scaled by 2^-e, the larger of the product and z lies in [1, 4); the smaller one, when far
    // below, is raised to about 2^-900, still far below half an ulp of the larger, so that
    // nothing underflows and the rounding is the same.
    let ((a, ea), (b, eb), (c, ec)) = (split(x), split(y), split(z));
    let e = ec.max(ea + eb);
    let a = ldexp(a, (ea + eb - e).max(-900));
    let c = ldexp(c, (ec - e).max(-900));
    let hi = a.mul_add(b, c);
    round_f64(hi, fma_error(a, b, c, hi), e, rnd)
}

/// `a + b = s + e` exactly (Knuth's TwoSum).
pub fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, if s.is_finite() { e } else { 0.0 })
}

/// A value with the sign of `a * b + c - r` (zero when that is zero), for `r = fma(a, b, c)`
/// rounded to nearest: what `round_f64` needs to round the fma in another mode.
pub fn fma_error(a: f64, b: f64, c: f64, r: f64) -> f64 {
    let p = a * b;
    if !p.is_finite() || !r.is_finite() {
        return 0.0;
    }
    // a * b = p + pe exactly; p + pe + c - r is summed into an expansion, parts of growing
    // magnitude that do not overlap (Shewchuk's grow-expansion), so the largest non-zero part
    // carries the sign of the whole.
    let pe = a.mul_add(b, -p);
    let mut parts = [0.0; 4];
    for (n, t) in [pe, c, -r, p].into_iter().enumerate() {
        let mut q = t;
        for part in &mut parts[..n] {
            (q, *part) = two_sum(q, *part);
        }
        parts[n] = q;
    }
    parts.into_iter().rev().find(|&x| x != 0.0).unwrap_or(0.0)
}

fn plain(rnd: Rnd) -> Rnd {
    match rnd {
        Rnd::Int(IntRnd::N) => Rnd::Rn,
        Rnd::Int(IntRnd::Z) => Rnd::Rz,
        Rnd::Int(IntRnd::M) => Rnd::Rm,
        Rnd::Int(IntRnd::P) => Rnd::Rp,
        r => r,
    }
}

/// Rounds to an integral value in mode `r`.
pub fn round_int(x: f64, r: IntRnd) -> f64 {
    match r {
        IntRnd::N => x.round_ties_even(),
        IntRnd::Z => x.trunc(),
        IntRnd::M => x.floor(),
        IntRnd::P => x.ceil(),
    }
}

/// floor(log2(|x|)) of a finite non-zero f64.
fn exponent(x: f64) -> i32 {
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i32;
    if e == 0 {
        // Subnormal f64: scale up first.
        exponent(x * exp2i(64)) - 64
    } else {
        e - 1023
    }
}

/// 2^e for -1074 <= e <= 1023.
fn exp2i(e: i32) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}

/// Encodes a value already representable in half precision as f16 bits.
fn encode_f16(v: f64) -> u16 {
    let sign = if v.is_sign_negative() { 0x8000u16 } else { 0 };
    let a = v.abs();
    if v.is_nan() {
        return 0x7fff;
    }
    if a.is_infinite() {
        return sign | 0x7c00;
    }
    if a < exp2i(-14) {
        return sign | (a / exp2i(-24)) as u16;
    }
    let e = exponent(a);
    let mant = (a / exp2i(e - 10)) as u16 - 1024;
    sign | (((e + 15) as u16) << 10) | mant
}

/// f16 bits of `x` rounded in mode `rnd`.
pub fn to_f16(x: f64, rnd: Rnd) -> u16 {
    encode_f16(round_to(x, F16, rnd))
}

/// The value of f16 bits.
pub fn from_f16(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as f64;
    let v = match e {
        0 => m * exp2i(-24),
        31 if m == 0.0 => f64::INFINITY,
        31 => return f32::NAN,
        _ => (1024.0 + m) * exp2i(e - 25),
    };
    (sign * v) as f32
}

/// bf16 bits of `x` rounded in mode `rnd`.
pub fn to_bf16(x: f64, rnd: Rnd) -> u16 {
    if x.is_nan() {
        return 0x7fff;
    }
    ((round_to(x, BF16, rnd) as f32).to_bits() >> 16) as u16
}

/// The value of bf16 bits.
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Flushes an f32 subnormal to a zero of the same sign.
pub fn ftz32(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

/// f32 bits of a result, NaN made canonical.
pub fn bits32(x: f32) -> u64 {
    if x.is_nan() {
        CANONICAL_NAN_F32 as u64
    } else {
        x.to_bits() as u64
    }
}

/// f64 bits of a result, NaN made canonical.
pub fn bits64(x: f64) -> u64 {
    if x.is_nan() {
        CANONICAL_NAN_F64
    } else {
        x.to_bits()
    }
}

/// Integer conversion of a float with PTX semantics: round in mode `r`, saturate to the
/// integer range of `bits` (signed or not), NaN gives 0.
pub fn float_to_int(x: f64, r: IntRnd, bits: u32, signed: bool) -> u64 {
    if x.is_nan() {
        return 0;
    }
    let v = round_int(x, r);
    let raw = if signed {
        let lo = -(2f64.powi(bits as i32 - 1));
        let hi = 2f64.powi(bits as i32 - 1) - 1.0;
        (v.clamp(lo, hi) as i64) as u64
    } else {
        let hi = 2f64.powi(bits as i32) - 1.0;
        v.clamp(0.0, hi) as u64
    };
    crate::decode::mask(raw, bits)
}

/// An integer (of at most 64 bits) as `hi + lo` exactly: `hi` the nearest f64.
pub fn split_int(v: i128) -> (f64, f64) {
    let hi = v as f64;
    (hi, (v - hi as i128) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directed_rounding_of_a_sum_uses_the_sign_of_the_error() {
        // 1 + 2^-30 is not an f32: rz and rm give 1, rp the next float up.
        let (s, e) = two_sum(1.0, exp2i(-30));
        assert_eq!(round_exact(s, e, F32, Rnd::Rz), 1.0);
        assert_eq!(round_exact(s, e, F32, Rnd::Rm), 1.0);
        assert_eq!(round_exact(s, e, F32, Rnd::Rp), 1.0f32.next_up() as f64);
        // 1 - 2^-60: hi rounds to exactly 1.0 in f64, lo is negative.
        let (s, e) = two_sum(1.0, -exp2i(-60));
        assert_eq!(s, 1.0);
        assert_eq!(round_exact(s, e, F32, Rnd::Rm), 1.0f32.next_down() as f64);
        assert_eq!(round_exact(s, e, F32, Rnd::Rn), 1.0);
    }

    #[test]
    fn half_precision_round_trips_and_rounds_to_even() {
        for h in [
            0u16, 1, 0x3ff, 0x400, 0x3c00, 0x7bff, 0x8001, 0xfbff, 0x7c00,
        ] {
            assert_eq!(to_f16(from_f16(h) as f64, Rnd::Rn), h, "{h:#x}");
        }
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even gives 1.
        assert_eq!(to_f16(1.0 + exp2i(-11), Rnd::Rn), 0x3c00);
        assert_eq!(to_f16(1.0 + exp2i(-11), Rnd::Rp), 0x3c01);
        assert_eq!(to_f16(70000.0, Rnd::Rn), 0x7c00);
        assert_eq!(to_f16(70000.0, Rnd::Rz), 0x7bff);
    }

    #[test]
    fn bf16_and_integer_conversions() {
        assert_eq!(to_bf16(1.0 + exp2i(-8), Rnd::Rn), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 * exp2i(-8), Rnd::Rn), 0x3f82);
        assert_eq!(float_to_int(3e9, IntRnd::Z, 32, true), 0x7fff_ffff);
        assert_eq!(
            float_to_int(-1.5, IntRnd::N, 32, true),
            (-2i32) as u32 as u64
        );
        assert_eq!(float_to_int(-1.0, IntRnd::Z, 32, false), 0);
        assert_eq!(float_to_int(f64::NAN, IntRnd::Z, 32, true), 0);
        let (hi, lo) = split_int(16_777_217);
        assert_eq!(round_exact(hi, lo, F32, Rnd::Rz), 16_777_216.0);
        assert_eq!(round_exact(hi, lo, F32, Rnd::Rp), 16_777_218.0);
    }
}

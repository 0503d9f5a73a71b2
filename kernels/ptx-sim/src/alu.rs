//! What each arithmetic, logic, comparison and conversion instruction computes for one thread.
//! Values are register bits (`u64`, the value in the low bits); results are masked to the
//! destination width.

use crate::decode::mask;
use crate::float::{self, bits32, bits64, ftz32, round_exact, two_sum, F32};
use crate::inst::*;

/// `v` sign-extended from `bits`.
pub fn sext(v: u64, bits: u32) -> i64 {
    if bits >= 64 {
        v as i64
    } else {
        let s = 64 - bits;
        ((v << s) as i64) >> s
    }
}

fn int_value(v: u64, ty: Ty) -> i128 {
    if ty.is_signed() {
        sext(v, ty.bits()) as i128
    } else {
        mask(v, ty.bits()) as i128
    }
}

/// Two-operand integer op (`ty` is the operand type; `mul.wide` gives twice its width).
pub fn int_op(op: IntOp, ty: Ty, a: u64, b: u64, sat: bool) -> u64 {
    let w = ty.bits();
    let (x, y) = (int_value(a, ty), int_value(b, ty));
    let r: i128 = match op {
        IntOp::Add | IntOp::Sub if sat => {
            let v = if op == IntOp::Add { x + y } else { x - y };
            let lim = 1i128 << (w - 1);
            v.clamp(-lim, lim - 1)
        }
        IntOp::Add => x + y,
        IntOp::Sub => x - y,
        IntOp::MulLo => x.wrapping_mul(y),
        IntOp::MulHi if !ty.is_signed() => return mask(((x as u128 * y as u128) >> w) as u64, w),
        IntOp::MulHi => x.wrapping_mul(y) >> w,
        IntOp::MulWide => return mask((x * y) as u64, 2 * w),
        IntOp::Mul24Lo | IntOp::Mul24Hi => {
            let (x, y) = if ty.is_signed() {
                (sext(a, 24) as i128, sext(b, 24) as i128)
            } else {
                (mask(a, 24) as i128, mask(b, 24) as i128)
            };
            let p = x * y;
            return mask((if op == IntOp::Mul24Hi { p >> 16 } else { p }) as u64, 32);
        }
        IntOp::Div if y == 0 => -1,
        IntOp::Div => x.wrapping_div(y),
        IntOp::Rem if y == 0 => x,
        IntOp::Rem => x.wrapping_rem(y),
        IntOp::Min => x.min(y),
        IntOp::Max => x.max(y),
        IntOp::And => return a & b,
        IntOp::Or => return a | b,
        IntOp::Xor => return a ^ b,
        IntOp::Shl => {
            let n = mask(b, 32);
            return if n >= w as u64 { 0 } else { mask(a << n, w) };
        }
        IntOp::Shr => {
            let n = mask(b, 32).min(w as u64 - 1 + (!ty.is_signed()) as u64);
            if n >= w as u64 {
                return 0;
            }
            x >> n
        }
    };
    mask(r as u64, w)
}

/// One-operand integer op.
pub fn int_unary(op: IntUnary, ty: Ty, a: u64) -> u64 {
    let w = ty.bits();
    let v = mask(a, w);
    match op {
        IntUnary::Not => mask(!a, w),
        IntUnary::Cnot => (v == 0) as u64,
        IntUnary::Neg => mask(v.wrapping_neg(), w),
        IntUnary::Abs => mask(sext(v, w).unsigned_abs(), w),
        IntUnary::Popc => v.count_ones() as u64,
        IntUnary::Clz => (v.leading_zeros() - (64 - w)) as u64,
        IntUnary::Brev => v.reverse_bits() >> (64 - w),
        IntUnary::Bfind { shiftamt } => {
            let probe = if ty.is_signed() && sext(v, w) < 0 {
                mask(!v, w)
            } else {
                v
            };
            if probe == 0 {
                return 0xffff_ffff;
            }
            let pos = 63 - probe.leading_zeros() as u64;
            if shiftamt {
                w as u64 - 1 - pos
            } else {
                pos
            }
        }
    }
}

/// `mad.lo/hi/wide`: the chosen part of `a * b`, plus `c`.
pub fn mad(mode: IntOp, ty: Ty, a: u64, b: u64, c: u64) -> u64 {
    let p = int_op(mode, ty, a, b, false);
    let w = if mode == IntOp::MulWide {
        2 * ty.bits()
    } else {
        ty.bits()
    };
    mask(p.wrapping_add(c), w)
}

/// `sad`: `c + |a - b|`.
pub fn sad(ty: Ty, a: u64, b: u64, c: u64) -> u64 {
    let d = (int_value(a, ty) - int_value(b, ty)).unsigned_abs() as u64;
    mask(d.wrapping_add(c), ty.bits())
}

fn f32_in(v: u64, m: FloatMods) -> f32 {
    let x = f32::from_bits(v as u32);
    if m.ftz {
        ftz32(x)
    } else {
        x
    }
}

fn f32_out(x: f32, m: FloatMods) -> u64 {
    let mut x = if m.ftz { ftz32(x) } else { x };
    if m.sat {
        x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
    }
    bits32(x)
}

fn f64_out(x: f64, m: FloatMods) -> u64 {
    bits64(saturate(x, m.sat))
}

/// `.sat`: clamps to [0, 1], NaN to 0; the value unchanged without it.
fn saturate(x: f64, sat: bool) -> f64 {
    match (sat, x.is_nan()) {
        (false, _) => x,
        (true, true) => 0.0,
        (true, false) => x.clamp(0.0, 1.0),
    }
}

/// `min`/`max` as PTX defines them: a NaN operand is ignored, -0 is below +0.
fn min_max(a: f64, b: f64, max: bool) -> f64 {
    if a.is_nan() {
        return b;
    }
    if b.is_nan() {
        return a;
    }
    if a == b {
        let neg = a.is_sign_negative();
        return if neg != max { a } else { b };
    }
    if (a < b) != max {
        a
    } else {
        b
    }
}

/// The exact result of `a op b` as `hi + lo` in f64 (for f32 operands).
fn exact(op: FloatOp, a: f64, b: f64) -> (f64, f64) {
    match op {
        FloatOp::Add => two_sum(a, b),
        FloatOp::Sub => two_sum(a, -b),
        FloatOp::Mul => (a * b, 0.0),
        _ => {
            let q = a / b;
            let r = (-q).mul_add(b, a);
            (
                q,
                if q.is_finite() && b != 0.0 {
                    r / b
                } else {
                    0.0
                },
            )
        }
    }
}

/// Two-operand float op.
pub fn float_op(op: FloatOp, ty: Ty, m: FloatMods, a: u64, b: u64) -> u64 {
    if let Some((elem, n)) = ty.halves() {
        return per_half(n, [a, b, 0], |[x, y, _]| half_op(op, elem, m, x, y));
    }
    if m.nan && matches!(op, FloatOp::Min | FloatOp::Max) {
        let nan = if ty == Ty::F64 {
            f64::from_bits(a).is_nan() || f64::from_bits(b).is_nan()
        } else {
            f32::from_bits(a as u32).is_nan() || f32::from_bits(b as u32).is_nan()
        };
        if nan {
            return if ty == Ty::F64 {
                float::CANONICAL_NAN_F64
            } else {
                float::CANONICAL_NAN_F32 as u64
            };
        }
    }
    if ty == Ty::F64 {
        let (x, y) = (f64::from_bits(a), f64::from_bits(b));
        let r = match op {
            FloatOp::Min => min_max(x, y, false),
            FloatOp::Max => min_max(x, y, true),
            FloatOp::Copysign => y.copysign(x),
            FloatOp::Add => float::add_f64(x, y, m.rnd),
            FloatOp::Sub => float::add_f64(x, -y, m.rnd),
            FloatOp::Mul => float::mul_f64(x, y, m.rnd),
            FloatOp::Div => float::div_f64(x, y, m.rnd),
        };
        return f64_out(r, m);
    }
    let (x, y) = (f32_in(a, m), f32_in(b, m));
    let r = match op {
        FloatOp::Min => min_max(x as f64, y as f64, false) as f32,
        FloatOp::Max => min_max(x as f64, y as f64, true) as f32,
        FloatOp::Copysign => y.copysign(x),
        // x * (1/y), where 1/y is flushed to zero for 2^126 < |y| < 2^128 (CUDA's __fdividef:
        // 0, or NaN for an infinite x).
        FloatOp::Div if m.approx && y.is_finite() && y.abs() > 2f32.powi(126) => {
            x * 0f32.copysign(y)
        }
        FloatOp::Div if m.approx => (x as f64 / y as f64) as f32,
        _ if m.rnd == Rnd::Rn => match op {
            FloatOp::Add => x + y,
            FloatOp::Sub => x - y,
            FloatOp::Mul => x * y,
            _ => x / y,
        },
        _ => {
            let (hi, lo) = exact(op, x as f64, y as f64);
            round_exact(hi, lo, F32, m.rnd) as f32
        }
    };
    f32_out(r, m)
}

/// An f32 `.approx` result `r` of operand bits `a` moved `ulps` units in the last place, away
/// from or toward zero as a hash of `a` decides, so that errors differ from value to value
/// (a common factor would cancel in a softmax) and repeat from run to run. The exactly
/// defined cases stay exact: zero, infinite or NaN operands and results (PTX: `ex2(-inf) =
/// +0`, `ex2(+-0) = 1`, ...).
pub fn approx_error(r: u64, a: u64, ulps: u32) -> u64 {
    let (x, y) = (f32::from_bits(a as u32), f32::from_bits(r as u32));
    if ulps == 0 || x == 0.0 || !x.is_finite() || y == 0.0 || !y.is_finite() {
        return r;
    }
    let mag = (r as u32 & 0x7fff_ffff) as i64;
    let away = (a as u32).wrapping_mul(0x9e37_79b9) >> 31 == 1;
    let mag = if away {
        mag + ulps as i64
    } else {
        mag - ulps as i64
    };
    // Stay a finite number of the same sign.
    let mag = mag.clamp(1, f32::MAX.to_bits() as i64) as u32;
    u64::from((r as u32 & 0x8000_0000) | mag)
}

/// One-operand float op. The `.approx` forms are computed in f64 and rounded to nearest, so
/// they are at least as accurate as the hardware's documented bounds.
pub fn float_unary(op: FloatUnary, ty: Ty, m: FloatMods, a: u64) -> u64 {
    if let Some((elem, n)) = ty.halves() {
        return per_half(n, [a, 0, 0], |[x, _, _]| {
            let x = if m.ftz && half_in(x, elem, true) == 0.0 {
                x & 0x8000
            } else {
                x
            };
            match op {
                FloatUnary::Neg => x ^ 0x8000,
                FloatUnary::Abs => x & 0x7fff,
                other => half_out(unary_f64(other, half_in(x, elem, m.ftz)), 0.0, elem, m),
            }
        });
    }
    if ty == Ty::F64 {
        let x = f64::from_bits(a);
        let r = match op {
            FloatUnary::Neg => return a ^ (1 << 63),
            FloatUnary::Abs => return a & !(1 << 63),
            FloatUnary::Sqrt => float::sqrt_f64(x, m.rnd),
            FloatUnary::Rcp => float::div_f64(1.0, x, m.rnd),
            other => unary_f64(other, x),
        };
        return f64_out(r, m);
    }
    let x = f32_in(a, m);
    let r = match op {
        FloatUnary::Neg => return (x.to_bits() ^ 0x8000_0000) as u64,
        FloatUnary::Abs => return (x.to_bits() & 0x7fff_ffff) as u64,
        FloatUnary::Sqrt if !m.approx && m.rnd != Rnd::Rn => {
            let s = (x as f64).sqrt();
            round_exact(s, (-s).mul_add(s, x as f64), F32, m.rnd) as f32
        }
        FloatUnary::Rcp if !m.approx && m.rnd != Rnd::Rn => {
            let (hi, lo) = exact(FloatOp::Div, 1.0, x as f64);
            round_exact(hi, lo, F32, m.rnd) as f32
        }
        FloatUnary::Sqrt => x.sqrt(),
        FloatUnary::Rcp => 1.0 / x,
        other => unary_f64(other, x as f64) as f32,
    };
    f32_out(r, m)
}

fn unary_f64(op: FloatUnary, x: f64) -> f64 {
    match op {
        FloatUnary::Rsqrt => 1.0 / x.sqrt(),
        FloatUnary::Ex2 => x.exp2(),
        FloatUnary::Lg2 => x.log2(),
        FloatUnary::Sin => x.sin(),
        FloatUnary::Cos => x.cos(),
        FloatUnary::Tanh => x.tanh(),
        FloatUnary::Sqrt => x.sqrt(),
        FloatUnary::Rcp => 1.0 / x,
        FloatUnary::Neg => -x,
        FloatUnary::Abs => x.abs(),
    }
}

/// Applies `f` to each 16-bit lane of up to three packed operands (`n` lanes: 1 or 2).
fn per_half(n: u32, ops: [u64; 3], f: impl Fn([u64; 3]) -> u64) -> u64 {
    (0..n).fold(0, |acc, i| {
        let lane = ops.map(|v| (v >> (16 * i)) & 0xffff);
        acc | (f(lane) & 0xffff) << (16 * i)
    })
}

fn half_format(elem: Ty) -> float::Format {
    if elem == Ty::F16 {
        float::F16
    } else {
        float::BF16
    }
}

/// The value of one f16 or bf16 (`elem`), a subnormal flushed to zero under `ftz`.
fn half_in(bits: u64, elem: Ty, ftz: bool) -> f64 {
    let x = float_value(bits & 0xffff, elem, false);
    if ftz && x != 0.0 && x.abs() < 2f64.powi(half_format(elem).emin) {
        0.0f64.copysign(x)
    } else {
        x
    }
}

/// A rounded result `x` after `.relu` (a negative one becomes +0) and `.satfinite` (an infinite
/// one becomes `max`, the format's largest finite value, of its sign).
fn relu_satfinite(x: f64, m: FloatMods, max: f64) -> f64 {
    if m.relu && x < 0.0 {
        0.0
    } else if m.satfinite && x.is_infinite() {
        max.copysign(x)
    } else {
        x
    }
}

/// The exact result `hi + lo` rounded to the f16 or bf16 `elem`, then `.ftz`, `.relu` and
/// `.sat` applied; NaN is the canonical 0x7fff.
fn half_out(hi: f64, lo: f64, elem: Ty, m: FloatMods) -> u64 {
    let fmt = half_format(elem);
    let mut x = round_exact(hi, lo, fmt, m.rnd);
    if m.ftz && x != 0.0 && x.abs() < 2f64.powi(fmt.emin) {
        x = 0.0f64.copysign(x);
    }
    x = saturate(relu_satfinite(x, m, fmt.max), m.sat);
    if elem == Ty::F16 {
        float::to_f16(x, Rnd::Rn) as u64
    } else {
        float::to_bf16(x, Rnd::Rn) as u64
    }
}

/// `add sub mul min max` on one f16 or bf16 lane.
fn half_op(op: FloatOp, elem: Ty, m: FloatMods, a: u64, b: u64) -> u64 {
    let (x, y) = (half_in(a, elem, m.ftz), half_in(b, elem, m.ftz));
    match op {
        FloatOp::Min | FloatOp::Max => {
            let r = if m.nan && (x.is_nan() || y.is_nan()) {
                f64::NAN
            } else {
                min_max(x, y, op == FloatOp::Max)
            };
            half_out(r, 0.0, elem, FloatMods { sat: false, ..m })
        }
        FloatOp::Copysign => (b & 0x7fff) | (a & 0x8000),
        _ => {
            let (hi, lo) = exact(op, x, y);
            half_out(hi, lo, elem, m)
        }
    }
}

/// `fma`: `a * b + c` with one rounding.
pub fn fma(ty: Ty, m: FloatMods, a: u64, b: u64, c: u64) -> u64 {
    if let Some((elem, n)) = ty.halves() {
        return per_half(n, [a, b, c], |[x, y, z]| {
            let (x, y, z) = (
                half_in(x, elem, m.ftz),
                half_in(y, elem, m.ftz),
                half_in(z, elem, m.ftz),
            );
            // The product of two 16-bit floats is exact in f64, the sum exact as hi + lo.
            let (hi, lo) = two_sum(x * y, z);
            half_out(hi, lo, elem, m)
        });
    }
    if ty == Ty::F64 {
        let (x, y, z) = (f64::from_bits(a), f64::from_bits(b), f64::from_bits(c));
        return f64_out(float::fma_f64(x, y, z, m.rnd), m);
    }
    let (x, y, z) = (f32_in(a, m), f32_in(b, m), f32_in(c, m));
    let r = if m.rnd == Rnd::Rn {
        x.mul_add(y, z)
    } else {
        let (hi, lo) = two_sum(x as f64 * y as f64, z as f64);
        round_exact(hi, lo, F32, m.rnd) as f32
    };
    f32_out(r, m)
}

/// `setp`/`set` comparison of two scalars (an f16 or bf16 in the low 16 bits); `ftz` flushes
/// subnormal f32 and f16 inputs to zero first.
pub fn compare(cmp: Cmp, ty: Ty, a: u64, b: u64, ftz: bool) -> bool {
    if ty.is_float() {
        let (x, y) = match ty {
            Ty::F64 => (f64::from_bits(a), f64::from_bits(b)),
            Ty::F16 | Ty::Bf16 => (half_in(a, ty, ftz), half_in(b, ty, ftz)),
            _ => (float_value(a, Ty::F32, ftz), float_value(b, Ty::F32, ftz)),
        };
        let unordered = x.is_nan() || y.is_nan();
        return match cmp {
            Cmp::Eq => x == y,
            Cmp::Ne => !unordered && x != y,
            Cmp::Lt => x < y,
            Cmp::Le => x <= y,
            Cmp::Gt => x > y,
            Cmp::Ge => x >= y,
            Cmp::Equ => unordered || x == y,
            Cmp::Neu => x != y,
            Cmp::Ltu => unordered || x < y,
            Cmp::Leu => unordered || x <= y,
            Cmp::Gtu => unordered || x > y,
            Cmp::Geu => unordered || x >= y,
            Cmp::Num => !unordered,
            Cmp::Nan => unordered,
        };
    }
    let (x, y) = (int_value(a, ty), int_value(b, ty));
    match cmp {
        Cmp::Eq | Cmp::Equ => x == y,
        Cmp::Ne | Cmp::Neu => x != y,
        Cmp::Lt | Cmp::Ltu => x < y,
        Cmp::Le | Cmp::Leu => x <= y,
        Cmp::Gt | Cmp::Gtu => x > y,
        Cmp::Ge | Cmp::Geu => x >= y,
        Cmp::Num => true,
        Cmp::Nan => false,
    }
}

/// `setp` of an `.f16x2`/`.bf16x2` pair: the comparisons of the low and of the high halves.
pub fn compare_halves(cmp: Cmp, ty: Ty, a: u64, b: u64, ftz: bool) -> (bool, bool) {
    let elem = ty.halves().map_or(ty, |h| h.0);
    (
        compare(cmp, elem, a & 0xffff, b & 0xffff, ftz),
        compare(cmp, elem, (a >> 16) & 0xffff, (b >> 16) & 0xffff, ftz),
    )
}

/// `set.cmp.dtype.stype`: for each comparison (one, or one per half of an `.f16x2`/`.bf16x2`
/// source) all ones of the destination width, or 1.0 in a float destination; 0 when false.
pub fn set(cmp: Cmp, dty: Ty, sty: Ty, ftz: bool, a: u64, b: u64) -> u64 {
    let one = |elem: Ty, bits: u32| match elem {
        Ty::F32 => 1f32.to_bits() as u64,
        Ty::F16 => 0x3c00,
        Ty::Bf16 => 0x3f80,
        _ => mask(u64::MAX, bits),
    };
    match sty.halves() {
        Some((elem, 2)) => {
            let (lo, hi) = compare_halves(cmp, elem, a, b, ftz);
            let d = dty.halves().map_or(Ty::U(16), |h| h.0);
            let v = |t: bool| if t { one(d, 16) } else { 0 };
            v(lo) | v(hi) << 16
        }
        _ => {
            if compare(cmp, sty, a, b, ftz) {
                one(dty, dty.bits())
            } else {
                0
            }
        }
    }
}

/// `slct`: whether `c` (of type `cty`; under `ftz` a subnormal f32 is a zero) is at least 0,
/// which picks `a`.
pub fn slct_picks_a(cty: Ty, ftz: bool, c: u64) -> bool {
    if cty == Ty::F32 {
        float_value(c, Ty::F32, ftz) >= 0.0
    } else {
        sext(c, 32) >= 0
    }
}

/// `testp`: finite, infinite, number, notanumber, normal, subnormal (in that order of `kind`).
pub fn testp(kind: u8, ty: Ty, a: u64) -> bool {
    use std::num::FpCategory::{Infinite, Nan, Normal, Subnormal};
    let class = if ty == Ty::F64 {
        f64::from_bits(a).classify()
    } else {
        f32::from_bits(a as u32).classify()
    };
    match kind {
        0 => !matches!(class, Infinite | Nan),
        1 => class == Infinite,
        2 => class != Nan,
        3 => class == Nan,
        4 => class == Normal,
        _ => class == Subnormal,
    }
}

/// Value of float bits of `ty` as f64 (exact).
fn float_value(v: u64, ty: Ty, ftz: bool) -> f64 {
    match ty {
        Ty::F16 => float::from_f16(v as u16) as f64,
        Ty::Bf16 => float::from_bf16(v as u16) as f64,
        Ty::F32 => {
            let x = f32::from_bits(v as u32);
            (if ftz { ftz32(x) } else { x }) as f64
        }
        _ => f64::from_bits(v),
    }
}

/// The exact value `x + lo` stored as float `dty`: rounded in mode `m.rnd`, then `.relu`,
/// `.satfinite`, `.ftz` and `.sat` applied (clamping after rounding gives what clamping
/// before would: 0 and 1 are representable and rounding is monotonic).
fn store_float(x: f64, lo: f64, dty: Ty, m: FloatMods) -> u64 {
    match dty {
        Ty::F16 | Ty::Bf16 => half_out(x, lo, dty, m),
        Ty::F32 => {
            let r = round_exact(x, lo, F32, m.rnd);
            f32_out(relu_satfinite(r, m, f32::MAX as f64) as f32, m)
        }
        _ => f64_out(float::round_f64(x, lo, 0, m.rnd), m),
    }
}

/// `cvt.dty.sty`. A signed integer result is sign-extended into a wider destination register
/// (PTX: operand size exceeding the instruction type), as `ld` does.
pub fn cvt(dty: Ty, sty: Ty, m: FloatMods, a: u64) -> u64 {
    let r = convert(dty, sty, m, a);
    if dty.is_signed() {
        sext(r, dty.bits()) as u64
    } else {
        r
    }
}

/// `cvt.dty.sty` with the result in the low bits of `dty`, zeros above.
fn convert(dty: Ty, sty: Ty, m: FloatMods, a: u64) -> u64 {
    match (dty.is_float(), sty.is_float()) {
        (false, false) => {
            let v = int_value(a, sty);
            if m.sat {
                let (lo, hi) = if dty.is_signed() {
                    (
                        -(1i128 << (dty.bits() - 1)),
                        (1i128 << (dty.bits() - 1)) - 1,
                    )
                } else {
                    (0, (1i128 << dty.bits()) - 1)
                };
                return mask(v.clamp(lo, hi) as u64, dty.bits());
            }
            // Widening follows the source's signedness; narrowing truncates.
            mask(v as u64, dty.bits())
        }
        (false, true) => {
            let r = match m.rnd {
                Rnd::Int(r) => r,
                _ => IntRnd::Z,
            };
            float::float_to_int(float_value(a, sty, m.ftz), r, dty.bits(), dty.is_signed())
        }
        (true, false) => {
            let (hi, lo) = float::split_int(int_value(a, sty));
            store_float(hi, lo, dty, m)
        }
        (true, true) => {
            let x = float_value(a, sty, m.ftz);
            match m.rnd {
                Rnd::Int(r) => store_float(float::round_int(x, r), 0.0, dty, m),
                _ => store_float(x, 0.0, dty, m),
            }
        }
    }
}

/// `cvt.{rna,rn,rz}{.satfinite}{.relu}.tf32.f32`: the f32 `a` rounded to TF32 in mode `m.rnd`
/// (`.rna`: to nearest, ties away from zero), as f32 bits with the low 13 bits zero. A finite
/// value beyond the largest TF32 (`0x7f7fe000`) rounds to infinity as the mode says; subnormals
/// keep the 10 bits TF32 has below the exponent (no flush). Then `.relu` turns a negative result
/// into +0 and `.satfinite` an infinite one into the largest finite TF32 of its sign, as in the
/// other conversions. A NaN gives `CANONICAL_NAN_TF32`: the PTX ISA says only that a NaN stays
/// a NaN (canonical with `.relu`); the GPU's `.rna` clears the low 13 bits of the NaN instead,
/// which keeps its sign and upper payload (and makes a NaN whose payload is all in those bits
/// an infinity), a difference no kernel should rely on.
pub fn cvt_tf32(m: FloatMods, a: u64) -> u64 {
    let x = f32::from_bits(a as u32);
    if x.is_nan() {
        return float::CANONICAL_NAN_TF32 as u64;
    }
    let r = float::round_to(x as f64, float::TF32, m.rnd);
    (relu_satfinite(r, m, float::TF32.max) as f32).to_bits() as u64
}

/// `cvt.rn.{f16x2,bf16x2}.f32 d, a, b`: a in the upper half, b in the lower.
pub fn cvt_pack(dty: Ty, m: FloatMods, a: u64, b: u64) -> u64 {
    let half = if dty == Ty::F16x2 { Ty::F16 } else { Ty::Bf16 };
    let one = |v: u64| cvt(half, Ty::F32, m, v);
    (one(a) << 16) | one(b)
}

/// Fragments of the 32 lanes of a warp for one `mma`: per lane, the bits of its registers.
pub type Fragments<const N: usize> = [[u64; N]; 32];

/// `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32` for a whole warp: the D fragments of
/// every lane from the A, B and C fragments of every lane (layout in [`Mma`]).
///
/// Each A and B element is used with its low 13 bits cleared (a TF32 operand: the hardware
/// ignores those bits, so an f32 that was not converted with `cvt.*.tf32.f32` is truncated).
/// The 8 products of a D element are exact in f64; they and C are summed in f64 (exact unless
/// their magnitudes lie very far apart) and the sum rounded once to f32, to nearest even. A
/// tensor core does not promise this: the PTX ISA leaves the order and precision of its
/// internal accumulation unspecified, so results may differ from a GPU's in the last bits and
/// tests of kernels built on `mma` must compare within a tolerance.
pub fn mma_tf32(a: &Fragments<4>, b: &Fragments<2>, c: &Fragments<4>) -> Fragments<4> {
    let tf32 = |v: u64| f32::from_bits(v as u32 & 0xffff_e000) as f64;
    let (mut am, mut bm, mut cm) = ([[0.0f64; 8]; 16], [[0.0f64; 8]; 8], [[0.0f64; 8]; 16]);
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        for (i, &v) in a[lane].iter().enumerate() {
            am[g + 8 * (i & 1)][t + 4 * (i >> 1)] = tf32(v);
        }
        for (i, &v) in b[lane].iter().enumerate() {
            bm[t + 4 * i][g] = tf32(v);
        }
        for (i, &v) in c[lane].iter().enumerate() {
            cm[g + 8 * (i >> 1)][2 * t + (i & 1)] = f32::from_bits(v as u32) as f64;
        }
    }
    let mut d = [[0u64; 4]; 32];
    for (lane, out) in d.iter_mut().enumerate() {
        let (g, t) = (lane / 4, lane % 4);
        for (i, slot) in out.iter_mut().enumerate() {
            let (row, col) = (g + 8 * (i >> 1), 2 * t + (i & 1));
            let dot: f64 = (0..8).map(|k| am[row][k] * bm[k][col]).sum();
            *slot = bits32((dot + cm[row][col]) as f32);
        }
    }
    d
}

/// `bfe`: `len` bits of `a` from `pos`, sign-extended for signed types.
pub fn bfe(ty: Ty, a: u64, pos: u64, len: u64) -> u64 {
    let w = ty.bits() as u64;
    let (pos, len) = (pos & 0xff, len & 0xff);
    let sbit = if !ty.is_signed() || len == 0 {
        0
    } else {
        let top = (pos + len - 1).min(w - 1);
        (a >> top) & 1
    };
    let mut d = 0u64;
    for i in 0..w {
        let bit = if i < len && pos + i < w {
            (a >> (pos + i)) & 1
        } else {
            sbit
        };
        d |= bit << i;
    }
    d
}

/// `bfi`: `b` with `len` bits at `pos` replaced by the low bits of `a`.
pub fn bfi(bits: u32, a: u64, b: u64, pos: u64, len: u64) -> u64 {
    let (pos, len) = (pos & 0xff, len & 0xff);
    let mut d = b;
    for i in 0..len {
        if pos + i >= bits as u64 {
            break;
        }
        d = (d & !(1 << (pos + i))) | (((a >> i) & 1) << (pos + i));
    }
    mask(d, bits)
}

/// `prmt.b32` default mode: picks bytes of `b:a` by the nibbles of `c` (bit 3 of a nibble
/// replicates the chosen byte's sign).
pub fn prmt(a: u64, b: u64, c: u64) -> u64 {
    let t = (mask(b, 32) << 32) | mask(a, 32);
    let mut d = 0u64;
    for i in 0..4 {
        let sel = (c >> (4 * i)) & 0xf;
        let byte = (t >> (8 * (sel & 7))) & 0xff;
        let byte = if sel & 8 != 0 {
            if byte & 0x80 != 0 {
                0xff
            } else {
                0
            }
        } else {
            byte
        };
        d |= byte << (8 * i);
    }
    d
}

/// `shf.l`/`shf.r`: funnel shift of the 64-bit `b:a`.
pub fn shf(left: bool, wrap: bool, a: u64, b: u64, c: u64) -> u64 {
    let n = if wrap { c & 31 } else { mask(c, 32).min(32) };
    let t = (mask(b, 32) << 32) | mask(a, 32);
    if left {
        mask((t << n) >> 32, 32)
    } else {
        mask(t >> n, 32)
    }
}

/// `dp4a` and `dp2a.lo/.hi`: `c` plus the products of the bytes (and halves, for `dp2a`) of
/// `a` and `b`, each signed or not, wrapping to 32 bits.
pub fn dot(kind: DotKind, a_signed: bool, b_signed: bool, a: u64, b: u64, c: u64) -> u64 {
    let part = |v: u64, i: u32, bits: u32, signed: bool| {
        let x = mask(v >> (bits * i), bits);
        if signed {
            sext(x, bits)
        } else {
            x as i64
        }
    };
    let sum: i64 = match kind {
        DotKind::Dp4a => (0..4)
            .map(|i| part(a, i, 8, a_signed) * part(b, i, 8, b_signed))
            .sum(),
        DotKind::Dp2a { hi } => {
            let k = if hi { 2 } else { 0 };
            (0..2)
                .map(|i| part(a, i, 16, a_signed) * part(b, k + i, 8, b_signed))
                .sum()
        }
    };
    mask(c.wrapping_add(sum as u64), 32)
}

/// `vabsdiff4` (all four bytes, no selectors): per byte `|a - b|` of signed or unsigned bytes,
/// packed into d (`add` false) or summed into `c` (`add` true).
pub fn vabsdiff4(signed: bool, add: bool, a: u64, b: u64, c: u64) -> u64 {
    let byte = |v: u64, i: u32| {
        let x = (v >> (8 * i)) & 0xff;
        if signed {
            sext(x, 8)
        } else {
            x as i64
        }
    };
    let diffs = (0..4).map(|i| (byte(a, i) - byte(b, i)).unsigned_abs());
    if add {
        mask(diffs.fold(c, u64::wrapping_add), 32)
    } else {
        diffs
            .enumerate()
            .fold(0, |d, (i, v)| d | (v & 0xff) << (8 * i))
    }
}

/// `redux.sync`: the reduction of the member lanes' values (32-bit, signed for min/max when
/// `signed`).
pub fn redux(op: ReduxOp, signed: bool, vals: impl Iterator<Item = u64>) -> u64 {
    let vals = vals.map(|v| mask(v, 32));
    let key = |v: &u64| if signed { sext(*v, 32) } else { *v as i64 };
    mask(
        match op {
            ReduxOp::Add => vals.fold(0, u64::wrapping_add),
            ReduxOp::Min => vals.min_by_key(key).unwrap_or(0),
            ReduxOp::Max => vals.max_by_key(key).unwrap_or(0),
            ReduxOp::And => vals.fold(u64::MAX, |x, y| x & y),
            ReduxOp::Or => vals.fold(0, |x, y| x | y),
            ReduxOp::Xor => vals.fold(0, |x, y| x ^ y),
        },
        32,
    )
}

/// The new value an atomic stores, given the old one (`c` is the swap value of `cas`). Float
/// adds round to nearest; on `global` memory `atom.add.f32` also flushes subnormal inputs and
/// results to zero, on shared memory it keeps them (PTX ISA, `atom`).
pub fn atom_apply(op: AtomOp, ty: Ty, old: u64, b: u64, c: u64, global: bool) -> u64 {
    let w = ty.bits();
    match op {
        AtomOp::Add if ty.is_float() => {
            let m = FloatMods {
                ftz: global && ty == Ty::F32,
                ..FloatMods::NEAREST
            };
            float_op(FloatOp::Add, ty, m, old, b)
        }
        AtomOp::Add => mask(old.wrapping_add(b), w),
        AtomOp::Min | AtomOp::Max => {
            let (x, y) = (int_value(old, ty), int_value(b, ty));
            let keep_old = if op == AtomOp::Min { x <= y } else { x >= y };
            if keep_old {
                old
            } else {
                mask(b, w)
            }
        }
        AtomOp::Exch => mask(b, w),
        AtomOp::Cas => {
            if mask(old, w) == mask(b, w) {
                mask(c, w)
            } else {
                old
            }
        }
        AtomOp::And => old & b,
        AtomOp::Or => old | b,
        AtomOp::Xor => old ^ b,
        AtomOp::Inc => {
            if mask(old, w) >= mask(b, w) {
                0
            } else {
                mask(old + 1, w)
            }
        }
        AtomOp::Dec => {
            if mask(old, w) == 0 || mask(old, w) > mask(b, w) {
                mask(b, w)
            } else {
                old - 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RN: FloatMods = FloatMods::NEAREST;

    #[test]
    fn half_precision_arithmetic_rounds_once_per_lane() {
        let (f16, f16x2, bf16) = (Ty::F16, Ty::F16x2, Ty::Bf16);
        // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: even wins; 1 + 3 * 2^-11 goes up.
        assert_eq!(float_op(FloatOp::Add, f16, RN, 0x3c00, 0x1000), 0x3c00);
        assert_eq!(float_op(FloatOp::Add, f16, RN, 0x3c00, 0x1600), 0x3c02);
        let rz = FloatMods { rnd: Rnd::Rz, ..RN };
        assert_eq!(float_op(FloatOp::Sub, f16, rz, 0x3c00, 0x0001), 0x3bff);
        // fma rounds once: (1 + 3 * 2^-10)^2 - 1 is 1538 * 2^-18, a separate multiply gives 1536.
        assert_eq!(fma(f16, RN, 0x3c03, 0x3c03, 0xbc00), 0x1e02);
        assert_eq!(float_op(FloatOp::Mul, f16, RN, 0x3c03, 0x3c03), 0x3c06);
        // Overflow, subnormal products, NaN canonical.
        assert_eq!(float_op(FloatOp::Mul, f16, RN, 0x7bff, 0x4000), 0x7c00);
        assert_eq!(float_op(FloatOp::Mul, f16, RN, 0x0200, 0x3800), 0x0100);
        assert_eq!(float_op(FloatOp::Add, f16, RN, 0x7c00, 0xfc00), 0x7fff);
        // .sat, .relu, .ftz.
        let sat = FloatMods { sat: true, ..RN };
        assert_eq!(float_op(FloatOp::Add, f16, sat, 0x3a00, 0x3800), 0x3c00);
        assert_eq!(float_op(FloatOp::Add, f16, sat, 0x7e00, 0x3800), 0);
        let relu = FloatMods { relu: true, ..RN };
        assert_eq!(fma(f16, relu, 0xbc00, 0x3c00, 0x0000), 0);
        assert_eq!(fma(f16, relu, 0x7e00, 0x3c00, 0x0000), 0x7fff);
        let ftz = FloatMods { ftz: true, ..RN };
        assert_eq!(float_op(FloatOp::Mul, f16, ftz, 0x0200, 0x3c00), 0);
        assert_eq!(float_unary(FloatUnary::Neg, f16, ftz, 0x0001), 0x8000);
        // min/max ignore one NaN unless .NaN.
        let nan = FloatMods { nan: true, ..RN };
        assert_eq!(float_op(FloatOp::Min, f16, RN, 0x7e00, 0x3c00), 0x3c00);
        assert_eq!(float_op(FloatOp::Min, f16, nan, 0x7e00, 0x3c00), 0x7fff);
        // Two lanes, each on its own: {1 + 1, 1 + 2}.
        assert_eq!(
            float_op(FloatOp::Add, f16x2, RN, 0x3c00_3c00, 0x4000_3c00),
            0x4200_4000
        );
        assert_eq!(
            float_unary(FloatUnary::Abs, f16x2, RN, 0x8001_bc00),
            0x0001_3c00
        );
        // bf16: 1 + 2^-8 ties to 1, 1 + 2^-7 is exact.
        assert_eq!(fma(bf16, RN, 0x3f80, 0x3f80, 0x3b80), 0x3f80);
        assert_eq!(fma(bf16, RN, 0x3f80, 0x3f80, 0x3c00), 0x3f81);
        assert_eq!(
            fma(Ty::Bf16x2, RN, 0x4000_3f80, 0x3f80_3f80, 0x8000_8000),
            0x4000_3f80
        );
    }

    #[test]
    fn half_comparisons_and_set_results() {
        assert!(compare(Cmp::Lt, Ty::F16, 0xbc00, 0x3c00, false));
        assert!(!compare(Cmp::Lt, Ty::F16, 0x7e00, 0x3c00, false));
        assert!(compare(Cmp::Ltu, Ty::F16, 0x7e00, 0x3c00, false));
        assert!(compare(Cmp::Gt, Ty::Bf16, 0x4000, 0x3f80, false));
        // The low halves compare first.
        assert_eq!(
            compare_halves(Cmp::Lt, Ty::F16x2, 0x3c00_4000, 0x4000_3c00, false),
            (false, true)
        );
        assert_eq!(
            set(Cmp::Eq, Ty::F16, Ty::F16, false, 0x3c00, 0x3c00),
            0x3c00
        );
        assert_eq!(
            set(Cmp::Eq, Ty::Bf16, Ty::F16, false, 0x3c00, 0x3c00),
            0x3f80
        );
        assert_eq!(
            set(Cmp::Nan, Ty::F16, Ty::F16, false, 0x7e00, 0x7e00),
            0x3c00
        );
        assert_eq!(set(Cmp::Eq, Ty::U(32), Ty::F32, false, 0, 0), 0xffff_ffff);
        assert_eq!(set(Cmp::Eq, Ty::F32, Ty::S(32), false, 7, 7), 0x3f80_0000);
        assert_eq!(
            set(
                Cmp::Lt,
                Ty::U(32),
                Ty::F16x2,
                false,
                0x3c00_4000,
                0x4000_3c00
            ),
            0xffff_0000
        );
        assert_eq!(
            set(
                Cmp::Lt,
                Ty::F16x2,
                Ty::F16x2,
                false,
                0x3c00_3c00,
                0x4000_4000
            ),
            0x3c00_3c00
        );
        // .ftz: a subnormal f32 equals zero.
        let tiny = 1e-40f32.to_bits() as u64;
        assert!(compare(Cmp::Eq, Ty::F32, tiny, 0, true));
        assert!(!compare(Cmp::Eq, Ty::F32, tiny, 0, false));
    }

    #[test]
    fn f32_min_nan_relu_and_satfinite_conversions() {
        let nan = FloatMods { nan: true, ..RN };
        let one = 1f32.to_bits() as u64;
        let qnan = f32::NAN.to_bits() as u64;
        assert_eq!(float_op(FloatOp::Max, Ty::F32, RN, qnan, one), one);
        assert_eq!(
            float_op(FloatOp::Max, Ty::F32, nan, qnan, one),
            float::CANONICAL_NAN_F32 as u64
        );
        let big = 1e6f32.to_bits() as u64;
        let satf = FloatMods {
            satfinite: true,
            ..RN
        };
        assert_eq!(cvt(Ty::F16, Ty::F32, RN, big), 0x7c00);
        assert_eq!(cvt(Ty::F16, Ty::F32, satf, big), 0x7bff);
        assert_eq!(
            cvt(Ty::F16, Ty::F32, satf, f32::NEG_INFINITY.to_bits() as u64),
            0xfbff
        );
        assert_eq!(cvt(Ty::F16, Ty::F32, satf, qnan), 0x7fff);
        let relu = FloatMods { relu: true, ..RN };
        assert_eq!(cvt(Ty::F16, Ty::F32, relu, (-2f32).to_bits() as u64), 0);
        assert_eq!(
            cvt_pack(Ty::Bf16x2, relu, (-2f32).to_bits() as u64, one),
            0x3f80
        );
    }

    #[test]
    fn dot_products_video_and_warp_reductions() {
        // Bytes of a: -128, 127, 1, -1; of b: 4, 3, 2, 1.
        let (a, b) = (0xff01_7f80u64, 0x0102_0304u64);
        assert_eq!(
            dot(DotKind::Dp4a, true, true, a, b, 10),
            (-120i32) as u32 as u64
        );
        assert_eq!(
            dot(DotKind::Dp4a, false, false, a, b, 0),
            (128 * 4 + 127 * 3 + 2 + 255) as u64
        );
        // Halves of a: 0x7f80 = 32640 and 0xff01 = -255 (signed); bytes 0, 1 or 2, 3 of b.
        assert_eq!(
            dot(DotKind::Dp2a { hi: false }, true, true, a, b, 0),
            (32640 * 4 - 255 * 3) as u64
        );
        assert_eq!(
            dot(DotKind::Dp2a { hi: true }, false, false, a, b, 1),
            (32640 * 2 + 65281 + 1) as u64
        );
        assert_eq!(
            vabsdiff4(false, false, 0x1020_3040, 0x4030_2010, 0),
            0x3010_1030
        );
        assert_eq!(vabsdiff4(false, true, 0x1020_3040, 0x4030_2010, 5), 0x85);
        assert_eq!(vabsdiff4(true, false, 0x80, 0x7f, 0), 0xff);
        let vals = [0xffff_ffffu64, 5];
        assert_eq!(redux(ReduxOp::Min, true, vals.into_iter()), 0xffff_ffff);
        assert_eq!(redux(ReduxOp::Min, false, vals.into_iter()), 5);
        assert_eq!(redux(ReduxOp::Max, true, vals.into_iter()), 5);
        assert_eq!(redux(ReduxOp::Add, false, vals.into_iter()), 4);
        assert_eq!(redux(ReduxOp::Xor, false, vals.into_iter()), 0xffff_fffa);
        // mul24: the low 24 bits of each operand, signed or not.
        let m = 0x00ff_ffffu64;
        assert_eq!(int_op(IntOp::Mul24Lo, Ty::U(32), m, m, false), 0xfe00_0001);
        assert_eq!(int_op(IntOp::Mul24Hi, Ty::U(32), m, m, false), 0xffff_fe00);
        assert_eq!(int_op(IntOp::Mul24Lo, Ty::S(32), m, m, false), 1);
        assert_eq!(
            int_op(IntOp::Mul24Hi, Ty::S(32), m, 0xff00_0002, false),
            0xffff_ffff
        );
        // f16 atomics add with rounding to nearest.
        assert_eq!(
            atom_apply(AtomOp::Add, Ty::F16x2, 0x3c00_3c00, 0x3c00_1000, 0, true),
            0x4000_3c00
        );
    }

    #[test]
    fn integer_edge_cases() {
        let s32 = Ty::S(32);
        assert_eq!(
            int_op(IntOp::MulHi, s32, (-2i32) as u32 as u64, 3, false),
            0xffff_ffff
        );
        assert_eq!(
            int_op(IntOp::MulWide, Ty::U(32), 0xffff_ffff, 2, false),
            0x1_ffff_fffe
        );
        assert_eq!(int_op(IntOp::Shr, s32, 0x8000_0000, 40, false), 0xffff_ffff);
        assert_eq!(int_op(IntOp::Shr, Ty::U(32), 0x8000_0000, 40, false), 0);
        assert_eq!(int_op(IntOp::Add, s32, 0x7fff_ffff, 1, true), 0x7fff_ffff);
        assert_eq!(int_unary(IntUnary::Clz, Ty::B(32), 1), 31);
        assert_eq!(
            int_unary(IntUnary::Bfind { shiftamt: false }, Ty::U(32), 0),
            0xffff_ffff
        );
        assert_eq!(bfe(s32, 0xf0, 4, 4), 0xffff_ffff);
        assert_eq!(bfi(32, 0b101, 0, 4, 3), 0b101_0000);
        assert_eq!(prmt(0x4433_2211, 0x8877_6655, 0x3210), 0x4433_2211);
        assert_eq!(prmt(0x4433_2211, 0x8877_6655, 0x000f), 0x1111_11ff);
        assert_eq!(shf(true, true, 0x8000_0000, 1, 1), 3);
    }

    #[test]
    fn testp_classes() {
        // finite, infinite, number, notanumber, normal, subnormal.
        let f32s = [
            (1.5f32, [true, false, true, false, true, false]),
            (0.0, [true, false, true, false, false, false]),
            (1e-40, [true, false, true, false, false, true]),
            (f32::NEG_INFINITY, [false, true, true, false, false, false]),
            (f32::NAN, [false, false, false, true, false, false]),
        ];
        for (x, want) in f32s {
            let got: Vec<bool> = (0..6)
                .map(|k| testp(k, Ty::F32, x.to_bits() as u64))
                .collect();
            assert_eq!(got, want, "{x}");
        }
        let tiny = f64::from_bits(1);
        assert!(testp(5, Ty::F64, tiny.to_bits()));
        assert!(!testp(4, Ty::F64, tiny.to_bits()));
        assert!(testp(4, Ty::F64, 1e-40f64.to_bits()));
    }

    #[test]
    fn float_min_max_and_compares_follow_ptx() {
        let nan = f32::NAN.to_bits() as u64;
        assert_eq!(
            float_op(FloatOp::Min, Ty::F32, RN, nan, 2f32.to_bits() as u64),
            2f32.to_bits() as u64
        );
        assert_eq!(
            float_op(FloatOp::Max, Ty::F32, RN, 0, (-0f32).to_bits() as u64),
            0
        );
        assert!(!compare(Cmp::Ne, Ty::F32, nan, 0, false));
        assert!(compare(Cmp::Neu, Ty::F32, nan, 0, false));
        assert!(compare(Cmp::Lt, Ty::U(32), 1, 0xffff_ffff, false));
        assert!(!compare(Cmp::Lt, Ty::S(32), 1, 0xffff_ffff, false));
    }
}

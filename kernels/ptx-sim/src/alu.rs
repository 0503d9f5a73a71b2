//! What each arithmetic, logic, comparison and conversion instruction computes for one thread.
//! Values are register bits (`u64`, the value in the low bits); results are masked to the
//! destination width.

use crate::decode::mask;
use crate::float::{self, adjust_f64, bits32, bits64, ftz32, round_exact, two_sum, F32};
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
    if ty == Ty::F64 {
        let (x, y) = (f64::from_bits(a), f64::from_bits(b));
        let r = match op {
            FloatOp::Min => min_max(x, y, false),
            FloatOp::Max => min_max(x, y, true),
            FloatOp::Copysign => y.copysign(x),
            FloatOp::Add => adjust_f64(x + y, two_sum(x, y).1, m.rnd),
            FloatOp::Sub => adjust_f64(x - y, two_sum(x, -y).1, m.rnd),
            FloatOp::Mul => adjust_f64(x * y, x.mul_add(y, -(x * y)), m.rnd),
            FloatOp::Div => {
                let q = x / y;
                let r = (-q).mul_add(y, x);
                adjust_f64(q, if q.is_finite() { r / y } else { 0.0 }, m.rnd)
            }
        };
        return f64_out(r, m);
    }
    let (x, y) = (f32_in(a, m), f32_in(b, m));
    let r = match op {
        FloatOp::Min => min_max(x as f64, y as f64, false) as f32,
        FloatOp::Max => min_max(x as f64, y as f64, true) as f32,
        FloatOp::Copysign => y.copysign(x),
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

/// One-operand float op. The `.approx` forms are computed in f64 and rounded to nearest, so
/// they are at least as accurate as the hardware's documented bounds.
pub fn float_unary(op: FloatUnary, ty: Ty, m: FloatMods, a: u64) -> u64 {
    if ty == Ty::F64 {
        let x = f64::from_bits(a);
        let r = match op {
            FloatUnary::Neg => return a ^ (1 << 63),
            FloatUnary::Abs => return a & !(1 << 63),
            FloatUnary::Sqrt => {
                let s = x.sqrt();
                adjust_f64(
                    s,
                    if s.is_finite() {
                        (-s).mul_add(s, x)
                    } else {
                        0.0
                    },
                    m.rnd,
                )
            }
            FloatUnary::Rcp => {
                let q = 1.0 / x;
                adjust_f64(
                    q,
                    if q.is_finite() {
                        (-q).mul_add(x, 1.0) / x
                    } else {
                        0.0
                    },
                    m.rnd,
                )
            }
            other => unary_f64(other, x),
        };
        return f64_out(r, m);
    }
    let x = f32_in(a, m);
    let r = match op {
        FloatUnary::Neg => return mask((a as u32 ^ 0x8000_0000) as u64, 32),
        FloatUnary::Abs => return (a as u32 & 0x7fff_ffff) as u64,
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

/// `fma`: `a * b + c` with one rounding.
pub fn fma(ty: Ty, m: FloatMods, a: u64, b: u64, c: u64) -> u64 {
    if ty == Ty::F64 {
        let (x, y, z) = (f64::from_bits(a), f64::from_bits(b), f64::from_bits(c));
        return f64_out(x.mul_add(y, z), m);
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

/// `setp`/`set` comparison.
pub fn compare(cmp: Cmp, ty: Ty, a: u64, b: u64) -> bool {
    if ty.is_float() {
        let (x, y) = if ty == Ty::F64 {
            (f64::from_bits(a), f64::from_bits(b))
        } else {
            (
                f32::from_bits(a as u32) as f64,
                f32::from_bits(b as u32) as f64,
            )
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

/// `testp`: finite, infinite, number, notanumber, normal, subnormal (in that order of `kind`).
pub fn testp(kind: u8, ty: Ty, a: u64) -> bool {
    let x = if ty == Ty::F64 {
        f64::from_bits(a)
    } else {
        f32::from_bits(a as u32) as f64
    };
    let sub32 = ty != Ty::F64 && f32::from_bits(a as u32).is_subnormal();
    match kind {
        0 => x.is_finite(),
        1 => x.is_infinite(),
        2 => !x.is_nan(),
        3 => x.is_nan(),
        4 => {
            if ty == Ty::F64 {
                x.is_normal()
            } else {
                f32::from_bits(a as u32).is_normal()
            }
        }
        _ => {
            if ty == Ty::F64 {
                x.is_subnormal()
            } else {
                sub32
            }
        }
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

/// Float `x` (exact f64 value, error `lo`) stored as `dty` with rounding `rnd`.
fn store_float(x: f64, lo: f64, dty: Ty, m: FloatMods) -> u64 {
    let x = saturate(x, m.sat);
    match dty {
        Ty::F16 => float::to_f16(float::round_exact(x, lo, float::F16, m.rnd), Rnd::Rn) as u64,
        Ty::Bf16 => float::to_bf16(float::round_exact(x, lo, float::BF16, m.rnd), Rnd::Rn) as u64,
        Ty::F32 => {
            let r = round_exact(x, lo, F32, m.rnd) as f32;
            bits32(if m.ftz { ftz32(r) } else { r })
        }
        _ => bits64(adjust_f64(x, lo, m.rnd)),
    }
}

/// `cvt.dty.sty`.
pub fn cvt(dty: Ty, sty: Ty, m: FloatMods, a: u64) -> u64 {
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
            let v = int_value(a, sty);
            let fmt = match dty {
                Ty::F16 => float::F16,
                Ty::Bf16 => float::BF16,
                Ty::F32 => F32,
                _ => float::Format {
                    precision: 53,
                    emin: -1022,
                    max: f64::MAX,
                },
            };
            let x = float::int_to_float(v, fmt, m.rnd);
            store_float(x, 0.0, dty, m)
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

/// `cvt.rn.{f16x2,bf16x2}.f32 d, a, b`: a in the upper half, b in the lower.
pub fn cvt_pack(dty: Ty, m: FloatMods, a: u64, b: u64) -> u64 {
    let half = if dty == Ty::F16x2 { Ty::F16 } else { Ty::Bf16 };
    let one = |v: u64| cvt(half, Ty::F32, m, v);
    (one(a) << 16) | one(b)
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

/// The new value an atomic stores, given the old one (`c` is the swap value of `cas`).
pub fn atom_apply(op: AtomOp, ty: Ty, old: u64, b: u64, c: u64) -> u64 {
    let w = ty.bits();
    match op {
        AtomOp::Add if ty == Ty::F32 => {
            bits32(f32::from_bits(old as u32) + f32::from_bits(b as u32))
        }
        AtomOp::Add if ty == Ty::F64 => bits64(f64::from_bits(old) + f64::from_bits(b)),
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
    fn float_min_max_and_compares_follow_ptx() {
        let m = FloatMods {
            rnd: Rnd::Rn,
            ftz: false,
            sat: false,
            approx: false,
        };
        let nan = f32::NAN.to_bits() as u64;
        assert_eq!(
            float_op(FloatOp::Min, Ty::F32, m, nan, 2f32.to_bits() as u64),
            2f32.to_bits() as u64
        );
        assert_eq!(
            float_op(FloatOp::Max, Ty::F32, m, 0, (-0f32).to_bits() as u64),
            0
        );
        assert!(!compare(Cmp::Ne, Ty::F32, nan, 0));
        assert!(compare(Cmp::Neu, Ty::F32, nan, 0));
        assert!(compare(Cmp::Lt, Ty::U(32), 1, 0xffff_ffff));
        assert!(!compare(Cmp::Lt, Ty::S(32), 1, 0xffff_ffff));
    }
}

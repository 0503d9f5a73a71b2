//! `tests/kernels/coverage.cu`: CUDA features the rest of the corpus does not reach (warp-level
//! exchanges and tiles, 64-bit shuffles, f16/bf16 arithmetic, atomics, integer and float
//! intrinsics, cache hints, launch bounds, struct returns, votes, matches, reductions, printf).
//! Each kernel's results are compared with plain Rust: bit-exact where PTX defines the result,
//! within the CUDA C Programming Guide's error bounds for the approximate intrinsics.

mod common;

use common::*;
use smelt_ptx_sim::{Arg, Dim3, ErrorKind, Launch, Module, Report, Sim};

const CU: &str = include_str!("kernels/coverage.cu");
const PTX: &str = include_str!("kernels/coverage.ptx");

fn module() -> Module {
    Module::parse(PTX).unwrap_or_else(|e| panic!("coverage.ptx does not parse: {e}"))
}

#[test]
fn ptx_is_regenerated_from_its_source() {
    assert_ptx_is_current("coverage", CU, PTX);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Deterministic pseudo-random stream (an LCG; the top bits are used).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d)
    }
    fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        ((self.next_u32() as u64) << 32) | self.next_u32() as u64
    }
    /// Uniform in [lo, hi).
    fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u32() >> 8) as f32 / (1u32 << 24) as f32)
    }
    /// A float of magnitude 2^[lo_exp, hi_exp), either sign.
    fn f32_log(&mut self, lo_exp: i32, hi_exp: i32) -> f32 {
        let e = lo_exp + (self.next_u32() % (hi_exp - lo_exp) as u32) as i32;
        let m = 1.0 + (self.next_u32() >> 9) as f32 / (1u32 << 23) as f32;
        let s = if self.next_u32() & 1 == 0 { 1.0 } else { -1.0 };
        s * m * 2f32.powi(e)
    }
}

/// Runs a kernel that must succeed without warnings.
#[track_caller]
fn run(sim: &mut Sim, m: &Module, kernel: &str, l: Launch, args: &[Arg]) -> Report {
    match sim.launch(m, kernel, l, args) {
        Ok(r) => {
            assert!(r.warnings.is_empty(), "{kernel}: warnings {:?}", r.warnings);
            r
        }
        Err(e) => panic!("{kernel}: {e}"),
    }
}

/// The distance between |x| and the next float up: an f32 ulp at x.
fn ulp32(x: f64) -> f64 {
    let a = (x.abs() as f32).max(f32::MIN_POSITIVE);
    (a.next_up() - a) as f64
}

// ---------------------------------------------------------------------------------------------
// Exact rounding reference: a value v * 2^scale (v an i128) rounded to a binary format, written
// independently of the simulator's f64 two-sum rounding.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Fmt {
    /// Significand bits including the implicit one.
    prec: u32,
    /// Exponent of the smallest normal.
    emin: i32,
    /// Exponent of the largest finite value.
    emax: i32,
}

const F16: Fmt = Fmt {
    prec: 11,
    emin: -14,
    emax: 15,
};
const BF16: Fmt = Fmt {
    prec: 8,
    emin: -126,
    emax: 127,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// To nearest, ties to even.
    Rn,
    /// Toward zero.
    Rz,
    /// Toward +infinity.
    Ru,
    /// Toward -infinity.
    Rd,
}

fn max_finite(f: Fmt) -> f64 {
    (2.0 - 2f64.powi(1 - f.prec as i32)) * 2f64.powi(f.emax)
}

/// `v * 2^scale` rounded to `f` in `mode`, as an f64 (infinite on overflow when the mode says
/// so; an underflow to zero is +0, the caller gives it a sign).
fn round_scaled(v: i128, scale: i32, f: Fmt, mode: Mode) -> f64 {
    if v == 0 {
        return 0.0;
    }
    let neg = v < 0;
    let m = v.unsigned_abs();
    let top = 127 - m.leading_zeros() as i32;
    let qe = (top + scale).max(f.emin) - (f.prec as i32 - 1);
    let shift = qe - scale;
    let q = if shift <= 0 {
        m << (-shift)
    } else {
        let (q, rem, half) = if shift >= 127 {
            (0, m, u128::MAX)
        } else {
            (m >> shift, m & ((1u128 << shift) - 1), 1u128 << (shift - 1))
        };
        let up = match mode {
            Mode::Rn => rem > half || (rem == half && q & 1 == 1),
            Mode::Rz => false,
            Mode::Ru => !neg && rem != 0,
            Mode::Rd => neg && rem != 0,
        };
        q + up as u128
    };
    let mag = q as f64 * 2f64.powi(qe);
    let mag = if mag > max_finite(f) {
        let to_inf = match mode {
            Mode::Rn => true,
            Mode::Rz => false,
            Mode::Ru => !neg,
            Mode::Rd => neg,
        };
        if to_inf {
            f64::INFINITY
        } else {
            max_finite(f)
        }
    } else {
        mag
    };
    if neg {
        -mag
    } else {
        mag
    }
}

/// An f32 as `(v, scale)` with `x = v * 2^scale` exactly.
fn split_f32(x: f32) -> (i128, i32) {
    let b = x.to_bits();
    let e = ((b >> 23) & 0xff) as i32;
    let m = (b & 0x7f_ffff) as i128;
    let (m, e) = if e == 0 {
        (m, -149)
    } else {
        (m | 0x80_0000, e - 150)
    };
    (if b >> 31 != 0 { -m } else { m }, e)
}

/// f32 -> `f` in `mode`, with NaN, infinities and signed zeros.
fn f32_to(x: f32, f: Fmt, mode: Mode) -> f64 {
    if !x.is_finite() {
        return x as f64;
    }
    let (v, s) = split_f32(x);
    let r = round_scaled(v, s, f, mode);
    if r == 0.0 && x.is_sign_negative() {
        -0.0
    } else {
        r
    }
}

/// The value of f16 bits.
fn f16_val(h: u16) -> f64 {
    let s = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as f64;
    s * match e {
        0 => m * 2f64.powi(-24),
        31 if m == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1024.0 + m) * 2f64.powi(e - 25),
    }
}

/// f16 bits of a value representable in f16 (NaN: the canonical 0x7fff).
fn f16_bits(x: f64) -> u16 {
    if x.is_nan() {
        return 0x7fff;
    }
    let sign = if x.is_sign_negative() { 0x8000 } else { 0 };
    let a = x.abs();
    if a.is_infinite() {
        return sign | 0x7c00;
    }
    if a < 2f64.powi(-14) {
        let m = a * 2f64.powi(24);
        assert_eq!(m.fract(), 0.0, "{x} is not an f16");
        return sign | m as u16;
    }
    let e = a.log2().floor() as i32;
    let e = if 2f64.powi(e) > a { e - 1 } else { e };
    let m = a * 2f64.powi(10 - e) - 1024.0;
    assert!(
        m.fract() == 0.0 && (0.0..1024.0).contains(&m),
        "{x} is not an f16"
    );
    sign | ((e + 15) as u16) << 10 | m as u16
}

fn bf16_val(h: u16) -> f64 {
    f32::from_bits((h as u32) << 16) as f64
}

/// bf16 bits of a value representable in bf16 (NaN: the canonical 0x7fff).
fn bf16_bits(x: f64) -> u16 {
    if x.is_nan() {
        return 0x7fff;
    }
    let b = (x as f32).to_bits();
    assert_eq!(b & 0xffff, 0, "{x} is not a bf16");
    (b >> 16) as u16
}

fn is_nan16(h: u16, f: Fmt) -> bool {
    if f.prec == 11 {
        h & 0x7c00 == 0x7c00 && h & 0x3ff != 0
    } else {
        h & 0x7f80 == 0x7f80 && h & 0x7f != 0
    }
}

/// The exact value of a 16-bit float as `v * 2^scale` (panics if it is not a multiple of it).
fn scaled(x: f64, scale: i32) -> i128 {
    let v = x * 2f64.powi(-scale);
    assert!(
        v.fract() == 0.0 && v.abs() < 2f64.powi(120),
        "{x} at 2^{scale}"
    );
    v as i128
}

/// `a op b` (add, sub, mul) or `a * b + c` (fma) of 16-bit float values, rounded to nearest
/// in `f`, exactly; NaN and infinities as IEEE says. `scale`: a power of two every input is a
/// multiple of.
fn exact16(a: f64, b: f64, c: Option<f64>, op: char, f: Fmt, scale: i32) -> f64 {
    let ieee = match (op, c) {
        ('+', _) => a + b,
        ('-', _) => a - b,
        (_, None) => a * b,
        (_, Some(c)) => a * b + c,
    };
    if !a.is_finite() || !b.is_finite() || c.is_some_and(|c| !c.is_finite()) {
        return ieee;
    }
    let (va, vb) = (scaled(a, scale), scaled(b, scale));
    let (v, s) = match (op, c) {
        ('+', _) => (va + vb, scale),
        ('-', _) => (va - vb, scale),
        (_, None) => (va * vb, 2 * scale),
        (_, Some(c)) => (va * vb + (scaled(c, scale) << -scale), 2 * scale),
    };
    let r = round_scaled(v, s, f, Mode::Rn);
    match (r == 0.0, v) {
        // An exact zero: +0 unless both parts were -0 (IEEE round to nearest).
        (true, 0) if ieee.is_sign_negative() => -0.0,
        (true, v) if v < 0 => -0.0,
        _ => r,
    }
}

// ---------------------------------------------------------------------------------------------
// Warp-synchronous shared memory
// ---------------------------------------------------------------------------------------------

#[test]
fn syncwarp_orders_a_warp_synchronous_exchange() {
    let m = module();
    let mut sim = Sim::new();
    let mut rng = Rng::new(1);
    let input: Vec<i32> = (0..64).map(|_| rng.next_u32() as i32).collect();
    let inb = upload::<i32>(&mut sim, &input);
    let out = sim.zeros(128 * 4);
    run(
        &mut sim,
        &m,
        "warp_exchange",
        launch1(1, 64),
        &[Arg::Ptr(inb), Arg::Ptr(out)],
    );
    let got = sim.read_i32(out);
    let s: Vec<i32> = input
        .iter()
        .map(|&x| x.wrapping_mul(3).wrapping_add(1))
        .collect();
    let v: Vec<i32> = (0..64)
        .map(|t| {
            let (base, lane) = (t & !31, t & 31);
            s[t ^ 1].wrapping_add(s[base | ((lane + 5) & 31)])
        })
        .collect();
    for t in 0..64 {
        let base = t & !31;
        let sum = v[base..base + 32]
            .iter()
            .fold(0i32, |a, &x| a.wrapping_add(x));
        assert_eq!(got[2 * t], v[t], "exchanged value of thread {t}");
        assert_eq!(got[2 * t + 1], sum, "volatile tree sum seen by thread {t}");
    }
}

#[test]
fn syncwarps_in_two_branches_meet() {
    let m = module();
    let n_sync = PTX
        .split(".entry syncwarp_in_branches")
        .nth(1)
        .and_then(|k| k.split(".entry").next())
        .map_or(0, |body| body.matches("bar.warp.sync").count());
    assert_eq!(n_sync, 2, "one bar.warp.sync in each branch");
    let mut sim = Sim::new();
    let input: Vec<i32> = (0..32).map(|i| i * 7 - 50).collect();
    let inb = upload::<i32>(&mut sim, &input);
    let out = sim.zeros(32 * 4);
    run(
        &mut sim,
        &m,
        "syncwarp_in_branches",
        launch1(1, 32),
        &[Arg::Ptr(inb), Arg::Ptr(out)],
    );
    for (l, &got) in sim.read_i32(out).iter().enumerate() {
        let o = l ^ 16;
        let want = if o < 16 { input[o] + 100 } else { input[o] * 2 };
        assert_eq!(got, want, "lane {l}");
    }
}

#[test]
fn exchange_without_syncwarp_is_a_race() {
    let m = module();
    let mut sim = Sim::new();
    let inb = upload::<i32>(&mut sim, &[7; 64]);
    let out = sim.zeros(64 * 4);
    let e = expect_error(
        &mut sim,
        &m,
        "warp_exchange_racy",
        launch1(1, 64),
        &[Arg::Ptr(inb), Arg::Ptr(out)],
        ErrorKind::Race,
    );
    assert!(
        e.location().line.is_some() && e.location().thread.is_some(),
        "{e}"
    );
}

#[test]
fn a_tiles_syncwarp_does_not_order_the_other_tile() {
    let m = module();
    let mut sim = Sim::new();
    let inb = upload::<i32>(&mut sim, &[3; 32]);
    let out = sim.zeros(32 * 4);
    let e = expect_error(
        &mut sim,
        &m,
        "tile_sync_racy",
        launch1(1, 32),
        &[Arg::Ptr(inb), Arg::Ptr(out)],
        ErrorKind::Race,
    );
    assert!(e.message().contains("race"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// 64-bit shuffles
// ---------------------------------------------------------------------------------------------

#[test]
fn shuffles_of_doubles_and_long_longs() {
    let m = module();
    let mut sim = Sim::new();
    let n = 128;
    let mut rng = Rng::new(2);
    let x: Vec<f64> = (0..n)
        .map(|i| match i {
            5 => f64::from_bits(0x7ff0_0000_0000_0001), // a signalling NaN: bits must survive
            6 => -0.0,
            7 => 1e-310,
            _ => rng.f32(-1e3, 1e3) as f64 / 3.0 + rng.next_u32() as f64 * 1e-12,
        })
        .collect();
    let y: Vec<i64> = (0..n).map(|_| rng.next_u64() as i64).collect();
    let xb = upload::<f64>(&mut sim, &x);
    let yb = upload::<i64>(&mut sim, &y);
    let od = sim.zeros(n * 3 * 8);
    let ol = sim.zeros(n * 2 * 8);
    run(
        &mut sim,
        &m,
        "shfl64",
        launch1(2, 64),
        &[Arg::Ptr(xb), Arg::Ptr(yb), Arg::Ptr(od), Arg::Ptr(ol)],
    );
    let gd = read::<u64>(&sim, od);
    let gl = read::<u64>(&sim, ol);
    for w in 0..n / 32 {
        let lanes = w * 32..w * 32 + 32;
        let mut v: Vec<f64> = x[lanes.clone()].to_vec();
        let mut u: Vec<i64> = y[lanes.clone()].to_vec();
        for o in [16, 8, 4, 2, 1] {
            let (pv, pu) = (v.clone(), u.clone());
            for l in 0..32 {
                v[l] = pv[l] + pv[l ^ o];
                u[l] = pu[l].wrapping_mul(3).wrapping_add(pu[l ^ o]);
            }
        }
        for l in 0..32 {
            let i = w * 32 + l;
            let down = if l % 8 + 3 < 8 { l + 3 } else { l };
            let up = if l >= 5 { l - 5 } else { l };
            let want_d = [
                v[l].to_bits(),
                x[w * 32 + down].to_bits(),
                x[w * 32 + (l * 7) % 32].to_bits(),
            ];
            for (k, want) in want_d.iter().enumerate() {
                let g = gd[3 * i + k];
                let ok =
                    g == *want || (f64::from_bits(g).is_nan() && f64::from_bits(*want).is_nan());
                assert!(ok, "od[{i}][{k}]: got {g:#x}, want {want:#x}");
            }
            // Shuffles move bits: the NaN's payload must come through unchanged.
            assert_eq!(gd[3 * i + 1], want_d[1], "shfl_down of lane {i} is a move");
            assert_eq!(gl[2 * i], u[l] as u64, "xor-mixed long long of lane {i}");
            assert_eq!(gl[2 * i + 1], y[w * 32 + up] as u64, "shfl_up of lane {i}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// __half / __half2 and __nv_bfloat16
// ---------------------------------------------------------------------------------------------

/// Inputs for the f16 kernel: specials, values around f16's range and subnormals, random.
fn half_inputs() -> (Vec<f32>, Vec<f32>) {
    let special: &[(f32, f32)] = &[
        (1.0, 2.0),
        (0.0, -0.0),
        (-0.0, -0.0),
        (f32::NAN, 1.0),
        (1.0, f32::NAN),
        (f32::INFINITY, -1.0),
        (f32::INFINITY, f32::NEG_INFINITY),
        (65504.0, 65504.0),
        (70000.0, -3.0),
        (65519.0, 0.5),
        (6e-8, 3e-8),
        (1e-5, -2e-5),
        (3e-5, 1e-4),
        (1.0009766, 1.0004883),
        (-2.5, 2.5),
        (0.5, -0.75),
        (100.0, -99.9),
        (-7.0e-8, 5.0e-8),
        (2048.0, 1.0),
        (2049.0, 0.999),
    ];
    let mut rng = Rng::new(3);
    let (mut x, mut y): (Vec<f32>, Vec<f32>) = special.iter().copied().unzip();
    for k in 0..280 {
        let (lo, hi) = [(-26, 17), (-3, 4), (-16, -10)][k % 3];
        x.push(rng.f32_log(lo, hi));
        y.push(rng.f32_log(lo, hi));
    }
    (x, y)
}

#[test]
fn half_arithmetic_and_conversions() {
    let m = module();
    let mut sim = Sim::new();
    let (x, y) = half_inputs();
    let n = x.len();
    let xb = sim.upload_f32(&x);
    let yb = sim.upload_f32(&y);
    let oh = sim.zeros(n * 24 * 2);
    let oi = sim.zeros(n * 8 * 4);
    run(
        &mut sim,
        &m,
        "half_ops",
        launch1(n.div_ceil(64) as u32, 64),
        &[
            Arg::Ptr(xb),
            Arg::Ptr(yb),
            Arg::Ptr(oh),
            Arg::Ptr(oi),
            Arg::I32(n as i32),
        ],
    );
    let gh = read::<u16>(&sim, oh);
    let gi = sim.read_i32(oi);
    let nan = f64::NAN;
    for i in 0..n {
        let h = &gh[i * 24..i * 24 + 24];
        let k = &gi[i * 8..i * 8 + 8];
        let ctx = format!("x = {:e}, y = {:e}", x[i], y[i]);
        let a = f32_to(x[i], F16, Mode::Rn);
        let b = f32_to(y[i], F16, Mode::Rz);
        let op = |p: f64, q: f64, o: char| exact16(p, q, None, o, F16, -24);
        let fma = |p: f64, q: f64, r: f64| exact16(p, q, Some(r), '*', F16, -24);
        let sat = |v: f64| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        let relu = |v: f64| if v < 0.0 { 0.0 } else { v };
        let max = |p: f64, q: f64| {
            if p.is_nan() {
                q
            } else if q.is_nan() || p > q {
                p
            } else {
                q
            }
        };
        let min_nan = |p: f64, q: f64| {
            if p.is_nan() || q.is_nan() {
                nan
            } else {
                p.min(q)
            }
        };
        let (px, py) = (f32_to(x[i], F16, Mode::Rn), f32_to(y[i], F16, Mode::Rn));
        // p = {lo: f16(x), hi: f16(y)}, q = {lo: b, hi: a}
        let want: [(&str, f64); 22] = [
            ("cvt.rn.f16.f32", a),
            ("cvt.rz.f16.f32", b),
            ("add.f16", op(a, b, '+')),
            ("sub.f16", op(a, b, '-')),
            ("mul.f16", op(a, b, '*')),
            ("fma.rn.f16", fma(a, b, a)),
            ("neg.f16", -a),
            ("abs.f16", b.abs()),
            ("max.f16", max(a, b)),
            ("min.NaN.f16", min_nan(a, b)),
            ("add.sat.f16", sat(op(a, b, '+'))),
            ("fma.rn.relu.f16", relu(fma(a, b, b))),
            ("cvt.rni.f16.f16", a.round_ties_even()),
            (
                "cvt.rn.f16.s32",
                round_scaled(i as i128 * 1000 - 7777, 0, F16, Mode::Rn),
            ),
            ("cvt.rp.f16.f32", f32_to(x[i], F16, Mode::Ru)),
            ("set.eq.f16.f16", if a == b { 1.0 } else { 0.0 }),
            ("add.f16x2 (low)", op(px, b, '+')),
            ("mul.f16x2 (high)", op(py, a, '*')),
            ("fma.rn.f16x2 (low)", fma(px, b, px)),
            ("max.f16x2 (high)", max(py, a)),
            ("neg.f16x2 (low)", -px),
            ("set.lt.f16x2 (high)", if py < a { 1.0 } else { 0.0 }),
        ];
        for (j, (name, w)) in want.iter().enumerate() {
            let g = h[j];
            let ok = if w.is_nan() {
                is_nan16(g, F16)
            } else if *w == 0.0 && matches!(j, 8 | 9 | 19) {
                f16_val(g) == 0.0 // min/max of +0 and -0: either zero
            } else {
                g == f16_bits(*w)
            };
            assert!(
                ok,
                "{name} ({ctx}): got {g:#06x} ({}), want {w}",
                f16_val(g)
            );
        }
        // Approximations: ex2.approx.f16 (2^-9.9 relative), tanh.approx.f16 (2^-10.987).
        let e_in = op(a, 0.125, '*');
        for (name, g, w, rel) in [
            ("ex2.approx.f16", h[22], e_in.exp2(), 2f64.powf(-9.9)),
            ("tanh.approx.f16", h[23], a.tanh(), 2f64.powf(-10.987)),
        ] {
            let got = f16_val(g);
            if w.is_nan() {
                assert!(got.is_nan(), "{name} ({ctx}): got {got}");
            } else if w.is_infinite() || got.is_infinite() {
                assert!(
                    got == w || w.abs() > 65504.0,
                    "{name} ({ctx}): got {got}, want {w}"
                );
            } else {
                let tol = rel * w.abs() + 2f64.powi(-24);
                assert!(
                    (got - w).abs() <= tol,
                    "{name} ({ctx}): got {got}, want {w}"
                );
            }
        }
        let f_lo = fma(px, b, px);
        let f_hi = fma(py, a, py);
        let to_i = |v: f64| {
            if v.is_nan() {
                0
            } else {
                v.trunc().clamp(i32::MIN as f64, i32::MAX as f64) as i32
            }
        };
        let want_i = [
            (a < b) as i32,
            (a.is_nan() || b.is_nan() || a >= b) as i32,
            a.is_nan() as i32,
            to_i(a),
            (f_lo as f32).to_bits() as i32,
            (f_hi as f32).to_bits() as i32,
            ((sat(op(a, b, '+')) as f32) + (op(a, b, '*') as f32)).to_bits() as i32,
            ((px < b) as i32 * 0x3c00) | ((py < a) as i32 * 0x3c00) << 16,
        ];
        let names = [
            "setp.lt.f16",
            "setp.geu.f16",
            "set.nan.f16.f16",
            "cvt.rzi.s32.f16",
            "cvt.f32.f16 (low half)",
            "cvt.f32.f16 (high half)",
            "f16 -> f32 sum",
            "set.lt.f16x2.f16x2",
        ];
        for j in 0..8 {
            let same = k[j] == want_i[j]
                || (matches!(j, 4..=6)
                    && f32::from_bits(k[j] as u32).is_nan()
                    && f32::from_bits(want_i[j] as u32).is_nan());
            assert!(
                same,
                "{} ({ctx}): got {:#x}, want {:#x}",
                names[j], k[j], want_i[j]
            );
        }
    }
}

#[test]
fn bf16_arithmetic_and_conversions() {
    let m = module();
    let mut sim = Sim::new();
    // Magnitudes 2^-13 .. 2^12 keep every exact result a multiple of 2^-40 (see exact16).
    let mut rng = Rng::new(4);
    let mut x: Vec<f32> = vec![
        1.0,
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        3.0,
        -1.5,
        1.0 + 1.0 / 256.0, // a tie in bf16
    ];
    let mut y: Vec<f32> = vec![2.0, -0.0, -0.0, 1.0, -2.0, f32::NAN, 1.5, 1.0078125];
    for _ in 0..250 {
        x.push(rng.f32_log(-13, 12));
        y.push(rng.f32_log(-13, 12));
    }
    let n = x.len();
    let xb = sim.upload_f32(&x);
    let yb = sim.upload_f32(&y);
    let ob = sim.zeros(n * 10 * 2);
    let of = sim.zeros(n * 4 * 4);
    run(
        &mut sim,
        &m,
        "bf16_ops",
        launch1(n.div_ceil(32) as u32, 32),
        &[
            Arg::Ptr(xb),
            Arg::Ptr(yb),
            Arg::Ptr(ob),
            Arg::Ptr(of),
            Arg::I32(n as i32),
        ],
    );
    let gb = read::<u16>(&sim, ob);
    let gf = sim.read_f32(of);
    for i in 0..n {
        let g = &gb[i * 10..i * 10 + 10];
        let f = &gf[i * 4..i * 4 + 4];
        let ctx = format!("x = {:e}, y = {:e}", x[i], y[i]);
        let a = f32_to(x[i], BF16, Mode::Rn);
        let b = f32_to(y[i], BF16, Mode::Rz);
        let fma = |p: f64, q: f64, r: f64| exact16(p, q, Some(r), '*', BF16, -40);
        let max = |p: f64, q: f64| {
            if p.is_nan() {
                q
            } else if q.is_nan() || p > q {
                p
            } else {
                q
            }
        };
        let min = |p: f64, q: f64| {
            if p.is_nan() {
                q
            } else if q.is_nan() || p < q {
                p
            } else {
                q
            }
        };
        let (px, py) = (f32_to(x[i], BF16, Mode::Rn), f32_to(y[i], BF16, Mode::Rn));
        // bf16x2: r = p * p + q with p = {x, y}, q = {y, x}, two roundings.
        let sq = |v: f64| fma(v, v, -0.0);
        let want: [(&str, f64); 10] = [
            ("cvt.rn.bf16.f32", a),
            ("cvt.rz.bf16.f32", b),
            ("fma.rn.bf16 a*1+b", fma(a, 1.0, b)),
            ("fma.rn.bf16 a*b-0", fma(a, b, -0.0)),
            ("fma.rn.bf16", fma(a, b, a)),
            ("max.bf16", max(a, b)),
            ("min.bf16", min(a, b)),
            ("neg.bf16", -a),
            ("fma.rn.bf16x2 (low)", fma(sq(px), 1.0, py)),
            ("fma.rn.bf16x2 (high)", fma(sq(py), 1.0, px)),
        ];
        for (j, (name, w)) in want.iter().enumerate() {
            let ok = if w.is_nan() {
                is_nan16(g[j], BF16)
            } else if *w == 0.0 && matches!(j, 5 | 6) {
                bf16_val(g[j]) == 0.0
            } else {
                g[j] == bf16_bits(*w)
            };
            assert!(
                ok,
                "{name} ({ctx}): got {:#06x} ({}), want {w}",
                g[j],
                bf16_val(g[j])
            );
        }
        let want_f = [
            a as f32,
            b as f32,
            if a < b { 1.0 } else { -1.0 },
            f32_to(a as f32, F16, Mode::Rn) as f32,
        ];
        for j in 0..4 {
            assert!(
                same_f32(f[j], want_f[j]),
                "bf16 float {j} ({ctx}): got {}, want {}",
                f[j],
                want_f[j]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Atomics
// ---------------------------------------------------------------------------------------------

#[test]
fn atomics_double_add_cas_max_inc_dec_block_scope_and_shared() {
    let m = module();
    let mut sim = Sim::new();
    let (n, block, grid) = (300usize, 128u32, 3u32);
    let mut rng = Rng::new(5);
    // Small integers and halves: every sum is exact, whatever the order of the atomics.
    let x: Vec<f32> = (0..n)
        .map(|_| (rng.next_u32() % 201) as f32 * 0.5 - 50.0)
        .collect();
    let xb = sim.upload_f32(&x);
    let mut init = vec![0u32; 32 + 2 * n];
    init[2] = f32::NEG_INFINITY.to_bits();
    init[4] = 5;
    let out = sim.upload_u32(&init);
    run(
        &mut sim,
        &m,
        "atomics",
        launch1(grid, block),
        &[Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(n as i32)],
    );
    let g = sim.read_u32(out);
    let dsum = f64::from_bits(g[0] as u64 | (g[1] as u64) << 32);
    assert_eq!(
        dsum,
        x.iter().map(|&v| v as f64).sum::<f64>(),
        "atomicAdd(double)"
    );
    let fmax = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(f32::from_bits(g[2]), fmax, "CAS-loop float max");
    assert_eq!(g[3], (n % 10) as u32, "atomicInc(.., 9) from 0, n times");
    // atomicDec from 5 with limit 9: 5 4 3 2 1 0 9 8 ... whatever the order of the threads.
    let dec_seq: Vec<u32> = (0..=n)
        .scan(5u32, |v, _| {
            let old = *v;
            *v = if old == 0 || old > 9 { 9 } else { old - 1 };
            Some(old)
        })
        .collect();
    assert_eq!(g[4], dec_seq[n], "atomicDec final value");
    let mut inc_old: Vec<u32> = (0..n).map(|i| g[32 + 2 * i]).collect();
    let mut dec_old: Vec<u32> = (0..n).map(|i| g[32 + 2 * i + 1]).collect();
    inc_old.sort_unstable();
    dec_old.sort_unstable();
    let mut want_inc: Vec<u32> = (0..n as u32).map(|k| k % 10).collect();
    let mut want_dec = dec_seq[..n].to_vec();
    want_inc.sort_unstable();
    want_dec.sort_unstable();
    assert_eq!(inc_old, want_inc, "the old values atomicInc returned");
    assert_eq!(dec_old, want_dec, "the old values atomicDec returned");
    assert_eq!(
        g[5],
        (0..n as u32).fold(0u32, |a, i| a.wrapping_add(i)),
        "atomicAdd_block"
    );
    for k in 0..8 {
        let want = (0..n)
            .filter(|i| i % 8 == k)
            .map(|i| 1 + (i % block as usize) as u32)
            .sum::<u32>();
        assert_eq!(g[6 + k], want, "shared bin {k}");
    }
    assert_eq!(
        f32::from_bits(g[14]),
        0.5 * n as f32,
        "shared f32 atomicAdd"
    );
    let wide = (0..n as u64).map(|i| (1u64 << 33) + i).sum::<u64>();
    assert_eq!(
        g[16] as u64 | (g[17] as u64) << 32,
        wide,
        "shared u64 atomicAdd"
    );
    // Sums of small integers and halves are exact in f16, in any order.
    let half2 = f16_bits(n as f64) as u32 | (f16_bits(0.5 * n as f64) as u32) << 16;
    assert_eq!(g[18], half2, "atom.add.noftz.f16x2");
    assert_eq!(
        g[19],
        f16_bits(n as f64) as u32,
        "atom.add.noftz.f16 (shared, then global)"
    );
}

// ---------------------------------------------------------------------------------------------
// Integer intrinsics
// ---------------------------------------------------------------------------------------------

fn int_reference(x: u32, y: u32) -> [u32; 24] {
    let (sx, sy) = (x as i32, y as i32);
    let wx = (x as u64) << 32 | y as u64;
    let funnel = (y as u64) << 32 | x as u64;
    let s = y >> 3;
    let byte = |v: u32, i: u32| (v >> (8 * i)) & 0xff;
    let sbyte = |v: u32, i: u32| byte(v, i) as u8 as i8 as i32;
    let sel = (y >> 7) & 0x7777;
    let perm = (0..4).fold(0u32, |d, i| {
        let k = (sel >> (4 * i)) & 7;
        d | (((funnel >> (8 * k)) & 0xff) as u32) << (8 * i)
    });
    let sext24 = |v: u32| ((v << 8) as i32) >> 8;
    let ffs = |v: u64| if v == 0 { 0 } else { v.trailing_zeros() + 1 };
    let vabsdiff = (0..4).fold(0u32, |d, i| d | byte(x, i).abs_diff(byte(y, i)) << (8 * i));
    let dp4a_s = (0..4).fold(1000i32, |c, i| c.wrapping_add(sbyte(x, i) * sbyte(y, i)));
    let dp4a_u = (0..4).fold(7u32, |c, i| c.wrapping_add(byte(x, i) * byte(y, i)));
    let half_s = |v: u32, i: u32| ((v >> (16 * i)) & 0xffff) as u16 as i16 as i32;
    let dp2a_lo = (0..2).fold(-5i32, |c, i| c.wrapping_add(half_s(x, i) * sbyte(y, i)));
    let dp2a_hi = (0..2).fold(3u32, |c, i| {
        c.wrapping_add(((x >> (16 * i)) & 0xffff).wrapping_mul(byte(y, 2 + i)))
    });
    let sum = sx as i64 + sy as i64;
    let vadd2 = (0..2).fold(0u32, |d, i| {
        d | (((x >> (16 * i)) as u16).wrapping_add((y >> (16 * i)) as u16) as u32) << (16 * i)
    });
    let vsub4 = (0..4).fold(0u32, |d, i| {
        d | ((byte(x, i) as u8).wrapping_sub(byte(y, i) as u8) as u32) << (8 * i)
    });
    [
        ((funnel << (s & 31)) >> 32) as u32,
        (funnel >> (s & 31)) as u32,
        ((funnel << s.min(32)) >> 32) as u32,
        (funnel >> s.min(32)) as u32,
        perm,
        x.reverse_bits(),
        ffs(x as u64),
        ffs(wx),
        wx.count_ones(),
        wx.leading_zeros(),
        sext24(x).wrapping_mul(sext24(y)) as u32,
        (x & 0xff_ffff).wrapping_mul(y & 0xff_ffff),
        ((x as u64 * y as u64) >> 32) as u32,
        ((sx as i64 - sy as i64).unsigned_abs() as u32).wrapping_add(11),
        x.abs_diff(y).wrapping_add(0xffff_fff0),
        vabsdiff,
        dp4a_s as u32,
        dp4a_u,
        dp2a_lo as u32,
        dp2a_hi,
        ((sum >> 1) as u32) ^ (((sum + 1) >> 1) as u32),
        ((x as u64 + y as u64 + 1) >> 1) as u32,
        (((sx as i64 * sy as i64) >> 32) as u32)
            .wrapping_add(x.leading_zeros())
            .wrapping_add(y.count_ones()),
        vadd2 ^ vsub4,
    ]
}

#[test]
fn integer_intrinsics_match_ptx_semantics() {
    let m = module();
    let mut sim = Sim::new();
    let edge = [
        0u32,
        1,
        2,
        0x7f,
        0x80,
        0xff,
        0x8000_0000,
        0x7fff_ffff,
        0xffff_ffff,
        0x0080_0000,
        0x00ff_ffff,
        0xff80_0000,
        0x1234_5678,
        0x8765_4321,
    ];
    let mut a = Vec::new();
    let mut b = Vec::new();
    for &p in &edge {
        for &q in &edge {
            a.push(p);
            b.push(q);
        }
    }
    let mut rng = Rng::new(6);
    for _ in 0..300 {
        a.push(rng.next_u32());
        b.push(rng.next_u32());
    }
    let n = a.len();
    let ab = sim.upload_u32(&a);
    let bb = sim.upload_u32(&b);
    let out = sim.zeros(n * 24 * 4);
    run(
        &mut sim,
        &m,
        "int_intrinsics",
        launch1(n.div_ceil(128) as u32, 128),
        &[
            Arg::Ptr(ab),
            Arg::Ptr(bb),
            Arg::Ptr(out),
            Arg::I32(n as i32),
        ],
    );
    let got = sim.read_u32(out);
    let names = [
        "__funnelshift_l",
        "__funnelshift_r",
        "__funnelshift_lc",
        "__funnelshift_rc",
        "__byte_perm",
        "__brev",
        "__ffs",
        "__ffsll",
        "__popcll",
        "__clzll",
        "__mul24",
        "__umul24",
        "__umulhi",
        "__sad",
        "__usad",
        "__vabsdiffu4 (vabsdiff4)",
        "__dp4a signed",
        "__dp4a unsigned",
        "__dp2a_lo signed",
        "__dp2a_hi unsigned",
        "__hadd ^ __rhadd",
        "__urhadd",
        "__mulhi + __clz + __popc",
        "__vadd2 ^ __vsub4",
    ];
    for i in 0..n {
        let want = int_reference(a[i], b[i]);
        for j in 0..24 {
            assert_eq!(
                got[i * 24 + j],
                want[j],
                "{}(a = {:#x}, b = {:#x})",
                names[j],
                a[i],
                b[i]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Float intrinsics and libdevice functions
// ---------------------------------------------------------------------------------------------

/// The value `hi + lo` (an f64 and the sign-correct estimate of its error) rounded to f32 in
/// the directed `mode`.
fn round_f32(hi: f64, lo: f64, mode: Mode) -> f32 {
    let r = hi as f32; // nearest to hi; the exact value is within one f32 step of it
    let d = r as f64 - hi; // exact, r and hi being close (infinite on overflow)
    let (above, below) = (d > lo, d < lo); // r above or below the exact value
    match mode {
        Mode::Rn => panic!("round_f32 is for the directed modes"),
        Mode::Rz if r > 0.0 && above => r.next_down(),
        Mode::Rz if r < 0.0 && below => r.next_up(),
        Mode::Rd if above => r.next_down(),
        Mode::Ru if below => r.next_up(),
        _ => r,
    }
}

/// `a + b` exactly as `(hi, lo)`.
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// C's nextafterf.
fn nextafter(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a == b {
        b
    } else if a == 0.0 {
        f32::from_bits(1).copysign(b)
    } else if (a < b) == (a > 0.0) {
        f32::from_bits(a.to_bits() + 1)
    } else {
        f32::from_bits(a.to_bits() - 1)
    }
}

/// C's frexpf: mantissa in [0.5, 1) and exponent (0 and 0 for zero).
fn frexp(a: f32) -> (f32, i32) {
    if a == 0.0 || !a.is_finite() {
        return (a, 0);
    }
    let (v, s) = split_f32(a);
    let bits = 128 - v.unsigned_abs().leading_zeros() as i32;
    let e = bits + s;
    ((a as f64 * 2f64.powi(-e)) as f32, e)
}

#[test]
fn float_intrinsics_match_ptx_semantics_and_cuda_error_bounds() {
    let m = module();
    let mut sim = Sim::new();
    let mut x: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        2.5,
        -2.5,
        3.0,
        f32::NAN,
        1.0,
        0.0,
        -0.0,
        1e-40,
        7.5,
        1.0,
        -2.0,
    ];
    let mut y: Vec<f32> = vec![
        1.0,
        2.0,
        3.0,
        -3.0,
        0.75,
        1.5,
        f32::NAN,
        f32::NAN,
        2.0,
        1.0,
        -0.0,
        0.0,
        3.0,
        1e-39,
        3e38,
        -1e38,
    ];
    let mut rng = Rng::new(7);
    for k in 0..300 {
        if k % 5 == 4 {
            x.push(rng.f32(-std::f32::consts::PI, std::f32::consts::PI));
        } else {
            x.push(rng.f32(-8.0, 8.0));
        }
        let sign = if rng.next_u32() & 1 == 0 { 1.0 } else { -1.0 };
        y.push(sign * rng.f32(0.25, 4.0));
    }
    let n = x.len();
    let xb = sim.upload_f32(&x);
    let yb = sim.upload_f32(&y);
    let out = sim.zeros(n * 28 * 4);
    run(
        &mut sim,
        &m,
        "float_intrinsics",
        launch1(n.div_ceil(96) as u32, 96),
        &[
            Arg::Ptr(xb),
            Arg::Ptr(yb),
            Arg::Ptr(out),
            Arg::I32(n as i32),
        ],
    );
    let got = sim.read_f32(out);
    for i in 0..n {
        let (a, b) = (x[i], y[i]);
        let (ad, bd) = (a as f64, b as f64);
        let g = &got[i * 28..i * 28 + 28];
        let ctx = format!("a = {a:e}, b = {b:e}");
        let c = 0.1f32 as f64;
        let (fh, fl) = two_sum(ad * bd, c);
        let (sh, sl) = two_sum(ad, bd);
        let (dh, dl) = two_sum(ad, -bd);
        let q = ad / bd;
        let q_lo = (-q).mul_add(bd, ad) / bd;
        let sqrt_b = (bd.abs()).sqrt();
        let sqrt_lo = (-sqrt_b).mul_add(sqrt_b, bd.abs()) / (2.0 * sqrt_b);
        let (fr_m, fr_e) = frexp(a);
        let sat = if a.is_nan() { 0.0 } else { a.clamp(0.0, 1.0) };
        // Bit-exact: name, got, want.
        let exact: [(&str, f32, f32); 20] = [
            ("__saturatef", g[5], sat),
            ("__fmaf_rz", g[6], round_f32(fh, fl, Mode::Rz)),
            ("__fmaf_rd", g[7], round_f32(fh, fl, Mode::Rd)),
            ("__fmaf_ru", g[8], round_f32(fh, fl, Mode::Ru)),
            ("__fadd_rz", g[9], round_f32(sh, sl, Mode::Rz)),
            ("__fmul_rd", g[10], round_f32(ad * bd, 0.0, Mode::Rd)),
            ("__frcp_rn", g[11], (1.0 / bd) as f32),
            ("__fsqrt_rn", g[12], a.abs().sqrt()),
            ("rintf", g[13], a.round_ties_even()),
            ("truncf", g[14], a.trunc()),
            ("copysignf", g[15], a.copysign(b)),
            (
                "fminf",
                g[16],
                if a.is_nan() {
                    b
                } else if b.is_nan() {
                    a
                } else {
                    a.min(b)
                },
            ),
            (
                "fmaxf",
                g[17],
                if a.is_nan() {
                    b
                } else if b.is_nan() {
                    a
                } else {
                    a.max(b)
                },
            ),
            ("nextafterf", g[18], nextafter(a, b)),
            ("frexpf mantissa", g[19], fr_m),
            ("frexpf exponent", g[20], fr_e as f32),
            ("ldexpf", g[21], (bd * 2f64.powi((a * 4.0) as i32)) as f32),
            (
                "__fsub_ru - __fdiv_rz",
                g[25],
                round_f32(dh, dl, Mode::Ru) - round_f32(q, q_lo, Mode::Rz),
            ),
            ("__fsqrt_rd", g[26], round_f32(sqrt_b, sqrt_lo, Mode::Rd)),
            ("__frsqrt_rn", g[27], (1.0 / bd.abs().sqrt()) as f32),
        ];
        for (name, got, want) in exact {
            if name == "frexpf exponent" && !a.is_finite() {
                continue; // unspecified
            }
            // Left open: the sign of a zero from min/max of +0 and -0, and from __saturatef(-0).
            let zeros = got == 0.0
                && want == 0.0
                && ((a == 0.0 && b == 0.0 && name.starts_with("fm")) || name == "__saturatef");
            assert!(
                same_f32(got, want) || zeros,
                "{name} ({ctx}): got {got:e} ({:#x}), want {want:e} ({:#x})",
                got.to_bits(),
                want.to_bits()
            );
        }
        // Approximate: name, got, want, allowed error.
        let mut approx: Vec<(&str, f32, f64, f64)> = vec![
            (
                "__expf (2 + floor(|1.173 x|) ulp)",
                g[1],
                ad.exp(),
                (2.0 + (1.173 * ad).abs().floor()) * ulp32(ad.exp()),
            ),
            ("erff (2 ulp)", g[22], erf(ad), 2.0 * ulp32(erf(ad))),
            ("expm1f (1 ulp)", g[23], ad.exp_m1(), ulp32(ad.exp_m1())),
            (
                "log1pf (1 ulp)",
                g[24],
                bd.abs().ln_1p(),
                ulp32(bd.abs().ln_1p()),
            ),
        ];
        // __fdividef's 2 ulp hold for 2^-126 <= |b| <= 2^126; above, it gives 0 (NaN for an
        // infinite a).
        if (2f64.powi(-126)..=2f64.powi(126)).contains(&bd.abs()) {
            approx.push(("__fdividef (2 ulp)", g[0], ad / bd, 2.0 * ulp32(ad / bd)));
        } else if b.is_finite() && bd.abs() > 2f64.powi(126) {
            let want = a * 0f32.copysign(b);
            assert!(
                same_f32(g[0], want),
                "__fdividef ({ctx}): got {:e}, want {want:e}",
                g[0]
            );
        }
        let lb = bd.abs().ln();
        approx.push(if (0.5..=2.0).contains(&bd.abs()) {
            (
                "__logf (2^-21.41 abs on [0.5, 2])",
                g[2],
                lb,
                2f64.powf(-21.41),
            )
        } else {
            ("__logf (3 ulp)", g[2], lb, 3.0 * ulp32(lb))
        });
        if ad.abs() <= std::f64::consts::PI {
            approx.push((
                "__sinf (2^-21.41 abs on [-pi, pi])",
                g[3],
                ad.sin(),
                2f64.powf(-21.41),
            ));
            approx.push((
                "__cosf (2^-21.19 abs on [-pi, pi])",
                g[4],
                ad.cos(),
                2f64.powf(-21.19),
            ));
        }
        for (name, got, want, tol) in approx {
            if !want.is_finite() {
                assert!(
                    same_f32(got, want as f32),
                    "{name} ({ctx}): got {got}, want {want}"
                );
                continue;
            }
            assert!(
                (got as f64 - want).abs() <= tol,
                "{name} ({ctx}): got {got:e}, want {want:e}, error {:e} > {tol:e}",
                (got as f64 - want).abs()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cache hints, control flow, launch bounds, calls
// ---------------------------------------------------------------------------------------------

#[test]
fn cache_hinted_loads_and_stores() {
    let m = module();
    let mut sim = Sim::new();
    let n = 77;
    let mut rng = Rng::new(8);
    let v4: Vec<f32> = (0..4 * n).map(|_| rng.f32(-10.0, 10.0)).collect();
    let v: Vec<f32> = (0..n).map(|_| rng.f32(-10.0, 10.0)).collect();
    let (in4, inb) = (sim.upload_f32(&v4), sim.upload_f32(&v));
    let (out4, out) = (sim.zeros(16 * n), sim.zeros(16 * n));
    run(
        &mut sim,
        &m,
        "cache_hints",
        launch1(3, 32),
        &[
            Arg::Ptr(in4),
            Arg::Ptr(inb),
            Arg::Ptr(out4),
            Arg::Ptr(out),
            Arg::I32(n as i32),
        ],
    );
    let (g4, g) = (sim.read_f32(out4), sim.read_f32(out));
    for i in 0..n {
        let w = &v4[4 * i..4 * i + 4];
        assert_eq!(
            &g4[4 * i..4 * i + 4],
            &[w[0] + w[3], w[1] + w[2], w[2] + w[1], w[3] + w[0]],
            "float4 {i}"
        );
        let a = v[i];
        let s = a + a * 2.0 + a * 4.0 + a * 8.0 + a * 16.0;
        assert_eq!(
            &g[4 * i..4 * i + 4],
            &[s, -s, s * 0.5, s + 1.0],
            "float {i}"
        );
    }
}

#[test]
fn grid_stride_loop_over_a_2d_grid() {
    let m = module();
    let mut sim = Sim::new();
    let (w, h) = (37usize, 23usize);
    let input: Vec<f32> = (0..w * h).map(|i| i as f32 * 0.25 - 50.0).collect();
    let inb = sim.upload_f32(&input);
    let out = sim.zeros(w * h * 4);
    let l = Launch {
        grid: Dim3::xy(2, 2),
        block: Dim3::xy(8, 4),
        shared_bytes: 0,
    };
    run(
        &mut sim,
        &m,
        "grid_stride_2d",
        l,
        &[
            Arg::Ptr(inb),
            Arg::Ptr(out),
            Arg::I32(w as i32),
            Arg::I32(h as i32),
        ],
    );
    let got = sim.read_f32(out);
    for y in 0..h {
        for x in 0..w {
            let want = input[y * w + x] * 2.0 + (x as f32 - y as f32);
            assert_eq!(got[y * w + x], want, "({x}, {y})");
        }
    }
}

#[test]
fn templated_kernel_with_launch_bounds_and_unrolled_loop() {
    let m = module();
    let name = *m
        .kernels()
        .iter()
        .find(|k| k.contains("unrolled_dot"))
        .expect("the mangled template instance");
    assert!(name.starts_with("_Z") && name.contains("ILi8E"), "{name}");
    let mut sim = Sim::new();
    let n = 200;
    let mut rng = Rng::new(9);
    let x: Vec<f32> = (0..8 * n).map(|_| rng.f32(-2.0, 2.0)).collect();
    let y: Vec<f32> = (0..8).map(|_| rng.f32(-2.0, 2.0)).collect();
    let (xb, yb, out) = (sim.upload_f32(&x), sim.upload_f32(&y), sim.zeros(4 * n));
    let args = [
        Arg::Ptr(xb),
        Arg::Ptr(yb),
        Arg::Ptr(out),
        Arg::I32(n as i32),
    ];
    run(&mut sim, &m, name, launch1(2, 128), &args);
    let got = sim.read_f32(out);
    for i in 0..n {
        let want = (0..8).fold(0.0f32, |acc, k| x[i * 8 + k].mul_add(y[k], acc));
        assert_eq!(got[i], want, "dot {i}");
    }
    // __launch_bounds__(128, 2) is .maxntid 128, 1, 1: the GPU refuses a bigger block, and so
    // must the simulator; a 2-D block of 128 threads is fine.
    let e = expect_error(
        &mut sim,
        &m,
        name,
        launch1(1, 256),
        &args,
        ErrorKind::Launch,
    );
    assert!(e.message().contains(".maxntid"), "{e}");
    let square = Launch {
        grid: Dim3::x(1),
        block: Dim3::xy(16, 8),
        shared_bytes: 0,
    };
    run(&mut sim, &m, name, square, &args);
}

#[test]
fn device_function_returning_a_struct() {
    let m = module();
    assert!(
        PTX.contains(".param .align 8 .b8 func_retval0[16]"),
        "the struct comes back through a .param byte array"
    );
    let mut sim = Sim::new();
    let n = 45;
    let mut rng = Rng::new(10);
    let x: Vec<f32> = (0..4 * n).map(|_| rng.f32(-3.0, 3.0)).collect();
    let (xb, out) = (sim.upload_f32(&x), sim.zeros(3 * 8 * n));
    run(
        &mut sim,
        &m,
        "struct_return",
        launch1(2, 32),
        &[Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(n as i32)],
    );
    let got = read::<f64>(&sim, out);
    for i in 0..n {
        let v = &x[4 * i..4 * i + 4];
        let sum = v.iter().fold(0.0f64, |s, &a| s + a as f64);
        let prod = v.iter().fold(1.0f32, |p, &a| p * a);
        let count = v.iter().filter(|&&a| a > 0.0).count();
        assert_eq!(got[3 * i], sum, "sum {i}");
        assert_eq!(got[3 * i + 1], prod as f64, "product {i}");
        assert_eq!(got[3 * i + 2], count as f64, "count {i}");
    }
}

#[test]
fn switch_statement() {
    let m = module();
    let mut sim = Sim::new();
    let n = 100;
    let mut rng = Rng::new(11);
    let op: Vec<i32> = (0..n).map(|_| rng.next_u32() as i32).collect();
    let x: Vec<f32> = (0..n).map(|_| rng.f32(-5.0, 5.0)).collect();
    let (ob, xb, out) = (
        upload::<i32>(&mut sim, &op),
        sim.upload_f32(&x),
        sim.zeros(4 * n),
    );
    run(
        &mut sim,
        &m,
        "switch_ops",
        launch1(4, 32),
        &[
            Arg::Ptr(ob),
            Arg::Ptr(xb),
            Arg::Ptr(out),
            Arg::I32(n as i32),
        ],
    );
    let got = sim.read_f32(out);
    for i in 0..n {
        let v = x[i];
        let want = match op[i] & 7 {
            0 => v + 1.0,
            1 => v * 3.0,
            2 => v - 7.5,
            3 => -v,
            4 => v * v,
            5 => 0.25,
            6 => v + v + v + v,
            _ => v * 0.5 - 1.0,
        };
        assert_eq!(got[i], want, "case {} of {v}", op[i] & 7);
    }
}

// ---------------------------------------------------------------------------------------------
// Votes, matches, reductions, tiles, block reductions
// ---------------------------------------------------------------------------------------------

#[test]
fn activemask_and_ballot_in_divergent_code() {
    let m = module();
    let mut sim = Sim::new();
    let mut rng = Rng::new(12);
    let x: Vec<i32> = (0..64).map(|_| (rng.next_u32() % 21) as i32 - 10).collect();
    let (xb, out) = (upload::<i32>(&mut sim, &x), sim.zeros(64 * 16));
    run(
        &mut sim,
        &m,
        "divergent_ballot",
        launch1(1, 64),
        &[Arg::Ptr(xb), Arg::Ptr(out)],
    );
    let got = sim.read_u32(out);
    let active: u32 = (0..32).filter(|l| l % 3 == 0).fold(0, |m, l| m | 1 << l);
    assert_eq!(active, 0x4924_9249);
    for t in 0..64 {
        let (w, l) = (t / 32, t % 32);
        let g = &got[4 * t..4 * t + 4];
        if l % 3 != 0 {
            assert_eq!(g, &[!0u32; 4], "thread {t} is not in the branch");
            continue;
        }
        let ballot = (0..32)
            .filter(|&k| k % 3 == 0 && x[w * 32 + k] > 0)
            .fold(0u32, |m, k| m | 1 << k);
        let src = if l + 3 < 32 { l + 3 } else { l };
        let want = [
            active,
            ballot,
            ballot.count_ones(),
            x[t].wrapping_add(x[w * 32 + src]) as u32,
        ];
        assert_eq!(g, &want, "thread {t}");
    }
}

#[test]
fn match_and_reduce_sync() {
    let m = module();
    let mut sim = Sim::new();
    let mut rng = Rng::new(13);
    // Warp 0: random values; warp 1: all with the same bits above the low byte.
    let x: Vec<i32> = (0..64)
        .map(|t| {
            if t < 32 {
                rng.next_u32() as i32 >> (rng.next_u32() % 24)
            } else {
                0x1234_5600 | (rng.next_u32() & 0xff) as i32
            }
        })
        .collect();
    let (xb, out) = (upload::<i32>(&mut sim, &x), sim.zeros(64 * 10 * 4));
    run(
        &mut sim,
        &m,
        "warp_match_reduce",
        launch1(1, 64),
        &[Arg::Ptr(xb), Arg::Ptr(out)],
    );
    let got = sim.read_u32(out);
    for w in 0..2 {
        let v = &x[w * 32..w * 32 + 32];
        let uniform = v.iter().all(|&a| a & !0xff == v[0] & !0xff);
        assert_eq!(uniform, w == 1);
        for l in 0..32 {
            let t = w * 32 + l;
            let any = (0..32)
                .filter(|&k| v[k] % 5 == v[l] % 5)
                .fold(0u32, |m, k| m | 1 << k);
            let want = [
                any,
                if uniform { !0 } else { 0 },
                uniform as u32,
                v.iter().fold(0u32, |s, &a| s.wrapping_add(a as u32)),
                *v.iter().min().unwrap() as u32,
                *v.iter().max().unwrap() as u32,
                v.iter().map(|&a| a as u32).min().unwrap(),
                v.iter().fold(!0u32, |s, &a| s & (a as u32 | 0x10)),
                v.iter().fold(0u32, |s, &a| s | (a as u32 & 0xf0f0)),
                v.iter().fold(0u32, |s, &a| s ^ a as u32),
            ];
            assert_eq!(&got[10 * t..10 * t + 10], &want, "thread {t}");
        }
    }
}

#[test]
fn tiled_partition_16_reductions_and_tile_sync() {
    let m = module();
    let mut sim = Sim::new();
    let mut rng = Rng::new(14);
    let x: Vec<f32> = (0..64).map(|_| rng.f32(-4.0, 4.0)).collect();
    let (xb, out) = (sim.upload_f32(&x), sim.zeros(64 * 16));
    run(
        &mut sim,
        &m,
        "tile16",
        launch1(1, 64),
        &[Arg::Ptr(xb), Arg::Ptr(out)],
    );
    let got = sim.read_f32(out);
    for tile in 0..4 {
        let base = tile * 16;
        let mut sum: Vec<f32> = x[base..base + 16].to_vec();
        let mut mx = sum.clone();
        for o in [8, 4, 2, 1] {
            let (ps, pm) = (sum.clone(), mx.clone());
            for l in 0..16 {
                sum[l] = ps[l] + if l + o < 16 { ps[l + o] } else { ps[l] };
                mx[l] = pm[l].max(pm[l ^ o]);
            }
        }
        let lane0 = base % 32; // the tile's first lane in its warp
        let ballot = (0..16)
            .filter(|&l| x[base + l] > 0.0)
            .fold(0u32, |m, l| m | 1 << (lane0 + l));
        for l in 0..16 {
            let t = base + l;
            let g = &got[4 * t..4 * t + 4];
            assert_eq!(g[0], sum[l], "tile shfl_down sum, thread {t}");
            assert_eq!(g[1], mx[l], "tile shfl_xor max, thread {t}");
            assert_eq!(g[2].to_bits(), ballot, "tile ballot, thread {t}");
            assert_eq!(
                g[3],
                x[t ^ 1] * 2.0,
                "neighbour after tile.sync, thread {t}"
            );
        }
    }
}

#[test]
fn syncthreads_count_and_or() {
    let m = module();
    let mut sim = Sim::new();
    for (block, seed) in [(96u32, 15u64), (40, 16), (1024, 17)] {
        let mut rng = Rng::new(seed);
        let x: Vec<i32> = (0..block)
            .map(|_| (rng.next_u32() % 181) as i32 - 90)
            .collect();
        let (xb, out) = (upload::<i32>(&mut sim, &x), sim.zeros(block as usize * 12));
        run(
            &mut sim,
            &m,
            "sync_count",
            launch1(1, block),
            &[Arg::Ptr(xb), Arg::Ptr(out)],
        );
        let got = sim.read_i32(out);
        let count = x.iter().filter(|&&v| v > 0).count() as i32;
        let all = x.iter().all(|&v| v > -50) as i32;
        let any = x.iter().any(|&v| v > 90) as i32;
        for t in 0..block as usize {
            assert_eq!(
                &got[3 * t..3 * t + 3],
                &[count, all, any],
                "block {block}, thread {t}"
            );
        }
    }
    // All true and none true.
    let x = vec![95i32; 64];
    let (xb, out) = (upload::<i32>(&mut sim, &x), sim.zeros(64 * 12));
    run(
        &mut sim,
        &m,
        "sync_count",
        launch1(1, 64),
        &[Arg::Ptr(xb), Arg::Ptr(out)],
    );
    assert_eq!(&sim.read_i32(out)[..3], &[64, 1, 1]);
}

#[test]
fn printf_is_reported_as_unsupported() {
    let m = module();
    let e = m.check().expect_err("printf cannot run");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let mut sim = Sim::new();
    let e = expect_error(
        &mut sim,
        &m,
        "say_hello",
        launch1(1, 1),
        &[Arg::I32(1)],
        ErrorKind::Unsupported,
    );
    let line = e.location().line.expect("a PTX line");
    assert!(
        PTX.lines()
            .nth(line as usize - 1)
            .unwrap_or("")
            .contains("call"),
        "line {line} is the call: {e}"
    );
    assert!(
        e.message()
            .starts_with("printf (a call to vprintf) is not supported"),
        "{e}"
    );
}

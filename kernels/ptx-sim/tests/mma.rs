//! `tests/kernels/mma.cu` and hand-written PTX: the TF32 tensor-core `mma` (the one form
//! `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32`) and the conversions to TF32
//! (`cvt.{rna,rn,rz}{.satfinite}{.relu}.tf32.f32`). The fragment layout is checked element by
//! element against a plain matrix product, the conversions bit by bit against an integer
//! rounding of the f32 bits written here, a 3xTF32 GEMM against f64; `mma` by part of a warp
//! is a Warp error and every other `mma` form Unsupported.

mod common;

use common::*;
use smelt_ptx_sim::{Arg, Dim3, ErrorKind, Launch, Module, Sim, SimError};

const CU: &str = include_str!("kernels/mma.cu");
const PTX: &str = include_str!("kernels/mma.ptx");

fn module() -> Module {
    Module::parse(PTX).unwrap_or_else(|e| panic!("mma.ptx does not parse: {e}"))
}

#[test]
fn ptx_is_regenerated_from_its_source() {
    assert_ptx_is_current("mma", CU, PTX);
}

#[test]
fn every_kernel_decodes() {
    module().check().unwrap_or_else(|e| panic!("mma.ptx: {e}"));
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Deterministic pseudo-random stream (an LCG; the top bits are used).
struct Rng(u64);

impl Rng {
    fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
    /// Uniform in [lo, hi).
    fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u32() >> 8) as f32 / (1u32 << 24) as f32)
    }
    /// The numbers 1..=n in a random order.
    fn permutation(&mut self, n: u32) -> Vec<u32> {
        let mut v: Vec<u32> = (1..=n).collect();
        for i in (1..v.len()).rev() {
            v.swap(i, self.next_u32() as usize % (i + 1));
        }
        v
    }
}

/// Runs a kernel that must succeed without warnings.
#[track_caller]
fn run(sim: &mut Sim, m: &Module, kernel: &str, grid: u32, block: u32, args: &[Arg]) {
    match sim.launch(m, kernel, launch1(grid, block), args) {
        Ok(r) => assert!(r.warnings.is_empty(), "{kernel}: warnings {:?}", r.warnings),
        Err(e) => panic!("{kernel}: {e}"),
    }
}

/// `a` (m x k) times `b` (k x n) plus `c` (m x n), all row-major, in f64.
fn matmul(a: &[f32], b: &[f32], c: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    (0..m * n)
        .map(|ij| {
            let (i, j) = (ij / n, ij % n);
            let dot: f64 = (0..k)
                .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                .sum();
            dot + c[ij] as f64
        })
        .collect()
}

/// `mma_one` (raw: A and B passed unconverted) on 16x8 `a`, 8x8 `b` and 16x8 `c`: the 16x8 D.
fn mma_one(a: &[f32], b: &[f32], c: &[f32], raw: bool) -> Vec<f32> {
    let m = module();
    let mut sim = Sim::new();
    let (ab, bb, cb) = (sim.upload_f32(a), sim.upload_f32(b), sim.upload_f32(c));
    let d = sim.zeros(16 * 8 * 4);
    let args = [
        Arg::Ptr(ab),
        Arg::Ptr(bb),
        Arg::Ptr(cb),
        Arg::Ptr(d),
        Arg::I32(raw as i32),
    ];
    run(&mut sim, &m, "mma_one", 1, 32, &args);
    sim.read_f32(d)
}

// ---------------------------------------------------------------------------------------------
// mma: the fragment layout
// ---------------------------------------------------------------------------------------------

/// Every element of A, B and C is a different small integer (C's in quarters), so every
/// product and sum is exact in f32 and a slot of any fragment read from the wrong place, or a D
/// element written to the wrong place, changes the result. The layout the kernel loads and
/// stores by is the PTX ISA's ("Matrix Fragments for mma.m16n8k8", .tf32).
#[test]
fn mma_matches_a_plain_matmul_on_the_isa_fragment_layout() {
    let mut rng = Rng(7);
    let signed = |rng: &mut Rng, v: u32| {
        let s = if rng.next_u32() & 1 == 0 { 1.0 } else { -1.0 };
        s * v as f32
    };
    let a: Vec<f32> = rng
        .permutation(128)
        .into_iter()
        .map(|v| signed(&mut rng, v))
        .collect();
    let b: Vec<f32> = rng
        .permutation(64)
        .into_iter()
        .map(|v| signed(&mut rng, v))
        .collect();
    let c: Vec<f32> = rng
        .permutation(128)
        .into_iter()
        .map(|v| signed(&mut rng, v) * 0.25)
        .collect();
    let want = matmul(&a, &b, &c, 16, 8, 8);
    let mut sorted = want.clone();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    assert_eq!(sorted.len(), 128, "the D elements must all differ");
    let got = mma_one(&a, &b, &c, false);
    for (ij, (&g, &w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w as f32, "D[{}][{}]", ij / 8, ij % 8);
    }
}

/// The mma reads A and B as TF32: the low 13 bits of each f32 are dropped (truncated, not
/// rounded), so values that were not converted with cvt lose them.
#[test]
fn mma_ignores_the_low_13_bits_of_its_operands() {
    let mut rng = Rng(11);
    let mut junk = |v: u32| {
        let bits = (v as f32).to_bits() | (1 + rng.next_u32() % 0x1fff);
        f32::from_bits(bits)
    };
    let a: Vec<f32> = (1..=128).map(&mut junk).collect();
    let b: Vec<f32> = (1..=64).map(&mut junk).collect();
    let c: Vec<f32> = (0..128).map(|i| f32::from_bits(0x3f80_0001 + i)).collect();
    let truncated = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .map(|x| f32::from_bits(x.to_bits() & 0xffff_e000))
            .collect()
    };
    // C is an f32 operand, used whole (the GEMM test fails when it is not).
    let want = matmul(&truncated(&a), &truncated(&b), &c, 16, 8, 8);
    let got = mma_one(&a, &b, &c, true);
    for (ij, (&g, &w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w as f32, "D[{}][{}]", ij / 8, ij % 8);
    }
}

// ---------------------------------------------------------------------------------------------
// mma: a GEMM in 3xTF32 and 1xTF32
// ---------------------------------------------------------------------------------------------

/// `tf32_gemm` of random M x K and K x N matrices in [-1, 1): the largest error of an element
/// relative to the sum of the magnitudes of its products, `|C - ref| / sum_k |A_ik B_kj|`.
fn gemm_error(m: usize, n: usize, k: usize, split: bool) -> f64 {
    let mut rng = Rng(3);
    let a: Vec<f32> = (0..m * k).map(|_| rng.f32(-1.0, 1.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.f32(-1.0, 1.0)).collect();
    let module = module();
    let mut sim = Sim::new();
    let (ab, bb) = (sim.upload_f32(&a), sim.upload_f32(&b));
    let cb = sim.zeros(m * n * 4);
    let args = [
        Arg::Ptr(ab),
        Arg::Ptr(bb),
        Arg::Ptr(cb),
        Arg::I32(m as i32),
        Arg::I32(n as i32),
        Arg::I32(k as i32),
        Arg::I32(split as i32),
    ];
    let launch = Launch {
        grid: Dim3::xy(n as u32 / 8, m as u32 / 16),
        block: Dim3::x(32),
        shared_bytes: 0,
    };
    if let Err(e) = sim.launch(&module, "tf32_gemm", launch, &args) {
        panic!("tf32_gemm: {e}");
    }
    let got = sim.read_f32(cb);
    let want = matmul(&a, &b, &vec![0.0; m * n], m, n, k);
    (0..m * n)
        .map(|ij| {
            let (i, j) = (ij / n, ij % n);
            let scale: f64 = (0..k)
                .map(|p| (a[i * k + p] * b[p * n + j]).abs() as f64)
                .sum();
            (got[ij] as f64 - want[ij]).abs() / scale
        })
        .fold(0.0, f64::max)
}

/// 3xTF32 (big and small parts, three mma per step) is near f32 accuracy; big parts alone are
/// TF32 accurate, about 2^-11: the small terms count.
#[test]
fn three_tf32_gemm_is_near_f32_accuracy_and_one_tf32_is_not() {
    for (m, n, k) in [(32, 32, 32), (48, 16, 40)] {
        let three = gemm_error(m, n, k, true);
        let one = gemm_error(m, n, k, false);
        assert!(three < 1e-6, "{m}x{n}x{k} 3xTF32: relative error {three:e}");
        assert!(one > 1e-5, "{m}x{n}x{k} 1xTF32: relative error {one:e}");
    }
}

// ---------------------------------------------------------------------------------------------
// cvt to TF32
// ---------------------------------------------------------------------------------------------

/// Rounding of a conversion to TF32.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Round {
    /// Nearest, ties away from zero (`.rna`).
    Away,
    /// Nearest, ties to even (`.rn`).
    Even,
    /// Toward zero (`.rz`).
    Zero,
}

/// The canonical NaN the simulator gives a conversion to TF32.
const TF32_NAN: u32 = 0x7fff_e000;
/// The largest finite TF32.
const TF32_MAX: u32 = 0x7f7f_e000;

/// f32 bits rounded to TF32 on the bits, as integers: the 13 low bits of the magnitude are cut
/// and the rest incremented when they round up, which carries into the exponent (up to
/// infinity) by itself. `satfinite` turns an infinity into the largest finite TF32 of its sign,
/// `relu` a negative result into +0; a NaN gives the canonical one.
fn tf32(bits: u32, r: Round, satfinite: bool, relu: bool) -> u32 {
    let (sign, mag) = (bits & 0x8000_0000, bits & 0x7fff_ffff);
    if mag > 0x7f80_0000 {
        return TF32_NAN;
    }
    let (cut, kept) = (mag & 0x1fff, mag & !0x1fff);
    let up = mag != 0x7f80_0000
        && match r {
            Round::Away => cut >= 0x1000,
            Round::Even => cut > 0x1000 || (cut == 0x1000 && kept & 0x2000 != 0),
            Round::Zero => false,
        };
    let mut out = kept + if up { 0x2000 } else { 0 };
    if satfinite && out == 0x7f80_0000 {
        out = TF32_MAX;
    }
    if relu && sign != 0 && out != 0 {
        return 0;
    }
    sign | out
}

/// Chosen inputs and what `cvt.rna`, `.rn` and `.rz` make of them, written out: ties (away
/// from zero against to even), the carry into the exponent, the largest finite values, the
/// infinities, NaNs, subnormals, zeros and negative values.
const CHOSEN: &[(u32, u32, u32, u32)] = &[
    // (input, rna, rn, rz)
    (0x3f80_1000, 0x3f80_2000, 0x3f80_0000, 0x3f80_0000), // 1 + 2^-11: tie, even below
    (0x3f80_3000, 0x3f80_4000, 0x3f80_4000, 0x3f80_2000), // tie, even above
    (0x3f80_0fff, 0x3f80_0000, 0x3f80_0000, 0x3f80_0000), // just below a tie
    (0x3f80_1001, 0x3f80_2000, 0x3f80_2000, 0x3f80_0000), // just above a tie
    (0x3fff_f000, 0x4000_0000, 0x4000_0000, 0x3fff_e000), // carry into the exponent: 2.0
    (0x3f80_0000, 0x3f80_0000, 0x3f80_0000, 0x3f80_0000), // 1.0 is a TF32
    (0x7f7f_ffff, 0x7f80_0000, 0x7f80_0000, 0x7f7f_e000), // largest f32: past the largest TF32
    (0x7f7f_f000, 0x7f80_0000, 0x7f80_0000, 0x7f7f_e000), // tie above the largest TF32
    (0x7f7f_efff, 0x7f7f_e000, 0x7f7f_e000, 0x7f7f_e000), // rounds down to the largest TF32
    (0x7f7f_e000, 0x7f7f_e000, 0x7f7f_e000, 0x7f7f_e000), // the largest TF32
    (0x7f80_0000, 0x7f80_0000, 0x7f80_0000, 0x7f80_0000), // +inf
    (0xff80_0000, 0xff80_0000, 0xff80_0000, 0xff80_0000), // -inf
    (0x7fc0_0000, TF32_NAN, TF32_NAN, TF32_NAN),          // quiet NaN
    (0x7f80_0001, TF32_NAN, TF32_NAN, TF32_NAN),          // NaN with its payload in the low bits
    (0xffc0_1234, TF32_NAN, TF32_NAN, TF32_NAN),          // negative NaN
    (0x0000_1000, 0x0000_2000, 0x0000_0000, 0x0000_0000), // subnormal tie: half the least TF32
    (0x0000_3000, 0x0000_4000, 0x0000_4000, 0x0000_2000), // subnormal tie, even above
    (0x007f_f000, 0x0080_0000, 0x0080_0000, 0x007f_e000), // subnormal carries to the least normal
    (0x0000_0001, 0x0000_0000, 0x0000_0000, 0x0000_0000), // least subnormal f32
    (0x0000_0000, 0x0000_0000, 0x0000_0000, 0x0000_0000), // +0
    (0x8000_0000, 0x8000_0000, 0x8000_0000, 0x8000_0000), // -0
    (0xbf80_1000, 0xbf80_2000, 0xbf80_0000, 0xbf80_0000), // -(1 + 2^-11): away from zero
    (0xbfff_f000, 0xc000_0000, 0xc000_0000, 0xbfff_e000), // -2.0 by the carry
    (0xff7f_ffff, 0xff80_0000, 0xff80_0000, 0xff7f_e000), // most negative f32
    (0x8000_1000, 0x8000_2000, 0x8000_0000, 0x8000_0000), // negative subnormal tie
];

/// Inputs for the conversion tests: the chosen ones, then random bit patterns (every class,
/// NaNs and subnormals included) and random ties.
fn cvt_inputs() -> Vec<u32> {
    let mut rng = Rng(5);
    let mut v: Vec<u32> = CHOSEN.iter().map(|c| c.0).collect();
    v.extend((0..2000).map(|_| rng.next_u32()));
    v.extend((0..500).map(|_| (rng.next_u32() & !0x1fff) | 0x1000));
    v
}

/// Checks `got[i]` (the conversion of `inputs[i]` in mode `r` with `satfinite` and `relu`)
/// against the written-out table and the integer rounding.
#[track_caller]
fn check_cvt(inputs: &[u32], got: &[u32], r: Round, satfinite: bool, relu: bool, what: &str) {
    for (i, (&x, &g)) in inputs.iter().zip(got).enumerate() {
        assert_eq!(
            g & 0x1fff,
            0,
            "{what}({x:#010x}) = {g:#010x}: low 13 bits set"
        );
        if let Some(&(_, rna, rn, rz)) = CHOSEN.get(i) {
            let mut want = match r {
                Round::Away => rna,
                Round::Even => rn,
                Round::Zero => rz,
            };
            if satfinite && want & 0x7fff_ffff == 0x7f80_0000 {
                want = (want & 0x8000_0000) | TF32_MAX;
            }
            if relu && want & 0x8000_0000 != 0 && want != TF32_NAN && want != 0x8000_0000 {
                want = 0;
            }
            assert_eq!(g, want, "{what}({x:#010x}) = {g:#010x}, want {want:#010x}");
        }
        let want = tf32(x, r, satfinite, relu);
        assert_eq!(g, want, "{what}({x:#010x}) = {g:#010x}, want {want:#010x}");
    }
}

/// `cvt.rna.tf32.f32` and `cvt.rna.satfinite.tf32.f32`, as NVRTC compiles them (sm_80).
#[test]
fn cvt_rna_to_tf32_rounds_ties_away_bit_exactly() {
    let inputs = cvt_inputs();
    let m = module();
    let mut sim = Sim::new();
    let x = sim.upload_u32(&inputs);
    let out = sim.zeros(inputs.len() * 8);
    let n = inputs.len() as u32;
    let args = [Arg::Ptr(x), Arg::Ptr(out), Arg::U32(n)];
    run(&mut sim, &m, "tf32_convert", n.div_ceil(128), 128, &args);
    let got = sim.read_u32(out);
    let rna: Vec<u32> = got.iter().step_by(2).copied().collect();
    let sat: Vec<u32> = got.iter().skip(1).step_by(2).copied().collect();
    check_cvt(&inputs, &rna, Round::Away, false, false, "cvt.rna");
    check_cvt(&inputs, &sat, Round::Away, true, false, "cvt.rna.satfinite");
}

/// The `.rn` and `.rz` conversions (sm_90, so not in the sm_80 corpus), with `.satfinite` and
/// `.relu`, in hand-written PTX: thread i converts x[i] in each of the `forms` into
/// out[i * forms.len() ..].
#[test]
fn cvt_rn_and_rz_to_tf32_round_bit_exactly() {
    let forms = [
        ("rn", Round::Even, false, false),
        ("rz", Round::Zero, false, false),
        ("rn.satfinite", Round::Even, true, false),
        ("rz.satfinite", Round::Zero, true, false),
        ("rn.relu", Round::Even, false, true),
        ("rz.satfinite.relu", Round::Zero, true, true),
    ];
    let mut body = String::new();
    for (i, (mods, ..)) in forms.iter().enumerate() {
        body += &format!(
            "cvt.{mods}.tf32.f32 %r{r}, %f1;\nst.global.u32 [%rd4+{off}], %r{r};\n",
            r = i + 2,
            off = 4 * i
        );
    }
    let text = format!(
        "{HEADER}.visible .entry k(.param .u64 x, .param .u64 out, .param .u32 n)\n{{\n\
         .reg .pred %p<2>;\n.reg .b32 %r<16>;\n.reg .f32 %f<2>;\n.reg .b64 %rd<8>;\n\
         mov.u32 %r1, %ctaid.x;\nmov.u32 %r9, %ntid.x;\nmov.u32 %r10, %tid.x;\n\
         mad.lo.u32 %r1, %r1, %r9, %r10;\nld.param.u32 %r9, [n];\n\
         setp.ge.u32 %p1, %r1, %r9;\n@%p1 bra DONE;\n\
         ld.param.u64 %rd1, [x];\ncvta.to.global.u64 %rd1, %rd1;\n\
         mul.wide.u32 %rd2, %r1, 4;\nadd.s64 %rd1, %rd1, %rd2;\nld.global.f32 %f1, [%rd1];\n\
         ld.param.u64 %rd3, [out];\ncvta.to.global.u64 %rd3, %rd3;\n\
         mul.wide.u32 %rd2, %r1, {stride};\nadd.s64 %rd4, %rd3, %rd2;\n{body}\
         DONE:\nret;\n}}\n",
        stride = 4 * forms.len()
    );
    let m = Module::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let inputs = cvt_inputs();
    let mut sim = Sim::new();
    let x = sim.upload_u32(&inputs);
    let out = sim.zeros(inputs.len() * 4 * forms.len());
    let n = inputs.len() as u32;
    let args = [Arg::Ptr(x), Arg::Ptr(out), Arg::U32(n)];
    run(&mut sim, &m, "k", n.div_ceil(128), 128, &args);
    let got = sim.read_u32(out);
    for (f, &(mods, r, satfinite, relu)) in forms.iter().enumerate() {
        let col: Vec<u32> = got.iter().skip(f).step_by(forms.len()).copied().collect();
        check_cvt(&inputs, &col, r, satfinite, relu, &format!("cvt.{mods}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Errors: part of a warp, other forms
// ---------------------------------------------------------------------------------------------

/// Launches `kernel` of `m` (the text `ptx`) on one block of `threads`; it must fail with a
/// Warp error naming the mma and its line. `mma_one` and `mma_half` get zero matrices (and
/// `raw` 0), other kernels no arguments.
#[track_caller]
fn warp_error(m: &Module, ptx: &str, kernel: &str, threads: u32) -> SimError {
    let mut sim = Sim::new();
    let mut args = Vec::new();
    if kernel.starts_with("mma_") {
        args.extend((0..4).map(|_| Arg::Ptr(sim.zeros(16 * 8 * 4))));
    }
    if kernel == "mma_one" {
        args.push(Arg::I32(0));
    }
    let e = expect_error(
        &mut sim,
        m,
        kernel,
        launch1(1, threads),
        &args,
        ErrorKind::Warp,
    );
    let msg = e.to_string();
    assert!(
        msg.contains("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"),
        "{msg}"
    );
    let line = e.location().line.expect("the error names a line") as usize;
    let text = ptx.lines().nth(line - 1).unwrap_or_default();
    assert!(text.contains("mma.sync"), "{msg}\nline {line}: {text}");
    e
}

/// `mma` is `.aligned`: all 32 lanes of the warp execute it together. Half a warp executing it
/// (the other half having left the `if`), or a warp of 16 threads, is a Warp error naming the
/// instruction, its line and the missing lanes.
#[test]
fn mma_by_part_of_a_warp_is_a_warp_error() {
    let m = module();
    let e = warp_error(&m, PTX, "mma_half", 32);
    assert!(
        e.message().contains("0xffff0000") && e.message().contains("exited"),
        "{e}"
    );
    let e = warp_error(&m, PTX, "mma_one", 16);
    assert!(e.message().contains("has 16 threads"), "{e}");
    // The first warp of a block of 48 is whole; the second has 16 threads.
    let e = warp_error(&m, PTX, "mma_one", 48);
    assert!(e.message().contains("has 16 threads"), "{e}");
    assert_eq!(e.location().thread, Some([32, 0, 0]), "{e}");
}

/// A module of one kernel `k` with registers declared and `body`, its first line at line 11.
fn kernel(body: &str) -> String {
    format!(
        "{HEADER}.visible .entry k()\n{{\n.reg .pred %p<4>;\n.reg .b32 %r<16>;\n\
         .reg .f32 %f<16>;\n.reg .b64 %rd<8>;\n.reg .f64 %fd<8>;\n{body}\nret;\n}}\n"
    )
}

/// Each half of a warp at its own `mma` (an if and an else): they never meet.
#[test]
fn mma_halves_at_different_instructions_are_a_warp_error() {
    let mma = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%f1, %f2, %f3, %f4}, \
        {%r2, %r2, %r2, %r2}, {%r2, %r2}, {%f1, %f2, %f3, %f4};";
    let body = format!(
        "mov.u32 %r1, %laneid;\nmov.b32 %r2, 0f3F800000;\nmov.f32 %f1, 0f00000000;\n\
         mov.f32 %f2, %f1;\nmov.f32 %f3, %f1;\nmov.f32 %f4, %f1;\n\
         setp.lt.u32 %p1, %r1, 16;\n@%p1 bra A;\n{mma}\nbra J;\nA:\n{mma}\nJ:"
    );
    let text = kernel(&body);
    let m = Module::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let e = warp_error(&m, &text, "k", 32);
    assert!(
        e.message().contains("another warp-synchronous instruction"),
        "{e}"
    );
    // The same with every lane at one mma runs: 8 products of 1 * 1 in each element.
    let text = kernel(&body.replace("@%p1 bra A;", "bra A;"));
    let m = Module::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut sim = Sim::new();
    run(&mut sim, &m, "k", 1, 32, &[]);
}

/// Every `mma` form but m16n8k8 TF32 with f32 accumulators, the other warp matrix instructions,
/// and the conversions to TF32 the PTX ISA does not have, are Unsupported errors naming the
/// instruction and its line.
#[test]
fn other_mma_forms_and_tf32_conversions_are_unsupported() {
    // (instruction, operands); F4 stands for {%f1, %f2, %f3, %f4}.
    let r4 = "{%r1, %r2, %r3, %r4}";
    for (name, ops) in [
        ("mma.sync.aligned.m16n8k4.row.col.f32.tf32.tf32.f32", "F4, {%r1, %r2}, {%r3}, F4"),
        ("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", "F4, R4, {%r5, %r6}, F4"),
        ("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32", "F4, {%r1, %r2}, {%r3}, F4"),
        ("mma.sync.aligned.m16n8k8.row.col.f16.f16.f16.f16", "{%r1, %r2}, {%r3, %r4}, {%r5}, {%r1, %r2}"),
        ("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64", "{%fd1, %fd2}, {%fd3}, {%fd4}, {%fd1, %fd2}"),
        ("mma.sync.aligned.m16n8k32.row.col.satfinite.s32.s8.s8.s32", "R4, R4, {%r9, %r10}, R4"),
        ("mma.sync.aligned.m16n8k8.col.row.f32.tf32.tf32.f32", "F4, R4, {%r5, %r6}, F4"),
        ("mma.sp.sync.aligned.m16n8k16.row.col.f32.tf32.tf32.f32", "F4, R4, R4, F4, %r9, 0x0"),
        ("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32", "F4, R4, {%r5, %r6}, F4"),
        ("wmma.mma.sync.aligned.row.col.m16n16k8.f32.tf32.tf32.f32", "{%f1, %f2, %f3, %f4, %f5, %f6, %f7, %f8}, R4, R4, {%f1, %f2, %f3, %f4, %f5, %f6, %f7, %f8}"),
        ("ldmatrix.sync.aligned.m8n8.x4.shared.b16", "R4, [%rd1]"),
        ("cvt.rna.relu.tf32.f32", "%r1, %f1"),
        ("cvt.rm.tf32.f32", "%r1, %f1"),
        ("cvt.tf32.f32", "%r1, %f1"),
        ("cvt.rna.tf32.f16", "%r1, %r2"),
        ("cvt.rn.f32.tf32", "%f1, %r1"),
    ] {
        let ops = ops.replace("F4", "{%f1, %f2, %f3, %f4}").replace("R4", r4);
        let inst = format!("{name} {ops};");
        let e = Module::parse(&kernel(&inst))
            .unwrap_or_else(|e| panic!("{inst}: {e}"))
            .check()
            .expect_err(&inst);
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{inst}: {e}");
        assert!(e.message().contains(name), "{inst}: {e}");
        assert_eq!(e.location().line, Some(11), "{inst}: {e}");
    }
}

/// The operands of the one supported `mma` are four braced vectors of 4, 4, 2 and 4 registers.
#[test]
fn mma_with_malformed_operands_is_a_parse_error() {
    let form = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32";
    for ops in [
        "{%f1, %f2, %f3, %f4}, {%r1, %r2, %r3, %r4}, {%r5}, {%f1, %f2, %f3, %f4}",
        "{%f1, %f2, %f3, %f4}, {%r1, %r2, %r3, %r4}, {%r5, %r6}",
        "%f1, {%r1, %r2, %r3, %r4}, {%r5, %r6}, {%f1, %f2, %f3, %f4}",
    ] {
        let text = kernel(&format!("{form} {ops};"));
        let e = Module::parse(&text)
            .expect("parses")
            .check()
            .expect_err(ops);
        assert_eq!(e.kind(), ErrorKind::Parse, "{ops}: {e}");
        assert_eq!(e.location().line, Some(11), "{ops}: {e}");
    }
}

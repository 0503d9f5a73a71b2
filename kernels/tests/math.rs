//! SIMD exp and erf against f64 on dense sweeps, every ISA this CPU supports, edge values
//! (±inf, NaN, overflow and underflow thresholds, -0), odd lengths, threads and errors.

use smelt_kernels::cpu::math::{
    erf_reference, erf_slice, exp_reference, exp_slice, normal_cdf_reference, normal_cdf_slice,
};
use smelt_kernels::cpu::{CpuOptions, Isa};
use smelt_kernels::Error;

mod common;
use common::{all_options, assert_unsupported};

/// `n` evenly spaced points from `lo` to `hi`, both included.
fn sweep(lo: f64, hi: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (lo + (hi - lo) * i as f64 / (n - 1) as f64) as f32)
        .collect()
}

/// Bound on the max relative error of exp over [-87, 88]; measured 7.6e-8 (avx2), 9.9e-8
/// (portable without FMA).
const EXP_MAX_REL: f64 = 1.2e-7;
/// Bound on the max absolute error of erf over [-6, 6]; measured 9.4e-8 (avx2), 1.2e-7
/// (portable without FMA).
const ERF_MAX_ABS: f64 = 1.5e-7;
/// Bound on the max absolute error of the normal CDF over [-8, 8]; measured 8.8e-8 (avx512,
/// avx2), 9.8e-8 (portable without FMA).
const CDF_MAX_ABS: f64 = 1.2e-7;

/// The largest `(error, x)`; a NaN error wins (and then fails any bound).
fn worst_of(errors: impl Iterator<Item = (f64, f32)>) -> (f64, f32) {
    errors.fold(
        (0.0, 0.0),
        |a, b| if b.0.is_nan() || b.0 > a.0 { b } else { a },
    )
}

#[test]
fn exp_relative_error_over_the_normal_range() {
    let x = sweep(-87.0, 88.0, 1 << 24);
    let mut y = vec![0.0; x.len()];
    for isa in Isa::supported() {
        // NaN first, so that values an ISA leaves unwritten fail instead of passing with
        // another ISA's.
        y.fill(f32::NAN);
        exp_slice(&x, &mut y, &CpuOptions::threads(2).isa(isa)).unwrap();
        let (worst, at) = worst_of(x.iter().zip(&y).map(|(&xi, &yi)| {
            let want = exp_reference(xi as f64);
            ((yi as f64 - want).abs() / want, xi)
        }));
        eprintln!("exp {isa}: max relative error {worst:.3e} at x = {at}");
        assert!(
            worst <= EXP_MAX_REL,
            "exp {isa}: relative error {worst:e} at x = {at}"
        );
    }
}

/// The SIMD function `slice` over `n` evenly spaced points of `[lo, hi]` on every ISA this
/// CPU runs: its max absolute error against `reference` is at most `bound`.
fn assert_max_abs_error(
    name: &str,
    slice: fn(&[f32], &mut [f32], &CpuOptions) -> smelt_kernels::Result<()>,
    reference: fn(f64) -> f64,
    (lo, hi): (f64, f64),
    bound: f64,
) {
    let x = sweep(lo, hi, 1 << 23);
    let mut y = vec![0.0; x.len()];
    for isa in Isa::supported() {
        y.fill(f32::NAN);
        slice(&x, &mut y, &CpuOptions::threads(2).isa(isa)).unwrap();
        let (worst, at) = worst_of(
            x.iter()
                .zip(&y)
                .map(|(&xi, &yi)| ((yi as f64 - reference(xi as f64)).abs(), xi)),
        );
        eprintln!("{name} {isa}: max absolute error {worst:.3e} at x = {at}");
        assert!(
            worst <= bound,
            "{name} {isa}: absolute error {worst:e} at x = {at}"
        );
    }
}

#[test]
fn erf_absolute_error_over_minus_6_to_6() {
    assert_max_abs_error("erf", erf_slice, erf_reference, (-6.0, 6.0), ERF_MAX_ABS);
}

#[test]
fn normal_cdf_absolute_error_over_minus_8_to_8() {
    assert_max_abs_error(
        "normal_cdf",
        normal_cdf_slice,
        normal_cdf_reference,
        (-8.0, 8.0),
        CDF_MAX_ABS,
    );
}

#[test]
fn normal_cdf_edges_saturate_and_keep_nan() {
    for opts in all_options() {
        let x = [
            f32::NEG_INFINITY,
            -1e30,
            -5.5001,
            -0.0,
            0.0,
            5.5001,
            1e30,
            f32::INFINITY,
            f32::NAN,
        ];
        let mut y = vec![f32::NAN; x.len()];
        normal_cdf_slice(&x, &mut y, &opts).unwrap();
        let what = format!("{opts:?}: normal_cdf({x:?}) = {y:?}");
        assert_eq!(&y[..3], &[0.0; 3], "{what}");
        assert_eq!(&y[3..5], &[0.5, 0.5], "{what}");
        assert_eq!(&y[5..8], &[1.0; 3], "{what}");
        assert!(y[8].is_nan(), "{what}");
        // Just inside the clamp the tail is still computed: Phi(-5.5) = 1.9e-8.
        normal_cdf_slice(&[-5.5, -5.4], &mut y[..2], &opts).unwrap();
        for (xi, &yi) in [-5.5f64, -5.4].iter().zip(&y[..2]) {
            let want = normal_cdf_reference(*xi);
            assert!(
                yi > 0.0 && (yi as f64 - want).abs() <= CDF_MAX_ABS,
                "{what}"
            );
        }
    }
}

#[test]
fn erf_reference_matches_known_values() {
    // erf to 16 digits (DLMF / mpmath).
    for (x, want) in [
        (0.0, 0.0),
        (0.1, 0.1124629160182849),
        (0.5, 0.5204998778130465),
        (1.0, 0.8427007929497149),
        (2.0, 0.9953222650189527),
        (3.0, 0.9999779095030014),
        (-1.5, -0.9661051464753108),
        (5.0, 0.9999999999984626),
    ] {
        let got = erf_reference(x);
        assert!(
            (got - want).abs() < 1e-15,
            "erf_reference({x}) = {got}, want {want}"
        );
    }
}

fn exp_of(x: &[f32], opts: &CpuOptions) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    exp_slice(x, &mut y, opts).unwrap();
    y
}

fn erf_of(x: &[f32], opts: &CpuOptions) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    erf_slice(x, &mut y, opts).unwrap();
    y
}

#[test]
fn exp_edges_overflow_to_inf_underflow_to_zero_and_keep_nan() {
    let below_ln_max = 88.72283f32; // largest f32 below ln(f32::MAX)
    let above_ln_max = 88.72284f32;
    for opts in all_options() {
        let x = [
            f32::NEG_INFINITY,
            -1e30,
            -104.0,
            -88.0,
            0.0,
            below_ln_max,
            above_ln_max,
            100.0,
            f32::INFINITY,
            f32::NAN,
        ];
        let y = exp_of(&x, &opts);
        let what = format!("{opts:?}: exp({x:?}) = {y:?}");
        assert_eq!(&y[..4], &[0.0; 4], "{what}");
        assert_eq!(y[4], 1.0, "{what}");
        assert!(y[5].is_finite(), "{what}");
        let rel = (y[5] as f64 / exp_reference(below_ln_max as f64) - 1.0).abs();
        assert!(
            rel <= EXP_MAX_REL,
            "{what}: relative error {rel:e} near f32::MAX"
        );
        assert!(y[6..9].iter().all(|&v| v == f32::INFINITY), "{what}");
        assert!(y[9].is_nan(), "{what}");
        // Subnormal results: right to within the subnormal spacing (1.4e-45).
        for x in [-87.4f32, -87.6] {
            let got = exp_of(&[x], &opts)[0] as f64;
            let want = exp_reference(x as f64);
            assert!(
                (got - want).abs() <= 2e-45 + EXP_MAX_REL * want,
                "{opts:?}: exp({x}) = {got:e}, want {want:e}"
            );
        }
    }
}

#[test]
fn erf_edges_saturate_keep_sign_and_nan() {
    for opts in all_options() {
        let x = [
            f32::NEG_INFINITY,
            -10.0,
            -0.0,
            0.0,
            10.0,
            f32::INFINITY,
            f32::NAN,
        ];
        let y = erf_of(&x, &opts);
        let what = format!("{opts:?}: erf({x:?}) = {y:?}");
        assert_eq!(&y[..2], &[-1.0, -1.0], "{what}");
        assert!(y[2] == 0.0 && y[2].is_sign_negative(), "{what}");
        assert!(y[3] == 0.0 && y[3].is_sign_positive(), "{what}");
        assert_eq!(&y[4..6], &[1.0, 1.0], "{what}");
        assert!(y[6].is_nan(), "{what}");
        // Odd symmetry holds exactly.
        let x = sweep(0.0, 5.0, 1001);
        let neg: Vec<f32> = x.iter().map(|v| -v).collect();
        let (pos, negs) = (erf_of(&x, &opts), erf_of(&neg, &opts));
        for (i, (&p, &n)) in pos.iter().zip(&negs).enumerate() {
            assert_eq!(p, -n, "{opts:?}: erf(-x) != -erf(x) at x = {}", x[i]);
        }
    }
}

#[test]
fn odd_lengths_and_threads_match_the_reference() {
    for opts in all_options() {
        for len in (0..40).chain([127, 1000, 40_001, 100_003]) {
            let x = sweep(-5.0, 5.0, len.max(2))[..len].to_vec();
            let (ex, er) = (exp_of(&x, &opts), erf_of(&x, &opts));
            for (i, &xi) in x.iter().enumerate() {
                let want = exp_reference(xi as f64);
                let rel = (ex[i] as f64 - want).abs() / want;
                assert!(
                    rel <= EXP_MAX_REL,
                    "{opts:?} len {len}: exp({xi}) = {}",
                    ex[i]
                );
                let abs = (er[i] as f64 - erf_reference(xi as f64)).abs();
                assert!(
                    abs <= ERF_MAX_ABS,
                    "{opts:?} len {len}: erf({xi}) = {}",
                    er[i]
                );
            }
        }
    }
}

#[test]
fn slice_errors_name_the_lengths() {
    let opts = CpuOptions::default();
    let x = [0.0f32; 5];
    let mut y = [0.0f32; 4];
    for err in [
        exp_slice(&x, &mut y, &opts).unwrap_err(),
        erf_slice(&x, &mut y, &opts).unwrap_err(),
        normal_cdf_slice(&x, &mut y, &opts).unwrap_err(),
    ] {
        assert!(matches!(err, Error::Shape { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains('5') && msg.contains('4') && msg.contains("_slice"),
            "{msg}"
        );
    }
    assert_unsupported(exp_slice(&x, &mut [0.0; 5], &CpuOptions::threads(0)));
}

#[test]
fn unsupported_isa_is_an_error() {
    for isa in Isa::ALL.into_iter().filter(|i| !i.is_supported()) {
        let opts = CpuOptions::threads(1).isa(isa);
        assert_unsupported(exp_slice(&[1.0], &mut [0.0], &opts));
    }
}

//! GELU, tanh and ReLU and their backwards against f64: every ISA this CPU supports, 1 and 2
//! threads, odd lengths, a dense sweep of GELU's input range, edge values, and the errors.

use smelt_kernels::cpu::activation::{
    gelu, gelu_backward, gelu_backward_reference, gelu_reference, relu, relu_backward, tanh,
    tanh_backward,
};
use smelt_kernels::cpu::{CpuOptions, Isa};
use smelt_kernels::Result;

mod common;
use common::{all_options, assert_shape_error, assert_unsupported, invalid_options, random};

const LENS: [usize; 10] = [1, 2, 7, 8, 15, 17, 33, 127, 387, 100_003];

/// `len` inputs in [-6, 6), plus every tenth of [-10, 10] when long enough.
fn inputs(len: usize, seed: u64) -> Vec<f32> {
    let mut x: Vec<f32> = random(len, seed).iter().map(|v| 6.0 * v).collect();
    if len > 201 {
        for (i, v) in x.iter_mut().take(201).enumerate() {
            *v = (i as f32 - 100.0) / 10.0;
        }
    }
    x
}

/// Applies a unary kernel into a NaN-filled output.
fn unary(f: impl Fn(&[f32], &mut [f32]) -> Result<()>, x: &[f32]) -> Vec<f32> {
    let mut y = vec![f32::NAN; x.len()];
    f(x, &mut y).unwrap();
    y
}

/// Applies a backward kernel into a NaN-filled output.
fn binary(f: impl Fn(&[f32], &[f32], &mut [f32]) -> Result<()>, a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y = vec![f32::NAN; a.len()];
    f(a, b, &mut y).unwrap();
    y
}

/// Every `got[i]` within `tol(i)` of `want[i]`.
fn assert_within(got: &[f32], want: &[f32], tol: impl Fn(usize) -> f64, what: &str) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs();
        assert!(
            err <= tol(i),
            "{what}: element {i}: got {g:e}, want {w:e} (error {err:e}, bound {:e})",
            tol(i)
        );
    }
}

#[test]
fn gelu_matches_f64() {
    for opts in all_options() {
        for n in LENS {
            let x = inputs(n, n as u64);
            let y = unary(|x, y| gelu(x, y, &opts), &x);
            let want = unary(gelu_reference, &x);
            // erf's absolute error (1.5e-7) scaled by x / 2, plus a few roundings.
            let tol = |i: usize| 1e-7 * x[i].abs() as f64 + 3e-7 * want[i].abs() as f64;
            assert_within(&y, &want, tol, &format!("gelu n = {n} {opts:?}"));
        }
    }
}

#[test]
fn gelu_backward_matches_f64() {
    for opts in all_options() {
        for n in LENS {
            let x = inputs(n, n as u64);
            let dy = random(n, n as u64 + 1);
            let dx = binary(|x, dy, dx| gelu_backward(x, dy, dx, &opts), &x, &dy);
            let want = binary(gelu_backward_reference, &x, &dy);
            let tol = |i: usize| 2e-7 * dy[i].abs() as f64 + 3e-7 * want[i].abs() as f64;
            assert_within(&dx, &want, tol, &format!("gelu_backward n = {n} {opts:?}"));
        }
    }
}

#[test]
fn gelu_backward_is_the_derivative_of_gelu() {
    let opts = CpuOptions::default();
    let x: Vec<f64> = (-40..=40).map(|i| i as f64 / 8.0 + 0.01).collect();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let dx = binary(
        |x, dy, dx| gelu_backward(x, dy, dx, &opts),
        &x32,
        &vec![1.0; x.len()],
    );
    let h = 1e-3;
    let g = |v: f64| {
        let mut y = [0.0f32; 2];
        gelu_reference(&[(v + h) as f32, (v - h) as f32], &mut y).unwrap();
        (y[0] as f64 - y[1] as f64) / (2.0 * h)
    };
    for (i, &v) in x.iter().enumerate() {
        assert!(
            (dx[i] as f64 - g(v)).abs() < 1e-3,
            "x = {v}: {} vs {}",
            dx[i],
            g(v)
        );
    }
}

#[test]
fn gelu_edges() {
    for opts in all_options() {
        let x = [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
            f32::NAN,
        ];
        let y = unary(|x, y| gelu(x, y, &opts), &x);
        assert_eq!(&y[..3], &[0.0, 0.0, f32::INFINITY], "{opts:?}");
        assert!(
            y[3].is_nan() || y[3] == 0.0,
            "{opts:?}: gelu(-inf) = {}",
            y[3]
        );
        assert_eq!(y[4], 1e30, "{opts:?}");
        assert_eq!(y[5], 0.0, "{opts:?}");
        assert!(y[6].is_nan(), "{opts:?}");
        let dx = binary(
            |x, dy, dx| gelu_backward(x, dy, dx, &opts),
            &x[..2],
            &[1.0, 1.0],
        );
        assert_eq!(dx, vec![0.5, 0.5], "{opts:?}");
    }
}

#[test]
fn tanh_and_relu_match_f64() {
    for opts in all_options() {
        for n in LENS {
            let x = inputs(n, n as u64);
            let dy = random(n, n as u64 + 2);
            let what = format!("n = {n} {opts:?}");

            let y = unary(|x, y| tanh(x, y, &opts), &x);
            let want: Vec<f32> = x.iter().map(|&v| (v as f64).tanh() as f32).collect();
            assert_within(&y, &want, |i| 2.5e-7 * want[i].abs() as f64, &what);

            let dx = binary(|y, dy, dx| tanh_backward(y, dy, dx, &opts), &y, &dy);
            let want: Vec<f32> = (0..n)
                .map(|i| (dy[i] as f64 * (1.0 - (y[i] as f64).powi(2))) as f32)
                .collect();
            let tol = |i: usize| 2e-7 * dy[i].abs() as f64 + 2e-7 * want[i].abs() as f64;
            assert_within(&dx, &want, tol, &what);

            let y = unary(|x, y| relu(x, y, &opts), &x);
            let want: Vec<f32> = x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect();
            assert_eq!(y, want, "{what}");

            let dx = binary(|x, dy, dx| relu_backward(x, dy, dx, &opts), &x, &dy);
            let want: Vec<f32> = (0..n)
                .map(|i| if x[i] <= 0.0 { 0.0 } else { dy[i] })
                .collect();
            assert_eq!(dx, want, "{what}");
        }
    }
}

#[test]
fn relu_keeps_nan_and_zeroes_negative_zero() {
    let opts = CpuOptions::default();
    let y = unary(|x, y| relu(x, y, &opts), &[f32::NAN, -0.0, -1.0, 2.0]);
    assert!(y[0].is_nan());
    assert_eq!(
        y[1..].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        [0, 0, 2f32.to_bits()]
    );
    let dx = binary(
        |x, dy, dx| relu_backward(x, dy, dx, &opts),
        &[0.0, 1e-30],
        &[5.0, 5.0],
    );
    assert_eq!(dx, vec![0.0, 5.0]);
}

#[test]
fn relu_backward_passes_the_gradient_at_nan() {
    // PyTorch's threshold_backward zeroes where x <= 0, which is false for NaN.
    for opts in all_options() {
        let x = [f32::NAN, -f32::NAN, -0.0, -1.0, 2.0, f32::INFINITY];
        let dx = binary(
            |x, dy, dx| relu_backward(x, dy, dx, &opts),
            &x,
            &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        );
        assert_eq!(dx, vec![3.0, 4.0, 0.0, 0.0, 7.0, 8.0], "{opts:?}");
    }
}

#[test]
fn two_threads_agree_with_one() {
    let n = 200_003;
    let x = inputs(n, 3);
    let dy = random(n, 4);
    for isa in Isa::supported() {
        let run = |threads: usize| {
            let opts = CpuOptions::threads(threads).isa(isa);
            [
                unary(|x, y| gelu(x, y, &opts), &x),
                binary(|x, dy, dx| gelu_backward(x, dy, dx, &opts), &x, &dy),
                unary(|x, y| tanh(x, y, &opts), &x),
                binary(|y, dy, dx| tanh_backward(y, dy, dx, &opts), &x, &dy),
            ]
        };
        assert!(run(1) == run(2), "{isa}");
    }
}

#[test]
fn unequal_lengths_are_errors_naming_them() {
    let opts = CpuOptions::default();
    let (a, mut out) = ([0.0f32; 5], [0.0f32; 5]);
    assert_shape_error(
        gelu(&a[..4], &mut out, &opts),
        "gelu",
        &["y has 5", "x has 4"],
    );
    assert_shape_error(
        tanh(&a, &mut out[..3], &opts),
        "tanh",
        &["y has 3", "x has 5"],
    );
    assert_shape_error(relu(&a[..1], &mut out, &opts), "relu", &["y has 5"]);
    assert_shape_error(
        gelu_backward(&a, &a[..2], &mut out, &opts),
        "gelu_backward",
        &["dy has 2", "x has 5"],
    );
    assert_shape_error(
        tanh_backward(&a, &a, &mut out[..4], &opts),
        "tanh_backward",
        &["dx has 4", "y has 5"],
    );
    assert_shape_error(
        relu_backward(&a[..3], &a, &mut out, &opts),
        "relu_backward",
        &["dy has 5", "x has 3"],
    );
    assert_shape_error(
        gelu_reference(&a, &mut out[..1]),
        "gelu_reference",
        &["y has 1"],
    );
    assert_shape_error(
        gelu_backward_reference(&a, &a, &mut out[..1]),
        "gelu_backward_reference",
        &["dx has 1"],
    );
    gelu(&[], &mut [], &CpuOptions::threads(2)).unwrap();
}

#[test]
fn unsupported_isa_and_zero_threads_are_errors() {
    let x = [0.0f32; 4];
    for opts in invalid_options() {
        let mut y = [0.0f32; 4];
        for result in [
            gelu(&x, &mut y, &opts),
            gelu_backward(&x, &x, &mut y, &opts),
            tanh(&x, &mut y, &opts),
            tanh_backward(&x, &x, &mut y, &opts),
            relu(&x, &mut y, &opts),
            relu_backward(&x, &x, &mut y, &opts),
        ] {
            assert_unsupported(result);
        }
    }
}

//! Elementwise add, add_assign and scale (bit for bit against plain loops), the f64 dot
//! product and the column sum (against f64, the same on 1 and 2 threads)
//! on every ISA this CPU supports, odd sizes, and the errors.

use smelt_kernels::cpu::elementwise::{
    add, add_assign, mul_sum, scale, sum_rows, sum_rows_reference,
};
use smelt_kernels::cpu::{CpuOptions, Isa};

mod common;
use common::{all_options, assert_shape_error, assert_unsupported, invalid_options, random};

const LENS: [usize; 10] = [0, 1, 2, 7, 8, 17, 33, 127, 387, 100_003];
const COLS: [usize; 9] = [1, 2, 7, 8, 17, 33, 127, 387, 768];
const ROWS: [usize; 4] = [0, 1, 3, 67];

#[test]
fn add_add_assign_and_scale_are_exact() {
    for opts in all_options() {
        for n in LENS {
            let (a, b) = (random(n, n as u64), random(n, n as u64 + 1));
            let what = format!("n = {n} {opts:?}");

            let mut out = vec![f32::NAN; n];
            add(&a, &b, &mut out, &opts).unwrap();
            let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
            assert_eq!(out, want, "add {what}");

            let mut acc = a.clone();
            add_assign(&mut acc, &b, &opts).unwrap();
            assert_eq!(acc, want, "add_assign {what}");

            let mut out = vec![f32::NAN; n];
            scale(&a, -0.3, &mut out, &opts).unwrap();
            let want: Vec<f32> = a.iter().map(|x| -0.3 * x).collect();
            assert_eq!(out, want, "scale {what}");
        }
    }
}

#[test]
fn mul_sum_is_the_f64_dot_product() {
    for n in LENS {
        let (a, b) = (random(n, 3), random(n, 4));
        let got = mul_sum(&a, &b).unwrap();
        let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        let size: f64 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| (x as f64 * y as f64).abs())
            .sum();
        assert!(
            (got - want).abs() <= 1e-14 * size,
            "n = {n}: {got} vs {want}"
        );
        assert_eq!(got, mul_sum(&a, &b).unwrap(), "n = {n}");
    }
    assert_eq!(
        mul_sum(&[1.5, 2.0, 1e8], &[2.0, -0.25, 1e8]).unwrap(),
        2.5 + 1e16
    );
}

fn column_sums(x: &[f32], rows: usize, cols: usize, opts: &CpuOptions) -> Vec<f32> {
    let mut out = vec![f32::NAN; cols];
    sum_rows(x, &mut out, rows, cols, opts).unwrap();
    out
}

#[test]
fn sum_rows_matches_f64() {
    for opts in all_options() {
        for cols in COLS {
            for rows in ROWS.into_iter().chain([1000]) {
                let x = random(rows * cols, (rows * 1000 + cols) as u64);
                let out = column_sums(&x, rows, cols, &opts);
                let mut want = vec![f32::NAN; cols];
                sum_rows_reference(&x, &mut want, rows, cols).unwrap();
                for c in 0..cols {
                    let size: f64 = (0..rows).map(|r| x[r * cols + c].abs() as f64).sum();
                    // Rows are added in order in f32: an error growing like sqrt(rows) in
                    // practice, well inside the worst case rows * eps.
                    let tol = 1e-7 * (rows as f64).sqrt() * size + 1e-7 * want[c].abs() as f64;
                    let err = (out[c] as f64 - want[c] as f64).abs();
                    assert!(
                        err <= tol,
                        "{rows}x{cols} {opts:?}: column {c}: {} vs {}",
                        out[c],
                        want[c]
                    );
                }
            }
        }
    }
}

#[test]
fn sum_rows_on_two_threads_agrees_with_one() {
    for (rows, cols) in [(64, 771), (1024, 768), (20, 3000)] {
        let x = random(rows * cols, 9);
        for isa in Isa::supported() {
            let one = column_sums(&x, rows, cols, &CpuOptions::threads(1).isa(isa));
            let two = column_sums(&x, rows, cols, &CpuOptions::threads(2).isa(isa));
            assert_eq!(one, two, "{isa} {rows}x{cols}");
        }
    }
}

#[test]
fn bad_lengths_are_errors_naming_them() {
    let opts = CpuOptions::default();
    let (a, mut out) = (vec![1.0f32; 12], vec![0.0f32; 12]);
    assert_shape_error(
        add(&a, &a[..3], &mut out, &opts),
        "add",
        &["b has 3", "a has 12"],
    );
    assert_shape_error(add(&a, &a, &mut out[..5], &opts), "add", &["out has 5"]);
    assert_shape_error(
        add_assign(&mut out, &a[..1], &opts),
        "add_assign",
        &["b has 1", "acc has 12"],
    );
    assert_shape_error(
        scale(&a, 2.0, &mut out[..2], &opts),
        "scale",
        &["out has 2"],
    );
    assert_shape_error(mul_sum(&a, &a[..11]), "mul_sum", &["b has 11", "a has 12"]);
    assert_shape_error(
        sum_rows(&a[..11], &mut out[..4], 3, 4, &opts),
        "sum_rows",
        &["x has 11", "3 x 4"],
    );
    assert_shape_error(
        sum_rows(&a, &mut out[..3], 3, 4, &opts),
        "sum_rows",
        &["out has 3", "cols = 4"],
    );
    assert_shape_error(
        sum_rows(&a, &mut out, usize::MAX, 4, &opts),
        "sum_rows",
        &["overflows"],
    );
    assert_shape_error(
        sum_rows_reference(&a, &mut out[..5], 3, 4),
        "sum_rows_reference",
        &["out has 5"],
    );
    assert!(out.iter().all(|&v| v == 0.0), "an error wrote {out:?}");
}

#[test]
fn unsupported_isa_and_zero_threads_are_errors() {
    let x = [0.0f32; 4];
    for opts in invalid_options() {
        let mut y = [0.0f32; 4];
        for result in [
            add(&x, &x, &mut y, &opts),
            add_assign(&mut y, &x, &opts),
            scale(&x, 1.0, &mut y, &opts),
            sum_rows(&x, &mut y[..2], 2, 2, &opts),
        ] {
            assert_unsupported(result);
        }
    }
}

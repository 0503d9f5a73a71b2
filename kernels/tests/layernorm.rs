//! Layer norm forward and backward against the f64 references: every ISA this CPU supports,
//! 1 and 2 threads, odd column counts, rows with a large common offset, thread-count
//! independence of the column sums, overwriting of the outputs, and the errors.

use smelt_kernels::cpu::layernorm::{
    layer_norm, layer_norm_backward, layer_norm_backward_reference, layer_norm_reference,
    layer_norm_residual,
};
use smelt_kernels::cpu::{CpuOptions, Isa};

mod common;
use common::{all_options, assert_shape_error, assert_unsupported, invalid_options, random};

const COLS: [usize; 11] = [1, 2, 7, 8, 15, 17, 33, 127, 128, 387, 768];
const ROWS: [usize; 3] = [1, 3, 10];
/// Common offsets added to the rows: the two-pass variance must not lose them.
const OFFSETS: [f32; 2] = [0.0, 100.0];
const EPS: f32 = 1e-12;

/// Every option set, column count, row count of `rows` and offset, as
/// `(opts, rows, cols, offset)`.
fn cases(rows: impl Iterator<Item = usize> + Clone) -> Vec<(CpuOptions, usize, usize, f32)> {
    let mut cases = Vec::new();
    for opts in all_options() {
        for cols in COLS {
            for rows in rows.clone() {
                cases.extend(OFFSETS.map(|offset| (opts, rows, cols, offset)));
            }
        }
    }
    cases
}

/// Inputs of one problem: `x` (`rows x cols`, random plus `offset`), `gamma` and `beta`.
struct Inputs {
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    rows: usize,
    cols: usize,
}

fn inputs(rows: usize, cols: usize, offset: f32, seed: u64) -> Inputs {
    Inputs {
        rows,
        cols,
        x: random(rows * cols, seed)
            .iter()
            .map(|v| 3.0 * v + offset)
            .collect(),
        gamma: random(cols, seed + 1).iter().map(|v| 1.0 + v).collect(),
        beta: random(cols, seed + 2),
    }
}

/// `(y, mean, rstd)` of the kernel.
fn forward(inp: &Inputs, opts: &CpuOptions) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (rows, cols) = (inp.rows, inp.cols);
    let mut y = vec![f32::NAN; rows * cols];
    let (mut mean, mut rstd) = (vec![f32::NAN; rows], vec![f32::NAN; rows]);
    let saved = Some((&mut mean[..], &mut rstd[..]));
    layer_norm(
        &inp.x, &inp.gamma, &inp.beta, &mut y, saved, rows, cols, EPS, opts,
    )
    .unwrap();
    (y, mean, rstd)
}

#[test]
fn forward_matches_f64_for_every_size() {
    for (opts, rows, cols, offset) in cases(ROWS.into_iter()) {
        let inp = inputs(rows, cols, offset, (rows * 1000 + cols) as u64);
        let (y, mean, rstd) = forward(&inp, &opts);
        let mut want = vec![f32::NAN; rows * cols];
        let (mut want_mean, mut want_rstd) = (vec![0.0; rows], vec![0.0; rows]);
        let saved = Some((&mut want_mean[..], &mut want_rstd[..]));
        layer_norm_reference(
            &inp.x, &inp.gamma, &inp.beta, &mut want, saved, rows, cols, EPS,
        )
        .unwrap();
        let what = format!("{rows}x{cols} offset {offset} {opts:?}");
        for r in 0..rows {
            // The f32 mean is off by a few ulps of the offset, which the centring
            // turns into an absolute error of xhat of that size times rstd.
            let mean_err = 1e-6 * (want_mean[r].abs() as f64 + 1.0);
            assert!(
                (mean[r] as f64 - want_mean[r] as f64).abs() <= mean_err,
                "{what}: mean[{r}] {} vs {}",
                mean[r],
                want_mean[r]
            );
            let rstd_err = 1e-6 * want_rstd[r] as f64 * (1.0 + mean_err);
            assert!(
                (rstd[r] as f64 - want_rstd[r] as f64).abs() <= rstd_err,
                "{what}: rstd[{r}] {} vs {}",
                rstd[r],
                want_rstd[r]
            );
            for j in 0..cols {
                let k = r * cols + j;
                let xhat = (inp.x[k] as f64 - want_mean[r] as f64) * want_rstd[r] as f64;
                let gamma = inp.gamma[j].abs() as f64;
                let tol = 2e-6 * (gamma * (xhat.abs() + 1.0) + inp.beta[j].abs() as f64)
                    + gamma * mean_err * want_rstd[r] as f64;
                let err = (y[k] as f64 - want[k] as f64).abs();
                assert!(
                    err <= tol,
                    "{what}: y[{k}] = {}, want {} (error {err:e}, bound {tol:e})",
                    y[k],
                    want[k]
                );
            }
        }
    }
}

#[test]
fn forward_without_saved_statistics_gives_the_same_output() {
    let (rows, cols) = (5, 33);
    let inp = inputs(rows, cols, 1.0, 3);
    for opts in all_options() {
        let (with, _, _) = forward(&inp, &opts);
        let mut y = vec![f32::NAN; rows * cols];
        layer_norm(
            &inp.x, &inp.gamma, &inp.beta, &mut y, None, rows, cols, EPS, &opts,
        )
        .unwrap();
        assert_eq!(y, with, "{opts:?}");
    }
}

/// `layer_norm_residual` against `layer_norm` of the sum added in f32 beforehand: the same
/// sum, statistics and output bit for bit, with the sum kept or not, on every size, offset
/// and option set, and on rows that take the f64 path (sums that overflow f32, infinities).
#[test]
fn residual_form_is_layer_norm_of_the_sum() {
    let mut problems: Vec<(CpuOptions, Inputs, Vec<f32>)> = cases(ROWS.into_iter())
        .into_iter()
        .map(|(opts, rows, cols, offset)| {
            let seed = (rows * 1000 + cols) as u64;
            let residual = random(rows * cols, seed + 7);
            (opts, inputs(rows, cols, offset, seed), residual)
        })
        .collect();
    for opts in all_options() {
        let mut inp = inputs(3, 17, 0.0, 5);
        let mut residual = random(3 * 17, 6);
        inp.x[17..34].fill(1e38);
        residual[17..34].fill(1e38);
        inp.x[40] = f32::INFINITY;
        problems.push((opts, inp, residual));
    }
    for (opts, inp, residual) in &problems {
        let (rows, cols) = (inp.rows, inp.cols);
        let summed = Inputs {
            x: inp.x.iter().zip(residual).map(|(a, b)| a + b).collect(),
            gamma: inp.gamma.clone(),
            beta: inp.beta.clone(),
            rows,
            cols,
        };
        let (want_y, want_mean, want_rstd) = forward(&summed, opts);
        for keep_sum in [false, true] {
            let mut y = vec![f32::NAN; rows * cols];
            let mut sum = vec![f32::NAN; rows * cols];
            let (mut mean, mut rstd) = (vec![f32::NAN; rows], vec![f32::NAN; rows]);
            layer_norm_residual(
                &inp.x,
                residual,
                keep_sum.then_some(&mut sum[..]),
                &inp.gamma,
                &inp.beta,
                &mut y,
                Some((&mut mean[..], &mut rstd[..])),
                rows,
                cols,
                EPS,
                opts,
            )
            .unwrap();
            let what = format!("{rows}x{cols} keep_sum {keep_sum} {opts:?}");
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want_y), "{what}: y");
            assert_eq!(bits(&mean), bits(&want_mean), "{what}: mean");
            assert_eq!(bits(&rstd), bits(&want_rstd), "{what}: rstd");
            if keep_sum {
                assert_eq!(bits(&sum), bits(&summed.x), "{what}: sum");
            }
        }
    }
}

/// `(dx, dgamma, dbeta)` of the kernel, with the outputs first filled with NaN (they must be
/// overwritten).
fn backward(
    inp: &Inputs,
    dy: &[f32],
    mean: &[f32],
    rstd: &[f32],
    opts: &CpuOptions,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (rows, cols) = (inp.rows, inp.cols);
    let mut dx = vec![f32::NAN; rows * cols];
    let (mut dgamma, mut dbeta) = (vec![f32::NAN; cols], vec![f32::NAN; cols]);
    layer_norm_backward(
        dy,
        &inp.x,
        &inp.gamma,
        mean,
        rstd,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
        rows,
        cols,
        opts,
    )
    .unwrap();
    (dx, dgamma, dbeta)
}

/// `(dx, dgamma, dbeta)` of the f64 backward reference at the saved `mean` and `rstd`.
fn backward_reference(
    inp: &Inputs,
    dy: &[f32],
    mean: &[f32],
    rstd: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (rows, cols) = (inp.rows, inp.cols);
    let mut dx = vec![0.0; rows * cols];
    let (mut dgamma, mut dbeta) = (vec![0.0; cols], vec![0.0; cols]);
    layer_norm_backward_reference(
        dy,
        &inp.x,
        &inp.gamma,
        mean,
        rstd,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
        rows,
        cols,
    )
    .unwrap();
    (dx, dgamma, dbeta)
}

#[test]
fn backward_matches_f64_for_every_size() {
    for (opts, rows, cols, offset) in cases(ROWS.into_iter().chain([67])) {
        let seed = (rows * 1000 + cols) as u64;
        let inp = inputs(rows, cols, offset, seed);
        let (_, mean, rstd) = forward(&inp, &opts);
        let dy = random(rows * cols, seed + 7);
        let (dx, dgamma, dbeta) = backward(&inp, &dy, &mean, &rstd, &opts);
        let (want_dx, want_dgamma, want_dbeta) = backward_reference(&inp, &dy, &mean, &rstd);
        let what = format!("{rows}x{cols} offset {offset} {opts:?}");
        let xhat =
            |r: usize, j: usize| (inp.x[r * cols + j] as f64 - mean[r] as f64) * rstd[r] as f64;
        for r in 0..rows {
            // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) cancels: bound the
            // error by the magnitudes that enter it.
            let g = |j: usize| (dy[r * cols + j] * inp.gamma[j]).abs() as f64;
            let mean_g = (0..cols).map(g).sum::<f64>() / cols as f64;
            let mean_gx = (0..cols).map(|j| g(j) * xhat(r, j).abs()).sum::<f64>() / cols as f64;
            for j in 0..cols {
                let k = r * cols + j;
                let size = rstd[r] as f64
                    * (g(j) + mean_g + xhat(r, j).abs() * mean_gx)
                    * (1.0 + mean[r].abs() as f64 * rstd[r] as f64);
                let err = (dx[k] as f64 - want_dx[k] as f64).abs();
                assert!(
                    err <= 2e-6 * size,
                    "{what}: dx[{k}] = {}, want {} (error {err:e}, size {size:e})",
                    dx[k],
                    want_dx[k]
                );
            }
        }
        for j in 0..cols {
            // Sums over rows in f32: bounded by the sum of magnitudes.
            let abs_g: f64 = (0..rows)
                .map(|r| (dy[r * cols + j] as f64 * xhat(r, j)).abs())
                .sum();
            let abs_b: f64 = (0..rows).map(|r| dy[r * cols + j].abs() as f64).sum();
            let scale = 1e-6 * (1.0 + (rows as f64).sqrt());
            let centring = 1.0 + mean.iter().fold(0.0f32, |a, m| a.max(m.abs())) as f64;
            assert!(
                (dgamma[j] as f64 - want_dgamma[j] as f64).abs() <= scale * abs_g * centring,
                "{what}: dgamma[{j}] = {}, want {}",
                dgamma[j],
                want_dgamma[j]
            );
            assert!(
                (dbeta[j] as f64 - want_dbeta[j] as f64).abs() <= scale * abs_b,
                "{what}: dbeta[{j}] = {}, want {}",
                dbeta[j],
                want_dbeta[j]
            );
        }
    }
}

#[test]
fn two_threads_agree_with_one_bit_for_bit() {
    // Large enough that two threads really split the rows, then the columns.
    for (rows, cols) in [(300, 387), (512, 768), (3000, 17)] {
        let inp = inputs(rows, cols, 0.5, 11);
        let dy = random(rows * cols, 12);
        for isa in Isa::supported() {
            let (one, two) = (
                CpuOptions::threads(1).isa(isa),
                CpuOptions::threads(2).isa(isa),
            );
            let f1 = forward(&inp, &one);
            let f2 = forward(&inp, &two);
            assert!(f1 == f2, "{isa} {rows}x{cols}: forward differs");
            let b1 = backward(&inp, &dy, &f1.1, &f1.2, &one);
            let b2 = backward(&inp, &dy, &f1.1, &f1.2, &two);
            assert!(b1 == b2, "{isa} {rows}x{cols}: backward differs");
        }
    }
}

#[test]
fn empty_batches_are_fine() {
    let opts = CpuOptions::threads(2);
    let (g, b) = ([1.0f32; 3], [0.0f32; 3]);
    layer_norm(&[], &g, &b, &mut [], None, 0, 3, EPS, &opts).unwrap();
    let (mut dg, mut db) = ([f32::NAN; 3], [f32::NAN; 3]);
    layer_norm_backward(
        &[],
        &[],
        &g,
        &[],
        &[],
        &mut [],
        &mut dg,
        &mut db,
        0,
        3,
        &opts,
    )
    .unwrap();
    assert_eq!((dg, db), ([0.0; 3], [0.0; 3]));
}

#[test]
fn bad_shapes_are_errors_naming_them() {
    let opts = CpuOptions::default();
    let (x, g, b) = (vec![0.0f32; 12], vec![1.0f32; 4], vec![0.0f32; 4]);
    let mut y = vec![0.0f32; 12];
    let (mut m, mut s) = (vec![0.0f32; 3], vec![0.0f32; 3]);
    const OP: &str = "layer_norm";
    assert_shape_error(
        layer_norm(&x[..11], &g, &b, &mut y, None, 3, 4, EPS, &opts),
        OP,
        &["x has 11", "rows x cols = 3 x 4", "12"],
    );
    assert_shape_error(
        layer_norm(&x, &g, &b, &mut y[..5], None, 3, 4, EPS, &opts),
        OP,
        &["y has 5"],
    );
    assert_shape_error(
        layer_norm(&x, &g[..3], &b, &mut y, None, 3, 4, EPS, &opts),
        OP,
        &["gamma has 3", "cols = 4"],
    );
    assert_shape_error(
        layer_norm(&x, &g, &b[..1], &mut y, None, 3, 4, EPS, &opts),
        OP,
        &["beta has 1"],
    );
    let mut saving = |mean: &mut [f32], rstd: &mut [f32]| {
        layer_norm(&x, &g, &b, &mut y, Some((mean, rstd)), 3, 4, EPS, &opts)
    };
    assert_shape_error(saving(&mut m[..2], &mut s), OP, &["mean has 2", "rows = 3"]);
    assert_shape_error(saving(&mut m, &mut s[..1]), OP, &["rstd has 1"]);
    assert_shape_error(
        layer_norm(&[], &[], &[], &mut [], None, 3, 0, EPS, &opts),
        OP,
        &["3 x 0", "at least one column"],
    );
    assert_shape_error(
        layer_norm(&x, &g, &b, &mut y, None, usize::MAX, 4, EPS, &opts),
        OP,
        &["overflows"],
    );
    assert_shape_error(
        layer_norm_reference(&x, &g, &b, &mut y[..2], None, 3, 4, EPS),
        "layer_norm_reference",
        &["y has 2"],
    );

    const BW: &str = "layer_norm_backward";
    let (mut dx, mut dg, mut db) = (vec![0.0f32; 12], vec![0.0f32; 4], vec![0.0f32; 4]);
    let mut call = |dy: &[f32], mean: &[f32], dgamma_len: usize, dx_len: usize| {
        layer_norm_backward(
            dy,
            &x,
            &g,
            mean,
            &s,
            &mut dx[..dx_len],
            &mut dg[..dgamma_len],
            &mut db,
            3,
            4,
            &opts,
        )
    };
    assert_shape_error(call(&x[..7], &m, 4, 12), BW, &["dy has 7", "3 x 4"]);
    assert_shape_error(call(&x, &m, 4, 11), BW, &["dx has 11"]);
    assert_shape_error(call(&x, &m, 2, 12), BW, &["dgamma has 2", "cols = 4"]);
    assert_shape_error(call(&x, &m[..1], 4, 12), BW, &["mean has 1", "rows = 3"]);
    call(&x, &m, 4, 12).unwrap();
    assert_shape_error(
        layer_norm_backward(
            &[],
            &[],
            &[],
            &[],
            &[],
            &mut [],
            &mut [],
            &mut [],
            2,
            0,
            &opts,
        ),
        BW,
        &["2 x 0"],
    );
    assert_shape_error(
        layer_norm_backward_reference(&x, &x, &g, &m, &s, &mut dx, &mut dg, &mut db[..3], 3, 4),
        "layer_norm_backward_reference",
        &["dbeta has 3"],
    );
}

#[test]
fn residual_shapes_are_errors_naming_them() {
    let opts = CpuOptions::default();
    let (x, g, b) = (vec![0.0f32; 12], vec![1.0f32; 4], vec![0.0f32; 4]);
    let (mut y, mut sum) = (vec![0.0f32; 12], vec![0.0f32; 12]);
    const OP: &str = "layer_norm_residual";
    let call = |residual: &[f32], sum: Option<&mut [f32]>, y: &mut [f32]| {
        layer_norm_residual(&x, residual, sum, &g, &b, y, None, 3, 4, EPS, &opts)
    };
    assert_shape_error(
        call(&x[..11], None, &mut y),
        OP,
        &["residual has 11", "3 x 4"],
    );
    assert_shape_error(
        call(&x, Some(&mut sum[..10]), &mut y),
        OP,
        &["sum has 10", "3 x 4"],
    );
    assert_shape_error(call(&x, None, &mut y[..4]), OP, &["y has 4"]);
    call(&x, Some(&mut sum), &mut y).unwrap();
}

/// A NaN, infinite or negative `eps` is refused (every `rstd` would be NaN); 0 is allowed,
/// as in PyTorch.
#[test]
fn eps_must_be_finite_and_not_negative() {
    let opts = CpuOptions::default();
    let (x, g, b) = (random(12, 3), vec![1.0f32; 4], vec![0.0f32; 4]);
    let mut y = vec![0.0f32; 12];
    for eps in [f32::NAN, -1e-5, f32::INFINITY] {
        let err = layer_norm(&x, &g, &b, &mut y, None, 3, 4, eps, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                smelt_kernels::Error::Value {
                    op: "layer_norm",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("eps"), "{err}");
        let err = layer_norm_residual(&x, &x, None, &g, &b, &mut y, None, 3, 4, eps, &opts);
        assert!(err.is_err(), "eps = {eps}");
    }
    layer_norm(&x, &g, &b, &mut y, None, 3, 4, 0.0, &opts).unwrap();
}

#[test]
fn unsupported_isa_and_zero_threads_are_errors() {
    let (x, g, b) = ([0.0f32; 4], [1.0f32; 2], [0.0f32; 2]);
    for opts in invalid_options() {
        let mut y = [0.0f32; 4];
        assert_unsupported(layer_norm(&x, &g, &b, &mut y, None, 2, 2, EPS, &opts));
        let (mut dg, mut db) = ([0.0f32; 2], [0.0f32; 2]);
        assert_unsupported(layer_norm_backward(
            &x, &x, &g, &b, &g, &mut y, &mut dg, &mut db, 2, 2, &opts,
        ));
    }
}

/// `(inputs, y, mean)` of the kernel for `rows` copies of `row`, with random `gamma` and
/// `beta`; the saved statistics must be finite.
fn forward_rows(row: &[f32], rows: usize, opts: &CpuOptions) -> (Inputs, Vec<f32>, Vec<f32>) {
    let cols = row.len();
    let inp = Inputs {
        x: row.repeat(rows),
        ..inputs(rows, cols, 0.0, cols as u64)
    };
    let (y, mean, rstd) = forward(&inp, opts);
    assert!(
        mean.iter().chain(&rstd).all(|v| v.is_finite()),
        "{opts:?}: mean {mean:?}, rstd {rstd:?}"
    );
    (inp, y, mean)
}

#[test]
fn constant_rows_give_beta() {
    // mean = sum * (1/cols) is a few ulps off the constant, and eps = 1e-12 makes rstd ~1e6:
    // the centred ulps must not survive as y = beta +- 0.1.
    for opts in all_options() {
        for cols in [3, 17, 768] {
            for value in [1.7f32, 0.1, -3e5] {
                let (inp, y, mean) = forward_rows(&vec![value; cols], 3, &opts);
                let what = format!("{opts:?} {cols} x {value}");
                for (k, &v) in y.iter().enumerate() {
                    let beta = inp.beta[k % cols];
                    assert!((v - beta).abs() < 1e-6, "{what}: y[{k}] = {v}, beta {beta}");
                }
                assert!(mean.iter().all(|&m| m == value), "{what}: mean {mean:?}");
            }
        }
    }
}

/// The kernel's `y` of `rows` copies of `row` equals the f64 reference's within `1e-6` of
/// `|gamma| + |beta|`.
fn assert_rows_match_f64(row: &[f32], opts: &CpuOptions) {
    let (rows, cols) = (2, row.len());
    let (inp, y, _) = forward_rows(row, rows, opts);
    let mut want = vec![f32::NAN; rows * cols];
    layer_norm_reference(
        &inp.x, &inp.gamma, &inp.beta, &mut want, None, rows, cols, EPS,
    )
    .unwrap();
    for k in 0..rows * cols {
        let tol = 1e-6 * (inp.gamma[k % cols].abs() + inp.beta[k % cols].abs());
        assert!(
            (y[k] - want[k]).abs() <= tol,
            "{opts:?} {cols} cols from {}: y[{k}] = {}, want {}",
            row[0],
            y[k],
            want[k]
        );
    }
}

#[test]
fn rows_whose_sum_overflows_f32_match_f64() {
    // The f32 sum overflows: mean inf, y NaN without a fallback.
    for opts in all_options() {
        for cols in [2, 17, 34] {
            assert_rows_match_f64(&vec![3e38; cols], &opts);
        }
    }
}

#[test]
fn rows_whose_squares_overflow_f32_match_f64() {
    // (x - mean)^2 overflows: var inf, rstd 0, y = beta without a fallback.
    for opts in all_options() {
        for cols in [2, 17, 34] {
            let alternating: Vec<f32> = (0..cols)
                .map(|j| if j % 2 == 0 { 2e19 } else { -2e19 })
                .collect();
            assert_rows_match_f64(&alternating, &opts);
        }
    }
}

#[test]
fn non_finite_rows_stay_nan() {
    for opts in all_options() {
        for bad in [f32::NAN, f32::INFINITY] {
            let mut row = vec![1.0f32; 17];
            row[5] = bad;
            let inp = Inputs {
                x: row,
                ..inputs(1, 17, 0.0, 9)
            };
            let (y, _, _) = forward(&inp, &opts);
            assert!(y.iter().all(|v| v.is_nan()), "{opts:?} {bad}: {y:?}");
        }
    }
}

#[test]
fn backward_of_a_huge_constant_row_is_finite() {
    // x = 2^110 and rstd = 1e6: a tail lane that loaded x = 0 would have xhat = -inf, and
    // dy = 0 there would make 0 * inf = NaN in the row's sums.
    for opts in all_options() {
        for cols in [4, 5, 17] {
            let rows = 2;
            let mut inp = inputs(rows, cols, 0.0, 21);
            inp.x = vec![2f32.powi(110); rows * cols];
            let (_, mean, rstd) = forward(&inp, &opts);
            let dy = random(rows * cols, 22);
            let (dx, dgamma, dbeta) = backward(&inp, &dy, &mean, &rstd, &opts);
            let (want_dx, want_dgamma, want_dbeta) = backward_reference(&inp, &dy, &mean, &rstd);
            let what = format!("{opts:?} {rows}x{cols}");
            for k in 0..rows * cols {
                // dx = rstd * (g - mean(g)) here (xhat = 0): bound by the terms' sizes.
                let r = k / cols;
                let g = |i: usize| (dy[i] * inp.gamma[i % cols]).abs();
                let mean_g = (r * cols..(r + 1) * cols).map(g).sum::<f32>() / cols as f32;
                let tol = 2e-6 * rstd[r] * (g(k) + mean_g);
                assert!(
                    dx[k].is_finite() && (dx[k] - want_dx[k]).abs() <= tol,
                    "{what}: dx[{k}] = {}, want {}",
                    dx[k],
                    want_dx[k]
                );
            }
            assert_eq!(dgamma, want_dgamma, "{what}");
            assert_eq!(dbeta, want_dbeta, "{what}");
        }
    }
}

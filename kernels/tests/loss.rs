//! Cross-entropy and its backward against the f64 references: every ISA this CPU supports,
//! 1 and 2 threads (the same loss to the bit), odd class counts, ignored rows, logits of
//! ±1e4, a BERT-sized vocabulary, and errors naming the bad target.

use smelt_kernels::cpu::loss::{
    cross_entropy, cross_entropy_backward, cross_entropy_backward_reference,
    cross_entropy_reference, CrossEntropy,
};
use smelt_kernels::cpu::{CpuOptions, Isa};

mod common;
use common::{all_options, assert_shape_error, assert_unsupported, invalid_options, random};

const COLS: [usize; 10] = [1, 2, 7, 8, 17, 33, 127, 387, 1000, 30522];
const ROWS: [usize; 3] = [1, 5, 40];
const IGNORE: i64 = -100;

/// Logits in [-8, 8) and targets, every third row ignored.
fn problem(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let logits = random(rows * cols, seed).iter().map(|v| 8.0 * v).collect();
    let targets = random(rows, seed + 1)
        .iter()
        .enumerate()
        .map(|(r, v)| {
            if r % 3 == 2 {
                IGNORE
            } else {
                ((v + 1.0) * 0.5 * cols as f32) as i64 % cols as i64
            }
        })
        .collect();
    (logits, targets)
}

fn gradient(
    logits: &[f32],
    targets: &[i64],
    rows: usize,
    cols: usize,
    dloss: f32,
    opts: &CpuOptions,
) -> Vec<f32> {
    let mut d = vec![f32::NAN; rows * cols];
    cross_entropy_backward(logits, targets, rows, cols, IGNORE, dloss, &mut d, opts).unwrap();
    d
}

fn assert_loss_close(got: CrossEntropy, want: CrossEntropy, what: &str) {
    assert_eq!(got.count, want.count, "{what}");
    let err = (got.loss as f64 - want.loss as f64).abs();
    assert!(
        err <= 1e-6 * want.loss.abs() as f64 + 1e-7,
        "{what}: loss {} vs {}",
        got.loss,
        want.loss
    );
}

/// The gradient within a few f32 roundings of the f64 one: relative to the probability, and
/// absolute in `dloss / count` at the target, where `p - 1` cancels.
fn assert_gradient_close(
    got: &[f32],
    want: &[f32],
    targets: &[i64],
    cols: usize,
    factor: f64,
    what: &str,
) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let at_target = targets[i / cols] == (i % cols) as i64;
        let cancel = if at_target { 2e-7 * factor.abs() } else { 0.0 };
        let err = (g as f64 - w as f64).abs();
        assert!(
            err <= 2e-6 * w.abs() as f64 + cancel,
            "{what}: element {i}: {g:e} vs {w:e}"
        );
    }
}

#[test]
fn loss_and_gradient_match_f64() {
    for opts in all_options() {
        for cols in COLS {
            for rows in ROWS {
                if rows * cols > 300_000 {
                    continue;
                }
                let (logits, targets) = problem(rows, cols, (rows * 100_000 + cols) as u64);
                let what = format!("{rows}x{cols} {opts:?}");
                let got = cross_entropy(&logits, &targets, rows, cols, IGNORE, &opts).unwrap();
                let want = cross_entropy_reference(&logits, &targets, rows, cols, IGNORE).unwrap();
                assert_loss_close(got, want, &what);

                let dloss = 1.7;
                let d = gradient(&logits, &targets, rows, cols, dloss, &opts);
                let mut want_d = vec![f32::NAN; rows * cols];
                cross_entropy_backward_reference(
                    &logits,
                    &targets,
                    rows,
                    cols,
                    IGNORE,
                    dloss,
                    &mut want_d,
                )
                .unwrap();
                let factor = dloss as f64 / want.count as f64;
                assert_gradient_close(&d, &want_d, &targets, cols, factor, &what);
                for (r, &t) in targets.iter().enumerate() {
                    let row = &d[r * cols..(r + 1) * cols];
                    if t == IGNORE {
                        assert!(row.iter().all(|&v| v == 0.0), "{what}: ignored row {r}");
                    } else {
                        // softmax sums to 1, the one-hot too: each counted row sums to ~0.
                        let sum: f64 = row.iter().map(|&v| v as f64).sum();
                        assert!(sum.abs() <= 2e-6 * factor, "{what}: row {r} sums to {sum}");
                    }
                }
            }
        }
    }
}

#[test]
fn torch_values_by_hand() {
    // Two classes with logits (0, ln 3): p = (1/4, 3/4); target 1 gives -ln(3/4).
    let logits = [0.0, 3f32.ln(), 5.0, 5.0];
    let ce = cross_entropy(&logits, &[1, IGNORE], 2, 2, IGNORE, &CpuOptions::default()).unwrap();
    assert_eq!(ce.count, 1);
    assert!((ce.loss - (4.0f32 / 3.0).ln()).abs() < 1e-7, "{ce:?}");
    let d = gradient(&logits, &[1, IGNORE], 2, 2, 1.0, &CpuOptions::default());
    assert!(
        (d[0] - 0.25).abs() < 1e-7 && (d[1] + 0.25).abs() < 1e-7,
        "{d:?}"
    );
    assert_eq!(&d[2..], &[0.0, 0.0]);
}

#[test]
fn huge_logits_and_every_row_ignored() {
    for opts in all_options() {
        let cols = 33;
        let mut logits = vec![-1e4f32; 2 * cols];
        logits[3] = 1e4;
        logits[cols + 7] = 1e4;
        logits[cols + 8] = 1e4 - 1.0;
        let targets = [3, 8];
        let got = cross_entropy(&logits, &targets, 2, cols, IGNORE, &opts).unwrap();
        let want = cross_entropy_reference(&logits, &targets, 2, cols, IGNORE).unwrap();
        assert_loss_close(got, want, &format!("{opts:?}"));
        let d = gradient(&logits, &targets, 2, cols, 1.0, &opts);
        let mut want_d = vec![0.0; 2 * cols];
        cross_entropy_backward_reference(&logits, &targets, 2, cols, IGNORE, 1.0, &mut want_d)
            .unwrap();
        assert_gradient_close(&d, &want_d, &targets, cols, 0.5, &format!("{opts:?}"));

        let ignored = [IGNORE, IGNORE];
        let none = cross_entropy(&logits, &ignored, 2, cols, IGNORE, &opts).unwrap();
        assert!(none.loss.is_nan() && none.count == 0, "{none:?}");
        let d = gradient(&logits, &ignored, 2, cols, 1.0, &opts);
        assert!(d.iter().all(|&v| v == 0.0), "{opts:?}");
        let empty = cross_entropy(&[], &[], 0, cols, IGNORE, &opts).unwrap();
        assert!(empty.loss.is_nan() && empty.count == 0, "{empty:?}");
    }
}

#[test]
fn an_ignore_index_inside_the_classes_is_honoured() {
    let (logits, mut targets) = problem(6, 7, 3);
    targets.iter_mut().for_each(|t| *t = (*t).max(0));
    targets[0] = 4;
    targets[4] = 4;
    let opts = CpuOptions::default();
    let got = cross_entropy(&logits, &targets, 6, 7, 4, &opts).unwrap();
    let want = cross_entropy_reference(&logits, &targets, 6, 7, 4).unwrap();
    assert_eq!(got.count, targets.iter().filter(|&&t| t != 4).count());
    assert_loss_close(got, want, "ignore_index 4");
}

#[test]
fn two_threads_agree_with_one_bit_for_bit() {
    for (rows, cols) in [(300, 1000), (64, 30522), (2000, 7)] {
        let (logits, targets) = problem(rows, cols, 17);
        for isa in Isa::supported() {
            let (one, two) = (
                CpuOptions::threads(1).isa(isa),
                CpuOptions::threads(2).isa(isa),
            );
            let l1 = cross_entropy(&logits, &targets, rows, cols, IGNORE, &one).unwrap();
            let l2 = cross_entropy(&logits, &targets, rows, cols, IGNORE, &two).unwrap();
            assert_eq!(l1, l2, "{isa} {rows}x{cols}");
            let d1 = gradient(&logits, &targets, rows, cols, 0.5, &one);
            let d2 = gradient(&logits, &targets, rows, cols, 0.5, &two);
            assert!(d1 == d2, "{isa} {rows}x{cols}: gradients differ");
        }
    }
}

#[test]
fn bad_targets_and_lengths_are_errors_naming_them() {
    let opts = CpuOptions::default();
    let logits = vec![0.0f32; 12];
    const OP: &str = "cross_entropy";
    assert_shape_error(
        cross_entropy(&logits, &[0, 4, 1], 3, 4, IGNORE, &opts),
        OP,
        &["row 1", "target 4", "cols = 4"],
    );
    assert_shape_error(
        cross_entropy(&logits, &[0, 1, -1], 3, 4, IGNORE, &opts),
        OP,
        &["row 2", "target -1", "ignore_index = -100"],
    );
    assert_shape_error(
        cross_entropy(&logits[..11], &[0, 1, 2], 3, 4, IGNORE, &opts),
        OP,
        &["logits has 11", "rows x cols = 3 x 4"],
    );
    assert_shape_error(
        cross_entropy(&logits, &[0, 1], 3, 4, IGNORE, &opts),
        OP,
        &["targets has 2", "rows = 3"],
    );
    assert_shape_error(
        cross_entropy_reference(&logits, &[9, 1, 2], 3, 4, IGNORE),
        "cross_entropy_reference",
        &["row 0", "target 9"],
    );

    const BW: &str = "cross_entropy_backward";
    let mut d = vec![0.0f32; 12];
    assert_shape_error(
        cross_entropy_backward(&logits, &[0, 1, 5], 3, 4, IGNORE, 1.0, &mut d, &opts),
        BW,
        &["row 2", "target 5", "cols = 4"],
    );
    assert_shape_error(
        cross_entropy_backward(&logits, &[0, 1, 2], 3, 4, IGNORE, 1.0, &mut d[..8], &opts),
        BW,
        &["dlogits has 8", "3 x 4"],
    );
    assert_shape_error(
        cross_entropy_backward_reference(&logits, &[0, 1, 2], 3, 4, IGNORE, 1.0, &mut d[..1]),
        "cross_entropy_backward_reference",
        &["dlogits has 1"],
    );
    assert!(d.iter().all(|&v| v == 0.0), "an error wrote {d:?}");
}

#[test]
fn unsupported_isa_and_zero_threads_are_errors() {
    for opts in invalid_options() {
        assert_unsupported(cross_entropy(&[0.0; 4], &[0, 1], 2, 2, IGNORE, &opts));
        let mut d = [0.0f32; 4];
        let backward = cross_entropy_backward(&[0.0; 4], &[0, 1], 2, 2, IGNORE, 1.0, &mut d, &opts);
        assert_unsupported(backward);
    }
}

//! Row softmax and its backward against the f64 references: every ISA this CPU supports,
//! 1 and 2 threads, odd column counts, scales, broadcast masks with -inf, fully masked rows,
//! logits of ±1e4, in place, and the errors of the checked API.

use smelt_kernels::cpu::softmax::{
    softmax, softmax_backward, softmax_backward_reference, softmax_inplace, softmax_reference, Mask,
};
use smelt_kernels::cpu::{CpuOptions, Isa};

mod common;
use common::{all_options, assert_shape_error, assert_unsupported, invalid_options, random};

const COLS: [usize; 13] = [1, 2, 7, 8, 15, 16, 17, 31, 33, 127, 128, 129, 1000];
const ROWS: [usize; 3] = [1, 3, 10];
const SCALES: [f32; 3] = [1.0, 0.125, -0.7];
/// Relative error allowed on every output element: the kernels' worst measured is 7.2e-7
/// without a mask and 1.3e-6 with one (whose logits are rounded to f32 before the maximum is
/// subtracted, as PyTorch's are: its float32 softmax reaches 9.3e-7 on such rows).
const REL: f64 = 1.5e-6;

/// Random logits in [-4, 4).
fn logits(len: usize, seed: u64) -> Vec<f32> {
    random(len, seed).iter().map(|v| 4.0 * v).collect()
}

/// Every element within `REL` of the reference, relative to its own magnitude.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs();
        assert!(
            err <= REL * (w as f64).abs() && g.is_finite(),
            "{what}: element {i}: got {g:e}, want {w:e} (relative error {:e})",
            err / (w as f64).abs()
        );
    }
}

fn forward(
    x: &[f32],
    rows: usize,
    cols: usize,
    scale: f32,
    mask: Option<Mask<'_>>,
    opts: &CpuOptions,
) -> Vec<f32> {
    let mut y = vec![f32::NAN; x.len()];
    softmax(x, &mut y, rows, cols, scale, mask, opts).unwrap();
    y
}

fn reference(x: &[f32], rows: usize, cols: usize, scale: f32, mask: Option<Mask<'_>>) -> Vec<f32> {
    let mut y = vec![f32::NAN; x.len()];
    softmax_reference(x, &mut y, rows, cols, scale, mask).unwrap();
    y
}

#[test]
fn every_odd_size_and_scale_matches_f64() {
    for opts in all_options() {
        for cols in COLS {
            for rows in ROWS {
                for (s, scale) in SCALES.into_iter().enumerate() {
                    let x = logits(rows * cols, (rows * 1000 + cols * 10 + s) as u64);
                    let y = forward(&x, rows, cols, scale, None, &opts);
                    let want = reference(&x, rows, cols, scale, None);
                    assert_close(&y, &want, &format!("{rows}x{cols} scale {scale} {opts:?}"));
                }
            }
        }
    }
}

#[test]
fn two_threads_split_rows_and_agree_with_one() {
    // Large enough that two threads really get a chunk each.
    let (rows, cols) = (301, 129);
    let x = logits(rows * cols, 7);
    let mask_values: Vec<f32> = random(3 * cols, 8).iter().map(|v| v - 1.0).collect();
    let mask = Some(Mask {
        values: &mask_values,
        repeat: 101,
    });
    for isa in Isa::supported() {
        let one = forward(&x, rows, cols, 0.3, mask, &CpuOptions::threads(1).isa(isa));
        let two = forward(&x, rows, cols, 0.3, mask, &CpuOptions::threads(2).isa(isa));
        assert_eq!(one, two, "{isa}: 1 and 2 threads differ");
        assert_close(
            &two,
            &reference(&x, rows, cols, 0.3, mask),
            &format!("{isa} 2 threads"),
        );
    }
}

#[test]
fn broadcast_masks_with_minus_inf_match_f64() {
    // Attention shapes: B = 2, H = 3, T = cols; scores [B*H*T, T], key padding mask [B, T].
    for opts in all_options() {
        for cols in COLS {
            let (b, h) = (2, 3);
            let rows = b * h * cols.min(40);
            let repeat = rows / b;
            let x = logits(rows * cols, cols as u64);
            let mut mask_values: Vec<f32> = random(b * cols, 99).iter().map(|v| v - 1.0).collect();
            // Pad the last third of each mask row (keeping at least one key).
            for row in mask_values.chunks_mut(cols) {
                let keep = cols - cols / 3;
                row[keep..].fill(f32::NEG_INFINITY);
            }
            let mask = Some(Mask {
                values: &mask_values,
                repeat,
            });
            for scale in SCALES {
                let y = forward(&x, rows, cols, scale, mask, &opts);
                let want = reference(&x, rows, cols, scale, mask);
                let what = format!("{rows}x{cols} repeat {repeat} scale {scale} {opts:?}");
                assert_close(&y, &want, &what);
                for (r, row) in y.chunks(cols).enumerate() {
                    let padded = &row[cols - cols / 3..];
                    assert!(padded.iter().all(|&v| v == 0.0), "{what}: row {r} padding");
                }
            }
        }
    }
}

#[test]
fn fully_masked_rows_are_zero_with_zero_gradient() {
    for opts in all_options() {
        for cols in COLS {
            let rows = 4;
            let x = logits(rows * cols, 3);
            // Mask row 1 (input rows 2 and 3) removes everything.
            let mut mask_values = vec![0.0; 2 * cols];
            mask_values[cols..].fill(f32::NEG_INFINITY);
            let mask = Some(Mask {
                values: &mask_values,
                repeat: 2,
            });
            let y = forward(&x, rows, cols, 1.0, mask, &opts);
            let what = format!("{rows}x{cols} {opts:?}");
            assert_close(&y, &reference(&x, rows, cols, 1.0, mask), &what);
            assert!(y[2 * cols..].iter().all(|&v| v == 0.0), "{what}: {y:?}");
            let dy = random(rows * cols, 4);
            let mut dx = vec![f32::NAN; rows * cols];
            softmax_backward(&y, &dy, &mut dx, rows, cols, 1.0, &opts).unwrap();
            assert!(dx[2 * cols..].iter().all(|&v| v == 0.0), "{what}: {dx:?}");
            // Logits that are all -inf without a mask behave the same.
            let inf = vec![f32::NEG_INFINITY; cols];
            assert!(forward(&inf, 1, cols, 1.0, None, &opts)
                .iter()
                .all(|&v| v == 0.0));
        }
    }
}

#[test]
fn logits_of_plus_minus_1e4_and_rows_of_one() {
    for opts in all_options() {
        for cols in [2, 5, 17, 128] {
            let mut x = vec![-1e4f32; cols];
            x[0] = 1e4;
            x[cols / 2] = 1e4 - 0.5;
            x[cols - 1] = 1e4 - 3.0;
            for scale in [1.0, 0.125] {
                let y = forward(&x, 1, cols, scale, None, &opts);
                assert_close(
                    &y,
                    &reference(&x, 1, cols, scale, None),
                    &format!("1e4 x {cols}"),
                );
            }
            let neg: Vec<f32> = x.iter().map(|v| -v).collect();
            let y = forward(&neg, 1, cols, -1.0, None, &opts);
            assert_close(
                &y,
                &reference(&neg, 1, cols, -1.0, None),
                &format!("-1e4 x {cols}"),
            );
        }
        let rows: Vec<f32> = vec![1e4, -1e4, 0.0, 3.5, -87.0];
        assert_eq!(
            forward(&rows, 5, 1, 0.7, None, &opts),
            vec![1.0; 5],
            "{opts:?}"
        );
    }
}

#[test]
fn logits_too_large_for_a_rounded_maximum_still_give_a_distribution() {
    // Beyond |scale * x| ~ 1e9 the rounded maximum can sit hundreds or far more above the
    // exact products; the kernel must still find the largest entry, not underflow the row.
    for opts in all_options() {
        for cols in [3, 17, 128] {
            for (scale, top) in [
                (0.3f32, 3.1e9f32),
                (0.3, 3.1e37),
                (-0.7, -1.7e36),
                (1.0, 2.9e38),
            ] {
                let step = top.abs() * 1e-3;
                let x: Vec<f32> = (0..cols)
                    .map(|j| top - step * ((j * 7) % cols) as f32 * top.signum())
                    .collect();
                let y = forward(&x, 1, cols, scale, None, &opts);
                let want = reference(&x, 1, cols, scale, None);
                assert_close(&y, &want, &format!("{top:e} x {cols}, scale {scale}"));
            }
        }
    }
}

#[test]
fn a_logit_far_above_the_others_gets_exactly_one() {
    // Large weights make one logit of a row exceed the others by far more than the ~17 at
    // which they vanish next to it: PyTorch's `exp(z - max)` then gives exactly 1 for it, and
    // its backward exactly 0 (`y * (dy - dy y)` with `y = 1`). A maximum whose exponent is
    // not exactly 0 gives 0.99999994 in some rows, and gradients of ~2^-24 of the scores.
    for opts in all_options() {
        for cols in [5, 17, 128, 129] {
            for (base, scale) in [(1.5e4f32, 1.0f32), (3.1e4, 0.125), (7.7e5, 1.0), (1.0, 0.7)] {
                for top in [0, cols / 3, cols - 1] {
                    let gap = 40.0 / scale;
                    let mut x: Vec<f32> = (0..cols)
                        .map(|j| base - gap - (j % 7) as f32 * 0.37)
                        .collect();
                    x[top] = base;
                    let what =
                        format!("{opts:?}: {cols} columns, {base:e} at {top}, scale {scale}");
                    let y = forward(&x, 1, cols, scale, None, &opts);
                    assert_eq!(y[top], 1.0, "{what}: {y:?}");
                    let neg: Vec<f32> = x.iter().map(|v| -v).collect();
                    let y = forward(&neg, 1, cols, -scale, None, &opts);
                    assert_eq!(y[top], 1.0, "{what}, negated: {y:?}");
                    let mut values = vec![0.0; cols];
                    values[(top + 1) % cols] = f32::NEG_INFINITY;
                    let mask = Some(Mask {
                        values: &values,
                        repeat: 1,
                    });
                    let y = forward(&x, 1, cols, scale, mask, &opts);
                    assert_eq!(y[top], 1.0, "{what}, masked: {y:?}");
                    let dy = logits(cols, 9);
                    let mut dx = vec![f32::NAN; cols];
                    softmax_backward(&y, &dy, &mut dx, 1, cols, scale, &opts).unwrap();
                    let worst = dx.iter().fold(0f32, |m, v| m.max(v.abs()));
                    assert!(worst < 1e-12, "{what}: backward {dx:?}");
                }
            }
        }
    }
}

#[test]
fn rows_masked_with_f32_min_everywhere_are_uniform_as_in_pytorch() {
    // HF's masks add f32::MIN; a row masked everywhere rounds every logit to the same value
    // in f32, and PyTorch gives the uniform distribution.
    for opts in all_options() {
        for cols in [1, 5, 17, 128] {
            let x = logits(cols, 3);
            let values = vec![f32::MIN; cols];
            let mask = Some(Mask {
                values: &values,
                repeat: 1,
            });
            let y = forward(&x, 1, cols, 0.125, mask, &opts);
            for (j, &v) in y.iter().enumerate() {
                assert_eq!(
                    v,
                    1.0 / cols as f32,
                    "1x{cols} {opts:?}: element {j} of {y:?}"
                );
            }
        }
    }
}

#[test]
fn inplace_equals_out_of_place() {
    for opts in all_options() {
        for cols in COLS {
            let rows = 5;
            let x = logits(rows * cols, 11);
            let mask_values = random(cols, 12);
            for mask in [
                None,
                Some(Mask {
                    values: &mask_values,
                    repeat: rows,
                }),
            ] {
                let want = forward(&x, rows, cols, 0.5, mask, &opts);
                let mut y = x.clone();
                softmax_inplace(&mut y, rows, cols, 0.5, mask, &opts).unwrap();
                assert_eq!(y, want, "{rows}x{cols} mask {} {opts:?}", mask.is_some());
            }
        }
    }
}

/// In place, the row's first logit is overwritten before the ragged last vector is read, so
/// that vector's fill lanes must not take the overwritten value: with very negative logits
/// and a scale below 1, `scale * (scale * x0 + m0)` is far above the true maximum and every
/// exp underflowed (a row of NaN, where the answer is uniform).
#[test]
fn inplace_with_a_mask_ignores_the_overwritten_first_logit() {
    for opts in all_options() {
        for cols in [9, 17, 65] {
            let x = vec![-1000.0; cols];
            let zeros = vec![0.0; cols];
            let mask = Some(Mask {
                values: &zeros,
                repeat: 1,
            });
            let mut y = x.clone();
            softmax_inplace(&mut y, 1, cols, 0.125, mask, &opts).unwrap();
            let uniform = 1.0 / cols as f32;
            assert!(
                y.iter().all(|&v| (v - uniform).abs() <= 1e-7),
                "1x{cols} {opts:?}: {y:?}"
            );
        }
    }
}

#[test]
fn rows_sum_to_one() {
    for opts in all_options() {
        for cols in COLS {
            let y = forward(&logits(3 * cols, 5), 3, cols, 1.0, None, &opts);
            for row in y.chunks(cols) {
                let sum: f64 = row.iter().map(|&v| v as f64).sum();
                assert!((sum - 1.0).abs() <= 1e-6, "1x{cols} {opts:?}: sum {sum}");
            }
        }
    }
}

#[test]
fn backward_matches_f64() {
    for opts in all_options() {
        for cols in COLS {
            for rows in ROWS {
                for scale in SCALES {
                    let seed = (rows * 1000 + cols) as u64;
                    let y = forward(&logits(rows * cols, seed), rows, cols, scale, None, &opts);
                    let dy = random(rows * cols, seed + 1);
                    let mut dx = vec![f32::NAN; rows * cols];
                    softmax_backward(&y, &dy, &mut dx, rows, cols, scale, &opts).unwrap();
                    let mut want = vec![f32::NAN; rows * cols];
                    softmax_backward_reference(&y, &dy, &mut want, rows, cols, scale).unwrap();
                    // dy - dot cancels: bound by the magnitudes that enter it.
                    for r in 0..rows {
                        let span = r * cols..(r + 1) * cols;
                        let dot_abs: f64 = span
                            .clone()
                            .map(|j| (y[j] as f64 * dy[j] as f64).abs())
                            .sum();
                        for j in span {
                            let size = (scale as f64 * y[j] as f64).abs()
                                * ((dy[j] as f64).abs() + dot_abs);
                            let err = (dx[j] as f64 - want[j] as f64).abs();
                            assert!(
                                err <= REL * size && dx[j].is_finite(),
                                "{rows}x{cols} scale {scale} {opts:?}: dx[{j}] = {:e}, want {:e}",
                                dx[j],
                                want[j]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn backward_on_two_threads_agrees_with_one() {
    let (rows, cols) = (300, 128);
    let y = forward(
        &logits(rows * cols, 21),
        rows,
        cols,
        1.0,
        None,
        &CpuOptions::default(),
    );
    let dy = random(rows * cols, 22);
    for isa in Isa::supported() {
        let mut one = vec![0.0; rows * cols];
        let mut two = vec![0.0; rows * cols];
        softmax_backward(
            &y,
            &dy,
            &mut one,
            rows,
            cols,
            0.5,
            &CpuOptions::threads(1).isa(isa),
        )
        .unwrap();
        softmax_backward(
            &y,
            &dy,
            &mut two,
            rows,
            cols,
            0.5,
            &CpuOptions::threads(2).isa(isa),
        )
        .unwrap();
        assert_eq!(one, two, "{isa}");
    }
}

#[test]
fn empty_shapes_are_fine() {
    let opts = CpuOptions::threads(2);
    softmax(&[], &mut [], 0, 5, 1.0, None, &opts).unwrap();
    softmax(&[], &mut [], 5, 0, 1.0, None, &opts).unwrap();
    softmax_backward(&[], &[], &mut [], 0, 7, 1.0, &opts).unwrap();
}

#[test]
fn bad_lengths_and_masks_are_errors_naming_the_shapes() {
    let opts = CpuOptions::default();
    let x = vec![0.0f32; 12];
    let mut y = vec![0.0f32; 12];
    let mut short = vec![0.0f32; 11];
    assert_shape_error(
        softmax(&x[..11], &mut y, 3, 4, 1.0, None, &opts),
        "softmax",
        &["x has 11", "3 x 4", "12"],
    );
    assert_shape_error(
        softmax(&x, &mut short, 3, 4, 1.0, None, &opts),
        "softmax",
        &["y has 11", "3 x 4"],
    );
    assert_shape_error(
        softmax_inplace(&mut short, 3, 4, 1.0, None, &opts),
        "softmax_inplace",
        &["x has 11", "3 x 4"],
    );
    assert_shape_error(
        softmax_reference(&x, &mut short, 3, 4, 1.0, None),
        "softmax_reference",
        &["y has 11"],
    );
    assert_shape_error(
        softmax(&x, &mut y, usize::MAX, 2, 1.0, None, &opts),
        "softmax",
        &["overflows"],
    );

    let mask = |values, repeat| Some(Mask { values, repeat });
    let m = [0.0f32; 10];
    assert_shape_error(
        softmax(&x, &mut y, 3, 4, 1.0, mask(&m[..6], 1), &opts),
        "softmax",
        &["mask has 6 values", "cols = 4"],
    );
    assert_shape_error(
        softmax(&x, &mut y, 3, 4, 1.0, mask(&m[..8], 1), &opts),
        "softmax",
        &["mask has 2 rows of 4", "3 x 4", "repeat 1", "need 3"],
    );
    assert_shape_error(
        softmax(&x, &mut y, 3, 4, 1.0, mask(&m[..4], 2), &opts),
        "softmax",
        &["mask has 1 rows", "repeat 2", "need 2"],
    );
    assert_shape_error(
        softmax(&x, &mut y, 3, 4, 1.0, mask(&m[..8], 0), &opts),
        "softmax",
        &["repeat is 0"],
    );
    // Enough mask rows: 3 rows with repeat 2 need 2.
    softmax(&x, &mut y, 3, 4, 1.0, mask(&m[..8], 2), &opts).unwrap();

    let dy = vec![0.0f32; 12];
    let mut dx = vec![0.0f32; 12];
    assert_shape_error(
        softmax_backward(&x, &dy[..11], &mut dx, 3, 4, 1.0, &opts),
        "softmax_backward",
        &["dy has 11", "3 x 4"],
    );
    assert_shape_error(
        softmax_backward(&x, &dy, &mut short, 3, 4, 1.0, &opts),
        "softmax_backward",
        &["dx has 11"],
    );
    assert_shape_error(
        softmax_backward_reference(&x[..11], &dy, &mut dx, 3, 4, 1.0),
        "softmax_backward_reference",
        &["y has 11"],
    );
}

#[test]
fn unsupported_isa_and_zero_threads_are_errors() {
    let (x, mut y) = (vec![0.0f32; 4], vec![0.0f32; 4]);
    for opts in invalid_options() {
        assert_unsupported(softmax(&x, &mut y, 2, 2, 1.0, None, &opts));
        assert_unsupported(softmax_backward(&x, &x, &mut y, 2, 2, 1.0, &opts));
    }
}

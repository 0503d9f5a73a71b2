//! Mean, max and CLS pooling (and the mean's backward) against f64 sums, with padded and fully
//! masked sequences, odd widths, and the errors.

use smelt_kernels::cpu::pooling::{cls_pool, max_pool, mean_pool, mean_pool_backward};

mod common;
use common::{assert_shape_error, random};

const DIMS: [usize; 6] = [1, 7, 33, 127, 387, 768];
const SEQS: [usize; 4] = [1, 2, 9, 128];
const BATCH: usize = 3;

/// Hidden states and a mask: sequence `b` keeps its first `seq - b * seq / 3` tokens (so the
/// first is whole, the others padded), with one fractional weight in sequence 1.
fn problem(seq: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let x = random(BATCH * seq * dim, seed);
    let mut mask = vec![0.0f32; BATCH * seq];
    for b in 0..BATCH {
        let keep = (seq - b * seq / 3).max(1);
        mask[b * seq..b * seq + keep].fill(1.0);
    }
    mask[seq] = 0.5;
    (x, mask)
}

#[test]
fn mean_pool_and_backward_match_f64() {
    for dim in DIMS {
        for seq in SEQS {
            let (x, mask) = problem(seq, dim, (seq * 1000 + dim) as u64);
            let mut out = vec![f32::NAN; BATCH * dim];
            mean_pool(&x, &mask, &mut out, BATCH, seq, dim).unwrap();
            let dout = random(BATCH * dim, 5);
            let mut dx = vec![f32::NAN; BATCH * seq * dim];
            mean_pool_backward(&mask, &dout, &mut dx, BATCH, seq, dim).unwrap();
            for b in 0..BATCH {
                let m = |t: usize| mask[b * seq + t] as f64;
                let denom = (0..seq).map(m).sum::<f64>().max(1e-9);
                for j in 0..dim {
                    let xv = |t: usize| x[(b * seq + t) * dim + j] as f64;
                    let want = (0..seq).map(|t| m(t) * xv(t)).sum::<f64>() / denom;
                    let size = (0..seq).map(|t| (m(t) * xv(t)).abs()).sum::<f64>() / denom;
                    let got = out[b * dim + j] as f64;
                    assert!(
                        (got - want).abs() <= 1e-6 * size,
                        "seq {seq} dim {dim}: out[{b}, {j}] = {got}, want {want}"
                    );
                    for t in 0..seq {
                        let want = m(t) * dout[b * dim + j] as f64 / denom;
                        let got = dx[(b * seq + t) * dim + j] as f64;
                        assert!(
                            (got - want).abs() <= 3e-7 * want.abs(),
                            "seq {seq} dim {dim}: dx[{b}, {t}, {j}] = {got}, want {want}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn fully_masked_sequences_pool_to_zero_with_zero_gradient() {
    let (seq, dim) = (4, 5);
    let x = random(2 * seq * dim, 1);
    let mask = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let mut out = vec![f32::NAN; 2 * dim];
    mean_pool(&x, &mask, &mut out, 2, seq, dim).unwrap();
    assert!(out[dim..].iter().all(|&v| v == 0.0), "{out:?}");
    let mut dx = vec![f32::NAN; 2 * seq * dim];
    mean_pool_backward(&mask, &[1.0; 10], &mut dx, 2, seq, dim).unwrap();
    assert!(dx[..2 * dim].iter().all(|&v| v == 0.5), "{dx:?}");
    assert!(dx[2 * dim..].iter().all(|&v| v == 0.0), "{dx:?}");
}

#[test]
fn a_nan_in_the_mask_makes_the_whole_sequence_nan_as_in_torch() {
    // torch.clamp(NaN, min=1e-9) is NaN, so every token's gradient is NaN, not just the
    // NaN one's.
    let (seq, dim) = (3, 2);
    let mask = [1.0, f32::NAN, 1.0];
    let mut dx = vec![0.0; seq * dim];
    mean_pool_backward(&mask, &[1.0; 2], &mut dx, 1, seq, dim).unwrap();
    assert!(dx.iter().all(|v| v.is_nan()), "{dx:?}");
}

#[test]
fn max_pool_takes_the_max_of_unmasked_tokens() {
    for dim in DIMS {
        for seq in SEQS {
            let (x, mask) = problem(seq, dim, dim as u64);
            let mut out = vec![f32::NAN; BATCH * dim];
            max_pool(&x, &mask, &mut out, BATCH, seq, dim).unwrap();
            for b in 0..BATCH {
                for j in 0..dim {
                    let want = (0..seq)
                        .map(|t| {
                            if mask[b * seq + t] == 0.0 {
                                -1e9
                            } else {
                                x[(b * seq + t) * dim + j]
                            }
                        })
                        .fold(f32::NEG_INFINITY, f32::max);
                    assert_eq!(out[b * dim + j], want, "seq {seq} dim {dim} [{b}, {j}]");
                }
            }
        }
    }
    // A fully masked sequence gives the -1e9 fill, and NaN propagates.
    let mut out = [0.0f32; 2];
    max_pool(&[1.0, f32::NAN, 2.0, 3.0], &[1.0, 1.0], &mut out, 1, 2, 2).unwrap();
    assert!(out[0] == 2.0 && out[1].is_nan(), "{out:?}");
    max_pool(&[1.0, f32::NAN, 2.0, 3.0], &[0.0, 1.0], &mut out, 1, 2, 2).unwrap();
    assert_eq!(out, [2.0, 3.0], "a masked NaN is replaced by the fill");
    max_pool(&[1.0, 2.0], &[0.0, 0.0], &mut out[..1], 1, 2, 1).unwrap();
    assert_eq!(out[0], -1e9);
}

#[test]
fn cls_pool_takes_the_first_token() {
    for dim in DIMS {
        for seq in SEQS {
            let x = random(BATCH * seq * dim, 3);
            let mut out = vec![f32::NAN; BATCH * dim];
            cls_pool(&x, &mut out, BATCH, seq, dim).unwrap();
            for b in 0..BATCH {
                assert_eq!(
                    &out[b * dim..(b + 1) * dim],
                    &x[b * seq * dim..(b * seq + 1) * dim]
                );
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors_naming_them() {
    let (x, mask) = (vec![1.0f32; 24], vec![1.0f32; 6]);
    let mut out = vec![0.0f32; 8];
    let shape = "batch x seq x dim = 2 x 3 x 4";
    assert_shape_error(
        mean_pool(&x[..23], &mask, &mut out, 2, 3, 4),
        "mean_pool",
        &["x has 23", shape, "24"],
    );
    assert_shape_error(
        mean_pool(&x, &mask[..5], &mut out, 2, 3, 4),
        "mean_pool",
        &["mask has 5", shape, "needs 6"],
    );
    assert_shape_error(
        mean_pool(&x, &mask, &mut out[..7], 2, 3, 4),
        "mean_pool",
        &["out has 7", "needs 8"],
    );
    let mut dx = vec![0.0f32; 24];
    assert_shape_error(
        mean_pool_backward(&mask, &x[..8], &mut dx[..20], 2, 3, 4),
        "mean_pool_backward",
        &["dx has 20"],
    );
    assert_shape_error(
        mean_pool_backward(&mask, &x[..9], &mut dx, 2, 3, 4),
        "mean_pool_backward",
        &["dout has 9"],
    );
    assert_shape_error(
        max_pool(&x, &mask[..1], &mut out, 2, 3, 4),
        "max_pool",
        &["mask has 1"],
    );
    assert_shape_error(
        max_pool(&[], &[], &mut out, 2, 0, 4),
        "max_pool",
        &["2 x 0 x 4", "no token"],
    );
    assert_shape_error(
        cls_pool(&x, &mut out[..3], 2, 3, 4),
        "cls_pool",
        &["out has 3"],
    );
    assert_shape_error(cls_pool(&[], &mut out, 2, 0, 4), "cls_pool", &["no token"]);
    assert_shape_error(
        mean_pool(&x, &mask, &mut out, usize::MAX, 3, 4),
        "mean_pool",
        &["overflows"],
    );
    assert!(out.iter().chain(&dx).all(|&v| v == 0.0), "an error wrote");
    mean_pool(&[], &[], &mut [], 0, 3, 4).unwrap();
    max_pool(&[], &[], &mut [], 0, 0, 4).unwrap();
}

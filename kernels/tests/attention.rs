//! Multi-head attention forward and backward against the f64 references: odd sequence lengths
//! and head sizes, padding masks (HF's `f32::MIN` convention), saved and scratch
//! probabilities, dropout on the probabilities, fewer and more batch elements than threads,
//! and the length checks.

use smelt_kernels::cpu::attention::{
    attention_backward, attention_backward_reference, attention_forward, attention_reference,
    AttentionShape, Probs, ProbsDropout,
};
use smelt_kernels::cpu::dropout::DropoutMask;
use smelt_kernels::cpu::{CpuOptions, Isa};

mod common;
use common::random;

/// Relative L2 error `||got - want|| / ||want||`.
fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// Key mask `[B, T]`: batch element `b` has its last `b` keys padded (at least one key kept).
fn padding_mask(batch: usize, seq: usize) -> Vec<f32> {
    (0..batch * seq)
        .map(|i| {
            let (b, j) = (i / seq, i % seq);
            if j + b >= seq && j > 0 {
                f32::MIN
            } else {
                0.0
            }
        })
        .collect()
}

/// `batch` elements of `seq` tokens, `heads` heads of `head_dim`.
fn attention_shape(batch: usize, seq: usize, heads: usize, head_dim: usize) -> AttentionShape {
    AttentionShape {
        batch,
        seq,
        heads,
        head_dim,
    }
}

const SHAPES: [(usize, usize, usize, usize); 5] = [
    (1, 1, 1, 1),
    (2, 7, 3, 5),
    (3, 17, 2, 8),
    (1, 33, 4, 16),
    (5, 13, 2, 32),
];

/// The inputs of one call.
#[derive(Clone, Copy)]
struct Case<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    mask: Option<&'a [f32]>,
    scale: f32,
    dropout: Option<DropoutMask>,
    shape: AttentionShape,
}

impl Case<'_> {
    /// [`attention_forward`]'s output, written over NaN.
    fn forward(&self, probs: Probs<'_>, opts: &CpuOptions) -> smelt_kernels::Result<Vec<f32>> {
        let mut out = vec![f32::NAN; self.shape.qkv_len()];
        let mut dropped = vec![f32::NAN; self.shape.forward_scratch_len(opts.threads)];
        let dropout = self.dropout.map(|mask| ProbsDropout {
            mask,
            scratch: &mut dropped,
        });
        attention_forward(
            self.q,
            self.k,
            self.v,
            self.mask,
            self.scale,
            &self.shape,
            probs,
            dropout,
            &mut out,
            opts,
        )?;
        Ok(out)
    }

    /// [`attention_backward`]'s `(dq, dk, dv)` from the saved `probs`, written over NaN.
    fn backward(
        &self,
        probs: &[f32],
        dout: &[f32],
        opts: &CpuOptions,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let n = self.shape.qkv_len();
        let mut scratch = vec![f32::NAN; self.shape.backward_scratch_len(opts.threads)];
        let (mut dq, mut dk, mut dv) = (vec![f32::NAN; n], vec![f32::NAN; n], vec![f32::NAN; n]);
        attention_backward(
            self.q,
            self.k,
            self.v,
            probs,
            dout,
            self.scale,
            self.dropout.as_ref(),
            &self.shape,
            &mut scratch,
            &mut dq,
            &mut dk,
            &mut dv,
            opts,
        )
        .unwrap();
        (dq, dk, dv)
    }
}

#[test]
fn forward_and_backward_match_the_reference() {
    let drop = DropoutMask::new(0.3, 11, 2).unwrap();
    for (&(batch, seq, heads, head_dim), dropout) in
        SHAPES.iter().flat_map(|s| [(s, None), (s, Some(drop))])
    {
        let shape = attention_shape(batch, seq, heads, head_dim);
        let n = shape.qkv_len();
        let (q, k, v, dout) = (random(n, 1), random(n, 2), random(n, 3), random(n, 4));
        let mask = padding_mask(batch, seq);
        let scale = 1.0 / (head_dim as f32).sqrt();
        let case = Case {
            q: &q,
            k: &k,
            v: &v,
            mask: Some(&mask),
            scale,
            dropout,
            shape,
        };
        let d = dropout.as_ref();
        let (want, want_probs) = attention_reference(&q, &k, &v, Some(&mask), scale, d, &shape);
        let (wdq, wdk, wdv) =
            attention_backward_reference(&q, &k, &v, Some(&mask), &dout, scale, d, &shape);
        for isa in Isa::supported() {
            for threads in [1, 2, 3] {
                let opts = CpuOptions::threads(threads).isa(isa);
                let what = format!("{shape:?} dropout {dropout:?} {isa:?} {threads} threads");
                let mut probs = vec![f32::NAN; shape.saved_probs_len()];
                let out = case.forward(Probs::Save(&mut probs), &opts).unwrap();
                assert!(rel_l2(&out, &want) < 1e-6, "out {what}");
                assert!(rel_l2(&probs, &want_probs) < 1e-6, "probs {what}");

                let mut scratch = vec![f32::NAN; shape.forward_scratch_len(threads)];
                let out2 = case.forward(Probs::Scratch(&mut scratch), &opts).unwrap();
                assert_eq!(out, out2, "scratch forward {what}");

                let (dq, dk, dv) = case.backward(&probs, &dout, &opts);
                assert!(rel_l2(&dq, &wdq) < 1e-5, "dq {what}: {}", rel_l2(&dq, &wdq));
                assert!(rel_l2(&dk, &wdk) < 1e-5, "dk {what}: {}", rel_l2(&dk, &wdk));
                assert!(rel_l2(&dv, &wdv) < 1e-5, "dv {what}: {}", rel_l2(&dv, &wdv));
            }
        }
    }
}

#[test]
fn padded_keys_get_no_weight_and_no_gradient() {
    let shape = attention_shape(2, 6, 2, 4);
    let n = shape.qkv_len();
    let (q, k, v) = (random(n, 5), random(n, 6), random(n, 7));
    let mask = padding_mask(2, 6);
    let case = Case {
        q: &q,
        k: &k,
        v: &v,
        mask: Some(&mask),
        scale: 0.5,
        dropout: None,
        shape,
    };
    let opts = CpuOptions::default();
    let mut probs = vec![0.0; shape.saved_probs_len()];
    case.forward(Probs::Save(&mut probs), &opts).unwrap();
    // Batch element 1 pads its last key: its probability is exactly zero in every row.
    for row in 0..shape.heads * shape.seq {
        assert_eq!(probs[shape.heads * 36 + row * 6 + 5], 0.0);
    }
    let (_, dk, dv) = case.backward(&probs, &random(n, 8), &opts);
    let last_key = (6 + 5) * 8;
    assert!(dk[last_key..last_key + 8].iter().all(|&g| g == 0.0));
    assert!(dv[last_key..last_key + 8].iter().all(|&g| g == 0.0));
}

#[test]
fn wrong_lengths_are_errors() {
    let shape = attention_shape(2, 3, 2, 4);
    let n = shape.qkv_len();
    let (x, short) = (vec![0.0; n], vec![0.0; n - 1]);
    let mut probs = vec![0.0; shape.saved_probs_len()];
    let opts = CpuOptions::default();
    let case = Case {
        q: &x,
        k: &short,
        v: &x,
        mask: None,
        scale: 1.0,
        dropout: None,
        shape,
    };
    let err = case
        .forward(Probs::Save(&mut probs), &opts)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "attention_forward: shape mismatch: k has 47 values, but batch 2 x seq 3 x heads 2 x head_dim 4 needs 48"
    );
    let mut small = vec![0.0; 5];
    let case = Case {
        k: &x,
        mask: Some(&[0.0; 5]),
        ..case
    };
    let err = case
        .forward(Probs::Scratch(&mut small), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("probs has 5 values"), "{err}");
    let mut dropped = vec![0.0; 3];
    let mut scratch = vec![0.0; shape.forward_scratch_len(1)];
    let err = attention_forward(
        &x,
        &x,
        &x,
        None,
        1.0,
        &shape,
        Probs::Scratch(&mut scratch),
        Some(ProbsDropout {
            mask: DropoutMask::new(0.5, 0, 0).unwrap(),
            scratch: &mut dropped,
        }),
        &mut vec![0.0; n],
        &CpuOptions::threads(1),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("dropout scratch has 3 values"), "{err}");
}

#[test]
fn empty_sequences_heads_and_head_widths_are_fine() {
    // seq 0 or heads 0 make heads * seq = 0 score rows per mask row: the mask must still be
    // accepted, as it is without a mask.
    // Head width 0 has scores but no features: every score is 0, so each row of
    // probabilities spreads evenly over the keys.
    for (batch, seq, heads, head_dim) in [(2, 0, 3, 4), (2, 3, 0, 4), (0, 3, 2, 4), (2, 3, 2, 0)] {
        let shape = attention_shape(batch, seq, heads, head_dim);
        let n = shape.qkv_len();
        let (q, k, v) = (random(n, 1), random(n, 2), random(n, 3));
        let mask = padding_mask(batch, seq);
        for mask in [None, Some(&mask[..])] {
            for threads in [1, 2] {
                let opts = CpuOptions::threads(threads);
                let what = format!("{shape:?} mask {} {threads} threads", mask.is_some());
                let case = Case {
                    q: &q,
                    k: &k,
                    v: &v,
                    mask,
                    scale: 0.5,
                    dropout: None,
                    shape,
                };
                let mut probs = vec![f32::NAN; shape.saved_probs_len()];
                case.forward(Probs::Save(&mut probs), &opts)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                if mask.is_none() {
                    let even = 1.0 / seq as f32;
                    assert!(probs.iter().all(|&p| p == even), "{what}: {probs:?}");
                }
                case.backward(&probs, &random(n, 4), &opts);
                let mut scratch = vec![f32::NAN; shape.forward_scratch_len(threads)];
                case.forward(Probs::Scratch(&mut scratch), &opts)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
    }
}

#[test]
fn shapes_whose_sizes_overflow_are_errors() {
    // 2^32 x 2^32 tokens: every length wraps to 0 in usize arithmetic, which empty slices
    // would match; and no tokens at all, where only a row's heads x head_dim overflows.
    for shape in [
        attention_shape(1 << 32, 1 << 32, 1, 1),
        attention_shape(1, 0, 1 << 32, 1 << 32),
    ] {
        overflowing_shape_is_an_error(shape);
    }
    // The buffer lengths a caller sizes its buffers by saturate instead of wrapping (or
    // panicking with overflow checks).
    let huge = attention_shape(1 << 32, 1 << 32, 1, 1);
    assert_eq!(huge.qkv_len(), usize::MAX);
    assert_eq!(huge.saved_probs_len(), usize::MAX);
    assert_eq!(huge.forward_scratch_len(2), usize::MAX);
    assert_eq!(huge.backward_scratch_len(2), usize::MAX);
}

/// Both directions refuse `shape`, with empty slices, naming the overflow.
fn overflowing_shape_is_an_error(shape: AttentionShape) {
    let mut out: [f32; 0] = [];
    let mut probs: [f32; 0] = [];
    let err = attention_forward(
        &[],
        &[],
        &[],
        None,
        1.0,
        &shape,
        Probs::Scratch(&mut probs),
        None,
        &mut out,
        &CpuOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
    let (mut dq, mut dk, mut dv, mut scratch): ([f32; 0], [f32; 0], [f32; 0], [f32; 0]) =
        ([], [], [], []);
    let err = attention_backward(
        &[],
        &[],
        &[],
        &[],
        &[],
        1.0,
        None,
        &shape,
        &mut scratch,
        &mut dq,
        &mut dk,
        &mut dv,
        &CpuOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
}

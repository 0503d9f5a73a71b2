//! The GPU attention kernels on ptx-sim against the f64 references and the CPU kernels:
//! sequence lengths 1, 17, 128 and 130 (tails of every tile size), head dims 32, 64 and 128,
//! padding masks, fully masked rows (`f32::MIN` and `-inf`), the statistics the backward
//! reads, determinism, and the argument checks. Shapes stay small: the interpreter runs some
//! 100 M thread-instructions per second.

use smelt_kernels::cpu::attention::{
    attention_backward as cpu_backward, attention_backward_reference,
    attention_forward as cpu_forward, attention_reference, AttentionShape, Probs,
};
use smelt_kernels::cpu::CpuOptions;
use smelt_kernels::gpu::attention::{attention_backward, attention_forward, lse_len};
use smelt_kernels::gpu::{GpuBuffer, GpuDevice, SimDevice};
use smelt_kernels::Error;

mod common;
use common::{assert_shape_error, random};

/// Relative L2 error `||got - want|| / ||want||` and the largest absolute difference.
fn errors(got: &[f32], want: &[f32]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let (mut num, mut den, mut max) = (0.0f64, 0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        let diff = (g as f64 - w as f64).abs();
        // A NaN must fail the comparison, and f64::max would drop it.
        max = if diff.is_nan() || diff > max {
            diff
        } else {
            max
        };
        num += diff * diff;
        den += (w as f64) * (w as f64);
    }
    ((num / den.max(1e-30)).sqrt(), max)
}

/// Asserts a relative L2 error below 1e-4 and prints both errors. A gradient that vanishes
/// (with one key, `dq = dk = 0` exactly) is held to 1e-6 absolute instead: its rounding
/// residue has no scale to be relative to.
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    let (rel, max) = errors(got, want);
    println!("{what}: rel L2 {rel:.2e}, max abs {max:.2e}");
    let vanishes = want.iter().all(|&w| w == 0.0);
    let ok = if vanishes { max < 1e-6 } else { rel < 1e-4 };
    assert!(ok, "{what}: rel L2 {rel:e}, max abs {max:e}");
}

/// Key mask `[B, T]`: batch element `b` has its last `3 * b` keys padded with `f32::MIN`
/// (at least one key kept).
fn padding_mask(batch: usize, seq: usize) -> Vec<f32> {
    (0..batch * seq)
        .map(|i| {
            let (b, j) = (i / seq, i % seq);
            if j + 3 * b >= seq && j > 0 {
                f32::MIN
            } else {
                0.0
            }
        })
        .collect()
}

/// The inputs of one attention call, with the output gradient.
struct Case {
    shape: AttentionShape,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    dout: Vec<f32>,
    mask: Option<Vec<f32>>,
    scale: f32,
}

impl Case {
    /// Random inputs for batch 2, heads 2, `seq` and `head_dim`, with [`padding_mask`] when
    /// `masked`.
    fn new(seq: usize, head_dim: usize, masked: bool) -> Case {
        let shape = AttentionShape {
            batch: 2,
            seq,
            heads: 2,
            head_dim,
        };
        let n = shape.qkv_len();
        let seed = (seq * 1000 + head_dim) as u64;
        Case {
            shape,
            q: random(n, seed),
            k: random(n, seed + 1),
            v: random(n, seed + 2),
            dout: random(n, seed + 3),
            mask: masked.then(|| padding_mask(2, seq)),
            scale: 1.0 / (head_dim as f32).sqrt(),
        }
    }

    fn name(&self) -> String {
        let s = &self.shape;
        let mask = if self.mask.is_some() { " masked" } else { "" };
        format!("T={} d={}{mask}", s.seq, s.head_dim)
    }

    /// `out`, `lse`, `dq`, `dk`, `dv` from the GPU kernels on ptx-sim (outputs start as NaN,
    /// so anything left unwritten fails the comparisons).
    fn gpu(&self) -> [Vec<f32>; 5] {
        let mut dev = SimDevice::new();
        let n = self.shape.qkv_len();
        let nan = vec![f32::NAN; n];
        let up = |dev: &mut SimDevice, x: &[f32]| dev.upload_f32(x).unwrap();
        let (q, k, v) = (
            up(&mut dev, &self.q),
            up(&mut dev, &self.k),
            up(&mut dev, &self.v),
        );
        let dout = up(&mut dev, &self.dout);
        let mask = self.mask.as_ref().map(|m| up(&mut dev, m));
        let out = up(&mut dev, &nan);
        let lse = up(&mut dev, &vec![f32::NAN; lse_len(&self.shape)]);
        let (dq, dk, dv) = (up(&mut dev, &nan), up(&mut dev, &nan), up(&mut dev, &nan));
        let shape = &self.shape;
        attention_forward(&mut dev, q, k, v, mask, self.scale, shape, out, lse).unwrap();
        let (out_f, lse_f) = (down(&mut dev, out), down(&mut dev, lse));
        attention_backward(
            &mut dev, q, k, v, mask, self.scale, shape, out, lse, dout, dq, dk, dv,
        )
        .unwrap();
        assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
        println!(
            "{}: {:.1} M thread-instructions",
            self.name(),
            dev.instructions() as f64 / 1e6
        );
        [
            out_f,
            lse_f,
            down(&mut dev, dq),
            down(&mut dev, dk),
            down(&mut dev, dv),
        ]
    }

    /// `out`, `dq`, `dk`, `dv` of the CPU kernels.
    fn cpu(&self) -> [Vec<f32>; 4] {
        let (s, n) = (&self.shape, self.shape.qkv_len());
        let opts = CpuOptions::threads(1);
        let mut probs = vec![0.0; s.saved_probs_len()];
        let mut out = vec![0.0; n];
        let (q, k, v, mask) = (&self.q, &self.k, &self.v, self.mask.as_deref());
        let save = Probs::Save(&mut probs);
        cpu_forward(q, k, v, mask, self.scale, s, save, &mut out, &opts).unwrap();
        let mut scratch = vec![0.0; s.backward_scratch_len(1)];
        let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        cpu_backward(
            q,
            k,
            v,
            &probs,
            &self.dout,
            self.scale,
            s,
            &mut scratch,
            &mut dq,
            &mut dk,
            &mut dv,
            &opts,
        )
        .unwrap();
        [out, dq, dk, dv]
    }

    /// Each row's logsumexp of `scale * q.k + mask`, in f64, `[B, H, T]`.
    fn logsumexp(&self) -> Vec<f64> {
        let AttentionShape {
            batch,
            seq: t,
            heads,
            head_dim: d,
        } = self.shape;
        let at = |b: usize, i: usize, h: usize| (b * t + i) * heads * d + h * d;
        let mut lse = Vec::with_capacity(batch * heads * t);
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..t {
                    let s: Vec<f64> = (0..t)
                        .map(|j| {
                            let (qi, kj) = (at(b, i, h), at(b, j, h));
                            let dot: f64 = (0..d)
                                .map(|c| self.q[qi + c] as f64 * self.k[kj + c] as f64)
                                .sum();
                            let m = self.mask.as_ref().map_or(0.0, |m| m[b * t + j] as f64);
                            self.scale as f64 * dot + m
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    lse.push(max + s.iter().map(|x| (x - max).exp()).sum::<f64>().ln());
                }
            }
        }
        lse
    }

    /// Runs the GPU kernels and compares them with the f64 references: output, logsumexp
    /// (plane 0 + plane 1 of `lse`), and the three gradients.
    fn check(&self) {
        let [out, lse, dq, dk, dv] = self.gpu();
        let name = self.name();
        let mask = self.mask.as_deref();
        let (q, k, v, s) = (&self.q, &self.k, &self.v, &self.shape);
        let (want, _) = attention_reference(q, k, v, mask, self.scale, s);
        assert_close(&format!("{name} out"), &out, &want);
        let rows = lse_len(s) / 3;
        for (r, want) in self.logsumexp().into_iter().enumerate() {
            let got = lse[r] as f64 + lse[rows + r] as f64;
            let tol = 1e-5 * want.abs().max(1.0);
            assert!(
                (got - want).abs() <= tol,
                "{name} lse row {r}: {got} vs {want}"
            );
        }
        let (wdq, wdk, wdv) =
            attention_backward_reference(q, k, v, mask, &self.dout, self.scale, s);
        assert_close(&format!("{name} dq"), &dq, &wdq);
        assert_close(&format!("{name} dk"), &dk, &wdk);
        assert_close(&format!("{name} dv"), &dv, &wdv);
    }
}

/// The contents of a device buffer.
fn down(dev: &mut SimDevice, buf: GpuBuffer) -> Vec<f32> {
    dev.download_f32(buf).unwrap()
}

#[test]
fn every_sequence_length_at_head_dim_64() {
    for (seq, masked) in [(1, false), (17, true), (128, false), (130, true)] {
        Case::new(seq, 64, masked).check();
    }
}

#[test]
fn head_dims_32_and_128() {
    for (seq, head_dim, masked) in [(17, 32, true), (130, 32, false), (17, 128, false)] {
        Case::new(seq, head_dim, masked).check();
    }
}

#[test]
fn head_dim_128_with_a_mask_and_tails() {
    Case::new(130, 128, true).check();
}

/// Batch element 1 has every key masked: with `f32::MIN` the CPU averages `v` uniformly (every
/// logit rounds to `f32::MIN`), with `-inf` it gives zero rows; the GPU must do the same,
/// forward and backward, and the same bits on a second run.
#[test]
fn fully_masked_rows_behave_as_on_the_cpu() {
    for fill in [f32::MIN, f32::NEG_INFINITY] {
        let mut case = Case::new(17, 32, true);
        let t = case.shape.seq;
        if let Some(m) = case.mask.as_mut() {
            m[t..].fill(fill);
        }
        let [out, _, dq, dk, dv] = case.gpu();
        let [want, wdq, wdk, wdv] = case.cpu();
        let name = format!("fully masked with {fill:e}");
        for (what, got, want) in [
            ("out", &out, &want),
            ("dq", &dq, &wdq),
            ("dk", &dk, &wdk),
            ("dv", &dv, &wdv),
        ] {
            assert_close(&format!("{name} {what}"), got, want);
        }
        if fill == f32::NEG_INFINITY {
            let half = case.shape.qkv_len() / 2;
            assert!(out[half..].iter().all(|&x| x == 0.0), "{name}: out");
            assert!(dq[half..].iter().all(|&x| x == 0.0), "{name}: dq");
        }
        let again = case.gpu();
        assert_eq!([out, dq, dk, dv], [0, 2, 3, 4].map(|i| again[i].clone()));
    }
}

#[test]
fn bad_arguments_are_errors() {
    let mut dev = SimDevice::new();
    let shape = AttentionShape {
        batch: 2,
        seq: 17,
        heads: 2,
        head_dim: 48,
    };
    let n = shape.qkv_len();
    let x = dev.alloc_zeros(4 * n).unwrap();
    let (k, v, out) = (x, x, dev.alloc_zeros(4 * n).unwrap());
    let lse = dev.alloc_zeros(4 * lse_len(&shape)).unwrap();
    let err = attention_forward(&mut dev, x, k, v, None, 1.0, &shape, out, lse).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("gpu_attention_forward:"), "{msg}");
    assert!(
        msg.contains("head_dim 48") && msg.contains("seq 17"),
        "{msg}"
    );

    let shape = AttentionShape {
        head_dim: 32,
        ..shape
    };
    let n = shape.qkv_len();
    let short = dev.alloc_zeros(4 * (n - 1)).unwrap();
    let result = attention_forward(&mut dev, x, short, v, None, 1.0, &shape, out, lse);
    assert_shape_error(result, "gpu_attention_forward", &["k holds", "seq 17"]);
    let mask = dev.alloc_zeros(4 * 17).unwrap();
    let result = attention_forward(&mut dev, x, k, v, Some(mask), 1.0, &shape, out, lse);
    assert_shape_error(result, "gpu_attention_forward", &["mask", "34"]);
    let result = attention_backward(
        &mut dev, x, k, v, None, 1.0, &shape, out, lse, out, short, out, out,
    );
    assert_shape_error(result, "gpu_attention_backward", &["dq holds"]);
    let err = attention_forward(&mut dev, x, k, v, None, 1.0, &shape, x, lse).unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err:?}");
}

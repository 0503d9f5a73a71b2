//! Attention cases: the GPU forward and backward against the f64 references (small shapes:
//! output, logsumexp statistics, gradients) and against the CPU kernels (any shape), with
//! padding masks and fully masked rows, on any device.

use super::{download, download_as, entries, nans, round_bf16, upload, upload_as, Recorder};
use crate::common::random;
use smelt_kernels::cpu::attention::{
    attention_backward as cpu_backward, attention_backward_reference,
    attention_forward as cpu_forward, attention_reference, AttentionShape, Probs,
};
use smelt_kernels::cpu::CpuOptions;
use smelt_kernels::gpu::attention::{
    self as attn, attention_backward, attention_forward, lse_len, Products, HEAD_DIMS,
};
use smelt_kernels::gpu::GpuDevice;

/// One case of batch 2 x heads 2: `(T, d, padding)`, where `padding` is the value that masks
/// padded keys (`f32::MIN`, as HF's masks, or `-inf`), or `None` for no mask.
pub type Small = (usize, usize, Option<f32>);

const MIN: Option<f32> = Some(f32::MIN);
const NEG_INF: Option<f32> = Some(f32::NEG_INFINITY);

/// Every sequence length (every tail of the tiles) at head dim 64.
pub const SEQ_LENGTHS_D64: [Small; 4] = [
    (1, 64, None),
    (17, 64, MIN),
    (128, 64, None),
    (130, 64, NEG_INF),
];
/// Every sequence length at head dim 32, and the short ones at 128.
pub const HEAD_DIMS_32_128: [Small; 6] = [
    (1, 32, NEG_INF),
    (17, 32, MIN),
    (128, 32, NEG_INF),
    (130, 32, None),
    (1, 128, MIN),
    (17, 128, None),
];
/// The long sequences at head dim 128 (the slowest to interpret).
pub const D128_LONG: [Small; 2] = [(128, 128, NEG_INF), (130, 128, MIN)];
/// The bf16 kernels' cases: every tail at each head dim, with both masks and none.
pub const BF16: [Small; 8] = [
    (1, 64, None),
    (17, 32, MIN),
    (17, 64, NEG_INF),
    (33, 64, None),
    (130, 64, MIN),
    (130, 32, NEG_INF),
    (17, 128, MIN),
    (130, 128, None),
];

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
    assert_within(what, got, want, 1e-4);
}

/// [`assert_close`] with the relative L2 limit `tol`.
fn assert_within(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let (rel, max) = errors(got, want);
    println!("{what}: rel L2 {rel:.2e}, max abs {max:.2e}");
    let vanishes = want.iter().all(|&w| w == 0.0);
    let ok = if vanishes { max < 1e-6 } else { rel < tol };
    assert!(ok, "{what}: rel L2 {rel:e}, max abs {max:e}");
}

/// How a case runs on the GPU: f32 storage with one build of the products, or bf16 storage
/// (tensor cores).
#[derive(Clone, Copy, Debug)]
enum Build {
    F32(Products),
    Bf16,
}

impl Build {
    /// Whether this build stores bf16.
    fn bf16(self) -> bool {
        matches!(self, Build::Bf16)
    }
}

/// Key mask `[B, T]`: batch element `b` has its last `pad * b` keys set to `fill` (key 0 is
/// always kept).
fn padding_mask(batch: usize, seq: usize, pad: usize, fill: f32) -> Vec<f32> {
    (0..batch * seq)
        .map(|i| {
            let (b, j) = (i / seq, i % seq);
            if j + pad * b >= seq && j > 0 {
                fill
            } else {
                0.0
            }
        })
        .collect()
}

/// The inputs of one attention call, with the output gradient.
struct Case {
    /// Shape and mask, for messages.
    label: String,
    shape: AttentionShape,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    dout: Vec<f32>,
    mask: Option<Vec<f32>>,
    scale: f32,
}

impl Case {
    /// Random inputs for `shape` (seeded by `T` and `d`), with [`padding_mask`] of `pad` keys
    /// per batch element set to `fill`, when `(pad, fill)` is given.
    fn new(shape: AttentionShape, padding: Option<(usize, f32)>) -> Case {
        let n = shape.qkv_len();
        let seed = (shape.seq * 1000 + shape.head_dim) as u64;
        let masked = match padding {
            Some((_, fill)) => format!(" masked with {fill:e}"),
            None => String::new(),
        };
        let s = &shape;
        Case {
            label: format!(
                "B={} H={} T={} d={}{masked}",
                s.batch, s.heads, s.seq, s.head_dim
            ),
            shape,
            q: random(n, seed),
            k: random(n, seed + 1),
            v: random(n, seed + 2),
            dout: random(n, seed + 3),
            mask: padding.map(|(pad, fill)| padding_mask(shape.batch, shape.seq, pad, fill)),
            scale: 1.0 / (shape.head_dim as f32).sqrt(),
        }
    }

    /// Batch 2, heads 2, `seq` and `head_dim`, with 3 keys of batch element 1 set to `padding`
    /// when it is given.
    fn small((seq, head_dim, padding): Small) -> Case {
        let shape = AttentionShape {
            batch: 2,
            seq,
            heads: 2,
            head_dim,
        };
        Case::new(shape, padding.map(|fill| (3, fill)))
    }

    /// `out`, `lse`, `dq`, `dk`, `dv` from the GPU kernels, their tile products made as
    /// `products` says (outputs start as NaN, so anything left unwritten fails the
    /// comparisons).
    fn gpu(&self, dev: &mut dyn GpuDevice, products: Products) -> [Vec<f32>; 5] {
        self.gpu_as(dev, Build::F32(products))
    }

    /// [`Case::gpu`] in either storage (bf16 rounds the inputs as it uploads them).
    fn gpu_as(&self, dev: &mut dyn GpuDevice, build: Build) -> [Vec<f32>; 5] {
        let n = self.shape.qkv_len();
        let inputs = [&self.q, &self.k, &self.v, &self.dout];
        let [q, k, v, dout] = inputs.map(|x| upload_as(dev, x, build.bf16()));
        let mask = self.mask.as_ref().map(|m| upload(dev, m));
        let [out, dq, dk, dv] = [0; 4].map(|_| upload_as(dev, &vec![f32::NAN; n], build.bf16()));
        let lse = nans(dev, lse_len(&self.shape));
        let (s, scale) = (&self.shape, self.scale);
        match build {
            Build::F32(p) => {
                attention_forward(dev, p, q, k, v, mask, scale, s, out, lse).unwrap();
                attention_backward(dev, p, q, k, v, mask, scale, s, out, lse, dout, dq, dk, dv)
            }
            Build::Bf16 => {
                attn::attention_forward_bf16(dev, q, k, v, mask, scale, s, out, lse).unwrap();
                attn::attention_backward_bf16(
                    dev, q, k, v, mask, scale, s, out, lse, dout, dq, dk, dv,
                )
            }
        }
        .unwrap();
        // The statistics before the backward overwrote plane 2 (scratch) are not needed: the
        // checks read planes 0 and 1 only.
        let get = |dev: &mut dyn GpuDevice, buf| download_as(dev, buf, build.bf16());
        [
            get(dev, out),
            download(dev, lse),
            get(dev, dq),
            get(dev, dk),
            get(dev, dv),
        ]
    }

    /// `out`, `dq`, `dk`, `dv` of the CPU kernels.
    fn cpu(&self, opts: &CpuOptions) -> [Vec<f32>; 4] {
        let (s, n) = (&self.shape, self.shape.qkv_len());
        let mut probs = vec![0.0; s.saved_probs_len()];
        let mut out = vec![0.0; n];
        let (q, k, v, mask) = (&self.q, &self.k, &self.v, self.mask.as_deref());
        let save = Probs::Save(&mut probs);
        cpu_forward(q, k, v, mask, self.scale, s, save, None, &mut out, opts).unwrap();
        let mut scratch = vec![0.0; s.backward_scratch_len(opts.threads)];
        let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        cpu_backward(
            q,
            k,
            v,
            &probs,
            &self.dout,
            self.scale,
            None,
            s,
            &mut scratch,
            &mut dq,
            &mut dk,
            &mut dv,
            opts,
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

    /// The checks of [`bf16_matches_cpu`] on this case, its inputs rounded to bf16 first.
    fn check_bf16(mut self, dev: &mut dyn GpuDevice) {
        let case = &mut self;
        for x in [&mut case.q, &mut case.k, &mut case.v, &mut case.dout] {
            x.iter_mut().for_each(|v| *v = round_bf16(*v));
        }
        let [out, lse, dq, dk, dv] = case.gpu_as(dev, Build::Bf16);
        let got = [out, dq, dk, dv];
        let name = format!("{}: {} (bf16)", dev.name(), case.label);
        let names = ["out", "dq", "dk", "dv"];
        for ((what, got), want) in names.iter().zip(&got).zip(case.f32_then_rounded(dev)) {
            assert_same_bf16(
                &format!("{name} {what} against the f32 kernels"),
                got,
                &want,
            );
        }
        for ((what, got), want) in names
            .iter()
            .zip(&got)
            .zip(case.cpu(&CpuOptions::threads(1)))
        {
            assert_within(&format!("{name} {what}"), got, &want, 2.5e-3);
        }
        case.check_logsumexp(&name, &lse);
    }

    /// `out`, `dq`, `dk`, `dv` of the f32 tensor-core kernels as the bf16 build should give
    /// them: its `out` rounded to bf16 feeds the backward (as the bf16 build's stored `out`
    /// does), and each result is rounded to bf16.
    fn f32_then_rounded(&self, dev: &mut dyn GpuDevice) -> [Vec<f32>; 4] {
        let n = self.shape.qkv_len();
        let p = Products::Tf32x3;
        let [q, k, v, dout] = [&self.q, &self.k, &self.v, &self.dout].map(|x| upload(dev, x));
        let mask = self.mask.as_ref().map(|m| upload(dev, m));
        let [out, dq, dk, dv] = [0; 4].map(|_| nans(dev, n));
        let lse = nans(dev, lse_len(&self.shape));
        let (s, scale) = (&self.shape, self.scale);
        attention_forward(dev, p, q, k, v, mask, scale, s, out, lse).unwrap();
        let rounded: Vec<f32> = download(dev, out).iter().map(|&x| round_bf16(x)).collect();
        let out = upload(dev, &rounded);
        attention_backward(dev, p, q, k, v, mask, scale, s, out, lse, dout, dq, dk, dv).unwrap();
        let grads = [dq, dk, dv].map(|g| download(dev, g).iter().map(|&x| round_bf16(x)).collect());
        let [dq, dk, dv] = grads;
        [rounded, dq, dk, dv]
    }

    /// Asserts that planes 0 and 1 of the GPU's statistics `lse` add up to each row's
    /// logsumexp within 1e-5 (relative, or absolute below 1).
    fn check_logsumexp(&self, name: &str, lse: &[f32]) {
        let rows = lse_len(&self.shape) / 3;
        for (r, want) in self.logsumexp().into_iter().enumerate() {
            let got = lse[r] as f64 + lse[rows + r] as f64;
            let tol = 1e-5 * want.abs().max(1.0);
            assert!(
                (got - want).abs() <= tol,
                "{name} lse row {r}: {got} vs {want}"
            );
        }
    }

    /// Runs the GPU kernels, each build for the head dim, and compares them
    /// with the f64 references (output, logsumexp as plane 0 + plane 1 of `lse`, and the
    /// three gradients) and with the CPU kernels.
    fn check_references(&self, dev: &mut dyn GpuDevice) {
        for &products in Products::builds(self.shape.head_dim) {
            self.check_references_with(dev, products);
        }
    }

    /// [`Case::check_references`] with one build of the kernels.
    fn check_references_with(&self, dev: &mut dyn GpuDevice, products: Products) {
        let [out, lse, dq, dk, dv] = self.gpu(dev, products);
        let cpu = self.cpu(&CpuOptions::threads(1));
        let label = format!("{} ({products:?})", self.label);
        let name = format!("{}: {label} against the CPU kernels", dev.name());
        let gpu = [&out, &dq, &dk, &dv];
        for (what, (got, want)) in ["out", "dq", "dk", "dv"].iter().zip(gpu.iter().zip(&cpu)) {
            assert_close(&format!("{name} {what}"), got, want);
        }
        let name = format!("{}: {label}", dev.name());
        let mask = self.mask.as_deref();
        let (q, k, v, s) = (&self.q, &self.k, &self.v, &self.shape);
        let (want, _) = attention_reference(q, k, v, mask, self.scale, None, s);
        assert_close(&format!("{name} out"), &out, &want);
        self.check_logsumexp(&name, &lse);
        let (wdq, wdk, wdv) =
            attention_backward_reference(q, k, v, mask, &self.dout, self.scale, None, s);
        assert_close(&format!("{name} dq"), &dq, &wdq);
        assert_close(&format!("{name} dk"), &dk, &wdk);
        assert_close(&format!("{name} dv"), &dv, &wdv);
    }

    /// Runs the GPU (the `products` build) and the CPU kernels and compares output and
    /// gradients; returns the GPU's `[out, dq, dk, dv]`.
    fn check_cpu(
        &self,
        dev: &mut dyn GpuDevice,
        products: Products,
        opts: &CpuOptions,
    ) -> [Vec<f32>; 4] {
        let [out, _, dq, dk, dv] = self.gpu(dev, products);
        let got = [out, dq, dk, dv];
        let name = format!("{}: {} ({products:?})", dev.name(), self.label);
        let want = self.cpu(opts);
        for (what, (got, want)) in ["out", "dq", "dk", "dv"].iter().zip(got.iter().zip(&want)) {
            assert_close(&format!("{name} {what}"), got, want);
        }
        got
    }
}

/// Batch 2 x heads 2 cases against the f64 references and the CPU kernels.
pub fn matches_references(dev: &mut dyn GpuDevice, cases: &[Small]) {
    for &case in cases {
        Case::small(case).check_references(dev);
    }
}

/// `shape` (any batch and heads) with the key mask `mask` (`[B, T]`, or none; `what` names it
/// in messages) against the f64 references and the CPU kernels, as [`matches_references`]
/// checks its batch 2 x heads 2 cases, and in bf16 storage as
/// [`bf16_matches_cpu`] checks its cases.
pub fn masked_matches_references(
    dev: &mut dyn GpuDevice,
    shape: AttentionShape,
    mask: Option<Vec<f32>>,
    what: &str,
) {
    let mut case = Case::new(shape, None);
    case.mask = mask;
    case.label += what;
    case.check_references(dev);
    case.check_bf16(dev);
}

/// `shape` with a padding mask (batch element `b` pads `b * T / (2 B)` keys, the last one
/// nearly half) against the CPU kernels on every available thread, forward and backward, each
/// build of the kernels for the head dim.
pub fn matches_cpu(dev: &mut dyn GpuDevice, shape: AttentionShape) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pad = shape.seq / (2 * shape.batch);
    let case = Case::new(shape, Some((pad, f32::MIN)));
    for &products in Products::builds(case.shape.head_dim) {
        case.check_cpu(dev, products, &CpuOptions::threads(threads));
    }
}

/// Every kernel of both modules runs in the cases at T 17 (each head dim, each f32 build, and
/// bf16): a build that launched another's kernels would still give right
/// answers, so the launches themselves are checked.
pub fn every_kernel_runs(dev: &mut dyn GpuDevice) {
    let mut dev = Recorder::new(dev);
    for d in HEAD_DIMS {
        Case::small((17, d, MIN)).check_references(&mut dev);
        Case::small((17, d, MIN)).check_bf16(&mut dev);
    }
    let mut all = entries(attn::MODULE);
    all.extend(entries(attn::MMA_MODULE));
    assert_eq!(dev.launched, all);
}

/// The bf16 kernels on `cases`, on inputs rounded to bf16:
/// - against the f32 tensor-core kernels on the same inputs, with their `out` rounded to bf16
///   before it feeds their backward, and every result rounded to bf16: the same values but
///   for rounding-order effects (none in ptx-sim; at most 1 bf16 ulp on 0.5% of the values
///   is allowed for a GPU). Products the bf16 build makes with fewer tensor-core passes, or
///   roundings it makes otherwise, would show here (a dropped small half of the
///   probabilities changes ~10% of the values);
/// - against the CPU kernels on the same inputs: one rounding to bf16 (8 significant bits,
///   at most 2^-8 relative, ~1.7e-3 relative L2 for nearest-even on these values) held to
///   2.5e-3; the statistics against the f64 logsumexp.
pub fn bf16_matches_cpu(dev: &mut dyn GpuDevice, cases: &[Small]) {
    for &case in cases {
        Case::small(case).check_bf16(dev);
    }
}

/// Asserts that the bf16 values `got` are `want` (bf16 values too), or 1 bf16 ulp from it on
/// at most 0.5% of them.
fn assert_same_bf16(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut differ = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g.to_bits() == w.to_bits() {
            continue;
        }
        differ += 1;
        let ulp = f32::from_bits((w.abs().to_bits() & 0xffff_0000) + 0x1_0000) - w.abs();
        assert!((g - w).abs() <= ulp, "{what}[{i}]: {g} against {w}");
    }
    println!("{what}: {differ} of {} differ by 1 ulp", got.len());
    assert!(
        differ * 200 <= got.len(),
        "{what}: {differ} of {} differ",
        got.len()
    );
}

/// Batch element 1 has every key masked: with `f32::MIN` the CPU averages `v` uniformly (every
/// logit rounds to `f32::MIN`), with `-inf` it gives zero rows; the GPU must do the same,
/// forward and backward (each build), and the same bits on a second run.
pub fn fully_masked_rows(dev: &mut dyn GpuDevice) {
    let fills = [f32::MIN, f32::NEG_INFINITY];
    let cases = fills.into_iter().flat_map(|fill| {
        [32, 64, 128].into_iter().flat_map(move |d| {
            let builds = Products::builds(d).iter();
            builds.map(move |&p| (fill, d, p))
        })
    });
    for (fill, head_dim, products) in cases {
        let mut case = Case::small((17, head_dim, MIN));
        let t = case.shape.seq;
        if let Some(m) = case.mask.as_mut() {
            m[t..].fill(fill);
        }
        case.label += &format!(", batch element 1 all {fill:e}");
        let [out, dq, dk, dv] = case.check_cpu(dev, products, &CpuOptions::threads(1));
        let name = format!("{} ({products:?})", case.label);
        if fill == f32::NEG_INFINITY {
            let half = case.shape.qkv_len() / 2;
            assert!(out[half..].iter().all(|&x| x == 0.0), "{name}: out");
            assert!(dq[half..].iter().all(|&x| x == 0.0), "{name}: dq");
        }
        let [out2, _, dq2, dk2, dv2] = case.gpu(dev, products);
        assert_eq!(
            [out, dq, dk, dv],
            [out2, dq2, dk2, dv2],
            "{name}: runs differ"
        );
    }
}

/// Batch element 1 masks its *first* 70 keys (every key of the first two key tiles and part of
/// the third): a row's running max starts at -inf (or `f32::MIN`) and turns finite only in a
/// later tile, the online softmax's rescale of an empty sum. Against the f64 references and
/// the CPU kernels, T = 130 at head dim 64.
pub fn leading_keys_masked(dev: &mut dyn GpuDevice) {
    for fill in [f32::MIN, f32::NEG_INFINITY] {
        let mut case = Case::small((130, 64, Some(fill)));
        let t = case.shape.seq;
        if let Some(m) = case.mask.as_mut() {
            m[t..].fill(0.0);
            m[t..t + 70].fill(fill);
        }
        case.label += &format!(", batch element 1 keys 0..70 {fill:e}");
        case.check_references(dev);
    }
}

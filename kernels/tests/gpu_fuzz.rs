//! The GPU kernels on ptx-sim against their references on seeded random shapes, to catch the
//! tail and edge handling (partial warps, blocks and tiles, scalar tails of 4-wide accesses)
//! that the fixed shapes of `gpu_layernorm`, `gpu_pointwise` and `gpu_attention` miss. Each
//! test draws its shapes from a small xorshift64* generator seeded with [`SEED`] (and its own
//! stream, so the families draw independently) and hands them to the comparison cases of
//! `common::gpu`:
//!
//! - layer norm forward, residual forward and backward, f32 and bf16 rows: random rows by
//!   hidden sizes in 1..=1100 (any, multiples of 4, small), the register kernels' widths and
//!   their neighbours (383..=385, 767..=769, 1023..=1025), and backward rows past 512 (blocks
//!   of several rows with a shorter last one);
//! - attention forward and backward against the f64 references and the CPU: batch 1..=2,
//!   heads 1..=3, T in 1..=200, head dims 32, 64 and 128, with no mask or random key masks
//!   (padding after the kept keys, before them, or scattered; `f32::MIN` or `-inf`);
//! - softmax (with and without a mask) and its backward on random rows by cols in 1..=700;
//! - GELU and its backward on random lengths; the bias (+ residual) adds on random shapes.
//!
//! The seed is fixed so that a run is reproducible: a failure names its shape, and the shapes
//! each test drew are printed (`--nocapture`). Each test runs its cases once, on the device
//! whose `.approx` instructions are off by a GPU's documented worst case ([`on_approx_sim`]),
//! and the case counts keep the file near 13 s in release on two cores: the interpreter runs
//! some 100 M thread-instructions per second.

use smelt_kernels::cpu::attention::AttentionShape;
use smelt_kernels::gpu::{GpuDevice, SimDevice};

mod common;
use common::gpu::layernorm::{self, Rows};
use common::gpu::{attention, pointwise, APPROX_ULPS};

/// The seed of every draw. Another value explores other shapes.
const SEED: u64 = 0x5eed_f022_2024_0001;

/// Runs `f` on a [`SimDevice`] whose `.approx` instructions are [`APPROX_ULPS`] off and
/// asserts that no launch gave a simulator warning: the second, harsher run of
/// `common::gpu::on_sim` only, whose first (correctly rounded) run would double the time
/// without covering another shape.
fn on_approx_sim(f: impl FnOnce(&mut dyn GpuDevice)) {
    let mut dev = SimDevice::with_approx_error(APPROX_ULPS);
    f(&mut dev);
    assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
    println!(
        "ptx-sim: {:.1} M thread-instructions",
        dev.instructions() as f64 / 1e6
    );
}

/// xorshift64*: a small seeded generator, enough to draw shapes.
struct Rng(u64);

impl Rng {
    /// The generator of one test: [`SEED`] mixed with `stream` (never the all-zero state).
    fn new(stream: u64) -> Rng {
        Rng((SEED ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)).max(1))
    }

    /// The next 64 pseudo-random bits.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `lo..=hi` (the modulo bias does not matter here).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// One of `items` (not empty).
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() - 1)]
    }
}

/// A width in `1..=max` of class `i % 3`: any, a multiple of 4 (the 4-wide kernels), or at
/// most 70 (rows shorter than a warp or two, mostly with scalar tails).
fn width(rng: &mut Rng, i: usize, max: usize) -> usize {
    match i % 3 {
        0 => rng.range(1, max),
        1 => 4 * rng.range(1, max / 4),
        _ => rng.range(1, 70.min(max)),
    }
}

/// `n` shapes of `1..=max_rows` rows by [`width`]s up to `max_cols`.
fn random_shapes(rng: &mut Rng, n: usize, max_rows: usize, max_cols: usize) -> Vec<(usize, usize)> {
    (0..n)
        .map(|i| (rng.range(1, max_rows), width(rng, i, max_cols)))
        .collect()
}

/// Hidden sizes of the layer norm's register kernels (384, 768, 1024) and their neighbours.
const REGISTER_WIDTHS: [usize; 9] = [383, 384, 385, 767, 768, 769, 1023, 1024, 1025];

/// Layer norm shapes: [`REGISTER_WIDTHS`] on 1..=9 rows, then `n` random shapes of up to 33
/// rows (the warp kernels take 4 rows per block) by hidden sizes in 1..=1100.
fn layer_norm_shapes(rng: &mut Rng, n: usize) -> Vec<(usize, usize)> {
    let mut shapes: Vec<_> = REGISTER_WIDTHS.map(|c| (rng.range(1, 9), c)).into();
    shapes.extend(random_shapes(rng, n, 33, 1100));
    shapes
}

#[test]
fn layer_norm_forward_and_residual_forward_match_cpu_on_random_shapes() {
    let shapes = layer_norm_shapes(&mut Rng::new(1), 60);
    println!("layer norm forward shapes (rows, hidden): {shapes:?}");
    on_approx_sim(|dev| {
        for kind in Rows::ALL {
            layernorm::forward(dev, kind, &shapes);
            layernorm::residual_forward(dev, kind, &shapes);
        }
    });
}

#[test]
fn layer_norm_backward_matches_cpu_on_random_shapes() {
    let rng = &mut Rng::new(2);
    let mut shapes = layer_norm_shapes(rng, 45);
    // Past 512 rows each backward block sums several rows, the last block fewer.
    shapes.extend((0..6).map(|i| (rng.range(513, 1500), width(rng, i, 12))));
    println!("layer norm backward shapes (rows, hidden): {shapes:?}");
    on_approx_sim(|dev| {
        for kind in Rows::ALL {
            layernorm::backward(dev, kind, &shapes);
        }
    });
}

/// A random key mask `[B, T]` and its description, or none (one case in four). Each batch
/// element keeps at least one key: its first keys (padding after them, as a tokenizer pads),
/// its last ones (padding before them, so whole key tiles are masked before the first kept
/// key) or a scattered half; the others are `f32::MIN` or `-inf` (one fill per mask).
fn key_mask(rng: &mut Rng, batch: usize, seq: usize) -> (Option<Vec<f32>>, String) {
    let style = rng.range(0, 3);
    if style == 0 {
        return (None, String::new());
    }
    let fill = rng.pick(&[f32::MIN, f32::NEG_INFINITY]);
    let mut mask = vec![0.0; batch * seq];
    let mut kept_counts = Vec::new();
    for row in mask.chunks_mut(seq) {
        let kept = rng.range(1, seq);
        match style {
            1 => row[kept..].fill(fill),
            2 => row[..seq - kept].fill(fill),
            _ => {
                let keep = rng.range(0, seq - 1);
                for (j, m) in row.iter_mut().enumerate() {
                    if j != keep && rng.range(0, 1) == 0 {
                        *m = fill;
                    }
                }
            }
        }
        kept_counts.push(row.iter().filter(|&&m| m == 0.0).count());
    }
    let how = ["", "first", "last", "scattered"][style];
    let what = format!(", keeping the {how} {kept_counts:?} keys, the others {fill:e}");
    (Some(mask), what)
}

/// `n` random attention shapes at head dims `head_dims`, each with its [`key_mask`].
fn attention_cases(
    rng: &mut Rng,
    n: usize,
    head_dims: &[usize],
) -> Vec<(AttentionShape, Option<Vec<f32>>, String)> {
    (0..n)
        .map(|_| {
            let shape = AttentionShape {
                batch: rng.range(1, 2),
                seq: rng.range(1, 200),
                heads: rng.range(1, 3),
                head_dim: rng.pick(head_dims),
            };
            let (mask, what) = key_mask(rng, shape.batch, shape.seq);
            (shape, mask, what)
        })
        .collect()
}

/// [`attention_cases`] against the f64 references and the CPU kernels, forward and backward.
fn attention_matches_references(rng: &mut Rng, n: usize, head_dims: &[usize]) {
    let cases = attention_cases(rng, n, head_dims);
    for (shape, _, what) in &cases {
        println!("attention case: {shape:?}{what}");
    }
    on_approx_sim(|dev| {
        for (shape, mask, what) in &cases {
            attention::masked_matches_references(dev, *shape, mask.clone(), what);
        }
    });
}

#[test]
fn attention_at_head_dims_32_and_64_matches_the_references_on_random_shapes() {
    attention_matches_references(&mut Rng::new(3), 28, &[32, 64]);
}

/// Head dim 128 on its own: its tiles are the smallest, its cases the slowest to interpret.
#[test]
fn attention_at_head_dim_128_matches_the_references_on_random_shapes() {
    attention_matches_references(&mut Rng::new(7), 8, &[128]);
}

#[test]
fn softmax_and_its_backward_match_cpu_on_random_shapes() {
    let shapes = random_shapes(&mut Rng::new(4), 100, 33, 700);
    println!("softmax shapes (rows, cols): {shapes:?}");
    on_approx_sim(|dev| {
        pointwise::softmax(dev, &shapes);
        pointwise::softmax_backward(dev, &shapes);
    });
}

#[test]
fn gelu_and_its_backward_match_cpu_on_random_lengths() {
    let rng = &mut Rng::new(5);
    let lens: Vec<usize> = (0..60).map(|i| width(rng, i, 10000)).collect();
    println!("gelu lengths: {lens:?}");
    on_approx_sim(|dev| pointwise::gelu(dev, &lens));
}

#[test]
fn bias_adds_are_exact_on_random_shapes() {
    let shapes = random_shapes(&mut Rng::new(6), 60, 40, 2100);
    println!("bias shapes (rows, cols): {shapes:?}");
    on_approx_sim(|dev| pointwise::bias(dev, &shapes));
}

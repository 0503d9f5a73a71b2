//! Seeded random shapes for the GPU kernels' comparison cases: the tail and edge handling
//! (partial warps, blocks and tiles, scalar tails of 4-wide accesses) that the fixed shapes
//! miss. Each family draws from a small xorshift64* generator seeded with [`SEED`] and its own
//! stream, prints its shapes (`--nocapture`) and runs the cases of this module's siblings on
//! any device: `gpu_fuzz` on ptx-sim, `gpu_cuda` on a real GPU.

use super::{attention, layernorm, pointwise};
use layernorm::Rows;
use smelt_kernels::cpu::attention::AttentionShape;
use smelt_kernels::gpu::GpuDevice;

/// The seed of every draw. Another value explores other shapes.
pub const SEED: u64 = 0x5eed_f022_2024_0001;

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

/// Layer norm forward and residual forward, f32 and bf16 rows, on [`layer_norm_shapes`].
pub fn layer_norm_forward(dev: &mut dyn GpuDevice) {
    let shapes = layer_norm_shapes(&mut Rng::new(1), 60);
    println!("layer norm forward shapes (rows, hidden): {shapes:?}");
    for kind in Rows::ALL {
        layernorm::forward(dev, kind, &shapes);
        layernorm::residual_forward(dev, kind, &shapes);
    }
}

/// Layer norm backward, f32 and bf16 rows, on [`layer_norm_shapes`] and on rows past 512
/// (each backward block then sums several rows, the last block fewer).
pub fn layer_norm_backward(dev: &mut dyn GpuDevice) {
    let rng = &mut Rng::new(2);
    let mut shapes = layer_norm_shapes(rng, 45);
    shapes.extend((0..6).map(|i| (rng.range(513, 1500), width(rng, i, 12))));
    println!("layer norm backward shapes (rows, hidden): {shapes:?}");
    for kind in Rows::ALL {
        layernorm::backward(dev, kind, &shapes);
    }
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

/// `n` [`attention_cases`] at head dims `head_dims` (drawn from `stream`) against the f64
/// references and the CPU kernels, forward and backward.
pub fn attention(dev: &mut dyn GpuDevice, stream: u64, n: usize, head_dims: &[usize]) {
    let cases = attention_cases(&mut Rng::new(stream), n, head_dims);
    for (shape, mask, what) in &cases {
        println!("attention case: {shape:?}{what}");
        attention::masked_matches_references(dev, *shape, mask.clone(), what);
    }
}

/// Softmax (with and without a mask) and its backward on random rows by cols in 1..=700.
pub fn softmax(dev: &mut dyn GpuDevice) {
    let shapes = random_shapes(&mut Rng::new(4), 100, 33, 700);
    println!("softmax shapes (rows, cols): {shapes:?}");
    pointwise::softmax(dev, &shapes);
    pointwise::softmax_backward(dev, &shapes);
}

/// GELU and its backward on random lengths up to 10000.
pub fn gelu(dev: &mut dyn GpuDevice) {
    let rng = &mut Rng::new(5);
    let lens: Vec<usize> = (0..60).map(|i| width(rng, i, 10000)).collect();
    println!("gelu lengths: {lens:?}");
    pointwise::gelu(dev, &lens);
}

/// The bias and bias + residual adds on random shapes up to 40 rows by 2100 columns.
pub fn bias(dev: &mut dyn GpuDevice) {
    let shapes = random_shapes(&mut Rng::new(6), 60, 40, 2100);
    println!("bias shapes (rows, cols): {shapes:?}");
    pointwise::bias(dev, &shapes);
}

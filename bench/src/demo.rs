//! `smelt demo`: the matrix work of a DistilBERT-base encoder forward (6 layers, hidden 768,
//! 12 heads, FFN 3072) at batch 8 x 128 tokens on seeded random weights, through the engine:
//! Q/K/V/output/FFN projections with weights in HF's `[out, in]` layout read transposed (no
//! copy), per-sequence attention as one 12-head batched GEMM, masked softmax over padded keys,
//! and the P V product written straight into the merged `[tokens, 768]` layout. Every
//! activation lives in the step's arena, which grows only in the first step.
//!
//! Layer norm, GELU, biases and the backward pass join with the BERT issue; this is the
//! GEMM + softmax core they run on.

use crate::args::Args;
use crate::peak::fma_peak_gflops_per_core;
use smelt_engine::ops::{matmul, softmax};
use smelt_engine::{Arena, CpuOptions, Tensor};
use smelt_kernels::cpu::gemm::{sgemm_batched, BatchStrides, MatMut, MatRef};
use std::time::Instant;

/// DistilBERT-base sizes.
const LAYERS: usize = 6;
const HIDDEN: usize = 768;
const HEADS: usize = 12;
const HEAD_DIM: usize = HIDDEN / HEADS;
const FFN: usize = 3072;

/// One layer's weights, `[out, in]` as in HF checkpoints.
struct Layer {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    ffn_in: Tensor,
    ffn_out: Tensor,
}

/// Runs the demo and prints its progress and figures.
pub fn run(args: &Args) -> Result<(), String> {
    args.only(&["steps", "threads", "batch", "seq"])?;
    let steps: usize = args.get("steps", 5)?;
    let threads: usize = args.get("threads", smelt_kernels::cpu::threads::available())?;
    let batch: usize = args.get("batch", 8)?;
    let seq: usize = args.get("seq", 128)?;
    if steps == 0 || threads == 0 || batch == 0 || seq == 0 {
        return Err("--steps, --threads, --batch and --seq must be at least 1".into());
    }
    let opts = CpuOptions::threads(threads);
    println!("smelt demo: DistilBERT-base encoder GEMM + softmax core, {LAYERS} layers, batch {batch} x seq {seq}, {threads} threads, kernels: {}", opts.isa);
    println!(
        "building seeded random weights ({:.0} MB)...",
        weight_floats() as f64 * 4e-6
    );
    let mut rng = Lcg(0x5eed);
    let layers: Vec<Layer> = (0..LAYERS)
        .map(|_| -> Result<Layer, String> {
            Ok(Layer {
                q: weight(&mut rng, HIDDEN, HIDDEN)?,
                k: weight(&mut rng, HIDDEN, HIDDEN)?,
                v: weight(&mut rng, HIDDEN, HIDDEN)?,
                o: weight(&mut rng, HIDDEN, HIDDEN)?,
                ffn_in: weight(&mut rng, FFN, HIDDEN)?,
                ffn_out: weight(&mut rng, HIDDEN, FFN)?,
            })
        })
        .collect::<Result<_, _>>()?;
    let tokens = batch * seq;
    let input = host(
        &[tokens, HIDDEN],
        (0..tokens * HIDDEN).map(|_| rng.next()).collect(),
    )?;
    // Sequence b has (b % 4) * seq / 8 padded positions at its end, masked as HF does.
    let mask_values = (0..batch * seq)
        .map(|i| {
            let (b, t) = (i / seq, i % seq);
            if t >= seq - (b % 4) * seq / 8 {
                f32::MIN
            } else {
                0.0
            }
        })
        .collect();
    let mask = host(&[batch, seq], mask_values)?;

    let mut arena = Arena::new();
    let flops = step_flops(batch, seq);
    let mut times = Vec::with_capacity(steps);
    let mut capacity_after_first = 0;
    for step in 0..steps {
        arena.reset();
        let start = Instant::now();
        let out = forward(&arena, &layers, &input, &mask, batch, seq, &opts)?;
        let secs = start.elapsed().as_secs_f64();
        let checksum: f64 = out
            .to_vec(&arena)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|&x| x as f64)
            .sum();
        if !checksum.is_finite() {
            return Err(format!("step {}: output is not finite", step + 1));
        }
        if step == 0 {
            capacity_after_first = arena.capacity();
        }
        println!(
            "step {}/{steps}: {:.1} ms, {:.1} GFLOP/s, output checksum {checksum:.4e}",
            step + 1,
            secs * 1e3,
            flops / secs / 1e9
        );
        times.push(secs);
    }
    let grew = arena.capacity() != capacity_after_first;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let peak = fma_peak_gflops_per_core() * threads as f64;
    let gflops = flops / median / 1e9;
    println!("median step {:.1} ms: {:.0} tokens/s, {gflops:.1} GFLOP/s = {:.0}% of the measured FMA peak ({peak:.0} GFLOP/s on {threads} threads)", median * 1e3, tokens as f64 / median, 100.0 * gflops / peak);
    println!(
        "arena: {:.1} MiB high water, {:.1} MiB capacity in {} block(s); {}",
        arena.high_water() as f64 / 1048576.0,
        arena.capacity() as f64 / 1048576.0,
        arena.block_count(),
        if grew {
            "grew after the first step"
        } else {
            "grew only in the first step"
        }
    );
    Ok(())
}

/// One forward pass of every layer; returns the last layer's output `[tokens, HIDDEN]`.
fn forward(
    arena: &Arena,
    layers: &[Layer],
    input: &Tensor,
    mask: &Tensor,
    batch: usize,
    seq: usize,
    opts: &CpuOptions,
) -> Result<Tensor, String> {
    let e = |e: smelt_engine::Error| e.to_string();
    let linear = |x: &Tensor, w: &Tensor| -> Result<Tensor, String> {
        matmul(arena, x, &w.t().map_err(e)?, opts).map_err(e)
    };
    let mut x = input.clone();
    for layer in layers {
        let (q, k, v) = (
            linear(&x, &layer.q)?,
            linear(&x, &layer.k)?,
            linear(&x, &layer.v)?,
        );
        let mut context = arena.alloc(&[batch * seq, HIDDEN]).map_err(e)?;
        for b in 0..batch {
            // [seq, HIDDEN] rows of sequence b, seen as [HEADS, seq, HEAD_DIM] without a copy.
            let heads = |t: &Tensor| -> Result<Tensor, String> {
                let rows = t.narrow(0, b * seq, seq).map_err(e)?;
                rows.reshape(&[seq, HEADS, HEAD_DIM])
                    .map_err(e)?
                    .transpose(0, 1)
                    .map_err(e)
            };
            let (qh, kh, vh) = (heads(&q)?, heads(&k)?, heads(&v)?);
            let scores = matmul(arena, &qh, &kh.transpose(1, 2).map_err(e)?, opts).map_err(e)?;
            let key_mask = mask.narrow(0, b, 1).map_err(e)?;
            let scale = 1.0 / (HEAD_DIM as f32).sqrt();
            let probs =
                softmax(arena, &scores, scale, Some((&key_mask, HEADS * seq)), opts).map_err(e)?;
            merge_heads(
                arena,
                &probs,
                &vh,
                &mut context.as_mut_slice()[b * seq * HIDDEN..],
                seq,
                opts,
            )?;
        }
        let attended = linear(&context.into_tensor(), &layer.o)?;
        let hidden = linear(&attended, &layer.ffn_in)?;
        x = linear(&hidden, &layer.ffn_out)?;
    }
    Ok(x)
}

/// `context[t, h * HEAD_DIM + d] = sum_s probs[h, t, s] * v[h, s, d]`: the 12 heads' P V
/// products as one batched GEMM writing each head's columns of the merged layout.
fn merge_heads(
    arena: &Arena,
    probs: &Tensor,
    v_heads: &Tensor,
    context: &mut [f32],
    seq: usize,
    opts: &CpuOptions,
) -> Result<(), String> {
    let e = |e: smelt_engine::Error| e.to_string();
    let p = probs.data(arena).map_err(e)?;
    let v = &v_heads.data(arena).map_err(e)?[v_heads.offset()..];
    let [head_stride, row_stride, _] = <[usize; 3]>::try_from(v_heads.strides())
        .map_err(|_| "merge_heads: V heads must be 3-D".to_string())?;
    let strides = BatchStrides {
        count: HEADS,
        a: seq * seq,
        b: head_stride,
        c: HEAD_DIM,
    };
    sgemm_batched(
        &strides,
        1.0,
        MatRef::row_major(p, seq, seq),
        MatRef::strided(v, seq, HEAD_DIM, row_stride, 1),
        0.0,
        MatMut::strided(context, seq, HEAD_DIM, HIDDEN, 1),
        opts,
    )
    .map_err(|e| e.to_string())
}

/// Floating-point operations of one step (2 per multiply-add).
fn step_flops(batch: usize, seq: usize) -> f64 {
    let tokens = (batch * seq) as f64;
    let projections = 2.0 * tokens * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN) as f64;
    let attention = 2.0 * 2.0 * (batch * HEADS * seq * seq * HEAD_DIM) as f64;
    LAYERS as f64 * (projections + attention)
}

fn weight_floats() -> usize {
    LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
}

/// A seeded `[out, in]` weight with entries uniform in +-1/sqrt(in) (keeps activations O(1)).
fn weight(rng: &mut Lcg, out: usize, inp: usize) -> Result<Tensor, String> {
    let scale = (3.0 / inp as f32).sqrt();
    host(
        &[out, inp],
        (0..out * inp).map(|_| rng.next() * scale).collect(),
    )
}

fn host(dims: &[usize], data: Vec<f32>) -> Result<Tensor, String> {
    Tensor::from_vec(dims, data).map_err(|e| e.to_string())
}

/// A small deterministic generator of values uniform in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

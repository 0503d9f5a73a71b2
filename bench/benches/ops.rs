//! Criterion benchmark of the training-step kernels beside the GEMMs at BERT-base sizes (1024
//! tokens, hidden 768, FFN 3072, vocabulary 30522): layer norm, GELU, embedding and
//! cross-entropy forward and backward, dropout (p 0.1) on a hidden state, fused attention
//! forward and backward (batch 8, 12 heads, 128 tokens, head width 64, without and with
//! dropout on the probabilities), and an AdamW step on an FFN weight, on 1 thread and on every
//! thread of the machine. Throughput is the bytes each call must read and write, or for
//! attention the multiply-adds of its four (forward) or eight (backward) T x T x d products.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smelt_kernels::cpu::activation::{gelu, gelu_backward};
use smelt_kernels::cpu::adamw::{adamw_step, AdamW};
use smelt_kernels::cpu::attention::{
    attention_backward, attention_forward, AttentionShape, Probs, ProbsDropout,
};
use smelt_kernels::cpu::dropout::{dropout, DropoutMask};
use smelt_kernels::cpu::embedding::{embedding, embedding_backward};
use smelt_kernels::cpu::layernorm::{layer_norm, layer_norm_backward};
use smelt_kernels::cpu::loss::{cross_entropy, cross_entropy_backward};
use smelt_kernels::cpu::threads::available;
use smelt_kernels::cpu::CpuOptions;

const TOKENS: usize = 1024;
const HIDDEN: usize = 768;
const FFN: usize = 3072;
const VOCAB: usize = 30522;

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5 - 1.0)
        .collect()
}

fn thread_counts() -> Vec<usize> {
    let all = available();
    if all > 1 {
        vec![1, all]
    } else {
        vec![1]
    }
}

/// Bytes of `n` f32 values.
fn bytes(n: usize) -> Throughput {
    Throughput::Bytes((n * 4) as u64)
}

fn layer_norm_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer_norm");
    let (rows, cols) = (TOKENS, HIDDEN);
    let n = rows * cols;
    let (x, dy) = (values(n, 1), values(n, 2));
    let (gamma, beta) = (values(cols, 3), values(cols, 4));
    let mut y = vec![0.0f32; n];
    let (mut mean, mut rstd) = (vec![0.0f32; rows], vec![0.0f32; rows]);
    let mut dx = vec![0.0f32; n];
    let (mut dgamma, mut dbeta) = (vec![0.0f32; cols], vec![0.0f32; cols]);
    let shape = format!("{rows}x{cols}");
    for threads in thread_counts() {
        let opts = CpuOptions::threads(threads);
        group.throughput(bytes(2 * n));
        group.bench_function(
            BenchmarkId::new(format!("forward/t{threads}"), &shape),
            |b| {
                b.iter(|| {
                    let saved = Some((&mut mean[..], &mut rstd[..]));
                    layer_norm(&x, &gamma, &beta, &mut y, saved, rows, cols, 1e-12, &opts)
                })
            },
        );
        // Reads dy and x twice (dx by rows, then dgamma and dbeta by columns), writes dx.
        group.throughput(bytes(5 * n));
        group.bench_function(
            BenchmarkId::new(format!("backward/t{threads}"), &shape),
            |b| {
                b.iter(|| {
                    layer_norm_backward(
                        &dy,
                        &x,
                        &gamma,
                        &mean,
                        &rstd,
                        &mut dx,
                        &mut dgamma,
                        &mut dbeta,
                        rows,
                        cols,
                        &opts,
                    )
                })
            },
        );
    }
    group.finish();
}

fn gelu_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("gelu");
    let n = TOKENS * FFN;
    let x: Vec<f32> = values(n, 5).iter().map(|v| 4.0 * v).collect();
    let dy = values(n, 6);
    let mut y = vec![0.0f32; n];
    let shape = format!("{TOKENS}x{FFN}");
    for threads in thread_counts() {
        let opts = CpuOptions::threads(threads);
        group.throughput(bytes(2 * n));
        group.bench_function(
            BenchmarkId::new(format!("forward/t{threads}"), &shape),
            |b| b.iter(|| gelu(&x, &mut y, &opts)),
        );
        group.throughput(bytes(3 * n));
        group.bench_function(
            BenchmarkId::new(format!("backward/t{threads}"), &shape),
            |b| b.iter(|| gelu_backward(&x, &dy, &mut y, &opts)),
        );
    }
    group.finish();
}

fn dropout_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("dropout");
    let n = TOKENS * HIDDEN;
    let x = values(n, 5);
    let mut y = vec![0.0f32; n];
    let mask = DropoutMask::new(0.1, 1, 2).expect("0.1 is a probability");
    let shape = format!("{TOKENS}x{HIDDEN}");
    for threads in thread_counts() {
        let opts = CpuOptions::threads(threads);
        group.throughput(bytes(2 * n));
        group.bench_function(
            BenchmarkId::new(format!("forward/t{threads}"), &shape),
            |b| b.iter(|| dropout(&x, &mask, 0, &mut y, &opts)),
        );
    }
    group.finish();
}

fn embedding_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("embedding");
    let table = values(VOCAB * HIDDEN, 7);
    let ids: Vec<u32> = (0..TOKENS).map(|i| (i * 7919 % VOCAB) as u32).collect();
    let dout = values(TOKENS * HIDDEN, 8);
    let mut out = vec![0.0f32; TOKENS * HIDDEN];
    let mut dtable = vec![0.0f32; VOCAB * HIDDEN];
    let shape = format!("{TOKENS}of{VOCAB}x{HIDDEN}");
    for threads in thread_counts() {
        let opts = CpuOptions::threads(threads);
        group.throughput(bytes(2 * TOKENS * HIDDEN));
        group.bench_function(
            BenchmarkId::new(format!("forward/t{threads}"), &shape),
            |b| b.iter(|| embedding(&table, VOCAB, HIDDEN, &ids, &mut out, &opts)),
        );
        group.throughput(bytes(3 * TOKENS * HIDDEN));
        group.bench_function(
            BenchmarkId::new(format!("backward/t{threads}"), &shape),
            |b| b.iter(|| embedding_backward(&ids, &dout, &mut dtable, VOCAB, HIDDEN, &opts)),
        );
    }
    group.finish();
}

fn cross_entropy_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_entropy");
    group.sample_size(20);
    let (rows, cols) = (TOKENS, VOCAB);
    let n = rows * cols;
    let logits: Vec<f32> = values(n, 9).iter().map(|v| 8.0 * v).collect();
    // MLM-like: 15% of the rows are predicted, the others ignored.
    let targets: Vec<i64> = (0..rows)
        .map(|r| {
            if r % 7 == 0 {
                (r * 7919 % cols) as i64
            } else {
                -100
            }
        })
        .collect();
    let all_targets: Vec<i64> = (0..rows).map(|r| (r * 7919 % cols) as i64).collect();
    let mut dlogits = vec![0.0f32; n];
    let shape = format!("{rows}x{cols}");
    for threads in thread_counts() {
        let opts = CpuOptions::threads(threads);
        group.throughput(bytes(n));
        group.bench_function(
            BenchmarkId::new(format!("forward-all-rows/t{threads}"), &shape),
            |b| b.iter(|| cross_entropy(&logits, &all_targets, rows, cols, -100, &opts)),
        );
        group.throughput(bytes(2 * n));
        group.bench_function(
            BenchmarkId::new(format!("backward-all-rows/t{threads}"), &shape),
            |b| {
                b.iter(|| {
                    cross_entropy_backward(
                        &logits,
                        &all_targets,
                        rows,
                        cols,
                        -100,
                        1.0,
                        &mut dlogits,
                        &opts,
                    )
                })
            },
        );
        group.bench_function(
            BenchmarkId::new(format!("backward-15pct-rows/t{threads}"), &shape),
            |b| {
                b.iter(|| {
                    cross_entropy_backward(
                        &logits,
                        &targets,
                        rows,
                        cols,
                        -100,
                        1.0,
                        &mut dlogits,
                        &opts,
                    )
                })
            },
        );
    }
    group.finish();
}

fn attention_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention");
    group.sample_size(20);
    let shape = AttentionShape {
        batch: 8,
        seq: 128,
        heads: 12,
        head_dim: 64,
    };
    let n = shape.qkv_len();
    let (q, k, v, dout) = (values(n, 12), values(n, 13), values(n, 14), values(n, 15));
    // Sequence b pads its last 8 * b keys, as HF's mask does.
    let mask: Vec<f32> = (0..shape.batch * shape.seq)
        .map(|i| {
            if i % shape.seq + 8 * (i / shape.seq) >= shape.seq {
                f32::MIN
            } else {
                0.0
            }
        })
        .collect();
    let scale = 1.0 / (shape.head_dim as f32).sqrt();
    let (mut out, mut probs) = (vec![0.0; n], vec![0.0; shape.saved_probs_len()]);
    let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let products = (shape.batch * shape.heads * shape.seq * shape.seq * shape.head_dim) as u64;
    let name = format!(
        "{}x{}x{}x{}",
        shape.batch, shape.heads, shape.seq, shape.head_dim
    );
    for threads in thread_counts() {
        let opts = CpuOptions::threads(threads);
        group.throughput(Throughput::Elements(2 * 2 * products));
        let drop = DropoutMask::new(0.1, 1, 3).expect("0.1 is a probability");
        let mut dropped = vec![0.0; shape.forward_scratch_len(threads)];
        for (label, d) in [("forward", None), ("forward-dropout", Some(drop))] {
            group.bench_function(
                BenchmarkId::new(format!("{label}/t{threads}"), &name),
                |b| {
                    b.iter(|| {
                        let p = Probs::Save(&mut probs);
                        let d = d.map(|mask| ProbsDropout {
                            mask,
                            scratch: &mut dropped,
                        });
                        attention_forward(
                            &q,
                            &k,
                            &v,
                            Some(&mask),
                            scale,
                            &shape,
                            p,
                            d,
                            &mut out,
                            &opts,
                        )
                    })
                },
            );
        }
        let mut scratch = vec![0.0; shape.backward_scratch_len(threads)];
        group.throughput(Throughput::Elements(2 * 4 * products));
        for (label, d) in [("backward", None), ("backward-dropout", Some(&drop))] {
            group.bench_function(
                BenchmarkId::new(format!("{label}/t{threads}"), &name),
                |b| {
                    b.iter(|| {
                        attention_backward(
                            &q,
                            &k,
                            &v,
                            &probs,
                            &dout,
                            scale,
                            d,
                            &shape,
                            &mut scratch,
                            &mut dq,
                            &mut dk,
                            &mut dv,
                            &opts,
                        )
                    })
                },
            );
        }
    }
    group.finish();
}

fn adamw_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("adamw");
    let n = HIDDEN * FFN;
    let mut params = values(n, 10);
    let grads = values(n, 11);
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    let hp = AdamW::default();
    let shape = format!("{HIDDEN}x{FFN}");
    for threads in thread_counts() {
        let opts = CpuOptions::threads(threads);
        // Reads params, grads, m and v; writes params, m and v.
        group.throughput(bytes(7 * n));
        group.bench_function(BenchmarkId::new(format!("step/t{threads}"), &shape), |b| {
            b.iter(|| adamw_step(&mut params, &grads, &mut m, &mut v, 10, &hp, &opts))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    layer_norm_bench,
    gelu_bench,
    dropout_bench,
    embedding_bench,
    cross_entropy_bench,
    attention_bench,
    adamw_bench
);
criterion_main!(benches);

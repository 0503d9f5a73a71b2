//! Criterion benchmark of the row softmax (forward and backward) on attention-score shapes,
//! 1 thread, beside a plain copy of the same bytes (the bandwidth ceiling).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smelt_kernels::cpu::softmax::{softmax, softmax_backward};
use smelt_kernels::cpu::CpuOptions;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("softmax");
    let opts = CpuOptions::threads(1);
    for (rows, cols) in [(12288, 128), (3072, 512)] {
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| (i % 97) as f32 * 0.1 - 4.0)
            .collect();
        let mut y = vec![0.0f32; rows * cols];
        let mut dx = vec![0.0f32; rows * cols];
        let shape = format!("{rows}x{cols}");
        group.throughput(Throughput::Bytes((2 * rows * cols * 4) as u64));
        group.bench_function(BenchmarkId::new("forward", &shape), |b| {
            b.iter(|| softmax(&x, &mut y, rows, cols, 1.0, None, &opts))
        });
        group.bench_function(BenchmarkId::new("copy", &shape), |b| {
            b.iter(|| y.copy_from_slice(&x))
        });
        let probs = y.clone();
        group.throughput(Throughput::Bytes((3 * rows * cols * 4) as u64));
        group.bench_function(BenchmarkId::new("backward", &shape), |b| {
            b.iter(|| softmax_backward(&probs, &x, &mut dx, rows, cols, 1.0, &opts))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

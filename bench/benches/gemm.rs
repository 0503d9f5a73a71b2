//! Criterion benchmark of our SGEMM at BERT-base shapes and with one row of A (a single
//! token: the row-times-matrix path), 1 thread, plain and with B transposed, beside the
//! `gemm` crate (the figures in README come from `smelt bench gemm`,
//! which also measures the FMA peak and more peers; this is the statistics-heavy view); and
//! nn.Linear's forward both ways: `sgemm_bias` (the bias added in the write-back) against the
//! bias copied into C first and a product with beta = 1.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smelt_kernels::cpu::gemm::{sgemm, sgemm_bias, MatMut, MatRef};
use smelt_kernels::cpu::CpuOptions;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    group.sample_size(20);
    let shapes = [
        (1024, 768, 768),
        (1024, 768, 3072),
        (1024, 3072, 768),
        (1, 768, 768),
        (1, 3072, 768),
    ];
    for (m, k, n) in shapes {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for transb in [false, true] {
            let id = BenchmarkId::new(
                if transb { "smelt-nt" } else { "smelt-nn" },
                format!("{m}x{k}x{n}"),
            );
            group.bench_function(id, |bench| {
                let opts = CpuOptions::threads(1);
                bench.iter(|| {
                    let b_view = if transb {
                        MatRef::row_major(&b, n, k).t()
                    } else {
                        MatRef::row_major(&b, k, n)
                    };
                    let c_view = MatMut::row_major(&mut out, m, n);
                    sgemm(1.0, MatRef::row_major(&a, m, k), b_view, 0.0, c_view, &opts)
                })
            });
            let id = BenchmarkId::new(
                if transb {
                    "gemm-crate-nt"
                } else {
                    "gemm-crate-nn"
                },
                format!("{m}x{k}x{n}"),
            );
            let (rsb, csb) = if transb {
                (1, k as isize)
            } else {
                (n as isize, 1)
            };
            group.bench_function(id, |bench| {
                bench.iter(|| unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        out.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        csb,
                        rsb,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                })
            });
        }
    }
    group.finish();
}

fn linear(c: &mut Criterion) {
    let mut group = c.benchmark_group("linear");
    group.sample_size(20);
    let opts = CpuOptions::threads(1);
    for (m, k, n) in [(1024, 768, 3072), (128, 384, 1536)] {
        let x = vec![0.5f32; m * k];
        let w = vec![0.25f32; n * k];
        let bias: Vec<f32> = (0..n).map(|j| j as f32).collect();
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let shape = format!("{m}x{k}x{n}");
        group.bench_function(BenchmarkId::new("sgemm_bias", &shape), |bench| {
            bench.iter(|| {
                let (x, w) = (MatRef::row_major(&x, m, k), MatRef::row_major(&w, n, k).t());
                let y = MatMut::row_major(&mut out, m, n);
                sgemm_bias(1.0, x, w, &bias, 0.0, y, &opts)
            })
        });
        group.bench_function(BenchmarkId::new("copy-bias+beta1", &shape), |bench| {
            bench.iter(|| {
                for row in out.chunks_exact_mut(n) {
                    row.copy_from_slice(&bias);
                }
                let (x, w) = (MatRef::row_major(&x, m, k), MatRef::row_major(&w, n, k).t());
                let y = MatMut::row_major(&mut out, m, n);
                sgemm(1.0, x, w, 1.0, y, &opts)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, linear);
criterion_main!(benches);

//! Criterion benchmark of our SGEMM at BERT-base shapes, 1 thread, plain and with B
//! transposed, beside the `gemm` crate (the figures in README come from `smelt bench gemm`,
//! which also measures the FMA peak and more peers; this is the statistics-heavy view).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smelt_kernels::cpu::gemm::{sgemm, MatMut, MatRef};
use smelt_kernels::cpu::CpuOptions;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    group.sample_size(20);
    for (m, k, n) in [(1024, 768, 768), (1024, 768, 3072), (1024, 3072, 768)] {
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

criterion_group!(benches, bench);
criterion_main!(benches);

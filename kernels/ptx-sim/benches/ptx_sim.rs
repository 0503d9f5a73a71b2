//! Interpreter speed in thread-instructions per second: the corpus' 64x64-tiled SGEMM at
//! 256^3 (shared memory, barriers, FMA-heavy) and its warp-shuffle block sum (control flow and
//! `shfl.sync`). Criterion's "elements" are thread-instructions.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smelt_ptx_sim::{Arg, Dim3, Launch, Module, Sim};

fn sgemm(c: &mut Criterion) {
    let module =
        Module::parse(include_str!("../tests/kernels/sgemm_tiled.ptx")).expect("corpus PTX parses");
    let n = 256usize;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.25).collect();
    let mut sim = Sim::new();
    let (ab, bb, cb) = (sim.upload_f32(&a), sim.upload_f32(&a), sim.zeros(n * n * 4));
    let launch = Launch {
        grid: Dim3::xy(4, 4),
        block: Dim3::x(256),
        shared_bytes: 0,
    };
    let args = [
        Arg::Ptr(ab),
        Arg::Ptr(bb),
        Arg::Ptr(cb),
        Arg::I32(256),
        Arg::I32(256),
        Arg::I32(256),
    ];
    let count = sim
        .launch(&module, "sgemm_tiled", launch, &args)
        .expect("sgemm runs")
        .instructions;
    let mut g = c.benchmark_group("ptx_sim");
    g.sample_size(10);
    g.throughput(Throughput::Elements(count));
    g.bench_function("sgemm_tiled_256", |b| {
        b.iter(|| {
            sim.launch(&module, "sgemm_tiled", launch, &args)
                .expect("sgemm runs")
        })
    });
    g.finish();
}

fn block_sum(c: &mut Criterion) {
    let module =
        Module::parse(include_str!("../tests/kernels/warp_reduce.ptx")).expect("corpus PTX parses");
    let n = 1 << 16;
    let mut sim = Sim::new();
    let xb = sim.upload_f32(&vec![1.0; n]);
    let out = sim.zeros(n / 256 * 4);
    let launch = Launch {
        grid: Dim3::x(n as u32 / 256),
        block: Dim3::x(256),
        shared_bytes: 0,
    };
    let args = [Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(n as i32)];
    let count = sim
        .launch(&module, "block_sum", launch, &args)
        .expect("block_sum runs")
        .instructions;
    let mut g = c.benchmark_group("ptx_sim");
    g.sample_size(10);
    g.throughput(Throughput::Elements(count));
    g.bench_function("block_sum_64k", |b| {
        b.iter(|| {
            sim.launch(&module, "block_sum", launch, &args)
                .expect("block_sum runs")
        })
    });
    g.finish();
}

criterion_group!(benches, sgemm, block_sum);
criterion_main!(benches);

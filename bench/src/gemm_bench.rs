//! `smelt bench gemm`: our SGEMM beside the `gemm` and `matrixmultiply` crates (and, with
//! `--torch`, PyTorch and numpy through `bench/peers/sgemm_torch.py`), plus the FMA peak.

use crate::args::{parse_dims, Args};
use crate::peers::{self, PeerFigure};
use crate::report::{Row, Value};
use crate::timing::interleaved;
use rayon::prelude::*;
use smelt_kernels::cpu::gemm::{sgemm_batched, BatchStrides, MatMut, MatRef};
use smelt_kernels::cpu::CpuOptions;
use std::time::Duration;

/// One GEMM case: `batch` products of `m x k` by `k x n`.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub batch: usize,
    /// B stored `n x k` (as nn.Linear weights) and read transposed.
    pub transb: bool,
}

/// BERT-base shapes (M, K, N) at 8 x 128 tokens, plus the square reference.
const DEFAULT_SHAPES: [(usize, usize, usize); 4] = [
    (1024, 1024, 1024),
    (1024, 768, 768),
    (1024, 768, 3072),
    (1024, 3072, 768),
];
/// Attention per head (batch 8 x 12 heads): Q K^T and P V.
const ATTENTION_SHAPES: [(usize, usize, usize); 2] = [(128, 64, 128), (128, 128, 64)];

/// The cases selected by the command line.
fn cases(args: &Args) -> Result<Vec<Case>, String> {
    let transb = args.flag("transb");
    let batch: usize = args.get("batch", 1)?;
    if batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let shapes = args.all("shape");
    if !shapes.is_empty() {
        return shapes
            .iter()
            .map(|s| {
                let [m, k, n] = parse_dims::<3>(s, "1024x768x3072 (MxKxN)")?;
                Ok(Case {
                    m,
                    k,
                    n,
                    batch,
                    transb,
                })
            })
            .collect();
    }
    let big = DEFAULT_SHAPES.iter().map(|&(m, k, n)| Case {
        m,
        k,
        n,
        batch: 1,
        transb,
    });
    let attention = ATTENTION_SHAPES.iter().map(|&(m, k, n)| Case {
        m,
        k,
        n,
        batch: 96,
        transb: false,
    });
    Ok(big.chain(attention).collect())
}

/// Runs the gemm benchmark and returns its rows.
pub fn run(args: &Args, threads: usize, peak: f64) -> Result<Vec<Row>, String> {
    let cases = cases(args)?;
    let budget = Duration::from_millis(args.get("budget-ms", 1500)?);
    let mut rows = Vec::new();
    for case in &cases {
        let figures = measure(case, threads, budget);
        let torch = if args.flag("torch") {
            peers::sgemm_torch(case, threads)?
        } else {
            Vec::new()
        };
        rows.extend(case_rows(case, threads, peak, &figures, &torch));
    }
    Ok(rows)
}

/// Median seconds of smelt, the `gemm` crate and `matrixmultiply` on one case, interleaved.
fn measure(case: &Case, threads: usize, budget: Duration) -> [f64; 3] {
    let Case {
        m,
        k,
        n,
        batch,
        transb,
    } = *case;
    let a = filled(batch * m * k, 0.25);
    let b = filled(batch * k * n, 0.5);
    let mut c = vec![0.0f32; batch * m * n];
    let mut c_peer = vec![0.0f32; batch * m * n];
    let (rsb, csb) = if transb { (1, k) } else { (n, 1) };
    let opts = CpuOptions::threads(threads);
    let strides = BatchStrides {
        count: batch,
        a: m * k,
        b: k * n,
        c: m * n,
    };
    let mut ours = || {
        let b_view = MatRef::strided(&b, k, n, rsb, csb);
        let result = sgemm_batched(
            &strides,
            1.0,
            MatRef::row_major(&a, m, k),
            b_view,
            0.0,
            MatMut::row_major(&mut c, m, n),
            &opts,
        );
        if let Err(e) = result {
            panic!("smelt sgemm failed on a case it must support: {e}");
        }
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
    let pool = pool.unwrap_or_else(|e| panic!("cannot start {threads} threads: {e}"));
    let per_batch = |i: usize, c: &mut [f32], parallel: gemm::Parallelism| {
        // SAFETY: every pointer addresses batch i of a buffer sized for `batch` matrices.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr().add(i * m * k),
                1,
                k as isize,
                b.as_ptr().add(i * k * n),
                csb as isize,
                rsb as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallel,
            )
        }
    };
    // One product runs the crate's own threading; a batch spreads products over the pool.
    let parallel = if batch == 1 && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let mut gemm_crate =
        || pool.install(|| each_batch(&pool, &mut c_peer, m * n, |i, c| per_batch(i, c, parallel)));
    let mut c_mm = vec![0.0f32; batch * m * n];
    let one = |i: usize, c: &mut [f32]| {
        // SAFETY: as above, batch i of buffers sized for `batch` matrices.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr().add(i * m * k),
                k as isize,
                1,
                b.as_ptr().add(i * k * n),
                rsb as isize,
                csb as isize,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        }
    };
    let mut matrixmultiply = || each_batch(&pool, &mut c_mm, m * n, one);
    let t = interleaved(
        &mut [&mut ours, &mut gemm_crate, &mut matrixmultiply],
        5,
        budget,
    );
    [t[0], t[1], t[2]]
}

/// Runs `f(i, c_i)` on each batch's output `c_i` (`len` floats of `out`): on the caller for a
/// single batch, spread over `pool` for several.
fn each_batch(
    pool: &rayon::ThreadPool,
    out: &mut [f32],
    len: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    if out.len() == len {
        f(0, out);
    } else {
        pool.install(|| {
            out.par_chunks_mut(len)
                .enumerate()
                .for_each(|(i, c)| f(i, c))
        });
    }
}

/// Deterministic non-trivial contents.
fn filled(len: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1009) as f32 / 1009.0 * scale - 0.1)
        .collect()
}

fn case_rows(
    case: &Case,
    threads: usize,
    peak: f64,
    secs: &[f64; 3],
    torch: &[PeerFigure],
) -> Vec<Row> {
    let flops = 2.0 * (case.batch * case.m * case.n * case.k) as f64;
    let ours = flops / secs[0] / 1e9;
    let mut figures: Vec<(String, f64, f64)> = ["smelt", "gemm-crate", "matrixmultiply"]
        .iter()
        .zip(secs)
        .map(|(name, &s)| (name.to_string(), s * 1e3, flops / s / 1e9))
        .collect();
    figures.extend(torch.iter().map(|p| (p.name.clone(), p.median_ms, p.value)));
    let op = if case.batch > 1 {
        "sgemm_batched"
    } else {
        "sgemm"
    };
    figures
        .into_iter()
        .map(|(name, ms, gflops)| {
            Row(vec![
                ("impl", Value::Text(name)),
                ("op", Value::Text(op.into())),
                ("batch", Value::Int(case.batch)),
                ("m", Value::Int(case.m)),
                ("k", Value::Int(case.k)),
                ("n", Value::Int(case.n)),
                ("transb", Value::Text(case.transb.to_string())),
                ("threads", Value::Int(threads)),
                ("median_ms", Value::Num(ms)),
                ("gflops", Value::Num(gflops)),
                ("of_peak", Value::Num(gflops / (peak * threads as f64))),
                ("smelt_x", Value::Num(ours / gflops)),
            ])
        })
        .collect()
}

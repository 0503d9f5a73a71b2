//! `smelt bench gemm`: our SGEMM beside the `gemm` and `matrixmultiply` crates (and, with
//! `--torch`, PyTorch and numpy through `bench/peers/sgemm_torch.py`), plus the FMA peak.

use crate::args::{elements, parse_dims, Args, MAX_ELEMENTS};
use crate::peak::Peaks;
use crate::peers::{self, PeerFigure};
use crate::report::{Row, Value};
use crate::timing::interleaved;
use rayon::prelude::*;
use smelt_kernels::cpu::gemm::{sgemm_batched, BatchStrides, MatMut, MatRef};
use smelt_kernels::cpu::threads::install;
use smelt_kernels::cpu::{CpuOptions, Isa};
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
/// The large GEMM a batched case's rate is compared with (BERT-base's FFN up-projection),
/// with B transposed or not as the case.
const LARGE_REFERENCE: Case = Case {
    m: 1024,
    k: 768,
    n: 3072,
    batch: 1,
    transb: false,
};
/// Attention per head (batch 8 x 12 heads): Q K^T and P V.
const ATTENTION_SHAPES: [(usize, usize, usize); 2] = [(128, 64, 128), (128, 128, 64)];

/// The cases selected by the command line.
fn cases(args: &Args) -> Result<Vec<Case>, String> {
    let transb = args.flag("transb");
    let batch = args.count("batch", 1, MAX_ELEMENTS)?;
    let shapes = args.all("shape");
    if shapes.is_empty() && !args.all("batch").is_empty() {
        return Err("--batch applies to --shape cases (the default cases set their own)".into());
    }
    if !shapes.is_empty() {
        return shapes
            .iter()
            .map(|s| {
                let [m, k, n] = parse_dims::<3>(s, "1024x768x3072 (MxKxN)")?;
                for (operand, rows, cols) in [("A", m, k), ("B", k, n), ("C", m, n)] {
                    elements(&format!("operand {operand}"), &[batch, rows, cols])?;
                }
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

/// Runs the gemm benchmark: the FMA peaks (measured before the cases and after them, the
/// higher of each kept: [`Peaks::max`]) and the cases' rows.
pub fn run(args: &Args, threads: usize) -> Result<(Peaks, Vec<Row>), String> {
    let cases = cases(args)?;
    let isa = args.isa()?;
    let budget = Duration::from_millis(args.get("budget-ms", 1500)?);
    let before = Peaks::measure(threads);
    let mut figures = Vec::new();
    for case in &cases {
        let timed = measure(case, threads, isa, budget)?;
        let torch = if args.flag("torch") {
            peers::sgemm_torch(case, threads, budget)?
        } else {
            Vec::new()
        };
        figures.push((timed, torch));
    }
    let peaks = before.max(Peaks::measure(threads));
    let rows = cases
        .iter()
        .zip(&figures)
        .flat_map(|(case, (timed, torch))| case_rows(case, isa, &peaks, timed, torch))
        .collect();
    Ok((peaks, rows))
}

/// One implementation's median time on a case.
struct Timed {
    name: String,
    case: Case,
    threads: usize,
    secs: f64,
}

/// Median seconds of smelt, the `gemm` crate and `matrixmultiply` on one case, interleaved
/// with our own references: `smelt-1t` (the case on one thread, when `threads > 1`) and
/// `smelt-large` (the large GEMM [`LARGE_REFERENCE`], for a batched case).
///
/// Everything runs inside our kernels' thread pool ([`install`]), the `gemm` crate's threads
/// included: with a second pool, its idle workers spin on the same cores after each of its
/// calls and slow whatever runs next (on this 2-core machine that cost our 2-thread calls
/// 0.3-0.8 ms each, and made our thread scaling look like 1.63-1.81 instead of 1.91-1.97).
/// Calls from inside the pool are also how the model runs them (no hand-over per call).
/// `matrixmultiply` cannot run on a pool of ours: it runs on its own threads, as many as
/// [`matrixmultiply_threads`] says (its row says so), its products one after the other.
fn measure(case: &Case, threads: usize, isa: Isa, budget: Duration) -> Result<Vec<Timed>, String> {
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
    let mut c_mm = vec![0.0f32; batch * m * n];
    let mut c_one = vec![0.0f32; batch * m * n];
    let (rsb, csb) = if transb { (1, k) } else { (n, 1) };
    let opts = CpuOptions::threads(threads).isa(isa);
    let one_thread = CpuOptions::threads(1).isa(isa);
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
    // One product runs the crate's own threading (on our pool); a batch spreads products.
    let parallel = if batch == 1 && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
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
    let large = Case {
        transb,
        ..LARGE_REFERENCE
    };
    let mut large_operands = (batch > 1).then(|| {
        (
            filled(large.m * large.k, 0.25),
            filled(large.k * large.n, 0.5),
            vec![0.0f32; large.m * large.n],
        )
    });
    // The first error of our kernels, reported after the loop (the peers return none).
    let failure = std::sync::Mutex::new(None);
    let record = |result: Result<(), String>| {
        if let Err(e) = result {
            if let Ok(mut first) = failure.lock() {
                first.get_or_insert(e);
            }
        }
    };
    let timed = install(threads, || {
        let mut ours = || record(run_smelt(case, &a, &b, &mut c, &opts));
        let mut gemm_crate = || {
            each_batch(threads, &mut c_peer, m * n, |i, c| {
                per_batch(i, c, parallel)
            })
        };
        // Products in order, each on the crate's own threads (see `matrixmultiply_threads`).
        let mut matrixmultiply = || each_batch(1, &mut c_mm, m * n, one);
        let mut ours_one_thread = || record(run_smelt(case, &a, &b, &mut c_one, &one_thread));
        let mut ours_large = || {
            if let Some((a, b, c)) = large_operands.as_mut() {
                record(run_smelt(&large, a, b, c, &opts));
            }
        };
        let mut entries: Vec<(&str, Case, usize, &mut dyn FnMut())> = vec![
            ("smelt", *case, threads, &mut ours),
            ("gemm-crate", *case, threads, &mut gemm_crate),
            (
                "matrixmultiply",
                *case,
                matrixmultiply_threads(threads),
                &mut matrixmultiply,
            ),
        ];
        // Our own references, in the same loop so that noise hits them alike: the same case
        // on one thread (thread scaling), and for a batch our large-GEMM rate.
        if threads > 1 {
            entries.push(("smelt-1t", *case, 1, &mut ours_one_thread));
        }
        if batch > 1 {
            entries.push(("smelt-large", large, threads, &mut ours_large));
        }
        let (labels, mut impls): (Vec<_>, Vec<&mut dyn FnMut()>) = entries
            .into_iter()
            .map(|(name, case, threads, f)| ((name, case, threads), f))
            .unzip();
        let t = interleaved(&mut impls, 5, budget);
        labels
            .into_iter()
            .zip(t)
            .map(|((name, case, threads), secs)| Timed {
                name: name.into(),
                case,
                threads,
                secs,
            })
            .collect()
    });
    match failure.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(timed),
    }
}

/// The threads `matrixmultiply` runs a product on when asked for `threads`: its `threading`
/// feature has its own pool (not ours, not rayon) of at most 4 threads, in a tree of 1, 2 or
/// 4 (`MAX_THREADS` and the levels of `src/threading.rs` in matrixmultiply 0.3), sized from
/// `MATMUL_NUM_THREADS`, which `smelt bench` sets to `--threads`.
fn matrixmultiply_threads(threads: usize) -> usize {
    match threads {
        0 | 1 => 1,
        2 | 3 => 2,
        _ => 4,
    }
}

/// Our strided-batched SGEMM on `case` (B read transposed with `case.transb`).
fn run_smelt(
    case: &Case,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    opts: &CpuOptions,
) -> Result<(), String> {
    let Case { m, k, n, batch, .. } = *case;
    let (rsb, csb) = if case.transb { (1, k) } else { (n, 1) };
    let strides = BatchStrides {
        count: batch,
        a: m * k,
        b: k * n,
        c: m * n,
    };
    let result = sgemm_batched(
        &strides,
        1.0,
        MatRef::row_major(a, m, k),
        MatRef::strided(b, k, n, rsb, csb),
        0.0,
        MatMut::row_major(c, m, n),
        opts,
    );
    result.map_err(|e| format!("smelt sgemm on {case:?}: {e}"))
}

/// Runs `f(i, c_i)` on each batch's output `c_i` (`len` floats of `out`): in order on the
/// caller for a single batch or one thread, else spread over the current pool (ours, inside
/// [`install`]).
fn each_batch(threads: usize, out: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if out.len() == len || threads == 1 {
        out.chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
    } else {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

/// Deterministic non-trivial contents.
fn filled(len: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1009) as f32 / 1009.0 * scale - 0.1)
        .collect()
}

/// The table rows of one case: every implementation's figure, our kernels' `isa` on our rows,
/// and, in `smelt_x`, our rate over its rate (for `smelt-1t` that is our thread scaling, for
/// `smelt-large` the batched rate as a fraction of the large-GEMM rate).
fn case_rows(
    case: &Case,
    isa: Isa,
    peaks: &Peaks,
    timed: &[Timed],
    torch: &[PeerFigure],
) -> Vec<Row> {
    let gflops = |c: &Case, secs: f64| 2.0 * (c.batch * c.m * c.n * c.k) as f64 / secs / 1e9;
    let ours = gflops(case, timed[0].secs);
    let mut figures: Vec<(String, Case, usize, f64, f64)> = timed
        .iter()
        .map(|t| {
            let rate = gflops(&t.case, t.secs);
            (t.name.clone(), t.case, t.threads, t.secs * 1e3, rate)
        })
        .collect();
    let run_threads = timed[0].threads;
    // A peak measured on as many threads as the row ran: 1, or the run's count (a peer on
    // another count has none).
    let peak = |threads: usize| {
        if threads == 1 || threads == run_threads {
            peaks.at(threads)
        } else {
            f64::NAN
        }
    };
    figures.extend(
        torch
            .iter()
            .map(|p| (p.name.clone(), *case, run_threads, p.median_ms, p.value)),
    );
    figures
        .into_iter()
        .map(|(name, c, threads, ms, rate)| {
            let op = if c.batch > 1 {
                "sgemm_batched"
            } else {
                "sgemm"
            };
            let kernels = if name.starts_with("smelt") {
                isa.name()
            } else {
                "-"
            };
            Row(vec![
                ("impl", Value::Text(name)),
                ("op", Value::Text(op.into())),
                ("batch", Value::Int(c.batch)),
                ("m", Value::Int(c.m)),
                ("k", Value::Int(c.k)),
                ("n", Value::Int(c.n)),
                ("transb", Value::Bool(c.transb)),
                ("threads", Value::Int(threads)),
                ("isa", Value::Text(kernels.into())),
                ("median_ms", Value::Num(ms)),
                ("gflops", Value::Num(rate)),
                ("of_peak", Value::Num(rate / peak(threads))),
                ("smelt_x", Value::Num(ours / rate)),
            ])
        })
        .collect()
}

//! `smelt`: the command line of the smelt engine.
//!
//! ```text
//! smelt demo          [--steps N] [--threads N] [--batch B] [--seq T]
//! smelt embed         --model DIR [--batch N] [--threads N] [--no-truncate] [--stdin] [TEXT ...]
//! smelt tokenize      --model DIR [--stdin] [TEXT ...]
//! smelt run           --model DIR --input IN.safetensors --output OUT.safetensors [--grad] [--threads N]
//! smelt ptx run       FILE.ptx --kernel NAME --grid X[,Y,Z] --block X[,Y,Z] [--shared BYTES]
//!                     [--buffers IN.safetensors] [--args ARGS] [--max-instructions N]
//!                     --output OUT.safetensors
//! smelt bench bert    [--config NAME] [--batch B] [--seq T] [--phase forward|train|both] [--dropout P] [--runs R] [--rounds K] [--threads N] [--prepack] [--torch] [--onnx] [--profile] [--json]
//! smelt bench embed   --model DIR [--count N] [--batch N] [--runs R] [--threads N] [--prepack] [--torch] [--json]
//! smelt bench gemm    [--shape MxKxN ...] [--batch B] [--transb] [--threads N] [--isa I] [--torch] [--json]
//! smelt bench softmax [--shape ROWSxCOLS ...] [--threads N] [--isa I] [--json]
//! ```

mod args;
mod bert_bench;
mod bert_profile;
mod demo;
mod embed_bench;
mod embed_cmd;
mod gemm_bench;
mod gpu_bench;
mod peak;
mod peers;
mod ptx_cmd;
mod report;
mod run_cmd;
mod softmax_bench;
mod timing;

use args::Args;
use report::{Row, Value};
use std::process::ExitCode;

const USAGE: &str = "usage:
  smelt demo          [--steps N] [--threads N] [--batch B] [--seq T]
  smelt embed         --model DIR [--batch N] [--threads N] [--no-truncate] [--stdin] [TEXT ...]
  smelt tokenize      --model DIR [--stdin] [TEXT ...]
  smelt run           --model DIR --input IN.safetensors --output OUT.safetensors [--grad] [--threads N]
  smelt ptx run       FILE.ptx --kernel NAME --grid X[,Y,Z] --block X[,Y,Z] [--shared BYTES]
                      [--buffers IN.safetensors] [--args ARGS] [--max-instructions N]
                      --output OUT.safetensors
  smelt bench bert    [--config bert-base|distilbert-base|minilm|tiny] [--batch B] [--seq T]
                      [--phase forward|train|both] [--dropout P] [--runs R] [--rounds K] [--threads N]
                      [--prepack] [--torch] [--onnx] [--profile] [--json]
  smelt bench embed   --model DIR [--count N] [--batch N] [--runs R] [--threads N] [--prepack] [--torch] [--json]
  smelt bench gemm    [--shape MxKxN ...] [--batch B] [--transb] [--threads N] [--isa I] [--torch] [--json]
  smelt bench softmax [--shape ROWSxCOLS ...] [--threads N] [--isa I] [--json]
  smelt bench attention [--device cuda|ptx-sim] [--batch 32 (1 on ptx-sim)] [--heads 12] [--seq 128,512 (128)] [--head-dim 64]
                      [--launches K] [--torch] [--json]
  smelt bench layernorm [--device cuda|ptx-sim] [--rows 65536 (4096 on ptx-sim)] [--hidden 768,1024] [--dtype f32|bf16]
                      [--launches K] [--torch] [--json]
                 (GPU kernels: --device cuda needs a build with --features cuda and a GPU)
options:
  --threads N    threads for every implementation (default: all cores)
  --isa I        bench gemm|softmax: our kernels for avx512, avx2 or portable (default: the fastest
                 this CPU runs), to compare microkernels on one machine; the rows name it
  --json         one JSON object per line instead of a table
  --torch        also run the PyTorch peer script (bench/peers/*_torch.py) on the same cases
  --onnx         bench bert: also run bench/peers/bert_onnx.py (ONNX Runtime, forward)
  --dropout P    bench bert: training steps in HF's training mode, dropping P of the hidden
                 states and attention probabilities (ours and PyTorch's; default 0)
  --prepack      bench bert, bench embed: packs our model's linear weights once for the GEMM before
                 timing (Model::prepack, as ONNX Runtime packs constant weights at load), so no
                 forward packs them again; costs a second copy of those weights in memory
  --profile      bench bert: then runs our phases once more on a profiled tape and prints a
                 second table: per op and direction, calls and ms per step and the fraction of
                 the step (share), then the time outside every op and the whole step; with
                 --torch, PyTorch's time per op beside ours (torch.profiler, same op names)
  --rounds K     bench bert: K rounds (default 3) in which every implementation runs one warm-up
                 and R timed runs (--runs, default 5) in turn, the order rotating each round; the
                 peers stay up between rounds. median_ms is the median of the round medians,
                 smelt_x the median over rounds of the peer's time over ours in that round
  --budget-ms T  time spent per case (default 1500 for gemm, 1000 for softmax); within it
                 the implementations take turns, each timed on the second of two calls in a
                 row, all on our thread pool (peers included). bench gemm also times, in the
                 same loop, our own references: smelt-1t (the case on 1 thread; its smelt_x
                 is our thread scaling) and, for --batch > 1, smelt-large (1024x768x3072; its
                 smelt_x is the batched rate over that rate); with --threads > 1 it measures
                 the FMA peak on 1 thread too (that row's smelt_x: the FMA loop's own scaling
                 in this run, the ceiling of ours)
  --launches K   bench attention|layernorm: each timing covers K calls in a row and one
                 synchronisation (default 10 on a GPU, 1 in ptx-sim); the peer times its K
                 calls between two CUDA events
  --args ARGS    ptx run: the kernel's parameters in order, comma-separated: buf:NAME (tensor NAME
                 of --buffers), zeros:NAME:BYTES, u32:V, i32:V, u64:V, i64:V, f32:V, f64:V;
                 every buffer is written to --output under its name (zeros as U8 [BYTES])
  --max-instructions N  ptx run: stop with an error after N thread-instructions (default
                 1000000000; each block's setup counts too), so a kernel that never ends fails";

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    match run(&raw) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("smelt: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(raw: &[String]) -> Result<(), String> {
    // `--help` in the command's own words (`smelt bench gemm --help`), not among the texts
    // that `embed` and `tokenize` take later on the line.
    if raw.iter().take(3).any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    match raw.first().map(String::as_str) {
        Some("bench") => bench(&raw[1..]),
        Some("demo") => {
            let args = Args::parse(&raw[1..], &[])?;
            match args.positional.first() {
                Some(extra) => Err(format!("unexpected argument {extra:?}\n{USAGE}")),
                None => demo::run(&args),
            }
        }
        Some("embed") => embed_cmd::embed(&Args::parse(&raw[1..], &["no-truncate", "stdin"])?),
        Some("tokenize") => embed_cmd::tokenize(&Args::parse(&raw[1..], &["stdin"])?),
        Some("run") => {
            let args = Args::parse(&raw[1..], &["grad"])?;
            match args.positional.first() {
                Some(extra) => Err(format!("unexpected argument {extra:?}\n{USAGE}")),
                None => run_cmd::run(&args),
            }
        }
        Some("ptx") => match raw.get(1).map(String::as_str) {
            Some("run") => ptx_cmd::run(&Args::parse(&raw[2..], &[])?),
            Some(other) => Err(format!("unknown ptx command {other:?}\n{USAGE}")),
            None => Err(format!("ptx what?\n{USAGE}")),
        },
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n{USAGE}")),
        None => Err(USAGE.to_string()),
    }
}

fn bench(raw: &[String]) -> Result<(), String> {
    let what = raw.first().ok_or_else(|| format!("bench what?\n{USAGE}"))?;
    let args = Args::parse(
        &raw[1..],
        &["json", "transb", "torch", "onnx", "profile", "prepack"],
    )?;
    if let Some(extra) = args.positional.first() {
        return Err(format!("unexpected argument {extra:?}\n{USAGE}"));
    }
    let threads = args.threads()?;
    // matrixmultiply reads its thread count from the environment on first use.
    std::env::set_var("MATMUL_NUM_THREADS", threads.to_string());
    let json = args.flag("json");
    let rows = match what.as_str() {
        "gemm" => {
            args.only(&[
                "shape",
                "batch",
                "transb",
                "threads",
                "isa",
                "torch",
                "json",
                "budget-ms",
            ])?;
            let (peaks, cases) = gemm_bench::run(&args, threads)?;
            let mut rows = vec![peak_row(peaks.all, threads, f64::NAN)];
            if threads > 1 {
                rows.push(peak_row(peaks.one, 1, peaks.all / peaks.one));
            }
            rows.extend(cases);
            rows
        }
        "attention" => {
            args.only(&[
                "device",
                "batch",
                "heads",
                "seq",
                "head-dim",
                "launches",
                "torch",
                "json",
                "budget-ms",
            ])?;
            gpu_bench::attention(&args)?
        }
        "layernorm" => {
            args.only(&[
                "device",
                "rows",
                "hidden",
                "dtype",
                "launches",
                "torch",
                "json",
                "budget-ms",
            ])?;
            gpu_bench::layernorm(&args)?
        }
        "softmax" => {
            args.only(&["shape", "threads", "isa", "json", "budget-ms"])?;
            softmax_bench::run(&args, threads)?
        }
        "embed" => {
            args.only(&[
                "model", "count", "batch", "runs", "threads", "prepack", "torch", "json",
            ])?;
            embed_bench::run(&args, threads)?
        }
        "bert" => {
            args.only(&[
                "config", "batch", "seq", "phase", "dropout", "runs", "rounds", "threads", "torch",
                "onnx", "json", "profile", "prepack",
            ])?;
            let (rows, profile) = bert_bench::run(&args, threads)?;
            report::print(&rows, json);
            if !profile.is_empty() {
                if !json {
                    println!();
                }
                report::print(&profile, json);
            }
            return Ok(());
        }
        other => return Err(format!("unknown benchmark {other:?}\n{USAGE}")),
    };
    report::print(&rows, json);
    Ok(())
}

/// The FMA peak measured on `threads` cores at once (`total` GFLOP/s), as a row; `scaling`
/// goes in its `smelt_x` column (for the 1-thread row of a multi-thread run: the FMA loop's
/// own N-thread over 1-thread ratio, the ceiling of our `smelt-1t` row's).
fn peak_row(total: f64, threads: usize, scaling: f64) -> Row {
    Row(vec![
        ("impl", Value::Text("fma-peak".into())),
        ("op", Value::Text("fma".into())),
        ("batch", Value::Int(1)),
        ("m", Value::Int(0)),
        ("k", Value::Int(0)),
        ("n", Value::Int(0)),
        ("transb", Value::Text("-".into())),
        ("threads", Value::Int(threads)),
        ("isa", Value::Text("-".into())),
        ("median_ms", Value::Num(f64::NAN)),
        ("gflops", Value::Num(total)),
        ("of_peak", Value::Num(1.0)),
        ("smelt_x", Value::Num(scaling)),
    ])
}

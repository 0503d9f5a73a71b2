//! `smelt`: the command line of the smelt engine.
//!
//! ```text
//! smelt demo          [--steps N] [--threads N] [--batch B] [--seq T]
//! smelt embed         --model DIR [--batch N] [--threads N] [--no-truncate] [--stdin] [--] [TEXT ...]
//! smelt tokenize      --model DIR [--stdin] [--] [TEXT ...]
//! smelt run           --model DIR --input IN.safetensors --output OUT.safetensors [--grad] [--threads N]
//! smelt ptx run       FILE.ptx --kernel NAME --grid X[,Y,Z] --block X[,Y,Z] [--shared BYTES]
//!                     [--buffers IN.safetensors] [--args ARGS] [--max-instructions N]
//!                     --output OUT.safetensors
//! smelt bench bert    [--config NAME] [--batch B] [--seq T] [--phase forward|train|both] [--dropout P] [--runs R] [--rounds K] [--threads N] [--prepack] [--torch] [--onnx] [--profile] [--json]
//! smelt bench embed   --model DIR [--count N] [--batch N] [--runs R] [--threads N] [--prepack] [--torch] [--json]
//! smelt bench gemm    [--shape MxKxN ...] [--batch B] [--transb] [--threads N] [--isa I] [--torch] [--json]
//! smelt bench softmax [--shape ROWSxCOLS ...] [--threads N] [--isa I] [--json]
//! ```

// Every line on stdout goes through `output::out!`/`outln!`, which report a closed or full
// stdout as an error: `println!` panics there.
#![deny(clippy::print_stdout)]

mod args;
mod bert_bench;
mod bert_profile;
mod demo;
mod embed_bench;
mod embed_cmd;
mod gemm_bench;
mod gpu_bench;
mod memory;
mod output;
mod peak;
mod peers;
mod ptx_cmd;
mod report;
mod run_cmd;
mod softmax_bench;
mod timing;

use args::Args;
use output::outln;
use report::{Row, Value};
use std::process::ExitCode;

const USAGE: &str = "usage:
  smelt demo          [--steps N] [--threads N] [--batch B] [--seq T]
  smelt embed         --model DIR [--batch N] [--threads N] [--no-truncate] [--stdin] [--] [TEXT ...]
  smelt tokenize      --model DIR [--stdin] [--] [TEXT ...]
  smelt run           --model DIR --input IN.safetensors --output OUT.safetensors [--grad] [--threads N]
  smelt ptx run       FILE.ptx --kernel NAME --grid X[,Y,Z] --block X[,Y,Z] [--shared BYTES]
                      [--buffers IN.safetensors] [--args ARGS] [--max-instructions N]
                      --output OUT.safetensors
  smelt bench bert    [--config bert-base|distilbert-base|minilm|tiny] [--batch B] [--seq T (128; tiny: 64)]
                      [--phase forward|train|both] [--dropout P] [--runs R] [--rounds K] [--threads N]
                      [--prepack] [--torch] [--onnx] [--profile] [--json]
  smelt bench embed   --model DIR [--count N] [--batch N] [--runs R] [--threads N] [--prepack] [--torch] [--json]
  smelt bench gemm    [--shape MxKxN ...] [--batch B] [--transb] [--threads N] [--isa I] [--budget-ms T]
                      [--torch] [--json]
  smelt bench softmax [--shape ROWSxCOLS ...] [--threads N] [--isa I] [--budget-ms T] [--json]
  smelt bench attention [--device cuda|ptx-sim] [--batch 32 (1 on ptx-sim)] [--heads 12] [--seq 128,512 (128)] [--head-dim 64]
                      [--dtype f32|bf16] [--launches K] [--budget-ms T] [--torch] [--json]
  smelt bench layernorm [--device cuda|ptx-sim] [--rows 65536 (4096 on ptx-sim)] [--hidden 768,1024] [--dtype f32|bf16]
                      [--launches K] [--budget-ms T] [--torch] [--json]
                 (GPU kernels: --device cuda needs a build with --features cuda and a GPU)
options:
  --threads N    threads for every implementation (default: all cores; at most 4 per core, 8 on smaller machines)
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
  --budget-ms T  time spent per case (default 1500 for gemm, 1000 for softmax, 2000 for
                 attention and layernorm); within it the implementations take turns, each timed
                 on the second of two calls in a row, on our thread pool (the gemm crate's
                 threads included; matrixmultiply runs on its own, at most 4, and its rows say
                 how many). bench gemm also times, in the
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
    let first = raw.first().map(String::as_str);
    if matches!(first, Some("help" | "--help" | "-h")) {
        return outln!("{USAGE}");
    }
    // The command's words, the rest of the line, and the command's options without a value.
    let (command, rest, flags): (&[String], &[String], &[&str]) = match first {
        Some("bench" | "ptx") if raw.len() < 2 => {
            return Err(format!("{} what?\n{USAGE}", raw[0]));
        }
        Some("bench") => (
            &raw[..2],
            &raw[2..],
            &["json", "transb", "torch", "onnx", "profile", "prepack"],
        ),
        Some("ptx") => (&raw[..2], &raw[2..], &[]),
        Some("embed") => (&raw[..1], &raw[1..], &["no-truncate", "stdin"]),
        Some("tokenize") => (&raw[..1], &raw[1..], &["stdin"]),
        Some("run") => (&raw[..1], &raw[1..], &["grad"]),
        Some(_) => (&raw[..1], &raw[1..], &[]),
        None => return Err(USAGE.to_string()),
    };
    let args = Args::parse(rest, flags);
    // `--help` anywhere an option can be (`smelt bench gemm --shape 64x64x64 --help`).
    if args.help || command.iter().any(|w| w == "--help" || w == "-h") {
        return outln!("{USAGE}");
    }
    let no_positional = || match args.positional.first() {
        Some(extra) => Err(format!("unexpected argument {extra:?}\n{USAGE}")),
        None => Ok(()),
    };
    match command[0].as_str() {
        "bench" => {
            no_positional()?;
            bench(&command[1], &args)
        }
        "demo" => {
            no_positional()?;
            demo::run(&args)
        }
        "embed" => embed_cmd::embed(&args),
        "tokenize" => embed_cmd::tokenize(&args),
        "run" => {
            no_positional()?;
            run_cmd::run(&args)
        }
        "ptx" => match command[1].as_str() {
            "run" => ptx_cmd::run(&args),
            other => Err(format!("unknown ptx command {other:?}\n{USAGE}")),
        },
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

/// The options each benchmark takes (its flags included), as its usage line lists them.
const BENCH_OPTIONS: [(&str, &[&str]); 6] = [
    (
        "bert",
        &[
            "config", "batch", "seq", "phase", "dropout", "runs", "rounds", "threads", "torch",
            "onnx", "json", "profile", "prepack",
        ],
    ),
    (
        "embed",
        &[
            "model", "count", "batch", "runs", "threads", "prepack", "torch", "json",
        ],
    ),
    (
        "gemm",
        &[
            "shape",
            "batch",
            "transb",
            "threads",
            "isa",
            "budget-ms",
            "torch",
            "json",
        ],
    ),
    ("softmax", &["shape", "threads", "isa", "budget-ms", "json"]),
    (
        "attention",
        &[
            "device",
            "batch",
            "heads",
            "seq",
            "head-dim",
            "dtype",
            "launches",
            "budget-ms",
            "torch",
            "json",
        ],
    ),
    (
        "layernorm",
        &[
            "device",
            "rows",
            "hidden",
            "dtype",
            "launches",
            "budget-ms",
            "torch",
            "json",
        ],
    ),
];

fn bench(what: &str, args: &Args) -> Result<(), String> {
    let (_, options) = BENCH_OPTIONS
        .iter()
        .find(|(name, _)| *name == what)
        .ok_or_else(|| format!("unknown benchmark {what:?}\n{USAGE}"))?;
    args.only(options)?;
    let threads = args.threads()?;
    // matrixmultiply reads its thread count from the environment on first use.
    std::env::set_var("MATMUL_NUM_THREADS", threads.to_string());
    let json = args.flag("json");
    let rows = match what {
        "gemm" => {
            let (peaks, cases) = gemm_bench::run(args, threads)?;
            let mut rows = vec![peak_row(peaks.all, threads, f64::NAN)];
            if threads > 1 {
                rows.push(peak_row(peaks.one, 1, peaks.all / peaks.one));
            }
            rows.extend(cases);
            rows
        }
        "attention" => gpu_bench::attention(args)?,
        "layernorm" => gpu_bench::layernorm(args)?,
        "softmax" => softmax_bench::run(args, threads)?,
        "embed" => embed_bench::run(args, threads)?,
        _ => {
            let (rows, profile) = bert_bench::run(args, threads)?;
            report::print(&rows, json)?;
            if !profile.is_empty() {
                if !json {
                    outln!()?;
                }
                report::print(&profile, json)?;
            }
            return Ok(());
        }
    };
    report::print(&rows, json)
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
        ("transb", Value::Null),
        ("threads", Value::Int(threads)),
        ("isa", Value::Text(peak::peak_isa().name().into())),
        ("median_ms", Value::Num(f64::NAN)),
        ("gflops", Value::Num(total)),
        ("of_peak", Value::Num(1.0)),
        ("smelt_x", Value::Num(scaling)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_benchmark_option_is_in_its_usage_lines() {
        for (name, options) in BENCH_OPTIONS {
            let head = format!("  smelt bench {name} ");
            let start = USAGE
                .find(&head)
                .unwrap_or_else(|| panic!("no usage line for bench {name}"));
            // Its lines run to the next command's (or to the options list).
            let rest = &USAGE[start + head.len()..];
            let end = ["\n  smelt ", "\noptions:"]
                .iter()
                .filter_map(|next| rest.find(next))
                .min()
                .unwrap_or(rest.len());
            for option in options {
                assert!(
                    rest[..end].contains(&format!("--{option}")),
                    "bench {name}: --{option} missing from its usage"
                );
            }
        }
    }
}

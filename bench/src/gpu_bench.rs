//! `smelt bench attention` and `smelt bench layernorm` on a GPU device: our fused attention
//! (forward, backward) in TFLOP/s and our layer norm (forward, backward) in GB/s beside the
//! device-to-device copy bandwidth measured in the same run, and with `--torch` PyTorch's
//! `scaled_dot_product_attention` and `layer_norm` on the same device (bench/peers/attention_torch.py).
//!
//! `--device cuda` needs a build with `--features cuda` and a GPU; `--device ptx-sim` runs the
//! same launches in the interpreter (a smoke test of the command, not a speed figure).
//!
//! Each timing covers `--launches K` calls in a row (default 10 on a GPU, 1 in the
//! interpreter) and one synchronisation, divided by K, so that the host's cost of a launch
//! overlaps the device's work as in a model's step. Ours is the host's clock around the K
//! launches and the synchronisation; the PyTorch peer times its K calls between two CUDA
//! events (the difference is one launch latency in K calls).

use std::cell::RefCell;
use std::time::Duration;

use smelt_engine::Device;
use smelt_kernels::cpu::attention::AttentionShape;
use smelt_kernels::gpu::attention::Products;
use smelt_kernels::gpu::{attention, layernorm, GpuBuffer, GpuDevice};

use crate::args::{elements, Args, MAX_ELEMENTS};
use crate::peers::{json_lines, wait_for};
use crate::report::{Row, Value};
use crate::timing::interleaved;

fn device(args: &Args) -> Result<Device, String> {
    let name = args.get("device", "cuda".to_string())?;
    let mut dev = Device::from_name(&name).map_err(|e| e.to_string())?;
    if dev.gpu().is_none() {
        return Err(format!(
            "--device {name}: these benchmarks run GPU kernels (cuda, or ptx-sim for a smoke test)"
        ));
    }
    Ok(dev)
}

/// The comma-separated sizes of `--name` (`default` when absent), each at least 1.
fn list(args: &Args, name: &str, default: &str) -> Result<Vec<usize>, String> {
    args.get(name, default.to_string())?
        .split(',')
        .map(|s| match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("--{name}: {s:?} is not a positive whole number")),
        })
        .collect()
}

/// Values in a fixed pseudo-random pattern in [-1, 1).
fn pattern(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5 - 1.0)
        .collect()
}

/// Whether `--dtype` (f32, the default, or bf16) asks for bf16 storage.
fn bf16_flag(args: &Args) -> Result<bool, String> {
    match args.get("dtype", "f32".to_string())?.as_str() {
        "f32" => Ok(false),
        "bf16" => Ok(true),
        other => Err(format!("--dtype {other:?}: want f32 or bf16")),
    }
}

/// The name `--dtype` gives the storage `bf16_flag` read.
fn dtype_name(bf16: bool) -> &'static str {
    if bf16 {
        "bf16"
    } else {
        "f32"
    }
}

/// A buffer of `n` [`pattern`] values, stored as bf16 (truncated: benchmark inputs only need
/// to be finite and varied) or f32.
fn upload_pattern(
    dev: &mut dyn GpuDevice,
    n: usize,
    seed: usize,
    bf16: bool,
) -> Result<GpuBuffer, String> {
    let values = pattern(n, seed);
    let buf = if bf16 {
        let bits: Vec<u16> = values.iter().map(|v| (v.to_bits() >> 16) as u16).collect();
        dev.upload_u16(&bits)
    } else {
        dev.upload_f32(&values)
    };
    buf.map_err(|e| e.to_string())
}

/// A build of our attention kernels that `bench attention` times.
#[derive(Clone, Copy)]
enum Build {
    /// f32 storage, the products as given.
    F32(Products),
    /// bf16 storage (tensor cores).
    Bf16,
}

impl Build {
    /// The `kernel` field of its rows.
    fn name(self) -> &'static str {
        match self {
            Build::F32(Products::Fma) => "fma",
            Build::F32(Products::Tf32x3) => "tf32x3",
            Build::Bf16 => "bf16",
        }
    }
}

/// Whether the benchmark runs in the interpreter: a smoke test, whose defaults are sizes it
/// finishes in seconds.
fn in_interpreter(dev: &Device) -> bool {
    matches!(dev, Device::PtxSim(_))
}

/// Calls in a row per timing: `--launches`, by default 10 on a GPU and 1 in the interpreter.
fn launches(args: &Args, dev: &Device) -> Result<usize, String> {
    let default = if in_interpreter(dev) { 1 } else { 10 };
    args.count("launches", default, MAX_LAUNCHES)
}

/// The most calls in a row one timing may make.
const MAX_LAUNCHES: usize = 1000;

/// Times each closure (interleaved, median after warm-up); the first error stops the run.
fn time_all(
    fns: &mut [&mut dyn FnMut() -> Result<(), String>],
    budget: Duration,
) -> Result<Vec<f64>, String> {
    let error = RefCell::new(None);
    let mut wrapped: Vec<Box<dyn FnMut() + '_>> = fns
        .iter_mut()
        .map(|f| {
            let error = &error;
            Box::new(move || {
                if error.borrow().is_none() {
                    if let Err(e) = f() {
                        *error.borrow_mut() = Some(e);
                    }
                }
            }) as Box<dyn FnMut()>
        })
        .collect();
    let mut refs: Vec<&mut dyn FnMut()> = wrapped
        .iter_mut()
        .map(|b| b.as_mut() as &mut dyn FnMut())
        .collect();
    let t = interleaved(&mut refs, 5, budget);
    drop(refs);
    drop(wrapped);
    match error.into_inner() {
        Some(e) => Err(e),
        None => Ok(t),
    }
}

/// Seconds of one call, from the seconds of `launches` calls in a row.
fn per_launch(times: Vec<f64>, launches: usize) -> Vec<f64> {
    times.into_iter().map(|t| t / launches as f64).collect()
}

/// The device the PyTorch peer runs on: the GPU when ours runs on one (`--device cuda` or
/// `gpu`), else the CPU (a smoke test beside ptx-sim).
fn peer_device(dev: &Device) -> &'static str {
    if matches!(dev, Device::Cpu | Device::PtxSim(_)) {
        "cpu"
    } else {
        "cuda"
    }
}

/// Frees a case's buffers before the next case allocates its own (a GPU keeps every
/// allocation until it is freed).
fn free_all(dev: &mut dyn GpuDevice, buffers: &[GpuBuffer]) -> Result<(), String> {
    buffers
        .iter()
        .try_for_each(|&b| dev.free(b).map_err(|e| e.to_string()))
}

/// FLOPs of one attention forward and one backward, as FlashAttention counts them: the forward
/// is two `T x T x d` matrix products per batch element and head (`Q K^T`, `P V`), 2 FLOPs per
/// multiply-add, so `4 B H T^2 d`; the backward is 2.5 times that (five products: `Q K^T`
/// recomputed, `dO V^T`, `dV`, `dQ`, `dK`). Our backward recomputes `Q K^T` and `dO V^T` in
/// both of its kernels, work the count leaves out, as it leaves out the softmax's exponentials.
fn attention_flops(s: &AttentionShape) -> (f64, f64) {
    let forward =
        4.0 * s.batch as f64 * s.heads as f64 * (s.seq as f64).powi(2) * s.head_dim as f64;
    (forward, 2.5 * forward)
}

/// Runs `smelt bench attention` and returns its rows.
pub fn attention(args: &Args) -> Result<Vec<Row>, String> {
    let mut device = device(args)?;
    let (dev_name, peer) = (device.name(), peer_device(&device));
    // Our interpreted kernels beside PyTorch on the CPU: both rows, no ratio between them.
    let comparable = !in_interpreter(&device);
    let launches = launches(args, &device)?;
    // BERT-like batches on a GPU; one sequence in the interpreter, a smoke test (the GPU
    // defaults would take it hours).
    let (default_batch, default_seq) = if in_interpreter(&device) {
        (1, "128")
    } else {
        (32, "128,512")
    };
    let dev = device.gpu().ok_or("no GPU device")?;
    let (batch, heads, head_dim) = (
        args.count("batch", default_batch, MAX_ELEMENTS)?,
        args.count("heads", 12, MAX_ELEMENTS)?,
        args.count("head-dim", 64, MAX_ELEMENTS)?,
    );
    let budget = Duration::from_millis(args.get("budget-ms", 2000)?);
    let bf16 = bf16_flag(args)?;
    let dtype = dtype_name(bf16);
    let mut rows = Vec::new();
    for seq in list(args, "seq", default_seq)? {
        let shape = AttentionShape {
            batch,
            seq,
            heads,
            head_dim,
        };
        let n = elements("q", &[batch, seq, heads, head_dim])?;
        let e = |e: smelt_kernels::Error| e.to_string();
        let (q, k, v, dout) = (
            upload_pattern(dev, n, 1, bf16)?,
            upload_pattern(dev, n, 2, bf16)?,
            upload_pattern(dev, n, 3, bf16)?,
            upload_pattern(dev, n, 4, bf16)?,
        );
        let zeros = |dev: &mut dyn GpuDevice, len: usize| dev.alloc_f32(len).map_err(e);
        let stored = |dev: &mut dyn GpuDevice| {
            if bf16 {
                dev.alloc_bf16(n).map_err(e)
            } else {
                dev.alloc_f32(n).map_err(e)
            }
        };
        let (mask, lse) = (
            zeros(dev, batch * seq)?,
            zeros(dev, attention::lse_len(&shape))?,
        );
        let (out, dq, dk, dv) = (stored(dev)?, stored(dev)?, stored(dev)?, stored(dev)?);
        let scale = (head_dim as f32).powf(-0.5);
        let dev = RefCell::new(&mut *dev);
        // One closure per phase and build of the kernels: `launches` calls, then a sync.
        let call = |phase: &'static str, build: Build| {
            let dev = &dev;
            move || {
                let mut d = dev.borrow_mut();
                let (m, s) = (Some(mask), &shape);
                for _ in 0..launches {
                    match (phase, build) {
                        ("forward", Build::F32(p)) => {
                            attention::attention_forward(*d, p, q, k, v, m, scale, s, out, lse)
                        }
                        (_, Build::F32(p)) => attention::attention_backward(
                            *d, p, q, k, v, m, scale, s, out, lse, dout, dq, dk, dv,
                        ),
                        ("forward", Build::Bf16) => {
                            attention::attention_forward_bf16(*d, q, k, v, m, scale, s, out, lse)
                        }
                        (_, Build::Bf16) => attention::attention_backward_bf16(
                            *d, q, k, v, m, scale, s, out, lse, dout, dq, dk, dv,
                        ),
                    }
                    .map_err(e)?;
                }
                d.synchronize().map_err(e)
            }
        };
        // bf16 storage, or every f32 build of the kernels made for this head dim (none: the
        // launch names the error).
        let builds: Vec<Build> = match (bf16, Products::builds(head_dim)) {
            (true, _) => vec![Build::Bf16],
            (false, []) => vec![Build::F32(Products::Fma)],
            (false, some) => some.iter().map(|&p| Build::F32(p)).collect(),
        };
        let runs: Vec<(&str, Build)> = builds
            .iter()
            .flat_map(|&b| [("forward", b), ("backward", b)])
            .collect();
        let mut calls: Vec<_> = runs.iter().map(|&(phase, p)| call(phase, p)).collect();
        calls[0]()?;
        let mut timed: Vec<&mut dyn FnMut() -> Result<(), String>> = calls
            .iter_mut()
            .map(|f| f as &mut dyn FnMut() -> Result<(), String>)
            .collect();
        let t = per_launch(time_all(&mut timed, budget)?, launches);
        drop(timed);
        drop(calls);
        free_all(
            dev.into_inner(),
            &[q, k, v, dout, mask, out, lse, dq, dk, dv],
        )?;
        let (forward_flops, backward_flops) = attention_flops(&shape);
        let torch = if args.flag("torch") {
            torch_attention(peer, &shape, dtype, launches, budget)?
        } else {
            Vec::new()
        };
        for (&(phase, build), &secs) in runs.iter().zip(&t) {
            let fl = match phase {
                "forward" => forward_flops,
                _ => backward_flops,
            };
            let ours = fl / secs / 1e12;
            let theirs = torch.iter().find(|(p, _, _)| p == phase);
            let run = Run {
                who: "smelt",
                kernel: build.name(),
                dtype,
                dev: &dev_name,
                phase,
            };
            let ratio = theirs.filter(|_| comparable).map(|t| ours / t.2);
            rows.push(attention_row(run, &shape, secs * 1e3, ours, ratio));
        }
        for (phase, ms, tf) in &torch {
            let run = Run {
                who: "pytorch",
                // On CUDA the peer pins SDPA's memory-efficient kernel (3xTF32 tensor cores).
                kernel: if peer == "cuda" { "efficient" } else { "sdpa" },
                dtype,
                dev: peer,
                phase,
            };
            rows.push(attention_row(run, &shape, *ms, *tf, None));
        }
    }
    Ok(rows)
}

/// Who ran which kernel where, on which storage type, for one attention row.
struct Run<'a> {
    who: &'a str,
    kernel: &'a str,
    dtype: &'a str,
    dev: &'a str,
    phase: &'a str,
}

fn attention_row(run: Run, s: &AttentionShape, ms: f64, tflops: f64, ratio: Option<f64>) -> Row {
    Row(vec![
        ("impl", Value::Text(run.who.into())),
        ("op", Value::Text("attention".into())),
        ("kernel", Value::Text(run.kernel.into())),
        ("dtype", Value::Text(run.dtype.into())),
        ("device", Value::Text(run.dev.into())),
        ("phase", Value::Text(run.phase.into())),
        ("batch", Value::Int(s.batch)),
        ("heads", Value::Int(s.heads)),
        ("seq", Value::Int(s.seq)),
        ("head_dim", Value::Int(s.head_dim)),
        ("median_ms", Value::Num(ms)),
        ("tflops", Value::Num(tflops)),
        ("smelt_x", Value::Num(ratio.unwrap_or(f64::NAN))),
    ])
}

/// PyTorch's (phase, median ms, TFLOP/s) for one attention shape, on device `peer`; our
/// timing of it took `budget`.
fn torch_attention(
    peer: &str,
    s: &AttentionShape,
    dtype: &str,
    launches: usize,
    budget: Duration,
) -> Result<Vec<(String, f64, f64)>, String> {
    let shape = [
        format!("--batch={}", s.batch),
        format!("--heads={}", s.heads),
        format!("--seq={}", s.seq),
        format!("--head-dim={}", s.head_dim),
        format!("--dtype={dtype}"),
        format!("--launches={launches}"),
    ];
    torch_peer(peer, "attention", &shape, "tflops", budget)
}

/// Runs `bench/peers/attention_torch.py OP` on device `peer` and returns its
/// (phase, median ms, `figure`) lines; it may take [`wait_for`] our `budget`.
fn torch_peer(
    peer: &str,
    op: &str,
    shape: &[String],
    figure: &str,
    budget: Duration,
) -> Result<Vec<(String, f64, f64)>, String> {
    let wait = wait_for(budget);
    let mut peer_args = vec![op.to_string(), format!("--device={peer}")];
    peer_args.extend_from_slice(shape);
    json_lines("--torch", "attention_torch.py", &peer_args, wait)?
        .iter()
        .map(|l| Ok((l.field("phase")?, l.number("median_ms")?, l.number(figure)?)))
        .collect()
}

/// Runs `smelt bench layernorm` and returns its rows.
pub fn layernorm(args: &Args) -> Result<Vec<Row>, String> {
    let mut device = device(args)?;
    let (dev_name, peer) = (device.name(), peer_device(&device));
    // Our interpreted kernels beside PyTorch on the CPU: both rows, no ratio between them.
    let comparable = !in_interpreter(&device);
    let launches = launches(args, &device)?;
    // Large enough that x and y together (2 x 96 MB in bf16 at hidden 768) are several
    // times the 50-60 MB L2 of an H100 or H200: the second of two calls in a row must
    // stream them from memory, or the copy reference and our GB/s would measure the L2.
    // The interpreter, a smoke test, takes a batch of 32 x 128 tokens.
    let default_rows = if in_interpreter(&device) { 4096 } else { 65536 };
    let dev = device.gpu().ok_or("no GPU device")?;
    let rows_n = args.count("rows", default_rows, MAX_ELEMENTS)?;
    let budget = Duration::from_millis(args.get("budget-ms", 2000)?);
    let bf16 = bf16_flag(args)?;
    let dtype = dtype_name(bf16);
    // Bytes of one row element: x, y, dy, dx are bf16 or f32; the statistics stay f32.
    let elem = if bf16 { 2.0 } else { 4.0 };
    let mut rows = Vec::new();
    for cols in list(args, "hidden", "768,1024")? {
        let n = elements("x", &[rows_n, cols])?;
        let e = |e: smelt_kernels::Error| e.to_string();
        let matrix = |dev: &mut dyn GpuDevice, seed| upload_pattern(dev, n, seed, bf16);
        let (x, dy) = (matrix(dev, 1)?, matrix(dev, 2)?);
        let (y, dx, copy_dst) = (matrix(dev, 5)?, matrix(dev, 6)?, matrix(dev, 7)?);
        let gamma = dev.upload_f32(&pattern(cols, 3)).map_err(e)?;
        let beta = dev.upload_f32(&pattern(cols, 4)).map_err(e)?;
        let zeros = |dev: &mut dyn GpuDevice, len: usize| -> Result<GpuBuffer, String> {
            dev.alloc_f32(len).map_err(e)
        };
        let (mean, rstd) = (zeros(dev, rows_n)?, zeros(dev, rows_n)?);
        let (dgamma, dbeta) = (zeros(dev, cols)?, zeros(dev, cols)?);
        let scratch = zeros(
            dev,
            layernorm::layer_norm_backward_scratch_len(rows_n, cols),
        )?;
        let dev = RefCell::new(&mut *dev);
        let mut copy = || {
            let mut d = dev.borrow_mut();
            for _ in 0..launches {
                d.copy(x, copy_dst).map_err(e)?;
            }
            d.synchronize().map_err(e)
        };
        let mut forward = || {
            let mut d = dev.borrow_mut();
            let forward = if bf16 {
                layernorm::layer_norm_bf16
            } else {
                layernorm::layer_norm
            };
            for _ in 0..launches {
                forward(*d, x, gamma, beta, y, mean, rstd, rows_n, cols, 1e-12).map_err(e)?;
            }
            d.synchronize().map_err(e)
        };
        let mut backward = || {
            let mut d = dev.borrow_mut();
            let backward = if bf16 {
                layernorm::layer_norm_backward_bf16
            } else {
                layernorm::layer_norm_backward
            };
            for _ in 0..launches {
                backward(
                    *d, dy, x, gamma, mean, rstd, dx, dgamma, dbeta, scratch, rows_n, cols,
                )
                .map_err(e)?;
            }
            d.synchronize().map_err(e)
        };
        forward()?;
        let t = per_launch(
            time_all(&mut [&mut copy, &mut forward, &mut backward], budget)?,
            launches,
        );
        let buffers = [
            x, dy, y, dx, copy_dst, gamma, beta, mean, rstd, dgamma, dbeta, scratch,
        ];
        free_all(dev.into_inner(), &buffers)?;
        // Copy and forward read and write one matrix, the backward reads two and writes one;
        // the f32 parameters, statistics and partial sums (a row or a column each) are left out.
        let bytes = [
            2.0 * elem * n as f64,
            2.0 * elem * n as f64,
            3.0 * elem * n as f64,
        ];
        let copy_gbps = bytes[0] / t[0] / 1e9;
        let torch = if args.flag("torch") {
            torch_layernorm(peer, rows_n, cols, dtype, launches, budget)?
        } else {
            Vec::new()
        };
        // PyTorch's figures over its own copy's, measured by the peer on its device.
        let torch_copy_gbps = torch
            .iter()
            .find(|(p, _, _)| p == "copy")
            .map_or(f64::NAN, |t| t.2);
        let case = LayerNormCase {
            rows: rows_n,
            cols,
            dtype,
        };
        for (i, phase) in ["copy", "forward", "backward"].into_iter().enumerate() {
            let gbps = bytes[i] / t[i] / 1e9;
            let theirs = torch.iter().find(|(p, _, _)| p == phase);
            rows.push(layernorm_row(
                "smelt",
                &dev_name,
                phase,
                &case,
                t[i] * 1e3,
                gbps,
                gbps / copy_gbps,
                theirs.filter(|_| comparable).map(|t| gbps / t.2),
            ));
            if let Some((_, ms, g)) = theirs {
                rows.push(layernorm_row(
                    "pytorch",
                    peer,
                    phase,
                    &case,
                    *ms,
                    *g,
                    g / torch_copy_gbps,
                    None,
                ));
            }
        }
    }
    Ok(rows)
}

/// The rows, columns and storage type of one layer-norm case.
struct LayerNormCase<'a> {
    rows: usize,
    cols: usize,
    dtype: &'a str,
}

#[allow(clippy::too_many_arguments)]
fn layernorm_row(
    who: &str,
    dev: &str,
    phase: &str,
    case: &LayerNormCase,
    ms: f64,
    gbps: f64,
    of_copy: f64,
    ratio: Option<f64>,
) -> Row {
    Row(vec![
        ("impl", Value::Text(who.into())),
        ("op", Value::Text("layernorm".into())),
        ("dtype", Value::Text(case.dtype.into())),
        ("device", Value::Text(dev.into())),
        ("phase", Value::Text(phase.into())),
        ("rows", Value::Int(case.rows)),
        ("cols", Value::Int(case.cols)),
        ("median_ms", Value::Num(ms)),
        ("gbps", Value::Num(gbps)),
        ("of_copy", Value::Num(of_copy)),
        ("smelt_x", Value::Num(ratio.unwrap_or(f64::NAN))),
    ])
}

/// PyTorch's (phase, median ms, GB/s) for one layer-norm shape and storage type (phases copy,
/// forward, backward), on device `peer`; our timing of it took `budget`.
fn torch_layernorm(
    peer: &str,
    rows: usize,
    cols: usize,
    dtype: &str,
    launches: usize,
    budget: Duration,
) -> Result<Vec<(String, f64, f64)>, String> {
    let shape = [
        format!("--rows={rows}"),
        format!("--hidden={cols}"),
        format!("--dtype={dtype}"),
        format!("--launches={launches}"),
    ];
    torch_peer(peer, "layernorm", &shape, "gbps", budget)
}

//! `smelt ptx run FILE.ptx --kernel NAME --grid X[,Y,Z] --block X[,Y,Z] [--shared BYTES]
//! [--buffers IN.safetensors] [--args ARGS] [--max-instructions N] --output OUT.safetensors`:
//! runs one kernel of a PTX file on smelt-ptx-sim (the CPU interpreter that checks bounds,
//! alignment, shared-memory races and barriers) and writes every device buffer of the launch
//! to OUT.
//!
//! `--max-instructions N` (default 10^9, seconds of simulation) stops a launch that runs more
//! thread-instructions than N, counting each block's setup too, as an endless loop.
//!
//! ARGS is a comma list of the kernel's parameters, in order:
//! - `buf:NAME`: a new device buffer holding the raw bytes of tensor NAME of IN; written back
//!   under NAME with its input dtype and shape;
//! - `zeros:NAME:BYTES`: a new zeroed buffer of BYTES bytes; written back as U8 `[BYTES]`;
//! - `u32:V`, `i32:V`, `u64:V`, `i64:V`, `f32:V`, `f64:V`: a scalar.
//!
//! A failed check or a malformed PTX file is an error carrying the simulator's full report
//! (kind, kernel, block, thread, PTX line, address); nothing is written then.

use crate::args::Args;
use crate::output::{outln, PendingFile};
use smelt_engine::formats::safetensors::{write, Dtype, RawTensor, SafeTensors, TensorInfo};
use smelt_ptx_sim::{Arg, Buffer, Dim3, ErrorKind, Launch, Module, Sim, SimError};
use std::path::Path;
use std::time::Instant;

/// The options `smelt ptx run` takes.
const OPTIONS: &[&str] = &[
    "kernel",
    "grid",
    "block",
    "shared",
    "buffers",
    "args",
    "max-instructions",
    "output",
];

/// The default of `--max-instructions`: an endless loop fails after seconds, not hours.
const DEFAULT_MAX_INSTRUCTIONS: u64 = 1_000_000_000;

/// The forms an `--args` item may take, for error messages.
const ARG_FORMS: &str = "buf:NAME, zeros:NAME:BYTES, u32:V, i32:V, u64:V, i64:V, f32:V or f64:V";

/// The most bytes of the launch's buffers, `zeros:` or `buf:`, one or all together (more is a
/// typo or the wrong file, not a simulation: each is allocated, and copied again for the
/// output).
const MAX_BUFFER_BYTES: usize = 1 << 32;

/// How many tensor names the message for a missing `buf:` tensor lists.
const NAMES_SHOWN: usize = 8;

/// One parsed `--args` item.
#[derive(Clone, Debug, PartialEq)]
enum ArgSpec {
    /// `buf:NAME`: the bytes of tensor NAME of `--buffers`.
    Tensor(String),
    /// `zeros:NAME:BYTES`.
    Zeros(String, usize),
    /// A scalar (never `Arg::Ptr`).
    Scalar(Arg),
}

/// A device buffer of the launch and how to write it back.
struct Output {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    buffer: Buffer,
}

/// Runs `smelt ptx run` with the options after `run`.
pub fn run(args: &Args) -> Result<(), String> {
    args.only(OPTIONS)?;
    let file = match args.positional.as_slice() {
        [file] => file.clone(),
        [] => {
            return Err(
                "ptx run: which PTX file? (smelt ptx run FILE.ptx --kernel NAME ...)".into(),
            )
        }
        [_, extra, ..] => return Err(format!("ptx run: unexpected argument {extra:?}")),
    };
    let need = |name: &str| {
        args.all(name)
            .last()
            .cloned()
            .ok_or_else(|| format!("ptx run: --{name} is required"))
    };
    let kernel = need("kernel")?;
    let output = need("output")?;
    let pending = PendingFile::create("--output", &output)?;
    let grid = parse_dim3("grid", &need("grid")?)?;
    let block = parse_dim3("block", &need("block")?)?;
    let shared_bytes: u32 = args.get("shared", 0)?;
    let max_instructions: u64 = args.get("max-instructions", DEFAULT_MAX_INSTRUCTIONS)?;
    let specs = parse_arg_list(args.all("args").last().map_or("", String::as_str))?;

    let text =
        std::fs::read_to_string(&file).map_err(|e| format!("ptx run: cannot read {file}: {e}"))?;
    let module = Module::parse(&text).map_err(|e| format!("{file}: {e}"))?;
    let mut sim = Sim::new();
    sim.set_instruction_limit(max_instructions);
    let (kernel_args, outputs) = device_args(&mut sim, &specs, args.all("buffers").last())?;

    let launch = Launch {
        grid,
        block,
        shared_bytes,
    };
    let start = Instant::now();
    let report = sim
        .launch(&module, &kernel, launch, &kernel_args)
        .map_err(|e| format!("{file}: {e}{}", limit_hint(&e)))?;
    let seconds = start.elapsed().as_secs_f64();
    for warning in &report.warnings {
        eprintln!("smelt: warning: {file}: {warning}");
    }

    let bytes: Vec<Vec<u8>> = outputs.iter().map(|o| sim.read_bytes(o.buffer)).collect();
    let tensors: Vec<RawTensor<'_>> = outputs
        .iter()
        .zip(&bytes)
        .map(|(o, b)| (o.name.as_str(), o.dtype, o.shape.as_slice(), b.as_slice()))
        .collect();
    write(pending.temp(), &tensors, &[]).map_err(|e| pending.error(e))?;
    pending.commit()?;
    let rate = report.instructions as f64 / seconds.max(1e-9) / 1e6;
    outln!(
        "ran {kernel}: grid ({},{},{}), block ({},{},{}), {} thread-instructions in {:.3} ms ({rate:.1} M thread-instr/s); wrote {output}",
        grid.x,
        grid.y,
        grid.z,
        block.x,
        block.y,
        block.z,
        report.instructions,
        seconds * 1e3,
    )
}

/// How to raise the limit, for a launch stopped at `--max-instructions`.
fn limit_hint(e: &SimError) -> &'static str {
    if e.kind() == ErrorKind::InstructionLimit {
        " (--max-instructions N raises the limit)"
    } else {
        ""
    }
}

/// Parses `X[,Y,Z]` (missing extents are 1), the value of `--grid` or `--block`.
fn parse_dim3(option: &str, s: &str) -> Result<Dim3, String> {
    let bad =
        || format!("--{option} {s:?}: expected 1 to 3 positive integers X[,Y,Z], like 4 or 32,8");
    let dims: Vec<u32> = s
        .split(',')
        .map(|d| d.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let dim = match *dims.as_slice() {
        [x] => Dim3::x(x),
        [x, y] => Dim3::xy(x, y),
        [x, y, z] => Dim3::new(x, y, z),
        _ => return Err(bad()),
    };
    if dims.contains(&0) {
        return Err(bad());
    }
    Ok(dim)
}

/// Parses the value of `--args`; buffer names must be distinct, and the `zeros:` buffers hold
/// at most [`MAX_BUFFER_BYTES`] together. An empty list is no arguments.
fn parse_arg_list(list: &str) -> Result<Vec<ArgSpec>, String> {
    if list.trim().is_empty() {
        return Ok(Vec::new());
    }
    let specs: Vec<ArgSpec> = list
        .split(',')
        .enumerate()
        .map(|(i, item)| {
            parse_arg(item.trim()).map_err(|e| format!("--args item {i} {item:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut names: Vec<&str> = Vec::new();
    for spec in &specs {
        if let ArgSpec::Tensor(name) | ArgSpec::Zeros(name, _) = spec {
            if names.contains(&name.as_str()) {
                return Err(format!(
                    "--args: buffer name '{name}' is used twice (each buffer is written to the output under its own name)"
                ));
            }
            names.push(name);
        }
    }
    let zeros: usize = specs
        .iter()
        .map(|spec| match spec {
            ArgSpec::Zeros(_, bytes) => *bytes,
            _ => 0,
        })
        .sum();
    if zeros > MAX_BUFFER_BYTES {
        return Err(format!(
            "--args: the zeros buffers hold {zeros} bytes together, more than {MAX_BUFFER_BYTES}"
        ));
    }
    Ok(specs)
}

/// Parses one `--args` item.
fn parse_arg(item: &str) -> Result<ArgSpec, String> {
    let (kind, rest) = item
        .split_once(':')
        .ok_or_else(|| format!("expected KIND:VALUE, one of {ARG_FORMS}"))?;
    let name = |name: &str| {
        if name.is_empty() {
            Err("the buffer name is empty".to_string())
        } else {
            Ok(name.to_string())
        }
    };
    let scalar = |arg: Option<Arg>| {
        arg.map(ArgSpec::Scalar)
            .ok_or_else(|| format!("{rest:?} is not a valid {kind} value"))
    };
    let value = rest.trim();
    match kind {
        "buf" => Ok(ArgSpec::Tensor(name(rest)?)),
        "zeros" => {
            let (buffer, bytes) = rest
                .rsplit_once(':')
                .ok_or("expected zeros:NAME:BYTES".to_string())?;
            let bytes: usize = bytes
                .trim()
                .parse()
                .map_err(|_| format!("{bytes:?} is not a byte count"))?;
            if bytes > MAX_BUFFER_BYTES {
                return Err(format!(
                    "{bytes} bytes is more than the {MAX_BUFFER_BYTES} a zeros buffer may have"
                ));
            }
            Ok(ArgSpec::Zeros(name(buffer)?, bytes))
        }
        "u32" => scalar(value.parse().ok().map(Arg::U32)),
        "i32" => scalar(value.parse().ok().map(Arg::I32)),
        "u64" => scalar(value.parse().ok().map(Arg::U64)),
        "i64" => scalar(value.parse().ok().map(Arg::I64)),
        "f32" => scalar(value.parse().ok().map(Arg::F32)),
        "f64" => scalar(value.parse().ok().map(Arg::F64)),
        other => Err(format!("unknown kind {other:?}; expected {ARG_FORMS}")),
    }
}

/// The kernel arguments of `specs`, with their buffers made on `sim` (tensors read from the
/// safetensors file `buffers`), and the buffers to write back.
fn device_args(
    sim: &mut Sim,
    specs: &[ArgSpec],
    buffers: Option<&String>,
) -> Result<(Vec<Arg>, Vec<Output>), String> {
    let needs_file = specs.iter().any(|s| matches!(s, ArgSpec::Tensor(_)));
    let inputs = match buffers {
        Some(path) if needs_file => {
            Some(SafeTensors::open(Path::new(path)).map_err(|e| e.to_string())?)
        }
        // A forgotten `buf:` (or a wrong file) would otherwise go unnoticed.
        Some(path) => {
            return Err(format!(
                "--buffers {path}: no --args item reads it (buf:NAME passes tensor NAME)"
            ))
        }
        None => None,
    };
    // Every tensor is found and sized before any buffer is made.
    let tensors = specs
        .iter()
        .filter_map(|spec| match spec {
            ArgSpec::Tensor(name) => Some(name),
            _ => None,
        })
        .map(|name| {
            let inputs = inputs.as_ref().ok_or_else(|| {
                format!("--args buf:{name}: no --buffers file to read tensor '{name}' from")
            })?;
            let (info, bytes) = tensor_bytes(inputs, name)?;
            Ok((name.as_str(), info, bytes))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let file = inputs.as_ref().map_or("", |f| f.file());
    let sizes: Vec<(&str, usize)> = tensors.iter().map(|(n, _, b)| (*n, b.len())).collect();
    check_tensor_bytes(specs, &sizes, file)?;
    let mut tensors = tensors.into_iter();
    let mut args = Vec::with_capacity(specs.len());
    let mut outputs = Vec::new();
    for spec in specs {
        let (name, dtype, shape, buffer) = match spec {
            ArgSpec::Scalar(arg) => {
                args.push(*arg);
                continue;
            }
            ArgSpec::Zeros(name, bytes) => (name, Dtype::U8, vec![*bytes], sim.zeros(*bytes)),
            ArgSpec::Tensor(name) => {
                let Some((_, info, bytes)) = tensors.next() else {
                    return Err(format!("--args buf:{name}: tensor '{name}' was not read"));
                };
                (
                    name,
                    info.dtype,
                    info.shape.clone(),
                    sim.upload_bytes(bytes),
                )
            }
        };
        args.push(Arg::Ptr(buffer));
        outputs.push(Output {
            name: name.clone(),
            dtype,
            shape,
            buffer,
        });
    }
    Ok((args, outputs))
}

/// Refuses `buf:` tensors (`tensors` of `file`: name and bytes) of more than
/// [`MAX_BUFFER_BYTES`], or that bring all the buffers of `specs` past it together, naming the
/// tensor and its file (a tensor of GBs is the wrong file or name, and would be copied twice).
fn check_tensor_bytes(
    specs: &[ArgSpec],
    tensors: &[(&str, usize)],
    file: &str,
) -> Result<(), String> {
    // The zeros buffers' bytes, held to the cap together by `parse_arg_list`.
    let mut total: usize = specs
        .iter()
        .map(|spec| match spec {
            ArgSpec::Zeros(_, bytes) => *bytes,
            _ => 0,
        })
        .sum();
    for &(name, bytes) in tensors {
        if bytes > MAX_BUFFER_BYTES {
            return Err(format!(
                "--args buf:{name}: tensor '{name}' of {file} holds {bytes} bytes, more than \
                 the {MAX_BUFFER_BYTES} a buffer may have"
            ));
        }
        total = total.saturating_add(bytes);
        if total > MAX_BUFFER_BYTES {
            return Err(format!(
                "--args buf:{name}: with tensor '{name}' of {file} the buffers hold {total} \
                 bytes together, more than {MAX_BUFFER_BYTES}"
            ));
        }
    }
    Ok(())
}

/// Tensor `name` of `file`: its dtype and shape, and its raw little-endian bytes.
fn tensor_bytes<'f>(
    file: &'f SafeTensors,
    name: &str,
) -> Result<(&'f TensorInfo, &'f [u8]), String> {
    let Some(info) = file.info(name) else {
        let names: Vec<&str> = file.names().take(NAMES_SHOWN).collect();
        let more = if file.names().len() > NAMES_SHOWN {
            ", ..."
        } else {
            ""
        };
        return Err(format!(
            "{}: no tensor named '{name}' (the file has: {}{more})",
            file.file(),
            names.join(", ")
        ));
    };
    let bytes = file.data().get(info.range.clone()).ok_or_else(|| {
        format!(
            "{}: tensor '{name}' lies outside the data buffer",
            file.file()
        )
    })?;
    Ok((info, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_parse_or_name_the_problem() {
        assert_eq!(parse_dim3("grid", "4"), Ok(Dim3::x(4)));
        assert_eq!(parse_dim3("grid", "32, 8"), Ok(Dim3::xy(32, 8)));
        assert_eq!(parse_dim3("block", "2,3,4"), Ok(Dim3::new(2, 3, 4)));
        for bad in ["", "0", "1,2,3,4", "a", "2,,1", "-1", "4x2"] {
            let err = parse_dim3("grid", bad).unwrap_err();
            assert!(err.starts_with("--grid"), "{err}");
            assert!(err.contains("positive integers"), "{err}");
        }
    }

    #[test]
    fn arg_lists_parse_or_name_the_item() {
        let specs =
            parse_arg_list("buf:a.b, zeros:out:64,u32:7,i32:-3,u64:9,i64:-9,f32:0.5,f64:2e3")
                .unwrap();
        assert_eq!(
            specs,
            vec![
                ArgSpec::Tensor("a.b".into()),
                ArgSpec::Zeros("out".into(), 64),
                ArgSpec::Scalar(Arg::U32(7)),
                ArgSpec::Scalar(Arg::I32(-3)),
                ArgSpec::Scalar(Arg::U64(9)),
                ArgSpec::Scalar(Arg::I64(-9)),
                ArgSpec::Scalar(Arg::F32(0.5)),
                ArgSpec::Scalar(Arg::F64(2e3)),
            ]
        );
        assert_eq!(parse_arg_list(""), Ok(vec![]));
        let cases = [
            ("ptr:x", "unknown kind \"ptr\""),
            ("u32:-1", "not a valid u32 value"),
            ("f32:one", "not a valid f32 value"),
            ("buf:", "buffer name is empty"),
            ("zeros:x", "expected zeros:NAME:BYTES"),
            ("zeros:x:ten", "not a byte count"),
            ("zeros:x:99999999999", "a zeros buffer may have"),
            ("u32:1,", "expected KIND:VALUE"),
            ("buf:x,zeros:x:4", "'x' is used twice"),
            (
                "zeros:a:4294967296,zeros:b:4294967296",
                "hold 8589934592 bytes together",
            ),
        ];
        for (list, want) in cases {
            let err = parse_arg_list(list).unwrap_err();
            assert!(err.contains(want), "{list}: {err}");
        }
    }

    #[test]
    fn max_instructions_stops_an_endless_loop() {
        let dir = std::env::temp_dir().join(format!("smelt-ptx-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ptx = dir.join("loop.ptx");
        let output = dir.join("out.safetensors");
        std::fs::write(
            &ptx,
            ".version 8.8\n.target sm_80\n.address_size 64\n.visible .entry k()\n{\nLOOP:\nbra LOOP;\n}\n",
        )
        .unwrap();
        let run_with = |limit: &str| {
            let raw: Vec<String> = [
                ptx.to_str().unwrap(),
                "--kernel",
                "k",
                "--grid",
                "1",
                "--block",
                "32",
                "--max-instructions",
                limit,
                "--output",
                output.to_str().unwrap(),
            ]
            .map(String::from)
            .to_vec();
            run(&Args::parse(&raw, &[])).unwrap_err()
        };
        let err = run_with("1000");
        assert!(err.contains("instruction limit of 1000 "), "{err}");
        assert!(err.contains("--max-instructions"), "{err}");
        assert!(!output.exists());
        let err = run_with("lots");
        assert!(err.starts_with("--max-instructions"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

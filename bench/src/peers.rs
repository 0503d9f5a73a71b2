//! Peers outside Rust (PyTorch, numpy, ONNX Runtime) run as `python3 bench/peers/*.py` in the same command,
//! right after our measurement, and report the same JSON fields we do.

use crate::gemm_bench::Case;
use std::process::Command;

/// One figure a peer script printed.
#[derive(Debug, Clone)]
pub struct PeerFigure {
    /// The implementation, e.g. `torch` or `numpy`.
    pub name: String,
    pub median_ms: f64,
    /// GFLOP/s (or GB/s for memory-bound ops).
    pub value: f64,
}

/// Runs `bench/peers/sgemm_torch.py` on one case and returns its figures.
pub fn sgemm_torch(case: &Case, threads: usize) -> Result<Vec<PeerFigure>, String> {
    let mut args = vec![
        "--shape".to_string(),
        format!("{}x{}x{}", case.m, case.k, case.n),
        "--batch".to_string(),
        case.batch.to_string(),
        "--threads".to_string(),
        threads.to_string(),
    ];
    if case.transb {
        args.push("--transb".into());
    }
    json_lines("--torch", "sgemm_torch.py", &args)?
        .iter()
        .map(|line| {
            Ok(PeerFigure {
                name: field(line, "impl")?,
                median_ms: number(line, "median_ms")?,
                value: number(line, "gflops")?,
            })
        })
        .collect()
}

/// Runs `python3 bench/peers/<script> <args>` and returns the JSON lines it printed; `option`
/// names the command-line option that asked for it, in errors. The script is taken from
/// `bench/peers/` under the current directory when it is there (a binary carried to another
/// machine with the working tree, as `bench/gpu_check.sh` does), else from the source tree
/// the binary was built from.
pub fn json_lines(option: &str, script: &str, args: &[String]) -> Result<Vec<String>, String> {
    let local = format!("bench/peers/{script}");
    let path = if std::path::Path::new(&local).is_file() {
        local
    } else {
        format!("{}/peers/{script}", env!("CARGO_MANIFEST_DIR"))
    };
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .map_err(|e| format!("{option}: cannot run python3 {path}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{option}: {path} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(str::to_string)
        .collect())
}

/// The raw text of `"key": value` in a flat one-line JSON object (quotes stripped).
pub fn field(line: &str, key: &str) -> Result<String, String> {
    let tag = format!("\"{key}\":");
    let start = line
        .find(&tag)
        .ok_or_else(|| format!("peer output lacks {key:?}: {line}"))?
        + tag.len();
    let rest = line[start..].trim_start();
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default(),
        None => rest.split([',', '}']).next().unwrap_or_default().trim(),
    };
    Ok(value.to_string())
}

/// The number at `"key":` in a flat one-line JSON object.
pub fn number(line: &str, key: &str) -> Result<f64, String> {
    let raw = field(line, key)?;
    raw.parse()
        .map_err(|_| format!("peer output: {key} = {raw:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_of_a_json_line() {
        let line = r#"{"impl": "torch", "op": "sgemm", "median_ms": 12.5, "gflops":171.25}"#;
        assert_eq!(field(line, "impl").unwrap(), "torch");
        assert_eq!(number(line, "median_ms").unwrap(), 12.5);
        assert_eq!(number(line, "gflops").unwrap(), 171.25);
        assert!(number(line, "missing").is_err());
        assert!(number(line, "impl").is_err());
    }
}

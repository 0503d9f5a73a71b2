//! Peers outside Rust (PyTorch, numpy, ONNX Runtime) run as `python3 bench/peers/*.py` in the
//! same command and report the same JSON fields we do: either once, right after our
//! measurement ([`json_lines`]), or kept running and asked for one round at a time between
//! ours ([`PeerServer`]), so that a noisy minute slows every implementation alike.

use crate::gemm_bench::Case;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

/// One figure a peer script printed.
#[derive(Debug, Clone)]
pub struct PeerFigure {
    /// The implementation, e.g. `torch` or `numpy`.
    pub name: String,
    pub median_ms: f64,
    /// GFLOP/s (or GB/s for memory-bound ops).
    pub value: f64,
}

/// Runs `bench/peers/sgemm_torch.py` on one case, with the same time budget per case as ours,
/// and returns its figures.
pub fn sgemm_torch(
    case: &Case,
    threads: usize,
    budget: Duration,
) -> Result<Vec<PeerFigure>, String> {
    let mut args = vec![
        "--shape".to_string(),
        format!("{}x{}x{}", case.m, case.k, case.n),
        "--batch".to_string(),
        case.batch.to_string(),
        "--threads".to_string(),
        threads.to_string(),
        "--budget".to_string(),
        budget.as_secs_f64().to_string(),
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
    let path = script_path(script);
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

/// Where `script` is run from: `bench/peers/` under the current directory when it is there,
/// else the source tree the binary was built from.
fn script_path(script: &str) -> String {
    let local = format!("bench/peers/{script}");
    if std::path::Path::new(&local).is_file() {
        local
    } else {
        format!("{}/peers/{script}", env!("CARGO_MANIFEST_DIR"))
    }
}

/// A peer script started with `--serve`: it builds its model once and prints `{"ready":
/// true}`, then for every phase name it reads on stdin it times one round of that phase and
/// prints one JSON line; it exits when its stdin closes (when this value is dropped).
pub struct PeerServer {
    /// The command-line option that asked for the peer, and its script, for errors.
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Collects the script's stderr (read while it runs, so a chatty peer cannot block on a
    /// full pipe); its text goes into the error when the script dies.
    stderr: Option<JoinHandle<String>>,
}

impl PeerServer {
    /// Starts `python3 bench/peers/<script> <args> --serve` and waits until it is ready.
    pub fn start(option: &str, script: &str, args: &[String]) -> Result<PeerServer, String> {
        PeerServer::spawn(option, &script_path(script), args)
    }

    /// [`PeerServer::start`] for the script at `path`.
    fn spawn(option: &str, path: &str, args: &[String]) -> Result<PeerServer, String> {
        let name = format!("{option}: {path}");
        let mut child = Command::new("python3")
            .arg(path)
            .args(args)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{option}: cannot run python3 {path}: {e}"))?;
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(mut stderr)) = pipes else {
            return Err(format!("{name}: its pipes could not be opened"));
        };
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut server = PeerServer {
            name,
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            stderr: Some(stderr),
        };
        let ready = server.next_line()?;
        if field(&ready, "ready").as_deref() != Ok("true") {
            return Err(format!(
                "{}: expected {{\"ready\": true}}, got {ready}",
                server.name
            ));
        }
        Ok(server)
    }

    /// Times one round of `phase` in the peer and returns the JSON line it printed.
    pub fn round(&mut self, phase: &str) -> Result<String, String> {
        self.send(phase)?;
        self.next_line()
    }

    /// Profiles `phase` in the peer and returns its lines: one per op and direction, the last
    /// one with `"op": "(step)"` (bench/peers/torch_profile.py).
    pub fn profile(&mut self, phase: &str) -> Result<Vec<String>, String> {
        self.send(&format!("profile {phase}"))?;
        let mut lines = Vec::new();
        loop {
            let line = self.next_line()?;
            let last = field(&line, "op")? == "(step)";
            lines.push(line);
            if last {
                return Ok(lines);
            }
        }
    }

    /// Writes one request line to the peer's stdin.
    fn send(&mut self, request: &str) -> Result<(), String> {
        let sent = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{request}").and_then(|()| stdin.flush()),
            None => Ok(()),
        };
        sent.map_err(|_| self.died())
    }

    /// The next line of the peer's stdout that holds a JSON object.
    fn next_line(&mut self) -> Result<String, String> {
        loop {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return Err(self.died()),
                Ok(_) if line.trim_start().starts_with('{') => return Ok(line.trim().to_string()),
                Ok(_) => {}
            }
        }
    }

    /// The error for a peer that stopped answering: its exit status and stderr.
    fn died(&mut self) -> String {
        self.stdin = None;
        let status = self
            .child
            .wait()
            .map_or_else(|e| e.to_string(), |s| s.to_string());
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        format!("{} failed ({status}): {}", self.name, stderr.trim())
    }
}

impl Drop for PeerServer {
    /// Closes the peer's stdin, which ends its loop, and waits for it to exit.
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.wait();
    }
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

    /// Writes a peer script into the temp directory and returns its path.
    fn script(name: &str, body: &str) -> String {
        let path =
            std::env::temp_dir().join(format!("smelt-peer-{}-{name}.py", std::process::id()));
        std::fs::write(&path, body).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn a_served_peer_answers_one_line_per_round_until_dropped() {
        let path = script(
            "echo",
            "import json, sys\n\
             assert sys.argv[1:] == ['--phase', 'forward', '--serve'], sys.argv\n\
             print('loading...')\n\
             print(json.dumps({'ready': True}), flush=True)\n\
             for n, line in enumerate(sys.stdin):\n\
             \x20   print(json.dumps({'impl': 'echo', 'phase': line.strip(), 'median_ms': n}), flush=True)\n",
        );
        let args = ["--phase", "forward"].map(str::to_string);
        let mut peer = PeerServer::spawn("--echo", &path, &args).unwrap();
        for n in 0..3 {
            let line = peer.round("forward").unwrap();
            assert_eq!(field(&line, "phase").unwrap(), "forward");
            assert_eq!(number(&line, "median_ms").unwrap(), n as f64);
        }
        drop(peer);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_profile_request_reads_the_peers_lines_up_to_its_step_line() {
        let path = script(
            "profiler",
            "import json, sys\n\
             print(json.dumps({'ready': True}), flush=True)\n\
             for line in sys.stdin:\n\
             \x20   assert line.split() == ['profile', 'train'], line\n\
             \x20   for op in ['linear', 'gelu', '(step)']:\n\
             \x20       print(json.dumps({'op': op, 'ms': 1.5}), flush=True)\n",
        );
        let mut peer = PeerServer::spawn("--profiler", &path, &[]).unwrap();
        for _ in 0..2 {
            let lines = peer.profile("train").unwrap();
            let ops: Vec<String> = lines.iter().map(|l| field(l, "op").unwrap()).collect();
            assert_eq!(ops, ["linear", "gelu", "(step)"]);
        }
        drop(peer);
        // A peer that stops after one line is an error with its stderr, not a hang.
        let quits = script(
            "quits",
            "import json, sys\n\
             print(json.dumps({'ready': True}), flush=True)\n\
             sys.stdin.readline()\n\
             print(json.dumps({'op': 'linear', 'ms': 1.5}), flush=True)\n\
             sys.exit('profiler crashed')\n",
        );
        let mut peer = PeerServer::spawn("--quits", &quits, &[]).unwrap();
        let err = peer.profile("forward").unwrap_err();
        assert!(err.contains("profiler crashed"), "{err}");
        for path in [path, quits] {
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn a_peer_that_dies_or_never_gets_ready_is_an_error_with_its_stderr() {
        let dies = script(
            "dies",
            "import json, sys\n\
             print(json.dumps({'ready': True}), flush=True)\n\
             sys.stdin.readline()\n\
             sys.exit('out of memory in round 1')\n",
        );
        let mut peer = PeerServer::spawn("--dies", &dies, &[]).unwrap();
        let err = peer.round("train").unwrap_err();
        assert!(
            err.contains("--dies") && err.contains("out of memory in round 1"),
            "{err}"
        );
        assert!(err.contains("exit status: 1"), "{err}");

        let silent = script("silent", "import sys\nsys.exit('no torch here')\n");
        let err = PeerServer::spawn("--silent", &silent, &[]).err().unwrap();
        assert!(err.contains("no torch here"), "{err}");

        let rude = script("rude", "print('{\"hello\": 1}', flush=True)\n");
        let err = PeerServer::spawn("--rude", &rude, &[]).err().unwrap();
        assert!(err.contains("expected {\"ready\": true}"), "{err}");
        for path in [dies, silent, rude] {
            std::fs::remove_file(path).unwrap();
        }
    }
}

//! Peers outside Rust (PyTorch, numpy, ONNX Runtime) run as `python3 bench/peers/*.py` in the
//! same command and report the same JSON fields we do: either once, right after our
//! measurement ([`json_lines`]), or kept running and asked for one round at a time between
//! ours ([`PeerServer`]), so that a noisy minute slows every implementation alike.

use crate::gemm_bench::Case;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The least time a peer is given for one reply, whatever the work: a start of Python that
/// imports torch, builds a model, or exports it to ONNX takes seconds to a minute or two.
const MIN_WAIT: Duration = Duration::from_secs(600);

/// How many times our own time for the same work a peer is given on top of [`MIN_WAIT`]
/// (PyTorch has measured 1-3x our time; profiled, more).
const SLOWER: u32 = 20;

/// How long to wait for a peer's reply to work that took us `ours`: [`MIN_WAIT`] plus
/// [`SLOWER`] times `ours`. A peer silent for longer is stopped and reported, not waited on
/// forever.
pub fn wait_for(ours: Duration) -> Duration {
    MIN_WAIT.saturating_add(ours.saturating_mul(SLOWER))
}

/// How long a peer whose stdin was closed may take to exit before it is stopped.
const EXIT_GRACE: Duration = Duration::from_secs(30);

/// One figure a peer script printed.
#[derive(Debug, Clone)]
pub struct PeerFigure {
    /// The implementation, e.g. `torch` or `numpy`.
    pub name: String,
    /// Its median time of one call, in ms.
    pub median_ms: f64,
    /// GFLOP/s (or GB/s for memory-bound ops).
    pub value: f64,
}

/// One JSON line a peer printed, with the peer's name (the option that asked for it and its
/// script) for the errors of reading it.
#[derive(Debug, Clone)]
pub struct PeerLine {
    /// `--torch: bench/peers/x.py`.
    source: String,
    /// The line, a flat JSON object.
    text: String,
}

impl PeerLine {
    /// The raw text of `"key": value` (quotes stripped); an error naming the peer, the key and
    /// the line when it lacks one.
    pub fn field(&self, key: &str) -> Result<String, String> {
        field(&self.text, key).map_err(|e| format!("{}: {e}", self.source))
    }

    /// The number at `"key":`; an error naming the peer and the key when it is not one.
    pub fn number(&self, key: &str) -> Result<f64, String> {
        number(&self.text, key).map_err(|e| format!("{}: {e}", self.source))
    }
}

/// A line of a peer named `test-peer`, for tests of what reads peer lines.
#[cfg(test)]
pub fn test_line(text: &str) -> PeerLine {
    PeerLine {
        source: "test-peer".into(),
        text: text.into(),
    }
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
    json_lines("--torch", "sgemm_torch.py", &args, wait_for(budget))?
        .iter()
        .map(|line| {
            Ok(PeerFigure {
                name: line.field("impl")?,
                median_ms: line.number("median_ms")?,
                value: line.number("gflops")?,
            })
        })
        .collect()
}

/// Runs `python3 bench/peers/<script> <args>` and returns the JSON lines it printed; `option`
/// names the command-line option that asked for it, in errors. A script still running after
/// `wait` is stopped, an error. The script is taken from `bench/peers/` under the current
/// directory when it is there (a binary carried to another machine with the working tree, as
/// `bench/gpu_check.sh` does), else from the source tree the binary was built from.
pub fn json_lines(
    option: &str,
    script: &str,
    args: &[String],
    wait: Duration,
) -> Result<Vec<PeerLine>, String> {
    run_script(option, &script_path(script), args, wait)
}

/// [`json_lines`] for the script at `path`.
fn run_script(
    option: &str,
    path: &str,
    args: &[String],
    wait: Duration,
) -> Result<Vec<PeerLine>, String> {
    let name = format!("{option}: {path}");
    let mut child = Command::new("python3")
        .arg(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{option}: cannot run python3 {path}: {e}"))?;
    // Read while it runs, so a chatty peer cannot block on a full pipe.
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(format!("{name}: its pipes could not be opened"));
    };
    let (stdout, stderr) = (read_all(stdout), read_all(stderr));
    let deadline = Instant::now() + wait;
    let Some(status) = wait_until(&mut child, deadline) else {
        stop(&mut child);
        return Err(no_reply(&name, wait));
    };
    // The pipes close when the script exits (unless a process it started holds them).
    let text = |pipe: Receiver<String>| pipe.recv_timeout(EXIT_GRACE).unwrap_or_default();
    let (out, err) = (text(stdout), text(stderr));
    if !status.success() {
        return Err(format!("{name} failed ({status}): {}", err.trim()));
    }
    Ok(out
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| PeerLine {
            source: name.clone(),
            text: l.to_string(),
        })
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

/// The whole text of `pipe`, sent once it closes, by a thread of its own.
fn read_all(mut pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = send.send(text);
    });
    receive
}

/// `child`'s exit status once it exits, or `None` if it is still running at `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            // Running at the deadline, or it cannot be waited on: either way it is stopped.
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Kills `child` and reaps it.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The error for a peer that did not answer within `wait`.
fn no_reply(name: &str, wait: Duration) -> String {
    format!(
        "{name}: no answer within {} s (the limit is {} s plus {SLOWER}x our own time for the \
         same work); stopped it",
        wait.as_secs(),
        MIN_WAIT.as_secs()
    )
}

/// A peer script started with `--serve`: it builds its model once and prints `{"ready":
/// true}`, then for every phase name it reads on stdin it times one round of that phase and
/// prints one JSON line; it exits when its stdin closes (when this value is dropped). Every
/// wait for a reply has a limit ([`wait_for`]), past which the peer is stopped and the wait
/// is an error naming its script.
pub struct PeerServer {
    /// The command-line option that asked for the peer, and its script, for errors.
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// The lines of the script's stdout, read by a thread of their own (so a wait can end).
    lines: Receiver<String>,
    /// The script's stderr, whole once it closes (read while it runs, so a chatty peer
    /// cannot block on a full pipe); its text goes into the error when the script dies.
    stderr: Receiver<String>,
}

impl PeerServer {
    /// Starts `python3 bench/peers/<script> <args> --serve` and waits until it is ready (at
    /// most [`MIN_WAIT`]).
    pub fn start(option: &str, script: &str, args: &[String]) -> Result<PeerServer, String> {
        PeerServer::spawn(option, &script_path(script), args, MIN_WAIT)
    }

    /// [`PeerServer::start`] for the script at `path`, waiting at most `wait` for it to be
    /// ready.
    fn spawn(
        option: &str,
        path: &str,
        args: &[String],
        wait: Duration,
    ) -> Result<PeerServer, String> {
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
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            stop(&mut child);
            return Err(format!("{name}: its pipes could not be opened"));
        };
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = PeerServer {
            name,
            child,
            stdin: Some(stdin),
            lines,
            stderr: read_all(stderr),
        };
        let ready = server.next_line(Instant::now() + wait, wait)?;
        if ready.field("ready").as_deref() != Ok("true") {
            return Err(format!(
                "{}: expected {{\"ready\": true}}, got {}",
                server.name, ready.text
            ));
        }
        Ok(server)
    }

    /// Times one round of `phase` in the peer and returns the JSON line it printed, waiting
    /// at most `wait`.
    pub fn round(&mut self, phase: &str, wait: Duration) -> Result<PeerLine, String> {
        self.send(phase)?;
        self.next_line(Instant::now() + wait, wait)
    }

    /// Profiles `phase` in the peer and returns its lines: one per op and direction, the last
    /// one with `"op": "(step)"` (bench/peers/torch_profile.py); all within `wait`.
    pub fn profile(&mut self, phase: &str, wait: Duration) -> Result<Vec<PeerLine>, String> {
        self.send(&format!("profile {phase}"))?;
        let deadline = Instant::now() + wait;
        let mut lines = Vec::new();
        loop {
            let line = self.next_line(deadline, wait)?;
            let last = line.field("op")? == "(step)";
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

    /// The next line of the peer's stdout that holds a JSON object, by `deadline` (`wait`
    /// after the request, for the error): past it the peer is stopped, an error.
    fn next_line(&mut self, deadline: Instant, wait: Duration) -> Result<PeerLine, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.trim_start().starts_with('{') => {
                    return Ok(PeerLine {
                        source: self.name.clone(),
                        text: line.trim().to_string(),
                    })
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.stdin = None;
                    stop(&mut self.child);
                    return Err(no_reply(&self.name, wait));
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.died()),
            }
        }
    }

    /// The error for a peer that stopped answering: its exit status and stderr.
    fn died(&mut self) -> String {
        self.stdin = None;
        let status = match wait_until(&mut self.child, Instant::now() + EXIT_GRACE) {
            Some(status) => status.to_string(),
            None => {
                stop(&mut self.child);
                "still running; stopped it".to_string()
            }
        };
        let stderr = self.stderr.recv_timeout(EXIT_GRACE).unwrap_or_default();
        format!("{} failed ({status}): {}", self.name, stderr.trim())
    }
}

impl Drop for PeerServer {
    /// Closes the peer's stdin, which ends its loop, and waits for it to exit (stopping it
    /// after [`EXIT_GRACE`]).
    fn drop(&mut self) {
        self.stdin = None;
        if wait_until(&mut self.child, Instant::now() + EXIT_GRACE).is_none() {
            stop(&mut self.child);
        }
    }
}

/// The raw text of `"key": value` in a flat one-line JSON object (quotes stripped).
fn field(line: &str, key: &str) -> Result<String, String> {
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
fn number(line: &str, key: &str) -> Result<f64, String> {
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

    /// A wait for a test peer's reply: they answer at once.
    const WAIT: Duration = Duration::from_secs(60);

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
        let mut peer = PeerServer::spawn("--echo", &path, &args, WAIT).unwrap();
        for n in 0..3 {
            let line = peer.round("forward", WAIT).unwrap();
            assert_eq!(line.field("phase").unwrap(), "forward");
            assert_eq!(line.number("median_ms").unwrap(), n as f64);
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
        let mut peer = PeerServer::spawn("--profiler", &path, &[], WAIT).unwrap();
        for _ in 0..2 {
            let lines = peer.profile("train", WAIT).unwrap();
            let ops: Vec<String> = lines.iter().map(|l| l.field("op").unwrap()).collect();
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
        let mut peer = PeerServer::spawn("--quits", &quits, &[], WAIT).unwrap();
        let err = peer.profile("forward", WAIT).unwrap_err();
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
        let mut peer = PeerServer::spawn("--dies", &dies, &[], WAIT).unwrap();
        let err = peer.round("train", WAIT).unwrap_err();
        assert!(
            err.contains("--dies") && err.contains("out of memory in round 1"),
            "{err}"
        );
        assert!(err.contains("exit status: 1"), "{err}");

        let silent = script("silent", "import sys\nsys.exit('no torch here')\n");
        let err = PeerServer::spawn("--silent", &silent, &[], WAIT)
            .err()
            .unwrap();
        assert!(err.contains("no torch here"), "{err}");

        let rude = script("rude", "print('{\"hello\": 1}', flush=True)\n");
        let err = PeerServer::spawn("--rude", &rude, &[], WAIT).err().unwrap();
        assert!(err.contains("expected {\"ready\": true}"), "{err}");
        for path in [dies, silent, rude] {
            std::fs::remove_file(path).unwrap();
        }
    }

    /// A peer that stops answering (stuck, or a stray `python3` on the PATH) is stopped after
    /// the wait, an error naming its script, instead of a hang; so is one-shot script.
    #[test]
    fn a_peer_that_stalls_is_stopped_after_the_wait() {
        let stalls = script(
            "stalls",
            "import json, sys, time\n\
             print(json.dumps({'ready': True}), flush=True)\n\
             sys.stdin.readline()\n\
             time.sleep(1000)\n",
        );
        let began = Instant::now();
        let mut peer = PeerServer::spawn("--stalls", &stalls, &[], WAIT).unwrap();
        let err = peer.round("train", Duration::from_secs(1)).unwrap_err();
        assert!(
            err.contains(&stalls)
                && err.contains("no answer within 1 s")
                && err.contains("stopped"),
            "{err}"
        );
        assert!(
            matches!(peer.child.try_wait(), Ok(Some(_))),
            "still running"
        );
        drop(peer);
        let never_ready = script("never-ready", "import time\ntime.sleep(1000)\n");
        let err = PeerServer::spawn("--late", &never_ready, &[], Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(err.contains("--late") && err.contains("no answer"), "{err}");
        let err = run_script("--torch", &never_ready, &[], Duration::from_secs(1)).unwrap_err();
        assert!(
            err.contains(&never_ready) && err.contains("no answer"),
            "{err}"
        );
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "{:?}",
            began.elapsed()
        );
        for path in [stalls, never_ready] {
            std::fs::remove_file(path).unwrap();
        }
    }

    /// A line without the fields asked for is an error naming the script that printed it.
    #[test]
    fn a_garbage_line_is_an_error_naming_its_peer() {
        let garbage = script(
            "garbage",
            "import json, sys\n\
             print(json.dumps({'ready': True}), flush=True)\n\
             for line in sys.stdin:\n\
             \x20   print('{\"what\": 1}', flush=True)\n",
        );
        let mut peer = PeerServer::spawn("--torch", &garbage, &[], WAIT).unwrap();
        let line = peer.round("forward", WAIT).unwrap();
        let err = line.field("impl").unwrap_err();
        assert!(
            err.starts_with(&format!("--torch: {garbage}: peer output lacks \"impl\"")),
            "{err}"
        );
        drop(peer);
        let once = script("once", "print('{\"median_ms\": \"slow\"}')\n");
        let lines = run_script("--torch", &once, &[], WAIT).unwrap();
        let err = lines[0].number("median_ms").unwrap_err();
        assert!(
            err.contains(&once) && err.contains("is not a number"),
            "{err}"
        );
        for path in [garbage, once] {
            std::fs::remove_file(path).unwrap();
        }
    }
}

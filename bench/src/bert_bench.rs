//! `smelt bench bert`: a BERT-family encoder's forward (inference, nothing recorded) and
//! training step (forward + backward of `sum(last_hidden_state^2)`) on seeded random weights
//! and random tokens, beside PyTorch (`--torch`, bench/peers/bert_torch.py) and ONNX Runtime
//! (`--onnx`, bench/peers/bert_onnx.py) measured by the same command.
//!
//! The peers stay up for the whole command (`--serve`), and the implementations take turns
//! in rounds: each round, every implementation runs one warm-up and `--runs` timed runs of a
//! phase, in an order that rotates from round to round. On a shared machine whose speed
//! drifts from minute to minute, this compares them in the same minutes: a row's `smelt_x`
//! is the median over rounds of the peer's time over ours in that round.
//!
//! `--dropout P` makes the training step HF's training mode, dropping `P` of the hidden states
//! and attention probabilities (ours and PyTorch's); the forward stays eval mode.
//!
//! `--prepack` packs our model's linear weights for the GEMM once before anything is timed
//! ([`Model::prepack`]); every row then says `prepacked` 1 (ours) instead of 0.
//!
//! `--profile` then runs each of our phases once more (one warm-up, `--runs` steps) on a
//! profiled tape ([`smelt_engine::autograd::Profile`]) and adds a second table: per op and
//! direction, its calls and milliseconds per step and its share (a fraction) of the step,
//! then a row for the step's time outside every op (the hand-over to the pool, the graph's
//! set-up and parameter leaves, the backward's set-up and gradient releases) and a row for
//! the whole step (the mean of the profiled steps). With `--torch`, the PyTorch peer then runs
//! the same steps under torch.profiler (bench/peers/torch_profile.py) and its time per op
//! stands beside ours ([`crate::bert_profile`]).

use crate::args::{Args, MAX_RUNS};
use crate::bert_profile::{OpTimes, ProfileCase};
use crate::memory::{self, param_count, step_tokens, Work, MAX_TOKENS};
use crate::peers::{wait_for, PeerServer};
use crate::report::{Row, Value};
use crate::timing::median;
use smelt_engine::autograd::Profile;
use smelt_engine::{Arena, CpuOptions, Graph, Tape};
use smelt_model::{Batch, Config, Dropout, Model, Objective};
use std::time::{Duration, Instant};

/// What one implementation measured in one round of one phase.
struct Figure {
    name: String,
    phase: String,
    round: usize,
    median_ms: f64,
    peak_rss_mb: f64,
    /// The peak resident set before the first phase: the model, its inputs, and for a peer
    /// the interpreter and its libraries.
    start_rss_mb: f64,
}

/// Who runs in a turn of a round: us, or the peer at this index.
#[derive(Clone, Copy)]
enum Turn {
    Ours,
    Peer(usize),
}

/// Runs the benchmark and returns its rows (ours first, then the peers with their ratio) and,
/// with `--profile`, the rows of our per-op profile (else none).
pub fn run(args: &Args, threads: usize) -> Result<(Vec<Row>, Vec<Row>), String> {
    let name = args.get("config", "bert-base".to_string())?;
    let preset = Config::preset(&name).ok_or_else(|| {
        format!(
            "--config {name:?}: expected one of {}",
            Config::PRESETS.join(", ")
        )
    })?;
    let dropout: f32 = args.get("dropout", 0.0)?;
    if !(0.0..1.0).contains(&dropout) {
        return Err(format!(
            "--dropout {dropout}: expected a probability in [0, 1)"
        ));
    }
    let config = Config {
        dropout: Dropout {
            hidden: dropout,
            attention: dropout,
            classifier: 0.0,
        },
        ..preset
    };
    let batch = args.count("batch", 8, MAX_TOKENS)?;
    // 128 tokens, or as many as the preset's position table holds (`tiny`: 64).
    let seq = args.count("seq", 128.min(config.max_positions), MAX_TOKENS)?;
    let runs = args.count("runs", 5, MAX_RUNS)?;
    let rounds = args.count("rounds", 3, MAX_RUNS)?;
    let phase = args.get("phase", "both".to_string())?;
    if !["forward", "train", "both"].contains(&phase.as_str()) {
        return Err(format!(
            "--phase {phase:?}: expected forward, train or both"
        ));
    }
    if args.flag("onnx") && phase == "train" {
        return Err(
            "--onnx measures the forward only (ONNX Runtime has no training step): use \
             --phase forward or both"
                .into(),
        );
    }
    let sizes = format!("--batch {batch} x --seq {seq}");
    step_tokens(&config, batch, seq, &sizes)?;
    let work = if phase == "forward" {
        Work::Forward
    } else {
        Work::Backward
    };
    // With --prepack, a second copy of the linear weights.
    let prepack = args.flag("prepack");
    let packed = if prepack {
        4.0 * param_count(&config) as f64
    } else {
        0.0
    };
    memory::check(&config, (batch, seq), work, packed, &sizes)?;
    // No pooler: the peers run HF's BertModel without one (add_pooling_layer=False).
    let mut model = Model::random_encoder(&config, 0x5eed).map_err(|e| e.to_string())?;
    let input = random_batch(&config, batch, seq)?;
    let opts = CpuOptions::threads(threads);
    if prepack {
        model.prepack(&opts).map_err(|e| e.to_string())?;
    }
    let start_rss = peak_rss_mb();
    let phases: Vec<&str> = ["forward", "train"]
        .into_iter()
        .filter(|p| phase == *p || phase == "both")
        .collect();

    let mut peers = start_peers(args, &name, (batch, seq, threads, runs), &phase, dropout)?;

    let mut figures = Vec::new();
    // Our latest round of each phase: a peer's reply to the same work is awaited for
    // `wait_for` of it.
    let mut ours_took: Vec<(&str, Duration)> = Vec::new();
    for round in 0..rounds {
        for &p in &phases {
            let mut turns = vec![Turn::Ours];
            for (i, peer) in peers.iter().enumerate() {
                if peer.serves(p) {
                    turns.push(Turn::Peer(i));
                }
            }
            let first = round % turns.len();
            turns.rotate_left(first);
            for turn in turns {
                figures.push(match turn {
                    Turn::Ours => {
                        let began = Instant::now();
                        let timing = time_phase(&model, &input, opts, p == "train", runs, false)?;
                        ours_took.retain(|(phase, _)| *phase != p);
                        ours_took.push((p, began.elapsed()));
                        Figure {
                            name: "smelt".into(),
                            phase: p.into(),
                            round,
                            median_ms: timing.median_ms,
                            peak_rss_mb: peak_rss_mb(),
                            start_rss_mb: start_rss,
                        }
                    }
                    Turn::Peer(i) => {
                        // Ours runs first in the first round, so it has a time.
                        let took = ours_took
                            .iter()
                            .find(|(phase, _)| *phase == p)
                            .map_or(Duration::ZERO, |(_, took)| *took);
                        let line = peers[i].server.round(p, wait_for(took))?;
                        Figure {
                            name: line.field("impl")?,
                            phase: line.field("phase")?,
                            round,
                            median_ms: line.number("median_ms")?,
                            peak_rss_mb: line.number("peak_rss_mb").unwrap_or(f64::NAN),
                            start_rss_mb: line.number("start_rss_mb").unwrap_or(f64::NAN),
                        }
                    }
                });
            }
        }
    }
    let mut profile = Vec::new();
    if args.flag("profile") {
        for &p in &phases {
            let case = ProfileCase {
                config: &name,
                batch,
                seq,
                threads,
                phase: p,
            };
            let peer = peers
                .iter_mut()
                .find(|peer| peer.profiles && peer.serves(p));
            let train = (p == "train").then_some(dropout);
            profile.extend(profile_phase(
                &model, &input, opts, runs, train, peer, &case,
            )?);
        }
    }
    drop(peers);
    let flops = model.forward_flops(batch, seq);
    let rows = rows(&figures, &name, batch, seq, threads, rounds, flops);
    // Only training steps drop: forward rows (ONNX Runtime's too) ran in eval mode.
    let rows = rows
        .into_iter()
        .map(|mut row| {
            let train = row
                .0
                .iter()
                .any(|(k, v)| *k == "phase" && matches!(v, Value::Text(t) if t == "train"));
            let p = if train { f64::from(dropout) } else { 0.0 };
            row.0.push(("dropout", Value::Num(p)));
            let ours = row
                .0
                .iter()
                .any(|(k, v)| *k == "impl" && matches!(v, Value::Text(t) if t == "smelt"));
            row.0
                .push(("prepacked", Value::Int(usize::from(prepack && ours))));
            row
        })
        .collect();
    Ok((rows, profile))
}

/// The `--profile` rows of one phase (`train`: the training step, with this dropout; else
/// the forward): ours from a profiled run of `runs` steps and, from `peer` where it can give
/// one, its profile of the same steps.
fn profile_phase(
    model: &Model,
    input: &Batch,
    opts: CpuOptions,
    runs: usize,
    train: Option<f32>,
    peer: Option<&mut Peer<'_>>,
    case: &ProfileCase<'_>,
) -> Result<Vec<Row>, String> {
    let began = Instant::now();
    let timing = time_phase(model, input, opts, train.is_some(), runs, true)?;
    let took = began.elapsed();
    let profile = timing.profile.unwrap_or_default();
    let ours = OpTimes::ours(&profile, runs, timing.total_ms);
    let theirs = match peer {
        // With dropout, PyTorch's CPU attention leaves its fused kernel for the math path,
        // whose backward nodes cannot be told from the rest of the step.
        Some(_) if train.is_some_and(|p| p > 0.0) => {
            eprintln!(
                "bench bert --profile: no PyTorch profile of a training step with dropout \
                 (its attention's backward runs as separate ops)"
            );
            None
        }
        Some(peer) => match peer
            .server
            .profile(case.phase, wait_for(took))
            .and_then(|lines| OpTimes::from_lines(&lines))
        {
            Ok(times) => Some(times),
            // The timed rounds stand; only the comparison is lost.
            Err(e) => {
                eprintln!("bench bert --profile: PyTorch's profile failed: {e}");
                None
            }
        },
        None => None,
    };
    Ok(crate::bert_profile::rows(case, &ours, theirs.as_ref()))
}

/// A peer serving rounds of the phases it was started for.
struct Peer<'p> {
    server: PeerServer,
    /// `forward`, `train` or `both`.
    phase: &'p str,
    /// Whether it answers profile requests (PyTorch, through torch.profiler).
    profiles: bool,
}

impl Peer<'_> {
    /// Whether it serves `phase`.
    fn serves(&self, phase: &str) -> bool {
        self.phase == phase || self.phase == "both"
    }
}

/// Starts the peers the command line asks for (`--torch`, `--onnx`) in `--serve` mode, each
/// with the phases it will be asked for: ONNX Runtime has no training step, so it serves the
/// forward only (and `--onnx` with `--phase train` is an error).
fn start_peers<'p>(
    args: &Args,
    name: &str,
    (batch, seq, threads, runs): (usize, usize, usize, usize),
    phase: &'p str,
    dropout: f32,
) -> Result<Vec<Peer<'p>>, String> {
    let wanted = [
        ("torch", "bert_torch.py", phase),
        ("onnx", "bert_onnx.py", "forward"),
    ];
    let mut peers = Vec::new();
    for (flag, script, peer_phase) in wanted {
        if !args.flag(flag) {
            continue;
        }
        let mut peer_args = vec![
            "--config",
            name,
            "--batch",
            &batch.to_string(),
            "--seq",
            &seq.to_string(),
            "--threads",
            &threads.to_string(),
            "--phase",
            peer_phase,
            "--runs",
            &runs.to_string(),
            "--warmup",
            "1",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
        if flag == "torch" {
            peer_args.extend(["--dropout".to_string(), dropout.to_string()]);
        }
        let server = PeerServer::start(&format!("--{flag}"), script, &peer_args)?;
        peers.push(Peer {
            server,
            phase: peer_phase,
            profiles: flag == "torch",
        });
    }
    Ok(peers)
}

/// One row per implementation and phase (forward before train, ours first, then the peers
/// in the order they first ran): the median of its round figures, its peak RSS after its
/// first round and before its first phase, and `smelt_x`, the median over rounds of its time
/// over ours in the same round. `flops` is the work of one forward pass (a training step
/// counts three).
fn rows(
    figures: &[Figure],
    name: &str,
    batch: usize,
    seq: usize,
    threads: usize,
    rounds: usize,
    flops: f64,
) -> Vec<Row> {
    let ours = |phase: &str, round: usize| {
        figures
            .iter()
            .find(|o| o.name == "smelt" && o.phase == phase && o.round == round)
            .map_or(f64::NAN, |o| o.median_ms)
    };
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for f in figures {
        let key = (f.name.as_str(), f.phase.as_str());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.sort_by_key(|(impl_name, phase)| (*phase != "forward", *impl_name != "smelt"));
    let tokens = (batch * seq) as f64;
    keys.into_iter()
        .map(|(impl_name, phase)| {
            let mine: Vec<&Figure> = figures
                .iter()
                .filter(|f| f.name == impl_name && f.phase == phase)
                .collect();
            let ms = median(mine.iter().map(|f| f.median_ms).collect());
            let ratio = median(
                mine.iter()
                    .map(|f| f.median_ms / ours(phase, f.round))
                    .collect(),
            );
            let work = if phase == "train" { 3.0 * flops } else { flops };
            Row(vec![
                ("impl", Value::Text(impl_name.to_string())),
                ("config", Value::Text(name.to_string())),
                ("batch", Value::Int(batch)),
                ("seq", Value::Int(seq)),
                ("threads", Value::Int(threads)),
                ("phase", Value::Text(phase.to_string())),
                ("rounds", Value::Int(rounds)),
                ("median_ms", Value::Num(ms)),
                ("tokens_per_s", Value::Num(tokens / ms * 1e3)),
                ("gflops", Value::Num(work / ms / 1e6)),
                (
                    // The first round's: every round runs the forward before the training
                    // step, so under `--phase both` only the forward's first round comes
                    // before any training step's memory (the peak only grows).
                    "peak_rss_mb",
                    Value::Num(mine.first().map_or(f64::NAN, |f| f.peak_rss_mb)),
                ),
                (
                    "start_rss_mb",
                    Value::Num(mine.first().map_or(f64::NAN, |f| f.start_rss_mb)),
                ),
                ("smelt_x", Value::Num(ratio)),
            ])
        })
        .collect()
}

/// What [`time_phase`] measured.
struct Timing {
    median_ms: f64,
    /// The sum of the timed runs.
    total_ms: f64,
    /// The timed runs' per-op profile, when asked for.
    profile: Option<Profile>,
}

/// `runs` timed runs after one warm-up; `train` records the forward and runs the backward of
/// `sum(hidden^2)`, with the config's dropout (each run its own seed). With `profile` the
/// timed runs are profiled op by op.
fn time_phase(
    model: &Model,
    input: &Batch,
    opts: CpuOptions,
    train: bool,
    runs: usize,
    profile: bool,
) -> Result<Timing, String> {
    let mut arena = Arena::new();
    let mut tape = Tape::new();
    let mut once = |tape: &mut Tape, seed: u64| -> Result<f64, String> {
        let began = Instant::now();
        let arena_ref = &mut arena;
        let tape_ref = &mut *tape;
        smelt_kernels::cpu::threads::install(opts.threads, move || {
            let mut g = Graph::new(tape_ref, arena_ref, opts, train);
            if train {
                g.enable_dropout(seed);
            }
            let f = model.forward(&mut g, input)?;
            if train {
                let loss = Objective::SumSquares.loss(model, &mut g, &f, input)?;
                g.backward(loss)?;
            }
            Ok::<(), smelt_engine::Error>(())
        })
        .map_err(|e| e.to_string())?;
        let secs = began.elapsed().as_secs_f64();
        tape.clear();
        arena.reset();
        Ok(secs)
    };
    once(&mut tape, 1)?;
    if profile {
        tape.enable_profile();
    }
    let times = (0..runs)
        .map(|run| once(&mut tape, run as u64 + 2))
        .collect::<Result<Vec<f64>, String>>()?;
    Ok(Timing {
        total_ms: times.iter().sum::<f64>() * 1e3,
        median_ms: median(times) * 1e3,
        profile: tape.profile().cloned(),
    })
}

/// `count` token ids below `vocab`, reproducible from `seed` (a 64-bit LCG).
pub fn random_ids(count: usize, vocab: usize, seed: u64) -> Vec<i64> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % vocab as u64) as i64
        })
        .collect()
}

/// `batch` unpadded sequences of `seq` random token ids.
fn random_batch(config: &Config, batch: usize, seq: usize) -> Result<Batch, String> {
    let ids = random_ids(batch * seq, config.vocab_size, 0xbe7c);
    Batch::new(config, batch, seq, &ids, None, None).map_err(|e| e.to_string())
}

/// This process's peak resident set so far (`VmHWM`), in MB; NaN where /proc is missing.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0)
        })
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(name: &str, phase: &str, round: usize, median_ms: f64) -> Figure {
        Figure {
            name: name.into(),
            phase: phase.into(),
            round,
            median_ms,
            peak_rss_mb: 100.0 + round as f64,
            start_rss_mb: 50.0,
        }
    }

    fn num(row: &Row, key: &str) -> f64 {
        match row.0.iter().find(|(k, _)| *k == key) {
            Some((_, Value::Num(x))) => *x,
            _ => panic!("no {key} in the row"),
        }
    }

    fn text(row: &Row, key: &str) -> String {
        match row.0.iter().find(|(k, _)| *k == key) {
            Some((_, Value::Text(x))) => x.clone(),
            _ => panic!("no {key} in the row"),
        }
    }

    #[test]
    fn smelt_x_is_the_median_of_the_ratios_taken_round_by_round() {
        // Rounds in rotating order; the peer is 2x, 1x and 3x our time in rounds 0, 1, 2,
        // so its ratio is 2 where the ratio of the two medians would be 20 / 12.
        let figures = [
            figure("smelt", "forward", 0, 10.0),
            figure("peer", "forward", 0, 20.0),
            figure("peer", "forward", 1, 20.0),
            figure("smelt", "forward", 1, 20.0),
            figure("smelt", "forward", 2, 12.0),
            figure("peer", "forward", 2, 36.0),
            figure("smelt", "train", 0, 30.0),
            figure("peer", "train", 0, 15.0),
        ];
        let rows = rows(&figures, "minilm", 1, 128, 2, 3, 6e9);
        let order: Vec<(String, String)> = rows
            .iter()
            .map(|r| (text(r, "impl"), text(r, "phase")))
            .collect();
        let expected = [
            ("smelt", "forward"),
            ("peer", "forward"),
            ("smelt", "train"),
            ("peer", "train"),
        ]
        .map(|(i, p)| (i.to_string(), p.to_string()));
        assert_eq!(order, expected);
        assert_eq!(num(&rows[0], "median_ms"), 12.0);
        assert_eq!(num(&rows[0], "smelt_x"), 1.0);
        assert_eq!(num(&rows[0], "gflops"), 500.0);
        assert_eq!(num(&rows[1], "median_ms"), 20.0);
        assert_eq!(num(&rows[1], "smelt_x"), 2.0);
        // Round 0's, run before any training step under `--phase both`.
        assert_eq!(num(&rows[1], "peak_rss_mb"), 100.0);
        assert_eq!(num(&rows[3], "smelt_x"), 0.5);
        assert_eq!(num(&rows[3], "gflops"), 3.0 * 6e9 / 15.0 / 1e6);
    }
}

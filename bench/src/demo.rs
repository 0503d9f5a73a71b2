//! `smelt demo`: the main job. A DistilBERT-base sequence classifier (6 layers, hidden 768,
//! 12 heads, FFN 3072, vocab 30522) on seeded random weights, trained on one padded batch of
//! 8 x 128 random tokens: every step runs the forward, the cross-entropy loss, the backward
//! through every op and an AdamW update, all activations and gradients in one arena that
//! grows only in the first step. It prints each step's loss, time, tokens/s and GFLOP/s, the
//! arena's size, each op's share of the steps after the first (the trainer's profile), and
//! checks that the loss went down. No download: the weights are generated.

use crate::args::{Args, MAX_RUNS};
use crate::bert_bench::random_ids;
use crate::memory::{self, step_tokens, Work, MAX_TOKENS};
use crate::output::{out, outln};
use crate::peak::fma_peak_gflops;
use crate::timing::median;
use smelt_engine::autograd::Profile;
use smelt_engine::{Arena, CpuOptions};
use smelt_kernels::cpu::adamw::AdamW;
use smelt_model::{Batch, Config, HeadKind, Model, Objective, Trainer};
use std::time::Instant;

/// Runs the demo and prints its progress and figures.
pub fn run(args: &Args) -> Result<(), String> {
    args.only(&["steps", "threads", "batch", "seq"])?;
    // At least 2: the check compares the first and last loss.
    let steps = args.count_from("steps", 5, 2, MAX_RUNS)?;
    let threads = args.threads()?;
    let batch = args.count("batch", 8, MAX_TOKENS)?;
    let seq = args.count("seq", 128, MAX_TOKENS)?;
    let config =
        Config::preset("distilbert-base").ok_or("the distilbert-base preset is missing")?;
    let sizes = format!("--batch {batch} x --seq {seq}");
    step_tokens(&config, batch, seq, &sizes)?;
    memory::check(&config, (batch, seq), Work::Train, 0.0, &sizes)?;
    let opts = CpuOptions::threads(threads);
    outln!(
        "smelt demo: DistilBERT-base classifier ({} layers, hidden {}, {} heads), batch {batch} x seq {seq}, {threads} threads, kernels: {}",
        config.layers, config.hidden, config.heads, opts.isa
    )?;
    out!("building seeded random weights... ")?;
    let mut model =
        Model::random(&config, HeadKind::Classification, 0x5eed).map_err(|e| e.to_string())?;
    outln!("{:.1} M parameters", model.params().numel() as f64 / 1e6)?;
    let (batch_in, tokens) = demo_batch(&config, batch, seq)?;
    outln!(
        "{tokens} tokens per step: {} positions, {} of them padding (computed, not counted as tokens)",
        batch * seq,
        batch * seq - tokens
    )?;
    let hp = AdamW {
        lr: 1e-4,
        ..AdamW::default()
    };
    let mut trainer = Trainer::new(&mut model, hp, opts).map_err(|e| e.to_string())?;
    let mut arena = Arena::new();
    // The backward costs about twice the forward's GEMM work.
    let step_flops = 3.0 * model.forward_flops(batch, seq);
    let mut losses = Vec::with_capacity(steps);
    let mut times = Vec::with_capacity(steps);
    let mut after_first = 0;
    for step in 1..=steps {
        let began = Instant::now();
        let loss = smelt_kernels::cpu::threads::install(threads, || {
            trainer.step(&mut model, &mut arena, &batch_in, &Objective::Head)
        })
        .map_err(|e| e.to_string())?;
        let secs = began.elapsed().as_secs_f64();
        outln!(
            "step {step}/{steps}: loss {loss:.5}  {:.0} ms  {:.0} tokens/s  {:.1} GFLOP/s  arena {:.0} MB",
            secs * 1e3,
            tokens as f64 / secs,
            step_flops / secs / 1e9,
            arena.capacity() as f64 / 1e6
        )?;
        losses.push(loss);
        times.push(secs);
        if step == 1 {
            after_first = arena.capacity();
            trainer.enable_profile();
        }
    }
    let steady = median(times[1..].to_vec());
    let gflops = step_flops / steady / 1e9;
    let peak = fma_peak_gflops(threads);
    outln!(
        "median training step (after the first): {:.1} ms, {:.0} tokens/s, {gflops:.1} GFLOP/s = {:.0}% of the measured FMA peak ({peak:.0} GFLOP/s on {threads} threads)",
        steady * 1e3,
        tokens as f64 / steady,
        100.0 * gflops / peak
    )?;
    if let Some(profile) = trainer.profile() {
        let profiled: f64 = times[1..].iter().sum();
        outln!(
            "where the steps after the first went: {}",
            breakdown(profile, profiled)
        )?;
    }
    let growth = if arena.capacity() == after_first {
        "it grew only in the first step".to_string()
    } else {
        format!(
            "it grew after the first step, from {:.1} MB",
            after_first as f64 / 1e6
        )
    };
    outln!(
        "arena: {:.1} MB high water in {} block(s); {growth}",
        arena.high_water() as f64 / 1e6,
        arena.block_count()
    )?;
    let (first, last) = (losses[0], losses[steps - 1]);
    if last < first {
        outln!("check: the loss went down, {first:.5} -> {last:.5}")
    } else {
        Err(format!(
            "check failed: the loss did not go down ({first:.5} -> {last:.5})"
        ))
    }
}

/// Each op's share (forward and backward together) of `total_secs`, largest first (ops under
/// 0.1% together), then the rest: the AdamW update and whatever ran outside the ops.
fn breakdown(profile: &Profile, total_secs: f64) -> String {
    let mut per_op: Vec<(&str, f64)> = Vec::new();
    for t in profile.times() {
        let secs = t.time.as_secs_f64();
        match per_op.iter_mut().find(|(op, _)| *op == t.op) {
            Some((_, sum)) => *sum += secs,
            None => per_op.push((t.op, secs)),
        }
    }
    per_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    let share = |secs: f64| 100.0 * secs / total_secs;
    let (large, small): (Vec<_>, Vec<_>) = per_op.iter().partition(|(_, s)| share(*s) >= 0.1);
    let mut parts: Vec<String> = large
        .iter()
        .map(|(op, secs)| format!("{op} {:.1}%", share(*secs)))
        .collect();
    if !small.is_empty() {
        let secs: f64 = small.iter().map(|(_, s)| s).sum();
        parts.push(format!("{} smaller ops {:.2}%", small.len(), share(secs)));
    }
    let rest = total_secs - profile.total().as_secs_f64();
    parts.push(format!("AdamW and the rest {:.1}%", share(rest)));
    parts.join(", ")
}

/// `batch` sequences of `seq` random tokens; sequence `b` pads its last `(b % 4) * seq / 8`
/// positions; labels alternate between the two classes. Also returns the count of tokens
/// that are not padding.
fn demo_batch(config: &Config, batch: usize, seq: usize) -> Result<(Batch, usize), String> {
    let ids = random_ids(batch * seq, config.vocab_size, 0x5eed);
    let mask: Vec<i64> = (0..batch * seq)
        .map(|i| {
            let (b, t) = (i / seq, i % seq);
            i64::from(t < seq - (b % 4) * seq / 8)
        })
        .collect();
    let labels: Vec<i64> = (0..batch as i64).map(|b| b % 2).collect();
    let tokens = mask.iter().filter(|&&m| m == 1).count();
    Batch::new(config, batch, seq, &ids, Some(&mask), None)
        .and_then(|b| b.with_labels(&labels))
        .map(|b| (b, tokens))
        .map_err(|e| e.to_string())
}

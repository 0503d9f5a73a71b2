//! How much memory a step of a BERT-family model takes, estimated from its config before
//! anything is built, and the check that refuses a step this machine cannot hold: such a run
//! would otherwise be killed by the kernel midway, or abort on a failed allocation, with no
//! message.
//!
//! The estimate is the peak resident set measured with `/usr/bin/time -v` (2 threads, a 2-core
//! AVX-512 VM with 24 GB; the `run` rows beyond the fixtures on BERTs of seeded random weights
//! with the sizes given), fitted by the formulas of [`step_bytes`]:
//!
//! | run | measured | estimate |
//! |---|---|---|
//! | `demo` 1 x 8 | 1084 MB | 1074 MB |
//! | `demo` 8 x 128 | 1505 MB | 1505 MB |
//! | `demo` 16 x 256 | 2925 MB | 2959 MB |
//! | `demo` 4 x 512 | 2193 MB | 2166 MB |
//! | `demo` 32 x 512 | 9636 MB | 9830 MB |
//! | `demo` 48 x 512 | 13889 MB | 14208 MB |
//! | `run --grad`, all-MiniLM-L6-v2, 128 x 128 | 4032 MB | 4047 MB |
//! | `run --grad`, hidden 256, FFN 64, 10000 x 40 | 14798 MB | 15266 MB |
//! | `run --grad`, hidden 64, FFN 1024, 10000 x 40 | 13564 MB | 14647 MB |
//! | `run --grad`, the `bert` fixture, 10000 x 40 | 2606 MB | 2355 MB |
//! | `run`, all-MiniLM-L6-v2, 128 x 128 | 411 MB | 443 MB |
//! | `run`, the `bert` fixture, 20000 x 40 | 879 MB | 851 MB |
//! | `run`, hidden 64, FFN 1024, 10000 x 40 | 3841 MB | 3892 MB |
//!
//! The demo's default step, 8 x 128, was estimated at 0.26 GB before (the activations alone,
//! as a lower bound) and 64 x 512 at 12.1 GB; this estimate gives 1.5 GB and 18.6 GB (64 x
//! 512 not run here). The bound left out the parameters, their gradients and AdamW's two
//! moments (16 bytes a parameter: 1.07 GB for the demo's 67 M, most of a small step) and the
//! backward's buffers beside the saved activations. The arena reserves more than its
//! high-water mark (blocks double), but pages it never touches cost no memory.

use smelt_model::{Batch, Config};

/// Most tokens (`batch x seq`) one step may take: about a million, whose activations already
/// need tens of GB for BERT-base.
pub const MAX_TOKENS: usize = 1 << 20;

/// Bytes of an f32.
const F32: f64 = 4.0;

/// What a step does, for its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Inference: nothing recorded for a backward.
    Forward,
    /// A forward recorded for the backward, and the backward: every parameter's gradient.
    Backward,
    /// [`Work::Backward`] and an AdamW update, whose two moments are kept per parameter.
    Train,
}

impl Work {
    /// The step's name in messages.
    fn name(self) -> &'static str {
        match self {
            Work::Forward => "forward",
            Work::Backward => "forward and backward",
            Work::Train => "training step",
        }
    }
}

/// The parameters of `config`'s encoder with a pooler (or DistilBERT's pre-classifier) and a
/// classifier of `num_labels`: [`smelt_model::Model::random`]'s count for a classification
/// head (the bare encoder has a few fewer).
pub fn param_count(config: &Config) -> usize {
    let (h, f) = (config.hidden, config.intermediate);
    let linear = |out: usize, inp: usize| out * inp + out;
    let norm = 2 * h;
    let embeddings = (config.vocab_size + config.max_positions + config.type_vocab_size) * h + norm;
    let layer = 4 * linear(h, h) + linear(f, h) + linear(h, f) + 2 * norm;
    embeddings + config.layers * layer + linear(h, h) + linear(config.num_labels, h)
}

/// The peak memory, in bytes, of a step of `config` on `batch` x `seq` tokens (padding
/// included), as measured (the table above):
/// - the parameters (f32), with `Backward` their gradients, with `Train` also AdamW's two
///   moments;
/// - `Forward`: one layer's activations at a time, `2 x intermediate + 6 x hidden` floats a
///   token (the attention's scores are never stored whole);
/// - `Backward` and `Train`: what every layer saves for the backward and the backward's
///   buffers, `max(4 x intermediate + 5 x hidden, 18 x hidden)` floats a token (the second
///   term is what models with a small FFN measured) and the attention probabilities, `heads x
///   seq` floats a token.
pub fn step_bytes(config: &Config, batch: usize, seq: usize, work: Work) -> f64 {
    let params = param_count(config) as f64;
    let tokens = batch as f64 * seq as f64;
    let (h, f) = (config.hidden as f64, config.intermediate as f64);
    match work {
        Work::Forward => F32 * (params + tokens * (2.0 * f + 6.0 * h)),
        Work::Backward | Work::Train => {
            let copies = if work == Work::Train { 4.0 } else { 2.0 };
            let per_token = (4.0 * f + 5.0 * h).max(18.0 * h) + (config.heads * seq) as f64;
            F32 * (copies * params + config.layers as f64 * tokens * per_token)
        }
    }
}

/// The memory this machine has available (`MemAvailable` of /proc/meminfo), in bytes; `None`
/// where that is missing.
fn available_bytes() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// `batch * seq`, checked before any input is made: the shape as [`Batch::check_shape`]
/// checks it (`seq` within the model's `max_position_embeddings`) and at most [`MAX_TOKENS`].
/// `what` names the sizes in errors (`--batch 8 x --seq 128`, or a file's tensor and shape).
pub fn step_tokens(config: &Config, batch: usize, seq: usize, what: &str) -> Result<usize, String> {
    let tokens = Batch::check_shape(config, batch, seq).map_err(|e| format!("{what}: {e}"))?;
    if tokens > MAX_TOKENS {
        return Err(format!(
            "{what}: {tokens} tokens is too many for one step (at most {MAX_TOKENS})"
        ));
    }
    Ok(tokens)
}

/// Refuses a step whose [`step_bytes`] plus `extra` bytes (outputs kept beside it) exceed
/// the memory this machine has available (no check where /proc/meminfo is missing), naming
/// `what` (the sizes) and both figures.
pub fn check(
    config: &Config,
    (batch, seq): (usize, usize),
    work: Work,
    extra: f64,
    what: &str,
) -> Result<(), String> {
    let Some(available) = available_bytes() else {
        return Ok(());
    };
    let needed = step_bytes(config, batch, seq, work) + extra;
    if needed > available {
        return Err(format!(
            "{what}: a {} needs about {:.1} GB, this machine has {:.1} GB available",
            work.name(),
            needed / 1e9,
            available / 1e9
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smelt_model::{HeadKind, Model};

    fn preset(name: &str) -> Config {
        Config::preset(name).unwrap_or_else(|| panic!("no {name} preset"))
    }

    #[test]
    fn the_parameter_count_is_the_models() {
        let tiny = preset("tiny");
        let distil_tiny = Config {
            family: smelt_model::Family::DistilBert,
            type_vocab_size: 0,
            ..tiny.clone()
        };
        for config in [tiny, distil_tiny] {
            let model = Model::random(&config, HeadKind::Classification, 1).unwrap();
            assert_eq!(param_count(&config), model.params().numel());
        }
        // The demo's model: 67.0 M parameters.
        let distil = param_count(&preset("distilbert-base"));
        assert!((66.9e6..67.0e6).contains(&(distil as f64)), "{distil}");
    }

    #[test]
    fn the_estimate_is_within_a_few_percent_of_measured_steps() {
        let distil = preset("distilbert-base");
        let minilm = preset("minilm");
        // Peak resident sets measured with /usr/bin/time -v (the module's table), in MB.
        let cases = [
            (&distil, 8, 128, Work::Train, 1505.0),
            (&distil, 4, 512, Work::Train, 2193.0),
            (&distil, 48, 512, Work::Train, 13889.0),
            (&minilm, 128, 128, Work::Forward, 411.0),
        ];
        for (config, batch, seq, work, measured) in cases {
            let estimate = step_bytes(config, batch, seq, work) / 1e6;
            let ratio = estimate / measured;
            assert!(
                (0.95..1.1).contains(&ratio),
                "{batch} x {seq} {work:?}: {estimate:.0} MB estimated, {measured} measured"
            );
        }
        // `run --grad` of all-MiniLM-L6-v2 keeps a copy of the gradients for its output.
        let grads = F32 * param_count(&minilm) as f64;
        let estimate = (step_bytes(&minilm, 128, 128, Work::Backward) + grads) / 1e6;
        assert!((4032.0..4032.0 * 1.05).contains(&estimate), "{estimate}");
        // 2^20 tokens of BERT-base training: hundreds of GB.
        assert!(step_bytes(&preset("bert-base"), 2048, 512, Work::Train) > 300e9);
    }
}

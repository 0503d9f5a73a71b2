//! `smelt embed` and `smelt tokenize`: text in, sentence embeddings or token ids out, one JSON
//! object per text, in order.
//!
//! ```text
//! smelt embed    --model DIR [--batch N] [--threads N] [--no-truncate] [--stdin] [--] [TEXT ...]
//! smelt tokenize --model DIR [--stdin] [--] [TEXT ...]
//! ```
//!
//! With `--stdin`, texts are read one per line after those on the command line. `embed`
//! truncates texts longer than the model allows with a note on stderr (an error with
//! `--no-truncate`); `tokenize` prints every id of each text, untruncated.

use crate::args::Args;
use crate::memory::{self, step_tokens, Work};
use crate::output::stdout_error;
use smelt_engine::formats::json::Json;
use smelt_engine::CpuOptions;
use smelt_model::text::{Tokenizer, Truncation};
use smelt_model::{Config, Embeddings, SentenceEncoder};
use std::io::{BufRead, Write};
use std::path::Path;

/// The texts from the command line and, with `--stdin`, one per line of standard input.
fn texts(args: &Args) -> Result<Vec<String>, String> {
    let mut texts = args.positional.clone();
    if args.flag("stdin") {
        let stdin = std::io::stdin();
        let mut line = Vec::new();
        let mut lock = stdin.lock();
        for number in 1.. {
            line.clear();
            let read = lock
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            if read == 0 {
                break;
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            let text = String::from_utf8(line.clone())
                .map_err(|e| format!("stdin line {number} is not valid UTF-8: {e}"))?;
            texts.push(text);
        }
    }
    if texts.is_empty() {
        return Err("no texts: give them as arguments or with --stdin, one per line".into());
    }
    Ok(texts)
}

fn model_dir(args: &Args) -> Result<String, String> {
    args.all("model")
        .last()
        .cloned()
        .ok_or_else(|| "--model DIR is required".to_string())
}

/// `smelt embed`.
pub fn embed(args: &Args) -> Result<(), String> {
    args.only(&["model", "batch", "threads", "no-truncate", "stdin"])?;
    let dir = model_dir(args)?;
    let batch = args.count("batch", 32, MAX_BATCH)?;
    let threads = args.threads()?;
    let texts = texts(args)?;
    let encoder = SentenceEncoder::load(Path::new(&dir)).map_err(|e| e.to_string())?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    check_batch(Path::new(&dir), &encoder, &refs, batch)?;
    let truncation = if args.flag("no-truncate") {
        Truncation::Error
    } else {
        Truncation::Truncate
    };
    let embeddings = encoder
        .embed(&refs, batch, truncation, CpuOptions::threads(threads))
        .map_err(|e| e.to_string())?;
    all_finite(&embeddings)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (i, text) in texts.iter().enumerate() {
        if embeddings.truncated[i] {
            eprintln!(
                "smelt: text {i} is longer than {} tokens and was truncated (--no-truncate makes this an error)",
                encoder.max_len()
            );
        }
        let vector = embeddings.get(i).unwrap_or_default();
        let numbers: Vec<String> = vector.iter().map(f32::to_string).collect();
        writeln!(
            out,
            "{{\"text\":{},\"embedding\":[{}]}}",
            Json::String(text.clone()),
            numbers.join(",")
        )
        .map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)
}

/// Most texts `--batch` may put in one forward pass (each batch is also held to
/// [`memory::MAX_TOKENS`] tokens and to the memory available by [`check_batch`]).
pub const MAX_BATCH: usize = 1 << 16;

/// Refuses an embedding of `texts` in batches of `batch` whose largest batch (the first: the
/// longest texts, each cut to the model's length) would be more tokens than one step takes or
/// need more memory than this machine has available, naming `--batch` and the sizes.
pub fn check_batch(
    dir: &Path,
    encoder: &SentenceEncoder,
    texts: &[&str],
    batch: usize,
) -> Result<(), String> {
    let e = |e: smelt_engine::Error| e.to_string();
    let config = Config::load(&dir.join("config.json")).map_err(e)?;
    // Counted as `embed` tokenizes them.
    let lowercase = SentenceEncoder::lowercases(dir).map_err(e)?;
    let tokenizer = encoder.tokenizer();
    let longest = texts
        .iter()
        .map(|&t| {
            if lowercase {
                tokenizer.encode(&t.to_lowercase()).len()
            } else {
                tokenizer.encode(t).len()
            }
        })
        .max()
        .unwrap_or(0)
        .clamp(1, encoder.max_len());
    let rows = batch.min(texts.len()).max(1);
    let what = format!("--batch {batch}: {rows} texts of up to {longest} tokens");
    step_tokens(&config, rows, longest, &what)?;
    memory::check(&config, (rows, longest), Work::Forward, 0.0, &what)
}

/// An error naming the first text whose embedding holds a NaN or an infinity, which JSON
/// cannot carry (a checkpoint with such a weight gives them).
fn all_finite(embeddings: &Embeddings) -> Result<(), String> {
    let dim = embeddings.dim.max(1);
    match embeddings.values.iter().position(|v| !v.is_finite()) {
        Some(at) => Err(format!(
            "text {}: the embedding holds {}, which JSON cannot carry (are the model's weights finite?)",
            at / dim,
            embeddings.values[at]
        )),
        None => Ok(()),
    }
}

/// `smelt tokenize`.
pub fn tokenize(args: &Args) -> Result<(), String> {
    args.only(&["model", "stdin"])?;
    let dir = model_dir(args)?;
    let texts = texts(args)?;
    let tokenizer = Tokenizer::from_dir(Path::new(&dir)).map_err(|e| e.to_string())?;
    // As `embed` feeds the tokenizer: lowercased first where sentence_bert_config.json says.
    let lowercase = SentenceEncoder::lowercases(Path::new(&dir)).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for text in &texts {
        let ids = if lowercase {
            tokenizer.encode(&text.to_lowercase())
        } else {
            tokenizer.encode(text)
        };
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(
            out,
            "{{\"text\":{},\"ids\":[{}]}}",
            Json::String(text.clone()),
            ids.join(",")
        )
        .map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_embedding_is_an_error_naming_its_text() {
        let mut embeddings = Embeddings {
            dim: 3,
            values: vec![0.5; 6],
            truncated: vec![false; 2],
        };
        assert_eq!(all_finite(&embeddings), Ok(()));
        embeddings.values[4] = f32::NAN;
        let err = all_finite(&embeddings).unwrap_err();
        assert!(err.starts_with("text 1: the embedding holds NaN"), "{err}");
    }
}

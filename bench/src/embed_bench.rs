//! `smelt bench embed`: sentence embeddings of many texts of mixed length (batched by similar
//! length), and the tokenizer alone, beside sentence-transformers and HF's fast tokenizer
//! (`--torch`, bench/peers/embed_torch.py) on the same texts in the same command. With
//! `--prepack` our model's weights are packed for the GEMM once before the timing
//! ([`SentenceEncoder::prepack`]).

use crate::args::{Args, MAX_RUNS};
use crate::embed_cmd::{check_batch, MAX_BATCH};
use crate::peers::{json_lines, wait_for};
use crate::report::{Row, Value};
use crate::timing::median;
use smelt_engine::CpuOptions;
use smelt_model::text::Truncation;
use smelt_model::SentenceEncoder;
use std::path::Path;
use std::time::Instant;

/// Most sentences a run may embed.
const MAX_TEXTS: usize = 10_000_000;

/// Runs the benchmark and returns its rows.
pub fn run(args: &Args, threads: usize) -> Result<Vec<Row>, String> {
    let dir = args
        .all("model")
        .last()
        .cloned()
        .ok_or("bench embed: --model DIR is required")?;
    let count = args.count("count", 1000, MAX_TEXTS)?;
    let batch = args.count("batch", 32, MAX_BATCH)?;
    let runs = args.count("runs", 3, MAX_RUNS)?;
    let mut encoder = SentenceEncoder::load(Path::new(&dir)).map_err(|e| e.to_string())?;
    let texts = mixed_texts(Path::new(&dir), count)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    check_batch(Path::new(&dir), &encoder, &refs, batch)?;
    let opts = CpuOptions::threads(threads);
    if args.flag("prepack") {
        encoder.prepack(&opts).map_err(|e| e.to_string())?;
    }

    let began = Instant::now();
    let tokenizer = encoder.tokenizer();
    let tokens: usize = refs.iter().map(|t| tokenizer.encode(t).len()).sum();
    let tokenize_ms = time(runs, || {
        refs.iter().for_each(|t| {
            std::hint::black_box(tokenizer.encode(t));
        });
        Ok(())
    })?;
    let embed_ms = time(runs, || {
        encoder
            .embed(&refs, batch, Truncation::Truncate, opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    let mut figures = vec![
        Figure::new(
            "smelt",
            "tokenize",
            1,
            tokenize_ms,
            tokens as f64 / tokenize_ms * 1e3,
        ),
        Figure::new(
            "smelt",
            "embed",
            threads,
            embed_ms,
            count as f64 / embed_ms * 1e3,
        ),
    ];
    if args.flag("torch") {
        let file =
            std::env::temp_dir().join(format!("smelt-embed-texts-{}.txt", std::process::id()));
        std::fs::write(&file, texts.join("\n"))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let peer_args = [
            "--model".to_string(),
            dir.clone(),
            "--texts".to_string(),
            file.display().to_string(),
            "--batch".to_string(),
            batch.to_string(),
            "--threads".to_string(),
            threads.to_string(),
            "--runs".to_string(),
            runs.to_string(),
        ];
        // The peer does the same work: tokenize and embed the texts, `runs` times each.
        let wait = wait_for(began.elapsed());
        let lines = json_lines("--torch", "embed_torch.py", &peer_args, wait);
        std::fs::remove_file(&file).ok();
        for line in lines? {
            let op = line.field("op")?;
            let rate = if op == "tokenize" {
                "tokens_per_s"
            } else {
                "texts_per_s"
            };
            figures.push(Figure {
                name: line.field("impl")?,
                threads: line.number("threads")? as usize,
                median_ms: line.number("median_ms")?,
                per_s: line.number(rate)?,
                op,
            });
        }
    }
    Ok(figures
        .iter()
        .map(|f| {
            let ours = figures
                .iter()
                .find(|o| o.name == "smelt" && o.op == f.op)
                .map_or(f64::NAN, |o| o.per_s);
            let unit = if f.op == "tokenize" {
                "tokens"
            } else {
                "texts"
            };
            Row(vec![
                ("impl", Value::Text(f.name.clone())),
                ("op", Value::Text(f.op.clone())),
                ("texts", Value::Int(count)),
                ("tokens", Value::Int(tokens)),
                ("threads", Value::Int(f.threads)),
                ("median_ms", Value::Num(f.median_ms)),
                ("per_s", Value::Num(f.per_s)),
                ("unit", Value::Text(unit.into())),
                ("smelt_x", Value::Num(ours / f.per_s)),
            ])
        })
        .collect())
}

/// One implementation's figure for one operation.
struct Figure {
    name: String,
    op: String,
    threads: usize,
    median_ms: f64,
    /// Tokens (tokenize) or texts (embed) per second.
    per_s: f64,
}

impl Figure {
    fn new(name: &str, op: &str, threads: usize, median_ms: f64, per_s: f64) -> Figure {
        Figure {
            name: name.into(),
            op: op.into(),
            threads,
            median_ms,
            per_s,
        }
    }
}

/// Median milliseconds of `runs` runs of `f` after one warm-up.
fn time(runs: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    f()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let began = Instant::now();
        f()?;
        times.push(began.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(times))
}

/// `count` sentences of 4 to 64 words (every tenth of 100 to 300 words, past the model's
/// limit) drawn with a fixed seed from the whole words of `dir/vocab.txt`.
fn mixed_texts(dir: &Path, count: usize) -> Result<Vec<String>, String> {
    let path = dir.join("vocab.txt");
    let vocab = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let words: Vec<&str> = vocab
        .lines()
        .filter(|w| w.len() >= 3 && w.bytes().all(|b| b.is_ascii_lowercase()))
        .collect();
    if words.is_empty() {
        return Err(format!(
            "{}: no whole words to build sentences from",
            path.display()
        ));
    }
    let mut state = 0x7e57_u64;
    let mut next = move |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % n as u64) as usize
    };
    Ok((0..count)
        .map(|i| {
            let len = if i % 10 == 9 {
                100 + next(200)
            } else {
                4 + next(60)
            };
            let mut text: Vec<&str> = (0..len).map(|_| words[next(words.len())]).collect();
            text.push(".");
            text.join(" ")
        })
        .collect())
}

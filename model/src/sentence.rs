//! Sentence embeddings as sentence-transformers computes them: the encoder's last hidden state
//! pooled as the pooling config says (mean over the attention mask, `[CLS]`, or max), then
//! L2-normalised when `modules.json` lists a `Normalize` module (other modules are refused).
//! Texts are encoded in batches of similar length (sorted by character count, longest first,
//! as sentence-transformers does), and the results come back in the input order.

use crate::batch::Batch;
use crate::heads::HeadKind;
use crate::model::Model;
use crate::sentence_config::{read_pipeline, read_settings, Pipeline, Settings};
use crate::text::{Tokenizer, Truncation};
use crate::Config;
use smelt_engine::{Arena, CpuOptions, Error, Graph, Result, Tape};
use smelt_kernels::cpu::pooling::{cls_pool, max_pool};
use std::path::Path;

/// How token states become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the tokens whose attention mask is 1.
    Mean,
    /// The `[CLS]` token's state.
    Cls,
    /// Elementwise maximum over the unmasked tokens.
    Max,
}

/// A model directory in sentence-transformers layout, ready to embed text.
pub struct SentenceEncoder {
    model: Model,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalize: bool,
    max_len: usize,
    /// Whether texts are lowercased before the tokenizer sees them.
    lowercase: bool,
}

/// Embeddings of a list of texts, in input order.
#[derive(Clone, Debug)]
pub struct Embeddings {
    /// Width of each vector.
    pub dim: usize,
    /// `texts x dim` values, row-major.
    pub values: Vec<f32>,
    /// Whether each text was cut to the model's length.
    pub truncated: Vec<bool>,
}

impl Embeddings {
    /// The vector of text `i`, or `None` past the last text.
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        let start = i.checked_mul(self.dim)?;
        self.values.get(start..start.checked_add(self.dim)?)
    }
}

impl SentenceEncoder {
    /// Loads `dir`: `config.json`, `model.safetensors`, the tokenizer files, and when present
    /// `modules.json` (Transformer, Pooling, optionally Normalize; any other module is an
    /// error), the pooling config it names (`1_Pooling/config.json` without it) and
    /// `sentence_bert_config.json` (`max_seq_length`, which must be 2 to
    /// `max_position_embeddings`, and `do_lower_case`). Without a pooling config, mean
    /// pooling; without `modules.json`, no normalisation. A pooling mode other than mean,
    /// `[CLS]` or max, or several at once, is an error naming the file and keys; so is a
    /// vocabulary with ids past the model's embedding table.
    pub fn load(dir: &Path) -> Result<SentenceEncoder> {
        let config = Config::load(&dir.join("config.json"))?;
        let model = Model::load_with_head(dir, &config, HeadKind::None)?;
        let tokenizer = Tokenizer::from_dir(dir)?;
        if tokenizer.id_end() > config.vocab_size {
            return Err(Error::Format {
                file: dir.join("vocab.txt").display().to_string(),
                detail: format!(
                    "token ids up to {} (its lines), past the {} rows of the embedding table \
                     (vocab_size in {})",
                    tokenizer.id_end() - 1,
                    config.vocab_size,
                    dir.join("config.json").display()
                ),
            });
        }
        let Pipeline { pooling, normalize } = read_pipeline(dir)?;
        let Settings { max_len, lowercase } =
            read_settings(dir, tokenizer.max_len(), config.max_positions)?;
        Ok(SentenceEncoder {
            model,
            tokenizer,
            pooling,
            normalize,
            max_len,
            lowercase,
        })
    }

    /// Packs the model's linear weights once for the GEMM of `opts.isa` ([`Model::prepack`]):
    /// every batch then multiplies by them without packing them again (the embeddings do not
    /// change), for a second copy of those weights in memory (42 MB for all-MiniLM-L6-v2).
    pub fn prepack(&mut self, opts: &CpuOptions) -> Result<()> {
        self.model.prepack(opts)
    }

    /// Whether `dir/sentence_bert_config.json` has texts lowercased before the tokenizer
    /// sees them (`do_lower_case`; false without the file), as [`SentenceEncoder::load`]
    /// reads it: for tools that tokenize the way [`SentenceEncoder::embed`] does without
    /// loading the model. A malformed file is the same error as in `load`.
    pub fn lowercases(dir: &Path) -> Result<bool> {
        // The length limits play no part in `do_lower_case`.
        read_settings(dir, usize::MAX, usize::MAX).map(|s| s.lowercase)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The longest input in tokens (`[CLS]` and `[SEP]` included).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The pooling mode.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The embedding of every text, computed `batch_size` texts at a time (at least 1, at
    /// most all of them) on `opts.threads` threads. Texts longer than
    /// [`SentenceEncoder::max_len`] tokens are cut (or an error with [`Truncation::Error`]);
    /// an empty list or options [`CpuOptions::validate`] refuses are errors.
    pub fn embed(
        &self,
        texts: &[&str],
        batch_size: usize,
        truncation: Truncation,
        opts: CpuOptions,
    ) -> Result<Embeddings> {
        // Before `install`, which does not take a thread count it cannot run.
        opts.validate("embed")?;
        if texts.is_empty() {
            return Err(Error::Input {
                op: "embed",
                detail: "no texts to embed".into(),
            });
        }
        let dim = self.model.config().hidden;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].chars().count()));
        let lowered: Vec<String> = if self.lowercase {
            texts.iter().map(|t| t.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let text = |i: usize| lowered.get(i).map_or(texts[i], String::as_str);
        let mut out = Embeddings {
            dim,
            values: vec![0.0; texts.len() * dim],
            truncated: vec![false; texts.len()],
        };
        let mut arena = Arena::new();
        let mut tape = Tape::new();
        // At most one batch of every text: the size is the caller's and may be huge.
        let batch_size = batch_size.clamp(1, texts.len());
        let mut chunk_texts = Vec::with_capacity(batch_size);
        for chunk in order.chunks(batch_size) {
            chunk_texts.clear();
            chunk_texts.extend(chunk.iter().map(|&i| text(i)));
            let encoding = self
                .tokenizer
                .encode_batch(&chunk_texts, self.max_len, truncation)
                .map_err(|e| match e {
                    Error::Input { op, detail } => Error::Input {
                        op,
                        detail: remap_index(&detail, chunk),
                    },
                    other => other,
                })?;
            // Single texts are all type 0; a model without token types (DistilBERT) takes none.
            let types = (self.model.config().type_vocab_size > 0)
                .then_some(encoding.token_type_ids.as_slice());
            let batch = Batch::new(
                self.model.config(),
                encoding.batch,
                encoding.seq,
                &encoding.input_ids,
                Some(&encoding.attention_mask),
                types,
            )?;
            let (tape_ref, arena_ref) = (&mut tape, &mut arena);
            let pooled = smelt_kernels::cpu::threads::install(opts.threads, move || {
                self.pool(tape_ref, arena_ref, &batch, opts)
            })?;
            for (row, &i) in chunk.iter().enumerate() {
                let dst = &mut out.values[i * dim..(i + 1) * dim];
                dst.copy_from_slice(&pooled[row * dim..(row + 1) * dim]);
                if self.normalize {
                    normalize(dst);
                }
                out.truncated[i] = encoding.truncated[row];
            }
            tape.clear();
            arena.reset();
        }
        Ok(out)
    }

    /// The pooled `[B, dim]` vectors of one batch (before normalisation).
    fn pool(
        &self,
        tape: &mut Tape,
        arena: &Arena,
        batch: &Batch,
        opts: CpuOptions,
    ) -> Result<Vec<f32>> {
        let mut g = Graph::new(tape, arena, opts, false);
        let f = self.model.forward(&mut g, batch)?;
        let (b, t, d) = (batch.batch, batch.seq, self.model.config().hidden);
        let mut out = vec![0.0; b * d];
        match self.pooling {
            Pooling::Mean => {
                let pooled = g.mean_pool(f.hidden, &batch.mask)?;
                out.copy_from_slice(g.value(pooled).data(arena)?);
            }
            Pooling::Cls => cls_pool(g.value(f.hidden).data(arena)?, &mut out, b, t, d)?,
            Pooling::Max => {
                let mask = batch.mask.data(arena)?;
                max_pool(g.value(f.hidden).data(arena)?, mask, &mut out, b, t, d)?
            }
        }
        Ok(out)
    }
}

/// `x / max(||x||, 1e-12)`, as torch's `F.normalize`.
fn normalize(x: &mut [f32]) {
    let norm = x
        .iter()
        .map(|&v| (v as f64).powi(2))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    x.iter_mut().for_each(|v| *v = (*v as f64 / norm) as f32);
}

/// The tokenizer numbers texts within a chunk; name them by their index in the caller's list.
fn remap_index(detail: &str, chunk: &[usize]) -> String {
    let Some(rest) = detail.strip_prefix("text ") else {
        return detail.to_string();
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<usize>().ok().and_then(|i| chunk.get(i)) {
        Some(original) => format!("text {original}{}", &rest[digits.len()..]),
        None => detail.to_string(),
    }
}

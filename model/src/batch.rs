//! [`Batch`]: token ids, positions, token types and the attention mask of `B` sequences of
//! `T` tokens, checked against a [`Config`].

use crate::config::Config;
use smelt_engine::{Error, Result, Tensor};

/// One model input, checked: ids below the vocabulary size, types below the type vocabulary,
/// `T` within the position table. Only [`Batch::new`] makes one (the fields are read through
/// methods), so a model never runs on an unchecked batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Sequences `B`.
    pub(crate) batch: usize,
    /// Tokens per sequence `T`.
    pub(crate) seq: usize,
    /// Token ids, `[B, T]` row-major.
    pub(crate) input_ids: Vec<u32>,
    /// Token types, `[B, T]` (zeros when none were given).
    pub(crate) token_type_ids: Vec<u32>,
    /// Positions `0..T` for every sequence, `[B, T]`.
    pub(crate) position_ids: Vec<u32>,
    /// 1 for tokens, 0 for padding, `[B, T]` (for pooling).
    pub(crate) mask: Tensor,
    /// HF's additive key mask `(1 - mask) * f32::MIN`, `[B, T]`; `None` when nothing is padded.
    /// A sequence whose mask is all 0 attends uniformly over its keys, as in HF's eager
    /// attention (`attn_implementation="eager"`, which the reference fixtures use); HF's
    /// default SDPA path gives such a sequence other values (its other sequences agree).
    pub(crate) additive_mask: Option<Tensor>,
    /// Per-token targets for a masked-LM loss (`-100` ignored), `[B, T]`, when given.
    pub(crate) labels: Vec<i64>,
}

const OP: &str = "Batch::new";

fn input_error(detail: String) -> Error {
    Error::Input { op: OP, detail }
}

impl Batch {
    /// The token count `batch * seq` of a batch of that shape, or the error [`Batch::new`]
    /// gives for it (a size of 0, a count past `usize`, `seq` beyond
    /// `max_position_embeddings`), checked before any ids are read or made.
    pub fn check_shape(config: &Config, batch: usize, seq: usize) -> Result<usize> {
        if batch == 0 || seq == 0 {
            let what = if batch == 0 {
                "no sequences"
            } else {
                "sequences of no tokens"
            };
            return Err(input_error(format!(
                "input_ids has shape [{batch}, {seq}]: {what}; [B, T] needs B >= 1 and T >= 1"
            )));
        }
        let n = batch.checked_mul(seq).ok_or_else(|| {
            input_error(format!(
                "input_ids has shape [{batch}, {seq}]: more tokens than fit in usize"
            ))
        })?;
        if seq > config.max_positions {
            return Err(input_error(format!(
                "sequences of {seq} tokens are longer than max_position_embeddings = {}",
                config.max_positions
            )));
        }
        Ok(n)
    }

    /// A batch of `batch` sequences of `seq` tokens from `input_ids` (`[B, T]` row-major),
    /// an optional 0/1 `attention_mask` and optional `token_type_ids` of the same shape.
    ///
    /// Errors name the offending position and value: an empty batch or empty sequences
    /// (`batch` or `seq` 0), ids `>= vocab_size`, negative ids, types `>= type_vocab_size`,
    /// `seq` beyond `max_position_embeddings`, wrong lengths, mask values other than 0 and 1.
    pub fn new(
        config: &Config,
        batch: usize,
        seq: usize,
        input_ids: &[i64],
        attention_mask: Option<&[i64]>,
        token_type_ids: Option<&[i64]>,
    ) -> Result<Batch> {
        let n = Batch::check_shape(config, batch, seq)?;
        let check_len = |name: &str, len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(input_error(format!(
                    "{name} has {len} values, [B, T] = [{batch}, {seq}] needs {n}"
                )))
            }
        };
        check_len("input_ids", input_ids.len())?;
        let ids = to_ids("input_ids", input_ids, config.vocab_size, seq, "vocab_size")?;
        let types = match token_type_ids {
            Some(t) => {
                check_len("token_type_ids", t.len())?;
                if config.type_vocab_size == 0 {
                    return Err(input_error(
                        "token_type_ids given, but the model has no token types".into(),
                    ));
                }
                to_ids(
                    "token_type_ids",
                    t,
                    config.type_vocab_size,
                    seq,
                    "type_vocab_size",
                )?
            }
            None => vec![0; n],
        };
        let mask = match attention_mask {
            Some(m) => {
                check_len("attention_mask", m.len())?;
                m.iter()
                    .enumerate()
                    .map(|(i, &v)| match v {
                        0 | 1 => Ok(v as f32),
                        _ => Err(input_error(format!(
                            "attention_mask[{}][{}] = {v}; it must be 0 or 1",
                            i / seq,
                            i % seq
                        ))),
                    })
                    .collect::<Result<Vec<f32>>>()?
            }
            None => vec![1.0; n],
        };
        let additive_mask = if mask.contains(&0.0) {
            let additive = mask.iter().map(|&m| (1.0 - m) * f32::MIN).collect();
            Some(Tensor::from_vec(&[batch, seq], additive)?)
        } else {
            None
        };
        Ok(Batch {
            batch,
            seq,
            input_ids: ids,
            token_type_ids: types,
            position_ids: (0..n).map(|i| (i % seq) as u32).collect(),
            mask: Tensor::from_vec(&[batch, seq], mask)?,
            additive_mask,
            labels: Vec::new(),
        })
    }

    /// The same batch with per-token (masked-LM, `[B, T]`) or per-sequence (classification,
    /// `[B]`) targets; `-100` is ignored.
    pub fn with_labels(mut self, labels: &[i64]) -> Result<Batch> {
        let n = self.batch * self.seq;
        if labels.len() != n && labels.len() != self.batch {
            return Err(input_error(format!(
                "labels has {} values; [B, T] = [{}, {}] needs {n}, or {} for one per sequence",
                labels.len(),
                self.batch,
                self.seq,
                self.batch
            )));
        }
        self.labels = labels.to_vec();
        Ok(self)
    }

    /// Sequences `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Tokens per sequence `T`.
    pub fn seq(&self) -> usize {
        self.seq
    }

    /// Token ids, `[B, T]` row-major.
    pub fn input_ids(&self) -> &[u32] {
        &self.input_ids
    }

    /// Token types, `[B, T]` (zeros when none were given).
    pub fn token_type_ids(&self) -> &[u32] {
        &self.token_type_ids
    }

    /// 1 for tokens, 0 for padding, `[B, T]` (for pooling).
    pub fn mask(&self) -> &Tensor {
        &self.mask
    }

    /// HF's additive key mask, `[B, T]`; `None` when nothing is padded.
    pub fn additive_mask(&self) -> Option<&Tensor> {
        self.additive_mask.as_ref()
    }

    /// The targets given by [`Batch::with_labels`] (empty without).
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }
}

/// `values` as ids below `limit`, or an error naming the first bad one by `[b][t]`.
fn to_ids(
    name: &str,
    values: &[i64],
    limit: usize,
    seq: usize,
    limit_name: &str,
) -> Result<Vec<u32>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| match u32::try_from(v) {
            Ok(id) if (id as usize) < limit => Ok(id),
            _ => Err(input_error(format!(
                "{name}[{}][{}] = {v} is outside 0..{limit} ({limit_name})",
                i / seq,
                i % seq
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty batch or empty sequences are refused, naming input_ids and its shape: a
    /// `[2^40, 0]` input holds no bytes but would make attention loop over 2^40 sequences.
    #[test]
    fn empty_batches_and_sequences_are_errors() {
        let config = Config::preset("tiny").unwrap();
        let err = |batch, seq| {
            Batch::new(&config, batch, seq, &[], None, None)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(1 << 40, 0),
            "Batch::new: input_ids has shape [1099511627776, 0]: sequences of no tokens; [B, T] needs B >= 1 and T >= 1"
        );
        assert_eq!(
            err(0, 3),
            "Batch::new: input_ids has shape [0, 3]: no sequences; [B, T] needs B >= 1 and T >= 1"
        );
        assert!(err(0, 0).contains("[0, 0]"));
        let huge = err(usize::MAX, 2);
        assert!(huge.contains("more tokens than fit in usize"), "{huge}");
        assert!(Batch::new(&config, 1, 2, &[1, 2], None, None).is_ok());
    }
}

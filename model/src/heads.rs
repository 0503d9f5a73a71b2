//! Task heads on the encoder: masked-LM (decoder tied to the word embeddings unless the config
//! says `tie_word_embeddings: false`) and sequence classification, with HF's names and their
//! losses.

use crate::batch::Batch;
use crate::config::{Config, Family, ProblemType};
use crate::encoder::{leaf, linear, norm, Builder, EncoderOutput, Linear, Norm};
use smelt_engine::{Error, Graph, Leaves, Result, Var};

/// Which head a model carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    /// The bare encoder (`BertModel`, `DistilBertModel`).
    None,
    /// `BertForMaskedLM` / `DistilBertForMaskedLM`: logits over the vocabulary per token.
    MaskedLm,
    /// `BertForSequenceClassification` / `DistilBertForSequenceClassification`: logits over
    /// `num_labels` classes per sequence.
    Classification,
}

impl HeadKind {
    /// The head HF's `architectures` entry names: `*ForMaskedLM`, `*ForSequenceClassification`,
    /// or the bare encoder (`BertModel`, `DistilBertModel`, or no entry). `None` for any other
    /// architecture (token classification, question answering, pre-training, ...), whose head
    /// this crate does not build.
    pub fn from_architecture(architecture: Option<&str>) -> Option<HeadKind> {
        match architecture {
            None | Some("BertModel" | "DistilBertModel") => Some(HeadKind::None),
            Some(a) if a.ends_with("ForMaskedLM") => Some(HeadKind::MaskedLm),
            Some(a) if a.ends_with("ForSequenceClassification") => Some(HeadKind::Classification),
            Some(_) => None,
        }
    }
}

/// A head's parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Head {
    /// `transform -> gelu -> norm -> x E^T + bias`, with `E` the decoder weight (the word
    /// embeddings when tied).
    MaskedLm {
        transform: Linear,
        norm: Norm,
        decoder: usize,
        bias: usize,
    },
    /// BERT: `classifier(pooled)`; DistilBERT: `classifier(relu(pre(h[:, 0])))`.
    Classifier { pre: Option<Linear>, out: Linear },
}

impl Head {
    /// Loads the head of `kind` under HF's names (`None` for [`HeadKind::None`]); `word` is
    /// the word embeddings' parameter, the masked-LM decoder when the config ties them.
    pub fn build(
        config: &Config,
        kind: HeadKind,
        word: usize,
        b: &mut Builder<'_>,
    ) -> Result<Option<Head>> {
        let h = config.hidden;
        let bert = config.family == Family::Bert;
        Ok(match kind {
            HeadKind::None => None,
            HeadKind::MaskedLm if bert => {
                let bias_name = if b.source.contains("cls.predictions.bias") {
                    "cls.predictions.bias"
                } else {
                    "cls.predictions.decoder.bias"
                };
                let transform = b.linear("cls.predictions.transform.dense", h, h)?;
                let norm = b.norm("cls.predictions.transform.LayerNorm", h)?;
                let decoder = decoder(config, word, "cls.predictions.decoder.weight", b)?;
                let bias = b.tensor(bias_name, &[config.vocab_size])?;
                Some(Head::MaskedLm {
                    transform,
                    norm,
                    decoder,
                    bias,
                })
            }
            HeadKind::MaskedLm => {
                let transform = b.linear("vocab_transform", h, h)?;
                let norm = b.norm("vocab_layer_norm", h)?;
                let decoder = decoder(config, word, "vocab_projector.weight", b)?;
                let bias = b.tensor("vocab_projector.bias", &[config.vocab_size])?;
                Some(Head::MaskedLm {
                    transform,
                    norm,
                    decoder,
                    bias,
                })
            }
            HeadKind::Classification if config.num_labels == 0 => {
                return Err(Error::Input {
                    op: "classification head",
                    detail: "config.json gives num_labels 0 (or an empty id2label): a classifier needs at least one label".into(),
                })
            }
            HeadKind::Classification => Some(Head::Classifier {
                pre: if bert {
                    None
                } else {
                    Some(b.linear("pre_classifier", h, h)?)
                },
                out: b.linear("classifier", config.num_labels, h)?,
            }),
        })
    }

    /// The logits: `[B, T, vocab]` (masked LM) or `[B, num_labels]` (classification).
    pub fn forward(
        &self,
        g: &mut Graph<'_>,
        p: &Leaves,
        config: &Config,
        enc: &EncoderOutput,
    ) -> Result<Var> {
        match *self {
            Head::MaskedLm {
                transform,
                norm: n,
                decoder,
                bias,
            } => {
                let t = linear(g, p, enc.hidden, transform)?;
                let t = g.gelu(t)?;
                let t = norm(g, p, t, n, config.layer_norm_eps)?;
                g.linear(t, leaf(p, decoder)?, Some(leaf(p, bias)?))
            }
            Head::Classifier { pre: None, out } => {
                let pooled = enc.pooled.ok_or_else(|| Error::Shape {
                    op: "classifier",
                    detail: "BERT's classification head needs the pooler".into(),
                })?;
                let pooled = g.dropout(pooled, config.dropout.classifier)?;
                linear(g, p, pooled, out)
            }
            Head::Classifier {
                pre: Some(pre),
                out,
            } => {
                let cls = g.select_token(enc.hidden, 0)?;
                let x = linear(g, p, cls, pre)?;
                let x = g.relu(x)?;
                let x = g.dropout(x, config.dropout.classifier)?;
                linear(g, p, x, out)
            }
        }
    }

    /// HF's loss for `logits` against the batch's labels: cross-entropy with ignore index
    /// -100 over tokens (masked LM) or sequences (classification). A classifier whose config
    /// asks HF for another loss (regression, multi-label) is an error naming config.json.
    pub fn loss(
        &self,
        g: &mut Graph<'_>,
        config: &Config,
        logits: Var,
        batch: &Batch,
    ) -> Result<Var> {
        let per_token = matches!(self, Head::MaskedLm { .. });
        if !per_token {
            single_label(config)?;
        }
        let needed = if per_token {
            batch.batch * batch.seq
        } else {
            batch.batch
        };
        if batch.labels.len() != needed {
            return Err(Error::Input {
                op: "loss",
                detail: format!(
                    "the {} head needs {needed} labels for a batch of [{}, {}], got {}",
                    if per_token {
                        "masked-LM"
                    } else {
                        "classification"
                    },
                    batch.batch,
                    batch.seq,
                    batch.labels.len()
                ),
            });
        }
        g.cross_entropy(logits, &batch.labels, -100)
    }
}

/// The masked-LM decoder weight: the word embeddings `word` when the config ties them (HF's
/// default), else the `[vocab, hidden]` tensor `name`.
fn decoder(config: &Config, word: usize, name: &str, b: &mut Builder<'_>) -> Result<usize> {
    if config.tie_word_embeddings {
        Ok(word)
    } else {
        b.tensor(name, &[config.vocab_size, config.hidden])
    }
}

/// Refuses a classifier whose config makes HF train with MSE or BCE: smelt's labels are class
/// ids and its loss is cross-entropy, which differs (and over one class is always 0).
fn single_label(config: &Config) -> Result<()> {
    let why = match (config.problem(), config.problem_type) {
        (ProblemType::SingleLabel, _) => return Ok(()),
        (ProblemType::Regression, None) => format!(
            "num_labels {} and no problem_type, for which HF's loss is regression (MSE on float labels)",
            config.num_labels
        ),
        (ProblemType::Regression, Some(_)) => {
            "problem_type \"regression\", for which HF's loss is MSE on float labels".to_string()
        }
        (ProblemType::MultiLabel, _) => "problem_type \"multi_label_classification\", for which HF's loss is BCE-with-logits on multi-hot float labels".to_string(),
    };
    Err(Error::Input {
        op: "loss",
        detail: format!("config.json has {why}; smelt's classification loss is cross-entropy over class ids (problem_type \"single_label_classification\") only"),
    })
}

//! [`Config`]: the architecture of a BERT or DistilBERT, read from HF's `config.json`.

use smelt_engine::formats::json::{self, Json};
use smelt_engine::{Error, Result};
use std::path::Path;

/// Which encoder family a config describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `model_type: "bert"`: token types, post-LN layers, a pooler.
    Bert,
    /// `model_type: "distilbert"`: no token types, no pooler.
    DistilBert,
}

/// HF's `problem_type`: which loss a sequence-classification head trains with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemType {
    /// `"regression"`: MSE on float labels (HF's choice for one label without a problem type).
    Regression,
    /// `"single_label_classification"`: cross-entropy over class ids.
    SingleLabel,
    /// `"multi_label_classification"`: BCE-with-logits on multi-hot float labels.
    MultiLabel,
}

impl ProblemType {
    /// The three kinds.
    const ALL: [ProblemType; 3] = [
        ProblemType::Regression,
        ProblemType::SingleLabel,
        ProblemType::MultiLabel,
    ];

    /// HF's name for this kind.
    pub fn name(self) -> &'static str {
        match self {
            ProblemType::Regression => "regression",
            ProblemType::SingleLabel => "single_label_classification",
            ProblemType::MultiLabel => "multi_label_classification",
        }
    }
}

/// The dropout probabilities of HF's training mode, with HF's defaults where `config.json`
/// leaves them out (0.1; DistilBERT's classifier 0.2).
///
/// Inference and `smelt run --grad` compute HF's eval mode, without dropout, whatever these
/// say; a [`Trainer`](crate::Trainer)'s steps drop with them as HF's `model.train()` does
/// (each step's masks drawn from the trainer's seed; see
/// [`Model::forward`](crate::Model::forward) for the sites), or train as eval mode after
/// [`Model::disable_dropout`](crate::Model::disable_dropout).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// On the embeddings and on the attention and feed-forward outputs
    /// (`hidden_dropout_prob`; DistilBERT's `dropout`).
    pub hidden: f32,
    /// On the attention probabilities (`attention_probs_dropout_prob`; `attention_dropout`).
    pub attention: f32,
    /// Before a sequence classifier (`classifier_dropout`, which defaults to
    /// `hidden_dropout_prob`; DistilBERT's `seq_classif_dropout`).
    pub classifier: f32,
}

impl Dropout {
    /// No dropout anywhere.
    pub const NONE: Dropout = Dropout {
        hidden: 0.0,
        attention: 0.0,
        classifier: 0.0,
    };
}

/// The sizes and constants of an encoder, under HF's names where they exist.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The encoder family (`model_type`).
    pub family: Family,
    /// Tokens in the vocabulary (`vocab_size`).
    pub vocab_size: usize,
    /// Width of the hidden states (`hidden_size`; DistilBERT's `dim`).
    pub hidden: usize,
    /// Transformer layers (`num_hidden_layers`; `n_layers`).
    pub layers: usize,
    /// Attention heads (`num_attention_heads`; `n_heads`).
    pub heads: usize,
    /// Width of the feed-forward layer (`intermediate_size`; `hidden_dim`).
    pub intermediate: usize,
    /// Longest sequence the position table covers (`max_position_embeddings`).
    pub max_positions: usize,
    /// Token types (`type_vocab_size`; 0 for DistilBERT).
    pub type_vocab_size: usize,
    /// Epsilon of every layer norm (`layer_norm_eps`; DistilBERT uses 1e-12).
    pub layer_norm_eps: f32,
    /// Classes of a sequence-classification head: the size of `id2label` when given (as in
    /// HF, it wins over `num_labels`), else `num_labels`, else 2.
    pub num_labels: usize,
    /// The first entry of `architectures`, when given (e.g. `BertForMaskedLM`).
    pub architecture: Option<String>,
    /// `pad_token_id` (default 0): HF's word embeddings use it as `padding_idx`, so that row
    /// gets no gradient.
    pub pad_token_id: Option<u32>,
    /// `tie_word_embeddings` (default true): whether the masked-LM decoder is the word
    /// embeddings or its own tensor.
    pub tie_word_embeddings: bool,
    /// `problem_type`, when given (see [`Config::problem`] for HF's choice without it).
    pub problem_type: Option<ProblemType>,
    /// What HF's training mode drops (see [`Dropout`]).
    pub dropout: Dropout,
}

impl Config {
    /// Reads `config.json` at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            file: file.clone(),
            detail: format!("cannot read the model config: {e}"),
        })?;
        Config::parse(&file, &text)
    }

    /// Parses the text of a `config.json`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Config> {
        let format = |detail: String| Error::Format {
            file: file.to_string(),
            detail,
        };
        let root = json::parse(text).map_err(|e| format(format!("malformed JSON: {e}")))?;
        if root.as_object().is_none() {
            return Err(format(format!(
                "expected a JSON object, got {}",
                root.type_name()
            )));
        }
        let model_type = root.get("model_type").and_then(Json::as_str);
        let family = match model_type {
            Some("bert") => Family::Bert,
            Some("distilbert") => Family::DistilBert,
            Some(other) => {
                return Err(format(format!(
                "model_type \"{other}\" is not supported (smelt runs \"bert\" and \"distilbert\")"
            )))
            }
            None => return Err(format("no string \"model_type\"".into())),
        };
        let keys = Keys { root: &root, file };
        let config = match family {
            Family::Bert => {
                keys.activation("hidden_act")?;
                keys.absolute_positions()?;
                keys.encoder_only()?;
                Config {
                    family,
                    vocab_size: keys.size("vocab_size")?,
                    hidden: keys.size("hidden_size")?,
                    layers: keys.size("num_hidden_layers")?,
                    heads: keys.size("num_attention_heads")?,
                    intermediate: keys.size("intermediate_size")?,
                    max_positions: keys.size("max_position_embeddings")?,
                    type_vocab_size: keys.size("type_vocab_size")?,
                    layer_norm_eps: keys.number_or("layer_norm_eps", 1e-12)? as f32,
                    num_labels: keys.num_labels()?,
                    architecture: keys.architecture()?,
                    pad_token_id: keys.pad_token_id()?,
                    tie_word_embeddings: keys.flag_or("tie_word_embeddings", true)?,
                    problem_type: keys.problem_type()?,
                    dropout: {
                        let hidden = keys.probability_or("hidden_dropout_prob", 0.1)?;
                        Dropout {
                            hidden,
                            attention: keys.probability_or("attention_probs_dropout_prob", 0.1)?,
                            classifier: keys.probability_or("classifier_dropout", hidden)?,
                        }
                    },
                }
            }
            Family::DistilBert => {
                keys.activation("activation")?;
                // `sinusoidal_pos_embds` only says how HF initialised the position table: it
                // saves the table in the checkpoint and (transformers 5) trains it like a
                // learned one, so either way it is read from the checkpoint.
                keys.flag_or("sinusoidal_pos_embds", false)?;
                Config {
                    family,
                    vocab_size: keys.size("vocab_size")?,
                    hidden: keys.size("dim")?,
                    layers: keys.size("n_layers")?,
                    heads: keys.size("n_heads")?,
                    intermediate: keys.size("hidden_dim")?,
                    max_positions: keys.size("max_position_embeddings")?,
                    type_vocab_size: 0,
                    layer_norm_eps: 1e-12,
                    num_labels: keys.num_labels()?,
                    architecture: keys.architecture()?,
                    pad_token_id: keys.pad_token_id()?,
                    tie_word_embeddings: keys.flag_or("tie_word_embeddings", true)?,
                    problem_type: keys.problem_type()?,
                    dropout: Dropout {
                        hidden: keys.probability_or("dropout", 0.1)?,
                        attention: keys.probability_or("attention_dropout", 0.1)?,
                        classifier: keys.probability_or("seq_classif_dropout", 0.2)?,
                    },
                }
            }
        };
        config.check().map_err(format)?;
        Ok(config)
    }

    /// Checks what [`Config::load`] checks on a file, for a config built or edited in code:
    /// every size but the layer count is above zero, the heads divide the hidden width, the
    /// tables' ids fit in 32 bits, `layer_norm_eps` is a non-negative number and the padding
    /// token is in the vocabulary. The error names the size that does not fit.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(|detail| Error::Input {
            op: "config",
            detail,
        })
    }

    /// The checks of [`Config::validate`], as a message.
    fn check(&self) -> std::result::Result<(), String> {
        let sizes = [
            ("vocab size", self.vocab_size),
            ("hidden size", self.hidden),
            ("heads", self.heads),
            ("intermediate size", self.intermediate),
            ("max positions", self.max_positions),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(format!("the {name} is 0"));
        }
        // Token ids are u32 on the way to the embedding kernels.
        const IDS: usize = 1 << 32;
        for (name, rows) in [
            ("vocab size", self.vocab_size),
            ("token type vocab size", self.type_vocab_size),
            ("max positions", self.max_positions),
        ] {
            if rows > IDS {
                return Err(format!("the {name} {rows} is past 2^32 ids"));
            }
        }
        // HF's BERT always adds a token-type embedding (type 0 when none are given), so a
        // table of 0 rows cannot run there either.
        if self.family == Family::Bert && self.type_vocab_size == 0 {
            return Err("\"type_vocab_size\" is 0; BERT needs at least 1 token type".into());
        }
        // DistilBERT has no token-type table: types given to it would be dropped silently.
        if self.family == Family::DistilBert && self.type_vocab_size != 0 {
            return Err(format!(
                "a DistilBERT has no token types, but the type vocab size is {}",
                self.type_vocab_size
            ));
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return Err(format!(
                "{} heads do not divide the hidden size {}",
                self.heads, self.hidden
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return Err(format!(
                "layer_norm_eps {} is not a non-negative number",
                self.layer_norm_eps
            ));
        }
        self.check_pad()
    }

    /// The padding row must exist: HF's `nn.Embedding` asserts `padding_idx < vocab_size`.
    fn check_pad(&self) -> std::result::Result<(), String> {
        match self.pad_token_id {
            Some(pad) if pad as usize >= self.vocab_size => Err(format!(
                "\"pad_token_id\" {pad} is not below \"vocab_size\" {}",
                self.vocab_size
            )),
            _ => Ok(()),
        }
    }

    /// The loss HF's sequence classifier uses with integer labels: `problem_type` when given,
    /// else regression for one label, else single-label classification.
    pub fn problem(&self) -> ProblemType {
        match self.problem_type {
            Some(kind) => kind,
            None if self.num_labels == 1 => ProblemType::Regression,
            None => ProblemType::SingleLabel,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// A named preset with HF's sizes: `bert-base`, `distilbert-base`, `minilm`
    /// (all-MiniLM-L6-v2), or `tiny` (a 2-layer BERT for tests).
    pub fn preset(name: &str) -> Option<Config> {
        let bert = |hidden, layers, heads, intermediate| Config {
            family: Family::Bert,
            vocab_size: 30522,
            hidden,
            layers,
            heads,
            intermediate,
            max_positions: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            num_labels: 2,
            architecture: None,
            pad_token_id: Some(0),
            tie_word_embeddings: true,
            problem_type: None,
            // The benchmarks' peers run without dropout too.
            dropout: Dropout::NONE,
        };
        match name {
            "bert-base" => Some(bert(768, 12, 12, 3072)),
            "minilm" => Some(bert(384, 6, 12, 1536)),
            "distilbert-base" => Some(Config {
                family: Family::DistilBert,
                type_vocab_size: 0,
                ..bert(768, 6, 12, 3072)
            }),
            "tiny" => Some(Config {
                vocab_size: 99,
                max_positions: 64,
                ..bert(32, 2, 4, 37)
            }),
            _ => None,
        }
    }

    /// The names [`Config::preset`] knows.
    pub const PRESETS: [&'static str; 4] = ["bert-base", "distilbert-base", "minilm", "tiny"];
}

/// Typed lookups in a config object, with errors naming the file and key.
struct Keys<'a> {
    root: &'a Json,
    file: &'a str,
}

impl Keys<'_> {
    fn error(&self, detail: String) -> Error {
        Error::Format {
            file: self.file.to_string(),
            detail,
        }
    }

    fn size(&self, key: &str) -> Result<usize> {
        match self.root.get(key) {
            Some(v) => v.as_usize().ok_or_else(|| {
                self.error(format!("\"{key}\" must be a non-negative integer, got {v}"))
            }),
            None => Err(self.error(format!("missing \"{key}\""))),
        }
    }

    fn number_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.root.get(key) {
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.error(format!("\"{key}\" must be a number, got {v}"))),
            None => Ok(default),
        }
    }

    /// The probability at `key` (in `[0, 1]`), `default` when absent or null.
    fn probability_or(&self, key: &str, default: f32) -> Result<f32> {
        let p = match self.root.get(key) {
            None | Some(Json::Null) => return Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| {
                    self.error(format!(
                        "\"{key}\" must be a probability in [0, 1], got {v}"
                    ))
                })?,
        };
        Ok(p as f32)
    }

    /// The boolean at `key`, `default` when absent or null.
    fn flag_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.root.get(key) {
            None | Some(Json::Null) => Ok(default),
            Some(Json::Bool(b)) => Ok(*b),
            Some(v) => Err(self.error(format!("\"{key}\" must be true or false, got {v}"))),
        }
    }

    /// `problem_type`: absent or null, or one of HF's three names (HF refuses any other).
    fn problem_type(&self) -> Result<Option<ProblemType>> {
        const KEY: &str = "problem_type";
        match self.root.get(KEY) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => ProblemType::ALL
                .into_iter()
                .find(|kind| v.as_str() == Some(kind.name()))
                .map(Some)
                .ok_or_else(|| {
                    self.error(format!(
                        "\"{KEY}\" must be \"regression\", \"single_label_classification\" or \"multi_label_classification\", got {v}"
                    ))
                }),
        }
    }

    /// The activation must be HF's exact (erf) GELU (HF's default when the key is absent).
    fn activation(&self, key: &str) -> Result<()> {
        match self.root.get(key) {
            None => Ok(()),
            Some(Json::String(name)) if name == "gelu" => Ok(()),
            Some(Json::String(other)) => Err(self.error(format!(
                "\"{key}\": \"{other}\" is not supported (smelt implements \"gelu\", the exact erf form)"
            ))),
            Some(v) => Err(self.error(format!(
                "\"{key}\" must be the name of an activation (\"gelu\"), got {v}"
            ))),
        }
    }

    /// BERT's `position_embedding_type` must be `"absolute"` (the default): the relative kinds
    /// add distance embeddings to the attention scores, which smelt does not implement.
    fn absolute_positions(&self) -> Result<()> {
        const KEY: &str = "position_embedding_type";
        match self.root.get(KEY) {
            None => Ok(()),
            Some(Json::String(kind)) if kind == "absolute" => Ok(()),
            Some(v) => Err(self.error(format!(
                "\"{KEY}\": {v} is not supported (smelt implements \"absolute\" position embeddings only)"
            ))),
        }
    }

    /// `is_decoder` and `add_cross_attention` must be false, null or absent: a decoder masks
    /// attention causally, and cross-attention layers attend to an encoder's states (HF refuses
    /// them outside a decoder); smelt runs BERT as an encoder without either.
    fn encoder_only(&self) -> Result<()> {
        for (key, what) in [
            ("is_decoder", "without a causal mask"),
            ("add_cross_attention", "without cross-attention layers"),
        ] {
            match self.root.get(key) {
                None | Some(Json::Null) | Some(Json::Bool(false)) => {}
                Some(Json::Bool(true)) => {
                    return Err(self.error(format!(
                        "\"{key}\": true is not supported (smelt runs BERT as an encoder, {what})"
                    )))
                }
                Some(v) => {
                    return Err(self.error(format!("\"{key}\" must be true or false, got {v}")))
                }
            }
        }
        Ok(())
    }

    /// As HF: the number of distinct integer ids in `id2label` when it is given (HF keeps
    /// `id2label` and only warns when `num_labels` disagrees), else `num_labels`, else 2.
    fn num_labels(&self) -> Result<usize> {
        match self.root.get("id2label") {
            None | Some(Json::Null) => match self.root.get("num_labels") {
                Some(_) => self.size("num_labels"),
                None => Ok(2),
            },
            Some(Json::Object(labels)) => self.label_ids(labels),
            Some(v) => Err(self.error(format!(
                "\"id2label\" must be an object of label names by integer id, got {v}"
            ))),
        }
    }

    /// The number of distinct ids among `id2label`'s keys, which HF reads with `int(key)`.
    fn label_ids(&self, labels: &[(String, Json)]) -> Result<usize> {
        let mut ids = std::collections::BTreeSet::new();
        for (key, _) in labels {
            let id = key.trim().parse::<i64>().map_err(|_| {
                self.error(format!("\"id2label\" key \"{key}\" is not an integer id"))
            })?;
            ids.insert(id);
        }
        Ok(ids.len())
    }

    fn pad_token_id(&self) -> Result<Option<u32>> {
        match self.root.get("pad_token_id") {
            None => Ok(Some(0)),
            Some(Json::Null) => Ok(None),
            Some(v) => match v.as_usize().and_then(|id| u32::try_from(id).ok()) {
                Some(id) => Ok(Some(id)),
                None => Err(self.error(format!("\"pad_token_id\" must be a token id, got {v}"))),
            },
        }
    }

    /// The first of `architectures` (absent, null or an empty list: none); a value that is
    /// not a list of strings is an error, not a silent bare encoder.
    fn architecture(&self) -> Result<Option<String>> {
        let names = match self.root.get("architectures") {
            None | Some(Json::Null) => return Ok(None),
            Some(v) => v
                .as_array()
                .filter(|names| names.iter().all(|n| n.as_str().is_some())),
        };
        match names {
            Some(names) => Ok(names.first().and_then(Json::as_str).map(str::to_string)),
            None => Err(self.error(format!(
                "\"architectures\" must be a list of class names, got {}",
                self.root
                    .get("architectures")
                    .map_or(String::new(), |v| v.to_string())
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERT: &str = r#"{"model_type": "bert", "vocab_size": 99, "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37,
        "max_position_embeddings": 40, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_act": "gelu", "architectures": ["BertForMaskedLM"]}"#;

    #[test]
    fn reads_bert_and_distilbert() {
        let c = Config::parse("config.json", BERT).unwrap();
        assert_eq!(
            (c.family, c.hidden, c.layers, c.heads),
            (Family::Bert, 32, 2, 4)
        );
        assert_eq!(
            (c.intermediate, c.max_positions, c.type_vocab_size),
            (37, 40, 2)
        );
        assert_eq!(c.architecture.as_deref(), Some("BertForMaskedLM"));
        let d = Config::parse(
            "d.json",
            r#"{"model_type": "distilbert", "vocab_size": 10, "dim": 8, "n_layers": 1,
               "n_heads": 2, "hidden_dim": 16, "max_position_embeddings": 20,
               "sinusoidal_pos_embds": false, "activation": "gelu", "id2label": {"0": "a", "1": "b", "2": "c"}}"#,
        )
        .unwrap();
        assert_eq!(
            (d.family, d.hidden, d.type_vocab_size, d.num_labels),
            (Family::DistilBert, 8, 0, 3)
        );
    }

    #[test]
    fn bad_configs_are_clear_errors() {
        let err = |text: &str| Config::parse("cfg.json", text).unwrap_err().to_string();
        // An `architectures` that is not a list of names would have given a bare encoder.
        for bad in [
            r#""BertForSequenceClassification""#,
            "[42]",
            r#"["BertModel",1]"#,
        ] {
            let text = BERT.replace(r#"["BertForMaskedLM"]"#, bad);
            assert!(
                err(&text).contains(&format!(
                    "\"architectures\" must be a list of class names, got {bad}"
                )),
                "{}",
                err(&text)
            );
        }
        let none = BERT.replace(r#"["BertForMaskedLM"]"#, "[]");
        assert_eq!(Config::parse("cfg.json", &none).unwrap().architecture, None);
        assert!(
            err("{").starts_with("cfg.json: malformed JSON"),
            "{}",
            err("{")
        );
        assert_eq!(
            err(r#"{"model_type": "gpt2"}"#),
            "cfg.json: model_type \"gpt2\" is not supported (smelt runs \"bert\" and \"distilbert\")"
        );
        assert_eq!(
            err(&BERT.replace("\"hidden_size\": 32,", "")),
            "cfg.json: missing \"hidden_size\""
        );
        assert!(err(&BERT.replace("\"gelu\"", "\"relu\"")).contains("\"relu\" is not supported"));
        assert!(
            err(&BERT.replace("\"hidden_size\": 32", "\"hidden_size\": 30"))
                .contains("4 heads do not divide")
        );
        assert!(err(&BERT.replace("32", "-32")).contains("non-negative integer"));
        let sinusoidal = r#"{"model_type": "distilbert", "sinusoidal_pos_embds": 1}"#;
        assert!(err(sinusoidal).contains("\"sinusoidal_pos_embds\""));
    }

    /// Settings that change the math are refused, naming the file and key, not ignored.
    #[test]
    fn unsupported_math_settings_are_errors() {
        let err = |text: &str| Config::parse("config.json", text).unwrap_err().to_string();
        let with = |extra: &str| BERT.replacen('{', &format!("{{{extra}, "), 1);
        for kind in ["\"relative_key\"", "\"relative_key_query\"", "null"] {
            let e = err(&with(&format!("\"position_embedding_type\": {kind}")));
            assert_eq!(
                e,
                format!("config.json: \"position_embedding_type\": {kind} is not supported (smelt implements \"absolute\" position embeddings only)")
            );
        }
        assert!(Config::parse("c", &with(r#""position_embedding_type": "absolute""#)).is_ok());
        assert_eq!(
            err(&with(r#""is_decoder": true"#)),
            "config.json: \"is_decoder\": true is not supported (smelt runs BERT as an encoder, without a causal mask)"
        );
        assert!(err(&with(r#""is_decoder": 1"#)).contains("\"is_decoder\" must be true or false"));
        assert!(Config::parse("c", &with(r#""is_decoder": false"#)).is_ok());
        assert_eq!(
            err(&with(r#""add_cross_attention": true"#)),
            "config.json: \"add_cross_attention\": true is not supported (smelt runs BERT as an encoder, without cross-attention layers)"
        );
        assert!(err(&with(r#""add_cross_attention": 1"#))
            .contains("\"add_cross_attention\" must be true or false"));
        assert!(Config::parse("c", &with(r#""add_cross_attention": false"#)).is_ok());
        for act in ["1", "null", "[\"gelu\"]", "{}"] {
            let e = err(&BERT.replace("\"gelu\"", act));
            assert!(
                e.starts_with("config.json: \"hidden_act\" must be the name of an activation"),
                "{e}"
            );
        }
        let distil = r#"{"model_type": "distilbert", "vocab_size": 10, "dim": 8, "n_layers": 1,
            "n_heads": 2, "hidden_dim": 16, "max_position_embeddings": 20, "activation": false}"#;
        assert!(err(distil).contains("\"activation\" must be the name of an activation"));
        assert_eq!(
            err(&BERT.replace("\"type_vocab_size\": 2", "\"type_vocab_size\": 0")),
            "config.json: \"type_vocab_size\" is 0; BERT needs at least 1 token type"
        );
    }

    /// As HF, `id2label` decides the number of labels when both keys are given (HF warns and
    /// keeps `id2label`); a malformed `id2label` is an error naming the key.
    #[test]
    fn id2label_wins_over_num_labels() {
        let with = |extra: &str| BERT.replacen('{', &format!("{{{extra}, "), 1);
        let both = with(r#""num_labels": 3, "id2label": {"0": "a", "1": "b"}"#);
        assert_eq!(Config::parse("c", &both).unwrap().num_labels, 2);
        let only_count = with(r#""num_labels": 5, "id2label": null"#);
        assert_eq!(Config::parse("c", &only_count).unwrap().num_labels, 5);
        assert_eq!(Config::parse("c", BERT).unwrap().num_labels, 2);
        let err = |text: &str| Config::parse("config.json", text).unwrap_err().to_string();
        assert_eq!(
            err(&with(r#""id2label": ["a", "b"]"#)),
            "config.json: \"id2label\" must be an object of label names by integer id, got [\"a\",\"b\"]"
        );
        assert_eq!(
            err(&with(r#""id2label": {"zero": "a"}"#)),
            "config.json: \"id2label\" key \"zero\" is not an integer id"
        );
    }

    /// HF's embedding asserts `padding_idx < num_embeddings`; a `pad_token_id` past the
    /// vocabulary is a config error naming both keys, not a padding row that never exists.
    #[test]
    fn pad_token_id_must_be_in_the_vocabulary() {
        let with = |pad: &str| BERT.replacen('{', &format!("{{\"pad_token_id\": {pad}, "), 1);
        assert_eq!(
            Config::parse("config.json", &with("99"))
                .unwrap_err()
                .to_string(),
            "config.json: \"pad_token_id\" 99 is not below \"vocab_size\" 99"
        );
        assert_eq!(
            Config::parse("c", &with("98")).unwrap().pad_token_id,
            Some(98)
        );
        assert_eq!(
            Config::parse("c", &with("null")).unwrap().pad_token_id,
            None
        );
    }

    /// `tie_word_embeddings` defaults to true as in HF; a non-boolean is an error naming it.
    #[test]
    fn reads_tie_word_embeddings() {
        let with = |v: &str| BERT.replacen('{', &format!("{{\"tie_word_embeddings\": {v}, "), 1);
        assert!(Config::parse("c", BERT).unwrap().tie_word_embeddings);
        assert!(
            !Config::parse("c", &with("false"))
                .unwrap()
                .tie_word_embeddings
        );
        assert_eq!(
            Config::parse("config.json", &with("\"no\""))
                .unwrap_err()
                .to_string(),
            "config.json: \"tie_word_embeddings\" must be true or false, got \"no\""
        );
    }

    /// `problem_type` is one of HF's three names or absent; anything else is an error.
    #[test]
    fn reads_problem_type() {
        let with = |v: &str| BERT.replacen('{', &format!("{{\"problem_type\": {v}, "), 1);
        let parse = |text: &str| Config::parse("config.json", text);
        assert_eq!(parse(BERT).unwrap().problem_type, None);
        assert_eq!(parse(BERT).unwrap().problem(), ProblemType::SingleLabel);
        let one = BERT.replacen('{', "{\"num_labels\": 1, ", 1);
        assert_eq!(parse(&one).unwrap().problem(), ProblemType::Regression);
        for kind in ProblemType::ALL {
            let c = parse(&with(&format!("\"{}\"", kind.name()))).unwrap();
            assert_eq!(c.problem_type, Some(kind));
        }
        assert_eq!(
            parse(&with("\"ranking\"")).unwrap_err().to_string(),
            "config.json: \"problem_type\" must be \"regression\", \"single_label_classification\" or \"multi_label_classification\", got \"ranking\""
        );
    }

    /// Seeded mutations of a valid config (byte flips, deletions, insertions of JSON
    /// punctuation, truncations): every one parses or is an error, never a panic.
    #[test]
    fn mutated_configs_never_panic() {
        let mut state = 0x2545f4914f6cdd1d_u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let punctuation = b"{}[]:,\"-0.9e+ ";
        for _ in 0..20_000 {
            let mut bytes = BERT.as_bytes().to_vec();
            for _ in 0..1 + next(4) {
                let at = next(bytes.len());
                match next(4) {
                    0 => bytes[at] ^= 1 << next(8),
                    1 => {
                        bytes.remove(at);
                    }
                    2 => bytes.insert(at, punctuation[next(punctuation.len())]),
                    _ => bytes.truncate(at),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = std::panic::catch_unwind(|| Config::parse("fuzz.json", &text))
                .unwrap_or_else(|_| panic!("Config::parse panicked on {text:?}"));
        }
    }

    #[test]
    fn dropout_is_read_with_hf_defaults() {
        let with = |extra: &str| BERT.replacen('{', &format!("{{{extra}, "), 1);
        let bert = |text: &str| Config::parse("config.json", text).map(|c| c.dropout);
        let hf = Dropout {
            hidden: 0.1,
            attention: 0.1,
            classifier: 0.1,
        };
        assert_eq!(bert(BERT).unwrap(), hf, "absent keys take HF's defaults");
        let given = with(
            r#""hidden_dropout_prob": 0.25, "attention_probs_dropout_prob": 0, "classifier_dropout": null"#,
        );
        // A null classifier_dropout falls back to hidden_dropout_prob, as in HF.
        assert_eq!(
            bert(&given).unwrap(),
            Dropout {
                hidden: 0.25,
                attention: 0.0,
                classifier: 0.25,
            }
        );
        for bad in ["1.5", "-0.1", "\"x\""] {
            let err = bert(&with(&format!(r#""attention_probs_dropout_prob": {bad}"#)))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("attention_probs_dropout_prob") && err.contains("probability"),
                "{err}"
            );
        }
        let d = Config::parse(
            "d.json",
            r#"{"model_type": "distilbert", "vocab_size": 10, "dim": 8, "n_layers": 1,
               "n_heads": 2, "hidden_dim": 16, "max_position_embeddings": 20, "activation": "gelu",
               "attention_dropout": 0.0}"#,
        )
        .unwrap();
        assert_eq!(
            d.dropout,
            Dropout {
                hidden: 0.1,
                attention: 0.0,
                classifier: 0.2,
            }
        );
    }

    #[test]
    fn presets_are_consistent() {
        for name in Config::PRESETS {
            let c = Config::preset(name).unwrap();
            assert!(c.check().is_ok(), "{name}");
        }
        assert!(Config::preset("gpt").is_none());
    }
}

//! Text in: BERT's WordPiece tokenizer, equal to HF's fast `BertTokenizer`.
//!
//! `vocab.txt` gives the pieces; `tokenizer_config.json` (when present) gives lower-casing,
//! accent stripping, CJK splitting, the length limit and the special tokens. Special tokens
//! written in the text (`[MASK]`, ...) stay single tokens, as in HF; so do the tokens of
//! `additional_special_tokens` and `added_tokens_decoder`, and of `added_tokens.json`, which
//! must be lines of `vocab.txt` (at the id they claim): tokens added past the vocabulary are
//! refused, not split. A `tokenizer_class` other than BERT's or DistilBERT's (a Japanese BERT's
//! MeCab tokenizer, say) is refused, not tokenized as BERT's. A text becomes
//! `[CLS] pieces [SEP]`, a pair `[CLS] a [SEP] b [SEP]` with token types 0 then 1.

mod normalize;
mod tables;
mod wordpiece;

pub use normalize::Normalization;
pub use wordpiece::{Vocab, MAX_CHARS_PER_WORD};

use crate::json_file::read_optional;
use normalize::{normalize, split_words};
use smelt_engine::formats::json::Json;
use smelt_engine::{Error, Result};
use std::path::Path;

/// What to do with a text longer than the length limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncation {
    /// Cut it (keeping `[SEP]` last) and report it in [`Encoding::truncated`].
    Truncate,
    /// Refuse it with an error naming the text.
    Error,
}

/// A padded batch: `[B, T]` row-major ids, mask and token types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoding {
    /// Texts `B`.
    pub batch: usize,
    /// Tokens per row `T` (the longest text, after truncation).
    pub seq: usize,
    /// Token ids, padded with the `[PAD]` id.
    pub input_ids: Vec<i64>,
    /// 1 for tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// All 0 for single texts.
    pub token_type_ids: Vec<i64>,
    /// Whether each text was cut.
    pub truncated: Vec<bool>,
}

/// The special tokens' ids.
#[derive(Clone, Copy, Debug)]
struct Specials {
    unk: u32,
    cls: u32,
    sep: u32,
    pad: u32,
}

/// A BERT WordPiece tokenizer.
pub struct Tokenizer {
    vocab: Vocab,
    how: Normalization,
    specials: Specials,
    /// Special-token strings matched verbatim in the text, with their ids.
    verbatim: Vec<(String, u32)>,
    /// The first bytes of those strings (where a match can start).
    first_bytes: Vec<u8>,
    max_len: usize,
}

/// The text of a token in `tokenizer_config.json`: a string, or HF's `AddedToken` object with
/// the string as its `content`; never empty (it would match everywhere and consume nothing).
fn token_text(value: &Json, key: &str, path: &Path) -> Result<String> {
    let text = match value {
        Json::String(s) => s.clone(),
        other => match other.get("content") {
            Some(Json::String(s)) => s.clone(),
            _ => {
                return Err(format_error(
                    path,
                    format!(
                        "\"{key}\" must be a string or an object with a string \"content\", got {other}"
                    ),
                ))
            }
        },
    };
    if text.is_empty() {
        return Err(format_error(
            path,
            format!("\"{key}\" is the empty string; a special token needs characters"),
        ));
    }
    Ok(text)
}

/// The tokens `config` adds: each of `additional_special_tokens`, and each entry of
/// `added_tokens_decoder` (`{"id": AddedToken}`) with the id it claims.
fn added_tokens(config: &Json, path: &Path) -> Result<Vec<(String, Option<u32>)>> {
    let mut tokens = Vec::new();
    const LIST: &str = "additional_special_tokens";
    match config.get(LIST) {
        None | Some(Json::Null) => {}
        Some(Json::Array(items)) => {
            for item in items {
                tokens.push((token_text(item, LIST, path)?, None));
            }
        }
        Some(other) => {
            return Err(format_error(
                path,
                format!("\"{LIST}\" must be a list of tokens, got {other}"),
            ))
        }
    }
    const TABLE: &str = "added_tokens_decoder";
    match config.get(TABLE) {
        None | Some(Json::Null) => {}
        Some(Json::Object(entries)) => {
            for (id, value) in entries {
                let id = id.parse::<u32>().map_err(|_| {
                    format_error(path, format!("\"{TABLE}\" key {id:?} is not a token id"))
                })?;
                tokens.push((token_text(value, TABLE, path)?, Some(id)));
            }
        }
        Some(other) => {
            return Err(format_error(
                path,
                format!("\"{TABLE}\" must map token ids to tokens, got {other}"),
            ))
        }
    }
    Ok(tokens)
}

/// Adds `tokens` (each with the id it claims, if any), read from `file`, to `verbatim` (once
/// each); each must be a non-empty line of `vocab` (read from `vocab_path`), at its claimed id.
fn add_verbatim(
    vocab: &Vocab,
    tokens: Vec<(String, Option<u32>)>,
    (file, vocab_path): (&Path, &Path),
    verbatim: &mut Vec<(String, u32)>,
) -> Result<()> {
    for (name, claimed) in tokens {
        let id = vocab
            .id(&name)
            .filter(|&id| !name.is_empty() && claimed.is_none_or(|c| c == id));
        let Some(id) = id else {
            let at = claimed.map_or(String::new(), |c| format!(" with id {c}"));
            return Err(format_error(
                file,
                format!(
                    "added token '{name}'{at} is not a line of {} (tokens added past the \
                     vocabulary are not supported)",
                    vocab_path.display()
                ),
            ));
        };
        if !verbatim.iter().any(|(s, _)| *s == name) {
            verbatim.push((name, id));
        }
    }
    Ok(())
}

/// The first bytes of the verbatim tokens (where a match can start).
fn first_bytes(verbatim: &[(String, u32)]) -> Vec<u8> {
    verbatim
        .iter()
        .filter_map(|(s, _)| s.bytes().next())
        .collect()
}

/// The file's name for error messages.
fn format_error(file: &Path, detail: String) -> Error {
    Error::Format {
        file: file.display().to_string(),
        detail,
    }
}

impl Tokenizer {
    /// Loads `dir/vocab.txt` and, when present, `dir/tokenizer_config.json` and
    /// `dir/added_tokens.json`.
    ///
    /// Errors name the file: a missing or unreadable vocabulary, one without the `[UNK]`,
    /// `[CLS]`, `[SEP]`, `[PAD]` or (when the config names one) mask token the config names,
    /// an empty special token, an added token that is not a line of the vocabulary at its id,
    /// a `tokenizer_class` other than BERT's or DistilBERT's, malformed JSON.
    pub fn from_dir(dir: &Path) -> Result<Tokenizer> {
        let vocab_path = dir.join("vocab.txt");
        let text = std::fs::read_to_string(&vocab_path).map_err(|e| Error::Io {
            file: vocab_path.display().to_string(),
            detail: format!("cannot read the WordPiece vocabulary: {e}"),
        })?;
        let vocab = Vocab::parse(&text);
        let config_path = dir.join("tokenizer_config.json");
        let config = read_optional(&config_path)?.unwrap_or(Json::Object(Vec::new()));
        if config.as_object().is_none() {
            return Err(format_error(
                &config_path,
                format!(
                    "expected a JSON object of settings, got {}",
                    config.type_name()
                ),
            ));
        }
        let mut tokenizer = Tokenizer::new(vocab, &config, &vocab_path, &config_path)?;
        let added_path = dir.join("added_tokens.json");
        if let Some(added) = read_optional(&added_path)? {
            tokenizer.add_from_json(&added, &added_path, &vocab_path)?;
        }
        Ok(tokenizer)
    }

    /// Matches the tokens of an `added_tokens.json` object (`{"token": id}`) whole, as HF
    /// does; each must be a line of the vocabulary at its id (`added` and `vocab` name the
    /// files in errors).
    fn add_from_json(&mut self, added: &Json, file: &Path, vocab: &Path) -> Result<()> {
        let entries = added.as_object().ok_or_else(|| {
            format_error(
                file,
                format!(
                    "expected a JSON object mapping tokens to ids, got {}",
                    added.type_name()
                ),
            )
        })?;
        let mut tokens = Vec::with_capacity(entries.len());
        for (name, id) in entries {
            let claimed = id.as_usize().and_then(|id| u32::try_from(id).ok());
            let Some(claimed) = claimed else {
                return Err(format_error(
                    file,
                    format!("token '{name}' has id {id}, not a token id"),
                ));
            };
            tokens.push((name.clone(), Some(claimed)));
        }
        add_verbatim(&self.vocab, tokens, (file, vocab), &mut self.verbatim)?;
        self.first_bytes = first_bytes(&self.verbatim);
        Ok(())
    }

    /// A tokenizer over `vocab` configured by a `tokenizer_config.json` object; the paths
    /// name the files in errors.
    fn new(
        vocab: Vocab,
        config: &Json,
        vocab_path: &Path,
        config_path: &Path,
    ) -> Result<Tokenizer> {
        let flag = |key: &str, default: bool| match config.get(key) {
            None | Some(Json::Null) => Ok(default),
            Some(Json::Bool(b)) => Ok(*b),
            Some(other) => Err(format_error(
                config_path,
                format!("\"{key}\" must be true, false or null, got {other}"),
            )),
        };
        const CLASSES: [&str; 4] = [
            "BertTokenizer",
            "BertTokenizerFast",
            "DistilBertTokenizer",
            "DistilBertTokenizerFast",
        ];
        match config.get("tokenizer_class") {
            None | Some(Json::Null) => {}
            Some(Json::String(class)) if CLASSES.contains(&class.as_str()) => {}
            Some(other) => {
                return Err(format_error(
                    config_path,
                    format!(
                        "\"tokenizer_class\" is {other}; smelt tokenizes only as {}",
                        CLASSES.join(", ")
                    ),
                ))
            }
        }
        let lowercase = flag("do_lower_case", true)?;
        let how = Normalization {
            lowercase,
            strip_accents: flag("strip_accents", lowercase)?,
            split_cjk: flag("tokenize_chinese_chars", true)?,
        };
        let token = |key: &str, default: &str| -> Result<String> {
            match config.get(key) {
                None | Some(Json::Null) => Ok(default.to_string()),
                Some(value) => token_text(value, key, config_path),
            }
        };
        let mut verbatim = Vec::new();
        let mut id_of = |key: &str, default: &str| -> Result<u32> {
            let name = token(key, default)?;
            let id = vocab.id(&name).ok_or_else(|| {
                format_error(vocab_path, format!("the vocabulary has no {key} '{name}'"))
            })?;
            verbatim.push((name, id));
            Ok(id)
        };
        let specials = Specials {
            unk: id_of("unk_token", "[UNK]")?,
            cls: id_of("cls_token", "[CLS]")?,
            sep: id_of("sep_token", "[SEP]")?,
            pad: id_of("pad_token", "[PAD]")?,
        };
        // The default mask token may be missing from a vocabulary; one the config names may not.
        let named_mask = !matches!(config.get("mask_token"), None | Some(Json::Null));
        let mask = token("mask_token", "[MASK]")?;
        match vocab.id(&mask) {
            Some(id) => verbatim.push((mask, id)),
            None if named_mask => {
                return Err(format_error(
                    vocab_path,
                    format!("the vocabulary has no mask_token '{mask}'"),
                ))
            }
            None => {}
        }
        let added = added_tokens(config, config_path)?;
        add_verbatim(&vocab, added, (config_path, vocab_path), &mut verbatim)?;
        // HF writes a huge number (1e30) for "no limit": the model's position table decides.
        const NO_LIMIT: f64 = 1e18;
        let max_len = match config.get("model_max_length") {
            None | Some(Json::Null) => usize::MAX,
            Some(v) => match (v.as_f64(), v.as_usize()) {
                (Some(n), _) if n >= NO_LIMIT => usize::MAX,
                (_, Some(n)) if n >= 2 => n,
                _ => {
                    return Err(format_error(
                        config_path,
                        format!("model_max_length must be a whole number of at least 2, got {v}"),
                    ))
                }
            },
        };
        let first_bytes = first_bytes(&verbatim);
        Ok(Tokenizer {
            vocab,
            how,
            specials,
            verbatim,
            first_bytes,
            max_len,
        })
    }

    /// The length limit from `model_max_length`, special tokens included (`usize::MAX` when
    /// absent or HF's "no limit" value, 1e30: the model's position table then decides).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// One past the largest id it can produce: the rows an embedding table needs.
    pub fn id_end(&self) -> usize {
        self.vocab.id_end()
    }

    /// The special token written at the start of `text`, if any (the longest), with its
    /// length in bytes (never 0: an empty token would stall [`Tokenizer::pieces`]) and id.
    fn special_at(&self, text: &str) -> Option<(usize, u32)> {
        self.verbatim
            .iter()
            .filter(|(s, _)| !s.is_empty() && text.starts_with(s.as_str()))
            .max_by_key(|(s, _)| s.len())
            .map(|(s, id)| (s.len(), *id))
    }

    /// The WordPiece ids of `text` without `[CLS]`/`[SEP]`, appended to `out`: plain runs are
    /// normalised and split, special tokens written in the text map to their ids.
    fn pieces(&self, text: &str, out: &mut Vec<u32>) {
        let mut normalized = String::with_capacity(text.len() + 8);
        let (mut scratch, mut piece) = (String::new(), String::new());
        let mut plain_start = 0;
        let mut at = 0;
        let mut flush = |plain: &str, out: &mut Vec<u32>| {
            normalize(plain, self.how, &mut normalized, &mut scratch);
            split_words(&normalized, |word| {
                self.vocab
                    .word_ids(word, self.specials.unk, &mut piece, out)
            });
        };
        while at < text.len() {
            let special = self
                .first_bytes
                .contains(&text.as_bytes()[at])
                .then(|| self.special_at(&text[at..]))
                .flatten();
            match special {
                Some((len, id)) => {
                    flush(&text[plain_start..at], out);
                    out.push(id);
                    at += len;
                    plain_start = at;
                }
                None => at += text[at..].chars().next().map_or(1, char::len_utf8),
            }
        }
        flush(&text[plain_start..], out);
    }

    /// `[CLS] pieces [SEP]`, untruncated.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = vec![self.specials.cls];
        self.pieces(text, &mut out);
        out.push(self.specials.sep);
        out
    }

    /// `[CLS] a [SEP] b [SEP]` and its token types (0 through the first `[SEP]`, then 1),
    /// untruncated.
    pub fn encode_pair(&self, a: &str, b: &str) -> (Vec<u32>, Vec<u32>) {
        let mut ids = self.encode(a);
        let first = ids.len();
        self.pieces(b, &mut ids);
        ids.push(self.specials.sep);
        let types = (0..ids.len()).map(|i| u32::from(i >= first)).collect();
        (ids, types)
    }

    /// Encodes `texts` into one batch padded to the longest, each cut to `max_len` tokens
    /// (special tokens included, `[SEP]` kept last) or refused, as `truncation` says.
    ///
    /// Errors on an empty list, a `max_len` below 2, or (with [`Truncation::Error`]) a text
    /// that is too long, naming its index and length.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        max_len: usize,
        truncation: Truncation,
    ) -> Result<Encoding> {
        const OP: &str = "tokenize";
        if texts.is_empty() {
            return Err(Error::Input {
                op: OP,
                detail: "no texts to tokenize".into(),
            });
        }
        if max_len < 2 {
            return Err(Error::Input {
                op: OP,
                detail: format!("max_len {max_len} leaves no room for [CLS] and [SEP]"),
            });
        }
        let mut rows = Vec::with_capacity(texts.len());
        let mut truncated = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let mut ids = self.encode(text);
            let cut = ids.len() > max_len;
            if cut && truncation == Truncation::Error {
                return Err(Error::Input {
                    op: OP,
                    detail: format!(
                        "text {i} has {} tokens, more than the model's {max_len}",
                        ids.len()
                    ),
                });
            }
            if cut {
                ids.truncate(max_len - 1);
                ids.push(self.specials.sep);
            }
            truncated.push(cut);
            rows.push(ids);
        }
        let seq = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut encoding = Encoding {
            batch: texts.len(),
            seq,
            input_ids: Vec::with_capacity(texts.len() * seq),
            attention_mask: Vec::with_capacity(texts.len() * seq),
            token_type_ids: vec![0; texts.len() * seq],
            truncated,
        };
        for ids in &rows {
            let pad = seq - ids.len();
            encoding.input_ids.extend(ids.iter().map(|&id| id as i64));
            encoding
                .input_ids
                .extend(std::iter::repeat_n(self.specials.pad as i64, pad));
            encoding
                .attention_mask
                .extend(std::iter::repeat_n(1, ids.len()).chain(std::iter::repeat_n(0, pad)));
        }
        Ok(encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory holding `vocab` and `tokenizer_config.json` = `config`.
    fn dir_with(tag: &str, vocab: &str, config: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("smelt-text-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vocab.txt"), vocab).unwrap();
        std::fs::write(dir.join("tokenizer_config.json"), config).unwrap();
        dir
    }

    /// An empty special token (here in the vocabulary through a blank line) is refused at
    /// load, naming the file and key; it used to make `encode` loop forever.
    #[test]
    fn empty_special_tokens_are_errors() {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n\n[MASK]\nfoo\n";
        for key in ["mask_token", "unk_token", "pad_token"] {
            let dir = dir_with(key, vocab, &format!("{{\"{key}\": \"\"}}"));
            let err = Tokenizer::from_dir(&dir).err().unwrap().to_string();
            std::fs::remove_dir_all(&dir).ok();
            assert!(
                err.contains("tokenizer_config.json") && err.contains(&format!("\"{key}\"")),
                "{err}"
            );
            assert!(err.contains("empty string"), "{err}");
        }
        let object = dir_with("object", vocab, r#"{"mask_token": {"content": ""}}"#);
        assert!(Tokenizer::from_dir(&object).is_err());
        std::fs::remove_dir_all(&object).ok();
    }

    /// A config that is not an object (an array, say) is an error, not the defaults.
    #[test]
    fn a_config_that_is_not_an_object_is_an_error() {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nfoo\n";
        for config in ["[]", "3", "\"lower\""] {
            let dir = dir_with("not-object", vocab, config);
            let err = Tokenizer::from_dir(&dir).err().unwrap().to_string();
            std::fs::remove_dir_all(&dir).ok();
            assert!(
                err.contains("tokenizer_config.json") && err.contains("expected a JSON object"),
                "{config}: {err}"
            );
        }
    }

    /// Settings of the wrong type are errors naming the key, not silently the default.
    #[test]
    fn mistyped_settings_are_errors() {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nfoo\n";
        for (name, config, says) in [
            (
                "number",
                r#"{"unk_token": 5}"#,
                "\"unk_token\" must be a string",
            ),
            (
                "content",
                r#"{"cls_token": {"content": 7}}"#,
                "\"cls_token\" must be",
            ),
            (
                "fraction",
                r#"{"model_max_length": 512.5}"#,
                "model_max_length must be",
            ),
            (
                "small",
                r#"{"model_max_length": 1}"#,
                "model_max_length must be",
            ),
        ] {
            let dir = dir_with(name, vocab, config);
            let err = Tokenizer::from_dir(&dir).err().unwrap().to_string();
            std::fs::remove_dir_all(&dir).ok();
            assert!(err.contains(says), "{name}: {err}");
        }
        for (name, config, max_len) in [
            (
                "null",
                r#"{"pad_token": null, "model_max_length": 512}"#,
                512,
            ),
            ("no-limit", r#"{"model_max_length": 1e30}"#, usize::MAX),
        ] {
            let dir = dir_with(name, vocab, config);
            let tokenizer = Tokenizer::from_dir(&dir).unwrap();
            std::fs::remove_dir_all(&dir).ok();
            assert_eq!(tokenizer.max_len(), max_len, "{name}");
        }
    }

    /// Backstop: a zero-length special token never matches, so text still advances.
    #[test]
    fn special_at_skips_empty_tokens() {
        let dir = dir_with("backstop", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n\nfoo\n", "{}");
        let mut tokenizer = Tokenizer::from_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        tokenizer.verbatim.push((String::new(), 4));
        assert_eq!(tokenizer.special_at("[foo"), None);
        assert_eq!(tokenizer.encode("[foo"), vec![2, 1, 5, 3]);
    }
}

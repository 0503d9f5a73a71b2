//! Bad model input gives clear errors, never a panic: missing or misshaped tensors (naming the
//! tensor and both shapes), unknown model types, token ids past the vocabulary, sequences past
//! the position table, bad masks, F16/BF16 checkpoints converted on load.

use smelt_engine::formats::safetensors::{write, Dtype, SafeTensors};
use smelt_engine::Arena;
use smelt_model::{Batch, Config, HeadKind, Model};
use smelt_tests::worst;
use std::path::{Path, PathBuf};

/// A tensor as written to a scratch checkpoint: name, dtype, shape, bytes.
type Stored = (String, Dtype, Vec<usize>, Vec<u8>);

fn fixture(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(case)
}

/// A scratch model directory holding the `bert` fixture's config and the given tensors.
fn model_dir(tag: &str, tensors: &[Stored]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smelt-model-errors-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("bert").join("config.json"), dir.join("config.json")).unwrap();
    let raw: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), *d, s.as_slice(), b.as_slice()))
        .collect();
    write(&dir.join("model.safetensors"), &raw, &[]).unwrap();
    dir
}

/// Every tensor of the `bert` fixture as (name, F32, shape, bytes), passed through `edit`.
fn bert_tensors(
    edit: impl Fn(&str, Vec<f32>) -> Option<(Dtype, Vec<u8>)>,
    shape_of: impl Fn(&str, &[usize]) -> Vec<usize>,
) -> Vec<Stored> {
    let file = SafeTensors::open(&fixture("bert").join("model.safetensors")).unwrap();
    let arena = Arena::new();
    file.names()
        .filter_map(|name| {
            let t = file.tensor_f32(name).unwrap();
            let values = t.to_vec(&arena).unwrap();
            let shape = shape_of(name, t.dims());
            edit(name, values).map(|(dtype, bytes)| (name.to_string(), dtype, shape, bytes))
        })
        .collect()
}

/// Every tensor of the `bert` fixture as F32, unchanged.
fn bert_f32() -> Vec<Stored> {
    bert_tensors(
        |_, v| Some((Dtype::F32, f32_bytes(&v))),
        |_, dims| dims.to_vec(),
    )
}

/// [`bert_f32`] plus a copy of the tensor whose name ends in `suffix`, named `rename(name)`;
/// with the original's name and the copy's.
fn with_copy(suffix: &str, rename: impl Fn(&str) -> String) -> (Vec<Stored>, String, String) {
    let mut tensors = bert_f32();
    let (name, dtype, shape, bytes) = tensors
        .iter()
        .find(|t| t.0.ends_with(suffix))
        .unwrap()
        .clone();
    let copy = rename(&name);
    tensors.push((copy.clone(), dtype, shape, bytes));
    (tensors, name, copy)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn load_error(dir: &Path) -> String {
    Model::load(dir).unwrap_err().to_string()
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let keep_shape = |_: &str, dims: &[usize]| dims.to_vec();
    let missing = bert_tensors(
        |name, v| {
            (name != "encoder.layer.1.output.dense.weight").then(|| (Dtype::F32, f32_bytes(&v)))
        },
        keep_shape,
    );
    let err = load_error(&model_dir("missing", &missing));
    assert!(
        err.contains("missing tensor 'encoder.layer.1.output.dense.weight'")
            && err.contains("[32, 37]"),
        "{err}"
    );

    let misshaped = bert_tensors(
        |_, v| Some((Dtype::F32, f32_bytes(&v))),
        |name, dims| {
            if name == "embeddings.LayerNorm.weight" {
                vec![4, 8]
            } else {
                dims.to_vec()
            }
        },
    );
    let err = load_error(&model_dir("misshaped", &misshaped));
    assert!(
        err.contains(
            "tensor 'embeddings.LayerNorm.weight' has shape [4, 8], the config needs [32]"
        ),
        "{err}"
    );
}

#[test]
fn half_precision_checkpoints_are_converted_on_load() {
    let reference = Model::load(&fixture("bert")).unwrap();
    let arena = Arena::new();
    for (tag, dtype) in [("f16", Dtype::F16), ("bf16", Dtype::Bf16)] {
        let tensors = bert_tensors(
            |_, v| {
                let bytes = v
                    .iter()
                    .flat_map(|&x| match dtype {
                        Dtype::F16 => f32_to_f16(x).to_le_bytes(),
                        _ => ((x.to_bits() >> 16) as u16).to_le_bytes(),
                    })
                    .collect();
                Some((dtype, bytes))
            },
            |_, dims| dims.to_vec(),
        );
        let model = Model::load(&model_dir(tag, &tensors)).unwrap();
        for (ours, full) in model.params().iter().zip(reference.params().iter()) {
            let (a, b) = (
                ours.tensor.to_vec(&arena).unwrap(),
                full.tensor.to_vec(&arena).unwrap(),
            );
            let worst = worst(
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y).abs() / y.abs().max(0.1)),
            );
            let bound = if dtype == Dtype::F16 { 1e-3 } else { 8e-3 };
            assert!(worst < bound, "{tag} {}: {worst}", ours.name);
        }
    }
}

/// Round-to-nearest f32 -> f16 for normal values in range (the fixture's weights are).
fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    let mantissa = bits & 0x7f_ffff;
    let rounded = ((exp as u32) << 10 | mantissa >> 13) + ((mantissa >> 12) & 1);
    sign | rounded as u16
}

/// A config built in code is checked as one read from a file: a model of 0 heads, or of a
/// vocabulary past 32-bit ids, is an error naming the size, not a panic in the forward; a
/// DistilBERT given token types (which it has no table for) is an error, not types dropped.
#[test]
fn configs_made_in_code_are_checked() {
    let tiny = Config::preset("tiny").unwrap();
    let no_heads = Config {
        heads: 0,
        ..tiny.clone()
    };
    let huge = Config {
        vocab_size: (1 << 32) + 1,
        ..tiny.clone()
    };
    let distil_types = Config {
        type_vocab_size: 2,
        ..Config::preset("distilbert-base").unwrap()
    };
    for (config, says) in [
        (no_heads, "the heads is 0"),
        (huge, "past 2^32 ids"),
        (distil_types, "a DistilBERT has no token types"),
    ] {
        let err = Model::random(&config, HeadKind::None, 1)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(says), "{err}");
        assert!(config.validate().unwrap_err().to_string().contains(says));
    }
    tiny.validate().unwrap();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let config = Config::load(&fixture("bert").join("config.json")).unwrap();
    let err = |ids: &[i64], seq: usize, mask: Option<&[i64]>, types: Option<&[i64]>| {
        Batch::new(&config, ids.len() / seq, seq, ids, mask, types)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(&[1, 2, 99, 4], 2, None, None),
        "Batch::new: input_ids[1][0] = 99 is outside 0..99 (vocab_size)"
    );
    assert!(err(&[1, -2], 2, None, None).contains("input_ids[0][1] = -2"));
    assert_eq!(
        err(&vec![1; 41], 41, None, None),
        "Batch::new: sequences of 41 tokens are longer than max_position_embeddings = 40"
    );
    assert!(err(&[1, 2], 2, Some(&[1, 2]), None).contains("attention_mask[0][1] = 2"));
    assert!(
        err(&[1, 2], 2, None, Some(&[0, 2])).contains("token_type_ids[0][1] = 2 is outside 0..2")
    );
    assert!(err(&[1, 2], 2, Some(&[1]), None).contains("attention_mask has 1 values"));

    let model = Model::random(&config, HeadKind::MaskedLm, 1).unwrap();
    let batch = Batch::new(&config, 1, 2, &[1, 2], None, None)
        .unwrap()
        .with_labels(&[5, 120])
        .unwrap();
    let mut tape = smelt_engine::Tape::new();
    let arena = Arena::new();
    let mut g =
        smelt_engine::Graph::new(&mut tape, &arena, smelt_engine::CpuOptions::default(), true);
    let f = model.forward(&mut g, &batch).unwrap();
    let loss = model.loss(&mut g, &f, &batch).unwrap_err().to_string();
    assert!(loss.contains("120") && loss.contains("99"), "{loss}");
    // The kernel's message, named once (the op wrapped it in its own name before).
    let op = loss.split(':').next().unwrap_or_default();
    assert_eq!(loss.matches(&format!("{op}:")).count(), 1, "{loss}");
}

#[test]
fn unknown_model_types_and_bad_json_are_errors() {
    let dir = std::env::temp_dir().join(format!("smelt-model-errors-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type": "roberta"}"#).unwrap();
    assert!(load_error(&dir).contains("model_type \"roberta\" is not supported"));
    std::fs::write(dir.join("config.json"), r#"{"model_type": "bert", "#).unwrap();
    assert!(load_error(&dir).contains("malformed JSON"));
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert!(load_error(&dir).contains("config.json"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A directory holding the weights in a layout HF reads and smelt does not (shards listed by
/// an index, a PyTorch pickle) says so, instead of only that model.safetensors is missing.
#[test]
fn sharded_and_pickled_checkpoints_are_named() {
    let dir =
        std::env::temp_dir().join(format!("smelt-model-errors-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("bert").join("config.json"), dir.join("config.json")).unwrap();
    assert!(load_error(&dir).contains("model.safetensors"));
    std::fs::write(dir.join("pytorch_model.bin"), b"not read").unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("pytorch_model.bin") && err.contains("safe_serialization"),
        "{err}"
    );
    std::fs::write(dir.join("model.safetensors.index.json"), b"{}").unwrap();
    let err = load_error(&dir);
    assert!(err.contains("sharded checkpoint"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A scratch copy of the `bert` fixture whose config has `from` (which it must hold) replaced
/// by `to`.
fn bert_with_config(tag: &str, from: &str, to: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smelt-model-errors-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bert = fixture("bert");
    std::fs::copy(
        bert.join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read_to_string(bert.join("config.json")).unwrap();
    assert!(config.contains(from), "the fixture's config has no {from}");
    std::fs::write(dir.join("config.json"), config.replace(from, to)).unwrap();
    dir
}

/// A config naming a head this crate does not build is an error naming the architecture
/// (it loaded as a bare encoder, its head's weights and labels ignored);
/// `Model::load_with_head` with `HeadKind::None` still loads the encoder.
#[test]
fn architectures_without_a_head_here_are_errors() {
    let dir = bert_with_config("arch", "\"BertModel\"", "\"BertForQuestionAnswering\"");
    let err = load_error(&dir);
    assert!(
        err.contains(
            "architecture \"BertForQuestionAnswering\" has a head this crate does not build"
        ),
        "{err}"
    );
    let parsed = Config::load(&dir.join("config.json")).unwrap();
    Model::load_with_head(&dir, &parsed, HeadKind::None).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// A config of fewer layers than its checkpoint, a tensor stored both with and without the
/// `bert.` prefix, or half a pooler, is an error naming the tensor (the extra layers were
/// dropped, the unprefixed copy used, the pooler left out, without a word).
#[test]
fn extra_layers_and_doubled_tensors_are_errors() {
    let dir = bert_with_config(
        "layers",
        "\"num_hidden_layers\": 2",
        "\"num_hidden_layers\": 1",
    );
    let err = load_error(&dir);
    assert!(
        err.contains("belongs to layer 1, but the config has 1 layers"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();

    // Any layer index past the count, not only the next one.
    let (tensors, _, far) = with_copy("encoder.layer.1.output.dense.bias", |name| {
        name.replace("layer.1.", "layer.5.")
    });
    let dir = model_dir("far-layer", &tensors);
    let err = load_error(&dir);
    assert!(
        err.contains(&format!("'{far}' belongs to layer 5, but the config has 2")),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();

    // Half a pooler: its weight without its bias.
    let tensors: Vec<_> = bert_f32()
        .into_iter()
        .filter(|t| !t.0.ends_with("pooler.dense.bias"))
        .collect();
    let dir = model_dir("half-pooler", &tensors);
    let err = load_error(&dir);
    assert!(
        err.contains("'pooler.dense.weight' without 'pooler.dense.bias'"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();

    // One parameter twice: with and without the prefix, or as `weight` and legacy `gamma`.
    let first = bert_f32()[0].0.clone();
    let toggle = |name: &str| match name.strip_prefix("bert.") {
        Some(bare) => bare.to_string(),
        None => format!("bert.{name}"),
    };
    let gamma = |name: &str| name.replace("LayerNorm.weight", "LayerNorm.gamma");
    let doubled = [
        with_copy(&first, toggle),
        with_copy("LayerNorm.weight", gamma),
    ];
    for (tensors, name, copy) in doubled {
        let dir = model_dir("doubled", &tensors);
        let err = load_error(&dir);
        for part in [&name, &copy] {
            assert!(err.contains(&format!("'{part}'")), "{err}");
        }
        assert!(err.contains("are both the parameter"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// Old checkpoints (the original `bert-base-*` among them) name layer norm parameters
/// `LayerNorm.gamma` and `LayerNorm.beta`, which HF renames to `weight` and `bias` on load:
/// such a checkpoint gives the fixture's outputs, its gradients keep the file's names, and a
/// missing one is named in both spellings.
#[test]
fn legacy_layer_norm_names_load_as_hf_renames_them() {
    let legacy = |name: &str| {
        name.replace("LayerNorm.weight", "LayerNorm.gamma")
            .replace("LayerNorm.bias", "LayerNorm.beta")
    };
    let tensors: Vec<_> = bert_f32()
        .into_iter()
        .map(|(name, dtype, shape, bytes)| (legacy(&name), dtype, shape, bytes))
        .collect();
    assert!(tensors.iter().any(|t| t.0.ends_with("LayerNorm.gamma")));
    let dir = model_dir("legacy", &tensors);
    let model = Model::load(&dir).unwrap();
    let original = Model::load(&fixture("bert")).unwrap();
    let names = |m: &Model| -> Vec<String> { m.params().iter().map(|p| p.name.clone()).collect() };
    let renamed: Vec<String> = names(&original).iter().map(|n| legacy(n)).collect();
    assert_eq!(names(&model), renamed);
    let config = Config::load(&fixture("bert").join("config.json")).unwrap();
    let batch = Batch::new(&config, 2, 5, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], None, None).unwrap();
    let [a, b] = [&model, &original].map(|m| {
        let (arena, mut tape) = (Arena::new(), smelt_engine::Tape::new());
        let opts = smelt_engine::CpuOptions::default();
        let mut g = smelt_engine::Graph::new(&mut tape, &arena, opts, false);
        let f = m.forward(&mut g, &batch).unwrap();
        g.value(f.hidden).to_vec(&arena).unwrap()
    });
    assert_eq!(a, b);
    std::fs::remove_dir_all(&dir).ok();

    let without: Vec<_> = tensors
        .into_iter()
        .filter(|t| !t.0.ends_with("embeddings.LayerNorm.beta"))
        .collect();
    let dir = model_dir("legacy-missing", &without);
    let err = load_error(&dir);
    assert!(
        err.contains("missing tensor 'embeddings.LayerNorm.bias'")
            && err.contains("'embeddings.LayerNorm.beta'"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

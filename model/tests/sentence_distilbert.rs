//! `SentenceEncoder::embed` on a DistilBERT (no token types): the `distilbert` fixture with a
//! small vocabulary embeds text, equal to mean-pooling the encoder's output by hand.

use smelt_engine::{Arena, CpuOptions, Graph, Tape};
use smelt_model::text::Truncation;
use smelt_model::{Batch, Config, HeadKind, Model, SentenceEncoder};
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

    // The same as the encoder's last hidden state mean-pooled over the first text's tokens.
    let ids = encoder.tokenizer().encode(texts[0]);
    assert_eq!(ids, [2, 5, 6, 7, 8, 5, 9, 10, 11, 3]);
    let config = Config::load(&dir.join("config.json")).unwrap();
    let model = Model::load_with_head(&dir, &config, HeadKind::None).unwrap();
    let ids: Vec<i64> = ids.iter().map(|&id| id as i64).collect();
    let batch = Batch::new(&config, 1, ids.len(), &ids, None, None).unwrap();
    let (arena, mut tape) = (Arena::new(), Tape::new());
    let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), false);
    let hidden = model.forward(&mut g, &batch).unwrap().hidden;
    let pooled = g.mean_pool(hidden, &batch.mask).unwrap();
    let expected = g.value(pooled).to_vec(&arena).unwrap();
    for (got, want) in embeddings.get(0).unwrap().iter().zip(&expected) {
        assert!((got - want).abs() <= 1e-5, "{got} vs {want}");
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

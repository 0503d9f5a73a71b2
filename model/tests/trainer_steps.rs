//! AdamW counts steps per parameter, as PyTorch does: a parameter without a gradient in a
//! step (the classifier and pooler under a loss on the hidden states) is skipped, and its
//! first update later is bias-corrected as a first step.

use smelt_engine::{Arena, CpuOptions};
use smelt_kernels::cpu::adamw::AdamW;
use smelt_model::{Batch, Config, Dropout, Family, HeadKind, Model, Objective, Trainer};

const SEED: u64 = 11;

fn hp() -> AdamW {
    AdamW {
        lr: 1e-2,
        ..AdamW::default()
    }
}

fn batch(config: &Config) -> Batch {
    let (b, t) = (2, 8);
    let ids: Vec<i64> = (0..b * t).map(|i| (i * 5 % 90) as i64).collect();
    Batch::new(config, b, t, &ids, None, None)
        .unwrap()
        .with_labels(&[0, 1])
        .unwrap()
}

/// A fresh classifier after one step on `sum(last_hidden_state^2)`, which gives the heads no
/// gradient, and the trainer that took it.
fn after_a_step_without_the_heads(config: &Config, batch: &Batch) -> (Model, Trainer) {
    let mut model = Model::random(config, HeadKind::Classification, SEED).unwrap();
    let mut trainer = Trainer::new(&mut model, hp(), CpuOptions::threads(1)).unwrap();
    let mut arena = Arena::new();
    trainer
        .step(&mut model, &mut arena, batch, &Objective::SumSquares)
        .unwrap();
    (model, trainer)
}

#[test]
fn a_parameter_skipped_by_a_step_starts_its_own_count() {
    let config = Config::preset("tiny").unwrap();
    let batch = batch(&config);
    // The same model state twice; one keeps its trainer (step count 1 for the encoder, 0 for
    // the heads), the other gets a fresh one (0 everywhere).
    let (mut kept, mut trainer) = after_a_step_without_the_heads(&config, &batch);
    let (mut fresh, _) = after_a_step_without_the_heads(&config, &batch);
    let mut new_trainer = Trainer::new(&mut fresh, hp(), CpuOptions::threads(1)).unwrap();
    let mut arena = Arena::new();
    trainer
        .step(&mut kept, &mut arena, &batch, &Objective::Head)
        .unwrap();
    new_trainer
        .step(&mut fresh, &mut arena, &batch, &Objective::Head)
        .unwrap();
    // The heads had no update before, in either trainer: same gradient, same first update.
    let heads: Vec<_> = kept
        .params()
        .iter()
        .zip(fresh.params().iter())
        .filter(|(p, _)| p.name.contains("classifier") || p.name.contains("pooler"))
        .collect();
    assert!(!heads.is_empty(), "no head parameters found");
    for (k, f) in heads {
        let (k_values, f_values) = (
            k.tensor.data(&arena).unwrap(),
            f.tensor.data(&arena).unwrap(),
        );
        assert_eq!(
            k_values, f_values,
            "{}: a second-step bias correction",
            k.name
        );
    }
    // The encoder had its first update in the kept trainer only, so it differs.
    let encoder = kept
        .params()
        .iter()
        .zip(fresh.params().iter())
        .find(|(p, _)| {
            p.name
                .contains("encoder.layer.0.attention.self.query.weight")
        })
        .expect("a query weight");
    assert_ne!(
        encoder.0.tensor.data(&arena).unwrap(),
        encoder.1.tensor.data(&arena).unwrap()
    );
}

#[test]
fn hyperparameters_pytorch_refuses_are_refused() {
    let config = Config::preset("tiny").unwrap();
    let mut model = Model::random(&config, HeadKind::Classification, SEED).unwrap();
    let bad = AdamW { beta1: 1.0, ..hp() };
    let Err(err) = Trainer::new(&mut model, bad, CpuOptions::threads(1)) else {
        panic!("a beta1 of 1 was accepted");
    };
    assert!(err.to_string().contains("beta1 is 1"), "{err}");
}

/// A step that fails (here: a batch without labels under the head's loss) updates nothing and
/// still resets the arena: the next good step is the same as a fresh trainer's first one.
#[test]
fn a_failed_step_changes_nothing_and_releases_the_arena() {
    let config = Config::preset("tiny").unwrap();
    let good = batch(&config);
    let ids: Vec<i64> = (0..16).map(|i| (i * 3 % 90) as i64).collect();
    let unlabelled = Batch::new(&config, 2, 8, &ids, None, None).unwrap();
    let mut model = Model::random(&config, HeadKind::Classification, SEED).unwrap();
    let mut twin = Model::random(&config, HeadKind::Classification, SEED).unwrap();
    let mut trainer = Trainer::new(&mut model, hp(), CpuOptions::threads(1)).unwrap();
    let mut fresh = Trainer::new(&mut twin, hp(), CpuOptions::threads(1)).unwrap();
    let mut arena = Arena::new();
    for _ in 0..3 {
        assert!(trainer
            .step(&mut model, &mut arena, &unlabelled, &Objective::Head)
            .is_err());
        assert_eq!(arena.bytes_used(), 0);
    }
    let loss = trainer
        .step(&mut model, &mut arena, &good, &Objective::Head)
        .unwrap();
    let twin_loss = fresh
        .step(&mut twin, &mut arena, &good, &Objective::Head)
        .unwrap();
    assert_eq!(loss, twin_loss);
    for (p, q) in model.params().iter().zip(twin.params().iter()) {
        assert_eq!(
            p.tensor.data(&arena).unwrap(),
            q.tensor.data(&arena).unwrap(),
            "{}",
            p.name
        );
    }
}

#[test]
fn a_config_that_asks_for_dropout_is_refused_until_dropout_is_disabled() {
    // HF trains this config with dropout; smelt's steps have none, so training it silently
    // would not match HF's model.train().
    let config = Config {
        dropout: Dropout {
            hidden: 0.1,
            attention: 0.0,
            classifier: 0.1,
        },
        ..Config::preset("tiny").unwrap()
    };
    let mut model = Model::random(&config, HeadKind::Classification, SEED).unwrap();
    let Err(err) = Trainer::new(&mut model, hp(), CpuOptions::threads(1)) else {
        panic!("a config with dropout was accepted for training");
    };
    let err = err.to_string();
    assert!(
        err.contains("hidden_dropout_prob 0.1")
            && err.contains("classifier_dropout 0.1")
            && !err.contains("attention_probs")
            && err.contains("disable_dropout"),
        "{err}"
    );
    model.disable_dropout();
    assert_eq!(model.config().dropout, Dropout::NONE);
    let mut trainer = Trainer::new(&mut model, hp(), CpuOptions::threads(1)).unwrap();
    let loss = trainer
        .step(
            &mut model,
            &mut Arena::new(),
            &batch(&config),
            &Objective::Head,
        )
        .unwrap();
    assert!(loss.is_finite());
}

#[test]
fn dropout_is_named_by_the_family_keys_and_the_classifier_counts_only_with_its_head() {
    // HF writes seq_classif_dropout 0.2 into every DistilBERT config: it applies only to a
    // sequence classifier.
    let config = Config {
        family: Family::DistilBert,
        type_vocab_size: 0,
        dropout: Dropout {
            hidden: 0.0,
            attention: 0.0,
            classifier: 0.2,
        },
        ..Config::preset("tiny").unwrap()
    };
    let mut mlm = Model::random(&config, HeadKind::MaskedLm, SEED).unwrap();
    assert!(Trainer::new(&mut mlm, hp(), CpuOptions::threads(1)).is_ok());
    let mut classifier = Model::random(&config, HeadKind::Classification, SEED).unwrap();
    let Err(err) = Trainer::new(&mut classifier, hp(), CpuOptions::threads(1)) else {
        panic!("a DistilBERT classifier with seq_classif_dropout was accepted");
    };
    assert!(err.to_string().contains("seq_classif_dropout 0.2"), "{err}");
}

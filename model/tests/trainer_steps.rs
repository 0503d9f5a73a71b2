//! AdamW counts steps per parameter, as PyTorch does: a parameter without a gradient in a
//! step (the classifier and pooler under a loss on the hidden states) is skipped, and its
//! first update later is bias-corrected as a first step. Steps drop as the config asks,
//! reproducibly from the trainer's seed. A profiled trainer counts every op of its steps.

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
    // A step that gives the heads no gradient leaves them untouched (no weight decay, no
    // moment of an absent gradient): the same bits as a model that never stepped.
    let untouched = Model::random(&config, HeadKind::Classification, SEED).unwrap();
    let scratch = Arena::new();
    for (p, u) in kept.params().iter().zip(untouched.params().iter()) {
        if p.name.contains("classifier") || p.name.contains("pooler") {
            assert_eq!(
                p.tensor.data(&scratch).unwrap(),
                u.tensor.data(&scratch).unwrap(),
                "{} changed in a step that gave it no gradient",
                p.name
            );
        }
    }
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

/// The losses of `steps` steps of a fresh classifier of `config` on the same batch, with the
/// trainer's dropout seed `seed` (`None`: dropout disabled), and the parameters after them.
fn run(config: &Config, seed: Option<u64>, steps: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
    let mut model = Model::random(config, HeadKind::Classification, SEED).unwrap();
    if seed.is_none() {
        model.disable_dropout();
    }
    let mut trainer = Trainer::new(&mut model, hp(), CpuOptions::threads(2)).unwrap();
    trainer.set_dropout_seed(seed.unwrap_or(0));
    let (mut arena, batch) = (Arena::new(), batch(config));
    let losses = (0..steps)
        .map(|_| {
            trainer
                .step(&mut model, &mut arena, &batch, &Objective::Head)
                .unwrap()
        })
        .collect();
    let params = model
        .params()
        .iter()
        .map(|p| p.tensor.to_vec(&arena).unwrap())
        .collect();
    (losses, params)
}

#[test]
fn dropout_steps_are_reproducible_from_the_seed_and_differ_from_eval_mode() {
    for family in [Family::Bert, Family::DistilBert] {
        let config = Config {
            family,
            type_vocab_size: if family == Family::Bert { 2 } else { 0 },
            dropout: Dropout {
                hidden: 0.1,
                attention: 0.1,
                classifier: 0.2,
            },
            ..Config::preset("tiny").unwrap()
        };
        let (losses, params) = run(&config, Some(5), 2);
        assert_eq!(
            (losses.clone(), params),
            run(&config, Some(5), 2),
            "{family:?}"
        );
        let (other, _) = run(&config, Some(6), 2);
        let (eval, _) = run(&config, None, 2);
        // The same batch and weights in the first step: only the masks differ.
        assert_ne!(
            losses[0], other[0],
            "{family:?}: another seed draws other masks"
        );
        assert_ne!(losses[0], eval[0], "{family:?}: dropout changes the loss");
        assert!(losses.iter().chain(&eval).all(|l| l.is_finite()));
    }
}

#[test]
fn disabled_dropout_trains_as_a_config_without_any() {
    let with = Config {
        dropout: Dropout {
            hidden: 0.3,
            attention: 0.3,
            classifier: 0.3,
        },
        ..Config::preset("tiny").unwrap()
    };
    let without = Config {
        dropout: Dropout::NONE,
        ..with.clone()
    };
    assert_eq!(run(&with, None, 2), run(&without, Some(1), 2));
}

#[test]
fn a_profiled_trainer_times_the_ops_of_the_steps_after_enable_profile() {
    let config = Config::preset("tiny").unwrap();
    let batch = batch(&config);
    let (mut model, mut trainer) = after_a_step_without_the_heads(&config, &batch);
    assert!(trainer.profile().is_none());
    trainer.enable_profile();
    let mut arena = Arena::new();
    for _ in 0..2 {
        trainer
            .step(&mut model, &mut arena, &batch, &Objective::Head)
            .unwrap();
    }
    let profile = trainer.profile().expect("profiling is on");
    let calls = |op: &str, direction| {
        profile
            .times()
            .iter()
            .find(|t| t.op == op && t.direction == direction)
            .map_or(0, |t| t.calls)
    };
    use smelt_engine::autograd::Direction::{Backward, Forward};
    // Per step: q, k, v, attention output and two FFN products per layer, the pooler, the
    // classifier; the backward reaches them all.
    let linear = 2 * (6 * config.layers as u64 + 2);
    assert_eq!(calls("linear", Forward), linear);
    assert_eq!(calls("linear", Backward), linear);
    assert_eq!(calls("attention", Backward), 2 * config.layers as u64);
    assert_eq!(calls("cross_entropy", Forward), 2);
}

#[test]
fn a_model_of_other_parameters_is_an_error_that_changes_nothing() {
    let config = Config::preset("tiny").unwrap();
    let batch = batch(&config);
    let mut model = Model::random(&config, HeadKind::None, SEED).unwrap();
    let mut trainer = Trainer::new(&mut model, hp(), CpuOptions::threads(1)).unwrap();
    let mut arena = Arena::new();
    let mut other = Model::random(&config, HeadKind::Classification, SEED).unwrap();
    let before: Vec<Vec<f32>> = other
        .params()
        .iter()
        .map(|p| p.tensor.to_vec(&arena).unwrap())
        .collect();
    let err = trainer
        .step(&mut other, &mut arena, &batch, &Objective::Head)
        .unwrap_err()
        .to_string();
    let (n, m) = (other.params().len(), model.params().len());
    assert!(
        err.contains(&format!("the model has {n} parameters")) && err.contains(&m.to_string()),
        "{err}"
    );
    for (p, want) in other.params().iter().zip(&before) {
        assert_eq!(&p.tensor.to_vec(&arena).unwrap(), want, "{}", p.name);
    }
    let wider = Config {
        intermediate: config.intermediate + 1,
        ..config.clone()
    };
    let mut wider = Model::random(&wider, HeadKind::None, SEED).unwrap();
    let err = trainer
        .step(&mut wider, &mut arena, &batch, &Objective::SumSquares)
        .unwrap_err()
        .to_string();
    assert!(err.contains("intermediate.dense.weight' holds"), "{err}");
    assert_eq!(trainer.steps(), 0);
}

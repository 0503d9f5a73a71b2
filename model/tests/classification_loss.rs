//! The classification loss is cross-entropy over class ids, HF's loss for
//! `single_label_classification`. HF picks MSE for one label (regression) and BCE-with-logits
//! for `multi_label_classification`; smelt refuses those losses, naming config.json, instead of
//! a cross-entropy that differs (and, over one class, is identically 0 and trains nothing).

use smelt_engine::{Arena, CpuOptions, Graph, Tape};
use smelt_model::{Batch, Config, HeadKind, Model, ProblemType};

/// The classification loss of a random `config` model on two sequences labelled 0.
fn loss(config: &Config) -> smelt_engine::Result<f32> {
    let model = Model::random(config, HeadKind::Classification, 5)?;
    let ids: Vec<i64> = (0..16).map(|i| i * 5 % 90).collect();
    let batch = Batch::new(config, 2, 8, &ids, None, None)?.with_labels(&[0, 0])?;
    let (arena, mut tape) = (Arena::new(), Tape::new());
    let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), false);
    let forward = model.forward(&mut g, &batch)?;
    let loss = model.loss(&mut g, &forward, &batch)?;
    Ok(g.value(loss).to_vec(&arena)?[0])
}

#[test]
fn one_label_is_regression_which_is_refused() {
    let config = Config {
        num_labels: 1,
        ..Config::preset("tiny").unwrap()
    };
    let err = loss(&config).unwrap_err().to_string();
    assert_eq!(
        err,
        "loss: config.json has num_labels 1 and no problem_type, for which HF's loss is regression (MSE on float labels); smelt's classification loss is cross-entropy over class ids (problem_type \"single_label_classification\") only"
    );
}

#[test]
fn single_label_classification_is_cross_entropy() {
    let config = Config::preset("tiny").unwrap();
    let value = loss(&config).unwrap();
    assert!(value.is_finite() && value > 0.0, "{value}");
}

#[test]
fn regression_and_multi_label_problem_types_are_refused() {
    let tiny = Config::preset("tiny").unwrap();
    for (kind, hf_loss) in [
        (ProblemType::Regression, "MSE on float labels"),
        (
            ProblemType::MultiLabel,
            "BCE-with-logits on multi-hot float labels",
        ),
    ] {
        let config = Config {
            problem_type: Some(kind),
            ..tiny.clone()
        };
        let err = loss(&config).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("loss: config.json has problem_type \"{}\", for which HF's loss is {hf_loss}; smelt's classification loss is cross-entropy over class ids (problem_type \"single_label_classification\") only", kind.name())
        );
    }
    let explicit = Config {
        problem_type: Some(ProblemType::SingleLabel),
        ..tiny
    };
    assert!(loss(&explicit).unwrap().is_finite());
}

#[test]
fn a_classifier_without_labels_is_refused() {
    // An empty id2label gives num_labels 0: a classifier of no classes, whose cross-entropy
    // would be the log of an empty sum.
    let config = Config {
        num_labels: 0,
        ..Config::preset("tiny").unwrap()
    };
    let Err(err) = Model::random(&config, HeadKind::Classification, 5) else {
        panic!("a classifier of 0 labels was built");
    };
    let err = err.to_string();
    assert!(err.contains("num_labels") && err.contains("0"), "{err}");
    assert!(Model::random(&config, HeadKind::None, 5).is_ok());
}

//! BERT and DistilBERT against HuggingFace transformers: outputs, losses and every parameter
//! gradient from the fixtures that `tests/reference/make_fixtures.py` wrote (seeded random
//! weights, a padded batch with two token types), and five AdamW steps against PyTorch's; the
//! `*_dropout` fixtures are HF's training mode, dropping with smelt's masks (the fixture
//! script computes them), so dropout's forward and backward are checked the same way.
//!
//! Error measure: relative L2 `||ours - ref|| / ||ref||` per tensor, at most 1e-5 for outputs
//! and losses and 1e-4 for gradients and updated weights.

use smelt_engine::formats::safetensors::SafeTensors;
use smelt_engine::{Arena, CpuOptions, Graph, Tape, Tensor};
use smelt_kernels::cpu::adamw::AdamW;
use smelt_model::{Batch, Model, Objective, Trainer};
use smelt_tests::{rel_l2, worst};
use std::path::PathBuf;

const OUTPUT_TOL: f64 = 1e-5;
const GRAD_TOL: f64 = 1e-4;

/// Attention key biases have an exactly zero gradient (adding `q . b` to a whole row of scores
/// leaves the softmax unchanged), so both sides hold rounding noise, where a relative error
/// means nothing: their gradients must instead be below this L2 norm, on both sides.
const ZERO_GRAD_NORM: f64 = 1e-4;

fn has_zero_grad(name: &str) -> bool {
    name.ends_with("attention.self.key.bias") || name.ends_with("attention.k_lin.bias")
}

fn norm(x: &[f32]) -> f64 {
    x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()
}

fn fixture(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(case)
}

struct Reference {
    file: SafeTensors,
}

impl Reference {
    fn open(case: &str) -> Reference {
        Reference {
            file: SafeTensors::open(&fixture(case).join("reference.safetensors")).unwrap(),
        }
    }

    fn f32(&self, name: &str) -> Vec<f32> {
        self.file
            .tensor_f32(name)
            .unwrap()
            .to_vec(&Arena::new())
            .unwrap()
    }

    fn i64(&self, name: &str) -> Option<(Vec<usize>, Vec<i64>)> {
        self.file.info(name)?;
        Some(self.file.tensor_i64(name).unwrap())
    }

    fn has(&self, name: &str) -> bool {
        self.file.info(name).is_some()
    }

    /// The metadata value of `key`, parsed.
    fn meta<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        let (_, value) = self.file.metadata().iter().find(|(k, _)| k == key)?;
        value.parse().ok()
    }

    fn batch(&self, model: &Model) -> Batch {
        let (dims, ids) = self.i64("input_ids").unwrap();
        let mask = self.i64("attention_mask").map(|(_, m)| m);
        let types = self.i64("token_type_ids").map(|(_, t)| t);
        let batch = Batch::new(
            model.config(),
            dims[0],
            dims[1],
            &ids,
            mask.as_deref(),
            types.as_deref(),
        )
        .unwrap();
        match self.i64("labels") {
            Some((_, labels)) => batch.with_labels(&labels).unwrap(),
            None => batch,
        }
    }

    fn objective(&self) -> Objective {
        if self.has("probe") {
            Objective::Probe(self.file.tensor_f32("probe").unwrap())
        } else {
            Objective::Head
        }
    }
}

fn check(case: &str, what: &str, got: &[f32], want: &[f32], tol: f64) {
    let err = rel_l2(got, want);
    assert!(
        err <= tol,
        "{case}: {what}: relative L2 error {err:e} > {tol:e}"
    );
}

fn values(t: &Tensor, arena: &Arena) -> Vec<f32> {
    t.to_vec(arena).unwrap()
}

/// Forward outputs, the loss and every parameter gradient of one fixture, at `threads`.
fn outputs_and_gradients(case: &str, threads: usize) {
    let model = Model::load(&fixture(case)).unwrap();
    let reference = Reference::open(case);
    let batch = reference.batch(&model);
    let objective = reference.objective();
    let arena = Arena::new();
    let mut tape = Tape::new();
    let opts = CpuOptions::threads(threads);
    let mut g = Graph::new(&mut tape, &arena, opts, true);
    if let Some(seed) = reference.meta("dropout_seed") {
        g.enable_dropout(seed);
    }
    let f = model.forward(&mut g, &batch).unwrap();
    let loss = objective.loss(&model, &mut g, &f, &batch).unwrap();
    let mut compared = 0;
    for (name, var) in [
        ("last_hidden_state", Some(f.hidden)),
        ("pooler_output", f.pooled),
        ("logits", f.logits),
        ("loss", Some(loss)),
    ] {
        match var {
            Some(var) if reference.has(name) => {
                check(
                    case,
                    name,
                    &values(g.value(var), &arena),
                    &reference.f32(name),
                    OUTPUT_TOL,
                );
                compared += 1;
            }
            Some(_) => {}
            None => assert!(!reference.has(name), "{case}: we produce no {name}"),
        }
    }
    assert!(compared >= 2, "{case}: only {compared} outputs compared");
    g.backward(loss).unwrap();
    let mut failures = Vec::new();
    for (i, param) in model.params().iter().enumerate() {
        let want = reference.f32(&format!("grad.{}", param.name));
        let got = match g.grad(f.params.get(i).unwrap()) {
            Some(grad) => values(grad, &arena),
            None => vec![0.0; param.tensor.numel()],
        };
        if has_zero_grad(&param.name) {
            // A NaN norm must fail too: it compares false with the bound.
            let small = |v: &[f32]| norm(v) <= ZERO_GRAD_NORM;
            if !small(&got) || !small(&want) {
                failures.push(format!(
                    "grad.{}: norms {:e} (ours) and {:e} (torch) of an exactly zero gradient",
                    param.name,
                    norm(&got),
                    norm(&want)
                ));
            }
            continue;
        }
        let err = rel_l2(&got, &want);
        if err.is_nan() || err > GRAD_TOL {
            failures.push(format!("grad.{}: relative L2 error {err:e}", param.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{case}: {} gradients off:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let grads = reference
        .file
        .names()
        .filter(|n| n.starts_with("grad."))
        .count();
    assert_eq!(
        grads,
        model.params().len(),
        "{case}: parameter count differs from HF's"
    );
}

/// Inference (recording off) gives the same outputs as HF, and records nothing: a backward
/// from its loss reaches no parameter.
fn inference_matches(case: &str) {
    let model = Model::load(&fixture(case)).unwrap();
    let reference = Reference::open(case);
    let batch = reference.batch(&model);
    let arena = Arena::new();
    let mut tape = Tape::new();
    let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(2), false);
    let f = model.forward(&mut g, &batch).unwrap();
    let mut compared = 0;
    for (name, var) in [
        ("last_hidden_state", Some(f.hidden)),
        ("pooler_output", f.pooled),
        ("logits", f.logits),
    ] {
        if let (Some(var), true) = (var, reference.has(name)) {
            let what = format!("inference {name}");
            check(
                case,
                &what,
                &values(g.value(var), &arena),
                &reference.f32(name),
                OUTPUT_TOL,
            );
            compared += 1;
        }
    }
    assert!(compared >= 1, "{case}: no inference output compared");
    let loss = reference
        .objective()
        .loss(&model, &mut g, &f, &batch)
        .unwrap();
    g.backward(loss).unwrap();
    for (i, param) in model.params().iter().enumerate() {
        assert!(
            g.grad(f.params.get(i).unwrap()).is_none(),
            "{case}: inference recorded what gives {} a gradient",
            param.name
        );
    }
}

/// Five AdamW steps: the loss before each equals PyTorch's, and so do the final weights.
fn adamw_matches(case: &str) {
    let mut model = Model::load(&fixture(case)).unwrap();
    let reference = Reference::open(case);
    let batch = reference.batch(&model);
    let meta = |key: &str| -> f32 {
        reference
            .meta(key)
            .unwrap_or_else(|| panic!("{case}: no metadata {key}"))
    };
    let hp = AdamW {
        lr: meta("adamw.lr"),
        beta1: meta("adamw.beta1"),
        beta2: meta("adamw.beta2"),
        eps: meta("adamw.eps"),
        weight_decay: meta("adamw.weight_decay"),
    };
    let mut trainer = Trainer::new(&mut model, hp, CpuOptions::threads(2)).unwrap();
    if let Some(seed) = reference.meta("adamw.dropout_seed") {
        trainer.set_dropout_seed(seed);
    }
    let mut arena = Arena::new();
    let losses: Vec<f32> = (0..5)
        .map(|_| {
            trainer
                .step(&mut model, &mut arena, &batch, &Objective::Head)
                .unwrap()
        })
        .collect();
    let want = reference.f32("adamw.losses");
    assert_eq!(want.len(), losses.len(), "{case}: steps in the fixture");
    for (step, (&l, &w)) in losses.iter().zip(&want).enumerate() {
        let err = ((l as f64 - w as f64) / w as f64).abs();
        assert!(
            err <= OUTPUT_TOL,
            "{case}: AdamW step {step}: loss {l} vs {w} ({err:e})"
        );
    }
    // With dropout each step's loss is of other masks: only an eval-mode run must go down.
    let dropout = reference.meta::<u64>("adamw.dropout_seed").is_some();
    assert!(
        dropout || losses[4] < losses[0],
        "{case}: the loss did not go down: {losses:?}"
    );
    for param in model.params().iter() {
        let got = values(&param.tensor, &arena);
        let want = reference.f32(&format!("adamw.final.{}", param.name));
        let what = format!("adamw.final.{}", param.name);
        if has_zero_grad(&param.name) {
            // Adam divides rounding noise by its own magnitude: each step moves these by up
            // to lr in a direction neither side controls.
            let bound = 2.0 * hp.lr * losses.len() as f32;
            let worst = worst(got.iter().zip(&want).map(|(g, w)| (g - w).abs()));
            assert!(
                worst <= bound,
                "{case}: {what}: differs by {worst} > {bound}"
            );
            continue;
        }
        check(case, &what, &got, &want, GRAD_TOL);
    }
}

#[test]
fn bert_matches_hf() {
    for threads in [1, 2] {
        outputs_and_gradients("bert", threads);
    }
    inference_matches("bert");
}

#[test]
fn distilbert_matches_hf() {
    for threads in [1, 2] {
        outputs_and_gradients("distilbert", threads);
    }
    inference_matches("distilbert");
}

/// A DistilBERT whose config says `sinusoidal_pos_embds: true`: its checkpoint holds HF's
/// sinusoidal position table, which HF (transformers 5) trains like a learned one.
#[test]
fn distilbert_with_sinusoidal_positions_matches_hf() {
    outputs_and_gradients("distilbert_sinusoidal", 2);
    inference_matches("distilbert_sinusoidal");
}

#[test]
fn masked_lm_heads_match_hf() {
    for case in ["bert_mlm", "distilbert_mlm"] {
        outputs_and_gradients(case, 2);
        inference_matches(case);
    }
}

#[test]
fn classification_heads_match_hf() {
    for case in ["bert_cls", "distilbert_cls"] {
        outputs_and_gradients(case, 2);
        inference_matches(case);
    }
}

#[test]
fn training_mode_dropout_matches_hf() {
    for case in ["bert_cls_dropout", "distilbert_cls_dropout"] {
        for threads in [1, 2] {
            outputs_and_gradients(case, threads);
        }
        adamw_matches(case);
    }
}

#[test]
fn five_adamw_steps_match_pytorch() {
    for case in ["bert_mlm", "distilbert_mlm"] {
        adamw_matches(case);
    }
}

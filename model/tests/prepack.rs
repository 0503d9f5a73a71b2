//! `Model::prepack`: a forward through the packed weights gives the same bits as one that
//! packs them itself, on 1 and 2 threads, BERT and DistilBERT, with and without recording;
//! anything that may change the weights drops the packing.

use smelt_engine::{Arena, CpuOptions, Graph, Tape};
use smelt_model::{Batch, Config, HeadKind, Model};

/// The hidden states and pooled output of `model` on a padded batch of 3 x 37 tokens.
fn forward(model: &Model, opts: CpuOptions, recording: bool) -> Vec<Vec<f32>> {
    let (b, t) = (3, 37);
    let ids: Vec<i64> = (0..b * t).map(|i| (i * 7 % 90) as i64).collect();
    let mask: Vec<i64> = (0..b * t)
        .map(|i| i64::from(i % t < t - i / t * 5))
        .collect();
    let batch = Batch::new(model.config(), b, t, &ids, Some(&mask), None).unwrap();
    let arena = Arena::new();
    let mut tape = Tape::new();
    let mut g = Graph::new(&mut tape, &arena, opts, recording);
    let out = model.forward(&mut g, &batch).unwrap();
    let mut values = vec![g.value(out.hidden).to_vec(&arena).unwrap()];
    if let Some(pooled) = out.pooled {
        values.push(g.value(pooled).to_vec(&arena).unwrap());
    }
    values
}

#[test]
fn a_prepacked_forward_is_the_same_bit_for_bit() {
    let bert = Config::preset("tiny").unwrap();
    let distil = Config {
        family: smelt_model::Family::DistilBert,
        type_vocab_size: 0,
        ..bert.clone()
    };
    for config in [bert, distil] {
        for threads in [1, 2] {
            let opts = CpuOptions::threads(threads);
            let mut model = Model::random(&config, HeadKind::None, 3).unwrap();
            let want = [false, true].map(|recording| forward(&model, opts, recording));
            model.prepack(&opts).unwrap();
            assert!(model.is_prepacked());
            for (recording, want) in [false, true].into_iter().zip(&want) {
                let got = forward(&model, opts, recording);
                assert!(
                    &got == want,
                    "{:?}, {threads} threads, recording {recording}",
                    config.family
                );
            }
        }
    }
}

/// Halves every parameter of `model` through `params_mut`.
fn halve(model: &mut Model) {
    for p in model.params_mut().iter_mut() {
        if let Some(values) = p.tensor.host_mut() {
            values.iter_mut().for_each(|v| *v *= 0.5);
        }
    }
}

#[test]
fn changing_the_weights_drops_the_packing() {
    let config = Config::preset("tiny").unwrap();
    let opts = CpuOptions::threads(1);
    let mut model = Model::random(&config, HeadKind::None, 3).unwrap();
    let mut never_packed = Model::random(&config, HeadKind::None, 3).unwrap();
    model.prepack(&opts).unwrap();
    halve(&mut model);
    halve(&mut never_packed);
    assert!(!model.is_prepacked());
    let want = forward(&never_packed, opts, false);
    assert!(
        forward(&model, opts, false) == want,
        "the halved weights are used"
    );
    model.prepack(&opts).unwrap();
    assert!(forward(&model, opts, false) == want);
    model.make_trainable().unwrap();
    assert!(!model.is_prepacked());
}

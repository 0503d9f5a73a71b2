//! Ops given shapes they cannot take return errors naming the op, in debug builds too (where
//! an unchecked product overflowing would panic first), never a silently wrong result.

use smelt_engine::ops::matmul;
use smelt_engine::{Arena, CpuOptions, Graph, Tape, Tensor};

fn empty(dims: &[usize]) -> Tensor {
    Tensor::from_vec(dims, Vec::new()).unwrap()
}

/// Runs `f` on a fresh inference graph.
fn on_graph<R>(f: impl FnOnce(&mut Graph<'_>) -> R) -> R {
    let arena = Arena::new();
    let mut tape = Tape::new();
    let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), false);
    f(&mut g)
}

#[test]
fn cross_entropy_over_zero_classes_still_needs_one_target_per_row() {
    // [3, 0] logits are 3 rows: no targets is a mismatch, as in torch (it was 0 rows, NaN).
    let err = on_graph(|g| {
        let logits = g.leaf(empty(&[3, 0]), false);
        g.cross_entropy(logits, &[], -100).map(|_| ())
    })
    .unwrap_err();
    assert!(err.to_string().contains("one target per row"), "{err}");
}

#[test]
fn cross_entropy_over_zero_classes_with_every_row_ignored_has_a_backward() {
    // Every target ignored: the loss is NaN (0 / 0, as torch's mean) and the gradient of the
    // [3, 0] logits is empty, not an error about the rows.
    let arena = Arena::new();
    let mut tape = Tape::new();
    let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), true);
    let logits = g.leaf(empty(&[3, 0]), true);
    let loss = g.cross_entropy(logits, &[-100; 3], -100).unwrap();
    assert!(g.value(loss).to_vec(&arena).unwrap()[0].is_nan());
    g.backward(loss).unwrap();
    assert_eq!(g.grad(logits).unwrap().dims(), &[3, 0]);
}

#[test]
fn embedding_refuses_a_padding_row_past_the_table() {
    let err = on_graph(|g| {
        let table = g.leaf(Tensor::from_vec(&[2, 1], vec![1.0, 2.0]).unwrap(), false);
        g.embedding(table, &[0, 1], &[2], Some(2)).map(|_| ())
    })
    .unwrap_err();
    assert!(err.to_string().contains("padding_idx 2"), "{err}");
}

#[test]
fn index_shapes_and_products_that_overflow_are_errors() {
    let embed = on_graph(|g| {
        let table = g.leaf(empty(&[0, 4]), false);
        g.embedding(table, &[], &[1 << 32, 1 << 32], None)
            .map(|_| ())
    });
    assert!(embed.is_err());
    let attention = on_graph(|g| {
        let q = g.leaf(empty(&[1, 1 << 33, 0]), false);
        g.attention(q, q, q, None, 1, 1.0, 0.0).map(|_| ())
    });
    assert!(attention.unwrap_err().to_string().contains("overflow"));
    let arena = Arena::new();
    let (a, b) = (empty(&[1 << 40, 0]), empty(&[0, 1 << 40]));
    assert!(matmul(&arena, &a, &b, &CpuOptions::threads(1)).is_err());
}

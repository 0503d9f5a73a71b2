//! Random graphs of the differentiable ops, with inputs reused at random (fan-out, an input
//! used again after the op that consumed it, a residual sum of a tensor with itself): every
//! leaf's gradient must agree with a central finite difference of the loss along a random
//! direction (dropout draws the same masks in every run of a graph). Reuse is where gradient buffers are shared and pooled, so a buffer pooled while
//! still handed out (as `layer_norm_residual`'s once was) shows up here as a wrong gradient.

use smelt_engine::{Arena, CpuOptions, Graph, Tape, Tensor, Var};

mod common;
use common::Rng;

/// Activations are `[B, T, H]`, with `HEADS` heads in attention.
const DIMS: [usize; 3] = [2, 4, 8];
const HEADS: usize = 2;
/// Activation leaves, then the parameters: two weights `[H, H]`, a bias, two (gamma, beta)
/// and an embedding table `[VOCAB, H]`.
const INPUTS: usize = 3;
const PARAMS: usize = 8;
const VOCAB: usize = 5;
/// The embedding table's leaf index.
const TABLE: usize = INPUTS + PARAMS - 1;
/// The activations a program starts from: the leaves and the embedding of [`IDS`].
const STARTS: usize = INPUTS + 1;
/// Token ids for the embedding, repeated ids and the padding id 0 among them.
const IDS: [u32; 8] = [3, 1, 3, 0, 4, 4, 2, 3];
const OPS_PER_GRAPH: usize = 10;
const GRAPHS: usize = 500;

/// One op of a graph, by the indices of the activations it reads (earlier outputs or inputs).
#[derive(Clone, Copy, Debug)]
enum Op {
    Add(usize, usize),
    Gelu(usize),
    Tanh(usize),
    /// With weight 0 or 1 (shared between ops), and the bias.
    Linear(usize, usize),
    LayerNorm(usize),
    LayerNormResidual(usize, usize),
    /// Dropout of probability 0.3 (the same draws in every run of a program).
    Dropout(usize),
    /// With dropout of 0.2 on the probabilities.
    Attention(usize, usize, usize),
}

fn random_program(rng: &mut Rng) -> Vec<Op> {
    (0..OPS_PER_GRAPH)
        .map(|i| {
            let live = STARTS + i;
            let kind = rng.below(8);
            let [x, y, z] = [0; 3].map(|_| rng.below(live));
            match kind {
                0 => Op::Add(x, y),
                1 => Op::Gelu(x),
                2 => Op::Tanh(x),
                3 => Op::Linear(x, y % 2),
                4 => Op::LayerNorm(x),
                5 => Op::LayerNormResidual(x, y),
                6 => Op::Dropout(x),
                _ => Op::Attention(x, y, z),
            }
        })
        .collect()
}

/// The leaves' shapes: the activation inputs, then the parameters.
fn leaf_dims(i: usize) -> Vec<usize> {
    match i {
        i if i < INPUTS => DIMS.to_vec(),
        3 | 4 => vec![DIMS[2], DIMS[2]],
        TABLE => vec![VOCAB, DIMS[2]],
        _ => vec![DIMS[2]],
    }
}

/// How a graph ends: `sum` is the last activation plus one picked at random.
#[derive(Clone, Copy, Debug)]
enum Head {
    /// `sum(sum * probe)`.
    Probe,
    /// `sum(sum^2)`.
    Squares,
    /// `sum(mean_pool(sum) * p)` (`p` the probe's first values), batch 1's last token masked.
    MeanPool,
    /// Cross-entropy of every token's row as logits, one target ignored.
    Tokens,
    /// Cross-entropy of token 1's rows (`select_token`) as logits.
    Selected,
}

const HEADS_ALL: [Head; 5] = [
    Head::Probe,
    Head::Squares,
    Head::MeanPool,
    Head::Tokens,
    Head::Selected,
];

/// Builds the graph of `program` over `leaves` and returns the loss: `head` of the last
/// activation plus activation `tail`. Leaf `i` needs no gradient when bit `i` of `frozen` is
/// set. With `recording`, runs the backward and returns every leaf's gradient too (zeros for
/// one the loss does not reach; for a frozen leaf, an empty vector, after checking it has
/// none).
fn run(
    (program, tail, head, frozen): (&[Op], usize, Head, u32),
    leaves: &[Vec<f32>],
    probe: &Tensor,
    recording: bool,
) -> (f32, Vec<Vec<f32>>) {
    let arena = Arena::new();
    let mut tape = Tape::new();
    let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), recording);
    g.enable_dropout(7);
    let vars: Vec<Var> = leaves
        .iter()
        .enumerate()
        .map(|(i, values)| {
            g.leaf(
                Tensor::from_vec(&leaf_dims(i), values.clone()).unwrap(),
                frozen >> i & 1 == 0,
            )
        })
        .collect();
    let (w, bias, norms) = (
        &vars[3..5],
        vars[5],
        [(vars[6], vars[7]), (vars[8], vars[9])],
    );
    let mut mask = vec![0.0f32; DIMS[0] * DIMS[1]];
    mask[DIMS[0] * DIMS[1] - 1] = f32::MIN;
    let mask = Tensor::from_vec(&DIMS[..2], mask).unwrap();
    let scale = 1.0 / ((DIMS[2] / HEADS) as f32).sqrt();
    let mut acts: Vec<Var> = vars[..INPUTS].to_vec();
    acts.push(g.embedding(vars[TABLE], &IDS, &DIMS[..2], Some(0)).unwrap());
    for op in program {
        let a = |i: usize| acts[i];
        let out = match *op {
            Op::Add(x, y) => g.add(a(x), a(y)),
            Op::Gelu(x) => g.gelu(a(x)),
            Op::Tanh(x) => g.tanh(a(x)),
            Op::Linear(x, which) => g.linear(a(x), w[which], Some(bias)),
            Op::LayerNorm(x) => g.layer_norm(a(x), norms[0].0, norms[0].1, 1e-5),
            Op::LayerNormResidual(x, r) => {
                g.layer_norm_residual(a(x), a(r), norms[1].0, norms[1].1, 1e-5)
            }
            Op::Dropout(x) => g.dropout(a(x), 0.3),
            Op::Attention(q, k, v) => g.attention(a(q), a(k), a(v), Some(&mask), HEADS, scale, 0.2),
        };
        acts.push(out.unwrap_or_else(|e| panic!("{op:?}: {e}")));
    }
    let last = *acts.last().unwrap();
    let sum = g.add(last, acts[tail]).unwrap();
    let loss = match head {
        Head::Probe => g.mul_sum(sum, probe),
        Head::Squares => g.sum_squares(sum),
        Head::MeanPool => {
            let tokens = Tensor::from_vec(&DIMS[..2], vec![1., 1., 1., 1., 1., 1., 1., 0.]);
            let pooled = g.mean_pool(sum, &tokens.unwrap()).unwrap();
            let values = probe.to_vec(&arena).unwrap()[..DIMS[0] * DIMS[2]].to_vec();
            let first = Tensor::from_vec(&[DIMS[0], DIMS[2]], values);
            g.mul_sum(pooled, &first.unwrap())
        }
        Head::Tokens => g.cross_entropy(sum, &[1, 7, 0, -100, 3, 5, 2, 6], -100),
        Head::Selected => {
            let rows = g.select_token(sum, 1).unwrap();
            g.cross_entropy(rows, &[4, 2], -100)
        }
    }
    .unwrap();
    let value = g.value(loss).to_vec(&arena).unwrap()[0];
    if !recording {
        return (value, Vec::new());
    }
    g.backward(loss).unwrap();
    let grads = vars
        .iter()
        .enumerate()
        .map(|(i, &v)| match g.grad(v) {
            _ if frozen >> i & 1 == 1 => {
                assert!(g.grad(v).is_none(), "frozen leaf {i} has a gradient");
                Vec::new()
            }
            Some(grad) => grad.to_vec(&arena).unwrap(),
            // A leaf the loss does not reach.
            None => vec![0.0; leaves[i].len()],
        })
        .collect();
    (value, grads)
}

#[test]
fn random_graphs_give_the_finite_difference_gradients() {
    const H: f32 = 1e-2;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut worst = (0.0f32, String::new());
    for graph in 0..GRAPHS {
        let program = random_program(&mut rng);
        let tail = rng.below(STARTS + OPS_PER_GRAPH);
        let head = HEADS_ALL[graph % HEADS_ALL.len()];
        // In every other graph a quarter of the leaves need no gradient: their buffers are
        // let go of on other paths.
        let frozen = if graph % 2 == 1 {
            (0..INPUTS + PARAMS).fold(0, |bits, i| bits | u32::from(rng.below(4) == 0) << i)
        } else {
            0
        };
        let graph_of = (program.as_slice(), tail, head, frozen);
        let leaves: Vec<Vec<f32>> = (0..INPUTS + PARAMS)
            .map(|i| rng.values(leaf_dims(i).iter().product()))
            .collect();
        let probe = Tensor::from_vec(&DIMS, rng.values(DIMS.iter().product())).unwrap();
        let (loss, grads) = run(graph_of, &leaves, &probe, true);
        // The loss's rounding, about an ulp of it over 2 H, counts for nothing: the floor
        // holds it under a fortieth of the limit where both sides are ~0.
        let floor = 5e-2 + loss.abs() * 2e-3;
        for (leaf, grad) in grads.iter().enumerate() {
            if frozen >> leaf & 1 == 1 {
                continue;
            }
            let mut direction = rng.values(grad.len());
            if leaf == TABLE {
                // The padding row takes no gradient (torch's padding_idx), though the forward
                // reads it: not a direction the gradient speaks for.
                direction[..DIMS[2]].fill(0.0);
            }
            let moved = |sign: f32| {
                let mut moved = leaves.clone();
                for (x, d) in moved[leaf].iter_mut().zip(&direction) {
                    *x += sign * H * d;
                }
                run(graph_of, &moved, &probe, false).0
            };
            let finite = (moved(1.0) - moved(-1.0)) / (2.0 * H);
            let along: f32 = grad.iter().zip(&direction).map(|(g, d)| g * d).sum();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            // Against the largest the directional derivative could be (Cauchy-Schwarz).
            let bound = norm(grad) * norm(&direction);
            let error = (finite - along).abs() / (bound + floor);
            if error.is_nan() || error > worst.0 {
                let what = format!(
                    "graph {graph} {program:?} (+ activation {tail}, {head:?}), leaf {leaf}: \
                     finite difference {finite}, gradient {along}, bound {bound}"
                );
                worst = (error, what);
            }
        }
    }
    assert!(worst.0 <= 2e-2, "error {}: {}", worst.0, worst.1);
}

//! [`Node`]: one recorded op, what its backward needs, and the dispatch to that backward.

use super::tape::{Graph, Var};
use super::{activation, add, attention, dropout, embedding, layer_norm, linear, loss, pooling};
use crate::{Result, Tensor};
use smelt_kernels::cpu::attention::AttentionShape;
use smelt_kernels::cpu::dropout::DropoutMask;
use std::ops::Range;

/// A recorded op: its inputs, its output and the tensors saved for its backward.
#[derive(Debug)]
pub(crate) enum Node {
    Linear {
        x: Var,
        w: Var,
        b: Option<Var>,
        out: Var,
    },
    Add {
        a: Var,
        b: Var,
        out: Var,
    },
    LayerNorm {
        x: Var,
        gamma: Var,
        beta: Var,
        mean: Tensor,
        rstd: Tensor,
        out: Var,
    },
    LayerNormResidual {
        x: Var,
        residual: Var,
        gamma: Var,
        beta: Var,
        sum: Tensor,
        mean: Tensor,
        rstd: Tensor,
        out: Var,
    },
    Activation {
        kind: activation::Kind,
        x: Var,
        out: Var,
    },
    Attention {
        q: Var,
        k: Var,
        v: Var,
        probs: Tensor,
        shape: AttentionShape,
        scale: f32,
        dropout: Option<DropoutMask>,
        out: Var,
    },
    Dropout {
        x: Var,
        mask: DropoutMask,
        out: Var,
    },
    Embedding {
        table: Var,
        ids: Range<usize>,
        padding_idx: Option<u32>,
        out: Var,
    },
    CrossEntropy {
        logits: Var,
        targets: Range<usize>,
        ignore_index: i64,
        out: Var,
    },
    MulSum {
        x: Var,
        probe: Tensor,
        out: Var,
    },
    SumSquares {
        x: Var,
        out: Var,
    },
    MeanPool {
        x: Var,
        mask: Tensor,
        out: Var,
    },
    SelectToken {
        x: Var,
        index: usize,
        out: Var,
    },
}

impl Node {
    /// The value this op produced.
    pub(crate) fn output(&self) -> Var {
        match *self {
            Node::Linear { out, .. }
            | Node::Add { out, .. }
            | Node::LayerNorm { out, .. }
            | Node::LayerNormResidual { out, .. }
            | Node::Activation { out, .. }
            | Node::Attention { out, .. }
            | Node::Dropout { out, .. }
            | Node::Embedding { out, .. }
            | Node::CrossEntropy { out, .. }
            | Node::MulSum { out, .. }
            | Node::SumSquares { out, .. }
            | Node::MeanPool { out, .. }
            | Node::SelectToken { out, .. } => out,
        }
    }

    /// The op's name, the one its forward is profiled and reports errors under.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Node::Linear { .. } => linear::OP,
            Node::Add { .. } => add::OP,
            Node::LayerNorm { .. } => layer_norm::OP,
            Node::LayerNormResidual { .. } => layer_norm::RESIDUAL_OP,
            Node::Activation { kind, .. } => kind.name(),
            Node::Attention { .. } => attention::OP,
            Node::Dropout { .. } => dropout::OP,
            Node::Embedding { .. } => embedding::OP,
            Node::CrossEntropy { .. } => loss::CROSS_ENTROPY,
            Node::MulSum { .. } => loss::MUL_SUM,
            Node::SumSquares { .. } => loss::SUM_SQUARES,
            Node::MeanPool { .. } => pooling::MEAN_POOL,
            Node::SelectToken { .. } => pooling::SELECT_TOKEN,
        }
    }

    /// Adds this op's input gradients to `g`, given `dout`, the gradient of its output.
    pub(crate) fn backward(&self, g: &mut Graph<'_>, dout: &Tensor) -> Result<()> {
        match self {
            &Node::Linear { x, w, b, .. } => linear::backward(g, x, w, b, dout),
            &Node::Add { a, b, out } => add::backward(g, a, b, out, dout),
            Node::LayerNorm {
                x,
                gamma,
                beta,
                mean,
                rstd,
                ..
            } => layer_norm::backward(g, *x, *gamma, *beta, mean, rstd, dout),
            Node::LayerNormResidual {
                x,
                residual,
                gamma,
                beta,
                sum,
                mean,
                rstd,
                ..
            } => layer_norm::residual_backward(
                g,
                [*x, *residual],
                *gamma,
                *beta,
                sum,
                mean,
                rstd,
                dout,
            ),
            &Node::Activation { kind, x, out } => activation::backward(g, kind, x, out, dout),
            Node::Attention {
                q,
                k,
                v,
                probs,
                shape,
                scale,
                dropout,
                ..
            } => attention::backward(
                g,
                [*q, *k, *v],
                probs,
                shape,
                *scale,
                dropout.as_ref(),
                dout,
            ),
            Node::Dropout { x, mask, .. } => dropout::backward(g, *x, mask, dout),
            Node::Embedding {
                table,
                ids,
                padding_idx,
                ..
            } => embedding::backward(g, *table, ids.clone(), *padding_idx, dout),
            Node::CrossEntropy {
                logits,
                targets,
                ignore_index,
                ..
            } => loss::cross_entropy_backward(g, *logits, targets.clone(), *ignore_index, dout),
            Node::MulSum { x, probe, .. } => loss::mul_sum_backward(g, *x, probe, dout),
            &Node::SumSquares { x, .. } => loss::sum_squares_backward(g, x, dout),
            Node::MeanPool { x, mask, .. } => pooling::mean_pool_backward(g, *x, mask, dout),
            &Node::SelectToken { x, index, .. } => {
                pooling::select_token_backward(g, x, index, dout)
            }
        }
    }
}

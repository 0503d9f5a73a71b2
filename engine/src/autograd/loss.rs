//! Scalar losses: cross-entropy with an ignore index, `sum(x * probe)`, and `sum(x^2)`.

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Error, Result, Tensor};
use smelt_kernels::cpu::elementwise::{mul_sum, scale};
use smelt_kernels::cpu::loss as kernel;

/// The cross-entropy op's name, in errors and profiles.
pub(super) const CROSS_ENTROPY: &str = "cross_entropy";
/// The `sum(x * probe)` op's name.
pub(super) const MUL_SUM: &str = "mul_sum";
/// The `sum(x^2)` op's name.
pub(super) const SUM_SQUARES: &str = "sum_squares";

/// The single value of a scalar gradient.
fn scalar(op: &'static str, g: &Graph<'_>, t: &Tensor) -> Result<f32> {
    t.contiguous_data(op, g.arena)?
        .first()
        .copied()
        .ok_or_else(|| Error::Shape {
            op,
            detail: format!("the gradient {} of a scalar is empty", t.shape()),
        })
}

impl Graph<'_> {
    /// Mean cross-entropy of `logits [.., C]` against `targets` (one per row), skipping rows
    /// whose target is `ignore_index` (HF uses -100); a scalar `[]`. NaN when every row is
    /// ignored, as in torch. A target outside `0..C` is an error naming its row.
    pub fn cross_entropy(
        &mut self,
        logits: Var,
        targets: &[i64],
        ignore_index: i64,
    ) -> Result<Var> {
        const OP: &str = CROSS_ENTROPY;
        let lt = self.value(logits);
        let cols = lt.dims().last().copied().unwrap_or(0);
        // The leading dims' product, not numel / C: with C = 0 that would be 0 rows whatever
        // the batch (a valid shape's non-zero dims never overflow).
        let rows = lt.dims()[..lt.dims().len().saturating_sub(1)]
            .iter()
            .product::<usize>();
        if lt.dims().is_empty() || targets.len() != rows {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "logits {} need one target per row, got {}",
                    lt.shape(),
                    targets.len()
                ),
            });
        }
        let ld = self.dense(OP, logits)?;
        let opts = self.opts;
        let value = self.alloc_with(OP, &[], |loss| {
            let ce = kernel::cross_entropy(ld, targets, rows, cols, ignore_index, &opts)?;
            loss[0] = ce.loss;
            Ok(())
        })?;
        let record = self.records(&[logits]);
        let out = self.push_value(OP, value, record);
        if record {
            let start = self.tape.targets.len();
            self.tape.targets.extend_from_slice(targets);
            self.record(Node::CrossEntropy {
                logits,
                targets: start..self.tape.targets.len(),
                ignore_index,
                out,
            });
        }
        Ok(out)
    }

    /// `sum(x * probe)` over all elements (a probe loss whose gradient is `probe`); a scalar
    /// `[]`. `probe` is a constant of x's shape.
    pub fn mul_sum(&mut self, x: Var, probe: &Tensor) -> Result<Var> {
        const OP: &str = MUL_SUM;
        if self.value(x).dims() != probe.dims() {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "x {} and probe {} differ",
                    self.value(x).shape(),
                    probe.shape()
                ),
            });
        }
        let probe = probe.contiguous_for(OP, self.arena)?;
        let (xd, pd) = (self.dense(OP, x)?, probe.contiguous_data(OP, self.arena)?);
        let value = self.alloc_with(OP, &[], |s| {
            s[0] = mul_sum(xd, pd)? as f32;
            Ok(())
        })?;
        Ok(self.output(OP, value, &[x], |out| Node::MulSum { x, probe, out }))
    }

    /// `sum(x^2)` over all elements; a scalar `[]`.
    pub fn sum_squares(&mut self, x: Var) -> Result<Var> {
        let xd = self.dense(SUM_SQUARES, x)?;
        let value = self.alloc_with(SUM_SQUARES, &[], |s| {
            s[0] = mul_sum(xd, xd)? as f32;
            Ok(())
        })?;
        Ok(self.output(SUM_SQUARES, value, &[x], |out| Node::SumSquares { x, out }))
    }
}

/// `dlogits = dloss / count * (softmax - onehot)`, ignored rows zero.
pub(super) fn cross_entropy_backward(
    g: &mut Graph<'_>,
    logits: Var,
    targets: std::ops::Range<usize>,
    ignore_index: i64,
    dout: &Tensor,
) -> Result<()> {
    const OP: &str = CROSS_ENTROPY;
    let dloss = scalar(OP, g, dout)?;
    let dims = *g.value(logits).shape();
    let cols = dims.dims().last().copied().unwrap_or(0);
    // One target per row, as the forward checked (numel / C would be 0 rows for C = 0).
    let rows = targets.len();
    let ld = g.dense(OP, logits)?;
    let targets = &g.tape.targets[targets];
    let opts = g.opts;
    let dl = g.alloc_with(OP, dims.dims(), |dl| {
        Ok(kernel::cross_entropy_backward(
            ld,
            targets,
            rows,
            cols,
            ignore_index,
            dloss,
            dl,
            &opts,
        )?)
    })?;
    g.accumulate(logits, dl)
}

/// `dx = dloss * probe`.
pub(super) fn mul_sum_backward(
    g: &mut Graph<'_>,
    x: Var,
    probe: &Tensor,
    dout: &Tensor,
) -> Result<()> {
    const OP: &str = MUL_SUM;
    let dloss = scalar(OP, g, dout)?;
    let pd = probe.contiguous_data(OP, g.arena)?;
    let opts = g.opts;
    let dx = g.alloc_with(OP, probe.dims(), |dx| Ok(scale(pd, dloss, dx, &opts)?))?;
    g.accumulate(x, dx)
}

/// `dx = 2 * dloss * x`.
pub(super) fn sum_squares_backward(g: &mut Graph<'_>, x: Var, dout: &Tensor) -> Result<()> {
    const OP: &str = SUM_SQUARES;
    let dloss = scalar(OP, g, dout)?;
    let dims = *g.value(x).shape();
    let xd = g.dense(OP, x)?;
    let opts = g.opts;
    let dx = g.alloc_with(OP, dims.dims(), |dx| Ok(scale(xd, 2.0 * dloss, dx, &opts)?))?;
    g.accumulate(x, dx)
}

//! Layer norm over the last dimension, fused, saving mean and rstd for its backward.

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Error, Result, Tensor};
use smelt_kernels::cpu::layernorm::{layer_norm, layer_norm_backward};

/// The op's name, in errors and profiles.
pub(super) const OP: &str = "layer_norm";

/// `(rows, cols)` of `x [.., cols]` normalised with `gamma`, `beta` of `[cols]`.
fn sizes(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<(usize, usize)> {
    let cols = x.dims().last().copied().unwrap_or(0);
    if x.dims().is_empty() || gamma.dims() != [cols] || beta.dims() != [cols] {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "x {} needs weight and bias of [{cols}], got {} and {}",
                x.shape(),
                gamma.shape(),
                beta.shape()
            ),
        });
    }
    Ok((x.numel() / cols.max(1), cols))
}

impl Graph<'_> {
    /// `(x - mean) / sqrt(var + eps) * gamma + beta` over the last dimension of `x [.., C]`,
    /// with `gamma`, `beta` of `[C]` (biased variance, as torch).
    pub fn layer_norm(&mut self, x: Var, gamma: Var, beta: Var, eps: f32) -> Result<Var> {
        let (xt, gt, bt) = (self.value(x), self.value(gamma), self.value(beta));
        let (rows, cols) = sizes(xt, gt, bt)?;
        let dims = *xt.shape();
        let (xd, gd, bd) = (
            self.dense(OP, x)?,
            self.dense(OP, gamma)?,
            self.dense(OP, beta)?,
        );
        let opts = self.opts;
        let arena = self.arena;
        let record = self.records(&[x, gamma, beta]);
        let mut stats = if record {
            Some((arena.alloc(&[rows])?, arena.alloc(&[rows])?))
        } else {
            None
        };
        let value = self.alloc_with(OP, dims.dims(), |y| {
            let saved = stats
                .as_mut()
                .map(|(m, r)| (m.as_mut_slice(), r.as_mut_slice()));
            Ok(layer_norm(xd, gd, bd, y, saved, rows, cols, eps, &opts)?)
        })?;
        let out = self.push_value(OP, value, record);
        if let Some((mean, rstd)) = stats {
            self.record(Node::LayerNorm {
                x,
                gamma,
                beta,
                mean: mean.into_tensor(),
                rstd: rstd.into_tensor(),
                out,
            });
        }
        Ok(out)
    }
}

/// `dx = rstd * (dy*g - mean(dy*g) - xhat * mean(dy*g*xhat))`, `dgamma = sum dy*xhat`,
/// `dbeta = sum dy` (the kernel documents the derivation).
pub(super) fn backward(
    g: &mut Graph<'_>,
    x: Var,
    gamma: Var,
    beta: Var,
    mean: &Tensor,
    rstd: &Tensor,
    dout: &Tensor,
) -> Result<()> {
    let (rows, cols) = sizes(g.value(x), g.value(gamma), g.value(beta))?;
    let dims = *g.value(x).shape();
    let arena = g.arena;
    let opts = g.opts;
    let dy = dout.contiguous_data(OP, arena)?;
    let (md, rd) = (
        mean.contiguous_data(OP, arena)?,
        rstd.contiguous_data(OP, arena)?,
    );
    let (xd, gd) = (g.dense(OP, x)?, g.dense(OP, gamma)?);
    let mut dgamma = arena.alloc(&[cols])?;
    let mut dbeta = arena.alloc(&[cols])?;
    let dx = g.alloc_with(OP, dims.dims(), |dx| {
        Ok(layer_norm_backward(
            dy,
            xd,
            gd,
            md,
            rd,
            dx,
            dgamma.as_mut_slice(),
            dbeta.as_mut_slice(),
            rows,
            cols,
            &opts,
        )?)
    })?;
    g.accumulate(x, dx)?;
    g.accumulate(gamma, dgamma.into_tensor())?;
    g.accumulate(beta, dbeta.into_tensor())
}

//! Pooling over the sequence: masked mean (sentence embeddings) and one token's row (BERT's
//! pooler reads `[CLS]`).

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Error, Result, Tensor};
use smelt_kernels::cpu::pooling as kernel;

/// The masked mean's name, in errors and profiles.
pub(super) const MEAN_POOL: &str = "mean_pool";
/// The token selection's name.
pub(super) const SELECT_TOKEN: &str = "select_token";

/// `(B, T, D)` of `x [B, T, D]`, or an error naming `op` and the shape.
fn btd(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize)> {
    match *x.dims() {
        [b, t, d] => Ok((b, t, d)),
        _ => Err(Error::Shape {
            op,
            detail: format!("x {} must be [B, T, D]", x.shape()),
        }),
    }
}

impl Graph<'_> {
    /// `out[b] = sum_t mask[b, t] * x[b, t] / max(sum_t mask[b, t], 1e-9)`: `x [B, T, D]`,
    /// constant `mask [B, T]` (1 for tokens, 0 for padding) -> `[B, D]`.
    pub fn mean_pool(&mut self, x: Var, mask: &Tensor) -> Result<Var> {
        const OP: &str = MEAN_POOL;
        let (b, t, d) = btd(OP, self.value(x))?;
        if mask.dims() != [b, t] {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "x {} needs a mask of [{b}, {t}], got {}",
                    self.value(x).shape(),
                    mask.shape()
                ),
            });
        }
        let mask = mask.contiguous_for(OP, self.arena)?;
        let (xd, md) = (self.dense(OP, x)?, mask.contiguous_data(OP, self.arena)?);
        let value = self.alloc_with(OP, &[b, d], |out| {
            Ok(kernel::mean_pool(xd, md, out, b, t, d)?)
        })?;
        Ok(self.output(OP, value, &[x], |out| Node::MeanPool { x, mask, out }))
    }

    /// Row `index` of every sequence: `x [B, T, D] -> [B, D]`.
    pub fn select_token(&mut self, x: Var, index: usize) -> Result<Var> {
        const OP: &str = SELECT_TOKEN;
        let (b, t, d) = btd(OP, self.value(x))?;
        if index >= t {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "token {index} is past the sequence of x {}",
                    self.value(x).shape()
                ),
            });
        }
        let xd = self.dense(OP, x)?;
        let value = self.alloc_with(OP, &[b, d], |out| {
            for (row, dst) in out.chunks_exact_mut(d.max(1)).enumerate() {
                let at = (row * t + index) * d;
                dst.copy_from_slice(&xd[at..at + d]);
            }
            Ok(())
        })?;
        Ok(self.output(OP, value, &[x], |out| Node::SelectToken { x, index, out }))
    }
}

/// `dx[b, t] = mask[b, t] * dout[b] / max(sum_t mask[b, t], 1e-9)`.
pub(super) fn mean_pool_backward(
    g: &mut Graph<'_>,
    x: Var,
    mask: &Tensor,
    dout: &Tensor,
) -> Result<()> {
    const OP: &str = MEAN_POOL;
    let dims = *g.value(x).shape();
    let (b, t, d) = btd(OP, g.value(x))?;
    let md = mask.contiguous_data(OP, g.arena)?;
    let dy = dout.contiguous_data(OP, g.arena)?;
    let dx = g.alloc_with(OP, dims.dims(), |dx| {
        Ok(kernel::mean_pool_backward(md, dy, dx, b, t, d)?)
    })?;
    g.accumulate(x, dx)
}

/// `dx` is zero except row `index` of each sequence, which gets `dout`.
pub(super) fn select_token_backward(
    g: &mut Graph<'_>,
    x: Var,
    index: usize,
    dout: &Tensor,
) -> Result<()> {
    const OP: &str = SELECT_TOKEN;
    let dims = *g.value(x).shape();
    let (_, t, d) = btd(OP, g.value(x))?;
    let dy = dout.contiguous_data(OP, g.arena)?;
    let dx = g.alloc_with(OP, dims.dims(), |dx| {
        dx.fill(0.0);
        for (row, src) in dy.chunks_exact(d.max(1)).enumerate() {
            let at = (row * t + index) * d;
            dx[at..at + d].copy_from_slice(src);
        }
        Ok(())
    })?;
    g.accumulate(x, dx)
}

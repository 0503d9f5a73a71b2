//! Elementwise sum of two same-shaped values (the residual connection).

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Error, Result, Tensor};
use smelt_kernels::cpu::elementwise::add;

/// The op's name, in errors and profiles.
pub(super) const OP: &str = "add";

impl Graph<'_> {
    /// `a + b` for two values of the same shape.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        let (at, bt) = (self.value(a), self.value(b));
        if at.dims() != bt.dims() {
            return Err(Error::Shape {
                op: OP,
                detail: format!("a {} and b {} differ", at.shape(), bt.shape()),
            });
        }
        let dims = *at.shape();
        let (ad, bd) = (self.dense(OP, a)?, self.dense(OP, b)?);
        let opts = self.opts;
        let value = self.alloc_with(OP, dims.dims(), |out| Ok(add(ad, bd, out, &opts)?))?;
        Ok(self.output(OP, value, &[a, b], |out| Node::Add { a, b, out }))
    }
}

/// Both inputs receive the output gradient unchanged: its buffer becomes shared.
pub(super) fn backward(g: &mut Graph<'_>, a: Var, b: Var, out: Var, dout: &Tensor) -> Result<()> {
    g.share(out);
    g.accumulate_shared(a, dout.clone())?;
    g.accumulate_shared(b, dout.clone())
}

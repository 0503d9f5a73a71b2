//! Elementwise activations: GELU (HF's exact erf form), tanh (BERT's pooler), ReLU
//! (DistilBERT's classification head).

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Result, Tensor};
use smelt_kernels::cpu::activation as kernel;
use smelt_kernels::cpu::CpuOptions;

/// Which activation a node applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Gelu,
    Tanh,
    Relu,
}

impl Kind {
    /// The activation's op name, in errors and profiles.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Gelu => "gelu",
            Kind::Tanh => "tanh",
            Kind::Relu => "relu",
        }
    }

    fn forward(self, x: &[f32], y: &mut [f32], opts: &CpuOptions) -> smelt_kernels::Result<()> {
        match self {
            Kind::Gelu => kernel::gelu(x, y, opts),
            Kind::Tanh => kernel::tanh(x, y, opts),
            Kind::Relu => kernel::relu(x, y, opts),
        }
    }
}

impl Graph<'_> {
    /// `0.5 * x * (1 + erf(x / sqrt(2)))`, elementwise (HF's "gelu").
    pub fn gelu(&mut self, x: Var) -> Result<Var> {
        self.activation(Kind::Gelu, x)
    }

    /// `tanh(x)`, elementwise.
    pub fn tanh(&mut self, x: Var) -> Result<Var> {
        self.activation(Kind::Tanh, x)
    }

    /// `max(x, 0)`, elementwise.
    pub fn relu(&mut self, x: Var) -> Result<Var> {
        self.activation(Kind::Relu, x)
    }

    fn activation(&mut self, kind: Kind, x: Var) -> Result<Var> {
        let dims = *self.value(x).shape();
        let xd = self.dense(kind.name(), x)?;
        let opts = self.opts;
        let value =
            self.alloc_with(
                kind.name(),
                dims.dims(),
                |y| Ok(kind.forward(xd, y, &opts)?),
            )?;
        Ok(
            self.output(kind.name(), value, &[x], |out| Node::Activation {
                kind,
                x,
                out,
            }),
        )
    }
}

/// `dx = dy * f'(x)`; tanh's derivative reads its output `1 - y^2`.
pub(super) fn backward(
    g: &mut Graph<'_>,
    kind: Kind,
    x: Var,
    out: Var,
    dout: &Tensor,
) -> Result<()> {
    let dims = *g.value(x).shape();
    let opts = g.opts;
    let dy = dout.contiguous_data(kind.name(), g.arena)?;
    let dx = match kind {
        Kind::Gelu => {
            let xd = g.dense(kind.name(), x)?;
            g.alloc_with(kind.name(), dims.dims(), |dx| {
                Ok(kernel::gelu_backward(xd, dy, dx, &opts)?)
            })?
        }
        Kind::Relu => {
            let xd = g.dense(kind.name(), x)?;
            g.alloc_with(kind.name(), dims.dims(), |dx| {
                Ok(kernel::relu_backward(xd, dy, dx, &opts)?)
            })?
        }
        Kind::Tanh => {
            let yd = g.dense(kind.name(), out)?;
            g.alloc_with(kind.name(), dims.dims(), |dx| {
                Ok(kernel::tanh_backward(yd, dy, dx, &opts)?)
            })?
        }
    };
    g.accumulate(x, dx)
}

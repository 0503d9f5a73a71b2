//! Linear layer `y = x W^T + b` with HF's `[out, in]` weight layout, used without a copy.

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Error, Result, Tensor};
use smelt_kernels::cpu::elementwise::sum_rows;
use smelt_kernels::cpu::gemm::{sgemm, sgemm_bias, MatMut, MatRef};

const OP: &str = "linear";

/// `(rows, in, out)` of `x [.., in]` times `w [out, in]`, or an error naming both shapes.
fn sizes(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<(usize, usize, usize)> {
    let error = |detail: String| Error::Shape {
        op: OP,
        detail: format!("x {} and weight {}: {detail}", x.shape(), w.shape()),
    };
    let &[out_f, in_f] = w.dims() else {
        return Err(error("the weight must be [out, in]".into()));
    };
    let Some(&x_in) = x.dims().last() else {
        return Err(error("x must be [.., in]".into()));
    };
    if x_in != in_f {
        return Err(error(format!(
            "x has {x_in} features, the weight takes {in_f}"
        )));
    }
    if let Some(b) = b {
        if b.dims() != [out_f] {
            return Err(error(format!("bias {} must be [{out_f}]", b.shape())));
        }
    }
    Ok((x.numel() / in_f.max(1), in_f, out_f))
}

/// The weight as a GEMM operand `[out, in]`, through its strides.
fn weight<'a>(w: &Tensor, data: &'a [f32]) -> MatRef<'a> {
    let s = w.strides();
    MatRef::strided(data, w.dims()[0], w.dims()[1], s[0], s[1])
}

impl Graph<'_> {
    /// `x [.., in] -> [.., out]`: `x W^T + b` for a weight `w [out, in]` (any strides) and an
    /// optional bias `b [out]`.
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        let (xt, wt) = (self.value(x), self.value(w));
        let (rows, _, out_f) = sizes(xt, wt, b.map(|b| self.value(b)))?;
        let mut dims = [0; crate::MAX_RANK];
        let rank = xt.dims().len();
        dims[..rank].copy_from_slice(xt.dims());
        dims[rank - 1] = out_f;
        let xd = self.dense(OP, x)?;
        let wd = wt.data(self.arena)?.get(wt.offset()..).unwrap_or(&[]);
        let bd = match b {
            Some(b) => Some(self.dense(OP, b)?),
            None => None,
        };
        let opts = self.opts;
        let in_f = xt.dims()[rank - 1];
        let value = self.alloc_with(OP, &dims[..rank], |y| {
            let c = MatMut::row_major(y, rows, out_f);
            let x = MatRef::row_major(xd, rows, in_f);
            let w = weight(wt, wd).t();
            match bd {
                Some(bias) => sgemm_bias(1.0, x, w, bias, 0.0, c, &opts)?,
                None => sgemm(1.0, x, w, 0.0, c, &opts)?,
            }
            Ok(())
        })?;
        let inputs = [x, w];
        let record = |out| Node::Linear { x, w, b, out };
        Ok(match b {
            Some(b) => self.output(value, &[x, w, b], record),
            None => self.output(value, &inputs, record),
        })
    }
}

/// `dx = dy W`, `dW = dy^T x`, `db = sum over rows of dy`.
pub(super) fn backward(
    g: &mut Graph<'_>,
    x: Var,
    w: Var,
    b: Option<Var>,
    dout: &Tensor,
) -> Result<()> {
    let (xt, wt) = (g.value(x).clone(), g.value(w).clone());
    let (rows, in_f, out_f) = sizes(&xt, &wt, None)?;
    let opts = g.opts;
    let arena = g.arena;
    let dy = dout.contiguous_data(OP, arena)?;
    let dy_mat = MatRef::row_major(dy, rows, out_f);
    if g.needs_grad(x) {
        let wd = wt.data(arena)?.get(wt.offset()..).unwrap_or(&[]);
        let dx = g.alloc_with(OP, xt.dims(), |dx| {
            let c = MatMut::row_major(dx, rows, in_f);
            Ok(sgemm(1.0, dy_mat, weight(&wt, wd), 0.0, c, &opts)?)
        })?;
        g.accumulate(x, dx)?;
    }
    if g.needs_grad(w) {
        let xd = g.dense(OP, x)?;
        let dw = g.alloc_with(OP, &[out_f, in_f], |dw| {
            let c = MatMut::row_major(dw, out_f, in_f);
            let x = MatRef::row_major(xd, rows, in_f);
            Ok(sgemm(1.0, dy_mat.t(), x, 0.0, c, &opts)?)
        })?;
        g.accumulate(w, dw)?;
    }
    if let Some(b) = b.filter(|&b| g.needs_grad(b)) {
        let db = g.alloc_with(OP, &[out_f], |db| Ok(sum_rows(dy, db, rows, out_f, &opts)?))?;
        g.accumulate(b, db)?;
    }
    Ok(())
}

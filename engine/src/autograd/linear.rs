//! Linear layer `y = x W^T + b` with HF's `[out, in]` weight layout, used without a copy.

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Error, Result, Tensor};
use smelt_kernels::cpu::elementwise::sum_rows;
use smelt_kernels::cpu::gemm::{sgemm, sgemm_bias, sgemm_prepacked, MatMut, MatRef, PackedB};

/// The op's name, in errors and profiles.
pub(super) const OP: &str = "linear";

/// `(rows, in, out)` of `x [.., in]` times `w [out, in]` (`rows` the product of x's leading
/// dims), or an error naming both shapes.
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
    // The product of the leading dims, not numel / in: that is 0 when `in` is 0, while the
    // output still has rows (each the bias).
    let lead = &x.dims()[..x.dims().len() - 1];
    let rows = lead
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| error("the rows of x overflow usize".into()))?;
    Ok((rows, in_f, out_f))
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
        self.linear_with(x, w, None, b)
    }

    /// [`Graph::linear`] whose forward multiplies by `packed`, `w` packed beforehand
    /// ([`PackedB::new`] of `W^T`; see `Model::prepack`), instead of packing `w` again: the
    /// same values (the same panels and kernel), a fifth less time for 128 rows. The backward
    /// reads `w` as always, so `packed` must hold `w`'s current values. A packing for other
    /// sizes or another kernel than this graph's options is not used (the product packs `w`).
    pub fn linear_prepacked(
        &mut self,
        x: Var,
        w: Var,
        packed: &PackedB,
        b: Option<Var>,
    ) -> Result<Var> {
        self.linear_with(x, w, Some(packed), b)
    }

    /// [`Graph::linear`], through `packed` when it fits.
    fn linear_with(
        &mut self,
        x: Var,
        w: Var,
        packed: Option<&PackedB>,
        b: Option<Var>,
    ) -> Result<Var> {
        let (xt, wt) = (self.value(x), self.value(w));
        let (rows, _, out_f) = sizes(xt, wt, b.map(|b| self.value(b)))?;
        let mut dims = [0; crate::MAX_RANK];
        let rank = xt.dims().len();
        dims[..rank].copy_from_slice(xt.dims());
        dims[rank - 1] = out_f;
        let xd = self.dense(OP, x)?;
        let wd = wt.view_data(OP, self.arena)?;
        let bd = match b {
            Some(b) => Some(self.dense(OP, b)?),
            None => None,
        };
        let opts = self.opts;
        let in_f = xt.dims()[rank - 1];
        let packed = packed.filter(|p| (p.k(), p.n(), p.isa()) == (in_f, out_f, opts.isa));
        let value = self.alloc_with(OP, &dims[..rank], |y| {
            // With in = 0 the GEMM's k is 0 and it writes C = bias.
            let c = MatMut::row_major(y, rows, out_f);
            let x = MatRef::row_major(xd, rows, in_f);
            let w = weight(wt, wd).t();
            match (packed, bd) {
                (Some(packed), bias) => sgemm_prepacked(1.0, x, packed, bias, 0.0, c, &opts)?,
                (None, Some(bias)) => sgemm_bias(1.0, x, w, bias, 0.0, c, &opts)?,
                (None, None) => sgemm(1.0, x, w, 0.0, c, &opts)?,
            }
            Ok(())
        })?;
        let inputs = [x, w];
        let record = |out| Node::Linear { x, w, b, out };
        Ok(match b {
            Some(b) => self.output(OP, value, &[x, w, b], record),
            None => self.output(OP, value, &inputs, record),
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
        let wd = wt.view_data(OP, arena)?;
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

#[cfg(test)]
mod tests {
    use crate::testing::{random_tensor, released_tensor};
    use crate::{Arena, CpuOptions, Graph, Tape, Tensor};
    use smelt_kernels::cpu::gemm::{MatRef, PackedB};

    /// A weight whose arena scope was closed is an error naming `linear` (it named
    /// `Tensor::data`).
    #[test]
    fn a_released_weight_is_an_error_naming_linear() {
        let mut arena = Arena::new();
        let w = released_tensor(&mut arena, &[4, 3]);
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), false);
        let x = g.leaf(random_tensor(&[2, 3], 1), false);
        let w = g.leaf(w, false);
        let err = g.linear(x, w, None).unwrap_err();
        assert!(
            matches!(err, crate::Error::Released { op: "linear", .. }),
            "{err:?}"
        );
    }

    /// The output and every gradient of `sum((x W^T + b) * probe)`, the weight multiplied
    /// through `packed` when it is given (the backward reads `w` either way).
    fn linear_step(packed: Option<&PackedB>, w: &Tensor) -> Vec<Vec<f32>> {
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(2), true);
        let x = g.leaf(random_tensor(&[3, 5, 40], 1), true);
        let wv = g.leaf(w.clone(), true);
        let b = g.leaf(random_tensor(&[70], 3), true);
        let y = match packed {
            Some(packed) => g.linear_prepacked(x, wv, packed, Some(b)).unwrap(),
            None => g.linear(x, wv, Some(b)).unwrap(),
        };
        let loss = g.mul_sum(y, &random_tensor(&[3, 5, 70], 4)).unwrap();
        g.backward(loss).unwrap();
        let mut out = vec![g.value(y).to_vec(&arena).unwrap()];
        for v in [x, wv, b] {
            out.push(g.grad(v).unwrap().to_vec(&arena).unwrap());
        }
        out
    }

    #[test]
    fn a_prepacked_weight_gives_the_same_values_and_gradients() {
        let w = random_tensor(&[70, 40], 2);
        let wd = w.to_vec(&Arena::new()).unwrap();
        let opts = CpuOptions::threads(2);
        let packed = PackedB::new(MatRef::row_major(&wd, 70, 40).t(), &opts).unwrap();
        let want = linear_step(None, &w);
        assert!(linear_step(Some(&packed), &w) == want);
        // The forward does go through the packing: one of 2 W gives the output of 2 W.
        let doubled: Vec<f32> = wd.iter().map(|v| 2.0 * v).collect();
        let packed2 = PackedB::new(MatRef::row_major(&doubled, 70, 40).t(), &opts).unwrap();
        let w2 = Tensor::from_vec(&[70, 40], doubled).unwrap();
        assert!(linear_step(Some(&packed2), &w)[0] == linear_step(None, &w2)[0]);
        // A packing of other sizes (a 70 x 40 B) is not used: the product packs the weight.
        let other = PackedB::new(MatRef::row_major(&wd, 70, 40), &opts).unwrap();
        assert!(linear_step(Some(&other), &w) == want);
    }

    #[test]
    fn no_input_features_give_the_bias_and_zero_gradients() {
        // x [.., 0] times w [3, 0]: every output is the empty sum plus the bias, as in
        // PyTorch, whatever the arena held before.
        for dims in [&[4, 0][..], &[2, 2, 0]] {
            let mut arena = Arena::new();
            arena.alloc(&[64]).unwrap().as_mut_slice().fill(f32::NAN);
            arena.reset();
            let mut tape = Tape::new();
            let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(2), true);
            let x = g.leaf(Tensor::from_vec(dims, vec![]).unwrap(), true);
            let w = g.leaf(Tensor::from_vec(&[3, 0], vec![]).unwrap(), true);
            let bias = [1.0, -2.0, 0.5];
            let b = g.leaf(Tensor::from_vec(&[3], bias.to_vec()).unwrap(), true);
            let y = g.linear(x, w, Some(b)).unwrap();
            let mut out_dims = dims.to_vec();
            *out_dims.last_mut().unwrap() = 3;
            assert_eq!(g.value(y).dims(), &out_dims[..]);
            let got = g.value(y).to_vec(&arena).unwrap();
            assert_eq!(got, bias.repeat(4), "{dims:?}");

            let probe: Vec<f32> = (0..12).map(|i| i as f32).collect();
            let probe = Tensor::from_vec(&out_dims, probe).unwrap();
            let loss = g.mul_sum(y, &probe).unwrap();
            g.backward(loss).unwrap();
            let grad = |v| g.grad(v).unwrap().to_vec(&arena).unwrap();
            assert_eq!(grad(b), vec![18.0, 22.0, 26.0], "{dims:?}");
            assert_eq!(g.grad(x).unwrap().dims(), dims);
            assert_eq!(g.grad(w).unwrap().dims(), &[3, 0]);
        }
    }

    #[test]
    fn no_rows_or_no_outputs_are_fine() {
        // (x, w): no rows, then no output features.
        for (x_dims, out_f) in [([0, 5], 3), ([4, 5], 0)] {
            // NaN in the arena first: the gradients must be written, not found zeroed.
            let mut arena = Arena::new();
            arena.alloc(&[256]).unwrap().as_mut_slice().fill(f32::NAN);
            arena.reset();
            let mut tape = Tape::new();
            let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(2), true);
            let rows = x_dims[0];
            let x = Tensor::from_vec(&x_dims, vec![1.0; rows * 5]).unwrap();
            let x = g.leaf(x, true);
            let w = Tensor::from_vec(&[out_f, 5], vec![1.0; out_f * 5]).unwrap();
            let w = g.leaf(w, true);
            let b = g.leaf(Tensor::from_vec(&[out_f], vec![1.0; out_f]).unwrap(), true);
            let y = g.linear(x, w, Some(b)).unwrap();
            assert_eq!(g.value(y).dims(), &[rows, out_f]);
            let probe = Tensor::from_vec(&[rows, out_f], vec![]).unwrap();
            let loss = g.mul_sum(y, &probe).unwrap();
            g.backward(loss).unwrap();
            let grad = |v| g.grad(v).unwrap().to_vec(&arena).unwrap();
            assert_eq!(grad(x), vec![0.0; rows * 5], "{x_dims:?}");
            assert_eq!(grad(w), vec![0.0; out_f * 5], "{x_dims:?}");
            assert_eq!(grad(b), vec![0.0; out_f], "{x_dims:?}");
        }
    }
}

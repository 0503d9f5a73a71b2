//! Layer norm over the last dimension, fused, saving mean and rstd for its backward; and the
//! same of the sum of two values (a residual connection), with the add in the same sweep.

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Error, Result, Tensor};
use smelt_kernels::cpu::layernorm::{layer_norm, layer_norm_backward, layer_norm_residual};

/// The op's name, in errors and profiles.
pub(super) const OP: &str = "layer_norm";
/// The residual form's name, in errors and profiles.
pub(super) const RESIDUAL_OP: &str = "layer_norm_residual";

/// `(rows, cols)` of `x [.., cols]` normalised with `gamma`, `beta` of `[cols]`, or an error
/// of the op `op` naming the shapes.
fn sizes(op: &'static str, x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<(usize, usize)> {
    let cols = x.dims().last().copied().unwrap_or(0);
    if x.dims().is_empty() || gamma.dims() != [cols] || beta.dims() != [cols] {
        return Err(Error::Shape {
            op,
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
        let (rows, cols) = sizes(OP, xt, gt, bt)?;
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

    /// [`Graph::layer_norm`] of `x + residual` (two values of the same shape `[.., C]`), the
    /// add made in the same sweep over the rows. When recorded, the op keeps the sum for its
    /// backward, whose `dx` is the gradient of both `x` and `residual`; otherwise the sum is
    /// never stored.
    pub fn layer_norm_residual(
        &mut self,
        x: Var,
        residual: Var,
        gamma: Var,
        beta: Var,
        eps: f32,
    ) -> Result<Var> {
        const OP: &str = RESIDUAL_OP;
        let (xt, rt) = (self.value(x), self.value(residual));
        if xt.dims() != rt.dims() {
            return Err(Error::Shape {
                op: OP,
                detail: format!("x {} and residual {} differ", xt.shape(), rt.shape()),
            });
        }
        let (rows, cols) = sizes(OP, xt, self.value(gamma), self.value(beta))?;
        let dims = *xt.shape();
        let (xd, rd) = (self.dense(OP, x)?, self.dense(OP, residual)?);
        let (gd, bd) = (self.dense(OP, gamma)?, self.dense(OP, beta)?);
        let opts = self.opts;
        let arena = self.arena;
        let record = self.records(&[x, residual, gamma, beta]);
        let mut saved = if record {
            let stats = (arena.alloc(&[rows])?, arena.alloc(&[rows])?);
            Some((arena.alloc(dims.dims())?, stats))
        } else {
            None
        };
        let value = self.alloc_with(OP, dims.dims(), |y| {
            let (sum, stats) = match saved.as_mut() {
                Some((sum, (m, r))) => (
                    Some(sum.as_mut_slice()),
                    Some((m.as_mut_slice(), r.as_mut_slice())),
                ),
                None => (None, None),
            };
            layer_norm_residual(xd, rd, sum, gd, bd, y, stats, rows, cols, eps, &opts)?;
            Ok(())
        })?;
        let out = self.push_value(OP, value, record);
        if let Some((sum, (mean, rstd))) = saved {
            self.record(Node::LayerNormResidual {
                x,
                residual,
                gamma,
                beta,
                sum: sum.into_tensor(),
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
    let (rows, cols) = sizes(OP, g.value(x), g.value(gamma), g.value(beta))?;
    let xt = g.value(x).contiguous_for(OP, g.arena)?;
    let dx = normalisation_backward(g, OP, &xt, [rows, cols], [gamma, beta], [mean, rstd], dout)?;
    g.accumulate(x, dx)
}

/// The backward of [`Graph::layer_norm_residual`]: that of the layer norm of the saved `sum`,
/// whose `dx` both `x` and `residual` receive.
#[allow(clippy::too_many_arguments)]
pub(super) fn residual_backward(
    g: &mut Graph<'_>,
    [x, residual]: [Var; 2],
    gamma: Var,
    beta: Var,
    sum: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dout: &Tensor,
) -> Result<()> {
    let (rows, cols) = sizes(RESIDUAL_OP, sum, g.value(gamma), g.value(beta))?;
    let ds = normalisation_backward(
        g,
        RESIDUAL_OP,
        sum,
        [rows, cols],
        [gamma, beta],
        [mean, rstd],
        dout,
    )?;
    // `ds` is fresh, held by no gradient: `x` must not pool it before `residual` reads it.
    g.accumulate_then_share(x, ds.clone())?;
    g.accumulate_shared(residual, ds)
}

/// The layer norm backward of the normalised rows `x` (contiguous `[rows, cols]`, of the
/// shape of `dout`): accumulates the gradients of `gamma` and `beta` and returns `dx`.
fn normalisation_backward(
    g: &mut Graph<'_>,
    op: &'static str,
    x: &Tensor,
    [rows, cols]: [usize; 2],
    [gamma, beta]: [Var; 2],
    [mean, rstd]: [&Tensor; 2],
    dout: &Tensor,
) -> Result<Tensor> {
    let dims = *dout.shape();
    let arena = g.arena;
    let opts = g.opts;
    let dy = dout.contiguous_data(op, arena)?;
    let xd = x.contiguous_data(op, arena)?;
    let (md, rd) = (
        mean.contiguous_data(op, arena)?,
        rstd.contiguous_data(op, arena)?,
    );
    let gd = g.dense(op, gamma)?;
    let mut dgamma = arena.alloc(&[cols])?;
    let mut dbeta = arena.alloc(&[cols])?;
    let dx = g.alloc_with(op, dims.dims(), |dx| {
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
    g.accumulate(gamma, dgamma.into_tensor())?;
    g.accumulate(beta, dbeta.into_tensor())?;
    Ok(dx)
}

#[cfg(test)]
mod tests {
    use crate::testing::random_tensor;
    use crate::{Arena, CpuOptions, Error, Graph, Tape, Tensor};

    /// The output and the gradients of `(x, residual, gamma, beta)` of `layer_norm` of `x +
    /// residual` under `loss = sum(y * probe)`, fused or as an add and a layer norm; with
    /// `same`, the residual is `x` itself.
    fn run(fused: bool, residual: &Tensor, same: bool, recording: bool) -> Vec<Vec<f32>> {
        let dims = [2, 3, 17];
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(2), recording);
        let x = g.leaf(random_tensor(&dims, 1), true);
        let r = if same {
            x
        } else {
            g.leaf(residual.clone(), true)
        };
        let gamma = g.leaf(random_tensor(&[17], 3), true);
        let beta = g.leaf(random_tensor(&[17], 4), true);
        let y = if fused {
            g.layer_norm_residual(x, r, gamma, beta, 1e-12).unwrap()
        } else {
            let sum = g.add(x, r).unwrap();
            g.layer_norm(sum, gamma, beta, 1e-12).unwrap()
        };
        let mut out = vec![g.value(y).to_vec(&arena).unwrap()];
        if recording {
            let loss = g.mul_sum(y, &random_tensor(&dims, 5)).unwrap();
            g.backward(loss).unwrap();
            for v in [x, r, gamma, beta] {
                out.push(g.grad(v).unwrap().to_vec(&arena).unwrap());
            }
        }
        out
    }

    #[test]
    fn residual_form_matches_an_add_then_a_layer_norm() {
        // A contiguous residual, a transposed view of one, and x itself as the residual (its
        // gradient then arrives twice); with and without recording.
        let plain = random_tensor(&[2, 3, 17], 2);
        let strided = random_tensor(&[2, 17, 3], 2).transpose(1, 2).unwrap();
        for (residual, same) in [(&plain, false), (&strided, false), (&plain, true)] {
            for recording in [true, false] {
                let fused = run(true, residual, same, recording);
                let composed = run(false, residual, same, recording);
                assert_eq!(fused.len(), if recording { 5 } else { 1 });
                assert_eq!(fused, composed, "same {same} recording {recording}");
            }
        }
    }

    /// The gradients of `(x, r0, w, gamma, beta)` under `loss = sum(z * probe)` for
    /// `z = layer_norm(x + r0 W^T) + gelu(x)` (with `same`, `layer_norm(x + x)`), fused or
    /// composed: `x` is used again after the norm, so its gradient exists when the norm's
    /// backward hands it `ds`, and the linear's backward then allocates a buffer of `ds`'s size.
    fn reused_input(fused: bool, same: bool) -> Vec<Vec<f32>> {
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(2), true);
        let x = g.leaf(random_tensor(&[6, 17], 1), true);
        let r0 = g.leaf(random_tensor(&[6, 17], 2), true);
        let w = g.leaf(random_tensor(&[17, 17], 3), true);
        let gamma = g.leaf(random_tensor(&[17], 4), true);
        let beta = g.leaf(random_tensor(&[17], 5), true);
        let r = if same {
            x
        } else {
            g.linear(r0, w, None).unwrap()
        };
        let h = if fused {
            g.layer_norm_residual(x, r, gamma, beta, 1e-12).unwrap()
        } else {
            let sum = g.add(x, r).unwrap();
            g.layer_norm(sum, gamma, beta, 1e-12).unwrap()
        };
        let y = g.gelu(x).unwrap();
        let z = g.add(h, y).unwrap();
        let loss = g.mul_sum(z, &random_tensor(&[6, 17], 6)).unwrap();
        g.backward(loss).unwrap();
        let mut grads = vec![g.grad(x).unwrap().to_vec(&arena).unwrap()];
        if !same {
            grads.push(g.grad(r0).unwrap().to_vec(&arena).unwrap());
            grads.push(g.grad(w).unwrap().to_vec(&arena).unwrap());
        }
        for v in [gamma, beta] {
            grads.push(g.grad(v).unwrap().to_vec(&arena).unwrap());
        }
        grads
    }

    #[test]
    fn residual_sum_of_an_input_used_again_keeps_every_gradient() {
        for same in [false, true] {
            let fused = reused_input(true, same);
            let composed = reused_input(false, same);
            for (i, (a, b)) in fused.iter().zip(&composed).enumerate() {
                let worst = a
                    .iter()
                    .zip(b)
                    .map(|(p, q)| (p - q).abs() / (1.0 + q.abs()))
                    .fold(0.0f32, |m, e| if e.is_nan() || e > m { e } else { m });
                assert!(worst <= 1e-5, "same {same}, gradient {i}: {worst}");
            }
        }
    }

    #[test]
    fn residual_of_another_shape_is_an_error_naming_both() {
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), true);
        let x = g.leaf(random_tensor(&[2, 4], 1), true);
        let r = g.leaf(random_tensor(&[4, 2], 2), true);
        let w = g.leaf(Tensor::from_vec(&[4], vec![1.0; 4]).unwrap(), true);
        let b = g.leaf(Tensor::from_vec(&[4], vec![0.0; 4]).unwrap(), true);
        match g.layer_norm_residual(x, r, w, b, 1e-5) {
            Err(Error::Shape { op, detail }) => {
                assert_eq!(op, "layer_norm_residual");
                assert!(
                    detail.contains("[2, 4]") && detail.contains("[4, 2]"),
                    "{detail}"
                );
            }
            other => panic!("expected a shape error, got {other:?}"),
        }
    }
}

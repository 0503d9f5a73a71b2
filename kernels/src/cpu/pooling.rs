//! Sentence-embedding pooling over the tokens of `[batch, seq, dim]` hidden states, as
//! sentence-transformers' `Pooling` module: masked mean, masked max and the first (CLS) token.
//!
//! `mask` is `[batch, seq]` (1 for a token, 0 for padding; other values weight the mean),
//! outputs are `[batch, dim]`, all row-major. The outputs are small (`batch x dim`), so these
//! are plain single-threaded loops, in the order PyTorch's expressions spell out (each product
//! rounded, sums in token order), and serve as their own reference: the tests check them
//! against f64 sums.

use crate::cpu::check;
use crate::{Error, Result};
use std::ops::Range;

/// The clamp of the mask sum in the mean (sentence-transformers' `torch.clamp(min=1e-9)`).
const MIN_MASK_SUM: f32 = 1e-9;

/// `out[b, :] = sum_t mask[b, t] * x[b, t, :] / max(sum_t mask[b, t], 1e-9)`: the masked mean
/// over tokens (a fully masked row gives zeros).
///
/// Errors when `x` does not hold `batch * seq * dim` values, `mask` `batch * seq` or `out`
/// `batch * dim`.
pub fn mean_pool(
    x: &[f32],
    mask: &[f32],
    out: &mut [f32],
    batch: usize,
    seq: usize,
    dim: usize,
) -> Result<()> {
    const OP: &str = "mean_pool";
    let d = Dims { batch, seq, dim };
    d.check(OP, ("x", x.len()), Some(mask.len()), ("out", out.len()))?;
    for b in 0..batch {
        let o = &mut out[d.pooled(b)];
        o.fill(0.0);
        for t in 0..seq {
            let m = mask[b * seq + t];
            for (acc, &v) in o.iter_mut().zip(&x[d.token(b, t)]) {
                *acc += m * v;
            }
        }
        let denom = mask_sum(&mask[d.sequence(b)]);
        for acc in o.iter_mut() {
            *acc /= denom;
        }
    }
    Ok(())
}

/// The gradient of [`mean_pool`] w.r.t. `x`: `dx[b, t, :] = dout[b, :] / max(sum_t mask[b, t],
/// 1e-9) * mask[b, t]`. `dx` is overwritten.
///
/// Errors when `mask` does not hold `batch * seq` values, `dout` `batch * dim` or `dx`
/// `batch * seq * dim`.
pub fn mean_pool_backward(
    mask: &[f32],
    dout: &[f32],
    dx: &mut [f32],
    batch: usize,
    seq: usize,
    dim: usize,
) -> Result<()> {
    const OP: &str = "mean_pool_backward";
    let d = Dims { batch, seq, dim };
    d.check(OP, ("dx", dx.len()), Some(mask.len()), ("dout", dout.len()))?;
    for b in 0..batch {
        let denom = mask_sum(&mask[d.sequence(b)]);
        let g = &dout[d.pooled(b)];
        for t in 0..seq {
            let m = mask[b * seq + t];
            for (dxj, &gj) in dx[d.token(b, t)].iter_mut().zip(g) {
                *dxj = gj / denom * m;
            }
        }
    }
    Ok(())
}

/// `out[b, j] = max_t x'[b, t, j]` with `x' = x` where `mask[b, t] != 0` and `-1e9` where it is
/// 0 (sentence-transformers' max pooling); NaN propagates.
///
/// Errors when a length does not match (as [`mean_pool`]) or `seq` is 0 with a non-empty
/// batch.
pub fn max_pool(
    x: &[f32],
    mask: &[f32],
    out: &mut [f32],
    batch: usize,
    seq: usize,
    dim: usize,
) -> Result<()> {
    const OP: &str = "max_pool";
    let d = Dims { batch, seq, dim };
    d.check(OP, ("x", x.len()), Some(mask.len()), ("out", out.len()))?;
    d.check_token(OP)?;
    let value = |b: usize, t: usize, j: usize| {
        if mask[b * seq + t] == 0.0 {
            -1e9
        } else {
            x[(b * seq + t) * dim + j]
        }
    };
    for b in 0..batch {
        for (j, o) in out[d.pooled(b)].iter_mut().enumerate() {
            *o = (1..seq).fold(value(b, 0, j), |m, t| {
                let v = value(b, t, j);
                if v > m || v.is_nan() {
                    v
                } else {
                    m
                }
            });
        }
    }
    Ok(())
}

/// `out[b, :] = x[b, 0, :]`: the first token's hidden state.
///
/// Errors when `x` does not hold `batch * seq * dim` values or `out` `batch * dim`, or when
/// `seq` is 0 with a non-empty batch.
pub fn cls_pool(x: &[f32], out: &mut [f32], batch: usize, seq: usize, dim: usize) -> Result<()> {
    const OP: &str = "cls_pool";
    let d = Dims { batch, seq, dim };
    d.check(OP, ("x", x.len()), None, ("out", out.len()))?;
    d.check_token(OP)?;
    for b in 0..batch {
        out[d.pooled(b)].copy_from_slice(&x[d.token(b, 0)]);
    }
    Ok(())
}

/// `max(sum_t mask[t], 1e-9)`, summed in order in f32; a NaN sum stays NaN, as with
/// `torch.clamp` (`f32::max` would give 1e-9 and make the other tokens' gradients finite).
fn mask_sum(mask: &[f32]) -> f32 {
    let sum = mask.iter().sum::<f32>();
    if sum < MIN_MASK_SUM {
        MIN_MASK_SUM
    } else {
        sum
    }
}

/// The sizes of a call: `batch` sequences of `seq` tokens of `dim` values.
#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    seq: usize,
    dim: usize,
}

impl Dims {
    /// The named `[batch, seq, dim]` operand, the `[batch, seq]` mask (when there is one) and
    /// the named `[batch, dim]` operand.
    fn check(
        self,
        op: &'static str,
        tokens: (&'static str, usize),
        mask: Option<usize>,
        pooled: (&'static str, usize),
    ) -> Result<()> {
        let Dims { batch, seq, dim } = self;
        let bs = check::product(op, "batch x seq", batch, seq)?;
        let bsd = check::product(op, "batch x seq x dim", bs, dim)?;
        let bd = check::product(op, "batch x dim", batch, dim)?;
        let shape = format_args!("batch x seq x dim = {batch} x {seq} x {dim}");
        check::lens(op, shape, bsd, &[tokens])?;
        if let Some(mask) = mask {
            check::lens(op, shape, bs, &[("mask", mask)])?;
        }
        check::lens(op, shape, bd, &[pooled])
    }

    /// Max and CLS pooling need at least one token.
    fn check_token(self, op: &'static str) -> Result<()> {
        let Dims { batch, seq, dim } = self;
        if seq == 0 && batch > 0 {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "batch x seq x dim = {batch} x 0 x {dim}: there is no token to pool"
                ),
            });
        }
        Ok(())
    }

    /// Sequence `b` of a `[batch, seq]` mask.
    fn sequence(self, b: usize) -> Range<usize> {
        b * self.seq..(b + 1) * self.seq
    }

    /// Token `t` of sequence `b` of a `[batch, seq, dim]` operand.
    fn token(self, b: usize, t: usize) -> Range<usize> {
        let at = (b * self.seq + t) * self.dim;
        at..at + self.dim
    }

    /// Sequence `b` of a `[batch, dim]` operand.
    fn pooled(self, b: usize) -> Range<usize> {
        b * self.dim..(b + 1) * self.dim
    }
}

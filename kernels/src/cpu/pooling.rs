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
    check_shapes(
        "mean_pool",
        ("x", x.len()),
        Some(mask.len()),
        ("out", out.len()),
        batch,
        seq,
        dim,
    )?;
    for b in 0..batch {
        let o = &mut out[b * dim..(b + 1) * dim];
        o.fill(0.0);
        for t in 0..seq {
            let m = mask[b * seq + t];
            let row = &x[(b * seq + t) * dim..][..dim];
            for (acc, &v) in o.iter_mut().zip(row) {
                *acc += m * v;
            }
        }
        let denom = mask_sum(&mask[b * seq..(b + 1) * seq]);
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
    check_shapes(
        "mean_pool_backward",
        ("dx", dx.len()),
        Some(mask.len()),
        ("dout", dout.len()),
        batch,
        seq,
        dim,
    )?;
    for b in 0..batch {
        let denom = mask_sum(&mask[b * seq..(b + 1) * seq]);
        let g = &dout[b * dim..(b + 1) * dim];
        for t in 0..seq {
            let m = mask[b * seq + t];
            let row = &mut dx[(b * seq + t) * dim..][..dim];
            for (d, &gj) in row.iter_mut().zip(g) {
                *d = gj / denom * m;
            }
        }
    }
    Ok(())
}

/// `out[b, j] = max_t x'[b, t, j]` with `x' = x` where `mask[b, t] != 0` and `-1e9` where it is
/// 0 (sentence-transformers' max pooling); NaN propagates.
///
/// Errors when a length does not match (as [`mean_pool`]) or `seq` is 0.
pub fn max_pool(
    x: &[f32],
    mask: &[f32],
    out: &mut [f32],
    batch: usize,
    seq: usize,
    dim: usize,
) -> Result<()> {
    const OP: &str = "max_pool";
    check_shapes(
        OP,
        ("x", x.len()),
        Some(mask.len()),
        ("out", out.len()),
        batch,
        seq,
        dim,
    )?;
    check_seq(OP, batch, seq, dim)?;
    let value = |b: usize, t: usize, j: usize| {
        if mask[b * seq + t] == 0.0 {
            -1e9
        } else {
            x[(b * seq + t) * dim + j]
        }
    };
    for b in 0..batch {
        for (j, o) in out[b * dim..(b + 1) * dim].iter_mut().enumerate() {
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
/// `seq` is 0.
pub fn cls_pool(x: &[f32], out: &mut [f32], batch: usize, seq: usize, dim: usize) -> Result<()> {
    const OP: &str = "cls_pool";
    check_shapes(
        OP,
        ("x", x.len()),
        None,
        ("out", out.len()),
        batch,
        seq,
        dim,
    )?;
    check_seq(OP, batch, seq, dim)?;
    for b in 0..batch {
        out[b * dim..(b + 1) * dim].copy_from_slice(&x[b * seq * dim..][..dim]);
    }
    Ok(())
}

/// `max(sum_t mask[t], 1e-9)`, summed in order in f32.
fn mask_sum(mask: &[f32]) -> f32 {
    mask.iter().sum::<f32>().max(MIN_MASK_SUM)
}

/// The `[batch, seq, dim]` operand, the `[batch, seq]` mask (when there is one) and the
/// `[batch, dim]` operand.
fn check_shapes(
    op: &'static str,
    tokens: (&'static str, usize),
    mask: Option<usize>,
    pooled: (&'static str, usize),
    batch: usize,
    seq: usize,
    dim: usize,
) -> Result<()> {
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
fn check_seq(op: &'static str, batch: usize, seq: usize, dim: usize) -> Result<()> {
    if seq == 0 && batch > 0 {
        return Err(Error::Shape {
            op,
            detail: format!("batch x seq x dim = {batch} x 0 x {dim}: there is no token to pool"),
        });
    }
    Ok(())
}

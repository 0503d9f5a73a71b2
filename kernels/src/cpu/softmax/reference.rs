//! Plain f64 softmax and softmax backward, by the definition: the fast kernels are tested
//! against these.

use super::{check_backward, check_forward, Mask};
use crate::Result;

/// [`softmax`](super::softmax) computed in f64 and rounded once to f32: `y[r, :] =
/// softmax(scale * x[r, :] + mask row r / repeat)`, all-zero rows where every logit is `-inf`.
///
/// The same shapes and errors as [`softmax`](super::softmax), without the ISA check.
pub fn softmax_reference(
    x: &[f32],
    y: &mut [f32],
    rows: usize,
    cols: usize,
    scale: f32,
    mask: Option<Mask<'_>>,
) -> Result<()> {
    check_forward("softmax_reference", x.len(), y.len(), rows, cols, mask)?;
    for r in 0..rows {
        let logit = |j: usize| {
            let m = mask.map_or(0.0, |m| m.values[r / m.repeat * cols + j] as f64);
            scale as f64 * x[r * cols + j] as f64 + m
        };
        let max = (0..cols).map(logit).fold(f64::NEG_INFINITY, f64::max);
        let row = &mut y[r * cols..(r + 1) * cols];
        if max == f64::NEG_INFINITY {
            row.fill(0.0);
            continue;
        }
        let sum: f64 = (0..cols).map(|j| (logit(j) - max).exp()).sum();
        for (j, out) in row.iter_mut().enumerate() {
            *out = ((logit(j) - max).exp() / sum) as f32;
        }
    }
    Ok(())
}

/// [`softmax_backward`](super::softmax_backward) computed in f64 and rounded once to f32:
/// `dx = scale * y * (dy - sum_j dy[j] y[j])` per row.
///
/// The same shapes and errors as [`softmax_backward`](super::softmax_backward), without the
/// ISA check.
pub fn softmax_backward_reference(
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    rows: usize,
    cols: usize,
    scale: f32,
) -> Result<()> {
    check_backward(
        "softmax_backward_reference",
        y.len(),
        dy.len(),
        dx.len(),
        rows,
        cols,
    )?;
    for r in 0..rows {
        let span = r * cols..(r + 1) * cols;
        let (y, dy) = (&y[span.clone()], &dy[span.clone()]);
        let dot: f64 = y.iter().zip(dy).map(|(&a, &b)| a as f64 * b as f64).sum();
        for ((out, &yj), &gj) in dx[span].iter_mut().zip(y).zip(dy) {
            *out = (scale as f64 * yj as f64 * (gj as f64 - dot)) as f32;
        }
    }
    Ok(())
}

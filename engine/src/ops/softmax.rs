//! Softmax over the last dimension, with an optional additive mask, and its backward.

use crate::{Arena, Error, Result, Shape, Tensor};
use smelt_kernels::cpu::softmax::{self as kernel, Mask};
use smelt_kernels::cpu::CpuOptions;

/// `(rows, cols)` of `x` seen as rows of its last dimension, or an error for a scalar.
fn rows_cols(op: &'static str, x: &Shape) -> Result<(usize, usize)> {
    match x.dims().split_last() {
        Some((&cols, outer)) => Ok((outer.iter().product(), cols)),
        None => Err(Error::Shape {
            op,
            detail: format!("x {x} is a scalar; softmax needs at least one dimension"),
        }),
    }
}

/// `softmax(scale * x + mask)` along the last dimension of `x` (any shape `[.., n]`).
///
/// `mask` is `(m, repeat)`: `m` has shape `[.., n]` and row `r` of `x` (seen as `[rows, n]`)
/// adds row `r / repeat` of `m` (attention scores `[B*H*T, T]` with a key mask `[B, T]` use
/// `repeat = H*T`); `-inf` removes an entry, and a fully masked row gives zeros. Views are
/// made contiguous first (a copy only when they are not). Returns a fresh tensor of x's
/// shape; errors name the shapes when the mask's last dimension or row count does not fit.
pub fn softmax(
    arena: &Arena,
    x: &Tensor,
    scale: f32,
    mask: Option<(&Tensor, usize)>,
    opts: &CpuOptions,
) -> Result<Tensor> {
    const OP: &str = "softmax";
    let (rows, cols) = rows_cols(OP, x.shape())?;
    let x = x.contiguous_for(OP, arena)?;
    let mask = match mask {
        Some((m, repeat)) => {
            check_mask(x.shape(), m.shape(), rows, cols, repeat)?;
            Some((m.contiguous_for(OP, arena)?, repeat))
        }
        None => None,
    };
    let mask = match &mask {
        Some((m, repeat)) => Some(Mask {
            values: m.contiguous_data(OP, arena)?,
            repeat: *repeat,
        }),
        None => None,
    };
    let mut out = arena.alloc_shape(*x.shape())?;
    kernel::softmax(
        x.contiguous_data(OP, arena)?,
        out.as_mut_slice(),
        rows,
        cols,
        scale,
        mask,
        opts,
    )?;
    Ok(out.into_tensor())
}

/// The mask must have rows of `cols`, at least `ceil(rows / repeat)` of them, and `repeat >= 1`.
fn check_mask(x: &Shape, m: &Shape, rows: usize, cols: usize, repeat: usize) -> Result<()> {
    let error = |detail: String| {
        Err(Error::Shape {
            op: "softmax",
            detail: format!("x {x} and mask {m} with repeat {repeat}: {detail}"),
        })
    };
    let Some((&mask_cols, outer)) = m.dims().split_last() else {
        return error("the mask is a scalar; it needs rows of the last dimension".into());
    };
    if mask_cols != cols {
        return error(format!("last dimensions {cols} and {mask_cols} differ"));
    }
    if repeat == 0 {
        return error("repeat must be at least 1".into());
    }
    let mask_rows: usize = outer.iter().product();
    let needed = rows.div_ceil(repeat);
    if mask_rows < needed {
        return error(format!(
            "the mask has {mask_rows} rows but {rows} rows of x need {needed}"
        ));
    }
    Ok(())
}

/// The gradient of [`softmax`] with respect to its (unscaled) input `x`:
/// `dx = scale * y * (dy - sum(dy * y))` along the last dimension.
///
/// `y` is the forward output and `dy` the gradient with respect to it, both of the same
/// shape `[.., n]`; returns a fresh `dx` of that shape. The mask needs no gradient (masked
/// entries have `y = 0`, so their gradient is zero). Errors when the shapes differ.
pub fn softmax_backward(
    arena: &Arena,
    y: &Tensor,
    dy: &Tensor,
    scale: f32,
    opts: &CpuOptions,
) -> Result<Tensor> {
    const OP: &str = "softmax_backward";
    if y.shape() != dy.shape() {
        return Err(Error::Shape {
            op: OP,
            detail: format!("y {} and dy {}: shapes differ", y.shape(), dy.shape()),
        });
    }
    let (rows, cols) = rows_cols(OP, y.shape())?;
    let y = y.contiguous_for(OP, arena)?;
    let dy = dy.contiguous_for(OP, arena)?;
    let mut dx = arena.alloc_shape(*y.shape())?;
    kernel::softmax_backward(
        y.contiguous_data(OP, arena)?,
        dy.contiguous_data(OP, arena)?,
        dx.as_mut_slice(),
        rows,
        cols,
        scale,
        opts,
    )?;
    Ok(dx.into_tensor())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{random_tensor, released_tensor};
    use approx::assert_abs_diff_eq;

    /// A strided view of a tensor whose arena scope was closed is an error naming the op
    /// (it named `contiguous`, the gather the op calls).
    #[test]
    fn a_released_strided_input_is_an_error_naming_softmax() {
        let mut arena = Arena::new();
        let view = released_tensor(&mut arena, &[3, 4])
            .transpose(0, 1)
            .unwrap();
        let opts = CpuOptions::threads(1);
        let err = softmax(&arena, &view, 1.0, None, &opts).unwrap_err();
        assert!(
            matches!(err, Error::Released { op: "softmax", .. }),
            "{err:?}"
        );
        let err = softmax_backward(&arena, &view, &view, 1.0, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Released {
                    op: "softmax_backward",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    /// Row-wise softmax in f64 of `scale * x + mask[r / repeat]`.
    fn naive(x: &[f32], cols: usize, scale: f32, mask: Option<(&[f32], usize)>) -> Vec<f32> {
        let mut out = Vec::new();
        for (r, row) in x.chunks(cols).enumerate() {
            let logits: Vec<f64> = row
                .iter()
                .enumerate()
                .map(|(c, &v)| {
                    let m = mask.map_or(0.0, |(m, repeat)| m[(r / repeat) * cols + c]);
                    scale as f64 * v as f64 + m as f64
                })
                .collect();
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            out.extend(logits.iter().map(|l| ((l - max).exp() / sum) as f32));
        }
        out
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_abs_diff_eq!(g, w, epsilon = 1e-5);
        }
    }

    #[test]
    fn matches_naive_with_mask_and_strided_input() {
        let arena = Arena::new();
        let opts = CpuOptions::default();
        let (heads, t) = (3, 7);
        let x = random_tensor(&[2, heads, t, t], 1).transpose(2, 3).unwrap();
        let mut mask = vec![0.0; 2 * t];
        mask[3] = f32::NEG_INFINITY;
        mask[t + 6] = -1e4;
        let m = Tensor::from_vec(&[2, t], mask.clone()).unwrap();
        let y = softmax(&arena, &x, 0.5, Some((&m, heads * t)), &opts).unwrap();
        assert_eq!(y.dims(), &[2, heads, t, t]);
        let xs = x.to_vec(&arena).unwrap();
        let want = naive(&xs, t, 0.5, Some((&mask, heads * t)));
        assert_close(&y.to_vec(&arena).unwrap(), &want);
        assert_eq!(y.to_vec(&arena).unwrap()[3], 0.0);

        let plain = softmax(&arena, &x, 1.0, None, &opts).unwrap();
        assert_close(&plain.to_vec(&arena).unwrap(), &naive(&xs, t, 1.0, None));
    }

    #[test]
    fn backward_matches_the_formula() {
        let arena = Arena::new();
        let opts = CpuOptions::default();
        let cols = 9;
        let x = random_tensor(&[4, cols], 2);
        let dy = random_tensor(&[4, cols], 3);
        let scale = 0.25;
        let y = softmax(&arena, &x, scale, None, &opts).unwrap();
        let dx = softmax_backward(&arena, &y, &dy, scale, &opts).unwrap();
        let (ys, dys) = (y.to_vec(&arena).unwrap(), dy.to_vec(&arena).unwrap());
        let mut want = Vec::new();
        for (yr, dyr) in ys.chunks(cols).zip(dys.chunks(cols)) {
            let dot: f32 = yr.iter().zip(dyr).map(|(a, b)| a * b).sum();
            want.extend(yr.iter().zip(dyr).map(|(y, d)| scale * y * (d - dot)));
        }
        assert_close(&dx.to_vec(&arena).unwrap(), &want);
    }

    #[test]
    fn shape_errors_name_the_shapes() {
        let arena = Arena::new();
        let opts = CpuOptions::default();
        let x = random_tensor(&[6, 4], 4);
        let err = |m: &Tensor, repeat| {
            softmax(&arena, &x, 1.0, Some((m, repeat)), &opts)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&random_tensor(&[2, 5], 5), 3),
            "softmax: x [6, 4] and mask [2, 5] with repeat 3: last dimensions 4 and 5 differ"
        );
        assert_eq!(
            err(&random_tensor(&[2, 4], 5), 2),
            "softmax: x [6, 4] and mask [2, 4] with repeat 2: the mask has 2 rows but 6 rows of x need 3"
        );
        assert!(err(&random_tensor(&[2, 4], 5), 0).ends_with("repeat must be at least 1"));
        let scalar = random_tensor(&[], 6);
        assert!(softmax(&arena, &scalar, 1.0, None, &opts).is_err());
        let err = softmax_backward(&arena, &x, &x.t().unwrap(), 1.0, &opts)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "softmax_backward: y [6, 4] and dy [4, 6]: shapes differ"
        );
    }
}

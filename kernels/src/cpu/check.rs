//! Argument checks shared by the slice kernels (and the GPU launchers). A size failure is an
//! [`Error::Shape`] naming the op, the operand and the sizes, a bad scalar an
//! [`Error::Value`]; a passing check allocates nothing.

use crate::{Error, Result};
use std::fmt;

/// Layer norm's `eps` must be finite and not negative: a NaN or negative one makes every
/// `rstd = 1 / sqrt(var + eps)` NaN (or infinite) instead of failing.
pub(crate) fn eps(op: &'static str, eps: f32) -> Result<()> {
    if eps.is_finite() && eps >= 0.0 {
        return Ok(());
    }
    Err(Error::Value {
        op,
        detail: format!("eps = {eps}: expected a finite value >= 0"),
    })
}

/// `a * b`, or an error naming the product (`what`, e.g. `rows x cols`) when it overflows.
pub(crate) fn product(
    op: &'static str,
    what: impl fmt::Display,
    a: usize,
    b: usize,
) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| Error::Shape {
        op,
        detail: format!("{what} = {a} x {b} overflows usize"),
    })
}

/// Every named slice length in `operands` must be `needed`, the element count of `shape`
/// (e.g. `rows x cols = 3 x 4`).
pub(crate) fn lens(
    op: &'static str,
    shape: fmt::Arguments<'_>,
    needed: usize,
    operands: &[(&'static str, usize)],
) -> Result<()> {
    match operands.iter().find(|&&(_, len)| len != needed) {
        Some(&(name, len)) => Err(Error::Shape {
            op,
            detail: format!("{name} has {len} elements, but {shape} needs {needed}"),
        }),
        None => Ok(()),
    }
}

/// Every named slice must hold `n` values, `n` being the size called `what` (e.g. `cols`).
pub(crate) fn vector(
    op: &'static str,
    what: &str,
    n: usize,
    operands: &[(&'static str, usize)],
) -> Result<()> {
    lens(op, format_args!("{what} = {n}"), n, operands)
}

/// Every named slice must hold exactly `rows * cols` values, the sizes being called `names`
/// (e.g. `["vocab", "dim"]`).
pub(crate) fn matrix(
    op: &'static str,
    [rows_name, cols_name]: [&str; 2],
    rows: usize,
    cols: usize,
    operands: &[(&'static str, usize)],
) -> Result<()> {
    let needed = product(op, format_args!("{rows_name} x {cols_name}"), rows, cols)?;
    lens(
        op,
        format_args!("{rows_name} x {cols_name} = {rows} x {cols}"),
        needed,
        operands,
    )
}

/// Every named slice must hold exactly `rows * cols` values.
pub(crate) fn rows_cols(
    op: &'static str,
    rows: usize,
    cols: usize,
    operands: &[(&'static str, usize)],
) -> Result<()> {
    matrix(op, ["rows", "cols"], rows, cols, operands)
}

/// Elementwise operands: every named slice must be as long as the first.
pub(crate) fn same_len(op: &'static str, operands: &[(&'static str, usize)]) -> Result<()> {
    let Some(&(first, needed)) = operands.first() else {
        return Ok(());
    };
    match operands.iter().find(|&&(_, len)| len != needed) {
        Some(&(name, len)) => Err(Error::Shape {
            op,
            detail: format!("{name} has {len} elements but {first} has {needed}"),
        }),
        None => Ok(()),
    }
}

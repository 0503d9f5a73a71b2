//! Row-wise, numerically stable softmax and its backward, on contiguous row-major rows.
//!
//! `y[r, :] = softmax(scale * x[r, :] + mask row)`: the row maximum is subtracted before
//! exponentiating, so any finite logits work (`±1e4` included). The kernels (in `kernel`)
//! make three passes over each row: max, exp + sum, scale; see there. Rows are split into
//! contiguous chunks, one per task, on [`CpuOptions::threads`] threads; one thread (or a small
//! problem) runs on the caller and never touches the pool. A successful call allocates
//! nothing itself (on more than one thread, rayon's job queue allocates a block about once
//! every 64 calls).
//!
//! Fully masked rows (every logit `-inf`) have no distribution; they give an all-zero row
//! (never NaN), and their gradient is zero, as if the row had been dropped. Logits of `+inf`
//! or NaN give NaN rows.
//!
//! [`softmax_reference`] and [`softmax_backward_reference`] are plain f64 versions that the
//! fast ones are tested against.

mod kernel;
mod reference;

pub(crate) use kernel::row_max;
pub use reference::{softmax_backward_reference, softmax_reference};

use crate::cpu::gemm::cache::CacheSizes;
use crate::cpu::options::CpuOptions;
use crate::cpu::threads::{for_each_task, Shared};
use crate::{Error, Result};
use kernel::{Backward, Forward, Kernels};

/// Additive mask broadcast over rows: row `r` of the input adds mask row `r / repeat`
/// (so attention scores [B*H*T, T] with a key-padding mask [B, T] use repeat = H*T).
#[derive(Clone, Copy, Debug)]
pub struct Mask<'a> {
    /// Mask rows of `cols` values each, row-major; `-inf` removes an entry.
    pub values: &'a [f32],
    /// Consecutive input rows sharing one mask row (at least 1).
    pub repeat: usize,
}

/// y[r, :] = softmax(scale * x[r, :] + mask row) for `rows` rows of `cols` (row-major, contiguous).
///
/// Errors when `x` or `y` does not hold exactly `rows * cols` values, when the mask is not a
/// whole number of rows of `cols`, has too few rows for `rows / repeat` or has `repeat == 0`,
/// or when `opts.isa` is not supported by this CPU.
pub fn softmax(
    x: &[f32],
    y: &mut [f32],
    rows: usize,
    cols: usize,
    scale: f32,
    mask: Option<Mask<'_>>,
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "softmax";
    opts.validate(OP)?;
    check_forward(OP, x.len(), y.len(), rows, cols, mask)?;
    run_forward(x.as_ptr(), y.as_mut_ptr(), rows, cols, scale, mask, opts);
    Ok(())
}

/// In-place variant: x is replaced by its softmax.
///
/// The same shapes, mask rules and errors as [`softmax`], with `x` in the role of both `x`
/// and `y`.
pub fn softmax_inplace(
    x: &mut [f32],
    rows: usize,
    cols: usize,
    scale: f32,
    mask: Option<Mask<'_>>,
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "softmax_inplace";
    opts.validate(OP)?;
    check_forward(OP, x.len(), x.len(), rows, cols, mask)?;
    let p = x.as_mut_ptr();
    run_forward(p, p, rows, cols, scale, mask, opts);
    Ok(())
}

/// Backward: dx = scale * y * (dy - sum_j(dy * y)) per row (gradient w.r.t. the *unscaled* input x).
///
/// `y` is the forward output, `dy` the gradient of the loss w.r.t. `y`; all three are
/// `rows x cols` row-major. The mask needs no gradient (it is a constant), and masked entries
/// get zero gradient because their `y` is zero. Errors when a slice does not hold exactly
/// `rows * cols` values or when `opts.isa` is not supported by this CPU.
pub fn softmax_backward(
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    rows: usize,
    cols: usize,
    scale: f32,
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "softmax_backward";
    opts.validate(OP)?;
    check_backward(OP, y.len(), dy.len(), dx.len(), rows, cols)?;
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let backward = Kernels::for_isa(opts.isa).backward;
    let job = Shared(Backward {
        y: y.as_ptr(),
        dy: dy.as_ptr(),
        dx: dx.as_mut_ptr(),
        cols,
        scale,
    });
    let (tasks, chunk) = row_chunks(rows, cols, opts.threads);
    for_each_task(opts.threads, tasks, |t| {
        let start = (t * chunk).min(rows);
        let end = (start + chunk).min(rows);
        // SAFETY: every slice holds `rows * cols` values (checked), task `t` touches rows
        // `start..end` only, disjoint from every other task's, `dx` is borrowed mutably so it
        // aliases neither input, and the ISA was validated.
        unsafe { backward(&job.get(), start, end) }
    });
    Ok(())
}

/// Elements per task below which extra threads cost more than they save.
const MIN_TASK_LEN: usize = 1 << 14;

/// Splits `rows` rows of `cols` into `(tasks, rows per task)`: contiguous chunks, at most
/// `threads` of them, none smaller than [`MIN_TASK_LEN`] elements unless there is only one.
fn row_chunks(rows: usize, cols: usize, threads: usize) -> (usize, usize) {
    let min_rows = MIN_TASK_LEN.div_ceil(cols.max(1));
    let tasks = threads.min(rows / min_rows).max(1);
    (tasks, rows.div_ceil(tasks))
}

/// The forward over checked pointers (`y` may equal `x`).
fn run_forward(
    x: *const f32,
    y: *mut f32,
    rows: usize,
    cols: usize,
    scale: f32,
    mask: Option<Mask<'_>>,
    opts: &CpuOptions,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    let forward = Kernels::for_isa(opts.isa).forward;
    let job = Shared(Forward {
        x,
        y,
        cols,
        scale,
        mask: mask.map_or(std::ptr::null(), |m| m.values.as_ptr()),
        repeat: mask.map_or(1, |m| m.repeat),
        // Input and output that outgrow L2 stream from farther away: fetch input rows ahead
        // (in L2 the prefetches would only cost issue slots: 3-5% measured).
        prefetch: 2 * rows * cols * std::mem::size_of::<f32>() > CacheSizes::detect().l2,
    });
    let (tasks, chunk) = row_chunks(rows, cols, opts.threads);
    for_each_task(opts.threads, tasks, |t| {
        let start = (t * chunk).min(rows);
        let end = (start + chunk).min(rows);
        // SAFETY: `x` and `y` hold `rows * cols` values and the mask `ceil(rows / repeat)`
        // rows of `cols` (checked by the caller); task `t` reads and writes rows `start..end`
        // only, disjoint from every other task's; when `y == x` each element is read before
        // it is written; the ISA was validated.
        unsafe { forward(&job.get(), start, end) }
    });
}

/// `rows * cols`, or an error naming the shape when it overflows.
fn element_count(op: &'static str, rows: usize, cols: usize) -> Result<usize> {
    rows.checked_mul(cols).ok_or_else(|| Error::Shape {
        op,
        detail: format!("rows x cols = {rows} x {cols} overflows usize"),
    })
}

/// Every slice in `lens` (named) must hold exactly `rows * cols` values.
fn check_lens(
    op: &'static str,
    rows: usize,
    cols: usize,
    lens: &[(&'static str, usize)],
) -> Result<()> {
    let needed = element_count(op, rows, cols)?;
    for &(name, len) in lens {
        if len != needed {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "{name} has {len} elements, but rows x cols = {rows} x {cols} needs {needed}"
                ),
            });
        }
    }
    Ok(())
}

/// The checks of a forward call: slice lengths and the mask's shape.
fn check_forward(
    op: &'static str,
    x_len: usize,
    y_len: usize,
    rows: usize,
    cols: usize,
    mask: Option<Mask<'_>>,
) -> Result<()> {
    check_lens(op, rows, cols, &[("x", x_len), ("y", y_len)])?;
    let Some(mask) = mask else {
        return Ok(());
    };
    let len = mask.values.len();
    let shape_error = |detail: String| Err(Error::Shape { op, detail });
    if mask.repeat == 0 {
        return shape_error(format!(
            "mask repeat is 0 for {rows} x {cols} rows: it must be at least 1"
        ));
    }
    if (cols == 0 && len != 0) || (cols != 0 && len % cols != 0) {
        return shape_error(format!(
            "mask has {len} values, not a whole number of rows of cols = {cols}"
        ));
    }
    let needed_rows = rows.div_ceil(mask.repeat);
    let have_rows = len.checked_div(cols).unwrap_or(needed_rows);
    if have_rows < needed_rows {
        return shape_error(format!(
            "mask has {have_rows} rows of {cols}, but {rows} x {cols} rows with repeat {} need {needed_rows}",
            mask.repeat
        ));
    }
    Ok(())
}

/// The checks of a backward call: slice lengths.
fn check_backward(
    op: &'static str,
    y_len: usize,
    dy_len: usize,
    dx_len: usize,
    rows: usize,
    cols: usize,
) -> Result<()> {
    check_lens(
        op,
        rows,
        cols,
        &[("y", y_len), ("dy", dy_len), ("dx", dx_len)],
    )
}

//! Softmax cross-entropy over rows of logits, with an ignored target value, as PyTorch's
//! `F.cross_entropy(logits, targets, ignore_index=..., reduction="mean")`.
//!
//! Per counted row (target not `ignore_index`): `loss_r = logsumexp(row) - row[target]`, with
//! `logsumexp = max + ln(sum_j e^(x[j] - max))` (the maximum is subtracted first, so any
//! finite logits work); the SIMD `exp` of [`math`](crate::cpu::math) computes the sum in f32,
//! and `loss_r` is formed and summed in f64. The loss is the mean over counted rows.
//!
//! The forward's sum must not depend on the thread count, yet it runs on threads: the rows are
//! cut into at most `BLOCKS` blocks of consecutive rows, a cut that depends on `rows` alone;
//! tasks take ranges of blocks and leave one f64 sum per block in an array on the caller's
//! stack, which the caller then adds in block order. The backward is per row (rows split among
//! tasks): `dlogits = dloss / count * (softmax(row) - onehot(target))`, zeros for ignored
//! rows, in three passes over the row like [`softmax`](crate::cpu::softmax).
//!
//! [`cross_entropy_reference`] and [`cross_entropy_backward_reference`] are the f64 versions
//! the fast ones are tested against.

use crate::cpu::check;
use crate::cpu::math::exp_nonpositive;
use crate::cpu::options::CpuOptions;
use crate::cpu::simd::SimdF32;
use crate::cpu::softmax::row_max;
use crate::cpu::split::{load_n, run_simd, store_n, SimdJob};
use crate::{Error, Result};
use std::ops::Range;

/// The most blocks the forward cuts the rows into (the length of its array of partial sums).
const BLOCKS: usize = 64;
/// Vectors of terms each partial sum of [`exp_sum`] adds before joining the row's total.
const SUM_BLOCK: usize = 32;

/// The result of [`cross_entropy`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossEntropy {
    /// Mean of the counted rows' losses; NaN when no row is counted (as PyTorch's 0 / 0).
    pub loss: f32,
    /// Rows whose target is not the ignored value.
    pub count: usize,
}

/// Mean softmax cross-entropy of `rows` rows of `cols` logits (row-major) against one target
/// class per row: the mean over rows whose target is not `ignore_index` of
/// `logsumexp(logits[r, :]) - logits[r, target_r]`, summed in f64.
///
/// When every row is ignored the loss is NaN (0 / 0), as in PyTorch, and `count` is 0. The
/// result is the same on any number of threads. Errors when `logits` does not hold
/// `rows * cols` values or `targets` `rows`, when a target that is not `ignore_index` lies
/// outside `0..cols` (the message names the row, the target and `cols`), or when `opts` is
/// invalid.
pub fn cross_entropy(
    logits: &[f32],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
    opts: &CpuOptions,
) -> Result<CrossEntropy> {
    const OP: &str = "cross_entropy";
    opts.validate(OP)?;
    let count = check_shapes(OP, logits.len(), targets, None, rows, cols, ignore_index)?;
    let block_rows = rows.div_ceil(BLOCKS).max(1);
    let mut partial = [0.0f64; BLOCKS];
    let job = Forward {
        logits: logits.as_ptr(),
        targets: targets.as_ptr(),
        partial: partial.as_mut_ptr(),
        rows,
        cols,
        block_rows,
        ignore_index,
    };
    let blocks = rows.div_ceil(block_rows);
    // SAFETY: validated options and shapes; every counted row's target is in `0..cols`; each
    // task writes the partial sums of its own blocks, `blocks <= BLOCKS`.
    unsafe { run_simd(&job, opts, blocks, block_rows * cols, 1) };
    let total: f64 = partial[..blocks].iter().sum();
    Ok(CrossEntropy {
        loss: (total / count as f64) as f32,
        count,
    })
}

/// The gradient of [`cross_entropy`]'s loss times `dloss`: `dlogits[r, :] = dloss / count *
/// (softmax(logits[r, :]) - onehot(target_r))` for counted rows, zeros for ignored ones (all
/// zeros when no row is counted). `dlogits` is overwritten.
///
/// The same shapes and errors as [`cross_entropy`], with `dlogits` the shape of `logits`.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_backward(
    logits: &[f32],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
    dloss: f32,
    dlogits: &mut [f32],
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "cross_entropy_backward";
    opts.validate(OP)?;
    let count = check_shapes(
        OP,
        logits.len(),
        targets,
        Some(dlogits.len()),
        rows,
        cols,
        ignore_index,
    )?;
    let job = Backward {
        logits: logits.as_ptr(),
        targets: targets.as_ptr(),
        dlogits: dlogits.as_mut_ptr(),
        cols,
        ignore_index,
        factor: (dloss as f64 / count as f64) as f32,
    };
    // SAFETY: validated options and shapes; every counted row's target is in `0..cols`; each
    // task writes its own rows of `dlogits`, which is borrowed mutably.
    unsafe { run_simd(&job, opts, rows, cols, 1) };
    Ok(())
}

/// One forward call; tasks own ranges of blocks of `block_rows` rows.
struct Forward {
    logits: *const f32,
    targets: *const i64,
    /// One sum per block.
    partial: *mut f64,
    rows: usize,
    cols: usize,
    block_rows: usize,
    ignore_index: i64,
}

impl SimdJob for Forward {
    #[inline(always)]
    unsafe fn run<V: SimdF32>(&self, blocks: Range<usize>) {
        for b in blocks {
            let start = b * self.block_rows;
            let mut sum = 0.0f64;
            for r in start..(start + self.block_rows).min(self.rows) {
                let target = *self.targets.add(r);
                if target == self.ignore_index {
                    continue;
                }
                let x = self.logits.add(r * self.cols);
                let max = row_max::<V>(x, self.cols);
                let exps = exp_sum::<V, false>(x, std::ptr::null_mut(), self.cols, max);
                sum += (max as f64 - *x.add(target as usize) as f64) + (exps as f64).ln();
            }
            *self.partial.add(b) = sum;
        }
    }
}

/// One backward call; tasks own ranges of rows.
struct Backward {
    logits: *const f32,
    targets: *const i64,
    dlogits: *mut f32,
    cols: usize,
    ignore_index: i64,
    /// `dloss / count`.
    factor: f32,
}

impl SimdJob for Backward {
    #[inline(always)]
    unsafe fn run<V: SimdF32>(&self, range: Range<usize>) {
        let cols = self.cols;
        for r in range {
            let (x, d) = (self.logits.add(r * cols), self.dlogits.add(r * cols));
            let target = *self.targets.add(r);
            if target == self.ignore_index {
                std::ptr::write_bytes(d, 0, cols);
                continue;
            }
            let max = row_max::<V>(x, cols);
            let sum = exp_sum::<V, true>(x, d, cols, max);
            let f = V::splat(self.factor / sum);
            let mut j = 0;
            while j < cols {
                let n = V::LANES.min(cols - j);
                store_n(d.add(j), n, V::mul(f, load_n(d.add(j), n)));
                j += V::LANES;
            }
            *d.add(target as usize) -= self.factor;
        }
    }
}

/// `sum_j e^(x[j] - max)` over one row, also writing each term to `dst` when `WRITE`.
///
/// Each lane sums blocks of [`SUM_BLOCK`] vectors on their own, then adds the block sums: a
/// 30522-class row adds some 120 block sums of 32 terms per lane rather than 3800 terms in
/// one chain, which keeps the f32 rounding of the sum near 1e-6.
#[inline(always)]
unsafe fn exp_sum<V: SimdF32, const WRITE: bool>(
    x: *const f32,
    dst: *mut f32,
    cols: usize,
    max: f32,
) -> f32 {
    let minus_max = V::splat(-max);
    let whole = cols - cols % V::LANES;
    let mut total = V::zero();
    let mut j = 0;
    while j < whole {
        let block_end = whole.min(j + SUM_BLOCK * V::LANES);
        let mut acc = V::zero();
        while j < block_end {
            let e = exp_nonpositive(V::add(V::load(x.add(j)), minus_max));
            if WRITE {
                V::store(dst.add(j), e);
            }
            acc = V::add(acc, e);
            j += V::LANES;
        }
        total = V::add(total, acc);
    }
    if j < cols {
        // Lanes past the row are filled with -inf: e^-inf = 0 adds nothing.
        let n = cols - j;
        let e = exp_nonpositive(V::add(
            V::load_partial(x.add(j), n, f32::NEG_INFINITY),
            minus_max,
        ));
        if WRITE {
            V::store_partial(dst.add(j), n, e);
        }
        total = V::add(total, e);
    }
    V::reduce_sum(total)
}

/// The shape and target checks; returns the number of counted rows.
fn check_shapes(
    op: &'static str,
    logits: usize,
    targets: &[i64],
    dlogits: Option<usize>,
    rows: usize,
    cols: usize,
    ignore_index: i64,
) -> Result<usize> {
    check::rows_cols(op, rows, cols, &[("logits", logits)])?;
    if let Some(len) = dlogits {
        check::rows_cols(op, rows, cols, &[("dlogits", len)])?;
    }
    check::vector(op, "rows", rows, &[("targets", targets.len())])?;
    let mut count = 0;
    for (r, &t) in targets.iter().enumerate() {
        if t == ignore_index {
            continue;
        }
        if !usize::try_from(t).is_ok_and(|t| t < cols) {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "row {r} has target {t}, outside 0..{cols} (cols = {cols}) and not ignore_index = {ignore_index}"
                ),
            });
        }
        count += 1;
    }
    Ok(count)
}

/// `logsumexp(row) - row[target]` in f64.
fn row_loss_f64(row: &[f32], target: usize) -> f64 {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln() - row[target] as f64
}

/// [`cross_entropy`] in f64 throughout. The same shapes and errors, without options.
pub fn cross_entropy_reference(
    logits: &[f32],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
) -> Result<CrossEntropy> {
    let count = check_shapes(
        "cross_entropy_reference",
        logits.len(),
        targets,
        None,
        rows,
        cols,
        ignore_index,
    )?;
    let total: f64 = (0..rows)
        .filter(|&r| targets[r] != ignore_index)
        .map(|r| row_loss_f64(&logits[r * cols..(r + 1) * cols], targets[r] as usize))
        .sum();
    Ok(CrossEntropy {
        loss: (total / count as f64) as f32,
        count,
    })
}

/// [`cross_entropy_backward`] in f64, rounded once to f32. The same shapes and errors,
/// without options.
pub fn cross_entropy_backward_reference(
    logits: &[f32],
    targets: &[i64],
    rows: usize,
    cols: usize,
    ignore_index: i64,
    dloss: f32,
    dlogits: &mut [f32],
) -> Result<()> {
    let count = check_shapes(
        "cross_entropy_backward_reference",
        logits.len(),
        targets,
        Some(dlogits.len()),
        rows,
        cols,
        ignore_index,
    )?;
    let factor = dloss as f64 / count as f64;
    for r in 0..rows {
        let (row, d) = (
            &logits[r * cols..(r + 1) * cols],
            &mut dlogits[r * cols..(r + 1) * cols],
        );
        if targets[r] == ignore_index {
            d.fill(0.0);
            continue;
        }
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        for (j, (out, &v)) in d.iter_mut().zip(row).enumerate() {
            let onehot = if j == targets[r] as usize { 1.0 } else { 0.0 };
            *out = (factor * ((v as f64 - max).exp() / sum - onehot)) as f32;
        }
    }
    Ok(())
}

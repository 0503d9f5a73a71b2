//! Layer normalisation over the last dimension, and its backward, on contiguous row-major rows.
//!
//! Forward, per row of `cols` values (the row stays in L1 across the three passes):
//! 1. `mean0 = sum(x) / cols`;
//! 2. with `d = x - mean0`: `s1 = sum(d)` and `s2 = sum(d^2)`, then the corrected two-pass
//!    statistics `mean = mean0 + s1 / cols` and `var = max(s2 / cols - (s1 / cols)^2, 0)`
//!    (biased, as PyTorch), `rstd = 1 / sqrt(var + eps)`. Subtracting `mean0` first keeps a
//!    large common offset from cancelling away the variance as `E[x^2] - mean^2` would; the
//!    `s1` correction removes the rounding error of `mean0`, which `rstd` would otherwise
//!    amplify: a constant row gets its mean exactly, hence `y = beta` even with BERT's
//!    `eps = 1e-12` (where `rstd` reaches `1e6`);
//! 3. `y = (x - mean) * rstd * gamma + beta`.
//!
//! [`layer_norm_residual`] normalises `x + residual` (a transformer's residual connection),
//! adding the two rows in pass 1 into the output row (or into a `sum` the backward keeps), so
//! the sum never makes a trip through memory of its own.
//!
//! A finite row whose f32 sums overflow (`|x| ~ 1e38`, or `|x - mean| > ~1.8e19`) gets a
//! non-finite `mean` or `var`; such a row (rare) is redone in f64 like the reference, and so
//! is a row holding an infinity or a NaN (whose outputs are NaN either way).
//!
//! Backward, with `xhat = (x - mean) * rstd` and `g = dy * gamma` (the gradient w.r.t. `xhat`,
//! since `y = xhat * gamma + beta`). `mean` and `rstd` depend on every `x[i]`:
//!
//! ```text
//! d mean / d x[i]  = 1 / N
//! d rstd / d x[i]  = -rstd^3 (x[i] - mean) / N = -rstd^2 xhat[i] / N
//! d xhat[j] / d x[i] = rstd (delta_ij - 1/N) + (x[j] - mean) d rstd / d x[i]
//!                    = rstd (delta_ij - 1/N - xhat[j] xhat[i] / N)
//! dx[i] = sum_j g[j] d xhat[j] / d x[i]
//!       = rstd (g[i] - mean(g) - xhat[i] mean(g * xhat))
//! ```
//!
//! so `dx` takes two passes over the row: the two means, then `dx`. Rows are independent and
//! split among tasks. `dgamma[j] = sum_r dy[r, j] xhat[r, j]` and `dbeta[j] = sum_r dy[r, j]`
//! reduce over rows: a second pass splits the columns among tasks instead, and each task adds
//! its columns' rows in order (one SIMD lane per column), so no scratch memory is needed and
//! the sums are the same on any number of threads.
//!
//! [`layer_norm_reference`] and [`layer_norm_backward_reference`] are the plain f64 versions
//! the fast ones are tested against.

use crate::cpu::check;
use crate::cpu::options::CpuOptions;
use crate::cpu::simd::SimdF32;
use crate::cpu::split::{load_n, run_simd, store_n, ColumnJob, SimdJob, LINE};
use crate::{Error, Result};
use std::ops::Range;

/// Independent accumulators for the row sums, so consecutive adds overlap.
const UNROLL: usize = 4;

/// `y[r, :] = (x[r, :] - mean_r) * rstd_r * gamma + beta` for `rows` rows of `cols`
/// (row-major), with `mean_r` the row mean, `var_r` the biased row variance (divided by
/// `cols`) and `rstd_r = 1 / sqrt(var_r + eps)`.
///
/// `x` and `y` hold `rows * cols` values, `gamma` and `beta` `cols`. `saved`, when given, is
/// `(mean, rstd)` of `rows` values each, written for [`layer_norm_backward`]. Errors when a
/// length does not match, when `cols` is 0, or when `opts` is invalid.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    saved: Option<(&mut [f32], &mut [f32])>,
    rows: usize,
    cols: usize,
    eps: f32,
    opts: &CpuOptions,
) -> Result<()> {
    forward(
        "layer_norm",
        x,
        None,
        gamma,
        beta,
        y,
        saved,
        rows,
        cols,
        eps,
        opts,
    )
}

/// The residual add fused into [`layer_norm`]: `y`, and `saved`, are those of [`layer_norm`]
/// of `x + residual`, computed in one sweep over the rows (the sum is made in the row while it
/// is in L1, never as a tensor of its own).
///
/// `x`, `residual` and `y` hold `rows * cols` values, `gamma` and `beta` `cols`. `sum`, when
/// given (`rows * cols` values), receives `x + residual`: the input [`layer_norm_backward`]
/// takes as its `x`, whose `dx` is the gradient of both `x` and `residual`. Errors as
/// [`layer_norm`].
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_residual(
    x: &[f32],
    residual: &[f32],
    sum: Option<&mut [f32]>,
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    saved: Option<(&mut [f32], &mut [f32])>,
    rows: usize,
    cols: usize,
    eps: f32,
    opts: &CpuOptions,
) -> Result<()> {
    forward(
        "layer_norm_residual",
        x,
        Some((residual, sum)),
        gamma,
        beta,
        y,
        saved,
        rows,
        cols,
        eps,
        opts,
    )
}

/// The checks of both forwards (errors name `op`), then the rows: of `x`, or of `x +
/// residual` when `residual` is given, with where to keep the sum.
#[allow(clippy::too_many_arguments)]
fn forward(
    op: &'static str,
    x: &[f32],
    residual: Option<(&[f32], Option<&mut [f32]>)>,
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    saved: Option<(&mut [f32], &mut [f32])>,
    rows: usize,
    cols: usize,
    eps: f32,
    opts: &CpuOptions,
) -> Result<()> {
    opts.validate(op)?;
    check::eps(op, eps)?;
    let saved_lens = saved.as_ref().map(|(m, r)| [m.len(), r.len()]);
    check_forward(
        op,
        [x.len(), y.len()],
        [gamma.len(), beta.len()],
        saved_lens,
        rows,
        cols,
    )?;
    let (residual, sum) = match residual {
        Some((residual, sum)) => {
            check::rows_cols(op, rows, cols, &[("residual", residual.len())])?;
            if let Some(sum) = &sum {
                check::rows_cols(op, rows, cols, &[("sum", sum.len())])?;
            }
            let sum = sum.map_or(std::ptr::null_mut(), |s| s.as_mut_ptr());
            (residual.as_ptr(), sum)
        }
        None => (std::ptr::null(), std::ptr::null_mut()),
    };
    let (mean, rstd) = match saved {
        Some((m, r)) => (m.as_mut_ptr(), r.as_mut_ptr()),
        None => (std::ptr::null_mut(), std::ptr::null_mut()),
    };
    let job = Forward {
        rows_in: RowsIn {
            x: x.as_ptr(),
            residual,
            sum,
        },
        gamma: gamma.as_ptr(),
        beta: beta.as_ptr(),
        y: y.as_mut_ptr(),
        mean,
        rstd,
        cols,
        eps,
    };
    // SAFETY: validated options and lengths; each task reads and writes its own rows only,
    // and every output is borrowed mutably.
    unsafe { run_simd(&job, opts, rows, cols, 1) };
    Ok(())
}

/// The gradients of [`layer_norm`]: with `xhat = (x - mean) * rstd` per row,
/// `dx = rstd * (dy*gamma - mean_j(dy*gamma) - xhat * mean_j(dy*gamma*xhat))` per row,
/// `dgamma[j] = sum_r dy[r, j] * xhat[r, j]` and `dbeta[j] = sum_r dy[r, j]`.
///
/// `mean` and `rstd` (`rows` values each) are the ones the forward saved; `dy`, `x` and `dx`
/// hold `rows * cols` values, `gamma`, `dgamma` and `dbeta` `cols`. `dx`, `dgamma` and
/// `dbeta` are overwritten (not accumulated into). The column sums are the same on any
/// number of threads. Errors when a length does not match, when `cols` is 0, or when `opts`
/// is invalid.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    rows: usize,
    cols: usize,
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "layer_norm_backward";
    opts.validate(OP)?;
    check_backward(
        OP,
        [dy.len(), x.len(), dx.len()],
        [gamma.len(), dgamma.len(), dbeta.len()],
        [mean.len(), rstd.len()],
        rows,
        cols,
    )?;
    let rows_job = BackwardRows {
        dy: dy.as_ptr(),
        x: x.as_ptr(),
        gamma: gamma.as_ptr(),
        mean: mean.as_ptr(),
        rstd: rstd.as_ptr(),
        dx: dx.as_mut_ptr(),
        cols,
    };
    let cols_job = BackwardColumns {
        dy: dy.as_ptr(),
        x: x.as_ptr(),
        mean: mean.as_ptr(),
        rstd: rstd.as_ptr(),
        dgamma: dgamma.as_mut_ptr(),
        dbeta: dbeta.as_mut_ptr(),
        rows,
        cols,
    };
    // SAFETY: validated options and lengths; the first pass writes each task's own rows of
    // `dx`, the second each task's own columns of `dgamma` and `dbeta`; every output is
    // borrowed mutably.
    unsafe {
        run_simd(&rows_job, opts, rows, cols, 1);
        run_simd(&cols_job, opts, cols, rows, LINE);
    }
    Ok(())
}

/// Where a forward call's rows come from: `x`, or `x + residual`.
#[derive(Clone, Copy)]
struct RowsIn {
    x: *const f32,
    /// Null for a plain layer norm.
    residual: *const f32,
    /// Where `x + residual` is written; null to make it in the output row, which the
    /// normalisation then overwrites.
    sum: *mut f32,
}

/// One forward call; tasks own ranges of rows.
struct Forward {
    rows_in: RowsIn,
    gamma: *const f32,
    beta: *const f32,
    y: *mut f32,
    /// `rows` values each, or both null when the caller keeps no statistics.
    mean: *mut f32,
    rstd: *mut f32,
    cols: usize,
    eps: f32,
}

impl SimdJob for Forward {
    #[inline(always)]
    unsafe fn run<V: SimdF32>(&self, range: Range<usize>) {
        let cols = self.cols;
        let inv_n = 1.0 / cols as f32;
        let RowsIn {
            x: xs,
            residual,
            sum,
        } = self.rows_in;
        for r in range {
            let y = self.y.add(r * cols);
            // The row to normalise, and its sum.
            let (x, total) = if residual.is_null() {
                let x = xs.add(r * cols);
                (x, row_sum::<V>(x, cols))
            } else {
                let to = if sum.is_null() { y } else { sum.add(r * cols) };
                let total = add_rows::<V>(xs.add(r * cols), residual.add(r * cols), to, cols);
                (to.cast_const(), total)
            };
            let mean0 = total * inv_n;
            let (s1, s2) = centered_sums::<V>(x, cols, mean0);
            let shift = s1 / cols as f32;
            let mean = mean0 + shift;
            let var = s2 * inv_n - shift * shift;
            if !(mean.is_finite() && var.is_finite()) {
                let (gamma, beta) = (self.gamma, self.beta);
                let (mean, rstd) = row_f64(x, gamma, beta, y, cols, self.eps);
                if !self.mean.is_null() {
                    *self.mean.add(r) = mean;
                    *self.rstd.add(r) = rstd;
                }
                continue;
            }
            // Rounding can leave a (tiny) negative difference; NaN was caught above.
            let rstd = 1.0 / (var.max(0.0) + self.eps).sqrt();
            if !self.mean.is_null() {
                *self.mean.add(r) = mean;
                *self.rstd.add(r) = rstd;
            }
            let s = V::splat(rstd);
            let mut j = 0;
            while j < cols {
                let n = V::LANES.min(cols - j);
                let xhat = normalized(x.add(j), n, mean, s);
                let out = V::mul_add(
                    xhat,
                    load_n(self.gamma.add(j), n),
                    load_n(self.beta.add(j), n),
                );
                store_n(y.add(j), n, out);
                j += V::LANES;
            }
        }
    }
}

/// Writes `to[j] = a[j] + b[j]` over one row and returns `sum_j to[j]`. `to` may be `a` or
/// `b` (each value is read before it is written).
#[inline(always)]
unsafe fn add_rows<V: SimdF32>(a: *const f32, b: *const f32, to: *mut f32, cols: usize) -> f32 {
    let mut acc = [V::zero(); UNROLL];
    let mut j = 0;
    while j + UNROLL * V::LANES <= cols {
        for (u, s) in acc.iter_mut().enumerate() {
            let k = j + u * V::LANES;
            let v = V::add(V::load(a.add(k)), V::load(b.add(k)));
            V::store(to.add(k), v);
            *s = V::add(*s, v);
        }
        j += UNROLL * V::LANES;
    }
    while j < cols {
        let n = V::LANES.min(cols - j);
        let v = V::add(load_n(a.add(j), n), load_n(b.add(j), n));
        store_n(to.add(j), n, v);
        acc[0] = V::add(acc[0], v);
        j += V::LANES;
    }
    total(acc)
}

/// `sum_j x[j]` over one row.
#[inline(always)]
unsafe fn row_sum<V: SimdF32>(x: *const f32, cols: usize) -> f32 {
    let mut acc = [V::zero(); UNROLL];
    let mut j = 0;
    while j + UNROLL * V::LANES <= cols {
        for (u, a) in acc.iter_mut().enumerate() {
            *a = V::add(*a, V::load(x.add(j + u * V::LANES)));
        }
        j += UNROLL * V::LANES;
    }
    while j < cols {
        acc[0] = V::add(acc[0], load_n(x.add(j), V::LANES.min(cols - j)));
        j += V::LANES;
    }
    total(acc)
}

/// `(sum_j d[j], sum_j d[j]^2)` with `d = x - mean` over one row.
#[inline(always)]
unsafe fn centered_sums<V: SimdF32>(x: *const f32, cols: usize, mean: f32) -> (f32, f32) {
    let m = V::splat(mean);
    let mut s1 = [V::zero(); UNROLL];
    let mut s2 = [V::zero(); UNROLL];
    let mut j = 0;
    while j + UNROLL * V::LANES <= cols {
        for u in 0..UNROLL {
            let d = V::sub(V::load(x.add(j + u * V::LANES)), m);
            s1[u] = V::add(s1[u], d);
            s2[u] = V::mul_add(d, d, s2[u]);
        }
        j += UNROLL * V::LANES;
    }
    while j + V::LANES <= cols {
        let d = V::sub(V::load(x.add(j)), m);
        s1[0] = V::add(s1[0], d);
        s2[0] = V::mul_add(d, d, s2[0]);
        j += V::LANES;
    }
    if j < cols {
        // Lanes past the row are filled with the mean: they add 0.
        let d = V::sub(V::load_partial(x.add(j), cols - j, mean), m);
        s1[1] = V::add(s1[1], d);
        s2[1] = V::mul_add(d, d, s2[1]);
    }
    (total(s1), total(s2))
}

/// The sum of every lane of the `UNROLL` accumulators.
#[inline(always)]
unsafe fn total<V: SimdF32>(a: [V; UNROLL]) -> f32 {
    V::reduce_sum(V::add(V::add(a[0], a[1]), V::add(a[2], a[3])))
}

/// `xhat = (x - mean) * rstd` of the `n` values from `x`, with `s` the row's `rstd` in every
/// lane. Lanes past the row load the mean, so their `xhat` is 0 (not `-mean * rstd`, which
/// overflows to infinity for a large mean and a large `rstd`).
#[inline(always)]
unsafe fn normalized<V: SimdF32>(x: *const f32, n: usize, mean: f32, s: V) -> V {
    let v = if n == V::LANES {
        V::load(x)
    } else {
        V::load_partial(x, n, mean)
    };
    V::mul(V::sub(v, V::splat(mean)), s)
}

/// One row of the forward in f64, as [`layer_norm_reference`]: the slow path for rows whose
/// f32 statistics overflow. Writes `y` and returns `(mean, rstd)` rounded to f32.
///
/// # Safety
/// `x` and `y` hold `cols` values (`y` may be `x`), `gamma` and `beta` `cols` values each.
#[cold]
unsafe fn row_f64(
    x: *const f32,
    gamma: *const f32,
    beta: *const f32,
    y: *mut f32,
    cols: usize,
    eps: f32,
) -> (f32, f32) {
    let (mean, rstd) = stats_f64(std::slice::from_raw_parts(x, cols), eps);
    for j in 0..cols {
        let xhat = (*x.add(j) as f64 - mean) * rstd;
        *y.add(j) = (xhat * *gamma.add(j) as f64 + *beta.add(j) as f64) as f32;
    }
    (mean as f32, rstd as f32)
}

/// `(mean, rstd)` of one row in f64 (two passes).
fn stats_f64(row: &[f32], eps: f32) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps as f64).sqrt())
}

/// The first backward pass: `dx`, rows owned by tasks.
struct BackwardRows {
    dy: *const f32,
    x: *const f32,
    gamma: *const f32,
    mean: *const f32,
    rstd: *const f32,
    dx: *mut f32,
    cols: usize,
}

impl SimdJob for BackwardRows {
    #[inline(always)]
    unsafe fn run<V: SimdF32>(&self, range: Range<usize>) {
        let cols = self.cols;
        let inv_n = 1.0 / cols as f32;
        for r in range {
            let (dy, x, dx) = (
                self.dy.add(r * cols),
                self.x.add(r * cols),
                self.dx.add(r * cols),
            );
            let (mean, s) = (*self.mean.add(r), V::splat(*self.rstd.add(r)));
            let gamma = self.gamma;
            // Pass 1: sum(g) and sum(g * xhat).
            let (mut sum_g, mut sum_gx) = (V::zero(), V::zero());
            let mut j = 0;
            while j < cols {
                let (g, xhat) = g_xhat::<V>(dy, gamma, x, j, V::LANES.min(cols - j), mean, s);
                sum_g = V::add(sum_g, g);
                sum_gx = V::mul_add(g, xhat, sum_gx);
                j += V::LANES;
            }
            let a = V::splat(V::reduce_sum(sum_g) * inv_n);
            let minus_b = V::splat(-V::reduce_sum(sum_gx) * inv_n);
            // Pass 2: dx = rstd * (g - a - xhat * b).
            let mut j = 0;
            while j < cols {
                let n = V::LANES.min(cols - j);
                let (g, xhat) = g_xhat::<V>(dy, gamma, x, j, n, mean, s);
                let t = V::mul_add(xhat, minus_b, V::sub(g, a));
                store_n(dx.add(j), n, V::mul(s, t));
                j += V::LANES;
            }
        }
    }
}

/// `(g, xhat)` of the `n <= V::LANES` columns from `j` of one row: `g = dy * gamma` and
/// `xhat = (x - mean) * rstd`, with `s` holding `rstd`. Lanes past the row load 0 for `dy`,
/// so `g = 0` there, and the mean for `x`, so `xhat = 0` there: a finite `g * xhat` even when
/// `mean * rstd` overflows. (A function, not a closure in `run`: a closure does not inherit
/// the entry point's target features, and one left out of line ran the pass 8-12x slower.)
#[inline(always)]
unsafe fn g_xhat<V: SimdF32>(
    dy: *const f32,
    gamma: *const f32,
    x: *const f32,
    j: usize,
    n: usize,
    mean: f32,
    s: V,
) -> (V, V) {
    let g = V::mul(load_n(dy.add(j), n), load_n(gamma.add(j), n));
    (g, normalized(x.add(j), n, mean, s))
}

/// The second backward pass: `dgamma` and `dbeta`, columns owned by tasks.
struct BackwardColumns {
    dy: *const f32,
    x: *const f32,
    mean: *const f32,
    rstd: *const f32,
    dgamma: *mut f32,
    dbeta: *mut f32,
    rows: usize,
    cols: usize,
}

impl ColumnJob for BackwardColumns {
    /// `dgamma` and `dbeta` of `B` vectors of columns from `j` on, the last holding `last`
    /// columns: each lane walks its column's rows in order, whatever block it falls in.
    #[inline(always)]
    unsafe fn columns<V: SimdF32, const B: usize>(&self, j: usize, last: usize) {
        let width = |b: usize| if b + 1 == B { last } else { V::LANES };
        let mut dgamma = [V::zero(); B];
        let mut dbeta = [V::zero(); B];
        for r in 0..self.rows {
            let (mean, s) = (*self.mean.add(r), V::splat(*self.rstd.add(r)));
            let (dy, x) = (
                self.dy.add(r * self.cols + j),
                self.x.add(r * self.cols + j),
            );
            for b in 0..B {
                let k = b * V::LANES;
                let g = load_n::<V>(dy.add(k), width(b));
                let xhat = normalized(x.add(k), width(b), mean, s);
                dgamma[b] = V::mul_add(g, xhat, dgamma[b]);
                dbeta[b] = V::add(dbeta[b], g);
            }
        }
        for b in 0..B {
            let k = j + b * V::LANES;
            store_n(self.dgamma.add(k), width(b), dgamma[b]);
            store_n(self.dbeta.add(k), width(b), dbeta[b]);
        }
    }
}

/// The shape checks of a forward call: `[x, y]`, `[gamma, beta]` and, when saved,
/// `[mean, rstd]`.
fn check_forward(
    op: &'static str,
    [x, y]: [usize; 2],
    [gamma, beta]: [usize; 2],
    saved: Option<[usize; 2]>,
    rows: usize,
    cols: usize,
) -> Result<()> {
    check_cols(op, rows, cols)?;
    check::rows_cols(op, rows, cols, &[("x", x), ("y", y)])?;
    check::vector(op, "cols", cols, &[("gamma", gamma), ("beta", beta)])?;
    match saved {
        Some([mean, rstd]) => check::vector(op, "rows", rows, &[("mean", mean), ("rstd", rstd)]),
        None => Ok(()),
    }
}

/// The shape checks of a backward call: `[dy, x, dx]`, `[gamma, dgamma, dbeta]`,
/// `[mean, rstd]`.
fn check_backward(
    op: &'static str,
    [dy, x, dx]: [usize; 3],
    [gamma, dgamma, dbeta]: [usize; 3],
    [mean, rstd]: [usize; 2],
    rows: usize,
    cols: usize,
) -> Result<()> {
    check_cols(op, rows, cols)?;
    check::rows_cols(op, rows, cols, &[("dy", dy), ("x", x), ("dx", dx)])?;
    check::vector(
        op,
        "cols",
        cols,
        &[("gamma", gamma), ("dgamma", dgamma), ("dbeta", dbeta)],
    )?;
    check::vector(op, "rows", rows, &[("mean", mean), ("rstd", rstd)])
}

/// A row of no columns has no mean.
fn check_cols(op: &'static str, rows: usize, cols: usize) -> Result<()> {
    if cols == 0 {
        return Err(Error::Shape {
            op,
            detail: format!("rows x cols = {rows} x 0: a layer norm needs at least one column"),
        });
    }
    Ok(())
}

/// [`layer_norm`] in f64 (statistics, normalisation and affine), rounded once to f32; `saved`
/// gets the f64 mean and rstd rounded to f32.
///
/// The same shapes and errors as [`layer_norm`], without options.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_reference(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    mut saved: Option<(&mut [f32], &mut [f32])>,
    rows: usize,
    cols: usize,
    eps: f32,
) -> Result<()> {
    let saved_lens = saved.as_ref().map(|(m, r)| [m.len(), r.len()]);
    check_forward(
        "layer_norm_reference",
        [x.len(), y.len()],
        [gamma.len(), beta.len()],
        saved_lens,
        rows,
        cols,
    )?;
    for r in 0..rows {
        let span = r * cols..(r + 1) * cols;
        let row = &x[span.clone()];
        let (mean, rstd) = stats_f64(row, eps);
        if let Some((m, s)) = saved.as_mut() {
            m[r] = mean as f32;
            s[r] = rstd as f32;
        }
        for (j, out) in y[span].iter_mut().enumerate() {
            let xhat = (row[j] as f64 - mean) * rstd;
            *out = (xhat * gamma[j] as f64 + beta[j] as f64) as f32;
        }
    }
    Ok(())
}

/// [`layer_norm_backward`] in f64 from the given `mean` and `rstd`, rounded once to f32.
///
/// The same shapes and errors as [`layer_norm_backward`], without options.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward_reference(
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    rows: usize,
    cols: usize,
) -> Result<()> {
    check_backward(
        "layer_norm_backward_reference",
        [dy.len(), x.len(), dx.len()],
        [gamma.len(), dgamma.len(), dbeta.len()],
        [mean.len(), rstd.len()],
        rows,
        cols,
    )?;
    let xhat = |r: usize, j: usize| (x[r * cols + j] as f64 - mean[r] as f64) * rstd[r] as f64;
    let g = |r: usize, j: usize| dy[r * cols + j] as f64 * gamma[j] as f64;
    for r in 0..rows {
        let a = (0..cols).map(|j| g(r, j)).sum::<f64>() / cols as f64;
        let b = (0..cols).map(|j| g(r, j) * xhat(r, j)).sum::<f64>() / cols as f64;
        for j in 0..cols {
            dx[r * cols + j] = (rstd[r] as f64 * (g(r, j) - a - xhat(r, j) * b)) as f32;
        }
    }
    for j in 0..cols {
        dgamma[j] = (0..rows)
            .map(|r| dy[r * cols + j] as f64 * xhat(r, j))
            .sum::<f64>() as f32;
        dbeta[j] = (0..rows).map(|r| dy[r * cols + j] as f64).sum::<f64>() as f32;
    }
    Ok(())
}

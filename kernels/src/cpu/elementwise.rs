//! Elementwise arithmetic on slices, a dot product in f64 and the column sum of a bias
//! gradient (the bias itself is added by `gemm::sgemm_bias`, in the product's pass over C).
//!
//! [`add`], [`add_assign`] and [`scale`] run one SIMD pattern, `zip_map`, over contiguous
//! chunks on [`CpuOptions::threads`] threads; each output is one correctly rounded operation,
//! so every ISA and thread count gives the same bits. [`sum_rows`] (a bias gradient) splits
//! the columns among tasks, and each task adds its columns' rows in order, one lane per
//! column: the result does not depend on the thread count either. [`sum_rows_reference`] is
//! the f64 version it is tested against.

use crate::cpu::check;
use crate::cpu::options::CpuOptions;
use crate::cpu::simd::SimdF32;
use crate::cpu::split::{load_n, run_simd, store_n, ColumnJob, SimdJob, LINE};
use crate::Result;
use std::ops::Range;

/// A lane-wise function of two vectors, applied by [`zip_map`] (unary functions ignore `b`).
pub(crate) trait Lanewise2: Copy {
    /// `f(a, b)` lane-wise.
    ///
    /// # Safety
    /// The CPU supports `V`'s instruction set.
    unsafe fn apply<V: SimdF32>(self, a: V, b: V) -> V;
}

/// One [`zip_map`] call: `out[i] = f(a[i], b[i])`.
struct ZipMap<F> {
    f: F,
    a: *const f32,
    b: *const f32,
    /// May equal `a` or `b`: every element is read before it is written.
    out: *mut f32,
}

impl<F: Lanewise2> SimdJob for ZipMap<F> {
    #[inline(always)]
    unsafe fn run<V: SimdF32>(&self, range: Range<usize>) {
        let mut i = range.start;
        while i + V::LANES <= range.end {
            let v = self.f.apply(V::load(self.a.add(i)), V::load(self.b.add(i)));
            V::store(self.out.add(i), v);
            i += V::LANES;
        }
        if i < range.end {
            let n = range.end - i;
            let v = self
                .f
                .apply::<V>(load_n(self.a.add(i), n), load_n(self.b.add(i), n));
            store_n(self.out.add(i), n, v);
        }
    }
}

/// `out[i] = f(a[i], b[i])` for `i < n` on `opts.threads` threads, in chunks of whole cache
/// lines.
///
/// # Safety
/// `opts` was validated; `a` and `b` are valid for `n` reads and `out` for `n` writes; `out`
/// overlaps neither input, or equals one of them exactly.
pub(crate) unsafe fn zip_map<F: Lanewise2>(
    f: F,
    a: *const f32,
    b: *const f32,
    out: *mut f32,
    n: usize,
    opts: &CpuOptions,
) {
    run_simd(&ZipMap { f, a, b, out }, opts, n, 1, LINE);
}

#[derive(Clone, Copy)]
struct Add;

impl Lanewise2 for Add {
    #[inline(always)]
    unsafe fn apply<V: SimdF32>(self, a: V, b: V) -> V {
        V::add(a, b)
    }
}

#[derive(Clone, Copy)]
struct Scale(f32);

impl Lanewise2 for Scale {
    #[inline(always)]
    unsafe fn apply<V: SimdF32>(self, a: V, _: V) -> V {
        V::mul(V::splat(self.0), a)
    }
}

/// `out = a + b` on slices of equal length.
///
/// Errors when the lengths differ or `opts` is invalid (see [`CpuOptions::validate`]).
pub fn add(a: &[f32], b: &[f32], out: &mut [f32], opts: &CpuOptions) -> Result<()> {
    const OP: &str = "add";
    opts.validate(OP)?;
    check::same_len(OP, &[("a", a.len()), ("b", b.len()), ("out", out.len())])?;
    // SAFETY: validated options, three slices of the same length, `out` borrowed mutably.
    unsafe { zip_map(Add, a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), a.len(), opts) };
    Ok(())
}

/// `acc += b` on slices of equal length.
///
/// Errors when the lengths differ or `opts` is invalid.
pub fn add_assign(acc: &mut [f32], b: &[f32], opts: &CpuOptions) -> Result<()> {
    const OP: &str = "add_assign";
    opts.validate(OP)?;
    check::same_len(OP, &[("acc", acc.len()), ("b", b.len())])?;
    let p = acc.as_mut_ptr();
    // SAFETY: validated options, equal lengths; the output is exactly the first input.
    unsafe { zip_map(Add, p, b.as_ptr(), p, b.len(), opts) };
    Ok(())
}

/// `out = alpha * x` on slices of equal length.
///
/// Errors when the lengths differ or `opts` is invalid.
pub fn scale(x: &[f32], alpha: f32, out: &mut [f32], opts: &CpuOptions) -> Result<()> {
    const OP: &str = "scale";
    opts.validate(OP)?;
    check::same_len(OP, &[("x", x.len()), ("out", out.len())])?;
    // SAFETY: validated options, equal lengths, `out` borrowed mutably.
    unsafe {
        zip_map(
            Scale(alpha),
            x.as_ptr(),
            x.as_ptr(),
            out.as_mut_ptr(),
            x.len(),
            opts,
        )
    };
    Ok(())
}

/// Interleaved partial sums of [`mul_sum`] (independent f64 adds that overlap).
const K: usize = 8;

/// `sum_i a[i] * b[i]`, each product and the running sum in f64 (e.g. a loss `sum(x * probe)`).
///
/// Single-threaded, in a fixed order (eight interleaved partial sums, added pairwise at the
/// end), so the result is reproducible. Errors when the lengths differ.
pub fn mul_sum(a: &[f32], b: &[f32]) -> Result<f64> {
    check::same_len("mul_sum", &[("a", a.len()), ("b", b.len())])?;
    let mut acc = [0.0f64; K];
    let (a8, b8) = (a.chunks_exact(K), b.chunks_exact(K));
    let tail: f64 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum();
    for (ca, cb) in a8.zip(b8) {
        for k in 0..K {
            acc[k] += ca[k] as f64 * cb[k] as f64;
        }
    }
    let quads = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    Ok((quads[0] + quads[2]) + (quads[1] + quads[3]) + tail)
}

/// One [`sum_rows`] call; tasks own ranges of columns.
struct SumRows {
    x: *const f32,
    out: *mut f32,
    rows: usize,
    cols: usize,
}

impl ColumnJob for SumRows {
    /// The sums of `B` vectors of columns from `j` on, the last holding `last` columns: each
    /// lane adds its column's rows in order, whatever block the column falls in.
    #[inline(always)]
    unsafe fn columns<V: SimdF32, const B: usize>(&self, j: usize, last: usize) {
        let width = |b: usize| if b + 1 == B { last } else { V::LANES };
        let mut acc = [V::zero(); B];
        for r in 0..self.rows {
            let row = self.x.add(r * self.cols + j);
            for (b, a) in acc.iter_mut().enumerate() {
                *a = V::add(*a, load_n(row.add(b * V::LANES), width(b)));
            }
        }
        for (b, &a) in acc.iter().enumerate() {
            store_n(self.out.add(j + b * V::LANES), width(b), a);
        }
    }
}

/// `out[c] = sum_r x[r, c]` for `x` of `rows x cols` (row-major): the gradient of a bias
/// broadcast over rows. `out` (`cols` values) is overwritten; an empty `x` gives zeros.
///
/// Each column's rows are added in order in f32, so the result is the same on any number of
/// threads. Errors when `x` does not hold `rows * cols` values, `out` not `cols`, or `opts`
/// is invalid.
pub fn sum_rows(
    x: &[f32],
    out: &mut [f32],
    rows: usize,
    cols: usize,
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "sum_rows";
    opts.validate(OP)?;
    check::rows_cols(OP, rows, cols, &[("x", x.len())])?;
    check::vector(OP, "cols", cols, &[("out", out.len())])?;
    let job = SumRows {
        x: x.as_ptr(),
        out: out.as_mut_ptr(),
        rows,
        cols,
    };
    // SAFETY: validated options; `x` holds `rows x cols` and `out` `cols` values (checked);
    // each task reads and writes its own columns only, and `out` is borrowed mutably.
    unsafe { run_simd(&job, opts, cols, rows, LINE) };
    Ok(())
}

/// [`sum_rows`] in f64, rounded once to f32. The same shapes and errors, without options.
pub fn sum_rows_reference(x: &[f32], out: &mut [f32], rows: usize, cols: usize) -> Result<()> {
    const OP: &str = "sum_rows_reference";
    check::rows_cols(OP, rows, cols, &[("x", x.len())])?;
    check::vector(OP, "cols", cols, &[("out", out.len())])?;
    for (c, o) in out.iter_mut().enumerate() {
        *o = (0..rows).map(|r| x[r * cols + c] as f64).sum::<f64>() as f32;
    }
    Ok(())
}

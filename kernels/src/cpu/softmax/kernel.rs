//! The row kernels behind [`softmax`](super::softmax) and
//! [`softmax_backward`](super::softmax_backward): one generic pattern over [`SimdF32`],
//! instantiated per ISA through a `#[target_feature]` entry point.
//!
//! Forward, per row (a row of 128 floats stays in L1 across the three passes):
//! 1. the maximum of the logits `z = scale * x (+ mask)`: without a mask, `scale * max(x)`
//!    (or `min` for a negative scale), one op per vector; with a mask, `z` is written to `y`
//!    so the next pass reads one stream instead of two;
//! 2. `e = 2^((x - top) scale log2(e))` written to `y` and summed (in every lane: the sum
//!    never leaves the vector registers), `top` being the input of the row's maximum logit:
//!    the conversion to base 2 rides on the multiply by the scale, so the exp needs no range
//!    reduction by `ln 2` ([`exp2_nonpositive`], whose table makes its polynomial short);
//! 3. `y *= 1 / sum`, run before pass 2 of the next row, so that the latency of a row's last
//!    exps, its sum and the division overlaps work instead of stalling the core. (Keeping a
//!    short row's exps in registers to make passes 2 and 3 one, a store per vector instead of
//!    store, load, store, measured 3-12% faster in a hand-written kernel for rows of 128 on
//!    Zen 5, but 10-20% slower on Zen 4, where that row's sum and division then stall the
//!    next row: bench/NOTES.md.)
//!
//! Pass 2's exponent ([`Exponent`]) subtracts before it multiplies, so the maximum's is
//! exactly 0 and its `e` exactly 1: a row whose other entries vanish next to it (logits apart
//! by more than ~17, as large weights make them) gives exactly 1 and 0, as PyTorch's
//! `exp(z - max)` does, and a backward through it exactly 0. (One FMA, `scale log2(e) x -
//! max log2(e)`, saves an operation per vector, 3-8% of a [12288, 128] softmax, but leaves
//! the maximum's exponent at the rounding error of `max log2(e)`: such a row then gave
//! 0.99999994, and its gradients noise of ~2^-24 of the scores; bench/NOTES.md, session 17.)
//! Each exponent has a relative error of ~2^-23 (the difference, then the product), as
//! `scale x - max` rounded after `scale x` has. Column tails go through
//! `load_partial`/`store_partial`; the tail of the max pass is filled with the row's first
//! entry, which cannot change a maximum.
//!
//! Backward, per row: `dot = sum_j dy[j] y[j]`, then `dx = (scale * y) * (dy - dot)`.

use crate::cpu::isa::Isa;
use crate::cpu::math::{exp2_nonpositive, exp_nonpositive};
use crate::cpu::prefetch::{Hint, Lines};
use crate::cpu::simd::SimdF32;
use std::f32::consts::LOG2_E;

/// One forward call, shared by every task: raw pointers into the caller's slices
/// (`cols >= 1`: rows are read from their first element on).
#[derive(Clone, Copy)]
pub(super) struct Forward {
    /// Input rows, `rows x cols` row-major.
    pub x: *const f32,
    /// Output rows; may equal `x` (in place: every element is read before it is written).
    pub y: *mut f32,
    pub cols: usize,
    pub scale: f32,
    /// Mask rows of `cols` values, or null for no mask.
    pub mask: *const f32,
    /// Row `r` adds mask row `r / repeat` (`>= 1`).
    pub repeat: usize,
    /// Whether each row's lines are requested [`AHEAD`] rows early.
    pub prefetch: bool,
}

/// One backward call, shared by every task.
#[derive(Clone, Copy)]
pub(super) struct Backward {
    pub y: *const f32,
    pub dy: *const f32,
    pub dx: *mut f32,
    pub cols: usize,
    pub scale: f32,
}

/// Runs rows `start..end` of a forward call.
///
/// # Safety
/// The job's slices hold every row below `end` (`cols >= 1` values each, the mask its rows
/// for them), calls running at the same time get disjoint row ranges, and the CPU supports
/// the kernel's ISA.
pub(super) type ForwardFn = unsafe fn(job: &Forward, start: usize, end: usize);
/// Runs rows `start..end` of a backward call.
///
/// # Safety
/// As [`ForwardFn`], for the backward's slices.
pub(super) type BackwardFn = unsafe fn(job: &Backward, start: usize, end: usize);

/// The forward and backward kernels of one ISA.
#[derive(Clone, Copy)]
pub(super) struct Kernels {
    pub forward: ForwardFn,
    pub backward: BackwardFn,
}

impl Kernels {
    /// The kernels for `isa`; the caller has checked that the CPU supports it.
    pub(super) fn for_isa(isa: Isa) -> Kernels {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Kernels {
                forward: x86::forward_avx512,
                backward: x86::backward_avx512,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => Kernels {
                forward: x86::forward_avx2,
                backward: x86::backward_avx2,
            },
            _ => Kernels {
                forward: forward_portable,
                backward: backward_portable,
            },
        }
    }
}

/// Independent accumulators per pass, so the adds and maxes of consecutive vectors overlap.
const UNROLL: usize = 4;

/// Rows of this length (attention's scores at 128 tokens) run through a copy of the forward
/// with the length known at compile time, so that its loops unroll completely (5-7% faster on
/// [12288, 128] on Zen 5: bench/NOTES.md, session 13).
const UNROLLED_COLS: usize = 128;

/// The forward over rows `start..end`, through its unrolled copy where `cols` is
/// [`UNROLLED_COLS`].
#[inline(always)]
unsafe fn forward<V: SimdF32>(job: &Forward, start: usize, end: usize) {
    if job.cols == UNROLLED_COLS {
        forward_rows::<V, UNROLLED_COLS>(job, start, end)
    } else {
        forward_rows::<V, 0>(job, start, end)
    }
}

/// The forward pattern over rows `start..end` of `COLS` columns (0: `job.cols`).
///
/// Software-pipelined: pass 1 of row `r + 1` and pass 3 of row `r - 1` run before pass 2 of
/// row `r`, so each pass's horizontal reduction has a whole pass of another row to overlap
/// with. With `job.prefetch`, the input of row `r + AHEAD` is requested from
/// memory while row `r` computes (not its output: see [`prefetch_input`]).
#[inline(always)]
unsafe fn forward_rows<V: SimdF32, const COLS: usize>(job: &Forward, start: usize, end: usize) {
    if start >= end {
        return;
    }
    let cols = if COLS > 0 { COLS } else { job.cols };
    // The row whose pass 3 is still to run, and its `1 / sum` in every lane.
    let mut pending: Option<(*mut f32, V)> = None;
    let mut next = logits_max::<V>(job, start, cols);
    for r in start..end {
        let y = job.y.add(r * cols);
        if job.prefetch && r + AHEAD < end {
            prefetch_input(job.x.add((r + AHEAD) * cols), cols);
        }
        let (top, src, scale) = next;
        if r + 1 < end {
            next = logits_max::<V>(job, r + 1, cols);
        }
        if let Some((row, factor)) = pending.take() {
            scale_row::<V>(row, cols, factor);
        }
        if scale * top == f32::NEG_INFINITY {
            // Every logit is -inf: there is no distribution, the row is all zeros.
            std::ptr::write_bytes(y, 0, cols);
            continue;
        }
        let e = Exponent::for_row(scale, top);
        let sum = if e.base2 {
            exp_sum::<V, true>(src, y, cols, e)
        } else {
            exp_sum::<V, false>(src, y, cols, e)
        };
        pending = Some((y, V::div(V::splat(1.0), sum)));
    }
    if let Some((row, factor)) = pending {
        scale_row::<V>(row, cols, factor);
    }
}

/// Rows ahead whose lines are requested while this row computes.
const AHEAD: usize = 4;

/// Asks for the input row `x` to be read soon (cache lines of 16 floats).
///
/// The output row is not requested as well: on Zen 4 that made [12288, 128] 6-29% slower and
/// [12288, 512] 1.3-2x slower than no prefetch at all, while the input alone is within the
/// noise of none, or faster (49152 x 128 on one thread; bench/NOTES.md, session 9).
#[inline(always)]
fn prefetch_input(x: *const f32, cols: usize) {
    Lines::contiguous(x, cols).request_all(Hint::L1);
}

/// Pass 1 of row `r`: where pass 2 reads its inputs from, the scale pass 2 applies to them
/// (with a mask the logits are written to the row's `y`, scaled: a scale of 1), and `top`, the
/// input whose logit is the row's maximum (`scale * top`).
#[inline(always)]
unsafe fn logits_max<V: SimdF32>(job: &Forward, r: usize, cols: usize) -> (f32, *const f32, f32) {
    let x = job.x.add(r * cols);
    if job.mask.is_null() {
        (top_input::<V>(x, cols, job.scale), x, job.scale)
    } else {
        let y = job.y.add(r * cols);
        let mask = job.mask.add(r / job.repeat * cols);
        let max = masked_logits::<V>(x, mask, y, cols, job.scale);
        (max, y.cast_const(), 1.0)
    }
}

/// The input `x[j]` whose logit `scale * x[j]` is the row's maximum: `max_j x[j]`, or `min`
/// for a negative scale (rounding is monotonic, so `scale * top` is exactly the maximum of
/// the rounded products).
#[inline(always)]
unsafe fn top_input<V: SimdF32>(x: *const f32, cols: usize, scale: f32) -> f32 {
    if scale >= 0.0 {
        extreme::<V, true>(x, cols)
    } else {
        extreme::<V, false>(x, cols)
    }
}

/// `max_j x[j]` over one row; the cross-entropy's max pass.
///
/// # Safety
/// `x` holds `cols >= 1` values, and the CPU supports the ISA of `V`.
#[inline(always)]
pub(crate) unsafe fn row_max<V: SimdF32>(x: *const f32, cols: usize) -> f32 {
    extreme::<V, true>(x, cols)
}

/// `max_j x[j]` (`MAX`) or `min_j x[j]` over one row.
#[inline(always)]
unsafe fn extreme<V: SimdF32, const MAX: bool>(x: *const f32, cols: usize) -> f32 {
    let mut acc = [V::splat(*x); UNROLL];
    let mut j = 0;
    while j + UNROLL * V::LANES <= cols {
        for (u, a) in acc.iter_mut().enumerate() {
            *a = pick::<V, MAX>(*a, V::load(x.add(j + u * V::LANES)));
        }
        j += UNROLL * V::LANES;
    }
    while j + V::LANES <= cols {
        acc[0] = pick::<V, MAX>(acc[0], V::load(x.add(j)));
        j += V::LANES;
    }
    if j < cols {
        // Fill with x[0]: a duplicate of a real entry changes no extreme.
        acc[1] = pick::<V, MAX>(acc[1], V::load_partial(x.add(j), cols - j, *x));
    }
    let m = pick::<V, MAX>(
        pick::<V, MAX>(acc[0], acc[1]),
        pick::<V, MAX>(acc[2], acc[3]),
    );
    if MAX {
        V::reduce_max(m)
    } else {
        -V::reduce_max(V::sub(V::zero(), m))
    }
}

/// `max(a, b)` (`MAX`) or `min(a, b)` lane-wise.
#[inline(always)]
unsafe fn pick<V: SimdF32, const MAX: bool>(a: V, b: V) -> V {
    if MAX {
        V::max(a, b)
    } else {
        V::min(a, b)
    }
}

/// Writes `z[j] = scale * x[j] + mask[j]` to `y` and returns `max_j z[j]`.
#[inline(always)]
unsafe fn masked_logits<V: SimdF32>(
    x: *const f32,
    mask: *const f32,
    y: *mut f32,
    cols: usize,
    scale: f32,
) -> f32 {
    // The ragged tail's fill lanes repeat the first entry, read now: in place (`y == x`) the
    // first store overwrites it, and `scale * z[0] + mask[0]` could exceed every real logit.
    let (x0, mask0) = (*x, *mask);
    let s = V::splat(scale);
    let mut acc = [V::splat(f32::NEG_INFINITY); UNROLL];
    let mut j = 0;
    while j + UNROLL * V::LANES <= cols {
        for (u, a) in acc.iter_mut().enumerate() {
            let k = j + u * V::LANES;
            let z = V::mul_add(s, V::load(x.add(k)), V::load(mask.add(k)));
            V::store(y.add(k), z);
            *a = V::max(*a, z);
        }
        j += UNROLL * V::LANES;
    }
    while j + V::LANES <= cols {
        let z = V::mul_add(s, V::load(x.add(j)), V::load(mask.add(j)));
        V::store(y.add(j), z);
        acc[0] = V::max(acc[0], z);
        j += V::LANES;
    }
    if j < cols {
        let n = cols - j;
        let z = V::mul_add(
            s,
            V::load_partial(x.add(j), n, x0),
            V::load_partial(mask.add(j), n, mask0),
        );
        V::store_partial(y.add(j), n, z);
        acc[1] = V::max(acc[1], z);
    }
    V::reduce_max(V::max(V::max(acc[0], acc[1]), V::max(acc[2], acc[3])))
}

/// Pass 2's exponent of a row: `(x - top) a` for each input `x`, `top` the input of the
/// row's maximum logit, in base 2 (`a = scale log2(e)`), or in base e (`a = scale`) where
/// `scale log2(e)` overflows. The difference comes first: the maximum's exponent is exactly 0.
#[derive(Clone, Copy)]
struct Exponent {
    top: f32,
    a: f32,
    base2: bool,
}

impl Exponent {
    /// The exponent of a row whose maximum logit is `scale * top`.
    fn for_row(scale: f32, top: f32) -> Exponent {
        let a = scale * LOG2_E;
        if a.is_finite() {
            Exponent {
                top,
                a,
                base2: true,
            }
        } else {
            Exponent {
                top,
                a: scale,
                base2: false,
            }
        }
    }
}

/// `e^(scale (x - top))` of one vector `x` of inputs (see [`Exponent`]; `a` and `top` hold
/// the row's constants in every lane): `2^((x - top) a)` in base 2 (`BASE2`), else
/// `e^((x - top) a)`.
#[inline(always)]
unsafe fn exp<V: SimdF32, const BASE2: bool>(a: V, top: V, x: V) -> V {
    let y = V::mul(V::sub(x, top), a);
    if BASE2 {
        exp2_nonpositive(y)
    } else {
        exp_nonpositive(y)
    }
}

/// Writes `e[j] = exp(src[j])` (see [`exp`]) to `dst` and returns `sum_j e[j]` in every lane.
/// Two accumulators, so that consecutive adds need not wait for each other.
#[inline(always)]
unsafe fn exp_sum<V: SimdF32, const BASE2: bool>(
    src: *const f32,
    dst: *mut f32,
    cols: usize,
    e: Exponent,
) -> V {
    let (a, b) = (V::splat(e.a), V::splat(e.top));
    let mut acc = [V::zero(); 2];
    let mut j = 0;
    while j + 2 * V::LANES <= cols {
        for (u, s) in acc.iter_mut().enumerate() {
            let k = j + u * V::LANES;
            let e = exp::<V, BASE2>(a, b, V::load(src.add(k)));
            V::store(dst.add(k), e);
            *s = V::add(*s, e);
        }
        j += 2 * V::LANES;
    }
    while j + V::LANES <= cols {
        let e = exp::<V, BASE2>(a, b, V::load(src.add(j)));
        V::store(dst.add(j), e);
        acc[0] = V::add(acc[0], e);
        j += V::LANES;
    }
    if j < cols {
        let n = cols - j;
        let x = V::load_partial(src.add(j), n, 0.0);
        let e = exp::<V, BASE2>(a, b, x);
        V::store_partial(dst.add(j), n, e);
        // Read back the stored lanes only: the others hold exp of the fill value.
        acc[1] = V::add(acc[1], V::load_partial(dst.add(j), n, 0.0));
    }
    V::sum_all(V::add(acc[0], acc[1]))
}

/// `y[j] *= f` over one row (`f` has the factor in every lane).
#[inline(always)]
unsafe fn scale_row<V: SimdF32>(y: *mut f32, cols: usize, f: V) {
    let mut j = 0;
    while j + UNROLL * V::LANES <= cols {
        for u in 0..UNROLL {
            let p = y.add(j + u * V::LANES);
            V::store(p, V::mul(f, V::load(p)));
        }
        j += UNROLL * V::LANES;
    }
    while j + V::LANES <= cols {
        let p = y.add(j);
        V::store(p, V::mul(f, V::load(p)));
        j += V::LANES;
    }
    if j < cols {
        let (p, n) = (y.add(j), cols - j);
        V::store_partial(p, n, V::mul(f, V::load_partial(p, n, 0.0)));
    }
}

/// The backward pattern over rows `start..end`: `dx = scale * y * (dy - sum_j dy[j] y[j])`.
#[inline(always)]
unsafe fn backward_rows<V: SimdF32>(job: &Backward, start: usize, end: usize) {
    let cols = job.cols;
    for r in start..end {
        let (y, dy, dx) = (
            job.y.add(r * cols),
            job.dy.add(r * cols),
            job.dx.add(r * cols),
        );
        let dot = V::splat(dot::<V>(y, dy, cols));
        let s = V::splat(job.scale);
        let mut j = 0;
        while j + V::LANES <= cols {
            let g = V::sub(V::load(dy.add(j)), dot);
            V::store(dx.add(j), V::mul(V::mul(s, V::load(y.add(j))), g));
            j += V::LANES;
        }
        if j < cols {
            let n = cols - j;
            let g = V::sub(V::load_partial(dy.add(j), n, 0.0), dot);
            let v = V::mul(V::mul(s, V::load_partial(y.add(j), n, 0.0)), g);
            V::store_partial(dx.add(j), n, v);
        }
    }
}

/// `sum_j a[j] * b[j]` over one row.
#[inline(always)]
unsafe fn dot<V: SimdF32>(a: *const f32, b: *const f32, cols: usize) -> f32 {
    let mut acc = [V::zero(); UNROLL];
    let mut j = 0;
    while j + UNROLL * V::LANES <= cols {
        for (u, s) in acc.iter_mut().enumerate() {
            let k = j + u * V::LANES;
            *s = V::mul_add(V::load(a.add(k)), V::load(b.add(k)), *s);
        }
        j += UNROLL * V::LANES;
    }
    while j + V::LANES <= cols {
        acc[0] = V::mul_add(V::load(a.add(j)), V::load(b.add(j)), acc[0]);
        j += V::LANES;
    }
    if j < cols {
        let n = cols - j;
        let (va, vb) = (
            V::load_partial(a.add(j), n, 0.0),
            V::load_partial(b.add(j), n, 0.0),
        );
        acc[1] = V::mul_add(va, vb, acc[1]);
    }
    V::reduce_sum(V::add(V::add(acc[0], acc[1]), V::add(acc[2], acc[3])))
}

#[cfg(target_arch = "x86_64")]
/// The entry points per ISA; each is a [`ForwardFn`] or [`BackwardFn`], with its contract.
mod x86 {
    use super::{backward_rows, forward, Backward, Forward};
    use crate::cpu::simd::{V256, V512};

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward_avx512(job: &Forward, start: usize, end: usize) {
        forward::<V512>(job, start, end)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn backward_avx512(job: &Backward, start: usize, end: usize) {
        backward_rows::<V512>(job, start, end)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_avx2(job: &Forward, start: usize, end: usize) {
        forward::<V256>(job, start, end)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward_avx2(job: &Backward, start: usize, end: usize) {
        backward_rows::<V256>(job, start, end)
    }
}

/// The portable [`ForwardFn`].
unsafe fn forward_portable(job: &Forward, start: usize, end: usize) {
    forward::<crate::cpu::simd::Wide>(job, start, end)
}

/// The portable [`BackwardFn`].
unsafe fn backward_portable(job: &Backward, start: usize, end: usize) {
    backward_rows::<crate::cpu::simd::Wide>(job, start, end)
}

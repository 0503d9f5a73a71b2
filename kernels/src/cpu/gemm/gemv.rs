//! A product of one row of A (`M = 1`), B read in place in one of two forms:
//! - B's k steps contiguous (B stored transposed, as nn.Linear weights are read): each element
//!   of C is the dot product of A's row with a row of the stored B, four at a time;
//! - B's rows contiguous: C's row is the sum over k of `A(0, k)` times B's row `k`, in
//!   chunks of columns summed in a stack buffer while each row's run streams contiguously.
//!
//! The five loops would pack all of B for that one row and then run 12-row tiles with one live
//! row: `1 x 768 x 768` took 0.117 ms there (B transposed) against 0.032 for the `gemm` crate
//! and 0.042 for PyTorch (bench/NOTES.md, session 18). A product with one column of C
//! (`N = 1`) is the same with A and B swapped.

use super::blocking::share;
use super::loops::Problem;
use crate::cpu::isa::Isa;
use crate::cpu::simd::SimdF32;
use crate::cpu::threads::{for_each_task, Shared};

/// Signature of a row-times-matrix kernel: columns `lo..hi` of C for the problem `p`.
pub(crate) type GemvFn = unsafe fn(p: &Problem, lo: usize, hi: usize);

/// The product [`run`] computes for `p`, if any: `p` itself when it has one row of A and a B
/// read in place (not packed beforehand) whose rows are contiguous, or whose k steps are and
/// so is A's row; else, for one column of C and no bias (a bias belongs to C's columns),
/// `C^T = B^T A^T` when that has those properties.
pub(crate) fn problem(p: &Problem) -> Option<Problem> {
    let fits = |q: &Problem| q.m == 1 && q.packed_b.is_null() && (dot_form(q) || q.b.cs == 1);
    if fits(p) {
        return Some(*p);
    }
    let swapped = p.transposed();
    (p.n == 1 && p.bias.is_null() && fits(&swapped)).then_some(swapped)
}

/// Multiply-adds below which one thread runs the whole product (a thread's hand-over costs
/// more than a few microseconds of arithmetic).
const PARALLEL_MIN: usize = 1 << 16;

/// Runs a product from [`problem`] with `kernel` on `threads` threads, each taking a share of
/// C's columns.
///
/// # Safety
/// As [`loops::run`](super::loops::run); `kernel` runs on this CPU.
pub(crate) unsafe fn run(kernel: GemvFn, p: Problem, threads: usize) {
    let threads = if p.n * p.k >= PARALLEL_MIN {
        threads.min(p.n.div_ceil(4)).max(1)
    } else {
        1
    };
    let shared = Shared(p);
    for_each_task(threads, threads, |t| {
        let (lo, hi) = share(shared.get().n, threads, t);
        kernel(&shared.get(), lo, hi);
    });
}

/// The kernel for `isa`; the caller has checked that the CPU supports it.
pub(crate) fn for_isa(isa: Isa) -> GemvFn {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::avx512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => x86::avx2,
        _ => portable,
    }
}

/// Whether `p` takes the dot-product form: A's row and B's k steps contiguous.
fn dot_form(p: &Problem) -> bool {
    p.a.cs == 1 && p.b.rs == 1
}

/// Columns `lo..hi` of `C = alpha * a * B + bias + beta * C` (C not read when `beta == 0`) in
/// the form `p` takes.
#[inline(always)]
unsafe fn columns<V: SimdF32>(p: &Problem, lo: usize, hi: usize) {
    if dot_form(p) {
        dot_columns::<V>(p, lo, hi)
    } else {
        row_columns::<V>(p, lo, hi)
    }
}

/// Columns of C one pass of [`row_columns`] sums into its stack buffer: 8 KiB, which stays in
/// L1 while each step streams a contiguous run of a row of B (2 KiB runs ran `1 x 768 x 3072`
/// 15% slower: more, shorter runs a row stride apart).
const CHUNK: usize = 2048;

/// Rows of B (k steps) one pass over the buffer adds, so that each load and store of the
/// buffer carries four multiply-adds.
const STEPS: usize = 4;

/// [`columns`] with B's rows contiguous: chunks of [`CHUNK`] columns of C summed in a stack
/// buffer as `sum_k A(0, k) B(k, chunk)`, [`STEPS`] rows of B per pass, each row's run read
/// contiguously. (Strips of columns held in registers instead walked B down its columns, a
/// row stride apart: `1 x 768 x 3072` ran at 29 GB/s against 69 for the `gemm` crate.)
#[inline(always)]
unsafe fn row_columns<V: SimdF32>(p: &Problem, lo: usize, hi: usize) {
    let a = |t: usize| V::splat(*p.a.ptr.add(t * p.a.cs));
    let mut sums = [0.0f32; CHUNK];
    let mut j = lo;
    while j < hi {
        let cols = CHUNK.min(hi - j);
        let acc = sums.as_mut_ptr();
        sums[..cols].fill(0.0);
        let full = cols - cols % V::LANES;
        let b = |t: usize| p.b.ptr.add(t * p.b.rs + j);
        let mut t = 0;
        while t + STEPS <= p.k {
            let (x, rows) = (
                std::array::from_fn(|u| a(t + u)),
                std::array::from_fn(|u| b(t + u)),
            );
            add_rows::<V, STEPS>(acc, x, rows, full);
            t += STEPS;
        }
        for t in t..p.k {
            add_rows::<V, 1>(acc, [a(t)], [b(t)], full);
        }
        // The last columns short of a vector, one at a time.
        for (u, slot) in sums.iter_mut().enumerate().take(cols).skip(full) {
            *slot = (0..p.k)
                .map(|t| *p.a.ptr.add(t * p.a.cs) * *b(t).add(u))
                .sum();
        }
        for (u, &sum) in sums[..cols].iter().enumerate() {
            write(p, j + u, sum);
        }
        j += cols;
    }
}

/// `acc[v] += sum_u x[u] * rows[u][v]` for `v < full` (a multiple of the lanes): one load and
/// store of `acc` per vector for `R` multiply-adds.
#[inline(always)]
unsafe fn add_rows<V: SimdF32, const R: usize>(
    acc: *mut f32,
    x: [V; R],
    rows: [*const f32; R],
    full: usize,
) {
    let mut v = 0;
    while v < full {
        let mut s = V::load(acc.add(v));
        for (x, r) in x.iter().zip(rows) {
            s = V::mul_add(*x, V::load(r.add(v)), s);
        }
        V::store(acc.add(v), s);
        v += V::LANES;
    }
}

/// [`columns`] with A's row and B's k steps contiguous: four dot products at a time, then
/// one at a time.
#[inline(always)]
unsafe fn dot_columns<V: SimdF32>(p: &Problem, lo: usize, hi: usize) {
    let row = |j: usize| p.b.ptr.add(j * p.b.cs);
    let mut j = lo;
    while j + 4 <= hi {
        let sums = dots::<V, 4>(p.a.ptr, std::array::from_fn(|u| row(j + u)), p.k);
        for (u, sum) in sums.into_iter().enumerate() {
            write(p, j + u, sum);
        }
        j += 4;
    }
    for j in j..hi {
        let [sum] = dots::<V, 1>(p.a.ptr, [row(j)], p.k);
        write(p, j, sum);
    }
}

/// The dot products of `a` with each of `R` rows, over `k` values in vectors with a
/// zero-filled tail.
#[inline(always)]
unsafe fn dots<V: SimdF32, const R: usize>(
    a: *const f32,
    rows: [*const f32; R],
    k: usize,
) -> [f32; R] {
    let mut acc = [V::zero(); R];
    let mut t = 0;
    while t + V::LANES <= k {
        let av = V::load(a.add(t));
        for (s, r) in acc.iter_mut().zip(rows) {
            *s = V::mul_add(av, V::load(r.add(t)), *s);
        }
        t += V::LANES;
    }
    if t < k {
        let n = k - t;
        let av = V::load_partial(a.add(t), n, 0.0);
        for (s, r) in acc.iter_mut().zip(rows) {
            *s = V::mul_add(av, V::load_partial(r.add(t), n, 0.0), *s);
        }
    }
    acc.map(|s| V::reduce_sum(s))
}

/// `C(0, j) = alpha * dot + bias[j] + beta * C(0, j)`, C not read when `beta == 0`.
#[inline(always)]
unsafe fn write(p: &Problem, j: usize, dot: f32) {
    let c = p.c.ptr.add(j * p.c.cs);
    let bias = if p.bias.is_null() {
        0.0
    } else {
        *p.bias.add(j)
    };
    let sum = p.alpha * dot + bias;
    *c = if p.beta == 0.0 {
        sum
    } else {
        sum + p.beta * *c
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{columns, Problem};
    use crate::cpu::simd::{V256, V512};

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(p: &Problem, lo: usize, hi: usize) {
        columns::<V512>(p, lo, hi)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(p: &Problem, lo: usize, hi: usize) {
        columns::<V256>(p, lo, hi)
    }
}

unsafe fn portable(p: &Problem, lo: usize, hi: usize) {
    columns::<crate::cpu::simd::Wide>(p, lo, hi)
}

//! Splitting one kernel call into tasks, and running a kernel body written once over
//! [`SimdF32`] with the vectors of the call's ISA.
//!
//! A call covers `units` independent units (rows, columns or elements); [`for_each_range`]
//! hands contiguous ranges of them to at most `threads` tasks, so a small problem stays on the
//! caller. [`run_simd`] does the same for a [`SimdJob`], entering each range through a
//! `#[target_feature]` function of the ISA, so the compiler emits AVX-512 or AVX2 code for the
//! whole inlined body. Neither allocates. [`load_n`] and [`store_n`] serve job bodies that
//! handle a row's last, partial vector with the same code as its whole ones; a [`ColumnJob`]
//! is the [`SimdJob`] of a column reduction.

use crate::cpu::isa::Isa;
use crate::cpu::options::CpuOptions;
use crate::cpu::simd::SimdF32;
use crate::cpu::threads::{for_each_task, Shared};
use std::ops::Range;

/// Elements per task below which extra threads cost more than they save.
const MIN_TASK_LEN: usize = 1 << 14;

/// Floats in one 64-byte cache line ([`crate::cpu::prefetch::LINE`]): ranges of columns or
/// elements start on a multiple of this, so two tasks never write the same line.
pub(crate) use crate::cpu::prefetch::LINE;

/// Runs `task(range)` over `0..units`, split into at most `threads` contiguous ranges, in
/// order on the caller when there is one.
///
/// A unit holds `unit_len` elements; every range but the last covers at least
/// `MIN_TASK_LEN` elements and is a multiple of `align` units (`align >= 1`). The split
/// depends on `threads`: a kernel whose results must not may only split work whose units are
/// computed independently.
pub(crate) fn for_each_range(
    threads: usize,
    units: usize,
    unit_len: usize,
    align: usize,
    task: impl Fn(Range<usize>) + Sync + Send,
) {
    if units == 0 {
        return;
    }
    let min_units = MIN_TASK_LEN.div_ceil(unit_len.max(1));
    let tasks = threads.min(units / min_units).max(1);
    // Rounding up to `align` cannot overflow a share of any real slice; saturate for sizes
    // that describe no memory (an empty table of usize::MAX columns).
    let chunk = units
        .div_ceil(tasks)
        .checked_next_multiple_of(align)
        .unwrap_or(units);
    for_each_task(threads, units.div_ceil(chunk), |t| {
        let start = t * chunk;
        task(start..start.saturating_add(chunk).min(units));
    });
}

/// A kernel body over a range of units, written once over [`SimdF32`].
pub(crate) trait SimdJob {
    /// Runs units `range` with vectors `V`.
    ///
    /// # Safety
    /// The CPU supports `V`'s instruction set, `range` lies within the job's units, concurrent
    /// calls get disjoint ranges, and the job's pointers are valid for its documented shape.
    unsafe fn run<V: SimdF32>(&self, range: Range<usize>);
}

/// Vectors of columns a [`ColumnJob`] handles at once, each in its own registers.
const COLUMN_BLOCK: usize = 4;

/// A reduction over rows with one SIMD lane per column: a [`SimdJob`] whose units are columns.
///
/// Its range of columns is walked in blocks of [`COLUMN_BLOCK`] vectors, then in single
/// vectors, then in one partial vector; each lane sees its column's rows in the same order
/// whatever block the column falls in, so the results do not depend on the split.
pub(crate) trait ColumnJob {
    /// Handles the `B` vectors of columns from `j` on, the last of them holding `last` columns.
    ///
    /// # Safety
    /// As for [`SimdJob::run`], over those columns.
    unsafe fn columns<V: SimdF32, const B: usize>(&self, j: usize, last: usize);
}

impl<J: ColumnJob> SimdJob for J {
    #[inline(always)]
    unsafe fn run<V: SimdF32>(&self, range: Range<usize>) {
        let mut j = range.start;
        while j + COLUMN_BLOCK * V::LANES <= range.end {
            self.columns::<V, COLUMN_BLOCK>(j, V::LANES);
            j += COLUMN_BLOCK * V::LANES;
        }
        while j + V::LANES <= range.end {
            self.columns::<V, 1>(j, V::LANES);
            j += V::LANES;
        }
        if j < range.end {
            self.columns::<V, 1>(j, range.end - j);
        }
    }
}

/// Runs `job` over `0..units` split as by [`for_each_range`], on `opts.threads` threads with
/// the vectors of `opts.isa`.
///
/// # Safety
/// `opts` was validated (its ISA runs on this CPU), and `job` is sound on any disjoint ranges
/// of `0..units` run at once (see [`SimdJob::run`]).
pub(crate) unsafe fn run_simd<J: SimdJob>(
    job: &J,
    opts: &CpuOptions,
    units: usize,
    unit_len: usize,
    align: usize,
) {
    let entry = entry_for::<J>(opts.isa);
    let job = Shared(job);
    for_each_range(opts.threads, units, unit_len, align, |range| {
        // SAFETY: the caller validated the ISA and vouches for the job on disjoint ranges,
        // which `for_each_range` hands out.
        unsafe { entry(job.get(), range) }
    });
}

/// The entry point of `J` for `isa`; the caller has checked that the CPU supports it.
fn entry_for<J: SimdJob>(isa: Isa) -> unsafe fn(&J, Range<usize>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::avx512::<J>,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => x86::avx2::<J>,
        _ => portable::<J>,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::SimdJob;
    use crate::cpu::simd::{V256, V512};
    use std::ops::Range;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512<J: SimdJob>(job: &J, range: Range<usize>) {
        job.run::<V512>(range)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<J: SimdJob>(job: &J, range: Range<usize>) {
        job.run::<V256>(range)
    }
}

unsafe fn portable<J: SimdJob>(job: &J, range: Range<usize>) {
    job.run::<crate::cpu::simd::Wide>(range)
}

/// Loads `n <= V::LANES` values from `p` (the other lanes 0): a whole vector when `n` is
/// `V::LANES`, which folds away when the caller passes that constant.
#[inline(always)]
pub(crate) unsafe fn load_n<V: SimdF32>(p: *const f32, n: usize) -> V {
    if n == V::LANES {
        V::load(p)
    } else {
        V::load_partial(p, n, 0.0)
    }
}

/// Stores the first `n <= V::LANES` lanes of `v` to `p`.
#[inline(always)]
pub(crate) unsafe fn store_n<V: SimdF32>(p: *mut f32, n: usize, v: V) {
    if n == V::LANES {
        V::store(p, v)
    } else {
        V::store_partial(p, n, v)
    }
}

//! Threads for the CPU kernels: one rayon pool per requested thread count, built once, and
//! inside [`install`] a spinning team of its workers (`cpu/team.rs`).
//!
//! A kernel asked for 1 thread runs on the caller and never touches a pool. Pools are created
//! on first use, with every worker's GEMM pack buffers sized at once, and kept for the life
//! of the process, so a steady-state call builds nothing.

use super::team::{self, Team};
use rayon::prelude::*;
use rayon::ThreadPool;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Mutex;

/// The most threads a kernel may be asked for ([`CpuOptions::validate`] refuses more): far
/// above any core count smelt runs on, and below rayon's pool limit (65535 on 64-bit
/// targets), which rayon would silently clamp to, leaving a team waiting for missing workers.
///
/// [`CpuOptions::validate`]: super::CpuOptions::validate
pub const MAX_THREADS: usize = 1024;

/// The pool with exactly `threads` workers, created on first request.
///
/// Panics when `threads` is above [`MAX_THREADS`] or its pool cannot start: callers validate
/// their options first ([`CpuOptions::validate`] starts the pool through [`ready`]).
///
/// [`CpuOptions::validate`]: super::CpuOptions::validate
fn pool(threads: usize) -> &'static ThreadPool {
    try_pool(threads).unwrap_or_else(|e| panic!("smelt: {e}"))
}

/// Whether the pool of `threads` workers runs, starting it if it is the first request: an
/// error naming the count when the system refuses its threads (a process limit, say), which
/// [`CpuOptions::validate`] returns instead of a kernel panicking later.
///
/// [`CpuOptions::validate`]: super::CpuOptions::validate
pub(crate) fn ready(threads: usize) -> Result<(), String> {
    // Inside `install` of that count the pool runs; inside a task, calls run in order on
    // this thread: neither needs the registry's lock (a model's step makes hundreds of calls).
    if threads <= 1 || team::leads(threads) || team::in_task() {
        return Ok(());
    }
    try_pool(threads).map(|_| ())
}

/// [`pool`], or why it cannot start.
fn try_pool(threads: usize) -> Result<&'static ThreadPool, String> {
    if threads > MAX_THREADS {
        return Err(format!(
            "a pool of {threads} threads is more than MAX_THREADS = {MAX_THREADS} (CpuOptions::validate refuses it)"
        ));
    }
    static POOLS: Mutex<Vec<(usize, &'static ThreadPool)>> = Mutex::new(Vec::new());
    let mut pools = POOLS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == threads) {
        return Ok(p);
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("smelt-{threads}t-{i}"))
        .build()
        .map_err(|e| format!("cannot start a pool of {threads} threads: {e}"))?;
    // Size every worker's GEMM pack buffers now: which worker runs which task is up to rayon,
    // and a worker's first GEMM must not allocate in the middle of a steady-state step.
    let reserved = built.broadcast(|_| crate::cpu::gemm::reserve_pack_buffers());
    if let Some(e) = reserved.into_iter().find_map(Result::err) {
        return Err(format!(
            "cannot start a pool of {threads} threads: each needs its GEMM pack buffers, and {e}"
        ));
    }
    let leaked: &'static ThreadPool = Box::leak(Box::new(built));
    pools.push((threads, leaked));
    Ok(leaked)
}

/// Runs `task(i)` for every `i` in `0..tasks`, spread over `threads` threads.
///
/// `threads <= 1` (or a single task) runs everything on the calling thread, in order, and so
/// does a call made from inside a task of the team of [`install`]. Inside `install` the tasks
/// go to its spinning team; elsewhere, to the rayon pool of `threads` workers. Panics when
/// `threads` is above [`MAX_THREADS`] (the kernels refuse those in
/// [`CpuOptions::validate`](super::CpuOptions::validate) first).
pub fn for_each_task(threads: usize, tasks: usize, task: impl Fn(usize) + Sync + Send) {
    if threads <= 1 || tasks <= 1 || team::in_task() {
        (0..tasks).for_each(task);
        return;
    }
    if team::try_run(threads, tasks, &task) {
        return;
    }
    pool(threads).install(|| (0..tasks).into_par_iter().with_max_len(1).for_each(task));
}

/// Runs `f` on a worker of the `threads`-thread pool (on the caller when `threads <= 1`),
/// with the pool's other workers as its spinning team (`cpu/team.rs`).
///
/// Kernel calls made inside `f` with the same thread count hand their tasks to the team,
/// whose helpers wait for them spinning instead of asleep (for up to a millisecond between
/// calls), and allocate nothing. A call from outside the pool goes through rayon's global
/// injection queue instead, which allocates a new block every 63 jobs and wakes a sleeping
/// worker each time: run a whole step loop inside `install`. Rayon work started inside `f`
/// (a parallel iterator) still runs on the helpers, which poll for it while they wait.
/// Calling `install` again inside `f` with the same count just runs the inner closure.
/// Panics when `threads` is above [`MAX_THREADS`] (see [`CpuOptions::validate`]).
///
/// [`CpuOptions::validate`]: super::CpuOptions::validate
pub fn install<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    if threads <= 1 || team::leads(threads) {
        return f();
    }
    pool(threads).install(|| {
        let team = Team::new(threads);
        rayon::scope(|s| {
            for _ in 1..threads {
                s.spawn(|_| team.help());
            }
            team.lead(f)
        })
    })
}

/// Runs `f` inside the `threads`-thread pool without starting a team (on the caller when
/// `threads <= 1` or when it already leads a team of that size): one kernel call's single
/// entry into the pool, so that a caller outside it pays the hand-over once per call.
pub(crate) fn enter<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    if threads <= 1 || team::leads(threads) {
        return f();
    }
    pool(threads).install(f)
}

/// The number of threads the machine offers (at least 1).
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A value holding raw pointers that may cross to worker threads.
///
/// Wrap pointers into buffers that tasks access disjointly (each task its own tiles or rows);
/// the task reads it back with [`Shared::get`], a method call, so the closure captures the
/// whole wrapper and not the raw field.
#[derive(Clone, Copy)]
pub(crate) struct Shared<T>(pub T);
// SAFETY: users only dereference the pointers on disjoint regions, and `for_each_task` joins
// every task before returning, so nothing outlives the buffers.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    /// The wrapped value.
    pub(crate) fn get(self) -> T {
        self.0
    }
}

/// A mutable slice that concurrent tasks carve into disjoint ranges.
///
/// It holds the caller's `&'a mut [T]` borrow for `'a` and hands out `&'a mut` ranges of it
/// through [`SharedSlice::range`], which checks that they lie inside the slice.
pub(crate) struct SharedSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: tasks only take disjoint ranges (the contract of `range`), so sharing the wrapper
// shares no element; `T: Send` as for `&mut [T]` moved to another thread.
unsafe impl<T: Send> Send for SharedSlice<'_, T> {}
unsafe impl<T: Send> Sync for SharedSlice<'_, T> {}

impl<'a, T> SharedSlice<'a, T> {
    /// Wraps `slice` for the tasks of one call.
    pub(crate) fn new(slice: &'a mut [T]) -> Self {
        SharedSlice {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _borrow: PhantomData,
        }
    }

    /// The elements `range` of the slice; panics when it does not lie inside.
    ///
    /// # Safety
    /// While the result lives, no other range taken from this wrapper overlaps `range`.
    pub(crate) unsafe fn range(&self, range: Range<usize>) -> &'a mut [T] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "range {range:?} of a slice of {}",
            self.len
        );
        // SAFETY: the range lies inside the slice borrowed for `'a` (asserted), and the caller
        // vouches that no other live reference overlaps it.
        std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len())
    }
}

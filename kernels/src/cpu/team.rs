//! A spinning thread team for the kernels called inside [`install`](super::threads::install).
//!
//! A step calls kernels back to back, each one or two parallel phases of tens of microseconds
//! to milliseconds, with a little single-threaded work between them. Rayon's idle workers go
//! to sleep within microseconds, and a phase that has to wake one starts 18-55 us late on the
//! VM we measure on (bench/NOTES.md): a 32-token MiniLM forward spent a sixth of its time in
//! the scheduler. So `install` turns the pool's other workers into helpers of the calling
//! worker (the leader) for as long as its closure runs: between jobs they spin, running any
//! rayon work they find, and nap only after [`SPIN`] without work (a job wakes them at once).
//!
//! Helpers join whenever their worker picks up the helper job. A job is one
//! [`for_each_task`](super::threads::for_each_task) call of the leader: it publishes the task
//! function and count, bumps the generation, runs tasks itself (each task index is claimed
//! once, by whoever gets it first), then closes the job and waits for the helpers that
//! entered it before it closed, so no helper holds the job afterwards. A helper that gets to a
//! job after it closed skips it (its tasks were all claimed): the leader never waits for a
//! helper that is busy elsewhere, e.g. inside rayon work that itself waits for the piece of
//! that work the leader stole and is running (it once did, and the two waited for each
//! other). A job makes no heap allocation. A task that calls `for_each_task` again runs that
//! call's tasks in order on its own thread. A thread helps at most one team at a time and
//! never while it leads one: with several `install`s running at once on one pool, a helper
//! job picked up by a worker busy in another team returns at once, and its team goes on with
//! one helper fewer (slower, never wrong).

use rayon::Yield;
use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Mutex;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a helper spins without work before it naps.
const SPIN: Duration = Duration::from_millis(1);
/// A helper's first nap; each next one is twice as long, up to [`MAX_NAP`]. A team job
/// unparks it at once; rayon work waits for the end of the nap.
const FIRST_NAP: Duration = Duration::from_micros(50);
const MAX_NAP: Duration = Duration::from_millis(5);

/// The state the leader and its helpers share for one `install`.
pub(crate) struct Team {
    /// Threads in the team when every helper has joined, the leader included.
    size: usize,
    /// Generation of the current job; bumped by the leader to publish one.
    generation: AtomicU64,
    /// The current job: written by the leader only while no helper is inside one.
    job: UnsafeCell<Job>,
    /// The next task index to claim.
    next: AtomicUsize,
    /// Helpers that entered the current job, plus [`CLOSED`] once the leader has closed it.
    entered: AtomicUsize,
    /// Helpers done with the current job.
    finished: AtomicUsize,
    /// Helpers parked (or about to park).
    parked: AtomicUsize,
    /// Set when a task panicked on a helper.
    panicked: AtomicBool,
    /// Set when the leader's closure has returned: helpers leave.
    stop: AtomicBool,
    /// The helpers that joined (their threads, to unpark them); its lock orders joining
    /// against publishing.
    roster: Mutex<Vec<Thread>>,
}

// SAFETY: `job` is written by the leader only while the job is closed and every helper that
// entered the previous one has reported it finished; a helper reads it only after entering
// an open job (the Release store that reopens `entered`, the AcqRel add that enters it);
// everything else is atomic or behind the roster's lock.
unsafe impl Sync for Team {}

/// The bit of `Team::entered` that closes a job to helpers that have not entered it yet.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// A published job: its tasks and their count. The pointer is valid for the job's duration
/// (the leader does not return from the job before every helper is done with it).
#[derive(Clone, Copy)]
struct Job {
    task: *const (dyn Fn(usize) + Sync),
    count: usize,
}

thread_local! {
    /// The team this thread leads, or null.
    static LEADING: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
    /// Whether this thread is a helper of some team right now.
    static HELPING: Cell<bool> = const { Cell::new(false) };
    /// Whether this thread is inside a task of a team job (a nested call runs in order).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

impl Team {
    /// A team for `size` threads; nothing runs until [`Team::lead`] and [`Team::help`].
    pub(crate) fn new(size: usize) -> Team {
        fn noop(_: usize) {}
        Team {
            size,
            generation: AtomicU64::new(0),
            job: UnsafeCell::new(Job {
                task: &noop as &(dyn Fn(usize) + Sync) as *const _,
                count: 0,
            }),
            next: AtomicUsize::new(0),
            entered: AtomicUsize::new(CLOSED),
            finished: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            roster: Mutex::new(Vec::with_capacity(size)),
        }
    }

    /// Runs `f` on this thread as the team's leader (helpers join as they arrive), then
    /// sends the helpers away, also when `f` panics.
    pub(crate) fn lead<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Dismiss<'t>(&'t Team, *const Team);
        impl Drop for Dismiss<'_> {
            fn drop(&mut self) {
                LEADING.with(|l| l.set(self.1));
                let roster = self.0.roster.lock().unwrap_or_else(|e| e.into_inner());
                self.0.stop.store(true, SeqCst);
                roster.iter().for_each(Thread::unpark);
            }
        }
        let _dismiss = Dismiss(self, LEADING.with(|l| l.replace(self)));
        f()
    }

    /// Runs on a helper thread until the leader dismisses the team; returns at once when the
    /// team is already dismissed or this thread is busy leading or helping another.
    pub(crate) fn help(&self) {
        if HELPING.with(Cell::get) || !LEADING.with(Cell::get).is_null() {
            return;
        }
        let mut seen = {
            let mut roster = self.roster.lock().unwrap_or_else(|e| e.into_inner());
            if self.stop.load(SeqCst) || roster.len() + 1 >= self.size {
                return;
            }
            roster.push(std::thread::current());
            // Jobs up to this generation run without this helper.
            self.generation.load(SeqCst)
        };
        HELPING.with(|h| h.set(true));
        while let Some(generation) = self.wait_for_job(seen) {
            seen = generation;
            if self.entered.fetch_add(1, AcqRel) & CLOSED != 0 {
                // Closed before this helper got to it: its tasks are all claimed.
                continue;
            }
            // Entered the open job, the current one: no later job is published before this
            // helper reports it finished. (Entering between the job's reopening and its
            // generation bump leaves `seen` one behind, so it may enter the same job again
            // next; each entry reports once, so the counts still agree.)
            seen = self.generation.load(Acquire);
            // SAFETY: the job was written before `entered` was reopened (Release) and this
            // helper saw it open (Acquire); the leader does not rewrite it before every helper
            // that entered reports it finished.
            let job = unsafe { *self.job.get() };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.run_tasks(job))) {
                self.panicked.store(true, SeqCst);
                drop(payload);
            }
            self.finished.fetch_add(1, Release);
        }
        HELPING.with(|h| h.set(false));
    }

    /// Waits until a generation after `seen` is published (`None` when the team is
    /// dismissed): spinning, running any rayon work it finds (a parallel iterator inside
    /// `install`) and now and then yielding the core to the OS, for [`SPIN`] after the last
    /// work; then in naps of 50 us growing to [`MAX_NAP`], still looking for rayon work
    /// between naps.
    fn wait_for_job(&self, seen: u64) -> Option<u64> {
        let mut idle_since = Instant::now();
        let mut nap = FIRST_NAP;
        let mut polls = 0u32;
        loop {
            if self.stop.load(Acquire) {
                return None;
            }
            let now = self.generation.load(Acquire);
            if now != seen {
                return Some(now);
            }
            polls = polls.wrapping_add(1);
            if !polls.is_multiple_of(8) {
                std::hint::spin_loop();
                continue;
            }
            if let Some(Yield::Executed) = rayon::yield_now() {
                idle_since = Instant::now();
                nap = FIRST_NAP;
            } else if idle_since.elapsed() <= SPIN {
                if polls.is_multiple_of(64) {
                    // Let the OS run something else on this core, should there be anything
                    // (more threads than cores): an idle core comes straight back.
                    std::thread::yield_now();
                }
            } else {
                self.parked.fetch_add(1, SeqCst);
                if self.generation.load(SeqCst) == seen && !self.stop.load(SeqCst) {
                    std::thread::park_timeout(nap);
                }
                self.parked.fetch_sub(1, SeqCst);
                nap = (nap * 2).min(MAX_NAP);
            }
        }
    }

    /// Claims and runs task indices of `job` until none is left.
    fn run_tasks(&self, job: Job) {
        // Restored on the way out, also when a task panics.
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                IN_TASK.with(|t| t.set(self.0));
            }
        }
        let _restore = Restore(IN_TASK.with(|t| t.replace(true)));
        loop {
            let i = self.next.fetch_add(1, AcqRel);
            if i >= job.count {
                break;
            }
            // SAFETY: the leader keeps the task alive until every helper finished this job.
            unsafe { (*job.task)(i) };
        }
    }

    /// Runs `task(i)` for `i` in `0..count` on the leader and its helpers (the leader's side
    /// of a job); panics, after every helper is done, if a task panicked.
    fn run_job(&self, count: usize, task: &(dyn Fn(usize) + Sync)) {
        {
            let roster = self.roster.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: every helper that entered the previous job finished it before the
            // previous `run_job` returned, and the job is closed until `entered` is reset
            // below, so no helper reads it while it is written; the lifetime is erased only
            // for this call, which outlives every use.
            unsafe {
                let task: *const (dyn Fn(usize) + Sync + '_) = task;
                *self.job.get() = Job {
                    task: std::mem::transmute::<
                        *const (dyn Fn(usize) + Sync + '_),
                        *const (dyn Fn(usize) + Sync + 'static),
                    >(task),
                    count,
                };
            }
            self.next.store(0, Relaxed);
            self.finished.store(0, Relaxed);
            self.entered.store(0, Release);
            self.generation.fetch_add(1, SeqCst);
            if self.parked.load(SeqCst) > 0 {
                roster.iter().for_each(Thread::unpark);
            }
        }
        // SAFETY: as above; the leader reads its own write.
        let job = unsafe { *self.job.get() };
        let mine = catch_unwind(AssertUnwindSafe(|| self.run_tasks(job)));
        let helpers = self.entered.fetch_or(CLOSED, AcqRel) & !CLOSED;
        while self.finished.load(Acquire) < helpers {
            std::hint::spin_loop();
        }
        // Cleared whoever panicked, so that it cannot fail the next job.
        let helper_panicked = self.panicked.swap(false, SeqCst);
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if helper_panicked {
            panic!("smelt: a kernel task panicked on a helper thread");
        }
    }
}

/// The team of `threads` threads this thread leads, if it leads one.
fn led(threads: usize) -> Option<&'static Team> {
    let team = LEADING.with(Cell::get);
    // SAFETY: `LEADING` points at a team only while its `lead` runs on this thread, and the
    // reference is used only within calls made from inside that `lead`.
    let team = unsafe { team.as_ref() }?;
    (team.size == threads).then_some(team)
}

/// Runs the job on the team this thread leads, if it leads one of `threads` threads; returns
/// false (running nothing) otherwise. The caller has checked that this thread is not inside
/// a task ([`in_task`]).
pub(crate) fn try_run(threads: usize, tasks: usize, task: &(dyn Fn(usize) + Sync)) -> bool {
    let Some(team) = led(threads) else {
        return false;
    };
    team.run_job(tasks, task);
    true
}

/// Whether this thread is inside a task of a team job (its own calls then run in order).
pub(crate) fn in_task() -> bool {
    IN_TASK.with(Cell::get)
}

/// Whether this thread leads a team of `threads` threads.
pub(crate) fn leads(threads: usize) -> bool {
    led(threads).is_some()
}

//! The thread layer: `for_each_task` inside and outside `install` (the spinning team), nested
//! calls, rayon work inside `install`, panics in tasks, and concurrent `install`s.

use rayon::prelude::*;
use smelt_kernels::cpu::threads::{for_each_task, install};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs `tasks` tasks of `work` each through `for_each_task(threads, ..)` and returns how
/// many times each task ran and which threads ran them.
fn run_tasks(threads: usize, tasks: usize, work: Duration) -> (Vec<usize>, HashSet<String>) {
    let counts: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
    let names = Mutex::new(HashSet::new());
    for_each_task(threads, tasks, |i| {
        counts[i].fetch_add(1, Ordering::SeqCst);
        let name = format!("{:?}", std::thread::current().id());
        names.lock().unwrap().insert(name);
        let began = Instant::now();
        while began.elapsed() < work {
            std::hint::spin_loop();
        }
    });
    let counts = counts.into_iter().map(AtomicUsize::into_inner).collect();
    (counts, names.into_inner().unwrap())
}

#[test]
fn every_task_runs_once_inside_and_outside_install() {
    for threads in [1, 2, 3] {
        for tasks in [0, 1, 2, 5, 64] {
            let (outside, _) = run_tasks(threads, tasks, Duration::ZERO);
            assert_eq!(
                outside,
                vec![1; tasks],
                "outside, {threads} threads, {tasks} tasks"
            );
            let inside = install(threads, || {
                (0..50)
                    .map(|_| run_tasks(threads, tasks, Duration::ZERO).0)
                    .collect::<Vec<_>>()
            });
            for counts in inside {
                assert_eq!(
                    counts,
                    vec![1; tasks],
                    "inside, {threads} threads, {tasks} tasks"
                );
            }
        }
    }
}

#[test]
fn the_team_spreads_tasks_over_its_threads() {
    // Helpers join when their worker picks them up, so give them a moment: some job of the
    // first hundred must have run on more than one thread. Four threads, a pool no other
    // test here uses: tests run at once, and a team whose helper job was taken by a worker
    // busy in another team goes on without that helper (see `cpu::team`).
    let spread = install(4, || {
        (0..100).any(|_| run_tasks(4, 8, Duration::from_micros(500)).1.len() > 1)
    });
    assert!(spread, "every task ran on the leader");
}

#[test]
fn a_nested_call_runs_its_tasks_in_order_on_the_same_thread() {
    let order = install(2, || {
        let order = Mutex::new(Vec::new());
        for_each_task(2, 2, |outer| {
            let me = std::thread::current().id();
            for_each_task(2, 4, |inner| {
                assert_eq!(
                    std::thread::current().id(),
                    me,
                    "a nested task changed thread"
                );
                order.lock().unwrap().push((outer, inner));
            });
        });
        order.into_inner().unwrap()
    });
    for outer in 0..2 {
        let inner: Vec<usize> = order
            .iter()
            .filter(|(o, _)| *o == outer)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(inner, vec![0, 1, 2, 3]);
    }
}

#[test]
fn rayon_work_inside_install_still_runs_on_the_helpers() {
    // Five threads, a pool no other test here uses (see the spread test above): a helper
    // busy in another test's team would leave every item to the leader.
    let names = install(5, || {
        let names = Mutex::new(HashSet::new());
        // Long enough items that the helpers, spinning, take some.
        for _ in 0..20 {
            (0..8).into_par_iter().for_each(|_| {
                names
                    .lock()
                    .unwrap()
                    .insert(format!("{:?}", std::thread::current().id()));
                std::thread::sleep(Duration::from_millis(2));
            });
        }
        names.into_inner().unwrap()
    });
    assert!(
        names.len() > 1,
        "a parallel iterator ran on one thread only"
    );
}

#[test]
fn a_panicking_task_panics_the_call_and_the_team_goes_on() {
    for threads in [2, 3] {
        let caught = std::panic::catch_unwind(|| {
            install(threads, || {
                for_each_task(threads, 16, |i| {
                    if i == 11 {
                        panic!("task 11");
                    }
                    std::thread::sleep(Duration::from_micros(200));
                })
            })
        });
        assert!(caught.is_err(), "{threads} threads: the panic was lost");
        let (counts, _) = install(threads, || run_tasks(threads, 16, Duration::ZERO));
        assert_eq!(counts, vec![1; 16]);
    }
}

/// When tasks panic on the leader and on a helper in the same job, the call panics once and
/// the next job of the same `install` runs clean (a helper's panic flag outlived the job when
/// the leader's own panic was re-raised first, and failed the next call).
#[test]
fn panics_on_leader_and_helper_in_one_job_do_not_fail_the_next_one() {
    let (next_ran, _) = install(2, || {
        for _ in 0..20 {
            let caught = std::panic::catch_unwind(|| {
                for_each_task(2, 16, |_| {
                    std::thread::sleep(Duration::from_micros(200));
                    panic!("every task panics");
                })
            });
            assert!(caught.is_err(), "the panics were lost");
            let clean = std::panic::catch_unwind(|| run_tasks(2, 16, Duration::ZERO));
            assert!(clean.is_ok(), "a clean job after the panics panicked");
        }
        run_tasks(2, 16, Duration::ZERO)
    });
    assert_eq!(next_ran, vec![1; 16]);
}

#[test]
fn installs_from_several_threads_at_once_all_finish() {
    let total = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                install(2, || {
                    for _ in 0..200 {
                        let (counts, _) = run_tasks(2, 8, Duration::from_micros(20));
                        total.fetch_add(counts.iter().sum::<usize>(), Ordering::SeqCst);
                    }
                })
            });
        }
    });
    assert_eq!(total.into_inner(), 4 * 200 * 8);
}

/// Kernels called from rayon work inside `install`: the leader can steal a piece of a
/// parallel iterator from a helper that is itself waiting (inside that rayon work) for the
/// piece, and then publish a team job from it. The job must not wait for that helper, which
/// cannot get to it: the two waited on each other (a hang within a few thousand rounds).
#[test]
fn kernels_inside_rayon_work_inside_install_do_not_deadlock() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let began = Instant::now();
        let mut rounds = 0;
        while rounds < 20_000 && began.elapsed() < Duration::from_secs(8) {
            let total = install(2, || {
                (0..256)
                    .into_par_iter()
                    .map(|i| {
                        let sum = AtomicUsize::new(0);
                        if i % 4 == 0 {
                            for_each_task(2, 4, |t| {
                                sum.fetch_add(t, Ordering::SeqCst);
                            });
                        }
                        // Work after the job widens the window in which a helper steals.
                        let mut x = 0u64;
                        for j in 0..20_000u64 {
                            x = x.wrapping_add(j * j);
                        }
                        std::hint::black_box(x);
                        sum.into_inner()
                    })
                    .sum::<usize>()
            });
            assert_eq!(total, 64 * 6);
            rounds += 1;
        }
        done.send(rounds).ok();
    });
    let Ok(rounds) = finished.recv_timeout(Duration::from_secs(60)) else {
        // The deadlocked workers belong to the shared 2-thread pool, which would hang every
        // later test of this binary: end the process instead.
        eprintln!("kernels called from rayon work inside install deadlocked");
        std::process::exit(101);
    };
    assert!(rounds > 0);
}

//! Timing: every implementation of one case runs in turn, rep after rep, so that a noisy
//! neighbour slows all of them alike; each gets the median of its reps after a warm-up.

use std::time::{Duration, Instant};

/// Runs each of `impls` once to warm up, then in turn until every one has at least
/// `min_reps` timings and the whole case has used about `budget`; returns median seconds.
pub fn interleaved(impls: &mut [&mut dyn FnMut()], min_reps: usize, budget: Duration) -> Vec<f64> {
    for f in impls.iter_mut() {
        f();
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); impls.len()];
    let start = Instant::now();
    let mut reps = 0;
    while reps < min_reps || (start.elapsed() < budget && reps < 200) {
        for (f, t) in impls.iter_mut().zip(times.iter_mut()) {
            let began = Instant::now();
            f();
            t.push(began.elapsed().as_secs_f64());
        }
        reps += 1;
    }
    times.into_iter().map(median).collect()
}

/// Median of a non-empty list.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

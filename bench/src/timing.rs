//! Timing: every implementation of one case runs in turn, rep after rep, so that a noisy
//! neighbour slows all of them alike; each gets the median of its reps after a warm-up.
//!
//! Within a rep each implementation runs twice in a row and only the second call is timed,
//! as in a loop of calls: it finds its own operands in cache and its threads awake, whatever
//! ran before it. Timing the first call instead measured what its predecessor left behind:
//! with the order fixed, our 2-thread GEMM always followed our own 1-thread run, during
//! which the second worker went to sleep, and its wake-up (0.1-0.5 ms on this VM) counted
//! against every 2-thread figure; and a batched GEMM's 12 MB of operands always came back
//! from memory after the large GEMM's 24 MB.

use std::time::{Duration, Instant};

/// Runs `impls` in turn, each twice in a row with the second call timed (the first is its
/// warm-up), until every one has at least `min_reps` timings and the whole case has used
/// about `budget`; returns median seconds.
pub fn interleaved(impls: &mut [&mut dyn FnMut()], min_reps: usize, budget: Duration) -> Vec<f64> {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); impls.len()];
    let start = Instant::now();
    let mut reps = 0;
    while reps < min_reps || (start.elapsed() < budget && reps < 200) {
        for (f, t) in impls.iter_mut().zip(times.iter_mut()) {
            f();
            let began = Instant::now();
            f();
            t.push(began.elapsed().as_secs_f64());
        }
        reps += 1;
    }
    times.into_iter().map(median).collect()
}

/// Median of a non-empty list: the middle value, or the mean of the two middle values of an
/// even count (as Python's `statistics.median`, which the peer scripts use).
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len().is_multiple_of(2) {
        (xs[mid - 1] + xs[mid]) / 2.0
    } else {
        xs[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![10.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![7.0]), 7.0);
    }

    #[test]
    fn only_the_second_call_of_each_pair_is_timed() {
        // Every first call of a pair is slow, every second one instant: the median must be
        // an instant call's time, and each rep must make exactly two calls per implementation.
        let (mut calls_a, mut calls_b) = (0usize, 0usize);
        let slow = Duration::from_millis(40);
        let mut a = || {
            calls_a += 1;
            if calls_a % 2 == 1 {
                std::thread::sleep(slow);
            }
        };
        let mut b = || calls_b += 1;
        let t = interleaved(&mut [&mut a, &mut b], 3, Duration::ZERO);
        assert_eq!((calls_a, calls_b), (6, 6));
        assert!(
            t[0] < slow.as_secs_f64() / 2.0,
            "timed a lead-in call: {t:?}"
        );
    }
}

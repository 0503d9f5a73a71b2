//! [`Profile`]: where a tape's steps spend their time, op by op, forward and backward.
//!
//! Off by default; [`Tape::enable_profile`](super::Tape::enable_profile) turns it on for every
//! later step on that tape. A forward op is charged the time from the previous op's output
//! (or the last leaf added) to its own: its checks, its output's allocation and its kernel,
//! plus whatever ran between the two (the previous op's bookkeeping after its output, such as
//! recording its node, and model code: views, lookups; all small next to a kernel). A
//! backward op is charged its own backward call, including the additions of gradients that
//! reach a value more than once. Each measurement is one `Instant::now()`, about 20-30 ns.

use std::time::{Duration, Instant};

/// Which pass an [`OpTime`] covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The op itself.
    Forward,
    /// Its backward: the gradients of its inputs.
    Backward,
}

impl Direction {
    /// `"forward"` or `"backward"`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        }
    }
}

/// The time one kind of op took in one direction, summed over every call since profiling
/// was enabled.
#[derive(Clone, Copy, Debug)]
pub struct OpTime {
    /// The op's name, as in its errors (`"linear"`, `"attention"`, `"gelu"`, ...).
    pub op: &'static str,
    /// Forward or backward.
    pub direction: Direction,
    /// Calls summed.
    pub calls: u64,
    /// Their time summed.
    pub time: Duration,
}

/// Op kinds a profile holds without growing: more than any model here runs.
const CAPACITY: usize = 64;

/// Time per op kind and direction, in the order each was first seen.
///
/// Its storage is reserved when profiling is enabled, so a profiled steady-state step still
/// makes no heap allocation.
#[derive(Clone, Debug)]
pub struct Profile {
    times: Vec<OpTime>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            times: Vec::with_capacity(CAPACITY),
        }
    }
}

impl Profile {
    /// Every op kind and direction seen, in first-seen order.
    pub fn times(&self) -> &[OpTime] {
        &self.times
    }

    /// The total of every op's time.
    pub fn total(&self) -> Duration {
        self.times.iter().map(|t| t.time).sum()
    }

    /// Adds one call of `op` in `direction` that took `time`.
    pub(crate) fn add(&mut self, op: &'static str, direction: Direction, time: Duration) {
        let found = self
            .times
            .iter_mut()
            .find(|t| t.direction == direction && t.op == op);
        match found {
            Some(t) => {
                t.calls += 1;
                t.time += time;
            }
            None => self.times.push(OpTime {
                op,
                direction,
                calls: 1,
                time,
            }),
        }
    }
}

/// The forward clock of one profiled step: when the last op's output (or leaf) was added.
#[derive(Debug)]
pub(crate) struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub(crate) fn start() -> Clock {
        Clock(Instant::now())
    }

    /// The time since the last lap (or the start), starting the next lap now.
    pub(crate) fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let elapsed = now - self.0;
        self.0 = now;
        elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_of_one_op_and_direction_add_up_in_one_entry() {
        let mut p = Profile::default();
        let ms = Duration::from_millis;
        p.add("linear", Direction::Forward, ms(2));
        p.add("gelu", Direction::Forward, ms(1));
        p.add("linear", Direction::Forward, ms(3));
        p.add("linear", Direction::Backward, ms(7));
        let entries: Vec<_> = p
            .times()
            .iter()
            .map(|t| (t.op, t.direction, t.calls, t.time))
            .collect();
        assert_eq!(
            entries,
            [
                ("linear", Direction::Forward, 2, ms(5)),
                ("gelu", Direction::Forward, 1, ms(1)),
                ("linear", Direction::Backward, 1, ms(7)),
            ]
        );
        assert_eq!(p.total(), ms(13));
    }
}

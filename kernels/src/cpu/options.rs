//! How a CPU kernel runs: how many threads, which instruction set.

use crate::cpu::isa::Isa;
use crate::cpu::threads::MAX_THREADS;
use crate::{Error, Result};

/// Threads and instruction set for one kernel call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuOptions {
    /// Threads to use; 1 runs on the caller without touching any thread pool.
    pub threads: usize,
    /// Kernel family; defaults to the fastest this CPU supports ([`Isa::detect`]).
    pub isa: Isa,
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions {
            threads: 1,
            isa: Isa::detect(),
        }
    }
}

impl CpuOptions {
    /// The detected instruction set on `threads` threads.
    pub fn threads(threads: usize) -> Self {
        CpuOptions {
            threads,
            ..Self::default()
        }
    }

    /// The same options with the kernel forced to `isa` (tests run every supported one).
    pub fn isa(self, isa: Isa) -> Self {
        CpuOptions { isa, ..self }
    }

    /// Checks that the instruction set runs on this CPU and that `1 <= threads <=`
    /// [`MAX_THREADS`], and starts the pool of `threads` workers if this is its first use: an
    /// error when the system refuses its threads (a process limit), not a panic later.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        if !self.isa.is_supported() {
            return Err(Error::Unsupported {
                op,
                detail: format!("this CPU cannot run the {} kernels", self.isa),
            });
        }
        if self.threads == 0 {
            return Err(Error::Unsupported {
                op,
                detail: "threads must be at least 1".into(),
            });
        }
        if self.threads > MAX_THREADS {
            return Err(Error::Unsupported {
                op,
                detail: format!(
                    "{} threads is more than the maximum {MAX_THREADS}",
                    self.threads
                ),
            });
        }
        super::threads::ready(self.threads).map_err(|detail| Error::Unsupported { op, detail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Thread counts outside `1..=MAX_THREADS` are errors naming the op (a count near
    /// `usize::MAX` used to reach the thread team and panic with a capacity overflow).
    #[test]
    fn validate_bounds_the_thread_count() {
        assert!(CpuOptions::threads(1).validate("op").is_ok());
        assert!(CpuOptions::threads(MAX_THREADS).validate("op").is_ok());
        let err = |threads| {
            CpuOptions::threads(threads)
                .validate("op")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(0), "op: unsupported: threads must be at least 1");
        assert_eq!(
            err(MAX_THREADS + 1),
            "op: unsupported: 1025 threads is more than the maximum 1024"
        );
        assert!(err(usize::MAX).contains(&format!("{} threads is more than", usize::MAX)));
    }
}

//! How a CPU kernel runs: how many threads, which instruction set.

use crate::cpu::isa::Isa;
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

    /// Checks that the instruction set runs on this CPU and that `threads >= 1`.
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
        Ok(())
    }
}

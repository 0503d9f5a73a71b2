//! Software prefetch: asking for a cache line before a kernel reads or writes it.

/// Where [`prefetch`] asks a cache line to go.
#[derive(Clone, Copy)]
pub(crate) enum Hint {
    /// Into L1 (`_MM_HINT_T0`).
    L1,
    /// Into L2 (`_MM_HINT_T1`).
    L2,
}

/// Hints the CPU to bring the cache line holding `p` where `hint` says. Never faults, so any
/// address works; no effect off x86_64.
///
/// There is no write hint: `_MM_HINT_ET0` compiles to a plain `prefetcht0` unless the
/// unstable `prfchw` target feature is enabled, and a real `prefetchw` (inline assembly)
/// measured within noise of it for GEMM's C and softmax's output (bench/NOTES.md).
#[inline(always)]
pub(crate) fn prefetch(p: *const f32, hint: Hint) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        // SAFETY: a prefetch is a hint; it neither faults nor changes memory, whatever `p`.
        unsafe {
            match hint {
                Hint::L1 => _mm_prefetch::<_MM_HINT_T0>(p.cast()),
                Hint::L2 => _mm_prefetch::<_MM_HINT_T1>(p.cast()),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, hint);
}

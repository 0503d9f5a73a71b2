//! Helpers shared by the kernel integration tests.

// Every test crate compiles this module and uses some of the helpers only.
#![allow(dead_code)]

pub mod gpu;

use smelt_kernels::cpu::{CpuOptions, Isa};
use smelt_kernels::{Error, Result};
use std::fmt::Debug;

/// `len` deterministic pseudo-random values in [-1, 1) from `seed` (a 64-bit LCG).
pub fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Every ISA this CPU supports, on 1 and on 2 threads.
pub fn all_options() -> Vec<CpuOptions> {
    Isa::supported()
        .flat_map(|isa| [1, 2].map(|t| CpuOptions::threads(t).isa(isa)))
        .collect()
}

/// Options a kernel must refuse: 0 threads, and every ISA this CPU does not support.
pub fn invalid_options() -> Vec<CpuOptions> {
    let mut cases = vec![CpuOptions::threads(0)];
    cases.extend(
        Isa::ALL
            .into_iter()
            .filter(|i| !i.is_supported())
            .map(|i| CpuOptions::threads(1).isa(i)),
    );
    cases
}

/// The error is a shape error whose message names the op and contains every `parts`.
pub fn assert_shape_error<T: Debug>(result: Result<T>, op: &str, parts: &[&str]) {
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{op}:")), "{msg}");
    for part in parts {
        assert!(msg.contains(part), "{msg} lacks {part:?}");
    }
}

/// The error is an [`Error::Unsupported`] (an ISA this CPU lacks, or 0 threads).
pub fn assert_unsupported<T: Debug>(result: Result<T>) {
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}

/// The largest of `errors`, or NaN when any is NaN (`f32::max` would drop a NaN, so an output
/// left NaN somewhere would pass a bound on the largest error).
pub fn worst(errors: impl IntoIterator<Item = f32>) -> f32 {
    errors
        .into_iter()
        .fold(0.0, |a, e| if e.is_nan() || e > a { e } else { a })
}

//! CPU kernels: SIMD code chosen at run time by CPU feature detection.

pub mod gemm;
pub mod isa;
mod options;
pub(crate) mod simd;
pub mod threads;

pub use isa::Isa;
pub use options::CpuOptions;

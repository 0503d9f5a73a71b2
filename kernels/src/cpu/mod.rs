//! CPU kernels: SIMD code chosen at run time by CPU feature detection.

pub mod gemm;
pub mod isa;
pub mod math;
mod options;
pub(crate) mod simd;
pub mod softmax;
pub mod threads;

pub use isa::Isa;
pub use options::CpuOptions;

//! CPU kernels: SIMD code chosen at run time by CPU feature detection.

pub mod activation;
pub mod adamw;
pub mod attention;
pub(crate) mod check;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod gemm;
pub mod isa;
pub mod layernorm;
pub mod loss;
pub mod math;
mod options;
pub mod pooling;
mod prefetch;
pub(crate) mod simd;
pub mod softmax;
mod split;
mod team;
pub mod threads;

pub use isa::Isa;
pub use options::CpuOptions;

//! Tensor operations: each reads its operands through the arena, checks their shapes, runs a
//! `smelt_kernels` kernel and returns a fresh contiguous arena tensor. On success none of them
//! allocates from the global allocator.

mod matmul;
mod softmax;

pub use matmul::matmul;
pub use softmax::{softmax, softmax_backward};

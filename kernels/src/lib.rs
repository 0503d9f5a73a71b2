//! Raw compute kernels of smelt.
//!
//! Kernels know nothing about tensors: they take slices (or raw pointers in the `unsafe`
//! variants), sizes and strides. Every fast kernel has a plain reference version beside it
//! that the tests compare against.

pub mod cpu;
mod error;
pub mod gpu;

pub use error::{Error, Result};

//! The smelt tensor engine.
//!
//! A [`Tensor`] is a cheap-to-clone handle: a strided [`Layout`] over a [`Storage`], either a
//! slice of the step's [`Arena`] or a long-lived host buffer. Views (transpose, reshape,
//! narrow) move no data. Ops in [`ops`] read their operands through the arena, run the
//! `smelt_kernels` kernels, and return fresh arena tensors; a steady-state step allocates
//! nothing from the global allocator.

pub mod arena;
pub mod autograd;
mod device;
mod error;
pub mod formats;
pub mod ops;
pub mod shape;
pub mod tensor;
#[cfg(test)]
mod testing;

pub use arena::{Arena, Fresh, Mark};
pub use autograd::{Graph, Leaves, Tape, Var};
pub use device::Device;
pub use error::{Error, Result};
pub use shape::{Layout, Shape, MAX_RANK};
pub use smelt_kernels::cpu::CpuOptions;
pub use tensor::{ExternalData, Storage, Tensor};

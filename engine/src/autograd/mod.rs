//! Reverse-mode autograd: a [`Graph`] runs ops on [`Var`]s and records them on a [`Tape`];
//! [`Graph::backward`] walks the record in reverse and gives every parameter its gradient.
//!
//! Each op lives in its own file with its forward (a `Graph` method) and its backward. Fused
//! ops (layer norm, attention, GELU) have real backward kernels: no gradient is dropped.
//! Outputs, saved tensors and gradients are arena tensors; nothing is saved when recording is
//! off.

mod activation;
mod add;
mod attention;
mod dropout;
mod embedding;
mod layer_norm;
mod linear;
mod loss;
mod node;
mod pooling;
mod profile;
mod tape;

pub use profile::{Direction, OpTime, Profile};
pub use tape::{Graph, Leaves, Tape, Var};

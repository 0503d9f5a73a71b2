//! The one error type of the kernels crate.

use std::fmt;

/// What went wrong in a kernel call; every message names the operation and the shapes involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Operand shapes do not agree, e.g. `gemm: A is 3x4 but B is 5x2`.
    Shape { op: &'static str, detail: String },
    /// A slice is too short for the shape and strides it is described with.
    OutOfBounds {
        op: &'static str,
        operand: &'static str,
        needed: usize,
        len: usize,
    },
    /// Strides that would make an output element alias another one.
    Overlap { op: &'static str, detail: String },
    /// A GPU buffer holds another element type than the op reads from it (bf16 for f32).
    Dtype { op: &'static str, detail: String },
    /// A requested instruction set is not supported by this CPU.
    Unsupported { op: &'static str, detail: String },
    /// A GPU device is absent or failed, or a kernel run on ptx-sim failed one of its checks.
    Device { op: &'static str, detail: String },
    /// A scalar argument outside the values the op accepts, e.g. an AdamW `beta1` of 1.
    Value { op: &'static str, detail: String },
}

/// Result alias for kernel calls.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, detail } => write!(f, "{op}: shape mismatch: {detail}"),
            Error::OutOfBounds {
                op,
                operand,
                needed,
                len,
            } => write!(
                f,
                "{op}: operand {operand} needs a slice of at least {needed} elements for its shape and strides, got {len}"
            ),
            Error::Overlap { op, detail } => write!(f, "{op}: overlapping output: {detail}"),
            Error::Dtype { op, detail } => write!(f, "{op}: dtype mismatch: {detail}"),
            Error::Unsupported { op, detail } => write!(f, "{op}: unsupported: {detail}"),
            Error::Device { op, detail } => write!(f, "{op}: device: {detail}"),
            Error::Value { op, detail } => write!(f, "{op}: invalid argument: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

//! The one error type of the engine crate.

use crate::shape::Shape;
use std::fmt;

/// What went wrong in an engine call; every message names the operation and the shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Shapes, dimensions or view arguments do not fit, e.g.
    /// `matmul: lhs [3, 4] and rhs [5, 2]: inner dimensions 4 and 5 differ`.
    Shape { op: &'static str, detail: String },
    /// An arena tensor whose memory was released by `Arena::reset` or `Arena::reset_to`.
    Released { op: &'static str, shape: Shape },
    /// An arena tensor read through an arena other than the one that allocated it.
    ForeignArena { op: &'static str, shape: Shape },
    /// `Arena::reset_to` with a mark already released by a reset, or from another arena.
    StaleMark,
    /// `Arena::mark` nested deeper than the arena's fixed scope stack allows.
    MarkDepth { max: usize },
    /// The system allocator refused a new arena block.
    OutOfMemory { bytes: usize },
    /// A kernel rejected its arguments.
    Kernel(smelt_kernels::Error),
    /// A file (safetensors, JSON) is malformed, truncated or lacks something: names the file
    /// and, where it applies, the tensor or key and the shapes.
    Format { file: String, detail: String },
    /// The operating system refused to open, map or write a file.
    Io { file: String, detail: String },
    /// An input value outside what the model accepts (token id past the vocabulary, a sequence
    /// longer than the position table, ...).
    Input { op: &'static str, detail: String },
}

/// Result alias for engine calls.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, detail } => write!(f, "{op}: {detail}"),
            Error::Released { op, shape } => write!(
                f,
                "{op}: tensor {shape} used after Arena::reset (or Arena::reset_to) released its memory"
            ),
            Error::ForeignArena { op, shape } => write!(
                f,
                "{op}: tensor {shape} was allocated by another arena than the one given"
            ),
            Error::StaleMark => write!(
                f,
                "Arena::reset_to: the mark was released by an earlier reset or reset_to, or belongs to another arena"
            ),
            Error::MarkDepth { max } => write!(
                f,
                "Arena::mark: more than {max} nested marks; release one with reset_to first"
            ),
            Error::OutOfMemory { bytes } => write!(
                f,
                "Arena::alloc: the system allocator refused a block of {bytes} bytes"
            ),
            Error::Kernel(e) => write!(f, "{e}"),
            Error::Format { file, detail } => write!(f, "{file}: {detail}"),
            Error::Io { file, detail } => write!(f, "{file}: {detail}"),
            Error::Input { op, detail } => write!(f, "{op}: {detail}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Kernel(e) => Some(e),
            _ => None,
        }
    }
}

impl From<smelt_kernels::Error> for Error {
    fn from(e: smelt_kernels::Error) -> Self {
        Error::Kernel(e)
    }
}

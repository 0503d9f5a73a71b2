//! The one error type of the crate: where it happened (kernel, block, thread, PTX line,
//! address) and what kind of problem it is.

use std::fmt;

/// What went wrong, so tests can tell a race from an out-of-bounds access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The PTX text is malformed.
    Parse,
    /// The PTX is well formed but uses an instruction or form the interpreter does not run.
    Unsupported,
    /// A bad launch: unknown kernel, wrong arguments, zero or oversized grid/block.
    Launch,
    /// A load or store outside every allocation (global) or outside the declared size (shared,
    /// local); a `cp.async` whose src-size is larger than its cp-size.
    OutOfBounds,
    /// An address not aligned to the size of the access.
    Misaligned,
    /// Two threads of a block touched the same shared bytes between barriers, one of them
    /// writing (a `cp.async` writes its destination from its issue to its completion); a thread
    /// touched the destination of its own `cp.async` before completing it; blocks of a launch
    /// touched the same global bytes, one of them storing.
    Race,
    /// Threads wait at a barrier that others never reach, or reach after exiting.
    BarrierDivergence,
    /// Warp-level misuse: a `.sync` warp instruction (`shfl`, `vote`, `match`, `redux`,
    /// `bar.warp.sync`) whose member mask leaves out the lane executing it, names lanes that
    /// exited or never arrive, or names a lane that executes it with another mask; an `.aligned`
    /// one (`mma`) that not all 32 lanes of a warp execute together.
    Warp,
    /// The kernel executed `trap`, or a call recursed.
    Trap,
    /// The launch ran more thread-instructions than its limit (an endless loop?).
    InstructionLimit,
}

/// Where in a launch an error happened. Empty fields are left out of the message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// Kernel (entry) name.
    pub kernel: Option<String>,
    /// `%ctaid` of the block.
    pub block: Option<[u32; 3]>,
    /// `%tid` of the thread.
    pub thread: Option<[u32; 3]>,
    /// 1-based line in the PTX text.
    pub line: Option<u32>,
    /// Address of the access, in its state space.
    pub address: Option<u64>,
}

/// An error from parsing PTX, launching a kernel or a check that failed while it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimError {
    kind: ErrorKind,
    message: String,
    location: Location,
}

impl SimError {
    /// An error of `kind` with a message and no location yet.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            location: Location::default(),
        }
    }

    /// A parse error at a PTX line.
    pub fn parse(line: u32, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Parse, message).at_line(line)
    }

    /// A launch error (bad arguments, sizes, names).
    pub fn launch(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Launch, message)
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where it happened.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Sets the PTX line unless one is already set.
    pub fn at_line(mut self, line: u32) -> Self {
        self.location.line.get_or_insert(line);
        self
    }

    /// Sets the kernel name unless one is already set.
    pub fn in_kernel(mut self, name: &str) -> Self {
        self.location.kernel.get_or_insert_with(|| name.to_string());
        self
    }

    /// Sets the block and thread unless already set.
    pub fn in_thread(mut self, block: [u32; 3], thread: [u32; 3]) -> Self {
        self.location.block.get_or_insert(block);
        self.location.thread.get_or_insert(thread);
        self
    }

    /// Sets the block unless already set.
    pub fn in_block(mut self, block: [u32; 3]) -> Self {
        self.location.block.get_or_insert(block);
        self
    }

    /// Sets the address unless already set.
    pub fn at_address(mut self, address: u64) -> Self {
        self.location.address.get_or_insert(address);
        self
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.location;
        let mut parts = Vec::new();
        if let Some(k) = &l.kernel {
            parts.push(format!("kernel {k}"));
        }
        if let Some([x, y, z]) = l.block {
            parts.push(format!("block ({x},{y},{z})"));
        }
        if let Some([x, y, z]) = l.thread {
            parts.push(format!("thread ({x},{y},{z})"));
        }
        if let Some(line) = l.line {
            parts.push(format!("PTX line {line}"));
        }
        if let Some(a) = l.address {
            parts.push(format!("address {a:#x}"));
        }
        let kind = format!("{:?}", self.kind);
        if parts.is_empty() {
            write!(f, "{kind}: {}", self.message)
        } else {
            write!(f, "{kind} at {}: {}", parts.join(", "), self.message)
        }
    }
}

impl std::error::Error for SimError {}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, SimError>;

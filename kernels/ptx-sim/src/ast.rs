//! The parsed form of a PTX module: declarations and instructions as written, names not yet
//! resolved. `decode` turns it into something the interpreter runs.

use crate::inst::Ty;

/// State spaces a variable can be declared in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// `.global`: device memory visible to all threads.
    Global,
    /// `.shared`: per-block memory.
    Shared,
    /// `.const`: read-only module data.
    Const,
    /// `.local`: per-thread memory.
    Local,
    /// `.param`: kernel or function parameters.
    Param,
}

/// A variable declaration: `.shared .align 4 .b8 tile[1024];`, `.const .f32 c[2] = {...};`.
#[derive(Clone, Debug)]
pub struct VarDecl {
    /// Its state space.
    pub space: Space,
    /// Name as written.
    pub name: String,
    /// Alignment in bytes (defaults to the element size).
    pub align: u32,
    /// Total size in bytes; 0 for `.extern .shared x[]` (dynamic shared memory).
    pub size: usize,
    /// `.extern` with no size: dynamic shared memory.
    pub dynamic: bool,
    /// Initializer values as raw little-endian bytes (empty: zeros).
    pub init: Vec<u8>,
    /// Line of the declaration.
    pub line: u32,
}

/// One operand of an instruction as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A name: register, special register, symbol or label.
    Name(String),
    /// An integer literal (already negated if written with `-`).
    Int(i64),
    /// A hex float literal `0fXXXXXXXX` (f32 bits).
    F32(u32),
    /// A hex double literal `0dXXXXXXXXXXXXXXXX` (f64 bits).
    F64(u64),
    /// `!%p`: a negated predicate.
    Not(String),
    /// `[base+offset]`: base is a register or symbol name, or absent for `[imm]`.
    Addr(Option<String>, i64),
    /// `{a, b, ...}`: a vector of operands (`_` is a sink).
    Vector(Vec<Operand>),
    /// `a|b`: two destinations (setp, shfl).
    Pair(String, String),
    /// `(a, b, ...)`: a call's argument or return list.
    List(Vec<String>),
}

/// An instruction as written.
#[derive(Clone, Debug)]
pub struct Instruction {
    /// 1-based PTX line.
    pub line: u32,
    /// `@p` (false) or `@!p` (true) guard.
    pub guard: Option<(bool, String)>,
    /// Opcode split at dots: `ld.global.nc.f32` -> ["ld", "global", "nc", "f32"].
    pub opcode: Vec<String>,
    /// Operands in order.
    pub operands: Vec<Operand>,
}

/// A statement in a function body.
#[derive(Clone, Debug)]
pub enum Statement {
    /// `.reg .f32 %f<16>;` (count Some(16): %f0..%f15) or `.reg .b64 %SP;`; `pred` for
    /// `.reg .pred`.
    Reg {
        names: Vec<(String, Option<u32>)>,
        pred: bool,
    },
    /// A `.local`, `.shared` or `.param` variable inside the body.
    Var(VarDecl),
    /// `name:`.
    Label(String),
    /// `name: .branchtargets L1, L2, ...;`: the jump table of a `brx.idx`.
    BranchTargets {
        /// The table's label.
        name: String,
        /// Target labels in index order.
        labels: Vec<String>,
    },
    /// An instruction.
    Inst(Instruction),
    /// `{`: opens a scope for declarations.
    Open,
    /// `}`: closes it.
    Close,
}

/// A parameter of an entry or function.
#[derive(Clone, Debug)]
pub struct Param {
    /// Name as written.
    pub name: String,
    /// Element type.
    pub ty: Ty,
    /// Size in bytes.
    pub size: usize,
    /// Alignment in bytes.
    pub align: u32,
}

/// An `.entry` (kernel) or `.func` (device function) with its body.
#[derive(Clone, Debug)]
pub struct Function {
    /// Name.
    pub name: String,
    /// `.entry` (true) or `.func`.
    pub is_entry: bool,
    /// Return parameters (`.func` only).
    pub returns: Vec<Param>,
    /// Parameters.
    pub params: Vec<Param>,
    /// Body statements; None for a declaration without body.
    pub body: Option<Vec<Statement>>,
    /// `.maxntid x, y, z`: the largest block it may be launched with.
    pub maxntid: Option<[u32; 3]>,
    /// `.reqntid x, y, z`: the one block size it must be launched with.
    pub reqntid: Option<[u32; 3]>,
}

/// A whole module.
#[derive(Clone, Debug, Default)]
pub struct ModuleAst {
    /// `.version`, e.g. "8.8".
    pub version: String,
    /// `.target`, e.g. ["sm_80"].
    pub target: Vec<String>,
    /// `.address_size` (64 unless stated).
    pub address_size: u32,
    /// Module-level variables.
    pub vars: Vec<VarDecl>,
    /// Entries and functions.
    pub functions: Vec<Function>,
}

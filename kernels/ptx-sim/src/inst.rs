//! The decoded form the interpreter runs: every name resolved to a register index, an address
//! or an instruction index, every opcode to a typed operation.

/// A PTX scalar type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// Untyped bits of 8, 16, 32 or 64.
    B(u8),
    /// Unsigned integer of 8, 16, 32 or 64 bits.
    U(u8),
    /// Signed integer of 8, 16, 32 or 64 bits.
    S(u8),
    /// Half precision.
    F16,
    /// Two halves packed in 32 bits.
    F16x2,
    /// bfloat16.
    Bf16,
    /// Two bfloat16 packed in 32 bits.
    Bf16x2,
    /// Single precision.
    F32,
    /// Double precision.
    F64,
    /// A predicate.
    Pred,
}

impl Ty {
    /// Parses a type word without its dot (`u32`, `f16x2`, `pred`).
    pub fn parse(word: &str) -> Option<Ty> {
        let sized = |w: &str| {
            w.parse::<u8>()
                .ok()
                .filter(|b| matches!(b, 8 | 16 | 32 | 64))
        };
        Some(match word {
            "f16" => Ty::F16,
            "f16x2" => Ty::F16x2,
            "bf16" => Ty::Bf16,
            "bf16x2" => Ty::Bf16x2,
            "f32" => Ty::F32,
            "f64" => Ty::F64,
            "pred" => Ty::Pred,
            _ => {
                let bits = sized(word.get(1..)?)?;
                match word.as_bytes().first() {
                    Some(b'b') => Ty::B(bits),
                    Some(b'u') => Ty::U(bits),
                    Some(b's') => Ty::S(bits),
                    _ => return None,
                }
            }
        })
    }

    /// Width in bits (a predicate counts as 1).
    pub fn bits(self) -> u32 {
        match self {
            Ty::B(n) | Ty::U(n) | Ty::S(n) => n as u32,
            Ty::F16 | Ty::Bf16 => 16,
            Ty::F16x2 | Ty::Bf16x2 | Ty::F32 => 32,
            Ty::F64 => 64,
            Ty::Pred => 1,
        }
    }

    /// Width in bytes of a memory access of this type.
    pub fn bytes(self) -> u32 {
        self.bits().div_ceil(8)
    }

    /// Signed integer.
    pub fn is_signed(self) -> bool {
        matches!(self, Ty::S(_))
    }

    /// A 16-bit float type or a pair of them packed in 32 bits: the element type and count.
    pub fn halves(self) -> Option<(Ty, u32)> {
        match self {
            Ty::F16 | Ty::Bf16 => Some((self, 1)),
            Ty::F16x2 => Some((Ty::F16, 2)),
            Ty::Bf16x2 => Some((Ty::Bf16, 2)),
            _ => None,
        }
    }

    /// Any floating-point type.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2 | Ty::F32 | Ty::F64
        )
    }
}

/// Rounding modifier of a float operation or conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rnd {
    /// To nearest even (also the default).
    Rn,
    /// Toward zero.
    Rz,
    /// Toward minus infinity.
    Rm,
    /// Toward plus infinity.
    Rp,
    /// Round to integer: nearest even, zero, minus or plus infinity (`rni`...).
    Int(IntRnd),
    /// To nearest, ties away from zero (`.rna`: only `cvt.rna.tf32.f32` has it).
    Rna,
}

/// Round-to-integer modes of `cvt` (`.rni .rzi .rmi .rpi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntRnd {
    /// Nearest even.
    N,
    /// Toward zero.
    Z,
    /// Toward minus infinity.
    M,
    /// Toward plus infinity.
    P,
}

/// A special register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// `%tid.{x,y,z}`.
    Tid(u8),
    /// `%ntid.{x,y,z}`.
    Ntid(u8),
    /// `%ctaid.{x,y,z}`.
    Ctaid(u8),
    /// `%nctaid.{x,y,z}`.
    Nctaid(u8),
    /// `%laneid`.
    Laneid,
    /// `%warpid`.
    Warpid,
    /// `%nwarpid`.
    Nwarpid,
    /// `%clock` (32 bits) and `%clock64`: instructions executed by the block so far.
    Clock,
    /// `%lanemask_eq`, `_lt`, `_le`, `_gt`, `_ge`.
    Lanemask(Cmp),
    /// `%smid`, `%nsmid`, `%gridid` and similar: reported as 0 (one simulated SM).
    Zero,
}

/// A source operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// A register index.
    Reg(u32),
    /// An immediate (already converted to the instruction's type bits).
    Imm(u64),
    /// A special register.
    Special(Special),
}

/// A destination register index; `SINK` discards the value (`_`).
pub type Dst = u32;

/// The destination that discards its value.
pub const SINK: Dst = u32::MAX;

/// A state space of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemSpace {
    /// Generic address: global, or one of the shared/local/const windows.
    Generic,
    /// `.global`.
    Global,
    /// `.shared`.
    Shared,
    /// `.local`.
    Local,
    /// `.const`.
    Const,
    /// `.param` of the kernel (read-only, shared by all threads).
    KernelParam,
    /// `.param` of a device function or a call site (per thread, in the local frame).
    FrameParam,
}

/// An address operand: `[base + offset]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr {
    /// Register holding the base; None for a symbol or immediate address (all in `offset`).
    pub base: Option<u32>,
    /// Byte offset (a symbol's address is folded in here).
    pub offset: i64,
}

/// Comparison of `setp`/`set`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Unordered forms: true when either operand is NaN.
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    /// Both operands are numbers.
    Num,
    /// Either operand is NaN.
    Nan,
}

/// Boolean combination of predicates (`and`, `or`, `xor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

/// Two-operand integer and bit operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOp {
    Add,
    Sub,
    /// `mul.lo`.
    MulLo,
    /// `mul.hi`.
    MulHi,
    /// `mul.wide`: result twice the source width.
    MulWide,
    /// `mul24.lo`: low 32 bits of the product of the low 24 bits of each operand.
    Mul24Lo,
    /// `mul24.hi`: bits 16..48 of that 48-bit product.
    Mul24Hi,
    Div,
    Rem,
    Min,
    Max,
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

/// One-operand integer and bit operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntUnary {
    Not,
    Cnot,
    Neg,
    Abs,
    Popc,
    Clz,
    Brev,
    /// `bfind`: position of the most significant non-sign bit; `shiftamt` counts from the top.
    Bfind {
        shiftamt: bool,
    },
}

/// Two-operand float operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatOp {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    /// `copysign a, b`: magnitude of b with the sign of a.
    Copysign,
}

/// One-operand float operations, `approx` for the hardware's fast forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatUnary {
    Neg,
    Abs,
    Sqrt,
    Rsqrt,
    Rcp,
    Ex2,
    Lg2,
    Sin,
    Cos,
    Tanh,
}

/// Operation of `atom`/`red`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomOp {
    Add,
    Min,
    Max,
    Exch,
    Cas,
    And,
    Or,
    Xor,
    Inc,
    Dec,
}

/// Mode of `shfl.sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

/// Mode of `vote.sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteMode {
    All,
    Any,
    Uni,
    Ballot,
}

/// Float modifiers shared by arithmetic instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloatMods {
    /// Rounding mode.
    pub rnd: Rnd,
    /// Flush subnormal inputs and results to zero.
    pub ftz: bool,
    /// Clamp the result to [0, 1].
    pub sat: bool,
    /// The hardware's approximate form (`.approx`).
    pub approx: bool,
    /// `.relu`: negative results become +0 (NaN stays NaN).
    pub relu: bool,
    /// `min.NaN`/`max.NaN`: a NaN operand gives NaN instead of being ignored.
    pub nan: bool,
    /// `.satfinite`: results beyond the largest finite value (infinities included) become it.
    pub satfinite: bool,
}

impl FloatMods {
    /// Round to nearest even and no other modifier.
    pub const NEAREST: FloatMods = FloatMods {
        rnd: Rnd::Rn,
        ftz: false,
        sat: false,
        approx: false,
        relu: false,
        nan: false,
        satfinite: false,
    };
}

/// Operation of `redux.sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduxOp {
    Add,
    Min,
    Max,
    And,
    Or,
    Xor,
}

/// Reduction of `bar.red`: count the true predicates, or and/or them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarRedOp {
    Popc,
    And,
    Or,
}

/// The integer dot products `dp4a` and `dp2a.lo/.hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotKind {
    /// Four bytes of a times four bytes of b.
    Dp4a,
    /// Two halves of a times bytes 0, 1 (`lo`: false) or 2, 3 (`hi`: true) of b.
    Dp2a { hi: bool },
}

/// Bytes copied between local-frame slots when a call starts or returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameCopy {
    /// Source offset in the thread's frame.
    pub from: u32,
    /// Destination offset in the thread's frame.
    pub to: u32,
    /// Number of bytes.
    pub len: u32,
}

/// A decoded operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `mov`/`cvta` between registers, immediates, special registers and symbol addresses.
    Mov { d: Dst, a: Src, bits: u32 },
    /// `mov.b64 d, {a, b}`: packs `parts` (lowest first) of `bits` each.
    Pack { d: Dst, parts: Vec<Src>, bits: u32 },
    /// `mov.b64 {a, b}, d`: splits a register into `ds` (lowest first) of `bits` each.
    Unpack { ds: Vec<Dst>, a: Src, bits: u32 },
    /// Converts a generic address to or from a state space (`cvta`, `cvta.to`).
    Cvta {
        d: Dst,
        a: Src,
        space: MemSpace,
        to_generic: bool,
        bits: u32,
    },
    /// Integer two-operand op.
    Int {
        op: IntOp,
        ty: Ty,
        d: Dst,
        a: Src,
        b: Src,
        sat: bool,
    },
    /// Integer one-operand op.
    IntUn {
        op: IntUnary,
        ty: Ty,
        d: Dst,
        a: Src,
    },
    /// `mad.lo/hi/wide`: `a * b + c` keeping the low, high or wide half of the product.
    Mad {
        mode: IntOp,
        ty: Ty,
        d: Dst,
        a: Src,
        b: Src,
        c: Src,
    },
    /// `sad`: `c + |a - b|`.
    Sad {
        ty: Ty,
        d: Dst,
        a: Src,
        b: Src,
        c: Src,
    },
    /// Float two-operand op.
    Float {
        op: FloatOp,
        ty: Ty,
        m: FloatMods,
        d: Dst,
        a: Src,
        b: Src,
    },
    /// Float one-operand op.
    FloatUn {
        op: FloatUnary,
        ty: Ty,
        m: FloatMods,
        d: Dst,
        a: Src,
    },
    /// `fma`/`mad` on floats: `a * b + c` rounded once.
    Fma {
        ty: Ty,
        m: FloatMods,
        d: Dst,
        a: Src,
        b: Src,
        c: Src,
    },
    /// `testp.{finite,infinite,number,notanumber,normal,subnormal}`.
    Testp { kind: u8, ty: Ty, d: Dst, a: Src },
    /// `setp.cmp[.bool]`: `d = cmp(a, b) bool c`, `d2 = !cmp(a, b) bool c`; for `.f16x2` and
    /// `.bf16x2`, `d` is the comparison of the low halves and `d2` that of the high halves.
    Setp {
        cmp: Cmp,
        ty: Ty,
        ftz: bool,
        d: Dst,
        d2: Dst,
        a: Src,
        b: Src,
        comb: Option<(BoolOp, Src, bool)>,
    },
    /// `set.cmp.dtype`: all ones (or 1.0 in a float `dtype`) when true; per half for
    /// `.f16x2`/`.bf16x2` sources.
    Set {
        cmp: Cmp,
        ty: Ty,
        dty: Ty,
        ftz: bool,
        d: Dst,
        a: Src,
        b: Src,
    },
    /// `selp`: `c ? a : b`.
    Selp {
        bits: u32,
        d: Dst,
        a: Src,
        b: Src,
        c: Src,
    },
    /// `slct`: `c >= 0 ? a : b` with c of type `cty` (`.ftz`: a subnormal f32 c counts as 0).
    Slct {
        bits: u32,
        cty: Ty,
        ftz: bool,
        d: Dst,
        a: Src,
        b: Src,
        c: Src,
    },
    /// Predicate logic `and/or/xor/not` on predicates.
    PredLogic {
        op: Option<BoolOp>,
        d: Dst,
        a: Src,
        b: Src,
    },
    /// `cvt.dty.sty` with rounding and saturation.
    Cvt {
        dty: Ty,
        sty: Ty,
        m: FloatMods,
        d: Dst,
        a: Src,
    },
    /// `cvt.{rna,rn,rz}{.satfinite}{.relu}.tf32.f32 d, a`: the f32 `a` rounded to TF32 (8
    /// exponent bits, 10 explicit significand bits) in mode `m.rnd`, stored as f32 bits whose
    /// low 13 bits are zero; `m.satfinite` and `m.relu` as in the other conversions.
    CvtTf32 { m: FloatMods, d: Dst, a: Src },
    /// `cvt.rn.f16x2.f32 d, a, b` and the bf16x2 form: a to the upper half, b to the lower.
    CvtPack {
        dty: Ty,
        m: FloatMods,
        d: Dst,
        a: Src,
        b: Src,
    },
    /// `bfe`: extract `c` bits at `b`.
    Bfe {
        ty: Ty,
        d: Dst,
        a: Src,
        b: Src,
        c: Src,
    },
    /// `bfi`: insert `c` bits at `d`-position of `a` into `b`.
    Bfi {
        bits: u32,
        d: Dst,
        a: Src,
        b: Src,
        pos: Src,
        len: Src,
    },
    /// `dp4a`/`dp2a`: `c` plus the dot product of packed bytes or halves of `a` and bytes of `b`.
    Dot {
        kind: DotKind,
        a_signed: bool,
        b_signed: bool,
        d: Dst,
        a: Src,
        b: Src,
        c: Src,
    },
    /// `vabsdiff4` without selectors: per-byte `|a - b|`, summed into `c` when `add`.
    Vabsdiff4 {
        signed: bool,
        add: bool,
        d: Dst,
        a: Src,
        b: Src,
        c: Src,
    },
    /// `prmt` (default mode only).
    Prmt { d: Dst, a: Src, b: Src, c: Src },
    /// `shf.l/.r` `.wrap/.clamp`: funnel shift of the 64-bit `b:a` by `c`.
    Shf {
        left: bool,
        wrap: bool,
        d: Dst,
        a: Src,
        b: Src,
        c: Src,
    },
    /// `ld`: `ds.len()` elements of `ty`; `nc` for `ld.global.nc` (read-only data), `strong`
    /// for a memory-model qualifier (`.acquire`, `.relaxed`, `.volatile`, ...).
    Ld {
        space: MemSpace,
        nc: bool,
        strong: bool,
        ty: Ty,
        ds: Vec<Dst>,
        addr: Addr,
    },
    /// `st`; `strong` for a memory-model qualifier (`.release`, `.relaxed`, `.volatile`, ...).
    St {
        space: MemSpace,
        strong: bool,
        ty: Ty,
        srcs: Vec<Src>,
        addr: Addr,
    },
    /// `atom` (with `d`) or `red` (d = SINK).
    Atom {
        space: MemSpace,
        op: AtomOp,
        ty: Ty,
        d: Dst,
        addr: Addr,
        b: Src,
        c: Src,
    },
    /// `cp.async.{ca,cg}.shared{::cta}.global [dst], [src], size{, src_size}`: an asynchronous
    /// copy of `size` bytes (4, 8 or 16) from global `src` to shared `dst`, of which the first
    /// `src_size` come from `src` and the rest are zeros. It is issued here and carried out when
    /// the issuing thread completes the group holding it (`cp.async.wait_group`,
    /// `cp.async.wait_all`, or its exit). `ignore` is the ignore-src predicate: when true, all
    /// `size` bytes are zeros.
    CpAsync {
        dst: Addr,
        src: Addr,
        size: u32,
        src_size: Src,
        ignore: Option<Src>,
    },
    /// `cp.async.commit_group`: the thread's copies not yet in a group become its newest group.
    CpAsyncCommit,
    /// `cp.async.wait_group n`: completes every group of the thread but the `n` newest;
    /// `cp.async.wait_all` (`commit` set) commits first and completes all.
    CpAsyncWait { n: u32, commit: bool },
    /// `bar.sync`/`barrier.sync` (wait) or `bar.arrive` (no wait) on barrier `id`, for `count`
    /// threads (all of the block when None).
    Bar {
        wait: bool,
        id: Src,
        count: Option<Src>,
    },
    /// `bar.warp.sync mask`.
    WarpSync { mask: Src },
    /// `shfl.sync`.
    Shfl {
        mode: ShflMode,
        d: Dst,
        p: Dst,
        a: Src,
        b: Src,
        c: Src,
        mask: Src,
    },
    /// `vote.sync`.
    Vote {
        mode: VoteMode,
        d: Dst,
        a: Src,
        negate: bool,
        mask: Src,
    },
    /// `match.any.sync`/`match.all.sync` on `bits`-wide values.
    Match {
        all: bool,
        bits: u32,
        d: Dst,
        p: Dst,
        a: Src,
        mask: Src,
    },
    /// `redux.sync`: the reduction over the member lanes, given to each of them.
    Redux {
        op: ReduxOp,
        signed: bool,
        d: Dst,
        a: Src,
        mask: Src,
    },
    /// `bar.red.popc.u32 d` / `bar.red.{and,or}.pred d`: a `bar.sync` that also reduces the
    /// predicate `pred` (negated when `negate`) over the threads of the barrier.
    BarRed {
        op: BarRedOp,
        d: Dst,
        id: Src,
        count: Option<Src>,
        pred: Src,
        negate: bool,
    },
    /// `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32`: the warp computes D = A * B + C,
    /// each lane holding a fragment of every matrix (see [`Mma`]).
    Mma(Box<Mma>),
    /// `activemask`.
    Activemask { d: Dst },
    /// `bra`: jump to an instruction index.
    Bra { target: u32 },
    /// `brx.idx index, table`: jump to `targets[index]`.
    BrxIdx { index: Src, targets: Vec<u32> },
    /// `call`: jump to `target` after copying the arguments into the callee's parameter
    /// slots; `ret` copies `outs` back.
    Call {
        target: u32,
        ins: Vec<FrameCopy>,
        outs: Vec<FrameCopy>,
    },
    /// `ret` (in a kernel: `exit`).
    Ret,
    /// `exit`.
    Exit,
    /// `trap`.
    Trap,
    /// Prefetch and other instructions with no effect on a sequential simulator.
    Nop,
    /// `membar` or `fence`: no effect here, but a kernel with one may order its blocks
    /// through global memory itself, so its global accesses are not checked against other
    /// blocks' (nor are those of a kernel with atomics or strong loads and stores).
    Fence,
}

/// The operands of `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {d}, {a}, {b}, {c}`
/// as one lane gives them: its fragments of D (16x8, f32), A (16x8 row-major, TF32 in .b32
/// registers), B (8x8 column-major, TF32) and C (16x8, f32). With `g = laneid >> 2` and
/// `t = laneid % 4` (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32):
/// `a = {A[g][t], A[g+8][t], A[g][t+4], A[g+8][t+4]}`, `b = {B[t][g], B[t+4][g]}`,
/// `c = {C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1]}` and `d` as `c`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mma {
    /// Destination fragment of D.
    pub d: [Dst; 4],
    /// Fragment of A.
    pub a: [Src; 4],
    /// Fragment of B.
    pub b: [Src; 2],
    /// Fragment of C.
    pub c: [Src; 4],
}

/// The member mask naming every lane of a warp.
pub const FULL_WARP: u32 = u32::MAX;

/// One decoded instruction.
#[derive(Clone, Debug, PartialEq)]
pub struct Inst {
    /// 1-based PTX line.
    pub line: u32,
    /// Guard predicate register and whether it is negated (`@!p`).
    pub guard: Option<(u32, bool)>,
    /// The operation.
    pub op: Op,
    /// Registers the operation reads (for the never-written warning; the guard, read by every
    /// lane, is checked on its own).
    pub uses: Vec<u32>,
}

impl Op {
    /// The member mask of a warp-synchronous instruction; an `.aligned` one (`mma`) has no
    /// mask operand and names the whole warp.
    pub fn member_mask(&self) -> Option<Src> {
        match self {
            Op::WarpSync { mask }
            | Op::Shfl { mask, .. }
            | Op::Vote { mask, .. }
            | Op::Match { mask, .. }
            | Op::Redux { mask, .. } => Some(*mask),
            Op::Mma(_) => Some(Src::Imm(FULL_WARP as u64)),
            _ => None,
        }
    }

    /// Whether this warp-synchronous instruction is `.aligned`: all 32 lanes of the warp must
    /// execute it together, so a warp of fewer threads cannot.
    pub fn is_aligned(&self) -> bool {
        matches!(self, Op::Mma(_))
    }

    /// How errors name a warp-synchronous instruction.
    pub fn warp_name(&self) -> &'static str {
        match self {
            Op::WarpSync { .. } => "bar.warp.sync",
            Op::Shfl { .. } => "shfl.sync",
            Op::Vote { .. } => "vote.sync",
            Op::Match { .. } => "match.sync",
            Op::Redux { .. } => "redux.sync",
            Op::Mma(_) => "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32",
            _ => "a warp-synchronous instruction",
        }
    }
}

impl Inst {
    /// Whether this instruction transfers control or waits (ends a straight run).
    pub fn is_control(&self) -> bool {
        matches!(
            self.op,
            Op::Bra { .. }
                | Op::BrxIdx { .. }
                | Op::Call { .. }
                | Op::Ret
                | Op::Exit
                | Op::Trap
                | Op::Bar { .. }
                | Op::BarRed { .. }
                | Op::WarpSync { .. }
                | Op::Shfl { .. }
                | Op::Vote { .. }
                | Op::Match { .. }
                | Op::Redux { .. }
                | Op::Mma(_)
        )
    }
}

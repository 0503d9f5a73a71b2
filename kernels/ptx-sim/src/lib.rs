//! smelt-ptx-sim: an interpreter for the PTX that NVRTC emits, so GPU kernels can be tested on
//! any machine.
//!
//! It runs a launch block by block and warp by warp, 32 lanes in SIMT fashion, and checks what
//! usually needs compute-sanitizer: global accesses outside every allocation, shared and local
//! accesses outside their size, misaligned accesses, shared-memory races between barriers
//! (lanes of a warp are ordered only by a `bar.warp.sync` naming both), global bytes one block
//! of a launch stores and another loads or overwrites with other values (blocks run at once
//! on a GPU), `ld.global.nc` of bytes the launch stored (those two only in kernels with no
//! fence, atomic or strong access, which may order their blocks), barrier divergence,
//! warp-synchronous instructions whose lanes never meet or disagree on the member mask (and a
//! TF32 `mma`, which runs with all 32 lanes of its warp or not at all), launches
//! beyond the kernel's `.maxntid`/`.reqntid`, and (as a warning) registers read before they
//! are written.
//!
//! The race check takes every completed block barrier to order all accesses of all threads
//! before it with all accesses after it. That is exact for barriers every thread of the block
//! waits at (`__syncthreads()`, `bar.sync 0`), but races are missed around the others: accesses
//! by threads that do not take part in a barrier with a thread count (`bar.sync 1, 64`), and
//! accesses a thread makes after its `bar.arrive` (it waits for no one), are taken to be
//! ordered with the accesses of the threads that waited there.
//!
//! The Ampere asynchronous copy runs (`cp.async.{ca,cg}.shared{::cta}.global` with cp-size 4, 8
//! or 16, an optional src-size, whose missing bytes are zeros, or ignore-src predicate, the
//! `.L2` cache qualifiers and cache policy having no effect; `cp.async.commit_group`,
//! `cp.async.wait_group N`, `cp.async.wait_all`), with the latest visibility the PTX ISA
//! allows, so that a kernel missing a wait or a barrier fails: a copy reads global memory and
//! writes shared memory only when its thread completes the group holding it (a `wait_group N`
//! completes the committed groups but the N newest, never copies not yet committed;
//! `wait_all` completes all, and so does the thread's exit), and a barrier completes nothing.
//! Its addresses are checked when it is issued (alignment to cp-size, bounds; src-size above
//! cp-size is an OutOfBounds error). The thread reading or writing the destination of one of
//! its own copies before completing it is a Race error, and so are another thread's
//! accesses to the destination between the copy's issue and its completion that no barrier
//! after the completion orders (the race check takes the copy as written by its thread both
//! when issued and when completed, and looks at the intervals between); the completion's
//! global read is a load for the checks across blocks. The bulk, tensor and mbarrier forms of
//! `cp.async` are Unsupported.
//!
//! Of the tensor-core instructions it runs one, the TF32
//! `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32`, with the conversions to TF32
//! (`cvt.rna{.satfinite}.tf32.f32`, `cvt.{rn,rz}{.satfinite}{.relu}.tf32.f32`); other `mma`
//! forms, `wmma` and `ldmatrix` are Unsupported errors. The mma ignores the low 13 bits of its
//! A and B operands, sums each element's 8 products (exact) and C in f64 and rounds that once
//! to f32. A GPU's tensor cores do not promise this: the order and precision of their
//! accumulation is unspecified, so their results may differ in the last bits, and tests of
//! kernels built on `mma` must compare within a tolerance.
//!
//! ```
//! use smelt_ptx_sim::{Arg, Dim3, Launch, Module, Sim};
//! let ptx = r#"
//! .version 8.8
//! .target sm_80
//! .address_size 64
//! .visible .entry twice(.param .u64 p, .param .u32 n)
//! {
//!     .reg .pred %p<2>;
//!     .reg .b32 %r<4>;
//!     .reg .f32 %f<3>;
//!     .reg .b64 %rd<5>;
//!     ld.param.u64 %rd1, [p];
//!     ld.param.u32 %r1, [n];
//!     mov.u32 %r2, %tid.x;
//!     setp.ge.u32 %p1, %r2, %r1;
//!     @%p1 bra DONE;
//!     cvta.to.global.u64 %rd2, %rd1;
//!     mul.wide.u32 %rd3, %r2, 4;
//!     add.s64 %rd4, %rd2, %rd3;
//!     ld.global.f32 %f1, [%rd4];
//!     add.f32 %f2, %f1, %f1;
//!     st.global.f32 [%rd4], %f2;
//! DONE:
//!     ret;
//! }
//! "#;
//! let module = Module::parse(ptx)?;
//! let mut sim = Sim::new();
//! let buf = sim.upload_f32(&[1.0, 2.0, 3.0]);
//! let launch = Launch { grid: Dim3::x(1), block: Dim3::x(32), shared_bytes: 0 };
//! sim.launch(&module, "twice", launch, &[Arg::Ptr(buf), Arg::U32(3)])?;
//! assert_eq!(sim.read_f32(buf), vec![2.0, 4.0, 6.0]);
//! # Ok::<(), smelt_ptx_sim::SimError>(())
//! ```

mod alu;
mod ast;
mod decode;
mod error;
mod exec;
mod float;
mod host;
mod inst;
mod lex;
mod memory;
mod parse;

pub use error::{ErrorKind, Location, Result, SimError};
pub use host::{
    Arg, Buffer, Dim3, Launch, Module, Report, Sim, MAX_SHARED_BYTES, MAX_THREADS_PER_BLOCK,
};

//! The five GEMM loops, BLIS style, with their block sizes named:
//!
//! ```text
//! loop 5  jc: columns of C and B in steps of NC   packed B block (KC x NC) lives in L3
//! loop 4  pc: the k dimension in steps of KC      B block packed here, shared by all threads
//! loop 3  ic: rows of C and A in steps of MC      packed A block (MC x KC) lives in L2
//! loop 2  jr: NR-wide micro-panels of B           one micro-panel (KC x NR) lives in L1
//! loop 1  ir: MR-tall micro-panels of A           the MR x NR tile of C lives in registers
//! ```
//!
//! Threads split loop 3 (rows) when C is tall enough, otherwise loop 2 (column panels); the
//! packing of B is split between the same threads before the compute phase starts.

use super::blocking::{even_chunk, Blocking};
use super::microkernel::{Microkernel, TileOut};
use super::pack::{pack_panels, with_buffer, Strided, PACK_A, PACK_B};
use crate::cpu::threads::{for_each_task, Shared};

/// A strided output matrix: element (i, j) is at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct StridedMut {
    pub ptr: *mut f32,
    pub rs: usize,
    pub cs: usize,
}

/// Everything one GEMM call needs, after the checks of the public API.
#[derive(Clone, Copy)]
pub(crate) struct Problem {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub a: Strided,
    pub b: Strided,
    pub beta: f32,
    pub c: StridedMut,
}

/// Runs `C = alpha * A * B + beta * C` on `threads` threads.
///
/// # Safety
/// `a`, `b`, `c` must describe valid, in-bounds matrices of shapes `m x k`, `k x n`, `m x n`;
/// no element of C may alias another element of C or any element of A or B.
pub(crate) unsafe fn run(kernel: &Microkernel, blk: &Blocking, p: Problem, threads: usize) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    if p.k == 0 || p.alpha == 0.0 {
        scale(p.m, p.n, p.beta, p.c);
        return;
    }
    // The microkernel writes rows of C with vector stores; a column-major C is handled as
    // C^T = B^T * A^T, which is row-major.
    let p = if p.c.cs != 1 && p.c.rs == 1 {
        Problem {
            m: p.n,
            n: p.m,
            a: p.b.t(),
            b: p.a.t(),
            c: StridedMut {
                ptr: p.c.ptr,
                rs: p.c.cs,
                cs: p.c.rs,
            },
            ..p
        }
    } else {
        p
    };
    let (mr, nr) = (kernel.mr, kernel.nr);
    let threads = threads.max(1);
    let split_rows = p.m >= threads * mr * 4 || p.n < threads * nr;

    let nc_step = even_chunk(p.n, blk.nc, nr);
    let kc_step = even_chunk(p.k, blk.kc, 1);
    let bpack_len = kc_step * nc_step;
    with_buffer(&PACK_B, bpack_len, |bpack| {
        let bpack = Shared(bpack);
        for jc in (0..p.n).step_by(nc_step) {
            let nc = nc_step.min(p.n - jc);
            let panels = nc.div_ceil(nr);
            for pc in (0..p.k).step_by(kc_step) {
                let kc = kc_step.min(p.k - pc);
                let beta = if pc == 0 { p.beta } else { 1.0 };
                let b_block = Strided {
                    ptr: p.b.at(pc, jc),
                    ..p.b
                };
                let b_block = Shared(b_block);
                for_each_task(threads, threads, |t| {
                    let (lo, hi) = share(panels, threads, t);
                    let (bpack, b_block) = (bpack.get(), b_block.get());
                    let cols = (hi * nr).min(nc).saturating_sub(lo * nr);
                    pack_panels(
                        Strided {
                            ptr: b_block.at(0, lo * nr),
                            ..b_block
                        }
                        .t(),
                        cols,
                        kc,
                        nr,
                        bpack.add(lo * nr * kc),
                    );
                });
                let shared_p = Shared(p);
                for_each_task(threads, threads, |t| {
                    let (bpack, p) = (bpack.get(), shared_p.get());
                    let (rows, cols) = if split_rows {
                        let part = even_chunk(p.m, p.m.div_ceil(threads), mr);
                        let lo = (t * part).min(p.m);
                        ((lo, (lo + part).min(p.m)), (0, panels))
                    } else {
                        ((0, p.m), share(panels, threads, t))
                    };
                    block(kernel, blk, &p, (pc, kc), (jc, nc), rows, cols, beta, bpack);
                });
            }
        }
    });
}

/// The `t`-th of `threads` near-equal shares of `0..len`.
fn share(len: usize, threads: usize, t: usize) -> (usize, usize) {
    let per = len.div_ceil(threads);
    ((t * per).min(len), ((t + 1) * per).min(len))
}

/// Loops 3, 2 and 1 for rows `rows.0..rows.1` of C and B micro-panels `panels.0..panels.1`
/// of the packed block `bpack` (which covers columns `jc..jc + nc`, depth `pc..pc + kc`).
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    kernel: &Microkernel,
    blk: &Blocking,
    p: &Problem,
    (pc, kc): (usize, usize),
    (jc, nc): (usize, usize),
    rows: (usize, usize),
    panels: (usize, usize),
    beta: f32,
    bpack: *const f32,
) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let (m_lo, m_hi) = rows;
    if m_lo >= m_hi || panels.0 >= panels.1 {
        return;
    }
    let mc_step = even_chunk(m_hi - m_lo, blk.mc, mr);
    with_buffer(&PACK_A, mc_step * kc, |apack| {
        for ic in (m_lo..m_hi).step_by(mc_step) {
            let mc = mc_step.min(m_hi - ic);
            let a_block = Strided {
                ptr: p.a.at(ic, pc),
                ..p.a
            };
            pack_panels(a_block, mc, kc, mr, apack);
            for jp in panels.0..panels.1 {
                let j = jp * nr;
                let b_panel = bpack.add(jp * nr * kc);
                for ir in (0..mc).step_by(mr) {
                    let out = TileOut {
                        c: p.c.ptr.add((ic + ir) * p.c.rs + (jc + j) * p.c.cs),
                        rsc: p.c.rs,
                        csc: p.c.cs,
                        rows: mr.min(mc - ir),
                        cols: nr.min(nc - j),
                        alpha: p.alpha,
                        beta,
                    };
                    (kernel.run)(kc, apack.add(ir * kc), b_panel, &out);
                }
            }
        }
    });
}

/// `C = beta * C` (zeroing without reading when `beta == 0`), for `k == 0` or `alpha == 0`.
unsafe fn scale(m: usize, n: usize, beta: f32, c: StridedMut) {
    for i in 0..m {
        for j in 0..n {
            let e = c.ptr.add(i * c.rs + j * c.cs);
            *e = if beta == 0.0 { 0.0 } else { beta * *e };
        }
    }
}

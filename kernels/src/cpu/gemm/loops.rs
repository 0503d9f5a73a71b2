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
use super::microkernel::{Microkernel, Panels, TileOut};
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
    // A problem that fits in one block of every loop (attention heads: 128 x 64 x 128) would
    // spend as long packing as multiplying: read A in place (only a ragged last panel is
    // packed), and B too when its rows are contiguous and its width a multiple of NR.
    let single_block = p.k == kc_step && p.n == nc_step && p.m <= blk.mc;
    let direct = Direct {
        a: single_block,
        b: single_block && p.b.cs == 1 && p.n % nr == 0,
    };
    let bpack_len = if direct.b { 0 } else { kc_step * nc_step };
    with_buffer(&PACK_B, bpack_len, blk.kc * blk.nc, |bpack| {
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
                let b_source = if direct.b {
                    BSource {
                        base: b_block.ptr,
                        panel: nr,
                        step: b_block.rs,
                    }
                } else {
                    let shared_b = Shared(b_block);
                    for_each_task(threads, threads, |t| {
                        let (lo, hi) = share(panels, threads, t);
                        let (bpack, b_block) = (bpack.get(), shared_b.get());
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
                    BSource {
                        base: bpack.get(),
                        panel: nr * kc,
                        step: nr,
                    }
                };
                let shared = Shared((p, b_source));
                for_each_task(threads, threads, |t| {
                    let (p, b_source) = shared.get();
                    let (rows, cols) = if split_rows {
                        let part = even_chunk(p.m, p.m.div_ceil(threads), mr);
                        let lo = (t * part).min(p.m);
                        ((lo, (lo + part).min(p.m)), (0, panels))
                    } else {
                        ((0, p.m), share(panels, threads, t))
                    };
                    let range = Range {
                        depth: (pc, kc),
                        cols: (jc, nc),
                        rows,
                        panels: cols,
                    };
                    block(kernel, blk, &p, &range, beta, b_source, direct.a);
                });
            }
        }
    });
}

/// Which operands the microkernel reads in place instead of from packed panels.
#[derive(Clone, Copy)]
struct Direct {
    a: bool,
    b: bool,
}

/// Where loop 2 finds B's micro-panels: panel `jp` starts at `base + jp * panel`, and each of
/// its k steps holds NR contiguous values, `step` elements apart.
#[derive(Clone, Copy)]
struct BSource {
    base: *const f32,
    panel: usize,
    step: usize,
}

/// The part of C one task computes in loops 3 to 1.
struct Range {
    /// `(pc, kc)`: the slice of the k dimension.
    depth: (usize, usize),
    /// `(jc, nc)`: the columns of C covered by this B block.
    cols: (usize, usize),
    /// Rows `lo..hi` of C.
    rows: (usize, usize),
    /// B micro-panels `lo..hi` of the block.
    panels: (usize, usize),
}

/// The `t`-th of `threads` near-equal shares of `0..len`.
fn share(len: usize, threads: usize, t: usize) -> (usize, usize) {
    let per = len.div_ceil(threads);
    ((t * per).min(len), ((t + 1) * per).min(len))
}

/// Loops 3, 2 and 1 over one task's `range`, with B's panels at `b`. With `direct_a`, full A
/// panels are read in place and only a ragged last panel is packed.
unsafe fn block(
    kernel: &Microkernel,
    blk: &Blocking,
    p: &Problem,
    range: &Range,
    beta: f32,
    b: BSource,
    direct_a: bool,
) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let ((pc, kc), (jc, nc)) = (range.depth, range.cols);
    let ((m_lo, m_hi), panels) = (range.rows, range.panels);
    if m_lo >= m_hi || panels.0 >= panels.1 {
        return;
    }
    let mc_step = even_chunk(m_hi - m_lo, blk.mc, mr);
    let apack_len = if direct_a { mr * kc } else { mc_step * kc };
    with_buffer(&PACK_A, apack_len, blk.mc * blk.kc, |apack| {
        for ic in (m_lo..m_hi).step_by(mc_step) {
            let mc = mc_step.min(m_hi - ic);
            let a_block = Strided {
                ptr: p.a.at(ic, pc),
                ..p.a
            };
            let full_rows = mc - mc % mr;
            if !direct_a {
                pack_panels(a_block, mc, kc, mr, apack);
            } else if full_rows < mc {
                let ragged = Strided {
                    ptr: a_block.at(full_rows, 0),
                    ..a_block
                };
                pack_panels(ragged, mc - full_rows, kc, mr, apack);
            }
            for jp in panels.0..panels.1 {
                let j = jp * nr;
                for ir in (0..mc).step_by(mr) {
                    let (a, run) = if !direct_a {
                        (apack.add(ir * kc).cast_const(), kernel.packed)
                    } else if ir < full_rows {
                        (a_block.at(ir, 0), kernel.direct)
                    } else {
                        (apack.cast_const(), kernel.packed)
                    };
                    let operands = Panels {
                        a,
                        a_row: a_block.rs,
                        a_step: a_block.cs,
                        b: b.base.add(jp * b.panel),
                        b_step: b.step,
                    };
                    let out = TileOut {
                        c: p.c.ptr.add((ic + ir) * p.c.rs + (jc + j) * p.c.cs),
                        rsc: p.c.rs,
                        csc: p.c.cs,
                        rows: mr.min(mc - ir),
                        cols: nr.min(nc - j),
                        alpha: p.alpha,
                        beta,
                    };
                    run(kc, &operands, &out);
                }
            }
        }
    });
}

/// Hints the CPU to bring a `rows x cols` operand into L2, when it is dense enough that its
/// span holds little else (at most twice its own size); a no-op off x86_64.
pub(crate) unsafe fn prefetch_l2(s: Strided, rows: usize, cols: usize) {
    let span = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * s.rs + (cols - 1) * s.cs + 1
    };
    if span > 2 * rows * cols {
        return;
    }
    for offset in (0..span).step_by(16) {
        #[cfg(target_arch = "x86_64")]
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
            s.ptr.wrapping_add(offset).cast(),
        );
    }
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

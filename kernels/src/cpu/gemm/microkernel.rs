//! Register-blocked microkernels: an `MR x NR` tile of C kept in vector registers.
//!
//! One generic pattern, [`tile`], written over [`SimdF32`]; each ISA instantiates it with its
//! own `MR` (rows of A broadcast per step) and `NV` (vectors per row, `NR = NV * LANES`) so
//! that the accumulators plus the B vectors plus one broadcast fill the register file, and
//! with fewer rows for a ragged last panel of A ([`Microkernel::short`]):
//!
//! | ISA      | registers | MR x NR  | accumulators + B + A | short      |
//! |----------|-----------|----------|----------------------|------------|
//! | avx512   | 32 zmm    | 12 x 32  | 24 + 2 + 1           | 4, 8 x 32  |
//! | avx2     | 16 ymm    |  6 x 16  | 12 + 2 + 1           | 2, 4 x 16  |
//! | portable | 16 xmm    |  4 x 8   | 8 (x2 halves) + 2 + 2| none       |

use super::gemv::{self, GemvFn};
use crate::cpu::isa::Isa;
use crate::cpu::prefetch::{Hint, Lines, LINE};
use crate::cpu::simd::SimdF32;

/// Where a tile of C lives and how to combine the product into it.
#[derive(Clone, Copy)]
pub(crate) struct TileOut {
    /// Top-left element of the tile.
    pub c: *mut f32,
    /// Distance between rows of C, in elements.
    pub rsc: usize,
    /// Distance between columns of C, in elements.
    pub csc: usize,
    /// Rows of the tile that exist in C (`<= MR`).
    pub rows: usize,
    /// Columns of the tile that exist in C (`<= NR`).
    pub cols: usize,
    pub alpha: f32,
    /// `0.0` means C is overwritten without being read (NaN in C is ignored).
    pub beta: f32,
    /// The tile's `cols` values of a bias added to every row (`bias[j]` to column `j`), or
    /// null for none.
    pub bias: *const f32,
    /// Whether the microkernel asks for the tile's own lines of C into L1 while it computes:
    /// false where the tiles ask for a batch's next product's operands, C included, instead
    /// (asking for both cost 3% on 2 threads).
    pub fetch: bool,
}

impl TileOut {
    /// The tile's lines of C to ask for while it computes: its rows when [`fetch`] is set and
    /// they are contiguous, else none. Each row's walk starts at the line holding its first
    /// element (exactly its lines when C's row stride is a whole number of lines).
    ///
    /// [`fetch`]: TileOut::fetch
    fn lines(&self) -> Lines {
        if self.fetch && self.csc == 1 {
            let f32_bytes = std::mem::size_of::<f32>();
            let skip = self.c as usize % (LINE * f32_bytes) / f32_bytes;
            let first = self.c.wrapping_sub(skip).cast_const();
            Lines::rows(
                first,
                (self.rows, skip + self.cols),
                self.rsc,
                (0, usize::MAX),
            )
        } else {
            Lines::NONE
        }
    }
}

/// Largest MR and NR of any kernel (size of the stack tile edge tiles are written through).
const MAX_MR: usize = 12;
const MAX_NR: usize = 32;

/// The two operand panels a microkernel multiplies over `k` steps.
#[derive(Clone, Copy)]
pub(crate) struct Panels {
    /// A(0, 0) of the `MR x k` panel.
    pub a: *const f32,
    /// Elements between rows of A (1 when packed; read by the direct and short kernels).
    pub a_row: usize,
    /// Elements between steps of A (MR when packed; read by the direct and short kernels).
    pub a_step: usize,
    /// B(0, 0) of the `k x NR` panel; each step's NR values are contiguous.
    pub b: *const f32,
    /// Elements between steps of B (NR when packed, B's row stride when read in place).
    pub b_step: usize,
    /// Lines asked into L2 while the tile computes, one per k step of its unrolled loop and
    /// any left at its end: the loops point this at a share of the next B panel, so that
    /// panel does not arrive from L3 at the rate the microkernel reads it, or in a batch at
    /// a share of the next product's operands.
    pub ahead: Lines,
}

/// Signature of every microkernel: `k` steps over `panels`, result combined into `out`.
pub(crate) type KernelFn = unsafe fn(k: usize, panels: &Panels, out: &TileOut);

/// A microkernel and its register-block shape, in three forms: `packed` reads A from a packed
/// panel (`a[p * MR + i]`), `direct` reads A in place through `a_row`/`a_step` (used when a
/// small problem would spend more time packing A than multiplying), and `short` computes
/// fewer rows.
#[derive(Clone, Copy)]
pub(crate) struct Microkernel {
    /// Rows of the tile (of A per panel).
    pub mr: usize,
    /// Columns of the tile (of B per panel).
    pub nr: usize,
    /// The kernel over a packed panel of A.
    pub packed: KernelFn,
    /// The kernel over A in place.
    pub direct: KernelFn,
    /// Kernels of fewer rows for a ragged last panel of A, as `(rows, kernel)` by rising
    /// `rows`. Each reads through `a_row`/`a_step` like `direct` and runs on the zero-padded
    /// packed panel (`a_row = 1`, `a_step = mr`), so it reads no row past A's end. Without
    /// them a ragged panel's tiles cost as much as full ones: at M = 128 (an attention head:
    /// 10 panels of 12 rows and one of 8) 4 of the 132 rows computed were padding.
    pub short: &'static [(usize, KernelFn)],
    /// The kernel for one row of A times a B read in place along k ([`super::gemv`]).
    pub gemv: GemvFn,
}

impl Microkernel {
    /// The microkernel for `isa`; the caller has checked that the CPU supports it.
    pub(crate) fn for_isa(isa: Isa) -> Microkernel {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Microkernel {
                mr: 12,
                nr: 32,
                packed: x86::avx512_x32::<12, true>,
                direct: x86::avx512_x32::<12, false>,
                short: &[
                    (4, x86::avx512_x32::<4, false>),
                    (8, x86::avx512_x32::<8, false>),
                ],
                gemv: gemv::for_isa(isa),
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => Microkernel {
                mr: 6,
                nr: 16,
                packed: x86::avx2_x16::<6, true>,
                direct: x86::avx2_x16::<6, false>,
                short: &[
                    (2, x86::avx2_x16::<2, false>),
                    (4, x86::avx2_x16::<4, false>),
                ],
                gemv: gemv::for_isa(isa),
            },
            _ => Microkernel {
                mr: 4,
                nr: 8,
                packed: portable_4x8::<true>,
                direct: portable_4x8::<false>,
                short: &[],
                gemv: gemv::for_isa(isa),
            },
        }
    }

    /// The short kernel for a ragged panel of `rows` live rows (`rows < mr`): the smallest
    /// that covers them, or `None` where only the full kernel does.
    pub(crate) fn short_for(&self, rows: usize) -> Option<KernelFn> {
        self.short
            .iter()
            .find(|&&(covers, _)| covers >= rows)
            .map(|&(_, kernel)| kernel)
    }
}

/// The pattern: `acc = A_panel * B_panel` over `k` steps, then `C = alpha * acc + bias +
/// beta * C`.
///
/// A(i, p) is `a[i * a_row + p * a_step]`, B(p, j) is `b[p * b_step + j]`; with `PACKED_A` the
/// A strides are the constants `1` and `MR`. Panels hold full `MR x NR` tiles (packing
/// zero-pads them), so the loop never tests bounds; only the write-back respects
/// `out.rows/cols`.
#[inline(always)]
unsafe fn tile<V: SimdF32, const MR: usize, const NV: usize, const PACKED_A: bool>(
    k: usize,
    panels: &Panels,
    out: &TileOut,
) {
    let nr = NV * V::LANES;
    let (a_row, a_step) = if PACKED_A {
        (1, MR)
    } else {
        (panels.a_row, panels.a_step)
    };
    let b_step = panels.b_step;
    let mut acc = [[V::zero(); NV]; MR];
    let (mut a, mut b) = (panels.a, panels.b);
    let mut ahead = panels.ahead;
    // C's lines, one per unrolled step (a 12 x 32 tile writes 24 lines, asked for in its
    // first 96 k steps; a shallower tile asks for only the first k / 4), reach L1 before
    // the write-back, so its stores do not each wait for a line (1-5% on BERT's linear
    // shapes on Zen 5, bench/NOTES.md).
    let mut own = out.lines();
    const UNROLL: usize = 4;
    for _ in 0..k / UNROLL {
        for u in 0..UNROLL {
            step::<V, MR, NV>(&mut acc, a.add(u * a_step), a_row, b.add(u * b_step));
            ahead.request_next(Hint::L2);
        }
        own.request_next(Hint::L1);
        // Wrapping: after the last step these point one k step past the panels, which for
        // operands read in place can lie past the end of their allocation.
        a = a.wrapping_add(UNROLL * a_step);
        b = b.wrapping_add(UNROLL * b_step);
    }
    for _ in 0..k % UNROLL {
        step::<V, MR, NV>(&mut acc, a, a_row, b);
        a = a.wrapping_add(a_step);
        b = b.wrapping_add(b_step);
    }
    // A share longer than the tile's k steps (a shallow product) asks for the rest now.
    ahead.request_all(Hint::L2);

    let alpha = V::splat(out.alpha);
    let beta = V::splat(out.beta);
    let bias = bias_vectors::<V, NV>(out);
    if out.csc == 1 && out.rows == MR && out.cols == nr {
        for (i, row) in acc.iter().enumerate() {
            let c_row = out.c.add(i * out.rsc);
            for (v, cell) in row.iter().enumerate() {
                let p = c_row.add(v * V::LANES);
                let mut r = V::mul_add(alpha, *cell, bias[v]);
                if out.beta != 0.0 {
                    r = V::mul_add(beta, V::load(p), r);
                }
                V::store(p, r);
            }
        }
        return;
    }
    // Edge tile or strided C: spill the scaled tile to the stack (uninitialised: only the
    // lanes stored here are read back), then write the live part, by vectors where C's rows
    // are contiguous, else element by element. Taking the address of `acc` itself would
    // force the accumulators out of registers.
    let mut spill = std::mem::MaybeUninit::<[[f32; MAX_NR]; MAX_MR]>::uninit();
    let rows = spill.as_mut_ptr().cast::<[f32; MAX_NR]>();
    for (i, row) in acc.iter().enumerate() {
        for (v, cell) in row.iter().enumerate() {
            V::store(
                (*rows.add(i)).as_mut_ptr().add(v * V::LANES),
                V::mul_add(alpha, *cell, bias[v]),
            );
        }
    }
    if out.csc == 1 {
        // Rows of C are contiguous: vector copies, masked where the tile crosses C's last
        // column.
        for i in 0..out.rows {
            let (src, dst) = ((*rows.add(i)).as_ptr(), out.c.add(i * out.rsc));
            for j in (0..out.cols).step_by(V::LANES) {
                let (s, p, lanes) = (src.add(j), dst.add(j), (out.cols - j).min(V::LANES));
                let mut r = V::load(s);
                if lanes == V::LANES {
                    if out.beta != 0.0 {
                        r = V::mul_add(beta, V::load(p), r);
                    }
                    V::store(p, r);
                } else {
                    if out.beta != 0.0 {
                        r = V::mul_add(beta, V::load_partial(p, lanes, 0.0), r);
                    }
                    V::store_partial(p, lanes, r);
                }
            }
        }
        return;
    }
    for i in 0..out.rows {
        for j in 0..out.cols {
            let value = (*rows.add(i))[j];
            let p = out.c.add(i * out.rsc + j * out.csc);
            *p = if out.beta == 0.0 {
                value
            } else {
                value + out.beta * *p
            };
        }
    }
}

/// The bias of a tile's columns as `NV` vectors: zeros without a bias and past the tile's
/// last live column (a bias holds only the live columns' values).
#[inline(always)]
unsafe fn bias_vectors<V: SimdF32, const NV: usize>(out: &TileOut) -> [V; NV] {
    let mut bias = [V::zero(); NV];
    if !out.bias.is_null() {
        for (v, lane) in bias.iter_mut().enumerate() {
            let j = v * V::LANES;
            if j + V::LANES <= out.cols {
                *lane = V::load(out.bias.add(j));
            } else if j < out.cols {
                *lane = V::load_partial(out.bias.add(j), out.cols - j, 0.0);
            }
        }
    }
    bias
}

/// One k step: `acc += A[:, p] * B[p, :]` for MR values of A at `a` (`a_row` apart) and NR
/// contiguous values of B at `b`.
#[inline(always)]
unsafe fn step<V: SimdF32, const MR: usize, const NV: usize>(
    acc: &mut [[V; NV]; MR],
    a: *const f32,
    a_row: usize,
    b: *const f32,
) {
    let mut bv = [V::zero(); NV];
    for (v, slot) in bv.iter_mut().enumerate() {
        *slot = V::load(b.add(v * V::LANES));
    }
    for (i, row) in acc.iter_mut().enumerate() {
        let ai = V::splat(*a.add(i * a_row));
        for (v, cell) in row.iter_mut().enumerate() {
            *cell = V::mul_add(ai, bv[v], *cell);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{tile, Panels, TileOut};
    use crate::cpu::simd::{V256, V512};

    /// `MR x 32` tiles in zmm registers.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512_x32<const MR: usize, const PACKED_A: bool>(
        k: usize,
        p: &Panels,
        out: &TileOut,
    ) {
        tile::<V512, MR, 2, PACKED_A>(k, p, out)
    }

    /// `MR x 16` tiles in ymm registers.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2_x16<const MR: usize, const PACKED_A: bool>(
        k: usize,
        p: &Panels,
        out: &TileOut,
    ) {
        tile::<V256, MR, 2, PACKED_A>(k, p, out)
    }
}

unsafe fn portable_4x8<const PACKED_A: bool>(k: usize, p: &Panels, out: &TileOut) {
    tile::<crate::cpu::simd::Wide, 4, 1, PACKED_A>(k, p, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile_out(c: *mut f32, (rows, cols): (usize, usize), csc: usize, fetch: bool) -> TileOut {
        TileOut {
            c,
            rsc: 112,
            csc,
            rows,
            cols,
            alpha: 1.0,
            beta: 0.0,
            bias: std::ptr::null(),
            fetch,
        }
    }

    #[test]
    fn a_tile_asks_for_each_of_its_lines_of_c_once() {
        // Rows 112 floats (7 lines) apart; the tile starts on a line or 3 floats into one.
        let mut c = vec![0.0f32; 16 * 112];
        let base = c.as_mut_ptr();
        let aligned = base.wrapping_add((LINE - base as usize % 64 / 4) % LINE);
        for skip in [0, 3] {
            let start = aligned.wrapping_add(skip);
            for (rows, cols) in [(12, 32), (5, 17), (1, 1), (12, 16), (3, 13)] {
                let lines: Vec<usize> = tile_out(start, (rows, cols), 1, true)
                    .lines()
                    .map(|p| (p as usize - aligned as usize) / 4)
                    .collect();
                // Every line that holds an element of the tile, row by row, once.
                let expected: Vec<usize> = (0..rows)
                    .flat_map(|i| {
                        let (lo, hi) = (i * 112 + skip, i * 112 + skip + cols);
                        (lo / LINE..hi.div_ceil(LINE)).map(|l| l * LINE)
                    })
                    .collect();
                assert_eq!(lines, expected, "{rows} x {cols} from {skip}");
            }
        }
        assert_eq!(tile_out(aligned, (12, 32), 1, false).lines().count(), 0);
        assert_eq!(tile_out(aligned, (12, 32), 3, true).lines().count(), 0);
    }
}

//! Register-blocked microkernels: an `MR x NR` tile of C kept in vector registers.
//!
//! One generic pattern, [`tile`], written over [`SimdF32`]; each ISA instantiates it with its
//! own `MR` (rows of A broadcast per step) and `NV` (vectors per row, `NR = NV * LANES`) so
//! that the accumulators plus the B vectors plus one broadcast fill the register file:
//!
//! | ISA      | registers | MR x NR  | accumulators + B + A |
//! |----------|-----------|----------|----------------------|
//! | avx512   | 32 zmm    | 12 x 32  | 24 + 2 + 1           |
//! | avx2     | 16 ymm    |  6 x 16  | 12 + 2 + 1           |
//! | portable | 16 xmm    |  4 x 8   | 8 (x2 halves) + 2 + 2|

use crate::cpu::isa::Isa;
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
}

/// Signature of every microkernel: `k` steps over packed panels of A (`k x MR`) and B (`k x NR`).
pub(crate) type KernelFn = unsafe fn(k: usize, a: *const f32, b: *const f32, out: &TileOut);

/// A microkernel and its register-block shape.
#[derive(Clone, Copy)]
pub(crate) struct Microkernel {
    pub mr: usize,
    pub nr: usize,
    pub run: KernelFn,
}

impl Microkernel {
    /// The microkernel for `isa`; the caller has checked that the CPU supports it.
    pub(crate) fn for_isa(isa: Isa) -> Microkernel {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Microkernel {
                mr: 12,
                nr: 32,
                run: x86::avx512_12x32,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => Microkernel {
                mr: 6,
                nr: 16,
                run: x86::avx2_6x16,
            },
            _ => Microkernel {
                mr: 4,
                nr: 8,
                run: portable_4x8,
            },
        }
    }
}

/// The pattern: `acc = A_panel * B_panel` over `k` steps, then `C = alpha * acc + beta * C`.
///
/// Packed layouts: `a[p * MR + i]` is A(i, p), `b[p * NR + j]` is B(p, j), both zero-padded to
/// full tiles, so the loop never tests bounds; only the write-back respects `out.rows/cols`.
#[inline(always)]
unsafe fn tile<V: SimdF32, const MR: usize, const NV: usize>(
    k: usize,
    a: *const f32,
    b: *const f32,
    out: &TileOut,
) {
    let nr = NV * V::LANES;
    // Ask for C's tile now so its lines arrive while the k loop runs.
    for i in 0..out.rows {
        prefetch(out.c.add(i * out.rsc));
        prefetch(out.c.add(i * out.rsc + (nr - 1) * out.csc));
    }
    let mut acc = [[V::zero(); NV]; MR];
    let (mut a, mut b) = (a, b);
    const UNROLL: usize = 4;
    for _ in 0..k / UNROLL {
        for u in 0..UNROLL {
            step::<V, MR, NV>(&mut acc, a.add(u * MR), b.add(u * nr));
        }
        a = a.add(UNROLL * MR);
        b = b.add(UNROLL * nr);
    }
    for _ in 0..k % UNROLL {
        step::<V, MR, NV>(&mut acc, a, b);
        a = a.add(MR);
        b = b.add(nr);
    }

    let alpha = V::splat(out.alpha);
    let beta = V::splat(out.beta);
    if out.csc == 1 && out.rows == MR && out.cols == nr {
        for (i, row) in acc.iter().enumerate() {
            let c_row = out.c.add(i * out.rsc);
            for (v, cell) in row.iter().enumerate() {
                let p = c_row.add(v * V::LANES);
                let mut r = V::mul(alpha, *cell);
                if out.beta != 0.0 {
                    r = V::mul_add(beta, V::load(p), r);
                }
                V::store(p, r);
            }
        }
        return;
    }
    // Edge tile or strided C: scale the accumulators in place, then write element by element
    // (the `[[V; NV]; MR]` array is MR rows of NR contiguous floats).
    for row in acc.iter_mut() {
        for cell in row.iter_mut() {
            *cell = V::mul(alpha, *cell);
        }
    }
    let tile = acc.as_ptr().cast::<f32>();
    for i in 0..out.rows {
        for j in 0..out.cols {
            let value = *tile.add(i * nr + j);
            let p = out.c.add(i * out.rsc + j * out.csc);
            *p = if out.beta == 0.0 {
                value
            } else {
                value + out.beta * *p
            };
        }
    }
}

/// One k step: `acc += A[:, p] * B[p, :]` for the panels at `a` (MR values) and `b` (NR values).
#[inline(always)]
unsafe fn step<V: SimdF32, const MR: usize, const NV: usize>(
    acc: &mut [[V; NV]; MR],
    a: *const f32,
    b: *const f32,
) {
    let mut bv = [V::zero(); NV];
    for (v, slot) in bv.iter_mut().enumerate() {
        *slot = V::load(b.add(v * V::LANES));
    }
    for (i, row) in acc.iter_mut().enumerate() {
        let ai = V::splat(*a.add(i));
        for (v, cell) in row.iter_mut().enumerate() {
            *cell = V::mul_add(ai, bv[v], *cell);
        }
    }
}

/// Hints the CPU to bring the cache line holding `p` into L1 (no effect off x86_64).
#[inline(always)]
unsafe fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{tile, TileOut};
    use crate::cpu::simd::{V256, V512};

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512_12x32(k: usize, a: *const f32, b: *const f32, out: &TileOut) {
        tile::<V512, 12, 2>(k, a, b, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2_6x16(k: usize, a: *const f32, b: *const f32, out: &TileOut) {
        tile::<V256, 6, 2>(k, a, b, out)
    }
}

unsafe fn portable_4x8(k: usize, a: *const f32, b: *const f32, out: &TileOut) {
    tile::<crate::cpu::simd::Wide, 4, 1>(k, a, b, out)
}

//! Packing: copying blocks of A and B into the contiguous, zero-padded panel layouts the
//! microkernel streams through, whatever the operands' strides (this is where a transposed
//! operand is absorbed at no extra cost).

use std::cell::Cell;

/// A strided read-only matrix: element (i, j) is at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Strided {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

impl Strided {
    /// The element pointer of (i, j); only a pointer, so (i, j) may lie past the matrix (one
    /// panel past the last, an empty share's first column) as long as it is not read.
    #[inline(always)]
    pub(crate) fn at(self, i: usize, j: usize) -> *const f32 {
        self.ptr.wrapping_add(i * self.rs + j * self.cs)
    }

    /// The same matrix seen transposed (rows and columns swapped, no data moved).
    pub(crate) fn t(self) -> Strided {
        Strided {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// Packs rows `0..rows` (`rows <= panels * mr`) and columns `0..kc` of `a` into panels of `mr`
/// rows: `dst[panel * mr * kc + p * mr + i] = a(panel * mr + i, p)`, rows past the end are zero.
///
/// The same routine packs B: B's column panels are the row panels of B transposed.
pub(crate) unsafe fn pack_panels(src: Strided, rows: usize, kc: usize, mr: usize, dst: *mut f32) {
    if src.rs == 1 {
        pack_contiguous_rows(src, rows, kc, mr, dst);
        return;
    }
    for (panel, r0) in (0..rows).step_by(mr).enumerate() {
        let live = mr.min(rows - r0);
        let out = dst.add(panel * mr * kc);
        let src = Strided {
            ptr: src.at(r0, 0),
            ..src
        };
        let transposed =
            src.cs == 1 && transpose::available() && transpose::pack(src, kc, mr, live, out);
        if !transposed {
            pack_scalar(src, live, kc, mr, out);
        }
    }
}

/// The panels' rows are adjacent in memory (B row-major, or A stored transposed): for each
/// column `p`, one sequential sweep copies its `rows` values into every panel (8 at a time,
/// or a whole row of an A panel), with 256-bit moves where AVX2 is there (the portable
/// build copies through 128-bit SSE moves: with AVX2, 128 x 768 x 768 products ran 3%
/// faster, large ones within 2%).
unsafe fn pack_contiguous_rows(src: Strided, rows: usize, kc: usize, mr: usize, dst: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    if transpose::available() {
        return contiguous_rows_avx2(src, rows, kc, mr, dst);
    }
    contiguous_rows(src, rows, kc, mr, dst);
}

/// [`contiguous_rows`] compiled for AVX2.
///
/// # Safety
/// AVX2 must be available; the arguments are those of [`pack_contiguous_rows`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn contiguous_rows_avx2(src: Strided, rows: usize, kc: usize, mr: usize, dst: *mut f32) {
    contiguous_rows(src, rows, kc, mr, dst);
}

/// The body of [`pack_contiguous_rows`], inlined into each ISA's entry: one instance per
/// kernel panel height, copying a whole panel row in chunks of `CHUNK` floats. B's heights
/// (8, 16, 32) go 8 at a time (copying a 32-float row as one array made 768 x 1024 x 3072
/// 5-7% slower); A's (12, 6, 4), not multiples of 8, go as one array (they went element by
/// element: the weight gradients' `dY^T X` packs A this way, 0-8% faster on BERT's shapes,
/// bench/NOTES.md). A height no kernel uses goes element by element.
#[inline(always)]
unsafe fn contiguous_rows(src: Strided, rows: usize, kc: usize, mr: usize, dst: *mut f32) {
    match mr {
        4 => panels_of::<4, 4>(src, rows, kc, dst),
        6 => panels_of::<6, 6>(src, rows, kc, dst),
        8 => panels_of::<8, 8>(src, rows, kc, dst),
        12 => panels_of::<12, 12>(src, rows, kc, dst),
        16 => panels_of::<16, 8>(src, rows, kc, dst),
        32 => panels_of::<32, 8>(src, rows, kc, dst),
        _ => {
            for (panel, r0) in (0..rows).step_by(mr).enumerate() {
                let first = Strided {
                    ptr: src.at(r0, 0),
                    ..src
                };
                pack_scalar(first, mr.min(rows - r0), kc, mr, dst.add(panel * mr * kc));
            }
        }
    }
}

/// [`contiguous_rows`] for panels of `MR` rows, whole panel rows copied `CHUNK` floats at a
/// time (`CHUNK` divides `MR`); a ragged last panel element by element, zero-padded.
#[inline(always)]
unsafe fn panels_of<const MR: usize, const CHUNK: usize>(
    src: Strided,
    rows: usize,
    kc: usize,
    dst: *mut f32,
) {
    for p in 0..kc {
        let column = src.at(0, p);
        for (panel, r0) in (0..rows).step_by(MR).enumerate() {
            let (from, to) = (column.add(r0), dst.add(panel * MR * kc + p * MR));
            let live = MR.min(rows - r0);
            if live == MR {
                for c in (0..MR).step_by(CHUNK) {
                    let chunk = std::ptr::read_unaligned(from.add(c).cast::<[f32; CHUNK]>());
                    std::ptr::write_unaligned(to.add(c).cast::<[f32; CHUNK]>(), chunk);
                }
            } else {
                for i in 0..MR {
                    *to.add(i) = if i < live { *from.add(i) } else { 0.0 };
                }
            }
        }
    }
}

/// Any strides, element by element; rows past `live` are zero.
unsafe fn pack_scalar(src: Strided, live: usize, kc: usize, mr: usize, out: *mut f32) {
    for p in 0..kc {
        for i in 0..mr {
            *out.add(p * mr + i) = if i < live { *src.at(i, p) } else { 0.0 };
        }
    }
}

/// Packing of row-contiguous panels (A row-major, or B stored transposed) by 8x8 AVX2
/// transposes: eight rows by eight columns loaded, transposed in registers, stored as eight
/// columns of the panel.
mod transpose {
    use super::Strided;

    /// Whether this CPU has AVX2 (every AVX-512 CPU does).
    pub(super) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return crate::cpu::isa::Isa::Avx2Fma.is_supported();
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Packs one panel of `mr` rows whose columns are contiguous (`src.cs == 1`), of which
    /// the first `live` exist (the others are packed as zeros and never read); returns
    /// false, packing nothing, for a panel height no kernel uses.
    ///
    /// # Safety
    /// AVX2 must be available; `src` must hold `live x kc` elements (`live <= mr`); `out`
    /// `mr * kc` floats.
    pub(super) unsafe fn pack(
        src: Strided,
        kc: usize,
        mr: usize,
        live: usize,
        out: *mut f32,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        return x86::pack(src, kc, mr, live, out);
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (src, kc, mr, live, out);
            false
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::Strided;
        use crate::cpu::prefetch::{prefetch, Hint};
        use std::arch::x86_64::*;

        /// How far ahead along a row (in floats) to ask for the next cache lines into L1
        /// (64 beat 0, 32, 128, 256 and 1024 with weights out of cache: bench/NOTES.md).
        const PREFETCH_AHEAD: usize = 64;

        /// Packs one panel of `mr` rows, the first `live` of them read; returns false
        /// (packing nothing) for a panel height no kernel uses.
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn pack(
            src: Strided,
            kc: usize,
            mr: usize,
            live: usize,
            out: *mut f32,
        ) -> bool {
            match mr {
                4 => pack_groups::<4, 1>(src, kc, live, out),
                6 => pack_groups::<6, 1>(src, kc, live, out),
                8 => pack_groups::<8, 1>(src, kc, live, out),
                12 => pack_groups::<12, 2>(src, kc, live, out),
                16 => pack_groups::<16, 2>(src, kc, live, out),
                32 => pack_groups::<32, 4>(src, kc, live, out),
                _ => return false,
            }
            true
        }

        /// `pack` for a panel of `MR` rows in `G` groups of (up to) 8 rows, of which the first
        /// `live` are read and the rest packed as zeros (a ragged last panel: the 8 rows of
        /// an attention head's 128 past ten 12-row panels were packed element by element,
        /// 6% of the product). One group at a time, along the whole depth: each step loads 8
        /// columns of its 8 rows, transposes them in registers and stores them as 8 columns
        /// of the panel. A step over every group at once (the order until session 12) kept
        /// up to 32 rows in flight, and rows `K` floats apart with `K` a multiple of 1024
        /// (BERT's `W_out` of `[768, 3072]`: 12 KiB) fall in one L1 set, which holds 12
        /// lines: each line left L1 before its second half was read. Group by group, 8 rows
        /// share a set: 128 x 3072 x 768 ran 12% faster, 1024 x 3072 x 768 1.4-2%.
        /// Every other step (each 16 columns) also asks, for each of its rows, for the same
        /// line of the next panel into L2, so each panel finds its rows there (with weights
        /// out of cache: 3-6% per linear product at M = 128, 11-14% at M = 32, a MiniLM
        /// forward of 32 tokens 14-16% faster).
        #[inline(always)]
        unsafe fn pack_groups<const MR: usize, const G: usize>(
            src: Strided,
            kc: usize,
            live_rows: usize,
            out: *mut f32,
        ) {
            let mr = MR;
            let full = kc / 8 * 8;
            // From the last group: a short last group (mr = 6 or 12) stores all 8 lanes, and
            // the extra lanes land in the next column's slots of the group before, whose own
            // stores, made after, overwrite them. Only the panel's very last column must not
            // spill past it.
            for gi in (0..G).rev() {
                let live = 8.min(mr - gi * 8);
                let read = live.min(live_rows.saturating_sub(gi * 8));
                for p in (0..full).step_by(8) {
                    let mut rows = [_mm256_setzero_ps(); 8];
                    for (i, row) in rows.iter_mut().enumerate().take(read) {
                        let at = src.at(gi * 8 + i, p);
                        prefetch(at.wrapping_add(PREFETCH_AHEAD), Hint::L1);
                        if p % 16 == 0 {
                            // The same line of the next panel (rows MR further on; past the
                            // operand's end the hint just goes unused), into L2 a whole
                            // panel ahead of its pack: 32 rows of short runs are more
                            // streams than the hardware prefetcher follows.
                            // Wrapping: a one-row operand may have any row stride.
                            let next = (MR + gi * 8 + i)
                                .wrapping_mul(src.rs)
                                .wrapping_add(p * src.cs);
                            prefetch(src.ptr.wrapping_add(next), Hint::L2);
                        }
                        *row = _mm256_loadu_ps(at);
                    }
                    for (q, col) in transpose8x8(rows).iter().enumerate() {
                        let to = out.add((p + q) * mr + gi * 8);
                        if live == 8 || p + q + 1 < kc {
                            _mm256_storeu_ps(to, *col);
                        } else {
                            let mut lanes = [0.0f32; 8];
                            _mm256_storeu_ps(lanes.as_mut_ptr(), *col);
                            std::ptr::copy_nonoverlapping(lanes.as_ptr(), to, live);
                        }
                    }
                }
            }
            for p in full..kc {
                for i in 0..mr {
                    *out.add(p * mr + i) = if i < live_rows { *src.at(i, p) } else { 0.0 };
                }
            }
        }

        /// Rows in, columns out.
        #[inline(always)]
        unsafe fn transpose8x8(r: [__m256; 8]) -> [__m256; 8] {
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(s0, s4),
                _mm256_permute2f128_ps::<0x20>(s1, s5),
                _mm256_permute2f128_ps::<0x20>(s2, s6),
                _mm256_permute2f128_ps::<0x20>(s3, s7),
                _mm256_permute2f128_ps::<0x31>(s0, s4),
                _mm256_permute2f128_ps::<0x31>(s1, s5),
                _mm256_permute2f128_ps::<0x31>(s2, s6),
                _mm256_permute2f128_ps::<0x31>(s3, s7),
            ]
        }
    }
}

/// A 64-byte aligned scratch buffer that only ever grows.
#[derive(Clone, Default)]
pub(crate) struct PackBuffer {
    lines: Vec<CacheLine>,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct CacheLine([f32; 16]);

impl PackBuffer {
    /// The start of the buffer (dangling while it is empty).
    pub(crate) fn as_ptr(&self) -> *const f32 {
        self.lines.as_ptr().cast()
    }

    /// Grows the buffer to at least `len` floats, or says why the system refused.
    fn try_grow(&mut self, len: usize) -> Result<(), String> {
        let lines = len.div_ceil(16);
        if self.lines.len() < lines {
            self.lines
                .try_reserve_exact(lines - self.lines.len())
                .map_err(|e| format!("cannot allocate a pack buffer of {len} floats: {e}"))?;
            self.lines.resize(lines, CacheLine([0.0; 16]));
        }
        Ok(())
    }

    /// A pointer to at least `len` writable floats. When the buffer must grow, it grows to
    /// `max(len, most)` at once, so that later calls of any size up to `most` never grow it
    /// again (whichever worker thread they land on).
    pub(crate) fn reserve(&mut self, len: usize, most: usize) -> *mut f32 {
        if self.lines.len() * 16 < len {
            let lines = len.max(most).div_ceil(16);
            self.lines.resize(lines, CacheLine([0.0; 16]));
        }
        self.lines.as_mut_ptr().cast()
    }
}

thread_local! {
    /// Packed A block of the current thread (MC x KC).
    pub(crate) static PACK_A: Cell<PackBuffer> = Cell::new(PackBuffer::default());
    /// Packed B panel of the calling thread (KC x NC), shared with the workers.
    pub(crate) static PACK_B: Cell<PackBuffer> = Cell::new(PackBuffer::default());
}

/// Runs `f` with this thread's buffer `key` holding at least `len` floats; a buffer that must
/// grow is sized for `most` floats, the largest block the blocking can ask for.
///
/// The buffer is taken out for the call and put back after, so a re-entrant use on the same
/// thread gets a fresh buffer instead of aliasing this one.
pub(crate) fn with_buffer<R>(
    key: &'static std::thread::LocalKey<Cell<PackBuffer>>,
    len: usize,
    most: usize,
    f: impl FnOnce(*mut f32) -> R,
) -> R {
    let mut buf = key.take();
    let result = f(buf.reserve(len, most));
    key.set(buf);
    result
}

/// Sizes this thread's A and B pack buffers for at least `a` and `b` floats now, so that no
/// later GEMM on this thread grows them; an error naming the size when the system refuses it.
pub(crate) fn reserve_on_this_thread(a: usize, b: usize) -> Result<(), String> {
    for (key, len) in [(&PACK_A, a), (&PACK_B, b)] {
        let mut buf = key.take();
        let grown = buf.try_grow(len);
        key.set(buf);
        grown?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A size the system cannot give is an error naming it, not an abort; the buffer stays
    /// usable.
    #[test]
    fn a_buffer_too_large_to_allocate_is_an_error() {
        let mut buf = PackBuffer::default();
        let err = buf.try_grow(usize::MAX / 2).unwrap_err();
        assert!(err.contains(&format!("{} floats", usize::MAX / 2)), "{err}");
        buf.try_grow(100).unwrap();
        assert!(buf.lines.len() * 16 >= 100);
    }
}

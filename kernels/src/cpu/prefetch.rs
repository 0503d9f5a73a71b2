//! Software prefetch: asking for a cache line before a kernel reads or writes it.

/// Where [`prefetch`] asks a cache line to go.
#[derive(Clone, Copy)]
pub(crate) enum Hint {
    /// Into L1 (`_MM_HINT_T0`).
    L1,
    /// Into L2 (`_MM_HINT_T1`).
    L2,
}

/// Hints the CPU to bring the cache line holding `p` where `hint` says. Never faults, so any
/// address works; no effect off x86_64.
///
/// There is no write hint: `_MM_HINT_ET0` compiles to a plain `prefetcht0` unless the
/// unstable `prfchw` target feature is enabled, and a real `prefetchw` (inline assembly)
/// measured within noise of it for GEMM's C and softmax's output (bench/NOTES.md).
#[inline(always)]
pub(crate) fn prefetch(p: *const f32, hint: Hint) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        // SAFETY: a prefetch is a hint; it neither faults nor changes memory, whatever `p`.
        unsafe {
            match hint {
                Hint::L1 => _mm_prefetch::<_MM_HINT_T0>(p.cast()),
                Hint::L2 => _mm_prefetch::<_MM_HINT_T1>(p.cast()),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, hint);
}

/// Floats per cache line.
pub(crate) const LINE: usize = 16;

/// A walk over cache lines to ask for one at a time, spread through a computation: `left`
/// lines taken along rows of `row_len` floats (whole lines) that lie `stride` floats apart,
/// from float `col` of the row at `row`.
#[derive(Clone, Copy)]
pub(crate) struct Lines {
    row: *const f32,
    col: usize,
    row_len: usize,
    stride: usize,
    left: usize,
}

impl Lines {
    /// Nothing to ask for.
    pub(crate) const NONE: Lines = Lines {
        row: std::ptr::null(),
        col: 0,
        row_len: 0,
        stride: 0,
        left: 0,
    };

    /// The lines of `len` contiguous floats from `ptr`.
    pub(crate) fn contiguous(ptr: *const f32, len: usize) -> Lines {
        Lines::rows(ptr, (1, len), 0, (0, len.div_ceil(LINE)))
    }

    /// Lines `lo..hi`, counted row by row, of `rows x len` floats whose rows lie `stride`
    /// floats apart.
    pub(crate) fn rows(
        ptr: *const f32,
        (rows, len): (usize, usize),
        stride: usize,
        (lo, hi): (usize, usize),
    ) -> Lines {
        let per_row = len.div_ceil(LINE);
        let hi = hi.min(rows * per_row);
        if lo >= hi {
            return Lines::NONE;
        }
        Lines {
            row: ptr.wrapping_add(lo / per_row * stride),
            col: lo % per_row * LINE,
            row_len: per_row * LINE,
            stride,
            left: hi - lo,
        }
    }

    /// Asks for the next line, if any is left, to go where `hint` says.
    #[inline(always)]
    pub(crate) fn request_next(&mut self, hint: Hint) {
        if let Some(line) = self.next() {
            prefetch(line, hint);
        }
    }

    /// Asks for every line left at once, to go where `hint` says.
    #[inline(always)]
    pub(crate) fn request_all(self, hint: Hint) {
        for line in self {
            prefetch(line, hint);
        }
    }
}

impl Iterator for Lines {
    type Item = *const f32;

    /// The first float of the next line.
    #[inline(always)]
    fn next(&mut self) -> Option<*const f32> {
        if self.left == 0 {
            return None;
        }
        let line = self.row.wrapping_add(self.col);
        self.left -= 1;
        self.col += LINE;
        if self.col == self.row_len {
            self.col = 0;
            self.row = self.row.wrapping_add(self.stride);
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offsets in floats from `base` of the lines `lines` walks.
    fn offsets(base: *const f32, lines: Lines) -> Vec<usize> {
        lines.map(|p| (p as usize - base as usize) / 4).collect()
    }

    #[test]
    fn a_walk_takes_its_lines_row_by_row_from_any_line() {
        let data = [0.0f32; 1];
        let base = data.as_ptr();
        // 3 rows of 40 floats (3 lines each, the last partly used) 100 floats apart.
        let all = Lines::rows(base, (3, 40), 100, (0, 9));
        assert_eq!(
            offsets(base, all),
            [0, 16, 32, 100, 116, 132, 200, 216, 232]
        );
        let middle = Lines::rows(base, (3, 40), 100, (2, 5));
        assert_eq!(offsets(base, middle), [32, 100, 116]);
        // Past the last line there is nothing; an empty range asks for nothing.
        assert_eq!(
            offsets(base, Lines::rows(base, (3, 40), 100, (8, 20))),
            [232]
        );
        assert_eq!(Lines::rows(base, (3, 40), 100, (4, 4)).count(), 0);
        assert_eq!(Lines::rows(base, (0, 40), 100, (0, 4)).count(), 0);
    }

    #[test]
    fn contiguous_floats_are_their_lines_in_order() {
        let data = [0.0f32; 1];
        let base = data.as_ptr();
        assert_eq!(offsets(base, Lines::contiguous(base, 33)), [0, 16, 32]);
        assert_eq!(Lines::contiguous(base, 0).count(), 0);
        assert_eq!(Lines::NONE.count(), 0);
    }
}

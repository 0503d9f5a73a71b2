//! Operands of the next product of a batch (A, B and the C it will write), asked into L2 a
//! share at a time while the current product computes.
//!
//! Small batched products (attention heads: 128 x 64 x 128) read operands that come from L3,
//! and a product that only starts fetching them when its first tiles need them stalls on
//! each. Requesting the next product's A and B all at once when a product starts put a burst
//! of ~1000 prefetches in front of its first tile, and took as long as it saved; one share
//! after each tile of the current product let them arrive while it computes (96 distinct
//! 128x64x128 products on the Intel VM: 0.48-0.55 -> 0.59-0.67 of the large-GEMM rate), and
//! one line per k step inside each tile's microkernel, instead of a burst between tiles, did
//! better still (Zen 4: 0.67-0.81 -> 0.84-0.89, bench/NOTES.md).

use super::blocking::share;
use super::pack::Strided;
use crate::cpu::prefetch::{Hint, Lines, LINE};

/// Rows of contiguous floats, `stride` apart: one operand as it lies in memory.
#[derive(Clone, Copy)]
struct Region {
    ptr: *const f32,
    rows: usize,
    /// Contiguous floats per row.
    len: usize,
    stride: usize,
}

impl Region {
    /// The memory of a `rows x cols` matrix whose rows or columns are contiguous; `None`
    /// when neither is (elements strided both ways are not worth asking for line by line).
    fn of(s: Strided, rows: usize, cols: usize) -> Option<Region> {
        let (rows, len, stride) = match (s.rs, s.cs) {
            (_, 1) => (rows, cols, s.rs),
            (1, _) => (cols, rows, s.cs),
            _ => return None,
        };
        Some(Region {
            ptr: s.ptr,
            rows,
            len,
            stride,
        })
    }

    fn lines(&self) -> usize {
        self.rows * self.len.div_ceil(LINE)
    }

    /// Lines `lo..hi` of this region, counted row by row.
    fn walk(&self, range: (usize, usize)) -> Lines {
        Lines::rows(self.ptr, (self.rows, self.len), self.stride, range)
    }
}

/// The A, B and C of the next product, or nothing. C is asked for too: its tiles are
/// written without being read, but each line is still fetched (write-allocate) before the
/// store completes, and with A and B on time that was the larger wait (96 distinct
/// 128x64x128 products on 1 thread: with every product writing the same C, 1.38x as fast;
/// asking for C, 1.07x, bench/NOTES.md).
#[derive(Clone, Copy)]
pub(crate) struct Upcoming {
    operands: [Option<Region>; 3],
}

impl Upcoming {
    /// Nothing to ask for.
    pub(crate) const NONE: Upcoming = Upcoming {
        operands: [None, None, None],
    };

    /// The A (`m x k`), B (`k x n`) and C (`m x n`) of a product, when together they hold at
    /// most `limit` floats (they must fit in L2 beside the current product's).
    pub(crate) fn operands(
        (a, b, c): (Strided, Strided, Strided),
        (m, n, k): (usize, usize, usize),
        limit: usize,
    ) -> Upcoming {
        // Checked: a zero-stride operand may claim any size.
        let floats = m
            .checked_mul(k)
            .zip(k.checked_mul(n))
            .zip(m.checked_mul(n))
            .and_then(|((a, b), c)| a.checked_add(b)?.checked_add(c));
        if floats.is_none_or(|f| f > limit) {
            return Upcoming::NONE;
        }
        Upcoming {
            operands: [
                Region::of(a, m, k),
                Region::of(b, k, n),
                Region::of(c, m, n),
            ],
        }
    }

    /// Whether there is nothing to ask for.
    pub(crate) fn is_none(&self) -> bool {
        self.operands.iter().all(Option::is_none)
    }

    /// The `tile`-th of `tiles` equal shares of the operands' lines (A's, then B's, then
    /// C's): the part in its first operand as a walk for the tile's microkernel, which asks
    /// for one line per k step while it computes (asking for a share at once, between tiles,
    /// stalled on the CPU's queue of outstanding misses: 96 distinct 128x64x128 products, 1
    /// thread, 0.67-0.81 -> 0.84-0.89 of the large-GEMM rate, bench/NOTES.md). The parts in
    /// the next operands (a few lines where a share crosses into them; whole operands when
    /// a product has very few tiles) are asked for now.
    ///
    /// Inlined, as `BSource::ahead` (gemm/loops.rs) is, for the reason given there.
    #[inline(always)]
    pub(crate) fn share(&self, tile: usize, tiles: usize) -> Lines {
        let mut parts = self.parts(tile, tiles);
        let first = parts.next().unwrap_or(Lines::NONE);
        parts.for_each(|part| part.request_all(Hint::L2));
        first
    }

    /// The `tile`-th of `tiles` equal shares of the operands' lines, counted A's, then B's,
    /// then C's, as one walk for each operand it reaches into.
    fn parts(&self, tile: usize, tiles: usize) -> impl Iterator<Item = Lines> + '_ {
        let total = self.operands.iter().flatten().map(Region::lines).sum();
        let (lo, hi) = share(total, tiles, tile);
        let mut start = 0;
        self.operands.iter().flatten().filter_map(move |region| {
            let (first, end) = (start, start + region.lines());
            start = end;
            (lo.max(first) < hi.min(end))
                .then(|| region.walk((lo.max(first) - first, hi.min(end) - first)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operand_is_its_rows_of_contiguous_floats_whichever_way_it_is_stored() {
        let data = [0.0f32; 4];
        // 5 x 20 row-major in rows 40 apart (2 lines a row), and the same memory seen as
        // its 20 x 5 transpose.
        let rows = Strided {
            ptr: data.as_ptr(),
            rs: 40,
            cs: 1,
        };
        for (s, (r, c)) in [(rows, (5, 20)), (rows.t(), (20, 5))] {
            let region = Region::of(s, r, c).expect("contiguous one way");
            assert_eq!((region.rows, region.len, region.stride), (5, 20, 40));
            assert_eq!(region.lines(), 10);
        }
        let neither = Strided {
            rs: 3,
            cs: 2,
            ..rows
        };
        assert!(Region::of(neither, 4, 4).is_none());
    }

    #[test]
    fn operands_too_large_for_l2_are_not_asked_for() {
        let data = [0.0f32; 4];
        let a = Strided {
            ptr: data.as_ptr(),
            rs: 20,
            cs: 1,
        };
        // A 5 x 20, B 20 x 5 and C 5 x 5: 225 floats.
        let fits = Upcoming::operands((a, a.t(), a), (5, 5, 20), 225);
        assert!(fits.operands.iter().all(Option::is_some));
        let too_large = Upcoming::operands((a, a.t(), a), (5, 5, 20), 224);
        assert!(too_large.operands.iter().all(Option::is_none));
    }

    #[test]
    fn the_tiles_shares_take_every_line_of_the_operands_once() {
        let data = [0.0f32; 1];
        let base = data.as_ptr();
        let at = |offset: usize, rs: usize| Strided {
            ptr: base.wrapping_add(offset),
            rs,
            cs: 1,
        };
        // A 7 x 20 in rows 100 apart (14 lines), B^T stored 9 x 20 (B 20 x 9, 18 lines),
        // C 7 x 9 (7 lines), at distinct places.
        let upcoming = Upcoming::operands(
            (at(0, 100), at(10_000, 20).t(), at(20_000, 9)),
            (7, 9, 20),
            usize::MAX,
        );
        let mut expected: Vec<usize> = (0..7)
            .flat_map(|r| [r * 100, r * 100 + 16])
            .chain((0..9).flat_map(|r| [10_000 + r * 20, 10_000 + r * 20 + 16]))
            .chain((0..7).map(|r| 20_000 + r * 9))
            .collect();
        expected.sort_unstable();
        for tiles in [1, 2, 3, 5, 39, 50] {
            let mut lines: Vec<usize> = (0..tiles)
                .flat_map(|tile| upcoming.parts(tile, tiles).flatten().collect::<Vec<_>>())
                .map(|p| (p as usize - base as usize) / 4)
                .collect();
            lines.sort_unstable();
            assert_eq!(lines, expected, "{tiles} tiles");
        }
        assert_eq!(Upcoming::NONE.parts(0, 1).count(), 0);
    }
}

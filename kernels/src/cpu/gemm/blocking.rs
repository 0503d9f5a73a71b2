//! Block sizes of the five GEMM loops, derived from the cache sizes and the microkernel shape.

use super::cache::CacheSizes;
use super::microkernel::Microkernel;

/// Block sizes: `kc` (depth of a packed panel), `mc` (rows of a packed A block), `nc` (columns of
/// a packed B block). `mc` is a multiple of the kernel's MR, `nc` of its NR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    pub mc: usize,
    pub kc: usize,
    pub nc: usize,
}

impl Blocking {
    /// Sizes that make a KC x NR micro-panel of B three times as large as L1 (KC at most
    /// 768), an MC x KC block of A half of L2, and a KC x NC block of B half of this core's
    /// share of L3.
    ///
    /// KC is deeper than the textbook choice (a micro-panel in half of L1): the microkernel
    /// loads 2 B vectors per 24 FMAs, which L2 sustains when a panel lives there, while each
    /// KC block costs a pass over C (a read and a write of every element after the first).
    /// On the Zen 5 machine (48 KiB L1, NR = 32): KC 384 against 192 gave the same 1-thread
    /// rate and 3-20% more on 2 threads; KC 768 against 384 (one pass over C at BERT's
    /// K = 768) gave 2-8% more on 1 thread and 5-7% on 2 for M = 1024, and the same for
    /// M = 128; 1024 against 768 was noise. On Zen 4 (32 KiB L1) KC 768 against the 512 of
    /// a micro-panel twice L1 gave 3-9% more on 1 and 2 threads, 1024 the same as 768
    /// (bench/NOTES.md). AVX2 was indifferent (384 to 1024).
    pub(crate) fn derive(kernel: &Microkernel, caches: &CacheSizes) -> Blocking {
        const F32: usize = std::mem::size_of::<f32>();
        let kc = round_down(3 * caches.l1d / (kernel.nr * F32), 8).clamp(64, 768);
        let mc = round_down(caches.l2 / 2 / (kc * F32), kernel.mr)
            .clamp(kernel.mr, round_down(4096, kernel.mr));
        let nc =
            round_down(caches.l3_per_core / 2 / (kc * F32), kernel.nr).clamp(kernel.nr * 8, 8192);
        Blocking { mc, kc, nc }
    }

    /// The blocks for a product of depth `k`: depth blocks of up to a third more than KC
    /// when that takes fewer of them (one pass over C fewer each), with MC and NC shrunk so
    /// that the packed blocks of A and B hold no more than before (they fit the caches, and
    /// the pack buffers reserved for them); unchanged when an A block of a single MR panel
    /// cannot shrink. A BERT step at 8 x 128 tokens has weight gradients of depth 1024 and
    /// FFN products of depth 3072: blocks of 1024 against 512 and 768 measured mostly 1-6%
    /// faster on Zen 4, 1 and 2 threads, 2 of 14 comparisons slower in noisy minutes
    /// (bench/NOTES.md).
    pub(crate) fn for_depth(&self, k: usize, (mr, nr): (usize, usize)) -> Blocking {
        let kc = even_chunk(k, self.kc * 4 / 3, 1);
        let mc = round_down(self.mc * self.kc / kc, mr);
        let nc = round_down(self.nc * self.kc / kc, nr);
        if kc <= self.kc || mc == 0 || nc == 0 {
            return *self;
        }
        Blocking { mc, kc, nc }
    }
}

fn round_down(x: usize, multiple: usize) -> usize {
    (x / multiple) * multiple
}

/// Splits `len` into the fewest chunks of at most `max`, all of equal size rounded up to a
/// multiple of `align` (the last chunk takes what remains). Even chunks avoid a tiny last block.
pub(crate) fn even_chunk(len: usize, max: usize, align: usize) -> usize {
    let chunks = len.div_ceil(max).max(1);
    len.div_ceil(chunks).div_ceil(align) * align
}

/// The `t`-th of `parts` near-equal shares of `0..len`, as `(start, end)`.
pub(crate) fn share(len: usize, parts: usize, t: usize) -> (usize, usize) {
    let per = len.div_ceil(parts);
    ((t * per).min(len), ((t + 1) * per).min(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Isa;

    #[test]
    fn block_sizes_stay_whole_panels_for_any_plausible_caches() {
        let kib = 1024;
        let extremes = [
            (8 * kib, 64 * kib, 256 * kib),
            (32 * kib, 64 * kib, 256 * kib),
            (32 * kib, 2048 * kib, 16384 * kib),
            (1024 * kib, 65536 * kib, 1 << 30),
        ];
        for isa in Isa::ALL {
            let kernel = Microkernel::for_isa(isa);
            for (l1d, l2, l3_per_core) in extremes {
                let caches = CacheSizes {
                    l1d,
                    l2,
                    l3_per_core,
                };
                let base = Blocking::derive(&kernel, &caches);
                for k in [64, 1000, 3072] {
                    let b = base.for_depth(k, (kernel.mr, kernel.nr));
                    let what = format!("{isa:?} {caches:?} depth {k}: {b:?} from {base:?}");
                    assert!(b.mc * b.kc <= base.mc * base.kc, "{what}");
                    assert!(b.kc * b.nc <= base.kc * base.nc, "{what}");
                }
                let b = base;
                let what = format!("{isa:?} {caches:?}: {b:?}");
                assert!((64..=768).contains(&b.kc), "{what}");
                assert!(
                    b.mc >= kernel.mr && b.mc.is_multiple_of(kernel.mr),
                    "{what}"
                );
                assert!(
                    b.nc >= kernel.nr && b.nc.is_multiple_of(kernel.nr),
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn depth_blocks_a_third_deeper_take_no_more_memory() {
        let blk = Blocking {
            mc: 168,
            kc: 768,
            nc: 2720,
        };
        let (mr, nr) = (12, 32);
        for k in [1, 500, 768, 1025, 1536] {
            assert_eq!(blk.for_depth(k, (mr, nr)), blk, "k = {k}");
        }
        for (k, kc) in [
            (769, 769),
            (1024, 1024),
            (2048, 1024),
            (3072, 1024),
            (4000, 1000),
        ] {
            let deep = blk.for_depth(k, (mr, nr));
            assert_eq!(deep.kc, kc, "k = {k}");
            assert!(deep.mc.is_multiple_of(mr) && deep.mc * kc <= blk.mc * blk.kc);
            assert!(deep.nc.is_multiple_of(nr) && deep.nc * kc <= blk.nc * blk.kc);
        }
        assert_eq!(blk.for_depth(1024, (mr, nr)).mc, 120);
    }
}

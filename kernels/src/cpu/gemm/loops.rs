//! The five GEMM loops, BLIS style, with their block sizes named:
//!
//! ```text
//! loop 5  jc: columns of C and B in steps of NC   packed B block (KC x NC) lives in L3
//! loop 4  pc: the k dimension in steps of KC      B block packed here, shared by all threads
//! loop 3  ic: rows of C and A in steps of MC      packed A block (MC x KC) lives in L2
//! loop 2  jr: NR-wide micro-panels of B           one micro-panel (KC x NR) streams from L2
//! loop 1  ir: MR-tall micro-panels of A           the MR x NR tile of C lives in registers
//! ```
//!
//! Threads split loop 3 (rows) or loop 2 (column panels), whichever balances better. With
//! rows split, the threads pack each block of B together before they multiply it; with
//! panels split, each thread packs only its own panels, so there is no barrier at all. When
//! all of A fits one row block (M <= MC, e.g. a linear layer over 128 tokens) and the threads
//! do not split its rows, loop 4 packs nothing: loop 2 packs each micro-panel just before its
//! tiles, into a one-panel buffer in L2. B read in place, or packed beforehand
//! ([`PackedB`](super::PackedB)), is not packed at all. One row of A (or one column of C)
//! whose operands run contiguously along k skips the loops: [`gemv`](super::gemv).

use super::blocking::{even_chunk, share, Blocking};
use super::gemv;
use super::microkernel::{Microkernel, Panels, TileOut};
use super::pack::{pack_panels, with_buffer, Strided, PACK_A, PACK_B};
use super::upcoming::Upcoming;
use crate::cpu::prefetch::{Lines, LINE};
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
    /// `n` values added to every row of C (`bias[j]` to column `j`), or null for none.
    pub bias: *const f32,
    /// What to ask into L2 while this product computes (in a batch, the next product's
    /// operands); only a product of a single block asks.
    pub upcoming: Upcoming,
    /// B's panels packed beforehand in the layout of [`b_blocks`] (see
    /// [`PackedB`](super::PackedB)), or null to pack them here from `b`.
    pub packed_b: *const f32,
}

impl Problem {
    /// The product of `(m, n, k)` over raw operands, each `(pointer, row stride, column
    /// stride)`, with a bias of `n` values or null.
    pub(crate) fn new(
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        (a, rsa, csa): (*const f32, usize, usize),
        (b, rsb, csb): (*const f32, usize, usize),
        beta: f32,
        (c, rsc, csc): (*mut f32, usize, usize),
        bias: *const f32,
    ) -> Problem {
        let strided = |ptr, rs, cs| Strided { ptr, rs, cs };
        Problem {
            m,
            n,
            k,
            alpha,
            a: strided(a, rsa, csa),
            b: strided(b, rsb, csb),
            beta,
            c: StridedMut {
                ptr: c,
                rs: rsc,
                cs: csc,
            },
            bias,
            upcoming: Upcoming::NONE,
            packed_b: std::ptr::null(),
        }
    }

    /// The same product as `C^T = B^T A^T` (the caller sees to the bias, which belongs to
    /// C's columns, and to B packed beforehand, whose panels are B's).
    pub(crate) fn transposed(&self) -> Problem {
        Problem {
            m: self.n,
            n: self.m,
            a: self.b.t(),
            b: self.a.t(),
            c: StridedMut {
                ptr: self.c.ptr,
                rs: self.c.cs,
                cs: self.c.rs,
            },
            ..*self
        }
    }
}

/// Loops 5 and 4's blocks of B for a product of depth `k` and width `n` on a kernel of
/// `(mr, nr)`: the blocking for that depth, and the steps along N and K. A [`PackedB`]
/// is laid out by these, so a product over it walks the same blocks.
///
/// [`PackedB`]: super::PackedB
pub(crate) fn b_blocks(
    blk: &Blocking,
    (k, n): (usize, usize),
    (mr, nr): (usize, usize),
) -> (Blocking, Blocks) {
    let blk = blk.for_depth(k, (mr, nr));
    let nc_step = even_chunk(n, blk.nc, nr);
    let kc_step = even_chunk(k, blk.kc, 1);
    (blk, Blocks { nc_step, kc_step })
}

/// Runs `C = alpha * A * B + bias + beta * C` on `threads` threads.
///
/// # Safety
/// `a`, `b`, `c` must describe valid, in-bounds matrices of shapes `m x k`, `k x n`, `m x n`,
/// and a non-null `bias` `n` floats; no element of C may alias another element of C or any
/// element of A, B or the bias.
pub(crate) unsafe fn run(kernel: &Microkernel, blk: &Blocking, p: Problem, threads: usize) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    if p.k == 0 || p.alpha == 0.0 {
        scale(&p);
        return;
    }
    if let Some(row) = gemv::problem(&p) {
        gemv::run(kernel.gemv, row, threads);
        return;
    }
    // The microkernel writes rows of C with vector stores; a column-major C is handled as
    // C^T = B^T * A^T, which is row-major (not with a bias, which belongs to C's columns).
    // Not with B packed beforehand, whose panels are B's, not A's.
    let p = if p.c.cs != 1 && p.c.rs == 1 && p.bias.is_null() && p.packed_b.is_null() {
        p.transposed()
    } else {
        p
    };
    let (mr, nr) = (kernel.mr, kernel.nr);
    // The pack buffers grow (once) to the base blocks, which a deeper product's never exceed.
    let buffers = (blk.mc * blk.kc, blk.kc * blk.nc);
    let (blk, blocks) = b_blocks(blk, (p.k, p.n), (mr, nr));
    let blk = &blk;
    let Blocks { nc_step, kc_step } = blocks;
    let prepacked = !p.packed_b.is_null();
    // A problem that fits in one block of every loop (attention heads: 128 x 64 x 128) can
    // spend as long packing as multiplying. A is read in place (only a ragged last panel is
    // packed) when at most 4 panels of B reuse it, so packing would cost a large share; B too
    // when its rows are contiguous, its width a multiple of NR and its rows span no more
    // than a packed KC x NR micro-panel: wider rows put the k steps of a column panel a row
    // stride apart, which maps them to few L1 sets (N = 3072: 12 KiB apart, all in one set;
    // 128 x 768 x 3072 ran 2.5x slower in place than packed on the Intel VM; bench/NOTES.md).
    let single_block = p.k == kc_step && p.n == nc_step && p.m <= blk.mc;
    let direct = Direct {
        a: single_block && p.n <= 4 * nr,
        b: !prepacked
            && single_block
            && p.b.cs == 1
            && p.n % nr == 0
            && p.k * p.b.rs <= blk.kc * nr,
    };
    let threads = threads.max(1);
    let by_rows_split = split_rows(p.m, p.n, (mr, nr), threads);
    // With all of A in one row block, each panel of B meets every row of A at once: packed
    // just before its tiles, into a buffer of one panel that stays in L2, instead of with its
    // whole block (the block's trip through L3 and back cost 128 x 768 x 3072 10% on one
    // thread, 5% on two; bench/NOTES.md). Not when threads split the rows: each would pack
    // every panel.
    let lazy_b = !prepacked && !direct.b && p.m <= blk.mc && (threads == 1 || !by_rows_split);
    let plan = Plan {
        blocks,
        direct,
        lazy_b,
        bpack_len: if direct.b || prepacked {
            0
        } else if lazy_b {
            kc_step * nr
        } else {
            kc_step * nc_step
        },
        buffers,
        upcoming: if single_block {
            p.upcoming
        } else {
            Upcoming::NONE
        },
    };
    if by_rows_split {
        by_rows(kernel, blk, &p, &plan, threads);
    } else {
        by_panels(kernel, blk, &p, &plan, threads);
    }
}

/// How one product walks B: its blocks, which operands are read in place, the size of a
/// packed block of B, and what its tiles ask into L2 (only a product of one block asks; when
/// threads share the product, each thread's tiles ask for all of it, into that core's L2).
#[derive(Clone, Copy)]
struct Plan {
    blocks: Blocks,
    direct: Direct,
    /// Whether B's panels are packed one at a time, as loop 2 reaches them.
    lazy_b: bool,
    bpack_len: usize,
    /// Floats the A and B pack buffers grow to when they must grow.
    buffers: (usize, usize),
    upcoming: Upcoming,
}

impl Plan {
    /// Where the panels of `block` (at `packed_at` in B packed whole) come from when nothing
    /// packs them ahead of loop 2: packed beforehand ([`PackedB`](super::PackedB)), read in
    /// place, or packed one at a time into `buffer`; `None` when the caller must pack them
    /// into `buffer` first.
    unsafe fn unpacked_source(
        &self,
        p: &Problem,
        block: BlockB,
        packed_at: usize,
        buffer: *mut f32,
        nr: usize,
    ) -> Option<BSource> {
        if !p.packed_b.is_null() {
            Some(BSource::packed(p.packed_b.add(packed_at), 0, block.kc, nr))
        } else if self.direct.b {
            Some(BSource::direct(block.b, nr))
        } else if self.lazy_b {
            Some(BSource::lazy(block, buffer, nr))
        } else {
            None
        }
    }
}

/// Threads split C's rows: B's blocks are packed by all threads together, then every thread
/// multiplies its rows of A by the whole block (two parallel phases per block).
unsafe fn by_rows(kernel: &Microkernel, blk: &Blocking, p: &Problem, plan: &Plan, threads: usize) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let p = *p;
    with_buffer(&PACK_B, plan.bpack_len, plan.buffers.1, |bpack| {
        let bpack = Shared(bpack);
        plan.blocks.each(&p, nr, |block_b, packed_at| {
            let b_source = match plan.unpacked_source(&p, block_b, packed_at, bpack.get(), nr) {
                Some(source) => source,
                None => {
                    let shared_b = Shared(block_b);
                    for_each_task(threads, threads, |t| {
                        let block_b = shared_b.get();
                        let panels = share(block_b.panels(nr), threads, t);
                        let dst = bpack.get().add(panels.0 * nr * block_b.kc);
                        block_b.pack(panels, nr, dst);
                    });
                    BSource::packed(bpack.get(), 0, block_b.kc, nr)
                }
            };
            let shared = Shared((p, block_b, b_source, *plan));
            for_each_task(threads, threads, |t| {
                let (p, block_b, b_source, plan) = shared.get();
                let part = even_chunk(p.m, p.m.div_ceil(threads), mr);
                let lo = (t * part).min(p.m);
                let rows = (lo, (lo + part).min(p.m));
                let range = block_b.range(rows, (0, block_b.panels(nr)));
                block(kernel, blk, &p, &range, b_source, &plan);
            });
        });
    });
}

/// Threads split B's column panels: every thread packs its own panels of each block and
/// multiplies them by all of A, so the whole product is one parallel phase with no barrier.
unsafe fn by_panels(
    kernel: &Microkernel,
    blk: &Blocking,
    p: &Problem,
    plan: &Plan,
    threads: usize,
) {
    let nr = kernel.nr;
    let shared = Shared((*p, *plan));
    for_each_task(threads, threads, |t| {
        let (p, plan) = shared.get();
        let blocks = plan.blocks;
        with_buffer(&PACK_B, plan.bpack_len, plan.buffers.1, |bpack| {
            blocks.each(&p, nr, |block_b, packed_at| {
                let panels = share(block_b.panels(nr), threads, t);
                if panels.0 >= panels.1 {
                    return;
                }
                let b_source = match plan.unpacked_source(&p, block_b, packed_at, bpack, nr) {
                    Some(source) => source,
                    None => {
                        block_b.pack(panels, nr, bpack);
                        BSource::packed(bpack, panels.0, block_b.kc, nr)
                    }
                };
                let range = block_b.range((0, p.m), panels);
                block(kernel, blk, &p, &range, b_source, &plan);
            });
        });
    });
}

/// Loops 5 and 4: B's blocks of `kc_step x nc_step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocks {
    nc_step: usize,
    kc_step: usize,
}

impl Blocks {
    /// The blocks of an empty product, which walks none.
    pub(crate) const EMPTY: Blocks = Blocks {
        nc_step: 0,
        kc_step: 0,
    };

    /// Calls `f` on every block of B, column blocks outside, depth blocks inside, with where
    /// the block starts in B packed whole in this order (the floats of the blocks before it,
    /// in panels of `nr`: see [`BlockB::packed_len`]).
    pub(crate) unsafe fn each(&self, p: &Problem, nr: usize, mut f: impl FnMut(BlockB, usize)) {
        let mut packed_at = 0;
        for jc in (0..p.n).step_by(self.nc_step) {
            for pc in (0..p.k).step_by(self.kc_step) {
                let block = BlockB {
                    b: Strided {
                        ptr: p.b.at(pc, jc),
                        ..p.b
                    },
                    jc,
                    nc: self.nc_step.min(p.n - jc),
                    pc,
                    kc: self.kc_step.min(p.k - pc),
                    beta: if pc == 0 { p.beta } else { 1.0 },
                    bias: if pc == 0 && !p.bias.is_null() {
                        p.bias.add(jc)
                    } else {
                        std::ptr::null()
                    },
                };
                f(block, packed_at);
                packed_at += block.packed_len(nr);
            }
        }
    }
}

/// One `kc x nc` block of B, at row `pc` and column `jc`.
#[derive(Clone, Copy)]
pub(crate) struct BlockB {
    b: Strided,
    jc: usize,
    nc: usize,
    pc: usize,
    kc: usize,
    /// The beta this block's product is combined with: the caller's for the first depth
    /// block, 1 for the others (they add to what the first wrote).
    beta: f32,
    /// The bias of the block's columns, added by the first depth block only (else null).
    bias: *const f32,
}

impl BlockB {
    /// Number of NR-wide micro-panels.
    pub(crate) fn panels(&self, nr: usize) -> usize {
        self.nc.div_ceil(nr)
    }

    /// Floats of the whole block packed: its panels of `nr * kc` each.
    pub(crate) fn packed_len(&self, nr: usize) -> usize {
        self.panels(nr) * nr * self.kc
    }

    /// Packs micro-panels `lo..hi` to `dst` (panel `lo` first, `nr * kc` floats each).
    pub(crate) unsafe fn pack(&self, (lo, hi): (usize, usize), nr: usize, dst: *mut f32) {
        if lo >= hi {
            // An empty share (fewer panels than threads).
            return;
        }
        let cols = (hi * nr).min(self.nc).saturating_sub(lo * nr);
        let first = Strided {
            ptr: self.b.at(0, lo * nr),
            ..self.b
        };
        pack_panels(first.t(), cols, self.kc, nr, dst);
    }

    /// The task that multiplies rows `rows` of A by micro-panels `panels` of this block.
    fn range(&self, rows: (usize, usize), panels: (usize, usize)) -> Range {
        Range {
            depth: (self.pc, self.kc),
            cols: (self.jc, self.nc),
            rows,
            panels,
            beta: self.beta,
            bias: self.bias,
        }
    }
}

/// Which operands the microkernel reads in place instead of from packed panels.
#[derive(Clone, Copy)]
struct Direct {
    a: bool,
    b: bool,
}

/// Where loop 2 finds B's micro-panels: panel `jp` starts at `base + (jp - first) * panel`,
/// and each of its k steps holds NR contiguous values, `step` elements apart.
#[derive(Clone, Copy)]
struct BSource {
    base: *const f32,
    first: usize,
    panel: usize,
    step: usize,
    /// The block whose panels are packed to `base` one at a time, when they are.
    lazy: Option<BlockB>,
}

impl BSource {
    /// B's block read in place: its rows hold contiguous values.
    fn direct(b: Strided, nr: usize) -> BSource {
        BSource {
            base: b.ptr,
            first: 0,
            panel: nr,
            step: b.rs,
            lazy: None,
        }
    }

    /// What tile `tile` of `tiles` requests into L2 while it multiplies panel `jp` (of panels
    /// up to `end`): its share of panel `jp + 1`, so that panel does not come from L3 at the
    /// rate the microkernel reads it (+4-7% on 1 thread at N = 2304 and 3072, no change
    /// elsewhere: bench/NOTES.md). Nothing after the last panel, or for a B read in place,
    /// whose steps are its row stride apart.
    ///
    /// Inlined into the tile loop (as [`Upcoming::share`] is), so the walk goes into the
    /// tile's `Panels` from registers. Returned through memory, it was written to a stack
    /// temporary 8 bytes at a time and copied 16 at a time: a load that spans two stores
    /// cannot take its data from them, so it waited for them to reach L1, behind the
    /// previous tile's stores to C (the instruction after each microkernel's return held
    /// 4.4% of a large product's samples; 1-5% faster on 1 thread, bench/NOTES.md).
    #[inline(always)]
    fn ahead(&self, (jp, end): (usize, usize), (tile, tiles): (usize, usize), nr: usize) -> Lines {
        // Panels packed one at a time ask nothing here: the transposing pack (B stored as
        // nn.Linear's weights) asks for the next panel's rows into L2 itself; a row-major B's
        // rows are contiguous runs the hardware prefetcher follows.
        if jp + 1 >= end || self.step != nr || self.lazy.is_some() {
            return Lines::NONE;
        }
        let share = self.panel.div_ceil(tiles).next_multiple_of(LINE);
        let start = (tile * share).min(self.panel);
        let next = (jp + 1 - self.first) * self.panel;
        Lines::contiguous(
            self.base.wrapping_add(next + start),
            share.min(self.panel - start),
        )
    }

    /// Panels packed at `base` from panel `first` on, `kc` steps of `nr` values each.
    fn packed(base: *const f32, first: usize, kc: usize, nr: usize) -> BSource {
        BSource {
            base,
            first,
            panel: nr * kc,
            step: nr,
            lazy: None,
        }
    }

    /// Panels of `block` packed one at a time into `buffer`, as loop 2 reaches them.
    fn lazy(block: BlockB, buffer: *mut f32, nr: usize) -> BSource {
        BSource {
            base: buffer,
            first: 0,
            panel: nr * block.kc,
            step: nr,
            lazy: Some(block),
        }
    }

    /// Where panel `jp` starts, after packing it when the panels are packed one at a time.
    unsafe fn panel_at(&self, jp: usize, nr: usize) -> *const f32 {
        match self.lazy {
            Some(block) => {
                block.pack((jp, jp + 1), nr, self.base.cast_mut());
                self.base
            }
            None => self.base.add((jp - self.first) * self.panel),
        }
    }
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
    /// How the product is combined into C: `C = alpha * AB + bias + beta * C`, with `bias`
    /// the block's first column's (null for none).
    beta: f32,
    bias: *const f32,
}

/// Whether threads split C's rows (loop 3) rather than its NR-wide column panels (loop 2):
/// whichever leaves the busiest thread the least microkernel work, counting the rows that
/// ragged MR tiles compute for nothing (at M = 128 on 2 threads, 64 rows each become 72, while
/// all 128 rows in one share count as 132). A ragged last panel counts at the full MR here,
/// though a short kernel may compute it (the 8 rows past 120 at M = 128): an estimate that
/// leans towards rows. Counting it exactly would move M = 1024 on 2 threads to the panel
/// split, measured 0.98-1.01x the row split there (bench/NOTES.md). Rows on a tie: each
/// thread then packs only its own rows of A.
fn split_rows(m: usize, n: usize, (mr, nr): (usize, usize), threads: usize) -> bool {
    let panels = n.div_ceil(nr);
    let by_rows = m.div_ceil(threads).div_ceil(mr) * mr * panels;
    let by_panels = m.div_ceil(mr) * mr * panels.div_ceil(threads);
    by_rows <= by_panels
}

/// Loops 3, 2 and 1 over one task's `range`, with B's panels at `b`. When the plan reads A
/// in place, only a ragged last panel is packed. Each tile's microkernel asks its share of
/// the plan's upcoming operands (else of the next B panel) into L2 while it computes, and
/// where the plan has no upcoming operands (whose share holds the next product's C) its own
/// lines of C into L1.
unsafe fn block(
    kernel: &Microkernel,
    blk: &Blocking,
    p: &Problem,
    range: &Range,
    b: BSource,
    plan: &Plan,
) {
    let direct_a = plan.direct.a;
    let (mr, nr) = (kernel.mr, kernel.nr);
    let ((pc, kc), (jc, nc)) = (range.depth, range.cols);
    let ((m_lo, m_hi), panels) = (range.rows, range.panels);
    if m_lo >= m_hi || panels.0 >= panels.1 {
        return;
    }
    let mc_step = even_chunk(m_hi - m_lo, blk.mc, mr);
    let apack_len = if direct_a { mr * kc } else { mc_step * kc };
    let tiles_total = (panels.1 - panels.0) * (m_hi - m_lo).div_ceil(mr);
    let mut tiles_done = 0;
    let batch_ahead = !plan.upcoming.is_none();
    with_buffer(&PACK_A, apack_len, plan.buffers.0, |apack| {
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
            let tiles = mc.div_ceil(mr);
            for jp in panels.0..panels.1 {
                let j = jp * nr;
                let b_panel = b.panel_at(jp, nr);
                for ir in (0..mc).step_by(mr) {
                    let ahead = if batch_ahead {
                        plan.upcoming.share(tiles_done, tiles_total)
                    } else {
                        b.ahead((jp, panels.1), (ir / mr, tiles), nr)
                    };
                    // The packed panel: this one's, or in place the ragged last one's.
                    let packed = if direct_a { apack } else { apack.add(ir * kc) };
                    let short = (ir >= full_rows)
                        .then(|| kernel.short_for(mc - ir))
                        .flatten();
                    let (a, (a_row, a_step), run) = match short {
                        Some(short) => (packed.cast_const(), (1, mr), short),
                        None if direct_a && ir < full_rows => {
                            (a_block.at(ir, 0), (a_block.rs, a_block.cs), kernel.direct)
                        }
                        None => (packed.cast_const(), (1, mr), kernel.packed),
                    };
                    let operands = Panels {
                        a,
                        a_row,
                        a_step,
                        b: b_panel,
                        b_step: b.step,
                        ahead,
                    };
                    let out = TileOut {
                        c: p.c.ptr.add((ic + ir) * p.c.rs + (jc + j) * p.c.cs),
                        rsc: p.c.rs,
                        csc: p.c.cs,
                        rows: mr.min(mc - ir),
                        cols: nr.min(nc - j),
                        alpha: p.alpha,
                        beta: range.beta,
                        bias: if range.bias.is_null() {
                            range.bias
                        } else {
                            range.bias.add(j)
                        },
                        fetch: !batch_ahead,
                    };
                    run(kc, &operands, &out);
                    tiles_done += 1;
                }
            }
        }
    });
}

/// `C = bias + beta * C` (C not read when `beta == 0`), for `k == 0` or `alpha == 0`.
unsafe fn scale(p: &Problem) {
    let c = p.c;
    for i in 0..p.m {
        for j in 0..p.n {
            let e = c.ptr.add(i * c.rs + j * c.cs);
            let bias = if p.bias.is_null() {
                0.0
            } else {
                *p.bias.add(j)
            };
            *e = if p.beta == 0.0 {
                bias
            } else {
                bias + p.beta * *e
            };
        }
    }
}

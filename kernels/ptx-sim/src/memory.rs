//! Device memory: global allocations with per-allocation bounds, the generic-address windows of
//! shared, local and const memory, and the shadow state that finds shared-memory races.

use crate::error::{ErrorKind, Result, SimError};

/// Generic addresses of shared memory start here (offset 0 of the block's shared memory).
pub const SHARED_WINDOW: u64 = 1 << 48;
/// Generic addresses of the thread's local memory start here.
pub const LOCAL_WINDOW: u64 = 2 << 48;
/// Generic addresses of the const bank start here.
pub const CONST_WINDOW: u64 = 3 << 48;
/// Size of each window.
pub const WINDOW_SIZE: u64 = 1 << 32;
/// First address handed out for host allocations.
const HEAP_START: u64 = 1 << 36;
/// Module `.global` variables live in windows from here up to `SHARED_WINDOW`: module `id` in
/// window `id % MODULE_WINDOWS`.
pub const MODULE_GLOBALS: u64 = 1 << 44;
/// The size of a module's window, the most `.global` data a module may have (1 GiB).
pub const MODULE_WINDOW: u64 = 1 << 30;
/// How many module windows there are; modules this many apart in parse order share one.
pub const MODULE_WINDOWS: u64 = (SHARED_WINDOW - MODULE_GLOBALS) / MODULE_WINDOW;

/// One global allocation.
#[derive(Clone, Debug)]
struct Alloc {
    base: u64,
    data: Vec<u8>,
    /// The writers of each [`PAGE`] bytes, once a plain store wrote into them (empty until
    /// the first store).
    pages: Vec<Option<WriterPage>>,
}

impl Alloc {
    /// The index of the writer page holding `addr` (an address of this allocation).
    fn page_of(&self, addr: u64) -> usize {
        (addr / PAGE as u64 - self.base / PAGE as u64) as usize
    }
}

/// Bytes whose writers are tracked together, at addresses that are multiples of it: an
/// aligned access (at most 16 bytes) never straddles two.
const PAGE: usize = 1024;

/// Per byte of a page, the block (linear index + 1) whose plain store last wrote it in
/// launch `launch`, or 0; entries of an earlier launch count as 0.
#[derive(Clone, Debug)]
struct WriterPage {
    launch: u64,
    writers: Box<[u32]>,
}

/// A global access that blocks of one launch make without ordering: on a GPU the blocks run
/// at the same time, so its outcome depends on their timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalConflict {
    /// The bytes were written by another block (its linear index) of this launch.
    OtherBlock(u32),
    /// A non-coherent (`.nc`) load of bytes written in this launch, by this block too.
    NonCoherent,
}

/// All global memory of a simulator: host buffers and module variables, each bounds-checked
/// on its own (an access that starts in one and runs into the next is out of bounds).
#[derive(Clone, Debug, Default)]
pub struct GlobalMem {
    allocs: Vec<Alloc>,
    next: u64,
    /// The launch running (or last run), for the writer pages.
    launch: u64,
    /// The allocation [`GlobalMem::find`] found last.
    last: std::cell::Cell<usize>,
}

impl GlobalMem {
    /// Adds an allocation holding `data` and returns its address (256-byte aligned, with an
    /// unmapped gap after it so that running off the end is caught).
    pub fn alloc(&mut self, data: Vec<u8>) -> u64 {
        let base = self.next.max(HEAP_START);
        self.next = (base + data.len() as u64 + 256).next_multiple_of(256);
        self.insert(base, data);
        base
    }

    /// Adds an allocation at a fixed address (module variables).
    pub fn insert(&mut self, base: u64, data: Vec<u8>) {
        let at = self.allocs.partition_point(|a| a.base < base);
        self.allocs.insert(
            at,
            Alloc {
                base,
                data,
                pages: Vec::new(),
            },
        );
    }

    /// Removes the allocation starting at `base`; whether there was one. Its addresses are
    /// never handed out again, so a later access through them is out of bounds.
    pub fn remove(&mut self, base: u64) -> bool {
        match self.find(base, 0) {
            Some((i, 0)) => {
                self.allocs.remove(i);
                true
            }
            _ => false,
        }
    }

    /// Whether an allocation starts at `base`.
    pub fn contains(&self, base: u64) -> bool {
        self.find(base, 0)
            .is_some_and(|(i, off)| off == 0 && self.allocs[i].base == base)
    }

    /// The allocation holding all of `[addr, addr + len)` and the offset of `addr` in it.
    fn find(&self, addr: u64, len: u64) -> Option<(usize, usize)> {
        // Most accesses go to the allocation of the access before (allocations never
        // overlap, so one that holds the bytes is the answer whatever its index now is).
        let last = self.last.get();
        if let Some(a) = self.allocs.get(last) {
            if let Some(off) = addr.checked_sub(a.base) {
                if off + len <= a.data.len() as u64 {
                    return Some((last, off as usize));
                }
            }
        }
        let i = self
            .allocs
            .partition_point(|a| a.base <= addr)
            .checked_sub(1)?;
        let a = &self.allocs[i];
        let off = addr - a.base;
        self.last.set(i);
        (off + len <= a.data.len() as u64).then_some((i, off as usize))
    }

    fn out_of_bounds(&self, addr: u64, len: u64) -> SimError {
        let near = self
            .allocs
            .partition_point(|a| a.base <= addr)
            .checked_sub(1)
            .map(|i| &self.allocs[i])
            .filter(|a| addr < a.base + a.data.len() as u64 + 4096);
        let what = match near {
            Some(a) => format!(
                "{len}-byte global access at offset {} of a {}-byte allocation at {:#x}",
                addr - a.base,
                a.data.len(),
                a.base
            ),
            None => format!("{len}-byte global access outside every allocation"),
        };
        SimError::new(ErrorKind::OutOfBounds, what).at_address(addr)
    }

    /// The bytes `[addr, addr + len)` for writing.
    pub fn bytes_mut(&mut self, addr: u64, len: u64) -> Result<&mut [u8]> {
        let (i, off) = self
            .find(addr, len)
            .ok_or_else(|| self.out_of_bounds(addr, len))?;
        Ok(&mut self.allocs[i].data[off..off + len as usize])
    }

    /// A new launch starts: no byte has a writer yet.
    pub fn begin_launch(&mut self) {
        self.launch += 1;
    }

    /// The bytes `[addr, addr + len)` (aligned to their length) for a load, with, when
    /// `by` gives the loading block (its linear index) and whether the load is non-coherent,
    /// the conflict it has with this launch's stores.
    pub fn load(
        &self,
        addr: u64,
        len: u64,
        by: Option<(u32, bool)>,
    ) -> Result<(&[u8], Option<GlobalConflict>)> {
        let (i, off) = self
            .find(addr, len)
            .ok_or_else(|| self.out_of_bounds(addr, len))?;
        let a = &self.allocs[i];
        let bytes = &a.data[off..off + len as usize];
        let Some((block, nc)) = by else {
            return Ok((bytes, None));
        };
        let page = match a.pages.get(a.page_of(addr)) {
            Some(Some(page)) if page.launch == self.launch => page,
            _ => return Ok((bytes, None)),
        };
        let me = block.wrapping_add(1);
        let at = addr as usize % PAGE;
        let conflict = page.writers[at..at + len as usize]
            .iter()
            .find_map(|&w| match w {
                0 => None,
                _ if nc => Some(GlobalConflict::NonCoherent),
                w if w != me => Some(GlobalConflict::OtherBlock(w - 1)),
                _ => None,
            });
        Ok((bytes, conflict))
    }

    /// Stores `bytes` at `addr` (aligned to their length), recording, when `by` gives the
    /// storing block (its linear index), that it wrote them in this launch; the other block
    /// that already wrote one of them in this launch, if any and if it left other values
    /// there (the store is made either way).
    pub fn store(
        &mut self,
        addr: u64,
        bytes: &[u8],
        by: Option<u32>,
    ) -> Result<Option<GlobalConflict>> {
        let len = bytes.len();
        let (i, off) = self
            .find(addr, len as u64)
            .ok_or_else(|| self.out_of_bounds(addr, len as u64))?;
        let launch = self.launch;
        let a = &mut self.allocs[i];
        // Blocks storing the same bytes leave the same memory in any order (an error flag).
        let same = a.data[off..off + len] == *bytes;
        a.data[off..off + len].copy_from_slice(bytes);
        let Some(block) = by else {
            return Ok(None);
        };
        if a.pages.is_empty() {
            // The allocation holds the stored bytes, so it is not empty.
            let last = a.base + a.data.len() as u64 - 1;
            a.pages = vec![None; a.page_of(last) + 1];
        }
        let index = a.page_of(addr);
        let page = a.pages[index].get_or_insert_with(|| WriterPage {
            launch,
            writers: vec![0; PAGE].into_boxed_slice(),
        });
        if page.launch != launch {
            page.launch = launch;
            page.writers.fill(0);
        }
        let me = block.wrapping_add(1);
        let at = addr as usize % PAGE;
        let span = &mut page.writers[at..at + len];
        let other = span.iter().find(|&&w| w != 0 && w != me).copied();
        span.fill(me);
        Ok(other
            .filter(|_| !same)
            .map(|w| GlobalConflict::OtherBlock(w - 1)))
    }

    /// The whole allocation starting at `base`.
    pub fn allocation(&self, base: u64) -> Option<&[u8]> {
        let (i, off) = self.find(base, 0)?;
        (off == 0).then(|| self.allocs[i].data.as_slice())
    }
}

/// Little-endian value of up to 8 bytes.
pub fn load_le(b: &[u8]) -> u64 {
    let mut v = [0u8; 8];
    v[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(v)
}

/// Stores the low `out.len()` bytes of `v`.
pub fn store_le(out: &mut [u8], v: u64) {
    let n = out.len();
    out.copy_from_slice(&v.to_le_bytes()[..n]);
}

/// Bounds check of `[addr, addr + len)` within a space of `size` bytes.
pub fn check_range(addr: u64, len: u64, size: usize, space: &str) -> Result<usize> {
    if addr.checked_add(len).is_some_and(|end| end <= size as u64) {
        Ok(addr as usize)
    } else {
        Err(SimError::new(
            ErrorKind::OutOfBounds,
            format!("{len}-byte {space} access at offset {addr:#x}, outside the {size} bytes of {space} memory"),
        )
        .at_address(addr))
    }
}

/// Most member masks a warp's `SyncLog` keeps in one barrier interval.
pub const MAX_SYNC_MASKS: usize = 256;

/// The `bar.warp.sync` instructions one warp completed in the current barrier interval: the
/// latest number of each member mask that no later sync's mask contains (a later sync of a
/// larger mask orders everything the earlier one did), at most `MAX_SYNC_MASKS` of them.
#[derive(Clone, Debug, Default)]
pub struct SyncLog {
    /// Syncs completed by the warp in the block so far.
    count: u32,
    /// (number, member mask) of the syncs kept, oldest first.
    masks: Vec<(u32, u32)>,
}

impl SyncLog {
    /// The number of syncs so far: an access records it to be compared with later ones.
    pub fn now(&self) -> u32 {
        self.count
    }

    /// Records a completed `bar.warp.sync` of the lanes in `mask`. An error when the count
    /// passes u32 or the interval has more than `MAX_SYNC_MASKS` masks none containing another.
    pub fn push(&mut self, mask: u32) -> Result<()> {
        let number = self.count;
        self.count = number.checked_add(1).ok_or_else(|| {
            SimError::new(
                ErrorKind::Unsupported,
                "a warp executed more than 2^32 bar.warp.sync in one block",
            )
        })?;
        self.masks.retain(|&(_, m)| m & mask != m);
        if self.masks.len() >= MAX_SYNC_MASKS {
            return Err(SimError::new(
                ErrorKind::Unsupported,
                format!("a warp executed bar.warp.sync with more than {MAX_SYNC_MASKS} member masks, none containing another, between two block barriers: more than the race check tracks"),
            ));
        }
        self.masks.push((number, mask));
        Ok(())
    }

    /// Forgets the masks (a block barrier orders everything before it); numbering goes on.
    pub fn new_interval(&mut self) {
        self.masks.clear();
    }

    /// Whether a sync numbered `from` or later had every lane of `lanes` as a member, so that
    /// what those lanes did before `from` is ordered before what they do now.
    pub fn synced(&self, from: u32, lanes: u32) -> bool {
        self.masks
            .iter()
            .rev()
            .take_while(|&&(n, _)| n >= from)
            .any(|&(_, m)| m & lanes == lanes)
    }
}

/// Threads that accessed one byte of shared memory in one barrier interval without being
/// ordered among themselves: its reads, or its atomic writes.
#[derive(Clone, Copy, Debug, Default)]
struct Group {
    /// Interval of the accesses; 0 never.
    epoch: u64,
    /// Thread of the accesses, or `MANY` when several threads made them.
    thread: u32,
    /// Warp of the threads, or `MANY` when threads of several warps.
    warp: u32,
    /// Lanes of `warp` that accessed at its sync count `sync` (the latest round).
    lanes: u32,
    sync: u32,
    /// Lanes that accessed in earlier rounds, all taken to have done so at sync count
    /// `old_sync` (the latest of those rounds: a sync after it orders every one of them).
    old_lanes: u32,
    old_sync: u32,
}

impl Group {
    /// Adds an access by `who` (lane bit `me`).
    #[inline(always)]
    fn add(&mut self, who: Accessor, me: u32) {
        if self.epoch != who.epoch {
            *self = Group {
                epoch: who.epoch,
                thread: who.thread,
                warp: who.warp,
                lanes: me,
                sync: who.sync,
                old_lanes: 0,
                old_sync: 0,
            };
            return;
        }
        if self.thread != who.thread {
            self.thread = MANY;
        }
        if self.warp != who.warp {
            self.warp = MANY;
        } else if self.sync == who.sync {
            self.lanes |= me;
        } else {
            self.old_lanes |= self.lanes;
            self.old_sync = self.sync;
            (self.lanes, self.sync) = (me, who.sync);
        }
    }

    /// The conflict of an access by `who` (lane bit `me`) with these accesses, unless each is
    /// the accessor's own or ordered before it by a `bar.warp.sync` of `log`.
    #[inline(always)]
    fn conflict(&self, who: Accessor, me: u32, log: &SyncLog, wrote: bool) -> Option<Conflict> {
        let before = |lanes: u32, sync: u32| lanes & !me == 0 || log.synced(sync, lanes | me);
        let ordered = self.epoch != who.epoch
            || self.warp == who.warp
                && before(self.lanes, self.sync)
                && before(self.old_lanes, self.old_sync);
        (!ordered).then(|| Conflict {
            other: (self.thread != MANY).then_some(self.thread),
            other_wrote: wrote,
        })
    }
}

/// Who last touched one byte of shared memory, within which barrier interval.
#[derive(Clone, Copy, Debug, Default)]
struct ShadowByte {
    /// The last plain write, or the atomic writes since it.
    writes: Group,
    /// The reads.
    reads: Group,
    /// `writes` are atomic.
    write_atomic: bool,
}

const MANY: u32 = u32::MAX;

/// One access to check: which thread (and warp, and that warp's sync count) in which interval.
#[derive(Clone, Copy, Debug)]
pub struct Accessor {
    /// Linear thread index in the block.
    pub thread: u32,
    /// Warp index in the block.
    pub warp: u32,
    /// The warp's `bar.warp.sync` count (`SyncLog::now`).
    pub sync: u32,
    /// Current barrier interval of the block, unique over the launch.
    pub epoch: u64,
}

/// A race found by the shadow: the other thread and whether it wrote.
#[derive(Clone, Copy, Debug)]
pub struct Conflict {
    /// Linear thread index of the earlier access (`None` when several threads made it).
    pub other: Option<u32>,
    /// The earlier access was a write.
    pub other_wrote: bool,
}

/// Race-detection state of a block's shared memory, one entry per byte. Entries of earlier
/// barrier intervals (and blocks) are ignored, so it needs no reset between blocks.
#[derive(Clone, Debug, Default)]
pub struct Shadow {
    bytes: Vec<ShadowByte>,
}

impl Shadow {
    /// Fresh state for `size` bytes.
    pub fn new(size: usize) -> Shadow {
        Shadow {
            bytes: vec![ShadowByte::default(); size],
        }
    }

    /// Records an access of `len` bytes at `off`; returns the conflict if another thread touched
    /// these bytes in the same interval without synchronising with this one. Lanes of one warp
    /// are ordered by a `bar.warp.sync` of `log` (the accessor's warp) naming both. Atomics do
    /// not conflict with each other, but each conflicts with an unordered plain access.
    pub fn access(
        &mut self,
        off: usize,
        len: usize,
        who: Accessor,
        write: bool,
        atomic: bool,
        log: &SyncLog,
    ) -> Option<Conflict> {
        let me = 1u32 << (who.thread % 32);
        for s in &mut self.bytes[off..off + len] {
            let both_atomic = atomic && s.write_atomic;
            let writes = (!both_atomic).then(|| s.writes.conflict(who, me, log, true));
            if let Some(c) = writes.flatten() {
                return Some(c);
            }
            let reads = write.then(|| s.reads.conflict(who, me, log, false));
            if let Some(c) = reads.flatten() {
                return Some(c);
            }
            if !write {
                s.reads.add(who, me);
                continue;
            }
            if !both_atomic {
                s.writes.epoch = 0;
            }
            s.writes.add(who, me);
            s.write_atomic = atomic;
        }
        None
    }

    /// An access to bytes `[off, off + len)` by a thread other than `thread` in a barrier
    /// interval after `from` and before `now` (the last reads and the last write of each byte
    /// are kept, so an access that later ones replaced is not seen). A `cp.async` issued in
    /// interval `from` and completed in `now` may write its bytes in any of them.
    pub fn touched_between(
        &self,
        off: usize,
        len: usize,
        from: u64,
        now: u64,
        thread: u32,
    ) -> Option<Conflict> {
        self.bytes[off..off + len].iter().find_map(|s| {
            [(&s.writes, true), (&s.reads, false)]
                .into_iter()
                .find(|(g, _)| g.epoch > from && g.epoch < now && g.thread != thread)
                .map(|(g, wrote)| Conflict {
                    other: (g.thread != MANY).then_some(g.thread),
                    other_wrote: wrote,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_log_keeps_only_masks_no_later_one_contains() {
        let mut log = SyncLog::default();
        for _ in 0..100_000 {
            log.push(0b1).expect("room");
        }
        assert_eq!(log.now(), 100_000);
        assert_eq!(log.masks.len(), 1);
        let before = log.now();
        log.push(0b0110).expect("room");
        log.push(0b0010).expect("room");
        assert!(log.synced(before, 0b0110));
        assert!(log.synced(before + 1, 0b0010));
        assert!(!log.synced(before + 1, 0b0110));
        assert!(!log.synced(before, 0b0001));
        assert!(log.synced(0, 0b0001));
        log.push(0b0111).expect("room");
        assert_eq!(log.masks.len(), 1);
        assert!(log.synced(before + 2, 0b0001));
    }

    #[test]
    fn a_plain_access_must_follow_every_atomic_writer() {
        let mut shadow = Shadow::new(4);
        let mut log = SyncLog::default();
        let who = |thread: u32, log: &SyncLog| Accessor {
            thread,
            warp: thread / 32,
            sync: log.now(),
            epoch: 1,
        };
        for t in [0, 1] {
            assert!(shadow
                .access(0, 4, who(t, &log), true, true, &log)
                .is_none());
        }
        let c = shadow.access(0, 4, who(1, &log), false, false, &log);
        assert!(c.is_some_and(|c| c.other.is_none() && c.other_wrote));
        log.push(0b11).expect("room");
        assert!(shadow
            .access(0, 4, who(1, &log), false, false, &log)
            .is_none());
    }

    #[test]
    fn a_sync_log_refuses_masks_past_its_bound_and_counts_past_u32() {
        let mut log = SyncLog::default();
        let distinct = (0..32).flat_map(|a| (a + 1..32).map(move |b| 1u32 << a | 1 << b));
        let e = distinct
            .take(MAX_SYNC_MASKS + 1)
            .try_for_each(|m| log.push(m))
            .expect_err("too many masks");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        let mut log = SyncLog {
            count: u32::MAX - 1,
            ..SyncLog::default()
        };
        log.push(1).expect("the last count");
        assert!(log.push(1).is_err());
    }
}

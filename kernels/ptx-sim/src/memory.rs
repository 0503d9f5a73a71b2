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
}

/// All global memory of a simulator: host buffers and module variables, each bounds-checked
/// on its own (an access that starts in one and runs into the next is out of bounds).
#[derive(Clone, Debug, Default)]
pub struct GlobalMem {
    allocs: Vec<Alloc>,
    next: u64,
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
        self.allocs.insert(at, Alloc { base, data });
    }

    /// Whether an allocation starts at `base`.
    pub fn contains(&self, base: u64) -> bool {
        self.find(base, 0)
            .is_some_and(|(i, off)| off == 0 && self.allocs[i].base == base)
    }

    fn find(&self, addr: u64, len: u64) -> Option<(usize, usize)> {
        let i = self
            .allocs
            .partition_point(|a| a.base <= addr)
            .checked_sub(1)?;
        let a = &self.allocs[i];
        let off = addr - a.base;
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

    /// The bytes `[addr, addr + len)`.
    pub fn bytes(&self, addr: u64, len: u64) -> Result<&[u8]> {
        let (i, off) = self
            .find(addr, len)
            .ok_or_else(|| self.out_of_bounds(addr, len))?;
        Ok(&self.allocs[i].data[off..off + len as usize])
    }

    /// The bytes `[addr, addr + len)` for writing.
    pub fn bytes_mut(&mut self, addr: u64, len: u64) -> Result<&mut [u8]> {
        let (i, off) = self
            .find(addr, len)
            .ok_or_else(|| self.out_of_bounds(addr, len))?;
        Ok(&mut self.allocs[i].data[off..off + len as usize])
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

/// Who last touched one byte of shared memory, within which barrier interval.
#[derive(Clone, Copy, Debug, Default)]
struct ShadowByte {
    /// Interval (barrier epoch) of the last write; 0 never.
    write_epoch: u64,
    /// Thread of the last write.
    writer: u32,
    /// The writer warp's sync count (`SyncLog::now`) at the write.
    write_sync: u32,
    /// The last write was atomic.
    write_atomic: bool,
    /// Interval of the last read.
    read_epoch: u64,
    /// Thread of the last read, or `MANY` when several threads read in the interval.
    reader: u32,
    /// Warp of the readers, or `MANY` when readers of several warps.
    reader_warp: u32,
    /// Lanes of `reader_warp` that read at its sync count `read_sync` (the latest round).
    read_lanes: u32,
    read_sync: u32,
    /// Lanes that read in earlier rounds, all taken to have read at sync count `old_sync`
    /// (the latest of those rounds: a sync after it orders every one of them).
    old_lanes: u32,
    old_sync: u32,
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
    /// Linear thread index of the earlier access (`None` when several threads read).
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
    /// are ordered by a `bar.warp.sync` of `log` (the accessor's warp) naming both.
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
            if s.write_epoch == who.epoch
                && !(atomic && s.write_atomic)
                && s.writer != who.thread
                && !(s.writer / 32 == who.warp
                    && log.synced(s.write_sync, me | 1 << (s.writer % 32)))
            {
                return Some(Conflict {
                    other: Some(s.writer),
                    other_wrote: true,
                });
            }
            if write && s.read_epoch == who.epoch {
                let before =
                    |lanes: u32, sync: u32| lanes & !me == 0 || log.synced(sync, lanes | me);
                let ordered = s.reader_warp == who.warp
                    && before(s.read_lanes, s.read_sync)
                    && before(s.old_lanes, s.old_sync);
                if !ordered {
                    let other = (s.reader != MANY).then_some(s.reader);
                    return Some(Conflict {
                        other,
                        other_wrote: false,
                    });
                }
            }
            if write {
                s.write_epoch = who.epoch;
                s.writer = who.thread;
                s.write_sync = who.sync;
                s.write_atomic = atomic;
            } else {
                if s.read_epoch != who.epoch {
                    s.reader = who.thread;
                    s.reader_warp = who.warp;
                    (s.read_lanes, s.read_sync) = (me, who.sync);
                    (s.old_lanes, s.old_sync) = (0, 0);
                } else {
                    if s.reader != who.thread {
                        s.reader = MANY;
                    }
                    if s.reader_warp != who.warp {
                        s.reader_warp = MANY;
                    } else if s.read_sync == who.sync {
                        s.read_lanes |= me;
                    } else {
                        s.old_lanes |= s.read_lanes;
                        s.old_sync = s.read_sync;
                        (s.read_lanes, s.read_sync) = (me, who.sync);
                    }
                }
                s.read_epoch = who.epoch;
            }
        }
        None
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

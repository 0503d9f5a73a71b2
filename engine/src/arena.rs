//! The step arena: bump allocation of tensors over 64-byte aligned blocks.
//!
//! A training step allocates every activation and gradient here and ends with
//! [`Arena::reset`], which frees them all at once. The first step grows the arena block by
//! block (each new block as large as all before it); `reset` keeps the blocks, so later steps
//! of the same shapes, which make the same bump decisions, fit in them and allocate nothing
//! from the global allocator ("it grows only when a step needs more than it has"), nor touch
//! a page the first step did not.
//!
//! # Scopes and validation
//!
//! Tensors are handles without lifetimes ([`crate::Tensor`]), so a handle may outlive the
//! memory it points to. Every allocation records the arena's id and the `(depth, epoch)` of
//! the scope it was made in. Depth 0 is the step; [`Arena::mark`] opens a nested scope
//! (depth + 1) with a fresh epoch. The arena keeps the epoch of each open depth in a fixed
//! stack of [`MAX_DEPTH`] entries. [`Arena::reset`] gives depth 0 a fresh epoch and closes every
//! mark; [`Arena::reset_to`] gives the mark's depth a fresh epoch and closes the marks inside
//! it; [`Arena::close`] does the same and closes the mark itself. Epochs come from a per-arena counter and are never reused, so a handle is live exactly
//! when its arena id matches, its depth is open and that depth still has the handle's epoch.
//! Reading a dead handle is an [`Error::Released`], never a dangling read.
//!
//! # Safety invariants
//!
//! The `unsafe` code here hands out slices of block memory; it is sound because:
//!
//! 1. Blocks are heap allocations owned by the arena and are freed only when the arena is
//!    dropped. Adding a block never moves an existing one.
//! 2. Between resets the bump position `(block, top)` only moves forward; `reset_to` moves it
//!    back to its mark and, in the same call, kills every scope opened after the mark, so every
//!    region that is handed out again belonged only to dead handles. Hence live allocations
//!    are pairwise disjoint and lie before the bump position.
//! 3. A `&mut [f32]` to a region exists inside the [`Fresh`] returned by [`Arena::alloc`],
//!    which becomes a [`crate::Tensor`] (read-only access) only by being consumed, or comes
//!    from the `unsafe` `Arena::slice_mut`, whose caller (the autograd tape, for buffers it
//!    owns alone) guarantees that nothing else reads or refers to the slot meanwhile. Shared
//!    slices of live tensors borrow the arena, so they end before `reset` or `reset_to` (both
//!    `&mut self`) can recycle their memory.
//! 4. Block memory is zeroed when the block is allocated and is only ever written as `f32`,
//!    so every slice handed out is initialised. A fresh allocation holds zeros the first time
//!    its memory is used and, after a reset, whatever values the previous step left there.
//! 5. Arena ids come from a global counter and are never reused, so a handle of a dropped
//!    arena can never be validated against another arena.

use crate::shape::Shape;
use crate::{Error, Result};
use std::alloc::{self, Layout as AllocLayout};
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Alignment in bytes of every block and of every allocation.
pub const ALIGN: usize = 64;

/// Scopes the arena tracks: the step (depth 0) and up to `MAX_DEPTH - 1` nested marks.
pub const MAX_DEPTH: usize = 8;

/// Floats per alignment unit; every allocation is rounded up to a multiple of it.
const ALIGN_FLOATS: usize = ALIGN / std::mem::size_of::<f32>();

/// The smallest block the arena adds when it grows, in floats (256 KiB).
const MIN_BLOCK_FLOATS: usize = 1 << 16;

/// Source of arena ids, never reused.
static NEXT_ARENA_ID: AtomicU64 = AtomicU64::new(0);

/// One zero-initialised, 64-byte aligned heap block of `len` floats.
///
/// The allocation asks for `ALIGN` extra bytes at the system allocator's natural alignment
/// and aligns the start by hand: `alloc_zeroed` with a 64-byte alignment would `memset` the
/// whole block (touching every page), while at natural alignment it is `calloc`, whose large
/// blocks come as fresh zero pages from the OS that cost memory only once touched.
struct Block {
    ptr: NonNull<f32>,
    len: usize,
    raw: NonNull<u8>,
    layout: AllocLayout,
}

// SAFETY: a block uniquely owns its allocation; moving it to another thread moves that
// ownership.
unsafe impl Send for Block {}

impl Block {
    /// Allocates `len` zeroed floats (`len > 0`).
    fn new(len: usize) -> Result<Block> {
        let layout = len
            .checked_mul(std::mem::size_of::<f32>())
            .and_then(|bytes| bytes.checked_add(ALIGN))
            .and_then(|bytes| AllocLayout::from_size_align(bytes, std::mem::align_of::<f32>()).ok())
            .ok_or(Error::OutOfMemory { bytes: usize::MAX })?;
        // SAFETY: `len > 0`, so the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let raw = NonNull::new(raw).ok_or(Error::OutOfMemory {
            bytes: layout.size(),
        })?;
        let skip = raw.as_ptr().align_offset(ALIGN);
        // SAFETY: `align_offset` of a byte pointer to a power-of-two alignment is below
        // `ALIGN`, and the allocation has `ALIGN` bytes more than the `len` floats, so the
        // aligned start and `len` floats after it lie inside it.
        let ptr = unsafe { NonNull::new_unchecked(raw.as_ptr().add(skip).cast::<f32>()) };
        Ok(Block {
            ptr,
            len,
            raw,
            layout,
        })
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `raw` was returned by `alloc_zeroed` with this same layout and is freed once.
        unsafe { alloc::dealloc(self.raw.as_ptr(), self.layout) }
    }
}

/// Where one tensor lives in an arena, and the scope that must still be open to read it.
#[derive(Clone, Copy, Debug)]
pub struct ArenaSlot {
    ptr: NonNull<f32>,
    len: usize,
    arena: u64,
    depth: usize,
    epoch: u64,
}

// SAFETY: a slot is plain data; its pointer is dereferenced only by `Arena::slice`, through a
// borrow of the arena that owns the memory, after checking that the slot is still live. The
// arena is not `Sync`, so no two threads can read through it at once.
unsafe impl Send for ArenaSlot {}
// SAFETY: as for `Send`: shared slots give no access without a borrow of their arena.
unsafe impl Sync for ArenaSlot {}

impl ArenaSlot {
    /// Number of floats in the allocation.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the allocation holds no floats.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `other` is the same allocation (of the same arena).
    pub(crate) fn same_allocation(&self, other: &ArenaSlot) -> bool {
        (self.ptr, self.len, self.arena) == (other.ptr, other.len, other.arena)
    }
}

/// A bump allocator for the tensors of one step; see the module documentation.
pub struct Arena {
    id: u64,
    blocks: RefCell<Vec<Block>>,
    /// Index of the block being bumped (may equal `blocks.len()` when there is none yet).
    block: Cell<usize>,
    /// Floats already handed out in the current block.
    top: Cell<usize>,
    /// Bytes handed out since the last reset, alignment padding included.
    used: Cell<usize>,
    high_water: Cell<usize>,
    /// The innermost open scope.
    depth: Cell<usize>,
    /// The epoch of each open scope `0..=depth`.
    epochs: [Cell<u64>; MAX_DEPTH],
    next_epoch: Cell<u64>,
}

/// A scope opened by [`Arena::mark`]: [`Arena::reset_to`] frees what was allocated after it.
#[derive(Debug)]
pub struct Mark {
    arena: u64,
    depth: usize,
    epoch: u64,
    block: usize,
    top: usize,
    used: usize,
}

/// A freshly allocated, contiguous region of an arena: write it, then make it a tensor.
///
/// The only mutable access to the region lives here; [`Fresh::into_tensor`] consumes it.
pub struct Fresh<'a> {
    data: &'a mut [f32],
    shape: Shape,
    slot: ArenaSlot,
}

impl Fresh<'_> {
    /// The region's `shape.numel()` values in row-major order, for writing.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        self.data
    }

    /// The shape the region was allocated for.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The contiguous tensor of this shape over the region.
    pub fn into_tensor(self) -> crate::Tensor {
        crate::Tensor::from_arena(self.shape, self.slot)
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

impl Arena {
    /// An empty arena; the first allocation adds its first block.
    pub fn new() -> Arena {
        Arena {
            id: NEXT_ARENA_ID.fetch_add(1, Ordering::Relaxed),
            blocks: RefCell::new(Vec::new()),
            block: Cell::new(0),
            top: Cell::new(0),
            used: Cell::new(0),
            high_water: Cell::new(0),
            depth: Cell::new(0),
            epochs: std::array::from_fn(|_| Cell::new(0)),
            next_epoch: Cell::new(1),
        }
    }

    /// An arena with one block of at least `bytes` bytes (rounded up to 64).
    pub fn with_capacity(bytes: usize) -> Result<Arena> {
        let arena = Arena::new();
        let floats = bytes.div_ceil(ALIGN) * ALIGN_FLOATS;
        if floats > 0 {
            arena.blocks.borrow_mut().push(Block::new(floats)?);
        }
        Ok(arena)
    }

    /// A contiguous region for a tensor of shape `dims`, 64-byte aligned.
    ///
    /// Its values are initialised but unspecified: zeros on first use of the memory, else
    /// what an earlier, released tensor left there. Grows the arena by a new block when the
    /// current one is full (existing blocks never move). Errors when `dims` is not a valid
    /// [`Shape`] or the system allocator fails.
    pub fn alloc(&self, dims: &[usize]) -> Result<Fresh<'_>> {
        self.alloc_shape(Shape::for_op("Arena::alloc", dims)?)
    }

    /// [`Arena::alloc`] for a checked shape.
    pub(crate) fn alloc_shape(&self, shape: Shape) -> Result<Fresh<'_>> {
        let numel = shape.numel();
        let padded = numel
            .checked_next_multiple_of(ALIGN_FLOATS)
            .filter(|&n| n <= isize::MAX as usize / std::mem::size_of::<f32>())
            .ok_or_else(|| Error::Shape {
                op: "Arena::alloc",
                detail: format!("{shape} needs more than isize::MAX bytes"),
            })?;
        let ptr = if padded == 0 {
            NonNull::dangling()
        } else {
            self.bump(padded)?
        };
        let used = self.used.get() + padded * std::mem::size_of::<f32>();
        self.used.set(used);
        self.high_water.set(self.high_water.get().max(used));
        let depth = self.depth.get();
        let slot = ArenaSlot {
            ptr,
            len: numel,
            arena: self.id,
            depth,
            epoch: self.epochs[depth].get(),
        };
        // SAFETY: `ptr` is dangling only for `numel == 0`; otherwise it starts `padded >= numel`
        // floats that `bump` just took from a live block, past every live allocation
        // (invariant 2), so nothing else refers to them; they are initialised (invariant 4);
        // and the borrow `'_` of the arena keeps `reset`/`reset_to` from recycling them while
        // this slice exists (invariant 3).
        let data = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), numel) };
        Ok(Fresh { data, shape, slot })
    }

    /// Takes `floats > 0` floats at the bump position, moving to the next block that fits or
    /// adding a new one.
    fn bump(&self, floats: usize) -> Result<NonNull<f32>> {
        let mut blocks = self.blocks.borrow_mut();
        let mut index = self.block.get();
        let mut top = self.top.get();
        loop {
            match blocks.get(index) {
                Some(block) if block.len - top >= floats => {
                    self.block.set(index);
                    self.top.set(top + floats);
                    // SAFETY: `top + floats <= block.len`, so the offset stays in the block.
                    return Ok(unsafe { block.ptr.add(top) });
                }
                Some(_) => {
                    index += 1;
                    top = 0;
                }
                None => {
                    let total: usize = blocks.iter().map(|b| b.len).sum();
                    blocks.push(Block::new(floats.max(total).max(MIN_BLOCK_FLOATS))?);
                    index = blocks.len() - 1;
                    top = 0;
                }
            }
        }
    }

    /// The live slice of `slot`, or an error naming `op` and `shape` when it was released or
    /// belongs to another arena.
    pub(crate) fn slice(
        &self,
        op: &'static str,
        slot: &ArenaSlot,
        shape: &Shape,
    ) -> Result<&[f32]> {
        if slot.arena != self.id {
            return Err(Error::ForeignArena { op, shape: *shape });
        }
        if !self.is_open(slot.depth, slot.epoch) {
            return Err(Error::Released { op, shape: *shape });
        }
        // SAFETY: the slot is live (checked above), so its memory lies in a block this arena
        // still owns and no `&mut` to it exists any more (invariants 1 to 3); the returned
        // borrow of `self` ends before `reset`/`reset_to` can recycle it.
        Ok(unsafe { std::slice::from_raw_parts(slot.ptr.as_ptr(), slot.len) })
    }

    /// The live slice of `slot` for writing, with the checks of [`Arena::slice`].
    ///
    /// # Safety
    ///
    /// No other reference to the slot's memory may exist while the returned slice lives, and
    /// no handle to it may be read meanwhile (the autograd tape uses it for gradient buffers
    /// it owns alone).
    // Exclusive access is the caller's `unsafe` contract, not the borrow's.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(
        &self,
        op: &'static str,
        slot: &ArenaSlot,
        shape: &Shape,
    ) -> Result<&mut [f32]> {
        let data = self.slice(op, slot, shape)?;
        // SAFETY: the slot is live (checked by `slice`), and the caller guarantees that
        // nothing else refers to its memory while this slice exists.
        Ok(unsafe { std::slice::from_raw_parts_mut(data.as_ptr().cast_mut(), data.len()) })
    }

    /// Whether scope `depth` is open with this `epoch`.
    fn is_open(&self, depth: usize, epoch: u64) -> bool {
        depth <= self.depth.get() && self.epochs[depth].get() == epoch
    }

    fn fresh_epoch(&self) -> u64 {
        let epoch = self.next_epoch.get();
        self.next_epoch.set(epoch + 1);
        epoch
    }

    /// Frees every allocation and closes every mark; tensors allocated so far become invalid.
    ///
    /// The blocks stay: a next step of the same shapes makes the same bump decisions, so it
    /// fits in them and touches only pages the first step touched. (Merging them into one
    /// fresh block of the high water, as an earlier version did, made the second step fault
    /// its whole arena in again: 1.4-1.7 s for the second step of `smelt demo` against 0.8 s
    /// for the later ones.)
    pub fn reset(&mut self) {
        self.block.set(0);
        self.top.set(0);
        self.used.set(0);
        self.depth.set(0);
        let epoch = self.fresh_epoch();
        self.epochs[0].set(epoch);
    }

    /// Opens a nested scope: what is allocated from now on can be freed by
    /// [`Arena::reset_to`] with the returned mark, keeping earlier tensors valid. A scope
    /// stays open until [`Arena::close`], [`Arena::reset`] or a reset to an enclosing mark:
    /// a loop opens its mark once and resets to it, or closes each mark it opens.
    ///
    /// Errors when [`MAX_DEPTH`]` - 1` marks are already open.
    pub fn mark(&self) -> Result<Mark> {
        let depth = self.depth.get() + 1;
        if depth >= MAX_DEPTH {
            return Err(Error::MarkDepth { max: MAX_DEPTH - 1 });
        }
        let epoch = self.fresh_epoch();
        self.epochs[depth].set(epoch);
        self.depth.set(depth);
        Ok(Mark {
            arena: self.id,
            depth,
            epoch,
            block: self.block.get(),
            top: self.top.get(),
            used: self.used.get(),
        })
    }

    /// Frees everything allocated after `mark` (tensors from then on become invalid, and so
    /// do marks opened inside it) and keeps what came before valid. The mark stays open and
    /// can be reset to again.
    ///
    /// Errors with [`Error::StaleMark`] when the mark was already closed by a reset or by
    /// resetting to an enclosing mark, or belongs to another arena.
    pub fn reset_to(&mut self, mark: &mut Mark) -> Result<()> {
        if mark.arena != self.id || !self.is_open(mark.depth, mark.epoch) {
            return Err(Error::StaleMark);
        }
        self.block.set(mark.block);
        self.top.set(mark.top);
        self.used.set(mark.used);
        self.depth.set(mark.depth);
        let epoch = self.fresh_epoch();
        self.epochs[mark.depth].set(epoch);
        mark.epoch = epoch;
        Ok(())
    }

    /// Frees everything allocated after `mark`, as [`Arena::reset_to`] does, and closes the
    /// mark: the enclosing scope is the innermost open one again, so marks opened and closed
    /// in a loop never reach [`MAX_DEPTH`].
    ///
    /// Errors with [`Error::StaleMark`] as [`Arena::reset_to`] does.
    pub fn close(&mut self, mut mark: Mark) -> Result<()> {
        self.reset_to(&mut mark)?;
        self.depth.set(mark.depth - 1);
        Ok(())
    }

    /// Bytes handed out since the last reset (allocations rounded up to 64 bytes).
    pub fn bytes_used(&self) -> usize {
        self.used.get()
    }

    /// Bytes held in blocks.
    pub fn capacity(&self) -> usize {
        self.blocks.borrow().iter().map(|b| b.len).sum::<usize>() * std::mem::size_of::<f32>()
    }

    /// The largest [`Arena::bytes_used`] seen so far.
    pub fn high_water(&self) -> usize {
        self.high_water.get()
    }

    /// Number of blocks held.
    pub fn block_count(&self) -> usize {
        self.blocks.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(arena: &Arena, t: &crate::Tensor) -> crate::Result<f32> {
        Ok(t.data(arena)?[0])
    }

    #[test]
    fn allocations_are_64_byte_aligned_and_start_zeroed() {
        let arena = Arena::new();
        for n in [1, 3, 16, 17, 100] {
            let mut fresh = arena.alloc(&[n]).unwrap();
            let data = fresh.as_mut_slice();
            assert_eq!(data.as_ptr() as usize % ALIGN, 0);
            assert_eq!(data.len(), n);
            assert!(data.iter().all(|&v| v == 0.0));
        }
        assert_eq!(arena.bytes_used(), (16 + 16 + 16 + 32 + 112) * 4);
        assert!(arena.alloc(&[0, 5]).unwrap().as_mut_slice().is_empty());
    }

    #[test]
    fn writes_are_read_back_through_the_tensor() {
        let arena = Arena::new();
        let mut fresh = arena.alloc(&[2, 3]).unwrap();
        fresh
            .as_mut_slice()
            .copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let t = fresh.into_tensor();
        assert_eq!(t.dims(), &[2, 3]);
        assert_eq!(t.data(&arena).unwrap(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn grows_by_blocks_and_a_second_equal_step_reuses_them() {
        let mut arena = Arena::new();
        let big = MIN_BLOCK_FLOATS / 2 + 1;
        let step = |arena: &Arena| {
            let tensors: Vec<_> = (0..5)
                .map(|i| {
                    let mut fresh = arena.alloc(&[big]).unwrap();
                    fresh.as_mut_slice()[0] = i as f32;
                    fresh.into_tensor()
                })
                .collect();
            for (i, t) in tensors.iter().enumerate() {
                assert_eq!(
                    first(arena, t).unwrap(),
                    i as f32,
                    "earlier blocks never move"
                );
            }
            tensors
                .iter()
                .map(|t| t.data(arena).unwrap().as_ptr() as usize)
                .collect::<Vec<_>>()
        };
        let places = step(&arena);
        let blocks = arena.block_count();
        assert!(blocks > 1);
        let grown = arena.capacity();
        let needed = arena.high_water();
        assert!(grown >= needed);
        arena.reset();
        assert_eq!(arena.block_count(), blocks, "reset keeps the blocks");
        assert_eq!(arena.capacity(), grown);
        assert_eq!(arena.bytes_used(), 0);
        assert_eq!(
            step(&arena),
            places,
            "the same step lands in the same places"
        );
        assert_eq!(
            arena.block_count(),
            blocks,
            "a second equal step needs no growth"
        );
        assert_eq!(arena.capacity(), grown);
        assert_eq!(arena.high_water(), needed);
    }

    #[test]
    fn with_capacity_holds_that_many_bytes_without_growth() {
        let arena = Arena::with_capacity(1000).unwrap();
        assert_eq!(arena.capacity(), 1024);
        arena.alloc(&[250]).unwrap();
        assert_eq!(arena.block_count(), 1);
        assert_eq!(arena.capacity(), 1024);
    }

    #[test]
    fn use_after_reset_is_an_error() {
        let mut arena = Arena::new();
        let t = arena.alloc(&[2, 3]).unwrap().into_tensor();
        assert!(t.data(&arena).is_ok());
        arena.reset();
        let err = t.data(&arena).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Tensor::data: tensor [2, 3] used after Arena::reset (or Arena::reset_to) released its memory"
        );
        let again = arena.alloc(&[2, 3]).unwrap().into_tensor();
        assert!(again.data(&arena).is_ok());
        assert!(
            t.data(&arena).is_err(),
            "a new step does not revive old tensors"
        );
    }

    #[test]
    fn reset_to_keeps_earlier_tensors_and_releases_later_ones() {
        let mut arena = Arena::new();
        let mut before = arena.alloc(&[4]).unwrap();
        before.as_mut_slice().fill(7.0);
        let before = before.into_tensor();
        let mut mark = arena.mark().unwrap();
        let mut after = arena.alloc(&[4]).unwrap();
        after.as_mut_slice().fill(9.0);
        let after = after.into_tensor();
        let used = arena.bytes_used();

        arena.reset_to(&mut mark).unwrap();
        assert_eq!(before.data(&arena).unwrap(), &[7.0; 4]);
        assert!(matches!(after.data(&arena), Err(Error::Released { .. })));
        assert_eq!(arena.bytes_used(), used - 64);

        let mut reused = arena.alloc(&[4]).unwrap();
        assert_eq!(
            reused.as_mut_slice(),
            &[9.0; 4],
            "the released region is reused"
        );
        let reused = reused.into_tensor();
        arena.reset_to(&mut mark).unwrap();
        assert!(reused.data(&arena).is_err(), "a mark can be reset to again");
        assert_eq!(first(&arena, &before).unwrap(), 7.0);

        arena.reset();
        assert!(before.data(&arena).is_err());
        assert!(matches!(arena.reset_to(&mut mark), Err(Error::StaleMark)));
    }

    #[test]
    fn closed_marks_free_their_scope_and_can_be_opened_again_forever() {
        let mut arena = Arena::new();
        let kept = arena.alloc(&[1]).unwrap().into_tensor();
        for _ in 0..3 * MAX_DEPTH {
            let mark = arena.mark().unwrap();
            let inside = arena.alloc(&[4]).unwrap().into_tensor();
            let nested = arena.mark().unwrap();
            arena.close(nested).unwrap();
            assert!(
                inside.data(&arena).is_ok(),
                "closing an inner mark keeps its scope"
            );
            arena.close(mark).unwrap();
            assert!(inside.data(&arena).is_err());
            assert!(kept.data(&arena).is_ok());
        }
        assert_eq!(arena.bytes_used(), 64);
        // A mark closed by a reset to an enclosing one cannot be closed again.
        let mut outer = arena.mark().unwrap();
        let inner = arena.mark().unwrap();
        arena.reset_to(&mut outer).unwrap();
        assert_eq!(arena.close(inner), Err(Error::StaleMark));
        arena.close(outer).unwrap();
    }

    #[test]
    fn reset_to_an_outer_mark_closes_inner_marks() {
        let mut arena = Arena::new();
        let mut outer = arena.mark().unwrap();
        let a = arena.alloc(&[1]).unwrap().into_tensor();
        let mut inner = arena.mark().unwrap();
        let b = arena.alloc(&[1]).unwrap().into_tensor();
        arena.reset_to(&mut outer).unwrap();
        assert!(a.data(&arena).is_err());
        assert!(b.data(&arena).is_err());
        assert_eq!(arena.reset_to(&mut inner), Err(Error::StaleMark));
        let mut again = arena.mark().unwrap();
        assert!(
            b.data(&arena).is_err(),
            "a new scope at b's depth has a new epoch"
        );
        arena.reset_to(&mut again).unwrap();
    }

    #[test]
    fn reset_to_across_blocks() {
        let mut arena = Arena::with_capacity(64).unwrap();
        let kept = arena.alloc(&[16]).unwrap().into_tensor();
        let mut mark = arena.mark().unwrap();
        let spilled = arena.alloc(&[MIN_BLOCK_FLOATS]).unwrap().into_tensor();
        assert_eq!(arena.block_count(), 2);
        arena.reset_to(&mut mark).unwrap();
        assert!(spilled.data(&arena).is_err());
        assert!(kept.data(&arena).is_ok());
        arena.alloc(&[MIN_BLOCK_FLOATS]).unwrap();
        assert_eq!(arena.block_count(), 2, "the spare block is reused");
    }

    #[test]
    fn marks_nest_up_to_the_fixed_depth() {
        let arena = Arena::new();
        let marks: Vec<_> = (1..MAX_DEPTH).map(|_| arena.mark().unwrap()).collect();
        assert_eq!(marks.len(), MAX_DEPTH - 1);
        assert_eq!(
            arena.mark().unwrap_err(),
            Error::MarkDepth { max: MAX_DEPTH - 1 }
        );
    }

    #[test]
    fn tensors_of_another_arena_are_refused() {
        let one = Arena::new();
        let other = Arena::new();
        let t = one.alloc(&[3]).unwrap().into_tensor();
        let err = t.data(&other).unwrap_err().to_string();
        assert_eq!(
            err,
            "Tensor::data: tensor [3] was allocated by another arena than the one given"
        );
        let mut mark = one.mark().unwrap();
        let mut other = other;
        assert_eq!(other.reset_to(&mut mark), Err(Error::StaleMark));
    }
}

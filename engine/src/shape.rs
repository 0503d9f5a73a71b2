//! Shapes and strided layouts.
//!
//! A [`Shape`] holds up to [`MAX_RANK`] dimensions in a fixed array, so shapes and layouts are
//! `Copy` and never touch the heap. A [`Layout`] places a shape in a storage slice: element
//! `(i0, i1, ..)` lives at `offset + i0 * strides[0] + i1 * strides[1] + ..` (strides in
//! elements). Views ([`Layout::transpose`], [`Layout::reshape`], [`Layout::narrow`]) return a
//! new layout over the same storage and move no data; every view of an in-bounds layout is in
//! bounds.

use crate::{Error, Result};
use std::fmt;

/// The largest rank a shape may have.
pub const MAX_RANK: usize = 6;

/// The dimensions of a tensor, rank 0 (a scalar) to [`MAX_RANK`]; the product of its non-zero
/// dimensions (and so its element count and every row-major stride) fits a `usize`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: usize,
}

impl Shape {
    /// The shape with these dimensions; errors when there are more than [`MAX_RANK`] of them or
    /// when the product of the non-zero ones overflows `usize` (so every stride fits, even in
    /// an empty shape).
    pub fn new(dims: &[usize]) -> Result<Shape> {
        Shape::for_op("Shape::new", dims)
    }

    /// [`Shape::new`] with errors naming `op`.
    pub(crate) fn for_op(op: &'static str, dims: &[usize]) -> Result<Shape> {
        if dims.len() > MAX_RANK {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "{dims:?} has rank {}, more than the maximum {MAX_RANK}",
                    dims.len()
                ),
            });
        }
        // The non-zero dimensions alone: an empty shape like [0, 2^32, 2^32] has 0 elements,
        // but its row-major strides (products of the inner dimensions) would still overflow.
        if dims
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_none()
        {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "{dims:?}: the product of its non-zero dimensions does not fit in usize"
                ),
            });
        }
        let mut shape = Shape {
            dims: [0; MAX_RANK],
            rank: dims.len(),
        };
        shape.dims[..dims.len()].copy_from_slice(dims);
        Ok(shape)
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }

    /// Row-major strides of a dense tensor of this shape.
    fn contiguous_strides(&self) -> [usize; MAX_RANK] {
        let mut strides = [0; MAX_RANK];
        let mut step = 1;
        for d in (0..self.rank).rev() {
            strides[d] = step;
            step *= self.dims[d];
        }
        strides
    }
}

impl fmt::Display for Shape {
    /// Writes `[3, 4]` (and `[]` for a scalar).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A shape placed in a storage slice: element `i` is at `offset + sum(i[d] * strides[d])`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: [usize; MAX_RANK],
    offset: usize,
}

impl Layout {
    /// The dense row-major layout of `shape` at offset 0.
    pub fn contiguous(shape: Shape) -> Layout {
        Layout {
            shape,
            strides: shape.contiguous_strides(),
            offset: 0,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The stride of each dimension, in elements.
    pub fn strides(&self) -> &[usize] {
        &self.strides[..self.shape.rank]
    }

    /// Where element `(0, 0, ..)` lives in the storage.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// Whether the elements lie densely in row-major order from `offset` (strides of
    /// dimensions of size 1 do not matter; an empty layout is contiguous).
    pub fn is_contiguous(&self) -> bool {
        if self.numel() == 0 {
            return true;
        }
        let mut step = 1;
        for (&dim, &stride) in self.shape.dims().iter().zip(self.strides()).rev() {
            if dim != 1 && stride != step {
                return false;
            }
            step *= dim;
        }
        true
    }

    /// The view with dimensions `d0` and `d1` swapped (same data, strides swapped).
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Layout> {
        let rank = self.shape.rank;
        if d0 >= rank || d1 >= rank {
            return Err(Error::Shape {
                op: "transpose",
                detail: format!(
                    "dims ({d0}, {d1}) out of range for {} of rank {rank}",
                    self.shape
                ),
            });
        }
        let mut out = *self;
        out.shape.dims.swap(d0, d1);
        out.strides.swap(d0, d1);
        Ok(out)
    }

    /// The same elements, in row-major order, seen with shape `dims`.
    ///
    /// Errors when the layout is not contiguous (make it so first) or when `dims` holds a
    /// different number of elements.
    pub fn reshape(&self, dims: &[usize]) -> Result<Layout> {
        const OP: &str = "reshape";
        let shape = Shape::for_op(OP, dims)?;
        if shape.numel() != self.numel() {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "{} ({} elements) cannot be seen as {shape} ({} elements)",
                    self.shape,
                    self.numel(),
                    shape.numel()
                ),
            });
        }
        if !self.is_contiguous() {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "{} with strides {:?} is not contiguous; make it contiguous first",
                    self.shape,
                    self.strides()
                ),
            });
        }
        Ok(Layout {
            offset: self.offset,
            ..Layout::contiguous(shape)
        })
    }

    /// The view keeping indices `start..start + len` of dimension `dim`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        const OP: &str = "narrow";
        let rank = self.shape.rank;
        if dim >= rank {
            return Err(Error::Shape {
                op: OP,
                detail: format!("dim {dim} out of range for {} of rank {rank}", self.shape),
            });
        }
        let size = self.shape.dims[dim];
        if start > size || len > size - start {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "{start}..{start}+{len} out of range for dim {dim} of size {size} in {}",
                    self.shape
                ),
            });
        }
        let mut out = *self;
        out.shape.dims[dim] = len;
        if len > 0 {
            out.offset += start * self.strides[dim];
        }
        Ok(out)
    }

    /// The storage index of every element, in row-major order of the shape.
    pub(crate) fn offsets(&self) -> Offsets {
        Offsets {
            layout: *self,
            index: [0; MAX_RANK],
            next: self.offset,
            remaining: self.numel(),
        }
    }
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layout")
            .field("shape", &self.shape)
            .field("strides", &self.strides())
            .field("offset", &self.offset)
            .finish()
    }
}

/// Iterator over the storage indices of a layout's elements, in row-major order (no heap).
pub(crate) struct Offsets {
    layout: Layout,
    index: [usize; MAX_RANK],
    next: usize,
    remaining: usize,
}

impl Iterator for Offsets {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let current = self.next;
        if self.remaining > 0 {
            let dims = self.layout.shape.dims();
            for d in (0..dims.len()).rev() {
                self.index[d] += 1;
                self.next += self.layout.strides[d];
                if self.index[d] < dims[d] {
                    break;
                }
                self.next -= dims[d] * self.layout.strides[d];
                self.index[d] = 0;
            }
        }
        Some(current)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Offsets {}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dims: &[usize]) -> Layout {
        Layout::contiguous(Shape::new(dims).unwrap())
    }

    #[test]
    fn shape_display_and_limits() {
        assert_eq!(Shape::new(&[3, 4]).unwrap().to_string(), "[3, 4]");
        assert_eq!(Shape::new(&[]).unwrap().to_string(), "[]");
        assert_eq!(Shape::new(&[]).unwrap().numel(), 1);
        let err = Shape::new(&[1; 7]).unwrap_err().to_string();
        assert!(err.contains("rank 7"), "{err}");
        assert!(Shape::new(&[usize::MAX, 2]).is_err());
    }

    /// An empty shape whose other dimensions overflow is refused: its strides would overflow.
    #[test]
    fn empty_shapes_with_overflowing_strides_are_errors() {
        let big = 1usize << (usize::BITS / 2);
        let err = Shape::new(&[0, big, big]).unwrap_err().to_string();
        assert!(
            err.contains("the product of its non-zero dimensions does not fit in usize"),
            "{err}"
        );
        assert!(Shape::new(&[big, 0, big]).is_err());
        let empty = layout(&[0, big, 3]);
        assert_eq!((empty.numel(), empty.strides()), (0, &[3 * big, 3, 1][..]));
        assert_eq!(layout(&[3, 0, 2]).strides(), &[0, 2, 1]);
    }

    #[test]
    fn contiguous_strides_and_offsets() {
        let l = layout(&[2, 3, 4]);
        assert_eq!(l.strides(), &[12, 4, 1]);
        assert!(l.is_contiguous());
        assert_eq!(l.offsets().collect::<Vec<_>>(), (0..24).collect::<Vec<_>>());
    }

    #[test]
    fn transpose_swaps_strides() {
        let t = layout(&[2, 3]).transpose(0, 1).unwrap();
        assert_eq!(t.shape().dims(), &[3, 2]);
        assert_eq!(t.strides(), &[1, 3]);
        assert!(!t.is_contiguous());
        assert_eq!(t.offsets().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
        assert!(t.transpose(1, 0).unwrap().is_contiguous());
        let err = t.transpose(0, 2).unwrap_err().to_string();
        assert_eq!(
            err,
            "transpose: dims (0, 2) out of range for [3, 2] of rank 2"
        );
    }

    #[test]
    fn reshape_needs_contiguity_and_same_numel() {
        let l = layout(&[2, 3, 4]).narrow(0, 1, 1).unwrap();
        let r = l.reshape(&[4, 3]).unwrap();
        assert_eq!(r.shape().dims(), &[4, 3]);
        assert_eq!(r.offset(), 12);
        assert!(r.is_contiguous());
        let err = l.reshape(&[5]).unwrap_err().to_string();
        assert_eq!(
            err,
            "reshape: [1, 3, 4] (12 elements) cannot be seen as [5] (5 elements)"
        );
        let t = layout(&[2, 3]).transpose(0, 1).unwrap();
        let err = t.reshape(&[6]).unwrap_err().to_string();
        assert!(err.contains("not contiguous"), "{err}");
    }

    #[test]
    fn narrow_moves_offset_and_breaks_contiguity() {
        let l = layout(&[4, 5]);
        let rows = l.narrow(0, 1, 2).unwrap();
        assert_eq!(rows.offset(), 5);
        assert!(rows.is_contiguous());
        let cols = l.narrow(1, 2, 3).unwrap();
        assert_eq!(cols.offset(), 2);
        assert_eq!(cols.shape().dims(), &[4, 3]);
        assert!(!cols.is_contiguous());
        assert_eq!(cols.offsets().take(4).collect::<Vec<_>>(), vec![2, 3, 4, 7]);
        assert!(l
            .narrow(1, 4, 1)
            .unwrap()
            .narrow(0, 0, 1)
            .unwrap()
            .is_contiguous());
        assert_eq!(l.narrow(1, 5, 0).unwrap().numel(), 0);
        let err = l.narrow(1, 3, 3).unwrap_err().to_string();
        assert_eq!(
            err,
            "narrow: 3..3+3 out of range for dim 1 of size 5 in [4, 5]"
        );
        assert!(l.narrow(2, 0, 1).is_err());
        assert!(l.narrow(0, usize::MAX, 2).is_err());
    }
}

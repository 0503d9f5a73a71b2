//! [`Tensor`]: a cheap-to-clone handle, a strided [`Layout`] over a [`Storage`].
//!
//! Handles carry no lifetime, so an autograd tape can keep them; reading one goes through the
//! arena ([`Tensor::data`]), which checks that arena memory is still live.

use crate::arena::{Arena, ArenaSlot};
use crate::shape::{Layout, Shape};
use crate::{Error, Result};
use std::fmt;
use std::sync::Arc;

/// Where a tensor's elements live.
#[derive(Clone)]
pub enum Storage {
    /// A region of an [`Arena`], valid until the arena releases it.
    Arena(ArenaSlot),
    /// A long-lived host buffer (weights, inputs), shared by every handle and view of it.
    Host(Arc<[f32]>),
    /// Read-only values owned elsewhere, e.g. the F32 data of a memory-mapped safetensors
    /// file used in place.
    External(Arc<dyn ExternalData>),
}

/// Long-lived, read-only f32 values that a tensor can use in place (no copy).
pub trait ExternalData: Send + Sync {
    /// The values, in the order the tensor's layout indexes them.
    fn as_f32(&self) -> &[f32];
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Storage::Arena(slot) => write!(f, "Arena({} floats)", slot.len()),
            Storage::Host(data) => write!(f, "Host({} floats)", data.len()),
            Storage::External(data) => write!(f, "External({} floats)", data.as_f32().len()),
        }
    }
}

/// A strided view of f32 elements: shape, strides and offset over a storage.
#[derive(Clone, Debug)]
pub struct Tensor {
    layout: Layout,
    storage: Storage,
}

impl Tensor {
    /// A host tensor of shape `dims` holding `data` in row-major order.
    ///
    /// Errors when `data.len()` differs from the shape's element count.
    pub fn from_vec(dims: &[usize], data: Vec<f32>) -> Result<Tensor> {
        const OP: &str = "Tensor::from_vec";
        let shape = Shape::for_op(OP, dims)?;
        if data.len() != shape.numel() {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "shape {shape} needs {} values, got {}",
                    shape.numel(),
                    data.len()
                ),
            });
        }
        Ok(Tensor {
            layout: Layout::contiguous(shape),
            storage: Storage::Host(data.into()),
        })
    }

    /// A contiguous tensor of shape `dims` over external values, used in place.
    ///
    /// Errors when the data does not hold exactly the shape's element count.
    pub fn from_external(dims: &[usize], data: Arc<dyn ExternalData>) -> Result<Tensor> {
        const OP: &str = "Tensor::from_external";
        let shape = Shape::for_op(OP, dims)?;
        let len = data.as_f32().len();
        if len != shape.numel() {
            return Err(Error::Shape {
                op: OP,
                detail: format!("shape {shape} needs {} values, got {len}", shape.numel()),
            });
        }
        Ok(Tensor {
            layout: Layout::contiguous(shape),
            storage: Storage::External(data),
        })
    }

    /// The values of a contiguous host tensor for writing in place (an optimizer step), or
    /// `None` when the storage is not an owned host buffer, is shared with another handle,
    /// or the view does not cover the whole buffer densely.
    pub fn host_mut(&mut self) -> Option<&mut [f32]> {
        let whole = self.is_contiguous() && self.offset() == 0;
        match &mut self.storage {
            Storage::Host(data) if whole && data.len() == self.layout.numel() => Arc::get_mut(data),
            _ => None,
        }
    }

    /// The contiguous tensor of `shape` over a fresh arena region.
    pub(crate) fn from_arena(shape: Shape, slot: ArenaSlot) -> Tensor {
        Tensor {
            layout: Layout::contiguous(shape),
            storage: Storage::Arena(slot),
        }
    }

    /// The layout: shape, strides and offset.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The storage the layout indexes into.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        self.layout.shape().dims()
    }

    /// The stride of each dimension, in elements.
    pub fn strides(&self) -> &[usize] {
        self.layout.strides()
    }

    /// Where element `(0, 0, ..)` lives in the storage slice.
    pub fn offset(&self) -> usize {
        self.layout.offset()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    /// Whether the elements lie densely in row-major order from the offset.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// The whole storage slice the layout indexes into (apply [`Tensor::offset`] and
    /// [`Tensor::strides`] to find elements).
    ///
    /// Errors when arena storage was released by `Arena::reset`/`reset_to` or belongs to
    /// another arena; host storage ignores `arena`.
    pub fn data<'a>(&'a self, arena: &'a Arena) -> Result<&'a [f32]> {
        self.storage_for("Tensor::data", arena)
    }

    /// [`Tensor::data`] with errors naming `op`.
    pub(crate) fn storage_for<'a>(
        &'a self,
        op: &'static str,
        arena: &'a Arena,
    ) -> Result<&'a [f32]> {
        match &self.storage {
            Storage::Arena(slot) => arena.slice(op, slot, self.shape()),
            Storage::Host(data) => Ok(data),
            Storage::External(data) => Ok(data.as_f32()),
        }
    }

    /// The storage from the offset on: the first element of the view is at index 0.
    pub(crate) fn view_data<'a>(&'a self, op: &'static str, arena: &'a Arena) -> Result<&'a [f32]> {
        let data = self.storage_for(op, arena)?;
        // An empty view may sit past the end of its storage; it reads nothing.
        Ok(data.get(self.offset()..).unwrap_or(&[]))
    }

    /// The `numel` elements of a contiguous tensor, in row-major order.
    pub(crate) fn contiguous_data<'a>(
        &'a self,
        op: &'static str,
        arena: &'a Arena,
    ) -> Result<&'a [f32]> {
        if !self.is_contiguous() {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "{} with strides {:?} is not contiguous",
                    self.shape(),
                    self.strides()
                ),
            });
        }
        let data = self.view_data(op, arena)?;
        Ok(data.get(..self.numel()).unwrap_or(&[]))
    }

    fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor {
            layout,
            storage: self.storage.clone(),
        }
    }

    /// The view with dimensions `d0` and `d1` swapped; no data moves.
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.transpose(d0, d1)?))
    }

    /// The view with the last two dimensions swapped (`[.., m, n]` -> `[.., n, m]`).
    pub fn t(&self) -> Result<Tensor> {
        let rank = self.shape().rank();
        if rank < 2 {
            return Err(Error::Shape {
                op: "t",
                detail: format!("{} has rank {rank}; t() needs at least 2", self.shape()),
            });
        }
        self.transpose(rank - 2, rank - 1)
    }

    /// The same elements seen with shape `dims`; errors unless contiguous with equal numel.
    pub fn reshape(&self, dims: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.reshape(dims)?))
    }

    /// The view keeping indices `start..start + len` of dimension `dim`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.narrow(dim, start, len)?))
    }

    /// This tensor when already contiguous (a cheap clone), else a dense row-major copy of
    /// it in `arena`.
    pub fn contiguous(&self, arena: &Arena) -> Result<Tensor> {
        self.contiguous_for("contiguous", arena)
    }

    /// [`Tensor::contiguous`] with errors naming `op`.
    pub(crate) fn contiguous_for(&self, op: &'static str, arena: &Arena) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let src = self.storage_for(op, arena)?;
        let mut out = arena.alloc_shape(*self.shape())?;
        for (dst, index) in out.as_mut_slice().iter_mut().zip(self.layout.offsets()) {
            *dst = src[index];
        }
        Ok(out.into_tensor())
    }

    /// The elements in row-major order of the shape, gathered into a new `Vec` (for tests and
    /// tools; allocates).
    pub fn to_vec(&self, arena: &Arena) -> Result<Vec<f32>> {
        let src = self.storage_for("to_vec", arena)?;
        Ok(self.layout.offsets().map(|index| src[index]).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random_tensor;

    fn iota(dims: &[usize]) -> Tensor {
        let n = dims.iter().product();
        Tensor::from_vec(dims, (0..n).map(|i| i as f32).collect()).unwrap()
    }

    #[test]
    fn handles_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Tensor>();
        send::<Arena>();
    }

    #[test]
    fn from_vec_checks_the_length() {
        let err = Tensor::from_vec(&[2, 3], vec![0.0; 5]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Tensor::from_vec: shape [2, 3] needs 6 values, got 5"
        );
    }

    #[test]
    fn views_share_storage_and_gather_in_order() {
        let arena = Arena::new();
        let x = iota(&[2, 3]);
        let t = x.t().unwrap();
        assert_eq!(t.dims(), &[3, 2]);
        assert_eq!(
            t.to_vec(&arena).unwrap(),
            vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
        assert_eq!(
            t.data(&arena).unwrap().as_ptr(),
            x.data(&arena).unwrap().as_ptr()
        );
        let col = x.narrow(1, 1, 1).unwrap();
        assert_eq!(col.to_vec(&arena).unwrap(), vec![1.0, 4.0]);
        assert!(iota(&[4]).t().is_err());
    }

    #[test]
    fn contiguous_copies_only_strided_views() {
        let arena = Arena::new();
        let x = random_tensor(&[3, 4, 5], 1);
        let same = x.narrow(0, 1, 2).unwrap().contiguous(&arena).unwrap();
        assert_eq!(arena.bytes_used(), 0, "a contiguous view is not copied");
        assert!(matches!(same.storage(), Storage::Host(_)));

        let view = x.transpose(0, 2).unwrap().narrow(1, 1, 3).unwrap();
        let dense = view.contiguous(&arena).unwrap();
        assert!(dense.is_contiguous());
        assert_eq!(dense.dims(), &[5, 3, 3]);
        assert_eq!(dense.to_vec(&arena).unwrap(), view.to_vec(&arena).unwrap());
        assert_eq!(
            dense.reshape(&[45]).unwrap().to_vec(&arena).unwrap(),
            view.to_vec(&arena).unwrap()
        );
        assert!(view.reshape(&[45]).is_err());
    }

    #[test]
    fn host_storage_ignores_the_arena() {
        let mut arena = Arena::new();
        let x = iota(&[2]);
        arena.reset();
        assert_eq!(x.data(&arena).unwrap(), &[0.0, 1.0]);
        assert_eq!(x.data(&Arena::new()).unwrap(), &[0.0, 1.0]);
    }
}

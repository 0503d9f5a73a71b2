//! B packed once for many products: a weight that every forward multiplies by new rows
//! ([`PackedB`], [`sgemm_prepacked`]). Packing B is a fifth of a product of 128 rows; a
//! product over a [`PackedB`] packs nothing of B.

use super::loops::{b_blocks, Blocks, Problem};
use super::microkernel::Microkernel;
use super::pack::PackBuffer;
use super::{
    check_bias, check_in_bounds, check_no_alias, run_product, Blocking, CacheSizes, MatMut, MatRef,
    ONE,
};
use crate::cpu::isa::Isa;
use crate::cpu::options::CpuOptions;
use crate::{Error, Result};

/// `B` (`k x n`) packed once into the micro-panels the kernel of one ISA reads, in the blocks
/// that a product of depth `k` and width `n` walks, for [`sgemm_prepacked`]. A linear layer's
/// weight `W [out, in]` is `B = W^T` (`k = in`, `n = out`): `MatRef::row_major(w, out, in).t()`.
/// Holds about `k x n` floats of its own (rounded up to whole micro-panels).
#[derive(Clone)]
pub struct PackedB {
    buffer: PackBuffer,
    k: usize,
    n: usize,
    isa: Isa,
    /// The blocks the panels were packed in, which a product over them must walk.
    blocks: Blocks,
}

impl std::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedB({}x{} for {})", self.k, self.n, self.isa)
    }
}

impl PackedB {
    /// Packs `b` (any strides) for products run with the kernel of `opts.isa`, on the calling
    /// thread. Errors when the CPU cannot run that kernel, or when `b`'s slice is too short
    /// for its shape and strides.
    pub fn new(b: MatRef<'_>, opts: &CpuOptions) -> Result<PackedB> {
        const OP: &str = "PackedB::new";
        opts.validate(OP)?;
        check_in_bounds(OP, &[("B", b.required_len(), b.data.len())])?;
        let (k, n) = (b.rows, b.cols);
        let (nr, blocks) = product_blocks(opts.isa, (k, n));
        let mut buffer = PackBuffer::default();
        // With k = 0 or n = 0 there is nothing to pack (the blocks of an empty product are
        // never walked); a product over it only scales C (or adds the bias).
        if k > 0 && n > 0 {
            let problem = Problem::new(
                (0, n, k),
                1.0,
                (std::ptr::null(), 0, 0),
                (b.data.as_ptr(), b.row_stride, b.col_stride),
                0.0,
                (std::ptr::null_mut(), 0, 0),
                std::ptr::null(),
            );
            // SAFETY: `b` lies inside its slice (checked above); the blocks walk its `k x n`
            // elements only, and each block is packed to its own stretch of the buffer, which
            // holds the sum of their lengths.
            unsafe {
                let mut total = 0;
                blocks.each(&problem, nr, |block, at| total = at + block.packed_len(nr));
                let dst = buffer.reserve(total, total);
                blocks.each(&problem, nr, |block, at| {
                    block.pack((0, block.panels(nr)), nr, dst.add(at));
                });
            }
        }
        Ok(PackedB {
            buffer,
            k,
            n,
            isa: opts.isa,
            blocks,
        })
    }

    /// Rows of B (the depth of a product).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of B (and of C).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The ISA whose kernel reads these panels.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

/// The NR of the kernel of `isa`, and the blocks of B a product of depth `k` and width `n`
/// walks on it (the blocking of this CPU's caches). Empty products get steps of 0, and never
/// walk them.
fn product_blocks(isa: Isa, (k, n): (usize, usize)) -> (usize, Blocks) {
    let kernel = Microkernel::for_isa(isa);
    let blk = Blocking::derive(&kernel, &CacheSizes::detect());
    if k == 0 || n == 0 {
        return (kernel.nr, Blocks::EMPTY);
    }
    (kernel.nr, b_blocks(&blk, (k, n), (kernel.mr, kernel.nr)).1)
}

/// `C = alpha * A * B + bias + beta * C` for `A: m x k` (any strides), `B` packed beforehand
/// (`k x n`), `C: m x n` (any strides) and `bias` `n` values (added to every row) or none;
/// with `beta == 0` C is written without being read. The same numbers as [`super::sgemm_bias`]
/// (the same panels, kernel and blocks), without packing B.
///
/// Errors name the shapes when they disagree, when a slice is too short, when C's strides
/// make two elements alias, when `bias` does not hold one value per column, and when `b` was
/// packed for another kernel than the one of `opts.isa` (or in other blocks than this
/// product walks, which only another process's cache sizes could give).
pub fn sgemm_prepacked(
    alpha: f32,
    a: MatRef<'_>,
    b: &PackedB,
    bias: Option<&[f32]>,
    beta: f32,
    c: MatMut<'_>,
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "sgemm_prepacked";
    opts.validate(OP)?;
    if a.cols != b.k || c.rows != a.rows || c.cols != b.n {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "A is {}x{}, the packed B {}x{}, C is {}x{}: need A m x k, B k x n, C m x n",
                a.rows, a.cols, b.k, b.n, c.rows, c.cols
            ),
        });
    }
    if b.isa != opts.isa {
        return Err(Error::Value {
            op: OP,
            detail: format!(
                "B was packed for the {} kernels, these options run the {} ones",
                b.isa, opts.isa
            ),
        });
    }
    if product_blocks(opts.isa, (b.k, b.n)).1 != b.blocks {
        return Err(Error::Value {
            op: OP,
            detail: format!(
                "B was packed in blocks of {:?}, this product walks others",
                b.blocks
            ),
        });
    }
    if let Some(bias) = bias {
        check_bias(OP, bias, &c)?;
    }
    check_in_bounds(
        OP,
        &[
            ("A", a.required_len(), a.data.len()),
            ("C", c.required_len(), c.data.len()),
        ],
    )?;
    check_no_alias(OP, &c, &ONE)?;
    let problem = Problem {
        packed_b: b.buffer.as_ptr(),
        ..Problem::new(
            (a.rows, b.n, a.cols),
            alpha,
            (a.data.as_ptr(), a.row_stride, a.col_stride),
            (std::ptr::null(), 0, 0),
            beta,
            (c.data.as_mut_ptr(), c.row_stride, c.col_stride),
            bias.map_or(std::ptr::null(), <[f32]>::as_ptr),
        )
    };
    // SAFETY: A and C lie inside their slices and C's elements are distinct (checked); C is
    // borrowed mutably, so it aliases neither A, B nor the bias; the bias holds one value per
    // column; B's panels were packed for this kernel and this product's blocks (`b_blocks`
    // of the same k and n); the ISA and the thread count were validated.
    unsafe { run_product(problem, &ONE, opts) };
    Ok(())
}

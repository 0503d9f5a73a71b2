//! B packed once, multiplied many times: inference multiplies every weight matrix by each new
//! batch, so its panels can be packed when the model is loaded instead of in every product
//! (at 128 rows, packing B was ~10% of a MiniLM forward).

use super::loops::{self, Blocks, Problem, StridedMut};
use super::pack::Strided;
use super::{blocking, check_no_alias, BatchStrides, MatMut, MatRef};
use crate::cpu::isa::Isa;
use crate::cpu::options::CpuOptions;
use crate::cpu::threads::{install, Shared};
use crate::{Error, Result};

const OP: &str = "sgemm_prepacked";

/// A `k x n` matrix B packed for [`sgemm_prepacked`] on one ISA's microkernel: for every
/// NC-wide column block and every KC-deep block within it, the NR-wide micro-panels, zero-padded
/// to NR columns (`k * round_up(n, NR)` floats).
#[derive(Debug, Clone)]
pub struct PackedB {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    isa: Isa,
    blocks: Blocks,
}

impl PackedB {
    /// Packs `b` (`k x n`, any strides: an nn.Linear weight `[out, in]` is passed as `w.t()`)
    /// for products on the `opts.isa` kernel.
    pub fn new(b: MatRef<'_>, opts: &CpuOptions) -> Result<PackedB> {
        opts.validate(OP)?;
        if b.required_len() > b.data.len() {
            return Err(Error::OutOfBounds {
                op: OP,
                operand: "B",
                needed: b.required_len(),
                len: b.data.len(),
            });
        }
        let kernel = super::Microkernel::for_isa(opts.isa);
        let blocks = Blocks::new(b.rows, b.cols, &blocking(opts.isa), kernel.nr);
        let mut data = vec![0.0f32; blocks.packed_len(b.rows, b.cols)];
        let src = Strided {
            ptr: b.data.as_ptr(),
            rs: b.row_stride,
            cs: b.col_stride,
        };
        // SAFETY: B was checked to lie inside its slice, and `data` holds `packed_len` floats.
        unsafe { loops::pack_b(src, b.rows, b.cols, &blocks, data.as_mut_ptr()) };
        Ok(PackedB {
            data,
            rows: b.rows,
            cols: b.cols,
            isa: opts.isa,
            blocks,
        })
    }

    /// `k`, the rows of B.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `n`, the columns of B.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The kernel this B was packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

/// `C = alpha * A * B + beta * C` for `A: m x k` (any strides), B packed by [`PackedB::new`],
/// and `C: m x n` with contiguous columns (`col_stride == 1`: the microkernel writes C by
/// rows). Same results as [`super::sgemm`] on the unpacked B, bit for bit.
///
/// Errors name the shapes when they disagree, when a slice is too short, when C's columns
/// are not contiguous or its elements alias, or when B was packed for another kernel than
/// `opts.isa`.
pub fn sgemm_prepacked(
    alpha: f32,
    a: MatRef<'_>,
    b: &PackedB,
    beta: f32,
    c: MatMut<'_>,
    opts: &CpuOptions,
) -> Result<()> {
    opts.validate(OP)?;
    if a.cols != b.rows || c.rows != a.rows || c.cols != b.cols {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "A is {}x{}, packed B is {}x{}, C is {}x{}: need A m x k, B k x n, C m x n",
                a.rows, a.cols, b.rows, b.cols, c.rows, c.cols
            ),
        });
    }
    if b.isa != opts.isa {
        return Err(Error::Unsupported {
            op: OP,
            detail: format!(
                "B was packed for the {} kernel, this call runs {}",
                b.isa, opts.isa
            ),
        });
    }
    if c.col_stride != 1 && c.cols > 1 {
        return Err(Error::Unsupported {
            op: OP,
            detail: format!(
                "C ({}x{}, strides ({}, {})) must have contiguous columns",
                c.rows, c.cols, c.row_stride, c.col_stride
            ),
        });
    }
    for (operand, needed, len) in [
        ("A", a.required_len(), a.data.len()),
        ("C", c.required_len(), c.data.len()),
    ] {
        if needed > len {
            return Err(Error::OutOfBounds {
                op: OP,
                operand,
                needed,
                len,
            });
        }
    }
    let one = BatchStrides {
        count: 1,
        a: 0,
        b: 0,
        c: 0,
    };
    check_no_alias(&c, &one)?;
    let kernel = super::Microkernel::for_isa(opts.isa);
    let blk = blocking(opts.isa);
    let packed = b.data.as_ptr();
    let problem = Problem {
        m: a.rows,
        n: b.cols,
        k: a.cols,
        alpha,
        a: Strided {
            ptr: a.data.as_ptr(),
            rs: a.row_stride,
            cs: a.col_stride,
        },
        // Not read: the panels come from `packed`.
        b: Strided {
            ptr: packed,
            rs: 0,
            cs: 0,
        },
        beta,
        c: StridedMut {
            ptr: c.data.as_mut_ptr(),
            rs: c.row_stride,
            cs: 1,
        },
    };
    let threads = opts.threads.max(1);
    let job = Shared((problem, b.blocks, packed));
    // SAFETY: A and C were checked to lie inside their slices, C's elements are distinct and
    // C is borrowed mutably (no alias with A or the packed B); the packed data was written by
    // `pack_b` for this k x n and these blocks; the ISA and thread count were validated.
    install(threads, move || {
        let (problem, blocks, packed) = job.get();
        unsafe { loops::run_prepacked(&kernel, &blk, problem, threads, &blocks, packed) }
    });
    Ok(())
}

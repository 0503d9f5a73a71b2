//! Single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, BLIS style.
//!
//! Operands are strided views ([`MatRef`], [`MatMut`]): a transposed operand is the same data
//! with its strides swapped ([`MatRef::t`]), so it costs no copy; packing absorbs any layout.
//! The kernel is chosen once per process by CPU feature detection ([`Isa::detect`]), or forced
//! per call with [`CpuOptions::isa`] (tests run every kernel the CPU supports).
//!
//! Layout of this module: [`cache`] (CPUID cache sizes) -> `blocking` (NC, KC, MC) -> `pack`
//! (panels) -> `microkernel` (MR x NR register tiles per ISA) -> `loops` (the five loops and
//! threads), with `upcoming` (a batch's next operands asked into L2) and `prepacked` (B
//! packed once for many products, [`PackedB`]); [`sgemm_reference`] is the plain triple loop
//! everything is tested against.

pub mod cache;

mod blocking;
mod gemv;
mod loops;
mod microkernel;
mod pack;
mod prepacked;
mod reference;
mod upcoming;

pub use blocking::Blocking;
pub use prepacked::{sgemm_prepacked, PackedB};
pub use reference::sgemm_reference;

use crate::cpu::isa::Isa;
use crate::cpu::options::CpuOptions;
use crate::cpu::threads::{enter, for_each_task, Shared};
use crate::{Error, Result};
use cache::CacheSizes;
use loops::{Problem, StridedMut};
use microkernel::Microkernel;
use pack::Strided;
use upcoming::Upcoming;

/// A read-only matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// A mutable matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// A matrix with explicit strides (in elements).
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transpose, `cols x rows`, sharing the same data.
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Element (i, j); panics when out of the slice.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    fn required_len(&self) -> usize {
        extent(self.rows, self.cols, self.row_stride, self.col_stride)
    }
}

impl<'a> MatMut<'a> {
    /// A dense row-major `rows x cols` matrix.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// A matrix with explicit strides (in elements).
    pub fn strided(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        MatMut {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transpose, `cols x rows`, sharing the same data.
    pub fn t(self) -> Self {
        MatMut {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Index into `data` of element (i, j).
    pub fn index(&self, i: usize, j: usize) -> usize {
        i * self.row_stride + j * self.col_stride
    }

    fn required_len(&self) -> usize {
        extent(self.rows, self.cols, self.row_stride, self.col_stride)
    }
}

/// Number of elements spanned by a `rows x cols` matrix with these strides (0 when empty;
/// `usize::MAX` when the span does not fit in `usize`, which no slice can hold).
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    (rows - 1)
        .checked_mul(rs)
        .and_then(|r| r.checked_add((cols - 1).checked_mul(cs)?))
        .and_then(|e| e.checked_add(1))
        .unwrap_or(usize::MAX)
}

/// The block sizes the `isa` kernel uses on this CPU (a product whose depth takes fewer
/// blocks a third deeper uses those, with MC and NC shrunk to hold no more).
pub fn blocking(isa: Isa) -> Blocking {
    Blocking::derive(&Microkernel::for_isa(isa), &CacheSizes::detect())
}

/// Sizes the calling thread's pack buffers for the largest blocks any supported kernel uses,
/// so GEMMs on this thread never grow them later (run on every worker of the thread pools);
/// an error naming the size when the system refuses it.
pub(crate) fn reserve_pack_buffers() -> std::result::Result<(), String> {
    let (mut a, mut b) = (0, 0);
    for isa in Isa::supported() {
        let blk = blocking(isa);
        a = a.max(blk.mc * blk.kc);
        b = b.max(blk.kc * blk.nc);
    }
    pack::reserve_on_this_thread(a, b)
}

/// The element strides of one batch of a strided-batched GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStrides {
    /// Number of independent GEMMs.
    pub count: usize,
    /// Distance in elements between consecutive A matrices (0 broadcasts one A).
    pub a: usize,
    /// Distance in elements between consecutive B matrices (0 broadcasts one B).
    pub b: usize,
    /// Distance in elements between consecutive C matrices.
    pub c: usize,
}

/// `C = alpha * A * B + beta * C` for `A: m x k`, `B: k x n`, `C: m x n`, any strides.
///
/// With `beta == 0` C is written without being read, so NaN already in C is ignored.
/// Errors name the shapes when they disagree, when a slice is too short for its shape and
/// strides, when C's strides make two elements alias, or when the kernel is not supported.
pub fn sgemm(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    opts: &CpuOptions,
) -> Result<()> {
    checked("sgemm", &ONE, alpha, a, b, None, beta, c, opts)
}

/// `C = alpha * A * B + bias + beta * C`, with the `n` values of `bias` added to every row
/// of C (`bias[j]` to column `j`): nn.Linear's forward in the same pass over C as the
/// product, instead of writing the bias into C first and reading it back.
///
/// Errors as [`sgemm`] does, and when `bias` does not hold one value per column of C.
pub fn sgemm_bias(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    bias: &[f32],
    beta: f32,
    c: MatMut<'_>,
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "sgemm_bias";
    check_bias(OP, bias, &c)?;
    checked(OP, &ONE, alpha, a, b, Some(bias), beta, c, opts)
}

/// [`Error::OutOfBounds`] for the first `(operand, needed, len)` whose slice of `len`
/// elements is shorter than the `needed` its shape and strides span.
fn check_in_bounds(op: &'static str, operands: &[(&'static str, usize, usize)]) -> Result<()> {
    match operands.iter().find(|&&(_, needed, len)| needed > len) {
        Some(&(operand, needed, len)) => Err(Error::OutOfBounds {
            op,
            operand,
            needed,
            len,
        }),
        None => Ok(()),
    }
}

/// An error naming the sizes unless `bias` holds one value per column of `c`.
fn check_bias(op: &'static str, bias: &[f32], c: &MatMut<'_>) -> Result<()> {
    if bias.len() != c.cols {
        return Err(Error::Shape {
            op,
            detail: format!(
                "a bias of {} values for C {}x{}: need one per column",
                bias.len(),
                c.rows,
                c.cols
            ),
        });
    }
    Ok(())
}

/// One product: what [`sgemm`] and [`sgemm_bias`] run as a batch.
const ONE: BatchStrides = BatchStrides {
    count: 1,
    a: 0,
    b: 0,
    c: 0,
};

/// `batch.count` independent GEMMs `C_i = alpha * A_i * B_i + beta * C_i`, where `A_i` is `a`
/// shifted by `i * batch.a` elements (likewise B and C). `a`, `b`, `c` describe the first
/// matrix of each operand; their slices must hold every batch.
///
/// Used by attention: B*H heads of `T x d` times `d x T` in one call. Batches run in parallel
/// (one thread each) when there are at least as many batches as threads.
pub fn sgemm_batched(
    batch: &BatchStrides,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    opts: &CpuOptions,
) -> Result<()> {
    checked("sgemm", batch, alpha, a, b, None, beta, c, opts)
}

/// The checks of the safe API (names `op` in errors), then the product.
#[allow(clippy::too_many_arguments)]
fn checked(
    op: &'static str,
    batch: &BatchStrides,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    bias: Option<&[f32]>,
    beta: f32,
    c: MatMut<'_>,
    opts: &CpuOptions,
) -> Result<()> {
    opts.validate(op)?;
    check_shapes(op, &a, &b, &c)?;
    // Saturating: a span past usize::MAX is longer than any slice.
    let spans = |one: usize, stride: usize| {
        if one == 0 || batch.count == 0 {
            0
        } else {
            (batch.count - 1).saturating_mul(stride).saturating_add(one)
        }
    };
    check_in_bounds(
        op,
        &[
            ("A", spans(a.required_len(), batch.a), a.data.len()),
            ("B", spans(b.required_len(), batch.b), b.data.len()),
            ("C", spans(c.required_len(), batch.c), c.data.len()),
        ],
    )?;
    check_no_alias(op, &c, batch)?;
    let problem = Problem::new(
        (a.rows, b.cols, a.cols),
        alpha,
        (a.data.as_ptr(), a.row_stride, a.col_stride),
        (b.data.as_ptr(), b.row_stride, b.col_stride),
        beta,
        (c.data.as_mut_ptr(), c.row_stride, c.col_stride),
        bias.map_or(std::ptr::null(), <[f32]>::as_ptr),
    );
    // SAFETY: every operand was checked to lie inside its slice for every batch (the bias
    // holds one value per column), C's elements are distinct, C is borrowed mutably so it
    // aliases neither A, B nor the bias, and the ISA and the thread count were validated.
    unsafe { run_product(problem, batch, opts) };
    Ok(())
}

/// The unchecked strided-batched GEMM behind [`sgemm_batched`].
///
/// # Safety
/// For every batch `i < batch.count`, the `m x k`, `k x n` and `m x n` matrices at `a + i *
/// batch.a`, `b + i * batch.b`, `c + i * batch.c` with the given strides must lie in valid
/// allocations; no two elements of any C may alias each other or any element of A or B; the
/// kernel of `opts.isa` must be supported by the CPU (see [`Isa::is_supported`]).
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_batched_unchecked(
    batch: &BatchStrides,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    (a, rsa, csa): (*const f32, usize, usize),
    (b, rsb, csb): (*const f32, usize, usize),
    beta: f32,
    (c, rsc, csc): (*mut f32, usize, usize),
    opts: &CpuOptions,
) {
    let problem = Problem::new(
        (m, n, k),
        alpha,
        (a, rsa, csa),
        (b, rsb, csb),
        beta,
        (c, rsc, csc),
        std::ptr::null(),
    );
    run_product(problem, batch, opts);
}

/// Runs a checked (or vouched-for) product on the kernel and threads of `opts`.
unsafe fn run_product(problem: Problem, batch: &BatchStrides, opts: &CpuOptions) {
    let kernel = Microkernel::for_isa(opts.isa);
    let blk = Blocking::derive(&kernel, &CacheSizes::detect());
    // One entry into the thread pool for the whole product: a caller outside the pool pays
    // the hand-over once, not once per parallel phase (tens of microseconds each on a VM).
    let threads = opts.threads.max(1);
    let job = Shared((problem, *batch));
    enter(threads, move || {
        let (problem, batch) = job.get();
        run_batched(&kernel, &blk, problem, &batch, threads)
    });
}

unsafe fn run_batched(
    kernel: &Microkernel,
    blk: &Blocking,
    p: Problem,
    batch: &BatchStrides,
    threads: usize,
) {
    // Wrapping, the offsets too: an empty operand (k = 0, say) passes the checks with an
    // empty slice and any batch stride; its pointers are never read.
    let at = |p: Problem, i: usize| Problem {
        a: Strided {
            ptr: p.a.ptr.wrapping_add(i.wrapping_mul(batch.a)),
            ..p.a
        },
        b: Strided {
            ptr: p.b.ptr.wrapping_add(i.wrapping_mul(batch.b)),
            ..p.b
        },
        c: StridedMut {
            ptr: p.c.ptr.wrapping_add(i.wrapping_mul(batch.c)),
            ..p.c
        },
        ..p
    };
    // Small batched products (attention heads) stream their operands from L3: each asks for
    // the next product's A, B and C while it computes, so a thread runs consecutive products.
    let limit = blk.mc * blk.kc;
    let product = |p: Problem, i: usize, end: usize| {
        let upcoming = if i + 1 < end {
            let next = at(p, i + 1);
            let c = Strided {
                ptr: next.c.ptr.cast_const(),
                rs: next.c.rs,
                cs: next.c.cs,
            };
            Upcoming::operands((next.a, next.b, c), (p.m, p.n, p.k), limit)
        } else {
            Upcoming::NONE
        };
        Problem {
            upcoming,
            ..at(p, i)
        }
    };
    if batch.count >= threads && threads > 1 {
        let shared = Shared(p);
        for_each_task(threads, threads, |t| {
            let (lo, hi) = blocking::share(batch.count, threads, t);
            for i in lo..hi {
                loops::run(kernel, blk, product(shared.get(), i, hi), 1);
            }
        });
    } else {
        for i in 0..batch.count {
            loops::run(kernel, blk, product(p, i, batch.count), threads);
        }
    }
}

fn check_shapes(op: &'static str, a: &MatRef<'_>, b: &MatRef<'_>, c: &MatMut<'_>) -> Result<()> {
    if a.cols != b.rows || c.rows != a.rows || c.cols != b.cols {
        return Err(Error::Shape {
            op,
            detail: format!(
                "A is {}x{}, B is {}x{}, C is {}x{}: need A m x k, B k x n, C m x n",
                a.rows, a.cols, b.rows, b.cols, c.rows, c.cols
            ),
        });
    }
    Ok(())
}

/// C's elements (in every batch) must be pairwise distinct, or threads would race on them.
fn check_no_alias(op: &'static str, c: &MatMut<'_>, batch: &BatchStrides) -> Result<()> {
    if c.rows == 0 || c.cols == 0 || batch.count == 0 {
        // No elements, nothing to alias (a 4 x 0 row-major C has row stride 0).
        return Ok(());
    }
    let mut dims = [
        (c.rows, c.row_stride),
        (c.cols, c.col_stride),
        (batch.count, batch.c),
    ];
    dims.sort_unstable_by_key(|&(_, stride)| stride);
    let mut span = 1;
    for (n, stride) in dims.into_iter().filter(|&(n, _)| n > 1) {
        if stride < span {
            return Err(Error::Overlap {
                op,
                detail: format!(
                    "C is {}x{} with strides ({}, {}) in {} batches {} apart: elements alias",
                    c.rows, c.cols, c.row_stride, c.col_stride, batch.count, batch.c
                ),
            });
        }
        span = span.saturating_add(stride.saturating_mul(n - 1));
    }
    Ok(())
}

//! GPU layer normalisation (`kernels/cuda/layernorm.cu`): the forward, alone or fused with a
//! residual add, and the backward, with the numerics of [`crate::cpu::layernorm`].
//!
//! Forward: a warp per row (4 rows per block of 128 threads) below
//! [`BLOCK_ROW_MIN_COLS`](super::BLOCK_ROW_MIN_COLS) columns, with the row kept in registers
//! for 384, 768 and 1024 columns; a block of 256 threads per row from there on. Rows of
//! `cols % 4 == 0` move four values per access (a 16-byte `float4`, or 8 bytes of bf16),
//! others one value at a time.
//!
//! Backward: `dx` per row, and `dgamma`/`dbeta` in two deterministic stages (no float atomics,
//! the same bits on every run): each of up to 512 blocks takes a contiguous range of rows and
//! writes its column sums to a scratch buffer (see [`layer_norm_backward_scratch_len`]), then
//! one kernel adds those partial sums per column in a fixed order. Rows up to
//! [`MAX_BACKWARD_COLS`] ([`MAX_BACKWARD_COLS_W1`] when `cols % 4 != 0`) stay in registers
//! between the two passes over them; wider rows go to kernels that read them twice.
//!
//! Each launcher has a `_bf16` twin that stores the row matrices (`x`, `residual`, `sum`, `y`,
//! `dy`, `dx`) as bf16 bits, two bytes per value, which halves the traffic of these
//! memory-bound kernels. The arithmetic and the statistics stay f32 (bf16 is read exactly and
//! written rounded to nearest even); `gamma`, `beta`, `mean`, `rstd`, `dgamma`, `dbeta` and the
//! scratch stay f32. Both come from one CUDA template, instantiated for each storage.

use super::{
    check_lens, check_lens_of, distinct_outputs, kernel_dims, row_launch, rows_cols, width, Dtype,
    GpuBuffer, GpuDevice, KernelArg, LaunchConfig, PtxModule,
};
use crate::{Error, Result};

/// The layer-norm kernels, compiled from `kernels/cuda/layernorm.cu`.
pub const MODULE: PtxModule = PtxModule {
    name: "layernorm",
    ptx: include_str!("../../ptx/layernorm.ptx"),
};

/// Floats of a row that one backward thread holds in registers (`BWD_FLOATS` in the source).
const BWD_FLOATS: usize = 8;
/// The widest row the backward keeps in registers when `cols % 4 == 0`: 8 floats held by each
/// of up to 1024 threads (`BWD_THREADS_W4`, the `__launch_bounds__` of the `_w4` kernels).
/// Wider rows go to the `_wide` kernels, which read each row twice.
pub const MAX_BACKWARD_COLS: usize = BWD_FLOATS * 1024;
/// The widest row the backward keeps in registers when `cols % 4 != 0`: 8 floats held by each
/// of up to 640 threads (`BWD_THREADS_W1`: with 1024 the `_w1` kernels would need more
/// registers than an SM has for one block, or spill).
pub const MAX_BACKWARD_COLS_W1: usize = BWD_FLOATS * 640;
/// Threads of a block of the `_wide` backward kernels (`BWD_THREADS_WIDE`).
const WIDE_THREADS: usize = 1024;
/// The most blocks of the backward, hence the most partial sums per column.
const MAX_PARTIAL_BLOCKS: usize = 512;

/// `y[r, :] = (x[r, :] - mean[r]) * rstd[r] * gamma + beta` for `rows` rows of `cols`
/// (row-major), with `mean[r]` the row mean and `rstd[r] = 1 / sqrt(var_r + eps)` from the
/// biased row variance; both are written for [`layer_norm_backward`].
///
/// `x` and `y` hold at least `rows * cols` f32 values, `gamma` and `beta` `cols`, `mean` and
/// `rstd` `rows`. Errors: [`Error::Shape`] when a buffer is too short or `cols` is 0,
/// [`Error::Overlap`] when an output is also another argument, [`Error::Unsupported`] when
/// `rows` or `cols` exceeds `i32::MAX`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    dev: &mut dyn GpuDevice,
    x: GpuBuffer,
    gamma: GpuBuffer,
    beta: GpuBuffer,
    y: GpuBuffer,
    mean: GpuBuffer,
    rstd: GpuBuffer,
    rows: usize,
    cols: usize,
    eps: f32,
) -> Result<()> {
    let bufs = ForwardBuffers {
        x,
        residual: None,
        gamma,
        beta,
        y,
        mean,
        rstd,
    };
    const OP: &str = "gpu_layer_norm";
    forward(dev, OP, Storage::F32, bufs, rows, cols, eps)
}

/// [`layer_norm`] on rows stored as bf16: `x` and `y` hold at least `rows * cols` bf16 values
/// (`2 * rows * cols` bytes); `y` is rounded to nearest even. `gamma`, `beta`, `mean` and
/// `rstd` are f32 as in [`layer_norm`], and the statistics are computed in f32 from the exact
/// values of `x`. `mean` and `rstd` are what [`layer_norm_backward_bf16`] takes. Errors as
/// [`layer_norm`].
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_bf16(
    dev: &mut dyn GpuDevice,
    x: GpuBuffer,
    gamma: GpuBuffer,
    beta: GpuBuffer,
    y: GpuBuffer,
    mean: GpuBuffer,
    rstd: GpuBuffer,
    rows: usize,
    cols: usize,
    eps: f32,
) -> Result<()> {
    let bufs = ForwardBuffers {
        x,
        residual: None,
        gamma,
        beta,
        y,
        mean,
        rstd,
    };
    const OP: &str = "gpu_layer_norm_bf16";
    forward(dev, OP, Storage::Bf16, bufs, rows, cols, eps)
}

/// The residual add fused into [`layer_norm`]: `sum = x + residual`, then `y`, `mean` and
/// `rstd` are those of [`layer_norm`] of `sum`. `sum` is what [`layer_norm_backward`] takes as
/// its `x`; the gradient of both `x` and `residual` is the backward's `dx`.
///
/// `x`, `residual`, `sum` and `y` hold at least `rows * cols` f32 values, `gamma` and `beta`
/// `cols`, `mean` and `rstd` `rows`. Errors as [`layer_norm`].
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_residual(
    dev: &mut dyn GpuDevice,
    x: GpuBuffer,
    residual: GpuBuffer,
    sum: GpuBuffer,
    gamma: GpuBuffer,
    beta: GpuBuffer,
    y: GpuBuffer,
    mean: GpuBuffer,
    rstd: GpuBuffer,
    rows: usize,
    cols: usize,
    eps: f32,
) -> Result<()> {
    let bufs = ForwardBuffers {
        x,
        residual: Some((residual, sum)),
        gamma,
        beta,
        y,
        mean,
        rstd,
    };
    const OP: &str = "gpu_layer_norm_residual";
    forward(dev, OP, Storage::F32, bufs, rows, cols, eps)
}

/// [`layer_norm_residual`] on rows stored as bf16: `x`, `residual`, `sum` and `y` hold at
/// least `rows * cols` bf16 values (`2 * rows * cols` bytes). `sum` is `x + residual` added in
/// f32 and rounded to nearest even, and what is normalised is that rounded `sum`, the rows
/// [`layer_norm_backward_bf16`] takes as its `x`; `y` is rounded to nearest even. `gamma`,
/// `beta`, `mean` and `rstd` are f32. Errors as [`layer_norm`].
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_residual_bf16(
    dev: &mut dyn GpuDevice,
    x: GpuBuffer,
    residual: GpuBuffer,
    sum: GpuBuffer,
    gamma: GpuBuffer,
    beta: GpuBuffer,
    y: GpuBuffer,
    mean: GpuBuffer,
    rstd: GpuBuffer,
    rows: usize,
    cols: usize,
    eps: f32,
) -> Result<()> {
    let bufs = ForwardBuffers {
        x,
        residual: Some((residual, sum)),
        gamma,
        beta,
        y,
        mean,
        rstd,
    };
    const OP: &str = "gpu_layer_norm_residual_bf16";
    forward(dev, OP, Storage::Bf16, bufs, rows, cols, eps)
}

/// f32 values the `scratch` buffer of [`layer_norm_backward`] (and of
/// [`layer_norm_backward_bf16`]) needs for `rows x cols`: two partial sums (dgamma, dbeta) per
/// column for each block of the first stage.
pub fn layer_norm_backward_scratch_len(rows: usize, cols: usize) -> usize {
    2 * partition(rows).0 * cols
}

/// The gradients of [`layer_norm`]: with `xhat = (x - mean) * rstd` and `g = dy * gamma` per
/// row, `dx = rstd * (g - mean_j(g) - xhat * mean_j(g * xhat))`,
/// `dgamma[j] = sum_r dy[r, j] * xhat[r, j]` and `dbeta[j] = sum_r dy[r, j]`.
///
/// `mean` and `rstd` (`rows` values) are the forward's; `dy`, `x` and `dx` hold at least
/// `rows * cols` f32 values, `gamma`, `dgamma` and `dbeta` `cols`. `scratch` holds at least
/// [`layer_norm_backward_scratch_len`]`(rows, cols)` values; its contents on entry do not
/// matter and are overwritten. `dx`, `dgamma` and `dbeta` are overwritten, not accumulated
/// into. The column sums do not depend on the device or the run. Errors: [`Error::Shape`] when
/// a buffer is too short or `cols` is 0, [`Error::Overlap`] when an output (or `scratch`) is
/// also another argument, [`Error::Unsupported`] when `rows` or `cols` exceeds `i32::MAX`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    dev: &mut dyn GpuDevice,
    dy: GpuBuffer,
    x: GpuBuffer,
    gamma: GpuBuffer,
    mean: GpuBuffer,
    rstd: GpuBuffer,
    dx: GpuBuffer,
    dgamma: GpuBuffer,
    dbeta: GpuBuffer,
    scratch: GpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let bufs = BackwardBuffers {
        dy,
        x,
        gamma,
        mean,
        rstd,
        dx,
        dgamma,
        dbeta,
        scratch,
    };
    const OP: &str = "gpu_layer_norm_backward";
    backward(dev, OP, Storage::F32, bufs, rows, cols)
}

/// [`layer_norm_backward`] on rows stored as bf16: `dy`, `x` and `dx` hold at least
/// `rows * cols` bf16 values (`2 * rows * cols` bytes); `dx` is rounded to nearest even.
/// `gamma`, `mean`, `rstd` (those of [`layer_norm_bf16`] or [`layer_norm_residual_bf16`]),
/// `dgamma`, `dbeta` and `scratch` are f32, and `dgamma`/`dbeta` are f32 sums of the exact
/// bf16 inputs, as deterministic as [`layer_norm_backward`]'s. Errors as
/// [`layer_norm_backward`].
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward_bf16(
    dev: &mut dyn GpuDevice,
    dy: GpuBuffer,
    x: GpuBuffer,
    gamma: GpuBuffer,
    mean: GpuBuffer,
    rstd: GpuBuffer,
    dx: GpuBuffer,
    dgamma: GpuBuffer,
    dbeta: GpuBuffer,
    scratch: GpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let bufs = BackwardBuffers {
        dy,
        x,
        gamma,
        mean,
        rstd,
        dx,
        dgamma,
        dbeta,
        scratch,
    };
    const OP: &str = "gpu_layer_norm_backward_bf16";
    backward(dev, OP, Storage::Bf16, bufs, rows, cols)
}

/// How the row matrices of a call (`x`, `residual`, `sum`, `y`, `dy`, `dx`) are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    F32,
    Bf16,
}

impl Storage {
    /// The buffers' element type.
    fn dtype(self) -> Dtype {
        match self {
            Storage::F32 => Dtype::F32,
            Storage::Bf16 => Dtype::Bf16,
        }
    }

    /// What follows the op in the kernel names: `""` or `"_bf16"`.
    fn tag(self) -> &'static str {
        match self {
            Storage::F32 => "",
            Storage::Bf16 => "_bf16",
        }
    }
}

/// The buffers of a forward call; `residual` is `(residual, sum)` for the fused add.
struct ForwardBuffers {
    x: GpuBuffer,
    residual: Option<(GpuBuffer, GpuBuffer)>,
    gamma: GpuBuffer,
    beta: GpuBuffer,
    y: GpuBuffer,
    mean: GpuBuffer,
    rstd: GpuBuffer,
}

/// Checks and launches a forward (with the residual add when `b.residual` is set) on rows
/// stored as `storage`.
fn forward(
    dev: &mut dyn GpuDevice,
    op: &'static str,
    storage: Storage,
    b: ForwardBuffers,
    rows: usize,
    cols: usize,
    eps: f32,
) -> Result<()> {
    let (r, c) = check_rows_cols(op, rows, cols)?;
    crate::cpu::check::eps(op, eps)?;
    let mut matrices = vec![("x", b.x), ("y", b.y)];
    let mut outputs = vec![("y", b.y), ("mean", b.mean), ("rstd", b.rstd)];
    let mut inputs = vec![("x", b.x), ("gamma", b.gamma), ("beta", b.beta)];
    let mut args = vec![KernelArg::Buf(b.x)];
    if let Some((residual, sum)) = b.residual {
        matrices.extend([("residual", residual), ("sum", sum)]);
        outputs.push(("sum", sum));
        inputs.push(("residual", residual));
        args.extend([KernelArg::Buf(residual), KernelArg::Buf(sum)]);
    }
    let sizes = || rows_cols(rows, cols);
    let matrices: Vec<_> = matrices
        .into_iter()
        .map(|(name, buf)| (name, buf, rows * cols))
        .collect();
    check_lens_of(&*dev, op, &sizes, storage.dtype(), &matrices)?;
    check_lens(
        &*dev,
        op,
        &sizes,
        &[
            ("gamma", b.gamma, cols),
            ("beta", b.beta, cols),
            ("mean", b.mean, rows),
            ("rstd", b.rstd, rows),
        ],
    )?;
    distinct_outputs(op, &outputs, &inputs)?;
    args.extend([
        KernelArg::Buf(b.gamma),
        KernelArg::Buf(b.beta),
        KernelArg::Buf(b.y),
        KernelArg::Buf(b.mean),
        KernelArg::Buf(b.rstd),
        KernelArg::I32(r),
        KernelArg::I32(c),
        KernelArg::F32(eps),
    ]);
    let res = if b.residual.is_some() { "_res" } else { "" };
    let prefix = format!("layernorm_fwd{res}{}", storage.tag());
    // SAFETY: every buffer was checked against the shape above, and `args` are
    // the kernel's parameters in order.
    unsafe { launch_forward(dev, &prefix, &args, rows, cols) }
}

/// The buffers of a backward call.
struct BackwardBuffers {
    dy: GpuBuffer,
    x: GpuBuffer,
    gamma: GpuBuffer,
    mean: GpuBuffer,
    rstd: GpuBuffer,
    dx: GpuBuffer,
    dgamma: GpuBuffer,
    dbeta: GpuBuffer,
    scratch: GpuBuffer,
}

/// Checks and launches the two stages of a backward on rows stored as `storage`.
fn backward(
    dev: &mut dyn GpuDevice,
    op: &'static str,
    storage: Storage,
    b: BackwardBuffers,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let (r, c) = check_rows_cols(op, rows, cols)?;
    let sizes = || rows_cols(rows, cols);
    let n = rows * cols;
    let matrices = [("dy", b.dy, n), ("x", b.x, n), ("dx", b.dx, n)];
    check_lens_of(&*dev, op, &sizes, storage.dtype(), &matrices)?;
    check_lens(
        &*dev,
        op,
        &sizes,
        &[
            ("gamma", b.gamma, cols),
            ("dgamma", b.dgamma, cols),
            ("dbeta", b.dbeta, cols),
            ("mean", b.mean, rows),
            ("rstd", b.rstd, rows),
            (
                "scratch",
                b.scratch,
                layer_norm_backward_scratch_len(rows, cols),
            ),
        ],
    )?;
    let width = width(cols);
    let in_registers = cols
        <= if width == 4 {
            MAX_BACKWARD_COLS
        } else {
            MAX_BACKWARD_COLS_W1
        };
    distinct_outputs(
        op,
        &[
            ("dx", b.dx),
            ("dgamma", b.dgamma),
            ("dbeta", b.dbeta),
            ("scratch", b.scratch),
        ],
        &[
            ("dy", b.dy),
            ("x", b.x),
            ("gamma", b.gamma),
            ("mean", b.mean),
            ("rstd", b.rstd),
        ],
    )?;
    let (blocks, rows_per_block) = partition(rows);
    if rows > 0 {
        let per_thread = BWD_FLOATS / width;
        let threads = if in_registers {
            (cols / width).div_ceil(per_thread).next_multiple_of(32)
        } else {
            WIDE_THREADS
        };
        let cfg = LaunchConfig {
            grid: [blocks as u32, 1, 1],
            block: [threads as u32, 1, 1],
            shared_bytes: 0,
        };
        let args = [
            KernelArg::Buf(b.dy),
            KernelArg::Buf(b.x),
            KernelArg::Buf(b.gamma),
            KernelArg::Buf(b.mean),
            KernelArg::Buf(b.rstd),
            KernelArg::Buf(b.dx),
            KernelArg::Buf(b.scratch),
            KernelArg::I32(r),
            KernelArg::I32(c),
            KernelArg::I32(rows_per_block as i32),
        ];
        let wide = if in_registers { "" } else { "_wide" };
        let kernel = format!("layernorm_bwd{}{wide}_w{width}", storage.tag());
        // SAFETY: every buffer was checked against `rows x cols` (the scratch against
        // `blocks x cols`), and the arguments are the kernel's parameters in order.
        unsafe { dev.launch(MODULE, &kernel, cfg, &args)? };
    }
    let cfg = LaunchConfig {
        grid: [cols.div_ceil(32) as u32, 1, 1],
        block: [32, 8, 1],
        shared_bytes: 0,
    };
    let args = [
        KernelArg::Buf(b.scratch),
        KernelArg::Buf(b.dgamma),
        KernelArg::Buf(b.dbeta),
        KernelArg::I32(blocks as i32),
        KernelArg::I32(c),
    ];
    // SAFETY: as above; the grid covers the columns, each thread summing `blocks` partials.
    unsafe { dev.launch(MODULE, "layernorm_bwd_params", cfg, &args) }
}

/// Launches forward kernel `prefix`_(variant) for the shape with `args`.
///
/// # Safety
/// `args` are the kernel's parameters in order, their buffers checked against `rows x cols`.
unsafe fn launch_forward(
    dev: &mut dyn GpuDevice,
    prefix: &str,
    args: &[KernelArg],
    rows: usize,
    cols: usize,
) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    // 384, 768 and 1024 columns (warp rows) have kernels that keep the row in registers.
    let (kind, cfg) = row_launch(rows, cols);
    let variant = match cols {
        384 | 768 | 1024 => cols.to_string(),
        c => format!("{kind}_w{}", width(c)),
    };
    // SAFETY: the caller's contract; the configuration is the one the kernels are written for.
    unsafe { dev.launch(MODULE, &format!("{prefix}_{variant}"), cfg, args) }
}

/// `(blocks, rows per block)` of the backward: contiguous ranges of rows, each block at least
/// one row (no blocks for `rows == 0`).
fn partition(rows: usize) -> (usize, usize) {
    let per_block = rows.div_ceil(MAX_PARTIAL_BLOCKS).max(1);
    (rows.div_ceil(per_block), per_block)
}

/// `cols >= 1`, `rows * cols` fits `usize`, and both fit the kernels' `int`s.
fn check_rows_cols(op: &'static str, rows: usize, cols: usize) -> Result<(i32, i32)> {
    if cols == 0 {
        return Err(Error::Shape {
            op,
            detail: format!("rows x cols = {rows} x 0: a layer norm needs at least one column"),
        });
    }
    kernel_dims(op, rows, cols)
}

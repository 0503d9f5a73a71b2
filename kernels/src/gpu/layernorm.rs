//! GPU layer normalisation (`kernels/cuda/layernorm.cu`): the forward, alone or fused with a
//! residual add, and the backward, with the numerics of [`crate::cpu::layernorm`].
//!
//! Forward: a warp per row (4 rows per block of 128 threads) below [`BLOCK_ROW_MIN_COLS`]
//! columns, with the row kept in registers for 384, 768 and 1024 columns; a block of 256
//! threads per row from there on. Rows of `cols % 4 == 0` move in 16-byte `float4` accesses,
//! others one float at a time.
//!
//! Backward: `dx` per row, and `dgamma`/`dbeta` in two deterministic stages (no float atomics,
//! the same bits on every run): each of up to 512 blocks takes a contiguous range of rows and
//! writes its column sums to a scratch buffer (see [`layer_norm_backward_scratch_len`]), then
//! one kernel adds those partial sums per column in a fixed order.

use super::{
    check_len, distinct_outputs, kernel_dims, width, GpuBuffer, GpuDevice, KernelArg, LaunchConfig,
    PtxModule,
};
use crate::{Error, Result};

/// The layer-norm kernels, compiled from `kernels/cuda/layernorm.cu`.
pub const MODULE: PtxModule = PtxModule {
    name: "layernorm",
    ptx: include_str!("../../ptx/layernorm.ptx"),
};

/// Rows of a block of the warp-per-row kernels (one warp each; `WARP_ROWS` in the source).
const WARP_ROWS: usize = 4;
/// Threads of a block that takes one row alone.
const BLOCK_THREADS: u32 = 256;
/// From this many columns on, the forward gives each row a block instead of a warp.
pub const BLOCK_ROW_MIN_COLS: usize = 2048;
/// Floats of a row that one backward thread holds in registers (`BWD_FLOATS` in the source).
const BWD_FLOATS: usize = 8;
/// The widest row the backward takes: 8 floats held by each of up to 1024 threads.
pub const MAX_BACKWARD_COLS: usize = BWD_FLOATS * 1024;
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
    const OP: &str = "gpu_layer_norm";
    let (r, c) = check_forward(
        OP,
        [("x", x), ("y", y)],
        [gamma, beta],
        [mean, rstd],
        rows,
        cols,
    )?;
    distinct_outputs(
        OP,
        &[("y", y), ("mean", mean), ("rstd", rstd)],
        &[("x", x), ("gamma", gamma), ("beta", beta)],
    )?;
    let args = [
        KernelArg::Buf(x),
        KernelArg::Buf(gamma),
        KernelArg::Buf(beta),
        KernelArg::Buf(y),
        KernelArg::Buf(mean),
        KernelArg::Buf(rstd),
        KernelArg::I32(r),
        KernelArg::I32(c),
        KernelArg::F32(eps),
    ];
    launch_forward(dev, "layernorm_fwd", &args, rows, cols)
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
    const OP: &str = "gpu_layer_norm_residual";
    let (r, c) = check_forward(
        OP,
        [("x", x), ("y", y)],
        [gamma, beta],
        [mean, rstd],
        rows,
        cols,
    )?;
    check_len(OP, "residual", residual, rows * cols)?;
    check_len(OP, "sum", sum, rows * cols)?;
    distinct_outputs(
        OP,
        &[("sum", sum), ("y", y), ("mean", mean), ("rstd", rstd)],
        &[
            ("x", x),
            ("residual", residual),
            ("gamma", gamma),
            ("beta", beta),
        ],
    )?;
    let args = [
        KernelArg::Buf(x),
        KernelArg::Buf(residual),
        KernelArg::Buf(sum),
        KernelArg::Buf(gamma),
        KernelArg::Buf(beta),
        KernelArg::Buf(y),
        KernelArg::Buf(mean),
        KernelArg::Buf(rstd),
        KernelArg::I32(r),
        KernelArg::I32(c),
        KernelArg::F32(eps),
    ];
    launch_forward(dev, "layernorm_fwd_res", &args, rows, cols)
}

/// f32 values the `scratch` buffer of [`layer_norm_backward`] needs for `rows x cols`: two
/// partial sums (dgamma, dbeta) per column for each block of the first stage.
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
/// also another argument, [`Error::Unsupported`] when `cols` exceeds [`MAX_BACKWARD_COLS`] or
/// `rows` exceeds `i32::MAX`.
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
    const OP: &str = "gpu_layer_norm_backward";
    let (r, c) = check_rows_cols(OP, rows, cols)?;
    for (name, buf) in [("dy", dy), ("x", x), ("dx", dx)] {
        check_len(OP, name, buf, rows * cols)?;
    }
    for (name, buf) in [("gamma", gamma), ("dgamma", dgamma), ("dbeta", dbeta)] {
        check_len(OP, name, buf, cols)?;
    }
    check_len(OP, "mean", mean, rows)?;
    check_len(OP, "rstd", rstd, rows)?;
    check_len(
        OP,
        "scratch",
        scratch,
        layer_norm_backward_scratch_len(rows, cols),
    )?;
    if cols > MAX_BACKWARD_COLS {
        return Err(Error::Unsupported {
            op: OP,
            detail: format!(
                "rows x cols = {rows} x {cols}: the backward takes at most {MAX_BACKWARD_COLS} columns"
            ),
        });
    }
    distinct_outputs(
        OP,
        &[
            ("dx", dx),
            ("dgamma", dgamma),
            ("dbeta", dbeta),
            ("scratch", scratch),
        ],
        &[
            ("dy", dy),
            ("x", x),
            ("gamma", gamma),
            ("mean", mean),
            ("rstd", rstd),
        ],
    )?;
    let (blocks, rows_per_block) = partition(rows);
    if rows > 0 {
        let width = width(cols);
        let per_thread = BWD_FLOATS / width;
        let threads = (cols / width).div_ceil(per_thread).next_multiple_of(32);
        let cfg = LaunchConfig {
            grid: [blocks as u32, 1, 1],
            block: [threads as u32, 1, 1],
            shared_bytes: 0,
        };
        let args = [
            KernelArg::Buf(dy),
            KernelArg::Buf(x),
            KernelArg::Buf(gamma),
            KernelArg::Buf(mean),
            KernelArg::Buf(rstd),
            KernelArg::Buf(dx),
            KernelArg::Buf(scratch),
            KernelArg::I32(r),
            KernelArg::I32(c),
            KernelArg::I32(rows_per_block as i32),
        ];
        dev.launch(MODULE, &format!("layernorm_bwd_w{width}"), cfg, &args)?;
    }
    let cfg = LaunchConfig {
        grid: [cols.div_ceil(32) as u32, 1, 1],
        block: [32, 8, 1],
        shared_bytes: 0,
    };
    let args = [
        KernelArg::Buf(scratch),
        KernelArg::Buf(dgamma),
        KernelArg::Buf(dbeta),
        KernelArg::I32(blocks as i32),
        KernelArg::I32(c),
    ];
    dev.launch(MODULE, "layernorm_bwd_params", cfg, &args)
}

/// Launches forward kernel `prefix`_(variant) for the shape (checked) with `args`.
fn launch_forward(
    dev: &mut dyn GpuDevice,
    prefix: &str,
    args: &[KernelArg],
    rows: usize,
    cols: usize,
) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    let (variant, cfg) = match cols {
        384 | 768 | 1024 => (cols.to_string(), warp_rows(rows)),
        c if c >= BLOCK_ROW_MIN_COLS => (format!("block_w{}", width(c)), block_rows(rows)),
        c => (format!("warp_w{}", width(c)), warp_rows(rows)),
    };
    dev.launch(MODULE, &format!("{prefix}_{variant}"), cfg, args)
}

/// A warp per row, [`WARP_ROWS`] rows per block.
fn warp_rows(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid: [rows.div_ceil(WARP_ROWS) as u32, 1, 1],
        block: [32 * WARP_ROWS as u32, 1, 1],
        shared_bytes: 0,
    }
}

/// A block of [`BLOCK_THREADS`] per row.
fn block_rows(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid: [rows as u32, 1, 1],
        block: [BLOCK_THREADS, 1, 1],
        shared_bytes: 0,
    }
}

/// `(blocks, rows per block)` of the backward: contiguous ranges of rows, each block at least
/// one row (no blocks for `rows == 0`).
fn partition(rows: usize) -> (usize, usize) {
    let per_block = rows.div_ceil(MAX_PARTIAL_BLOCKS).max(1);
    (rows.div_ceil(per_block), per_block)
}

/// The checks of a forward call: `[x, y]` hold `rows * cols`, `[gamma, beta]` `cols`,
/// `[mean, rstd]` `rows`; returns `(rows, cols)` as kernel integers.
fn check_forward(
    op: &'static str,
    matrices: [(&str, GpuBuffer); 2],
    [gamma, beta]: [GpuBuffer; 2],
    [mean, rstd]: [GpuBuffer; 2],
    rows: usize,
    cols: usize,
) -> Result<(i32, i32)> {
    let dims = check_rows_cols(op, rows, cols)?;
    for (name, buf) in matrices {
        check_len(op, name, buf, rows * cols)?;
    }
    check_len(op, "gamma", gamma, cols)?;
    check_len(op, "beta", beta, cols)?;
    check_len(op, "mean", mean, rows)?;
    check_len(op, "rstd", rstd, rows)?;
    Ok(dims)
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

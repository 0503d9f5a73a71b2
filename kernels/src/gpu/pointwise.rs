//! GPU row softmax and its backward, exact GELU and its backward, and the bias (+ residual) add
//! (`kernels/cuda/pointwise.cu`), with the numerics of [`crate::cpu::softmax`] and
//! [`crate::cpu::activation`].
//!
//! Softmax: a warp per row (4 rows per block of 128 threads) below
//! [`BLOCK_ROW_MIN_COLS`](super::BLOCK_ROW_MIN_COLS) columns, a block of 256 threads per row
//! from there on. The elementwise kernels take `float4` chunks where the shape keeps them
//! 16-byte aligned; they may run in place.

use super::{
    check_lens, distinct_outputs, kernel_dims, row_launch, rows_cols, width, GpuBuffer, GpuDevice,
    KernelArg, LaunchConfig, PtxModule,
};
use crate::{Error, Result};

/// The pointwise kernels, compiled from `kernels/cuda/pointwise.cu`.
pub const MODULE: PtxModule = PtxModule {
    name: "pointwise",
    ptx: include_str!("../../ptx/pointwise.ptx"),
};

/// Threads of a block of the elementwise (GELU) and bias kernels, at most.
const ELEMENTWISE_THREADS: usize = 256;
/// CUDA's limit on grid y and the cap on grid x of the grid-stride elementwise kernels.
const GRID_CAP: usize = 65535;

/// An additive softmax mask on the device, broadcast over rows: row `r` of the input adds
/// mask row `r / repeat` (attention scores `[B*H*T, T]` with a key-padding mask `[B, T]` use
/// `repeat = H*T`). As [`crate::cpu::softmax::Mask`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mask {
    /// Mask rows of `cols` values each, row-major; `-inf` removes an entry.
    pub values: GpuBuffer,
    /// Consecutive input rows sharing one mask row (at least 1).
    pub repeat: usize,
}

/// `y[r, :] = softmax(scale * x[r, :] + mask row)` for `rows` rows of `cols` (row-major),
/// numerically stable (the row maximum is subtracted); a row whose logits are all `-inf`
/// becomes all zeros.
///
/// `x` and `y` hold at least `rows * cols` f32 values, the mask at least
/// `ceil(rows / repeat) * cols`. Errors: [`Error::Shape`] when a buffer is too short or
/// `repeat` is 0, [`Error::Overlap`] when `y` is `x` or the mask, [`Error::Unsupported`] when
/// `rows`, `cols` or `repeat` exceeds `i32::MAX`.
pub fn softmax(
    dev: &mut dyn GpuDevice,
    x: GpuBuffer,
    y: GpuBuffer,
    rows: usize,
    cols: usize,
    scale: f32,
    mask: Option<Mask>,
) -> Result<()> {
    const OP: &str = "gpu_softmax";
    let (r, c) = kernel_dims(OP, rows, cols)?;
    let sizes = || rows_cols(rows, cols);
    check_lens(
        &*dev,
        OP,
        &sizes,
        &[("x", x, rows * cols), ("y", y, rows * cols)],
    )?;
    let Some(mask) = mask else {
        distinct_outputs(OP, &[("y", y)], &[("x", x)])?;
        let args = [
            KernelArg::Buf(x),
            KernelArg::Buf(y),
            KernelArg::I32(r),
            KernelArg::I32(c),
            KernelArg::F32(scale),
        ];
        // SAFETY: every buffer was checked against the shape above, and `args` are
        // the kernel's parameters in order.
        return unsafe { launch_rows(dev, "softmax_fwd", &args, rows, cols) };
    };
    if mask.repeat == 0 {
        return Err(Error::Shape {
            op: OP,
            detail: format!("mask repeat is 0 for {rows} x {cols} rows: it must be at least 1"),
        });
    }
    let repeat = i32::try_from(mask.repeat).map_err(|_| Error::Unsupported {
        op: OP,
        detail: format!("mask repeat {} exceeds {}", mask.repeat, i32::MAX),
    })?;
    let mask_len = rows.div_ceil(mask.repeat) * cols;
    check_lens(&*dev, OP, &sizes, &[("mask", mask.values, mask_len)])?;
    distinct_outputs(OP, &[("y", y)], &[("x", x), ("mask", mask.values)])?;
    let args = [
        KernelArg::Buf(x),
        KernelArg::Buf(mask.values),
        KernelArg::Buf(y),
        KernelArg::I32(r),
        KernelArg::I32(c),
        KernelArg::F32(scale),
        KernelArg::I32(repeat),
    ];
    // SAFETY: every buffer was checked against the shape above, and `args` are
    // the kernel's parameters in order.
    unsafe { launch_rows(dev, "softmax_fwd_mask", &args, rows, cols) }
}

/// `dx = scale * y * (dy - sum_j dy[j] * y[j])` per row: the gradient of [`softmax`] w.r.t.
/// its unscaled input, from its output `y` and the gradient `dy` of its output.
///
/// `y`, `dy` and `dx` hold at least `rows * cols` f32 values. Errors: [`Error::Shape`] when
/// a buffer is too short, [`Error::Overlap`] when `dx` is `y` or `dy`,
/// [`Error::Unsupported`] when `rows` or `cols` exceeds `i32::MAX`.
pub fn softmax_backward(
    dev: &mut dyn GpuDevice,
    y: GpuBuffer,
    dy: GpuBuffer,
    dx: GpuBuffer,
    rows: usize,
    cols: usize,
    scale: f32,
) -> Result<()> {
    const OP: &str = "gpu_softmax_backward";
    let (r, c) = kernel_dims(OP, rows, cols)?;
    let n = rows * cols;
    check_lens(
        &*dev,
        OP,
        &|| rows_cols(rows, cols),
        &[("y", y, n), ("dy", dy, n), ("dx", dx, n)],
    )?;
    distinct_outputs(OP, &[("dx", dx)], &[("y", y), ("dy", dy)])?;
    let args = [
        KernelArg::Buf(y),
        KernelArg::Buf(dy),
        KernelArg::Buf(dx),
        KernelArg::I32(r),
        KernelArg::I32(c),
        KernelArg::F32(scale),
    ];
    // SAFETY: every buffer was checked against the shape above, and `args` are
    // the kernel's parameters in order.
    unsafe { launch_rows(dev, "softmax_bwd", &args, rows, cols) }
}

/// `y = 0.5 x (1 + erf(x / sqrt 2))` (exact GELU) on the first `n` values; `y` may be `x`.
///
/// `x` and `y` hold at least `n` f32 values. Errors: [`Error::Shape`] when a buffer is too
/// short, [`Error::Unsupported`] when `n` exceeds `i32::MAX`.
pub fn gelu(dev: &mut dyn GpuDevice, x: GpuBuffer, y: GpuBuffer, n: usize) -> Result<()> {
    const OP: &str = "gpu_gelu";
    let len = kernel_len(OP, n)?;
    check_lens(
        &*dev,
        OP,
        &|| format!("n = {n}"),
        &[("x", x, n), ("y", y, n)],
    )?;
    let args = [KernelArg::Buf(x), KernelArg::Buf(y), KernelArg::I32(len)];
    // SAFETY: every buffer was checked against the shape above, and `args` are
    // the kernel's parameters in order.
    unsafe { launch_elementwise(dev, "gelu_fwd", &args, n) }
}

/// `dx = dy * (0.5 (1 + erf(x / sqrt 2)) + x e^(-x^2 / 2) / sqrt(2 pi))`, the gradient of
/// [`gelu`] w.r.t. its input `x`, on the first `n` values; `dx` may be `x` or `dy`.
///
/// `x`, `dy` and `dx` hold at least `n` f32 values. Errors as [`gelu`].
pub fn gelu_backward(
    dev: &mut dyn GpuDevice,
    x: GpuBuffer,
    dy: GpuBuffer,
    dx: GpuBuffer,
    n: usize,
) -> Result<()> {
    const OP: &str = "gpu_gelu_backward";
    let len = kernel_len(OP, n)?;
    check_lens(
        &*dev,
        OP,
        &|| format!("n = {n}"),
        &[("x", x, n), ("dy", dy, n), ("dx", dx, n)],
    )?;
    let args = [
        KernelArg::Buf(x),
        KernelArg::Buf(dy),
        KernelArg::Buf(dx),
        KernelArg::I32(len),
    ];
    // SAFETY: every buffer was checked against the shape above, and `args` are
    // the kernel's parameters in order.
    unsafe { launch_elementwise(dev, "gelu_bwd", &args, n) }
}

/// `out[r, c] = x[r, c] + bias[c]` for `rows` rows of `cols` (row-major); `out` may be `x`.
///
/// `x` and `out` hold at least `rows * cols` f32 values, `bias` `cols`. Errors:
/// [`Error::Shape`] when a buffer is too short, [`Error::Overlap`] when `out` is `bias`,
/// [`Error::Unsupported`] when `rows` or `cols` exceeds `i32::MAX`.
pub fn bias_add(
    dev: &mut dyn GpuDevice,
    x: GpuBuffer,
    bias: GpuBuffer,
    out: GpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "gpu_bias_add";
    let (r, c) = kernel_dims(OP, rows, cols)?;
    let n = rows * cols;
    check_lens(
        &*dev,
        OP,
        &|| rows_cols(rows, cols),
        &[("x", x, n), ("bias", bias, cols), ("out", out, n)],
    )?;
    // Blocks read the bias while others write their rows of `out`.
    distinct_outputs(OP, &[("out", out)], &[("bias", bias)])?;
    let args = [
        KernelArg::Buf(x),
        KernelArg::Buf(bias),
        KernelArg::Buf(out),
        KernelArg::I32(r),
        KernelArg::I32(c),
    ];
    // SAFETY: every buffer was checked against the shape above, and `args` are
    // the kernel's parameters in order.
    unsafe { launch_bias(dev, "bias_add", &args, rows, cols) }
}

/// `out[r, c] = (x[r, c] + bias[c]) + residual[r, c]` for `rows` rows of `cols` (row-major);
/// `out` may be `x` or `residual`.
///
/// `x`, `residual` and `out` hold at least `rows * cols` f32 values, `bias` `cols`. Errors as
/// [`bias_add`].
pub fn bias_residual_add(
    dev: &mut dyn GpuDevice,
    x: GpuBuffer,
    bias: GpuBuffer,
    residual: GpuBuffer,
    out: GpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "gpu_bias_residual_add";
    let (r, c) = kernel_dims(OP, rows, cols)?;
    let n = rows * cols;
    check_lens(
        &*dev,
        OP,
        &|| rows_cols(rows, cols),
        &[
            ("x", x, n),
            ("bias", bias, cols),
            ("residual", residual, n),
            ("out", out, n),
        ],
    )?;
    distinct_outputs(OP, &[("out", out)], &[("bias", bias)])?;
    let args = [
        KernelArg::Buf(x),
        KernelArg::Buf(bias),
        KernelArg::Buf(residual),
        KernelArg::Buf(out),
        KernelArg::I32(r),
        KernelArg::I32(c),
    ];
    // SAFETY: every buffer was checked against the shape above, and `args` are
    // the kernel's parameters in order.
    unsafe { launch_bias(dev, "bias_residual_add", &args, rows, cols) }
}

/// `n` as the kernels' `int`, or [`Error::Unsupported`].
fn kernel_len(op: &'static str, n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| Error::Unsupported {
        op,
        detail: format!("n = {n} values: at most {} are supported", i32::MAX),
    })
}

/// Launches the row kernel `prefix`_(warp|block)_w(1|4) for `rows x cols`.
///
/// # Safety
/// `args` are the kernel's parameters in order, their buffers checked against `rows x cols`.
unsafe fn launch_rows(
    dev: &mut dyn GpuDevice,
    prefix: &str,
    args: &[KernelArg],
    rows: usize,
    cols: usize,
) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let (kind, cfg) = row_launch(rows, cols);
    let name = format!("{prefix}_{kind}_w{}", width(cols));
    // SAFETY: the caller's contract; the configuration is the one the kernels are written for.
    unsafe { dev.launch(MODULE, &name, cfg, args) }
}

/// Launches a grid-stride elementwise kernel over `n` values:
/// [`ELEMENTWISE_THREADS`] threads of one `float4` each per block.
///
/// # Safety
/// `args` are the kernel's parameters in order, their buffers checked against `n`.
unsafe fn launch_elementwise(
    dev: &mut dyn GpuDevice,
    kernel: &str,
    args: &[KernelArg],
    n: usize,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let blocks = n.div_ceil(4 * ELEMENTWISE_THREADS).min(GRID_CAP);
    let cfg = LaunchConfig {
        grid: [blocks as u32, 1, 1],
        block: [ELEMENTWISE_THREADS as u32, 1, 1],
        shared_bytes: 0,
    };
    // SAFETY: the caller's contract; the kernel strides over `n` whatever the grid.
    unsafe { dev.launch(MODULE, kernel, cfg, args) }
}

/// Launches bias kernel `prefix`_w(1|4) for `rows x cols`: a thread per chunk of columns,
/// blocks along y walking the rows.
///
/// # Safety
/// `args` are the kernel's parameters in order, their buffers checked against `rows x cols`.
unsafe fn launch_bias(
    dev: &mut dyn GpuDevice,
    prefix: &str,
    args: &[KernelArg],
    rows: usize,
    cols: usize,
) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let width = width(cols);
    let chunks = cols / width;
    let threads = chunks.next_multiple_of(32).min(ELEMENTWISE_THREADS);
    let cfg = LaunchConfig {
        grid: [
            chunks.div_ceil(threads) as u32,
            rows.min(GRID_CAP) as u32,
            1,
        ],
        block: [threads as u32, 1, 1],
        shared_bytes: 0,
    };
    // SAFETY: the caller's contract; the configuration is the one the kernels are written for.
    unsafe { dev.launch(MODULE, &format!("{prefix}_w{width}"), cfg, args) }
}

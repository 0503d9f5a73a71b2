//! GPU kernels: CUDA C sources (`kernels/cuda/*.cu`) compiled to PTX (`kernels/ptx/*.ptx`),
//! embedded in the binary and launched through one path on either device:
//!
//! - [`SimDevice`] runs the PTX in smelt-ptx-sim on the CPU, with its bounds, race and
//!   barrier checks (every test run uses it);
//! - `CudaDevice` (feature `cuda`) loads the same PTX through cudarc and runs it on a GPU.
//!
//! Each op family has a module with its PTX and one typed launcher per kernel, which checks
//! shapes and picks the launch configuration; the launchers only see the [`GpuDevice`] trait.
//! Besides the errors each launcher lists, every one refuses a buffer of another device
//! ([`Error::Device`]) and one labelled with the other element type ([`Dtype`],
//! [`Error::Dtype`]), naming the op, the buffer and the call's sizes.

pub mod attention;
#[cfg(feature = "cuda")]
mod cuda;
pub mod layernorm;
pub mod pointwise;
mod sim;

#[cfg(feature = "cuda")]
pub use cuda::CudaDevice;
pub use sim::SimDevice;

use crate::{Error, Result};

/// A PTX module embedded in the binary: a name (its file stem) and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtxModule {
    /// File stem, e.g. `layernorm`.
    pub name: &'static str,
    /// The PTX text; its first line records the hash of the CUDA source.
    pub ptx: &'static str,
}

/// What a buffer holds, as the call that made it says (uploads, `alloc_f32` and `alloc_bf16`
/// are typed, `alloc_zeros` is not; a kernel's writes and [`GpuDevice::copy`] do not change
/// it): a launcher refuses a buffer labelled with the other type for any of its rows, read or
/// written. Outputs allocated typed keep a chain of launches checked: a bf16 kernel's output
/// cannot then be read as f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// f32 values ([`GpuDevice::upload_f32`]).
    F32,
    /// 16-bit values, which the kernels read as bf16 ([`GpuDevice::upload_u16`]).
    Bf16,
    /// Zeroed memory not typed ([`GpuDevice::alloc_zeros`]), which every launcher takes.
    Untyped,
}

impl Dtype {
    /// Bytes per value (an untyped buffer is counted in 32-bit words).
    fn size(self) -> usize {
        match self {
            Dtype::Bf16 => 2,
            Dtype::F32 | Dtype::Untyped => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::Untyped => "untyped",
        }
    }
}

/// A device allocation: an opaque handle, the device that made it, its size in bytes and
/// what it holds.
///
/// Only a device makes one, and always for a whole allocation (there are no sub-ranges): its
/// data starts 256-byte aligned on both devices, which the kernels' 16-byte `float4` and 8-byte
/// bf16 accesses rely on, and its size is what the device really holds, which the launchers'
/// length checks rely on (the CUDA device does not check bounds). Storage comes in whole
/// 32-bit words: a buffer of `bytes` holds `bytes.div_ceil(4)` of them. Devices refuse the
/// buffers of other devices (handles repeat from one device to the next).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuBuffer {
    device: DeviceId,
    handle: u64,
    bytes: usize,
    dtype: Dtype,
}

/// Tells devices apart, so that a buffer is only ever used on the device that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceId(u64);

impl DeviceId {
    /// An id no other device of this process has.
    pub(crate) fn fresh() -> DeviceId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        DeviceId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    /// Whether this device made `buf`.
    pub(crate) fn made(self, buf: GpuBuffer) -> bool {
        buf.device == self
    }

    /// `buf` when this device made it, else an error naming the op.
    pub(crate) fn owns(self, op: &'static str, buf: GpuBuffer) -> Result<GpuBuffer> {
        if buf.device == self {
            return Ok(buf);
        }
        Err(Error::Device {
            op,
            detail: format!(
                "buffer {:#x} ({} bytes) belongs to another device",
                buf.handle, buf.bytes
            ),
        })
    }
}

impl GpuBuffer {
    /// An untyped buffer handle as device `device` hands it out.
    pub(crate) fn new(device: DeviceId, handle: u64, bytes: usize) -> GpuBuffer {
        GpuBuffer {
            device,
            handle,
            bytes,
            dtype: Dtype::Untyped,
        }
    }

    /// The same buffer, said to hold `dtype` values.
    pub(crate) fn holding(self, dtype: Dtype) -> GpuBuffer {
        GpuBuffer { dtype, ..self }
    }

    /// What the buffer holds.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The device's handle (an address on ptx-sim, an index on CUDA).
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of f32 elements it holds.
    pub fn len_f32(&self) -> usize {
        self.bytes / 4
    }
}

/// A kernel argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KernelArg {
    /// A pointer to a device buffer.
    Buf(GpuBuffer),
    /// A 32-bit signed integer.
    I32(i32),
    /// A 32-bit unsigned integer.
    U32(u32),
    /// A float.
    F32(f32),
}

/// Grid, block and dynamic shared memory of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks along x, y, z.
    pub grid: [u32; 3],
    /// Threads along x, y, z.
    pub block: [u32; 3],
    /// Dynamic shared memory in bytes.
    pub shared_bytes: u32,
}

/// What a launcher needs from a device: memory and launches. Launches may be asynchronous;
/// `download_f32` waits for them.
pub trait GpuDevice {
    /// Human-readable name ("ptx-sim", "NVIDIA H100 ...").
    fn name(&self) -> String;
    /// Whether `buf` is this device's (handles repeat from one device to the next).
    fn owns(&self, buf: GpuBuffer) -> bool;
    /// A zeroed buffer of `bytes` bytes, [`Dtype::Untyped`].
    fn alloc_zeros(&mut self, bytes: usize) -> Result<GpuBuffer>;
    /// A zeroed buffer of `len` f32 values, [`Dtype::F32`]: as an output, launchers that read
    /// bf16 refuse it afterwards.
    fn alloc_f32(&mut self, len: usize) -> Result<GpuBuffer> {
        Ok(self
            .alloc_zeros(typed_bytes(len, Dtype::F32)?)?
            .holding(Dtype::F32))
    }
    /// A zeroed buffer of `len` bf16 values, [`Dtype::Bf16`] (`2 * len` bytes).
    fn alloc_bf16(&mut self, len: usize) -> Result<GpuBuffer> {
        Ok(self
            .alloc_zeros(typed_bytes(len, Dtype::Bf16)?)?
            .holding(Dtype::Bf16))
    }
    /// Frees `buf`: its memory goes back to the device, and any later use of the handle is an
    /// error (handles are not reused). An error when `buf` is not a live buffer of this device.
    fn free(&mut self, buf: GpuBuffer) -> Result<()>;
    /// A buffer holding `data`, [`Dtype::F32`].
    fn upload_f32(&mut self, data: &[f32]) -> Result<GpuBuffer>;
    /// The contents of a buffer as f32 values (`bytes.div_ceil(4)` of them), after all
    /// launches finished.
    fn download_f32(&mut self, buf: GpuBuffer) -> Result<Vec<f32>>;
    /// A buffer holding 16-bit values (the bits of bf16 values), two to a 32-bit word, low
    /// half first; its size is `2 * data.len()` bytes, its dtype [`Dtype::Bf16`].
    fn upload_u16(&mut self, data: &[u16]) -> Result<GpuBuffer> {
        let words: Vec<f32> = data
            .chunks(2)
            .map(|c| f32::from_bits(c[0] as u32 | (c.get(1).copied().unwrap_or(0) as u32) << 16))
            .collect();
        let buf = self.upload_f32(&words)?;
        Ok(GpuBuffer {
            bytes: 2 * data.len(),
            ..buf.holding(Dtype::Bf16)
        })
    }
    /// The contents of a buffer as 16-bit values (`bytes / 2` of them), after all launches
    /// finished.
    fn download_u16(&mut self, buf: GpuBuffer) -> Result<Vec<u16>> {
        let words = self.download_f32(buf)?;
        let mut out: Vec<u16> = words
            .iter()
            .flat_map(|w| [w.to_bits() as u16, (w.to_bits() >> 16) as u16])
            .collect();
        out.truncate(buf.bytes() / 2);
        Ok(out)
    }
    /// Runs `kernel` of `module`.
    ///
    /// # Safety
    /// `args` match the kernel's parameters in number and type, and every buffer holds all
    /// that the kernel reads or writes through it under `cfg` for the sizes `args` give it:
    /// a GPU checks nothing (ptx-sim reports an access out of bounds as an error). The typed
    /// launchers of [`attention`], [`layernorm`] and [`pointwise`] make these checks.
    unsafe fn launch(
        &mut self,
        module: PtxModule,
        kernel: &str,
        cfg: LaunchConfig,
        args: &[KernelArg],
    ) -> Result<()>;
    /// Copies all of `src` into `dst` on the device: [`Error::Shape`] unless the two have the
    /// same size.
    fn copy(&mut self, src: GpuBuffer, dst: GpuBuffer) -> Result<()>;
    /// Waits until every launch finished.
    fn synchronize(&mut self) -> Result<()>;
}

/// The 32-bit words a device allocates for a buffer of `bytes` bytes (whole words), or an
/// error naming the size when it is past `max_bytes`, the most the device can
/// hold in one buffer (a size near `usize::MAX` would otherwise wrap around in the device's
/// own byte count and hand out a buffer shorter than its recorded size).
fn alloc_words(device: &'static str, bytes: usize, max_bytes: usize) -> Result<usize> {
    if bytes > max_bytes {
        return Err(Error::Shape {
            op: "gpu_alloc",
            detail: format!(
                "{bytes} bytes: more than {device} can hold in one buffer ({max_bytes} bytes)"
            ),
        });
    }
    Ok(bytes.div_ceil(4))
}

/// The bytes of `len` values of `dtype`, or an error when they overflow `usize`.
fn typed_bytes(len: usize, dtype: Dtype) -> Result<usize> {
    len.checked_mul(dtype.size()).ok_or_else(|| Error::Shape {
        op: "gpu_alloc",
        detail: format!("{len} {} values overflow usize bytes", dtype.name()),
    })
}

/// Fails unless `buf` holds at least `elems` values of `dtype`: [`Error::Dtype`] when it holds
/// the other kind, [`Error::Shape`] when it is too short.
fn check_len(
    op: &'static str,
    name: &str,
    buf: GpuBuffer,
    elems: usize,
    dtype: Dtype,
) -> Result<()> {
    if buf.dtype != dtype && buf.dtype != Dtype::Untyped {
        return Err(Error::Dtype {
            op,
            detail: format!(
                "{name} holds {} values, the op takes {} there",
                buf.dtype.name(),
                dtype.name()
            ),
        });
    }
    let held = buf.bytes / dtype.size();
    if held < elems {
        return Err(Error::Shape {
            op,
            detail: format!(
                "{name} holds {held} {} values, the shape needs {elems}",
                dtype.name()
            ),
        });
    }
    Ok(())
}

/// [`check_lens_of`] f32 values.
fn check_lens(
    dev: &dyn GpuDevice,
    op: &'static str,
    sizes: &dyn Fn() -> String,
    bufs: &[(&str, GpuBuffer, usize)],
) -> Result<()> {
    check_lens_of(dev, op, sizes, Dtype::F32, bufs)
}

/// For each `(name, buf, elems)`: an [`Error::Device`] unless `dev` made `buf`, then
/// [`check_len`] of `dtype` values. A failure's message ends with the call's sizes
/// (`sizes()`, e.g. `rows x cols = 4 x 768`), so that it names the shape as well as the
/// buffer.
fn check_lens_of(
    dev: &dyn GpuDevice,
    op: &'static str,
    sizes: &dyn Fn() -> String,
    dtype: Dtype,
    bufs: &[(&str, GpuBuffer, usize)],
) -> Result<()> {
    for &(name, buf, elems) in bufs {
        let checked = if dev.owns(buf) {
            check_len(op, name, buf, elems, dtype)
        } else {
            Err(Error::Device {
                op,
                detail: format!(
                    "{name} ({} bytes) belongs to another device than {}",
                    buf.bytes,
                    dev.name()
                ),
            })
        };
        checked.map_err(|e| with_sizes(e, sizes))?;
    }
    Ok(())
}

/// `e` with the call's sizes appended to its message.
fn with_sizes(e: Error, sizes: &dyn Fn() -> String) -> Error {
    let add = |detail: String| format!("{detail} ({})", sizes());
    match e {
        Error::Shape { op, detail } => Error::Shape {
            op,
            detail: add(detail),
        },
        Error::Dtype { op, detail } => Error::Dtype {
            op,
            detail: add(detail),
        },
        Error::Device { op, detail } => Error::Device {
            op,
            detail: add(detail),
        },
        other => other,
    }
}

/// `rows x cols = R x C`, the sizes of a row kernel's call in its errors.
fn rows_cols(rows: usize, cols: usize) -> String {
    format!("rows x cols = {rows} x {cols}")
}

/// What [`GpuDevice::copy`] checks on every device: `src` and `dst` have the same size.
fn check_copy(src: GpuBuffer, dst: GpuBuffer) -> Result<()> {
    if src.bytes() != dst.bytes() {
        return Err(Error::Shape {
            op: "gpu_copy",
            detail: format!(
                "src holds {} bytes, dst {}: a copy needs the same size",
                src.bytes(),
                dst.bytes()
            ),
        });
    }
    Ok(())
}

/// `(rows, cols)` as the kernels' `int`s: [`Error::Shape`] when `rows * cols` overflows,
/// [`Error::Unsupported`] when `rows` exceeds `i32::MAX` or `cols` [`MAX_KERNEL_COLS`].
fn kernel_dims(op: &'static str, rows: usize, cols: usize) -> Result<(i32, i32)> {
    if rows.checked_mul(cols).is_none() {
        return Err(Error::Shape {
            op,
            detail: format!("rows x cols = {rows} x {cols} overflows usize"),
        });
    }
    match (i32::try_from(rows), i32::try_from(cols)) {
        (Ok(r), Ok(c)) if cols <= MAX_KERNEL_COLS => Ok((r, c)),
        _ => Err(Error::Unsupported {
            op,
            detail: format!(
                "rows x cols = {rows} x {cols}: rows must be at most {}, cols at most {MAX_KERNEL_COLS}",
                i32::MAX
            ),
        }),
    }
}

/// The widest row a row kernel takes: its threads walk a row in `int` steps of up to 1024
/// past the last column, which must not overflow.
const MAX_KERNEL_COLS: usize = i32::MAX as usize - 1024;

/// Rows of a block of the warp-per-row kernels, one warp each (`WARP_ROWS` in `common.cuh`).
const WARP_ROWS: usize = 4;
/// Threads of a block that takes one row alone.
const BLOCK_ROW_THREADS: u32 = 256;
/// From this many columns on, the row kernels (layer norm, softmax) give each row a block of
/// 256 threads instead of a warp.
pub const BLOCK_ROW_MIN_COLS: usize = 2048;

/// How the row kernels take `rows` rows of `cols`: `("warp", _)`, a warp per row and
/// [`WARP_ROWS`] rows per block of 128 threads, below [`BLOCK_ROW_MIN_COLS`] columns, else
/// `("block", _)`, a block of 256 threads per row. `rows` fits an `i32` (checked by the caller).
fn row_launch(rows: usize, cols: usize) -> (&'static str, LaunchConfig) {
    let (kind, blocks, threads) = if cols >= BLOCK_ROW_MIN_COLS {
        ("block", rows, BLOCK_ROW_THREADS)
    } else {
        ("warp", rows.div_ceil(WARP_ROWS), 32 * WARP_ROWS as u32)
    };
    let cfg = LaunchConfig {
        grid: [blocks as u32, 1, 1],
        block: [threads, 1, 1],
        shared_bytes: 0,
    };
    (kind, cfg)
}

/// Floats per access for rows of `cols`: a `float4` when rows stay 16-byte aligned (every
/// buffer is a whole allocation, aligned to 256 bytes on both devices), else one float.
fn width(cols: usize) -> usize {
    if cols.is_multiple_of(4) {
        4
    } else {
        1
    }
}

/// [`Error::Overlap`] when an output is the same buffer as another output or an input: the
/// kernels read their inputs (through the read-only cache) while other threads write the
/// outputs, and assume no aliasing.
fn distinct_outputs(
    op: &'static str,
    outputs: &[(&str, GpuBuffer)],
    inputs: &[(&str, GpuBuffer)],
) -> Result<()> {
    for (i, &(name, buf)) in outputs.iter().enumerate() {
        let mut others = outputs[i + 1..].iter().chain(inputs);
        if let Some((other, _)) = others.find(|(_, b)| b.handle() == buf.handle()) {
            return Err(Error::Overlap {
                op,
                detail: format!("{name} and {other} are the same buffer"),
            });
        }
    }
    Ok(())
}

//! Helpers of the GPU kernel tests, and the comparison cases of each op family
//! ([`attention`], [`layernorm`], [`pointwise`]; [`fuzz`] draws random shapes for them). The cases take any [`GpuDevice`], run the
//! launchers and compare them with the CPU kernels: the `gpu_*` test files run them on ptx-sim
//! ([`on_sim`]), `gpu_cuda` (feature `cuda`) on a real GPU, with large shapes too.

pub mod attention;
pub mod fuzz;
pub mod layernorm;
pub mod pointwise;

use smelt_kernels::gpu::{GpuBuffer, GpuDevice, KernelArg, LaunchConfig, PtxModule, SimDevice};
use smelt_kernels::Result;
use std::collections::BTreeSet;

/// Elementwise tolerance of [`max_err`], relative to `max(|want|, floor)`.
pub const TOL: f32 = 1e-5;

/// `.approx` error of the second run of [`on_sim`]: `ex2.approx`'s documented worst case.
pub const APPROX_ULPS: u32 = 2;

/// Runs `f` on a fresh [`SimDevice`], then again on one whose `.approx` instructions are
/// [`APPROX_ULPS`] off (so the tolerances hold at a GPU's documented error, not only for
/// correctly rounded results); asserts that no launch gave a simulator warning and prints how
/// many thread-instructions ran. Returns the first run's result.
pub fn on_sim<R>(f: impl Fn(&mut dyn GpuDevice) -> R) -> R {
    let result = on_one_sim(SimDevice::new(), &f);
    on_one_sim(SimDevice::with_approx_error(APPROX_ULPS), &f);
    result
}

/// Runs `f` on `dev`, asserts that no launch gave a simulator warning and prints how many
/// thread-instructions ran: one run of [`on_sim`].
pub fn on_one_sim<R>(mut dev: SimDevice, f: impl FnOnce(&mut dyn GpuDevice) -> R) -> R {
    let result = f(&mut dev);
    assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
    println!(
        "ptx-sim: {:.1} M thread-instructions",
        dev.instructions() as f64 / 1e6
    );
    result
}

/// `|got - want| / max(|want|, floor)` at its largest, asserting it stays within [`TOL`].
pub fn max_err(what: &str, got: &[f32], want: &[f32], floor: f32) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0.0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(floor);
        assert!(err <= TOL, "{what}[{i}]: got {g}, want {w}");
        worst = worst.max(err);
    }
    worst
}

/// A device buffer holding `values`.
pub fn upload(dev: &mut dyn GpuDevice, values: &[f32]) -> GpuBuffer {
    dev.upload_f32(values).unwrap()
}

/// The contents of a device buffer, once every launch finished.
pub fn download(dev: &mut dyn GpuDevice, buf: GpuBuffer) -> Vec<f32> {
    dev.download_f32(buf).unwrap()
}

/// A device buffer holding `values`, as bf16 (rounded) when `bf16`, else as f32.
pub fn upload_as(dev: &mut dyn GpuDevice, values: &[f32], bf16: bool) -> GpuBuffer {
    if bf16 {
        upload_bf16(dev, values)
    } else {
        upload(dev, values)
    }
}

/// The values of a device buffer of bf16 (when `bf16`) or f32 values.
pub fn download_as(dev: &mut dyn GpuDevice, buf: GpuBuffer, bf16: bool) -> Vec<f32> {
    if bf16 {
        download_bf16(dev, buf)
    } else {
        download(dev, buf)
    }
}

/// A device buffer holding `values` rounded to bf16.
pub fn upload_bf16(dev: &mut dyn GpuDevice, values: &[f32]) -> GpuBuffer {
    let bits: Vec<u16> = values.iter().map(|&v| bf16_bits(v)).collect();
    dev.upload_u16(&bits).unwrap()
}

/// The bf16 values of a device buffer as f32, once every launch finished.
pub fn download_bf16(dev: &mut dyn GpuDevice, buf: GpuBuffer) -> Vec<f32> {
    let bits = dev.download_u16(buf).unwrap();
    bits.into_iter().map(bf16_value).collect()
}

/// The bf16 bits of `v`, rounded to nearest even (NaN stays a quiet NaN).
fn bf16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        return (bits >> 16) as u16 | 0x40;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// `v` rounded to bf16, nearest even, as f32.
pub fn round_bf16(v: f32) -> f32 {
    bf16_value(bf16_bits(v))
}

/// The f32 value of bf16 bits (exact).
fn bf16_value(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// A device buffer of `n` NaNs, so values a kernel fails to write show.
pub fn nans(dev: &mut dyn GpuDevice, n: usize) -> GpuBuffer {
    upload(dev, &vec![f32::NAN; n])
}

/// The kernels (`.entry` names) of a PTX module.
pub fn entries(module: PtxModule) -> BTreeSet<String> {
    module
        .ptx
        .lines()
        .filter_map(|l| l.strip_prefix(".visible .entry "))
        .map(|l| l.trim_end_matches('(').to_string())
        .collect()
}

/// A device that passes everything on to another and records the name of every kernel it
/// launches.
pub struct Recorder<'a> {
    dev: &'a mut dyn GpuDevice,
    /// The kernels launched so far.
    pub launched: BTreeSet<String>,
}

impl<'a> Recorder<'a> {
    /// Records the launches made on `dev`.
    pub fn new(dev: &'a mut dyn GpuDevice) -> Recorder<'a> {
        Recorder {
            dev,
            launched: BTreeSet::new(),
        }
    }
}

impl GpuDevice for Recorder<'_> {
    fn name(&self) -> String {
        self.dev.name()
    }
    fn owns(&self, buf: GpuBuffer) -> bool {
        self.dev.owns(buf)
    }
    fn alloc_zeros(&mut self, bytes: usize) -> Result<GpuBuffer> {
        self.dev.alloc_zeros(bytes)
    }
    fn free(&mut self, buf: GpuBuffer) -> Result<()> {
        self.dev.free(buf)
    }
    fn upload_f32(&mut self, data: &[f32]) -> Result<GpuBuffer> {
        self.dev.upload_f32(data)
    }
    fn download_f32(&mut self, buf: GpuBuffer) -> Result<Vec<f32>> {
        self.dev.download_f32(buf)
    }
    unsafe fn launch(
        &mut self,
        module: PtxModule,
        kernel: &str,
        cfg: LaunchConfig,
        args: &[KernelArg],
    ) -> Result<()> {
        self.launched.insert(kernel.to_string());
        // SAFETY: the caller's contract, passed on unchanged.
        unsafe { self.dev.launch(module, kernel, cfg, args) }
    }
    fn copy(&mut self, src: GpuBuffer, dst: GpuBuffer) -> Result<()> {
        self.dev.copy(src, dst)
    }
    fn synchronize(&mut self) -> Result<()> {
        self.dev.synchronize()
    }
}

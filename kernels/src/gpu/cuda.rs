//! The CUDA device (feature `cuda`): the embedded PTX loaded by the driver through cudarc
//! (`dynamic-loading`, so building needs no CUDA; running needs libcuda and a GPU).
//!
//! Launches are asynchronous: a kernel that faults (an illegal address, say) is reported by
//! whichever call next waits on the stream, under that call's name. With the environment
//! variable `SMELT_CUDA_SYNC=1` every launch waits for its kernel, so the error names the
//! kernel that faulted and its grid (slower; for diagnosis).

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig as CuConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use super::{
    alloc_words, check_copy, DeviceId, Dtype, GpuBuffer, GpuDevice, KernelArg, LaunchConfig,
    PtxModule,
};
use crate::{Error, Result};

/// GPU `ordinal` through the CUDA driver.
pub struct CudaDevice {
    id: DeviceId,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: HashMap<&'static str, Arc<CudaModule>>,
    functions: HashMap<(&'static str, String), CudaFunction>,
    /// Every allocation, indexed by its handle, as 32-bit words (`bytes.div_ceil(4)`, at least
    /// one: the driver refuses empty allocations). `None` once freed, or while `copy` holds the
    /// target.
    buffers: Vec<Option<CudaSlice<f32>>>,
    /// `SMELT_CUDA_SYNC=1`: wait for every kernel right after its launch.
    sync_each_launch: bool,
}

fn err(what: impl std::fmt::Display) -> Error {
    Error::Device {
        op: "cuda",
        detail: what.to_string(),
    }
}

/// The driver API version the shipped PTX needs: ISA 8.8 (NVRTC 12.9) loads on drivers for
/// CUDA 12.9 and later (R575 and later).
const MIN_DRIVER_VERSION: i32 = 12090;

/// The oldest GPU architecture the shipped PTX runs on (`.target sm_80`: Ampere).
const MIN_COMPUTE_CAPABILITY: (i32, i32) = (8, 0);

/// An error naming both architectures when a GPU of compute capability `(major, minor)` is
/// older than the PTX's target: it would otherwise fail at the first launch, in the driver's
/// JIT, under that op's name.
fn check_capability((major, minor): (i32, i32)) -> Result<()> {
    if (major, minor) >= MIN_COMPUTE_CAPABILITY {
        return Ok(());
    }
    let (want_major, want_minor) = MIN_COMPUTE_CAPABILITY;
    Err(err(format!(
        "the GPU is sm_{major}{minor}; smelt's PTX targets sm_{want_major}{want_minor} (Ampere) \
         and newer"
    )))
}

/// An error naming both versions when a driver reporting `version` (`1000 * major + 10 *
/// minor`, as `cuDriverGetVersion` gives it) is too old to load the shipped PTX, which it
/// would otherwise refuse module by module with `CUDA_ERROR_UNSUPPORTED_PTX_VERSION`.
fn check_driver(version: i32) -> Result<()> {
    if version >= MIN_DRIVER_VERSION {
        return Ok(());
    }
    let cuda = |v: i32| format!("{}.{}", v / 1000, v % 1000 / 10);
    Err(err(format!(
        "the CUDA driver supports CUDA {}; smelt's PTX (ISA 8.8, from NVRTC 12.9) needs a \
         driver for CUDA {} or newer (R575 or later)",
        cuda(version),
        cuda(MIN_DRIVER_VERSION)
    )))
}

impl CudaDevice {
    /// Opens GPU `ordinal`. With no CUDA driver or no GPU this is an error that says so (it
    /// checks for libcuda before touching it, so it never panics).
    pub fn new(ordinal: usize) -> Result<CudaDevice> {
        // SAFETY: only tries to open the driver library; it does not call into it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(err(
                "no CUDA driver (libcuda) on this machine, so no GPU to run on",
            ));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| err(format!("cannot open GPU {ordinal}: {e}")))?;
        let mut version = 0;
        // SAFETY: libcuda is present and initialised (the context above); the call only
        // writes `version`.
        let status = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) };
        if status != cudarc::driver::sys::CUresult::CUDA_SUCCESS {
            return Err(err(format!("cuDriverGetVersion failed: {status:?}")));
        }
        check_driver(version)?;
        let capability = ctx
            .compute_capability()
            .map_err(|e| err(format!("GPU {ordinal}: compute capability: {e}")))?;
        check_capability(capability)?;
        // SAFETY: this device uses one stream for every allocation, copy and launch, so the
        // events cudarc records to order other streams are never needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        Ok(CudaDevice {
            id: DeviceId::fresh(),
            ctx,
            stream,
            modules: HashMap::new(),
            functions: HashMap::new(),
            buffers: Vec::new(),
            sync_each_launch: std::env::var("SMELT_CUDA_SYNC").is_ok_and(|v| v == "1"),
        })
    }

    fn slice(&self, b: GpuBuffer) -> Result<&CudaSlice<f32>> {
        let b = self.id.owns("cuda", b)?;
        self.buffers
            .get(b.handle() as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                err(format!(
                    "buffer {} does not belong to this device",
                    b.handle()
                ))
            })
    }

    fn function(&mut self, module: PtxModule, kernel: &str) -> Result<CudaFunction> {
        if let Some(f) = self.functions.get(&(module.name, kernel.to_string())) {
            return Ok(f.clone());
        }
        if !self.modules.contains_key(module.name) {
            let m = self
                .ctx
                .load_module(Ptx::from_src(module.ptx))
                .map_err(|e| err(format!("loading {}.ptx: {e}", module.name)))?;
            self.modules.insert(module.name, m);
        }
        let f = self.modules[module.name]
            .load_function(kernel)
            .map_err(|e| err(format!("kernel {kernel} in {}.ptx: {e}", module.name)))?;
        self.functions
            .insert((module.name, kernel.to_string()), f.clone());
        Ok(f)
    }

    fn keep(&mut self, s: CudaSlice<f32>, bytes: usize) -> GpuBuffer {
        self.buffers.push(Some(s));
        GpuBuffer::new(self.id, self.buffers.len() as u64 - 1, bytes)
    }
}

impl GpuDevice for CudaDevice {
    fn name(&self) -> String {
        let name = self.ctx.name().unwrap_or_else(|_| "unknown".to_string());
        format!("cuda:{} ({name})", self.ctx.ordinal())
    }

    fn owns(&self, buf: GpuBuffer) -> bool {
        self.id.made(buf)
    }

    fn alloc_zeros(&mut self, bytes: usize) -> Result<GpuBuffer> {
        // The driver counts bytes in a `usize` too: past `isize::MAX` its count would wrap.
        // At least one word: the driver refuses empty allocations.
        let words = alloc_words("cuda", bytes, isize::MAX as usize)?.max(1);
        let s = self.stream.alloc_zeros::<f32>(words).map_err(err)?;
        Ok(self.keep(s, bytes))
    }

    fn free(&mut self, buf: GpuBuffer) -> Result<()> {
        self.slice(buf)?;
        // Dropping the slice frees it on the stream, after the launches queued before.
        self.buffers[buf.handle() as usize] = None;
        Ok(())
    }

    fn upload_f32(&mut self, data: &[f32]) -> Result<GpuBuffer> {
        if data.is_empty() {
            return Ok(self.alloc_zeros(0)?.holding(Dtype::F32));
        }
        let s = self.stream.clone_htod(data).map_err(err)?;
        Ok(self.keep(s, data.len() * 4).holding(Dtype::F32))
    }

    fn download_f32(&mut self, buf: GpuBuffer) -> Result<Vec<f32>> {
        let s = self.slice(buf)?;
        // A copy into pageable host memory returns once it is done, after earlier launches.
        let mut words = self.stream.clone_dtoh(s).map_err(err)?;
        words.truncate(buf.bytes().div_ceil(4));
        Ok(words)
    }

    unsafe fn launch(
        &mut self,
        module: PtxModule,
        kernel: &str,
        cfg: LaunchConfig,
        args: &[KernelArg],
    ) -> Result<()> {
        let f = self.function(module, kernel)?;
        if cfg.shared_bytes > 0 {
            // Static and dynamic shared memory above 48 KiB together need the kernel to opt
            // in, or the launch fails (ptx-sim has no such limit); opting in below is
            // harmless. No shipped kernel asks for dynamic shared memory today.
            let attribute =
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            let bytes = i32::try_from(cfg.shared_bytes).map_err(err)?;
            f.set_attribute(attribute, bytes)
                .map_err(|e| err(format!("{kernel}: {} bytes of shared memory: {e}", bytes)))?;
        }
        // The builder keeps pointers to the values: they live in `args` and `self.buffers`,
        // both borrowed until the launch below.
        let mut builder = self.stream.launch_builder(&f);
        for a in args {
            match a {
                KernelArg::Buf(b) => builder.arg(self.slice(*b)?),
                KernelArg::I32(v) => builder.arg(v),
                KernelArg::U32(v) => builder.arg(v),
                KernelArg::F32(v) => builder.arg(v),
            };
        }
        let c = CuConfig {
            grid_dim: (cfg.grid[0], cfg.grid[1], cfg.grid[2]),
            block_dim: (cfg.block[0], cfg.block[1], cfg.block[2]),
            shared_mem_bytes: cfg.shared_bytes,
        };
        // SAFETY: the caller's contract (see the trait): the arguments match the kernel's
        // parameters and every buffer holds what the kernel touches under `c`.
        unsafe { builder.launch(c) }.map_err(|e| err(format!("launching {kernel}: {e}")))?;
        if self.sync_each_launch {
            self.stream.synchronize().map_err(|e| {
                err(format!(
                    "{kernel} (grid {:?}, block {:?}) failed on the GPU: {e}",
                    cfg.grid, cfg.block
                ))
            })?;
        }
        Ok(())
    }

    fn copy(&mut self, src: GpuBuffer, dst: GpuBuffer) -> Result<()> {
        check_copy(src, dst)?;
        self.slice(dst)?;
        if src.handle() == dst.handle() {
            return self.slice(src).map(|_| ());
        }
        // Same size in bytes, so the same number of words: the whole of `src` fills `dst`.
        let slot = |b: GpuBuffer| b.handle() as usize;
        let mut target = self
            .buffers
            .get_mut(slot(dst))
            .and_then(Option::take)
            .ok_or_else(|| {
                err(format!(
                    "buffer {} does not belong to this device",
                    dst.handle()
                ))
            })?;
        let result = self
            .slice(src)
            .and_then(|s| self.stream.memcpy_dtod(s, &mut target).map_err(err));
        self.buffers[slot(dst)] = Some(target);
        result
    }

    fn synchronize(&mut self) -> Result<()> {
        self.stream.synchronize().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_older_than_cuda_12_9_is_refused_with_both_versions() {
        assert!(check_driver(12090).is_ok());
        assert!(check_driver(13000).is_ok());
        let old = check_driver(12040).unwrap_err().to_string();
        assert!(
            old.contains("supports CUDA 12.4") && old.contains("CUDA 12.9 or newer"),
            "{old}"
        );
    }

    #[test]
    fn a_gpu_older_than_sm_80_is_refused_naming_both() {
        assert!(check_capability((8, 0)).is_ok());
        assert!(check_capability((9, 0)).is_ok());
        let old = check_capability((7, 5)).unwrap_err().to_string();
        assert!(old.contains("sm_75") && old.contains("sm_80"), "{old}");
    }
}

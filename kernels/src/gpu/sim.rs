//! The ptx-sim device: the embedded PTX run by smelt-ptx-sim on the CPU. A launch that trips a
//! check (out of bounds, race, barrier divergence...) is an `Error::Device` with the full report.

use std::collections::HashMap;

use smelt_ptx_sim::{Arg, Buffer, Dim3, Launch, Module, Sim};

use super::{
    alloc_words, check_copy, DeviceId, Dtype, GpuBuffer, GpuDevice, KernelArg, LaunchConfig,
    PtxModule,
};
use crate::{Error, Result};

/// The largest buffer ptx-sim hands out: its memory is host memory, allocated at once (a
/// larger request would abort the process instead of failing).
const MAX_BUFFER_BYTES: usize = 1 << 32;

/// A simulated GPU: global memory, parsed modules, and the warnings of every launch.
pub struct SimDevice {
    id: DeviceId,
    sim: Sim,
    modules: HashMap<&'static str, Module>,
    buffers: HashMap<u64, Buffer>,
    warnings: Vec<String>,
    instructions: u64,
}

impl SimDevice {
    /// A fresh simulated device.
    pub fn new() -> SimDevice {
        SimDevice {
            id: DeviceId::fresh(),
            sim: Sim::default(),
            modules: HashMap::new(),
            buffers: HashMap::new(),
            warnings: Vec::new(),
            instructions: 0,
        }
    }

    /// A fresh simulated device whose f32 `.approx` instructions are `ulps` units in the last
    /// place off instead of correctly rounded (see `smelt_ptx_sim::Sim::set_approx_error`):
    /// 2 is `ex2.approx`'s documented worst case on a GPU.
    pub fn with_approx_error(ulps: u32) -> SimDevice {
        let mut dev = SimDevice::new();
        dev.sim.set_approx_error(ulps);
        dev
    }

    /// Warnings of all launches so far (registers read before written, and the like).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Thread-instructions executed by all launches so far.
    pub fn instructions(&self) -> u64 {
        self.instructions
    }

    fn buffer(&self, b: GpuBuffer) -> Result<Buffer> {
        let b = self.id.owns("ptx-sim", b)?;
        self.buffers
            .get(&b.handle())
            .copied()
            .ok_or_else(|| Error::Device {
                op: "ptx-sim",
                detail: format!("buffer {:#x} does not belong to this device", b.handle()),
            })
    }

    /// Keeps `b` and hands it out as a buffer of `bytes` (at most its length).
    fn register(&mut self, b: Buffer, bytes: usize) -> GpuBuffer {
        self.buffers.insert(b.addr(), b);
        GpuBuffer::new(self.id, b.addr(), bytes)
    }
}

impl Default for SimDevice {
    fn default() -> SimDevice {
        SimDevice::new()
    }
}

impl GpuDevice for SimDevice {
    fn name(&self) -> String {
        "ptx-sim".to_string()
    }

    fn owns(&self, buf: GpuBuffer) -> bool {
        self.id.made(buf)
    }

    fn alloc_zeros(&mut self, bytes: usize) -> Result<GpuBuffer> {
        // Whole 32-bit words, as on CUDA (and as `upload_u16` makes them).
        let words = alloc_words("ptx-sim", bytes, MAX_BUFFER_BYTES)?;
        let b = self.sim.zeros(4 * words);
        Ok(self.register(b, bytes))
    }

    fn free(&mut self, buf: GpuBuffer) -> Result<()> {
        let b = self.buffer(buf)?;
        self.buffers.remove(&b.addr());
        self.sim.free(b).map_err(|e| Error::Device {
            op: "ptx-sim",
            detail: e.to_string(),
        })
    }

    fn upload_f32(&mut self, data: &[f32]) -> Result<GpuBuffer> {
        let b = self.sim.upload_f32(data);
        Ok(self.register(b, b.len()).holding(Dtype::F32))
    }

    fn download_f32(&mut self, buf: GpuBuffer) -> Result<Vec<f32>> {
        Ok(self.sim.read_f32(self.buffer(buf)?))
    }

    unsafe fn launch(
        &mut self,
        module: PtxModule,
        kernel: &str,
        cfg: LaunchConfig,
        args: &[KernelArg],
    ) -> Result<()> {
        let device_err = |e: smelt_ptx_sim::SimError| Error::Device {
            op: "ptx-sim",
            detail: e.to_string(),
        };
        if !self.modules.contains_key(module.name) {
            let parsed = Module::parse(module.ptx).map_err(device_err)?;
            self.modules.insert(module.name, parsed);
        }
        let args = args
            .iter()
            .map(|a| {
                Ok(match *a {
                    KernelArg::Buf(b) => Arg::Ptr(self.buffer(b)?),
                    KernelArg::I32(v) => Arg::I32(v),
                    KernelArg::U32(v) => Arg::U32(v),
                    KernelArg::F32(v) => Arg::F32(v),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let [gx, gy, gz] = cfg.grid;
        let [bx, by, bz] = cfg.block;
        let launch = Launch {
            grid: Dim3::new(gx, gy, gz),
            block: Dim3::new(bx, by, bz),
            shared_bytes: cfg.shared_bytes,
        };
        let m = &self.modules[module.name];
        let report = self
            .sim
            .launch(m, kernel, launch, &args)
            .map_err(device_err)?;
        self.instructions += report.instructions;
        self.warnings.extend(report.warnings);
        Ok(())
    }

    fn copy(&mut self, src: GpuBuffer, dst: GpuBuffer) -> Result<()> {
        check_copy(src, dst)?;
        let bytes = self.sim.read_bytes(self.buffer(src)?);
        let dst = self.buffer(dst)?;
        self.sim
            .write_bytes(dst, &bytes)
            .map_err(|e| Error::Device {
                op: "ptx-sim copy",
                detail: e.to_string(),
            })
    }

    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_values_round_trip_through_device_memory() {
        let mut dev = SimDevice::new();
        for data in [vec![], vec![0x3f80u16], vec![1, 2, 0xffff, 0x7fc1, 0x8000]] {
            let buf = dev.upload_u16(&data).expect("upload");
            assert_eq!(buf.bytes(), 2 * data.len());
            assert_eq!(dev.download_u16(buf).expect("download"), data);
            // A zeroed buffer of the same size holds as many values, and takes a copy.
            let zeros = dev.alloc_zeros(buf.bytes()).expect("alloc");
            assert_eq!(
                dev.download_u16(zeros).expect("download"),
                vec![0; data.len()]
            );
            dev.copy(buf, zeros).expect("copy");
            assert_eq!(dev.download_u16(zeros).expect("download"), data);
        }
    }

    /// A size whose word count would overflow, or past what the simulator holds, is an error
    /// naming it (`alloc_bf16(usize::MAX / 2)` passed the typed size check and overflowed in
    /// the word count).
    #[test]
    fn sizes_past_the_limit_are_errors_naming_them() {
        let mut dev = SimDevice::new();
        for result in [
            dev.alloc_bf16(usize::MAX / 2),
            dev.alloc_zeros(usize::MAX),
            dev.alloc_zeros(MAX_BUFFER_BYTES + 1),
        ] {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Shape {
                        op: "gpu_alloc",
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(
                err.to_string().contains("more than ptx-sim can hold"),
                "{err}"
            );
        }
        assert_eq!(dev.alloc_zeros(6).unwrap().bytes(), 6);
    }

    /// A freed buffer's handle is refused afterwards (`Sim::free` takes its memory back),
    /// and the other buffers keep their contents.
    #[test]
    fn a_freed_buffer_is_gone() {
        let mut dev = SimDevice::new();
        let (kept, freed) = (
            dev.upload_f32(&[1.0; 4]).unwrap(),
            dev.alloc_f32(1 << 20).unwrap(),
        );
        dev.free(freed).expect("a live buffer");
        for err in [
            dev.download_f32(freed).unwrap_err(),
            dev.free(freed).unwrap_err(),
        ] {
            assert!(
                err.to_string().contains("does not belong to this device"),
                "{err}"
            );
        }
        assert_eq!(dev.download_f32(kept).unwrap(), vec![1.0; 4]);
    }

    #[test]
    fn copies_need_the_same_size() {
        let mut dev = SimDevice::new();
        let (a, b) = (dev.alloc_zeros(8).unwrap(), dev.alloc_zeros(12).unwrap());
        let err = dev.copy(a, b).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{err:?}");
        assert!(err.to_string().contains("8 bytes, dst 12"), "{err}");
        dev.copy(a, a).expect("a buffer onto itself");
    }
}

//! Where ops run: the CPU kernels, or the GPU kernels' PTX on a real GPU (`Cuda`, feature
//! `cuda`) or on the CPU through ptx-sim (`PtxSim`). Both GPU devices go through one launch
//! path, `smelt_kernels::gpu::GpuDevice`, so what passes on ptx-sim runs the same code on CUDA.

use smelt_kernels::gpu::{GpuDevice, SimDevice};

use crate::{Error, Result};

/// A device to run ops on.
pub enum Device {
    /// The CPU kernels (`smelt_kernels::cpu`).
    Cpu,
    /// The GPU kernels interpreted by ptx-sim, with its bounds, race and barrier checks.
    PtxSim(Box<SimDevice>),
    /// The GPU kernels on an NVIDIA GPU through cudarc.
    #[cfg(feature = "cuda")]
    Cuda(smelt_kernels::gpu::CudaDevice),
}

impl Device {
    /// The CPU.
    pub fn cpu() -> Device {
        Device::Cpu
    }

    /// A fresh ptx-sim device.
    pub fn ptx_sim() -> Device {
        Device::PtxSim(Box::new(SimDevice::new()))
    }

    /// GPU 0. An error (never a panic) when the build has no `cuda` feature, when there is no
    /// CUDA driver, or when no GPU can be opened.
    pub fn cuda() -> Result<Device> {
        #[cfg(feature = "cuda")]
        {
            Ok(Device::Cuda(smelt_kernels::gpu::CudaDevice::new(0)?))
        }
        #[cfg(not(feature = "cuda"))]
        {
            Err(Error::Kernel(smelt_kernels::Error::Device {
                op: "Device::cuda",
                detail: "this build has no CUDA support: rebuild with `--features cuda`"
                    .to_string(),
            }))
        }
    }

    /// Parses a device name: `cpu`, `ptx-sim` or `cuda`.
    pub fn from_name(name: &str) -> Result<Device> {
        match name {
            "cpu" => Ok(Device::cpu()),
            "ptx-sim" | "sim" => Ok(Device::ptx_sim()),
            "cuda" | "gpu" => Device::cuda(),
            other => Err(Error::Input {
                op: "Device::from_name",
                detail: format!("unknown device {other:?} (want cpu, ptx-sim or cuda)"),
            }),
        }
    }

    /// The GPU launch path of this device; None for the CPU.
    pub fn gpu(&mut self) -> Option<&mut dyn GpuDevice> {
        match self {
            Device::Cpu => None,
            Device::PtxSim(d) => Some(d.as_mut()),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => Some(d),
        }
    }

    /// A short name for reports: `cpu`, `ptx-sim`, or the GPU's name.
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            Device::PtxSim(d) => d.name(),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_by_name_and_a_clear_error_without_a_gpu() {
        assert_eq!(
            Device::from_name("cpu").map(|d| d.name()).ok(),
            Some("cpu".to_string())
        );
        let mut sim = Device::from_name("ptx-sim").expect("ptx-sim is always there");
        assert!(sim.gpu().is_some());
        assert!(Device::from_name("tpu").is_err());
        // On a machine without CUDA (CI), asking for it is an error that says why.
        if let Err(e) = Device::cuda() {
            let msg = e.to_string();
            assert!(
                msg.contains("CUDA") || msg.contains("cuda") || msg.contains("GPU"),
                "{msg}"
            );
        }
    }
}

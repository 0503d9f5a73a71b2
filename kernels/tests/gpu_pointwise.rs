//! The GPU softmax (forward with and without a mask, backward), GELU (forward, backward) and
//! bias (+ residual) add run by ptx-sim against the CPU kernels on odd shapes, covering every
//! kernel variant (warp and block rows, float4 and scalar accesses, vector bodies with scalar
//! tails, in place), with no simulator warnings; the PTX is checked fresh, and bad shapes give
//! errors naming the op.

use smelt_kernels::cpu::activation::{gelu, gelu_backward};
use smelt_kernels::cpu::softmax::{self as cpu_softmax, softmax_backward};
use smelt_kernels::cpu::CpuOptions;
use smelt_kernels::gpu::pointwise::{self as pw, Mask};
use smelt_kernels::gpu::{GpuBuffer, GpuDevice, KernelArg, LaunchConfig, PtxModule, SimDevice};
use smelt_kernels::{Error, Result};
use std::collections::BTreeSet;

mod common;
use common::{assert_shape_error, random};

/// Elementwise tolerance, relative to `max(|want|, floor)`.
const TOL: f32 = 1e-5;
const ROWS: [usize; 3] = [1, 3, 17];
/// Warp-per-row column counts: float4 (48, 384, 768, 1000) and scalar (1, 5).
const COLS: [usize; 6] = [1, 5, 48, 384, 768, 1000];
/// Block-per-row column counts (scalar and float4), on fewer rows.
const BIG: [(usize, usize); 2] = [(3, 2049), (1, 2052)];
/// Element counts of the elementwise kernels: tails of 1 and 3, none, several blocks.
const LENS: [usize; 6] = [1, 5, 48, 1000, 1003, 4099];

/// Every (rows, cols) case.
fn shapes() -> Vec<(usize, usize)> {
    let mut all: Vec<_> = ROWS.iter().flat_map(|&r| COLS.map(|c| (r, c))).collect();
    all.extend(BIG);
    all
}

/// `|got - want| / max(|want|, floor)` at its largest, asserting it stays within [`TOL`].
fn max_err(what: &str, got: &[f32], want: &[f32], floor: f32) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0.0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(floor);
        assert!(err <= TOL, "{what}[{i}]: got {g}, want {w}");
        worst = worst.max(err);
    }
    worst
}

/// A device buffer of `n` NaNs, so values a kernel fails to write show.
fn nans(dev: &mut dyn GpuDevice, n: usize) -> GpuBuffer {
    dev.upload_f32(&vec![f32::NAN; n]).unwrap()
}

fn up(dev: &mut dyn GpuDevice, v: &[f32]) -> GpuBuffer {
    dev.upload_f32(v).unwrap()
}

/// Mask rows of `cols`: 0 or -inf (about one entry in eight), and row 1 all -inf when there
/// is one, so that its input rows come out all zeros.
fn mask_values(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut m: Vec<f32> = random(rows * cols, seed)
        .iter()
        .map(|&v| if v > 0.75 { f32::NEG_INFINITY } else { 0.5 * v })
        .collect();
    if rows > 1 {
        m[cols..2 * cols].fill(f32::NEG_INFINITY);
    }
    m
}

/// A [`SimDevice`] that records the name of every kernel it launches.
#[derive(Default)]
struct Recorder {
    sim: SimDevice,
    launched: BTreeSet<String>,
}

impl GpuDevice for Recorder {
    fn name(&self) -> String {
        self.sim.name()
    }
    fn alloc_zeros(&mut self, bytes: usize) -> Result<GpuBuffer> {
        self.sim.alloc_zeros(bytes)
    }
    fn upload_f32(&mut self, data: &[f32]) -> Result<GpuBuffer> {
        self.sim.upload_f32(data)
    }
    fn download_f32(&mut self, buf: GpuBuffer) -> Result<Vec<f32>> {
        self.sim.download_f32(buf)
    }
    fn launch(
        &mut self,
        module: PtxModule,
        kernel: &str,
        cfg: LaunchConfig,
        args: &[KernelArg],
    ) -> Result<()> {
        self.launched.insert(kernel.to_string());
        self.sim.launch(module, kernel, cfg, args)
    }
    fn copy(&mut self, src: GpuBuffer, dst: GpuBuffer) -> Result<()> {
        self.sim.copy(src, dst)
    }
    fn synchronize(&mut self) -> Result<()> {
        self.sim.synchronize()
    }
}

/// The kernels (`.entry` names) of a PTX module.
fn entries(module: PtxModule) -> BTreeSet<String> {
    module
        .ptx
        .lines()
        .filter_map(|l| l.strip_prefix(".visible .entry "))
        .map(|l| l.trim_end_matches('(').to_string())
        .collect()
}

#[test]
fn ptx_is_regenerated_from_its_source() {
    let cu = include_bytes!("../cuda/pointwise.cu");
    let hash = cu.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let first = pw::MODULE.ptx.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!("// source-fnv1a64: {hash:016x}"),
        "pointwise.ptx is stale: python3 kernels/nvrtc.py kernels/cuda/pointwise.cu --out-dir kernels/ptx"
    );
}

/// Runs the softmax on every shape, with and without a mask; the largest errors.
fn softmax_cases(dev: &mut dyn GpuDevice) -> [f32; 2] {
    let opts = CpuOptions::default();
    let mut worst = [0.0f32; 2];
    for (seed, (rows, cols)) in shapes().into_iter().enumerate() {
        let seed = 10 * seed as u64;
        let x: Vec<f32> = random(rows * cols, seed).iter().map(|v| 8.0 * v).collect();
        let scale = [1.0, 0.125, -0.5][seed as usize % 3];
        let repeat = 2;
        let mask = mask_values(rows.div_ceil(repeat), cols, seed + 1);
        let bx = up(dev, &x);
        let bm = up(dev, &mask);
        for (k, masked) in [false, true].into_iter().enumerate() {
            let mut want = vec![0.0; rows * cols];
            let cpu_mask = masked.then_some(cpu_softmax::Mask {
                values: &mask,
                repeat,
            });
            cpu_softmax::softmax(&x, &mut want, rows, cols, scale, cpu_mask, &opts).unwrap();
            let y = nans(dev, rows * cols);
            let gpu_mask = masked.then_some(Mask { values: bm, repeat });
            pw::softmax(dev, bx, y, rows, cols, scale, gpu_mask).unwrap();
            let got = dev.download_f32(y).unwrap();
            let what = format!("softmax of {rows} x {cols}, scale {scale}, mask {masked}");
            // Entries far below the row maximum are tiny: compare them against 1 / cols.
            worst[k] = worst[k].max(max_err(&what, &got, &want, 1.0 / cols as f32));
            if masked && rows > repeat {
                let masked_rows = &got[repeat * cols..(2 * repeat).min(rows) * cols];
                assert!(masked_rows.iter().all(|&v| v == 0.0), "{what}: masked rows");
            }
        }
    }
    worst
}

#[test]
fn softmax_matches_cpu_with_and_without_mask() {
    let mut dev = SimDevice::new();
    let worst = softmax_cases(&mut dev);
    assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
    println!("softmax max error (no mask, mask): {worst:?}");
}

/// Runs the softmax backward on every shape; the largest error.
fn softmax_backward_cases(dev: &mut dyn GpuDevice) -> f32 {
    let opts = CpuOptions::default();
    let mut worst = 0.0f32;
    for (seed, (rows, cols)) in shapes().into_iter().enumerate() {
        let seed = 10 * seed as u64;
        let x = random(rows * cols, seed);
        let mut y = vec![0.0; rows * cols];
        cpu_softmax::softmax(&x, &mut y, rows, cols, 1.0, None, &opts).unwrap();
        let dy = random(rows * cols, seed + 1);
        let scale = 0.125;
        let mut want = vec![0.0; rows * cols];
        softmax_backward(&y, &dy, &mut want, rows, cols, scale, &opts).unwrap();
        let (by, bdy) = (up(dev, &y), up(dev, &dy));
        let dx = nans(dev, rows * cols);
        pw::softmax_backward(dev, by, bdy, dx, rows, cols, scale).unwrap();
        let got = dev.download_f32(dx).unwrap();
        // dx is a difference of terms of order scale / cols.
        let floor = scale / cols as f32;
        let what = format!("softmax_backward of {rows} x {cols}");
        worst = worst.max(max_err(&what, &got, &want, floor));
    }
    worst
}

#[test]
fn softmax_backward_matches_cpu() {
    let mut dev = SimDevice::new();
    let worst = softmax_backward_cases(&mut dev);
    assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
    println!("softmax backward max error: {worst}");
}

/// Runs GELU and its backward on every length, and GELU in place; the largest errors.
fn gelu_cases(dev: &mut dyn GpuDevice) -> [f32; 2] {
    let opts = CpuOptions::default();
    let mut worst = [0.0f32; 2];
    for (seed, n) in LENS.into_iter().enumerate() {
        let seed = 10 * seed as u64;
        // [-6, 6): both tails of the erf.
        let x: Vec<f32> = random(n, seed).iter().map(|v| 6.0 * v).collect();
        let dy = random(n, seed + 1);
        let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
        gelu(&x, &mut y, &opts).unwrap();
        gelu_backward(&x, &dy, &mut dx, &opts).unwrap();
        let (bx, bdy) = (up(dev, &x), up(dev, &dy));
        let (gy, gdx) = (nans(dev, n), nans(dev, n));
        pw::gelu(dev, bx, gy, n).unwrap();
        pw::gelu_backward(dev, bx, bdy, gdx, n).unwrap();
        let got_y = dev.download_f32(gy).unwrap();
        let got_dx = dev.download_f32(gdx).unwrap();
        // The CPU erf is accurate to about 1e-7 absolute (see cpu::activation).
        worst[0] = worst[0].max(max_err(&format!("gelu of {n}"), &got_y, &y, 1.0));
        let what = format!("gelu_backward of {n}");
        worst[1] = worst[1].max(max_err(&what, &got_dx, &dx, 1.0));

        // In place: y over x.
        let inplace = up(dev, &x);
        pw::gelu(dev, inplace, inplace, n).unwrap();
        assert_eq!(
            dev.download_f32(inplace).unwrap(),
            got_y,
            "gelu of {n} in place"
        );
    }
    worst
}

#[test]
fn gelu_and_its_backward_match_cpu() {
    let mut dev = SimDevice::new();
    let worst = gelu_cases(&mut dev);
    assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
    println!("gelu max error (forward, backward): {worst:?}");
}

/// Runs both bias adds on every shape, out of place and in place, checking them exactly.
fn bias_cases(dev: &mut dyn GpuDevice) {
    let mut shapes = shapes();
    // More rows than grid y holds: blocks walk several rows.
    shapes.push((65537, 1));
    for (seed, (rows, cols)) in shapes.into_iter().enumerate() {
        let seed = 10 * seed as u64;
        let x = random(rows * cols, seed);
        let bias = random(cols, seed + 1);
        let res = random(rows * cols, seed + 2);
        let plus_bias: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v + bias[i % cols])
            .collect();
        let plus_res: Vec<f32> = plus_bias.iter().zip(&res).map(|(a, b)| a + b).collect();
        let [bx, bb, br] = [&x, &bias, &res].map(|v| up(dev, v));
        let out = nans(dev, rows * cols);
        pw::bias_add(dev, bx, bb, out, rows, cols).unwrap();
        assert_eq!(dev.download_f32(out).unwrap(), plus_bias, "{rows} x {cols}");
        let out = nans(dev, rows * cols);
        pw::bias_residual_add(dev, bx, bb, br, out, rows, cols).unwrap();
        assert_eq!(dev.download_f32(out).unwrap(), plus_res, "{rows} x {cols}");
        // In place, over the residual.
        pw::bias_residual_add(dev, bx, bb, br, br, rows, cols).unwrap();
        assert_eq!(dev.download_f32(br).unwrap(), plus_res, "{rows} x {cols}");
    }
}

#[test]
fn bias_adds_are_exact() {
    let mut dev = SimDevice::new();
    bias_cases(&mut dev);
    assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
}

/// The same comparisons on GPU 0, when built with the `cuda` feature on a machine with one.
#[cfg(feature = "cuda")]
#[test]
fn matches_cpu_on_a_real_gpu() {
    let mut dev = match smelt_kernels::gpu::CudaDevice::new(0) {
        Ok(dev) => dev,
        Err(e) => return eprintln!("skipped: {e}"),
    };
    let name = dev.name();
    println!(
        "{name}: softmax max error (no mask, mask) {:?}",
        softmax_cases(&mut dev)
    );
    println!(
        "{name}: softmax backward {:?}",
        softmax_backward_cases(&mut dev)
    );
    println!(
        "{name}: gelu (forward, backward) {:?}",
        gelu_cases(&mut dev)
    );
    bias_cases(&mut dev);
}

#[test]
fn bad_shapes_are_errors_naming_the_op() {
    let mut dev = SimDevice::new();
    let (rows, cols) = (3, 8);
    let m = dev.alloc_zeros(4 * rows * cols).unwrap();
    let y = dev.alloc_zeros(4 * rows * cols).unwrap();
    let short = dev.alloc_zeros(4 * (rows * cols - 1)).unwrap();
    let v = dev.alloc_zeros(4 * cols).unwrap();
    let d = &mut dev;

    let err = pw::softmax(d, short, y, rows, cols, 1.0, None);
    assert_shape_error(err, "gpu_softmax", &["x holds 23 f32 values", "needs 24"]);
    let mask = Some(Mask {
        values: v,
        repeat: 2,
    });
    let err = pw::softmax(d, m, y, rows, cols, 1.0, mask);
    assert_shape_error(err, "gpu_softmax", &["mask holds 8", "needs 16"]);
    let mask = Some(Mask {
        values: m,
        repeat: 0,
    });
    let err = pw::softmax(d, m, y, rows, cols, 1.0, mask);
    assert_shape_error(err, "gpu_softmax", &["repeat is 0"]);
    let err = pw::softmax_backward(d, m, m, short, rows, cols, 1.0);
    assert_shape_error(err, "gpu_softmax_backward", &["dx holds 23"]);
    let err = pw::gelu(d, short, y, rows * cols);
    assert_shape_error(err, "gpu_gelu", &["x holds 23"]);
    let err = pw::gelu_backward(d, m, short, y, rows * cols);
    assert_shape_error(err, "gpu_gelu_backward", &["dy holds 23"]);
    let err = pw::bias_add(d, m, short, y, rows, cols + 1);
    assert_shape_error(err, "gpu_bias_add", &["x holds 24", "needs 27"]);
    let err = pw::bias_residual_add(d, m, v, short, y, rows, cols);
    assert_shape_error(err, "gpu_bias_residual_add", &["residual holds 23"]);

    let err = pw::softmax(d, m, m, rows, cols, 1.0, None).unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err:?}");
    assert!(err.to_string().starts_with("gpu_softmax:"), "{err}");
}

#[test]
fn every_kernel_runs() {
    let mut dev = Recorder::default();
    for cols in [5, 48, 2049, 2052] {
        let x = dev.upload_f32(&random(cols, cols as u64)).unwrap();
        let bias = dev.upload_f32(&random(cols, cols as u64 + 1)).unwrap();
        let [y, dx] = [0; 2].map(|_| dev.alloc_zeros(4 * cols).unwrap());
        let mask = Some(Mask {
            values: bias,
            repeat: 1,
        });
        pw::softmax(&mut dev, x, y, 1, cols, 1.0, None).unwrap();
        pw::softmax(&mut dev, x, y, 1, cols, 1.0, mask).unwrap();
        pw::softmax_backward(&mut dev, y, x, dx, 1, cols, 1.0).unwrap();
        pw::gelu(&mut dev, x, y, cols).unwrap();
        pw::gelu_backward(&mut dev, x, bias, dx, cols).unwrap();
        pw::bias_add(&mut dev, x, bias, y, 1, cols).unwrap();
        pw::bias_residual_add(&mut dev, x, bias, x, y, 1, cols).unwrap();
    }
    assert_eq!(dev.launched, entries(pw::MODULE));
}

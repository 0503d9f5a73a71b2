//! The GPU layer norm (forward, fused residual forward, backward) run by ptx-sim against the
//! CPU kernels on odd shapes, covering every kernel variant (register rows of 384/768/1024, warp
//! and block rows, float4 and scalar accesses, backward blocks of one and several rows), with
//! no simulator warnings; the PTX is checked fresh, and bad shapes give errors naming the op.

use smelt_kernels::cpu::layernorm::{layer_norm, layer_norm_backward, layer_norm_reference};
use smelt_kernels::cpu::CpuOptions;
use smelt_kernels::gpu::layernorm::{
    self as ln, layer_norm_backward_scratch_len, MAX_BACKWARD_COLS,
};
use smelt_kernels::gpu::{GpuBuffer, GpuDevice, KernelArg, LaunchConfig, PtxModule, SimDevice};
use smelt_kernels::{Error, Result};
use std::collections::BTreeSet;

mod common;
use common::{assert_shape_error, random};

const EPS: f32 = 1e-5;
/// Elementwise tolerance, relative to `max(|want|, 1)` (the outputs are of order 1).
const TOL: f32 = 1e-5;
/// Row and column counts run through every kernel; the column counts pick the register
/// variants (384, 768, 1024), float4 warp rows (48, 1000) and scalar warp rows (1, 5).
const ROWS: [usize; 3] = [1, 3, 17];
const COLS: [usize; 7] = [1, 5, 48, 384, 768, 1000, 1024];
/// Block-per-row column counts (scalar and float4), on fewer rows to keep the run short.
const BIG: [(usize, usize); 2] = [(3, 2049), (1, 2052)];

/// Every (rows, cols) case.
fn shapes() -> Vec<(usize, usize)> {
    let mut all: Vec<_> = ROWS.iter().flat_map(|&r| COLS.map(|c| (r, c))).collect();
    all.extend(BIG);
    all
}

/// `|got - want| / max(|want|, 1)` at its largest, asserting it stays within [`TOL`].
fn max_err(what: &str, got: &[f32], want: &[f32]) -> f32 {
    max_err_floor(what, got, want, 1.0)
}

/// `|got - want| / max(|want|, floor)` at its largest, asserting it stays within [`TOL`].
fn max_err_floor(what: &str, got: &[f32], want: &[f32], floor: f32) -> f32 {
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

/// `x` (3 * random + offset), `gamma` (1 + random) and `beta` (random) of one shape.
fn inputs(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    inputs_offset(rows, cols, seed, 0.5)
}

fn inputs_offset(
    rows: usize,
    cols: usize,
    seed: u64,
    offset: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = random(rows * cols, seed)
        .iter()
        .map(|v| 3.0 * v + offset)
        .collect();
    let gamma = random(cols, seed + 1).iter().map(|v| 1.0 + v).collect();
    (x, gamma, random(cols, seed + 2))
}

/// The CPU forward: `(y, mean, rstd)`.
fn cpu_forward(x: &[f32], gamma: &[f32], beta: &[f32], rows: usize, cols: usize) -> [Vec<f32>; 3] {
    let mut y = vec![0.0; rows * cols];
    let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
    let saved = Some((&mut mean[..], &mut rstd[..]));
    let opts = CpuOptions::default();
    layer_norm(x, gamma, beta, &mut y, saved, rows, cols, EPS, &opts).unwrap();
    [y, mean, rstd]
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
    let cu = include_bytes!("../cuda/layernorm.cu");
    let hash = cu.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let first = ln::MODULE.ptx.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!("// source-fnv1a64: {hash:016x}"),
        "layernorm.ptx is stale: python3 kernels/nvrtc.py kernels/cuda/layernorm.cu --out-dir kernels/ptx"
    );
}

/// `(y, mean, rstd)` of the GPU forward.
fn gpu_forward(
    dev: &mut dyn GpuDevice,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    cols: usize,
) -> [Vec<f32>; 3] {
    let [bx, bg, bb] = [x, gamma, beta].map(|v| dev.upload_f32(v).unwrap());
    let out = [nans(dev, rows * cols), nans(dev, rows), nans(dev, rows)];
    let [y, mean, rstd] = out;
    ln::layer_norm(dev, bx, bg, bb, y, mean, rstd, rows, cols, EPS).unwrap();
    out.map(|b| dev.download_f32(b).unwrap())
}

/// Runs the forward on every shape; the largest errors of `(y, mean, rstd)`.
fn forward_cases(dev: &mut dyn GpuDevice) -> [f32; 3] {
    let mut worst = [0.0f32; 3];
    for (seed, (rows, cols)) in shapes().into_iter().enumerate() {
        let (x, gamma, beta) = inputs(rows, cols, 10 * seed as u64);
        let want = cpu_forward(&x, &gamma, &beta, rows, cols);
        let got = gpu_forward(dev, &x, &gamma, &beta, rows, cols);
        for (k, name) in ["y", "mean", "rstd"].iter().enumerate() {
            let what = format!("{name} of {rows} x {cols}");
            worst[k] = worst[k].max(max_err(&what, &got[k], &want[k]));
        }
    }
    worst
}

#[test]
fn forward_matches_cpu() {
    let mut dev = SimDevice::new();
    let worst = forward_cases(&mut dev);
    assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
    println!("forward max error (y, mean, rstd): {worst:?}");
}

/// Around 1000 the mean itself carries an f32 rounding of about 3e-5 that `x - mean` keeps,
/// whatever the summation order: the GPU must be as close to the f64 reference as the CPU.
#[test]
fn forward_keeps_the_variance_under_a_large_offset() {
    let mut dev = SimDevice::new();
    for (seed, (rows, cols)) in [(3, 5), (3, 768), (3, 1000), (1, 2052)]
        .into_iter()
        .enumerate()
    {
        let (x, gamma, beta) = inputs_offset(rows, cols, 10 * seed as u64, 1000.0);
        let mut want = vec![0.0; rows * cols];
        layer_norm_reference(&x, &gamma, &beta, &mut want, None, rows, cols, EPS).unwrap();
        let dist = |got: &[f32]| {
            let d = got.iter().zip(&want).map(|(g, w)| (g - w).abs());
            d.fold(0.0f32, f32::max)
        };
        let cpu = dist(&cpu_forward(&x, &gamma, &beta, rows, cols)[0]);
        let gpu = dist(&gpu_forward(&mut dev, &x, &gamma, &beta, rows, cols)[0]);
        println!("{rows} x {cols} around 1000: max |y - f64| GPU {gpu:e}, CPU {cpu:e}");
        assert!(
            gpu <= (2.0 * cpu).max(TOL),
            "{rows} x {cols}: GPU {gpu}, CPU {cpu}"
        );
    }
    assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
}

/// Runs the residual forward on every shape, checking the sum exactly; the largest errors of
/// `(y, mean, rstd)`.
fn residual_cases(dev: &mut dyn GpuDevice) -> [f32; 3] {
    let mut worst = [0.0f32; 3];
    for (seed, (rows, cols)) in shapes().into_iter().enumerate() {
        let (x, gamma, beta) = inputs(rows, cols, 10 * seed as u64 + 5);
        let residual = random(rows * cols, 10 * seed as u64 + 9);
        let sum: Vec<f32> = x.iter().zip(&residual).map(|(a, b)| a + b).collect();
        let want = cpu_forward(&sum, &gamma, &beta, rows, cols);
        let bx = dev.upload_f32(&x).unwrap();
        let br = dev.upload_f32(&residual).unwrap();
        let bs = nans(dev, rows * cols);
        let bg = dev.upload_f32(&gamma).unwrap();
        let bb = dev.upload_f32(&beta).unwrap();
        let out = [nans(dev, rows * cols), nans(dev, rows), nans(dev, rows)];
        let [y, mean, rstd] = out;
        ln::layer_norm_residual(dev, bx, br, bs, bg, bb, y, mean, rstd, rows, cols, EPS).unwrap();
        assert_eq!(dev.download_f32(bs).unwrap(), sum, "sum of {rows} x {cols}");
        for (k, (buf, name)) in out.iter().zip(["y", "mean", "rstd"]).enumerate() {
            let got = dev.download_f32(*buf).unwrap();
            let what = format!("{name} of {rows} x {cols} with a residual");
            worst[k] = worst[k].max(max_err(&what, &got, &want[k]));
        }
    }
    worst
}

#[test]
fn residual_forward_matches_cpu_on_the_sum() {
    let mut dev = SimDevice::new();
    let worst = residual_cases(&mut dev);
    assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
    println!("residual forward max error (y, mean, rstd): {worst:?}");
}

/// `(dx, dgamma, dbeta)` of the GPU backward, run twice to check the bits repeat.
#[allow(clippy::too_many_arguments)]
fn gpu_backward(
    dev: &mut dyn GpuDevice,
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    rows: usize,
    cols: usize,
) -> [Vec<f32>; 3] {
    let ins = [dy, x, gamma, mean, rstd].map(|v| dev.upload_f32(v).unwrap());
    let [bdy, bx, bg, bm, bs] = ins;
    let scratch = nans(dev, layer_norm_backward_scratch_len(rows, cols));
    let mut runs = Vec::new();
    for _ in 0..2 {
        let outs = [nans(dev, rows * cols), nans(dev, cols), nans(dev, cols)];
        let [dx, dg, db] = outs;
        ln::layer_norm_backward(dev, bdy, bx, bg, bm, bs, dx, dg, db, scratch, rows, cols).unwrap();
        runs.push(outs.map(|b| dev.download_f32(b).unwrap()));
    }
    let second = runs.pop().unwrap();
    let first = runs.pop().unwrap();
    let bits = |v: &[Vec<f32>; 3]| v.iter().flatten().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&first), bits(&second), "{rows} x {cols}: runs differ");
    first
}

/// Runs the backward on every shape, twice each; the largest errors of `(dx, dgamma, dbeta)`.
/// Errors of dgamma and dbeta are relative to `max(|want|, sqrt(rows))`.
fn backward_cases(dev: &mut dyn GpuDevice) -> [f32; 3] {
    let mut worst = [0.0f32; 3];
    // 1100 rows: blocks of three rows and a last one of two (the others have a row per
    // block); the widest row the backward takes.
    let mut cases: Vec<_> = ROWS.iter().flat_map(|&r| COLS.map(|c| (r, c))).collect();
    cases.extend([(1100, 3), (2, MAX_BACKWARD_COLS)]);
    for (seed, (rows, cols)) in cases.into_iter().enumerate() {
        let (x, gamma, beta) = inputs(rows, cols, 10 * seed as u64 + 3);
        let [_, mean, rstd] = cpu_forward(&x, &gamma, &beta, rows, cols);
        let dy = random(rows * cols, 10 * seed as u64 + 7);
        let mut want = [vec![0.0; rows * cols], vec![0.0; cols], vec![0.0; cols]];
        let [dx, dg, db] = &mut want;
        let opts = CpuOptions::default();
        layer_norm_backward(&dy, &x, &gamma, &mean, &rstd, dx, dg, db, rows, cols, &opts).unwrap();
        let got = gpu_backward(dev, &dy, &x, &gamma, &mean, &rstd, rows, cols);
        // dgamma and dbeta add `rows` terms of order 1 and random sign: their typical size is
        // sqrt(rows), and a column that cancels to less keeps the rounding of the big terms.
        let floors = [
            1.0,
            (rows as f32).sqrt().max(1.0),
            (rows as f32).sqrt().max(1.0),
        ];
        for (k, name) in ["dx", "dgamma", "dbeta"].iter().enumerate() {
            let what = format!("{name} of {rows} x {cols}");
            worst[k] = worst[k].max(max_err_floor(&what, &got[k], &want[k], floors[k]));
        }
    }
    worst
}

#[test]
fn backward_matches_cpu_and_repeats() {
    let mut dev = SimDevice::new();
    let worst = backward_cases(&mut dev);
    assert!(dev.warnings().is_empty(), "{:?}", dev.warnings());
    println!("backward max error (dx, dgamma, dbeta): {worst:?}");
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
        "{name}: forward max error (y, mean, rstd) {:?}",
        forward_cases(&mut dev)
    );
    println!(
        "{name}: residual (y, mean, rstd) {:?}",
        residual_cases(&mut dev)
    );
    println!(
        "{name}: backward (dx, dgamma, dbeta) {:?}",
        backward_cases(&mut dev)
    );
}

#[test]
fn backward_of_no_rows_zeroes_the_parameter_gradients() {
    let mut dev = SimDevice::new();
    let got = gpu_backward(&mut dev, &[], &[], &[1.0; 5], &[], &[], 0, 5);
    assert_eq!(got, [vec![], vec![0.0; 5], vec![0.0; 5]]);
}

#[test]
fn bad_shapes_are_errors_naming_the_op() {
    let mut dev = SimDevice::new();
    let (rows, cols) = (3, 8);
    let m = dev.alloc_zeros(4 * rows * cols).unwrap();
    let short = dev.alloc_zeros(4 * (rows * cols - 1)).unwrap();
    let v = dev.alloc_zeros(4 * cols).unwrap();
    let r = [0; 4].map(|_| dev.alloc_zeros(4 * rows).unwrap());
    let y = dev.alloc_zeros(4 * rows * cols).unwrap();
    let d = &mut dev;
    let err = ln::layer_norm(d, short, v, v, y, r[0], r[1], rows, cols, EPS);
    assert_shape_error(
        err,
        "gpu_layer_norm",
        &["x holds 23 f32 values", "needs 24"],
    );
    let err = ln::layer_norm(d, m, v, v, y, r[0], r[1], rows, 0, EPS);
    assert_shape_error(err, "gpu_layer_norm", &["3 x 0"]);
    let y2 = d.alloc_zeros(4 * rows * cols).unwrap();
    let err = ln::layer_norm_residual(d, m, short, y, v, v, y2, r[0], r[1], rows, cols, EPS);
    assert_shape_error(err, "gpu_layer_norm_residual", &["residual holds 23"]);
    let scratch = d.alloc_zeros(4).unwrap();
    let err = ln::layer_norm_backward(d, m, m, v, r[0], r[1], y, v, r[2], scratch, rows, cols);
    assert_shape_error(
        err,
        "gpu_layer_norm_backward",
        &["dbeta holds 3", "needs 8"],
    );
    let err = ln::layer_norm_backward(d, m, m, v, r[0], r[1], y, v, v, scratch, rows, cols);
    assert_shape_error(err, "gpu_layer_norm_backward", &["scratch holds 1"]);

    let err = ln::layer_norm(d, m, v, v, m, r[0], r[1], rows, cols, EPS).unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err:?}");
    assert!(
        err.to_string().contains("y and x are the same buffer"),
        "{err}"
    );

    let wide = MAX_BACKWARD_COLS + 1;
    let big = d.alloc_zeros(4 * wide * 2).unwrap();
    let err = ln::layer_norm_backward(d, big, big, big, big, big, big, big, big, big, 1, wide);
    let err = err.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("gpu_layer_norm_backward:"),
        "{err}"
    );
}

#[test]
fn every_kernel_runs() {
    let mut dev = Recorder::default();
    for cols in [5, 48, 384, 768, 1024, 2049, 2052] {
        let (x, gamma, beta) = inputs(1, cols, cols as u64);
        let [bx, bg, bb] = [&x, &gamma, &beta].map(|v| dev.upload_f32(v).unwrap());
        let out = [0; 4].map(|_| dev.alloc_zeros(4 * cols).unwrap());
        let [y, sum, mean, rstd] = out;
        ln::layer_norm(&mut dev, bx, bg, bb, y, mean, rstd, 1, cols, EPS).unwrap();
        ln::layer_norm_residual(&mut dev, bx, bx, sum, bg, bb, y, mean, rstd, 1, cols, EPS)
            .unwrap();
        if cols < 100 {
            let scratch = dev.alloc_zeros(4 * layer_norm_backward_scratch_len(1, cols));
            let [dx, dg, db] = [0; 3].map(|_| dev.alloc_zeros(4 * cols).unwrap());
            ln::layer_norm_backward(
                &mut dev,
                bb,
                bx,
                bg,
                mean,
                rstd,
                dx,
                dg,
                db,
                scratch.unwrap(),
                1,
                cols,
            )
            .unwrap();
        }
    }
    assert_eq!(dev.launched, entries(ln::MODULE));
}

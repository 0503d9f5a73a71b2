//! Layer norm cases: the GPU forward, fused residual forward and backward against the CPU
//! kernels on any device, and the shapes that cover every kernel variant (register rows of
//! 384/768/1024, warp and block rows, float4 and scalar accesses, backward blocks of one and
//! several rows).

use super::{download, entries, max_err, nans, upload, Recorder, TOL};
use crate::common::random;
use smelt_kernels::cpu::layernorm::{layer_norm, layer_norm_backward, layer_norm_reference};
use smelt_kernels::cpu::CpuOptions;
use smelt_kernels::gpu::layernorm::{
    self as ln, layer_norm_backward_scratch_len, MAX_BACKWARD_COLS,
};
use smelt_kernels::gpu::GpuDevice;

/// The epsilon of every case.
pub const EPS: f32 = 1e-5;
/// Row and column counts run through every kernel; the column counts pick the register
/// variants (384, 768, 1024), float4 warp rows (48, 1000) and scalar warp rows (1, 5).
const ROWS: [usize; 3] = [1, 3, 17];
const COLS: [usize; 7] = [1, 5, 48, 384, 768, 1000, 1024];
/// Block-per-row column counts (scalar and float4), on fewer rows to keep the run short.
const BIG: [(usize, usize); 2] = [(3, 2049), (1, 2052)];

/// Every forward variant: `ROWS x COLS` and the block-per-row shapes.
pub fn shapes() -> Vec<(usize, usize)> {
    let mut all = grid();
    all.extend(BIG);
    all
}

/// Every backward variant: `ROWS x COLS`, 1100 rows (blocks of three rows and a last one of
/// two; the others have a row per block) and the widest row the backward takes.
pub fn backward_shapes() -> Vec<(usize, usize)> {
    let mut all = grid();
    all.extend([(1100, 3), (2, MAX_BACKWARD_COLS)]);
    all
}

/// `ROWS x COLS`.
fn grid() -> Vec<(usize, usize)> {
    ROWS.iter().flat_map(|&r| COLS.map(|c| (r, c))).collect()
}

/// `x` (3 * random + offset), `gamma` (1 + random) and `beta` (random) of one shape.
fn inputs(rows: usize, cols: usize, seed: u64, offset: f32) -> [Vec<f32>; 3] {
    let x = random(rows * cols, seed)
        .iter()
        .map(|v| 3.0 * v + offset)
        .collect();
    let gamma = random(cols, seed + 1).iter().map(|v| 1.0 + v).collect();
    [x, gamma, random(cols, seed + 2)]
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

/// `(y, mean, rstd)` of the GPU forward.
fn gpu_forward(
    dev: &mut dyn GpuDevice,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    cols: usize,
) -> [Vec<f32>; 3] {
    let [bx, bg, bb] = [x, gamma, beta].map(|v| upload(dev, v));
    let out = [nans(dev, rows * cols), nans(dev, rows), nans(dev, rows)];
    let [y, mean, rstd] = out;
    ln::layer_norm(dev, bx, bg, bb, y, mean, rstd, rows, cols, EPS).unwrap();
    out.map(|b| download(dev, b))
}

/// The forward on every shape against the CPU; prints the largest errors of
/// `(y, mean, rstd)`.
pub fn forward(dev: &mut dyn GpuDevice, shapes: &[(usize, usize)]) {
    let mut worst = [0.0f32; 3];
    for (seed, &(rows, cols)) in shapes.iter().enumerate() {
        let [x, gamma, beta] = inputs(rows, cols, 10 * seed as u64, 0.5);
        let want = cpu_forward(&x, &gamma, &beta, rows, cols);
        let got = gpu_forward(dev, &x, &gamma, &beta, rows, cols);
        for (k, name) in ["y", "mean", "rstd"].iter().enumerate() {
            let what = format!("{name} of {rows} x {cols}");
            worst[k] = worst[k].max(max_err(&what, &got[k], &want[k], 1.0));
        }
    }
    println!(
        "{}: layer norm forward max error (y, mean, rstd): {worst:?}",
        dev.name()
    );
}

/// Around 1000 the mean itself carries an f32 rounding of about 3e-5 that `x - mean` keeps,
/// whatever the summation order: the GPU must be as close to the f64 reference as the CPU.
pub fn large_offset(dev: &mut dyn GpuDevice) {
    for (seed, (rows, cols)) in [(3, 5), (3, 768), (3, 1000), (1, 2052)]
        .into_iter()
        .enumerate()
    {
        let [x, gamma, beta] = inputs(rows, cols, 10 * seed as u64, 1000.0);
        let mut want = vec![0.0; rows * cols];
        layer_norm_reference(&x, &gamma, &beta, &mut want, None, rows, cols, EPS).unwrap();
        let dist = |got: &[f32]| {
            let d = got.iter().zip(&want).map(|(g, w)| (g - w).abs());
            d.fold(0.0f32, f32::max)
        };
        let cpu = dist(&cpu_forward(&x, &gamma, &beta, rows, cols)[0]);
        let gpu = dist(&gpu_forward(dev, &x, &gamma, &beta, rows, cols)[0]);
        println!(
            "{}: {rows} x {cols} around 1000: max |y - f64| GPU {gpu:e}, CPU {cpu:e}",
            dev.name()
        );
        assert!(
            gpu <= (2.0 * cpu).max(TOL),
            "{rows} x {cols}: GPU {gpu}, CPU {cpu}"
        );
    }
}

/// The residual forward on every shape against the CPU forward of the sum, checking the sum
/// exactly; prints the largest errors of `(y, mean, rstd)`.
pub fn residual_forward(dev: &mut dyn GpuDevice, shapes: &[(usize, usize)]) {
    let mut worst = [0.0f32; 3];
    for (seed, &(rows, cols)) in shapes.iter().enumerate() {
        let [x, gamma, beta] = inputs(rows, cols, 10 * seed as u64 + 5, 0.5);
        let residual = random(rows * cols, 10 * seed as u64 + 9);
        let sum: Vec<f32> = x.iter().zip(&residual).map(|(a, b)| a + b).collect();
        let want = cpu_forward(&sum, &gamma, &beta, rows, cols);
        let [bx, br, bg, bb] = [&x, &residual, &gamma, &beta].map(|v| upload(dev, v));
        let bs = nans(dev, rows * cols);
        let out = [nans(dev, rows * cols), nans(dev, rows), nans(dev, rows)];
        let [y, mean, rstd] = out;
        ln::layer_norm_residual(dev, bx, br, bs, bg, bb, y, mean, rstd, rows, cols, EPS).unwrap();
        assert_eq!(download(dev, bs), sum, "sum of {rows} x {cols}");
        for (k, (buf, name)) in out.iter().zip(["y", "mean", "rstd"]).enumerate() {
            let got = download(dev, *buf);
            let what = format!("{name} of {rows} x {cols} with a residual");
            worst[k] = worst[k].max(max_err(&what, &got, &want[k], 1.0));
        }
    }
    println!(
        "{}: layer norm residual forward max error (y, mean, rstd): {worst:?}",
        dev.name()
    );
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
    let [bdy, bx, bg, bm, bs] = [dy, x, gamma, mean, rstd].map(|v| upload(dev, v));
    let scratch = nans(dev, layer_norm_backward_scratch_len(rows, cols));
    let mut runs = Vec::new();
    for _ in 0..2 {
        let outs = [nans(dev, rows * cols), nans(dev, cols), nans(dev, cols)];
        let [dx, dg, db] = outs;
        ln::layer_norm_backward(dev, bdy, bx, bg, bm, bs, dx, dg, db, scratch, rows, cols).unwrap();
        runs.push(outs.map(|b| download(dev, b)));
    }
    let second = runs.pop().unwrap();
    let first = runs.pop().unwrap();
    let bits = |v: &[Vec<f32>; 3]| v.iter().flatten().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&first), bits(&second), "{rows} x {cols}: runs differ");
    first
}

/// The backward on every shape against the CPU, twice each (the bits must repeat); prints
/// the largest errors of `(dx, dgamma, dbeta)`. Errors of dgamma and dbeta are relative to
/// `max(|want|, sqrt(rows))`.
pub fn backward(dev: &mut dyn GpuDevice, shapes: &[(usize, usize)]) {
    let mut worst = [0.0f32; 3];
    for (seed, &(rows, cols)) in shapes.iter().enumerate() {
        let [x, gamma, beta] = inputs(rows, cols, 10 * seed as u64 + 3, 0.5);
        let [_, mean, rstd] = cpu_forward(&x, &gamma, &beta, rows, cols);
        let dy = random(rows * cols, 10 * seed as u64 + 7);
        let mut want = [vec![0.0; rows * cols], vec![0.0; cols], vec![0.0; cols]];
        let [dx, dg, db] = &mut want;
        let opts = CpuOptions::default();
        layer_norm_backward(&dy, &x, &gamma, &mean, &rstd, dx, dg, db, rows, cols, &opts).unwrap();
        let got = gpu_backward(dev, &dy, &x, &gamma, &mean, &rstd, rows, cols);
        // dgamma and dbeta add `rows` terms of order 1 and random sign: their typical size is
        // sqrt(rows), and a column that cancels to less keeps the rounding of the big terms.
        let sums = (rows as f32).sqrt().max(1.0);
        for (k, (name, floor)) in [("dx", 1.0), ("dgamma", sums), ("dbeta", sums)]
            .into_iter()
            .enumerate()
        {
            let what = format!("{name} of {rows} x {cols}");
            worst[k] = worst[k].max(max_err(&what, &got[k], &want[k], floor));
        }
    }
    println!(
        "{}: layer norm backward max error (dx, dgamma, dbeta): {worst:?}",
        dev.name()
    );
}

/// The backward of no rows still writes the parameter gradients: zeros.
pub fn backward_of_no_rows(dev: &mut dyn GpuDevice) {
    let got = gpu_backward(dev, &[], &[], &[1.0; 5], &[], &[], 0, 5);
    assert_eq!(got, [vec![], vec![0.0; 5], vec![0.0; 5]]);
}

/// Launches every kernel of the module (the forwards on every variant, the backward on both
/// widths) and checks none is left out.
pub fn every_kernel_runs(dev: &mut dyn GpuDevice) {
    let mut dev = Recorder::new(dev);
    let dev = &mut dev;
    for cols in [5, 48, 384, 768, 1024, 2049, 2052] {
        let [bx, bg, bb] = inputs(1, cols, cols as u64, 0.5).map(|v| upload(dev, &v));
        let [y, sum, mean, rstd] = [0; 4].map(|_| dev.alloc_zeros(4 * cols).unwrap());
        ln::layer_norm(dev, bx, bg, bb, y, mean, rstd, 1, cols, EPS).unwrap();
        ln::layer_norm_residual(dev, bx, bx, sum, bg, bb, y, mean, rstd, 1, cols, EPS).unwrap();
        if cols < 100 {
            let scratch_len = layer_norm_backward_scratch_len(1, cols);
            let scratch = dev.alloc_zeros(4 * scratch_len).unwrap();
            let [dx, dg, db] = [0; 3].map(|_| dev.alloc_zeros(4 * cols).unwrap());
            ln::layer_norm_backward(dev, bb, bx, bg, mean, rstd, dx, dg, db, scratch, 1, cols)
                .unwrap();
        }
    }
    assert_eq!(dev.launched, entries(ln::MODULE));
}

//! Layer norm cases: the GPU forward, fused residual forward and backward against the CPU
//! kernels on any device, with the row matrices stored as f32 or as bf16 ([`Rows`]), and the
//! shapes that cover every kernel variant (register rows of 384/768/1024, warp and block rows,
//! 4-wide and scalar accesses, backward blocks of one and several rows).

use super::{
    download, download_as, entries, max_err, nans, round_bf16, upload, upload_as, Recorder, TOL,
};
use crate::common::{random, worst};
use smelt_kernels::cpu::layernorm::{layer_norm, layer_norm_backward, layer_norm_reference};
use smelt_kernels::cpu::CpuOptions;
use smelt_kernels::gpu::layernorm::{
    self as ln, layer_norm_backward_scratch_len, MAX_BACKWARD_COLS, MAX_BACKWARD_COLS_W1,
};
use smelt_kernels::gpu::{GpuBuffer, GpuDevice};

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
/// two; the others have a row per block), the widest rows kept in registers, 4-wide and scalar
/// (odd), and rows past them (the `_wide` kernels, one row per block and two).
pub fn backward_shapes() -> Vec<(usize, usize)> {
    let mut all = grid();
    all.extend([(1100, 3)]);
    all.extend(WIDEST);
    all.extend(WIDER);
    all.push(WIDER_ROWS);
    all
}

/// The widest rows the backward keeps in registers: 4-wide, and scalar (odd).
const WIDEST: [(usize, usize); 2] = [(2, MAX_BACKWARD_COLS), (2, MAX_BACKWARD_COLS_W1 - 1)];
/// Rows past [`WIDEST`], for the `_wide` kernels: 4-wide, and scalar (odd).
const WIDER: [(usize, usize); 2] = [(2, MAX_BACKWARD_COLS + 4), (3, MAX_BACKWARD_COLS_W1 + 1)];
/// A `_wide` backward of 514 rows: blocks of two rows, whose partial sums add up across
/// rows (the scalar kernel; the 4-wide one is the same template).
const WIDER_ROWS: (usize, usize) = (514, MAX_BACKWARD_COLS_W1 + 1);

/// `ROWS x COLS`.
fn grid() -> Vec<(usize, usize)> {
    ROWS.iter().flat_map(|&r| COLS.map(|c| (r, c))).collect()
}

/// How a case stores the row matrices (`x`, `residual`, `sum`, `y`, `dy`, `dx`), hence which
/// launchers it runs: the f32 ones or their `_bf16` twins. The CPU reference always runs in f32
/// on the inputs as stored (rounded to bf16 for [`Rows::Bf16`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// f32 rows: [`ln::layer_norm`], [`ln::layer_norm_residual`], [`ln::layer_norm_backward`].
    F32,
    /// bf16 rows: [`ln::layer_norm_bf16`], [`ln::layer_norm_residual_bf16`],
    /// [`ln::layer_norm_backward_bf16`].
    Bf16,
}

impl Rows {
    /// Both storages.
    pub const ALL: [Rows; 2] = [Rows::F32, Rows::Bf16];

    /// `values` as this storage holds them.
    fn round(self, values: &[f32]) -> Vec<f32> {
        match self {
            Rows::F32 => values.to_vec(),
            Rows::Bf16 => values.iter().map(|&v| round_bf16(v)).collect(),
        }
    }

    /// A device buffer holding `values` (rounded to this storage).
    fn upload(self, dev: &mut dyn GpuDevice, values: &[f32]) -> GpuBuffer {
        upload_as(dev, values, self == Rows::Bf16)
    }

    /// The values of a device buffer, once every launch finished.
    fn download(self, dev: &mut dyn GpuDevice, buf: GpuBuffer) -> Vec<f32> {
        download_as(dev, buf, self == Rows::Bf16)
    }

    /// A device buffer of `n` NaNs in this storage.
    fn nans(self, dev: &mut dyn GpuDevice, n: usize) -> GpuBuffer {
        self.upload(dev, &vec![f32::NAN; n])
    }

    /// The largest error of an output stored in this storage, as [`max_err`] measures it. For
    /// bf16, every `got` must be what rounding to bf16 makes of some value within [`TOL`]
    /// (relative to `max(|want|, floor)`) of `want`: a kernel as accurate in f32 as the f32
    /// one, then rounded to nearest even. That bounds the error by `2^-8 |want|` plus [`TOL`].
    fn max_err(self, what: &str, got: &[f32], want: &[f32], floor: f32) -> f32 {
        if self == Rows::F32 {
            return max_err(what, got, want, floor);
        }
        assert_eq!(got.len(), want.len(), "{what}: length");
        let mut worst = 0.0f32;
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let scale = w.abs().max(floor);
            let [lo, hi] = [w - TOL * scale, w + TOL * scale].map(round_bf16);
            assert!(
                lo <= g && g <= hi,
                "{what}[{i}]: got {g}, want {w} (bf16 {lo}..={hi})"
            );
            worst = worst.max((g - w).abs() / scale);
        }
        worst
    }
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

/// `(y, mean, rstd)` of the GPU forward on `x` stored as `kind`.
fn gpu_forward(
    dev: &mut dyn GpuDevice,
    kind: Rows,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    cols: usize,
) -> [Vec<f32>; 3] {
    let bx = kind.upload(dev, x);
    let [bg, bb] = [gamma, beta].map(|v| upload(dev, v));
    let out = [
        kind.nans(dev, rows * cols),
        nans(dev, rows),
        nans(dev, rows),
    ];
    let [y, mean, rstd] = out;
    let run = match kind {
        Rows::F32 => ln::layer_norm,
        Rows::Bf16 => ln::layer_norm_bf16,
    };
    run(dev, bx, bg, bb, y, mean, rstd, rows, cols, EPS).unwrap();
    [
        kind.download(dev, y),
        download(dev, mean),
        download(dev, rstd),
    ]
}

/// The forward on every shape against the CPU forward of the stored inputs; prints the
/// largest errors of `(y, mean, rstd)`.
pub fn forward(dev: &mut dyn GpuDevice, kind: Rows, shapes: &[(usize, usize)]) {
    let mut worst = [0.0f32; 3];
    for (seed, &(rows, cols)) in shapes.iter().enumerate() {
        let [x, gamma, beta] = inputs(rows, cols, 10 * seed as u64, 0.5);
        let x = kind.round(&x);
        let want = cpu_forward(&x, &gamma, &beta, rows, cols);
        let got = gpu_forward(dev, kind, &x, &gamma, &beta, rows, cols);
        for (k, name) in ["y", "mean", "rstd"].iter().enumerate() {
            let what = format!("{name} of {rows} x {cols} ({kind:?})");
            let err = match k {
                0 => kind.max_err(&what, &got[k], &want[k], 1.0),
                _ => max_err(&what, &got[k], &want[k], 1.0),
            };
            worst[k] = worst[k].max(err);
        }
    }
    println!(
        "{}: layer norm forward ({kind:?} rows) max error (y, mean, rstd): {worst:?}",
        dev.name()
    );
}

/// Around 1000 an f32 mean carries a rounding of an ulp or so (6e-5) that `x - mean` keeps,
/// whatever the summation order: GPU and CPU (which both correct `sum(x) / cols` by
/// `sum(x - mean) / cols`) must be within two ulps of the mean (times `rstd * |gamma|`) of the
/// f64 reference, and so not lose the variance to cancellation as `E[x^2] - mean^2` would (f32
/// rows; bf16 rows around 1000 are 4 apart).
pub fn large_offset(dev: &mut dyn GpuDevice) {
    for (seed, (rows, cols)) in [(3, 5), (3, 768), (3, 1000), (1, 2052)]
        .into_iter()
        .enumerate()
    {
        let [x, gamma, beta] = inputs(rows, cols, 10 * seed as u64, 1000.0);
        let mut want = vec![0.0; rows * cols];
        let (mut mean, mut rstd) = (vec![0.0; rows], vec![0.0; rows]);
        let saved = Some((&mut mean[..], &mut rstd[..]));
        layer_norm_reference(&x, &gamma, &beta, &mut want, saved, rows, cols, EPS).unwrap();
        let dist = |got: &[f32]| worst(got.iter().zip(&want).map(|(g, w)| (g - w).abs()));
        let cpu = dist(&cpu_forward(&x, &gamma, &beta, rows, cols)[0]);
        let gpu = dist(&gpu_forward(dev, Rows::F32, &x, &gamma, &beta, rows, cols)[0]);
        let max_gamma = gamma.iter().fold(0.0f32, |a, g| a.max(g.abs()));
        let bound = (0..rows)
            .map(|r| {
                let m = mean[r].abs();
                let ulp = f32::from_bits(m.to_bits() + 1) - m;
                TOL + 2.0 * ulp * rstd[r] * max_gamma
            })
            .fold(TOL, f32::max);
        println!(
            "{}: {rows} x {cols} around 1000: max |y - f64| GPU {gpu:e}, CPU {cpu:e}, bound {bound:e}",
            dev.name()
        );
        assert!(
            gpu <= bound && cpu <= bound,
            "{rows} x {cols}: GPU {gpu}, CPU {cpu}, bound {bound}"
        );
    }
}

/// Constant rows normalise to exactly `beta` with BERT's eps of 1e-12, on every forward
/// kernel (shapes of the warp, register and block variants): without the corrected mean, the
/// ulp by which `sum(x) / cols` misses the value became a variance of ulp^2, whose `rstd` of
/// ~1e6 turned the rounding into outputs of -0.1 and more.
pub fn constant_rows(dev: &mut dyn GpuDevice) {
    for (rows, cols) in [(3, 5), (3, 384), (3, 768), (3, 1000), (3, 1024), (3, 2052)] {
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| [1.7f32, 0.1, -3e5][i / cols])
            .collect();
        let (gamma, beta) = (random(cols, 7), random(cols, 8));
        let bx = upload(dev, &x);
        let [bg, bb] = [&gamma, &beta].map(|v| upload(dev, v));
        let [y, mean, rstd] = [rows * cols, rows, rows].map(|n| nans(dev, n));
        ln::layer_norm(dev, bx, bg, bb, y, mean, rstd, rows, cols, 1e-12).unwrap();
        let got = download(dev, y);
        for (i, (g, want)) in got.iter().zip(beta.iter().cycle()).enumerate() {
            assert!(
                (g - want).abs() <= 1e-6,
                "{rows} x {cols}: y[{i}] = {g}, want beta = {want}"
            );
        }
    }
}

/// `(sum, y, mean, rstd)` of the GPU residual forward on `x` and `residual` stored as `kind`.
#[allow(clippy::too_many_arguments)]
fn gpu_residual_forward(
    dev: &mut dyn GpuDevice,
    kind: Rows,
    x: &[f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    cols: usize,
) -> [Vec<f32>; 4] {
    let [bx, br] = [x, residual].map(|v| kind.upload(dev, v));
    let [bg, bb] = [gamma, beta].map(|v| upload(dev, v));
    let [sum, y] = [0; 2].map(|_| kind.nans(dev, rows * cols));
    let [mean, rstd] = [0; 2].map(|_| nans(dev, rows));
    let run = match kind {
        Rows::F32 => ln::layer_norm_residual,
        Rows::Bf16 => ln::layer_norm_residual_bf16,
    };
    run(dev, bx, br, sum, bg, bb, y, mean, rstd, rows, cols, EPS).unwrap();
    let [sum, y] = [sum, y].map(|b| kind.download(dev, b));
    [sum, y, download(dev, mean), download(dev, rstd)]
}

/// The residual forward on every shape against the CPU forward of the sum (added in f32 from
/// the stored inputs and stored), checking the sum exactly; prints the largest errors of
/// `(y, mean, rstd)`.
pub fn residual_forward(dev: &mut dyn GpuDevice, kind: Rows, shapes: &[(usize, usize)]) {
    let mut worst = [0.0f32; 3];
    for (seed, &(rows, cols)) in shapes.iter().enumerate() {
        let [x, gamma, beta] = inputs(rows, cols, 10 * seed as u64 + 5, 0.5);
        let x = kind.round(&x);
        let residual = kind.round(&random(rows * cols, 10 * seed as u64 + 9));
        let sum: Vec<f32> = x.iter().zip(&residual).map(|(a, b)| a + b).collect();
        let sum = kind.round(&sum);
        let want = cpu_forward(&sum, &gamma, &beta, rows, cols);
        let [got_sum, got @ ..] =
            gpu_residual_forward(dev, kind, &x, &residual, &gamma, &beta, rows, cols);
        assert_eq!(got_sum, sum, "sum of {rows} x {cols} ({kind:?})");
        for (k, name) in ["y", "mean", "rstd"].iter().enumerate() {
            let what = format!("{name} of {rows} x {cols} with a residual ({kind:?})");
            let err = match k {
                0 => kind.max_err(&what, &got[k], &want[k], 1.0),
                _ => max_err(&what, &got[k], &want[k], 1.0),
            };
            worst[k] = worst[k].max(err);
        }
    }
    println!(
        "{}: layer norm residual forward ({kind:?} rows) max error (y, mean, rstd): {worst:?}",
        dev.name()
    );
}

/// `(dx, dgamma, dbeta)` of the GPU backward on `dy` and `x` stored as `kind`, run twice to
/// check the bits repeat.
#[allow(clippy::too_many_arguments)]
fn gpu_backward(
    dev: &mut dyn GpuDevice,
    kind: Rows,
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    rows: usize,
    cols: usize,
) -> [Vec<f32>; 3] {
    let [bdy, bx] = [dy, x].map(|v| kind.upload(dev, v));
    let [bg, bm, bs] = [gamma, mean, rstd].map(|v| upload(dev, v));
    let scratch = nans(dev, layer_norm_backward_scratch_len(rows, cols));
    let run = match kind {
        Rows::F32 => ln::layer_norm_backward,
        Rows::Bf16 => ln::layer_norm_backward_bf16,
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let [dx, dg, db] = [
            kind.nans(dev, rows * cols),
            nans(dev, cols),
            nans(dev, cols),
        ];
        run(dev, bdy, bx, bg, bm, bs, dx, dg, db, scratch, rows, cols).unwrap();
        runs.push([kind.download(dev, dx), download(dev, dg), download(dev, db)]);
    }
    let second = runs.pop().unwrap();
    let first = runs.pop().unwrap();
    let bits = |v: &[Vec<f32>; 3]| v.iter().flatten().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&first), bits(&second), "{rows} x {cols}: runs differ");
    first
}

/// The backward on every shape against the CPU backward of the stored inputs, twice each (the
/// bits must repeat); prints the largest errors of `(dx, dgamma, dbeta)`. Errors of dgamma and
/// dbeta are relative to `max(|want|, sqrt(rows))`.
pub fn backward(dev: &mut dyn GpuDevice, kind: Rows, shapes: &[(usize, usize)]) {
    let mut worst = [0.0f32; 3];
    for (seed, &(rows, cols)) in shapes.iter().enumerate() {
        let [x, gamma, beta] = inputs(rows, cols, 10 * seed as u64 + 3, 0.5);
        let x = kind.round(&x);
        let [_, mean, rstd] = cpu_forward(&x, &gamma, &beta, rows, cols);
        let dy = kind.round(&random(rows * cols, 10 * seed as u64 + 7));
        let mut want = [vec![0.0; rows * cols], vec![0.0; cols], vec![0.0; cols]];
        let [dx, dg, db] = &mut want;
        let opts = CpuOptions::default();
        layer_norm_backward(&dy, &x, &gamma, &mean, &rstd, dx, dg, db, rows, cols, &opts).unwrap();
        let got = gpu_backward(dev, kind, &dy, &x, &gamma, &mean, &rstd, rows, cols);
        // dgamma and dbeta add `rows` terms of order 1 and random sign: their typical size is
        // sqrt(rows), and a column that cancels to less keeps the rounding of the big terms.
        let sums = (rows as f32).sqrt().max(1.0);
        let what = |name| format!("{name} of {rows} x {cols} ({kind:?})");
        let errs = [
            kind.max_err(&what("dx"), &got[0], &want[0], 1.0),
            max_err(&what("dgamma"), &got[1], &want[1], sums),
            max_err(&what("dbeta"), &got[2], &want[2], sums),
        ];
        for (w, e) in worst.iter_mut().zip(errs) {
            *w = w.max(e);
        }
    }
    println!(
        "{}: layer norm backward ({kind:?} rows) max error (dx, dgamma, dbeta): {worst:?}",
        dev.name()
    );
}

/// The backward of no rows still writes the parameter gradients: zeros.
pub fn backward_of_no_rows(dev: &mut dyn GpuDevice, kind: Rows) {
    let got = gpu_backward(dev, kind, &[], &[], &[1.0; 5], &[], &[], 0, 5);
    assert_eq!(got, [vec![], vec![0.0; 5], vec![0.0; 5]]);
}

/// Launches every kernel of the module (the forwards on every variant, the backward on both
/// access widths, in registers and wide, for both storages) and checks none is left out.
pub fn every_kernel_runs(dev: &mut dyn GpuDevice) {
    let mut dev = Recorder::new(dev);
    let dev = &mut dev;
    for kind in Rows::ALL {
        for cols in [5, 48, 384, 768, 1024, 2049, 2052] {
            let [x, gamma, beta] = inputs(1, cols, cols as u64, 0.5);
            let [_, mean, rstd] = gpu_forward(dev, kind, &x, &gamma, &beta, 1, cols);
            gpu_residual_forward(dev, kind, &x, &x, &gamma, &beta, 1, cols);
            if cols < 100 {
                gpu_backward(dev, kind, &beta, &x, &gamma, &mean, &rstd, 1, cols);
            }
        }
        for (rows, cols) in WIDER {
            let [x, gamma, beta] = inputs(rows, cols, cols as u64, 0.5);
            let [_, mean, rstd] = gpu_forward(dev, kind, &x, &gamma, &beta, rows, cols);
            gpu_backward(dev, kind, &x, &x, &gamma, &mean, &rstd, rows, cols);
        }
    }
    assert_eq!(dev.launched, entries(ln::MODULE));
}

/// The forward and the backward give the same bits on `dev` as on `other` (the launchers'
/// claim that the statistics and column sums do not depend on the device: every step is a
/// correctly rounded operation in a fixed order, no `.approx` instruction), on every shape of
/// [`shapes`], stored as `kind`.
pub fn same_bits_on_two_devices(dev: &mut dyn GpuDevice, other: &mut dyn GpuDevice, kind: Rows) {
    let bits = |v: &[Vec<f32>; 3]| v.iter().flatten().map(|f| f.to_bits()).collect::<Vec<_>>();
    for (seed, (rows, cols)) in shapes().into_iter().enumerate() {
        let [x, gamma, beta] = inputs(rows, cols, 10 * seed as u64 + 5, 0.5);
        let x = kind.round(&x);
        let what = format!(
            "{rows} x {cols} ({kind:?}) on {} and {}",
            dev.name(),
            other.name()
        );
        let fwd = gpu_forward(dev, kind, &x, &gamma, &beta, rows, cols);
        let fwd_other = gpu_forward(other, kind, &x, &gamma, &beta, rows, cols);
        assert_eq!(bits(&fwd), bits(&fwd_other), "forward of {what}");
        let [_, mean, rstd] = &fwd;
        let dy = kind.round(&random(rows * cols, 10 * seed as u64 + 9));
        let bwd = gpu_backward(dev, kind, &dy, &x, &gamma, mean, rstd, rows, cols);
        let bwd_other = gpu_backward(other, kind, &dy, &x, &gamma, mean, rstd, rows, cols);
        assert_eq!(bits(&bwd), bits(&bwd_other), "backward of {what}");
    }
}

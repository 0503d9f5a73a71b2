//! Pointwise cases: the GPU softmax (forward with and without a mask, backward), GELU
//! (forward, backward, in place) and bias (+ residual) add against the CPU kernels on any
//! device, and the shapes that cover every kernel variant (warp and block rows, float4 and
//! scalar accesses, vector bodies with scalar tails).

use super::{download, entries, max_err, nans, upload, Recorder};
use crate::common::random;
use smelt_kernels::cpu::activation::{gelu as cpu_gelu, gelu_backward as cpu_gelu_backward};
use smelt_kernels::cpu::softmax::{self as cpu_softmax, softmax_backward as cpu_softmax_backward};
use smelt_kernels::cpu::CpuOptions;
use smelt_kernels::gpu::pointwise::{self as pw, Mask};
use smelt_kernels::gpu::{GpuDevice, KernelArg, LaunchConfig};

const ROWS: [usize; 3] = [1, 3, 17];
/// Warp-per-row column counts: float4 (48, 384, 768, 1000) and scalar (1, 5).
const COLS: [usize; 6] = [1, 5, 48, 384, 768, 1000];
/// Block-per-row column counts (scalar and float4), on fewer rows.
const BIG: [(usize, usize); 2] = [(3, 2049), (1, 2052)];
/// Element counts of the elementwise kernels: tails of 1 and 3, none, several blocks.
pub const LENS: [usize; 6] = [1, 5, 48, 1000, 1003, 4099];

/// Every row-kernel variant: `ROWS x COLS` and the block-per-row shapes.
pub fn shapes() -> Vec<(usize, usize)> {
    let mut all: Vec<_> = ROWS.iter().flat_map(|&r| COLS.map(|c| (r, c))).collect();
    all.extend(BIG);
    all
}

/// [`shapes`] and one of more rows than grid y holds, so that blocks walk several rows.
pub fn bias_shapes() -> Vec<(usize, usize)> {
    let mut all = shapes();
    all.push((65537, 1));
    all
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

/// The softmax on every shape, without and with a mask (shared by pairs of rows), against
/// the CPU; prints the largest errors.
pub fn softmax(dev: &mut dyn GpuDevice, shapes: &[(usize, usize)]) {
    let opts = CpuOptions::default();
    let mut worst = [0.0f32; 2];
    for (seed, &(rows, cols)) in shapes.iter().enumerate() {
        let seed = 10 * seed as u64;
        let x: Vec<f32> = random(rows * cols, seed).iter().map(|v| 8.0 * v).collect();
        let scale = [1.0, 0.125, -0.5][seed as usize % 3];
        let repeat = 2;
        let mask = mask_values(rows.div_ceil(repeat), cols, seed + 1);
        let (bx, bm) = (upload(dev, &x), upload(dev, &mask));
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
            let got = download(dev, y);
            let what = format!("softmax of {rows} x {cols}, scale {scale}, mask {masked}");
            // Entries far below the row maximum are tiny: compare them against 1 / cols.
            worst[k] = worst[k].max(max_err(&what, &got, &want, 1.0 / cols as f32));
            if masked && rows > repeat {
                let masked_rows = &got[repeat * cols..(2 * repeat).min(rows) * cols];
                assert!(masked_rows.iter().all(|&v| v == 0.0), "{what}: masked rows");
            }
        }
    }
    println!(
        "{}: softmax max error (no mask, mask): {worst:?}",
        dev.name()
    );
}

/// The softmax backward on every shape against the CPU; prints the largest error.
pub fn softmax_backward(dev: &mut dyn GpuDevice, shapes: &[(usize, usize)]) {
    let opts = CpuOptions::default();
    let mut worst = 0.0f32;
    for (seed, &(rows, cols)) in shapes.iter().enumerate() {
        let seed = 10 * seed as u64;
        let x = random(rows * cols, seed);
        let mut y = vec![0.0; rows * cols];
        cpu_softmax::softmax(&x, &mut y, rows, cols, 1.0, None, &opts).unwrap();
        let dy = random(rows * cols, seed + 1);
        let scale = 0.125;
        let mut want = vec![0.0; rows * cols];
        cpu_softmax_backward(&y, &dy, &mut want, rows, cols, scale, &opts).unwrap();
        let (by, bdy) = (upload(dev, &y), upload(dev, &dy));
        let dx = nans(dev, rows * cols);
        pw::softmax_backward(dev, by, bdy, dx, rows, cols, scale).unwrap();
        let got = download(dev, dx);
        // dx is a difference of terms of order scale / cols.
        let floor = scale / cols as f32;
        let what = format!("softmax_backward of {rows} x {cols}");
        worst = worst.max(max_err(&what, &got, &want, floor));
    }
    println!("{}: softmax backward max error: {worst}", dev.name());
}

/// GELU and its backward on every length against the CPU, and GELU in place; prints the
/// largest errors.
pub fn gelu(dev: &mut dyn GpuDevice, lens: &[usize]) {
    let opts = CpuOptions::default();
    let mut worst = [0.0f32; 2];
    for (seed, &n) in lens.iter().enumerate() {
        let seed = 10 * seed as u64;
        // [-6, 6): both tails of the erf.
        let x: Vec<f32> = random(n, seed).iter().map(|v| 6.0 * v).collect();
        let dy = random(n, seed + 1);
        let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
        cpu_gelu(&x, &mut y, &opts).unwrap();
        cpu_gelu_backward(&x, &dy, &mut dx, &opts).unwrap();
        let (bx, bdy) = (upload(dev, &x), upload(dev, &dy));
        let (gy, gdx) = (nans(dev, n), nans(dev, n));
        pw::gelu(dev, bx, gy, n).unwrap();
        pw::gelu_backward(dev, bx, bdy, gdx, n).unwrap();
        let got_y = download(dev, gy);
        let got_dx = download(dev, gdx);
        // The CPU erf is accurate to about 1e-7 absolute (see cpu::activation).
        worst[0] = worst[0].max(max_err(&format!("gelu of {n}"), &got_y, &y, 1.0));
        let what = format!("gelu_backward of {n}");
        worst[1] = worst[1].max(max_err(&what, &got_dx, &dx, 1.0));

        // In place: y over x; the backward's dx over x, then over dy.
        let inplace = upload(dev, &x);
        pw::gelu(dev, inplace, inplace, n).unwrap();
        assert_eq!(download(dev, inplace), got_y, "gelu of {n} in place");
        let over_x = upload(dev, &x);
        pw::gelu_backward(dev, over_x, bdy, over_x, n).unwrap();
        assert_eq!(download(dev, over_x), got_dx, "gelu_backward of {n} over x");
        let over_dy = upload(dev, &dy);
        pw::gelu_backward(dev, bx, over_dy, over_dy, n).unwrap();
        assert_eq!(
            download(dev, over_dy),
            got_dx,
            "gelu_backward of {n} over dy"
        );
    }
    println!(
        "{}: gelu max error (forward, backward): {worst:?}",
        dev.name()
    );
}

/// Both bias adds on every shape, out of place and in place, checked exactly.
pub fn bias(dev: &mut dyn GpuDevice, shapes: &[(usize, usize)]) {
    for (seed, &(rows, cols)) in shapes.iter().enumerate() {
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
        let [bx, bb, br] = [&x, &bias, &res].map(|v| upload(dev, v));
        let out = nans(dev, rows * cols);
        pw::bias_add(dev, bx, bb, out, rows, cols).unwrap();
        assert_eq!(download(dev, out), plus_bias, "{rows} x {cols}");
        let out = nans(dev, rows * cols);
        pw::bias_residual_add(dev, bx, bb, br, out, rows, cols).unwrap();
        assert_eq!(download(dev, out), plus_res, "{rows} x {cols}");
        // In place, over the residual, and over x.
        pw::bias_residual_add(dev, bx, bb, br, br, rows, cols).unwrap();
        assert_eq!(download(dev, br), plus_res, "{rows} x {cols}");
        pw::bias_add(dev, bx, bb, bx, rows, cols).unwrap();
        assert_eq!(download(dev, bx), plus_bias, "{rows} x {cols} over x");
    }
}

/// Launches every kernel of the module (warp and block rows, both widths) and checks none is
/// left out.
pub fn every_kernel_runs(dev: &mut dyn GpuDevice) {
    let mut dev = Recorder::new(dev);
    let dev = &mut dev;
    for cols in [5, 48, 2049, 2052] {
        let x = upload(dev, &random(cols, cols as u64));
        let bias = upload(dev, &random(cols, cols as u64 + 1));
        let [y, dx] = [0; 2].map(|_| dev.alloc_zeros(4 * cols).unwrap());
        let mask = Some(Mask {
            values: bias,
            repeat: 1,
        });
        pw::softmax(dev, x, y, 1, cols, 1.0, None).unwrap();
        pw::softmax(dev, x, y, 1, cols, 1.0, mask).unwrap();
        pw::softmax_backward(dev, y, x, dx, 1, cols, 1.0).unwrap();
        pw::gelu(dev, x, y, cols).unwrap();
        pw::gelu_backward(dev, x, bias, dx, cols).unwrap();
        pw::bias_add(dev, x, bias, y, 1, cols).unwrap();
        pw::bias_residual_add(dev, x, bias, x, y, 1, cols).unwrap();
    }
    assert_eq!(dev.launched, entries(pw::MODULE));
}

/// GELU's grid-stride loop: the launchers cap the grid at 65535 blocks, so only inputs past
/// 67 M values take a second turn of the loop; launched here with one block of 256 threads
/// on 4099 values (four turns of 1024 and a tail of 3), it must give the launcher's values.
pub fn gelu_grid_stride(dev: &mut dyn GpuDevice) {
    let n = 4099;
    let x: Vec<f32> = random(n, 77).iter().map(|v| 6.0 * v).collect();
    let bx = upload(dev, &x);
    let (want, got) = (nans(dev, n), nans(dev, n));
    pw::gelu(dev, bx, want, n).unwrap();
    let cfg = LaunchConfig {
        grid: [1, 1, 1],
        block: [256, 1, 1],
        shared_bytes: 0,
    };
    let args = [
        KernelArg::Buf(bx),
        KernelArg::Buf(got),
        KernelArg::I32(n as i32),
    ];
    // SAFETY: gelu_fwd(x, y, n) with both buffers holding n values.
    unsafe { dev.launch(pw::MODULE, "gelu_fwd", cfg, &args) }.unwrap();
    assert_eq!(
        download(dev, got),
        download(dev, want),
        "gelu of {n}, one block"
    );
}

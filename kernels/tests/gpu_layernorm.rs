//! The GPU layer norm (forward, fused residual forward, backward) run by ptx-sim against the
//! CPU kernels on odd shapes, covering every kernel variant (the cases of
//! `common::gpu::layernorm`), with no simulator warnings; bad shapes give errors naming the op.

use smelt_kernels::gpu::layernorm::{self as ln, MAX_BACKWARD_COLS};
use smelt_kernels::gpu::{GpuDevice, SimDevice};
use smelt_kernels::Error;

mod common;
use common::assert_shape_error;
use common::gpu::layernorm::{self as cases, EPS};
use common::gpu::on_sim;

#[test]
fn forward_matches_cpu() {
    on_sim(|dev| cases::forward(dev, &cases::shapes()));
}

#[test]
fn forward_keeps_the_variance_under_a_large_offset() {
    on_sim(cases::large_offset);
}

#[test]
fn residual_forward_matches_cpu_on_the_sum() {
    on_sim(|dev| cases::residual_forward(dev, &cases::shapes()));
}

#[test]
fn backward_matches_cpu_and_repeats() {
    on_sim(|dev| cases::backward(dev, &cases::backward_shapes()));
}

#[test]
fn backward_of_no_rows_zeroes_the_parameter_gradients() {
    on_sim(cases::backward_of_no_rows);
}

#[test]
fn every_kernel_runs() {
    on_sim(cases::every_kernel_runs);
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

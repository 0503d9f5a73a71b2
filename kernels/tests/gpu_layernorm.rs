//! The GPU layer norm (forward, fused residual forward, backward), on f32 rows and on bf16
//! rows, run by ptx-sim against the CPU kernels on odd shapes, covering every kernel variant
//! (the cases of `common::gpu::layernorm`), with no simulator warnings; bad shapes give errors
//! naming the op.

use smelt_kernels::gpu::layernorm as ln;
use smelt_kernels::gpu::{GpuDevice, SimDevice};
use smelt_kernels::Error;

mod common;
use common::assert_shape_error;
use common::gpu::layernorm::{self as cases, Rows, EPS};
use common::gpu::on_sim;

#[test]
fn forward_matches_cpu() {
    on_sim(|dev| cases::forward(dev, Rows::F32, &cases::shapes()));
}

#[test]
fn bf16_forward_matches_cpu_on_the_rounded_input() {
    on_sim(|dev| cases::forward(dev, Rows::Bf16, &cases::shapes()));
}

#[test]
fn forward_keeps_the_variance_under_a_large_offset() {
    on_sim(cases::large_offset);
}

#[test]
fn constant_rows_give_beta() {
    on_sim(cases::constant_rows);
}

#[test]
fn residual_forward_matches_cpu_on_the_sum() {
    on_sim(|dev| cases::residual_forward(dev, Rows::F32, &cases::shapes()));
}

#[test]
fn bf16_residual_forward_matches_cpu_on_the_rounded_sum() {
    on_sim(|dev| cases::residual_forward(dev, Rows::Bf16, &cases::shapes()));
}

#[test]
fn backward_matches_cpu_and_repeats() {
    on_sim(|dev| cases::backward(dev, Rows::F32, &cases::backward_shapes()));
}

#[test]
fn bf16_backward_matches_cpu_on_the_rounded_inputs_and_repeats() {
    on_sim(|dev| cases::backward(dev, Rows::Bf16, &cases::backward_shapes()));
}

#[test]
fn backward_of_no_rows_zeroes_the_parameter_gradients() {
    on_sim(|dev| Rows::ALL.map(|kind| cases::backward_of_no_rows(dev, kind)));
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
        &["x holds 23 f32 values", "needs 24", "(rows x cols = 3 x 8)"],
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
        &["dbeta holds 3", "needs 8", "(rows x cols = 3 x 8)"],
    );
    let err = ln::layer_norm_backward(d, m, m, v, r[0], r[1], y, v, v, scratch, rows, cols);
    assert_shape_error(err, "gpu_layer_norm_backward", &["scratch holds 1"]);

    for eps in [f32::NAN, -1.0] {
        let err = ln::layer_norm(d, m, v, v, y, r[0], r[1], rows, cols, eps).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Value {
                    op: "gpu_layer_norm",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    let err = ln::layer_norm(d, m, v, v, m, r[0], r[1], rows, cols, EPS).unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err:?}");
    assert!(
        err.to_string().contains("y and x are the same buffer"),
        "{err}"
    );
}

#[test]
fn bf16_buffers_are_sized_in_two_byte_values() {
    let mut dev = SimDevice::new();
    let (rows, cols) = (3, 8);
    let m = dev.upload_u16(&[0; 24]).unwrap();
    let short = dev.upload_u16(&[0; 23]).unwrap();
    let v = dev.alloc_zeros(4 * cols).unwrap();
    let r = [0; 2].map(|_| dev.alloc_zeros(4 * rows).unwrap());
    let [y, sum] = [0; 2].map(|_| dev.upload_u16(&[0; 24]).unwrap());
    let d = &mut dev;
    let err = ln::layer_norm_bf16(d, short, v, v, y, r[0], r[1], rows, cols, EPS);
    assert_shape_error(
        err,
        "gpu_layer_norm_bf16",
        &["x holds 23 bf16 values", "needs 24"],
    );
    // The 48 bytes of 24 bf16 are 12 f32.
    let untyped = d.alloc_zeros(48).unwrap();
    let err = ln::layer_norm(d, untyped, v, v, y, r[0], r[1], rows, cols, EPS);
    assert_shape_error(err, "gpu_layer_norm", &["x holds 12 f32 values"]);
    // Values of the other type are refused whatever their size: bf16 where f32 is read, and
    // 24 f32 (enough bytes for 48 bf16) where bf16 is read.
    let err = ln::layer_norm(d, m, v, v, y, r[0], r[1], rows, cols, EPS).unwrap_err();
    assert!(matches!(err, Error::Dtype { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "gpu_layer_norm: dtype mismatch: x holds bf16 values, the op takes f32 there (rows x cols = 3 x 8)"
    );
    let f32_rows = d.upload_f32(&[0.0; 24]).unwrap();
    let err = ln::layer_norm_bf16(d, f32_rows, v, v, y, r[0], r[1], rows, cols, EPS).unwrap_err();
    assert!(
        err.to_string()
            .contains("x holds f32 values, the op takes bf16"),
        "{err}"
    );
    let err = ln::layer_norm_residual_bf16(d, m, m, short, v, v, y, r[0], r[1], rows, cols, EPS);
    assert_shape_error(err, "gpu_layer_norm_residual_bf16", &["sum holds 23 bf16"]);
    let scratch_len = ln::layer_norm_backward_scratch_len(rows, cols);
    let scratch = d.alloc_zeros(4 * scratch_len).unwrap();
    let err =
        ln::layer_norm_backward_bf16(d, m, m, v, r[0], r[1], short, v, v, scratch, rows, cols);
    assert_shape_error(
        err,
        "gpu_layer_norm_backward_bf16",
        &["dx holds 23 bf16 values"],
    );
    let err = ln::layer_norm_residual_bf16(d, m, m, sum, v, v, m, r[0], r[1], rows, cols, EPS);
    let err = err.unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err:?}");
    assert!(
        err.to_string().contains("y and x are the same buffer"),
        "{err}"
    );
    // The right sizes pass, and the call runs.
    ln::layer_norm_residual_bf16(d, m, m, sum, v, v, y, r[0], r[1], rows, cols, EPS).unwrap();
}

#[test]
fn typed_outputs_keep_a_chain_of_launches_checked() {
    let mut dev = SimDevice::new();
    let (rows, cols) = (2, 8);
    let d = &mut dev;
    let x = d.upload_u16(&[0x3f80; 16]).unwrap();
    let v = d.alloc_f32(cols).unwrap();
    let r = [0; 2].map(|_| d.alloc_f32(rows).unwrap());
    let y = d.alloc_bf16(rows * cols).unwrap();
    assert_eq!(y.bytes(), 2 * rows * cols);
    ln::layer_norm_bf16(d, x, v, v, y, r[0], r[1], rows, cols, EPS).unwrap();
    // The bf16 output, read where the op takes f32, is refused.
    let out = d.alloc_f32(rows * cols).unwrap();
    let err = ln::layer_norm(d, y, v, v, out, r[0], r[1], rows, cols, EPS).unwrap_err();
    assert!(
        err.to_string()
            .contains("x holds bf16 values, the op takes f32"),
        "{err}"
    );
    // A typed f32 output is refused where bf16 is written.
    let err = ln::layer_norm_bf16(d, x, v, v, out, r[0], r[1], rows, cols, EPS).unwrap_err();
    assert!(
        err.to_string()
            .contains("y holds f32 values, the op takes bf16"),
        "{err}"
    );
    let err = d.alloc_f32(usize::MAX).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    assert!(err.to_string().contains("overflow"), "{err}");
}

//! The GPU softmax (forward with and without a mask, backward), GELU (forward, backward) and
//! bias (+ residual) add run by ptx-sim against the CPU kernels on odd shapes, covering every
//! kernel variant (the cases of `common::gpu::pointwise`), with no simulator warnings; bad
//! shapes give errors naming the op.

use smelt_kernels::gpu::pointwise::{self as pw, Mask};
use smelt_kernels::gpu::{GpuDevice, SimDevice};
use smelt_kernels::Error;

mod common;
use common::assert_shape_error;
use common::gpu::on_sim;
use common::gpu::pointwise as cases;

#[test]
fn softmax_matches_cpu_with_and_without_mask() {
    on_sim(|dev| cases::softmax(dev, &cases::shapes()));
}

#[test]
fn softmax_backward_matches_cpu() {
    on_sim(|dev| cases::softmax_backward(dev, &cases::shapes()));
}

#[test]
fn gelu_and_its_backward_match_cpu() {
    on_sim(|dev| cases::gelu(dev, &cases::LENS));
}

#[test]
fn bias_adds_are_exact() {
    on_sim(|dev| cases::bias(dev, &cases::bias_shapes()));
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
    let y = dev.alloc_zeros(4 * rows * cols).unwrap();
    let short = dev.alloc_zeros(4 * (rows * cols - 1)).unwrap();
    let v = dev.alloc_zeros(4 * cols).unwrap();
    let d = &mut dev;

    let err = pw::softmax(d, short, y, rows, cols, 1.0, None);
    assert_shape_error(
        err,
        "gpu_softmax",
        &["x holds 23 f32 values", "needs 24", "(rows x cols = 3 x 8)"],
    );
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
    assert_shape_error(err, "gpu_gelu", &["x holds 23", "(n = 24)"]);
    let err = pw::gelu_backward(d, m, short, y, rows * cols);
    assert_shape_error(err, "gpu_gelu_backward", &["dy holds 23"]);
    let err = pw::bias_add(d, m, short, y, rows, cols + 1);
    assert_shape_error(err, "gpu_bias_add", &["x holds 24", "needs 27"]);
    let err = pw::bias_residual_add(d, m, v, short, y, rows, cols);
    assert_shape_error(err, "gpu_bias_residual_add", &["residual holds 23"]);

    let err = pw::softmax(d, m, m, rows, cols, 1.0, None).unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err:?}");
    assert!(err.to_string().starts_with("gpu_softmax:"), "{err}");
    // A row so wide that a thread's int index would overflow past its end.
    let wide = i32::MAX as usize - 1000;
    let err = pw::softmax(d, m, y, 1, wide, 1.0, None).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("cols at most"), "{err}");
    // An output over the bias would race with the blocks still reading it.
    let err = pw::bias_add(d, m, m, m, 1, rows * cols).unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err:?}");
    let err = pw::bias_residual_add(d, m, y, m, y, 1, rows * cols).unwrap_err();
    assert!(
        err.to_string().contains("out and bias are the same buffer"),
        "{err}"
    );
    pw::bias_add(d, m, v, m, rows, cols).unwrap();
}

#[test]
fn gelu_strides_over_values_past_its_grid() {
    on_sim(cases::gelu_grid_stride);
}

#[test]
fn buffers_of_another_device_are_refused() {
    // Both simulated devices hand out the same first address: a buffer of `one` must not
    // reach `two`'s buffer (on CUDA, the same index with a size `two` never allocated).
    let mut one = SimDevice::new();
    let mut two = SimDevice::new();
    let large = one.upload_f32(&[1.0; 64]).unwrap();
    let small = two.upload_f32(&[5.0; 8]).unwrap();
    let err = pw::gelu(&mut two, large, large, 64).unwrap_err();
    assert!(matches!(err, Error::Device { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "gpu_gelu: device: x (256 bytes) belongs to another device than ptx-sim (n = 64)"
    );
    assert_eq!(two.download_f32(small).unwrap(), vec![5.0; 8]);
    assert!(two.download_f32(large).is_err());
}

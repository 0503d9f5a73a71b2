//! The GPU attention kernels on ptx-sim against the f64 references and the CPU kernels (the
//! cases of `common::gpu::attention`): sequence lengths 1, 17, 128 and 130 (tails of every
//! tile size) at head dims 32, 64 and 128, padding masks of `f32::MIN` and of `-inf`, fully
//! masked rows, the statistics the backward reads, determinism, and the argument checks. Shapes
//! stay small: the interpreter runs some 100 M thread-instructions per second.

use smelt_kernels::cpu::attention::AttentionShape;
use smelt_kernels::gpu::attention::{
    attention_backward, attention_backward_bf16, attention_forward, attention_forward_bf16,
    lse_len, Products,
};
use smelt_kernels::gpu::{GpuDevice, SimDevice};
use smelt_kernels::Error;

mod common;
use common::assert_shape_error;
use common::gpu::attention::{self as cases, BF16, D128_LONG, HEAD_DIMS_32_128, SEQ_LENGTHS_D64};
use common::gpu::on_sim;

#[test]
fn every_sequence_length_at_head_dim_64() {
    on_sim(|dev| cases::matches_references(dev, &SEQ_LENGTHS_D64));
}

#[test]
fn every_sequence_length_at_head_dim_32_and_short_ones_at_128() {
    on_sim(|dev| cases::matches_references(dev, &HEAD_DIMS_32_128));
}

#[test]
fn long_sequences_at_head_dim_128() {
    on_sim(|dev| cases::matches_references(dev, &D128_LONG));
}

#[test]
fn bf16_kernels_match_the_cpu_on_rounded_inputs() {
    on_sim(|dev| cases::bf16_matches_cpu(dev, &BF16));
}

#[test]
fn every_kernel_of_both_builds_runs() {
    on_sim(cases::every_kernel_runs);
}

#[test]
fn fully_masked_rows_behave_as_on_the_cpu() {
    on_sim(cases::fully_masked_rows);
}

#[test]
fn leading_masked_keys_rescale_an_empty_running_sum() {
    on_sim(cases::leading_keys_masked);
}

#[test]
fn bad_arguments_are_errors() {
    let mut dev = SimDevice::new();
    let shape = AttentionShape {
        batch: 2,
        seq: 17,
        heads: 2,
        head_dim: 48,
    };
    let n = shape.qkv_len();
    let x = dev.alloc_zeros(4 * n).unwrap();
    let (k, v, out) = (x, x, dev.alloc_zeros(4 * n).unwrap());
    let lse = dev.alloc_zeros(4 * lse_len(&shape)).unwrap();
    // Head dim 48: no build, f32 or bf16, forward or backward, is made for it.
    let (dout, dq, dk, dv) = (x, out, out, out);
    for (p, what) in [(Products::Fma, "FMA"), (Products::Tf32x3, "3xTF32")] {
        let err = attention_forward(&mut dev, p, x, k, v, None, 1.0, &shape, out, lse).unwrap_err();
        assert_unsupported(err, "gpu_attention_forward", what);
        let err = attention_backward(
            &mut dev, p, x, k, v, None, 1.0, &shape, out, lse, dout, dq, dk, dv,
        )
        .unwrap_err();
        assert_unsupported(err, "gpu_attention_backward", what);
    }
    let [x16, out16] = [0; 2].map(|_| dev.alloc_bf16(shape.qkv_len()).unwrap());
    let err =
        attention_forward_bf16(&mut dev, x16, x16, x16, None, 1.0, &shape, out16, lse).unwrap_err();
    assert_unsupported(err, "gpu_attention_forward_bf16", "bf16");
    let err = attention_backward_bf16(
        &mut dev, x16, x16, x16, None, 1.0, &shape, out16, lse, x16, out16, out16, out16,
    )
    .unwrap_err();
    assert_unsupported(err, "gpu_attention_backward_bf16", "bf16");

    // bf16 storage reads bf16 buffers where it reads bf16.
    let d64 = AttentionShape {
        head_dim: 64,
        ..shape
    };
    let f32s = dev.alloc_f32(d64.qkv_len()).unwrap();
    let halves = [0; 3].map(|_| dev.alloc_bf16(d64.qkv_len()).unwrap());
    let lse64 = dev.alloc_f32(lse_len(&d64)).unwrap();
    let [q16, k16, out16] = halves;
    let err = attention_forward_bf16(&mut dev, q16, k16, f32s, None, 1.0, &d64, out16, lse64)
        .unwrap_err();
    assert!(matches!(err, Error::Dtype { .. }), "{err:?}");
    assert!(err.to_string().contains("v holds f32 values"), "{err}");
    let err = attention_backward_bf16(
        &mut dev, q16, k16, q16, None, 1.0, &d64, out16, lse64, q16, f32s, k16, q16,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Dtype { .. }), "{err:?}");
    assert!(err.to_string().contains("dq holds f32 values"), "{err}");
    // The mask and the statistics stay f32 with bf16 storage.
    let mask16 = dev.alloc_bf16(d64.batch * d64.seq).unwrap();
    let err = attention_forward_bf16(
        &mut dev,
        q16,
        k16,
        q16,
        Some(mask16),
        1.0,
        &d64,
        out16,
        lse64,
    )
    .unwrap_err();
    assert!(err.to_string().contains("mask holds bf16 values"), "{err}");
    let lse16 = dev.alloc_bf16(lse_len(&d64)).unwrap();
    let err =
        attention_forward_bf16(&mut dev, q16, k16, q16, None, 1.0, &d64, out16, lse16).unwrap_err();
    assert!(err.to_string().contains("lse holds bf16 values"), "{err}");

    let (k, v) = (x, x);
    let shape = AttentionShape {
        head_dim: 32,
        ..shape
    };
    let n = shape.qkv_len();
    let short = dev.alloc_zeros(4 * (n - 1)).unwrap();
    let result = attention_forward(
        &mut dev,
        Products::Fma,
        x,
        short,
        v,
        None,
        1.0,
        &shape,
        out,
        lse,
    );
    assert_shape_error(result, "gpu_attention_forward", &["k holds", "seq 17"]);
    let mask = dev.alloc_zeros(4 * 17).unwrap();
    let result = attention_forward(
        &mut dev,
        Products::Fma,
        x,
        k,
        v,
        Some(mask),
        1.0,
        &shape,
        out,
        lse,
    );
    assert_shape_error(result, "gpu_attention_forward", &["mask", "34"]);
    let result = attention_backward(
        &mut dev,
        Products::Fma,
        x,
        k,
        v,
        None,
        1.0,
        &shape,
        out,
        lse,
        out,
        short,
        out,
        out,
    );
    assert_shape_error(result, "gpu_attention_backward", &["dq holds"]);
    let err =
        attention_forward(&mut dev, Products::Fma, x, k, v, None, 1.0, &shape, x, lse).unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err:?}");

    // 3 x batch x heads x seq overflows usize: an error, not an overflow.
    let huge = AttentionShape {
        batch: 65535,
        seq: i32::MAX as usize,
        heads: 65535,
        head_dim: 32,
    };
    let err = attention_forward(&mut dev, Products::Fma, x, k, v, None, 1.0, &huge, out, lse)
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");

    // bf16 values where the kernels read f32, and another device's buffer.
    let bf16 = dev.alloc_bf16(2 * n).unwrap();
    let err = attention_forward(
        &mut dev,
        Products::Fma,
        bf16,
        k,
        v,
        None,
        1.0,
        &shape,
        out,
        lse,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Dtype { .. }), "{err:?}");
    assert!(err.to_string().contains("q holds bf16 values"), "{err}");
    let foreign = SimDevice::new().alloc_f32(n).unwrap();
    let err = attention_forward(
        &mut dev,
        Products::Fma,
        x,
        k,
        foreign,
        None,
        1.0,
        &shape,
        out,
        lse,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Device { .. }), "{err:?}");
    assert!(err.to_string().contains("v ("), "{err}");
    let result = attention_backward(
        &mut dev,
        Products::Fma,
        x,
        k,
        v,
        None,
        1.0,
        &shape,
        out,
        lse,
        bf16,
        out,
        out,
        out,
    );
    assert!(matches!(result, Err(Error::Dtype { .. })), "{result:?}");
}

/// Asserts that `err` is `op`'s Unsupported error for head dim 48 at seq 17, naming `what`
/// kernels.
fn assert_unsupported(err: Error, op: &str, what: &str) {
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{op}:")), "{msg}");
    for part in ["head_dim 48", "seq 17", what, "32, 64, 128"] {
        assert!(msg.contains(part), "{msg}: no {part:?}");
    }
}

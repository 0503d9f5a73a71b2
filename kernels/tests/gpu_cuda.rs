//! The GPU kernels on a real GPU (feature `cuda`, GPU 0): the comparisons of the ptx-sim test
//! files shared through `common::gpu` (not their argument checks, which the launchers make
//! before any device sees the call), plus large BERT-like shapes against the CPU kernels. Without a GPU every test fails with "no GPU: ...", it never skips:
//!
//! ```text
//! cargo test --release -p smelt-kernels --features cuda --test gpu_cuda
//! ```
#![cfg(feature = "cuda")]

use smelt_kernels::cpu::attention::AttentionShape;
use smelt_kernels::gpu::{CudaDevice, SimDevice};

mod common;
use common::gpu::attention::{BF16, D128_LONG, HEAD_DIMS_32_128, SEQ_LENGTHS_D64};
use common::gpu::layernorm::Rows;
use common::gpu::{attention, fuzz, layernorm, pointwise};

/// Layer norm `(rows, hidden)`: 64 sequences of 128 tokens at BERT-base and BERT-large widths.
const LAYER_NORM: [(usize, usize); 2] = [(8192, 768), (8192, 1024)];
/// Softmax `(rows, cols)`: attention scores rows of 512 keys.
const SOFTMAX: [(usize, usize); 1] = [(4096, 512)];
/// GELU element counts: 8 Mi values.
const GELU: [usize; 1] = [8 << 20];
/// Attention `(T, d)` at batch [`ATTENTION_BATCH`] x heads [`ATTENTION_HEADS`].
const ATTENTION: [(usize, usize); 4] = [(128, 64), (512, 64), (512, 32), (512, 128)];
const ATTENTION_BATCH: usize = 8;
const ATTENTION_HEADS: usize = 12;

/// GPU 0, or a panic that says there is none.
fn gpu() -> CudaDevice {
    CudaDevice::new(0).unwrap_or_else(|e| {
        panic!(
            "no GPU: {e}. gpu_cuda checks the kernels on a real GPU and needs one with its \
             driver; the ptx-sim tests (gpu_attention, gpu_layernorm, gpu_pointwise) run anywhere"
        )
    })
}

#[test]
fn layer_norm_forward_matches_cpu() {
    let dev = &mut gpu();
    for kind in Rows::ALL {
        layernorm::forward(dev, kind, &layernorm::shapes());
        layernorm::forward(dev, kind, &LAYER_NORM);
    }
    layernorm::large_offset(dev);
    layernorm::constant_rows(dev);
}

#[test]
fn layer_norm_residual_forward_matches_cpu_on_the_sum() {
    let dev = &mut gpu();
    for kind in Rows::ALL {
        layernorm::residual_forward(dev, kind, &layernorm::shapes());
        layernorm::residual_forward(dev, kind, &LAYER_NORM);
    }
}

#[test]
fn layer_norm_backward_matches_cpu_and_repeats() {
    let dev = &mut gpu();
    for kind in Rows::ALL {
        layernorm::backward(dev, kind, &layernorm::backward_shapes());
        layernorm::backward(dev, kind, &LAYER_NORM);
        layernorm::backward_of_no_rows(dev, kind);
    }
}

#[test]
fn every_layer_norm_kernel_runs() {
    layernorm::every_kernel_runs(&mut gpu());
}

#[test]
fn softmax_matches_cpu_with_and_without_mask() {
    let dev = &mut gpu();
    pointwise::softmax(dev, &pointwise::shapes());
    pointwise::softmax(dev, &SOFTMAX);
}

#[test]
fn softmax_backward_matches_cpu() {
    let dev = &mut gpu();
    pointwise::softmax_backward(dev, &pointwise::shapes());
    pointwise::softmax_backward(dev, &SOFTMAX);
}

#[test]
fn gelu_and_its_backward_match_cpu() {
    let dev = &mut gpu();
    pointwise::gelu(dev, &pointwise::LENS);
    pointwise::gelu(dev, &GELU);
}

#[test]
fn bias_adds_are_exact() {
    pointwise::bias(&mut gpu(), &pointwise::bias_shapes());
}

#[test]
fn every_pointwise_kernel_runs() {
    pointwise::every_kernel_runs(&mut gpu());
}

#[test]
fn attention_matches_the_references() {
    let dev = &mut gpu();
    for cases in [&SEQ_LENGTHS_D64[..], &HEAD_DIMS_32_128, &D128_LONG] {
        attention::matches_references(dev, cases);
    }
}

#[test]
fn attention_bf16_matches_the_cpu_on_rounded_inputs() {
    attention::bf16_matches_cpu(&mut gpu(), &BF16);
}

#[test]
fn every_attention_kernel_of_both_builds_runs() {
    attention::every_kernel_runs(&mut gpu());
}

#[test]
fn attention_fully_masked_rows_behave_as_on_the_cpu() {
    attention::fully_masked_rows(&mut gpu());
}

#[test]
fn attention_leading_masked_keys_rescale_an_empty_running_sum() {
    attention::leading_keys_masked(&mut gpu());
}

#[test]
fn layer_norm_gives_the_same_bits_as_ptx_sim() {
    for kind in Rows::ALL {
        layernorm::same_bits_on_two_devices(&mut gpu(), &mut SimDevice::new(), kind);
    }
}

#[test]
fn attention_matches_cpu_on_bert_shapes() {
    let dev = &mut gpu();
    for (seq, head_dim) in ATTENTION {
        let shape = AttentionShape {
            batch: ATTENTION_BATCH,
            seq,
            heads: ATTENTION_HEADS,
            head_dim,
        };
        attention::matches_cpu(dev, shape);
    }
}

/// The random shapes of `gpu_fuzz` (the same draws), on the GPU.
#[test]
fn random_shapes_match_as_on_ptx_sim() {
    let dev = &mut gpu();
    fuzz::layer_norm_forward(dev);
    fuzz::layer_norm_backward(dev);
    fuzz::attention(dev, 3, 28, &[32, 64]);
    fuzz::attention(dev, 7, 8, &[128]);
    fuzz::softmax(dev);
    fuzz::gelu(dev);
    fuzz::bias(dev);
}

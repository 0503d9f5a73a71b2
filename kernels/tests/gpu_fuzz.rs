//! The GPU kernels on ptx-sim against their references on seeded random shapes, to catch the
//! tail and edge handling (partial warps, blocks and tiles, scalar tails of 4-wide accesses)
//! that the fixed shapes of `gpu_layernorm`, `gpu_pointwise` and `gpu_attention` miss. Each
//! test draws its shapes from a small xorshift64* generator seeded with `common::gpu::fuzz::SEED`
//! (and its own stream, so the families draw independently) and hands them to the comparison
//! cases of `common::gpu` (`gpu_cuda` runs the same draws on a real GPU):
//!
//! - layer norm forward, residual forward and backward, f32 and bf16 rows: random rows by
//!   hidden sizes in 1..=1100 (any, multiples of 4, small), the register kernels' widths and
//!   their neighbours (383..=385, 767..=769, 1023..=1025), and backward rows past 512 (blocks
//!   of several rows with a shorter last one);
//! - attention forward and backward against the f64 references and the CPU: batch 1..=2,
//!   heads 1..=3, T in 1..=200, head dims 32, 64 and 128, with no mask or random key masks
//!   (padding after the kept keys, before them, or scattered; `f32::MIN` or `-inf`), every
//!   build (FMA, tensor cores, and bf16 storage against the f32 tensor-core kernels' rounded
//!   results);
//! - softmax (with and without a mask) and its backward on random rows by cols in 1..=700;
//! - GELU and its backward on random lengths; the bias (+ residual) adds on random shapes.
//!
//! The seed is fixed so that a run is reproducible: a failure names its shape, and the shapes
//! each test drew are printed (`--nocapture`). Each test runs its cases once, on the device
//! whose `.approx` instructions are off by a GPU's documented worst case ([`on_approx_sim`]),
//! and the case counts keep the file near 30 s in release on two cores: the interpreter runs
//! some 100 M thread-instructions per second.

use smelt_kernels::gpu::{GpuDevice, SimDevice};

mod common;
use common::gpu::{fuzz, on_one_sim, APPROX_ULPS};

/// Runs `f` on a [`SimDevice`] whose `.approx` instructions are [`APPROX_ULPS`] off and
/// asserts that no launch gave a simulator warning: the second, harsher run of
/// `common::gpu::on_sim` only, whose first (correctly rounded) run would double the time
/// without covering another shape.
fn on_approx_sim(f: impl FnOnce(&mut dyn GpuDevice)) {
    on_one_sim(SimDevice::with_approx_error(APPROX_ULPS), f);
}

#[test]
fn layer_norm_forward_and_residual_forward_match_cpu_on_random_shapes() {
    on_approx_sim(fuzz::layer_norm_forward);
}

#[test]
fn layer_norm_backward_matches_cpu_on_random_shapes() {
    on_approx_sim(fuzz::layer_norm_backward);
}

#[test]
fn attention_at_head_dims_32_and_64_matches_the_references_on_random_shapes() {
    on_approx_sim(|dev| fuzz::attention(dev, 3, 28, &[32, 64]));
}

/// Head dim 128 on its own: its tiles are the smallest, its cases the slowest to interpret.
#[test]
fn attention_at_head_dim_128_matches_the_references_on_random_shapes() {
    on_approx_sim(|dev| fuzz::attention(dev, 7, 8, &[128]));
}

#[test]
fn softmax_and_its_backward_match_cpu_on_random_shapes() {
    on_approx_sim(fuzz::softmax);
}

#[test]
fn gelu_and_its_backward_match_cpu_on_random_lengths() {
    on_approx_sim(fuzz::gelu);
}

#[test]
fn bias_adds_are_exact_on_random_shapes() {
    on_approx_sim(fuzz::bias);
}

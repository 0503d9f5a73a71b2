//! A steady-state step makes no heap allocation: the engine's ops, a whole BERT training
//! step (forward with dropout, masked-LM loss, backward, AdamW) of the model crate, and a
//! forward and backward on a profiled tape (as `smelt bench bert --profile` runs them).
//!
//! The whole binary runs under a counting global allocator, so this file is its own test
//! binary, without the libtest harness (whose bookkeeping thread would allocate meanwhile).
//! Inputs are built once as host tensors; after one warm-up step, each step resets the arena
//! and runs 2-D and batched matmuls (one with a transposed operand, one broadcasting a 2-D
//! rhs), a masked softmax, its backward and a strided copy, all into arena tensors. The count
//! of alloc/realloc calls, on every thread (rayon workers included), must not change across
//! those steps, at 1 and at 2 threads (the steps run inside `threads::install`, see below).

use smelt_engine::autograd::Direction;
use smelt_engine::ops::{matmul, softmax, softmax_backward};
use smelt_engine::{Arena, CpuOptions, Graph, Result, Tape, Tensor};
use smelt_kernels::cpu::adamw::AdamW;
use smelt_kernels::cpu::threads::install;
use smelt_model::{Batch, Config, Dropout, HeadKind, Model, Objective, Trainer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting every allocation and reallocation.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Batch, heads folded into it, sequence length, head width, model width.
const B: usize = 8;
const T: usize = 64;
const D: usize = 32;
const MODEL: usize = 96;

/// The step's inputs: long-lived host tensors.
struct Inputs {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor,
    x: Tensor,
    w: Tensor,
    w_out: Tensor,
    dy: Tensor,
}

fn host(dims: &[usize], seed: u32) -> Tensor {
    let n: usize = dims.iter().product();
    let data = (0..n)
        .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
        .collect();
    Tensor::from_vec(dims, data).expect("input shape and data agree")
}

fn inputs() -> Inputs {
    let mut mask = vec![0.0; 2 * T];
    mask[T - 5..T].fill(f32::NEG_INFINITY);
    Inputs {
        q: host(&[B, T, D], 1),
        k: host(&[B, T, D], 2),
        v: host(&[B, T, D], 3),
        mask: Tensor::from_vec(&[2, T], mask).expect("mask shape and data agree"),
        x: host(&[B * T, MODEL], 4),
        w: host(&[MODEL, MODEL], 5),
        w_out: host(&[D, MODEL], 6),
        dy: host(&[B, T, T], 7),
    }
}

/// One step: attention-like matmuls and softmax into a freshly reset arena; returns a few
/// values read back so nothing is optimised away.
fn step(arena: &mut Arena, x: &Inputs, opts: &CpuOptions) -> Result<f32> {
    arena.reset();
    let arena = &*arena;
    let h = matmul(arena, &x.x, &x.w.t()?, opts)?;
    let scores = matmul(arena, &x.q, &x.k.transpose(1, 2)?, opts)?;
    let probs = softmax(arena, &scores, 0.125, Some((&x.mask, B / 2 * T)), opts)?;
    let dscores = softmax_backward(arena, &probs, &x.dy, 0.125, opts)?;
    let ctx = matmul(arena, &probs, &x.v, opts)?;
    let out = matmul(arena, &ctx, &x.w_out, opts)?;
    let strided = ctx.transpose(0, 1)?.contiguous(arena)?;
    Ok(h.data(arena)?[1]
        + probs.data(arena)?[2]
        + dscores.data(arena)?[3]
        + out.data(arena)?[4]
        + strided.data(arena)?[5])
}

/// Allocations made by `steps` calls of `step` after `warmup` calls, on `threads` threads.
///
/// The steps run inside `threads::install`, as a training loop does: kernel calls then hand
/// their tasks to the pool through the worker's own deque, never through rayon's global
/// injection queue (which allocates a block every 63 jobs injected from outside the pool).
fn allocations_in_steady_state(
    threads: usize,
    warmup: usize,
    steps: usize,
    step: &mut (dyn FnMut() -> Result<f32> + Send),
) -> Result<usize> {
    install(threads, || -> Result<usize> {
        for _ in 0..warmup {
            black_box(step()?);
        }
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let mut sum = 0.0;
        for _ in 0..steps {
            sum += step()?;
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        black_box(sum);
        Ok(after - before)
    })
}

/// Allocations of steady-state engine steps (matmuls, softmax, copies).
fn ops_allocations(threads: usize, warmup: usize, steps: usize) -> Result<usize> {
    let opts = CpuOptions::threads(threads);
    let x = inputs();
    let mut arena = Arena::new();
    // A block added to the arena after the warm-up would be counted as an allocation.
    allocations_in_steady_state(threads, warmup, steps, &mut || step(&mut arena, &x, &opts))
}

/// A small BERT with HF's default dropout, and a padded batch with two token types and
/// masked-LM labels: 8 x 32 tokens of width 128 (4 heads, FFN 512), so that on 2 threads
/// the elementwise kernels (layer norm, GELU, dropout, AdamW: 32 K values and more) split
/// into tasks too, not only the GEMMs and attention.
fn small_bert() -> Result<(Model, Batch)> {
    let tiny = Config::preset("tiny").expect("the tiny preset exists");
    let config = Config {
        hidden: 128,
        heads: 4,
        intermediate: 512,
        dropout: Dropout {
            hidden: 0.1,
            attention: 0.1,
            classifier: 0.1,
        },
        ..tiny
    };
    let model = Model::random(&config, HeadKind::MaskedLm, 7)?;
    let (b, t) = (8, 32);
    let ids: Vec<i64> = (0..b * t).map(|i| (i * 7 % 99) as i64).collect();
    let mask: Vec<i64> = (0..b * t).map(|i| i64::from(i % t < t - i / t)).collect();
    let types: Vec<i64> = (0..b * t).map(|i| i64::from(i % t >= t / 2)).collect();
    let labels: Vec<i64> = (0..b * t)
        .map(|i| if i % 3 == 0 { (i % 99) as i64 } else { -100 })
        .collect();
    let batch = Batch::new(&config, b, t, &ids, Some(&mask), Some(&types))?.with_labels(&labels)?;
    Ok((model, batch))
}

/// Allocations of steady-state training steps of [`small_bert`].
fn training_allocations(threads: usize, warmup: usize, steps: usize) -> Result<usize> {
    let (mut model, batch) = small_bert()?;
    let mut trainer = Trainer::new(&mut model, AdamW::default(), CpuOptions::threads(threads))?;
    let mut arena = Arena::new();
    allocations_in_steady_state(threads, warmup, steps, &mut || {
        trainer.step(&mut model, &mut arena, &batch, &Objective::Head)
    })
}

/// Allocations of steady-state forward and backward passes (masked-LM loss, dropout on) of
/// [`small_bert`] on a profiled tape; also checks that the model's ops are profiled and that
/// every backward is profiled under the name of a forward op.
fn profiled_allocations(threads: usize, warmup: usize, steps: usize) -> Result<usize> {
    let (model, batch) = small_bert()?;
    let opts = CpuOptions::threads(threads);
    let mut arena = Arena::new();
    let mut tape = Tape::new();
    tape.enable_profile();
    let count = allocations_in_steady_state(threads, warmup, steps, &mut || {
        let loss = {
            let mut g = Graph::new(&mut tape, &arena, opts, true);
            g.enable_dropout(1);
            let f = model.forward(&mut g, &batch)?;
            let loss = Objective::Head.loss(&model, &mut g, &f, &batch)?;
            g.backward(loss)?;
            g.value(loss).data(&arena)?[0]
        };
        tape.clear();
        arena.reset();
        Ok(loss)
    })?;
    let profile = tape.profile().expect("profiling was enabled");
    let names = |d| {
        profile
            .times()
            .iter()
            .filter(move |t| t.direction == d)
            .map(|t| t.op)
    };
    let forward: Vec<&str> = names(Direction::Forward).collect();
    for op in names(Direction::Backward) {
        assert!(
            forward.contains(&op),
            "backward of {op} not among {forward:?}"
        );
    }
    for op in [
        "embedding",
        "layer_norm",
        "layer_norm_residual",
        "linear",
        "attention",
        "dropout",
        "cross_entropy",
    ] {
        assert!(forward.contains(&op), "{op} not profiled: {forward:?}");
    }
    Ok(count)
}

/// Measures both thread counts, then fails when any step allocated.
fn main() -> Result<()> {
    const WARMUP: usize = 1;
    const STEPS: usize = 20;
    let ops = (
        ops_allocations(1, WARMUP, STEPS)?,
        ops_allocations(2, WARMUP, STEPS)?,
    );
    let train = (
        training_allocations(1, WARMUP, STEPS)?,
        training_allocations(2, WARMUP, STEPS)?,
    );
    let profiled = (
        profiled_allocations(1, WARMUP, STEPS)?,
        profiled_allocations(2, WARMUP, STEPS)?,
    );
    println!(
        "heap allocations in {STEPS} steady-state steps: ops {} / {}, BERT training {} / {}, \
         profiled BERT forward and backward {} / {} (1 / 2 threads)",
        ops.0, ops.1, train.0, train.1, profiled.0, profiled.1
    );
    assert_eq!(ops, (0, 0), "a steady-state op step allocated");
    assert_eq!(train, (0, 0), "a steady-state training step allocated");
    assert_eq!(profiled, (0, 0), "a profiled steady-state step allocated");
    Ok(())
}

//! Multi-head scaled dot-product attention, forward and backward, on `[B, T, H*d]` rows.
//!
//! For every batch element `b` and head `h` (`Q_h`, `K_h`, `V_h` are the `T x d` column blocks
//! `h*d..(h+1)*d` of the rows of batch `b`):
//!
//! ```text
//! S = scale * Q_h K_h^T + mask_b      (mask_b: one additive value per key, broadcast over queries)
//! P = softmax(S)                      (row-wise)
//! O_h = P V_h
//! ```
//!
//! The scores `S`/`P` exist only inside these calls: in a caller-provided buffer that is either
//! scratch (inference) or kept for the backward (training). The backward, with `dO` given:
//!
//! ```text
//! dV_h = P^T dO_h
//! dP   = dO_h V_h^T
//! dS   = scale * P * (dP - rowsum(dP * P))   (softmax backward, through the scale)
//! dQ_h = dS K_h
//! dK_h = dS^T Q_h
//! ```
//!
//! Heads of one batch element are one strided-batched GEMM (head `h` starts `h*d` floats into
//! the row, so the batch stride is `d`). With at least as many batch elements as threads,
//! threads take whole batch elements (each running single-threaded GEMMs, no synchronisation
//! inside); otherwise batch elements run in turn with the threads inside each GEMM and softmax.
//! [`attention_reference`] is a plain f64 version for the tests.

use crate::cpu::gemm::{sgemm_batched, BatchStrides, MatMut, MatRef};
use crate::cpu::options::CpuOptions;
use crate::cpu::softmax::{softmax_backward, softmax_inplace, Mask};
use crate::cpu::threads::{for_each_task, Shared};
use crate::{Error, Result};

/// The sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Batch elements `B`.
    pub batch: usize,
    /// Sequence length `T` (queries and keys).
    pub seq: usize,
    /// Heads `H`.
    pub heads: usize,
    /// Dimension `d` of one head; rows hold `H*d` values.
    pub head_dim: usize,
}

impl AttentionShape {
    /// Values in one `[B, T, H*d]` tensor.
    pub fn qkv_len(&self) -> usize {
        self.batch * self.seq * self.heads * self.head_dim
    }

    /// Values of the scores of one batch element, `[H, T, T]`.
    fn scores_len(&self) -> usize {
        self.heads * self.seq * self.seq
    }

    /// Values of the probabilities saved for the backward, `[B, H, T, T]`.
    pub fn saved_probs_len(&self) -> usize {
        self.batch * self.scores_len()
    }

    /// Concurrent tasks over batch elements for `threads` threads (1 when threads go inside).
    fn outer_tasks(&self, threads: usize) -> usize {
        if self.batch >= threads.max(1) {
            threads.max(1)
        } else {
            1
        }
    }

    /// Length of the scratch buffer [`attention_forward`] needs when probabilities are not
    /// saved: `[H, T, T]` per concurrent task.
    pub fn forward_scratch_len(&self, threads: usize) -> usize {
        self.outer_tasks(threads) * self.scores_len()
    }

    /// Length of the scratch buffer [`attention_backward`] needs: `dP` and `dS`, `[H, T, T]`
    /// each, per concurrent task.
    pub fn backward_scratch_len(&self, threads: usize) -> usize {
        2 * self.outer_tasks(threads) * self.scores_len()
    }

    fn row_len(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Errors when a slice length disagrees with the shape.
    fn check(&self, op: &'static str, lens: &[(&'static str, usize, usize)]) -> Result<()> {
        for &(name, len, needed) in lens {
            if len != needed {
                return Err(Error::Shape {
                    op,
                    detail: format!(
                        "{name} has {len} values, but batch {} x seq {} x heads {} x head_dim {} needs {needed}",
                        self.batch, self.seq, self.heads, self.head_dim
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Where the forward keeps the probabilities `P`.
#[derive(Debug)]
pub enum Probs<'a> {
    /// Keep them for the backward: `[B, H, T, T]` ([`AttentionShape::saved_probs_len`]).
    Save(&'a mut [f32]),
    /// Discard them: a scratch buffer of [`AttentionShape::forward_scratch_len`] values.
    Scratch(&'a mut [f32]),
}

/// `out = softmax(scale * Q K^T + mask) V` per batch element and head (see the module docs).
///
/// `q`, `k`, `v` and `out` are `[B, T, H*d]` row-major; `mask` is `[B, T]` additive key values
/// (HF uses 0 for tokens and `f32::MIN` for padding). Errors when a length disagrees with
/// `shape` or the ISA is unsupported.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    scale: f32,
    shape: &AttentionShape,
    probs: Probs<'_>,
    out: &mut [f32],
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "attention_forward";
    opts.validate(OP)?;
    let n = shape.qkv_len();
    let (probs, save) = match probs {
        Probs::Save(p) => (p, true),
        Probs::Scratch(p) => (p, false),
    };
    let probs_needed = if save {
        shape.saved_probs_len()
    } else {
        shape.forward_scratch_len(opts.threads)
    };
    shape.check(
        OP,
        &[
            ("q", q.len(), n),
            ("k", k.len(), n),
            ("v", v.len(), n),
            ("out", out.len(), n),
            ("probs", probs.len(), probs_needed),
        ],
    )?;
    if let Some(m) = mask {
        shape.check(OP, &[("mask", m.len(), shape.batch * shape.seq)])?;
    }
    let tasks = shape.outer_tasks(opts.threads);
    let inner = if tasks > 1 {
        CpuOptions {
            threads: 1,
            ..*opts
        }
    } else {
        *opts
    };
    let job = Shared((out.as_mut_ptr(), probs.as_mut_ptr()));
    let first_error = std::sync::Mutex::new(None);
    for_each_task(opts.threads, tasks, |t| {
        let (out_ptr, probs_ptr) = job.get();
        for b in (t..shape.batch).step_by(tasks) {
            let scores_at = if save { b } else { t } * shape.scores_len();
            let rows_at = b * shape.seq * shape.row_len();
            let rows = shape.seq * shape.row_len();
            // SAFETY: batch element `b` is handled by exactly one task, so its rows of `out`
            // and (when saved) its scores are written by this task only; scratch scores are
            // indexed by the task. Both ranges lie inside the slices (lengths checked above).
            let (o, p) = unsafe {
                (
                    std::slice::from_raw_parts_mut(out_ptr.add(rows_at), rows),
                    std::slice::from_raw_parts_mut(probs_ptr.add(scores_at), shape.scores_len()),
                )
            };
            let m = mask.map(|m| &m[b * shape.seq..(b + 1) * shape.seq]);
            let qb = &q[rows_at..rows_at + rows];
            let kb = &k[rows_at..rows_at + rows];
            let vb = &v[rows_at..rows_at + rows];
            if let Err(e) = forward_one(qb, kb, vb, m, scale, shape, p, o, &inner) {
                if let Ok(mut first) = first_error.lock() {
                    first.get_or_insert(e);
                }
            }
        }
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// The forward of one batch element: `[T, H*d]` rows in, `[H, T, T]` scores buffer.
#[allow(clippy::too_many_arguments)]
fn forward_one(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    scale: f32,
    shape: &AttentionShape,
    p: &mut [f32],
    out: &mut [f32],
    opts: &CpuOptions,
) -> Result<()> {
    let (t, d, hd) = (shape.seq, shape.head_dim, shape.row_len());
    let heads = |c: usize| BatchStrides {
        count: shape.heads,
        a: d,
        b: d,
        c,
    };
    let head_rows = |data| MatRef::strided(data, t, d, hd, 1);
    // S_h = Q_h K_h^T, unscaled: the softmax applies the scale and the mask.
    let scores = BatchStrides {
        c: t * t,
        ..heads(0)
    };
    let s = MatMut::row_major(p, t, t);
    sgemm_batched(&scores, 1.0, head_rows(q), head_rows(k).t(), 0.0, s, opts)?;
    let mask = mask.map(|values| Mask {
        values,
        repeat: shape.heads * t,
    });
    softmax_inplace(p, shape.heads * t, t, scale, mask, opts)?;
    // O_h = P_h V_h, written into the head's columns of the output rows.
    let probs = BatchStrides {
        a: t * t,
        b: d,
        c: d,
        count: shape.heads,
    };
    let o = MatMut::strided(out, t, d, hd, 1);
    sgemm_batched(
        &probs,
        1.0,
        MatRef::row_major(p, t, t),
        head_rows(v),
        0.0,
        o,
        opts,
    )
}

/// Gradients of [`attention_forward`]: `dq`, `dk`, `dv` (`[B, T, H*d]`, overwritten) from the
/// saved probabilities `probs` (`[B, H, T, T]`) and the output gradient `dout`.
///
/// `scratch` holds [`AttentionShape::backward_scratch_len`] values. The mask needs no gradient;
/// masked keys get none because their probability is zero.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    dout: &[f32],
    scale: f32,
    shape: &AttentionShape,
    scratch: &mut [f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "attention_backward";
    opts.validate(OP)?;
    let n = shape.qkv_len();
    shape.check(
        OP,
        &[
            ("q", q.len(), n),
            ("k", k.len(), n),
            ("v", v.len(), n),
            ("dout", dout.len(), n),
            ("dq", dq.len(), n),
            ("dk", dk.len(), n),
            ("dv", dv.len(), n),
            ("probs", probs.len(), shape.saved_probs_len()),
            (
                "scratch",
                scratch.len(),
                shape.backward_scratch_len(opts.threads),
            ),
        ],
    )?;
    let tasks = shape.outer_tasks(opts.threads);
    let inner = if tasks > 1 {
        CpuOptions {
            threads: 1,
            ..*opts
        }
    } else {
        *opts
    };
    let job = Shared((
        dq.as_mut_ptr(),
        dk.as_mut_ptr(),
        dv.as_mut_ptr(),
        scratch.as_mut_ptr(),
    ));
    let first_error = std::sync::Mutex::new(None);
    for_each_task(opts.threads, tasks, |t| {
        let (dq_ptr, dk_ptr, dv_ptr, scratch_ptr) = job.get();
        let len = shape.scores_len();
        let rows = shape.seq * shape.row_len();
        for b in (t..shape.batch).step_by(tasks) {
            let at = b * rows;
            // SAFETY: batch element `b` belongs to this task alone, so its rows of dq, dk and
            // dv are written by no other task; the task's two scratch blocks are indexed by
            // `t`. Every range lies inside its slice (lengths checked above).
            let (dqb, dkb, dvb, dp, ds) = unsafe {
                (
                    std::slice::from_raw_parts_mut(dq_ptr.add(at), rows),
                    std::slice::from_raw_parts_mut(dk_ptr.add(at), rows),
                    std::slice::from_raw_parts_mut(dv_ptr.add(at), rows),
                    std::slice::from_raw_parts_mut(scratch_ptr.add(2 * t * len), len),
                    std::slice::from_raw_parts_mut(scratch_ptr.add((2 * t + 1) * len), len),
                )
            };
            let one = BackwardOne {
                q: &q[at..at + rows],
                k: &k[at..at + rows],
                v: &v[at..at + rows],
                p: &probs[b * len..(b + 1) * len],
                dout: &dout[at..at + rows],
            };
            if let Err(e) = one.run(scale, shape, dp, ds, dqb, dkb, dvb, &inner) {
                if let Ok(mut first) = first_error.lock() {
                    first.get_or_insert(e);
                }
            }
        }
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// The inputs of the backward of one batch element.
struct BackwardOne<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    p: &'a [f32],
    dout: &'a [f32],
}

impl BackwardOne<'_> {
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        scale: f32,
        shape: &AttentionShape,
        dp: &mut [f32],
        ds: &mut [f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
        opts: &CpuOptions,
    ) -> Result<()> {
        let (t, d, hd, h) = (shape.seq, shape.head_dim, shape.row_len(), shape.heads);
        let head_rows = |data| MatRef::strided(data, t, d, hd, 1);
        let head_out = |data| MatMut::strided(data, t, d, hd, 1);
        let scores = |data| MatRef::row_major(data, t, t);
        let per_head = |a, b, c| BatchStrides { count: h, a, b, c };
        // dV_h = P_h^T dO_h
        let strides = per_head(t * t, d, d);
        sgemm_batched(
            &strides,
            1.0,
            scores(self.p).t(),
            head_rows(self.dout),
            0.0,
            head_out(dv),
            opts,
        )?;
        // dP_h = dO_h V_h^T
        let strides = per_head(d, d, t * t);
        let dp_mat = MatMut::row_major(dp, t, t);
        sgemm_batched(
            &strides,
            1.0,
            head_rows(self.dout),
            head_rows(self.v).t(),
            0.0,
            dp_mat,
            opts,
        )?;
        // dS = scale * P * (dP - rowsum(dP * P))
        softmax_backward(self.p, dp, ds, h * t, t, scale, opts)?;
        // dQ_h = dS_h K_h and dK_h = dS_h^T Q_h
        let strides = per_head(t * t, d, d);
        sgemm_batched(
            &strides,
            1.0,
            scores(ds),
            head_rows(self.k),
            0.0,
            head_out(dq),
            opts,
        )?;
        sgemm_batched(
            &strides,
            1.0,
            scores(ds).t(),
            head_rows(self.q),
            0.0,
            head_out(dk),
            opts,
        )
    }
}

/// Plain f64 attention for the tests: the output `[B, T, H*d]` and the probabilities
/// `[B, H, T, T]`, with the same conventions as [`attention_forward`].
pub fn attention_reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    scale: f32,
    shape: &AttentionShape,
) -> (Vec<f32>, Vec<f32>) {
    let (bs, t, h, d) = (shape.batch, shape.seq, shape.heads, shape.head_dim);
    let hd = h * d;
    let mut out = vec![0.0f32; shape.qkv_len()];
    let mut probs = vec![0.0f32; shape.saved_probs_len()];
    let at = |b: usize, i: usize, head: usize, c: usize| (b * t + i) * hd + head * d + c;
    for b in 0..bs {
        for head in 0..h {
            for i in 0..t {
                let s: Vec<f64> = (0..t)
                    .map(|j| {
                        let dot: f64 = (0..d)
                            .map(|c| q[at(b, i, head, c)] as f64 * k[at(b, j, head, c)] as f64)
                            .sum();
                        let m = mask.map_or(0.0, |m| m[b * t + j] as f64);
                        scale as f64 * dot + m
                    })
                    .collect();
                let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                let row = ((b * h + head) * t + i) * t;
                for j in 0..t {
                    probs[row + j] = (e[j] / sum) as f32;
                }
                for c in 0..d {
                    let o: f64 = (0..t)
                        .map(|j| e[j] / sum * v[at(b, j, head, c)] as f64)
                        .sum();
                    out[at(b, i, head, c)] = o as f32;
                }
            }
        }
    }
    (out, probs)
}

/// Plain f64 gradients `(dq, dk, dv)` of [`attention_reference`] for the output gradient `dout`,
/// with the same conventions as [`attention_backward`].
pub fn attention_backward_reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    dout: &[f32],
    scale: f32,
    shape: &AttentionShape,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (bs, t, h, d) = (shape.batch, shape.seq, shape.heads, shape.head_dim);
    let hd = h * d;
    let (_, probs) = attention_reference(q, k, v, mask, scale, shape);
    let at = |b: usize, i: usize, head: usize, c: usize| (b * t + i) * hd + head * d + c;
    let mut dq = vec![0.0f64; shape.qkv_len()];
    let mut dk = vec![0.0f64; shape.qkv_len()];
    let mut dv = vec![0.0f64; shape.qkv_len()];
    for b in 0..bs {
        for head in 0..h {
            let p = |i: usize, j: usize| probs[((b * h + head) * t + i) * t + j] as f64;
            for i in 0..t {
                let dp: Vec<f64> = (0..t)
                    .map(|j| {
                        (0..d)
                            .map(|c| dout[at(b, i, head, c)] as f64 * v[at(b, j, head, c)] as f64)
                            .sum()
                    })
                    .collect();
                let dot: f64 = (0..t).map(|j| dp[j] * p(i, j)).sum();
                for j in 0..t {
                    let ds = scale as f64 * p(i, j) * (dp[j] - dot);
                    for c in 0..d {
                        dv[at(b, j, head, c)] += p(i, j) * dout[at(b, i, head, c)] as f64;
                        dq[at(b, i, head, c)] += ds * k[at(b, j, head, c)] as f64;
                        dk[at(b, j, head, c)] += ds * q[at(b, i, head, c)] as f64;
                    }
                }
            }
        }
    }
    let f32s = |x: Vec<f64>| x.into_iter().map(|v| v as f32).collect();
    (f32s(dq), f32s(dk), f32s(dv))
}

//! Multi-head scaled dot-product attention, forward and backward, on `[B, T, H*d]` rows.
//!
//! For every batch element `b` and head `h` (`Q_h`, `K_h`, `V_h` are the `T x d` column blocks
//! `h*d..(h+1)*d` of the rows of batch `b`):
//!
//! ```text
//! S = scale * Q_h K_h^T + mask_b      (mask_b: one additive value per key, broadcast over queries)
//! P = softmax(S)                      (row-wise)
//! O_h = (P * M) V_h                   (M: dropout's factors in training, else all 1)
//! ```
//!
//! The scores `S`/`P` exist only inside these calls: in a caller-provided buffer that is either
//! scratch (inference) or kept for the backward (training). The backward, with `dO` given:
//!
//! ```text
//! dV_h = (P * M)^T dO_h
//! dP   = (dO_h V_h^T) * M
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
//!
//! Dropout on the probabilities (HF's training mode) draws element `((b*H + h)*T + i)*T + j`
//! of `P`, its index in `[B, H, T, T]`, from a [`DropoutMask`]; the backward draws the same
//! factors again, so only `P` is kept.

use crate::cpu::dropout::{dropout, dropout_inplace, DropoutMask};
use crate::cpu::gemm::{sgemm_batched, BatchStrides, MatMut, MatRef};
use crate::cpu::options::CpuOptions;
use crate::cpu::softmax::{softmax_backward, softmax_inplace, Mask};
use crate::cpu::threads::{for_each_task, SharedSlice};
use crate::{Error, Result};
use std::ops::Range;
use std::sync::Mutex;

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

/// The product of `sizes`, or `usize::MAX` when it overflows: no buffer holds that many
/// values, so a buffer sized by it fails the length checks (as the kernels' own size check
/// refuses the shape) instead of an overflow wrapping it to a short length.
fn product(sizes: &[usize]) -> usize {
    sizes.iter().fold(1, |p, &s| p.saturating_mul(s))
}

/// The buffer lengths below saturate at `usize::MAX` for a shape too large to hold.
impl AttentionShape {
    /// Values in one `[B, T, H*d]` tensor.
    pub fn qkv_len(&self) -> usize {
        product(&[self.batch, self.seq, self.heads, self.head_dim])
    }

    /// Values of the scores of one batch element, `[H, T, T]`.
    fn scores_len(&self) -> usize {
        product(&[self.heads, self.seq, self.seq])
    }

    /// Values of the probabilities saved for the backward, `[B, H, T, T]`.
    pub fn saved_probs_len(&self) -> usize {
        product(&[self.batch, self.scores_len()])
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
        product(&[self.outer_tasks(threads), self.scores_len()])
    }

    /// Length of the scratch buffer [`attention_backward`] needs: `dP` and `dS`, `[H, T, T]`
    /// each, per concurrent task.
    pub fn backward_scratch_len(&self, threads: usize) -> usize {
        product(&[2, self.outer_tasks(threads), self.scores_len()])
    }

    fn row_len(&self) -> usize {
        self.heads * self.head_dim
    }

    /// The `[T, H*d]` rows of batch element `b` in a `[B, T, H*d]` tensor.
    fn rows(&self, b: usize) -> Range<usize> {
        let len = self.seq * self.row_len();
        b * len..(b + 1) * len
    }

    /// The `[H, T, T]` block `i` of a scores buffer.
    fn scores(&self, i: usize) -> Range<usize> {
        let len = self.scores_len();
        i * len..(i + 1) * len
    }

    /// The index of batch element `b`'s first score in `[B, H, T, T]`, where dropout draws.
    fn first_score(&self, b: usize) -> u64 {
        (b * self.scores_len()) as u64
    }

    /// Head 0's `[T, d]` block of `[T, H*d]` rows (batch strides of `d` reach the others).
    fn head<'a>(&self, rows: &'a [f32]) -> MatRef<'a> {
        MatRef::strided(rows, self.seq, self.head_dim, self.row_len(), 1)
    }

    /// [`AttentionShape::head`] of rows to write.
    fn head_mut<'a>(&self, rows: &'a mut [f32]) -> MatMut<'a> {
        MatMut::strided(rows, self.seq, self.head_dim, self.row_len(), 1)
    }

    /// Head 0's `[T, T]` matrix of `[H, T, T]` scores (batch strides of `T*T` reach the others).
    fn scores_of<'a>(&self, scores: &'a [f32]) -> MatRef<'a> {
        MatRef::row_major(scores, self.seq, self.seq)
    }

    /// `out_h = lhs_h rhs_h` for every head `h`, the heads' `lhs`, `rhs` and `out` lying
    /// `a`, `b` and `c` floats apart.
    fn per_head(
        &self,
        [a, b, c]: [usize; 3],
        lhs: MatRef<'_>,
        rhs: MatRef<'_>,
        out: MatMut<'_>,
        opts: &CpuOptions,
    ) -> Result<()> {
        let strides = BatchStrides {
            count: self.heads,
            a,
            b,
            c,
        };
        sgemm_batched(&strides, 1.0, lhs, rhs, 0.0, out, opts)
    }

    /// Errors when a length of a call (the `[B, T, H*d]` tensors, a row's `H*d`, the `[B, T]`
    /// mask, the saved `[B, H, T, T]` probabilities, the backward's scratch for `threads`
    /// tasks) does not fit in `usize`; every other length divides one of these, so none wraps
    /// around after it (`H*d` is checked alone because `T = 0` makes the others 0).
    pub fn check_sizes(&self, op: &'static str, threads: usize) -> Result<()> {
        let product = |factors: &[usize]| {
            factors
                .iter()
                .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        };
        let (b, t, h, d) = (self.batch, self.seq, self.heads, self.head_dim);
        let lengths = [
            product(&[b, t, h, d]),
            product(&[h, d]),
            product(&[b, t]),
            product(&[b, h, t, t]),
            product(&[2, self.outer_tasks(threads), h, t, t]),
        ];
        if lengths.iter().all(Option::is_some) {
            return Ok(());
        }
        Err(Error::Shape {
            op,
            detail: format!("batch {b} x seq {t} x heads {h} x head_dim {d}: sizes overflow"),
        })
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

/// Dropout on the attention probabilities (training).
#[derive(Debug)]
pub struct ProbsDropout<'a> {
    /// The draw over `[B, H, T, T]` (see the module docs).
    pub mask: DropoutMask,
    /// [`AttentionShape::forward_scratch_len`] values for the probabilities after dropout
    /// (the saved ones are those before, which the softmax's backward needs).
    pub scratch: &'a mut [f32],
}

/// `out = dropout(softmax(scale * Q K^T + mask)) V` per batch element and head (see the
/// module docs), without dropout when `dropout` is `None`.
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
    dropout: Option<ProbsDropout<'_>>,
    out: &mut [f32],
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "attention_forward";
    opts.validate(OP)?;
    shape.check_sizes(OP, opts.threads)?;
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
    let dropout = match dropout {
        Some(d) => {
            let needed = shape.forward_scratch_len(opts.threads);
            shape.check(OP, &[("dropout scratch", d.scratch.len(), needed)])?;
            Some((d.mask, SharedSlice::new(d.scratch)))
        }
        None => None,
    };
    let (out, probs) = (SharedSlice::new(out), SharedSlice::new(probs));
    for_each_batch(shape, opts, |task, b, inner| {
        let rows = shape.rows(b);
        // SAFETY: batch element `b` is handled by exactly one task, so its rows of `out`
        // and (when saved) its scores are written by this task only; scratch scores are
        // indexed by the task, as is the dropout scratch.
        let (o, p) = unsafe {
            (
                out.range(rows.clone()),
                probs.range(shape.scores(if save { b } else { task })),
            )
        };
        let dropout = dropout.as_ref().map(|(m, scratch)| {
            // SAFETY: as above, the task's own block of the dropout scratch.
            let dropped = unsafe { scratch.range(shape.scores(task)) };
            (*m, shape.first_score(b), dropped)
        });
        let one = ForwardOne {
            q: &q[rows.clone()],
            k: &k[rows.clone()],
            v: &v[rows],
            mask: mask.map(|m| &m[b * shape.seq..(b + 1) * shape.seq]),
            dropout,
        };
        one.run(scale, shape, p, o, inner)
    })
}

/// Runs `one(task, b, inner_opts)` for every batch element `b` and returns the first error.
///
/// With [`AttentionShape::outer_tasks`] above 1, task `t` takes the batch elements `t`,
/// `t + tasks`, ... on one thread each; otherwise the batch elements run in turn, with the
/// threads inside each call.
fn for_each_batch(
    shape: &AttentionShape,
    opts: &CpuOptions,
    one: impl Fn(usize, usize, &CpuOptions) -> Result<()> + Sync,
) -> Result<()> {
    let tasks = shape.outer_tasks(opts.threads);
    let inner = if tasks > 1 {
        CpuOptions {
            threads: 1,
            ..*opts
        }
    } else {
        *opts
    };
    let first_error = Mutex::new(None);
    for_each_task(opts.threads, tasks, |t| {
        for b in (t..shape.batch).step_by(tasks) {
            if let Err(e) = one(t, b, &inner) {
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

/// The inputs of the forward of one batch element: `[T, H*d]` rows, the `[T]` mask and,
/// with dropout, its draw, the index of the element's first score and an `[H, T, T]` buffer
/// for the probabilities after dropout.
struct ForwardOne<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    mask: Option<&'a [f32]>,
    dropout: Option<(DropoutMask, u64, &'a mut [f32])>,
}

impl ForwardOne<'_> {
    /// Writes the element's `[H, T, T]` probabilities to `p` and its output rows to `out`.
    fn run(
        self,
        scale: f32,
        shape: &AttentionShape,
        p: &mut [f32],
        out: &mut [f32],
        opts: &CpuOptions,
    ) -> Result<()> {
        let (t, d) = (shape.seq, shape.head_dim);
        if t == 0 || shape.heads == 0 {
            // No scores and no output values: nothing to compute (and a mask row would
            // cover heads * t = 0 score rows, which the softmax rejects).
            return Ok(());
        }
        // S_h = Q_h K_h^T, unscaled: the softmax applies the scale and the mask.
        let s = MatMut::row_major(p, t, t);
        let (q, k) = (shape.head(self.q), shape.head(self.k));
        shape.per_head([d, d, t * t], q, k.t(), s, opts)?;
        let mask = self.mask.map(|values| Mask {
            values,
            repeat: shape.heads * t,
        });
        softmax_inplace(p, shape.heads * t, t, scale, mask, opts)?;
        let p = match self.dropout {
            Some((m, first, dropped)) => {
                dropout(p, &m, first, dropped, opts)?;
                dropped
            }
            None => p,
        };
        // O_h = (P_h * M) V_h, written into the head's columns of the output rows.
        let (p, v) = (shape.scores_of(p), shape.head(self.v));
        shape.per_head([t * t, d, d], p, v, shape.head_mut(out), opts)
    }
}

/// Gradients of [`attention_forward`]: `dq`, `dk`, `dv` (`[B, T, H*d]`, overwritten) from the
/// saved probabilities `probs` (`[B, H, T, T]`, before dropout) and the output gradient
/// `dout`; `dropout` is the forward's draw.
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
    dropout: Option<&DropoutMask>,
    shape: &AttentionShape,
    scratch: &mut [f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "attention_backward";
    opts.validate(OP)?;
    shape.check_sizes(OP, opts.threads)?;
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
    let (dq, dk, dv) = (
        SharedSlice::new(dq),
        SharedSlice::new(dk),
        SharedSlice::new(dv),
    );
    let scratch = SharedSlice::new(scratch);
    for_each_batch(shape, opts, |task, b, inner| {
        let rows = shape.rows(b);
        // SAFETY: batch element `b` belongs to this task alone, so its rows of dq, dk and
        // dv are written by no other task; the task's two scratch blocks are indexed by
        // `task`.
        let (dqb, dkb, dvb, dp, ds) = unsafe {
            (
                dq.range(rows.clone()),
                dk.range(rows.clone()),
                dv.range(rows.clone()),
                scratch.range(shape.scores(2 * task)),
                scratch.range(shape.scores(2 * task + 1)),
            )
        };
        let one = BackwardOne {
            q: &q[rows.clone()],
            k: &k[rows.clone()],
            v: &v[rows.clone()],
            p: &probs[shape.scores(b)],
            dout: &dout[rows],
            dropout: dropout.map(|m| (*m, shape.first_score(b))),
        };
        one.run(scale, shape, dp, ds, [dqb, dkb, dvb], inner)
    })
}

/// The inputs of the backward of one batch element.
struct BackwardOne<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    p: &'a [f32],
    dout: &'a [f32],
    /// The forward's dropout draw and the index of the element's first score.
    dropout: Option<(DropoutMask, u64)>,
}

impl BackwardOne<'_> {
    /// Writes the element's `[dq, dk, dv]` rows, with `dp` and `ds` as `[H, T, T]` scratch.
    fn run(
        &self,
        scale: f32,
        shape: &AttentionShape,
        dp: &mut [f32],
        ds: &mut [f32],
        [dq, dk, dv]: [&mut [f32]; 3],
        opts: &CpuOptions,
    ) -> Result<()> {
        let (t, d, h) = (shape.seq, shape.head_dim, shape.heads);
        if t == 0 || h == 0 {
            // No scores and no gradient values: nothing to compute.
            return Ok(());
        }
        let (q, k, v) = (shape.head(self.q), shape.head(self.k), shape.head(self.v));
        let (p, dout) = (shape.scores_of(self.p), shape.head(self.dout));
        // dV_h = (P_h * M)^T dO_h, the dropped probabilities drawn again into `ds`.
        let kept = match self.dropout {
            Some((m, first)) => {
                dropout(self.p, &m, first, ds, opts)?;
                shape.scores_of(ds)
            }
            None => p,
        };
        shape.per_head([t * t, d, d], kept.t(), dout, shape.head_mut(dv), opts)?;
        // dP_h = (dO_h V_h^T) * M
        let dp_mat = MatMut::row_major(dp, t, t);
        shape.per_head([d, d, t * t], dout, v.t(), dp_mat, opts)?;
        if let Some((m, first)) = self.dropout {
            dropout_inplace(dp, &m, first, opts)?;
        }
        // dS = scale * P * (dP - rowsum(dP * P))
        softmax_backward(self.p, dp, ds, h * t, t, scale, opts)?;
        // dQ_h = dS_h K_h and dK_h = dS_h^T Q_h
        let ds = shape.scores_of(ds);
        shape.per_head([t * t, d, d], ds, k, shape.head_mut(dq), opts)?;
        shape.per_head([t * t, d, d], ds.t(), q, shape.head_mut(dk), opts)
    }
}

/// The factor dropout gives score `index` of `[B, H, T, T]` (1 without dropout), in f64.
fn dropout_factor(dropout: Option<&DropoutMask>, index: usize) -> f64 {
    dropout.map_or(1.0, |m| f64::from(m.factor(index as u64)))
}

/// Plain f64 attention for the tests: the output `[B, T, H*d]` and the probabilities
/// `[B, H, T, T]` (before dropout), with the same conventions as [`attention_forward`].
pub fn attention_reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    scale: f32,
    dropout: Option<&DropoutMask>,
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
                        .map(|j| {
                            let m = dropout_factor(dropout, row + j);
                            e[j] / sum * m * v[at(b, j, head, c)] as f64
                        })
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
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    dout: &[f32],
    scale: f32,
    dropout: Option<&DropoutMask>,
    shape: &AttentionShape,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (bs, t, h, d) = (shape.batch, shape.seq, shape.heads, shape.head_dim);
    let hd = h * d;
    let (_, probs) = attention_reference(q, k, v, mask, scale, dropout, shape);
    let at = |b: usize, i: usize, head: usize, c: usize| (b * t + i) * hd + head * d + c;
    let mut dq = vec![0.0f64; shape.qkv_len()];
    let mut dk = vec![0.0f64; shape.qkv_len()];
    let mut dv = vec![0.0f64; shape.qkv_len()];
    for b in 0..bs {
        for head in 0..h {
            let index = |i: usize, j: usize| ((b * h + head) * t + i) * t + j;
            let p = |i: usize, j: usize| probs[index(i, j)] as f64;
            let m = |i: usize, j: usize| dropout_factor(dropout, index(i, j));
            for i in 0..t {
                let dp: Vec<f64> = (0..t)
                    .map(|j| {
                        let dp: f64 = (0..d)
                            .map(|c| dout[at(b, i, head, c)] as f64 * v[at(b, j, head, c)] as f64)
                            .sum();
                        dp * m(i, j)
                    })
                    .collect();
                let dot: f64 = (0..t).map(|j| dp[j] * p(i, j)).sum();
                for j in 0..t {
                    let ds = scale as f64 * p(i, j) * (dp[j] - dot);
                    let kept = p(i, j) * m(i, j);
                    for c in 0..d {
                        dv[at(b, j, head, c)] += kept * dout[at(b, i, head, c)] as f64;
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

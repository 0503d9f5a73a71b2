//! Fused multi-head attention: `dropout(softmax(scale * Q K^T + mask)) V` per batch element
//! and head, one op with its own backward; the scores exist only inside it.

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Error, Result, Tensor};
use smelt_kernels::cpu::attention::{
    attention_backward, attention_forward, AttentionShape, Probs, ProbsDropout,
};
use smelt_kernels::cpu::dropout::DropoutMask;

/// The op's name, in errors and profiles.
pub(super) const OP: &str = "attention";

impl Graph<'_> {
    /// Attention over `q`, `k`, `v` of `[B, T, H*d]` (heads side by side in each row, as HF's
    /// projections give them) with `heads` heads, `scale` (HF: `1/sqrt(d)`) and an optional
    /// additive key mask `[B, T]` (0 for tokens, `f32::MIN` for padding, as HF), and dropout
    /// of probability `dropout` on the probabilities once [`Graph::enable_dropout`] turned it
    /// on (a dropout site either way; the probabilities are drawn in `[B, H, T, T]` order).
    /// Returns `[B, T, H*d]`. When recording, the probabilities `[B, H, T, T]` are saved for
    /// the backward; otherwise they live in scratch only.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &mut self,
        q: Var,
        k: Var,
        v: Var,
        mask: Option<&Tensor>,
        heads: usize,
        scale: f32,
        dropout: f32,
    ) -> Result<Var> {
        let qt = self.value(q);
        let shape = attention_shape(qt, heads)?;
        shape.check_sizes(OP, self.opts.threads)?;
        for (name, var) in [("k", k), ("v", v)] {
            if self.value(var).dims() != qt.dims() {
                return Err(Error::Shape {
                    op: OP,
                    detail: format!(
                        "q {} and {name} {} differ",
                        qt.shape(),
                        self.value(var).shape()
                    ),
                });
            }
        }
        let dims = *qt.shape();
        // A strided mask (a narrowed view, say) is gathered first, as the other ops do.
        let mask = match mask {
            Some(m) if m.dims() == [shape.batch, shape.seq] => {
                Some(m.contiguous_for(OP, self.arena)?)
            }
            Some(m) => {
                return Err(Error::Shape {
                    op: OP,
                    detail: format!(
                        "q {} needs a mask of [{}, {}], got {}",
                        dims,
                        shape.batch,
                        shape.seq,
                        m.shape()
                    ),
                })
            }
            None => None,
        };
        let mask = match &mask {
            Some(m) => Some(m.contiguous_data(OP, self.arena)?),
            None => None,
        };
        let drop_mask = self.next_dropout(OP, dropout)?;
        let (qd, kd, vd) = (self.dense(OP, q)?, self.dense(OP, k)?, self.dense(OP, v)?);
        let record = self.records(&[q, k, v]);
        let opts = self.opts;
        let probs = if record {
            self.alloc_tensor(OP, &[shape.batch, heads, shape.seq, shape.seq])?
        } else {
            self.alloc_tensor(OP, &[shape.forward_scratch_len(opts.threads)])?
        };
        let dropped = match drop_mask {
            Some(m) => Some((
                m,
                self.alloc_tensor(OP, &[shape.forward_scratch_len(opts.threads)])?,
            )),
            None => None,
        };
        let value = self.alloc_with(OP, dims.dims(), |out| {
            // SAFETY: `probs` and `dropped` were just taken from the pool or the arena and are
            // different buffers from `out` and from each other; nothing else refers to them.
            let buffer = unsafe { self.buffer_mut(OP, &probs)? };
            let p = if record {
                Probs::Save(buffer)
            } else {
                Probs::Scratch(buffer)
            };
            let dropout = match &dropped {
                Some((mask, d)) => Some(ProbsDropout {
                    mask: *mask,
                    // SAFETY: as for `probs` above.
                    scratch: unsafe { self.buffer_mut(OP, d)? },
                }),
                None => None,
            };
            Ok(attention_forward(
                qd, kd, vd, mask, scale, &shape, p, dropout, out, &opts,
            )?)
        })?;
        if let Some((_, d)) = dropped {
            self.recycle(d);
        }
        let out = self.push_value(OP, value, record);
        if !record {
            self.recycle(probs);
        } else {
            self.record(Node::Attention {
                q,
                k,
                v,
                probs,
                shape,
                scale,
                dropout: drop_mask,
                out,
            });
        }
        Ok(out)
    }
}

/// The attention sizes of `q [B, T, H*d]` with `heads` heads.
fn attention_shape(q: &Tensor, heads: usize) -> Result<AttentionShape> {
    match *q.dims() {
        [batch, seq, width] if heads > 0 && width % heads == 0 => Ok(AttentionShape {
            batch,
            seq,
            heads,
            head_dim: width / heads,
        }),
        _ => Err(Error::Shape {
            op: OP,
            detail: format!(
                "q {} must be [B, T, H*d] with {heads} heads dividing its last dimension",
                q.shape()
            ),
        }),
    }
}

/// `dq`, `dk`, `dv` from the saved probabilities and the forward's dropout draw (the kernel
/// documents the formulas).
pub(super) fn backward(
    g: &mut Graph<'_>,
    [q, k, v]: [Var; 3],
    probs: &Tensor,
    shape: &AttentionShape,
    scale: f32,
    dropout: Option<&DropoutMask>,
    dout: &Tensor,
) -> Result<()> {
    let arena = g.arena;
    let opts = g.opts;
    let dims = *g.value(q).shape();
    let (qd, kd, vd) = (g.dense(OP, q)?, g.dense(OP, k)?, g.dense(OP, v)?);
    let p = probs.contiguous_data(OP, arena)?;
    let dy = dout.contiguous_data(OP, arena)?;
    let scratch = g.alloc_tensor(OP, &[shape.backward_scratch_len(opts.threads)])?;
    let dk = g.alloc_tensor(OP, dims.dims())?;
    let dv = g.alloc_tensor(OP, dims.dims())?;
    let dq = g.alloc_tensor(OP, dims.dims())?;
    // SAFETY: the four buffers were just taken from the pool or the arena, are distinct, and
    // nothing else refers to them.
    let (s, dqs, dks, dvs) = unsafe {
        (
            g.buffer_mut(OP, &scratch)?,
            g.buffer_mut(OP, &dq)?,
            g.buffer_mut(OP, &dk)?,
            g.buffer_mut(OP, &dv)?,
        )
    };
    attention_backward(
        qd, kd, vd, p, dy, scale, dropout, shape, s, dqs, dks, dvs, &opts,
    )?;
    g.recycle(scratch);
    g.accumulate(q, dq)?;
    g.accumulate(k, dk)?;
    g.accumulate(v, dv)
}

#[cfg(test)]
mod tests {
    use crate::testing::random_tensor;
    use crate::{Arena, CpuOptions, Graph, Tape, Tensor};

    /// A mask that is a strided view (a narrowed padded mask) gives what its contiguous copy
    /// gives (it was refused as not contiguous).
    #[test]
    fn a_strided_mask_is_gathered() {
        let (batch, seq, heads, dim) = (2, 5, 2, 4);
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), false);
        let dims = [batch, seq, heads * dim];
        let [q, k, v] = [1, 2, 3].map(|seed| g.leaf(random_tensor(&dims, seed), false));
        let wide: Vec<f32> = (0..batch * 8)
            .map(|i| if i % 8 == 3 { f32::MIN } else { 0.0 })
            .collect();
        let strided = Tensor::from_vec(&[batch, 8], wide)
            .unwrap()
            .narrow(1, 0, seq)
            .unwrap();
        assert!(!strided.is_contiguous());
        let dense = Tensor::from_vec(&[batch, seq], strided.to_vec(&arena).unwrap()).unwrap();
        let from_view = g
            .attention(q, k, v, Some(&strided), heads, 0.5, 0.0)
            .unwrap();
        let from_copy = g.attention(q, k, v, Some(&dense), heads, 0.5, 0.0).unwrap();
        assert_eq!(
            g.value(from_view).to_vec(&arena).unwrap(),
            g.value(from_copy).to_vec(&arena).unwrap()
        );
    }
}

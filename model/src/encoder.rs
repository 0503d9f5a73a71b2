//! The BERT / DistilBERT encoder: embeddings, post-LN transformer layers, BERT's pooler.
//!
//! Parameters are indices into the model's [`Params`]; [`Encoder::forward`] reads them
//! through the step's [`Leaves`].

use crate::batch::Batch;
use crate::config::{Config, Family};
use crate::weights::{Params, WeightSource};
use smelt_engine::{Graph, Leaves, Result, Var};
use smelt_kernels::cpu::gemm::PackedB;

/// A linear layer's `[out, in]` weight and `[out]` bias.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Linear {
    pub w: usize,
    pub b: usize,
}

/// A layer norm's weight and bias.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Norm {
    pub w: usize,
    pub b: usize,
}

/// One transformer layer.
#[derive(Clone, Copy, Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: Norm,
}

/// Adds parameters from a [`WeightSource`] under HF names, checking their shapes.
pub(crate) struct Builder<'a> {
    pub source: &'a dyn WeightSource,
    pub params: &'a mut Params,
}

impl Builder<'_> {
    pub fn tensor(&mut self, name: &str, dims: &[usize]) -> Result<usize> {
        let (found, tensor) = self.source.load(name, dims)?;
        Ok(self.params.push(found, tensor))
    }

    pub fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            w: self.tensor(&format!("{name}.weight"), &[out, inp])?,
            b: self.tensor(&format!("{name}.bias"), &[out])?,
        })
    }

    pub fn norm(&mut self, name: &str, width: usize) -> Result<Norm> {
        Ok(Norm {
            w: self.tensor(&format!("{name}.weight"), &[width])?,
            b: self.tensor(&format!("{name}.bias"), &[width])?,
        })
    }
}

/// The embeddings, layers and (BERT) pooler.
#[derive(Clone, Debug)]
pub(crate) struct Encoder {
    pub config: Config,
    pub word: usize,
    position: usize,
    token_type: Option<usize>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    pooler: Option<Linear>,
}

/// What the encoder produced for a batch.
#[derive(Clone, Copy, Debug)]
pub struct EncoderOutput {
    /// `[B, T, hidden]`.
    pub hidden: Var,
    /// `[B, hidden]`: `tanh(W h[:, 0] + b)`, for a BERT with a pooler.
    pub pooled: Option<Var>,
}

impl Encoder {
    /// Loads every encoder parameter under HF's names; the pooler when `pooler` is true.
    pub fn build(config: &Config, b: &mut Builder<'_>, pooler: bool) -> Result<Encoder> {
        let (h, f) = (config.hidden, config.intermediate);
        let bert = config.family == Family::Bert;
        let word = b.tensor("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let position = b.tensor(
            "embeddings.position_embeddings.weight",
            &[config.max_positions, h],
        )?;
        let token_type = if bert {
            Some(b.tensor(
                "embeddings.token_type_embeddings.weight",
                &[config.type_vocab_size, h],
            )?)
        } else {
            None
        };
        let embed_norm = b.norm("embeddings.LayerNorm", h)?;
        let layers = (0..config.layers)
            .map(|i| {
                if bert {
                    let p = format!("encoder.layer.{i}");
                    Ok(Layer {
                        query: b.linear(&format!("{p}.attention.self.query"), h, h)?,
                        key: b.linear(&format!("{p}.attention.self.key"), h, h)?,
                        value: b.linear(&format!("{p}.attention.self.value"), h, h)?,
                        attn_out: b.linear(&format!("{p}.attention.output.dense"), h, h)?,
                        attn_norm: b.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                        ffn_in: b.linear(&format!("{p}.intermediate.dense"), f, h)?,
                        ffn_out: b.linear(&format!("{p}.output.dense"), h, f)?,
                        ffn_norm: b.norm(&format!("{p}.output.LayerNorm"), h)?,
                    })
                } else {
                    let p = format!("transformer.layer.{i}");
                    Ok(Layer {
                        query: b.linear(&format!("{p}.attention.q_lin"), h, h)?,
                        key: b.linear(&format!("{p}.attention.k_lin"), h, h)?,
                        value: b.linear(&format!("{p}.attention.v_lin"), h, h)?,
                        attn_out: b.linear(&format!("{p}.attention.out_lin"), h, h)?,
                        attn_norm: b.norm(&format!("{p}.sa_layer_norm"), h)?,
                        ffn_in: b.linear(&format!("{p}.ffn.lin1"), f, h)?,
                        ffn_out: b.linear(&format!("{p}.ffn.lin2"), h, f)?,
                        ffn_norm: b.norm(&format!("{p}.output_layer_norm"), h)?,
                    })
                }
            })
            .collect::<Result<Vec<Layer>>>()?;
        let pooler = if bert && pooler {
            Some(b.linear("pooler.dense", h, h)?)
        } else {
            None
        };
        Ok(Encoder {
            config: config.clone(),
            word,
            position,
            token_type,
            embed_norm,
            layers,
            pooler,
        })
    }

    /// The parameter indices of every linear weight (the layers' six, and the pooler's).
    pub fn linear_weights(&self) -> impl Iterator<Item = usize> + '_ {
        let layers = self.layers.iter().flat_map(|l| {
            [l.query, l.key, l.value, l.attn_out, l.ffn_in, l.ffn_out].map(|linear| linear.w)
        });
        layers.chain(self.pooler.map(|linear| linear.w))
    }

    /// The hidden states (and pooled output) of `batch`, with dropout where HF's training mode
    /// has it once `g` has dropout on (see [`Model::forward`](crate::Model::forward)). A
    /// linear weight with a packing in `packed` (by parameter index) is multiplied through it.
    pub fn forward(
        &self,
        g: &mut Graph<'_>,
        p: &Leaves,
        packed: &[Option<PackedB>],
        batch: &Batch,
    ) -> Result<EncoderOutput> {
        let linear = |g: &mut Graph<'_>, x, l| linear_packed(g, p, packed, x, l);
        let c = &self.config;
        let eps = c.layer_norm_eps;
        let var = |i: usize| leaf(p, i);
        let dims = [batch.batch, batch.seq];
        let words = g.embedding(var(self.word)?, &batch.input_ids, &dims, c.pad_token_id)?;
        let positions = g.embedding(var(self.position)?, &batch.position_ids, &dims, None)?;
        let h = match self.token_type {
            Some(types) => {
                let types = g.embedding(var(types)?, &batch.token_type_ids, &dims, None)?;
                let x = g.add(words, positions)?;
                release(g, &[words, positions]);
                let h = norm_residual(g, p, x, types, self.embed_norm, eps)?;
                release(g, &[x, types]);
                h
            }
            None => {
                let h = norm_residual(g, p, words, positions, self.embed_norm, eps)?;
                release(g, &[words, positions]);
                h
            }
        };
        let mut h = dropout(g, h, c.dropout.hidden)?;
        let scale = 1.0 / (c.head_dim() as f32).sqrt();
        let mask = batch.additive_mask.as_ref();
        for layer in &self.layers {
            let q = linear(g, h, layer.query)?;
            let k = linear(g, h, layer.key)?;
            let v = linear(g, h, layer.value)?;
            let ctx = g.attention(q, k, v, mask, c.heads, scale, c.dropout.attention)?;
            release(g, &[q, k, v]);
            let a = linear(g, ctx, layer.attn_out)?;
            // BERT drops the attention block's output; DistilBERT does not.
            let a = match c.family {
                Family::Bert => dropout(g, a, c.dropout.hidden)?,
                Family::DistilBert => a,
            };
            let h1 = norm_residual(g, p, a, h, layer.attn_norm, eps)?;
            release(g, &[ctx, a, h]);
            let f = linear(g, h1, layer.ffn_in)?;
            let f_act = g.gelu(f)?;
            release(g, &[f]);
            let o = linear(g, f_act, layer.ffn_out)?;
            let o = dropout(g, o, c.dropout.hidden)?;
            h = norm_residual(g, p, o, h1, layer.ffn_norm, eps)?;
            release(g, &[f_act, o, h1]);
        }
        let pooled = match self.pooler {
            Some(pooler) => {
                let cls = g.select_token(h, 0)?;
                let y = linear(g, cls, pooler)?;
                Some(g.tanh(y)?)
            }
            None => None,
        };
        Ok(EncoderOutput { hidden: h, pooled })
    }

    /// Multiply-adds of one forward over `tokens` tokens in sequences of `seq`, times two
    /// (FLOPs): the linear layers and the two attention products.
    pub fn forward_flops(&self, tokens: usize, seq: usize) -> f64 {
        let c = &self.config;
        let (h, f) = (c.hidden as f64, c.intermediate as f64);
        let per_token = 4.0 * h * h + 2.0 * h * f + 2.0 * seq as f64 * h;
        2.0 * tokens as f64 * per_token * c.layers as f64
    }
}

/// Hands the buffers of values no longer needed back for reuse (only when not recording:
/// see [`Graph::release_value`]).
fn release(g: &mut Graph<'_>, vars: &[Var]) {
    for &v in vars {
        // SAFETY: the forward releases each value once, after the last op that reads it;
        // every released value is an op's fresh output (no view of another value, and no
        // value is a view of it), and no slice of its data is held across ops.
        unsafe { g.release_value(v) };
    }
}

/// The `Var` of parameter `i`.
pub(crate) fn leaf(p: &Leaves, i: usize) -> Result<Var> {
    p.get(i).ok_or_else(|| smelt_engine::Error::Shape {
        op: "model",
        detail: format!("parameter {i} is not bound in this step ({} are)", p.len()),
    })
}

/// [`Graph::dropout`] of `x`, releasing `x` when dropout made a new value of it.
pub(crate) fn dropout(g: &mut Graph<'_>, x: Var, p: f32) -> Result<Var> {
    let y = g.dropout(x, p)?;
    if y != x {
        release(g, &[x]);
    }
    Ok(y)
}

/// `x W^T + b` with the parameters of `l`.
pub(crate) fn linear(g: &mut Graph<'_>, p: &Leaves, x: Var, l: Linear) -> Result<Var> {
    linear_packed(g, p, &[], x, l)
}

/// [`linear`], through `W`'s packing in `packed` (by parameter index) when it has one.
fn linear_packed(
    g: &mut Graph<'_>,
    p: &Leaves,
    packed: &[Option<PackedB>],
    x: Var,
    l: Linear,
) -> Result<Var> {
    let (w, b) = (leaf(p, l.w)?, Some(leaf(p, l.b)?));
    match packed.get(l.w).and_then(Option::as_ref) {
        Some(packing) => g.linear_prepacked(x, w, packing, b),
        None => g.linear(x, w, b),
    }
}

/// Layer norm with the parameters of `n`.
pub(crate) fn norm(g: &mut Graph<'_>, p: &Leaves, x: Var, n: Norm, eps: f32) -> Result<Var> {
    g.layer_norm(x, leaf(p, n.w)?, leaf(p, n.b)?, eps)
}

/// Layer norm of `x + residual` with the parameters of `n`.
fn norm_residual(
    g: &mut Graph<'_>,
    p: &Leaves,
    x: Var,
    residual: Var,
    n: Norm,
    eps: f32,
) -> Result<Var> {
    g.layer_norm_residual(x, residual, leaf(p, n.w)?, leaf(p, n.b)?, eps)
}

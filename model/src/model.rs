//! [`Model`]: an encoder with an optional head over one list of named parameters, loaded from
//! a HF model directory or initialised at random.

use crate::batch::Batch;
use crate::config::{Config, Family};
use crate::encoder::{Builder, Encoder, EncoderOutput};
use crate::heads::{Head, HeadKind};
use crate::weights::{Checkpoint, Params, RandomInit, WeightSource};
use smelt_engine::{Arena, CpuOptions, Error, Graph, Leaves, Result, Tensor, Var};
use smelt_kernels::cpu::gemm::{MatRef, PackedB};
use std::path::Path;
use std::sync::Arc;

/// A BERT or DistilBERT with an optional head.
#[derive(Clone, Debug)]
pub struct Model {
    params: Params,
    encoder: Encoder,
    head: Option<Head>,
    /// The encoder's linear weights packed for the GEMM, by parameter index, after
    /// [`Model::prepack`]; empty otherwise. Shared by clones, as the parameters are.
    packed: Arc<[Option<PackedB>]>,
}

/// The values of one forward pass.
#[derive(Clone, Copy, Debug)]
pub struct Forward {
    /// The parameters bound in this step: leaf `i` is parameter `i`.
    pub params: Leaves,
    /// The last hidden state `[B, T, hidden]`.
    pub hidden: Var,
    /// BERT's pooler output `[B, hidden]`, when the model has a pooler.
    pub pooled: Option<Var>,
    /// The head's logits, when the model has a head.
    pub logits: Option<Var>,
}

impl Model {
    /// Loads `dir/config.json` and `dir/model.safetensors` (memory-mapped; F32 weights are
    /// used in place). The head follows the config's `architectures` entry; a BERT gets its
    /// pooler when the checkpoint has one, never with the masked-LM head (as HF's
    /// `BertForMaskedLM`), and always for classification. An architecture whose head is not
    /// built here ([`HeadKind::from_architecture`]) is an error naming it, not a silent bare
    /// encoder; [`Model::load_with_head`] with [`HeadKind::None`] loads its encoder alone.
    pub fn load(dir: &Path) -> Result<Model> {
        let path = dir.join("config.json");
        let config = Config::load(&path)?;
        let architecture = config.architecture.as_deref();
        let Some(head) = HeadKind::from_architecture(architecture) else {
            return Err(Error::Format {
                file: path.display().to_string(),
                detail: format!(
                    "architecture {:?} has a head this crate does not build (it builds the bare \
                     encoder, *ForMaskedLM and *ForSequenceClassification); \
                     Model::load_with_head with HeadKind::None loads its encoder alone",
                    architecture.unwrap_or_default()
                ),
            });
        };
        Model::load_with_head(dir, &config, head)
    }

    /// Loads the weights in `dir/model.safetensors` for `config` with the head `head`. A
    /// checkpoint holding layers past the config's count, or a tensor both with and without
    /// the `bert.` / `distilbert.` prefix, is an error naming the tensor.
    pub fn load_with_head(dir: &Path, config: &Config, head: HeadKind) -> Result<Model> {
        let (prefix, layer_root) = match config.family {
            Family::Bert => ("bert.", "encoder.layer"),
            Family::DistilBert => ("distilbert.", "transformer.layer"),
        };
        let path = dir.join("model.safetensors");
        if !path.exists() {
            if let Some(other) = unread_layout(dir) {
                return Err(Error::Io {
                    file: path.display().to_string(),
                    detail: format!("not found; {other}"),
                });
            }
        }
        let checkpoint = Checkpoint::open(&path, prefix)?;
        checkpoint.check_unambiguous()?;
        checkpoint.check_layer_count(layer_root, config.layers)?;
        let pooler = match (
            checkpoint.contains("pooler.dense.weight"),
            checkpoint.contains("pooler.dense.bias"),
        ) {
            (weight, bias) if weight == bias => weight,
            (weight, _) => {
                let (has, lacks) = if weight {
                    ("weight", "bias")
                } else {
                    ("bias", "weight")
                };
                return Err(Error::Format {
                    file: path.display().to_string(),
                    detail: format!(
                        "the pooler is half there: 'pooler.dense.{has}' without \
                         'pooler.dense.{lacks}'"
                    ),
                });
            }
        };
        Model::build(config, head, pooler, &checkpoint)
    }

    /// A model of `config` with seeded random weights (see [`RandomInit`]).
    pub fn random(config: &Config, head: HeadKind, seed: u64) -> Result<Model> {
        Model::build(config, head, true, &RandomInit::new(seed))
    }

    /// The bare encoder of `config` (no pooler, no head) with seeded random weights: what
    /// HF's `BertModel(config, add_pooling_layer=False)` and `DistilBertModel` compute, so
    /// the benchmarks measure the same work as their PyTorch and ONNX Runtime peers.
    pub fn random_encoder(config: &Config, seed: u64) -> Result<Model> {
        Model::build(config, HeadKind::None, false, &RandomInit::new(seed))
    }

    fn build(
        config: &Config,
        head: HeadKind,
        pooler: bool,
        source: &dyn WeightSource,
    ) -> Result<Model> {
        config.validate()?;
        let mut params = Params::default();
        let mut builder = Builder {
            source,
            params: &mut params,
        };
        let pooler = match head {
            HeadKind::None => pooler,
            HeadKind::MaskedLm => false,
            HeadKind::Classification => true,
        };
        let encoder = Encoder::build(config, &mut builder, pooler)?;
        let head = Head::build(config, head, encoder.word, &mut builder)?;
        Ok(Model {
            params,
            encoder,
            head,
            packed: Arc::new([]),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &Config {
        &self.encoder.config
    }

    /// Clears the config's dropout probabilities, so that a [`Trainer`](crate::Trainer) trains
    /// this model as HF's eval mode computes (no dropout; see [`Dropout`](crate::Dropout)).
    pub fn disable_dropout(&mut self) {
        self.encoder.config.dropout = crate::Dropout::NONE;
    }

    /// The parameters, in the order [`Forward::params`] binds them, with checkpoint names.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Mutable parameters, for an optimizer. Drops the packing of [`Model::prepack`], which
    /// would no longer hold the weights' values.
    pub fn params_mut(&mut self) -> &mut Params {
        self.drop_packing();
        &mut self.params
    }

    /// Forgets the packing of [`Model::prepack`], if any (without allocating when there is
    /// none: an optimizer step calls this through [`Model::params_mut`]).
    fn drop_packing(&mut self) {
        if !self.packed.is_empty() {
            self.packed = Arc::new([]);
        }
    }

    /// Packs the encoder's linear weights once for the GEMM kernel of `opts.isa`, so that a
    /// forward on a graph with those options multiplies by them without packing them again:
    /// a fifth of the time of a linear layer over 128 tokens (ONNX Runtime does the same with
    /// constant weights). Costs a second copy of those weights (about 4 bytes per parameter of
    /// the linear layers: 340 MB for BERT-base); [`Model::params_mut`] and
    /// [`Model::make_trainable`] drop it, since the weights may then change. The values of a
    /// forward do not change.
    pub fn prepack(&mut self, opts: &CpuOptions) -> Result<()> {
        let arena = Arena::new();
        let mut packed: Vec<Option<PackedB>> = (0..self.params.len()).map(|_| None).collect();
        for w in self.encoder.linear_weights() {
            let param = self.params.get(w).ok_or_else(|| Error::Shape {
                op: "prepack",
                detail: format!("parameter {w} of {}", self.params.len()),
            })?;
            let t = &param.tensor;
            let (&[out, inp], &[rs, cs]) = (t.dims(), t.strides()) else {
                return Err(Error::Shape {
                    op: "prepack",
                    detail: format!("'{}' {} is not a matrix", param.name, t.shape()),
                });
            };
            let data = t.data(&arena)?.get(t.offset()..).unwrap_or(&[]);
            let b = MatRef::strided(data, out, inp, rs, cs).t();
            packed[w] = Some(PackedB::new(b, opts)?);
        }
        self.packed = packed.into();
        Ok(())
    }

    /// Whether [`Model::prepack`] packed the weights (and nothing dropped the packing since).
    pub fn is_prepacked(&self) -> bool {
        self.packed.iter().any(Option::is_some)
    }

    /// Gives every parameter its own writable host buffer (memory-mapped weights are copied
    /// once), as training needs. Drops the packing of [`Model::prepack`].
    pub fn make_trainable(&mut self) -> Result<()> {
        self.drop_packing();
        for p in self.params.iter_mut() {
            if p.tensor.host_mut().is_none() {
                let values = p.tensor.to_vec(&smelt_engine::Arena::new())?;
                p.tensor = Tensor::from_vec(p.tensor.dims(), values)?;
            }
        }
        Ok(())
    }

    /// Runs the encoder and head on `batch`. Parameters are bound as leaves that need a
    /// gradient when `g` is recording.
    ///
    /// Once `g` has dropout on ([`Graph::enable_dropout`]) it drops with the config's
    /// probabilities where HF's training mode does, each site drawing the next stream in HF's
    /// order: the embeddings; per layer the attention probabilities, (BERT only) the attention
    /// output and the feed-forward output; before a classifier's last linear layer.
    pub fn forward(&self, g: &mut Graph<'_>, batch: &Batch) -> Result<Forward> {
        let needs_grad = g.is_recording();
        let params = g.leaves(self.params.iter().map(|p| &p.tensor), needs_grad);
        let EncoderOutput { hidden, pooled } =
            self.encoder.forward(g, &params, &self.packed, batch)?;
        let logits = match &self.head {
            Some(head) => {
                Some(head.forward(g, &params, self.config(), &EncoderOutput { hidden, pooled })?)
            }
            None => None,
        };
        Ok(Forward {
            params,
            hidden,
            pooled,
            logits,
        })
    }

    /// The head's loss on the batch's labels. Errors when the model has no head, and for a
    /// classifier whose config makes HF use regression or multi-label loss (see
    /// [`Config::problem`]).
    pub fn loss(&self, g: &mut Graph<'_>, forward: &Forward, batch: &Batch) -> Result<Var> {
        match (&self.head, forward.logits) {
            (Some(head), Some(logits)) => head.loss(g, self.config(), logits, batch),
            _ => Err(Error::Input {
                op: "loss",
                detail: "the model has no head; use a probe or sum-of-squares loss".into(),
            }),
        }
    }

    /// FLOPs of one encoder forward over `batch` sequences of `seq` tokens (linear layers and
    /// attention products; the backward costs about twice this).
    pub fn forward_flops(&self, batch: usize, seq: usize) -> f64 {
        self.encoder.forward_flops(batch * seq, seq)
    }
}

/// What `dir` holds instead of a `model.safetensors`, when it is a weight layout HF reads and
/// smelt does not: shards listed by an index, or a PyTorch pickle.
fn unread_layout(dir: &Path) -> Option<String> {
    if dir.join("model.safetensors.index.json").exists() {
        return Some(
            "the directory holds a sharded checkpoint (model.safetensors.index.json), which smelt \
             does not read: save it as one file (save_pretrained with a max_shard_size above \
             the model's size)"
                .into(),
        );
    }
    dir.join("pytorch_model.bin").exists().then(|| {
        "the directory holds pytorch_model.bin (a PyTorch pickle), which smelt does not read: \
         save the model with save_pretrained(dir, safe_serialization=True)"
            .into()
    })
}

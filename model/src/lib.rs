//! BERT and DistilBERT on the smelt engine: HF `config.json` and `model.safetensors` (memory
//! mapped), the encoder with BERT's pooler, masked-LM and classification heads, and a
//! training step with AdamW.
//!
//! ```text
//! Model::load(dir) -> Batch::new(config, ids, mask, types) -> Model::forward(graph, batch)
//!   -> hidden [B, T, H], pooled [B, H], logits -> loss -> Graph::backward -> Trainer::step
//! ```

mod batch;
mod config;
mod encoder;
mod heads;
mod json_file;
mod model;
mod sentence;
mod sentence_config;
pub mod text;
mod train;
mod weights;

pub use batch::Batch;
pub use config::{Config, Dropout, Family, ProblemType};
pub use encoder::EncoderOutput;
pub use heads::HeadKind;
pub use model::{Forward, Model};
pub use sentence::{Embeddings, Pooling, SentenceEncoder};
pub use train::{Objective, Trainer};
pub use weights::{Checkpoint, Param, Params, RandomInit, WeightSource};

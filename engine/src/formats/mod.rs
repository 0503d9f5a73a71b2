//! File formats: JSON (HuggingFace config files) and safetensors (weights, inputs, outputs).
//!
//! Both readers are strict and never panic on malformed input: every failure is an error that
//! says where (line and column, or file and tensor) and what.

pub mod half;
pub mod json;
pub mod safetensors;

pub use half::{bf16_to_f32, f16_to_f32};
pub use json::{Json, JsonError};
pub use safetensors::{
    write, write_tensors, Dtype, RawTensor, SafeTensors, TensorData, TensorInfo,
};

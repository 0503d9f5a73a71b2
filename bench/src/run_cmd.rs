//! `smelt run --model DIR --input IN.safetensors --output OUT.safetensors [--grad]`: runs a HF
//! BERT/DistilBERT directory on the inputs in IN and writes `last_hidden_state`,
//! `pooler_output` (a BERT with a pooler) and, with `--grad`, the scalar
//! `loss = sum(last_hidden_state * probe)` and `grad.<name>` for every parameter under its
//! checkpoint name.

use crate::args::Args;
use crate::memory::{self, param_count, step_tokens, Work};
use crate::output::{outln, PendingFile};
use smelt_engine::formats::safetensors::{write_tensors, Dtype, SafeTensors, TensorData};
use smelt_engine::{Arena, CpuOptions, Graph, Tape, Tensor};
use smelt_model::{Batch, Config, HeadKind, Model, Objective};
use std::path::Path;

/// Runs the command. The output goes to a temporary file beside OUT (made first, so a missing
/// or read-only directory is an error before any work) and is renamed to OUT once written
/// whole; the input's shape is checked against the memory available before the model loads.
pub fn run(args: &Args) -> Result<(), String> {
    args.only(&["model", "input", "output", "grad", "threads"])?;
    let need = |name: &str| {
        args.all(name)
            .last()
            .cloned()
            .ok_or_else(|| format!("run: --{name} is required"))
    };
    let (dir, input, output) = (need("model")?, need("input")?, need("output")?);
    let threads = args.threads()?;
    let grad = args.flag("grad");
    let pending = PendingFile::create("--output", &output)?;
    let e = |e: smelt_engine::Error| e.to_string();
    let dir = Path::new(&dir);
    let config = Config::load(&dir.join("config.json")).map_err(e)?;
    let inputs = SafeTensors::open(Path::new(&input)).map_err(e)?;
    refuse_unsupported_inputs(&inputs)?;
    let shape = check_ids(&inputs, &config)?;
    check_memory(&inputs, &config, shape, grad)?;
    let model = Model::load_with_head(dir, &config, HeadKind::None).map_err(e)?;
    let batch = read_batch(&inputs, &config, shape)?;
    let probe = if grad {
        let probe = inputs.tensor_f32("probe").map_err(e)?;
        let want = [batch.batch(), batch.seq(), config.hidden];
        if probe.dims() != want {
            return Err(format!(
                "{input}: tensor 'probe' has shape {:?}, the last hidden state is {want:?}",
                probe.dims()
            ));
        }
        Some(probe)
    } else {
        if inputs.info("probe").is_some() {
            eprintln!("smelt run: {input}: 'probe' is read only with --grad; ignored");
        }
        None
    };

    let arena = Arena::new();
    let mut tape = Tape::new();
    let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(threads), grad);
    let f = model.forward(&mut g, &batch).map_err(e)?;
    let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let keep = |out: &mut Vec<_>, name: String, t: &Tensor| -> Result<(), String> {
        out.push((name, t.dims().to_vec(), t.to_vec(&arena).map_err(e)?));
        Ok(())
    };
    keep(&mut out, "last_hidden_state".into(), g.value(f.hidden))?;
    if let Some(pooled) = f.pooled {
        keep(&mut out, "pooler_output".into(), g.value(pooled))?;
    }
    if let Some(probe) = probe {
        let loss = Objective::Probe(probe)
            .loss(&model, &mut g, &f, &batch)
            .map_err(e)?;
        g.backward(loss).map_err(e)?;
        keep(&mut out, "loss".into(), g.value(loss))?;
        for (i, param) in model.params().iter().enumerate() {
            let name = format!("grad.{}", param.name);
            match f.params.get(i).and_then(|var| g.grad(var)) {
                Some(grad) => keep(&mut out, name, grad)?,
                // A parameter the loss does not reach (BERT's pooler) has a zero gradient.
                None => out.push((
                    name,
                    param.tensor.dims().to_vec(),
                    vec![0.0; param.tensor.numel()],
                )),
            }
        }
    }
    let tensors: Vec<(&str, &[usize], TensorData<'_>)> = out
        .iter()
        .map(|(name, dims, values)| (name.as_str(), dims.as_slice(), TensorData::F32(values)))
        .collect();
    write_tensors(pending.temp(), &tensors, &[]).map_err(|err| pending.error(err))?;
    pending.commit()?;
    outln!("wrote {} tensors to {output}", tensors.len())
}

/// Refuses inputs of `[batch, seq]` tokens (`input_ids`' shape) whose forward (and with
/// `grad` backward) would not fit in the memory this machine has available, or that are more
/// tokens than one step takes ([`memory::MAX_TOKENS`]), naming the file, the tensor and its
/// shape.
fn check_memory(
    inputs: &SafeTensors,
    config: &Config,
    (batch, seq): (usize, usize),
    grad: bool,
) -> Result<(), String> {
    let what = format!("{}: input_ids of shape [{batch}, {seq}]", inputs.file());
    step_tokens(config, batch, seq, &what)?;
    let (work, outputs) = if grad {
        // The gradients copied out for the file.
        (Work::Backward, 4.0 * param_count(config) as f64)
    } else {
        (Work::Forward, 0.0)
    };
    memory::check(config, (batch, seq), work, outputs, &what)
}

/// Inputs of HF's forward that this command does not take: with any of them in the file the
/// outputs would silently differ from HF's, so each is an error. (Other tensors, such as a
/// reference file's expected outputs, are not read.)
const UNSUPPORTED_INPUTS: [&str; 4] = [
    "position_ids",
    "head_mask",
    "inputs_embeds",
    "encoder_hidden_states",
];

/// An error naming the file and the first tensor of [`UNSUPPORTED_INPUTS`] it holds.
fn refuse_unsupported_inputs(inputs: &SafeTensors) -> Result<(), String> {
    match UNSUPPORTED_INPUTS.iter().find(|n| inputs.info(n).is_some()) {
        Some(name) => Err(format!(
            "{}: tensor '{name}' is an input smelt run does not take (it reads input_ids, \
             attention_mask, token_type_ids and, with --grad, probe)",
            inputs.file()
        )),
        None => Ok(()),
    }
}

/// `input_ids` `[B, T]` (I64 or I32, of the shape [`check_ids`] read), optional
/// `attention_mask` (integers, booleans, or floats of 0 and 1, as HF takes them) and
/// `token_type_ids` of the same shape, checked against the model.
fn read_batch(
    inputs: &SafeTensors,
    config: &Config,
    (batch, seq): (usize, usize),
) -> Result<Batch, String> {
    let e = |e: smelt_engine::Error| e.to_string();
    let (dims, ids) = inputs.tensor_i64("input_ids").map_err(e)?;
    let optional = |name: &str| -> Result<Option<Vec<i64>>, String> {
        let Some(info) = inputs.info(name) else {
            return Ok(None);
        };
        if info.shape != dims {
            return Err(format!(
                "{}: tensor '{name}' has shape {:?}, input_ids has {dims:?}",
                inputs.file(),
                info.shape
            ));
        }
        if matches!(
            info.dtype,
            Dtype::F16 | Dtype::Bf16 | Dtype::F32 | Dtype::F64
        ) {
            return float_flags(inputs, name, seq).map(Some);
        }
        inputs.tensor_i64(name).map(|(_, v)| Some(v)).map_err(e)
    };
    let mask = optional("attention_mask")?;
    if let Some(info) = inputs.info("token_type_ids") {
        index_dtype(inputs, "token_type_ids", info.dtype)?;
    }
    let types = optional("token_type_ids")?;
    // Its errors (an id past the vocabulary, a mask value other than 0 or 1) are about this
    // file's values: name it.
    Batch::new(config, batch, seq, &ids, mask.as_deref(), types.as_deref())
        .map_err(|err| format!("{}: {err}", inputs.file()))
}

/// Float tensor `name` (`[B, T]`, rows of `seq`) as the integers 0 and 1 it holds; any other
/// value is an error naming its position.
fn float_flags(inputs: &SafeTensors, name: &str, seq: usize) -> Result<Vec<i64>, String> {
    let values = inputs
        .tensor_f32(name)
        .and_then(|t| t.to_vec(&Arena::new()))
        .map_err(|e| e.to_string())?;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| match v {
            0.0 => Ok(0),
            1.0 => Ok(1),
            _ => Err(format!(
                "{}: {name}[{}][{}] = {v}; a float mask must hold 0 and 1",
                inputs.file(),
                i / seq.max(1),
                i % seq.max(1)
            )),
        })
        .collect()
}

/// `input_ids`' `[batch, seq]`, read from the header before its values are converted: an
/// index dtype (I64 or I32, as PyTorch's embedding takes) and the shape as [`Batch::new`]
/// checks it (`seq` within the model's `max_position_embeddings`), so a bad file costs no
/// conversion of its values.
fn check_ids(inputs: &SafeTensors, config: &Config) -> Result<(usize, usize), String> {
    let info = inputs
        .info("input_ids")
        .ok_or_else(|| format!("{}: no tensor 'input_ids'", inputs.file()))?;
    index_dtype(inputs, "input_ids", info.dtype)?;
    let &[batch, seq] = info.shape.as_slice() else {
        return Err(format!(
            "{}: tensor 'input_ids' has shape {:?}; expected [batch, seq]",
            inputs.file(),
            info.shape
        ));
    };
    Batch::check_shape(config, batch, seq).map_err(|e| format!("{}: {e}", inputs.file()))?;
    Ok((batch, seq))
}

/// Token indices must be I64 or I32.
fn index_dtype(inputs: &SafeTensors, name: &str, dtype: Dtype) -> Result<(), String> {
    if matches!(dtype, Dtype::I64 | Dtype::I32) {
        return Ok(());
    }
    Err(format!(
        "{}: tensor '{name}' holds {dtype} values; token indices must be I64 or I32",
        inputs.file()
    ))
}

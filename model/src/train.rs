//! A training step: zero grads, forward, loss, backward, AdamW (PyTorch semantics) in place.

use crate::batch::Batch;
use crate::model::{Forward, Model};
use smelt_engine::autograd::Profile;
use smelt_engine::{Arena, Error, Graph, Leaves, Result, Tape, Tensor, Var};
use smelt_kernels::cpu::adamw::{adamw_step, AdamW};
use smelt_kernels::cpu::dropout::step_seed;
use smelt_kernels::cpu::CpuOptions;

/// What a step minimises.
#[derive(Clone, Debug)]
pub enum Objective {
    /// The head's own loss on the batch's labels (masked LM or classification).
    Head,
    /// `sum(last_hidden_state^2)` (the benchmark's loss).
    SumSquares,
    /// `sum(last_hidden_state * probe)`, `probe` shaped like the last hidden state.
    Probe(Tensor),
}

impl Objective {
    /// The scalar loss of this objective for a forward pass.
    pub fn loss(
        &self,
        model: &Model,
        g: &mut Graph<'_>,
        f: &Forward,
        batch: &Batch,
    ) -> Result<Var> {
        match self {
            Objective::Head => model.loss(g, f, batch),
            Objective::SumSquares => g.sum_squares(f.hidden),
            Objective::Probe(probe) => g.mul_sum(f.hidden, probe),
        }
    }
}

/// AdamW state for every parameter of a model, and the step's tape.
pub struct Trainer {
    hp: AdamW,
    step: u32,
    /// Per parameter, the updates it has had: as in PyTorch, a parameter with no gradient in a
    /// step (a head the step's objective does not use) is skipped, and its bias correction
    /// counts only its own updates.
    updates: Vec<u32>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    tape: Tape,
    opts: CpuOptions,
    /// The run's dropout seed; step `k` draws with `step_seed(dropout_seed, k)`.
    dropout_seed: u64,
}

/// `n` zeros, written now rather than mapped on first use.
///
/// `vec![0.0; n]` of a large `n` is fresh pages from the OS that all map the kernel's shared
/// zero page until written. The moments are read by the first AdamW update before they are
/// written, so each of their 4 KiB pages then took a read fault and a copy-on-write fault,
/// and with the update's threads running on other cores each copy-on-write flushes their
/// TLBs (an interrupt to each of them): the first step of DistilBERT-base on 2 threads took
/// 1.80-1.95 s against 0.92-1.55 s with the moments written here (old and new alternating;
/// the later steps 0.7 s). The empty vector goes through `black_box` so that the compiler
/// cannot turn the allocation and the zeroing back into one zeroed allocation.
fn written_zeros(n: usize) -> Vec<f32> {
    let mut zeros = std::hint::black_box(Vec::with_capacity(n));
    zeros.resize(n, 0.0);
    zeros
}

impl Trainer {
    /// A trainer for `model` (made trainable: mapped weights are copied once) with AdamW
    /// hyper-parameters `hp`, running kernels with `opts`.
    ///
    /// Steps run in HF's training mode: with the dropout the model's config asks for (see
    /// [`Model::forward`]), each step drawing its masks from its own seed (the run's seed is 0
    /// until [`Trainer::set_dropout_seed`]); [`Model::disable_dropout`] makes them HF's eval
    /// mode instead.
    pub fn new(model: &mut Model, hp: AdamW, opts: CpuOptions) -> Result<Trainer> {
        hp.validate("Trainer::new")?;
        opts.validate("Trainer::new")?;
        model.make_trainable()?;
        let zeros = |model: &Model| {
            model
                .params()
                .iter()
                .map(|p| written_zeros(p.tensor.numel()))
                .collect()
        };
        Ok(Trainer {
            hp,
            step: 0,
            updates: vec![0; model.params().len()],
            m: zeros(model),
            v: zeros(model),
            tape: Tape::new(),
            opts,
            dropout_seed: 0,
        })
    }

    /// Seeds the dropout of the steps to come: step `k` of the run (counted by
    /// [`Trainer::steps`]) draws its masks with seed
    /// [`step_seed`]`(seed, k)`, so a run is reproducible from its seed.
    pub fn set_dropout_seed(&mut self, seed: u64) {
        self.dropout_seed = seed;
    }

    /// Profiles the steps to come op by op (forward and backward; the AdamW update is not an
    /// op), from an empty profile: see [`Tape::enable_profile`].
    pub fn enable_profile(&mut self) {
        self.tape.enable_profile();
    }

    /// The per-op time of the steps since [`Trainer::enable_profile`], or `None`.
    pub fn profile(&self) -> Option<&Profile> {
        self.tape.profile()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// One step on `batch`: forward, loss, backward, AdamW on every parameter that has a
    /// gradient, then `arena.reset()`. Returns the loss before the update. Allocates nothing
    /// once the arena has grown to the step's size. An error before the update (forward, loss,
    /// backward, a read-only parameter) leaves every parameter unchanged, and the arena is
    /// reset on every path, so a caller that skips a bad batch keeps a steady arena. A model
    /// whose parameters are not those the trainer was made for (their count or sizes) is an
    /// error.
    pub fn step(
        &mut self,
        model: &mut Model,
        arena: &mut Arena,
        batch: &Batch,
        objective: &Objective,
    ) -> Result<f32> {
        let result = self
            .check_model(model)
            .and_then(|()| self.forward_backward(model, arena, batch, objective));
        let result = result.and_then(|(loss, params)| {
            self.update(model, arena, &params)?;
            Ok(loss)
        });
        self.tape.clear();
        arena.reset();
        result
    }

    /// An error unless `model`'s parameters have the count and sizes of the moments.
    fn check_model(&self, model: &Model) -> Result<()> {
        let error = |detail| {
            Err(Error::Input {
                op: "Trainer::step",
                detail,
            })
        };
        let params = model.params();
        if params.len() != self.m.len() {
            return error(format!(
                "the model has {} parameters, the trainer was made for a model of {}",
                params.len(),
                self.m.len()
            ));
        }
        for (param, m) in params.iter().zip(&self.m) {
            if param.tensor.numel() != m.len() {
                return error(format!(
                    "parameter '{}' holds {} values, the trainer's moments for it {}",
                    param.name,
                    param.tensor.numel(),
                    m.len()
                ));
            }
        }
        Ok(())
    }

    /// The loss of `batch` and the parameters' variables, with their gradients on the tape.
    fn forward_backward(
        &mut self,
        model: &Model,
        arena: &Arena,
        batch: &Batch,
        objective: &Objective,
    ) -> Result<(f32, Leaves)> {
        let mut g = Graph::new(&mut self.tape, arena, self.opts, true);
        g.enable_dropout(step_seed(self.dropout_seed, u64::from(self.step)));
        let forward = model.forward(&mut g, batch)?;
        let loss = objective.loss(model, &mut g, &forward, batch)?;
        g.backward(loss)?;
        let value = g
            .value(loss)
            .data(arena)?
            .first()
            .copied()
            .unwrap_or(f32::NAN);
        Ok((value, forward.params))
    }

    /// AdamW on every parameter with a gradient, once every one of them is known to be
    /// writable and its gradient readable (so an error leaves all parameters unchanged).
    fn update(&mut self, model: &mut Model, arena: &Arena, params: &Leaves) -> Result<()> {
        self.tape.release_values();
        for (i, param) in model.params_mut().iter_mut().enumerate() {
            let Some(grad) = params.get(i).and_then(|var| self.tape.grad(var)) else {
                continue;
            };
            grad.data(arena)?;
            if param.tensor.host_mut().is_none() {
                return Err(Error::Input {
                    op: "Trainer::step",
                    detail: format!(
                        "parameter '{}' is shared or read-only; it cannot be updated in place",
                        param.name
                    ),
                });
            }
        }
        for (i, param) in model.params_mut().iter_mut().enumerate() {
            let grad = params.get(i).and_then(|var| self.tape.grad(var));
            let (Some(grad), Some(values)) = (grad, param.tensor.host_mut()) else {
                continue;
            };
            adamw_step(
                values,
                grad.data(arena)?,
                &mut self.m[i],
                &mut self.v[i],
                self.updates[i] + 1,
                &self.hp,
                &self.opts,
            )?;
            self.updates[i] += 1;
        }
        self.step += 1;
        Ok(())
    }
}

//! [`Tape`]: the values and recorded ops of one step; [`Graph`]: the step's view of it.

use super::node::Node;
use super::profile::{Clock, Direction, Profile};
use crate::{Arena, Error, Result, Shape, Storage, Tensor};
use smelt_kernels::cpu::elementwise;
use smelt_kernels::cpu::CpuOptions;
use std::cell::RefCell;

/// A value of the current step: an index into the tape, and the tape's generation (every
/// [`Tape::clear`], so every [`Graph::new`], starts a new one), so that a `Var` of another
/// graph is never taken for one of this graph's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(pub(crate) usize, Generation);

/// The generation of a tape's contents: unique in the process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Generation(u64);

impl Generation {
    fn fresh() -> Generation {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Generation(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// Consecutive leaves added by [`Graph::leaves`]: leaf `i` is the `i`-th of them.
#[derive(Clone, Copy, Debug)]
pub struct Leaves {
    first: usize,
    len: usize,
    generation: Generation,
}

impl Leaves {
    /// The `Var` of leaf `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<Var> {
        (i < self.len).then(|| Var(self.first + i, self.generation))
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The storage of one step's autograd: values, which of them need a gradient, the recorded
/// ops, and after [`Graph::backward`] the gradients.
///
/// Its vectors keep their capacity across [`Tape::clear`], so a steady-state step allocates
/// nothing.
///
/// # Gradient buffers
///
/// The backward releases the gradient of an intermediate value as soon as the op that produced
/// the value has used it, into a pool of free arena buffers that later gradients of the same
/// size take before the arena grows. A buffer goes back to the pool only when the tape owns
/// it alone (`owned`): an op that passes its output gradient on unchanged (the residual add)
/// marks it shared. Leaves keep their gradients.
#[derive(Default)]
pub struct Tape {
    values: Vec<Tensor>,
    needs_grad: Vec<bool>,
    leaf: Vec<bool>,
    grads: Vec<Option<Tensor>>,
    owned: Vec<bool>,
    pool: RefCell<Vec<Tensor>>,
    pub(crate) nodes: Vec<Node>,
    /// Token ids and targets recorded by ops (nodes keep ranges into these).
    pub(crate) ids: Vec<u32>,
    pub(crate) targets: Vec<i64>,
    generation: Generation,
    /// Time per op of every step since [`Tape::enable_profile`], or `None` (the default).
    profile: Option<Profile>,
}

impl Tape {
    /// An empty tape.
    pub fn new() -> Tape {
        Tape::default()
    }

    /// The gradient of `var` computed by the last [`Graph::backward`] on this tape, still
    /// there after [`Tape::release_values`]; `None` for a `Var` of another tape or step.
    pub fn grad(&self, var: Var) -> Option<&Tensor> {
        if var.1 != self.generation {
            return None;
        }
        self.grads.get(var.0).and_then(Option::as_ref)
    }

    /// Drops the values and recorded ops but keeps the gradients: the tape then holds no
    /// handle on any parameter, so an optimizer can update parameters in place
    /// ([`Tensor::host_mut`]) while reading their gradients.
    pub fn release_values(&mut self) {
        self.values.clear();
        self.needs_grad.clear();
        self.leaf.clear();
        self.nodes.clear();
        self.pool.get_mut().clear();
    }

    /// Forgets every value, op and gradient (keeping capacity); call before `Arena::reset`.
    pub fn clear(&mut self) {
        self.release_values();
        self.grads.clear();
        self.owned.clear();
        self.nodes.clear();
        self.ids.clear();
        self.targets.clear();
        self.generation = Generation::fresh();
    }

    /// Starts profiling the steps run on this tape from now on, from an empty [`Profile`]
    /// (a profile already running starts again).
    pub fn enable_profile(&mut self) {
        self.profile = Some(Profile::default());
    }

    /// The time per op of the steps since [`Tape::enable_profile`], or `None` when profiling
    /// is off.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// The index of `var` on this tape. Panics, naming the mistake, for a `Var` of another
    /// graph or of an earlier step on this tape (its index could name any value here).
    fn index(&self, var: Var) -> usize {
        assert!(
            var.1 == self.generation && var.0 < self.values.len(),
            "a Var of another graph (or of an earlier step) used on this one"
        );
        var.0
    }
}

/// One step's computation: ops on [`Var`]s write their outputs into `arena` and, when
/// recording, push what their backward needs onto the tape.
///
/// With recording off (inference) no op saves anything; [`Graph::backward`] then has nothing
/// to walk.
pub struct Graph<'a> {
    pub(crate) tape: &'a mut Tape,
    pub(crate) arena: &'a Arena,
    pub(crate) opts: CpuOptions,
    recording: bool,
    /// Training-mode dropout's draws, once [`Graph::enable_dropout`] turned it on.
    pub(crate) draws: Option<super::dropout::Draws>,
    /// When the tape is profiled: when the last output or leaf was added.
    clock: Option<Clock>,
}

impl<'a> Graph<'a> {
    /// A step on `tape` (cleared first) allocating from `arena`, running kernels with
    /// `opts`; `recording` says whether ops are recorded for a backward pass.
    pub fn new(tape: &'a mut Tape, arena: &'a Arena, opts: CpuOptions, recording: bool) -> Self {
        tape.clear();
        let clock = tape.profile.is_some().then(Clock::start);
        Graph {
            tape,
            arena,
            opts,
            recording,
            draws: None,
            clock,
        }
    }

    /// The arena outputs are allocated from.
    pub fn arena(&self) -> &'a Arena {
        self.arena
    }

    /// The kernel options.
    pub fn options(&self) -> &CpuOptions {
        &self.opts
    }

    /// Whether ops are recorded.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// A leaf value; `needs_grad` marks a parameter whose gradient [`Graph::backward`] computes.
    pub fn leaf(&mut self, value: Tensor, needs_grad: bool) -> Var {
        let var = self.push(value, needs_grad && self.recording);
        self.tape.leaf[var.0] = true;
        // Adding leaves is no op's work: the next op's time starts here.
        if let Some(clock) = &mut self.clock {
            clock.lap();
        }
        var
    }

    /// One leaf per tensor, in order (a model's parameters), all with the same `needs_grad`.
    pub fn leaves<'t>(
        &mut self,
        tensors: impl IntoIterator<Item = &'t Tensor>,
        needs_grad: bool,
    ) -> Leaves {
        let first = self.tape.values.len();
        for t in tensors {
            self.leaf(t.clone(), needs_grad);
        }
        Leaves {
            first,
            len: self.tape.values.len() - first,
            generation: self.tape.generation,
        }
    }

    /// The tensor of `var`. Panics for a `Var` of another graph (or an earlier step): a
    /// mistake in the calling code, which would otherwise read some other value.
    pub fn value(&self, var: Var) -> &Tensor {
        &self.tape.values[self.tape.index(var)]
    }

    /// The gradient of `var` after [`Graph::backward`]; `None` when nothing reached it.
    /// Only leaves keep theirs: intermediate gradients are released during the backward.
    pub fn grad(&self, var: Var) -> Option<&Tensor> {
        self.tape.grad(var)
    }

    /// Whether `var` needs a gradient.
    pub(crate) fn needs_grad(&self, var: Var) -> bool {
        self.tape.needs_grad[self.tape.index(var)]
    }

    /// Whether an op with these inputs must be recorded.
    pub(crate) fn records(&self, inputs: &[Var]) -> bool {
        self.recording && inputs.iter().any(|&v| self.needs_grad(v))
    }

    /// Adds `value`, computed from `inputs` by the op `op` whose node `node` builds,
    /// recording the node when any input needs a gradient. `node` gets the output's `Var`.
    pub(crate) fn output(
        &mut self,
        op: &'static str,
        value: Tensor,
        inputs: &[Var],
        node: impl FnOnce(Var) -> Node,
    ) -> Var {
        self.charge(op);
        let record = self.records(inputs);
        let out = self.push(value, record);
        if record {
            self.tape.nodes.push(node(out));
        }
        out
    }

    /// Adds the output of the op `op`, which needs a gradient when the op is recorded
    /// (`record`); the op then calls [`Graph::record`] with its node.
    pub(crate) fn push_value(&mut self, op: &'static str, value: Tensor, record: bool) -> Var {
        self.charge(op);
        self.push(value, record)
    }

    /// When profiling, charges the forward of `op` with the time since the last output or
    /// leaf.
    fn charge(&mut self, op: &'static str) {
        if let (Some(clock), Some(profile)) = (&mut self.clock, &mut self.tape.profile) {
            profile.add(op, Direction::Forward, clock.lap());
        }
    }

    /// Records `node` (built after [`Graph::push_value`] gave its output).
    pub(crate) fn record(&mut self, node: Node) {
        self.tape.nodes.push(node);
    }

    fn push(&mut self, value: Tensor, needs_grad: bool) -> Var {
        self.tape.values.push(value);
        self.tape.needs_grad.push(needs_grad);
        self.tape.leaf.push(false);
        Var(self.tape.values.len() - 1, self.tape.generation)
    }

    /// The contiguous values of `var` (a copy into the arena first when it is a strided view),
    /// valid while the graph is borrowed: the tape keeps a handle on the storage meanwhile.
    pub(crate) fn dense(&self, op: &'static str, var: Var) -> Result<&[f32]> {
        dense_of(
            op,
            self.value(var).contiguous_for(op, self.arena)?,
            self.arena,
        )
    }

    /// Runs every recorded op's backward in reverse, starting from `d loss / d loss = 1`.
    ///
    /// `loss` must hold one value. Afterwards [`Graph::grad`] gives the gradient of every leaf
    /// that needs one and was reached (intermediate gradients are released during the pass).
    /// Gradients reaching a value more than once are summed.
    pub fn backward(&mut self, loss: Var) -> Result<()> {
        const OP: &str = "backward";
        let shape = *self.value(loss).shape();
        if shape.numel() != 1 {
            return Err(Error::Shape {
                op: OP,
                detail: format!("the loss must hold one value, got {shape}"),
            });
        }
        let len = self.tape.values.len();
        self.tape.grads.clear();
        self.tape.grads.resize(len, None);
        self.tape.owned.clear();
        self.tape.owned.resize(len, false);
        let seed = self.alloc_with(OP, shape.dims(), |g| {
            g.fill(1.0);
            Ok(())
        })?;
        self.tape.grads[loss.0] = Some(seed);
        self.tape.owned[loss.0] = true;
        let nodes = std::mem::take(&mut self.tape.nodes);
        let result = nodes.iter().rev().try_for_each(|node| {
            let out = node.output();
            let Some(dout) = self.tape.grads[out.0].clone() else {
                return Ok(());
            };
            let began = self.clock.is_some().then(std::time::Instant::now);
            node.backward(self, &dout)?;
            if let (Some(began), Some(profile)) = (began, &mut self.tape.profile) {
                profile.add(node.op(), Direction::Backward, began.elapsed());
            }
            // Every op that reads this value ran after it, so its gradient is complete and
            // the op that made the value was its last reader.
            self.release(out);
            Ok(())
        });
        self.tape.nodes = nodes;
        // Ops after the backward are not charged its time.
        if let Some(clock) = &mut self.clock {
            clock.lap();
        }
        result
    }

    /// In inference (recording off), hands the buffer of `var` back for reuse by later ops,
    /// whose results will overwrite it. Does nothing while recording (the backward needs every
    /// value), for leaves and for values not in the arena. This is how a forward pass keeps
    /// one layer's activations alive instead of all of them.
    ///
    /// The graph forgets the value (ops given `var` afterwards see an empty `[0]` tensor, not
    /// whatever later ops wrote there), so releasing it twice does nothing more.
    ///
    /// # Safety
    ///
    /// Until the arena is reset, nothing may read `var`'s memory again: no slice of its data
    /// may still be borrowed, no clone of its tensor may be read, and no other value of the
    /// graph may share its storage (a view of it, or a value it is a view of). Later ops
    /// write into that memory while such a slice would still see it.
    pub unsafe fn release_value(&mut self, var: Var) {
        let i = self.tape.index(var);
        if self.recording || self.tape.leaf[i] {
            return;
        }
        let empty = Tensor::from_vec(&[0], Vec::new()).expect("[0] holds no values");
        let t = std::mem::replace(&mut self.tape.values[i], empty);
        if t.is_contiguous() && t.offset() == 0 {
            self.recycle(t);
        }
    }

    /// Drops the gradient of the intermediate value `var`, pooling its buffer when owned, or
    /// when shared and no other gradient still holds it.
    fn release(&mut self, var: Var) {
        if self.tape.leaf[var.0] {
            return;
        }
        if let Some(grad) = self.tape.grads[var.0].take() {
            if self.tape.owned[var.0] {
                self.recycle(grad);
            } else {
                self.drop_shared(grad);
            }
        }
    }

    /// Adds `grad`, a buffer the caller owns alone (fresh from [`Graph::alloc_with`]), to the
    /// gradient of `var` (kept only when `var` needs one).
    pub(crate) fn accumulate(&mut self, var: Var, grad: Tensor) -> Result<()> {
        self.add_grad(var, grad, Handover::Owned)
    }

    /// Adds `grad`, a buffer that stays shared with another gradient, to the gradient of
    /// `var`.
    pub(crate) fn accumulate_shared(&mut self, var: Var, grad: Tensor) -> Result<()> {
        self.add_grad(var, grad, Handover::Shared)
    }

    /// Adds `grad`, a buffer no gradient holds yet that the caller hands next to another
    /// input with [`Graph::accumulate_shared`], to the gradient of `var`: never pooled here,
    /// even when `var` adds it into a gradient of its own, since the other input is still to
    /// read it (`layer_norm_residual`'s `ds` for `x`, then for `residual`).
    pub(crate) fn accumulate_then_share(&mut self, var: Var, grad: Tensor) -> Result<()> {
        self.add_grad(var, grad, Handover::Kept)
    }

    /// Marks the gradient of `var` as shared: it will not be pooled when released.
    pub(crate) fn share(&mut self, var: Var) {
        self.tape.owned[var.0] = false;
    }

    fn add_grad(&mut self, var: Var, grad: Tensor, handover: Handover) -> Result<()> {
        const OP: &str = "backward";
        let owned = handover == Handover::Owned;
        if !self.needs_grad(var) {
            match handover {
                Handover::Owned => self.recycle(grad),
                Handover::Shared => self.drop_shared(grad),
                Handover::Kept => {}
            }
            return Ok(());
        }
        let Some(old) = self.tape.grads[var.0].clone() else {
            self.tape.grads[var.0] = Some(grad);
            self.tape.owned[var.0] = owned;
            return Ok(());
        };
        let opts = self.opts;
        if self.tape.owned[var.0] || owned {
            // Add into whichever buffer is ours alone.
            let (acc, other) = if self.tape.owned[var.0] {
                (old, grad)
            } else {
                (grad, old)
            };
            {
                let b = dense_of(OP, other.clone(), self.arena)?;
                // SAFETY: `acc` is owned by the tape alone (its `owned` flag, or fresh from
                // the caller), so nothing else reads or writes it meanwhile; `other` is a
                // different buffer.
                let a = unsafe { self.buffer_mut(OP, &acc)? };
                elementwise::add_assign(a, b, &opts)?;
            }
            // `other` is the old gradient (shared) or the incoming buffer.
            let other_is_incoming = self.tape.owned[var.0];
            self.tape.grads[var.0] = Some(acc);
            self.tape.owned[var.0] = true;
            match (other_is_incoming, handover) {
                (true, Handover::Owned) => self.recycle(other),
                (true, Handover::Kept) => {}
                _ => self.drop_shared(other),
            }
            return Ok(());
        }
        let (a, b) = (
            dense_of(OP, old.clone(), self.arena)?,
            dense_of(OP, grad.clone(), self.arena)?,
        );
        let sum = self.alloc_with(OP, old.dims(), |out| {
            Ok(elementwise::add(a, b, out, &opts)?)
        })?;
        self.tape.grads[var.0] = Some(sum);
        self.tape.owned[var.0] = true;
        // The same buffer twice (`layer_norm_residual(x, x)` hands `x` its `ds` twice) is
        // let go of once: pooled twice, it would be handed to two tensors at once.
        let same = same_buffer(&old, &grad);
        self.drop_shared(old);
        if !same && handover == Handover::Shared {
            self.drop_shared(grad);
        }
        Ok(())
    }

    /// Lets go of `t`, a gradient buffer shared with other gradients (`add` and
    /// `layer_norm_residual` hand one buffer to both inputs): pooled once no gradient on the
    /// tape holds it any more, so each layer's shared buffers return to the pool when the
    /// last input that read them is done.
    fn drop_shared(&self, t: Tensor) {
        if !self.tape.grads.iter().flatten().any(|g| same_buffer(g, &t)) {
            self.recycle(t);
        }
    }

    /// A contiguous tensor of `dims` for an op's output, a gradient or scratch, filled by
    /// `fill` (which must write every value): a pooled buffer of the same size when there is
    /// one, else fresh arena memory.
    pub(crate) fn alloc_with(
        &self,
        op: &'static str,
        dims: &[usize],
        fill: impl FnOnce(&mut [f32]) -> Result<()>,
    ) -> Result<Tensor> {
        let t = self.alloc_tensor(op, dims)?;
        // SAFETY: `t` was just taken from the pool or the arena; nothing else refers to it.
        fill(unsafe { self.buffer_mut(op, &t)? })?;
        Ok(t)
    }

    /// A contiguous tensor of `dims` with unspecified contents, from the pool or the arena.
    pub(crate) fn alloc_tensor(&self, op: &'static str, dims: &[usize]) -> Result<Tensor> {
        let shape = Shape::for_op(op, dims)?;
        let mut pool = self.tape.pool.borrow_mut();
        let found = pool.iter().position(|t| t.numel() == shape.numel());
        if let Some(slot) = found.and_then(|i| match pool.swap_remove(i).storage() {
            Storage::Arena(slot) => Some(*slot),
            _ => None,
        }) {
            return Ok(Tensor::from_arena(shape, slot));
        }
        drop(pool);
        Ok(self.arena.alloc_shape(shape)?.into_tensor())
    }

    /// The values of `t` for writing.
    ///
    /// # Safety
    ///
    /// `t` must be an arena tensor that the caller owns alone: fresh from
    /// [`Graph::alloc_tensor`], or a gradient whose `owned` flag is set; nothing may read or
    /// write its memory while the slice lives.
    // Exclusive access is the caller's `unsafe` contract, not the borrow's.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn buffer_mut(&self, op: &'static str, t: &Tensor) -> Result<&mut [f32]> {
        match t.storage() {
            // SAFETY: exclusive ownership is the caller's contract.
            Storage::Arena(slot) => unsafe { self.arena.slice_mut(op, slot, t.shape()) },
            _ => Err(Error::Shape {
                op,
                detail: format!("gradient {} is not an arena tensor", t.shape()),
            }),
        }
    }

    /// Returns `t`, an arena buffer the caller owns alone and will not use again, to the pool.
    pub(crate) fn recycle(&self, t: Tensor) {
        if matches!(t.storage(), Storage::Arena(_)) {
            self.tape.pool.borrow_mut().push(t);
        }
    }
}

/// How a gradient buffer is handed to [`Graph::add_grad`], which decides when it may be pooled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handover {
    /// The caller's alone: pooled as soon as it is added into another buffer.
    Owned,
    /// Held by another gradient too: pooled once no gradient on the tape holds it.
    Shared,
    /// Held by nothing yet, and handed to another input next: never pooled by this hand-over.
    Kept,
}

/// Whether `a` and `b` are backed by the same arena allocation (only arena buffers are pooled).
fn same_buffer(a: &Tensor, b: &Tensor) -> bool {
    match (a.storage(), b.storage()) {
        (Storage::Arena(a), Storage::Arena(b)) => a.same_allocation(b),
        _ => false,
    }
}

/// The dense values of a contiguous tensor `t` that is, or shares storage with, a value or
/// gradient held by the tape.
///
/// The slice is tied to the arena borrow; callers shorten it to their borrow of the graph.
fn dense_of<'a>(op: &'static str, t: Tensor, arena: &'a Arena) -> Result<&'a [f32]> {
    let data = t.contiguous_data(op, arena)?;
    let (ptr, len) = (data.as_ptr(), data.len());
    // SAFETY: arena data stays valid while `arena` is borrowed (a reset needs `&mut Arena`).
    // Host and external data live as long as any handle to them; `t` shares its storage with
    // a handle the tape keeps until `Tape::clear`, which needs the `&mut Tape` the graph holds,
    // so the slice outlives neither while the graph (and so the borrow) lasts.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Arena, CpuOptions};

    #[test]
    fn a_value_released_twice_is_pooled_once() {
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), false);
        let values = Tensor::from_vec(&[4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let x = g.leaf(values, false);
        let a = g.relu(x).unwrap();
        // SAFETY: nothing reads `a` or its memory after the release.
        unsafe {
            g.release_value(a);
            g.release_value(a);
        }
        assert_eq!(g.value(a).dims(), &[0]);
        // Pooled twice, the buffer would go to both `b` and `c`, and `c = b + b` overwrite `b`.
        let b = g.relu(x).unwrap();
        let c = g.add(b, b).unwrap();
        assert_eq!(g.value(b).to_vec(&arena).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(g.value(c).to_vec(&arena).unwrap(), vec![2.0, 4.0, 6.0, 8.0]);
    }

    /// The gradient buffer `add` hands to both inputs returns to the pool once the last of
    /// them is done with it: the backward of a chain of residual adds reuses a few buffers
    /// instead of keeping one per add (it kept them all before).
    #[test]
    fn shared_gradients_return_to_the_pool() {
        const N: usize = 256;
        const BLOCKS: usize = 32;
        let mut arena = Arena::new();
        let mut tape = Tape::new();
        let mut used = 0;
        for step in 0..2 {
            arena.reset();
            let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), true);
            let x = g.leaf(Tensor::from_vec(&[N], vec![0.5; N]).unwrap(), true);
            let mut h = x;
            for _ in 0..BLOCKS {
                let r = g.relu(h).unwrap();
                h = g.add(h, r).unwrap();
            }
            let loss = g.sum_squares(h).unwrap();
            g.backward(loss).unwrap();
            let want = 0.5 * 2f32.powi(BLOCKS as i32) * 2f32.powi(BLOCKS as i32) * 2.0;
            let grad = g.grad(x).unwrap().to_vec(&arena).unwrap();
            assert!(grad.iter().all(|&v| v == want), "step {step}: {}", grad[0]);
            used = arena.high_water();
        }
        // The forward keeps 2 buffers a block; the backward needs a handful more, not one a
        // block.
        let buffer = N * std::mem::size_of::<f32>();
        assert!(
            used <= (2 * BLOCKS + 8) * buffer,
            "{used} bytes for {BLOCKS} blocks"
        );
    }

    /// `layer_norm_residual(x, x)` gives `x` one shared buffer twice; summed into a new one,
    /// that buffer goes back to the pool once (pooled twice, two later tensors would share
    /// it).
    #[test]
    fn a_buffer_shared_with_itself_is_pooled_once() {
        const N: usize = 64;
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), true);
        // A leaf, so that no op after this backward takes a buffer from the pool.
        let x = g.leaf(crate::testing::random_tensor(&[2, N / 2], 1), true);
        let gamma = g.leaf(Tensor::from_vec(&[N / 2], vec![1.0; N / 2]).unwrap(), true);
        let beta = g.leaf(Tensor::from_vec(&[N / 2], vec![0.0; N / 2]).unwrap(), true);
        let h = g.layer_norm_residual(x, x, gamma, beta, 1e-5).unwrap();
        let loss = g.sum_squares(h).unwrap();
        g.backward(loss).unwrap();
        let pool = g.tape.pool.borrow();
        for (i, a) in pool.iter().enumerate() {
            for b in &pool[i + 1..] {
                assert!(!same_buffer(a, b), "one buffer pooled twice");
            }
        }
    }

    #[test]
    #[should_panic(expected = "a Var of another graph")]
    fn a_var_of_another_graph_is_refused() {
        let arena = Arena::new();
        let (mut first, mut second) = (Tape::new(), Tape::new());
        let values = Tensor::from_vec(&[2], vec![1.0, 2.0]).unwrap();
        let mut g1 = Graph::new(&mut first, &arena, CpuOptions::threads(1), false);
        let foreign = g1.leaf(values.clone(), false);
        let mut g2 = Graph::new(&mut second, &arena, CpuOptions::threads(1), false);
        // Same index 0 on both tapes: this read `g2`'s own leaf before.
        let own = g2.leaf(values, false);
        assert_eq!(own.0, foreign.0);
        let _ = g2.add(own, foreign);
    }

    #[test]
    fn a_gradient_of_an_earlier_step_is_none() {
        let arena = Arena::new();
        let mut tape = Tape::new();
        let values = Tensor::from_vec(&[1], vec![3.0]).unwrap();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), true);
        let x = g.leaf(values.clone(), true);
        g.backward(x).unwrap();
        assert!(g.grad(x).is_some());
        // The next step's leaf has the same index: its gradient is not `x`'s.
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), true);
        let y = g.leaf(values, true);
        g.backward(y).unwrap();
        assert_eq!(y.0, x.0);
        assert!(g.grad(y).is_some());
        assert!(g.grad(x).is_none());
    }

    /// One profiled step: `sum((gelu(x W^T) + x)^2)` and its backward; the wall time of the
    /// step.
    fn profiled_step(tape: &mut Tape, arena: &Arena) -> std::time::Duration {
        let began = std::time::Instant::now();
        let mut g = Graph::new(tape, arena, CpuOptions::threads(1), true);
        let x = Tensor::from_vec(&[4, 8], (0..32).map(|i| i as f32 / 32.0).collect()).unwrap();
        let w = Tensor::from_vec(&[8, 8], (0..64).map(|i| i as f32 / 64.0).collect()).unwrap();
        let (x, w) = (g.leaf(x, true), g.leaf(w, true));
        let h = g.linear(x, w, None).unwrap();
        let a = g.gelu(h).unwrap();
        let r = g.add(a, x).unwrap();
        let loss = g.sum_squares(r).unwrap();
        g.backward(loss).unwrap();
        began.elapsed()
    }

    #[test]
    fn a_profiled_tape_times_every_op_forward_and_backward() {
        let arena = Arena::new();
        let mut tape = Tape::new();
        profiled_step(&mut tape, &arena);
        assert!(tape.profile().is_none(), "profiling is off by default");
        tape.enable_profile();
        let wall = profiled_step(&mut tape, &arena) + profiled_step(&mut tape, &arena);
        let profile = tape.profile().expect("profiling is on");
        let seen: Vec<(&str, Direction, u64)> = profile
            .times()
            .iter()
            .map(|t| (t.op, t.direction, t.calls))
            .collect();
        use Direction::{Backward, Forward};
        assert_eq!(
            seen,
            [
                ("linear", Forward, 2),
                ("gelu", Forward, 2),
                ("add", Forward, 2),
                ("sum_squares", Forward, 2),
                ("sum_squares", Backward, 2),
                ("add", Backward, 2),
                ("gelu", Backward, 2),
                ("linear", Backward, 2),
            ]
        );
        assert!(profile.total() > std::time::Duration::ZERO);
        assert!(
            profile.total() <= wall,
            "{:?} of ops in {wall:?}",
            profile.total()
        );
        tape.enable_profile();
        assert!(tape.profile().is_some_and(|p| p.times().is_empty()));
    }
}

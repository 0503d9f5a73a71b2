//! Dropout in training mode, `y = x * m / (1 - p)`, from the counter-based draws of
//! [`smelt_kernels::cpu::dropout`]: the backward draws the same mask again, nothing is saved.
//!
//! A graph drops nothing until [`Graph::enable_dropout`] gives it the step's seed (a
//! [`Graph`] is HF's eval mode by default). Then every dropout site the forward reaches, this
//! op's calls and [`Graph::attention`]'s, takes the next stream number, 0 first, whether or
//! not its probability is 0: the k-th site of a forward draws stream k, which is how the
//! reference fixtures reproduce the masks in PyTorch.

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Result, Tensor};
use smelt_kernels::cpu::dropout::{dropout, DropoutMask};

/// The op's name, in errors and profiles.
pub(super) const OP: &str = "dropout";

/// The dropout draws of one step: its seed and the stream of the next site.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Draws {
    seed: u64,
    next: u64,
}

impl Graph<'_> {
    /// Makes this graph drop as HF's training mode does, drawing from `seed` (give each step
    /// its own). Without it [`Graph::dropout`] is the identity. Call it before the forward: a
    /// second call changes the seed but keeps counting sites, so no stream is drawn twice.
    pub fn enable_dropout(&mut self, seed: u64) {
        let next = self.draws.map_or(0, |d| d.next);
        self.draws = Some(Draws { seed, next });
    }

    /// The mask of the next dropout site with probability `p`: `None` when dropout is off or
    /// `p` is 0 (a site is counted either way once dropout is on). Errors unless `p` is in
    /// `[0, 1]`.
    pub(crate) fn next_dropout(&mut self, op: &'static str, p: f32) -> Result<Option<DropoutMask>> {
        if !(0.0..=1.0).contains(&p) {
            return Err(crate::Error::Input {
                op,
                detail: format!("dropout probability {p}: it must be in [0, 1]"),
            });
        }
        let Some(draws) = self.draws.as_mut() else {
            return Ok(None);
        };
        let stream = draws.next;
        draws.next += 1;
        if p == 0.0 {
            return Ok(None);
        }
        Ok(Some(DropoutMask::new(p, draws.seed, stream)?))
    }

    /// `x * m / (1 - p)` elementwise with `m` a 0/1 draw kept with probability `1 - p`, any
    /// shape (elements drawn in row-major order); `x` itself when dropout is off
    /// ([`Graph::enable_dropout`]) or `p` is 0.
    pub fn dropout(&mut self, x: Var, p: f32) -> Result<Var> {
        let Some(mask) = self.next_dropout(OP, p)? else {
            return Ok(x);
        };
        let dims = *self.value(x).shape();
        let xd = self.dense(OP, x)?;
        let opts = self.opts;
        let value = self.alloc_with(OP, dims.dims(), |y| Ok(dropout(xd, &mask, 0, y, &opts)?))?;
        Ok(self.output(OP, value, &[x], |out| Node::Dropout { x, mask, out }))
    }
}

/// `dx = dy * m / (1 - p)`, the forward's mask drawn again.
pub(super) fn backward(g: &mut Graph<'_>, x: Var, mask: &DropoutMask, dout: &Tensor) -> Result<()> {
    let dims = *g.value(x).shape();
    let opts = g.opts;
    let dy = dout.contiguous_data(OP, g.arena)?;
    let dx = g.alloc_with(OP, dims.dims(), |dx| Ok(dropout(dy, mask, 0, dx, &opts)?))?;
    g.accumulate(x, dx)
}

#[cfg(test)]
mod tests {
    use crate::testing::random_tensor;
    use crate::{Arena, CpuOptions, Graph, Tape};
    use smelt_kernels::cpu::dropout::DropoutMask;

    #[test]
    fn off_by_default_and_for_p_zero_but_sites_are_counted() {
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), true);
        let x = g.leaf(random_tensor(&[4, 5], 1), true);
        assert_eq!(g.dropout(x, 0.5).unwrap(), x, "eval mode drops nothing");
        g.enable_dropout(9);
        assert_eq!(g.dropout(x, 0.0).unwrap(), x, "p = 0 is the identity");
        // That site took stream 0; enabling again changes the seed, not the count, so this
        // one draws stream 1.
        g.enable_dropout(9);
        let y = g.dropout(x, 0.5).unwrap();
        let mask = DropoutMask::new(0.5, 9, 1).unwrap();
        let (xs, ys) = (
            g.value(x).to_vec(&arena).unwrap(),
            g.value(y).to_vec(&arena).unwrap(),
        );
        for (i, (&xv, &yv)) in xs.iter().zip(&ys).enumerate() {
            assert_eq!(yv, xv * mask.factor(i as u64), "element {i}");
        }
        assert!(ys.contains(&0.0) && ys.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn the_gradient_is_the_same_mask() {
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(2), true);
        g.enable_dropout(3);
        let x = g.leaf(random_tensor(&[3, 7, 11], 2), true);
        let y = g.dropout(x, 0.25).unwrap();
        let probe = random_tensor(&[3, 7, 11], 3);
        let loss = g.mul_sum(y, &probe).unwrap();
        g.backward(loss).unwrap();
        let mask = DropoutMask::new(0.25, 3, 0).unwrap();
        let dx = g.grad(x).unwrap().to_vec(&arena).unwrap();
        let probe = probe.to_vec(&arena).unwrap();
        for (i, (&d, &p)) in dx.iter().zip(&probe).enumerate() {
            assert_eq!(d, p * mask.factor(i as u64), "element {i}");
        }
    }

    #[test]
    fn probabilities_outside_zero_one_are_errors_even_in_eval_mode() {
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), false);
        let x = g.leaf(random_tensor(&[2, 2], 1), false);
        for p in [-0.5, 1.5, f32::NAN] {
            let err = g.dropout(x, p).unwrap_err().to_string();
            assert!(
                err.contains("dropout probability") && err.contains("[0, 1]"),
                "{err}"
            );
        }
    }
}

//! Embedding lookup: rows of a table gathered by token id; the backward scatter-adds.

use super::node::Node;
use super::tape::{Graph, Var};
use crate::{Error, Result, Tensor};
use smelt_kernels::cpu::embedding::{embedding, embedding_backward};

/// The op's name, in errors and profiles.
pub(super) const OP: &str = "embedding";

impl Graph<'_> {
    /// `table [V, D]` rows at `ids`, shaped `dims + [D]` (`dims` multiply to `ids.len()`).
    /// An id `>= V` is an error naming it and its position. Row `padding_idx` (torch's
    /// `nn.Embedding(padding_idx=..)`) gets no gradient; a `padding_idx >= V` is an error, as
    /// in torch.
    pub fn embedding(
        &mut self,
        table: Var,
        ids: &[u32],
        dims: &[usize],
        padding_idx: Option<u32>,
    ) -> Result<Var> {
        let tt = self.value(table);
        let &[vocab, dim] = tt.dims() else {
            return Err(Error::Shape {
                op: OP,
                detail: format!("the table {} must be [vocab, dim]", tt.shape()),
            });
        };
        if let Some(pad) = padding_idx.filter(|&p| p as usize >= vocab) {
            return Err(Error::Shape {
                op: OP,
                detail: format!("padding_idx {pad} is outside the table {}", tt.shape()),
            });
        }
        if dims.len() >= crate::MAX_RANK {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "the index shape {dims:?} has rank {}: with the table's dim the output would \
                     pass the largest rank, {}",
                    dims.len(),
                    crate::MAX_RANK
                ),
            });
        }
        let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if count != Some(ids.len()) {
            return Err(Error::Shape {
                op: OP,
                detail: format!("{} ids do not fill the index shape {dims:?}", ids.len()),
            });
        }
        let mut out_dims = [0; crate::MAX_RANK];
        out_dims[..dims.len()].copy_from_slice(dims);
        out_dims[dims.len()] = dim;
        let td = self.dense(OP, table)?;
        let opts = self.opts;
        let value = self.alloc_with(OP, &out_dims[..=dims.len()], |out| {
            embedding(td, vocab, dim, ids, out, &opts).map_err(Error::from)
        })?;
        let record = self.records(&[table]);
        let out = self.push_value(OP, value, record);
        if record {
            let start = self.tape.ids.len();
            self.tape.ids.extend_from_slice(ids);
            self.record(Node::Embedding {
                table,
                ids: start..self.tape.ids.len(),
                padding_idx,
                out,
            });
        }
        Ok(out)
    }
}

/// `dtable[ids[i]] += dout[i]`, from a zeroed table (repeated ids add up); row `padding_idx`
/// stays zero.
pub(super) fn backward(
    g: &mut Graph<'_>,
    table: Var,
    ids: std::ops::Range<usize>,
    padding_idx: Option<u32>,
    dout: &Tensor,
) -> Result<()> {
    let dims = *g.value(table).shape();
    let (vocab, dim) = (dims.dims()[0], dims.dims()[1]);
    let dy = dout.contiguous_data(OP, g.arena)?;
    let ids = &g.tape.ids[ids];
    let opts = g.opts;
    let dtable = g.alloc_with(OP, dims.dims(), |dt| {
        dt.fill(0.0);
        embedding_backward(ids, dy, dt, vocab, dim, &opts)?;
        if let Some(row) = padding_idx.and_then(|p| dt.chunks_exact_mut(dim.max(1)).nth(p as usize))
        {
            row.fill(0.0);
        }
        Ok(())
    })?;
    g.accumulate(table, dtable)
}

#[cfg(test)]
mod tests {
    use crate::testing::random_tensor;
    use crate::{Arena, CpuOptions, Graph, Tape, MAX_RANK};

    /// An index shape that leaves no room for the table's dim in the output says so (it
    /// said the ids did not fill the shape, which they did).
    #[test]
    fn an_index_shape_of_too_high_a_rank_names_the_rank() {
        let arena = Arena::new();
        let mut tape = Tape::new();
        let mut g = Graph::new(&mut tape, &arena, CpuOptions::threads(1), false);
        let table = g.leaf(random_tensor(&[4, 3], 1), false);
        let dims = vec![1; MAX_RANK];
        let err = g
            .embedding(table, &[2], &dims, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("has rank {MAX_RANK}")), "{err}");
        let err = g
            .embedding(table, &[2, 3], &[3], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 ids do not fill the index shape [3]"),
            "{err}"
        );
    }
}

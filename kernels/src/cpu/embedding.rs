//! Embedding lookup (a row gather) and its backward (a row scatter-add).
//!
//! Every id is checked against the vocabulary before anything is written. The forward copies
//! rows, split among tasks by output row. The backward adds `dout` rows into the rows of the
//! table its ids name, where repeated ids add up: tasks own ranges of the table's columns
//! instead, and each walks all ids in order, so an entry's additions happen in id order on any
//! number of threads, with no atomics and no scratch memory. [`embedding_backward_reference`]
//! is the plain sequential loop the backward is tested against (bit for bit).

use crate::cpu::check;
use crate::cpu::options::CpuOptions;
use crate::cpu::split::{for_each_range, LINE};
use crate::cpu::threads::SharedSlice;
use crate::{Error, Result};

/// `out[i, :] = table[ids[i], :]`: `table` is `vocab x dim`, `out` is `ids.len() x dim`
/// (row-major).
///
/// Errors when `table` does not hold `vocab * dim` values or `out` `ids.len() * dim`, when an
/// id is not below `vocab` (the message names the id, its position and the vocabulary size),
/// or when `opts` is invalid. Nothing is written on error.
pub fn embedding(
    table: &[f32],
    vocab: usize,
    dim: usize,
    ids: &[u32],
    out: &mut [f32],
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "embedding";
    opts.validate(OP)?;
    check_shapes(
        OP,
        ("table", table.len()),
        vocab,
        dim,
        ids,
        ("out", out.len()),
    )?;
    let out = SharedSlice::new(out);
    for_each_range(opts.threads, ids.len(), dim, 1, |range| {
        for i in range {
            let row = ids[i] as usize * dim;
            // SAFETY: the tasks' ranges of ids are disjoint: row `i` of `out` is this task's alone.
            let out = unsafe { out.range(i * dim..(i + 1) * dim) };
            out.copy_from_slice(&table[row..row + dim]);
        }
    });
    Ok(())
}

/// `dtable[ids[i], :] += dout[i, :]` for every `i` in order: the gradient of [`embedding`],
/// ACCUMULATED into `dtable` (`vocab x dim`; the caller zeroes it), so repeated ids add up.
///
/// `dout` is `ids.len() x dim`. The result is the same on any number of threads. Errors as
/// [`embedding`] does (with `dout` and `dtable` for `out` and `table`); nothing is written on
/// error.
pub fn embedding_backward(
    ids: &[u32],
    dout: &[f32],
    dtable: &mut [f32],
    vocab: usize,
    dim: usize,
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "embedding_backward";
    opts.validate(OP)?;
    check_shapes(
        OP,
        ("dtable", dtable.len()),
        vocab,
        dim,
        ids,
        ("dout", dout.len()),
    )?;
    let dtable = SharedSlice::new(dtable);
    for_each_range(opts.threads, dim, ids.len(), LINE, |cols| {
        for (i, &id) in ids.iter().enumerate() {
            let src = &dout[i * dim + cols.start..][..cols.len()];
            let row = id as usize * dim;
            // SAFETY: the tasks' ranges of columns are disjoint: columns `cols` of every row of
            // `dtable` are this task's alone.
            let dst = unsafe { dtable.range(row + cols.start..row + cols.end) };
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += s;
            }
        }
    });
    Ok(())
}

/// [`embedding_backward`] as one sequential loop. The same shapes and errors, without
/// options.
pub fn embedding_backward_reference(
    ids: &[u32],
    dout: &[f32],
    dtable: &mut [f32],
    vocab: usize,
    dim: usize,
) -> Result<()> {
    check_shapes(
        "embedding_backward_reference",
        ("dtable", dtable.len()),
        vocab,
        dim,
        ids,
        ("dout", dout.len()),
    )?;
    for (i, &id) in ids.iter().enumerate() {
        for j in 0..dim {
            dtable[id as usize * dim + j] += dout[i * dim + j];
        }
    }
    Ok(())
}

/// The table operand (`table` or `dtable`) is `vocab x dim`, the rows operand (`out` or
/// `dout`) `ids.len() x dim`, and every id is below `vocab`.
fn check_shapes(
    op: &'static str,
    table: (&'static str, usize),
    vocab: usize,
    dim: usize,
    ids: &[u32],
    rows: (&'static str, usize),
) -> Result<()> {
    check::matrix(op, ["vocab", "dim"], vocab, dim, &[table])?;
    check::matrix(op, ["ids", "dim"], ids.len(), dim, &[rows])?;
    match ids.iter().position(|&id| id as usize >= vocab) {
        Some(i) => Err(Error::Shape {
            op,
            detail: format!(
                "id {} at position {i} is out of range for a vocabulary of {vocab}",
                ids[i]
            ),
        }),
        None => Ok(()),
    }
}

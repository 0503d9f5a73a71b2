//! Embedding gather and scatter-add: exact rows, repeated ids adding up in order (bit for bit
//! against the sequential reference, on 1 and 2 threads), accumulation into the caller's
//! gradient, odd widths, and errors that name the offending id.

use smelt_kernels::cpu::embedding::{embedding, embedding_backward, embedding_backward_reference};
use smelt_kernels::cpu::CpuOptions;

mod common;
use common::{assert_shape_error, assert_unsupported, random};

const DIMS: [usize; 8] = [1, 2, 7, 17, 33, 127, 387, 768];
const COUNTS: [usize; 4] = [0, 1, 9, 300];

/// `n` ids below `vocab`, with repeats (a small vocabulary makes many).
fn ids(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    random(n, seed)
        .iter()
        .map(|v| ((v + 1.0) * 0.5 * vocab as f32) as u32 % vocab as u32)
        .collect()
}

#[test]
fn forward_copies_the_rows() {
    for threads in [1, 2] {
        let opts = CpuOptions::threads(threads);
        for dim in DIMS {
            for n in COUNTS {
                let vocab = 50;
                let table = random(vocab * dim, dim as u64);
                let ids = ids(n, vocab, n as u64);
                let mut out = vec![f32::NAN; n * dim];
                embedding(&table, vocab, dim, &ids, &mut out, &opts).unwrap();
                for (i, &id) in ids.iter().enumerate() {
                    let id = id as usize;
                    assert_eq!(
                        &out[i * dim..(i + 1) * dim],
                        &table[id * dim..(id + 1) * dim],
                        "dim {dim} n {n} threads {threads}: row {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn backward_accumulates_like_the_sequential_loop() {
    for threads in [1, 2] {
        let opts = CpuOptions::threads(threads);
        for dim in DIMS {
            for n in COUNTS {
                let vocab = 7;
                let ids = ids(n, vocab, n as u64 + 5);
                let dout = random(n * dim, dim as u64);
                // A gradient already holding values: the kernel adds to it.
                let start = random(vocab * dim, 77);
                let mut got = start.clone();
                embedding_backward(&ids, &dout, &mut got, vocab, dim, &opts).unwrap();
                let mut want = start.clone();
                embedding_backward_reference(&ids, &dout, &mut want, vocab, dim).unwrap();
                assert_eq!(got, want, "dim {dim} n {n} threads {threads}");
            }
        }
    }
}

#[test]
fn repeated_ids_add_up() {
    let (vocab, dim) = (4, 3);
    let ids = [2u32, 0, 2, 2];
    let dout: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let mut dtable = vec![0.0f32; vocab * dim];
    embedding_backward(&ids, &dout, &mut dtable, vocab, dim, &CpuOptions::default()).unwrap();
    assert_eq!(
        dtable,
        [
            3.0,
            4.0,
            5.0,
            0.0,
            0.0,
            0.0,
            0.0 + 6.0 + 9.0,
            1.0 + 7.0 + 10.0,
            2.0 + 8.0 + 11.0,
            0.0,
            0.0,
            0.0
        ]
    );
}

#[test]
fn two_threads_agree_with_one_at_bert_sizes() {
    let (vocab, dim, n) = (1000, 768, 512);
    let table = random(vocab * dim, 1);
    let ids = ids(n, 60, 2);
    let dout = random(n * dim, 3);
    let run = |threads: usize| {
        let opts = CpuOptions::threads(threads);
        let mut out = vec![0.0f32; n * dim];
        embedding(&table, vocab, dim, &ids, &mut out, &opts).unwrap();
        let mut dtable = vec![0.0f32; vocab * dim];
        embedding_backward(&ids, &dout, &mut dtable, vocab, dim, &opts).unwrap();
        (out, dtable)
    };
    assert!(run(1) == run(2));
}

#[test]
fn out_of_range_ids_and_bad_lengths_are_errors_that_write_nothing() {
    let opts = CpuOptions::threads(2);
    let (vocab, dim) = (5, 3);
    let table = vec![1.0f32; vocab * dim];
    let mut out = vec![0.0f32; 4 * dim];
    assert_shape_error(
        embedding(&table, vocab, dim, &[1, 4, 5, 0], &mut out, &opts),
        "embedding",
        &["id 5", "position 2", "vocabulary of 5"],
    );
    assert_shape_error(
        embedding(&table, vocab, dim, &[1, 2, 3, u32::MAX], &mut out, &opts),
        "embedding",
        &["id 4294967295", "position 3"],
    );
    assert_shape_error(
        embedding(&table[..14], vocab, dim, &[0; 4], &mut out, &opts),
        "embedding",
        &["table has 14", "vocab x dim = 5 x 3", "15"],
    );
    assert_shape_error(
        embedding(&table, vocab, dim, &[0; 3], &mut out, &opts),
        "embedding",
        &["out has 12", "ids x dim = 3 x 3", "9"],
    );
    assert_shape_error(
        embedding(&table, usize::MAX, 2, &[0; 4], &mut out, &opts),
        "embedding",
        &["overflows"],
    );
    assert!(out.iter().all(|&v| v == 0.0), "an error wrote {out:?}");

    let dout = vec![1.0f32; 4 * dim];
    let mut dtable = vec![0.0f32; vocab * dim];
    assert_shape_error(
        embedding_backward(&[0, 1, 2, 7], &dout, &mut dtable, vocab, dim, &opts),
        "embedding_backward",
        &["id 7", "position 3", "vocabulary of 5"],
    );
    assert_shape_error(
        embedding_backward(&[0; 4], &dout[..11], &mut dtable, vocab, dim, &opts),
        "embedding_backward",
        &["dout has 11", "ids x dim = 4 x 3"],
    );
    assert_shape_error(
        embedding_backward(&[0; 4], &dout, &mut dtable[..3], vocab, dim, &opts),
        "embedding_backward",
        &["dtable has 3"],
    );
    assert_shape_error(
        embedding_backward_reference(&[9], &dout[..3], &mut dtable, vocab, dim),
        "embedding_backward_reference",
        &["id 9", "position 0"],
    );
    assert!(
        dtable.iter().all(|&v| v == 0.0),
        "an error wrote {dtable:?}"
    );
}

#[test]
fn zero_threads_is_an_error() {
    let opts = CpuOptions::threads(0);
    assert_unsupported(embedding(&[0.0], 1, 1, &[0], &mut [0.0], &opts));
    assert_unsupported(embedding_backward(&[0], &[0.0], &mut [0.0], 1, 1, &opts));
}

#[test]
fn an_empty_table_of_huge_width_is_no_work() {
    // 0 ids over a [0, usize::MAX] table: rounding the task's columns up to a cache line
    // overflowed (a divide by zero in release builds).
    for threads in [1, 2] {
        let opts = CpuOptions::threads(threads);
        embedding_backward(&[], &[], &mut [], 0, usize::MAX, &opts).unwrap();
    }
}

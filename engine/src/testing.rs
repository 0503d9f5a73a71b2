//! Helpers shared by the unit tests.

use crate::{Arena, Tensor};

/// `n` pseudo-random values in [-1, 1), reproducible from `seed`.
pub(crate) fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A host tensor of shape `dims` with random values.
pub(crate) fn random_tensor(dims: &[usize], seed: u64) -> Tensor {
    Tensor::from_vec(dims, random(dims.iter().product(), seed)).unwrap()
}

/// Element `index` of `t`, found through its strides.
pub(crate) fn at(t: &Tensor, arena: &Arena, index: &[usize]) -> f32 {
    let offset: usize = index.iter().zip(t.strides()).map(|(i, s)| i * s).sum();
    t.data(arena).unwrap()[t.offset() + offset]
}

/// A tensor of shape `dims` allocated in `arena` inside a scope that is then closed: any read
/// of it is an `Error::Released` naming the reader.
pub(crate) fn released_tensor(arena: &mut Arena, dims: &[usize]) -> Tensor {
    let mut mark = arena.mark().unwrap();
    let t = arena.alloc(dims).unwrap().into_tensor();
    arena.reset_to(&mut mark).unwrap();
    t
}

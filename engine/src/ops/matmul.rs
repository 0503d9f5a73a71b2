//! Matrix products of 2-D and batched 3-D tensors, through the strided SGEMM.

use crate::{Arena, Error, Result, Shape, Tensor};
use smelt_kernels::cpu::gemm::{sgemm_batched, BatchStrides, MatMut, MatRef};
use smelt_kernels::cpu::CpuOptions;

const OP: &str = "matmul";

/// `a x b`: `[m, k] x [k, n] -> [m, n]`, `[B, m, k] x [B, k, n] -> [B, m, n]`, or
/// `[B, m, k] x [k, n] -> [B, m, n]` (one rhs for every batch).
///
/// Operands may be any views (transposed, narrowed): their strides go straight to the GEMM,
/// so a transposed operand costs no copy. The output is a fresh contiguous arena tensor.
/// Errors name both shapes when ranks, inner dimensions or batch sizes disagree.
pub fn matmul(arena: &Arena, a: &Tensor, b: &Tensor, opts: &CpuOptions) -> Result<Tensor> {
    let (batch, m, k, n) = check_shapes(a.shape(), b.shape())?;
    let (ra, sa) = (a.shape().rank(), a.strides());
    let (rb, sb) = (b.shape().rank(), b.strides());
    // The output's shape first: it refuses sizes whose product overflows, so `m * n` below
    // cannot.
    let out_shape = if ra == 3 {
        Shape::for_op(OP, &[batch, m, n])?
    } else {
        Shape::for_op(OP, &[m, n])?
    };
    let strides = BatchStrides {
        count: batch,
        a: if ra == 3 { sa[0] } else { 0 },
        b: if rb == 3 { sb[0] } else { 0 },
        c: m * n,
    };
    let lhs = MatRef::strided(a.view_data(OP, arena)?, m, k, sa[ra - 2], sa[ra - 1]);
    let rhs = MatRef::strided(b.view_data(OP, arena)?, k, n, sb[rb - 2], sb[rb - 1]);
    let mut out = arena.alloc_shape(out_shape)?;
    let c = MatMut::row_major(out.as_mut_slice(), m, n);
    sgemm_batched(&strides, 1.0, lhs, rhs, 0.0, c, opts)?;
    Ok(out.into_tensor())
}

/// `(batch, m, k, n)` of a supported pair of operand shapes, or an error naming both.
fn check_shapes(a: &Shape, b: &Shape) -> Result<(usize, usize, usize, usize)> {
    let error = |detail: &str| Error::Shape {
        op: OP,
        detail: format!("lhs {a} and rhs {b}: {detail}"),
    };
    let (batch, m, k) = match *a.dims() {
        [m, k] => (1, m, k),
        [batch, m, k] => (batch, m, k),
        _ => {
            return Err(error(
                "expected [m, k] x [k, n], [B, m, k] x [B, k, n] or [B, m, k] x [k, n]",
            ))
        }
    };
    let (k2, n) = match (a.rank(), b.dims()) {
        (_, &[k2, n]) => (k2, n),
        (3, &[batch2, k2, n]) => {
            if batch2 != batch {
                return Err(error(&format!("batch sizes {batch} and {batch2} differ")));
            }
            (k2, n)
        }
        _ => {
            return Err(error(
                "expected [m, k] x [k, n], [B, m, k] x [B, k, n] or [B, m, k] x [k, n]",
            ))
        }
    };
    if k != k2 {
        return Err(error(&format!("inner dimensions {k} and {k2} differ")));
    }
    Ok((batch, m, k, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, random_tensor};
    use approx::assert_abs_diff_eq;

    /// The product by a plain triple loop in f64, reading operands through their strides.
    fn naive(arena: &Arena, a: &Tensor, b: &Tensor) -> Vec<f32> {
        let (batch, m, k, n) = check_shapes(a.shape(), b.shape()).unwrap();
        let index = |t: &Tensor, i: usize, r: usize, c: usize| {
            if t.shape().rank() == 3 {
                at(t, arena, &[i, r, c])
            } else {
                at(t, arena, &[r, c])
            }
        };
        let mut out = Vec::new();
        for i in 0..batch {
            for r in 0..m {
                for c in 0..n {
                    let dot: f64 = (0..k)
                        .map(|p| index(a, i, r, p) as f64 * index(b, i, p, c) as f64)
                        .sum();
                    out.push(dot as f32);
                }
            }
        }
        out
    }

    fn check(a: &Tensor, b: &Tensor, expected_dims: &[usize]) {
        for threads in [1, 2] {
            let arena = Arena::new();
            let c = matmul(&arena, a, b, &CpuOptions::threads(threads)).unwrap();
            assert_eq!(c.dims(), expected_dims);
            assert!(c.is_contiguous());
            let got = c.to_vec(&arena).unwrap();
            let want = naive(&arena, a, b);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_abs_diff_eq!(g, w, epsilon = 1e-4);
            }
        }
    }

    #[test]
    fn plain_2d() {
        for (m, k, n) in [(1, 1, 1), (7, 33, 5), (33, 7, 127), (64, 64, 64)] {
            check(
                &random_tensor(&[m, k], 1),
                &random_tensor(&[k, n], 2),
                &[m, n],
            );
        }
    }

    #[test]
    fn transposed_and_narrowed_operands() {
        let (m, k, n) = (13, 29, 17);
        let at_ = random_tensor(&[k, m], 3).t().unwrap();
        let bt = random_tensor(&[n, k], 4).t().unwrap();
        check(&at_, &bt, &[m, n]);
        check(&at_, &random_tensor(&[k, n], 5), &[m, n]);
        let wide = random_tensor(&[m, k + 10], 6).narrow(1, 4, k).unwrap();
        let tall = random_tensor(&[k + 3, n], 7).narrow(0, 3, k).unwrap();
        check(&wide, &tall, &[m, n]);
    }

    #[test]
    fn batched_3d() {
        let (batch, m, k, n) = (5, 9, 16, 11);
        let a = random_tensor(&[batch, m, k], 8);
        check(&a, &random_tensor(&[batch, k, n], 9), &[batch, m, n]);
        let kt = random_tensor(&[batch, n, k], 10).transpose(1, 2).unwrap();
        check(&a, &kt, &[batch, m, n]);
        let interleaved = random_tensor(&[m, batch, k], 11).transpose(0, 1).unwrap();
        check(&interleaved, &kt, &[batch, m, n]);
    }

    #[test]
    fn batched_with_one_rhs() {
        let a = random_tensor(&[3, 8, 12], 12);
        check(&a, &random_tensor(&[12, 20], 13), &[3, 8, 20]);
        check(&a, &random_tensor(&[20, 12], 14).t().unwrap(), &[3, 8, 20]);
    }

    #[test]
    fn empty_inner_dimension_gives_zeros() {
        // NaN in the arena first: C must be written, not found zeroed.
        let mut arena = Arena::new();
        arena.alloc(&[16]).unwrap().as_mut_slice().fill(f32::NAN);
        arena.reset();
        let a = random_tensor(&[3, 0], 15);
        let b = random_tensor(&[0, 2], 16);
        let c = matmul(&arena, &a, &b, &CpuOptions::default()).unwrap();
        assert_eq!(c.to_vec(&arena).unwrap(), vec![0.0; 6]);
    }

    #[test]
    fn shape_errors_name_both_operands() {
        let arena = Arena::new();
        let opts = CpuOptions::default();
        let err = |a: &[usize], b: &[usize]| {
            matmul(&arena, &random_tensor(a, 0), &random_tensor(b, 0), &opts)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[3, 4], &[5, 2]),
            "matmul: lhs [3, 4] and rhs [5, 2]: inner dimensions 4 and 5 differ"
        );
        assert_eq!(
            err(&[2, 3, 4], &[3, 4, 5]),
            "matmul: lhs [2, 3, 4] and rhs [3, 4, 5]: batch sizes 2 and 3 differ"
        );
        let expected = "expected [m, k] x [k, n], [B, m, k] x [B, k, n] or [B, m, k] x [k, n]";
        assert!(err(&[4], &[4, 2]).ends_with(expected));
        assert!(err(&[3, 4], &[2, 4, 5]).ends_with(expected));
        assert!(err(&[1, 2, 3, 4], &[4, 5]).ends_with(expected));
    }

    #[test]
    fn released_operands_are_refused() {
        let mut arena = Arena::new();
        let opts = CpuOptions::default();
        let a = arena.alloc(&[2, 2]).unwrap().into_tensor();
        arena.reset();
        let err = matmul(&arena, &a, &a, &opts).unwrap_err().to_string();
        assert!(
            err.starts_with("matmul: tensor [2, 2] used after Arena::reset"),
            "{err}"
        );
    }
}

//! The plain reference SGEMM: a triple loop accumulating in f64. Slow and obviously right;
//! the fast kernels are tested against it.

use super::{MatMut, MatRef};

/// `C = alpha * A * B + beta * C` by the definition, accumulating in f64.
///
/// Shapes are assumed consistent (`A: m x k`, `B: k x n`, `C: m x n`); `beta == 0` overwrites C
/// without reading it.
pub fn sgemm_reference(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f64;
            for p in 0..k {
                sum += a.get(i, p) as f64 * b.get(p, j) as f64;
            }
            let idx = c.index(i, j);
            let prior = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c.data[idx] as f64
            };
            c.data[idx] = (alpha as f64 * sum + prior) as f32;
        }
    }
}

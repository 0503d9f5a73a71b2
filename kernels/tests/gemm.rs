//! SGEMM against an f64 triple loop: odd sizes, all transposes, alpha/beta, strides, threads,
//! every microkernel this CPU supports, and the errors of the checked API.

use smelt_kernels::cpu::gemm::{sgemm, sgemm_batched, sgemm_bias, BatchStrides, MatMut, MatRef};
use smelt_kernels::cpu::{CpuOptions, Isa};
use smelt_kernels::Error;

mod common;
use common::{all_options, random};

const SIZES: [usize; 12] = [1, 2, 7, 15, 16, 17, 31, 33, 63, 65, 127, 129];

/// A stored `rows x cols` operand, row-major or transposed (stored `cols x rows`).
fn view(data: &[f32], rows: usize, cols: usize, transposed: bool) -> MatRef<'_> {
    if transposed {
        MatRef::row_major(data, cols, rows).t()
    } else {
        MatRef::row_major(data, rows, cols)
    }
}

/// `alpha * A * B + beta * C0` in f64, plus the error bound `sum |alpha a b| + |beta c|`
/// for each element, both row-major `m x n`.
fn expected(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c0: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut value = vec![0.0; m * n];
    let mut scale = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut sum, mut abs) = (0.0f64, 0.0f64);
            for p in 0..k {
                let prod = a.get(i, p) as f64 * b.get(p, j) as f64;
                sum += prod;
                abs += prod.abs();
            }
            let prior = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c0[i * n + j] as f64
            };
            value[i * n + j] = alpha as f64 * sum + prior;
            scale[i * n + j] = (alpha as f64 * abs).abs() + prior.abs();
        }
    }
    (value, scale)
}

/// Every element within a few f32 roundings of the exact value, relative to its magnitude.
fn assert_close(got: &[f32], want: &(Vec<f64>, Vec<f64>), what: &str) {
    for (idx, (&g, (&w, &s))) in got.iter().zip(want.0.iter().zip(&want.1)).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= 1e-6 * s + 1e-30 && g.is_finite(),
            "{what}: element {idx}: got {g}, want {w} (error {err:e}, scale {s:e})"
        );
    }
}

#[test]
fn every_odd_size_and_transpose_matches_f64() {
    let opts = all_options();
    for &m in &SIZES {
        for &n in &SIZES {
            for &k in &SIZES {
                let a_data = random(m * k, (m * 7 + k) as u64);
                let b_data = random(k * n, (k * 13 + n) as u64);
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    let a = view(&a_data, m, k, ta);
                    let b = view(&b_data, k, n, tb);
                    let want = expected(1.0, a, b, 0.0, &[]);
                    for o in &opts {
                        let mut c = vec![f32::NAN; m * n];
                        sgemm(1.0, a, b, 0.0, MatMut::row_major(&mut c, m, n), o).unwrap();
                        let what = format!("{m}x{k}x{n} ta={ta} tb={tb} {o:?}");
                        assert_close(&c, &want, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn a_dimension_of_1000_matches_f64() {
    let shapes = [
        (1000, 33, 17),
        (17, 1000, 33),
        (33, 17, 1000),
        (1000, 65, 1000),
        (129, 1000, 127),
    ];
    for (m, k, n) in shapes {
        let a_data = random(m * k, 1);
        let b_data = random(k * n, 2);
        for tb in [false, true] {
            let a = view(&a_data, m, k, false);
            let b = view(&b_data, k, n, tb);
            let want = expected(1.0, a, b, 0.0, &[]);
            for o in all_options() {
                let mut c = vec![0.0; m * n];
                sgemm(1.0, a, b, 0.0, MatMut::row_major(&mut c, m, n), &o).unwrap();
                assert_close(&c, &want, &format!("{m}x{k}x{n} tb={tb} {o:?}"));
            }
        }
    }
}

#[test]
fn depths_taken_in_blocks_deeper_than_kc_match_f64() {
    // KC is at most 768, and a depth that then takes fewer blocks of up to 1024 is cut into
    // those (900: one block; 2000: two of 1000; 3072, BERT's FFN: three of 1024), with MC and
    // NC shrunk: beta applies in the first block only, whichever operand is transposed.
    for (m, k, n) in [(37, 900, 70), (29, 2000, 45), (13, 3072, 33)] {
        let a_data = random(m * k, 31);
        let b_data = random(k * n, 32);
        let c0 = random(m * n, 33);
        for (ta, tb) in [(false, true), (true, false)] {
            let (a, b) = (view(&a_data, m, k, ta), view(&b_data, k, n, tb));
            let want = expected(0.5, a, b, 2.0, &c0);
            for o in all_options() {
                let mut c = c0.clone();
                sgemm(0.5, a, b, 2.0, MatMut::row_major(&mut c, m, n), &o).unwrap();
                assert_close(&c, &want, &format!("{m}x{k}x{n} ta={ta} tb={tb} {o:?}"));
            }
        }
    }
}

#[test]
fn cube_of_1000_on_two_threads_matches_f64() {
    let n = 1000;
    let a_data = random(n * n, 3);
    let b_data = random(n * n, 4);
    let (a, b) = (view(&a_data, n, n, false), view(&b_data, n, n, true));
    let want = expected(1.0, a, b, 0.0, &[]);
    let mut c = vec![0.0; n * n];
    sgemm(
        1.0,
        a,
        b,
        0.0,
        MatMut::row_major(&mut c, n, n),
        &CpuOptions::threads(2),
    )
    .unwrap();
    assert_close(&c, &want, "1000^3 on 2 threads");
}

#[test]
fn every_block_of_b_in_both_thread_splits_matches_f64() {
    // N over several NC blocks and K over several KC blocks of every kernel on any CPU (the
    // blocking clamps NC to 8192 and KC to 768, 1024 for a deeper block), on 2 threads: M = 26
    // splits B's column panels between the threads (each packs its own) on every kernel,
    // M = 96 splits the rows.
    let (k, n) = (1100, 8300);
    let b_data = random(k * n, 21);
    let b = view(&b_data, k, n, true);
    for m in [26, 96] {
        let a_data = random(m * k, 22);
        let c0 = random(m * n, 23);
        let a = view(&a_data, m, k, false);
        let want = expected(0.5, a, b, 2.0, &c0);
        for isa in Isa::supported() {
            let o = CpuOptions::threads(2).isa(isa);
            let mut c = c0.clone();
            sgemm(0.5, a, b, 2.0, MatMut::row_major(&mut c, m, n), &o).unwrap();
            assert_close(&c, &want, &format!("{m}x{k}x{n} {o:?}"));
        }
    }
}

#[test]
fn alpha_and_beta_scale_the_product_and_c() {
    let (m, k, n) = (33, 65, 17);
    let a_data = random(m * k, 5);
    let b_data = random(k * n, 6);
    let c0 = random(m * n, 7);
    let (a, b) = (view(&a_data, m, k, false), view(&b_data, k, n, false));
    for (alpha, beta) in [
        (0.5, -1.5),
        (-2.0, 1.0),
        (1.0, 0.25),
        (0.0, 3.0),
        (0.0, 0.0),
    ] {
        let want = expected(alpha, a, b, beta, &c0);
        for o in all_options() {
            let mut c = c0.clone();
            sgemm(alpha, a, b, beta, MatMut::row_major(&mut c, m, n), &o).unwrap();
            assert_close(&c, &want, &format!("alpha={alpha} beta={beta} {o:?}"));
        }
    }
}

#[test]
fn beta_zero_ignores_nan_and_inf_already_in_c() {
    let (m, k, n) = (17, 31, 33);
    let a_data = random(m * k, 8);
    let b_data = random(k * n, 9);
    let (a, b) = (view(&a_data, m, k, false), view(&b_data, k, n, false));
    let want = expected(1.0, a, b, 0.0, &[]);
    for o in all_options() {
        let mut c: Vec<f32> = (0..m * n)
            .map(|i| if i % 2 == 0 { f32::NAN } else { f32::INFINITY })
            .collect();
        sgemm(1.0, a, b, 0.0, MatMut::row_major(&mut c, m, n), &o).unwrap();
        assert_close(&c, &want, &format!("NaN in C {o:?}"));
    }
}

#[test]
fn k_zero_scales_c_by_beta() {
    let (m, n) = (7, 15);
    let c0 = random(m * n, 10);
    for o in all_options() {
        let mut c = c0.clone();
        let a = MatRef::row_major(&[], m, 0);
        let b = MatRef::row_major(&[], 0, n);
        sgemm(1.0, a, b, 2.0, MatMut::row_major(&mut c, m, n), &o).unwrap();
        let want: Vec<f32> = c0.iter().map(|x| 2.0 * x).collect();
        assert_eq!(c, want);
    }
}

#[test]
fn a_batch_of_empty_products_scales_every_c_by_beta() {
    // k = 0: A and B are empty slices, yet their batch strides are not 0.
    let (count, m, n) = (3, 5, 4);
    let strides = BatchStrides {
        count,
        a: 5,
        b: 5,
        c: m * n,
    };
    let c0 = random(count * m * n, 16);
    for o in all_options() {
        let mut c = c0.clone();
        let (a, b) = (MatRef::row_major(&[], m, 0), MatRef::row_major(&[], 0, n));
        sgemm_batched(
            &strides,
            1.0,
            a,
            b,
            0.5,
            MatMut::row_major(&mut c, m, n),
            &o,
        )
        .unwrap();
        let want: Vec<f32> = c0.iter().map(|x| 0.5 * x).collect();
        assert_eq!(c, want, "{o:?}");
    }
}

#[test]
fn non_contiguous_strides_in_every_operand() {
    let (m, k, n) = (31, 63, 33);
    // A: every other column of a padded buffer; B: rows 3 apart, columns 1 apart with padding.
    let a_data = random(m * 130, 11);
    let b_data = random(k * 40, 12);
    let a = MatRef::strided(&a_data, m, k, 130, 2);
    let b = MatRef::strided(&b_data, k, n, 40, 1);
    let c0 = random(m * n * 3, 13);
    for o in all_options() {
        // C row-major with padded rows.
        let mut c = c0.clone();
        let want = expected(1.5, a, b, 0.5, &strided_copy(&c0, m, n, n + 5, 1));
        sgemm(1.5, a, b, 0.5, MatMut::strided(&mut c, m, n, n + 5, 1), &o).unwrap();
        assert_close(
            &strided_copy(&c, m, n, n + 5, 1),
            &want,
            &format!("padded C {o:?}"),
        );
        // C column-major (exercises C^T = B^T A^T).
        let mut c = c0.clone();
        let want = expected(1.0, a, b, 1.0, &strided_copy(&c0, m, n, 1, m));
        sgemm(1.0, a, b, 1.0, MatMut::strided(&mut c, m, n, 1, m), &o).unwrap();
        assert_close(
            &strided_copy(&c, m, n, 1, m),
            &want,
            &format!("col-major C {o:?}"),
        );
        // C with no unit stride at all.
        let mut c = c0.clone();
        let want = expected(1.0, a, b, -1.0, &strided_copy(&c0, m, n, 2 * n, 2));
        sgemm(1.0, a, b, -1.0, MatMut::strided(&mut c, m, n, 2 * n, 2), &o).unwrap();
        assert_close(
            &strided_copy(&c, m, n, 2 * n, 2),
            &want,
            &format!("strided C {o:?}"),
        );
    }
}

/// `expected` plus `bias[j]` in every row (and its magnitude in the error scale).
fn expected_bias(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    bias: &[f32],
    beta: f32,
    c0: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let (mut value, mut scale) = expected(alpha, a, b, beta, c0);
    for (idx, (v, s)) in value.iter_mut().zip(scale.iter_mut()).enumerate() {
        let add = bias[idx % bias.len()] as f64;
        *v += add;
        *s += add.abs();
    }
    (value, scale)
}

#[test]
fn the_bias_is_added_once_to_every_row() {
    // Odd sizes (edge tiles on both sides), K beyond any KC (the bias must come with the
    // first depth block only), beta 0 over NaN and beta 1.5, both thread splits, B stored
    // as nn.Linear stores its weight (N x K).
    for (m, k, n) in [
        (1, 1, 1),
        (7, 15, 17),
        (33, 65, 31),
        (96, 1100, 40),
        (26, 1100, 130),
    ] {
        let a_data = random(m * k, 31);
        let b_data = random(k * n, 32);
        let bias = random(n, 33);
        let (a, b) = (view(&a_data, m, k, false), view(&b_data, k, n, true));
        let c0 = random(m * n, 34);
        for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.5)] {
            let want = expected_bias(alpha, a, b, &bias, beta, &c0);
            for o in all_options() {
                let mut c = if beta == 0.0 {
                    vec![f32::NAN; m * n]
                } else {
                    c0.clone()
                };
                sgemm_bias(
                    alpha,
                    a,
                    b,
                    &bias,
                    beta,
                    MatMut::row_major(&mut c, m, n),
                    &o,
                )
                .unwrap();
                assert_close(&c, &want, &format!("{m}x{k}x{n} beta {beta} {o:?}"));
            }
        }
    }
}

#[test]
fn the_bias_follows_c_in_any_layout_and_without_a_product() {
    let (m, k, n) = (31, 63, 33);
    let (a_data, b_data, bias) = (random(m * k, 35), random(k * n, 36), random(n, 37));
    let (a, b) = (view(&a_data, m, k, true), view(&b_data, k, n, false));
    let c0 = random(m * n, 38);
    for o in all_options() {
        // Column-major C: the bias still belongs to C's columns.
        let mut c = c0.clone();
        let want = expected_bias(1.0, a, b, &bias, 1.0, &strided_copy(&c0, m, n, 1, m));
        sgemm_bias(
            1.0,
            a,
            b,
            &bias,
            1.0,
            MatMut::strided(&mut c, m, n, 1, m),
            &o,
        )
        .unwrap();
        let got = strided_copy(&c, m, n, 1, m);
        assert_close(&got, &want, &format!("col-major C {o:?}"));
        // alpha = 0 and k = 0: C = bias + beta * C, without a product.
        let mut c = c0.clone();
        sgemm_bias(0.0, a, b, &bias, 0.5, MatMut::row_major(&mut c, m, n), &o).unwrap();
        let want: Vec<f32> = (0..m * n).map(|i| bias[i % n] + 0.5 * c0[i]).collect();
        assert_eq!(c, want, "alpha 0 {o:?}");
        let (a0, b0) = (MatRef::row_major(&[], m, 0), MatRef::row_major(&[], 0, n));
        let mut c = vec![f32::NAN; m * n];
        sgemm_bias(1.0, a0, b0, &bias, 0.0, MatMut::row_major(&mut c, m, n), &o).unwrap();
        let want: Vec<f32> = (0..m * n).map(|i| bias[i % n]).collect();
        assert_eq!(c, want, "k 0 {o:?}");
    }
}

#[test]
fn a_bias_of_the_wrong_length_is_an_error_naming_it() {
    let (a, b, bias) = (vec![0.0; 12], vec![0.0; 8], vec![0.0; 3]);
    let mut c = vec![0.0; 6];
    let err = sgemm_bias(
        1.0,
        MatRef::row_major(&a, 3, 4),
        MatRef::row_major(&b, 4, 2),
        &bias,
        0.0,
        MatMut::row_major(&mut c, 3, 2),
        &CpuOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape { .. }), "{msg}");
    assert!(
        msg.contains("sgemm_bias") && msg.contains("3 values") && msg.contains("3x2"),
        "{msg}"
    );
}

/// The `m x n` matrix at `data` with strides `(rs, cs)`, gathered row-major.
fn strided_copy(data: &[f32], m: usize, n: usize, rs: usize, cs: usize) -> Vec<f32> {
    (0..m * n)
        .map(|e| data[(e / n) * rs + (e % n) * cs])
        .collect()
}

#[test]
fn strided_batches_match_one_gemm_each() {
    let (batch, m, k, n) = (7, 17, 33, 15);
    let a_data = random(batch * m * k, 14);
    let b_data = random(batch * k * n, 15);
    // Strides of 0 broadcast one A or one B (or both) over the batch.
    let cases = [
        (m * k, k * n, false),
        (m * k, k * n, true),
        (m * k, 0, false),
        (0, k * n, true),
        (0, 0, false),
    ];
    for (a_stride, b_stride, tb) in cases {
        let strides = BatchStrides {
            count: batch,
            a: a_stride,
            b: b_stride,
            c: m * n,
        };
        for o in all_options() {
            let mut c = vec![f32::NAN; batch * m * n];
            let a = view(&a_data, m, k, false);
            let b = view(&b_data, k, n, tb);
            sgemm_batched(
                &strides,
                1.0,
                a,
                b,
                0.0,
                MatMut::row_major(&mut c, m, n),
                &o,
            )
            .unwrap();
            for i in 0..batch {
                let a_i = view(&a_data[i * a_stride..], m, k, false);
                let b_i = view(&b_data[i * b_stride..], k, n, tb);
                let want = expected(1.0, a_i, b_i, 0.0, &[]);
                let got = &c[i * m * n..(i + 1) * m * n];
                let what = format!("batch {i} a_stride={a_stride} b_stride={b_stride} {o:?}");
                assert_close(got, &want, &what);
            }
        }
    }
}

#[test]
fn attention_shaped_batches_match_f64() {
    // 2 batches x 3 heads of (T x d) * (d x T): Q K^T with K read transposed through strides.
    let (bh, t, d) = (6, 37, 64);
    let q = random(bh * t * d, 16);
    let kmat = random(bh * t * d, 17);
    let strides = BatchStrides {
        count: bh,
        a: t * d,
        b: t * d,
        c: t * t,
    };
    for o in all_options() {
        let mut s = vec![0.0; bh * t * t];
        let a = MatRef::row_major(&q, t, d);
        let b = MatRef::row_major(&kmat, t, d).t();
        sgemm_batched(
            &strides,
            0.125,
            a,
            b,
            0.0,
            MatMut::row_major(&mut s, t, t),
            &o,
        )
        .unwrap();
        for i in 0..bh {
            let a_i = MatRef::row_major(&q[i * t * d..], t, d);
            let b_i = MatRef::row_major(&kmat[i * t * d..], t, d).t();
            let want = expected(0.125, a_i, b_i, 0.0, &[]);
            assert_close(
                &s[i * t * t..(i + 1) * t * t],
                &want,
                &format!("head {i} {o:?}"),
            );
        }
        // P V: (T x T) * (T x d) with d a multiple of every NR, so B is read in place.
        let pv = BatchStrides {
            count: bh,
            a: t * t,
            b: t * d,
            c: t * d,
        };
        let mut out = vec![f32::NAN; bh * t * d];
        let (p_view, v_view) = (MatRef::row_major(&s, t, t), MatRef::row_major(&kmat, t, d));
        let out_view = MatMut::row_major(&mut out, t, d);
        sgemm_batched(&pv, 1.0, p_view, v_view, 0.0, out_view, &o).unwrap();
        for i in 0..bh {
            let p_i = MatRef::row_major(&s[i * t * t..], t, t);
            let v_i = MatRef::row_major(&kmat[i * t * d..], t, d);
            let want = expected(1.0, p_i, v_i, 0.0, &[]);
            let got = &out[i * t * d..(i + 1) * t * d];
            assert_close(got, &want, &format!("P V head {i} {o:?}"));
        }
    }
}

/// The error `sgemm` returns for row-major operands `a: (data, rows, cols)` and likewise `b`
/// and `c`; panics if the call succeeds.
fn dense_error(
    (a, ar, ac): (&[f32], usize, usize),
    (b, br, bc): (&[f32], usize, usize),
    (c, cr, cc): (&mut [f32], usize, usize),
    opts: &CpuOptions,
) -> Error {
    let a = MatRef::row_major(a, ar, ac);
    let b = MatRef::row_major(b, br, bc);
    sgemm(1.0, a, b, 0.0, MatMut::row_major(c, cr, cc), opts).unwrap_err()
}

#[test]
fn mismatched_shapes_are_errors_naming_them() {
    let (a, b) = (vec![0.0; 12], vec![0.0; 10]);
    let mut c = vec![0.0; 6];
    let err = dense_error(
        (&a, 3, 4),
        (&b, 5, 2),
        (&mut c, 3, 2),
        &CpuOptions::default(),
    );
    assert!(matches!(err, Error::Shape { .. }));
    let msg = err.to_string();
    assert!(msg.contains("3x4") && msg.contains("5x2"), "{msg}");
}

#[test]
fn short_slices_are_errors_naming_the_operand() {
    let (a, b) = (vec![0.0; 11], vec![0.0; 8]);
    let mut c = vec![0.0; 6];
    let err = dense_error(
        (&a, 3, 4),
        (&b, 4, 2),
        (&mut c, 3, 2),
        &CpuOptions::default(),
    );
    assert_eq!(
        err,
        Error::OutOfBounds {
            op: "sgemm",
            operand: "A",
            needed: 12,
            len: 11
        }
    );
    // The last batch of B runs past the slice.
    let strides = BatchStrides {
        count: 2,
        a: 0,
        b: 8,
        c: 6,
    };
    let b_short = vec![0.0; 13];
    let mut c = vec![0.0; 12];
    let err = sgemm_batched(
        &strides,
        1.0,
        MatRef::row_major(&a[..], 3, 3),
        MatRef::row_major(&b_short, 3, 2),
        0.0,
        MatMut::row_major(&mut c, 3, 2),
        &CpuOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("operand B"), "{err}");
}

#[test]
fn strides_whose_extent_overflows_are_out_of_bounds() {
    // (3 - 1) * 2^63 + 1 wraps to 1 in usize arithmetic: the check must not pass it.
    let a = [1.0f32];
    let mut c = [0.0f32; 3];
    let err = sgemm(
        1.0,
        MatRef::strided(&a, 3, 1, 1 << 63, 1),
        MatRef::row_major(&a, 1, 1),
        0.0,
        MatMut::row_major(&mut c, 3, 1),
        &CpuOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("operand A"), "{err}");
    // Batches whose span overflows: 3 batches 2^63 apart.
    let strides = BatchStrides {
        count: 3,
        a: 0,
        b: 1 << 63,
        c: 0,
    };
    let err = sgemm_batched(
        &strides,
        1.0,
        MatRef::row_major(&a, 1, 1),
        MatRef::row_major(&a, 1, 1),
        0.0,
        MatMut::row_major(&mut c[..1], 1, 1),
        &CpuOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("operand B"), "{err}");
}

#[test]
fn aliasing_outputs_are_errors() {
    let (a, b) = (vec![0.0; 6], vec![0.0; 6]);
    let mut c = vec![0.0; 8];
    // Row stride 1 with column stride 1: C(0,1) and C(1,0) are the same element.
    let err = sgemm(
        1.0,
        MatRef::row_major(&a, 2, 3),
        MatRef::row_major(&b, 3, 2),
        0.0,
        MatMut::strided(&mut c, 2, 2, 1, 1),
        &CpuOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err}");
    // Two batches writing the same C.
    let strides = BatchStrides {
        count: 2,
        a: 0,
        b: 0,
        c: 0,
    };
    let err = sgemm_batched(
        &strides,
        1.0,
        MatRef::row_major(&a, 2, 3),
        MatRef::row_major(&b, 3, 2),
        0.0,
        MatMut::row_major(&mut c, 2, 2),
        &CpuOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Overlap { .. }), "{err}");
}

#[test]
fn empty_outputs_never_alias() {
    // A 4 x 0 row-major C has row stride 0; with no elements there is nothing to alias.
    let a = vec![1.0; 8];
    let mut c: Vec<f32> = Vec::new();
    for (m, n) in [(4, 0), (0, 3)] {
        sgemm(
            1.0,
            MatRef::row_major(&a, m, 2),
            MatRef::row_major(&a, 2, n),
            0.0,
            MatMut::row_major(&mut c, m, n),
            &CpuOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{m}x{n}: {e}"));
    }
}

#[test]
fn unsupported_kernels_and_zero_threads_are_errors() {
    let (a, b) = (vec![1.0; 4], vec![1.0; 4]);
    for isa in Isa::ALL.into_iter().filter(|isa| !isa.is_supported()) {
        let mut c = vec![0.0; 4];
        let opts = CpuOptions::default().isa(isa);
        let err = dense_error((&a, 2, 2), (&b, 2, 2), (&mut c, 2, 2), &opts);
        assert!(err.to_string().contains(isa.name()), "{err}");
    }
    let mut c = vec![0.0; 4];
    let zero_threads = CpuOptions {
        threads: 0,
        ..CpuOptions::default()
    };
    let err = dense_error((&a, 2, 2), (&b, 2, 2), (&mut c, 2, 2), &zero_threads);
    assert!(err.to_string().contains("threads"), "{err}");
}

#[test]
fn detection_picks_the_fastest_supported_kernel() {
    let best = Isa::detect();
    assert!(best.is_supported());
    let first = Isa::supported().next().unwrap();
    assert_eq!(best, first);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        assert_eq!(best, Isa::Avx512);
    }
}

/// An empty product (k = 0) passes the checks with empty operands whatever their batch
/// strides, so the offsets of batch i may overflow: they wrap (never read) instead of
/// failing a debug build's overflow check, and C is `beta * C`.
#[test]
fn empty_batched_products_take_any_batch_stride() {
    let strides = BatchStrides {
        count: 3,
        a: usize::MAX / 2 + 1,
        b: usize::MAX / 2 + 1,
        c: 4,
    };
    let mut c = [1.0f32; 12];
    for isa in Isa::supported() {
        let opts = CpuOptions::threads(1).isa(isa);
        c.fill(1.0);
        let (a, b) = (MatRef::row_major(&[], 2, 0), MatRef::row_major(&[], 0, 2));
        sgemm_batched(
            &strides,
            1.0,
            a,
            b,
            0.5,
            MatMut::row_major(&mut c, 2, 2),
            &opts,
        )
        .unwrap();
        assert_eq!(c, [0.5; 12], "{isa}");
    }
}

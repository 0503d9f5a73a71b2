//! GEMM over a B packed beforehand (`PackedB`, `sgemm_prepacked`): the same bits as `sgemm`
//! and `sgemm_bias` packing B themselves, on every kernel, 1 and 2 threads, B stored plain and
//! transposed, shapes of one block and of several along N and K; and the errors.

use smelt_kernels::cpu::gemm::{
    sgemm, sgemm_bias, sgemm_prepacked, sgemm_reference, MatMut, MatRef, PackedB,
};
use smelt_kernels::cpu::{CpuOptions, Isa};
use smelt_kernels::Error;

mod common;
use common::{all_options, assert_shape_error, random};

/// `(m, k, n)`: empty B; one block; few rows over many columns (B packed panel by panel when
/// packing); a depth of two blocks; more columns than one block of B holds; both, with a
/// ragged last depth block (2001 = 1001 + 1000 at KC 768); many rows.
const SHAPES: [(usize, usize, usize); 9] = [
    (3, 0, 5),
    (3, 5, 0),
    (1, 1, 1),
    (17, 65, 33),
    (129, 1000, 1000),
    (129, 2000, 300),
    (7, 300, 3000),
    (129, 2001, 3000),
    (1000, 65, 700),
];

/// A stored `rows x cols` operand, row-major or transposed (stored `cols x rows`).
fn view(data: &[f32], rows: usize, cols: usize, transposed: bool) -> MatRef<'_> {
    if transposed {
        MatRef::row_major(data, cols, rows).t()
    } else {
        MatRef::row_major(data, rows, cols)
    }
}

#[test]
fn prepacked_products_are_the_packing_ones_bit_for_bit() {
    for (m, k, n) in SHAPES {
        let a_data = random(m * k, (m + k) as u64);
        let b_data = random(k * n, (k + n) as u64);
        let bias = random(n, n as u64);
        let c0 = random(m * n, 5);
        let a = MatRef::row_major(&a_data, m, k);
        for transposed in [false, true] {
            let b = view(&b_data, k, n, transposed);
            for opts in all_options() {
                let packed = PackedB::new(b, &opts).unwrap();
                assert_eq!((packed.k(), packed.n(), packed.isa()), (k, n, opts.isa));
                let what = format!("{m}x{k}x{n} transposed {transposed} {opts:?}");
                // A product into zeros, and one with a bias and beta onto C.
                let mut want = vec![f32::NAN; m * n];
                sgemm(1.0, a, b, 0.0, MatMut::row_major(&mut want, m, n), &opts).unwrap();
                let mut got = vec![f32::NAN; m * n];
                let c = MatMut::row_major(&mut got, m, n);
                sgemm_prepacked(1.0, a, &packed, None, 0.0, c, &opts).unwrap();
                assert!(got == want, "{what}: without a bias");
                let mut want = c0.clone();
                let c = MatMut::row_major(&mut want, m, n);
                sgemm_bias(0.5, a, b, &bias, 2.0, c, &opts).unwrap();
                let mut got = c0.clone();
                let c = MatMut::row_major(&mut got, m, n);
                sgemm_prepacked(0.5, a, &packed, Some(&bias), 2.0, c, &opts).unwrap();
                assert!(got == want, "{what}: with a bias");
            }
        }
    }
}

#[test]
fn a_column_major_c_and_a_strided_a_give_the_product() {
    let (m, k, n) = (33, 70, 45);
    let a_data = random(m * k, 1);
    let b_data = random(k * n, 2);
    let a = MatRef::row_major(&a_data, k, m).t();
    let b = MatRef::row_major(&b_data, k, n);
    let mut want = vec![0.0; m * n];
    sgemm_reference(1.0, a, b, 0.0, MatMut::row_major(&mut want, m, n));
    for opts in all_options() {
        let packed = PackedB::new(b, &opts).unwrap();
        let mut got = vec![f32::NAN; m * n];
        let c = MatMut::row_major(&mut got, n, m).t();
        sgemm_prepacked(1.0, a, &packed, None, 0.0, c, &opts).unwrap();
        for i in 0..m {
            for j in 0..n {
                let (g, w) = (got[j * m + i], want[i * n + j]);
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{opts:?} ({i}, {j})"
                );
            }
        }
    }
}

#[test]
fn shapes_kernels_and_short_slices_are_checked() {
    let opts = CpuOptions::default();
    let b_data = random(12, 1);
    let packed = PackedB::new(MatRef::row_major(&b_data, 3, 4), &opts).unwrap();
    let a_data = random(10, 2);
    let mut c = vec![0.0; 8];
    const OP: &str = "sgemm_prepacked";
    // A 2 x k times the packed 3 x 4 B into `c` as a 2 x 4 C.
    let run = |k: usize, bias: Option<&[f32]>, c: &mut [f32], opts: &CpuOptions| {
        let a = MatRef::row_major(&a_data[..2 * k], 2, k);
        sgemm_prepacked(1.0, a, &packed, bias, 0.0, MatMut::row_major(c, 2, 4), opts)
    };
    assert_shape_error(
        run(5, None, &mut c, &opts),
        OP,
        &["A is 2x5", "the packed B 3x4"],
    );
    let err = run(3, Some(&[1.0; 3]), &mut c, &opts);
    assert_shape_error(err, OP, &["a bias of 3 values"]);
    let err = run(3, None, &mut c[..7], &opts);
    assert!(
        matches!(err, Err(Error::OutOfBounds { operand: "C", .. })),
        "{err:?}"
    );
    let short = MatRef::row_major(&b_data[..11], 3, 4);
    let err = PackedB::new(short, &opts).err().unwrap();
    assert!(
        matches!(err, Error::OutOfBounds { operand: "B", .. }),
        "{err:?}"
    );
    // Panels packed for one kernel are refused by another.
    if let Some(isa) = Isa::supported().find(|&isa| isa != opts.isa) {
        let err = run(3, None, &mut c, &opts.isa(isa)).unwrap_err();
        assert!(matches!(err, Error::Value { .. }), "{err:?}");
        assert!(err.to_string().contains("packed for the"), "{err}");
    }
    run(3, None, &mut c, &opts).unwrap();
}

//! SGEMM with B packed beforehand ([`PackedB`]): bit for bit the result of `sgemm` on the
//! unpacked B, on odd sizes, several KC and NC blocks, both B layouts, alpha/beta, 1 and 2
//! threads and every kernel this CPU supports; and the errors of its checked API.

use smelt_kernels::cpu::gemm::{sgemm, sgemm_prepacked, MatMut, MatRef, PackedB};
use smelt_kernels::cpu::{CpuOptions, Isa};
use smelt_kernels::Error;

mod common;
use common::{all_options, random};

/// `(m, k, n)`: odd sizes, K over several KC blocks (KC <= 768 on every kernel), and N over
/// several NC blocks of the portable kernel (NC = 2728 with default caches).
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (7, 17, 33),
    (33, 7, 17),
    (129, 65, 31),
    (128, 384, 384),
    (130, 400, 97),
    (5, 1700, 40),
    (3, 20, 3000),
    (200, 33, 129),
];

#[test]
fn prepacked_b_gives_the_same_bits_as_sgemm() {
    for (m, k, n) in SHAPES {
        let a_data = random(m * k, (m * 31 + k) as u64);
        let b_data = random(k * n, (k * 17 + n) as u64);
        let c0 = random(m * n, (m + n) as u64);
        // B as stored by nn.Linear (`[n, k]`, read transposed) and row-major.
        let layouts = [
            MatRef::row_major(&b_data, n, k).t(),
            MatRef::row_major(&b_data, k, n),
        ];
        for b in layouts {
            for o in all_options() {
                let packed = PackedB::new(b, &o).unwrap();
                assert_eq!((packed.rows(), packed.cols(), packed.isa()), (k, n, o.isa));
                for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)] {
                    let a = MatRef::row_major(&a_data, m, k);
                    let (mut want, mut got) = (c0.clone(), c0.clone());
                    sgemm(alpha, a, b, beta, MatMut::row_major(&mut want, m, n), &o).unwrap();
                    let c = MatMut::row_major(&mut got, m, n);
                    sgemm_prepacked(alpha, a, &packed, beta, c, &o).unwrap();
                    let what = format!("{m}x{k}x{n} b strides {:?} {o:?}", b.row_stride);
                    assert_eq!(bits(&got), bits(&want), "{what} alpha {alpha} beta {beta}");
                }
            }
        }
    }
}

#[test]
fn prepacked_b_takes_a_transposed_a_and_a_strided_c() {
    let (m, k, n) = (37, 70, 45);
    let a_data = random(m * k, 1);
    let b_data = random(k * n, 2);
    let a = MatRef::row_major(&a_data, k, m).t();
    let b = MatRef::row_major(&b_data, k, n);
    for o in all_options() {
        let packed = PackedB::new(b, &o).unwrap();
        let mut want = vec![0.0; m * n];
        sgemm(1.0, a, b, 0.0, MatMut::row_major(&mut want, m, n), &o).unwrap();
        // C rows 3 apart within a larger buffer, beta 0 overwriting NaN.
        let row = n + 3;
        let mut got = vec![f32::NAN; m * row];
        let c = MatMut::strided(&mut got, m, n, row, 1);
        sgemm_prepacked(1.0, a, &packed, 0.0, c, &o).unwrap();
        for i in 0..m {
            assert_eq!(
                bits(&got[i * row..i * row + n]),
                bits(&want[i * n..(i + 1) * n]),
                "row {i} {o:?}"
            );
        }
    }
}

#[test]
fn bad_prepacked_calls_are_errors_naming_the_problem() {
    let opts = CpuOptions::default();
    let b_data = random(6 * 4, 3);
    let packed = PackedB::new(MatRef::row_major(&b_data, 6, 4), &opts).unwrap();
    let a_data = random(5 * 6, 4);
    let a = MatRef::row_major(&a_data, 5, 6);
    let mut c = vec![0.0; 5 * 4];

    let wrong_k = MatRef::row_major(&a_data, 6, 5);
    let err = sgemm_prepacked(
        1.0,
        wrong_k,
        &packed,
        0.0,
        MatMut::row_major(&mut c, 5, 4),
        &opts,
    );
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("A is 6x5, packed B is 6x4, C is 5x4"),
        "{message}"
    );

    let column_major = MatMut::strided(&mut c, 5, 4, 1, 5);
    let err = sgemm_prepacked(1.0, a, &packed, 0.0, column_major, &opts).unwrap_err();
    assert!(
        err.to_string().contains("must have contiguous columns"),
        "{err}"
    );

    let mut short = vec![0.0; 19];
    let err = sgemm_prepacked(
        1.0,
        a,
        &packed,
        0.0,
        MatMut::row_major(&mut short, 5, 4),
        &opts,
    );
    assert!(matches!(
        err,
        Err(Error::OutOfBounds {
            operand: "C",
            needed: 20,
            len: 19,
            ..
        })
    ));

    let short_b = MatRef::row_major(&b_data[..23], 6, 4);
    assert!(matches!(
        PackedB::new(short_b, &opts),
        Err(Error::OutOfBounds { operand: "B", .. })
    ));

    let aliasing = MatMut::strided(&mut c, 5, 4, 1, 1);
    assert!(matches!(
        sgemm_prepacked(1.0, a, &packed, 0.0, aliasing, &opts),
        Err(Error::Overlap { .. })
    ));

    // A B packed for one kernel is refused by another (their panel widths differ).
    if let Some(other) = Isa::supported().find(|&isa| isa != opts.isa) {
        let o = opts.isa(other);
        let err = sgemm_prepacked(1.0, a, &packed, 0.0, MatMut::row_major(&mut c, 5, 4), &o);
        let message = err.unwrap_err().to_string();
        assert!(message.contains("B was packed for the"), "{message}");
    }
    assert!(PackedB::new(MatRef::row_major(&b_data, 6, 4), &CpuOptions::threads(0)).is_err());
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

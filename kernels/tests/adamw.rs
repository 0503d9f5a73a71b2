//! AdamW steps against the f64 textbook reference, against PyTorch's order of f32 operations
//! (bit for bit where the ISA has FMA), against values printed by PyTorch itself, on every ISA
//! this CPU supports, 1 and 2 threads, odd lengths, and the errors of the checked API.

use smelt_kernels::cpu::adamw::{adamw_step, adamw_step_reference, AdamW};
use smelt_kernels::cpu::{CpuOptions, Isa};

mod common;
use common::{all_options, assert_shape_error, assert_unsupported, invalid_options, random};

const LENS: [usize; 9] = [1, 2, 7, 8, 15, 17, 33, 127, 387];

/// Parameters, moments and per-step gradients of `n` elements; gradients span several
/// magnitudes so that `eps` matters for some.
struct Problem {
    params: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    grads: Vec<Vec<f32>>,
}

fn problem(n: usize, steps: usize, seed: u64) -> Problem {
    let scales = random(n, seed + 100);
    Problem {
        params: random(n, seed),
        m: vec![0.0; n],
        v: vec![0.0; n],
        grads: (0..steps)
            .map(|s| {
                random(n, seed + 1 + s as u64)
                    .iter()
                    .zip(&scales)
                    .map(|(g, k)| g * 10f32.powf(4.0 * k - 2.0))
                    .collect()
            })
            .collect(),
    }
}

/// Runs every step of `p` with the kernel, returning (params, m, v).
fn run_fast(p: &Problem, hp: &AdamW, opts: &CpuOptions) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut params, mut m, mut v) = (p.params.clone(), p.m.clone(), p.v.clone());
    for (s, g) in p.grads.iter().enumerate() {
        adamw_step(&mut params, g, &mut m, &mut v, s as u32 + 1, hp, opts).unwrap();
    }
    (params, m, v)
}

const CUSTOM: AdamW = AdamW {
    lr: 0.1,
    beta1: 0.3,
    beta2: 0.9,
    eps: 1e-6,
    weight_decay: 0.1,
};

#[test]
fn default_is_torch_default() {
    let hp = AdamW::default();
    assert_eq!(
        (hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay),
        (1e-3, 0.9, 0.999, 1e-8, 0.01)
    );
}

#[test]
fn every_length_matches_the_f64_reference_over_three_steps() {
    for hp in [AdamW::default(), CUSTOM] {
        for opts in all_options() {
            for n in LENS {
                let p = problem(n, 3, n as u64);
                let (params, m, v) = run_fast(&p, &hp, &opts);
                let (mut rp, mut rm, mut rv) = (p.params.clone(), p.m.clone(), p.v.clone());
                for (s, g) in p.grads.iter().enumerate() {
                    adamw_step_reference(&mut rp, g, &mut rm, &mut rv, s as u32 + 1, &hp).unwrap();
                }
                let what = format!("n = {n} {hp:?} {opts:?}");
                for i in 0..n {
                    // The moments are convex mixes of the gradients (m) and their squares (v),
                    // which set their scale; cancellation in `g - m` makes errors absolute.
                    let g_max = p
                        .grads
                        .iter()
                        .map(|g| g[i].abs() as f64)
                        .fold(0.0, f64::max);
                    let close = |got: f32, want: f32, scale: f64| {
                        (got as f64 - want as f64).abs() <= 1e-6 * (want.abs() as f64 + scale)
                    };
                    assert!(
                        close(m[i], rm[i], g_max),
                        "{what}: m[{i}] {} vs {}",
                        m[i],
                        rm[i]
                    );
                    assert!(
                        close(v[i], rv[i], g_max * g_max),
                        "{what}: v[{i}] {} vs {}",
                        v[i],
                        rv[i]
                    );
                    // Each step moves p by at most about lr / (1 - beta1).
                    let step = 3.0 * hp.lr as f64 / (1.0 - hp.beta1 as f64);
                    assert!(
                        close(params[i], rp[i], step),
                        "{what}: p[{i}] {} vs {}",
                        params[i],
                        rp[i]
                    );
                }
            }
        }
    }
}

/// PyTorch's per-element f32 operations (see the kernel's module doc) in scalar code, with
/// the scalars derived from f64 literals as Python does.
#[allow(clippy::too_many_arguments)]
fn torch_order(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    step: i32,
    [lr, beta1, beta2, eps, wd]: [f64; 5],
) {
    let w = (1.0 - beta1) as f32;
    let bc1 = 1.0 - beta1.powf(step as f64);
    let bc2 = 1.0 - beta2.powf(step as f64);
    let neg_step = (-(lr / bc1)) as f32;
    for i in 0..p.len() {
        let pi = p[i] * (1.0 - lr * wd) as f32;
        m[i] = if w.abs() < 0.5 {
            w.mul_add(g[i] - m[i], m[i])
        } else {
            (w - 1.0).mul_add(g[i] - m[i], g[i])
        };
        v[i] = ((1.0 - beta2) as f32 * g[i]).mul_add(g[i], v[i] * beta2 as f32);
        let denom = v[i].sqrt() / bc2.sqrt() as f32 + eps as f32;
        p[i] = pi + (neg_step * m[i]) / denom;
    }
}

#[test]
fn fma_kernels_follow_torch_order_bit_for_bit() {
    let cases = [
        (AdamW::default(), [1e-3, 0.9, 0.999, 1e-8, 0.01]),
        (CUSTOM, [0.1, 0.3, 0.9, 1e-6, 0.1]),
    ];
    for (hp, literals) in cases {
        for isa in Isa::supported().filter(|&isa| isa != Isa::Portable) {
            for threads in [1, 2] {
                let opts = CpuOptions::threads(threads).isa(isa);
                let p = problem(40_003, 3, 5);
                let (params, m, v) = run_fast(&p, &hp, &opts);
                let (mut tp, mut tm, mut tv) = (p.params.clone(), p.m.clone(), p.v.clone());
                for (s, g) in p.grads.iter().enumerate() {
                    torch_order(&mut tp, g, &mut tm, &mut tv, s as i32 + 1, literals);
                }
                assert_eq!(m, tm, "{hp:?} {opts:?}: m");
                assert_eq!(v, tv, "{hp:?} {opts:?}: v");
                assert_eq!(params, tp, "{hp:?} {opts:?}: params");
            }
        }
    }
}

/// Values printed by PyTorch 2.15 (CPU, AVX2): `p = torch.tensor(P0, requires_grad=True)`,
/// `opt = torch.optim.AdamW([p], foreach=False, **cfg)`, then for each gradient of `GRADS`:
/// `p.grad = torch.tensor(g); opt.step()`, printing `p` and the state's `exp_avg`
/// and `exp_avg_sq` as float32 after each step. `cfg` is `{}` (defaults) for `TORCH_DEFAULT`
/// and `lr=0.1, betas=(0.3, 0.9), eps=1e-6, weight_decay=0.1` for `TORCH_CUSTOM`.
const P0: [f32; 5] = [0.5, -1.25, 3.0, 0.0, -0.001];
const GRADS: [[f32; 5]; 3] = [
    [0.1, -0.2, 0.3, 1.0, -0.5],
    [0.05, 0.4, -0.3, 1e-4, 2.0],
    [-0.7, 0.0, 0.25, -1e-3, 1.5],
];
/// Per step: params, exp_avg, exp_avg_sq.
type Trace = [[[f32; 5]; 3]; 3];
const TORCH_DEFAULT: Trace = [
    [
        [0.498995, -1.2489874, 2.99897, -0.0009999999, 9.895302e-09],
        [0.010000001, -0.020000001, 0.030000001, 0.1, -0.05],
        [1.0000001e-05, 4.0000003e-05, 9.000001e-05, 0.001, 0.00025],
    ],
    [
        [
            0.4980578,
            -1.249341,
            2.9989927,
            -0.0016701226,
            -0.0005594936,
        ],
        [0.014, 0.022000002, -0.0030000007, 0.09001, 0.155],
        [
            1.2490001e-05,
            0.00019996,
            0.00017991001,
            0.000999,
            0.00424975,
        ],
    ],
    [
        [
            0.4985701,
            -1.2496115,
            2.9986732,
            -0.0021874807,
            -0.0012851199,
        ],
        [-0.0574, 0.019800002, 0.0223, 0.080909, 0.2895],
        [
            0.0005024775,
            0.00019976005,
            0.0002422301,
            0.0009980021,
            0.0064955004,
        ],
    ],
];
const TORCH_CUSTOM: Trace = [
    [
        [0.395001, -1.1375004, 2.8700004, -0.099999905, 0.0990098],
        [0.07, -0.14, 0.21000001, 0.7, -0.35],
        [0.001, 0.004, 0.009000001, 0.1, 0.025],
    ],
    [
        [0.31195235, -1.2075552, 2.8951464, -0.13254103, 0.0025882572],
        [0.056, 0.23799999, -0.14700001, 0.21007, 1.295],
        [0.00115, 0.019600002, 0.0171, 0.089999996, 0.4225],
    ],
    [
        [0.42201513, -1.2242416, 2.8185868, -0.14293116, -0.09636444],
        [-0.4732, 0.0714, 0.1309, 0.062321004, 1.4384999],
        [0.050035, 0.017640002, 0.02164, 0.08100009, 0.60525],
    ],
];

#[test]
fn matches_values_printed_by_pytorch() {
    for (hp, trace) in [(AdamW::default(), TORCH_DEFAULT), (CUSTOM, TORCH_CUSTOM)] {
        for opts in all_options() {
            let (mut p, mut m, mut v) = (P0, [0.0f32; 5], [0.0f32; 5]);
            for (s, (g, [want_p, want_m, want_v])) in GRADS.iter().zip(trace).enumerate() {
                adamw_step(&mut p, g, &mut m, &mut v, s as u32 + 1, &hp, &opts).unwrap();
                let what = format!("{hp:?} {opts:?} step {}", s + 1);
                // With FMA the moments match bit for bit, and the parameters to the ulp or two
                // that PyTorch's square root (not always correctly rounded, see the kernel's
                // doc) leaves. The portable kernel rounds `lerp` and `addcmul` twice, and `g - m`
                // cancels: its errors are relative to the moments' scale.
                let g_max = GRADS[..=s]
                    .iter()
                    .flatten()
                    .fold(0.0f32, |a, g| a.max(g.abs()));
                if opts.isa != Isa::Portable {
                    assert_eq!((m, v), (want_m, want_v), "{what}");
                }
                for i in 0..5 {
                    if opts.isa == Isa::Portable {
                        let near = |got: f32, want: f32, scale: f32| {
                            (got - want).abs() <= 4.0 * f32::EPSILON * (want.abs() + scale)
                        };
                        assert!(near(m[i], want_m[i], g_max), "{what}: m {m:?} {want_m:?}");
                        assert!(near(v[i], want_v[i], g_max * g_max), "{what}: v {v:?}");
                        assert!(near(p[i], want_p[i], hp.lr), "{what}: p {p:?} {want_p:?}");
                    } else {
                        let ulps = (p[i].to_bits() as i64 - want_p[i].to_bits() as i64).abs();
                        assert!(ulps <= 2, "{what}: p {p:?} {want_p:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn two_threads_agree_with_one() {
    let p = problem(100_003, 2, 9);
    for isa in Isa::supported() {
        let one = run_fast(&p, &AdamW::default(), &CpuOptions::threads(1).isa(isa));
        let two = run_fast(&p, &AdamW::default(), &CpuOptions::threads(2).isa(isa));
        assert!(one == two, "{isa}: 1 and 2 threads differ");
    }
}

#[test]
fn empty_slices_are_fine() {
    adamw_step(
        &mut [],
        &[],
        &mut [],
        &mut [],
        1,
        &AdamW::default(),
        &CpuOptions::threads(2),
    )
    .unwrap();
}

#[test]
fn bad_lengths_and_step_zero_are_errors_and_write_nothing() {
    let opts = CpuOptions::default();
    let hp = AdamW::default();
    let (mut p, g, mut m, mut v) = (vec![1.0f32; 4], vec![1.0f32; 4], vec![0.0; 4], vec![0.0; 4]);
    assert_shape_error(
        adamw_step(&mut p, &g[..3], &mut m, &mut v, 1, &hp, &opts),
        "adamw_step",
        &["grads has 3", "params has 4"],
    );
    assert_shape_error(
        adamw_step(&mut p, &g, &mut m[..2], &mut v, 1, &hp, &opts),
        "adamw_step",
        &["m has 2"],
    );
    assert_shape_error(
        adamw_step(&mut p, &g, &mut m, &mut v[..1], 1, &hp, &opts),
        "adamw_step",
        &["v has 1"],
    );
    assert_shape_error(
        adamw_step(&mut p, &g, &mut m, &mut v, 0, &hp, &opts),
        "adamw_step",
        &["step is 0"],
    );
    assert_shape_error(
        adamw_step_reference(&mut p, &g, &mut m, &mut v, 0, &hp),
        "adamw_step_reference",
        &["step is 0"],
    );
    assert_eq!((p, m, v), (vec![1.0; 4], vec![0.0; 4], vec![0.0; 4]));
}

/// PyTorch's AdamW refuses these values; unchecked, a beta of 1 made every parameter NaN.
#[test]
fn hyperparameters_out_of_range_are_errors_and_write_nothing() {
    let opts = CpuOptions::default();
    let base = AdamW::default();
    let bad = [
        (
            AdamW { beta1: 1.0, ..base },
            "beta1 is 1; it must be in [0, 1)",
        ),
        (AdamW { beta2: 1.0, ..base }, "beta2 is 1"),
        (
            AdamW {
                beta1: -0.1,
                ..base
            },
            "beta1 is -0.1",
        ),
        (
            AdamW { lr: -1e-3, ..base },
            "lr is -0.001; it must be finite and at least 0",
        ),
        (
            AdamW {
                lr: f32::NAN,
                ..base
            },
            "lr is NaN",
        ),
        (
            AdamW {
                eps: f32::INFINITY,
                ..base
            },
            "eps is inf",
        ),
        (
            AdamW {
                weight_decay: -0.5,
                ..base
            },
            "weight_decay is -0.5",
        ),
    ];
    for (hp, message) in bad {
        let (mut p, g, mut m, mut v) =
            (vec![1.0f32; 4], vec![0.5f32; 4], vec![0.0; 4], vec![0.0; 4]);
        for err in [
            adamw_step(&mut p, &g, &mut m, &mut v, 1, &hp, &opts).unwrap_err(),
            adamw_step_reference(&mut p, &g, &mut m, &mut v, 1, &hp).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                text.contains("invalid argument") && text.contains(message),
                "{text}"
            );
        }
        assert_eq!((p, m, v), (vec![1.0; 4], vec![0.0; 4], vec![0.0; 4]));
    }
    let zero = AdamW {
        lr: 0.0,
        beta1: 0.0,
        beta2: 0.0,
        eps: 0.0,
        weight_decay: 0.0,
    };
    assert!(zero.validate("adamw_step").is_ok());
}

#[test]
fn unsupported_isa_and_zero_threads_are_errors() {
    for opts in invalid_options() {
        let (mut p, mut m, mut v) = ([0.0f32; 3], [0.0f32; 3], [0.0f32; 3]);
        let hp = AdamW::default();
        assert_unsupported(adamw_step(&mut p, &[1.0; 3], &mut m, &mut v, 1, &hp, &opts));
    }
}

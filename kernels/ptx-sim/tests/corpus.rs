//! The kernel corpus: small CUDA C kernels in `tests/kernels/*.cu`, compiled to PTX by NVRTC
//! 12.9 (`python3 kernels/nvrtc.py kernels/ptx-sim/tests/kernels/*.cu`), run on the simulator
//! and checked against plain Rust. Correct kernels must give the right answer on odd sizes;
//! the planted-bug kernels must fail with the matching error kind, naming the kernel.

mod common;

use common::*;
use smelt_ptx_sim::{Arg, Dim3, ErrorKind, Launch, Module, Sim};

// ---------------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------------

macro_rules! corpus_file {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("kernels/", $name, ".cu")),
            include_str!(concat!("kernels/", $name, ".ptx")),
        )
    };
}

/// (name, CUDA source, PTX) of every kernel file.
const CORPUS: &[(&str, &str, &str)] = &[
    corpus_file!("warp_reduce"),
    corpus_file!("transpose"),
    corpus_file!("sgemm_tiled"),
    corpus_file!("histogram"),
    corpus_file!("softmax"),
    corpus_file!("planted_race"),
    corpus_file!("out_of_bounds"),
    corpus_file!("divergent_barrier"),
    corpus_file!("misaligned"),
    corpus_file!("semantics"),
];

fn ptx(name: &str) -> &'static str {
    CORPUS
        .iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("no corpus file {name}"))
        .2
}

fn module(name: &str) -> Module {
    Module::parse(ptx(name)).unwrap_or_else(|e| panic!("{name}.ptx does not parse: {e}"))
}

#[test]
fn ptx_is_regenerated_from_its_source() {
    for (name, cu, ptx) in CORPUS {
        assert_ptx_is_current(name, cu, ptx);
    }
}

#[test]
fn every_corpus_file_parses_and_every_kernel_decodes() {
    for (name, _, ptx) in CORPUS {
        if let Err(e) = Module::parse(ptx).and_then(|m| m.check()) {
            panic!("{name}.ptx: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Deterministic pseudo-random u64 stream (an LCG; the top bits are used).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let hi = self.0 >> 32;
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (hi << 32) | (self.0 >> 32)
    }
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    /// Uniform in [lo, hi).
    fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    fn vec_f32(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..len).map(|_| self.f32(lo, hi)).collect()
    }
}

fn ceil_div(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

fn run(sim: &mut Sim, m: &Module, kernel: &str, launch: Launch, args: &[Arg]) {
    if let Err(e) = sim.launch(m, kernel, launch, args) {
        panic!("{kernel}: {e}");
    }
}

/// Runs the semantics kernel `kernel(a, b, out, n)` over `n` items of two inputs (little-endian
/// bytes), each item writing `out_per_item` bytes, `block` threads a block; returns `out`.
fn run_binary(
    kernel: &str,
    a: &[u8],
    b: &[u8],
    n: usize,
    out_per_item: usize,
    block: u32,
) -> Vec<u8> {
    let m = module("semantics");
    let mut sim = Sim::new();
    let (ab, bb) = (sim.upload_bytes(a), sim.upload_bytes(b));
    let out = sim.zeros(n * out_per_item);
    let args = [
        Arg::Ptr(ab),
        Arg::Ptr(bb),
        Arg::Ptr(out),
        Arg::I32(n as i32),
    ];
    run(
        &mut sim,
        &m,
        kernel,
        launch1(ceil_div(n, block as usize), block),
        &args,
    );
    sim.read_bytes(out)
}

/// Asserts |got - want| <= abs + rel * |want| elementwise.
#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &[f32], abs: f32, rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = abs + rel * w.abs();
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w} (tol {tol})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// warp_reduce.cu
// ---------------------------------------------------------------------------------------------

#[test]
fn block_sum_with_shfl_down_and_shared_partials() {
    let m = module("warp_reduce");
    for (n, block) in [(1000usize, 256u32), (333, 96), (70, 32), (2049, 1024)] {
        let mut sim = Sim::new();
        let x = Rng::new(n as u64).vec_f32(n, -1.0, 1.0);
        let grid = ceil_div(n, block as usize);
        let xb = sim.upload_f32(&x);
        let out = sim.zeros(grid as usize * 4);
        let report = sim
            .launch(
                &m,
                "block_sum",
                launch1(grid, block),
                &[Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(n as i32)],
            )
            .unwrap_or_else(|e| panic!("block_sum: {e}"));
        assert!(report.instructions > 0, "report counts no instructions");
        let want: Vec<f32> = x
            .chunks(block as usize)
            .map(|c| c.iter().map(|&v| v as f64).sum::<f64>() as f32)
            .collect();
        assert_close(
            &format!("block_sum n={n} block={block}"),
            &sim.read_f32(out),
            &want,
            1e-3,
            1e-5,
        );
    }
}

#[test]
fn warp_allreduce_butterfly() {
    let m = module("warp_reduce");
    let n = 100;
    let mut sim = Sim::new();
    let x = Rng::new(7).vec_f32(n, -1.0, 1.0);
    let xb = sim.upload_f32(&x);
    let out = sim.zeros(n * 4);
    run(
        &mut sim,
        &m,
        "warp_allreduce",
        launch1(2, 64),
        &[Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(n as i32)],
    );
    let want: Vec<f32> = (0..n)
        .map(|i| {
            x[i / 32 * 32..(i / 32 * 32 + 32).min(n)]
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>() as f32
        })
        .collect();
    let got = sim.read_f32(out);
    assert_close("warp_allreduce", &got, &want, 1e-5, 1e-5);
    // A butterfly gives every lane of a warp bitwise the same value.
    for w in got.chunks(32) {
        assert!(
            w.iter().all(|v| v.to_bits() == w[0].to_bits()),
            "lanes disagree: {w:?}"
        );
    }
}

#[test]
fn warp_inclusive_scan_shfl_up() {
    let m = module("warp_reduce");
    let n = 77;
    let mut sim = Sim::new();
    let mut rng = Rng::new(3);
    let x: Vec<i32> = (0..n)
        .map(|_| (rng.next_u32() % 201) as i32 - 100)
        .collect();
    let xb = upload::<i32>(&mut sim, &x);
    let out = sim.zeros(n * 4);
    run(
        &mut sim,
        &m,
        "warp_scan",
        launch1(2, 64),
        &[Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(n as i32)],
    );
    let mut want = vec![0i32; n];
    for i in 0..n {
        want[i] = if i % 32 == 0 {
            x[i]
        } else {
            want[i - 1] + x[i]
        };
    }
    assert_eq!(sim.read_i32(out), want);
}

#[test]
fn warp_broadcast_shfl_idx() {
    let m = module("warp_reduce");
    let n = 70;
    // Lane 37 wraps to lane 5 (the index is taken mod the warp width).
    for src in [0i32, 5, 31, 37] {
        let mut sim = Sim::new();
        let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 + 1.0).collect();
        let xb = sim.upload_f32(&x);
        let out = sim.zeros(n * 4);
        run(
            &mut sim,
            &m,
            "warp_broadcast",
            launch1(2, 64),
            &[
                Arg::Ptr(xb),
                Arg::Ptr(out),
                Arg::I32(n as i32),
                Arg::I32(src),
            ],
        );
        let want: Vec<f32> = (0..n)
            .map(|i| {
                let j = i / 32 * 32 + (src as usize & 31);
                if j < n {
                    x[j]
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(sim.read_f32(out), want, "src lane {src}");
    }
}

#[test]
fn warp_vote_ballot_all_any() {
    let m = module("warp_reduce");
    let n = 112usize; // 4 warps; the last has 16 live lanes
    let x: Vec<i32> = (0..n)
        .map(|i| match i / 32 {
            0 => 1 + i as i32,
            1 => {
                if i % 3 == 0 {
                    5
                } else {
                    -5
                }
            }
            2 => -1,
            _ => 2,
        })
        .collect();
    let mut sim = Sim::new();
    let xb = upload::<i32>(&mut sim, &x);
    let out = sim.upload_u32(&[0xaaaa_aaaa; 12]);
    run(
        &mut sim,
        &m,
        "warp_vote",
        launch1(4, 32),
        &[Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(n as i32)],
    );
    let mixed: u32 = (0..32)
        .filter(|l| (32 + l) % 3 == 0)
        .map(|l| 1u32 << l)
        .sum();
    let want = [0xffff_ffff, 1, 1, mixed, 0, 1, 0, 0, 0, 0x0000_ffff, 1, 1];
    assert_eq!(sim.read_u32(out), want);
}

// ---------------------------------------------------------------------------------------------
// transpose.cu
// ---------------------------------------------------------------------------------------------

#[test]
fn tiled_transpose_odd_shapes() {
    let m = module("transpose");
    for (rows, cols) in [(37usize, 45usize), (1, 100), (64, 32), (33, 1)] {
        let mut sim = Sim::new();
        let x: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let xb = sim.upload_f32(&x);
        let out = sim.upload_f32(&vec![-1.0; rows * cols]);
        let launch = Launch {
            grid: Dim3::xy(ceil_div(cols, 32), ceil_div(rows, 32)),
            block: Dim3::xy(32, 8),
            shared_bytes: 0,
        };
        run(
            &mut sim,
            &m,
            "transpose",
            launch,
            &[
                Arg::Ptr(xb),
                Arg::Ptr(out),
                Arg::I32(rows as i32),
                Arg::I32(cols as i32),
            ],
        );
        let mut want = vec![0.0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                want[c * rows + r] = x[r * cols + c];
            }
        }
        assert_eq!(sim.read_f32(out), want, "transpose {rows}x{cols}");
    }
}

// ---------------------------------------------------------------------------------------------
// sgemm_tiled.cu
// ---------------------------------------------------------------------------------------------

/// C = A * B with one fused multiply-add per k in increasing k, as both kernels do (the PTX
/// uses fma.rn.f32 for the accumulation), so the result must match bit for bit.
fn sgemm_fma_reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc = a[i * k + p].mul_add(b[p * n + j], acc);
            }
            c[i * n + j] = acc;
        }
    }
    c
}

fn sgemm_case(kernel: &str, m_: usize, n_: usize, k_: usize) {
    let module = module("sgemm_tiled");
    let mut rng = Rng::new((m_ * 1_000_000 + n_ * 1000 + k_) as u64);
    let a = rng.vec_f32(m_ * k_, -1.0, 1.0);
    let b = rng.vec_f32(k_ * n_, -1.0, 1.0);
    let mut sim = Sim::new();
    let ab = sim.upload_f32(&a);
    let bb = sim.upload_f32(&b);
    let cb = sim.upload_f32(&vec![f32::NAN; m_ * n_]);
    let launch = if kernel == "sgemm_tiled" {
        Launch {
            grid: Dim3::xy(ceil_div(n_, 64), ceil_div(m_, 64)),
            block: Dim3::x(256),
            shared_bytes: 0,
        }
    } else {
        Launch {
            grid: Dim3::xy(ceil_div(n_, 16), ceil_div(m_, 16)),
            block: Dim3::xy(16, 16),
            shared_bytes: 0,
        }
    };
    let args = [
        Arg::Ptr(ab),
        Arg::Ptr(bb),
        Arg::Ptr(cb),
        Arg::I32(m_ as i32),
        Arg::I32(n_ as i32),
        Arg::I32(k_ as i32),
    ];
    run(&mut sim, &module, kernel, launch, &args);
    let got = sim.read_f32(cb);
    let want = sgemm_fma_reference(&a, &b, m_, n_, k_);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{kernel} {m_}x{n_}x{k_}: C[{}][{}] = {g}, want {w}",
            i / n_,
            i % n_
        );
    }
}

#[test]
fn sgemm_tiled_odd_sizes() {
    sgemm_case("sgemm_tiled", 70, 33, 65);
    sgemm_case("sgemm_tiled", 1, 1, 1);
    sgemm_case("sgemm_tiled", 64, 64, 8);
}

#[test]
fn sgemm_tiled_256() {
    sgemm_case("sgemm_tiled", 256, 256, 256);
}

#[test]
fn sgemm_naive16_odd_sizes() {
    sgemm_case("sgemm_naive16", 70, 33, 65);
    sgemm_case("sgemm_naive16", 17, 16, 15);
}

// ---------------------------------------------------------------------------------------------
// histogram.cu
// ---------------------------------------------------------------------------------------------

#[test]
fn shared_memory_histogram() {
    let m = module("histogram");
    for (n, nbins, grid, block) in [
        (10_000usize, 100usize, 8u32, 128u32),
        (10_000, 256, 3, 256),
        (999, 7, 5, 64),
    ] {
        let mut rng = Rng::new(n as u64 + nbins as u64);
        let vals: Vec<u32> = (0..n).map(|_| rng.next_u32()).collect();
        let mut sim = Sim::new();
        let vb = sim.upload_u32(&vals);
        let bins = sim.zeros(nbins * 4);
        run(
            &mut sim,
            &m,
            "histogram",
            launch1(grid, block),
            &[
                Arg::Ptr(vb),
                Arg::I32(n as i32),
                Arg::Ptr(bins),
                Arg::I32(nbins as i32),
            ],
        );
        let mut want = vec![0u32; nbins];
        for v in &vals {
            want[(*v % nbins as u32) as usize] += 1;
        }
        assert_eq!(sim.read_u32(bins), want, "histogram n={n} nbins={nbins}");
    }
}

#[test]
fn global_atomics_min_max_and_or_xor_cas_exch_fadd() {
    let m = module("histogram");
    let n = 300;
    let mut rng = Rng::new(11);
    let vals: Vec<i32> = (0..n)
        .map(|_| (rng.next_u32() % 2001) as i32 - 1000)
        .collect();
    let mut sim = Sim::new();
    let vb = upload::<i32>(&mut sim, &vals);
    let out = upload::<i32>(&mut sim, &[i32::MAX, i32::MIN, -1, 0, 0, 0, 0, 0, -1, 0]);
    let fsum = sim.upload_f32(&[0.0]);
    let old = sim.zeros(n * 4);
    run(
        &mut sim,
        &m,
        "atomics_misc",
        launch1(3, 128),
        &[
            Arg::Ptr(vb),
            Arg::I32(n as i32),
            Arg::Ptr(out),
            Arg::Ptr(fsum),
            Arg::Ptr(old),
        ],
    );
    let got = sim.read_i32(out);
    assert_eq!(got[0], *vals.iter().min().unwrap(), "atomicMin");
    assert_eq!(got[1], *vals.iter().max().unwrap(), "atomicMax");
    assert_eq!(got[2], vals.iter().fold(-1, |a, &v| a & v), "atomicAnd");
    assert_eq!(got[3], vals.iter().fold(0, |a, &v| a | v), "atomicOr");
    assert_eq!(got[4], vals.iter().fold(0, |a, &v| a ^ v), "atomicXor");
    assert_eq!(got[5], n as i32, "atomicAdd count");
    assert!(
        (1..=n as i32).contains(&got[6]),
        "atomicCAS winner {}",
        got[6]
    );
    assert!(
        (1..=n as i32).contains(&got[7]),
        "atomicExch last {}",
        got[7]
    );
    assert_eq!(
        got[8] as u32,
        vals.iter().map(|&v| v as u32).min().unwrap(),
        "unsigned atomicMin"
    );
    assert_eq!(
        got[9] as u32,
        vals.iter().map(|&v| v as u32).max().unwrap(),
        "unsigned atomicMax"
    );
    // Small integers: every partial sum is exact in f32, so the order does not matter.
    assert_eq!(
        sim.read_f32(fsum)[0],
        vals.iter().sum::<i32>() as f32,
        "float atomicAdd"
    );
    let mut olds = sim.read_i32(old);
    olds.sort();
    assert_eq!(
        olds,
        (0..n as i32).collect::<Vec<_>>(),
        "atomicAdd old values are a permutation"
    );
}

// ---------------------------------------------------------------------------------------------
// softmax.cu
// ---------------------------------------------------------------------------------------------

#[test]
fn row_softmax_dynamic_shared() {
    let m = module("softmax");
    for (rows, cols, block) in [
        (7usize, 300usize, 128u32),
        (3, 1, 32),
        (2, 1000, 256),
        (5, 33, 64),
    ] {
        let mut rng = Rng::new((rows * cols) as u64);
        let x = rng.vec_f32(rows * cols, -8.0, 8.0);
        let mut sim = Sim::new();
        let xb = sim.upload_f32(&x);
        let yb = sim.zeros(rows * cols * 4);
        let launch = Launch {
            grid: Dim3::x(rows as u32),
            block: Dim3::x(block),
            shared_bytes: block / 32 * 4,
        };
        run(
            &mut sim,
            &m,
            "softmax_rows",
            launch,
            &[Arg::Ptr(xb), Arg::Ptr(yb), Arg::I32(cols as i32)],
        );
        let mut want = Vec::with_capacity(rows * cols);
        for r in x.chunks(cols) {
            let mx = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let s: f64 = r.iter().map(|&v| (v as f64 - mx).exp()).sum();
            want.extend(r.iter().map(|&v| ((v as f64 - mx).exp() / s) as f32));
        }
        let got = sim.read_f32(yb);
        assert_close(
            &format!("softmax {rows}x{cols} block {block}"),
            &got,
            &want,
            1e-7,
            1e-5,
        );
        for (i, row) in got.chunks(cols).enumerate() {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-4, "row {i} sums to {s}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Planted bugs
// ---------------------------------------------------------------------------------------------

#[test]
fn planted_race_is_reported() {
    let m = module("planted_race");
    let n = 64;
    let mut sim = Sim::new();
    let x = sim.upload_f32(&vec![1.0; n]);
    let out = sim.zeros(n * 4);
    let e = expect_error(
        &mut sim,
        &m,
        "planted_race",
        launch1(1, 64),
        &[Arg::Ptr(x), Arg::Ptr(out), Arg::I32(n as i32)],
        ErrorKind::Race,
    );
    assert!(e.location().line.is_some(), "race without a PTX line: {e}");
}

#[test]
fn out_of_bounds_store_is_reported() {
    let m = module("out_of_bounds");
    // 400 bytes (not a multiple of any likely allocation granule) and 256 bytes (exactly one).
    for n in [100usize, 64] {
        let mut sim = Sim::new();
        let x = sim.zeros(n * 4);
        let e = expect_error(
            &mut sim,
            &m,
            "out_of_bounds",
            launch1(ceil_div(n + 1, 64), 64),
            &[Arg::Ptr(x), Arg::I32(n as i32)],
            ErrorKind::OutOfBounds,
        );
        let loc = e.location();
        assert!(
            loc.address.is_some() && loc.line.is_some(),
            "no address or line: {e}"
        );
        // The offending thread is global index n.
        let t = loc.thread.expect("no thread")[0] as usize;
        let b = loc.block.expect("no block")[0] as usize;
        assert_eq!(b * 64 + t, n, "wrong thread blamed: {e}");
    }
}

#[test]
fn divergent_barrier_is_reported() {
    let m = module("divergent_barrier");
    let mut sim = Sim::new();
    let out = sim.zeros(64 * 4);
    expect_error(
        &mut sim,
        &m,
        "divergent_barrier",
        launch1(1, 64),
        &[Arg::Ptr(out)],
        ErrorKind::BarrierDivergence,
    );
}

#[test]
fn misaligned_load_is_reported() {
    let m = module("misaligned");
    let mut sim = Sim::new();
    let p = sim.upload_bytes(&[0u8; 64]);
    let out = sim.zeros(8 * 4);
    let e = expect_error(
        &mut sim,
        &m,
        "misaligned",
        launch1(1, 8),
        &[Arg::Ptr(p), Arg::Ptr(out)],
        ErrorKind::Misaligned,
    );
    assert_eq!(
        e.location().address.map(|a| a % 4),
        Some(2),
        "address is not 2 mod 4: {e}"
    );
}

#[test]
fn clean_kernels_do_not_trip_the_checks_at_the_edge() {
    // The same out_of_bounds kernel is fine when the buffer has n + 1 elements.
    let m = module("out_of_bounds");
    let n = 100;
    let mut sim = Sim::new();
    let x = sim.zeros((n + 1) * 4);
    run(
        &mut sim,
        &m,
        "out_of_bounds",
        launch1(2, 64),
        &[Arg::Ptr(x), Arg::I32(n as i32)],
    );
    assert_eq!(
        sim.read_f32(x),
        (0..=n).map(|i| i as f32).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// semantics.cu: host references of PTX instruction semantics
// ---------------------------------------------------------------------------------------------

/// prmt.b32 default mode: bytes of {b, a} picked by the 4 low nibbles of c; bit 3 of a nibble
/// replicates the sign of the picked byte.
fn prmt(a: u32, b: u32, c: u32) -> u32 {
    let t = ((b as u64) << 32) | a as u64;
    (0..4).fold(0u32, |d, k| {
        let sel = (c >> (4 * k)) & 0xf;
        let byte = (t >> (8 * (sel & 7))) as u8;
        let byte = if sel & 8 != 0 {
            if byte & 0x80 != 0 {
                0xff
            } else {
                0
            }
        } else {
            byte
        };
        d | (byte as u32) << (8 * k)
    })
}

fn bfe(a: u32, pos: u32, len: u32, signed: bool) -> u32 {
    let (pos, len) = (pos & 0xff, len & 0xff);
    let bit = |i: u32| (a >> i) & 1;
    let sbit = if !signed || len == 0 {
        0
    } else {
        bit((pos + len - 1).min(31))
    };
    (0..32).fold(0, |d, i| {
        d | (if i < len && pos + i <= 31 {
            bit(pos + i)
        } else {
            sbit
        }) << i
    })
}

fn bfi(a: u32, b: u32, pos: u32, len: u32) -> u32 {
    let (pos, len) = (pos & 0xff, len & 0xff);
    let mut f = b;
    let mut i = 0;
    while i < len && pos + i <= 31 {
        f = (f & !(1 << (pos + i))) | (((a >> i) & 1) << (pos + i));
        i += 1;
    }
    f
}

fn int_ops_reference(x: u32, y: u32) -> [u32; 32] {
    let (sx, sy) = (x as i32, y as i32);
    let w = x as u64 * y as u64;
    let sw = sx as i64 * sy as i64;
    let sdiv_ok = sy != 0 && !(sx == i32::MIN && sy == -1);
    let bad = 0xdead_beefu32;
    [
        (w >> 32) as u32,
        (sw >> 32) as u32,
        w as u32,
        (w >> 32) as u32,
        (sw >> 32) as u32,
        x.count_ones(),
        x.leading_zeros(),
        x.reverse_bits(),
        prmt(x, y, 0x5140),
        prmt(x, y, y & 0x7777),
        bfe(x, y & 31, (y >> 8) & 31, false),
        bfe(x, y & 31, (y >> 8) & 31, true),
        bfi(y, x, (y >> 16) & 31, (y >> 24) & 31),
        ((((y as u64) << 32 | x as u64) << (y & 31)) >> 32) as u32,
        (((y as u64) << 32 | x as u64) >> y.min(32)) as u32,
        x.checked_div(y).unwrap_or(bad),
        if y != 0 { x % y } else { bad },
        if sdiv_ok { (sx / sy) as u32 } else { bad },
        if sdiv_ok { (sx % sy) as u32 } else { bad },
        x << (y & 31),
        x >> (y & 31),
        (sx >> (y & 31)) as u32,
        x.min(y),
        x.max(y),
        sx.min(sy) as u32,
        sx.max(sy) as u32,
        if x == 0 { 0 } else { x.trailing_zeros() + 1 },
        sx.wrapping_abs() as u32,
        x.abs_diff(y).wrapping_add(7),
        x.swap_bytes(),
        if sx < sy {
            1
        } else if x < y {
            2
        } else {
            3
        },
        ((x & 0xff_ffff).wrapping_mul(y & 0xff_ffff)) ^ ((x as u64 + y as u64) >> 1) as u32,
    ]
}

const INT_OPS_NAMES: [&str; 32] = [
    "umulhi",
    "mulhi",
    "mul.wide.u32 lo",
    "mul.wide.u32 hi",
    "mul.wide.s32 hi",
    "popc",
    "clz",
    "brev",
    "prmt 0x5140",
    "prmt dynamic",
    "bfe.u32",
    "bfe.s32",
    "bfi.b32",
    "shf.l.wrap",
    "shf.r.clamp",
    "div.u32",
    "rem.u32",
    "div.s32",
    "rem.s32",
    "shl",
    "shr.u32",
    "shr.s32",
    "min.u32",
    "max.u32",
    "min.s32",
    "max.s32",
    "ffs (brev+bfind.shiftamt)",
    "abs.s32",
    "sad.u32",
    "byte swap",
    "setp s/u",
    "umul24^uhadd",
];

fn edge_u32() -> Vec<u32> {
    vec![
        0,
        1,
        2,
        3,
        7,
        31,
        32,
        33,
        0xff,
        0x100,
        0x7fff_ffff,
        0x8000_0000,
        0x8000_0001,
        0xffff_ffff,
        0xffff_fffe,
        0x1234_5678,
        0xdead_beef,
        0x0f0f_0f0f,
    ]
}

#[test]
fn integer_ops_match_ptx_semantics() {
    let edges = edge_u32();
    let mut a = Vec::new();
    let mut b = Vec::new();
    for &x in &edges {
        for &y in &edges {
            a.push(x);
            b.push(y);
        }
    }
    let mut rng = Rng::new(99);
    for _ in 0..200 {
        a.push(rng.next_u32());
        b.push(rng.next_u32());
    }
    let n = a.len();
    let got: Vec<u32> = from_le(&run_binary(
        "int_ops",
        &to_le(&a),
        &to_le(&b),
        n,
        32 * 4,
        128,
    ));
    for i in 0..n {
        let want = int_ops_reference(a[i], b[i]);
        for j in 0..32 {
            assert_eq!(
                got[i * 32 + j],
                want[j],
                "{} (a={:#x}, b={:#x}): got {:#x}, want {:#x}",
                INT_OPS_NAMES[j],
                a[i],
                b[i],
                got[i * 32 + j],
                want[j]
            );
        }
    }
}

#[test]
fn int64_ops_match_ptx_semantics() {
    let edges: Vec<u64> = vec![
        0,
        1,
        3,
        63,
        64,
        0xffff_ffff,
        0x1_0000_0000,
        0x7fff_ffff_ffff_ffff,
        0x8000_0000_0000_0000,
        u64::MAX,
        u64::MAX - 1,
        0x0123_4567_89ab_cdef,
    ];
    let mut a = Vec::new();
    let mut b = Vec::new();
    for &x in &edges {
        for &y in &edges {
            a.push(x);
            b.push(y);
        }
    }
    let mut rng = Rng::new(5);
    for k in 0..100 {
        a.push(rng.next_u64());
        // Some divisors that fit in 32 bits, to take the compiler's 32-bit division fast path.
        b.push(if k % 2 == 0 {
            rng.next_u64()
        } else {
            rng.next_u64() >> 40
        });
    }
    let n = a.len();
    let got: Vec<u64> = from_le(&run_binary(
        "int64_ops",
        &to_le(&a),
        &to_le(&b),
        n,
        8 * 8,
        64,
    ));
    let names = [
        "mul.hi.u64",
        "mul.hi.s64",
        "mul.lo.s64",
        "div.u64",
        "rem.s64",
        "shl/shr.s64",
        "popc/clz.b64",
        "brev.b64",
    ];
    for i in 0..n {
        let (x, y) = (a[i], b[i]);
        let (sx, sy) = (x as i64, y as i64);
        let want = [
            ((x as u128 * y as u128) >> 64) as u64,
            ((sx as i128 * sy as i128) >> 64) as u64,
            x.wrapping_mul(y),
            x.checked_div(y).unwrap_or(0xdead_beef),
            if sy != 0 && !(sy == -1 && sx == i64::MIN) {
                (sx % sy) as u64
            } else {
                0xdead_beef
            },
            (x << (y & 63)) ^ (sx >> ((y >> 8) & 63)) as u64,
            x.count_ones() as u64 + ((y.leading_zeros() as u64) << 32),
            x.reverse_bits(),
        ];
        for j in 0..8 {
            assert_eq!(got[i * 8 + j], want[j], "{} (a={x:#x}, b={y:#x})", names[j]);
        }
    }
}

/// f32 -> f16 bits, round to nearest even, with subnormals and overflow to infinity.
fn f32_to_f16_rn(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let round = |v: u32, shift: u32| {
        let kept = v >> shift;
        let rem = v & ((1 << shift) - 1);
        let half = 1 << (shift - 1);
        if rem > half || (rem == half && kept & 1 == 1) {
            kept + 1
        } else {
            kept
        }
    };
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        return sign | round(man | 0x80_0000, (14 - e) as u32) as u16;
    }
    // A carry out of the mantissa bumps the exponent, up to infinity: the encoding does it.
    sign | round(((e as u32) << 23) | man, 13) as u16
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    match exp {
        0 => sign * man as f32 * f32::from_bits(0x3380_0000), // 2^-24
        0x1f => f32::from_bits(((h as u32 & 0x8000) << 16) | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(((h as u32 & 0x8000) << 16) | ((exp + 112) << 23) | (man << 13)),
    }
}

fn f32_to_bf16_rn(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// u32 -> f32 rounding toward zero.
fn u32_to_f32_rz(u: u32) -> f32 {
    let f = u as f32;
    if f as u64 > u as u64 {
        f32::from_bits(f.to_bits() - 1)
    } else {
        f
    }
}

#[test]
fn float_conversions_match_ptx_semantics() {
    let m = module("semantics");
    let mut x: Vec<f32> = vec![
        0.0,
        -0.0,
        0.5,
        1.5,
        2.5,
        -0.5,
        -1.5,
        -2.5,
        0.49999997,
        1e10,
        -1e10,
        3e9,
        5e9,
        2147483648.0,
        -2147483648.0,
        4294967296.0,
        16777217.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-40,
        65504.0,
        65519.99,
        65520.0,
        1e-5,
        6e-8,
        3e-8,
        2.98e-8,
        1e-8,
        0.33333334,
        123.456,
        -7.9,
        1.0009766,
        1.0004883,
        1.0014648,
        0.99999994,
        1.003_906_2,
        1.011_718_8,
        3.0e38,
        -3.4e38,
        9.2e18,
        -9.3e18,
        1e-45,
    ];
    let mut rng = Rng::new(17);
    for k in 0..200 {
        let scale = [1.0f32, 100.0, 1e5, 1e-3][k % 4];
        x.push(rng.f32(-1.0, 1.0) * scale);
    }
    for _ in 0..50 {
        x.push(f32::from_bits(rng.next_u32())); // any bit pattern, NaNs and subnormals included
    }
    let n = x.len();
    let mut sim = Sim::new();
    let xb = sim.upload_f32(&x);
    let out = sim.zeros(n * 14 * 4);
    run(
        &mut sim,
        &m,
        "float_conv",
        launch1(ceil_div(n, 64), 64),
        &[Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(n as i32)],
    );
    let got = sim.read_u32(out);
    for (i, &v) in x.iter().enumerate() {
        let g = &got[i * 14..i * 14 + 14];
        let ctx = format!("x = {v:e} ({:#010x})", v.to_bits());
        assert_eq!(
            g[0] as i32,
            v.round_ties_even() as i32,
            "cvt.rni.s32.f32 {ctx}"
        );
        assert_eq!(g[1] as i32, v as i32, "cvt.rzi.s32.f32 {ctx}");
        assert_eq!(g[2], v.floor() as u32, "cvt.rmi.u32.f32 {ctx}");
        assert_eq!(g[3] as i32, v.ceil() as i32, "cvt.rpi.s32.f32 {ctx}");
        assert_eq!(
            g[4],
            ((v.to_bits() as i32) as f32).to_bits(),
            "cvt.rn.f32.s32 {ctx}"
        );
        assert_eq!(
            g[5],
            u32_to_f32_rz(v.to_bits()).to_bits(),
            "cvt.rz.f32.u32 {ctx}"
        );
        if v.is_nan() {
            assert!(
                g[6] & 0x7c00 == 0x7c00 && g[6] & 0x3ff != 0 && g[6] <= 0xffff,
                "cvt.rn.f16.f32 {ctx}: {:#x}",
                g[6]
            );
            assert!(f32::from_bits(g[7]).is_nan(), "cvt.f32.f16 {ctx}");
            assert!(
                g[8] & 0x7f80 == 0x7f80 && g[8] & 0x7f != 0 && g[8] <= 0xffff,
                "cvt.rn.bf16.f32 {ctx}: {:#x}",
                g[8]
            );
        } else {
            let h = f32_to_f16_rn(v);
            assert_eq!(g[6], h as u32, "cvt.rn.f16.f32 {ctx}");
            assert_eq!(g[7], f16_to_f32(h).to_bits(), "cvt.f32.f16 {ctx}");
            assert_eq!(g[8], f32_to_bf16_rn(v) as u32, "cvt.rn.bf16.f32 {ctx}");
        }
        let sat = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        // Compared as values: whether -0.0 stays -0.0 under .sat is left open; NaN must give 0.
        assert!(
            f32::from_bits(g[9]) == sat,
            "cvt.sat.f32.f32 {ctx}: {}",
            f32::from_bits(g[9])
        );
        assert!(
            same_f32(f32::from_bits(g[10]), ((v as f64) * 0.1) as f32),
            "cvt.f64.f32 / cvt.rn.f32.f64 {ctx}"
        );
        assert_eq!(g[11], ((v as i64) >> 32) as u32, "cvt.rzi.s64.f32 {ctx}");
        assert!(
            same_f32(f32::from_bits(g[12]), v.round_ties_even()),
            "cvt.rni.f32.f32 {ctx}"
        );
        assert!(
            same_f32(f32::from_bits(g[13]), v.trunc() + v.floor() + v.ceil()),
            "cvt.rzi/rmi/rpi.f32.f32 {ctx}"
        );
    }
}

#[test]
fn fast_and_precise_math() {
    let n = 300;
    let mut rng = Rng::new(23);
    let mut x = rng.vec_f32(n, -8.0, 8.0);
    let mut y: Vec<f32> = (0..n)
        .map(|_| rng.f32(0.5, 4.0) * if rng.next_u32() & 1 == 0 { 1.0 } else { -1.0 })
        .collect();
    // A few exact and special points.
    x[..6].copy_from_slice(&[0.0, 1.0, -1.0, 0.5, 7.99, -0.001]);
    y[..6].copy_from_slice(&[1.0, 3.0, -3.0, 0.75, 2.0, 1.5]);
    let got: Vec<f32> = from_le(&run_binary(
        "fast_math",
        &to_le(&x),
        &to_le(&y),
        n,
        16 * 4,
        128,
    ));
    for i in 0..n {
        let (a, b) = (x[i], y[i]);
        let g = &got[i * 16..i * 16 + 16];
        let l = a.abs() + 1e-3;
        let (ad, bd, ld) = (a as f64, b as f64, l as f64);
        // (name, got, want, abs tol, rel tol); tol 0 means bit-exact.
        let checks: [(&str, f32, f64, f64, f64); 16] = [
            ("__expf", g[0], ad.exp(), 0.0, 2e-5),
            ("__logf", g[1], ld.ln(), 2e-6, 1e-5),
            ("__sinf", g[2], ad.sin(), 1e-5, 0.0),
            ("__cosf", g[3], ad.cos(), 1e-5, 0.0),
            ("rsqrtf", g[4], 1.0 / ld.sqrt(), 0.0, 2e-6),
            ("__fdividef", g[5], ad / bd, 0.0, 2e-6),
            ("sqrtf", g[6], a.abs().sqrt() as f64, 0.0, 0.0),
            ("tanhf", g[7], ad.tanh(), 2e-6, 2e-6),
            ("tanh.approx.f32", g[8], ad.tanh(), 1e-3, 0.0),
            ("ex2.approx.f32", g[9], ad.exp2(), 0.0, 2e-6),
            ("fmaf", g[10], a.mul_add(b, 0.25) as f64, 0.0, 0.0),
            ("erff", g[11], erf(ad), 2e-6, 2e-6),
            ("div.rn.f32", g[12], (a / b) as f64, 0.0, 0.0),
            ("expf", g[13], ad.exp(), 0.0, 2e-6),
            ("logf", g[14], ld.ln(), 1e-6, 2e-6),
            (
                "min/max/abs",
                g[15],
                (((a.max(b) - a.min(b)) + b.abs()) - (-a)) as f64,
                0.0,
                0.0,
            ),
        ];
        for (name, got, want, abs, rel) in checks {
            if abs == 0.0 && rel == 0.0 {
                assert_eq!(
                    got.to_bits(),
                    (want as f32).to_bits(),
                    "{name}(a={a}, b={b}): got {got}, want {want}"
                );
            } else {
                let tol = abs + rel * want.abs();
                assert!(
                    (got as f64 - want).abs() <= tol,
                    "{name}(a={a}, b={b}): got {got}, want {want}, tol {tol}"
                );
            }
        }
    }
}

#[test]
fn double_precision_ops_are_exact() {
    let mut a: Vec<f64> = vec![
        1.0,
        -2.5,
        0.1,
        1e300,
        -1e-300,
        f64::INFINITY,
        f64::NAN,
        0.0,
        -0.0,
        3.0,
    ];
    let mut b: Vec<f64> = vec![3.0, 0.2, 0.7, 1e10, 1e300, 2.0, 1.0, -0.0, 5.0, 0.0];
    let mut rng = Rng::new(31);
    for _ in 0..100 {
        a.push(rng.f32(-100.0, 100.0) as f64 * std::f64::consts::E);
        b.push(rng.f32(-3.0, 3.0) as f64 / 7.0 + 1e-9);
    }
    let n = a.len();
    let got: Vec<f64> = from_le(&run_binary(
        "double_ops",
        &to_le(&a),
        &to_le(&b),
        n,
        4 * 8,
        32,
    ));
    for i in 0..n {
        let (x, y) = (a[i], b[i]);
        let want = [x + y, x * y, x / y, x.abs().sqrt()];
        for (j, name) in ["add.f64", "mul.f64", "div.rn.f64", "sqrt.rn.f64"]
            .iter()
            .enumerate()
        {
            assert!(
                same_f64(got[i * 4 + j], want[j]),
                "{name}({x:e}, {y:e}): got {:e}, want {:e}",
                got[i * 4 + j],
                want[j]
            );
        }
    }
}

#[test]
fn noinline_device_function_call() {
    let m = module("semantics");
    let n = 50;
    let x: Vec<f32> = (0..n).map(|i| 0.25 * i as f32 - 3.0).collect();
    let mut sim = Sim::new();
    let xb = sim.upload_f32(&x);
    let out = sim.zeros(2 * n * 4);
    run(
        &mut sim,
        &m,
        "call_func",
        launch1(2, 32),
        &[Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(n as i32)],
    );
    let got = sim.read_f32(out);
    for i in 0..n {
        let k = (i & 7) as i32;
        let want = (0..=k).fold(0.0f32, |r, j| r.mul_add(x[i], (j + 1) as f32));
        assert_eq!(got[i].to_bits(), want.to_bits(), "poly(x[{i}], {k})");
        assert_eq!(
            got[n + i].to_bits(),
            (k * k + 1) as u32,
            "value returned through a local pointer, i={i}"
        );
    }
}

#[test]
fn dynamically_indexed_local_array() {
    let m = module("semantics");
    let n = 45;
    let idx: Vec<i32> = (0..n as i32).map(|i| i * 7 - 20).collect();
    let mut sim = Sim::new();
    let ib = upload::<i32>(&mut sim, &idx);
    let out = sim.zeros(n * 4);
    run(
        &mut sim,
        &m,
        "local_array",
        launch1(2, 32),
        &[Arg::Ptr(ib), Arg::Ptr(out), Arg::I32(n as i32)],
    );
    let want: Vec<i32> = (0..n)
        .map(|i| (idx[i] & 15) * (idx[i] & 15) + i as i32)
        .collect();
    assert_eq!(sim.read_i32(out), want);
}

#[test]
fn constant_and_device_globals_with_initializers() {
    let m = module("semantics");
    let mut sim = Sim::new();
    let out = sim.zeros(13 * 4);
    run(&mut sim, &m, "globals", launch1(1, 32), &[Arg::Ptr(out)]);
    let want = [
        1.5f32, -2.0, 3.25, 0.0, 1e-3, -1e30, 7.0, 0.125, 42.0, 10.0, 20.0, 30.0, 40.0,
    ];
    assert_eq!(sim.read_f32(out), want);
    // A __device__ variable keeps its value across launches of the same module in one Sim.
    run(&mut sim, &m, "globals", launch1(1, 32), &[Arg::Ptr(out)]);
    assert_eq!(
        sim.read_f32(out)[8],
        43.0,
        "g_counter after a second launch"
    );
}

#[test]
fn three_dimensional_grid_and_block() {
    let m = module("semantics");
    let (g, b) = ([2u32, 3, 2], [4u32, 2, 3]);
    let threads = (g.iter().product::<u32>() * b.iter().product::<u32>()) as usize;
    let mut sim = Sim::new();
    let out = sim.upload_u32(&vec![0xffff_ffff; threads * 4]);
    let launch = Launch {
        grid: Dim3::new(g[0], g[1], g[2]),
        block: Dim3::new(b[0], b[1], b[2]),
        shared_bytes: 0,
    };
    run(&mut sim, &m, "index_3d", launch, &[Arg::Ptr(out)]);
    let pack = |v: [u32; 3]| v[0] | v[1] << 8 | v[2] << 16;
    let mut want = vec![0u32; threads * 4];
    for bz in 0..g[2] {
        for by in 0..g[1] {
            for bx in 0..g[0] {
                for tz in 0..b[2] {
                    for ty in 0..b[1] {
                        for tx in 0..b[0] {
                            let block = (bz * g[1] + by) * g[0] + bx;
                            let t = (tz * b[1] + ty) * b[0] + tx;
                            let l = (block * b.iter().product::<u32>() + t) as usize;
                            want[4 * l..4 * l + 4].copy_from_slice(&[
                                pack([tx, ty, tz]),
                                pack([bx, by, bz]),
                                pack(b),
                                pack(g),
                            ]);
                        }
                    }
                }
            }
        }
    }
    assert_eq!(sim.read_u32(out), want);
}

#[test]
fn laneid_warpid_and_clock() {
    let m = module("semantics");
    let threads = 48;
    let mut sim = Sim::new();
    let out = sim.zeros(threads * 4 * 4);
    run(
        &mut sim,
        &m,
        "lane_warp",
        launch1(1, threads as u32),
        &[Arg::Ptr(out)],
    );
    let got = sim.read_u32(out);
    for t in 0..threads {
        assert_eq!(got[4 * t], (t % 32) as u32, "%laneid of thread {t}");
        assert_eq!(got[4 * t + 1], (t / 32) as u32, "%warpid of thread {t}");
        // The clock advances between two reads, and not by much.
        assert!(
            (1..1 << 20).contains(&got[4 * t + 2]),
            "clock64 difference {} of thread {t}",
            got[4 * t + 2]
        );
        assert!(
            (1..1 << 20).contains(&got[4 * t + 3]),
            "%clock difference {} of thread {t}",
            got[4 * t + 3]
        );
    }
}

#[test]
fn float4_and_float2_vector_loads() {
    let m = module("semantics");
    let (n4, n2) = (37usize, 50usize);
    let x: Vec<f32> = (0..4 * n4).map(|i| i as f32 - 10.0).collect();
    let y: Vec<f32> = (0..2 * n2).map(|i| i as f32 * 0.5).collect();
    let s = 1.5f32;
    let mut sim = Sim::new();
    let xb = sim.upload_f32(&x);
    let yb = sim.upload_f32(&y);
    let o4 = sim.zeros(4 * n4 * 4);
    let o2 = sim.zeros(2 * n2 * 4);
    run(
        &mut sim,
        &m,
        "vec_load",
        launch1(2, 32),
        &[
            Arg::Ptr(xb),
            Arg::Ptr(yb),
            Arg::Ptr(o4),
            Arg::Ptr(o2),
            Arg::I32(n4 as i32),
            Arg::I32(n2 as i32),
            Arg::F32(s),
        ],
    );
    assert_eq!(
        sim.read_f32(o4),
        x.iter().map(|v| v * s).collect::<Vec<_>>()
    );
    assert_eq!(
        sim.read_f32(o2),
        y.iter().map(|v| v + s).collect::<Vec<_>>()
    );
}

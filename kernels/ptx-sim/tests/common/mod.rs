//! Helpers shared by the test files: the PTX freshness check, error expectations, a module
//! header and the error of text that must not parse, little-endian buffers, float
//! comparisons and an f64 `erf` reference.
#![allow(dead_code)]

use smelt_ptx_sim::{Arg, Buffer, Dim3, ErrorKind, Launch, Module, Sim, SimError};

/// FNV-1a 64 of `bytes`, as `kernels/nvrtc.py` records it in the PTX's first line.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fails unless `ptx` (of corpus file `name`) starts with the hash of `cu`.
#[track_caller]
pub fn assert_ptx_is_current(name: &str, cu: &str, ptx: &str) {
    let first = ptx.lines().next().unwrap_or("");
    let recorded = first
        .strip_prefix("// source-fnv1a64: ")
        .unwrap_or_else(|| {
            panic!("{name}.ptx: first line is not a source-fnv1a64 header: {first:?}")
        });
    assert_eq!(
        recorded.trim(),
        format!("{:016x}", fnv1a64(cu.as_bytes())),
        "{name}.ptx is stale: regenerate with `python3 kernels/nvrtc.py kernels/ptx-sim/tests/kernels/{name}.cu`"
    );
}

/// A 1-D launch of `grid` blocks of `block` threads, no dynamic shared memory.
pub fn launch1(grid: u32, block: u32) -> Launch {
    Launch {
        grid: Dim3::x(grid),
        block: Dim3::x(block),
        shared_bytes: 0,
    }
}

/// Launches a kernel that must fail with `kind`; the message must name the kernel.
#[track_caller]
pub fn expect_error(
    sim: &mut Sim,
    m: &Module,
    kernel: &str,
    launch: Launch,
    args: &[Arg],
    kind: ErrorKind,
) -> SimError {
    match sim.launch(m, kernel, launch, args) {
        Ok(_) => panic!("{kernel}: launch succeeded, want a {kind:?} error"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "{kernel}: wrong error kind: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains(kernel),
                "{kernel}: message does not name the kernel: {msg}"
            );
            e
        }
    }
}

/// Numbers that convert to and from little-endian bytes.
pub trait LeBytes: Sized {
    /// Little-endian bytes.
    fn le(&self) -> Vec<u8>;
    /// From little-endian bytes of the type's size.
    fn from_le(b: &[u8]) -> Self;
}

macro_rules! le_bytes {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            fn le(&self) -> Vec<u8> {
                self.to_le_bytes().to_vec()
            }
            fn from_le(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("chunk of the type's size"))
            }
        }
    )*};
}
le_bytes!(u16, u32, i32, u64, i64, f32, f64);

/// Little-endian bytes of a slice of numbers.
pub fn to_le<T: LeBytes>(v: &[T]) -> Vec<u8> {
    v.iter().flat_map(|x| x.le()).collect()
}

/// Numbers from little-endian bytes.
pub fn from_le<T: LeBytes>(bytes: &[u8]) -> Vec<T> {
    bytes
        .chunks_exact(std::mem::size_of::<T>())
        .map(T::from_le)
        .collect()
}

/// A new buffer holding `v`.
pub fn upload<T: LeBytes>(sim: &mut Sim, v: &[T]) -> Buffer {
    sim.upload_bytes(&to_le(v))
}

/// A buffer's contents as numbers of type `T`.
pub fn read<T: LeBytes>(sim: &Sim, b: Buffer) -> Vec<T> {
    from_le(&sim.read_bytes(b))
}

/// Float bits equal, or both NaN.
pub fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Float bits equal, or both NaN.
pub fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// erf in f64: the Maclaurin series below 2.5, erfc's continued fraction (Lentz) above.
pub fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        let (mut term, mut sum, x2) = (x, x, x * x);
        for k in 1..80 {
            term *= -x2 / k as f64;
            sum += term / (2 * k + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let z = x.abs();
        let (mut f, mut c, mut d) = (z, z, 0.0);
        for k in 1..200 {
            let a = k as f64 / 2.0;
            d = 1.0 / (z + a * d);
            c = z + a / c;
            f *= c * d;
            if (c * d - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (1.0 - (-z * z).exp() / (f * std::f64::consts::PI.sqrt())).copysign(x)
    }
}

/// The first lines of every test module: PTX ISA 8.8 for sm_80, 64-bit addresses.
pub const HEADER: &str = ".version 8.8\n.target sm_80\n.address_size 64\n";

/// The error of `text`, which must not parse.
#[track_caller]
pub fn parse_err(text: &str) -> SimError {
    match Module::parse(text) {
        Ok(_) => panic!("parsed, want an error:\n{text}"),
        Err(e) => e,
    }
}

//! Elementwise activations and their backwards: exact GELU (SIMD), tanh and ReLU (scalar).
//!
//! All take slices of equal length and split them into contiguous chunks on
//! [`CpuOptions::threads`] threads; every element is computed on its own, so the thread count
//! never changes a result.
//!
//! GELU is the exact one of Hugging Face's `gelu` (`0.5 x (1 + erf(x / sqrt 2))`), computed
//! as `x Phi(x)` with the SIMD normal CDF of [`math`](crate::cpu::math) (one rational
//! function, no exponential). `Phi`'s absolute error (below 1e-7) becomes a relative one in
//! the lower tail, as with PyTorch's own f32 `1 + erf`, so `gelu(x)` for very negative `x` is
//! accurate to about `1e-7 |x|` absolute rather than relative. The backward's Gaussian
//! density uses the SIMD `exp`. [`gelu_reference`] and [`gelu_backward_reference`]
//! are the f64 versions they are tested against.

use crate::cpu::check;
use crate::cpu::elementwise::{zip_map, Lanewise2};
use crate::cpu::math::{exp_nonpositive, normal_cdf, normal_cdf_reference};
use crate::cpu::options::CpuOptions;
use crate::cpu::simd::SimdF32;
use crate::cpu::split::{for_each_range, LINE};
use crate::cpu::threads::Shared;
use crate::Result;

/// `1 / sqrt(2 pi)`, the Gaussian density at 0.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

#[derive(Clone, Copy)]
struct Gelu;

impl Lanewise2 for Gelu {
    #[inline(always)]
    unsafe fn apply<V: SimdF32>(self, x: V, _: V) -> V {
        V::mul(x, normal_cdf(x))
    }
}

#[derive(Clone, Copy)]
struct GeluBackward;

impl Lanewise2 for GeluBackward {
    /// `dy * (Phi(x) + x phi(x))`, with `phi(x) = e^(-x^2 / 2) / sqrt(2 pi)`.
    #[inline(always)]
    unsafe fn apply<V: SimdF32>(self, x: V, dy: V) -> V {
        let minus_half_x2 = V::mul(V::mul(x, x), V::splat(-0.5));
        let pdf = V::mul(exp_nonpositive(minus_half_x2), V::splat(FRAC_1_SQRT_2PI));
        V::mul(dy, V::mul_add(x, pdf, normal_cdf(x)))
    }
}

/// `y = 0.5 x (1 + erf(x / sqrt 2))` (exact GELU) on slices of equal length.
///
/// Errors when the lengths differ or `opts` is invalid (see [`CpuOptions::validate`]).
pub fn gelu(x: &[f32], y: &mut [f32], opts: &CpuOptions) -> Result<()> {
    const OP: &str = "gelu";
    opts.validate(OP)?;
    check::same_len(OP, &[("x", x.len()), ("y", y.len())])?;
    // SAFETY: validated options, equal lengths, `y` borrowed mutably.
    unsafe { zip_map(Gelu, x.as_ptr(), x.as_ptr(), y.as_mut_ptr(), x.len(), opts) };
    Ok(())
}

/// `dx = dy * (0.5 (1 + erf(x / sqrt 2)) + x e^(-x^2 / 2) / sqrt(2 pi))`, the gradient of
/// [`gelu`] w.r.t. its input `x`, on slices of equal length.
///
/// Errors when the lengths differ or `opts` is invalid.
pub fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [f32], opts: &CpuOptions) -> Result<()> {
    const OP: &str = "gelu_backward";
    opts.validate(OP)?;
    check::same_len(OP, &[("x", x.len()), ("dy", dy.len()), ("dx", dx.len())])?;
    // SAFETY: validated options, equal lengths, `dx` borrowed mutably.
    unsafe {
        zip_map(
            GeluBackward,
            x.as_ptr(),
            dy.as_ptr(),
            dx.as_mut_ptr(),
            x.len(),
            opts,
        )
    };
    Ok(())
}

/// [`gelu`] in f64 (with [`normal_cdf_reference`]), rounded once to f32.
///
/// Errors when the lengths differ.
pub fn gelu_reference(x: &[f32], y: &mut [f32]) -> Result<()> {
    check::same_len("gelu_reference", &[("x", x.len()), ("y", y.len())])?;
    for (out, &v) in y.iter_mut().zip(x) {
        let v = v as f64;
        *out = (v * normal_cdf_reference(v)) as f32;
    }
    Ok(())
}

/// [`gelu_backward`] in f64, rounded once to f32.
///
/// Errors when the lengths differ.
pub fn gelu_backward_reference(x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    check::same_len(
        "gelu_backward_reference",
        &[("x", x.len()), ("dy", dy.len()), ("dx", dx.len())],
    )?;
    let frac_1_sqrt_2pi = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
    for ((out, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        let v = v as f64;
        let cdf = normal_cdf_reference(v);
        let pdf = (-0.5 * v * v).exp() * frac_1_sqrt_2pi;
        *out = (g as f64 * (cdf + v * pdf)) as f32;
    }
    Ok(())
}

/// `out[i] = f(a[i], b[i])` in scalar code, in chunks on `opts.threads` threads; the lengths
/// were checked equal.
fn scalar_map(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    opts: &CpuOptions,
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) {
    let n = out.len();
    let ptrs = Shared((a.as_ptr(), b.as_ptr(), out.as_mut_ptr()));
    for_each_range(opts.threads, n, 1, LINE, |range| {
        let (a, b, out) = ptrs.get();
        let len = range.len();
        // SAFETY: all three slices hold `n` values (checked by the caller) and `range` lies in
        // `0..n`; ranges of different tasks are disjoint, and `out` (borrowed mutably by the
        // caller) aliases neither input.
        let (a, b, out) = unsafe {
            (
                std::slice::from_raw_parts(a.add(range.start), len),
                std::slice::from_raw_parts(b.add(range.start), len),
                std::slice::from_raw_parts_mut(out.add(range.start), len),
            )
        };
        for ((o, &u), &v) in out.iter_mut().zip(a).zip(b) {
            *o = f(u, v);
        }
    });
}

/// `y = tanh(x)` on slices of equal length (scalar `f32::tanh`).
///
/// Errors when the lengths differ or `opts` is invalid.
pub fn tanh(x: &[f32], y: &mut [f32], opts: &CpuOptions) -> Result<()> {
    const OP: &str = "tanh";
    opts.validate(OP)?;
    check::same_len(OP, &[("x", x.len()), ("y", y.len())])?;
    scalar_map(x, x, y, opts, |v, _| v.tanh());
    Ok(())
}

/// `dx = dy * (1 - y^2)`, the gradient of [`tanh`] given its output `y`, on slices of equal
/// length.
///
/// Errors when the lengths differ or `opts` is invalid.
pub fn tanh_backward(y: &[f32], dy: &[f32], dx: &mut [f32], opts: &CpuOptions) -> Result<()> {
    const OP: &str = "tanh_backward";
    opts.validate(OP)?;
    check::same_len(OP, &[("y", y.len()), ("dy", dy.len()), ("dx", dx.len())])?;
    scalar_map(y, dy, dx, opts, |y, g| g * (1.0 - y * y));
    Ok(())
}

/// `y = max(x, 0)` on slices of equal length; NaN stays NaN.
///
/// Errors when the lengths differ or `opts` is invalid.
pub fn relu(x: &[f32], y: &mut [f32], opts: &CpuOptions) -> Result<()> {
    const OP: &str = "relu";
    opts.validate(OP)?;
    check::same_len(OP, &[("x", x.len()), ("y", y.len())])?;
    scalar_map(x, x, y, opts, |v, _| if v <= 0.0 { 0.0 } else { v });
    Ok(())
}

/// `dx = 0` where `x <= 0`, else `dy`: the gradient of [`relu`] given its input `x`, on slices
/// of equal length. A NaN `x` passes `dy` through, as PyTorch's `threshold_backward` does.
///
/// Errors when the lengths differ or `opts` is invalid.
pub fn relu_backward(x: &[f32], dy: &[f32], dx: &mut [f32], opts: &CpuOptions) -> Result<()> {
    const OP: &str = "relu_backward";
    opts.validate(OP)?;
    check::same_len(OP, &[("x", x.len()), ("dy", dy.len()), ("dx", dx.len())])?;
    scalar_map(x, dy, dx, opts, |v, g| if v <= 0.0 { 0.0 } else { g });
    Ok(())
}

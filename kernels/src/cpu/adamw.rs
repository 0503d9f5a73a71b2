//! One AdamW step, in PyTorch's order of operations (`torch.optim.AdamW`, single tensor,
//! `foreach=False`, `amsgrad=False`), in place on a parameter slice and its two moments.
//!
//! PyTorch (`_single_tensor_adam` with decoupled weight decay) runs, per tensor:
//!
//! ```text
//! param.mul_(1 - lr * weight_decay)
//! exp_avg.lerp_(grad, 1 - beta1)
//! exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
//! bias_correction1 = 1 - beta1 ** step          (Python floats: f64)
//! bias_correction2 = 1 - beta2 ** step
//! step_size = lr / bias_correction1
//! denom = (exp_avg_sq.sqrt() / bias_correction2 ** 0.5).add_(eps)
//! param.addcdiv_(exp_avg, denom, value=-step_size)
//! ```
//!
//! The scalars are Python floats, computed in f64 and rounded to f32 where they meet a tensor;
//! so are they here. Per element, in f32, as PyTorch's AVX2 CPU kernels compute them (checked
//! bit for bit against torch 2.x, bar its square root, see below):
//! - `p = p * f32(1 - lr wd)`;
//! - `lerp` with weight `w = f32(1 - beta1)`: `m = fma(w, g - m, m)` when `|w| < 0.5`, else
//!   `m = fma(w - 1, g - m, g)`;
//! - `v = fma(f32(1 - beta2) * g, g, v * f32(beta2))` (`addcmul` contracts to one FMA);
//! - `denom = sqrt(v) / f32(sqrt(bias_correction2)) + f32(eps)`;
//! - `p = p + (f32(-step_size) * m) / denom`.
//!
//! The square root is correctly rounded here; PyTorch's CPU `sqrt` (vectorised through MKL's
//! VML) is not always (up to 0.75 ulp), so `denom`, and through it `p`, can differ from
//! PyTorch's by an ulp. Without FMA (the portable kernel on baseline x86_64) the two fused
//! steps round twice.
//!
//! The hyperparameters are f32 here but Python floats there: each is widened to f64 through
//! its shortest decimal form (`0.999f32` becomes `0.999`, not `0.99900001287`), the literal a
//! caller most likely wrote, so that `1 - beta2` and the bias corrections match PyTorch's.
//!
//! Elements are independent and split into contiguous chunks on [`CpuOptions::threads`]
//! threads. [`adamw_step_reference`] is the same update computed in f64 by the textbook
//! formula, for the tests.

use crate::cpu::check;
use crate::cpu::options::CpuOptions;
use crate::cpu::simd::SimdF32;
use crate::cpu::split::{load_n, run_simd, store_n, SimdJob, LINE};
use crate::{Error, Result};
use std::fmt::{self, Write};
use std::ops::Range;

/// AdamW hyperparameters; [`Default`] gives PyTorch's defaults.
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment (running mean of the gradient).
    pub beta1: f32,
    /// Decay of the second moment (running mean of the squared gradient).
    pub beta2: f32,
    /// Added to the bias-corrected root of the second moment.
    pub eps: f32,
    /// Decoupled weight decay: parameters are scaled by `1 - lr * weight_decay` each step.
    pub weight_decay: f32,
}

impl AdamW {
    /// Errors unless every value is one PyTorch's `AdamW` accepts and finite: `lr`, `eps` and
    /// `weight_decay` at least 0, both betas in `[0, 1)` (a beta of 1 divides by a zero bias
    /// correction and turns every parameter into NaN).
    pub fn validate(&self, op: &'static str) -> Result<()> {
        let at_least_zero = [
            ("lr", self.lr),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
        ];
        for (name, value) in at_least_zero {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(
                    op,
                    format!("{name} is {value}; it must be finite and at least 0"),
                ));
            }
        }
        for (name, value) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&value) {
                return Err(invalid(
                    op,
                    format!("{name} is {value}; it must be in [0, 1)"),
                ));
            }
        }
        Ok(())
    }
}

fn invalid(op: &'static str, detail: String) -> Error {
    Error::Value { op, detail }
}

impl Default for AdamW {
    /// `torch.optim.AdamW`'s defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    fn default() -> Self {
        AdamW {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// One AdamW step (PyTorch's, see the module doc) on `params` with gradient `grads`, updating
/// the first and second moments `m` and `v` (zeros before step 1) in place.
///
/// `step` counts from 1 (the step being taken). All four slices have the same length. Errors
/// when the lengths differ, `step` is 0, a hyperparameter is out of range
/// ([`AdamW::validate`]), or `opts` is invalid; nothing is written on error.
pub fn adamw_step(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    step: u32,
    hp: &AdamW,
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "adamw_step";
    opts.validate(OP)?;
    check_args(OP, params.len(), grads.len(), m.len(), v.len(), step)?;
    hp.validate(OP)?;
    let s = Scalars::new(hp, step);
    let lerp_weight = (1.0 - s.beta1) as f32;
    let small = lerp_weight.abs() < 0.5;
    let job = Job {
        p: params.as_mut_ptr(),
        g: grads.as_ptr(),
        m: m.as_mut_ptr(),
        v: v.as_mut_ptr(),
        decay: (1.0 - s.lr * s.weight_decay) as f32,
        lerp_small: small,
        lerp_coeff: if small {
            lerp_weight
        } else {
            lerp_weight - 1.0
        },
        beta2: s.beta2 as f32,
        one_minus_beta2: (1.0 - s.beta2) as f32,
        bias_correction2_sqrt: s.bias_correction2.sqrt() as f32,
        eps: s.eps as f32,
        neg_step_size: (-(s.lr / s.bias_correction1)) as f32,
    };
    // SAFETY: validated options, four slices of the same length (the three outputs borrowed
    // mutably); each task reads and writes its own elements only.
    unsafe { run_simd(&job, opts, params.len(), 1, LINE) };
    Ok(())
}

/// [`adamw_step`] by the textbook formula in f64 (`m = beta1 m + (1 - beta1) g`, `v = beta2 v
/// + (1 - beta2) g^2`, `p = p (1 - lr wd) - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)`),
/// storing `p`, `m` and `v` rounded to f32. The same arguments and errors, without options.
pub fn adamw_step_reference(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    step: u32,
    hp: &AdamW,
) -> Result<()> {
    const OP: &str = "adamw_step_reference";
    check_args(OP, params.len(), grads.len(), m.len(), v.len(), step)?;
    hp.validate(OP)?;
    let s = Scalars::new(hp, step);
    for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
        let g = g as f64;
        let mi = s.beta1 * *m as f64 + (1.0 - s.beta1) * g;
        let vi = s.beta2 * *v as f64 + (1.0 - s.beta2) * g * g;
        let denom = vi.sqrt() / s.bias_correction2.sqrt() + s.eps;
        let pi = *p as f64 * (1.0 - s.lr * s.weight_decay) - s.lr / s.bias_correction1 * mi / denom;
        (*p, *m, *v) = (pi as f32, mi as f32, vi as f32);
    }
    Ok(())
}

/// The hyperparameters as PyTorch's Python floats, and the bias corrections of one step.
struct Scalars {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// `1 - beta1^step`.
    bias_correction1: f64,
    /// `1 - beta2^step`.
    bias_correction2: f64,
}

impl Scalars {
    fn new(hp: &AdamW, step: u32) -> Scalars {
        let (beta1, beta2) = (decimal(hp.beta1), decimal(hp.beta2));
        // Python's `beta ** step` with a float step is C's `pow`.
        let t = f64::from(step);
        Scalars {
            lr: decimal(hp.lr),
            beta1,
            beta2,
            eps: decimal(hp.eps),
            weight_decay: decimal(hp.weight_decay),
            bias_correction1: 1.0 - beta1.powf(t),
            bias_correction2: 1.0 - beta2.powf(t),
        }
    }
}

/// `x` widened to the f64 nearest its shortest decimal form (the digits Rust prints for it),
/// e.g. `0.999f32` to `0.999`; formatted on the stack, without allocating.
fn decimal(x: f32) -> f64 {
    /// A fixed buffer that `write!` can fill.
    struct Digits {
        bytes: [u8; 48],
        len: usize,
    }

    impl Write for Digits {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            let dst = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
            dst.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    let mut digits = Digits {
        bytes: [0; 48],
        len: 0,
    };
    if write!(digits, "{x:e}").is_err() {
        return f64::from(x);
    }
    std::str::from_utf8(&digits.bytes[..digits.len])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::from(x))
}

/// Equal lengths and a 1-based step.
fn check_args(
    op: &'static str,
    params: usize,
    grads: usize,
    m: usize,
    v: usize,
    step: u32,
) -> Result<()> {
    check::same_len(
        op,
        &[("params", params), ("grads", grads), ("m", m), ("v", v)],
    )?;
    if step == 0 {
        return Err(Error::Shape {
            op,
            detail: format!("step is 0 for {params} parameters: steps count from 1"),
        });
    }
    Ok(())
}

/// One step over all elements; tasks own ranges of elements. The scalars are PyTorch's,
/// rounded to f32 where they meet a tensor.
struct Job {
    p: *mut f32,
    g: *const f32,
    m: *mut f32,
    v: *mut f32,
    /// `1 - lr * weight_decay`.
    decay: f32,
    /// Whether the lerp weight `w = 1 - beta1` is below 0.5 in magnitude.
    lerp_small: bool,
    /// `w` when small, else `w - 1`.
    lerp_coeff: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias_correction2_sqrt: f32,
    eps: f32,
    neg_step_size: f32,
}

impl SimdJob for Job {
    #[inline(always)]
    unsafe fn run<V: SimdF32>(&self, range: Range<usize>) {
        let decay = V::splat(self.decay);
        let coeff = V::splat(self.lerp_coeff);
        let (beta2, one_minus_beta2) = (V::splat(self.beta2), V::splat(self.one_minus_beta2));
        let bc2_sqrt = V::splat(self.bias_correction2_sqrt);
        let (eps, neg_step) = (V::splat(self.eps), V::splat(self.neg_step_size));
        let mut i = range.start;
        while i < range.end {
            let n = V::LANES.min(range.end - i);
            let (p, g, m, v) = (self.p.add(i), self.g.add(i), self.m.add(i), self.v.add(i));
            let gi = load_n::<V>(g, n);
            let (mi, vi) = (load_n::<V>(m, n), load_n::<V>(v, n));
            let base = if self.lerp_small { mi } else { gi };
            let mi = V::mul_add(coeff, V::sub(gi, mi), base);
            let vi = V::mul_add(V::mul(one_minus_beta2, gi), gi, V::mul(vi, beta2));
            let denom = V::add(V::div(V::sqrt(vi), bc2_sqrt), eps);
            let pi = V::mul(load_n(p, n), decay);
            let pi = V::add(pi, V::div(V::mul(neg_step, mi), denom));
            store_n(m, n, mi);
            store_n(v, n, vi);
            store_n(p, n, pi);
            i += V::LANES;
        }
    }
}

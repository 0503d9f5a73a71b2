//! Dropout as PyTorch's training mode applies it, `y = x * m / (1 - p)` with `m` a 0/1 draw
//! per element, from a counter-based generator: nothing is stored between the forward and the
//! backward, which draws the same mask again from the same numbers.
//!
//! A draw is named by a `seed` (one per training step), a `stream` (one per dropout site of a
//! forward, numbered in the order the forward reaches them) and the element's index in its
//! tensor (row-major, `u64`). Element `i` of stream `s` is kept when
//!
//! ```text
//! key  = mix64(seed ^ mix64(s + 0x9E3779B97F4A7C15))          (SplitMix64's finalizer)
//! bits = mix32(mix32(lo32(i) ^ lo32(key)) ^ hi32(key) ^ hi32(i))   (Wellons' lowbias32)
//! keep = bits >= round(p * 2^32)
//! ```
//!
//! so every element is kept with probability `1 - p` to within `2^-32`, whatever the thread
//! count or ISA (the mask depends on the numbers alone). Kept elements are multiplied by
//! `1 / (1 - p)` correctly rounded to f32 (PyTorch rounds `1 - p` to f32 before dividing,
//! which can be 1 ulp away), dropped ones by 0 (NaN stays NaN, as in PyTorch); `p = 1` drops
//! everything. `tests/reference/make_fixtures.py` computes the same bits in numpy to
//! give HuggingFace's training mode these masks. The generator is a hash, not a
//! cryptographic one: fine for regularisation, not for secrets.
//!
//! [`dropout`] is the SIMD kernel; [`DropoutMask::factor`] is the scalar reference it is
//! tested against, bit for bit.

use crate::cpu::check;
use crate::cpu::options::CpuOptions;
use crate::cpu::simd::SimdF32;
use crate::cpu::split::{load_n, run_simd, store_n, SimdJob, LINE};
use crate::{Error, Result};
use std::ops::Range;

/// SplitMix64's output function: a bijection of `u64` with full avalanche.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of step `step` of a training run seeded `seed`: `mix64(seed ^ mix64(step))`, so
/// runs with nearby seeds do not share steps' masks.
pub fn step_seed(seed: u64, step: u64) -> u64 {
    mix64(seed ^ mix64(step))
}

/// Chris Wellons' `lowbias32`: a bijection of `u32` with low avalanche bias.
#[inline(always)]
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// Elements whose factors are computed together (one AVX-512 vector; two AVX2 ones).
const BLOCK: usize = 16;

/// One dropout draw over a tensor: which elements are kept and the factor of the kept ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropoutMask {
    key: u64,
    /// Elements whose bits are below this are dropped (`None`: all of them, `p = 1`).
    threshold: Option<u32>,
    /// `1 / (1 - p)` as f32 bits (0 when `p = 1`).
    scale: u32,
}

impl DropoutMask {
    /// The mask of dropout probability `p` for stream `stream` of `seed` (see the module doc).
    ///
    /// Errors unless `p` is in `[0, 1]`, as PyTorch requires.
    pub fn new(p: f32, seed: u64, stream: u64) -> Result<DropoutMask> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::Value {
                op: "dropout",
                detail: format!("probability {p}: it must be in [0, 1]"),
            });
        }
        let key = mix64(seed ^ mix64(stream.wrapping_add(0x9e37_79b9_7f4a_7c15)));
        let (threshold, scale) = if p == 1.0 {
            (None, 0.0)
        } else {
            // p <= 1 - 2^-24 here, so the threshold is at most 2^32 - 2^8.
            let t = (f64::from(p) * 4_294_967_296.0).round() as u32;
            (Some(t), (1.0 / (1.0 - f64::from(p))) as f32)
        };
        Ok(DropoutMask {
            key,
            threshold,
            scale: scale.to_bits(),
        })
    }

    /// The 32 random bits of the element whose index has low and high halves `lo`, `hi`.
    #[inline(always)]
    fn bits(&self, lo: u32, hi: u32) -> u32 {
        mix32(mix32(lo ^ self.key as u32) ^ (self.key >> 32) as u32 ^ hi)
    }

    /// The factor of element `index`: `1 / (1 - p)` as f32 when it is kept, else 0. The
    /// scalar reference of [`dropout`].
    pub fn factor(&self, index: u64) -> f32 {
        self.factor_of(index as u32, (index >> 32) as u32)
    }

    #[inline(always)]
    fn factor_of(&self, lo: u32, hi: u32) -> f32 {
        match self.threshold {
            Some(t) if self.bits(lo, hi) >= t => f32::from_bits(self.scale),
            _ => 0.0,
        }
    }

    /// The factors of the [`BLOCK`] elements from `index` on.
    #[inline(always)]
    fn block(&self, index: u64) -> [f32; BLOCK] {
        let (lo, hi) = (index as u32, (index >> 32) as u32);
        let mut f = [0.0; BLOCK];
        if lo <= u32::MAX - BLOCK as u32 {
            // One `hi` for the whole block: a loop the compiler turns into vector code.
            for (l, f) in f.iter_mut().enumerate() {
                *f = self.factor_of(lo + l as u32, hi);
            }
        } else {
            for (l, f) in f.iter_mut().enumerate() {
                *f = self.factor(index.wrapping_add(l as u64));
            }
        }
        f
    }
}

/// One [`dropout`] call.
struct Job {
    mask: DropoutMask,
    first: u64,
    x: *const f32,
    /// May equal `x`: every element is read before it is written.
    y: *mut f32,
}

impl SimdJob for Job {
    #[inline(always)]
    unsafe fn run<V: SimdF32>(&self, range: Range<usize>) {
        let mut i = range.start;
        while i < range.end {
            let f = self.mask.block(self.first.wrapping_add(i as u64));
            let n = (range.end - i).min(BLOCK);
            let mut l = 0;
            while l < n {
                let m = (n - l).min(V::LANES);
                let x = load_n::<V>(self.x.add(i + l), m);
                let factor = load_n::<V>(f.as_ptr().add(l), m);
                store_n(self.y.add(i + l), m, V::mul(x, factor));
                l += m;
            }
            i += n;
        }
    }
}

/// `y[i] = x[i] * mask.factor(first + i)`: dropout's forward on elements `first..` of a
/// tensor, and its backward when `x` is the output's gradient (the same mask gives `dx`).
///
/// Errors when the lengths differ or `opts` is invalid.
pub fn dropout(
    x: &[f32],
    mask: &DropoutMask,
    first: u64,
    y: &mut [f32],
    opts: &CpuOptions,
) -> Result<()> {
    const OP: &str = "dropout";
    opts.validate(OP)?;
    check::same_len(OP, &[("x", x.len()), ("y", y.len())])?;
    let job = Job {
        mask: *mask,
        first,
        x: x.as_ptr(),
        y: y.as_mut_ptr(),
    };
    // SAFETY: validated options; `x` and `y` hold the job's elements and are distinct.
    unsafe { run_simd(&job, opts, x.len(), 1, LINE) };
    Ok(())
}

/// [`dropout`] in place: `x[i] *= mask.factor(first + i)`.
///
/// Errors when `opts` is invalid.
pub fn dropout_inplace(
    x: &mut [f32],
    mask: &DropoutMask,
    first: u64,
    opts: &CpuOptions,
) -> Result<()> {
    opts.validate("dropout_inplace")?;
    let p = x.as_mut_ptr();
    let job = Job {
        mask: *mask,
        first,
        x: p,
        y: p,
    };
    // SAFETY: validated options; the job reads each element before writing it in place.
    unsafe { run_simd(&job, opts, x.len(), 1, LINE) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Isa;

    #[test]
    fn kernel_matches_the_scalar_reference_bit_for_bit() {
        let mask = DropoutMask::new(0.1, 42, 3).unwrap();
        for isa in Isa::supported() {
            for threads in [1, 2, 3] {
                for (n, first) in [(0, 0), (1, 5), (17, 0), (33, 1), (100_003, 7)] {
                    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
                    let opts = CpuOptions::threads(threads).isa(isa);
                    let mut y = vec![f32::NAN; n];
                    dropout(&x, &mask, first, &mut y, &opts).unwrap();
                    let mut z = x.clone();
                    dropout_inplace(&mut z, &mask, first, &opts).unwrap();
                    for i in 0..n {
                        let want = x[i] * mask.factor(first + i as u64);
                        assert_eq!(y[i].to_bits(), want.to_bits(), "{isa:?} {threads} {n} {i}");
                        assert_eq!(z[i].to_bits(), want.to_bits(), "{isa:?} in place {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn indices_past_two_to_the_32_use_their_high_bits() {
        let mask = DropoutMask::new(0.5, 1, 2).unwrap();
        // A block that crosses 2^32 takes the scalar path; its factors are the reference's.
        let first = (1u64 << 32) - 5;
        let x = vec![1.0f32; 40];
        let mut y = vec![0.0; 40];
        dropout(&x, &mask, first, &mut y, &CpuOptions::threads(1)).unwrap();
        for (i, &y) in y.iter().enumerate() {
            assert_eq!(y, mask.factor(first + i as u64));
        }
        let low: Vec<f32> = (0..64).map(|i| mask.factor(i)).collect();
        let high: Vec<f32> = (0..64).map(|i| mask.factor((1 << 32) + i)).collect();
        assert_ne!(low, high, "elements 2^32 apart must not share a mask");
    }

    #[test]
    fn keeps_one_minus_p_and_scales_by_its_inverse() {
        let n = 1 << 20;
        for p in [0.1f32, 0.5, 0.9] {
            let mask = DropoutMask::new(p, 7, 0).unwrap();
            let scale = (1.0 / (1.0 - f64::from(p))) as f32;
            let kept = (0..n as u64).filter(|&i| mask.factor(i) != 0.0).count();
            assert!((0..n as u64).all(|i| [0.0, scale].contains(&mask.factor(i))));
            // Binomial: 6 standard deviations of the kept count.
            let sd = (n as f64 * f64::from(p) * (1.0 - f64::from(p))).sqrt();
            let expected = n as f64 * (1.0 - f64::from(p));
            assert!(
                (kept as f64 - expected).abs() < 6.0 * sd,
                "p {p}: kept {kept}"
            );
        }
    }

    #[test]
    fn streams_and_seeds_draw_different_masks() {
        let draw = |seed, stream| -> Vec<bool> {
            let mask = DropoutMask::new(0.5, seed, stream).unwrap();
            (0..4096).map(|i| mask.factor(i) != 0.0).collect()
        };
        let base = draw(0, 0);
        assert_eq!(base, draw(0, 0), "a draw is a function of its numbers");
        for other in [draw(0, 1), draw(1, 0), draw(1, 1)] {
            // Independent halves agree on about half the elements.
            let same = base.iter().zip(&other).filter(|(a, b)| a == b).count();
            assert!((1800..2300).contains(&same), "{same} of 4096 agree");
        }
    }

    #[test]
    fn edge_probabilities_and_bad_ones() {
        let keep_all = DropoutMask::new(0.0, 3, 4).unwrap();
        assert!((0..10_000).all(|i| keep_all.factor(i) == 1.0));
        let drop_all = DropoutMask::new(1.0, 3, 4).unwrap();
        assert!((0..10_000).all(|i| drop_all.factor(i) == 0.0));
        let mut y = [0.0; 3];
        dropout(
            &[f32::NAN, 1.0, -2.0],
            &drop_all,
            0,
            &mut y,
            &CpuOptions::threads(1),
        )
        .unwrap();
        assert!(
            y[0].is_nan(),
            "NaN times the zero factor stays NaN, as in PyTorch"
        );
        assert_eq!(&y[1..], &[0.0, -0.0]);
        for p in [-0.1, 1.5, f32::NAN] {
            let err = DropoutMask::new(p, 0, 0).unwrap_err().to_string();
            assert!(err.contains("[0, 1]"), "{err}");
        }
        let err = dropout(
            &[1.0; 3],
            &keep_all,
            0,
            &mut [0.0; 2],
            &CpuOptions::threads(1),
        );
        assert!(err.unwrap_err().to_string().contains("dropout"));
    }
}

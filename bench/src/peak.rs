//! This machine's single-precision FMA peak, measured with a tight loop of independent FMAs in
//! the widest vectors the CPU has (the ceiling every compute-bound figure is compared with).

use smelt_kernels::cpu::Isa;
use std::time::Instant;

/// Peak GFLOP/s of `threads` cores together: the fastest of several runs of an FMA loop on
/// `threads` threads at once. Measured, not one core's figure times the count: on a shared
/// VM the cores are not always all there. The fastest, not the median: a core taken away by
/// the host only slows a run down, and a median of runs taken in such a second made
/// `of_peak` read 1.2 for a GEMM timed a minute later.
pub fn fma_peak_gflops(threads: usize) -> f64 {
    let iters = 20_000_000;
    let threads = threads.max(1);
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let flops: f64 = std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads).map(|_| s.spawn(|| fma_loop(iters))).collect();
                workers.into_iter().filter_map(|w| w.join().ok()).sum()
            });
            flops / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// The FMA peaks a benchmark divides by: one core alone, and all the run's threads at once.
#[derive(Debug, Clone, Copy)]
pub struct Peaks {
    pub one: f64,
    pub all: f64,
}

impl Peaks {
    /// Measures both for a run on `threads` threads.
    pub fn measure(threads: usize) -> Peaks {
        let one = fma_peak_gflops(1);
        let all = if threads > 1 {
            fma_peak_gflops(threads)
        } else {
            one
        };
        Peaks { one, all }
    }

    /// The higher of two measurements of each peak. A run measures its peaks before its
    /// cases and again after them: a host that takes a core away for the seconds of one
    /// measurement only lowers it (one 2-thread measurement read 238 GFLOP/s, one core's
    /// worth, minutes after another read 453, and made `of_peak` 1.77).
    pub fn max(self, other: Peaks) -> Peaks {
        Peaks {
            one: self.one.max(other.one),
            all: self.all.max(other.all),
        }
    }

    /// The peak of a figure measured on `threads` threads.
    pub fn at(&self, threads: usize) -> f64 {
        if threads > 1 {
            self.all
        } else {
            self.one
        }
    }
}

/// The instruction set the FMA loop runs: the widest vectors this CPU has, whatever `--isa`
/// a benchmark's kernels run (their `of_peak` is a fraction of the machine's peak).
pub fn peak_isa() -> Isa {
    Isa::detect()
}

/// Runs `iters` rounds of 12 independent vector FMAs of [`peak_isa`]; returns the flops done.
fn fma_loop(iters: usize) -> f64 {
    match peak_isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: `Isa::detect` found AVX-512F.
            let sink = unsafe { x86::fma512(iters) };
            std::hint::black_box(sink);
            (iters * 12 * 32) as f64
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => {
            // SAFETY: `Isa::detect` found AVX2 and FMA.
            let sink = unsafe { x86::fma256(iters) };
            std::hint::black_box(sink);
            (iters * 12 * 16) as f64
        }
        _ => {
            let mut acc = [0.0f32; 12];
            for _ in 0..iters {
                for a in acc.iter_mut() {
                    *a = a.mul_add(0.999_999, 1e-7);
                }
            }
            std::hint::black_box(acc);
            (iters * 12 * 2) as f64
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma512(iters: usize) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_setzero_ps(); 12];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        acc.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma256(iters: usize) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_setzero_ps(); 12];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut lanes = [0.0f32; 8];
        let mut total = 0.0;
        for x in acc {
            _mm256_storeu_ps(lanes.as_mut_ptr(), x);
            total += lanes.iter().sum::<f32>();
        }
        total
    }
}

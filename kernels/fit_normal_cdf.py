#!/usr/bin/env python3
"""Fits the rational function behind `normal_cdf` in kernels/src/cpu/math.rs.

The lower tail of the standard normal CDF, Phi(-a) = erfc(a / sqrt 2) / 2 for a in [0, 5.5],
as N(a) / D(a) with N of degree 5 and D of degree 9, N(0) = 1/2 and D(0) = 1 (so that
Phi(0) is exactly 1/2). The fit minimizes the largest absolute error: linearized least
squares (N - g D = 0, weighted by 1 / D of the previous pass) with Lawson's reweighting
toward the minimax solution. It then rounds the coefficients to f32, evaluates Phi in f32
with fused multiply-adds (as the kernel does) on a dense sweep of [-8, 8], and prints the
error and the coefficients for CDF_NUM and CDF_DEN.

Usage: python3 kernels/fit_normal_cdf.py   (needs numpy)
"""

import math

import numpy as np

NUM_DEGREE, DEN_DEGREE, CLAMP = 5, 9, 5.5


def lower_tail(a):
    return np.array([0.5 * math.erfc(v / math.sqrt(2.0)) for v in a])


def fit():
    # Chebyshev-spaced points: the error of a minimax fit peaks near the ends.
    a = (1.0 - np.cos(np.linspace(0.0, np.pi, 8000))) / 2.0 * CLAMP
    g = lower_tail(a)
    prev_den = np.ones_like(a)
    lawson = np.ones_like(a)
    best = None
    for _ in range(400):
        w = lawson / np.abs(prev_den)
        cols = [a**i for i in range(1, NUM_DEGREE + 1)]
        cols += [-g * a**j for j in range(1, DEN_DEGREE + 1)]
        sol, *_ = np.linalg.lstsq(np.stack(cols, 1) * w[:, None], (g - 0.5) * w, rcond=None)
        num = np.concatenate([[0.5], sol[:NUM_DEGREE]])
        den = np.concatenate([[1.0], sol[NUM_DEGREE:]])
        prev_den = np.polyval(den[::-1], a)
        err = np.polyval(num[::-1], a) / prev_den - g
        if best is None or np.abs(err).max() < best[0]:
            best = (np.abs(err).max(), num, den)
        lawson = lawson * np.abs(err) + 1e-300
        lawson /= lawson.sum()
    return best


def to_f32(x):
    return np.asarray(x, dtype=np.float64).astype(np.float32)


def horner_fma(coefs, x):
    """Horner's rule in f32, each step one rounding (an FMA)."""
    acc = np.full(x.shape, np.float32(coefs[-1]))
    for c in coefs[-2::-1]:
        acc = to_f32(acc.astype(np.float64) * x.astype(np.float64) + np.float64(np.float32(c)))
    return acc


def phi_f32(x, num, den):
    """The kernel's steps: clamp, N / D, zero past the clamp, the upper half as 1 - tail."""
    a = np.abs(x)
    clamped = np.minimum(np.float32(CLAMP), a)
    tail = to_f32(horner_fma(num, clamped).astype(np.float64) / horner_fma(den, clamped))
    tail = np.where(a > np.float32(CLAMP), np.float32(0.0), tail)
    return np.where(x < 0, tail, to_f32(1.0 - tail.astype(np.float64)))


def main():
    err, num, den = fit()
    print(f"minimax absolute error before rounding: {err:.2e}")
    num, den = to_f32(num), to_f32(den)
    x = np.linspace(-8.0, 8.0, 1 << 18).astype(np.float32)
    want = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x.astype(np.float64)])
    got = phi_f32(x, num, den)
    print(f"f32 coefficients, f32 evaluation: max absolute error {np.abs(got - want).max():.2e}")
    print("CDF_NUM:", ", ".join(str(c) for c in num))
    print("CDF_DEN:", ", ".join(str(c) for c in den))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch (MKL) and numpy (OpenBLAS) SGEMM figures, in the JSON-lines format of `smelt bench gemm --json`.

    python3 bench/peers/sgemm_torch.py [--shape MxKxN ...] [--batch B] [--threads N] [--transb]

Each implementation runs once to warm up, then for half the budget on its own (the two BLAS
thread pools must not overlap); the median is reported. `smelt bench gemm --torch` runs this script for every case it measures.
"""
import argparse
import json
import os
import statistics
import sys
import time

from peer_common import positive_int


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", action="append", default=[], help="MxKxN (repeatable)")
    p.add_argument("--batch", type=positive_int, default=1, help="independent GEMMs per call (bmm)")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--transb", action="store_true", help="B stored N x K and read transposed")
    p.add_argument("--budget", type=float, default=1.5, help="seconds per case")
    args = p.parse_args()
    if not args.shape:
        args.shape = ["1024x1024x1024", "1024x768x768", "1024x768x3072", "1024x3072x768"]
    return args


def main():
    args = parse_args()
    # Thread counts must be fixed before the libraries load their BLAS.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    for shape in args.shape:
        try:
            m, k, n = (int(d) for d in shape.split("x"))
        except ValueError:
            sys.exit(f"--shape {shape!r}: expected MxKxN")
        b_, dims_b = args.batch, ((n, k) if args.transb else (k, n))
        a = torch.rand(b_, m, k) - 0.5
        b = torch.rand(b_, *dims_b) - 0.5
        bt = b.transpose(1, 2) if args.transb else b
        an, bn = a.numpy(), b.numpy()
        btn = bn.transpose(0, 2, 1) if args.transb else bn
        if b_ == 1:
            a2, bt2, an2, btn2 = a[0], bt[0], an[0], btn[0]
            impls = {"torch": lambda: torch.mm(a2, bt2), "numpy": lambda: an2 @ btn2}
        else:
            impls = {"torch": lambda: torch.bmm(a, bt), "numpy": lambda: np.matmul(an, btn)}
        # One library after the other, not interleaved: a BLAS pool that just ran keeps
        # spinning for a while and would slow the other library down.
        times = {}
        for name, f in impls.items():
            f()
            ts, start = [], time.perf_counter()
            while len(ts) < 5 or (time.perf_counter() - start < args.budget / 2 and len(ts) < 200):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            times[name] = ts
        flops = 2.0 * b_ * m * n * k
        for name, ts in times.items():
            med = statistics.median(ts)
            print(json.dumps({
                "impl": name, "op": "sgemm" if b_ == 1 else "sgemm_batched", "batch": b_,
                "m": m, "k": k, "n": n, "transb": args.transb, "threads": args.threads,
                "median_ms": med * 1e3, "gflops": flops / med / 1e9,
            }))


if __name__ == "__main__":
    main()

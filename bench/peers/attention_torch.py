#!/usr/bin/env python3
"""PyTorch's fused attention and layer norm on the GPU, one JSON object per line, in the format
of `smelt bench attention|layernorm --json`.

    python3 bench/peers/attention_torch.py attention --batch 32 --heads 12 --seq 128,512 --head-dim 64
    python3 bench/peers/attention_torch.py layernorm --rows 65536 --hidden 768,1024
        [--device cuda|cpu] [--dtype f32|bf16] [--runs R] [--launches K]

attention: torch.nn.functional.scaled_dot_product_attention on [B, H, T, d] float32 (or, with
--dtype bf16, bfloat16) tensors with an additive key-padding mask of zeros (so the kernel
takes its masked path, as ours does), forward and backward; FLOPs as FlashAttention counts them: forward
4*B*H*T*T*d, backward 2.5x that. layernorm: torch.nn.functional.layer_norm over the last dim,
forward, and backward from a given dy, with x, y and dy stored as f32 or (--dtype
bf16) bfloat16 (the weight and bias too, where ours keeps them f32: a row of bytes, not
counted); bytes counted as ours: forward reads x and writes y (2 elements of storage per
element), backward reads dy and x and writes dx (3). The same run measures the
device-to-device copy bandwidth (a tensor copy_, counted as read + write) as the reference for
"fraction of copy bandwidth".

What is timed is the kernels, as on our side: each timing covers --launches calls in a row
(default 10) between two CUDA events, divided by their number, so the host's per-call cost
(Python, the dispatcher, autograd) overlaps the device's work instead of adding to it. The
backward is `torch.autograd.grad` on a graph built once outside the timing and kept
(`retain_graph`), so only the backward kernels run. On CUDA, attention is pinned to the
memory-efficient fused kernel (`sdpa_kernel(EFFICIENT_ATTENTION)`, the one that takes f32 and
an additive mask; 3xTF32 on tensor cores for f32 on sm_80+): a fallback to the unfused math
path is an error, not a slow figure. Each case warms up, then times R such batches (--runs,
default 20); the median is reported.
"""
import argparse
import contextlib
import json
import statistics
import time

from peer_common import positive_int

import torch
import torch.nn.functional as F


def timed(fn, device, runs, launches):
    """Median milliseconds of one call of `fn`, from `runs` timings of `launches` calls in a row."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            for _ in range(launches):
                fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / launches)
        else:
            t = time.perf_counter()
            for _ in range(launches):
                fn()
            times.append((time.perf_counter() - t) * 1e3 / launches)
    return statistics.median(times)


def fused_attention(device):
    """The context in which SDPA runs: the memory-efficient kernel only, on CUDA."""
    if device == "cuda":
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION)
    return contextlib.nullcontext()


def ints(s):
    return [int(x) for x in s.split(",") if x]


def attention(args):
    for seq in ints(args.seq):
        b, h, d = args.batch, args.heads, args.head_dim
        gen = torch.Generator(device=args.device).manual_seed(0)
        dt = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
        q, k, v = (torch.randn(b, h, seq, d, device=args.device, generator=gen).to(dt).requires_grad_()
                   for _ in range(3))
        mask = torch.zeros(b, 1, 1, seq, device=args.device, dtype=dt)
        scale = d ** -0.5
        dout = torch.randn(b, h, seq, d, device=args.device, generator=gen).to(dt)

        def fwd():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

        def bwd():
            torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

        flops = 4.0 * b * h * seq * seq * d
        t_f = timed(fwd, args.device, args.runs, args.launches)
        t_b = timed(bwd, args.device, args.runs, args.launches)
        for phase, ms, fl in (("forward", t_f, flops), ("backward", t_b, 2.5 * flops)):
            print(json.dumps({"impl": "pytorch", "op": "attention", "device": args.device, "phase": phase,
                              "batch": b, "heads": h, "seq": seq, "head_dim": d,
                              "median_ms": round(ms, 4), "tflops": round(fl / ms / 1e9, 3)}), flush=True)


def layernorm(args):
    for hidden in ints(args.hidden):
        rows = args.rows
        gen = torch.Generator(device=args.device).manual_seed(0)
        dt = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
        x = torch.randn(rows, hidden, device=args.device, generator=gen).to(dt).requires_grad_()
        # Parameters made in the rows' dtype once: a cast inside the timed calls would add
        # kernels (and their backward) that ours does not run.
        w = torch.randn(hidden, device=args.device, generator=gen).to(dt).requires_grad_()
        bias = torch.randn(hidden, device=args.device, generator=gen).to(dt).requires_grad_()
        dy = torch.randn(rows, hidden, device=args.device, generator=gen).to(dt)
        dst = torch.empty_like(dy)

        def fwd():
            with torch.no_grad():
                F.layer_norm(x, (hidden,), w, bias, 1e-12)

        y = F.layer_norm(x, (hidden,), w, bias, 1e-12)

        def bwd():
            torch.autograd.grad(y, (x, w, bias), dy, retain_graph=True)

        def copy():
            dst.copy_(dy)

        n = rows * hidden
        elem = x.element_size()
        t_c = timed(copy, args.device, args.runs, args.launches)
        t_f = timed(fwd, args.device, args.runs, args.launches)
        t_b = timed(bwd, args.device, args.runs, args.launches)
        for phase, ms, nbytes in (("copy", t_c, 2 * elem * n), ("forward", t_f, 2 * elem * n), ("backward", t_b, 3 * elem * n)):
            print(json.dumps({"impl": "pytorch", "op": "layernorm", "device": args.device, "phase": phase,
                              "rows": rows, "cols": hidden, "median_ms": round(ms, 4),
                              "gbps": round(nbytes / ms / 1e6, 2)}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("op", choices=["attention", "layernorm"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--runs", type=positive_int, default=20)
    p.add_argument("--launches", type=positive_int, default=10, help="calls in a row per timing")
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--heads", type=positive_int, default=12)
    p.add_argument("--seq", default="128,512")
    p.add_argument("--head-dim", type=positive_int, default=64)
    p.add_argument("--rows", type=positive_int, default=65536)
    p.add_argument("--hidden", default="768,1024")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32", help="storage: layernorm's x, y, dy; attention's q, k, v, mask, dout")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("attention_torch.py: no CUDA device visible to PyTorch (use --device cpu for a smoke run)")
    if args.op == "attention":
        with fused_attention(args.device):
            attention(args)
    else:
        layernorm(args)


if __name__ == "__main__":
    main()

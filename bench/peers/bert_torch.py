#!/usr/bin/env python3
"""PyTorch (HuggingFace transformers) BERT figures, one JSON object per line.

    python3 bench/peers/bert_torch.py --config bert-base|distilbert-base|minilm|tiny --batch B --seq T
        --threads N [--phase forward|train|both] [--runs R] [--warmup W] [--attn sdpa|eager]
        [--dropout P] [--serve]
    (with --serve, stdin lines: a phase name for a timed round, or "profile PHASE")

The model is built from a config object (no hub access), seeded random weights, float32, random
valid input ids (no padding, attention_mask all ones).

- forward: eval() mode, under torch.inference_mode();
- train: one training step = zero the grads, forward, loss = sum(last_hidden_state ** 2),
  backward (no optimizer step); with --dropout P > 0 in train() mode, dropping P of the hidden
  states and attention probabilities (HF's training mode; default 0, which eval() computes).

Each phase runs warm-up iterations, then R timed ones (default 10 forward, 5 train); the median is
reported. With --serve the model is built once, then every phase name read on stdin
runs one round (W warm-ups, R timed runs) and prints its line (peer_common.serve): `smelt bench
bert` alternates these rounds with its own; a line "profile PHASE" instead runs the phase's
warm-ups and R steps under torch.profiler (torch_profile.py) and prints one line per op and
direction under smelt's op names ({"impl", "config", "batch", "seq", "threads", "phase", "op",
"direction", "calls", "ms"}, per step), then one with "op": "(step)" and the step's time, for
`smelt bench bert --profile --torch`. Output line of a round:
  {"impl": "pytorch", "config", "batch", "seq", "threads", "phase", "median_ms", "tokens_per_s",
   "peak_rss_mb", "attn", "start_rss_mb", "dropout"}
peak_rss_mb is this process's peak resident set (VmHWM) read after the phase; with
--phase both the train figure also covers the forward phase that ran before it, and a forward
after a training step reports the training's peak (`smelt bench bert` keeps each phase's
first round, which comes before any training step). start_rss_mb is the same figure taken once the model
and inputs are built, before the first phase (the interpreter, torch and transformers alone
take about 0.5 GB).
"""
import argparse
import json
import os
import statistics
import sys
import time

from peer_common import non_negative_int, peak_rss_mb, positive_int, serve
from torch_profile import profile_steps

CONFIGS = {
    # name: (family, sizes, vocabulary, positions), as `Config::preset` in model/src/config.rs.
    "bert-base": ("bert", dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072), 30522, 512),
    "distilbert-base": ("distilbert", dict(n_layers=6, dim=768, n_heads=12, hidden_dim=3072), 30522, 512),
    "minilm": ("bert", dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536), 30522, 512),
    "tiny": ("bert", dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=37), 99, 64),
}
SEED = 0


def parse_args(description=__doc__, phases=("forward", "train", "both"), default_phase="both"):
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, choices=sorted(CONFIGS))
    p.add_argument("--batch", type=positive_int, required=True)
    p.add_argument("--seq", type=positive_int, required=True)
    p.add_argument("--threads", type=positive_int, required=True)
    p.add_argument("--phase", choices=phases, default=default_phase)
    p.add_argument("--runs", type=positive_int, default=None, help="timed runs (default 10 forward, 5 train)")
    p.add_argument("--warmup", type=non_negative_int, default=None, help="warm-up runs (default 2 forward, 1 train)")
    p.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa",
                   help="HF attention implementation (default sdpa, HF's own default)")
    p.add_argument("--serve", action="store_true", help="time one round per phase name read on stdin")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="train phase: train() mode with this dropout on hidden states and attention probabilities")
    args = p.parse_args()
    positions = CONFIGS[args.config][3]
    if args.seq > positions:
        p.error(f"--seq {args.seq} > {positions} positions of {args.config}")
    return args


def set_threads(n):
    """Fix the thread counts before torch (and its BLAS / OpenMP) loads."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)
    return torch


def build_model(name, attn="sdpa", dropout=0.0):
    """Config-built model with seeded random weights (HF's own init), eval mode, `dropout` on the
    hidden states and attention probabilities (applied only in train() mode)."""
    import torch
    import transformers
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

    transformers.logging.set_verbosity_error()
    family, sizes, vocab, positions = CONFIGS[name]
    torch.manual_seed(SEED)
    if family == "bert":
        cfg = BertConfig(vocab_size=vocab, max_position_embeddings=positions, hidden_dropout_prob=dropout,
                         attention_probs_dropout_prob=dropout, attn_implementation=attn, **sizes)
        model = BertModel(cfg, add_pooling_layer=False)
    else:
        cfg = DistilBertConfig(vocab_size=vocab, max_position_embeddings=positions, dropout=dropout,
                               attention_dropout=dropout, attn_implementation=attn, **sizes)
        model = DistilBertModel(cfg)
    return model.float().eval()


def make_inputs(name, batch, seq):
    import torch

    vocab = CONFIGS[name][2]
    g = torch.Generator().manual_seed(SEED + 1)
    # Valid, non-special ids (BERT's specials are below 1000; a tiny vocabulary's below 5).
    ids = torch.randint(1000 if vocab > 2000 else 5, vocab, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    return ids, mask




def time_it(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def report(impl, args, phase, median_ms, **extra):
    row = {
        "impl": impl,
        "config": args.config,
        "batch": args.batch,
        "seq": args.seq,
        "threads": args.threads,
        "phase": phase,
        "median_ms": round(median_ms, 3),
        "tokens_per_s": round(args.batch * args.seq / (median_ms / 1e3), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    row.update(extra)
    print(json.dumps(row), flush=True)


def main():
    args = parse_args()
    torch = set_threads(args.threads)
    model = build_model(args.config, args.attn, args.dropout)
    ids, mask = make_inputs(args.config, args.batch, args.seq)
    start = round(peak_rss_mb(), 1)

    def forward():
        model.eval()
        with torch.inference_mode():
            return model(input_ids=ids, attention_mask=mask).last_hidden_state

    def train_step():
        model.train(args.dropout > 0)  # eval() mode computes the same without dropout
        model.zero_grad(set_to_none=True)
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        loss = (h * h).sum()
        loss.backward()
        return loss

    # phase: (function, default warm-ups, default timed runs)
    phases = {"forward": (forward, 2, 10), "train": (train_step, 1, 5)}
    phases = {k: v for k, v in phases.items() if args.phase in (k, "both")}

    def plan(phase):
        """(function, warm-ups, timed runs) of a phase: the command line's, else its defaults."""
        fn, default_warmup, default_runs = phases[phase]
        return fn, default_warmup if args.warmup is None else args.warmup, default_runs if args.runs is None else args.runs

    def run_round(phase):
        ms = time_it(*plan(phase))
        report("pytorch", args, phase, ms, attn=args.attn, start_rss_mb=start, dropout=args.dropout)

    def run_profile(phase):
        fn, warmup, runs = plan(phase)
        for _ in range(warmup):
            fn()
        ops, step_ms = profile_steps(fn, runs)
        case = {k: getattr(args, k) for k in ("config", "batch", "seq", "threads")}
        for op, direction, calls, ms in ops + [("(step)", "-", None, step_ms)]:
            row = {"impl": "pytorch", **case, "phase": phase, "op": op, "direction": direction,
                   "calls": calls, "ms": round(ms, 4)}
            print(json.dumps(row), flush=True)

    if args.serve:
        # No warm-up here: each round warms up its phase itself, and a training step now
        # would count in the peak RSS of every forward round that follows.
        return serve(run_round, phases, run_profile)
    for phase in phases:
        run_round(phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())

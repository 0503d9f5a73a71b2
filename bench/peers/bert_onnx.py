#!/usr/bin/env python3
"""ONNX Runtime BERT forward figures, one JSON object per line (the format of bert_torch.py).

    python3 bench/peers/bert_onnx.py --config bert-base|distilbert-base|minilm|tiny --batch B --seq T
        --threads N [--phase forward] [--runs R] [--exporter torchscript|dynamo]
        [--fusion transformers|session] [--serve]

The model is the one bert_torch.py builds (same config, seed, weights and input ids), exported
with torch.onnx.export at the fixed shape [B, T] into a temporary directory, then run by an
onnxruntime InferenceSession (CPUExecutionProvider, graph_optimization_level ORT_ENABLE_ALL,
intra_op_num_threads N, inter_op_num_threads 1, sequential execution).

Fusion (--fusion):
  transformers (default)  onnxruntime.transformers.optimizer.optimize_model(model_type="bert")
                          first: the usual way BERT is deployed on ORT. With the TorchScript exporter
                          and eager attention this fuses every layer into Attention,
                          SkipLayerNormalization and BiasGelu nodes and the embeddings into
                          EmbedLayerNormalization; then the session's ORT_ENABLE_ALL passes.
  session                 the session's ORT_ENABLE_ALL passes alone (SkipLayerNormalization, Gelu,
                          Gemm/FusedMatMul; attention stays MatMul/Softmax/MatMul).
The JSON line names the fused ops found in the graph the session runs ("fused_ops").

Exporter (--exporter): torchscript (default; torch.onnx.export(dynamo=False), opset 17, whose
graph the attention fusion recognises) or dynamo (torch.export based, opset 18; needs onnxscript).
If the requested exporter fails, the other is tried; if both fail the script exits with status 2
and says why.

The export runs in a child process, so this process (the one timed and whose peak RSS is
reported) loads onnxruntime and numpy only, never torch. Only the forward phase exists here.
With --serve the session is built and warmed up once, then every "forward" read on stdin runs one
round (W warm-ups, R timed runs) and prints its line (peer_common.serve): `smelt bench bert`
alternates these rounds with its own. Output line:
  {"impl": "onnxruntime", "config", "batch", "seq", "threads", "phase": "forward", "median_ms",
   "tokens_per_s", "peak_rss_mb", "start_rss_mb", "exporter", "fusion", "fused_ops",
   "max_abs_diff"}
start_rss_mb: peak RSS once the session is built, before the first run; max_abs_diff: the
largest |ORT - PyTorch| over last_hidden_state (a check that the exported graph is right).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from peer_common import non_negative_int, peak_rss_mb, positive_int, serve

HERE = os.path.dirname(os.path.abspath(__file__))
FUSED_OPS = ("Attention", "MultiHeadAttention", "EmbedLayerNormalization", "SkipLayerNormalization",
             "LayerNormalization", "BiasGelu", "FastGelu", "Gelu", "FusedMatMul", "Gemm", "MatMul", "Softmax")


def parse_args():
    sys.path.insert(0, HERE)
    from bert_torch import CONFIGS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, choices=sorted(CONFIGS))
    p.add_argument("--batch", type=positive_int, required=True)
    p.add_argument("--seq", type=positive_int, required=True)
    p.add_argument("--threads", type=positive_int, required=True)
    p.add_argument("--phase", choices=("forward", "train", "both"), default="forward")
    p.add_argument("--runs", type=positive_int, default=10, help="timed runs (default 10)")
    p.add_argument("--warmup", type=non_negative_int, default=2, help="warm-up runs (default 2)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    p.add_argument("--fusion", choices=("transformers", "session"), default="transformers")
    p.add_argument("--serve", action="store_true", help="time one round per phase name read on stdin")
    p.add_argument("--keep", metavar="DIR", help="export into DIR and keep it (default: a temp dir, removed)")
    p.add_argument("--_export", metavar="DIR", help=argparse.SUPPRESS)  # child: export into DIR
    args = p.parse_args()
    if args.phase != "forward":
        p.error("onnxruntime is measured for --phase forward only (no training step)")
    positions = CONFIGS[args.config][3]
    if args.seq > positions:
        p.error(f"--seq {args.seq} > {positions} positions of {args.config}")
    return args




# ---------------------------------------------------------------- child: export (loads torch)

def export_child(args, out_dir):
    import contextlib
    import io
    import warnings

    import bert_torch as bt

    torch = bt.set_threads(args.threads)
    import numpy as np

    warnings.filterwarnings("ignore")
    fam, sizes = bt.CONFIGS[args.config][:2]
    # Eager attention: a plain MatMul/Softmax/MatMul graph that the fusion recognises
    # (HF's sdpa path exports with extra NaN guards around the softmax).
    model = bt.build_model(args.config, "eager")
    ids, mask = bt.make_inputs(args.config, args.batch, args.seq)

    class LastHidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    wrapper = LastHidden(model).eval()
    with torch.inference_mode():
        ref = wrapper(ids, mask).numpy()
    np.save(os.path.join(out_dir, "input_ids.npy"), ids.numpy())
    np.save(os.path.join(out_dir, "attention_mask.npy"), mask.numpy())
    np.save(os.path.join(out_dir, "torch_out.npy"), ref)

    raw = os.path.join(out_dir, "model.onnx")
    errors = []
    exporter = None
    order = [args.exporter] + [e for e in ("torchscript", "dynamo") if e != args.exporter]
    for exp in order:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                torch.onnx.export(
                    wrapper, (ids, mask), raw,
                    input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                    dynamo=(exp == "dynamo"), opset_version=18 if exp == "dynamo" else 17,
                )
            exporter = exp
            break
        except Exception as e:  # noqa: BLE001 - reported, then the other exporter is tried
            errors.append(f"{exp}: {type(e).__name__}: {e}")
            print(f"bert_onnx: torch.onnx.export ({exp}) failed: {type(e).__name__}: {e}", file=sys.stderr)
    if exporter is None:
        sys.exit("bert_onnx: torch.onnx.export failed with every exporter:\n  " + "\n  ".join(errors))

    path = raw
    if args.fusion == "transformers":
        from onnxruntime.transformers.optimizer import optimize_model

        heads = sizes.get("num_attention_heads", sizes.get("n_heads"))
        hidden = sizes.get("hidden_size", sizes.get("dim"))
        with contextlib.redirect_stdout(io.StringIO()):
            fused = optimize_model(raw, model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
        path = os.path.join(out_dir, "model_fused.onnx")
        fused.save_model_to_file(path, use_external_data_format=True)

    # Count the ops of the graph ORT will run: let a throw-away session write its optimised model.
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.optimized_model_filepath = os.path.join(out_dir, "optimized.onnx")
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.data")
    ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    counts = {}
    for node in onnx.load(so.optimized_model_filepath, load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    for f in ("optimized.onnx", "optimized.data"):
        os.remove(os.path.join(out_dir, f))
    with open(os.path.join(out_dir, "export.json"), "w") as f:
        json.dump({"model": path, "exporter": exporter,
                   "fused_ops": {k: counts[k] for k in FUSED_OPS if k in counts}}, f)


# ---------------------------------------------------------------- parent: time (no torch)

def main():
    args = parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args._export:
        return export_child(args, args._export)

    out_dir = args.keep or tempfile.mkdtemp(prefix="bert_onnx_")
    os.makedirs(out_dir, exist_ok=True)
    try:
        child = [sys.executable, os.path.abspath(__file__), "--_export", out_dir]
        for k in ("config", "batch", "seq", "threads", "exporter", "fusion"):
            child += [f"--{k}", str(getattr(args, k))]
        r = subprocess.run(child)
        if r.returncode != 0 or not os.path.exists(os.path.join(out_dir, "export.json")):
            print(f"bert_onnx: exporting {args.config} to ONNX failed (status {r.returncode}); see above",
                  file=sys.stderr)
            return 2
        with open(os.path.join(out_dir, "export.json")) as f:
            info = json.load(f)

        import numpy as np
        import onnxruntime as ort
        from bert_torch import report, time_it  # shared with the PyTorch peer (torch loads lazily)

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        sess = ort.InferenceSession(info["model"], so, providers=["CPUExecutionProvider"])
        feed = {
            "input_ids": np.load(os.path.join(out_dir, "input_ids.npy")),
            "attention_mask": np.load(os.path.join(out_dir, "attention_mask.npy")),
        }
        names = {i.name for i in sess.get_inputs()}
        feed = {k: v for k, v in feed.items() if k in names}  # an unused input may be pruned
        ref = np.load(os.path.join(out_dir, "torch_out.npy"))
        start = round(peak_rss_mb(), 1)

        out = sess.run(None, feed)[0]
        diff = float(np.abs(out - ref).max())
        if diff > 1e-3:
            print(f"bert_onnx: ORT output differs from PyTorch by {diff:g}", file=sys.stderr)
            return 1

        def run_round(phase, warmup=args.warmup):
            ms = time_it(lambda: sess.run(None, feed), warmup, args.runs)
            report("onnxruntime", args, phase, ms, start_rss_mb=start, exporter=info["exporter"],
                   fusion=args.fusion, fused_ops=info["fused_ops"], max_abs_diff=diff)

        if args.serve:
            for _ in range(max(0, args.warmup - 1)):  # the checked run above was the first
                sess.run(None, feed)
            return serve(run_round, ("forward",))
        run_round("forward", warmup=max(0, args.warmup - 1))
    finally:
        if not args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

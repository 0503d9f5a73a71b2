#!/usr/bin/env python3
"""Randomized differential check of `smelt run` (forward and --grad) against HF transformers.

    cargo build --release -p smelt-bench
    python3 tests/reference/diffcheck.py [--cases N] [--seed S] [--init fixture|scaled]
                                         [--only I,J,...] [--keep] [--smelt PATH] [--work DIR]

Needs torch, transformers, safetensors and numpy (pip); offline. Each case i draws a small
BertModel (with or without pooler) or DistilBertModel config (sinusoidal positions too) and
its inputs from random.Random(seed * 100003 + i), so any case reruns alone with --only i:
hidden sizes 4-132 with head dims 1-66, odd intermediate sizes, 1-3 layers, T in 1..130 with
max_position_embeddings = T or above, batch 1-4, masks absent, all ones, tail-padded or with
random zeros (eight dtypes), token types, ids I64/I32, weights saved as F32, F16 or BF16.
The weights are redrawn as make_fixtures.py draws them (LayerNorm gamma ~ N(1, 0.2),
everything else ~ N(0, 0.5); `--init scaled` shrinks the spread by width, sqrt(32 / hidden),
so wide models are as well conditioned as the fixtures). HF runs in float32 and float64 on
the same (rounded) weights, eager attention, eval mode; smelt runs forward-only and with
--grad (threads 1 and 2 alternating). Per tensor, the relative L2 error against HF float32 is
held to the fixtures' tolerances (1e-5 outputs, 1e-4 gradients). A tensor over them is
"suspect" only when smelt is more than 3x as far from float64 as HF's float32 is, and more than 30x as far as float64 moves when the weights are perturbed by a float32
rounding (4 draws): otherwise the case is ill-conditioned (large weights make HF's float32 and
float64 differ as much), reported but not a failure. Exit status 1 when a case fails (a non-zero exit, a
missing or misshaped output) or is suspect.
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
import transformers
from safetensors.numpy import load_file as np_load
from safetensors.torch import load_file as pt_load
from safetensors.torch import save_file as pt_save
from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMELT = os.path.join(REPO, "target", "release", "smelt")
WORK = None  # set by main
OUT_TOL, GRAD_TOL = 1e-5, 1e-4
INIT = "fixture"  # or "scaled": std min(0.5, 0.5*sqrt(32/hidden)), the fixtures' conditioning at every width

# hidden -> possible head counts (head dims 1,3,5,33,64 among them)
HIDDEN_HEADS = {
    4: [1, 2, 4],
    5: [1, 5],
    12: [1, 2, 3, 4, 12],
    15: [3, 5],
    20: [1, 4, 5, 20],
    33: [1, 11],
    36: [4, 9, 12],
    44: [2, 4, 11],
    64: [1, 2],
    66: [2, 22],
    100: [4, 5, 20],
    128: [2],
    132: [2, 4, 12, 44],
}
TS = [1, 2, 3, 7, 16, 17, 31, 33, 64, 65, 129, 130]


def draw_case(i, seed):
    r = random.Random(seed * 100003 + i)
    c = {"index": i}
    c["arch"] = r.choice(["bert", "bert", "bert_nopool", "distilbert", "distilbert"])
    H = r.choice(list(HIDDEN_HEADS))
    c["hidden"] = H
    c["heads"] = r.choice(HIDDEN_HEADS[H])
    c["inter"] = r.choice([1, 3, 7, 17, 37, 63, 65, 101, 129, 257])
    c["layers"] = r.choice([1, 2, 3])
    c["vocab"] = r.randint(5, 300)
    c["T"] = r.choice(TS)
    c["B"] = r.randint(1, 4)
    c["maxpos"] = c["T"] + r.choice([0, 0, 1, 3, 20])
    c["type_vocab"] = r.randint(1, 3)
    c["eps"] = r.choice([1e-12, 1e-5])
    c["sinusoidal"] = c["arch"] == "distilbert" and r.random() < 0.3
    c["wdtype"] = r.choices(["f32", "f16", "bf16"], [0.84, 0.08, 0.08])[0]
    c["ids_dtype"] = r.choice(["i64", "i32"])
    c["mask_kind"] = r.choices(["none", "ones", "tail", "random", "mixed"], [0.15, 0.1, 0.3, 0.2, 0.25])[0]
    c["mask_dtype"] = r.choice(["i64", "i32", "bool", "f32", "u8", "i8", "f16", "f64"])
    c["zero_row"] = c["mask_kind"] != "none" and c["B"] > 1 and r.random() < 0.04
    c["token_types"] = c["arch"] != "distilbert" and r.random() < 0.6
    c["tt_dtype"] = r.choice(["i64", "i32"])
    c["threads"] = 1 + (i % 2)
    c["pad_ids"] = r.random() < 0.5  # write the pad id 0 at padded positions
    c["data_seed"] = r.randrange(1 << 30)
    return c


def build_model(c):
    if c["arch"].startswith("bert"):
        cfg = BertConfig(
            vocab_size=c["vocab"], hidden_size=c["hidden"], num_hidden_layers=c["layers"],
            num_attention_heads=c["heads"], intermediate_size=c["inter"],
            max_position_embeddings=c["maxpos"], type_vocab_size=c["type_vocab"],
            hidden_act="gelu", layer_norm_eps=c["eps"], hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, pad_token_id=0, attn_implementation="eager")
        torch.manual_seed(c["data_seed"])
        m = BertModel(cfg, add_pooling_layer=(c["arch"] == "bert"))
    else:
        cfg = DistilBertConfig(
            vocab_size=c["vocab"], dim=c["hidden"], n_layers=c["layers"], n_heads=c["heads"],
            hidden_dim=c["inter"], max_position_embeddings=c["maxpos"],
            sinusoidal_pos_embds=c["sinusoidal"], activation="gelu", dropout=0.0,
            attention_dropout=0.0, pad_token_id=0, attn_implementation="eager")
        torch.manual_seed(c["data_seed"])
        m = DistilBertModel(cfg)
    gen = torch.Generator().manual_seed(c["data_seed"])
    ln = {id(mod.weight) for mod in m.modules() if isinstance(mod, torch.nn.LayerNorm)}
    with torch.no_grad():
        for name, p in m.named_parameters():
            if c["sinusoidal"] and name.endswith("position_embeddings.weight"):
                continue
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            std = 0.5 if INIT == "fixture" else min(0.5, 0.5 * math.sqrt(32.0 / c["hidden"]))
            p.copy_(1.0 + 0.2 * noise if id(p) in ln else std * noise)
    m.eval()
    return m, gen


def make_mask(c, gen):
    B, T = c["B"], c["T"]
    kind = c["mask_kind"]
    if kind == "none":
        return None
    m = torch.ones(B, T, dtype=torch.int64)
    for b in range(B):
        k = kind if kind != "mixed" else ["ones", "tail", "random"][b % 3]
        if k == "tail":
            n = int(torch.randint(1, T + 1, (1,), generator=gen))
            m[b, n:] = 0
        elif k == "random":
            m[b] = (torch.rand(T, generator=gen) < 0.7).long()
            if m[b].sum() == 0:
                m[b, int(torch.randint(0, T, (1,), generator=gen))] = 1
    if c["zero_row"]:
        m[B - 1] = 0
    return m


DT = {"i64": torch.int64, "i32": torch.int32, "bool": torch.bool, "f32": torch.float32,
      "u8": torch.uint8, "i8": torch.int8, "f16": torch.float16, "f64": torch.float64}


def make_inputs(c, gen):
    B, T = c["B"], c["T"]
    ids = torch.randint(0, c["vocab"], (B, T), generator=gen)
    mask = make_mask(c, gen)
    if mask is not None and c["pad_ids"]:
        ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))
    tt = None
    if c["token_types"]:
        tt = torch.randint(0, c["type_vocab"], (B, T), generator=gen)
    probe = torch.randn(B, T, c["hidden"], generator=gen)
    return ids, mask, tt, probe


def hf_run(model, ids, mask, tt, probe, dtype):
    m = model.to(dtype)
    m.zero_grad(set_to_none=True)
    kw = {"input_ids": ids}
    if mask is not None:
        kw["attention_mask"] = mask
    if tt is not None:
        kw["token_type_ids"] = tt
    out = m(**kw)
    loss = (out.last_hidden_state * probe.to(dtype)).sum()
    loss.backward()
    res = {"last_hidden_state": out.last_hidden_state.detach().double()}
    if getattr(out, "pooler_output", None) is not None:
        res["pooler_output"] = out.pooler_output.detach().double()
    res["loss"] = loss.detach().double().reshape(())
    for n, p in m.named_parameters():
        res["grad." + n] = (p.grad if p.grad is not None else torch.zeros_like(p)).detach().double()
    return res


def f64_sensitivity(model, ids, mask, tt, probe, ref64, draws=4):
    """HF's float64 results with every weight multiplied by (1 + u), u ~ U(-2^-24, 2^-24) (the
    size of a float32 rounding), for `draws` draws; the model is left as it was."""
    base = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    runs = []
    for _ in range(draws):
        model.load_state_dict(base)
        model.double()
        with torch.no_grad():
            for p in model.parameters():
                u = torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1
                p.mul_(1 + u * 2.0**-24)
        runs.append({k: v.numpy() for k, v in hf_run(model, ids, mask, tt, probe.double(), torch.float64).items()})
    model.float()
    model.load_state_dict(base)
    return runs


def rel(a, ref, denom=None):
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    d = np.linalg.norm(ref) if denom is None else denom
    n = np.linalg.norm(a - ref)
    if not np.isfinite(n):
        return float("inf")
    if d == 0:
        return 0.0 if n == 0 else float("inf")
    return float(n / d)


def denominator(name, ref, probe):
    """What the relative error of output `name` is measured against: its norm (None), except
    the key bias's gradient (see key_bias_denom) and the loss, a sum with cancellation,
    measured against sum |last_hidden_state * probe|."""
    if name == "loss":
        return float(np.abs(ref["last_hidden_state"] * probe.double().numpy()).sum())
    return key_bias_denom(name, ref)


def key_bias_denom(name, ref):
    """The key bias's gradient is 0 in exact arithmetic (softmax is shift-invariant per row), so
    its relative error is noise over noise: measure it against the key weight's gradient norm."""
    for kb, kw in ((".attention.self.key.bias", ".attention.self.key.weight"),
                   (".attention.k_lin.bias", ".attention.k_lin.weight")):
        if name.endswith(kb):
            return float(np.linalg.norm(ref[name[: -len(kb)] + kw]))
    return None


def smelt(model_dir, inp, out, grad, threads):
    cmd = [SMELT, "run", "--model", model_dir, "--input", inp, "--output", out, "--threads", str(threads)]
    if grad:
        cmd.append("--grad")
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr, time.time() - t0


def run_case(c, keep=False):
    d = os.path.join(WORK, f"case{c['index']:04d}")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model, gen = build_model(c)
    ids, mask, tt, probe = make_inputs(c, gen)
    mdir = os.path.join(d, "model")
    if c["wdtype"] != "f32":
        model = model.to(torch.float16 if c["wdtype"] == "f16" else torch.bfloat16)
    model.save_pretrained(mdir, safe_serialization=True)
    saved = set(pt_load(os.path.join(mdir, "model.safetensors")).keys())
    model = model.float()  # HF reference runs on the rounded weights, in float32 / float64
    inp = {"input_ids": ids.to(DT[c["ids_dtype"]]), "probe": probe}
    if mask is not None:
        inp["attention_mask"] = mask.to(DT[c["mask_dtype"]])
    if tt is not None:
        inp["token_type_ids"] = tt.to(DT[c["tt_dtype"]])
    ipath = os.path.join(d, "in.safetensors")
    pt_save({k: v.contiguous() for k, v in inp.items()}, ipath)

    ref32 = hf_run(model, ids, mask, tt, probe, torch.float32)
    ref64 = hf_run(model, ids.clone(), mask, tt, probe.double(), torch.float64)
    model.float()
    ref32 = {k: v.numpy() for k, v in ref32.items()}
    ref64 = {k: v.numpy() for k, v in ref64.items()}

    rec = {"case": c, "status": "ok", "msgs": []}
    outs = {}
    for grad in (False, True):
        opath = os.path.join(d, f"out_{'grad' if grad else 'fwd'}.safetensors")
        rc, msg, dt = smelt(mdir, ipath, opath, grad, c["threads"])
        rec[f"time_{'grad' if grad else 'fwd'}"] = round(dt, 3)
        if rc != 0:
            rec["status"] = "fail"
            rec["msgs"].append(f"{'grad' if grad else 'fwd'} rc={rc}: {msg.strip()[-2000:]}")
            continue
        outs[grad] = {k: v for k, v in np_load(opath).items()}
    if rec["status"] != "ok":
        if not keep:
            shutil.rmtree(os.path.join(d, "model"), ignore_errors=True)
        return rec

    errs = {}  # name -> (ours vs f32, ours vs f64, hf32 vs f64)
    for grad, o in outs.items():
        tag = "grad:" if grad else "fwd:"
        names = ["last_hidden_state"] + (["pooler_output"] if "pooler_output" in ref32 else [])
        if grad:
            names += ["loss"] + sorted("grad." + n for n in saved)
        for n in names:
            if n not in o:
                rec["status"] = "fail"
                rec["msgs"].append(f"{tag} missing output {n}")
                continue
            if tuple(o[n].shape) != tuple(ref32[n].shape):
                rec["status"] = "fail"
                rec["msgs"].append(f"{tag} {n} shape {o[n].shape} vs {ref32[n].shape}")
                continue
            den64 = denominator(n, ref64, probe)
            den32 = den64 if n == "loss" else denominator(n, ref32, probe)
            errs[tag + n] = (rel(o[n], ref32[n], den32), rel(o[n], ref64[n], den64), rel(ref32[n], ref64[n], den64))
        extra = set(o) - set(names)
        if extra:
            rec["msgs"].append(f"{tag} extra outputs {sorted(extra)}")
        if grad:
            missing_grads = {"grad." + n for n in saved} - set(o)
            if missing_grads:
                rec["msgs"].append(f"missing grads {sorted(missing_grads)}")
    # forward with and without --grad should agree
    if False in outs and True in outs:
        rec["fwd_vs_grad_lhs"] = rel(outs[False]["last_hidden_state"], outs[True]["last_hidden_state"])

    def worst(pred):
        items = [(k, v) for k, v in errs.items() if pred(k)]
        if not items:
            return None
        k, v = max(items, key=lambda kv: kv[1][0])
        return {"tensor": k, "vs32": v[0], "vs64": v[1], "hf32_vs64": v[2]}

    rec["worst_out"] = worst(lambda k: not k.startswith("grad:grad."))
    rec["worst_grad"] = worst(lambda k: k.startswith("grad:grad."))
    rec["worst_out_vs64"] = max((v[1] for k, v in errs.items() if not k.startswith("grad:grad.")), default=None)
    rec["worst_grad_vs64"] = max((v[1] for k, v in errs.items() if k.startswith("grad:grad.")), default=None)
    over = []
    for k, (e32, e64, h64) in errs.items():
        tol = GRAD_TOL if k.startswith("grad:grad.") else OUT_TOL
        if e32 > tol:
            over.append({"tensor": k, "vs32": e32, "vs64": e64, "hf32_vs64": h64})
    if over:
        # How far float32 rounding alone moves each result: float64 on weights rounded as
        # float32 rounds them. Suspect only what is far beyond both that and HF's float32.
        sens = f64_sensitivity(model, ids, mask, tt, probe, ref64)
        for o in over:
            tag, n = o["tensor"].split(":", 1)
            den = denominator(n, ref64, probe)
            o["f64_sensitivity"] = max(rel(r[n], ref64[n], den) for r in sens)
            o["suspect"] = o["vs64"] > 3 * o["hf32_vs64"] and o["vs64"] > 30 * o["f64_sensitivity"]
    rec["over_tol"] = over
    rec["errs"] = errs
    if any(o["suspect"] for o in over):
        rec["status"] = "suspect"
    elif over:
        rec["status"] = "over_tol_illcond"
    if not keep and rec["status"] == "ok":
        shutil.rmtree(d)
    return rec


def main():
    global INIT, WORK, SMELT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=240)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--only", default=None, help="comma-separated case indices")
    ap.add_argument("--keep", action="store_true", help="keep every case's files")
    ap.add_argument("--init", choices=["fixture", "scaled"], default="fixture")
    ap.add_argument("--smelt", default=SMELT, help="the smelt binary (default: target/release/smelt)")
    ap.add_argument("--work", default=None, help="directory for case files and results.jsonl")
    a = ap.parse_args()
    INIT, SMELT = a.init, a.smelt
    if not os.path.isfile(SMELT):
        sys.exit(f"diffcheck: no smelt binary at {SMELT}; run cargo build --release -p smelt-bench")
    WORK = a.work or tempfile.mkdtemp(prefix=f"smelt-diffcheck-{a.init}-{a.seed}-")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    idx = [int(x) for x in a.only.split(",")] if a.only else range(a.cases)
    os.makedirs(WORK, exist_ok=True)
    results = os.path.join(WORK, "results.jsonl")
    t0 = time.time()
    counts, worst_out, worst_grad = {}, None, None
    with open(results, "w") as f:
        for i in idx:
            c = draw_case(i, a.seed)
            try:
                rec = run_case(c, keep=a.keep)
            except Exception as e:  # a harness error, not smelt's
                rec = {"case": c, "status": "harness_error", "msgs": [repr(e)]}
            f.write(json.dumps(rec) + "\n")
            f.flush()
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
            wo, wg = rec.get("worst_out"), rec.get("worst_grad")
            if wo and (worst_out is None or wo["vs32"] > worst_out[1]["vs32"]):
                worst_out = (i, wo)
            if wg and (worst_grad is None or wg["vs32"] > worst_grad[1]["vs32"]):
                worst_grad = (i, wg)
            s = f"[{i:4d}] {rec['status']:17s} {c['arch']:11s} H={c['hidden']:3d} nh={c['heads']:2d} I={c['inter']:3d} L={c['layers']} V={c['vocab']:3d} B={c['B']} T={c['T']:3d} mp={c['maxpos']:3d} w={c['wdtype']:4s} mask={c['mask_kind']}/{c['mask_dtype']} zr={int(c['zero_row'])} tt={int(c['token_types'])} th={c['threads']}"
            if wo:
                s += f" | out {wo['vs32']:.1e} ({wo['tensor']})"
            if wg:
                s += f" | grad {wg['vs32']:.1e} ({wg['tensor']}; vs64 {wg['vs64']:.1e} hf {wg['hf32_vs64']:.1e})"
            print(s, flush=True)
            for m in rec["msgs"]:
                print("      ", m[:600], flush=True)
    print(f"{len(idx)} cases in {time.time() - t0:.0f} s: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for label, w in (("outputs", worst_out), ("gradients", worst_grad)):
        if w:
            i, e = w
            print(f"worst {label}: case {i}, {e['tensor']}: {e['vs32']:.2e} against HF float32 "
                  f"(smelt against float64 {e['vs64']:.2e}, HF float32 against float64 {e['hf32_vs64']:.2e})")
    print(f"results: {results}")
    bad = sum(counts.get(k, 0) for k in ("fail", "suspect", "harness_error"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

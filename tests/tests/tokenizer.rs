//! Our WordPiece tokenizer against HF's fast BertTokenizer (all-MiniLM-L6-v2's vocabulary) on
//! the 326 texts and pairs, and the padded, truncated batches, that
//! `tests/reference/make_tokenizer_fixtures.py` saved; and its errors on bad files and input.

use smelt_engine::formats::json::{self, Json};
use smelt_model::text::{Tokenizer, Truncation};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tokenizer")
}

fn lines(name: &str) -> Vec<Json> {
    std::fs::read_to_string(fixtures().join(name))
        .unwrap()
        .lines()
        .map(|l| json::parse(l).unwrap())
        .collect()
}

fn ints(v: &Json) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as i64)
        .collect()
}

#[test]
fn ids_equal_hf_on_every_case() {
    let tokenizer = Tokenizer::from_dir(&fixtures()).unwrap();
    let cases = lines("cases.jsonl");
    assert!(cases.len() >= 300);
    let mut mismatches = Vec::new();
    for case in &cases {
        let text = case.get("text").and_then(Json::as_str).unwrap();
        let want = ints(case.get("ids").unwrap());
        let want_types = ints(case.get("token_type_ids").unwrap());
        let (ids, types) = match case.get("pair").and_then(Json::as_str) {
            Some(pair) => tokenizer.encode_pair(text, pair),
            None => {
                let ids = tokenizer.encode(text);
                let types = vec![0; ids.len()];
                (ids, types)
            }
        };
        let got: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let got_types: Vec<i64> = types.iter().map(|&i| i as i64).collect();
        if got != want || got_types != want_types {
            mismatches.push(format!("{text:?}\n  ours {got:?}\n  HF   {want:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}

#[test]
fn padded_truncated_batches_equal_hf() {
    let tokenizer = Tokenizer::from_dir(&fixtures()).unwrap();
    for case in lines("batches.jsonl") {
        let texts: Vec<&str> = case
            .get("texts")
            .and_then(Json::as_array)
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let max_len = case.get("max_length").and_then(Json::as_usize).unwrap();
        let enc = tokenizer
            .encode_batch(&texts, max_len, Truncation::Truncate)
            .unwrap();
        let flat = |key: &str| -> Vec<i64> {
            case.get(key)
                .and_then(Json::as_array)
                .unwrap()
                .iter()
                .flat_map(ints)
                .collect()
        };
        assert_eq!(enc.input_ids, flat("input_ids"), "{texts:?}");
        assert_eq!(enc.attention_mask, flat("attention_mask"), "{texts:?}");
        assert_eq!(enc.batch, texts.len());
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(
                enc.truncated[i],
                tokenizer.encode(text).len() > max_len,
                "{text:?}"
            );
        }
    }
}

#[test]
fn bad_files_and_input_are_clear_errors() {
    let tokenizer = Tokenizer::from_dir(&fixtures()).unwrap();
    let long = "word ".repeat(50);
    let err = tokenizer
        .encode_batch(&["fine", &long], 16, Truncation::Error)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "tokenize: text 1 has 52 tokens, more than the model's 16"
    );
    let enc = tokenizer
        .encode_batch(&["fine", &long], 16, Truncation::Truncate)
        .unwrap();
    assert_eq!(enc.truncated, [false, true]);
    assert!(tokenizer
        .encode_batch(&[], 16, Truncation::Truncate)
        .unwrap_err()
        .to_string()
        .contains("no texts"));

    // Emptied first: a folder left by an earlier run whose process had this id holds a
    // valid vocabulary.
    let dir = std::env::temp_dir().join(format!("smelt-tokenizer-errors-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    let err = |dir: &Path| Tokenizer::from_dir(dir).err().unwrap().to_string();
    assert!(err(&dir).contains("vocab.txt: cannot read the WordPiece vocabulary"));
    std::fs::write(dir.join("vocab.txt"), "[PAD]\n[CLS]\n[SEP]\nhello\n").unwrap();
    assert!(
        err(&dir).contains("the vocabulary has no unk_token '[UNK]'"),
        "{}",
        err(&dir)
    );
    std::fs::write(dir.join("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n").unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), "{\"do_lower_case\": tru").unwrap();
    assert!(err(&dir).contains("tokenizer_config.json: malformed JSON"));
    let config = dir.join("tokenizer_config.json");
    std::fs::write(&config, r#"{"do_lower_case": "false"}"#).unwrap();
    assert!(
        err(&dir).contains(r#""do_lower_case" must be true, false or null"#),
        "{}",
        err(&dir)
    );
    std::fs::write(&config, r#"{"do_lower_case": true}"#).unwrap();
    let small = Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(small.encode("Hello there"), [2, 4, 1, 3]);
    assert_eq!(
        small.max_len(),
        usize::MAX,
        "no model_max_length: no limit of its own"
    );
    // A token listed twice keeps its last line, as HF's loaders do; trailing spaces are trimmed.
    std::fs::write(
        dir.join("vocab.txt"),
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello \nhello\n",
    )
    .unwrap();
    assert_eq!(
        Tokenizer::from_dir(&dir).unwrap().encode("hello"),
        [2, 5, 3]
    );
    // Another tokenizer's class (a Japanese BERT's MeCab word splitting) is refused, not run
    // as BERT's.
    std::fs::write(&config, r#"{"tokenizer_class": "BertJapaneseTokenizer"}"#).unwrap();
    assert!(
        err(&dir).contains(
            r#""tokenizer_class" is "BertJapaneseTokenizer"; smelt tokenizes only as BertTokenizer"#
        ),
        "{}",
        err(&dir)
    );
    std::fs::write(&config, r#"{"tokenizer_class": "BertTokenizerFast"}"#).unwrap();
    assert!(Tokenizer::from_dir(&dir).is_ok());
    // A mask token the config names must be in the vocabulary (the default may be missing).
    std::fs::write(&config, r#"{"mask_token": "<mask>"}"#).unwrap();
    assert!(err(&dir).contains("the vocabulary has no mask_token '<mask>'"));
    std::fs::write(&config, "{}").unwrap();
    // added_tokens.json: a token past the vocabulary is refused; one of its lines is matched
    // whole.
    let added = dir.join("added_tokens.json");
    std::fs::write(&added, r#"{"[NEW]": 6}"#).unwrap();
    assert!(
        err(&dir).contains("added_tokens.json: added token '[NEW]' with id 6 is not a line of"),
        "{}",
        err(&dir)
    );
    std::fs::write(&added, r#"{"hello": 5.5}"#).unwrap();
    assert!(err(&dir).contains("token 'hello' has id 5.5, not a token id"));
    std::fs::write(&added, r#"{"hello": 5}"#).unwrap();
    assert_eq!(
        Tokenizer::from_dir(&dir).unwrap().encode("xhellox"),
        [2, 1, 5, 1, 3]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn special_tokens_in_text_stay_whole_even_by_the_thousand() {
    let tokenizer = Tokenizer::from_dir(&fixtures()).unwrap();
    let text = "[MASK]".repeat(20_000);
    let ids = tokenizer.encode(&text);
    assert_eq!(ids.len(), 20_002);
    assert!(ids[1..20_001].iter().all(|&id| id == 103));
    assert_eq!(
        tokenizer.encode("a[MASK]b [mask]"),
        [101, 1037, 103, 1038, 1031, 7308, 1033, 102]
    );
}

/// Tokens that `tokenizer_config.json` adds (`additional_special_tokens`, and
/// `added_tokens_decoder` as newer transformers save it, the standard five included) stay whole
/// where the text writes them, as HF keeps them; one that is not a line of `vocab.txt` at the
/// id it claims is an error naming it, never silently split.
#[test]
fn added_tokens_stay_whole_or_are_refused() {
    let dir = std::env::temp_dir().join(format!("smelt-tokenizer-added-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("vocab.txt"),
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n[\n]\ne\n##1\n[E1]\n",
    )
    .unwrap();
    let config = dir.join("tokenizer_config.json");
    let encode = |text: &str| Tokenizer::from_dir(&dir).unwrap().encode(text);
    std::fs::write(&config, r#"{"do_lower_case": true}"#).unwrap();
    assert_eq!(
        encode("hello [E1]"),
        [2, 5, 6, 8, 9, 7, 3],
        "split without the config"
    );
    std::fs::write(
        &config,
        r#"{"additional_special_tokens": ["[E1]"], "added_tokens_decoder": {"0": {"content": "[PAD]", "special": true}, "4": {"content": "[MASK]", "special": true}}}"#,
    )
    .unwrap();
    assert_eq!(encode("hello [E1]"), [2, 5, 10, 3]);
    std::fs::write(
        &config,
        r#"{"added_tokens_decoder": {"10": {"content": "[E1]", "special": true}}}"#,
    )
    .unwrap();
    assert_eq!(encode("hello [E1]"), [2, 5, 10, 3]);
    let err = |json: &str| {
        std::fs::write(&config, json).unwrap();
        Tokenizer::from_dir(&dir).err().unwrap().to_string()
    };
    let e = err(r#"{"additional_special_tokens": ["[E2]"]}"#);
    assert!(e.contains("added token '[E2]' is not a line of"), "{e}");
    let e = err(r#"{"added_tokens_decoder": {"11": {"content": "[E1]"}}}"#);
    assert!(
        e.contains("added token '[E1]' with id 11 is not a line of"),
        "{e}"
    );
    let e = err(r#"{"added_tokens_decoder": {"x": {"content": "[E1]"}}}"#);
    assert!(e.contains("key \"x\" is not a token id"), "{e}");
    let e = err(r#"{"additional_special_tokens": "[E1]"}"#);
    assert!(e.contains("must be a list of tokens"), "{e}");
    let e = err(r#"{"additional_special_tokens": [""]}"#);
    assert!(e.contains("is the empty string"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

//! File formats: JSON parsing and writing, safetensors reading (in place and converted),
//! writing, validation messages, and fuzzing of both readers.

use smelt_engine::formats::json::{self, Json, MAX_DEPTH};
use smelt_engine::formats::safetensors::{
    write, write_tensors, Dtype, SafeTensors, TensorData, MAX_HEADER_ARRAY, MAX_HEADER_BYTES,
};
use smelt_engine::{Arena, Error, Storage};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

mod common;
use common::Rng;

// ---------------------------------------------------------------------------------------------
// JSON

const BERT_CONFIG: &str = r#"{
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1,
  "hidden_act": "gelu",
  "hidden_size": 384,
  "initializer_range": 0.02,
  "layer_norm_eps": 1e-12,
  "num_attention_heads": 12,
  "gradient_checkpointing": false,
  "pad_token_id": 0,
  "classifier_dropout": null,
  "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}
}"#;

#[test]
fn json_reads_a_config() {
    let config = json::parse(BERT_CONFIG).unwrap();
    assert_eq!(config.get("hidden_size").unwrap().as_usize(), Some(384));
    assert_eq!(config.get("layer_norm_eps").unwrap().as_f64(), Some(1e-12));
    assert_eq!(config.get("hidden_act").unwrap().as_str(), Some("gelu"));
    assert_eq!(
        config.get("gradient_checkpointing").unwrap().as_bool(),
        Some(false)
    );
    assert_eq!(config.get("classifier_dropout"), Some(&Json::Null));
    let archs = config.get("architectures").unwrap().as_array().unwrap();
    assert_eq!(archs, &[Json::String("BertModel".into())]);
    let labels = config.get("id2label").unwrap().as_object().unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[1].0, "1");
    assert_eq!(config.get("missing"), None);
    assert_eq!(Json::Null.get("x"), None);
    assert_eq!(config.get("hidden_act").unwrap().as_usize(), None);
}

#[test]
fn json_keeps_the_last_of_repeated_keys() {
    let value = json::parse(r#"{"a": 1, "a": 2}"#).unwrap();
    assert_eq!(value.get("a").unwrap().as_f64(), Some(2.0));
    assert_eq!(value.as_object().unwrap().len(), 2);
}

#[test]
fn json_resolves_escapes_and_surrogate_pairs() {
    let value = json::parse(r#""\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00 é""#).unwrap();
    assert_eq!(value.as_str(), Some("\"\\/\u{8}\u{c}\n\r\tAé😀 é"));
    let upper = json::parse(r#""\uD83D\uDE00""#).unwrap();
    assert_eq!(upper.as_str(), Some("😀"));
}

#[test]
fn json_reads_numbers() {
    for (text, expected) in [
        ("0", 0.0),
        ("-0", -0.0),
        ("7", 7.0),
        ("-12.25e-1", -1.225),
        ("1.5e3", 1500.0),
        ("1E+2", 100.0),
        ("2e-2", 0.02),
        ("123456789012", 123456789012.0),
        ("1.7976931348623157e308", f64::MAX),
        ("5e-324", 5e-324),
        ("1e-400", 0.0),
    ] {
        assert_eq!(
            json::parse(text).unwrap().as_f64(),
            Some(expected),
            "{text}"
        );
    }
}

#[test]
fn json_as_usize_takes_only_exact_non_negative_integers() {
    let usize_of = |text: &str| json::parse(text).unwrap().as_usize();
    assert_eq!(usize_of("3"), Some(3));
    assert_eq!(usize_of("3.0"), Some(3));
    assert_eq!(usize_of("-0"), Some(0));
    assert_eq!(usize_of("9007199254740991"), Some(9007199254740991));
    assert_eq!(usize_of("9007199254740992"), None);
    assert_eq!(usize_of("3.5"), None);
    assert_eq!(usize_of("-1"), None);
    assert_eq!(usize_of("1e300"), None);
    assert_eq!(usize_of("\"3\""), None);
}

#[test]
fn json_writes_compact_text_that_reads_back() {
    let text = r#" { "a" : [ 1 , 2.5 , -3 , 1e300 , 1e-7 , -0.0, 0.1 ] , "b" : "x\"\\\n\u0001\u001fé😀" , "c" : null , "d" : true , "e" : { } , "f" : [ ] } "#;
    let value = json::parse(text).unwrap();
    let written = value.to_string();
    assert_eq!(
        written,
        r#"{"a":[1,2.5,-3,1e300,1e-7,-0.0,0.1],"b":"x\"\\\n\u0001\u001fé😀","c":null,"d":true,"e":{},"f":[]}"#
    );
    assert_eq!(json::parse(&written).unwrap(), value);
    assert_eq!(Json::Number(f64::NAN).to_string(), "null");
    assert_eq!(Json::Number(f64::INFINITY).to_string(), "null");
    assert_eq!(
        Json::String("\u{8}\u{c}\r\t".into()).to_string(),
        r#""\b\f\r\t""#
    );
}

#[test]
fn json_errors_say_what_and_where() {
    let cases: &[(&str, &str)] = &[
        ("", "expected a value at line 1, column 1"),
        ("  \n ", "expected a value at line 2, column 2"),
        ("{\"a\": 1,}", "expected a string key at line 1, column 9"),
        ("[1, 2,]", "expected a value at line 1, column 7"),
        ("[1 2]", "expected ',' or ']' at line 1, column 4"),
        (
            "{\n  \"a\": 1\n  \"b\": 2\n}",
            "expected ',' or '}' at line 3, column 3",
        ),
        ("{\"a\" 1}", "expected ':' at line 1, column 6"),
        ("{1: 2}", "expected a string key at line 1, column 2"),
        ("[1] x", "expected the end of the input at line 1, column 5"),
        ("{} {}", "expected the end of the input at line 1, column 4"),
        ("[\"é\", x]", "expected a value at line 1, column 7"),
        ("\"abc", "unterminated string at line 1, column 1"),
        (
            "\"a\nb\"",
            "unescaped control character U+000A in a string at line 1, column 3",
        ),
        ("01", "expected the end of the input at line 1, column 2"),
        ("1.", "expected a digit after '.' at line 1, column 3"),
        ("-", "expected a digit at line 1, column 2"),
        ("-a", "expected a digit at line 1, column 2"),
        ("1e", "expected a digit in the exponent at line 1, column 3"),
        ("1e+", "expected a digit in the exponent at line 1, column 4"),
        (".5", "expected a value at line 1, column 1"),
        ("+1", "expected a value at line 1, column 1"),
        ("NaN", "expected a value at line 1, column 1"),
        ("Infinity", "expected a value at line 1, column 1"),
        ("tru", "expected 'true' at line 1, column 1"),
        ("[nul]", "expected 'null' at line 1, column 2"),
        ("\u{feff}{}", "expected a value at line 1, column 1"),
        ("{} // comment", "expected the end of the input at line 1, column 4"),
        ("\"\\x\"", "invalid escape at line 1, column 2"),
        (
            "\"\\u12\"",
            "expected 4 hex digits after \\u at line 1, column 2",
        ),
        (
            "\"\\ud83d\"",
            "unpaired surrogate \\uD83D: a low surrogate \\uDC00..\\uDFFF must follow at line 1, column 2",
        ),
        (
            "\"\\ud83d\\u0041\"",
            "unpaired surrogate \\uD83D: a low surrogate \\uDC00..\\uDFFF must follow at line 1, column 2",
        ),
        (
            "\"\\ude00\"",
            "unpaired surrogate \\uDE00: no high surrogate before it at line 1, column 2",
        ),
        (
            "[1e400]",
            "number 1e400 is outside the f64 range at line 1, column 2",
        ),
    ];
    for (text, expected) in cases {
        let err = json::parse(text).unwrap_err();
        assert_eq!(err.to_string(), *expected, "input {text:?}");
    }
    let err = json::parse("{\n  \"a\": 1\n  \"b\": 2\n}").unwrap_err();
    assert_eq!((err.line, err.column), (3, 3));
    assert_eq!(err.message, "expected ',' or '}'");
}

#[test]
fn json_limits_nesting_depth() {
    let nested = |depth: usize| "[".repeat(depth) + &"]".repeat(depth);
    assert!(json::parse(&nested(MAX_DEPTH)).is_ok());
    let err = json::parse(&nested(MAX_DEPTH + 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "arrays and objects nested deeper than {MAX_DEPTH} levels at line 1, column {}",
            MAX_DEPTH + 1
        )
    );
    let objects = "{\"a\":".repeat(MAX_DEPTH + 1) + "1" + &"}".repeat(MAX_DEPTH + 1);
    assert!(json::parse(&objects).is_err());
    // Far deeper than any stack would survive without the limit.
    assert!(json::parse(&"[".repeat(1_000_000)).is_err());
    assert!(json::parse(&"{\"a\":".repeat(1_000_000)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Safetensors

fn temp_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("formats-{name}.safetensors"))
}

/// A file with header text `header` (unpadded) and data buffer `data`.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn format_message(result: Result<SafeTensors, Error>) -> String {
    match result {
        Err(e @ Error::Format { .. }) => e.to_string(),
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn dtypes_name_and_size_as_the_format_does() {
    for dtype in Dtype::ALL {
        assert_eq!(Dtype::from_name(dtype.name()), Some(dtype));
        assert_eq!(dtype.to_string(), dtype.name());
    }
    assert_eq!(Dtype::from_name("BF16"), Some(Dtype::Bf16));
    assert_eq!(Dtype::from_name("F8_E4M3").map(Dtype::size), Some(1));
    assert_eq!(Dtype::I64.size(), 8);
    assert_eq!(Dtype::from_name("f32"), None);
}

#[test]
fn writes_the_layout_of_the_python_library() {
    // Bytes of `safetensors.numpy.save_file` (safetensors 0.8) for the same tensors.
    let path = temp_path("python-layout");
    let half_two = 0x4000u16.to_le_bytes();
    write(
        &path,
        &[
            ("b", Dtype::F32, &[2], &f32_bytes(&[1.5, 2.0])),
            ("a", Dtype::I64, &[3], bytemuck::cast_slice(&[0i64, 1, 2])),
            ("c", Dtype::I8, &[1], &[1]),
            ("s", Dtype::F16, &[], &half_two),
        ],
        &[("k", "v")],
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let header = r#"{"__metadata__":{"k":"v"},"a":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},"b":{"dtype":"F32","shape":[2],"data_offsets":[24,32]},"s":{"dtype":"F16","shape":[],"data_offsets":[32,34]},"c":{"dtype":"I8","shape":[1],"data_offsets":[34,35]}}     "#;
    assert_eq!(header.len(), 248);
    assert_eq!(&bytes[..8], &248u64.to_le_bytes());
    assert_eq!(std::str::from_utf8(&bytes[8..256]).unwrap(), header);
    assert_eq!(bytes.len(), 256 + 35);
}

#[test]
fn round_trips_typed_tensors_and_metadata() {
    let path = temp_path("round-trip");
    let weights: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
    let ids = [101i64, -7, 0, i64::MAX];
    write_tensors(
        &path,
        &[
            ("weight", &[2, 3], TensorData::F32(&weights)),
            ("ids", &[2, 2], TensorData::I64(&ids)),
            ("scalar", &[], TensorData::F32(&[42.0])),
            ("empty", &[0, 4], TensorData::F32(&[])),
        ],
        &[("format", "pt"), ("note", "a \"quoted\"\nline")],
    )
    .unwrap();
    let file = SafeTensors::open(&path).unwrap();
    let arena = Arena::new();
    assert_eq!(file.file(), path.display().to_string());
    assert_eq!(
        file.names().collect::<Vec<_>>(),
        ["empty", "ids", "scalar", "weight"]
    );
    assert_eq!(
        file.metadata(),
        &[
            ("format".to_string(), "pt".to_string()),
            ("note".to_string(), "a \"quoted\"\nline".to_string())
        ]
    );
    let info = file.info("weight").unwrap();
    assert_eq!(
        (info.dtype, info.shape.as_slice()),
        (Dtype::F32, &[2, 3][..])
    );
    assert_eq!(info.range.len(), 24);
    assert!(file.info("nope").is_none());

    let weight = file.tensor_f32("weight").unwrap();
    assert_eq!(weight.dims(), &[2, 3]);
    assert_eq!(weight.to_vec(&arena).unwrap(), weights);
    assert_eq!(file.tensor_i64("ids").unwrap(), (vec![2, 2], ids.to_vec()));
    let scalar = file.tensor_f32("scalar").unwrap();
    assert_eq!(scalar.dims(), &[] as &[usize]);
    assert_eq!(scalar.numel(), 1);
    assert_eq!(scalar.to_vec(&arena).unwrap(), [42.0]);
    let empty = file.tensor_f32("empty").unwrap();
    assert_eq!((empty.dims(), empty.numel()), (&[0, 4][..], 0));
}

#[test]
fn converts_every_float_and_integer_dtype() {
    let path = temp_path("dtypes");
    let f16: Vec<u8> = [0x3c00u16, 0xc100, 0x7bff, 0x0001, 0x7c00, 0x7e00, 0x8000]
        .iter()
        .flat_map(|b| b.to_le_bytes())
        .collect();
    let bf16: Vec<u8> = [0x3f80u16, 0xc020, 0x7f80, 0xff80, 0x7fc0, 0x0001]
        .iter()
        .flat_map(|b| b.to_le_bytes())
        .collect();
    let f64s: Vec<u8> = [1.0f64, -2.5, 1e-3, 1e300]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let i32s: Vec<u8> = [1i32, -1, i32::MAX, i32::MIN]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let u32s: Vec<u8> = u32::MAX.to_le_bytes().to_vec();
    let i16s: Vec<u8> = [-300i16, 300]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let u16s: Vec<u8> = 65535u16.to_le_bytes().to_vec();
    let f8 = [0x38u8];
    write(
        &path,
        &[
            ("f16", Dtype::F16, &[7], &f16),
            ("bf16", Dtype::Bf16, &[2, 3], &bf16),
            ("f64", Dtype::F64, &[4], &f64s),
            ("i32", Dtype::I32, &[4], &i32s),
            ("u32", Dtype::U32, &[1], &u32s),
            ("i16", Dtype::I16, &[2], &i16s),
            ("u16", Dtype::U16, &[1], &u16s),
            ("i8", Dtype::I8, &[3], &[0x80, 0xff, 0x7f]),
            ("u8", Dtype::U8, &[3], &[0, 200, 255]),
            ("bool", Dtype::Bool, &[3], &[0, 1, 1]),
            ("f8", Dtype::F8E4M3, &[1], &f8),
        ],
        &[],
    )
    .unwrap();
    let file = SafeTensors::open(&path).unwrap();
    assert!(file.metadata().is_empty());
    let arena = Arena::new();
    let floats = |name: &str| file.tensor_f32(name).unwrap().to_vec(&arena).unwrap();

    let half = floats("f16");
    assert_eq!(&half[..3], &[1.0, -2.5, 65504.0]);
    assert_eq!(half[3], 2f32.powi(-24));
    assert!(
        (half[3] - 6e-8).abs() < 1e-9,
        "the smallest f16 subnormal is about 6e-8"
    );
    assert_eq!(half[4], f32::INFINITY);
    assert!(half[5].is_nan());
    assert_eq!(half[6].to_bits(), (-0.0f32).to_bits());

    let brain = file.tensor_f32("bf16").unwrap();
    assert_eq!(brain.dims(), &[2, 3]);
    let brain = brain.to_vec(&arena).unwrap();
    assert_eq!(&brain[..4], &[1.0, -2.5, f32::INFINITY, f32::NEG_INFINITY]);
    assert!(brain[4].is_nan());
    assert_eq!(brain[5], f32::from_bits(0x0001_0000));

    assert_eq!(floats("f64"), [1.0, -2.5, 1e-3, f32::INFINITY]);
    let ints = |name: &str| file.tensor_i64(name).unwrap().1;
    assert_eq!(
        ints("i32"),
        [1, -1, i64::from(i32::MAX), i64::from(i32::MIN)]
    );
    assert_eq!(ints("u32"), [i64::from(u32::MAX)]);
    assert_eq!(ints("i16"), [-300, 300]);
    assert_eq!(ints("u16"), [65535]);
    assert_eq!(ints("i8"), [-128, -1, 127]);
    assert_eq!(ints("u8"), [0, 200, 255]);
    assert_eq!(ints("bool"), [0, 1, 1]);

    let name = path.display().to_string();
    assert_eq!(
        file.tensor_f32("i32").unwrap_err().to_string(),
        format!("{name}: tensor 'i32' holds I32 values; tensor_f32 reads F32, F16, BF16 and F64")
    );
    assert!(file.tensor_f32("f8").is_err());
    assert_eq!(
        file.tensor_i64("f16").unwrap_err().to_string(),
        format!("{name}: tensor 'f16' holds F16 values; tensor_i64 reads I64, I32, U32, I16, U16, I8, U8 and BOOL")
    );
}

#[test]
fn aligned_f32_is_used_in_place_and_misaligned_is_copied() {
    let path = temp_path("in-place");
    let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
    write_tensors(
        &path,
        &[
            ("a", &[3, 4], TensorData::F32(&values)),
            ("b", &[2], TensorData::F32(&values[..2])),
        ],
        &[],
    )
    .unwrap();
    let file = SafeTensors::open(&path).unwrap();
    let arena = Arena::new();
    for name in ["a", "b"] {
        let tensor = file.tensor_f32(name).unwrap();
        assert!(
            matches!(tensor.storage(), Storage::External(_)),
            "{name}: {:?}",
            tensor.storage()
        );
        let info = file.info(name).unwrap();
        let stored = &file.data()[info.range.clone()];
        let seen = tensor.data(&arena).unwrap();
        assert_eq!(
            seen.as_ptr().cast::<u8>(),
            stored.as_ptr(),
            "{name} not in place"
        );
        assert_eq!(seen.len() * 4, stored.len());
    }
    // The tensor keeps the mapping alive after the file handle is gone.
    let a = file.tensor_f32("a").unwrap();
    drop(file);
    assert_eq!(a.to_vec(&arena).unwrap(), values);

    // A header of 10 bytes puts the data at file offset 18: not 4-byte aligned.
    let header = r#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#;
    let header = format!("{header}{}", " ".repeat(10 - (8 + header.len()) % 4));
    assert_eq!((8 + header.len()) % 4, 2);
    let misaligned = temp_path("misaligned");
    std::fs::write(
        &misaligned,
        raw_file(&header, &f32_bytes(&[1.0, -2.0, 3.5])),
    )
    .unwrap();
    let file = SafeTensors::open(&misaligned).unwrap();
    let x = file.tensor_f32("x").unwrap();
    assert!(matches!(x.storage(), Storage::Host(_)));
    assert_eq!(x.to_vec(&arena).unwrap(), [1.0, -2.0, 3.5]);
}

#[test]
fn missing_tensors_list_the_likeliest_names() {
    let header = r#"{"bert.embeddings.word_embeddings.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"c":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},"d":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#;
    let file = SafeTensors::from_bytes("model.safetensors", raw_file(header, &[0; 20])).unwrap();
    assert_eq!(
        file.tensor_f32("embeddings.word_embeddings.weight")
            .unwrap_err()
            .to_string(),
        "model.safetensors: no tensor 'embeddings.word_embeddings.weight' (it has 'bert.embeddings.word_embeddings.weight', 'a', 'b', 'c', ... 5 in all)"
    );
    let empty = SafeTensors::from_bytes("e.safetensors", raw_file("{}", &[])).unwrap();
    assert_eq!(
        empty.tensor_i64("x").unwrap_err().to_string(),
        "e.safetensors: no tensor 'x' (it has no tensors)"
    );
}

#[test]
fn more_dimensions_than_the_engine_holds_are_an_error() {
    let header = r#"{"x":{"dtype":"F32","shape":[1,1,1,1,1,1,1],"data_offsets":[0,4]}}"#;
    let file = SafeTensors::from_bytes("deep", raw_file(header, &[0; 4])).unwrap();
    assert_eq!(
        file.tensor_f32("x").unwrap_err().to_string(),
        "deep: tensor 'x': shape [1, 1, 1, 1, 1, 1, 1] has 7 dimensions, more than the engine's 6"
    );
}

/// An empty tensor whose other dimensions multiply past `usize` reads as a shape error, not
/// an overflow in its strides.
#[test]
fn empty_tensors_with_overflowing_dimensions_are_an_error() {
    let big = 1u64 << 32;
    let header =
        format!(r#"{{"x":{{"dtype":"F32","shape":[0,{big},{big}],"data_offsets":[0,0]}}}}"#);
    let file = SafeTensors::from_bytes("empty", raw_file(&header, &[])).unwrap();
    let err = file.tensor_f32("x").unwrap_err().to_string();
    assert_eq!(
        err,
        "empty: tensor 'x': Shape::new: [0, 4294967296, 4294967296]: the product of its non-zero dimensions does not fit in usize"
    );
}

#[test]
fn malformed_files_say_what_is_wrong() {
    let entry = |name: &str, dtype: &str, shape: &str, offsets: &str| {
        format!(r#""{name}":{{"dtype":{dtype},"shape":{shape},"data_offsets":{offsets}}}"#)
    };
    let good = entry("x", "\"F32\"", "[2,3]", "[0,24]");
    let header_file = |header: &str, data_len: usize| raw_file(header, &vec![0; data_len]);
    let mut long_header = 64u64.to_le_bytes().to_vec();
    long_header.extend_from_slice(b"{}");
    let mut huge_header = u64::MAX.to_le_bytes().to_vec();
    huge_header.extend_from_slice(b"{}");
    let mut over_limit = (MAX_HEADER_BYTES as u64 + 1).to_le_bytes().to_vec();
    over_limit.extend_from_slice(b"{}");
    let mut not_utf8 = raw_file("{\"\u{e9}\":1}", &[]);
    not_utf8[10] = 0xff;

    let cases: Vec<(Vec<u8>, String)> =
        vec![
        (vec![1, 2, 3, 4, 5], "file is 5 bytes, shorter than the 8-byte header length".into()),
        (
            long_header,
            "header length 64 runs past the end of the file (10 bytes)".into(),
        ),
        (
            huge_header,
            format!("header length {} is over the limit of 100000000 bytes", u64::MAX),
        ),
        (
            over_limit,
            "header length 100000001 is over the limit of 100000000 bytes".into(),
        ),
        (
            not_utf8,
            "header is not UTF-8 (invalid byte at header offset 2)".into(),
        ),
        (
            header_file("", 0),
            "header is not valid JSON: expected a value at line 1, column 1".into(),
        ),
        (
            header_file(&format!("{{{good},}}"), 24),
            "header is not valid JSON: expected a string key at line 1, column 58".into(),
        ),
        (header_file("[]", 0), "header is an array, not an object".into()),
        (
            header_file(r#"{"x":[1]}"#, 0),
            "tensor 'x': entry is an array, not an object".into(),
        ),
        (
            header_file(r#"{"x":{"shape":[1],"data_offsets":[0,4]}}"#, 4),
            "tensor 'x': no \"dtype\"".into(),
        ),
        (
            header_file(r#"{"x":{"dtype":"F32","data_offsets":[0,4]}}"#, 4),
            "tensor 'x': no \"shape\"".into(),
        ),
        (
            header_file(r#"{"x":{"dtype":"F32","shape":[1]}}"#, 4),
            "tensor 'x': no \"data_offsets\"".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "32", "[1]", "[0,4]")), 4),
            "tensor 'x': \"dtype\" is a number, not a string".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "\"F17\"", "[1]", "[0,4]")), 4),
            "tensor 'x': unknown dtype \"F17\"".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "\"F32\"", "\"[1]\"", "[0,4]")), 4),
            "tensor 'x': \"shape\" is a string, not an array".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "\"F32\"", "[1,-2]", "[0,4]")), 4),
            "tensor 'x': \"shape\" holds -2, not a non-negative integer".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "\"F32\"", "[1.5]", "[0,4]")), 4),
            "tensor 'x': \"shape\" holds 1.5, not a non-negative integer".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "\"F32\"", "[null]", "[0,4]")), 4),
            "tensor 'x': \"shape\" holds null, not a non-negative integer".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "\"F32\"", "[1]", "[0,4,8]")), 8),
            "tensor 'x': \"data_offsets\" holds 3 numbers, not 2".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "\"F32\"", "[1]", "{}")), 8),
            "tensor 'x': \"data_offsets\" is an object, not an array".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "\"F32\"", "[0]", "[8,4]")), 8),
            "tensor 'x': data_offsets [8, 4] begin after they end".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "\"F32\"", "[1]", "[4,8]")), 6),
            "tensor 'x': data_offsets [4, 8] run past the end of the data (6 bytes)".into(),
        ),
        (
            header_file(&format!("{{{}}}", entry("x", "\"F32\"", "[2,3]", "[0,20]")), 24),
            "tensor 'x': shape [2, 3] of F32 needs 24 bytes, data_offsets give 20".into(),
        ),
        (
            header_file(
                &format!(
                    "{{{}}}",
                    entry("x", "\"F64\"", "[4294967296,4294967296]", "[0,8]")
                ),
                8,
            ),
            "tensor 'x': shape [4294967296, 4294967296] of F64 has more bytes than fit in usize"
                .into(),
        ),
        (
            header_file(
                &format!(
                    "{{{},{}}}",
                    entry("a", "\"F32\"", "[4]", "[0,16]"),
                    entry("b", "\"F32\"", "[2]", "[12,20]")
                ),
                20,
            ),
            "tensors 'a' (bytes 0..16) and 'b' (bytes 12..20) overlap".into(),
        ),
        (
            header_file(
                &format!(
                    "{{{},{}}}",
                    entry("a", "\"U8\"", "[8]", "[0,8]"),
                    entry("b", "\"U8\"", "[2]", "[4,6]")
                ),
                8,
            ),
            "tensors 'a' (bytes 0..8) and 'b' (bytes 4..6) overlap".into(),
        ),
        (
            header_file(
                &format!(
                    "{{{},{}}}",
                    entry("x", "\"F32\"", "[1]", "[0,4]"),
                    entry("x", "\"F32\"", "[1]", "[4,8]")
                ),
                8,
            ),
            "tensor 'x' appears twice in the header".into(),
        ),
        (
            header_file(r#"{"__metadata__":["a"]}"#, 0),
            "\"__metadata__\" is an array, not an object of strings".into(),
        ),
        (
            header_file(r#"{"__metadata__":{"k":1}}"#, 0),
            "\"__metadata__\" key 'k' holds a number, not a string".into(),
        ),
        (
            header_file(r#"{"__metadata__":{},"__metadata__":{}}"#, 0),
            "\"__metadata__\" appears twice in the header".into(),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            format_message(SafeTensors::from_bytes("bad.safetensors", bytes)),
            format!("bad.safetensors: {expected}")
        );
    }

    // Empty tensors may share an offset, and gaps between tensors are allowed.
    let fine = format!(
        "{{{},{},{}}}",
        entry("a", "\"F32\"", "[0]", "[4,4]"),
        entry("b", "\"F32\"", "[1]", "[0,4]"),
        entry("c", "\"F32\"", "[1]", "[8,12]")
    );
    assert!(SafeTensors::from_bytes("ok", header_file(&fine, 12)).is_ok());
}

#[test]
fn io_failures_name_the_file() {
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no/such/dir/x.safetensors");
    let name = missing.display().to_string();
    match SafeTensors::open(&missing) {
        Err(Error::Io { file, detail }) => {
            assert_eq!(file, name);
            assert!(detail.starts_with("cannot open: "), "{detail}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    match write_tensors(&missing, &[("x", &[1], TensorData::F32(&[1.0]))], &[]) {
        Err(Error::Io { file, detail }) => {
            assert_eq!(file, name);
            assert!(detail.starts_with("cannot write: "), "{detail}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn the_writer_checks_its_input() {
    let path = temp_path("bad-input");
    let message = |result: Result<(), Error>| match result {
        Err(e @ Error::Format { .. }) => e.to_string(),
        other => panic!("expected a format error, got {other:?}"),
    };
    let name = path.display();
    assert_eq!(
        message(write_tensors(
            &path,
            &[("x", &[2, 3], TensorData::F32(&[0.0; 5]))],
            &[]
        )),
        format!("{name}: tensor 'x': shape [2, 3] of F32 needs 24 bytes, got 20")
    );
    assert_eq!(
        message(write(
            &path,
            &[("x", Dtype::U8, &[usize::MAX, 2], &[])],
            &[]
        )),
        format!(
            "{name}: tensor 'x': shape [{}, 2] of U8 has more bytes than fit in usize",
            usize::MAX
        )
    );
    assert_eq!(
        message(write(&path, &[("x", Dtype::U8, &[1 << 60, 0], &[])], &[])),
        format!(
            "{name}: tensor 'x': {} is too large to store exactly in a JSON header",
            1u64 << 60
        )
    );
    assert_eq!(
        message(write(
            &path,
            &[("x", Dtype::U8, &[1], &[1]), ("x", Dtype::U8, &[1], &[2])],
            &[]
        )),
        format!("{name}: tensor 'x' is given twice")
    );
    assert_eq!(
        message(write(
            &path,
            &[("__metadata__", Dtype::U8, &[1], &[1])],
            &[]
        )),
        format!("{name}: a tensor cannot be named '__metadata__'")
    );
    assert_eq!(
        message(write(&path, &[], &[("k", "1"), ("k", "2")])),
        format!("{name}: metadata key 'k' is given twice")
    );
    // An empty file is valid.
    write(&path, &[], &[]).unwrap();
    let file = SafeTensors::open(&path).unwrap();
    assert_eq!(file.names().len(), 0);
    assert_eq!(std::fs::read(&path).unwrap().len(), 16);
}

// ---------------------------------------------------------------------------------------------
// Fuzzing

/// A small valid file holding every kind of tensor the readers convert.
fn fuzz_seed_file() -> Vec<u8> {
    let path = temp_path("fuzz-seed");
    let f16: Vec<u8> = [0x3c00u16, 0x0001, 0x7c00]
        .iter()
        .flat_map(|b| b.to_le_bytes())
        .collect();
    let bf16: Vec<u8> = [0x3f80u16, 0x7fc0]
        .iter()
        .flat_map(|b| b.to_le_bytes())
        .collect();
    let ids: Vec<u8> = [1i64, 2, 3, 4]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mask: Vec<u8> = [1i32, 1, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    write(
        &path,
        &[
            (
                "w",
                Dtype::F32,
                &[2, 3],
                &f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            ),
            ("h", Dtype::F16, &[3], &f16),
            ("b", Dtype::Bf16, &[1, 2], &bf16),
            ("d", Dtype::F64, &[], &2.5f64.to_le_bytes()),
            ("ids", Dtype::I64, &[2, 2], &ids),
            ("mask", Dtype::I32, &[3], &mask),
            ("u", Dtype::U8, &[2], &[7, 9]),
        ],
        &[("format", "pt")],
    )
    .unwrap();
    std::fs::read(&path).unwrap()
}

/// Applies one random mutation to `bytes` and says what it did.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let header_end = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .map_or(0, |n| {
            8u64.saturating_add(n).min(bytes.len() as u64) as usize
        });
    let len = bytes.len().max(1);
    match rng.below(9) {
        0 => {
            let (at, bit) = (rng.below(len), rng.below(8));
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 1 << bit;
            }
            format!("flip bit {bit} of byte {at}")
        }
        1 => {
            let (at, value) = (rng.below(len), rng.next() as u8);
            if let Some(b) = bytes.get_mut(at) {
                *b = value;
            }
            format!("set byte {at} to {value:#04x}")
        }
        2 => {
            let keep = rng.below(len);
            bytes.truncate(keep);
            format!("truncate to {keep} bytes")
        }
        3 => {
            let at = rng.below(bytes.len() + 1);
            let count = 1 + rng.below(8);
            let insert: Vec<u8> = (0..count).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, insert.iter().copied());
            format!("insert {insert:?} at {at}")
        }
        4 => {
            let n = bytes.len() as u64;
            let current = header_end.saturating_sub(8) as u64;
            let random = rng.next();
            let value = *rng.pick(&[
                0,
                1,
                2,
                n.saturating_sub(8),
                n.saturating_sub(7),
                n,
                current.wrapping_add(1),
                current.wrapping_sub(1),
                current.wrapping_add(4),
                MAX_HEADER_BYTES as u64,
                MAX_HEADER_BYTES as u64 + 1,
                1 << 32,
                1 << 63,
                u64::MAX,
                random,
            ]);
            if bytes.len() >= 8 {
                bytes[..8].copy_from_slice(&value.to_le_bytes());
            }
            format!("set the header length to {value}")
        }
        5 | 6 if header_end > 8 => {
            // Inside the JSON: a digit for a digit (shapes, offsets), or a structural character.
            let at = 8 + rng.below(header_end - 8);
            let set: &[u8] = if bytes[at].is_ascii_digit() && rng.below(4) != 0 {
                b"0123456789"
            } else {
                b"{}[]\",:-.eE0123456789 \\nu"
            };
            let value = *rng.pick(set);
            bytes[at] = value;
            format!("set header byte {at} to {:?}", value as char)
        }
        7 if header_end > 8 => {
            // Swap one dtype name for another, fixing the header length.
            let Ok(text) = std::str::from_utf8(&bytes[8..header_end]) else {
                return "no-op (header not UTF-8)".into();
            };
            let from = *rng.pick(&[
                "\"F32\"", "\"F16\"", "\"BF16\"", "\"I64\"", "\"I32\"", "\"U8\"", "\"F64\"",
            ]);
            let to = format!("\"{}\"", rng.pick(&Dtype::ALL).name());
            let text = text.replacen(from, &to, 1);
            let mut rebuilt = (text.len() as u64).to_le_bytes().to_vec();
            rebuilt.extend_from_slice(text.as_bytes());
            rebuilt.extend_from_slice(&bytes[header_end..]);
            *bytes = rebuilt;
            format!("replace dtype {from} with {to}")
        }
        _ => {
            // Grow or shrink the data buffer.
            if rng.below(2) == 0 {
                let count = 1 + rng.below(16);
                bytes.extend((0..count).map(|_| rng.next() as u8));
                format!("append {count} bytes")
            } else {
                let cut = (1 + rng.below(16)).min(bytes.len());
                bytes.truncate(bytes.len() - cut);
                format!("drop the last {cut} bytes")
            }
        }
    }
}

/// Opens `bytes` and reads every tensor every way; returns whether the file opened.
fn read_everything(bytes: Vec<u8>) -> bool {
    let Ok(file) = SafeTensors::from_bytes("fuzz.safetensors", bytes) else {
        return false;
    };
    let arena = Arena::new();
    let names: Vec<String> = file.names().map(str::to_string).collect();
    for name in &names {
        let info = file.info(name).expect("a listed name has info");
        assert!(info.range.end <= file.data().len());
        if let Ok(tensor) = file.tensor_f32(name) {
            let values = tensor.to_vec(&arena).expect("a read tensor has its values");
            assert_eq!(values.len(), info.shape.iter().product::<usize>());
        }
        if let Ok((shape, values)) = file.tensor_i64(name) {
            assert_eq!(values.len(), shape.iter().product::<usize>());
        }
    }
    assert!(file.tensor_f32("not a tensor").is_err());
    true
}

#[test]
fn fuzzed_safetensors_never_panic() {
    const SEED: u64 = 0x5eed_f11e_0000_0001;
    const ROUNDS: usize = 40_000;
    let original = fuzz_seed_file();
    assert!(read_everything(original.clone()));
    let start = std::time::Instant::now();
    let mut rng = Rng(SEED);
    let mut opened = 0;
    for round in 0..ROUNDS {
        let mut bytes = original.clone();
        let steps = 1 + rng.below(3);
        let done: Vec<String> = (0..steps).map(|_| mutate(&mut rng, &mut bytes)).collect();
        let input = bytes.clone();
        match catch_unwind(AssertUnwindSafe(|| read_everything(input))) {
            Ok(true) => opened += 1,
            Ok(false) => {}
            Err(_) => panic!(
                "seed {SEED:#x}, round {round}: panicked after mutations {done:?}; input {bytes:?}"
            ),
        }
    }
    // The mutations must exercise both outcomes to mean anything.
    assert!(
        opened > ROUNDS / 20,
        "only {opened} of {ROUNDS} mutants opened"
    );
    assert!(
        opened < ROUNDS * 19 / 20,
        "{opened} of {ROUNDS} mutants opened"
    );
    assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
}

#[test]
fn fuzzed_json_never_panics_and_round_trips() {
    const SEED: u64 = 0x0123_4567_89ab_cdef;
    const ROUNDS: usize = 40_000;
    let corpus = [
        BERT_CONFIG,
        r#"{"a":[1,-2.5e-3,{"b":null}],"c":"\u00e9\ud83d\ude00\n","d":[true,false,[]]}"#,
        r#"[[[[{"x":[[[1]]]}]]]]"#,
        r#""just a string with \"escapes\" and \\ back\/slashes""#,
        "-0.000123E+45",
    ];
    let pieces: &[&str] = &[
        "[", "]", "{", "}", ",", ":", "\"", "\\", "\\u", "\\ud83d", "\\ude00", "e", "E", "-", "+",
        ".", "0", "1", "null", "true", " ", "\n", "é", "😀", "\u{1}",
    ];
    let start = std::time::Instant::now();
    let mut rng = Rng(SEED);
    let mut parsed = 0;
    for round in 0..ROUNDS {
        let mut text = rng.pick(&corpus).to_string();
        let mut done = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let boundaries: Vec<usize> = (0..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .collect();
            let at = *rng.pick(&boundaries);
            match rng.below(4) {
                0 => {
                    let piece = *rng.pick(pieces);
                    text.insert_str(at, piece);
                    done.push(format!("insert {piece:?} at {at}"));
                }
                1 => {
                    text.truncate(at);
                    done.push(format!("truncate at {at}"));
                }
                2 => {
                    let end = *rng.pick(&boundaries);
                    let (lo, hi) = (at.min(end), at.max(end));
                    text.replace_range(lo..hi, "");
                    done.push(format!("remove {lo}..{hi}"));
                }
                _ => {
                    let mut bytes = text.clone().into_bytes();
                    if !bytes.is_empty() {
                        let i = rng.below(bytes.len());
                        bytes[i] ^= 1 << rng.below(8);
                        done.push(format!("flip a bit of byte {i}"));
                    }
                    text = String::from_utf8_lossy(&bytes).into_owned();
                }
            }
        }
        let input = text.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| match json::parse(&input) {
            Ok(value) => {
                let written = value.to_string();
                assert_eq!(json::parse(&written).as_ref(), Ok(&value), "{written}");
                true
            }
            Err(e) => {
                assert!(e.line >= 1 && e.column >= 1);
                false
            }
        }));
        match outcome {
            Ok(true) => parsed += 1,
            Ok(false) => {}
            Err(_) => panic!("seed {SEED:#x}, round {round}: panicked after {done:?} on {text:?}"),
        }
    }
    assert!(
        parsed > ROUNDS / 50,
        "only {parsed} of {ROUNDS} mutants parsed"
    );
    assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
}

#[test]
fn safetensors_headers_go_through_the_json_parser_strictly() {
    // Trailing garbage after the JSON (other than padding spaces) is rejected.
    let header = r#"{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}} x"#;
    assert_eq!(
        format_message(SafeTensors::from_bytes("t", raw_file(header, &[1]))),
        "t: header is not valid JSON: expected the end of the input at line 1, column 55"
    );
    let padded = r#"{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}   "#;
    let file = SafeTensors::from_bytes("t", raw_file(padded, &[1])).unwrap();
    assert_eq!(file.tensor_i64("x").unwrap(), (vec![1], vec![1]));
}

/// A header array longer than any shape (50 million zeros cost gigabytes as parsed values) is
/// refused while parsing; a generic JSON file has no such limit.
#[test]
fn safetensors_header_arrays_are_short() {
    let zeros = vec!["0"; MAX_HEADER_ARRAY + 1].join(",");
    let header = format!(r#"{{"x":{{"dtype":"U8","shape":[{zeros}],"data_offsets":[0,0]}}}}"#);
    let message = format_message(SafeTensors::from_bytes("t", raw_file(&header, &[])));
    assert!(
        message.contains(&format!("an array of more than {MAX_HEADER_ARRAY} items")),
        "{message}"
    );
    let at_limit = vec!["0"; MAX_HEADER_ARRAY].join(",");
    let header = format!(r#"{{"x":{{"dtype":"U8","shape":[{at_limit}],"data_offsets":[0,0]}}}}"#);
    assert!(SafeTensors::from_bytes("t", raw_file(&header, &[])).is_ok());
    assert!(json::parse(&format!("[{zeros}]")).is_ok());
}

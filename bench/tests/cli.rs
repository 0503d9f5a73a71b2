//! The `smelt` binary end to end: `smelt run` on a HF fixture directory writes the outputs
//! and gradients HuggingFace computed, and bad input is a message and a non-zero exit.

use smelt_engine::formats::safetensors::{write_tensors, SafeTensors, TensorData};
use smelt_engine::Arena;
use smelt_tests::rel_l2;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(case)
}

fn smelt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_smelt"))
        .args(args)
        .output()
        .expect("the smelt binary runs")
}

/// `smelt args`, which must succeed (its stderr is the failure message).
fn smelt_ok(args: &[&str]) -> std::process::Output {
    let out = smelt(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs smelt with `args` and checks that it fails, printing `message` and no panic;
/// returns its stderr.
#[track_caller]
fn assert_refused(args: &[&str], message: &str) -> String {
    let out = smelt(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    stderr
}

#[test]
fn run_writes_hf_outputs_and_gradients() {
    let dir = fixture("bert");
    let input = dir.join("reference.safetensors");
    let output = std::env::temp_dir().join(format!("smelt-run-{}.safetensors", std::process::id()));
    smelt_ok(&[
        "run",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--grad",
        "--threads",
        "2",
    ]);
    let ours = SafeTensors::open(&output).unwrap();
    let reference = SafeTensors::open(&input).unwrap();
    let arena = Arena::new();
    let read =
        |file: &SafeTensors, name: &str| file.tensor_f32(name).unwrap().to_vec(&arena).unwrap();
    let names: Vec<String> = ours.names().map(str::to_string).collect();
    assert_eq!(names.iter().filter(|n| n.starts_with("grad.")).count(), 39);
    for name in &names {
        let tol = if name.starts_with("grad.") {
            1e-4
        } else {
            1e-5
        };
        if name.ends_with("self.key.bias") {
            continue; // an exactly zero gradient: see tests/tests/hf_reference.rs
        }
        let err = rel_l2(&read(&ours, name), &read(&reference, name));
        assert!(err <= tol, "{name}: relative L2 error {err:e}");
    }
    assert_eq!(ours.info("loss").unwrap().shape, Vec::<usize>::new());
    std::fs::remove_file(&output).ok();
}

/// An attention mask of floats (0.0 and 1.0, as HF takes them) gives the outputs of the same
/// mask in integers; a float mask of other values is refused, naming the position.
#[test]
fn run_takes_a_float_attention_mask_of_zeros_and_ones() {
    let dir = fixture("bert");
    let reference = SafeTensors::open(&dir.join("reference.safetensors")).unwrap();
    let (dims, ids) = reference.tensor_i64("input_ids").unwrap();
    let (_, mask) = reference.tensor_i64("attention_mask").unwrap();
    assert!(mask.contains(&0), "the fixture pads a row");
    let (_, types) = reference.tensor_i64("token_type_ids").unwrap();
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let outputs = |float_mask: &[f32]| {
        let input = tmp.join(format!("smelt-mask-in-{pid}.safetensors"));
        let output = tmp.join(format!("smelt-mask-out-{pid}.safetensors"));
        let with = |mask: TensorData<'_>| {
            write_tensors(
                &input,
                &[
                    ("input_ids", &dims, TensorData::I64(&ids)),
                    ("attention_mask", &dims, mask),
                    ("token_type_ids", &dims, TensorData::I64(&types)),
                ],
                &[],
            )
            .unwrap();
            let args = run_args(&dir, &input, &output);
            let out = smelt(&args);
            let result = if out.status.success() {
                let file = SafeTensors::open(&output).unwrap();
                let hidden = file.tensor_f32("last_hidden_state").unwrap();
                Ok(hidden.to_vec(&Arena::new()).unwrap())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).to_string())
            };
            std::fs::remove_file(&output).ok();
            result
        };
        let results = (
            with(TensorData::I64(&mask)),
            with(TensorData::F32(float_mask)),
        );
        std::fs::remove_file(&input).ok();
        results
    };
    let as_floats: Vec<f32> = mask.iter().map(|&m| m as f32).collect();
    let (ints, floats) = outputs(&as_floats);
    assert_eq!(ints.unwrap(), floats.unwrap());
    let mut half = as_floats.clone();
    half[1] = 0.5;
    let err = outputs(&half).1.unwrap_err();
    assert!(
        err.contains("attention_mask[0][1] = 0.5; a float mask must hold 0 and 1"),
        "{err}"
    );
}

#[test]
fn bad_input_is_a_message_and_a_failure() {
    let bert = fixture("bert");
    let distil = fixture("distilbert");
    let input = bert.join("reference.safetensors");
    let cases: [(&[&str], &str); 4] = [
        (
            &["run", "--model", bert.to_str().unwrap()],
            "--input is required",
        ),
        (
            &[
                "run",
                "--model",
                "/nonexistent",
                "--input",
                input.to_str().unwrap(),
                "--output",
                "/tmp/x",
            ],
            "/nonexistent/config.json",
        ),
        (
            &[
                "run",
                "--model",
                distil.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--output",
                "/tmp/x",
            ],
            "token_type_ids given, but the model has no token types",
        ),
        (
            &["bench", "bert", "--config", "gpt"],
            "expected one of bert-base",
        ),
    ];
    for (args, message) in cases {
        assert_refused(args, message);
    }
}

/// `--threads` past the maximum (or 0) is a message and a failure before any thread pool
/// is built; `usize::MAX` used to abort with a capacity overflow in the thread team, and
/// 1000 threads on 2 cores took 23 s and 8.7 GB for a run of the tiny fixture. The limit is
/// 4 threads per core (at least 8), and the message names the core count.
#[test]
fn thread_counts_past_the_maximum_are_refused() {
    let bert = fixture("bert");
    let input = bert.join("reference.safetensors");
    let output =
        std::env::temp_dir().join(format!("smelt-threads-{}.safetensors", std::process::id()));
    let tokenizer = fixture("tokenizer");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let past = (4 * cores).clamp(8, 1024) + 1;
    for threads in ["18446744073709551615", "1025", "0", &past.to_string()] {
        let commands: [&[&str]; 4] = [
            &[
                "run",
                "--model",
                bert.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--threads",
                threads,
            ],
            &[
                "embed",
                "--model",
                tokenizer.to_str().unwrap(),
                "--threads",
                threads,
                "hi",
            ],
            &["demo", "--threads", threads],
            &["bench", "softmax", "--threads", threads],
        ];
        let message = format!(
            "--threads must be between 1 and {}, got {threads}",
            past - 1
        );
        for args in commands {
            let stderr = assert_refused(args, &message);
            assert!(
                stderr.contains(&format!("this machine has {cores} cores")),
                "{stderr}"
            );
        }
    }
    assert!(!output.exists());
    // One thread and one per core run.
    for threads in ["1".to_string(), cores.to_string()] {
        smelt_ok(&[
            "bench",
            "softmax",
            "--shape",
            "64x33",
            "--budget-ms",
            "10",
            "--threads",
            &threads,
        ]);
    }
}

/// Counts and sizes far past what a run can hold are a message and a failure before any
/// input is generated (they panicked with capacity overflows, or wrapped to empty buffers
/// that the kernels then ran past).
#[test]
fn huge_counts_and_shapes_are_refused() {
    let max = "18446744073709551615";
    let sentence = fixture("sentence");
    let sentence = sentence.to_str().unwrap();
    let cases: [(&[&str], &str); 16] = [
        (&["demo", "--steps", max], "--steps must be between 2 and"),
        (&["demo", "--batch", max], "--batch must be between 1 and"),
        (&["demo", "--batch", "100000"], "tokens is too many"),
        (
            &["demo", "--seq", "513"],
            "longer than max_position_embeddings = 512",
        ),
        (
            &["bench", "bert", "--batch", max],
            "--batch must be between 1 and",
        ),
        (
            &["bench", "embed", "--model", sentence, "--count", max],
            "--count must be between 1 and",
        ),
        (
            &["bench", "embed", "--model", sentence, "--runs", max],
            "--runs must be between 1 and",
        ),
        (
            &["bench", "embed", "--model", sentence, "--batch", max],
            "--batch must be between 1 and 65536, got",
        ),
        (
            &["embed", "--model", sentence, "--batch", max, "hi"],
            "--batch must be between 1 and 65536, got",
        ),
        (
            &["bench", "softmax", "--shape", "4294967296x4294967296"],
            "too large",
        ),
        (
            &[
                "bench",
                "gemm",
                "--shape",
                "4294967296x4294967296x4294967296",
            ],
            "operand A of 1 x 4294967296 x 4294967296 elements is too large",
        ),
        (
            &["bench", "gemm", "--batch", "4"],
            "--batch applies to --shape",
        ),
        (
            &["bench", "attention", "--device", "ptx-sim", "--batch", "0"],
            "--batch must be between 1 and",
        ),
        (
            &["bench", "attention", "--device", "ptx-sim", "--seq", "0"],
            "--seq: \"0\" is not a positive whole number",
        ),
        (
            &[
                "bench",
                "attention",
                "--device",
                "ptx-sim",
                "--heads",
                "65536",
                "--batch",
                "65536",
            ],
            "too large",
        ),
        (
            &["bench", "layernorm", "--device", "ptx-sim", "--rows", max],
            "--rows must be between 1 and",
        ),
    ];
    for (args, message) in cases {
        assert_refused(args, message);
    }
}

/// `smelt run`'s arguments for a model folder, an input file and an output file.
fn run_args<'a>(model: &'a Path, input: &'a Path, output: &'a Path) -> [&'a str; 7] {
    let text = |path: &'a Path| path.to_str().unwrap();
    [
        "run",
        "--model",
        text(model),
        "--input",
        text(input),
        "--output",
        text(output),
    ]
}

/// A safetensors file holding one tensor `name` of `dtype` and `shape` with `data`.
fn write_raw_tensor(path: &std::path::Path, name: &str, dtype: &str, shape: &[usize], data: &[u8]) {
    let header = format!(
        "{{\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[0,{}]}}}}",
        data.len()
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// `smelt run` reads the ids' dtype and shape from the header before converting them: ids
/// of a non-index dtype were accepted (and a file of billions of U8 ids converted to i64
/// before the length check). Every refusal names the input file, an id past the vocabulary
/// too (it was the one that did not).
#[test]
fn run_checks_the_ids_before_converting_them() {
    let bert = fixture("bert");
    let dir = std::env::temp_dir();
    let output = dir.join(format!("smelt-ids-out-{}.safetensors", std::process::id()));
    let past_vocab: Vec<u8> = [1i64, 1 << 40]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let cases: [(&str, &[usize], Vec<u8>, &str); 4] = [
        (
            "I64",
            &[1, 2],
            past_vocab,
            "input_ids[0][1] = 1099511627776 is outside",
        ),
        (
            "U8",
            &[1, 2],
            vec![1, 2],
            "holds U8 values; token indices must be I64 or I32",
        ),
        (
            "F32",
            &[1, 1],
            1.0f32.to_le_bytes().to_vec(),
            "holds F32 values",
        ),
        (
            "I32",
            &[1, 600],
            vec![0; 2400],
            "longer than max_position_embeddings",
        ),
    ];
    for (i, (dtype, shape, data, message)) in cases.into_iter().enumerate() {
        let input = dir.join(format!("smelt-ids-{}-{i}.safetensors", std::process::id()));
        write_raw_tensor(&input, "input_ids", dtype, shape, &data);
        let args = run_args(&bert, &input, &output);
        let stderr = assert_refused(&args, message);
        assert!(stderr.contains(input.to_str().unwrap()), "{stderr}");
        std::fs::remove_file(&input).ok();
    }
    // An input of HF's forward that this command does not take would silently change the
    // outputs: refused, naming it.
    let input = dir.join(format!("smelt-ids-pos-{}.safetensors", std::process::id()));
    write_raw_tensor(&input, "position_ids", "I64", &[1, 1], &[0; 8]);
    let args = run_args(&bert, &input, &output);
    assert_refused(
        &args,
        "tensor 'position_ids' is an input smelt run does not take",
    );
    std::fs::remove_file(&input).ok();
    assert!(!output.exists());
}

#[test]
fn tokenize_prints_ids_and_refuses_bad_stdin() {
    let dir = fixture("tokenizer");
    let out = smelt_ok(&[
        "tokenize",
        "--model",
        dir.to_str().unwrap(),
        "Hello, world!",
        "",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"text\":\"Hello, world!\",\"ids\":[101,7592,1010,2088,999,102]}\n{\"text\":\"\",\"ids\":[101,102]}\n"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_smelt"))
        .args(["tokenize", "--model", dir.to_str().unwrap(), "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"fine\n\xff\xfe\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin line 2 is not valid UTF-8"));
    let out = smelt(&["embed", "--model", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no texts"));
}

#[test]
fn bench_gemm_times_our_references_beside_the_peers() {
    let out = smelt_ok(&[
        "bench",
        "gemm",
        "--shape",
        "33x17x9",
        "--batch",
        "3",
        "--threads",
        "2",
        "--budget-ms",
        "1",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let impls: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split("\"impl\":\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        impls,
        [
            "fma-peak",
            "fma-peak",
            "smelt",
            "gemm-crate",
            "matrixmultiply",
            "smelt-1t",
            "smelt-large"
        ],
        "{stdout}"
    );
    // The second peak row is 1 thread's, with the FMA loop's own 2-thread scaling: a timed
    // ratio, so only its presence is checked (tests run side by side on a busy machine).
    let peak_1t = stdout.lines().nth(1).unwrap_or_default();
    assert!(peak_1t.contains("\"threads\":1"), "{peak_1t}");
    let scaling: f64 = peak_1t
        .split("\"smelt_x\":")
        .nth(1)
        .and_then(|v| v.split([',', '}']).next()?.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(scaling.is_finite() && scaling > 0.0, "{peak_1t}");
    let large = stdout.lines().last().unwrap_or_default();
    for field in [
        "\"m\":1024",
        "\"k\":768",
        "\"n\":3072",
        "\"threads\":2",
        "\"smelt_x\":",
    ] {
        assert!(large.contains(field), "{field} missing from {large}");
    }
    let out = smelt_ok(&["bench", "gemm", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("smelt-large"));
}

/// `--isa` picks our kernels' instruction set for the kernel benchmarks and says so in each
/// row; a name that is none, or an option of another command, is refused.
#[test]
fn kernel_benches_run_the_instruction_set_asked_for() {
    let out = smelt_ok(&[
        "bench",
        "softmax",
        "--isa",
        "portable",
        "--shape",
        "64x33",
        "--threads",
        "1",
        "--budget-ms",
        "20",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"impl\":\"smelt\"") && stdout.contains("\"isa\":\"portable\""),
        "{stdout}"
    );
    assert_refused(
        &["bench", "gemm", "--isa", "sse9"],
        "--isa \"sse9\": not an instruction set (this CPU can run: ",
    );
    assert_refused(&["bench", "bert", "--isa", "avx2"], "unknown option --isa");
}

/// `tokenize` feeds the tokenizer what `embed` does: texts lowercased first where
/// `sentence_bert_config.json` sets `do_lower_case`, whatever the tokenizer's own setting.
#[test]
fn tokenize_lowercases_where_sentence_bert_config_says() {
    let fixture = fixture("tokenizer");
    let dir = std::env::temp_dir().join(format!("smelt-tokenize-lower-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture.join("vocab.txt"), dir.join("vocab.txt")).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"do_lower_case": false}"#,
    )
    .unwrap();
    let ids = |dir: &std::path::Path| {
        let out = smelt_ok(&["tokenize", "--model", dir.to_str().unwrap(), "Hello"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Cased, "Hello" is not in the uncased vocabulary.
    assert_eq!(ids(&dir), "{\"text\":\"Hello\",\"ids\":[101,100,102]}\n");
    std::fs::write(
        dir.join("sentence_bert_config.json"),
        r#"{"do_lower_case": true}"#,
    )
    .unwrap();
    assert_eq!(ids(&dir), "{\"text\":\"Hello\",\"ids\":[101,7592,102]}\n");
    std::fs::write(
        dir.join("sentence_bert_config.json"),
        r#"{"do_lower_case": 1}"#,
    )
    .unwrap();
    assert_refused(
        &["tokenize", "--model", dir.to_str().unwrap(), "Hello"],
        "\"do_lower_case\" must be true, false or null",
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Options are checked before values: an unknown option is named as such even without a
/// value after it, `--help` is found anywhere an option can be, and a peer that cannot
/// measure the phase asked for is refused rather than left out.
#[test]
fn options_unknown_or_misplaced_are_named() {
    assert_refused(&["demo", "--json"], "unknown option --json");
    assert_refused(&["demo", "--json", "--steps", "3"], "unknown option --json");
    assert_refused(&["demo", "--steps"], "option --steps needs a value");
    let out = smelt_ok(&["bench", "gemm", "--shape", "64x64x64", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("usage:"));
    assert_refused(
        &[
            "bench", "bert", "--config", "tiny", "--phase", "train", "--onnx",
        ],
        "--onnx measures the forward only",
    );
}

/// The rows say what ran: the large-GEMM reference with B as transposed as the case's,
/// `matrixmultiply` on the threads its own pool has (at most 4), the peak's instruction set;
/// and `bench bert` times the bare encoder its peers run (no pooler: one linear layer fewer
/// and no tanh).
#[test]
fn bench_rows_describe_what_ran() {
    let out = smelt_ok(&[
        "bench",
        "gemm",
        "--shape",
        "40x24x8",
        "--batch",
        "2",
        "--transb",
        "--threads",
        "8",
        "--budget-ms",
        "1",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!("\"impl\":\"{name}\"")))
            .unwrap_or_else(|| panic!("no {name} row in {stdout}"))
            .to_string()
    };
    assert!(row("smelt-large").contains("\"transb\":true"), "{stdout}");
    let mm = row("matrixmultiply");
    assert!(
        mm.contains("\"threads\":4") && mm.contains("\"of_peak\":null"),
        "{mm}"
    );
    assert!(!row("fma-peak").contains("\"isa\":\"-\""), "{stdout}");

    let out = smelt_ok(&[
        "bench",
        "bert",
        "--config",
        "tiny",
        "--batch",
        "1",
        "--seq",
        "8",
        "--phase",
        "forward",
        "--runs",
        "1",
        "--rounds",
        "1",
        "--threads",
        "1",
        "--profile",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let linear = stdout
        .lines()
        .find(|l| l.contains("\"op\":\"linear\""))
        .unwrap_or_else(|| panic!("no linear row in {stdout}"));
    // tiny: 2 layers of 6 linear layers each.
    assert!(linear.contains("\"calls\":12"), "{linear}");
    assert!(!stdout.contains("\"op\":\"tanh\""), "{stdout}");
}

/// A step that cannot fit in this machine's memory is refused before anything is allocated
/// (it would be killed midway, with no message): 2^20 tokens of DistilBERT training need
/// hundreds of GB.
#[test]
fn a_step_larger_than_memory_is_refused() {
    // Only where /proc says how much there is, and less than the bound of such a step.
    if available_gb().is_some_and(|gb| gb < 300.0) {
        assert_refused(&["demo", "--batch", "2048", "--seq", "512"], "GB available");
        assert_refused(
            &[
                "bench", "bert", "--batch", "2048", "--seq", "512", "--phase", "train",
            ],
            "a forward and backward needs about",
        );
    }
}

/// The memory this machine has available (`MemAvailable`), in GB, where /proc says.
fn available_gb() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1e6)
}

/// A new empty directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smelt-cli-{}-{test}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names of the files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every command that prints: a closed stdout (a pipe whose reader is gone, as `| head -1`
/// leaves it) or a full one (`> /dev/full`) is a message naming stdout and exit status 1; it
/// was a panic, exit status 101, in every command but `tokenize` and `embed`.
#[test]
fn a_closed_or_full_stdout_is_an_error_not_a_panic() {
    let dir = temp_dir("stdout");
    let bert = fixture("bert");
    let input = bert.join("reference.safetensors");
    let output = dir.join("out.safetensors");
    let ptx = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kernels/ptx-sim/tests/kernels/transpose.ptx");
    let tokenizer = fixture("tokenizer");
    let commands: [&[&str]; 7] = [
        &["help"],
        &["bench", "gemm", "--help"],
        &["demo", "--steps", "3", "--batch", "1", "--seq", "8"],
        &run_args(&bert, &input, &output),
        &[
            "bench",
            "softmax",
            "--shape",
            "64x33",
            "--budget-ms",
            "5",
            "--threads",
            "1",
        ],
        &[
            "ptx",
            "run",
            ptx.to_str().unwrap(),
            "--kernel",
            "transpose",
            "--grid",
            "2,2",
            "--block",
            "32,8",
            "--args",
            "zeros:in:6660,zeros:out:6660,i32:37,i32:45",
            "--output",
            output.to_str().unwrap(),
        ],
        &["tokenize", "--model", tokenizer.to_str().unwrap(), "Hello"],
    ];
    for args in commands {
        let (reader, closed) = std::io::pipe().unwrap();
        drop(reader);
        let mut sinks: Vec<(&str, std::process::Stdio)> = vec![("closed pipe", closed.into())];
        if let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
            sinks.push(("/dev/full", full.into()));
        }
        for (sink, stdout) in sinks {
            let out = Command::new(env!("CARGO_BIN_EXE_smelt"))
                .args(args)
                .stdout(stdout)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?} > {sink}: {stderr}");
            assert!(
                stderr.contains("cannot write stdout") && !stderr.contains("panicked"),
                "{args:?} > {sink}: {stderr}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A safetensors file whose only tensor is `input_ids` of `shape`, I64 zeros, written sparse
/// (only its header takes room on disk).
fn write_sparse_ids(path: &Path, shape: [usize; 2]) {
    let bytes = shape[0] * shape[1] * 8;
    let header = format!(
        "{{\"input_ids\":{{\"dtype\":\"I64\",\"shape\":{shape:?},\"data_offsets\":[0,{bytes}]}}}}"
    );
    let mut head = (header.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(header.as_bytes());
    std::fs::write(path, &head).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len((head.len() + bytes) as u64).unwrap();
}

/// `smelt run` checks the input's shape against the memory available before it loads the
/// model (it ran on until the kernel killed it, or aborted on a failed allocation: ids
/// `[100000, 40]` on the tiny fixture reached 4.3 GB): more tokens than one step takes, or
/// a step that needs more memory than there is, are refused naming the file and the shape.
#[test]
fn run_refuses_inputs_too_large_for_memory() {
    let dir = temp_dir("run-memory");
    // BERT-large's sizes and no weights: the check comes before they are read.
    let large = dir.join("large");
    std::fs::create_dir_all(&large).unwrap();
    let config = std::fs::read_to_string(fixture("bert").join("config.json")).unwrap();
    let config = config
        .replace("\"hidden_size\": 32", "\"hidden_size\": 1024")
        .replace("\"intermediate_size\": 37", "\"intermediate_size\": 4096")
        .replace("\"num_attention_heads\": 4", "\"num_attention_heads\": 16")
        .replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 24")
        .replace(
            "\"max_position_embeddings\": 40",
            "\"max_position_embeddings\": 512",
        );
    assert!(config.contains("\"num_hidden_layers\": 24"), "{config}");
    std::fs::write(large.join("config.json"), config).unwrap();
    let output = dir.join("out.safetensors");
    let mut cases = vec![
        (
            fixture("bert"),
            [100_000, 40],
            false,
            "4000000 tokens is too many",
        ),
        (
            large.clone(),
            [4096, 512],
            false,
            "2097152 tokens is too many",
        ),
    ];
    // 2^20 tokens of BERT-large's forward and backward: terabytes.
    if available_gb().is_some_and(|gb| gb < 1000.0) {
        cases.push((large.clone(), [2048, 512], true, "GB available"));
    }
    for (model, shape, grad, message) in cases {
        let input = dir.join(format!("ids-{}x{}.safetensors", shape[0], shape[1]));
        write_sparse_ids(&input, shape);
        let mut args = run_args(&model, &input, &output).to_vec();
        if grad {
            args.push("--grad");
        }
        let stderr = assert_refused(&args, message);
        let named = format!(
            "{}: input_ids of shape [{}, {}]",
            input.display(),
            shape[0],
            shape[1]
        );
        assert!(stderr.contains(&named), "{stderr}");
    }
    assert!(!output.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// `smelt embed --batch N` is bounded, and its largest batch (the longest texts, cut to the
/// model's length) is held to the tokens of one step and the memory available: a batch of
/// 40000 texts of 40 tokens was embedded in one pass of 1.6 M tokens.
#[test]
fn embed_batches_are_bounded() {
    // The tiny `bert` fixture with a vocabulary of its 99 rows.
    let dir = temp_dir("embed-batch");
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("bert").join(file), dir.join(file)).unwrap();
    }
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .map(String::from)
        .to_vec();
    vocab.extend((0..26).map(|c| char::from(b'a' + c).to_string()));
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    let model = dir.to_str().unwrap();
    let out = smelt_ok(&["embed", "--model", model, "--batch", "100", "a b", "c"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert_refused(
        &["embed", "--model", model, "--batch", "0", "a"],
        "--batch must be between 1 and 65536, got 0",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_smelt"))
        .args(["embed", "--model", model, "--stdin", "--batch", "65536"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = "a b c d e f g h i j k l m n o p q r s t u v w x y z a b c d e f g h i j k l m n\n";
    let texts = line.repeat(40_000);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // The refusal may come before every line is read.
        let _ = stdin.write_all(texts.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("--batch 65536: 40000 texts of up to 40 tokens: 1600000 tokens is too many"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `smelt run --output` is written to a temporary file beside it and renamed into place: a
/// missing directory is an error before any work (before the model is read; it was found
/// after the whole computation), a write that fails leaves the old file as it was (it was
/// left truncated), and success leaves no temporary file behind.
#[test]
fn run_output_is_written_whole_or_not_at_all() {
    let dir = temp_dir("run-output");
    let bert = fixture("bert");
    let input = bert.join("reference.safetensors");
    let missing = dir.join("no-such-dir").join("out.safetensors");
    let nowhere = Path::new("/nonexistent-model");
    let stderr = assert_refused(&run_args(nowhere, &input, &missing), "does not exist");
    assert!(
        stderr.contains(missing.to_str().unwrap()) && !stderr.contains("config.json"),
        "{stderr}"
    );
    let output = dir.join("out.safetensors");
    let mut args = run_args(&bert, &input, &output).to_vec();
    args.push("--grad");
    smelt_ok(&args);
    assert_eq!(listing(&dir), ["out.safetensors"]);
    // A file-size limit of 16 blocks (8 or 16 KB; the gradients take about 80 KB) makes the
    // write fail midway, with SIGXFSZ ignored so that it is an error, not a kill.
    std::fs::write(&output, b"the previous output").unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 16; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_smelt"))
        .args(&args[..])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(output.to_str().unwrap()) && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&output).unwrap(), b"the previous output");
    assert_eq!(listing(&dir), ["out.safetensors"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// `demo --steps` is refused below 2 with one message, whatever the count (1 said "at least 2"
/// and 0 "between 1 and 100000").
#[test]
fn demo_steps_below_two_have_one_message() {
    for steps in ["0", "1"] {
        assert_refused(
            &["demo", "--steps", steps],
            &format!("--steps must be between 2 and 100000, got {steps}"),
        );
    }
}

/// The GPU benchmarks' rows name their storage type, so that f32 and bf16 runs tell apart
/// (run on the interpreter, a smoke test of the row format).
#[test]
fn gpu_benchmark_rows_name_their_storage_type() {
    let cases: [&[&str]; 2] = [
        &["bench", "layernorm", "--rows", "16", "--hidden", "48"],
        &["bench", "attention", "--heads", "1", "--seq", "9"],
    ];
    for case in cases {
        for dtype in ["f32", "bf16"] {
            let mut args = case.to_vec();
            args.extend([
                "--device",
                "ptx-sim",
                "--dtype",
                dtype,
                "--budget-ms",
                "1",
                "--json",
            ]);
            let out = smelt_ok(&args);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let want = format!("\"dtype\":\"{dtype}\"");
            assert!(stdout.lines().count() >= 2, "{args:?}: {stdout}");
            assert!(
                stdout.lines().all(|l| l.contains(&want)),
                "{args:?}: {stdout}"
            );
        }
    }
}

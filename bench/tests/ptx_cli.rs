//! `smelt ptx run` end to end: kernels of the ptx-sim corpus run on tensors of a safetensors
//! file give what plain Rust computes, a planted out-of-bounds store is a failure naming it, and
//! bad command lines are a message and a non-zero exit.

use smelt_engine::formats::safetensors::{write_tensors, Dtype, SafeTensors, TensorData};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A kernel of `kernels/ptx-sim/tests/kernels/`.
fn corpus(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kernels/ptx-sim/tests/kernels")
        .join(name)
        .display()
        .to_string()
}

/// A new empty directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smelt-ptx-cli-{}-{test}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

fn smelt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smelt"))
        .args(args)
        .output()
        .expect("the smelt binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Little-endian f32 values of raw bytes.
fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The raw bytes, dtype and shape of tensor `name` of the file at `p`.
fn read(p: &Path, name: &str) -> (Dtype, Vec<usize>, Vec<u8>) {
    let file = SafeTensors::open(p).expect("output opens");
    let info = file.info(name).expect("tensor in output").clone();
    let bytes = file.data()[info.range.clone()].to_vec();
    (info.dtype, info.shape, bytes)
}

#[test]
fn transpose_of_an_odd_shape_matches_plain_rust() {
    let dir = temp_dir("transpose");
    let (rows, cols) = (37usize, 45usize);
    let input: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 100.0).collect();
    let buffers = dir.join("in.safetensors");
    write_tensors(
        &buffers,
        &[("in", &[rows, cols], TensorData::F32(&input))],
        &[],
    )
    .unwrap();
    let output = dir.join("out.safetensors");
    let args = format!("buf:in,zeros:out:{},i32:{rows},i32:{cols}", rows * cols * 4);
    let out = smelt(&[
        "ptx",
        "run",
        &corpus("transpose.ptx"),
        "--kernel",
        "transpose",
        "--grid",
        &format!("{},{}", cols.div_ceil(32), rows.div_ceil(32)),
        "--block",
        "32,8",
        "--buffers",
        path(&buffers),
        "--args",
        &args,
        "--output",
        path(&output),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("ran transpose: grid (2,2,1), block (32,8,1), "),
        "{stdout}"
    );
    assert!(stdout.contains("thread-instructions in"), "{stdout}");

    let (dtype, shape, bytes) = read(&output, "out");
    assert_eq!((dtype, shape), (Dtype::U8, vec![rows * cols * 4]));
    let mut want = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            want[c * rows + r] = input[r * cols + c];
        }
    }
    assert_eq!(f32s(&bytes), want);
    // The input buffer comes back unchanged, F32 of its shape.
    let (dtype, shape, bytes) = read(&output, "in");
    assert_eq!((dtype, shape), (Dtype::F32, vec![rows, cols]));
    assert_eq!(f32s(&bytes), input);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn out_of_bounds_store_fails_or_fits() {
    let dir = temp_dir("oob");
    let n = 100usize;
    let buffers = dir.join("in.safetensors");
    let small = vec![-1.0f32; n];
    let fits = vec![-1.0f32; n + 1];
    write_tensors(
        &buffers,
        &[
            ("small", &[n], TensorData::F32(&small)),
            ("fits", &[1, n + 1], TensorData::F32(&fits)),
        ],
        &[],
    )
    .unwrap();
    let output = dir.join("out.safetensors");
    let launch = |buffer: &str| {
        smelt(&[
            "ptx",
            "run",
            &corpus("out_of_bounds.ptx"),
            "--kernel",
            "out_of_bounds",
            "--grid",
            "1",
            "--block",
            "128",
            "--buffers",
            path(&buffers),
            "--args",
            &format!("buf:{buffer},i32:{n}"),
            "--output",
            path(&output),
        ])
    };
    // `i <= n` stores x[n]: one element past a buffer of n.
    let out = launch("small");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("OutOfBounds"), "{err}");
    assert!(err.contains("kernel out_of_bounds"), "{err}");
    assert!(err.contains("thread (100,0,0)"), "{err}");
    assert!(err.contains("PTX line"), "{err}");
    assert!(!output.exists(), "a failed launch writes nothing");

    // With n + 1 elements every store lands; x[i] = i.
    let out = launch("fits");
    assert!(out.status.success(), "{}", stderr(&out));
    let (dtype, shape, bytes) = read(&output, "fits");
    assert_eq!((dtype, shape), (Dtype::F32, vec![1, n + 1]));
    let want: Vec<f32> = (0..=n).map(|i| i as f32).collect();
    assert_eq!(f32s(&bytes), want);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_command_lines_are_a_message_and_a_failure() {
    let dir = temp_dir("bad");
    let buffers = dir.join("in.safetensors");
    write_tensors(&buffers, &[("x", &[4], TensorData::F32(&[0.0; 4]))], &[]).unwrap();
    let (ptx, bufs) = (corpus("out_of_bounds.ptx"), path(&buffers).to_string());
    let output = dir.join("out.safetensors");
    let out_path = path(&output).to_string();
    // Everything a good run needs; each case replaces or drops one option.
    let base = |kernel: &str, grid: &str, args: &str| -> Vec<String> {
        [
            "ptx", "run", &ptx, "--kernel", kernel, "--grid", grid, "--block", "32", "--args",
            args, "--output", &out_path,
        ]
        .map(String::from)
        .to_vec()
    };
    let with = |mut v: Vec<String>, extra: &[&str]| {
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let good = || base("out_of_bounds", "1", "zeros:x:400,i32:99");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            base("out_of_bounds", "2,x", "zeros:x:400,i32:99"),
            "--grid \"2,x\": expected 1 to 3 positive integers",
        ),
        (
            base("out_of_bounds", "1,1,1,1", "zeros:x:400,i32:99"),
            "--grid \"1,1,1,1\"",
        ),
        (
            base("missing", "1", "zeros:x:400,i32:99"),
            "no kernel named \"missing\" in the module (it has: out_of_bounds)",
        ),
        (
            base("out_of_bounds", "1", "ptr:x,i32:99"),
            "unknown kind \"ptr\"",
        ),
        (
            base("out_of_bounds", "1", "zeros:x:400,i32:many"),
            "\"many\" is not a valid i32 value",
        ),
        (
            base("out_of_bounds", "1", "zeros:x:400,zeros:x:4"),
            "buffer name 'x' is used twice",
        ),
        (
            base("out_of_bounds", "1", "buf:x,i32:3"),
            "no --buffers file to read tensor 'x' from",
        ),
        (
            with(
                base("out_of_bounds", "1", "buf:y,i32:3"),
                &["--buffers", &bufs],
            ),
            "no tensor named 'y' (the file has: x)",
        ),
        (
            with(good(), &["--buffers", &bufs]),
            "no --args item reads it",
        ),
        (
            base("out_of_bounds", "1", "zeros:x:400"),
            "takes 2 arguments, 1 were given",
        ),
        (
            good()
                .into_iter()
                .map(|a| a.replace("out_of_bounds.ptx", "absent.ptx"))
                .collect(),
            "cannot read",
        ),
        (
            good()
                .into_iter()
                .filter(|a| *a != "--output" && *a != out_path)
                .collect(),
            "--output is required",
        ),
        (with(good(), &["--blocks", "2"]), "unknown option --blocks"),
        (
            with(good(), &["--shared", "lots"]),
            "--shared: cannot parse",
        ),
        (
            good()
                .into_iter()
                .map(|a| a.replace("out_of_bounds.ptx", "out_of_bounds.cu"))
                .collect(),
            "Parse at PTX line",
        ),
    ];
    for (args, want) in cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = smelt(&argv);
        let err = stderr(&out);
        assert!(!out.status.success(), "{argv:?} succeeded");
        assert!(err.starts_with("smelt: "), "{argv:?}: {err}");
        assert!(err.contains(want), "{argv:?}: want {want:?} in {err}");
        assert!(!err.contains("panicked"), "{argv:?}: {err}");
    }
    assert!(!output.exists(), "no failed case writes the output");
    std::fs::remove_dir_all(&dir).ok();
}

/// `buf:` tensors are held to the 4 GiB of `zeros:` buffers, one or all together, with an
/// error naming the tensor: a sparse 8 GiB tensor was copied into the simulator and aborted
/// on the failed allocation.
#[test]
fn buffers_from_tensors_have_the_size_cap_of_zeros_buffers() {
    let dir = temp_dir("buf-cap");
    let buffers = dir.join("big.safetensors");
    // Sparse: only the header takes room on disk.
    let (gib, big) = (1usize << 30, 8usize << 30);
    let header = format!(
        "{{\"big\":{{\"dtype\":\"U8\",\"shape\":[{big}],\"data_offsets\":[0,{big}]}},\
         \"a\":{{\"dtype\":\"U8\",\"shape\":[{}],\"data_offsets\":[{big},{}]}},\
         \"b\":{{\"dtype\":\"U8\",\"shape\":[{}],\"data_offsets\":[{},{}]}}}}",
        3 * gib,
        big + 3 * gib,
        3 * gib,
        big + 3 * gib,
        big + 6 * gib
    );
    let mut head = (header.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(header.as_bytes());
    std::fs::write(&buffers, &head).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&buffers)
        .unwrap();
    file.set_len((head.len() + big + 6 * gib) as u64).unwrap();
    let output = dir.join("out.safetensors");
    let cases = [
        (
            "buf:big,i32:1",
            "--args buf:big: tensor 'big' of ",
            "holds 8589934592 bytes, more than the 4294967296 a buffer may have",
        ),
        (
            "buf:a,buf:b",
            "--args buf:b: with tensor 'b' of ",
            "the buffers hold 6442450944 bytes together, more than 4294967296",
        ),
    ];
    for (args, head, tail) in cases {
        let out = smelt(&[
            "ptx",
            "run",
            &corpus("out_of_bounds.ptx"),
            "--kernel",
            "out_of_bounds",
            "--grid",
            "1",
            "--block",
            "32",
            "--buffers",
            path(&buffers),
            "--args",
            args,
            "--output",
            path(&output),
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args}: {err}");
        assert!(err.contains(head) && err.contains(tail), "{args}: {err}");
    }
    assert!(!output.exists());
    std::fs::remove_dir_all(&dir).ok();
}

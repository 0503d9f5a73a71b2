//! The committed PTX is what NVRTC makes of the committed CUDA C: every `kernels/cuda/*.cu` has
//! a `kernels/ptx/*.ptx` whose first line records the FNV-1a hash of the source followed by the
//! local headers it includes (as `kernels/nvrtc.py` computes it), every PTX file parses in
//! ptx-sim with all its kernels runnable, and no f32 multiply or add is left unrounded for an
//! assembler to fuse.

use std::fs;
use std::path::Path;

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The bytes of a source followed by those of every local header it includes
/// (`#include "name.cuh"` beside it), depth first, in order.
fn with_headers(path: &Path) -> Vec<u8> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = data.clone();
    for line in String::from_utf8_lossy(&data).lines() {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix("#include \"")
            .and_then(|l| l.strip_suffix('"'))
        {
            out.extend(with_headers(&path.with_file_name(name)));
        }
    }
    out
}

fn files(dir: &str, ext: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

#[test]
fn every_ptx_matches_its_cuda_source() {
    let sources = files("cuda", "cu");
    assert!(!sources.is_empty(), "no CUDA sources under kernels/cuda");
    for cu in &sources {
        let stem = cu
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 file name");
        let ptx_path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("ptx")
            .join(format!("{stem}.ptx"));
        let ptx =
            fs::read_to_string(&ptx_path).unwrap_or_else(|e| panic!("{}: {e}", ptx_path.display()));
        let want = format!("// source-fnv1a64: {:016x}", fnv1a64(&with_headers(cu)));
        assert_eq!(
            ptx.lines().next().unwrap_or(""),
            want,
            "{stem}.ptx is stale: regenerate with `python3 kernels/nvrtc.py kernels/cuda/*.cu --out-dir kernels/ptx`"
        );
    }
    for ptx in files("ptx", "ptx") {
        let stem = ptx
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 file name");
        assert!(
            sources
                .iter()
                .any(|s| s.file_stem().and_then(|s| s.to_str()) == Some(stem)),
            "{stem}.ptx has no source"
        );
    }
}

#[test]
fn every_ptx_kernel_runs_on_ptx_sim() {
    for ptx in files("ptx", "ptx") {
        let text = fs::read_to_string(&ptx).expect("readable PTX");
        let module = smelt_ptx_sim::Module::parse(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", ptx.display()));
        module
            .check()
            .unwrap_or_else(|e| panic!("{}: {e}", ptx.display()));
    }
}

/// Every f32 multiply, add and subtract of the shipped PTX names its rounding mode (as
/// `nvrtc.py --fmad=false` emits them), so no assembler may fuse a pair into an FMA that
/// ptx-sim, executing each instruction as written, would not: the GPU rounds as the tests do.
#[test]
fn no_f32_multiply_or_add_is_left_for_the_assembler_to_fuse() {
    for ptx_path in files("ptx", "ptx") {
        let ptx = fs::read_to_string(&ptx_path).unwrap_or_else(|e| panic!("{ptx_path:?}: {e}"));
        for (n, line) in ptx.lines().enumerate() {
            // The opcode: the first word that is not a guard predicate (`@%p1`).
            let op = line
                .split_whitespace()
                .find(|w| !w.starts_with('@'))
                .unwrap_or("");
            assert!(
                !["mul.f32", "add.f32", "sub.f32"].contains(&op),
                "{}:{}: `{}` has no rounding mode; regenerate with kernels/nvrtc.py (--fmad=false)",
                ptx_path.display(),
                n + 1,
                line.trim()
            );
        }
    }
}

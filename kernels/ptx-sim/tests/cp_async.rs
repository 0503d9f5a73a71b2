//! `tests/kernels/cp_async.cu` and hand-written PTX: the Ampere asynchronous copy
//! (`cp.async.{ca,cg}.shared.global`, `cp.async.commit_group`, `cp.async.wait_group`,
//! `cp.async.wait_all`). A copy lands in shared memory only when its thread completes its group,
//! so a kernel missing a wait or a barrier reads stale data or fails the race checks; a
//! double-buffered pipeline gives exact sums on sizes with tails (src-size zero fill), every
//! cp-size and src-size is bit-exact, and bad addresses and operands are errors.

mod common;

use common::*;
use smelt_ptx_sim::{Arg, Dim3, ErrorKind, Launch, Module, Sim, SimError};

const CU: &str = include_str!("kernels/cp_async.cu");
const PTX: &str = include_str!("kernels/cp_async.ptx");

fn module() -> Module {
    Module::parse(PTX).unwrap_or_else(|e| panic!("cp_async.ptx does not parse: {e}"))
}

#[test]
fn ptx_is_regenerated_from_its_source() {
    assert_ptx_is_current("cp_async", CU, PTX);
}

#[test]
fn every_kernel_decodes() {
    module()
        .check()
        .unwrap_or_else(|e| panic!("cp_async.ptx: {e}"));
}

/// Deterministic pseudo-random u32 stream (an LCG; the top bits are used).
fn random_u32(seed: u64, n: usize) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 32) as u32
        })
        .collect()
}

/// Runs a kernel that must succeed without warnings.
#[track_caller]
fn run_clean(sim: &mut Sim, m: &Module, kernel: &str, launch: Launch, args: &[Arg]) {
    match sim.launch(m, kernel, launch, args) {
        Ok(r) => assert!(r.warnings.is_empty(), "{kernel}: {:?}", r.warnings),
        Err(e) => panic!("{kernel}: {e}"),
    }
}

/// Fails unless `e`'s message holds every one of `parts`.
#[track_caller]
fn assert_mentions(e: &SimError, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "{p:?} not in: {msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// The double-buffered pipeline
// ---------------------------------------------------------------------------------------------

const THREADS: usize = 64;
const TILE: usize = 256;

/// `pipelined_sum`'s output: per block and thread, the wrapping sum of its column of each of
/// the block's tiles.
fn pipelined_reference(x: &[u32], grid: usize) -> Vec<u32> {
    let tiles = x.len().div_ceil(TILE);
    let mut out = vec![0u32; grid * THREADS];
    for b in 0..grid {
        for t in 0..THREADS {
            let mut acc = 0u32;
            for j in (b..tiles).step_by(grid) {
                for k in 0..4 {
                    let i = j * TILE + k * THREADS + t;
                    acc = acc.wrapping_add(x.get(i).copied().unwrap_or(0));
                }
            }
            out[b * THREADS + t] = acc;
        }
    }
    out
}

fn run_pipelined(kernel: &str, n: usize, grid: u32) -> Result<Vec<u32>, SimError> {
    let m = module();
    let mut sim = Sim::new();
    let x = random_u32(n as u64, n);
    let xb = upload(&mut sim, &x);
    let out = sim.zeros(grid as usize * THREADS * 4);
    let args = [Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(n as i32)];
    let report = sim.launch(&m, kernel, launch1(grid, THREADS as u32), &args)?;
    assert!(
        report.warnings.is_empty(),
        "{kernel}: {:?}",
        report.warnings
    );
    Ok(read(&sim, out))
}

#[test]
fn a_double_buffered_cp_async_pipeline_sums_exactly_with_tails() {
    for (n, grid) in [
        (1, 1),
        (255, 1),
        (256, 1),
        (257, 1),
        (1000, 1),
        (1000, 2),
        (5 * TILE + 3, 3),
        (7 * TILE + 130, 2),
    ] {
        let x = random_u32(n as u64, n);
        let got = run_pipelined("pipelined_sum", n, grid).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got,
            pipelined_reference(&x, grid as usize),
            "n = {n}, grid = {grid}"
        );
    }
}

#[test]
fn a_pipeline_without_the_wait_reads_a_copy_that_has_not_completed() {
    for (n, grid) in [(256, 1), (1000, 2)] {
        let e = run_pipelined("pipelined_no_wait", n, grid).expect_err("no wait_group");
        assert_eq!(e.kind(), ErrorKind::Race, "{e}");
        assert_mentions(
            &e,
            &[
                "pipelined_no_wait",
                "cp.async of PTX line",
                "has not completed",
            ],
        );
        assert!(
            e.location().line.is_some() && e.location().address.is_some(),
            "{e}"
        );
    }
}

#[test]
fn a_pipeline_without_the_barrier_after_the_wait_races() {
    let e = run_pipelined("pipelined_no_sync", 1000, 1).expect_err("no __syncthreads");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert_mentions(&e, &["pipelined_no_sync", "shared-memory race"]);
}

#[test]
fn a_pipeline_refilling_a_buffer_others_still_read_races() {
    // One tile per block has no refill; four tiles in one block refill each buffer.
    let x = random_u32(256, 256);
    let got = run_pipelined("pipelined_no_resync", 256, 1).expect("one tile: no refill");
    assert_eq!(got, pipelined_reference(&x, 1));
    let e = run_pipelined("pipelined_no_resync", 1000, 1).expect_err("refill without a barrier");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert_mentions(
        &e,
        &[
            "pipelined_no_resync",
            "cp.async: shared-memory race: this write",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Sizes, zero fill and bad operands
// ---------------------------------------------------------------------------------------------

#[test]
fn every_cp_size_and_src_size_copies_and_zero_fills_bit_exactly() {
    let m = module();
    let mut sim = Sim::new();
    let src: Vec<u8> = random_u32(7, 32 * 32 / 4)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let sb = sim.upload_bytes(&src);
    let out = sim.zeros(32 * 32);
    run_clean(
        &mut sim,
        &m,
        "copy_sizes",
        launch1(1, 32),
        &[Arg::Ptr(sb), Arg::Ptr(out)],
    );
    let got = sim.read_bytes(out);
    for t in 0..32 {
        let mut want = [0u8; 32];
        for (start, size, taken) in [(0, 4, t % 5), (4, 4, 2), (8, 8, t % 9), (16, 16, t % 17)] {
            let from = t * 32 + start;
            want[start..start + taken].copy_from_slice(&src[from..from + taken]);
            assert!(taken <= size);
        }
        assert_eq!(&got[t * 32..t * 32 + 32], &want[..], "thread {t}");
    }
}

#[test]
fn misaligned_and_out_of_bounds_copies_are_errors() {
    let m = module();
    let n = 8;
    let cases = [
        (0, ErrorKind::Misaligned, "source"),
        (1, ErrorKind::Misaligned, "destination"),
        (2, ErrorKind::OutOfBounds, "global"),
        (3, ErrorKind::OutOfBounds, "src-size 17"),
        (4, ErrorKind::OutOfBounds, "shared"),
    ];
    let launch = Launch {
        grid: Dim3::x(1),
        block: Dim3::x(1),
        shared_bytes: 64,
    };
    for (mode, kind, what) in cases {
        let mut sim = Sim::new();
        let xb = upload(&mut sim, &vec![5u32; n]);
        let out = sim.zeros(4);
        let args = [
            Arg::Ptr(xb),
            Arg::I32(n as i32),
            Arg::I32(mode),
            Arg::Ptr(out),
        ];
        let e = expect_error(&mut sim, &m, "bad_copy", launch, &args, kind);
        assert_mentions(&e, &["cp.async", what]);
        assert!(
            e.location().line.is_some() && e.location().address.is_some(),
            "{e}"
        );
    }
    // src-size 0 reads nothing, so its source may lie past the end; the bytes are zeros.
    let mut sim = Sim::new();
    let xb = upload(&mut sim, &vec![5u32; n]);
    let out = upload(&mut sim, &[7u32]);
    let args = [Arg::Ptr(xb), Arg::I32(n as i32), Arg::I32(5), Arg::Ptr(out)];
    run_clean(&mut sim, &m, "bad_copy", launch, &args);
    assert_eq!(read::<u32>(&sim, out), vec![0]);
}

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

fn run_wait_groups(mode: i32) -> (Result<(), SimError>, Vec<u32>, Vec<u32>) {
    let m = module();
    let mut sim = Sim::new();
    let x = random_u32(11, 128);
    let xb = upload(&mut sim, &x);
    let out = sim.zeros(128 * 4);
    let args = [Arg::Ptr(xb), Arg::Ptr(out), Arg::I32(mode)];
    let r = sim.launch(&m, "wait_groups", launch1(1, 32), &args);
    let r = r.map(|rep| assert!(rep.warnings.is_empty(), "{:?}", rep.warnings));
    (r, x, read(&sim, out))
}

#[test]
fn wait_group_1_of_3_groups_completes_exactly_the_two_oldest() {
    let (r, x, out) = run_wait_groups(0);
    r.unwrap_or_else(|e| panic!("{e}"));
    for t in 0..32 {
        assert_eq!(&out[t * 2..t * 2 + 2], &x[t * 4..t * 4 + 2], "thread {t}");
    }
    let (r, ..) = run_wait_groups(1);
    let e = r.expect_err("group 3 is still pending");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert_mentions(&e, &["wait_groups", "read of 4 bytes", "has not completed"]);
}

#[test]
fn wait_group_leaves_uncommitted_copies_and_wait_all_completes_them() {
    let (r, ..) = run_wait_groups(2);
    let e = r.expect_err("the fourth copy was never committed");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert_mentions(&e, &["has not completed"]);
    let (r, x, out) = run_wait_groups(3);
    r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out, x);
    let (r, ..) = run_wait_groups(4);
    r.unwrap_or_else(|e| panic!("exit with copies pending completes them: {e}"));
}

#[test]
fn a_barrier_does_not_complete_another_threads_copy() {
    let (r, ..) = run_wait_groups(5);
    let e = r.expect_err("the neighbour's copy completes at its wait, after the read");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert_mentions(&e, &["wait_groups", "shared-memory race"]);
}

// ---------------------------------------------------------------------------------------------
// Hand-written PTX: the other operand forms and checks
// ---------------------------------------------------------------------------------------------

/// A module of kernel `k(x, out)` with 64 bytes of shared `sm` and the given body, after
/// `%rd1 = x`, `%rd2 = out` (global), `%r1 = sm` (shared) and `%r2 = %tid.x`.
fn kernel(body: &str) -> Module {
    let text = format!(
        "{HEADER}.visible .entry k(.param .u64 x, .param .u64 out)\n{{\n.reg .pred %p<4>;\n.reg .b32 %r<16>;\n.reg .b64 %rd<8>;\n.shared .align 16 .b8 sm[64];\nld.param.u64 %rd1, [x];\nld.param.u64 %rd2, [out];\nmov.u32 %r1, sm;\nmov.u32 %r2, %tid.x;\n{body}\nret;\n}}\n"
    );
    Module::parse(&text).unwrap_or_else(|e| panic!("does not parse: {e}\n{text}"))
}

/// Runs `k` on a 16-byte `x` of bytes 1..=16 with `threads` threads in `blocks` blocks;
/// returns the 16 bytes of `out` (zeros before) or the error.
fn run_k(m: &Module, blocks: u32, threads: u32) -> Result<Vec<u8>, SimError> {
    let mut sim = Sim::new();
    let x = sim.upload_bytes(&(1..=16).collect::<Vec<u8>>());
    let out = sim.zeros(16);
    sim.launch(
        m,
        "k",
        launch1(blocks, threads),
        &[Arg::Ptr(x), Arg::Ptr(out)],
    )?;
    Ok(sim.read_bytes(out))
}

const STORE_SM: &str =
    "ld.shared.v4.u32 {%r4, %r5, %r6, %r7}, [sm];\nst.global.v4.u32 [%rd2], {%r4, %r5, %r6, %r7};";

#[test]
fn the_ignore_src_predicate_zero_fills_and_a_cache_policy_is_ignored() {
    for (ignore, want) in [(1, vec![0u8; 16]), (0, (1..=16).collect())] {
        let m = kernel(&format!(
            "setp.ne.u32 %p1, {ignore}, 0;\ncp.async.cg.shared.global [%r1], [%rd1], 16, %p1;\ncp.async.wait_all;\n{STORE_SM}"
        ));
        assert_eq!(run_k(&m, 1, 1).expect("runs"), want, "ignore-src {ignore}");
    }
    let m = kernel(&format!(
        "mov.u64 %rd3, 0;\ncp.async.ca.shared.global.L2::cache_hint [%r1], [%rd1], 8, %rd3;\ncp.async.cg.shared::cta.global.L2::cache_hint.L2::128B [%r1+16], [%rd1], 16, 3, %rd3;\ncp.async.commit_group;\ncp.async.wait_group 0;\n{STORE_SM}\nld.shared.v4.u32 {{%r4, %r5, %r6, %r7}}, [sm+16];\nst.global.v4.u32 [%rd2], {{%r4, %r5, %r6, %r7}};"
    ));
    let mut want = vec![0u8; 16];
    want[..3].copy_from_slice(&[1, 2, 3]);
    assert_eq!(run_k(&m, 1, 1).expect("runs"), want);
}

#[test]
fn writing_a_pending_destination_or_copying_to_it_twice_is_an_error() {
    let m = kernel("cp.async.ca.shared.global [%r1+4], [%rd1], 4;\nst.shared.u32 [sm+4], 0;");
    let e = run_k(&m, 1, 1).expect_err("store to a pending destination");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert_mentions(
        &e,
        &["this write of 4 bytes", "PTX line 14", "has not completed"],
    );
    assert_eq!(e.location().line, Some(15), "{e}");
    assert_eq!(e.location().address, Some(4), "{e}");
    let m = kernel(
        "cp.async.ca.shared.global [%r1], [%rd1], 8;\ncp.async.cg.shared.global [%r1], [%rd1], 16;",
    );
    let e = run_k(&m, 1, 1).expect_err("two pending copies to the same bytes");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert_mentions(&e, &["undefined"]);
    // Completed, the destination is the thread's to read and write.
    let m = kernel(&format!(
        "cp.async.ca.shared.global [%r1], [%rd1], 8;\ncp.async.wait_all;\ncp.async.cg.shared.global [%r1], [%rd1], 16, 5;\ncp.async.wait_all;\n{STORE_SM}"
    ));
    let mut want = vec![0u8; 16];
    want[..5].copy_from_slice(&[1, 2, 3, 4, 5]);
    assert_eq!(run_k(&m, 1, 1).expect("runs"), want);
}

#[test]
fn another_thread_touching_the_destination_before_the_wait_is_a_race() {
    // Thread 0 copies into word 0; thread 1 reads it one barrier later, thread 0 waits only
    // after a second barrier: the copy may have landed during the read.
    let m = kernel(
        "setp.eq.u32 %p1, %r2, 0;\n@%p1 cp.async.ca.shared.global [%r1], [%rd1], 4;\nbar.sync 0;\nsetp.eq.u32 %p2, %r2, 1;\n@%p2 ld.shared.u32 %r4, [sm];\nbar.sync 0;\ncp.async.wait_all;",
    );
    let e = run_k(&m, 1, 64).expect_err("read during the copy");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert_mentions(&e, &["thread (1,0,0) read", "before this wait"]);
    // With the wait before the barriers the read comes after the copy.
    let m = kernel(
        "setp.eq.u32 %p1, %r2, 0;\n@%p1 cp.async.ca.shared.global [%r1], [%rd1], 4;\ncp.async.wait_all;\nbar.sync 0;\nsetp.eq.u32 %p2, %r2, 1;\n@%p2 ld.shared.u32 %r4, [sm];\n@%p2 st.global.u32 [%rd2], %r4;",
    );
    assert_eq!(&run_k(&m, 1, 64).expect("ordered")[..4], &[1, 2, 3, 4]);
}

#[test]
fn a_copy_of_global_bytes_another_block_stored_is_a_global_race() {
    let m = kernel(
        "mov.u32 %r3, %ctaid.x;\nsetp.eq.u32 %p1, %r3, 0;\n@%p1 st.global.u32 [%rd1], 9;\n@!%p1 cp.async.ca.shared.global [%r1], [%rd1], 4;\ncp.async.wait_all;",
    );
    let e = run_k(&m, 2, 1).expect_err("block 1 copies what block 0 stored");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert_mentions(
        &e,
        &[
            "global-memory race",
            "completing the cp.async of PTX line 17",
        ],
    );
}

#[test]
fn a_thread_committing_groups_without_end_is_stopped() {
    let m = kernel(
        "mov.u32 %r3, 0;\nLOOP:\ncp.async.commit_group;\nadd.u32 %r3, %r3, 1;\nsetp.lt.u32 %p1, %r3, 5000;\n@%p1 bra LOOP;",
    );
    let e = run_k(&m, 1, 32).expect_err("groups never waited for");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_mentions(
        &e,
        &["1024 cp.async copies and groups pending", "PTX line 16"],
    );
}

#[test]
fn malformed_and_unsupported_cp_async_forms_are_errors() {
    for (body, kind, what) in [
        (
            "cp.async.ca.shared.global [%r1], [%rd1], 12;",
            ErrorKind::Parse,
            "cp-size",
        ),
        (
            "cp.async.cg.shared.global [%r1], [%rd1], 8;",
            ErrorKind::Parse,
            "16",
        ),
        ("cp.async.wait_group %r2;", ErrorKind::Parse, "constant"),
        (
            "cp.async.ca.shared.global [%r1], [%rd1], 4, 4, 4;",
            ErrorKind::Parse,
            "too many",
        ),
        (
            "cp.async.ca.shared.global.L2::evict_last [%r1], [%rd1], 4;",
            ErrorKind::Unsupported,
            "cp.async.ca.shared.global.L2::evict_last",
        ),
        (
            "cp.async.mbarrier.arrive.b64 [%rd1];",
            ErrorKind::Unsupported,
            "cp.async.mbarrier.arrive.b64",
        ),
        (
            "cp.async.bulk.shared::cluster.global [%r1], [%rd1], 16, [%rd2];",
            ErrorKind::Unsupported,
            "cp.async.bulk",
        ),
    ] {
        let text = format!(
            "{HEADER}.visible .entry k(.param .u64 x)\n{{\n.reg .b32 %r<4>;\n.reg .b64 %rd<4>;\n{body}\nret;\n}}\n"
        );
        let e = Module::parse(&text)
            .and_then(|m| m.check())
            .expect_err(body);
        assert_eq!(e.kind(), kind, "{body}: {e}");
        assert_mentions(&e, &[what, "line 8"]);
    }
}

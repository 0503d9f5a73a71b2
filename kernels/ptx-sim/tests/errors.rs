//! Bad input gets a clear error, never a panic: malformed PTX, unsupported instructions,
//! unknown kernels, wrong arguments, impossible launch sizes; and the warnings and warp checks
//! that the corpus does not reach.

use smelt_ptx_sim::{Arg, Dim3, ErrorKind, Launch, Module, Sim, SimError};

mod common;
use common::{parse_err, HEADER};

/// A module of one kernel `k` with the given parameters and body (registers declared).
fn kernel(params: &str, body: &str) -> String {
    format!(
        "{HEADER}.visible .entry k({params})\n{{\n.reg .pred %p<4>;\n.reg .b32 %r<16>;\n.reg .f32 %f<8>;\n.reg .b64 %rd<8>;\n{body}\n}}\n"
    )
}

fn one_block(threads: u32) -> Launch {
    Launch {
        grid: Dim3::x(1),
        block: Dim3::x(threads),
        shared_bytes: 0,
    }
}

#[track_caller]
fn launch_err(text: &str, launch: Launch, args: &[Arg]) -> SimError {
    let m = Module::parse(text).unwrap_or_else(|e| panic!("does not parse: {e}"));
    let mut sim = Sim::new();
    match sim.launch(&m, "k", launch, args) {
        Ok(_) => panic!("launch succeeded, want an error"),
        Err(e) => e,
    }
}

#[test]
fn malformed_ptx_names_the_line() {
    let text = kernel("", "mov.u32 %r1, 1;\nadd.u32 %r2, %r1 %r1;\nret;");
    let e = parse_err(&text);
    assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
    assert_eq!(e.location().line, Some(11), "{e}");
    let e = parse_err(&format!("{HEADER}.visible .entry k(\n"));
    assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
    assert!(e.to_string().contains("end of PTX"), "{e}");
    let e = parse_err(&format!(
        "{HEADER}.visible .entry k() {{ mov.u32 %r1, 0x; }}"
    ));
    assert!(e.to_string().contains("0x"), "{e}");
}

#[test]
fn undeclared_register_and_unknown_label_are_errors() {
    let text = kernel("", "mov.u32 %q1, 1;\nret;");
    let e = launch_err(&text, one_block(1), &[]);
    assert!(e.to_string().contains("%q1"), "{e}");
    let text = kernel("", "bra NOWHERE;\nret;");
    let e = launch_err(&text, one_block(1), &[]);
    assert!(e.to_string().contains("NOWHERE"), "{e}");
}

#[test]
fn unsupported_instruction_names_itself_and_its_line() {
    let text = kernel(
        "",
        "mov.u64 %rd1, 0;\ncp.async.mbarrier.arrive.b64 [%rd1];\nret;",
    );
    let m = Module::parse(&text).expect("parses; the kernel fails when launched");
    let e = m.check().expect_err("cp.async.mbarrier is not supported");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("cp.async.mbarrier.arrive.b64")
            && msg.contains("line 11")
            && msg.contains("kernel k"),
        "{msg}"
    );
    let mut sim = Sim::new();
    let e = sim
        .launch(&m, "k", one_block(1), &[])
        .expect_err("launch of an unsupported kernel");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}

#[test]
fn unknown_kernel_lists_the_ones_there_are() {
    let text = kernel("", "ret;");
    let m = Module::parse(&text).expect("parses");
    let e = Sim::new()
        .launch(&m, "nope", one_block(1), &[])
        .expect_err("no such kernel");
    assert_eq!(e.kind(), ErrorKind::Launch);
    assert!(
        e.message()
            .contains("no kernel named \"nope\" in the module (it has: k)"),
        "{e}"
    );
}

#[test]
fn wrong_argument_count_or_type_is_a_launch_error() {
    let text = kernel(".param .u64 p, .param .f32 s", "ret;");
    let m = Module::parse(&text).expect("parses");
    let mut sim = Sim::new();
    let buf = sim.zeros(16);
    let e = sim
        .launch(&m, "k", one_block(1), &[Arg::Ptr(buf)])
        .expect_err("too few");
    assert!(
        e.to_string().contains("takes 2 arguments, 1 were given"),
        "{e}"
    );
    let e = sim
        .launch(&m, "k", one_block(1), &[Arg::Ptr(buf), Arg::U32(1)])
        .expect_err("u32 for f32");
    assert!(e.to_string().contains("parameter s"), "{e}");
    let e = sim
        .launch(&m, "k", one_block(1), &[Arg::F64(1.0), Arg::F32(1.0)])
        .expect_err("f64 for a pointer");
    assert!(e.to_string().contains("parameter p"), "{e}");
    let mut other = Sim::new();
    let foreign = other.zeros(64);
    let e = sim
        .launch(&m, "k", one_block(1), &[Arg::Ptr(foreign), Arg::F32(1.0)])
        .expect_err("foreign buffer");
    assert!(e.to_string().contains("not in this simulator"), "{e}");
    sim.launch(&m, "k", one_block(1), &[Arg::Ptr(buf), Arg::F32(1.0)])
        .expect("right arguments run");
}

/// A freed buffer is gone: passing it to a launch is an error, a kernel that still writes
/// through its address (given as a plain integer) writes out of bounds, and freeing it again,
/// or another simulator's buffer, is an error.
#[test]
fn a_freed_buffer_cannot_be_reached_or_freed_again() {
    let text = kernel(
        ".param .u64 p",
        "ld.param.u64 %rd1, [p];\nst.global.u32 [%rd1], 7;\nret;",
    );
    let m = Module::parse(&text).expect("parses");
    let mut sim = Sim::new();
    let (kept, freed) = (sim.zeros(16), sim.zeros(16));
    sim.free(freed).expect("a live buffer");
    let e = sim
        .launch(&m, "k", one_block(1), &[Arg::Ptr(freed)])
        .expect_err("a freed buffer");
    assert!(e.to_string().contains("not in this simulator"), "{e}");
    let e = sim
        .launch(&m, "k", one_block(1), &[Arg::U64(freed.addr())])
        .expect_err("a store to freed memory");
    assert_eq!(e.kind(), ErrorKind::OutOfBounds, "{e}");
    let e = sim.free(freed).expect_err("freed twice");
    assert!(e.to_string().contains("not a live buffer"), "{e}");
    let foreign = Sim::new().zeros(4);
    assert!(sim.free(foreign).is_err());
    sim.launch(&m, "k", one_block(1), &[Arg::Ptr(kept)])
        .expect("the other buffer is still there");
    assert_eq!(sim.read_u32(kept)[0], 7);
}

#[test]
fn launch_sizes_are_checked_against_cuda_limits() {
    let text = kernel("", "ret;");
    let m = Module::parse(&text).expect("parses");
    let mut sim = Sim::new();
    for (grid, block, shared) in [
        (Dim3::x(0), Dim3::x(32), 0),
        (Dim3::x(1), Dim3::new(32, 0, 1), 0),
        (Dim3::x(1), Dim3::x(1025), 0),
        (Dim3::x(1), Dim3::new(32, 32, 2), 0),
        (Dim3::new(1, 65536, 1), Dim3::x(32), 0),
        (Dim3::x(1), Dim3::x(32), 300_000),
    ] {
        let e = sim
            .launch(
                &m,
                "k",
                Launch {
                    grid,
                    block,
                    shared_bytes: shared,
                },
                &[],
            )
            .expect_err("bad launch");
        assert_eq!(e.kind(), ErrorKind::Launch, "{e}");
    }
    sim.launch(
        &m,
        "k",
        Launch {
            grid: Dim3::x(1),
            block: Dim3::x(1024),
            shared_bytes: 0,
        },
        &[],
    )
    .expect("1024 threads are fine");
}

/// Runs `kernel(params, body)` on one block of `threads` threads and checks that it gave
/// exactly one warning, naming every one of `names`. `params` is empty or one pointer, which
/// gets a 4-byte output buffer.
fn assert_one_warning(params: &str, body: &str, threads: u32, names: &[&str]) {
    let m = Module::parse(&kernel(params, body)).expect("parses");
    let mut sim = Sim::new();
    let out = sim.zeros(4);
    let args = if params.is_empty() {
        vec![]
    } else {
        vec![Arg::Ptr(out)]
    };
    let report = sim
        .launch(&m, "k", one_block(threads), &args)
        .expect("runs");
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        names.iter().all(|n| report.warnings[0].contains(n)),
        "{:?}",
        report.warnings
    );
}

#[test]
fn reading_a_register_never_written_is_a_warning() {
    let body = "ld.param.u64 %rd1, [p];\ncvta.to.global.u64 %rd2, %rd1;\nadd.s32 %r2, %r1, 1;\nst.global.u32 [%rd2], %r2;\nret;";
    assert_one_warning(".param .u64 p", body, 1, &["%r1", "line 12"]);
}

#[test]
fn a_guard_predicate_never_written_is_a_warning() {
    // %p1 reads as false, so no lane branches; every lane still read it.
    assert_one_warning("", "@%p1 bra DONE;\nDONE:\nret;", 32, &["%p1", "line 10"]);
}

#[test]
fn shuffling_from_a_lane_that_does_not_take_part_is_a_warning() {
    // The low half shuffles among itself but reads lane 20: once per line and source lane.
    let body = "mov.u32 %r1, %laneid;\nsetp.ge.u32 %p1, %r1, 16;\n@%p1 bra DONE;\n\
        shfl.sync.idx.b32 %r2, %r1, 20, 31, 0xffff;\nDONE:\nret;";
    assert_one_warning("", body, 32, &["lane 20", "line 13"]);
}

#[test]
fn shfl_with_a_lane_that_exited_is_a_warp_error() {
    // Lanes 16..31 exit; the rest shuffle with a full member mask.
    let body = "mov.u32 %r1, %tid.x;\nsetp.ge.u32 %p1, %r1, 16;\n@%p1 bra DONE;\nshfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;\nDONE:\nret;";
    let e = launch_err(&kernel("", body), one_block(32), &[]);
    assert_eq!(e.kind(), ErrorKind::Warp, "{e}");
    assert!(e.to_string().contains("exited"), "{e}");
}

#[test]
fn endless_loop_stops_at_the_instruction_limit() {
    let m = Module::parse(&kernel("", "LOOP:\nbra LOOP;")).expect("parses");
    let mut sim = Sim::new();
    sim.set_instruction_limit(100_000);
    let e = sim
        .launch(&m, "k", one_block(32), &[])
        .expect_err("endless");
    assert_eq!(e.kind(), ErrorKind::InstructionLimit, "{e}");
    assert!(e.to_string().contains("instruction limit"), "{e}");
}

#[test]
fn recursion_is_reported_as_unsupported() {
    let text = format!(
        "{HEADER}.func f()\n{{\ncall.uni f, ();\nret;\n}}\n.visible .entry k()\n{{\ncall.uni f, ();\nret;\n}}\n"
    );
    let m = Module::parse(&text).expect("parses");
    let e = m.check().expect_err("recursion");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("recursive"), "{e}");
}

#[test]
fn calling_an_entry_is_an_error_naming_it() {
    // Only a .func may be called; jumping into a kernel would exit at its `ret`.
    let text = format!(
        "{HEADER}.visible .entry helper()\n{{\nret;\n}}\n.visible .entry k(.param .u64 p)\n{{\ncall helper;\nret;\n}}\n"
    );
    let m = Module::parse(&text).expect("parses");
    let e = m.check().expect_err("a call to an entry");
    assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
    assert!(
        e.message().contains("call to helper, which is an .entry"),
        "{e}"
    );
    assert_eq!(e.location().line, Some(10), "{e}");
    let mut sim = Sim::new();
    let out = sim.zeros(4);
    let e = sim
        .launch(&m, "k", one_block(1), &[Arg::Ptr(out)])
        .expect_err("a call to an entry");
    assert!(e.to_string().contains("helper"), "{e}");
}

#[test]
fn recursion_through_other_functions_is_found_and_a_diamond_is_not() {
    // f -> g -> h -> f, and a diamond (k -> a, b -> c) that is not recursive.
    let func = |name: &str, calls: &[&str]| {
        let body: String = calls.iter().map(|c| format!("call {c};\n")).collect();
        format!(".func {name}()\n{{\n{body}ret;\n}}\n")
    };
    let text = |entry_calls: &[&str]| {
        let funcs = [
            func("c", &[]),
            func("a", &["c"]),
            func("b", &["c"]),
            func("h", &["f"]),
            func("g", &["h"]),
            func("f", &["g"]),
        ];
        let entry = func("k", entry_calls).replace(".func", ".visible .entry");
        format!("{HEADER}{}{entry}", funcs.concat())
    };
    let e = Module::parse(&text(&["a", "b", "f"]))
        .expect("parses")
        .check()
        .expect_err("recursion");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.message().contains("recursive call to f"), "{e}");
    Module::parse(&text(&["a", "b"]))
        .expect("parses")
        .check()
        .expect("a diamond is not recursion");
}

#[test]
fn brx_idx_jumps_through_its_table_and_traps_out_of_range() {
    let body = "ld.param.u64 %rd1, [p];\ncvta.to.global.u64 %rd2, %rd1;\nmov.u32 %r1, %tid.x;\n\
        mul.wide.u32 %rd3, %r1, 4;\nadd.s64 %rd4, %rd2, %rd3;\nld.global.u32 %r2, [%rd4];\n\
        TABLE: .branchtargets L0, L1, L2;\nbrx.idx %r2, TABLE;\n\
        L0:\nmov.u32 %r3, 100;\nbra DONE;\nL1:\nmov.u32 %r3, 200;\nbra DONE;\n\
        L2:\nmov.u32 %r3, 300;\nDONE:\nst.global.u32 [%rd4], %r3;\nret;";
    let m = Module::parse(&kernel(".param .u64 p", body)).expect("parses");
    let mut sim = Sim::new();
    let buf = sim.upload_u32(&[2, 0, 1, 1, 0]);
    sim.launch(&m, "k", one_block(5), &[Arg::Ptr(buf)])
        .expect("brx.idx runs");
    assert_eq!(sim.read_u32(buf), vec![300, 100, 200, 200, 100]);
    let buf = sim.upload_u32(&[0, 3]);
    let e = sim
        .launch(&m, "k", one_block(2), &[Arg::Ptr(buf)])
        .expect_err("index 3 of 3 targets");
    assert_eq!(e.kind(), ErrorKind::Trap, "{e}");
    assert!(e.message().contains("brx.idx index 3"), "{e}");
    assert_eq!(e.location().thread, Some([1, 0, 0]), "{e}");
}

#[test]
fn launch_bounds_of_the_kernel_are_enforced() {
    let text = format!(
        "{HEADER}.visible .entry k() .reqntid 64, 2\n{{\nret;\n}}\n.visible .entry m() .maxntid 128, 1, 1 .minnctapersm 2\n{{\nret;\n}}\n"
    );
    let m = Module::parse(&text).expect("parses");
    let mut sim = Sim::new();
    let square = |x, y| Launch {
        grid: Dim3::x(1),
        block: Dim3::xy(x, y),
        shared_bytes: 0,
    };
    sim.launch(&m, "k", square(64, 2), &[])
        .expect("the required block");
    let e = sim
        .launch(&m, "k", square(128, 1), &[])
        .expect_err("not the required block");
    assert_eq!(e.kind(), ErrorKind::Launch, "{e}");
    assert!(e.message().contains(".reqntid 64x2x1"), "{e}");
    sim.launch(&m, "m", square(32, 4), &[])
        .expect("128 threads in any shape");
    let e = sim
        .launch(&m, "m", square(129, 1), &[])
        .expect_err("too many threads");
    assert!(e.message().contains(".maxntid"), "{e}");
}

#[test]
fn warp_lanes_that_disagree_on_the_member_mask_are_a_warp_error() {
    // Lane 0 names the whole warp, the others leave lane 0 out.
    let body = "mov.u32 %r1, %laneid;\nsetp.eq.u32 %p1, %r1, 0;\nselp.b32 %r2, -1, -2, %p1;\n\
        shfl.sync.idx.b32 %r3, %r1, 0, 31, %r2;\nret;";
    let e = launch_err(&kernel("", body), one_block(32), &[]);
    assert_eq!(e.kind(), ErrorKind::Warp, "{e}");
    assert!(e.message().contains("member mask 0xfffffffe"), "{e}");
}

#[test]
fn data_exchanging_warp_instructions_must_meet_at_one_instruction() {
    // Each half shuffles at its own shfl.sync with the full mask: only bar.warp.sync may meet
    // across instructions.
    let body = "mov.u32 %r1, %laneid;\nsetp.lt.u32 %p1, %r1, 16;\n@%p1 bra A;\n\
        shfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;\nbra J;\nA:\nshfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;\n\
        J:\nret;";
    let e = launch_err(&kernel("", body), one_block(32), &[]);
    assert_eq!(e.kind(), ErrorKind::Warp, "{e}");
    assert!(
        e.message().contains("another warp-synchronous instruction"),
        "{e}"
    );
}

#[test]
fn header_asm_forms_parse_and_unsupported_forms_say_so() {
    // `.reg.b16` written as one word, as cuda_fp16.hpp's inline asm does.
    let body = "{.reg.b16 c;\nmov.b16 c, 0X3C00U;\nmov.b32 %r1, {c, c};\n}\nret;";
    let m = Module::parse(&kernel("", body)).expect("parses");
    m.check().expect("runs");
    // An indirect call: its prototype parses, the call is unsupported.
    let body = "mov.u64 %rd1, 0;\nproto: .callprototype ()_ (.param .b32 _);\n\
        {\n.param .b32 a;\nst.param.b32 [a], 1;\ncall %rd1, (a), proto;\n}\nret;";
    let e = Module::parse(&kernel("", body))
        .expect("parses")
        .check()
        .expect_err("indirect call");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.message().contains("indirect"), "{e}");
    // Types the interpreter has no arithmetic for, and video instructions with selectors.
    for (inst, what) in [
        ("cvt.rn.satfinite.e4m3x2.f32 %r1, %f1, %f2;", "e4m3x2"),
        ("min.s16x2 %r1, %r2, %r3;", "s16x2"),
        (
            "vabsdiff4.u32.u32.u32 %r1, %r2.b3210, %r3, %r4;",
            "selectors",
        ),
        ("bar.red.max.u32 %r1, 0, %p1;", "bar.red.max"),
    ] {
        let e = Module::parse(&kernel("", &format!("{inst}\nret;")))
            .expect("parses")
            .check()
            .expect_err(inst);
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{inst}: {e}");
        assert!(e.message().contains(what), "{inst}: {e}");
        assert_eq!(e.location().line, Some(10), "{inst}: {e}");
    }
}

#[test]
fn barrier_operands_must_be_uniform_and_counts_whole_warps() {
    let cases = [
        // Lanes of one warp name different barriers.
        (
            "mov.u32 %r1, %tid.x;\nand.b32 %r2, %r1, 1;\nbar.sync %r2;",
            64,
            ErrorKind::BarrierDivergence,
            "lane 0 names barrier 0 for 64 threads, lane 1 barrier 1 for 64",
        ),
        // A count that is not a multiple of the warp size.
        (
            "bar.sync 0, 48;",
            64,
            ErrorKind::Launch,
            "thread count 48",
        ),
        // Warp 0 expects 64 threads at barrier 1, warp 1 expects 96; warps 2 and 3 skip it.
        (
            "mov.u32 %r1, %tid.x;\nsetp.ge.u32 %p1, %r1, 64;\n@%p1 bra DONE;\n\
             setp.lt.u32 %p2, %r1, 32;\n@%p2 bra A;\nbar.sync 1, 96;\nbra DONE;\nA:\nbar.sync 1, 64;\nDONE:\nret;",
            128,
            ErrorKind::BarrierDivergence,
            "expecting 64 threads (PTX line 18) and 96 threads",
        ),
        // Two `bar.sync` instructions on one line are still two barriers.
        (
            "mov.u32 %r1, %tid.x;\nsetp.lt.u32 %p1, %r1, 32;\n@%p1 bra A;\n\
             bar.sync 0; bra DONE; A: bar.sync 0;\nDONE:\nret;",
            64,
            ErrorKind::BarrierDivergence,
            "at different instructions (PTX lines 13 and 13)",
        ),
    ];
    for (body, threads, kind, want) in cases {
        let e = launch_err(&kernel("", body), one_block(threads), &[]);
        assert_eq!(e.kind(), kind, "{body}: {e}");
        assert!(e.message().contains(want), "{body}: {e}");
    }
    // Uniform operands and whole warps are fine.
    let body = "mov.u32 %r1, %tid.x;\nsetp.ge.u32 %p1, %r1, 64;\n@%p1 bra DONE;\nbar.sync 1, 64;\nDONE:\nret;";
    let m = Module::parse(&kernel("", body)).expect("parses");
    Sim::new()
        .launch(&m, "k", one_block(128), &[])
        .expect("two warps meet at barrier 1");
}

/// Atomics of different threads on the same bytes are not ordered with each other, so a plain
/// access after them in the same barrier interval races with every other thread's atomic, even
/// when this thread made the last one.
#[test]
fn a_plain_read_after_two_threads_atomics_is_a_race() {
    // Threads 0 and 32 add atomically, then thread 32 reads.
    let body = |sync: &str| {
        let k = format!(
            ".shared .align 4 .b32 s;\nmov.u32 %r1, %tid.x;\nand.b32 %r2, %r1, 31;\n\
             setp.eq.u32 %p1, %r2, 0;\nsetp.eq.u32 %p2, %r1, 32;\n\
             @%p1 atom.shared.add.u32 %r3, [s], 1;\n{sync}\n@%p2 ld.shared.u32 %r4, [s];\nret;"
        );
        Module::parse(&kernel("", &k)).unwrap_or_else(|e| panic!("does not parse: {e}"))
    };
    let e = Sim::new()
        .launch(&body(""), "k", one_block(64), &[])
        .expect_err("a race");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert!(e.message().contains("a write by other threads"), "{e}");
    Sim::new()
        .launch(&body("bar.sync 0;"), "k", one_block(64), &[])
        .expect("a barrier orders the atomics before the read");
}

/// Blocks run one after another here but at the same time on a GPU: a plain global load of
/// bytes another block stored in the same launch, or a store of other values over them, is
/// a race; a block reading its own stores, a second launch reading the first's, a store of
/// the same values, and a kernel that may order its blocks itself (a fence, a volatile
/// access) are not. A non-coherent load (`ld.global.nc`) of bytes the launch wrote is an
/// error even in the block that wrote them.
#[test]
fn global_memory_shared_between_blocks_of_a_launch_is_a_race() {
    // Block b stores its x index at p[b] (4 bytes), then `op` runs on p[other],
    // `other` given by `pick` from the block index.
    let run_on = |grid: Dim3, pick: &str, op: &str, fence: &str| {
        let body = format!(
            "ld.param.u64 %rd1, [p];\ncvta.to.global.u64 %rd1, %rd1;\nmov.u32 %r1, %ctaid.x;\n\
             mul.wide.u32 %rd2, %r1, 4;\nadd.s64 %rd3, %rd1, %rd2;\nst.global.u32 [%rd3], %r1;\n\
             {fence}\n{pick}\nmul.wide.u32 %rd4, %r2, 4;\nadd.s64 %rd5, %rd1, %rd4;\n{op}\nret;"
        );
        let m = Module::parse(&kernel(".param .u64 p", &body)).expect("parses");
        let mut sim = Sim::new();
        let buf = sim.zeros(64);
        let launch = Launch {
            grid,
            block: Dim3::x(1),
            shared_bytes: 0,
        };
        let first = sim.launch(&m, "k", launch, &[Arg::Ptr(buf)]);
        first.and_then(|_| sim.launch(&m, "k", launch, &[Arg::Ptr(buf)]))
    };
    let run =
        |pick: &str, op: &str, fence: &str, blocks: u32| run_on(Dim3::x(blocks), pick, op, fence);
    let previous = "mov.u32 %r2, 0;";
    let own = "mov.u32 %r2, %r1;";
    let load = "ld.global.u32 %r3, [%rd5];";
    let store = "st.global.u32 [%rd5], %r1;";
    for (op, what) in [(load, "load of 4 bytes"), (store, "store of 4 bytes")] {
        let e = run(previous, op, "", 2).expect_err("block 1 meets block 0's store");
        assert_eq!(e.kind(), ErrorKind::Race, "{e}");
        assert!(
            e.message().contains(&format!(
                "global-memory race: this {what} and a store by block (0,0,0) of the same launch"
            )),
            "{e}"
        );
        assert!(e.to_string().contains("block (1,0,0)"), "{e}");
        run(own, op, "", 2).expect("a block's own bytes");
        run(previous, op, "", 1).expect("one block, and the second launch reads the first's");
        run(previous, op, "membar.gl;", 2).expect("a kernel with a fence orders its blocks");
    }
    let volatile = "ld.volatile.global.u32 %r3, [%rd5];";
    run(previous, volatile, "", 2).expect("blocks may synchronise through volatile accesses");
    let zero = "mov.u32 %r6, 0;\nst.global.u32 [%rd5], %r6;";
    run(previous, zero, "", 2).expect("block 0 stored 0 there too");
    // Block (1,0,0) of a grid whose x times y passes u32 is named right, not a panic.
    let wide = Dim3::new(131_072, 32_768, 1);
    let e = run_on(wide, previous, load, "").expect_err("block 1 meets block 0's store");
    assert!(e.to_string().contains("block (1,0,0)"), "{e}");
    let e = run(own, "ld.global.nc.u32 %r3, [%rd5];", "", 1).expect_err("stale");
    assert_eq!(e.kind(), ErrorKind::Race, "{e}");
    assert!(
        e.message()
            .contains("ld.global.nc of 4 bytes the launch wrote"),
        "{e}"
    );
}

/// ptxas rejects a name defined twice: two kernels of one name, a label twice in a function,
/// a register twice in one scope. Each is a parse error naming it and both lines.
#[test]
fn duplicate_definitions_are_parse_errors() {
    let two_kernels =
        format!("{HEADER}.visible .entry k()\n{{\nret;\n}}\n.visible .entry k()\n{{\ntrap;\n}}\n");
    let label = kernel("", "L:\nL:\nret;");
    let reg = kernel("", ".reg .b32 %x;\nmov.u32 %r1, 1;\n.reg .b32 %x;\nret;");
    let numbered = kernel("", ".reg .b32 %q<2>, %q<4>;\nret;");
    for (text, line, want) in [
        (
            &two_kernels,
            8,
            "duplicate definition of .entry k (first defined on line 4)",
        ),
        (&label, 11, "duplicate label L (first defined on line 10)"),
        (
            &reg,
            12,
            "duplicate declaration of register %x in one scope (first declared on line 10)",
        ),
        (
            &numbered,
            10,
            "duplicate declaration of register %q<4> in one scope (first declared on line 10)",
        ),
    ] {
        let e = parse_err(text);
        assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
        assert_eq!(e.location().line, Some(line), "{e}");
        assert!(e.message().contains(want), "{e}");
    }
    // A nested scope may declare a name again, a function may be declared before its
    // definition, and `%r` and `%r<4>` are different names.
    let ok = format!(
        "{HEADER}.func f();\n.func f()\n{{\nret;\n}}\n.visible .entry k()\n{{\n\
         .reg .b32 %r<4>;\n.reg .b32 %r;\n{{\n.reg .b32 %r<4>;\nmov.u32 %r1, 1;\n}}\ncall f, ();\nret;\n}}\n"
    );
    let m = Module::parse(&ok).unwrap_or_else(|e| panic!("does not parse: {e}"));
    Sim::new().launch(&m, "k", one_block(1), &[]).expect("runs");
}

/// A barrier id of 16 or more is reported as such, not as a bad thread count.
#[test]
fn barrier_id_out_of_range_is_named() {
    for (body, id) in [("bar.sync 99;", 99), ("bar.sync 16, 32;", 16)] {
        let e = launch_err(&kernel("", &format!("{body}\nret;")), one_block(32), &[]);
        assert_eq!(e.kind(), ErrorKind::Launch, "{body}: {e}");
        assert!(
            e.message().contains(&format!(
                "barrier id {id} is out of range: a block has 16 barriers, ids 0 to 15"
            )),
            "{body}: {e}"
        );
        assert!(!e.message().contains("thread count"), "{body}: {e}");
    }
}

/// A vector width other than `.v2` and `.v4` is named as the problem, not the number of
/// values: `.v8` of 32-bit elements is PTX the simulator does not run, the rest is not PTX.
#[test]
fn bad_vector_width_is_named() {
    let cases = [
        (
            "ld.global.v8.u32 {%r1, %r2, %r3, %r4, %r5, %r6, %r7, %r8}, [%rd1];",
            ErrorKind::Unsupported,
            "vector width .v8 (a 256-bit access, PTX ISA 8.8 on sm_100 and later) is not supported; the supported widths are .v2 and .v4",
        ),
        (
            "st.global.v8.f32 [%rd1], {%f1, %f1, %f1, %f1, %f1, %f1, %f1, %f1};",
            ErrorKind::Unsupported,
            "vector width .v8",
        ),
        (
            "ld.global.v8.u16 %r1, [%rd1];",
            ErrorKind::Parse,
            ".v8 is not a valid vector width here; PTX has .v2 and .v4",
        ),
        (
            "ld.global.v3.u32 {%r1, %r2, %r3}, [%rd1];",
            ErrorKind::Parse,
            ".v3 is not a valid vector width here",
        ),
    ];
    for (inst, kind, want) in cases {
        let e = Module::parse(&kernel("", &format!("mov.u64 %rd1, 0;\n{inst}\nret;")))
            .expect("parses; the kernel fails when decoded")
            .check()
            .expect_err(inst);
        assert_eq!(e.kind(), kind, "{inst}: {e}");
        assert!(e.message().contains(want), "{inst}: {e}");
        assert!(!e.message().contains("values"), "{inst}: {e}");
        assert_eq!(e.location().line, Some(11), "{inst}: {e}");
    }
}

/// Launching from a module with no kernel says the module has none.
#[test]
fn module_without_kernels_says_so() {
    let only_func = format!("{HEADER}.func f()\n{{\nret;\n}}\n");
    for text in ["", HEADER, only_func.as_str()] {
        let m = Module::parse(text).unwrap_or_else(|e| panic!("does not parse: {e}"));
        let e = Sim::new()
            .launch(&m, "k", one_block(1), &[])
            .expect_err("no kernel");
        assert_eq!(e.kind(), ErrorKind::Launch, "{e}");
        assert_eq!(
            e.message(),
            "no kernel named \"k\": the module has no kernels (no .entry)",
            "{text:?}"
        );
    }
}

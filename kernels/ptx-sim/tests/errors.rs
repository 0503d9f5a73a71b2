//! Bad input gets a clear error, never a panic: malformed PTX, unsupported instructions,
//! unknown kernels, wrong arguments, impossible launch sizes; and the warnings and warp checks
//! that the corpus does not reach.

use smelt_ptx_sim::{Arg, Dim3, ErrorKind, Launch, Module, Sim, SimError};

const HEADER: &str = ".version 8.8\n.target sm_80\n.address_size 64\n";

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
fn parse_err(text: &str) -> SimError {
    match Module::parse(text) {
        Ok(_) => panic!("parsed, want an error:\n{text}"),
        Err(e) => e,
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
        "mov.u32 %r1, 1;\ndp4a.u32.u32 %r2, %r1, %r1, %r1;\nret;",
    );
    let m = Module::parse(&text).expect("parses; the kernel fails when launched");
    let e = m.check().expect_err("dp4a is not supported");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("dp4a.u32.u32") && msg.contains("line 11") && msg.contains("kernel k"),
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
        e.to_string().contains("nope") && e.to_string().contains("k"),
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

#[test]
fn reading_a_register_never_written_is_a_warning() {
    let text = kernel(".param .u64 p", "ld.param.u64 %rd1, [p];\ncvta.to.global.u64 %rd2, %rd1;\nadd.s32 %r2, %r1, 1;\nst.global.u32 [%rd2], %r2;\nret;");
    let m = Module::parse(&text).expect("parses");
    let mut sim = Sim::new();
    let out = sim.zeros(4);
    let report = sim
        .launch(&m, "k", one_block(1), &[Arg::Ptr(out)])
        .expect("runs");
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("%r1") && report.warnings[0].contains("line 12"),
        "{:?}",
        report.warnings
    );
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
    assert_eq!(e.kind(), ErrorKind::Trap, "{e}");
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

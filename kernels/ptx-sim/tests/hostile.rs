//! Hostile or degenerate input: each gets an error naming what is wrong, never a panic, an
//! unbounded allocation, a silently wrong layout or a launch that runs for hours.

use smelt_ptx_sim::{Dim3, ErrorKind, Launch, Module, Sim, SimError, MAX_SHARED_BYTES};
use std::time::{Duration, Instant};

mod common;
use common::{parse_err, HEADER};

#[test]
fn a_lone_dot_where_a_type_belongs_is_an_unknown_type() {
    for text in [
        ".global . x;".to_string(),
        ".visible .entry k(.param . p) { ret; }".to_string(),
        ".visible .entry k() { .reg . %r; ret; }".to_string(),
    ] {
        let e = parse_err(&format!("{HEADER}{text}"));
        assert_eq!(e.kind(), ErrorKind::Parse, "{text}: {e}");
        assert!(e.message().contains("type"), "{text}: {e}");
    }
}

/// `Module::parse` then `check`: the error a kernel that fails to decode gives.
#[track_caller]
fn check_err(text: &str) -> SimError {
    let m = Module::parse(text).unwrap_or_else(|e| panic!("does not parse: {e}"));
    m.check().expect_err("decodes, want an error")
}

#[test]
fn call_arguments_and_results_must_match_the_parameter_sizes() {
    let arg = format!(
        "{HEADER}.func f(.param .b64 x) {{ ret; }}\n\
         .visible .entry k() {{ .param .b32 p; call f, (p); ret; }}"
    );
    let e = check_err(&arg);
    assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
    assert!(
        e.message()
            .contains("argument p has 4 bytes, parameter x of f has 8"),
        "{e}"
    );
    let result = format!(
        "{HEADER}.func (.param .b64 y) f() {{ ret; }}\n\
         .visible .entry k() {{ .param .b8 r[2]; call (r), f; ret; }}"
    );
    let e = check_err(&result);
    assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
    assert!(
        e.message()
            .contains("result r has 2 bytes, return parameter y of f has 8"),
        "{e}"
    );
}

#[test]
fn local_memory_is_limited_to_512_kib_a_thread() {
    let e = check_err(&format!(
        "{HEADER}.visible .entry k() {{ .local .b8 a[4000000000]; ret; }}"
    ));
    assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
    assert!(
        e.message().contains("local variable a") && e.message().contains("524288"),
        "{e}"
    );
    // The limit holds for the frame as a whole: locals, call parameters and results.
    let e = check_err(&format!(
        "{HEADER}.func f(.param .b8 x[300000]) {{ ret; }}\n\
         .visible .entry k() {{ .local .b8 a[300000]; .param .b8 p[300000]; call f, (p); ret; }}"
    ));
    assert!(e.message().contains("524288"), "{e}");
    Module::parse(&format!(
        "{HEADER}.visible .entry k() {{ .local .b8 a[524288]; ret; }}"
    ))
    .and_then(|m| m.check())
    .expect("512 KiB of local memory is fine");
}

#[test]
fn registers_are_limited_to_65536_a_kernel() {
    let e = check_err(&format!(
        "{HEADER}.visible .entry k() {{ .reg .b32 %r<65537>; ret; }}"
    ));
    assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
    assert!(
        e.message().contains("%r") && e.message().contains("65536"),
        "{e}"
    );
    let e = check_err(&format!(
        "{HEADER}.visible .entry k() {{ .reg .b32 %a<40000>, %b<40000>; ret; }}"
    ));
    assert!(e.message().contains("%b"), "{e}");
}

#[test]
fn module_data_is_limited_to_1_gib_a_space() {
    for (space, name) in [(".global", "g"), (".const", "c")] {
        let text =
            format!("{HEADER}{space} .b8 {name}[1073741825];\n.visible .entry k() {{ ret; }}");
        let e = parse_err(&text);
        assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
        assert!(
            e.message().contains(&format!("variable {name} "))
                && e.message().contains("1073741824"),
            "{e}"
        );
    }
    // The name as written (a mangled C++ name keeps its capitals).
    let e = parse_err(&format!(
        "{HEADER}.global .b8 _Z5Table[100000000000];\n.visible .entry k() {{ ret; }}"
    ));
    assert!(e.message().contains("global variable _Z5Table "), "{e}");
}

#[test]
fn sizes_offsets_and_alignments_that_overflow_are_parse_errors() {
    for (decl, want) in [
        (".global .b8 g[4294967296][4294967296];", "g"),
        (".global .b64 g[2305843009213693952];", "g"),
        (".global .align 3 .b8 g[4];", ".align 3"),
        (".global .align 4294967296 .b8 g[4];", ".align 4294967296"),
        (
            ".visible .entry k(.param .b64 p[2305843009213693952]) { ret; }",
            "p",
        ),
        (
            ".visible .entry k(.param .b8 p[-1]) { ret; }",
            "p",
        ),
        (
            ".visible .entry k() { .reg .b32 %r<4294967297>; ret; }",
            "%r",
        ),
        (
            ".visible .entry k() { .reg .b64 %rd1; ld.global.u8 %rd1, [%rd1-0x8000000000000000]; ret; }",
            "offset",
        ),
        (
            ".visible .entry k() { .reg .b64 %rd1; ld.global.u8 %rd1, [%rd1+0x7fffffffffffffff+1]; ret; }",
            "offset",
        ),
        (".global .b8 g[-0x8000000000000000];", "-0x8000000000000000"),
        (".address_size 4294967360", "address_size"),
    ] {
        let e = parse_err(&format!("{HEADER}{decl}"));
        assert_eq!(e.kind(), ErrorKind::Parse, "{decl}: {e}");
        assert!(e.message().contains(want), "{decl}: {e}");
    }
}

#[test]
fn shared_and_parameter_layouts_are_checked_not_truncated() {
    let e = check_err(&format!(
        "{HEADER}.shared .b8 a[4294967292];\n.shared .b32 b;\n.shared .b32 c;\n\
         .visible .entry k() {{ ret; }}"
    ));
    assert!(
        e.message().contains("shared variable a") && e.message().contains("232448"),
        "{e}"
    );
    let e = check_err(&format!(
        "{HEADER}.visible .entry k() {{ .shared .b8 a[200000]; .shared .b8 b[40000]; ret; }}"
    ));
    assert!(e.message().contains("shared variable b"), "{e}");
    let e = check_err(&format!(
        "{HEADER}.visible .entry k(.param .b8 a[4294967295], .param .b32 b) {{ ret; }}"
    ));
    assert!(
        e.message().contains("parameter a of k") && e.message().contains("32764"),
        "{e}"
    );
}

#[test]
fn wide_multiplies_of_64_bit_types_are_rejected() {
    for inst in [
        "mul.wide.u64 %rd1, %rd2, %rd3;",
        "mad.wide.s64 %rd1, %rd2, %rd3, %rd4;",
    ] {
        let e = check_err(&format!(
            "{HEADER}.visible .entry k() {{ .reg .b64 %rd<5>; {inst} ret; }}"
        ));
        assert_eq!(e.kind(), ErrorKind::Parse, "{inst}: {e}");
        assert!(e.message().contains(".wide"), "{inst}: {e}");
    }
}

#[test]
fn a_huge_grid_is_charged_for_each_block_and_stops_at_the_limit() {
    let m = Module::parse(&format!("{HEADER}.visible .entry k() {{ ret; }}")).expect("parses");
    let mut sim = Sim::new();
    sim.set_instruction_limit(10_000_000);
    let launch = Launch {
        grid: Dim3::x(i32::MAX as u32),
        block: Dim3::x(1),
        shared_bytes: MAX_SHARED_BYTES,
    };
    let start = Instant::now();
    let e = sim.launch(&m, "k", launch, &[]).expect_err("too much work");
    assert_eq!(e.kind(), ErrorKind::InstructionLimit, "{e}");
    assert!(e.message().contains("instruction limit of 10000000"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10), "{e}");
}

#[test]
fn running_off_the_end_of_a_body_returns_from_it() {
    let one = Launch {
        grid: Dim3::x(1),
        block: Dim3::x(32),
        shared_bytes: 0,
    };
    // The kernel branches to a label after its last instruction; the function that follows it
    // in the program traps, and must not run.
    let text = format!(
        "{HEADER}.func g() {{ trap; ret; }}\n\
         .visible .entry k() {{ bra SKIP;\ncall g;\nSKIP:\n}}"
    );
    let m = Module::parse(&text).expect("parses");
    let report = Sim::new()
        .launch(&m, "k", one, &[])
        .expect("exits at the end");
    assert_eq!(report.instructions, 64);
    // A function without `ret` returns to its caller.
    let text = format!("{HEADER}.func g() {{ }}\n.visible .entry k() {{ call g;\nret; }}");
    let m = Module::parse(&text).expect("parses");
    let report = Sim::new().launch(&m, "k", one, &[]).expect("returns");
    assert_eq!(report.instructions, 96);
}

#[test]
fn long_runs_of_minus_signs_are_folded_not_recursed() {
    // One recursion per sign overflowed the stack; each pair of signs cancels.
    let text = |signs: usize| {
        format!(
            "{HEADER}.visible .entry k(.param .u64 p) {{ .reg .b32 %r1; .reg .b64 %rd<3>;\n\
             ld.param.u64 %rd1, [p]; cvta.to.global.u64 %rd2, %rd1;\n\
             mov.u32 %r1, {}5; st.global.u32 [%rd2], %r1; ret; }}",
            "-".repeat(signs)
        )
    };
    for (signs, want) in [(1_000_000, 5), (999_999, -5)] {
        let m = Module::parse(&text(signs)).expect("parses");
        let mut sim = Sim::new();
        let out = sim.zeros(4);
        let one = Launch {
            grid: Dim3::x(1),
            block: Dim3::x(1),
            shared_bytes: 0,
        };
        sim.launch(&m, "k", one, &[smelt_ptx_sim::Arg::Ptr(out)])
            .expect("runs");
        assert_eq!(sim.read_i32(out), vec![want], "{signs} signs");
    }
    let e = parse_err(&format!(
        "{HEADER}.visible .entry k() {{ .reg .b32 %r1; mov.u32 %r1, --%r1; ret; }}"
    ));
    assert!(e.message().contains("cannot negate"), "{e}");
}

#[test]
fn deeply_nested_braces_are_a_parse_error() {
    let braces = "{".repeat(100_000);
    for (text, what) in [
        (
            format!(
                "{HEADER}.visible .entry k() {{ .reg .b32 %r1; mov.u32 %r1, {braces}1; ret; }}"
            ),
            "operand",
        ),
        (
            format!("{HEADER}.global .b32 g[1] = {braces}1;"),
            "initializer",
        ),
    ] {
        let e = parse_err(&text);
        assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
        assert!(
            e.message()
                .contains(&format!("braces in an {what} nested too deeply")),
            "{e}"
        );
        assert_eq!(e.location().line, Some(4), "{e}");
    }
    // Nesting within the limit still parses (and an array initializer is flattened).
    Module::parse(&format!(
        "{HEADER}.global .b32 g[2] = {{{{{{1}}, {{2}}}}}};"
    ))
    .expect("three levels parse");
}

#[test]
fn many_kernels_with_many_registers_parse_quickly() {
    // 300 kernels of 65536 registers each, in about 20 KB of text: register names are not
    // spelled out one by one (that took gigabytes).
    let text: String = (0..300)
        .map(|i| {
            format!(
                ".visible .entry k{i}() {{ .reg .b32 %r<65536>; mov.u32 %r65535, %r7; ret; }}\n"
            )
        })
        .collect();
    let start = Instant::now();
    let m = Module::parse(&format!("{HEADER}{text}")).expect("parses");
    m.check().expect("decodes");
    assert_eq!(m.kernels().len(), 300);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

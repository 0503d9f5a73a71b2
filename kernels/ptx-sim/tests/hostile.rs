//! Hostile or degenerate input: each gets an error naming what is wrong, never a panic, an
//! unbounded allocation, a silently wrong layout or a launch that runs for hours.

use smelt_ptx_sim::{ErrorKind, Module, SimError};

const HEADER: &str = ".version 8.8\n.target sm_80\n.address_size 64\n";

#[track_caller]
fn parse_err(text: &str) -> SimError {
    match Module::parse(text) {
        Ok(_) => panic!("parsed, want an error:\n{text}"),
        Err(e) => e,
    }
}

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

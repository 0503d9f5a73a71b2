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

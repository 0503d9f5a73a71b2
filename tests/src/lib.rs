//! Integration tests of smelt across its crates; the tests themselves live in `tests/`.
//!
//! Cargo needs a target besides the tests, so this crate has this empty library.

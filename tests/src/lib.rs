//! Integration tests of smelt across its crates (the tests themselves live in `tests/`), and
//! the helpers they share.

/// Relative L2 error `||got - want|| / ||want||` in f64, or `||got||` when `want` is all
/// zeros. Panics when the lengths differ (a test failure).
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
    if norm == 0.0 {
        diff.sqrt()
    } else {
        (diff / norm).sqrt()
    }
}

/// The largest of `errors`, or NaN when any is NaN (`f32::max` would drop a NaN, so a result
/// that is NaN somewhere would pass a bound on the largest error).
pub fn worst(errors: impl IntoIterator<Item = f32>) -> f32 {
    errors
        .into_iter()
        .fold(0.0, |a, e| if e.is_nan() || e > a { e } else { a })
}

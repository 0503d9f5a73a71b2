//! The table of `smelt bench bert --profile`: our per-op profile of a phase and, with
//! `--torch`, PyTorch's beside it (bench/peers/torch_profile.py, the same op names).
//!
//! One row per op and direction, in the order our ops first ran (then any op only PyTorch
//! ran), with calls and milliseconds per step and the share (a fraction) of our step; then
//! `(outside ops)`, the rest of each side's step, and `(step)`, the whole step. With a peer,
//! `pytorch_ms` and `smelt_x` (its time over ours) follow.

use crate::peers::{field, number};
use crate::report::{Row, Value};
use smelt_engine::autograd::Profile;

/// The case a profile was measured on, for its rows.
pub struct ProfileCase<'a> {
    pub config: &'a str,
    pub batch: usize,
    pub seq: usize,
    pub threads: usize,
    pub phase: &'a str,
}

/// One side's per-op time of a phase: `(op, direction, calls, ms)` per step, and the step.
pub struct OpTimes {
    pub ops: Vec<(String, String, f64, f64)>,
    pub step_ms: f64,
}

impl OpTimes {
    /// Ours: `profile` covers `runs` steps that took `total_ms` in all.
    pub fn ours(profile: &Profile, runs: usize, total_ms: f64) -> OpTimes {
        let steps = runs as f64;
        let ops = profile
            .times()
            .iter()
            .map(|t| {
                let ms = t.time.as_secs_f64() * 1e3 / steps;
                let calls = t.calls as f64 / steps;
                (t.op.to_string(), t.direction.name().to_string(), calls, ms)
            })
            .collect();
        OpTimes {
            ops,
            step_ms: total_ms / steps,
        }
    }

    /// A peer's, from the JSON lines it printed for one profile request (the last one with
    /// `"op": "(step)"`).
    pub fn from_lines(lines: &[String]) -> Result<OpTimes, String> {
        let mut ops = Vec::new();
        let mut step_ms = None;
        for line in lines {
            let (op, ms) = (field(line, "op")?, number(line, "ms")?);
            if op == "(step)" {
                step_ms = Some(ms);
            } else {
                ops.push((op, field(line, "direction")?, number(line, "calls")?, ms));
            }
        }
        let step_ms = step_ms.ok_or("peer profile: no \"(step)\" line")?;
        Ok(OpTimes { ops, step_ms })
    }

    /// Milliseconds per step of `op` in `direction`, if this side ran it.
    fn ms(&self, op: &str, direction: &str) -> Option<f64> {
        self.ops
            .iter()
            .find(|(o, d, _, _)| o == op && d == direction)
            .map(|o| o.3)
    }

    /// The step's time outside every listed op.
    fn outside_ms(&self) -> f64 {
        self.step_ms - self.ops.iter().map(|o| o.3).sum::<f64>()
    }
}

/// A count per step: whole as it always is (every step runs the same graph), `-` where a
/// side has none.
fn count(calls: f64) -> Value {
    if calls.is_finite() && calls.fract() == 0.0 {
        Value::Int(calls as usize)
    } else {
        Value::Num(calls)
    }
}

/// The rows of one phase (see the module doc).
pub fn rows(case: &ProfileCase<'_>, ours: &OpTimes, peer: Option<&OpTimes>) -> Vec<Row> {
    let row = |op: &str, direction: &str, calls: f64, ms: f64, theirs: Option<f64>| {
        let mut fields = vec![
            ("impl", Value::Text("smelt".into())),
            ("config", Value::Text(case.config.to_string())),
            ("batch", Value::Int(case.batch)),
            ("seq", Value::Int(case.seq)),
            ("threads", Value::Int(case.threads)),
            ("phase", Value::Text(case.phase.to_string())),
            ("op", Value::Text(op.to_string())),
            ("direction", Value::Text(direction.to_string())),
            ("calls", count(calls)),
            ("ms", Value::Num(ms)),
            ("share", Value::Num(ms / ours.step_ms)),
        ];
        if peer.is_some() {
            let theirs = theirs.unwrap_or(f64::NAN);
            fields.push(("pytorch_ms", Value::Num(theirs)));
            fields.push(("smelt_x", Value::Num(theirs / ms)));
        }
        Row(fields)
    };
    let theirs = |op: &str, direction: &str| peer.and_then(|p| p.ms(op, direction));
    let mut out: Vec<Row> = ours
        .ops
        .iter()
        .map(|(op, d, calls, ms)| row(op, d, *calls, *ms, theirs(op, d)))
        .collect();
    if let Some(peer) = peer {
        for (op, d, _, ms) in &peer.ops {
            if ours.ms(op, d).is_none() {
                out.push(row(op, d, f64::NAN, f64::NAN, Some(*ms)));
            }
        }
    }
    let outside = peer.map(OpTimes::outside_ms);
    out.push(row(
        "(outside ops)",
        "-",
        f64::NAN,
        ours.outside_ms(),
        outside,
    ));
    let step = peer.map(|p| p.step_ms);
    out.push(row("(step)", "-", f64::NAN, ours.step_ms, step));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(ops: &[(&str, &str, f64, f64)], step_ms: f64) -> OpTimes {
        OpTimes {
            ops: ops
                .iter()
                .map(|&(o, d, c, ms)| (o.to_string(), d.to_string(), c, ms))
                .collect(),
            step_ms,
        }
    }

    /// The text of `key` in `row`, as the table prints it.
    fn cell(row: &Row, key: &str) -> String {
        match row.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v) {
            Some(Value::Text(t)) => t.clone(),
            Some(Value::Num(x)) => format!("{x:.2}"),
            Some(Value::Int(i)) => i.to_string(),
            None => "absent".into(),
        }
    }

    #[test]
    fn ours_and_the_peers_ops_pair_up_by_name_and_direction() {
        let case = ProfileCase {
            config: "tiny",
            batch: 1,
            seq: 8,
            threads: 1,
            phase: "train",
        };
        let ours = times(
            &[
                ("linear", "forward", 12.0, 8.0),
                ("tanh", "forward", 1.0, 0.5),
                ("linear", "backward", 12.0, 16.0),
            ],
            25.0,
        );
        let lines: Vec<String> = [
            r#"{"impl": "pytorch", "op": "linear", "direction": "backward", "calls": 12.0, "ms": 24.0}"#,
            r#"{"impl": "pytorch", "op": "linear", "direction": "forward", "calls": 12.0, "ms": 10.0}"#,
            r#"{"impl": "pytorch", "op": "dropout", "direction": "forward", "calls": 5.0, "ms": 0.5}"#,
            r#"{"impl": "pytorch", "op": "(step)", "direction": "-", "calls": null, "ms": 40.0}"#,
        ]
        .map(String::from)
        .to_vec();
        let peer = OpTimes::from_lines(&lines).unwrap();
        let rows = rows(&case, &ours, Some(&peer));
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                ["op", "direction", "ms", "pytorch_ms", "smelt_x"]
                    .map(|k| cell(r, k))
                    .to_vec()
            })
            .collect();
        let expected = [
            ["linear", "forward", "8.00", "10.00", "1.25"],
            ["tanh", "forward", "0.50", "NaN", "NaN"],
            ["linear", "backward", "16.00", "24.00", "1.50"],
            ["dropout", "forward", "NaN", "0.50", "NaN"],
            ["(outside ops)", "-", "0.50", "5.50", "11.00"],
            ["(step)", "-", "25.00", "40.00", "1.60"],
        ];
        assert_eq!(table, expected.map(|r| r.map(String::from).to_vec()));
        let alone = super::rows(&case, &ours, None);
        assert_eq!(cell(&alone[0], "pytorch_ms"), "absent");
        assert_eq!(cell(&alone[0], "share"), "0.32");
    }

    #[test]
    fn a_peer_profile_without_its_step_line_is_an_error() {
        let lines = vec![r#"{"op": "linear", "direction": "forward", "calls": 1, "ms": 2}"#.into()];
        assert!(OpTimes::from_lines(&lines).is_err());
    }
}

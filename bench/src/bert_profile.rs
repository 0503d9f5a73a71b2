//! The table of `smelt bench bert --profile`: our per-op profile of a phase and, with
//! `--torch`, PyTorch's beside it (bench/peers/torch_profile.py, the same op names).
//!
//! One row per op and direction, in the order our ops first ran (then any op only PyTorch
//! ran), with calls and milliseconds per step and the share (a fraction) of our step; then
//! `(outside ops)`, the rest of each side's step, and `(step)`, the whole step. With a peer,
//! `pytorch_calls`, `pytorch_ms` and `smelt_x` (its time over ours; none for the rest
//! outside ops, whose two sides hold different things) follow.

use crate::peers::PeerLine;
use crate::report::{Row, Value};
use smelt_engine::autograd::Profile;

/// The case a profile was measured on, for its rows.
pub struct ProfileCase<'a> {
    /// The model preset's name.
    pub config: &'a str,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Threads of every implementation.
    pub threads: usize,
    /// `forward` or `train`.
    pub phase: &'a str,
}

/// One op and direction of one side, per step.
pub struct OpMs {
    /// The op's name (ours, which the PyTorch peer maps its ops to).
    pub op: String,
    /// `forward` or `backward`.
    pub direction: String,
    /// Calls per step.
    pub calls: f64,
    /// Milliseconds per step.
    pub ms: f64,
}

/// One side's per-op time of a phase, and its whole step, per step.
pub struct OpTimes {
    /// In the order the ops first ran.
    pub ops: Vec<OpMs>,
    /// The whole step, the ops and everything around them.
    pub step_ms: f64,
}

impl OpTimes {
    /// Ours: `profile` covers `runs` steps that took `total_ms` in all.
    pub fn ours(profile: &Profile, runs: usize, total_ms: f64) -> OpTimes {
        let steps = runs as f64;
        let ops = profile
            .times()
            .iter()
            .map(|t| OpMs {
                op: t.op.to_string(),
                direction: t.direction.name().to_string(),
                calls: t.calls as f64 / steps,
                ms: t.time.as_secs_f64() * 1e3 / steps,
            })
            .collect();
        OpTimes {
            ops,
            step_ms: total_ms / steps,
        }
    }

    /// A peer's, from the JSON lines it printed for one profile request (the last one with
    /// `"op": "(step)"`).
    pub fn from_lines(lines: &[PeerLine]) -> Result<OpTimes, String> {
        let mut ops = Vec::new();
        let mut step_ms = None;
        for line in lines {
            let (op, ms) = (line.field("op")?, line.number("ms")?);
            if op == "(step)" {
                step_ms = Some(ms);
            } else {
                let (direction, calls) = (line.field("direction")?, line.number("calls")?);
                ops.push(OpMs {
                    op,
                    direction,
                    calls,
                    ms,
                });
            }
        }
        let step_ms = step_ms.ok_or("peer profile: no \"(step)\" line")?;
        Ok(OpTimes { ops, step_ms })
    }

    /// `op` in `direction`, if this side ran it.
    fn find(&self, op: &str, direction: &str) -> Option<&OpMs> {
        self.ops
            .iter()
            .find(|o| o.op == op && o.direction == direction)
    }

    /// The step's time outside every listed op.
    fn outside_ms(&self) -> f64 {
        self.step_ms - self.ops.iter().map(|o| o.ms).sum::<f64>()
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

/// Calls and milliseconds per step of one row on one side; NaN where that side has none.
#[derive(Clone, Copy)]
struct Cell {
    calls: f64,
    ms: f64,
}

impl Cell {
    const NONE: Cell = Cell {
        calls: f64::NAN,
        ms: f64::NAN,
    };

    fn of(o: Option<&OpMs>) -> Cell {
        o.map_or(Cell::NONE, |o| Cell {
            calls: o.calls,
            ms: o.ms,
        })
    }

    fn ms(ms: f64) -> Cell {
        Cell {
            calls: f64::NAN,
            ms,
        }
    }
}

/// The rows of one phase (see the module doc).
pub fn rows(case: &ProfileCase<'_>, ours: &OpTimes, peer: Option<&OpTimes>) -> Vec<Row> {
    let row = |op: &str, direction: &str, mine: Cell, theirs: Cell, ratio: bool| {
        let mut fields = vec![
            ("impl", Value::Text("smelt".into())),
            ("config", Value::Text(case.config.to_string())),
            ("batch", Value::Int(case.batch)),
            ("seq", Value::Int(case.seq)),
            ("threads", Value::Int(case.threads)),
            ("phase", Value::Text(case.phase.to_string())),
            ("op", Value::Text(op.to_string())),
            ("direction", Value::Text(direction.to_string())),
            ("calls", count(mine.calls)),
            ("ms", Value::Num(mine.ms)),
            ("share", Value::Num(mine.ms / ours.step_ms)),
        ];
        if peer.is_some() {
            let x = if ratio { theirs.ms / mine.ms } else { f64::NAN };
            fields.push(("pytorch_calls", count(theirs.calls)));
            fields.push(("pytorch_ms", Value::Num(theirs.ms)));
            fields.push(("smelt_x", Value::Num(x)));
        }
        Row(fields)
    };
    let theirs = |o: &OpMs| Cell::of(peer.and_then(|p| p.find(&o.op, &o.direction)));
    let mut out: Vec<Row> = ours
        .ops
        .iter()
        .map(|o| {
            // A ratio only where both ran the op as often: our one `add` (the embeddings')
            // is not PyTorch's six (its residual adds, which our layer norm fuses).
            let (mine, theirs) = (Cell::of(Some(o)), theirs(o));
            row(
                &o.op,
                &o.direction,
                mine,
                theirs,
                mine.calls == theirs.calls,
            )
        })
        .collect();
    if let Some(peer) = peer {
        for o in &peer.ops {
            if ours.find(&o.op, &o.direction).is_none() {
                out.push(row(
                    &o.op,
                    &o.direction,
                    Cell::NONE,
                    Cell::of(Some(o)),
                    true,
                ));
            }
        }
    }
    let outside = Cell::ms(peer.map_or(f64::NAN, OpTimes::outside_ms));
    out.push(row(
        "(outside ops)",
        "-",
        Cell::ms(ours.outside_ms()),
        outside,
        false,
    ));
    let step = Cell::ms(peer.map_or(f64::NAN, |p| p.step_ms));
    out.push(row("(step)", "-", Cell::ms(ours.step_ms), step, true));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(ops: &[(&str, &str, f64, f64)], step_ms: f64) -> OpTimes {
        OpTimes {
            ops: ops
                .iter()
                .map(|&(op, direction, calls, ms)| OpMs {
                    op: op.to_string(),
                    direction: direction.to_string(),
                    calls,
                    ms,
                })
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
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Null) => "null".into(),
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
                ("add", "forward", 1.0, 0.25),
                ("linear", "backward", 12.0, 16.0),
            ],
            25.0,
        );
        let lines: Vec<PeerLine> = [
            r#"{"impl": "pytorch", "op": "linear", "direction": "backward", "calls": 12.0, "ms": 24.0}"#,
            r#"{"impl": "pytorch", "op": "linear", "direction": "forward", "calls": 12.0, "ms": 10.0}"#,
            r#"{"impl": "pytorch", "op": "dropout", "direction": "forward", "calls": 5.0, "ms": 0.5}"#,
            r#"{"impl": "pytorch", "op": "add", "direction": "forward", "calls": 6.0, "ms": 1.0}"#,
            r#"{"impl": "pytorch", "op": "(step)", "direction": "-", "calls": null, "ms": 40.0}"#,
        ]
        .map(crate::peers::test_line)
        .to_vec();
        let peer = OpTimes::from_lines(&lines).unwrap();
        let rows = rows(&case, &ours, Some(&peer));
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                [
                    "op",
                    "direction",
                    "ms",
                    "pytorch_calls",
                    "pytorch_ms",
                    "smelt_x",
                ]
                .map(|k| cell(r, k))
                .to_vec()
            })
            .collect();
        let expected = [
            ["linear", "forward", "8.00", "12", "10.00", "1.25"],
            ["tanh", "forward", "0.50", "NaN", "NaN", "NaN"],
            // Called a different number of times: no ratio.
            ["add", "forward", "0.25", "6", "1.00", "NaN"],
            ["linear", "backward", "16.00", "12", "24.00", "1.50"],
            ["dropout", "forward", "NaN", "5", "0.50", "NaN"],
            ["(outside ops)", "-", "0.25", "NaN", "4.50", "NaN"],
            ["(step)", "-", "25.00", "NaN", "40.00", "1.60"],
        ];
        assert_eq!(table, expected.map(|r| r.map(String::from).to_vec()));
        let alone = super::rows(&case, &ours, None);
        assert_eq!(cell(&alone[0], "pytorch_ms"), "absent");
        assert_eq!(cell(&alone[0], "share"), "0.32");
    }

    #[test]
    fn a_peer_profile_without_its_step_line_is_an_error() {
        let lines = vec![crate::peers::test_line(
            r#"{"op": "linear", "direction": "forward", "calls": 1, "ms": 2}"#,
        )];
        assert!(OpTimes::from_lines(&lines).is_err());
    }
}

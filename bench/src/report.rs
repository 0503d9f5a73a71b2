//! Output of the benchmarks: an aligned table for people, or one JSON object per line.

use crate::output::outln;

/// One field of a result row.
pub enum Value {
    Text(String),
    Int(usize),
    Num(f64),
    Bool(bool),
    /// No value for this row (JSON `null`, `-` in the table).
    Null,
}

/// One measured row: ordered (key, value) pairs.
pub struct Row(pub Vec<(&'static str, Value)>);

impl Row {
    /// The row as a single-line JSON object.
    pub fn json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Text(s) => {
                        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
                    }
                    Value::Int(i) => i.to_string(),
                    Value::Num(x) if x.is_finite() => significant(*x),
                    Value::Num(_) | Value::Null => "null".to_string(),
                    Value::Bool(b) => b.to_string(),
                };
                format!("\"{k}\":{v}")
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    fn cells(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(_, v)| match v {
                Value::Text(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                // JSON's null: no figure for this row.
                Value::Null => "-".to_string(),
                Value::Num(x) if !x.is_finite() => "-".to_string(),
                Value::Num(x) if x.abs() >= 100.0 => format!("{x:.1}"),
                // Small figures (a GPU launch in ms, the simulator's TFLOP/s) keep their
                // digits instead of rounding to 0.000.
                Value::Num(x) if *x != 0.0 && x.abs() < 0.01 => format!("{x:.2e}"),
                Value::Num(x) => format!("{x:.3}"),
            })
            .collect()
    }
}

/// `x` rounded to 6 significant digits, written in the shortest decimal form that reads back
/// as that value (so 2.5e-5 stays 0.000025 instead of a fixed number of decimals' 0.0000).
fn significant(x: f64) -> String {
    let rounded: f64 = format!("{x:.5e}").parse().unwrap_or(x);
    rounded.to_string()
}

/// Prints rows as JSON lines, or as a table whose header is the first row's keys; a closed
/// or full stdout is an error.
pub fn print(rows: &[Row], json: bool) -> Result<(), String> {
    if json {
        return rows.iter().try_for_each(|r| outln!("{}", r.json()));
    }
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let header: Vec<String> = first.0.iter().map(|(k, _)| k.to_string()).collect();
    let body: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            body.iter()
                .filter_map(|r| r.get(c))
                .chain(std::iter::once(&header[c]))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    outln!("{}", line(&header))?;
    body.iter().try_for_each(|r| outln!("{}", line(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(x: f64) -> String {
        Row(vec![("x", Value::Num(x))]).json()
    }

    #[test]
    fn json_numbers_keep_six_significant_digits_at_any_scale() {
        assert_eq!(json_of(2.5e-5), r#"{"x":0.000025}"#);
        assert_eq!(json_of(1234.56789), r#"{"x":1234.57}"#);
        assert_eq!(json_of(0.123456789), r#"{"x":0.123457}"#);
        assert_eq!(json_of(3.0), r#"{"x":3}"#);
        assert_eq!(json_of(f64::NAN), r#"{"x":null}"#);
    }

    #[test]
    fn table_cells_of_small_figures_are_not_rounded_to_zero() {
        let row = Row(vec![("a", Value::Num(2.5e-5)), ("b", Value::Num(0.0))]);
        assert_eq!(row.cells(), ["2.50e-5", "0.000"]);
    }
}

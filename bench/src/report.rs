//! Output of the benchmarks: an aligned table for people, or one JSON object per line.

/// One field of a result row.
pub enum Value {
    Text(String),
    Int(usize),
    Num(f64),
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
                    Value::Num(x) if x.is_finite() => format!("{x:.4}"),
                    Value::Num(_) => "null".to_string(),
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
                // JSON's null: no figure for this row.
                Value::Num(x) if !x.is_finite() => "-".to_string(),
                Value::Num(x) if x.abs() >= 100.0 => format!("{x:.1}"),
                Value::Num(x) => format!("{x:.3}"),
            })
            .collect()
    }
}

/// Prints rows as JSON lines, or as a table whose header is the first row's keys.
pub fn print(rows: &[Row], json: bool) {
    if json {
        rows.iter().for_each(|r| println!("{}", r.json()));
        return;
    }
    let Some(first) = rows.first() else { return };
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
    println!("{}", line(&header));
    body.iter().for_each(|r| println!("{}", line(r)));
}

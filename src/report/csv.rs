//! CSV comparison (RFC 4180): a header of column keys, one line per run, raw
//! numbers (empty = not applicable), for spreadsheets and plotting scripts.

use super::compare::{Comparison, Value};

pub fn comparison(cmp: &Comparison) -> String {
    let mut out = String::new();
    let header: Vec<String> = cmp.columns.iter().map(|c| field(&c.key())).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for r in &cmp.rows {
        let cells: Vec<String> = r
            .iter()
            .map(|v| match v {
                Value::Number(None) => String::new(),
                v => field(&v.display()),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Quotes a field when it holds a separator, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

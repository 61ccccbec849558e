//! CSV comparison (RFC 4180): a header of column keys, one line per run, raw
//! numbers (empty = not applicable), for spreadsheets and plotting scripts. A
//! column holding a series of repeats (`super::repeats`) is followed by
//! `<key>_min`, `<key>_max`, `<key>_ci95_low`, `<key>_ci95_high`; its own cell
//! is the mean (a single run's row leaves the four empty).

use super::compare::{Comparison, Value};

pub fn comparison(cmp: &Comparison) -> String {
    let spread: Vec<bool> = (0..cmp.columns.len())
        .map(|i| {
            cmp.rows
                .iter()
                .any(|r| matches!(r.get(i), Some(Value::Spread(_))))
        })
        .collect();
    let mut out = String::new();
    let mut header: Vec<String> = Vec::new();
    for (c, s) in cmp.columns.iter().zip(&spread) {
        let key = c.key();
        header.push(field(&key));
        if *s {
            for extra in EXTRAS {
                header.push(field(&format!("{key}_{extra}")));
            }
        }
    }
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for r in &cmp.rows {
        let mut cells: Vec<String> = Vec::new();
        for (v, s) in r.iter().zip(&spread) {
            match v {
                Value::Number(None) => cells.push(String::new()),
                Value::Spread(x) => {
                    let (lo, hi) = x
                        .interval()
                        .map_or((None, None), |(l, h)| (Some(l), Some(h)));
                    cells.push(raw(Some(x.mean)));
                    for n in [Some(x.min), Some(x.max), lo, hi] {
                        cells.push(raw(n));
                    }
                    continue;
                }
                v => cells.push(field(&v.display())),
            }
            if *s {
                cells.extend(EXTRAS.iter().map(|_| String::new()));
            }
        }
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

const EXTRAS: [&str; 4] = ["min", "max", "ci95_low", "ci95_high"];

/// A number for a spreadsheet: up to 4 decimals (a mean of counts is a fraction).
fn raw(n: Option<f64>) -> String {
    match n {
        None => String::new(),
        Some(n) => {
            let s = format!("{:.4}", n);
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// Quotes a field when it holds a separator, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

//! GitHub-flavoured Markdown comparison: pastes cleanly into issues and design
//! docs. Numbers are right-aligned; a one-line legend follows the table.

use super::compare::{Comparison, Value, legend};

pub fn comparison(cmp: &Comparison) -> String {
    let mut out = String::new();
    let headers: Vec<String> = cmp.columns.iter().map(|c| escape(&c.header())).collect();
    out.push_str(&row(&headers));
    let dividers: Vec<String> = match cmp.rows.first() {
        Some(first) => first
            .iter()
            .map(|v| match v {
                Value::Number(_) | Value::Spread(_) => "---:".to_string(),
                Value::Text(_) => "---".to_string(),
            })
            .collect(),
        None => cmp.columns.iter().map(|_| "---".to_string()).collect(),
    };
    out.push_str(&row(&dividers));
    for r in &cmp.rows {
        let cells: Vec<String> = r.iter().map(|v| escape(&v.display())).collect();
        out.push_str(&row(&cells));
    }
    out.push('\n');
    out.push_str(&format!("_{}_\n", legend(cmp)));
    out
}

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// A `|` would end the cell; a newline would end the table.
fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

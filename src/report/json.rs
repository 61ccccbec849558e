//! JSON comparison: `{"baseline": .., "columns": [..], "rows": [{column: value}]}`,
//! numbers as numbers and `null` where a figure does not apply.

use serde_json::{Map, Value as Json, json};

use super::compare::Comparison;

pub fn comparison(cmp: &Comparison) -> String {
    let rows: Vec<Json> = cmp
        .rows
        .iter()
        .map(|r| {
            let mut obj = Map::new();
            for (c, v) in cmp.columns.iter().zip(r) {
                obj.insert(c.key(), v.to_json());
            }
            Json::Object(obj)
        })
        .collect();
    let doc = json!({
        "baseline": cmp.baseline,
        "columns": cmp.columns.iter().map(|c| c.key()).collect::<Vec<_>>(),
        "rows": rows,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

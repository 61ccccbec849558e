//! The history in a neutral JSON-lines form other checkers can read (docs/HISTORY.md):
//! Jepsen-style `invoke` / `ok` / `fail` / `info` records in time order, one logical
//! process per concurrent client slot.

use serde_json::json;
use std::collections::BTreeSet;

use crate::history::{HistoryEntry, Outcome, SideOutcome};
use crate::order::order_key;

fn side(s: SideOutcome) -> &'static str {
    match s {
        SideOutcome::Ok => "ok",
        SideOutcome::Fail => "fail",
        SideOutcome::Unknown => "unknown",
        SideOutcome::Skipped => "skipped",
        SideOutcome::Async => "async",
    }
}

/// Renders the JSON lines. Processes: an invocation takes the lowest free process
/// number; a completion frees it, except after `info` (indeterminate), where, as in
/// Jepsen, the process is retired and never reused.
pub fn export(entries: &[HistoryEntry]) -> String {
    // (time µs, 0 = completion first on ties, index into entries)
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(entries.len() * 2);
    for (i, e) in entries.iter().enumerate() {
        events.push((e.start_us, 1, i));
        events.push((e.end_us.max(e.start_us), 0, i));
    }
    events.sort_unstable();
    let mut free: BTreeSet<u64> = BTreeSet::new();
    let mut next_process = 0u64;
    let mut process = vec![0u64; entries.len()];
    let mut out = String::new();
    for (index, (time_us, kind, i)) in events.into_iter().enumerate() {
        let e = &entries[i];
        let value = json!({"id": e.id, "key": order_key(e.id)});
        let record = if kind == 1 {
            let p = free.pop_first().unwrap_or_else(|| {
                next_process += 1;
                next_process - 1
            });
            process[i] = p;
            json!({
                "type": "invoke",
                "f": "write",
                "process": p,
                "time": time_us * 1000,
                "index": index,
                "value": value,
                "intended_time": e.intended_us * 1000,
            })
        } else {
            let p = process[i];
            let kind = match e.outcome {
                Outcome::Ok => "ok",
                Outcome::Fail => "fail",
                Outcome::Unknown => "info",
            };
            if e.outcome != Outcome::Unknown {
                free.insert(p);
            }
            let mut r = json!({
                "type": kind,
                "f": "write",
                "process": p,
                "time": time_us * 1000,
                "index": index,
                "value": value,
                "primary": side(e.primary),
                "secondary": side(e.secondary),
                "retries": e.retries,
            });
            if let Some(err) = &e.error {
                r["error"] = json!(err);
            }
            r
        };
        out.push_str(&record.to_string());
        out.push('\n');
    }
    out
}

//! The history in a neutral JSON-lines form other checkers can read (docs/HISTORY.md):
//! Jepsen-style `invoke` / `ok` / `fail` / `info` records in time order, one logical
//! process per concurrent client slot. Writes are `f: "write"`; the readers'
//! reads (`reads.jsonl`), when the run had any, are `f: "read"` with what each
//! side showed.

use serde_json::json;
use std::collections::BTreeSet;

use crate::history::{HistoryEntry, Outcome, SideOutcome};
use crate::order::order_key;
use crate::reader::entry::ReadEntry;

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
pub fn export(entries: &[HistoryEntry], reads: &[ReadEntry]) -> String {
    // (time µs, 0 = completion first on ties, index: writes, then reads)
    let n = entries.len();
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity((n + reads.len()) * 2);
    for (i, e) in entries.iter().enumerate() {
        events.push((e.start_us, 1, i));
        events.push((e.end_us.max(e.start_us), 0, i));
    }
    for (i, r) in reads.iter().enumerate() {
        events.push((r.start_us, 1, n + i));
        events.push((r.end_us.max(r.start_us), 0, n + i));
    }
    events.sort_unstable();
    let mut free: BTreeSet<u64> = BTreeSet::new();
    let mut next_process = 0u64;
    let mut process = vec![0u64; n + reads.len()];
    let mut out = String::new();
    for (index, (time_us, kind, i)) in events.into_iter().enumerate() {
        if kind == 1 {
            process[i] = free.pop_first().unwrap_or_else(|| {
                next_process += 1;
                next_process - 1
            });
        }
        let p = process[i];
        let outcome = match entries.get(i) {
            Some(e) => e.outcome,
            None => reads[i - n].outcome,
        };
        // After `info` (indeterminate) the process is retired, as in Jepsen.
        if kind == 0 && outcome != Outcome::Unknown {
            free.insert(p);
        }
        let record = match entries.get(i) {
            Some(e) => write_record(e, kind == 1, p, time_us, index),
            None => read_record(&reads[i - n], kind == 1, p, time_us, index),
        };
        out.push_str(&record.to_string());
        out.push('\n');
    }
    out
}

fn completion(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Unknown => "info",
    }
}

fn write_record(
    e: &HistoryEntry,
    invoke: bool,
    p: u64,
    time_us: u64,
    index: usize,
) -> serde_json::Value {
    let value = json!({"id": e.id, "key": order_key(e.id)});
    if invoke {
        return json!({
            "type": "invoke",
            "f": "write",
            "process": p,
            "time": time_us * 1000,
            "index": index,
            "value": value,
            "intended_time": e.intended_us * 1000,
        });
    }
    let mut r = json!({
        "type": completion(e.outcome),
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
}

/// A read: the invocation names the order; the completion's value is what each
/// side showed (`seen` / `absent`, or `fail` / `unknown` when it did not answer).
fn read_record(
    r: &ReadEntry,
    invoke: bool,
    p: u64,
    time_us: u64,
    index: usize,
) -> serde_json::Value {
    let key = order_key(r.id);
    if invoke {
        return json!({
            "type": "invoke",
            "f": "read",
            "process": p,
            "time": time_us * 1000,
            "index": index,
            "value": {"id": r.id, "key": key},
            "intended_time": r.planned_us * 1000,
            "delay_ms": r.delay_ms,
            "write": r.write.name(),
        });
    }
    let mut out = json!({
        "type": completion(r.outcome),
        "f": "read",
        "process": p,
        "time": time_us * 1000,
        "index": index,
        "value": {"id": r.id, "key": key, "primary": r.primary.name(), "secondary": r.secondary.name()},
    });
    for (name, e) in [
        ("primary_error", &r.primary_error),
        ("secondary_error", &r.secondary_error),
    ] {
        if let Some(e) = e {
            out[name] = json!(e);
        }
    }
    out
}

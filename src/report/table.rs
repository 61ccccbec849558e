//! Terminal tables (comfy-table): the summary of one run, and the comparison of
//! many. Colour only on a terminal and only without `NO_COLOR`.

use comfy_table::{
    Cell, CellAlignment, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED,
};

use super::compare::{Comparison, Value, legend};
use crate::result::RunResult;

/// The comparison as a terminal table, with the legend underneath.
pub fn comparison(cmp: &Comparison, color: bool) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    t.set_header(cmp.columns.iter().map(|c| c.header()));
    for r in &cmp.rows {
        t.add_row(r.iter().map(|v| {
            let text = v.display();
            let cell = Cell::new(&text);
            let cell = match v {
                Value::Number(_) | Value::Spread(_) => cell.set_alignment(CellAlignment::Right),
                Value::Text(_) => cell,
            };
            match (color, text.as_str()) {
                (true, "PASS") => cell.fg(Color::Green),
                (true, "FAIL") | (true, "ERROR") => cell.fg(Color::Red),
                _ => cell,
            }
        }));
    }
    format!("{t}\n{}", legend(cmp))
}

pub fn summary(r: &RunResult) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(vec!["", ""]);
    let w = &r.workload;
    let rows: Vec<(&str, String)> = vec![
        ("scenario", r.scenario.name.clone()),
        (
            "store / pattern",
            format!("{} ({}) / {}", r.target, r.server.product, r.pattern),
        ),
        (
            "faults",
            if r.scenario.faults.is_empty() {
                "none".into()
            } else {
                r.scenario.faults.join("; ")
            },
        ),
        (
            "rate",
            format!(
                "{:.1}/s achieved of {}/s target",
                w.achieved_tps, w.target_tps
            ),
        ),
        (
            "ops",
            format!(
                "{} total: {} ok, {} fail, {} unknown ({} retries)",
                w.ops.total, w.ops.ok, w.ops.fail, w.ops.unknown, w.retries
            ),
        ),
        (
            "latency ms",
            format!(
                "p50 {} | p99 {} | p999 {} | max {}",
                r.latency_ms.p50, r.latency_ms.p99, r.latency_ms.p999, r.latency_ms.max
            ),
        ),
    ];
    for (k, v) in rows {
        t.add_row(vec![Cell::new(k), Cell::new(v)]);
    }
    if let Some(x) = &r.repeat {
        t.add_row(vec![
            Cell::new("repeat"),
            Cell::new(format!(
                "{} of {}, seed {} (series {})",
                x.index, x.of, r.seed, x.group
            )),
        ]);
    }
    if let Some(relay) = &r.relay {
        let ttc = &relay.time_to_consistency_ms;
        t.add_row(vec![
            Cell::new("time to consistency ms"),
            Cell::new(format!(
                "p50 {} | p99 {} | max {} (relay crashes: {} self, {} fault)",
                ttc.p50, ttc.p99, ttc.max, relay.stats.self_crashes, relay.stats.fault_crashes
            )),
        ]);
    }
    if let Some(line) = super::capacity::summary_line(r) {
        t.add_row(vec![Cell::new("capacity / order"), Cell::new(line)]);
    }
    if let Some(x) = &r.readers {
        let at: Vec<String> = x
            .by_delay
            .iter()
            .map(|d| {
                format!(
                    "{} ms {}",
                    d.delay_ms,
                    d.partial_fraction
                        .map_or("-".to_string(), |f| format!("{:.1}%", f * 100.0))
                )
            })
            .collect();
        t.add_row(vec![
            Cell::new("partial reads"),
            Cell::new(format!(
                "{} (acknowledged orders, by delay)",
                at.join(" | ")
            )),
        ]);
        let ttc = &x.time_to_consistency_ms;
        t.add_row(vec![
            Cell::new("reader ttc ms"),
            Cell::new(format!(
                "p50 {} | p99 {} | max {} ({} never seen on both sides)",
                ttc.p50, ttc.p99, ttc.max, x.never_consistent
            )),
        ]);
        let named: Vec<String> = x
            .anomalies
            .iter()
            .filter(|(_, a)| a.reads > 0)
            .map(|(name, a)| {
                format!(
                    "{name} {} (e.g. {})",
                    a.reads,
                    a.samples.first().map_or("", String::as_str)
                )
            })
            .collect();
        t.add_row(vec![
            Cell::new("read anomalies"),
            Cell::new(if named.is_empty() {
                "0".to_string()
            } else {
                named.join(", ")
            }),
        ]);
    }
    if let Some(c) = &r.checker {
        for (name, n) in [
            ("orphans", c.orphans),
            ("ghosts", c.ghosts),
            ("duplicates", c.duplicates),
            ("mismatches", c.mismatches),
            ("lost acks", c.lost_acks),
            ("strays", c.strays),
        ] {
            let key = name.replace(' ', "_");
            let samples = c
                .samples
                .get(&key)
                .map(|s| s.iter().take(3).cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let text = if n > 0 && !samples.is_empty() {
                format!("{n}  (e.g. {samples})")
            } else {
                n.to_string()
            };
            t.add_row(vec![Cell::new(name), Cell::new(text)]);
        }
    } else {
        t.add_row(vec![Cell::new("checker"), Cell::new("not run")]);
    }
    if let Some(rep) = &r.replicas {
        t.add_row(vec![Cell::new("replicas"), Cell::new(replicas_line(rep))]);
    }
    t.add_row(vec![
        Cell::new("verdict"),
        Cell::new(r.verdict.name().to_uppercase()),
    ]);
    let mut out = t.to_string();
    for reason in &r.verdict_reasons {
        out.push_str(&format!("\n  {reason}"));
    }
    for warning in &r.warnings {
        out.push_str(&format!("\n  warning: {warning}"));
    }
    out
}

/// One cell for the per-replica views: who lacked what at the load's end, when
/// the replicas agreed, and whether the check-time reads were proven.
pub fn replicas_line(rep: &crate::result::ReplicaReport) -> String {
    let view = |snap: &crate::result::ReplicaSnapshot| -> String {
        snap.replicas
            .iter()
            .map(|v| match &v.error {
                Some(_) => format!("{} unreadable", v.node),
                None if v.missing_primary + v.missing_secondary + v.differing == 0 => {
                    format!("{} whole", v.node)
                }
                None => format!(
                    "{} lacks {}+{} ({} lost acks on it alone)",
                    v.node, v.missing_primary, v.missing_secondary, v.lost_acks
                ),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if let Some(s) = &rep.load_end {
        parts.push(format!("at load end: {}", view(s)));
    }
    parts.push(match rep.agreed_after_ms {
        Some(ms) => format!("agreed {ms} ms after the last fault"),
        None => "never agreed while settling".to_string(),
    });
    if let Some(s) = &rep.check {
        let proven = s
            .replicas
            .iter()
            .filter(|v| v.trace.as_ref().is_some_and(|t| t.proven))
            .count();
        parts.push(format!(
            "at check: {} ({proven}/{} reads proven by tracing); final scan at {}",
            view(s),
            s.replicas.len(),
            rep.final_read
        ));
    }
    parts.join("; ")
}

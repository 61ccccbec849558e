//! The HTML report of one run: one self-contained file (inline CSS and SVG, no
//! scripts, nothing fetched), with charts over time (achieved rate, latency
//! p50/p99, divergent operations by intended start, and with `[readers]` the
//! share of partial reads) under shaded fault windows, the counts per category
//! with sample ids, what readers saw, fault attribution, the scenario text, and
//! what the server could and could not exercise.

use super::junit::escape;
use super::svg::{self, Band, Chart, Series};
use crate::checker::CATEGORIES;
use crate::result::{RunResult, Verdict};

const STYLE: &str = "body{font-family:sans-serif;max-width:960px;margin:24px auto;color:#222;padding:0 12px}\
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}\
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:bold}\
.pass{background:#2e7d32}.fail{background:#c62828}.error{background:#6d4c41}\
pre{background:#f7f7f7;border:1px solid #ddd;padding:8px;overflow-x:auto}.muted{color:#666}\
.alarm{color:#c62828;font-weight:bold}";

/// Renders the report. `scenario_text` is the `scenario.toml` beside the result.
pub fn render(r: &RunResult, scenario_text: Option<&str>) -> String {
    render_priced(r, scenario_text, None)
}

/// The report with costs from a price table (`report --prices FILE`).
pub fn render_priced(
    r: &RunResult,
    scenario_text: Option<&str>,
    prices: Option<&super::capacity::Prices>,
) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str(&format!(
        "<title>dualwrite: {} {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&r.scenario.name),
        escape(&r.run_id)
    ));
    let verdict_class = match r.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Error => "error",
    };
    h.push_str(&format!(
        "<h1>{} <span class=\"verdict {verdict_class}\">{}</span></h1>\n<p class=\"muted\">{}</p>\n",
        escape(&r.scenario.name),
        r.verdict.name().to_uppercase(),
        escape(&r.scenario.description)
    ));
    h.push_str(&overview(r));
    if !r.verdict_reasons.is_empty() {
        h.push_str("<h2>Verdict reasons</h2>\n<ul>\n");
        for reason in &r.verdict_reasons {
            h.push_str(&format!("<li>{}</li>\n", escape(reason)));
        }
        h.push_str("</ul>\n");
    }
    if !r.warnings.is_empty() {
        h.push_str("<h2>Warnings</h2>\n<ul>\n");
        for w in &r.warnings {
            h.push_str(&format!("<li class=\"alarm\">{}</li>\n", escape(w)));
        }
        h.push_str("</ul>\n");
    }
    h.push_str(&availability(r));
    h.push_str(&super::capacity::html_section(r, prices));
    h.push_str("<h2>Over time</h2>\n");
    if r.timeline.is_empty() {
        // An error before the load (store or proxy unreachable): empty axes
        // would only suggest a run that measured nothing.
        h.push_str("<p class=\"muted\">No load ran: nothing to chart.</p>\n");
    } else {
        h.push_str(&charts(r));
    }
    h.push_str(&counts(r));
    h.push_str(&replicas(r));
    h.push_str(&readers(r));
    h.push_str(&attribution(r));
    h.push_str(&fault_windows(r));
    h.push_str(&errors(r));
    h.push_str(&server(r));
    h.push_str("<h2>Scenario</h2>\n");
    match scenario_text {
        Some(text) => h.push_str(&format!(
            "<p class=\"muted\">{} (sha256 {})</p>\n<pre>{}</pre>\n",
            escape(&r.scenario.file),
            escape(&r.scenario.sha256),
            escape(text)
        )),
        None => h.push_str("<p class=\"muted\">scenario.toml not found beside the result.</p>\n"),
    }
    h.push_str(&format!(
        "<p class=\"muted\">{} {} · result schema {} · seed {} · namespace {}</p>\n</body>\n</html>\n",
        escape(&r.tool.name),
        escape(&r.tool.version),
        r.schema_version,
        r.seed,
        escape(&r.namespace)
    ));
    h
}

fn kv_table(rows: &[(&str, String)]) -> String {
    let mut s = String::from("<table>\n");
    for (k, v) in rows {
        s.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), v));
    }
    s.push_str("</table>\n");
    s
}

fn overview(r: &RunResult) -> String {
    let w = &r.workload;
    let l = &r.latency_ms;
    let mut rows = vec![
        (
            "store / pattern",
            escape(
                &match format!("{} {}", r.server.product, r.server.version).trim() {
                    // The server was never reached.
                    "" => format!("{} / {}", r.target, r.pattern),
                    server => format!("{} ({server}) / {}", r.target, r.pattern),
                },
            ),
        ),
        (
            "run",
            escape(&format!(
                "{} · {} → {}",
                r.run_id,
                readable_time(&r.started_at),
                readable_time(&r.finished_at)
            )),
        ),
        (
            "faults",
            escape(&if r.scenario.faults.is_empty() {
                "none".to_string()
            } else {
                r.scenario.faults.join("; ")
            }),
        ),
        (
            "rate",
            format!(
                "{:.1}/s achieved of {}/s target over {:.1} s (concurrency {})",
                w.achieved_tps, w.target_tps, w.load_s, w.concurrency
            ),
        ),
        (
            "operations",
            format!(
                "{} of {} planned: {} ok, {} fail, {} unknown; {} retries, {} started late (max {} ms)",
                w.ops.total,
                w.ops.planned,
                w.ops.ok,
                w.ops.fail,
                w.ops.unknown,
                w.retries,
                w.delayed,
                w.max_start_delay_ms
            ),
        ),
        (
            "latency ms",
            format!(
                "p50 {} · p90 {} · p99 {} · p999 {} · max {} (from the intended start)",
                l.p50, l.p90, l.p99, l.p999, l.max
            ),
        ),
    ];
    if let Some(relay) = &r.relay {
        let t = &relay.time_to_consistency_ms;
        rows.push((
            "relay",
            format!(
                "time to consistency p50 {} · p99 {} · max {} ms; {} delivered, {} self crashes, {} fault crashes, drained: {}",
                t.p50,
                t.p99,
                t.max,
                relay.stats.delivered,
                relay.stats.self_crashes,
                relay.stats.fault_crashes,
                relay.stats.drained
            ),
        ));
    }
    if !r.complete {
        rows.push((
            "complete",
            format!(
                "<span class=\"alarm\">no</span> {}",
                escape(r.interrupted.as_deref().unwrap_or(""))
            ),
        ));
    }
    kv_table(&rows)
}

fn charts(r: &RunResult) -> String {
    let seconds = r
        .timeline
        .len()
        .max(
            r.checker
                .as_ref()
                .map_or(0, |c| c.divergent_by_second.len()),
        )
        .max(r.workload.load_s.ceil() as usize)
        .max(r.readers.as_ref().map_or(0, |x| x.timeline.len()));
    let x_max = r
        .faults
        .iter()
        .filter_map(|f| f.end_s)
        .fold(seconds as f64, f64::max)
        .ceil();
    let bands: Vec<Band> = r
        .faults
        .iter()
        .filter_map(|f| {
            let start = f.start_s?;
            Some(Band {
                start,
                end: f.end_s.unwrap_or(x_max),
                label: f.label(),
            })
        })
        .collect();
    let per_second = |f: fn(&crate::driver::Second) -> f64| -> Vec<f64> {
        let mut v = vec![
            0.0;
            r.timeline
                .iter()
                .map(|s| s.t as usize + 1)
                .max()
                .unwrap_or(0)
        ];
        for s in &r.timeline {
            v[s.t as usize] = f(s);
        }
        v
    };
    let rate = Chart {
        title: "Achieved rate per second".into(),
        y_label: "operations / s".into(),
        x_max,
        lines: vec![
            Series {
                name: "target".into(),
                color: "#888888",
                values: vec![r.workload.target_tps; seconds],
                dashed: true,
            },
            Series {
                name: "ok".into(),
                color: "#2e7d32",
                values: per_second(|s| s.ok as f64),
                dashed: false,
            },
            Series {
                name: "fail + unknown".into(),
                color: "#c62828",
                values: per_second(|s| (s.fail + s.unknown) as f64),
                dashed: false,
            },
        ],
        bars: None,
        bands: bands.clone(),
    };
    let latency = Chart {
        title: "Latency per second (from the intended start)".into(),
        y_label: "ms".into(),
        x_max,
        lines: vec![
            Series {
                name: "p50".into(),
                color: "#1565c0",
                values: per_second(|s| s.p50_ms),
                dashed: false,
            },
            Series {
                name: "p99".into(),
                color: "#6a1b9a",
                values: per_second(|s| s.p99_ms),
                dashed: false,
            },
        ],
        bars: None,
        bands: bands.clone(),
    };
    let divergent = Chart {
        title: "Divergent operations by intended start".into(),
        y_label: "operations".into(),
        x_max,
        lines: vec![],
        bars: Some(Series {
            name: "divergent ops".into(),
            color: "#c62828",
            values: r
                .checker
                .iter()
                .flat_map(|c| &c.divergent_by_second)
                .map(|n| *n as f64)
                .collect(),
            dashed: false,
        }),
        bands,
    };
    let mut charts = vec![rate, latency, divergent];
    if let Some(readers) = &r.readers {
        let share = |f: fn(&crate::result::ReadSecond) -> Option<f64>| -> Vec<f64> {
            readers
                .timeline
                .iter()
                .map(|s| f(s).unwrap_or(0.0))
                .collect()
        };
        charts.push(Chart {
            title: "Partial reads over time (acknowledged orders, by read start)".into(),
            y_label: "share of reads".into(),
            x_max,
            lines: vec![
                Series {
                    name: "partial (of answered)".into(),
                    color: "#c62828",
                    values: share(|s| {
                        (s.answered > 0).then(|| s.partial as f64 / s.answered as f64)
                    }),
                    dashed: false,
                },
                Series {
                    name: "not answered (of all)".into(),
                    color: "#888888",
                    values: share(|s| (s.reads > 0).then(|| s.unanswered as f64 / s.reads as f64)),
                    dashed: true,
                },
            ],
            bars: None,
            bands: charts[0].bands.clone(),
        });
    }
    charts
        .iter()
        .map(|c| format!("<figure>{}</figure>\n", svg::render(c)))
        .collect()
}

/// What readers saw: per delay, the reader-side time to consistency beside the
/// relay's, the anomalies with sample ids.
fn readers(r: &RunResult) -> String {
    let Some(x) = &r.readers else {
        return String::new();
    };
    let mut s = String::from("<h2>What readers saw</h2>\n");
    let p = &x.plan;
    let delays: Vec<String> = p.delays_ms.iter().map(|d| format!("{d} ms")).collect();
    let f = &x.followed;
    let o = &x.reads;
    s.push_str(&kv_table(&[
        (
            "readers",
            escape(&format!(
                "{} · concurrency {} · delays {} after each write's answer · unacknowledged orders sampled at {}",
                p.rate
                    .map_or("every order followed".to_string(), |r| format!("{r} reads/s")),
                p.concurrency,
                delays.join(", "),
                p.unacknowledged
            )),
        ),
        (
            "read with",
            escape(&format!(
                "primary: {}; secondary: {}",
                p.primary.describe(),
                p.secondary.describe()
            )),
        ),
        (
            "followed",
            format!(
                "{} acknowledged, {} unacknowledged orders ({} over the read rate, {} outside the sample)",
                f.acknowledged, f.unacknowledged, f.over_budget, f.not_sampled
            ),
        ),
        (
            "reads",
            format!(
                "{}: {} answered, {} fail, {} unknown; {} started late (max {} ms); latency p50 {} · p99 {} ms",
                o.total,
                o.ok,
                o.fail,
                o.unknown,
                o.late,
                o.max_late_ms,
                x.latency_ms.p50,
                x.latency_ms.p99
            ),
        ),
    ]));
    for (title, rows) in [
        ("Reads of acknowledged orders", &x.by_delay),
        (
            "Reads of orders whose write failed or is unknown",
            &x.unacknowledged_by_delay,
        ),
    ] {
        if rows.iter().all(|d| d.reads == 0) && title.contains("failed") {
            continue;
        }
        s.push_str(&format!(
            "<p>{title}, by delay after the write's answer (shares of the answered reads):</p>\n"
        ));
        s.push_str("<table>\n<tr><th>delay</th><th>reads</th><th>answered</th><th>both</th><th>primary only</th><th>secondary only</th><th>neither</th><th>partial</th><th>not answered</th></tr>\n");
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
        for d in rows {
            let partial = d.partial_fraction.unwrap_or(0.0);
            let class = if partial > 0.0 { "n alarm" } else { "n" };
            s.push_str(&format!(
                "<tr><td>{} ms</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"{class}\">{}</td><td class=\"n\">{}</td></tr>\n",
                d.delay_ms,
                d.reads,
                d.answered,
                pct(d.both_fraction),
                pct(d.primary_only_fraction),
                pct(d.secondary_only_fraction),
                pct(d.neither_fraction),
                pct(d.partial_fraction),
                d.fail + d.unknown
            ));
        }
        s.push_str("</table>\n");
    }
    let t = &x.time_to_consistency_ms;
    let mut ttc = format!(
        "<p>Time to consistency, from each acknowledged order's intended start: readers first saw both sides after p50 {} · p99 {} · max {} ms ({} orders; at the delays above, so in their steps)",
        t.p50, t.p99, t.max, t.count
    );
    if let Some(relay) = &r.relay {
        let rt = &relay.time_to_consistency_ms;
        ttc.push_str(&format!(
            "; the relay delivered after p50 {} · p99 {} · max {} ms",
            rt.p50, rt.p99, rt.max
        ));
    }
    ttc.push('.');
    if x.never_consistent > 0 {
        ttc.push_str(&format!(
            " <span class=\"alarm\">{} followed orders were never seen on both sides</span> (e.g. {}).",
            x.never_consistent,
            escape(&x.never_consistent_samples.join(", "))
        ));
    }
    s.push_str(&ttc);
    s.push_str("</p>\n<table>\n<tr><th>anomaly</th><th>reads</th><th>orders</th><th>sample ids</th></tr>\n");
    for (name, a) in &x.anomalies {
        let class = if a.reads > 0 { "n alarm" } else { "n" };
        s.push_str(&format!(
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>\n",
            escape(&name.replace('_', " ")),
            a.reads,
            a.orders,
            escape(&a.samples.join(", "))
        ));
    }
    s.push_str("</table>\n");
    if !x.errors.is_empty() {
        let e: Vec<String> = x.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        s.push_str(&format!(
            "<p class=\"muted\">Side reads not answered: {}.</p>\n",
            escape(&e.join(", "))
        ));
    }
    s
}

fn counts(r: &RunResult) -> String {
    let mut s = String::from("<h2>Divergence by category</h2>\n");
    let Some(c) = &r.checker else {
        s.push_str("<p class=\"alarm\">The checker did not run: no counts.</p>\n");
        return s;
    };
    s.push_str(
        "<table>\n<tr><th>category</th><th>count</th><th>allowed</th><th>sample ids</th></tr>\n",
    );
    let limits = [
        r.expect.orphans,
        r.expect.ghosts,
        r.expect.duplicates,
        r.expect.mismatches,
        r.expect.lost_acks,
        r.expect.strays,
    ];
    for (cat, limit) in CATEGORIES.iter().zip(limits) {
        let samples = c
            .samples
            .get(*cat)
            .map(|v| v.join(", "))
            .unwrap_or_default();
        s.push_str(&format!(
            "<tr><td>{cat}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>\n",
            c.count(cat),
            limit.map_or("any".to_string(), |n| n.to_string()),
            escape(&samples)
        ));
    }
    s.push_str(&format!(
        "<tr><th>divergence</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th>{} distinct operations</th></tr>\n</table>\n",
        c.divergence,
        r.expect.divergence.map_or("any".to_string(), |n| n.to_string()),
        c.divergent_ops
    ));
    s.push_str(&format!(
        "<p>Scanned {} records on the primary, {} on the secondary.</p>\n",
        c.scanned_primary, c.scanned_secondary
    ));
    s.push_str("<table>\n<tr><th>client saw</th><th>landed nowhere</th><th>primary only</th><th>secondary only</th><th>both</th></tr>\n");
    for (name, l) in [
        ("fail", &c.ambiguous_fail),
        ("unknown", &c.ambiguous_unknown),
    ] {
        s.push_str(&format!(
            "<tr><td>{name}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
            l.none, l.primary_only, l.secondary_only, l.both
        ));
    }
    s.push_str("</table>\n");
    s
}

/// What each replica held on its own (the Cassandra cluster), at the load's end
/// and at check time, and when they came to agree.
fn replicas(r: &RunResult) -> String {
    let Some(rep) = &r.replicas else {
        return String::new();
    };
    let mut s = format!(
        "<h2>Replicas</h2>\n<p>The counts above come from the final scan at {}: every replica, merged (the eventual truth). Below, what each replica held on its own: a read at ONE coordinated by that node. {}</p>\n",
        escape(&rep.final_read),
        match (rep.agreed_s, rep.agreed_after_ms) {
            (Some(at), Some(ms)) => format!(
                "The replicas held the same records at {at:.1} s, {ms} ms after the last fault window ended ({} rounds of reads).",
                rep.polls
            ),
            _ => format!(
                "The replicas never held the same records during the settle period ({} rounds of reads).",
                rep.polls
            ),
        }
    );
    for (when, snap) in [
        ("At the load's end", &rep.load_end),
        ("At check time", &rep.check),
    ] {
        let Some(snap) = snap else { continue };
        let in_force = if snap.faults_in_force.is_empty() {
            "no fault in force".to_string()
        } else {
            format!("in force: {}", snap.faults_in_force.join(", "))
        };
        s.push_str(&format!(
            "<h3>{when} ({:.1} s, {}; replicas {})</h3>\n<table>\n<tr><th>node</th><th>primary</th><th>secondary</th><th>missing primary</th><th>missing secondary</th><th>differing</th><th>orphans</th><th>ghosts</th><th>duplicates</th><th>mismatches</th><th>lost acks</th><th>read proven</th></tr>\n",
            snap.t_s,
            escape(&in_force),
            if snap.agree { "agree" } else { "disagree" }
        ));
        for v in &snap.replicas {
            if let Some(e) = &v.error {
                s.push_str(&format!(
                    "<tr><td>{}</td><td colspan=\"11\" class=\"alarm\">not read: {}</td></tr>\n",
                    escape(&v.node),
                    escape(e)
                ));
                continue;
            }
            let proven = match &v.trace {
                Some(t) if t.proven => {
                    format!("yes ({} events on {})", t.events, escape(&t.address))
                }
                Some(t) => format!(
                    "<span class=\"alarm\">no: ran on {}</span>",
                    escape(&t.sources.join(", "))
                ),
                None => "-".to_string(),
            };
            let n = |x: u64| format!("<td class=\"n\">{x}</td>");
            s.push_str(&format!(
                "<tr><td>{}</td>{}{}{}{}{}{}{}{}{}{}<td>{proven}</td></tr>\n",
                escape(&v.node),
                n(v.scanned_primary),
                n(v.scanned_secondary),
                n(v.missing_primary),
                n(v.missing_secondary),
                n(v.differing),
                n(v.orphans),
                n(v.ghosts),
                n(v.duplicates),
                n(v.mismatches),
                n(v.lost_acks),
            ));
        }
        s.push_str("</table>\n");
    }
    s
}

fn availability(r: &RunResult) -> String {
    let a = &r.availability;
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let mut s = format!(
        "<h2>Availability</h2>\n<p>Operations acknowledged {}, failed {}, indeterminate {}.",
        pct(a.ok_fraction),
        pct(a.fail_fraction),
        pct(a.unknown_fraction)
    );
    if let Some(after) = &a.after_faults {
        s.push_str(&format!(
            " After the last fault window: {} operations, {} ok, {} fail, {} unknown{}.",
            after.ops,
            after.ok,
            after.fail,
            after.unknown,
            match a.recovered {
                Some(false) => " — the store did not recover",
                _ => "",
            }
        ));
    }
    s.push_str("</p>\n");
    s
}

fn attribution(r: &RunResult) -> String {
    let mut s = String::from("<h2>Fault attribution</h2>\n");
    let Some(c) = &r.checker else {
        s.push_str("<p>The checker did not run.</p>\n");
        return s;
    };
    let a = &c.attribution;
    if a.is_empty() {
        s.push_str("<p>No divergent record to attribute.</p>\n");
        return s;
    }
    // Columns: each window, then each window's recovery tail, then known causes.
    let mut columns: Vec<(String, String)> = Vec::new();
    let mut add = |kind: &str, mut keys: Vec<&String>| {
        keys.sort();
        keys.dedup();
        columns.extend(keys.into_iter().map(|k| (kind.to_string(), k.clone())));
    };
    add(
        "window",
        a.values().flat_map(|x| x.windows.keys()).collect(),
    );
    add(
        "recovery",
        a.values().flat_map(|x| x.recovery.keys()).collect(),
    );
    add("cause", a.values().flat_map(|x| x.causes.keys()).collect());
    s.push_str("<p>Each divergent record is tied to the fault windows in force between its intended start and its end; if none, to a window's recovery tail (after it ended, before the side's first success); a duplicate with a known cause (a relay's crash, an outbox re-armed) to that cause. Records outside all of these are the alarming ones.</p>\n<table>\n<tr><th>category</th>");
    for (kind, key) in &columns {
        let head = match kind.as_str() {
            "window" => format!("in {key}"),
            "recovery" => format!("recovery tail of {key}"),
            _ => key.clone(),
        };
        s.push_str(&format!("<th>{}</th>", escape(&head)));
    }
    s.push_str("<th>outside any window</th></tr>\n");
    for (cat, at) in a {
        s.push_str(&format!("<tr><td>{}</td>", escape(cat)));
        for (kind, key) in &columns {
            let map = match kind.as_str() {
                "window" => &at.windows,
                "recovery" => &at.recovery,
                _ => &at.causes,
            };
            s.push_str(&format!(
                "<td class=\"n\">{}</td>",
                map.get(key).copied().unwrap_or(0)
            ));
        }
        let class = if at.outside > 0 { "n alarm" } else { "n" };
        s.push_str(&format!("<td class=\"{class}\">{}</td></tr>\n", at.outside));
    }
    s.push_str("</table>\n");
    s
}

fn fault_windows(r: &RunResult) -> String {
    let mut s = String::from("<h2>Fault windows</h2>\n");
    if r.faults.is_empty() {
        s.push_str("<p>No fault was applied.</p>\n");
        return s;
    }
    s.push_str("<table>\n<tr><th>window</th><th>direction</th><th>toxicity</th><th>proxy</th><th>planned s</th><th>applied s</th><th>recovery ms</th><th>error</th></tr>\n");
    let secs = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.3}"));
    for f in &r.faults {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{} – {}</td><td>{} – {}</td><td class=\"n\">{}</td><td>{}</td></tr>\n",
            escape(&f.label()),
            escape(&f.direction),
            f.toxicity,
            escape(f.proxy.as_deref().unwrap_or("-")),
            f.planned_start_s,
            f.planned_end_s,
            secs(f.start_s),
            secs(f.end_s),
            f.recovery_ms().map_or("-".to_string(), |ms| ms.to_string()),
            escape(f.error.as_deref().unwrap_or(""))
        ));
    }
    s.push_str("</table>\n");
    s
}

fn errors(r: &RunResult) -> String {
    let w = &r.workload;
    if w.errors.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<h2>Errors seen by the client</h2>\n<table>\n<tr><th>class</th><th>count</th><th>first message</th></tr>\n",
    );
    for (class, n) in &w.errors {
        s.push_str(&format!(
            "<tr><td>{}</td><td class=\"n\">{n}</td><td>{}</td></tr>\n",
            escape(class),
            escape(w.error_samples.get(class).map_or("", String::as_str))
        ));
    }
    s.push_str("</table>\n");
    s
}

fn server(r: &RunResult) -> String {
    let sv = &r.server;
    let mut s = format!(
        "<h2>Server</h2>\n<p>{} {}</p>\n",
        escape(&sv.product),
        escape(&sv.version)
    );
    if !sv.capabilities.is_empty() {
        s.push_str("<table>\n<tr><th>capability</th><th>supported</th></tr>\n");
        for (cap, yes) in &sv.capabilities {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                escape(cap),
                if *yes { "yes" } else { "no" }
            ));
        }
        s.push_str("</table>\n");
    }
    if !sv.not_exercised.is_empty() {
        s.push_str(
            "<p>Not exercised on this server (a zero there means less than it seems):</p>\n<ul>\n",
        );
        for n in &sv.not_exercised {
            s.push_str(&format!("<li>{}</li>\n", escape(n)));
        }
        s.push_str("</ul>\n");
    }
    if !r.notes.is_empty() {
        s.push_str("<p>Notes:</p>\n<ul>\n");
        for n in &r.notes {
            s.push_str(&format!("<li>{}</li>\n", escape(n)));
        }
        s.push_str("</ul>\n");
    }
    s
}

/// `2026-11-28T13:15:24.249470479+00:00` -> `2026-11-28 13:15:24 UTC` (the result
/// keeps full precision); anything unparsable is shown as it is.
fn readable_time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| {
            d.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

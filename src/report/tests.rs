//! Snapshot tests of every report format on hand-built results. The expected files
//! live in tests/fixtures/reports/; after a deliberate change, regenerate them with
//! `UPDATE_SNAPSHOTS=1 cargo test --lib report::` and review the diff by eye.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::compare::{CompareOptions, compare};
use super::{Format, html, jepsen, junit, render};
use crate::checker::{Attribution, CheckerReport, Landed};
use crate::driver::Second;
use crate::fault::FaultWindow;
use crate::history::{HistoryEntry, Outcome, SideOutcome};
use crate::relay::RelayStats;
use crate::result::{
    Availability, Latency, Ops, RelayResult, RunResult, SCHEMA_VERSION, ScenarioInfo, Tool,
    Verdict, WorkloadResult,
};
use crate::scenario::{Expect, Side};
use crate::store::ServerInfo;
use crate::verdict::FailOn;

fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reports")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate with UPDATE_SNAPSHOTS=1 cargo test --lib report::",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the snapshot at line {}:\n expected: {:?}\n   actual: {:?}\n(UPDATE_SNAPSHOTS=1 to accept)",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

fn window(fault: usize, side: Side, start: f64, end: f64) -> FaultWindow {
    FaultWindow {
        fault,
        window: 0,
        kind: "down".into(),
        side: Some(side),
        direction: "downstream".into(),
        toxicity: 1.0,
        proxy: Some(format!("dynamodb_{side}")),
        server: None,
        nodes: None,
        planned_start_s: start.floor(),
        planned_end_s: end.floor(),
        start_s: Some(start),
        end_s: Some(end),
        recovered_s: None,
        error: None,
    }
}

fn timeline(rate: u64, seconds: u64, slow: std::ops::Range<u64>) -> Vec<Second> {
    (0..seconds)
        .map(|t| Second {
            t,
            attempted: rate,
            ok: if slow.contains(&t) { rate / 2 } else { rate },
            fail: 0,
            unknown: if slow.contains(&t) { rate / 2 } else { 0 },
            p50_ms: if slow.contains(&t) { 400.0 } else { 12.5 },
            p99_ms: if slow.contains(&t) { 1000.0 } else { 30.0 },
        })
        .collect()
}

/// A failing naive run: 100 orphans (all acknowledged) under a secondary outage,
/// 2 of them outside it, and one stray.
pub(crate) fn naive() -> RunResult {
    let mut checker = CheckerReport {
        orphans: 100,
        lost_acks: 100,
        strays: 1,
        divergence: 200,
        divergent_ops: 100,
        scanned_primary: 501,
        scanned_secondary: 400,
        divergent_by_second: vec![0, 0, 0, 49, 49, 0, 0, 2],
        ..CheckerReport::default()
    };
    let ids = |from: u64| (from..from + 10).map(crate::order::order_key).collect();
    checker.samples.insert("orphans".into(), ids(150));
    checker.samples.insert("lost_acks".into(), ids(150));
    checker
        .samples
        .insert("strays".into(), vec!["o999999999999".into()]);
    for cat in ["orphans", "lost_acks"] {
        checker.attribution.insert(
            cat.into(),
            Attribution {
                windows: BTreeMap::from([("#0.0 down@secondary".to_string(), 98)]),
                outside: 2,
                ..Attribution::default()
            },
        );
    }
    RunResult {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "dualwrite".into(),
            version: "0.1.0".into(),
        },
        run_id: "20260101T000000Z-0001".into(),
        scenario: ScenarioInfo {
            name: "dynamo-naive".into(),
            file: "scenarios/dynamo-naive.toml".into(),
            sha256: "ab".repeat(32),
            description: "PutItem to two tables, log-and-continue".into(),
            faults: vec!["down@secondary/downstream 3s+2s".into()],
        },
        seed: 42,
        repeat: None,
        target: "dynamodb".into(),
        pattern: "naive".into(),
        pattern_options: serde_json::json!({"kind": "naive"}),
        server: ServerInfo {
            product: "moto".into(),
            version: "5.1".into(),
            capabilities: BTreeMap::from([
                ("streams".to_string(), true),
                ("transaction_conflicts".to_string(), false),
            ]),
            not_exercised: vec!["TransactionConflictException: moto never raises it".into()],
        },
        namespace: "dw_test_0001".into(),
        started_at: "2026-01-01T00:00:00+00:00".into(),
        finished_at: "2026-01-01T00:00:12+00:00".into(),
        complete: true,
        interrupted: None,
        workload: WorkloadResult {
            target_tps: 50.0,
            achieved_tps: 50.0,
            load_s: 10.0,
            concurrency: 32,
            ops: Ops {
                planned: 500,
                total: 500,
                ok: 500,
                fail: 0,
                unknown: 0,
            },
            errors: BTreeMap::from([("refused".to_string(), 100)]),
            error_samples: BTreeMap::from([(
                "refused".to_string(),
                "dispatch failure: connection refused <127.0.0.1:25001>".to_string(),
            )]),
            ..WorkloadResult::default()
        },
        latency_ms: Latency {
            p50: 12.98,
            p90: 14.79,
            p99: 34.43,
            p999: 91.9,
            max: 91.9,
            mean: 13.5,
            count: 500,
        },
        service_ms: Latency {
            p50: 12.1,
            p90: 13.9,
            p99: 30.2,
            p999: 80.4,
            max: 80.4,
            mean: 12.6,
            count: 500,
        },
        timeline: timeline(50, 10, 0..0),
        faults: vec![window(0, Side::Secondary, 3.0, 5.0)],
        relay: None,
        faults_injected: BTreeMap::new(),
        client_counts: BTreeMap::new(),
        app: None,
        replicas: None,
        availability: Availability {
            ok_fraction: 1.0,
            ..Availability::default()
        },
        capacity: None,
        readers: None,
        checker: Some(checker),
        checked: true,
        expect: Expect::zero(),
        verdict: Verdict::Fail,
        verdict_reasons: vec![
            "orphans: 100 > allowed 0 (e.g. o000000000150)".into(),
            "lost_acks: 100 > allowed 0 (e.g. o000000000150)".into(),
            "strays: 1 > allowed 0 (e.g. o999999999999)".into(),
            "divergence: 200 > allowed 0".into(),
        ],
        warnings: vec![],
        notes: vec![],
    }
}

/// A passing transaction run, slower, with a primary outage.
pub(crate) fn transaction() -> RunResult {
    let mut r = naive();
    r.run_id = "20260101T000100Z-0002".into();
    r.scenario.name = "dynamo-transaction".into();
    r.scenario.description = "TransactWriteItems with a deterministic token".into();
    r.scenario.faults = vec!["down@primary/downstream 3s+2s".into()];
    r.pattern = "transaction".into();
    r.workload.achieved_tps = 40.0;
    r.workload.ops.ok = 400;
    r.workload.ops.unknown = 100;
    r.latency_ms.p50 = 25.96;
    r.latency_ms.p99 = 1000.0;
    r.latency_ms.p999 = 1002.0;
    r.timeline = timeline(50, 10, 3..5);
    r.faults = vec![window(0, Side::Primary, 3.0, 5.0)];
    r.checker = Some(CheckerReport {
        ambiguous_unknown: Landed {
            none: 60,
            both: 40,
            ..Landed::default()
        },
        scanned_primary: 440,
        scanned_secondary: 440,
        ..CheckerReport::default()
    });
    r.verdict = Verdict::Pass;
    r.verdict_reasons = vec![];
    r
}

/// A streams run with a relay: time to consistency, an error-free pass.
pub(crate) fn streams() -> RunResult {
    let mut r = transaction();
    r.run_id = "20260101T000200Z-0003".into();
    r.scenario.name = "dynamo-streams".into();
    r.scenario.faults = vec![];
    r.pattern = "streams".into();
    r.workload.achieved_tps = 49.5;
    r.latency_ms.p50 = 6.5;
    r.latency_ms.p99 = 15.25;
    r.faults = vec![];
    r.relay = Some(RelayResult {
        stats: RelayStats {
            workers: 1,
            delivered: 500,
            drained: true,
            drain_ms: 800,
            ..RelayStats::default()
        },
        time_to_consistency_ms: Latency {
            p50: 510.0,
            p99: 1480.0,
            max: 1600.0,
            ..Latency::default()
        },
    });
    r
}

fn runs() -> Vec<RunResult> {
    vec![naive(), transaction(), streams()]
}

#[test]
fn fixture_results_match_snapshots() {
    // Also the inputs of the CLI tests in tests/e2e/reports.rs.
    for r in runs() {
        let mut json = serde_json::to_string_pretty(&r).unwrap();
        json.push('\n');
        snapshot(&format!("results/{}/result.json", r.scenario.name), &json);
        let back: RunResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}

#[test]
fn comparison_formats_match_snapshots() {
    let cmp = compare(&runs(), None, &CompareOptions::default());
    snapshot("compare.txt", &render(&cmp, Format::Table, false));
    snapshot("compare.md", &render(&cmp, Format::Markdown, false));
    snapshot("compare.csv", &render(&cmp, Format::Csv, false));
    snapshot("compare.json", &render(&cmp, Format::Json, false));
}

#[test]
fn baseline_ratios_sorting_and_columns() {
    let opts = CompareOptions::parse(
        Some("scenario,p50_ms,latency_ratio,throughput_ratio,divergence,verdict"),
        Some("latency_ratio:desc"),
    )
    .unwrap();
    let cmp = compare(&runs(), Some(&naive()), &opts);
    // 25.96 / 12.98 = 2, 6.5 / 12.98 = 0.5; achieved 40 / 50 = 0.8.
    snapshot(
        "compare-baseline.md",
        &render(&cmp, Format::Markdown, false),
    );
    let order: Vec<String> = cmp.rows.iter().map(|r| r[0].display()).collect();
    assert_eq!(
        order,
        ["dynamo-transaction", "dynamo-naive", "dynamo-streams"]
    );
    assert_eq!(cmp.rows[0][2].display(), "2");
    assert_eq!(cmp.rows[0][3].display(), "0.8");
}

#[test]
fn unchecked_runs_show_no_counts() {
    let mut r = naive();
    r.checked = false;
    r.checker = None;
    let opts = CompareOptions::parse(Some("orphans"), None).unwrap();
    let cmp = compare(&[r], None, &opts);
    assert_eq!(render(&cmp, Format::Csv, false), "orphans\r\n\r\n");
}

#[test]
fn html_of_a_run_that_never_reached_the_store() {
    let mut r = naive();
    r.checked = false;
    r.checker = None;
    r.verdict = Verdict::Error;
    r.timeline.clear();
    r.server = ServerInfo::default();
    let page = crate::report::html::render(&r, None);
    assert_eq!(page.matches("<svg").count(), 0, "no empty charts");
    assert!(page.contains("No load ran"));
    assert!(
        page.contains("dynamodb / naive"),
        "no empty () for the server"
    );
}

#[test]
fn markdown_escapes_pipes() {
    let mut r = naive();
    r.scenario.name = "a|b".into();
    let opts = CompareOptions::parse(Some("scenario"), None).unwrap();
    let md = render(&compare(&[r], None, &opts), Format::Markdown, false);
    assert!(md.contains("| a\\|b |"), "{md}");
}

#[test]
fn junit_matches_snapshot_and_parses_back() {
    let xml = junit::render(&runs(), FailOn::default());
    snapshot("junit.xml", &xml);
    // Read it back with a real XML parser (python3's ElementTree).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, &xml).unwrap();
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suite = root.find("testsuite")
cases = suite.findall("testcase")
print(suite.get("tests"), suite.get("failures"), suite.get("errors"), len(cases))
for c in cases:
    f = c.find("failure")
    print(c.get("name"), "FAIL:" + f.get("message") if f is not None else "PASS")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "3 1 0 3\n\
         dynamo-naive FAIL:divergence 200: orphans 100, lost_acks 100, strays 1; first ids: o000000000150, o000000000151, o000000000152\n\
         dynamo-transaction PASS\n\
         dynamo-streams PASS\n"
    );
}

#[test]
fn junit_any_divergence_fails_runs_the_scenario_allowed() {
    let mut r = naive();
    r.verdict = Verdict::Pass;
    r.verdict_reasons.clear();
    let xml = junit::render(std::slice::from_ref(&r), FailOn::default());
    assert!(xml.contains("failures=\"0\""), "{xml}");
    let xml = junit::render(&[r], FailOn::parse("any-divergence").unwrap());
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(xml.contains("orphans: 100 &gt; allowed 0"), "{xml}");
}

#[test]
fn html_matches_snapshot_and_is_self_contained() {
    let r = naive();
    let page = html::render(&r, Some("name = \"dynamo-naive\"\n# <b>not markup</b>\n"));
    snapshot("report.html", &page);
    // Nothing fetched: the only URL is the SVG namespace identifier.
    let urls = page.matches("://").count();
    let svg_ns = page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(urls, svg_ns, "a network reference in the report");
    assert!(!page.contains("<script"));
    assert_eq!(svg_ns, 3, "three charts");
    assert!(page.contains("&lt;b&gt;not markup&lt;/b&gt;"));
    // The fault window is shaded in every chart, and 2 orphans are outside it.
    assert_eq!(page.matches("class=\"fault\"").count(), 3);
    assert!(page.contains("<td class=\"n alarm\">2</td>"));
}

#[test]
fn jepsen_history_matches_snapshot() {
    let e = |id, start_us, end_us, outcome, secondary| HistoryEntry {
        id,
        intended_us: id * 20_000,
        start_us,
        end_us,
        outcome,
        error: (outcome != Outcome::Ok).then(|| "timeout".to_string()),
        primary: SideOutcome::Ok,
        secondary,
        retries: 0,
    };
    let entries = vec![
        e(0, 100, 5_000, Outcome::Ok, SideOutcome::Ok),
        // Overlaps op 0: a second process. Indeterminate: process 1 is retired.
        e(1, 1_000, 9_000, Outcome::Unknown, SideOutcome::Unknown),
        // Starts after op 0 ended: reuses process 0.
        e(2, 6_000, 7_000, Outcome::Fail, SideOutcome::Fail),
        // Both earlier processes are busy or retired: a new process 2.
        e(3, 6_500, 8_000, Outcome::Ok, SideOutcome::Ok),
    ];
    let text = jepsen::export(&entries, &[]);
    snapshot("history.jepsen.jsonl", &text);
    let procs: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "invoke")
        .map(|v| v["process"].as_u64().unwrap())
        .collect();
    assert_eq!(procs, [0, 1, 0, 2]);
}

/// The readers' block of a streams run: partial reads falling with the delay,
/// one visible ghost.
pub(crate) fn readers_result() -> crate::result::ReadersResult {
    use crate::result::{Anomaly, DelayReads, Followed, ReadOps, ReadSecond, ReadersPlan};
    let delay = |delay_ms: u64, both: u64, primary_only: u64| {
        let answered = both + primary_only;
        DelayReads {
            delay_ms,
            reads: answered,
            answered,
            both,
            primary_only,
            both_fraction: Some(both as f64 / answered as f64),
            primary_only_fraction: Some(primary_only as f64 / answered as f64),
            secondary_only_fraction: Some(0.0),
            neither_fraction: Some(0.0),
            partial_fraction: Some(primary_only as f64 / answered as f64),
            ..DelayReads::default()
        }
    };
    let mut anomalies: BTreeMap<String, Anomaly> = crate::reader::stats::ANOMALIES
        .iter()
        .map(|n| (n.to_string(), Anomaly::default()))
        .collect();
    anomalies.insert(
        "visible_ghost".into(),
        Anomaly {
            reads: 1,
            orders: 1,
            samples: vec!["o000000000042".into()],
        },
    );
    crate::result::ReadersResult {
        plan: ReadersPlan {
            rate: Some(200.0),
            concurrency: 16,
            delays_ms: vec![0, 100, 1000],
            unacknowledged: 1.0,
            primary: Default::default(),
            secondary: crate::scenario::ReadConsistency {
                consistency: Some("strong".into()),
                ..Default::default()
            },
        },
        followed: Followed {
            acknowledged: 200,
            over_budget: 300,
            ..Followed::default()
        },
        reads: ReadOps {
            total: 600,
            ok: 600,
            ..ReadOps::default()
        },
        latency_ms: Latency {
            p50: 4.5,
            p99: 20.0,
            max: 31.0,
            count: 600,
            ..Latency::default()
        },
        by_delay: vec![delay(0, 20, 180), delay(100, 150, 50), delay(1000, 200, 0)],
        unacknowledged_by_delay: vec![delay(0, 0, 0), delay(100, 0, 0), delay(1000, 0, 0)],
        time_to_consistency_ms: Latency {
            p50: 612.0,
            p99: 1520.0,
            max: 1610.0,
            count: 200,
            ..Latency::default()
        },
        never_consistent: 0,
        never_consistent_samples: vec![],
        anomalies,
        timeline: (0..10)
            .map(|t| ReadSecond {
                t,
                reads: 60,
                answered: 60,
                partial: if (3..5).contains(&t) { 45 } else { 20 },
                unanswered: 0,
            })
            .collect(),
        errors: BTreeMap::new(),
    }
}

/// The streams run with readers, under the naive run's fault window.
fn streams_with_readers() -> RunResult {
    let mut r = streams();
    r.scenario.name = "dynamo-readers-streams".into();
    r.faults = naive().faults;
    r.readers = Some(readers_result());
    r
}

#[test]
fn compare_adds_a_partial_read_column_per_delay_when_a_run_had_readers() {
    let runs = [naive(), streams_with_readers()];
    let cmp = compare(&runs, None, &CompareOptions::default());
    let md = render(&cmp, Format::Markdown, false);
    snapshot("compare-readers.md", &md);
    let csv = render(&cmp, Format::Csv, false);
    let header = csv.lines().next().unwrap();
    assert!(
        header.contains(
            "ttc_p99_ms,partial_0s,partial_100ms,partial_1s,read_ttc_p99_ms,read_anomalies,verdict"
        ),
        "{header}"
    );
    // The run without readers has none of their figures, not zeros.
    let json: serde_json::Value = serde_json::from_str(&render(&cmp, Format::Json, false)).unwrap();
    assert_eq!(json["rows"][0]["partial_0s"], serde_json::Value::Null);
    assert_eq!(json["rows"][1]["partial_0s"], 0.9);
    assert_eq!(json["rows"][1]["partial_1s"], 0);
    assert_eq!(json["rows"][1]["read_anomalies"], 1);
    // Without readers anywhere, the default columns are what they were.
    let plain = compare(&[naive()], None, &CompareOptions::default());
    assert!(!plain.columns.iter().any(|c| c.key().starts_with("partial")));
}

#[test]
fn html_with_readers_charts_partial_reads_under_the_fault_windows() {
    let page = html::render(&streams_with_readers(), None);
    snapshot("report-readers.html", &page);
    assert_eq!(page.matches("<svg").count(), 4, "a fourth chart");
    assert_eq!(page.matches("class=\"fault\"").count(), 4, "shaded in each");
    assert!(page.contains("Partial reads over time"));
    assert!(page.contains("What readers saw"));
    assert!(page.contains("the relay delivered after p50 510"));
    assert!(page.contains("o000000000042"), "the ghost's sample id");
    let summary = super::table::summary(&streams_with_readers());
    assert!(
        summary.contains("0 ms 90.0% | 100 ms 25.0% | 1000 ms 0.0%"),
        "{summary}"
    );
    assert!(
        summary.contains("visible_ghost 1 (e.g. o000000000042)"),
        "{summary}"
    );
}

#[test]
fn jepsen_history_with_reads_matches_snapshot() {
    use crate::reader::entry::{ReadEntry, Seen};
    let write = HistoryEntry {
        id: 0,
        intended_us: 0,
        start_us: 100,
        end_us: 5_000,
        outcome: Outcome::Ok,
        error: None,
        primary: SideOutcome::Ok,
        secondary: SideOutcome::Async,
        retries: 0,
    };
    let read = |n, delay_ms: u64, start_us: u64, secondary, outcome| ReadEntry {
        n,
        id: 0,
        delay_ms,
        write: Outcome::Ok,
        planned_us: 5_000 + delay_ms * 1000,
        start_us,
        end_us: start_us + 1_500,
        outcome,
        primary: Seen::Seen,
        secondary,
        primary_copies: 1,
        secondary_copies: 0,
        primary_error: None,
        secondary_error: (outcome == Outcome::Unknown).then(|| "timeout".to_string()),
    };
    let reads = vec![
        read(0, 0, 5_100, Seen::Absent, Outcome::Ok),
        // Lost answer: `info`, and its process is retired.
        read(1, 10, 15_000, Seen::Unknown, Outcome::Unknown),
        read(2, 100, 105_000, Seen::Seen, Outcome::Ok),
    ];
    let text = jepsen::export(&[write], &reads);
    snapshot("history-reads.jepsen.jsonl", &text);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<(&str, &str, u64)> = lines
        .iter()
        .map(|v| {
            (
                v["f"].as_str().unwrap(),
                v["type"].as_str().unwrap(),
                v["process"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("write", "invoke", 0),
            ("write", "ok", 0),
            ("read", "invoke", 0),
            ("read", "ok", 0),
            ("read", "invoke", 0),
            ("read", "info", 0),
            ("read", "invoke", 1),
            ("read", "ok", 1),
        ]
    );
    assert_eq!(lines[3]["value"]["secondary"], "absent");
    assert_eq!(lines[5]["secondary_error"], "timeout");
}

#[test]
fn replica_views_show_in_the_summary_and_the_html() {
    use crate::result::{ReplicaReport, ReplicaSnapshot, ReplicaTrace, ReplicaView};
    let mut r = naive();
    let behind = ReplicaView {
        node: "c3".into(),
        scanned_primary: 152,
        scanned_secondary: 152,
        missing_primary: 448,
        missing_secondary: 448,
        lost_acks: 448,
        divergence: 448,
        ..ReplicaView::default()
    };
    let whole = |node: &str| ReplicaView {
        node: node.into(),
        scanned_primary: 600,
        scanned_secondary: 600,
        trace: Some(ReplicaTrace {
            address: "10.77.0.11".into(),
            coordinator: Some("10.77.0.11".into()),
            events: 7,
            sources: vec!["10.77.0.11".into()],
            proven: true,
        }),
        ..ReplicaView::default()
    };
    r.replicas = Some(ReplicaReport {
        final_read: "ALL".into(),
        load_end: Some(ReplicaSnapshot {
            t_s: 12.3,
            faults_in_force: vec!["#0.0 partition@c3".into()],
            agree: false,
            replicas: vec![
                ReplicaView {
                    trace: None,
                    ..whole("c1")
                },
                behind,
            ],
        }),
        check: Some(ReplicaSnapshot {
            t_s: 30.4,
            faults_in_force: Vec::new(),
            agree: true,
            replicas: vec![whole("c1"), whole("c3")],
        }),
        agreed_s: Some(30.3),
        agreed_after_ms: Some(17686),
        polls: 31,
    });
    let line = crate::report::table::summary(&r);
    assert!(
        line.contains("c3 lacks 448+448 (448 lost acks on it alone)"),
        "{line}"
    );
    assert!(
        line.contains("agreed 17686 ms after the last fault"),
        "{line}"
    );
    assert!(line.contains("2/2 reads proven by tracing"), "{line}");
    let page = html::render(&r, None);
    assert!(page.contains("<h2>Replicas</h2>"));
    assert!(page.contains("17686 ms after the last fault window ended"));
    assert!(page.contains("in force: #0.0 partition@c3"));
    assert!(page.contains("yes (7 events on 10.77.0.11)"));
    // Without the block, nothing is said about replicas.
    assert!(!html::render(&naive(), None).contains("Replicas"));
}

#[test]
fn warnings_reach_junit_and_the_summary() {
    let mut r = transaction();
    r.availability.unknown_fraction = 0.73;
    r.warnings = vec![
        "73.0% of operations are indeterminate (over 20%): zero divergence over them proves little"
            .into(),
    ];
    let xml = junit::render(std::slice::from_ref(&r), FailOn::default());
    assert!(
        xml.contains("<system-err>warning: 73.0% of operations are indeterminate"),
        "{xml}"
    );
    assert!(
        xml.contains("failures=\"0\""),
        "a warning alone does not fail: {xml}"
    );
    let xml = junit::render(&[r.clone()], FailOn::parse("unavailable").unwrap());
    assert!(
        xml.contains("failures=\"1\""),
        "--fail-on unavailable fails it: {xml}"
    );
    assert!(super::table::summary(&r).contains("warning: 73.0%"));
    assert!(html::render(&r, None).contains("73.0% of operations are indeterminate"));
}

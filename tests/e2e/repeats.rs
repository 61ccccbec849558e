//! `run --repeat N` on the real DynamoDB server (moto), through proxies of the
//! test's own: N complete run directories with consecutive seeds, and the
//! series folded into one `compare` row whose figures are the runs' own.

use dualwrite::result::RunResult;

use crate::common::*;

/// Naive writes with log-and-continue while the secondary is down for 1 s:
/// orphans in every run, their number varying with the timing.
fn scenario(name: &str, proxies: &OwnProxies) -> String {
    let p = &proxies.prefix;
    format!(
        r#"name = "{name}"
seed = 11
[target]
store = "dynamodb"
server = "moto"
[target.primary]
proxy = "{p}_primary"
[target.secondary]
proxy = "{p}_secondary"
[pattern]
name = "naive"
on_secondary_failure = "log-and-continue"
[workload]
rate = 20
duration = "2s"
concurrency = 8
op_timeout = "1s"
[[faults]]
kind = "down"
side = "secondary"
start = "500ms"
duration = "1s"
"#
    )
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn three_repeats_make_three_runs_with_consecutive_seeds_and_one_compare_row() {
    let proxies = OwnProxies::new("repeats", "127.0.0.1:5000");
    let s = Scratch::new();
    let name = "e2e-repeats";
    let file = s.write("repeats.toml", &scenario(name, &proxies));
    let out = s.dualwrite(&["run", file.to_str().unwrap(), "--repeat", "3"]);
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let explain = format!("exit {code}\n{stdout}\n{stderr}");

    // Three run directories, each a complete, normal result.
    let dir = s.results().join(name);
    let mut runs: Vec<RunResult> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "latest")
        .map(|e| {
            assert!(e.path().join("history.jsonl").is_file(), "{explain}");
            RunResult::read(&e.path()).unwrap_or_else(|e| panic!("{e:#}\n{explain}"))
        })
        .collect();
    runs.sort_by_key(|r| r.seed);
    assert_eq!(runs.len(), 3, "{explain}");
    assert_eq!(
        runs.iter().map(|r| r.seed).collect::<Vec<_>>(),
        vec![11, 12, 13]
    );
    let group = runs[0]
        .repeat
        .as_ref()
        .expect("repeat recorded")
        .group
        .clone();
    for (i, r) in runs.iter().enumerate() {
        let rep = r.repeat.as_ref().expect("repeat recorded");
        assert_eq!((rep.index, rep.of), (i as u32 + 1, 3));
        assert_eq!(rep.group, group);
        assert!(r.complete && r.checker.is_some(), "{explain}");
        assert_eq!(
            r.workload.ops.ok + r.workload.ops.fail + r.workload.ops.unknown,
            r.workload.ops.total
        );
    }
    // The exit code is the worst of the three (a FAIL is 1, all PASS is 0).
    let failed = runs
        .iter()
        .any(|r| r.verdict == dualwrite::result::Verdict::Fail);
    assert_eq!(code, if failed { 1 } else { 0 }, "{explain}");
    // A line per repeat, then the series' row.
    for i in 1..=3 {
        assert!(
            stdout.contains(&format!("repeat {i}/3 {name} seed {}", 10 + i)),
            "{explain}"
        );
    }

    // `compare` of the results directory: the latest run stands for its series.
    let out = s.dualwrite(&["compare", s.results().to_str().unwrap(), "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{json}");
    let row = &rows[0];
    assert_eq!(row["runs"], 3, "{row}");
    let count = |f: fn(&RunResult) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let figures: [(&str, Vec<f64>); 5] = [
        (
            "orphans",
            count(|r| r.checker.as_ref().unwrap().orphans as f64),
        ),
        (
            "lost_acks",
            count(|r| r.checker.as_ref().unwrap().lost_acks as f64),
        ),
        ("ok", count(|r| r.workload.ops.ok as f64)),
        ("unknown", count(|r| r.workload.ops.unknown as f64)),
        ("p50_ms", count(|r| r.latency_ms.p50)),
    ];
    for (key, values) in figures {
        let cell = &row[key];
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // All equal: the plain number; otherwise the spread, mean rounded to 4 places.
        let got = cell["mean"].as_f64().or(cell.as_f64()).unwrap();
        assert!(
            (got - mean(&values)).abs() < 1e-4,
            "{key}: {cell} vs {values:?}"
        );
        if min != max {
            assert_eq!(cell["n"], 3, "{key}: {cell}");
            assert_eq!(cell["min"].as_f64(), Some(min), "{key}");
            assert_eq!(cell["max"].as_f64(), Some(max), "{key}");
            let (lo, hi) = (
                cell["ci95_low"].as_f64().unwrap(),
                cell["ci95_high"].as_f64().unwrap(),
            );
            assert!(lo <= mean(&values) && mean(&values) <= hi, "{key}: {cell}");
        }
    }
}

#[test]
fn repeat_out_of_range_is_bad_input() {
    let s = Scratch::new();
    for n in ["0", "1001", "many"] {
        let out = s.dualwrite(&["run", "scenarios/dynamo-naive.toml", "--repeat", n]);
        assert_eq!(out.status.code(), Some(2), "--repeat {n}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("from 1 to 1000"), "{stderr}");
    }
}

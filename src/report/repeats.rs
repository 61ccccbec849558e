//! Repeats in a comparison: the runs of one `run --repeat N` series (same
//! scenario name and `repeat.group`) fold into one row whose figures are
//! [`Spread`]s (mean, min, max, 95 % interval); every other run is a row of
//! its own, as before.

use std::collections::BTreeMap;

use super::compare::{Column, Value, value};
use super::interval::Spread;
use crate::result::{RunResult, Verdict};

/// One row of a comparison: a run, or the runs of one repeat series (two or
/// more, in repeat order).
#[derive(Debug, Clone)]
pub enum Row<'a> {
    Single(&'a RunResult),
    Group(Vec<&'a RunResult>),
}

/// The rows of `runs`, in the order each run or series first appears. A series
/// of which only one run is given is a single row.
pub fn rows(runs: &[RunResult]) -> Vec<Row<'_>> {
    let mut rows: Vec<Row> = Vec::new();
    // (scenario, group) -> index in `rows`.
    let mut groups: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in runs {
        let Some(rep) = &r.repeat else {
            rows.push(Row::Single(r));
            continue;
        };
        let key = (r.scenario.name.as_str(), rep.group.as_str());
        match groups.get(&key) {
            Some(&i) => {
                let members = match &rows[i] {
                    Row::Single(first) => vec![*first, r],
                    Row::Group(members) => {
                        let mut members = members.clone();
                        members.push(r);
                        members
                    }
                };
                rows[i] = Row::Group(members);
            }
            None => {
                groups.insert(key, rows.len());
                rows.push(Row::Single(r));
            }
        }
    }
    for row in &mut rows {
        if let Row::Group(members) = row {
            members.sort_by_key(|r| r.repeat.as_ref().map_or(0, |x| x.index));
        }
    }
    rows
}

impl Row<'_> {
    pub fn is_group(&self) -> bool {
        matches!(self, Row::Group(_))
    }

    /// One cell of this row.
    pub fn value(&self, baseline: Option<&RunResult>, col: Column) -> Value {
        match self {
            Row::Single(r) => value(r, baseline, col),
            Row::Group(runs) => group_value(runs, baseline, col),
        }
    }
}

/// One cell of a series: numbers as a [`Spread`] over the runs the checker
/// finished (an interrupted or failed run measured nothing comparable), text
/// as its distinct values, the verdict counted over every run.
fn group_value(runs: &[&RunResult], baseline: Option<&RunResult>, col: Column) -> Value {
    match col {
        Column::Runs => Value::Number(Some(runs.len() as f64)),
        Column::RunId => Value::Text(
            runs[0]
                .repeat
                .as_ref()
                .map_or_else(String::new, |x| x.group.clone()),
        ),
        Column::Verdict => Value::Text(verdicts(runs)),
        _ => {
            let cells: Vec<Value> = runs.iter().map(|r| value(r, baseline, col)).collect();
            if cells.iter().all(|c| matches!(c, Value::Text(_))) {
                let mut distinct: Vec<String> = Vec::new();
                for c in cells {
                    let text = c.display();
                    if !distinct.contains(&text) {
                        distinct.push(text);
                    }
                }
                return Value::Text(distinct.join(" / "));
            }
            let numbers: Vec<f64> = runs
                .iter()
                .zip(&cells)
                .filter(|(r, _)| r.checker.is_some())
                .filter_map(|(_, c)| match c {
                    Value::Number(n) => *n,
                    _ => None,
                })
                .collect();
            match Spread::of(&numbers) {
                Some(s) => Value::Spread(s),
                None => Value::Number(None),
            }
        }
    }
}

/// `PASS` when every run passed (likewise FAIL, ERROR); otherwise the counts,
/// worst first: `2 ERROR, 1 FAIL, 2 PASS`.
fn verdicts(runs: &[&RunResult]) -> String {
    let order = [Verdict::Error, Verdict::Fail, Verdict::Pass];
    let counts: Vec<(Verdict, usize)> = order
        .iter()
        .map(|v| (*v, runs.iter().filter(|r| r.verdict == *v).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    match counts.as_slice() {
        [(v, _)] => v.name().to_uppercase(),
        _ => counts
            .iter()
            .map(|(v, n)| format!("{n} {}", v.name().to_uppercase()))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The line `run --repeat` prints after each run of a series: which one, its
/// seed, its verdict and the figures a design review compares.
pub fn line(r: &RunResult) -> String {
    let which = r
        .repeat
        .as_ref()
        .map_or_else(String::new, |x| format!("repeat {}/{} ", x.index, x.of));
    let w = &r.workload;
    let counts = match &r.checker {
        Some(c) => format!(
            "orphans {} ghosts {} dups {} mismatch {} lost acks {}",
            c.orphans, c.ghosts, c.duplicates, c.mismatches, c.lost_acks
        ),
        None => "not checked".to_string(),
    };
    let ttc = r.relay.as_ref().map_or_else(String::new, |x| {
        format!(" | ttc p99 {} ms", x.time_to_consistency_ms.p99)
    });
    format!(
        "{which}{} seed {}: {} | {:.1}/s, ok {} fail {} unknown {} | p50 {} ms p99 {} ms{ttc} | {counts}",
        r.scenario.name,
        r.seed,
        r.verdict.name().to_uppercase(),
        w.achieved_tps,
        w.ops.ok,
        w.ops.fail,
        w.ops.unknown,
        r.latency_ms.p50,
        r.latency_ms.p99,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::{CompareOptions, compare};
    use crate::report::tests::{naive, transaction};
    use crate::result::Repeat;

    /// Run `index` of the series `group` of `base`, with these orphans (each
    /// also a lost ack) and this p50.
    fn repeat(
        base: &RunResult,
        group: &str,
        index: u32,
        of: u32,
        orphans: u64,
        p50: f64,
    ) -> RunResult {
        let mut r = base.clone();
        r.run_id = format!("20260101T00000{index}Z-{group}");
        r.seed = 42 + u64::from(index) - 1;
        r.repeat = Some(Repeat {
            index,
            of,
            group: group.into(),
        });
        let c = r.checker.as_mut().unwrap();
        c.orphans = orphans;
        c.lost_acks = orphans;
        r.latency_ms.p50 = p50;
        r
    }

    fn keys(runs: &[RunResult]) -> Vec<String> {
        rows(runs)
            .iter()
            .map(|row| match row {
                Row::Single(r) => r.run_id.clone(),
                Row::Group(m) => m
                    .iter()
                    .map(|r| r.seed.to_string())
                    .collect::<Vec<_>>()
                    .join("+"),
            })
            .collect()
    }

    #[test]
    fn series_fold_by_scenario_and_group_in_first_seen_order() {
        let n = naive();
        let runs = vec![
            repeat(&n, "g1", 2, 3, 110, 13.0),
            transaction(),
            repeat(&n, "g2", 1, 2, 90, 12.0),
            repeat(&n, "g1", 1, 3, 100, 12.0),
            repeat(&n, "g1", 3, 3, 120, 14.0),
            // The same group id under another scenario is another series.
            {
                let mut r = repeat(&n, "g2", 1, 2, 5, 1.0);
                r.scenario.name = "other".into();
                r
            },
        ];
        assert_eq!(
            keys(&runs),
            vec![
                "42+43+44".to_string(),
                transaction().run_id,
                // Alone here (its second run not given): a single row.
                "20260101T000001Z-g2".into(),
                "20260101T000001Z-g2".into(),
            ]
        );
        // Results without `repeat` never fold, even with equal names.
        assert_eq!(rows(&[naive(), naive()]).len(), 2);
    }

    #[test]
    fn a_series_row_holds_mean_min_max_and_the_interval_of_each_figure() {
        let n = naive();
        let runs = vec![
            repeat(&n, "g1", 1, 3, 100, 12.0),
            repeat(&n, "g1", 2, 3, 110, 13.0),
            repeat(&n, "g1", 3, 3, 120, 14.0),
            transaction(),
        ];
        let cmp = compare(&runs, None, &CompareOptions::default());
        assert_eq!(cmp.rows.len(), 2);
        let cell = |row: usize, col: Column| {
            let i = cmp.columns.iter().position(|c| *c == col).unwrap();
            cmp.rows[row][i].clone()
        };
        // A series shows its runs and outcomes by default.
        assert_eq!(cell(0, Column::Runs), Value::Number(Some(3.0)));
        assert_eq!(cell(1, Column::Runs), Value::Number(Some(1.0)));
        let Value::Spread(o) = cell(0, Column::Orphans) else {
            panic!("{:?}", cell(0, Column::Orphans))
        };
        // 100, 110, 120: mean 110, s = 10, half = 4.3027 × 10 / √3 = 24.8417.
        assert_eq!((o.n, o.mean, o.min, o.max), (3, 110.0, 100.0, 120.0));
        assert!((o.half_width.unwrap() - 24.8417).abs() < 1e-4, "{o:?}");
        assert_eq!(cell(0, Column::Orphans).display(), "110 ±24.84 (100–120)");
        // All equal: the one value.
        assert_eq!(cell(0, Column::Ghosts).display(), "0");
        assert_eq!(cell(0, Column::Ok).display(), "500");
        let Value::Spread(p50) = cell(0, Column::P50) else {
            panic!()
        };
        assert_eq!(p50.mean, 13.0);
        assert_eq!(cell(0, Column::Verdict), Value::Text("FAIL".into()));
        assert_eq!(
            cell(0, Column::Scenario),
            Value::Text("dynamo-naive".into())
        );
        // The single run keeps its plain values.
        assert_eq!(cell(1, Column::Orphans), Value::Number(Some(0.0)));
        assert!(crate::report::compare::legend(&cmp).contains("95 % interval"));
    }

    #[test]
    fn runs_the_checker_did_not_finish_count_in_the_verdict_only() {
        let n = naive();
        let mut interrupted = repeat(&n, "g1", 3, 3, 0, 0.0);
        interrupted.checker = None;
        interrupted.verdict = Verdict::Error;
        let mut passed = repeat(&n, "g1", 2, 3, 0, 10.0);
        passed.verdict = Verdict::Pass;
        let runs = vec![repeat(&n, "g1", 1, 3, 100, 12.0), passed, interrupted];
        let row = &rows(&runs)[0];
        assert_eq!(row.value(None, Column::Runs), Value::Number(Some(3.0)));
        let Value::Spread(o) = row.value(None, Column::Orphans) else {
            panic!()
        };
        assert_eq!((o.n, o.mean), (2, 50.0));
        let Value::Spread(p50) = row.value(None, Column::P50) else {
            panic!()
        };
        assert_eq!(
            (p50.n, p50.mean),
            (2, 11.0),
            "the unchecked run's zeros left out"
        );
        assert_eq!(
            row.value(None, Column::Verdict),
            Value::Text("1 ERROR, 1 FAIL, 1 PASS".into())
        );
        // No checked run at all: not applicable, not zero.
        let mut only = repeat(&n, "g9", 1, 2, 0, 0.0);
        only.checker = None;
        let mut only2 = only.clone();
        only2.repeat.as_mut().unwrap().index = 2;
        assert_eq!(
            rows(&[only, only2])[0].value(None, Column::Orphans),
            Value::Number(None)
        );
    }

    #[test]
    fn sorting_uses_the_mean() {
        let n = naive();
        let mut single = naive();
        single.checker.as_mut().unwrap().orphans = 105;
        let runs = vec![
            repeat(&n, "g1", 1, 2, 100, 12.0),
            repeat(&n, "g1", 2, 2, 120, 12.0),
            single,
        ];
        let opts =
            CompareOptions::parse(Some("scenario,runs,orphans"), Some("orphans:desc")).unwrap();
        let cmp = compare(&runs, None, &opts);
        assert_eq!(cmp.rows[0][1], Value::Number(Some(2.0)), "mean 110 first");
        assert_eq!(cmp.rows[1][2], Value::Number(Some(105.0)));
    }

    #[test]
    fn every_format_carries_the_interval_and_single_runs_keep_theirs() {
        let n = naive();
        let runs = vec![
            repeat(&n, "g1", 1, 3, 100, 12.0),
            repeat(&n, "g1", 2, 3, 110, 13.0),
            repeat(&n, "g1", 3, 3, 120, 14.0),
            transaction(),
        ];
        let opts = CompareOptions::parse(Some("scenario,runs,orphans,verdict"), None).unwrap();
        let cmp = compare(&runs, None, &opts);
        let md = crate::report::markdown::comparison(&cmp);
        assert!(
            md.contains("| dynamo-naive | 3 | 110 ±24.84 (100–120) | FAIL |"),
            "{md}"
        );
        assert!(md.contains("| dynamo-transaction | 1 | 0 | PASS |"), "{md}");
        let csv = crate::report::csv::comparison(&cmp);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "scenario,runs,orphans,orphans_min,orphans_max,orphans_ci95_low,orphans_ci95_high,verdict"
        );
        assert_eq!(lines[1], "dynamo-naive,3,110,100,120,85.1583,134.8417,FAIL");
        assert_eq!(lines[2], "dynamo-transaction,1,0,,,,,PASS");
        let json: serde_json::Value =
            serde_json::from_str(&crate::report::json::comparison(&cmp)).unwrap();
        let o = &json["rows"][0]["orphans"];
        assert_eq!(o["n"], 3);
        assert_eq!(o["mean"], 110);
        assert_eq!(
            (o["min"].clone(), o["max"].clone()),
            (100.into(), 120.into())
        );
        assert_eq!(o["ci95_low"], 85.1583);
        assert_eq!(json["rows"][1]["orphans"], 0);

        // Without a series, today's output: no runs or outcome columns, no extras.
        let plain = compare(&[naive(), transaction()], None, &CompareOptions::default());
        assert!(!plain.columns.iter().any(|c| matches!(
            c,
            Column::Runs | Column::Ok | Column::Fail | Column::Unknown
        )));
        let csv = crate::report::csv::comparison(&plain);
        assert!(!csv.contains("_min"), "{csv}");
        assert!(!crate::report::compare::legend(&plain).contains("interval"));
    }

    #[test]
    fn the_line_of_a_repeat_names_it_and_its_seed() {
        let r = repeat(&naive(), "g1", 2, 5, 150, 12.0);
        let l = line(&r);
        assert!(
            l.starts_with("repeat 2/5 dynamo-naive seed 43: FAIL"),
            "{l}"
        );
        assert!(
            l.contains("ok 500 fail 0 unknown 0") && l.contains("orphans 150"),
            "{l}"
        );
    }
}

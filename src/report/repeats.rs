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

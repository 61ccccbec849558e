//! The comparison row model shared by every multi-run format (terminal table,
//! Markdown, CSV, JSON): one row per run or per series of repeats
//! (`super::repeats`), one [`Column`] per figure, optional ratios against a
//! baseline run, sorting and column selection. Formats only decide how a cell
//! is printed.

use anyhow::bail;

use super::capacity::{self, FIGURES, Prices};
use super::interval::Spread;
use super::repeats;
use crate::result::RunResult;

/// One column of the comparison. The order here is the default order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Scenario,
    RunId,
    /// Runs in the row (a series of repeats: its length).
    Runs,
    Store,
    Pattern,
    Faults,
    TargetTps,
    AchievedTps,
    /// Operations by outcome (the history's ok / fail / unknown).
    Ok,
    Fail,
    Unknown,
    P50,
    P99,
    P999,
    LatencyRatio,
    ThroughputRatio,
    Orphans,
    Ghosts,
    Duplicates,
    Mismatches,
    LostAcks,
    Strays,
    Divergence,
    TtcP99,
    /// The share of answered reads of acknowledged orders that saw one side
    /// only, at one delay (milliseconds) of `[readers]`.
    Partial(u64),
    /// Reader-side time to consistency, p99.
    ReadTtcP99,
    /// Anomalous reads of every kind.
    ReadAnomalies,
    /// A capacity figure per order (an index of `capacity::FIGURES`).
    Capacity(usize),
    /// Where the run's capacity figures come from.
    CapacitySource,
    /// Cost of a million orders at the `--prices` table.
    Cost,
    Verdict,
}

impl Column {
    /// Every column but the per-delay ones (`partial_<delay>`), which exist for
    /// the delays the runs read at.
    pub const ALL: [Column; 27] = [
        Column::Scenario,
        Column::RunId,
        Column::Runs,
        Column::Store,
        Column::Pattern,
        Column::Faults,
        Column::TargetTps,
        Column::AchievedTps,
        Column::Ok,
        Column::Fail,
        Column::Unknown,
        Column::P50,
        Column::P99,
        Column::P999,
        Column::LatencyRatio,
        Column::ThroughputRatio,
        Column::Orphans,
        Column::Ghosts,
        Column::Duplicates,
        Column::Mismatches,
        Column::LostAcks,
        Column::Strays,
        Column::Divergence,
        Column::TtcP99,
        Column::ReadTtcP99,
        Column::ReadAnomalies,
        Column::Verdict,
    ];

    /// The name used by `--sort`, `--columns`, CSV headers and JSON keys.
    pub fn key(self) -> String {
        match self {
            Column::Partial(ms) => format!("partial_{}", delay(ms)),
            Column::Capacity(i) => FIGURES[i].key.to_string(),
            other => other.static_key().to_string(),
        }
    }

    fn static_key(self) -> &'static str {
        match self {
            Column::Partial(_) => "partial",
            Column::Capacity(_) => "capacity",
            Column::CapacitySource => "capacity_source",
            Column::Cost => "cost_per_million_orders",
            Column::ReadTtcP99 => "read_ttc_p99_ms",
            Column::ReadAnomalies => "read_anomalies",
            Column::Scenario => "scenario",
            Column::RunId => "run_id",
            Column::Runs => "runs",
            Column::Ok => "ok",
            Column::Fail => "fail",
            Column::Unknown => "unknown",
            Column::Store => "store",
            Column::Pattern => "pattern",
            Column::Faults => "faults",
            Column::TargetTps => "target_tps",
            Column::AchievedTps => "achieved_tps",
            Column::P50 => "p50_ms",
            Column::P99 => "p99_ms",
            Column::P999 => "p999_ms",
            Column::LatencyRatio => "latency_ratio",
            Column::ThroughputRatio => "throughput_ratio",
            Column::Orphans => "orphans",
            Column::Ghosts => "ghosts",
            Column::Duplicates => "duplicates",
            Column::Mismatches => "mismatches",
            Column::LostAcks => "lost_acks",
            Column::Strays => "strays",
            Column::Divergence => "divergence",
            Column::TtcP99 => "ttc_p99_ms",
            Column::Verdict => "verdict",
        }
    }

    /// The short header of tables (Markdown and terminal).
    pub fn header(self) -> String {
        match self {
            Column::Partial(ms) => format!("partial @{}", delay(ms)),
            Column::Capacity(i) => FIGURES[i].header.to_string(),
            other => other.static_header().to_string(),
        }
    }

    fn static_header(self) -> &'static str {
        match self {
            Column::Partial(_) => "partial",
            Column::Capacity(_) => "capacity",
            Column::CapacitySource => "capacity",
            Column::Cost => "cost/M orders",
            Column::ReadTtcP99 => "read ttc p99 ms",
            Column::ReadAnomalies => "read anomalies",
            Column::Scenario => "scenario",
            Column::RunId => "run",
            Column::Runs => "runs",
            Column::Ok => "ok",
            Column::Fail => "fail",
            Column::Unknown => "unknown",
            Column::Store => "store",
            Column::Pattern => "pattern",
            Column::Faults => "faults",
            Column::TargetTps => "target/s",
            Column::AchievedTps => "achieved/s",
            Column::P50 => "p50 ms",
            Column::P99 => "p99 ms",
            Column::P999 => "p999 ms",
            Column::LatencyRatio => "p50 ×base",
            Column::ThroughputRatio => "tput ×base",
            Column::Orphans => "orphans",
            Column::Ghosts => "ghosts",
            Column::Duplicates => "dups",
            Column::Mismatches => "mismatch",
            Column::LostAcks => "lost acks",
            Column::Strays => "strays",
            Column::Divergence => "divergence",
            Column::TtcP99 => "ttc p99 ms",
            Column::Verdict => "verdict",
        }
    }

    pub fn parse(name: &str) -> anyhow::Result<Column> {
        let name = name.trim();
        if let Some(d) = name.strip_prefix("partial_")
            && let Some(d) = crate::scenario::parse_duration(d)
        {
            return Ok(Column::Partial(d.as_millis() as u64));
        }
        if let Some(i) = FIGURES.iter().position(|f| f.key == name) {
            return Ok(Column::Capacity(i));
        }
        for c in [Column::CapacitySource, Column::Cost] {
            if c.key() == name {
                return Ok(c);
            }
        }
        match Column::ALL.iter().find(|c| c.key() == name) {
            Some(c) => Ok(*c),
            None => bail!(
                "unknown column '{name}'; use one of: {}, partial_<delay> (e.g. partial_100ms), {}, capacity_source, cost_per_million_orders",
                Column::ALL.map(|c| c.key()).join(", "),
                FIGURES.map(|f| f.key).join(", ")
            ),
        }
    }

    /// Columns shown when `--columns` is not given: every column the issue lists,
    /// the ratios only when there is a baseline, the readers' only when a run
    /// had readers (a partial-read column per delay any run read at), the runs
    /// per row and the outcomes only when a row is a series of repeats, a
    /// capacity column per figure some run has (and the cost with `--prices`,
    /// added by [`compare`]).
    pub fn defaults(runs: &[RunResult], with_baseline: bool, grouped: bool) -> Vec<Column> {
        let mut delays: Vec<u64> = runs
            .iter()
            .filter_map(|r| r.readers.as_ref())
            .flat_map(|r| r.plan.delays_ms.iter().copied())
            .collect();
        delays.sort_unstable();
        delays.dedup();
        let readers = runs.iter().any(|r| r.readers.is_some());
        let mut columns = Vec::new();
        for c in Column::ALL {
            match c {
                Column::RunId | Column::Divergence => continue,
                Column::Runs | Column::Ok | Column::Fail | Column::Unknown if !grouped => continue,
                Column::LatencyRatio | Column::ThroughputRatio if !with_baseline => continue,
                Column::ReadTtcP99 | Column::ReadAnomalies if !readers => continue,
                Column::ReadTtcP99 => columns.extend(delays.iter().map(|d| Column::Partial(*d))),
                Column::Verdict => {
                    let figures: Vec<Column> = (0..FIGURES.len())
                        .filter(|i| capacity::shown(runs, *i))
                        .map(Column::Capacity)
                        .collect();
                    if !figures.is_empty() {
                        columns.extend(figures);
                        columns.push(Column::CapacitySource);
                    }
                }
                _ => {}
            }
            columns.push(c);
        }
        columns
    }
}

/// A delay as it names a column: `0ms`, `100ms`, `1s`.
fn delay(ms: u64) -> String {
    crate::scenario::fmt_duration(std::time::Duration::from_millis(ms))
}

/// One cell: text, a number (`None` = not applicable, printed as `-`), or the
/// spread of one figure over a series of repeats.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(Option<f64>),
    Spread(Spread),
}

impl Value {
    /// Human form: integers without decimals, rates and latencies with up to 2;
    /// a spread as `mean ±half-width (min–max)`, or its one value when every
    /// run had the same.
    pub fn display(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Number(None) => "-".into(),
            Value::Number(Some(n)) => number(*n),
            Value::Spread(s) if s.min == s.max => number(s.mean),
            Value::Spread(s) => match s.half_width {
                Some(h) => format!(
                    "{} ±{} ({}–{})",
                    number(s.mean),
                    number(h),
                    number(s.min),
                    number(s.max)
                ),
                None => number(s.mean),
            },
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::Number(None) => serde_json::Value::Null,
            Value::Number(Some(n)) => json_number(*n),
            Value::Spread(s) => {
                let (lo, hi) = s
                    .interval()
                    .map_or((None, None), |(l, h)| (Some(l), Some(h)));
                serde_json::json!({
                    "n": s.n,
                    "mean": json_number(round(s.mean)),
                    "min": json_number(s.min),
                    "max": json_number(s.max),
                    "ci95_low": lo.map(|x| json_number(round(x))),
                    "ci95_high": hi.map(|x| json_number(round(x))),
                })
            }
        }
    }

    /// The number sorting uses: a spread's mean.
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Text(_) => None,
            Value::Number(n) => *n,
            Value::Spread(s) => Some(s.mean),
        }
    }
}

/// Up to 4 decimals: means and interval bounds of integer counts are fractions.
fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        let s = format!("{n:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn json_number(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Value::from(n)
    }
}

/// How to build the comparison.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// `None` = the default columns.
    pub columns: Option<Vec<Column>>,
    /// Sort by this column; `true` = descending.
    pub sort: Option<(Column, bool)>,
    /// `--prices`: turns capacity into money.
    pub prices: Option<Prices>,
}

impl CompareOptions {
    /// Parses `--columns a,b,c` and `--sort COL[:desc]`.
    pub fn parse(columns: Option<&str>, sort: Option<&str>) -> anyhow::Result<Self> {
        let columns = columns
            .map(|list| {
                list.split(',')
                    .filter(|c| !c.trim().is_empty())
                    .map(Column::parse)
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .transpose()?;
        let sort = sort
            .map(|s| {
                let (name, desc) = match s.rsplit_once(':') {
                    Some((name, "desc")) => (name, true),
                    Some((name, "asc")) => (name, false),
                    Some((_, other)) => {
                        bail!("unknown sort order '{other}' in --sort {s}; use COL, COL:asc or COL:desc")
                    }
                    None => (s, false),
                };
                Ok((Column::parse(name)?, desc))
            })
            .transpose()?;
        Ok(Self {
            columns,
            sort,
            prices: None,
        })
    }
}

/// The comparison: chosen columns and one row of values per run or series.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    /// The baseline's scenario and run id, when there is one.
    pub baseline: Option<String>,
    /// The price table's currency, when costs were computed.
    pub currency: Option<String>,
}

/// Builds the comparison of `runs` (in the given order unless sorted); the runs
/// of one repeat series make one row.
pub fn compare(
    runs: &[RunResult],
    baseline: Option<&RunResult>,
    opts: &CompareOptions,
) -> Comparison {
    let mut order = repeats::rows(runs);
    let grouped = order.iter().any(|r| r.is_group());
    let columns = opts.columns.clone().unwrap_or_else(|| {
        let mut columns = Column::defaults(runs, baseline.is_some(), grouped);
        if opts.prices.is_some() && columns.contains(&Column::CapacitySource) {
            let at = columns.len().saturating_sub(1);
            columns.insert(at, Column::Cost);
        }
        columns
    });
    let prices = opts.prices.as_ref();
    let cell = |r: &repeats::Row, col: Column| match col {
        Column::Cost => cost(r, prices),
        _ => r.value(baseline, col),
    };
    if let Some((col, desc)) = opts.sort {
        // Stable: equal keys keep the input order.
        order.sort_by(|a, b| {
            let ord = cmp_values(&cell(a, col), &cell(b, col));
            if desc { ord.reverse() } else { ord }
        });
    }
    let rows = order
        .iter()
        .map(|r| columns.iter().map(|c| cell(r, *c)).collect())
        .collect();
    Comparison {
        columns,
        rows,
        baseline: baseline.map(|b| format!("{} ({})", b.scenario.name, b.run_id)),
        currency: prices.map(|p| p.currency.clone()),
    }
}

/// The cost of a million orders of a row at the price table (a series: over
/// its runs the checker finished, as its other figures).
fn cost(row: &repeats::Row, prices: Option<&Prices>) -> Value {
    let Some(p) = prices else {
        return Value::Number(None);
    };
    match row {
        repeats::Row::Single(r) => Value::Number(p.per_million_orders(r)),
        repeats::Row::Group(runs) => {
            let costs: Vec<f64> = runs
                .iter()
                .filter(|r| r.checker.is_some())
                .filter_map(|r| p.per_million_orders(r))
                .collect();
            match Spread::of(&costs) {
                Some(s) => Value::Spread(s),
                None => Value::Number(None),
            }
        }
    }
}

fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Text(_), _) | (_, Value::Text(_)) => a.display().cmp(&b.display()),
        _ => match (a.number(), b.number()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            // Not applicable sorts last.
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        },
    }
}

fn ratio(x: f64, base: f64) -> Option<f64> {
    (base > 0.0).then(|| (x / base * 100.0).round() / 100.0)
}

/// Counts are `None` when the checker did not run: a zero would claim too much.
fn count(r: &RunResult, n: impl Fn(&crate::checker::CheckerReport) -> u64) -> Value {
    Value::Number(r.checker.as_ref().map(|c| n(c) as f64))
}

/// One cell of one run.
pub fn value(r: &RunResult, baseline: Option<&RunResult>, col: Column) -> Value {
    let num = |n: f64| Value::Number(Some(n));
    match col {
        Column::Scenario => Value::Text(r.scenario.name.clone()),
        Column::RunId => Value::Text(r.run_id.clone()),
        Column::Runs => num(1.0),
        Column::Ok => num(r.workload.ops.ok as f64),
        Column::Fail => num(r.workload.ops.fail as f64),
        Column::Unknown => num(r.workload.ops.unknown as f64),
        Column::Store => Value::Text(r.target.clone()),
        Column::Pattern => Value::Text(r.pattern.clone()),
        Column::Faults => Value::Text(if r.scenario.faults.is_empty() {
            "none".into()
        } else {
            r.scenario.faults.join("; ")
        }),
        Column::TargetTps => num(r.workload.target_tps),
        Column::AchievedTps => num((r.workload.achieved_tps * 100.0).round() / 100.0),
        Column::P50 => num(r.latency_ms.p50),
        Column::P99 => num(r.latency_ms.p99),
        Column::P999 => num(r.latency_ms.p999),
        Column::LatencyRatio => {
            Value::Number(baseline.and_then(|b| ratio(r.latency_ms.p50, b.latency_ms.p50)))
        }
        Column::ThroughputRatio => Value::Number(
            baseline.and_then(|b| ratio(r.workload.achieved_tps, b.workload.achieved_tps)),
        ),
        Column::Orphans => count(r, |c| c.orphans),
        Column::Ghosts => count(r, |c| c.ghosts),
        Column::Duplicates => count(r, |c| c.duplicates),
        Column::Mismatches => count(r, |c| c.mismatches),
        Column::LostAcks => count(r, |c| c.lost_acks),
        Column::Strays => count(r, |c| c.strays),
        Column::Divergence => count(r, |c| c.divergence),
        Column::TtcP99 => Value::Number(
            r.relay
                .as_ref()
                .map(|relay| relay.time_to_consistency_ms.p99),
        ),
        Column::Partial(ms) => {
            Value::Number(r.readers.as_ref().and_then(|x| x.partial_fraction_at(ms)))
        }
        Column::ReadTtcP99 => Value::Number(
            r.readers
                .as_ref()
                .filter(|x| x.time_to_consistency_ms.count > 0)
                .map(|x| x.time_to_consistency_ms.p99),
        ),
        Column::ReadAnomalies => {
            Value::Number(r.readers.as_ref().map(|x| x.anomalous_reads() as f64))
        }
        Column::Capacity(i) => match capacity::figure(r, i) {
            // Never a zero for what the server does not report.
            Some(f) if f.missing.is_some() => Value::Text("not reported".into()),
            Some(f) => Value::Number(capacity::number(f)),
            None => Value::Number(None),
        },
        Column::CapacitySource => match capacity::sources(r) {
            Some(s) => Value::Text(s),
            None => Value::Number(None),
        },
        // Needs the price table: filled by `compare`.
        Column::Cost => Value::Number(None),
        Column::Verdict => Value::Text(r.verdict.name().to_uppercase()),
    }
}

/// The one-line legend printed under Markdown and terminal tables.
pub fn legend(cmp: &Comparison) -> String {
    let mut s = String::from(
        "Latencies in ms from the intended start (p50/p99/p999); orphans = on primary only, \
         ghosts = on secondary only, dups = extra copies, mismatch = fields differ, \
         lost acks = acknowledged but missing, strays = written by no operation of the run; \
         ttc = time to consistency through the relay; - = not applicable or not checked.",
    );
    if cmp.columns.iter().any(|c| {
        matches!(
            c,
            Column::Partial(_) | Column::ReadTtcP99 | Column::ReadAnomalies
        )
    }) {
        s.push_str(
            " Readers: partial @d = share of answered reads of acknowledged orders, d after the \
             write's answer, that saw one side only; read ttc = from the intended start until a \
             reader first saw both sides; read anomalies = read-your-write violations, visible \
             ghosts, non-monotonic reads, visible records of failed writes.",
        );
    }
    if cmp
        .rows
        .iter()
        .flatten()
        .any(|v| matches!(v, Value::Spread(_)))
    {
        s.push_str(
            " Repeats (runs > 1): mean ±half-width of its 95 % interval (Student's t, n-1 \
             degrees of freedom) (min–max), over the runs the checker finished; one value when \
             all were equal; the verdict counts every run.",
        );
    }
    if cmp
        .columns
        .iter()
        .any(|c| matches!(c, Column::Capacity(_) | Column::Cost))
    {
        let prices = cmp.currency.as_ref().map(|c| Prices {
            currency: c.clone(),
            ..Prices::default()
        });
        s.push_str(&capacity::legend(prices.as_ref()));
    }
    if let Some(b) = &cmp.baseline {
        s.push_str(&format!(
            " ×base = ratio to the baseline {b} (p50 latency, achieved throughput)."
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_column_names_the_choices() {
        let e = CompareOptions::parse(Some("scenario,p42"), None).unwrap_err();
        assert!(e.to_string().contains("unknown column 'p42'"));
        assert!(e.to_string().contains("p99_ms"));
        let e = CompareOptions::parse(None, Some("p99_ms:down")).unwrap_err();
        assert!(e.to_string().contains("COL:desc"));
        let o = CompareOptions::parse(Some("scenario, p99_ms"), Some("orphans:desc")).unwrap();
        assert_eq!(o.columns, Some(vec![Column::Scenario, Column::P99]));
        assert_eq!(o.sort, Some((Column::Orphans, true)));
        let o = CompareOptions::parse(Some("partial_1s,partial_10ms"), None).unwrap();
        assert_eq!(
            o.columns,
            Some(vec![Column::Partial(1000), Column::Partial(10)])
        );
        assert_eq!(Column::Partial(1000).key(), "partial_1s");
        assert_eq!(Column::Partial(10).header(), "partial @10ms");
    }

    #[test]
    fn numbers_print_plainly() {
        assert_eq!(Value::Number(Some(50.0)).display(), "50");
        assert_eq!(Value::Number(Some(12.345)).display(), "12.35");
        assert_eq!(Value::Number(Some(1.5)).display(), "1.5");
        assert_eq!(Value::Number(None).display(), "-");
    }
}

//! The pattern-overhead table of one store: every pattern's maximum first
//! (closed loop at saturation), then its latency at a rate below that maximum,
//! chosen by one stated rule ([`LatencyAt`]), so no latency column is queueing
//! behind a rate the pattern cannot absorb. Latency at one fixed rate for every
//! pattern put a slow pattern above its own capacity (issue 22: Cassandra LWT
//! driven at 1,810/s against its 1,258/s maximum showed 150 ms of queueing).
//!
//! Both phases run in one bench run, pattern after pattern, with the single-write
//! baseline measured first and last in each (A ... A, the mean kept), so drift
//! from a noisy neighbour reaches the baseline and the patterns alike and the
//! ratios stay side by side.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use super::figures::PatternFigures;
use super::{BenchArgs, Summary, first_line, run_one, scenario_text, variants, with_bare_client};
use crate::driver::{self, DELAYED_MS, DriveSpec};
use crate::pattern::PatternKind;
use crate::scenario::{Scenario, StoreKind};

/// The baseline row's name (the claims find it by it).
pub const SINGLE: &str = "single write (baseline)";

/// Which rate each row's latency is measured at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LatencyRule {
    /// Each row at the fraction of its own maximum.
    Own,
    /// Every row at the fraction of the slowest row's maximum (one rate).
    Slowest,
}

/// The rule and the fraction: the rate of a row's latency run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyAt {
    pub rule: LatencyRule,
    pub fraction: f64,
}

impl LatencyAt {
    /// What the table says about the rates (also kept in the --json file).
    pub fn describe(&self) -> String {
        let pct = self.fraction * 100.0;
        match self.rule {
            LatencyRule::Own => format!("each row at {pct:.0}% of its own maximum"),
            LatencyRule::Slowest => {
                format!("every row at {pct:.0}% of the slowest row's maximum (one rate)")
            }
        }
    }

    /// The rate for a row whose maximum is `own`, when the slowest row reached
    /// `slowest`; `None` when the maximum it depends on was not measured.
    pub fn rate(&self, own: Option<f64>, slowest: Option<f64>) -> Option<f64> {
        let max = match self.rule {
            LatencyRule::Own => own?,
            LatencyRule::Slowest => slowest?,
        };
        (max.is_finite() && max > 0.0).then(|| round_down(max * self.fraction))
    }
}

/// The slowest of the measured maxima (rows not run are left out).
pub fn slowest(maxima: &[Option<f64>]) -> Option<f64> {
    maxima
        .iter()
        .flatten()
        .copied()
        .filter(|m| m.is_finite() && *m > 0.0)
        .reduce(f64::min)
}

/// `x` rounded down to two significant figures, so the rate printed is never
/// above the stated fraction of the maximum (rounding 8/s up to 10/s would put a
/// 16/s pattern at 62 %).
pub fn round_down(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 0.0;
    }
    let step = 10f64.powf(x.log10().floor() - 1.0);
    // The epsilon keeps 40.0 from becoming 39 through 39.99999...
    ((x / step) + 1e-9).floor() * step
}

/// Operations for a latency run at `rate`: `secs` of load, at least `min_ops`
/// operations (a p99 needs samples), but no longer than `max_secs`.
pub fn latency_ops(rate: f64, secs: f64, min_ops: u64, max_secs: f64) -> u64 {
    let wanted = (rate * secs).ceil().max(min_ops as f64);
    let cap = (rate * max_secs).floor().max(1.0);
    wanted.min(cap) as u64
}

/// One row of the table as measured.
#[derive(Debug, Clone, Default)]
struct Row {
    name: String,
    /// None for the single-write baseline.
    pattern: Option<(PatternKind, &'static str)>,
    max: Option<f64>,
    rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    late: Option<u64>,
    ttc_p50: Option<f64>,
    not_run: Option<String>,
}

/// Latency of one run at a rate.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: f64,
    p99: f64,
    /// Operations started more than DELAYED_MS after their intended time.
    late: u64,
    /// The relay's time to consistency p50 (relay patterns).
    ttc_p50: Option<f64>,
}

/// How long and how far each latency run goes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    secs: f64,
    min_ops: u64,
    max_secs: f64,
}

/// Latency runs measured again at half the rate, at most this many times, when
/// more than 1 % (and at least 3) of their operations started late (the row was at or above its
/// capacity: a short saturation run can overstate what a longer load sustains).
const RETRIES: u32 = 2;

/// The rate to measure a row again at after a run at `rate` that started `late`
/// of its `ops` operations late, the `tries`-th retry; `None`: keep this run.
pub fn retry_rate(rate: f64, late: u64, ops: u64, tries: u32) -> Option<f64> {
    let half = round_down(rate / 2.0);
    // Three at least: one or two late starts are a pause of this shared machine.
    (tries < RETRIES && late * 100 > ops && late >= 3 && half > 0.0).then_some(half)
}

/// The single write (the bare client's write of the order) through the same
/// driver as the runs: at `rate`, `ops` operations, `concurrency` at most.
async fn single_drive(
    store: StoreKind,
    probe: Arc<Scenario>,
    rate: f64,
    ops: u64,
    concurrency: usize,
) -> anyhow::Result<crate::driver::DriverStats> {
    let spec = DriveSpec {
        seed: 3,
        rate,
        ops,
        concurrency,
        customers: 1000,
        payload_bytes: 64,
        op_deadline: Duration::from_secs(10),
    };
    let (_tx, stop) = watch::channel(false);
    let result = with_bare_client(probe, store.name(), |client| {
        driver::drive(client, spec, Instant::now(), None, stop, Arc::default())
    })
    .await?;
    Ok(result?.0)
}

/// One latency run of a row (`None`: the single write) at `rate`.
async fn latency_run(
    store: StoreKind,
    probe: &Arc<Scenario>,
    args: &BenchArgs,
    pattern: Option<(PatternKind, &'static str)>,
    rate: f64,
    ops: u64,
) -> anyhow::Result<Latency> {
    let Some((kind, extra)) = pattern else {
        let stats = single_drive(store, probe.clone(), rate, ops, 64).await?;
        return Ok(Latency {
            p50: stats.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
            p99: stats.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
            late: stats.delayed,
            ttc_p50: None,
        });
    };
    let text = row_text(store, kind, extra, rate, &format!("ops = {ops}"), 64);
    let r = run_one(&text, args).await?;
    Ok(Latency {
        p50: r.latency_ms.p50,
        p99: r.latency_ms.p99,
        late: r.workload.delayed,
        ttc_p50: r.relay.as_ref().map(|x| x.time_to_consistency_ms.p50),
    })
}

/// A row's latency at `rate`, or lower if that run started too many operations
/// late ([`retry_rate`]); returns the rate kept.
async fn below_capacity(
    store: StoreKind,
    probe: &Arc<Scenario>,
    args: &BenchArgs,
    (name, pattern): (&str, Option<(PatternKind, &'static str)>),
    mut rate: f64,
    plan: Plan,
) -> anyhow::Result<(f64, Latency)> {
    let mut tries = 0;
    loop {
        let ops = latency_ops(rate, plan.secs, plan.min_ops, plan.max_secs);
        let l = latency_run(store, probe, args, pattern, rate, ops).await?;
        match retry_rate(rate, l.late, ops, tries) {
            Some(lower) => {
                println!(
                    "  {name}: {} of {ops} operations started late at {}/s; again at {}/s",
                    l.late,
                    fmt_rate(rate),
                    fmt_rate(lower)
                );
                rate = lower;
                tries += 1;
            }
            None => return Ok((rate, l)),
        }
    }
}

/// A row's scenario. A synchronous pattern has nothing to wait for after the
/// load (run.rs sleeps through the whole settle then), so 1s instead of 10s; a
/// relay's settle ends as soon as it has drained.
fn row_text(
    store: StoreKind,
    kind: PatternKind,
    extra: &str,
    rate: f64,
    limit: &str,
    concurrency: usize,
) -> String {
    let text = scenario_text(store, kind.name(), rate, limit, concurrency, extra);
    if kind.is_async() {
        text
    } else {
        text.replace("settle = \"10s\"", "settle = \"1s\"")
    }
}

fn mean2(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a + b) / 2.0),
        (a, b) => a.or(b),
    }
}

/// The pattern-overhead table of `store`, printed and kept in the figures.
/// Returns the single write's maximum.
pub(super) async fn table(
    store: StoreKind,
    probe: Arc<Scenario>,
    args: &BenchArgs,
    at: LatencyAt,
    summary: &mut Summary,
) -> anyhow::Result<f64> {
    let secs = if args.quick { 3.0 } else { 6.0 };
    let (min_ops, max_secs) = if args.quick { (50, 10.0) } else { (200, 30.0) };
    let sat_ops: u64 = if args.quick { 600 } else { 2000 };
    let concurrency = 16;
    let mut rows = vec![Row {
        name: SINGLE.into(),
        ..Row::default()
    }];
    for kind in PatternKind::ALL
        .into_iter()
        .filter(|k| k.on(store.spec()).is_ok())
    {
        for (label, extra) in variants(store, kind) {
            let name = if label.is_empty() {
                kind.name().to_string()
            } else {
                format!("{kind} ({label})")
            };
            rows.push(Row {
                name,
                pattern: Some((kind, extra)),
                ..Row::default()
            });
        }
    }

    // Phase 1: the maxima, all through the same driver at concurrency 16. The
    // baseline first and last.
    let single_max = async || -> anyhow::Result<f64> {
        let stats = single_drive(store, probe.clone(), 100_000.0, sat_ops, concurrency).await?;
        Ok(stats.achieved_tps)
    };
    let first = single_max().await?;
    for row in rows.iter_mut().skip(1) {
        let (kind, extra) = row.pattern.expect("a pattern row");
        let limit = format!("ops = {sat_ops}");
        let text = row_text(store, kind, extra, 100_000.0, &limit, concurrency);
        match run_one(&text, args).await {
            Ok(r) => row.max = Some(r.workload.achieved_tps),
            Err(e) => row.not_run = Some(first_line(&e)),
        }
    }
    let last = single_max().await?;
    rows[0].max = Some((first + last) / 2.0);
    let slowest_max = slowest(&rows.iter().map(|r| r.max).collect::<Vec<_>>());

    // Phase 2: latency below each row's capacity, by the rule; the baseline first
    // and last again, at the rate the first kept.
    let plan = Plan {
        secs,
        min_ops,
        max_secs,
    };
    let single_rate = at.rate(rows[0].max, slowest_max).unwrap_or(1.0);
    let (single_rate, a) =
        below_capacity(store, &probe, args, (SINGLE, None), single_rate, plan).await?;
    for row in rows.iter_mut().skip(1) {
        if row.not_run.is_some() {
            continue;
        }
        let Some(rate) = at.rate(row.max, slowest_max) else {
            row.not_run = Some("no maximum measured".into());
            continue;
        };
        match below_capacity(store, &probe, args, (&row.name, row.pattern), rate, plan).await {
            Ok((rate, l)) => {
                row.rate = Some(rate);
                row.p50 = Some(l.p50);
                row.p99 = Some(l.p99);
                row.late = Some(l.late);
                row.ttc_p50 = l.ttc_p50;
            }
            Err(e) => row.not_run = Some(first_line(&e)),
        }
    }
    let ops = latency_ops(single_rate, secs, min_ops, max_secs);
    let b = latency_run(store, &probe, args, None, single_rate, ops).await?;
    let single = &mut rows[0];
    single.rate = Some(single_rate);
    single.p50 = mean2(Some(a.p50), Some(b.p50));
    single.p99 = mean2(Some(a.p99), Some(b.p99));
    single.late = Some(a.late + b.late);

    print_table(store, &rows, at, slowest_max, sat_ops, secs, min_ops);
    let figures = summary.store(store);
    figures.single_write_max_ops_s = rows[0].max;
    figures.patterns = rows
        .iter()
        .map(|r| PatternFigures {
            pattern: r.name.clone(),
            p50_ms: r.p50.filter(|_| r.not_run.is_none()),
            p99_ms: r.p99.filter(|_| r.not_run.is_none()),
            max_ops_s: r.max.filter(|_| r.not_run.is_none()),
            latency_rate_ops_s: r.rate.filter(|_| r.not_run.is_none()),
            late_ops: r.late.filter(|_| r.not_run.is_none()),
            ttc_p50_ms: r.ttc_p50,
            not_run: r.not_run.clone(),
        })
        .collect();
    summary.save();
    Ok(rows[0].max.unwrap_or(0.0))
}

fn print_table(
    store: StoreKind,
    rows: &[Row],
    at: LatencyAt,
    slowest_max: Option<f64>,
    sat_ops: u64,
    secs: f64,
    min_ops: u64,
) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "pattern",
        "max ops/s",
        "max / single",
        "latency at /s",
        "late ops",
        "p50 ms",
        "p99 ms",
        "p50 / single",
        "p99 / single",
        "relay ttc p50 ms",
    ]);
    let single = &rows[0];
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => String::new(),
    };
    let num = |v: Option<f64>, digits: usize| v.map_or(String::new(), |v| format!("{v:.digits$}"));
    for row in rows {
        if let Some(why) = &row.not_run {
            table.add_row(vec![row.name.clone(), format!("not run: {why}")]);
            continue;
        }
        table.add_row(vec![
            row.name.clone(),
            num(row.max, 0),
            ratio(row.max, single.max),
            row.rate.map_or(String::new(), fmt_rate),
            row.late.map_or(String::new(), |l| l.to_string()),
            num(row.p50, 2),
            num(row.p99, 2),
            ratio(row.p50, single.p50),
            ratio(row.p99, single.p99),
            num(row.ttc_p50, 1),
        ]);
    }
    let slowest = slowest_max.map_or(String::new(), |s| format!(", slowest maximum {s:.0}/s"));
    println!(
        "pattern overhead ({store}): max = {sat_ops} ops at concurrency 16 (single write: the bare client through the same driver, first and last, mean); latency = {}{slowest}, at least {secs:.0}s and {min_ops} ops per row at concurrency 64, again at half the rate (twice at most) when more than 1% (3 at least) started late; late ops = started more than {DELAYED_MS} ms after their intended time (0: below capacity):\n{table}",
        at.describe()
    );
}

fn fmt_rate(rate: f64) -> String {
    if rate >= 10.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rule: LatencyRule, fraction: f64) -> LatencyAt {
        LatencyAt { rule, fraction }
    }

    #[test]
    fn round_down_keeps_two_significant_figures_and_never_rounds_up() {
        assert_eq!(round_down(8.0), 8.0);
        assert_eq!(round_down(629.0), 620.0);
        assert_eq!(round_down(8404.9), 8400.0);
        assert_eq!(round_down(40.0), 40.0);
        assert!((round_down(0.567) - 0.56).abs() < 1e-12);
        assert_eq!(round_down(0.0), 0.0);
        assert_eq!(round_down(f64::NAN), 0.0);
        for x in [1.0, 9.99, 13.7, 99.5, 1258.0, 16_800.0, 123_456.0] {
            let r = round_down(x);
            assert!(r <= x && r >= 0.9 * x, "{x} -> {r}");
        }
    }

    #[test]
    fn own_rule_puts_each_row_at_its_own_fraction() {
        let rule = at(LatencyRule::Own, 0.5);
        // Issue 22's run: LWT's maximum 1,258/s, the single write's 16,800/s.
        assert_eq!(rule.rate(Some(1258.0), Some(1258.0)), Some(620.0));
        assert_eq!(rule.rate(Some(16_800.0), Some(1258.0)), Some(8400.0));
        // moto's transaction at 16/s: 8/s, not rounded up to 10/s.
        assert_eq!(rule.rate(Some(16.0), Some(16.0)), Some(8.0));
        assert_eq!(rule.rate(None, Some(16.0)), None);
        assert_eq!(rule.rate(Some(0.0), Some(16.0)), None);
    }

    #[test]
    fn slowest_rule_puts_every_row_at_one_rate_below_the_slowest_maximum() {
        let maxima = [Some(16_800.0), Some(9_000.0), None, Some(1_258.0)];
        let s = slowest(&maxima);
        assert_eq!(s, Some(1258.0));
        let rule = at(LatencyRule::Slowest, 0.5);
        for own in maxima.iter().flatten() {
            let rate = rule.rate(Some(*own), s).unwrap();
            assert_eq!(rate, 620.0);
            assert!(rate < *own);
        }
        assert_eq!(slowest(&[None, Some(0.0)]), None);
        assert_eq!(rule.rate(Some(100.0), None), None);
    }

    #[test]
    fn every_rate_is_below_its_rows_maximum() {
        for rule in [LatencyRule::Own, LatencyRule::Slowest] {
            for fraction in [0.1, 0.3, 0.5, 0.9, 1.0] {
                let maxima = [Some(275.0), Some(16.3), Some(152.0)];
                let s = slowest(&maxima);
                for own in maxima.iter().flatten() {
                    let rate = at(rule, fraction).rate(Some(*own), s).unwrap();
                    assert!(rate <= own * fraction + 1e-9, "{rule:?} {fraction} {own}");
                }
            }
        }
    }

    #[test]
    fn latency_ops_covers_the_seconds_and_the_samples_within_the_cap() {
        // Fast rows: the seconds decide.
        assert_eq!(latency_ops(8400.0, 6.0, 200, 30.0), 50_400);
        // Slow rows: enough samples for a p99...
        assert_eq!(latency_ops(8.0, 6.0, 200, 30.0), 200);
        // ...but never longer than the cap.
        assert_eq!(latency_ops(2.0, 6.0, 200, 30.0), 60);
        assert_eq!(latency_ops(0.1, 3.0, 50, 10.0), 1);
    }

    #[test]
    fn every_rows_scenario_validates_with_a_short_settle_unless_a_relay_drains() {
        for name in ["dynamodb", "cassandra", "mongodb"] {
            let store = StoreKind::parse(name).unwrap();
            for kind in PatternKind::ALL
                .into_iter()
                .filter(|k| k.on(store.spec()).is_ok())
            {
                for (label, extra) in variants(store, kind) {
                    for (rate, limit, c) in [(100_000.0, "ops = 600", 16), (8.0, "ops = 50", 64)] {
                        let text = row_text(store, kind, extra, rate, limit, c);
                        let scenario = super::super::parse(&text)
                            .unwrap_or_else(|e| panic!("{name} {kind} {label}: {e:#}\n{text}"));
                        let settle = scenario.check.settle;
                        let want = if kind.is_async() { 10 } else { 1 };
                        assert_eq!(settle, Duration::from_secs(want), "{name} {kind} {label}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_run_with_more_than_one_percent_late_is_retried_at_half_the_rate_twice_at_most() {
        assert_eq!(retry_rate(2600.0, 10_456, 7800, 0), Some(1300.0));
        assert_eq!(retry_rate(1300.0, 400, 3900, 1), Some(650.0));
        assert_eq!(retry_rate(650.0, 400, 1950, 2), None);
        // 1 % late or less: the run is kept.
        assert_eq!(retry_rate(620.0, 18, 1860, 0), None);
        assert_eq!(retry_rate(620.0, 0, 1860, 0), None);
        // One or two late starts among few operations: a pause, not capacity.
        assert_eq!(retry_rate(23.0, 1, 69, 0), None);
        assert_eq!(retry_rate(23.0, 2, 69, 0), None);
        assert_eq!(retry_rate(23.0, 3, 69, 0), Some(11.0));
        // Half of the smallest rate is still a rate, rounded down.
        assert_eq!(retry_rate(0.9, 50, 50, 0), Some(0.45));
    }

    #[test]
    fn the_rule_is_stated() {
        assert_eq!(
            at(LatencyRule::Own, 0.5).describe(),
            "each row at 50% of its own maximum"
        );
        assert!(
            at(LatencyRule::Slowest, 0.3)
                .describe()
                .contains("30% of the slowest")
        );
    }
}

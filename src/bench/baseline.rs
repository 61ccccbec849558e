//! `bench --baseline FILE`: each harness figure of this run against an earlier
//! run's (`bench --json`), as a ratio, and whether it regressed by more than its
//! tolerance, so CI can guard them. Only the harness's own figures are judged; the
//! stores' figures depend on the stores.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::figures::BenchResult;

/// How far a figure may move the wrong way, as a fraction of the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Driver ceiling (ops/s, and x the fastest store): may fall to (1 - this).
    pub ceiling: f64,
    /// History B/op and checker B/record: may rise to (1 + this).
    pub memory: f64,
    /// Dualwrite vs the bare client's throughput: may fall to (1 - this).
    pub overhead: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Within,
    Regressed,
    /// Why there is nothing to compare (absent from one file, a zero baseline).
    NotCompared(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub figure: String,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    pub better: Better,
    pub tolerance: f64,
    pub verdict: Verdict,
}

impl Comparison {
    fn new(
        figure: impl Into<String>,
        baseline: Option<f64>,
        current: Option<f64>,
        better: Better,
        tolerance: f64,
    ) -> Self {
        let verdict = match (baseline, current) {
            (None, _) => Verdict::NotCompared("not in the baseline"),
            (_, None) => Verdict::NotCompared("not measured in this run"),
            (Some(b), Some(_)) if !(b.is_finite() && b > 0.0) => {
                Verdict::NotCompared("baseline is not a positive number")
            }
            (Some(b), Some(c)) => {
                let regressed = match better {
                    Better::Higher => c < b * (1.0 - tolerance),
                    Better::Lower => c > b * (1.0 + tolerance),
                };
                if regressed || !c.is_finite() {
                    Verdict::Regressed
                } else {
                    Verdict::Within
                }
            }
        };
        Self {
            figure: figure.into(),
            baseline,
            current,
            better,
            tolerance,
            verdict,
        }
    }

    /// This run's figure over the baseline's.
    pub fn ratio(&self) -> Option<f64> {
        match (self.baseline, self.current, &self.verdict) {
            (_, _, Verdict::NotCompared(_)) => None,
            (Some(b), Some(c), _) => Some(c / b),
            _ => None,
        }
    }
}

/// Every harness figure present in either file, in a fixed order; the stores'
/// dualwrite-vs-bare figures by store name.
pub fn compare(baseline: &BenchResult, current: &BenchResult, tol: &Tolerances) -> Vec<Comparison> {
    let (b, c) = (&baseline.harness, &current.harness);
    let mut out = vec![
        Comparison::new(
            "driver ceiling, ops/s",
            b.driver_ceiling_ops_s,
            c.driver_ceiling_ops_s,
            Better::Higher,
            tol.ceiling,
        ),
        Comparison::new(
            "driver ceiling, x the fastest store",
            b.driver_ceiling_x_fastest_store,
            c.driver_ceiling_x_fastest_store,
            Better::Higher,
            tol.ceiling,
        ),
        Comparison::new(
            "history memory, B/op",
            b.history_bytes_per_op,
            c.history_bytes_per_op,
            Better::Lower,
            tol.memory,
        ),
        Comparison::new(
            "checker memory, B/record",
            b.checker_bytes_per_record,
            c.checker_bytes_per_record,
            Better::Lower,
            tol.memory,
        ),
    ];
    let stores: std::collections::BTreeSet<&String> = baseline
        .stores
        .keys()
        .chain(current.stores.keys())
        .collect();
    for store in stores {
        let figure = |r: &BenchResult| r.stores.get(store).and_then(|s| s.dualwrite_vs_bare);
        out.push(Comparison::new(
            format!("dualwrite vs bare client ({store}), throughput"),
            figure(baseline),
            figure(current),
            Better::Higher,
            tol.overhead,
        ));
    }
    out
}

pub fn regressed(comparisons: &[Comparison]) -> bool {
    comparisons.iter().any(|c| c.verdict == Verdict::Regressed)
}

pub fn table(comparisons: &[Comparison]) -> Table {
    let num = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "figure", "baseline", "this run", "ratio", "allowed", "verdict",
    ]);
    for c in comparisons {
        let allowed = match c.better {
            Better::Higher => format!(">= {:.2}", 1.0 - c.tolerance),
            Better::Lower => format!("<= {:.2}", 1.0 + c.tolerance),
        };
        let verdict = match &c.verdict {
            Verdict::Within => "ok".to_string(),
            Verdict::Regressed => "REGRESSED".to_string(),
            Verdict::NotCompared(why) => format!("not compared: {why}"),
        };
        table.add_row(vec![
            c.figure.clone(),
            num(c.baseline),
            num(c.current),
            c.ratio().map_or_else(|| "-".into(), |r| format!("{r:.3}")),
            allowed,
            verdict,
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::figures::StoreFigures;

    const TOL: Tolerances = Tolerances {
        ceiling: 0.5,
        memory: 0.25,
        overhead: 0.1,
    };

    fn result(
        ceiling: f64,
        x_store: f64,
        history: f64,
        checker: f64,
        stores: &[(&str, f64)],
    ) -> BenchResult {
        let mut r = BenchResult::new(1_000_000, 1_000_000, false, true);
        r.harness.driver_ceiling_ops_s = Some(ceiling);
        r.harness.driver_ceiling_x_fastest_store = Some(x_store);
        r.harness.history_bytes_per_op = Some(history);
        r.harness.checker_bytes_per_record = Some(checker);
        for (store, ratio) in stores {
            r.stores.insert(
                store.to_string(),
                StoreFigures {
                    dualwrite_vs_bare: Some(*ratio),
                    ..StoreFigures::default()
                },
            );
        }
        r
    }

    fn verdicts(c: &[Comparison]) -> Vec<(&str, Verdict)> {
        c.iter()
            .map(|c| (c.figure.as_str(), c.verdict.clone()))
            .collect()
    }

    #[test]
    fn figures_within_their_tolerance_pass_and_ratios_are_this_run_over_the_baseline() {
        let base = result(2_000_000.0, 120.0, 20.0, 40.0, &[("cassandra", 1.0)]);
        // Worse, but each within its tolerance; the memory figures improved.
        let now = result(1_100_000.0, 61.0, 18.0, 49.0, &[("cassandra", 0.91)]);
        let c = compare(&base, &now, &TOL);
        assert!(!regressed(&c), "{:?}", verdicts(&c));
        assert_eq!(c.len(), 5);
        assert_eq!(c[0].ratio(), Some(0.55));
        assert_eq!(c[2].ratio(), Some(0.9));
        assert!((c[4].ratio().unwrap() - 0.91).abs() < 1e-12);
    }

    #[test]
    fn each_figure_beyond_its_tolerance_regresses_in_its_own_direction() {
        let base = result(2_000_000.0, 120.0, 20.0, 40.0, &[("cassandra", 1.0)]);
        let cases: [(BenchResult, usize); 5] = [
            (
                result(999_999.0, 120.0, 20.0, 40.0, &[("cassandra", 1.0)]),
                0,
            ),
            (
                result(2_000_000.0, 59.0, 20.0, 40.0, &[("cassandra", 1.0)]),
                1,
            ),
            (
                result(2_000_000.0, 120.0, 25.1, 40.0, &[("cassandra", 1.0)]),
                2,
            ),
            (
                result(2_000_000.0, 120.0, 20.0, 50.1, &[("cassandra", 1.0)]),
                3,
            ),
            (
                result(2_000_000.0, 120.0, 20.0, 40.0, &[("cassandra", 0.89)]),
                4,
            ),
        ];
        for (now, bad) in cases {
            let c = compare(&base, &now, &TOL);
            assert!(regressed(&c));
            for (i, comparison) in c.iter().enumerate() {
                let expected = if i == bad {
                    Verdict::Regressed
                } else {
                    Verdict::Within
                };
                assert_eq!(comparison.verdict, expected, "{}", comparison.figure);
            }
        }
        // Better in either direction is never a regression, however far.
        let c = compare(
            &base,
            &result(9e9, 9e9, 1.0, 1.0, &[("cassandra", 9.0)]),
            &TOL,
        );
        assert!(!regressed(&c));
        // The tolerance's edge itself is within it.
        let c = compare(
            &base,
            &result(1_000_000.0, 60.0, 25.0, 50.0, &[("cassandra", 0.9)]),
            &TOL,
        );
        assert!(!regressed(&c), "{:?}", verdicts(&c));
    }

    #[test]
    fn figures_missing_from_either_file_are_listed_but_not_judged() {
        let mut base = result(2_000_000.0, 120.0, 20.0, 40.0, &[("cassandra", 1.0)]);
        base.harness.driver_ceiling_x_fastest_store = None;
        let mut now = result(100.0, 1.0, 20.0, 40.0, &[("mongodb", 0.1)]);
        now.harness.checker_bytes_per_record = None;
        let c = compare(&base, &now, &TOL);
        assert_eq!(
            verdicts(&c),
            [
                ("driver ceiling, ops/s", Verdict::Regressed),
                (
                    "driver ceiling, x the fastest store",
                    Verdict::NotCompared("not in the baseline")
                ),
                ("history memory, B/op", Verdict::Within),
                (
                    "checker memory, B/record",
                    Verdict::NotCompared("not measured in this run")
                ),
                (
                    "dualwrite vs bare client (cassandra), throughput",
                    Verdict::NotCompared("not measured in this run")
                ),
                (
                    "dualwrite vs bare client (mongodb), throughput",
                    Verdict::NotCompared("not in the baseline")
                ),
            ]
        );
        assert_eq!(c[1].ratio(), None);
        // A zero baseline (a figure that failed) compares nothing.
        let mut zero = base.clone();
        zero.harness.history_bytes_per_op = Some(0.0);
        let c = compare(&zero, &base, &TOL);
        assert_eq!(
            c[2].verdict,
            Verdict::NotCompared("baseline is not a positive number")
        );
    }

    #[test]
    fn a_bench_result_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.json");
        let r = result(2_000_000.0, 120.0, 20.0, 40.0, &[("cassandra", 1.0)]);
        r.write(&path).unwrap();
        assert_eq!(BenchResult::read(&path).unwrap(), r);
        std::fs::write(&path, "{}").unwrap();
        let e = format!("{:#}", BenchResult::read(&path).unwrap_err());
        assert!(e.contains("is not a bench result"), "{e}");
    }
}

//! The verdict, decided in one place: the checker's counts against the scenario's
//! `[expect]` limits, availability against its limits, what a `--fail-on` policy
//! tightens, and the exit code a CI job sees (README "Exit codes").

use crate::checker::{CATEGORIES, CheckerReport};
use crate::exit;
use crate::result::{Availability, ReadersResult, RunResult, Verdict};
use crate::scenario::Expect;

/// Indeterminate operations above this fraction make a PASS prove little: a
/// warning in every report (and a failure under `--fail-on unavailable`).
pub const WARN_INDETERMINATE: f64 = 0.2;

/// After the faults, fewer acknowledged operations than this fraction is a
/// partial recovery, worth a warning.
pub const WARN_RECOVERED: f64 = 0.5;

/// What fails a run besides the scenario's own `[expect]` (`--fail-on`, a comma
/// list): `expect` (the default: nothing more), `any-divergence` (every divergence
/// limit tightened to zero), `unavailable` (the availability warnings fail it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailOn {
    pub any_divergence: bool,
    pub unavailable: bool,
}

impl FailOn {
    pub const HELP: &'static str =
        "expect (the scenario's [expect], default), any-divergence, unavailable; comma-separated";

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut policy = FailOn::default();
        for word in text.split(',').map(str::trim) {
            match word {
                "expect" => {}
                "any-divergence" => policy.any_divergence = true,
                "unavailable" => policy.unavailable = true,
                other => {
                    return Err(format!(
                        "unknown --fail-on value `{other}`; use {}",
                        Self::HELP
                    ));
                }
            }
        }
        Ok(policy)
    }

    pub fn name(self) -> String {
        let mut words = vec![];
        if self.any_divergence {
            words.push("any-divergence");
        }
        if self.unavailable {
            words.push("unavailable");
        }
        if words.is_empty() {
            "expect".into()
        } else {
            words.join(",")
        }
    }
}

/// The verdict of a checked run under its `[expect]`: divergence counts against
/// their maxima, then availability against its limits, then what readers saw.
pub fn judge(
    checker: &CheckerReport,
    availability: &Availability,
    readers: Option<&ReadersResult>,
    expect: &Expect,
) -> (Verdict, Vec<String>) {
    let mut reasons = divergence_reasons(checker, expect);
    reasons.extend(availability_reasons(availability, expect));
    if let Some(r) = readers {
        reasons.extend(read_reasons(r, expect));
    }
    if reasons.is_empty() {
        (Verdict::Pass, reasons)
    } else {
        (Verdict::Fail, reasons)
    }
}

fn divergence_reasons(checker: &CheckerReport, expect: &Expect) -> Vec<String> {
    let limits = [
        ("orphans", expect.orphans),
        ("ghosts", expect.ghosts),
        ("duplicates", expect.duplicates),
        ("mismatches", expect.mismatches),
        ("lost_acks", expect.lost_acks),
        ("strays", expect.strays),
        ("divergence", expect.divergence),
    ];
    debug_assert!(
        CATEGORIES
            .iter()
            .all(|c| limits.iter().any(|(l, _)| l == c))
    );
    let mut reasons = Vec::new();
    for (category, limit) in limits {
        let count = checker.count(category);
        if let Some(max) = limit
            && count > max
        {
            let samples = checker
                .samples
                .get(category)
                .map(|s| s.join(", "))
                .unwrap_or_default();
            let samples = if samples.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {samples})")
            };
            reasons.push(format!("{category}: {count} > allowed {max}{samples}"));
        }
    }
    reasons
}

/// Partial reads and read anomalies against `expect.partial_reads` and
/// `expect.read_anomalies` (absent: any number).
fn read_reasons(r: &ReadersResult, expect: &Expect) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(max) = expect.partial_reads {
        let n = r.partial_reads();
        if n > max {
            let at = |by: &[crate::result::DelayReads], of: &str| {
                let at: Vec<String> = by
                    .iter()
                    .filter(|d| d.primary_only + d.secondary_only > 0)
                    .map(|d| format!("{} at {} ms", d.primary_only + d.secondary_only, d.delay_ms))
                    .collect();
                (!at.is_empty()).then(|| format!("{} {of}", at.join(", ")))
            };
            let parts: Vec<String> = [
                at(&r.by_delay, "of acknowledged orders"),
                at(&r.unacknowledged_by_delay, "of failed or unknown ones"),
            ]
            .into_iter()
            .flatten()
            .collect();
            reasons.push(format!(
                "partial_reads: {n} > allowed {max} ({})",
                parts.join("; ")
            ));
        }
    }
    if let Some(max) = expect.read_anomalies {
        let n = r.anomalous_reads();
        if n > max {
            let named: Vec<String> = r
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
            reasons.push(format!(
                "read_anomalies: {n} > allowed {max}: {}",
                named.join(", ")
            ));
        }
    }
    reasons
}

fn availability_reasons(a: &Availability, expect: &Expect) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(max) = expect.indeterminate
        && a.unknown_fraction > max
    {
        reasons.push(format!(
            "indeterminate: {:.1}% of operations > allowed {:.1}%",
            a.unknown_fraction * 100.0,
            max * 100.0
        ));
    }
    if expect.recovery == Some(true) && a.recovered == Some(false) {
        reasons
            .push("recovery: no operation succeeded after the last fault window ended".to_string());
    }
    reasons
}

/// Warnings that a zero divergence proves little: most operations indeterminate,
/// or the store never recovered after the faults.
pub fn availability_warnings(a: &Availability) -> Vec<String> {
    let mut warnings = Vec::new();
    if a.unknown_fraction > WARN_INDETERMINATE {
        warnings.push(format!(
            "{:.1}% of operations are indeterminate (over {:.0}%): zero divergence over them proves little",
            a.unknown_fraction * 100.0,
            WARN_INDETERMINATE * 100.0
        ));
    }
    match (&a.after_faults, a.recovered) {
        (Some(after), Some(false)) => warnings.push(format!(
            "the store did not recover after the faults: {} operation(s) after the last window, none acknowledged",
            after.ops
        )),
        (Some(after), Some(true)) if (after.ok as f64) < WARN_RECOVERED * after.ops as f64 => {
            warnings.push(format!(
                "the store recovered only partly after the faults: {} of {} operations after the last window acknowledged",
                after.ok, after.ops
            ))
        }
        _ => {}
    }
    warnings
}

/// The verdict and its reasons under `policy`.
pub fn gate(r: &RunResult, policy: FailOn) -> (Verdict, Vec<String>) {
    // A run that errored or was not checked cannot pass a stricter gate either.
    if r.verdict == Verdict::Error || r.checker.is_none() {
        return (r.verdict, r.verdict_reasons.clone());
    }
    let mut reasons = r.verdict_reasons.clone();
    if policy.any_divergence
        && let Some(c) = &r.checker
    {
        for reason in divergence_reasons(c, &Expect::zero()) {
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
    }
    if policy.unavailable {
        reasons.extend(availability_warnings(&r.availability));
    }
    if reasons.is_empty() {
        (Verdict::Pass, reasons)
    } else {
        (Verdict::Fail, reasons)
    }
}

/// The exit code of one finished run under a gate policy.
pub fn exit_code(r: &RunResult, policy: FailOn) -> i32 {
    if r.interrupted.is_some() {
        return exit::INTERRUPTED;
    }
    match gate(r, policy).0 {
        Verdict::Pass => exit::PASS,
        Verdict::Fail => exit::DIVERGENCE,
        Verdict::Error => exit::INFRA,
    }
}

/// "orphans 150, lost_acks 150; first ids: o…150, o…151, o…152": the counts
/// that are not zero and the first sample ids, for one-line failure messages.
pub fn counts_line(r: &RunResult) -> String {
    let Some(c) = &r.checker else {
        return "not checked".into();
    };
    let counts: Vec<String> = CATEGORIES
        .iter()
        .filter(|cat| c.count(cat) > 0)
        .map(|cat| format!("{cat} {}", c.count(cat)))
        .collect();
    if counts.is_empty() {
        return "no divergence".into();
    }
    let first: Vec<&str> = CATEGORIES
        .iter()
        .filter_map(|cat| c.samples.get(*cat))
        .flatten()
        .map(String::as_str)
        .fold(Vec::new(), |mut v, id| {
            if v.len() < 3 && !v.contains(&id) {
                v.push(id);
            }
            v
        });
    format!(
        "divergence {}: {}; first ids: {}",
        c.divergence,
        counts.join(", "),
        first.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::AfterFaults;

    fn availability(unknown: f64, recovered: Option<bool>) -> Availability {
        Availability {
            ok_fraction: 1.0 - unknown,
            fail_fraction: 0.0,
            unknown_fraction: unknown,
            after_faults: recovered.map(|r| AfterFaults {
                ops: 10,
                ok: if r { 10 } else { 0 },
                fail: 0,
                unknown: if r { 0 } else { 10 },
            }),
            recovered,
        }
    }

    #[test]
    fn divergence_over_a_limit_fails_with_its_samples() {
        let c = CheckerReport {
            orphans: 3,
            divergence: 3,
            samples: [("orphans".to_string(), vec!["o1".to_string()])].into(),
            ..CheckerReport::default()
        };
        let (v, reasons) = judge(&c, &availability(0.0, None), None, &Expect::zero());
        assert_eq!(v, Verdict::Fail);
        assert_eq!(reasons[0], "orphans: 3 > allowed 0 (e.g. o1)");
        let any = Expect::default();
        assert_eq!(
            judge(&c, &availability(0.0, None), None, &any).0,
            Verdict::Pass
        );
    }

    #[test]
    fn mostly_indeterminate_or_unrecovered_warns_and_fails_only_when_asked() {
        let a = availability(0.73, Some(false));
        let warnings = availability_warnings(&a);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("73.0% of operations are indeterminate"));
        // No limits in [expect]: PASS, with the warnings beside it.
        let c = CheckerReport::default();
        assert_eq!(judge(&c, &a, None, &Expect::zero()).0, Verdict::Pass);
        let strict = Expect {
            indeterminate: Some(0.2),
            recovery: Some(true),
            ..Expect::zero()
        };
        let (v, reasons) = judge(&c, &a, None, &strict);
        assert_eq!(v, Verdict::Fail);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(availability_warnings(&availability(0.1, Some(true))).is_empty());
        // Some operations succeeded after the faults, most did not.
        let mut partial = availability(0.0, Some(true));
        partial.after_faults = Some(AfterFaults {
            ops: 79,
            ok: 25,
            fail: 54,
            unknown: 0,
        });
        assert_eq!(
            availability_warnings(&partial),
            [
                "the store recovered only partly after the faults: 25 of 79 operations after the last window acknowledged"
            ]
        );
    }

    #[test]
    fn partial_reads_and_read_anomalies_fail_only_when_limited() {
        use crate::result::{Anomaly, DelayReads};
        let readers = ReadersResult {
            by_delay: vec![DelayReads {
                delay_ms: 10,
                primary_only: 2,
                ..DelayReads::default()
            }],
            anomalies: [(
                "visible_ghost".to_string(),
                Anomaly {
                    reads: 1,
                    orders: 1,
                    samples: vec!["o000000000007".into()],
                },
            )]
            .into(),
            ..ReadersResult::default()
        };
        let c = CheckerReport::default();
        let a = availability(0.0, None);
        assert_eq!(
            judge(&c, &a, Some(&readers), &Expect::zero()).0,
            Verdict::Pass
        );
        let strict = Expect {
            partial_reads: Some(0),
            read_anomalies: Some(0),
            ..Expect::zero()
        };
        let (v, reasons) = judge(&c, &a, Some(&readers), &strict);
        assert_eq!(v, Verdict::Fail);
        assert_eq!(
            reasons,
            [
                "partial_reads: 2 > allowed 0 (2 at 10 ms of acknowledged orders)",
                "read_anomalies: 1 > allowed 0: visible_ghost 1 (e.g. o000000000007)"
            ]
        );
    }

    #[test]
    fn fail_on_parses_a_comma_list_and_refuses_unknown_words() {
        assert_eq!(FailOn::parse("expect").unwrap(), FailOn::default());
        let p = FailOn::parse("any-divergence,unavailable").unwrap();
        assert!(p.any_divergence && p.unavailable);
        assert_eq!(p.name(), "any-divergence,unavailable");
        assert!(
            FailOn::parse("anything")
                .unwrap_err()
                .contains("any-divergence")
        );
    }
}

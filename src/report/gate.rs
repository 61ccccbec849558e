//! The CI gate: which verdict a run gets under a `--fail-on` policy. The scenario's
//! own `[expect]` is the default; `any-divergence` tightens every limit to zero.

use crate::checker::CATEGORIES;
use crate::result::{self, RunResult, Verdict};
use crate::scenario::Expect;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FailOn {
    /// The limits of each scenario's `[expect]` table (the verdict in the result).
    #[default]
    Expect,
    /// Any orphan, ghost, duplicate, mismatch, lost ack or stray fails the run.
    AnyDivergence,
}

/// The verdict and its reasons under `policy`.
pub fn gate(r: &RunResult, policy: FailOn) -> (Verdict, Vec<String>) {
    match policy {
        FailOn::Expect => (r.verdict, r.verdict_reasons.clone()),
        // A run that errored or was not checked cannot pass a stricter gate either.
        FailOn::AnyDivergence if r.verdict == Verdict::Error || !r.checked => {
            (Verdict::Error, r.verdict_reasons.clone())
        }
        FailOn::AnyDivergence => result::judge(&r.checker, &Expect::zero()),
    }
}

/// "orphans 150, lost_acks 150; first ids: o…150, o…151, o…152": the counts
/// that are not zero and the first sample ids, for one-line failure messages.
pub fn counts_line(r: &RunResult) -> String {
    let c = &r.checker;
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

//! Raw scenario -> validated [`Scenario`]: types, ranges, defaults, and which
//! pattern, fault and option applies to which store (read from the store
//! registry). One file per part of the scenario.

mod app;
mod connection;
mod cql;
mod faults;
mod namespace;
mod pattern;
mod readers;
mod target;
mod workload;

use std::time::Duration;

use super::error::{Locator, ScenarioError};
use super::raw::{RawLimit, RawScenario};
use super::*;
use crate::store::StoreSpec;

type Res<T> = Result<T, ScenarioError>;

pub(super) fn validate(raw: RawScenario, at: &Locator, opts: LoadOptions) -> Res<Scenario> {
    if raw.name.trim().is_empty()
        || !raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(at.error(
            "name",
            format!("`{}` is not a usable scenario name", raw.name),
            "use letters, digits, `-` and `_` only (it names the results directory), e.g. name = \"dynamo-naive\"",
        ));
    }
    let mut target = target::target(&raw, at)?;
    let workload = workload::workload(&raw, at)?;
    let (pattern, app) = match (&raw.pattern, &raw.app) {
        (Some(p), None) => (pattern::pattern(p, &target, at)?, None),
        (None, Some(a)) => (
            // A stand-in the stores read (plain sides, no capability needed).
            Pattern::new(crate::pattern::PatternKind::Naive),
            Some(app::app(a, &target, workload.op_timeout, at)?),
        ),
        (Some(_), Some(_)) => {
            return Err(at.error(
                "pattern",
                "[pattern] chooses dualwrite's own writer, and [app] makes your service the writer",
                "remove [pattern] (the service's code is the pattern under test), or remove [app]",
            ));
        }
        (None, None) => {
            return Err(at.error(
                "pattern",
                "missing: neither [pattern] nor [app]",
                "add [pattern] name = \"naive\" (dualwrite's own writer), or [app] (your service as the writer); see README.md",
            ));
        }
    };
    cql::cql(&raw, &mut target, &pattern, at)?;
    remote_allowed(&mut target, pattern.kind.is_async(), opts, at)?;
    let run = workload.planned_duration();
    let mut faults = Vec::new();
    for (i, f) in raw.faults.iter().enumerate() {
        faults.push(faults::fault(
            i,
            f,
            &target,
            &pattern,
            app.as_ref(),
            run,
            at,
        )?);
    }
    let is_async = app
        .as_ref()
        .map_or(pattern.kind.is_async(), |a| a.async_secondary);
    let default_fields = || match &app {
        Some(a) => a.comparable_fields(),
        None => default_fields(),
    };
    let check = match &raw.check {
        None => Check {
            settle: default_settle(is_async),
            fields: default_fields(),
        },
        Some(c) => Check {
            settle: match &c.settle {
                Some(s) => duration(s, "check.settle", at)?,
                None => default_settle(is_async),
            },
            fields: match &c.fields {
                None => default_fields(),
                Some(names) => names
                    .iter()
                    .map(|n| match n.as_str() {
                        "customer_id" => Ok(Field::CustomerId),
                        "amount_cents" => Ok(Field::AmountCents),
                        other => Err(at.error(
                            "check.fields",
                            format!("unknown field `{other}`"),
                            "compare any of \"customer_id\", \"amount_cents\"",
                        )),
                    })
                    .collect::<Res<Vec<_>>>()?,
            },
        },
    };
    if let Some(a) = &app {
        let both = a.comparable_fields();
        if let Some(f) = check.fields.iter().find(|f| !both.contains(f)) {
            return Err(at.error(
                "check.fields",
                format!(
                    "`{}` is compared, but not mapped on both sides of [app]",
                    f.name()
                ),
                format!(
                    "map it in [app.primary] and [app.secondary] `fields` (e.g. fields = {{ {} = \"theirName\" }}), or leave it out of check.fields",
                    f.name()
                ),
            ));
        }
    }
    let expect = match &raw.expect {
        None => Expect::zero(),
        Some(e) => Expect {
            orphans: limit(&e.orphans, "expect.orphans", at)?,
            ghosts: limit(&e.ghosts, "expect.ghosts", at)?,
            duplicates: limit(&e.duplicates, "expect.duplicates", at)?,
            mismatches: limit(&e.mismatches, "expect.mismatches", at)?,
            lost_acks: limit(&e.lost_acks, "expect.lost_acks", at)?,
            strays: limit(&e.strays, "expect.strays", at)?,
            divergence: limit(&e.divergence, "expect.divergence", at)?,
            indeterminate: match e.indeterminate {
                Some(x) if !(0.0..=1.0).contains(&x) => {
                    return Err(at.error(
                        "expect.indeterminate",
                        format!("{x} is not a fraction"),
                        "give the largest share of indeterminate operations allowed, 0.0 to 1.0, e.g. indeterminate = 0.2",
                    ));
                }
                other => other,
            },
            recovery: e.recovery,
            partial_reads: read_limit(&e.partial_reads, "expect.partial_reads", at)?,
            read_anomalies: read_limit(&e.read_anomalies, "expect.read_anomalies", at)?,
        },
    };
    let readers = match &raw.readers {
        Some(r) => Some(readers::readers(r, &target, &pattern, at)?),
        None => None,
    };
    if readers.is_none() {
        for (path, set) in [
            ("expect.partial_reads", expect.partial_reads.is_some()),
            ("expect.read_anomalies", expect.read_anomalies.is_some()),
        ] {
            if set {
                return Err(at.error(
                    path,
                    "there are no reads to limit: the scenario has no [readers]",
                    "add a [readers] section, or remove the limit",
                ));
            }
        }
    }
    let namespace = namespace::namespace(&raw, at)?;
    let mut warnings = Vec::new();
    for f in &faults {
        if let FaultKind::ProcessKill { server } = &f.kind {
            let in_memory = StoreSpec::local_servers()
                .any(|(_, s)| s.name == server && s.local.as_ref().is_some_and(|l| l.in_memory));
            if in_memory {
                warnings.push(format!(
                    "faults[{}]: `{server}` keeps its data in memory: killing it destroys every table of the run (the checker then counts every acknowledged order as lost)",
                    f.index
                ));
            }
        }
    }
    if target.allow_remote && !target.remote.is_empty() {
        let hosts: Vec<String> = target.remote.iter().map(|r| r.host.clone()).collect();
        warnings.push(format!(
            "endpoints outside loopback, allowed: {}",
            hosts.join(", ")
        ));
    }
    Ok(Scenario {
        name: raw.name.clone(),
        description: raw.description.clone().unwrap_or_default(),
        seed: raw.seed.unwrap_or(1),
        file: PathBuf::new(),
        source: String::new(),
        sha256: String::new(),
        target,
        namespace,
        pattern,
        app,
        workload,
        faults,
        check,
        expect,
        readers,
        warnings,
    })
}

/// The guard rail: an endpoint outside the loopback range needs `allow_remote =
/// true` in `[target]` or `--allow-remote`. Decided here, from the text, before any
/// client or socket exists.
fn remote_allowed(target: &mut Target, relay: bool, opts: LoadOptions, at: &Locator) -> Res<()> {
    // The relay connection exists only for asynchronous patterns.
    target
        .remote
        .retain(|r| relay || r.side != Some(Side::Relay));
    target.allow_remote |= opts.allow_remote;
    let Some(first) = target.remote.first() else {
        return Ok(());
    };
    if target.allow_remote {
        return Ok(());
    }
    let mut seen = Vec::new();
    for r in &target.remote {
        let line = format!("{} ({})", r.host, r.field);
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    Err(at.error(
        &first.field,
        format!(
            "outside the loopback range: {}; a run creates, writes and drops tables there",
            seen.join(", ")
        ),
        "if that is the deployment you mean, set allow_remote = true in [target] or pass --allow-remote (`dualwrite plan FILE --allow-remote` shows what a run would do there)",
    ))
}

fn default_settle(is_async: bool) -> Duration {
    if is_async {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(1)
    }
}

fn default_fields() -> Vec<Field> {
    vec![Field::CustomerId, Field::AmountCents]
}

fn limit(raw: &Option<RawLimit>, path: &str, at: &Locator) -> Res<Option<u64>> {
    match raw {
        None => Ok(Some(0)),
        Some(RawLimit::Count(n)) if *n >= 0 => Ok(Some(*n as u64)),
        Some(RawLimit::Word(w)) if w == "any" => Ok(None),
        Some(other) => Err(at.error(
            path,
            format!("`{other:?}` is not a threshold"),
            "give the largest count allowed (0 or more), or \"any\" for no limit",
        )),
    }
}

/// A limit on reads: unlike the checker's categories, absent means any.
fn read_limit(raw: &Option<RawLimit>, path: &str, at: &Locator) -> Res<Option<u64>> {
    match raw {
        None => Ok(None),
        some => limit(some, path, at),
    }
}

pub(super) fn duration(text: &str, path: &str, at: &Locator) -> Res<Duration> {
    parse_duration(text).ok_or_else(|| {
        at.error(
            path,
            format!("`{text}` is not a duration"),
            "write a number and a unit: \"250ms\", \"5s\", \"2m\"",
        )
    })
}

/// An error for a word that is not one of the accepted ones.
pub(super) fn word(at: &Locator, path: &str, got: &str, expected: &str) -> ScenarioError {
    at.error(
        path,
        format!("`{got}` is not a valid value"),
        format!("use {expected}"),
    )
}

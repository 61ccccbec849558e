//! `[[faults]]`: one entry of the fault schedule, its kind's attributes, and
//! whether the side and store it names can take it.

use std::time::Duration;

use super::super::error::Locator;
use super::super::raw::RawFault;
use super::super::*;
use super::{Res, duration, word};
use crate::pattern::Pattern;

pub(super) fn fault(
    i: usize,
    f: &RawFault,
    target: &Target,
    pattern: &Pattern,
    run: Duration,
    at: &Locator,
) -> Res<FaultSpec> {
    let p = |field: &str| format!("faults[{i}].{field}");
    let side = match f.side.as_deref() {
        None | Some("primary") => Side::Primary,
        Some("secondary") => Side::Secondary,
        Some("relay") => Side::Relay,
        Some(other) => {
            return Err(word(
                at,
                &p("side"),
                other,
                "\"primary\", \"secondary\" or \"relay\"",
            ));
        }
    };
    let direction = match f.direction.as_deref() {
        None | Some("downstream") => Direction::Downstream,
        Some("upstream") => Direction::Upstream,
        Some(other) => {
            return Err(word(
                at,
                &p("direction"),
                other,
                "\"upstream\" (to the server) or \"downstream\" (the answer)",
            ));
        }
    };
    let toxicity = f.toxicity.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&toxicity) {
        return Err(at.error(
            &p("toxicity"),
            format!("{toxicity} is not a probability"),
            "use 0.0 to 1.0",
        ));
    }
    let start = duration(&f.start, &p("start"), at)?;
    if start >= run {
        return Err(at.error(
            &p("start"),
            format!(
                "the fault starts at {} but the load lasts {}",
                fmt_duration(start),
                fmt_duration(run)
            ),
            "start it within the run, or lengthen workload.duration",
        ));
    }
    let fault_duration = match &f.duration {
        Some(d) => duration(d, &p("duration"), at)?,
        None => {
            return Err(at.error(
                &p("duration"),
                "missing",
                "add how long the fault lasts, e.g. duration = \"3s\"",
            ));
        }
    };
    let every = match &f.every {
        Some(e) => {
            let e = duration(e, &p("every"), at)?;
            if e <= fault_duration {
                return Err(at.error(
                    &p("every"),
                    "a repeating window must be shorter than its period",
                    "make `every` longer than `duration`",
                ));
            }
            Some(e)
        }
        None => None,
    };
    let ms = |field: &str, v: &Option<String>, default: Option<u64>| -> Res<u64> {
        match (v, default) {
            (Some(s), _) => Ok(duration(s, &p(field), at)?.as_millis() as u64),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(at.error(
                &p(field),
                "missing",
                format!("`{}` needs `{field}`, e.g. {field} = \"200ms\"", f.kind),
            )),
        }
    };
    let count = |field: &str, v: Option<i64>| -> Res<u64> {
        match v {
            Some(n) if n >= 0 => Ok(n as u64),
            Some(n) => Err(at.error(&p(field), format!("{n} is negative"), "use 0 or more")),
            None => Err(at.error(
                &p(field),
                "missing",
                format!("`{}` needs `{field}`", f.kind),
            )),
        }
    };
    let kind = match f.kind.as_str() {
        "latency" => FaultKind::Latency {
            latency_ms: ms("latency", &f.latency, None)?,
            jitter_ms: ms("jitter", &f.jitter, Some(0))?,
        },
        "bandwidth" => FaultKind::Bandwidth {
            rate_kbps: count("rate_kbps", f.rate_kbps)?,
        },
        "slow_close" => FaultKind::SlowClose {
            delay_ms: ms("delay", &f.delay, None)?,
        },
        "timeout" => FaultKind::Timeout {
            timeout_ms: ms("timeout", &f.timeout, Some(0))?,
        },
        "reset_peer" => FaultKind::ResetPeer {
            timeout_ms: ms("timeout", &f.timeout, Some(0))?,
        },
        "slicer" => FaultKind::Slicer {
            average_size: f
                .average_size
                .map_or(Ok(64), |n| count("average_size", Some(n)))?,
            size_variation: f
                .size_variation
                .map_or(Ok(16), |n| count("size_variation", Some(n)))?,
            delay_us: ms("delay", &f.delay, Some(0))? * 1000,
        },
        "limit_data" => FaultKind::LimitData {
            bytes: count("bytes", f.bytes)?,
        },
        "down" => FaultKind::Down,
        "relay-crash" => {
            if !pattern.kind.is_async() {
                return Err(at.error(
                    &p("kind"),
                    format!(
                        "`relay-crash` needs a relay, and pattern `{}` has none",
                        pattern.kind
                    ),
                    "use it with `outbox` or `streams`",
                ));
            }
            FaultKind::RelayCrash
        }
        "sdk-error" => {
            if !store_injects(target, side, "sdk-error") {
                return Err(at.error(
                    &p("kind"),
                    format!(
                        "`sdk-error` injects errors in the AWS SDK, and the {side} side is on {}",
                        target.store_of(side)
                    ),
                    "use a network fault, or `fail-command` on MongoDB",
                ));
            }
            let error = f
                .error
                .clone()
                .unwrap_or_else(|| "ProvisionedThroughputExceededException".into());
            const ERRORS: [&str; 4] = [
                "ProvisionedThroughputExceededException",
                "ThrottlingException",
                "InternalServerError",
                "TransactionConflictException",
            ];
            if !ERRORS.contains(&error.as_str()) {
                return Err(word(at, &p("error"), &error, &ERRORS.join(", ")));
            }
            let rate = f.rate.unwrap_or(1.0);
            if !(0.0..=1.0).contains(&rate) {
                return Err(at.error(
                    &p("rate"),
                    format!("{rate} is not a fraction"),
                    "use 0.0 to 1.0 (share of requests that fail)",
                ));
            }
            let when = match f.when.as_deref() {
                None | Some("before") => InjectWhen::Before,
                Some("after") => InjectWhen::After,
                Some(other) => {
                    return Err(word(
                        at,
                        &p("when"),
                        other,
                        "\"before\" (not sent) or \"after\" (applied, answer replaced)",
                    ));
                }
            };
            FaultKind::SdkError { error, rate, when }
        }
        "fail-command" => {
            if !store_injects(target, side, "fail-command") {
                return Err(at.error(
                    &p("kind"),
                    format!(
                        "`fail-command` is MongoDB's failCommand fail point, and the {side} side is on {}",
                        target.store_of(side)
                    ),
                    "use it on a side stored in MongoDB",
                ));
            }
            let commands = f.commands.clone().unwrap_or_else(|| vec!["insert".into()]);
            if commands.is_empty() {
                return Err(at.error(
                    &p("commands"),
                    "empty list",
                    "name the commands to fail, e.g. commands = [\"insert\"]",
                ));
            }
            let provable = crate::store::mongodb::FAIL_POINT_COMMANDS;
            if let Some(c) = commands.iter().find(|c| !provable.contains(&c.as_str())) {
                return Err(at.error(
                    &p("commands"),
                    format!("`{c}`: dualwrite proves a fail point fires before a run only for some commands"),
                    format!("use any of {}", provable.join(", ")),
                ));
            }
            FaultKind::FailCommand {
                commands,
                error_code: f.error_code.unwrap_or(91) as i32,
                error_labels: f.error_labels.clone().unwrap_or_default(),
                close_connection: f.close_connection.unwrap_or(false),
                times: match f.times {
                    None => None,
                    Some(n) if n > 0 => Some(n as u32),
                    Some(n) => {
                        return Err(at.error(
                            &p("times"),
                            format!("{n} is not a positive count"),
                            "use 1 or more, or leave it out for the whole window",
                        ));
                    }
                },
            }
        }
        "process-kill" | "process-pause" => {
            // Only a server this scenario uses, and only one the local stack manages.
            let used: Vec<&str> = [&target.primary, &target.secondary]
                .iter()
                .filter(|t| {
                    t.store
                        .spec()
                        .server(&t.server)
                        .is_some_and(|s| s.local.is_some())
                })
                .map(|t| t.server.as_str())
                .collect();
            let listed = if used.is_empty() {
                "none: this scenario's servers are not managed by the local stack".to_string()
            } else {
                used.join(", ")
            };
            let server = f.server.clone().ok_or_else(|| {
                at.error(
                    &p("server"),
                    "missing",
                    format!("name the server to signal; this scenario uses: {listed}"),
                )
            })?;
            if !used.contains(&server.as_str()) {
                return Err(at.error(
                    &p("server"),
                    format!("`{server}` is not a local server this scenario uses"),
                    format!("name one of: {listed}"),
                ));
            }
            if f.kind == "process-kill" {
                FaultKind::ProcessKill { server }
            } else {
                FaultKind::ProcessPause { server }
            }
        }
        other => {
            return Err(at.error(
                &p("kind"),
                format!("unknown fault kind `{other}`"),
                format!("use one of {}", FaultKind::NAMES.join(", ")),
            ));
        }
    };
    check_attributes(i, f, &kind, at)?;
    if kind.is_network()
        && matches!(target.endpoint(side), SideEndpoint::InProcess)
        && !store_injects(target, side, kind.name())
    {
        return Err(at.error(
            &p("kind"),
            format!(
                "the {side} side lives in dualwrite's own memory, which has no `{}`",
                kind.name()
            ),
            format!(
                "use one of the in-memory store's faults: {}",
                target.store_of(side).spec().fault_kinds.join(", ")
            ),
        ));
    }
    if kind.is_network() && matches!(target.endpoint(side), SideEndpoint::Direct(_)) {
        return Err(at.error(
            &p("side"),
            format!("the {side} side connects directly, so a network fault cannot reach it"),
            format!("route the {side} side through a proxy: [target.{side}] proxy = \"...\""),
        ));
    }
    if side == Side::Relay && !pattern.kind.is_async() && kind.is_network() {
        return Err(at.error(
            &p("side"),
            format!("pattern `{}` has no relay", pattern.kind),
            "use side = \"primary\" or \"secondary\"",
        ));
    }
    Ok(FaultSpec {
        index: i,
        kind,
        side,
        direction,
        toxicity: toxicity as f32,
        start,
        duration: fault_duration,
        every,
    })
}

/// Whether the store behind a side injects this fault kind itself.
fn store_injects(target: &Target, side: Side, kind: &str) -> bool {
    target.store_of(side).spec().fault_kinds.contains(&kind)
}

/// Rejects attributes that belong to another fault kind, so a typo is never ignored.
fn check_attributes(i: usize, f: &RawFault, kind: &FaultKind, at: &Locator) -> Res<()> {
    let allowed: &[&str] = match kind {
        FaultKind::Latency { .. } => &["latency", "jitter"],
        FaultKind::Bandwidth { .. } => &["rate_kbps"],
        FaultKind::SlowClose { .. } => &["delay"],
        FaultKind::Timeout { .. } | FaultKind::ResetPeer { .. } => &["timeout"],
        FaultKind::Slicer { .. } => &["average_size", "size_variation", "delay"],
        FaultKind::LimitData { .. } => &["bytes"],
        FaultKind::Down | FaultKind::RelayCrash => &[],
        FaultKind::SdkError { .. } => &["error", "rate", "when"],
        FaultKind::FailCommand { .. } => &[
            "commands",
            "error_code",
            "error_labels",
            "close_connection",
            "times",
        ],
        FaultKind::ProcessKill { .. } | FaultKind::ProcessPause { .. } => &["server"],
    };
    let set: [(&str, bool); 17] = [
        ("latency", f.latency.is_some()),
        ("jitter", f.jitter.is_some()),
        ("rate_kbps", f.rate_kbps.is_some()),
        ("delay", f.delay.is_some()),
        ("timeout", f.timeout.is_some()),
        ("bytes", f.bytes.is_some()),
        ("average_size", f.average_size.is_some()),
        ("size_variation", f.size_variation.is_some()),
        ("error", f.error.is_some()),
        ("rate", f.rate.is_some()),
        ("when", f.when.is_some()),
        ("commands", f.commands.is_some()),
        ("error_code", f.error_code.is_some()),
        ("error_labels", f.error_labels.is_some()),
        ("close_connection", f.close_connection.is_some()),
        ("times", f.times.is_some()),
        ("server", f.server.is_some()),
    ];
    for (name, present) in set {
        if present && !allowed.contains(&name) {
            return Err(at.error(
                &format!("faults[{i}].{name}"),
                format!(
                    "`{name}` is not an attribute of fault kind `{}`",
                    kind.name()
                ),
                if allowed.is_empty() {
                    format!("remove it; `{}` takes no attributes", kind.name())
                } else {
                    format!("remove it; `{}` takes: {}", kind.name(), allowed.join(", "))
                },
            ));
        }
    }
    Ok(())
}

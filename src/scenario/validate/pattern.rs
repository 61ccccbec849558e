//! `[pattern]`: the pattern and its options, each checked against what the
//! chosen stores honour (the store registry) so none is silently ignored.

use std::time::Duration;

use super::super::error::Locator;
use super::super::raw::RawPattern;
use super::super::*;
use super::{Res, duration, word};
use crate::pattern::{
    Delivery, KeyPolicy, OnConflict, OnSecondaryFailure, Partitioning, Pattern, PatternKind,
    RelayMode,
};

/// The options a pattern honours with these sides: the pattern engine's own, the
/// primary store's for this pattern, and (for patterns whose secondary is written
/// by the engine or a relay) the secondary store's. `Err` when the pattern cannot
/// run here at all.
pub(super) fn honoured_options(
    kind: PatternKind,
    target: &Target,
) -> Result<Vec<&'static str>, String> {
    let primary = target.primary.store.spec();
    let options = match primary.support(kind) {
        crate::store::spec::Support::No(reason) => {
            return Err(format!(
                "pattern `{kind}` does not apply to {}: {reason}",
                primary.name
            ));
        }
        crate::store::spec::Support::Yes { options, .. } => options,
    };
    if kind.needs_one_store() && !target.shared_store() {
        return Err(format!(
            "pattern `{kind}` writes both sides in one atomic call, so both sides must live in one store (here {} and {})",
            target.stores_label().replace('+', " and "),
            target.servers_label().replace('+', " / ")
        ));
    }
    let mut all: Vec<&'static str> = crate::pattern::engine_options(kind).to_vec();
    all.extend_from_slice(options);
    let secondary = target.secondary.store.spec().secondary_options;
    if kind == PatternKind::Naive {
        // The application writes the secondary itself: no relay options.
        all.extend(secondary.iter().filter(|o| !o.starts_with("relay.")));
    } else if kind.is_async() {
        // A relay keys what it publishes by `relay.idempotent`, never `secondary_key`.
        all.extend(secondary.iter().filter(|o| **o != "secondary_key"));
    }
    if target.secondary.store.spec().secondary_appends {
        // A log appends every publication: no key makes a replay an overwrite.
        all.retain(|o| *o != "relay.idempotent");
    }
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

pub(super) fn pattern(raw: &RawPattern, target: &Target, at: &Locator) -> Res<Pattern> {
    let kind = PatternKind::parse(&raw.name).ok_or_else(|| {
        at.error(
            "pattern.name",
            format!("unknown pattern `{}`", raw.name),
            "use one of naive, transaction, logged-batch, outbox, streams (`dualwrite list` shows where each applies)",
        )
    })?;
    let honoured = honoured_options(kind, target).map_err(|reason| {
        at.error(
            "pattern.name",
            reason,
            "pick a pattern these stores support (`dualwrite list`)",
        )
    })?;
    let relay = raw.relay.as_ref();
    let given: [(&str, bool); 21] = [
        ("on_secondary_failure", raw.on_secondary_failure.is_some()),
        ("retries", raw.retries.is_some()),
        ("backoff", raw.backoff.is_some()),
        ("idempotency_token", raw.idempotency_token.is_some()),
        ("secondary_key", raw.secondary_key.is_some()),
        ("on_conflict", raw.on_conflict.is_some()),
        ("conditions", raw.conditions.is_some()),
        ("partitioning", raw.partitioning.is_some()),
        ("consistency", raw.consistency.is_some()),
        ("lwt_insert", raw.lwt_insert.is_some()),
        ("rearm", raw.rearm.is_some()),
        ("idempotence", raw.idempotence.is_some()),
        ("relay", relay.is_some() && !kind.is_async()),
        (
            "relay.idempotent",
            relay.is_some_and(|r| r.idempotent.is_some()),
        ),
        ("relay.workers", relay.is_some_and(|r| r.workers.is_some())),
        (
            "relay.poll_interval",
            relay.is_some_and(|r| r.poll_interval.is_some()),
        ),
        ("relay.mode", relay.is_some_and(|r| r.mode.is_some())),
        (
            "relay.crash_every",
            relay.is_some_and(|r| r.crash_every.is_some()),
        ),
        (
            "relay.crash_probability",
            relay.is_some_and(|r| r.crash_probability.is_some()),
        ),
        (
            "relay.claim_ttl",
            relay.is_some_and(|r| r.claim_ttl.is_some()),
        ),
        (
            "relay.delivery",
            relay.is_some_and(|r| r.delivery.is_some()),
        ),
    ];
    let stores = if target.shared_store() {
        format!("{} ({})", target.primary.store, target.primary.server)
    } else {
        format!(
            "{} ({}) with the secondary on {} ({})",
            target.primary.store,
            target.primary.server,
            target.secondary.store,
            target.secondary.server
        )
    };
    for (name, set) in given {
        if set && !honoured.contains(&name) {
            let appends = target.secondary.store.spec().secondary_appends;
            let why = if appends && matches!(name, "secondary_key" | "relay.idempotent") {
                ": a topic appends every write whatever its key, so no key makes a replay an overwrite (a second message is a duplicate); use relay.delivery = \"exactly-once\" for relays, idempotence = true for the producer's own retries"
            } else {
                crate::pattern::why_not_honoured(name, kind)
            };
            return Err(at.error(
                &format!("pattern.{name}"),
                format!("option `{name}` is not honoured by pattern `{kind}` on {stores}{why}"),
                format!("remove it; here `{kind}` honours: {}", honoured.join(", ")),
            ));
        }
    }
    // Options whose effect depends on another option's value.
    let policy_retries = raw.on_secondary_failure.as_deref() == Some("retry");
    if kind == PatternKind::Naive && !policy_retries {
        for (name, set) in [
            ("retries", raw.retries.is_some()),
            ("backoff", raw.backoff.is_some()),
        ] {
            if set {
                return Err(at.error(
                    &format!("pattern.{name}"),
                    format!("option `{name}` is not honoured by pattern `naive` without on_secondary_failure = \"retry\": only that policy retries the second write"),
                    format!("remove it; here `naive` honours `{name}` only with on_secondary_failure = \"retry\""),
                ));
            }
        }
    }
    if raw.lwt_insert == Some(true) && kind == PatternKind::Outbox {
        // The order and its outbox row share one LOGGED BATCH over two tables, and
        // Cassandra rejects conditional batches that span tables.
        return Err(at.error(
            "pattern.lwt_insert",
            "`lwt_insert` cannot apply to the Cassandra outbox: a conditional batch cannot span the orders and order_outbox tables",
            "remove it, or use it with `naive`",
        ));
    }
    let mut p = Pattern::new(kind);
    if let Some(v) = &raw.on_secondary_failure {
        p.on_secondary_failure = match v.as_str() {
            "log-and-continue" => OnSecondaryFailure::LogAndContinue,
            "fail" => OnSecondaryFailure::Fail,
            "retry" => OnSecondaryFailure::Retry,
            _ => {
                return Err(word(
                    at,
                    "pattern.on_secondary_failure",
                    v,
                    "\"log-and-continue\", \"fail\", \"retry\"",
                ));
            }
        };
    }
    if let Some(n) = raw.retries {
        if !(0..=100).contains(&n) {
            return Err(at.error(
                "pattern.retries",
                format!("{n} is out of range"),
                "use 0 to 100",
            ));
        }
        p.retries = n as u32;
    }
    if let Some(b) = &raw.backoff {
        p.backoff = duration(b, "pattern.backoff", at)?;
    }
    let key_policy = |v: &str, path: &str| match v {
        "stable" => Ok(KeyPolicy::Stable),
        "fresh" => Ok(KeyPolicy::Fresh),
        _ => Err(word(
            at,
            path,
            v,
            "\"stable\" (derived from the order id) or \"fresh\" (new per attempt)",
        )),
    };
    if let Some(v) = &raw.idempotency_token {
        p.idempotency_token = key_policy(v, "pattern.idempotency_token")?;
    }
    if let Some(v) = &raw.secondary_key {
        p.secondary_key = key_policy(v, "pattern.secondary_key")?;
    }
    if let Some(v) = &raw.on_conflict {
        p.on_conflict = match v.as_str() {
            "retry" => OnConflict::Retry,
            "drop" => OnConflict::Drop,
            _ => return Err(word(at, "pattern.on_conflict", v, "\"retry\" or \"drop\"")),
        };
    }
    if let Some(v) = &raw.partitioning {
        p.partitioning = match v.as_str() {
            "same" => Partitioning::Same,
            "cross" => Partitioning::Cross,
            _ => return Err(word(at, "pattern.partitioning", v, "\"same\" or \"cross\"")),
        };
    }
    if let Some(v) = &raw.consistency {
        let lower = v.to_ascii_lowercase();
        if SERIAL_LEVELS.contains(&lower.as_str()) {
            return Err(at.error(
                "pattern.consistency",
                format!("`{v}` is the consistency of an LWT's Paxos phase, not of a request"),
                format!(
                    "set serial_consistency = \"{lower}\" on the connection that sends LWTs ([target.primary] with lwt_insert, [target.relay] for the outbox relay)"
                ),
            ));
        }
        if !CONSISTENCY_LEVELS.contains(&lower.as_str()) {
            return Err(word(
                at,
                "pattern.consistency",
                v,
                &format!("one of {}", CONSISTENCY_LEVELS.join(", ")),
            ));
        }
        p.consistency = lower;
    }
    if let Some(v) = raw.lwt_insert {
        p.lwt_insert = v;
    }
    if let Some(v) = raw.rearm {
        p.rearm = v;
    }
    if let Some(v) = raw.conditions {
        p.conditions = v;
    }
    if let Some(v) = raw.idempotence {
        p.idempotence = v;
    }
    if target.secondary.store.spec().secondary_appends {
        // Whatever the relay keys its publications by, a replay is a second record.
        p.relay.idempotent = false;
    }
    if let Some(r) = &raw.relay {
        if let Some(v) = r.idempotent {
            p.relay.idempotent = v;
        }
        if let Some(n) = r.workers {
            if !(1..=16).contains(&n) {
                return Err(at.error(
                    "pattern.relay.workers",
                    format!("{n} is out of range"),
                    "use 1 to 16",
                ));
            }
            p.relay.workers = n as u32;
        }
        if let Some(d) = &r.poll_interval {
            p.relay.poll_interval = duration(d, "pattern.relay.poll_interval", at)?;
            if p.relay.poll_interval < Duration::from_millis(1) {
                return Err(at.error(
                    "pattern.relay.poll_interval",
                    "must be at least 1ms",
                    "e.g. poll_interval = \"100ms\"",
                ));
            }
        }
        if let Some(m) = &r.mode {
            p.relay.mode = match m.as_str() {
                "stream" => RelayMode::Stream,
                "poll" if kind == PatternKind::Streams => {
                    return Err(at.error(
                        "pattern.relay.mode",
                        "`streams` reads a change stream; there is nothing to poll",
                        "use mode = \"stream\", or the `outbox` pattern for a polling relay",
                    ));
                }
                "poll" => RelayMode::Poll,
                _ => return Err(word(at, "pattern.relay.mode", m, "\"stream\" or \"poll\"")),
            };
        }
        if let Some(n) = r.crash_every {
            if n < 0 {
                return Err(at.error(
                    "pattern.relay.crash_every",
                    "must not be negative",
                    "0 = never, N = every N events",
                ));
            }
            p.relay.crash_every = n as u64;
        }
        if let Some(x) = r.crash_probability {
            if !(0.0..=1.0).contains(&x) {
                return Err(at.error(
                    "pattern.relay.crash_probability",
                    format!("{x} is not a probability"),
                    "use 0.0 to 1.0",
                ));
            }
            p.relay.crash_probability = x;
        }
        if let Some(d) = &r.claim_ttl {
            p.relay.claim_ttl = duration(d, "pattern.relay.claim_ttl", at)?;
        }
        if let Some(d) = &r.delivery {
            p.relay.delivery = match d.as_str() {
                "at-least-once" => Delivery::AtLeastOnce,
                "exactly-once" => Delivery::ExactlyOnce,
                _ => {
                    return Err(word(
                        at,
                        "pattern.relay.delivery",
                        d,
                        "\"at-least-once\" or \"exactly-once\"",
                    ));
                }
            };
            if p.relay.delivery == Delivery::ExactlyOnce && p.relay.workers > 1 {
                // Each worker knows the positions committed up to its own start; an
                // entry another worker committed and then crashed on would be
                // published again by a worker that retakes it.
                return Err(at.error(
                    "pattern.relay.delivery",
                    format!(
                        "exactly-once delivery runs with one relay worker, and relay.workers = {}",
                        p.relay.workers
                    ),
                    "set relay.workers = 1 (or leave it out), or use delivery = \"at-least-once\"",
                ));
            }
        }
    }
    Ok(p)
}

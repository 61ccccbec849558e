//! `[readers]`: the read workload (rate, concurrency, delays, the share of
//! unacknowledged orders followed) and how each side is read, each read option
//! checked against what the side's store honours (the store registry's
//! `reads`), so none is silently ignored.

use std::time::Duration;

use super::super::error::Locator;
use super::super::raw::{RawReadSide, RawReaders};
use super::super::*;
use super::{Res, duration};
use crate::pattern::{KeyPolicy, Pattern};
use crate::store::cassandra::CLUSTER_NODES;

/// The delays used when `delays` is not given.
pub(crate) const DEFAULT_DELAYS: [&str; 4] = ["0ms", "10ms", "100ms", "1s"];

pub(super) fn readers(
    raw: &RawReaders,
    target: &Target,
    pattern: &Pattern,
    at: &Locator,
) -> Res<Readers> {
    for side in [Side::Primary, Side::Secondary] {
        if target.store_of(side).spec().reads.is_none() {
            return Err(no_reads(side, target, at));
        }
    }
    let rate = match raw.rate {
        Some(r) if !r.is_finite() || r <= 0.0 || r > 1_000_000.0 => {
            return Err(at.error(
                "readers.rate",
                format!("rate {r} is not a usable rate"),
                "give reads per second, greater than 0 and at most 1000000, or leave it out to follow every order",
            ));
        }
        other => other,
    };
    let concurrency = raw.concurrency.unwrap_or(16);
    if !(1..=10_000).contains(&concurrency) {
        return Err(at.error(
            "readers.concurrency",
            format!("{concurrency} is out of range"),
            "use 1 to 10000",
        ));
    }
    let texts: Vec<String> = match &raw.delays {
        Some(d) => d.clone(),
        None => DEFAULT_DELAYS.iter().map(|s| s.to_string()).collect(),
    };
    if texts.is_empty() || texts.len() > 16 {
        return Err(at.error(
            "readers.delays",
            format!("{} delays given", texts.len()),
            "give 1 to 16 delays after each write's answer, e.g. delays = [\"0ms\", \"10ms\", \"100ms\", \"1s\"]",
        ));
    }
    let mut delays = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let d = duration(t, &format!("readers.delays[{i}]"), at)?;
        if d > Duration::from_secs(600) {
            return Err(at.error(
                &format!("readers.delays[{i}]"),
                format!("`{t}` is longer than 10 minutes"),
                "use delays up to \"10m\"",
            ));
        }
        // Delays name result columns at millisecond resolution.
        let d = Duration::from_millis(d.as_millis() as u64);
        if delays.contains(&d) {
            return Err(at.error(
                &format!("readers.delays[{i}]"),
                format!("`{t}` is given twice (delays count in whole milliseconds)"),
                "list each delay once",
            ));
        }
        delays.push(d);
    }
    delays.sort_unstable();
    let unacknowledged = raw.unacknowledged.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&unacknowledged) {
        return Err(at.error(
            "readers.unacknowledged",
            format!("{unacknowledged} is not a fraction"),
            "give the share of failed or unknown orders to read too, 0.0 to 1.0",
        ));
    }
    let key = pattern.secondary_key_policy();
    Ok(Readers {
        rate,
        concurrency: concurrency as usize,
        delays,
        unacknowledged,
        primary: side(raw.primary.as_ref(), Side::Primary, target, key, at)?,
        secondary: side(raw.secondary.as_ref(), Side::Secondary, target, key, at)?,
    })
}

/// One side's read options, against what its store (and server) honours.
fn side(
    raw: Option<&RawReadSide>,
    side: Side,
    target: &Target,
    key: KeyPolicy,
    at: &Locator,
) -> Res<ReadConsistency> {
    let Some(raw) = raw else {
        return Ok(ReadConsistency::default());
    };
    let store = target.store_of(side);
    let server = target.server_of(side);
    let Some(reads) = &store.spec().reads else {
        return Err(no_reads(side, target, at));
    };
    let path = |field: &str| format!("readers.{side}.{field}");
    let not_honoured = |field: &str, what: &str| {
        at.error(
            &path(field),
            format!("`{field}` is not honoured on the {side} side: {what}"),
            "remove it",
        )
    };
    let mut out = ReadConsistency::default();
    if let Some(v) = &raw.consistency {
        if reads.consistency.is_empty() {
            return Err(not_honoured(
                "consistency",
                &format!("{store} reads one way only"),
            ));
        }
        let lower = v.to_ascii_lowercase();
        if !reads.consistency.contains(&lower.as_str()) {
            return Err(at.error(
                &path("consistency"),
                format!("`{v}` is not a read consistency of {store}"),
                format!("use one of {}", reads.consistency.join(", ")),
            ));
        }
        if side == Side::Secondary
            && key == KeyPolicy::Fresh
            && reads.not_through_index.contains(&lower.as_str())
        {
            return Err(at.error(
                &path("consistency"),
                format!("`{lower}` reads are impossible here: the secondary records have fresh event ids, so a reader finds them through an index on the order id, and {store} serves index reads eventually consistent only"),
                "remove it (or key the secondary records by the order: secondary_key = \"stable\" / relay.idempotent = true)",
            ));
        }
        out.consistency = Some(lower);
    }
    if let Some(v) = &raw.read_concern {
        let levels = reads
            .read_concern
            .iter()
            .find(|(s, _)| *s == server)
            .map_or(&[][..], |(_, l)| *l);
        if levels.is_empty() {
            return Err(not_honoured(
                "read_concern",
                &format!("{store} ({server}) has no read concern"),
            ));
        }
        if !levels.contains(&v.as_str()) {
            return Err(at.error(
                &path("read_concern"),
                format!("read concern `{v}` is not honoured by {server}"),
                format!(
                    "use {} here{}",
                    levels.join(", "),
                    if server == "mongodb" {
                        ""
                    } else {
                        " (this server accepts readConcern and ignores it: it keeps one copy of the data); a replica set (server = \"mongodb\") honours majority and linearizable"
                    }
                ),
            ));
        }
        out.read_concern = Some(v.clone());
    }
    if let Some(v) = &raw.read_preference {
        if reads.read_preference.is_empty() {
            return Err(not_honoured(
                "read_preference",
                &format!("{store} has no read preference"),
            ));
        }
        if !reads.read_preference.contains(&v.as_str()) {
            return Err(at.error(
                &path("read_preference"),
                format!("read preference `{v}` cannot be honoured: each side reaches one server through its own proxy (directConnection), so there is no other member to read from"),
                format!("use {}", reads.read_preference.join(", ")),
            ));
        }
        out.read_preference = Some(v.clone());
    }
    if let Some(v) = &raw.coordinator {
        if !reads.coordinator_servers.contains(&server) {
            return Err(at.error(
                &path("coordinator"),
                format!(
                    "choosing the node that coordinates the {side} side's reads needs several nodes, and the {side} side is on `{server}`"
                ),
                if reads.coordinator_servers.is_empty() {
                    format!("remove it ({store} has no such choice)")
                } else {
                    format!(
                        "remove it, or use a server with several nodes: [target] server = \"{}\"",
                        reads.coordinator_servers.join("\" or \"")
                    )
                },
            ));
        }
        let node = v
            .parse::<NodeId>()
            .ok()
            .filter(|n| n.index() <= CLUSTER_NODES);
        let Some(node) = node else {
            return Err(at.error(
                &path("coordinator"),
                format!("`{v}` is not a node of the cluster"),
                "use c1, c2 or c3",
            ));
        };
        out.coordinator = Some(node);
    }
    Ok(out)
}

/// A side whose store has no point reads (a Kafka topic) cannot be followed.
fn no_reads(side: Side, target: &Target, at: &Locator) -> super::super::error::ScenarioError {
    at.error(
        "readers",
        format!(
            "the {side} side is a {} topic, which has no point read by order",
            target.store_of(side)
        ),
        "remove [readers], or put the side in a table or collection (dynamodb, cassandra, mongodb)",
    )
}

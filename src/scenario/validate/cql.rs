//! `[target.<side>]` Cassandra settings of one connection: `consistency`,
//! `serial_consistency` and `coordinator`. Each is accepted only where it has an
//! effect: on a connection to Cassandra that the pattern sends that kind of
//! request through (a coordinator only on the cluster).

use super::super::error::Locator;
use super::super::raw::{RawScenario, RawSide};
use super::super::*;
use super::{Res, word};
use crate::pattern::{Pattern, PatternKind};
use crate::store::cassandra::{CLUSTER_NODES, CLUSTER_SERVER, cluster_proxy};

fn raw_side(raw: &RawScenario, side: Side) -> Option<&RawSide> {
    match side {
        Side::Primary => raw.target.primary.as_ref(),
        Side::Secondary => raw.target.secondary.as_ref(),
        Side::Relay => raw.target.relay.as_ref(),
    }
}

/// Whether the pattern sends requests through this connection (a logged batch
/// writes both rows through the primary's; only async patterns have a relay).
fn sends(side: Side, pattern: &Pattern) -> bool {
    match side {
        Side::Primary => true,
        Side::Secondary => pattern.kind == PatternKind::Naive || pattern.kind.is_async(),
        Side::Relay => pattern.kind.is_async(),
    }
}

/// Whether this connection issues lightweight transactions: the primary of
/// `naive` with `lwt_insert`, the outbox relay's claims and marks.
fn issues_lwt(side: Side, pattern: &Pattern) -> bool {
    match side {
        Side::Primary => pattern.kind == PatternKind::Naive && pattern.lwt_insert,
        Side::Relay => pattern.kind == PatternKind::Outbox,
        Side::Secondary => false,
    }
}

/// Validates each connection's settings into `target.cql`; a pinned coordinator
/// on the cluster also becomes the connection's contact point.
pub(super) fn cql(
    raw: &RawScenario,
    target: &mut Target,
    pattern: &Pattern,
    at: &Locator,
) -> Res<()> {
    for side in Side::ALL {
        let Some(r) = raw_side(raw, side) else {
            continue;
        };
        let given: Vec<&str> = [
            ("consistency", r.consistency.is_some()),
            ("serial_consistency", r.serial_consistency.is_some()),
            ("coordinator", r.coordinator.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        let Some(first) = given.first() else {
            continue;
        };
        let path = |field: &str| format!("target.{side}.{field}");
        let store = target.store_of(side);
        if store.name() != crate::store::cassandra::SPEC.name {
            return Err(at.error(
                &path(first),
                format!(
                    "`{first}` is a Cassandra connection setting, and the {side} side is on {store}"
                ),
                "remove it",
            ));
        }
        if !sends(side, pattern) {
            let why = if side == Side::Relay {
                format!("pattern `{}` has no relay", pattern.kind)
            } else {
                format!(
                    "pattern `{}` writes both rows in one batch through the primary connection: the {side} connection sends no request",
                    pattern.kind
                )
            };
            return Err(at.error(&path(first), why, "remove it; set it on [target.primary]"));
        }
        let mut settings = CqlSettings::default();
        if let Some(v) = &r.consistency {
            let lower = v.to_ascii_lowercase();
            if SERIAL_LEVELS.contains(&lower.as_str()) {
                return Err(at.error(
                    &path("consistency"),
                    format!("`{v}` is the consistency of an LWT's Paxos phase, not of a request"),
                    format!(
                        "set serial_consistency = \"{lower}\" (and consistency to a request level)"
                    ),
                ));
            }
            if !CONSISTENCY_LEVELS.contains(&lower.as_str()) {
                return Err(word(
                    at,
                    &path("consistency"),
                    v,
                    &format!("one of {}", CONSISTENCY_LEVELS.join(", ")),
                ));
            }
            settings.consistency = Some(lower);
        }
        if let Some(v) = &r.serial_consistency {
            let lower = v.to_ascii_lowercase();
            if !SERIAL_LEVELS.contains(&lower.as_str()) {
                return Err(word(
                    at,
                    &path("serial_consistency"),
                    v,
                    "\"serial\" or \"local_serial\"",
                ));
            }
            if !issues_lwt(side, pattern) {
                return Err(at.error(
                    &path("serial_consistency"),
                    format!(
                        "the {side} connection of pattern `{}` issues no lightweight transaction here",
                        pattern.kind
                    ),
                    "remove it; LWTs are sent by the primary of `naive` with lwt_insert = true and by the outbox relay ([target.relay])",
                ));
            }
            settings.serial_consistency = Some(lower);
        }
        if let Some(v) = &r.coordinator {
            if target.server_of(side) != CLUSTER_SERVER {
                return Err(at.error(
                    &path("coordinator"),
                    format!(
                        "choosing a coordinator needs several nodes, and the {side} side is on the single server `{}`",
                        target.server_of(side)
                    ),
                    format!(
                        "remove it, or use the three-node cluster: [target] server = \"{CLUSTER_SERVER}\""
                    ),
                ));
            }
            let node = v
                .parse::<NodeId>()
                .ok()
                .filter(|n| n.index() <= CLUSTER_NODES);
            let Some(node) = node else {
                return Err(word(
                    at,
                    &path("coordinator"),
                    v,
                    "a node of the cluster: c1, c2 or c3",
                ));
            };
            // The contact point too: the control connection then starts at it.
            let endpoint = SideEndpoint::Proxy(cluster_proxy(side, node));
            match side {
                Side::Primary => target.primary.endpoint = endpoint,
                Side::Secondary => target.secondary.endpoint = endpoint,
                Side::Relay => target.relay = endpoint,
            }
            settings.coordinator = Some(node);
        }
        target.cql.insert(side, settings);
    }
    Ok(())
}

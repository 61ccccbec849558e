//! `[target]`: where each side lives (store, server) and how each connection
//! reaches it (a proxy, a direct endpoint, or this process).

use super::super::error::Locator;
use super::super::raw::{RawScenario, RawSide};
use super::super::*;
use super::Res;

pub(super) fn target(raw: &RawScenario, at: &Locator) -> Res<Target> {
    let t = &raw.target;
    let names = || {
        crate::store::REGISTRY
            .iter()
            .map(|s| format!("\"{}\"", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let parse_store = |name: &str, path: &str| {
        StoreKind::parse(name).ok_or_else(|| {
            at.error(
                path,
                format!("unknown store `{name}`"),
                format!("use one of {}", names()),
            )
        })
    };
    let default_store = match &t.store {
        Some(name) => Some(parse_store(name, "target.store")?),
        None => None,
    };
    if t.relay
        .as_ref()
        .is_some_and(|r| r.store.is_some() || r.server.is_some())
    {
        return Err(at.error(
            "target.relay",
            "the relay reads the primary side's store; it has no store or server of its own",
            "remove `store`/`server` from [target.relay]; set proxy or endpoint only",
        ));
    }
    let side_target = |raw: &Option<RawSide>, side: Side, fallback: Option<StoreKind>| {
        let path = format!("target.{side}");
        let own = raw.as_ref().and_then(|r| r.store.as_deref());
        let store = match (own, fallback) {
            (Some(name), _) => parse_store(name, &format!("{path}.store"))?,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(at.error(
                    "target.store",
                    "missing",
                    format!(
                        "name the store: [target] store = \"dynamodb\" (or per side: [target.{side}] store = ...); one of {}",
                        names()
                    ),
                ));
            }
        };
        let spec = store.spec();
        let server_path;
        // A side's own server, else the table-wide one when it names this store.
        let server = match (raw.as_ref().and_then(|r| r.server.as_ref()), &t.server) {
            (Some(s), _) => {
                server_path = format!("{path}.server");
                s.clone()
            }
            (None, Some(s)) if Some(store) == default_store => {
                server_path = "target.server".to_string();
                s.clone()
            }
            _ => {
                server_path = String::new();
                spec.default_server().name.to_string()
            }
        };
        let Some(server_spec) = spec.server(&server) else {
            let known: Vec<String> = spec
                .servers
                .iter()
                .map(|s| format!("\"{}\"", s.name))
                .collect();
            return Err(at.error(
                &server_path,
                format!("unknown {store} server `{server}`"),
                format!("use one of {}", known.join(", ")),
            ));
        };
        let holds = match side {
            Side::Primary => spec.holds_primary,
            _ => spec.holds_secondary,
        };
        if !holds {
            return Err(at.error(
                &format!("{path}.store"),
                format!("{store} cannot hold the {side} side"),
                "put that side in a store that can (`dualwrite list` shows which)",
            ));
        }
        let endpoint = if server == crate::store::cassandra::CLUSTER_SERVER {
            cluster_endpoint(raw, &path, side, at)?
        } else {
            endpoint(raw, &path, server_spec.proxy_prefix, side, store, at)?
        };
        Ok(SideTarget {
            store,
            server,
            endpoint,
        })
    };
    let primary = side_target(&t.primary, Side::Primary, default_store)?;
    let secondary = side_target(
        &t.secondary,
        Side::Secondary,
        default_store.or(Some(primary.store)),
    )?;
    let relay_prefix = primary
        .store
        .spec()
        .server(&primary.server)
        .map_or("relay", |s| s.proxy_prefix);
    let relay = if primary.server == crate::store::cassandra::CLUSTER_SERVER {
        cluster_endpoint(&t.relay, "target.relay", Side::Relay, at)?
    } else {
        endpoint(
            &t.relay,
            "target.relay",
            relay_prefix,
            Side::Relay,
            primary.store,
            at,
        )?
    };
    let toxiproxy = t
        .toxiproxy
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8474".to_string());
    if !toxiproxy.starts_with("http://") {
        return Err(at.error(
            "target.toxiproxy",
            format!("`{toxiproxy}` is not an http:// URL"),
            "give the Toxiproxy API address, e.g. toxiproxy = \"http://127.0.0.1:8474\"",
        ));
    }
    Ok(Target {
        toxiproxy,
        primary,
        secondary,
        relay,
        cql: Default::default(),
    })
}

/// A side on the Cassandra cluster goes through the cluster's proxy in front of
/// each node for that side (scripts/PORTS.md): the first node's is the contact
/// point (`[target.<side>] coordinator` changes it), the others are reached
/// through the address translator. A proxy or endpoint of its own cannot apply.
fn cluster_endpoint(
    raw: &Option<RawSide>,
    path: &str,
    side: Side,
    at: &Locator,
) -> Res<SideEndpoint> {
    if raw
        .as_ref()
        .is_some_and(|r| r.proxy.is_some() || r.endpoint.is_some())
    {
        return Err(at.error(
            path,
            "the Cassandra cluster is reached through its own proxy in front of each node (cassandra_cluster_<side>_n1..n3)",
            "remove `proxy`/`endpoint`; to choose the node that coordinates this side's requests, set coordinator = \"c1\" (c1, c2 or c3)",
        ));
    }
    let first = NodeId::new(1).expect("node 1");
    Ok(SideEndpoint::Proxy(crate::store::cassandra::cluster_proxy(
        side, first,
    )))
}

/// How one connection reaches its store: a proxy (default `<prefix>_<side>`) or a
/// direct endpoint; the in-memory store lives in this process.
fn endpoint(
    raw: &Option<RawSide>,
    path: &str,
    proxy_prefix: &str,
    side: Side,
    store: StoreKind,
    at: &Locator,
) -> Res<SideEndpoint> {
    let (proxy, direct) = match raw {
        Some(r) => (r.proxy.as_deref(), r.endpoint.as_deref()),
        None => (None, None),
    };
    if store.name() == crate::store::memory::SPEC.name {
        if proxy.is_some() || direct.is_some() {
            return Err(at.error(
                path,
                "the in-memory store lives inside dualwrite: it has no proxy or endpoint",
                "remove `proxy`/`endpoint`; its faults (down, latency, timeout) are applied by the store itself",
            ));
        }
        return Ok(SideEndpoint::InProcess);
    }
    match (proxy, direct) {
        (Some(_), Some(_)) => Err(at.error(
            path,
            "both `proxy` and `endpoint` are set",
            "set `proxy` (faults possible on this side) or `endpoint` (direct), not both",
        )),
        (None, None) => Ok(SideEndpoint::Proxy(format!("{proxy_prefix}_{side}"))),
        (Some(p), None) if !p.is_empty() => Ok(SideEndpoint::Proxy(p.to_string())),
        (None, Some(e)) if !e.is_empty() => Ok(SideEndpoint::Direct(e.to_string())),
        _ => Err(at.error(
            path,
            "`proxy` or `endpoint` is empty",
            "set proxy = \"<prefix>_<side>\" (see scripts/PORTS.md) or endpoint = \"host:port\"",
        )),
    }
}

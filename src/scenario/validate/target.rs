//! `[target]`: where each side lives (store, server), how each connection
//! reaches it (a proxy, a direct endpoint, or this process), how it logs in and
//! encrypts (`connection.rs`), and which endpoints lie outside the loopback range.

use super::super::error::Locator;
use super::super::raw::{RawScenario, RawSide};
use super::super::*;
use super::Res;
use super::connection::{self, KEYS, Keys};

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
    let defaults = Keys::of_target(t);
    defaults.refuse_secrets("target", default_store, at)?;
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
        let own = Keys::of_side(raw.as_ref());
        own.refuse_secrets(&path, Some(store), at)?;
        let connection = connection::connection(&path, own, defaults, store, at)?;
        let endpoint = if server == crate::store::cassandra::CLUSTER_SERVER {
            cluster_endpoint(raw, &path, side, at)?
        } else {
            let default = match &connection.uri {
                Some(uri) => SideEndpoint::Direct(uri.clone()),
                None => SideEndpoint::Proxy(format!("{}_{side}", server_spec.proxy_prefix)),
            };
            endpoint(raw, &path, default, store, &connection, at)?
        };
        tls_reaches(raw, &path, &endpoint, &connection, store, at)?;
        Ok(SideTarget {
            store,
            server,
            endpoint,
            connection,
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
    let relay_keys = Keys::of_side(t.relay.as_ref());
    relay_keys.refuse_secrets("target.relay", Some(primary.store), at)?;
    // The relay reads the primary's store: the primary's settings, unless its own.
    let mut relay_defaults = defaults;
    relay_defaults.inherit(&Keys::of_side(t.primary.as_ref()));
    let relay_connection = connection::connection(
        "target.relay",
        relay_keys,
        relay_defaults,
        primary.store,
        at,
    )?;
    let relay = if primary.server == crate::store::cassandra::CLUSTER_SERVER {
        cluster_endpoint(&t.relay, "target.relay", Side::Relay, at)?
    } else {
        // By default the relay goes the primary's way: its store directly, or its
        // own proxy to it.
        let relay_default = match &primary.endpoint {
            SideEndpoint::Direct(e) => SideEndpoint::Direct(e.clone()),
            _ => SideEndpoint::Proxy(format!("{relay_prefix}_relay")),
        };
        endpoint(
            &t.relay,
            "target.relay",
            relay_default,
            primary.store,
            &relay_connection,
            at,
        )?
    };
    tls_reaches(
        &t.relay,
        "target.relay",
        &relay,
        &relay_connection,
        primary.store,
        at,
    )?;
    // A `[target]` key no side's store takes would be silently ignored.
    for key in KEYS {
        if defaults.has(key)
            && ![primary.store, secondary.store]
                .iter()
                .any(|s| s.spec().connection_options.contains(&key))
        {
            return Err(connection::not_taken("target", key, primary.store, at));
        }
    }
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
    let mut target = Target {
        toxiproxy,
        primary,
        secondary,
        relay,
        cql: Default::default(),
        relay_connection,
        remote: Vec::new(),
        allow_remote: t.allow_remote.unwrap_or(false),
    };
    target.remote = remote(&target, raw);
    Ok(target)
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

/// Every endpoint of the target outside the loopback range, from the text alone
/// (a name is never resolved: resolving is already network traffic). A proxy's
/// listen address is Toxiproxy's, on its own host.
fn remote(target: &Target, raw: &RawScenario) -> Vec<Remote> {
    let t = &raw.target;
    let mut out = Vec::new();
    let side_raw = |side: Side| match side {
        Side::Primary => t.primary.as_ref(),
        Side::Secondary => t.secondary.as_ref(),
        Side::Relay => t.relay.as_ref(),
    };
    for side in Side::ALL {
        let SideEndpoint::Direct(e) = target.endpoint(side) else {
            continue;
        };
        let raw = side_raw(side);
        let field = if raw.is_some_and(|r| r.endpoint.is_some()) {
            format!("target.{side}.endpoint")
        } else if raw.is_some_and(|r| r.uri.is_some()) {
            format!("target.{side}.uri")
        } else if side == Side::Relay && t.primary.as_ref().is_some_and(|r| r.uri.is_some()) {
            "target.primary.uri".to_string()
        } else {
            "target.uri".to_string()
        };
        for host in endpoint_hosts(e) {
            if !is_loopback_host(&host) {
                out.push(Remote {
                    field: field.clone(),
                    host,
                    side: Some(side),
                });
            }
        }
    }
    let host = host_of(&target.toxiproxy);
    if target.uses_toxiproxy() && !is_loopback_host(&host) {
        out.push(Remote {
            field: "target.toxiproxy".into(),
            host,
            side: None,
        });
    }
    out
}

/// The hosts a direct endpoint connects to: `host:port`, a URL, every host of a
/// MongoDB URI (an SRV name is resolved in DNS: remote), or DynamoDB's `aws`.
fn endpoint_hosts(endpoint: &str) -> Vec<String> {
    if endpoint == AWS_ENDPOINT {
        return vec!["the AWS endpoint of the region".into()];
    }
    match MongoUri::parse(endpoint) {
        Ok(uri) if uri.srv => vec![format!("{} (DNS SRV)", uri.hosts[0])],
        Ok(uri) => uri
            .hosts
            .iter()
            .map(|h| split_host_port(h).0.to_string())
            .collect(),
        Err(_) => vec![host_of(endpoint)],
    }
}

/// How one connection reaches its store: a proxy, a direct endpoint, or `default`
/// (see the callers); the in-memory store lives in this process.
fn endpoint(
    raw: &Option<RawSide>,
    path: &str,
    default: SideEndpoint,
    store: StoreKind,
    connection: &Connection,
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
    // A connection string says where the deployment is; a proxy or endpoint in
    // front of it reaches one server of it (directConnection), named by its host.
    if let Some(uri) = connection.uri.as_deref()
        && let Ok(parsed) = MongoUri::parse(uri)
    {
        let uri_field = if raw.as_ref().is_some_and(|r| r.uri.is_some()) {
            format!("{path}.uri")
        } else {
            "target.uri".to_string()
        };
        if direct.is_some_and(|e| e.starts_with("mongodb")) {
            return Err(at.error(
                &format!("{path}.endpoint"),
                "both `endpoint` and `uri` are connection strings",
                "keep one: `uri` for the deployment (with `proxy` or endpoint = \"host:port\" in front of it), or only `endpoint`",
            ));
        }
        if (proxy.is_some() || direct.is_some()) && (parsed.srv || parsed.hosts.len() > 1) {
            return Err(at.error(
                &uri_field,
                "a proxy or endpoint in front of the deployment reaches one server, but this connection string names several (or an SRV record)",
                "write the one server the proxy forwards to: uri = \"mongodb://user@db1.example.com:27017/?tls=true\"",
            ));
        }
    }
    match (proxy, direct) {
        (Some(_), Some(_)) => Err(at.error(
            path,
            "both `proxy` and `endpoint` are set",
            "set `proxy` (faults possible on this side) or `endpoint` (direct), not both",
        )),
        (None, None) => Ok(default),
        (None, Some(e)) if store.name() == "dynamodb" && e.contains("://") && !e.starts_with("http://") && !e.starts_with("https://") => Err(at.error(
            &format!("{path}.endpoint"),
            format!("`{}` is not an http:// or https:// URL", host_of(e)),
            "write endpoint = \"https://dynamodb.eu-west-1.amazonaws.com\", \"host:port\", or \"aws\" for the region's own endpoint",
        )),
        (Some(p), None) if !p.is_empty() => Ok(SideEndpoint::Proxy(p.to_string())),
        (None, Some(e)) if !e.is_empty() => Ok(SideEndpoint::Direct(e.to_string())),
        _ => Err(at.error(
            path,
            "`proxy` or `endpoint` is empty",
            "set proxy = \"<prefix>_<side>\" (see scripts/PORTS.md) or endpoint = \"host:port\"",
        )),
    }
}

/// TLS settings that this way of reaching the server would ignore are refused:
/// a plain `http://` DynamoDB endpoint, and a server name where the client
/// connects by the name it already has (DynamoDB's `aws`, a MongoDB connection
/// string used directly).
fn tls_reaches(
    raw: &Option<RawSide>,
    path: &str,
    endpoint: &SideEndpoint,
    connection: &Connection,
    store: StoreKind,
    at: &Locator,
) -> Res<()> {
    let Some(tls) = &connection.tls else {
        return Ok(());
    };
    let SideEndpoint::Direct(e) = endpoint else {
        return Ok(());
    };
    let own = |key: &str| {
        let written = raw.as_ref().is_some_and(|r| match key {
            "tls_server_name" => r.tls_server_name.is_some(),
            _ => r.endpoint.is_some(),
        });
        if written {
            format!("{path}.{key}")
        } else {
            format!("target.{key}")
        }
    };
    if store.name() == "dynamodb" && e.starts_with("http://") {
        return Err(at.error(
            &own("endpoint"),
            "TLS is set for a plain http:// endpoint",
            "write the endpoint as https://..., or remove the tls keys",
        ));
    }
    let by_name = (store.name() == "dynamodb" && e == AWS_ENDPOINT)
        || (store.name() == "mongodb" && e.starts_with("mongodb"));
    if by_name && tls.server_name.is_some() {
        return Err(at.error(
            &own("tls_server_name"),
            "this side connects by the names in its endpoint, so their certificates are checked for those names",
            "remove tls_server_name; it is for a proxy (or a host:port endpoint) in front of the server",
        ));
    }
    Ok(())
}

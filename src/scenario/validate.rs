//! Raw scenario -> validated [`Scenario`]: types, ranges, defaults, and which
//! pattern, fault and option applies to which store.

use std::time::Duration;

use super::error::{Locator, ScenarioError};
use super::raw::{RawFault, RawLimit, RawPattern, RawScenario, RawSide};
use super::*;
use crate::pattern::{
    KeyPolicy, OnConflict, OnSecondaryFailure, Partitioning, Pattern, PatternKind, RelayMode,
};
use crate::store::StoreSpec;

type Res<T> = Result<T, ScenarioError>;

pub(super) fn validate(raw: RawScenario, at: &Locator) -> Res<Scenario> {
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
    let target = target(&raw, at)?;
    let pattern = pattern(&raw.pattern, &target, at)?;
    let workload = workload(&raw, at)?;
    let run = workload.planned_duration();
    let mut faults = Vec::new();
    for (i, f) in raw.faults.iter().enumerate() {
        faults.push(fault(i, f, &target, &pattern, run, at)?);
    }
    let check = match &raw.check {
        None => Check {
            settle: default_settle(&pattern),
            fields: default_fields(),
        },
        Some(c) => Check {
            settle: match &c.settle {
                Some(s) => duration(s, "check.settle", at)?,
                None => default_settle(&pattern),
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
        },
    };
    let namespace = NamespaceSpec {
        prefix: raw
            .namespace
            .as_ref()
            .and_then(|n| n.prefix.clone())
            .unwrap_or_else(|| "dw".into()),
        keep: raw.namespace.as_ref().and_then(|n| n.keep).unwrap_or(false),
    };
    if namespace.prefix.is_empty()
        || namespace.prefix.len() > 12
        || !namespace
            .prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        || !namespace
            .prefix
            .starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Err(at.error(
            "namespace.prefix",
            format!(
                "`{}` cannot prefix table, keyspace and database names",
                namespace.prefix
            ),
            "use 1 to 12 lowercase letters or digits, starting with a letter, e.g. prefix = \"dw\"",
        ));
    }
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
        workload,
        faults,
        check,
        expect,
        warnings,
    })
}

fn default_settle(pattern: &Pattern) -> Duration {
    if pattern.kind.is_async() {
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

pub(super) fn duration(text: &str, path: &str, at: &Locator) -> Res<Duration> {
    parse_duration(text).ok_or_else(|| {
        at.error(
            path,
            format!("`{text}` is not a duration"),
            "write a number and a unit: \"250ms\", \"5s\", \"2m\"",
        )
    })
}

fn target(raw: &RawScenario, at: &Locator) -> Res<Target> {
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
        let endpoint = endpoint(raw, &path, server_spec.proxy_prefix, side, store, at)?;
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
    let relay = endpoint(
        &t.relay,
        "target.relay",
        relay_prefix,
        Side::Relay,
        primary.store,
        at,
    )?;
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
    })
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

/// The options a pattern honours with these sides: the pattern engine's own, the
/// primary store's for this pattern, and (for patterns whose secondary is written
/// by the engine or a relay) the secondary store's. `Err` when the pattern cannot
/// run here at all.
pub(crate) fn honoured_options(
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
        all.extend_from_slice(secondary);
    } else if kind.is_async() {
        // A relay keys what it publishes by `relay.idempotent`, never `secondary_key`.
        all.extend(secondary.iter().filter(|o| **o != "secondary_key"));
    }
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

fn pattern(raw: &RawPattern, target: &Target, at: &Locator) -> Res<Pattern> {
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
    let given: [(&str, bool); 19] = [
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
            let why = crate::pattern::why_not_honoured(name, kind);
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
        const LEVELS: [&str; 6] = ["one", "two", "quorum", "all", "local_quorum", "local_one"];
        let lower = v.to_ascii_lowercase();
        if !LEVELS.contains(&lower.as_str()) {
            return Err(word(
                at,
                "pattern.consistency",
                v,
                "one of one, two, quorum, all, local_quorum, local_one",
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
    }
    Ok(p)
}

fn word(at: &Locator, path: &str, got: &str, expected: &str) -> ScenarioError {
    at.error(
        path,
        format!("`{got}` is not a valid value"),
        format!("use {expected}"),
    )
}

fn workload(raw: &RawScenario, at: &Locator) -> Res<Workload> {
    let w = &raw.workload;
    if !w.rate.is_finite() || w.rate <= 0.0 || w.rate > 1_000_000.0 {
        return Err(at.error(
            "workload.rate",
            format!("rate {} is not a usable rate", w.rate),
            "give operations per second, greater than 0 and at most 1000000, e.g. rate = 100",
        ));
    }
    let limit = match (&w.duration, w.ops) {
        (Some(_), Some(_)) => {
            return Err(at.error(
                "workload.ops",
                "both `duration` and `ops` are set",
                "set one: duration = \"20s\" or ops = 2000",
            ));
        }
        (None, None) => {
            return Err(at.error(
                "workload",
                "neither `duration` nor `ops` is set",
                "add duration = \"20s\" or ops = 2000",
            ));
        }
        (Some(d), None) => {
            let d = duration(d, "workload.duration", at)?;
            if d.is_zero() || d > Duration::from_secs(7 * 24 * 3600) {
                return Err(at.error(
                    "workload.duration",
                    "must be above 0 and at most a week",
                    "e.g. duration = \"20s\"",
                ));
            }
            Limit::Duration(d)
        }
        (None, Some(n)) => {
            if n <= 0 || n > 1_000_000_000 {
                return Err(at.error(
                    "workload.ops",
                    format!("{n} operations is out of range"),
                    "use 1 to 1000000000",
                ));
            }
            Limit::Ops(n as u64)
        }
    };
    let concurrency = w.concurrency.unwrap_or(64);
    if !(1..=10_000).contains(&concurrency) {
        return Err(at.error(
            "workload.concurrency",
            format!("{concurrency} is out of range"),
            "use 1 to 10000",
        ));
    }
    let customers = w.customers.unwrap_or(1000);
    if customers < 1 {
        return Err(at.error(
            "workload.customers",
            "must be at least 1",
            "e.g. customers = 1000",
        ));
    }
    let payload_bytes = w.payload_bytes.unwrap_or(64);
    if !(0..=65_536).contains(&payload_bytes) {
        return Err(at.error(
            "workload.payload_bytes",
            format!("{payload_bytes} is out of range"),
            "use 0 to 65536",
        ));
    }
    let op_timeout = match &w.op_timeout {
        Some(t) => duration(t, "workload.op_timeout", at)?,
        None => Duration::from_secs(2),
    };
    if op_timeout < Duration::from_millis(10) || op_timeout > Duration::from_secs(300) {
        return Err(at.error(
            "workload.op_timeout",
            "must be between 10ms and 300s",
            "e.g. op_timeout = \"2s\"",
        ));
    }
    Ok(Workload {
        rate: w.rate,
        limit,
        concurrency: concurrency as usize,
        customers: customers as u64,
        payload_bytes: payload_bytes as usize,
        op_timeout,
    })
}

fn fault(
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

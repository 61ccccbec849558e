//! Scenario files: parse (raw serde mirror, unknown keys rejected), then validate into
//! the typed [`Scenario`] that the rest of the tool uses. Only validated types leave
//! this module; every error names file, line, column, field and the fix.

pub mod app;
mod connection;
mod error;
mod faults;
mod raw;
mod validate;

pub use connection::{
    AWS_ENDPOINT, Connection, MongoUri, Remote, TlsSettings, default_var, host_of,
    is_loopback_host, split_host_port,
};
pub use error::ScenarioError;
pub(crate) use error::line_col;
pub use faults::{Direction, FaultKind, FaultSpec, InjectWhen, NodeCut};

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::pattern::Pattern;

/// A validated scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub file: PathBuf,
    #[serde(skip)]
    pub source: String,
    pub sha256: String,
    pub target: Target,
    pub namespace: NamespaceSpec,
    /// dualwrite's own writer; with `[app]` a stand-in (`naive`, no options) that
    /// only the stores read, the service being the writer.
    pub pattern: Pattern,
    /// The user's service as the writer (`[app]`).
    pub app: Option<app::App>,
    pub workload: Workload,
    pub faults: Vec<FaultSpec>,
    pub check: Check,
    pub expect: Expect,
    /// `[readers]`: reads of both sides alongside the writes (`crate::reader`).
    pub readers: Option<Readers>,
    /// Valid, but worth knowing before a run (printed by `validate` and `run`,
    /// kept in the result).
    pub warnings: Vec<String>,
}

pub use crate::fault::cluster::NodeId;
pub use crate::store::spec::StoreKind;

impl Scenario {
    /// Whether the relay connection is used: by dualwrite's relay (async
    /// patterns) or by a process of `[app]` (`{relay}` in its templates).
    pub fn uses_relay_connection(&self) -> bool {
        self.pattern.kind.is_async()
            || self
                .app
                .as_ref()
                .is_some_and(app::App::uses_relay_connection)
    }

    /// Whether the secondary side is written after the operation returns.
    pub fn is_async(&self) -> bool {
        self.app
            .as_ref()
            .map_or(self.pattern.kind.is_async(), |a| a.async_secondary)
    }

    /// The pattern's name for results: `app` when the service is the writer.
    pub fn pattern_name(&self) -> &'static str {
        if self.app.is_some() {
            "app"
        } else {
            self.pattern.kind.name()
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Primary,
    Secondary,
    Relay,
}

impl Side {
    pub const ALL: [Side; 3] = [Side::Primary, Side::Secondary, Side::Relay];

    pub fn name(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Secondary => "secondary",
            Side::Relay => "relay",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one connection reaches its store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SideEndpoint {
    /// Through a Toxiproxy proxy of this name; its listen address is asked at run time.
    Proxy(String),
    /// Directly (`host:port` or a URL); network faults cannot target this side.
    Direct(String),
    /// Inside this process (the in-memory store): its faults are the store's own.
    InProcess,
}

/// Where one side of the data lives.
#[derive(Debug, Clone, Serialize)]
pub struct SideTarget {
    pub store: StoreKind,
    /// The server product behind the endpoint (`moto`, `ferretdb`, `mongoeco`, ...).
    pub server: String,
    pub endpoint: SideEndpoint,
    /// How this side's connection logs in and encrypts.
    pub connection: Connection,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub toxiproxy: String,
    pub primary: SideTarget,
    pub secondary: SideTarget,
    /// The relay's connection to the primary side's store (async patterns).
    pub relay: SideEndpoint,
    /// Cassandra settings of each connection that has some (`[target.<side>]`
    /// consistency, serial_consistency, coordinator); absent = the defaults.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cql: BTreeMap<Side, CqlSettings>,
    pub relay_connection: Connection,
    /// Every endpoint outside the loopback range (read from the text, never resolved).
    pub remote: Vec<Remote>,
    /// Whether those are allowed (`allow_remote = true` or `--allow-remote`).
    pub allow_remote: bool,
}

/// Consistency levels a Cassandra connection can use for its requests.
pub const CONSISTENCY_LEVELS: [&str; 9] = [
    "any",
    "one",
    "two",
    "three",
    "quorum",
    "all",
    "local_quorum",
    "each_quorum",
    "local_one",
];

/// Serial consistency levels of the Paxos phase of an LWT.
pub const SERIAL_LEVELS: [&str; 2] = ["serial", "local_serial"];

/// One Cassandra connection's own settings (validated: only where they matter).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CqlSettings {
    /// Consistency level of its requests; `None` = `pattern.consistency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Serial consistency of its LWTs; `None` = the driver's (`local_serial`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_consistency: Option<String>,
    /// The cluster node that coordinates every request of this connection (a
    /// node-pinned load-balancing policy); `None` = the driver picks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<NodeId>,
}

impl Target {
    pub fn endpoint(&self, side: Side) -> &SideEndpoint {
        match side {
            Side::Primary => &self.primary.endpoint,
            Side::Secondary => &self.secondary.endpoint,
            Side::Relay => &self.relay,
        }
    }

    /// The store a connection reaches (the relay reads the primary's store).
    pub fn connection(&self, side: Side) -> &Connection {
        match side {
            Side::Primary => &self.primary.connection,
            Side::Secondary => &self.secondary.connection,
            Side::Relay => &self.relay_connection,
        }
    }

    pub fn store_of(&self, side: Side) -> StoreKind {
        match side {
            Side::Secondary => self.secondary.store,
            _ => self.primary.store,
        }
    }

    pub fn server_of(&self, side: Side) -> &str {
        match side {
            Side::Secondary => &self.secondary.server,
            _ => &self.primary.server,
        }
    }

    /// Both sides in one store (one server): what atomic patterns need.
    pub fn shared_store(&self) -> bool {
        self.primary.store == self.secondary.store && self.primary.server == self.secondary.server
    }

    /// `dynamodb`, or `dynamodb+mongodb` when the sides live in two stores.
    pub fn stores_label(&self) -> String {
        if self.primary.store == self.secondary.store {
            self.primary.store.name().to_string()
        } else {
            format!("{}+{}", self.primary.store, self.secondary.store)
        }
    }

    /// `moto`, or `moto+ferretdb`.
    pub fn servers_label(&self) -> String {
        if self.primary.server == self.secondary.server {
            self.primary.server.clone()
        } else {
            format!("{}+{}", self.primary.server, self.secondary.server)
        }
    }

    /// A connection's Cassandra settings (defaults when it has none).
    pub fn cql(&self, side: Side) -> CqlSettings {
        self.cql.get(&side).cloned().unwrap_or_default()
    }

    /// Whether a side lives on the local Cassandra cluster (several nodes).
    pub fn on_cluster(&self, side: Side) -> bool {
        self.store_of(side).name() == crate::store::cassandra::SPEC.name
            && self.server_of(side) == crate::store::cassandra::CLUSTER_SERVER
    }

    /// Whether any side lives on the Cassandra cluster.
    pub fn uses_cluster(&self) -> bool {
        self.on_cluster(Side::Primary) || self.on_cluster(Side::Secondary)
    }

    /// The Toxiproxy proxies of a connection: its own, or on the cluster the
    /// side's proxy in front of each node; none when it has no proxy.
    pub fn proxies(&self, side: Side) -> Vec<String> {
        if self.on_cluster(side) {
            return crate::store::cassandra::cluster_proxies(side);
        }
        match self.endpoint(side) {
            SideEndpoint::Proxy(p) => vec![p.clone()],
            _ => Vec::new(),
        }
    }

    /// Whether any connection goes through Toxiproxy.
    pub fn uses_toxiproxy(&self) -> bool {
        Side::ALL
            .iter()
            .any(|s| matches!(self.endpoint(*s), SideEndpoint::Proxy(_)))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NamespaceSpec {
    pub prefix: String,
    /// Keep the run's tables/collections after the check (default: drop them).
    pub keep: bool,
    /// A fixed namespace instead of a new `<prefix>_<time>_<hex>` per run.
    pub name: Option<String>,
    /// Run in a namespace that already exists (else such a namespace is refused).
    /// Nothing that existed before the run is dropped.
    pub reuse: bool,
}

impl NamespaceSpec {
    /// The namespace of one run: the fixed name, or `generated` (new per run).
    pub fn for_run(&self, generated: &str) -> String {
        self.name.clone().unwrap_or_else(|| generated.to_string())
    }
}

/// What the command line adds to a scenario file.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// `--allow-remote`: endpoints outside the loopback range are allowed.
    pub allow_remote: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    #[serde(with = "duration_ms")]
    Duration(Duration),
    Ops(u64),
}

#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Target rate in logical operations per second.
    pub rate: f64,
    pub limit: Limit,
    pub concurrency: usize,
    pub customers: u64,
    pub payload_bytes: usize,
    #[serde(with = "duration_ms")]
    pub op_timeout: Duration,
}

impl Workload {
    /// Planned operation count.
    pub fn planned_ops(&self) -> u64 {
        match self.limit {
            Limit::Ops(n) => n,
            Limit::Duration(d) => (d.as_secs_f64() * self.rate).floor() as u64,
        }
    }

    /// Planned load duration.
    pub fn planned_duration(&self) -> Duration {
        match self.limit {
            Limit::Duration(d) => d,
            Limit::Ops(n) => Duration::from_secs_f64(n as f64 / self.rate),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    CustomerId,
    AmountCents,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::CustomerId => "customer_id",
            Field::AmountCents => "amount_cents",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    #[serde(with = "duration_ms")]
    pub settle: Duration,
    pub fields: Vec<Field>,
}

/// Maximum allowed count per checker category; `None` = any number allowed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Expect {
    pub orphans: Option<u64>,
    pub ghosts: Option<u64>,
    pub duplicates: Option<u64>,
    pub mismatches: Option<u64>,
    pub lost_acks: Option<u64>,
    pub strays: Option<u64>,
    pub divergence: Option<u64>,
    /// Largest fraction of indeterminate operations allowed (none = any, with a
    /// warning above `verdict::WARN_INDETERMINATE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indeterminate: Option<f64>,
    /// Whether some operation must succeed after the last fault window ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<bool>,
    /// Most reads allowed to see one side of an order without the other
    /// (`[readers]`; none = any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_reads: Option<u64>,
    /// Most anomalous reads allowed (read-your-write violations, visible ghosts,
    /// non-monotonic reads, visible records of failed writes; none = any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_anomalies: Option<u64>,
}

impl Expect {
    /// Zero allowed everywhere: the default without an `[expect]` table.
    pub fn zero() -> Self {
        Self {
            orphans: Some(0),
            ghosts: Some(0),
            duplicates: Some(0),
            mismatches: Some(0),
            lost_acks: Some(0),
            strays: Some(0),
            divergence: Some(0),
            indeterminate: None,
            recovery: None,
            partial_reads: None,
            read_anomalies: None,
        }
    }
}

/// `[readers]`: a read workload beside the writes. Each order a reader follows
/// is read on both sides at each delay after its write completed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readers {
    /// Reads per second the readers may issue (the budget that decides which
    /// orders are followed); `None` = follow every order.
    pub rate: Option<f64>,
    /// Reads in flight at most.
    pub concurrency: usize,
    /// After each write's answer, ascending.
    #[serde(serialize_with = "durations_ms")]
    pub delays: Vec<Duration>,
    /// Share of the orders whose write failed or is unknown that are followed too.
    pub unacknowledged: f64,
    pub primary: ReadConsistency,
    pub secondary: ReadConsistency,
}

/// How one side is read; each field only where the side's store honours it
/// (checked at validation against the store registry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReadConsistency {
    /// DynamoDB `eventually` / `strong`; a Cassandra level (`one`, `quorum`, `all`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// MongoDB read concern level (`local`, `majority`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_concern: Option<String>,
    /// MongoDB read preference (`primary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_preference: Option<String>,
    /// The Cassandra cluster: the node that coordinates this side's reads
    /// (otherwise the side's own coordinator, as its writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<NodeId>,
}

impl ReadConsistency {
    /// `consistency one, coordinator c3`, or the store's default.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            self.consistency
                .as_ref()
                .map(|v| format!("consistency {v}")),
            self.read_concern
                .as_ref()
                .map(|v| format!("read concern {v}")),
            self.read_preference
                .as_ref()
                .map(|v| format!("read preference {v}")),
            self.coordinator.map(|n| format!("coordinator {n}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "the store's default".to_string()
        } else {
            parts.join(", ")
        }
    }
}

fn durations_ms<S: serde::Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(d.iter().map(|d| d.as_millis() as u64))
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    load_with(path, LoadOptions::default())
}

/// Reads and validates a scenario file with the command line's additions.
pub fn load_with(path: &Path, opts: LoadOptions) -> Result<Scenario, ScenarioError> {
    let source = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        field: "-".into(),
        problem: format!("cannot read the file: {e}"),
        fix: "check the path; scenarios live in scenarios/*.toml".into(),
    })?;
    parse_with(path, &source, opts)
}

/// Parses and validates scenario text (`path` is used in messages, and relative
/// file names in it are read from its directory).
pub fn parse(path: &Path, source: &str) -> Result<Scenario, ScenarioError> {
    parse_with(path, source, LoadOptions::default())
}

pub fn parse_with(path: &Path, source: &str, opts: LoadOptions) -> Result<Scenario, ScenarioError> {
    let locator = error::Locator::new(path, source);
    let raw: raw::RawScenario = toml::from_str(source).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let message = e.message().trim().to_string();
        let field = if message.contains("unknown field") || message.contains("missing field") {
            field_from_message(&message)
        } else {
            key_at(source, offset)
        }
        .unwrap_or_else(|| "-".to_string());
        let fix = if message.starts_with("unknown field") {
            "remove or rename the key; `dualwrite validate` lists the accepted keys in the message above"
        } else if message.contains("missing field") {
            "add the field; see the scenario reference in README.md"
        } else if message.contains("invalid type") {
            "use the type the message names (strings in quotes, numbers bare, durations as \"5s\")"
        } else {
            "fix the TOML syntax at this position"
        };
        locator.error_at(offset, &field, &message, fix)
    })?;
    let mut scenario = validate::validate(raw, &locator, opts)?;
    scenario.file = path.to_path_buf();
    scenario.source = source.to_string();
    scenario.sha256 = sha256_hex(source.as_bytes());
    Ok(scenario)
}

fn field_from_message(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

/// The dotted key written on the line at `offset` (`workload.rate`), for errors the
/// TOML parser reports by position only.
fn key_at(source: &str, offset: usize) -> Option<String> {
    let offset = offset.min(source.len());
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = source[line_start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = source[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `250ms`, `5s`, `2m`, `1h`, `1.5s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    if seconds > 1e9 {
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Serialises durations as integer milliseconds in results.
pub mod duration_ms {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

pub mod opt_duration_ms {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_app;

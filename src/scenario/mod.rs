//! Scenario files: parse (raw serde mirror, unknown keys rejected), then validate into
//! the typed [`Scenario`] that the rest of the tool uses. Only validated types leave
//! this module; every error names file, line, column, field and the fix.

mod connection;
mod error;
mod raw;
mod validate;

pub use connection::{
    AWS_ENDPOINT, Connection, MongoUri, Remote, TlsSettings, default_var, host_of,
    is_loopback_host, split_host_port,
};
pub use error::ScenarioError;

use serde::Serialize;
use sha2::{Digest, Sha256};
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
    pub pattern: Pattern,
    pub workload: Workload,
    pub faults: Vec<FaultSpec>,
    pub check: Check,
    pub expect: Expect,
    /// Valid, but worth knowing before a run (printed by `validate` and `run`,
    /// kept in the result).
    pub warnings: Vec<String>,
}

pub use crate::store::spec::StoreKind;

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
    pub relay_connection: Connection,
    /// Every endpoint outside the loopback range (read from the text, never resolved).
    pub remote: Vec<Remote>,
    /// Whether those are allowed (`allow_remote = true` or `--allow-remote`).
    pub allow_remote: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Upstream,
    Downstream,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }
}

/// Whether an SDK-injected error is raised before the request is sent or after the
/// server applied it (an ambiguous write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InjectWhen {
    Before,
    After,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    Latency {
        latency_ms: u64,
        jitter_ms: u64,
    },
    Bandwidth {
        rate_kbps: u64,
    },
    SlowClose {
        delay_ms: u64,
    },
    Timeout {
        timeout_ms: u64,
    },
    ResetPeer {
        timeout_ms: u64,
    },
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay_us: u64,
    },
    LimitData {
        bytes: u64,
    },
    /// The proxy is disabled: connections refused, open ones closed.
    Down,
    /// The relay task is killed and restarted after `duration`.
    RelayCrash,
    /// Errors injected in the DynamoDB SDK for one side.
    SdkError {
        error: String,
        rate: f64,
        when: InjectWhen,
    },
    /// MongoDB `configureFailPoint failCommand`.
    FailCommand {
        commands: Vec<String>,
        error_code: i32,
        error_labels: Vec<String>,
        close_connection: bool,
        times: Option<u32>,
    },
    /// SIGKILL of a locally managed server, restarted after `duration`.
    ProcessKill {
        server: String,
    },
    /// SIGSTOP of a locally managed server, SIGCONT after `duration`.
    ProcessPause {
        server: String,
    },
}

impl FaultKind {
    pub const NAMES: [&'static str; 13] = [
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "down",
        "relay-crash",
        "sdk-error",
        "fail-command",
        "process-kill",
        "process-pause",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Latency { .. } => "latency",
            FaultKind::Bandwidth { .. } => "bandwidth",
            FaultKind::SlowClose { .. } => "slow_close",
            FaultKind::Timeout { .. } => "timeout",
            FaultKind::ResetPeer { .. } => "reset_peer",
            FaultKind::Slicer { .. } => "slicer",
            FaultKind::LimitData { .. } => "limit_data",
            FaultKind::Down => "down",
            FaultKind::RelayCrash => "relay-crash",
            FaultKind::SdkError { .. } => "sdk-error",
            FaultKind::FailCommand { .. } => "fail-command",
            FaultKind::ProcessKill { .. } => "process-kill",
            FaultKind::ProcessPause { .. } => "process-pause",
        }
    }

    /// The server a process fault acts on (it has no side).
    pub fn server(&self) -> Option<&str> {
        match self {
            FaultKind::ProcessKill { server } | FaultKind::ProcessPause { server } => Some(server),
            _ => None,
        }
    }

    /// Toxiproxy toxics (and `down`) act on a proxy; the others have their own source.
    pub fn is_network(&self) -> bool {
        !matches!(
            self,
            FaultKind::RelayCrash
                | FaultKind::SdkError { .. }
                | FaultKind::FailCommand { .. }
                | FaultKind::ProcessKill { .. }
                | FaultKind::ProcessPause { .. }
        )
    }
}

/// One entry of the fault schedule (possibly repeating).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSpec {
    /// Position in the file's `[[faults]]` list.
    pub index: usize,
    #[serde(flatten)]
    pub kind: FaultKind,
    pub side: Side,
    pub direction: Direction,
    pub toxicity: f32,
    #[serde(with = "duration_ms")]
    pub start: Duration,
    #[serde(with = "duration_ms")]
    pub duration: Duration,
    #[serde(with = "opt_duration_ms")]
    pub every: Option<Duration>,
}

impl FaultSpec {
    /// The planned windows `[start, end)` within a load of `run` length.
    pub fn windows(&self, run: Duration) -> Vec<(Duration, Duration)> {
        let mut windows = Vec::new();
        let mut start = self.start;
        while start < run {
            windows.push((start, start + self.duration));
            match self.every {
                Some(every) if !every.is_zero() => start += every,
                _ => break,
            }
        }
        windows
    }

    /// Short form for tables: `timeout@secondary/upstream 5s+3s`. The direction is
    /// spelled out: `latency@primary/down` read like a `down` fault.
    pub fn short(&self) -> String {
        let dir = if self.kind.is_network() {
            match self.direction {
                Direction::Upstream => "/upstream",
                Direction::Downstream => "/downstream",
            }
        } else {
            ""
        };
        let every = self
            .every
            .map(|e| format!(" every {}", fmt_duration(e)))
            .unwrap_or_default();
        let target = self
            .kind
            .server()
            .map_or_else(|| self.side.to_string(), str::to_string);
        format!(
            "{}@{}{} {}+{}{}",
            self.kind.name(),
            target,
            dir,
            fmt_duration(self.start),
            fmt_duration(self.duration),
            every
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
        }
    }
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

//! The raw mirror of a scenario file: exactly what the TOML says, unknown keys rejected.
//! Only `scenario::validate` reads these types; everything else uses the validated ones.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: String,
    pub description: Option<String>,
    pub seed: Option<u64>,
    pub target: RawTarget,
    pub namespace: Option<RawNamespace>,
    /// Required, except with `[app]` (the service is the writer).
    pub pattern: Option<RawPattern>,
    pub app: Option<RawApp>,
    pub workload: RawWorkload,
    #[serde(default)]
    pub faults: Vec<RawFault>,
    pub check: Option<RawCheck>,
    pub expect: Option<RawExpect>,
    pub readers: Option<RawReaders>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub store: Option<String>,
    pub server: Option<String>,
    pub toxiproxy: Option<String>,
    /// Endpoints outside the loopback range are refused unless this (or `--allow-remote`).
    pub allow_remote: Option<bool>,
    // How the connection logs in and encrypts (validate/connection.rs). Secrets are
    // never read from here: the `password`-like keys exist only to be rejected with
    // the fix, whatever their type.
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub tls: Option<bool>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub tls_server_name: Option<String>,
    pub uri: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub password: Option<toml::Value>,
    pub access_key_id: Option<toml::Value>,
    pub secret_access_key: Option<toml::Value>,
    pub session_token: Option<toml::Value>,
    pub primary: Option<RawSide>,
    pub secondary: Option<RawSide>,
    pub relay: Option<RawSide>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSide {
    pub store: Option<String>,
    pub server: Option<String>,
    pub proxy: Option<String>,
    pub endpoint: Option<String>,
    // Cassandra: this connection's consistency levels and coordinator node.
    pub consistency: Option<String>,
    pub serial_consistency: Option<String>,
    pub coordinator: Option<String>,
    // How the connection logs in and encrypts (validate/connection.rs). Secrets are
    // never read from here: the `password`-like keys exist only to be rejected with
    // the fix, whatever their type.
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub tls: Option<bool>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub tls_server_name: Option<String>,
    pub uri: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub password: Option<toml::Value>,
    pub access_key_id: Option<toml::Value>,
    pub secret_access_key: Option<toml::Value>,
    pub session_token: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNamespace {
    pub prefix: Option<String>,
    pub keep: Option<bool>,
    pub name: Option<String>,
    pub reuse: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPattern {
    pub name: String,
    pub on_secondary_failure: Option<String>,
    pub retries: Option<i64>,
    pub backoff: Option<String>,
    pub idempotency_token: Option<String>,
    pub secondary_key: Option<String>,
    pub on_conflict: Option<String>,
    pub conditions: Option<bool>,
    pub partitioning: Option<String>,
    pub consistency: Option<String>,
    pub lwt_insert: Option<bool>,
    pub rearm: Option<bool>,
    pub idempotence: Option<bool>,
    pub relay: Option<RawRelay>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelay {
    pub idempotent: Option<bool>,
    pub workers: Option<i64>,
    pub poll_interval: Option<String>,
    pub mode: Option<String>,
    pub crash_every: Option<i64>,
    pub crash_probability: Option<f64>,
    pub claim_ttl: Option<String>,
    pub delivery: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkload {
    pub rate: f64,
    pub duration: Option<String>,
    pub ops: Option<i64>,
    pub concurrency: Option<i64>,
    pub customers: Option<i64>,
    pub payload_bytes: Option<i64>,
    pub op_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFault {
    pub kind: String,
    pub side: Option<String>,
    pub direction: Option<String>,
    pub toxicity: Option<f64>,
    pub start: String,
    pub duration: Option<String>,
    pub every: Option<String>,
    // Toxic attributes.
    pub latency: Option<String>,
    pub jitter: Option<String>,
    pub rate_kbps: Option<i64>,
    pub delay: Option<String>,
    pub timeout: Option<String>,
    pub bytes: Option<i64>,
    pub average_size: Option<i64>,
    pub size_variation: Option<i64>,
    // SDK-side errors (DynamoDB).
    pub error: Option<String>,
    pub rate: Option<f64>,
    pub when: Option<String>,
    // MongoDB failCommand fail point.
    pub commands: Option<Vec<String>>,
    pub error_code: Option<i64>,
    pub error_labels: Option<Vec<String>>,
    pub close_connection: Option<bool>,
    pub times: Option<i64>,
    // Local server process faults.
    pub server: Option<String>,
    // Process faults on the `[app]` service or its relay.
    pub process: Option<String>,
    // Faults between the nodes of the Cassandra cluster.
    pub node: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub percent: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub settle: Option<String>,
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpect {
    pub orphans: Option<RawLimit>,
    pub ghosts: Option<RawLimit>,
    pub duplicates: Option<RawLimit>,
    pub mismatches: Option<RawLimit>,
    pub lost_acks: Option<RawLimit>,
    pub strays: Option<RawLimit>,
    pub divergence: Option<RawLimit>,
    pub indeterminate: Option<f64>,
    pub recovery: Option<bool>,
    pub partial_reads: Option<RawLimit>,
    pub read_anomalies: Option<RawLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReaders {
    pub rate: Option<f64>,
    pub concurrency: Option<i64>,
    pub delays: Option<Vec<String>>,
    pub unacknowledged: Option<f64>,
    pub primary: Option<RawReadSide>,
    pub secondary: Option<RawReadSide>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReadSide {
    pub consistency: Option<String>,
    pub read_concern: Option<String>,
    pub read_preference: Option<String>,
    pub coordinator: Option<String>,
}

/// A threshold: a maximum count, or the word `"any"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawLimit {
    Count(i64),
    Word(String),
}

/// `[app]`: the user's service as the writer (validated in `validate/app.rs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub url: String,
    pub method: Option<String>,
    pub body: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub timeout: Option<String>,
    pub fail_statuses: Option<Vec<RawStatus>>,
    pub async_secondary: Option<bool>,
    pub service: Option<RawProcess>,
    pub relay: Option<RawProcess>,
    pub primary: Option<RawLocation>,
    pub secondary: Option<RawLocation>,
}

/// A status code (`503`) or a class (`"4xx"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawStatus {
    Code(i64),
    Class(String),
}

/// A command as one string (run by `sh -c`) or as argv.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawCommand {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProcess {
    pub command: Option<RawCommand>,
    pub attach: Option<bool>,
    pub dir: Option<String>,
    pub env: Option<std::collections::BTreeMap<String, String>>,
    pub ready: Option<String>,
    pub ready_timeout: Option<String>,
    pub stop_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLocation {
    pub table: Option<String>,
    pub collection: Option<String>,
    pub database: Option<String>,
    pub keyspace: Option<String>,
    pub key: Option<String>,
    pub order_id: Option<String>,
    pub fields: Option<std::collections::BTreeMap<String, String>>,
    pub create: Option<bool>,
    pub drop: Option<bool>,
}

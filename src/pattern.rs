//! Dual-write patterns, their options, and which store each applies to.
//!
//! The implementations live with each store (`store/<name>.rs`): a pattern is the
//! application's behaviour, but what it can do is what the store forces.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

use crate::scenario::StoreKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatternKind {
    Naive,
    Transaction,
    LoggedBatch,
    Outbox,
    Streams,
}

impl PatternKind {
    pub const ALL: [PatternKind; 5] = [
        PatternKind::Naive,
        PatternKind::Transaction,
        PatternKind::LoggedBatch,
        PatternKind::Outbox,
        PatternKind::Streams,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            PatternKind::Naive => "naive",
            PatternKind::Transaction => "transaction",
            PatternKind::LoggedBatch => "logged-batch",
            PatternKind::Outbox => "outbox",
            PatternKind::Streams => "streams",
        }
    }

    /// Whether the secondary side is written by a relay after the operation returns.
    pub fn is_async(self) -> bool {
        matches!(self, PatternKind::Outbox | PatternKind::Streams)
    }

    /// `Ok(description)` when the pattern applies to the store, `Err(reason)` otherwise.
    pub fn applies_to(self, store: StoreKind) -> Result<&'static str, &'static str> {
        use PatternKind::*;
        use StoreKind::*;
        match (self, store) {
            (Naive, MongoDb) => Ok("insert_one into orders, then into order_events"),
            (Naive, DynamoDb) => Ok("PutItem into the orders table, then into the events table"),
            (Naive, Cassandra) => Ok("INSERT into orders, then into orders_by_customer"),
            (Transaction, MongoDb) => Ok("both inserts in one multi-document transaction"),
            (Transaction, DynamoDb) => Ok("one TransactWriteItems with a deterministic token"),
            (Transaction, Cassandra) => Err(
                "Cassandra has no multi-partition transactions; use `logged-batch` (atomic within one partition) or `outbox`",
            ),
            (LoggedBatch, Cassandra) => Ok("one LOGGED BATCH (same or cross partition)"),
            (LoggedBatch, _) => Err(
                "`logged-batch` is a Cassandra construct; use `transaction` or `outbox` on this store",
            ),
            (Outbox, MongoDb) => Ok("embedded _outbox in the order document + relay"),
            (Outbox, DynamoDb) => Ok("outbox attribute on the order item + Streams relay"),
            (Outbox, Cassandra) => Ok("outbox row in the order's partition + LWT-claiming relay"),
            (Streams, MongoDb) => Ok("change stream on orders -> relay -> order_events"),
            (Streams, DynamoDb) => Ok("DynamoDB Streams on orders -> relay -> events table"),
            (Streams, Cassandra) => Err(
                "Cassandra has no change feed this tool can consume; use `outbox` (outbox table + relay)",
            ),
        }
    }
}

impl fmt::Display for PatternKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the application does when the second write fails (naive pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnSecondaryFailure {
    /// Log the error and answer `ok` to the caller: the classic silent orphan.
    LogAndContinue,
    /// Answer `fail` to the caller; the primary write stays.
    Fail,
    /// Retry the second write `retries` times with backoff, then fail.
    Retry,
}

/// How an idempotency token (or the secondary record's key) is chosen on retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyPolicy {
    /// Derived from the order id: a retry is recognised as the same write.
    Stable,
    /// Fresh on every attempt: a retry after a lost answer writes twice.
    Fresh,
}

/// What the application does with a transaction conflict or other retryable error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnConflict {
    Retry,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partitioning {
    Same,
    Cross,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RelayMode {
    /// Change stream / DynamoDB Streams where the server has one.
    Stream,
    /// Poll for pending entries.
    Poll,
}

/// Options of the relay that feeds the secondary side in async patterns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelayOptions {
    /// Writes keyed by the order id (a replay overwrites) instead of a fresh event id.
    pub idempotent: bool,
    pub workers: u32,
    #[serde(with = "crate::scenario::duration_ms")]
    pub poll_interval: Duration,
    pub mode: RelayMode,
    /// Crash between publishing and checkpointing/marking every N events (0 = never).
    pub crash_every: u64,
    /// Probability of such a crash per event.
    pub crash_probability: f64,
    #[serde(with = "crate::scenario::duration_ms")]
    pub claim_ttl: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            idempotent: true,
            workers: 1,
            poll_interval: Duration::from_millis(100),
            mode: RelayMode::Stream,
            crash_every: 0,
            crash_probability: 0.0,
            claim_ttl: Duration::from_secs(5),
        }
    }
}

/// A validated pattern: its kind and every option (defaults filled in).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pattern {
    pub kind: PatternKind,
    pub on_secondary_failure: OnSecondaryFailure,
    pub retries: u32,
    #[serde(with = "crate::scenario::duration_ms")]
    pub backoff: Duration,
    pub idempotency_token: KeyPolicy,
    pub secondary_key: KeyPolicy,
    pub on_conflict: OnConflict,
    /// Transactions: `attribute_not_exists` conditions on every put (default true);
    /// false relies on the idempotency token alone.
    pub conditions: bool,
    pub partitioning: Partitioning,
    pub consistency: String,
    pub lwt_insert: bool,
    pub relay: RelayOptions,
}

impl Pattern {
    pub fn new(kind: PatternKind) -> Self {
        Self {
            kind,
            on_secondary_failure: OnSecondaryFailure::LogAndContinue,
            retries: 3,
            backoff: Duration::from_millis(20),
            idempotency_token: KeyPolicy::Stable,
            secondary_key: KeyPolicy::Stable,
            on_conflict: OnConflict::Retry,
            conditions: true,
            partitioning: Partitioning::Same,
            consistency: "quorum".to_string(),
            lwt_insert: false,
            relay: RelayOptions::default(),
        }
    }

    /// Option names a pattern accepts; others are rejected at validation.
    pub fn accepted_options(kind: PatternKind) -> &'static [&'static str] {
        match kind {
            PatternKind::Naive => &[
                "on_secondary_failure",
                "retries",
                "backoff",
                "secondary_key",
                "consistency",
                "lwt_insert",
            ],
            PatternKind::Transaction => &[
                "retries",
                "backoff",
                "idempotency_token",
                "on_conflict",
                "secondary_key",
                "conditions",
            ],
            PatternKind::LoggedBatch => &["partitioning", "consistency", "retries", "backoff"],
            PatternKind::Outbox => &["relay", "consistency", "lwt_insert", "retries", "backoff"],
            PatternKind::Streams => &["relay", "retries", "backoff"],
        }
    }
}

//! Dual-write patterns: their kinds and options, and the pattern engine — what the
//! application does, written once for every store: [`naive`] over any two sides,
//! [`atomic`] around a store's one atomic call, the outcome rule in [`outcome`].
//! Which store runs which pattern, with which options, is the store registry's
//! (`crate::store::spec`); the relay loop is `crate::relay`.

pub mod atomic;
pub mod naive;
pub mod outcome;

use serde::Serialize;
use std::fmt;
use std::time::Duration;

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

    /// Whether both sides are written by one atomic call of one store, so both
    /// must live in that store (an outbox only needs its entry beside the order).
    pub fn needs_one_store(self) -> bool {
        matches!(self, PatternKind::Transaction | PatternKind::LoggedBatch)
    }
}

/// Options the pattern engine honours for a pattern on any store (the stores add
/// their own in their registry entry).
pub fn engine_options(kind: PatternKind) -> &'static [&'static str] {
    const RELAY: [&str; 6] = [
        "retries",
        "backoff",
        "relay.idempotent",
        "relay.poll_interval",
        "relay.crash_every",
        "relay.crash_probability",
    ];
    match kind {
        PatternKind::Naive => &["on_secondary_failure", "retries", "backoff"],
        PatternKind::Transaction | PatternKind::LoggedBatch => &["retries", "backoff"],
        PatternKind::Outbox | PatternKind::Streams => &RELAY,
    }
}

/// Why an option is not honoured, for the validation message (empty when the
/// option list says it all).
pub fn why_not_honoured(option: &str, kind: PatternKind) -> &'static str {
    match (option, kind) {
        ("idempotency_token", _) => {
            ": only DynamoDB's TransactWriteItems takes a client request token"
        }
        ("conditions", _) => {
            ": only DynamoDB's transaction puts carry attribute_not_exists conditions"
        }
        ("on_conflict", _) => ": only DynamoDB reports transaction conflicts to the application",
        ("secondary_key", PatternKind::Naive) => {
            ": the secondary table's key is not an event id here"
        }
        ("secondary_key", _) => {
            ": this pattern's secondary record is not keyed by an event id here"
        }
        ("consistency", _) => ": consistency levels are Cassandra's",
        ("lwt_insert", _) => ": INSERT ... IF NOT EXISTS is Cassandra's, on the primary of `naive`",
        ("partitioning", _) => ": partitioning applies to Cassandra's logged batch only",
        ("rearm", _) => ": only the DynamoDB outbox can re-arm an order's outbox flag",
        ("relay.mode", _) => {
            ": only MongoDB's outbox relay chooses between a change stream and polling"
        }
        ("relay.claim_ttl", _) => ": only the Cassandra outbox relay claims entries (with LWT)",
        ("relay.workers", _) => ": this relay source cannot split its work between workers",
        ("idempotence", _) => {
            ": producer idempotence is a Kafka producer's setting, and the secondary side is not a Kafka topic"
        }
        ("relay.delivery", _) => {
            ": only a Kafka topic as the sink takes transactions (exactly-once); elsewhere a relay delivers at least once"
        }
        ("relay.idempotent", _) => {
            ": a topic appends every publication whatever its key, so no key makes a replay harmless; use relay.delivery = \"exactly-once\""
        }
        _ => "",
    }
}

impl PatternKind {
    /// For `dualwrite list`: how the pattern runs on a store, or why it does not.
    pub fn on(self, store: &crate::store::StoreSpec) -> Result<&'static str, &'static str> {
        match store.support(self) {
            crate::store::spec::Support::Yes { how, .. } => Ok(how),
            crate::store::spec::Support::No(reason) => Err(reason),
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

/// How a relay's publications reach a sink that can take transactions (a Kafka
/// topic); elsewhere it is always at least once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Publish, then mark: a crash in between publishes the event again.
    AtLeastOnce,
    /// Each publication commits with its source positions in one transaction, and
    /// a restarted worker skips positions already committed (docs/KAFKA.md).
    ExactlyOnce,
}

impl Delivery {
    pub fn name(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::ExactlyOnce => "exactly-once",
        }
    }
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
    pub delivery: Delivery,
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
            delivery: Delivery::AtLeastOnce,
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
    /// DynamoDB outbox: whether a re-put of an already published order sets its
    /// outbox flag again (the hazard) instead of being refused by a condition.
    pub rearm: bool,
    /// Kafka: the producer's `enable.idempotence` (its own retries after a lost
    /// answer append once instead of again).
    pub idempotence: bool,
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
            rearm: false,
            idempotence: false,
            relay: RelayOptions::default(),
        }
    }

    /// How the secondary record of an order is keyed: by the relay's
    /// `idempotent` for async patterns, by `secondary_key` otherwise (a reader
    /// finds it by its stable key, or through an index on the order id).
    pub fn secondary_key_policy(&self) -> KeyPolicy {
        match (self.kind.is_async(), self.relay.idempotent) {
            (true, true) => KeyPolicy::Stable,
            (true, false) => KeyPolicy::Fresh,
            (false, _) => self.secondary_key,
        }
    }
}

/// The writer of a pattern over the run's stores: the engine's `naive`, or the
/// engine's retry loop around the primary store's atomic write.
pub async fn writer(
    pattern: &Pattern,
    stores: &crate::store::Stores,
) -> anyhow::Result<std::sync::Arc<dyn crate::writer::Writer>> {
    use std::sync::Arc;
    let (primary, secondary) = stores.sides().await?;
    Ok(match pattern.kind {
        PatternKind::Naive => Arc::new(naive::NaiveWriter {
            primary,
            secondary,
            pattern: pattern.clone(),
        }),
        PatternKind::Streams => Arc::new(atomic::AtomicWriter {
            write: Arc::new(atomic::PrimaryAlone(primary)),
            pattern: pattern.clone(),
        }),
        PatternKind::Transaction | PatternKind::LoggedBatch | PatternKind::Outbox => {
            Arc::new(atomic::AtomicWriter {
                write: stores.primary.atomic_write().await?,
                pattern: pattern.clone(),
            })
        }
    })
}

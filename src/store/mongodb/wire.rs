//! MongoDB wire helpers shared by the store, its pattern clients and its relays:
//! how a driver error reads to the application ([`classify`]), every call bounded
//! in time ([`bounded`]), `find`/`count` as plain commands, and the documents
//! written.

use mongodb::Database;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::error::{
    Error as MongoError, ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
    WriteFailure,
};
use std::future::Future;
use std::time::Duration;

use crate::history::SideOutcome;
use crate::order::{Order, order_key, parse_order_key};
use crate::pattern::KeyPolicy;
use crate::pattern::outcome::{self, Attempt};
use crate::store::Record;

const DUPLICATE_KEY: i32 = 11000;

/// A failed call as the application sees it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub outcome: SideOutcome,
    pub class: String,
    pub detail: String,
    pub transient_txn: bool,
    pub unknown_commit: bool,
    pub duplicate_key: bool,
}

impl Failure {
    fn reply(detail: String) -> Self {
        Self {
            outcome: SideOutcome::Unknown,
            class: "invalid-response".into(),
            detail,
            transient_txn: false,
            unknown_commit: false,
            duplicate_key: false,
        }
    }

    fn timeout(limit: Duration) -> Self {
        Self {
            outcome: SideOutcome::Unknown,
            class: "timeout".into(),
            detail: format!("no answer within {} ms", limit.as_millis()),
            transient_txn: false,
            unknown_commit: false,
            duplicate_key: false,
        }
    }
}

/// `Fail` when the request certainly did not apply, `Unknown` when it may have.
pub(crate) fn classify(e: &MongoError) -> Failure {
    let mut duplicate_key = false;
    let mut write_conflict = false;
    let (outcome, class) = match e.kind.as_ref() {
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            (SideOutcome::Fail, "refused".to_string())
        }
        // The request may have reached the server; only the answer was lost.
        ErrorKind::Io(_) => (SideOutcome::Unknown, "io".to_string()),
        ErrorKind::ServerSelection { .. } => (SideOutcome::Fail, "server-selection".into()),
        // The pool is cleared when the monitor times out, and in-use connections
        // are interrupted: an operation already sent fails with this error too.
        ErrorKind::ConnectionPoolCleared { .. } => (SideOutcome::Unknown, "pool-cleared".into()),
        ErrorKind::Command(c) => (
            SideOutcome::Fail,
            if c.code_name.is_empty() {
                format!("code-{}", c.code)
            } else {
                c.code_name.clone()
            },
        ),
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            duplicate_key = w.code == DUPLICATE_KEY;
            (
                SideOutcome::Fail,
                if duplicate_key {
                    "duplicate-key".into()
                } else {
                    w.code_name.clone().unwrap_or(format!("code-{}", w.code))
                },
            )
        }
        // Unordered insert_many: only duplicates means every document is there.
        ErrorKind::InsertMany(m)
            if m.write_concern_error.is_none()
                && m.write_errors
                    .as_ref()
                    .is_some_and(|w| w.iter().all(|e| e.code == DUPLICATE_KEY)) =>
        {
            duplicate_key = true;
            (SideOutcome::Fail, "duplicate-key".into())
        }
        // Applied, but not acknowledged by enough members.
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => {
            (SideOutcome::Unknown, "write-concern".into())
        }
        ErrorKind::Transaction { .. } => (SideOutcome::Fail, "transaction-state".into()),
        ErrorKind::Authentication { .. } => (SideOutcome::Fail, "authentication".into()),
        // mongoeco's commit conflict (database-wide optimistic concurrency) comes
        // without `code` or labels, so the driver cannot parse it; it is raised
        // before anything is applied, and it is what real MongoDB labels
        // WriteConflict + TransientTransactionError.
        ErrorKind::InvalidResponse { .. } if errmsg(e).contains("Write conflict") => {
            write_conflict = true;
            (SideOutcome::Fail, "WriteConflict".into())
        }
        // A reply the driver could not read: the command ran or not, we cannot tell.
        ErrorKind::InvalidResponse { .. } => (SideOutcome::Unknown, "invalid-response".into()),
        ErrorKind::SessionsNotSupported => (SideOutcome::Fail, "sessions-not-supported".into()),
        ErrorKind::Internal { .. } => (SideOutcome::Unknown, "driver-internal".into()),
        _ => (SideOutcome::Unknown, "other".into()),
    };
    Failure {
        outcome,
        class,
        detail: short_detail(e),
        transient_txn: write_conflict || e.contains_label(TRANSIENT_TRANSACTION_ERROR),
        unknown_commit: e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT),
        duplicate_key,
    }
}

impl Failure {
    /// Whether an application retries after it: anything that may have applied,
    /// and refusals that say nothing was sent.
    pub(crate) fn retryable(&self) -> bool {
        self.outcome == SideOutcome::Unknown
            || self.transient_txn
            || ["refused", "server-selection", "pool-cleared"].contains(&self.class.as_str())
    }

    /// The attempt this failure makes, by the outcome rule.
    pub(crate) fn attempt(self) -> Attempt {
        let retry = self.retryable();
        let f = outcome::Failure::new(self.class, self.detail).retryable(retry);
        if self.duplicate_key {
            Attempt::AlreadyThere(f)
        } else if self.outcome == SideOutcome::Unknown {
            Attempt::Indeterminate(f)
        } else {
            Attempt::NotApplied(f)
        }
    }
}

fn errmsg(e: &MongoError) -> &str {
    e.server_response()
        .and_then(|r| r.get_str("errmsg").ok())
        .unwrap_or("")
}

/// The error without the raw server response bytes the driver's `Display` adds.
fn short_detail(e: &MongoError) -> String {
    // A reply the driver could not parse (mongoeco omits `code` on some errors):
    // its `errmsg` is the useful part.
    if let Some(msg) = e
        .server_response()
        .and_then(|r| r.get_str("errmsg").ok())
        .filter(|_| matches!(e.kind.as_ref(), ErrorKind::InvalidResponse { .. }))
    {
        return format!("{} (server errmsg: {msg})", e.kind);
    }
    let labels = e.labels();
    if labels.is_empty() {
        e.kind.to_string()
    } else {
        let mut labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        labels.sort_unstable();
        format!("{} [labels: {}]", e.kind, labels.join(", "))
    }
}

/// One page of a `find`, sorted by `_id`, read from the command's reply rather
/// than through a driver cursor: mongoeco encodes cursor ids as Int32, which the
/// Rust driver rejects, and one code path for every server is simpler to trust.
/// `skip`/`limit` are Int32 because mongoeco rejects Int64 there.
pub(crate) async fn find_page(
    db: &Database,
    coll: &str,
    filter: Document,
    skip: i32,
    limit: i32,
    bound: Duration,
) -> Result<Vec<Document>, Failure> {
    let command = doc! {
        "find": coll,
        "filter": filter,
        "sort": {"_id": 1},
        "skip": skip,
        "limit": limit,
        "batchSize": limit,
        "singleBatch": true,
    };
    let reply = bounded(bound, db.run_command(command).into_future()).await?;
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map_err(|e| Failure::reply(format!("find on {}.{coll}: {e}", db.name())))?;
    Ok(batch
        .iter()
        .filter_map(|d| d.as_document().cloned())
        .collect())
}

/// A reader's point read: how many documents match `filter` (ids only, one
/// batch), with the read concern asked for (none: the server's default).
pub(crate) async fn read_count(
    db: &Database,
    coll: &str,
    filter: Document,
    read_concern: Option<&str>,
    bound: Duration,
) -> Result<u32, Failure> {
    let mut command = doc! {
        "find": coll,
        "filter": filter,
        "projection": {"_id": 1},
        "limit": 1000,
        "batchSize": 1000,
        "singleBatch": true,
    };
    if let Some(level) = read_concern {
        command.insert("readConcern", doc! {"level": level});
    }
    let reply = bounded(bound, db.run_command(command).into_future()).await?;
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map_err(|e| Failure::reply(format!("find on {}.{coll}: {e}", db.name())))?;
    Ok(batch.len() as u32)
}

/// The collection names of a database, read from the `listCollections` reply (the
/// driver's cursor rejects mongoeco's Int32 cursor id, see [`find_page`]). The
/// first batch is enough for what it is used for: whether any exist, and which of
/// the run's own names do.
pub(crate) async fn collection_names(
    db: &Database,
    bound: Duration,
) -> Result<Vec<String>, Failure> {
    let command = doc! {"listCollections": 1, "nameOnly": true};
    let reply = bounded(bound, db.run_command(command).into_future()).await?;
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map_err(|e| Failure::reply(format!("listCollections on {}: {e}", db.name())))?;
    Ok(batch
        .iter()
        .filter_map(|d| d.as_document()?.get_str("name").ok().map(str::to_string))
        .collect())
}

/// `count` (a command, not an aggregation cursor: see [`find_page`]).
pub(crate) async fn count(
    db: &Database,
    coll: &str,
    filter: Document,
    bound: Duration,
) -> Result<u64, Failure> {
    let reply = bounded(
        bound,
        db.run_command(doc! {"count": coll, "query": filter})
            .into_future(),
    )
    .await?;
    match reply.get("n") {
        Some(Bson::Int32(n)) => Ok(*n as u64),
        Some(Bson::Int64(n)) => Ok(*n as u64),
        Some(Bson::Double(n)) => Ok(*n as u64),
        _ => Err(Failure::reply(format!(
            "count on {}.{coll}: no `n` in the reply",
            db.name()
        ))),
    }
}

/// Runs one driver call bounded by `limit`.
pub(crate) async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = mongodb::error::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(Failure::timeout(limit)),
    }
}

pub(crate) fn order_doc(order: &Order) -> Document {
    doc! {
        "_id": order.key(),
        "customer_id": order.customer_id as i64,
        "amount_cents": order.amount_cents as i64,
        "payload": &order.payload,
    }
}

/// The event id: derived from the order (a replay is rejected as a duplicate key)
/// or fresh per attempt (a replay writes a second event).
pub(crate) fn event_id(order_id: u64, policy: KeyPolicy) -> Bson {
    match policy {
        KeyPolicy::Stable => Bson::String(format!("e-{}", order_key(order_id))),
        KeyPolicy::Fresh => Bson::ObjectId(ObjectId::new()),
    }
}

pub(crate) fn event_doc(record: &Record, id: Bson) -> Document {
    doc! {
        "_id": id,
        "order_id": order_key(record.order_id),
        "customer_id": record.customer_id as i64,
        "amount_cents": record.amount_cents as i64,
    }
}

fn number(doc: &Document, key: &str) -> u64 {
    match doc.get(key) {
        Some(Bson::Int64(n)) => *n as u64,
        Some(Bson::Int32(n)) => *n as u64,
        Some(Bson::Double(n)) => *n as u64,
        _ => u64::MAX,
    }
}

/// Reads a record's compared fields from an order (`_id`) or event (`order_id`).
pub(crate) fn record_of(doc: &Document, key: &str) -> Option<Record> {
    let order_id = parse_order_key(doc.get_str(key).ok()?)?;
    Some(Record {
        order_id,
        customer_id: number(doc, "customer_id"),
        amount_cents: number(doc, "amount_cents"),
    })
}

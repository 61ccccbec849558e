//! The MongoDB pattern clients: what the application does for one order, per
//! pattern (`naive`, `transaction` with the driver spec's retry rules, and the
//! primary-only write of `streams` and `outbox`), with its failure-mode options.

use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Error as MongoError;
use mongodb::{Client, Collection, Database};
use std::time::{Duration, Instant};

use super::mongodb::{EVENTS, ORDERS};
use super::mongodb_wire::{Failure, bounded, event_doc, event_id, order_doc};
use super::{PatternClient, Record};
use crate::backoff;
use crate::history::{OpReport, Outcome, SideOutcome};
use crate::order::Order;
use crate::pattern::{OnSecondaryFailure, Pattern};

/// What every MongoDB pattern client holds.
#[derive(Clone)]
pub(crate) struct MongoWriter {
    pub primary: Database,
    pub secondary: Database,
    pub primary_client: Client,
    pub pattern: Pattern,
    pub op_timeout: Duration,
    /// mongoeco keeps a session's transaction open after a failed commit, and the
    /// next `startTransaction` on that (pooled) session continues it instead of
    /// starting afresh; ending the server session after a failed attempt resets it.
    pub end_failed_sessions: bool,
}

impl MongoWriter {
    async fn insert(&self, db: &Database, coll: &str, d: Document) -> Result<(), Failure> {
        let c: Collection<Document> = db.collection(coll);
        bounded(self.op_timeout, c.insert_one(d).into_future())
            .await
            .map(|_| ())
    }
}

fn outcome_of(side: SideOutcome) -> Outcome {
    match side {
        SideOutcome::Ok | SideOutcome::Async => Outcome::Ok,
        SideOutcome::Fail | SideOutcome::Skipped => Outcome::Fail,
        SideOutcome::Unknown => Outcome::Unknown,
    }
}

fn failed(
    side: SideOutcome,
    f: Failure,
    primary: SideOutcome,
    secondary: SideOutcome,
    retries: u32,
) -> OpReport {
    OpReport {
        outcome: outcome_of(side),
        error: Some(f.class),
        primary,
        secondary,
        retries,
        detail: Some(f.detail),
    }
}

/// insert_one into orders, then into order_events; what happens when the second
/// fails is the application's policy (`on_secondary_failure`).
pub(crate) struct NaiveClient(pub(crate) MongoWriter);

#[async_trait]
impl PatternClient for NaiveClient {
    async fn write(&self, order: &Order) -> OpReport {
        let w = &self.0;
        if let Err(f) = w.insert(&w.primary, ORDERS, order_doc(order)).await {
            let p = f.outcome;
            return failed(p, f, p, SideOutcome::Skipped, 0);
        }
        let record = Record::of(order);
        let mut retries = 0;
        let mut ambiguous = false;
        loop {
            let d = event_doc(&record, event_id(order.id, w.pattern.secondary_key));
            let f = match w.insert(&w.secondary, EVENTS, d).await {
                Ok(()) => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Ok).with_retries(retries);
                }
                // A stable event id already there: an earlier attempt landed.
                Err(f) if f.duplicate_key && ambiguous => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Ok).with_retries(retries);
                }
                Err(f) => f,
            };
            ambiguous |= f.outcome == SideOutcome::Unknown;
            let policy = w.pattern.on_secondary_failure;
            if policy == OnSecondaryFailure::Retry && retries < w.pattern.retries {
                retries += 1;
                tokio::time::sleep(backoff::delay(w.pattern.backoff, retries)).await;
                continue;
            }
            let secondary = if ambiguous {
                SideOutcome::Unknown
            } else {
                f.outcome
            };
            let mut report = failed(secondary, f, SideOutcome::Ok, secondary, retries);
            // The error is logged and the caller hears "ok": the silent orphan.
            if policy == OnSecondaryFailure::LogAndContinue {
                report.outcome = Outcome::Ok;
            }
            return report;
        }
    }
}

/// Both inserts in one session transaction, with the driver spec's retry rules:
/// the whole body again on `TransientTransactionError`, only the commit again on
/// `UnknownTransactionCommitResult`; `retries` bounds both (0 = an application
/// without a retry loop), and the total time is bounded too.
pub(crate) struct TransactionClient(pub(crate) MongoWriter);

enum Attempt {
    Committed,
    /// Failed in the body or the commit; `commit_sent` when a commit may have applied.
    Failed {
        f: Failure,
        commit_sent: bool,
    },
}

impl TransactionClient {
    async fn attempt(&self, order: &Order, retries: &mut u32, deadline: Instant) -> Attempt {
        let w = &self.0;
        let limit = w.op_timeout;
        let mut session = match bounded(limit, w.primary_client.start_session().into_future()).await
        {
            Ok(s) => s,
            Err(f) => {
                return Attempt::Failed {
                    f,
                    commit_sent: false,
                };
            }
        };
        let result = self
            .attempt_in(&mut session, order, retries, deadline)
            .await;
        if w.end_failed_sessions && !matches!(result, Attempt::Committed) {
            let lsid = session.id().clone();
            let admin = w.primary_client.database("admin");
            let _ = bounded(
                limit,
                admin
                    .run_command(doc! {"endSessions": [lsid]})
                    .into_future(),
            )
            .await;
        }
        result
    }

    async fn attempt_in(
        &self,
        session: &mut mongodb::ClientSession,
        order: &Order,
        retries: &mut u32,
        deadline: Instant,
    ) -> Attempt {
        let w = &self.0;
        let limit = w.op_timeout;
        let body = async {
            session.start_transaction().await?;
            w.primary
                .collection::<Document>(ORDERS)
                .insert_one(order_doc(order))
                .session(&mut *session)
                .await?;
            let record = Record::of(order);
            w.primary
                .collection::<Document>(EVENTS)
                .insert_one(event_doc(
                    &record,
                    event_id(order.id, w.pattern.secondary_key),
                ))
                .session(&mut *session)
                .await?;
            Ok::<(), MongoError>(())
        };
        if let Err(mut f) = bounded(limit, body).await {
            // A timed-out body never committed: as transient as a network error.
            f.transient_txn |= f.class == "timeout";
            let _ = bounded(limit, session.abort_transaction().into_future()).await;
            return Attempt::Failed {
                f,
                commit_sent: false,
            };
        }
        loop {
            match bounded(limit, session.commit_transaction().into_future()).await {
                Ok(()) => return Attempt::Committed,
                Err(mut f) => {
                    f.unknown_commit |= f.class == "timeout" || f.outcome == SideOutcome::Unknown;
                    let commit_sent = f.unknown_commit;
                    if f.unknown_commit
                        && !f.transient_txn
                        && *retries < w.pattern.retries
                        && Instant::now() < deadline
                    {
                        *retries += 1;
                        tokio::time::sleep(backoff::delay(w.pattern.backoff, *retries)).await;
                        continue;
                    }
                    return Attempt::Failed { f, commit_sent };
                }
            }
        }
    }
}

#[async_trait]
impl PatternClient for TransactionClient {
    async fn write(&self, order: &Order) -> OpReport {
        let w = &self.0;
        let deadline = Instant::now() + w.op_timeout * (w.pattern.retries + 1);
        let mut retries = 0;
        let mut ambiguous = false;
        loop {
            let f = match self.attempt(order, &mut retries, deadline).await {
                Attempt::Committed => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Ok).with_retries(retries);
                }
                // The order is there: an earlier commit whose answer was lost applied.
                Attempt::Failed { f, .. } if f.duplicate_key && ambiguous => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Ok).with_retries(retries);
                }
                Attempt::Failed { f, commit_sent } => {
                    ambiguous |= commit_sent;
                    f
                }
            };
            let retry_body = f.transient_txn
                || f.class == "server-selection"
                || f.class == "refused"
                || f.class == "pool-cleared";
            if retry_body && retries < w.pattern.retries && Instant::now() < deadline {
                retries += 1;
                tokio::time::sleep(backoff::delay(w.pattern.backoff, retries)).await;
                continue;
            }
            let side = if ambiguous {
                SideOutcome::Unknown
            } else {
                f.outcome
            };
            return failed(side, f, side, side, retries);
        }
    }
}

/// Writes the order alone; a relay writes the secondary side. With `outbox`, the
/// event rides in the same document (`_outbox`), so one atomic insert holds both.
pub(crate) struct PrimaryOnlyClient {
    pub(crate) w: MongoWriter,
    pub(crate) outbox: bool,
}

#[async_trait]
impl PatternClient for PrimaryOnlyClient {
    async fn write(&self, order: &Order) -> OpReport {
        let w = &self.w;
        let mut d = order_doc(order);
        if self.outbox {
            let record = Record::of(order);
            d.insert(
                "_outbox",
                doc! {
                    "event": event_doc(&record, Bson::Null),
                    "published": false,
                    "created_at": mongodb::bson::DateTime::now(),
                },
            );
        }
        let mut retries = 0;
        let mut ambiguous = false;
        loop {
            let f = match w.insert(&w.primary, ORDERS, d.clone()).await {
                Ok(()) => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Async).with_retries(retries);
                }
                Err(f) if f.duplicate_key && ambiguous => {
                    return OpReport::ok(SideOutcome::Ok, SideOutcome::Async).with_retries(retries);
                }
                Err(f) => f,
            };
            ambiguous |= f.outcome == SideOutcome::Unknown;
            let retryable = f.outcome == SideOutcome::Unknown
                || ["refused", "server-selection", "pool-cleared"].contains(&f.class.as_str());
            if retryable && retries < w.pattern.retries {
                retries += 1;
                tokio::time::sleep(backoff::delay(w.pattern.backoff, retries)).await;
                continue;
            }
            let side = if ambiguous {
                SideOutcome::Unknown
            } else {
                f.outcome
            };
            // Whatever landed carries its event: the relay will publish it.
            let secondary = if side == SideOutcome::Fail {
                SideOutcome::Skipped
            } else {
                SideOutcome::Async
            };
            return failed(side, f, side, secondary, retries);
        }
    }
}

/// Benchmark only: the same two `insert_one`s as `naive`, with no error policy.
pub(crate) struct BareClient {
    pub primary: Database,
    pub secondary: Database,
    pub writes: u8,
}

#[async_trait]
impl PatternClient for BareClient {
    async fn write(&self, order: &Order) -> OpReport {
        let orders: Collection<Document> = self.primary.collection(ORDERS);
        let mut ok = orders.insert_one(order_doc(order)).await.is_ok();
        if ok && self.writes > 1 {
            let event = event_doc(
                &Record::of(order),
                event_id(order.id, crate::pattern::KeyPolicy::Stable),
            );
            let events: Collection<Document> = self.secondary.collection(EVENTS);
            ok = events.insert_one(event).await.is_ok();
        }
        OpReport::bare(ok)
    }
}

//! MongoDB's atomic writes (what the pattern engine retries): `transaction`, both
//! inserts in one session transaction with the driver spec's commit rule; `outbox`,
//! the order with its event embedded (`_outbox`) in one insert. And the bench's
//! bare client.

use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Error as MongoError;
use mongodb::{Client, Collection, Database};
use std::time::{Duration, Instant};

use super::wire::{Failure, bounded, event_doc, event_id, order_doc};
use super::{EVENTS, ORDERS};
use crate::backoff;
use crate::history::{OpReport, SideOutcome};
use crate::order::Order;
use crate::pattern::Pattern;
use crate::pattern::atomic::{AtomicWrite, AttemptContext, Covers};
use crate::pattern::outcome::Attempt;
use crate::store::Record;
use crate::writer::Writer;

/// What the MongoDB atomic writes hold.
#[derive(Clone)]
pub(crate) struct MongoWriter {
    pub primary: Database,
    pub primary_client: Client,
    pub pattern: Pattern,
    pub op_timeout: Duration,
    /// mongoeco keeps a session's transaction open after a failed commit, and the
    /// next `startTransaction` on that (pooled) session continues it instead of
    /// starting afresh; ending the server session after a failed attempt resets it.
    pub end_failed_sessions: bool,
}

/// Both inserts in one session transaction. One attempt is the body and its
/// commit, the commit retried on its own on `UnknownTransactionCommitResult` (the
/// driver spec's rule); the pattern engine retries the whole attempt. `retries`
/// bounds both (0 = an application without a retry loop), and the total time is
/// bounded too.
pub(crate) struct TransactionWrite(pub(crate) MongoWriter);

enum Step {
    Committed,
    /// Failed in the body or the commit; `commit_sent` when a commit may have applied.
    Failed {
        f: Failure,
        commit_sent: bool,
    },
}

impl TransactionWrite {
    async fn run(&self, order: &Order, retries: &mut u32, deadline: Instant) -> Step {
        let w = &self.0;
        let limit = w.op_timeout;
        let mut session = match bounded(limit, w.primary_client.start_session().into_future()).await
        {
            Ok(s) => s,
            Err(f) => {
                return Step::Failed {
                    f,
                    commit_sent: false,
                };
            }
        };
        let result = self
            .attempt_in(&mut session, order, retries, deadline)
            .await;
        if w.end_failed_sessions && !matches!(result, Step::Committed) {
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
    ) -> Step {
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
            return Step::Failed {
                f,
                commit_sent: false,
            };
        }
        loop {
            match bounded(limit, session.commit_transaction().into_future()).await {
                Ok(()) => return Step::Committed,
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
                    return Step::Failed { f, commit_sent };
                }
            }
        }
    }
}

#[async_trait]
impl AtomicWrite for TransactionWrite {
    fn covers(&self) -> Covers {
        Covers::Both
    }

    async fn attempt(&self, order: &Order, ctx: &mut AttemptContext) -> Attempt {
        let w = &self.0;
        let deadline = ctx.started + w.op_timeout * (w.pattern.retries + 1);
        match self.run(order, &mut ctx.retries, deadline).await {
            Step::Committed => Attempt::Applied,
            // A commit that may have applied: the outcome is unknown until a later
            // attempt proves it (the order already there) or succeeds.
            Step::Failed {
                f,
                commit_sent: true,
            } => {
                let mut f = f;
                f.outcome = SideOutcome::Unknown;
                f.duplicate_key = false;
                let mut a = f.attempt();
                if Instant::now() >= deadline
                    && let Attempt::Indeterminate(failure) = &mut a
                {
                    failure.retryable = false;
                }
                a
            }
            // The order is already there: an earlier commit whose answer was lost.
            Step::Failed { f, .. } if f.duplicate_key => f.attempt(),
            // Anything before the commit: an uncommitted transaction never applies,
            // whatever the error (a timeout, a closed connection, an unreadable
            // reply), so it is certainly not applied and safe to retry.
            Step::Failed { mut f, .. } => {
                f.outcome = SideOutcome::Fail;
                let mut a = f.attempt();
                if let Attempt::NotApplied(failure) = &mut a {
                    failure.retryable = Instant::now() < deadline;
                }
                a
            }
        }
    }
}

/// `outbox`: the order with its event embedded (`_outbox`), one atomic insert.
pub(crate) struct OutboxWrite(pub(crate) MongoWriter);

#[async_trait]
impl AtomicWrite for OutboxWrite {
    fn covers(&self) -> Covers {
        Covers::PrimaryThenRelay
    }

    async fn attempt(&self, order: &Order, _ctx: &mut AttemptContext) -> Attempt {
        let w = &self.0;
        let mut d = order_doc(order);
        let record = Record::of(order);
        d.insert(
            "_outbox",
            doc! {
                "event": event_doc(&record, Bson::Null),
                "published": false,
                "created_at": mongodb::bson::DateTime::now(),
            },
        );
        let c: Collection<Document> = w.primary.collection(ORDERS);
        match bounded(w.op_timeout, c.insert_one(d).into_future()).await {
            Ok(_) => Attempt::Applied,
            Err(f) => f.attempt(),
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
impl Writer for BareClient {
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

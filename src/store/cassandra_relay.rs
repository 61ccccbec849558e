//! The Cassandra outbox relay: finds pending `order_outbox` rows, claims each with
//! a lightweight transaction, publishes it to `events`, then marks it published.
//!
//! - Claim: `UPDATE ... SET processing = true, claimed_at = ?, claimed_by = ?
//!   IF published = false AND processing = false`; only the worker that reads
//!   `[applied] = true` publishes, so several workers never publish one entry twice.
//! - A claim older than `claim_ttl` belongs to a crashed worker: it is retaken with
//!   a compare-and-set on the old `claimed_at`, so only one worker retakes it.
//! - Mark: `UPDATE ... SET published = true, processing = false IF claimed_by = ?`
//!   (an LWT too: mixing plain writes and LWTs on the same cells is unsafe).
//! - A crash between publish and mark (the crash policy) leaves the claim to expire:
//!   the entry is published again, a duplicate unless the consumer is idempotent.
//!
//! The relay reads and claims through the relay side's session and publishes
//! through the secondary side's session, so each can be faulted separately.

use anyhow::Context;
use async_trait::async_trait;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::Statement;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use std::sync::Arc;
use std::time::Duration;

use super::cassandra::applied;
use crate::order::parse_order_key;
use crate::pattern::Pattern;
use crate::relay::{RelayContext, RelayExit, RelayWorker};

const PAGE: i32 = 500;

pub(crate) struct OutboxRelay {
    relay: Arc<Session>,
    secondary: Arc<Session>,
    outbox: String,
    claim: PreparedStatement,
    retake: PreparedStatement,
    publish: PreparedStatement,
    mark: PreparedStatement,
    idempotent: bool,
    workers: u32,
    claim_ttl: Duration,
    poll_interval: Duration,
}

/// A pending outbox row as the relay reads it.
struct Pending {
    key: String,
    customer_id: i64,
    amount_cents: i64,
    processing: bool,
    claimed_at: Option<CqlTimestamp>,
}

impl OutboxRelay {
    pub(crate) async fn new(
        relay: Arc<Session>,
        secondary: Arc<Session>,
        outbox: &str,
        events: &str,
        pattern: &Pattern,
    ) -> anyhow::Result<Self> {
        let prep = |session: Arc<Session>, cql: String| async move {
            session
                .prepare(cql.clone())
                .await
                .with_context(|| format!("cannot prepare `{cql}`"))
        };
        Ok(Self {
            claim: prep(
                relay.clone(),
                format!(
                    "UPDATE {outbox} SET processing = true, claimed_at = ?, claimed_by = ? WHERE order_id = ? IF published = false AND processing = false"
                ),
            )
            .await?,
            retake: prep(
                relay.clone(),
                format!(
                    "UPDATE {outbox} SET claimed_at = ?, claimed_by = ? WHERE order_id = ? IF published = false AND processing = true AND claimed_at = ?"
                ),
            )
            .await?,
            mark: prep(
                relay.clone(),
                format!(
                    "UPDATE {outbox} SET published = true, processing = false WHERE order_id = ? IF claimed_by = ?"
                ),
            )
            .await?,
            publish: prep(
                secondary.clone(),
                format!(
                    "INSERT INTO {events} (order_id, event_id, customer_id, amount_cents) VALUES (?, ?, ?, ?)"
                ),
            )
            .await?,
            relay,
            secondary,
            outbox: outbox.to_string(),
            idempotent: pattern.relay.idempotent,
            workers: pattern.relay.workers,
            claim_ttl: pattern.relay.claim_ttl,
            poll_interval: pattern.relay.poll_interval,
        })
    }

    /// Every unpublished outbox row, page by page (bounded memory per page; the
    /// pending set itself is what the relay has to work through).
    async fn pending_rows(&self) -> anyhow::Result<Vec<Pending>> {
        let s = Statement::new(format!(
            "SELECT order_id, customer_id, amount_cents, published, processing, claimed_at FROM {}",
            self.outbox
        ))
        .with_page_size(PAGE);
        type Row = (
            String,
            Option<i64>,
            Option<i64>,
            Option<bool>,
            Option<bool>,
            Option<CqlTimestamp>,
        );
        let mut rows = self
            .relay
            .query_iter(s, ())
            .await
            .with_context(|| format!("reading {}", self.outbox))?
            .rows_stream::<Row>()?;
        let mut pending = Vec::new();
        while let Some((key, c, a, published, processing, claimed_at)) = rows.try_next().await? {
            if published == Some(true) {
                continue;
            }
            pending.push(Pending {
                key,
                customer_id: c.unwrap_or_default(),
                amount_cents: a.unwrap_or_default(),
                processing: processing == Some(true),
                claimed_at,
            });
        }
        Ok(pending)
    }

    /// Tries to claim one entry; `true` when this worker now owns it.
    async fn claim(&self, row: &Pending, me: &str, now: CqlTimestamp) -> anyhow::Result<bool> {
        let result = if !row.processing {
            self.relay
                .execute_unpaged(&self.claim, (now, me, &row.key))
                .await?
        } else {
            let Some(old) = row.claimed_at else {
                return Ok(false);
            };
            let age = now.0.saturating_sub(old.0);
            if age < self.claim_ttl.as_millis() as i64 {
                return Ok(false); // another worker holds a live claim
            }
            self.relay
                .execute_unpaged(&self.retake, (now, me, &row.key, old))
                .await?
        };
        applied(result)
    }

    fn event_id(&self, key: &str) -> String {
        if self.idempotent {
            format!("e-{key}")
        } else {
            format!("e-{key}-{:016x}", rand::random::<u64>())
        }
    }
}

fn now() -> CqlTimestamp {
    CqlTimestamp(chrono::Utc::now().timestamp_millis())
}

#[async_trait]
impl RelayWorker for OutboxRelay {
    async fn run(&self, worker: u32, ctx: RelayContext) -> anyhow::Result<RelayExit> {
        // A new identity per incarnation: a restarted worker does not own old claims.
        let me = format!("w{worker}-{:08x}", rand::random::<u32>());
        loop {
            let mut rows = self.pending_rows().await?;
            // Each worker starts at its own share of the pending list, so workers
            // mostly claim different entries instead of racing (and losing Paxos
            // rounds) on the same one; the LWT still decides every race.
            let start = worker as usize * rows.len() / self.workers.max(1) as usize;
            rows.rotate_left(start);
            for row in rows {
                if !self.claim(&row, &me, now()).await? {
                    continue;
                }
                let event_id = self.event_id(&row.key);
                self.secondary
                    .execute_unpaged(
                        &self.publish,
                        (&row.key, &event_id, row.customer_id, row.amount_cents),
                    )
                    .await
                    .with_context(|| format!("publishing {}", row.key))?;
                if let Some(id) = parse_order_key(&row.key) {
                    ctx.delivered(id);
                }
                if ctx.should_crash() {
                    return Ok(RelayExit::Crashed);
                }
                let marked = self
                    .relay
                    .execute_unpaged(&self.mark, (&row.key, &me))
                    .await
                    .with_context(|| format!("marking {} published", row.key))?;
                let _ = applied(marked)?;
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        Ok(self.pending_rows().await?.len() as u64)
    }
}

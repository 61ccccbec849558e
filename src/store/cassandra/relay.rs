//! The Cassandra outbox source of the `outbox` relay: finds pending `order_outbox`
//! rows and claims each with a lightweight transaction; the relay loop publishes
//! it to the sink, then [`RelaySource::done`] marks it published.
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
//! The source reads, claims and marks through the relay side's session; the relay
//! publishes through the sink (the secondary side), so each can be faulted
//! separately.

use anyhow::Context;
use async_trait::async_trait;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, Statement};
use scylla::value::CqlTimestamp;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::applied;
use crate::order::parse_order_key;
use crate::pattern::Pattern;
use crate::relay::{RelaySource, SourceEvent};
use crate::store::Record;

const PAGE: i32 = 500;

pub(crate) struct OutboxSource {
    relay: Arc<Session>,
    outbox: String,
    claim: PreparedStatement,
    retake: PreparedStatement,
    mark: PreparedStatement,
    claim_ttl: Duration,
    /// Per worker: its identity in this incarnation and the pending rows it still
    /// has to try (in flight: replaced on restart).
    workers: Mutex<HashMap<u32, WorkerState>>,
    /// The level of the harness's own count of pending rows ([`RelaySource::pending`],
    /// which decides when the relay has drained), when it must not be the relay's:
    /// on the cluster a relay reading at ONE from a replica that is behind sees
    /// fewer pending rows than there are; the count reads every replica (ALL).
    count_at: Option<Consistency>,
}

#[derive(Default)]
struct WorkerState {
    me: String,
    queue: VecDeque<Pending>,
}

/// A pending outbox row as the relay reads it.
struct Pending {
    key: String,
    customer_id: i64,
    amount_cents: i64,
    processing: bool,
    claimed_at: Option<CqlTimestamp>,
}

impl OutboxSource {
    pub(crate) async fn new(
        relay: Arc<Session>,
        outbox: &str,
        pattern: &Pattern,
        count_at: Option<Consistency>,
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
            relay,
            outbox: outbox.to_string(),
            claim_ttl: pattern.relay.claim_ttl,
            workers: Mutex::default(),
            count_at,
        })
    }

    /// Every unpublished outbox row, page by page (bounded memory per page; the
    /// pending set itself is what the relay has to work through).
    async fn pending_rows(&self, level: Option<Consistency>) -> anyhow::Result<Vec<Pending>> {
        let mut s = Statement::new(format!(
            "SELECT order_id, customer_id, amount_cents, published, processing, claimed_at FROM {}",
            self.outbox
        ))
        .with_page_size(PAGE);
        if let Some(level) = level {
            s.set_consistency(level);
        }
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
                .await
                .with_context(|| format!("claiming {} (LWT)", row.key))?
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
                .await
                .with_context(|| format!("retaking the expired claim on {} (LWT)", row.key))?
        };
        applied(result)
    }
}

fn now() -> CqlTimestamp {
    CqlTimestamp(chrono::Utc::now().timestamp_millis())
}

#[async_trait]
impl RelaySource for OutboxSource {
    async fn start(&self, worker: u32, _workers: u32) -> anyhow::Result<()> {
        // A new identity per incarnation: a restarted worker does not own old claims.
        self.workers.lock().unwrap().insert(
            worker,
            WorkerState {
                me: format!("w{worker}-{:08x}", rand::random::<u32>()),
                queue: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// Claims the next entry this worker can take; one at a time, so a claim is
    /// fresh when its entry is published (a batch of claims could expire first).
    async fn next(&self, worker: u32) -> anyhow::Result<Vec<SourceEvent>> {
        let (me, empty) = {
            let workers = self.workers.lock().unwrap();
            let state = workers.get(&worker).context("worker not started")?;
            (state.me.clone(), state.queue.is_empty())
        };
        if empty {
            let mut rows = self.pending_rows(None).await?;
            // Each worker starts at its own share of the pending list, so workers
            // mostly claim different entries instead of racing (and losing Paxos
            // rounds) on the same one; the LWT still decides every race.
            let n = self.workers.lock().unwrap().len().max(1);
            let start = worker as usize * rows.len() / n;
            rows.rotate_left(start);
            if let Some(state) = self.workers.lock().unwrap().get_mut(&worker) {
                state.queue = rows.into();
            }
        }
        loop {
            let row = self
                .workers
                .lock()
                .unwrap()
                .get_mut(&worker)
                .and_then(|s| s.queue.pop_front());
            let Some(row) = row else {
                return Ok(Vec::new());
            };
            if !self.claim(&row, &me, now()).await? {
                continue;
            }
            let Some(order_id) = parse_order_key(&row.key) else {
                continue;
            };
            return Ok(vec![SourceEvent {
                record: Record {
                    order_id,
                    customer_id: row.customer_id as u64,
                    amount_cents: row.amount_cents as u64,
                },
                position: row.key,
            }]);
        }
    }

    async fn done(&self, worker: u32, events: &[SourceEvent]) -> anyhow::Result<()> {
        let me = self
            .workers
            .lock()
            .unwrap()
            .get(&worker)
            .map(|s| s.me.clone())
            .context("worker not started")?;
        for event in events {
            let marked = self
                .relay
                .execute_unpaged(&self.mark, (&event.position, &me))
                .await
                .with_context(|| format!("marking {} published (LWT)", event.position))?;
            let _ = applied(marked)?;
        }
        Ok(())
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        Ok(self.pending_rows(self.count_at).await?.len() as u64)
    }
}

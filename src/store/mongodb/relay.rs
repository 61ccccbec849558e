//! MongoDB relay sources (the `outbox` and `streams` relays run by
//! `crate::relay::work`).
//!
//! - [`OutboxPollSource`]: polls `{"_outbox.published": false}` (indexed) in steps
//!   of up to 100 entries, handed out as one batch (the sink publishes it with one
//!   unordered insert), then marks them with one conditional update
//!   (`published: false` -> `true`). The step size halves after a step that did
//!   not finish and grows back after successes, so a server slower than the
//!   relay's bound still sees progress. Runs on any server.
//! - [`ChangeStreamSource`]: a change stream on `orders`; the resume token lives in
//!   the source (not in the worker), so a restart after a crash resumes where the
//!   last *finished* event left off and replays the one in flight. Needs change
//!   streams.
//!
//! A crash (the crash policy) happens after publishing and before marking or
//! saving the token: the event is published again after the restart, which an
//! idempotent relay absorbs (stable event id) and a non-idempotent one duplicates.

use async_trait::async_trait;
use mongodb::Database;
use mongodb::bson::{Bson, Document, Timestamp, doc};
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::{ChangeStreamEvent, ResumeToken};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use super::ORDERS;
use super::wire::{Failure, bounded, count, find_page, record_of};
use crate::order::parse_order_key;
use crate::relay::{RelaySource, SourceEvent};
use crate::store::Record;

const BATCH: i32 = 100;

fn fail(what: &str, f: Failure) -> anyhow::Error {
    anyhow::anyhow!("relay: {what}: {} ({})", f.class, f.detail)
}

async fn mark_many(db: &Database, ids: Vec<Bson>, limit: Duration) -> anyhow::Result<()> {
    bounded(
        limit,
        db.collection::<Document>(ORDERS)
            .update_many(
                doc! {"_id": {"$in": ids}, "_outbox.published": false},
                doc! {"$set": {"_outbox.published": true, "_outbox.published_at": mongodb::bson::DateTime::now()}},
            )
            .into_future(),
    )
    .await
    .map(|_| ())
    .map_err(|f| fail("marking outbox entries", f))
}

/// The compared fields of an outbox entry (the event embedded in the order).
fn outbox_record(order: &Document) -> Option<Record> {
    let order_id = parse_order_key(order.get_str("_id").ok()?)?;
    let event = order
        .get_document("_outbox")
        .ok()?
        .get_document("event")
        .ok();
    let mut record = event
        .and_then(|e| record_of(e, "order_id"))
        .or_else(|| record_of(order, "_id"))?;
    record.order_id = order_id;
    Some(record)
}

async fn unpublished(db: &Database, limit: Duration) -> anyhow::Result<u64> {
    count(db, ORDERS, doc! {"_outbox.published": false}, limit)
        .await
        .map_err(|f| fail("counting unpublished outbox entries", f))
}

pub(crate) struct OutboxPollSource {
    /// Reached through the relay side's proxy.
    relay: Database,
    /// For `pending()` (asked by the supervisor, not part of the system under test).
    primary: Database,
    op_timeout: Duration,
    /// Entries per step, adapted to how fast the server answers (kept across
    /// worker restarts: it lives here, not in the worker's future).
    batch: AtomicI32,
    /// A step was handed out and not finished (published and marked).
    outstanding: AtomicBool,
}

impl OutboxPollSource {
    pub(crate) fn new(relay: Database, primary: Database, op_timeout: Duration) -> Self {
        Self {
            relay,
            primary,
            op_timeout,
            batch: AtomicI32::new(BATCH),
            outstanding: AtomicBool::new(false),
        }
    }

    fn limit(&self) -> Duration {
        self.op_timeout.max(Duration::from_secs(2))
    }
}

#[async_trait]
impl RelaySource for OutboxPollSource {
    async fn start(&self, _worker: u32, _workers: u32) -> anyhow::Result<()> {
        Ok(())
    }

    async fn next(&self, _worker: u32) -> anyhow::Result<Vec<SourceEvent>> {
        let size = self.batch.load(Ordering::Relaxed);
        // The last step did not finish (typically it ran out of time and is redone
        // from the poll): halve it, so a slow server (FerretDB marks ~15 ms per
        // entry under load) cannot make the relay redo the same too-large batch
        // forever. A finished step grows it back towards the full batch.
        let size = if self.outstanding.swap(true, Ordering::Relaxed) {
            (size / 2).max(1)
        } else {
            (size + size / 4 + 1).min(BATCH)
        };
        self.batch.store(size, Ordering::Relaxed);
        let batch = find_page(
            &self.relay,
            ORDERS,
            doc! {"_outbox.published": false},
            0,
            size,
            self.limit(),
        )
        .await
        .map_err(|f| fail("polling the outbox", f))?;
        let events: Vec<SourceEvent> = batch
            .iter()
            .filter_map(|o| {
                Some(SourceEvent {
                    record: outbox_record(o)?,
                    position: o.get_str("_id").ok()?.to_string(),
                })
            })
            .collect();
        if events.is_empty() {
            self.outstanding.store(false, Ordering::Relaxed);
        }
        Ok(events)
    }

    async fn done(&self, _worker: u32, events: &[SourceEvent]) -> anyhow::Result<()> {
        let ids: Vec<Bson> = events
            .iter()
            .map(|e| Bson::String(e.position.clone()))
            .collect();
        mark_many(&self.relay, ids, self.limit()).await?;
        self.outstanding.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn batches(&self) -> bool {
        true
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        unpublished(&self.primary, self.limit()).await
    }
}

/// A change stream on `orders`, one per worker (its in-flight state).
pub(crate) struct ChangeStreamSource {
    relay: Database,
    primary: Database,
    /// `outbox`: publish the embedded event and mark it; `streams`: copy the order.
    outbox: bool,
    op_timeout: Duration,
    poll_interval: Duration,
    /// The last fully handled event; survives worker crashes (it lives here).
    token: Mutex<Option<ResumeToken>>,
    /// Where the first stream starts, so orders written before it opens are seen.
    start_at: Option<Timestamp>,
    streams: tokio::sync::Mutex<HashMap<u32, ChangeStream<ChangeStreamEvent<Document>>>>,
    /// Resume tokens of the events handed out, by order id.
    tokens: Mutex<HashMap<u64, ResumeToken>>,
    delivered: Mutex<HashSet<u64>>,
}

impl ChangeStreamSource {
    pub(crate) async fn new(
        relay: Database,
        primary: Database,
        outbox: bool,
        op_timeout: Duration,
        poll_interval: Duration,
    ) -> Self {
        // A replica set stamps every answer with its operation time.
        let start_at = bounded(
            op_timeout.max(Duration::from_secs(2)),
            relay.run_command(doc! {"ping": 1}).into_future(),
        )
        .await
        .ok()
        .and_then(|d| d.get_timestamp("operationTime").ok());
        Self {
            relay,
            primary,
            outbox,
            op_timeout,
            poll_interval,
            token: Mutex::new(None),
            start_at,
            streams: tokio::sync::Mutex::default(),
            tokens: Mutex::default(),
            delivered: Mutex::default(),
        }
    }

    fn limit(&self) -> Duration {
        self.op_timeout.max(Duration::from_secs(2))
    }
}

#[async_trait]
impl RelaySource for ChangeStreamSource {
    async fn start(&self, worker: u32, _workers: u32) -> anyhow::Result<()> {
        self.streams.lock().await.remove(&worker);
        Ok(())
    }

    async fn next(&self, worker: u32) -> anyhow::Result<Vec<SourceEvent>> {
        let mut streams = self.streams.lock().await;
        let stream = match streams.entry(worker) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let token = self.token.lock().unwrap().clone();
                let orders = self.relay.collection::<Document>(ORDERS);
                let mut watch = orders
                    .watch()
                    .pipeline([doc! {"$match": {"operationType": "insert"}}]);
                watch = match (token, self.start_at) {
                    (Some(t), _) => watch.resume_after(t),
                    (None, Some(ts)) => watch.start_at_operation_time(ts),
                    (None, None) => watch,
                };
                let stream = bounded(self.limit(), watch.into_future())
                    .await
                    .map_err(|f| fail("opening the change stream on orders", f))?;
                slot.insert(stream)
            }
        };
        let event = bounded(
            Duration::from_secs(30).min(self.poll_interval * 100),
            stream.next_if_any(),
        )
        .await
        .map_err(|f| fail("reading the change stream", f))?;
        let Some(event) = event else {
            // An empty batch still moves the token forward.
            if let Some(t) = stream.resume_token() {
                *self.token.lock().unwrap() = Some(t);
            }
            return Ok(Vec::new());
        };
        let record = event.full_document.as_ref().and_then(|order| {
            if self.outbox {
                outbox_record(order)
            } else {
                record_of(order, "_id")
            }
        });
        let Some(record) = record else {
            *self.token.lock().unwrap() = Some(event.id.clone());
            return Ok(Vec::new());
        };
        self.tokens
            .lock()
            .unwrap()
            .insert(record.order_id, event.id.clone());
        Ok(vec![SourceEvent {
            record,
            position: crate::order::order_key(record.order_id),
        }])
    }

    async fn done(&self, _worker: u32, events: &[SourceEvent]) -> anyhow::Result<()> {
        for e in events {
            if self.outbox {
                mark_many(
                    &self.relay,
                    vec![Bson::String(e.position.clone())],
                    self.limit(),
                )
                .await?;
            }
            self.delivered.lock().unwrap().insert(e.record.order_id);
            if let Some(t) = self.tokens.lock().unwrap().remove(&e.record.order_id) {
                *self.token.lock().unwrap() = Some(t);
            }
        }
        Ok(())
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        if self.outbox {
            return unpublished(&self.primary, self.limit()).await;
        }
        let orders = count(&self.primary, ORDERS, doc! {}, self.limit())
            .await
            .map_err(|f| fail("counting orders", f))?;
        let delivered = self.delivered.lock().unwrap().len() as u64;
        Ok(orders.saturating_sub(delivered))
    }
}

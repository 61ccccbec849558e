//! MongoDB relays (the background workers of `outbox` and `streams`), supervised
//! by [`crate::relay::Relay`].
//!
//! - [`OutboxPollRelay`]: polls `{"_outbox.published": false}` (indexed), publishes
//!   each event to `order_events`, then marks it with a conditional update
//!   (`published: false` -> `true`). Runs on any server.
//! - [`StreamRelay`]: a change stream on `orders`; the resume token lives in the
//!   worker (not in the task), so a restart after a crash resumes where the last
//!   *finished* event left off and replays the one in flight. Needs change streams.
//!
//! A crash (the crash policy) happens after publishing and before marking or
//! saving the token: the event is published again after the restart, which an
//! idempotent relay absorbs (stable event id) and a non-idempotent one duplicates.

use async_trait::async_trait;
use mongodb::Database;
use mongodb::bson::{Bson, Document, Timestamp, doc};
use mongodb::change_stream::event::ResumeToken;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use super::mongodb::{
    EVENTS, Failure, ORDERS, bounded, count, event_doc, event_id, find_page, record_of,
};
use crate::order::parse_order_key;
use crate::pattern::{KeyPolicy, RelayOptions};
use crate::relay::{RelayContext, RelayExit, RelayWorker};
use crate::store::Record;

const BATCH: i32 = 100;

fn fail(what: &str, f: Failure) -> anyhow::Error {
    anyhow::anyhow!("relay: {what}: {} ({})", f.class, f.detail)
}

fn policy(options: &RelayOptions) -> KeyPolicy {
    if options.idempotent {
        KeyPolicy::Stable
    } else {
        KeyPolicy::Fresh
    }
}

/// Publishes one order's event to `order_events`. A duplicate stable id means an
/// earlier (crashed) attempt already published it: done.
async fn publish(
    db: &Database,
    record: &Record,
    options: &RelayOptions,
    limit: Duration,
) -> anyhow::Result<()> {
    let d = event_doc(record, event_id(record.order_id, policy(options)));
    match bounded(
        limit,
        db.collection::<Document>(EVENTS)
            .insert_one(d)
            .into_future(),
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(f) if f.duplicate_key => Ok(()),
        Err(f) => Err(fail("publishing to order_events", f)),
    }
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

/// Marks an outbox entry published, only if still unpublished.
async fn mark(db: &Database, id: &Bson, limit: Duration) -> anyhow::Result<()> {
    bounded(
        limit,
        db.collection::<Document>(ORDERS)
            .update_one(
                doc! {"_id": id.clone(), "_outbox.published": false},
                doc! {"$set": {"_outbox.published": true, "_outbox.published_at": mongodb::bson::DateTime::now()}},
            )
            .into_future(),
    )
    .await
    .map(|_| ())
    .map_err(|f| fail("marking the outbox entry", f))
}

async fn unpublished(db: &Database, limit: Duration) -> anyhow::Result<u64> {
    count(db, ORDERS, doc! {"_outbox.published": false}, limit)
        .await
        .map_err(|f| fail("counting unpublished outbox entries", f))
}

pub(crate) struct OutboxPollRelay {
    /// Reached through the relay side's proxy.
    relay: Database,
    /// For `pending()` (asked by the supervisor, not part of the system under test).
    primary: Database,
    options: RelayOptions,
    op_timeout: Duration,
}

impl OutboxPollRelay {
    pub(crate) fn new(
        relay: Database,
        primary: Database,
        options: RelayOptions,
        op_timeout: Duration,
    ) -> Self {
        Self {
            relay,
            primary,
            options,
            op_timeout,
        }
    }
}

#[async_trait]
impl RelayWorker for OutboxPollRelay {
    async fn run(&self, _worker: u32, ctx: RelayContext) -> anyhow::Result<RelayExit> {
        let limit = self.op_timeout.max(Duration::from_secs(2));
        loop {
            let batch = find_page(
                &self.relay,
                ORDERS,
                doc! {"_outbox.published": false},
                0,
                BATCH,
                limit,
            )
            .await
            .map_err(|f| fail("polling the outbox", f))?;
            if batch.is_empty() {
                tokio::time::sleep(self.options.poll_interval).await;
                continue;
            }
            for order in batch {
                let (Some(record), Some(id)) = (outbox_record(&order), order.get("_id")) else {
                    continue; // not an order this tool wrote
                };
                publish(&self.relay, &record, &self.options, limit).await?;
                ctx.delivered(record.order_id);
                if ctx.should_crash() {
                    return Ok(RelayExit::Crashed);
                }
                mark(&self.relay, id, limit).await?;
            }
        }
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        unpublished(&self.primary, self.op_timeout.max(Duration::from_secs(2))).await
    }
}

pub(crate) struct StreamRelay {
    relay: Database,
    primary: Database,
    /// `outbox`: publish the embedded event and mark it; `streams`: copy the order.
    outbox: bool,
    options: RelayOptions,
    op_timeout: Duration,
    /// The last fully handled event; survives worker crashes (it lives in `self`).
    token: Mutex<Option<ResumeToken>>,
    /// Where the first stream starts, so orders written before it opens are seen.
    start_at: Option<Timestamp>,
    delivered: Mutex<HashSet<u64>>,
}

impl StreamRelay {
    pub(crate) async fn new(
        relay: Database,
        primary: Database,
        outbox: bool,
        options: RelayOptions,
        op_timeout: Duration,
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
            options,
            op_timeout,
            token: Mutex::new(None),
            start_at,
            delivered: Mutex::new(HashSet::new()),
        }
    }
}

#[async_trait]
impl RelayWorker for StreamRelay {
    async fn run(&self, _worker: u32, ctx: RelayContext) -> anyhow::Result<RelayExit> {
        let limit = self.op_timeout.max(Duration::from_secs(2));
        let orders = self.relay.collection::<Document>(ORDERS);
        let token = self.token.lock().unwrap().clone();
        let mut watch = orders
            .watch()
            .pipeline([doc! {"$match": {"operationType": "insert"}}]);
        watch = match (token, self.start_at) {
            (Some(t), _) => watch.resume_after(t),
            (None, Some(ts)) => watch.start_at_operation_time(ts),
            (None, None) => watch,
        };
        let mut stream = bounded(limit, watch.into_future())
            .await
            .map_err(|f| fail("opening the change stream on orders", f))?;
        loop {
            let event = bounded(Duration::from_secs(30), stream.next_if_any())
                .await
                .map_err(|f| fail("reading the change stream", f))?;
            let Some(event) = event else {
                // An empty batch still moves the token forward.
                if let Some(t) = stream.resume_token() {
                    *self.token.lock().unwrap() = Some(t);
                }
                tokio::time::sleep(self.options.poll_interval.min(Duration::from_millis(100)))
                    .await;
                continue;
            };
            let Some(order) = event.full_document.as_ref() else {
                continue;
            };
            let record = if self.outbox {
                outbox_record(order)
            } else {
                record_of(order, "_id")
            };
            if let Some(record) = record {
                publish(&self.relay, &record, &self.options, limit).await?;
                self.delivered.lock().unwrap().insert(record.order_id);
                ctx.delivered(record.order_id);
                if ctx.should_crash() {
                    return Ok(RelayExit::Crashed);
                }
                if self.outbox
                    && let Some(id) = order.get("_id")
                {
                    mark(&self.relay, id, limit).await?;
                }
            }
            *self.token.lock().unwrap() = Some(event.id.clone());
        }
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        let limit = self.op_timeout.max(Duration::from_secs(2));
        if self.outbox {
            return unpublished(&self.primary, limit).await;
        }
        let orders = count(&self.primary, ORDERS, doc! {}, limit)
            .await
            .map_err(|f| fail("counting orders", f))?;
        let delivered = self.delivered.lock().unwrap().len() as u64;
        Ok(orders.saturating_sub(delivered))
    }
}

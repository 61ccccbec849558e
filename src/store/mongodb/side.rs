//! A MongoDB collection as a side: `orders` (`_id` = order key) or `order_events`
//! (`_id` = event id, `order_id` an attribute, so a non-idempotent writer can
//! duplicate). Writes go through the side's own client (its proxy), each bounded
//! by the workload's op_timeout; scans use a fresh client each time.

use anyhow::Context;
use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};
use mongodb::{Client, Collection, Database};
use std::time::Duration;

use super::conn::MongoConn;
use super::wire::{bounded, event_doc, event_id, find_page, order_doc, record_of};
use super::{EVENTS, ORDERS};
use crate::order::{Order, order_key};
use crate::pattern::KeyPolicy;
use crate::pattern::outcome::Attempt;
use crate::scenario::Side;
use crate::store::{Record, ScanSink, SideStore, StoreContext};

const SCAN_PAGE: i32 = 5000;

pub(crate) struct MongoSide {
    pub(crate) client: Client,
    pub(crate) conn: std::sync::Arc<MongoConn>,
    pub(crate) side: Side,
    pub(crate) ctx: StoreContext,
    pub(crate) op_timeout: Duration,
}

impl MongoSide {
    fn db(&self) -> Database {
        self.client.database(&self.ctx.namespace)
    }

    fn collection(&self) -> &'static str {
        if self.side == Side::Primary {
            ORDERS
        } else {
            EVENTS
        }
    }

    async fn insert(&self, d: Document) -> Attempt {
        let c: Collection<Document> = self.db().collection(self.collection());
        match bounded(self.op_timeout, c.insert_one(d).into_future()).await {
            Ok(_) => Attempt::Applied,
            Err(f) => f.attempt(),
        }
    }
}

#[async_trait]
impl SideStore for MongoSide {
    fn describe(&self) -> String {
        format!(
            "mongodb collection {}.{}",
            self.ctx.namespace,
            self.collection()
        )
    }

    async fn write_order(&self, order: &Order, _timestamp_us: i64) -> Attempt {
        self.insert(order_doc(order)).await
    }

    async fn write_event(&self, record: &Record, key: KeyPolicy, _timestamp_us: i64) -> Attempt {
        self.insert(event_doc(record, event_id(record.order_id, key)))
            .await
    }

    /// One unordered insert for a relay's batch; only duplicate keys (stable ids an
    /// earlier incarnation published) means every event is there.
    async fn write_events(&self, records: &[Record], key: KeyPolicy) -> Attempt {
        if records.is_empty() {
            return Attempt::Applied;
        }
        let docs = records
            .iter()
            .map(|r| event_doc(r, event_id(r.order_id, key)));
        let c: Collection<Document> = self.db().collection(EVENTS);
        let limit = self.op_timeout.max(Duration::from_secs(2));
        match bounded(limit, c.insert_many(docs).ordered(false).into_future()).await {
            Ok(_) => Attempt::Applied,
            Err(f) => f.attempt(),
        }
    }

    async fn scan(&self, sink: &mut dyn ScanSink) -> anyhow::Result<()> {
        let key = if self.side == Side::Primary {
            "_id"
        } else {
            "order_id"
        };
        let name = self.collection();
        let limit = Duration::from_secs(60).max(self.op_timeout);
        // A fresh client, so no pooled session is reused: mongoeco answers reads
        // on a session whose transaction was cut by a fault from that transaction's
        // snapshot (seen here: a scan returned 83 of 334 orders).
        let client = self.conn.client()?;
        let db = client.database(&self.ctx.namespace);
        let mut skip = 0;
        loop {
            let page = find_page(&db, name, doc! {}, skip, SCAN_PAGE, limit)
                .await
                .map_err(|f| {
                    anyhow::anyhow!("scan of {}.{name} failed: {}", db.name(), f.detail)
                })?;
            for d in &page {
                match record_of(d, key) {
                    Some(r) => sink.record(r),
                    None => sink.foreign(&match d.get("_id") {
                        Some(Bson::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => "?".into(),
                    }),
                }
            }
            if page.len() < SCAN_PAGE as usize {
                return Ok(());
            }
            skip += SCAN_PAGE;
        }
    }

    async fn plant(&self, record: Record, copies: u32) -> anyhow::Result<()> {
        let db = self.db();
        for _ in 0..copies.max(1) {
            let d = if self.side == Side::Primary {
                doc! {
                    "_id": order_key(record.order_id),
                    "customer_id": record.customer_id as i64,
                    "amount_cents": record.amount_cents as i64,
                }
            } else {
                event_doc(&record, event_id(record.order_id, KeyPolicy::Fresh))
            };
            db.collection::<Document>(self.collection())
                .insert_one(d)
                .await
                .with_context(|| format!("planting into {}.{}", db.name(), self.collection()))?;
        }
        Ok(())
    }

    async fn plant_foreign(&self, key: &str) -> anyhow::Result<()> {
        self.db()
            .collection::<Document>(self.collection())
            .insert_one(doc! {"_id": key})
            .await
            .context("planting a foreign record")?;
        Ok(())
    }
}

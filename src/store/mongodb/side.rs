//! A MongoDB collection as a side: `orders` (`_id` = order key) or `order_events`
//! (`_id` = event id, `order_id` an attribute, so a non-idempotent writer can
//! duplicate). Writes go through the side's own client (its proxy), each bounded
//! by the workload's op_timeout; scans use a fresh client each time.
//!
//! With `[app]` a side is the service's collection, read and planted through its
//! [`Layout`] (its database, collection and field names, this run's id prefix).

use anyhow::Context;
use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};
use mongodb::{Client, Collection, Database};
use std::time::Duration;

use super::conn::MongoConn;
use super::wire::{bounded, event_doc, event_id, find_page, order_doc, read_count, record_of};
use super::{EVENTS, ORDERS};
use crate::order::{Order, order_key};
use crate::pattern::KeyPolicy;
use crate::pattern::outcome::Attempt;
use crate::scenario::Side;
use crate::store::layout::{Id, Layout, number, service_writes};
use crate::store::{ReadOptions, ReadOutcome, Record, ScanSink, SideStore, StoreContext};
use std::sync::Arc;

const SCAN_PAGE: i32 = 5000;

pub(crate) struct MongoSide {
    pub(crate) client: Client,
    pub(crate) conn: std::sync::Arc<MongoConn>,
    pub(crate) side: Side,
    pub(crate) ctx: StoreContext,
    pub(crate) op_timeout: Duration,
    /// `[app]`: the service's layout of this collection.
    pub(crate) app: Option<Arc<Layout>>,
}

impl MongoSide {
    fn db(&self) -> Database {
        match self.app.as_ref().and_then(|l| l.database.as_deref()) {
            Some(db) => self.client.database(db),
            None => self.client.database(&self.ctx.namespace),
        }
    }

    fn collection(&self) -> &str {
        if let Some(l) = &self.app {
            return &l.table;
        }
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
            self.db().name(),
            self.collection()
        )
    }

    async fn write_order(&self, order: &Order, _timestamp_us: i64) -> Attempt {
        if self.app.is_some() {
            return service_writes();
        }
        self.insert(order_doc(order)).await
    }

    async fn write_event(&self, record: &Record, key: KeyPolicy, _timestamp_us: i64) -> Attempt {
        if self.app.is_some() {
            return service_writes();
        }
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

    async fn read(&self, record: &Record, how: &ReadOptions) -> ReadOutcome {
        // Orders by `_id`; events by `order_id` (indexed in prepare when the
        // scenario has readers), whatever their ids.
        let key = if self.side == Side::Primary {
            "_id"
        } else {
            "order_id"
        };
        let filter = doc! {key: order_key(record.order_id)};
        match read_count(
            &self.db(),
            self.collection(),
            filter,
            how.consistency.read_concern.as_deref(),
            self.op_timeout,
        )
        .await
        {
            Ok(n) => ReadOutcome::Ok(n),
            Err(f) => ReadOutcome::failed(f.attempt()),
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
        let db = client.database(self.db().name());
        let mut skip = 0;
        loop {
            let page = find_page(&db, name, doc! {}, skip, SCAN_PAGE, limit)
                .await
                .map_err(|f| {
                    anyhow::anyhow!("scan of {}.{name} failed: {}", db.name(), f.detail)
                })?;
            for d in &page {
                if let Some(layout) = &self.app {
                    read_app_doc(layout, d, sink);
                    continue;
                }
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
        for copy in 0..copies.max(1) {
            let d = if let Some(layout) = &self.app {
                app_doc(layout, &record, layout.plant_key(record.order_id, copy))
            } else if self.side == Side::Primary {
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
        let d = match &self.app {
            // This run's prefix on an id this tool never makes: a stray.
            Some(l) => {
                let id = format!("{}{key}", l.prefix);
                let mut d = doc! {"_id": &id};
                d.insert(l.order_id.clone(), id);
                d
            }
            None => doc! {"_id": key},
        };
        self.db()
            .collection::<Document>(self.collection())
            .insert_one(d)
            .await
            .context("planting a foreign record")?;
        Ok(())
    }
}

/// `[app]`: one document of the service's collection to the checker: this run's
/// orders as records, this run's prefix on anything else as a stray, other runs'
/// documents skipped. Numbers compare numerically (int32, int64, double, digits).
fn read_app_doc(layout: &Layout, d: &Document, sink: &mut dyn ScanSink) {
    let id = match d.get(&layout.order_id) {
        Some(Bson::String(s)) => s.clone(),
        _ => return,
    };
    let field = |name: &Option<String>| match name {
        None => 0,
        Some(n) => match d.get(n) {
            Some(Bson::Int32(v)) => *v as u64,
            Some(Bson::Int64(v)) => *v as u64,
            Some(Bson::Double(v)) => number(&v.to_string()),
            Some(Bson::String(s)) => number(s),
            Some(Bson::Decimal128(v)) => number(&v.to_string()),
            _ => u64::MAX,
        },
    };
    match layout.read_id(&id) {
        Id::Mine(order_id) => sink.record(Record {
            order_id,
            customer_id: field(&layout.customer_id),
            amount_cents: field(&layout.amount_cents),
        }),
        Id::Stray => sink.foreign(&id),
        Id::Other => {}
    }
}

/// `[app]`: a planted document in the service's names (numbers as int64).
fn app_doc(layout: &Layout, record: &Record, key: String) -> Document {
    let mut d = doc! {"_id": key};
    d.insert(layout.order_id.clone(), layout.stored_id(record.order_id));
    if let Some(c) = &layout.customer_id {
        d.insert(c.clone(), record.customer_id as i64);
    }
    if let Some(a) = &layout.amount_cents {
        d.insert(a.clone(), record.amount_cents as i64);
    }
    d
}

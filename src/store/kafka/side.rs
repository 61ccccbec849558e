//! A Kafka topic as the secondary side: `<namespace>.events`, one partition.
//!
//! Every write appends one message keyed by the order key (`o000000000042`),
//! payload `{"customer_id":..,"amount_cents":..}`. A topic has no overwrite: a
//! second publication of an order is a second message whatever its key, so the
//! scan yields one record per message and the checker counts every extra one as
//! a duplicate (what a consumer would process twice). A message whose key is not
//! an order key, or whose payload is not an event, is foreign (a stray).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use super::produce::Producer;
use super::read::{Raw, read_topic};
use crate::order::{Order, order_key, parse_order_key};
use crate::pattern::KeyPolicy;
use crate::pattern::outcome::{Attempt, Failure};
use crate::store::{ReadOptions, ReadOutcome, Record, ScanSink, SideStore};

/// The checker's scan is not bounded by op_timeout, only by this.
pub(crate) const SCAN_LIMIT: Duration = Duration::from_secs(120);

/// The message payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Event {
    pub customer_id: u64,
    pub amount_cents: u64,
}

pub(crate) fn payload(record: &Record) -> Vec<u8> {
    serde_json::to_vec(&Event {
        customer_id: record.customer_id,
        amount_cents: record.amount_cents,
    })
    .expect("an event serialises")
}

/// A message as the checker sees it: a record, or the key of a foreign one.
pub(crate) fn record_of(raw: &Raw) -> Result<Record, String> {
    let key = raw
        .0
        .as_deref()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    let event = raw
        .1
        .as_deref()
        .and_then(|p| serde_json::from_slice::<Event>(p).ok());
    match (parse_order_key(&key), event) {
        (Some(order_id), Some(e)) => Ok(Record {
            order_id,
            customer_id: e.customer_id,
            amount_cents: e.amount_cents,
        }),
        _ => Err(if key.is_empty() {
            "(no key)".to_string()
        } else {
            key
        }),
    }
}

pub(crate) struct KafkaSide {
    pub(crate) producer: Arc<Producer>,
    pub(crate) endpoint: String,
    pub(crate) topic: String,
}

#[async_trait]
impl SideStore for KafkaSide {
    fn describe(&self) -> String {
        format!("kafka topic {}", self.topic)
    }

    async fn write_order(&self, _order: &Order, _timestamp_us: i64) -> Attempt {
        // Validation keeps Kafka off the primary side (holds_primary = false).
        Attempt::NotApplied(Failure::new(
            "unsupported",
            "a Kafka topic holds only the secondary side",
        ))
    }

    /// One append. The key policy cannot make a replay an overwrite here (a topic
    /// appends): the message is keyed by the order either way.
    async fn write_event(&self, record: &Record, _key: KeyPolicy, _timestamp_us: i64) -> Attempt {
        self.producer
            .produce(&self.topic, &order_key(record.order_id), &payload(record))
            .await
    }

    /// A relay's batch: every message in flight at once.
    async fn write_events(&self, records: &[Record], _key: KeyPolicy) -> Attempt {
        let items: Vec<(String, Vec<u8>)> = records
            .iter()
            .map(|r| (order_key(r.order_id), payload(r)))
            .collect();
        self.producer.produce_all(&self.topic, &items).await
    }

    async fn read(&self, _record: &Record, _how: &ReadOptions) -> ReadOutcome {
        // Refused at validation (the registry's `reads: None`): never sent.
        ReadOutcome::Fail(Failure::new(
            "not-readable",
            "a Kafka topic has no point read by order",
        ))
    }

    async fn scan(&self, sink: &mut dyn ScanSink) -> anyhow::Result<()> {
        let (endpoint, topic) = (self.endpoint.clone(), self.topic.clone());
        let messages =
            tokio::task::spawn_blocking(move || read_topic(&endpoint, &topic, SCAN_LIMIT))
                .await??;
        for raw in &messages {
            match record_of(raw) {
                Ok(r) => sink.record(r),
                Err(key) => sink.foreign(&key),
            }
        }
        Ok(())
    }

    async fn plant(&self, record: Record, copies: u32) -> anyhow::Result<()> {
        for _ in 0..copies.max(1) {
            match self.write_event(&record, KeyPolicy::Stable, 0).await {
                Attempt::Applied => {}
                other => anyhow::bail!("planting {}: {other:?}", order_key(record.order_id)),
            }
        }
        Ok(())
    }

    async fn plant_foreign(&self, key: &str) -> anyhow::Result<()> {
        match self.producer.produce(&self.topic, key, b"foreign").await {
            Attempt::Applied => Ok(()),
            other => anyhow::bail!("planting a foreign message: {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_a_record_when_keyed_by_an_order_with_an_event_payload() {
        let r = Record {
            order_id: 42,
            customer_id: 7,
            amount_cents: 1999,
        };
        let raw = (Some(order_key(42).into_bytes()), Some(payload(&r)));
        assert_eq!(record_of(&raw), Ok(r));
        let foreign = (Some(b"not-an-order".to_vec()), Some(payload(&r)));
        assert_eq!(record_of(&foreign), Err("not-an-order".to_string()));
        let garbled = (Some(order_key(42).into_bytes()), Some(b"foreign".to_vec()));
        assert_eq!(record_of(&garbled), Err(order_key(42)));
        assert_eq!(record_of(&(None, None)), Err("(no key)".to_string()));
    }
}

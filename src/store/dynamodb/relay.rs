//! The DynamoDB Streams source of the `streams` and `outbox` relays.
//!
//! ListStreams → DescribeStream (all shards) → GetShardIterator → GetRecords,
//! following each shard's iterators; every call goes through the RELAY side's
//! proxy, and so do the outbox clears, so a fault on the relay side hits the
//! relay's reads and marks; its publishes go to the sink (the secondary side).
//!
//! Per event, the relay loop (`crate::relay::work`) publishes, then — the crash
//! point — calls [`RelaySource::done`], which (outbox) clears `outbox_pending`
//! with a conditional update and then saves the checkpoint (the shard's sequence
//! number). Checkpoints live in this struct, not in a worker's future, so they
//! survive an abort (a `relay-crash` fault) and a self-crash alike: a restarted
//! worker resumes AFTER_SEQUENCE_NUMBER of the checkpoint and replays what it had
//! not checkpointed. Any failed call ends the worker with an error; the
//! supervisor restarts it from the checkpoint, as a real consumer process would.

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::Client as StreamsClient;
use aws_sdk_dynamodbstreams::types::{
    AttributeValue as StreamValue, OperationType, ShardIteratorType,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::side::error_text;
use crate::order::parse_order_key;
use crate::relay::{RelaySource, SourceEvent};
use crate::store::Record;

/// What the relay publishes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    /// Every insert/modify of an order (the `streams` pattern).
    Changes,
    /// Only images with `outbox_pending = true`, read from their `outbox_event`.
    Outbox,
}

#[derive(Debug, Default)]
struct RelayState {
    /// Worker -> shard -> its next iterator (in flight: dropped on restart).
    iterators: BTreeMap<u32, BTreeMap<String, String>>,
    /// Orders handed out again for a reason of the source's own: the outbox flag
    /// set again after the relay had cleared it (an old image with
    /// `outbox_pending = false`, a new one with `true`), or a record whose old and
    /// new images are equal (moto writes one for a put that changes nothing).
    causes: Vec<(u64, &'static str)>,
    stream_arn: Option<String>,
    /// Shard id -> last sequence number fully processed.
    checkpoints: BTreeMap<String, String>,
    /// Shards whose iterator chain ended (closed and fully read).
    finished: HashSet<String>,
    /// Orders whose event reached the secondary (for `pending` in the streams pattern).
    delivered: HashSet<u64>,
}

pub(crate) struct StreamsSource {
    streams: StreamsClient,
    /// Relay side: outbox clears and pending scans of the orders table.
    dynamo: Client,
    orders: String,
    source: Feed,
    /// How many workers share the shards (set when a worker starts).
    workers: AtomicU32,
    state: Mutex<RelayState>,
}

impl StreamsSource {
    pub fn new(streams: StreamsClient, dynamo: Client, orders: String, source: Feed) -> Self {
        Self {
            streams,
            dynamo,
            orders,
            source,
            workers: AtomicU32::new(1),
            state: Mutex::default(),
        }
    }

    async fn stream_arn(&self) -> anyhow::Result<String> {
        if let Some(arn) = self.state.lock().unwrap().stream_arn.clone() {
            return Ok(arn);
        }
        let out = self
            .streams
            .list_streams()
            .table_name(&self.orders)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ListStreams failed: {}", error_text(&e)))?;
        let arn = out
            .streams()
            .iter()
            .find_map(|s| s.stream_arn().map(str::to_string))
            .with_context(|| {
                format!(
                    "table {} has no stream (it is created with NEW_AND_OLD_IMAGES for async patterns)",
                    self.orders
                )
            })?;
        self.state.lock().unwrap().stream_arn = Some(arn.clone());
        Ok(arn)
    }

    /// Every shard id of the stream, following DescribeStream's pages.
    async fn shards(&self, arn: &str) -> anyhow::Result<Vec<String>> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("DescribeStream failed: {}", error_text(&e)))?;
            let Some(desc) = out.stream_description() else {
                return Ok(shards);
            };
            shards.extend(
                desc.shards()
                    .iter()
                    .filter_map(|s| s.shard_id().map(str::to_string)),
            );
            match desc.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_string()),
                None => return Ok(shards),
            }
        }
    }

    /// An iterator resuming after the shard's checkpoint (or at its start).
    async fn iterator(&self, arn: &str, shard: &str) -> anyhow::Result<Option<String>> {
        let checkpoint = self.state.lock().unwrap().checkpoints.get(shard).cloned();
        let req = self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard);
        let req = match checkpoint {
            Some(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let out = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetShardIterator failed: {}", error_text(&e)))?;
        Ok(out.shard_iterator().map(str::to_string))
    }

    /// The record to publish for one stream image, if this relay publishes it.
    fn event_of(&self, image: &HashMap<String, StreamValue>) -> Option<Record> {
        let order_id = match image.get("order_id") {
            Some(StreamValue::S(s)) => parse_order_key(s)?,
            _ => return None,
        };
        let fields = match self.source {
            Feed::Changes => image,
            Feed::Outbox => {
                if !matches!(image.get("outbox_pending"), Some(StreamValue::Bool(true))) {
                    return None; // already published and cleared (or never an outbox item)
                }
                match image.get("outbox_event") {
                    Some(StreamValue::M(event)) => event,
                    _ => return None,
                }
            }
        };
        let n = |k: &str| match fields.get(k) {
            Some(StreamValue::N(n)) => n.parse().unwrap_or(u64::MAX),
            _ => u64::MAX,
        };
        Some(Record {
            order_id,
            customer_id: n("customer_id"),
            amount_cents: n("amount_cents"),
        })
    }

    /// Outbox: `outbox_pending = true` -> false, only if it is still true.
    async fn clear(&self, order_key: &str) -> anyhow::Result<()> {
        let result = self
            .dynamo
            .update_item()
            .table_name(&self.orders)
            .key("order_id", AttributeValue::S(order_key.to_string()))
            .update_expression("SET outbox_pending = :false")
            .condition_expression("outbox_pending = :true")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone (an earlier run of this relay) cleared it already.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!("outbox clear failed: {}", error_text(&e))),
        }
    }

    /// Reads one page of a shard: the events to publish in it, each with its
    /// position; a page with none moves the checkpoint at once. Returns the next
    /// iterator (None = shard closed and read to its end).
    async fn poll_shard(
        &self,
        shard: &str,
        iterator: String,
    ) -> anyhow::Result<(Option<String>, Vec<SourceEvent>)> {
        let out = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit(100)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetRecords failed: {}", error_text(&e)))?;
        let mut events = Vec::new();
        let mut last_seq = None;
        for rec in out.records() {
            let Some(change) = rec.dynamodb() else {
                continue;
            };
            let Some(seq) = change.sequence_number() else {
                continue;
            };
            last_seq = Some(seq.to_string());
            let wanted = matches!(
                rec.event_name(),
                Some(OperationType::Insert | OperationType::Modify)
            );
            let event = if wanted {
                change.new_image().and_then(|image| self.event_of(image))
            } else {
                None
            };
            if let Some(record) = event {
                let was_cleared = matches!(
                    change.old_image().and_then(|old| old.get("outbox_pending")),
                    Some(StreamValue::Bool(false))
                );
                let unchanged =
                    change.old_image().is_some() && change.old_image() == change.new_image();
                let cause = if self.source == Feed::Outbox && was_cleared {
                    Some(crate::relay::REARMED)
                } else if unchanged {
                    Some(UNCHANGED)
                } else {
                    None
                };
                if let Some(cause) = cause {
                    self.state
                        .lock()
                        .unwrap()
                        .causes
                        .push((record.order_id, cause));
                }
                events.push(SourceEvent {
                    record,
                    position: format!("{shard}\t{seq}"),
                });
            }
        }
        if events.is_empty()
            && let Some(seq) = last_seq
        {
            self.state
                .lock()
                .unwrap()
                .checkpoints
                .insert(shard.to_string(), seq);
        }
        Ok((out.next_shard_iterator().map(str::to_string), events))
    }

    /// Primary orders the relay has not delivered yet (streams pattern).
    async fn undelivered(&self) -> anyhow::Result<u64> {
        let mut ids = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(&self.orders)
                .projection_expression("order_id")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("pending scan failed: {}", error_text(&e)))?;
            ids.extend(page.items().iter().filter_map(|item| {
                item.get("order_id")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|s| parse_order_key(s))
            }));
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        let state = self.state.lock().unwrap();
        Ok(ids
            .iter()
            .filter(|id| !state.delivered.contains(id))
            .count() as u64)
    }

    /// Orders still flagged `outbox_pending = true` (outbox pattern).
    async fn flagged(&self) -> anyhow::Result<u64> {
        let mut count = 0u64;
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(&self.orders)
                .filter_expression("outbox_pending = :true")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("outbox pending scan failed: {}", error_text(&e)))?;
            count += page.count().max(0) as u64;
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(count),
            }
        }
    }
}

/// The cause of a publication from a stream record whose images are equal.
const UNCHANGED: &str =
    "a stream record for a put that changed nothing (moto writes these; DynamoDB does not)";

/// Which worker owns a shard (shards are spread over `workers` by a stable hash).
fn owner(shard: &str, workers: u32) -> u32 {
    let h = shard.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % u64::from(workers.max(1))) as u32
}

#[async_trait]
impl RelaySource for StreamsSource {
    async fn start(&self, worker: u32, workers: u32) -> anyhow::Result<()> {
        self.workers.store(workers.max(1), Ordering::Relaxed);
        // Iterators are rebuilt from the checkpoints.
        self.state.lock().unwrap().iterators.remove(&worker);
        Ok(())
    }

    async fn next(&self, worker: u32) -> anyhow::Result<Vec<SourceEvent>> {
        let arn = self.stream_arn().await?;
        // One worker owns each shard; workers share the shards by a stable hash.
        let workers = self.workers.load(Ordering::Relaxed);
        for shard in self.shards(&arn).await? {
            let skip = owner(&shard, workers) != worker || {
                let state = self.state.lock().unwrap();
                state.finished.contains(&shard)
                    || state
                        .iterators
                        .get(&worker)
                        .is_some_and(|its| its.contains_key(&shard))
            };
            if skip {
                continue;
            }
            let iterator = self.iterator(&arn, &shard).await?;
            let mut state = self.state.lock().unwrap();
            match iterator {
                Some(it) => {
                    state.iterators.entry(worker).or_default().insert(shard, it);
                }
                None => {
                    state.finished.insert(shard);
                }
            }
        }
        let shards: Vec<(String, String)> = self
            .state
            .lock()
            .unwrap()
            .iterators
            .get(&worker)
            .map(|its| its.iter().map(|(s, i)| (s.clone(), i.clone())).collect())
            .unwrap_or_default();
        for (shard, iterator) in shards {
            let (next, events) = self.poll_shard(&shard, iterator).await?;
            {
                let mut state = self.state.lock().unwrap();
                match next {
                    Some(next) => {
                        state
                            .iterators
                            .entry(worker)
                            .or_default()
                            .insert(shard.clone(), next);
                    }
                    None => {
                        if let Some(its) = state.iterators.get_mut(&worker) {
                            its.remove(&shard);
                        }
                        state.finished.insert(shard.clone());
                    }
                }
            }
            if !events.is_empty() {
                return Ok(events);
            }
        }
        Ok(Vec::new())
    }

    async fn done(&self, _worker: u32, events: &[SourceEvent]) -> anyhow::Result<()> {
        for event in events {
            if self.source == Feed::Outbox {
                self.clear(&crate::order::order_key(event.record.order_id))
                    .await?;
            }
            let (shard, seq) = event
                .position
                .split_once('\t')
                .context("a streams position is shard and sequence number")?;
            let mut state = self.state.lock().unwrap();
            state.delivered.insert(event.record.order_id);
            state.checkpoints.insert(shard.to_string(), seq.to_string());
        }
        Ok(())
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        match self.source {
            Feed::Changes => self.undelivered().await,
            Feed::Outbox => self.flagged().await,
        }
    }

    fn causes(&self) -> Vec<(u64, &'static str)> {
        self.state.lock().unwrap().causes.clone()
    }
}

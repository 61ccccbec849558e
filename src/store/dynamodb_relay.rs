//! The DynamoDB Streams relay of the `streams` and `outbox` patterns.
//!
//! ListStreams → DescribeStream (all shards) → GetShardIterator → GetRecords,
//! following each shard's iterators; every call goes through the RELAY side's
//! proxy, and so do the writes to the events table, so a fault on the relay side
//! hits the relay's reads and writes and nothing else.
//!
//! Per event: write the secondary (events table), then — the crash point — ask
//! `RelayContext::should_crash`, then (outbox) clear `outbox_pending` with a
//! conditional update, then save the checkpoint (the shard's last sequence number).
//! Checkpoints live in this struct, not in the `run` future, so they survive an
//! abort (a `relay-crash` fault) and a self-crash alike: a restarted worker resumes
//! AFTER_SEQUENCE_NUMBER of the checkpoint and replays what it had not checkpointed.
//! An idempotent relay writes `event_id` derived from the order id (a replay
//! overwrites); a non-idempotent one writes a fresh id (a replay duplicates).
//! Any failed call ends the run with an error; the supervisor restarts it from
//! the checkpoint, which is what a real consumer process does.

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

use super::dynamodb::{Tables, error_text, event_id, event_item};
use crate::order::parse_order_key;
use crate::pattern::KeyPolicy;
use crate::relay::{RelayContext, RelayExit, RelayWorker};
use crate::store::Record;

/// What the relay publishes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelaySource {
    /// Every insert/modify of an order (the `streams` pattern).
    Changes,
    /// Only images with `outbox_pending = true`, read from their `outbox_event`.
    Outbox,
}

#[derive(Debug, Default)]
struct RelayState {
    stream_arn: Option<String>,
    /// Shard id -> last sequence number fully processed.
    checkpoints: BTreeMap<String, String>,
    /// Shards whose iterator chain ended (closed and fully read).
    finished: HashSet<String>,
    /// Orders whose event reached the secondary (for `pending` in the streams pattern).
    delivered: HashSet<u64>,
}

pub(crate) struct StreamsRelay {
    streams: StreamsClient,
    /// Relay side: events table writes, outbox clears, pending scans.
    dynamo: Client,
    tables: Tables,
    source: RelaySource,
    idempotent: bool,
    state: Mutex<RelayState>,
}

impl StreamsRelay {
    pub fn new(
        streams: StreamsClient,
        dynamo: Client,
        tables: Tables,
        source: RelaySource,
        idempotent: bool,
    ) -> Self {
        Self {
            streams,
            dynamo,
            tables,
            source,
            idempotent,
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
            .table_name(&self.tables.orders)
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
                    self.tables.orders
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
            RelaySource::Changes => image,
            RelaySource::Outbox => {
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

    async fn publish(&self, record: &Record) -> anyhow::Result<()> {
        let policy = if self.idempotent {
            KeyPolicy::Stable
        } else {
            KeyPolicy::Fresh
        };
        let item = event_item(record, event_id(record.order_id, policy));
        self.dynamo
            .put_item()
            .table_name(&self.tables.events)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("relay PutItem into events failed: {}", error_text(&e)))?;
        Ok(())
    }

    /// Outbox: `outbox_pending = true` -> false, only if it is still true.
    async fn clear(&self, order_key: &str) -> anyhow::Result<()> {
        let result = self
            .dynamo
            .update_item()
            .table_name(&self.tables.orders)
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

    /// Reads one page of a shard and processes it. Returns the next iterator (None
    /// = shard closed and read to its end) and how many records it saw.
    async fn poll_shard(
        &self,
        shard: &str,
        iterator: String,
        ctx: &RelayContext,
    ) -> anyhow::Result<(Option<String>, usize, bool)> {
        let out = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit(100)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetRecords failed: {}", error_text(&e)))?;
        for rec in out.records() {
            let Some(change) = rec.dynamodb() else {
                continue;
            };
            let Some(seq) = change.sequence_number() else {
                continue;
            };
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
                self.publish(&record).await?;
                ctx.delivered(record.order_id);
                self.state.lock().unwrap().delivered.insert(record.order_id);
                // Published, not yet marked/checkpointed: the crash point.
                if ctx.should_crash() {
                    return Ok((None, 0, true));
                }
                if self.source == RelaySource::Outbox {
                    self.clear(&crate::order::order_key(record.order_id))
                        .await?;
                }
            }
            self.state
                .lock()
                .unwrap()
                .checkpoints
                .insert(shard.to_string(), seq.to_string());
        }
        Ok((
            out.next_shard_iterator().map(str::to_string),
            out.records().len(),
            false,
        ))
    }

    /// Primary orders the relay has not delivered yet (streams pattern).
    async fn undelivered(&self) -> anyhow::Result<u64> {
        let mut ids = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(&self.tables.orders)
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
                .table_name(&self.tables.orders)
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

/// Which worker owns a shard (shards are spread over `workers` by a stable hash).
fn owner(shard: &str, workers: u32) -> u32 {
    let h = shard.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % u64::from(workers.max(1))) as u32
}

#[async_trait]
impl RelayWorker for StreamsRelay {
    async fn run(&self, worker: u32, ctx: RelayContext) -> anyhow::Result<RelayExit> {
        let arn = self.stream_arn().await?;
        let workers = ctx.options().workers;
        let idle = ctx.options().poll_interval;
        // Shard -> current iterator; rebuilt from checkpoints on every (re)start.
        let mut iterators: BTreeMap<String, String> = BTreeMap::new();
        loop {
            for shard in self.shards(&arn).await? {
                let skip = owner(&shard, workers) != worker
                    || iterators.contains_key(&shard)
                    || self.state.lock().unwrap().finished.contains(&shard);
                if skip {
                    continue;
                }
                match self.iterator(&arn, &shard).await? {
                    Some(it) => {
                        iterators.insert(shard, it);
                    }
                    None => {
                        self.state.lock().unwrap().finished.insert(shard);
                    }
                }
            }
            let mut seen = 0;
            for shard in iterators.keys().cloned().collect::<Vec<_>>() {
                let it = iterators.remove(&shard).expect("listed above");
                let (next, n, crashed) = self.poll_shard(&shard, it, &ctx).await?;
                if crashed {
                    return Ok(RelayExit::Crashed);
                }
                seen += n;
                match next {
                    Some(next) => {
                        iterators.insert(shard, next);
                    }
                    None => {
                        self.state.lock().unwrap().finished.insert(shard);
                    }
                }
            }
            if seen == 0 {
                tokio::time::sleep(idle).await;
            }
        }
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        match self.source {
            RelaySource::Changes => self.undelivered().await,
            RelaySource::Outbox => self.flagged().await,
        }
    }
}

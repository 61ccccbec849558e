//! Reading a topic the way a `read_committed` consumer sees it, from the beginning
//! to the end offset taken when the read starts: the checker's scan of the events
//! topic and the exactly-once relay's load of its committed positions.
//!
//! The end is the last stable offset (librdkafka asks ListOffsets with the
//! consumer's isolation level), so an open transaction neither blocks the read nor
//! counts. The read stops at the first end-of-partition after it starts: the last
//! stable offset only grows, so reaching it then means every offset below the
//! snapshot was read. Messages past the snapshot are left out.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// One message as read: its key and payload (either may be absent).
pub(crate) type Raw = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Reads partition 0 of `topic` (the run's topics have one) through `endpoint`;
/// fails after `limit`. Blocking: call it from `spawn_blocking`.
pub(crate) fn read_topic(endpoint: &str, topic: &str, limit: Duration) -> anyhow::Result<Vec<Raw>> {
    let deadline = Instant::now() + limit;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", endpoint)
        .set("broker.address.family", "v4")
        .set("group.id", "dualwrite-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("reconnect.backoff.max.ms", "500")
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create a Kafka consumer: {e}"))?;
    let left = || deadline.saturating_duration_since(Instant::now());
    let (low, end) = consumer
        .fetch_watermarks(topic, 0, left())
        .map_err(|e| anyhow::anyhow!("end offset of {topic}: {e}"))?;
    let mut out = Vec::new();
    let mut last_error = String::new();
    if end <= low {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    loop {
        if Instant::now() >= deadline {
            anyhow::bail!(
                "reading {topic}: {} messages below offset {end} read after {limit:?}{last_error}",
                out.len()
            );
        }
        match consumer.poll(left().min(Duration::from_millis(500))) {
            None => {}
            Some(Ok(m)) if m.offset() < end => {
                out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
            }
            // Past the snapshot: written after the read began.
            Some(Ok(_)) => {}
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(out),
            // librdkafka reports connection trouble as events and recovers by itself.
            Some(Err(e)) => last_error = format!(" (last error: {e})"),
        }
    }
}

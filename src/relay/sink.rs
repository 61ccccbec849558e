//! Where a relay publishes. At least once, any side is a sink: the loop publishes,
//! then marks, and a crash in between publishes again. Exactly once needs a sink
//! that commits each publication *together with the source positions it
//! publishes* (one Kafka transaction: the events and a record per position in a
//! compacted topic) and tells a restarted worker which positions are already
//! committed, so the loop marks those without publishing them again. The loop
//! itself stays the same for both (`super::work`); docs/KAFKA.md has the design.

use async_trait::async_trait;
use std::sync::Arc;

use super::SourceEvent;
use crate::pattern::KeyPolicy;
use crate::pattern::outcome::Attempt;
use crate::store::{Record, SideStore, now_micros};

/// A sink that commits events with their source positions atomically.
#[async_trait]
pub trait ExactlyOnceSink: Send + Sync {
    /// Worker `worker` (re)starts: fence its earlier incarnation (whatever that one
    /// left uncommitted is aborted, and it can commit nothing more), then load the
    /// positions committed so far. Called before the worker's first event.
    async fn start(&self, worker: u32) -> anyhow::Result<()>;

    /// Whether the event at `position` was committed (by any incarnation of this
    /// worker, as of its start or by itself since).
    fn published(&self, worker: u32, position: &str) -> bool;

    /// Publishes the events and their positions in one transaction: all of them
    /// become visible to `read_committed` readers, or none. `NotApplied` only when
    /// the transaction was certainly aborted.
    async fn publish(&self, worker: u32, events: &[SourceEvent]) -> Attempt;
}

/// A relay's sink: a side written at least once, or an exactly-once sink.
#[derive(Clone)]
pub enum Sink {
    AtLeastOnce(Arc<dyn SideStore>),
    ExactlyOnce(Arc<dyn ExactlyOnceSink>),
}

impl Sink {
    pub(super) async fn start(&self, worker: u32) -> anyhow::Result<()> {
        match self {
            Sink::AtLeastOnce(_) => Ok(()),
            Sink::ExactlyOnce(sink) => sink.start(worker).await,
        }
    }

    /// At least once nothing is ever known to be published: it is published again.
    pub(super) fn published(&self, worker: u32, position: &str) -> bool {
        match self {
            Sink::AtLeastOnce(_) => false,
            Sink::ExactlyOnce(sink) => sink.published(worker, position),
        }
    }

    pub(super) async fn publish_one(
        &self,
        worker: u32,
        event: &SourceEvent,
        key: KeyPolicy,
    ) -> Attempt {
        match self {
            Sink::AtLeastOnce(side) => side.write_event(&event.record, key, now_micros()).await,
            Sink::ExactlyOnce(sink) => sink.publish(worker, std::slice::from_ref(event)).await,
        }
    }

    pub(super) async fn publish_batch(
        &self,
        worker: u32,
        events: &[SourceEvent],
        key: KeyPolicy,
    ) -> Attempt {
        match self {
            Sink::AtLeastOnce(side) => {
                let records: Vec<Record> = events.iter().map(|e| e.record).collect();
                side.write_events(&records, key).await
            }
            Sink::ExactlyOnce(sink) => sink.publish(worker, events).await,
        }
    }
}
